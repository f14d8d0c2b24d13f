// AWS Signature Version 4 (header form), written against the published algorithm and checked byte for byte
// against botocore's SigV4Auth in the tests (Tests/servers/aws/sigv4_reference.py).
//
// Canonical request = method \n canonical URI \n canonical query \n canonical headers \n signed headers \n
// hex(SHA-256(body)); string to sign = "AWS4-HMAC-SHA256" \n amz-date \n scope \n hex(SHA-256(canonical
// request)); key = HMAC chain "AWS4"+secret → date → region → service → "aws4_request". Like botocore, every
// header present is signed except user-agent, expect, authorization and x-amzn-trace-id; `Host` is added from
// the URL (port only when not the scheme's default) and sent explicitly so what is signed is what is sent.
import CryptoCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// AWS credentials. The secret key lives in SecretBytes; `description` never shows the secret or the token.
public struct AWSCredentials: Sendable, Equatable, CustomStringConvertible {
    public var accessKeyID: String
    public var secretAccessKey: SecretBytes
    /// STS / instance session token (sent as X-Amz-Security-Token).
    public var sessionToken: String?
    /// Unix seconds after which these credentials are invalid (nil = long-term).
    public var expiration: Int64?
    /// Where they came from ("environment", "profile default (/root/.aws/credentials)", "instance metadata role r").
    public var source: String

    public init(accessKeyID: String, secretAccessKey: SecretBytes, sessionToken: String? = nil,
                expiration: Int64? = nil, source: String = "static") {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.expiration = expiration
        self.source = source
    }

    public var description: String {
        "AWSCredentials(\(accessKeyID), from \(source)\(sessionToken == nil ? "" : ", session")\(expiration.map { ", expires \(AWSTime.iso8601($0))" } ?? ""))"
    }
}

public struct SigV4Signer: Sendable {
    public var region: String
    public var service: String

    static let algorithm = "AWS4-HMAC-SHA256"
    static let unsignedHeaders: Set<String> = ["user-agent", "expect", "authorization", "x-amzn-trace-id"]

    public init(region: String, service: String) {
        self.region = region
        self.service = service
    }

    /// Returns `request` with Host, X-Amz-Date, X-Amz-Security-Token (if any) and Authorization set.
    /// `time` is Unix seconds (UTC).
    public func sign(_ request: HTTPRequest, credentials: AWSCredentials, time: Int64) throws -> HTTPRequest {
        guard let parts = HTTPURL.parse(request.url) else {
            throw KeyWrapError.misconfigured("aws-kms: malformed endpoint URL \(HTTPURL.redacted(request.url))")
        }
        var signed = request
        signed.headers.removeAll { ["authorization", "x-amz-date", "x-amz-security-token", "host"].contains($0.name.lowercased()) }
        let hostValue: String = {
            let host = parts.host.contains(":") ? "[\(parts.host)]" : parts.host
            guard let port = parts.port else { return host }
            let isDefault = (parts.scheme == "https" && port == 443) || (parts.scheme == "http" && port == 80)
            return isDefault ? host : "\(host):\(port)"
        }()
        let amzDate = AWSTime.amzDate(time)
        signed.headers.insert((name: "Host", value: hostValue), at: 0)
        signed.headers.append((name: "X-Amz-Date", value: amzDate))
        if let token = credentials.sessionToken {
            signed.headers.append((name: "X-Amz-Security-Token", value: token))
        }
        let (canonical, signedHeaders) = try canonicalRequest(signed, parts: parts)
        let date = String(amzDate.prefix(8))
        let scope = "\(date)/\(region)/\(service)/aws4_request"
        let stringToSign = [Self.algorithm, amzDate, scope, try hexSHA256(Array(canonical.utf8))].joined(separator: "\n")
        let signature = try Hex.encode(signingKeyHMAC(credentials.secretAccessKey, date: date, data: Array(stringToSign.utf8)))
        signed.headers.append((name: "Authorization",
                               value: "\(Self.algorithm) Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"))
        return signed
    }

    /// The canonical request text and the signed-headers list (exposed for tests).
    func canonicalRequest(_ request: HTTPRequest, parts: HTTPURL.Parts) throws -> (String, String) {
        var grouped: [String: [String]] = [:]
        for (name, value) in request.headers {
            let lower = name.lowercased()
            if Self.unsignedHeaders.contains(lower) { continue }
            grouped[lower, default: []].append(Self.collapseSpaces(value))
        }
        let names = grouped.keys.sorted()
        let canonicalHeaders = names.map { "\($0):\(grouped[$0, default: []].joined(separator: ","))\n" }.joined()
        let signedHeaders = names.joined(separator: ";")
        let text = [
            request.method,
            Self.uriEncode(parts.path, keepSlash: true),
            Self.canonicalQuery(parts.query),
            canonicalHeaders,
            signedHeaders,
            try hexSHA256(request.body),
        ].joined(separator: "\n")
        return (text, signedHeaders)
    }

    private func signingKeyHMAC(_ secret: SecretBytes, date: String, data: [UInt8]) throws -> [UInt8] {
        let prefix = Array("AWS4".utf8)
        let first = SecretBytes(count: prefix.count + secret.count)
        first.withUnsafeMutableBytes { dst in
            guard let base = dst.baseAddress else { return }
            prefix.withUnsafeBytes { if let p = $0.baseAddress { base.copyMemory(from: p, byteCount: prefix.count) } }
            secret.withUnsafeBytes { if let s = $0.baseAddress { (base + prefix.count).copyMemory(from: s, byteCount: secret.count) } }
        }
        do {
            var key = first
            for step in [date, region, service, "aws4_request"] {
                key = SecretBytes(copying: try HMAC.authenticate(.sha256, key: key, data: Array(step.utf8)))
            }
            return try HMAC.authenticate(.sha256, key: key, data: data)
        } catch {
            throw KeyWrapError.misconfigured("aws-kms: HMAC-SHA-256 unavailable (\(error))")
        }
    }

    private func hexSHA256(_ data: [UInt8]) throws -> String {
        do { return Hex.encode(try Digest.hash(.sha256, data)) } catch {
            throw KeyWrapError.misconfigured("aws-kms: SHA-256 unavailable (\(error))")
        }
    }

    /// Sequences of spaces/tabs collapsed to one space, trimmed (botocore: ' '.join(value.split())).
    static func collapseSpaces(_ value: String) -> String {
        value.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
    }

    /// RFC 3986 unreserved characters kept, everything else %XX (upper-case hex); "/" kept in paths.
    static func uriEncode(_ text: String, keepSlash: Bool) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for b in text.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
                 UInt8(ascii: "~"):
                out.append(b)
            case UInt8(ascii: "/") where keepSlash:
                out.append(b)
            default:
                out.append(UInt8(ascii: "%")); out.append(hex[Int(b >> 4)]); out.append(hex[Int(b & 0xF)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Query pairs percent-decoded, re-encoded, sorted by name then value.
    static func canonicalQuery(_ query: String) -> String {
        guard !query.isEmpty else { return "" }
        let pairs = query.split(separator: "&").map { item -> (String, String) in
            let kv = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let k = percentDecode(String(kv[0]))
            let v = kv.count > 1 ? percentDecode(String(kv[1])) : ""
            return (uriEncode(k, keepSlash: false), uriEncode(v, keepSlash: false))
        }
        return pairs.sorted { $0.0 == $1.0 ? $0.1 < $1.1 : $0.0 < $1.0 }.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    static func percentDecode(_ text: String) -> String {
        var out: [UInt8] = []
        let bytes = Array(text.utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "%"), i + 2 < bytes.count,
               let v = UInt8(String(decoding: bytes[(i + 1)...(i + 2)], as: UTF8.self), radix: 16) {
                out.append(v); i += 3
            } else {
                out.append(bytes[i]); i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// UTC time formatting/parsing without Foundation.
public enum AWSTime {
    /// Unix seconds now.
    public static func now() -> Int64 { Int64(time(nil)) }

    static func components(_ t: Int64) -> tm {
        var value = time_t(t)
        var out = tm()
        _ = gmtime_r(&value, &out)
        return out
    }

    /// "20261129T083000Z"
    public static func amzDate(_ t: Int64) -> String {
        let c = components(t)
        return (c.tm_year + 1900).zeroPadded(4) + (c.tm_mon + 1).zeroPadded(2) + c.tm_mday.zeroPadded(2) + "T"
            + c.tm_hour.zeroPadded(2) + c.tm_min.zeroPadded(2) + c.tm_sec.zeroPadded(2) + "Z"
    }

    /// "2026-11-29T08:30:00Z"
    public static func iso8601(_ t: Int64) -> String {
        let c = components(t)
        return (c.tm_year + 1900).zeroPadded(4) + "-" + (c.tm_mon + 1).zeroPadded(2) + "-" + c.tm_mday.zeroPadded(2) + "T"
            + c.tm_hour.zeroPadded(2) + ":" + c.tm_min.zeroPadded(2) + ":" + c.tm_sec.zeroPadded(2) + "Z"
    }

    /// Parses "YYYY-MM-DDTHH:MM:SS[.fff](Z|+00:00)" (UTC only, as IMDS and STS send it). nil otherwise.
    public static func parseISO8601(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        guard b.count >= 20 else { return nil }
        func num(_ r: Range<Int>) -> Int32? {
            guard r.upperBound <= b.count else { return nil }
            var v: Int32 = 0
            for i in r {
                guard (0x30...0x39).contains(b[i]) else { return nil }
                v = v * 10 + Int32(b[i] - 0x30)
            }
            return v
        }
        guard b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"), b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: " "),
              b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":"),
              let year = num(0..<4), let month = num(5..<7), let day = num(8..<10),
              let hour = num(11..<13), let minute = num(14..<16), let second = num(17..<19) else { return nil }
        var i = 19
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            while i < b.count, (0x30...0x39).contains(b[i]) { i += 1 }
        }
        let zone = String(decoding: b[i...], as: UTF8.self)
        guard zone == "Z" || zone == "+00:00" || zone == "UTC" else { return nil }
        guard (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        var c = tm()
        c.tm_year = year - 1900
        c.tm_mon = month - 1
        c.tm_mday = day
        c.tm_hour = hour
        c.tm_min = minute
        c.tm_sec = second
        return Int64(timegm(&c))
    }
}

