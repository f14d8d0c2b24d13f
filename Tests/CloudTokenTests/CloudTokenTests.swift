// Issue #5, module level: a token on each cloud backend (aws-kms via moto behind the fault proxy, gcp-kms and
// azure-keyvault via the project's HTTPS fakes), driven only through the Module API.
//  1. C_InitToken + C_InitPIN + C_Login, an AES and an N2HE token key; then 1,000 C_Encrypt calls per key
//     make zero KMS calls — counted by the server, not by the client.
//  2. Faults at C_Login (server down, 429 then success, 500 ×3 then success, an answer slower than the
//     timeout, an expired token, a malformed body): the login succeeds or fails with the CK_RV the backend's
//     docs give (ErrorMap: KeyWrapError.removed → CKR_DEVICE_REMOVED, every other → CKR_DEVICE_ERROR), within
//     the documented time bound; afterwards the stored objects are unchanged and decrypt once the backend is back.
// Servers run on 127.0.0.1 only and are stopped by PID; a server that cannot start fails the test.
import CP11Kit
import Foundation
import JSON
@testable import Cryptoki
@testable import KeyWrap
import TestSupport
import XCTest

final class CloudTokenTests: XCTestCase {
    static let encryptCalls = 1000

    static func int64s(_ v: [Int64]) -> [UInt8] { v.flatMap { x in withUnsafeBytes(of: x.littleEndian) { Array($0) } } }
    static let n2hePlaintext = int64s([1, 2, 42, 65535])

    /// What the fault phase compares against.
    struct Baseline {
        var aes: [UInt8]
        var n2he: [UInt8]
        var snapshot: [String: [AttributeQueryResult]]
    }

    /// Init, keys, round trips, then 1,000 C_Encrypt per key with `kmsCalls` (server-side) unchanged.
    func establish(_ token: CloudToken, kmsCalls: () throws -> Int, file: StaticString = #filePath, line: UInt = #line) throws -> Baseline {
        let beforeInit = try kmsCalls()
        try token.initialize()
        let afterLogin = try kmsCalls()
        XCTAssertGreaterThan(afterLogin, beforeInit, "\(token.kind): C_InitToken + C_Login reach the KMS (the counter counts)", file: file, line: line)
        let keys = try token.generateKeys()
        let aesCT = try token.encrypt(keys.aes, CloudToken.aesMechanism)
        let n2heCT = try token.encrypt(keys.n2he, CloudToken.n2heMechanism, Self.n2hePlaintext)
        XCTAssertEqual(try token.decrypt(keys.aes, CloudToken.aesMechanism, aesCT), CloudToken.plaintext, file: file, line: line)
        // The key decrypts each seed once (seeded-once): the round trip uses its own ciphertext, and the baseline's
        // is decrypted for the first time after the faults (verifyUnchanged).
        let n2heCheck = try token.encrypt(keys.n2he, CloudToken.n2heMechanism, Self.n2hePlaintext)
        XCTAssertEqual(try token.decrypt(keys.n2he, CloudToken.n2heMechanism, n2heCheck), Self.n2hePlaintext, file: file, line: line)

        let before = try kmsCalls()
        let start = ContinuousClock.now
        var outputBytes = 0
        for _ in 0..<Self.encryptCalls {
            outputBytes += try token.encrypt(keys.aes, CloudToken.aesMechanism).count
        }
        for _ in 0..<Self.encryptCalls {
            outputBytes += try token.encrypt(keys.n2he, CloudToken.n2heMechanism, Self.n2hePlaintext).count
        }
        let elapsed = ContinuousClock.now - start
        let during = try kmsCalls() - before
        XCTAssertEqual(during, 0, "\(token.kind): C_Encrypt after login must not call the KMS", file: file, line: line)
        XCTAssertEqual(outputBytes, Self.encryptCalls * (aesCT.count + n2heCT.count), file: file, line: line)
        report("\(token.kind) encrypts=\(Self.encryptCalls)xAES-CBC-PAD+\(Self.encryptCalls)xN2HE-LWE2 kms_calls=\(during) wall_ms=\(elapsed.milliseconds) init+login_kms_calls=\(afterLogin - beforeInit)")

        let snapshot = try token.snapshot()
        XCTAssertEqual(snapshot.count, 2, "\(token.kind): the two token keys", file: file, line: line)
        token.logoutIfNeeded()
        return Baseline(aes: aesCT, n2he: n2heCT, snapshot: snapshot)
    }

    /// The backend is back: log in, same objects with the same attribute values, and yesterday's ciphertexts decrypt.
    func verifyUnchanged(_ token: CloudToken, _ baseline: Baseline, file: StaticString = #filePath, line: UInt = #line) throws {
        token.logoutIfNeeded()
        try token.login()
        let now = try token.snapshot()
        XCTAssertEqual(now.count, baseline.snapshot.count, "\(token.kind): object count", file: file, line: line)
        XCTAssertEqual(now, baseline.snapshot, "\(token.kind): attribute values", file: file, line: line)
        XCTAssertEqual(try token.decrypt(try token.handle(label: "cloud-aes"), CloudToken.aesMechanism, baseline.aes), CloudToken.plaintext,
                       file: file, line: line)
        XCTAssertEqual(try token.decrypt(try token.handle(label: "cloud-n2he"), CloudToken.n2heMechanism, baseline.n2he), Self.n2hePlaintext,
                       file: file, line: line)
        let info = try token.module.tokenInfo(0)
        XCTAssertEqual(info.flags & (CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_LOCKED), 0, "\(token.kind): backend faults spent no PIN retry",
                       file: file, line: line)
        token.logoutIfNeeded()
    }

    // MARK: aws-kms (moto with authentication on, behind the fault proxy; credentials from the proxy's fake IMDS)

    func testAWSKMSToken() throws {
        let moto = try MotoFixture()
        defer { moto.stop() }
        var proxy = try FaultServer(upstream: moto.endpoint)
        defer { proxy.stop() }
        let sessions = moto.setup.sessions
        XCTAssertGreaterThanOrEqual(sessions.count, 2)
        let later = AWSTime.now() + 6 * 3600
        func imds(_ list: [MotoSetup.Session]) -> [String: Any] {
            ["role": "tg-kms-role", "credentials": list.map {
                ["AccessKeyId": $0.access_key, "SecretAccessKey": $0.secret_key, "Token": $0.session_token,
                 "Expiration": AWSTime.iso8601(later)]
            }]
        }
        try proxy.post("/__control/imds", imds([sessions[0], sessions[1]]))

        // The module reads credentials from the process environment: instance metadata only (the fault proxy).
        let saved = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_EC2_METADATA_DISABLED",
                     "AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_ENDPOINT_URL",
                     "AWS_ENDPOINT_URL_KMS", "AWS_REGION", "AWS_DEFAULT_REGION"].map { ($0, ProcessInfo.processInfo.environment[$0]) }
        defer { for (k, v) in saved { if let v { setenv(k, v, 1) } else { unsetenv(k) } } }
        for (k, _) in saved { unsetenv(k) }
        setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", proxy.endpoint, 1)
        setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/tg/credentials", 1)
        setenv("AWS_CONFIG_FILE", "/nonexistent/tg/config", 1)

        let options = ["key_id": moto.setup.key_id, "region": "us-east-1", "endpoint": proxy.endpoint, "max_attempts": "4",
                       "timeout": "1", "connect_timeout": "0.5", "retry_base_delay": "0.02", "retry_max_delay": "0.2"]
        let token = try CloudToken(kind: "aws-kms", options: options)
        let baseline = try establish(token, kmsCalls: { try proxy.stats().kms })
        XCTAssertEqual(try proxy.stats().imdsFetches, 1, "one instance-metadata fetch, cached since")

        // docs/backends/aws-kms.md: one KMS call ≤ max_attempts × timeout + Σ backoff ceilings; an
        // ExpiredTokenException repeats the call once after re-resolving credentials (instance metadata:
        // ≤ 3 requests × 2 attempts × 2 s).
        let w = try worstCaseCall("aws-kms", options)
        let bound = w * 2 + .seconds(12)

        try token.loginUnderFault("429 then success", expect: .succeeds, bound: bound) { try proxy.faults(["429"]) }
        try token.loginUnderFault("500 x3 then success", expect: .succeeds, bound: bound) { try proxy.faults(["500", "500", "500"]) }
        try token.loginUnderFault("slower than timeout", expect: .succeeds, bound: bound) { try proxy.faults(["slow:2500"]) }
        // Every attempt slower than the timeout: the documented failure, no sooner than the attempts take.
        let slowAll = try token.loginUnderFault("slower than timeout, every attempt", expect: .fails(CKR_DEVICE_ERROR), bound: bound) {
            try proxy.faults(Array(repeating: "slow:1500", count: 4))
        }
        XCTAssertGreaterThanOrEqual(slowAll, .seconds(4), "four attempts of 1 s each")
        // aws-kms.md Errors: "200 with a body that is not the expected JSON | no retry | .unreachable | CKR_DEVICE_ERROR".
        try token.loginUnderFault("malformed body", expect: .fails(CKR_DEVICE_ERROR), bound: bound) { try proxy.faults(["malformed"]) }
        let fetchesBefore = try proxy.stats().imdsFetches
        try token.loginUnderFault("expired token", expect: .succeeds, bound: bound) {
            try proxy.faults([])
            try proxy.post("/__control/expired_tokens", ["tokens": [sessions[0].session_token]])
        }
        XCTAssertEqual(try proxy.stats().imdsFetches, fetchesBefore + 1, "ExpiredTokenException → credentials re-fetched once")

        // Server down: the proxy stopped (connection refused on every attempt), then restarted on its port.
        let port = proxy.server.port
        try token.loginUnderFault("server down", expect: .fails(CKR_DEVICE_ERROR), bound: bound) { proxy.stop() }
        proxy = try FaultServer(upstream: moto.endpoint, port: port)
        try proxy.post("/__control/imds", imds([sessions[1]]))
        try proxy.post("/__control/expired_tokens", ["tokens": [sessions[0].session_token]])

        try verifyUnchanged(token, baseline)
        // The one login after the restart: one Decrypt; the rest reads and writes the anchor tag (docs/backends/aws-kms.md).
        let byTarget = try proxy.stats().byTarget
        XCTAssertEqual(byTarget["TrentService.Decrypt"], 1, "the one login after the restart: \(byTarget)")
        XCTAssertEqual(Set(byTarget.keys), ["TrentService.Decrypt", "TrentService.ListResourceTags", "TrentService.TagResource"])
        XCTAssertGreaterThanOrEqual(byTarget["TrentService.TagResource"] ?? 0, 1, "the login's state change reaches the tag")
        report("aws-kms login_after_restart \(byTarget.sorted { $0.key < $1.key }.map { "\($0.key.dropFirst(13))=\($0.value)" }.joined(separator: " "))")
    }

    // MARK: gcp-kms (fake Cloud KMS over HTTPS, service-account credentials)

    func testGCPKMSToken() throws {
        let server = try FakeCloudServer("gcp/fake_gcp_kms.py")
        defer { server.stop() }
        let options = ["key": server.string("key_name"), "credentials_file": server.string("sa_key"), "endpoint": server.base,
                       "ca_bundle": server.ca, "timeout": "1", "connect_timeout": "1", "max_attempts": "4",
                       "retry_base_delay": "0.05", "retry_max_delay": "0.2"]
        let token = try CloudToken(kind: "gcp-kms", options: options)
        // "requests" counts every request the server saw, the stats request itself included.
        let baseline = try establish(token, kmsCalls: { try Self.backendRequests(server) })

        // docs/backends/gcp-kms.md: the token fetch and the API call each ≤ worstCaseDuration, a 401 repeats the pair once.
        let w = try worstCaseCall("gcp-kms", options)
        let bound = w * 4
        try runCloudFaults(token, server, bound: bound, malformed: .succeeds)  // gcp-kms.md: malformed → retried

        // Server down: the same store on a host whose endpoint refuses connections (fresh module, no cached state).
        var down = options
        down["endpoint"] = "https://127.0.0.1:\(TestServers.closedPort())"
        let downConfig = try token.writeSibling("down", options: down)
        try token.loginUnderFault("server down", expect: .fails(CKR_DEVICE_ERROR), bound: bound) { try token.reload(configPath: downConfig) }
        try token.reload()
        try verifyUnchanged(token, baseline)
    }

    // MARK: azure-keyvault (fake Key Vault + Entra ID token endpoint over HTTPS, client-secret credentials)

    func testAzureKeyVaultToken() throws {
        let server = try FakeCloudServer("azure/fake_azure_keyvault.py")
        defer { server.stop() }
        let options = ["vault_url": server.string("vault_url"), "key_name": server.string("key_name").isEmpty ? "tg-root" : server.string("key_name"),
                       "tenant_id": server.string("tenant"), "client_id": server.string("client_id"),
                       "client_secret_file": server.string("client_secret_file"), "authority_host": server.string("vault_url"),
                       "ca_bundle": server.ca, "timeout": "1", "connect_timeout": "1", "max_attempts": "4",
                       "retry_base_delay": "0.05", "retry_max_delay": "0.2"]
        let token = try CloudToken(kind: "azure-keyvault", options: options)
        let baseline = try establish(token, kmsCalls: { try Self.backendRequests(server) })

        // docs/backends/azure-keyvault.md: at most three rounds (request, challenge/token) per call.
        let w = try worstCaseCall("azure-keyvault", options)
        let bound = w * 6
        try runCloudFaults(token, server, bound: bound, malformed: .succeeds)  // azure-keyvault.md: malformed → retried

        // Server down: the vault URL is part of the recorded key id, so another endpoint would be refused as
        // misconfigured before any call; instead every connection is closed without an answer (all attempts).
        try token.loginUnderFault("server down", expect: .fails(CKR_DEVICE_ERROR), bound: bound) {
            try server.faults(Array(repeating: ["drop": true, "target": "any"], count: 8))
        }
        try server.faults([])
        try verifyUnchanged(token, baseline)
    }

    // MARK: Rollback of the store and the anchor directory together (docs/threat-model.md)

    /// Whoever can write the token's files copies an older store and anchor directory back: the CryptoKey's labels
    /// keep the newer state, so the login is refused (CKR_DEVICE_ERROR, as StoreTamperTests asserts for the local
    /// anchor). With the labels removed too — what needs permission to update the key — the same copy logs in.
    func testGCPKMSLabelsRefuseACopiedBackStoreAndAnchorDirectory() throws {
        let server = try FakeCloudServer("gcp/fake_gcp_kms.py")
        defer { server.stop() }
        let options = ["key": server.string("key_name"), "credentials_file": server.string("sa_key"), "endpoint": server.base,
                       "ca_bundle": server.ca, "timeout": "2", "connect_timeout": "1", "max_attempts": "2",
                       "retry_base_delay": "0.05"]
        let token = try CloudToken(kind: "gcp-kms", options: options)
        try token.initialize()
        token.logoutIfNeeded()
        let fm = FileManager.default
        let (store, anchors) = (token.root + "/store", token.root + "/anchors")
        try token.withModuleClosed {
            try fm.copyItem(atPath: store, toPath: token.root + "/saved-store")
            try fm.copyItem(atPath: anchors, toPath: token.root + "/saved-anchors")
        }
        try token.login()
        _ = try token.generateKeys()       // two token objects: the state moves on
        token.logoutIfNeeded()
        try token.withModuleClosed {
            for (live, saved) in [(store, "/saved-store"), (anchors, "/saved-anchors")] {
                try fm.removeItem(atPath: live)
                try fm.copyItem(atPath: token.root + saved, toPath: live)
            }
        }
        let backend = try GCPKMSBackend(configuration: BackendConfiguration(kind: "gcp-kms", options: options))
        XCTAssertEqual(try backend.labels().keys.filter { $0.hasPrefix("tg-anchor-") }.count, 5, "the key's labels hold the anchor")
        var rv: CK_RV = CKR_OK
        do { try token.login() } catch let e as CKRError { rv = e.rv }
        XCTAssertEqual(rvName(rv), rvName(CKR_DEVICE_ERROR), "the copied-back store and anchor directory are refused")
        XCTAssertThrowsError(try token.handle(label: "cloud-aes"))

        // Rolling the labels back as well (here: removing them) needs cloudkms.cryptoKeys.update; then the copy is
        // not detected — the other half of the claim.
        var body = JSONWriter()
        body.beginObject()
        body.key("labels"); body.stringMap([:])
        body.endObject()
        let name = backend.configuration.keyName
        _ = try backend.request("PATCH", "\(server.base)/v1/\(name)?updateMask=labels", "cryptoKeys.patch", on: name, body.take()) { $0["name"] }
        try token.login()
        XCTAssertThrowsError(try token.handle(label: "cloud-aes"), "the old store, without the later keys")
        token.logoutIfNeeded()
    }

    // MARK: Shared by the two fakes

    /// Requests the fake served, minus the stats requests of this helper (one per call).
    static func backendRequests(_ server: FakeCloudServer) throws -> Int {
        statsCalls[ObjectIdentifier(server), default: 0] += 1
        return (try server.stats()["requests"] ?? -1_000_000) - statsCalls[ObjectIdentifier(server), default: 0]
    }
    nonisolated(unsafe) static var statsCalls: [ObjectIdentifier: Int] = [:]

    func runCloudFaults(_ token: CloudToken, _ server: FakeCloudServer, bound: Duration, malformed: LoginOutcome,
                        file: StaticString = #filePath, line: UInt = #line) throws {
        func clear() throws { try server.faults([]) }
        try token.loginUnderFault("429 then success", expect: .succeeds, bound: bound, file: file, line: line) {
            try server.faults([["status": 429]])
        }
        try clear()
        try token.loginUnderFault("500 x3 then success", expect: .succeeds, bound: bound, file: file, line: line) {
            try server.faults(Array(repeating: ["status": 500], count: 3))
        }
        try clear()
        try token.loginUnderFault("slower than timeout", expect: .succeeds, bound: bound, file: file, line: line) {
            try server.faults([["delay": 2.5]])
        }
        try clear()
        let slowAll = try token.loginUnderFault("slower than timeout, every attempt", expect: .fails(CKR_DEVICE_ERROR), bound: bound,
                                                file: file, line: line) {
            try server.faults(Array(repeating: ["delay": 1.5], count: 4))
        }
        XCTAssertGreaterThanOrEqual(slowAll, .seconds(4), "\(token.kind): four attempts of 1 s each", file: file, line: line)
        try clear()
        try token.loginUnderFault("malformed body", expect: malformed, bound: bound, file: file, line: line) {
            try server.faults([["malformed": true]])
        }
        try clear()
        let issued = try server.stats()["token_issued"] ?? 0
        try token.loginUnderFault("expired token", expect: .succeeds, bound: bound, file: file, line: line) {
            try server.control("/_test/revoke", [:])
        }
        XCTAssertEqual(try server.stats()["token_issued"], issued + 1, "\(token.kind): the revoked token was replaced once",
                       file: file, line: line)
        XCTAssertEqual(try server.stats()["faults_pending"], 0, file: file, line: line)
    }
}
