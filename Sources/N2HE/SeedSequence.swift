import COpenSSL
import CN2HEKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
