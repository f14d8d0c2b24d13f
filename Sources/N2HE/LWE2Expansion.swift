import COpenSSL
import CN2HEKernels

/// Streams the entries of an LWE2 matrix A (N2HE-SPEC.md §3) row by row from any starting row, for
/// q = 2^32 (entries are the 32-bit halves of next64, low half first) and q = 2^48 (next64 >> 16).
struct LWE2RowStream {
    private static let bufferOutputs = 1024           // raw 64-bit outputs per refill (8 KiB, L1-resident)
    private let n: Int
    private let entriesPerOutput: Int                 // 2 for q = 2^32, 1 for q = 2^48
    private let buffer: UnsafeMutablePointer<UInt64>
    private var filler: PCG64InterleavedFiller
    private var position = 0                          // next entry in the buffer
    private var entriesInBuffer = 0
    private var pendingSkip: Int                      // entries to drop from the first refill (odd start, q = 2^32)
    private var entriesRemaining: Int                 // entries still to consume, rows ..< endRow
    /// Rows can go straight through the fused expansion + dot kernel: AVX-512, q = 2^32, whole 64-entry blocks.
    private let fusedDotRows: Bool

    /// Positions the stream at the first entry of `rows.lowerBound`; it yields rows up to `rows.upperBound`.
    /// The caller must call `release()` when done.
    init(generator: PCG64, rows: Range<Int>, n: Int, modulusBits: Int) {
        self.n = n
        entriesPerOutput = modulusBits == 32 ? 2 : 1
        let startEntry = UInt64(rows.lowerBound) * UInt64(n)        // < 2^32 · 2^16
        pendingSkip = Int(startEntry % UInt64(entriesPerOutput))
        filler = PCG64InterleavedFiller(generator: generator, startingAtOutput: startEntry / UInt64(entriesPerOutput))
        buffer = .allocate(capacity: LWE2RowStream.bufferOutputs)
        entriesRemaining = rows.count * n
        fusedDotRows = SIMDSupport.avx512 && entriesPerOutput == 2 && n % 64 == 0 && pendingSkip == 0
    }

    func release() { buffer.deallocate() }

    private mutating func refill() {
        let needed = (entriesRemaining + entriesPerOutput - 1) / entriesPerOutput + 1   // +1: possible skipped half
        let granularity = PCG64InterleavedFiller.fillGranularity
        let outputs = min(LWE2RowStream.bufferOutputs, (needed + granularity - 1) / granularity * granularity)
        filler.fill(buffer, count: outputs)
        entriesInBuffer = outputs * entriesPerOutput
        position = pendingSkip   // an odd start (q = 2^32) begins on the high half of an output
        pendingSkip = 0
    }

    /// Consumes the next row, handing `segment(entries, column, count)` the row in contiguous pieces. `entries`
    /// points to UInt32 entries (q = 2^32) or raw UInt64 outputs whose entry is `>> 16` (q = 2^48).
    @inline(__always)
    mutating func nextRow(_ segment: (UnsafeRawPointer, Int, Int) -> Void) {
        var column = 0
        while column < n {
            if position == entriesInBuffer { refill() }
            let take = min(entriesInBuffer - position, n - column)
            let base = UnsafeRawPointer(buffer) + position * (8 / entriesPerOutput)
            segment(base, column, take)
            column += take
            position += take
        }
        entriesRemaining -= n
    }

    /// The next row's dot product with the key, mod 2^64 (reduce mod q afterwards).
    @inline(__always)
    mutating func nextRowDot(_ key: N2HESecretKey) -> UInt64 {
        if fusedDotRows, position == entriesInBuffer,
           let dot = filler.dot32(outputs: n / 2, plusBits: key.plusBits, minusBits: key.minusBits) {
            entriesRemaining -= n
            return dot
        }
        var sum: UInt64 = 0
        if SIMDSupport.avx512 {
            if entriesPerOutput == 2 {
                nextRow { base, column, count in
                    sum = sum &+ n2he_dot_u32_avx512(base.assumingMemoryBound(to: UInt32.self),
                                                     key.plusBits, key.minusBits, column, count)
                }
            } else {
                nextRow { base, column, count in
                    sum = sum &+ n2he_dot_shift16_avx512(base.assumingMemoryBound(to: UInt64.self),
                                                         key.plusBits, key.minusBits, column, count)
                }
            }
        } else if entriesPerOutput == 2 {
            nextRow { base, column, count in
                sum = sum &+ Kernels.dot32(base.assumingMemoryBound(to: UInt32.self),
                                           key.plus32 + column, key.minus32 + column, count)
            }
        } else {
            nextRow { base, column, count in
                sum = sum &+ Kernels.dotShift16(base.assumingMemoryBound(to: UInt64.self),
                                                key.plus64 + column, key.minus64 + column, count)
            }
        }
        return sum
    }

    /// Writes the next row's entries (values in [0, q)) to `out`.
    mutating func nextRow(into out: UnsafeMutablePointer<UInt64>) {
        if entriesPerOutput == 2 {
            nextRow { base, column, count in
                let p = base.assumingMemoryBound(to: UInt32.self)
                for i in 0..<count { out[column + i] = UInt64(p[i]) }
            }
        } else {
            nextRow { base, column, count in
                let p = base.assumingMemoryBound(to: UInt64.self)
                for i in 0..<count { out[column + i] = p[i] &>> 16 }
            }
        }
    }
}

/// The public face of LWE2's matrix expansion (for tests, tools and benchmarks).
public enum N2HEMatrixExpansion {
    /// What A depends on: the PCG64 state and increment a seed selects (32 bytes, little-endian). numpy's
    /// SeedSequence folds the 256-bit seed into a 128-bit pool, so many seeds select one stream and one A; the
    /// seed-once rule must count streams, not seed bytes.
    public static func streamIdentity(seed: [UInt8]) -> [UInt8] {
        let g = PCG64(seedBytesBigEndian: seed)
        var out: [UInt8] = []
        out.reserveCapacity(32)
        for v in [g.state, g.increment] {
            withUnsafeBytes(of: UInt64(truncatingIfNeeded: v).littleEndian) { out += $0 }
            withUnsafeBytes(of: UInt64(truncatingIfNeeded: v >> 64).littleEndian) { out += $0 }
        }
        return out
    }

    /// A (rows × n, row-major, entries in [0, q); rows·n ≤ 2^28) as numpy
    /// `Generator(PCG64(int.from_bytes(seed, 'big'))).integers(0, q, size=(rows, n), dtype=int64)` yields it.
    public static func expand(seed: [UInt8], rows: Int, dimension n: Int, modulusBits: Int) throws -> [UInt64] {
        guard N2HEParameters.dimensionRange.contains(n) else { throw N2HEError.unsupportedParameters(.dimensionOutOfRange(n)) }
        guard N2HEParameters.supportedModulusBits.contains(modulusBits) else {
            throw N2HEError.unsupportedParameters(.unsupportedModulusBits(modulusBits))
        }
        // At most 2^28 entries (2 GiB) are materialised; larger matrices are only ever streamed.
        guard rows >= 1, rows <= Int(UInt32.max), rows * n <= 1 << 28 else {
            throw N2HEError.unsupportedParameters(.countOutOfRange(rows))
        }
        let total = rows * n
        var stream = LWE2RowStream(generator: PCG64(seedBytesBigEndian: seed), rows: 0..<rows, n: n, modulusBits: modulusBits)
        defer { stream.release() }
        return [UInt64](unsafeUninitializedCapacity: total) { buffer, initialized in
            guard let base = buffer.baseAddress else { return }
            for r in 0..<rows { stream.nextRow(into: base + r * n) }
            initialized = total
        }
    }

    /// The dot product (A_r · s) mod q of every row of the expanded A with the key — the work LWE2 decryption
    /// does before subtracting from B — exposed so tools and benchmarks can check and time it.
    public static func rowDots(seed: [UInt8], rows: Int, key: N2HESecretKey, modulusBits: Int) throws -> [UInt64] {
        guard N2HEParameters.supportedModulusBits.contains(modulusBits) else {
            throw N2HEError.unsupportedParameters(.unsupportedModulusBits(modulusBits))
        }
        guard rows >= 1, rows <= Int(UInt32.max) else { throw N2HEError.unsupportedParameters(.countOutOfRange(rows)) }
        let mask = (UInt64(1) << UInt64(modulusBits)) &- 1
        var stream = LWE2RowStream(generator: PCG64(seedBytesBigEndian: seed), rows: 0..<rows, n: key.n, modulusBits: modulusBits)
        defer { stream.release() }
        return (0..<rows).map { _ in stream.nextRowDot(key) & mask }
    }
}
