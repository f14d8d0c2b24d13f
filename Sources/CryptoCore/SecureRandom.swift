import COpenSSL

/// The OpenSSL CSPRNG (RAND_bytes). A failure is a thrown `CryptoError.randomFailure`, never a trap.
public enum SecureRandom {
    /// `count` random bytes (`count` ≤ 0 gives `[]`).
    public static func bytes(_ count: Int) throws -> [UInt8] {
        guard count > 0 else { return [] }
        var out = [UInt8](repeating: 0, count: count)
        try out.withUnsafeMutableBytes { try fill($0) }
        return out
    }

    /// Fills `buffer` with random bytes.
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer) throws {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        var offset = 0
        while offset < buffer.count {
            let chunk = min(buffer.count - offset, Int(Int32.max))
            guard RAND_bytes(base.advanced(by: offset).assumingMemoryBound(to: UInt8.self), Int32(chunk)) == 1 else {
                ERR_clear_error()
                throw CryptoError.randomFailure
            }
            offset += chunk
        }
    }
}
