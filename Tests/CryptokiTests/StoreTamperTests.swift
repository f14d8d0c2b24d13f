// Issue 13, integrity at rest, as an insider would try it: someone who knows the user PIN and can write the token's
// files (here: the system sqlite3 shell, a separate process) edits, swaps and replays object rows and copies an older
// store back. Each attack must be refused (CKR_DEVICE_ERROR, a `tamper` audit record), never used. Run on a local
// and on a SoftHSM2-backed token (`kind: pkcs11`).
import CP11Kit
import Foundation
import XCTest
@testable import Cryptoki
@testable import TokenStore
import KeyWrap

final class StoreTamperTests: XCTestCase {
    // MARK: the attacker's tools

    struct Store {
        let db: String
        /// The decoded public attribute set of `uid` (the module's own record layout).
        func publicAttributes(_ uid: String) throws -> [UInt: [UInt8]] {
            let row = try XCTUnwrap(try sqliteShell(db, "SELECT hex(public_attrs) FROM objects WHERE unique_id = '\(uid)'").first)
            return try RecordCodec.decode(hex(row))
        }

        /// Rewrites `uid`'s public attributes in the file, with a new change number so running modules see it.
        func editPublic(_ uid: String, _ edit: (inout [UInt: [UInt8]]) -> Void) throws {
            var attrs = try publicAttributes(uid)
            edit(&attrs)
            let blob = toHex(try RecordCodec.encode(attrs))
            _ = try sqliteShell(db, "UPDATE objects SET public_attrs = X'\(blob)', seq = (SELECT max(seq) + 1 FROM objects) WHERE unique_id = '\(uid)'")
        }

        func row(_ uid: String) throws -> String {
            try XCTUnwrap(try sqliteShell(db, "SELECT hex(public_attrs) || '|' || hex(sealed_attrs) || '|' || seq || '|' || hex(mac) FROM objects WHERE unique_id = '\(uid)'").first)
        }

        /// Puts a row saved with `row` back (public and sealed sets, change number, MAC: all genuine, only old).
        func replay(_ uid: String, _ saved: String) throws {
            let f = saved.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            _ = try sqliteShell(db, "UPDATE objects SET public_attrs = X'\(f[0])', sealed_attrs = X'\(f[1])', seq = \(f[2]), mac = X'\(f[3])' WHERE unique_id = '\(uid)'")
        }

        /// A consistent copy of the database file (the module may hold it open).
        func copy(to path: String) throws {
            _ = try sqliteShell(db, ".backup '\(path)'")
        }

        /// Copies a saved database back over the store, as `cp` would (its WAL and SHM go).
        func restore(from path: String) throws {
            for suffix in ["-wal", "-shm"] { unlink(db + suffix) }
            unlink(db)
            try FileManager.default.copyItem(atPath: path, toPath: db)
        }
    }

    func uniqueID(_ m: Module, _ s: CK_SESSION_HANDLE, _ h: CK_OBJECT_HANDLE) throws -> String {
        String(decoding: try XCTUnwrap(try m.bytes(s, h, CK.attrUniqueID)), as: UTF8.self)
    }

    func tamperRecords(_ env: TestEnvironment) -> Int {
        let log = (try? String(contentsOfFile: env.auditPath, encoding: .utf8)) ?? ""
        return log.split(separator: "\n").filter { $0.contains("\"event\":\"tamper\"") }.count
    }

    /// A fresh module (another process's view): the user login is refused and a tamper record written.
    func assertLoginRefused(_ env: TestEnvironment, _ what: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let before = tamperRecords(env)
        let m = try env.module()
        defer { m.finalize() }
        let s = try m.openSession(0, flags: CKF_SERIAL_SESSION | CKF_RW_SESSION)
        expectCKR(CKR_DEVICE_ERROR, file: file, line: line) { try m.login(s, userType: CKU_USER, pin: userPIN) }
        XCTAssertGreaterThan(tamperRecords(env), before, "\(what): no tamper record", file: file, line: line)
    }

    func victimTemplate(_ label: String) -> [Attribute] {
        [textAttr(CKA_LABEL, label), boolAttr(CKA_SENSITIVE, true), boolAttr(CKA_EXTRACTABLE, false),
         boolAttr(CKA_ENCRYPT, false)]
    }

    // MARK: the attacks

    func testLocalToken() throws { try runAttacks(backendYAML: "") }

    func testSoftHSMBackedToken() throws {
        let hsm = try HygieneHSM()
        try runAttacks(backendYAML: hsm.yaml)
    }

    func runAttacks(backendYAML: String) throws {
        let edits: [(String, (inout [UInt: [UInt8]]) -> Void)] = [
            ("CKA_SENSITIVE → FALSE", { $0[UInt(CKA_SENSITIVE)] = [0] }),
            ("CKA_EXTRACTABLE → TRUE", { $0[UInt(CKA_EXTRACTABLE)] = [1] }),
            ("CKA_CLASS → CKO_DATA", { $0[UInt(CKA_CLASS)] = Encoding.ulong(CKO_DATA) }),
            ("CKA_KEY_TYPE → CKK_GENERIC_SECRET", { $0[UInt(CKA_KEY_TYPE)] = Encoding.ulong(CKK_GENERIC_SECRET) }),
            ("CKA_ENCRYPT → TRUE", { $0[UInt(CKA_ENCRYPT)] = [1] }),
            ("CKA_TG_USE_COUNT → 0", { $0[UInt(CK.attrKeyUseCount)] = Encoding.ulong(0) }),
            ("CKA_TG_CREATED rewritten", { $0[UInt(CK.attrKeyCreated)] = Encoding.ulong(4_000_000_000) }),
            ("CKA_PRIVATE → FALSE", { $0[UInt(CKA_PRIVATE)] = [0] }),
        ]
        for (what, edit) in edits {
            let env = try TestEnvironment(extra: backendYAML)
            let store = Store(db: env.root + "/t0/token.sqlite")
            let m = try env.module()
            let s = try m.readySession()
            let victim = try m.aesKey(s, token: true, extra: victimTemplate("victim"))
            let wrapper = try m.aesKey(s, token: true, extra: [textAttr(CKA_LABEL, "wrapper"), boolAttr(CKA_WRAP, true),
                                                                    boolAttr(CKA_ENCRYPT, false), boolAttr(CKA_DECRYPT, false),
                                                                    boolAttr(CKA_EXTRACTABLE, false)])
            let uid = try uniqueID(m, s, victim)
            try store.editPublic(uid, edit)
            // The module holding the store open: the edited key is never used.
            expectCKR(CKR_DEVICE_ERROR) { _ = try m.attribute(s, victim, CKA_VALUE) }
            expectCKR(CKR_DEVICE_ERROR) { try m.encryptInit(s, mechanism: Mechanism(type: CKM_AES_ECB), key: victim) }
            expectCKR(CKR_DEVICE_ERROR) {
                _ = try twoStep { try m.wrapKey(s, mechanism: Mechanism(type: CKM_AES_KEY_WRAP_PAD), wrappingKey: wrapper,
                                                key: victim, output: $0) }
            }
            XCTAssertEqual(try m.find(s, [textAttr(CKA_LABEL, "victim")]), [], "\(what): the edited key is still found")
            XCTAssertGreaterThan(tamperRecords(env), 0, "\(what): no tamper record")
            m.finalize()
            try assertLoginRefused(env, what)
        }
    }

    func testSwappedAttributeSetsAreRefused() throws {
        let env = try TestEnvironment()
        let store = Store(db: env.root + "/t0/token.sqlite")
        let m = try env.module()
        let s = try m.readySession()
        let locked = try m.aesKey(s, token: true, extra: victimTemplate("locked"))
        let open = try m.aesKey(s, token: true, extra: [textAttr(CKA_LABEL, "open")])
        let (a, b) = (try uniqueID(m, s, locked), try uniqueID(m, s, open))
        let (pa, pb) = (try store.publicAttributes(a), try store.publicAttributes(b))
        // The extractable key's attributes (unique id kept) on the locked key's row.
        try store.editPublic(a) { attrs in
            attrs = pb
            attrs[UInt(CK.attrUniqueID)] = pa[UInt(CK.attrUniqueID)]
        }
        expectCKR(CKR_DEVICE_ERROR) { _ = try m.attribute(s, locked, CKA_VALUE) }
        XCTAssertNotNil(try m.bytes(s, open, CKA_VALUE), "the untouched key still works")
        m.finalize()
        try assertLoginRefused(env, "swapped attribute sets")
    }

    /// A genuine older row of an object (its own MAC valid) put back: CKA_EXTRACTABLE was TRUE, then set FALSE.
    func testReplayedOldRowIsRefused() throws { try replayedOldRow(backendYAML: "") }

    func testReplayedOldRowIsRefusedOnSoftHSMBackedToken() throws {
        let hsm = try HygieneHSM()
        try replayedOldRow(backendYAML: hsm.yaml)
    }

    func replayedOldRow(backendYAML: String) throws {
        let env = try TestEnvironment(extra: backendYAML)
        let store = Store(db: env.root + "/t0/token.sqlite")
        let m = try env.module()
        let s = try m.readySession()
        let key = try m.aesKey(s, token: true, extra: [textAttr(CKA_LABEL, "k"), boolAttr(CKA_SENSITIVE, true)])
        let uid = try uniqueID(m, s, key)
        let saved = try store.row(uid)
        try m.setAttributeValues(s, key, template: [boolAttr(CKA_EXTRACTABLE, false)])
        m.finalize()
        try store.replay(uid, saved)
        XCTAssertEqual(try store.row(uid), saved)
        try assertLoginRefused(env, "replayed row")
    }

    /// An older copy of token.sqlite put back: a destroyed key returns, a PIN change is undone. Refused at login until
    /// the SO accepts it; then the old state is what the token holds.
    func testCopiedBackStoreIsRefusedUntilTheSOAcceptsIt() throws {
        try copiedBackStore(backendYAML: "", backend: LocalBackend())
    }

    /// The HSM keeps the anchor too: rolling the anchor file back with the store does not help.
    func testCopiedBackStoreAndAnchorFileAreRefusedOnSoftHSMBackedToken() throws {
        let hsm = try HygieneHSM()
        try copiedBackStore(backendYAML: hsm.yaml, backend: try BackendFactory.make(BackendConfiguration(kind: "pkcs11", options: hsm.options)),
                            alsoTheAnchorFile: true)
    }

    func copiedBackStore(backendYAML: String, backend: any KeyWrapBackend, alsoTheAnchorFile: Bool = false) throws {
        let env = try TestEnvironment(extra: backendYAML)
        let store = Store(db: env.root + "/t0/token.sqlite")
        let saved = env.root + "/saved.sqlite"
        var m = try env.module()
        var s = try m.readySession()
        let doomed = try m.aesKey(s, token: true, extra: [textAttr(CKA_LABEL, "doomed")])
        try store.copy(to: saved)
        let savedAnchors = env.root + "/saved-anchors"
        try FileManager.default.copyItem(atPath: env.anchorDirectory, toPath: savedAnchors)
        try m.destroyObject(s, doomed)
        try m.setPIN(s, oldPIN: userPIN, newPIN: Array("changed-pin-1".utf8))
        m.finalize()

        try store.restore(from: saved)
        if alsoTheAnchorFile {
            try FileManager.default.removeItem(atPath: env.anchorDirectory)
            try FileManager.default.copyItem(atPath: savedAnchors, toPath: env.anchorDirectory)
        }
        try assertLoginRefused(env, "copied-back store")
        m = try env.module()
        s = try m.openSession(0, flags: CKF_SERIAL_SESSION | CKF_RW_SESSION)
        expectCKR(CKR_DEVICE_ERROR) { try m.login(s, userType: CKU_SO, pin: soPIN) }
        m.finalize()

        // The SO accepts the store as it is (what `tg-pkcs11 token accept-rollback` runs).
        let anchor = TokenAnchor(directory: env.anchorDirectory, backend: backend as? any AnchorHoldingBackend)
        let vault = try TokenVault(database: try TokenDatabase(directory: env.root + "/t0", indexedAttributes: [],
                                                               anchor: anchor),
                                   kdfLog2N: 10)
        let accepted = try vault.acceptState(using: try vault.recoveryKeys(soPIN: soPIN, backend: backend))
        XCTAssertGreaterThan(accepted.generation, try XCTUnwrap(accepted.recordedGeneration))
        XCTAssertEqual(accepted.removed, [String]())
        m = try env.module()
        defer { m.finalize() }
        s = try m.openSession(0, flags: CKF_SERIAL_SESSION | CKF_RW_SESSION)
        try m.login(s, userType: CKU_USER, pin: userPIN)
        XCTAssertEqual(try m.find(s, [textAttr(CKA_LABEL, "doomed")]).count, 1, "the accepted store is the old one")
    }

    /// A lockout is not cleared by copying an older store (or an edited retry counter) back: the anchor's count wins.
    func testLockoutSurvivesACopiedBackStore() throws {
        let env = try TestEnvironment(retries: 3)
        let store = Store(db: env.root + "/t0/token.sqlite")
        let saved = env.root + "/saved.sqlite"
        let m = try env.module()
        let s = try m.readySession(login: false)
        try store.copy(to: saved)
        for _ in 0..<3 {
            XCTAssertThrowsError(try m.login(s, userType: CKU_USER, pin: Array("wrong-pin-00".utf8)))
        }
        expectCKR(CKR_PIN_LOCKED) { try m.login(s, userType: CKU_USER, pin: userPIN) }
        m.finalize()
        try store.restore(from: saved)
        _ = try sqliteShell(store.db, "UPDATE pin SET failed = 0")
        let m2 = try env.module()
        defer { m2.finalize() }
        let s2 = try m2.openSession(0, flags: CKF_SERIAL_SESSION | CKF_RW_SESSION)
        expectCKR(CKR_PIN_LOCKED) { try m2.login(s2, userType: CKU_USER, pin: userPIN) }
    }

    /// Stripping every MAC and marking the file format 1 (as if never migrated) does not get the store re-authenticated
    /// as it is when its anchor has seen it authenticated; a real format-1 store (no anchor) is migrated at login.
    func testDowngradeToFormat1() throws {
        let env = try TestEnvironment()
        let store = Store(db: env.root + "/t0/token.sqlite")
        let m = try env.module()
        let s = try m.readySession()
        let key = try m.aesKey(s, token: true, extra: victimTemplate("k"))
        let uid = try uniqueID(m, s, key)
        m.finalize()
        try store.editPublic(uid) { $0[UInt(CKA_EXTRACTABLE)] = [1] }
        _ = try sqliteShell(store.db, "UPDATE objects SET mac = NULL; UPDATE token SET state_mac = NULL, format_version = 1")
        try assertLoginRefused(env, "downgrade with the anchor present")

        // Another host, no anchor: the unmodified format-1 layout of a store made before authentication migrates.
        try FileManager.default.removeItem(atPath: env.anchorDirectory)
        let m2 = try env.module()
        defer { m2.finalize() }
        let s2 = try m2.openSession(0, flags: CKF_SERIAL_SESSION | CKF_RW_SESSION)
        try m2.login(s2, userType: CKU_USER, pin: userPIN)
        XCTAssertEqual(try sqliteShell(store.db, "SELECT format_version, state_mac IS NOT NULL FROM token"), ["2|1"])
        XCTAssertEqual(try sqliteShell(store.db, "SELECT count(*) FROM objects WHERE mac IS NULL"), ["0"])
    }

    /// A public data object written without a login carries no MAC until the next login authenticates it; an object
    /// written while logged in cannot be changed without the login.
    func testPublicObjectsWithoutLogin() throws {
        let env = try TestEnvironment()
        let store = Store(db: env.root + "/t0/token.sqlite")
        let m = try env.module()
        defer { m.finalize() }
        let s = try m.readySession(login: false)
        let data: [Attribute] = [ulongAttr(CKA_CLASS, CKO_DATA), boolAttr(CKA_TOKEN, true), boolAttr(CKA_PRIVATE, false)]
        let anonymous = try m.createObject(s, template: data + [textAttr(CKA_LABEL, "anonymous")])
        let uid = try uniqueID(m, s, anonymous)
        XCTAssertEqual(try sqliteShell(store.db, "SELECT mac IS NULL FROM objects WHERE unique_id = '\(uid)'"), ["1"])
        try m.setAttributeValues(s, anonymous, template: [textAttr(CKA_LABEL, "renamed")])
        try m.login(s, userType: CKU_USER, pin: userPIN)
        XCTAssertEqual(try sqliteShell(store.db, "SELECT mac IS NULL FROM objects WHERE unique_id = '\(uid)'"), ["0"])
        // Another process, not logged in, writes a public data object while this one is logged in: it is used as is.
        let other = try env.module()
        let os = try other.openSession(0, flags: CKF_SERIAL_SESSION | CKF_RW_SESSION)
        _ = try other.createObject(os, template: data + [textAttr(CKA_LABEL, "from-elsewhere"), bytesAttr(CKA_VALUE, [1, 2, 3])])
        other.finalize()
        let seen = try XCTUnwrap(try m.find(s, [textAttr(CKA_LABEL, "from-elsewhere")]).first)
        XCTAssertEqual(try m.bytes(s, seen, CKA_VALUE), [1, 2, 3])
        XCTAssertEqual(tamperRecords(env), 0)
        let signed = try m.createObject(s, template: data + [textAttr(CKA_LABEL, "signed")])
        try m.logout(s)
        expectCKR(CKR_USER_NOT_LOGGED_IN) { try m.setAttributeValues(s, signed, template: [textAttr(CKA_LABEL, "x")]) }
        expectCKR(CKR_USER_NOT_LOGGED_IN) { try m.destroyObject(s, signed) }
        XCTAssertEqual(try m.find(s, [textAttr(CKA_LABEL, "renamed")]).count, 1)
    }

    /// Fixtures/format1-token.sqlite was written by the format-1 module (fc64925): SO PIN so-pin-1234, user PIN
    /// user-pin-1234, an AES-256 key `v1key` of 32 × "K" (decrypt) and a public data object `v1data`. The first
    /// login migrates it: every row gets its MAC, the file becomes format 2, the key still decrypts.
    /// The N2HE ledgers (seeds a `seeded-once` key has decrypted, decrypt calls counted per hour) are part of the
    /// authenticated state: deleting a spent seed (to decrypt that ciphertext again) or resetting a count in the
    /// file fails the next login.
    func testEditedN2HELedgersAreRefused() throws {
        let edits = [
            ("a spent seed deleted", "DELETE FROM spent_seeds WHERE digest = X'02'"),
            ("a spent seed added", "INSERT INTO spent_seeds VALUES ('ledger-a', X'00112233')"),
            ("an hour's count reset", "UPDATE hourly_calls SET calls = 0"),
            ("an hour's count deleted", "DELETE FROM hourly_calls"),
            ("the ledger digest removed", "UPDATE token SET ledger_digest = NULL"),
        ]
        for (what, sql) in edits {
            let env = try TestEnvironment()
            let store = Store(db: env.root + "/t0/token.sqlite")
            let m = try env.module()
            _ = try m.readySession()
            let token = m.tokens[0]
            let keys = try token.vault.login(role: .user, pin: userPIN, backend: token.backend)
            XCTAssertTrue(try token.database.spendSeeds(ledgerID: "ledger-a", digests: [[1], [2], [3]], keys: keys))
            XCTAssertFalse(try token.database.spendSeeds(ledgerID: "ledger-a", digests: [[2]], keys: keys), "spent once")
            for _ in 0..<3 {
                XCTAssertTrue(try token.database.chargeHourlyCall(ledgerID: "ledger-a", hour: 7, limit: 3, keys: keys))
            }
            XCTAssertFalse(try token.database.chargeHourlyCall(ledgerID: "ledger-a", hour: 7, limit: 3, keys: keys))
            XCTAssertTrue(try token.database.chargeHourlyCall(ledgerID: "ledger-a", hour: 8, limit: 3, keys: keys),
                          "a new hour prunes the old one")
            m.finalize()
            let untouched = try env.module()
            let s = try untouched.openSession(0, flags: CKF_SERIAL_SESSION | CKF_RW_SESSION)
            try untouched.login(s, userType: CKU_USER, pin: userPIN)
            untouched.finalize()
            _ = try sqliteShell(store.db, sql)
            try assertLoginRefused(env, what)
        }
    }

    func testStoreWrittenByTheFormat1ModuleMigratesAtFirstLogin() throws {
        let env = try TestEnvironment()
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/format1-token.sqlite").path
        try FileManager.default.createDirectory(atPath: env.root + "/t0", withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let db = env.root + "/t0/token.sqlite"
        try FileManager.default.copyItem(atPath: fixture, toPath: db)
        chmod(db, 0o600)
        XCTAssertEqual(try sqliteShell(db, "SELECT format_version FROM token"), ["1"])
        let m = try env.module()
        defer { m.finalize() }
        let s = try m.openSession(0, flags: CKF_SERIAL_SESSION | CKF_RW_SESSION)
        XCTAssertEqual(try m.find(s, [textAttr(CKA_LABEL, "v1data")]).count, 1, "public objects show before the login")
        try m.login(s, userType: CKU_USER, pin: userPIN)
        XCTAssertEqual(try sqliteShell(db, "SELECT format_version, state_mac IS NOT NULL FROM token"), ["2|1"])
        XCTAssertEqual(try sqliteShell(db, "SELECT count(*), count(mac) FROM objects"), ["2|2"])
        XCTAssertEqual(try sqliteShell(db, "SELECT ledger_digest IS NOT NULL FROM token"), ["1"], "ledgers authenticated too")
        let key = try XCTUnwrap(try m.find(s, [textAttr(CKA_LABEL, "v1key")]).first)
        XCTAssertEqual(try m.decryptAll(s, Mechanism(type: CKM_AES_ECB), key, hex("59ce414dba32456402cf3844d8696c62")),
                       Array("0123456789abcdef".utf8))
        XCTAssertEqual(tamperRecords(env), 0)
        // Tampering after the migration is caught like on any format-2 store.
        try m.logout(s)
        let uid = try uniqueID(m, s, try XCTUnwrap(try m.find(s, [textAttr(CKA_LABEL, "v1data")]).first))
        try Store(db: db).editPublic(uid) { $0[UInt(CKA_LABEL)] = Array("renamed".utf8) }
        expectCKR(CKR_DEVICE_ERROR) { try m.login(s, userType: CKU_USER, pin: userPIN) }
    }
}
