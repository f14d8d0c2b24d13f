// The audit log as the Module API writes it (docs/audit.md): events with role and CK_RV, object ids and labels,
// key use aggregated per session and key, checkpoints under the token's audit key, no secret ever logged,
// state changes refused when their record cannot be written, a crash after the write leaves a verifiable log.
import Audit
import CP11Kit
import Foundation
import TestSupport
import XCTest
@testable import Cryptoki
#if canImport(Glibc)
import Glibc
#endif

func auditRecords(_ path: String) throws -> [[String: Any]] {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    return text.split(separator: "\n").compactMap { AuditEncoding.parse(Array($0.utf8)) }
}

func events(_ records: [[String: Any]]) -> [String] {
    records.map { "\($0["event"] as? String ?? "?"):\($0["outcome"] as? String ?? "?")" }
}

final class AuditModuleTests: XCTestCase {
    func testLoginLogoutAndPINEventsCarryRoleAndRV() throws {
        let env = try TestEnvironment()
        let m = try env.module()
        let s = try m.readySession(login: false)
        expectCKR(CKR_PIN_INCORRECT) { try m.login(s, userType: CKU_USER, pin: Array("wrong-pin-99".utf8)) }
        try m.login(s, userType: CKU_USER, pin: userPIN)
        try m.setPIN(s, oldPIN: userPIN, newPIN: Array("user-pin-5678".utf8))
        try m.logout(s)
        let recs = try auditRecords(env.auditPath)
        XCTAssertEqual(events(recs).filter { !$0.hasPrefix("checkpoint") }, [
            "token_init:pending", "token_init:success", "login:success", "pin_init:pending", "pin_init:success",
            "logout:success", "login:failure", "login:success", "pin_change:pending", "pin_change:success",
            "logout:success"])
        let failed = try XCTUnwrap(recs.first { $0["event"] as? String == "login" && $0["outcome"] as? String == "failure" })
        XCTAssertEqual(failed["role"] as? String, "user")
        XCTAssertEqual(failed["rv"] as? String, "0x000000A0")  // CKR_PIN_INCORRECT
        XCTAssertEqual(failed["token"] as? String, "t0")
        XCTAssertEqual(AuditEncoding.int(failed["pid"]), Int64(getpid()))
        let soLogin = try XCTUnwrap(recs.first { $0["event"] as? String == "login" })
        XCTAssertEqual(soLogin["role"] as? String, "so")
        // A checkpoint right after every login and at every logout.
        XCTAssertEqual(recs.filter { $0["event"] as? String == "checkpoint" }.count, 4)
        XCTAssertTrue(try AuditVerifier.verify(path: env.auditPath).ok)
    }

    func testLockoutIsRecorded() throws {
        let env = try TestEnvironment(retries: 2)
        let m = try env.module()
        let s = try m.readySession(login: false)
        expectCKR(CKR_PIN_INCORRECT) { try m.login(s, userType: CKU_USER, pin: Array("wrong-pin-1".utf8)) }
        expectCKR(CKR_PIN_LOCKED) { try m.login(s, userType: CKU_USER, pin: Array("wrong-pin-2".utf8)) }
        expectCKR(CKR_PIN_LOCKED) { try m.login(s, userType: CKU_USER, pin: userPIN) }
        let recs = try auditRecords(env.auditPath)
        XCTAssertEqual(events(recs).suffix(4), ["login:failure", "pin_lockout:failure", "login:failure", "login:failure"])
        XCTAssertEqual(recs.filter { $0["event"] as? String == "pin_lockout" }.first?["role"] as? String, "user")
    }

    func testObjectEventsNameTheObjectNeverItsValue() throws {
        let env = try TestEnvironment()
        let m = try env.module()
        let s = try m.readySession()
        let keyBytes: [UInt8] = (0..<32).map { UInt8(0xA0 &+ $0) }
        _ = try m.aesKey(s, value: keyBytes, token: true, extra: [textAttr(CKA_LABEL, "imported-key")])
        let generated = try m.aesKey(s, token: true, extra: [textAttr(CKA_LABEL, "generated-key"), boolAttr(CKA_SENSITIVE, false)])
        let generatedValue = try XCTUnwrap(m.bytes(s, generated, CKA_VALUE))
        // Only a key nobody knows may wrap: a generated wrapping key.
        let wrapper = try m.generateKey(s, mechanism: Mechanism(type: CKM_AES_KEY_GEN), template: [
            ulongAttr(CKA_VALUE_LEN, 32), boolAttr(CKA_TOKEN, true), boolAttr(CKA_WRAP, true), boolAttr(CKA_UNWRAP, true),
            textAttr(CKA_LABEL, "wrapping-key")])
        try m.setAttributeValues(s, generated, template: [textAttr(CKA_LABEL, "renamed-key")])
        let copy = try m.copyObject(s, generated, template: [textAttr(CKA_LABEL, "copied-key")])
        _ = try m.createObject(s, template: [ulongAttr(CKA_CLASS, CKO_DATA), textAttr(CKA_LABEL, "a data object"),
                                             bytesAttr(CKA_VALUE, Array("data-object-secret-value".utf8))])
        let wrapped = try twoStep { try m.wrapKey(s, mechanism: Mechanism(type: CKM_AES_KEY_WRAP), wrappingKey: wrapper,
                                                  key: generated, output: $0) }
        let unwrapped = try wrapped.withUnsafeBytes { w in
            try m.unwrapKey(s, mechanism: Mechanism(type: CKM_AES_KEY_WRAP), unwrappingKey: wrapper, wrappedKey: w,
                            template: [ulongAttr(CKA_CLASS, CKO_SECRET_KEY), ulongAttr(CKA_KEY_TYPE, CKK_AES),
                                       textAttr(CKA_LABEL, "unwrapped-key")])
        }
        try m.destroyObject(s, copy)
        expectCKR(CKR_OBJECT_HANDLE_INVALID) { try m.destroyObject(s, copy) }
        _ = unwrapped
        let recs = try auditRecords(env.auditPath)
        let allObjectEvents = recs.filter { ($0["event"] as? String).map { !["login", "logout", "checkpoint", "token_init", "pin_init"].contains($0) } ?? false }
        // Every state change and the wrap: a pending record first, then exactly one outcome naming it.
        let pendings = allObjectEvents.filter { $0["outcome"] as? String == "pending" }
        let objectEvents = allObjectEvents.filter { $0["outcome"] as? String != "pending" }
        XCTAssertEqual(pendings.count, objectEvents.count)
        for (p, o) in zip(pendings, objectEvents) {
            XCTAssertEqual(p["event"] as? String, o["event"] as? String)
            XCTAssertEqual(AuditEncoding.int(o["pending_seq"]), AuditEncoding.int(p["seq"]), "the outcome names its pending record")
            XCTAssertLessThan(AuditEncoding.int(p["seq"]) ?? .max, AuditEncoding.int(o["seq"]) ?? 0)
        }
        XCTAssertEqual(pendings.first { $0["event"] as? String == "object_generate" }?["object_label"] as? String,
                       "generated-key", "the pending record of a creation names the label asked for")
        XCTAssertEqual(pendings.first { $0["event"] as? String == "object_destroy" }?["object_uid"] as? String,
                       objectEvents.first { $0["event"] as? String == "object_destroy" }?["object_uid"] as? String)
        XCTAssertEqual(events(objectEvents), [
            "object_import:success", "object_generate:success", "object_generate:success", "attribute_change:success", "object_copy:success",
            "object_create:success", "wrap:success", "unwrap:success", "object_destroy:success", "object_destroy:failure"])
        func record(_ e: String) -> [String: Any]? { objectEvents.first { $0["event"] as? String == e } }
        XCTAssertEqual(record("object_import")?["object_label"] as? String, "imported-key")
        XCTAssertEqual(record("object_generate")?["object_label"] as? String, "generated-key")
        XCTAssertEqual(record("object_generate")?["mechanism"] as? String, "0x00001080")
        XCTAssertEqual(record("attribute_change")?["object_label"] as? String, "generated-key")
        XCTAssertEqual((record("attribute_change")?["details"] as? [String: Any])?["attributes"] as? String, "0x00000003")
        XCTAssertEqual(record("object_copy")?["object_label"] as? String, "copied-key")
        XCTAssertEqual(record("wrap")?["object_label"] as? String, "renamed-key")
        XCTAssertEqual(record("unwrap")?["object_label"] as? String, "unwrapped-key")
        XCTAssertEqual(record("object_destroy")?["object_label"] as? String, "copied-key")
        let genUID = try XCTUnwrap(record("object_generate")?["object_uid"] as? String)
        XCTAssertEqual(String(decoding: try XCTUnwrap(m.bytes(s, generated, CK.attrUniqueID)), as: UTF8.self), genUID)
        XCTAssertEqual((record("object_copy")?["details"] as? [String: Any])?["source_uid"] as? String, genUID)
        XCTAssertEqual(objectEvents.last?["rv"] as? String, "0x00000082")  // CKR_OBJECT_HANDLE_INVALID
        try m.logout(s)
        try assertNoSecrets(env.auditPath, secrets: [keyBytes, generatedValue, Array("data-object-secret-value".utf8),
                                                     userPIN, soPIN])
    }

    func testTenThousandEncryptionsAreAHandfulOfRecords() throws {
        let env = try TestEnvironment()
        let m = try env.module()
        let s = try m.readySession()
        let key = try m.aesKey(s, token: true, extra: [textAttr(CKA_LABEL, "busy-key")])
        let before = try auditRecords(env.auditPath).count
        let block = [UInt8](repeating: 7, count: 16)
        var out = [UInt8](repeating: 0, count: 16)
        for _ in 0..<10_000 {
            try m.encryptInit(s, mechanism: Mechanism(type: CKM_AES_ECB), key: key)
            _ = try block.withUnsafeBytes { i in try out.withUnsafeMutableBytes { try m.encrypt(s, input: i, output: .buffer($0)) } }
        }
        try m.signInit(s, mechanism: Mechanism(type: CKM_SHA256_HMAC), key: try m.createObject(s, template: [
            ulongAttr(CKA_CLASS, CKO_SECRET_KEY), ulongAttr(CKA_KEY_TYPE, CKK_GENERIC_SECRET),
            bytesAttr(CKA_VALUE, [UInt8](repeating: 3, count: 32)), boolAttr(CKA_SIGN, true)]))
        XCTAssertEqual(try auditRecords(env.auditPath).count, before + 2,
                       "no record per operation (only the HMAC key's import: pending and outcome)")
        try m.closeSession(s)
        let recs = try auditRecords(env.auditPath)
        let uses = recs.filter { $0["event"] as? String == "key_use" }
        XCTAssertEqual(uses.count, 2)
        let enc = try XCTUnwrap(uses.first { $0["operation"] as? String == "encrypt" })
        XCTAssertEqual(AuditEncoding.int(enc["count"]), 10_000)
        XCTAssertEqual(enc["object_label"] as? String, "busy-key")
        XCTAssertEqual(enc["mechanism"] as? String, "0x00001081")
        XCTAssertEqual(AuditEncoding.int(enc["session"]), Int64(s))
        XCTAssertNotNil(enc["first_use"] as? String)
        XCTAssertLessThanOrEqual(try XCTUnwrap(enc["first_use"] as? String), try XCTUnwrap(enc["last_use"] as? String))
        XCTAssertEqual(uses.first { $0["operation"] as? String == "sign" }.flatMap { AuditEncoding.int($0["count"]) }, 1)
        // Closing the last session logged out: summaries, then the logout and its checkpoint.
        XCTAssertEqual(events(Array(recs.suffix(4))), ["key_use:success", "key_use:success", "logout:success", "checkpoint:success"])
        XCTAssertLessThan(recs.count - before, 8)
    }

    func testKeyUseIsFlushedAtLogoutAndFinalize() throws {
        let env = try TestEnvironment()
        let m = try env.module()
        let s = try m.readySession()
        let key = try m.aesKey(s, extra: [textAttr(CKA_LABEL, "k")])
        _ = try m.encryptAll(s, Mechanism(type: CKM_AES_ECB), key, [UInt8](repeating: 1, count: 16))
        try m.logout(s)
        XCTAssertEqual(try auditRecords(env.auditPath).filter { $0["event"] as? String == "key_use" }.count, 1)
        try m.login(s, userType: CKU_USER, pin: userPIN)
        let key2 = try m.aesKey(s, extra: [textAttr(CKA_LABEL, "k2")])
        _ = try m.encryptAll(s, Mechanism(type: CKM_AES_ECB), key2, [UInt8](repeating: 1, count: 16))
        _ = try m.encryptAll(s, Mechanism(type: CKM_AES_ECB), key2, [UInt8](repeating: 1, count: 16))
        m.finalize()
        let recs = try auditRecords(env.auditPath)
        let last = try XCTUnwrap(recs.filter { $0["event"] as? String == "key_use" }.last)
        XCTAssertEqual(last["object_label"] as? String, "k2")
        XCTAssertEqual(AuditEncoding.int(last["count"]), 2)
        XCTAssertEqual(recs.last?["event"] as? String, "checkpoint")
        XCTAssertTrue(try AuditVerifier.verify(path: env.auditPath).ok)
    }

    func testForkedChildDoesNotFlushTheParentsCounters() throws {
        let env = try TestEnvironment()
        let m = try env.module()
        let s = try m.readySession()
        let key = try m.aesKey(s)
        _ = try m.encryptAll(s, Mechanism(type: CKM_AES_ECB), key, [UInt8](repeating: 1, count: 16))
        let before = try auditRecords(env.auditPath).count
        m.abandonAfterFork()  // what the child's atfork handler runs
        XCTAssertEqual(try auditRecords(env.auditPath).count, before)
    }

    func testKeyUseIntervalFlushes() throws {
        let env = try TestEnvironment(auditOptions: ", key_use_interval: 1")
        let m = try env.module()
        let s = try m.readySession()
        let key = try m.aesKey(s, extra: [textAttr(CKA_LABEL, "interval-key")])
        _ = try m.encryptAll(s, Mechanism(type: CKM_AES_ECB), key, [UInt8](repeating: 1, count: 16))
        Thread.sleep(forTimeInterval: 1.1)
        _ = try m.encryptAll(s, Mechanism(type: CKM_AES_ECB), key, [UInt8](repeating: 1, count: 16))
        let uses = try auditRecords(env.auditPath).filter { $0["event"] as? String == "key_use" }
        XCTAssertEqual(uses.count, 1)
        XCTAssertEqual(AuditEncoding.int(uses.first?["count"]), 2)
        XCTAssertEqual(uses.first?["flush"] as? String, "interval")
    }

    func testCheckpointsVerifyUnderTheTokensAuditKey() throws {
        let env = try TestEnvironment(auditOptions: ", checkpoint_every: 5")
        let m = try env.module()
        let s = try m.readySession()
        for i in 0..<12 { _ = try m.aesKey(s, extra: [textAttr(CKA_LABEL, "key \(i)")]) }
        try m.logout(s)
        let recs = try auditRecords(env.auditPath)
        let checkpoints = recs.filter { $0["event"] as? String == "checkpoint" }
        XCTAssertGreaterThanOrEqual(checkpoints.count, 5, "login, every 5 records, logout")
        // The key as `tg-pkcs11 audit verify --token` derives it: a fresh login to the store.
        let token = m.tokens[0]
        let keys = try token.vault.login(role: .user, pin: userPIN, backend: token.backend)
        let auditKey = try OperatorAudit.auditKey(keys)
        let r = try AuditVerifier.verify(path: env.auditPath, keys: [keys.tokenUUID: auditKey])
        XCTAssertTrue(r.ok, "\(String(describing: r.error))")
        XCTAssertEqual(r.checkpointsVerified, checkpoints.filter { $0["token_uuid"] as? String == keys.tokenUUID }.count)
        XCTAssertEqual(r.checkpointsUnverified, checkpoints.count - r.checkpointsVerified)
        XCTAssertGreaterThan(r.checkpointsVerified, 2)
    }

    /// Issue 13: the records of wrong PINs deleted before the next legitimate login (chain and head recomputed, as
    /// anyone who can write the file can) no longer pass: the login's record says how many attempts it cleared.
    func testDeletingFailedLoginRecordsBeforeTheNextLoginIsDetected() throws {
        let env = try TestEnvironment()
        let m = try env.module()
        let s = try m.readySession(login: false)
        for _ in 0..<3 {
            expectCKR(CKR_PIN_INCORRECT) { try m.login(s, userType: CKU_USER, pin: Array("wrong-pin-99".utf8)) }
        }
        let wrong = try auditRecords(env.auditPath).filter { $0["outcome"] as? String == "failure" }
        XCTAssertEqual(wrong.compactMap { AuditEncoding.int($0["failed_attempts"]) }, [1, 2, 3])
        let token = m.tokens[0]
        let keys = try token.vault.login(role: .user, pin: userPIN, backend: token.backend)
        XCTAssertEqual(keys.priorFailedAttempts, 3)
        // That login reset the counter; three more wrong PINs, then the editor deletes their records.
        for _ in 0..<3 {
            expectCKR(CKR_PIN_INCORRECT) { try m.login(s, userType: CKU_USER, pin: Array("wrong-pin-99".utf8)) }
        }
        let text = try String(contentsOfFile: env.auditPath, encoding: .utf8)
        let kept = text.split(separator: "\n").map(String.init).filter { !$0.contains("\"failed_attempts\"") }
        try Forger.write(kept, to: env.auditPath)
        try m.login(s, userType: CKU_USER, pin: userPIN)
        try m.logout(s)
        let login = try XCTUnwrap(try auditRecords(env.auditPath).last { $0["event"] as? String == "login" })
        XCTAssertEqual(AuditEncoding.int(login["prior_failed_attempts"]), 3)
        let auditKey = try OperatorAudit.auditKey(keys)
        let r = try AuditVerifier.verify(path: env.auditPath, keys: [keys.tokenUUID: auditKey],
                                         strict: AuditVerifier.StrictToken(name: "t0", uuid: keys.tokenUUID))
        XCTAssertTrue(r.error?.message.contains("cleared 3 failed PIN attempt(s), but the record of attempt 1, 2, 3 is missing")
                      ?? false, "\(String(describing: r.error))")
    }

    func testStateChangesAreRefusedWhenTheirRecordCannotBeWritten() throws {
        let env = try TestEnvironment()
        let m = try env.module()
        let s = try m.readySession(login: false)
        // The log becomes unwritable: a directory where the file was.
        try FileManager.default.removeItem(atPath: env.auditPath)
        try FileManager.default.createDirectory(atPath: env.auditPath, withIntermediateDirectories: false)
        expectCKR(CKR_DEVICE_ERROR) { try m.login(s, userType: CKU_USER, pin: userPIN) }
        XCTAssertEqual(try m.sessionInfo(s).state, CKS_RW_PUBLIC_SESSION, "not logged in")
        expectCKR(CKR_DEVICE_ERROR) {
            _ = try m.createObject(s, template: [ulongAttr(CKA_CLASS, CKO_DATA), textAttr(CKA_LABEL, "unaudited")])
        }
        XCTAssertEqual(try m.find(s, [textAttr(CKA_LABEL, "unaudited")]).count, 0, "the unaudited object is not kept")
        // Reading needs no record.
        XCTAssertNoThrow(try m.tokenInfo(0))
    }

    func testDisabledAuditWritesNothing() throws {
        let env = try TestEnvironment(auditOptions: ", enabled: false")
        let m = try env.module()
        let s = try m.readySession()
        _ = try m.aesKey(s)
        XCTAssertFalse(FileManager.default.fileExists(atPath: env.auditPath))
    }

    /// `audit: {enabled: false}` without `reason`: the module says so in its log (at the default level, error)
    /// whenever it loads; with a reason, it does not.
    func testDisabledAuditWithoutAReasonIsLoggedAtLoad() throws {
        let env = try TestEnvironment()
        for (audit, warned) in [("{ enabled: false }", true), ("{ enabled: false, reason: \"throwaway CI tokens\" }", false),
                                ("{ file: \(env.auditPath) }", false)] {
            let logFile = env.root + "/module-\(warned)-\(audit.count).log"
            try env.write("log: { file: \(logFile) }\naudit: \(audit)\ntokens:\n  - name: t0\n    store: \(env.root)/t0\n"
                + "    pin_kdf_cost: 10\n", to: env.configPath)
            let m = try env.module()
            m.finalize()
            let text = (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? ""
            XCTAssertEqual(text.contains("warning: audit log disabled (audit.enabled: false) and the configuration gives no reason"),
                           warned, "\(audit): \(text)")
        }
    }

    static let crashConfigVariable = "TG_AUDIT_CRASH_CONFIG"

    /// The child of testCrashAfterTheAuditWriteLeavesAVerifiableLog (this test binary re-run on that test with
    /// TG_AUDIT_CRASH_CONFIG set): dies by SIGKILL right after a state change was audited and acknowledged to
    /// this code, without logout or C_Finalize. Not a test of its own, so it is never counted in a normal run.
    private func runAsCrashChild() throws {
        guard let config = ProcessInfo.processInfo.environment[Self.crashConfigVariable] else { return }
        let m = try Module(configPath: config)
        let s = try m.openSession(0, flags: CKF_SERIAL_SESSION | CKF_RW_SESSION)
        try m.login(s, userType: CKU_USER, pin: userPIN)
        let key = try m.aesKey(s, token: true, extra: [textAttr(CKA_LABEL, "before-crash")])
        _ = try m.encryptAll(s, Mechanism(type: CKM_AES_ECB), key, [UInt8](repeating: 1, count: 16))
        kill(getpid(), SIGKILL)
    }

    func testCrashAfterTheAuditWriteLeavesAVerifiableLog() throws {
        try runAsCrashChild()  // returns only when not the child
        let env = try TestEnvironment()
        let m = try env.module()
        _ = try m.readySession(login: false)
        m.finalize()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        p.arguments = ["CryptokiTests.AuditModuleTests/testCrashAfterTheAuditWriteLeavesAVerifiableLog"]
        var environment = ProcessInfo.processInfo.environment
        environment[Self.crashConfigVariable] = env.configPath
        p.environment = environment
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .uncaughtSignal)
        let recs = try auditRecords(env.auditPath)
        XCTAssertEqual(recs.last?["event"] as? String, "object_generate")
        XCTAssertEqual(recs.last?["object_label"] as? String, "before-crash")
        XCTAssertTrue(try AuditVerifier.verify(path: env.auditPath).ok)
        // The next process continues the chain.
        let again = try env.module()
        let s2 = try again.openSession(0, flags: CKF_SERIAL_SESSION | CKF_RW_SESSION)
        try again.login(s2, userType: CKU_USER, pin: userPIN)
        XCTAssertEqual(try again.find(s2, [textAttr(CKA_LABEL, "before-crash")]).count, 1)
        let r = try AuditVerifier.verify(path: env.auditPath)
        XCTAssertTrue(r.ok, "\(String(describing: r.error))")
        XCTAssertEqual(r.records, recs.count + 2)  // login + checkpoint
    }

    func assertNoSecrets(_ path: String, secrets: [[UInt8]], file: StaticString = #filePath, line: UInt = #line) throws {
        let log = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let text = String(decoding: log, as: UTF8.self).lowercased()
        for secret in secrets {
            XCTAssertFalse(contains(log, secret), "raw secret in the log", file: file, line: line)
            XCTAssertFalse(text.contains(toHex(secret)), "hex secret in the log", file: file, line: line)
            XCTAssertFalse(String(decoding: log, as: UTF8.self).contains(Data(secret).base64EncodedString()),
                           "base64 secret in the log", file: file, line: line)
        }
    }

    func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] {
            if Array(haystack[i..<(i + needle.count)]) == needle { return true }
        }
        return false
    }
}

final class AuditConfigTests: XCTestCase {
    func testDefaultsAndParsing() throws {
        var c = try ConfigurationLoader.parse("tokens:\n  - name: a\n    store: /tmp/a\n", origin: "t")
        XCTAssertEqual(c.audit, AuditConfiguration())
        XCTAssertTrue(c.audit.enabled)
        c = try ConfigurationLoader.parse("""
        audit:
          file: /var/log/tg/audit.log
          syslog: { socket: /run/test.sock }
          checkpoint_every: 64
          sync: false
          key_use_interval: 60
        """, origin: "t")
        XCTAssertEqual(c.audit.file, "/var/log/tg/audit.log")
        XCTAssertEqual(c.audit.syslogSocket, "/run/test.sock")
        XCTAssertEqual(c.audit.checkpointEvery, 64)
        XCTAssertFalse(c.audit.sync)
        XCTAssertEqual(c.audit.keyUseInterval, 60)
        XCTAssertEqual(try c.audit.resolvedFile(), "/var/log/tg/audit.log")
        c = try ConfigurationLoader.parse("audit: { syslog: true, file: false }", origin: "t")
        XCTAssertEqual(c.audit.syslogSocket, "/dev/log")
        XCTAssertNil(try c.audit.resolvedFile())
        c = try ConfigurationLoader.parse("audit: { enabled: false }", origin: "t")
        XCTAssertNil(try c.audit.resolvedFile())
    }

    func testDefaultFileFollowsXDGDataHome() throws {
        let saved = getenv("XDG_DATA_HOME").map { String(cString: $0) }
        defer { if let saved { setenv("XDG_DATA_HOME", saved, 1) } else { unsetenv("XDG_DATA_HOME") } }
        setenv("XDG_DATA_HOME", "/srv/data", 1)
        XCTAssertEqual(try AuditConfiguration().resolvedFile(), "/srv/data/tensorguard-pkcs11/audit.log")
    }

    func testStrictErrors() {
        for (yaml, message) in [
            ("audit: { colour: blue }", "unknown key 'audit.colour'"),
            ("audit: { file: relative.log }", "audit.file must be an absolute path"),
            ("audit: { checkpoint_every: 0 }", "audit.checkpoint_every"),
            ("audit: { syslog: { port: 514 } }", "unknown key 'audit.syslog.port'"),
            ("audit: { file: false }", "nowhere to go"),
            ("audit: [1]", "'audit' must be a mapping"),
        ] {
            XCTAssertThrowsError(try ConfigurationLoader.parse(yaml, origin: "t"), yaml) { e in
                XCTAssertTrue("\(e)".contains(message), "\(yaml): \(e)")
            }
        }
    }
}
