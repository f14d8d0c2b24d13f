import CSQLite

extension TokenDatabase {
    /// Read-modify-write of one object's public attributes as a single `BEGIN IMMEDIATE … COMMIT` transaction:
    /// `body` sees the committed attributes (another process's last write included) and no other connection
    /// can write in between, so counters kept in attributes stay exact across processes (token policies:
    /// key use counts). `body` returns the new public attribute set, or nil to leave the object unchanged
    /// (nothing is written), and a result handed back to the caller. Sealed attributes are never touched.
    /// Missing object → `.objectNotFound`.
    public func modifyPublicAttributes<R: Sendable>(
        uniqueID: String, _ body: ([UInt: [UInt8]]) throws -> (attributes: [UInt: [UInt8]]?, result: R)
    ) throws -> R {
        try write { conn in
            guard let existing = conn.objects[uniqueID] else { throw StoreError.objectNotFound(uniqueID) }
            let (changed, result) = try body(existing.object.publicAttributes)
            guard let changed else { return result }
            try Self.validate(uniqueID: uniqueID, publicAttributes: changed, secretTypes: [])
            guard Set(existing.object.sealedAttributes.keys).isDisjoint(with: changed.keys) else {
                throw StoreError.invalidArgument("attribute type both public and secret")
            }
            let pubBlob = try RecordCodec.encode(changed)
            let seq = conn.nextSeq()
            try conn.run("UPDATE objects SET seq = ?, public_attrs = ? WHERE unique_id = ?") { s in
                try conn.bind(s, 1, seq)
                try conn.bind(s, 2, pubBlob)
                try conn.bind(s, 3, uniqueID)
            }
            guard sqlite3_changes(conn.db) == 1 else { throw StoreError.objectNotFound(uniqueID) }
            let object = StoredObject(uniqueID: uniqueID, publicAttributes: changed,
                                      sealedAttributes: existing.object.sealedAttributes, sequence: seq)
            conn.putInMirror(object, created: existing.created)
            conn.didCommit(seq: seq)
            return result
        }
    }
}
