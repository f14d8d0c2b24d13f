// The shared HTTP layer of the cloud key-wrapping backends (DESIGN §5): requests, responses, errors, the
// client configuration and the retry policy. The transport is `HTTPClient` (libcurl, synchronous).
//
// Nothing here ever prints a body or a header value: `description` of a request shows the method and the URL
// without its query; of a response, the status and the body length.

/// One HTTP request. Header names are case-insensitive on the wire; order is kept as given.
public struct HTTPRequest: Sendable, Equatable, CustomStringConvertible {
    /// "GET", "POST", "PUT", "DELETE", … (upper case tokens only).
    public var method: String
    /// Absolute URL. `https://` always; `http://` only to a loopback host (127.0.0.0/8, ::1, localhost), or —
    /// when `metadataService` is set — to a cloud instance-metadata endpoint (see `HTTPClient`).
    public var url: String
    /// Header fields in order. Names and values must not contain CR or LF. Do not set Content-Length.
    public var headers: [(name: String, value: String)]
    /// Request body (may hold secrets: callers wipe their copy with `secureZero` when done).
    public var body: [UInt8]
    /// The request goes to an instance-metadata service (AWS IMDS, GCP metadata server, Azure IMDS): plain
    /// http is then also allowed to 169.254.169.254, [fd00:ec2::254] and metadata.google.internal, and no
    /// proxy is used.
    public var metadataService: Bool

    public init(method: String, url: String, headers: [(name: String, value: String)] = [], body: [UInt8] = [],
                metadataService: Bool = false) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.metadataService = metadataService
    }

    /// First value of header `name` (case-insensitive), nil if absent.
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first(where: { $0.name.lowercased() == lower })?.value
    }

    /// Replaces every header `name` (case-insensitive) by one with `value`.
    public mutating func setHeader(_ name: String, _ value: String) {
        let lower = name.lowercased()
        headers.removeAll { $0.name.lowercased() == lower }
        headers.append((name: name, value: value))
    }

    public static func == (lhs: HTTPRequest, rhs: HTTPRequest) -> Bool {
        lhs.method == rhs.method && lhs.url == rhs.url && lhs.body == rhs.body
            && lhs.metadataService == rhs.metadataService
            && lhs.headers.count == rhs.headers.count
            && zip(lhs.headers, rhs.headers).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    /// "POST https://kms.eu-west-1.amazonaws.com/" — never headers, body or query string.
    public var description: String { "\(method) \(HTTPURL.redacted(url))" }
}

/// One HTTP response (the final one: 1xx interim responses are dropped).
public struct HTTPResponse: Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    /// Header fields of the final response, in order; names as sent by the server.
    public var headers: [(name: String, value: String)]
    /// Response body (may hold secrets, e.g. a KMS Decrypt result: wipe it with `secureZero` when done).
    public var body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// First value of header `name` (case-insensitive), nil if absent.
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first(where: { $0.name.lowercased() == lower })?.value
    }

    public var isSuccess: Bool { (200..<300).contains(status) }

    /// The body as UTF-8 text (lossy). Only for non-secret bodies such as error documents.
    public var bodyText: String { String(decoding: body, as: UTF8.self) }

    public static func == (lhs: HTTPResponse, rhs: HTTPResponse) -> Bool {
        lhs.status == rhs.status && lhs.body == rhs.body && lhs.headers.count == rhs.headers.count
            && zip(lhs.headers, rhs.headers).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    /// "HTTP 200 (123 bytes)" — never the body.
    public var description: String { "HTTP \(status) (\(body.count) bytes)" }
}

/// Transport-level failures (no HTTP response was received). HTTP error statuses are not errors at this level:
/// they come back as an `HTTPResponse` for the caller (which knows the service's error format) to map.
public enum HTTPError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The request itself is not acceptable: malformed URL, plain http to a non-loopback host, a header with
    /// CR/LF, an unreadable CA bundle; or this host cannot send any request (libcurl.so.4 missing). Not transient.
    case invalidRequest(String)
    /// Name resolution or TCP connect failed (refused, unreachable). Transient.
    case connectionFailed(String)
    /// The connect or total timeout expired. Transient.
    case timedOut(String)
    /// TLS handshake or certificate verification failed. Not transient (a configuration or attack problem).
    case tlsFailure(String)
    /// The connection broke while sending or receiving, or the server sent nothing. Transient.
    case transport(String)
    /// The response body exceeded `HTTPClientConfiguration.maximumResponseBytes`. Not transient.
    case responseTooLarge(String)

    /// Whether retrying the same request may succeed.
    public var isTransient: Bool {
        switch self {
        case .connectionFailed, .timedOut, .transport: return true
        case .invalidRequest, .tlsFailure, .responseTooLarge: return false
        }
    }

    public var message: String {
        switch self {
        case .invalidRequest(let m), .connectionFailed(let m), .timedOut(let m), .tlsFailure(let m),
             .transport(let m), .responseTooLarge(let m):
            return m
        }
    }

    public var description: String {
        switch self {
        case .invalidRequest(let m): return "invalid HTTP request: \(m)"
        case .connectionFailed(let m): return "connection failed: \(m)"
        case .timedOut(let m): return "timed out: \(m)"
        case .tlsFailure(let m): return "TLS failure: \(m)"
        case .transport(let m): return "transport error: \(m)"
        case .responseTooLarge(let m): return "response too large: \(m)"
        }
    }
}

/// Bounded exponential backoff with full jitter: before retry n (n = 1 for the second attempt) sleep a uniformly
/// random time in [0, min(maxDelay, baseDelay · 2^(n-1))]. A server's Retry-After (seconds) raises the floor,
/// still capped at maxDelay.
public struct RetryPolicy: Sendable, Equatable {
    /// Hard upper bound on `maxAttempts`.
    public static let attemptLimit = 10

    /// Total attempts including the first, 1...10 (clamped).
    public var maxAttempts: Int
    public var baseDelay: Duration
    public var maxDelay: Duration

    public init(maxAttempts: Int = 4, baseDelay: Duration = .milliseconds(100), maxDelay: Duration = .seconds(2)) {
        self.maxAttempts = min(max(1, maxAttempts), Self.attemptLimit)
        self.baseDelay = max(.zero, baseDelay)
        self.maxDelay = max(.zero, maxDelay)
    }

    public static let `default` = RetryPolicy()
    /// One attempt, no retry.
    public static let none = RetryPolicy(maxAttempts: 1)

    /// The backoff cap before retry `retry` (1-based), without jitter.
    public func ceiling(beforeRetry retry: Int) -> Duration {
        let exponent = min(max(0, retry - 1), 30)
        let base = baseDelay.milliseconds
        let capped = min(maxDelay.milliseconds, base.multipliedReportingOverflow(by: 1 << exponent).overflow
                         ? maxDelay.milliseconds : base << exponent)
        return .milliseconds(max(0, capped))
    }

    /// A full-jitter delay before retry `retry` (1-based); `retryAfter` (server hint) is a floor, capped at maxDelay.
    public func delay(beforeRetry retry: Int, retryAfter: Duration? = nil) -> Duration {
        let ceiling = ceiling(beforeRetry: retry).milliseconds
        var ms = ceiling > 0 ? Int64.random(in: 0...ceiling) : 0
        if let hint = retryAfter { ms = max(ms, min(hint.milliseconds, maxDelay.milliseconds)) }
        return .milliseconds(ms)
    }

    /// The longest the sleeps between attempts can add up to.
    public var worstCaseSleep: Duration {
        var total: Int64 = 0
        if maxAttempts > 1 { for r in 1..<maxAttempts { total += ceiling(beforeRetry: r).milliseconds } }
        return .milliseconds(total)
    }
}

/// Settings of one `HTTPClient`.
public struct HTTPClientConfiguration: Sendable, Equatable {
    /// TCP + TLS connect bound per attempt (CURLOPT_CONNECTTIMEOUT_MS).
    public var connectTimeout: Duration
    /// Whole-request bound per attempt, connect included (CURLOPT_TIMEOUT_MS).
    public var totalTimeout: Duration
    /// PEM file of trusted CAs (CURLOPT_CAINFO); nil = the system store. Verification is always on.
    public var caBundlePath: String?
    /// Used by `sendWithRetries`.
    public var retry: RetryPolicy
    /// Responses with a larger body fail with `.responseTooLarge` (default 1 MiB).
    public var maximumResponseBytes: Int
    public var userAgent: String

    public init(connectTimeout: Duration = .seconds(3), totalTimeout: Duration = .seconds(10),
                caBundlePath: String? = nil, retry: RetryPolicy = .default,
                maximumResponseBytes: Int = 1 << 20, userAgent: String = "tensorguard-pkcs11/1") {
        self.connectTimeout = max(.milliseconds(1), connectTimeout)
        self.totalTimeout = max(.milliseconds(1), totalTimeout)
        self.caBundlePath = caBundlePath
        self.retry = retry
        self.maximumResponseBytes = max(1, maximumResponseBytes)
        self.userAgent = userAgent
    }

    /// An upper bound on the wall time of one `sendWithRetries` call (every attempt hitting the total timeout,
    /// every backoff at its ceiling), plus slack for scheduling.
    public var worstCaseDuration: Duration {
        totalTimeout * retry.maxAttempts + retry.worstCaseSleep + .milliseconds(250) * retry.maxAttempts
    }
}

extension Duration {
    /// Whole milliseconds (rounded down, saturating).
    public var milliseconds: Int64 {
        let (s, atto) = components
        let (ms, overflow) = s.multipliedReportingOverflow(by: 1000)
        if overflow { return s < 0 ? Int64.min : Int64.max }
        return ms + atto / 1_000_000_000_000_000
    }
}

/// URL helpers (no Foundation): scheme/host/port split, loopback test, redaction for messages.
public enum HTTPURL {
    public struct Parts: Sendable, Equatable {
        public var scheme: String
        /// Host without brackets, lower-cased.
        public var host: String
        public var port: Int?
        /// Path (starting with "/", "/" if empty), without query or fragment.
        public var path: String
        /// Query without "?" ("" if none).
        public var query: String
    }

    /// Splits an absolute http(s) URL. nil if malformed, if it carries user info, or has a fragment.
    public static func parse(_ url: String) -> Parts? {
        let lowered = url.prefix(8).lowercased()
        let scheme: String
        if lowered.hasPrefix("https://") { scheme = "https" } else if lowered.hasPrefix("http://") { scheme = "http" } else { return nil }
        let rest = url.dropFirst(scheme.count + 3)
        guard !rest.contains("#"), !rest.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7f }) else { return nil }
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let authority = rest[rest.startIndex..<authorityEnd]
        guard !authority.isEmpty, !authority.contains("@") else { return nil }
        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return nil }
                portText = after.dropFirst()
            }
        } else {
            let pieces = authority.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            host = pieces[0]
            if pieces.count == 2 { portText = pieces[1] }
        }
        guard !host.isEmpty else { return nil }
        var port: Int?
        if let p = portText {
            guard let value = Int(p), (1...65535).contains(value) else { return nil }
            port = value
        }
        let pathAndQuery = rest[authorityEnd...]
        var path = Substring("/")
        var query = Substring("")
        if let q = pathAndQuery.firstIndex(of: "?") {
            if q != pathAndQuery.startIndex { path = pathAndQuery[pathAndQuery.startIndex..<q] }
            query = pathAndQuery[pathAndQuery.index(after: q)...]
        } else if !pathAndQuery.isEmpty {
            path = pathAndQuery
        }
        return Parts(scheme: scheme, host: host.lowercased(), port: port, path: String(path), query: String(query))
    }

    /// 127.0.0.0/8, ::1, localhost.
    public static func isLoopback(host: String) -> Bool {
        let h = host.lowercased()
        if h == "localhost" || h == "::1" || h == "0:0:0:0:0:0:0:1" { return true }
        let octets = h.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4, octets.allSatisfy({ UInt8($0) != nil }) else { return false }
        return octets[0] == "127"
    }

    /// Instance-metadata endpoints reachable only from inside the instance (plain http is their norm).
    public static func isMetadataService(host: String) -> Bool {
        ["169.254.169.254", "fd00:ec2::254", "metadata.google.internal"].contains(host.lowercased())
    }

    /// scheme://host[:port]/path — the query (which may carry tokens for some services) dropped.
    public static func redacted(_ url: String) -> String {
        guard let p = parse(url) else { return "<malformed URL>" }
        let host = p.host.contains(":") ? "[\(p.host)]" : p.host
        return "\(p.scheme)://\(host)\(p.port.map { ":\($0)" } ?? "")\(p.path)"
    }
}
