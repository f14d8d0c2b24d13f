// Options common to the cloud backends' HTTP use (CA bundle, timeouts, retry policy), and small helpers they share.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CryptoCore

/// The HTTP options of every cloud backend (aws-kms, gcp-kms, azure-keyvault), one vocabulary in one unit:
/// `ca_bundle` (absolute path), `connect_timeout`, `timeout` (seconds per attempt, decimals allowed,
/// 0.001...3600), `max_attempts` (1...10), `retry_base_delay`, `retry_max_delay` (seconds, 0...3600).
/// aws-kms's earlier millisecond spellings (`timeout_ms`, …) are still read — converted, and named by
/// `BackendConfiguration.deprecationNotices` so the module logs one line for each.
public struct CloudHTTPOptions: Sendable, Equatable {
    public static let keys = ["ca_bundle", "connect_timeout", "timeout", "max_attempts", "retry_base_delay", "retry_max_delay"]
    /// Old spelling → the key it stands for (its value in integer milliseconds).
    public static let deprecatedMillisecondKeys = [
        "connect_timeout_ms": "connect_timeout", "timeout_ms": "timeout",
        "retry_base_delay_ms": "retry_base_delay", "retry_max_delay_ms": "retry_max_delay",
    ]

    /// What a backend uses where an option is not given.
    public struct Defaults: Sendable {
        public var connectTimeout: Duration
        public var totalTimeout: Duration
        public var retry: RetryPolicy

        public init(connectTimeout: Duration, totalTimeout: Duration, retry: RetryPolicy) {
            self.connectTimeout = connectTimeout
            self.totalTimeout = totalTimeout
            self.retry = retry
        }

        /// gcp-kms and azure-keyvault.
        public static let standard = Defaults(connectTimeout: .seconds(3), totalTimeout: .seconds(10), retry: .default)
    }

    public var http: HTTPClientConfiguration

    public init(http: HTTPClientConfiguration = HTTPClientConfiguration()) { self.http = http }

    public init(options: [String: String], kind: String, defaults: Defaults = .standard) throws {
        func text(_ key: String) -> String? {
            guard let t = options[key]?.trimmingBlanks, !t.isEmpty else { return nil }
            return t
        }
        func seconds(_ key: String, _ fallback: Duration, allowZero: Bool = false) throws -> Duration {
            let old = Self.deprecatedMillisecondKeys.first { $0.value == key }?.key
            if let t = text(key) {
                if let old, text(old) != nil {
                    throw KeyWrapError.misconfigured("\(kind) backend: give \(key) or \(old), not both")
                }
                if allowZero, t.allSatisfy({ $0 == "0" || $0 == "." }), t.hasSubstring("0") { return .zero }
                guard let d = parseSeconds(t) else {
                    throw KeyWrapError.misconfigured("\(kind) backend: \(key) must be seconds between \(allowZero ? "0" : "0.001") and 3600, not '\(t)'")
                }
                return d
            }
            guard let old, let t = text(old) else { return fallback }
            guard let ms = Int(t), ms >= (allowZero ? 0 : 1), ms <= 3_600_000 else {
                throw KeyWrapError.misconfigured("\(kind) backend: \(old) must be milliseconds between \(allowZero ? 0 : 1) and 3600000, not '\(t)'")
            }
            return .milliseconds(ms)
        }
        var attempts = defaults.retry.maxAttempts
        if let a = text("max_attempts") {
            guard let n = Int(a), (1...RetryPolicy.attemptLimit).contains(n) else {
                throw KeyWrapError.misconfigured("\(kind) backend: max_attempts must be 1...\(RetryPolicy.attemptLimit), not '\(a)'")
            }
            attempts = n
        }
        let base = try seconds("retry_base_delay", defaults.retry.baseDelay, allowZero: true)
        let maxDelay = try seconds("retry_max_delay", defaults.retry.maxDelay, allowZero: true)
        var ca: String? = nil
        if let c = text("ca_bundle") {
            guard c.hasPrefix("/") else { throw KeyWrapError.misconfigured("\(kind) backend: ca_bundle '\(c)' must be an absolute path") }
            guard access(c, R_OK) == 0 else { throw KeyWrapError.misconfigured("\(kind) backend: ca_bundle \(c) cannot be read") }
            ca = c
        }
        self.http = HTTPClientConfiguration(connectTimeout: try seconds("connect_timeout", defaults.connectTimeout),
                                            totalTimeout: try seconds("timeout", defaults.totalTimeout),
                                            caBundlePath: ca,
                                            retry: RetryPolicy(maxAttempts: attempts, baseDelay: base, maxDelay: max(base, maxDelay)))
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

extension BackendConfiguration {
    /// One line per deprecated option spelling in these options, saying what replaces it (the module logs
    /// them at warning when it opens the token; `doctor` shows them).
    public var deprecationNotices: [String] {
        options.keys.sorted().compactMap { key in
            guard let new = CloudHTTPOptions.deprecatedMillisecondKeys[key] else { return nil }
            return "\(kind) backend: option \(key) (milliseconds) is deprecated; write \(new) in seconds instead"
        }
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
