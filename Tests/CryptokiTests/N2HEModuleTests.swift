import CP11Kit
import Foundation
import XCTest
@testable import Cryptoki

final class N2HEModuleTests: XCTestCase {
    var env: TestEnvironment!
    var m: Module!
    var s: CK_SESSION_HANDLE = 0
    let lwe1 = Mechanism(type: CK.mechN2HELWE1)
    let lwe2 = Mechanism(type: CK.mechN2HELWE2)

    override func setUpWithError() throws {
        env = try TestEnvironment()
        m = try env.module()
        s = try m.readySession()
    }

    func int64s(_ v: [Int64]) -> [UInt8] { v.flatMap { x in withUnsafeBytes(of: x.littleEndian) { Array($0) } } }
    func fromBytes(_ b: [UInt8]) -> [Int64] {
        stride(from: 0, to: b.count, by: 8).map { i in
            b[i..<(i + 8)].enumerated().reduce(Int64(0)) { acc, e in acc | (Int64(e.element) << (8 * Int64(e.offset))) }
        }
    }

    func testGenerateDefaultsAndReadOnlyAttributes() throws {
        let k = try m.generateKey(s, mechanism: Mechanism(type: CK.mechN2HEKeyGen),
                                  template: [boolAttr(CKA_TOKEN, true), boolAttr(CKA_EXTRACTABLE, true)])
        XCTAssertEqual(try m.ulong(s, k, CKA_KEY_TYPE), CK.keyN2HE)
        XCTAssertEqual(try m.ulong(s, k, CK.attrN2HEDimension), 1024)
        XCTAssertEqual(try m.ulong(s, k, CK.attrN2HEModulusBits), 32)
        XCTAssertEqual(try m.ulong(s, k, CK.attrN2HEPlaintextBits), 16)
        XCTAssertEqual(try m.ulong(s, k, CK.attrN2HENoiseMilli), 5120)
        XCTAssertNotNil(try m.ulong(s, k, CK.attrN2HESecurityBits))
        XCTAssertEqual(try m.ulong(s, k, CKA_VALUE_LEN), 8192)
        XCTAssertEqual(try m.ulong(s, k, CKA_KEY_GEN_MECHANISM), CK.mechN2HEKeyGen)
        let value = try XCTUnwrap(try m.bytes(s, k, CKA_VALUE))
        XCTAssertEqual(value.count, 8192)
        XCTAssertTrue(fromBytes(value).allSatisfy { (-1...1).contains($0) })
        for a in [ulongAttr(CK.attrN2HEDimension, 512), ulongAttr(CK.attrN2HEModulusBits, 48),
                  ulongAttr(CK.attrN2HEPlaintextBits, 8), ulongAttr(CK.attrN2HENoiseMilli, 500), ulongAttr(CK.attrN2HESecurityBits, 1)] {
            expectCKR(CKR_ATTRIBUTE_READ_ONLY) { try m.setAttributeValues(s, k, template: [a]) }
        }
        let gen = Mechanism(type: CK.mechN2HEKeyGen)
        expectCKR(CKR_ATTRIBUTE_READ_ONLY) { _ = try m.generateKey(s, mechanism: gen, template: [ulongAttr(CK.attrN2HESecurityBits, 128)]) }
        expectCKR(CKR_TEMPLATE_INCONSISTENT) { _ = try m.generateKey(s, mechanism: gen, template: [ulongAttr(CK.attrN2HEModulusBits, 40)]) }
        expectCKR(CKR_TEMPLATE_INCONSISTENT) { _ = try m.generateKey(s, mechanism: gen, template: [ulongAttr(CK.attrN2HEPlaintextBits, 32)]) }
        expectCKR(CKR_TEMPLATE_INCONSISTENT) { _ = try m.generateKey(s, mechanism: gen, template: [ulongAttr(CKA_VALUE_LEN, 16)]) }
        let small = try m.generateKey(s, mechanism: gen, template: [ulongAttr(CK.attrN2HEDimension, 256), ulongAttr(CK.attrN2HEModulusBits, 48),
                                                                    ulongAttr(CK.attrN2HENoiseMilli, 500)])
        XCTAssertEqual(try m.ulong(s, small, CKA_VALUE_LEN), 2048)
    }

    func testEncryptDecryptSingleAndMultipart() throws {
        // A raw key (the SDK's rule) so that LWE1 and repeated seeds decrypt; seeded-once: KeysStayInTests.
        let k = try m.generateKey(s, mechanism: Mechanism(type: CK.mechN2HEKeyGen),
                                  template: [ulongAttr(CK.attrN2HEDimension, 256), ulongAttr(CK.attrN2HEDecryptRule, 2)])
        let msgs: [Int64] = [0, 1, 42, 65535, -1, 70000, 12345, 3]
        let pt = int64s(msgs)
        let expected: [Int64] = [0, 1, 42, 65535, 65535, 70000 % 65536, 12345, 3]
        for mech in [lwe1, lwe2] {
            let ct = try m.encryptAll(s, mech, k, pt)
            XCTAssertEqual(ct.count, mech == lwe1 ? 13 + 8 * 8 * 256 + 64 : 45 + 64)
            XCTAssertEqual(fromBytes(try m.decryptAll(s, mech, k, ct)), expected)
            // The mechanism fixes the format.
            expectCKR(CKR_ENCRYPTED_DATA_INVALID) { _ = try m.decryptAll(s, mech == lwe1 ? lwe2 : lwe1, k, ct) }
            let multi = try m.encryptParts(s, mech, k, pt, chunks: [8, 24])
            XCTAssertEqual(fromBytes(try m.encryptParts(s, mech, k, multi, chunks: [13, 100], decrypt: true)), expected)
        }
        expectCKR(CKR_DATA_LEN_RANGE) { _ = try m.encryptAll(s, lwe1, k, [1, 2, 3]) }
        expectCKR(CKR_DATA_LEN_RANGE) { _ = try m.encryptAll(s, lwe1, k, []) }
        expectCKR(CKR_MECHANISM_PARAM_INVALID) { try m.encryptInit(s, mechanism: Mechanism(type: CK.mechN2HELWE1, parameter: .bytes([1])), key: k) }
        let aes = try m.aesKey(s)
        expectCKR(CKR_KEY_TYPE_INCONSISTENT) { try m.encryptInit(s, mechanism: lwe1, key: aes) }
        expectCKR(CKR_KEY_TYPE_INCONSISTENT) { try m.encryptInit(s, mechanism: Mechanism(type: CKM_AES_ECB), key: k) }

        // Malformed ciphertexts: never a crash, always the documented codes.
        let good = try m.encryptAll(s, lwe2, k, pt)
        var badMagic = good; badMagic[0] = 0x58
        expectCKR(CKR_ENCRYPTED_DATA_INVALID) { _ = try m.decryptAll(s, lwe2, k, badMagic) }
        expectCKR(CKR_ENCRYPTED_DATA_LEN_RANGE) { _ = try m.decryptAll(s, lwe2, k, Array(good.prefix(50))) }
        expectCKR(CKR_ENCRYPTED_DATA_LEN_RANGE) { _ = try m.decryptAll(s, lwe2, k, Array(good.prefix(5))) }
        var wrongN = good; wrongN[8] = 0; wrongN[9] = 2  // n = 512
        expectCKR(CKR_ENCRYPTED_DATA_INVALID) { _ = try m.decryptAll(s, lwe2, k, wrongN) }
        var unseeded = good; unseeded[12] = 0x01
        expectCKR(CKR_ENCRYPTED_DATA_INVALID) { _ = try m.decryptAll(s, lwe2, k, unseeded) }
    }

    /// `n2he.threads`: a large call (k·n ≥ 2^20) is split over threads; one-thread and three-thread modules on one
    /// store read each other's ciphertexts, both formats.
    func testThreadedModuleMatchesSingleThreaded() throws {
        let text = try String(contentsOfFile: env.configPath, encoding: .utf8)
        let threadedConfig = env.root + "/threaded.yaml"
        try env.write("n2he: { threads: 3 }\n" + text, to: threadedConfig)
        let threaded = try Module(configPath: threadedConfig)
        defer { threaded.finalize() }
        XCTAssertEqual(threaded.configuration.n2heThreads, 3)
        let ts = try threaded.userSession()
        let key = try threaded.generateKey(ts, mechanism: Mechanism(type: CK.mechN2HEKeyGen),
                                           template: [boolAttr(CKA_TOKEN, true), textAttr(CKA_LABEL, "threaded"),
                                                      ulongAttr(CK.attrN2HEDecryptRule, 2)])
        let same = try XCTUnwrap(m.find(s, [textAttr(CKA_LABEL, "threaded")]).first)
        let count = 1100   // 1100 · 1024 entries: above N2HECipherOperation.parallelMinimumEntries
        XCTAssertGreaterThanOrEqual(count * 1024, N2HECipherOperation.parallelMinimumEntries)
        let msgs = (0..<count).map { Int64($0 &* 7919 % 65536) }
        for mech in [lwe1, lwe2] {
            let fromThreaded = try threaded.encryptAll(ts, mech, key, int64s(msgs))
            XCTAssertEqual(fromBytes(try m.decryptAll(s, mech, same, fromThreaded)), msgs)
            let fromSingle = try m.encryptAll(s, mech, same, int64s(msgs))
            XCTAssertEqual(fromBytes(try threaded.decryptAll(ts, mech, key, fromSingle)), msgs)
        }
        for bad in ["n2he: { threads: 0 }", "n2he: { threads: 65 }", "n2he: { threads: many }", "n2he: { thread: 2 }", "n2he: 4"] {
            XCTAssertThrowsError(try ConfigurationLoader.parse(bad, origin: "test"), bad)
        }
        XCTAssertEqual(try ConfigurationLoader.parse("n2he: { threads: auto }", origin: "test").n2heThreads,
                       Configuration.onlineProcessors)
    }

    func testImportValidation() throws {
        let base = [ulongAttr(CKA_CLASS, CKO_SECRET_KEY), ulongAttr(CKA_KEY_TYPE, CK.keyN2HE), ulongAttr(CK.attrN2HEDimension, 4)]
        XCTAssertNoThrow(try m.createObject(s, template: base + [bytesAttr(CKA_VALUE, int64s([1, 0, -1, 1]))]))
        expectCKR(CKR_ATTRIBUTE_VALUE_INVALID) { _ = try m.createObject(s, template: base + [bytesAttr(CKA_VALUE, int64s([1, 0, 2, 1]))]) }
        expectCKR(CKR_ATTRIBUTE_VALUE_INVALID) { _ = try m.createObject(s, template: base + [bytesAttr(CKA_VALUE, int64s([1, 0, 1]))]) }
        expectCKR(CKR_ATTRIBUTE_VALUE_INVALID) { _ = try m.createObject(s, template: base + [bytesAttr(CKA_VALUE, [1])]) }
    }

    /// The SDK's key imported with the SDK's decryption rule (`raw`: LWE1 decrypts) or the default (`seeded-once`).
    func importSDKKey(modulusBits: Int, rule: N2HEDecryptRule = .raw) throws -> CK_OBJECT_HANDLE {
        let raw = try [UInt8](Data(contentsOf: URL(fileURLWithPath: interopDirectory + "/sdk-key-1.bin")))
        return try m.createObject(s, template: [ulongAttr(CKA_CLASS, CKO_SECRET_KEY), ulongAttr(CKA_KEY_TYPE, CK.keyN2HE),
                                                bytesAttr(CKA_VALUE, raw), ulongAttr(CK.attrN2HEModulusBits, CK_ULONG(modulusBits)),
                                                ulongAttr(CK.attrN2HENoiseMilli, 500), boolAttr(CKA_TOKEN, true),
                                                ulongAttr(CK.attrN2HEDecryptRule, rule.rawValue),
                                                textAttr(CKA_LABEL, "sdk-key-1-q\(modulusBits)-\(rule.name)")])
    }

    func testSDKInteropFixtures() throws {
        let casesURL = URL(fileURLWithPath: interopDirectory + "/sdk-key-1.cases.json")
        guard FileManager.default.fileExists(atPath: casesURL.path) else {
            return XCTFail("interop fixtures not found at \(interopDirectory) (CI lays ../shared beside the clone)")
        }
        struct Case: Decodable { let file: String; let format: String; let modulus_bits: Int; let k: Int; let plaintext: [Int64] }
        struct Cases: Decodable { let cases: [Case] }
        let cases = try JSONDecoder().decode(Cases.self, from: Data(contentsOf: casesURL)).cases
        XCTAssertFalse(cases.isEmpty)
        let keys = [32: try importSDKKey(modulusBits: 32), 48: try importSDKKey(modulusBits: 48)]
        for c in cases {
            let ct = try [UInt8](Data(contentsOf: URL(fileURLWithPath: interopDirectory + "/" + c.file)))
            let key = try XCTUnwrap(keys[c.modulus_bits])
            let mech = c.format == "LWE1" ? lwe1 : lwe2
            let pt = try m.decryptAll(s, mech, key, ct)
            XCTAssertEqual(pt.count, 8 * c.k, c.file)
            XCTAssertEqual(fromBytes(pt), c.plaintext, c.file)
        }
        // Under the default rule the SDK's LWE2 files decrypt (each seed once: smudging keeps them exact) and
        // its LWE1 files are refused.
        let seeded = [32: try importSDKKey(modulusBits: 32, rule: .seededOnce), 48: try importSDKKey(modulusBits: 48, rule: .seededOnce)]
        for c in cases {
            let ct = try [UInt8](Data(contentsOf: URL(fileURLWithPath: interopDirectory + "/" + c.file)))
            let key = try XCTUnwrap(seeded[c.modulus_bits])
            if c.format == "LWE1" {
                expectCKR(CKR_ENCRYPTED_DATA_INVALID) { _ = try m.decryptAll(s, lwe1, key, ct) }
            } else {
                XCTAssertEqual(fromBytes(try m.decryptAll(s, lwe2, key, ct)), c.plaintext, c.file)
                expectCKR(CKR_ENCRYPTED_DATA_INVALID) { _ = try m.decryptAll(s, lwe2, key, ct) }
            }
        }
        // Our ciphertexts under the imported key decrypt back (format compatibility is covered by N2HE's tests).
        let msgs = int64s([7, 65000, 1])
        XCTAssertEqual(fromBytes(try m.decryptAll(s, lwe2, keys[32]!, try m.encryptAll(s, lwe2, keys[32]!, msgs))), [7, 65000, 1])
    }

    func testWrapUnwrapN2HEUnderKWP() throws {
        let kek = try m.generateKey(s, mechanism: Mechanism(type: CKM_AES_KEY_GEN),
                                    template: [ulongAttr(CKA_VALUE_LEN, 32), boolAttr(CKA_WRAP, true), boolAttr(CKA_UNWRAP, true)])
        let k = try m.generateKey(s, mechanism: Mechanism(type: CK.mechN2HEKeyGen),
                                  template: [ulongAttr(CK.attrN2HEDimension, 64), ulongAttr(CK.attrN2HEModulusBits, 48),
                                             boolAttr(CKA_EXTRACTABLE, true), boolAttr(CKA_SENSITIVE, true)])
        let kwp = Mechanism(type: CKM_AES_KEY_WRAP_PAD)
        let blob = try twoStep { try m.wrapKey(s, mechanism: kwp, wrappingKey: kek, key: k, output: $0) }
        XCTAssertEqual(blob.count, 8 * 64 + 8)
        let tpl = [ulongAttr(CKA_CLASS, CKO_SECRET_KEY), ulongAttr(CKA_KEY_TYPE, CK.keyN2HE),
                   ulongAttr(CK.attrN2HEDimension, 64), ulongAttr(CK.attrN2HEModulusBits, 48), boolAttr(CKA_EXTRACTABLE, true)]
        let u = try blob.withUnsafeBytes { try m.unwrapKey(s, mechanism: kwp, unwrappingKey: kek, wrappedKey: $0, template: tpl) }
        // Unwrapped as sensitive (the default); the same key value: the original's ciphertexts decrypt under it,
        // and so does the unwrapped key's decryption rule (seeded-once).
        XCTAssertEqual(try m.bool(s, u, CKA_SENSITIVE), true)
        XCTAssertEqual(try m.bytes(s, u, CKA_CHECK_VALUE), try m.bytes(s, k, CKA_CHECK_VALUE))
        let ct = try m.encryptAll(s, lwe2, k, int64s([5, 6]))
        XCTAssertEqual(fromBytes(try m.decryptAll(s, lwe2, u, ct)), [5, 6])
        // A template whose n disagrees with the wrapped length is refused.
        expectCKR(CKR_WRAPPED_KEY_INVALID) {
            _ = try blob.withUnsafeBytes {
                try m.unwrapKey(s, mechanism: kwp, unwrappingKey: kek, wrappedKey: $0,
                                template: [ulongAttr(CKA_CLASS, CKO_SECRET_KEY), ulongAttr(CKA_KEY_TYPE, CK.keyN2HE)])
            }
        }
    }

    func testTokenPolicyRefusesWeakKeys() throws {
        let env = try TestEnvironment(extra: "    min_n2he_security_bits: 100\n")
        let m = try env.module()
        let s = try m.readySession()
        let gen = Mechanism(type: CK.mechN2HEKeyGen)
        // n = 1024, q = 2^32 estimates below 128 but above 100; n = 256 is far below.
        let ok = try m.generateKey(s, mechanism: gen, template: [])
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(try m.ulong(s, ok, CK.attrN2HESecurityBits)), 100)
        expectCKR(CKR_TEMPLATE_INCONSISTENT) { _ = try m.generateKey(s, mechanism: gen, template: [ulongAttr(CK.attrN2HEDimension, 256)]) }
        expectCKR(CKR_TEMPLATE_INCONSISTENT) {
            _ = try m.createObject(s, template: [ulongAttr(CKA_CLASS, CKO_SECRET_KEY), ulongAttr(CKA_KEY_TYPE, CK.keyN2HE),
                                                ulongAttr(CK.attrN2HEDimension, 4), bytesAttr(CKA_VALUE, int64s([1, 0, -1, 1]))])
        }
    }
}
