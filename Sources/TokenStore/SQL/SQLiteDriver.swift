import CSQLite
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The SQLite store: one file (`token.sqlite`) in WAL mode, opened once per process. Never binds or logs secret
/// cleartext: everything secret that reaches SQLite is already sealed.
final class SQLiteDriver: SQLDriver {
    let db: OpaquePointer
    private var statements: [String: SQLiteStatement] = [:]
    private var dataVersion: SQLiteStatement?
    private(set) var isAbandoned = false

    /// Opens (creating it 0600 if absent) the database at `path`: WAL, `synchronous=NORMAL`, foreign keys,
    /// `secure_delete`, and `busyTimeoutMilliseconds` for the write lock.
    init(path: String, busyTimeoutMilliseconds: Int32) throws {
        var handle: OpaquePointer?
        // A new file is private to the owner from its first byte (created here 0600, not by SQLite with 0644 and
        // narrowed later); the WAL and SHM files inherit the main file's permissions. An existing file keeps
        // whatever the operator chose within the ownership rule (TokenDatabase.init: e.g. group read access).
        let created = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if created >= 0 { close(created) }
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let h = handle else {
            let message = (handle.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) } ?? "cannot open")
                + " " + path + Self.systemError(handle)
            if let h = handle { sqlite3_close_v2(h) }
            throw StoreError.database(code: rc, message: message)
        }
        db = h
        // From here on `self` is complete: a throw runs deinit, which closes the handle.
        sqlite3_busy_timeout(db, max(0, busyTimeoutMilliseconds))
        sqlite3_extended_result_codes(db, 1)
        try exec("PRAGMA journal_mode=WAL")
        try exec("PRAGMA synchronous=NORMAL")
        try exec("PRAGMA foreign_keys=ON")
        try exec("PRAGMA secure_delete=ON")
    }

    deinit {
        guard !isAbandoned else { return }   // after fork: never touch the parent's SQLite state
        for (_, s) in statements { sqlite3_finalize(s.stmt) }
        sqlite3_close_v2(db)
    }

    func abandon() { isAbandoned = true }

    // MARK: errors

    func error(_ rc: Int32) -> StoreError {
        let primary = rc & 0xff
        if primary == SQLITE_BUSY || primary == SQLITE_LOCKED { return .busy }
        let message: String
        if let m = sqlite3_errmsg(db) { message = String(cString: m) } else { message = "unknown" }
        if primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB { return .corrupt(message) }
        return .database(code: sqlite3_extended_errcode(db), message: message + Self.systemError(db))
    }

    /// " (errno N: text)" when the last failure of `db` came from the operating system (SQLITE_CANTOPEN,
    /// SQLITE_IOERR, SQLITE_FULL, ...), else "": the code alone does not say which file or why.
    static func systemError(_ db: OpaquePointer?) -> String {
        guard let db else { return "" }
        let e = sqlite3_system_errno(db)
        guard e != 0 else { return "" }
        return " (errno \(e): \(String(cString: strerror(e))))"
    }

    // MARK: statements

    func exec(_ sql: String) throws {
        let rc = sqlite3_exec(db, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw error(rc) }
    }

    /// A cached prepared statement (prepared once per connection, reset after each use).
    private func prepare(_ sql: String) throws -> SQLiteStatement {
        if let s = statements[sql] { return s }
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let s = stmt else { throw error(rc) }
        let statement = SQLiteStatement(s, driver: self)
        statements[sql] = statement
        return statement
    }

    func withStatement<R>(_ sql: String, _ body: (any SQLStatement) throws -> R) throws -> R {
        let statement = try prepare(sql)
        defer {
            sqlite3_reset(statement.stmt)
            sqlite3_clear_bindings(statement.stmt)
        }
        return try body(statement)
    }

    var changes: Int { Int(sqlite3_changes(db)) }

    // MARK: transactions

    /// `BEGIN IMMEDIATE`: the database write lock up front.
    func beginWrite() throws { try run("BEGIN IMMEDIATE") }
    func beginRead() throws { try run("BEGIN") }
    func commit() throws -> Int64? {
        try run("COMMIT")
        return nil
    }
    func rollback() { _ = try? run("ROLLBACK") }

    private func run(_ sql: String) throws {
        try withStatement(sql) { s in while try s.step() {} }
    }

    // MARK: what SQLite does its own way

    /// `PRAGMA data_version`: free (from the shared-memory WAL index), changes when another connection commits.
    /// Read before every call, so its statement is kept at hand rather than looked up by its text.
    func changeMarker() throws -> Int64 {
        let s = try dataVersion ?? prepare("PRAGMA data_version")
        dataVersion = s
        defer { sqlite3_reset(s.stmt) }
        guard try s.step() else { throw StoreError.corrupt("no data_version") }
        return s.int(0)
    }

    /// `wal_checkpoint(TRUNCATE)`: every WAL frame is copied into the main file, where secure_delete has zeroed
    /// the superseded bytes, and the WAL is truncated to zero bytes. False when another connection's read
    /// transaction kept it busy beyond the busy timeout.
    func flushSupersededSecrets() -> Bool {
        var logFrames: Int32 = -1, checkpointed: Int32 = -1
        let rc = sqlite3_wal_checkpoint_v2(db, nil, SQLITE_CHECKPOINT_TRUNCATE, &logFrames, &checkpointed)
        return rc == SQLITE_OK && logFrames == 0
    }

    /// `VACUUM INTO`: no free pages, so no residue of deleted rows; other processes keep reading and writing.
    func snapshot(into path: String) throws {
        try withStatement("VACUUM INTO ?") { s in
            try s.bind(1, path)
            while try s.step() {}
        }
    }

    func integrityCheck() throws -> [String] {
        try withStatement("PRAGMA integrity_check") { s in
            var rows: [String] = []
            while try s.step() { rows.append(s.text(0)) }
            return rows
        }
    }
}

@inline(__always)
private var sqliteTransient: sqlite3_destructor_type { unsafeBitCast(-1, to: sqlite3_destructor_type.self) }

/// One cached SQLite prepared statement.
final class SQLiteStatement: SQLStatement {
    let stmt: OpaquePointer
    private unowned let driver: SQLiteDriver

    init(_ stmt: OpaquePointer, driver: SQLiteDriver) {
        self.stmt = stmt
        self.driver = driver
    }

    private func check(_ rc: Int32) throws {
        guard rc == SQLITE_OK else { throw driver.error(rc) }
    }

    func bind(_ index: Int32, _ value: Int64) throws { try check(sqlite3_bind_int64(stmt, index, value)) }
    func bindNull(_ index: Int32) throws { try check(sqlite3_bind_null(stmt, index)) }
    func bind(_ index: Int32, _ value: String) throws { try check(sqlite3_bind_text(stmt, index, value, -1, sqliteTransient)) }

    func bind(_ index: Int32, _ value: [UInt8]) throws {
        if value.isEmpty { return try check(sqlite3_bind_zeroblob(stmt, index, 0)) }
        guard value.count <= Int(Int32.max) else { throw StoreError.invalidArgument("value too large") }
        try check(value.withUnsafeBytes { sqlite3_bind_blob(stmt, index, $0.baseAddress, Int32(value.count), sqliteTransient) })
    }

    func step() throws -> Bool {
        let rc = sqlite3_step(stmt)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        throw driver.error(rc)
    }

    func int(_ column: Int32) -> Int64 { sqlite3_column_int64(stmt, column) }

    func text(_ column: Int32) -> String {
        guard let p = sqlite3_column_text(stmt, column) else { return "" }
        return String(cString: p)
    }

    func blob(_ column: Int32) -> [UInt8] {
        let n = Int(sqlite3_column_bytes(stmt, column))
        guard n > 0, let p = sqlite3_column_blob(stmt, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }

    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(stmt, column) == SQLITE_NULL }
}
