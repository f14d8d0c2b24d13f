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
        let mac = try binding(rootKey, context)
        var blob: [UInt8] = [Self.blobVersion, UInt8(truncatingIfNeeded: rootKey.count >> 8), UInt8(truncatingIfNeeded: rootKey.count)]
        blob.reserveCapacity(3 + rootKey.count + mac.count)
        rootKey.withUnsafeBytes { blob.append(contentsOf: $0) }
        blob.append(contentsOf: mac)
        return blob
    }

    public func unwrap(_ blob: [UInt8], context: WrapContext) throws -> SecretBytes {
        guard blob.count >= 3, blob[0] == Self.blobVersion else { throw KeyWrapError.integrityFailure }
        let len = Int(blob[1]) << 8 | Int(blob[2])
        guard len > 0, blob.count == 3 + len + 32 else { throw KeyWrapError.integrityFailure }
        let root = SecretBytes(copying: blob[3..<(3 + len)])
        let mac = try binding(root, context)
        guard constantTimeEquals(mac, blob[(3 + len)...]) else { throw KeyWrapError.integrityFailure }
        return root
    }

    public func checkHealth() throws {}

    private func binding(_ root: SecretBytes, _ context: WrapContext) throws -> [UInt8] {
        do {
            return try HMAC.authenticate(.sha256, key: root, data: Self.label + context.aad)
        } catch {
            throw KeyWrapError.misconfigured("HMAC unavailable: \(error)")
        }
    }
}
