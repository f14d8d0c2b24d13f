// Test servers for the HTTP layer and the aws-kms backend: moto (Tests/servers/aws/moto_server.py, moto's own
// server app on 127.0.0.1) and the fault proxy / fake instance metadata (Tests/servers/aws/fault_server.py).
// Each fixture starts its process, waits for `READY <port>` (bounded), and stops it by PID.
import CryptoCore
import Foundation
@testable import KeyWrap
import XCTest

enum AWSTestPaths {
    static let servers: String = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("servers/aws").path
    }()
    static let python = ProcessInfo.processInfo.environment["TG_TEST_PYTHON"] ?? "python3"

    /// Whether `python3` can import `module` (e.g. "moto, boto3, flask"). Missing tools skip the tests; a server
    /// that is installed but fails to start is a test failure.
    static func pythonHas(_ modules: String) -> Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [python, "-c", "import \(modules)"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }
    static let motoAvailable = pythonHas("moto, boto3, botocore, flask, werkzeug")
    static let pythonAvailable = pythonHas("json, http.server")
}

/// Skip if the tools are missing; otherwise the start error is the test's failure.
func requireServer<T>(_ value: T?, startError: Error?, needsMoto: Bool) throws -> T {
    if let value { return value }
    if needsMoto ? !AWSTestPaths.motoAvailable : !AWSTestPaths.pythonAvailable {
        throw XCTSkip("python3 with \(needsMoto ? "moto[server], boto3" : "the standard library") is needed for these tests")
    }
    throw startError ?? AWSTestSkip(description: "test server did not start")
}

struct AWSTestSkip: Error, CustomStringConvertible {
    var description: String
}

/// A child process speaking the `READY <port>` protocol.
final class ServerProcess: @unchecked Sendable {
    let process = Process()
    let port: Int
    private let stdoutPipe = Pipe()
    private let stderrFile: String

    init(script: String, arguments: [String] = [], readyTimeout: TimeInterval = 60) throws {
        stderrFile = FileManager.default.temporaryDirectory.path + "/tg-aws-\(getpid())-\(UUID().uuidString.prefix(8)).log"
        _ = FileManager.default.createFile(atPath: stderrFile, contents: nil)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [AWSTestPaths.python, "\(AWSTestPaths.servers)/\(script)"] + arguments
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
            process.terminate()
            throw AWSTestSkip(description: "\(script) did not become ready in \(readyTimeout) s: \(Self.tail(stderrFile))")
        }
        let line = box.get()
        guard line.hasPrefix("READY "), let p = Int(line.dropFirst(6)) else {
            process.terminate()
            throw AWSTestSkip(description: "\(script) failed to start ('\(line)'): \(Self.tail(stderrFile))")
        }
        port = p
    }

    var baseURL: String { "http://127.0.0.1:\(port)" }

    /// SIGTERM, bounded wait, then SIGKILL — by PID only.
    func stop() {
        defer { try? FileManager.default.removeItem(atPath: stderrFile) }
        guard process.isRunning else { return }
        let pid = process.processIdentifier
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(pid, SIGKILL) }
        process.waitUntilExit()
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

/// Runs a helper script to completion (bounded) and returns stdout.
func runPythonScript(_ script: String, arguments: [String] = [], stdin: Data? = nil, timeout: TimeInterval = 120) throws -> Data {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [AWSTestPaths.python, "\(AWSTestPaths.servers)/\(script)"] + arguments
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
        throw AWSTestSkip(description: "\(script) did not finish in \(timeout) s")
    }
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw AWSTestSkip(description: "\(script) exited \(process.terminationStatus): \(String(decoding: collected.err.suffix(800), as: UTF8.self))")
    }
    return collected.out
}

private final class DataBox: @unchecked Sendable {
    var out = Data()
    var err = Data()
}

/// What setup_kms.py created on the moto server (authentication switched on afterwards).
struct MotoSetup: Decodable {
    struct Session: Decodable {
        var access_key: String
        var secret_key: String
        var session_token: String
    }
    var key_id: String
    var key_arn: String
    var alias: String
    var key2_id: String
    var key2_arn: String
    var user_access_key: String
    var user_secret_key: String
    var encrypt_only_access_key: String
    var encrypt_only_secret_key: String
    var sessions: [Session]
    var account: String
    var region: String
}

/// moto server with the test key, users and role; authentication on.
final class MotoFixture: @unchecked Sendable {
    let server: ServerProcess
    let setup: MotoSetup

    init() throws {
        server = try ServerProcess(script: "moto_server.py")
        do {
            let out = try runPythonScript("setup_kms.py", arguments: [server.baseURL])
            setup = try JSONDecoder().decode(MotoSetup.self, from: out)
        } catch {
            server.stop()
            throw error
        }
    }

    var endpoint: String { server.baseURL }

    func stop() { server.stop() }
}

/// The fault proxy (optionally in front of moto) with its control API.
final class FaultServer: @unchecked Sendable {
    let server: ServerProcess
    private let control: HTTPClient
    private let tls: Bool

    /// `tls`: (certificate, key) PEM paths — the server then speaks HTTPS and `caBundle` must trust it.
    init(upstream: String? = nil, tls: (cert: String, key: String, caBundle: String)? = nil) throws {
        var args = upstream.map { ["--upstream", $0] } ?? []
        if let tls { args += ["--tls-cert", tls.cert, "--tls-key", tls.key] }
        server = try ServerProcess(script: "fault_server.py", arguments: args)
        self.tls = tls != nil
        control = HTTPClient(configuration: HTTPClientConfiguration(connectTimeout: .seconds(2), totalTimeout: .seconds(5),
                                                                    caBundlePath: tls?.caBundle, retry: .none))
    }

    var endpoint: String { tls ? "https://127.0.0.1:\(server.port)" : server.baseURL }

    @discardableResult
    func post(_ path: String, _ object: Any) throws -> [String: Any] {
        let body = try JSONSerialization.data(withJSONObject: object)
        let r = try control.send(HTTPRequest(method: "POST", url: endpoint + path,
                                             headers: [(name: "Content-Type", value: "application/json")], body: Array(body)))
        guard r.status == 200 else { throw AWSTestSkip(description: "fault server control \(path): HTTP \(r.status)") }
        return (try JSONSerialization.jsonObject(with: Data(r.body))) as? [String: Any] ?? [:]
    }

    func faults(_ sequence: [String]) throws { try post("/__control/faults", ["sequence": sequence]) }
    func reset() throws { try post("/__control/reset", [:] as [String: String]) }

    func stats() throws -> (kms: Int, imdsFetches: Int, forwarded: Int, byTarget: [String: Int]) {
        let s = try post("/__control/stats", [:] as [String: String])
        return (s["kms_requests"] as? Int ?? -1, s["imds_credential_fetches"] as? Int ?? -1, s["forwarded"] as? Int ?? -1,
                s["by_target"] as? [String: Int] ?? [:])
    }

    func stop() { server.stop() }
}

/// An environment for AWSCredentialsProvider / config parsing that is only what the test says (the process
/// environment is never touched).
func fakeEnvironment(_ values: [String: String]) -> @Sendable (String) -> String? {
    { values[$0] }
}

/// A backend wired to `endpoint` with the given environment (credentials), options merged over defaults.
func makeAWSBackend(endpoint: String, keyID: String, environment: [String: String], options: [String: String] = [:],
                    afterSigning: (@Sendable (inout HTTPRequest) -> Void)? = nil,
                    clock: @escaping @Sendable () -> Int64 = AWSTime.now) throws -> AWSKMSBackend {
    var o = ["key_id": keyID, "region": "us-east-1", "endpoint": endpoint, "max_attempts": "4",
             "retry_base_delay_ms": "20", "retry_max_delay_ms": "200", "timeout_ms": "5000", "connect_timeout_ms": "2000"]
    for (k, v) in options { o[k] = v }
    let env = fakeEnvironment(environment)
    let config = try AWSKMSBackendConfig(options: o, environment: env)
    let profile = config.profile
    let imdsClient = HTTPClient(configuration: HTTPClientConfiguration(connectTimeout: .seconds(1), totalTimeout: .seconds(2),
                                                                       retry: RetryPolicy(maxAttempts: 2, baseDelay: .milliseconds(20), maxDelay: .milliseconds(100))))
    let provider = AWSCredentialsProvider(profile: profile, metadataClient: imdsClient, environment: env, clock: clock)
    let client = AWSKMSClient(endpoint: config.endpoint, region: config.region, http: HTTPClient(configuration: config.http),
                              credentials: provider, clock: clock, afterSigning: afterSigning)
    return AWSKMSBackend(configuration: config, client: client)
}

/// Asserts `body` throws a KeyWrapError of the named case; returns its description.
@discardableResult
func expectAWSError(_ expected: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) -> String {
    do {
        try body()
        XCTFail("expected KeyWrapError.\(expected), got success", file: file, line: line)
        return ""
    } catch let e as KeyWrapError {
        let name: String
        switch e {
        case .unreachable: name = "unreachable"
        case .removed: name = "removed"
        case .authenticationFailed: name = "authenticationFailed"
        case .keyNotFound: name = "keyNotFound"
        case .policyViolation: name = "policyViolation"
        case .integrityFailure: name = "integrityFailure"
        case .misconfigured: name = "misconfigured"
        }
        XCTAssertEqual(name, expected, "\(e)", file: file, line: line)
        return e.description
    } catch {
        XCTFail("expected KeyWrapError.\(expected), got \(error)", file: file, line: line)
        return ""
    }
}

let awsTestContext = WrapContext(tokenSerial: "0123456789ABCDEF", tokenUUID: "00112233445566778899aabbccddeeff")
