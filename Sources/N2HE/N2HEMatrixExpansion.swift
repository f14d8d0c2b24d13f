import COpenSSL
import CN2HEKernels

/// The public face of LWE2's matrix expansion (for tests, tools and benchmarks).
public enum N2HEMatrixExpansion {
    /// What A depends on: the PCG64 state and increment a seed selects (32 bytes, little-endian). numpy's
    /// SeedSequence folds the 256-bit seed into a 128-bit pool, so many seeds select one stream and one A; the
    /// seed-once rule must count streams, not seed bytes.
    public static func streamIdentity(seed: [UInt8]) -> [UInt8] {
        let g = PCG64(seedBytesBigEndian: seed)
        var out: [UInt8] = []
        out.reserveCapacity(32)
        for v in [g.state, g.increment] {
            withUnsafeBytes(of: UInt64(truncatingIfNeeded: v).littleEndian) { out += $0 }
            withUnsafeBytes(of: UInt64(truncatingIfNeeded: v >> 64).littleEndian) { out += $0 }
        }
        return out
    }

    /// A (rows × n, row-major, entries in [0, q); rows·n ≤ 2^28) as numpy
    /// `Generator(PCG64(int.from_bytes(seed, 'big'))).integers(0, q, size=(rows, n), dtype=int64)` yields it.
    public static func expand(seed: [UInt8], rows: Int, dimension n: Int, modulusBits: Int) throws -> [UInt64] {
        guard N2HEParameters.dimensionRange.contains(n) else { throw N2HEError.unsupportedParameters(.dimensionOutOfRange(n)) }
        guard N2HEParameters.supportedModulusBits.contains(modulusBits) else {
            throw N2HEError.unsupportedParameters(.unsupportedModulusBits(modulusBits))
        }
        // At most 2^28 entries (2 GiB) are materialised; larger matrices are only ever streamed.
        guard rows >= 1, rows <= Int(UInt32.max), rows * n <= 1 << 28 else {
            throw N2HEError.unsupportedParameters(.countOutOfRange(rows))
        }
        let total = rows * n
        var stream = LWE2RowStream(generator: PCG64(seedBytesBigEndian: seed), rows: 0..<rows, n: n, modulusBits: modulusBits)
        defer { stream.release() }
        return [UInt64](unsafeUninitializedCapacity: total) { buffer, initialized in
            guard let base = buffer.baseAddress else { return }
            for r in 0..<rows { stream.nextRow(into: base + r * n) }
            initialized = total
        }
    }
}
