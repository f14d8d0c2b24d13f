/// The store's view of one database connection (docs/plans/postgresql-store.md §1.3): statements with positional
/// `?` parameters, transactions, and the few things each engine does its own way. Everything the security of the
/// store rests on — the mirror, the MACs, change numbers, the PIN attempt rules — lives above it, in `Connection`,
/// `TokenDatabase` and `TokenVault`, once for every engine. Used only under `TokenDatabase.state`'s mutex.
protocol SQLDriver: AnyObject {
    /// Runs SQL text with no parameters (schema steps, session settings). Not for hot paths.
    func exec(_ sql: String) throws
    /// Prepares `sql` (cached per connection), runs `body` with it, then resets it whatever happens.
    func withStatement<R>(_ sql: String, _ body: (any SQLStatement) throws -> R) throws -> R
    /// Rows changed by the last INSERT, UPDATE or DELETE.
    var changes: Int { get }

    /// Starts a write transaction holding the store's write lock (waiting up to the busy timeout), so that a
    /// read-then-write inside it is atomic across processes and hosts.
    func beginWrite() throws
    /// Starts a read transaction: one consistent snapshot.
    func beginRead() throws
    /// Commits; returns the change marker the commit produced when the marker counts this connection's own
    /// commits too (PostgreSQL's `token.change`), nil when it never does (SQLite's data_version) or for a read.
    @discardableResult func commit() throws -> Int64?
    func rollback()

    /// A number that changes whenever another connection committed (read before deciding to reload the mirror).
    func changeMarker() throws -> Int64
    /// Makes superseded rows (old sealed values, PIN envelopes) unrecoverable from the store's files where the
    /// engine can; true when nothing superseded is left behind.
    func flushSupersededSecrets() -> Bool
    /// A transactionally consistent copy of the whole database in a new file at `path` (which exists, empty, 0600).
    func snapshot(into path: String) throws
    /// The engine's own consistency check: `["ok"]`, else its list of problems.
    func integrityCheck() throws -> [String]
    /// After fork, in the child: the connection belongs to the parent; never touch or close it again.
    func abandon()
    var isAbandoned: Bool { get }
}

/// A prepared statement during one use: parameters are numbered from 1, result columns from 0.
protocol SQLStatement: AnyObject {
    func bind(_ index: Int32, _ value: Int64) throws
    func bind(_ index: Int32, _ value: String) throws
    func bind(_ index: Int32, _ value: [UInt8]) throws
    func bindNull(_ index: Int32) throws
    /// Steps once: true for a row, false when done.
    func step() throws -> Bool
    func int(_ column: Int32) -> Int64
    func text(_ column: Int32) -> String
    func blob(_ column: Int32) -> [UInt8]
    func isNull(_ column: Int32) -> Bool
}
