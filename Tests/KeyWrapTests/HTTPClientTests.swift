// The shared HTTP layer (Sources/KeyWrap/HTTP) against a real local server (Tests/servers/aws/fault_server.py
// without upstream) and closed ports: request fidelity, plain-http policy, timeouts, retries, bounded failure.
import CryptoCore
import Foundation
import Synchronization
@testable import KeyWrap
import TestSupport
import XCTest

final class HTTPClientTests: XCTestCase {
    nonisolated(unsafe) static var server: FaultServer?
    nonisolated(unsafe) static var startError: Error?

    override class func setUp() {
        super.setUp()
        do { server = try FaultServer() } catch { startError = error }
    }

    override class func tearDown() {
        server?.stop()
        server = nil
        super.tearDown()
    }

    private func fault() throws -> FaultServer {
        let s = try requireServer(Self.server, startError: Self.startError)
        try s.reset()
        return s
    }

    private static func kmsLikeRequest(_ s: FaultServer, body: [UInt8] = Array("{}".utf8)) -> HTTPRequest {
        HTTPRequest(method: "POST", url: s.endpoint + "/",
                    headers: [(name: "Content-Type", value: "application/x-amz-json-1.1"),
                              (name: "X-Amz-Target", value: "TrentService.Encrypt")],
                    body: body)
    }

    /// A loopback port nobody listens on (bound, then closed).
    static func closedPort() -> Int { TestServers.closedPort() }

    // MARK: Pure logic

    func testURLParsingAndRedaction() throws {
        let p = try XCTUnwrap(HTTPURL.parse("https://kms.eu-west-1.amazonaws.com/"))
        XCTAssertEqual(p.scheme, "https"); XCTAssertEqual(p.host, "kms.eu-west-1.amazonaws.com"); XCTAssertNil(p.port)
        XCTAssertEqual(p.path, "/")
        let q = try XCTUnwrap(HTTPURL.parse("HTTP://[::1]:8080/a/b?x=1&y=2"))
        XCTAssertEqual(q.scheme, "http"); XCTAssertEqual(q.host, "::1"); XCTAssertEqual(q.port, 8080)
        XCTAssertEqual(q.path, "/a/b"); XCTAssertEqual(q.query, "x=1&y=2")
        XCTAssertEqual(HTTPURL.parse("https://h")?.path, "/")
        for bad in ["ftp://h/", "https://user:pw@h/", "https://h:0/", "https://h:70000/", "https:///x", "https://h/#f",
                    "https://h/a b", "kms.amazonaws.com", "https://[::1/"] {
            XCTAssertNil(HTTPURL.parse(bad), bad)
        }
        XCTAssertEqual(HTTPURL.redacted("https://h:8443/p?token=secret"), "https://h:8443/p")
        XCTAssertFalse(HTTPURL.redacted("https://h/p?sig=abc").contains("abc"))
        XCTAssertTrue(HTTPURL.isLoopback(host: "127.0.0.1")); XCTAssertTrue(HTTPURL.isLoopback(host: "127.9.8.7"))
        XCTAssertTrue(HTTPURL.isLoopback(host: "::1")); XCTAssertTrue(HTTPURL.isLoopback(host: "LOCALHOST"))
        XCTAssertFalse(HTTPURL.isLoopback(host: "128.0.0.1")); XCTAssertFalse(HTTPURL.isLoopback(host: "127.0.0.1.evil.com"))
        XCTAssertFalse(HTTPURL.isLoopback(host: "169.254.169.254"))
    }

    func testPlainHTTPOnlyToLoopbackOrMetadata() throws {
        let client = HTTPClient()
        for url in ["http://kms.us-east-1.amazonaws.com/", "http://10.0.0.1/", "http://169.254.169.254/latest/api/token"] {
            XCTAssertThrowsError(try client.send(HTTPRequest(method: "GET", url: url))) { e in
                guard case HTTPError.invalidRequest(let m)? = e as? HTTPError else { return XCTFail("\(e)") }
                XCTAssertTrue(m.contains("plain http"), m)
            }
        }
        XCTAssertEqual(client.attemptCount, 0, "refused before any network activity")
        // Metadata requests may use plain http to the metadata addresses only.
        XCTAssertNoThrow(try HTTPClient.validate(HTTPRequest(method: "PUT", url: "http://169.254.169.254/latest/api/token", metadataService: true)))
        XCTAssertNoThrow(try HTTPClient.validate(HTTPRequest(method: "GET", url: "http://metadata.google.internal/x", metadataService: true)))
        XCTAssertThrowsError(try HTTPClient.validate(HTTPRequest(method: "GET", url: "http://10.1.1.1/x", metadataService: true)))
        XCTAssertTrue(try HTTPClient.validate(HTTPRequest(method: "GET", url: "http://127.0.0.1:9/")).bypassProxy)
        XCTAssertFalse(try HTTPClient.validate(HTTPRequest(method: "GET", url: "https://example.com/")).bypassProxy)
    }

    func testMalformedRequestsRefused() {
        let client = HTTPClient()
        let cases: [HTTPRequest] = [
            HTTPRequest(method: "GET", url: "http://127.0.0.1:1/", headers: [(name: "X-A", value: "v\r\nInjected: 1")]),
            HTTPRequest(method: "GET", url: "http://127.0.0.1:1/", headers: [(name: "Bad Name", value: "v")]),
            HTTPRequest(method: "GET", url: "http://127.0.0.1:1/", headers: [(name: "Content-Length", value: "5")]),
            HTTPRequest(method: "TRACE", url: "http://127.0.0.1:1/"),
            HTTPRequest(method: "GET", url: "not a url"),
        ]
        for r in cases {
            XCTAssertThrowsError(try client.send(r)) { e in
                guard case HTTPError.invalidRequest(let m)? = e as? HTTPError else { return XCTFail("\(e)") }
                XCTAssertFalse(m.contains("Injected"), "message must not echo header values: \(m)")
                XCTAssertFalse((e as? HTTPError)?.isTransient ?? true)
            }
        }
        XCTAssertEqual(client.attemptCount, 0)
    }

    func testRetryPolicyIsBoundedWithFullJitter() {
        let p = RetryPolicy(maxAttempts: 50, baseDelay: .milliseconds(100), maxDelay: .milliseconds(1000))
        XCTAssertEqual(p.maxAttempts, RetryPolicy.attemptLimit)
        XCTAssertEqual(RetryPolicy(maxAttempts: 0).maxAttempts, 1)
        XCTAssertEqual(p.ceiling(beforeRetry: 1), .milliseconds(100))
        XCTAssertEqual(p.ceiling(beforeRetry: 2), .milliseconds(200))
        XCTAssertEqual(p.ceiling(beforeRetry: 4), .milliseconds(800))
        XCTAssertEqual(p.ceiling(beforeRetry: 5), .milliseconds(1000))
        XCTAssertEqual(p.ceiling(beforeRetry: 60), .milliseconds(1000), "no overflow for huge exponents")
        var seen = Set<Int64>()
        for _ in 0..<200 {
            let d = p.delay(beforeRetry: 3).milliseconds
            XCTAssertTrue((0...400).contains(d), "\(d)")
            seen.insert(d)
        }
        XCTAssertGreaterThan(seen.count, 20, "delays are jittered")
        // Retry-After raises the floor but never beyond maxDelay.
        XCTAssertEqual(p.delay(beforeRetry: 1, retryAfter: .seconds(30)), .milliseconds(1000))
        XCTAssertGreaterThanOrEqual(p.delay(beforeRetry: 1, retryAfter: .milliseconds(700)).milliseconds, 700)
        XCTAssertEqual(p.worstCaseSleep, .milliseconds(100 + 200 + 400 + 800 + 1000 * 5))
        let c = HTTPClientConfiguration(totalTimeout: .seconds(2), retry: RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(100), maxDelay: .seconds(1)))
        XCTAssertEqual(c.worstCaseDuration, .seconds(6) + .milliseconds(300) + .milliseconds(750))
    }

    // MARK: Against a real server

    func testRequestFidelityHeadersBodyAndMethods() throws {
        let s = try fault()
        try s.faults(["echo", "echo"])
        let body = (0..<300).map { UInt8(truncatingIfNeeded: $0 * 7) }
        var req = Self.kmsLikeRequest(s, body: body)
        req.headers.append((name: "X-Test", value: "a  b"))
        let client = HTTPClient()
        let r = try client.send(req)
        XCTAssertEqual(r.status, 200)
        let doc = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])
        XCTAssertEqual(doc["method"] as? String, "POST")
        XCTAssertEqual(doc["path"] as? String, "/")
        XCTAssertEqual(Data(base64Encoded: doc["body_b64"] as? String ?? "").map { Array($0) }, body)
        let headers = (doc["headers"] as? [[String]] ?? []).map { ($0[0].lowercased(), $0[1]) }
        XCTAssertTrue(headers.contains { $0 == ("x-amz-target", "TrentService.Encrypt") })
        XCTAssertTrue(headers.contains { $0 == ("x-test", "a  b") })
        XCTAssertTrue(headers.contains { $0 == ("content-length", "300") })
        XCTAssertFalse(headers.contains { $0.0 == "expect" }, "no 100-continue round trip")
        XCTAssertEqual(r.header("content-type"), "application/json")
        XCTAssertEqual(client.attemptCount, 1)
        // PUT with an empty body: no invented form content type, Content-Length 0.
        let put = try client.send(HTTPRequest(method: "PUT", url: s.endpoint + "/",
                                              headers: [(name: "X-Amz-Target", value: "TrentService.Decrypt")]))
        let putDoc = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(put.body)) as? [String: Any])
        XCTAssertEqual(putDoc["method"] as? String, "PUT")
        let putHeaders = (putDoc["headers"] as? [[String]] ?? []).map { ($0[0].lowercased(), $0[1]) }
        XCTAssertFalse(putHeaders.contains { $0.0 == "content-type" })
        XCTAssertTrue(putHeaders.contains { $0 == ("content-length", "0") })
        XCTAssertEqual(client.attemptCount, 2)
        XCTAssertFalse("\(req)".contains("a  b"), "request description shows no header values")
        XCTAssertEqual("\(r)".contains("HTTP 200"), true)
    }

    func testThrottlingThenSuccessIsRetriedAndCounted() throws {
        let s = try fault()
        try s.faults(["429", "500", "503"])
        let sleeps = Mutex<[Duration]>([])
        let client = HTTPClient(configuration: HTTPClientConfiguration(retry: RetryPolicy(maxAttempts: 4, baseDelay: .milliseconds(10), maxDelay: .milliseconds(50))),
                                sleeper: { d in sleeps.withLock { $0.append(d) } })
        let r = try client.sendWithRetries(Self.kmsLikeRequest(s))
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(client.attemptCount, 4)
        XCTAssertEqual(try s.stats().kms, 4, "server saw every attempt")
        let recorded = sleeps.withLock { $0 }
        XCTAssertEqual(recorded.count, 3)
        for (i, d) in recorded.enumerated() { XCTAssertLessThanOrEqual(d, .milliseconds(min(50, 10 << i))) }
    }

    func testServiceSpecificThrottlingDetectedByCaller() throws {
        let s = try fault()
        try s.faults(["throttle", "throttle"])   // HTTP 400 with ThrottlingException in the body
        let client = HTTPClient(configuration: HTTPClientConfiguration(retry: RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(5), maxDelay: .milliseconds(10))))
        let plain = try client.sendWithRetries(Self.kmsLikeRequest(s))
        XCTAssertEqual(plain.status, 400, "a 400 is not retried by default")
        XCTAssertEqual(client.attemptCount, 1)
        client.resetAttemptCount()
        let r = try client.sendWithRetries(Self.kmsLikeRequest(s)) { $0.status == 429 || $0.bodyText.contains("ThrottlingException") }
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(client.attemptCount, 2)
    }

    func testExhaustedRetriesReturnLastResponse() throws {
        let s = try fault()
        try s.faults(["500", "500", "500", "500"])
        let client = HTTPClient(configuration: HTTPClientConfiguration(retry: RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(5), maxDelay: .milliseconds(10))))
        let r = try client.sendWithRetries(Self.kmsLikeRequest(s))
        XCTAssertEqual(r.status, 500)
        XCTAssertTrue(r.bodyText.contains("KMSInternalException"))
        XCTAssertEqual(client.attemptCount, 3)
        XCTAssertEqual(try s.stats().kms, 3)
    }

    func testConnectionRefusedIsTransientBoundedAndRetried() throws {
        let port = Self.closedPort()
        let client = HTTPClient(configuration: HTTPClientConfiguration(connectTimeout: .milliseconds(500), totalTimeout: .seconds(1),
                                                                       retry: RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(10), maxDelay: .milliseconds(20))))
        let start = ContinuousClock.now
        XCTAssertThrowsError(try client.sendWithRetries(HTTPRequest(method: "POST", url: "http://127.0.0.1:\(port)/", body: [1, 2, 3]))) { e in
            guard case HTTPError.connectionFailed(let m)? = e as? HTTPError else { return XCTFail("\(e)") }
            XCTAssertTrue(m.contains("127.0.0.1"), m)
            XCTAssertTrue((e as? HTTPError)?.isTransient ?? false)
        }
        XCTAssertEqual(client.attemptCount, 3)
        XCTAssertLessThan(ContinuousClock.now - start, client.configuration.worstCaseDuration)
    }

    func testSlowResponseTimesOutWithinBound() throws {
        let s = try fault()
        try s.faults(["slow:3000"])
        let client = HTTPClient(configuration: HTTPClientConfiguration(connectTimeout: .milliseconds(500), totalTimeout: .milliseconds(400), retry: .none))
        let start = ContinuousClock.now
        XCTAssertThrowsError(try client.sendWithRetries(Self.kmsLikeRequest(s))) { e in
            guard case HTTPError.timedOut? = e as? HTTPError else { return XCTFail("\(e)") }
        }
        let elapsed = ContinuousClock.now - start
        XCTAssertGreaterThanOrEqual(elapsed, .milliseconds(350))
        XCTAssertLessThan(elapsed, .milliseconds(1500), "bounded by the total timeout, not the server's 3 s")
    }

    func testDroppedConnectionIsRetried() throws {
        let s = try fault()
        try s.faults(["close"])
        let client = HTTPClient(configuration: HTTPClientConfiguration(retry: RetryPolicy(maxAttempts: 2, baseDelay: .milliseconds(5), maxDelay: .milliseconds(10))))
        XCTAssertEqual(try client.sendWithRetries(Self.kmsLikeRequest(s)).status, 200)
        XCTAssertEqual(client.attemptCount, 2)
    }

    func testOversizedResponseRefusedNotRetried() throws {
        let s = try fault()
        try s.faults(["big", "big"])
        let client = HTTPClient(configuration: HTTPClientConfiguration(retry: RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(5)),
                                                                       maximumResponseBytes: 64 * 1024))
        XCTAssertThrowsError(try client.sendWithRetries(Self.kmsLikeRequest(s))) { e in
            guard case HTTPError.responseTooLarge? = e as? HTTPError else { return XCTFail("\(e)") }
        }
        XCTAssertEqual(client.attemptCount, 1)
    }

    func testTLSFailureIsNotRetried() throws {
        let s = try fault()
        // https to a plain-http server: the handshake fails; verification is on, so this can never "work".
        let client = HTTPClient(configuration: HTTPClientConfiguration(connectTimeout: .seconds(1), totalTimeout: .seconds(2),
                                                                       retry: RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(5))))
        XCTAssertThrowsError(try client.sendWithRetries(HTTPRequest(method: "GET", url: "https://127.0.0.1:\(s.server.port)/"))) { e in
            guard let h = e as? HTTPError else { return XCTFail("\(e)") }
            XCTAssertFalse(h.isTransient, "\(h)")
        }
        XCTAssertEqual(client.attemptCount, 1)
        // A CA bundle that does not exist is a TLS configuration failure, not a silent fallback.
        let badCA = HTTPClient(configuration: HTTPClientConfiguration(caBundlePath: "/nonexistent/ca.pem", retry: .none))
        XCTAssertThrowsError(try badCA.send(HTTPRequest(method: "GET", url: "https://127.0.0.1:\(s.server.port)/"))) { e in
            XCTAssertFalse((e as? HTTPError)?.isTransient ?? true, "\(e)")
        }
    }

    func testConcurrentSendsShareNothing() throws {
        let s = try fault()
        let client = HTTPClient()
        let failures = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 16) { i in
            do {
                let r = try client.send(Self.kmsLikeRequest(s, body: [UInt8](repeating: UInt8(i), count: i * 10)))
                let doc = try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any]
                if r.status != 200 || doc?["bytes"] as? Int != i * 10 { failures.add(1, ordering: .relaxed) }
            } catch {
                failures.add(1, ordering: .relaxed)
            }
        }
        XCTAssertEqual(failures.load(ordering: .relaxed), 0)
        XCTAssertEqual(client.attemptCount, 16)
        XCTAssertEqual(try s.stats().kms, 16)
    }
}
