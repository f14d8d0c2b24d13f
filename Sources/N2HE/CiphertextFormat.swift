/// The two ciphertext layouts of N2HE-SPEC.md §2.
public enum N2HECiphertextFormat: Sendable, Hashable, CaseIterable {
    /// TensorGuard SDK v2.0: header, full matrix A (8·k·n bytes), B.
    case lwe1
    /// TensorGuardFlow: header, 32-byte seed (A is PCG64-expanded from it), B.
    case lwe2

    /// Header size before A (LWE1) or the seed (LWE2): magic, k, n, flags.
    public static let fixedHeaderSize = 13
    public static let seedSize = 32

    var magic: [UInt8] {
        switch self {
        case .lwe1: return Array("LWE1".utf8)
        case .lwe2: return Array("LWE2".utf8)
        }
    }

    /// Bytes of a batch ciphertext of `count` samples of dimension `dimension`, or nil when not representable
    /// (count or dimension outside 1...UInt32.max, or overflow).
    public func byteCount(count k: Int, dimension n: Int) -> Int? {
        guard k >= 1, n >= 1, k <= Int(UInt32.max), n <= Int(UInt32.max) else { return nil }
        let (bBytes, o1) = k.multipliedReportingOverflow(by: 8)
        guard !o1 else { return nil }
        switch self {
        case .lwe1:
            let (kn, o2) = k.multipliedReportingOverflow(by: n)
            let (aBytes, o3) = kn.multipliedReportingOverflow(by: 8)
            let (sum, o4) = aBytes.addingReportingOverflow(bBytes)
            let (total, o5) = sum.addingReportingOverflow(Self.fixedHeaderSize)
            return (o2 || o3 || o4 || o5) ? nil : total
        case .lwe2:
            return Self.fixedHeaderSize + Self.seedSize + bBytes
        }
    }
}

/// What a ciphertext's header says, after the whole ciphertext has been checked for consistency.
public struct N2HECiphertextInfo: Sendable, Equatable {
    public let format: N2HECiphertextFormat
    /// Number of samples k (≥ 1).
    public let count: Int
    /// Dimension n from the header.
    public let dimension: Int
    /// Batch flag (B is a vector); false = scalar form, where k = 1.
    public let isBatch: Bool
    /// Total byte length of the ciphertext (equal to the input's length).
    public let byteCount: Int

    /// Bytes of the plaintext it decrypts to: 8·k (little-endian int64 each).
    public var plaintextByteCount: Int { count * 8 }

    /// Offset of B in the ciphertext.
    var bOffset: Int {
        switch format {
        case .lwe1: return N2HECiphertextFormat.fixedHeaderSize + count * dimension * 8
        case .lwe2: return N2HECiphertextFormat.fixedHeaderSize + N2HECiphertextFormat.seedSize
        }
    }

    /// Parses and validates a ciphertext: magic, flags, k ≥ 1, scalar ⇒ k = 1, n = `expectedDimension` (if
    /// given), and the exact total length. Never reads past `bytes`; never traps.
    ///
    /// Values of A or B that are ≥ q are accepted and reduced mod q when used, which is what the SDK's int64
    /// arithmetic does (q is a power of two), so such a ciphertext decrypts here exactly as in the SDK.
    public init(parsing bytes: UnsafeRawBufferPointer, expectedDimension: Int? = nil) throws {
        guard bytes.count >= N2HECiphertextFormat.fixedHeaderSize else {
            // A short input that is not even a known magic's prefix is reported as bad magic.
            let prefix = Array(bytes.prefix(4))
            let known = N2HECiphertextFormat.allCases.contains { $0.magic.starts(with: prefix) }
            throw N2HEError.malformedCiphertext(known ? .truncatedHeader : .badMagic)
        }
        let magic = Array(bytes.prefix(4))
        guard let format = N2HECiphertextFormat.allCases.first(where: { $0.magic == magic }) else {
            throw N2HEError.malformedCiphertext(.badMagic)
        }
        let k = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
        let n = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
        let flags = bytes[12]
        let batch = flags & 0x01 != 0
        switch format {
        case .lwe1:
            guard flags & 0x02 == 0 else { throw N2HEError.malformedCiphertext(.seededFlagMismatch) }
            guard flags & ~0x01 == 0 else { throw N2HEError.malformedCiphertext(.unknownFlags) }
        case .lwe2:
            guard flags & 0x02 != 0 else { throw N2HEError.malformedCiphertext(.seededFlagMismatch) }
            guard flags & ~0x03 == 0 else { throw N2HEError.malformedCiphertext(.unknownFlags) }
        }
        guard k >= 1 else { throw N2HEError.malformedCiphertext(.zeroCount) }
        guard batch || k == 1 else { throw N2HEError.malformedCiphertext(.scalarWithCountNotOne) }
        if let expected = expectedDimension, expected != n {
            throw N2HEError.dimensionMismatch(expected: expected, actual: n)
        }
        guard n >= 1 else { throw N2HEError.malformedCiphertext(.zeroDimension) }
        guard let total = format.byteCount(count: k, dimension: n) else {
            throw N2HEError.malformedCiphertext(.sizeOverflow)
        }
        guard bytes.count == total else { throw N2HEError.lengthMismatch(expected: total, actual: bytes.count) }
        self.format = format
        self.count = k
        self.dimension = n
        self.isBatch = batch
        self.byteCount = total
    }

    /// Parses a ciphertext held in a byte array.
    public init(parsing bytes: [UInt8], expectedDimension: Int? = nil) throws {
        self = try bytes.withUnsafeBytes { try N2HECiphertextInfo(parsing: $0, expectedDimension: expectedDimension) }
    }
}

extension UnsafeRawBufferPointer {
    /// Little-endian UInt64 at `offset` (caller guarantees bounds).
    @inline(__always) func uint64LE(at offset: Int) -> UInt64 {
        UInt64(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
}
