import COpenSSL

/// A streaming AES operation (wraps one `EVP_CIPHER_CTX`, freed in deinit). Not thread-safe: one
/// instance belongs to one PKCS#11 operation. After `finish()` or any thrown error the context is dead
/// (`CryptoError.invalidState`).
///
/// Semantics per mode:
/// - `.ecb`, `.cbc`: no padding; total input must be a multiple of 16 (checked at `finish`, error
///   `.invalidInputLength`). Output is produced block by block.
/// - `.cbcPad`: PKCS#7 padding. Decrypt holds back the last block until `finish` (bad padding →
///   `.invalidPadding`).
/// - `.ctr`: the 16-byte IV is the initial counter block (big-endian 128-bit increment). Output length ==
///   input length.
/// - `.gcm`: encrypt streams ciphertext; `finish` returns the tag. Decrypt buffers everything and returns
///   the plaintext only from `finish`, after the tag (the last `tagLength` bytes of the input) verified —
///   no unauthenticated plaintext is ever released (`.authenticationFailed` otherwise).
public final class SymmetricCipher {
    public enum Direction: Sendable, Equatable { case encrypt, decrypt }

    public enum Mode: Sendable, Equatable {
        case ecb
        /// `iv`: 16 bytes.
        case cbc(iv: [UInt8])
        /// `iv`: 16 bytes.
        case cbcPad(iv: [UInt8])
        /// `counterBlock`: 16 bytes, the first counter block.
        case ctr(counterBlock: [UInt8])
        /// `iv` ≥ 1 byte, `tagLength` 4...16 bytes.
        case gcm(iv: [UInt8], aad: [UInt8], tagLength: Int)
    }

    public let mode: Mode
    public let direction: Direction

    /// - Parameter key: 16, 24 or 32 bytes (AES-128/192/256).
    public init(mode: Mode, direction: Direction, key: SecretBytes) throws {
        self.mode = mode
        self.direction = direction
        throw CryptoError.notImplemented
    }

    /// Processes more input, returning whatever output is ready.
    public func update(_ input: some ByteView) throws -> [UInt8] {
        throw CryptoError.notImplemented
    }

    /// Ends the operation and returns the remaining output (GCM encrypt: the tag).
    public func finish() throws -> [UInt8] {
        throw CryptoError.notImplemented
    }

    /// Exact number of bytes the next `update` with `inputLength` bytes will return, given what is
    /// buffered now. `nil` on arithmetic overflow.
    public func updateOutputLength(inputLength: Int) -> Int? {
        nil
    }

    /// Upper bound of what `finish()` will return now (exact except CBC-PAD decrypt, where it is the
    /// held-back block size before the padding is removed).
    public func finishOutputLength() -> Int {
        0
    }

    /// Upper bound of the whole output of a single-part operation (PKCS#11 C_Encrypt / C_Decrypt size
    /// query). Exact for every mode except CBC-PAD decrypt (upper bound: `inputLength`).
    /// `nil` if the length is impossible for the mode (e.g. GCM decrypt shorter than the tag) or overflows.
    public static func outputLength(mode: Mode, direction: Direction, inputLength: Int) -> Int? {
        nil
    }
}
