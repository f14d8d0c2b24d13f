/// Homomorphic operations that need no key (TensorGuardFlow aggregation, N2HE-SPEC.md §1).
public enum N2HEHomomorphic {
    /// The sum of two ciphertexts of the same k and n: (A1 + A2 mod q, B1 + B2 mod q), written as LWE1.
    /// LWE2 inputs are expanded from their seeds. The result is in batch form unless both inputs are scalar.
    /// It decrypts to (m1 + m2) mod t while the summed noise stays below Δ/2.
    public static func add(_ lhs: UnsafeRawBufferPointer, _ rhs: UnsafeRawBufferPointer,
                           parameters: N2HEParameters) throws -> [UInt8] {
        let n = parameters.n
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

    /// The sum of two ciphertexts held in byte arrays.
    public static func add(_ lhs: [UInt8], _ rhs: [UInt8], parameters: N2HEParameters) throws -> [UInt8] {
        try lhs.withUnsafeBytes { l in try rhs.withUnsafeBytes { r in try add(l, r, parameters: parameters) } }
    }
}
