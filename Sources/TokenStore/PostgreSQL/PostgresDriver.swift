/// The PostgreSQL store's `SQLDriver` (docs/plans/postgresql-store.md §2): one `PostgresConnection` with its
/// `search_path` set to the token's schema alone. Not reachable from a configuration yet (milestone M2 adds the
/// `store:` URI, reconnection and the error codes); the storage tests drive it.
///
/// - Write transactions: `BEGIN` (READ COMMITTED), then a transaction-scoped advisory lock on the schema's name:
///   every writer of the token waits for the one before it, and each statement after the lock sees every commit
///   made before it — what `BEGIN IMMEDIATE` gives on SQLite. `lock_timeout` bounds the wait (→ `.busy`).
/// - Change marker: `token.change`, incremented by every write transaction just before its COMMIT.
/// - Statements: SQLite's `?` placeholders rewritten to `$1, $2, …` once per statement text; parameters and
///   results in binary format.
final class PostgresDriver: SQLDriver {
    let connection: PostgresConnection
    /// The token's schema (`[a-z_][a-z0-9_]{0,62}`, always quoted in SQL).
    let schema: String
    private(set) var changes = 0
    private(set) var isAbandoned = false
    private var statements: [String: PostgresStatement] = [:]
    private var writing = false

    /// - Throws: `.invalidArgument` for a schema name outside `[a-z_][a-z0-9_]{0,62}`; `.database` when the
    ///   session cannot be set up.
    init(connection: PostgresConnection, schema: String, lockTimeoutMilliseconds: Int = 10_000) throws {
        guard Self.validSchemaName(schema) else {
            throw StoreError.invalidArgument("PostgreSQL schema name must match [a-z_][a-z0-9_]{0,62}")
        }
        self.connection = connection
        self.schema = schema
        try call { _ = try connection.query("SELECT pg_catalog.set_config('search_path', $1, false)", [.text("\"\(schema)\"")]) }
        try call {
            _ = try connection.query("SELECT pg_catalog.set_config('lock_timeout', $1, false)",
                                     [.text("\(max(1, lockTimeoutMilliseconds))ms")])
        }
    }

    static func validSchemaName(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard (1...63).contains(u.count), let first = u.first, first == 0x5f || (0x61...0x7a).contains(first) else { return false }
        return u.allSatisfy { $0 == 0x5f || (0x61...0x7a).contains($0) || (0x30...0x39).contains($0) }
    }

    /// Runs `body`, turning a PostgreSQL failure into the store's error (lock timeouts, deadlocks and
    /// serialisation failures are `.busy`).
    func call<R>(_ body: () throws -> R) throws -> R {
        guard !isAbandoned else { throw StoreError.database(code: 21, message: "connection abandoned after fork") }
        do {
            return try body()
        } catch let e as PostgresError {
            if case .statement(let code, _) = e, ["55P03", "40P01", "40001"].contains(code) { throw StoreError.busy }
            throw StoreError.database(code: 0, message: e.description)
        }
    }

    /// One statement, its rows and affected count.
    func run(_ sql: String, _ params: [PostgresValue]) throws -> [[PostgresValue]] {
        let outcome = try call { try connection.statement(sql, params) }
        changes = Int(clamping: outcome.affected)
        return outcome.rows
    }

    func exec(_ sql: String) throws {
        _ = try run(sql, [])
    }

    func withStatement<R>(_ sql: String, _ body: (any SQLStatement) throws -> R) throws -> R {
        let statement: PostgresStatement
        if let s = statements[sql] {
            statement = s
        } else {
            statement = PostgresStatement(Self.numberedPlaceholders(sql), driver: self)
            statements[sql] = statement
        }
        defer { statement.reset() }
        return try body(statement)
    }

    /// `?` → `$1, $2, …`, outside single-quoted literals (the store's SQL has no `?` inside one).
    static func numberedPlaceholders(_ sql: String) -> String {
        var out = ""
        var n = 0
        var quoted = false
        for c in sql {
            if c == "'" { quoted.toggle() }
            if c == "?" && !quoted {
                n += 1
                out += "$\(n)"
            } else {
                out.append(c)
            }
        }
        return out
    }

    // MARK: transactions

    func beginWrite() throws {
        _ = try run("BEGIN", [])
        do {
            _ = try run("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended($1, 0))",
                        [.text("tensorguard-pkcs11:" + schema)])
        } catch {
            rollback()
            throw error
        }
        writing = true
    }

    func beginRead() throws {
        _ = try run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", [])
        writing = false
    }

    func commit() throws {
        if writing {
            writing = false
            _ = try run("UPDATE token SET change = change + 1 WHERE id = 1", [])
        }
        _ = try run("COMMIT", [])
    }

    func rollback() {
        writing = false
        _ = try? run("ROLLBACK", [])
    }

    // MARK: what PostgreSQL does its own way

    func changeMarker() throws -> Int64 {
        guard let row = try run("SELECT change FROM token WHERE id = 1", []).first, case .int8(let v)? = row.first else {
            throw StoreError.corrupt("token row missing")
        }
        return v
    }

    /// Nothing to do, and nothing this client can do: superseded row versions stay in dead tuples until VACUUM,
    /// and in the WAL, archives and replicas (docs/plans/postgresql-store.md §3.1).
    func flushSupersededSecrets() -> Bool { false }

    func snapshot(into path: String) throws {
        throw StoreError.invalidArgument("backups of a PostgreSQL store are not available yet")
    }

    func integrityCheck() throws -> [String] {
        throw StoreError.invalidArgument("PRAGMA integrity_check has no PostgreSQL counterpart")
    }

    func abandon() {
        isAbandoned = true
        connection.abandonAfterFork()
    }
}

/// A statement of `PostgresDriver`: parameters are collected, the statement runs at the first `step()`, and the
/// rows are then read one by one.
final class PostgresStatement: SQLStatement {
    private let sql: String
    private unowned let driver: PostgresDriver
    private var params: [PostgresValue] = []
    private var rows: [[PostgresValue]]?
    private var cursor = -1

    init(_ sql: String, driver: PostgresDriver) {
        self.sql = sql
        self.driver = driver
    }

    func reset() {
        params.removeAll(keepingCapacity: true)
        rows = nil
        cursor = -1
    }

    private func set(_ index: Int32, _ value: PostgresValue) throws {
        guard (1...65_535).contains(index) else { throw StoreError.invalidArgument("parameter index \(index)") }
        let i = Int(index) - 1
        while params.count <= i { params.append(.null) }
        params[i] = value
    }

    func bind(_ index: Int32, _ value: Int64) throws { try set(index, .int8(value)) }
    func bind(_ index: Int32, _ value: String) throws { try set(index, .text(value)) }
    func bind(_ index: Int32, _ value: [UInt8]) throws { try set(index, .bytea(value)) }
    func bindNull(_ index: Int32) throws { try set(index, .null) }

    func step() throws -> Bool {
        if rows == nil {
            rows = try driver.run(sql, params)
            cursor = -1
        }
        cursor += 1
        return cursor < (rows?.count ?? 0)
    }

    private func value(_ column: Int32) -> PostgresValue {
        guard let rows, cursor >= 0, cursor < rows.count, column >= 0, Int(column) < rows[cursor].count else { return .null }
        return rows[cursor][Int(column)]
    }

    func int(_ column: Int32) -> Int64 {
        switch value(column) {
        case .int8(let v): return v
        case .bool(let b): return b ? 1 : 0
        default: return 0
        }
    }

    func text(_ column: Int32) -> String {
        if case .text(let s) = value(column) { return s }
        return ""
    }

    func blob(_ column: Int32) -> [UInt8] {
        if case .bytea(let b) = value(column) { return b }
        return []
    }

    func isNull(_ column: Int32) -> Bool {
        if case .null = value(column) { return true }
        return false
    }
}
