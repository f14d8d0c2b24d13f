import COpenSSL
import CryptoCore

/// AES-256-CTR keystream under a fresh random key (OpenSSL EVP): a fast CSPRNG for the matrix A of LWE1.
final class AESCTRKeystream {
    private let context: OpaquePointer
    private var zeros: [UInt8] = []

    init() throws {
        guard let ctx = EVP_CIPHER_CTX_new() else { throw N2HEError.cryptoBackendFailure }
        context = ctx
        var key = [UInt8](repeating: 0, count: 32)
        defer { key.withUnsafeMutableBytes { secureZero($0) } }
        try key.withUnsafeMutableBytes { try SecureRandom.fill($0) }
        let iv = [UInt8](repeating: 0, count: 16)
        let ok = key.withUnsafeBufferPointer { k in
            iv.withUnsafeBufferPointer { v in
                EVP_EncryptInit_ex(ctx, EVP_aes_256_ctr(), nil, k.baseAddress, v.baseAddress)
            }
        }
        guard ok == 1 else {
            EVP_CIPHER_CTX_free(ctx)
            throw N2HEError.cryptoBackendFailure
        }
    }

    deinit { EVP_CIPHER_CTX_free(context) }

    /// Overwrites `count` bytes at `destination` with the next keystream bytes. Returns false on an OpenSSL failure.
    func fill(_ destination: UnsafeMutableRawPointer, count: Int) -> Bool {
        if zeros.count < count { zeros = [UInt8](repeating: 0, count: count) }
        var produced: Int32 = 0
        var offset = 0
        return zeros.withUnsafeBufferPointer { zero -> Bool in
            guard let zeroBase = zero.baseAddress else { return count == 0 }
            while offset < count {
                let chunk = min(count - offset, 1 << 30)
                let out = destination.advanced(by: offset).assumingMemoryBound(to: UInt8.self)
                guard EVP_EncryptUpdate(context, out, &produced, zeroBase, Int32(chunk)) == 1, Int(produced) == chunk else {
                    return false
                }
                offset += chunk
            }
            return true
        }
    }
}
