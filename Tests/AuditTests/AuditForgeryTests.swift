// Issue 13, the audit log cannot be edited unnoticed by someone who can write the file but holds no PIN: forged
// copies of a log (records deleted, the hash chain and the head sidecar recomputed, checkpoints given an unknown
// token uuid or removed) fail `verify` with the token's key; checkpoints chain to each other; pending records
// (a change announced before it took effect) are reported when no outcome follows them.
@testable import Audit
import CryptoCore
import Foundation
import TestSupport
import XCTest

final class AuditForgeryTests: XCTestCase {
    var dir = ""
    var file: String { dir + "/audit.log" }
    let uuid = "72d33213f331646e80638d230eef47e1"
    var key: SecretBytes!
    var strict: AuditVerifier.StrictToken { AuditVerifier.StrictToken(name: "t0", uuid: uuid) }

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "audit-forgery-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        key = try SecretBytes.random(count: 32)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func lines() throws -> [String] {
        try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    func record(_ log: AuditLog, _ event: String, _ outcome: String = "success", token: String = "t0",
                extra: AuditFields = [:]) throws -> AuditPosition {
        var f = extra
        f["event"] = .string(event)
        f["outcome"] = .string(outcome)
        f["token"] = .string(token)
        return try log.append(f)
    }

    func checkpoint(_ log: AuditLog, token: String = "t0", uuid: String? = nil, key: SecretBytes? = nil) throws {
        try log.appendCheckpoint(["event": .string("checkpoint"), "outcome": .string("success"), "token": .string(token)],
                                 tokenUUID: uuid ?? self.uuid, key: key ?? self.key)
    }

    /// A session as the module writes it: login + checkpoint, a generate and a wrap (pending, then outcome),
    /// logout + checkpoint; `sessions` times: 2 checkpoints each.
    func writeSessions(_ sessions: Int) throws {
        let log = AuditLog(filePath: file, syslogSocket: nil, sync: false)
        for i in 0..<sessions {
            _ = try record(log, "login", extra: ["role": .string("user")])
            try checkpoint(log)
            for event in ["object_generate", "wrap"] {
                let p = try record(log, event, "pending", extra: ["object_label": .string("key \(i)")])
                _ = try record(log, event, extra: ["object_label": .string("key \(i)"), "pending_seq": .int(p.seq)])
            }
            _ = try record(log, "logout", extra: ["role": .string("user")])
            try checkpoint(log)
        }
    }

    func verify(strict: Bool = true) throws -> AuditVerification {
        try AuditVerifier.verify(path: file, keys: [uuid: key], strict: strict ? self.strict : nil)
    }

    func assertFails(at line: Int, _ text: String, file f: StaticString = #filePath, line l: UInt = #line) throws {
        let r = try verify()
        XCTAssertEqual(r.error?.line, line, "\(String(describing: r.error))", file: f, line: l)
        XCTAssertTrue(r.error?.message.contains(text) ?? false, "\(String(describing: r.error))", file: f, line: l)
    }

    func testAGoodLogVerifiesStrictly() throws {
        try writeSessions(4)
        let r = try verify()
        XCTAssertTrue(r.ok, "\(String(describing: r.error))")
        XCTAssertEqual(r.checkpointsVerified, 8)
        XCTAssertEqual(r.lastVerifiedCheckpointLine, try lines().count)
        XCTAssertEqual(r.pending, [])
    }

    /// The reviewer's forgery: a wrap deleted inside the checkpointed region, chain and head recomputed, the later
    /// checkpoints (whose HMACs no longer verify) given an unknown token uuid. The old verifier counted them as
    /// "not checked" and passed on the earlier ones.
    func testDeletedWrapWithLaterCheckpointsGivenAForeignUUIDFails() throws {
        try writeSessions(4)
        var ls = try lines()
        let wrap = try XCTUnwrap(ls.indices.first { i in ls[i].contains("\"event\":\"wrap\"") && ls[i].contains("key 2") })
        ls.removeSubrange(wrap...(wrap + 1))  // its pending record and its outcome
        let foreign = "00000000000000000000000000000bad"
        var firstForeign: Int?
        for i in ls.indices where i > wrap && ls[i].contains("\"event\":\"checkpoint\"") {
            ls[i] = ls[i].replacingOccurrences(of: uuid, with: foreign)
            if firstForeign == nil { firstForeign = i + 1 }
        }
        try Forger.write(ls, to: file)
        // What used to pass: the chain is intact and the earlier checkpoints verify.
        let loose = try verify(strict: false)
        XCTAssertTrue(loose.ok, "\(String(describing: loose.error))")
        XCTAssertEqual(loose.checkpointsVerified, 5)
        XCTAssertEqual(loose.checkpointsUnverified, 3)
        try assertFails(at: try XCTUnwrap(firstForeign), "names token uuid \(foreign), which is not this token's")
    }

    /// The same deletion, the later checkpoints removed instead: the token's later records are outside every
    /// verified checkpoint.
    func testDeletedWrapWithLaterCheckpointsRemovedFails() throws {
        try writeSessions(4)
        var ls = try lines()
        let wrap = try XCTUnwrap(ls.indices.first { i in ls[i].contains("\"event\":\"wrap\"") && ls[i].contains("key 2") })
        let lastGood = try XCTUnwrap(ls.indices.last { $0 < wrap && ls[$0].contains("\"event\":\"checkpoint\"") })
        ls.removeSubrange(wrap...(wrap + 1))
        ls = ls.enumerated().filter { $0.offset <= wrap || !$0.element.contains("\"event\":\"checkpoint\"") }.map(\.element)
        try Forger.write(ls, to: file)
        XCTAssertTrue(try verify(strict: false).ok, "passes without the strict check")
        try assertFails(at: lastGood + 2, "after its last verified checkpoint (line \(lastGood + 1))")
    }

    /// Checkpoints of another uuid under the token's name are an earlier incarnation's only when the token was
    /// re-initialised (or restored, or deleted) after them.
    func testAnEarlierIncarnationsCheckpointsAreAccepted() throws {
        let log = AuditLog(filePath: file, syslogSocket: nil, sync: false)
        let oldKey = try SecretBytes.random(count: 32)
        _ = try record(log, "login")
        try checkpoint(log, uuid: "0ld", key: oldKey)
        _ = try record(log, "token_init")
        _ = try record(log, "login")
        try checkpoint(log)
        var r = try verify()
        XCTAssertTrue(r.ok, "\(String(describing: r.error))")
        XCTAssertEqual(r.checkpointsUnverified, 1)
        // Without the re-initialisation between them, the old uuid's checkpoint is unexplained.
        var ls = try lines()
        ls.remove(at: 2)
        try Forger.write(ls, to: file)
        r = try verify()
        XCTAssertEqual(r.error?.line, 2, "\(String(describing: r.error))")
        // Other tokens' checkpoints are theirs: not checked, not failed.
        try FileManager.default.removeItem(atPath: file)
        try FileManager.default.removeItem(atPath: AuditLog.headPath(for: file))
        _ = try record(log, "login", token: "other")
        try checkpoint(log, token: "other", uuid: "0ther", key: oldKey)
        _ = try record(log, "login")
        try checkpoint(log)
        r = try verify()
        XCTAssertTrue(r.ok, "\(String(describing: r.error))")
    }

    func testRecordsAfterTheLastCheckpointFailStrictVerifyOnly() throws {
        try writeSessions(1)
        let log = AuditLog(filePath: file, syslogSocket: nil, sync: false)
        _ = try record(log, "login", "failure")
        _ = try record(log, "login", token: "someone-else")
        let n = try lines().count
        XCTAssertTrue(try verify(strict: false).ok)
        try assertFails(at: n - 1, "record of token 't0' after its last verified checkpoint")
        // The next login's checkpoint covers them.
        try checkpoint(log)
        XCTAssertTrue(try verify().ok)
    }

    func testCheckpointsChainToEachOther() throws {
        let log = AuditLog(filePath: file, syslogSocket: nil, sync: false)
        try checkpoint(log)
        _ = try record(log, "login")
        try checkpoint(log, token: "other", uuid: "0ther", key: key)
        try checkpoint(log)
        // Another writer (no memory of the last checkpoint) finds it in the file, across many 64 KiB windows.
        let other = AuditLog(filePath: file, syslogSocket: nil, sync: false)
        for i in 0..<1500 { _ = try record(other, "key_use", extra: ["reason": .string(String(repeating: "x", count: 100) + "\(i)")]) }
        try checkpoint(other)
        let cps = try lines().compactMap { AuditEncoding.parse(Array($0.utf8)) }
            .filter { $0["event"] as? String == "checkpoint" && $0["token_uuid"] as? String == uuid }
        XCTAssertEqual(cps.map { AuditEncoding.int($0["prev_checkpoint"]) }, [0, 1, 4])
        var r = try AuditVerifier.verify(path: file, keys: [uuid: key])
        XCTAssertTrue(r.ok, "\(String(describing: r.error))")
        XCTAssertEqual(r.checkpointsVerified, 3)

        // A genuine-looking checkpoint (right key) that chains to the wrong predecessor — as one carried over from
        // another copy of the log would — is refused.
        try log.append(["event": .string("checkpoint"), "outcome": .string("success"), "token": .string("t0"),
                        "token_uuid": .string(uuid), "prev_checkpoint": .int(1)]) { f, seq, prev, time in
            f["hmac"] = .string(try AuditKey.checkpointMAC(key: self.key, tokenUUID: self.uuid, seq: seq, prev: prev, time: time,
                                                           previous: AuditCheckpointLink(seq: 1, hmac: cps[0]["hmac"] as? String ?? "")))
        }
        r = try AuditVerifier.verify(path: file, keys: [uuid: key])
        XCTAssertEqual(r.error?.line, try lines().count, "\(String(describing: r.error))")
        XCTAssertTrue(r.error?.message.contains("chains to the checkpoint at seq 1") ?? false, "\(String(describing: r.error))")
    }

    /// The reviewer's forgery: the records of three wrong PINs deleted (chain and head recomputed) before the next
    /// legitimate login, whose checkpoint then authenticated the doctored file. The login's record says how many
    /// failed attempts it cleared, and each must have its record.
    func testDeletedFailedPINRecordsBeforeALoginFail() throws {
        let log = AuditLog(filePath: file, syslogSocket: nil, sync: false)
        func wrongPINs(_ counts: ClosedRange<Int64>, role: String = "user") throws {
            for k in counts {
                _ = try record(log, "login", "failure", extra: ["role": .string(role), "failed_attempts": .int(k)])
            }
        }
        _ = try record(log, "login", extra: ["role": .string("user")])
        try checkpoint(log)
        try wrongPINs(1...3)
        try wrongPINs(1...1, role: "so")   // the SO's count is another one
        _ = try record(log, "login", extra: ["role": .string("user"), "prior_failed_attempts": .int(3)])
        try checkpoint(log)
        var r = try verify()
        XCTAssertTrue(r.ok, "\(String(describing: r.error))")

        var ls = try lines()
        ls.removeSubrange(2...3)   // attempts 1 and 2 of the user
        try Forger.write(ls, to: file)
        try assertFails(at: 5, "cleared 3 failed PIN attempt(s), but the record of attempt 1, 2 is missing")

        // All three gone, and the SO's record relabelled as the user's: still short of 1...3.
        ls = try lines()
        ls.remove(at: 2)
        ls[2] = ls[2].replacingOccurrences(of: "\"role\":\"so\"", with: "\"role\":\"user\"")
        try Forger.write(ls, to: file)
        r = try verify()
        XCTAssertTrue(r.error?.message.contains("attempt 2, 3 is missing") ?? false, "\(String(describing: r.error))")
    }

    /// Another process's wrong PIN may be counted before a login and recorded just after it; it counts for that
    /// login only when recorded within FailedPINAttempts.lateRecordSeconds, and a reset (C_InitPIN) starts afresh.
    func testAFailedAttemptRecordedJustAfterTheLoginCounts() throws {
        let log = AuditLog(filePath: file, syslogSocket: nil, sync: false)
        _ = try record(log, "login", "failure", extra: ["role": .string("user"), "failed_attempts": .int(1)])
        _ = try record(log, "login", extra: ["role": .string("user"), "prior_failed_attempts": .int(2)])
        _ = try record(log, "login", "failure", extra: ["role": .string("user"), "failed_attempts": .int(2)])
        try checkpoint(log)
        let r = try verify()
        XCTAssertTrue(r.ok, "\(String(describing: r.error))")

        // The same record an hour later is not that login's.
        var ls = try lines()
        let time = try XCTUnwrap(AuditEncoding.parse(Array(ls[2].utf8))?["time"] as? String)
        let hourLater = try XCTUnwrap(FailedPINAttempts.seconds(time)).advanced(by: 3600)
        ls[2] = ls[2].replacingOccurrences(of: time, with: AuditEncoding.timestamp(AuditTime(hourLater)))
        try Forger.write(ls, to: file)
        try assertFails(at: 2, "the record of attempt 2 is missing")

        XCTAssertEqual(FailedPINAttempts.seconds("1970-01-01T00:00:00.000Z"), 0)
        XCTAssertEqual(FailedPINAttempts.seconds("2026-11-29T10:20:29.123Z")!, 1_795_947_629.123, accuracy: 0.0005)
        XCTAssertNil(FailedPINAttempts.seconds("2026-13-29T10:20:29Z"))
        XCTAssertNil(FailedPINAttempts.seconds("not a time at all, really"))
    }

    func testPendingRecordsWithoutOutcomeAreReported() throws {
        try writeSessions(1)
        let log = AuditLog(filePath: file, syslogSocket: nil, sync: false)
        let p = try record(log, "object_generate", "pending", extra: ["object_label": .string("half-done"), "session": .int(3)])
        try checkpoint(log)
        var r = try verify()
        XCTAssertTrue(r.ok, "\(String(describing: r.error))")
        XCTAssertEqual(r.pending.count, 1)
        XCTAssertEqual(r.pending.first?.line, try lines().count - 1)
        XCTAssertTrue(r.pending.first?.message.contains("pending object_generate of token 't0'") ?? false)
        XCTAssertTrue(r.pending.first?.message.contains("label 'half-done'") ?? false)
        // Its outcome resolves it.
        _ = try record(log, "object_generate", extra: ["pending_seq": .int(p.seq)])
        try checkpoint(log)
        r = try verify()
        XCTAssertTrue(r.ok, "\(String(describing: r.error))")
        XCTAssertEqual(r.pending, [])
        // An outcome that resolves nothing (or another event's pending record) is an edit.
        _ = try record(log, "object_destroy", extra: ["pending_seq": .int(p.seq)])
        try assertFails(at: try lines().count, "not an open pending object_destroy record")
    }
}
