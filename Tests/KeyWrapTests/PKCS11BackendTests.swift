import CryptoCore
import Foundation
@testable import KeyWrap
import Synchronization
@testable import TokenStore
import XCTest

/// The `pkcs11` backend against SoftHSM2 from Debian (each test has its own SOFTHSM2_CONF and token).
final class PKCS11BackendTests: XCTestCase {
    let ctx = WrapContext(tokenSerial: "0123456789ABCDEF", tokenUUID: "00112233445566778899aabbccddeeff")
    static let valueAttr: UInt = 0x11
    static let labelAttr: UInt = 0x3

    // MARK: configuration

    func testConfigurationParsing() throws {
        let base = ["module": "/usr/lib/softhsm/libsofthsm2.so", "token_label": "hsm", "pin_env": "TG_HSM_PIN",
                    "kek_label": "tg-kek-1"]
        let c = try PKCS11BackendConfig(options: base)
        XCTAssertEqual(c.mechanism, .aesKeyWrapPad)
        XCTAssertEqual(c.token, .label("hsm"))
        XCTAssertEqual(c.pin, .environment("TG_HSM_PIN"))
        XCTAssertEqual(c.kek, .label("tg-kek-1"))
        XCTAssertFalse(c.allowExtractableKEK)
        XCTAssertEqual(try PKCS11BackendConfig(options: c.options), c)

        var o = base
        o["kek_label"] = nil
        o["kek_id"] = "0x01A2"
        o["token_label"] = nil
        o["token_serial"] = "abc123"
        o["pin_env"] = nil
        o["pin_file"] = "/etc/tg/pin"
        o["mechanism"] = "AES-GCM"
        o["allow_extractable_kek"] = "true"
        let d = try PKCS11BackendConfig(options: o)
        XCTAssertEqual(d.kek, .id([0x01, 0xA2]))
        XCTAssertEqual(d.token, .serial("abc123"))
        XCTAssertEqual(d.pin, .file("/etc/tg/pin"))
        XCTAssertEqual(d.mechanism, .aesGCM)
        XCTAssertTrue(d.allowExtractableKEK)
        XCTAssertEqual(try PKCS11BackendConfig(options: d.options), d)

        func refused(_ change: (inout [String: String]) -> Void, _ fragment: String, line: UInt = #line) {
            var x = base
            change(&x)
            let e = expectKeyWrapError("misconfigured", line: line) { _ = try PKCS11BackendConfig(options: x) }
            XCTAssertTrue("\(e.map { "\($0)" } ?? "")".contains(fragment), "\(String(describing: e))", line: line)
        }
        refused({ $0["pin"] = "123456" }, "inline PIN")
        refused({ $0["pin_env"] = nil }, "pin_env or pin_file")
        refused({ $0["pin_file"] = "/x" }, "not both")
        refused({ $0["token_label"] = nil }, "token_label or token_serial")
        refused({ $0["kek_label"] = nil; $0["kek_id"] = "xyz" }, "not hex")
        refused({ $0["mechanism"] = "des" }, "mechanism 'des'")
        refused({ $0["module"] = "libsofthsm2.so" }, "absolute")
        refused({ $0["module"] = nil }, "'module'")
        refused({ $0["kek_lable"] = "typo" }, "unknown option 'kek_lable'")
        refused({ $0["allow_extractable_kek"] = "maybe" }, "true or false")
        // The inline PIN value never appears in the message.
        var x = base
        x["pin"] = "s3cr3t-PIN"
        do { _ = try PKCS11BackendConfig(options: x) } catch { XCTAssertFalse("\(error)".contains("s3cr3t")) }
    }

    func testKEKReferenceParsing() throws {
        XCTAssertEqual(try PKCS11KEKReference(parsing: "tg-kek-2"), .label("tg-kek-2"))
        XCTAssertEqual(try PKCS11KEKReference(parsing: "label:id:x"), .label("id:x"))
        XCTAssertEqual(try PKCS11KEKReference(parsing: "id:0A0b"), .id([0x0a, 0x0b]))
        XCTAssertThrowsError(try PKCS11KEKReference(parsing: "id:zz"))
        XCTAssertThrowsError(try PKCS11KEKReference(parsing: ""))
        XCTAssertEqual(PKCS11KEKReference.id([1, 0xff]).description, "kek-id=01ff")
    }

    func testFactoryAndWrongModulePath() throws {
        XCTAssertTrue(BackendFactory.kinds.contains("pkcs11"))
        var options = ["module": "/nonexistent/libCryptoki2_64.so", "token_label": "t", "pin_env": "X", "kek_label": "k"]
        let e = expectKeyWrapError("misconfigured") { _ = try BackendFactory.make(BackendConfiguration(kind: "pkcs11", options: options)) }
        XCTAssertTrue("\(e.map { "\($0)" } ?? "")".contains("/nonexistent/libCryptoki2_64.so"))
        // A library that is not a PKCS#11 module.
        let notModule = ["/usr/lib/x86_64-linux-gnu/libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1"].first {
            FileManager.default.fileExists(atPath: $0)
        }
        if let notModule {
            options["module"] = notModule
            let e2 = expectKeyWrapError("misconfigured") { _ = try BackendFactory.make(BackendConfiguration(kind: "pkcs11", options: options)) }
            XCTAssertTrue("\(e2.map { "\($0)" } ?? "")".contains("not a PKCS#11 module"))
        }
        guard SoftHSMFixture.available else { return }
        options["module"] = SoftHSMFixture.modulePath
        let b = try BackendFactory.make(BackendConfiguration(kind: "pkcs11", options: options))
        XCTAssertEqual(b.descriptor, BackendDescriptor(kind: "pkcs11", keyID: "token-label=t", keyVersion: "kek-label=k"))
    }

    // MARK: round trips

    func testKeyWrapPadRoundTripBindingAndTamper() throws {
        let hsm = try SoftHSMFixture()
        let backend = try hsm.backend()
        XCTAssertEqual(try backend.createKEK(label: "tg-kek-1", id: [0x01]), .label("tg-kek-1"))
        expectKeyWrapError("misconfigured") { try backend.createKEK(label: "tg-kek-1") }
        let root = try SecretBytes.random(count: 32)
        let blob = try backend.wrap(root, context: ctx)
        XCTAssertEqual(blob.first, 1)
        XCTAssertEqual(blob[1], 1, "mechanism id of aes-key-wrap-pad")
        XCTAssertEqual(try backend.unwrap(blob, context: ctx), root)
        // The same KEK named by id works too (and the blob's KEK is what unwrap uses).
        XCTAssertEqual(try hsm.backend(kek: .id([0x01])).unwrap(blob, context: ctx), root)
        XCTAssertEqual(try hsm.backend(kek: .id([0x01])).wrap(root, context: ctx).count, blob.count - 8 + 1)

        // Bound to the token identity.
        let other = WrapContext(tokenSerial: "0123456789ABCDEF", tokenUUID: "ffffffffffffffffffffffffffffffff")
        expectKeyWrapError("integrityFailure") { _ = try backend.unwrap(blob, context: other) }
        // Tampered: KWP payload (SoftHSM answers CKR_GENERAL_ERROR), frame, MAC, truncation.
        let payloadStart = 5 + "tg-kek-1".utf8.count + 2
        for i in [0, 1, 3, payloadStart, payloadStart + 7, blob.count - 40, blob.count - 1] {
            var bad = blob
            bad[i] ^= 0x01
            expectKeyWrapError("integrityFailure") { _ = try backend.unwrap(bad, context: self.ctx) }
        }
        expectKeyWrapError("integrityFailure") { _ = try backend.unwrap(Array(blob.dropLast()), context: self.ctx) }
        expectKeyWrapError("integrityFailure") { _ = try backend.unwrap([], context: self.ctx) }
        // Nothing on the per-operation path: each call is one session.
        let s = backend.statistics
        XCTAssertEqual(s.wraps, 1)
        XCTAssertGreaterThan(s.moduleCalls, 0)
    }

    func testAESGCMRoundTripAndTamper() throws {
        let hsm = try SoftHSMFixture()
        let backend = try hsm.backend(mechanism: .aesGCM)
        try backend.createKEK(label: "tg-kek-1")
        let root = try SecretBytes.random(count: 32)
        let blob = try backend.wrap(root, context: ctx)
        XCTAssertEqual(blob[1], 2)
        XCTAssertEqual(try backend.unwrap(blob, context: ctx), root)
        // A KWP-configured backend still unwraps it: the blob names its mechanism.
        XCTAssertEqual(try hsm.backend().unwrap(blob, context: ctx), root)
        XCTAssertNotEqual(try backend.wrap(root, context: ctx), blob, "fresh IV every wrap")
        let other = WrapContext(tokenSerial: "X", tokenUUID: "Y")
        expectKeyWrapError("integrityFailure") { _ = try backend.unwrap(blob, context: other) }
        for i in [2, 20, blob.count - 33, blob.count - 1] {
            var bad = blob
            bad[i] ^= 0x80
            expectKeyWrapError("integrityFailure") { _ = try backend.unwrap(bad, context: self.ctx) }
        }
        XCTAssertTrue(backend.healthReport().isHealthy, backend.healthReport().description)
    }

    func testRSAOAEPSHA256() throws {
        let hsm = try SoftHSMFixture()
        let backend = try hsm.backend(kek: .label("tg-rsa-kek"), mechanism: .rsaOAEPSHA256)
        try backend.generateRSAKEK(label: "tg-rsa-kek", id: [0x0A])
        let root = try SecretBytes.random(count: 32)
        do {
            let blob = try backend.wrap(root, context: ctx)
            XCTAssertEqual(blob[1], 3)
            XCTAssertEqual(try backend.unwrap(blob, context: ctx), root)
            XCTAssertTrue(backend.healthReport().isHealthy)
        } catch let e as KeyWrapError {
            // SoftHSM 2.6 implements OAEP with SHA-1 only ("hashAlg must be CKM_SHA_1"): a clear configuration
            // error naming the mechanism, not a crash or a generic failure.
            XCTAssertEqual(caseName(e), "misconfigured", "\(e)")
            XCTAssertTrue("\(e)".contains("rsa-oaep-sha256"), "\(e)")
            let report = backend.healthReport()
            XCTAssertFalse(report.isHealthy)
            XCTAssertTrue(report.checks.contains { $0.name == "kek" && $0.passed }, report.description)
            XCTAssertTrue(report.checks.contains { $0.name == "kek-extractable" && $0.passed }, report.description)
            print("[pkcs11] rsa-oaep-sha256 on SoftHSM2: \(e)")
        }
        // The RSA key pair is not usable with an AES mechanism.
        expectKeyWrapError("keyNotFound") { _ = try hsm.backend(kek: .label("tg-rsa-kek")).wrap(root, context: self.ctx) }
    }

    // MARK: health and faults at the backend level

    func testHealthReportAndFaults() throws {
        let hsm = try SoftHSMFixture()
        let backend = try hsm.backend()
        // Missing KEK.
        var report = backend.healthReport()
        XCTAssertFalse(report.isHealthy)
        XCTAssertEqual(report.error.map(caseName), "keyNotFound", report.description)
        XCTAssertEqual(report.tokenLabel, hsm.tokenLabel)
        expectKeyWrapError("keyNotFound") { try backend.checkHealth() }
        expectKeyWrapError("keyNotFound") { _ = try backend.wrap(try SecretBytes.random(count: 32), context: self.ctx) }

        try backend.createKEK(label: "tg-kek-1")
        report = backend.healthReport()
        XCTAssertTrue(report.isHealthy, report.description)
        XCTAssertEqual(report.checks.map(\.name), ["token", "login", "mechanism", "kek", "kek-extractable", "kek-sensitive", "kek-usage", "round-trip"])
        XCTAssertTrue(report.moduleInfo.contains("SoftHSM"), report.moduleInfo)
        XCTAssertNoThrow(try backend.checkHealth())
        print(report.description)

        // Wrong backend PIN: typed, names the cause and the source, never the PIN.
        try hsm.writePIN("wrong-pin-0000")
        let e = expectKeyWrapError("authenticationFailed") { try backend.checkHealth() }
        let text = "\(e.map { "\($0)" } ?? "")"
        XCTAssertTrue(text.contains("CKR_PIN_INCORRECT") && text.contains(hsm.pinFile), text)
        XCTAssertFalse(text.contains("wrong-pin-0000") || text.contains(hsm.userPIN), text)
        try hsm.writePIN(hsm.userPIN)
        XCTAssertNoThrow(try backend.checkHealth())

        // A PIN file other users can read is refused (naming the file, not the PIN).
        chmod(hsm.pinFile, 0o644)
        let perm = expectKeyWrapError("misconfigured") { try backend.checkHealth() }
        XCTAssertTrue("\(perm.map { "\($0)" } ?? "")".contains("chmod 600"))
        chmod(hsm.pinFile, 0o600)

        // PIN from the environment.
        setenv("TG_TEST_HSM_PIN", hsm.userPIN, 1)
        var c = hsm.config()
        c.pin = .environment("TG_TEST_HSM_PIN")
        XCTAssertTrue(try PKCS11Backend(configuration: c).healthReport().isHealthy)
        c.pin = .environment("TG_TEST_HSM_PIN_UNSET_\(getpid())")
        expectKeyWrapError("misconfigured") { try PKCS11Backend(configuration: c).checkHealth() }

        // Extractable KEK: refused unless allowed.
        try backend.createKEK(label: "tg-kek-extractable", id: nil, extractable: true)
        let loose = try hsm.backend(kek: .label("tg-kek-extractable"))
        let pe = expectKeyWrapError("policyViolation") { _ = try loose.wrap(try SecretBytes.random(count: 32), context: self.ctx) }
        XCTAssertTrue("\(pe.map { "\($0)" } ?? "")".contains("allow_extractable_kek"))
        report = loose.healthReport()
        XCTAssertEqual(report.error.map(caseName), "policyViolation")
        XCTAssertTrue(report.checks.contains { $0.name == "kek-extractable" && !$0.passed })
        let allowed = try hsm.backend(kek: .label("tg-kek-extractable"), allowExtractable: true)
        XCTAssertTrue(allowed.healthReport().isHealthy, allowed.healthReport().description)
        let root = try SecretBytes.random(count: 32)
        XCTAssertEqual(try allowed.unwrap(try allowed.wrap(root, context: ctx), context: ctx), root)

        // Token selected by a label that does not exist, and by serial.
        var missing = hsm.config()
        missing.token = .label("no-such-token")
        expectKeyWrapError("removed") { try PKCS11Backend(configuration: missing).checkHealth() }
        let serial = try XCTUnwrap(report.tokenSerial)
        var bySerial = hsm.config()
        bySerial.token = .serial(serial)
        XCTAssertTrue(try PKCS11Backend(configuration: bySerial).healthReport().isHealthy)
    }

    // MARK: faults at the TokenVault level

    func makeVault(_ dir: String) throws -> (TokenDatabase, TokenVault) {
        let db = try TokenDatabase(directory: dir, indexedAttributes: [0x0, 0x3, 0x102])
        return (db, try TokenVault(database: db, kdfLog2N: TokenVault.minimumKDFLog2N))
    }

    func insertObjects(_ db: TokenDatabase, keys: SessionKeys, count: Int) throws -> [String: SecretBytes] {
        var values: [String: SecretBytes] = [:]
        for i in 0..<count {
            let id = String(format: "obj-%05d", i)
            let value = try SecretBytes.random(count: 32)
            try db.insert(uniqueID: id, publicAttributes: [Self.labelAttr: Array("key-\(i)".utf8)],
                          secretAttributes: [Self.valueAttr: value], keys: keys)
            values[id] = value
        }
        return values
    }

    func assertAllUnseal(_ db: TokenDatabase, _ keys: SessionKeys, _ values: [String: SecretBytes],
                         file: StaticString = #filePath, line: UInt = #line) throws {
        let objects = try db.allObjects()
        XCTAssertEqual(objects.count, values.count, file: file, line: line)
        for o in objects {
            XCTAssertEqual(try db.unseal(o, attribute: Self.valueAttr, keys: keys), values[o.uniqueID], file: file, line: line)
        }
    }

    func testVaultSurvivesBackendFaults() throws {
        let hsm = try SoftHSMFixture()
        let backend = try hsm.backend()
        try backend.createKEK(label: "tg-kek-1")
        let (db, vault) = try makeVault(hsm.root + "/token")
        let so = Array("so-pin".utf8)

        // A missing KEK at C_InitToken: refused, nothing written.
        let absent = try hsm.backend(kek: .label("absent"))
        expectKeyWrapError("keyNotFound") { try vault.initialize(soPIN: so, label: Array("t".utf8), backend: absent) }
        XCTAssertFalse(try db.tokenRecord().isInitialized)

        try vault.initialize(soPIN: so, label: Array("t".utf8), backend: backend)
        XCTAssertEqual(try db.tokenRecord().backend, backend.descriptor)
        let keys = try vault.login(role: .so, pin: so, backend: backend)
        let values = try insertObjects(db, keys: keys, count: 20)
        let objectsBefore = try db.allObjects()

        // 1. Wrong backend PIN.
        try hsm.writePIN("0000-wrong")
        expectKeyWrapError("authenticationFailed") { _ = try vault.login(role: .so, pin: so, backend: backend) }
        XCTAssertEqual(try db.tokenRecord().soPIN.failedAttempts, 0, "a backend failure is not the user's wrong PIN")
        try hsm.writePIN(hsm.userPIN)
        try assertAllUnseal(db, try vault.login(role: .so, pin: so, backend: backend), values)

        // 2. Backend token gone (its directory moved away), then back.
        let tokenSub = try hsm.tokenSubdirectory()
        try FileManager.default.moveItem(atPath: tokenSub, toPath: hsm.root + "/moved-away")
        let removed = expectKeyWrapError("removed") { _ = try vault.login(role: .so, pin: so, backend: backend) }
        XCTAssertTrue("\(removed.map { "\($0)" } ?? "")".contains(hsm.tokenLabel))
        try FileManager.default.moveItem(atPath: hsm.root + "/moved-away", toPath: tokenSub)
        try assertAllUnseal(db, try vault.login(role: .so, pin: so, backend: backend), values)

        // 3. KEK deleted on the backend token (backup of its files restored afterwards).
        let backup = hsm.root + "/backup"
        try FileManager.default.copyItem(atPath: tokenSub, toPath: backup)
        try hsm.run("/usr/bin/pkcs11-tool", ["--module", SoftHSMFixture.modulePath, "--token-label", hsm.tokenLabel,
                                             "--login", "--pin", hsm.userPIN, "--delete-object", "--type", "secrkey",
                                             "--label", "tg-kek-1"])
        expectKeyWrapError("keyNotFound") { _ = try vault.login(role: .so, pin: so, backend: backend) }
        try FileManager.default.removeItem(atPath: tokenSub)
        try FileManager.default.copyItem(atPath: backup, toPath: tokenSub)
        try assertAllUnseal(db, try vault.login(role: .so, pin: so, backend: backend), values)

        // 4. Backend module path wrong: the backend cannot be built; the vault is untouched.
        var wrongModule = hsm.config()
        wrongModule.modulePath = "/opt/nfast/toolkits/pkcs11/libcknfast.so"
        expectKeyWrapError("misconfigured") { _ = try PKCS11Backend(configuration: wrongModule) }

        // 5. Rotation to an extractable KEK is refused; the recorded descriptor stays.
        try backend.createKEK(label: "tg-kek-loose", id: nil, extractable: true)
        let keys2 = try vault.login(role: .so, pin: so, backend: backend)
        expectKeyWrapError("policyViolation") { try vault.rewrapRootKey(using: keys2, backend: backend.withKEK(.label("tg-kek-loose"))) }
        XCTAssertEqual(try db.tokenRecord().backend, backend.descriptor)

        // Objects were never rewritten by any of this, and all unseal.
        XCTAssertEqual(try db.allObjects(), objectsBefore)
        try assertAllUnseal(db, try vault.login(role: .so, pin: so, backend: backend), values)
    }

    // MARK: rotation

    func testRotationOf1000ObjectsIsO1BackendCalls() throws {
        let hsm = try SoftHSMFixture()
        let backend = try hsm.backend()
        try backend.createKEK(label: "tg-kek-1")
        let (db, vault) = try makeVault(hsm.root + "/token")
        let so = Array("so-pin".utf8)
        try vault.initialize(soPIN: so, label: Array("rot".utf8), backend: backend)
        let keys = try vault.login(role: .so, pin: so, backend: backend)
        let t0 = Date()
        let values = try insertObjects(db, keys: keys, count: 1000)
        let tInsert = Date().timeIntervalSince(t0)

        try backend.createKEK(label: "tg-kek-2", id: [0x02])
        let next = backend.withKEK(.label("tg-kek-2"))
        backend.resetStatistics()
        let t1 = Date()
        try vault.rewrapRootKey(using: keys, backend: next)
        let tRotate = Date().timeIntervalSince(t1)
        let s = next.statistics
        XCTAssertEqual(s.wraps, 1)
        XCTAssertEqual(s.unwraps, 0)
        XCTAssertEqual(s.sessions, 1)
        XCTAssertLessThanOrEqual(s.moduleCalls, 24, "\(s)")
        XCTAssertEqual(backend.statistics.operations, 0, "the old KEK is not used by a rotation")
        let record = try db.tokenRecord()
        XCTAssertEqual(record.backend, BackendDescriptor(kind: "pkcs11", keyID: "token-label=\(hsm.tokenLabel)", keyVersion: "kek-label=tg-kek-2"))

        // A host still configured with tg-kek-1 logs in: the blob names tg-kek-2.
        let t2 = Date()
        let after = try vault.login(role: .so, pin: so, backend: backend)
        let tLogin = Date().timeIntervalSince(t2)
        XCTAssertEqual(backend.statistics.unwraps, 1)
        XCTAssertEqual(after.rootKey, keys.rootKey)
        try assertAllUnseal(db, after, values)
        XCTAssertEqual(backend.statistics.operations, 1, "unsealing 1,000 objects makes no backend call")
        print(String(format: "[pkcs11] 1000 objects: insert %.2f s, rotation %.1f ms (%d backend operation, %d C_* calls), login %.1f ms (%d C_* calls)",
                     tInsert, tRotate * 1000, s.operations, s.moduleCalls, tLogin * 1000, backend.statistics.moduleCalls))

        // The old KEK can now be destroyed: logins keep working.
        try hsm.run("/usr/bin/pkcs11-tool", ["--module", SoftHSMFixture.modulePath, "--token-label", hsm.tokenLabel,
                                             "--login", "--pin", hsm.userPIN, "--delete-object", "--type", "secrkey",
                                             "--label", "tg-kek-1"])
        XCTAssertEqual(try vault.login(role: .so, pin: so, backend: next).rootKey, keys.rootKey)
    }

    // MARK: concurrency

    /// The child's half of `testTwoProcessesShareTokenAndBackend`: this test binary re-run on that test with the
    /// TG_PKCS11_CHILD_* environment. Not a test of its own, so it is never counted (or skipped) in a normal run.
    private func runAsChildWorker() throws -> Bool {
        let env = ProcessInfo.processInfo.environment
        guard let dir = env["TG_PKCS11_CHILD_DIR"], let pinFile = env["TG_PKCS11_CHILD_PINFILE"],
              let label = env["TG_PKCS11_CHILD_TOKEN"] else { return false }
        try runLoginLoop(dir: dir, config: PKCS11BackendConfig(modulePath: SoftHSMFixture.modulePath, token: .label(label),
                                                              pin: .file(pinFile), kek: .label("tg-kek-1")),
                         iterations: 15, tag: "child")
        print("child worker: 15 logins done")
        return true
    }

    func runLoginLoop(dir: String, config: PKCS11BackendConfig, iterations: Int, tag: String) throws {
        let backend = try PKCS11Backend(configuration: config)
        let (db, vault) = try makeVault(dir)
        let so = Array("so-pin".utf8)
        for i in 0..<iterations {
            let keys = try vault.login(role: .so, pin: so, backend: backend)
            let objects = try db.allObjects()
            XCTAssertGreaterThanOrEqual(objects.count, 5)
            for o in objects.prefix(5) { _ = try db.unseal(o, attribute: Self.valueAttr, keys: keys) }
            // Also wrap/unwrap directly (C_WrapKey / C_UnwrapKey on the backend token) in both processes.
            let k = try SecretBytes.random(count: 32)
            XCTAssertEqual(try backend.unwrap(try backend.wrap(k, context: ctx), context: ctx), k)
            try db.insert(uniqueID: "\(tag)-\(getpid())-\(i)", publicAttributes: [:],
                          secretAttributes: [Self.valueAttr: k], keys: keys)
        }
    }

    func testTwoProcessesShareTokenAndBackend() throws {
        if try runAsChildWorker() { return }
        let hsm = try SoftHSMFixture()
        let backend = try hsm.backend()
        try backend.createKEK(label: "tg-kek-1")
        let dir = hsm.root + "/token"
        let (db, vault) = try makeVault(dir)
        let so = Array("so-pin".utf8)
        try vault.initialize(soPIN: so, label: Array("shared".utf8), backend: backend)
        _ = try insertObjects(db, keys: try vault.login(role: .so, pin: so, backend: backend), count: 5)

        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let child = Process()
        child.executableURL = URL(fileURLWithPath: exe)
        child.arguments = ["KeyWrapTests.PKCS11BackendTests/testTwoProcessesShareTokenAndBackend"]
        var env = ProcessInfo.processInfo.environment
        env["SOFTHSM2_CONF"] = hsm.confPath
        env["TG_PKCS11_CHILD_DIR"] = dir
        env["TG_PKCS11_CHILD_PINFILE"] = hsm.pinFile
        env["TG_PKCS11_CHILD_TOKEN"] = hsm.tokenLabel
        child.environment = env
        let out = Pipe()
        child.standardOutput = out
        child.standardError = out
        try child.run()
        try runLoginLoop(dir: dir, config: hsm.config(), iterations: 15, tag: "parent")
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        child.waitUntilExit()
        XCTAssertEqual(child.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("child worker: 15 logins done") && !text.contains("skipped"), text)
        // Both processes' inserts are there and every value unseals.
        let keys = try vault.login(role: .so, pin: so, backend: backend)
        let objects = try db.allObjects()
        XCTAssertEqual(objects.count, 5 + 15 + 15)
        for o in objects { _ = try db.unseal(o, attribute: Self.valueAttr, keys: keys) }
    }

    func testThreadsShareOneBackend() throws {
        let hsm = try SoftHSMFixture()
        let backend = try hsm.backend(mechanism: .aesGCM)
        try backend.createKEK(label: "tg-kek-1")
        let other = backend.withKEK(.label("tg-kek-1"), mechanism: .aesKeyWrapPad)
        let failures = Mutex<[String]>([])
        let ctx = self.ctx
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            do {
                let b = i % 2 == 0 ? backend : other
                for _ in 0..<5 {
                    let k = try SecretBytes.random(count: 32)
                    guard try b.unwrap(try b.wrap(k, context: ctx), context: ctx) == k else { throw KeyWrapError.integrityFailure }
                }
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
        }
        XCTAssertEqual(failures.withLock { $0 }, [])
    }

    /// A forked child re-initialises the backend module on its first call and can unwrap.
    func testForkedChildReinitialises() throws {
        let hsm = try SoftHSMFixture()
        let backend = try hsm.backend()
        try backend.createKEK(label: "tg-kek-1")
        let root = try SecretBytes.random(count: 32)
        let blob = try backend.wrap(root, context: ctx)
        let expected = root.unsafeCopyToArray()
        let c = ctx
        let pid = fork()
        if pid == 0 {
            var ok: Int32 = 1
            if let back = try? backend.unwrap(blob, context: c), back.unsafeCopyToArray() == expected,
               (try? backend.wrap(back, context: c)) != nil {
                ok = 0
            }
            _exit(ok)
        }
        XCTAssertGreaterThan(pid, 0)
        var status: Int32 = 0
        XCTAssertEqual(waitpid(pid, &status, 0), pid)
        XCTAssertEqual(status, 0, "child exit status \(status)")
        // The parent's initialisation is intact.
        XCTAssertEqual(try backend.unwrap(blob, context: ctx), root)
    }
}
