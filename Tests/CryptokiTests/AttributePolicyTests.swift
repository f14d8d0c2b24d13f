import CP11Kit
import XCTest
@testable import Cryptoki

final class AttributePolicyTests: XCTestCase {
    var env: TestEnvironment!
    var m: Module!
    var s: CK_SESSION_HANDLE = 0

    override func setUpWithError() throws {
        env = try TestEnvironment()
        m = try env.module()
        s = try m.readySession()
    }

    func testGeneratedKeyAttributes() throws {
        let k = try m.aesKey(s, extra: [boolAttr(CKA_SENSITIVE, true), textAttr(CKA_LABEL, "gen")])
        XCTAssertEqual(try m.ulong(s, k, CKA_CLASS), CKO_SECRET_KEY)
        XCTAssertEqual(try m.ulong(s, k, CKA_KEY_TYPE), CKK_AES)
        XCTAssertEqual(try m.ulong(s, k, CKA_VALUE_LEN), 32)
        XCTAssertEqual(try m.bool(s, k, CKA_LOCAL), true)
        XCTAssertEqual(try m.ulong(s, k, CKA_KEY_GEN_MECHANISM), CKM_AES_KEY_GEN)
        XCTAssertEqual(try m.bool(s, k, CKA_ALWAYS_SENSITIVE), true)
        XCTAssertEqual(try m.bool(s, k, CKA_NEVER_EXTRACTABLE), false)
        XCTAssertEqual(try m.bool(s, k, CKA_PRIVATE), true)
        XCTAssertEqual(try m.bool(s, k, CKA_MODIFIABLE), true)
        XCTAssertEqual(try m.bool(s, k, CKA_COPYABLE), true)
        XCTAssertEqual(try m.bool(s, k, CKA_DESTROYABLE), true)
        XCTAssertEqual(try m.bytes(s, k, CKA_CHECK_VALUE)?.count, 3)
        XCTAssertEqual(try m.bytes(s, k, CK.attrUniqueID)?.count, 32)
        XCTAssertEqual(try m.bytes(s, k, CKA_START_DATE), [])
        XCTAssertEqual(try m.attribute(s, k, CK.wrapTemplate), .value(.template([])))
        // Sensitive: never readable, and only ever becomes more sensitive.
        XCTAssertEqual(try m.attribute(s, k, CKA_VALUE), .sensitive)
        expectCKR(CKR_ATTRIBUTE_READ_ONLY) { try m.setAttributeValues(s, k, template: [boolAttr(CKA_SENSITIVE, false)]) }
        try m.setAttributeValues(s, k, template: [boolAttr(CKA_EXTRACTABLE, false)])
        expectCKR(CKR_ATTRIBUTE_READ_ONLY) { try m.setAttributeValues(s, k, template: [boolAttr(CKA_EXTRACTABLE, true)]) }
        XCTAssertEqual(try m.bool(s, k, CKA_NEVER_EXTRACTABLE), false)
        try m.setAttributeValues(s, k, template: [boolAttr(CKA_WRAP_WITH_TRUSTED, true)])
        expectCKR(CKR_ATTRIBUTE_READ_ONLY) { try m.setAttributeValues(s, k, template: [boolAttr(CKA_WRAP_WITH_TRUSTED, false)]) }
        // Computed and fixed attributes.
        for a in [boolAttr(CKA_LOCAL, false), ulongAttr(CKA_KEY_TYPE, CKK_GENERIC_SECRET), ulongAttr(CKA_VALUE_LEN, 16),
                  bytesAttr(CK.attrUniqueID, [1]), boolAttr(CKA_TOKEN, true), boolAttr(CKA_PRIVATE, false),
                  bytesAttr(CKA_VALUE, [UInt8](repeating: 0, count: 32))] {
            expectCKR(CKR_ATTRIBUTE_READ_ONLY) { try m.setAttributeValues(s, k, template: [a]) }
        }
        try m.setAttributeValues(s, k, template: [textAttr(CKA_LABEL, "renamed"), bytesAttr(CKA_ID, [9])])
        XCTAssertEqual(try m.bytes(s, k, CKA_LABEL), Array("renamed".utf8))
        // Only the SO sets CKA_TRUSTED.
        expectCKR(CKR_ATTRIBUTE_READ_ONLY) { try m.setAttributeValues(s, k, template: [boolAttr(CKA_TRUSTED, true)]) }
        expectCKR(CKR_ATTRIBUTE_READ_ONLY) { _ = try m.aesKey(s, extra: [boolAttr(CKA_TRUSTED, true)]) }
    }

    func testSecureDefaultsAndReadOnlyOnSet() throws {
        // Without CKA_EXTRACTABLE a key is unextractable, hence never extractable and its value unreadable.
        let k = try m.generateKey(s, mechanism: Mechanism(type: CKM_AES_KEY_GEN), template: [ulongAttr(CKA_VALUE_LEN, 16)])
        XCTAssertEqual(try m.bool(s, k, CKA_EXTRACTABLE), false)
        XCTAssertEqual(try m.bool(s, k, CKA_NEVER_EXTRACTABLE), true)
        XCTAssertEqual(try m.attribute(s, k, CKA_VALUE), .sensitive)
        // Read-only attributes are refused even when the value is restated.
        expectCKR(CKR_ATTRIBUTE_READ_ONLY) { try m.setAttributeValues(s, k, template: [ulongAttr(CKA_KEY_GEN_MECHANISM, CKM_AES_KEY_GEN)]) }
        expectCKR(CKR_ATTRIBUTE_READ_ONLY) { try m.setAttributeValues(s, k, template: [ulongAttr(CKA_CLASS, CKO_SECRET_KEY)]) }
        // CKA_ALLOWED_MECHANISMS: absent = no restriction (reads as the whole list); an empty list allows nothing.
        let all = try XCTUnwrap(try m.bytes(s, k, CK.allowedMechanisms))
        XCTAssertEqual(Encoding.decodeULongArray(all), try m.mechanismList(0))
        let none = try m.aesKey(s, extra: [Attribute(type: CK.allowedMechanisms, bytes: [])])
        XCTAssertEqual(try m.bytes(s, none, CK.allowedMechanisms), [])
        expectCKR(CKR_MECHANISM_INVALID) { try m.encryptInit(s, mechanism: Mechanism(type: CKM_AES_ECB), key: none) }
        // HMAC-specific key types import and sign with their own hash only.
        let hk = try m.createObject(s, template: [ulongAttr(CKA_CLASS, CKO_SECRET_KEY), ulongAttr(CKA_KEY_TYPE, CKK_SHA256_HMAC),
                                                  bytesAttr(CKA_VALUE, [UInt8](repeating: 1, count: 32))])
        XCTAssertNoThrow(try m.signInit(s, mechanism: Mechanism(type: CKM_SHA256_HMAC), key: hk))
        expectCKR(CKR_KEY_TYPE_INCONSISTENT) { try m.verifyInit(s, mechanism: Mechanism(type: CKM_SHA512_HMAC), key: hk) }
    }

    func testReadableValueAndCheckValue() throws {
        let value = hex("000102030405060708090a0b0c0d0e0f")
        let k = try m.aesKey(s, value: value)
        XCTAssertEqual(try m.bytes(s, k, CKA_VALUE), value)
        XCTAssertEqual(try m.bool(s, k, CKA_LOCAL), false)
        XCTAssertEqual(try m.ulong(s, k, CKA_KEY_GEN_MECHANISM), CK.unavailable)
        // AES-128 of a zero block under 00..0f is c6a13b37878f5b826f4f8162a1c8d879.
        XCTAssertEqual(try m.bytes(s, k, CKA_CHECK_VALUE), hex("c6a13b"))
        XCTAssertEqual(try m.ulong(s, k, CKA_VALUE_LEN), 16)
        // Generic secret: first 3 bytes of SHA-1 of the value (PKCS#11 3.0 §6.5). SHA-1("abc") = a9993e...
        let g = try m.createObject(s, template: [ulongAttr(CKA_CLASS, CKO_SECRET_KEY), ulongAttr(CKA_KEY_TYPE, CKK_GENERIC_SECRET),
                                                 bytesAttr(CKA_VALUE, Array("abc".utf8))])
        XCTAssertEqual(try m.bytes(s, g, CKA_CHECK_VALUE), hex("a9993e"))
        expectCKR(CKR_ATTRIBUTE_VALUE_INVALID) { _ = try m.aesKey(s, value: value, extra: [bytesAttr(CKA_CHECK_VALUE, [1, 2, 3])]) }
        XCTAssertNoThrow(try m.aesKey(s, value: value, extra: [bytesAttr(CKA_CHECK_VALUE, hex("c6a13b"))]))
    }

    func testMalformedTemplates() throws {
        let cls = ulongAttr(CKA_CLASS, CKO_SECRET_KEY), aes = ulongAttr(CKA_KEY_TYPE, CKK_AES)
        let v16 = bytesAttr(CKA_VALUE, [UInt8](repeating: 1, count: 16))
        expectCKR(CKR_TEMPLATE_INCOMPLETE) { _ = try m.createObject(s, template: [aes, v16]) }
        expectCKR(CKR_TEMPLATE_INCOMPLETE) { _ = try m.createObject(s, template: [cls, v16]) }
        expectCKR(CKR_TEMPLATE_INCOMPLETE) { _ = try m.createObject(s, template: [cls, aes]) }
        expectCKR(CKR_ATTRIBUTE_VALUE_INVALID) { _ = try m.createObject(s, template: [cls, aes, bytesAttr(CKA_VALUE, [1, 2, 3])]) }
        expectCKR(CKR_ATTRIBUTE_VALUE_INVALID) { _ = try m.createObject(s, template: [cls, aes, v16, bytesAttr(CKA_TOKEN, [1, 0])]) }
        expectCKR(CKR_ATTRIBUTE_VALUE_INVALID) { _ = try m.createObject(s, template: [cls, aes, v16, bytesAttr(CKA_VALUE_LEN, [16])]) }
        expectCKR(CKR_ATTRIBUTE_VALUE_INVALID) { _ = try m.createObject(s, template: [cls, aes, v16, bytesAttr(CKA_START_DATE, [1])]) }
        expectCKR(CKR_ATTRIBUTE_TYPE_INVALID) { _ = try m.createObject(s, template: [cls, aes, v16, ulongAttr(CKA_MODULUS_BITS, 2048)]) }
        expectCKR(CKR_ATTRIBUTE_TYPE_INVALID) { _ = try m.createObject(s, template: [cls, aes, v16, ulongAttr(CK.attrN2HEDimension, 16)]) }
        expectCKR(CKR_TEMPLATE_INCONSISTENT) { _ = try m.createObject(s, template: [cls, aes, v16, v16]) }
        expectCKR(CKR_TEMPLATE_INCONSISTENT) { _ = try m.createObject(s, template: [cls, aes, v16, ulongAttr(CKA_VALUE_LEN, 32)]) }
        expectCKR(CKR_ATTRIBUTE_READ_ONLY) { _ = try m.createObject(s, template: [cls, aes, v16, boolAttr(CKA_LOCAL, true)]) }
        expectCKR(CKR_ATTRIBUTE_VALUE_INVALID) { _ = try m.createObject(s, template: [ulongAttr(CKA_CLASS, CKO_PUBLIC_KEY)]) }
        // Generation: CKA_VALUE not allowed, CKA_VALUE_LEN required, contradictions refused.
        let gen = Mechanism(type: CKM_AES_KEY_GEN)
        expectCKR(CKR_TEMPLATE_INCOMPLETE) { _ = try m.generateKey(s, mechanism: gen, template: []) }
        expectCKR(CKR_ATTRIBUTE_VALUE_INVALID) { _ = try m.generateKey(s, mechanism: gen, template: [ulongAttr(CKA_VALUE_LEN, 20)]) }
        expectCKR(CKR_TEMPLATE_INCONSISTENT) { _ = try m.generateKey(s, mechanism: gen, template: [ulongAttr(CKA_VALUE_LEN, 16), v16]) }
        expectCKR(CKR_TEMPLATE_INCONSISTENT) {
            _ = try m.generateKey(s, mechanism: gen, template: [ulongAttr(CKA_VALUE_LEN, 16), ulongAttr(CKA_KEY_TYPE, CKK_GENERIC_SECRET)])
        }
        expectCKR(CKR_MECHANISM_INVALID) { _ = try m.generateKey(s, mechanism: Mechanism(type: CKM_SHA256), template: []) }
        let g = Mechanism(type: CKM_GENERIC_SECRET_KEY_GEN)
        expectCKR(CKR_TEMPLATE_INCOMPLETE) { _ = try m.generateKey(s, mechanism: g, template: []) }
        expectCKR(CKR_ATTRIBUTE_VALUE_INVALID) { _ = try m.generateKey(s, mechanism: g, template: [ulongAttr(CKA_VALUE_LEN, 0)]) }
        let gk = try m.generateKey(s, mechanism: g, template: [ulongAttr(CKA_VALUE_LEN, 20), boolAttr(CKA_EXTRACTABLE, true)])
        XCTAssertEqual(try m.bytes(s, gk, CKA_VALUE)?.count, 20)
    }

    func testCopyDestroyModifiableRules() throws {
        let k = try m.aesKey(s, extra: [boolAttr(CKA_COPYABLE, false)])
        expectCKR(CKR_ACTION_PROHIBITED) { _ = try m.copyObject(s, k, template: []) }
        let d = try m.aesKey(s, extra: [boolAttr(CKA_DESTROYABLE, false)])
        expectCKR(CKR_ACTION_PROHIBITED) { try m.destroyObject(s, d) }
        let fixed = try m.aesKey(s, extra: [boolAttr(CKA_MODIFIABLE, false)])
        expectCKR(CKR_ACTION_PROHIBITED) { try m.setAttributeValues(s, fixed, template: [textAttr(CKA_LABEL, "x")]) }

        let value = [UInt8](repeating: 7, count: 24)
        let orig = try m.aesKey(s, value: value, extra: [textAttr(CKA_LABEL, "orig")])
        let copy = try m.copyObject(s, orig, template: [textAttr(CKA_LABEL, "copy"), boolAttr(CKA_TOKEN, true)])
        XCTAssertNotEqual(copy, orig)
        XCTAssertEqual(try m.bytes(s, copy, CKA_VALUE), value)
        XCTAssertEqual(try m.bool(s, copy, CKA_TOKEN), true)
        XCTAssertNotEqual(try m.bytes(s, copy, CK.attrUniqueID), try m.bytes(s, orig, CK.attrUniqueID))
        expectCKR(CKR_ATTRIBUTE_READ_ONLY) { _ = try m.copyObject(s, orig, template: [ulongAttr(CKA_KEY_TYPE, CKK_GENERIC_SECRET)]) }
        try m.destroyObject(s, copy)
        expectCKR(CKR_OBJECT_HANDLE_INVALID) { try m.destroyObject(s, copy) }
        XCTAssertGreaterThan(try m.objectSize(s, orig), 24)
    }

    func testDataObjectsAndVisibility() throws {
        let d = try m.createObject(s, template: [ulongAttr(CKA_CLASS, CKO_DATA), textAttr(CKA_APPLICATION, "app"),
                                                 bytesAttr(CKA_OBJECT_ID, [6, 1, 2]), bytesAttr(CKA_VALUE, [1, 2, 3]),
                                                 boolAttr(CKA_TOKEN, true)])
        XCTAssertEqual(try m.bytes(s, d, CKA_VALUE), [1, 2, 3])
        XCTAssertEqual(try m.bool(s, d, CKA_PRIVATE), false)
        XCTAssertEqual(try m.attribute(s, d, CKA_KEY_TYPE), .typeInvalid)
        try m.setAttributeValues(s, d, template: [bytesAttr(CKA_VALUE, [4, 5])])
        XCTAssertEqual(try m.bytes(s, d, CKA_VALUE), [4, 5])
        let p = try m.createObject(s, template: [ulongAttr(CKA_CLASS, CKO_DATA), boolAttr(CKA_PRIVATE, true),
                                                 boolAttr(CKA_TOKEN, true), bytesAttr(CKA_VALUE, [9, 9])])
        XCTAssertEqual(try m.bytes(s, p, CKA_VALUE), [9, 9])
        try m.setAttributeValues(s, p, template: [bytesAttr(CKA_VALUE, [8])])
        XCTAssertEqual(try m.bytes(s, p, CKA_VALUE), [8])
        try m.logout(s)
        expectCKR(CKR_OBJECT_HANDLE_INVALID) { _ = try m.attributeValues(s, p, types: [CKA_VALUE]) }
        XCTAssertEqual(try m.bytes(s, d, CKA_VALUE), [4, 5])
        // Not logged in: no private objects, no secret-bearing token objects.
        expectCKR(CKR_USER_NOT_LOGGED_IN) {
            _ = try m.createObject(s, template: [ulongAttr(CKA_CLASS, CKO_DATA), boolAttr(CKA_PRIVATE, true)])
        }
        expectCKR(CKR_USER_NOT_LOGGED_IN) { _ = try m.aesKey(s, token: true, extra: [boolAttr(CKA_PRIVATE, false)]) }
        let pubSessionKey = try m.aesKey(s, extra: [boolAttr(CKA_PRIVATE, false)])
        XCTAssertEqual(try m.ulong(s, pubSessionKey, CKA_VALUE_LEN), 32)
        // Read-only session: no token objects.
        let ro = try m.openSession(0, flags: CKF_SERIAL_SESSION)
        expectCKR(CKR_SESSION_READ_ONLY) {
            _ = try m.createObject(ro, template: [ulongAttr(CKA_CLASS, CKO_DATA), boolAttr(CKA_TOKEN, true)])
        }
    }

    func testUsageFlagsEnforced() throws {
        let k = try m.aesKey(s, extra: [boolAttr(CKA_ENCRYPT, false), boolAttr(CKA_WRAP, false)])
        let gcm = Mechanism(type: CKM_AES_GCM, parameter: .gcm(iv: [UInt8](repeating: 0, count: 12), aad: [], tagBits: 128))
        expectCKR(CKR_KEY_FUNCTION_NOT_PERMITTED) { try m.encryptInit(s, mechanism: gcm, key: k) }
        XCTAssertNoThrow(try m.decryptInit(s, mechanism: gcm, key: k))
        let other = try m.aesKey(s)
        expectCKR(CKR_KEY_FUNCTION_NOT_PERMITTED) {
            _ = try m.wrapKey(s, mechanism: Mechanism(type: CKM_AES_KEY_WRAP_PAD), wrappingKey: k, key: other, output: .lengthQuery)
        }
        let h = try m.generateKey(s, mechanism: Mechanism(type: CKM_GENERIC_SECRET_KEY_GEN),
                                  template: [ulongAttr(CKA_VALUE_LEN, 32), boolAttr(CKA_SIGN, false)])
        expectCKR(CKR_KEY_FUNCTION_NOT_PERMITTED) { try m.signInit(s, mechanism: Mechanism(type: CKM_SHA256_HMAC), key: h) }
        expectCKR(CKR_KEY_TYPE_INCONSISTENT) { try m.signInit(s, mechanism: Mechanism(type: CKM_SHA256_HMAC), key: other) }
        expectCKR(CKR_KEY_TYPE_INCONSISTENT) { try m.encryptInit(s, mechanism: gcm, key: h) }
        let limited = try m.aesKey(s, extra: [Attribute(type: CK.allowedMechanisms, bytes: Encoding.ulongArray([CKM_AES_ECB]))])
        expectCKR(CKR_MECHANISM_INVALID) { try m.encryptInit(s, mechanism: gcm, key: limited) }
        XCTAssertNoThrow(try m.encryptInit(s, mechanism: Mechanism(type: CKM_AES_ECB), key: limited))
    }
}
