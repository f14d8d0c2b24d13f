import CryptoCore

extension SessionKeys {
    /// A key of another purpose derived from the root key: `HKDF-SHA-256(ikm: root, salt, info, 32)`. The audit
    /// log's checkpoint key uses it (Sources/Audit/AuditKey.swift). The object-key salt is refused so this can
    /// never hand out an object's sealing key.
    public func derivedKey(salt: [UInt8], info: [UInt8]) throws -> SecretBytes {
        guard !salt.isEmpty, salt != Self.objectKeySalt, salt != StoreAuthentication.keySalt else {
            throw StoreError.invalidArgument("derived key salt must be non-empty and not the object-key or store-authentication salt")
        }
        do {
            return try KDF.hkdfSHA256(ikm: rootKey, salt: salt, info: info, length: 32)
        } catch let e as CryptoError {
            throw StoreError.crypto(e)
        }
    }

    /// The key of `StoreAuthentication` (object and state MACs), derived once per login.
    func storeAuthenticationKey() throws -> SecretBytes {
        if let k = authenticationKey.withLock({ $0 }) { return k }
        let k: SecretBytes
        do {
            k = try KDF.hkdfSHA256(ikm: rootKey, salt: StoreAuthentication.keySalt, info: Array(tokenUUID.utf8), length: 32)
        } catch let e as CryptoError {
            throw StoreError.crypto(e)
        }
        authenticationKey.withLock { $0 = k }
        return k
    }
}
