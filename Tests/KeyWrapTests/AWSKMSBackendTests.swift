// The aws-kms backend against moto's real server with authentication ON (signatures verified, IAM policies
// enforced): round trips by key id / alias / ARN, token binding, tampering, wrong credentials, a body changed
// after signing, least-privilege policy, missing key, rotation, profiles, the vault on top, concurrency.
import CryptoCore
import Foundation
import Synchronization
@testable import KeyWrap
@testable import TokenStore
import TestSupport
import XCTest

final class AWSKMSBackendTests: XCTestCase {
    nonisolated(unsafe) static var moto: MotoFixture?
    nonisolated(unsafe) static var startError: Error?

    override class func setUp() {
        super.setUp()
        do { moto = try MotoFixture() } catch { startError = error }
    }

    override class func tearDown() {
        moto?.stop()
        moto = nil
        super.tearDown()
    }

    private func fixture() throws -> MotoFixture {
        try requireServer(Self.moto, startError: Self.startError)
    }

    private func userEnv(_ m: MotoFixture) -> [String: String] {
        ["AWS_ACCESS_KEY_ID": m.setup.user_access_key, "AWS_SECRET_ACCESS_KEY": m.setup.user_secret_key]
    }

    private func backend(_ m: MotoFixture, keyID: String? = nil, env: [String: String]? = nil, options: [String: String] = [:],
                         afterSigning: (@Sendable (inout HTTPRequest) -> Void)? = nil) throws -> AWSKMSBackend {
        try makeAWSBackend(endpoint: m.endpoint, keyID: keyID ?? m.setup.key_id, environment: env ?? userEnv(m),
                           options: options, afterSigning: afterSigning)
    }

    private func root() throws -> SecretBytes { try SecretBytes.random(count: 32) }

    // MARK: Round trips

    func testRoundTripByKeyIDAliasAndARN() throws {
        let m = try fixture()
        for keyID in [m.setup.key_id, m.setup.alias, m.setup.key_arn, "arn:aws:kms:us-east-1:\(m.setup.account):\(m.setup.alias)"] {
            let b = try backend(m, keyID: keyID)
            let key = try root()
            let blob = try b.wrap(key, context: awsTestContext)
            XCTAssertEqual(blob[0], AWSKMSBackend.blobVersion)
            XCTAssertEqual(AWSKMSBackend.parse(blob)?.keyARN, m.setup.key_arn, "blob records the key ARN (\(keyID))")
            key.withUnsafeBytes { k in XCTAssertFalse(blob.containsSubsequence(Array(k)), "root key not in clear in the blob") }
            let back = try b.unwrap(blob, context: awsTestContext)
            XCTAssertEqual(back, key, keyID)
            XCTAssertEqual(b.statistics.kms.requests, 2, "one Encrypt, one Decrypt")
            XCTAssertEqual(b.descriptor.kind, "aws-kms")
            XCTAssertEqual(b.descriptor.keyID, "region=us-east-1")
            XCTAssertEqual(b.descriptor.keyVersion, "key=\(keyID)")
        }
    }

    func testWrapsAreRandomizedAndIndependent() throws {
        let m = try fixture()
        let b = try backend(m)
        let key = try root()
        let a = try b.wrap(key, context: awsTestContext), c = try b.wrap(key, context: awsTestContext)
        XCTAssertNotEqual(a, c)
        XCTAssertEqual(try b.unwrap(a, context: awsTestContext), key)
        XCTAssertEqual(try b.unwrap(c, context: awsTestContext), key)
    }

    func testHealthCheckIsAnEncryptDecryptRoundTrip() throws {
        let m = try fixture()
        let b = try backend(m)
        try b.checkHealth()
        XCTAssertEqual(b.statistics.kms.requests, 2)
        XCTAssertEqual(b.statistics.healthChecks, 1)
        let report = b.healthReport()
        XCTAssertTrue(report.isHealthy, "\(report)")
        XCTAssertEqual(report.checks.map(\.name), ["credentials", "kms:Encrypt", "kms:Decrypt"])
        XCTAssertEqual(report.credentialsSource, "environment")
        let text = "\(report)"
        XCTAssertTrue(text.contains("****\(m.setup.user_access_key.suffix(4))") && text.contains(m.setup.key_arn), text)
        XCTAssertFalse(text.contains(m.setup.user_access_key) || text.contains(m.setup.user_secret_key), text)
        // Least privilege without Decrypt: the report says which step failed and why.
        let encryptOnly = try backend(m, env: ["AWS_ACCESS_KEY_ID": m.setup.encrypt_only_access_key,
                                               "AWS_SECRET_ACCESS_KEY": m.setup.encrypt_only_secret_key])
        let bad = encryptOnly.healthReport()
        XCTAssertFalse(bad.isHealthy)
        XCTAssertEqual(bad.checks.map(\.passed), [true, true, false])
        guard case .policyViolation? = bad.error else { return XCTFail("\(bad)") }
        XCTAssertTrue("\(bad)".contains("NOT healthy"))
    }

    // MARK: Binding and tampering

    func testBlobIsBoundToTheTokenByEncryptionContext() throws {
        let m = try fixture()
        let b = try backend(m)
        let blob = try b.wrap(try root(), context: awsTestContext)
        b.resetStatistics()
        for other in [WrapContext(tokenSerial: "0123456789ABCDEF", tokenUUID: "ffffffffffffffffffffffffffffffff"),
                      WrapContext(tokenSerial: "FEDCBA9876543210", tokenUUID: awsTestContext.tokenUUID)] {
            expectAWSError("integrityFailure") { _ = try b.unwrap(blob, context: other) }
        }
        XCTAssertEqual(b.statistics.kms.requests, 2, "KMS itself refused both (InvalidCiphertextException), once each")
    }

    func testTamperedBlobsAreRefused() throws {
        let m = try fixture()
        let b = try backend(m)
        let blob = try b.wrap(try root(), context: awsTestContext)
        b.resetStatistics()
        // Frame damage is caught before any KMS call.
        for bad in [[UInt8](), Array(blob.prefix(10)), [2] + blob.dropFirst(), blob + [0]] {
            expectAWSError("integrityFailure") { _ = try b.unwrap(bad, context: awsTestContext) }
        }
        XCTAssertEqual(b.statistics.kms.requests, 0)
        // A flipped ciphertext byte: KMS refuses. A flipped mac byte: KMS decrypts, our mac refuses.
        guard let parsed = AWSKMSBackend.parse(blob) else { return XCTFail("parse") }
        let ctOffset = 1 + 2 + parsed.keyARN.utf8.count + 2 + parsed.ciphertext.count / 2
        var flippedCT = blob; flippedCT[ctOffset] ^= 0x01
        expectAWSError("integrityFailure") { _ = try b.unwrap(flippedCT, context: awsTestContext) }
        var flippedMAC = blob; flippedMAC[blob.count - 1] ^= 0x80
        expectAWSError("integrityFailure") { _ = try b.unwrap(flippedMAC, context: awsTestContext) }
        // Another key's ARN in the frame: refused (KMS: IncorrectKeyException / our KeyId check / mac).
        var frame = BlobWriter(version: AWSKMSBackend.blobVersion)
        try frame.append(field: Array(m.setup.key2_arn.utf8))
        try frame.append(field: parsed.ciphertext)
        let other = frame.bytes + blob.suffix(32)
        XCTAssertThrowsError(try b.unwrap(other, context: awsTestContext))
    }

    // MARK: Authentication (moto verifies every signature)

    func testWrongSecretIsRefusedWithoutLeakingIt() throws {
        let m = try fixture()
        let wrongSecret = "WRONG-secret-\(UUID().uuidString)"
        let b = try backend(m, env: ["AWS_ACCESS_KEY_ID": m.setup.user_access_key, "AWS_SECRET_ACCESS_KEY": wrongSecret])
        let message = expectAWSError("authenticationFailed") { _ = try b.wrap(try self.root(), context: awsTestContext) }
        XCTAssertTrue(message.contains("SignatureDoesNotMatch"), message)
        XCTAssertFalse(message.contains(wrongSecret), message)
        XCTAssertEqual(b.statistics.kms.requests, 1, "authentication failures are not retried")
        XCTAssertThrowsError(try b.checkHealth())
    }

    func testUnknownAccessKeyIsRefused() throws {
        let m = try fixture()
        let b = try backend(m, env: ["AWS_ACCESS_KEY_ID": "AKIAUNKNOWNUNKNOWN00", "AWS_SECRET_ACCESS_KEY": "x"])
        let message = expectAWSError("authenticationFailed") { _ = try b.wrap(try self.root(), context: awsTestContext) }
        XCTAssertTrue(message.contains("InvalidClientTokenId"), message)
    }

    func testBodyChangedAfterSigningIsRefused() throws {
        let m = try fixture()
        let control = try backend(m)
        _ = try control.wrap(try root(), context: awsTestContext)   // the same request unmodified works
        // Sign one body, send another: the KeyId in the JSON is swapped for the second key after signing.
        let key1 = Array(m.setup.key_id.utf8), key2 = Array(m.setup.key2_id.utf8)
        let tampering = try backend(m, afterSigning: { request in
            if let r = request.body.firstRange(of: key1) { request.body.replaceSubrange(r, with: key2) }
        })
        let message = expectAWSError("authenticationFailed") { _ = try tampering.wrap(try self.root(), context: awsTestContext) }
        XCTAssertTrue(message.contains("SignatureDoesNotMatch"), message)
        // Same with an EncryptionContext edited after signing.
        let serial = Array(awsTestContext.tokenSerial.utf8)
        let contextTampering = try backend(m, afterSigning: { request in
            if let r = request.body.firstRange(of: serial) { request.body.replaceSubrange(r, with: Array("AAAAAAAAAAAAAAAA".utf8)) }
        })
        expectAWSError("authenticationFailed") { _ = try contextTampering.wrap(try self.root(), context: awsTestContext) }
    }

    func testSessionCredentialsFromEnvironment() throws {
        let m = try fixture()
        let s = m.setup.sessions[0]
        let b = try backend(m, env: ["AWS_ACCESS_KEY_ID": s.access_key, "AWS_SECRET_ACCESS_KEY": s.secret_key, "AWS_SESSION_TOKEN": s.session_token])
        let key = try root()
        XCTAssertEqual(try b.unwrap(try b.wrap(key, context: awsTestContext), context: awsTestContext), key)
        // A wrong session token for the same key id is refused.
        let bad = try backend(m, env: ["AWS_ACCESS_KEY_ID": s.access_key, "AWS_SECRET_ACCESS_KEY": s.secret_key, "AWS_SESSION_TOKEN": "forged"])
        expectAWSError("authenticationFailed") { _ = try bad.wrap(key, context: awsTestContext) }
        // A token with a line break never becomes a header (no header injection): refused before sending.
        let injected = try backend(m, env: ["AWS_ACCESS_KEY_ID": s.access_key, "AWS_SECRET_ACCESS_KEY": s.secret_key,
                                            "AWS_SESSION_TOKEN": s.session_token + "\r\nX-Injected: 1"])
        let message = expectAWSError("misconfigured") { _ = try injected.wrap(key, context: awsTestContext) }
        XCTAssertFalse(message.contains(s.session_token), message)
        XCTAssertEqual(injected.statistics.kms.requests, 1, "counted as attempted, but nothing was sent")
    }

    // MARK: Policy and key state

    func testLeastPrivilegePolicyIsEnforced() throws {
        let m = try fixture()
        let full = try backend(m)
        let blob = try full.wrap(try root(), context: awsTestContext)
        let encryptOnly = try backend(m, env: ["AWS_ACCESS_KEY_ID": m.setup.encrypt_only_access_key,
                                               "AWS_SECRET_ACCESS_KEY": m.setup.encrypt_only_secret_key])
        XCTAssertNoThrow(try encryptOnly.wrap(try root(), context: awsTestContext))
        let message = expectAWSError("policyViolation") { _ = try encryptOnly.unwrap(blob, context: awsTestContext) }
        XCTAssertTrue(message.contains("AccessDenied") && message.contains("kms:Decrypt"), message)
        expectAWSError("policyViolation") { try encryptOnly.checkHealth() }
    }

    func testMissingKeyIsKeyNotFound() throws {
        let m = try fixture()
        let b = try backend(m, keyID: "11111111-2222-3333-4444-555555555555")
        let message = expectAWSError("keyNotFound") { _ = try b.wrap(try self.root(), context: awsTestContext) }
        XCTAssertTrue(message.contains("NotFoundException"), message)
        XCTAssertEqual(b.statistics.kms.requests, 1)
    }

    // MARK: Rotation

    func testRotationToANewKeyKeepsOldBlobsReadable() throws {
        let m = try fixture()
        let old = try backend(m)
        let key = try root()
        let oldBlob = try old.wrap(key, context: awsTestContext)
        let rotated = try old.withKeyID(m.setup.key2_arn)
        XCTAssertEqual(rotated.descriptor.keyID, old.descriptor.keyID, "stable across rotation (TokenVault checks it)")
        XCTAssertNotEqual(rotated.descriptor.keyVersion, old.descriptor.keyVersion)
        let newBlob = try rotated.wrap(key, context: awsTestContext)
        XCTAssertEqual(AWSKMSBackend.parse(newBlob)?.keyARN, m.setup.key2_arn)
        XCTAssertEqual(try rotated.unwrap(oldBlob, context: awsTestContext), key, "decrypt uses the ARN in the blob")
        XCTAssertEqual(try old.unwrap(newBlob, context: awsTestContext), key)
        XCTAssertThrowsError(try old.withKeyID("arn:aws:kms:eu-west-1:123456789012:key/abc"), "other region refused")
    }

    func testTokenVaultOnAWSKMS() throws {
        let m = try fixture()
        let b = try backend(m)
        let dir = FileManager.default.temporaryDirectory.path + "/tg-awsvault-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = try TokenDatabase(directory: dir, indexedAttributes: [0x3])
        let vault = try TokenVault(database: db, kdfLog2N: TokenVault.minimumKDFLog2N)
        let so = Array("so-pin-1234".utf8)
        try vault.initialize(soPIN: so, label: Array("aws".utf8), backend: b)
        XCTAssertEqual(b.statistics.kms.requests, 1, "C_InitToken: one Encrypt")
        let keys = try vault.login(role: .so, pin: so, backend: b)
        XCTAssertEqual(b.statistics.kms.requests, 2, "login: one Decrypt")
        XCTAssertEqual(try db.tokenRecord().backend, b.descriptor)
        // Rotation to the second key: one Encrypt; the next login decrypts under key 2.
        let rotated = try b.withKeyID(m.setup.key2_id)
        try vault.rewrapRootKey(using: keys, backend: rotated)
        XCTAssertEqual(rotated.statistics.kms.requests, 3)
        let again = try vault.login(role: .so, pin: so, backend: b)
        XCTAssertEqual(again.rootKey, keys.rootKey)
        // A wrong PIN is refused before any KMS call.
        let before = b.statistics.kms.requests
        XCTAssertThrowsError(try vault.login(role: .so, pin: Array("wrong".utf8), backend: b))
        XCTAssertEqual(b.statistics.kms.requests, before)
    }

    // MARK: Credentials sources

    func testSharedCredentialsAndConfigFilesWithProfiles() throws {
        let m = try fixture()
        let dir = FileManager.default.temporaryDirectory.path + "/tg-awsprof-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let credentials = """
            # comment
            [default]
            aws_access_key_id = AKIAWRONGWRONGWRONG0
            aws_secret_access_key = wrong

            [tg]
            aws_access_key_id = \(m.setup.user_access_key)
            aws_secret_access_key=\(m.setup.user_secret_key)
            """
        let config = """
            [default]
            region = us-east-1
            [profile fromconfig]
            region = us-east-1
            aws_access_key_id = \(m.setup.user_access_key)
            aws_secret_access_key = \(m.setup.user_secret_key)
            """
        XCTAssertTrue(FileManager.default.createFile(atPath: dir + "/credentials", contents: Data(credentials.utf8), attributes: [.posixPermissions: 0o600]))
        XCTAssertTrue(FileManager.default.createFile(atPath: dir + "/config", contents: Data(config.utf8), attributes: [.posixPermissions: 0o600]))
        let files = ["AWS_SHARED_CREDENTIALS_FILE": dir + "/credentials", "AWS_CONFIG_FILE": dir + "/config",
                     "AWS_EC2_METADATA_DISABLED": "true"]
        let key = try root()
        // Explicit profile in the configuration (environment credentials are then ignored, as in the SDKs).
        var env = files
        env["AWS_ACCESS_KEY_ID"] = "AKIAENVENVENVENVENV0"; env["AWS_SECRET_ACCESS_KEY"] = "env"
        let byProfile = try backend(m, env: env, options: ["profile": "tg"])
        XCTAssertEqual(try byProfile.unwrap(try byProfile.wrap(key, context: awsTestContext), context: awsTestContext), key)
        // AWS_PROFILE selecting a [profile x] section of the config file; region from that file too.
        var viaEnv = files; viaEnv["AWS_PROFILE"] = "fromconfig"
        let cfg = try AWSKMSBackendConfig(options: ["key_id": m.setup.key_id, "endpoint": m.endpoint], environment: fakeEnvironment(viaEnv))
        XCTAssertEqual(cfg.region, "us-east-1")
        let byConfig = try backend(m, env: viaEnv)
        XCTAssertNoThrow(try byConfig.wrap(key, context: awsTestContext))
        // The default profile holds wrong keys: refused by moto.
        expectAWSError("authenticationFailed") { _ = try self.backend(m, env: files).wrap(key, context: awsTestContext) }
        // A named profile that does not exist is a configuration error naming the files, not a secret.
        let msg = expectAWSError("misconfigured") { _ = try self.backend(m, env: files, options: ["profile": "nope"]).wrap(key, context: awsTestContext) }
        XCTAssertTrue(msg.contains("nope") && msg.contains(dir), msg)
        XCTAssertFalse(msg.contains(m.setup.user_secret_key))
        // No credentials anywhere and IMDS disabled: a clear error.
        let none = ["AWS_SHARED_CREDENTIALS_FILE": dir + "/absent", "AWS_CONFIG_FILE": dir + "/absent", "AWS_EC2_METADATA_DISABLED": "true"]
        expectAWSError("authenticationFailed") { _ = try self.backend(m, env: none).wrap(key, context: awsTestContext) }
    }

    // MARK: Concurrency

    func testConcurrentUnwraps() throws {
        let m = try fixture()
        let b = try backend(m)
        let key = try root()
        let blob = try b.wrap(key, context: awsTestContext)
        let failures = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            if (try? b.unwrap(blob, context: awsTestContext)) != key { failures.add(1, ordering: .relaxed) }
        }
        XCTAssertEqual(failures.load(ordering: .relaxed), 0)
        XCTAssertEqual(b.statistics.unwraps, 8)
    }

    // MARK: Configuration (no server needed)

    func testConfigurationParsing() throws {
        let env = fakeEnvironment([:])
        let c = try AWSKMSBackendConfig(options: ["key_id": "arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"], environment: env)
        XCTAssertEqual(c.region, "eu-central-1")
        XCTAssertEqual(c.endpoint, "https://kms.eu-central-1.amazonaws.com")
        XCTAssertEqual(c.http.connectTimeout, AWSKMSBackendConfig.httpDefaults.connectTimeout)
        XCTAssertEqual(c.http.retry.maxAttempts, AWSKMSBackendConfig.httpDefaults.retry.maxAttempts)
        XCTAssertEqual(try AWSKMSBackendConfig(options: c.options, environment: env), c, "options round trip")
        let cn = try AWSKMSBackendConfig(options: ["key_id": "alias/x", "region": "cn-north-1"], environment: env)
        XCTAssertEqual(cn.endpoint, "https://kms.cn-north-1.amazonaws.com.cn")
        // Endpoint precedence: option > AWS_ENDPOINT_URL_KMS > AWS_ENDPOINT_URL.
        let both = fakeEnvironment(["AWS_ENDPOINT_URL_KMS": "https://kms.example:8443", "AWS_ENDPOINT_URL": "https://all.example", "AWS_REGION": "us-west-2"])
        XCTAssertEqual(try AWSKMSBackendConfig(options: ["key_id": "k1"], environment: both).endpoint, "https://kms.example:8443")
        XCTAssertEqual(try AWSKMSBackendConfig(options: ["key_id": "k1"], environment: both).region, "us-west-2")
        XCTAssertEqual(try AWSKMSBackendConfig(options: ["key_id": "k1"], environment: fakeEnvironment(["AWS_ENDPOINT_URL": "https://all.example/", "AWS_DEFAULT_REGION": "eu-west-3"])).endpoint, "https://all.example")
        XCTAssertEqual(try AWSKMSBackendConfig(options: ["key_id": "k1", "endpoint": "https://opt.example"], environment: both).endpoint, "https://opt.example")
        let tuned = try AWSKMSBackendConfig(options: ["key_id": "k1", "region": "us-east-1", "connect_timeout": "0.25", "timeout": "0.9",
                                                      "max_attempts": "2", "ca_bundle": "/etc/ssl/certs/ca-certificates.crt"], environment: env)
        XCTAssertEqual(tuned.http.totalTimeout, .milliseconds(900))
        XCTAssertEqual(tuned.http.connectTimeout, .milliseconds(250))
        XCTAssertEqual(tuned.http.retry.maxAttempts, 2)
        XCTAssertEqual(tuned.http.caBundlePath, "/etc/ssl/certs/ca-certificates.crt")
        // The millisecond spellings of before are read the same, and named for a deprecation log line.
        let old = ["key_id": "k1", "region": "us-east-1", "connect_timeout_ms": "250", "timeout_ms": "900", "retry_base_delay_ms": "0",
                   "max_attempts": "2", "ca_bundle": "/etc/ssl/certs/ca-certificates.crt"]
        let legacy = try AWSKMSBackendConfig(options: old, environment: env)
        XCTAssertEqual(legacy.http.totalTimeout, tuned.http.totalTimeout)
        XCTAssertEqual(legacy.http.connectTimeout, tuned.http.connectTimeout)
        XCTAssertEqual(legacy.http.retry.baseDelay, .zero)
        let notices = BackendConfiguration(kind: "aws-kms", options: old).deprecationNotices
        XCTAssertEqual(notices.count, 3, "\(notices)")
        XCTAssertTrue(notices.allSatisfy { $0.contains("deprecated") }, "\(notices)")
        XCTAssertTrue(notices.contains { $0.contains("timeout_ms") && $0.contains("write timeout in seconds") }, "\(notices)")
        XCTAssertEqual(BackendConfiguration(kind: "aws-kms", options: c.options).deprecationNotices, [], "options write the new spellings")

        let refused: [([String: String], String)] = [
            ([:], "key_id"),
            (["key_id": "k1"], "no region"),
            (["key_id": "k1", "region": "us-east-1", "secret_access_key": "x"], "not accepted"),
            (["key_id": "k1", "region": "us-east-1", "colour": "blue"], "unknown option"),
            (["key_id": "k1", "region": "us-east-1", "endpoint": "http://kms.example.com"], "https"),
            (["key_id": "k1", "region": "us-east-1", "endpoint": "kms.example.com"], "not an http"),
            (["key_id": "k1", "region": "us-east-1", "timeout_ms": "0"], "timeout_ms"),
            (["key_id": "k1", "region": "us-east-1", "timeout": "0"], "timeout must be seconds"),
            (["key_id": "k1", "region": "us-east-1", "timeout": "1", "timeout_ms": "1000"], "not both"),
            (["key_id": "k1", "region": "us-east-1", "max_attempts": "11"], "max_attempts"),
            (["key_id": "k1", "region": "us-east-1", "ca_bundle": "relative.pem"], "absolute"),
            (["key_id": "k1", "region": "us-east-1", "ca_bundle": "/nonexistent/ca.pem"], "cannot be read"),
            (["key_id": "arn:aws:kms:us-east-1:111122223333:key/abc123", "region": "eu-west-1"], "differs"),
            (["key_id": "arn:aws:s3:::bucket"], "malformed"),
            (["key_id": "alias/aws/ebs", "region": "us-east-1"], "AWS managed"),
            (["key_id": "a b", "region": "us-east-1"], "invalid characters"),
            (["key_id": "k1", "region": "US_EAST"], "malformed"),
        ]
        for (options, fragment) in refused {
            let m = expectAWSError("misconfigured") { _ = try AWSKMSBackendConfig(options: options, environment: env) }
            XCTAssertTrue(m.contains(fragment), "\(options): \(m)")
        }
        XCTAssertThrowsError(try AWSKMSBackend(configuration: BackendConfiguration(kind: "local", options: ["key_id": "k"])))
        // Registered in the factory under its kind; building it makes no network call.
        XCTAssertTrue(BackendFactory.kinds.contains("aws-kms"))
        let made = try BackendFactory.make(BackendConfiguration(kind: "aws-kms", options: ["key_id": "alias/tg", "region": "eu-west-1"]))
        XCTAssertEqual(made.descriptor, BackendDescriptor(kind: "aws-kms", keyID: "region=eu-west-1", keyVersion: "key=alias/tg"))
        expectAWSError("misconfigured") { _ = try BackendFactory.make(BackendConfiguration(kind: "aws-kms", options: [:])) }
    }
}

extension Array where Element == UInt8 {
    func containsSubsequence(_ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return false }
        for i in 0...(count - needle.count) where self[i..<(i + needle.count)].elementsEqual(needle) { return true }
        return false
    }
}
