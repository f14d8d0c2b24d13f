import CryptoCore
import Foundation
@testable import KeyWrap
import TestSupport
import XCTest

/// The azure-keyvault backend against Tests/servers/azure/fake_azure_keyvault.py (real RSA-OAEP-256, Entra ID
/// client credentials with secret check, Key Vault bearer challenge, IMDS).
final class AzureKeyVaultBackendTests: XCTestCase {
    var server: FakeCloudServer!

    override func setUpWithError() throws {
        server = try FakeCloudServer("azure/fake_azure_keyvault.py")
    }

    override func tearDown() {
        server?.stop()
        server = nil
    }

    var vault: String { server.string("vault_url") }

    func options(_ extra: [String: String] = [:]) -> [String: String] {
        var o = ["vault_url": vault, "key_name": server.string("key_name"), "tenant_id": server.string("tenant"),
                 "client_id": server.string("client_id"), "client_secret_file": server.string("client_secret_file"),
                 "authority_host": vault, "ca_bundle": server.ca, "timeout": "2", "connect_timeout": "1",
                 "max_attempts": "4", "retry_base_delay": "0.05", "retry_max_delay": "0.2"]
        for (k, v) in extra { o[k] = v }
        return o
    }

    func backend(_ extra: [String: String] = [:], removing: [String] = []) throws -> AzureKeyVaultBackend {
        var o = options(extra)
        for k in removing { o[k] = nil }
        return try AzureKeyVaultBackend(configuration: BackendConfiguration(kind: "azure-keyvault", options: o))
    }

    func secret() throws -> String {
        try String(contentsOfFile: server.string("client_secret_file"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    // MARK: configuration

    func testConfiguration() throws {
        let c = try AzureKeyVaultConfig(options: ["vault_url": "https://tg.vault.azure.net/", "key_name": "root-kek",
                                                  "key_version": "0123abcd", "tenant_id": "t-1", "client_id": "c",
                                                  "client_secret_env": "TG_AZ_SECRET"], environment: { _ in nil })
        XCTAssertEqual(c.vaultURL, "https://tg.vault.azure.net")
        XCTAssertEqual(c.credentials, .clientSecret(tenantID: "t-1", clientID: "c", secret: .environment("TG_AZ_SECRET")))
        XCTAssertEqual(c.apiVersion, "7.4")
        let mi = try AzureKeyVaultConfig(options: ["vault_url": "https://tg.vault.azure.net", "key_name": "k"],
                                         environment: { $0 == "AZURE_POD_IDENTITY_AUTHORITY_HOST" ? "http://127.0.0.1:9" : nil })
        XCTAssertEqual(mi.credentials, .managedIdentity(endpoint: "http://127.0.0.1:9", clientID: nil))
        XCTAssertTrue(BackendFactory.kinds.contains("azure-keyvault"))
        let base = ["vault_url": "https://tg.vault.azure.net", "key_name": "k"]
        for (extra, fragment) in [
            (["client_secret": "hunter2"], "inline secret"),
            (["vault_url": "http://tg.vault.azure.net"], "https"),
            (["key_name": "a/b"], "letters"),
            (["credentials": "client-secret", "client_secret_env": "E"], "tenant_id"),
            (["tenant_id": "t", "client_id": "c", "client_secret_env": "E", "client_secret_file": "/f"], "not both"),
            (["api_version": "2016-10-01"], "api_version"),
            (["vualt": "x"], "unknown option 'vualt'"),
        ] as [([String: String], String)] {
            let o = base.merging(extra) { $1 }
            XCTAssertThrowsError(try AzureKeyVaultConfig(options: o, environment: { _ in nil }), "\(extra)") { e in
                guard case KeyWrapError.misconfigured(let m)? = e as? KeyWrapError else { return XCTFail("\(e)") }
                XCTAssertTrue(m.contains(fragment), "\(m) lacks \(fragment)")
                XCTAssertFalse(m.contains("hunter2"))
            }
        }
    }

    func testChallengeParsing() {
        let c = AzureBearerChallenge.parse(#"Bearer authorization="https://login.microsoftonline.com/72f988bf-86f1", resource="https://vault.azure.net""#)
        XCTAssertEqual(c, AzureBearerChallenge(authority: "https://login.microsoftonline.com", tenant: "72f988bf-86f1", resource: "https://vault.azure.net"))
        let s = AzureBearerChallenge.parse(#"Bearer authorization_uri="https://login.x/t1/", scope="https://vault.azure.net/.default", error="invalid_token""#)
        XCTAssertEqual(s?.resource, "https://vault.azure.net")
        XCTAssertEqual(s?.tenant, "t1")
        XCTAssertNil(AzureBearerChallenge.parse("Basic realm=x"))
        XCTAssertNil(AzureBearerChallenge.parse(#"Bearer resource="https://vault.azure.net""#))
    }

    // MARK: round trip

    func testRoundTripWithBearerChallengeAndCachedToken() throws {
        let b = try backend()
        let root = try SecretBytes.random(count: 32)
        let blob = try b.wrap(root, context: cloudContext)
        XCTAssertNil(RS256.find(root.unsafeCopyToArray(), in: blob, from: 0))
        XCTAssertEqual(try b.unwrap(blob, context: cloudContext), root)
        XCTAssertEqual(try b.unwrap(blob, context: cloudContext), root)
        let s = try server.stats()
        XCTAssertEqual(s["unauthenticated"], 1, "one challenge probe, then the cached token")
        XCTAssertEqual(s["token_issued"], 1)
        XCTAssertEqual(s["wrapkey_ok"], 1)
        XCTAssertEqual(s["unwrapkey_ok"], 2)
        XCTAssertEqual(b.descriptor, BackendDescriptor(kind: "azure-keyvault", keyID: "\(vault)/keys/tg-root", keyVersion: "latest"))
        let kid = try XCTUnwrap(AzureKeyVaultBackend.parseBlob(blob)?.0)
        XCTAssertTrue(kid.hasPrefix("\(vault)/keys/tg-root/") && kid.count > "\(vault)/keys/tg-root/".count, kid)
        try b.checkHealth()
    }

    func testSecretFromEnvironment() throws {
        setenv("TG_TEST_AZ_SECRET", try secret(), 1)
        defer { unsetenv("TG_TEST_AZ_SECRET") }
        let b = try backend(["client_secret_env": "TG_TEST_AZ_SECRET"], removing: ["client_secret_file"])
        let root = try SecretBytes.random(count: 32)
        XCTAssertEqual(try b.unwrap(try b.wrap(root, context: cloudContext), context: cloudContext), root)
    }

    func testWrongContextTamperedBlobAndForeignVaultRefused() throws {
        let b = try backend()
        let root = try SecretBytes.random(count: 32)
        let blob = try b.wrap(root, context: cloudContext)
        XCTAssertThrowsError(try b.unwrap(blob, context: cloudOtherContext)) { XCTAssertEqual($0 as? KeyWrapError, .integrityFailure) }
        var tampered = blob
        tampered[tampered.count - 40] ^= 0x01           // inside the RSA ciphertext: Key Vault refuses it
        XCTAssertThrowsError(try b.unwrap(tampered, context: cloudContext)) { XCTAssertEqual($0 as? KeyWrapError, .integrityFailure) }
        var macFlip = blob
        macFlip[macFlip.count - 1] ^= 0x01
        XCTAssertThrowsError(try b.unwrap(macFlip, context: cloudContext)) { XCTAssertEqual($0 as? KeyWrapError, .integrityFailure) }
        // A blob naming a key on another vault is refused before any call.
        let (kid, wrapped, _) = try XCTUnwrap(AzureKeyVaultBackend.parseBlob(blob))
        var frame = BlobWriter(version: 1)
        try frame.append(field: Array(kid.replacingOccurrences(of: vault, with: "https://evil.example").utf8))
        try frame.append(field: wrapped)
        let foreign = frame.bytes + [UInt8](repeating: 0, count: 32)
        let before = try server.stats()["unwrapkey"] ?? 0
        XCTAssertThrowsError(try b.unwrap(foreign, context: cloudContext)) { XCTAssertEqual($0 as? KeyWrapError, .integrityFailure) }
        XCTAssertEqual(try server.stats()["unwrapkey"] ?? 0, before)
    }

    func testRotationUnwrapUsesRecordedKid() throws {
        let b = try backend()
        let root = try SecretBytes.random(count: 32)
        let old = try b.wrap(root, context: cloudContext)
        let newKid = try XCTUnwrap(try server.control("/_test/rotate", ["name": "tg-root"])["kid"] as? String)
        let new = try b.wrap(root, context: cloudContext)
        XCTAssertEqual(AzureKeyVaultBackend.parseBlob(new)?.0, newKid)
        XCTAssertNotEqual(AzureKeyVaultBackend.parseBlob(old)?.0, newKid)
        XCTAssertEqual(try b.unwrap(old, context: cloudContext), root)
        XCTAssertEqual(try b.unwrap(new, context: cloudContext), root)
        // Pinned to the old version.
        let oldVersion = try XCTUnwrap(AzureKeyVaultBackend.parseBlob(old)?.0.split(separator: "/").last.map(String.init))
        let pinned = try backend(["key_version": oldVersion])
        XCTAssertEqual(AzureKeyVaultBackend.parseBlob(try pinned.wrap(root, context: cloudContext))?.0, "\(vault)/keys/tg-root/\(oldVersion)")
        // Another key of the same vault.
        try server.control("/_test/keys", ["name": "tg-root-2027"])
        let moved = b.withKey(name: "tg-root-2027")
        let v3 = try moved.wrap(root, context: cloudContext)
        XCTAssertTrue(AzureKeyVaultBackend.parseBlob(v3)?.0.contains("/keys/tg-root-2027/") ?? false)
        XCTAssertEqual(try moved.unwrap(old, context: cloudContext), root)
    }

    func testManagedIdentity() throws {
        let b = try backend(["credentials": "managed-identity", "managed_identity_endpoint": "http://127.0.0.1:\(server.int("imds_port"))"],
                            removing: ["client_secret_file", "tenant_id", "client_id"])
        let root = try SecretBytes.random(count: 32)
        XCTAssertEqual(try b.unwrap(try b.wrap(root, context: cloudContext), context: cloudContext), root)
        let s = try server.stats()
        XCTAssertEqual(s["imds_issued"], 1)
        XCTAssertNil(s["token"])
    }

    // MARK: faults

    func testThrottlingAndServerErrorsThenSuccess() throws {
        let b = try backend()
        let root = try SecretBytes.random(count: 32)
        let blob = try b.wrap(root, context: cloudContext)
        try server.reset()
        try server.faults([["status": 429, "retry_after": 0], ["status": 500], ["status": 500]])
        XCTAssertEqual(try b.unwrap(blob, context: cloudContext), root)
        XCTAssertEqual(try server.stats()["unwrapkey"], 4)
        try server.reset()
        try server.faults(Array(repeating: ["status": 503, "message": "vault is napping"], count: 4))
        let (error, elapsed) = cloudTimed { _ = try b.unwrap(blob, context: cloudContext) }
        guard case .unreachable(let m)? = error else { return XCTFail("\(String(describing: error))") }
        XCTAssertTrue(m.contains("ServiceUnavailable") && m.contains("vault is napping"), m)
        XCTAssertEqual(try server.stats()["unwrapkey"], 4)
        XCTAssertLessThan(elapsed, b.http.configuration.worstCaseDuration)
    }

    func testDelayLongerThanTimeout() throws {
        let b = try backend(["timeout": "1", "max_attempts": "2"])
        let root = try SecretBytes.random(count: 32)
        let blob = try b.wrap(root, context: cloudContext)
        try server.faults([["delay": 3]])
        XCTAssertEqual(try b.unwrap(blob, context: cloudContext), root)
        try server.faults([["delay": 3], ["delay": 3]])
        let (error, elapsed) = cloudTimed { _ = try b.unwrap(blob, context: cloudContext) }
        guard case .unreachable(let m)? = error else { return XCTFail("\(String(describing: error))") }
        XCTAssertTrue(m.contains("timed out"), m)
        XCTAssertLessThan(elapsed, b.http.configuration.worstCaseDuration)
    }

    func testExpiredTokenGoesThroughChallengeAgain() throws {
        let b = try backend()
        let root = try SecretBytes.random(count: 32)
        let blob = try b.wrap(root, context: cloudContext)
        try server.faults([["invalid_token": true]])
        XCTAssertEqual(try b.unwrap(blob, context: cloudContext), root)
        let s = try server.stats()
        XCTAssertEqual(s["token_issued"], 2)
        XCTAssertEqual(b.statistics.authenticationRetries, 2)   // the first challenge, then the stale token
    }

    func testMalformedBodyRetried() throws {
        let b = try backend()
        let root = try SecretBytes.random(count: 32)
        let blob = try b.wrap(root, context: cloudContext)
        try server.faults([["malformed": true], ["wrong_kid": true]])
        let again = try b.wrap(root, context: cloudContext)
        XCTAssertEqual(try b.unwrap(again, context: cloudContext), root)
        // wrap 1, the wrong-kid answer (refused by the client, so retried), the good one; the malformed one never
        // reached the key.
        XCTAssertEqual(try server.stats()["wrapkey_ok"], 3)
        XCTAssertEqual(try server.stats()["wrapkey"], 5, "probe + wrap 1, then malformed, wrong kid, good")
        try server.faults(Array(repeating: ["malformed": true], count: 4))
        let (error, _) = cloudTimed { _ = try b.unwrap(blob, context: cloudContext) }
        guard case .unreachable? = error else { return XCTFail("\(String(describing: error))") }
    }

    func testServerDown() throws {
        let b = try backend()
        let root = try SecretBytes.random(count: 32)
        let blob = try b.wrap(root, context: cloudContext)
        server.stop()
        let (error, elapsed) = cloudTimed { _ = try b.unwrap(blob, context: cloudContext) }
        guard case .unreachable? = error else { return XCTFail("\(String(describing: error))") }
        XCTAssertLessThan(elapsed, b.http.configuration.worstCaseDuration)
    }

    func testWrongSecretIsAuthenticationFailureWithoutTheSecret() throws {
        let path = server.directory + "/wrong-secret"
        try "not-the-secret-0123456789\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o600)
        let b = try backend(["client_secret_file": path])
        XCTAssertThrowsError(try b.wrap(try SecretBytes.random(count: 32), context: cloudContext)) { e in
            guard case KeyWrapError.authenticationFailed(let m)? = e as? KeyWrapError else { return XCTFail("\(e)") }
            XCTAssertTrue(m.contains("invalid_client") && m.contains("AADSTS7000215"), m)
            XCTAssertFalse(m.contains("not-the-secret"))
            XCTAssertFalse(m.contains((try? self.secret()) ?? "\u{0}"))
        }
        XCTAssertEqual(try server.stats()["token_rejected"], 1)
    }

    func testChallengeForAnotherTenantIsRefusedBeforeSendingTheSecret() throws {
        let b = try backend(["tenant_id": "00000000-0000-0000-0000-000000000000"])
        XCTAssertThrowsError(try b.wrap(try SecretBytes.random(count: 32), context: cloudContext)) { e in
            guard case KeyWrapError.authenticationFailed(let m)? = e as? KeyWrapError else { return XCTFail("\(e)") }
            XCTAssertTrue(m.contains("tenant"), m)
        }
        let s = try server.stats()
        XCTAssertNil(s["token"], "no token request to an authority the configuration did not name")
        XCTAssertEqual(s["unauthenticated"], 1)
    }

    func testServiceErrorsAreTyped() throws {
        let root = try SecretBytes.random(count: 32)
        XCTAssertThrowsError(try backend(["key_name": "absent"]).wrap(root, context: cloudContext)) { e in
            guard case KeyWrapError.keyNotFound(let m)? = e as? KeyWrapError else { return XCTFail("\(e)") }
            XCTAssertTrue(m.contains("KeyNotFound"), m)
        }
        let b = try backend()
        let blob = try b.wrap(root, context: cloudContext)
        try server.control("/_test/disable", ["name": "tg-root"])
        XCTAssertThrowsError(try b.unwrap(blob, context: cloudContext)) { e in
            guard case KeyWrapError.removed(let m)? = e as? KeyWrapError else { return XCTFail("\(e)") }
            XCTAssertTrue(m.contains("KeyDisabled"), m)
        }
        try server.control("/_test/deny", ["name": "tg-root"])
        XCTAssertThrowsError(try b.wrap(root, context: cloudContext)) { e in
            guard case KeyWrapError.policyViolation(let m)? = e as? KeyWrapError else { return XCTFail("\(e)") }
            XCTAssertTrue(m.contains("Forbidden"), m)
        }
    }
    func testTokenEndpointAndIMDSFaultsRetried() throws {
        let b = try backend()
        try server.faults([["target": "token", "status": 503], ["target": "token", "malformed": true]])
        let root = try SecretBytes.random(count: 32)
        let blob = try b.wrap(root, context: cloudContext)
        XCTAssertEqual(try server.stats()["token"], 3)
        let mi = try backend(["credentials": "managed-identity", "managed_identity_endpoint": "http://127.0.0.1:\(server.int("imds_port"))"],
                             removing: ["client_secret_file", "tenant_id", "client_id"])
        try server.faults([["target": "imds", "status": 429], ["target": "imds", "status": 500]])
        XCTAssertEqual(try mi.unwrap(blob, context: cloudContext), root)
        XCTAssertEqual(try server.stats()["imds"], 3)
        let down = try backend(["credentials": "managed-identity", "managed_identity_endpoint": "http://127.0.0.1:\(server.int("imds_port"))"],
                               removing: ["client_secret_file", "tenant_id", "client_id"])
        try server.faults([["target": "imds", "status": 400, "error": "invalid_request", "message": "Identity not found"]])
        XCTAssertThrowsError(try down.unwrap(blob, context: cloudContext)) { e in
            guard case KeyWrapError.authenticationFailed(let m)? = e as? KeyWrapError else { return XCTFail("\(e)") }
            XCTAssertTrue(m.contains("Identity not found"), m)
        }
    }
}
