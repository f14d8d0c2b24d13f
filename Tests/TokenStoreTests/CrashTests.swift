import CryptoCore
import Foundation
import KeyWrap
import TokenStore
import XCTest

/// `kill -9` of a writer process: every insert that returned before the kill is in the file afterwards.
/// The writer is this same test binary, re-spawned to run `CrashChildTests` only.
final class CrashTests: XCTestCase {
    func testInsertsThatReturnedSurviveKill9() throws {
        let dir = try tempDir()
        do {
            let db = try TokenDatabase(directory: dir, indexedAttributes: indexed)
            let vault = try TokenVault(database: db, kdfLog2N: TokenVault.minimumKDFLog2N)
            try vault.initialize(soPIN: bytes("so"), label: bytes("crash"), backend: LocalBackend())
        }
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let child = Process()
        child.executableURL = URL(fileURLWithPath: exe)
        child.arguments = ["TokenStoreTests.CrashChildTests/testWriterLoop"]
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

/// Runs only as the child of `CrashTests`: inserts objects forever, reporting each after `insert` returned.
final class CrashChildTests: XCTestCase {
    func testWriterLoop() throws {
        guard let dir = ProcessInfo.processInfo.environment["TG_CRASH_CHILD_DIR"] else { throw XCTSkip("child process only") }
        let db = try TokenDatabase(directory: dir, indexedAttributes: indexed)
        let keys = try TokenVault(database: db, kdfLog2N: TokenVault.minimumKDFLog2N)
            .login(role: .so, pin: bytes("so"), backend: LocalBackend())
        for i in 0..<1_000_000 {
            let uid = "crash-\(i)"
            try db.insert(uniqueID: uid, publicAttributes: [Attr.label: bytes(uid)],
                          secretAttributes: [Attr.value: try SecretBytes.random(count: 32)], keys: keys)
            FileHandle.standardOutput.write(Data("committed \(uid)\n".utf8))
        }
    }
}
