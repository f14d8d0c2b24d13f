import COpenSSL
import CN2HEKernels
import XCTest
@testable import N2HE

final class KnownAnswerTests: XCTestCase {
    let seed = [UInt8](0..<32)

    func testExpansionPrefixAndDigestQ32() throws {
        let a = try N2HEMatrixExpansion.expand(seed: seed, rows: 1, dimension: 1024, modulusBits: 32)
        XCTAssertEqual(Array(a.prefix(4)), [4039686930, 2162238391, 2998903572, 426028264])
        XCTAssertEqual(sha256(littleEndianBytes(a)), "77627ccd17df77a03232e3e852a0328a03c1b3ad4f33cb421d0b972f553f218c")
    }

    func testExpansionPrefixAndDigestQ48() throws {
        let a = try N2HEMatrixExpansion.expand(seed: seed, rows: 1, dimension: 1024, modulusBits: 48)
        XCTAssertEqual(Array(a.prefix(4)), [141704455254216, 27920188355263, 219975270519569, 92638865661845])
        XCTAssertEqual(sha256(littleEndianBytes(a)), "f0c909c7dceec9e043e03c6aec72d175c799c1a1949601d2d4ad0f93a30077a7")
    }

    func testTV1LWE2() throws {
        let s: [Int64] = [1, 0, -1, 1, -1, 0, 0, 1, -1, -1, 1, 0, 1, 0, -1, 1]
        let params = try N2HEParameters(n: 16, modulusBits: 32, plaintextBits: 16)
        let cipher = try N2HECipher(key: try makeKey(s), parameters: params)
        let expected = "4c574532030000001000000003000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f62fc531000000000c1bcabc900000000b16a592c00000000"
        let plaintext = littleEndianBytes([1, 42, 65535] as [Int64])
        for threads in [1, 2, 3] {
            let ct = try plaintext.withUnsafeBytes {
                try cipher.encryptToArray(plaintext: $0, format: .lwe2, threads: threads,
                                          fixed: .init(noise: [0, 1, -1], seed: seed))
            }
            XCTAssertEqual(hex(ct), expected, "threads \(threads)")
        }
        XCTAssertEqual(try cipher.decrypt(bytes(hex: expected)), [1, 42, 65535])
        XCTAssertEqual(try cipher.decrypt(bytes(hex: expected), threads: 3), [1, 42, 65535])
    }

    func testTV2LWE1() throws {
        let params = try N2HEParameters(n: 4, modulusBits: 32, plaintextBits: 16)
        let cipher = try N2HECipher(key: try makeKey([1, -1, 0, 1]), parameters: params)
        let expected = "4c5745310200000004000000010100000000000000020000000000000003000000000000000400000000000000ffffffff00000000000000000000000015cd5b0700000000070000000000000005000700000000000300e8fd00000000"
        let plaintext = littleEndianBytes([7, 65000] as [Int64])
        let ct = try plaintext.withUnsafeBytes {
            try cipher.encryptToArray(plaintext: $0, format: .lwe1, threads: 1,
                                      fixed: .init(noise: [2, -3], matrix: [1, 2, 3, 4, 4294967295, 0, 123456789, 7]))
        }
        XCTAssertEqual(hex(ct), expected)
        XCTAssertEqual(try cipher.decrypt(bytes(hex: expected)), [7, 65000])
    }

    /// Message reduction uses Python semantics: −1 ≡ t − 1, t + 5 ≡ 5.
    func testMessageReductionMatchesPythonModulo() throws {
        let params = try N2HEParameters(n: 4, modulusBits: 32, plaintextBits: 16)
        let cipher = try N2HECipher(key: try makeKey([1, -1, 0, 1]), parameters: params)
        let plaintext = littleEndianBytes([-1, 65536 + 5] as [Int64])
        let ct = try plaintext.withUnsafeBytes {
            try cipher.encryptToArray(plaintext: $0, format: .lwe1, threads: 1,
                                      fixed: .init(noise: [0, 0], matrix: [0, 0, 0, 0, 0, 0, 0, 0]))
        }
        // A = 0, e = 0 ⇒ B = Δ·(m mod t).
        let b = Array(ct.suffix(16))
        XCTAssertEqual(b, littleEndianBytes([UInt64(65535) << 16, UInt64(5) << 16]))
    }

    func testSeedSequenceEntropyWords() {
        XCTAssertEqual(SeedSequence.entropyWords(bigEndianBytes: [UInt8](repeating: 0, count: 32)), [0])
        XCTAssertEqual(SeedSequence.entropyWords(bigEndianBytes: [0, 0, 0, 0, 0, 1, 0, 0, 0, 2]), [2, 1])
        XCTAssertEqual(SeedSequence.entropyWords(bigEndianBytes: [UInt8](0..<32)).count, 8)
    }

    func testJumpAheadMatchesSequentialSteps() {
        var sequential = PCG64(seedBytesBigEndian: seed)
        let base = sequential
        var outputs: [UInt64] = []
        for _ in 0..<400 { outputs.append(sequential.next64()) }
        print("PCG64 AVX-512 path available: \(PCG64InterleavedFiller.vectorAvailable)")
        for start in [0, 1, 2, 3, 5, 17, 100, 255] {
            var jumped = base
            jumped.advance(by: UInt128(start))
            XCTAssertEqual(jumped.next64(), outputs[start], "advance(\(start))")
            for vector in [false, PCG64InterleavedFiller.vectorAvailable] {
                var filler = PCG64InterleavedFiller(generator: base, startingAtOutput: UInt64(start), allowVector: vector)
                let g = PCG64InterleavedFiller.fillGranularity
                var buffer = [UInt64](repeating: 0, count: 2 * g)
                buffer.withUnsafeMutableBufferPointer { filler.fill($0.baseAddress!, count: g) }
                buffer.withUnsafeMutableBufferPointer { filler.fill($0.baseAddress! + g, count: g) }   // state carries over
                XCTAssertEqual(buffer, Array(outputs[start..<start + 2 * g]), "filler from \(start), vector \(vector)")
            }
        }
    }

    /// The AVX-512 kernel (when this CPU has it) and the scalar chains agree over long runs and far jumps.
    func testVectorAndScalarFillersAgree() throws {
        try XCTSkipUnless(PCG64InterleavedFiller.vectorAvailable, "no AVX-512 F/DQ on this machine")
        let generator = PCG64(seedBytesBigEndian: [UInt8](repeating: 0xA5, count: 32))
        for start: UInt64 in [0, 1, 15, 12345, 1 << 40, UInt64.max - 5000] {
            var scalar = PCG64InterleavedFiller(generator: generator, startingAtOutput: start, allowVector: false)
            var vector = PCG64InterleavedFiller(generator: generator, startingAtOutput: start, allowVector: true)
            var a = [UInt64](repeating: 0, count: 4096), b = [UInt64](repeating: 1, count: 4096)
            for chunk in stride(from: 0, to: 4096, by: 1024) {
                a.withUnsafeMutableBufferPointer { scalar.fill($0.baseAddress! + chunk, count: 1024) }
                b.withUnsafeMutableBufferPointer { vector.fill($0.baseAddress! + chunk, count: 1024) }
            }
            XCTAssertEqual(a, b, "start \(start)")
        }
    }

    /// The AVX-512 LWE1 row kernel equals the portable loop for every n mod 8, unaligned rows and wrapping sums.
    func testVectorAndScalarRowDotAgree() throws {
        try XCTSkipUnless(SIMDSupport.avx512, "no AVX-512 on this machine (or N2HE_DISABLE_SIMD set)")
        var rng = SplitMix64(state: 31)
        for n in Array(1...17) + [63, 64, 65, 1024] {
            let key = try makeKey((0..<n).map { _ in Int64(rng.next() % 3) - 1 })
            for offset in [0, 1, 5, 13] {
                var row = [UInt8](repeating: 0, count: offset + 8 * n)
                for i in row.indices { row[i] = UInt8(truncatingIfNeeded: rng.next()) }
                row.withUnsafeBytes { r in
                    let base = r.baseAddress! + offset
                    XCTAssertEqual(n2he_dot_le64_avx512(base, key.plusBits, key.minusBits, n),
                                   Kernels.dotLE64(base, key.plus64, key.minus64, n), "n=\(n) offset=\(offset)")
                }
            }
        }
    }

    /// The AVX-512 LWE2 segment kernels equal the portable loops at every column offset and length.
    func testVectorAndScalarSegmentDotsAgree() throws {
        try XCTSkipUnless(SIMDSupport.avx512, "no AVX-512 on this machine (or N2HE_DISABLE_SIMD set)")
        var rng = SplitMix64(state: 5)
        let n = 77
        let key = try makeKey((0..<n).map { _ in Int64(rng.next() % 3) - 1 })
        let raw = (0..<n).map { _ in rng.next() }
        let words = raw.map { UInt32(truncatingIfNeeded: $0) }
        for column in 0..<n {
            for count in [0, 1, 7, 8, 15, 16, 17, 31, 32, 33, n - column].filter({ column + $0 <= n }) {
                raw.withUnsafeBufferPointer { r in
                    XCTAssertEqual(n2he_dot_shift16_avx512(r.baseAddress!, key.plusBits, key.minusBits, column, count),
                                   Kernels.dotShift16(r.baseAddress!, key.plus64 + column, key.minus64 + column, count),
                                   "q48 column \(column) count \(count)")
                }
                words.withUnsafeBufferPointer { w in
                    XCTAssertEqual(n2he_dot_u32_avx512(w.baseAddress!, key.plusBits, key.minusBits, column, count),
                                   Kernels.dot32(w.baseAddress!, key.plus32 + column, key.minus32 + column, count),
                                   "q32 column \(column) count \(count)")
                }
            }
        }
    }

    /// The AVX-512 LWE1 encryption kernels (q = 2^32 and 2^48) write and sums exactly like the portable loop.
    func testVectorAndScalarStoreDotAgree() throws {
        try XCTSkipUnless(SIMDSupport.avx512, "no AVX-512 on this machine (or N2HE_DISABLE_SIMD set)")
        var rng = SplitMix64(state: 77)
        for n in Array(1...17) + [1024] {
            let key = try makeKey((0..<n).map { _ in Int64(rng.next() % 3) - 1 })
            let keystream = (0..<4 * n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            var outVector = [UInt8](repeating: 0xEE, count: 8 * n + 21), outScalar = outVector
            let (dv, ds) = keystream.withUnsafeBytes { ks in
                let dv = outVector.withUnsafeMutableBytes {
                    n2he_store_dot_u32_avx512(ks.baseAddress!, $0.baseAddress! + 13, key.plusBits, key.minusBits, n)
                }
                let ds = outScalar.withUnsafeMutableBytes {
                    Kernels.storeAndDotFrom32(ks.baseAddress!, $0.baseAddress! + 13, key.plus64, key.minus64, n)
                }
                return (dv, ds)
            }
            XCTAssertEqual(dv, ds, "n=\(n)")
            XCTAssertEqual(outVector, outScalar, "n=\(n): same bytes, nothing written outside the row")
            // q = 2^48: 6-byte groups (the scalar loop reads 2 bytes of padding past 6n; the vector one does not).
            let keystream48 = (0..<6 * n + 2).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            var out48v = [UInt8](repeating: 0xEE, count: 8 * n + 21), out48s = out48v
            let (ev, es) = keystream48.withUnsafeBytes { ks in
                let ev = out48v.withUnsafeMutableBytes {
                    n2he_store_dot_u48_avx512(ks.baseAddress!, $0.baseAddress! + 13, key.plusBits, key.minusBits, n)
                }
                let es = out48s.withUnsafeMutableBytes {
                    Kernels.storeAndDotFrom48(ks.baseAddress!, $0.baseAddress! + 13, key.plus64, key.minus64, n)
                }
                return (ev, es)
            }
            XCTAssertEqual(ev, es, "q48 n=\(n)")
            XCTAssertEqual(out48v, out48s, "q48 n=\(n)")
        }
    }

    /// Streams started at any row (odd n, so q = 2^32 rows start on either half) equal the full expansion.
    func testRowStreamFromAnyRowMatchesFullExpansion() throws {
        for bits in [32, 48] {
            for n in [1, 3, 7, 1025] {
                let rows = 9
                let full = try N2HEMatrixExpansion.expand(seed: seed, rows: rows, dimension: n, modulusBits: bits)
                for start in 0..<rows {
                    var stream = LWE2RowStream(generator: PCG64(seedBytesBigEndian: seed), rows: start..<rows, n: n, modulusBits: bits)
                    defer { stream.release() }
                    var row = [UInt64](repeating: 0, count: n)
                    for r in start..<rows {
                        row.withUnsafeMutableBufferPointer { stream.nextRow(into: $0.baseAddress!) }
                        XCTAssertEqual(row, Array(full[r * n..<(r + 1) * n]), "q=2^\(bits) n=\(n) start=\(start) row=\(r)")
                    }
                }
            }
        }
    }

    /// Row dot products from streams started at any row (the per-thread split) equal the dot products of the full
    /// expansion with the key, for dimensions that take the fused expansion + dot kernel (n % 64 == 0, q = 2^32)
    /// and for dimensions that take the buffered path.
    func testRowDotsFromAnyRowMatchFullExpansion() throws {
        for bits in [32, 48] {
            for n in [64, 1024, 96, 1025] {
                let rows = 7
                var rng = SplitMix64(state: UInt64(n * bits))
                let entries = (0..<n).map { _ in Int64(rng.next() % 3) - 1 }
                let key = try makeKey(entries)
                let full = try N2HEMatrixExpansion.expand(seed: seed, rows: rows, dimension: n, modulusBits: bits)
                let mask = (UInt64(1) << UInt64(bits)) &- 1
                let expected = (0..<rows).map { r in
                    (0..<n).reduce(UInt64(0)) { $0 &+ full[r * n + $1] &* UInt64(bitPattern: entries[$1]) } & mask
                }
                for start in 0..<rows {
                    var stream = LWE2RowStream(generator: PCG64(seedBytesBigEndian: seed), rows: start..<rows, n: n, modulusBits: bits)
                    defer { stream.release() }
                    for r in start..<rows {
                        XCTAssertEqual(stream.nextRowDot(key) & mask, expected[r], "q=2^\(bits) n=\(n) start=\(start) row=\(r)")
                    }
                }
            }
        }
    }

    /// The AVX-512 threshold counter behind Skellam sampling counts exactly the thresholds <= each word, including
    /// words equal to a threshold and the extremes.
    func testThresholdCountsKernelMatchesScalarCount() throws {
        try XCTSkipUnless(SIMDSupport.avx512, "no AVX-512 on this machine")
        var rng = SplitMix64(state: 42)
        let table = (0..<37).map { _ in rng.next() }.sorted()
        var words = (0..<1000).map { _ in rng.next() } + table + table.map { $0 &- 1 } + [0, .max, 1]
        words += [UInt64](repeating: 0, count: (8 - words.count % 8) % 8)
        var counts = [Int64](repeating: -1, count: words.count)
        table.withUnsafeBufferPointer { t in
            n2he_threshold_counts_avx512(words, words.count, t.baseAddress!, t.count, &counts)
        }
        XCTAssertEqual(counts, words.map { w in Int64(table.filter { $0 <= w }.count) })
    }

    func testRoundHalfEvenDecode() {
        // Δ = 2^16, t = 2^16.
        func d(_ x: UInt64) -> UInt64 { Kernels.decode(x, scaleBits: 16, plaintextMask: 0xFFFF) }
        XCTAssertEqual(d(0), 0)
        XCTAssertEqual(d(32767), 0)
        XCTAssertEqual(d(32768), 0)            // 0.5 → 0 (even)
        XCTAssertEqual(d(32769), 1)
        XCTAssertEqual(d(65536 + 32768), 2)    // 1.5 → 2 (even)
        XCTAssertEqual(d((1 << 32) - 1), 0)    // −1/Δ → 0
        XCTAssertEqual(d((1 << 32) - 32768), 0) // −0.5 → −0 → 0
        XCTAssertEqual(d((1 << 32) - 32769), 65535) // −0.50002 → −1 ≡ t − 1
        XCTAssertEqual(d(1 << 31), 32768)      // x = q/2 exactly stays positive: t/2
        // Δ = 2 (plaintextBits = 31, q = 2^32).
        XCTAssertEqual(Kernels.decode(3, scaleBits: 1, plaintextMask: (1 << 31) - 1), 2)   // 1.5 → 2
        XCTAssertEqual(Kernels.decode(5, scaleBits: 1, plaintextMask: (1 << 31) - 1), 2)   // 2.5 → 2
    }
}
