// Token policies (docs/policies.md) through the Module API: every refusal with its CK_RV, decryption never
// refused, counts that survive a new Module (another process), ages checked with a shifted clock (no sleeping).
import CP11Kit
import CryptoCore
import Foundation
import Synchronization
import XCTest
@testable import Cryptoki

/// The wall clock plus an offset the test moves forward, handed to the module as its `PolicyClock`.
final class ShiftedClock: Sendable {
    private let offset = Atomic<Int64>(0)

    func shift(seconds: Int64) { offset.wrappingAdd(seconds, ordering: .relaxed) }

    var policyClock: PolicyClock {
        PolicyClock { [self] in UInt64(max(0, Int64(time(nil)) + self.offset.load(ordering: .relaxed))) }
    }
}

/// A one-token config with a `policy:` section and an audit file, rewritable between modules.
final class PolicyEnvironment {
    let root: String
    let configPath: String
    let auditPath: String
    /// What every module of this environment sees as the time.
    let clock = ShiftedClock()

    init() throws {
        root = NSTemporaryDirectory() + "cryptoki-policy-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        configPath = root + "/config.yaml"
        auditPath = root + "/audit.log"
    }

    /// The audit log always goes to the test's directory, never the user's default one.
    func configure(policy: String?) throws {
        var yaml = "log: { level: off }\naudit: { file: \(auditPath), sync: false }\n"
        yaml += "tokens:\n  - name: p0\n    store: \(root)/p0\n    pin_kdf_cost: 10\n"
        if let policy { yaml += "    policy: \(policy)\n" }
        try yaml.write(toFile: configPath, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: configPath)
    }

    func module(policy: String?) throws -> Module {
        try configure(policy: policy)
        return try Module(configPath: configPath, clock: clock.policyClock)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }
}

let policyLWE2 = Mechanism(type: CK.mechN2HELWE2)

final class ManagedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
let policyPlaintext: [UInt8] = Array(repeating: 0, count: 8) + [7, 0, 0, 0, 0, 0, 0, 0]

extension Module {
    func n2heKey(_ s: CK_SESSION_HANDLE, token: Bool = true, extra: [Attribute] = []) throws -> CK_OBJECT_HANDLE {
        try generateKey(s, mechanism: Mechanism(type: CK.mechN2HEKeyGen),
                        template: [ulongAttr(CK.attrN2HEDimension, 256), boolAttr(CKA_TOKEN, token),
                                   textAttr(CKA_LABEL, "policy-key")] + extra)
    }

    /// Logs in as the user on a token initialised earlier (by another Module).
    func userSession() throws -> CK_SESSION_HANDLE {
        let s = try openSession(0, flags: CKF_SERIAL_SESSION | CKF_RW_SESSION)
        try login(s, userType: CKU_USER, pin: userPIN)
        return s
    }
}

final class PolicyConfigTests: XCTestCase {
    func testParsesPolicyAndTheOldSpelling() throws {
        let c = try ConfigurationLoader.parse("""
        tokens:
          - name: a
            store: /tmp/a
            policy:
              min_n2he_security_bits: 100
              allowed_mechanisms: [CKM_AES_GCM, ckm_tg_n2he_lwe2, "0xD4470001", 4224]
              allow_extractable: false
              max_key_uses: 1000
              max_key_age_days: 365
              rotation_reminder_days: 300
          - name: b
            store: /tmp/b
            min_n2he_security_bits: 80
          - name: c
            store: /tmp/c
        """, origin: "test")
        let p = c.tokens[0].policy
        XCTAssertEqual(p.minN2HESecurityBits, 100)
        XCTAssertEqual(p.allowedMechanisms, [CKM_AES_GCM, CK.mechN2HELWE2, CK.mechN2HEKeyGen, CKM_AES_KEY_GEN])
        XCTAssertFalse(p.allowExtractable)
        XCTAssertEqual(p.maxKeyUses, 1000)
        XCTAssertEqual(p.maxKeyAgeDays, 365)
        XCTAssertEqual(p.rotationReminderDays, 300)
        XCTAssertTrue(p.limitsKeyUse)
        XCTAssertEqual(c.tokens[1].policy.minN2HESecurityBits, 80)
        XCTAssertEqual(c.tokens[1].minN2HESecurityBits, 80)
        XCTAssertEqual(c.tokens[2].policy, TokenPolicy())
        XCTAssertFalse(c.tokens[2].policy.limitsKeyUse)
    }

    func testRejectsBadPolicies() {
        let cases: [(String, String)] = [
            ("policy: 3", "tokens[0].policy must be a mapping"),
            ("policy: { max_uses: 3 }", "unknown key 'tokens[0].policy.max_uses'"),
            ("policy: { allowed_mechanisms: [CKM_RSA_PKCS] }", "'CKM_RSA_PKCS' is not a mechanism of this module"),
            ("policy: { allowed_mechanisms: [0x1] }", "'0x1' is not a mechanism of this module"),
            ("policy: { allowed_mechanisms: CKM_AES_GCM }", "must be a list of mechanism names"),
            ("policy: { allow_extractable: maybe }", "allow_extractable must be true or false"),
            ("policy: { max_key_uses: 0 }", "max_key_uses must be a positive integer"),
            ("policy: { max_key_age_days: -1 }", "max_key_age_days must be a number of days"),
            ("policy: { rotation_reminder_days: x }", "rotation_reminder_days must be a number of days"),
            ("policy: { min_n2he_security_bits: 257 }", "min_n2he_security_bits must be an integer in 0...256"),
            ("min_n2he_security_bits: 10, policy: { min_n2he_security_bits: 20 }", "are both given"),
        ]
        for (fragment, message) in cases {
            let yaml = "tokens: [ { name: a, store: /x, \(fragment) } ]"
            XCTAssertThrowsError(try ConfigurationLoader.parse(yaml, origin: "test"), yaml) { e in
                XCTAssertEqual((e as? ConfigurationError)?.rv, CKR_GENERAL_ERROR, yaml)
                XCTAssertTrue("\(e)".contains(message), "\(yaml): \(e)")
                XCTAssertFalse("\(e)".contains("config test: config test"), "\(e)")
            }
        }
    }

    func testOperatorAPIReportsPolicies() throws {
        let env = try PolicyEnvironment()
        try env.configure(policy: "{ max_key_age_days: 90, rotation_reminder_days: 60, allowed_mechanisms: [CKM_TG_N2HE_LWE2] }")
        let (source, policies) = try OperatorConfiguration.tokenPolicies(explicitPath: env.configPath)
        XCTAssertEqual(source, env.configPath)
        let p = try XCTUnwrap(policies["p0"])
        XCTAssertEqual(p.maxKeyAgeDays, 90)
        XCTAssertEqual(p.rotationReminderDays, 60)
        XCTAssertNil(p.maxKeyUses)
        XCTAssertEqual(p.allowedMechanisms, ["CKM_TG_N2HE_LWE2"])
    }

    func testKeyUsageEvaluation() {
        var p = TokenPolicy()
        p.maxKeyAgeDays = 10
        p.maxKeyUses = 2
        // A key from before creation times existed: stamped at first sight, then aged from there.
        var legacy = KeyUsage(created: nil, uses: 0)
        let first = legacy.evaluate(p, now: 1_000_000, charge: true)
        XCTAssertNil(first.refusal)
        XCTAssertTrue(first.changed)
        XCTAssertEqual(legacy, KeyUsage(created: 1_000_000, uses: 1))
        XCTAssertNil(legacy.evaluate(p, now: 1_000_000 + 9 * 86_400, charge: true).refusal)
        XCTAssertEqual(legacy.uses, 2)
        XCTAssertEqual(legacy.evaluate(p, now: 1_000_001, charge: true).refusal?.hasPrefix("max_key_uses 2 reached"), true)
        XCTAssertEqual(legacy.evaluate(p, now: 1_000_000 + 10 * 86_400, charge: true).refusal?.hasPrefix("max_key_age_days 10 reached"), true)
        XCTAssertEqual(legacy.uses, 2, "a refused use is not counted")
        // No use limit: nothing to write for a key whose creation time is known.
        var q = TokenPolicy()
        q.maxKeyAgeDays = 10
        var known = KeyUsage(created: 5, uses: 0)
        XCTAssertEqual(known.evaluate(q, now: 6, charge: true).changed, false)
    }
}

final class PolicyModuleTests: XCTestCase {
    func testMechanismAllowlist() throws {
        let env = try PolicyEnvironment()
        let m = try env.module(policy: "{ allowed_mechanisms: [CKM_AES_KEY_GEN, CKM_AES_GCM, CKM_TG_N2HE_LWE2] }")
        let s = try m.readySession()
        XCTAssertEqual(try m.mechanismList(0), [CKM_AES_KEY_GEN, CKM_AES_GCM, CK.mechN2HELWE2])
        expectCKR(CKR_MECHANISM_INVALID) { _ = try m.mechanismInfo(0, CKM_AES_CBC_PAD) }
        XCTAssertNoThrow(try m.mechanismInfo(0, CKM_AES_GCM))
        let aes = try m.aesKey(s, extra: [boolAttr(CKA_EXTRACTABLE, false)])
        expectCKR(CKR_MECHANISM_INVALID) { try m.encryptInit(s, mechanism: Mechanism(type: CKM_AES_CBC_PAD), key: aes) }
        expectCKR(CKR_MECHANISM_INVALID) { try m.decryptInit(s, mechanism: Mechanism(type: CKM_AES_ECB), key: aes) }
        expectCKR(CKR_MECHANISM_INVALID) { try m.digestInit(s, mechanism: Mechanism(type: CKM_SHA256)) }
        expectCKR(CKR_MECHANISM_INVALID) { try m.signInit(s, mechanism: Mechanism(type: CKM_SHA256_HMAC), key: aes) }
        expectCKR(CKR_MECHANISM_INVALID) { _ = try m.n2heKey(s) }
        expectCKR(CKR_MECHANISM_INVALID) {
            _ = try m.generateKey(s, mechanism: Mechanism(type: CKM_GENERIC_SECRET_KEY_GEN), template: [ulongAttr(CKA_VALUE_LEN, 32)])
        }
        expectCKR(CKR_MECHANISM_INVALID) {
            _ = try m.wrapKey(s, mechanism: Mechanism(type: CKM_AES_KEY_WRAP_PAD), wrappingKey: aes, key: aes, output: .lengthQuery)
        }
        // What is allowed still works.
        let gcm = Mechanism(type: CKM_AES_GCM, parameter: .gcm(iv: [UInt8](repeating: 1, count: 12), aad: [], tagBits: 128))
        let ct = try m.encryptAll(s, gcm, aes, [1, 2, 3])
        XCTAssertEqual(try m.decryptAll(s, gcm, aes, ct), [1, 2, 3])
    }

    func testExtractableKeysRefused() throws {
        let env = try PolicyEnvironment()
        // Before the policy: an extractable token key and a wrapping key with a known value.
        var m = try env.module(policy: nil)
        var s = try m.readySession()
        let kek: [UInt8] = Array(0..<32)
        _ = try m.aesKey(s, token: true, extra: [boolAttr(CKA_EXTRACTABLE, true), textAttr(CKA_LABEL, "old-extractable")])
        _ = try m.aesKey(s, value: kek, token: true, extra: [boolAttr(CKA_EXTRACTABLE, false), boolAttr(CKA_UNWRAP, true),
                                                             textAttr(CKA_LABEL, "kek")])
        m.finalize()

        m = try env.module(policy: "{ allow_extractable: false }")
        s = try m.userSession()
        let old = try XCTUnwrap(m.find(s, [textAttr(CKA_LABEL, "old-extractable")]).first)
        let kekHandle = try XCTUnwrap(m.find(s, [textAttr(CKA_LABEL, "kek")]).first)
        let yes = boolAttr(CKA_EXTRACTABLE, true)
        expectCKR(CKR_TEMPLATE_INCONSISTENT) {
            _ = try m.generateKey(s, mechanism: Mechanism(type: CKM_AES_KEY_GEN), template: [ulongAttr(CKA_VALUE_LEN, 32), yes])
        }
        expectCKR(CKR_TEMPLATE_INCONSISTENT) { _ = try m.n2heKey(s, extra: [yes]) }
        expectCKR(CKR_TEMPLATE_INCONSISTENT) {
            _ = try m.createObject(s, template: [ulongAttr(CKA_CLASS, CKO_SECRET_KEY), ulongAttr(CKA_KEY_TYPE, CKK_AES),
                                                 bytesAttr(CKA_VALUE, Array(repeating: 7, count: 16)), yes])
        }
        // Unwrap: a blob made outside the token under the KEK's known value.
        let kwp = Mechanism(type: CKM_AES_KEY_WRAP_PAD)
        let blob = try AESKeyWrap.wrap(kek: SecretBytes(copying: kek), plaintext: Array(repeating: UInt8(9), count: 32), padded: true)
        let unwrapTemplate = [ulongAttr(CKA_KEY_TYPE, CKK_AES)]
        expectCKR(CKR_TEMPLATE_INCONSISTENT) {
            _ = try blob.withUnsafeBytes { try m.unwrapKey(s, mechanism: kwp, unwrappingKey: kekHandle, wrappedKey: $0, template: unwrapTemplate + [yes]) }
        }
        let unwrapped = try blob.withUnsafeBytes { try m.unwrapKey(s, mechanism: kwp, unwrappingKey: kekHandle, wrappedKey: $0, template: unwrapTemplate) }
        XCTAssertEqual(try m.bool(s, unwrapped, CKA_EXTRACTABLE), false)
        // New keys default to non-extractable.
        let fresh = try m.n2heKey(s)
        XCTAssertEqual(try m.bool(s, fresh, CKA_EXTRACTABLE), false)
        // An old extractable key: copying it as is, or restating CKA_EXTRACTABLE = true, is refused.
        expectCKR(CKR_TEMPLATE_INCONSISTENT) { _ = try m.copyObject(s, old, template: []) }
        let copy = try m.copyObject(s, old, template: [boolAttr(CKA_EXTRACTABLE, false)])
        XCTAssertEqual(try m.bool(s, copy, CKA_EXTRACTABLE), false)
        expectCKR(CKR_ATTRIBUTE_VALUE_INVALID) { try m.setAttributeValues(s, old, template: [yes]) }
        XCTAssertNoThrow(try m.setAttributeValues(s, old, template: [boolAttr(CKA_EXTRACTABLE, false)]))
        // The standard rule still answers first for a key that never was extractable.
        expectCKR(CKR_ATTRIBUTE_READ_ONLY) { try m.setAttributeValues(s, fresh, template: [yes]) }
    }

    func testMaxKeyUsesRefusesEncryptionButNeverDecryption() throws {
        let env = try PolicyEnvironment()
        var m = try env.module(policy: "{ max_key_uses: 2 }")
        var s = try m.readySession()
        let key = try m.n2heKey(s)
        let session = try m.n2heKey(s, token: false)
        XCTAssertEqual(try m.ulong(s, key, CK.attrKeyUseCount), 0)
        let ct1 = try m.encryptAll(s, policyLWE2, key, policyPlaintext)
        XCTAssertEqual(try m.ulong(s, key, CK.attrKeyUseCount), 1)
        m.finalize()

        // Another Module on the same store (as another process would be) continues the count.
        m = try env.module(policy: "{ max_key_uses: 2 }")
        s = try m.userSession()
        let again = try XCTUnwrap(m.find(s, [textAttr(CKA_LABEL, "policy-key"), boolAttr(CKA_TOKEN, true)]).first)
        let ct2 = try m.encryptAll(s, policyLWE2, again, policyPlaintext)
        XCTAssertEqual(try m.ulong(s, again, CK.attrKeyUseCount), 2)
        expectCKR(CKR_KEY_FUNCTION_NOT_PERMITTED) { try m.encryptInit(s, mechanism: policyLWE2, key: again) }
        expectCKR(CKR_KEY_FUNCTION_NOT_PERMITTED) { try m.encryptInit(s, mechanism: Mechanism(type: CK.mechN2HELWE1), key: again) }
        XCTAssertEqual(try m.ulong(s, again, CK.attrKeyUseCount), 2, "refusals are not counted")
        XCTAssertEqual(try m.decryptAll(s, policyLWE2, again, ct1), policyPlaintext)
        XCTAssertEqual(try m.decryptAll(s, policyLWE2, again, ct2), policyPlaintext)
        // Read-only: nobody resets the count.
        expectCKR(CKR_ATTRIBUTE_READ_ONLY) { try m.setAttributeValues(s, again, template: [ulongAttr(CK.attrKeyUseCount, 0)]) }
        expectCKR(CKR_ATTRIBUTE_READ_ONLY) { _ = try m.n2heKey(s, extra: [ulongAttr(CK.attrKeyCreated, 1)]) }
        // A copy that could encrypt would start a count of its own: refused; a decrypt-only copy is fine.
        expectCKR(CKR_TEMPLATE_INCONSISTENT) { _ = try m.copyObject(s, again, template: []) }
        let decryptOnly = try m.copyObject(s, again, template: [boolAttr(CKA_ENCRYPT, false), boolAttr(CKA_SIGN, false)])
        // The copy shares the original's seed ledger: ct1 was decrypted above, so it is refused now.
        expectCKR(CKR_ENCRYPTED_DATA_INVALID) { _ = try m.decryptAll(s, policyLWE2, decryptOnly, ct1) }
        XCTAssertEqual(try m.bool(s, decryptOnly, CKA_DECRYPT), true)
        expectCKR(CKR_KEY_FUNCTION_NOT_PERMITTED) { try m.encryptInit(s, mechanism: policyLWE2, key: decryptOnly) }
        _ = session
        m.finalize()

        // Session objects are counted in memory.
        m = try env.module(policy: "{ max_key_uses: 1 }")
        s = try m.userSession()
        let sk = try m.n2heKey(s, token: false)
        _ = try m.encryptAll(s, policyLWE2, sk, policyPlaintext)
        expectCKR(CKR_KEY_FUNCTION_NOT_PERMITTED) { try m.encryptInit(s, mechanism: policyLWE2, key: sk) }
        // Sign counts too; verify never refused.
        let hmac = try m.generateKey(s, mechanism: Mechanism(type: CKM_GENERIC_SECRET_KEY_GEN), template: [ulongAttr(CKA_VALUE_LEN, 32)])
        let mac = try [UInt8](repeating: 1, count: 5).withUnsafeBytes { d -> [UInt8] in
            try m.signInit(s, mechanism: Mechanism(type: CKM_SHA256_HMAC), key: hmac)
            return try twoStep { try m.sign(s, input: d, output: $0) }
        }
        expectCKR(CKR_KEY_FUNCTION_NOT_PERMITTED) { try m.signInit(s, mechanism: Mechanism(type: CKM_SHA256_HMAC), key: hmac) }
        try m.verifyInit(s, mechanism: Mechanism(type: CKM_SHA256_HMAC), key: hmac)
        try [UInt8](repeating: 1, count: 5).withUnsafeBytes { d in try mac.withUnsafeBytes { try m.verify(s, input: d, signature: $0) } }
    }

    /// Two Modules (two store connections, as two processes would have) race for the last uses: exactly
    /// max_key_uses inits succeed in total.
    func testUseCountIsExactUnderConcurrentModules() throws {
        let env = try PolicyEnvironment()
        let limit = 40
        let first = try env.module(policy: "{ max_key_uses: \(limit) }")
        let s1 = try first.readySession()
        _ = try first.n2heKey(s1)
        let second = try env.module(policy: "{ max_key_uses: \(limit) }")
        let s2 = try second.userSession()
        let k1 = try XCTUnwrap(first.find(s1, [textAttr(CKA_LABEL, "policy-key")]).first)
        let k2 = try XCTUnwrap(second.find(s2, [textAttr(CKA_LABEL, "policy-key")]).first)
        let results = [(first, s1, k1), (second, s2, k2)]
        let successes = ManagedCounter()
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            let (m, s, k) = results[i]
            while true {
                do {
                    try m.encryptInit(s, mechanism: policyLWE2, key: k)
                    try m.cancelOperations(s, flags: CKF_ENCRYPT)
                    successes.increment()
                } catch {
                    XCTAssertEqual((error as? CKRError)?.rv, CKR_KEY_FUNCTION_NOT_PERMITTED)
                    break
                }
            }
        }
        XCTAssertEqual(successes.value, limit)
        XCTAssertEqual(try first.ulong(s1, k1, CK.attrKeyUseCount), CK_ULONG(limit))
    }

    func testMaxKeyAgeRefusesEncryptionAndWrapButNeverDecryption() throws {
        let env = try PolicyEnvironment()
        let m = try env.module(policy: "{ max_key_age_days: 30 }")
        let s = try m.readySession()
        let key = try m.n2heKey(s)
        let created = try XCTUnwrap(m.ulong(s, key, CK.attrKeyCreated))
        XCTAssertLessThanOrEqual(abs(Int64(created) - Int64(Date().timeIntervalSince1970)), 5)
        let kek = try m.aesKey(s, token: true, extra: [boolAttr(CKA_EXTRACTABLE, false)])
        let target = try m.aesKey(s, token: true)
        let ct = try m.encryptAll(s, policyLWE2, key, policyPlaintext)
        XCTAssertEqual(try m.ulong(s, key, CK.attrKeyUseCount), 0, "no max_key_uses: nothing is counted or written")
        env.clock.shift(seconds: 29 * 86_400)
        XCTAssertNoThrow(try m.encryptAll(s, policyLWE2, key, policyPlaintext))
        env.clock.shift(seconds: 86_400)
        expectCKR(CKR_KEY_FUNCTION_NOT_PERMITTED) { try m.encryptInit(s, mechanism: policyLWE2, key: key) }
        expectCKR(CKR_KEY_FUNCTION_NOT_PERMITTED) {
            _ = try m.wrapKey(s, mechanism: Mechanism(type: CKM_AES_KEY_WRAP_PAD), wrappingKey: kek, key: target, output: .lengthQuery)
        }
        XCTAssertEqual(try m.decryptAll(s, policyLWE2, key, ct), policyPlaintext)
        // A key made "now" (on the shifted clock) is young again: rotation is the way out.
        let successor = try m.n2heKey(s)
        XCTAssertNoThrow(try m.encryptAll(s, policyLWE2, successor, policyPlaintext))
    }

    func testNoPolicyWritesNothingPerOperation() throws {
        let env = try PolicyEnvironment()
        let m = try env.module(policy: nil)
        let s = try m.readySession()
        let key = try m.n2heKey(s)
        let before = try XCTUnwrap(m.bytes(s, key, CK.attrKeyUseCount))
        for _ in 0..<3 { _ = try m.encryptAll(s, policyLWE2, key, policyPlaintext) }
        XCTAssertEqual(try m.bytes(s, key, CK.attrKeyUseCount), before)
        XCTAssertEqual(try m.mechanismList(0), Mechanisms.list)
    }

    func testMinimumSecurityUnderPolicyAndOldSpelling() throws {
        let env = try PolicyEnvironment()
        let m = try env.module(policy: "{ min_n2he_security_bits: 100 }")
        let s = try m.readySession()
        // n = 256, q = 2^32: far below 100 bits.
        expectCKR(CKR_TEMPLATE_INCONSISTENT) { _ = try m.n2heKey(s) }
        XCTAssertNoThrow(try m.generateKey(s, mechanism: Mechanism(type: CK.mechN2HEKeyGen), template: []))
    }
}

/// The audit records of policy refusals (top-level `audit: { file: ... }`, docs/audit.md).
final class PolicyAuditRecordTests: XCTestCase {
    func testPolicyRefusalsAreAudited() throws {
        let env = try PolicyEnvironment()
        let m = try env.module(policy: "{ max_key_uses: 1, max_key_age_days: 400, allow_extractable: false, allowed_mechanisms: [CKM_TG_N2HE_KEY_GEN, CKM_TG_N2HE_LWE2, CKM_AES_KEY_GEN] }")
        let s = try m.readySession()
        let key = try m.n2heKey(s)
        let uid = try XCTUnwrap(m.bytes(s, key, CK.attrUniqueID)).map { Character(UnicodeScalar($0)) }
        _ = try m.encryptAll(s, policyLWE2, key, policyPlaintext)
        expectCKR(CKR_KEY_FUNCTION_NOT_PERMITTED) { try m.encryptInit(s, mechanism: policyLWE2, key: key) }
        expectCKR(CKR_MECHANISM_INVALID) { try m.encryptInit(s, mechanism: Mechanism(type: CK.mechN2HELWE1), key: key) }
        expectCKR(CKR_TEMPLATE_INCONSISTENT) { _ = try m.n2heKey(s, extra: [boolAttr(CKA_EXTRACTABLE, true)]) }
        let young = try m.n2heKey(s)
        env.clock.shift(seconds: 400 * 86_400)
        expectCKR(CKR_KEY_FUNCTION_NOT_PERMITTED) { try m.encryptInit(s, mechanism: policyLWE2, key: young) }
        m.finalize()

        let log = try String(contentsOfFile: env.auditPath, encoding: .utf8)
        let refusals = log.split(separator: "\n").filter { $0.contains("policy_refusal") }
        func record(_ reason: String, _ rvName: String, _ rv: CK_RV, file: StaticString = #filePath, line: UInt = #line) -> Substring? {
            let r = refusals.first { $0.contains(reason) }
            XCTAssertNotNil(r, "no policy_refusal record with \"\(reason)\" in\n\(log)", file: file, line: line)
            if let r {
                XCTAssertTrue(r.contains(String(format: "\"rv\":\"0x%08lX\"", rv)), "record lacks its CK_RV \(rvName): \(r)",
                              file: file, line: line)
                XCTAssertTrue(r.contains("\"outcome\":\"failure\""), "\(r)", file: file, line: line)
            }
            return r
        }
        let uses = record("max_key_uses 1 reached", "CKR_KEY_FUNCTION_NOT_PERMITTED", CKR_KEY_FUNCTION_NOT_PERMITTED)
        XCTAssertTrue(uses?.contains(String(uid)) ?? false, "record names the key's unique id: \(uses ?? "")")
        XCTAssertTrue(uses?.contains("policy-key") ?? false, "record names the key's label: \(uses ?? "")")
        _ = record("CKM_TG_N2HE_LWE1 is not in allowed_mechanisms", "CKR_MECHANISM_INVALID", CKR_MECHANISM_INVALID)
        _ = record("allow_extractable is false", "CKR_TEMPLATE_INCONSISTENT", CKR_TEMPLATE_INCONSISTENT)
        _ = record("max_key_age_days 400 reached", "CKR_KEY_FUNCTION_NOT_PERMITTED", CKR_KEY_FUNCTION_NOT_PERMITTED)
    }
}
