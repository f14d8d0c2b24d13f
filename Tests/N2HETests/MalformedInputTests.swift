import XCTest
@testable import N2HE

/// Every malformed-ciphertext class maps to its typed error.
final class MalformedInputTests: XCTestCase {
    var cipher: N2HECipher!
    var lwe1: [UInt8] = []
    var lwe2: [UInt8] = []

    override func setUpWithError() throws {
        cipher = try N2HECipher(key: try N2HESecretKey.generate(n: 8), parameters: try N2HEParameters(n: 8))
        lwe1 = try cipher.encrypt([1, 2, 3], format: .lwe1)
        lwe2 = try cipher.encrypt([1, 2, 3], format: .lwe2)
    }

    func check(_ ct: [UInt8], _ expected: N2HEError, file: StaticString = #filePath, line: UInt = #line) {
        assertThrows(expected, file: file, line: line) { try cipher.decrypt(ct) }
        assertThrows(expected, file: file, line: line) { try cipher.plaintextByteCount(ciphertext: ct) }
        assertThrows(expected, file: file, line: line) {
            var out = [UInt8](repeating: 0, count: 1 << 12)
            return try ct.withUnsafeBytes { c in try out.withUnsafeMutableBytes { try cipher.decrypt(ciphertext: c, into: $0) } }
        }
    }

    func setting(_ ct: [UInt8], _ offset: Int, _ value: UInt32) -> [UInt8] {
        var c = ct
        withUnsafeBytes(of: value.littleEndian) { for i in 0..<4 { c[offset + i] = $0[i] } }
        return c
    }

    func testBadMagic() {
        var c = lwe1; c[3] = UInt8(ascii: "3")
        check(c, .malformedCiphertext(.badMagic))
        check([0x00], .malformedCiphertext(.badMagic))
        check([], .malformedCiphertext(.truncatedHeader))
        check(Array("LWX2".utf8) + [UInt8](repeating: 0, count: 60), .malformedCiphertext(.badMagic))
    }

    func testTruncatedHeader() {
        for length in [1, 4, 12] {
            check(Array(lwe1.prefix(length)), .malformedCiphertext(.truncatedHeader))
            check(Array(lwe2.prefix(length)), .malformedCiphertext(.truncatedHeader))
        }
    }

    func testTruncatedAndTrailingBytes() {
        let full1 = 13 + 8 * 3 * 8 + 24, full2 = 45 + 24
        check(Array(lwe1.dropLast()), .lengthMismatch(expected: full1, actual: full1 - 1))
        check(lwe1 + [0], .lengthMismatch(expected: full1, actual: full1 + 1))
        check(Array(lwe2.prefix(20)), .lengthMismatch(expected: full2, actual: 20))
        check(lwe2 + [0, 0, 0, 0, 0, 0, 0, 0], .lengthMismatch(expected: full2, actual: full2 + 8))
    }

    func testDimensionMismatch() {
        check(setting(lwe1, 8, 9), .dimensionMismatch(expected: 8, actual: 9))
        check(setting(lwe2, 8, 1024), .dimensionMismatch(expected: 8, actual: 1024))
        check(setting(lwe2, 8, 0), .dimensionMismatch(expected: 8, actual: 0))
        XCTAssertThrowsError(try N2HECiphertextInfo(parsing: setting(lwe2, 8, 0))) {
            XCTAssertEqual($0 as? N2HEError, .malformedCiphertext(.zeroDimension))
        }
    }

    func testZeroCount() {
        check(setting(lwe1, 4, 0), .malformedCiphertext(.zeroCount))
        check(setting(lwe2, 4, 0), .malformedCiphertext(.zeroCount))
    }

    func testCountLengthDisagreement() {
        // k says 4 but the bytes hold 3 samples.
        check(setting(lwe1, 4, 4), .lengthMismatch(expected: 13 + 8 * 4 * 8 + 32, actual: lwe1.count))
        check(setting(lwe2, 4, 0xFFFF_FFFF), .lengthMismatch(expected: 45 + 8 * 0xFFFF_FFFF, actual: lwe2.count))
    }

    func testHugeHeaderSizesDoNotOverflow() throws {
        // k = n = 2^32 − 1 without an expected n: 8·k·n overflows Int — reported, not trapped.
        let c = setting(setting(lwe1, 4, 0xFFFF_FFFF), 8, 0xFFFF_FFFF)
        assertThrows(.malformedCiphertext(.sizeOverflow)) { try N2HECiphertextInfo(parsing: c) }
        // Large but representable: a plain length mismatch.
        let d = setting(setting(lwe1, 4, 0xFFFF_FFFF), 8, 0xFFFF)
        assertThrows(.lengthMismatch(expected: 13 + 8 * 0xFFFF_FFFF * 0xFFFF + 8 * 0xFFFF_FFFF, actual: lwe1.count)) {
            try N2HECiphertextInfo(parsing: d)
        }
        XCTAssertNil(N2HECiphertextFormat.lwe1.byteCount(count: Int.max / 2, dimension: 1 << 20))
        XCTAssertNil(N2HECiphertextFormat.lwe1.byteCount(count: 0, dimension: 4))
    }

    func testFlags() {
        var c = lwe2; c[12] = 0x01   // LWE2 without the seeded flag
        check(c, .malformedCiphertext(.seededFlagMismatch))
        c[12] = 0x00
        check(c, .malformedCiphertext(.seededFlagMismatch))
        c[12] = 0x07
        check(c, .malformedCiphertext(.unknownFlags))
        var d = lwe1; d[12] = 0x03   // LWE1 claiming a seed
        check(d, .malformedCiphertext(.seededFlagMismatch))
        d[12] = 0x81
        check(d, .malformedCiphertext(.unknownFlags))
    }

    func testScalarWithCountNotOne() {
        var c = lwe1; c[12] = 0x00
        check(c, .malformedCiphertext(.scalarWithCountNotOne))
        var d = lwe2; d[12] = 0x02
        check(d, .malformedCiphertext(.scalarWithCountNotOne))
    }

    /// Values ≥ q are reduced mod q (what the SDK's arithmetic does), so adding q to an entry changes nothing.
    func testOutOfRangeValuesAreReducedModQ() throws {
        let m = try cipher.decrypt(lwe1)
        var c = lwe1
        c[13 + 4] &+= 1      // A[0][0] += 2^32
        c[c.count - 8 + 7] = 0xFF  // B[2] += 255·2^56 ≡ 0 mod 2^32
        XCTAssertEqual(try cipher.decrypt(c), m)
        var d = lwe2
        d[d.count - 4] ^= 0x80   // B[2] += 2^31·… bit 31 of the high word → ≥ q
        XCTAssertEqual(try cipher.decrypt(d), try cipher.decrypt(lwe2))
    }

    func testKeyDimensionMustMatchParameters() throws {
        assertThrows(.dimensionMismatch(expected: 16, actual: 8)) {
            try N2HECipher(key: try N2HESecretKey.generate(n: 8), parameters: try N2HEParameters(n: 16))
        }
    }

    func testHomomorphicAddRejectsMalformedInputs() throws {
        let p = try N2HEParameters(n: 8)
        assertThrows(.malformedCiphertext(.badMagic)) { try N2HEHomomorphic.add([1, 2, 3], lwe1, parameters: p) }
        assertThrows(.dimensionMismatch(expected: 8, actual: 9)) { try N2HEHomomorphic.add(lwe1, setting(lwe2, 8, 9), parameters: p) }
    }
}
