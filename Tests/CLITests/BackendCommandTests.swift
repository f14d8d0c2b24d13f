// `tg-pkcs11 backend check | create-kek` and `tg-pkcs11 rotate-kek` against a real SoftHSM2 (Debian's
// /usr/lib/softhsm/libsofthsm2.so) as the key-wrapping backend of our module: a temporary SOFTHSM2_CONF and
// token directory per test, the backend token made with softhsm2-util, our token's config written per test.
import Foundation
import XCTest
import TestSupport

final class BackendCommandTests: XCTestCase {
    static let softhsm = "/usr/lib/softhsm/libsofthsm2.so"
    static let util = "/usr/bin/softhsm2-util"
    static let hsmPIN = "hsm-user-2468"
    static let hsmSOPIN = "hsm-so-13579"
    static let soPIN = "tg-so-pin-77"
    static let userPIN = "tg-user-pin-55"

    var dir: TemporaryDirectory!
    var env: [String: String] = [:]
    var config = ""

    override func setUpWithError() throws {
        guard FileManager.default.fileExists(atPath: Self.softhsm), FileManager.default.isExecutableFile(atPath: Self.util) else {
            throw MissingDependency.softHSM2
        }
        dir = try TemporaryDirectory("tg-cli-backend")
        let tokens = dir.file("hsm-tokens")
        try FileManager.default.createDirectory(atPath: tokens, withIntermediateDirectories: true)
        let conf = try dir.write("softhsm2.conf", "directories.tokendir = \(tokens)\nobjectstore.backend = file\nlog.level = ERROR\n")
        env = ["SOFTHSM2_CONF": conf, "HSM_PIN": Self.hsmPIN]
        if let module = CLI.modulePath { env["TG_PKCS11_MODULE"] = module }
        try tool(Self.util, ["--init-token", "--free", "--label", "hsm", "--so-pin", Self.hsmSOPIN, "--pin", Self.hsmPIN])
        config = dir.file("config.yaml")
        try writeConfig(kek: "kek1")
        env["TENSORGUARD_PKCS11_CONF"] = config
    }

    override func tearDown() {
        dir = nil
        super.tearDown()
    }

    func writeConfig(kek: String, pinEnv: String = "HSM_PIN") throws {
        try dir.write("config.yaml", """
            log: { level: error, file: \(dir.file("module.log")) }
            tokens:
              - name: rot
                store: \(dir.file("store"))
                pin_kdf_cost: 10
                backend:
                  kind: pkcs11
                  module: \(Self.softhsm)
                  token_label: hsm
                  pin_env: \(pinEnv)
                  kek_label: \(kek)

            """, mode: 0o600)
    }

    @discardableResult
    func tool(_ path: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard p.terminationStatus == 0 else { throw CLIError("\(path) \(args.joined(separator: " ")) failed: \(text)") }
        return text
    }

    func assertNoSecrets(_ r: CLIResult, file: StaticString = #filePath, line: UInt = #line) {
        for secret in [Self.hsmPIN, Self.hsmSOPIN, Self.soPIN, Self.userPIN] {
            XCTAssertFalse(r.stdout.contains(secret) || r.stderr.contains(secret), "a PIN was printed\n\(r.transcript)",
                           file: file, line: line)
        }
    }

    struct Health: Decodable {
        struct Check: Decodable { let name: String; let passed: Bool; let detail: String }
        struct Descriptor: Decodable { let kind: String; let keyID: String; let keyVersion: String }
        let token: String
        let backend: Descriptor
        let healthy: Bool
        let checks: [Check]
        let error: String?
    }

    // MARK: create-kek, check

    func testCreateKEKThenCheckIsHealthy() throws {
        let created = try CLI.ok(["backend", "create-kek", "--token", "rot", "--label", "kek1", "--id", "0a0b"], environment: env)
        XCTAssertTrue(created.stdout.contains("Created KEK kek-label=kek1"), created.transcript)
        XCTAssertTrue(created.stdout.contains("not extractable"), created.transcript)
        assertNoSecrets(created)
        // The key really is on the SoftHSM token, as a sensitive, non-extractable AES key.
        let check = try CLI.ok(["backend", "check", "--token", "rot"], environment: env)
        XCTAssertTrue(check.stdout.contains("[ok] kek-extractable: CKA_EXTRACTABLE = FALSE"), check.transcript)
        XCTAssertTrue(check.stdout.contains("[ok] kek-sensitive"), check.transcript)
        XCTAssertTrue(check.stdout.contains("[ok] round-trip"), check.transcript)
        XCTAssertTrue(check.stdout.contains("  healthy"), check.transcript)
        assertNoSecrets(check)
        let json = try CLI.ok(["backend", "check", "--json"], environment: env)   // the only token: no --token needed
        let health = try JSONDecoder().decode(Health.self, from: Data(json.stdout.utf8))
        XCTAssertTrue(health.healthy)
        XCTAssertEqual(health.backend.kind, "pkcs11")
        XCTAssertEqual(health.backend.keyID, "token-label=hsm")
        XCTAssertEqual(health.backend.keyVersion, "kek-label=kek1")
        XCTAssertNil(health.error)
        XCTAssertTrue(health.checks.contains { $0.name == "login" && $0.passed })
        // Same label again: refused, nothing replaced.
        let again = try CLI.fails(["backend", "create-kek", "--token", "rot", "--label", "kek1"], with: "kek1", environment: env)
        XCTAssertEqual(again.status, 1)
        try CLI.fails(["backend", "create-kek", "--token", "rot", "--label", "x", "--id", "zz"], with: "--id", environment: env)
    }

    func testCheckFailsWithWrongBackendPIN() throws {
        try CLI.ok(["backend", "create-kek", "--label", "kek1"], environment: env)
        var bad = env
        bad["HSM_PIN"] = "wrong-pin-000"
        let r = try CLI.fails(["backend", "check", "--token", "rot"], with: "not healthy", environment: bad)
        XCTAssertEqual(r.status, 1, r.transcript)
        XCTAssertTrue(r.stderr.contains("login check failed"), r.transcript)
        XCTAssertTrue(r.stdout.contains("[FAIL] login"), r.transcript)
        XCTAssertFalse(r.stdout.contains("wrong-pin-000") || r.stderr.contains("wrong-pin-000"), r.transcript)
        assertNoSecrets(r)
        // Unset PIN variable: named, not crashed.
        try writeConfig(kek: "kek1", pinEnv: "NO_SUCH_PIN_VAR")
        let unset = try CLI.fails(["backend", "check", "--json"], with: "not healthy", environment: env)
        let health = try JSONDecoder().decode(Health.self, from: Data(unset.stdout.utf8))
        XCTAssertFalse(health.healthy)
        XCTAssertTrue(health.error?.contains("NO_SUCH_PIN_VAR") == true, unset.transcript)
    }

    func testCheckFailsWhenTheKEKIsMissing() throws {
        // kek1 is configured but was never created.
        let r = try CLI.fails(["backend", "check", "--token", "rot"], with: "kek check failed", environment: env)
        XCTAssertTrue(r.stdout.contains("[ok] login"), r.transcript)
        XCTAssertTrue(r.stdout.contains("[FAIL] kek"), r.transcript)
        XCTAssertTrue(r.stderr.contains("kek1"), r.transcript)
        assertNoSecrets(r)
    }

    func testConfigurationErrorsAreNamed() throws {
        try CLI.fails(["backend", "check", "--token", "nope"], with: "no token named 'nope'", environment: env)
        try CLI.fails(["backend", "check", "--config", dir.file("missing.yaml")], with: "missing.yaml", environment: env)
        let local = try dir.write("local.yaml", "tokens:\n  - name: l\n    store: \(dir.file("lstore"))\n    backend: { kind: local }\n")
        try CLI.fails(["backend", "create-kek", "--config", local, "--label", "k"], with: "create the key in your cloud KMS",
                      environment: env)
        let healthy = try CLI.ok(["backend", "check", "--config", local], environment: env)
        XCTAssertTrue(healthy.stdout.contains("healthy"), healthy.transcript)
        try CLI.fails(["rotate-kek", "--config", local, "--new-kek", "x", "--so-pin-env", "SO"], with: "no KEK to rotate",
                      environment: env.merging(["SO": Self.soPIN]) { $1 })
        let writable = try dir.write("writable.yaml", "tokens: []\n", mode: 0o666)
        try CLI.fails(["backend", "check", "--config", writable], with: "world-writable", environment: env)
    }

    // MARK: rotation

    struct Slot: Decodable {
        let slot: UInt
        let description: String
    }

    func testRotateKEKKeepsEveryKeyDecryptable() throws {
        try CLI.ok(["backend", "create-kek", "--token", "rot", "--label", "kek1"], environment: env)
        try CLI.ok(["backend", "create-kek", "--token", "rot", "--label", "kek2", "--id", "02"], environment: env)
        var env = self.env
        env["SO_PIN"] = Self.soPIN
        env["TG_PKCS11_PIN"] = Self.userPIN
        let list = try CLI.ok(["token", "list", "--json"], environment: env)
        let slots = try JSONDecoder().decode([Slot].self, from: Data(list.stdout.utf8))
        let slot = try XCTUnwrap(slots.first { $0.description == "rot" }, list.transcript)
        try CLI.ok(["token", "init", "--slot", String(slot.slot), "--label", "rot", "--so-pin-env", "SO_PIN"], environment: env)

        // N2HE keys and a ciphertext under each. The same files are decrypted after every step, so the keys use the
        // SDK's decryption rule (raw: seeds reusable); seeded-once is tested in ModuleEndToEndTests.
        var ciphertexts: [(key: String, file: String, expected: [Int64])] = []
        for (i, label) in ["n2he-a", "n2he-b", "n2he-c"].enumerated() {
            try CLI.ok(["key", "generate", "--token", "rot", "--label", label, "--dimension", "512", "--decrypt-rule", "raw"],
                       environment: env)
            let values: [Int64] = [Int64(i), 7, 65535, 1234]
            let file = dir.file("\(label).lwe2")
            try CLI.ok(["encrypt", "--token", "rot", "--key", label, "--format", "lwe2",
                        "--values", "[\(values.map(String.init).joined(separator: ","))]", "--output", file], environment: env)
            ciphertexts.append((label, file, values))
        }
        func decryptAll(line: UInt = #line) throws {
            for c in ciphertexts {
                let r = try CLI.ok(["decrypt", "--token", "rot", "--key", c.key, "--input", c.file], environment: env, line: line)
                XCTAssertEqual(parseJSONIntegers(r.stdout, line: line), c.expected, r.transcript, line: line)
            }
        }
        try decryptAll()

        // Refusals leave the token as it was.
        try CLI.fails(["rotate-kek", "--token", "rot", "--new-kek", "label:kek2", "--so-pin-env", "WRONG"],
                      with: "SO PIN incorrect", environment: env.merging(["WRONG": "not-the-so-pin"]) { $1 })
        try CLI.fails(["rotate-kek", "--token", "rot", "--new-kek", "label:no-such-kek", "--so-pin-env", "SO_PIN"],
                      with: "no-such-kek", environment: env)
        try CLI.fails(["rotate-kek", "--token", "rot", "--new-kek", "id:xyz", "--so-pin-env", "SO_PIN"],
                      with: "not hex", environment: env)
        try decryptAll()

        let rotated = try CLI.ok(["rotate-kek", "--token", "rot", "--new-kek", "label:kek2", "--so-pin-env", "SO_PIN"],
                                 environment: env)
        XCTAssertTrue(rotated.stdout.contains("now:    kind pkcs11, key id token-label=hsm, key version kek-label=kek2"),
                      rotated.transcript)
        XCTAssertTrue(rotated.stdout.contains("kek_label: kek2"), rotated.transcript)
        XCTAssertTrue(rotated.stdout.contains("logins keep working"), rotated.transcript)
        assertNoSecrets(rotated)

        // As the message says: the old configuration still logs in (the blob names kek2) ...
        try decryptAll()
        // ... and with the configuration updated, without kek1 on the HSM at all, every key still decrypts:
        // the root key is now wrapped by kek2 only.
        try writeConfig(kek: "kek2")
        if let pkcs11Tool = ["/usr/bin/pkcs11-tool", "/usr/local/bin/pkcs11-tool"].first(where: FileManager.default.isExecutableFile) {
            try tool(pkcs11Tool, ["--module", Self.softhsm, "--token-label", "hsm", "--login", "--pin", Self.hsmPIN,
                                  "--delete-object", "--type", "secrkey", "--label", "kek1"])
            let gone = try CLI.fails(["backend", "check", "--config", try oldConfig()], with: "kek check failed", environment: env)
            XCTAssertTrue(gone.stderr.contains("kek1"), gone.transcript)
        }
        try decryptAll()
        let check = try CLI.ok(["backend", "check", "--token", "rot", "--json"], environment: env)
        let health = try JSONDecoder().decode(Health.self, from: Data(check.stdout.utf8))
        XCTAssertTrue(health.healthy, check.transcript)
        XCTAssertEqual(health.backend.keyVersion, "kek-label=kek2")

        // Rotate again, by CKA_ID, onto kek2 itself (idempotent) — the id form is accepted and recorded.
        let byID = try CLI.ok(["rotate-kek", "--token", "rot", "--new-kek", "id:02", "--so-pin-env", "SO_PIN"], environment: env)
        XCTAssertTrue(byID.stdout.contains("key version kek-id=02"), byID.transcript)
        XCTAssertTrue(byID.stdout.contains("kek_id: 02"), byID.transcript)
        try decryptAll()
    }

    /// A copy of the configuration naming kek1 (for checking that kek1 is gone).
    func oldConfig() throws -> String {
        let text = try String(contentsOfFile: config, encoding: .utf8).replacingOccurrences(of: "kek_label: kek2", with: "kek_label: kek1")
        return try dir.write("old.yaml", text, mode: 0o600)
    }

    // MARK: aws-kms against moto (signature checking and IAM on)

    /// moto's server on a port of its choosing (Tests/servers/aws/moto_server.py), set up by setup_kms.py.
    func startMoto() throws -> (Process, port: String, setup: [String: Any]) {
        let check = Process()
        check.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        check.arguments = ["python3", "-c", "import moto, boto3"]
        check.standardOutput = FileHandle.nullDevice
        check.standardError = FileHandle.nullDevice
        try check.run()
        check.waitUntilExit()
        guard check.terminationStatus == 0 else { throw MissingDependency("python3 with moto and boto3 is not installed (PyPI; run `make deps`)") }
        let servers = CLI.repoRoot.appendingPathComponent("Tests/servers/aws")
        let moto = Process()
        moto.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        moto.arguments = ["python3", servers.appendingPathComponent("moto_server.py").path, "--max-lifetime", "600"]
        let out = Pipe()
        moto.standardOutput = out
        moto.standardError = FileHandle.nullDevice
        try moto.run()
        var line = ""
        let handle = out.fileHandleForReading
        while !line.hasSuffix("\n") {
            let byte = handle.readData(ofLength: 1)
            if byte.isEmpty { break }
            line += String(decoding: byte, as: UTF8.self)
        }
        guard line.hasPrefix("READY ") else {
            moto.terminate()
            XCTFail("moto did not start: \(line)")
            throw CLIError("moto")
        }
        let port = line.dropFirst(6).trimmingCharacters(in: .whitespacesAndNewlines)
        let setupOut = try tool("/usr/bin/env", ["python3", servers.appendingPathComponent("setup_kms.py").path,
                                                 "http://127.0.0.1:\(port)"])
        guard let json = setupOut.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
              let setup = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
            moto.terminate()
            XCTFail("setup_kms.py printed no JSON")
            throw CLIError("moto setup")
        }
        return (moto, port, setup)
    }

    func testAWSKMSCheckAndRotationAgainstMoto() throws {
        let (moto, port, setup) = try startMoto()
        defer { moto.terminate(); moto.waitUntilExit() }
        let key1 = try XCTUnwrap(setup["key_arn"] as? String), key2 = try XCTUnwrap(setup["key2_arn"] as? String)
        let access = try XCTUnwrap(setup["user_access_key"] as? String), secret = try XCTUnwrap(setup["user_secret_key"] as? String)
        func writeAWSConfig(_ key: String) throws -> String {
            try dir.write("aws.yaml", """
                log: { level: error, file: \(dir.file("module.log")) }
                tokens:
                  - name: aws
                    store: \(dir.file("aws-store"))
                    pin_kdf_cost: 10
                    backend: { kind: aws-kms, key_id: "\(key)", region: us-east-1, endpoint: "http://127.0.0.1:\(port)", max_attempts: 2 }

                """, mode: 0o600)
        }
        var env = self.env
        env["TENSORGUARD_PKCS11_CONF"] = try writeAWSConfig(key1)
        env["AWS_ACCESS_KEY_ID"] = access
        env["AWS_SECRET_ACCESS_KEY"] = secret
        env["SO_PIN"] = Self.soPIN
        env["TG_PKCS11_PIN"] = Self.userPIN
        func noSecret(_ r: CLIResult, line: UInt = #line) {
            XCTAssertFalse(r.stdout.contains(secret) || r.stderr.contains(secret), r.transcript, line: line)
            assertNoSecrets(r, line: line)
        }
        let check = try CLI.ok(["backend", "check", "--json"], environment: env)
        let health = try JSONDecoder().decode(Health.self, from: Data(check.stdout.utf8))
        XCTAssertTrue(health.healthy, check.transcript)
        XCTAssertEqual(health.backend.kind, "aws-kms")
        XCTAssertEqual(health.backend.keyID, "region=us-east-1")
        noSecret(check)
        var wrong = env
        wrong["AWS_SECRET_ACCESS_KEY"] = "not-the-secret-key-0000"
        let refused = try CLI.fails(["backend", "check"], with: "not healthy", environment: wrong)
        XCTAssertFalse(refused.stdout.contains("not-the-secret-key-0000") || refused.stderr.contains("not-the-secret-key-0000"))

        let list = try CLI.ok(["token", "list", "--json"], environment: env)
        let slots = try JSONDecoder().decode([Slot].self, from: Data(list.stdout.utf8))
        let slot = try XCTUnwrap(slots.first { $0.description == "aws" }, list.transcript)
        try CLI.ok(["token", "init", "--slot", String(slot.slot), "--label", "aws", "--so-pin-env", "SO_PIN"], environment: env)
        try CLI.ok(["key", "generate", "--token", "aws", "--label", "k", "--dimension", "256"], environment: env)
        let ct = dir.file("aws.lwe2")
        try CLI.ok(["encrypt", "--token", "aws", "--key", "k", "--format", "lwe2", "--values", "[5,6,7]", "--output", ct],
                   environment: env)
        let rotated = try CLI.ok(["rotate-kek", "--new-kek", key2, "--so-pin-env", "SO_PIN"], environment: env)
        XCTAssertTrue(rotated.stdout.contains("key version key=\(key2)"), rotated.transcript)
        XCTAssertTrue(rotated.stdout.contains("key_id: \(key2)"), rotated.transcript)
        noSecret(rotated)
        env["TENSORGUARD_PKCS11_CONF"] = try writeAWSConfig(key2)
        let r = try CLI.ok(["decrypt", "--token", "aws", "--key", "k", "--input", ct], environment: env)
        XCTAssertEqual(parseJSONIntegers(r.stdout), [5, 6, 7], r.transcript)
        try CLI.fails(["backend", "create-kek", "--label", "x"], with: "create the key in your cloud KMS", environment: env)
        try CLI.fails(["rotate-kek", "--new-kek", "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                       "--so-pin-env", "SO_PIN"], with: "region", environment: env)
    }
}
