// `tg-pkcs11 backup` / `restore`: a token with the SDK's N2HE keys backed up on one "machine" and restored on
// another (own HOME, XDG dirs, config found by discovery, store at the default location), where the module
// decrypts the SDK's ciphertexts with the restored keys. Damaged, foreign (another HSM's KEK) and wrong-PIN
// backups are refused and leave nothing behind.
import Foundation
import XCTest
import TestSupport

/// One simulated host: its own directory, HOME and XDG dirs; the config at $XDG_CONFIG_HOME/tensorguard-pkcs11.
struct Machine {
    let dir: TemporaryDirectory
    var env: [String: String]
    var configPath: String { dir.file("xdg-config/tensorguard-pkcs11/config.yaml") }

    init(_ name: String, extraEnv: [String: String] = [:]) throws {
        dir = try TemporaryDirectory("tg-cli-\(name)")
        for sub in ["home", "xdg-config/tensorguard-pkcs11", "xdg-data"] {
            try FileManager.default.createDirectory(atPath: dir.file(sub), withIntermediateDirectories: true)
        }
        env = ["HOME": dir.file("home"), "XDG_CONFIG_HOME": dir.file("xdg-config"), "XDG_DATA_HOME": dir.file("xdg-data"),
               "SO_PIN": BackupRestoreTests.soPIN, "TG_PKCS11_PIN": BackupRestoreTests.userPIN]
        if let module = CLI.modulePath { env["TG_PKCS11_MODULE"] = module }
        env.merge(extraEnv) { $1 }
    }

    /// Writes the config (mode 0600) where discovery finds it.
    func configure(_ yaml: String) throws {
        try Data(yaml.utf8).write(to: URL(fileURLWithPath: configPath))
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: configPath)
    }

    /// `token init` of the slot whose description is `name`.
    func initToken(_ name: String, label: String) throws {
        let list = try CLI.ok(["token", "list", "--json"], environment: env)
        let slots = try JSONDecoder().decode([ModuleEndToEndTests.SlotListing].self, from: Data(list.stdout.utf8))
        let slot = try XCTUnwrap(slots.first { $0.description == name }, list.transcript)
        try CLI.ok(["token", "init", "--slot", String(slot.slot), "--label", label, "--so-pin-env", "SO_PIN"], environment: env)
    }
}

final class BackupRestoreTests: XCTestCase {
    static let soPIN = "backup-so-pin-31"
    static let userPIN = "backup-user-pin-42"

    struct Summary: Decodable {
        struct Descriptor: Decodable { let kind: String; let keyID: String; let keyVersion: String }
        let file: String
        let token: String
        let label: String
        let serial: String
        let backend: Descriptor
        let objects: Int
        let bytes: Int
        let store: String?
        let replaced: String?
        let verifiedObjects: Int?
    }

    func assertNoSecrets(_ r: CLIResult, file: StaticString = #filePath, line: UInt = #line) {
        for secret in [Self.soPIN, Self.userPIN] {
            XCTAssertFalse(r.stdout.contains(secret) || r.stderr.contains(secret), "a PIN was printed\n\(r.transcript)",
                           file: file, line: line)
        }
    }

    /// Machine A: token 'node-a' (local backend) with the SDK key as q = 2^32 and 2^48 and a generated key.
    func makeSource() throws -> (Machine, ct: String) {
        let a = try Machine("backup-a")
        try a.configure("""
            tokens:
              - name: node-a
                store: \(a.dir.file("store-a"))
                pin_kdf_cost: 10
                backend: { kind: local }

            """)
        try a.initToken("node-a", label: "fl-node")
        try CLI.ok(["key", "import", "--token", "fl-node", "--label", "sdk-q32", "--file", CLI.interop("sdk-key-1.npy"), "--decrypt-rule", "raw"],
                   environment: a.env)
        try CLI.ok(["key", "import", "--token", "fl-node", "--label", "sdk-q48", "--file", CLI.interop("sdk-key-1.bin"), "--decrypt-rule", "raw",
                    "--modulus-bits", "48"], environment: a.env)
        try CLI.ok(["key", "generate", "--token", "fl-node", "--label", "fresh", "--decrypt-rule", "raw"], environment: a.env)
        let ct = a.dir.file("fresh.ct")
        try CLI.ok(["encrypt", "--token", "fl-node", "--key", "fresh", "--format", "lwe2", "--values", "[7, 8, 9]",
                    "--output", ct], environment: a.env)
        return (a, ct)
    }

    func testBackupRestoreOnAFreshMachineDecryptsSDKCiphertexts() throws {
        let (a, ct) = try makeSource()
        let backup = a.dir.file("node-a.tgbackup")
        let made = try CLI.ok(["backup", "--token", "node-a", "--output", backup, "--so-pin-env", "SO_PIN", "--json"],
                              environment: a.env)
        assertNoSecrets(made)
        let summary = try JSONDecoder().decode(Summary.self, from: Data(made.stdout.utf8))
        XCTAssertEqual(summary.objects, 3)
        XCTAssertEqual(summary.label, "fl-node")
        XCTAssertEqual(summary.backend.kind, "local")
        let attrs = try FileManager.default.attributesOfItem(atPath: backup)
        XCTAssertEqual((attrs[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: backup)))
        XCTAssertEqual(Array(bytes.prefix(8)), Array("TGBACKUP".utf8))
        XCTAssertEqual(summary.bytes, bytes.count)
        // The snapshot is encrypted: no SQLite header, no PIN, no label in clear outside the header's metadata.
        XCTAssertNil(bytes.firstRange(of: Array("SQLite format 3".utf8)))
        for secret in [Self.soPIN, Self.userPIN] { XCTAssertNil(bytes.firstRange(of: Array(secret.utf8))) }
        // No leftovers in the store directory (the private snapshot directory is gone).
        let storeEntries = try FileManager.default.contentsOfDirectory(atPath: a.dir.file("store-a"))
        XCTAssertFalse(storeEntries.contains { $0.hasPrefix(".") }, "\(storeEntries)")
        // Never overwritten without --force.
        try CLI.fails(["backup", "--token", "node-a", "--output", backup, "--so-pin-env", "SO_PIN"], with: "already exists",
                      environment: a.env)
        try CLI.ok(["backup", "--token", "node-a", "--output", backup, "--so-pin-env", "SO_PIN", "--force"], environment: a.env)

        // Machine B: other HOME/XDG dirs, config found by discovery, default store location.
        let b = try Machine("backup-b")
        try b.configure("""
            tokens:
              - name: restored
                pin_kdf_cost: 10
                backend: { kind: local }

            """)
        let restored = try CLI.ok(["restore", "--token", "restored", "--file", backup, "--so-pin-env", "SO_PIN", "--json"],
                                  environment: b.env)
        assertNoSecrets(restored)
        let r = try JSONDecoder().decode(Summary.self, from: Data(restored.stdout.utf8))
        XCTAssertEqual(r.verifiedObjects, 3)
        XCTAssertEqual(r.store, b.dir.file("xdg-data/tensorguard-pkcs11/restored"))
        XCTAssertNil(r.replaced)
        let dbPath = b.dir.file("xdg-data/tensorguard-pkcs11/restored/token.sqlite")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dbPath))

        // The module on B decrypts every SDK ciphertext with the restored keys, and A's own ciphertext.
        let manifest = try InteropCases.load()
        for c in manifest.cases {
            let label = c.modulus_bits == 32 ? "sdk-q32" : "sdk-q48"
            let out = try CLI.ok(["decrypt", "--token", "fl-node", "--key", label, "--input", CLI.interop(c.file)],
                                 environment: b.env)
            XCTAssertEqual(parseJSONIntegers(out.stdout), c.plaintext, "\(c.file) under restored \(label)")
        }
        let fresh = try CLI.ok(["decrypt", "--token", "fl-node", "--key", "fresh", "--input", ct], environment: b.env)
        XCTAssertEqual(parseJSONIntegers(fresh.stdout), [7, 8, 9])

        // Restoring over the initialised token needs --force, which keeps the old database aside.
        try CLI.fails(["restore", "--token", "restored", "--file", backup, "--so-pin-env", "SO_PIN"],
                      with: "already holds an initialised token", environment: b.env)
        let forced = try CLI.ok(["restore", "--token", "restored", "--file", backup, "--so-pin-env", "SO_PIN", "--force", "--json"],
                                environment: b.env)
        let f = try JSONDecoder().decode(Summary.self, from: Data(forced.stdout.utf8))
        let replaced = try XCTUnwrap(f.replaced)
        XCTAssertTrue(replaced.hasPrefix(dbPath + ".replaced-"), replaced)
        XCTAssertTrue(FileManager.default.fileExists(atPath: replaced))
        let again = try CLI.ok(["decrypt", "--token", "fl-node", "--key", "fresh", "--input", ct], environment: b.env)
        XCTAssertEqual(parseJSONIntegers(again.stdout), [7, 8, 9])

        // Both machines' audit logs record the operations (no PIN in them) and verify.
        for (m, event) in [(a, "token_backup"), (b, "token_restore")] {
            let log = m.dir.file("xdg-data/tensorguard-pkcs11/audit.log")
            let text = try String(contentsOfFile: log, encoding: .utf8)
            XCTAssertTrue(text.contains("\"event\":\"\(event)\""), text)
            XCTAssertFalse(text.contains(Self.soPIN) || text.contains(Self.userPIN))
            try CLI.ok(["audit", "verify"], environment: m.env)
        }

        // The break-glass case: the store is destroyed. Refused without --force (it cannot be read), then restored.
        try Data(repeating: 0x5A, count: 8192).write(to: URL(fileURLWithPath: dbPath))
        try CLI.fails(["restore", "--token", "restored", "--file", backup, "--so-pin-env", "SO_PIN"],
                      with: "cannot be read", environment: b.env)
        try CLI.ok(["restore", "--token", "restored", "--file", backup, "--so-pin-env", "SO_PIN", "--force"], environment: b.env)
        let q32 = try XCTUnwrap(manifest.cases.first { $0.modulus_bits == 32 })
        let recovered = try CLI.ok(["decrypt", "--token", "fl-node", "--key", "sdk-q32", "--input", CLI.interop(q32.file)],
                                   environment: b.env)
        XCTAssertEqual(parseJSONIntegers(recovered.stdout), q32.plaintext)
    }

    func testDamagedForeignAndWrongPINBackupsAreRefused() throws {
        let (a, _) = try makeSource()
        let backup = a.dir.file("node-a.tgbackup")
        try CLI.ok(["backup", "--token", "node-a", "--output", backup, "--so-pin-env", "SO_PIN"], environment: a.env)
        let good = [UInt8](try Data(contentsOf: URL(fileURLWithPath: backup)))

        let b = try Machine("backup-damaged")
        try b.configure("""
            tokens:
              - name: target
                store: \(b.dir.file("store-b"))
                pin_kdf_cost: 10
                backend: { kind: local }

            """)
        let args = ["restore", "--token", "target", "--so-pin-env", "SO_PIN", "--file"]
        var flipped = good
        flipped[good.count / 2] ^= 0x01
        let flippedPath = try b.dir.write("flipped.tgbackup", flipped)
        try CLI.fails(args + [flippedPath], with: "backup file is damaged: SHA-256 checksum mismatch", environment: b.env)
        let truncatedPath = try b.dir.write("truncated.tgbackup", Array(good.prefix(good.count - 100)))
        try CLI.fails(args + [truncatedPath], with: "backup file is damaged", environment: b.env)
        let headerOnly = try b.dir.write("short.tgbackup", Array(good.prefix(20)))
        try CLI.fails(args + [headerOnly], with: "backup file is damaged", environment: b.env)
        let notBackup = try b.dir.write("random.bin", Array("SQLite format 3\0 and more bytes".utf8))
        try CLI.fails(args + [notBackup], with: "not a TensorGuard token backup", environment: b.env)
        try CLI.fails(args + [b.dir.file("missing.tgbackup")], with: "cannot open backup file", environment: b.env)

        // Intact file whose header was edited and the trailer recomputed: authenticated, so refused as forged.
        var forged = Array(good.dropLast(32))
        let labelRange = try XCTUnwrap(forged.firstRange(of: Array("fl-node".utf8)))
        forged[labelRange.lowerBound] = UInt8(ascii: "F")
        forged += sha256(forged)
        let forgedPath = try b.dir.write("forged.tgbackup", forged)
        try CLI.fails(args + [forgedPath], with: "modified or forged", environment: b.env)

        // Wrong SO PIN.
        var wrong = b.env
        wrong["SO_PIN"] = "not-the-so-pin"
        let w = try CLI.fails(args + [backup], with: "SO PIN does not open this backup", environment: wrong)
        XCTAssertFalse(w.stderr.contains("not-the-so-pin"))
        let auditText = try String(contentsOfFile: b.dir.file("xdg-data/tensorguard-pkcs11/audit.log"), encoding: .utf8)
        XCTAssertTrue(auditText.contains("\"outcome\":\"failure\""), auditText)
        XCTAssertFalse(auditText.contains("not-the-so-pin"))
        // Nothing was written by any refused restore.
        XCTAssertFalse(FileManager.default.fileExists(atPath: b.dir.file("store-b/token.sqlite")))

        // The same file is fine.
        try CLI.ok(args + [backup], environment: b.env)
    }

    func sha256(_ bytes: [UInt8]) -> [UInt8] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import sys,hashlib; sys.stdout.buffer.write(hashlib.sha256(sys.stdin.buffer.read()).digest())"]
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        try? p.run()
        input.fileHandleForWriting.write(Data(bytes))
        try? input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return [UInt8](data)
    }

    // MARK: foreign backend (SoftHSM2 KEKs)

    static let softhsm = "/usr/lib/softhsm/libsofthsm2.so"
    static let util = "/usr/bin/softhsm2-util"
    static let hsmPIN = "hsm-user-8642"

    /// A machine with its own SoftHSM2 (token label "hsm") and a KEK labelled `kek` made by `backend create-kek`.
    static func hsmMachine(_ name: String, kek: String = "kek", createKEK: Bool = true) throws -> Machine {
        var m = try Machine(name)
        let tokens = m.dir.file("hsm-tokens")
        try FileManager.default.createDirectory(atPath: tokens, withIntermediateDirectories: true)
        let conf = try m.dir.write("softhsm2.conf", "directories.tokendir = \(tokens)\nobjectstore.backend = file\nlog.level = ERROR\n")
        m.env["SOFTHSM2_CONF"] = conf
        m.env["HSM_PIN"] = Self.hsmPIN
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.util)
        p.arguments = ["--init-token", "--free", "--label", "hsm", "--so-pin", "hsm-so-1357", "--pin", Self.hsmPIN]
        p.environment = ProcessInfo.processInfo.environment.merging(m.env) { $1 }
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "softhsm2-util --init-token failed")
        try m.configure(hsmConfig(m, name: "hsm-token", kek: kek))
        if createKEK { try CLI.ok(["backend", "create-kek", "--label", kek], environment: m.env) }
        return m
    }

    static func hsmConfig(_ m: Machine, name: String, kek: String) -> String {
        """
        tokens:
          - name: \(name)
            store: \(m.dir.file("store-\(name)"))
            pin_kdf_cost: 10
            backend:
              kind: pkcs11
              module: \(Self.softhsm)
              token_label: hsm
              pin_env: HSM_PIN
              kek_label: \(kek)

        """
    }

    func testForeignBackupOnAnotherHSMKeyIsRefused() throws {
        guard FileManager.default.fileExists(atPath: Self.softhsm), FileManager.default.isExecutableFile(atPath: Self.util) else {
            throw MissingDependency.softHSM2
        }
        let a = try Self.hsmMachine("backup-hsm-a")
        try a.initToken("hsm-token", label: "hsm-node")
        try CLI.ok(["key", "generate", "--token", "hsm-node", "--label", "k1", "--decrypt-rule", "raw"], environment: a.env)  // decrypts LWE1
        let ct = a.dir.file("k1.ct")
        try CLI.ok(["encrypt", "--token", "hsm-node", "--key", "k1", "--format", "lwe1", "--values", "[4, 5]", "--output", ct],
                   environment: a.env)
        let backup = a.dir.file("hsm.tgbackup")
        let made = try CLI.ok(["backup", "--output", backup, "--so-pin-env", "SO_PIN", "--json"], environment: a.env)
        let s = try JSONDecoder().decode(Summary.self, from: Data(made.stdout.utf8))
        XCTAssertEqual(s.backend.kind, "pkcs11")
        XCTAssertEqual(s.backend.keyVersion, "kek-label=kek")

        // Another HSM with a KEK of the same label: same descriptor, different key. The right SO PIN opens the
        // file, but the configured backend cannot unwrap the root key: refused, nothing left in the store.
        let b = try Self.hsmMachine("backup-hsm-b")
        let foreign = try CLI.fails(["restore", "--file", backup, "--so-pin-env", "SO_PIN"], with: "cannot unwrap the root key",
                                    environment: b.env)
        XCTAssertTrue(foreign.stderr.contains("nothing was restored"), foreign.transcript)
        XCTAssertFalse(foreign.stderr.contains(Self.hsmPIN))
        let storeB = b.dir.file("store-hsm-token")
        XCTAssertFalse(FileManager.default.fileExists(atPath: storeB + "/token.sqlite"))
        let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: storeB)) ?? []
        XCTAssertTrue(leftovers.isEmpty, "\(leftovers)")

        // A configuration naming another backend kind or HSM token is refused before the PIN is asked for.
        try b.configure("""
            tokens:
              - name: hsm-token
                store: \(storeB)
                pin_kdf_cost: 10
                backend: { kind: local }

            """)
        try CLI.fails(["restore", "--file", backup], with: "Restoring needs the same backend", environment: b.env)

        // With A's HSM (its SOFTHSM2_CONF) configured on a fresh machine, the same backup restores and decrypts.
        var c = try Machine("backup-hsm-c")
        c.env["SOFTHSM2_CONF"] = a.env["SOFTHSM2_CONF"]
        c.env["HSM_PIN"] = Self.hsmPIN
        try c.configure(Self.hsmConfig(c, name: "hsm-token", kek: "kek"))
        let ok = try CLI.ok(["restore", "--file", backup, "--so-pin-env", "SO_PIN"], environment: c.env)
        XCTAssertTrue(ok.stdout.contains("SO login through backend pkcs11"), ok.transcript)
        let dec = try CLI.ok(["decrypt", "--token", "hsm-node", "--key", "k1", "--input", ct], environment: c.env)
        XCTAssertEqual(parseJSONIntegers(dec.stdout), [4, 5])
    }
}
