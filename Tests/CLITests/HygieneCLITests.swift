// Issue 13 through tg-pkcs11: `restore --force` killed (SIGKILL) between any two of its steps leaves a working token
// — the old one or the restored one, never none — with the kill point injected by the debug build's test mode
// (TG_PKCS11_TEST_CRASH_AT), not by timing; `doctor` fails a disabled audit log that gives no reason and applies the
// module's ownership rule to the config and the store.
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import XCTest
import TestSupport

final class HygieneCLITests: XCTestCase {
    /// Runs tg-pkcs11 expecting it to be killed by SIGKILL at `point`.
    func runKilled(_ arguments: [String], at point: String, environment: [String: String],
                   file: StaticString = #filePath, line: UInt = #line) throws {
        let binary = try CLI.requireBinary(file: file, line: line)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = arguments
        p.environment = CLI.childEnvironment(environment.merging(["TG_PKCS11_TEST_CRASH_AT": point]) { $1 })
        p.standardInput = FileHandle.nullDevice
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        try p.run()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .uncaughtSignal,
                       "tg-pkcs11 was not killed at \(point) (a release build ignores TG_PKCS11_TEST_CRASH_AT; test the debug build): "
                       + "exit \(p.terminationStatus)\n\(stderr)", file: file, line: line)
        XCTAssertEqual(p.terminationStatus, SIGKILL, stderr, file: file, line: line)
    }

    func labels(_ m: Machine, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        try CLI.ok(["key", "list", "--token", "fl-node"], environment: m.env, file: file, line: line).stdout
    }

    func testRestoreForceKilledAtEveryStepLeavesAWorkingToken() throws {
        let a = try Machine("restore-crash")
        try a.configure("""
            tokens:
              - name: node-a
                store: \(a.dir.file("store-a"))
                pin_kdf_cost: 10
                backend: { kind: local }

            """)
        try a.initToken("node-a", label: "fl-node")
        try CLI.ok(["key", "generate", "--token", "fl-node", "--label", "fresh"], environment: a.env)
        let backup = a.dir.file("node-a.tgbackup")
        try CLI.ok(["backup", "--token", "node-a", "--output", backup, "--so-pin-env", "SO_PIN"], environment: a.env)
        // The current token differs from the backup by one key, so old and restored are told apart.
        try CLI.ok(["key", "generate", "--token", "fl-node", "--label", "after-backup"], environment: a.env)
        XCTAssertTrue(try labels(a).contains("after-backup"))
        let store = a.dir.file("store-a"), db = store + "/token.sqlite"
        let restore = ["restore", "--token", "node-a", "--file", backup, "--so-pin-env", "SO_PIN", "--force"]

        for (point, restored) in [("restore-kept-aside", false), ("restore-log-removed", false), ("restore-replaced", true)] {
            try runKilled(restore, at: point, environment: a.env)
            XCTAssertTrue(FileManager.default.fileExists(atPath: db), "no token.sqlite after a kill at \(point)")
            let listed = try labels(a)
            XCTAssertTrue(listed.contains("fresh"), "killed at \(point): the token does not work\n\(listed)")
            XCTAssertEqual(listed.contains("after-backup"), !restored,
                           "killed at \(point): expected the \(restored ? "restored" : "old") token\n\(listed)")
            let entries = try FileManager.default.contentsOfDirectory(atPath: store)
            XCTAssertTrue(entries.contains { $0.hasPrefix("token.sqlite.replaced-") }, "the old database is kept aside: \(entries)")
            // Put the old token back for the next point (a restore of the current state would hide a lost one).
            if restored {
                try CLI.ok(["key", "generate", "--token", "fl-node", "--label", "after-backup"], environment: a.env)
            }
        }
        // The interrupted runs leave their private directories, which doctor points out; a full run still works.
        let doctor = try CLI.run(["doctor"], environment: a.env)
        XCTAssertTrue(doctor.stdout.contains("store-leftovers"), doctor.transcript)
        try CLI.ok(restore, environment: a.env)
        XCTAssertFalse(try labels(a).contains("after-backup"))
        let kept = try FileManager.default.contentsOfDirectory(atPath: store).filter { $0.hasPrefix("token.sqlite.replaced-") }
        XCTAssertGreaterThanOrEqual(kept.count, 2, "\(kept)")
        try CLI.ok(["audit", "verify"], environment: a.env)
    }

    func testRestoreCreatesAPrivateStoreWhateverTheUmask() throws {
        let a = try Machine("restore-umask")
        let store = a.dir.file("new/deep/store")
        try a.configure("""
            tokens:
              - name: src
                store: \(a.dir.file("store-src"))
                pin_kdf_cost: 10
              - name: dst
                store: \(store)
                pin_kdf_cost: 10

            """)
        try a.initToken("src", label: "src")
        let backup = a.dir.file("src.tgbackup")
        try CLI.ok(["backup", "--token", "src", "--output", backup, "--so-pin-env", "SO_PIN"], environment: a.env)
        let saved = umask(0)   // inherited by tg-pkcs11
        defer { umask(saved) }
        try CLI.ok(["restore", "--token", "dst", "--file", backup, "--so-pin-env", "SO_PIN"], environment: a.env)
        func mode(_ p: String) -> Int {
            ((try? FileManager.default.attributesOfItem(atPath: p))?[.posixPermissions] as? NSNumber)?.intValue ?? -1
        }
        for d in [a.dir.file("new"), a.dir.file("new/deep"), store] { XCTAssertEqual(mode(d), 0o700, d) }
        XCTAssertEqual(mode(store + "/token.sqlite"), 0o600)
        XCTAssertEqual(mode(a.dir.file("xdg-data/tensorguard-pkcs11/audit.log")), 0o600)
    }

    // MARK: doctor

    struct Report: Decodable {
        struct Check: Decodable { let name: String; let status: String; let detail: String; let hint: String? }
        let checks: [Check]
        let healthy: Bool
        func check(_ name: String) -> Check? { checks.first { $0.name == name } }
    }

    func doctor(_ m: Machine, expectFailure: Bool, file: StaticString = #filePath, line: UInt = #line) throws -> Report {
        let r = try CLI.run(["doctor", "--json", "--skip-backend"], environment: m.env, file: file, line: line)
        XCTAssertEqual(r.status, expectFailure ? 1 : 0, r.transcript, file: file, line: line)
        return try JSONDecoder().decode(Report.self, from: Data(r.stdout.utf8))
    }

    func machine(_ name: String, audit: String) throws -> Machine {
        let m = try Machine(name)
        try m.configure("""
            \(audit)
            tokens:
              - name: doc
                store: \(m.dir.file("store"))
                pin_kdf_cost: 10
                backend: { kind: local }

            """)
        return m
    }

    func testDoctorFailsADisabledAuditLogWithoutAReason() throws {
        let on = try doctor(try machine("audit-on", audit: ""), expectFailure: false)
        XCTAssertEqual(on.check("audit")?.status, "ok")
        XCTAssertTrue(on.check("audit")?.detail.contains("audit log on: file ") ?? false, "\(String(describing: on.check("audit")))")

        let off = try machine("audit-off", audit: "audit: { enabled: false }")
        let failed = try doctor(off, expectFailure: true)
        let check = try XCTUnwrap(failed.check("audit"))
        XCTAssertEqual(check.status, "fail")
        XCTAssertTrue(check.detail.contains("gives no reason"), check.detail)
        XCTAssertTrue(check.hint?.contains("reason") ?? false)
        XCTAssertEqual(failed.check("config-valid")?.status, "ok", "the module itself still accepts the configuration")
        let text = try CLI.run(["doctor", "--skip-backend"], environment: off.env)
        XCTAssertEqual(text.status, 1)
        XCTAssertTrue(text.stdout.contains("[FAIL] audit: audit log disabled"), text.transcript)

        let reasoned = try machine("audit-reason", audit: "audit: { enabled: false, reason: \"lab host, test keys only\" }")
        let ok = try doctor(reasoned, expectFailure: false)
        XCTAssertEqual(ok.check("audit")?.status, "warn")
        XCTAssertTrue(ok.check("audit")?.detail.contains("reason: lab host, test keys only") ?? false)

        for (audit, message) in [("audit: { reason: \"no\" }", "needs enabled: false"),
                                 ("audit: { enabled: false, reason: \"\" }", "audit.reason must be one line of text")] {
            let bad = try doctor(try machine("audit-bad", audit: audit), expectFailure: true)
            XCTAssertEqual(bad.check("config-valid")?.status, "fail", audit)
            XCTAssertTrue(bad.check("config-valid")?.detail.contains(message) ?? false, "\(audit): \(String(describing: bad.check("config-valid")))")
        }
    }

    func testDoctorAppliesTheModulesOwnershipRule() throws {
        let m = try machine("doctor-perm", audit: "")
        try m.initToken("doc", label: "perm")
        XCTAssertTrue(try doctor(m, expectFailure: false).healthy)
        // The config's directory writable by others: the module refuses the file, doctor says why.
        let configDir = m.dir.file("xdg-config/tensorguard-pkcs11")
        chmod(configDir, 0o777)
        let loose = try doctor(m, expectFailure: true)
        XCTAssertEqual(loose.check("config-permissions")?.status, "fail")
        XCTAssertTrue(loose.check("config-permissions")?.detail.contains("\(configDir) is group- or world-writable") ?? false)
        XCTAssertEqual(loose.check("config-valid")?.status, "fail")
        chmod(configDir, 0o755)
        // A group-writable store: was a warning, is now refused by the module, so a failure.
        let store = m.dir.file("store")
        chmod(store, 0o770)
        let shared = try doctor(m, expectFailure: true)
        XCTAssertEqual(shared.check("store-permissions")?.status, "fail")
        XCTAssertTrue(shared.check("store-permissions")?.detail.contains("mode 0770") ?? false)
        XCTAssertEqual(shared.check("store-integrity")?.status, "fail")
        XCTAssertTrue(shared.check("store-integrity")?.detail.contains("refusing the token store") ?? false)
        chmod(store, 0o700)
        chmod(store + "/token.sqlite", 0o666)
        let db = try doctor(m, expectFailure: true)
        XCTAssertEqual(db.check("database-permissions")?.status, "fail")
        chmod(store + "/token.sqlite", 0o600)
        XCTAssertTrue(try doctor(m, expectFailure: false).healthy)
    }
}
