import COpenSSL
import CN2HEKernels

/// Hot loops. The ternary key enters as sign masks (all-ones where s_i = +1, resp. −1), so a·s is
/// Σ (a & plus) − (a & minus): no multiplies, no key-dependent branches or addresses, and LLVM vectorises it.
enum Kernels {
    /// Σ a_i·s_i mod 2^64 over an LWE1 row of n little-endian int64 at `row` (any alignment): the AVX-512
    /// kernel when available, else the portable loop.
    @inline(__always)
    static func dotRow(_ row: UnsafeRawPointer, _ key: N2HESecretKey) -> UInt64 {
        if SIMDSupport.avx512 {
            return n2he_dot_le64_avx512(row, key.plusBits, key.minusBits, key.n)
        }
        return dotLE64(row, key.plus64, key.minus64, key.n)
    }

    /// Σ a_i·s_i mod 2^64 over `count` little-endian int64 values at `row` (unaligned; an LWE1 row).
    @inline(__always)
    static func dotLE64(_ row: UnsafeRawPointer, _ plus: UnsafePointer<UInt64>, _ minus: UnsafePointer<UInt64>,
                        _ count: Int) -> UInt64 {
        var sum: UInt64 = 0
        var i = 0
        while i < count {
            let a = UInt64(littleEndian: row.loadUnaligned(fromByteOffset: i &* 8, as: UInt64.self))
            sum = sum &+ (a & plus[i]) &- (a & minus[i])
            i &+= 1
        }
        return sum
    }

    /// Σ a_i·s_i mod 2^32 over 32-bit entries (q = 2^32 expansion output).
    @inline(__always)
    static func dot32(_ a: UnsafePointer<UInt32>, _ plus: UnsafePointer<UInt32>, _ minus: UnsafePointer<UInt32>,
                      _ count: Int) -> UInt64 {
        var sum: UInt32 = 0
        var i = 0
        while i < count {
            let v = a[i]
            sum = sum &+ (v & plus[i]) &- (v & minus[i])
            i &+= 1
        }
        return UInt64(sum)
    }

    /// Σ (r_i >> 16)·s_i mod 2^64 over raw PCG64 outputs (q = 2^48 expansion: entry = next64 >> 16).
    @inline(__always)
    static func dotShift16(_ raw: UnsafePointer<UInt64>, _ plus: UnsafePointer<UInt64>, _ minus: UnsafePointer<UInt64>,
                           _ count: Int) -> UInt64 {
        var sum: UInt64 = 0
        var i = 0
        while i < count {
            let v = raw[i] &>> 16
            sum = sum &+ (v & plus[i]) &- (v & minus[i])
            i &+= 1
        }
        return sum
    }

    /// Stores `count` values (already < q) as little-endian int64 at `out` (unaligned) and returns their dot with s.
    @inline(__always)
    static func storeAndDot(_ values: UnsafePointer<UInt64>, _ out: UnsafeMutableRawPointer,
                            _ plus: UnsafePointer<UInt64>, _ minus: UnsafePointer<UInt64>, _ count: Int) -> UInt64 {
        var sum: UInt64 = 0
        var i = 0
        while i < count {
            let a = values[i]
            out.storeBytes(of: a.littleEndian, toByteOffset: i &* 8, as: UInt64.self)
            sum = sum &+ (a & plus[i]) &- (a & minus[i])
            i &+= 1
        }
        return sum
    }

    /// m = round_half_even(x / Δ) mod t for x ∈ [0, q), Δ = 2^scaleBits (≥ 2), t − 1 = `plaintextMask`.
    /// Centering x into (−q/2, q/2] does not change the result because t is even.
    @inline(__always)
    static func decode(_ x: UInt64, scaleBits: UInt64, plaintextMask: UInt64) -> UInt64 {
        let quotient = x &>> scaleBits
        let remainder = x & ((1 &<< scaleBits) &- 1)
        let half = (1 as UInt64) &<< (scaleBits &- 1)
        // Round up iff remainder > half, or remainder == half and the quotient is odd.
        let roundUp = (remainder &+ (quotient & 1) &+ half &- 1) &>> scaleBits
        return (quotient &+ roundUp) & plaintextMask
    }
}

extension Kernels {
    /// LWE1 encryption, q = 2^32: entries are the 32-bit little-endian words of `keystream`; stores each as
    /// int64 at `out` and returns the dot with s.
    @inline(__always)
    static func storeAndDotFrom32(_ keystream: UnsafeRawPointer, _ out: UnsafeMutableRawPointer,
                                  _ plus: UnsafePointer<UInt64>, _ minus: UnsafePointer<UInt64>, _ count: Int) -> UInt64 {
        var sum: UInt64 = 0
        var i = 0
        while i < count {
            let a = UInt64(UInt32(littleEndian: keystream.loadUnaligned(fromByteOffset: i &* 4, as: UInt32.self)))
            out.storeBytes(of: a.littleEndian, toByteOffset: i &* 8, as: UInt64.self)
            sum = sum &+ (a & plus[i]) &- (a & minus[i])
            i &+= 1
        }
        return sum
    }

    /// LWE1 encryption, q = 2^48: entries are consecutive 6-byte little-endian groups of `keystream` (which must
    /// have 2 readable bytes past 6·count).
    @inline(__always)
    static func storeAndDotFrom48(_ keystream: UnsafeRawPointer, _ out: UnsafeMutableRawPointer,
                                  _ plus: UnsafePointer<UInt64>, _ minus: UnsafePointer<UInt64>, _ count: Int) -> UInt64 {
        let mask: UInt64 = (1 << 48) - 1
        var sum: UInt64 = 0
        var i = 0
        while i < count {
            let a = UInt64(littleEndian: keystream.loadUnaligned(fromByteOffset: i &* 6, as: UInt64.self)) & mask
            out.storeBytes(of: a.littleEndian, toByteOffset: i &* 8, as: UInt64.self)
            sum = sum &+ (a & plus[i]) &- (a & minus[i])
            i &+= 1
        }
        return sum
    }
}
