import COpenSSL

/// AES key wrap: RFC 3394 (KW) and RFC 5649 (KWP, "padded") via `EVP_aes_*_wrap(_pad)`.
public enum AESKeyWrap {
    /// Wraps `plaintext` under `kek` (16/24/32 bytes).
    /// - KW (`padded == false`): plaintext length a multiple of 8 and ≥ 16; `iv` 8 bytes (default A6A6A6A6A6A6A6A6).
    /// - KWP (`padded == true`): plaintext length 1...; `iv` 4 bytes (default A65959A6).
    /// Errors: `.invalidInputLength`, `.invalidIVLength`, `.invalidKeyLength`.
    public static func wrap(kek: SecretBytes, plaintext: some ByteView, padded: Bool,
                            iv: [UInt8]? = nil) throws -> [UInt8] {
        throw CryptoError.notImplemented
    }

    /// Unwraps; the result is secret. A wrong key or tampered input throws `CryptoError.integrityFailure`;
    /// an impossible length (KW: not a multiple of 8 or < 24; KWP: not a multiple of 8 or < 16) throws
    /// `.invalidInputLength`.
    public static func unwrap(kek: SecretBytes, ciphertext: some ByteView, padded: Bool,
                              iv: [UInt8]? = nil) throws -> SecretBytes {
        throw CryptoError.notImplemented
    }

    /// Length of the wrapped output for a plaintext of `plaintextLength` bytes; `nil` if not wrappable.
    public static func wrappedLength(plaintextLength: Int, padded: Bool) -> Int? {
        nil
    }
}
