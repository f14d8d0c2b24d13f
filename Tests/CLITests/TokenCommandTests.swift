// `tg-pkcs11 token show | delete` (a configured token's store) and `token init --json`.
import Foundation
import XCTest

final class TokenCommandTests: XCTestCase {
    struct Report: Decodable {
        struct PIN: Decodable { let set: Bool; let failedAttempts: Int; let maxAttempts: Int; let remainingAttempts: Int; let locked: Bool }
        struct Descriptor: Decodable { let kind: String; let keyID: String; let keyVersion: String }
        let name: String
        let slot: Int
        let store: String
        let exists: Bool
        let initialized: Bool
        let label: String?
        let serial: String?
        let formatVersion: Int?
        let configuredBackend: Descriptor
        let recordedBackend: Descriptor?
        let objects: Int?
        let objectsByClass: [String: Int]?
        let keysByType: [String: Int]?
        let soPIN: PIN?
        let userPIN: PIN?
        struct Audit: Decodable { let enabled: Bool; let file: String? }
        let audit: Audit?
    }

    func machine(_ name: String) throws -> Machine {
        let m = try Machine(name)
        try m.configure("""
            tokens:
              - name: first
                store: \(m.dir.file("store-first"))
                pin_kdf_cost: 10
              - name: second
                store: \(m.dir.file("store-second"))
                pin_kdf_cost: 10
                max_pin_retries: 5

            """)
        return m
    }

    func show(_ m: Machine, _ token: String) throws -> Report {
        let r = try CLI.ok(["token", "show", "--token", token, "--json"], environment: m.env)
        return try JSONDecoder().decode(Report.self, from: Data(r.stdout.utf8))
    }

    func testInitJSONAndShow() throws {
        let m = try machine("token-show")
        let none = try show(m, "second")
        XCTAssertFalse(none.exists)
        XCTAssertEqual(none.slot, 1)
        XCTAssertNil(none.objects)
        try CLI.fails(["token", "show"], with: "choose one with --token NAME", environment: m.env)
        try CLI.fails(["token", "show", "--token", "third"], with: "no token named 'third'", environment: m.env)

        let initResult = try CLI.ok(["token", "init", "--slot", "1", "--label", "second-label", "--so-pin-env", "SO_PIN", "--json"],
                              environment: m.env)
        struct Init: Decodable { let slot: UInt; let label: String; let serial: String; let flags: [String] }
        let i = try JSONDecoder().decode(Init.self, from: Data(initResult.stdout.utf8))
        XCTAssertEqual(i.slot, 1)
        XCTAssertEqual(i.label, "second-label")
        XCTAssertTrue(i.flags.contains("token-initialized"), "\(i.flags)")
        try CLI.ok(["key", "generate", "--token", "second-label", "--label", "n1"], environment: m.env)
        try CLI.ok(["key", "generate", "--token", "second-label", "--label", "n2"], environment: m.env)
        // One wrong user PIN shows in the counters.
        var wrong = m.env
        wrong["TG_PKCS11_PIN"] = "wrong-user-pin"
        try CLI.fails(["key", "list", "--token", "second-label"], with: "CKR_PIN_INCORRECT", environment: wrong)

        let r = try show(m, "second")
        XCTAssertTrue(r.exists && r.initialized)
        XCTAssertEqual(r.label, "second-label")
        XCTAssertEqual(r.serial, i.serial)
        XCTAssertEqual(r.formatVersion, 2)
        XCTAssertEqual(r.store, m.dir.file("store-second"))
        XCTAssertEqual(r.configuredBackend.kind, "local")
        XCTAssertEqual(r.recordedBackend?.kind, "local")
        XCTAssertEqual(r.objects, 2)
        XCTAssertEqual(r.objectsByClass, ["secret-key": 2])
        XCTAssertEqual(r.keysByType, ["N2HE": 2])
        XCTAssertEqual(r.userPIN?.failedAttempts, 1)
        XCTAssertEqual(r.userPIN?.remainingAttempts, 4)
        XCTAssertEqual(r.soPIN?.maxAttempts, 5)
        XCTAssertEqual(r.soPIN?.locked, false)
        XCTAssertEqual(r.audit?.enabled, true)
        XCTAssertEqual(r.audit?.file, m.dir.file("xdg-data/tensorguard-pkcs11/audit.log"))
        let text = try CLI.ok(["token", "show", "--token", "second"], environment: m.env)
        XCTAssertTrue(text.stdout.contains("secret keys:      N2HE 2"), text.transcript)
        XCTAssertTrue(text.stdout.contains("user PIN:         4 of 5 attempts left"), text.transcript)
        XCTAssertFalse(text.stdout.contains(BackupRestoreTests.soPIN) || text.stdout.contains(BackupRestoreTests.userPIN))
    }

    func testDeleteNeedsSOPINAndConfirmation() throws {
        let m = try machine("token-delete")
        try m.initToken("first", label: "first-label")
        try CLI.ok(["key", "generate", "--token", "first-label", "--label", "k"], environment: m.env)
        let db = m.dir.file("store-first/token.sqlite")

        try CLI.fails(["token", "delete", "--token", "first", "--so-pin-env", "SO_PIN"], with: "without --yes", environment: m.env)
        var wrong = m.env
        wrong["SO_PIN"] = "wrong-so-pin"
        try CLI.fails(["token", "delete", "--token", "first", "--so-pin-env", "SO_PIN", "--yes"], with: "SO PIN incorrect",
                      environment: wrong)
        XCTAssertTrue(FileManager.default.fileExists(atPath: db))
        XCTAssertEqual(try show(m, "first").soPIN?.failedAttempts, 1, "the wrong SO PIN counts like a C_Login")

        let r = try CLI.ok(["token", "delete", "--token", "first", "--so-pin-env", "SO_PIN", "--yes", "--json"], environment: m.env)
        struct Deleted: Decodable { let token: String; let removed: [String]; let storeDirectoryRemoved: Bool; let label: String? }
        let d = try JSONDecoder().decode(Deleted.self, from: Data(r.stdout.utf8))
        XCTAssertEqual(d.label, "first-label")
        XCTAssertTrue(d.removed.contains(db))
        XCTAssertTrue(d.storeDirectoryRemoved)
        XCTAssertFalse(FileManager.default.fileExists(atPath: m.dir.file("store-first")))
        try CLI.fails(["token", "delete", "--token", "first", "--yes"], with: "nothing to delete", environment: m.env)

        // A store path that does not hold a token database is never touched.
        try FileManager.default.createDirectory(atPath: m.dir.file("store-second"), withIntermediateDirectories: true)
        let impostor = try m.dir.write("store-second/token.sqlite", "precious data, not a database")
        try CLI.fails(["token", "delete", "--token", "second", "--yes"], with: "is not a token database", environment: m.env)
        XCTAssertEqual(try String(contentsOfFile: impostor, encoding: .utf8), "precious data, not a database")
    }
}
