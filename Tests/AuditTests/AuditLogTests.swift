// The audit log on its own: encoding, chain, every tamper case with its line number, crashed writers,
// checkpoints, syslog, and several processes appending to one file.
import Audit
import CryptoCore
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class AuditLogTests: XCTestCase {
    var dir: String = ""
    var file: String { dir + "/audit.log" }

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "audit-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func writeRecords(_ n: Int, log: AuditLog? = nil) throws {
        let log = log ?? AuditLog(filePath: file, syslogSocket: nil, sync: false)
        for i in 1...n {
            try log.append(["event": .string("login"), "outcome": .string("success"), "token": .string("t0"),
                            "object_label": .string("label \(i)")])
        }
    }

    func lines() throws -> [String] {
        try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
            .dropLast().map(String.init)
    }

    func rewrite(_ lines: [String], trailingNewline: Bool = true) throws {
        try (lines.joined(separator: "\n") + (trailingNewline ? "\n" : "")).write(toFile: file, atomically: false, encoding: .utf8)
    }

    func assertBroken(at line: Int, containing text: String = "", file f: StaticString = #filePath, line l: UInt = #line) throws {
        let r = try AuditVerifier.verify(path: file)
        XCTAssertEqual(r.error?.line, line, "\(String(describing: r.error))", file: f, line: l)
        if !text.isEmpty { XCTAssertTrue(r.error?.message.contains(text) ?? false, "\(String(describing: r.error))", file: f, line: l) }
    }

    // MARK: Encoding

    func testEncodingIsDeterministicSortedAndEscaped() {
        let fields: AuditFields = ["z": .int(-3), "a": .string("q\"\\\n\u{1}é"), "m": .bool(true),
                                   "d": .object(["y": "1", "b": "2"])]
        let a = AuditEncoding.encode(fields)
        for _ in 0..<20 { XCTAssertEqual(AuditEncoding.encode(fields), a) }
        XCTAssertEqual(String(decoding: a, as: UTF8.self),
                       #"{"a":"q\"\\\n\u0001é","d":{"b":"2","y":"1"},"m":true,"z":-3}"#)
        let back = AuditEncoding.parse(a)
        XCTAssertEqual(back?["a"] as? String, "q\"\\\n\u{1}é")
    }

    func testTimestampFormat() {
        let t = AuditEncoding.timestamp(AuditTime(1_800_000_000.25))
        XCTAssertEqual(t, "2027-01-15T08:00:00.250Z")
    }

    // MARK: Chain

    func testChainLinksAndVerifies() throws {
        try writeRecords(5)
        let ls = try lines()
        XCTAssertEqual(ls.count, 5)
        var prev = AuditEncoding.zeroHash
        for (i, line) in ls.enumerated() {
            let obj = try XCTUnwrap(AuditEncoding.parse(Array(line.utf8)))
            XCTAssertEqual(AuditEncoding.int(obj["seq"]), Int64(i + 1))
            XCTAssertEqual(obj["prev"] as? String, prev)
            XCTAssertEqual(AuditEncoding.int(obj["pid"]), Int64(getpid()))
            prev = AuditEncoding.hash(Array(line.utf8))
        }
        let r = try AuditVerifier.verify(path: file)
        XCTAssertTrue(r.ok, "\(String(describing: r.error))")
        XCTAssertEqual(r.records, 5)
        XCTAssertEqual(r.head, AuditPosition(seq: 5, hash: prev))
        XCTAssertTrue(r.warnings.isEmpty, "\(r.warnings)")
    }

    func testSeparateAppendersContinueOneChain() throws {
        try writeRecords(3)
        try writeRecords(3, log: AuditLog(filePath: file, syslogSocket: nil, sync: true))
        let r = try AuditVerifier.verify(path: file)
        XCTAssertTrue(r.ok)
        XCTAssertEqual(r.lastSeq, 6)
    }

    /// Two appenders taking turns (as two processes would): each notices the other's records although it wrote
    /// the file before; the sidecar stays one fixed-size line.
    func testAppendersTakingTurnsReadWhatTheOtherWrote() throws {
        let a = AuditLog(filePath: file, syslogSocket: nil, sync: false)
        let b = AuditLog(filePath: file, syslogSocket: nil, sync: false)
        var seqs: [Int64] = []
        for log in [a, a, b, a, b, b, a] {
            seqs.append(try log.append(["event": .string("login"), "outcome": .string("success")]).seq)
        }
        XCTAssertEqual(seqs, Array(1...7))
        let r = try AuditVerifier.verify(path: file)
        XCTAssertTrue(r.ok, "\(String(describing: r.error))")
        XCTAssertEqual(r.head?.seq, 7)
        let head = try Data(contentsOf: URL(fileURLWithPath: AuditLog.headPath(for: file)))
        XCTAssertEqual(head.count, AuditLog.headSize)
        XCTAssertEqual(head.last, 0x0A)
    }

    // MARK: Tampering

    func testEditedByteIsReportedAtItsLine() throws {
        try writeRecords(6)
        var ls = try lines()
        ls[2] = ls[2].replacingOccurrences(of: "label 3", with: "label X")  // still valid JSON
        try rewrite(ls)
        try assertBroken(at: 3, containing: "altered")
    }

    func testEditedByteBreakingJSONIsReportedAtItsLine() throws {
        try writeRecords(6)
        var ls = try lines()
        ls[3] = ls[3].replacingOccurrences(of: "{\"event\"", with: "[\"event\"")
        try rewrite(ls)
        try assertBroken(at: 4)
    }

    func testEditedPrevFieldIsReportedAtItsLine() throws {
        try writeRecords(6)
        var ls = try lines()
        let obj = try XCTUnwrap(AuditEncoding.parse(Array(ls[3].utf8)))
        let prev = try XCTUnwrap(obj["prev"] as? String)
        let flipped = (prev.first == "a" ? "b" : "a") + prev.dropFirst()
        ls[3] = ls[3].replacingOccurrences(of: prev, with: flipped)
        try rewrite(ls)
        try assertBroken(at: 4, containing: "prev")
    }

    func testEditedLastLineIsCaughtByTheHead() throws {
        try writeRecords(4)
        var ls = try lines()
        ls[3] = ls[3].replacingOccurrences(of: "label 4", with: "label Y")
        try rewrite(ls)
        try assertBroken(at: 4, containing: "head")
    }

    func testDroppedLineIsReportedWhereItWas() throws {
        try writeRecords(6)
        var ls = try lines()
        ls.remove(at: 2)
        try rewrite(ls)
        try assertBroken(at: 3, containing: "seq 3 is missing")
    }

    func testSwappedLinesAreReportedAtTheFirst() throws {
        try writeRecords(6)
        var ls = try lines()
        ls.swapAt(3, 4)
        try rewrite(ls)
        try assertBroken(at: 4, containing: "seq 5 where 4")
    }

    func testTruncatedWholeLinesAreCaughtByTheHead() throws {
        try writeRecords(6)
        let ls = try lines()
        try rewrite(Array(ls.prefix(4)))
        try assertBroken(at: 5, containing: "cut off")
    }

    func testTruncatedInsideALineIsReportedAtThatLine() throws {
        try writeRecords(6)
        let ls = try lines()
        try rewrite(Array(ls.prefix(4)) + [String(ls[4].prefix(30))], trailingNewline: false)
        try assertBroken(at: 5, containing: "truncated")
    }

    func testFirstRecordMustStartFromZeros() throws {
        try writeRecords(3)
        var ls = try lines()
        ls.removeFirst()
        try rewrite(ls)
        try assertBroken(at: 1, containing: "seq 1 is missing")
    }

    // MARK: Crashed writers

    func testPartialLastLineDoesNotWedgeWritersAndIsReported() throws {
        try writeRecords(3)
        // A writer died mid-write: a fragment without newline (the head still says seq 3).
        let fh = try XCTUnwrap(FileHandle(forWritingAtPath: file))
        fh.seekToEndOfFile()
        fh.write(Data(#"{"event":"object_create","outc"#.utf8))
        fh.closeFile()
        var r = try AuditVerifier.verify(path: file)
        XCTAssertTrue(r.ok, "\(String(describing: r.error))")
        XCTAssertEqual(r.warnings.first?.line, 4)

        try writeRecords(2)
        let ls = try lines()
        XCTAssertEqual(ls.count, 6)
        let next = try XCTUnwrap(AuditEncoding.parse(Array(ls[4].utf8)))
        XCTAssertEqual(AuditEncoding.int(next["seq"]), 4)
        XCTAssertEqual(next["after_partial"] as? Bool, true)
        r = try AuditVerifier.verify(path: file)
        XCTAssertTrue(r.ok, "\(String(describing: r.error))")
        XCTAssertEqual(r.records, 5)
        XCTAssertEqual(r.warnings.map(\.line), [4])

        // Altering the fragment is still caught (the next record chains over its bytes).
        var tampered = ls
        tampered[3] = tampered[3].replacingOccurrences(of: "outc", with: "outX")
        try rewrite(tampered)
        try assertBroken(at: 4)
    }

    func testCrashAfterAppendBeforeHeadUpdateVerifies() throws {
        try writeRecords(3)
        let headBefore = try Data(contentsOf: URL(fileURLWithPath: AuditLog.headPath(for: file)))
        try writeRecords(1)
        // The writer "died" after its line reached the file but before the sidecar moved.
        try headBefore.write(to: URL(fileURLWithPath: AuditLog.headPath(for: file)))
        let r = try AuditVerifier.verify(path: file)
        XCTAssertTrue(r.ok, "\(String(describing: r.error))")
        XCTAssertTrue(r.warnings.contains { $0.message.contains("lags") })
        try writeRecords(1)
        XCTAssertTrue(try AuditVerifier.verify(path: file).ok)
    }

    // MARK: Checkpoints

    func testCheckpointVerifiesUnderTheRightKeyOnly() throws {
        let log = AuditLog(filePath: file, syslogSocket: nil, sync: false)
        try writeRecords(3, log: log)
        let key = try SecretBytes.random(count: 32)
        let uuid = "11111111-2222-3333-4444-555555555555"
        try log.append(["event": .string("checkpoint"), "token": .string("t0"), "token_uuid": .string(uuid)]) { f, seq, prev, time in
            f["hmac"] = .string(try AuditKey.checkpointMAC(key: key, tokenUUID: uuid, seq: seq, prev: prev, time: time))
        }
        try writeRecords(2, log: log)
        var r = try AuditVerifier.verify(path: file, keys: [uuid: key])
        XCTAssertTrue(r.ok, "\(String(describing: r.error))")
        XCTAssertEqual(r.checkpointsVerified, 1)
        XCTAssertEqual(r.lastVerifiedCheckpointLine, 4)
        r = try AuditVerifier.verify(path: file)
        XCTAssertTrue(r.ok)
        XCTAssertEqual(r.checkpointsUnverified, 1)

        let wrong = try SecretBytes.random(count: 32)
        try assertCheckpointFails(keys: [uuid: wrong], line: 4)

        // Rewriting an earlier record and recomputing the whole chain (no key needed for that) still fails at
        // the checkpoint.
        var ls = try lines()
        ls[1] = ls[1].replacingOccurrences(of: "label 2", with: "label Z")
        var prev = AuditEncoding.zeroHash
        for i in 0..<ls.count {
            if let obj = AuditEncoding.parse(Array(ls[i].utf8)), let p = obj["prev"] as? String {
                ls[i] = ls[i].replacingOccurrences(of: p, with: prev)
            }
            prev = AuditEncoding.hash(Array(ls[i].utf8))
        }
        try rewrite(ls)
        try #"{"hash":"\#(prev)","seq":6,"v":1}"#.write(toFile: AuditLog.headPath(for: file), atomically: true, encoding: .utf8)
        XCTAssertTrue(try AuditVerifier.verify(path: file).ok, "a rechained file passes without the key")
        try assertCheckpointFails(keys: [uuid: key], line: 4)
    }

    func assertCheckpointFails(keys: [String: SecretBytes], line: Int, file f: StaticString = #filePath, line l: UInt = #line) throws {
        let r = try AuditVerifier.verify(path: file, keys: keys)
        XCTAssertEqual(r.error?.line, line, file: f, line: l)
        XCTAssertTrue(r.error?.message.contains("HMAC") ?? false, "\(String(describing: r.error))", file: f, line: l)
    }

    // MARK: Syslog

    func testSyslogReceivesRFC5424WithTheChain() throws {
        let sock = dir + "/log.sock"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            let b = Array(sock.utf8)
            raw.copyBytes(from: b)
            raw[b.count] = 0
        }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(bound, 0)
        let log = AuditLog(filePath: nil, syslogSocket: sock, sync: false)
        try log.append(["event": .string("login"), "outcome": .string("failure"), "token": .string("t0")])
        try log.append(["event": .string("logout"), "outcome": .string("success"), "token": .string("t0")])
        var received: [String] = []
        for _ in 0..<2 {
            var buf = [UInt8](repeating: 0, count: 8192)
            let n = recv(fd, &buf, buf.count, Int32(MSG_DONTWAIT))
            XCTAssertGreaterThan(n, 0)
            received.append(String(decoding: buf[0..<max(n, 0)], as: UTF8.self))
        }
        XCTAssertTrue(received[0].hasPrefix("<84>1 "), received[0])  // authpriv.warning
        XCTAssertTrue(received[0].contains(" tensorguard-pkcs11 \(getpid()) login - {"), received[0])
        XCTAssertTrue(received[1].hasPrefix("<86>1 "), received[1])  // authpriv.info
        let json1 = try XCTUnwrap(received[0].range(of: " - {")).upperBound
        let line1 = "{" + received[0][json1...]
        let json2 = try XCTUnwrap(received[1].range(of: " - {")).upperBound
        let obj2 = try XCTUnwrap(AuditEncoding.parse(Array(("{" + received[1][json2...]).utf8)))
        XCTAssertEqual(AuditEncoding.int(obj2["seq"]), 2)
        XCTAssertEqual(obj2["prev"] as? String, AuditEncoding.hash(Array(line1.utf8)))
    }

    func testSyslogFailureIsAnError() {
        let log = AuditLog(filePath: nil, syslogSocket: dir + "/nobody-listens", sync: false)
        XCTAssertThrowsError(try log.append(["event": .string("login")]))
    }

    // MARK: Several processes

    static let childFileVariable = "TG_AUDIT_TEST_CHILD_FILE"

    /// The children of testConcurrentWritersFromSeveralProcesses: this test binary re-run on that test with
    /// TG_AUDIT_TEST_CHILD_FILE set. Not a test of its own, so it is never counted in a normal run.
    private func runAsChildWriter() throws -> Bool {
        guard let path = ProcessInfo.processInfo.environment[Self.childFileVariable] else { return false }
        let log = AuditLog(filePath: path, syslogSocket: nil, sync: false)
        for i in 0..<200 {
            try log.append(["event": .string("key_use"), "outcome": .string("success"),
                            "object_label": .string("child \(getpid()) #\(i)")])
        }
        return true
    }

    func testConcurrentWritersFromSeveralProcesses() throws {
        if try runAsChildWriter() { return }
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        var children: [Process] = []
        for _ in 0..<4 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: exe)
            // On Linux the test bundle is an executable that takes the test to run as its argument.
            p.arguments = ["AuditTests.AuditLogTests/testConcurrentWritersFromSeveralProcesses"]
            var env = ProcessInfo.processInfo.environment
            env[Self.childFileVariable] = file
            p.environment = env
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            children.append(p)
        }
        for p in children { try p.run() }
        // This process writes at the same time, from two threads.
        let log = AuditLog(filePath: file, syslogSocket: nil, sync: false)
        DispatchQueue.concurrentPerform(iterations: 2) { t in
            for i in 0..<100 { _ = try? log.append(["event": .string("login"), "object_label": .string("parent \(t) #\(i)")]) }
        }
        for p in children { p.waitUntilExit() }
        for p in children { XCTAssertEqual(p.terminationStatus, 0) }
        let r = try AuditVerifier.verify(path: file)
        XCTAssertTrue(r.ok, "\(String(describing: r.error))")
        XCTAssertEqual(r.records, 4 * 200 + 200)
        XCTAssertEqual(r.lastSeq, 1000)
        let labels = Set(try lines().compactMap { AuditEncoding.parse(Array($0.utf8))?["object_label"] as? String })
        XCTAssertEqual(labels.count, 1000, "every record present once")
    }
}
