import CryptoCore

/// Checking and stamping the MACs of `StoreAuthentication` inside a transaction (mirror fresh, lock held).
extension Connection {
    func stateFields(generation: Int64) -> StoreAuthentication.StateFields {
        StoreAuthentication.StateFields(tokenUUID: token.record.tokenUUID, serial: token.record.serialNumber,
                                        label: token.record.label, backend: token.record.backend,
                                        wrappedRoot: token.wrappedRoot, epoch: token.epoch, generation: generation,
                                        envelopes: token.envelopes, objectsDigest: objectsDigest,
                                        ledgerDigest: token.ledgerDigest)
    }

    /// The ledger digest of the rows as they are in the file (a full scan: at login and acceptance only).
    func computedLedgerDigest(key: SecretBytes) throws -> [UInt8] {
        var digest = StoreAuthentication.zeroDigest
        try withStatement("SELECT unique_id, digest FROM spent_seeds") { stmt in
            while try stmt.step() {
                StoreAuthentication.xor(&digest, try StoreAuthentication.ledgerRowMAC(
                    key: key, ledger: stmt.text(0), seedDigest: stmt.blob(1)))
            }
        }
        try withStatement("SELECT unique_id, hour, calls FROM hourly_calls") { stmt in
            while try stmt.step() {
                StoreAuthentication.xor(&digest, try StoreAuthentication.ledgerRowMAC(
                    key: key, ledger: stmt.text(0), hour: stmt.int(1), calls: stmt.int(2)))
            }
        }
        return digest
    }

    /// Stores the ledger digest (the caller stamps the state after).
    func setLedgerDigest(_ digest: [UInt8]) throws {
        try run("UPDATE token SET ledger_digest = ? WHERE id = 1") { try $0.bind(1, digest) }
        token.ledgerDigest = digest
    }

    /// The stored state MAC matches the token row, the PIN envelopes and the set of object MACs; else `.tampered`.
    func checkState(key: SecretBytes) throws {
        guard let mac = token.stateMAC else { throw StoreError.tampered("the token state carries no MAC") }
        if let v = verifiedState, v.generation == token.generation, v.mac == mac, v.digest == objectsDigest { return }
        let expected = try StoreAuthentication.stateMAC(key: key, stateFields(generation: token.generation))
        guard constantTimeEquals(expected, mac) else {
            throw StoreError.tampered("the token state (generation \(token.generation)) does not match its MAC: an object row was replayed, removed or added, or the token or PIN rows were edited")
        }
        verifiedState = (token.generation, mac, objectsDigest)
    }

    /// One more generation, MAC'd over the current mirror (call after the change is in the database and mirror).
    func stampState(key: SecretBytes) throws {
        let generation = token.generation &+ 1
        let mac = try StoreAuthentication.stateMAC(key: key, stateFields(generation: generation))
        try run("UPDATE token SET generation = ?, state_mac = ? WHERE id = 1") { s in
            try s.bind(1, generation)
            try s.bind(2, mac)
        }
        token.generation = generation
        token.stateMAC = mac
        verifiedState = (generation, mac, objectsDigest)
    }

    /// The object's row verifies under `key`; else `.tampered` naming it. Checked once per change number.
    func checkObject(_ uniqueID: String, key: SecretBytes) throws {
        guard let entry = objects[uniqueID] else { throw StoreError.objectNotFound(uniqueID) }
        if verifiedObjects[uniqueID] == entry.object.sequence { return }
        guard let mac = entry.object.mac else {
            throw StoreError.tampered("object \(uniqueID) carries no MAC")
        }
        let expected = try StoreAuthentication.objectMAC(key: key, tokenUUID: token.record.tokenUUID,
                                                         object: entry.object, created: entry.created)
        guard constantTimeEquals(expected, mac) else {
            throw StoreError.tampered("object \(uniqueID) does not match its MAC (its attributes were edited or moved)")
        }
        verifiedObjects[uniqueID] = entry.object.sequence
    }

    /// May `existing` be rewritten? With `key`: the state verifies, and the row verifies (authenticated) or is
    /// one the store admits without a MAC (`admits`: a public object written without a login). Without: only an
    /// object that carries no MAC (`.notLoggedIn` otherwise: rewriting it would need its MAC).
    func checkRewrite(_ existing: StoredObject, key: SecretBytes?, admits: (StoredObject) -> Bool) throws {
        guard let key else {
            if existing.isAuthenticated { throw StoreError.notLoggedIn }
            return
        }
        try checkState(key: key)
        if existing.isAuthenticated {
            try checkObject(existing.uniqueID, key: key)
        } else if !admits(existing) {
            throw StoreError.tampered("object \(existing.uniqueID) carries no MAC and could not have been written without a login")
        }
    }

    /// Writes an object row (insert or replace) with its MAC when `key` is given (then also a new generation),
    /// else with none; updates the mirror. The caller has checked the state and, for a replace, the old row.
    func writeObject(_ object: StoredObject, created: Int64, key: SecretBytes?, insert: Bool,
                     stamp: Bool = true) throws -> StoredObject {
        let publicBlob = try RecordCodec.encode(object.publicAttributes)
        let sealedBlob = try RecordCodec.encode(object.sealedAttributes.mapValues(\.bytes))
        var stored = object
        stored.mac = try key.map {
            try StoreAuthentication.objectMAC(key: $0, tokenUUID: token.record.tokenUUID, uniqueID: object.uniqueID,
                                              created: created, sequence: object.sequence, publicBlob: publicBlob,
                                              sealedBlob: sealedBlob)
        }
        let sql = insert
            ? "INSERT INTO objects (created, seq, public_attrs, sealed_attrs, mac, unique_id) VALUES (?, ?, ?, ?, ?, ?)"
            : "UPDATE objects SET created = ?, seq = ?, public_attrs = ?, sealed_attrs = ?, mac = ? WHERE unique_id = ?"
        try run(sql) { s in
            try s.bind(1, created)
            try s.bind(2, object.sequence)
            try s.bind(3, publicBlob)
            try s.bind(4, sealedBlob)
            if let mac = stored.mac { try s.bind(5, mac) } else { try s.bindNull(5) }
            try s.bind(6, object.uniqueID)
        }
        if !insert, driver.changes != 1 { throw StoreError.objectNotFound(object.uniqueID) }
        putInMirror(stored, created: created)
        if let key {
            verifiedObjects[object.uniqueID] = object.sequence
            if stamp { try stampState(key: key) }
        }
        return stored
    }
}
