// Issue 13: the configuration file and the token stores under OpenSSH's ownership rule (KeyWrap's TrustedFile: owner
// root or the calling user, no group/world write on the file or any directory above it, symlinks resolved first),
// refused with a clear CK_RV and log line; module.log created 0600.
import CP11Kit
import Foundation
import XCTest
@testable import Cryptoki

final class FilePermissionTests: XCTestCase {
    func mode(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    func read(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }

    /// A config (0600) at `path` with one token on `store`, logging errors to `log`.
    func writeConfig(_ env: TestEnvironment, at path: String, store: String, log: String, level: String = "error") throws {
        try env.write("""
            log: { level: \(level), file: \(log) }
            audit: { file: \(env.root)/audit.log, sync: false }
            tokens:
              - name: t0
                store: \(store)
                pin_kdf_cost: 10
              - name: t1
                store: \(env.root)/t1
                pin_kdf_cost: 10

            """, to: path)
    }

    func testConfigInAWritableDirectoryOrThroughASymlinkIsRefused() throws {
        let env = try TestEnvironment()
        let open = env.root + "/open"
        try FileManager.default.createDirectory(atPath: open, withIntermediateDirectories: true)
        let config = open + "/config.yaml"
        try writeConfig(env, at: config, store: env.root + "/t0", log: env.root + "/module.log")
        XCTAssertNoThrow(try Module(configPath: config).finalize())
        chmod(open, 0o777)   // anyone may replace the (0600) file
        expectCKR(CKR_GENERAL_ERROR) { _ = try Module(configPath: config) }
        // Through a symlink in a clean directory: the resolved path is checked. (The reason goes to the log at level
        // error: stderr, since the configuration that would name a log file is the one refused.)
        let link = env.root + "/linked.yaml"
        XCTAssertEqual(symlink(config, link), 0)
        expectCKR(CKR_GENERAL_ERROR) { _ = try Module(configPath: link) }
        XCTAssertThrowsError(try ConfigurationLoader.load(explicitPath: link)) { e in
            let message = "\(e)"
            XCTAssertTrue(message.contains("config file \(link): refusing it: \(open) is group- or world-writable (mode 0777"), message)
            XCTAssertTrue(message.contains("checked as the resolved path of \(link)"), message)
        }
        chmod(open, 0o755)
        XCTAssertNoThrow(try Module(configPath: link).finalize())
        // Group-writable parent too (not only world).
        chmod(open, 0o775)
        expectCKR(CKR_GENERAL_ERROR) { _ = try Module(configPath: config) }
        chmod(open, 0o755)

        // Owned by another user (only root can make one: CI and `make check` run as root).
        if geteuid() == 0 {
            XCTAssertEqual(chown(config, 65534, 65534), 0)
            expectCKR(CKR_GENERAL_ERROR) { _ = try Module(configPath: config) }
            XCTAssertThrowsError(try ConfigurationLoader.load(explicitPath: config)) { e in
                XCTAssertTrue("\(e)".contains("is owned by uid 65534, neither root nor the calling user"), "\(e)")
            }
            XCTAssertEqual(chown(config, 0, 0), 0)
            XCTAssertNoThrow(try Module(configPath: config).finalize())
        }
    }

    func testOpenStoreOrDatabaseMakesOnlyThatTokenUnusable() throws {
        let env = try TestEnvironment()
        let store = env.root + "/t0", log = env.root + "/module.log"
        try writeConfig(env, at: env.configPath, store: store, log: log)
        do {
            let m = try env.module()
            try m.initToken(0, soPIN: soPIN, label: Array("perm".utf8))
            m.finalize()
        }
        chmod(store, 0o777)
        do {
            let m = try env.module()
            defer { m.finalize() }
            expectCKR(CKR_TOKEN_NOT_RECOGNIZED) { _ = try m.tokenInfo(0) }
            expectCKR(CKR_TOKEN_NOT_RECOGNIZED) { _ = try m.openSession(0, flags: CKF_SERIAL_SESSION) }
            XCTAssertEqual(try m.slotInfo(0).slotDescription, "t0", "the slot stays listed")
            XCTAssertNoThrow(try m.tokenInfo(1), "the other token is unaffected")
        }
        XCTAssertTrue(read(log).contains("token 't0' (slot 0, store \(store)) is not usable: cannot open: refusing the token store: "
            + "\(store) is group- or world-writable (mode 0777"), read(log))
        XCTAssertFalse(read(log).contains(String(decoding: soPIN, as: UTF8.self)))

        chmod(store, 0o700)
        let db = store + "/token.sqlite"
        chmod(db, 0o666)
        do {
            let m = try env.module()
            defer { m.finalize() }
            expectCKR(CKR_TOKEN_NOT_RECOGNIZED) { _ = try m.tokenInfo(0) }
        }
        XCTAssertTrue(read(log).contains("\(db) is group- or world-writable (mode 0666"), read(log))
        chmod(db, 0o600)
        do {
            let m = try env.module()
            defer { m.finalize() }
            XCTAssertEqual(try m.tokenInfo(0).label, "perm")
        }
    }

    func testModuleLogIsCreated0600() throws {
        let env = try TestEnvironment()
        let log = env.root + "/logs-module.log"
        try writeConfig(env, at: env.configPath, store: env.root + "/t0", log: log, level: "info")
        let saved = umask(0)   // even where the umask lets everything through
        defer { umask(saved) }
        let m = try env.module()
        m.finalize()
        XCTAssertTrue(read(log).contains("configuration from \(env.configPath)"), read(log))
        XCTAssertEqual(mode(log), 0o600)
        for f in [env.root + "/t0", env.root + "/t1"] { XCTAssertEqual(mode(f), 0o700, f) }
        XCTAssertEqual(mode(env.root + "/audit.log"), 0o600)
    }
}
