// Faults between the aws-kms backend and KMS: the fault proxy (Tests/servers/aws/fault_server.py) sits in front
// of moto (authentication on) and injects throttling, 5xx, slow answers, dropped connections, malformed bodies
// and expired session tokens; it also plays the EC2 instance-metadata service. Every wrap/unwrap either
// succeeds or fails with its typed error within the configured bound; the proxy's counters are the server-side
// record of how many KMS calls were made.
import CryptoCore
import Foundation
import Synchronization
@testable import KeyWrap
@testable import TokenStore
import TestSupport
import XCTest

final class AWSKMSFaultTests: XCTestCase {
    nonisolated(unsafe) static var moto: MotoFixture?
    nonisolated(unsafe) static var proxy: FaultServer?
    nonisolated(unsafe) static var startError: Error?

    override class func setUp() {
        super.setUp()
        do {
            let m = try MotoFixture()
            moto = m
            proxy = try FaultServer(upstream: m.endpoint)
        } catch {
            startError = error
        }
    }

    override class func tearDown() {
        proxy?.stop()
        moto?.stop()
        proxy = nil
        moto = nil
        super.tearDown()
    }

    private func servers() throws -> (MotoFixture, FaultServer) {
        let m = try requireServer(Self.moto, startError: Self.startError)
        let p = try requireServer(Self.proxy, startError: Self.startError)
        try p.reset()
        return (m, p)
    }

    private func backend(_ m: MotoFixture, _ p: FaultServer, options: [String: String] = [:], env: [String: String]? = nil,
                         clock: @escaping @Sendable () -> Int64 = AWSTime.now) throws -> AWSKMSBackend {
        try makeAWSBackend(endpoint: p.endpoint, keyID: m.setup.key_id,
                           environment: env ?? ["AWS_ACCESS_KEY_ID": m.setup.user_access_key, "AWS_SECRET_ACCESS_KEY": m.setup.user_secret_key],
                           options: options, clock: clock)
    }

    /// Runs `body`, asserting it ends within the backend's worst case (+1 s scheduling slack).
    private func bounded<T>(_ b: AWSKMSBackend, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> T) rethrows -> T {
        let start = ContinuousClock.now
        defer {
            let elapsed = ContinuousClock.now - start
            XCTAssertLessThan(elapsed, b.configuration.http.worstCaseDuration + .seconds(1), "took \(elapsed)", file: file, line: line)
        }
        return try body()
    }

    // MARK: Transient faults that recover

    func testThrottlingThenSuccess() throws {
        let (m, p) = try servers()
        let b = try backend(m, p)
        try p.faults(["429", "throttle"])   // HTTP 429, then HTTP 400 ThrottlingException
        let key = try SecretBytes.random(count: 32)
        let blob = try bounded(b) { try b.wrap(key, context: awsTestContext) }
        let s = try p.stats()
        XCTAssertEqual(s.kms, 3)
        XCTAssertEqual(s.forwarded, 1)
        XCTAssertEqual(b.statistics.kms.requests, 3)
        XCTAssertEqual(b.statistics.kms.operations, 1)
        XCTAssertEqual(try b.unwrap(blob, context: awsTestContext), key)
    }

    func testServerErrorThreeTimesThenSuccess() throws {
        let (m, p) = try servers()
        let b = try backend(m, p, options: ["max_attempts": "4"])
        try p.faults(["500", "500", "503"])
        let key = try SecretBytes.random(count: 32)
        let blob = try b.wrap(key, context: awsTestContext)
        try p.faults(["500", "500", "500"])
        XCTAssertEqual(try bounded(b) { try b.unwrap(blob, context: awsTestContext) }, key)
        XCTAssertEqual(try p.stats().kms, 8)
        XCTAssertEqual(try p.stats().byTarget["TrentService.Decrypt"], 4)
    }

    func testDroppedConnectionThenSuccess() throws {
        let (m, p) = try servers()
        let b = try backend(m, p)
        try p.faults(["close"])
        XCTAssertNoThrow(try b.wrap(try SecretBytes.random(count: 32), context: awsTestContext))
        XCTAssertEqual(try p.stats().kms, 2)
    }

    func testSlowAnswerTimesOutThenRetrySucceeds() throws {
        let (m, p) = try servers()
        let b = try backend(m, p, options: ["timeout": "0.5", "max_attempts": "2"])
        try p.faults(["slow:3000"])
        let start = ContinuousClock.now
        XCTAssertNoThrow(try b.wrap(try SecretBytes.random(count: 32), context: awsTestContext))
        XCTAssertLessThan(ContinuousClock.now - start, .milliseconds(2500), "did not wait for the slow server")
        XCTAssertEqual(b.statistics.kms.requests, 2)
    }

    // MARK: Faults that persist: typed errors within the bound

    func testPersistentServerErrorIsUnreachableWithServiceCode() throws {
        let (m, p) = try servers()
        let b = try backend(m, p, options: ["max_attempts": "3"])
        try p.faults(["500", "500", "500", "500"])
        let message = bounded(b) { expectAWSError("unreachable") { _ = try b.wrap(try SecretBytes.random(count: 32), context: awsTestContext) } }
        XCTAssertTrue(message.contains("KMSInternalException") && message.contains("injected internal error"), message)
        XCTAssertTrue(message.contains("3 attempts"), message)
        XCTAssertEqual(try p.stats().kms, 3, "exactly max_attempts requests")
        try p.faults(["throttle", "throttle", "throttle"])
        let throttled = bounded(b) { expectAWSError("unreachable") { _ = try b.wrap(try SecretBytes.random(count: 32), context: awsTestContext) } }
        XCTAssertTrue(throttled.contains("ThrottlingException"), throttled)
    }

    func testPersistentSlownessIsUnreachableWithinBound() throws {
        let (m, p) = try servers()
        let b = try backend(m, p, options: ["timeout": "0.4", "max_attempts": "2", "retry_max_delay": "0.1"])
        try p.faults(["slow:5000", "slow:5000"])
        let start = ContinuousClock.now
        let message = expectAWSError("unreachable") { _ = try b.wrap(try SecretBytes.random(count: 32), context: awsTestContext) }
        XCTAssertLessThan(ContinuousClock.now - start, .milliseconds(2000))
        XCTAssertTrue(message.contains("timed out"), message)
    }

    func testMalformedResponseIsATypedError() throws {
        let (m, p) = try servers()
        let b = try backend(m, p)
        try p.faults(["malformed"])
        let message = expectAWSError("unreachable") { _ = try b.wrap(try SecretBytes.random(count: 32), context: awsTestContext) }
        XCTAssertTrue(message.contains("malformed response"), message)
        XCTAssertFalse(message.contains("<html>"), "the body is not echoed: \(message)")
        XCTAssertEqual(try p.stats().kms, 1)
    }

    func testServerDownAtLoginIsBoundedAndLosesNothing() throws {
        let (m, p) = try servers()
        let good = try backend(m, p)
        let dir = FileManager.default.temporaryDirectory.path + "/tg-awsfault-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = try TokenDatabase(directory: dir, indexedAttributes: [0x3])
        let vault = try TokenVault(database: db, kdfLog2N: TokenVault.minimumKDFLog2N)
        let so = Array("so-pin-1234".utf8)
        try vault.initialize(soPIN: so, label: Array("fault".utf8), backend: good)
        let first = try vault.login(role: .so, pin: so, backend: good)

        // Same configuration, but KMS is down (nothing listens on the port): connection refused on every attempt.
        let down = try makeAWSBackend(endpoint: "http://127.0.0.1:\(HTTPClientTests.closedPort())", keyID: m.setup.key_id,
                                      environment: ["AWS_ACCESS_KEY_ID": m.setup.user_access_key, "AWS_SECRET_ACCESS_KEY": m.setup.user_secret_key],
                                      options: ["max_attempts": "3", "connect_timeout": "0.5", "timeout": "1"])
        let start = ContinuousClock.now
        XCTAssertThrowsError(try vault.login(role: .so, pin: so, backend: down)) { e in
            guard case StoreError.backend(.unreachable(let msg))? = e as? StoreError else { return XCTFail("\(e)") }
            XCTAssertTrue(msg.contains("connection failed") && msg.contains("3 attempts"), msg)
        }
        XCTAssertLessThan(ContinuousClock.now - start, down.configuration.http.worstCaseDuration + .seconds(1))
        XCTAssertEqual(down.statistics.kms.requests, 3)
        // The outage counted no PIN failure and changed nothing: KMS back, same root key.
        XCTAssertEqual(try vault.login(role: .so, pin: so, backend: good).rootKey, first.rootKey)
        // During 5xx faults too.
        try p.faults(["500", "500", "500", "500"])
        XCTAssertThrowsError(try vault.login(role: .so, pin: so, backend: good))
        XCTAssertEqual(try vault.login(role: .so, pin: so, backend: good).rootKey, first.rootKey)
    }

    // MARK: Instance metadata credentials

    private func imdsEnvironment(_ p: FaultServer) -> [String: String] {
        ["AWS_EC2_METADATA_SERVICE_ENDPOINT": p.endpoint,
         "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/tg/credentials", "AWS_CONFIG_FILE": "/nonexistent/tg/config"]
    }

    private func imdsDocument(_ s: MotoSetup.Session, expiresAt: Int64) -> [String: String] {
        ["AccessKeyId": s.access_key, "SecretAccessKey": s.secret_key, "Token": s.session_token,
         "Expiration": AWSTime.iso8601(expiresAt)]
    }

    func testExpiredSessionTokenIsRefreshedFromInstanceMetadata() throws {
        let (m, p) = try servers()
        let later = AWSTime.now() + 6 * 3600
        try p.post("/__control/imds", ["role": "tg-kms-role",
                                        "credentials": [imdsDocument(m.setup.sessions[0], expiresAt: later),
                                                        imdsDocument(m.setup.sessions[1], expiresAt: later)]])
        try p.post("/__control/expired_tokens", ["tokens": [m.setup.sessions[0].session_token]])
        let b = try backend(m, p, env: imdsEnvironment(p))
        let key = try SecretBytes.random(count: 32)
        let blob = try bounded(b) { try b.wrap(key, context: awsTestContext) }
        XCTAssertEqual(b.statistics.kms.credentialRefreshes, 1)
        XCTAssertEqual(b.statistics.kms.requests, 2, "ExpiredTokenException, then success with the refreshed token")
        XCTAssertEqual(try p.stats().imdsFetches, 2)
        XCTAssertEqual(b.client.credentials.metadataFetchCount, 2)
        XCTAssertEqual(try b.unwrap(blob, context: awsTestContext), key)
        XCTAssertEqual(try p.stats().imdsFetches, 2, "the refreshed credentials are cached")

        // If the service keeps saying "expired" after the refresh, the failure is typed and bounded.
        try p.post("/__control/expired_tokens", ["tokens": [m.setup.sessions[0].session_token, m.setup.sessions[1].session_token]])
        let message = expectAWSError("authenticationFailed") { _ = try b.wrap(key, context: awsTestContext) }
        XCTAssertTrue(message.contains("ExpiredTokenException"), message)
        XCTAssertFalse(message.contains(m.setup.sessions[1].secret_key) || message.contains(m.setup.sessions[1].session_token))
    }

    func testInstanceCredentialsCachedUntilShortlyBeforeExpiration() throws {
        let (m, p) = try servers()
        let now = AWSTime.now()
        try p.post("/__control/imds", ["role": "tg-kms-role",
                                        "credentials": [imdsDocument(m.setup.sessions[0], expiresAt: now + 3600)]])
        let offset = Atomic<Int64>(0)
        let b = try backend(m, p, env: imdsEnvironment(p), clock: { AWSTime.now() + offset.load(ordering: .relaxed) })
        for _ in 0..<3 { _ = try b.wrap(try SecretBytes.random(count: 32), context: awsTestContext) }
        XCTAssertEqual(try p.stats().imdsFetches, 1, "one metadata fetch for three KMS calls")
        // 4 minutes before expiry (inside the 5-minute margin): refetched before use.
        offset.store(3600 - 240, ordering: .relaxed)
        _ = try b.wrap(try SecretBytes.random(count: 32), context: awsTestContext)
        XCTAssertEqual(try p.stats().imdsFetches, 2)
    }

    func testMetadataServiceRequiresIMDSv2AndFailsClearly() throws {
        let (m, p) = try servers()
        // No role credentials configured: the role document is 404 → a typed authentication error, bounded.
        try p.post("/__control/imds", ["role": "tg-kms-role", "credentials": [] as [String]])
        let b = try backend(m, p, env: imdsEnvironment(p))
        let message = expectAWSError("authenticationFailed") { _ = try b.wrap(try SecretBytes.random(count: 32), context: awsTestContext) }
        XCTAssertTrue(message.contains("instance metadata") && message.contains("404"), message)
        XCTAssertEqual(try p.stats().kms, 0, "no KMS call without credentials")
        // Metadata unreachable: unreachable, not a hang.
        var env = imdsEnvironment(p)
        env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = "http://127.0.0.1:\(HTTPClientTests.closedPort())"
        let start = ContinuousClock.now
        expectAWSError("unreachable") { _ = try self.backend(m, p, env: env).wrap(try SecretBytes.random(count: 32), context: awsTestContext) }
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(6))
    }

    // MARK: Server-side call counting

    func testProxyCountsMatchBackendCounters() throws {
        let (m, p) = try servers()
        let b = try backend(m, p)
        let key = try SecretBytes.random(count: 32)
        let blob = try b.wrap(key, context: awsTestContext)
        for _ in 0..<3 { _ = try b.unwrap(blob, context: awsTestContext) }
        try b.checkHealth()
        let s = try p.stats()
        XCTAssertEqual(s.kms, 6)
        XCTAssertEqual(s.byTarget["TrentService.Encrypt"], 2)
        XCTAssertEqual(s.byTarget["TrentService.Decrypt"], 4)
        XCTAssertEqual(s.kms, b.statistics.kms.requests)
        try p.reset()
        XCTAssertEqual(try p.stats().kms, 0)
    }
}
