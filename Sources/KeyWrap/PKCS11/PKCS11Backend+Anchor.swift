// The PKCS#11 backend as the keeper of a token's anchor (docs/storage-format.md §Rollback, docs/backends/pkcs11.md):
// one private data object per token in the backend HSM token, written on every change of the token's state.
import CP11Kit

extension PKCS11Backend: AnchorHoldingBackend {
    static let anchorApplication = Array("tensorguard-pkcs11 anchor".utf8)
    /// The anchor slot is 128 bytes, as for the cloud backends.
    static let maximumAnchorLength = KMSAnchorMetadata.maximumLength

    /// CKO_DATA, token, private (readable only after the backend login), CKA_APPLICATION "tensorguard-pkcs11
    /// anchor", CKA_LABEL "tg-anchor-<token uuid>".
    func anchorTemplate(_ tokenUUID: String) -> [HSMAttribute] {
        [HSMAttribute(UInt(CKA_CLASS), .ulong(CK_ULONG(CKO_DATA))), HSMAttribute(UInt(CKA_TOKEN), .bool(true)),
         HSMAttribute(UInt(CKA_PRIVATE), .bool(true)), HSMAttribute(UInt(CKA_APPLICATION), .bytes(Self.anchorApplication)),
         HSMAttribute(UInt(CKA_LABEL), .bytes(Array("tg-anchor-\(tokenUUID)".utf8)))]
    }

    public func readAnchor(tokenUUID: String) throws -> [[UInt8]] {
        stats.withLock { $0.administrative += 1 }
        return try session(readWrite: false, login: true) { calls, session, token in
            try self.anchorValues(calls, session, token, tokenUUID).map(\.value)
        }
    }

    /// CKA_VALUE of a data object is read-only once created (SoftHSM2 refuses C_SetAttributeValue on it), so a new
    /// object replaces the old: created first, the old ones destroyed after (a cut leaves both; a read returns both).
    public func updateAnchor(tokenUUID: String, _ update: ([[UInt8]]) -> [UInt8]) throws {
        stats.withLock { $0.administrative += 1 }
        try session(readWrite: true, login: true) { calls, session, token in
            let current = try self.anchorValues(calls, session, token, tokenUUID)
            let value = update(current.map(\.value))
            guard value.count <= Self.maximumAnchorLength else { throw KeyWrapError.misconfigured("anchor value too long") }
            _ = try self.call(token, during: "create anchor") {
                try calls.create(session, self.anchorTemplate(tokenUUID) + [HSMAttribute(UInt(CKA_VALUE), .bytes(value))])
            }
            for old in current { calls.destroy(session, old.object) }
        }
    }

    private func anchorValues(_ calls: HSMCalls, _ session: CK_SESSION_HANDLE, _ token: HSMTokenInfo,
                              _ tokenUUID: String) throws -> [(object: CK_OBJECT_HANDLE, value: [UInt8])] {
        let found = try call(token, during: "find anchor") { try calls.find(session, anchorTemplate(tokenUUID), limit: 8) }
        return try found.compactMap { object in
            try call(token, during: "read anchor") {
                try calls.attribute(session, object, UInt(CKA_VALUE), maxLength: Self.maximumAnchorLength)
            }.map { (object, $0) }
        }
    }
}
