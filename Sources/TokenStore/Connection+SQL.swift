import CSQLite

/// Statements and transactions of a `Connection`, over its `SQLDriver`.
extension Connection {
    /// Runs SQL text with no parameters (schema, pragmas). Not for hot paths.
    func exec(_ sql: String) throws {
        try driver.exec(sql)
    }

    /// Prepares (cached), runs `body`, then resets and clears bindings whatever happens.
    func withStatement<R>(_ sql: String, _ body: (any SQLStatement) throws -> R) throws -> R {
        try driver.withStatement(sql, body)
    }

    /// Runs a statement to completion.
    func run(_ sql: String, _ binder: (any SQLStatement) throws -> Void = { _ in }) throws {
        try driver.withStatement(sql) { stmt in
            try binder(stmt)
            while try stmt.step() {}
        }
    }

    /// A write transaction around `body` (`SQLDriver.beginWrite`: the write lock up front, so read-then-write
    /// inside `body` is atomic across processes); rolls back on error.
    func writeTransaction<R>(_ body: () throws -> R) throws -> R {
        guard !inTransaction else { throw StoreError.database(code: SQLITE_MISUSE, message: "nested transaction") }
        try driver.beginWrite()
        inTransaction = true
        do {
            let result = try body()
            // A marker that counts our own commit: the mirror is current at it when it was current just before
            // (the lock held since, and `body` updated the mirror in place), so the next call need not re-read.
            if let marker = try driver.commit(), lastDataVersion == marker &- 1 { lastDataVersion = marker }
            inTransaction = false
            return result
        } catch {
            driver.rollback()
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
        try driver.beginRead()
        inTransaction = true
        defer {
            _ = try? driver.commit()
            inTransaction = false
        }
        return try body()
    }
}
