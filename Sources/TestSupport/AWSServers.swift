// moto (Tests/servers/aws/moto_server.py, moto's own server app, authentication on after setup_kms.py) and the
// KMS fault proxy / fake instance metadata (Tests/servers/aws/fault_server.py).
import Foundation
import KeyWrap

/// What setup_kms.py created on the moto server (authentication switched on afterwards).
public struct MotoSetup: Decodable, Sendable {
    public struct Session: Decodable, Sendable {
        public var access_key: String
        public var secret_key: String
        public var session_token: String
    }
    public var key_id: String
    public var key_arn: String
    public var alias: String
    public var key2_id: String
    public var key2_arn: String
    public var user_access_key: String
    public var user_secret_key: String
    public var encrypt_only_access_key: String
    public var encrypt_only_secret_key: String
    public var sessions: [Session]
    public var account: String
    public var region: String
}

/// moto server with the test key, users and role; authentication on.
public final class MotoFixture: @unchecked Sendable {
    public let server: ServerProcess
    public let setup: MotoSetup

    public init() throws {
        try TestServers.requirePython(TestServers.motoModules)
        server = try ServerProcess(script: "moto_server.py")
        do {
            let out = try runPythonScript("setup_kms.py", arguments: [server.baseURL])
            setup = try JSONDecoder().decode(MotoSetup.self, from: out)
        } catch {
            server.stop()
            throw error
        }
    }

    public var endpoint: String { server.baseURL }

    public func stop() { server.stop() }
}

/// The fault proxy (optionally in front of moto) with its control API.
public final class FaultServer: @unchecked Sendable {
    public let server: ServerProcess
    private let control: HTTPClient
    private let tls: Bool

    /// `tls`: (certificate, key) PEM paths — the server then speaks HTTPS and `caBundle` must trust it.
    /// `port`: listen there (0: any free port) — a restart on the old port brings a stopped proxy back.
    public init(upstream: String? = nil, tls: (cert: String, key: String, caBundle: String)? = nil, port: Int = 0) throws {
        try TestServers.requirePython("json, http.server")
        var args = upstream.map { ["--upstream", $0] } ?? []
        if let tls { args += ["--tls-cert", tls.cert, "--tls-key", tls.key] }
        if port != 0 { args += ["--port", String(port)] }
        server = try ServerProcess(script: "fault_server.py", arguments: args)
        self.tls = tls != nil
        control = HTTPClient(configuration: HTTPClientConfiguration(connectTimeout: .seconds(2), totalTimeout: .seconds(5),
                                                                    caBundlePath: tls?.caBundle, retry: .none))
    }

    public var endpoint: String { tls ? "https://127.0.0.1:\(server.port)" : server.baseURL }

    @discardableResult
    public func post(_ path: String, _ object: Any) throws -> [String: Any] {
        let body = try JSONSerialization.data(withJSONObject: object)
        let r = try control.send(HTTPRequest(method: "POST", url: endpoint + path,
                                             headers: [(name: "Content-Type", value: "application/json")], body: Array(body)))
        guard r.status == 200 else { throw TestServerError("fault server control \(path): HTTP \(r.status)") }
        return (try JSONSerialization.jsonObject(with: Data(r.body))) as? [String: Any] ?? [:]
    }

    public func faults(_ sequence: [String]) throws { try post("/__control/faults", ["sequence": sequence]) }
    public func reset() throws { try post("/__control/reset", [:] as [String: String]) }

    /// The proxy's counters: KMS requests seen (answered by a fault or forwarded), instance-metadata credential
    /// fetches, requests forwarded to moto, KMS requests per X-Amz-Target.
    public func stats() throws -> (kms: Int, imdsFetches: Int, forwarded: Int, byTarget: [String: Int]) {
        let s = try post("/__control/stats", [:] as [String: String])
        return (s["kms_requests"] as? Int ?? -1, s["imds_credential_fetches"] as? Int ?? -1, s["forwarded"] as? Int ?? -1,
                s["by_target"] as? [String: Int] ?? [:])
    }

    public func stop() { server.stop() }
}
