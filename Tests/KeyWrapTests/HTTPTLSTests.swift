// TLS in the HTTP layer against a real HTTPS server (fault_server.py with a certificate from a throw-away test
// CA made by the openssl CLI): a trusted CA bundle works, verification is never skipped (untrusted CA, wrong
// host name, system store → refused, not retried), and the aws-kms backend runs end to end over HTTPS with
// `ca_bundle` through the TLS proxy to moto (authentication on).
import CryptoCore
import Foundation
@testable import KeyWrap
import TestSupport
import XCTest

final class HTTPTLSTests: XCTestCase {
    nonisolated(unsafe) static var dir: String?
    nonisolated(unsafe) static var tlsServer: FaultServer?
    nonisolated(unsafe) static var moto: MotoFixture?
    nonisolated(unsafe) static var startError: Error?

    static func openssl(_ args: [String], in dir: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw TestServerError("openssl \(args.first ?? "") failed") }
    }

    /// A test CA, a server certificate for IP 127.0.0.1 only, and an unrelated "rogue" CA.
    static func makePKI(_ dir: String) throws {
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        for ca in ["ca", "rogue"] {
            try openssl(["req", "-x509"] + ec + ["-keyout", "\(ca).key", "-out", "\(ca).pem", "-days", "2", "-subj", "/CN=tg-test-\(ca)",
                                                  "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"], in: dir)
        }
        try openssl(["req"] + ec + ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"], in: dir)
        try "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            .write(toFile: dir + "/ext.cnf", atomically: true, encoding: .utf8)
        try openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                     "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf"], in: dir)
    }

    override class func setUp() {
        super.setUp()
        do {
            let d = FileManager.default.temporaryDirectory.path + "/tg-tls-\(getpid())-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            dir = d
            try makePKI(d)
            let m = try MotoFixture()
            moto = m
            tlsServer = try FaultServer(upstream: m.endpoint, tls: (d + "/server.pem", d + "/server.key", d + "/ca.pem"))
        } catch {
            startError = error
        }
    }

    override class func tearDown() {
        tlsServer?.stop()
        moto?.stop()
        if let d = dir { try? FileManager.default.removeItem(atPath: d) }
        tlsServer = nil
        moto = nil
        super.tearDown()
    }

    private func servers() throws -> (FaultServer, MotoFixture, String) {
        let s = try requireServer(Self.tlsServer, startError: Self.startError)
        let m = try requireServer(Self.moto, startError: Self.startError)
        try s.reset()
        return (s, m, try XCTUnwrap(Self.dir))
    }

    private func client(ca: String?, attempts: Int = 3) -> HTTPClient {
        HTTPClient(configuration: HTTPClientConfiguration(connectTimeout: .seconds(2), totalTimeout: .seconds(5), caBundlePath: ca,
                                                          retry: RetryPolicy(maxAttempts: attempts, baseDelay: .milliseconds(5), maxDelay: .milliseconds(10))))
    }

    private func echo(_ url: String) -> HTTPRequest {
        HTTPRequest(method: "POST", url: url, headers: [(name: "X-Amz-Target", value: "TrentService.Echo")], body: Array("{}".utf8))
    }

    func testTrustedCABundleWorks() throws {
        let (s, _, dir) = try servers()
        try s.faults(["echo"])
        let r = try client(ca: dir + "/ca.pem").send(echo(s.endpoint + "/"))
        XCTAssertEqual(r.status, 200)
        XCTAssertTrue(r.bodyText.contains("TrentService.Echo"))
    }

    func testUntrustedCertificateIsRefusedAndNotRetried() throws {
        let (s, _, dir) = try servers()
        for ca in [dir + "/rogue.pem", nil] {   // another CA; the system store (which does not know the test CA)
            let c = client(ca: ca)
            XCTAssertThrowsError(try c.sendWithRetries(echo(s.endpoint + "/"))) { e in
                guard case HTTPError.tlsFailure(let m)? = e as? HTTPError else { return XCTFail("\(e)") }
                XCTAssertTrue(m.contains("127.0.0.1"), m)
            }
            XCTAssertEqual(c.attemptCount, 1, "a certificate problem is not retried")
        }
        XCTAssertEqual(try s.stats().kms, 0, "no request ever reached the server")
    }

    func testHostNameIsVerified() throws {
        let (s, _, dir) = try servers()
        // The certificate is for IP 127.0.0.1 only; "localhost" resolves to the same server but must not match.
        let c = client(ca: dir + "/ca.pem")
        XCTAssertThrowsError(try c.send(echo("https://localhost:\(s.server.port)/"))) { e in
            guard case HTTPError.tlsFailure? = e as? HTTPError else { return XCTFail("\(e)") }
        }
        XCTAssertEqual(try s.stats().kms, 0)
    }

    func testAWSKMSOverHTTPSWithCABundle() throws {
        let (s, m, dir) = try servers()
        let env = ["AWS_ACCESS_KEY_ID": m.setup.user_access_key, "AWS_SECRET_ACCESS_KEY": m.setup.user_secret_key]
        let b = try makeAWSBackend(endpoint: s.endpoint, keyID: m.setup.alias, environment: env, options: ["ca_bundle": dir + "/ca.pem"])
        let key = try SecretBytes.random(count: 32)
        XCTAssertEqual(try b.unwrap(try b.wrap(key, context: awsTestContext), context: awsTestContext), key)
        XCTAssertEqual(try s.stats().forwarded, 2, "both calls went through TLS to moto, which verified the signatures")
        // Without the bundle the same backend refuses the server, typed and without retrying.
        let untrusted = try makeAWSBackend(endpoint: s.endpoint, keyID: m.setup.alias, environment: env)
        let message = expectAWSError("unreachable") { _ = try untrusted.wrap(key, context: awsTestContext) }
        XCTAssertTrue(message.contains("TLS"), message)
        XCTAssertEqual(untrusted.statistics.kms.requests, 1)
    }
}
