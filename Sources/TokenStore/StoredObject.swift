/// A sealed attribute value as stored: `0x01 || nonce(12) || ciphertext || tag(16)`. Opaque to callers;
/// unseal with `TokenDatabase.unseal(_:attribute:keys:)`.
public struct SealedValue: Sendable, Equatable, Hashable {
    public let bytes: [UInt8]
    public init(bytes: [UInt8]) { self.bytes = bytes }
}

/// One token object as stored: public attributes in clear, secret attributes sealed.
/// Attribute types are plain numbers chosen by the caller (PKCS#11 CKA_* values); the store gives them no meaning.
public struct StoredObject: Sendable, Equatable {
    /// Stable identifier (CKA_UNIQUE_ID); also part of every sealed value's AAD and its per-object key.
    public let uniqueID: String
    /// Attributes stored in clear and searchable with `find(matching:)`.
    public var publicAttributes: [UInt: [UInt8]]
    /// Attributes sealed with AES-256-GCM under the per-object key.
    public var sealedAttributes: [UInt: SealedValue]
    /// Monotonic change number (database-wide sequence) of the last write to this object.
    public var sequence: Int64
    /// The object MAC (`StoreAuthentication.objectMAC`); nil for an object written without a login (public, no
    /// sealed attribute) that the next login authenticates, or a format-1 object awaiting migration.
    public var mac: [UInt8]?

    /// The row carries a MAC. It is checked before any sealed value is opened and before a logged-in caller uses
    /// the object (`TokenDatabase.verifiedObject`).
    public var isAuthenticated: Bool { mac != nil }

    public init(uniqueID: String, publicAttributes: [UInt: [UInt8]], sealedAttributes: [UInt: SealedValue],
                sequence: Int64 = 0, mac: [UInt8]? = nil) {
        self.uniqueID = uniqueID
        self.publicAttributes = publicAttributes
        self.sealedAttributes = sealedAttributes
        self.sequence = sequence
        self.mac = mac
    }
}
