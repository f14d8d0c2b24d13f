// Runs the built tg-pkcs11 binary as a subprocess. `swift build` must precede `swift test`: the tests do not
// build the binary, they look for it next to the test bundle (the same build directory), or at
// $TG_PKCS11_CLI. The module under test is $TG_PKCS11_MODULE, else libtensorguard-pkcs11.so in that directory.
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import XCTest
import TestSupport

struct CLIResult {
    let status: Int32
    let stdout: String
    let stderr: String

    /// Everything, for failure messages.
    var transcript: String { "exit \(status)\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)" }
}

enum CLI {
    /// /work/main (this file is Tests/CLITests/CLIHarness.swift), symlinks resolved.
    static let repoRoot: URL = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// ../shared/interop beside the repository, or $TG_INTEROP_DIR.
    static let interopDirectory: URL = {
        if let override = ProcessInfo.processInfo.environment["TG_INTEROP_DIR"] {
            return URL(fileURLWithPath: override)
        }
        return repoRoot.deletingLastPathComponent().appendingPathComponent("shared/interop")
    }()

    static func interop(_ name: String) -> String { interopDirectory.appendingPathComponent(name).path }

    /// Directories that may hold the build products: the test runner's own directory first.
    private static var buildDirectories: [URL] {
        var dirs: [URL] = []
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            dirs.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
        }
        dirs.append(Bundle.main.bundleURL.deletingLastPathComponent())
        for bundle in Bundle.allBundles { dirs.append(bundle.bundleURL.deletingLastPathComponent()) }
        // Last resort: the default build directories (`make build` writes .build/release).
        dirs.append(repoRoot.appendingPathComponent(".build/debug"))
        dirs.append(repoRoot.appendingPathComponent(".build/release"))
        return dirs
    }

    /// The tg-pkcs11 executable, or nil (the tests then fail with an explanation).
    static let binary: String? = {
        if let path = ProcessInfo.processInfo.environment["TG_PKCS11_CLI"], !path.isEmpty { return path }
        for dir in buildDirectories {
            let candidate = dir.appendingPathComponent("tg-pkcs11").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }()

    /// The module under test: $TG_PKCS11_MODULE, else libtensorguard-pkcs11.so beside the binary.
    static var modulePath: String? {
        if let path = ProcessInfo.processInfo.environment["TG_PKCS11_MODULE"], !path.isEmpty { return path }
        guard let binary else { return nil }
        return URL(fileURLWithPath: binary).deletingLastPathComponent()
            .appendingPathComponent("libtensorguard-pkcs11.so").path
    }

    static func requireBinary(file: StaticString = #filePath, line: UInt = #line) throws -> String {
        guard let binary else {
            throw MissingDependency("tg-pkcs11 not found next to the test bundle; run `swift build` before `swift test` "
                + "(or set TG_PKCS11_CLI)")
        }
        return binary
    }

    /// A data directory of this test process: the module's default audit log (and default stores) go there
    /// instead of the home directory of whoever runs the tests.
    static let isolatedDataHome: String = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tg-cli-data-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true,
                                                 attributes: [.posixPermissions: 0o700])
        return dir
    }()

    /// The test's environment minus every TG_PKCS11_* and TENSORGUARD_PKCS11_* variable, with XDG_DATA_HOME set to
    /// `isolatedDataHome`, plus `environment`.
    static func childEnvironment(_ environment: [String: String]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment.filter {
            !$0.key.hasPrefix("TG_PKCS11_") && !$0.key.hasPrefix("TENSORGUARD_PKCS11_")
        }
        env["XDG_DATA_HOME"] = isolatedDataHome
        env.merge(environment) { _, new in new }
        return env
    }

    /// Runs tg-pkcs11 with `arguments` in `childEnvironment(environment)`. stdin is /dev/null, so a PIN prompt can
    /// never hang.
    static func run(_ arguments: [String], environment: [String: String] = [:], timeout: TimeInterval = 300,
                    file: StaticString = #filePath, line: UInt = #line) throws -> CLIResult {
        let binary = try requireBinary(file: file, line: line)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tg-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let outURL = dir.appendingPathComponent("stdout"), errURL = dir.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.environment = childEnvironment(environment)
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = out
        process.standardError = err
        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        try process.run()
        if done.wait(timeout: .now() + timeout) == .timedOut {
            process.terminate()
            _ = done.wait(timeout: .now() + 10)
            XCTFail("tg-pkcs11 \(arguments.joined(separator: " ")) timed out after \(timeout) s", file: file, line: line)
        }
        try out.close()
        try err.close()
        let stdout = String(decoding: (try? Data(contentsOf: outURL)) ?? Data(), as: UTF8.self)
        let stderr = String(decoding: (try? Data(contentsOf: errURL)) ?? Data(), as: UTF8.self)
        let result = CLIResult(status: process.terminationStatus, stdout: stdout, stderr: stderr)
        // Whatever happened, it must never be a crash: no signal, no Swift runtime trap, no backtrace.
        XCTAssertEqual(process.terminationReason, .exit, "tg-pkcs11 died from a signal\n\(result.transcript)",
                       file: file, line: line)
        for marker in ["Fatal error", "Stack dump", "Backtrace", "Crash", "Segmentation fault"] {
            XCTAssertFalse(stderr.contains(marker), "tg-pkcs11 crashed\n\(result.transcript)", file: file, line: line)
        }
        return result
    }

    /// Runs tg-pkcs11 with a pseudo-terminal as stdin: waits for `prompt` on stderr, types `line` and a newline,
    /// and returns the result plus everything the terminal echoed back.
    static func runWithTerminal(_ arguments: [String], environment: [String: String], prompt: String, line: String,
                                file: StaticString = #filePath, line sourceLine: UInt = #line) throws -> (CLIResult, echoed: String) {
        let binary = try requireBinary(file: file, line: sourceLine)
        var master: Int32 = -1, slave: Int32 = -1
        guard openpty(&master, &slave, nil, nil, nil) == 0 else { throw MissingDependency("no pseudo-terminal available (openpty failed)") }
        defer { close(master) }
        let dir = try TemporaryDirectory("tg-cli-pty")
        let outPath = dir.file("stdout"), errPath = dir.file("stderr")
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.environment = childEnvironment(environment)
        process.standardInput = FileHandle(fileDescriptor: slave, closeOnDealloc: true)
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Type only once the prompt is up: switching echo off (TCSAFLUSH) discards earlier input.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, !(String(decoding: (try? Data(contentsOf: URL(fileURLWithPath: errPath))) ?? Data(),
                                          as: UTF8.self).contains(prompt)) {
            usleep(20_000)
        }
        usleep(100_000)
        let typed = Array((line + "\n").utf8)
        _ = typed.withUnsafeBytes { write(master, $0.baseAddress, $0.count) }
        process.waitUntilExit()
        try out.close()
        try err.close()
        _ = fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK)
        var echoed = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(master, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            echoed += buffer.prefix(n)
        }
        let result = CLIResult(status: process.terminationStatus,
                               stdout: String(decoding: (try? Data(contentsOf: URL(fileURLWithPath: outPath))) ?? Data(), as: UTF8.self),
                               stderr: String(decoding: (try? Data(contentsOf: URL(fileURLWithPath: errPath))) ?? Data(), as: UTF8.self))
        return (result, String(decoding: echoed, as: UTF8.self))
    }

    /// Runs and expects success.
    @discardableResult
    static func ok(_ arguments: [String], environment: [String: String] = [:],
                   file: StaticString = #filePath, line: UInt = #line) throws -> CLIResult {
        let r = try run(arguments, environment: environment, file: file, line: line)
        XCTAssertEqual(r.status, 0, "tg-pkcs11 \(arguments.joined(separator: " ")) failed\n\(r.transcript)",
                       file: file, line: line)
        return r
    }

    /// Runs and expects a clean failure (non-zero exit) whose stderr contains `message`.
    @discardableResult
    static func fails(_ arguments: [String], with message: String, environment: [String: String] = [:],
                      file: StaticString = #filePath, line: UInt = #line) throws -> CLIResult {
        let r = try run(arguments, environment: environment, file: file, line: line)
        XCTAssertNotEqual(r.status, 0, "expected a failure\n\(r.transcript)", file: file, line: line)
        XCTAssertTrue(r.stderr.contains(message), "stderr lacks \"\(message)\"\n\(r.transcript)", file: file, line: line)
        return r
    }
}

/// tools/n2he_reference.py (numpy, written from N2HE-SPEC independently of the Swift code): `decrypt` under
/// a key file, printing a JSON list.
func numpyReferenceDecrypt(key: String, ciphertext: String, modulusBits: Int,
                           file: StaticString = #filePath, line: UInt = #line) throws -> [Int64]? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", CLI.repoRoot.appendingPathComponent("tools/n2he_reference.py").path, "decrypt",
                         "--key", key, "--ct", ciphertext, "--modulus-bits", String(modulusBits)]
    let dir = try TemporaryDirectory("tg-cli-ref")
    let outPath = dir.file("out"), errPath = dir.file("err")
    _ = FileManager.default.createFile(atPath: outPath, contents: nil)
    _ = FileManager.default.createFile(atPath: errPath, contents: nil)
    process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
    process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
    try process.run()
    process.waitUntilExit()
    let out = String(decoding: (try? Data(contentsOf: URL(fileURLWithPath: outPath))) ?? Data(), as: UTF8.self)
    guard process.terminationStatus == 0 else {
        let err = String(decoding: (try? Data(contentsOf: URL(fileURLWithPath: errPath))) ?? Data(), as: UTF8.self)
        XCTFail("n2he_reference.py decrypt failed (python3 with numpy needed): \(err)", file: file, line: line)
        return nil
    }
    return parseJSONIntegers(out, file: file, line: line)
}

/// A temporary directory removed when the object goes away.
final class TemporaryDirectory {
    let url: URL
    var path: String { url.path }

    init(_ prefix: String = "tg-cli-test") throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    func file(_ name: String) -> String { url.appendingPathComponent(name).path }

    @discardableResult
    func write(_ name: String, _ bytes: [UInt8], mode: Int = 0o600) throws -> String {
        let path = file(name)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        return path
    }

    @discardableResult
    func write(_ name: String, _ text: String, mode: Int = 0o600) throws -> String {
        try write(name, Array(text.utf8), mode: mode)
    }
}

/// Little-endian int64 file contents.
func int64Bytes(_ values: [Int64]) -> [UInt8] {
    values.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
}

func int64Values(_ bytes: [UInt8]) -> [Int64] {
    stride(from: 0, to: bytes.count - bytes.count % 8, by: 8).map { offset in
        bytes[offset..<offset + 8].enumerated().reduce(Int64(0)) { acc, e in acc | Int64(e.element) << (8 * Int64(e.offset)) }
    }
}

/// The JSON array tg-pkcs11 decrypt prints.
func parseJSONIntegers(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> [Int64]? {
    guard let array = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [NSNumber] else {
        XCTFail("not a JSON array of numbers: \(text.prefix(200))", file: file, line: line)
        return nil
    }
    return array.map { $0.int64Value }
}

/// The SDK fixtures' manifest (sdk-key-1.cases.json).
struct InteropCases: Decodable {
    struct Case: Decodable {
        let file: String
        let format: String
        let modulus_bits: Int
        let n: Int
        let plaintext_bits: Int
        let k: Int
        let plaintext: [Int64]
    }
    let cases: [Case]

    static func load() throws -> InteropCases {
        let data = try Data(contentsOf: URL(fileURLWithPath: CLI.interop("sdk-key-1.cases.json")))
        return try JSONDecoder().decode(InteropCases.self, from: data)
    }
}
