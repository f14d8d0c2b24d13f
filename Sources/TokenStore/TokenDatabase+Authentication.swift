import CryptoCore

/// The login-time side of `StoreAuthentication` and the anchor (docs/storage-format.md §Authentication, §Rollback).
extension TokenDatabase {
    /// What `acceptCurrentState` did.
    public struct Acceptance: Sendable, Equatable {
        /// The store's generation before, and the one its anchor recorded (nil: none).
        public var storedGeneration: Int64
        public var recordedGeneration: Int64?
        /// Objects removed because their rows did not verify (their attributes were edited or moved).
        public var removed: [String]
        /// Objects that had no MAC and were authenticated as they are.
        public var adopted: [String]
        /// The new generation.
        public var generation: Int64
    }

    /// Run by every login once the root key is unwrapped: every object row and the token state must verify under
    /// `keys`, and the store must not be older than its anchor. Objects without a MAC that the store admits
    /// (`admitsUnauthenticated`: public objects written without a login) are authenticated now. A format-1 store
    /// is migrated: every object gets its MAC and the file becomes format 2 — unless the anchor has seen this token
    /// authenticated already (then it is a stripped or older copy: `.rollback`). Throws `.tampered` naming what
    /// failed (nothing is written then) or `.rollback`.
    func authenticateAtLogin(_ keys: SessionKeys) throws {
        let key = try StoreAuthentication.key(keys)
        let recorded = try anchor?.read(keys.tokenUUID)
        try write { conn in
            guard conn.token.record.tokenUUID == keys.tokenUUID else { throw StoreError.notLoggedIn }
            guard conn.token.stateMAC != nil else {
                guard conn.token.record.formatVersion < TokenDatabase.formatVersion else {
                    throw StoreError.tampered("the token state carries no MAC")
                }
                if let recorded, recorded.generation > 0 {
                    throw StoreError.rollback(stored: conn.token.generation, recorded: recorded.generation)
                }
                try adopt(conn, Array(conn.objects.keys), key: key)
                try conn.setLedgerDigest(try conn.computedLedgerDigest(key: key))
                try conn.run("UPDATE token SET format_version = ? WHERE id = 1") { try $0.bind(1, Int64(TokenDatabase.formatVersion)) }
                conn.token.record.formatVersion = TokenDatabase.formatVersion
                try conn.stampState(key: key)
                return
            }
            var failures: [String] = []
            var pending: [String] = []
            for (uid, entry) in conn.objects {
                if !entry.object.isAuthenticated, admitsUnauthenticated(entry.object) {
                    pending.append(uid)
                    continue
                }
                do { try conn.checkObject(uid, key: key) } catch StoreError.tampered(let why) { failures.append(why) }
            }
            do { try conn.checkState(key: key) } catch StoreError.tampered(let why) { failures.append(why) }
            let ledger = try conn.computedLedgerDigest(key: key)
            if let stored = conn.token.ledgerDigest, !constantTimeEquals(stored, ledger) {
                failures.append("the N2HE seed ledger or decrypt-call counts do not match their digest (rows removed, added or edited)")
            }
            if !failures.isEmpty { throw StoreError.tampered(Self.summary(failures)) }
            if let recorded, recorded.generation > conn.token.generation
                || (recorded.generation == conn.token.generation && recorded.stateMAC != conn.token.stateMAC) {
                throw StoreError.rollback(stored: conn.token.generation, recorded: recorded.generation)
            }
            // A store from before schema 4: its ledgers are authenticated as they are now.
            let migrating = conn.token.ledgerDigest == nil
            if migrating { try conn.setLedgerDigest(ledger) }
            if !pending.isEmpty { try adopt(conn, pending, key: key) }
            if migrating || !pending.isEmpty { try conn.stampState(key: key) }
        }
    }

    /// The SO's acceptance of the store as it is (`tg-pkcs11 token accept-rollback`): objects whose rows do not
    /// verify are removed, objects without a MAC are authenticated as they are, and the state is stamped with a
    /// generation above both the store's and the anchor's, which the anchor then records (`write`).
    func acceptCurrentState(_ keys: SessionKeys, floor: Int64 = 0) throws -> Acceptance {
        let key = try StoreAuthentication.key(keys)
        let recorded = try anchor?.read(keys.tokenUUID)
        let acceptance = try write { conn -> Acceptance in
            guard conn.token.record.tokenUUID == keys.tokenUUID else { throw StoreError.notLoggedIn }
            var removed: [String] = []
            var adopted: [String] = []
            for (uid, entry) in conn.objects {
                guard entry.object.isAuthenticated else { adopted.append(uid); continue }
                do { try conn.checkObject(uid, key: key) } catch StoreError.tampered { removed.append(uid) }
            }
            let stored = conn.token.generation
            let base = max(stored, recorded?.generation ?? 0, floor)
            for uid in removed { conn.didCommit(seq: try conn.deleteObject(uid)) }
            try adopt(conn, adopted, key: key)
            try conn.setLedgerDigest(try conn.computedLedgerDigest(key: key))
            try conn.run("UPDATE token SET format_version = ?, generation = ? WHERE id = 1") { s in
                try s.bind(1, Int64(TokenDatabase.formatVersion))
                try s.bind(2, base)
            }
            conn.token.record.formatVersion = TokenDatabase.formatVersion
            conn.token.generation = base
            try conn.stampState(key: key)
            return Acceptance(storedGeneration: stored, recordedGeneration: recorded?.generation,
                              removed: removed.sorted(), adopted: adopted.sorted(), generation: conn.token.generation)
        }
        checkpoint()   // the removed rows leave the WAL
        return acceptance
    }

    /// The token's generation and whether it carries a state MAC (for `doctor` and tests).
    public func generation() throws -> (value: Int64, authenticated: Bool) {
        try read { ($0.token.generation, $0.token.stateMAC != nil) }
    }

    /// Gives each of `uniqueIDs` its MAC under a new change number (so other connections reload it), without
    /// stamping the state (the caller stamps once).
    private func adopt(_ conn: Connection, _ uniqueIDs: [String], key: SecretBytes) throws {
        for uid in uniqueIDs.sorted() {
            guard let entry = conn.objects[uid] else { continue }
            var object = entry.object
            object.sequence = conn.nextSeq()
            _ = try conn.writeObject(object, created: entry.created, key: key, insert: false, stamp: false)
            conn.didCommit(seq: object.sequence)
        }
    }

    /// Records the committed generation and retry counters in the anchor when they changed (a failure to write it
    /// leaves the change committed and is retried after the next write).
    func recordAnchor(_ conn: Connection) {
        guard let anchor, conn.token.record.isInitialized, let mac = conn.token.stateMAC else { return }
        let state = TokenAnchor.State(generation: conn.token.generation, stateMAC: mac,
                                      soFailed: conn.token.record.soPIN.failedAttempts,
                                      userFailed: conn.token.record.userPIN.failedAttempts)
        guard conn.lastAnchored?.uuid != conn.token.record.tokenUUID || conn.lastAnchored?.state != state else { return }
        do {
            try anchor.record(conn.token.record.tokenUUID, state)
            conn.lastAnchored = (conn.token.record.tokenUUID, state)
        } catch {
            conn.lastAnchored = nil
        }
    }

    static func summary(_ failures: [String]) -> String {
        let sorted = failures.sorted()
        let shown = sorted.prefix(4).joined(separator: "; ")
        return sorted.count > 4 ? shown + "; and \(sorted.count - 4) more" : shown
    }
}
