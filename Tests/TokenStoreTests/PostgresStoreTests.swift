import CryptoCore
import Foundation
import KeyWrap
import Synchronization
import TestSupport
@testable import TokenStore
import XCTest

/// The token store on PostgreSQL (`PostgresDriver`, `PostgresSchema`) against a real server (TestSupport.
/// PostgresServer), through the same TokenDatabase / TokenVault code as the SQLite store: one schema per test.
final class PostgresStoreTests: XCTestCase {
    private static let shared = SharedPostgresServer()
    let so = bytes("so-pin-pg-1")
    let user = bytes("user-pin-pg-1")

    override class func tearDown() {
        shared.stop()   // the server's deinit: pg_ctl stop -m immediate, temp dir removed
        super.tearDown()
    }

    private func server() throws -> PostgresServer { try Self.shared.get() }

    private func connect() throws -> PostgresConnection {
        let s = try server()
        return try PostgresConnection(parameters: s.parameters, password: SecretBytes(copying: Array(s.password.utf8)),
                                      timeout: .seconds(10))
    }

    /// A schema name of this test's own.
    private func schemaName(_ function: String = #function) -> String {
        "t_" + function.lowercased().filter { $0.isLetter || $0.isNumber }.prefix(40) + "_\(getpid())"
    }

    private func open(_ schema: String) throws -> TokenDatabase {
        try TokenDatabase(postgres: { try self.connect() }, schema: schema, indexedAttributes: indexed)
    }

    private func key(_ label: String) -> [UInt: [UInt8]] {
        [Attr.cls: [4, 0, 0, 0, 0, 0, 0, 0], Attr.label: bytes(label), Attr.id: [1], Attr.keyType: [0x1f]]
    }

    /// Initialise, PINs, objects with a sealed value, wrong PINs counted and reset, and everything still there —
    /// and verified at login (object MACs, state MAC, ledger digest) — through a new connection.
    func testATokenLivesOnAPostgreSQLSchema() throws {
        let schema = schemaName()
        let db = try open(schema)
        XCTAssertFalse(try db.tokenRecord().isInitialized)
        let vault = try TokenVault(database: db, kdfLog2N: TokenVault.minimumKDFLog2N)
        try vault.initialize(soPIN: so, label: bytes("pg token"), backend: LocalBackend(), maxAttempts: 3)
        try vault.initUserPIN(user, using: try vault.login(role: .so, pin: so, backend: LocalBackend()))
        let keys = try vault.login(role: .user, pin: user, backend: LocalBackend())

        let secret = SecretBytes(copying: bytes("0123456789ABCDEF0123456789ABCDEF"))
        let uid = try TokenDatabase.newUniqueID()
        try db.insert(uniqueID: uid, publicAttributes: key("aes"), secretAttributes: [Attr.value: secret], keys: keys)
        try db.insert(uniqueID: "doomed", publicAttributes: key("doomed"), keys: keys)
        XCTAssertEqual(try db.find(matching: [Attr.label: bytes("aes")]).map(\.uniqueID), [uid])
        var renamed = key("renamed")
        renamed[Attr.id] = [2]
        try db.update(uniqueID: uid, publicAttributes: renamed, secretAttributes: nil, keys: keys)
        try db.delete(uniqueID: "doomed", keys: keys)
        assertStoreError(.objectNotFound("doomed")) { try db.delete(uniqueID: "doomed", keys: keys) }
        assertStoreError(.pinIncorrect(remaining: 2)) { _ = try vault.login(role: .user, pin: bytes("wrong"), backend: LocalBackend()) }
        XCTAssertEqual(try vault.login(role: .user, pin: user, backend: LocalBackend()).priorFailedAttempts, 1)
        assertStoreError(.pinIncorrect(remaining: 2)) { _ = try vault.login(role: .user, pin: bytes("wrong"), backend: LocalBackend()) }

        // Another connection (another process's worth) sees it all and logs in: every MAC verifies.
        let again = try open(schema)
        let record = try again.tokenRecord()
        XCTAssertEqual(Array(record.label.prefix(8)), bytes("pg token"))
        XCTAssertEqual(record.userPIN.failedAttempts, 1)
        let vault2 = try TokenVault(database: again, kdfLog2N: TokenVault.minimumKDFLog2N)
        let keys2 = try vault2.login(role: .user, pin: user, backend: LocalBackend())
        XCTAssertEqual(keys2.priorFailedAttempts, 1)
        let found = try again.find(matching: [Attr.label: bytes("renamed")])
        XCTAssertEqual(found.map(\.uniqueID), [uid])
        XCTAssertEqual(try again.unseal(try XCTUnwrap(found.first), attribute: Attr.value, keys: keys2), secret)
        XCTAssertNil(try again.object(uniqueID: "doomed"))
    }

    /// Commits of one connection are seen by the other at its next call; writers on two connections at once lose
    /// nothing (the schema's advisory lock serialises them).
    func testTwoConnectionsShareOneToken() throws {
        let schema = schemaName()
        let a = try open(schema), b = try open(schema)
        let vault = try TokenVault(database: a, kdfLog2N: TokenVault.minimumKDFLog2N)
        try vault.initialize(soPIN: so, label: [], backend: LocalBackend())
        XCTAssertTrue(try b.tokenRecord().isInitialized)
        try a.insert(uniqueID: "one", publicAttributes: key("shared"), keys: nil)
        XCTAssertEqual(try b.find(matching: [Attr.label: bytes("shared")]).map(\.uniqueID), ["one"])
        try b.delete(uniqueID: "one", keys: nil)
        XCTAssertEqual(try a.objectCount(), 0)

        let failures = Atomic<Int>(0)
        let dbs = [a, b]
        DispatchQueue.concurrentPerform(iterations: 2) { w in
            for i in 0..<100 {
                do {
                    try dbs[w].insert(uniqueID: "w\(w)-\(i)", publicAttributes: [Attr.label: bytes("w\(w)")], keys: nil)
                } catch {
                    failures.add(1, ordering: .relaxed)
                }
            }
        }
        XCTAssertEqual(failures.load(ordering: .relaxed), 0)
        XCTAssertEqual(try a.objectCount(), 200)
        XCTAssertEqual(try b.objectCount(), 200)
        XCTAssertEqual(Set(try b.allObjects().map(\.sequence)).count, 200, "every change number given once")
    }

    /// The server's rows hold no key byte and no PIN: only sealed values, MACs and PIN envelopes.
    func testTheServerSeesNoKeyByteAndNoPIN() throws {
        let schema = schemaName()
        let db = try open(schema)
        let vault = try TokenVault(database: db, kdfLog2N: TokenVault.minimumKDFLog2N)
        try vault.initialize(soPIN: so, label: [], backend: LocalBackend())
        let keys = try vault.login(role: .so, pin: so, backend: LocalBackend())
        try vault.initUserPIN(user, using: keys)
        let value = bytes("KEYBYTES-known-to-the-test-0001")
        try db.insert(uniqueID: "k", publicAttributes: key("k"), secretAttributes: [Attr.value: SecretBytes(copying: value)],
                      keys: keys)
        let raw = try connect()
        var everything: [UInt8] = []
        for table in ["token", "pin", "objects", "tombstones", "spent_seeds", "hourly_calls"] {
            let rows = try raw.query("SELECT pg_catalog.convert_to(t::text, 'UTF8') FROM \"\(schema)\".\(table) AS t")
            for row in rows { if case .bytea(let b)? = row.first { everything += b } }
        }
        XCTAssertGreaterThan(everything.count, 100)
        let text = String(decoding: everything, as: UTF8.self)
        for needle in [value, so, user] {
            XCTAssertFalse(text.contains(String(decoding: needle, as: UTF8.self)))
            XCTAssertFalse(text.contains(Hex.encode(needle)), "hex of a secret in the rows")
        }
    }

    /// A schema of another version is refused (at the first call), not guessed at; a bad schema name never reaches
    /// SQL (refused at opening).
    func testAnotherSchemaVersionAndBadNamesAreRefused() throws {
        let schema = schemaName()
        _ = try open(schema).tokenRecord()   // the first call creates the schema
        _ = try connect().query("UPDATE \"\(schema)\".schema_version SET version = 99")
        XCTAssertThrowsError(try open(schema).tokenRecord()) { error in
            XCTAssertEqual(error as? StoreError, .unsupportedFormat(99))
        }
        for bad in ["", "Upper", "x\"; DROP SCHEMA public; --", String(repeating: "a", count: 64), "1abc"] {
            XCTAssertThrowsError(try open(bad)) { error in
                guard case .invalidArgument? = error as? StoreError else { return XCTFail("\(bad): \(error)") }
            }
        }
    }

    /// A server restart: calls fail (never hang) while it is down, the store connects again by itself once it is up
    /// (no new TokenDatabase), and nothing committed is lost.
    func testTheStoreReconnectsAfterTheServerRestarts() throws {
        let schema = schemaName()
        let db = try open(schema)
        let vault = try TokenVault(database: db, kdfLog2N: TokenVault.minimumKDFLog2N)
        try vault.initialize(soPIN: so, label: [], backend: LocalBackend())
        let keys = try vault.login(role: .so, pin: so, backend: LocalBackend())
        for i in 0..<10 { try db.insert(uniqueID: "before-\(i)", publicAttributes: key("before"), keys: keys) }

        let s = try server()
        s.stop()
        let down = MonotonicInstant.now
        XCTAssertThrowsError(try db.insert(uniqueID: "while-down", publicAttributes: key("down"), keys: keys))
        XCTAssertThrowsError(try db.insert(uniqueID: "while-down", publicAttributes: key("down"), keys: keys),
                             "within the backoff: refused without a connect attempt")
        XCTAssertLessThan(MonotonicInstant.now - down, .seconds(5), "a server that is down costs no hang")
        try s.start()

        var inserted = false
        let deadline = MonotonicInstant.now + .seconds(15)
        while !inserted && MonotonicInstant.now < deadline {
            do {
                try db.insert(uniqueID: "after", publicAttributes: key("after"), keys: keys)
                inserted = true
            } catch {
                usleep(100_000)
            }
        }
        XCTAssertTrue(inserted, "the store connected again by itself")
        XCTAssertNil(try db.object(uniqueID: "while-down"))
        XCTAssertEqual(try db.find(matching: [Attr.label: bytes("before")]).count, 10)
        // A fresh connection sees the same, and the token still logs in (every MAC verifies).
        let other = try open(schema)
        XCTAssertEqual(try other.objectCount(), 11)
        _ = try TokenVault(database: other, kdfLog2N: TokenVault.minimumKDFLog2N).login(role: .so, pin: so, backend: LocalBackend())
    }

    /// The limits hold across connections (hosts) on one schema: 8 connections race wrong PINs and exactly
    /// max_attempts are counted; 8 race the last 40 uses of a counter and exactly 40 succeed; 8 race to spend one
    /// N2HE seed and exactly one does, and the hour's call limit grants exactly its number.
    func testLimitsHoldAcrossConnections() throws {
        let schema = schemaName()
        let first = try open(schema)
        let vault = try TokenVault(database: first, kdfLog2N: TokenVault.minimumKDFLog2N)
        try vault.initialize(soPIN: so, label: [], backend: LocalBackend(), maxAttempts: 5)
        let keys = try vault.login(role: .so, pin: so, backend: LocalBackend())
        try first.insert(uniqueID: "counted", publicAttributes: [Attr.label: bytes("counted"), 0xD447_0007: [0]], keys: keys)
        let dbs = try (0..<8).map { _ in try open(schema) }
        let sessions = try dbs.map { db in try TokenVault(database: db, kdfLog2N: TokenVault.minimumKDFLog2N).login(role: .so, pin: so, backend: LocalBackend()) }

        let incorrect = Atomic<Int>(0), locked = Atomic<Int>(0), other = Atomic<Int>(0)
        let wrong = bytes("wrong-pin")
        DispatchQueue.concurrentPerform(iterations: 8) { w in
            let v = try? TokenVault(database: dbs[w], kdfLog2N: TokenVault.minimumKDFLog2N)
            for _ in 0..<10 {
                do {
                    try v?.verifyPIN(role: .so, pin: wrong)
                } catch StoreError.pinIncorrect(let remaining) where remaining > 0 {
                    incorrect.add(1, ordering: .relaxed)
                } catch StoreError.pinIncorrect, StoreError.pinLocked {
                    locked.add(1, ordering: .relaxed)
                    return
                } catch {
                    other.add(1, ordering: .relaxed)
                    return
                }
            }
        }
        XCTAssertEqual(incorrect.load(ordering: .relaxed), 4, "max_attempts - 1 answered 'incorrect'")
        XCTAssertEqual(locked.load(ordering: .relaxed), 8, "then every racer found it locked")
        XCTAssertEqual(other.load(ordering: .relaxed), 0)
        XCTAssertEqual(try first.tokenRecord().soPIN.failedAttempts, 5)

        let granted = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 8) { w in
            for _ in 0..<20 {
                let ok = (try? dbs[w].modifyPublicAttributes(uniqueID: "counted", keys: sessions[w]) { attrs -> ([UInt: [UInt8]]?, Bool) in
                    let used = attrs[0xD447_0007]?.first ?? 0
                    guard used < 40 else { return (nil, false) }
                    var next = attrs
                    next[0xD447_0007] = [used + 1]
                    return (next, true)
                }) ?? false
                if ok { granted.add(1, ordering: .relaxed) }
            }
        }
        XCTAssertEqual(granted.load(ordering: .relaxed), 40, "exactly the uses left")
        XCTAssertEqual(try first.object(uniqueID: "counted")?.publicAttributes[0xD447_0007], [40])

        let spent = Atomic<Int>(0), charged = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 8) { w in
            if (try? dbs[w].spendSeeds(ledgerID: "ledger", digests: [[UInt8](repeating: 7, count: 32)], keys: sessions[w])) == true {
                spent.add(1, ordering: .relaxed)
            }
            for _ in 0..<3 where (try? dbs[w].chargeHourlyCall(ledgerID: "ledger", hour: 1, limit: 10, keys: sessions[w])) == true {
                charged.add(1, ordering: .relaxed)
            }
        }
        XCTAssertEqual(spent.load(ordering: .relaxed), 1, "one seed is spent once")
        XCTAssertEqual(charged.load(ordering: .relaxed), 10, "the hour's limit, not more")
    }

    /// Opening a store whose server is down does not connect and does not fail (C_Initialize opens every token);
    /// the first call fails within the connect deadline, and once the server is up the store works.
    func testOpeningWhileTheServerIsDownWaitsForTheFirstCall() throws {
        let schema = schemaName()
        let s = try server()
        s.stop()
        defer { if !s.isRunning { try? s.start() } }
        let opened = MonotonicInstant.now
        let db = try open(schema)
        XCTAssertLessThan(MonotonicInstant.now - opened, .milliseconds(100), "no connect at opening")
        let called = MonotonicInstant.now
        XCTAssertThrowsError(try db.tokenRecord())
        XCTAssertLessThan(MonotonicInstant.now - called, .seconds(11), "within the connect deadline")
        try s.start()
        var record: TokenRecord?
        let deadline = MonotonicInstant.now + .seconds(15)
        while record == nil && MonotonicInstant.now < deadline {
            record = try? db.tokenRecord()
            if record == nil { usleep(100_000) }
        }
        XCTAssertEqual(record?.isInitialized, false, "the schema was created at the first call that reached the server")
        try TokenVault(database: db, kdfLog2N: TokenVault.minimumKDFLog2N).initialize(soPIN: so, label: [], backend: LocalBackend())
        XCTAssertTrue(try open(schema).tokenRecord().isInitialized)
    }
}
