import CP11Kit
import XCTest
@testable import Cryptoki

final class MechanismTests: XCTestCase {
    var env: TestEnvironment!
    var m: Module!
    var s: CK_SESSION_HANDLE = 0

    override func setUpWithError() throws {
        env = try TestEnvironment()
        m = try env.module()
        s = try m.readySession()
    }

    func gcm(_ iv: [UInt8], aad: [UInt8] = [], tagBits: UInt = 128) -> Mechanism {
        Mechanism(type: CKM_AES_GCM, parameter: .gcm(iv: iv, aad: aad, tagBits: tagBits))
    }

    func testMechanismInfo() throws {
        let list = try m.mechanismList(0)
        for t in [CKM_AES_KEY_GEN, CKM_AES_GCM, CKM_AES_CBC_PAD, CKM_AES_KEY_WRAP_PAD, CKM_SHA256, CKM_SHA256_HMAC,
                  CK.mechN2HEKeyGen, CK.mechN2HELWE1, CK.mechN2HELWE2] {
            XCTAssertTrue(list.contains(t))
        }
        let aes = try m.mechanismInfo(0, CKM_AES_GCM)
        XCTAssertEqual(aes.minKeySize, 16)
        XCTAssertEqual(aes.maxKeySize, 32)
        XCTAssertEqual(aes.flags & (CKF_ENCRYPT | CKF_DECRYPT), CKF_ENCRYPT | CKF_DECRYPT)
        XCTAssertNotEqual(try m.mechanismInfo(0, CKM_AES_KEY_WRAP).flags & CKF_WRAP, 0)
        XCTAssertEqual(try m.mechanismInfo(0, CKM_AES_KEY_WRAP).flags & (CKF_ENCRYPT | CKF_DECRYPT), 0)
        XCTAssertNotEqual(try m.mechanismInfo(0, CK.mechN2HEKeyGen).flags & CKF_GENERATE, 0)
        expectCKR(CKR_MECHANISM_INVALID) { _ = try m.mechanismInfo(0, CKM_RSA_PKCS) }
        expectCKR(CKR_SLOT_ID_INVALID) { _ = try m.mechanismInfo(9, CKM_AES_GCM) }
    }

    /// The registry is the one source: the list, the info, the policy names and the role flags all agree with it.
    func testRegistryIsTheOneSource() throws {
        XCTAssertEqual(try m.mechanismList(0), Mechanisms.registry.map(\.type))
        XCTAssertEqual(Set(Mechanisms.registry.map(\.name)).count, Mechanisms.registry.count, "names unique")
        for e in Mechanisms.registry {
            XCTAssertEqual(try m.mechanismInfo(0, e.type), e.info, e.name)
            XCTAssertEqual(Mechanisms.parse(e.name), e.type, e.name)
            XCTAssertEqual(Mechanisms.parse(e.name.lowercased()), e.type, e.name)
            XCTAssertEqual(Mechanisms.parse("0x" + String(e.type, radix: 16)), e.type, e.name)
            XCTAssertEqual(Mechanisms.name(e.type), e.name)
            let f = e.info.flags
            switch e.kind {
            case .keyGeneration: XCTAssertEqual(f, CKF_GENERATE, e.name)
            case .aesCipher, .n2heCipher: XCTAssertEqual(f, CKF_ENCRYPT | CKF_DECRYPT, e.name)
            case .aesKeyWrap: XCTAssertEqual(f, CKF_WRAP | CKF_UNWRAP, "\(e.name): wrap mechanisms never encrypt")
            case .digest: XCTAssertEqual(f, CKF_DIGEST, e.name)
            case .hmac: XCTAssertEqual(f, CKF_SIGN | CKF_VERIFY, e.name)
            }
        }
        XCTAssertNil(Mechanisms.parse("CKM_RSA_PKCS"), "only what the token offers")
        XCTAssertEqual(Mechanisms.name(CKM_RSA_PKCS), "0x1")
        // The vendor values are the header's, and the decryption rule's raw values its CKV_ constants.
        XCTAssertEqual(Mechanisms.parse("CKM_TG_N2HE_LWE2"), CK_MECHANISM_TYPE(CKM_TG_N2HE_LWE2))
        XCTAssertEqual(N2HEDecryptRule.seededOnce.rawValue, CK_ULONG(CKV_TG_N2HE_SEEDED_ONCE))
        XCTAssertEqual(N2HEDecryptRule.raw.rawValue, CK_ULONG(CKV_TG_N2HE_RAW))
    }

    func testAESGCMKnownAnswer() throws {
        // NIST GCM test case 4 (AES-128, 96-bit IV, AAD).
        let key = try m.aesKey(s, value: hex("feffe9928665731c6d6a8f9467308308"))
        let iv = hex("cafebabefacedbaddecaf888")
        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
        let pt = hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39")
        let expected = hex("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091")
            + hex("5bc94fbc3221a5db94fae95ae7121a47")
        XCTAssertEqual(try m.encryptAll(s, gcm(iv, aad: aad), key, pt), expected)
        XCTAssertEqual(try m.decryptAll(s, gcm(iv, aad: aad), key, expected), pt)
        XCTAssertEqual(try m.encryptParts(s, gcm(iv, aad: aad), key, pt, chunks: [1, 15, 16, 7]), expected)
        XCTAssertEqual(try m.encryptParts(s, gcm(iv, aad: aad), key, expected, chunks: [5, 30], decrypt: true), pt)
        var bad = expected
        bad[3] ^= 1
        expectCKR(CKR_ENCRYPTED_DATA_INVALID) { _ = try m.decryptAll(s, gcm(iv, aad: aad), key, bad) }
        expectCKR(CKR_OPERATION_NOT_INITIALIZED) { _ = try m.decryptFinal(s, output: .lengthQuery) }
        expectCKR(CKR_MECHANISM_PARAM_INVALID) { try m.encryptInit(s, mechanism: gcm([], aad: []), key: key) }
        expectCKR(CKR_MECHANISM_PARAM_INVALID) { try m.encryptInit(s, mechanism: gcm(iv, tagBits: 100), key: key) }
        expectCKR(CKR_MECHANISM_PARAM_INVALID) { try m.encryptInit(s, mechanism: Mechanism(type: CKM_AES_GCM, parameter: .bytes(iv)), key: key) }
        // Truncated tag (96 bits).
        let short = try m.encryptAll(s, gcm(iv, aad: aad, tagBits: 96), key, pt)
        XCTAssertEqual(short, Array(expected.prefix(pt.count + 12)))
    }

    func testCBCAndECBSingleVersusMultipart() throws {
        let key = try m.aesKey(s)
        let iv = [UInt8](repeating: 0x42, count: 16)
        let data = (0..<100).map { UInt8($0) }
        for (mech, input) in [(Mechanism(type: CKM_AES_CBC_PAD, parameter: .bytes(iv)), data),
                              (Mechanism(type: CKM_AES_CBC, parameter: .bytes(iv)), Array(data.prefix(96))),
                              (Mechanism(type: CKM_AES_ECB), Array(data.prefix(64)))] {
            let one = try m.encryptAll(s, mech, key, input)
            XCTAssertEqual(try m.encryptParts(s, mech, key, input, chunks: [3, 16, 33]), one)
            XCTAssertEqual(try m.decryptAll(s, mech, key, one), input)
            XCTAssertEqual(try m.encryptParts(s, mech, key, one, chunks: [7, 16, 1], decrypt: true), input)
        }
        expectCKR(CKR_DATA_LEN_RANGE) { _ = try m.encryptAll(s, Mechanism(type: CKM_AES_CBC, parameter: .bytes(iv)), key, [1, 2, 3]) }
        expectCKR(CKR_ENCRYPTED_DATA_LEN_RANGE) { _ = try m.decryptAll(s, Mechanism(type: CKM_AES_ECB), key, [1, 2, 3]) }
        expectCKR(CKR_MECHANISM_PARAM_INVALID) { try m.encryptInit(s, mechanism: Mechanism(type: CKM_AES_CBC, parameter: .bytes([1])), key: key) }
        // Multi-part CBC whose total is not a block multiple fails at the final call.
        try m.encryptInit(s, mechanism: Mechanism(type: CKM_AES_CBC, parameter: .bytes(iv)), key: key)
        _ = try [UInt8](repeating: 1, count: 20).withUnsafeBytes { d in try twoStep { try m.encryptUpdate(s, input: d, output: $0) } }
        expectCKR(CKR_DATA_LEN_RANGE) { _ = try m.encryptFinal(s, output: .lengthQuery) }
    }

    func testSizeQueryConvention() throws {
        let key = try m.aesKey(s)
        let iv = [UInt8](repeating: 1, count: 12)
        let data = [UInt8](repeating: 9, count: 4096)
        try m.encryptInit(s, mechanism: gcm(iv), key: key)
        try data.withUnsafeBytes { d in
            XCTAssertEqual(try m.encrypt(s, input: d, output: .lengthQuery), .lengthRequired(4096 + 16))
            var small = [UInt8](repeating: 0, count: 10)
            let r = try small.withUnsafeMutableBytes { try m.encrypt(s, input: d, output: .buffer($0)) }
            XCTAssertEqual(r, .bufferTooSmall(required: 4112))
            // Still active: the real call succeeds, then the operation is over.
            var out = [UInt8](repeating: 0, count: 5000)
            XCTAssertEqual(try out.withUnsafeMutableBytes { try m.encrypt(s, input: d, output: .buffer($0)) }, .written(4112))
            expectCKR(CKR_OPERATION_NOT_INITIALIZED) { _ = try m.encrypt(s, input: d, output: .lengthQuery) }
        }
        // CBC-PAD decryption: length only known after computing; computed once and kept for the fetch.
        let cbc = Mechanism(type: CKM_AES_CBC_PAD, parameter: .bytes([UInt8](repeating: 0, count: 16)))
        let ct = try m.encryptAll(s, cbc, key, [1, 2, 3, 4, 5])
        try m.decryptInit(s, mechanism: cbc, key: key)
        try ct.withUnsafeBytes { d in
            XCTAssertEqual(try m.decrypt(s, input: d, output: .lengthQuery), .lengthRequired(5))
            var out = [UInt8](repeating: 0, count: 5)
            XCTAssertEqual(try out.withUnsafeMutableBytes { try m.decrypt(s, input: d, output: .buffer($0)) }, .written(5))
            XCTAssertEqual(out, [1, 2, 3, 4, 5])
        }
        // An error ends the operation.
        try m.decryptInit(s, mechanism: cbc, key: key)
        try [UInt8](repeating: 0, count: 7).withUnsafeBytes { d in
            expectCKR(CKR_ENCRYPTED_DATA_LEN_RANGE) { _ = try m.decrypt(s, input: d, output: .lengthQuery) }
            expectCKR(CKR_OPERATION_NOT_INITIALIZED) { _ = try m.decrypt(s, input: d, output: .lengthQuery) }
        }
    }

    /// A KEK of a known value, as a deployment imports another HSM's: created by the SO, trusted, public
    /// (the SO sees public objects only), wrap/unwrap only.
    func trustedKEK(_ value: [UInt8], extra: [Attribute] = []) throws -> CK_OBJECT_HANDLE {
        try m.logout(s)
        try m.login(s, userType: CKU_SO, pin: soPIN)
        defer { _ = try? m.logout(s); _ = try? m.login(s, userType: CKU_USER, pin: userPIN) }
        return try m.createObject(s, template: [
            ulongAttr(CKA_CLASS, CKO_SECRET_KEY), ulongAttr(CKA_KEY_TYPE, CKK_AES), bytesAttr(CKA_VALUE, value),
            boolAttr(CKA_TOKEN, true), boolAttr(CKA_PRIVATE, false), boolAttr(CKA_TRUSTED, true),
            boolAttr(CKA_WRAP, true), boolAttr(CKA_UNWRAP, true), boolAttr(CKA_SENSITIVE, true),
        ] + extra)
    }

    /// An unwrapping key of a known value whose CKA_UNWRAP_TEMPLATE lets unwrapped keys be readable (so that
    /// known answers can be checked): the template, not the caller, decides.
    func readableUnwrapper(_ value: [UInt8]) throws -> CK_OBJECT_HANDLE {
        try m.aesKey(s, value: value, extra: [
            boolAttr(CKA_UNWRAP, true), boolAttr(CKA_EXTRACTABLE, false),
            Attribute(type: CK.unwrapTemplate, value: .template([boolAttr(CKA_SENSITIVE, false)])),
        ])
    }

    func testKeyWrapKnownAnswers() throws {
        // RFC 3394 §4.1: 128-bit KEK, 128-bit key data.
        let kekValue = hex("000102030405060708090A0B0C0D0E0F")
        let kek = try trustedKEK(kekValue)
        let keyData = hex("00112233445566778899AABBCCDDEEFF")
        let wrapped = hex("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5")
        let kw = Mechanism(type: CKM_AES_KEY_WRAP)
        // Wrap/unwrap only: never C_Encrypt / C_Decrypt (a wrapped key would decrypt to its value).
        expectCKR(CKR_MECHANISM_INVALID) { try m.encryptInit(s, mechanism: kw, key: kek) }
        expectCKR(CKR_MECHANISM_INVALID) { try m.decryptInit(s, mechanism: kw, key: kek) }
        let target = try m.aesKey(s, value: keyData)
        XCTAssertEqual(try twoStep { try m.wrapKey(s, mechanism: kw, wrappingKey: kek, key: target, output: $0) }, wrapped)
        // Explicit default IV gives the same result; another IV does not unwrap.
        let kwIV = Mechanism(type: CKM_AES_KEY_WRAP, parameter: .bytes(hex("A6A6A6A6A6A6A6A6")))
        XCTAssertEqual(try twoStep { try m.wrapKey(s, mechanism: kwIV, wrappingKey: kek, key: target, output: $0) }, wrapped)
        expectCKR(CKR_MECHANISM_PARAM_INVALID) {
            _ = try m.wrapKey(s, mechanism: Mechanism(type: CKM_AES_KEY_WRAP, parameter: .bytes([1])), wrappingKey: kek, key: target,
                              output: .lengthQuery)
        }
        let unwrapper = try readableUnwrapper(kekValue)
        let aes = [ulongAttr(CKA_CLASS, CKO_SECRET_KEY), ulongAttr(CKA_KEY_TYPE, CKK_AES)]
        expectCKR(CKR_WRAPPED_KEY_INVALID) {
            _ = try wrapped.withUnsafeBytes {
                try m.unwrapKey(s, mechanism: Mechanism(type: CKM_AES_KEY_WRAP, parameter: .bytes([1, 2, 3, 4, 5, 6, 7, 8])),
                                unwrappingKey: unwrapper, wrappedKey: $0, template: aes)
            }
        }
        let unwrapped = try wrapped.withUnsafeBytes {
            try m.unwrapKey(s, mechanism: kw, unwrappingKey: unwrapper, wrappedKey: $0, template: aes + [boolAttr(CKA_EXTRACTABLE, true)])
        }
        XCTAssertEqual(try m.bytes(s, unwrapped, CKA_VALUE), keyData)
        XCTAssertEqual(try m.bool(s, unwrapped, CKA_LOCAL), false)

        // RFC 5649 §6: 192-bit KEK, 20-octet key.
        let kek2Value = hex("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8")
        let kek2 = try trustedKEK(kek2Value)
        let kwp = Mechanism(type: CKM_AES_KEY_WRAP_PAD)
        let data20 = hex("c37b7e6492584340bed12207808941155068f738")
        let wrapped20 = hex("138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a")
        let generic = try m.createObject(s, template: [ulongAttr(CKA_CLASS, CKO_SECRET_KEY),
                                                       ulongAttr(CKA_KEY_TYPE, CKK_GENERIC_SECRET), bytesAttr(CKA_VALUE, data20),
                                                       boolAttr(CKA_EXTRACTABLE, true)])
        XCTAssertEqual(try twoStep { try m.wrapKey(s, mechanism: kwp, wrappingKey: kek2, key: generic, output: $0) }, wrapped20)
        let unwrapper2 = try readableUnwrapper(kek2Value)
        let back = try wrapped20.withUnsafeBytes {
            try m.unwrapKey(s, mechanism: kwp, unwrappingKey: unwrapper2, wrappedKey: $0,
                            template: [ulongAttr(CKA_CLASS, CKO_SECRET_KEY), ulongAttr(CKA_KEY_TYPE, CKK_GENERIC_SECRET),
                                       boolAttr(CKA_EXTRACTABLE, true)])
        }
        XCTAssertEqual(try m.bytes(s, back, CKA_VALUE), data20)
        var tampered = wrapped20
        tampered[9] ^= 0x80
        expectCKR(CKR_WRAPPED_KEY_INVALID) {
            _ = try tampered.withUnsafeBytes {
                try m.unwrapKey(s, mechanism: kwp, unwrappingKey: kek2, wrappedKey: $0,
                                template: [ulongAttr(CKA_CLASS, CKO_SECRET_KEY), ulongAttr(CKA_KEY_TYPE, CKK_GENERIC_SECRET)])
            }
        }
        expectCKR(CKR_WRAPPED_KEY_LEN_RANGE) {
            _ = try [UInt8](repeating: 0, count: 12).withUnsafeBytes {
                try m.unwrapKey(s, mechanism: kwp, unwrappingKey: kek2, wrappedKey: $0,
                                template: [ulongAttr(CKA_CLASS, CKO_SECRET_KEY), ulongAttr(CKA_KEY_TYPE, CKK_GENERIC_SECRET)])
            }
        }
        // KW needs a multiple of 8: a 20-byte key is out of range.
        expectCKR(CKR_KEY_SIZE_RANGE) { _ = try m.wrapKey(s, mechanism: kw, wrappingKey: kek, key: generic, output: .lengthQuery) }
    }

    /// A generated wrapping key (WRAP/UNWRAP only, sensitive and unextractable by default).
    func wrappingKey(_ extra: [Attribute] = []) throws -> CK_OBJECT_HANDLE {
        try m.generateKey(s, mechanism: Mechanism(type: CKM_AES_KEY_GEN),
                          template: [ulongAttr(CKA_VALUE_LEN, 32), boolAttr(CKA_WRAP, true), boolAttr(CKA_UNWRAP, true)] + extra)
    }

    func testWrapPolicies() throws {
        let kek = try wrappingKey()
        let kwp = Mechanism(type: CKM_AES_KEY_WRAP_PAD)
        let unextractable = try m.aesKey(s, extra: [boolAttr(CKA_EXTRACTABLE, false)])
        expectCKR(CKR_KEY_UNEXTRACTABLE) { _ = try m.wrapKey(s, mechanism: kwp, wrappingKey: kek, key: unextractable, output: .lengthQuery) }
        let trustedOnly = try m.aesKey(s, extra: [boolAttr(CKA_WRAP_WITH_TRUSTED, true)])
        expectCKR(CKR_KEY_NOT_WRAPPABLE) { _ = try m.wrapKey(s, mechanism: kwp, wrappingKey: kek, key: trustedOnly, output: .lengthQuery) }
        // Wrap template: only keys labelled "ok" may be wrapped by this KEK.
        let picky = try wrappingKey([Attribute(type: CK.wrapTemplate, value: .template([textAttr(CKA_LABEL, "ok")]))])
        let ok = try m.aesKey(s, extra: [textAttr(CKA_LABEL, "ok")])
        let notOK = try m.aesKey(s, extra: [textAttr(CKA_LABEL, "no")])
        XCTAssertEqual(try twoStep { try m.wrapKey(s, mechanism: kwp, wrappingKey: picky, key: ok, output: $0) }.count, 40)
        expectCKR(CKR_KEY_NOT_WRAPPABLE) { _ = try m.wrapKey(s, mechanism: kwp, wrappingKey: picky, key: notOK, output: .lengthQuery) }
        // Unwrap template merged into the caller's template; a conflict is refused.
        let unwrapper = try wrappingKey([Attribute(type: CK.unwrapTemplate, value: .template([boolAttr(CKA_SENSITIVE, true)]))])
        let blob = try twoStep { try m.wrapKey(s, mechanism: kwp, wrappingKey: unwrapper, key: ok, output: $0) }
        let base = [ulongAttr(CKA_CLASS, CKO_SECRET_KEY), ulongAttr(CKA_KEY_TYPE, CKK_AES)]
        let u = try blob.withUnsafeBytes { try m.unwrapKey(s, mechanism: kwp, unwrappingKey: unwrapper, wrappedKey: $0, template: base) }
        XCTAssertEqual(try m.bool(s, u, CKA_SENSITIVE), true)
        expectCKR(CKR_TEMPLATE_INCONSISTENT) {
            _ = try blob.withUnsafeBytes {
                try m.unwrapKey(s, mechanism: kwp, unwrappingKey: unwrapper, wrappedKey: $0, template: base + [boolAttr(CKA_SENSITIVE, false)])
            }
        }
        // Without CKA_KEY_TYPE an unwrapped key is a generic secret; a corrupted blob fails before the template is read.
        let generic = try blob.withUnsafeBytes {
            try m.unwrapKey(s, mechanism: kwp, unwrappingKey: unwrapper, wrappedKey: $0, template: [])
        }
        XCTAssertEqual(try m.ulong(s, generic, CKA_KEY_TYPE), CKK_GENERIC_SECRET)
        var corrupted = blob
        corrupted[0] ^= 1
        expectCKR(CKR_WRAPPED_KEY_INVALID) {
            _ = try corrupted.withUnsafeBytes {
                try m.unwrapKey(s, mechanism: kwp, unwrappingKey: unwrapper, wrappedKey: $0, template: [Attribute(type: CKA_TOKEN, bytes: [0, 0])])
            }
        }
        // SO marks a generated KEK trusted; then WRAP_WITH_TRUSTED keys wrap under it.
        let tokenKEK = try wrappingKey([boolAttr(CKA_TOKEN, true), boolAttr(CKA_PRIVATE, false)])  // the SO sees public objects only
        try m.logout(s)
        try m.login(s, userType: CKU_SO, pin: soPIN)
        XCTAssertNoThrow(try m.setAttributeValues(s, tokenKEK, template: [boolAttr(CKA_TRUSTED, true)]))
        try m.logout(s)
        try m.login(s, userType: CKU_USER, pin: userPIN)
        let t = try m.aesKey(s, extra: [boolAttr(CKA_WRAP_WITH_TRUSTED, true)])
        XCTAssertEqual(try twoStep { try m.wrapKey(s, mechanism: kwp, wrappingKey: tokenKEK, key: t, output: $0) }.count, 40)
    }

    func testDigestKnownAnswersAndDigestKey() throws {
        let abc = Array("abc".utf8)
        let vectors: [(CK_MECHANISM_TYPE, String)] = [
            (CKM_SHA_1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (CKM_SHA256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            (CKM_SHA384, "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"),
            (CKM_SHA512, "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"),
        ]
        for (mech, expected) in vectors {
            try m.digestInit(s, mechanism: Mechanism(type: mech))
            let d = try abc.withUnsafeBytes { a in try twoStep { try m.digest(s, input: a, output: $0) } }
            XCTAssertEqual(toHex(d), expected)
            try m.digestInit(s, mechanism: Mechanism(type: mech))
            for b in abc { try [b].withUnsafeBytes { try m.digestUpdate(s, input: $0) } }
            XCTAssertEqual(toHex(try twoStep { try m.digestFinal(s, output: $0) }), expected)
        }
        let key = try m.createObject(s, template: [ulongAttr(CKA_CLASS, CKO_SECRET_KEY), ulongAttr(CKA_KEY_TYPE, CKK_GENERIC_SECRET),
                                                   bytesAttr(CKA_VALUE, Array("bc".utf8)), boolAttr(CKA_EXTRACTABLE, true)])
        try m.digestInit(s, mechanism: Mechanism(type: CKM_SHA256))
        try [UInt8(ascii: "a")].withUnsafeBytes { try m.digestUpdate(s, input: $0) }
        try m.digestKey(s, key: key)
        XCTAssertEqual(toHex(try twoStep { try m.digestFinal(s, output: $0) }), vectors[1].1)
        // A key whose value the caller may not read is never digested (an offline equality oracle).
        for hidden in [[boolAttr(CKA_SENSITIVE, true), boolAttr(CKA_EXTRACTABLE, true)], [boolAttr(CKA_EXTRACTABLE, false)]] {
            let k = try m.createObject(s, template: [ulongAttr(CKA_CLASS, CKO_SECRET_KEY), ulongAttr(CKA_KEY_TYPE, CKK_GENERIC_SECRET),
                                                     bytesAttr(CKA_VALUE, Array("bc".utf8))] + hidden)
            try m.digestInit(s, mechanism: Mechanism(type: CKM_SHA256))
            expectCKR(CKR_KEY_INDIGESTIBLE) { try m.digestKey(s, key: k) }
        }
        expectCKR(CKR_MECHANISM_INVALID) { try m.digestInit(s, mechanism: Mechanism(type: CKM_MD5)) }
    }

    func testHMACKnownAnswerAndVerify() throws {
        // RFC 4231 test case 2.
        let key = try m.createObject(s, template: [ulongAttr(CKA_CLASS, CKO_SECRET_KEY), ulongAttr(CKA_KEY_TYPE, CKK_GENERIC_SECRET),
                                                   bytesAttr(CKA_VALUE, Array("Jefe".utf8))])
        let data = Array("what do ya want for nothing?".utf8)
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        let mech = Mechanism(type: CKM_SHA256_HMAC)
        try m.signInit(s, mechanism: mech, key: key)
        XCTAssertEqual(toHex(try data.withUnsafeBytes { d in try twoStep { try m.sign(s, input: d, output: $0) } }), expected)
        try m.signInit(s, mechanism: mech, key: key)
        for part in [Array(data[0..<5]), Array(data[5...])] { try part.withUnsafeBytes { try m.signUpdate(s, input: $0) } }
        XCTAssertEqual(toHex(try twoStep { try m.signFinal(s, output: $0) }), expected)
        try m.verifyInit(s, mechanism: mech, key: key)
        try data.withUnsafeBytes { d in try hex(expected).withUnsafeBytes { try m.verify(s, input: d, signature: $0) } }
        var bad = hex(expected)
        bad[0] ^= 1
        try m.verifyInit(s, mechanism: mech, key: key)
        expectCKR(CKR_SIGNATURE_INVALID) {
            try data.withUnsafeBytes { d in try bad.withUnsafeBytes { try m.verify(s, input: d, signature: $0) } }
        }
        try m.verifyInit(s, mechanism: mech, key: key)
        try data.withUnsafeBytes { try m.verifyUpdate(s, input: $0) }
        expectCKR(CKR_SIGNATURE_LEN_RANGE) { try Array(bad.prefix(10)).withUnsafeBytes { try m.verifyFinal(s, signature: $0) } }
        // SHA-512 HMAC, RFC 4231 test case 2.
        try m.signInit(s, mechanism: Mechanism(type: CKM_SHA512_HMAC), key: key)
        XCTAssertEqual(toHex(try data.withUnsafeBytes { d in try twoStep { try m.sign(s, input: d, output: $0) } }),
                       "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737")
    }

    func testRandom() throws {
        var a = [UInt8](repeating: 0, count: 64), b = a
        try a.withUnsafeMutableBytes { try m.generateRandom(s, into: $0) }
        try b.withUnsafeMutableBytes { try m.generateRandom(s, into: $0) }
        XCTAssertNotEqual(a, b)
        XCTAssertNoThrow(try [1, 2, 3].withUnsafeBytes { try m.seedRandom(s, seed: $0) })
        expectCKR(CKR_SESSION_HANDLE_INVALID) { try a.withUnsafeMutableBytes { try m.generateRandom(999_999, into: $0) } }
    }
}
