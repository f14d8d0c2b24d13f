import COpenSSL

/// Hash algorithms supported by `Digest` and `HMAC`.
public enum DigestAlgorithm: Sendable, CaseIterable, Equatable {
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

/// Streaming message digest (EVP_MD_CTX). Not thread-safe; after `finalize()` the instance is dead.
public final class Digest {
    public let algorithm: DigestAlgorithm

    public init(_ algorithm: DigestAlgorithm) throws {
        self.algorithm = algorithm
        throw CryptoError.notImplemented
    }

    public func update(_ data: some ByteView) throws {
        throw CryptoError.notImplemented
    }

    /// Returns the digest (`algorithm.outputLength` bytes).
    public func finalize() throws -> [UInt8] {
        throw CryptoError.notImplemented
    }

    /// One-shot digest.
    public static func hash(_ algorithm: DigestAlgorithm, _ data: some ByteView) throws -> [UInt8] {
        throw CryptoError.notImplemented
    }
}
