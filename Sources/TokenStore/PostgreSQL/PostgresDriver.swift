import KeyWrap

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
/// - Connection loss (a server restart, a deadline passed): the call answers an error, and so does every later
///   statement of the same transaction; the next transaction or call outside one connects again (`connect`), at
///   most once per backoff (0.1 s doubling to 5 s) so that a server that is down costs no connect timeout per call.
final class PostgresDriver: SQLDriver {
    /// The token's schema (`[a-z_][a-z0-9_]{0,62}`, always quoted in SQL).
    let schema: String
    private(set) var changes = 0
    private(set) var isAbandoned = false
    private let connect: () throws -> PostgresConnection
    private let lockTimeoutMilliseconds: Int
    private var connection: PostgresConnection?
    private var statements: [String: PostgresStatement] = [:]
    private var inTransaction = false
    private var writing = false
    private var retryAfter: MonotonicInstant?
    private var backoff: Duration = PostgresDriver.firstBackoff

    static let firstBackoff: Duration = .milliseconds(100)
    static let longestBackoff: Duration = .seconds(5)

    /// Connects at the first statement (`connect` is called again after a connection is lost).
    /// - Throws: `.invalidArgument` for a schema name outside `[a-z_][a-z0-9_]{0,62}`.
    init(schema: String, lockTimeoutMilliseconds: Int = 10_000, connect: @escaping () throws -> PostgresConnection) throws {
        guard Self.validSchemaName(schema) else {
            throw StoreError.invalidArgument("PostgreSQL schema name must match [a-z_][a-z0-9_]{0,62}")
        }
        self.schema = schema
        self.connect = connect
        self.lockTimeoutMilliseconds = lockTimeoutMilliseconds
    }

    /// The open connection, connected (and its session set up) again when it was lost and the backoff allows.
    private func session() throws -> PostgresConnection {
        guard !isAbandoned else { throw StoreError.database(code: 21, message: "connection abandoned after fork") }
        if let c = connection, c.isOpen { return c }
        guard !inTransaction else {
            throw StoreError.database(code: 0, message: "PostgreSQL connection lost during a transaction")
        }
        if let t = retryAfter, MonotonicInstant.now < t {
            throw StoreError.database(code: 0, message: "PostgreSQL unavailable (next connect attempt after a backoff)")
        }
        do {
            let c = try connect()
            _ = try c.query("SELECT pg_catalog.set_config('search_path', $1, false)", [.text("\"\(schema)\"")])
            _ = try c.query("SELECT pg_catalog.set_config('lock_timeout', $1, false)",
                            [.text("\(max(1, lockTimeoutMilliseconds))ms")])
            connection = c
            (retryAfter, backoff) = (nil, Self.firstBackoff)
            return c
        } catch {
            retryAfter = MonotonicInstant.now + backoff
            backoff = min(backoff * 2, Self.longestBackoff)
            throw Self.storeError(error)
        }
    }

    static func validSchemaName(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard (1...63).contains(u.count), let first = u.first, first == 0x5f || (0x61...0x7a).contains(first) else { return false }
        return u.allSatisfy { $0 == 0x5f || (0x61...0x7a).contains($0) || (0x30...0x39).contains($0) }
    }

    /// The store's error for a PostgreSQL failure (lock timeouts, deadlocks and serialisation failures are `.busy`).
    static func storeError(_ error: any Error) -> any Error {
        guard let e = error as? PostgresError else { return error }
        if case .statement(let code, _) = e, ["55P03", "40P01", "40001"].contains(code) { return StoreError.busy }
        return StoreError.database(code: 0, message: e.description)
    }

    /// One statement, its rows and affected count.
    func run(_ sql: String, _ params: [PostgresValue]) throws -> [[PostgresValue]] {
        let c = try session()
        do {
            let outcome = try c.statement(sql, params)
            changes = Int(clamping: outcome.affected)
            return outcome.rows
        } catch {
            throw Self.storeError(error)
        }
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
        inTransaction = true
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
        (inTransaction, writing) = (true, false)
    }

    func commit() throws -> Int64? {
        defer { (inTransaction, writing) = (false, false) }
        var marker: Int64?
        if writing, case .int8(let v)? = try run("UPDATE token SET change = change + 1 WHERE id = 1 RETURNING change", []).first?.first {
            marker = v
        }
        _ = try run("COMMIT", [])
        return marker
    }

    func rollback() {
        if connection?.isOpen == true { _ = try? run("ROLLBACK", []) }
        (inTransaction, writing) = (false, false)
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
        connection?.abandonAfterFork()
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
