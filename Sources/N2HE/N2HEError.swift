/// Every failure the N2HE library reports. No case ever carries key material, plaintext or noise.
/// Their CK_RV mapping is `ErrorMap.rv(_: N2HEError)` and, during a cipher operation, `ErrorMap.n2he` in
/// Cryptoki/Support/ErrorMapping.swift.
public enum N2HEError: Error, Equatable, Sendable {
    /// A parameter combination this library does not support (see `N2HEParameters`).
    case unsupportedParameters(ParameterDefect)
    /// A raw key was not exactly 8·n bytes (`expected` is nil when n is not known in advance).
    case invalidKeyLength(expected: Int?, actual: Int)
    /// The key entry at `index` is not one of −1, 0, 1 (the value itself is not reported).
    case invalidKeyEntry(index: Int)
    /// A key file (numpy `.npy`) could not be parsed.
    case malformedKeyFile(KeyFileDefect)
    /// A key or ciphertext has dimension n = `actual` where `expected` was required.
    case dimensionMismatch(expected: Int, actual: Int)
    /// A ciphertext header is malformed.
    case malformedCiphertext(CiphertextDefect)
    /// A ciphertext's byte length disagrees with its header.
    case lengthMismatch(expected: Int, actual: Int)
    /// A plaintext is not a non-empty sequence of little-endian int64 values (byte count given), or has more
    /// than 2^32 − 1 values.
    case invalidPlaintextLength(Int)
    /// An output buffer is smaller than required.
    case outputBufferTooSmall(required: Int, available: Int)
    /// Two ciphertexts cannot be added (different k or n).
    case incompatibleCiphertexts
    /// An OpenSSL cipher operation failed.
    case cryptoBackendFailure

    public enum ParameterDefect: Equatable, Sendable {
        case dimensionOutOfRange(Int)
        case unsupportedModulusBits(Int)
        case plaintextBitsOutOfRange(Int)
        case noiseOutOfRange(Int)
        case threadCountOutOfRange(Int)
        /// A row count outside 1...2^32 − 1, or a matrix too large to materialise.
        case countOutOfRange(Int)
    }

    public enum KeyFileDefect: Equatable, Sendable {
        case badMagic
        case truncated
        case unsupportedVersion(major: UInt8, minor: UInt8)
        case headerNotASCII
        case headerSyntax
        case headerNotTerminated
        case duplicateField
        case unknownField
        case missingField
        case unsupportedDType
        case fortranOrder
        case badShape
        case trailingBytes
    }

    public enum CiphertextDefect: Equatable, Sendable {
        /// Fewer bytes than a header.
        case truncatedHeader
        /// Magic is none of `LWE1`, `LWE2`, `LWS1`.
        case badMagic
        /// k = 0.
        case zeroCount
        /// n = 0 in the header.
        case zeroDimension
        /// Flags byte has bits outside the format's definition.
        case unknownFlags
        /// LWE2 without the seeded flag (bit 1), or LWE1 with it.
        case seededFlagMismatch
        /// Scalar form (batch flag clear) with k ≠ 1.
        case scalarWithCountNotOne
        /// The sizes in the header cannot be represented (k·n overflow).
        case sizeOverflow
        /// A seeded sum (LWS1) with no seed or more than `N2HESeededSum.maximumSeeds`.
        case seedCountOutOfRange
    }
}
