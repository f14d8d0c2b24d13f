import CN2HEKernels
import COpenSSL
import CryptoCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Symmetric Skellam noise e = X − Y with X, Y ~ Poisson(μ) independent, drawn from OpenSSL's CSPRNG.
///
/// Poisson sampling is by inversion against a precomputed table of CDF thresholds scaled to 2^64: X is the
/// number of thresholds ≤ a uniform 64-bit word, computed by scanning the whole table for every draw (no early
/// exit, so the time does not depend on the value). The table ends where the double-precision CDF reaches 1 (tail
/// mass below 2^-53) or at μ + 12√μ + 24, whichever comes first. Draws with |e| ≥ Δ/2 (which would not decrypt)
/// are rejected and redrawn; after 64 consecutive rejections (only conceivable with tiny Δ and large μ) the value
/// is clamped to ±(Δ/2 − 1).
struct SkellamNoise: Sendable {
    private let thresholds: [UInt64]
    private let bound: Int64    // |e| < bound = Δ/2

    init(mu: Double, scale: UInt64) {
        let limit = Int((mu + 12 * mu.squareRoot() + 24).rounded(.up))
        var table: [UInt64] = []
        table.reserveCapacity(limit)
        var pmf = exp(-mu)
        var cdf = 0.0
        for x in 0..<limit {
            if x > 0 { pmf *= mu / Double(x) }
            cdf += pmf
            guard cdf < 1 else { break }
            table.append(UInt64(cdf * 18_446_744_073_709_551_616.0))
        }
        thresholds = table
        bound = Int64(truncatingIfNeeded: scale >> 1)
    }

    @inline(__always) private static func poisson(_ r: UInt64, _ table: UnsafeBufferPointer<UInt64>) -> Int64 {
        var x: Int64 = 0
        for t in table { x &+= t <= r ? 1 : 0 }
        return x
    }

    /// One noise value from a fresh pair of words, with rejection (see the type's documentation).
    private func resample(_ random: SecureRandomWords, _ table: UnsafeBufferPointer<UInt64>) throws -> Int64 {
        for _ in 0..<64 {
            let e = Self.poisson(try random.next(), table) - Self.poisson(try random.next(), table)
            if e > -bound && e < bound { return e }
        }
        let e = Self.poisson(try random.next(), table) - Self.poisson(try random.next(), table)
        return min(max(e, -(bound - 1)), bound - 1)
    }

    /// `count` noise values. The random words come from one RAND_bytes call and are zeroised afterwards.
    func samples(_ count: Int) throws -> [Int64] {
        guard count > 0 else { return [] }
        let wordCount = (2 * count + 7) / 8 * 8   // a whole number of 8-word vectors for the AVX-512 kernel
        var words = [UInt64](repeating: 0, count: wordCount)
        var counts = [Int64](repeating: 0, count: wordCount)
        defer {
            words.withUnsafeMutableBytes { secureZero($0) }
            counts.withUnsafeMutableBytes { secureZero($0) }
        }
        try words.withUnsafeMutableBytes { try SecureRandom.fill($0) }
        var out = [Int64](repeating: 0, count: count)
        let random = SecureRandomWords()
        try thresholds.withUnsafeBufferPointer { table in
            try words.withUnsafeBufferPointer { w in
                try counts.withUnsafeMutableBufferPointer { c in
                    guard let wBase = w.baseAddress, let cBase = c.baseAddress else { return }
                    if SIMDSupport.avx512, let tBase = table.baseAddress {
                        n2he_threshold_counts_avx512(wBase, wordCount, tBase, table.count, cBase)
                    } else {
                        for i in 0..<wordCount { cBase[i] = Self.poisson(wBase[i], table) }
                    }
                    for i in 0..<count {
                        let e = cBase[2 &* i] &- cBase[2 &* i &+ 1]
                        out[i] = (e > -bound && e < bound) ? e : try resample(random, table)
                    }
                }
            }
        }
        return out
    }
}
