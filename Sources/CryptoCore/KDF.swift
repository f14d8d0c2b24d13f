import COpenSSL

/// Key derivation functions.
public enum KDF {
    /// scrypt (RFC 7914) via EVP_PBE_scrypt. N = 2^log2N with log2N in 1...30, r ≥ 1, p ≥ 1,
    /// length 1...1024; `maxmem` is set to what the parameters need (128·r·N·p + 128·r·(N+2) + slack), so any
    /// parameters whose memory fits in an Int work. Errors: `.invalidParameter`, `.openSSL`.
    public static func scrypt(password: some ByteView, salt: some ByteView, log2N: Int, r: Int, p: Int,
                              length: Int) throws -> SecretBytes {
        throw CryptoError.notImplemented
    }

    /// HKDF-SHA-256 (RFC 5869) extract-and-expand. `length` 1...8160.
    public static func hkdfSHA256(ikm: some ByteView, salt: some ByteView, info: some ByteView,
                                  length: Int) throws -> SecretBytes {
        throw CryptoError.notImplemented
    }
}
