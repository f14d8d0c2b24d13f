// The SigV4 signer against AWS's published example and, byte for byte, against botocore's SigV4Auth
// (Tests/servers/aws/sigv4_reference.py) on the same requests; time helpers.
import CryptoCore
import Foundation
@testable import KeyWrap
import TestSupport
import XCTest

final class AWSSigV4Tests: XCTestCase {
    static let fixedTime: Int64 = 1_440_938_160   // 2015-08-30T12:36:00Z
    let exampleCredentials = AWSCredentials(accessKeyID: "AKIDEXAMPLE",
                                            secretAccessKey: SecretBytes(copying: Array("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".utf8)))

    func testAWSDocumentationExample() throws {
        // "Create a signed AWS API request" example: IAM ListUsers, GET, us-east-1, 20150830T123600Z.
        let request = HTTPRequest(method: "GET", url: "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08",
                                  headers: [(name: "Content-Type", value: "application/x-www-form-urlencoded; charset=utf-8")])
        let signed = try SigV4Signer(region: "us-east-1", service: "iam").sign(request, credentials: exampleCredentials, time: Self.fixedTime)
        XCTAssertEqual(signed.header("X-Amz-Date"), "20150830T123600Z")
        XCTAssertEqual(signed.header("Host"), "iam.amazonaws.com")
        XCTAssertEqual(signed.header("Authorization"),
                       "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
                       + "SignedHeaders=content-type;host;x-amz-date, "
                       + "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7")
        XCTAssertNil(signed.header("X-Amz-Security-Token"))
    }

    /// Signs with ours and with botocore; returns (ours, botocore's) Authorization and the other headers.
    private func compareWithBotocore(_ request: HTTPRequest, credentials: AWSCredentials, region: String = "us-east-1",
                                     service: String = "kms", time: Int64 = 1_764_405_000,
                                     file: StaticString = #filePath, line: UInt = #line) throws {
        let ours = try SigV4Signer(region: region, service: service).sign(request, credentials: credentials, time: time)
        var spec: [String: Any] = [
            "method": request.method, "url": request.url,
            "headers": request.headers.map { [$0.name, $0.value] },
            "body_b64": Data(request.body).base64EncodedString(),
            "access_key": credentials.accessKeyID,
            "secret_key": String(decoding: credentials.secretAccessKey.unsafeCopyToArray(), as: UTF8.self),
            "region": region, "service": service, "time": AWSTime.amzDate(time),
        ]
        if let t = credentials.sessionToken { spec["session_token"] = t }
        let out: Data
        do {
            out = try runPythonScript("sigv4_reference.py", stdin: try JSONSerialization.data(withJSONObject: spec), timeout: 60)
        } catch {
            try TestServers.requirePython(TestServers.motoModules)  // names the missing module, if that was it
            throw error
        }
        let reference = try XCTUnwrap(try JSONSerialization.jsonObject(with: out) as? [String: String])
        XCTAssertEqual(ours.header("Authorization"), reference["Authorization"], file: file, line: line)
        XCTAssertEqual(ours.header("X-Amz-Date"), reference["X-Amz-Date"], file: file, line: line)
        XCTAssertEqual(ours.header("X-Amz-Security-Token"), reference["X-Amz-Security-Token"], file: file, line: line)
        XCTAssertNotNil(reference["Authorization"], file: file, line: line)
    }

    private func kmsRequest(_ url: String, target: String, body: String) -> HTTPRequest {
        HTTPRequest(method: "POST", url: url,
                    headers: [(name: "Content-Type", value: "application/x-amz-json-1.1"),
                              (name: "X-Amz-Target", value: "TrentService.\(target)")],
                    body: Array(body.utf8))
    }

    func testMatchesBotocoreOnKMSRequests() throws {
        let creds = AWSCredentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE",
                                   secretAccessKey: SecretBytes(copying: Array("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".utf8)))
        let encrypt = #"{"KeyId":"alias/tg","Plaintext":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","EncryptionContext":{"tg-token-serial":"0123456789ABCDEF","tg-token-uuid":"00112233"}}"#
        try compareWithBotocore(kmsRequest("https://kms.eu-west-1.amazonaws.com/", target: "Encrypt", body: encrypt),
                                credentials: creds, region: "eu-west-1")
        try compareWithBotocore(kmsRequest("https://kms.us-east-1.amazonaws.com/", target: "Decrypt", body: #"{"CiphertextBlob":"AQID"}"#),
                                credentials: creds)
        // Non-default port (Host carries it), plain http loopback as in the tests.
        try compareWithBotocore(kmsRequest("http://127.0.0.1:4566/", target: "Encrypt", body: "{}"), credentials: creds)
        // Explicit default port: botocore drops it from Host, so do we.
        try compareWithBotocore(kmsRequest("https://kms.us-east-1.amazonaws.com:443/", target: "Encrypt", body: "{}"), credentials: creds)
    }

    func testMatchesBotocoreWithSessionTokenOddHeadersAndQuery() throws {
        let session = AWSCredentials(accessKeyID: "ASIAEXAMPLE123", secretAccessKey: SecretBytes(copying: Array("s3cr3t+/=KEY".utf8)),
                                     sessionToken: "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCXVzLWVhc3QtMSJHMEUCIQ==")
        var r = kmsRequest("https://kms.ap-southeast-2.amazonaws.com/", target: "Encrypt", body: #"{"a":"b"}"#)
        r.headers.append((name: "X-Custom-Spaces", value: "  a   b  c  "))
        r.headers.append((name: "User-Agent", value: "not-signed/1.0"))
        try compareWithBotocore(r, credentials: session, region: "ap-southeast-2")
        let get = HTTPRequest(method: "GET", url: "https://example.amazonaws.com/a%20b/c~d.e?b=2&a=1&a=0&c=x%20y",
                              headers: [(name: "X-Amz-Meta", value: "v")])
        try compareWithBotocore(get, credentials: session, service: "execute-api")
    }

    func testSignatureChangesWithEveryInput() throws {
        let signer = SigV4Signer(region: "us-east-1", service: "kms")
        let base = kmsRequest("https://kms.us-east-1.amazonaws.com/", target: "Encrypt", body: "{}")
        let auth = { (r: HTTPRequest, c: AWSCredentials, t: Int64) throws -> String in
            try signer.sign(r, credentials: c, time: t).header("Authorization") ?? ""
        }
        let reference = try auth(base, exampleCredentials, Self.fixedTime)
        var otherBody = base; otherBody.body = Array("{ }".utf8)
        var otherTarget = base; otherTarget.setHeader("X-Amz-Target", "TrentService.Decrypt")
        let otherSecret = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: SecretBytes(copying: Array("x".utf8)))
        XCTAssertNotEqual(try auth(otherBody, exampleCredentials, Self.fixedTime), reference)
        XCTAssertNotEqual(try auth(otherTarget, exampleCredentials, Self.fixedTime), reference)
        XCTAssertNotEqual(try auth(base, otherSecret, Self.fixedTime), reference)
        XCTAssertNotEqual(try auth(base, exampleCredentials, Self.fixedTime + 1), reference)
        XCTAssertFalse(reference.contains("EXAMPLEKEY"), "the secret never appears in a header")
        // Re-signing replaces, never duplicates, the signature headers.
        let twice = try signer.sign(try signer.sign(base, credentials: exampleCredentials, time: 1), credentials: exampleCredentials, time: 2)
        XCTAssertEqual(twice.headers.filter { $0.name.lowercased() == "authorization" }.count, 1)
        XCTAssertEqual(twice.headers.filter { $0.name.lowercased() == "host" }.count, 1)
        XCTAssertEqual(twice.headers.filter { $0.name.lowercased() == "x-amz-date" }.count, 1)
    }

    func testCredentialsDescriptionHidesSecrets() {
        let c = AWSCredentials(accessKeyID: "AKIAXYZ", secretAccessKey: SecretBytes(copying: Array("topsecretvalue".utf8)),
                               sessionToken: "tokentokentoken", expiration: 1_800_000_000, source: "environment")
        let d = "\(c)"
        XCTAssertTrue(d.contains("AKIAXYZ"))
        XCTAssertFalse(d.contains("topsecret"))
        XCTAssertFalse(d.contains("tokentoken"))
    }

    func testTimeFormattingAndParsing() {
        XCTAssertEqual(AWSTime.amzDate(Self.fixedTime), "20150830T123600Z")
        XCTAssertEqual(AWSTime.iso8601(Self.fixedTime), "2015-08-30T12:36:00Z")
        XCTAssertEqual(AWSTime.parseISO8601("2015-08-30T12:36:00Z"), Self.fixedTime)
        XCTAssertEqual(AWSTime.parseISO8601("2015-08-30T12:36:00.123Z"), Self.fixedTime)
        XCTAssertEqual(AWSTime.parseISO8601("2015-08-30T12:36:00+00:00"), Self.fixedTime)
        XCTAssertEqual(AWSTime.parseISO8601("2000-02-29T00:00:00Z"), 951_782_400)
        for bad in ["", "2015-08-30", "2015-08-30T12:36:00+02:00", "2015-13-30T12:36:00Z", "2015-08-30T25:36:00Z", "x015-08-30T12:36:00Z"] {
            XCTAssertNil(AWSTime.parseISO8601(bad), bad)
        }
    }

    func testUriEncodingAndCanonicalQuery() {
        XCTAssertEqual(SigV4Signer.uriEncode("/a b/ü~-_.", keepSlash: true), "/a%20b/%C3%BC~-_.")
        XCTAssertEqual(SigV4Signer.uriEncode("a/b=c", keepSlash: false), "a%2Fb%3Dc")
        XCTAssertEqual(SigV4Signer.canonicalQuery("b=2&a=1&a=0&c"), "a=0&a=1&b=2&c=")
        XCTAssertEqual(SigV4Signer.collapseSpaces("  a \t  b "), "a b")
    }
}
