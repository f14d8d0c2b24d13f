import CryptoCore
import Foundation
import Synchronization
@testable import KeyWrap
import TestSupport
import XCTest

/// The gcp-kms backend against Tests/servers/gcp/fake_gcp_kms.py (real AES-GCM, CRC32C, RS256 JWT checks).
final class GCPKMSBackendTests: XCTestCase {
    var server: FakeCloudServer!

    override func setUpWithError() throws {
        server = try FakeCloudServer("gcp/fake_gcp_kms.py")
    }

    override func tearDown() {
        server?.stop()
        server = nil
    }

    var keyName: String { server.string("key_name") }

    func options(_ extra: [String: String] = [:]) -> [String: String] {
        var o = ["key": keyName, "credentials_file": server.string("sa_key"), "endpoint": server.base,
                 "ca_bundle": server.ca, "timeout": "2", "connect_timeout": "1", "max_attempts": "4",
                 "retry_base_delay": "0.05", "retry_max_delay": "0.2"]
        for (k, v) in extra { o[k] = v }
        return o
    }

    func backend(_ extra: [String: String] = [:]) throws -> GCPKMSBackend {
        try GCPKMSBackend(configuration: BackendConfiguration(kind: "gcp-kms", options: options(extra)))
    }

    // MARK: configuration

    func testConfiguration() throws {
        let c = try GCPKMSConfig(options: ["key": "projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/3",
                                           "credentials_file": "/etc/tg/sa.json", "timeout": "2.5"], environment: { _ in nil })
        XCTAssertEqual(c.keyName, "projects/p/locations/l/keyRings/r/cryptoKeys/k")
        XCTAssertEqual(c.keyVersion, "3")
        XCTAssertEqual(c.credentials, .serviceAccount(.file("/etc/tg/sa.json")))
        XCTAssertEqual(c.http.http.totalTimeout, .milliseconds(2500))
        XCTAssertEqual(c.endpoint, GCPKMSConfig.defaultEndpoint)
        let m = try GCPKMSConfig(options: ["key": "projects/p/locations/l/keyRings/r/cryptoKeys/k"],
                                 environment: { $0 == "GCE_METADATA_HOST" ? "127.0.0.1:8080" : nil })
        XCTAssertEqual(m.credentials, .metadataServer(host: "127.0.0.1:8080"))
        XCTAssertTrue(BackendFactory.kinds.contains("gcp-kms"))
        for (bad, fragment) in [
            (["credentials_file": "/x"], "'key'"),
            (["key": "projects/p/keyRings/r"], "is not projects/"),
            (["key": "projects/p/locations/l/keyRings/r/cryptoKeys/k", "private_key": "-----BEGIN"], "inline credentials"),
            (["key": "projects/p/locations/l/keyRings/r/cryptoKeys/k", "kee": "x"], "unknown option 'kee'"),
            (["key": "projects/p/locations/l/keyRings/r/cryptoKeys/k", "credentials_file": "/a", "credentials_env": "E"], "not both"),
            (["key": "projects/p/locations/l/keyRings/r/cryptoKeys/k", "credentials_file": "rel.json"], "absolute"),
            (["key": "projects/p/locations/l/keyRings/r/cryptoKeys/k", "timeout": "forever"], "timeout"),
            (["key": "projects/p/locations/l/keyRings/r/cryptoKeys/k", "max_attempts": "99"], "max_attempts"),
        ] as [([String: String], String)] {
            XCTAssertThrowsError(try GCPKMSConfig(options: bad, environment: { _ in nil }), "\(bad)") { e in
                guard case KeyWrapError.misconfigured(let m)? = e as? KeyWrapError else { return XCTFail("\(e)") }
                XCTAssertTrue(m.contains(fragment), "\(m) lacks \(fragment)")
                XCTAssertFalse(m.contains("-----BEGIN"))
            }
        }
    }

    func testCRC32CKnownAnswer() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8]()), 0)
    }

    // MARK: round trip

    func testRoundTripWithServiceAccountTokenCached() throws {
        let b = try backend()
        let root = try SecretBytes.random(count: 32)
        let blob = try b.wrap(root, context: cloudContext)
        XCTAssertEqual(blob.first, 1)
        XCTAssertNil(RS256.find(root.unsafeCopyToArray(), in: blob, from: 0), "root key in clear in the blob")
        XCTAssertEqual(try b.unwrap(blob, context: cloudContext), root)
        XCTAssertEqual(try b.unwrap(blob, context: cloudContext), root)
        let s = try server.stats()
        XCTAssertEqual(s["token_issued"], 1, "token must be cached across calls")
        XCTAssertEqual(s["encrypt_ok"], 1)
        XCTAssertEqual(s["decrypt_ok"], 2)
        XCTAssertEqual(b.statistics.tokenFetches, 1)
        XCTAssertEqual(b.descriptor, BackendDescriptor(kind: "gcp-kms", keyID: keyName, keyVersion: "primary"))
        try b.checkHealth()
    }

    func testWrongContextAndTamperedBlobRefused() throws {
        let b = try backend()
        let root = try SecretBytes.random(count: 32)
        let blob = try b.wrap(root, context: cloudContext)
        XCTAssertThrowsError(try b.unwrap(blob, context: cloudOtherContext)) { XCTAssertEqual($0 as? KeyWrapError, .integrityFailure) }
        var tampered = blob
        tampered[tampered.count - 5] ^= 0x01
        XCTAssertThrowsError(try b.unwrap(tampered, context: cloudContext)) { XCTAssertEqual($0 as? KeyWrapError, .integrityFailure) }
        let before = try server.stats()["decrypt"] ?? 0
        for bad in [[], [1], Array(blob.dropLast()), [2] + blob.dropFirst()] as [[UInt8]] {
            XCTAssertThrowsError(try b.unwrap(bad, context: cloudContext)) { XCTAssertEqual($0 as? KeyWrapError, .integrityFailure) }
        }
        XCTAssertEqual(try server.stats()["decrypt"] ?? 0, before, "malformed blobs must not reach the service")
    }

    func testRotationOfPrimaryVersionAndOntoNewKey() throws {
        let b = try backend()
        let root = try SecretBytes.random(count: 32)
        let v1 = try b.wrap(root, context: cloudContext)
        try server.control("/_test/rotate", ["name": keyName])
        let v2 = try b.wrap(root, context: cloudContext)
        XCTAssertEqual(GCPKMSBackend.parseBlob(v1)?.0, keyName + "/cryptoKeyVersions/1")
        XCTAssertEqual(GCPKMSBackend.parseBlob(v2)?.0, keyName + "/cryptoKeyVersions/2")
        XCTAssertEqual(try b.unwrap(v1, context: cloudContext), root)
        XCTAssertEqual(try b.unwrap(v2, context: cloudContext), root)
        // Pinned version.
        let pinned = try backend(["key": keyName + "/cryptoKeyVersions/1"])
        XCTAssertEqual(pinned.descriptor.keyVersion, "1")
        XCTAssertEqual(GCPKMSBackend.parseBlob(try pinned.wrap(root, context: cloudContext))?.0, keyName + "/cryptoKeyVersions/1")
        // A new key: its blob names it, and the old blob still names the old key.
        let newKey = "projects/tg-test/locations/global/keyRings/tg-ring/cryptoKeys/tg-root-2027"
        try server.control("/_test/keys", ["name": newKey])
        let moved = try b.withKey(newKey)
        XCTAssertEqual(moved.descriptor.keyID, newKey)
        let v3 = try moved.wrap(root, context: cloudContext)
        XCTAssertEqual(try moved.unwrap(v3, context: cloudContext), root)
        XCTAssertEqual(try moved.unwrap(v1, context: cloudContext), root)
    }

    func testMetadataServerCredentials() throws {
        let b = try GCPKMSBackend(configuration: BackendConfiguration(kind: "gcp-kms", options: [
            "key": keyName, "credentials": "metadata", "metadata_host": "127.0.0.1:\(server.int("metadata_port"))",
            "endpoint": server.base, "ca_bundle": server.ca, "timeout": "2", "retry_base_delay": "0.05",
        ]))
        let root = try SecretBytes.random(count: 32)
        XCTAssertEqual(try b.unwrap(try b.wrap(root, context: cloudContext), context: cloudContext), root)
        let s = try server.stats()
        XCTAssertEqual(s["metadata_issued"], 1)
        XCTAssertNil(s["token"])
    }

    // MARK: faults

    func testThrottlingThenSuccess() throws {
        let b = try backend()
        try server.faults([["status": 429], ["status": 503]])
        let root = try SecretBytes.random(count: 32)
        let blob = try b.wrap(root, context: cloudContext)
        XCTAssertEqual(try server.stats()["encrypt"], 3)
        XCTAssertEqual(try b.unwrap(blob, context: cloudContext), root)
    }

    func testServerErrorsThreeTimesThenSuccessAndFourTimesFails() throws {
        let b = try backend()
        try server.faults(Array(repeating: ["status": 500], count: 3))
        let root = try SecretBytes.random(count: 32)
        _ = try b.wrap(root, context: cloudContext)
        XCTAssertEqual(try server.stats()["encrypt"], 4)
        try server.reset()
        try server.faults(Array(repeating: ["status": 500, "message": "backend exploded"], count: 4))
        let (error, elapsed) = cloudTimed { _ = try b.wrap(root, context: cloudContext) }
        guard case .unreachable(let m)? = error else { return XCTFail("\(String(describing: error))") }
        XCTAssertTrue(m.contains("INTERNAL") && m.contains("backend exploded"), m)
        XCTAssertEqual(try server.stats()["encrypt"], 4, "max_attempts bounds the calls")
        XCTAssertLessThan(elapsed, b.http.configuration.worstCaseDuration)
    }

    func testDelayLongerThanTimeout() throws {
        let b = try backend(["timeout": "1", "max_attempts": "2"])
        let root = try SecretBytes.random(count: 32)
        _ = try b.wrap(root, context: cloudContext)      // token fetched and cached
        try server.faults([["delay": 3]])
        _ = try b.wrap(root, context: cloudContext)      // first attempt times out, second succeeds
        try server.faults([["delay": 3], ["delay": 3]])
        let (error, elapsed) = cloudTimed { _ = try b.wrap(root, context: cloudContext) }
        guard case .unreachable(let m)? = error else { return XCTFail("\(String(describing: error))") }
        XCTAssertTrue(m.contains("timed out"), m)
        XCTAssertLessThan(elapsed, b.http.configuration.worstCaseDuration)
        XCTAssertGreaterThanOrEqual(elapsed, .seconds(2))
    }

    func testExpiredTokenIsRefreshed() throws {
        let b = try backend()
        let root = try SecretBytes.random(count: 32)
        let blob = try b.wrap(root, context: cloudContext)
        try server.faults([["invalid_token": true]])     // revokes every token, answers 401
        XCTAssertEqual(try b.unwrap(blob, context: cloudContext), root)
        let s = try server.stats()
        XCTAssertEqual(s["token_issued"], 2)
        XCTAssertEqual(b.statistics.authenticationRetries, 1)
    }

    func testMalformedBodyAndBadChecksumRetried() throws {
        let b = try backend()
        let root = try SecretBytes.random(count: 32)
        try server.faults([["malformed": true], ["bad_crc": true], ["unverified": true]])
        let blob = try b.wrap(root, context: cloudContext)
        XCTAssertEqual(try server.stats()["encrypt"], 4)
        try server.faults([["bad_crc": true]])
        XCTAssertEqual(try b.unwrap(blob, context: cloudContext), root)
        XCTAssertEqual(try server.stats()["decrypt"], 2)
        try server.faults(Array(repeating: ["malformed": true], count: 4))
        let (error, _) = cloudTimed { _ = try b.unwrap(blob, context: cloudContext) }
        guard case .unreachable(let m)? = error else { return XCTFail("\(String(describing: error))") }
        XCTAssertTrue(m.contains("malformed"), m)
    }

    func testServerDown() throws {
        let b = try backend()
        let root = try SecretBytes.random(count: 32)
        let blob = try b.wrap(root, context: cloudContext)
        server.stop()
        let (error, elapsed) = cloudTimed { _ = try b.unwrap(blob, context: cloudContext) }
        guard case .unreachable? = error else { return XCTFail("\(String(describing: error))") }
        XCTAssertLessThan(elapsed, b.http.configuration.worstCaseDuration)
        XCTAssertThrowsError(try b.checkHealth())
    }

    func testServiceErrorsAreTypedWithTheirStatus() throws {
        let root = try SecretBytes.random(count: 32)
        let missing = try backend(["key": "projects/tg-test/locations/global/keyRings/tg-ring/cryptoKeys/absent"])
        XCTAssertThrowsError(try missing.wrap(root, context: cloudContext)) { e in
            guard case KeyWrapError.keyNotFound(let m)? = e as? KeyWrapError else { return XCTFail("\(e)") }
            XCTAssertTrue(m.contains("NOT_FOUND"), m)
        }
        let b = try backend()
        let blob = try b.wrap(root, context: cloudContext)
        try server.control("/_test/disable", ["name": keyName, "version": 1])
        XCTAssertThrowsError(try b.unwrap(blob, context: cloudContext)) { e in
            guard case KeyWrapError.removed(let m)? = e as? KeyWrapError else { return XCTFail("\(e)") }
            XCTAssertTrue(m.contains("FAILED_PRECONDITION") && m.contains("DISABLED"), m)
        }
        try server.control("/_test/deny", ["name": keyName])
        XCTAssertThrowsError(try b.wrap(root, context: cloudContext)) { e in
            guard case KeyWrapError.policyViolation(let m)? = e as? KeyWrapError else { return XCTFail("\(e)") }
            XCTAssertTrue(m.contains("PERMISSION_DENIED"), m)
        }
        XCTAssertEqual(try server.stats()["encrypt"], 3, "4xx errors are not retried")
    }

    func testWrongServiceAccountKeyIsAuthenticationFailure() throws {
        let b = try backend(["credentials_file": server.string("sa_wrong_key")])
        XCTAssertThrowsError(try b.wrap(try SecretBytes.random(count: 32), context: cloudContext)) { e in
            guard case KeyWrapError.authenticationFailed(let m)? = e as? KeyWrapError else { return XCTFail("\(e)") }
            XCTAssertTrue(m.contains("invalid_grant") && m.contains("Invalid JWT Signature"), m)
            XCTAssertFalse(m.contains("PRIVATE KEY") || m.contains("eyJ"), "no key or assertion in errors")
        }
        let s = try server.stats()
        XCTAssertEqual(s["token_rejected"], 1)
        XCTAssertNil(s["encrypt"])
    }

    func testKeyFileReadableByOthersIsRefused() throws {
        let copy = server.directory + "/sa-open.json"
        try FileManager.default.copyItem(atPath: server.string("sa_key"), toPath: copy)
        chmod(copy, 0o644)
        let b = try backend(["credentials_file": copy])
        XCTAssertThrowsError(try b.wrap(try SecretBytes.random(count: 32), context: cloudContext)) { e in
            guard case KeyWrapError.misconfigured(let m)? = e as? KeyWrapError else { return XCTFail("\(e)") }
            XCTAssertTrue(m.contains("accessible to other users"), m)
        }
    }

    func testTokenEndpointThrottledThenSucceeds() throws {
        let b = try backend()
        try server.faults([["target": "token", "status": 503], ["target": "token", "malformed": true]])
        _ = try b.wrap(try SecretBytes.random(count: 32), context: cloudContext)
        XCTAssertEqual(try server.stats()["token"], 3)
    }
    func testUntrustedServerCertificateIsRefused() throws {
        var o = options()
        o["ca_bundle"] = nil          // the system store does not know the fake's throwaway CA
        let b = try GCPKMSBackend(configuration: BackendConfiguration(kind: "gcp-kms", options: o))
        let (error, _) = cloudTimed { _ = try b.wrap(try SecretBytes.random(count: 32), context: cloudContext) }
        guard case .unreachable(let m)? = error else { return XCTFail("\(String(describing: error))") }
        XCTAssertTrue(m.contains("TLS"), m)
        XCTAssertEqual(try server.stats()["token"] ?? 0, 0, "no request body may reach an unverified server")
    }

    func testConcurrentCallsShareOneBackend() throws {
        let b = try backend()
        let root = try SecretBytes.random(count: 32)
        let blob = try b.wrap(root, context: cloudContext)
        let failures = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            do {
                if try b.unwrap(blob, context: cloudContext) != root { failures.add(1, ordering: .relaxed) }
            } catch {
                failures.add(1, ordering: .relaxed)
            }
        }
        XCTAssertEqual(failures.load(ordering: .relaxed), 0)
        let s = try server.stats()
        XCTAssertEqual(s["decrypt_ok"], 8)
        XCTAssertEqual(s["token_issued"], 1, "the token cached by the first wrap serves every thread")
    }
}
