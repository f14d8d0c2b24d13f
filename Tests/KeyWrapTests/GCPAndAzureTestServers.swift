import CryptoCore
import Foundation
@testable import KeyWrap
import XCTest

/// One of the fake cloud servers of Tests/servers (fake_gcp_kms.py, fake_azure_keyvault.py) as a subprocess on
/// 127.0.0.1 with its own state directory (throwaway CA, keys, secrets); stopped by PID.
final class FakeCloudServer {
    let directory: String
    let process: Process
    let info: [String: Any]
    private(set) var running = true

    /// Tests/servers, found from this file (resolving the symlinks of a private harness package).
    static var serversDirectory: String {
        URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("servers").path
    }

    static func pythonAvailable() -> Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import cryptography"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }

    /// Starts `Tests/servers/<script>` and waits (at most 30 s) for its ready.json.
    init(_ script: String, arguments: [String] = []) throws {
        guard Self.pythonAvailable() else { throw XCTSkip("python3 with the cryptography package is needed for the fake cloud servers") }
        directory = FileManager.default.temporaryDirectory.path + "/tg-cloud-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        chmod(directory, 0o700)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", Self.serversDirectory + "/" + script, "--state-dir", directory] + arguments
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        let ready = directory + "/ready.json"
        var loaded: [String: Any]? = nil
        for _ in 0..<300 {
            if let data = FileManager.default.contents(atPath: ready),
               let doc = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
                loaded = doc
                break
            }
            guard p.isRunning else { break }
            usleep(100_000)
        }
        guard let loaded else {
            if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
            throw XCTSkip("fake server \(script) did not start")
        }
        info = loaded
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Stops the server (SIGTERM, then SIGKILL after 5 s) — by its PID only.
    func stop() {
        guard running else { return }
        running = false
        let pid = process.processIdentifier
        kill(pid, SIGTERM)
        for _ in 0..<50 where process.isRunning { usleep(100_000) }
        if process.isRunning { kill(pid, SIGKILL) }
        process.waitUntilExit()
    }

    func string(_ key: String) -> String { info[key] as? String ?? "" }
    func int(_ key: String) -> Int { info[key] as? Int ?? 0 }
    var ca: String { string("ca") }
    var base: String { "https://127.0.0.1:\(int("port"))" }

    /// POST (body given) or GET a /_test/ endpoint through our own HTTP client, trusting the fake's CA.
    @discardableResult
    func control(_ path: String, _ body: [String: Any]? = nil) throws -> [String: Any] {
        let http = HTTPClient(configuration: HTTPClientConfiguration(caBundlePath: ca, retry: .none))
        var request = HTTPRequest(method: body == nil ? "GET" : "POST", url: base + path)
        if let body { request.body = Array(try JSONSerialization.data(withJSONObject: body)) }
        let response = try http.send(request)
        guard response.status == 200 else { throw KeyWrapError.unreachable("control \(path): HTTP \(response.status)") }
        return (try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]) ?? [:]
    }

    func stats() throws -> [String: Int] {
        (try control("/_test/stats")).compactMapValues { $0 as? Int }
    }

    func faults(_ list: [[String: Any]]) throws { try control("/_test/faults", ["faults": list]) }
    func reset() throws { try control("/_test/reset", [:]) }
}

/// Runs `body`, returning its error (nil if none) and the wall time it took.
func cloudTimed(_ body: () throws -> Void) -> (KeyWrapError?, Duration) {
    let clock = ContinuousClock()
    var error: KeyWrapError? = nil
    let elapsed = clock.measure {
        do { try body() } catch let e as KeyWrapError { error = e } catch { XCTFail("unexpected error type: \(error)") }
    }
    return (error, elapsed)
}

let cloudContext = WrapContext(tokenSerial: "0123456789abcdef", tokenUUID: "7f2c1e0d9b8a4c3e8f1a2b3c4d5e6f70")
let cloudOtherContext = WrapContext(tokenSerial: "0123456789abcdef", tokenUUID: "00000000000000000000000000000001")
