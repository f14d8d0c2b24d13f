// The pkcs11 backend as the keeper of a token's anchor (TokenStore/TokenAnchor.swift, KeyWrap/PKCS11/
// PKCS11Backend+Anchor.swift), on a real SoftHSM2 token.
import CP11Kit
import Foundation
import XCTest
@testable import TokenStore
import KeyWrap

final class BackendAnchorTests: XCTestCase {
    func testSoftHSMKeepsOneAnchorObjectAndTheNewerStateWins() throws {
        let hsm = try HygieneHSM()
        let backend = try BackendFactory.make(BackendConfiguration(kind: "pkcs11", options: hsm.options))
        let holder = try XCTUnwrap(backend as? any AnchorHoldingBackend)
        let uuid = "0123456789abcdef0123456789abcdef"
        XCTAssertEqual(try holder.readAnchor(tokenUUID: uuid), [])
        try holder.updateAnchor(tokenUUID: uuid) { _ in [1, 2, 3] }
        try holder.updateAnchor(tokenUUID: uuid) { current in
            XCTAssertEqual(current, [[1, 2, 3]])
            return [4, 5]
        }
        XCTAssertEqual(try holder.readAnchor(tokenUUID: uuid), [[4, 5]], "the replaced value is gone")

        func state(_ g: Int64) -> TokenAnchor.State {
            TokenAnchor.State(generation: g, stateMAC: [UInt8](repeating: UInt8(g), count: 32), soFailed: 0, userFailed: Int(g % 3))
        }
        let dir = NSTemporaryDirectory() + "backend-anchor-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let anchor = TokenAnchor(directory: dir, backend: holder)
        try anchor.record(uuid, state(4))
        try anchor.record(uuid, state(8))
        XCTAssertEqual(try anchor.read(uuid), state(8))
        // The file rolled back (or gone): the HSM's value still says 8, and a later lower write does not lower it.
        try FileManager.default.removeItem(atPath: dir)
        let fresh = TokenAnchor(directory: dir, backend: holder)
        XCTAssertEqual(try fresh.read(uuid)?.generation, 8)
        try fresh.record(uuid, state(5))
        XCTAssertEqual(try TokenAnchor(directory: dir, backend: holder).read(uuid)?.generation, 8)
        XCTAssertEqual(try holder.readAnchor(tokenUUID: uuid).count, 1)
    }
}
