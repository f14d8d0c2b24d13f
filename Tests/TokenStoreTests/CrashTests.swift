import CryptoCore
import Foundation
import KeyWrap
import TokenStore
import XCTest

/// `kill -9` of a writer process: every insert that returned before the kill is in the file afterwards.
/// The writer is this same test binary, re-spawned on this test in writer mode (`runAsCrashWriter`).
final class CrashTests: XCTestCase {
    func testInsertsThatReturnedSurviveKill9() throws {
        if try runAsCrashWriter() { return }
        let dir = try tempDir()
        do {
            let db = try TokenDatabase(directory: dir, indexedAttributes: indexed)
            let vault = try TokenVault(database: db, kdfLog2N: TokenVault.minimumKDFLog2N)
            try vault.initialize(soPIN: bytes("so"), label: bytes("crash"), backend: LocalBackend())
        }
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let child = Process()
        child.executableURL = URL(fileURLWithPath: exe)
        child.arguments = ["TokenStoreTests.CrashTests/testInsertsThatReturnedSurviveKill9"]
        var env = ProcessInfo.processInfo.environment
        env["TG_CRASH_CHILD_DIR"] = dir
        child.environment = env
        let out = Pipe()
        child.standardOutput = out
        child.standardError = FileHandle.nullDevice
        try child.run()

        var committed: [String] = []
        var buffer = ""
        let deadline = Date().addingTimeInterval(120)
        while committed.count < 150, Date() < deadline, child.isRunning {
            let data = out.fileHandleForReading.availableData
            if data.isEmpty { break }
            buffer += String(decoding: data, as: UTF8.self)
            while let nl = buffer.firstIndex(of: "\n") {
                let line = String(buffer[..<nl])
                buffer.removeSubrange(...nl)
                if line.hasPrefix("committed ") { committed.append(String(line.dropFirst("committed ".count))) }
            }
        }
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        XCTAssertEqual(child.terminationReason, .uncaughtSignal, "the writer must have been killed, not finished")
        XCTAssertGreaterThanOrEqual(committed.count, 150, "writer did not report enough commits")

        let db = try TokenDatabase(directory: dir, indexedAttributes: indexed)
        let keys = try TokenVault(database: db, kdfLog2N: TokenVault.minimumKDFLog2N)
            .login(role: .so, pin: bytes("so"), backend: LocalBackend())
        for uid in committed {
            let obj = try XCTUnwrap(try db.object(uniqueID: uid), "object \(uid) lost after kill -9")
            XCTAssertEqual(try db.unseal(obj, attribute: Attr.value, keys: keys).count, 32)
        }
        XCTAssertGreaterThanOrEqual(try db.objectCount(), committed.count)
        XCTAssertEqual(try sqlite3Shell(db.path, "PRAGMA integrity_check"), "ok")
    }
}

extension CrashTests {
    /// The writer: this test binary re-run on `testInsertsThatReturnedSurviveKill9` with TG_CRASH_CHILD_DIR set. It
    /// inserts objects until it is killed, reporting each after `insert` returned. Not a test of its own, so it is
    /// never counted (or skipped) in a normal run.
    func runAsCrashWriter() throws -> Bool {
        guard let dir = ProcessInfo.processInfo.environment["TG_CRASH_CHILD_DIR"] else { return false }
        let db = try TokenDatabase(directory: dir, indexedAttributes: indexed)
        let keys = try TokenVault(database: db, kdfLog2N: TokenVault.minimumKDFLog2N)
            .login(role: .so, pin: bytes("so"), backend: LocalBackend())
        for i in 0..<1_000_000 {
            let uid = "crash-\(i)"
            try db.insert(uniqueID: uid, publicAttributes: [Attr.label: bytes(uid)],
                          secretAttributes: [Attr.value: try SecretBytes.random(count: 32)], keys: keys)
            FileHandle.standardOutput.write(Data("committed \(uid)\n".utf8))
        }
        return true
    }
}
