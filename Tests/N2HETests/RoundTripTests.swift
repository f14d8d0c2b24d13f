import XCTest
@testable import N2HE

final class RoundTripTests: XCTestCase {
    func expectedReduction(_ m: Int64, plaintextBits: Int) -> Int64 {
        let t = Int64(1) << Int64(plaintextBits)
        return ((m % t) + t) % t
    }

    func testRoundTripsAllFormatsModuliAndPlaintextSizes() throws {
        var rng = SplitMix64(state: 7)
        for bits in [32, 48] {
            for plaintextBits in [1, 8, 16, bits == 32 ? 24 : 40] {
                let params = try N2HEParameters(n: 64, modulusBits: bits, plaintextBits: plaintextBits, noiseMilli: 5120)
                let cipher = try N2HECipher(key: try N2HESecretKey.generate(n: 64), parameters: params)
                var m: [Int64] = [0, 1, -1, Int64.min, Int64.max, 65535, 65536, -65536, 1 << 40, 12345]
                for _ in 0..<40 { m.append(Int64(bitPattern: rng.next())) }
                let expected = m.map { expectedReduction($0, plaintextBits: plaintextBits) }
                for format in N2HECiphertextFormat.allCases {
                    for threads in [1, 4] {
                        let ct = try cipher.encrypt(m, format: format, threads: threads)
                        XCTAssertEqual(ct.count, try cipher.ciphertextByteCount(format: format, count: m.count))
                        XCTAssertEqual(try cipher.decrypt(ct), expected, "q=2^\(bits) t=2^\(plaintextBits) \(format)")
                        XCTAssertEqual(try cipher.decrypt(ct, threads: 3), expected)
                    }
                }
            }
        }
    }

    func testDefaultParametersLargeBatchBothFormats() throws {
        let cipher = try N2HECipher(key: try N2HESecretKey.generate(n: 1024), parameters: .default)
        let m = (0..<300).map { Int64($0 * 977 - 5000) }
        let expected = m.map { expectedReduction($0, plaintextBits: 16) }
        for format in N2HECiphertextFormat.allCases {
            let ct = try cipher.encrypt(m, format: format, threads: 2)
            XCTAssertEqual(try cipher.decrypt(ct, threads: 2), expected)
            // Header: magic, k, n, batch flag (and seeded flag for LWE2).
            XCTAssertEqual(Array(ct.prefix(13)), Array(format == .lwe1 ? "LWE1".utf8 : "LWE2".utf8)
                           + [44, 1, 0, 0, 0, 4, 0, 0, format == .lwe1 ? 1 : 3])
        }
    }

    /// With fixed randomness, every thread count writes identical bytes; odd n makes LWE2 threads start on
    /// either half of a PCG64 output (q = 2^32).
    func testThreadCountsGiveIdenticalCiphertexts() throws {
        var rng = SplitMix64(state: 11)
        for bits in [32, 48] {
            let n = 33, k = 50
            let cipher = try N2HECipher(key: try makeKey((0..<n).map { _ in Int64(rng.next() % 3) - 1 }),
                                        parameters: try N2HEParameters(n: n, modulusBits: bits))
            let messages = (0..<k).map { _ in Int64(bitPattern: rng.next()) }
            let plaintext = littleEndianBytes(messages)
            let fixed = N2HECipher.FixedRandomness(noise: (0..<k).map { _ in Int64(rng.next() % 7) - 3 },
                                                   seed: (0..<32).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
            let reference = try plaintext.withUnsafeBytes {
                try cipher.encryptToArray(plaintext: $0, format: .lwe2, threads: 1, fixed: fixed)
            }
            let expected = messages.map { expectedReduction($0, plaintextBits: 16) }
            for threads in 2...7 {
                let ct = try plaintext.withUnsafeBytes {
                    try cipher.encryptToArray(plaintext: $0, format: .lwe2, threads: threads, fixed: fixed)
                }
                XCTAssertEqual(ct, reference, "q=2^\(bits) threads \(threads)")
                XCTAssertEqual(try cipher.decrypt(ct, threads: threads), expected)
            }
            let lwe1 = try cipher.encrypt(messages, format: .lwe1, threads: 7)
            for threads in 1...7 { XCTAssertEqual(try cipher.decrypt(lwe1, threads: threads), expected) }
        }
    }

    func testEncryptionIsRandomised() throws {
        let cipher = try N2HECipher(key: try N2HESecretKey.generate(n: 32), parameters: try N2HEParameters(n: 32))
        for format in N2HECiphertextFormat.allCases {
            XCTAssertNotEqual(try cipher.encrypt([5], format: format), try cipher.encrypt([5], format: format))
        }
    }

    func testValuesAreBelowModulus() throws {
        for bits in [32, 48] {
            let cipher = try N2HECipher(key: try N2HESecretKey.generate(n: 256), parameters: try N2HEParameters(n: 256, modulusBits: bits))
            let ct = try cipher.encrypt((0..<16).map { Int64($0) }, format: .lwe1)
            let q = UInt64(1) << UInt64(bits)
            var maxSeen: UInt64 = 0
            for offset in stride(from: 13, to: ct.count, by: 8) {
                let v = ct[offset..<offset + 8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                XCTAssertLessThan(v, q)
                maxSeen = max(maxSeen, v)
            }
            XCTAssertGreaterThan(maxSeen, q / 2, "A should use the whole range [0, q)")
        }
    }

    func testScalarFormsDecrypt() throws {
        let cipher = try N2HECipher(key: try N2HESecretKey.generate(n: 16), parameters: try N2HEParameters(n: 16))
        for format in N2HECiphertextFormat.allCases {
            var ct = try cipher.encrypt([4242], format: format)
            ct[12] &= ~0x01   // scalar form: same bytes when k = 1
            XCTAssertFalse(try N2HECiphertextInfo(parsing: ct).isBatch)
            XCTAssertEqual(try cipher.decrypt(ct), [4242])
        }
    }

    func testRawBufferAPIAndSizeQueries() throws {
        let cipher = try N2HECipher(key: try N2HESecretKey.generate(n: 128), parameters: try N2HEParameters(n: 128, modulusBits: 48))
        let plaintext = littleEndianBytes([3, -3, 70000] as [Int64])
        for format in N2HECiphertextFormat.allCases {
            let size = try cipher.ciphertextByteCount(format: format, plaintextByteCount: plaintext.count)
            XCTAssertEqual(size, format == .lwe1 ? 13 + 8 * 3 * 128 + 24 : 45 + 24)
            var out = [UInt8](repeating: 0xAA, count: size + 5)
            let written = try plaintext.withUnsafeBytes { p in
                try out.withUnsafeMutableBytes { try cipher.encrypt(plaintext: p, format: format, into: $0) }
            }
            XCTAssertEqual(written, size)
            XCTAssertEqual(Array(out.suffix(5)), [0xAA, 0xAA, 0xAA, 0xAA, 0xAA], "no write past the ciphertext")
            let ct = Array(out.prefix(size))
            XCTAssertEqual(try cipher.plaintextByteCount(ciphertext: ct), 24)
            var decrypted = [UInt8](repeating: 0, count: 24)
            let n = try ct.withUnsafeBytes { c in try decrypted.withUnsafeMutableBytes { try cipher.decrypt(ciphertext: c, into: $0) } }
            XCTAssertEqual(n, 24)
            XCTAssertEqual(decrypted, littleEndianBytes([3, 65533, 70000 - 65536] as [Int64]))
            // Too small output buffers are reported, not written.
            var small = [UInt8](repeating: 0, count: size - 1)
            assertThrows(.outputBufferTooSmall(required: size, available: size - 1)) {
                try plaintext.withUnsafeBytes { p in try small.withUnsafeMutableBytes { try cipher.encrypt(plaintext: p, format: format, into: $0) } }
            }
            var smallPlain = [UInt8](repeating: 0, count: 23)
            assertThrows(.outputBufferTooSmall(required: 24, available: 23)) {
                try ct.withUnsafeBytes { c in try smallPlain.withUnsafeMutableBytes { try cipher.decrypt(ciphertext: c, into: $0) } }
            }
        }
        assertThrows(.invalidPlaintextLength(0)) { try cipher.encrypt(plaintext: [UInt8](), format: .lwe1) }
        assertThrows(.invalidPlaintextLength(12)) { try cipher.encrypt(plaintext: [UInt8](repeating: 0, count: 12), format: .lwe2) }
        assertThrows(.invalidPlaintextLength(7)) { try cipher.ciphertextByteCount(format: .lwe1, plaintextByteCount: 7) }
        assertThrows(.unsupportedParameters(.threadCountOutOfRange(0))) { try cipher.encrypt([1], format: .lwe1, threads: 0) }
        assertThrows(.unsupportedParameters(.threadCountOutOfRange(65))) { try cipher.decrypt([UInt8](), threads: 65) }
    }

    /// In-place use (PKCS#11 callers may pass the same buffer for input and output) gives the same results.
    func testOverlappingBuffers() throws {
        let cipher = try N2HECipher(key: try N2HESecretKey.generate(n: 16), parameters: try N2HEParameters(n: 16))
        let messages: [Int64] = [1, 2, 3, 65535, -4, 99, 100, 101]
        for format in N2HECiphertextFormat.allCases {
            let size = try cipher.ciphertextByteCount(format: format, count: messages.count)
            var buffer = [UInt8](repeating: 0, count: size)
            let plaintext = littleEndianBytes(messages)
            buffer.replaceSubrange(0..<plaintext.count, with: plaintext)
            let written = try buffer.withUnsafeMutableBytes { b in
                try cipher.encrypt(plaintext: UnsafeRawBufferPointer(rebasing: b[0..<plaintext.count]), format: format, into: b, threads: 2)
            }
            XCTAssertEqual(written, size)
            let ct = buffer
            let out = try buffer.withUnsafeMutableBytes { b in
                try cipher.decrypt(ciphertext: UnsafeRawBufferPointer(b), into: b, threads: 3)
            }
            XCTAssertEqual(out, 64)
            XCTAssertEqual(Array(buffer.prefix(64)), littleEndianBytes(messages.map { ($0 % 65536 + 65536) % 65536 }))
            XCTAssertEqual(try cipher.decrypt(ct), messages.map { ($0 % 65536 + 65536) % 65536 })
        }
    }

    func testHomomorphicAddAllFormatCombinations() throws {
        for bits in [32, 48] {
            let params = try N2HEParameters(n: 96, modulusBits: bits, noiseMilli: 5120)
            let cipher = try N2HECipher(key: try N2HESecretKey.generate(n: 96), parameters: params)
            let m1: [Int64] = [1, 65535, 30000, -2, 0, 7]
            let m2: [Int64] = [2, 1, 40000, -3, 65535, 9]
            let expected = zip(m1, m2).map { expectedReduction($0 + $1, plaintextBits: 16) }
            for f1 in N2HECiphertextFormat.allCases {
                for f2 in N2HECiphertextFormat.allCases {
                    let sum = try N2HEHomomorphic.add(try cipher.encrypt(m1, format: f1), try cipher.encrypt(m2, format: f2), parameters: params)
                    if f1 == .lwe2 && f2 == .lwe2 {
                        // Two seeded inputs stay seeded: a seeded sum of both seeds.
                        let seeded = try N2HESeededSum(parsing: sum, expectedDimension: 96)
                        XCTAssertEqual(seeded.seeds.count, 2)
                        XCTAssertTrue(seeded.isBatch)
                    } else {
                        let info = try N2HECiphertextInfo(parsing: sum, expectedDimension: 96)
                        XCTAssertEqual(info.format, .lwe1)
                        XCTAssertTrue(info.isBatch)
                    }
                    XCTAssertEqual(try cipher.decrypt(sum), expected, "q=2^\(bits) \(f1)+\(f2)")
                    XCTAssertEqual(try cipher.decrypt(sum, smudging: true), expected, "smudged q=2^\(bits) \(f1)+\(f2)")
                    // Sums of sums keep working.
                    let twice = try N2HEHomomorphic.add(sum, sum, parameters: params)
                    XCTAssertEqual(try cipher.decrypt(twice), expected.map { expectedReduction(2 * $0, plaintextBits: 16) })
                }
            }
            assertThrows(.incompatibleCiphertexts) {
                try N2HEHomomorphic.add(try cipher.encrypt([1, 2], format: .lwe1), try cipher.encrypt([1], format: .lwe1), parameters: params)
            }
        }
    }

    /// Seeded sums mixed with LWE1 fall back to LWE1 with the same (A, B); seeded sums of many terms stay exact
    /// under smudging; malformed seeded sums are refused, never trapped on.
    func testSeededSumsMixAndStayExact() throws {
        let params = try N2HEParameters(n: 64, modulusBits: 32, noiseMilli: 5120)
        let cipher = try N2HECipher(key: try N2HESecretKey.generate(n: 64), parameters: params)
        var sum = try cipher.encrypt([1, 2, 3], format: .lwe2)
        for _ in 1..<50 { sum = try N2HEHomomorphic.add(sum, try cipher.encrypt([1, 2, 3], format: .lwe2), parameters: params) }
        XCTAssertEqual(try N2HESeededSum(parsing: sum).seeds.count, 50)
        XCTAssertEqual(sum.count, N2HESeededSum.byteCount(count: 3, seedCount: 50))
        XCTAssertEqual(try cipher.decrypt(sum, smudging: true), [50, 100, 150])
        let mixed = try N2HEHomomorphic.add(sum, try cipher.encrypt([1, 1, 1], format: .lwe1), parameters: params)
        XCTAssertEqual(try N2HECiphertextInfo(parsing: mixed).format, .lwe1)
        XCTAssertEqual(try cipher.decrypt(mixed), [51, 101, 151])
        var noSeeds = sum
        noSeeds.replaceSubrange(13..<17, with: [0, 0, 0, 0])
        XCTAssertThrowsError(try cipher.decrypt(noSeeds))
        XCTAssertThrowsError(try cipher.decrypt(Array(sum.dropLast())))
        var tooMany = sum
        tooMany.replaceSubrange(13..<17, with: [0xFF, 0xFF, 0xFF, 0xFF])
        XCTAssertThrowsError(try cipher.decrypt(tooMany))
        XCTAssertEqual(params.maximumSeededSumTerms, N2HESeededSum.maximumSeeds)
        XCTAssertEqual(try N2HEParameters(n: 64, modulusBits: 32, plaintextBits: 24, noiseMilli: 5120).maximumSeededSumTerms, 6)
        XCTAssertEqual(try N2HEParameters(n: 64, modulusBits: 32, plaintextBits: 31, noiseMilli: 5120).maximumSeededSumTerms, 0)
    }

    /// Smudging keeps honest ciphertexts exact and decouples a boundary row's answer from its noise.
    func testSmudgingHidesTheNoiseOfABoundaryRow() throws {
        let params = try N2HEParameters(n: 64, modulusBits: 32, plaintextBits: 16, noiseMilli: 5120)
        let key = try N2HESecretKey.generate(n: 64)
        let cipher = try N2HECipher(key: key, parameters: params)
        let k = 4096
        let ct = try cipher.encrypt([Int64](repeating: 0, count: k), format: .lwe2)
        XCTAssertEqual(try cipher.decrypt(ct, smudging: true), [Int64](repeating: 0, count: k))
        // Shift every B by Δ/2: unsmudged, the answer is exactly "e ≥ 0" (rounding half to even at 0); smudged
        // it is a fair coin whatever e is.
        var shifted = ct
        for r in 0..<k {
            let o = 45 + 8 * r
            var b = shifted[o..<(o + 8)].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            b = (b &+ (1 << 15)) & 0xFFFF_FFFF
            for i in 0..<8 { shifted[o + i] = UInt8(truncatingIfNeeded: b >> (8 * UInt64(i))) }
        }
        let plain = try cipher.decrypt(shifted)
        let smudged = try cipher.decrypt(shifted, smudging: true)
        let ones = smudged.filter { $0 == 1 }.count
        XCTAssertGreaterThan(ones, k / 2 - 300)
        XCTAssertLessThan(ones, k / 2 + 300)
        // The unsmudged answers are a deterministic function of the (secret) noise: decrypting twice agrees.
        XCTAssertEqual(try cipher.decrypt(shifted), plain)
        XCTAssertNotEqual(try cipher.decrypt(shifted, smudging: true), smudged)
    }

    func testHomomorphicAddOfSDKFixtures() throws {
        let key = try Fixtures.sdkKeyRaw()
        let cases = try Fixtures.cases().cases.filter { $0.k == 8 && $0.modulus_bits == 32 }
        XCTAssertEqual(cases.count, 2)
        let params = try N2HEParameters(n: 1024, modulusBits: 32, noiseMilli: 500)
        let sum = try N2HEHomomorphic.add(try Fixtures.data(cases[0].file), try Fixtures.data(cases[1].file), parameters: params)
        let expected = zip(cases[0].plaintext, cases[1].plaintext).map { ($0 + $1) % 65536 }
        XCTAssertEqual(try N2HECipher(key: key, parameters: params).decrypt(sum), expected)
    }

    func testNoiseIsWithinBoundEvenForTinyScale() throws {
        // Δ = 2: |e| < 1 forces e = 0 by rejection/clamping, so every value must decrypt exactly.
        let params = try N2HEParameters(n: 32, modulusBits: 32, plaintextBits: 31, noiseMilli: 100_000)
        let cipher = try N2HECipher(key: try N2HESecretKey.generate(n: 32), parameters: params)
        let m = (0..<200).map { Int64($0) * 10_000_019 }
        XCTAssertEqual(try cipher.decrypt(try cipher.encrypt(m, format: .lwe2)), m.map { expectedReduction($0, plaintextBits: 31) })
    }

    func testSkellamMomentsAndBounds() throws {
        for mu in [0.001, 0.5, 5.12, 100.0] {
            let sampler = SkellamNoise(mu: mu, scale: 1 << 16)
            let samples = try sampler.samples(20_000)
            let mean = Double(samples.reduce(0, +)) / Double(samples.count)
            let variance = samples.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(samples.count)
            // Var(Skellam(μ, μ)) = 2μ; allow 5 standard errors.
            let stdErrVar = 2 * mu * (2.0 / Double(samples.count)).squareRoot() * 2 + 0.002
            XCTAssertEqual(variance, 2 * mu, accuracy: 5 * stdErrVar, "μ = \(mu)")
            XCTAssertEqual(mean, 0, accuracy: 5 * (2 * mu / Double(samples.count)).squareRoot() + 0.001, "μ = \(mu)")
            XCTAssertTrue(samples.allSatisfy { abs($0) < 1 << 15 })
        }
        let bounded = try SkellamNoise(mu: 100, scale: 8).samples(2000)
        XCTAssertTrue(bounded.allSatisfy { abs($0) < 4 })
        XCTAssertTrue(bounded.contains { $0 != 0 })
    }
}
