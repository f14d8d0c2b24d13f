import CryptoCore
import XCTest

final class StreamingTests: XCTestCase {
    private func chunks(_ data: [UInt8], _ sizes: [Int]) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var i = 0, k = 0
        while i < data.count {
            let n = min(sizes[k % sizes.count], data.count - i)
            out.append(Array(data[i..<(i + n)]))
            i += n
            k += 1
        }
        return out
    }

    /// Streaming in odd chunks equals one shot, and every predicted length is what update/finish return.
    func testStreamingMatchesOneShotAndPredictedLengths() throws {
        for keyLen in [16, 24, 32] {
            let key = try SecretBytes.random(count: keyLen)
            let iv = try SecureRandom.bytes(16)
            let modes: [SymmetricCipher.Mode] = [
                .ecb, .cbc(iv: iv), .cbcPad(iv: iv), .ctr(counterBlock: iv),
                .gcm(iv: Array(iv[0..<12]), aad: [1, 2, 3], tagLength: 16),
                .gcm(iv: Array(iv[0..<12]), aad: [], tagLength: 8),
            ]
            for mode in modes {
                for len in [0, 1, 15, 16, 17, 31, 32, 33, 100, 160] {
                    if case .ecb = mode, len % 16 != 0 { continue }
                    if case .cbc = mode, len % 16 != 0 { continue }
                    let plain = try SecureRandom.bytes(len)
                    let enc = try SymmetricCipher(mode: mode, direction: .encrypt, key: key)
                    var ct: [UInt8] = []
                    for piece in chunks(plain, [1, 7, 16, 3, 33]) {
                        let predicted = enc.updateOutputLength(inputLength: piece.count)
                        let out = try enc.update(piece)
                        XCTAssertEqual(predicted, out.count, "\(mode) update len")
                        ct += out
                    }
                    let finPredicted = enc.finishOutputLength()
                    let fin = try enc.finish()
                    XCTAssertEqual(fin.count, finPredicted, "\(mode) finish len")
                    ct += fin
                    XCTAssertEqual(SymmetricCipher.outputLength(mode: mode, direction: .encrypt, inputLength: len), ct.count, "\(mode) one-shot len")

                    let dec = try SymmetricCipher(mode: mode, direction: .decrypt, key: key)
                    var pt: [UInt8] = []
                    for piece in chunks(ct, [5, 16, 2, 40]) {
                        let predicted = dec.updateOutputLength(inputLength: piece.count)
                        let out = try dec.update(piece)
                        if case .gcm = mode {
                            // GCM decryption releases nothing before the tag; the length answer is the bound.
                            XCTAssertEqual(out.count, 0, "\(mode) decrypt update releases nothing")
                            XCTAssertGreaterThanOrEqual(predicted ?? -1, piece.count, "\(mode) decrypt update bound")
                        } else {
                            XCTAssertEqual(predicted, out.count, "\(mode) decrypt update len")
                        }
                        pt += out
                    }
                    let bound = dec.finishOutputLength()
                    let last = try dec.finish()
                    XCTAssertLessThanOrEqual(last.count, bound)
                    pt += last
                    XCTAssertEqual(pt, plain, "\(mode) round trip \(len)")
                    if let upper = SymmetricCipher.outputLength(mode: mode, direction: .decrypt, inputLength: ct.count) {
                        XCTAssertLessThanOrEqual(pt.count, upper)
                    } else {
                        XCTFail("decrypt length query refused a valid ciphertext")
                    }
                }
            }
        }
    }

    func testGCMStreamingDecryptRefusesTamperAndReleasesNothingEarly() throws {
        let key = try SecretBytes.random(count: 32)
        let iv = try SecureRandom.bytes(12)
        var sealed = try AESGCM.seal(key: key, iv: iv, plaintext: Array(repeating: 7, count: 64), aad: [9])
        sealed[5] ^= 0x40
        let dec = try SymmetricCipher(mode: .gcm(iv: iv, aad: [9], tagLength: 16), direction: .decrypt, key: key)
        XCTAssertEqual(try dec.update(sealed), [])
        XCTAssertThrowsError(try dec.finish()) { XCTAssertEqual($0 as? CryptoError, .authenticationFailed) }
        XCTAssertThrowsError(try dec.update([1])) { XCTAssertEqual($0 as? CryptoError, .invalidState) }
    }

    func testCBCPadBadPaddingAndLengths() throws {
        let key = try SecretBytes.random(count: 16)
        let iv = [UInt8](repeating: 0, count: 16)
        // A random block almost never has valid padding; craft one whose plaintext ends in 0x00.
        let ecb = try SymmetricCipher(mode: .cbc(iv: iv), direction: .encrypt, key: key)
        let ct = try ecb.update([UInt8](repeating: 0, count: 16)) + ecb.finish()
        let dec = try SymmetricCipher(mode: .cbcPad(iv: iv), direction: .decrypt, key: key)
        XCTAssertEqual(try dec.update(ct), [])
        XCTAssertThrowsError(try dec.finish()) { XCTAssertEqual($0 as? CryptoError, .invalidPadding) }

        let dec2 = try SymmetricCipher(mode: .cbcPad(iv: iv), direction: .decrypt, key: key)
        _ = try dec2.update(Array(ct[0..<10]))
        XCTAssertThrowsError(try dec2.finish()) { XCTAssertEqual($0 as? CryptoError, .invalidInputLength(10)) }

        XCTAssertNil(SymmetricCipher.outputLength(mode: .cbcPad(iv: iv), direction: .decrypt, inputLength: 0))
        XCTAssertNil(SymmetricCipher.outputLength(mode: .ecb, direction: .encrypt, inputLength: 5))
        XCTAssertNil(SymmetricCipher.outputLength(mode: .gcm(iv: [1], aad: [], tagLength: 16), direction: .decrypt, inputLength: 15))
        XCTAssertNil(SymmetricCipher.outputLength(mode: .ctr(counterBlock: iv), direction: .encrypt, inputLength: -1))
        XCTAssertNil(SymmetricCipher.outputLength(mode: .gcm(iv: [1], aad: [], tagLength: 16), direction: .encrypt, inputLength: Int.max))
        XCTAssertEqual(SymmetricCipher.outputLength(mode: .cbcPad(iv: iv), direction: .encrypt, inputLength: 15), 16)
        XCTAssertEqual(SymmetricCipher.outputLength(mode: .cbcPad(iv: iv), direction: .encrypt, inputLength: 16), 32)
    }

    func testSecretBytesAndRandom() throws {
        let a = SecretBytes(copying: [1, 2, 3] as [UInt8])
        let b = SecretBytes(copying: [1, 2, 3] as [UInt8])
        let c = SecretBytes(copying: [1, 2, 4] as [UInt8])
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
        XCTAssertNotEqual(a, SecretBytes(count: 2))
        XCTAssertEqual(a.slice(1..<3).unsafeCopyToArray(), [2, 3])
        XCTAssertEqual(a.slice(2..<99).unsafeCopyToArray(), [3])
        XCTAssertFalse("\(a)".contains("1, 2"))
        XCTAssertTrue(constantTimeEquals([UInt8](), [UInt8]()))
        XCTAssertFalse(constantTimeEquals([1] as [UInt8], [1, 2] as [UInt8]))
        let r1 = try SecureRandom.bytes(32), r2 = try SecureRandom.bytes(32)
        XCTAssertEqual(r1.count, 32)
        XCTAssertNotEqual(r1, r2)
        XCTAssertEqual(try SecureRandom.bytes(0), [])
        XCTAssertEqual(try SecureRandom.bytes(-5), [])
        var z: [UInt8] = [1, 2, 3]
        secureZero(&z)
        XCTAssertEqual(z, [])
    }
}
