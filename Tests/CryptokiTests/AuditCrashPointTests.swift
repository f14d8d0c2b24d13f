// Issue 13, audit that fails closed: a process killed (SIGKILL) at any point of an audited C_GenerateKey,
// C_CreateObject, C_DestroyObject or C_WrapKey — after the pending record, after the store commit (or the wrapped
// bytes), after the outcome record — never leaves a change without a record: before the outcome the log holds a
// pending record that verify reports, after it the outcome. The kill points are injected by the debug build's
// test mode (TG_PKCS11_TEST_CRASH_AT=audit-<event>-<stage>, Sources/Cryptoki/Audit/AuditCrashPoint.swift), not by
// timing. On a local-backend token and on a SoftHSM2-backed one.
import Audit
import CP11Kit
import Foundation
import XCTest
@testable import Cryptoki
#if canImport(Glibc)
import Glibc
#endif

final class AuditCrashPointTests: XCTestCase {
    static let opVariable = "TG_AUDIT_CRASH_OP"
    static let configVariable = "TG_AUDIT_CRASH_CONFIG"
    static let stages = ["pending", "done", "recorded"]
    static let ops: [(op: String, event: String)] = [("generate", "object_generate"), ("create", "object_create"),
                                                     ("destroy", "object_destroy"), ("wrap", "wrap")]

    /// In the child (this test binary re-run on one test with the variables set): one audited call, which the
    /// crash point kills. Returns only in the parent; a child that survives its call exits with status 7.
    private func runAsChild() throws {
        let env = ProcessInfo.processInfo.environment
        guard let op = env[Self.opVariable], let config = env[Self.configVariable],
              let point = env[AuditCrashPoint.variable] else { return }
        let stage = String(point.split(separator: "-").last ?? "")
        let m = try Module(configPath: config)
        let s = try m.openSession(0, flags: CKF_SERIAL_SESSION | CKF_RW_SESSION)
        try m.login(s, userType: CKU_USER, pin: userPIN)
        func one(_ label: String) throws -> CK_OBJECT_HANDLE {
            guard let h = try m.find(s, [textAttr(CKA_LABEL, label)]).first else { exit(8) }
            return h
        }
        switch op {
        case "generate":
            _ = try m.aesKey(s, token: true, extra: [textAttr(CKA_LABEL, "gen-\(stage)")])
        case "create":
            _ = try m.createObject(s, template: [ulongAttr(CKA_CLASS, CKO_DATA), boolAttr(CKA_TOKEN, true),
                                                 textAttr(CKA_LABEL, "create-\(stage)")])
        case "destroy":
            try m.destroyObject(s, try one("victim-\(stage)"))
        case "setpin":
            try m.setPIN(s, oldPIN: userPIN, newPIN: Array("changed-pin-99".utf8))
        case "wrap":
            var out = [UInt8](repeating: 0xA5, count: 40)
            _ = try out.withUnsafeMutableBytes { buf in
                try m.wrapKey(s, mechanism: Mechanism(type: CKM_AES_KEY_WRAP), wrappingKey: try one("wrapper"),
                              key: try one("target"), output: .buffer(buf))
            }
        default:
            exit(9)
        }
        exit(7)
    }

    func testKilledAtEveryAuditPointOnALocalToken() throws {
        try runAsChild()
        try runCrashes(backendYAML: "")
    }

    func testKilledAtEveryAuditPointOnASoftHSMToken() throws {
        try runAsChild()
        let hsm = try HygieneHSM()
        try runCrashes(backendYAML: hsm.yaml)
    }

    /// C_SetPIN between its pending record and its outcome: killed before the store change (the old PIN still
    /// works) and after it (the new one works); either way the log holds the pending `pin_change`, reported by verify.
    func testKilledInsideSetPIN() throws {
        try runAsChild()
        for stage in ["pending", "done"] {
            let env = try TestEnvironment()
            let m = try env.module()
            let s = try m.readySession()
            let token = m.tokens[0]
            let keys = try token.vault.login(role: .user, pin: userPIN, backend: token.backend)
            let auditKey = try OperatorAudit.auditKey(keys)
            try m.logout(s)
            m.finalize()
            let p = Process()
            p.executableURL = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            p.arguments = ["CryptokiTests.AuditCrashPointTests/testKilledInsideSetPIN"]
            var environment = ProcessInfo.processInfo.environment
            environment[Self.opVariable] = "setpin"
            environment[Self.configVariable] = env.configPath
            environment[AuditCrashPoint.variable] = "audit-pin_change-\(stage)"
            p.environment = environment
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            p.waitUntilExit()
            XCTAssertEqual(p.terminationReason, .uncaughtSignal, "\(stage): the child was not killed (exit \(p.terminationStatus))")
            let changes = try auditRecords(env.auditPath).filter { $0["event"] as? String == "pin_change" }
            XCTAssertEqual(changes.map { $0["outcome"] as? String }, ["pending"], stage)
            let r = try AuditVerifier.verify(path: env.auditPath, keys: [keys.tokenUUID: auditKey])
            XCTAssertTrue(r.pending.contains { $0.message.contains("pending pin_change of token 't0'") }, "\(stage): \(r.pending)")
            let check = try env.module()
            defer { check.finalize() }
            let cs = try check.openSession(0, flags: CKF_SERIAL_SESSION | CKF_RW_SESSION)
            try check.login(cs, userType: CKU_USER, pin: stage == "done" ? Array("changed-pin-99".utf8) : userPIN)
        }
    }

    func runCrashes(backendYAML: String) throws {
        let env = try TestEnvironment(extra: backendYAML)
        let m = try env.module()
        let s = try m.readySession()
        _ = try m.generateKey(s, mechanism: Mechanism(type: CKM_AES_KEY_GEN), template: [
            ulongAttr(CKA_VALUE_LEN, 32), boolAttr(CKA_TOKEN, true), boolAttr(CKA_WRAP, true), textAttr(CKA_LABEL, "wrapper")])
        _ = try m.aesKey(s, token: true, extra: [textAttr(CKA_LABEL, "target")])
        for stage in Self.stages { _ = try m.aesKey(s, token: true, extra: [textAttr(CKA_LABEL, "victim-\(stage)")]) }
        let token = m.tokens[0]
        let keys = try token.vault.login(role: .user, pin: userPIN, backend: token.backend)
        let auditKey = try OperatorAudit.auditKey(keys)
        m.finalize()

        for (op, event) in Self.ops {
            for stage in Self.stages {
                let point = "audit-\(event)-\(stage)"
                let before = try auditRecords(env.auditPath).count
                let p = Process()
                p.executableURL = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
                p.arguments = ["CryptokiTests.AuditCrashPointTests/" + (backendYAML.isEmpty
                    ? "testKilledAtEveryAuditPointOnALocalToken" : "testKilledAtEveryAuditPointOnASoftHSMToken")]
                var environment = ProcessInfo.processInfo.environment
                environment[Self.opVariable] = op
                environment[Self.configVariable] = env.configPath
                environment[AuditCrashPoint.variable] = point
                if let conf = getenv("SOFTHSM2_CONF") { environment["SOFTHSM2_CONF"] = String(cString: conf) }
                p.environment = environment
                p.standardOutput = FileHandle.nullDevice
                p.standardError = FileHandle.nullDevice
                try p.run()
                p.waitUntilExit()
                XCTAssertEqual(p.terminationReason, .uncaughtSignal, "\(point): the child was not killed (exit \(p.terminationStatus))")
                XCTAssertEqual(p.terminationStatus, SIGKILL, point)

                let recs = Array(try auditRecords(env.auditPath).dropFirst(before))
                let mine = recs.filter { $0["event"] as? String == event }
                let r = try AuditVerifier.verify(path: env.auditPath, keys: [keys.tokenUUID: auditKey])
                XCTAssertTrue(r.ok, "\(point): \(String(describing: r.error))")
                let announced = mine.first { $0["outcome"] as? String == "pending" }
                XCTAssertNotNil(announced, "\(point): no pending record")
                if stage == "recorded" {
                    XCTAssertEqual(mine.map { $0["outcome"] as? String }, ["pending", "success"], point)
                    XCTAssertEqual(AuditEncoding.int(mine.last?["pending_seq"]), AuditEncoding.int(announced?["seq"]), point)
                    XCTAssertEqual(r.pending.count, reportedBefore(op, stage), "\(point): resolved, yet reported: \(r.pending)")
                } else {
                    XCTAssertEqual(mine.map { $0["outcome"] as? String }, ["pending"], "\(point): an outcome without the call finishing")
                    XCTAssertEqual(r.pending.count, reportedBefore(op, stage) + 1, "\(point): \(r.pending)")
                    let reported = try XCTUnwrap(r.pending.last, "\(point): verify reports no pending record")
                    XCTAssertTrue(reported.message.contains("pending \(event) of token 't0'"), "\(point): \(reported)")
                }

                // The store agrees with the log: the change took effect exactly from the `done` point on.
                let check = try env.module()
                let cs = try check.openSession(0, flags: CKF_SERIAL_SESSION | CKF_RW_SESSION)
                try check.login(cs, userType: CKU_USER, pin: userPIN)
                let committed = stage != "pending"
                switch op {
                case "generate", "create":
                    let label = (op == "generate" ? "gen-" : "create-") + stage
                    XCTAssertEqual(try check.find(cs, [textAttr(CKA_LABEL, label)]).count, committed ? 1 : 0, point)
                    XCTAssertEqual(announced?["object_label"] as? String, label, "\(point): the pending record names the label")
                case "destroy":
                    XCTAssertEqual(try check.find(cs, [textAttr(CKA_LABEL, "victim-\(stage)")]).count, committed ? 0 : 1, point)
                    XCTAssertEqual(announced?["object_label"] as? String, "victim-\(stage)", point)
                    XCTAssertNotNil(announced?["object_uid"] as? String, point)
                default:
                    XCTAssertEqual(announced?["object_label"] as? String, "target", point)
                }
                check.finalize()
            }
        }
    }

    /// How many unresolved pending records the earlier kills of this run left (two of every three stages).
    func reportedBefore(_ op: String, _ stage: String) -> Int {
        let opIndex = Self.ops.firstIndex { $0.op == op } ?? 0
        let stageIndex = Self.stages.firstIndex(of: stage) ?? 0
        return opIndex * 2 + min(stageIndex, 2)
    }
}
