import CryptoCore
import KeyWrap
import XCTest

final class KeyWrapTests: XCTestCase {
    let ctx = WrapContext(tokenSerial: "0123456789ABCDEF", tokenUUID: "00112233445566778899aabbccddeeff")

    func testLocalRoundTripAndBinding() throws {
        let backend = LocalBackend()
        XCTAssertEqual(backend.descriptor, BackendDescriptor(kind: "local"))
        let root = try SecretBytes.random(count: 32)
        let blob = try backend.wrap(root, context: ctx)
        XCTAssertEqual(blob.first, 1)
        XCTAssertEqual(try backend.unwrap(blob, context: ctx), root)

        let other = WrapContext(tokenSerial: "0123456789ABCDEF", tokenUUID: "ffffffffffffffffffffffffffffffff")
        XCTAssertThrowsError(try backend.unwrap(blob, context: other)) { XCTAssertEqual($0 as? KeyWrapError, .integrityFailure) }
        for i in [0, 1, 5, blob.count - 1] {
            var bad = blob
            bad[i] ^= 1
            XCTAssertThrowsError(try backend.unwrap(bad, context: ctx)) { XCTAssertEqual($0 as? KeyWrapError, .integrityFailure) }
        }
        XCTAssertThrowsError(try backend.unwrap([], context: ctx))
        XCTAssertThrowsError(try backend.unwrap(Array(blob.dropLast()), context: ctx))
        XCTAssertNoThrow(try backend.checkHealth())
    }

    func testContextAADIsUnambiguous() {
        let a = WrapContext(tokenSerial: "AB", tokenUUID: "C").aad
        let b = WrapContext(tokenSerial: "A", tokenUUID: "BC").aad
        XCTAssertNotEqual(a, b)
        XCTAssertEqual(WrapContext(tokenSerial: "S", tokenUUID: "U").encryptionContext["tg-token-serial"], "S")
    }

    func testFactoryRegistry() throws {
        XCTAssertTrue(BackendFactory.kinds.contains("local"))
        let b = try BackendFactory.make(.default)
        XCTAssertEqual(b.descriptor.kind, "local")
        XCTAssertThrowsError(try BackendFactory.make(BackendConfiguration(kind: "nope"))) { error in
            guard case .misconfigured(let m)? = error as? KeyWrapError else { return XCTFail("\(error)") }
            XCTAssertTrue(m.contains("nope"))
        }
        BackendFactory.register(kind: "test-local") { _ in LocalBackend() }
        XCTAssertEqual(try BackendFactory.make(BackendConfiguration(kind: "test-local")).descriptor.kind, "local")
    }

    func testErrorMessagesCarryNoSecrets() {
        XCTAssertEqual(KeyWrapError.integrityFailure.description, "wrapped root key failed its integrity check")
        XCTAssertTrue(KeyWrapError.unreachable("timeout after 5 s").description.contains("timeout"))
    }
}
