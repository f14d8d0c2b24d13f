// The aws-kms backend's small JSON and base64 (no Foundation): secret members land in SecretBytes, malformed
// input is refused, the writer's output is valid JSON (checked with Foundation's parser).
import CryptoCore
import Foundation
@testable import KeyWrap
import XCTest

final class AWSJSONTests: XCTestCase {
    func testParsesKMSDocumentsWithSecretMembers() throws {
        let doc = Array(#"{"KeyId":"arn:aws:kms:us-east-1:1:key\/k","Plaintext":"QUJD\/w==","EncryptionAlgorithm":"SYMMETRIC_DEFAULT","n":-1.5e3,"a":[true,false,null,{}],"u":"\u00e9\ud83d\ude00\n"}"#.utf8)
        let v = try AWSJSON.parse(doc, secretKeys: ["Plaintext"])
        XCTAssertEqual(v["KeyId"]?.stringValue, "arn:aws:kms:us-east-1:1:key/k")
        XCTAssertNil(v["Plaintext"]?.stringValue, "secret members are not Strings")
        let secret = try XCTUnwrap(v["Plaintext"]?.secretValue)
        XCTAssertEqual(secret.unsafeCopyToArray(), Array("QUJD/w==".utf8), "escapes resolved")
        XCTAssertEqual(AWSBase64.decodeSecret(secret)?.unsafeCopyToArray(), [0x41, 0x42, 0x43, 0xFF])
        XCTAssertEqual(v["n"], .number("-1.5e3"))
        XCTAssertEqual(v["a"], .array([.bool(true), .bool(false), .null, .object([:])]))
        XCTAssertEqual(v["u"]?.stringValue, "é😀\n")
    }

    func testRefusesMalformedDocuments() {
        let deep = String(repeating: "[", count: 40) + String(repeating: "]", count: 40)
        for bad in ["", "{", "{\"a\":}", "{\"a\" 1}", "[1,]x", "{\"a\":\"\u{01}\"}", "\"\\ud800\"", "\"\\x\"", "nul", "{} {}",
                    "{\"CiphertextBlob\": <html>oops", deep] {
            XCTAssertThrowsError(try AWSJSON.parse(Array(bad.utf8)), bad) { e in
                XCTAssertFalse("\(e)".contains("oops"), "errors do not echo content")
            }
        }
    }

    func testWriterProducesValidJSON() throws {
        var w = AWSJSONWriter()
        w.beginObject()
        w.key("KeyId"); w.string("alias/\"q\"\\\n\u{01}")
        w.key("Plaintext"); w.base64String(SecretBytes(copying: [UInt8](0..<32)))
        w.key("EncryptionContext"); w.stringMap(["b": "2", "a": "1"])
        w.key("Empty"); w.stringMap([:])
        w.endObject()
        let bytes = w.take()
        let parsed = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        XCTAssertEqual(parsed["KeyId"] as? String, "alias/\"q\"\\\n\u{01}")
        XCTAssertEqual(parsed["Plaintext"] as? String, Data(0..<32).base64EncodedString())
        XCTAssertEqual(parsed["EncryptionContext"] as? [String: String], ["a": "1", "b": "2"])
        XCTAssertEqual((parsed["Empty"] as? [String: String])?.count, 0)
        XCTAssertEqual(try AWSJSON.parse(bytes)["KeyId"]?.stringValue, "alias/\"q\"\\\n\u{01}", "own parser agrees")
    }

    func testBase64BothAlphabetsAndRejects() {
        for n in 0..<40 {
            let data = (0..<n).map { UInt8(truncatingIfNeeded: $0 * 37 + 11) }
            let std = AWSBase64.encode(data)
            XCTAssertEqual(std, Data(data).base64EncodedString())
            XCTAssertEqual(AWSBase64.decode(std), data)
            let url = AWSBase64.encode(data, urlSafe: true, padded: false)
            XCTAssertEqual(AWSBase64.decode(url), data)
        }
        for bad in ["A", "AB=C", "A===", "AB CD", "AB\nCD", "****"] {
            XCTAssertNil(AWSBase64.decode(bad), bad)
        }
    }
}
