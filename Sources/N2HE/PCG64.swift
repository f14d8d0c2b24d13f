import COpenSSL
import CN2HEKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// numpy's SeedSequence (pool size 4) and PCG64 (XSL-RR 128/64), byte-exact with
/// `Generator(PCG64(int.from_bytes(seed, 'big')))` as N2HE-SPEC.md §3 describes — the LWE2 expansion of A.
///
/// Besides the sequential generator this file provides jump-ahead (advance by any distance in O(log d)) and an
/// interleaved multi-chain filler: output i comes from chain i mod L, each chain stepping by M^L, so the CPU
/// overlaps the 128-bit multiplies of L independent dependency chains.
public struct PCG64: Sendable, Equatable {
    public static let multiplier: UInt128 = (UInt128(0x2360_ED05_1FC6_5DA4) << 64) | UInt128(0x4385_DF64_9FCC_F645)

    /// Current 128-bit LCG state (the next output steps first, then permutes).
    public private(set) var state: UInt128
    /// The odd increment.
    public let increment: UInt128

    /// A generator with an explicit state and increment (increment is forced odd).
    public init(state: UInt128, increment: UInt128) {
        self.state = state
        self.increment = increment | 1
    }

    /// numpy `PCG64(seed)` for the integer `int.from_bytes(seed, 'big')` (any length, typically 32 bytes).
    public init(seedBytesBigEndian seed: some Collection<UInt8>) {
        let words = SeedSequence.entropyWords(bigEndianBytes: seed)
        let s = SeedSequence.generateState64(entropy: words)
        let initState = (UInt128(s[0]) << 64) | UInt128(s[1])
        let initSeq = (UInt128(s[2]) << 64) | UInt128(s[3])
        var g = PCG64(state: 0, increment: (initSeq << 1) | 1)
        g.step()
        g.state = g.state &+ initState
        g.step()
        self = g
    }

    @inline(__always) mutating func step() {
        state = state &* PCG64.multiplier &+ increment
    }

    @inline(__always) @usableFromInline static func output(_ state: UInt128) -> UInt64 {
        let hi = UInt64(truncatingIfNeeded: state &>> 64)
        let lo = UInt64(truncatingIfNeeded: state)
        let x = hi ^ lo
        let rot = hi &>> 58
        return (x &>> rot) | (x &<< ((64 &- rot) & 63))
    }

    /// The next 64-bit output (numpy `next_uint64`).
    public mutating func next64() -> UInt64 {
        step()
        return PCG64.output(state)
    }

    /// The affine map (multiplier, increment) of `distance` steps.
    static func stepMap(distance: UInt128, increment: UInt128) -> (mult: UInt128, plus: UInt128) {
        var accMult: UInt128 = 1, accPlus: UInt128 = 0
        var curMult = multiplier, curPlus = increment
        var d = distance
        while d > 0 {
            if d & 1 == 1 {
                accMult = accMult &* curMult
                accPlus = accPlus &* curMult &+ curPlus
            }
            curPlus = (curMult &+ 1) &* curPlus
            curMult = curMult &* curMult
            d >>= 1
        }
        return (accMult, accPlus)
    }

    /// Jumps ahead `distance` steps (as if `next64` were called `distance` times).
    public mutating func advance(by distance: UInt128) {
        let map = PCG64.stepMap(distance: distance, increment: increment)
        state = state &* map.mult &+ map.plus
    }
}
