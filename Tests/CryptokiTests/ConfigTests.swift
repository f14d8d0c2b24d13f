import CP11Kit
import Foundation
import XCTest
@testable import Cryptoki

final class ConfigTests: XCTestCase {
    func testParsesFullSchema() throws {
        let c = try ConfigurationLoader.parse("""
        log: { level: debug, file: /tmp/x.log }
        tokens:
          - name: a
            store: /tmp/a
            backend: { kind: local }
            max_pin_retries: 3
            pin_kdf_cost: 10
          - name: b
            store: /tmp/b
        """, origin: "test")
        XCTAssertEqual(c.logLevel, .debug)
        XCTAssertEqual(c.logFile, "/tmp/x.log")
        XCTAssertEqual(c.tokens.map(\.name), ["a", "b"])
        XCTAssertEqual(c.tokens[0].maxPINRetries, 3)
        XCTAssertEqual(c.tokens[0].pinKDFCost, 10)
        XCTAssertEqual(c.tokens[1].maxPINRetries, 10)
        XCTAssertEqual(c.tokens[1].pinKDFCost, 15)
        XCTAssertEqual(c.tokens[1].backend.kind, "local")
    }

    func testEmptyGivesDefaultToken() throws {
        let c = try ConfigurationLoader.parse("", origin: "test")
        XCTAssertEqual(c.tokens.map(\.name), ["default"])
        XCTAssertTrue(c.tokens[0].store.hasSuffix("/tensorguard-pkcs11/default"))
    }

    func testRejectsUnknownKeysAndBadValues() {
        for bad in [
            "colour: red",
            "log: { level: loud }",
            "log: { file: relative.log }",
            "tokens: [ { name: a, store: /x, pin_kdf_cost: 9 } ]",
            "tokens: [ { name: a, store: /x, max_pin_retries: 0 } ]",
            "tokens: [ { name: a, store: relative } ]",
            "tokens: [ { name: a, store: /x, backend: { kind: nope } } ]",
            "tokens: [ { name: a, store: /x, backend: { kind: local, extra: 1 } } ]",
            "tokens: [ { name: a, store: /x, typo: 1 } ]",
            "tokens: [ { store: /x } ]",
            "tokens: [ { name: a, store: /x }, { name: a, store: /y } ]",
            "tokens: [ {name: a",
            "tokens: [ { name: a, store: /x, min_n2he_security_bits: 300 } ]",
        ] {
            XCTAssertThrowsError(try ConfigurationLoader.parse(bad, origin: "test"), bad) { e in
                XCTAssertEqual((e as? ConfigurationError)?.rv, CKR_GENERAL_ERROR, bad)
            }
        }
    }

    func testRefusesWritableConfigAndMissingExplicitPath() throws {
        let env = try TestEnvironment()
        try FileManager.default.setAttributes([.posixPermissions: 0o666], ofItemAtPath: env.configPath)
        expectCKR(CKR_GENERAL_ERROR) { _ = try env.module() }
        try FileManager.default.setAttributes([.posixPermissions: 0o620], ofItemAtPath: env.configPath)
        expectCKR(CKR_GENERAL_ERROR) { _ = try env.module() }
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: env.configPath)
        XCTAssertNoThrow(try env.module())
        expectCKR(CKR_ARGUMENTS_BAD) { _ = try Module(configPath: env.root + "/missing.yaml") }
    }

    func testSlotsFollowConfigOrder() throws {
        let env = try TestEnvironment(tokens: ["first", "second"])
        let m = try env.module()
        XCTAssertEqual(m.slotList(tokenPresent: true), [0, 1])
        XCTAssertEqual(try m.slotInfo(1).slotDescription, "second")
        XCTAssertEqual(try m.slotInfo(0).flags & CKF_TOKEN_PRESENT, CKF_TOKEN_PRESENT)
        expectCKR(CKR_SLOT_ID_INVALID) { _ = try m.slotInfo(2) }
        XCTAssertEqual(m.info.manufacturerID, "TensorGuard")
    }
}
