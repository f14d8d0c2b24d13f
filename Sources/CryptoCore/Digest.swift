import COpenSSL

/// Hash algorithms supported by `Digest` and `HMAC`.
public enum DigestAlgorithm: Sendable, CaseIterable, Equatable, Hashable {
    case sha1, sha224, sha256, sha384, sha512

    /// Output length in bytes.
    public var outputLength: Int {
        switch self {
        case .sha1: return 20
        case .sha224: return 28
        case .sha256: return 32
        case .sha384: return 48
        case .sha512: return 64
        }
    }

    /// Internal block length in bytes.
    public var blockLength: Int {
        switch self {
        case .sha1, .sha224, .sha256: return 64
        case .sha384, .sha512: return 128
        }
    }
}

/// Streaming message digest (EVP_MD_CTX). Not thread-safe; after `finalize()` the instance is dead
/// (`CryptoError.invalidState`).
public final class Digest {
    public let algorithm: DigestAlgorithm
    private let ctx: OpaquePointer
    private var alive = true

    public init(_ algorithm: DigestAlgorithm) throws {
        self.algorithm = algorithm
        let md = try OSSL.digest(algorithm)
        guard let c = EVP_MD_CTX_new() else { throw OSSL.error("EVP_MD_CTX_new") }
        ctx = c
        guard EVP_DigestInit_ex2(ctx, md, nil) == 1 else { throw OSSL.error("EVP_DigestInit_ex2") }
    }

    deinit { EVP_MD_CTX_free(ctx) }

    public func update(_ data: some ByteView) throws {
        guard alive else { throw CryptoError.invalidState }
        let ok = data.withBytePointer { p, n in n == 0 || EVP_DigestUpdate(ctx, p, n) == 1 }
        guard ok else {
            alive = false
            throw OSSL.error("EVP_DigestUpdate")
        }
    }

    /// Returns the digest (`algorithm.outputLength` bytes).
    public func finalize() throws -> [UInt8] {
        guard alive else { throw CryptoError.invalidState }
        alive = false
        var out = [UInt8](repeating: 0, count: 64)
        var len: UInt32 = 0
        guard EVP_DigestFinal_ex(ctx, &out, &len) == 1, Int(len) == algorithm.outputLength else {
            throw OSSL.error("EVP_DigestFinal_ex")
        }
        return Array(out[0..<Int(len)])
    }

    /// One-shot digest.
    public static func hash(_ algorithm: DigestAlgorithm, _ data: some ByteView) throws -> [UInt8] {
        let d = try Digest(algorithm)
        try d.update(data)
        return try d.finalize()
    }
}
