import CryptoCore

/// The result of a successful login: the unwrapped root key and the PIN-opened backend blob, both secret and
/// zeroised when the last reference goes (logout, C_Finalize, fork handler: drop it).
///
/// Sealing / unsealing of object attributes uses the per-object key HKDF-SHA-256(root, salt, info: uniqueID);
/// see docs/storage-format.md.
public final class SessionKeys: Sendable {
    /// Role that logged in.
    public let role: Role
    /// The token identity these keys belong to.
    public let tokenUUID: String
    let rootKey: SecretBytes
    let backendBlob: SecretBytes

    init(role: Role, tokenUUID: String, rootKey: SecretBytes, backendBlob: SecretBytes) {
        self.role = role
        self.tokenUUID = tokenUUID
        self.rootKey = rootKey
        self.backendBlob = backendBlob
    }

    /// Seals `value` as attribute `type` of object `uniqueID`.
    public func seal(_ value: some ByteView, uniqueID: String, attribute type: UInt) throws -> SealedValue {
        throw StoreError.crypto(.notImplemented)
    }

    /// Opens a sealed value; a value sealed for another object, attribute or root key → `.integrityFailure`.
    public func unseal(_ sealed: SealedValue, uniqueID: String, attribute type: UInt) throws -> SecretBytes {
        throw StoreError.crypto(.notImplemented)
    }
}
