// Issue 13 through `tg-pkcs11 audit verify` on logs the module wrote through the CLI: a forged copy (records
// deleted, chain and head recomputed, the later checkpoints given an unknown token uuid) passes without the token's
// key but fails `--token` naming the line; a `key generate` killed (SIGKILL, debug build's
// TG_PKCS11_TEST_CRASH_AT) after the store commit and before its outcome record leaves a pending record that
// verify lists, and records after the token's last checkpoint fail `--token` until a login covers them.
import Audit
import Foundation
import XCTest
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

final class AuditForgeryCLITests: XCTestCase {
    var dir: TemporaryDirectory!
    var env: [String: String] = [:]
    var log: String { dir.file("audit.log") }

    override func setUpWithError() throws {
        guard let module = CLI.modulePath, FileManager.default.fileExists(atPath: module) else {
            throw MissingDependency("the module is not built: \(CLI.modulePath ?? "?") (run `swift build` first, or set TG_PKCS11_MODULE)")
        }
        dir = try TemporaryDirectory("tg-cli-audit-forgery")
        let config = try dir.write("config.yaml", """
            log: { level: off }
            audit: { file: \(log), sync: false }
            tokens:
              - name: audited
                store: \(dir.file("store"))
                backend: { kind: local }
                pin_kdf_cost: 10

            """, mode: 0o600)
        env = ["TENSORGUARD_PKCS11_CONF": config, "TG_PKCS11_MODULE": module, "SO_PIN": "forge-so-pin-1",
               "TG_PKCS11_PIN": "forge-user-pin-1"]
        try CLI.ok(["token", "init", "--slot", "0", "--label", "audited", "--so-pin-env", "SO_PIN",
                    "--pin-env", "TG_PKCS11_PIN"], environment: env)
        for label in ["first", "second", "third"] {
            try CLI.ok(["key", "generate", "--token", "audited", "--label", label], environment: env)
        }
    }

    override func tearDown() {
        dir = nil
        super.tearDown()
    }

    func lines() throws -> [String] {
        try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    /// What an editor of the file can do without any PIN: renumber seq (and what refers to one), recompute every
    /// prev and the head sidecar.
    func rewriteRechained(_ lines: [String]) throws {
        var out: [String] = []
        var prev = AuditEncoding.zeroHash
        var renumbered: [Int64: Int] = [:]
        for (i, line) in lines.enumerated() {
            var l = line
            if let obj = AuditEncoding.parse(Array(l.utf8)), let p = obj["prev"] as? String, let s = AuditEncoding.int(obj["seq"]) {
                renumbered[s] = i + 1
                l = l.replacingOccurrences(of: "\"prev\":\"\(p)\"", with: "\"prev\":\"\(prev)\"")
                    .replacingOccurrences(of: "\"seq\":\(s),", with: "\"seq\":\(i + 1),")
                for field in ["pending_seq", "prev_checkpoint"] {
                    if let old = AuditEncoding.int(obj[field]), let new = renumbered[old] {
                        l = l.replacingOccurrences(of: "\"\(field)\":\(old),", with: "\"\(field)\":\(new),")
                    }
                }
            }
            out.append(l)
            prev = AuditEncoding.hash(Array(l.utf8))
        }
        try (out.joined(separator: "\n") + "\n").write(toFile: log, atomically: false, encoding: .utf8)
        var head = #"{"hash":"\#(prev)","seq":\#(out.count),"v":2}"#
        head += String(repeating: " ", count: AuditLog.headSize - 1 - head.utf8.count) + "\n"
        try head.write(toFile: AuditLog.headPath(for: log), atomically: false, encoding: .utf8)
    }

    func testDeletedRecordsWithForeignCheckpointsFailVerifyWithTheToken() throws {
        try CLI.ok(["audit", "verify", "--token", "audited"], environment: env)
        var ls = try lines()
        // Delete the generation of "second" (its pending record and outcome) and give every later checkpoint,
        // whose HMAC would no longer verify, an unknown token uuid.
        let gone = ls.indices.filter { ls[$0].contains("\"event\":\"object_generate\"") && ls[$0].contains("\"object_label\":\"second\"") }
        XCTAssertEqual(gone.count, 2, "pending and outcome")
        let firstGone = try XCTUnwrap(gone.first)
        ls.removeSubrange(firstGone...(gone.last ?? firstGone))
        let uuid = try XCTUnwrap(ls.compactMap { AuditEncoding.parse(Array($0.utf8))?["token_uuid"] as? String }.last)
        var firstForeign: Int?
        for i in ls.indices where i >= firstGone && ls[i].contains("\"event\":\"checkpoint\"") {
            ls[i] = ls[i].replacingOccurrences(of: uuid, with: "0123456789abcdef0123456789abcdef")
            if firstForeign == nil { firstForeign = i + 1 }
        }
        try rewriteRechained(ls)
        let r = try CLI.ok(["audit", "verify"], environment: env)
        XCTAssertTrue(r.stdout.contains("chain intact"), r.transcript)
        let line = try XCTUnwrap(firstForeign)
        try CLI.fails(["audit", "verify", "--token", "audited"],
                      with: "line \(line): checkpoint of token 'audited' names token uuid 0123456789abcdef0123456789abcdef",
                      environment: env)
        // Removing those checkpoints instead leaves the token's later records outside every verified checkpoint.
        ls = ls.enumerated().filter { $0.offset < firstGone || !$0.element.contains("\"event\":\"checkpoint\"") }.map(\.element)
        try rewriteRechained(ls)
        try CLI.ok(["audit", "verify"], environment: env)
        try CLI.fails(["audit", "verify", "--token", "audited"], with: "line \(firstGone + 1): record of token 'audited' after its last verified checkpoint",
                      environment: env)
        let j = try CLI.run(["audit", "verify", "--token", "audited", "--json"], environment: env)
        XCTAssertEqual(j.status, 1, j.transcript)
    }

    func testKilledKeyGenerationLeavesAPendingRecordThatVerifyReports() throws {
        let binary = try CLI.requireBinary()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["key", "generate", "--token", "audited", "--label", "killed"]
        p.environment = CLI.childEnvironment(env.merging(["TG_PKCS11_TEST_CRASH_AT": "audit-object_generate-done"]) { $1 })
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .uncaughtSignal, "not killed (a release build ignores TG_PKCS11_TEST_CRASH_AT)")
        XCTAssertEqual(p.terminationStatus, SIGKILL)
        let pendingLine = try lines().count
        var r = try CLI.ok(["audit", "verify"], environment: env)
        XCTAssertTrue(r.stdout.contains("1 pending record(s) without an outcome"), r.transcript)
        XCTAssertTrue(r.stdout.contains("line \(pendingLine): pending object_generate of token 'audited'"), r.transcript)
        XCTAssertTrue(r.stdout.contains("label 'killed'"), r.transcript)
        r = try CLI.ok(["audit", "verify", "--json"], environment: env)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual((report["pending"] as? [[String: Any]])?.first?["line"] as? Int, pendingLine)
        // The key was committed before the kill: the log says so (pending), nothing verified covers it yet.
        XCTAssertTrue(try CLI.ok(["key", "list", "--token", "audited"], environment: env).stdout.contains("killed"))
        // `key list` logged in, and its checkpoints now cover the pending record: verify --token passes, and
        // still lists it.
        r = try CLI.ok(["audit", "verify", "--token", "audited"], environment: env)
        XCTAssertTrue(r.stdout.contains("line \(pendingLine): pending object_generate"), r.transcript)
    }

    func testRecordsAfterTheLastCheckpointFailVerifyWithTheToken() throws {
        try CLI.fails(["key", "list", "--token", "audited", "--pin-env", "WRONG"], with: "PIN",
                      environment: env.merging(["WRONG": "not-the-pin-9"]) { $1 })
        let failed = try XCTUnwrap(try lines().lastIndex { $0.contains("\"event\":\"login\"") && $0.contains("\"outcome\":\"failure\"") })
        try CLI.ok(["audit", "verify"], environment: env)
        try CLI.fails(["audit", "verify", "--token", "audited"],
                      with: "line \(failed + 1): record of token 'audited' after its last verified checkpoint", environment: env)
        try CLI.ok(["key", "list", "--token", "audited"], environment: env)
        try CLI.ok(["audit", "verify", "--token", "audited"], environment: env)
    }
}
