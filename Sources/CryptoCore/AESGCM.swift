/// One-shot AES-GCM (128/192/256-bit keys) over OpenSSL EVP.
public enum AESGCM {
    /// Encrypts and authenticates. Returns `ciphertext || tag` (tag `tagLength` bytes, 4...16).
    /// - Parameters:
    ///   - key: 16, 24 or 32 bytes.
    ///   - iv: any length ≥ 1 (12 is the recommended and fastest length; never reuse one under a key).
    ///   - aad: additional authenticated data (may be empty).
    public static func seal(key: SecretBytes, iv: some ByteView, plaintext: some ByteView,
                            aad: some ByteView = [UInt8](), tagLength: Int = 16) throws -> [UInt8] {
        throw CryptoError.notImplemented
    }

    /// Verifies and decrypts `ciphertext || tag`. Throws `CryptoError.authenticationFailed` on any mismatch
    /// (no plaintext is released in that case) and `.invalidInputLength` if the input is shorter than the tag.
    public static func open(key: SecretBytes, iv: some ByteView, ciphertextAndTag: some ByteView,
                            aad: some ByteView = [UInt8](), tagLength: Int = 16) throws -> [UInt8] {
        throw CryptoError.notImplemented
    }

    /// Like `open`, but the plaintext goes straight into a `SecretBytes` (for unsealing key material).
    public static func openSecret(key: SecretBytes, iv: some ByteView, ciphertextAndTag: some ByteView,
                                  aad: some ByteView = [UInt8](), tagLength: Int = 16) throws -> SecretBytes {
        throw CryptoError.notImplemented
    }
}
