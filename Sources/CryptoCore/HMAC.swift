import COpenSSL

/// Streaming HMAC via EVP_MAC. Not thread-safe; after `finalize()` the instance is dead.
public final class HMAC {
    public let algorithm: DigestAlgorithm

    /// Any key length (including 0) is accepted, as in RFC 2104.
    public init(_ algorithm: DigestAlgorithm, key: SecretBytes) throws {
        self.algorithm = algorithm
        throw CryptoError.notImplemented
    }

    public func update(_ data: some ByteView) throws {
        throw CryptoError.notImplemented
    }

    /// Returns the full MAC (`algorithm.outputLength` bytes).
    public func finalize() throws -> [UInt8] {
        throw CryptoError.notImplemented
    }

    /// Finalizes and compares in constant time with `mac`. A `mac` shorter than the full length is compared
    /// against the same-length prefix (truncated HMAC, e.g. CKM_SHA256_HMAC_GENERAL); an empty or over-long
    /// `mac` is `false`.
    public func finalizeAndVerify(_ mac: some ByteView) throws -> Bool {
        throw CryptoError.notImplemented
    }

    /// One-shot HMAC.
    public static func authenticate(_ algorithm: DigestAlgorithm, key: SecretBytes, data: some ByteView) throws -> [UInt8] {
        throw CryptoError.notImplemented
    }

    /// One-shot constant-time verification (same truncation rule as `finalizeAndVerify`).
    public static func verify(_ algorithm: DigestAlgorithm, key: SecretBytes, data: some ByteView,
                              mac: some ByteView) throws -> Bool {
        throw CryptoError.notImplemented
    }
}
