import COpenSSL

/// Key derivation functions.
public enum KDF {
    /// scrypt (RFC 7914) via EVP_PBE_scrypt. N = 2^log2N with log2N in 1...30, r ≥ 1, p ≥ 1 (r·p < 2^30),
    /// length 1...1024. `maxmem` is set to exactly what the parameters need (128·r·p + 128·r·(N+2)) plus 1 MiB
    /// slack, so any parameters whose memory fits are accepted. Errors: `.invalidParameter`, `.openSSL`.
    public static func scrypt(password: some ByteView, salt: some ByteView, log2N: Int, r: Int, p: Int,
                              length: Int) throws -> SecretBytes {
        guard (1...30).contains(log2N) else { throw CryptoError.invalidParameter("scrypt log2N") }
        guard r >= 1, p >= 1, r <= (1 << 30), p <= (1 << 30) else { throw CryptoError.invalidParameter("scrypt r/p") }
        guard (1...1024).contains(length) else { throw CryptoError.invalidOutputLength(length) }
        let (rp, o1) = r.multipliedReportingOverflow(by: p)
        guard !o1, rp < (1 << 30) else { throw CryptoError.invalidParameter("scrypt r*p") }
        let n = 1 << log2N
        let b = try OSSL.mul(128, try OSSL.mul(r, p))
        let v = try OSSL.mul(128, try OSSL.mul(r, try OSSL.add(n, 2)))
        let maxmem = try OSSL.add(try OSSL.add(b, v), 1 << 20)
        let out = SecretBytes(count: length)
        let ok = out.withUnsafeMutableBytes { o -> Bool in
            guard let ob = o.baseAddress else { return false }
            return password.withUnsafeBytes { pw in
                salt.withBytePointer { s, sn in
                    EVP_PBE_scrypt(pw.baseAddress?.assumingMemoryBound(to: CChar.self), pw.count, s, sn,
                                   UInt64(n), UInt64(r), UInt64(p), UInt64(maxmem),
                                   ob.assumingMemoryBound(to: UInt8.self), length) == 1
                }
            }
        }
        guard ok else { throw OSSL.error("EVP_PBE_scrypt") }
        return out
    }

    /// HKDF-SHA-256 (RFC 5869) extract-and-expand. `length` 1...8160; `ikm` must not be empty; an empty
    /// `salt` means HashLen zero bytes (RFC 5869 §2.2); `info` may be empty.
    public static func hkdfSHA256(ikm: some ByteView, salt: some ByteView, info: some ByteView,
                                  length: Int) throws -> SecretBytes {
        guard (1...(255 * 32)).contains(length) else { throw CryptoError.invalidOutputLength(length) }
        guard ikm.count > 0 else { throw CryptoError.invalidParameter("HKDF ikm empty") }
        guard let kdf = OSSL.hkdf else { throw CryptoError.openSSL("EVP_KDF_fetch HKDF unavailable") }
        guard let ctx = EVP_KDF_CTX_new(kdf) else { throw OSSL.error("EVP_KDF_CTX_new") }
        defer { EVP_KDF_CTX_free(ctx) }
        let zeroSalt = [UInt8](repeating: 0, count: 32)
        let digestKey = try OSSL.cString("digest"), digestName = try OSSL.cString("SHA256")
        let keyKey = try OSSL.cString("key"), saltKey = try OSSL.cString("salt"), infoKey = try OSSL.cString("info")
        let out = SecretBytes(count: length)
        let ok = ikm.withBytePointer { k, kn in
            (salt.count > 0 ? salt.withUnsafeBytes { Array($0) } : zeroSalt).withBytePointer { s, sn in
                info.withBytePointer { i, inl in
                    var params: [OSSL_PARAM] = [
                        OSSL_PARAM_construct_utf8_string(digestKey, digestName, 0),
                        OSSL_PARAM_construct_octet_string(keyKey, UnsafeMutableRawPointer(mutating: k), kn),
                        OSSL_PARAM_construct_octet_string(saltKey, UnsafeMutableRawPointer(mutating: s), sn),
                    ]
                    if inl > 0 {
                        params.append(OSSL_PARAM_construct_octet_string(infoKey,
                                                                        UnsafeMutableRawPointer(mutating: i), inl))
                    }
                    params.append(OSSL_PARAM_construct_end())
                    return out.withUnsafeMutableBytes { o in
                        guard let ob = o.baseAddress else { return false }
                        return EVP_KDF_derive(ctx, ob.assumingMemoryBound(to: UInt8.self), length, &params) == 1
                    }
                }
            }
        }
        guard ok else { throw OSSL.error("EVP_KDF_derive") }
        return out
    }
}
