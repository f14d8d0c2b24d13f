import COpenSSL

/// Streaming HMAC via EVP_MAC. Not thread-safe; after `finalize()` the instance is dead.
public final class HMAC {
    public let algorithm: DigestAlgorithm
    private let ctx: OpaquePointer
    private var alive = true

    /// Any key length (including 0) is accepted, as in RFC 2104.
    public init(_ algorithm: DigestAlgorithm, key: SecretBytes) throws {
        self.algorithm = algorithm
        guard let mac = OSSL.hmac else { throw CryptoError.openSSL("EVP_MAC_fetch HMAC unavailable") }
        guard let c = EVP_MAC_CTX_new(mac) else { throw OSSL.error("EVP_MAC_CTX_new") }
        ctx = c
        var params = [
            OSSL_PARAM_construct_utf8_string(try OSSL.cString("digest"), try OSSL.cString(OSSL.digestName(algorithm)), 0),
            OSSL_PARAM_construct_end(),
        ]
        let ok = key.withBytePointer { k, n in EVP_MAC_init(ctx, k, n, &params) == 1 }
        guard ok else { throw OSSL.error("EVP_MAC_init") }
    }

    deinit { EVP_MAC_CTX_free(ctx) }

    public func update(_ data: some ByteView) throws {
        guard alive else { throw CryptoError.invalidState }
        let ok = data.withBytePointer { p, n in n == 0 || EVP_MAC_update(ctx, p, n) == 1 }
        guard ok else {
            alive = false
            throw OSSL.error("EVP_MAC_update")
        }
    }

    /// Returns the full MAC (`algorithm.outputLength` bytes).
    public func finalize() throws -> [UInt8] {
        guard alive else { throw CryptoError.invalidState }
        alive = false
        var out = [UInt8](repeating: 0, count: 64)
        defer { secureZero(&out) }
        var len = 0
        guard EVP_MAC_final(ctx, &out, &len, out.count) == 1, len == algorithm.outputLength else {
            throw OSSL.error("EVP_MAC_final")
        }
        return Array(out[0..<len])
    }

    /// Finalizes and compares in constant time with `mac`. A `mac` shorter than the full length is compared
    /// against the same-length prefix (truncated HMAC, e.g. CKM_SHA256_HMAC_GENERAL); an empty or over-long
    /// `mac` is `false`.
    public func finalizeAndVerify(_ mac: some ByteView) throws -> Bool {
        var full = try finalize()
        defer { secureZero(&full) }   // the expected MAC: a forgery for this message if it leaked
        guard mac.count >= 1, mac.count <= full.count else { return false }
        return constantTimeEquals(full[0..<mac.count], mac)
    }

    /// One-shot HMAC.
    public static func authenticate(_ algorithm: DigestAlgorithm, key: SecretBytes, data: some ByteView) throws -> [UInt8] {
        let h = try HMAC(algorithm, key: key)
        try h.update(data)
        return try h.finalize()
    }

    /// One-shot constant-time verification (same truncation rule as `finalizeAndVerify`).
    public static func verify(_ algorithm: DigestAlgorithm, key: SecretBytes, data: some ByteView,
                              mac: some ByteView) throws -> Bool {
        let h = try HMAC(algorithm, key: key)
        try h.update(data)
        return try h.finalizeAndVerify(mac)
    }
}
