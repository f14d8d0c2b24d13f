import CSQLite
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Thin SQLite helpers used by `Connection`. Never binds or logs secret cleartext: everything secret that
/// reaches SQLite is already sealed.
@inline(__always)
var sqliteTransient: sqlite3_destructor_type { unsafeBitCast(-1, to: sqlite3_destructor_type.self) }

extension Connection {
    func sqliteError(_ rc: Int32) -> StoreError {
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

    /// Runs SQL text with no parameters (schema, pragmas). Not for hot paths.
    func exec(_ sql: String) throws {
        let rc = sqlite3_exec(db, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw sqliteError(rc) }
    }

    /// A cached prepared statement (prepared once per connection, reset after each use).
    func prepare(_ sql: String) throws -> OpaquePointer {
        if let s = statements[sql] { return s }
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let s = stmt else { throw sqliteError(rc) }
        statements[sql] = s
        return s
    }

    /// Prepares (cached), runs `body`, then resets and clears bindings whatever happens.
    func withStatement<R>(_ sql: String, _ body: (OpaquePointer) throws -> R) throws -> R {
        let stmt = try prepare(sql)
        defer {
            sqlite3_reset(stmt)
            sqlite3_clear_bindings(stmt)
        }
        return try body(stmt)
    }

    /// Steps once: true for a row, false when done.
    func step(_ stmt: OpaquePointer) throws -> Bool {
        let rc = sqlite3_step(stmt)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        throw sqliteError(rc)
    }

    /// Runs a statement to completion.
    func run(_ sql: String, _ binder: (OpaquePointer) throws -> Void = { _ in }) throws {
        try withStatement(sql) { stmt in
            try binder(stmt)
            while try step(stmt) {}
        }
    }

    func bind(_ stmt: OpaquePointer, _ index: Int32, _ value: Int64) throws {
        let rc = sqlite3_bind_int64(stmt, index, value)
        guard rc == SQLITE_OK else { throw sqliteError(rc) }
    }

    func bindNull(_ stmt: OpaquePointer, _ index: Int32) throws {
        let rc = sqlite3_bind_null(stmt, index)
        guard rc == SQLITE_OK else { throw sqliteError(rc) }
    }

    func bind(_ stmt: OpaquePointer, _ index: Int32, _ value: String) throws {
        let rc = sqlite3_bind_text(stmt, index, value, -1, sqliteTransient)
        guard rc == SQLITE_OK else { throw sqliteError(rc) }
    }

    func bind(_ stmt: OpaquePointer, _ index: Int32, _ value: [UInt8]) throws {
        let rc: Int32
        if value.isEmpty {
            rc = sqlite3_bind_zeroblob(stmt, index, 0)
        } else {
            guard value.count <= Int(Int32.max) else { throw StoreError.invalidArgument("value too large") }
            rc = value.withUnsafeBytes { sqlite3_bind_blob(stmt, index, $0.baseAddress, Int32(value.count), sqliteTransient) }
        }
        guard rc == SQLITE_OK else { throw sqliteError(rc) }
    }

    func columnInt(_ stmt: OpaquePointer, _ index: Int32) -> Int64 {
        sqlite3_column_int64(stmt, index)
    }

    func columnText(_ stmt: OpaquePointer, _ index: Int32) -> String {
        guard let p = sqlite3_column_text(stmt, index) else { return "" }
        return String(cString: p)
    }

    func columnBlob(_ stmt: OpaquePointer, _ index: Int32) -> [UInt8] {
        let n = Int(sqlite3_column_bytes(stmt, index))
        guard n > 0, let p = sqlite3_column_blob(stmt, index) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }

    func columnIsNull(_ stmt: OpaquePointer, _ index: Int32) -> Bool {
        sqlite3_column_type(stmt, index) == SQLITE_NULL
    }

    /// `BEGIN IMMEDIATE … COMMIT` around `body`; rolls back on error. Takes the database write lock up front
    /// (waiting up to the busy timeout), so read-then-write inside `body` is atomic across processes.
    func writeTransaction<R>(_ body: () throws -> R) throws -> R {
        guard !inTransaction else { throw StoreError.database(code: SQLITE_MISUSE, message: "nested transaction") }
        try run("BEGIN IMMEDIATE")
        inTransaction = true
        do {
            let result = try body()
            try run("COMMIT")
            inTransaction = false
            return result
        } catch {
            _ = try? run("ROLLBACK")
            inTransaction = false
            // The mirror may already hold this transaction's changes: force a full re-read on the next call.
            lastDataVersion = .min
            loadedEpoch = -1
            throw error
        }
    }

    /// A read transaction (consistent snapshot) unless already inside a transaction.
    func readTransaction<R>(_ body: () throws -> R) throws -> R {
        if inTransaction { return try body() }
        try run("BEGIN")
        inTransaction = true
        defer {
            _ = try? run("COMMIT")
            inTransaction = false
        }
        return try body()
    }
}
