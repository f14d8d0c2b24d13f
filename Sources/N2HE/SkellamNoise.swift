import Foundation

/// Symmetric Skellam noise e = X − Y with X, Y ~ Poisson(μ) independent, drawn from OpenSSL's CSPRNG.
///
/// Poisson sampling is by inversion against a precomputed table of CDF thresholds scaled to 2^64, scanning
/// the whole table for every draw (no early exit, so the time does not depend on the value). The table reaches
/// μ + 12√μ + 24, beyond which the Poisson tail mass is below 10^-20; a draw beyond it is clamped to the last
/// entry. Draws with |e| ≥ Δ/2 (which would not decrypt) are rejected and redrawn; after 64 consecutive
/// rejections (only conceivable with tiny Δ and large μ) the value is clamped to ±(Δ/2 − 1).
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
            table.append(cdf < 1 ? UInt64(cdf * 18_446_744_073_709_551_616.0) : UInt64.max)
        }
        thresholds = table
        bound = Int64(truncatingIfNeeded: scale >> 1)
    }

    @inline(__always) private func poisson(_ r: UInt64) -> Int64 {
        var x: Int64 = 0
        for t in thresholds { x &+= t <= r ? 1 : 0 }
        return x
    }

    func sample(_ random: SecureRandomWords) throws -> Int64 {
        for _ in 0..<64 {
            let e = poisson(try random.next()) - poisson(try random.next())
            if e > -bound && e < bound { return e }
        }
        let e = poisson(try random.next()) - poisson(try random.next())
        return min(max(e, -(bound - 1)), bound - 1)
    }

    /// k noise values.
    func samples(_ count: Int) throws -> [Int64] {
        let random = SecureRandomWords()
        var out = [Int64](repeating: 0, count: count)
        for i in 0..<count { out[i] = try sample(random) }
        return out
    }
}
