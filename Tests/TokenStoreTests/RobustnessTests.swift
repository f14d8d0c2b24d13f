import CryptoCore
import Foundation
import KeyWrap
@testable import TokenStore
import XCTest

/// Garbage in → typed error out, never a trap (these parsers read bytes from a file an attacker may edit).
final class RobustnessTests: XCTestCase {
    func testRecordCodecRoundTripAndGarbage() throws {
        let attrs: [UInt: [UInt8]] = [0: [4, 0, 0, 0, 0, 0, 0, 0], 3: Array("label".utf8), 0x102: [], UInt.max: [1, 2, 3]]
        XCTAssertEqual(try RecordCodec.decode(try RecordCodec.encode(attrs)), attrs)
        XCTAssertEqual(try RecordCodec.decode(try RecordCodec.encode([:])), [:])
        var rng = SystemRandomNumberGenerator()
        let valid = try RecordCodec.encode(attrs)
        for i in 0..<5000 {
            var junk: [UInt8]
            if i % 2 == 0 {
                junk = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                if !junk.isEmpty { junk[0] = 1 }
            } else {
                junk = valid
                junk[Int.random(in: 0..<junk.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                junk = Array(junk.prefix(Int.random(in: 0...junk.count, using: &rng)))
            }
            _ = try? RecordCodec.decode(junk)
        }
        XCTAssertThrowsError(try RecordCodec.decode([1, 0xff, 0xff, 0xff, 0xff]))
        XCTAssertThrowsError(try RecordCodec.decode(valid + [0]))
    }

    func testUnsealAndLocalUnwrapOfGarbage() throws {
        let keys = SessionKeys(role: .user, tokenUUID: "u", rootKey: try SecretBytes.random(count: 32),
                               envelopeKey: try SecretBytes.random(count: 32))
        let good = try keys.seal([UInt8](repeating: 7, count: 32), uniqueID: "o", attribute: 0x11)
        XCTAssertEqual(try keys.unseal(good, uniqueID: "o", attribute: 0x11).unsafeCopyToArray(), [UInt8](repeating: 7, count: 32))
        let ctx = WrapContext(tokenSerial: "S", tokenUUID: "U")
        for n in 0..<80 {
            let junk = try SecureRandom.bytes(n)
            XCTAssertThrowsError(try keys.unseal(SealedValue(bytes: junk), uniqueID: "o", attribute: 0x11))
            XCTAssertThrowsError(try LocalBackend().unwrap(junk, context: ctx))
            var bent = good.bytes
            if n < bent.count { bent[n] ^= 0x80 }
            if n < bent.count { XCTAssertThrowsError(try keys.unseal(SealedValue(bytes: bent), uniqueID: "o", attribute: 0x11)) }
        }
        // Same value, same object/attribute, two seals: different nonces, different bytes.
        XCTAssertNotEqual(try keys.seal([1], uniqueID: "o", attribute: 1), try keys.seal([1], uniqueID: "o", attribute: 1))
    }

    func testNotATokenDatabase() throws {
        let dir = try tempDir()
        FileManager.default.createFile(atPath: dir + "/token.sqlite", contents: Data(repeating: 0x41, count: 8192))
        XCTAssertThrowsError(try TokenDatabase(directory: dir, indexedAttributes: [])) { error in
            guard case .corrupt? = error as? StoreError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try TokenDatabase(directory: "", indexedAttributes: []))
    }

    /// A failure the operating system caused says which errno (here: the WAL file cannot be created).
    func testOpenFailuresNameTheSystemError() throws {
        let dir = try tempDir()
        try FileManager.default.createDirectory(atPath: dir + "/token.sqlite-wal", withIntermediateDirectories: false)
        XCTAssertThrowsError(try TokenDatabase(directory: dir, indexedAttributes: [])) { error in
            guard case .database(_, let message)? = error as? StoreError else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("errno \(EISDIR)"), message)
        }
    }
}
