/// The parameters of an N2HE key: lattice dimension n, modulus q = 2^modulusBits, plaintext modulus
/// t = 2^plaintextBits and the Skellam noise parameter μ = noiseMilli / 1000.
///
/// Supported: 1 ≤ n ≤ 65536 (`dimensionRange`; with k < 2^32 this bounds 8·k·n below 2^51),
/// modulusBits ∈ {32, 48}, 1 ≤ plaintextBits < modulusBits, 1 ≤ noiseMilli ≤ 100_000 (μ from 0.001 to 100).
public struct N2HEParameters: Hashable, Sendable {
    /// Lattice dimension (key length).
    public let n: Int
    /// log2 q: 32 or 48.
    public let modulusBits: Int
    /// log2 t.
    public let plaintextBits: Int
    /// Skellam μ × 1000 used when encrypting.
    public let noiseMilli: Int

    public static let dimensionRange: ClosedRange<Int> = 1...65536
    public static let supportedModulusBits: [Int] = [32, 48]
    public static let noiseMilliRange: ClosedRange<Int> = 1...100_000

    /// n = 1024, q = 2^32, t = 2^16, μ = 5.12 (σ ≈ 3.2).
    public static let `default` = N2HEParameters(uncheckedN: 1024, modulusBits: 32, plaintextBits: 16, noiseMilli: 5120)
    /// The TensorGuard SDK's defaults: n = 1024, q = 2^32, t = 2^16, μ = 0.5.
    public static let sdkDefault = N2HEParameters(uncheckedN: 1024, modulusBits: 32, plaintextBits: 16, noiseMilli: 500)

    /// Validates and creates parameters; throws `N2HEError.unsupportedParameters` otherwise.
    public init(n: Int = N2HEParameters.default.n, modulusBits: Int = N2HEParameters.default.modulusBits,
                plaintextBits: Int = N2HEParameters.default.plaintextBits,
                noiseMilli: Int = N2HEParameters.default.noiseMilli) throws {
        guard Self.dimensionRange.contains(n) else {
            throw N2HEError.unsupportedParameters(.dimensionOutOfRange(n))
        }
        guard Self.supportedModulusBits.contains(modulusBits) else {
            throw N2HEError.unsupportedParameters(.unsupportedModulusBits(modulusBits))
        }
        guard plaintextBits >= 1, plaintextBits < modulusBits else {
            throw N2HEError.unsupportedParameters(.plaintextBitsOutOfRange(plaintextBits))
        }
        guard Self.noiseMilliRange.contains(noiseMilli) else {
            throw N2HEError.unsupportedParameters(.noiseOutOfRange(noiseMilli))
        }
        self.init(uncheckedN: n, modulusBits: modulusBits, plaintextBits: plaintextBits, noiseMilli: noiseMilli)
    }

    private init(uncheckedN n: Int, modulusBits: Int, plaintextBits: Int, noiseMilli: Int) {
        self.n = n
        self.modulusBits = modulusBits
        self.plaintextBits = plaintextBits
        self.noiseMilli = noiseMilli
    }

    /// q − 1 (q is a power of two, so reduction mod q is `& modulusMask`).
    @inlinable public var modulusMask: UInt64 { (UInt64(1) << UInt64(modulusBits)) &- 1 }
    /// t − 1.
    @inlinable public var plaintextMask: UInt64 { (UInt64(1) << UInt64(plaintextBits)) &- 1 }
    /// log2 Δ = modulusBits − plaintextBits (≥ 1).
    @inlinable public var scaleBits: Int { modulusBits - plaintextBits }
    /// Δ = q / t.
    @inlinable public var scale: UInt64 { UInt64(1) << UInt64(scaleBits) }
    /// μ of the Skellam noise.
    public var noiseMu: Double { Double(noiseMilli) / 1000 }
    /// Length of the raw key form: 8·n bytes.
    public var rawKeyByteCount: Int { 8 * n }

    /// A rough classical security estimate in bits, from the HomomorphicEncryption.org standard tables for a
    /// uniform ternary secret (σ ≈ 3.2): the largest table level whose log q bound this key meets, and below
    /// the 128-bit row an extrapolation proportional to n / log q (security of LWE grows roughly linearly
    /// in n / log q). It is an estimate for display and policy, not a proof; the SDK's own labels overstate.
    public var estimatedClassicalSecurityBits: Int {
        // HE standard, uniform ternary, n = 1024: log q ≤ 27 / 19 / 14 for 128 / 192 / 256 bits; the rows for
        // larger n scale linearly in n to within a few percent, so the ratio n / log q carries the level.
        let ratio128 = 1024.0 / 27, ratio192 = 1024.0 / 19, ratio256 = 1024.0 / 14
        let ratio = Double(n) / Double(modulusBits)
        let bits: Double
        if ratio >= ratio256 {
            bits = 256
        } else if ratio >= ratio192 {
            bits = 192 + 64 * (ratio - ratio192) / (ratio256 - ratio192)
        } else if ratio >= ratio128 {
            bits = 128 + 64 * (ratio - ratio128) / (ratio192 - ratio128)
        } else {
            bits = 128 * ratio / ratio128
        }
        return Int(bits.rounded(.down))
    }
}
