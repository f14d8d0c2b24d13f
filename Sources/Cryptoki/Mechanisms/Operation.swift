// The shape every multi-step operation shares, and the PKCS#11 §5.2 output convention: a length query or a
// too-small buffer keeps the operation alive; when the output length is known in advance the query is answered
// without computing; when it is not, the output is computed once and kept for the fetch.
import CP11Kit
import CryptoCore

/// An encrypt or decrypt operation (also used for C_Encrypt with key-wrap mechanisms).
protocol CipherOperation: AnyObject {
    /// Exact single-part output length without computing, or nil when only computing tells. Throws the
    /// mechanism's length error (CKR_DATA_LEN_RANGE / CKR_ENCRYPTED_DATA_LEN_RANGE) for an impossible input.
    func singleOutputLength(input: UnsafeRawBufferPointer) throws -> Int?
    func single(_ input: UnsafeRawBufferPointer) throws -> [UInt8]
    /// Optional fast path: write the single-part output straight into the caller's buffer (which is at least
    /// `singleOutputLength` long). nil: not supported, use `single`.
    func single(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int?
    /// Exact output of the next update (all our mechanisms know it).
    func updateOutputLength(inputLength: Int) throws -> Int
    func update(_ input: UnsafeRawBufferPointer) throws -> [UInt8]
    func finalOutputLength() throws -> Int?
    func final() throws -> [UInt8]
    /// Whether the output is secret (decryption: plaintext). Such output is wiped as soon as it is delivered or the
    /// operation ends; ciphertext is not (no cost on the encrypt path).
    var outputIsSecret: Bool { get }
}

extension CipherOperation {
    func single(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int? { nil }
}

enum Limits {
    /// The most input an operation that must buffer (GCM decryption, N2HE, key wrap via C_Encrypt) holds before
    /// its final call: 2 GiB. Beyond that the call fails with the mechanism's length error instead of
    /// reading a caller's impossible length.
    static let maxBufferedInput = 1 << 31
}

/// Operation slot contents with the computed-but-not-yet-delivered output (if any).
///
/// `pending` (possibly plaintext) lives in `SecretBytes`: wiped in place once delivered (`Output.produce`) and when the
/// operation ends any other way — C_*Final, an error, C_SessionCancel, C_CloseSession, C_Finalize all drop the
/// slot's only reference, and deinit wipes it. The mechanism's own buffers are wiped by its deinit.
final class ActiveCipher: @unchecked Sendable {
    let op: CipherOperation
    var pending: SecretBytes?
    var multipart = false
    init(_ op: CipherOperation) { self.op = op }
    deinit { pending?.wipe() }
}

enum Output {
    /// Delivers `bytes` to `output`; returns the result and whether the bytes were consumed.
    static func deliver(_ bytes: some ByteView, to output: OutputBuffer) -> OutputResult {
        switch output {
        case .lengthQuery:
            return .lengthRequired(bytes.count)
        case .buffer(let buf):
            guard buf.count >= bytes.count else { return .bufferTooSmall(required: bytes.count) }
            if bytes.count > 0, let base = buf.baseAddress {
                bytes.withUnsafeBytes { src in
                    if let s = src.baseAddress { base.copyMemory(from: s, byteCount: bytes.count) }
                }
            }
            return .written(bytes.count)
        }
    }

    /// Answers a call whose output length may be known (`exact`) before computing.
    /// - `pending`: output computed by an earlier call that could not deliver it (kept in `SecretBytes`, wiped in
    ///   place once delivered).
    /// - `secret`: the computed output is wiped once copied to the caller (plaintext, digests of keys, MACs).
    ///   With `false` (ciphertext) the temporary array is released as it is.
    /// Returns the result and whether the step is complete (output delivered or an error).
    static func produce(exact: Int?, pending: inout SecretBytes?, output: OutputBuffer, secret: Bool = true,
                        compute: () throws -> [UInt8]) throws -> OutputResult {
        if let p = pending {
            let r = deliver(p, to: output)
            if case .written = r {
                p.wipe()
                pending = nil
            }
            return r
        }
        if let n = exact {
            switch output {
            case .lengthQuery: return .lengthRequired(n)
            case .buffer(let buf) where buf.count < n: return .bufferTooSmall(required: n)
            default: break
            }
        }
        var bytes = try compute()
        defer { if secret { secureZero(&bytes) } }
        let r = deliver(bytes, to: output)
        if case .written = r { return r }
        // Kept for the fetch: a length query or too small a buffer after computing (CBC-PAD decrypt, a size only
        // computing tells). Not the hot path: the extra copy happens only here.
        pending = SecretBytes(copying: bytes)
        return r
    }
}

extension OutputResult {
    /// True when the output reached the caller (the step is done).
    var delivered: Bool { if case .written = self { return true } else { return false } }
}
