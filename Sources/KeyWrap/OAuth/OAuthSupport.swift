// Shared pieces of the cloud backends' OAuth2 clients: secret sources (env / file, never inline), access-token
// parsing and caching, form encoding, and the elapsed-time clock. Nothing here logs; no error message carries
// a secret, a token or a key byte.
import JSON
import CryptoCore
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a credential comes from. Read when needed (fixing the file or variable needs no restart).
public enum CredentialSource: Sendable, Equatable, CustomStringConvertible {
    /// Name of an environment variable.
    case environment(String)
    /// Path of a regular file that other users cannot access (mode & 007 == 0). One trailing newline ignored.
    case file(String)

    public var description: String {
        switch self {
        case .environment(let v): return "environment variable \(v)"
        case .file(let p): return "file \(p)"
        }
    }

    public static let maximumLength = 64 * 1024

    /// The secret bytes. `what` names the credential in errors ("client secret", "service-account key").
    public func read(_ what: String) throws -> SecretBytes {
        switch self {
        case .environment(let name):
            guard let value = getenv(name) else { throw KeyWrapError.misconfigured("\(what): environment variable \(name) is not set") }
            let length = strlen(value)
            guard length > 0 else { throw KeyWrapError.misconfigured("\(what): environment variable \(name) is empty") }
            guard length <= Self.maximumLength else { throw KeyWrapError.misconfigured("\(what): environment variable \(name) is too long") }
            let out = SecretBytes(count: length)
            out.withUnsafeMutableBytes { dst in if let base = dst.baseAddress { memcpy(base, value, length) } }
            return out
        case .file(let path):
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw KeyWrapError.misconfigured("\(what): cannot read file \(path) (errno \(errno))") }
            defer { close(fd) }
            var info = stat()
            guard fstat(fd, &info) == 0 else { throw KeyWrapError.misconfigured("\(what): cannot stat file \(path) (errno \(errno))") }
            guard info.st_mode & S_IFMT == S_IFREG else { throw KeyWrapError.misconfigured("\(what): \(path) is not a regular file") }
            guard info.st_mode & 0o007 == 0 else {
                throw KeyWrapError.misconfigured("\(what): file \(path) is accessible to other users (mode "
                                                 + String(info.st_mode & 0o777, radix: 8) + "); chmod 600 it")
            }
            var buffer = [UInt8](repeating: 0, count: Self.maximumLength + 1)
            defer { secureZero(&buffer) }
            var total = 0
            var rounds = 0
            while total < buffer.count && rounds < 100_000 {   // bounded: read() returns 0 at end of file
                rounds += 1
                let n = buffer.withUnsafeMutableBytes { raw in oauthRead(fd, raw.baseAddress?.advanced(by: total), raw.count - total) }
                if n < 0 && errno == EINTR { continue }
                guard n >= 0 else { throw KeyWrapError.misconfigured("\(what): cannot read file \(path) (errno \(errno))") }
                if n == 0 { break }
                total += n
            }
            guard total <= Self.maximumLength else { throw KeyWrapError.misconfigured("\(what): file \(path) is too large") }
            var length = total
            if length > 0 && buffer[length - 1] == 0x0A { length -= 1 }
            if length > 0 && buffer[length - 1] == 0x0D { length -= 1 }
            guard length > 0 else { throw KeyWrapError.misconfigured("\(what): file \(path) is empty") }
            return SecretBytes(copying: buffer[0..<length])
        }
    }
}

/// An OAuth2 bearer token and when to stop using it (monotonic clock).
public struct AccessToken: Sendable, Equatable {
    public var value: String
    public var expires: MonotonicInstant

    public init(value: String, expires: MonotonicInstant) {
        self.value = value
        self.expires = expires
    }

    /// Parses {"access_token": …, "expires_in": n | "n", "token_type": "Bearer"} (RFC 6749 §5.1; Azure IMDS
    /// sends expires_in as a string). `service` names the issuer in errors.
    public static func parse(_ body: [UInt8], service: String, now: MonotonicInstant = .now) throws -> AccessToken {
        guard let doc = JSONValue.parse(body), let token = doc["access_token"]?.text, !token.isEmpty else {
            throw KeyWrapError.authenticationFailed("\(service) returned no access token (malformed response)")
        }
        guard token.utf8.count <= 16 * 1024,
              token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw KeyWrapError.authenticationFailed("\(service) returned an access token with unexpected characters")
        }
        if let type = doc["token_type"]?.text, type.lowercased() != "bearer" {
            throw KeyWrapError.authenticationFailed("\(service) returned a '\(type)' token, not a bearer token")
        }
        let lifetime = max(0, min(doc["expires_in"]?.int64 ?? 300, 24 * 3600))
        return AccessToken(value: token, expires: now + .seconds(lifetime))
    }
}

/// One cached token: reused until `refreshMargin` before its expiry; dropped when the service rejects it.
public final class TokenCache: Sendable {
    private let token = Mutex<AccessToken?>(nil)
    public let refreshMargin: Duration

    public init(refreshMargin: Duration = .seconds(60)) { self.refreshMargin = refreshMargin }

    /// The cached token if it is still good for at least the margin.
    public func current(now: MonotonicInstant = .now) -> AccessToken? {
        token.withLock { t in
            guard let t, t.expires - refreshMargin > now else { return nil }
            return t
        }
    }

    public func store(_ t: AccessToken) { token.withLock { $0 = t } }

    /// Drops the cached token if it is `value` (another thread may already have stored a fresh one).
    public func invalidate(_ value: String? = nil) {
        token.withLock { t in if value == nil || t?.value == value { t = nil } }
    }
}

/// application/x-www-form-urlencoded body (RFC 3986 unreserved kept, everything else percent-encoded).
public func formEncode(_ fields: [(String, [UInt8])]) -> [UInt8] {
    let hex = Array("0123456789ABCDEF".utf8)
    var out: [UInt8] = []
    for (i, (k, v)) in fields.enumerated() {
        if i > 0 { out.append(UInt8(ascii: "&")) }
        for (j, part) in [Array(k.utf8), v].enumerated() {
            if j == 1 { out.append(UInt8(ascii: "=")) }
            for c in part {
                switch c {
                case 0x41...0x5A, 0x61...0x7A, 0x30...0x39, UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                    out.append(c)
                default:
                    out.append(UInt8(ascii: "%")); out.append(hex[Int(c >> 4)]); out.append(hex[Int(c & 0xF)])
                }
            }
        }
    }
    return out
}

/// Percent-encodes one URL query value or path segment.
public func percentEncode(_ s: String) -> String {
    String(decoding: formEncode([("", Array(s.utf8))]).dropFirst(), as: UTF8.self)
}

/// Parses a duration option given in seconds ("10", "2.5"). nil if malformed or outside 0.001…3600 s.
public func parseSeconds(_ text: String) -> Duration? {
    let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
    guard let whole = Int64(parts[0].isEmpty ? "0" : parts[0]), whole >= 0, whole <= 3600 else { return nil }
    var ms = whole * 1000
    if parts.count == 2 {
        let frac = parts[1].prefix(3)
        guard !frac.isEmpty, frac.allSatisfy({ $0.isASCII && $0.isNumber }), var f = Int64(frac) else { return nil }
        for _ in frac.count..<3 { f *= 10 }
        ms += f
    }
    guard ms >= 1, ms <= 3_600_000 else { return nil }
    return .milliseconds(ms)
}

#if canImport(Glibc)
private let oauthRead = Glibc.read
#elseif canImport(Darwin)
private let oauthRead = Darwin.read
#endif

/// What one attempt of a cloud backend call produced (see `HTTPClient.withRetries`).
enum CloudCallOutcome<T> {
    /// A 2xx response whose body was accepted.
    case ok(T)
    /// An error status (the final one when retried).
    case status(HTTPResponse)
    /// A 2xx response with an unusable body (malformed JSON, integrity check failed).
    case malformed
}
