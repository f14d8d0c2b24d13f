/// Errors thrown by CryptoCore. Messages never contain key or plaintext bytes.
/// Their CK_RV mapping is `ErrorMap.rv(_: CryptoError)` and, during a cipher operation, `ErrorMap.cipher` in
/// Cryptoki/Support/ErrorMapping.swift.
public enum CryptoError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The OpenSSL random generator failed (RAND_bytes returned ≠ 1).
    case randomFailure
    /// A key of this length is not valid for the algorithm.
    case invalidKeyLength(Int)
    /// An IV / nonce of this length is not valid for the mode.
    case invalidIVLength(Int)
    /// A GCM tag length outside 4...16 bytes.
    case invalidTagLength(Int)
    /// Input length not acceptable for the mode (e.g. ECB/CBC without padding and not a multiple of 16,
    /// key wrap input too short or not a multiple of 8, ciphertext shorter than the tag).
    case invalidInputLength(Int)
    /// A requested output length is out of range (KDF output, HKDF > 255·32, …).
    case invalidOutputLength(Int)
    /// A parameter is out of range (scrypt cost, r, p, …). The string names the parameter, never a value of a secret.
    case invalidParameter(String)
    /// CBC-PAD decryption found invalid PKCS#7 padding.
    case invalidPadding
    /// AEAD tag verification failed (wrong key, tampered data, wrong AAD / IV).
    case authenticationFailed
    /// RFC 3394 / 5649 unwrap integrity check failed.
    case integrityFailure
    /// The streaming context was already finished or failed; create a new one.
    case invalidState
    /// Length arithmetic would overflow.
    case lengthOverflow
    /// An OpenSSL call failed unexpectedly. The string names the call and the OpenSSL reason, never data.
    case openSSL(String)

    public var description: String {
        switch self {
        case .randomFailure: return "random generator failure"
        case .invalidKeyLength(let n): return "invalid key length \(n)"
        case .invalidIVLength(let n): return "invalid IV length \(n)"
        case .invalidTagLength(let n): return "invalid tag length \(n)"
        case .invalidInputLength(let n): return "invalid input length \(n)"
        case .invalidOutputLength(let n): return "invalid output length \(n)"
        case .invalidParameter(let p): return "invalid parameter: \(p)"
        case .invalidPadding: return "invalid padding"
        case .authenticationFailed: return "authentication tag mismatch"
        case .integrityFailure: return "key unwrap integrity check failed"
        case .invalidState: return "cipher context already finished or failed"
        case .lengthOverflow: return "length overflow"
        case .openSSL(let s): return "OpenSSL failure: \(s)"
        }
    }
}
