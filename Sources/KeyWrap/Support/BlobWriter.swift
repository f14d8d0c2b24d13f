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
