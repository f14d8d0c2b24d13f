import COpenSSL

/// One-shot AES-GCM (128/192/256-bit keys) over OpenSSL EVP.
public enum AESGCM {
    /// Encrypts and authenticates. Returns `ciphertext || tag` (tag `tagLength` bytes, 4...16).
    /// - Parameters:
    ///   - key: 16, 24 or 32 bytes.
    ///   - iv: 1...128 bytes (12 is the recommended and fastest length; never reuse one under a key).
    ///   - aad: additional authenticated data (may be empty).
    public static func seal(key: SecretBytes, iv: some ByteView, plaintext: some ByteView,
                            aad: some ByteView = [UInt8](), tagLength: Int = 16) throws -> [UInt8] {
        let cipher = try SymmetricCipher(mode: .gcm(iv: iv.withUnsafeBytes { Array($0) },
                                                    aad: aad.withUnsafeBytes { Array($0) }, tagLength: tagLength),
                                         direction: .encrypt, key: key)
        var out = try cipher.update(plaintext)
        out.append(contentsOf: try cipher.finish())
        return out
    }

    /// Verifies and decrypts `ciphertext || tag`. Throws `CryptoError.authenticationFailed` on any mismatch
    /// (no plaintext is released in that case) and `.invalidInputLength` if the input is shorter than the tag.
    public static func open(key: SecretBytes, iv: some ByteView, ciphertextAndTag: some ByteView,
                            aad: some ByteView = [UInt8](), tagLength: Int = 16) throws -> [UInt8] {
        guard (4...16).contains(tagLength) else { throw CryptoError.invalidTagLength(tagLength) }
        guard ciphertextAndTag.count >= tagLength else { throw CryptoError.invalidInputLength(ciphertextAndTag.count) }
        var out = [UInt8](repeating: 0, count: ciphertextAndTag.count - tagLength)
        do {
            try out.withUnsafeMutableBytes { try openInto($0, key: key, iv: iv, input: ciphertextAndTag, aad: aad, tagLength: tagLength) }
        } catch {
            secureZero(&out)
            throw error
        }
        return out
    }

    /// Like `open`, but the plaintext goes straight into a `SecretBytes` (for unsealing key material).
    public static func openSecret(key: SecretBytes, iv: some ByteView, ciphertextAndTag: some ByteView,
                                  aad: some ByteView = [UInt8](), tagLength: Int = 16) throws -> SecretBytes {
        guard (4...16).contains(tagLength) else { throw CryptoError.invalidTagLength(tagLength) }
        guard ciphertextAndTag.count >= tagLength else { throw CryptoError.invalidInputLength(ciphertextAndTag.count) }
        let out = SecretBytes(count: ciphertextAndTag.count - tagLength)
        try out.withUnsafeMutableBytes { try openInto($0, key: key, iv: iv, input: ciphertextAndTag, aad: aad, tagLength: tagLength) }
        return out
    }

    /// Decrypts into `out` (exactly input − tag bytes) and verifies the tag; on failure `out` is wiped.
    private static func openInto(_ out: UnsafeMutableRawBufferPointer, key: SecretBytes, iv: some ByteView,
                                 input: some ByteView, aad: some ByteView, tagLength: Int) throws {
        guard (1...128).contains(iv.count) else { throw CryptoError.invalidIVLength(iv.count) }
        let cipher = try OSSL.cipher("GCM", keyLength: key.count)
        guard let ctx = EVP_CIPHER_CTX_new() else { throw OSSL.error("EVP_CIPHER_CTX_new") }
        defer { EVP_CIPHER_CTX_free(ctx) }
        guard EVP_DecryptInit_ex2(ctx, cipher, nil, nil, nil) == 1 else { throw OSSL.error("EVP_DecryptInit_ex2") }
        guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, Int32(iv.count), nil) == 1 else {
            throw OSSL.error("EVP_CTRL_AEAD_SET_IVLEN")
        }
        try key.withBytePointer { k, _ in
            try iv.withBytePointer { i, _ in
                guard EVP_DecryptInit_ex2(ctx, nil, k, i, nil) == 1 else { throw OSSL.error("EVP_DecryptInit_ex2") }
            }
        }
        let chunkMax = 1 << 30
        try aad.withBytePointer { a, n in
            var off = 0
            while off < n {
                let len = min(chunkMax, n - off)
                var outl: Int32 = 0
                guard EVP_DecryptUpdate(ctx, nil, &outl, a + off, try OSSL.int32(len)) == 1 else { throw OSSL.error("EVP_DecryptUpdate") }
                off += len
            }
        }
        let ok: Bool = try input.withBytePointer { p, n in
            let ctLen = n - tagLength
            var off = 0
            while off < ctLen {
                let len = min(chunkMax, ctLen - off)
                var outl: Int32 = 0
                guard let base = out.baseAddress else { throw CryptoError.invalidState }
                guard EVP_DecryptUpdate(ctx, base.assumingMemoryBound(to: UInt8.self) + off, &outl, p + off,
                                        try OSSL.int32(len)) == 1, Int(outl) == len else {
                    throw OSSL.error("EVP_DecryptUpdate")
                }
                off += len
            }
            let tagPtr = UnsafeMutableRawPointer(mutating: p + ctLen)
            guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, Int32(tagLength), tagPtr) == 1 else {
                throw OSSL.error("EVP_CTRL_AEAD_SET_TAG")
            }
            var outl: Int32 = 0
            var scratch = [UInt8](repeating: 0, count: 16)
            return EVP_DecryptFinal_ex(ctx, &scratch, &outl) == 1
        }
        guard ok else {
            OSSL.clear()
            secureZero(out)
            throw CryptoError.authenticationFailed
        }
    }
}
