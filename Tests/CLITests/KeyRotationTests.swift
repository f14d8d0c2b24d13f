// `tg-pkcs11 key rotate` end to end against the built module, with a token policy (max_key_uses) in the config:
// old ciphertexts keep decrypting with --generation, new ones use the successor, the predecessor refuses
// C_EncryptInit, `key list` shows generations, states, use counts and reminders.
import Foundation
import XCTest
import TestSupport

final class KeyRotationTests: XCTestCase {
    struct Listed: Decodable {
        let label: String
        let id: String
        let uniqueID: String?
        let generation: UInt32?
        let lineage: String?
        let state: String?
        let ageDays: UInt?
        let useCount: UInt?
        let createdAt: String?
        let reminder: String?
    }

    struct Rotated: Decodable {
        struct Generation: Decodable { let generation: UInt32; let id: String; let state: String }
        let label: String
        let lineage: String
        let predecessors: [Generation]
        let successor: Generation
    }

    struct SlotListing: Decodable { let slot: UInt; let description: String }

    var dir: TemporaryDirectory!
    var env: [String: String] = [:]

    override func setUpWithError() throws {
        guard let module = CLI.modulePath, FileManager.default.fileExists(atPath: module) else {
            throw MissingDependency("the module is not built: \(CLI.modulePath ?? "?") (run `swift build` first, or set TG_PKCS11_MODULE)")
        }
        dir = try TemporaryDirectory("tg-cli-rotate")
        let config = try dir.write("config.yaml", """
            audit: { file: \(dir.file("audit.log")), sync: false }
            tokens:
              - name: rot
                store: \(dir.file("store"))
                pin_kdf_cost: 10
                policy:
                  max_key_uses: 3
                  rotation_reminder_days: 90

            """)
        env = ["TENSORGUARD_PKCS11_CONF": config, "TG_PKCS11_MODULE": module, "SO": "rot-so-pin", "TG_PKCS11_PIN": "rot-user-pin"]
        let list = try CLI.ok(["token", "list", "--json"], environment: env)
        let slot = try XCTUnwrap(try JSONDecoder().decode([SlotListing].self, from: Data(list.stdout.utf8)).first?.slot)
        try CLI.ok(["token", "init", "--slot", String(slot), "--label", "rot", "--so-pin-env", "SO"], environment: env)
    }

    func list() throws -> [Listed] {
        let r = try CLI.ok(["key", "list", "--json"], environment: env)
        return try JSONDecoder().decode([Listed].self, from: Data(r.stdout.utf8))
    }

    func encrypt(_ values: String, _ name: String, extra: [String] = []) throws -> String {
        let out = dir.file(name)
        try CLI.ok(["encrypt", "--label", "fl", "--format", "lwe2", "--values", values, "--output", out] + extra, environment: env)
        return out
    }

    func decrypt(_ file: String, extra: [String] = []) throws -> String {
        try CLI.ok(["decrypt", "--key", "fl", "--input", file] + extra, environment: env).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func testRotateKeepsOldCiphertextsAndMovesEncryptionToTheSuccessor() throws {
        // The SDK's rule (raw) so that one file decrypts under several generations; rotation keeps the rule.
        try CLI.ok(["key", "generate", "--label", "fl", "--dimension", "512", "--decrypt-rule", "raw"], environment: env)
        let ct1 = try encrypt("[1, 2, 3]", "gen1.ct")
        var keys = try list()
        XCTAssertEqual(keys.count, 1)
        XCTAssertEqual(keys[0].generation, 1)
        XCTAssertEqual(keys[0].state, "active")
        XCTAssertEqual(keys[0].useCount, 1)
        XCTAssertEqual(keys[0].ageDays, 0)
        XCTAssertNotNil(keys[0].createdAt)
        XCTAssertNil(keys[0].reminder)
        XCTAssertNil(keys[0].lineage)

        // The use limit: the third use triggers the reminder, the fourth is refused by the module.
        _ = try encrypt("[4]", "gen1b.ct")
        _ = try encrypt("[5]", "gen1c.ct")
        keys = try list()
        XCTAssertEqual(keys[0].useCount, 3)
        XCTAssertEqual(keys[0].reminder, "rotate now: max_key_uses 3 reached, encryption is refused")
        try CLI.fails(["encrypt", "--key", "fl", "--format", "lwe2", "--values", "[6]", "--output", dir.file("refused.ct")],
                      with: "C_EncryptInit failed: CKR_KEY_FUNCTION_NOT_PERMITTED", environment: env)
        XCTAssertEqual(try decrypt(ct1), "[1, 2, 3]", "decryption is never refused by the use limit")
        let table = try CLI.ok(["key", "list"], environment: env).stdout
        XCTAssertTrue(table.contains("GEN") && table.contains("STATE") && table.contains("REMINDER"), table)
        XCTAssertTrue(table.contains("rotate now: max_key_uses 3 reached"), table)

        // Rotation.
        let rotated = try CLI.ok(["key", "rotate", "--label", "fl", "--json"], environment: env)
        let r = try JSONDecoder().decode(Rotated.self, from: Data(rotated.stdout.utf8))
        XCTAssertEqual(r.successor.generation, 2)
        XCTAssertEqual(r.successor.state, "active")
        XCTAssertEqual(r.predecessors.map(\.generation), [1])
        XCTAssertEqual(r.predecessors.map(\.state), ["decrypt-only"])
        XCTAssertEqual(r.lineage.count, 32)
        XCTAssertEqual(r.successor.id, "54475201" + r.lineage + "00000002", "CKA_ID = TGR\\x01 || lineage || generation")

        let ct2 = try encrypt("[7, 8, 9]", "gen2.ct")
        XCTAssertEqual(try decrypt(ct2), "[7, 8, 9]", "decrypt defaults to the active generation")
        XCTAssertEqual(try decrypt(ct2, extra: ["--generation", "2"]), "[7, 8, 9]")
        XCTAssertNotEqual(try decrypt(ct2, extra: ["--generation", "1"]), "[7, 8, 9]", "new data is under generation 2")
        XCTAssertEqual(try decrypt(ct1, extra: ["--generation", "1"]), "[1, 2, 3]", "generation 1 ciphertexts still decrypt")
        try CLI.fails(["encrypt", "--key", "fl", "--generation", "1", "--format", "lwe2", "--values", "[1]",
                       "--output", dir.file("old.ct")], with: "C_EncryptInit failed: CKR_KEY_FUNCTION_NOT_PERMITTED", environment: env)

        keys = try list()
        XCTAssertEqual(keys.map(\.generation), [1, 2])
        XCTAssertEqual(keys.map(\.state), ["decrypt-only", "active"])
        XCTAssertEqual(Set(keys.map(\.lineage)), [r.lineage])
        XCTAssertEqual(keys.map(\.useCount), [3, 1])
        XCTAssertNil(keys[0].reminder, "decrypt-only generations need no rotation")
        let text = try CLI.ok(["key", "list"], environment: env).stdout
        XCTAssertTrue(text.contains("decrypt-only"), text)

        // A second rotation: generation 3; every ciphertext still decrypts with its generation.
        let second = try CLI.ok(["key", "rotate", "--label", "fl"], environment: env).stdout
        XCTAssertTrue(second.contains("generation 2: decrypt-only"), second)
        XCTAssertTrue(second.contains("generation 3: active"), second)
        let ct3 = try encrypt("[10]", "gen3.ct")
        XCTAssertEqual(try decrypt(ct1, extra: ["--generation", "1"]), "[1, 2, 3]")
        XCTAssertEqual(try decrypt(ct2, extra: ["--generation", "2"]), "[7, 8, 9]")
        XCTAssertEqual(try decrypt(ct3), "[10]")
        keys = try list()
        XCTAssertEqual(keys.map(\.generation), [1, 2, 3])
        XCTAssertEqual(keys.map(\.state), ["decrypt-only", "decrypt-only", "active"])
        XCTAssertEqual(keys[2].id, "54475201" + r.lineage + "00000003")

        // Errors are named.
        try CLI.fails(["decrypt", "--key", "fl", "--generation", "7", "--input", ct1],
                      with: "key 'fl' has no generation 7 on token 'rot' (generations: 1, 2, 3)", environment: env)
        try CLI.fails(["key", "delete", "--key", "fl", "--yes"],
                      with: "key 'fl' has 3 generations (1: decrypt-only, 2: decrypt-only, 3: active); add --generation N",
                      environment: env)
        try CLI.ok(["key", "delete", "--key", "fl", "--generation", "2", "--yes"], environment: env)
        XCTAssertEqual(try list().map(\.generation), [1, 3])
        XCTAssertEqual(try decrypt(ct1, extra: ["--generation", "1"]), "[1, 2, 3]")
    }

    /// The module's audit log (docs/audit.md) records both steps of a rotation: the successor's generation and the
    /// predecessor's attribute change, and the refusal that made the rotation necessary.
    func testRotationIsAudited() throws {
        let audit = dir.file("audit.log")
        try dir.write("config.yaml", """
            audit: { file: \(audit), sync: false }
            tokens:
              - name: rot
                store: \(dir.file("store"))
                pin_kdf_cost: 10
                policy:
                  max_key_uses: 1

            """)
        try CLI.ok(["key", "generate", "--label", "fl", "--dimension", "256"], environment: env)
        _ = try encrypt("[1]", "a.ct")
        try CLI.fails(["encrypt", "--key", "fl", "--format", "lwe2", "--values", "[2]", "--output", dir.file("b.ct")],
                      with: "C_EncryptInit failed: CKR_KEY_FUNCTION_NOT_PERMITTED", environment: env)
        let r = try JSONDecoder().decode(Rotated.self, from: Data(try CLI.ok(["key", "rotate", "--label", "fl", "--json"],
                                                                                environment: env).stdout.utf8))
        let keys = try list()
        let old = try XCTUnwrap(keys.first { $0.generation == 1 }?.uniqueID)
        let new = try XCTUnwrap(keys.first { $0.generation == 2 }?.uniqueID)
        XCTAssertEqual(r.successor.generation, 2)
        let lines = try String(contentsOfFile: audit, encoding: .utf8).split(separator: "\n")
        XCTAssertTrue(lines.contains { $0.contains("\"policy_refusal\"") && $0.contains(old) && $0.contains("max_key_uses 1 reached") },
                      "no policy refusal record for \(old)\n\(lines.joined(separator: "\n"))")
        XCTAssertTrue(lines.contains { $0.contains("\"object_generate\"") && $0.contains(new) && $0.contains("\"success\"") },
                      "no generation record for the successor \(new)")
        XCTAssertTrue(lines.contains { $0.contains("\"attribute_change\"") && $0.contains(old)
                                && ($0.contains("CKA_ENCRYPT") || $0.contains("0x00000104")) },
                      "no attribute change record making \(old) decrypt-only")
    }

    func testRotateErrors() throws {
        try CLI.fails(["key", "rotate", "--label", "missing"],
                      with: "no secret key labelled 'missing' on token 'rot'; see `tg-pkcs11 key list`", environment: env)
        try CLI.fails(["key", "rotate", "--label", ""], with: "--label must not be empty", environment: env)
    }
}
