import CryptoCore
import CSQLite
import KeyWrap
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One token's database, shared safely by threads and processes: SQLite (`<directory>/token.sqlite`, WAL mode,
/// `SQLiteDriver`) or, not yet from a configuration, a PostgreSQL schema (`PostgresDriver`); everything here talks
/// to it through `SQLDriver`.
///
/// Every call first reads the driver's change marker (SQLite: `PRAGMA data_version`, one cached statement); if
/// another connection committed since, the in-memory mirror of the token row and objects is refreshed
/// incrementally. Every write is one write transaction (SQLite: `BEGIN IMMEDIATE … COMMIT`) committed before the
/// call returns (durable against a crash of the process: WAL with synchronous=NORMAL; see docs/storage-format.md).
/// `find(matching:)` is served from the mirror through hash indexes on the attribute types named at open time.
///
/// Fork: a child process must not use or close the parent's connection — call `abandonAfterFork()` on every
/// inherited instance, drop it, and open a new one.
public final class TokenDatabase: Sendable {
    /// File name inside the token directory.
    public static let fileName = "token.sqlite"
    /// Current storage format version (schema + record layouts).
    /// 2: authenticated objects and state (object and state MACs, generation); a format-1 file is migrated at
    /// its first login (`authenticateAtLogin`).
    public static let formatVersion = 2
    /// Longest accepted unique id, in UTF-8 bytes.
    public static let maximumUniqueIDLength = 256

    /// Full path of the database file.
    public let path: String
    /// Attribute types with a hash index in the mirror (e.g. CKA_CLASS 0x0, CKA_LABEL 0x3, CKA_ID 0x102).
    public let indexedAttributeTypes: Set<UInt>

    let state: Mutex<ConnectionSlot>
    /// Which objects without a MAC the next login authenticates (docs/storage-format.md §Authentication): by
    /// default those with no sealed attribute. Cryptoki narrows it to what a session without login can create.
    public let admitsUnauthenticated: @Sendable (StoredObject) -> Bool
    /// Where the monotonic state is also recorded (nil: nowhere else — tests, and stores opened for copying).
    public let anchor: TokenAnchor?

    /// Opens (creating if needed) `<directory>/token.sqlite`; creates `directory` (mode 0700) if missing.
    /// Before anything is opened, the directory and the database files that exist (main file, `-wal`, `-shm`) must
    /// pass `TrustedFile` (owner root or the calling user; neither they nor a directory above them writable by
    /// group or others; symlinks resolved), else `.untrustedStore` naming the path. A new database file is
    /// created 0600 (its WAL and shared-memory files inherit that mode).
    /// - Parameters:
    ///   - indexedAttributes: public attribute types `find` should serve from a hash index.
    ///   - busyTimeoutMilliseconds: how long a write waits for another process's write lock.
    ///   - anchor: the second location of the token's generation and retry counters (`TokenAnchor`).
    ///   - admitsUnauthenticated: see the property.
    public init(directory: String, indexedAttributes: Set<UInt>, busyTimeoutMilliseconds: Int32 = 10_000,
                anchor: TokenAnchor? = nil,
                admitsUnauthenticated: @escaping @Sendable (StoredObject) -> Bool = { $0.sealedAttributes.isEmpty }) throws {
        self.anchor = anchor
        self.admitsUnauthenticated = admitsUnauthenticated
        guard !directory.isEmpty else { throw StoreError.invalidArgument("empty token directory") }
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw StoreError.database(code: SQLITE_CANTOPEN, message: "cannot create directory \(directory) (errno \(errno))")
        }
        self.path = directory.hasSuffix("/") ? directory + Self.fileName : directory + "/" + Self.fileName
        if let problem = Self.trustProblem(directory: directory, database: path) { throw StoreError.untrustedStore(problem) }
        self.indexedAttributeTypes = indexedAttributes
        let driver = try SQLiteDriver(path: path, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
        self.state = Mutex(ConnectionSlot(try Connection(driver: driver, indexed: indexedAttributes)))
    }

    /// A store on a PostgreSQL schema (`PostgresDriver`; `connect` again after a lost connection), for the storage
    /// tests and `tg-store-bench` until a configuration can name one (docs/plans/postgresql-store.md, M2). `path`
    /// is then `postgresql:<schema>`. Nothing connects until the first call (a server that is down then makes that
    /// call fail, not the opening), so that opening every configured token at C_Initialize never waits on a server.
    public init(postgres connect: @escaping () throws -> PostgresConnection, schema: String, indexedAttributes: Set<UInt>,
         anchor: TokenAnchor? = nil,
         admitsUnauthenticated: @escaping @Sendable (StoredObject) -> Bool = { $0.sealedAttributes.isEmpty }) throws {
        self.anchor = anchor
        self.admitsUnauthenticated = admitsUnauthenticated
        self.path = "postgresql:" + schema
        self.indexedAttributeTypes = indexedAttributes
        let driver = try PostgresDriver(schema: schema, connect: connect)
        self.state = Mutex(ConnectionSlot(driver: driver) { try Connection(driver: driver, indexed: indexedAttributes) })
    }

    /// Runs `body` with the connection locked, made first if this is the first call.
    func withConnection<R>(_ body: (Connection) throws -> R) throws -> R {
        try state.withLock { slot in try body(try slot.connection()) }
    }

    /// Why the store in `directory` (database file `database`) must not be used, or nil: `TrustedFile` on the
    /// directory, then on each database file that exists.
    static func trustProblem(directory: String, database: String) -> String? {
        if let problem = TrustedFile.problem(directory) { return problem }
        for file in [database, database + "-wal", database + "-shm"] {
            var st = stat()
            guard lstat(file, &st) == 0 else { continue }
            if let problem = TrustedFile.problem(file) {
                // Another process's checkpoint or close may remove its -wal/-shm between lstat and the check.
                if file != database, lstat(file, &st) != 0, errno == ENOENT { continue }
                return problem
            }
        }
        return nil
    }

    /// Runs `body` with the connection locked and the mirror fresh.
    func read<R: Sendable>(_ body: (Connection) throws -> R) throws -> R {
        try withConnection { conn in
            try conn.refreshIfChanged()
            return try body(conn)
        }
    }

    /// Runs `body` in a write transaction with the connection locked and the mirror fresh; after the commit, the
    /// token's generation and retry counters go to the anchor when they changed.
    func write<R: Sendable>(_ body: (Connection) throws -> R) throws -> R {
        try withConnection { conn in
            try conn.checkUsable()
            let result = try conn.writeTransaction {
                try conn.refreshIfChanged()
                return try body(conn)
            }
            recordAnchor(conn)
            return result
        }
    }

    /// For a forked child: marks the inherited connection unusable and leaks it (closing it in the child could
    /// checkpoint or delete the parent's WAL). Every later call throws.
    public func abandonAfterFork() {
        state.withLock { $0.driver.abandon() }   // made or not: the driver is the slot's from the start
    }

    // MARK: Token record

    /// The token row (fresh: re-read if another process changed it).
    public func tokenRecord() throws -> TokenRecord {
        try read { $0.token.record }
    }

    /// Persists caller-owned token flag bits.
    public func setTokenFlags(_ flags: UInt64) throws {
        try write { conn in
            try conn.run("UPDATE token SET flags = ? WHERE id = 1") { try $0.bind(1, Int64(bitPattern: flags)) }
            conn.token.record.flags = flags
        }
    }

    // MARK: Objects

    /// A fresh random unique id (32 lowercase hex characters).
    public static func newUniqueID() throws -> String {
        do {
            return Hex.encode(try SecureRandom.bytes(16))
        } catch let e as CryptoError {
            throw StoreError.crypto(e)
        }
    }

    /// Inserts a new token object in one committed transaction. `secretAttributes` are sealed with `keys`
    /// (required when non-empty, else `.notLoggedIn`). With `keys` the row is authenticated (its MAC and a new
    /// state generation, after the current state is checked: `.tampered`); without, it is written with no MAC
    /// and authenticated at the next login. A type may not be both public and secret (`.invalidArgument`).
    /// Existing `uniqueID` → `.duplicateObject`. The token must be initialised.
    @discardableResult
    public func insert(uniqueID: String, publicAttributes: [UInt: [UInt8]], secretAttributes: [UInt: SecretBytes] = [:],
                       keys: SessionKeys?) throws -> StoredObject {
        try Self.validate(uniqueID: uniqueID, publicAttributes: publicAttributes, secretTypes: Set(secretAttributes.keys))
        let sealed = try Self.seal(secretAttributes, uniqueID: uniqueID, keys: keys)
        let key = try keys.map { try StoreAuthentication.key($0) }
        return try write { conn in
            guard conn.token.record.isInitialized else { throw StoreError.tokenNotInitialized }
            if let keys, keys.tokenUUID != conn.token.record.tokenUUID { throw StoreError.notLoggedIn }
            guard conn.objects[uniqueID] == nil else { throw StoreError.duplicateObject(uniqueID) }
            if let key { try conn.checkState(key: key) }
            let seq = conn.nextSeq()
            let object = StoredObject(uniqueID: uniqueID, publicAttributes: publicAttributes, sealedAttributes: sealed, sequence: seq)
            let stored = try conn.writeObject(object, created: seq, key: key, insert: true)   // mirror: a failed COMMIT reloads
            conn.didCommit(seq: seq)
            return stored
        }
    }

    /// Replaces the object's public attribute set, and its secret set unless `secretAttributes` is nil
    /// (nil keeps the existing sealed values — e.g. a label change). One committed transaction. An authenticated
    /// object needs `keys` (`.notLoggedIn`) and must verify before it is rewritten (`.tampered`).
    @discardableResult
    public func update(uniqueID: String, publicAttributes: [UInt: [UInt8]], secretAttributes: [UInt: SecretBytes]?,
                       keys: SessionKeys?) throws -> StoredObject {
        let newSealed: [UInt: SealedValue]?
        if let secretAttributes {
            try Self.validate(uniqueID: uniqueID, publicAttributes: publicAttributes, secretTypes: Set(secretAttributes.keys))
            newSealed = try Self.seal(secretAttributes, uniqueID: uniqueID, keys: keys)
        } else {
            try Self.validate(uniqueID: uniqueID, publicAttributes: publicAttributes, secretTypes: [])
            newSealed = nil
        }
        let key = try keys.map { try StoreAuthentication.key($0) }
        let updated = try write { conn in
            guard let existing = conn.objects[uniqueID] else { throw StoreError.objectNotFound(uniqueID) }
            if let keys, keys.tokenUUID != conn.token.record.tokenUUID { throw StoreError.notLoggedIn }
            try conn.checkRewrite(existing.object, key: key, admits: admitsUnauthenticated)
            let sealed = newSealed ?? existing.object.sealedAttributes
            if newSealed == nil, !Set(sealed.keys).isDisjoint(with: publicAttributes.keys) {
                throw StoreError.invalidArgument("attribute type both public and secret")
            }
            if key == nil, !sealed.isEmpty { throw StoreError.notLoggedIn }
            let seq = conn.nextSeq()
            let object = StoredObject(uniqueID: uniqueID, publicAttributes: publicAttributes, sealedAttributes: sealed, sequence: seq)
            let stored = try conn.writeObject(object, created: existing.created, key: key, insert: false)
            conn.didCommit(seq: seq)
            return stored
        }
        if newSealed != nil { checkpoint() }   // the superseded sealed values leave the WAL
        return updated
    }

    /// Deletes the object (committed before returning), then checkpoints the WAL (`checkpoint()`): with
    /// secure_delete the row's bytes are zeroed in the main file, and the WAL frames that still held them are
    /// copied back and the WAL truncated, so the sealed value is in neither file. Missing → `.objectNotFound`; an
    /// authenticated object needs `keys` (`.notLoggedIn`), and the state must verify (`.tampered`).
    public func delete(uniqueID: String, keys: SessionKeys?) throws {
        let key = try keys.map { try StoreAuthentication.key($0) }
        try write { conn in
            guard let existing = conn.objects[uniqueID] else { throw StoreError.objectNotFound(uniqueID) }
            if let keys, keys.tokenUUID != conn.token.record.tokenUUID { throw StoreError.notLoggedIn }
            if let key {
                try conn.checkState(key: key)
            } else if existing.object.isAuthenticated {
                throw StoreError.notLoggedIn
            }
            let seq = try conn.deleteObject(uniqueID)
            if let key { try conn.stampState(key: key) }
            conn.didCommit(seq: seq)
        }
        checkpoint()
    }

    /// The object, or nil.
    public func object(uniqueID: String) throws -> StoredObject? {
        try read { $0.objects[uniqueID]?.object }
    }

    /// The object's current change number, or nil when it no longer exists — as fresh as `object(uniqueID:)`
    /// (one change-marker read, the mirror refreshed if another connection committed) without copying the
    /// record out: what a cache of decoded records or unsealed values checks before each use.
    public func sequence(uniqueID: String) throws -> Int64? {
        try read { $0.objects[uniqueID]?.object.sequence }
    }

    /// Every object, in creation order (oldest first).
    public func allObjects() throws -> [StoredObject] {
        try read { conn in conn.orderedIDs().compactMap { conn.objects[$0]?.object } }
    }

    /// Objects whose public attributes contain every (type, value) of `template` (byte-exact), in creation
    /// order. Uses the hash index of an indexed type in the template (smallest candidate set); only a template
    /// with no indexed type falls back to scanning the mirror. Empty template → all objects.
    public func find(matching template: [UInt: [UInt8]]) throws -> [StoredObject] {
        try read { conn in
            var best: Set<String>? = nil
            for (type, value) in template where conn.indexed.contains(type) {
                let hits = conn.index[type]?[value] ?? []
                if hits.isEmpty { return [] }
                if best == nil || hits.count < (best?.count ?? Int.max) { best = hits }
            }
            func matches(_ o: StoredObject) -> Bool {
                for (type, value) in template where o.publicAttributes[type] != value { return false }
                return true
            }
            if let best {
                var found: [(Int64, StoredObject)] = []
                found.reserveCapacity(best.count)
                for id in best {
                    if let e = conn.objects[id], matches(e.object) { found.append((e.created, e.object)) }
                }
                return found.sorted { ($0.0, $0.1.uniqueID) < ($1.0, $1.1.uniqueID) }.map(\.1)
            }
            return conn.orderedIDs().compactMap { id in conn.objects[id].flatMap { matches($0.object) ? $0.object : nil } }
        }
    }

    /// `find(matching:)` for a logged-in caller: only objects whose rows verify under `keys` (`verifiedObject`);
    /// the unique ids of matching rows that do not are returned apart (never used).
    public func findVerified(matching template: [UInt: [UInt8]], keys: SessionKeys) throws -> (found: [StoredObject], failed: [String]) {
        let key = try StoreAuthentication.key(keys)
        let candidates = try find(matching: template)
        return try read { conn in
            guard keys.tokenUUID == conn.token.record.tokenUUID else { throw StoreError.notLoggedIn }
            var found: [StoredObject] = []
            var failed: [String] = []
            found.reserveCapacity(candidates.count)
            for object in candidates {
                guard let entry = conn.objects[object.uniqueID] else { continue }
                if !entry.object.isAuthenticated, admitsUnauthenticated(entry.object) {
                    found.append(entry.object)   // a public object another process wrote without a login
                    continue
                }
                do {
                    try conn.checkObject(object.uniqueID, key: key)
                    found.append(entry.object)
                } catch StoreError.tampered {
                    failed.append(object.uniqueID)
                }
            }
            return (found, failed)
        }
    }

    /// Unseals one secret attribute of the object `object` names, from its current stored row once that row verifies
    /// (`verifiedObject`; another process may have committed a newer version since `object` was read — say a use
    /// counter — and that one is used). Nothing of a row that does not verify is opened. Missing type →
    /// `.invalidArgument`; tampered row → `.tampered`; tampered or moved value → `.integrityFailure`.
    public func unseal(_ object: StoredObject, attribute type: UInt, keys: SessionKeys) throws -> SecretBytes {
        guard let current = try verifiedObject(uniqueID: object.uniqueID, keys: keys) else {
            throw StoreError.objectNotFound(object.uniqueID)
        }
        guard let sealed = current.sealedAttributes[type] else { throw StoreError.invalidArgument("attribute \(type) is not sealed in this object") }
        return try keys.unseal(sealed, uniqueID: object.uniqueID, attribute: type)
    }

    /// The object if its stored row verifies under `keys` (checked once per change number) or is one written
    /// without a login that the store admits (`admitsUnauthenticated`; nothing sealed), nil when it does not exist;
    /// `.tampered` otherwise. What a logged-in caller uses before trusting any attribute.
    public func verifiedObject(uniqueID: String, keys: SessionKeys) throws -> StoredObject? {
        let key = try StoreAuthentication.key(keys)
        return try read { conn in
            guard keys.tokenUUID == conn.token.record.tokenUUID else { throw StoreError.notLoggedIn }
            guard let entry = conn.objects[uniqueID] else { return nil }
            if !entry.object.isAuthenticated, admitsUnauthenticated(entry.object) { return entry.object }
            try conn.checkObject(uniqueID, key: key)
            return entry.object
        }
    }

    /// Marks `digests` (of N2HE seed streams) spent under the ledger `ledgerID` (one per key value, shared by every
    /// copy of the key), all or none, in one committed transaction: true when none was spent before, false
    /// (nothing written) when one was. Two processes racing on one seed serialise on the write lock, so exactly one
    /// of them gets true. Ledgers outlive the objects (a key destroyed and unwrapped again keeps its spent seeds);
    /// only C_InitToken empties them. The state is checked first, each new row's MAC goes into the ledger digest
    /// and one more generation is stamped: a store copied back with fewer spent seeds is a rollback, and a row
    /// deleted from the file fails the next login (docs/storage-format.md §Authentication).
    public func spendSeeds(ledgerID: String, digests: [[UInt8]], keys: SessionKeys) throws -> Bool {
        guard Set(digests).count == digests.count else { return false }
        let uniqueID = ledgerID
        let key = try StoreAuthentication.key(keys)
        return try write { conn in
            guard conn.token.record.tokenUUID == keys.tokenUUID else { throw StoreError.notLoggedIn }
            try conn.checkState(key: key)
            var ledger = try conn.token.ledgerDigest ?? conn.computedLedgerDigest(key: key)
            for d in digests {
                let spent = try conn.withStatement("SELECT 1 FROM spent_seeds WHERE unique_id = ? AND digest = ?") { stmt in
                    try stmt.bind(1, uniqueID)
                    try stmt.bind(2, d)
                    return try stmt.step()
                }
                if spent { return false }
            }
            for d in digests {
                try conn.run("INSERT INTO spent_seeds (unique_id, digest) VALUES (?, ?)") { s in
                    try s.bind(1, uniqueID)
                    try s.bind(2, d)
                }
                StoreAuthentication.xor(&ledger, try StoreAuthentication.ledgerRowMAC(key: key, ledger: uniqueID, seedDigest: d))
            }
            try conn.setLedgerDigest(ledger)
            try conn.stampState(key: key)
            return true
        }
    }

    /// Counts one call under the ledger `ledgerID` in `hour` (hours since 1970) unless `limit` calls were counted
    /// already: true when counted. One committed transaction, exact across processes; older hours are pruned.
    /// Checked, entered in the ledger digest and stamped like `spendSeeds`.
    public func chargeHourlyCall(ledgerID: String, hour: Int64, limit: Int, keys: SessionKeys) throws -> Bool {
        let uniqueID = ledgerID
        let key = try StoreAuthentication.key(keys)
        return try write { conn in
            guard conn.token.record.tokenUUID == keys.tokenUUID else { throw StoreError.notLoggedIn }
            try conn.checkState(key: key)
            var ledger = try conn.token.ledgerDigest ?? conn.computedLedgerDigest(key: key)
            let calls: Int64 = try conn.withStatement("SELECT calls FROM hourly_calls WHERE unique_id = ? AND hour = ?") { stmt in
                try stmt.bind(1, uniqueID)
                try stmt.bind(2, hour)
                return try stmt.step() ? stmt.int(0) : 0
            }
            guard calls < Int64(limit) else { return false }
            // The rows that go (older hours, and this hour's old count) leave the digest; the new count enters it.
            try conn.withStatement("SELECT hour, calls FROM hourly_calls WHERE unique_id = ? AND hour <= ?") { stmt in
                try stmt.bind(1, uniqueID)
                try stmt.bind(2, hour)
                while try stmt.step() {
                    StoreAuthentication.xor(&ledger, try StoreAuthentication.ledgerRowMAC(
                        key: key, ledger: uniqueID, hour: stmt.int(0), calls: stmt.int(1)))
                }
            }
            StoreAuthentication.xor(&ledger, try StoreAuthentication.ledgerRowMAC(key: key, ledger: uniqueID, hour: hour,
                                                                                  calls: calls + 1))
            try conn.run("DELETE FROM hourly_calls WHERE unique_id = ? AND hour < ?") { s in
                try s.bind(1, uniqueID)
                try s.bind(2, hour)
            }
            try conn.run("""
                INSERT INTO hourly_calls (unique_id, hour, calls) VALUES (?, ?, ?)
                ON CONFLICT (unique_id, hour) DO UPDATE SET calls = excluded.calls
                """) { s in
                try s.bind(1, uniqueID)
                try s.bind(2, hour)
                try s.bind(3, calls + 1)
            }
            try conn.setLedgerDigest(ledger)
            try conn.stampState(key: key)
            return true
        }
    }

    /// How many seeds the ledger holds.
    public func spentSeedCount(ledgerID: String) throws -> Int {
        try read { conn in
            try conn.withStatement("SELECT count(*) FROM spent_seeds WHERE unique_id = ?") { stmt in
                try stmt.bind(1, ledgerID)
                guard try stmt.step() else { return 0 }
                return Int(stmt.int(0))
            }
        }
    }

    /// Number of token objects.
    public func objectCount() throws -> Int {
        try read { $0.objects.count }
    }

    // MARK: helpers

    static func validate(uniqueID: String, publicAttributes: [UInt: [UInt8]], secretTypes: Set<UInt>) throws {
        guard !uniqueID.isEmpty, uniqueID.utf8.count <= maximumUniqueIDLength else {
            throw StoreError.invalidArgument("unique id must be 1...\(maximumUniqueIDLength) bytes")
        }
        guard secretTypes.isDisjoint(with: publicAttributes.keys) else {
            throw StoreError.invalidArgument("attribute type both public and secret")
        }
    }

    static func seal(_ secrets: [UInt: SecretBytes], uniqueID: String, keys: SessionKeys?) throws -> [UInt: SealedValue] {
        guard !secrets.isEmpty else { return [:] }
        guard let keys else { throw StoreError.notLoggedIn }
        var out: [UInt: SealedValue] = [:]
        for (type, value) in secrets { out[type] = try keys.seal(value, uniqueID: uniqueID, attribute: type) }
        return out
    }
}

extension TokenDatabase {
    /// `wal_checkpoint(TRUNCATE)`, run after every change that supersedes a secret (object destroyed, sealed
    /// values replaced, PIN envelope resealed, token re-initialised, root key re-wrapped): every WAL frame is copied
    /// into the main file, where secure_delete has zeroed the superseded bytes, and the WAL is truncated to zero
    /// bytes, so no old sealed value or PIN envelope survives in `token.sqlite` or `token.sqlite-wal`. The change
    /// itself is already committed; true when the WAL is now empty. False when another connection's read
    /// transaction kept it busy beyond the busy timeout: the frames then stay until the next checkpoint that
    /// succeeds (the next such change, or the last connection closing).
    @discardableResult
    public func checkpoint() -> Bool {
        state.withLock { slot in
            guard let conn = slot.made, !conn.abandoned, !conn.inTransaction else { return false }
            return conn.driver.flushSupersededSecrets()
        }
    }
}

/// The connection of a `TokenDatabase`: made at opening (SQLite) or at the first call (PostgreSQL, whose server may
/// be down when the module opens its tokens). Used only under `TokenDatabase.state`'s mutex.
final class ConnectionSlot: @unchecked Sendable {
    let driver: any SQLDriver
    private(set) var made: Connection?
    private let make: () throws -> Connection

    init(_ connection: Connection) {
        driver = connection.driver
        made = connection
        make = { connection }
    }

    init(driver: any SQLDriver, make: @escaping () throws -> Connection) {
        self.driver = driver
        self.make = make
    }

    func connection() throws -> Connection {
        if let made { return made }
        let connection = try make()
        made = connection
        return connection
    }
}
