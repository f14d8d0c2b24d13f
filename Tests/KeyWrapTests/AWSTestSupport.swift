// Helpers of the aws-kms tests. The servers themselves (moto, the fault proxy) are started by TestSupport
// (Sources/TestSupport: MotoFixture, FaultServer); a server that cannot start is the test's failure.
import CryptoCore
import Foundation
@testable import KeyWrap
import TestSupport
import XCTest

/// The fixture a class-level setUp started, or the reason it could not start (a failure, never a skip: `make deps`
/// installs what the servers need).
func requireServer<T>(_ value: T?, startError: Error?) throws -> T {
    if let value { return value }
    throw startError ?? TestServerError("test server did not start")
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
             "retry_base_delay": "0.02", "retry_max_delay": "0.2", "timeout": "5", "connect_timeout": "2"]
    for (k, v) in options { o[k] = v }
    let env = fakeEnvironment(environment)
    let config = try AWSKMSBackendConfig(options: o, environment: env)
    let profile = config.profile
    let imdsClient = HTTPClient(configuration: HTTPClientConfiguration(connectTimeout: .seconds(1), totalTimeout: .seconds(2),
                                                                       retry: RetryPolicy(maxAttempts: 2, baseDelay: .milliseconds(20), maxDelay: .milliseconds(100))))
    let provider = AWSCredentialsProvider(profile: profile, metadataClient: imdsClient, environment: env, clock: clock)
    let http = HTTPClient(configuration: config.http)
    // A transport that edits each request after it was signed, then sends it as the client would.
    var transport: (@Sendable (HTTPRequest) throws -> HTTPResponse)? = nil
    if let edit = afterSigning {
        transport = { @Sendable (request: HTTPRequest) throws -> HTTPResponse in
            var edited = request
            edit(&edited)
            return try http.send(edited)
        }
    }
    let client = AWSKMSClient(endpoint: config.endpoint, region: config.region, http: http,
                              credentials: provider, clock: clock, transport: transport)
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
