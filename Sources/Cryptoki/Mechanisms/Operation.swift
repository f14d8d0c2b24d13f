// The shape every multi-step operation shares, and the PKCS#11 §5.2 output convention: a length query or a
// too-small buffer keeps the operation alive; when the output length is known in advance the query is answered
// without computing; when it is not, the output is computed once and kept for the fetch.
import CP11Kit

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
final class ActiveCipher: @unchecked Sendable {
    let op: CipherOperation
    var pending: [UInt8]?
    var multipart = false
    init(_ op: CipherOperation) { self.op = op }
}

enum Output {
    /// Delivers `bytes` to `output`; returns the result and whether the bytes were consumed.
    static func deliver(_ bytes: [UInt8], to output: OutputBuffer) -> OutputResult {
        switch output {
        case .lengthQuery:
            return .lengthRequired(bytes.count)
        case .buffer(let buf):
            guard buf.count >= bytes.count else { return .bufferTooSmall(required: bytes.count) }
            if !bytes.isEmpty, let base = buf.baseAddress {
                bytes.withUnsafeBytes { src in
                    if let s = src.baseAddress { base.copyMemory(from: s, byteCount: bytes.count) }
                }
            }
            return .written(bytes.count)
        }
    }

    /// Answers a call whose output length may be known (`exact`) before computing.
    /// - `pending`: output computed by an earlier call that could not deliver it.
    /// Returns the result and whether the step is complete (output delivered or an error).
    static func produce(exact: Int?, pending: inout [UInt8]?, output: OutputBuffer,
                        compute: () throws -> [UInt8]) throws -> OutputResult {
        if let p = pending {
            let r = deliver(p, to: output)
            if case .written = r { pending = nil }
            return r
        }
        if let n = exact {
            switch output {
            case .lengthQuery: return .lengthRequired(n)
            case .buffer(let buf) where buf.count < n: return .bufferTooSmall(required: n)
            default: break
            }
        }
        let bytes = try compute()
        let r = deliver(bytes, to: output)
        if case .written = r { return r }
        pending = bytes
        return r
    }
}

extension OutputResult {
    /// True when the output reached the caller (the step is done).
    var delivered: Bool { if case .written = self { return true } else { return false } }
}
