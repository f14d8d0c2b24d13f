import CryptoCore

/// The zero-configuration backend. It adds NO protection of its own: the root key is protected only by the
/// PIN-derived sealing done by TokenStore (DESIGN §4). Its blob is the root key itself, framed and bound to
/// the token identity so that a blob copied between tokens is refused:
///
/// `0x01 (version) || u16be(len) || rootKey || HMAC-SHA-256(rootKey, "TG-LOCAL-1" || context.aad)`
///
/// See docs/storage-format.md for what this means for an attacker holding the database file.
public struct LocalBackend: KeyWrapBackend {
    public static let kind = "local"
    public static let blobVersion: UInt8 = 1

    public init() {}

    public var descriptor: BackendDescriptor { BackendDescriptor(kind: Self.kind) }

    public func wrap(_ rootKey: SecretBytes, context: WrapContext) throws -> [UInt8] {
        throw KeyWrapError.misconfigured("not implemented")
    }

    public func unwrap(_ blob: [UInt8], context: WrapContext) throws -> SecretBytes {
        throw KeyWrapError.misconfigured("not implemented")
    }

    public func checkHealth() throws {}
}
