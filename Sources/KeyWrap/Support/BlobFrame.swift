// The one frame of every backend's blob (docs/storage-format.md, "Backend blobs"), all integers big-endian:
//
//     version(1) || fixed header bytes || (u16 length || field)... || [mac(32)]
//
// A field is never empty. The backends that authenticate their frame append
// mac = HMAC-SHA-256(key: root key, label || WrapContext.aad || every frame byte before the mac), which binds a
// blob to its token and detects any edit of it (`local` binds only label || aad: its frame is the root key).
import CryptoCore

/// Builds a blob: `BlobWriter(version:)`, `append(byte:)` / `append(field:)`, then `bytes` or `sealed(…)`.
struct BlobWriter {
    private(set) var bytes: [UInt8]

    /// `capacity`: reserve room up front when the blob holds a secret, so no reallocation leaves a copy behind.
    init(version: UInt8, capacity: Int = 0) {
        bytes = [version]
        bytes.reserveCapacity(capacity)
    }

    mutating func append(byte: UInt8) { bytes.append(byte) }

    /// `u16 length || field`; `.misconfigured` when the field is empty or longer than 65,535 bytes.
    mutating func append(field: some ByteView) throws {
        guard field.count > 0, field.count <= Int(UInt16.max) else {
            throw KeyWrapError.misconfigured("blob field of \(field.count) bytes (1...65535)")
        }
        bytes.append(UInt8(truncatingIfNeeded: field.count >> 8))
        bytes.append(UInt8(truncatingIfNeeded: field.count))
        field.withUnsafeBytes { bytes.append(contentsOf: $0) }
    }

    /// The frame followed by its mac (`BlobMAC`).
    func sealed(label: [UInt8], rootKey: SecretBytes, context: WrapContext) throws -> [UInt8] {
        bytes + (try BlobMAC.compute(label: label, rootKey: rootKey, context: context, frame: bytes))
    }
}

/// Reads a blob written by `BlobWriter`: every accessor answers nil past the frame, so a short or edited blob
/// is refused field by field without arithmetic on its lengths going wrong.
struct BlobReader {
    let blob: [UInt8]
    /// Where the frame ends (the mac, if any, starts).
    let frameEnd: Int
    private(set) var offset = 1

    /// nil unless `blob` starts with `version` and has room for the mac.
    init?(_ blob: [UInt8], version: UInt8, macLength: Int = 0) {
        guard blob.count > 1 + macLength, blob[0] == version else { return nil }
        self.blob = blob
        self.frameEnd = blob.count - macLength
    }

    mutating func byte() -> UInt8? {
        guard offset < frameEnd else { return nil }
        defer { offset += 1 }
        return blob[offset]
    }

    /// The next `u16 length || field`; nil when it is empty or runs past the frame.
    mutating func field() -> ArraySlice<UInt8>? {
        guard offset + 2 <= frameEnd else { return nil }
        let n = Int(blob[offset]) << 8 | Int(blob[offset + 1])
        guard n > 0, offset + 2 + n <= frameEnd else { return nil }
        defer { offset += 2 + n }
        return blob[(offset + 2)..<(offset + 2 + n)]
    }

    /// The next field as UTF-8 text.
    mutating func textField() -> String? { field().flatMap { String(validating: Array($0), as: UTF8.self) } }

    /// Every frame byte has been read.
    var isAtEnd: Bool { offset == frameEnd }

    /// The frame bytes read so far (what a header-bound AAD covers).
    var prefixRead: ArraySlice<UInt8> { blob[0..<offset] }

    var frame: ArraySlice<UInt8> { blob[0..<frameEnd] }
    var mac: ArraySlice<UInt8> { blob[frameEnd...] }

    /// Whether the mac after the frame is the one `rootKey` gives (constant time).
    func macVerifies(label: [UInt8], rootKey: SecretBytes, context: WrapContext) throws -> Bool {
        constantTimeEquals(try BlobMAC.compute(label: label, rootKey: rootKey, context: context, frame: frame), mac)
    }
}

enum BlobMAC {
    static let length = 32

    /// HMAC-SHA-256(key: rootKey, label || context.aad || frame).
    static func compute(label: [UInt8], rootKey: SecretBytes, context: WrapContext, frame: some ByteView) throws -> [UInt8] {
        do {
            return try HMAC.authenticate(.sha256, key: rootKey, data: label + context.aad + frame.withUnsafeBytes { Array($0) })
        } catch {
            throw KeyWrapError.misconfigured("HMAC unavailable: \(error)")
        }
    }
}
