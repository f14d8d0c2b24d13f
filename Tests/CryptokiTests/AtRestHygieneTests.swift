// Issue 13, hygiene at rest, through the Module API on a local and on a SoftHSM2-backed token (`kind: pkcs11`):
// after C_DestroyObject no byte of the key's sealed value (read from the database before the destroy) is left in
// token.sqlite or token.sqlite-wal; after C_SetPIN, C_InitPIN and C_InitToken no byte of the superseded PIN
// envelopes. The module keeps its database open all along (as a host application does), so nothing is hidden by
// the checkpoint SQLite runs when the last connection closes.
import CP11Kit
import Foundation
import KeyWrap
import XCTest
@testable import Cryptoki

/// A SoftHSM2 installation private to one test (its own SOFTHSM2_CONF, read by libsofthsm2 at C_Initialize), one
/// token with an AES KEK made by the pkcs11 backend itself, and the `backend:` lines of a token using it.
final class HygieneHSM {
    static let module = "/usr/lib/softhsm/libsofthsm2.so"
    static let util = "/usr/bin/softhsm2-util"
    let root: String
    let pinFile: String

    init() throws {
        guard FileManager.default.fileExists(atPath: Self.module), FileManager.default.isExecutableFile(atPath: Self.util) else {
            throw NSError(domain: "HygieneHSM", code: 1, userInfo: [NSLocalizedDescriptionKey:
                "SoftHSM2 is not installed (\(Self.module), \(Self.util); Debian package softhsm2, run `make deps`)"])
        }
        root = NSTemporaryDirectory() + "tg-hygiene-hsm-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: root + "/tokens", withIntermediateDirectories: true)
        try "directories.tokendir = \(root)/tokens\nobjectstore.backend = file\nlog.level = ERROR\n"
            .write(toFile: root + "/softhsm2.conf", atomically: true, encoding: .utf8)
        setenv("SOFTHSM2_CONF", root + "/softhsm2.conf", 1)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.util)
        p.arguments = ["--init-token", "--free", "--label", "tg-hygiene", "--so-pin", "hsm-so-1234", "--pin", "hsm-user-5678"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw NSError(domain: "HygieneHSM", code: 2, userInfo: [NSLocalizedDescriptionKey: "softhsm2-util --init-token failed"])
        }
        pinFile = root + "/hsm.pin"
        try "hsm-user-5678\n".write(toFile: pinFile, atomically: true, encoding: .utf8)
        chmod(pinFile, 0o600)
        let backend = try BackendFactory.make(BackendConfiguration(kind: "pkcs11", options: options))
        guard let hsm = backend as? PKCS11Backend else { throw NSError(domain: "HygieneHSM", code: 3) }
        try hsm.createKEK(label: "hygiene-kek")
    }

    var options: [String: String] {
        ["module": Self.module, "token_label": "tg-hygiene", "pin_file": pinFile, "kek_label": "hygiene-kek"]
    }

    /// The token's `backend:` mapping, for TestEnvironment's `extra`.
    var yaml: String {
        "    backend:\n      kind: pkcs11\n      module: \(Self.module)\n      token_label: tg-hygiene\n"
            + "      pin_file: \(pinFile)\n      kek_label: hygiene-kek\n"
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }
}

final class AtRestHygieneTests: XCTestCase {
    func sql(_ db: String, _ query: String, file: StaticString = #filePath, line: UInt = #line) throws -> [String] {
        try sqliteShell(db, query, file: file, line: line)
    }

    func assertGone(_ needle: [UInt8], _ what: String, store: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertGreaterThanOrEqual(needle.count, 16, "\(what): nothing to look for", file: file, line: line)
        for path in [store + "/token.sqlite", store + "/token.sqlite-wal"] {
            let bytes = (try? [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))) ?? []
            let found = needle.count <= bytes.count && bytes.withUnsafeBufferPointer { h in
                (0...(h.count - needle.count)).contains { i in h[i] == needle[0] && Array(h[i..<(i + needle.count)]) == needle }
            }
            XCTAssertFalse(found, "\(what) still in \(path)", file: file, line: line)
        }
    }

    func testLocalToken() throws {
        try runResidueChecks(backendYAML: "", kind: "local")
    }

    func testSoftHSMBackedToken() throws {
        let hsm = try HygieneHSM()
        try runResidueChecks(backendYAML: hsm.yaml, kind: "pkcs11")
    }

    func runResidueChecks(backendYAML: String, kind: String) throws {
        let env = try TestEnvironment(extra: backendYAML)
        let store = env.root + "/t0", db = store + "/token.sqlite"
        let m = try env.module()
        defer { m.finalize() }
        let s = try m.readySession()
        XCTAssertEqual(try sql(db, "SELECT backend_kind FROM token"), [kind], "the root key is wrapped by the \(kind) backend")
        let value = Array("KEY-VALUE-MARKER-0123456789abcde".utf8)
        let keeper = try m.aesKey(s, token: true, extra: [textAttr(CKA_LABEL, "keeper")])
        let victim = try m.aesKey(s, value: value, token: true, extra: [textAttr(CKA_LABEL, "victim")])
        XCTAssertEqual(try m.bytes(s, victim, CKA_VALUE), value)
        let rows = try sql(db, "SELECT hex(sealed_attrs) FROM objects ORDER BY created DESC LIMIT 1")
        let sealed = hex(try XCTUnwrap(rows.first, "no object row"))
        XCTAssertGreaterThan(sealed.count, 40)

        // C_DestroyObject
        try m.destroyObject(s, victim)
        assertGone(Array(sealed.prefix(32)), "the destroyed key's sealed value (head)", store: store)
        assertGone(Array(sealed.suffix(32)), "the destroyed key's sealed value (tail)", store: store)
        assertGone(value, "the destroyed key's value", store: store)
        XCTAssertNotNil(try m.bytes(s, keeper, CKA_VALUE), "the other key still works")

        func envelope(_ role: String) throws -> [UInt8] {
            hex(try XCTUnwrap(try sql(db, "SELECT hex(sealed) || hex(salt) FROM pin WHERE role = '\(role)'").first, "no \(role) envelope"))
        }
        // C_SetPIN (user, logged in)
        var old = try envelope("user")
        let newPIN = Array("user-pin-5678".utf8)
        try m.setPIN(s, oldPIN: userPIN, newPIN: newPIN)
        assertGone(old, "the user PIN envelope before C_SetPIN", store: store)
        // C_InitPIN (SO)
        try m.logout(s)
        try m.login(s, userType: CKU_SO, pin: soPIN)
        old = try envelope("user")
        try m.initPIN(s, pin: userPIN)
        assertGone(old, "the user PIN envelope before C_InitPIN", store: store)
        // C_InitToken (no session open)
        let keeperSealed = hex(try XCTUnwrap(try sql(db, "SELECT hex(sealed_attrs) FROM objects").first))
        let oldSO = try envelope("so"), oldUser = try envelope("user")
        try m.closeAllSessions(0)
        try m.initToken(0, soPIN: soPIN, label: Array("again".utf8))
        assertGone(oldSO, "the SO PIN envelope before C_InitToken", store: store)
        assertGone(oldUser, "the user PIN envelope before C_InitToken", store: store)
        assertGone(Array(keeperSealed.prefix(32)), "a key of the token before C_InitToken", store: store)
        let s2 = try m.openSession(0, flags: CKF_SERIAL_SESSION | CKF_RW_SESSION)
        XCTAssertNoThrow(try m.login(s2, userType: CKU_SO, pin: soPIN))
    }
}
