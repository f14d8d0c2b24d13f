import CryptoCore

extension SessionKeys {
    /// A key of another purpose derived from the root key: `HKDF-SHA-256(ikm: root, salt, info, 32)`. The audit
    /// log's checkpoint key uses it (Sources/Audit/AuditKey.swift). The object-key salt is refused so this can
    /// never hand out an object's sealing key.
    public func derivedKey(salt: [UInt8], info: [UInt8]) throws -> SecretBytes {
        guard !salt.isEmpty, salt != Self.objectKeySalt else {
            throw StoreError.invalidArgument("derived key salt must be non-empty and not the object-key salt")
        }
        do {
            return try KDF.hkdfSHA256(ikm: rootKey, salt: salt, info: info, length: 32)
        } catch let e as CryptoError {
            throw StoreError.crypto(e)
        }
    }
}
