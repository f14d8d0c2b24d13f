/// Homomorphic operations that need no key (TensorGuardFlow aggregation, N2HE-SPEC.md §1).
public enum N2HEHomomorphic {
    /// The sum of two ciphertexts of the same k and n: (A1 + A2 mod q, B1 + B2 mod q).
    ///
    /// When both inputs are seeded (LWE2 or a seeded sum LWS1) the result is a seeded sum: the seeds of both, in
    /// order, and the summed B — a few bytes per input, and still decryptable under a `seeded-once` key. Otherwise
    /// it is written as LWE1 (the SDK's behaviour; seeded inputs are expanded). The result is in batch form unless
    /// both inputs are scalar. It decrypts to (m1 + m2) mod t while the summed noise stays below Δ/2 (Δ/4 under
    /// smudging: `N2HEParameters.maximumSeededSumTerms`).
    public static func add(_ lhs: UnsafeRawBufferPointer, _ rhs: UnsafeRawBufferPointer,
                           parameters: N2HEParameters) throws -> [UInt8] {
        if let l = try SeededTerms(lhs, parameters: parameters), let r = try SeededTerms(rhs, parameters: parameters) {
            guard l.count == r.count else { throw N2HEError.incompatibleCiphertexts }
            let mask = parameters.modulusMask
            let b = zip(l.b, r.b).map { ($0 &+ $1) & mask }
            return try N2HESeededSum.write(seeds: l.seeds + r.seeds, b: b, dimension: parameters.n,
                                           batch: l.isBatch || r.isBatch)
        }
        let n = parameters.n
        if N2HESeededSum.hasMagic(lhs) || N2HESeededSum.hasMagic(rhs) {
            // A seeded sum meets an LWE1: expand the sum's A into an LWE1 first.
            let l = try expandedIfSeededSum(lhs, parameters: parameters)
            let r = try expandedIfSeededSum(rhs, parameters: parameters)
            return try l.withUnsafeBytes { lb in try r.withUnsafeBytes { rb in try add(lb, rb, parameters: parameters) } }
        }
        let left = try N2HECiphertextInfo(parsing: lhs, expectedDimension: n)
        let right = try N2HECiphertextInfo(parsing: rhs, expectedDimension: n)
        guard left.count == right.count else { throw N2HEError.incompatibleCiphertexts }
        let k = left.count
        guard let total = N2HECiphertextFormat.lwe1.byteCount(count: k, dimension: n),
              let lhsBase = lhs.baseAddress, let rhsBase = rhs.baseAddress else {
            throw N2HEError.malformedCiphertext(.sizeOverflow)
        }
        let mask = parameters.modulusMask
        let modulusBits = parameters.modulusBits
        let rowLeft = UnsafeMutablePointer<UInt64>.allocate(capacity: n)
        let rowRight = UnsafeMutablePointer<UInt64>.allocate(capacity: n)
        defer { rowLeft.deallocate(); rowRight.deallocate() }

        func rowReader(_ info: N2HECiphertextInfo, _ bytes: UnsafeRawBufferPointer, _ base: UnsafeRawPointer)
            -> (LWE2RowStream?, (Int, UnsafeMutablePointer<UInt64>, inout LWE2RowStream?) -> Void) {
            switch info.format {
            case .lwe1:
                return (nil, { r, out, _ in
                    let row = base + 13 + r * n * 8
                    for i in 0..<n {
                        out[i] = UInt64(littleEndian: row.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) & mask
                    }
                })
            case .lwe2:
                let seed = Array(UnsafeRawBufferPointer(rebasing: bytes[13..<45]))
                let stream = LWE2RowStream(generator: PCG64(seedBytesBigEndian: seed), rows: 0..<k, n: n, modulusBits: modulusBits)
                return (stream, { _, out, stream in stream?.nextRow(into: out) })
            }
        }
        var (streamLeft, readLeft) = rowReader(left, lhs, lhsBase)
        var (streamRight, readRight) = rowReader(right, rhs, rhsBase)
        defer { streamLeft?.release(); streamRight?.release() }

        return [UInt8](unsafeUninitializedCapacity: total) { buffer, initialized in
            guard let out = UnsafeMutableRawPointer(buffer.baseAddress) else { return }
            out.copyMemory(from: N2HECiphertextFormat.lwe1.magic, byteCount: 4)
            out.storeBytes(of: UInt32(k).littleEndian, toByteOffset: 4, as: UInt32.self)
            out.storeBytes(of: UInt32(n).littleEndian, toByteOffset: 8, as: UInt32.self)
            out.storeBytes(of: (left.isBatch || right.isBatch) ? 0x01 : 0x00, toByteOffset: 12, as: UInt8.self)
            let bOffset = 13 + k * n * 8
            for r in 0..<k {
                readLeft(r, rowLeft, &streamLeft)
                readRight(r, rowRight, &streamRight)
                let rowOut = out + 13 + r * n * 8
                for i in 0..<n {
                    rowOut.storeBytes(of: ((rowLeft[i] &+ rowRight[i]) & mask).littleEndian, toByteOffset: i * 8, as: UInt64.self)
                }
                let b = (lhs.uint64LE(at: left.bOffset + 8 * r) &+ rhs.uint64LE(at: right.bOffset + 8 * r)) & mask
                out.storeBytes(of: b.littleEndian, toByteOffset: bOffset + 8 * r, as: UInt64.self)
            }
            initialized = total
        }
    }

    /// The seeds, B values and shape of a seeded input (LWE2 or LWS1); nil for LWE1.
    private struct SeededTerms {
        let seeds: [[UInt8]]
        let b: [UInt64]
        let count: Int
        let isBatch: Bool

        init?(_ bytes: UnsafeRawBufferPointer, parameters: N2HEParameters) throws {
            let bOffset: Int
            if N2HESeededSum.hasMagic(bytes) {
                let sum = try N2HESeededSum(parsing: bytes, expectedDimension: parameters.n)
                (seeds, count, isBatch, bOffset) = (sum.seeds, sum.count, sum.isBatch, sum.bOffset)
            } else {
                let info = try N2HECiphertextInfo(parsing: bytes, expectedDimension: parameters.n)
                guard info.format == .lwe2 else { return nil }
                seeds = [Array(UnsafeRawBufferPointer(rebasing: bytes[13..<45]))]
                (count, isBatch, bOffset) = (info.count, info.isBatch, info.bOffset)
            }
            let k = count
            b = (0..<k).map { bytes.uint64LE(at: bOffset + 8 * $0) }
        }
    }

    /// An LWS1 input rewritten as the LWE1 ciphertext with the same (A, B); any other input unchanged.
    private static func expandedIfSeededSum(_ bytes: UnsafeRawBufferPointer, parameters: N2HEParameters) throws -> [UInt8] {
        guard N2HESeededSum.hasMagic(bytes) else { return Array(bytes) }
        let sum = try N2HESeededSum(parsing: bytes, expectedDimension: parameters.n)
        let k = sum.count, n = parameters.n, mask = parameters.modulusMask
        guard let total = N2HECiphertextFormat.lwe1.byteCount(count: k, dimension: n), k.multipliedReportingOverflow(by: n).partialValue <= 1 << 28 else {
            throw N2HEError.malformedCiphertext(.sizeOverflow)
        }
        var a = [UInt64](repeating: 0, count: k * n)
        let row = UnsafeMutablePointer<UInt64>.allocate(capacity: n)
        defer { row.deallocate() }
        for seed in sum.seeds {
            var stream = LWE2RowStream(generator: PCG64(seedBytesBigEndian: seed), rows: 0..<k, n: n, modulusBits: parameters.modulusBits)
            defer { stream.release() }
            for r in 0..<k {
                stream.nextRow(into: row)
                for i in 0..<n { a[r * n + i] = (a[r * n + i] &+ row[i]) & mask }
            }
        }
        var out = [UInt8]()
        out.reserveCapacity(total)
        out += N2HECiphertextFormat.lwe1.magic
        withUnsafeBytes(of: UInt32(k).littleEndian) { out += $0 }
        withUnsafeBytes(of: UInt32(n).littleEndian) { out += $0 }
        out.append(sum.isBatch ? 0x01 : 0x00)
        a.map { $0.littleEndian }.withUnsafeBytes { out += $0 }
        for r in 0..<k { withUnsafeBytes(of: bytes.uint64LE(at: sum.bOffset + 8 * r).littleEndian) { out += $0 } }
        return out
    }

    /// The sum of two ciphertexts held in byte arrays.
    public static func add(_ lhs: [UInt8], _ rhs: [UInt8], parameters: N2HEParameters) throws -> [UInt8] {
        try lhs.withUnsafeBytes { l in try rhs.withUnsafeBytes { r in try add(l, r, parameters: parameters) } }
    }
}
