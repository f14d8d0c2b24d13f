// The generic PKCS#11 client layer against a module nobody here wrote: SoftHSM2 from Debian, with a
// temporary token directory. Token listing and initialisation, login errors, key lookup, and the
// CKR_ name in every module error.
import Foundation
import XCTest
import TestSupport

final class SoftHSMTests: XCTestCase {
    static let softhsm = "/usr/lib/softhsm/libsofthsm2.so"
    var dir: TemporaryDirectory!
    var env: [String: String] = [:]

    override func setUpWithError() throws {
        guard FileManager.default.fileExists(atPath: Self.softhsm) else {
            throw MissingDependency.softHSM2
        }
        dir = try TemporaryDirectory("tg-cli-softhsm")
        let tokens = dir.file("tokens")
        try FileManager.default.createDirectory(atPath: tokens, withIntermediateDirectories: true)
        let conf = try dir.write("softhsm2.conf", "directories.tokendir = \(tokens)\nobjectstore.backend = file\nlog.level = ERROR\n")
        env = ["SOFTHSM2_CONF": conf, "TG_PKCS11_MODULE": Self.softhsm]
    }

    /// XCTest keeps test case instances alive until the run ends: release the directory now.
    override func tearDown() {
        dir = nil
        super.tearDown()
    }

    struct Slot: Decodable {
        struct Token: Decodable {
            let label: String
            let serial: String
            let initialized: Bool
            let userPINInitialized: Bool
            let flags: [String]
        }
        let slot: UInt
        let token: Token?
    }

    func slots() throws -> [Slot] {
        let r = try CLI.ok(["token", "list", "--json"], environment: env)
        return try JSONDecoder().decode([Slot].self, from: Data(r.stdout.utf8))
    }

    /// Initialises the first free token through `tg-pkcs11 token init` (C_InitToken, C_Login SO, C_InitPIN).
    @discardableResult
    func initToken(_ label: String, pin: String = "1234") throws -> UInt {
        guard let free = try slots().first(where: { $0.token?.initialized == false }) else {
            throw MissingDependency("SoftHSM2 offers no uninitialised token")
        }
        let r = try CLI.ok(["token", "init", "--slot", String(free.slot), "--label", label,
                            "--so-pin-env", "SO", "--pin-env", "USER"],
                           environment: env.merging(["SO": "87654321", "USER": pin]) { $1 })
        XCTAssertTrue(r.stdout.contains("Initialised token '\(label)'"), r.transcript)
        XCTAssertFalse(r.stdout.contains(pin) || r.stderr.contains(pin) || r.stdout.contains("87654321"), r.transcript)
        return free.slot
    }

    func testTokenListAndInit() throws {
        let before = try slots()
        XCTAssertFalse(before.isEmpty)
        XCTAssertTrue(before.contains { $0.token?.initialized == false }, "SoftHSM always offers a free slot")

        try initToken("cli-a")
        let after = try slots()  // SoftHSM renumbers a slot once its token is initialised
        let token = try XCTUnwrap(after.first { $0.token?.label == "cli-a" }?.token)
        XCTAssertEqual(token.label, "cli-a")
        XCTAssertTrue(token.initialized)
        XCTAssertTrue(token.userPINInitialized)
        XCTAssertTrue(token.flags.contains("token-initialized"))
        XCTAssertFalse(token.serial.isEmpty)

        let text = try CLI.ok(["token", "list", "--mechanisms"], environment: env)
        XCTAssertTrue(text.stdout.contains("token label:  cli-a"), text.transcript)
        XCTAssertTrue(text.stdout.contains("serial:       \(token.serial)"), text.transcript)
        XCTAssertTrue(text.stdout.contains("CKM_AES_KEY_GEN"), text.transcript)
        XCTAssertTrue(text.stdout.contains("SoftHSM"), text.transcript)
    }

    func testTokenInitRefusesBadInput() throws {
        try CLI.fails(["token", "init", "--slot", "424242", "--label", "x", "--so-pin-env", "SO", "--pin-env", "U"],
                      with: "no token in slot 424242", environment: env.merging(["SO": "1", "U": "2"]) { $1 })
        let free = try XCTUnwrap(try slots().first { $0.token?.initialized == false }?.slot)
        try CLI.fails(["token", "init", "--slot", String(free), "--label", String(repeating: "x", count: 33)],
                      with: "at most 32", environment: env)
        try CLI.fails(["token", "init", "--slot", String(free), "--label", "x", "--so-pin-env", "UNSET_VARIABLE_XYZ", "--pin-env", "U"],
                      with: "UNSET_VARIABLE_XYZ (PIN) is not set", environment: env.merging(["U": "2"]) { $1 })
    }

    func testLoginAndSelectionErrors() throws {
        try initToken("cli-b")
        // Wrong PIN: the module's error, named.
        try CLI.fails(["key", "list", "--token", "cli-b"], with: "C_Login failed: CKR_PIN_INCORRECT",
                      environment: env.merging(["TG_PKCS11_PIN": "9999"]) { $1 })
        // No PIN source and stdin is not a terminal.
        try CLI.fails(["key", "list", "--token", "cli-b"], with: "no PIN given and standard input is not a terminal",
                      environment: env)
        // Unknown label, listing the known ones.
        try CLI.fails(["key", "list", "--token", "nope"], with: "no token labelled 'nope'; tokens: ",
                      environment: env.merging(["TG_PKCS11_PIN": "1234"]) { $1 })
        // PIN file: first line, trailing newline ignored.
        let pinFile = try dir.write("pin", "1234\n")
        let r = try CLI.ok(["key", "list", "--token", "cli-b", "--pin-file", pinFile], environment: env)
        XCTAssertTrue(r.stdout.contains("No secret keys on token 'cli-b'"), r.transcript)
        XCTAssertFalse(r.stderr.contains("warning"), r.transcript)
        let openPIN = try dir.write("pin-644", "1234\r\n", mode: 0o644)
        let warned = try CLI.ok(["key", "list", "--token", "cli-b", "--pin-file", openPIN], environment: env)
        XCTAssertTrue(warned.stderr.contains("warning: PIN file '\(openPIN)' is accessible by group or others"), warned.transcript)
        try CLI.fails(["key", "list", "--token", "cli-b", "--pin-file", dir.file("nopin")], with: "cannot open PIN file",
                      environment: env)
        try CLI.fails(["key", "list", "--token", "cli-b", "--pin-file", pinFile, "--pin-env", "X"], with: "not both",
                      environment: env)
        // The only initialised token is picked without --token.
        let only = try CLI.ok(["key", "list", "--json"], environment: env.merging(["TG_PKCS11_PIN": "1234"]) { $1 })
        let parsed = try JSONSerialization.jsonObject(with: Data(only.stdout.utf8)) as? [Any]
        XCTAssertEqual(parsed?.count, 0, only.transcript)
    }

    func testAmbiguousTokenLabelNeedsASlot() throws {
        try initToken("twin")
        try initToken("twin")
        let pin = env.merging(["TG_PKCS11_PIN": "1234"]) { $1 }
        let r = try CLI.fails(["key", "list", "--token", "twin"], with: "2 tokens are labelled 'twin' (slots ", environment: pin)
        XCTAssertTrue(r.stderr.contains("add --slot ID"), r.transcript)
        try CLI.fails(["key", "list"], with: "the module has 2 initialised tokens ('twin', 'twin')", environment: pin)
        let twins = try slots().filter { $0.token?.label == "twin" }.map(\.slot)
        XCTAssertEqual(twins.count, 2)
        for slot in twins {
            let ok = try CLI.ok(["key", "list", "--token", "twin", "--slot", String(slot)], environment: pin)
            XCTAssertTrue(ok.stdout.contains("No secret keys on token 'twin'"), ok.transcript)
        }
        try CLI.fails(["key", "list", "--token", "other", "--slot", String(twins[0])],
                      with: "is labelled 'twin', not 'other'", environment: pin)
    }

    /// The interactive prompt: on a terminal, with echo off, and the PIN it reads works.
    func testPINPromptOnATerminalDoesNotEcho() throws {
        try initToken("cli-tty", pin: "tty-secret-4711")
        let (r, echoed) = try CLI.runWithTerminal(["key", "list", "--token", "cli-tty"], environment: env,
                                                  prompt: "User PIN for token 'cli-tty': ", line: "tty-secret-4711")
        XCTAssertEqual(r.status, 0, r.transcript)
        XCTAssertTrue(r.stdout.contains("No secret keys on token 'cli-tty'"), r.transcript)
        XCTAssertFalse(echoed.contains("tty-secret-4711"), "the PIN was echoed: \(echoed)")
        XCTAssertFalse(r.stdout.contains("tty-secret-4711") || r.stderr.contains("tty-secret-4711"), r.transcript)
        // A wrong PIN typed at the prompt is the module's CKR_PIN_INCORRECT.
        let (bad, _) = try CLI.runWithTerminal(["key", "list", "--token", "cli-tty"], environment: env,
                                               prompt: "User PIN for token 'cli-tty': ", line: "wrong-pin")
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("C_Login failed: CKR_PIN_INCORRECT"), bad.transcript)
    }

    func testVendorMechanismOnAForeignModuleIsNamed() throws {
        try initToken("cli-c")
        try CLI.fails(["key", "generate", "--token", "cli-c", "--label", "n2he"], with: "C_GenerateKey failed: CKR_MECHANISM_INVALID",
                      environment: env.merging(["TG_PKCS11_PIN": "1234"]) { $1 })
    }

    /// Keys made by pkcs11-tool (OpenSC): listing, ambiguous labels, and refusing a non-N2HE key.
    func testKeyListingWithForeignKeys() throws {
        let tool = "/usr/bin/pkcs11-tool"
        guard FileManager.default.isExecutableFile(atPath: tool) else { throw MissingDependency("pkcs11-tool is not installed (Debian package opensc; run `make deps`)") }
        try initToken("cli-d")
        for (id, size) in [("0a", "32"), ("0b", "16")] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: tool)
            p.arguments = ["--module", Self.softhsm, "--token-label", "cli-d", "--login", "--pin", "1234",
                           "--keygen", "--key-type", "AES:\(size)", "--label", "aes", "--id", id]
            p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 0, "pkcs11-tool --keygen failed")
        }
        let pin = env.merging(["TG_PKCS11_PIN": "1234"]) { $1 }
        let list = try CLI.ok(["key", "list", "--token", "cli-d", "--json"], environment: pin)
        struct Key: Decodable { let label: String; let id: String; let keyType: String; let valueLength: UInt?; let usage: [String] }
        let keys = try JSONDecoder().decode([Key].self, from: Data(list.stdout.utf8))
        XCTAssertEqual(keys.map(\.id), ["0a", "0b"])
        XCTAssertEqual(keys.map(\.keyType), ["AES", "AES"])
        XCTAssertEqual(keys.map(\.valueLength), [32, 16])
        XCTAssertTrue(keys.allSatisfy { $0.usage.contains("encrypt") }, list.transcript)
        let table = try CLI.ok(["key", "list", "--token", "cli-d"], environment: pin)
        XCTAssertTrue(table.stdout.contains("LABEL"), table.transcript)

        let out = dir.file("o.ct")
        try CLI.fails(["encrypt", "--token", "cli-d", "--key", "aes", "--format", "lwe1", "--values", "[1]", "--output", out],
                      with: "2 secret keys are labelled 'aes' on token 'cli-d' (ids: 0a, 0b); add --key-id HEX", environment: pin)
        try CLI.fails(["encrypt", "--token", "cli-d", "--key", "aes", "--key-id", "0a", "--format", "lwe1", "--values", "[1]",
                       "--output", out], with: "has key type AES, not N2HE", environment: pin)
        try CLI.fails(["decrypt", "--token", "cli-d", "--key", "missing", "--input", CLI.interop("sdk-key-1-lwe2-q32-k1.ct")],
                      with: "no secret key labelled 'missing' on token 'cli-d'", environment: pin)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }
}
