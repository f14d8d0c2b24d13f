// The fake cloud servers of Tests/servers (gcp/fake_gcp_kms.py, azure/fake_azure_keyvault.py): HTTPS on
// 127.0.0.1 with a throwaway CA, test control under /_test/ (stats, faults, reset, keys, …).
import Foundation
import KeyWrap

/// One fake server as a subprocess with its own state directory (CA, keys, secrets); stopped by PID.
public final class FakeCloudServer: @unchecked Sendable {
    public let directory: String
    public let process: Process
    /// The server's ready.json (port, ca, key names, credential files, …).
    public let info: [String: Any]
    public private(set) var running = true

    /// Starts `Tests/servers/<script>` (e.g. "gcp/fake_gcp_kms.py") and waits (at most 30 s) for its ready.json.
    public init(_ script: String, arguments: [String] = []) throws {
        try TestServers.requirePython(TestServers.fakeCloudModules)
        directory = FileManager.default.temporaryDirectory.path + "/tg-cloud-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        chmod(directory, 0o700)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [TestServers.python, TestServers.directory + "/" + script, "--state-dir", directory] + arguments
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
            TestServers.stop(p, grace: 1)
            try? FileManager.default.removeItem(atPath: directory)
            throw TestServerError("fake server \(script) did not start within 30 s (run it by hand: \(TestServers.python) Tests/servers/\(script) --state-dir /tmp/x)")
        }
        info = loaded
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Stops the server (SIGTERM, then SIGKILL after 5 s) — by its PID only.
    public func stop() {
        guard running else { return }
        running = false
        TestServers.stop(process)
    }

    public func string(_ key: String) -> String { info[key] as? String ?? "" }
    public func int(_ key: String) -> Int { info[key] as? Int ?? 0 }
    public var ca: String { string("ca") }
    public var base: String { "https://127.0.0.1:\(int("port"))" }

    /// POST (body given) or GET a /_test/ endpoint through our own HTTP client, trusting the fake's CA.
    @discardableResult
    public func control(_ path: String, _ body: [String: Any]? = nil) throws -> [String: Any] {
        let http = HTTPClient(configuration: HTTPClientConfiguration(caBundlePath: ca, retry: .none))
        var request = HTTPRequest(method: body == nil ? "GET" : "POST", url: base + path)
        if let body { request.body = Array(try JSONSerialization.data(withJSONObject: body)) }
        let response = try http.send(request)
        guard response.status == 200 else { throw TestServerError("fake server control \(path): HTTP \(response.status)") }
        return (try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]) ?? [:]
    }

    /// The server's counters (GET /_test/stats): "requests" counts every request (this one included), plus one
    /// counter per endpoint class ("token", "encrypt", "decrypt", "wrapkey", "unwrapkey", "get", …).
    public func stats() throws -> [String: Int] {
        (try control("/_test/stats")).compactMapValues { $0 as? Int }
    }

    public func faults(_ list: [[String: Any]]) throws { try control("/_test/faults", ["faults": list]) }
    public func reset() throws { try control("/_test/reset", [:]) }
}
