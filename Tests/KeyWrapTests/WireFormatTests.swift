// The backends' one wire layer (no Foundation): JSON whose secret members land in SecretBytes, base64 in both
// alphabets, and the length-prefixed blob frame. Malformed input is refused; the writer's output is valid JSON
// (checked with Foundation's parser, which the tests may use).
import CryptoCore
import Foundation
import JSON
@testable import KeyWrap
import XCTest

final class WireFormatTests: XCTestCase {
    func testParsesKMSDocumentsWithSecretMembers() throws {
        let doc = Array(#"{"KeyId":"arn:aws:kms:us-east-1:1:key\/k","Plaintext":"QUJD\/w==","EncryptionAlgorithm":"SYMMETRIC_DEFAULT","n":-1.5e3,"a":[true,false,null,{}],"u":"\u00e9\ud83d\ude00\n","deep":{"private_key":"a\"b"}}"#.utf8)
        let v = try JSONValue.parse(doc, secretMembers: ["Plaintext", "private_key"])
        XCTAssertEqual(v["KeyId"]?.text, "arn:aws:kms:us-east-1:1:key/k")
        XCTAssertNil(v["Plaintext"]?.text, "secret members are not Strings")
        let secret = try XCTUnwrap(v["Plaintext"]?.secret)
        XCTAssertEqual(secret.unsafeCopyToArray(), Array("QUJD/w==".utf8), "escapes resolved")
        XCTAssertEqual(Base64.decodeSecret(secret)?.unsafeCopyToArray(), [0x41, 0x42, 0x43, 0xFF])
        XCTAssertEqual(v["deep"]?["private_key"]?.secret?.unsafeCopyToArray(), Array("a\"b".utf8), "secret at any depth")
        XCTAssertEqual(v["n"], .number("-1.5e3"))
        XCTAssertEqual(v["a"], .array([.bool(true), .bool(false), .null, .object([:])]))
        XCTAssertEqual(v["u"]?.text, "é😀\n")
        XCTAssertEqual(try JSONValue.parse(Array(#"{"ciphertextCrc32c":"4294967295","n":7}"#.utf8))["ciphertextCrc32c"]?.int64, 4_294_967_295,
                       "proto3 int64 as a decimal string")
    }

    func testRefusesMalformedDocuments() {
        let deep = String(repeating: "[", count: 40) + String(repeating: "]", count: 40)
        for bad in ["", "{", "{\"a\":}", "{\"a\" 1}", "[1,]x", "{\"a\":\"\u{01}\"}", "\"\\ud800\"", "\"\\x\"", "nul", "{} {}",
                    "{\"CiphertextBlob\": <html>oops", "01", "1.", "-", "1e", "{\"Plaintext\":\"oops", deep] {
            XCTAssertThrowsError(try JSONValue.parse(Array(bad.utf8), secretMembers: ["Plaintext"]), bad) { e in
                XCTAssertFalse("\(e)".contains("oops"), "errors do not echo content")
            }
            XCTAssertNil(JSONValue.parseIfValid(Array(bad.utf8)), bad)
        }
    }

    func testWriterProducesValidJSON() throws {
        var w = JSONWriter()
        w.beginObject()
        w.key("KeyId"); w.string("alias/\"q\"\\\n\u{01}\u{7F}")
        w.key("Plaintext"); w.base64String(SecretBytes(copying: [UInt8](0..<32)))
        w.key("EncryptionContext"); w.stringMap(["b": "2", "a": "1"])
        w.key("Empty"); w.stringMap([:])
        w.key("n"); w.int(-42)
        w.key("ok"); w.bool(true)
        w.endObject()
        let bytes = w.take()
        let parsed = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        XCTAssertEqual(parsed["KeyId"] as? String, "alias/\"q\"\\\n\u{01}\u{7F}")
        XCTAssertEqual(parsed["Plaintext"] as? String, Data(0..<32).base64EncodedString())
        XCTAssertEqual(parsed["EncryptionContext"] as? [String: String], ["a": "1", "b": "2"])
        XCTAssertEqual((parsed["Empty"] as? [String: String])?.count, 0)
        XCTAssertEqual(parsed["n"] as? Int, -42)
        XCTAssertEqual(parsed["ok"] as? Bool, true)
        XCTAssertEqual(try JSONValue.parse(bytes)["KeyId"]?.text, "alias/\"q\"\\\n\u{01}\u{7F}", "own parser agrees")
        XCTAssertTrue(String(decoding: bytes, as: UTF8.self).contains(#""EncryptionContext":{"a":"1","b":"2"}"#), "sorted, no spaces")
    }

    func testBase64BothAlphabetsAndRejects() {
        for n in 0..<40 {
            let data = (0..<n).map { UInt8(truncatingIfNeeded: $0 * 37 + 11) }
            let std = Base64.encodeString(data)
            XCTAssertEqual(std, Data(data).base64EncodedString())
            XCTAssertEqual(Base64.decode(std), data)
            XCTAssertEqual(Base64.decodeSecret(Array(std.utf8))?.unsafeCopyToArray(), data)
            let url = Base64.encodeString(data, alphabet: .url, padded: false)
            XCTAssertEqual(Base64.decode(url, alphabet: .url), data)
            XCTAssertEqual(Base64.decode(url, alphabet: .either), data)
            if url.contains("-") || url.contains("_") { XCTAssertNil(Base64.decode(url), "standard alphabet refuses - and _") }
            let wrapped = std.enumerated().map { $0.offset % 5 == 4 ? "\($0.element)\n" : "\($0.element)" }.joined()
            XCTAssertEqual(Base64.decode(Array(wrapped.utf8), skipWhitespace: true), data, "PEM line breaks")
        }
        for bad in ["A", "AB=C", "A===", "AB CD", "AB\nCD", "****", "QQ=", "QUJD="] {
            XCTAssertNil(Base64.decode(bad, alphabet: .either), bad)
            XCTAssertNil(Base64.decodeSecret(Array(bad.utf8), alphabet: .either), bad)
        }
    }

    func testBlobFrameRoundTripAndRefusals() throws {
        let root = SecretBytes(copying: [UInt8](repeating: 7, count: 32))
        let context = WrapContext(tokenSerial: "s", tokenUUID: "00000000000000000000000000000001")
        var w = BlobWriter(version: 1)
        w.append(byte: 9)
        try w.append(field: Array("name".utf8))
        try w.append(field: [UInt8](repeating: 0xAB, count: 300))
        XCTAssertThrowsError(try w.append(field: [UInt8]()), "no empty field")
        XCTAssertThrowsError(try w.append(field: [UInt8](repeating: 0, count: 65_536)), "u16 length")
        let blob = try w.sealed(label: Array("TG-TEST-1".utf8) + [0], rootKey: root, context: context)
        XCTAssertEqual(blob.count, 1 + 1 + 2 + 4 + 2 + 300 + 32)
        XCTAssertEqual(Array(blob[2..<4]), [0, 4], "big-endian length")

        var r = try XCTUnwrap(BlobReader(blob, version: 1, macLength: BlobMAC.length))
        XCTAssertEqual(r.byte(), 9)
        XCTAssertEqual(r.textField(), "name")
        XCTAssertEqual(r.prefixRead.count, 8)
        XCTAssertEqual(r.field()?.count, 300)
        XCTAssertTrue(r.isAtEnd)
        XCTAssertNil(r.field(), "nothing past the frame")
        XCTAssertTrue(try r.macVerifies(label: Array("TG-TEST-1".utf8) + [0], rootKey: root, context: context))
        XCTAssertFalse(try r.macVerifies(label: Array("TG-TEST-2".utf8) + [0], rootKey: root, context: context))
        let other = WrapContext(tokenSerial: "s", tokenUUID: "00000000000000000000000000000002")
        XCTAssertFalse(try r.macVerifies(label: Array("TG-TEST-1".utf8) + [0], rootKey: root, context: other), "bound to the token")

        XCTAssertNil(BlobReader(blob, version: 2, macLength: 32), "version")
        XCTAssertNil(BlobReader([1], version: 1), "nothing after the version")
        // Every truncation and every length byte pushed past the end is refused without a trap.
        for cut in 0..<blob.count {
            guard var t = BlobReader(Array(blob[0..<cut]), version: 1, macLength: BlobMAC.length) else { continue }
            let whole = t.byte() != nil && t.field() != nil && t.field() != nil && t.isAtEnd
            XCTAssertFalse(whole, "a blob cut at \(cut) still parses")
        }
        var long = blob
        long[2] = 0xFF
        var t = try XCTUnwrap(BlobReader(long, version: 1, macLength: BlobMAC.length))
        _ = t.byte()
        XCTAssertNil(t.field(), "a length past the frame")
    }
}
