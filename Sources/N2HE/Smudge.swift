import COpenSSL
import CN2HEKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Smudging noise for decryption: a random 64-bit word mapped to u ∈ [−Δ/4, Δ/4) (as a value mod 2^64; Δ/2 is a
/// power of two, so the mapping is exactly uniform). Disabled, or Δ < 4, it is always 0.
struct Smudge {
    let rangeMask: UInt64   // Δ/2 − 1
    let offset: UInt64      // Δ/4

    init(parameters: N2HEParameters, enabled: Bool) {
        if enabled, parameters.scaleBits >= 2 {
            rangeMask = (UInt64(1) << UInt64(parameters.scaleBits - 1)) &- 1
            offset = UInt64(1) << UInt64(parameters.scaleBits - 2)
        } else {
            rangeMask = 0
            offset = 0
        }
    }

    @inline(__always) func noise(_ random: UInt64) -> UInt64 { (random & rangeMask) &- offset }
}
