import CryptoCore
import Foundation
import XCTest

final class KnownAnswerTests: XCTestCase {
    func testSHA256abc() throws {
        XCTAssertEqual(try Digest.hash(.sha256, Array("abc".utf8)),
                       hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"))
    }

    func testDigestStreamingAndLengths() throws {
        let msg = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        let d = try Digest(.sha256)
        try d.update(msg[0..<10])
        try d.update(msg[10...])
        XCTAssertEqual(try d.finalize(), hex("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"))
        XCTAssertThrowsError(try d.finalize()) { XCTAssertEqual($0 as? CryptoError, .invalidState) }
        XCTAssertEqual(try Digest.hash(.sha1, Array("abc".utf8)), hex("a9993e364706816aba3e25717850c26c9cd0d89d"))
        XCTAssertEqual(try Digest.hash(.sha224, Array("abc".utf8)),
                       hex("23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7"))
        XCTAssertEqual(try Digest.hash(.sha384, Array("abc".utf8)),
                       hex("cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"))
        XCTAssertEqual(try Digest.hash(.sha512, Array("abc".utf8)),
                       hex("ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"))
        for a in DigestAlgorithm.allCases {
            XCTAssertEqual(try Digest.hash(a, [UInt8]()).count, a.outputLength)
        }
    }

    /// RFC 4231 test case 2 (and RFC 2202 for SHA-1).
    func testHMACRFC4231Case2() throws {
        let key = SecretBytes(copying: Array("Jefe".utf8))
        let data = Array("what do ya want for nothing?".utf8)
        XCTAssertEqual(try HMAC.authenticate(.sha256, key: key, data: data),
                       hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"))
        XCTAssertEqual(try HMAC.authenticate(.sha224, key: key, data: data),
                       hex("a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44"))
        XCTAssertEqual(try HMAC.authenticate(.sha384, key: key, data: data),
                       hex("af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649"))
        XCTAssertEqual(try HMAC.authenticate(.sha512, key: key, data: data),
                       hex("164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"))
        XCTAssertEqual(try HMAC.authenticate(.sha1, key: key, data: data), hex("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"))

        let h = try HMAC(.sha256, key: key)
        try h.update(data[0..<5])
        try h.update(data[5...])
        XCTAssertTrue(try h.finalizeAndVerify(hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")))
        XCTAssertTrue(try HMAC.verify(.sha256, key: key, data: data, mac: hex("5bdcc146bf60754e")))
        XCTAssertFalse(try HMAC.verify(.sha256, key: key, data: data, mac: hex("5bdcc146bf60754f")))
        XCTAssertFalse(try HMAC.verify(.sha256, key: key, data: data, mac: [UInt8]()))
        XCTAssertFalse(try HMAC.verify(.sha256, key: key, data: data, mac: [UInt8](repeating: 0, count: 33)))
        // Empty key is legal HMAC.
        XCTAssertEqual(try HMAC.authenticate(.sha256, key: SecretBytes(count: 0), data: [UInt8]()),
                       hex("b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"))
    }

    /// RFC 3394 §4.1 and §4.6.
    func testAESKeyWrapRFC3394() throws {
        let kek128 = secret("000102030405060708090A0B0C0D0E0F")
        let wrapped = try AESKeyWrap.wrap(kek: kek128, plaintext: hex("00112233445566778899AABBCCDDEEFF"), padded: false)
        XCTAssertEqual(wrapped, hex("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"))

        let kek256 = secret("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
        let keyData = hex("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F")
        let expected = hex("28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21")
        XCTAssertEqual(try AESKeyWrap.wrap(kek: kek256, plaintext: keyData, padded: false), expected)
        XCTAssertEqual(try AESKeyWrap.unwrap(kek: kek256, ciphertext: expected, padded: false).unsafeCopyToArray(), keyData)

        var tampered = expected
        tampered[10] ^= 1
        XCTAssertThrowsError(try AESKeyWrap.unwrap(kek: kek256, ciphertext: tampered, padded: false)) {
            XCTAssertEqual($0 as? CryptoError, .integrityFailure)
        }
        XCTAssertThrowsError(try AESKeyWrap.wrap(kek: kek256, plaintext: [UInt8](repeating: 1, count: 12), padded: false)) {
            XCTAssertEqual($0 as? CryptoError, .invalidInputLength(12))
        }
        XCTAssertThrowsError(try AESKeyWrap.wrap(kek: kek256, plaintext: [UInt8](repeating: 1, count: 8), padded: false))
        XCTAssertThrowsError(try AESKeyWrap.unwrap(kek: kek256, ciphertext: [UInt8](repeating: 1, count: 23), padded: false)) {
            XCTAssertEqual($0 as? CryptoError, .invalidInputLength(23))
        }
        XCTAssertThrowsError(try AESKeyWrap.wrap(kek: secret("0011"), plaintext: keyData, padded: false)) {
            XCTAssertEqual($0 as? CryptoError, .invalidKeyLength(2))
        }
        XCTAssertEqual(AESKeyWrap.wrappedLength(plaintextLength: 32, padded: false), 40)
        XCTAssertNil(AESKeyWrap.wrappedLength(plaintextLength: 33, padded: false))
    }

    /// RFC 5649 §6 examples.
    func testAESKeyWrapPadRFC5649() throws {
        let kek = secret("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8")
        let k20 = hex("c37b7e6492584340bed12207808941155068f738")
        let w20 = hex("138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a")
        XCTAssertEqual(try AESKeyWrap.wrap(kek: kek, plaintext: k20, padded: true), w20)
        XCTAssertEqual(try AESKeyWrap.unwrap(kek: kek, ciphertext: w20, padded: true).unsafeCopyToArray(), k20)
        let k7 = hex("466f7250617369")
        let w7 = hex("afbeb0f07dfbf5419200f2ccb50bb24f")
        XCTAssertEqual(try AESKeyWrap.wrap(kek: kek, plaintext: k7, padded: true), w7)
        XCTAssertEqual(try AESKeyWrap.unwrap(kek: kek, ciphertext: w7, padded: true).unsafeCopyToArray(), k7)
        var bad = w7
        bad[0] ^= 0x80
        XCTAssertThrowsError(try AESKeyWrap.unwrap(kek: kek, ciphertext: bad, padded: true)) {
            XCTAssertEqual($0 as? CryptoError, .integrityFailure)
        }
        XCTAssertThrowsError(try AESKeyWrap.unwrap(kek: secret("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a9"),
                                                   ciphertext: w20, padded: true)) {
            XCTAssertEqual($0 as? CryptoError, .integrityFailure)
        }
        XCTAssertThrowsError(try AESKeyWrap.wrap(kek: kek, plaintext: [UInt8](), padded: true))
        XCTAssertEqual(AESKeyWrap.wrappedLength(plaintextLength: 7, padded: true), 16)
        XCTAssertEqual(AESKeyWrap.wrappedLength(plaintextLength: 8192, padded: true), 8200)
        // An N2HE-sized key (8n bytes, n = 1024) round-trips under KWP.
        let big = try SecureRandom.bytes(8192)
        let wb = try AESKeyWrap.wrap(kek: kek, plaintext: big, padded: true)
        XCTAssertEqual(try AESKeyWrap.unwrap(kek: kek, ciphertext: wb, padded: true).unsafeCopyToArray(), big)
    }

    /// McGrew–Viega GCM test cases 3 and 4 (AES-128).
    func testAESGCMVectors() throws {
        let key = secret("feffe9928665731c6d6a8f9467308308")
        let iv = hex("cafebabefacedbaddecaf888")
        let p = hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255")
        let c = hex("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985")
        let t3 = hex("4d5c2af327cd64a62cf35abd2ba6fab4")
        XCTAssertEqual(try AESGCM.seal(key: key, iv: iv, plaintext: p), c + t3)
        XCTAssertEqual(try AESGCM.open(key: key, iv: iv, ciphertextAndTag: c + t3), p)

        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
        let p4 = Array(p[0..<60]), c4 = Array(c[0..<60])
        let t4 = hex("5bc94fbc3221a5db94fae95ae7121a47")
        XCTAssertEqual(try AESGCM.seal(key: key, iv: iv, plaintext: p4, aad: aad), c4 + t4)
        XCTAssertEqual(try AESGCM.open(key: key, iv: iv, ciphertextAndTag: c4 + t4, aad: aad), p4)
        XCTAssertEqual(try AESGCM.openSecret(key: key, iv: iv, ciphertextAndTag: c4 + t4, aad: aad).unsafeCopyToArray(), p4)
        // Truncated tag (12 bytes).
        XCTAssertEqual(try AESGCM.seal(key: key, iv: iv, plaintext: p4, aad: aad, tagLength: 12), c4 + Array(t4[0..<12]))
        XCTAssertEqual(try AESGCM.open(key: key, iv: iv, ciphertextAndTag: c4 + Array(t4[0..<12]), aad: aad, tagLength: 12), p4)

        // Wrong AAD, flipped ciphertext bit, flipped tag bit: all refused.
        XCTAssertThrowsError(try AESGCM.open(key: key, iv: iv, ciphertextAndTag: c4 + t4, aad: [UInt8](aad.dropLast()))) {
            XCTAssertEqual($0 as? CryptoError, .authenticationFailed)
        }
        var flipped = c4 + t4
        flipped[3] ^= 1
        XCTAssertThrowsError(try AESGCM.open(key: key, iv: iv, ciphertextAndTag: flipped, aad: aad)) {
            XCTAssertEqual($0 as? CryptoError, .authenticationFailed)
        }
        flipped = c4 + t4
        flipped[flipped.count - 1] ^= 1
        XCTAssertThrowsError(try AESGCM.openSecret(key: key, iv: iv, ciphertextAndTag: flipped, aad: aad)) {
            XCTAssertEqual($0 as? CryptoError, .authenticationFailed)
        }
        XCTAssertThrowsError(try AESGCM.open(key: key, iv: iv, ciphertextAndTag: hex("00112233"))) {
            XCTAssertEqual($0 as? CryptoError, .invalidInputLength(4))
        }
        XCTAssertThrowsError(try AESGCM.seal(key: key, iv: iv, plaintext: p4, tagLength: 3)) {
            XCTAssertEqual($0 as? CryptoError, .invalidTagLength(3))
        }
        XCTAssertThrowsError(try AESGCM.seal(key: key, iv: [UInt8](), plaintext: p4)) {
            XCTAssertEqual($0 as? CryptoError, .invalidIVLength(0))
        }
        // Non-96-bit IV (test case 6 uses a 60-byte IV) round-trips.
        let longIV = try SecureRandom.bytes(60)
        let sealed = try AESGCM.seal(key: key, iv: longIV, plaintext: p, aad: aad)
        XCTAssertEqual(try AESGCM.open(key: key, iv: longIV, ciphertextAndTag: sealed, aad: aad), p)
        // Empty plaintext.
        let onlyTag = try AESGCM.seal(key: key, iv: iv, plaintext: [UInt8]())
        XCTAssertEqual(onlyTag.count, 16)
        XCTAssertEqual(try AESGCM.open(key: key, iv: iv, ciphertextAndTag: onlyTag), [])
    }

    /// RFC 7914 §12 vectors 1 and 2.
    func testScryptRFC7914() throws {
        let v1 = try KDF.scrypt(password: [UInt8](), salt: [UInt8](), log2N: 4, r: 1, p: 1, length: 64)
        XCTAssertEqual(hexString(v1), "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906")
        let v2 = try KDF.scrypt(password: Array("password".utf8), salt: Array("NaCl".utf8), log2N: 10, r: 8, p: 16, length: 64)
        XCTAssertEqual(hexString(v2), "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640")
        XCTAssertThrowsError(try KDF.scrypt(password: [UInt8](), salt: [UInt8](), log2N: 0, r: 1, p: 1, length: 32))
        XCTAssertThrowsError(try KDF.scrypt(password: [UInt8](), salt: [UInt8](), log2N: 4, r: 0, p: 1, length: 32))
        XCTAssertThrowsError(try KDF.scrypt(password: [UInt8](), salt: [UInt8](), log2N: 4, r: 1, p: 1, length: 0))
    }

    /// RFC 5869 test case 1 (and case 3: empty salt and info).
    func testHKDFRFC5869() throws {
        let okm = try KDF.hkdfSHA256(ikm: [UInt8](repeating: 0x0b, count: 22), salt: hex("000102030405060708090a0b0c"),
                                     info: hex("f0f1f2f3f4f5f6f7f8f9"), length: 42)
        XCTAssertEqual(hexString(okm), "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
        let okm3 = try KDF.hkdfSHA256(ikm: [UInt8](repeating: 0x0b, count: 22), salt: [UInt8](), info: [UInt8](), length: 42)
        XCTAssertEqual(hexString(okm3), "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
        XCTAssertThrowsError(try KDF.hkdfSHA256(ikm: [UInt8](repeating: 1, count: 4), salt: [UInt8](), info: [UInt8](), length: 8161))
    }

    /// NIST SP 800-38A F.1.1, F.2.1, F.5.1 (first block) through the streaming context.
    func testAESModesSP80038A() throws {
        let key = secret("2b7e151628aed2a6abf7158809cf4f3c")
        let p = hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51")
        func run(_ mode: SymmetricCipher.Mode, _ dir: SymmetricCipher.Direction, _ input: [UInt8]) throws -> [UInt8] {
            let c = try SymmetricCipher(mode: mode, direction: dir, key: key)
            var out = try c.update(input)
            out += try c.finish()
            return out
        }
        XCTAssertEqual(try run(.ecb, .encrypt, p), hex("3ad77bb40d7a3660a89ecaf32466ef97f5d3d58503b9699de785895a96fdbaaf"))
        let iv = hex("000102030405060708090a0b0c0d0e0f")
        XCTAssertEqual(try run(.cbc(iv: iv), .encrypt, p), hex("7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"))
        let ctrIV = hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
        XCTAssertEqual(try run(.ctr(counterBlock: ctrIV), .encrypt, p),
                       hex("874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff"))
        XCTAssertEqual(try run(.ctr(counterBlock: ctrIV), .decrypt, hex("874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff")), p)
        XCTAssertEqual(try run(.cbc(iv: iv), .decrypt, hex("7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2")), p)
        // CBC-PAD of a whole-block input adds a full padding block that decrypts away.
        let padded = try run(.cbcPad(iv: iv), .encrypt, p)
        XCTAssertEqual(padded.count, 48)
        XCTAssertEqual(Array(padded[0..<32]), hex("7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"))
        XCTAssertEqual(try run(.cbcPad(iv: iv), .decrypt, padded), p)
        // F.1.3 / F.1.5: AES-192 and AES-256 ECB, first block.
        let k192 = secret("8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b")
        let e192 = try SymmetricCipher(mode: .ecb, direction: .encrypt, key: k192)
        XCTAssertEqual(try e192.update(Array(p[0..<16])) + e192.finish(), hex("bd334f1d6e45f25ff712a214571fa5cc"))
        let k256 = secret("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
        let e256 = try SymmetricCipher(mode: .ecb, direction: .encrypt, key: k256)
        XCTAssertEqual(try e256.update(Array(p[0..<16])) + e256.finish(), hex("f3eed1bdb5d2a03c064b5a7e3db181f8"))
        // ECB without a whole block fails at finish.
        XCTAssertThrowsError(try run(.ecb, .encrypt, Array(p[0..<17]))) {
            XCTAssertEqual($0 as? CryptoError, .invalidInputLength(1))
        }
        XCTAssertThrowsError(try SymmetricCipher(mode: .cbc(iv: [1, 2, 3]), direction: .encrypt, key: key)) {
            XCTAssertEqual($0 as? CryptoError, .invalidIVLength(3))
        }
        XCTAssertThrowsError(try SymmetricCipher(mode: .ecb, direction: .encrypt, key: secret("00"))) {
            XCTAssertEqual($0 as? CryptoError, .invalidKeyLength(1))
        }
    }
}
