// `tg-pkcs11 audit verify | show` on a log our module wrote through the CLI's own commands (token init, key
// generate, encrypt): a good log verifies (with the token's checkpoints given its PIN), tampered logs fail with
// "line N: ...", show filters and prints JSON, and no PIN or key byte is ever in the log.
import Audit
import Foundation
import XCTest
import TestSupport

final class AuditCommandTests: XCTestCase {
    static let userPIN = "audit-user-pin-1"
    static let soPIN = "audit-so-pin-1"

    var dir: TemporaryDirectory!
    var env: [String: String] = [:]
    var log: String { dir.file("audit.log") }

    override func setUpWithError() throws {
        guard let module = CLI.modulePath, FileManager.default.fileExists(atPath: module) else {
            throw MissingDependency("the module is not built: \(CLI.modulePath ?? "?") (run `swift build` first, or set TG_PKCS11_MODULE)")
        }
        dir = try TemporaryDirectory("tg-cli-audit")
        let config = try dir.write("config.yaml", """
            audit: { file: \(dir.file("audit.log")), sync: false }
            tokens:
              - name: audited
                store: \(dir.file("store"))
                backend: { kind: local }
                pin_kdf_cost: 10

            """, mode: 0o600)
        env = ["TENSORGUARD_PKCS11_CONF": config, "TG_PKCS11_MODULE": module, "SO_PIN": Self.soPIN,
               "TG_PKCS11_PIN": Self.userPIN]
        try CLI.ok(["token", "init", "--slot", "0", "--label", "audited", "--so-pin-env", "SO_PIN",
                    "--pin-env", "TG_PKCS11_PIN"], environment: env)
        try CLI.ok(["key", "generate", "--token", "audited", "--label", "audit-key"], environment: env)
        try CLI.ok(["encrypt", "--token", "audited", "--key", "audit-key", "--format", "lwe2", "--values", "[1, 2, 3]",
                    "--output", dir.file("ct")], environment: env)
    }

    override func tearDown() {
        dir = nil
        super.tearDown()
    }

    func lines() throws -> [String] {
        try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    func testGoodLogVerifiesWithAndWithoutTheTokensKey() throws {
        var r = try CLI.ok(["audit", "verify"], environment: env)
        XCTAssertTrue(r.stdout.contains("chain intact"), r.transcript)
        XCTAssertTrue(r.stdout.contains("--token NAME"), r.transcript)
        r = try CLI.ok(["audit", "verify", "--token", "audited"], environment: env)
        XCTAssertTrue(r.stdout.contains("checkpoint(s) verified"), r.transcript)
        r = try CLI.ok(["audit", "verify", "--token", "audited", "--so", "--pin-env", "SO_PIN", "--json"], environment: env)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(report["ok"] as? Bool, true)
        XCTAssertGreaterThan(report["checkpoints_verified"] as? Int ?? 0, 2)
        XCTAssertEqual(report["checkpoints_unverified"] as? Int, 0)
        try CLI.fails(["audit", "verify", "--token", "audited", "--pin-env", "WRONG"], with: "PIN incorrect",
                      environment: env.merging(["WRONG": "not-the-pin-1"]) { $1 })
        // The wrong PIN counted against the token, so it is recorded like the module's (docs/audit.md).
        let shown = try CLI.ok(["audit", "show", "--event", "login", "--json"], environment: env)
        let logins = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [[String: Any]], shown.transcript)
        let wrong = try XCTUnwrap(logins.last, shown.transcript)
        XCTAssertEqual(wrong["outcome"] as? String, "failure")
        XCTAssertEqual(wrong["source"] as? String, "tg-pkcs11")
        XCTAssertEqual(wrong["role"] as? String, "user")
        XCTAssertEqual(wrong["failed_attempts"] as? Int, 1)
        XCTAssertEqual(wrong["rv"] as? String, "0x000000A0")
        // A right PIN given to a CLI command that logs in itself (backup) resets the SO count and says how many
        // attempts it cleared, followed by a checkpoint (verify itself writes none); the log still verifies.
        try CLI.fails(["audit", "verify", "--token", "audited", "--so", "--pin-env", "WRONG"], with: "PIN incorrect",
                      environment: env.merging(["WRONG": "not-the-so-pin-1"]) { $1 })
        try CLI.ok(["backup", "--token", "audited", "--output", dir.path + "/audited.tgb", "--so-pin-env", "SO_PIN"], environment: env)
        r = try CLI.ok(["audit", "verify", "--token", "audited"], environment: env)
        XCTAssertTrue(r.stdout.contains("chain intact"), r.transcript)
        let after = try CLI.ok(["audit", "show", "--event", "login", "--json"], environment: env)
        let cleared = try XCTUnwrap((JSONSerialization.jsonObject(with: Data(after.stdout.utf8)) as? [[String: Any]])?.last {
            $0["outcome"] as? String == "success"
        }, after.transcript)
        XCTAssertEqual(cleared["source"] as? String, "tg-pkcs11", after.transcript)
        XCTAssertEqual(cleared["role"] as? String, "so")
        XCTAssertEqual(cleared["prior_failed_attempts"] as? Int, 1)
        // Never a PIN or key byte in the log.
        let text = try String(contentsOfFile: log, encoding: .utf8)
        XCTAssertFalse(text.contains(Self.userPIN))
        XCTAssertFalse(text.contains(Self.soPIN))
    }

    func testTamperedLogsFailWithTheLineNumber() throws {
        let original = try lines()
        XCTAssertGreaterThan(original.count, 8)
        func check(_ tampered: [String], _ expected: String, trailingNewline: Bool = true, line: UInt = #line) throws {
            try (tampered.joined(separator: "\n") + (trailingNewline ? "\n" : "")).write(toFile: log, atomically: false, encoding: .utf8)
            try CLI.fails(["audit", "verify"], with: expected, environment: env, line: line)
            let j = try CLI.run(["audit", "verify", "--json"], environment: env)
            XCTAssertEqual(j.status, 1, j.transcript, line: line)
            XCTAssertTrue(j.stdout.contains("\"ok\" : false"), j.transcript, line: line)
        }
        var edited = original
        edited[2] = edited[2].replacingOccurrences(of: "\"outcome\":\"success\"", with: "\"outcome\":\"failure\"")
        try check(edited, "line 3: altered")
        var dropped = original
        dropped.remove(at: 4)
        try check(dropped, "line 5: seq 6 where 5 was expected")
        var swapped = original
        swapped.swapAt(5, 6)
        try check(swapped, "line 6: seq 7 where 6 was expected")
        try check(Array(original.prefix(original.count - 2)), "line \(original.count - 1): missing")
        try check(Array(original.prefix(3)) + [String(original[3].prefix(40))], "line 4: incomplete record", trailingNewline: false)
    }

    func testShowFiltersAndJSON() throws {
        var r = try CLI.ok(["audit", "show"], environment: env)
        XCTAssertTrue(r.stdout.hasPrefix("LINE"), r.transcript)
        XCTAssertTrue(r.stdout.contains("token_init"), r.transcript)
        XCTAssertTrue(r.stdout.contains("CKR_OK"), r.transcript)
        r = try CLI.ok(["audit", "show", "--event", "object_generate,key_use", "--json"], environment: env)
        let arr = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
        XCTAssertEqual(Set(arr.compactMap { $0["event"] as? String }), ["object_generate", "key_use"])
        let gen = try XCTUnwrap(arr.first { $0["event"] as? String == "object_generate" && $0["outcome"] as? String == "success" })
        let announced = try XCTUnwrap(arr.first { $0["event"] as? String == "object_generate" && $0["outcome"] as? String == "pending" })
        XCTAssertEqual(announced["object_label"] as? String, "audit-key")
        XCTAssertEqual(gen["pending_seq"] as? Int, announced["seq"] as? Int)
        XCTAssertEqual(gen["object_label"] as? String, "audit-key")
        let uid = try XCTUnwrap(gen["object_uid"] as? String)
        let use = try XCTUnwrap(arr.first { $0["event"] as? String == "key_use" })
        XCTAssertEqual(use["operation"] as? String, "encrypt")
        XCTAssertEqual(use["count"] as? Int, 1)

        r = try CLI.ok(["audit", "show", "--object", uid, "--json"], environment: env)
        let byObject = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
        XCTAssertEqual(byObject.map { $0["event"] as? String }, ["object_generate", "key_use"])
        r = try CLI.ok(["audit", "show", "--label", "audit-key"], environment: env)
        XCTAssertEqual(r.stdout.split(separator: "\n").count, 4, r.transcript)  // header + pending, generate, key use
        r = try CLI.ok(["audit", "show", "--token", "nope", "--json"], environment: env)
        XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "[]")
        r = try CLI.ok(["audit", "show", "--since", "2999-01-01", "--json"], environment: env)
        XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "[]")
        let today = String(AuditEncoding.timestamp().prefix(10))
        r = try CLI.ok(["audit", "show", "--since", "2000-01-01", "--until", today, "--event", "login", "--json"], environment: env)
        let logins = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
        XCTAssertGreaterThanOrEqual(logins.count, 3)
        XCTAssertEqual(Set(logins.compactMap { $0["role"] as? String }), ["so", "user"])
        try CLI.fails(["audit", "show", "--since", "yesterday"], with: "UTC time", environment: env)
        try CLI.fails(["audit", "show", "--file", dir.file("nothing.log")], with: "cannot read", environment: env)
    }
}

/// `rotate-kek` (which works on the store, not through the module) records the rotation in the module's audit
/// log with a checkpoint; a refused rotation is recorded as a failure. SoftHSM2 is the key-wrapping backend.
final class AuditKEKRotationTests: XCTestCase {
    func testRotateKEKIsAudited() throws {
        let softhsm = BackendCommandTests.softhsm, util = BackendCommandTests.util
        guard FileManager.default.fileExists(atPath: softhsm), FileManager.default.isExecutableFile(atPath: util) else {
            throw MissingDependency.softHSM2
        }
        let dir = try TemporaryDirectory("tg-cli-audit-kek")
        let tokens = dir.file("hsm-tokens")
        try FileManager.default.createDirectory(atPath: tokens, withIntermediateDirectories: true)
        let conf = try dir.write("softhsm2.conf", "directories.tokendir = \(tokens)\nobjectstore.backend = file\nlog.level = ERROR\n")
        let hsmInit = Process()
        hsmInit.executableURL = URL(fileURLWithPath: util)
        hsmInit.arguments = ["--init-token", "--free", "--label", "hsm", "--so-pin", "hsm-so-1357", "--pin", "hsm-user-2468"]
        hsmInit.environment = ["SOFTHSM2_CONF": conf]
        hsmInit.standardOutput = FileHandle.nullDevice
        try hsmInit.run()
        hsmInit.waitUntilExit()
        let log = dir.file("audit.log")
        let config = try dir.write("config.yaml", """
            log: { level: error, file: \(dir.file("module.log")) }
            audit: { file: \(log), sync: false }
            tokens:
              - name: rot
                store: \(dir.file("store"))
                pin_kdf_cost: 10
                backend: { kind: pkcs11, module: \(softhsm), token_label: hsm, pin_env: HSM_PIN, kek_label: kek1 }

            """, mode: 0o600)
        var env = ["SOFTHSM2_CONF": conf, "HSM_PIN": "hsm-user-2468", "TENSORGUARD_PKCS11_CONF": config,
                   "SO_PIN": "audit-kek-so-1", "TG_PKCS11_PIN": "audit-kek-user-1", "WRONG": "not-the-so-pin"]
        if let module = CLI.modulePath { env["TG_PKCS11_MODULE"] = module }
        try CLI.ok(["backend", "create-kek", "--token", "rot", "--label", "kek1"], environment: env)
        try CLI.ok(["backend", "create-kek", "--token", "rot", "--label", "kek2", "--id", "02"], environment: env)
        try CLI.ok(["token", "init", "--slot", "0", "--label", "rot", "--so-pin-env", "SO_PIN"], environment: env)
        try CLI.fails(["rotate-kek", "--token", "rot", "--new-kek", "label:kek2", "--so-pin-env", "WRONG"],
                      with: "SO PIN incorrect", environment: env)
        try CLI.ok(["rotate-kek", "--token", "rot", "--new-kek", "label:kek2", "--so-pin-env", "SO_PIN"], environment: env)

        let r = try CLI.ok(["audit", "show", "--event", "kek_rotation", "--json"], environment: env)
        let records = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]], r.transcript)
        XCTAssertEqual(records.map { $0["outcome"] as? String }, ["failure", "success"])
        XCTAssertEqual(records.first?["rv"] as? String, "0x000000A0")  // CKR_PIN_INCORRECT
        XCTAssertEqual(records.last?["role"] as? String, "so")
        XCTAssertEqual(records.last?["source"] as? String, "tg-pkcs11")
        XCTAssertEqual((records.last?["details"] as? [String: Any])?["new_kek"] as? String, "label:kek2")
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        XCTAssertTrue(lines.last?.contains("\"event\":\"checkpoint\"") ?? false, "a checkpoint follows the rotation")
        let verified = try CLI.ok(["audit", "verify", "--token", "rot", "--so", "--pin-env", "SO_PIN"], environment: env)
        XCTAssertTrue(verified.stdout.contains("checkpoint(s) verified"), verified.transcript)
        let text = lines.joined(separator: "\n")
        for secret in ["audit-kek-so-1", "audit-kek-user-1", "hsm-user-2468"] { XCTAssertFalse(text.contains(secret)) }
    }
}
