import CryptoCore

/// The zero-configuration backend. It adds NO protection of its own: the root key is protected only by the
/// PIN-derived sealing done by TokenStore (DESIGN §4). Its blob is the root key itself, framed and bound to
/// the token identity so that a blob copied between tokens (or corrupted) is refused:
///
/// `0x01 (version) || u16be(len) || rootKey || HMAC-SHA-256(key: rootKey, "TG-LOCAL-1" || context.aad)`
///
/// See docs/storage-format.md for what this means for an attacker holding the database file.
public struct LocalBackend: KeyWrapBackend {
    public static let kind = "local"
    public static let blobVersion: UInt8 = 1
    private static let label = Array("TG-LOCAL-1".utf8)

    public init() {}

    public var descriptor: BackendDescriptor { BackendDescriptor(kind: Self.kind) }

    public func wrap(_ rootKey: SecretBytes, context: WrapContext) throws -> [UInt8] {
        guard rootKey.count > 0, rootKey.count <= Int(UInt16.max) else {
            throw KeyWrapError.misconfigured("root key length \(rootKey.count) not supported")
        }
        var blob = BlobWriter(version: Self.blobVersion, capacity: 3 + rootKey.count + BlobMAC.length)
        try blob.append(field: rootKey)
        return blob.bytes + (try binding(rootKey, context))
    }

    public func unwrap(_ blob: [UInt8], context: WrapContext) throws -> SecretBytes {
        guard var reader = BlobReader(blob, version: Self.blobVersion, macLength: BlobMAC.length),
              let field = reader.field(), reader.isAtEnd else { throw KeyWrapError.integrityFailure }
        let root = SecretBytes(copying: field)
        guard constantTimeEquals(try binding(root, context), reader.mac) else { throw KeyWrapError.integrityFailure }
        return root
    }

    public func checkHealth() throws {}

    /// The mac covers the label and the token binding only: the frame is the root key itself.
    private func binding(_ root: SecretBytes, _ context: WrapContext) throws -> [UInt8] {
        try BlobMAC.compute(label: Self.label, rootKey: root, context: context, frame: [UInt8]())
    }
}
