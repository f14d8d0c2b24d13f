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
        guard let doc = JSONValue.parseIfValid(body), let token = doc["access_token"]?.text, !token.isEmpty else {
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


/// What one attempt of a cloud backend call produced (see `HTTPClient.withRetries`).
enum CloudCallOutcome<T> {
    /// A 2xx response whose body was accepted.
    case ok(T)
    /// An error status (the final one when retried).
    case status(HTTPResponse)
    /// A 2xx response with an unusable body (malformed JSON, integrity check failed).
    case malformed
}
