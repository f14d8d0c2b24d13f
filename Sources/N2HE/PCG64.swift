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

/// numpy `SeedSequence` restricted to what PCG64 seeding uses (no spawn key, pool size 4).
enum SeedSequence {
    static let initA: UInt32 = 0x43b0_d7e5, multA: UInt32 = 0x931e_8875
    static let initB: UInt32 = 0x8b51_f9dd, multB: UInt32 = 0x58f3_8ded
    static let mixMultL: UInt32 = 0xca01_f9dd, mixMultR: UInt32 = 0x4973_f715

    /// The integer given by big-endian `bytes` as 32-bit words, least significant first, minimal length ([0] for 0).
    static func entropyWords(bigEndianBytes bytes: some Collection<UInt8>) -> [UInt32] {
        let b = Array(bytes)
        var words: [UInt32] = []
        var end = b.count
        while end > 0 {
            let start = max(0, end - 4)
            var w: UInt32 = 0
            for i in start..<end { w = (w << 8) | UInt32(b[i]) }
            words.append(w)
            end = start
        }
        while words.count > 1, words.last == 0 { words.removeLast() }
        if words.isEmpty { words = [0] }
        return words
    }

    static func generateState64(entropy: [UInt32]) -> [UInt64] {
        var h = initA
        func hashmix(_ value: UInt32) -> UInt32 {
            var v = value ^ h
            h = h &* multA
            v = v &* h
            return v ^ (v >> 16)
        }
        func mix(_ x: UInt32, _ y: UInt32) -> UInt32 {
            let r = mixMultL &* x &- mixMultR &* y
            return r ^ (r >> 16)
        }
        var pool = [UInt32](repeating: 0, count: 4)
        for i in 0..<4 { pool[i] = hashmix(i < entropy.count ? entropy[i] : 0) }
        for src in 0..<4 {
            for dst in 0..<4 where dst != src {
                pool[dst] = mix(pool[dst], hashmix(pool[src]))
            }
        }
        if entropy.count > 4 {
            for src in 4..<entropy.count {
                for dst in 0..<4 {
                    pool[dst] = mix(pool[dst], hashmix(entropy[src]))
                }
            }
        }
        var hb = initB
        var w = [UInt32](repeating: 0, count: 8)
        for i in 0..<8 {
            var v = pool[i % 4] ^ hb
            hb = hb &* multB
            v = v &* hb
            w[i] = v ^ (v >> 16)
        }
        return (0..<4).map { UInt64(w[2 * $0]) | (UInt64(w[2 * $0 + 1]) << 32) }
    }
}

/// Run-time selection of the AVX-512 kernels in CN2HEKernels/include/n2he_simd.h.
enum SIMDSupport {
    /// AVX-512 F+DQ+BW present and enabled by the OS, and N2HE_DISABLE_SIMD not set (tests use it to run the
    /// scalar paths).
    static let avx512: Bool = n2he_cpu_has_avx512() != 0 && getenv("N2HE_DISABLE_SIMD") == nil
}

/// Interleaved PCG64 chains producing the outputs of one generator from a given output index on: output i comes
/// from chain i mod L, each chain stepping by the L-step map. L = 32 on the AVX-512 path (four groups of 8 chains
/// in zmm registers, C kernel in CN2HEKernels/include/n2he_simd.h, chosen at run time), else L = 4 scalar UInt128
/// chains. Both paths are byte-identical to the sequential generator; set N2HE_DISABLE_SIMD=1 to force the
/// scalar one.
///
/// The vector states live in a class instance: a copy of a filler shares them, so use one filler per stream.
struct PCG64InterleavedFiller {
    /// Whether the AVX-512 kernel runs on this machine.
    static var vectorAvailable: Bool { SIMDSupport.avx512 }
    /// Every fill count must be a multiple of this (a multiple of both paths' lane counts).
    static let fillGranularity = 32
    static let vectorLanes = 32

    /// The vector path's chain states: lo halves at 0..<32, hi halves at 32..<64.
    private final class VectorStates {
        let words = UnsafeMutablePointer<UInt64>.allocate(capacity: 2 * PCG64InterleavedFiller.vectorLanes)
        var lo: UnsafeMutablePointer<UInt64> { words }
        var hi: UnsafeMutablePointer<UInt64> { words + PCG64InterleavedFiller.vectorLanes }
        deinit { words.deallocate() }
    }

    private let vector: VectorStates?
    private var c0: UInt128 = 0, c1: UInt128 = 0, c2: UInt128 = 0, c3: UInt128 = 0
    private let mult: UInt128, plus: UInt128

    /// Positions the filler so that its first output is output number `index` (0-based) of `generator`.
    init(generator: PCG64, startingAtOutput index: UInt64, allowVector: Bool = PCG64InterleavedFiller.vectorAvailable) {
        let lanes = allowVector ? Self.vectorLanes : 4
        var g = generator
        g.advance(by: UInt128(index) &+ 1)   // output i uses the state after i + 1 steps
        var states: [UInt128] = []
        for lane in 0..<lanes {
            if lane > 0 { g.step() }
            states.append(g.state)
        }
        let map = PCG64.stepMap(distance: UInt128(lanes), increment: generator.increment)
        mult = map.mult
        plus = map.plus
        if allowVector {
            let v = VectorStates()
            for (lane, state) in states.enumerated() {
                v.lo[lane] = UInt64(truncatingIfNeeded: state)
                v.hi[lane] = UInt64(truncatingIfNeeded: state &>> 64)
            }
            vector = v
        } else {
            vector = nil
            c0 = states[0]; c1 = states[1]; c2 = states[2]; c3 = states[3]
        }
    }

    /// Vector path, q = 2^32 only: consumes the next `outputs` outputs (a multiple of `fillGranularity`) and returns
    /// the dot product mod 2^32 of their 2·outputs 32-bit entries with key columns 0 ..< 2·outputs. Nil on the
    /// scalar path (use `fill`).
    @inline(__always)
    mutating func dot32(outputs: Int, plusBits: UnsafePointer<UInt8>, minusBits: UnsafePointer<UInt8>) -> UInt64? {
        guard let v = vector else { return nil }
        let m = mult, p = plus
        return n2he_pcg64_dot32_avx512(outputs, v.lo, v.hi,
                                       UInt64(truncatingIfNeeded: m), UInt64(truncatingIfNeeded: m &>> 64),
                                       UInt64(truncatingIfNeeded: p), UInt64(truncatingIfNeeded: p &>> 64),
                                       plusBits, minusBits)
    }

    /// Writes the next `count` outputs (a multiple of `fillGranularity`) to `out`.
    @inline(__always)
    mutating func fill(_ out: UnsafeMutablePointer<UInt64>, count: Int) {
        if let v = vector {
            let m = mult, p = plus
            n2he_pcg64_fill32_avx512(out, count, v.lo, v.hi,
                                     UInt64(truncatingIfNeeded: m), UInt64(truncatingIfNeeded: m &>> 64),
                                     UInt64(truncatingIfNeeded: p), UInt64(truncatingIfNeeded: p &>> 64))
            return
        }
        var a = c0, b = c1, c = c2, d = c3
        let m = mult, p = plus
        var i = 0
        while i < count {
            out[i] = PCG64.output(a)
            out[i &+ 1] = PCG64.output(b)
            out[i &+ 2] = PCG64.output(c)
            out[i &+ 3] = PCG64.output(d)
            a = a &* m &+ p
            b = b &* m &+ p
            c = c &* m &+ p
            d = d &* m &+ p
            i &+= 4
        }
        c0 = a; c1 = b; c2 = c; c3 = d
    }
}
