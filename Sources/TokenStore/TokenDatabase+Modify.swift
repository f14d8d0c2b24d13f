
extension TokenDatabase {
    /// Read-modify-write of one object's public attributes as a single `BEGIN IMMEDIATE … COMMIT` transaction:
    /// `body` sees the committed attributes (another process's last write included) and no other connection
    /// can write in between, so counters kept in attributes stay exact across processes (token policies:
    /// key use counts). `body` returns the new public attribute set, or nil to leave the object unchanged
    /// (nothing is written), and a result handed back to the caller. Sealed attributes are never touched.
    /// The committed row is checked before `body` sees it, under `keys` (an authenticated object without `keys`
    /// → `.notLoggedIn`; one that does not verify → `.tampered`), so a counter edited in the file is never
    /// counted from. Missing object → `.objectNotFound`.
    public func modifyPublicAttributes<R: Sendable>(
        uniqueID: String, keys: SessionKeys?,
        _ body: ([UInt: [UInt8]]) throws -> (attributes: [UInt: [UInt8]]?, result: R)
    ) throws -> R {
        let key = try keys.map { try StoreAuthentication.key($0) }
        return try write { conn in
            guard let existing = conn.objects[uniqueID] else { throw StoreError.objectNotFound(uniqueID) }
            if let keys, keys.tokenUUID != conn.token.record.tokenUUID { throw StoreError.notLoggedIn }
            try conn.checkRewrite(existing.object, key: key, admits: admitsUnauthenticated)
            let (changed, result) = try body(existing.object.publicAttributes)
            guard let changed else { return result }
            try Self.validate(uniqueID: uniqueID, publicAttributes: changed, secretTypes: [])
            guard Set(existing.object.sealedAttributes.keys).isDisjoint(with: changed.keys) else {
                throw StoreError.invalidArgument("attribute type both public and secret")
            }
            if key == nil, !existing.object.sealedAttributes.isEmpty { throw StoreError.notLoggedIn }
            let seq = conn.nextSeq()
            let object = StoredObject(uniqueID: uniqueID, publicAttributes: changed,
                                      sealedAttributes: existing.object.sealedAttributes, sequence: seq)
            _ = try conn.writeObject(object, created: existing.created, key: key, insert: false)
            conn.didCommit(seq: seq)
            return result
        }
    }
}
