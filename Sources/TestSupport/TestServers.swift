// Shared by the test targets only (KeyWrapTests, CloudTokenTests, CLITests): the Python test servers of Tests/servers as
// child processes on 127.0.0.1, started with bounded waits and stopped by PID. No XCTest here: a server that
// cannot start — including a missing Python module, which `make deps` installs — throws `TestServerError`,
// and the calling test fails with that message (never a skip).
import Foundation
import KeyWrap

/// Why a test server could not be started or driven. The description says what to do about it.
public struct TestServerError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Where the servers live and which interpreter runs them.
public enum TestServers {
    /// Tests/servers, found from this file (Sources/TestSupport/… → ../../Tests/servers).
    public static let directory: String = {
        URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Tests/servers").path
    }()
    /// `TG_TEST_PYTHON`, else `python3`.
    public static let python = ProcessInfo.processInfo.environment["TG_TEST_PYTHON"] ?? "python3"

    /// The Python modules the servers import (what `scripts/install-deps.sh` installs).
    public static let motoModules = "moto, boto3, botocore, flask, werkzeug"
    public static let fakeCloudModules = "cryptography"

    /// Whether `python` can import `modules` (e.g. "moto, boto3").
    public static func pythonHas(_ modules: String) -> Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [python, "-c", "import \(modules)"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }

    /// Throws a clear error unless `python` can import `modules`.
    public static func requirePython(_ modules: String) throws {
        guard pythonHas(modules) else {
            throw TestServerError("\(python) cannot import \(modules): run `make deps` (scripts/install-deps.sh installs the test servers' packages)")
        }
    }

    /// A loopback port nobody listens on (bound, then closed).
    public static func closedPort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// SIGTERM, a bounded wait, then SIGKILL — by PID only.
    static func stop(_ process: Process, grace: TimeInterval = 5) {
        guard process.isRunning else { return }
        let pid = process.processIdentifier
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(grace)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(pid, SIGKILL) }
        process.waitUntilExit()
    }
}

/// A child process (a script of Tests/servers/aws) speaking the `READY <port>` protocol.
public final class ServerProcess: @unchecked Sendable {
    public let process = Process()
    public let port: Int
    private let stdoutPipe = Pipe()
    private let stderrFile: String

    public init(script: String, arguments: [String] = [], readyTimeout: TimeInterval = 60) throws {
        stderrFile = FileManager.default.temporaryDirectory.path + "/tg-server-\(getpid())-\(UUID().uuidString.prefix(8)).log"
        _ = FileManager.default.createFile(atPath: stderrFile, contents: nil)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [TestServers.python, "\(TestServers.directory)/aws/\(script)"] + arguments
        process.standardOutput = stdoutPipe
        process.standardError = FileHandle(forWritingAtPath: stderrFile)
        var env = ProcessInfo.processInfo.environment
        env["PYTHONUNBUFFERED"] = "1"
        process.environment = env
        try process.run()
        // Read the first line with a deadline (the read happens on a helper thread so the wait is bounded).
        let fd = stdoutPipe.fileHandleForReading
        let box = LineBox()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            var line = [UInt8]()
            while line.count < 256 {
                let chunk = fd.readData(ofLength: 1)
                if chunk.isEmpty { break }
                if chunk.first == 0x0A { break }
                line.append(contentsOf: chunk)
            }
            box.set(String(decoding: line, as: UTF8.self))
            done.signal()
        }
        if done.wait(timeout: .now() + readyTimeout) == .timedOut {
            TestServers.stop(process)
            throw TestServerError("\(script) did not become ready in \(readyTimeout) s: \(Self.tail(stderrFile))")
        }
        let line = box.get()
        guard line.hasPrefix("READY "), let p = Int(line.dropFirst(6)) else {
            TestServers.stop(process)
            throw TestServerError("\(script) failed to start ('\(line)'): \(Self.tail(stderrFile))")
        }
        port = p
    }

    public var baseURL: String { "http://127.0.0.1:\(port)" }
    public var isRunning: Bool { process.isRunning }

    /// SIGTERM, bounded wait, then SIGKILL — by PID only. The log file goes in any case.
    public func stop() {
        defer { try? FileManager.default.removeItem(atPath: stderrFile) }
        TestServers.stop(process)
    }

    static func tail(_ path: String) -> String {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return String(text.suffix(800))
    }

    private final class LineBox: @unchecked Sendable {
        private let lock = NSLock()
        private var value = ""
        func set(_ v: String) { lock.lock(); value = v; lock.unlock() }
        func get() -> String { lock.lock(); defer { lock.unlock() }; return value }
    }
}

/// Runs a script of Tests/servers/aws to completion (bounded) and returns its stdout.
public func runPythonScript(_ script: String, arguments: [String] = [], stdin: Data? = nil, timeout: TimeInterval = 120) throws -> Data {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [TestServers.python, "\(TestServers.directory)/aws/\(script)"] + arguments
    let out = Pipe(), err = Pipe(), input = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = input
    try process.run()
    if let stdin { input.fileHandleForWriting.write(stdin) }
    try? input.fileHandleForWriting.close()
    let collected = DataBox()
    let done = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
        collected.out = out.fileHandleForReading.readDataToEndOfFile()
        collected.err = err.fileHandleForReading.readDataToEndOfFile()
        done.signal()
    }
    if done.wait(timeout: .now() + timeout) == .timedOut {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        throw TestServerError("\(script) did not finish in \(timeout) s")
    }
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw TestServerError("\(script) exited \(process.terminationStatus): \(String(decoding: collected.err.suffix(800), as: UTF8.self))")
    }
    return collected.out
}

private final class DataBox: @unchecked Sendable {
    var out = Data()
    var err = Data()
}
