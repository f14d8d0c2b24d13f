// TokenAnchor: the second location of a token's generation and retry counters (docs/storage-format.md §Rollback).
import Foundation
import XCTest
@testable import TokenStore

final class AnchorTests: XCTestCase {
    let uuid = "0123456789abcdef0123456789abcdef"

    func state(_ g: Int64, mac: UInt8 = 1, so: Int = 0, user: Int = 0) -> TokenAnchor.State {
        TokenAnchor.State(generation: g, stateMAC: [UInt8](repeating: mac, count: 32), soFailed: so, userFailed: user)
    }

    func testRecordsOnlyForwardAndSurvivesATornSlot() throws {
        let dir = try tempDir() + "/anchors"
        let anchor = TokenAnchor(directory: dir)
        XCTAssertNil(try anchor.read(uuid))
        try anchor.record(uuid, state(5, mac: 5))
        try anchor.record(uuid, state(7, mac: 7, user: 2))
        XCTAssertEqual(try anchor.read(uuid), state(7, mac: 7, user: 2))
        // A lower generation (a lagging writer) keeps the recorded one and its MAC; the counters are taken.
        try anchor.record(uuid, state(6, mac: 6, so: 1))
        XCTAssertEqual(try anchor.read(uuid), state(7, mac: 7, so: 1))
        // Another process (another instance) reads the same.
        XCTAssertEqual(try TokenAnchor(directory: dir).read(uuid), state(7, mac: 7, so: 1))
        // A write cut short leaves the slot before it: corrupt the slot written last.
        try anchor.record(uuid, state(9, mac: 9))
        let path = dir + "/" + uuid
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertEqual(bytes.count, 2 * TokenAnchor.slotSize)
        let last = bytes[8..<16] == [0, 0, 0, 0, 0, 0, 0, 9] ? 0 : 1
        bytes[last * TokenAnchor.slotSize + 40] ^= 0xff
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try TokenAnchor(directory: dir).read(uuid), state(7, mac: 7, so: 1))
        // replace() may go back (an SO's acceptance); another token's UUID names no state in this file.
        try anchor.replace(uuid, state(3))
        XCTAssertEqual(try anchor.read(uuid)?.generation, 3)
        XCTAssertNil(try anchor.read("ffffffffffffffffffffffffffffffff"))
        XCTAssertNil(try anchor.read("../not-a-uuid"))
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int, 0o600)
    }

    func testUntrustedAnchorDirectoryIsRefused() throws {
        let dir = try tempDir() + "/anchors"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(dir, 0o777)
        XCTAssertThrowsError(try TokenAnchor(directory: dir).record(uuid, state(1))) { error in
            guard case .untrustedStore? = error as? StoreError else { return XCTFail("\(error)") }
        }
    }
}
