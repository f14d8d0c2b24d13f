import CP11Kit
import Foundation
import XCTest
@testable import Cryptoki

final class PersistenceTests: XCTestCase {
    func testTwoModulesShareOneStore() throws {
        let env = try TestEnvironment()
        let a = try env.module()
        let sa = try a.readySession()
        let b = try env.module()
        let sb = try b.openSession(0, flags: CKF_SERIAL_SESSION | CKF_RW_SESSION)
        try b.login(sb, userType: CKU_USER, pin: userPIN)

        let value = hex("00112233445566778899aabbccddeeff")
        let k = try a.aesKey(sa, value: value, token: true, extra: [textAttr(CKA_LABEL, "shared")])
        // B sees A's new object on its next call, with the same secret.
        let found = try b.find(sb, [textAttr(CKA_LABEL, "shared")])
        XCTAssertEqual(found.count, 1)
        let kb = try XCTUnwrap(found.first)
        XCTAssertEqual(try b.bytes(sb, kb, CKA_VALUE), value)
        let iv = [UInt8](repeating: 3, count: 12)
        let gcm = Mechanism(type: CKM_AES_GCM, parameter: .gcm(iv: iv, aad: [], tagBits: 128))
        let ct = try a.encryptAll(sa, gcm, k, [1, 2, 3])
        XCTAssertEqual(try b.decryptAll(sb, gcm, kb, ct), [1, 2, 3])
        // A changes the label; B sees it. A deletes; B's handle dies.
        try a.setAttributeValues(sa, k, template: [textAttr(CKA_LABEL, "renamed")])
        XCTAssertEqual(try b.bytes(sb, kb, CKA_LABEL), Array("renamed".utf8))
        try a.destroyObject(sa, k)
        expectCKR(CKR_OBJECT_HANDLE_INVALID) { _ = try b.attributeValues(sb, kb, types: [CKA_LABEL]) }
        XCTAssertEqual(try b.find(sb, [textAttr(CKA_LABEL, "renamed")]), [])
        a.finalize()
        b.finalize()

        // A third instance after both finalised: objects persist, PINs persist.
        let c = try env.module()
        let sc = try c.openSession(0, flags: CKF_SERIAL_SESSION)
        try c.login(sc, userType: CKU_USER, pin: userPIN)
        XCTAssertEqual(try c.find(sc, [boolAttr(CKA_TOKEN, true)]).count, 0)
    }

    func testPersistsAcrossInstancesAndNoClearSecretOnDisk() throws {
        let env = try TestEnvironment()
        let m1 = try env.module()
        let s1 = try m1.readySession()
        // Recognisable secrets: a public AES key and a private data object.
        let secret = [UInt8](repeating: 0xA7, count: 16) + Array("SECRET-MARKER-01".utf8)
        let pubKey = try m1.aesKey(s1, value: secret, token: true, extra: [boolAttr(CKA_PRIVATE, false), textAttr(CKA_LABEL, "pub")])
        let dataSecret = Array("PRIVATE-DATA-MARKER-XYZ".utf8)
        _ = try m1.createObject(s1, template: [ulongAttr(CKA_CLASS, CKO_DATA), boolAttr(CKA_PRIVATE, true), boolAttr(CKA_TOKEN, true),
                                               textAttr(CKA_LABEL, "priv-data"), bytesAttr(CKA_VALUE, dataSecret)])
        let n2he = try m1.generateKey(s1, mechanism: Mechanism(type: CK.mechN2HEKeyGen),
                                      template: [boolAttr(CKA_TOKEN, true), ulongAttr(CK.attrN2HEDimension, 128), textAttr(CKA_LABEL, "lwe"),
                                                 boolAttr(CKA_EXTRACTABLE, true)])
        let n2heValue = try XCTUnwrap(try m1.bytes(s1, n2he, CKA_VALUE))
        XCTAssertEqual(try m1.bytes(s1, pubKey, CKA_VALUE), secret)
        m1.finalize()

        // Raw files: neither secret appears anywhere (database, WAL, shared memory).
        let dir = env.root + "/t0"
        var blob = [UInt8]()
        for f in try FileManager.default.contentsOfDirectory(atPath: dir) {
            blob += (try? [UInt8](Data(contentsOf: URL(fileURLWithPath: dir + "/" + f)))) ?? []
        }
        XCTAssertFalse(blob.isEmpty)
        func contains(_ needle: [UInt8]) -> Bool {
            guard needle.count <= blob.count else { return false }
            return blob.withUnsafeBufferPointer { h in
                (0...(h.count - needle.count)).contains { i in h[i] == needle[0] && Array(h[i..<(i + needle.count)]) == needle }
            }
        }
        XCTAssertFalse(contains(secret), "AES key bytes in clear on disk")
        XCTAssertFalse(contains(dataSecret), "private data in clear on disk")
        XCTAssertFalse(contains(Array(n2heValue.prefix(64))), "N2HE key bytes in clear on disk")
        XCTAssertTrue(contains(Array("priv-data".utf8)), "labels are stored (searchable) — sanity check of the scan")

        let m2 = try env.module()
        let s2 = try m2.openSession(0, flags: CKF_SERIAL_SESSION)
        // Without login: the public key is visible, its value is not available.
        let pk = try XCTUnwrap(try m2.find(s2, [textAttr(CKA_LABEL, "pub")]).first)
        XCTAssertEqual(try m2.attribute(s2, pk, CKA_VALUE), .sensitive)
        XCTAssertEqual(try m2.find(s2, [textAttr(CKA_LABEL, "priv-data")]), [])
        expectCKR(CKR_USER_NOT_LOGGED_IN) {
            try m2.encryptInit(s2, mechanism: Mechanism(type: CKM_AES_ECB), key: pk)
        }
        try m2.login(s2, userType: CKU_USER, pin: userPIN)
        XCTAssertEqual(try m2.bytes(s2, pk, CKA_VALUE), secret)
        let d = try XCTUnwrap(try m2.find(s2, [textAttr(CKA_LABEL, "priv-data")]).first)
        XCTAssertEqual(try m2.bytes(s2, d, CKA_VALUE), dataSecret)
        let l = try XCTUnwrap(try m2.find(s2, [textAttr(CKA_LABEL, "lwe")]).first)
        XCTAssertEqual(try m2.bytes(s2, l, CKA_VALUE), n2heValue)
        XCTAssertEqual(try m2.ulong(s2, l, CK.attrN2HEDimension), 128)
    }

    func testConcurrentSessions() throws {
        let env = try TestEnvironment()
        let m = try env.module()
        let s = try m.readySession()
        let key = try m.aesKey(s, token: true)
        let errors = ErrorBox()
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            do {
                let mine = try m.openSession(0, flags: CKF_SERIAL_SESSION | CKF_RW_SESSION)
                let gcm = Mechanism(type: CKM_AES_GCM, parameter: .gcm(iv: [UInt8](repeating: UInt8(i), count: 12), aad: [], tagBits: 128))
                for j in 0..<20 {
                    let data = [UInt8](repeating: UInt8(j), count: 100 + i)
                    let ct = try m.encryptAll(mine, gcm, key, data)
                    guard try m.decryptAll(mine, gcm, key, ct) == data else { throw CKRError(CKR_GENERAL_ERROR) }
                    _ = try m.createObject(mine, template: [ulongAttr(CKA_CLASS, CKO_DATA), textAttr(CKA_LABEL, "t\(i)")])
                    _ = try m.find(mine, [textAttr(CKA_LABEL, "t\(i)")])
                }
                try m.closeSession(mine)
            } catch {
                errors.add(error)
            }
        }
        XCTAssertEqual(errors.all.count, 0, "\(errors.all)")
    }
}

extension PersistenceTests {
    /// Logins, logouts and operations racing on one token: no crash, every failure one of the legal answers.
    func testConcurrentLoginLogout() throws {
        let env = try TestEnvironment()
        let m = try env.module()
        let s = try m.readySession(login: false)
        let legal: Set<CK_RV> = [CKR_USER_ALREADY_LOGGED_IN, CKR_USER_NOT_LOGGED_IN, CKR_OBJECT_HANDLE_INVALID,
                                 CKR_KEY_HANDLE_INVALID, CKR_OPERATION_NOT_INITIALIZED]
        let errors = ErrorBox()
        DispatchQueue.concurrentPerform(iterations: 6) { i in
            for _ in 0..<10 {
                do {
                    if i % 2 == 0 {
                        try m.login(s, userType: CKU_USER, pin: userPIN)
                    } else {
                        try m.logout(s)
                    }
                } catch let e as CKRError where legal.contains(e.rv) {
                } catch {
                    errors.add(error)
                }
                do {
                    let mine = try m.openSession(0, flags: CKF_SERIAL_SESSION | CKF_RW_SESSION)
                    _ = try? m.aesKey(mine)
                    _ = try m.find(mine, [ulongAttr(CKA_CLASS, CKO_SECRET_KEY)])
                    try m.closeSession(mine)
                } catch {
                    errors.add(error)
                }
            }
        }
        XCTAssertEqual(errors.all.count, 0, "\(errors.all)")
    }
}

extension PersistenceTests {
    /// What a forked child does: abandon the parent's module (no lock waited for, no database closed), then
    /// initialise a fresh one on the same store.
    func testAbandonAfterForkThenFreshModule() throws {
        let env = try TestEnvironment()
        let parent = try env.module()
        let s = try parent.readySession()
        _ = try parent.aesKey(s, token: true, extra: [textAttr(CKA_LABEL, "survives")])
        try parent.digestInit(s, mechanism: Mechanism(type: CKM_SHA256))
        parent.abandonAfterFork()
        expectCKR(CKR_SESSION_HANDLE_INVALID) { _ = try parent.sessionInfo(s) }
        let child = try env.module()
        let cs = try child.openSession(0, flags: CKF_SERIAL_SESSION)
        XCTAssertEqual(try child.sessionInfo(cs).state, CKS_RO_PUBLIC_SESSION)
        try child.login(cs, userType: CKU_USER, pin: userPIN)
        XCTAssertEqual(try child.find(cs, [textAttr(CKA_LABEL, "survives")]).count, 1)
    }
}

final class ErrorBox: @unchecked Sendable {
    private let lock = NSLock()
    private var errors: [any Error] = []
    func add(_ e: any Error) { lock.lock(); errors.append(e); lock.unlock() }
    var all: [any Error] { lock.lock(); defer { lock.unlock() }; return errors }
}
