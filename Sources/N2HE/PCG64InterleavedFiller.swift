import COpenSSL
import CN2HEKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
