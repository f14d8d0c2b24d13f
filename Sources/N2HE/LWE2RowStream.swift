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
