// `tg-pkcs11 doctor`: which config file by which rule, the loader's verdict, permissions, backend, store integrity;
// exit status 1 exactly when a check fails.
import Foundation
import XCTest
import TestSupport

final class DoctorTests: XCTestCase {
    struct Report: Decodable {
        struct Check: Decodable {
            let name: String
            let token: String?
            let status: String
            let detail: String
            let hint: String?
        }
        let config: String?
        let discovery: String
        let checks: [Check]
        let healthy: Bool

        func check(_ name: String) -> Check? { checks.first { $0.name == name } }
    }

    func doctor(_ m: Machine, _ extra: [String] = [], expectFailure: Bool = false,
                file: StaticString = #filePath, line: UInt = #line) throws -> Report {
        let r = try CLI.run(["doctor", "--json"] + extra, environment: m.env, file: file, line: line)
        XCTAssertEqual(r.status, expectFailure ? 1 : 0, r.transcript, file: file, line: line)
        return try JSONDecoder().decode(Report.self, from: Data(r.stdout.utf8))
    }

    func localMachine(_ name: String) throws -> Machine {
        let m = try Machine(name)
        try m.configure("""
            tokens:
              - name: doc
                store: \(m.dir.file("store"))
                pin_kdf_cost: 10
                backend: { kind: local }

            """)
        return m
    }

    func testHealthyTokenAndDiscoveryRule() throws {
        let m = try localMachine("doctor-ok")
        try m.initToken("doc", label: "doc-token")
        let report = try doctor(m)
        XCTAssertTrue(report.healthy)
        XCTAssertEqual(report.discovery, "$XDG_CONFIG_HOME")
        XCTAssertEqual(report.config, m.configPath)
        XCTAssertEqual(report.check("config-valid")?.status, "ok")
        XCTAssertEqual(report.check("store-permissions")?.status, "ok")
        XCTAssertEqual(report.check("database-permissions")?.status, "ok")
        XCTAssertEqual(report.check("backend")?.status, "ok")
        let integrity = try XCTUnwrap(report.check("store-integrity"))
        XCTAssertEqual(integrity.status, "ok")
        XCTAssertTrue(integrity.detail.contains("integrity ok, format version 2, initialised"), integrity.detail)
        let text = try CLI.ok(["doctor"], environment: m.env)
        XCTAssertTrue(text.stdout.contains("[ok]   config-found: \(m.configPath) (from $XDG_CONFIG_HOME)"), text.transcript)
        XCTAssertTrue(text.stdout.contains("healthy"), text.transcript)

        // An explicit --config wins and is named as such.
        let explicit = try doctor(m, ["--config", m.configPath])
        XCTAssertEqual(explicit.discovery, "--config")

        // A private directory left by an interrupted backup is pointed out.
        try FileManager.default.createDirectory(atPath: m.dir.file("store/.backup-AbC123"), withIntermediateDirectories: false)
        let leftover = try doctor(m)
        XCTAssertEqual(leftover.check("store-leftovers")?.status, "warn")
        XCTAssertTrue(leftover.check("store-leftovers")?.detail.contains(".backup-AbC123") ?? false)
        XCTAssertNil(report.check("store-leftovers"))

        // Loose permissions on the store: a warning with a hint, not a failure.
        chmod(m.dir.file("store"), 0o755)
        let loose = try doctor(m)
        XCTAssertEqual(loose.check("store-permissions")?.status, "warn")
        XCTAssertEqual(loose.check("store-permissions")?.hint, "chmod 700 \(m.dir.file("store")); it must be owned by the account that runs the module")
    }

    func testConfigurationProblemsFail() throws {
        let m = try localMachine("doctor-config")
        chmod(m.configPath, 0o666)
        let writable = try doctor(m, expectFailure: true)
        XCTAssertEqual(writable.check("config-permissions")?.status, "fail")
        XCTAssertEqual(writable.check("config-permissions")?.hint, "chmod go-w \(m.configPath)")
        XCTAssertEqual(writable.check("config-valid")?.status, "fail")

        try m.configure("tokens:\n  - name: doc\n    colour: blue\n")
        let invalid = try doctor(m, expectFailure: true)
        let valid = try XCTUnwrap(invalid.check("config-valid"))
        XCTAssertEqual(valid.status, "fail")
        XCTAssertTrue(valid.detail.contains("colour"), valid.detail)
        let text = try CLI.run(["doctor"], environment: m.env)
        XCTAssertEqual(text.status, 1)
        XCTAssertTrue(text.stdout.contains("[FAIL] config-valid"), text.transcript)
        XCTAssertTrue(text.stdout.contains("hint: fix the file"), text.transcript)

        var missing = m
        missing.env["TENSORGUARD_PKCS11_CONF"] = m.dir.file("nope.yaml")
        let gone = try doctor(missing, expectFailure: true)
        XCTAssertEqual(gone.discovery, "$TENSORGUARD_PKCS11_CONF")
        XCTAssertEqual(gone.check("config-found")?.status, "fail")
    }

    func testPKCS11BackendKEKAndRecordedBackend() throws {
        guard FileManager.default.fileExists(atPath: BackupRestoreTests.softhsm) else {
            throw MissingDependency.softHSM2
        }
        let m = try BackupRestoreTests.hsmMachine("doctor-hsm", kek: "kek", createKEK: false)
        let missing = try doctor(m, expectFailure: true)
        let backend = try XCTUnwrap(missing.check("backend"))
        XCTAssertEqual(backend.status, "fail")
        XCTAssertTrue(backend.detail.contains("kek"), backend.detail)
        XCTAssertEqual(backend.hint, "tg-pkcs11 backend check --token hsm-token shows every step")
        XCTAssertNil(try doctor(m, ["--skip-backend"]).check("backend"))

        try CLI.ok(["backend", "create-kek", "--label", "kek"], environment: m.env)
        try m.initToken("hsm-token", label: "hsm-doc")
        let healthy = try doctor(m)
        XCTAssertEqual(healthy.check("backend")?.status, "ok")
        XCTAssertNil(healthy.check("backend-match"))

        // The configuration names another HSM token than the one the root key is wrapped on.
        try m.configure(BackupRestoreTests.hsmConfig(m, name: "hsm-token", kek: "kek")
            .replacingOccurrences(of: "token_label: hsm", with: "token_label: other-hsm"))
        let mismatch = try doctor(m, ["--skip-backend"], expectFailure: true)   // compared without contacting it
        let match = try XCTUnwrap(mismatch.check("backend-match"))
        XCTAssertEqual(match.status, "fail")
        XCTAssertTrue(match.detail.contains("token-label=hsm") && match.detail.contains("token-label=other-hsm"), match.detail)
    }

    func testDamagedStoreFails() throws {
        let m = try localMachine("doctor-store")
        try m.initToken("doc", label: "doc-token")
        for i in 1...4 {   // N2HE keys are 8 KiB each: enough pages for a damaged interior page to be noticed
            try CLI.ok(["key", "generate", "--token", "doc-token", "--label", "k\(i)"], environment: m.env)
        }
        try CLI.ok(["token", "show"], environment: m.env)   // the last connection to close checkpoints the WAL
        let db = m.dir.file("store/token.sqlite")
        XCTAssertFalse(FileManager.default.fileExists(atPath: db + "-wal"))
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: db)))
        XCTAssertGreaterThan(bytes.count, 4096 * 3)
        for i in 4096..<(4096 + 2048) { bytes[i] = 0xA5 }   // scribble over the second page
        try Data(bytes).write(to: URL(fileURLWithPath: db))
        let report = try doctor(m, ["--token", "doc"], expectFailure: true)
        XCTAssertEqual(report.check("store-integrity")?.status, "fail", "\(report.checks)")
        XCTAssertEqual(report.check("store-integrity")?.hint, "restore the token from a backup")

        let unknown = try doctor(m, ["--token", "nope"], expectFailure: true)
        XCTAssertEqual(unknown.check("token")?.status, "fail")
        XCTAssertTrue(unknown.check("token")?.detail.contains("no token named 'nope'") ?? false, "\(unknown.checks)")
    }
}
