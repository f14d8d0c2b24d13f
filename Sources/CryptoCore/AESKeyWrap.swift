import COpenSSL

/// AES key wrap: RFC 3394 (KW) and RFC 5649 (KWP, "padded") via `EVP_aes_*_wrap(_pad)` with
/// `EVP_CIPHER_CTX_FLAG_WRAP_ALLOW`.
public enum AESKeyWrap {
    /// Largest plaintext accepted (OpenSSL's CRYPTO_128_wrap limit is 2^31 bytes).
    public static let maximumPlaintextLength = 1 << 30

    /// Wraps `plaintext` under `kek` (16/24/32 bytes).
    /// - KW (`padded == false`): plaintext length a multiple of 8 and ≥ 16; `iv` 8 bytes (default A6A6A6A6A6A6A6A6).
    /// - KWP (`padded == true`): plaintext length ≥ 1; `iv` 4 bytes (default A65959A6).
    /// Errors: `.invalidInputLength`, `.invalidIVLength`, `.invalidKeyLength`.
    public static func wrap(kek: SecretBytes, plaintext: some ByteView, padded: Bool,
                            iv: [UInt8]? = nil) throws -> [UInt8] {
        guard let outLen = wrappedLength(plaintextLength: plaintext.count, padded: padded) else {
            throw CryptoError.invalidInputLength(plaintext.count)
        }
        let ctx = try makeContext(kek: kek, padded: padded, iv: iv, encrypt: true)
        defer { EVP_CIPHER_CTX_free(ctx) }
        var out = [UInt8](repeating: 0, count: outLen)
        var outl: Int32 = 0
        let ok = try plaintext.withBytePointer { p, n in
            EVP_CipherUpdate(ctx, &out, &outl, p, try OSSL.int32(n)) > 0
        }
        guard ok, Int(outl) == outLen else { throw OSSL.error("EVP_CipherUpdate(wrap)") }
        return out
    }

    /// Unwraps; the result is secret. A wrong key or tampered input throws `CryptoError.integrityFailure`;
    /// an impossible length (KW: not a multiple of 8 or < 24; KWP: not a multiple of 8 or < 16) throws
    /// `.invalidInputLength`.
    public static func unwrap(kek: SecretBytes, ciphertext: some ByteView, padded: Bool,
                              iv: [UInt8]? = nil) throws -> SecretBytes {
        let n = ciphertext.count
        guard n % 8 == 0, n >= (padded ? 16 : 24), n - 8 <= maximumPlaintextLength + 8 else {
            throw CryptoError.invalidInputLength(n)
        }
        let ctx = try makeContext(kek: kek, padded: padded, iv: iv, encrypt: false)
        defer { EVP_CIPHER_CTX_free(ctx) }
        let buffer = SecretBytes(count: n)   // OpenSSL may use the whole input length as scratch
        var outl: Int32 = 0
        let ok = try buffer.withUnsafeMutableBytes { out -> Bool in
            guard let base = out.baseAddress else { return false }
            return try ciphertext.withBytePointer { p, len in
                EVP_CipherUpdate(ctx, base.assumingMemoryBound(to: UInt8.self), &outl, p, try OSSL.int32(len)) > 0
            }
        }
        guard ok, outl > 0, Int(outl) <= n - 8 else {
            OSSL.clear()
            throw CryptoError.integrityFailure
        }
        return buffer.slice(0..<Int(outl))
    }

    /// Length of the wrapped output for a plaintext of `plaintextLength` bytes; `nil` if not wrappable.
    public static func wrappedLength(plaintextLength n: Int, padded: Bool) -> Int? {
        guard n <= maximumPlaintextLength else { return nil }
        if padded {
            guard n >= 1 else { return nil }
            return ((n + 7) / 8) * 8 + 8
        }
        guard n >= 16, n % 8 == 0 else { return nil }
        return n + 8
    }

    private static func makeContext(kek: SecretBytes, padded: Bool, iv: [UInt8]?, encrypt: Bool) throws -> OpaquePointer {
        let cipher = try OSSL.cipher(padded ? "WRAP-PAD" : "WRAP", keyLength: kek.count)
        if let iv, iv.count != (padded ? 4 : 8) { throw CryptoError.invalidIVLength(iv.count) }
        guard let ctx = EVP_CIPHER_CTX_new() else { throw OSSL.error("EVP_CIPHER_CTX_new") }
        EVP_CIPHER_CTX_set_flags(ctx, Int32(EVP_CIPHER_CTX_FLAG_WRAP_ALLOW))
        let ok = kek.withBytePointer { k, _ in
            if let iv {
                return iv.withBytePointer { i, _ in EVP_CipherInit_ex2(ctx, cipher, k, i, encrypt ? 1 : 0, nil) == 1 }
            }
            return EVP_CipherInit_ex2(ctx, cipher, k, nil, encrypt ? 1 : 0, nil) == 1
        }
        guard ok else {
            EVP_CIPHER_CTX_free(ctx)
            throw OSSL.error("EVP_CipherInit_ex2(wrap)")
        }
        return ctx
    }
}
