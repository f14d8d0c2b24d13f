// libcurl transport for the cloud backends (DESIGN §5): synchronous easy interface, one handle per request
// (nothing survives between calls, so nothing to repair after fork), no background threads of our own.
//
// Every request: TLS ≥ 1.2 with peer and host verification (CURLOPT_SSL_VERIFYPEER=1, VERIFYHOST=2), the
// configured CA bundle or the system store, connect and total timeouts, CURLOPT_NOSIGNAL=1 (we live inside
// host processes: libcurl must not touch SIGALRM/SIGPIPE handlers), no redirects, http/https only, proxy from
// the usual environment variables (libcurl's default; bypassed for loopback and metadata endpoints), a bounded
// response size. Plain http only to loopback (tests) and, for `metadataService` requests, to the instance
// metadata addresses.
//
// Name resolution: with Debian's libcurl (threaded resolver) a DNS lookup runs on a short-lived resolver
// thread that libcurl joins before curl_easy_perform returns; the timeouts cover it.
import CCurl
import CryptoCore
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Synchronous HTTP client. Thread-safe: every `send` uses its own curl handle.
public final class HTTPClient: Sendable {
    public let configuration: HTTPClientConfiguration
    private let attempts = Atomic<Int>(0)
    private let sleeper: @Sendable (Duration) -> Void

    /// `sleeper` is how backoff waits (tests may pass a recorder); the default sleeps the calling thread.
    public init(configuration: HTTPClientConfiguration = HTTPClientConfiguration(),
                sleeper: @escaping @Sendable (Duration) -> Void = HTTPClient.sleep) {
        self.configuration = configuration
        self.sleeper = sleeper
    }

    /// Requests actually handed to libcurl by this client (each retry counts), since creation or
    /// `resetAttemptCount()`.
    public var attemptCount: Int { attempts.load(ordering: .relaxed) }

    public func resetAttemptCount() { attempts.store(0, ordering: .relaxed) }

    /// Sleeps the calling thread (nanosleep, EINTR-safe, bounded by the duration).
    @Sendable public static func sleep(_ duration: Duration) {
        let ms = duration.milliseconds
        guard ms > 0 else { return }
        var request = timespec(tv_sec: Int(ms / 1000), tv_nsec: Int(ms % 1000) * 1_000_000)
        var remaining = timespec()
        var rounds = 0
        while nanosleep(&request, &remaining) != 0 && errno == EINTR && rounds < 1000 {
            request = remaining
            rounds += 1
        }
    }

    // MARK: One attempt

    /// Sends one request (no retry). Any HTTP status comes back as a response; transport failures throw
    /// `HTTPError`.
    public func send(_ request: HTTPRequest) throws -> HTTPResponse {
        let target = try Self.validate(request)
        try CurlGlobal.initialize()
        guard let handle = tg_curl_easy_init() else { throw HTTPError.transport("curl_easy_init failed") }
        defer { tg_curl_easy_cleanup(handle) }
        attempts.add(1, ordering: .relaxed)

        let sink = ResponseSink(limit: configuration.maximumResponseBytes)
        var headerList: UnsafeMutablePointer<curl_slist>? = nil
        defer { if let list = headerList { tg_curl_slist_free_all(list) } }
        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)

        var hasContentType = false
        for (name, value) in request.headers {
            if name.lowercased() == "content-type" { hasContentType = true }
            headerList = tg_curl_slist_append(headerList, "\(name): \(value)")
            guard headerList != nil else { throw HTTPError.transport("out of memory building headers") }
        }
        // No "Expect: 100-continue" round trip; no form content type invented by libcurl for bodies.
        headerList = tg_curl_slist_append(headerList, "Expect:")
        if !hasContentType { headerList = tg_curl_slist_append(headerList, "Content-Type:") }
        guard headerList != nil else { throw HTTPError.transport("out of memory building headers") }

        let start = MonotonicInstant.now
        let code: CURLcode = try request.body.withUnsafeBytes { bodyBytes in
            try errorBuffer.withUnsafeMutableBufferPointer { errorBuf in
                var rc = CURLE_OK
                func set(_ result: CURLcode, _ what: String) throws {
                    if result != CURLE_OK && rc == CURLE_OK {
                        rc = result
                        throw HTTPError.invalidRequest("libcurl refused option \(what) (\(String(cString: tg_curl_easy_strerror(result))))")
                    }
                }
                try set(tg_curl_setopt_string(handle, CURLOPT_URL, request.url), "URL")
                try set(tg_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1), "NOSIGNAL")
                try set(tg_curl_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "http,https"), "PROTOCOLS_STR")
                try set(tg_curl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0), "FOLLOWLOCATION")
                try set(tg_curl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 1), "SSL_VERIFYPEER")
                try set(tg_curl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 2), "SSL_VERIFYHOST")
                try set(tg_curl_setopt_long(handle, CURLOPT_SSLVERSION, Int(CURL_SSLVERSION_TLSv1_2)), "SSLVERSION")
                if let ca = configuration.caBundlePath {
                    try set(tg_curl_setopt_string(handle, CURLOPT_CAINFO, ca), "CAINFO")
                }
                try set(tg_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Int(clamping: configuration.connectTimeout.milliseconds)), "CONNECTTIMEOUT_MS")
                try set(tg_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, Int(clamping: configuration.totalTimeout.milliseconds)), "TIMEOUT_MS")
                try set(tg_curl_setopt_string(handle, CURLOPT_USERAGENT, configuration.userAgent), "USERAGENT")
                try set(tg_curl_setopt_off_t(handle, CURLOPT_MAXFILESIZE_LARGE, curl_off_t(configuration.maximumResponseBytes)), "MAXFILESIZE_LARGE")
                if target.bypassProxy {
                    try set(tg_curl_setopt_string(handle, CURLOPT_PROXY, ""), "PROXY")
                }
                try set(tg_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuf.baseAddress), "ERRORBUFFER")
                try set(tg_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, headerList), "HTTPHEADER")

                switch request.method {
                case "GET":
                    try set(tg_curl_setopt_long(handle, CURLOPT_HTTPGET, 1), "HTTPGET")
                case "HEAD":
                    try set(tg_curl_setopt_long(handle, CURLOPT_NOBODY, 1), "NOBODY")
                default:
                    try set(tg_curl_setopt_long(handle, CURLOPT_POST, 1), "POST")
                    try set(tg_curl_setopt_off_t(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(bodyBytes.count)), "POSTFIELDSIZE_LARGE")
                    // A non-NULL pointer even for an empty body, so libcurl never reads from stdin.
                    let empty: StaticString = ""
                    let pointer = bodyBytes.count > 0 ? UnsafeMutableRawPointer(mutating: bodyBytes.baseAddress)
                                                      : UnsafeMutableRawPointer(mutating: empty.utf8Start)
                    try set(tg_curl_setopt_pointer(handle, CURLOPT_POSTFIELDS, pointer), "POSTFIELDS")
                    if request.method != "POST" {
                        try set(tg_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, request.method), "CUSTOMREQUEST")
                    }
                }

                let sinkPointer = Unmanaged.passUnretained(sink).toOpaque()
                try set(tg_curl_setopt_callback(handle, CURLOPT_WRITEFUNCTION, { data, size, count, user in
                    guard let user else { return 0 }
                    let sink = Unmanaged<ResponseSink>.fromOpaque(user).takeUnretainedValue()
                    return sink.appendBody(data, size * count)
                }), "WRITEFUNCTION")
                try set(tg_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, sinkPointer), "WRITEDATA")
                try set(tg_curl_setopt_callback(handle, CURLOPT_HEADERFUNCTION, { data, size, count, user in
                    guard let user else { return 0 }
                    let sink = Unmanaged<ResponseSink>.fromOpaque(user).takeUnretainedValue()
                    return sink.appendHeaderLine(data, size * count)
                }), "HEADERFUNCTION")
                try set(tg_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, sinkPointer), "HEADERDATA")

                return withExtendedLifetime(sink) { tg_curl_easy_perform(handle) }
            }
        }
        let elapsed = MonotonicInstant.now - start

        guard code == CURLE_OK else {
            sink.wipe()
            let detail = errorBuffer.withUnsafeBufferPointer { buf -> String in
                guard let base = buf.baseAddress, base.pointee != 0 else { return "" }
                return String(cString: base)
            }
            let what = "\(request.method) \(HTTPURL.redacted(request.url)) after \(elapsed.milliseconds) ms: "
                + (detail.isEmpty ? String(cString: tg_curl_easy_strerror(code)) : detail)
                + " (curl \(code.rawValue))"
            throw Self.classify(code, what, sink: sink)
        }
        var status = 0
        _ = tg_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return HTTPResponse(status: status, headers: sink.headers, body: sink.takeBody())
    }

    // MARK: Retries

    /// Whether a response is worth retrying by default: 429 or any 5xx.
    public static func isTransientStatus(_ status: Int) -> Bool { status == 429 || (500...599).contains(status) }

    /// Sends with the configured `RetryPolicy`: retries transient transport errors (`HTTPError.isTransient`)
    /// and every response for which `shouldRetry` is true (default: 429 and 5xx; services pass their own
    /// throttling detection, e.g. AWS's ThrottlingException in a 400 body), with bounded exponential backoff
    /// and full jitter, honouring a Retry-After in seconds up to `maxDelay`. Returns the last response (which
    /// may be an error status for the caller to map) or throws the last transport error.
    public func sendWithRetries(_ request: HTTPRequest,
                                shouldRetry: (HTTPResponse) -> Bool = { HTTPClient.isTransientStatus($0.status) }) throws -> HTTPResponse {
        try withRetries(configuration.retry) { _ in
            let response = try send(request)
            return shouldRetry(response) ? .retry(response, retryAfter: Self.retryAfter(response)) : .done(response)
        }
    }

    /// What one attempt of `withRetries` produced.
    public enum AttemptOutcome<T> {
        /// Finished (successfully or with a permanent failure the caller maps).
        case done(T)
        /// Transient: try again if attempts remain; otherwise `T` is returned as the final result.
        case retry(T, retryAfter: Duration?)
    }

    /// Generic retry loop: runs `attempt(n)` (n = 1...maxAttempts). A thrown `HTTPError` that is transient is
    /// retried; any other error ends the loop at once. When attempts run out, the last `.retry` value is
    /// returned, or the last transient error rethrown. Sleeps via the client's sleeper.
    public func withRetries<T>(_ policy: RetryPolicy, _ attempt: (Int) throws -> AttemptOutcome<T>) throws -> T {
        var n = 1
        while true {
            var retryAfter: Duration? = nil
            do {
                switch try attempt(n) {
                case .done(let value):
                    return value
                case .retry(let value, let hint):
                    if n >= policy.maxAttempts { return value }
                    retryAfter = hint
                }
            } catch let error as HTTPError where error.isTransient {
                if n >= policy.maxAttempts { throw error }
            }
            sleeper(policy.delay(beforeRetry: n, retryAfter: retryAfter))
            n += 1
        }
    }

    /// Retry-After in delta-seconds (HTTP-dates are ignored).
    public static func retryAfter(_ response: HTTPResponse) -> Duration? {
        guard let value = response.header("Retry-After"), let seconds = Int(value.trimmingSpaces), seconds >= 0,
              seconds <= 3600 else { return nil }
        return .seconds(seconds)
    }

    // MARK: Validation and error mapping

    struct Target {
        var parts: HTTPURL.Parts
        var bypassProxy: Bool
    }

    static let allowedMethods: Set<String> = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]

    static func validate(_ request: HTTPRequest) throws -> Target {
        guard allowedMethods.contains(request.method) else {
            throw HTTPError.invalidRequest("method '\(request.method)' not supported")
        }
        guard let parts = HTTPURL.parse(request.url) else {
            throw HTTPError.invalidRequest("malformed URL \(HTTPURL.redacted(request.url))")
        }
        let loopback = HTTPURL.isLoopback(host: parts.host)
        let metadata = request.metadataService && HTTPURL.isMetadataService(host: parts.host)
        if parts.scheme == "http" && !loopback && !metadata {
            throw HTTPError.invalidRequest("plain http is refused for \(HTTPURL.redacted(request.url)): use https (http is allowed only to loopback test endpoints)")
        }
        for (name, value) in request.headers {
            let bad = name.isEmpty || name.unicodeScalars.contains(where: { $0 == ":" || $0 == "\r" || $0 == "\n" || $0 == " " || $0 == "\t" })
                || value.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" })
            if bad { throw HTTPError.invalidRequest("header '\(String(name.unicodeScalars.filter { $0.value >= 0x20 && $0.value < 0x7f }))' is malformed") }
            if name.lowercased() == "content-length" || name.lowercased() == "transfer-encoding" {
                throw HTTPError.invalidRequest("header '\(name)' is set by the client")
            }
        }
        return Target(parts: parts, bypassProxy: loopback || metadata)
    }

    static func classify(_ code: CURLcode, _ what: String, sink: ResponseSink) -> HTTPError {
        switch code {
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_CONNECT:
            return .connectionFailed(what)
        case CURLE_OPERATION_TIMEDOUT:
            return .timedOut(what)
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
             CURLE_SSL_ENGINE_NOTFOUND, CURLE_SSL_ENGINE_SETFAILED, CURLE_SSL_CRL_BADFILE, CURLE_SSL_ISSUER_ERROR,
             CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS, CURLE_USE_SSL_FAILED:
            return .tlsFailure(what)
        case CURLE_SSL_CONNECT_ERROR:
            return .tlsFailure(what)
        case CURLE_FILESIZE_EXCEEDED:
            return .responseTooLarge(what)
        case CURLE_WRITE_ERROR where sink.exceeded:
            return .responseTooLarge(what)
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL, CURLE_BAD_FUNCTION_ARGUMENT, CURLE_UNKNOWN_OPTION,
             CURLE_NOT_BUILT_IN:
            return .invalidRequest(what)
        default:
            // SEND_ERROR, RECV_ERROR, GOT_NOTHING, PARTIAL_FILE, weird server replies, HTTP/2 stream resets…
            return .transport(what)
        }
    }
}

/// Accumulates one response. Touched only by the thread inside curl_easy_perform.
final class ResponseSink: @unchecked Sendable {
    let limit: Int
    private(set) var body: [UInt8] = []
    private(set) var headers: [(name: String, value: String)] = []
    private(set) var exceeded = false
    private static let headerLimit = 64 * 1024
    private var headerBytes = 0

    init(limit: Int) { self.limit = limit }

    func appendBody(_ data: UnsafeMutablePointer<CChar>?, _ count: Int) -> Int {
        guard count > 0 else { return 0 }
        guard let data else { return 0 }
        guard body.count + count <= limit else { exceeded = true; return 0 }
        if body.capacity < body.count + count {
            // Grow by copying into a fresh buffer and wiping the old one (bodies may hold key material).
            var grown = [UInt8]()
            grown.reserveCapacity(min(limit, max(body.count + count, body.count * 2, 1024)))
            grown.append(contentsOf: body)
            secureZero(&body)
            body = grown
        }
        data.withMemoryRebound(to: UInt8.self, capacity: count) { body.append(contentsOf: UnsafeBufferPointer(start: $0, count: count)) }
        return count
    }

    func appendHeaderLine(_ data: UnsafeMutablePointer<CChar>?, _ count: Int) -> Int {
        guard let data, count > 0 else { return count }
        headerBytes += count
        guard headerBytes <= Self.headerLimit else { exceeded = true; return 0 }
        let line = data.withMemoryRebound(to: UInt8.self, capacity: count) {
            String(decoding: UnsafeBufferPointer(start: $0, count: count), as: UTF8.self)
        }
        let trimmed = line.trimmingSpaces
        if trimmed.hasPrefix("HTTP/") {
            headers.removeAll()   // a new status line (after 1xx): start over
        } else if let colon = trimmed.firstIndex(of: ":") {
            let name = String(trimmed[trimmed.startIndex..<colon])
            let value = String(trimmed[trimmed.index(after: colon)...]).trimmingSpaces
            headers.append((name: name, value: value))
        }
        return count
    }

    func takeBody() -> [UInt8] {
        let out = body
        body = []
        return out
    }

    func wipe() { secureZero(&body) }
}

/// Loads libcurl and runs curl_global_init, once per process (pthread_once in Sources/CCurl). The outcome is
/// kept for the life of the process, so a failure is not transient: no retry can load the library.
enum CurlGlobal {
    static func initialize() throws {
        let code = tg_curl_global_init()
        guard code == CURLE_OK else {
            let why = String(cString: tg_curl_load_error())
            throw HTTPError.invalidRequest(why.isEmpty ? "curl_global_init failed: \(String(cString: tg_curl_easy_strerror(code)))" : why)
        }
    }
}

extension StringProtocol {
    /// Without leading/trailing spaces, tabs, CR and LF.
    var trimmingSpaces: String {
        var s = Substring(self).unicodeScalars[...]
        let blank: (Unicode.Scalar) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }
        while let f = s.first, blank(f) { s.removeFirst() }
        while let l = s.last, blank(l) { s.removeLast() }
        return String(s)
    }
}
