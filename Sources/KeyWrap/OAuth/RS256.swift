// RS256 (RSASSA-PKCS1-v1_5 with SHA-256) signing with a PEM private key through OpenSSL libcrypto
// (EVP_DigestSign), for the service-account JWTs of the gcp-kms backend. The PEM is parsed here (no BIO/PEM
// API needed): "-----BEGIN PRIVATE KEY-----" (PKCS#8) or "-----BEGIN RSA PRIVATE KEY-----" (PKCS#1), DER
// decoded by d2i_AutoPrivateKey. The DER copy is wiped after use.
import COpenSSL
import CryptoCore

public enum RS256 {
    /// Signs `message`. `pem` holds the private key text (may be the whole PEM block only). Errors name the
    /// problem, never key material.
    public static func sign(pem: SecretBytes, message: [UInt8]) throws -> [UInt8] {
        var der = try derFromPEM(pem)
        defer { secureZero(&der) }
        let key: OpaquePointer? = der.withUnsafeBufferPointer { buf -> OpaquePointer? in
            guard let base = buf.baseAddress else { return nil }
            var p: UnsafePointer<UInt8>? = base
            return d2i_AutoPrivateKey(nil, &p, buf.count)
        }
        guard let pkey = key else {
            ERR_clear_error()
            throw KeyWrapError.misconfigured("service-account private key is not a readable RSA private key")
        }
        defer { EVP_PKEY_free(pkey) }
        guard EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA else {
            throw KeyWrapError.misconfigured("service-account private key is not an RSA key (RS256 needs RSA)")
        }
        guard EVP_PKEY_get_bits(pkey) >= 2048 else {
            throw KeyWrapError.misconfigured("service-account RSA key is shorter than 2048 bits")
        }
        guard let ctx = EVP_MD_CTX_new() else { throw KeyWrapError.misconfigured("EVP_MD_CTX_new failed") }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestSignInit(ctx, nil, EVP_sha256(), nil, pkey) == 1 else {
            ERR_clear_error()
            throw KeyWrapError.misconfigured("RS256 signing could not be initialised")
        }
        var length = 0
        guard EVP_DigestSign(ctx, nil, &length, message, message.count) == 1, length > 0, length <= 2048 else {
            ERR_clear_error()
            throw KeyWrapError.misconfigured("RS256 signing failed")
        }
        var signature = [UInt8](repeating: 0, count: length)
        guard EVP_DigestSign(ctx, &signature, &length, message, message.count) == 1 else {
            ERR_clear_error()
            throw KeyWrapError.misconfigured("RS256 signing failed")
        }
        return Array(signature.prefix(length))
    }

    /// The DER bytes of the first PRIVATE KEY / RSA PRIVATE KEY block.
    static func derFromPEM(_ pem: SecretBytes) throws -> [UInt8] {
        var text = pem.unsafeCopyToArray()
        defer { secureZero(&text) }
        for label in ["PRIVATE KEY", "RSA PRIVATE KEY"] {
            let begin = Array("-----BEGIN \(label)-----".utf8), end = Array("-----END \(label)-----".utf8)
            guard let b = find(begin, in: text, from: 0), let e = find(end, in: text, from: b + begin.count) else { continue }
            var body = Array(text[(b + begin.count)..<e])
            defer { secureZero(&body) }
            guard let der = Base64.decode(body, alphabet: .standard, skipWhitespace: true), !der.isEmpty else {
                throw KeyWrapError.misconfigured("service-account private key PEM is not valid base64")
            }
            return der
        }
        throw KeyWrapError.misconfigured("service-account private key holds no unencrypted 'PRIVATE KEY' PEM block")
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard needle.count > 0, haystack.count >= needle.count, start <= haystack.count - needle.count else { return nil }
        var i = start
        while i <= haystack.count - needle.count {
            if haystack[i] == needle[0], Array(haystack[i..<(i + needle.count)]) == needle { return i }
            i += 1
        }
        return nil
    }
}
