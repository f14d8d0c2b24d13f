// The token key cache (docs/performance.md): unsealed token key values in locked memory, checked against the store
// before every use, zeroed at logout / C_Finalize and in a fork child.
import CP11Kit
import CryptoCore
import Foundation
import XCTest
@testable import Cryptoki
#if canImport(Glibc)
import Glibc
#endif

final class KeyCacheTests: XCTestCase {
    let gcm = Mechanism(type: CKM_AES_GCM, parameter: .gcm(iv: [UInt8](repeating: 7, count: 12), aad: [], tagBits: 128))

    private func cached(_ m: Module, _ uid: String? = nil) throws -> [String: CachedSecret] {
        try m.token(0).state.withLock { $0.secretCache }
    }

    private func uniqueID(_ m: Module, _ h: CK_OBJECT_HANDLE) throws -> String {
        try XCTUnwrap(try m.token(0).state.withLock { $0.handleUIDs[h] })
    }

    /// Two modules on one store: `a` makes a token key, `b` (another connection, as another process) uses it.
    private func shared() throws -> (TestEnvironment, Module, CK_SESSION_HANDLE, CK_OBJECT_HANDLE, Module, CK_SESSION_HANDLE, CK_OBJECT_HANDLE) {
        let env = try TestEnvironment()
        let a = try env.module()
        let sa = try a.readySession()
        let ka = try a.aesKey(sa, value: [UInt8](repeating: 0x11, count: 32), token: true,
                              extra: [textAttr(CKA_LABEL, "cached"), boolAttr(CKA_ENCRYPT, true), boolAttr(CKA_DECRYPT, true)])
        let b = try env.module()
        let sb = try b.openSession(0, flags: CKF_SERIAL_SESSION | CKF_RW_SESSION)
        try b.login(sb, userType: CKU_USER, pin: userPIN)
        let kb = try XCTUnwrap(try b.find(sb, [textAttr(CKA_LABEL, "cached")]).first)
        return (env, a, sa, ka, b, sb, kb)
    }

    func testCachedValueIsLockedAndReused() throws {
        let (_, a, _, _, b, sb, kb) = try shared()
        defer { a.finalize(); b.finalize() }
        let ct1 = try b.encryptAll(sb, gcm, kb, [1, 2, 3])
        let entry = try XCTUnwrap(try cached(b)[try uniqueID(b, kb)])
        XCTAssertTrue(entry.value.isLocked)
        XCTAssertGreaterThan(SecretBytes.lockedBytesInUse, 0)
        XCTAssertEqual(try b.encryptAll(sb, gcm, kb, [1, 2, 3]), ct1)
        XCTAssertTrue(try cached(b)[try uniqueID(b, kb)]?.value === entry.value, "second use is served from the cache")
    }

    func testAnotherConnectionDestroysTheKey() throws {
        let (_, a, sa, ka, b, sb, kb) = try shared()
        defer { a.finalize(); b.finalize() }
        _ = try b.encryptAll(sb, gcm, kb, [1, 2, 3])
        XCTAssertEqual(try cached(b).count, 1)
        try a.destroyObject(sa, ka)
        expectCKR(CKR_KEY_HANDLE_INVALID) { try b.encryptInit(sb, mechanism: gcm, key: kb) }
        XCTAssertEqual(try cached(b).count, 0, "the destroyed key's value is dropped (and zeroed) at once")
    }

    func testAnotherConnectionChangesTheKeyValue() throws {
        let (_, a, sa, ka, b, sb, kb) = try shared()
        defer { a.finalize(); b.finalize() }
        let old = try b.encryptAll(sb, gcm, kb, [1, 2, 3])
        // Another connection reseals a different value under the same unique id (what a restore or another
        // implementation could do): b must use the new value on its next C_EncryptInit.
        let newValue = [UInt8](repeating: 0x22, count: 32)
        let token = try a.token(0)
        let uid = try uniqueID(a, ka)
        let keys = try XCTUnwrap(token.state.withLock { $0.keys })
        let stored = try XCTUnwrap(try token.database.object(uniqueID: uid))
        try token.database.update(uniqueID: uid, publicAttributes: stored.publicAttributes,
                                  secretAttributes: [UInt(CKA_VALUE): SecretBytes(copying: newValue)], keys: keys)
        let fresh = try b.encryptAll(sb, gcm, kb, [1, 2, 3])
        XCTAssertNotEqual(fresh, old)
        let reference = try a.aesKey(sa, value: newValue, extra: [boolAttr(CKA_ENCRYPT, true)])
        XCTAssertEqual(try a.encryptAll(sa, gcm, reference, [1, 2, 3]), fresh)
        // A public change (label) by the other connection also renews the entry, with the same value.
        try a.setAttributeValues(sa, ka, template: [textAttr(CKA_LABEL, "renamed")])
        XCTAssertEqual(try b.encryptAll(sb, gcm, kb, [1, 2, 3]), fresh)
        XCTAssertEqual(try b.bytes(sb, kb, CKA_LABEL), Array("renamed".utf8))
    }

    func testLogoutAndFinalizeEmptyTheCache() throws {
        let (_, a, _, _, b, sb, kb) = try shared()
        defer { a.finalize() }
        let before = SecretBytes.lockedBytesInUse
        _ = try b.encryptAll(sb, gcm, kb, [1, 2, 3])
        XCTAssertGreaterThan(SecretBytes.lockedBytesInUse, before)
        try b.logout(sb)
        XCTAssertEqual(try cached(b).count, 0)
        XCTAssertEqual(SecretBytes.lockedBytesInUse, before, "the value's locked blocks are zeroed and returned")
        // The key is private: after logout it is not visible, and a use needs a login again.
        expectCKR(CKR_KEY_HANDLE_INVALID) { try b.encryptInit(sb, mechanism: gcm, key: kb) }
        try b.login(sb, userType: CKU_USER, pin: userPIN)
        _ = try b.encryptAll(sb, gcm, kb, [1, 2, 3])
        XCTAssertEqual(try cached(b).count, 1)
        let token = try b.token(0)
        b.finalize()
        XCTAssertEqual(token.state.withLock { $0.secretCache.count }, 0)
        XCTAssertEqual(SecretBytes.lockedBytesInUse, before)
    }

    func testForkChildSeesZerosAndANewGeneration() throws {
        let (_, a, _, _, b, sb, kb) = try shared()
        defer { a.finalize(); b.finalize() }
        _ = try b.encryptAll(sb, gcm, kb, [1, 2, 3])
        let entry = try XCTUnwrap(try cached(b)[try uniqueID(b, kb)])
        let generation = SecretBytes.forkGeneration
        let (address, count) = entry.value.withUnsafeBytes { (UInt(bitPattern: $0.baseAddress), $0.count) }
        XCTAssertNotEqual(address, 0)
        XCTAssertTrue(entry.value.withUnsafeBytes { $0.contains { $0 != 0 } })
        let pid = fork()
        if pid == 0 {
            // The child: only plain memory reads and _exit (no Swift locks, no allocation).
            var nonzero = false
            if let p = UnsafePointer<UInt8>(bitPattern: address) {
                for i in 0..<count where p[i] != 0 { nonzero = true }
            }
            _exit(nonzero ? 1 : (SecretBytes.forkGeneration == generation ? 2 : 0))
        }
        XCTAssertGreaterThan(pid, 0)
        var status: Int32 = 0
        XCTAssertEqual(waitpid(pid, &status, 0), pid)
        XCTAssertEqual((status >> 8) & 0xff, 0, "1: the child saw the parent's key bytes; 2: no new fork generation")
        XCTAssertTrue(entry.value.withUnsafeBytes { $0.contains { $0 != 0 } }, "the parent keeps its value")
    }
}
