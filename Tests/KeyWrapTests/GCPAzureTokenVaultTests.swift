import CryptoCore
import Foundation
@testable import KeyWrap
import TokenStore
import TestSupport
import XCTest

/// The cloud backends under TokenVault: C_InitToken / C_Login / rotation onto a new key (one backend wrap),
/// descriptor checks at login, and an outage that leaves the token usable afterwards.
final class GCPAzureTokenVaultTests: XCTestCase {
    func makeVault(_ dir: String) throws -> (TokenDatabase, TokenVault) {
        let db = try TokenDatabase(directory: dir, indexedAttributes: [0x0, 0x3, 0x102])
        return (db, try TokenVault(database: db, kdfLog2N: TokenVault.minimumKDFLog2N))
    }

    func testGCPInitLoginAndRotationOntoNewKey() throws {
        let server = try FakeCloudServer("gcp/fake_gcp_kms.py")
        let options = ["key": server.string("key_name"), "credentials_file": server.string("sa_key"),
                       "endpoint": server.base, "ca_bundle": server.ca, "timeout": "2", "max_attempts": "2",
                       "retry_base_delay": "0.05"]
        let backend = try BackendFactory.make(BackendConfiguration(kind: "gcp-kms", options: options))
        let (db, vault) = try makeVault(server.directory + "/token")
        let so = Array("so-pin-1".utf8)
        try vault.initialize(soPIN: so, label: Array("gcp".utf8), backend: backend)
        let keys = try vault.login(role: .so, pin: so, backend: backend)
        XCTAssertEqual(try db.tokenRecord().backend?.keyID, server.string("key_name"))

        let newKey = "projects/tg-test/locations/global/keyRings/tg-ring/cryptoKeys/tg-root-2027"
        try server.control("/_test/keys", ["name": newKey])
        let next = try XCTUnwrap(backend as? GCPKMSBackend).withKey(newKey)
        try server.reset()
        try vault.rewrapRootKey(using: keys, backend: next)
        let s = try server.stats()
        XCTAssertEqual(s["encrypt_ok"], 1)
        XCTAssertNil(s["decrypt"], "a rotation needs no unwrap")
        XCTAssertEqual(try db.tokenRecord().backend, BackendDescriptor(kind: "gcp-kms", keyID: newKey, keyVersion: "primary"))
        let again = try vault.login(role: .so, pin: so, backend: next)
        XCTAssertEqual(again.tokenUUID, keys.tokenUUID)
        // A host still configured with the old key is told so.
        XCTAssertThrowsError(try vault.login(role: .so, pin: so, backend: backend)) { e in
            guard case StoreError.backend(.misconfigured)? = e as? StoreError else { return XCTFail("\(e)") }
        }
        // Outage: a typed backend error, the token itself untouched.
        try server.faults(Array(repeating: ["status": 503], count: 2))
        XCTAssertThrowsError(try vault.login(role: .so, pin: so, backend: next)) { e in
            guard case StoreError.backend(.unreachable)? = e as? StoreError else { return XCTFail("\(e)") }
        }
        XCTAssertNoThrow(try vault.login(role: .so, pin: so, backend: next))
    }

    func testAzureInitLoginAndRotationOntoNewKey() throws {
        let server = try FakeCloudServer("azure/fake_azure_keyvault.py")
        let options = ["vault_url": server.string("vault_url"), "key_name": "tg-root", "tenant_id": server.string("tenant"),
                       "client_id": server.string("client_id"), "client_secret_file": server.string("client_secret_file"),
                       "authority_host": server.string("vault_url"), "ca_bundle": server.ca, "timeout": "2",
                       "max_attempts": "2", "retry_base_delay": "0.05"]
        let backend = try BackendFactory.make(BackendConfiguration(kind: "azure-keyvault", options: options))
        let (db, vault) = try makeVault(server.directory + "/token")
        let so = Array("so-pin-1".utf8)
        try vault.initialize(soPIN: so, label: Array("azure".utf8), backend: backend)
        let keys = try vault.login(role: .so, pin: so, backend: backend)
        try server.control("/_test/keys", ["name": "tg-root-2027"])
        let next = try XCTUnwrap(backend as? AzureKeyVaultBackend).withKey(name: "tg-root-2027")
        try server.reset()
        try vault.rewrapRootKey(using: keys, backend: next)
        XCTAssertEqual(try server.stats()["wrapkey_ok"], 1)
        XCTAssertNil(try server.stats()["unwrapkey"])
        XCTAssertEqual(try db.tokenRecord().backend?.keyID, "\(server.string("vault_url"))/keys/tg-root-2027")
        XCTAssertNoThrow(try vault.login(role: .so, pin: so, backend: next))
        // The old key can be disabled: the blob now names the new one.
        try server.control("/_test/disable", ["name": "tg-root"])
        XCTAssertNoThrow(try vault.login(role: .so, pin: so, backend: next))
        // A wrong token PIN never reaches the vault.
        try server.reset()
        XCTAssertThrowsError(try vault.login(role: .so, pin: Array("wrong".utf8), backend: next))
        XCTAssertNil(try server.stats()["unwrapkey"])
    }
}
