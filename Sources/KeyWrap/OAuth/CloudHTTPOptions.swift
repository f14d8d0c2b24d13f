// Options common to the cloud backends' HTTP use: endpoint override, CA bundle, timeouts, retry policy.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CryptoCore

/// Parsed from `BackendConfiguration.options` keys `ca_bundle`, `connect_timeout`, `timeout`, `max_attempts`,
/// `retry_base_delay`, `retry_max_delay` (seconds, decimals allowed).
public struct CloudHTTPOptions: Sendable, Equatable {
    public static let keys = ["ca_bundle", "connect_timeout", "timeout", "max_attempts", "retry_base_delay", "retry_max_delay"]

    public var http: HTTPClientConfiguration

    public init(http: HTTPClientConfiguration = HTTPClientConfiguration()) { self.http = http }

    public init(options: [String: String], kind: String) throws {
        func seconds(_ key: String, _ fallback: Duration) throws -> Duration {
            guard let t = options[key], !t.isEmpty else { return fallback }
            guard let d = parseSeconds(t) else {
                throw KeyWrapError.misconfigured("\(kind) backend: \(key) must be seconds between 0.001 and 3600, not '\(t)'")
            }
            return d
        }
        var attempts = RetryPolicy.default.maxAttempts
        if let a = options["max_attempts"], !a.isEmpty {
            guard let n = Int(a), (1...RetryPolicy.attemptLimit).contains(n) else {
                throw KeyWrapError.misconfigured("\(kind) backend: max_attempts must be 1...\(RetryPolicy.attemptLimit), not '\(a)'")
            }
            attempts = n
        }
        let retry = RetryPolicy(maxAttempts: attempts,
                                baseDelay: try seconds("retry_base_delay", RetryPolicy.default.baseDelay),
                                maxDelay: try seconds("retry_max_delay", RetryPolicy.default.maxDelay))
        var ca: String? = nil
        if let c = options["ca_bundle"], !c.isEmpty {
            guard c.hasPrefix("/") else { throw KeyWrapError.misconfigured("\(kind) backend: ca_bundle '\(c)' must be an absolute path") }
            ca = c
        }
        self.http = HTTPClientConfiguration(connectTimeout: try seconds("connect_timeout", .seconds(3)),
                                            totalTimeout: try seconds("timeout", .seconds(10)),
                                            caBundlePath: ca, retry: retry)
    }

    var options: [String: String] {
        var o: [String: String] = [
            "connect_timeout": Self.format(http.connectTimeout), "timeout": Self.format(http.totalTimeout),
            "max_attempts": String(http.retry.maxAttempts), "retry_base_delay": Self.format(http.retry.baseDelay),
            "retry_max_delay": Self.format(http.retry.maxDelay),
        ]
        if let ca = http.caBundlePath { o["ca_bundle"] = ca }
        return o
    }

    static func format(_ d: Duration) -> String {
        let ms = d.milliseconds
        let frac = ms % 1000
        if frac == 0 { return String(ms / 1000) }
        return "\(ms / 1000)." + frac.zeroPadded(3)
    }
}

/// Text from a service's error document, made safe for a log line: control characters dropped, length capped.
func sanitizedServiceText(_ s: String, limit: Int = 300) -> String {
    var out = ""
    for ch in s.unicodeScalars where ch.value >= 0x20 && ch.value != 0x7F {
        if out.unicodeScalars.count >= limit { out += "…"; break }
        out.unicodeScalars.append(ch)
    }
    return out
}

/// "HTTP 503" or the transport error, for messages.
func describeTransport(_ e: HTTPError) -> String { e.description }

/// Unix time in seconds (for JWT iat/exp).
func unixTime() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec)
}
