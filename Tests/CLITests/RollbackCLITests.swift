// Issue 13 through tg-pkcs11: an older token.sqlite copied back over a token is refused (the module through `key
// list`, `doctor`'s store-anchor check) until the SO runs `token accept-rollback`, which is audited; then the older
// store is what the token holds. The anchor lives under the machine's HOME (~/.local/state), apart from the store.
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import XCTest
import TestSupport

final class RollbackCLITests: XCTestCase {
    struct Doctor: Decodable {
        struct Check: Decodable { let name: String; let token: String?; let status: String; let detail: String }
        let checks: [Check]
        func check(_ name: String) -> Check? { checks.first { $0.name == name } }
    }

    struct Accepted: Decodable {
        let storedGeneration: Int64
        let recordedGeneration: Int64?
        let generation: Int64
        let removed: [String]
    }

    func sqlite(_ db: String, _ command: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        p.arguments = [db, command]
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "sqlite3 \(command)")
    }

    func testCopiedBackStoreIsRefusedUntilAccepted() throws {
        let m = try Machine("rollback")
        let store = m.dir.file("store-a"), db = store + "/token.sqlite", saved = m.dir.file("saved.sqlite")
        try m.configure("""
            audit: { file: \(m.dir.file("audit.log")) }
            tokens:
              - name: node-a
                store: \(store)
                pin_kdf_cost: 10
                backend: { kind: local }

            """)
        try m.initToken("node-a", label: "fl-node")
        try CLI.ok(["key", "generate", "--token", "fl-node", "--label", "kept"], environment: m.env)
        try sqlite(db, ".backup '\(saved)'")
        try CLI.ok(["key", "generate", "--token", "fl-node", "--label", "later"], environment: m.env)
        let anchors = m.dir.file("home/.local/state/tensorguard-pkcs11/anchors")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: anchors).count, 1, "one anchor, by default under HOME")

        // The older copy goes back, as `cp` would put it.
        for f in [db, db + "-wal", db + "-shm"] { unlink(f) }
        try FileManager.default.copyItem(atPath: saved, toPath: db)
        try CLI.fails(["key", "list", "--token", "fl-node"], with: "CKR_DEVICE_ERROR", environment: m.env)
        let report = try CLI.run(["doctor", "--json", "--skip-backend"], environment: m.env)
        let doctor = try JSONDecoder().decode(Doctor.self, from: Data(report.stdout.utf8))
        XCTAssertEqual(doctor.check("store-anchor")?.status, "fail", report.transcript)
        XCTAssertNotEqual(report.status, 0, "doctor reports the rolled-back store as unhealthy")

        try CLI.fails(["token", "accept-rollback", "--token", "node-a", "--so-pin-env", "NOPE"], with: "NOPE", environment: m.env)
        let out = try CLI.ok(["token", "accept-rollback", "--token", "node-a", "--so-pin-env", "SO_PIN", "--json"], environment: m.env)
        let accepted = try JSONDecoder().decode(Accepted.self, from: Data(out.stdout.utf8))
        XCTAssertLessThan(accepted.storedGeneration, try XCTUnwrap(accepted.recordedGeneration))
        XCTAssertGreaterThan(accepted.generation, try XCTUnwrap(accepted.recordedGeneration))
        XCTAssertEqual(accepted.removed, [])

        let list = try CLI.ok(["key", "list", "--token", "fl-node"], environment: m.env).stdout
        XCTAssertTrue(list.contains("kept"), list)
        XCTAssertFalse(list.contains("later"), "the accepted store is the older copy\n\(list)")
        let audit = try String(contentsOfFile: m.dir.file("audit.log"), encoding: .utf8)
        XCTAssertTrue(audit.contains("\"event\":\"tamper\""), "the refused login is audited")
        XCTAssertTrue(audit.contains("\"event\":\"rollback_accept\""), "the acceptance is audited")
        try CLI.ok(["audit", "verify", "--file", m.dir.file("audit.log")], environment: m.env)
    }
}
