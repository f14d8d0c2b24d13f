import CryptoCore
import Foundation
import KeyWrap
import TestSupport
@testable import TokenStore
import XCTest

/// PostgresConnection against a real PostgreSQL (TestSupport.PostgresServer: initdb + pg_ctl on 127.0.0.1, SCRAM),
/// one server for the class. No mocks; a missing server binary fails every test (scripts/install-deps.sh).
final class PostgresConnectionTests: XCTestCase {
    private static let shared = SharedPostgresServer()

    override class func tearDown() {
        shared.stop()   // the server's deinit: pg_ctl stop -m immediate, temp dir removed
        super.tearDown()
    }

    private func server() throws -> PostgresServer { try Self.shared.get() }

    private func secret(_ text: String) -> SecretBytes { SecretBytes(copying: Array(text.utf8)) }

    private func connect(_ server: PostgresServer, timeout: Duration = .seconds(10)) throws -> PostgresConnection {
        try PostgresConnection(parameters: server.parameters, password: secret(server.password), timeout: timeout)
    }

    /// The PostgresError `body` throws (a failure, and nil, when it throws none or another error).
    private func postgresError(file: StaticString = #filePath, line: UInt = #line,
                               _ body: () throws -> Void) -> PostgresError? {
        do {
            try body()
            XCTFail("no error thrown", file: file, line: line)
        } catch let error as PostgresError {
            return error
        } catch {
            XCTFail("not a PostgresError: \(error)", file: file, line: line)
        }
        return nil
    }

    private func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    // MARK: - Values

    func testParametersAndResultsRoundTripInBinaryFormat() throws {
        let db = try connect(try server())
        XCTAssertGreaterThanOrEqual(PostgresLibrary.version, 100_000)
        XCTAssertEqual(db.parameterStatus("client_encoding"), "UTF8")
        XCTAssertFalse(db.sslInUse)

        // int8 at its limits, checked by the server as well as echoed back.
        for value: Int64 in [.min, -1, 0, 1, .max, 0x0102_0304_0506_0708] {
            let rows = try db.query("SELECT $1::int8, $1::int8 = $2::text::int8", [.int8(value), .text(String(value))])
            XCTAssertEqual(rows, [[.int8(value), .bool(true)]], "\(value)")
        }
        // int2/int4 columns widen to int8.
        XCTAssertEqual(try db.query("SELECT (-2)::int2, (-70000)::int4, 70000::int4"), [[.int8(-2), .int8(-70000), .int8(70000)]])

        // text: multi-byte UTF-8 and the empty string; the server counts characters and bytes.
        let text = "grüße ✓ \u{1F512}"
        XCTAssertEqual(try db.query("SELECT $1::text, length($1::text), octet_length($1::text)", [.text(text)]),
                       [[.text(text), .int8(Int64(text.count)), .int8(Int64(text.utf8.count))]])
        XCTAssertEqual(try db.query("SELECT $1::text, $1::text = ''", [.text("")]), [[.text(""), .bool(true)]])

        // bytea 0x00…0xFF: the server's hex of what it received must be ours.
        let all = (0...255).map { UInt8($0) }
        let hex = all.map { String(format: "%02x", $0) }.joined()
        XCTAssertEqual(try db.query("SELECT $1::bytea, encode($1::bytea, 'hex')", [.bytea(all)]), [[.bytea(all), .text(hex)]])
        XCTAssertEqual(try db.query("SELECT $1::bytea, length($1::bytea)", [.bytea([])]), [[.bytea([]), .int8(0)]])

        // 1 MiB of random bytes, and its digest computed by the server.
        let big = try SecretBytes.random(count: 1 << 20).unsafeCopyToArray()
        let digest = try Digest.hash(.sha256, big)
        let rows = try db.query("SELECT $1::bytea, length($1::bytea), sha256($1::bytea)", [.bytea(big)])
        XCTAssertEqual(rows.count, 1)
        XCTAssertEqual(rows.first?[1], .int8(1 << 20))
        XCTAssertEqual(rows.first?[2], .bytea(digest))
        XCTAssertTrue(rows.first?[0] == .bytea(big), "1 MiB bytea did not come back intact")

        // NULL parameters and NULL results.
        XCTAssertEqual(try db.query("SELECT $1::int8 IS NULL, $1::int8, $2::bytea, NULL::text", [.null, .null]),
                       [[.bool(true), .null, .null, .null]])

        // Through a table: rows affected and several rows back in order.
        try db.query("CREATE TEMP TABLE t (id int8 PRIMARY KEY, name text, data bytea)")
        for id in 1...3 {
            XCTAssertEqual(try db.execute("INSERT INTO t VALUES ($1, $2, $3)",
                                          [.int8(Int64(id)), id == 2 ? .null : .text("n\(id)"), .bytea([UInt8(id), 0])]), 1)
        }
        XCTAssertEqual(try db.execute("UPDATE t SET data = $1 WHERE id >= $2", [.bytea([9]), .int8(2)]), 2)
        XCTAssertEqual(try db.query("SELECT id, name, data FROM t ORDER BY id"), [
            [.int8(1), .text("n1"), .bytea([1, 0])],
            [.int8(2), .null, .bytea([9])],
            [.int8(3), .text("n3"), .bytea([9])],
        ])
        XCTAssertEqual(try db.query("SELECT id FROM t WHERE id > 100"), [])
    }

    func testPreparedStatements() throws {
        let db = try connect(try server())
        try db.prepare(name: "plus_one", sql: "SELECT $1::int8 + 1, $2::bytea")
        for n: Int64 in [0, 41, -5] {
            XCTAssertEqual(try db.queryPrepared(name: "plus_one", [.int8(n), .bytea([0, 1])]), [[.int8(n + 1), .bytea([0, 1])]])
        }
        let error = postgresError { try db.queryPrepared(name: "never_prepared") }
        XCTAssertEqual(error, .statement(sqlstate: "26000", message: "prepared statement \"never_prepared\" does not exist"))
        XCTAssertEqual(try db.queryPrepared(name: "plus_one", [.int8(1), .null]), [[.int8(2), .null]])
    }

    // MARK: - Errors

    /// The server's NOTICE and WARNING messages never reach the host process's stderr (libpq's default prints them).
    func testServerNoticesAreNotPrinted() throws {
        let db = try connect(try server())
        let captured = FileManager.default.temporaryDirectory.path + "/tg-pg-stderr-\(getpid())"
        let fd = open(captured, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        XCTAssertGreaterThanOrEqual(fd, 0)
        let saved = dup(2)
        dup2(fd, 2)
        let result = Result { try db.query("DO $$ BEGIN RAISE NOTICE 'tg-notice'; RAISE WARNING 'tg-warning'; END $$") }
        dup2(saved, 2)
        close(saved)
        close(fd)
        defer { unlink(captured) }
        _ = try result.get()
        XCTAssertEqual(try String(contentsOfFile: captured, encoding: .utf8), "")
    }

    func testSQLErrorsCarryTheirSQLSTATEAndLeaveTheConnectionUsable() throws {
        let db = try connect(try server())
        guard case .statement(let missing, let message)? = postgresError({ try db.query("SELECT * FROM no_such_table") }) else {
            return XCTFail("expected a statement error")
        }
        XCTAssertEqual(missing, "42P01")
        XCTAssertTrue(message.contains("no_such_table"), message)

        try db.query("CREATE TEMP TABLE u (k text PRIMARY KEY)")
        let value = "bound-value-\(UUID().uuidString)"
        try db.query("INSERT INTO u VALUES ($1)", [.text(value)])
        let duplicate = postgresError { try db.query("INSERT INTO u VALUES ($1)", [.text(value)]) }
        guard case .statement(let code, let text)? = duplicate else { return XCTFail("expected a statement error") }
        XCTAssertEqual(code, "23505")
        XCTAssertFalse(text.contains(value), "a bound value reached the error: \(text)")
        XCTAssertFalse("\(duplicate.map { "\($0)" } ?? "")".contains(value))

        XCTAssertEqual(postgresError { try db.query("SELECT 1/0") }.map { if case .statement(let c, _) = $0 { c } else { "" } }, "22012")
        XCTAssertEqual(postgresError { try db.query("SELEKT 1") }.map { if case .statement(let c, _) = $0 { c } else { "" } }, "42601")
        // A type this client does not decode is refused, not misread; the connection stays usable.
        XCTAssertEqual(postgresError { try db.query("SELECT 1.5::numeric") },
                       .protocolViolation("column 0 has type OID 1700, which is not decoded"))
        XCTAssertTrue(db.isOpen)
        XCTAssertEqual(try db.query("SELECT count(*) FROM u"), [[.int8(1)]])
    }

    // MARK: - Deadlines and lost connections

    func testAStatementPastItsDeadlineTimesOutAndClosesTheConnection() throws {
        let server = try server()
        let db = try connect(server)
        let pid = try db.query("SELECT pg_backend_pid()")
        let start = MonotonicInstant.now
        let error = postgresError { try db.query("SELECT pg_sleep(5)", timeout: .milliseconds(500)) }
        let elapsed = seconds(MonotonicInstant.now - start)
        guard case .timedOut? = error else { return XCTFail("expected .timedOut, got \(String(describing: error))") }
        XCTAssertGreaterThanOrEqual(elapsed, 0.45)
        XCTAssertLessThan(elapsed, 2.0)
        XCTAssertFalse(db.isOpen)
        guard case .unavailable? = postgresError({ try db.query("SELECT 1") }) else { return XCTFail("closed connection answered") }

        // A new connection works; the old session is gone once its pg_sleep notices (cancel it to be quick).
        let other = try connect(server)
        XCTAssertEqual(try other.query("SELECT 1"), [[.int8(1)]])
        guard case .int8(let backend)? = pid.first?.first else { return XCTFail("no backend pid") }
        _ = try other.query("SELECT pg_cancel_backend($1::int4)", [.int8(backend)])
    }

    func testAStoppedServerIsUnavailableWithinTheDeadlineAndARestartedOneConnects() throws {
        let server = try server()
        let db = try connect(server, timeout: .seconds(3))
        XCTAssertEqual(try db.query("SELECT 1"), [[.int8(1)]])

        server.stop()
        var start = MonotonicInstant.now
        let error = postgresError { try db.query("SELECT 1") }
        XCTAssertLessThan(seconds(MonotonicInstant.now - start), 3.5)
        guard case .unavailable? = error else { return XCTFail("expected .unavailable, got \(String(describing: error))") }
        XCTAssertFalse(db.isOpen)

        // Nothing listens now: a new connection is refused at once.
        start = MonotonicInstant.now
        guard case .unavailable(let refused)? = postgresError({ _ = try connect(server, timeout: .seconds(3)) }) else {
            return XCTFail("connected to a stopped server")
        }
        XCTAssertLessThan(seconds(MonotonicInstant.now - start), 3.5)
        XCTAssertTrue(refused.contains("refused") || refused.contains("Connection"), refused)

        try server.start()
        let again = try connect(server)
        XCTAssertEqual(try again.query("SELECT $1::text", [.text("back")]), [[.text("back")]])
        guard case .unavailable? = postgresError({ try db.query("SELECT 1") }) else { return XCTFail("old connection revived") }
    }

    func testAConnectToAListenerThatNeverAnswersHitsItsDeadline() throws {
        // A TCP listener that accepts (through the kernel backlog) and never speaks: the startup packet gets no
        // answer, as from a SIGSTOPped server.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        XCTAssertEqual(withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }, 0)
        XCTAssertEqual(listen(fd, 4), 0)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let port = Int(UInt16(bigEndian: addr.sin_port))

        let start = MonotonicInstant.now
        let error = postgresError {
            _ = try PostgresConnection(parameters: [("host", "127.0.0.1"), ("port", String(port)), ("user", "x"), ("dbname", "x")],
                                       password: secret("irrelevant"), timeout: .milliseconds(400))
        }
        let elapsed = seconds(MonotonicInstant.now - start)
        XCTAssertEqual(error, .unavailable("no connection within 400 ms"))
        XCTAssertGreaterThanOrEqual(elapsed, 0.35)
        XCTAssertLessThan(elapsed, 1.5)
    }

    // MARK: - Authentication and parameters

    func testAWrongPasswordIsUnavailableAndNeverQuoted() throws {
        let server = try server()
        let wrong = "wrong-\(UUID().uuidString)"
        let error = postgresError { _ = try PostgresConnection(uri: server.uri, password: secret(wrong), timeout: .seconds(5)) }
        guard case .unavailable(let message)? = error else { return XCTFail("expected .unavailable, got \(String(describing: error))") }
        XCTAssertTrue(message.contains("password authentication failed"), message)
        XCTAssertFalse(message.contains(wrong))
        XCTAssertFalse("\(error.map { "\($0)" } ?? "")".contains(wrong))
        XCTAssertFalse(message.contains(server.password))

        // No password at all (and no ~/.pgpass entry): refused too.
        guard case .unavailable? = postgresError({ _ = try PostgresConnection(uri: server.uri, timeout: .seconds(5)) }) else {
            return XCTFail("connected without a password")
        }
        // The right one through the URI form.
        let db = try PostgresConnection(uri: server.uri, password: secret(server.password), timeout: .seconds(5))
        XCTAssertEqual(try db.query("SELECT current_user::text"), [[.text(server.user)]])
    }

    func testURIsAreSplitByLibpqAndInlinePasswordsRefused() throws {
        let server = try server()
        let pairs = Dictionary(try PostgresConnection.parameters(fromURI: server.uri), uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(pairs["host"], "127.0.0.1")
        XCTAssertEqual(pairs["port"], String(server.port))
        XCTAssertEqual(pairs["user"], server.user)
        XCTAssertEqual(pairs["dbname"], server.database)

        let multi = Dictionary(try PostgresConnection.parameters(fromURI: "postgres://h1:5432,h2:5433/db?sslmode=verify-full&target_session_attrs=read-write"),
                               uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(multi["host"], "h1,h2")
        XCTAssertEqual(multi["port"], "5432,5433")
        XCTAssertEqual(multi["sslmode"], "verify-full")
        XCTAssertEqual(multi["target_session_attrs"], "read-write")
        let decoded = Dictionary(try PostgresConnection.parameters(fromURI: "postgresql://us%40er@127.0.0.1/d%20b"), uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(decoded["user"], "us@er")
        XCTAssertEqual(decoded["dbname"], "d b")

        let secretText = "hunter2-\(UUID().uuidString)"
        let refused: [(String, String)] = [
            ("postgresql://tg:\(secretText)@127.0.0.1/db", "never inline"),
            ("postgresql://tg@127.0.0.1/db?password=\(secretText)", "never inline"),
            ("postgresql://tg:\(secretText)@[::1/db", "malformed PostgreSQL URI"),
            ("postgresql://tg:\(secretText)@127.0.0.1/db?bogus_option=\(secretText)", "malformed PostgreSQL URI"),
            ("postgresql://tg:%zz\(secretText)@127.0.0.1/db", "malformed PostgreSQL URI"),
            ("postgresql://127.0.0.1/db?sslmode", "malformed PostgreSQL URI"),
            ("mysql://tg@127.0.0.1/db", "not a postgresql://"),
            ("host=127.0.0.1 password=\(secretText)", "not a postgresql://"),
        ]
        for (uri, expected) in refused {
            let error = postgresError { _ = try PostgresConnection(uri: uri, timeout: .seconds(2)) }
            guard case .invalidConfiguration(let message)? = error else {
                XCTFail("\(expected): got \(String(describing: error))")
                continue
            }
            XCTAssertTrue(message.contains(expected), "\(message) (wanted \(expected))")
            XCTAssertFalse(message.contains(secretText), message)
            XCTAssertFalse(message.contains("hunter2"), message)
        }
        // Keyword pairs: a password is never one of them.
        let inline = postgresError {
            _ = try PostgresConnection(parameters: server.parameters + [("password", server.password)], timeout: .seconds(2))
        }
        guard case .invalidConfiguration(let why)? = inline else { return XCTFail("password pair accepted") }
        XCTAssertFalse(why.contains(server.password))
        // An unknown keyword is libpq's refusal, before any network traffic.
        guard case .unavailable(let unknown)? = postgresError({
            _ = try PostgresConnection(parameters: server.parameters + [("no_such_option", "1")], password: secret(server.password),
                                       timeout: .seconds(2))
        }) else { return XCTFail("unknown option accepted") }
        XCTAssertTrue(unknown.contains("no_such_option"), unknown)
    }

    func testEverySessionRunsWithSynchronousCommitOn() throws {
        let server = try server()
        let admin = try connect(server)
        // The database default says off: the module's session must still say on.
        try admin.query("ALTER DATABASE postgres SET synchronous_commit = off")
        defer { _ = try? admin.query("ALTER DATABASE postgres RESET synchronous_commit") }
        XCTAssertEqual(try admin.query("SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = 'postgres') AND setrole = 0"),
                       [[.text("synchronous_commit=off")]])
        let db = try connect(server)
        XCTAssertEqual(try db.query("SELECT current_setting('synchronous_commit')"), [[.text("on")]])
        XCTAssertEqual(try db.query("SHOW synchronous_commit"), [[.text("on")]])
        XCTAssertEqual(db.parameterStatus("application_name"), "tensorguard-pkcs11")
    }

    // MARK: - Fork and close

    func testAbandonAfterForkLeavesTheSessionOpenAndCloseEndsIt() throws {
        let server = try server()
        let observer = try connect(server)
        func sessions(_ pid: Int64) throws -> [[PostgresValue]] {
            try observer.query("SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int4", [.int8(pid)])
        }
        func backendPID(_ db: PostgresConnection) throws -> Int64 {
            guard case .int8(let pid)? = try db.query("SELECT pg_backend_pid()").first?.first else {
                throw PostgresError.protocolViolation("no pid")
            }
            return pid
        }

        // Abandoned (as a fork child does): no Terminate is sent, the server keeps the parent's session.
        var abandoned: PostgresConnection? = try connect(server)
        let abandonedPID = try backendPID(abandoned.unsafelyUnwrappedOrFail())
        abandoned?.abandonAfterFork()
        XCTAssertEqual(abandoned?.isOpen, false)
        guard case .unavailable? = postgresError({ _ = try abandoned?.query("SELECT 1") }) else { return XCTFail("abandoned answered") }
        abandoned = nil
        usleep(200_000)
        XCTAssertEqual(try sessions(abandonedPID), [[.int8(1)]], "abandonAfterFork ended the session")
        _ = try observer.query("SELECT pg_terminate_backend($1::int4)", [.int8(abandonedPID)])

        // Closed: the session ends.
        let closed = try connect(server)
        let closedPID = try backendPID(closed)
        closed.close()
        closed.close()
        let deadline = MonotonicInstant.now + .seconds(5)
        while try sessions(closedPID) != [[.int8(0)]], MonotonicInstant.now < deadline { usleep(20_000) }
        XCTAssertEqual(try sessions(closedPID), [[.int8(0)]], "close() left the session open")
    }
}

private extension Optional {
    func unsafelyUnwrappedOrFail() throws -> Wrapped {
        guard let value = self else { throw PostgresError.protocolViolation("nil") }
        return value
    }
}
