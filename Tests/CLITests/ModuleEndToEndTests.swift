// The whole operator flow against our own module, driven only through tg-pkcs11: a temporary YAML config
// (chmod 600, TENSORGUARD_PKCS11_CONF), `token init`, importing the SDK's key (.npy and raw .bin), decrypting
// every SDK ciphertext, generating keys, and encrypt/decrypt round trips. Ciphertexts that C_Encrypt writes
// are also decrypted with the N2HE library under the SDK's key file, which is what the SDK itself computes.
import Foundation
import N2HE
import XCTest

final class ModuleEndToEndTests: XCTestCase {
    static let userPIN = "cli-user-pin-1"
    static let soPIN = "cli-so-pin-1"

    /// One token for the whole class, set up on first use (token init and imports are the slow part).
    struct Fixture {
        let dir: TemporaryDirectory
        let env: [String: String]
    }
    nonisolated(unsafe) static var shared: Result<Fixture, Error>?

    var env: [String: String] { get throws { try Self.fixture().env } }
    var dir: TemporaryDirectory { get throws { try Self.fixture().dir } }

    static func fixture(file: StaticString = #filePath, line: UInt = #line) throws -> Fixture {
        if let shared { return try shared.get() }
        let result = Result { try makeFixture(file: file, line: line) }
        shared = result
        return try result.get()
    }

    /// Removes the temporary config and store once the class is done.
    override class func tearDown() {
        shared = nil
        super.tearDown()
    }

    struct SlotListing: Decodable {
        struct Token: Decodable { let label: String; let initialized: Bool }
        let slot: UInt
        let description: String
        let token: Token?
    }

    static func makeFixture(file: StaticString, line: UInt) throws -> Fixture {
        guard let module = CLI.modulePath, FileManager.default.fileExists(atPath: module) else {
            XCTFail("the module is not built: \(CLI.modulePath ?? "?") (run `swift build` first, or set TG_PKCS11_MODULE)",
                    file: file, line: line)
            throw CLIError("module missing")
        }
        let dir = try TemporaryDirectory("tg-cli-module")
        let config = try dir.write("config.yaml", """
            tokens:
              - name: cli-test
                store: \(dir.file("store"))
                backend: { kind: local }
                pin_kdf_cost: 10

            """, mode: 0o600)
        var env = ["TENSORGUARD_PKCS11_CONF": config, "TG_PKCS11_MODULE": module]

        let list = try CLI.ok(["token", "list", "--json"], environment: env, file: file, line: line)
        let slots = try JSONDecoder().decode([SlotListing].self, from: Data(list.stdout.utf8))
        guard let slot = slots.first(where: { $0.description == "cli-test" }) ?? slots.first else {
            XCTFail("the module lists no slot\n\(list.transcript)", file: file, line: line)
            throw CLIError("no slot")
        }
        env["SO_PIN"] = soPIN
        env["TG_PKCS11_PIN"] = userPIN
        try CLI.ok(["token", "init", "--slot", String(slot.slot), "--label", "cli-test",
                    "--so-pin-env", "SO_PIN", "--pin-env", "TG_PKCS11_PIN"], environment: env, file: file, line: line)

        // The SDK's key three ways: .npy (q = 2^32 by default), raw .bin as q = 2^48, raw .bin with its meta file.
        // sdk-q32 and sdk-q48 decrypt the SDK's LWE1 files: the SDK's rule (raw). sdk-meta keeps the default (seeded-once).
        try CLI.ok(["key", "import", "--token", "cli-test", "--label", "sdk-q32", "--file", CLI.interop("sdk-key-1.npy"), "--decrypt-rule", "raw"],
                   environment: env, file: file, line: line)
        try CLI.ok(["key", "import", "--token", "cli-test", "--label", "sdk-q48", "--file", CLI.interop("sdk-key-1.bin"),
                    "--modulus-bits", "48", "--decrypt-rule", "raw"], environment: env, file: file, line: line)
        try CLI.ok(["key", "import", "--token", "cli-test", "--label", "sdk-meta", "--file", CLI.interop("sdk-key-1.bin"),
                    "--meta", CLI.interop("sdk-key-1.meta.json"), "--id", "5d4e"], environment: env, file: file, line: line)
        return Fixture(dir: dir, env: env)
    }

    struct KeyJSON: Decodable {
        struct Params: Decodable {
            let dimension: UInt
            let modulusBits: UInt
            let plaintextBits: UInt
            let noiseMilli: UInt
            let securityBits: UInt?
        }
        let label: String
        let id: String
        let uniqueID: String?
        let keyType: String
        let persistent: Bool?
        let sensitive: Bool?
        let extractable: Bool?
        let usage: [String]
        let n2he: Params?
    }

    func keys() throws -> [KeyJSON] {
        let r = try CLI.ok(["key", "list", "--token", "cli-test", "--json"], environment: env)
        return try JSONDecoder().decode([KeyJSON].self, from: Data(r.stdout.utf8))
    }

    func decrypt(key: String, file: String, line: UInt = #line) throws -> [Int64]? {
        let r = try CLI.ok(["decrypt", "--token", "cli-test", "--key", key, "--input", file], environment: env, line: line)
        return parseJSONIntegers(r.stdout, line: line)
    }

    /// SDK semantics: m mod t in [0, t).
    func reduced(_ values: [Int64], plaintextBits: Int) -> [Int64] {
        let mask = (Int64(1) << Int64(plaintextBits)) - 1
        return values.map { $0 & mask }  // two's complement & (t − 1) is Python's m % t for t a power of two
    }

    /// The SDK key file through the N2HE library.
    func sdkCipher(modulusBits: Int) throws -> N2HECipher {
        let npy = [UInt8](try Data(contentsOf: URL(fileURLWithPath: CLI.interop("sdk-key-1.npy"))))
        let key = try N2HESecretKey(npyFile: npy)
        return try N2HECipher(key: key, parameters: N2HEParameters(n: 1024, modulusBits: modulusBits, plaintextBits: 16,
                                                                    noiseMilli: 500))
    }

    // MARK: - SDK interop

    func testEverySDKCiphertextDecrypts() throws {
        let manifest = try InteropCases.load()
        XCTAssertEqual(manifest.cases.count, 12)
        for c in manifest.cases {
            let label = c.modulus_bits == 32 ? "sdk-q32" : "sdk-q48"
            let got = try decrypt(key: label, file: CLI.interop(c.file))
            XCTAssertEqual(got, c.plaintext, "\(c.file) under \(label)")
            XCTAssertEqual(got?.count, c.k)
            if c.modulus_bits == 32 {
                // sdk-meta has the default rule: the SDK's LWE2 files decrypt once each, its LWE1 files never.
                let args = ["decrypt", "--token", "cli-test", "--key", "sdk-meta", "--input", CLI.interop(c.file)]
                if c.format == "LWE2" {
                    XCTAssertEqual(try decrypt(key: "sdk-meta", file: CLI.interop(c.file)), c.plaintext, "\(c.file) under sdk-meta")
                    try CLI.fails(args, with: "already decrypted", environment: env)
                } else {
                    try CLI.fails(args, with: "--decrypt-rule raw", environment: env)
                }
            }
        }
        let listed = try CLI.ok(["key", "list", "--token", "cli-test"], environment: env)
        XCTAssertTrue(listed.stderr.contains("warning: decryption rule raw on sdk-q32, sdk-q48"), listed.transcript)
        // --output writes raw little-endian int64.
        let out = try dir.file("k8.int64")
        let r = try CLI.ok(["decrypt", "--token", "cli-test", "--key", "sdk-q48", "--input",
                            CLI.interop("sdk-key-1-lwe2-q48-k8.ct"), "--output", out], environment: env)
        XCTAssertTrue(r.stdout.contains("Wrote 8 values"), r.transcript)
        let expected = try XCTUnwrap(manifest.cases.first { $0.file == "sdk-key-1-lwe2-q48-k8.ct" }).plaintext
        XCTAssertEqual(int64Values([UInt8](try Data(contentsOf: URL(fileURLWithPath: out)))), expected)
    }

    func testImportedKeysAreListedWithParameters() throws {
        let all = try keys()
        let q32 = try XCTUnwrap(all.first { $0.label == "sdk-q32" })
        let q48 = try XCTUnwrap(all.first { $0.label == "sdk-q48" })
        let meta = try XCTUnwrap(all.first { $0.label == "sdk-meta" })
        for k in [q32, q48, meta] {
            XCTAssertEqual(k.keyType, "N2HE")
            XCTAssertEqual(k.persistent, true)
            XCTAssertEqual(k.sensitive, true)
            XCTAssertEqual(k.extractable, false)
            XCTAssertEqual(k.usage, ["encrypt", "decrypt"], "least privilege for \(k.label)")
            XCTAssertEqual(k.n2he?.dimension, 1024)
            XCTAssertEqual(k.n2he?.plaintextBits, 16)
            XCTAssertEqual(k.n2he?.noiseMilli, 5120)
            XCTAssertFalse(k.uniqueID?.isEmpty ?? true, "CKA_UNIQUE_ID of \(k.label)")
        }
        XCTAssertEqual(q32.n2he?.modulusBits, 32)
        XCTAssertEqual(meta.n2he?.modulusBits, 32)
        XCTAssertEqual(q48.n2he?.modulusBits, 48)
        XCTAssertEqual(meta.id, "5d4e")
        // N2HE-SPEC §5: the SDK's settings are below 128 bits, and q = 2^48 is weaker than q = 2^32.
        let s32 = try XCTUnwrap(q32.n2he?.securityBits), s48 = try XCTUnwrap(q48.n2he?.securityBits)
        XCTAssertLessThan(s32, 128)
        XCTAssertLessThan(s48, s32)
        XCTAssertEqual(Set(all.compactMap(\.uniqueID)).count, all.compactMap(\.uniqueID).count, "unique ids are unique")

        let table = try CLI.ok(["key", "list", "--token", "cli-test"], environment: env)
        XCTAssertTrue(table.stdout.contains("n=1024 q=2^48 t=2^16 mu=5.120"), table.transcript)
        let raw = try CLI.ok(["key", "list", "--token", "cli-test", "--json"], environment: env).stdout
        XCTAssertFalse(raw.contains("\"value\""), "no key value is ever listed")
    }

    func testDuplicateLabelIsRefused() throws {
        try CLI.fails(["key", "import", "--token", "cli-test", "--label", "sdk-q32", "--file", CLI.interop("sdk-key-1.bin")],
                      with: "a secret key labelled 'sdk-q32' already exists on token 'cli-test'", environment: env)
        try CLI.fails(["key", "generate", "--token", "cli-test", "--label", "sdk-q48"],
                      with: "already exists", environment: env)
    }

    /// A ciphertext C_Encrypt writes under the imported SDK key is what the SDK decrypts: checked under the
    /// original key file with the N2HE library and with the independent numpy reference (tools/n2he_reference.py).
    func testCiphertextsFromTheModuleDecryptWithTheSDKKey() throws {
        let values: [Int64] = [0, 1, 2, 65535, 65536, -1, 12345, -70000, Int64.max, Int64.min]
        for (label, bits) in [("sdk-q32", 32), ("sdk-q48", 48)] {
            let cipher = try sdkCipher(modulusBits: bits)
            for format in ["lwe1", "lwe2"] {
                let out = try dir.file("\(label)-\(format).ct")
                let r = try CLI.ok(["encrypt", "--token", "cli-test", "--key", label, "--format", format,
                                    "--values", "[" + values.map(String.init).joined(separator: ", ") + "]",
                                    "--output", out], environment: env)
                XCTAssertTrue(r.stdout.contains("Wrote \(format.uppercased()) ciphertext of \(values.count) values"), r.transcript)
                let ct = [UInt8](try Data(contentsOf: URL(fileURLWithPath: out)))
                let info = try N2HECiphertextInfo(parsing: ct, expectedDimension: 1024)
                XCTAssertEqual(info.count, values.count)
                XCTAssertTrue(info.isBatch)
                XCTAssertEqual(info.format, format == "lwe1" ? .lwe1 : .lwe2)
                XCTAssertEqual(ct.count, format == "lwe1" ? 13 + 8 * values.count * 1024 + 8 * values.count : 45 + 8 * values.count)
                XCTAssertEqual(try cipher.decrypt(ct), reduced(values, plaintextBits: 16), "\(label) \(format) in the SDK's arithmetic")
                XCTAssertEqual(try numpyReferenceDecrypt(key: CLI.interop("sdk-key-1.npy"), ciphertext: out, modulusBits: bits),
                               reduced(values, plaintextBits: 16), "\(label) \(format) through the numpy reference")
                XCTAssertEqual(try decrypt(key: label, file: out), reduced(values, plaintextBits: 16), "\(label) \(format) via C_Decrypt")
                let attributes = try FileManager.default.attributesOfItem(atPath: out)
                XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o600)
            }
        }
    }

    func testGenerateEncryptDecryptRoundTrip() throws {
        let gen = try CLI.ok(["key", "generate", "--token", "cli-test", "--label", "gen-default"], environment: env)
        XCTAssertTrue(gen.stdout.contains("label:      gen-default"), gen.transcript)
        XCTAssertTrue(gen.stdout.contains("parameters: n=1024 q=2^32 t=2^16 mu=5.120"), gen.transcript)
        XCTAssertTrue(gen.stdout.contains("security:   ~"), gen.transcript)
        XCTAssertTrue(gen.stdout.contains("token object, sensitive, not extractable"), gen.transcript)

        XCTAssertTrue(gen.stdout.contains("decryption: seeded-once"), gen.transcript)

        let values: [Int64] = (0..<300).map { Int64($0 * 7919 - 100_000) }
        let input = try dir.write("gen-values.int64", int64Bytes(values))
        for format in ["lwe1", "lwe2"] {
            let ct = try dir.file("gen-\(format).ct")
            try CLI.ok(["encrypt", "--token", "cli-test", "--key", "gen-default", "--format", format, "--input", input,
                        "--output", ct], environment: env)
            let plain = try dir.file("gen-\(format).out")
            let args = ["decrypt", "--token", "cli-test", "--key", "gen-default", "--input", ct, "--output", plain]
            if format == "lwe1" {
                // The default rule never decrypts a ciphertext whose A the caller could have chosen.
                try CLI.fails(args, with: "LWE1 (the TensorGuard SDK's format) decrypts only under a key imported with --decrypt-rule raw",
                              environment: env)
                continue
            }
            try CLI.ok(args, environment: env)
            XCTAssertEqual(int64Values([UInt8](try Data(contentsOf: URL(fileURLWithPath: plain)))), reduced(values, plaintextBits: 16))
            try CLI.fails(args, with: "a seed this key has already decrypted", environment: env)
        }

        // Aggregation without the key: a seeded sum of three updates decrypts once, to the sum.
        var parts: [String] = []
        for i in 0..<3 {
            let ct = try dir.file("part-\(i).ct")
            try CLI.ok(["encrypt", "--token", "cli-test", "--key", "gen-default", "--format", "lwe2",
                        "--values", "[\(i), 100, 65535]", "--output", ct], environment: env)
            parts.append(ct)
        }
        let sum = try dir.file("sum.ct")
        let added = try CLI.ok(["add", "--output", sum] + parts.flatMap { ["--input", $0] }, environment: [:])
        XCTAssertTrue(added.stdout.contains("seeded sum LWS1"), added.transcript)
        XCTAssertEqual(try decrypt(key: "gen-default", file: sum), [3, 300, 65533])
        try CLI.fails(["decrypt", "--token", "cli-test", "--key", "gen-default", "--input", parts[1]],
                      with: "already decrypted", environment: env)

        // Non-default parameters, JSON output, an id; then a round trip and a dimension mismatch.
        let custom = try CLI.ok(["key", "generate", "--token", "cli-test", "--label", "gen-256", "--dimension", "256",
                                 "--modulus-bits", "48", "--plaintext-bits", "20", "--noise-milli", "500", "--id", "0102",
                                 "--extractable", "--json"], environment: env)
        let key = try JSONDecoder().decode(KeyJSON.self, from: Data(custom.stdout.utf8))
        XCTAssertEqual(key.id, "0102")
        XCTAssertEqual(key.extractable, true)
        XCTAssertEqual(key.sensitive, true)
        XCTAssertEqual(key.n2he?.dimension, 256)
        XCTAssertEqual(key.n2he?.modulusBits, 48)
        XCTAssertEqual(key.n2he?.plaintextBits, 20)
        XCTAssertEqual(key.n2he?.noiseMilli, 500)
        let ct = try dir.file("gen-256.ct")
        try CLI.ok(["encrypt", "--token", "cli-test", "--key", "gen-256", "--key-id", "0102", "--format", "lwe2",
                    "--values", "[1048575, 1048576, -1, 7]", "--output", ct], environment: env)
        XCTAssertEqual(try decrypt(key: "gen-256", file: ct), [1_048_575, 0, 1_048_575, 7])
        try CLI.fails(["decrypt", "--token", "cli-test", "--key", "gen-256", "--input", CLI.interop("sdk-key-1-lwe2-q32-k8.ct")],
                      with: "written for n = 1024, but the key has n = 256", environment: env)
    }

    func testSessionKeyDoesNotOutliveTheCommand() throws {
        let r = try CLI.ok(["key", "generate", "--token", "cli-test", "--label", "ephemeral", "--session"], environment: env)
        XCTAssertTrue(r.stdout.contains("session object"), r.transcript)
        XCTAssertFalse(try keys().contains { $0.label == "ephemeral" })
    }

    func testDeleteNeedsConfirmationAndRemovesTheKey() throws {
        try CLI.ok(["key", "generate", "--token", "cli-test", "--label", "to-delete", "--dimension", "64"], environment: env)
        try CLI.fails(["key", "delete", "--token", "cli-test", "--key", "to-delete"], with: "add --yes to confirm",
                      environment: env)
        XCTAssertTrue(try keys().contains { $0.label == "to-delete" })
        let r = try CLI.ok(["key", "delete", "--token", "cli-test", "--key", "to-delete", "--yes"], environment: env)
        XCTAssertTrue(r.stdout.contains("Deleted N2HE key 'to-delete'"), r.transcript)
        XCTAssertFalse(try keys().contains { $0.label == "to-delete" })
        try CLI.fails(["key", "delete", "--token", "cli-test", "--key", "to-delete", "--yes"],
                      with: "no secret key labelled 'to-delete'", environment: env)
    }

    /// A token policy (config `min_n2he_security_bits`) refusing the SDK's weak parameters reaches the operator
    /// as the module's CKR name, and a stronger key is still accepted.
    func testTokenSecurityPolicyIsReported() throws {
        let module = try XCTUnwrap(CLI.modulePath)
        guard FileManager.default.fileExists(atPath: module) else { return XCTFail("module not built: \(module)") }
        let tmp = try TemporaryDirectory("tg-cli-policy")
        let config = try tmp.write("config.yaml", """
            tokens:
              - name: strict
                store: \(tmp.file("store"))
                backend: { kind: local }
                pin_kdf_cost: 10
                min_n2he_security_bits: 128

            """, mode: 0o600)
        let env = ["TENSORGUARD_PKCS11_CONF": config, "TG_PKCS11_MODULE": module, "SO": "strict-so-pin",
                   "TG_PKCS11_PIN": "strict-user-pin"]
        let list = try CLI.ok(["token", "list", "--json"], environment: env)
        let slot = try XCTUnwrap(try JSONDecoder().decode([SlotListing].self, from: Data(list.stdout.utf8)).first?.slot)
        try CLI.ok(["token", "init", "--slot", String(slot), "--label", "strict", "--so-pin-env", "SO"], environment: env)
        try CLI.fails(["key", "import", "--label", "sdk", "--file", CLI.interop("sdk-key-1.npy")],
                      with: "C_CreateObject failed: CKR_TEMPLATE_INCONSISTENT", environment: env)
        try CLI.fails(["key", "generate", "--label", "weak", "--modulus-bits", "48"],
                      with: "C_GenerateKey failed: CKR_TEMPLATE_INCONSISTENT", environment: env)
        let strong = try CLI.ok(["key", "generate", "--label", "strong", "--dimension", "2048", "--json"], environment: env)
        let key = try JSONDecoder().decode(KeyJSON.self, from: Data(strong.stdout.utf8))
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(key.n2he?.securityBits), 128)
    }

    /// A module that refuses its configuration: C_Initialize's error is named, no crash.
    func testBadModuleConfigurationIsNamed() throws {
        let module = try XCTUnwrap(CLI.modulePath)
        guard FileManager.default.fileExists(atPath: module) else { return XCTFail("module not built: \(module)") }
        let tmp = try TemporaryDirectory()
        let writable = try tmp.write("config.yaml", "tokens:\n  - name: x\n    store: \(tmp.file("s"))\n", mode: 0o666)
        try CLI.fails(["token", "list", "--module", module], with: "C_Initialize failed: CKR_",
                      environment: ["TENSORGUARD_PKCS11_CONF": writable])
    }

    func testLoginAndLookupErrors() throws {
        try CLI.fails(["key", "list", "--token", "cli-test"], with: "C_Login failed: CKR_PIN_INCORRECT",
                      environment: env.merging(["TG_PKCS11_PIN": "wrong-pin"]) { $1 })
        try CLI.fails(["decrypt", "--token", "cli-test", "--key", "no-such-key", "--input", CLI.interop("sdk-key-1-lwe1-q32-k1.ct")],
                      with: "no secret key labelled 'no-such-key' on token 'cli-test'", environment: env)
        try CLI.fails(["key", "list", "--token", "other"], with: "no token labelled 'other'; tokens: 'cli-test'", environment: env)
        // The only initialised token is the default.
        let r = try CLI.ok(["key", "list"], environment: env)
        XCTAssertTrue(r.stdout.contains("sdk-q32"), r.transcript)
    }
}

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
