// Issue 17, from the inside: what a user-PIN holder may use but never take. The C attack suite
// (pkcs11-conformance/attacks/) drives the same rules through the built .so; these pin each rule to its CK_RV.
import CP11Kit
import Foundation
import XCTest
import N2HE
@testable import Cryptoki

final class KeysStayInTests: XCTestCase {
    let kwp = Mechanism(type: CKM_AES_KEY_WRAP_PAD)
    let ecb = Mechanism(type: CKM_AES_ECB)

    /// A generated wrapping key (WRAP/UNWRAP only: the defaults make it sensitive and unextractable).
    func wrappingKey(_ m: Module, _ s: CK_SESSION_HANDLE) throws -> CK_OBJECT_HANDLE {
        try m.generateKey(s, mechanism: Mechanism(type: CKM_AES_KEY_GEN),
                          template: [ulongAttr(CKA_VALUE_LEN, 32), boolAttr(CKA_WRAP, true), boolAttr(CKA_UNWRAP, true)])
    }

    func testKeyWrapMechanismsOnlyWrap() throws {
        let env = try TestEnvironment()
        let m = try env.module()
        let s = try m.readySession()
        for mech in [CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_PAD] {
            let info = try m.mechanismInfo(0, mech)
            XCTAssertEqual(info.flags & (CKF_ENCRYPT | CKF_DECRYPT), 0)
            XCTAssertEqual(info.flags & (CKF_WRAP | CKF_UNWRAP), CKF_WRAP | CKF_UNWRAP)
            let k = try m.aesKey(s)
            expectCKR(CKR_MECHANISM_INVALID) { try m.encryptInit(s, mechanism: Mechanism(type: mech), key: k) }
            expectCKR(CKR_MECHANISM_INVALID) { try m.decryptInit(s, mechanism: Mechanism(type: mech), key: k) }
        }
    }

    func testRolesAreSeparatedAndDefaultsNeverConflict() throws {
        let env = try TestEnvironment()
        let m = try env.module()
        let s = try m.readySession()
        // Plain generate: a cipher key.
        let plain = try m.generateKey(s, mechanism: Mechanism(type: CKM_AES_KEY_GEN), template: [ulongAttr(CKA_VALUE_LEN, 16)])
        XCTAssertEqual(try m.bool(s, plain, CKA_ENCRYPT), true)
        XCTAssertEqual(try m.bool(s, plain, CKA_DECRYPT), true)
        XCTAssertEqual(try m.bool(s, plain, CKA_WRAP), false)
        XCTAssertEqual(try m.bool(s, plain, CKA_UNWRAP), false)
        // Asking for WRAP/UNWRAP (pkcs11-tool --usage-wrap): a wrapping key, sensitive, never extractable.
        let w = try wrappingKey(m, s)
        XCTAssertEqual(try m.bool(s, w, CKA_ENCRYPT), false)
        XCTAssertEqual(try m.bool(s, w, CKA_DECRYPT), false)
        XCTAssertEqual(try m.bool(s, w, CKA_SENSITIVE), true)
        XCTAssertEqual(try m.bool(s, w, CKA_ALWAYS_SENSITIVE), true)
        XCTAssertEqual(try m.bool(s, w, CKA_NEVER_EXTRACTABLE), true)
        // Every mixed pair is refused at generate, create and set.
        for (a, b) in [(CKA_WRAP, CKA_DECRYPT), (CKA_UNWRAP, CKA_ENCRYPT), (CKA_WRAP, CKA_ENCRYPT), (CKA_UNWRAP, CKA_DECRYPT)] {
            expectCKR(CKR_TEMPLATE_INCONSISTENT) {
                _ = try m.generateKey(s, mechanism: Mechanism(type: CKM_AES_KEY_GEN),
                                      template: [ulongAttr(CKA_VALUE_LEN, 16), boolAttr(a, true), boolAttr(b, true)])
            }
        }
        // Roles are fixed but for giving one up: a key that wrapped can never decrypt (not even after dropping WRAP).
        expectCKR(CKR_ATTRIBUTE_READ_ONLY) { try m.setAttributeValues(s, w, template: [boolAttr(CKA_DECRYPT, true)]) }
        expectCKR(CKR_ATTRIBUTE_READ_ONLY) { try m.setAttributeValues(s, w, template: [boolAttr(CKA_WRAP, false), boolAttr(CKA_DECRYPT, true)]) }
        expectCKR(CKR_ATTRIBUTE_READ_ONLY) { try m.setAttributeValues(s, plain, template: [boolAttr(CKA_UNWRAP, true)]) }
        try m.setAttributeValues(s, w, template: [boolAttr(CKA_WRAP, false)])
        expectCKR(CKR_ATTRIBUTE_READ_ONLY) { try m.setAttributeValues(s, w, template: [boolAttr(CKA_DECRYPT, true)]) }
        // A wrapping key that asks to be extractable or readable is refused.
        expectCKR(CKR_TEMPLATE_INCONSISTENT) {
            _ = try m.generateKey(s, mechanism: Mechanism(type: CKM_AES_KEY_GEN),
                                  template: [ulongAttr(CKA_VALUE_LEN, 16), boolAttr(CKA_WRAP, true), boolAttr(CKA_EXTRACTABLE, true)])
        }
    }

    func testOnlyKeysNobodyKnowsMayWrap() throws {
        let env = try TestEnvironment()
        let m = try env.module()
        let s = try m.readySession()
        // A key of the caller's own value may not wrap, at creation or later.
        expectCKR(CKR_TEMPLATE_INCONSISTENT) {
            _ = try m.aesKey(s, value: Array(repeating: 7, count: 16), extra: [boolAttr(CKA_WRAP, true), boolAttr(CKA_EXTRACTABLE, false),
                                                                                boolAttr(CKA_ENCRYPT, false), boolAttr(CKA_DECRYPT, false)])
        }
        let known = try m.aesKey(s, value: Array(repeating: 7, count: 16), extra: [boolAttr(CKA_ENCRYPT, false), boolAttr(CKA_DECRYPT, false)])
        expectCKR(CKR_ATTRIBUTE_READ_ONLY) { try m.setAttributeValues(s, known, template: [boolAttr(CKA_WRAP, true)]) }
        // The generated wrapping key wraps an extractable key; its blob unwraps as a sensitive key.
        let w = try wrappingKey(m, s)
        let target = try m.aesKey(s)
        let blob = try twoStep { try m.wrapKey(s, mechanism: kwp, wrappingKey: w, key: target, output: $0) }
        XCTAssertEqual(blob.count, 40)
        let back = try blob.withUnsafeBytes { b in
            try m.unwrapKey(s, mechanism: kwp, unwrappingKey: w, wrappedKey: b,
                            template: [ulongAttr(CKA_CLASS, CKO_SECRET_KEY), ulongAttr(CKA_KEY_TYPE, CKK_AES)])
        }
        XCTAssertEqual(try m.bool(s, back, CKA_SENSITIVE), true)
        XCTAssertEqual(try m.bool(s, back, CKA_ALWAYS_SENSITIVE), false)
        XCTAssertEqual(try m.bool(s, back, CKA_NEVER_EXTRACTABLE), false)
        guard case .sensitive = try m.attribute(s, back, CKA_VALUE) else { return XCTFail("unwrapped value readable") }
        // Unwrapping as non-sensitive is refused unless the unwrapping key's template says so.
        expectCKR(CKR_TEMPLATE_INCONSISTENT) {
            _ = try blob.withUnsafeBytes { b in
                try m.unwrapKey(s, mechanism: kwp, unwrappingKey: w, wrappedKey: b,
                                template: [ulongAttr(CKA_CLASS, CKO_SECRET_KEY), ulongAttr(CKA_KEY_TYPE, CKK_AES),
                                           boolAttr(CKA_SENSITIVE, false), boolAttr(CKA_EXTRACTABLE, true)])
            }
        }
        // An unwrapped key can never wrap.
        expectCKR(CKR_TEMPLATE_INCONSISTENT) {
            _ = try blob.withUnsafeBytes { b in
                try m.unwrapKey(s, mechanism: kwp, unwrappingKey: w, wrappedKey: b,
                                template: [ulongAttr(CKA_CLASS, CKO_SECRET_KEY), ulongAttr(CKA_KEY_TYPE, CKK_AES),
                                           boolAttr(CKA_WRAP, true), boolAttr(CKA_ENCRYPT, false), boolAttr(CKA_DECRYPT, false)])
            }
        }
    }

    func testSecurityOfficerTrustsAForeignKEK() throws {
        let env = try TestEnvironment()
        let m = try env.module()
        let s = try m.readySession(login: false)
        try m.login(s, userType: CKU_SO, pin: soPIN)
        let kek = try m.createObject(s, template: [
            ulongAttr(CKA_CLASS, CKO_SECRET_KEY), ulongAttr(CKA_KEY_TYPE, CKK_AES), bytesAttr(CKA_VALUE, Array(repeating: 9, count: 32)),
            boolAttr(CKA_TOKEN, true), boolAttr(CKA_PRIVATE, false), boolAttr(CKA_TRUSTED, true), boolAttr(CKA_WRAP, true),
            boolAttr(CKA_SENSITIVE, true), boolAttr(CKA_MODIFIABLE, false), textAttr(CKA_LABEL, "partner-hsm-kek"),
        ])
        XCTAssertEqual(try m.bool(s, kek, CKA_TRUSTED), true)
        try m.logout(s)
        try m.login(s, userType: CKU_USER, pin: userPIN)
        // The user's copy of it is not trusted and cannot gain roles.
        expectCKR(CKR_TEMPLATE_INCONSISTENT) { _ = try m.copyObject(s, kek, template: [boolAttr(CKA_DECRYPT, true)]) }
        expectCKR(CKR_TEMPLATE_INCONSISTENT) { _ = try m.copyObject(s, kek, template: [textAttr(CKA_LABEL, "mine")]) }
        // An untrusted copy may not keep CKA_WRAP (its value is known to whoever created the original) ...
        expectCKR(CKR_TEMPLATE_INCONSISTENT) { _ = try m.copyObject(s, kek, template: [boolAttr(CKA_TOKEN, false)]) }
        let copy = try m.copyObject(s, kek, template: [boolAttr(CKA_TOKEN, false), boolAttr(CKA_WRAP, false)])
        XCTAssertEqual(try m.bool(s, copy, CKA_TRUSTED), false)
        // ... and cannot wrap, while the SO's trusted original may.
        let target = try m.aesKey(s)
        expectCKR(CKR_KEY_FUNCTION_NOT_PERMITTED) {
            _ = try twoStep { try m.wrapKey(s, mechanism: kwp, wrappingKey: copy, key: target, output: $0) }
        }
        let blob = try twoStep { try m.wrapKey(s, mechanism: kwp, wrappingKey: kek, key: target, output: $0) }
        XCTAssertEqual(blob.count, 40)
    }

    func testCopiesOnlyTighten() throws {
        let env = try TestEnvironment()
        let m = try env.module()
        let s = try m.readySession()
        let k = try m.aesKey(s, extra: [boolAttr(CKA_SENSITIVE, true), boolAttr(CKA_EXTRACTABLE, false)])
        expectCKR(CKR_TEMPLATE_INCONSISTENT) { _ = try m.copyObject(s, k, template: [boolAttr(CKA_WRAP, true)]) }
        expectCKR(CKR_TEMPLATE_INCONSISTENT) { _ = try m.copyObject(s, k, template: [boolAttr(CKA_SENSITIVE, false)]) }
        expectCKR(CKR_TEMPLATE_INCONSISTENT) { _ = try m.copyObject(s, k, template: [boolAttr(CKA_PRIVATE, false)]) }
        let tighter = try m.copyObject(s, k, template: [boolAttr(CKA_ENCRYPT, false), boolAttr(CKA_MODIFIABLE, false)])
        XCTAssertEqual(try m.bool(s, tighter, CKA_ENCRYPT), false)
        expectCKR(CKR_TEMPLATE_INCONSISTENT) { _ = try m.copyObject(s, tighter, template: [boolAttr(CKA_MODIFIABLE, true)]) }
        // Templates of a wrapping key are fixed and carried into copies.
        let w = try m.generateKey(s, mechanism: Mechanism(type: CKM_AES_KEY_GEN), template: [
            ulongAttr(CKA_VALUE_LEN, 32), boolAttr(CKA_WRAP, true), boolAttr(CKA_MODIFIABLE, false),
            Attribute(type: CK.wrapTemplate, value: .template([boolAttr(CKA_TRUSTED, true)])),
        ])
        expectCKR(CKR_TEMPLATE_INCONSISTENT) { _ = try m.copyObject(s, w, template: [Attribute(type: CK.wrapTemplate, value: .template([]))]) }
        let wc = try m.copyObject(s, w, template: [])
        guard case .value(.template(let t)) = try m.attribute(s, wc, CK.wrapTemplate) else { return XCTFail("no wrap template") }
        XCTAssertEqual(t.count, 1)
    }

    func testFindNeverMatchesOnASecretValue() throws {
        let env = try TestEnvironment()
        let m = try env.module()
        let s = try m.readySession()
        let value = Array(repeating: UInt8(3), count: 32)
        for token in [false, true] {
            let k = try m.aesKey(s, value: value, token: token, extra: [boolAttr(CKA_SENSITIVE, true), boolAttr(CKA_EXTRACTABLE, false)])
            XCTAssertEqual(try m.find(s, [bytesAttr(CKA_VALUE, value), boolAttr(CKA_TOKEN, token)]), [], "token \(token)")
            XCTAssertEqual(try m.find(s, [textAttr(CKA_LABEL, ""), boolAttr(CKA_TOKEN, token)]).contains(k), true)
        }
        // A readable key's value may still be searched.
        let open = try m.aesKey(s, value: Array(repeating: 4, count: 16))
        XCTAssertEqual(try m.find(s, [bytesAttr(CKA_VALUE, Array(repeating: 4, count: 16))]), [open])
    }

    func testTwoTokensOnOneStoreLeaveTheSecondUnusable() throws {
        let root = NSTemporaryDirectory() + "cryptoki-store-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: root + "/real", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createSymbolicLink(atPath: root + "/link", withDestinationPath: root + "/real")
        let yaml = """
            log: { level: off }
            audit: { file: \(root)/audit.log, sync: false }
            tokens:
              - { name: a, store: \(root)/real, pin_kdf_cost: 10 }
              - { name: b, store: \(root)/link/, pin_kdf_cost: 10 }
              - { name: c, store: \(root)/real/../real, pin_kdf_cost: 10 }
              - { name: d, store: \(root)/other, pin_kdf_cost: 10 }
            """
        try yaml.write(toFile: root + "/config.yaml", atomically: true, encoding: .utf8)
        chmod(root + "/config.yaml", 0o600)
        let m = try Module(configPath: root + "/config.yaml")
        XCTAssertEqual(m.slotList(tokenPresent: true), [0, 1, 2, 3])
        _ = try m.tokenInfo(0)
        for slot: CK_SLOT_ID in [1, 2] {
            XCTAssertEqual(try m.slotInfo(slot).flags & CKF_TOKEN_PRESENT, CKF_TOKEN_PRESENT)
            expectCKR(CKR_TOKEN_NOT_RECOGNIZED) { _ = try m.tokenInfo(slot) }
            expectCKR(CKR_TOKEN_NOT_RECOGNIZED) { try m.initToken(slot, soPIN: soPIN, label: Array("x".utf8)) }
            expectCKR(CKR_TOKEN_NOT_RECOGNIZED) { _ = try m.openSession(slot, flags: CKF_SERIAL_SESSION) }
        }
        _ = try m.readySession(slot: 3)
    }

    func testUncreatableStoreLeavesOtherTokensWorking() throws {
        let root = NSTemporaryDirectory() + "cryptoki-store-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try "not a directory".write(toFile: root + "/file", atomically: true, encoding: .utf8)
        let yaml = """
            log: { level: off }
            audit: { file: \(root)/audit.log, sync: false }
            tokens:
              - { name: blocked, store: \(root)/file/store, pin_kdf_cost: 10 }
              - { name: fresh, store: \(root)/new/parents/store, pin_kdf_cost: 10 }
            """
        try yaml.write(toFile: root + "/config.yaml", atomically: true, encoding: .utf8)
        chmod(root + "/config.yaml", 0o600)
        let m = try Module(configPath: root + "/config.yaml")
        expectCKR(CKR_TOKEN_NOT_RECOGNIZED) { _ = try m.tokenInfo(0) }
        _ = try m.readySession(slot: 1)
        var st = stat()
        XCTAssertEqual(stat(root + "/new/parents", &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o700)
    }

    /// Audit fails closed: with a log that cannot be written no token is offered (C_InitToken would otherwise change
    /// the store and then fail for want of its record).
    func testUnwritableAuditLogLeavesTokensUnusable() throws {
        let root = NSTemporaryDirectory() + "cryptoki-audit-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try "a file".write(toFile: root + "/file", atomically: true, encoding: .utf8)
        let yaml = "log: { level: off }\naudit: { file: \(root)/file/audit.log }\n"
            + "tokens:\n  - { name: t, store: \(root)/store, pin_kdf_cost: 10 }\n"
        try yaml.write(toFile: root + "/config.yaml", atomically: true, encoding: .utf8)
        chmod(root + "/config.yaml", 0o600)
        let m = try Module(configPath: root + "/config.yaml")
        XCTAssertEqual(m.slotList(tokenPresent: true), [0])
        expectCKR(CKR_TOKEN_NOT_RECOGNIZED) { try m.initToken(0, soPIN: soPIN, label: Array("x".utf8)) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/store/token.sqlite"))
    }

    func testMixedRolesOnlyUnderTheLegacyPolicy() throws {
        let env = try TestEnvironment(extra: "    policy: { allow_mixed_key_roles: true }\n")
        let m = try env.module()
        let s = try m.readySession()
        let k = try m.generateKey(s, mechanism: Mechanism(type: CKM_AES_KEY_GEN),
                                  template: [ulongAttr(CKA_VALUE_LEN, 16), boolAttr(CKA_WRAP, true), boolAttr(CKA_DECRYPT, true)])
        XCTAssertEqual(try m.bool(s, k, CKA_DECRYPT), true)
        let log = try String(contentsOfFile: env.auditPath, encoding: .utf8)
        XCTAssertTrue(log.contains("\"mixed_key_roles\""), log)
    }
}

final class N2HEDecryptRuleTests: XCTestCase {
    let lwe1 = Mechanism(type: CK.mechN2HELWE1)
    let lwe2 = Mechanism(type: CK.mechN2HELWE2)

    func n2heKey(_ m: Module, _ s: CK_SESSION_HANDLE, token: Bool, rule: N2HEDecryptRule? = nil) throws -> CK_OBJECT_HANDLE {
        var t = [boolAttr(CKA_TOKEN, token), ulongAttr(CK.attrN2HEDimension, 256)]
        if let rule { t.append(ulongAttr(CK.attrN2HEDecryptRule, rule.rawValue)) }
        return try m.generateKey(s, mechanism: Mechanism(type: CK.mechN2HEKeyGen), template: t)
    }

    func values(_ v: [Int64]) -> [UInt8] { v.flatMap { x in withUnsafeBytes(of: x.littleEndian) { Array($0) } } }
    func ints(_ b: [UInt8]) -> [Int64] {
        stride(from: 0, to: b.count, by: 8).map { i in b[i..<(i + 8)].reversed().reduce(Int64(0)) { $0 << 8 | Int64($1) } }
    }

    func testSeededOnceByDefault() throws {
        let env = try TestEnvironment()
        let m = try env.module()
        let s = try m.readySession()
        for token in [false, true] {
            let k = try n2heKey(m, s, token: token)
            XCTAssertEqual(try m.ulong(s, k, CK.attrN2HEDecryptRule), N2HEDecryptRule.seededOnce.rawValue)
            let ct = try m.encryptAll(s, lwe2, k, values([1, 2, 3]))
            XCTAssertEqual(ints(try m.decryptAll(s, lwe2, k, ct)), [1, 2, 3])
            // Each seed once: a replay, or the same seed with B shifted (binary search), is refused.
            expectCKR(CKR_ENCRYPTED_DATA_INVALID) { _ = try m.decryptAll(s, lwe2, k, ct) }
            var shifted = ct
            shifted[45] ^= 0x80
            expectCKR(CKR_ENCRYPTED_DATA_INVALID) { _ = try m.decryptAll(s, lwe2, k, shifted) }
            // LWE1 is never decrypted, through either mechanism.
            let c1 = try m.encryptAll(s, lwe1, k, values([5]))
            expectCKR(CKR_ENCRYPTED_DATA_INVALID) { _ = try m.decryptAll(s, lwe1, k, c1) }
            expectCKR(CKR_ENCRYPTED_DATA_INVALID) { _ = try m.decryptAll(s, lwe2, k, c1) }
            // The rule can be tightened but never loosened.
            expectCKR(CKR_ATTRIBUTE_READ_ONLY) { try m.setAttributeValues(s, k, template: [ulongAttr(CK.attrN2HEDecryptRule, 2)]) }
        }
    }

    func testSeededSumsDecryptOnceAndStayExact() throws {
        let env = try TestEnvironment()
        let m = try env.module()
        let s = try m.readySession()
        let k = try n2heKey(m, s, token: true)
        let params = try N2HEParameters(n: 256)
        let a = try m.encryptAll(s, lwe2, k, values([10, 20]))
        let b = try m.encryptAll(s, lwe2, k, values([1, 65535]))
        let c = try m.encryptAll(s, lwe2, k, values([7, 1]))
        let ab = try N2HEHomomorphic.add(a, b, parameters: params)
        XCTAssertEqual(Array(ab.prefix(4)), Array("LWS1".utf8))
        let abc = try N2HEHomomorphic.add(ab, c, parameters: params)
        XCTAssertEqual(abc.count, N2HESeededSum.byteCount(count: 2, seedCount: 3))
        XCTAssertEqual(ints(try m.decryptAll(s, lwe2, k, abc)), [18, 20])   // 20 + 65535 + 1 mod 2^16
        // The sum spent its seeds: neither a part nor a sum naming one of them again decrypts.
        expectCKR(CKR_ENCRYPTED_DATA_INVALID) { _ = try m.decryptAll(s, lwe2, k, a) }
        let d = try m.encryptAll(s, lwe2, k, values([1, 1]))
        let twice = try N2HEHomomorphic.add(d, d, parameters: params)
        expectCKR(CKR_ENCRYPTED_DATA_INVALID) { _ = try m.decryptAll(s, lwe2, k, twice) }
        XCTAssertGreaterThan(params.maximumSeededSumTerms, 1000)
        // The seeded sum is refused through the LWE1 mechanism.
        let e = try m.encryptAll(s, lwe2, k, values([1, 1]))
        let f = try m.encryptAll(s, lwe2, k, values([1, 1]))
        expectCKR(CKR_ENCRYPTED_DATA_INVALID) { _ = try m.decryptAll(s, lwe1, k, try N2HEHomomorphic.add(e, f, parameters: params)) }
        let log = try String(contentsOfFile: env.auditPath, encoding: .utf8)
        XCTAssertTrue(log.contains("seed already decrypted"), "refusals are audited")
    }

    func testRawKeysBehaveLikeTheSDKAndAreAudited() throws {
        let env = try TestEnvironment(extra: "    policy: { max_decrypt_calls_per_hour: 3 }\n")
        let m = try env.module()
        let s = try m.readySession()
        let k = try n2heKey(m, s, token: true, rule: .raw)
        let c1 = try m.encryptAll(s, lwe1, k, values([5, 6]))
        XCTAssertEqual(ints(try m.decryptAll(s, lwe1, k, c1)), [5, 6])
        XCTAssertEqual(ints(try m.decryptAll(s, lwe1, k, c1)), [5, 6])
        let c2 = try m.encryptAll(s, lwe2, k, values([9]))
        XCTAssertEqual(ints(try m.decryptAll(s, lwe2, k, c2)), [9])
        expectCKR(CKR_KEY_FUNCTION_NOT_PERMITTED) { _ = try m.decryptAll(s, lwe2, k, c2) }
        let log = try String(contentsOfFile: env.auditPath, encoding: .utf8)
        XCTAssertEqual(log.components(separatedBy: "\"n2he_raw_decrypt\"").count - 1, 3)
        // Tightening to seeded-once is allowed, and then LWE1 is refused.
        try m.setAttributeValues(s, k, template: [ulongAttr(CK.attrN2HEDecryptRule, 1)])
        expectCKR(CKR_ENCRYPTED_DATA_INVALID) { _ = try m.decryptAll(s, lwe1, k, c1) }
    }

    /// The ledger belongs to the key's value: copies, session copies and re-unwraps of one key share it, and seeds
    /// are counted by the stream they select (aliases of one seed are one seed).
    func testEveryCopyOfAKeySharesOneLedger() throws {
        let env = try TestEnvironment()
        let m = try env.module()
        let s = try m.readySession()
        let k = try m.generateKey(s, mechanism: Mechanism(type: CK.mechN2HEKeyGen),
                                  template: [boolAttr(CKA_TOKEN, true), ulongAttr(CK.attrN2HEDimension, 64), boolAttr(CKA_EXTRACTABLE, true)])
        let copy = try m.copyObject(s, k, template: [boolAttr(CKA_TOKEN, false)])
        let wrapper = try m.generateKey(s, mechanism: Mechanism(type: CKM_AES_KEY_GEN),
                                        template: [ulongAttr(CKA_VALUE_LEN, 32), boolAttr(CKA_WRAP, true), boolAttr(CKA_UNWRAP, true)])
        let kwp = Mechanism(type: CKM_AES_KEY_WRAP_PAD)
        let blob = try twoStep { try m.wrapKey(s, mechanism: kwp, wrappingKey: wrapper, key: k, output: $0) }
        let tpl = [ulongAttr(CKA_CLASS, CKO_SECRET_KEY), ulongAttr(CKA_KEY_TYPE, CK.keyN2HE), ulongAttr(CK.attrN2HEDimension, 64)]
        let unwrapped = try blob.withUnsafeBytes { try m.unwrapKey(s, mechanism: kwp, unwrappingKey: wrapper, wrappedKey: $0, template: tpl) }
        // raw is never a rule for an unwrapped key.
        expectCKR(CKR_TEMPLATE_INCONSISTENT) {
            _ = try blob.withUnsafeBytes {
                try m.unwrapKey(s, mechanism: kwp, unwrappingKey: wrapper, wrappedKey: $0, template: tpl + [ulongAttr(CK.attrN2HEDecryptRule, 2)])
            }
        }
        let ct = try m.encryptAll(s, lwe2, k, values([7]))
        XCTAssertEqual(ints(try m.decryptAll(s, lwe2, copy, ct)), [7])
        for other in [k, copy, unwrapped] {
            expectCKR(CKR_ENCRYPTED_DATA_INVALID) { _ = try m.decryptAll(s, lwe2, other, ct) }
        }
        try m.destroyObject(s, unwrapped)
        let again = try blob.withUnsafeBytes { try m.unwrapKey(s, mechanism: kwp, unwrappingKey: wrapper, wrappedKey: $0, template: tpl) }
        expectCKR(CKR_ENCRYPTED_DATA_INVALID) { _ = try m.decryptAll(s, lwe2, again, ct) }
        // A seed and a different seed of the same PCG64 stream are one seed: leading zero bytes do not change the
        // big-endian integer numpy seeds with.
        let ct2 = try m.encryptAll(s, lwe2, k, values([9]))
        var zeroSeed = ct2
        for i in 13..<45 { zeroSeed[i] = 0 }
        zeroSeed[44] = 5
        XCTAssertEqual(N2HEMatrixExpansion.streamIdentity(seed: Array(zeroSeed[13..<45])), N2HEMatrixExpansion.streamIdentity(seed: [5]))
        _ = try m.decryptAll(s, lwe2, k, zeroSeed)   // decrypts (to noise): seed 5 is spent
        expectCKR(CKR_ENCRYPTED_DATA_INVALID) { _ = try m.decryptAll(s, lwe2, k, zeroSeed) }
        // Without a login a seeded-once key cannot decrypt (the ledger is keyed under the token's root key).
        try m.logout(s)
        let pub = try m.generateKey(s, mechanism: Mechanism(type: CK.mechN2HEKeyGen),
                                    template: [ulongAttr(CK.attrN2HEDimension, 64), boolAttr(CKA_PRIVATE, false)])
        expectCKR(CKR_USER_NOT_LOGGED_IN) { try m.decryptInit(s, mechanism: lwe2, key: pub) }
    }

    func testTwoModulesRacingOnOneSeedOneWins() throws {
        let env = try TestEnvironment()
        let m1 = try env.module()
        let s1 = try m1.readySession()
        let k1 = try n2heKey(m1, s1, token: true)
        let ct = try m1.encryptAll(s1, lwe2, k1, values([42]))
        let uid = try m1.bytes(s1, k1, CK.attrUniqueID) ?? []
        let m2 = try env.module()
        let s2 = try m2.openSession(0, flags: CKF_SERIAL_SESSION | CKF_RW_SESSION)
        try m2.login(s2, userType: CKU_USER, pin: userPIN)
        guard let k2 = try m2.find(s2, [bytesAttr(CK.attrUniqueID, uid)]).first else { return XCTFail("key not found") }
        let results = [Result { try m1.decryptAll(s1, lwe2, k1, ct) }, Result { try m2.decryptAll(s2, lwe2, k2, ct) }]
        XCTAssertEqual(results.filter { if case .success = $0 { return true } else { return false } }.count, 1)
    }
}
