import CryptoCore
import CSQLite
import KeyWrap
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The token row plus bookkeeping columns, as mirrored in memory.
struct TokenState {
    var record: TokenRecord
    var epoch: Int64
    /// Highest change number in the database (max of objects.seq and tombstones.seq).
    var seq: Int64
    var prunedSeq: Int64
    /// The monotonic generation: one more for every authenticated change (objects, PIN envelopes, root key).
    var generation: Int64 = 0
    /// HMAC over the state (`StoreAuthentication.stateMAC`); nil on a format-1 store not yet migrated.
    var stateMAC: [UInt8]? = nil
    /// Everything else the state MAC covers, mirrored from the pin and token rows.
    var envelopes: [(Role, PINEnvelope)] = []
    var wrappedRoot: [UInt8] = []
    /// XOR of the N2HE ledger rows' MACs (`StoreAuthentication.ledgerRowMAC`); nil until the first login under
    /// schema 4 computes it.
    var ledgerDigest: [UInt8]? = nil
}

/// A PIN envelope row.
struct PINEnvelope {
    var salt: [UInt8]
    var log2N: Int
    var r: Int
    var p: Int
    var sealed: [UInt8]
    var failed: Int
    var maxAttempts: Int
}

/// One database connection (`SQLDriver`) plus the in-memory mirror. Only ever used under `TokenDatabase`'s mutex.
/// `@unchecked Sendable`: every access happens inside `TokenDatabase.state.withLock` (`withConnection`).
final class Connection: @unchecked Sendable {
    static var schemaVersion: Int { schemaSteps.count }
    /// Tombstones older than this many change numbers are pruned; a reader further behind reloads fully.
    static let tombstoneWindow: Int64 = 4096

    let driver: any SQLDriver
    var inTransaction = false
    var abandoned: Bool { driver.isAbandoned }

    // Mirror.
    let indexed: Set<UInt>
    var token: TokenState
    var objects: [String: (created: Int64, object: StoredObject)] = [:]
    /// XOR of the MACs of the mirrored objects that carry one (`StoreAuthentication`).
    var objectsDigest = StoreAuthentication.zeroDigest
    /// Objects whose MAC was checked, with the change number checked (dropped when the row changes).
    var verifiedObjects: [String: Int64] = [:]
    /// The last (generation, state MAC, objects digest) found consistent, so a write checks it with no HMAC.
    var verifiedState: (generation: Int64, mac: [UInt8], digest: [UInt8])? = nil
    /// What this connection last wrote to the token's anchor.
    var lastAnchored: (uuid: String, state: TokenAnchor.State)? = nil
    var index: [UInt: [[UInt8]: Set<String>]] = [:]
    var orderCache: [String]? = nil
    var lastDataVersion: Int64 = .min
    var lastSeq: Int64 = -1
    var loadedEpoch: Int64 = -1

    /// The connection over `driver`: the schema created or migrated, the mirror loaded.
    init(driver: any SQLDriver, indexed: Set<UInt>) throws {
        self.driver = driver
        self.indexed = indexed
        token = TokenState(record: Connection.emptyRecord, epoch: 0, seq: 0, prunedSeq: 0)
        try migrate()
        try refreshIfChanged()
    }

    static var emptyRecord: TokenRecord {
        TokenRecord(isInitialized: false, label: [UInt8](repeating: 0x20, count: 32), serialNumber: "", tokenUUID: "",
                    flags: 0, soPIN: PINStatus(isSet: false, failedAttempts: 0, maxAttempts: 0),
                    userPIN: PINStatus(isSet: false, failedAttempts: 0, maxAttempts: 0),
                    backend: nil, formatVersion: TokenDatabase.formatVersion)
    }

    func checkUsable() throws {
        if abandoned { throw StoreError.database(code: SQLITE_MISUSE, message: "connection abandoned after fork") }
    }

    // MARK: schema

    /// Creates or upgrades the schema inside one write transaction. Rule: versions only go up; each step
    /// `n → n+1` is a function below; a file newer than this build is refused (`.unsupportedFormat`).
    func migrate() throws {
        if let postgres = driver as? PostgresDriver {
            return try writeTransaction {
                try PostgresSchema.migrate(self, schema: postgres.schema, currentVersion: Self.schemaVersion)
            }
        }
        try writeTransaction {
            try exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            var current = 0
            try withStatement("SELECT version FROM schema_version") { stmt in
                if try stmt.step() { current = Int(stmt.int(0)) }
            }
            guard current <= Self.schemaVersion else { throw StoreError.unsupportedFormat(current) }
            guard current < Self.schemaVersion else { return }
            for step in Self.schemaSteps[current...] { try exec(step) }
            try exec(current == 0 ? "INSERT INTO schema_version (version) VALUES (\(Self.schemaVersion))"
                                  : "UPDATE schema_version SET version = \(Self.schemaVersion)")
        }
    }

    /// Step n → n+1 of the SQLite schema is `schemaSteps[n]`.
    static let schemaSteps = [schemaV1, schemaV2, schemaV3, schemaV4, schemaV5]

    static let schemaV1 = """
    CREATE TABLE token (
        id                  INTEGER PRIMARY KEY CHECK (id = 1),
        initialized         INTEGER NOT NULL DEFAULT 0,
        label               BLOB    NOT NULL,
        serial              TEXT    NOT NULL DEFAULT '',
        uuid                TEXT    NOT NULL DEFAULT '',
        flags               INTEGER NOT NULL DEFAULT 0,
        backend_kind        TEXT,
        backend_key_id      TEXT,
        backend_key_version TEXT,
        wrapped_root        BLOB,
        format_version      INTEGER NOT NULL,
        epoch               INTEGER NOT NULL DEFAULT 0,
        pruned_seq          INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO token (id, label, format_version) VALUES (1, x'2020202020202020202020202020202020202020202020202020202020202020', 1);
    CREATE TABLE pin (
        role         TEXT    PRIMARY KEY CHECK (role IN ('so', 'user')),
        token_id     INTEGER NOT NULL DEFAULT 1 REFERENCES token(id) ON DELETE CASCADE,
        kdf          TEXT    NOT NULL,
        salt         BLOB    NOT NULL,
        log2n        INTEGER NOT NULL,
        r            INTEGER NOT NULL,
        p            INTEGER NOT NULL,
        sealed       BLOB    NOT NULL,
        failed       INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL
    );
    CREATE TABLE objects (
        unique_id    TEXT    PRIMARY KEY NOT NULL,
        token_id     INTEGER NOT NULL DEFAULT 1 REFERENCES token(id) ON DELETE CASCADE,
        created      INTEGER NOT NULL,
        seq          INTEGER NOT NULL,
        public_attrs BLOB    NOT NULL,
        sealed_attrs BLOB    NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX objects_seq ON objects (seq);
    CREATE TABLE tombstones (
        seq       INTEGER PRIMARY KEY,
        unique_id TEXT    NOT NULL
    );
    """

    /// v2: the seeds each N2HE key has decrypted (`seeded-once`, docs/n2he.md). One row per (key, seed digest);
    /// the primary key is the index that makes "spent already?" one B-tree probe, O(log n). And the calls per key
    /// and hour that `max_decrypt_calls_per_hour` counts.
    static let schemaV2 = """
    CREATE TABLE spent_seeds (
        unique_id TEXT NOT NULL,      -- the ledger: HMAC of the key value (every copy of a key shares it)
        digest    BLOB NOT NULL,
        PRIMARY KEY (unique_id, digest)
    ) WITHOUT ROWID;
    CREATE TABLE hourly_calls (
        unique_id TEXT    NOT NULL,
        hour      INTEGER NOT NULL,
        calls     INTEGER NOT NULL,
        PRIMARY KEY (unique_id, hour)
    ) WITHOUT ROWID;
    """

    /// v3 (storage format 2): authenticated objects and state. `objects.mac` is NULL for an object written without
    /// a login (a public object; authenticated at the next login) and for every object of a format-1 file (all
    /// authenticated at the first login, which then sets `format_version` to 2).
    static let schemaV3 = """
    ALTER TABLE objects ADD COLUMN mac BLOB;
    ALTER TABLE token ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE token ADD COLUMN state_mac BLOB;
    UPDATE token SET format_version = 2 WHERE initialized = 0;
    """

    /// v4: the N2HE ledgers (`spent_seeds`, `hourly_calls`) are authenticated: the XOR of their rows' MACs, which
    /// the state MAC covers once set (NULL until the first login computes it from the rows as they are).
    static let schemaV4 = """
    ALTER TABLE token ADD COLUMN ledger_digest BLOB;
    """

    /// v5: PIN attempts in flight (counted, their KDF not yet concluded), apart from `pin.failed`, which from now
    /// on counts wrong PINs only: two right PINs checked at once no longer count each other as failures. A row
    /// older than `TokenVault.attemptLifetime` is an attempt whose process died; it becomes a failure.
    static let schemaV5 = """
    CREATE TABLE pin_attempts (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,   -- never reused: a late end must not end another attempt
        role    TEXT    NOT NULL CHECK (role IN ('so', 'user')),
        started INTEGER NOT NULL
    );
    """

    // MARK: change detection and mirror

    /// One `SQLDriver.changeMarker()`; refreshes the mirror only if another connection committed.
    func refreshIfChanged() throws {
        try checkUsable()
        let dv = try driver.changeMarker()
        guard dv != lastDataVersion else { return }
        try readTransaction { try refresh() }
        lastDataVersion = dv
    }

    /// Re-reads the token row; then either applies the changes since `lastSeq` (objects with a larger seq,
    /// tombstones with a larger seq) or, after a re-initialisation / too old a position, reloads everything.
    func refresh() throws {
        token = try loadToken()
        verifiedState = nil
        // A new epoch, tombstones pruned past what the mirror has seen, or change numbers gone backwards (the
        // database rolled back or restored under this process): only a full reload is right.
        if token.epoch != loadedEpoch || lastSeq < token.prunedSeq || token.seq < lastSeq {
            try fullReload()
            return
        }
        guard token.seq > lastSeq else { return }
        try withStatement("SELECT unique_id FROM tombstones WHERE seq > ?") { stmt in
            try stmt.bind(1, lastSeq)
            while try stmt.step() { removeFromMirror(stmt.text(0)) }
        }
        try withStatement("SELECT created, unique_id, seq, public_attrs, sealed_attrs, mac FROM objects WHERE seq > ?") { stmt in
            try stmt.bind(1, lastSeq)
            while try stmt.step() {
                let (created, object) = try decodeObjectRow(stmt)
                putInMirror(object, created: created)
            }
        }
        lastSeq = token.seq
    }

    func fullReload() throws {
        objects.removeAll(keepingCapacity: true)
        index.removeAll(keepingCapacity: true)
        objectsDigest = StoreAuthentication.zeroDigest
        verifiedObjects.removeAll()
        orderCache = nil
        try withStatement("SELECT created, unique_id, seq, public_attrs, sealed_attrs, mac FROM objects") { stmt in
            while try stmt.step() {
                let (created, object) = try decodeObjectRow(stmt)
                putInMirror(object, created: created)
            }
        }
        loadedEpoch = token.epoch
        lastSeq = token.seq
    }

    func decodeObjectRow(_ stmt: any SQLStatement) throws -> (Int64, StoredObject) {
        let created = stmt.int(0)
        let uid = stmt.text(1)
        let seq = stmt.int(2)
        let pub = try RecordCodec.decode(stmt.blob(3))
        let sealed = try RecordCodec.decode(stmt.blob(4)).mapValues { SealedValue(bytes: $0) }
        let mac = stmt.isNull(5) ? nil : stmt.blob(5)
        return (created, StoredObject(uniqueID: uid, publicAttributes: pub, sealedAttributes: sealed, sequence: seq, mac: mac))
    }

    func loadToken() throws -> TokenState {
        var state: TokenState? = nil
        try withStatement("""
            SELECT initialized, label, serial, uuid, flags, backend_kind, backend_key_id, backend_key_version,
                   format_version, epoch, pruned_seq,
                   coalesce((SELECT max(m) FROM (SELECT max(seq) AS m FROM objects UNION ALL SELECT max(seq) FROM tombstones) AS s), 0),
                   generation, state_mac, wrapped_root, ledger_digest
            FROM token WHERE id = 1
            """) { stmt in
            guard try stmt.step() else { throw StoreError.corrupt("token row missing") }
            var backend: BackendDescriptor? = nil
            if !stmt.isNull(5) {
                backend = BackendDescriptor(kind: stmt.text(5), keyID: stmt.text(6), keyVersion: stmt.text(7))
            }
            var label = stmt.blob(1)
            if label.count != 32 { label = Array((label + [UInt8](repeating: 0x20, count: 32)).prefix(32)) }
            let record = TokenRecord(isInitialized: stmt.int(0) != 0, label: label,
                                     serialNumber: stmt.text(2), tokenUUID: stmt.text(3),
                                     flags: UInt64(bitPattern: stmt.int(4)),
                                     soPIN: PINStatus(isSet: false, failedAttempts: 0, maxAttempts: 0),
                                     userPIN: PINStatus(isSet: false, failedAttempts: 0, maxAttempts: 0),
                                     backend: backend, formatVersion: Int(stmt.int(8)))
            state = TokenState(record: record, epoch: stmt.int(9), seq: stmt.int(11), prunedSeq: stmt.int(10),
                               generation: stmt.int(12), stateMAC: stmt.isNull(13) ? nil : stmt.blob(13),
                               wrappedRoot: stmt.isNull(14) ? [] : stmt.blob(14),
                               ledgerDigest: stmt.isNull(15) ? nil : stmt.blob(15))
        }
        guard var s = state else { throw StoreError.corrupt("token row missing") }
        for role in Role.allCases {
            guard let e = try loadEnvelope(role) else { continue }
            let status = PINStatus(isSet: true, failedAttempts: e.failed, maxAttempts: e.maxAttempts)
            switch role {
            case .so: s.record.soPIN = status
            case .user: s.record.userPIN = status
            }
            s.envelopes.append((role, e))
        }
        try withStatement("SELECT count(*) FROM pin WHERE role NOT IN ('so', 'user')") { stmt in
            if try stmt.step(), stmt.int(0) != 0 { throw StoreError.corrupt("unknown PIN role") }
        }
        return s
    }

    func putInMirror(_ object: StoredObject, created: Int64) {
        if objects[object.uniqueID] != nil { removeFromMirror(object.uniqueID) }
        objects[object.uniqueID] = (created, object)
        if let mac = object.mac { StoreAuthentication.xor(&objectsDigest, mac) }
        for t in indexed {
            if let v = object.publicAttributes[t] { index[t, default: [:]][v, default: []].insert(object.uniqueID) }
        }
        orderCache = nil
    }

    func removeFromMirror(_ uniqueID: String) {
        guard let old = objects.removeValue(forKey: uniqueID) else { return }
        if let mac = old.object.mac { StoreAuthentication.xor(&objectsDigest, mac) }
        verifiedObjects[uniqueID] = nil
        for t in indexed {
            guard let v = old.object.publicAttributes[t] else { continue }
            index[t]?[v]?.remove(uniqueID)
            if index[t]?[v]?.isEmpty == true { index[t]?[v] = nil }
        }
        orderCache = nil
    }

    func orderedIDs() -> [String] {
        if let o = orderCache { return o }
        let o = objects.sorted { ($0.value.created, $0.key) < ($1.value.created, $1.key) }.map(\.key)
        orderCache = o
        return o
    }

    // MARK: writes (call inside writeTransaction, after refreshIfChanged)

    /// The change number for the write in progress: one above every committed one (the mirror is fresh
    /// inside the write transaction, so `token.seq` is the database maximum). No extra page is written: the
    /// number lives only in the row / tombstone it stamps.
    func nextSeq() -> Int64 {
        token.seq &+ 1
    }

    /// Deletes an object row and records its tombstone under a new change number (returned; the caller commits
    /// and calls `didCommit`), pruning old tombstones; updates the mirror.
    func deleteObject(_ uniqueID: String) throws -> Int64 {
        let seq = nextSeq()
        try run("DELETE FROM objects WHERE unique_id = ?") { try $0.bind(1, uniqueID) }
        try run("INSERT INTO tombstones (seq, unique_id) VALUES (?, ?)") { s in
            try s.bind(1, seq)
            try s.bind(2, uniqueID)
        }
        // Prune in batches of 1024 once the window is exceeded (by distance, not by a modulus of `seq`:
        // a delete need not land on any particular number).
        if seq - token.prunedSeq > Connection.tombstoneWindow + 1024 {
            let pruned = seq - Connection.tombstoneWindow
            try run("DELETE FROM tombstones WHERE seq <= ?") { try $0.bind(1, pruned) }
            try run("UPDATE token SET pruned_seq = ? WHERE id = 1") { try $0.bind(1, pruned) }
            token.prunedSeq = pruned
        }
        removeFromMirror(uniqueID)
        return seq
    }

    /// Records our own committed change so the next data_version check does not re-read it.
    func didCommit(seq: Int64) {
        token.seq = seq
        lastSeq = seq
    }

    // MARK: PIN envelopes

    func loadEnvelope(_ role: Role) throws -> PINEnvelope? {
        try withStatement("SELECT salt, log2n, r, p, sealed, failed, max_attempts FROM pin WHERE role = ?") { stmt in
            try stmt.bind(1, role.rawValue)
            guard try stmt.step() else { return nil }
            return PINEnvelope(salt: stmt.blob(0), log2N: Self.clampCount(stmt.int(1)),
                               r: Self.clampCount(stmt.int(2)), p: Self.clampCount(stmt.int(3)),
                               sealed: stmt.blob(4), failed: Self.clampCount(stmt.int(5)),
                               maxAttempts: Self.clampCount(stmt.int(6)))
        }
    }

    func storeEnvelope(_ role: Role, _ e: PINEnvelope) throws {
        try run("""
            INSERT INTO pin (role, kdf, salt, log2n, r, p, sealed, failed, max_attempts) VALUES (?, 'scrypt', ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (role) DO UPDATE SET kdf = excluded.kdf, salt = excluded.salt, log2n = excluded.log2n,
                r = excluded.r, p = excluded.p, sealed = excluded.sealed, failed = excluded.failed,
                max_attempts = excluded.max_attempts
            """) { stmt in
            try stmt.bind(1, role.rawValue)
            try stmt.bind(2, e.salt)
            try stmt.bind(3, Int64(e.log2N))
            try stmt.bind(4, Int64(e.r))
            try stmt.bind(5, Int64(e.p))
            try stmt.bind(6, e.sealed)
            try stmt.bind(7, Int64(e.failed))
            try stmt.bind(8, Int64(e.maxAttempts))
        }
        try clearAttempts(role)   // attempts on the replaced envelope count no more
    }

    /// `token.wrapped_root`: the backend blob sealed under the envelope key (nil before initialisation).
    func loadWrappedRoot() throws -> [UInt8]? {
        try withStatement("SELECT wrapped_root FROM token WHERE id = 1") { stmt in
            guard try stmt.step(), !stmt.isNull(0) else { return nil }
            return stmt.blob(0)
        }
    }

    /// Counters and KDF parameters read from the file are clamped to 0...1_000_000 so that a tampered file
    /// cannot make later arithmetic overflow (and trap inside a host process).
    static func clampCount(_ v: Int64) -> Int {
        Int(min(max(v, 0), 1_000_000))
    }

    func setFailed(_ role: Role, _ failed: Int) throws {
        try run("UPDATE pin SET failed = ? WHERE role = ?") { stmt in
            try stmt.bind(1, Int64(failed))
            try stmt.bind(2, role.rawValue)
        }
    }

    // MARK: PIN attempts in flight (schema v5)

    /// Counts an attempt before its KDF runs: returns its row id.
    func beginAttempt(_ role: Role, now: Int64) throws -> Int64 {
        try withStatement("INSERT INTO pin_attempts (role, started) VALUES (?, ?) RETURNING id") { stmt in
            try stmt.bind(1, role.rawValue)
            try stmt.bind(2, now)
            guard try stmt.step() else { throw StoreError.corrupt("no id for a PIN attempt") }
            let id = stmt.int(0)
            while try stmt.step() {}
            return id
        }
    }

    /// Ends an attempt; false if its row was gone (expired into a failure, or the PIN was reset meanwhile).
    func endAttempt(_ id: Int64) throws -> Bool {
        try run("DELETE FROM pin_attempts WHERE id = ?") { try $0.bind(1, id) }
        return driver.changes > 0
    }

    /// Attempts of `role` in flight, after removing those started before `staleBefore`; returns both counts.
    func attemptsInFlight(_ role: Role, staleBefore: Int64) throws -> (live: Int, expired: Int) {
        try run("DELETE FROM pin_attempts WHERE role = ? AND started < ?") { stmt in
            try stmt.bind(1, role.rawValue)
            try stmt.bind(2, staleBefore)
        }
        let expired = driver.changes
        let live = try withStatement("SELECT count(*) FROM pin_attempts WHERE role = ?") { stmt in
            try stmt.bind(1, role.rawValue)
            return try stmt.step() ? Self.clampCount(stmt.int(0)) : 0
        }
        return (live, expired)
    }

    func clearAttempts(_ role: Role) throws {
        try run("DELETE FROM pin_attempts WHERE role = ?") { try $0.bind(1, role.rawValue) }
    }
}
