import CryptoCore
import Foundation
import KeyWrap
@testable import TokenStore
import XCTest

final class ObjectTests: XCTestCase {
    let so = bytes("so-pin")
    let user = bytes("user-pin")

    /// An initialised token with a user PIN; returns the database, user keys and directory.
    func makeToken() throws -> (TokenDatabase, SessionKeys, String) {
        let dir = try tempDir()
        let db = try TokenDatabase(directory: dir, indexedAttributes: indexed)
        let vault = try TokenVault(database: db, kdfLog2N: TokenVault.minimumKDFLog2N)
        try vault.initialize(soPIN: so, label: bytes("objects"), backend: LocalBackend())
        try vault.initUserPIN(user, using: try vault.login(role: .so, pin: so, backend: LocalBackend()))
        return (db, try vault.login(role: .user, pin: user, backend: LocalBackend()), dir)
    }

    func key(_ label: String, id: [UInt8] = [1], cls: UInt8 = 4) -> [UInt: [UInt8]] {
        [Attr.cls: [cls, 0, 0, 0, 0, 0, 0, 0], Attr.label: bytes(label), Attr.id: id, Attr.keyType: [0x1f]]
    }

    func testInsertReadUpdateDeleteAndUnseal() throws {
        let (db, keys, _) = try makeToken()
        let secret = SecretBytes(copying: bytes("0123456789ABCDEF0123456789ABCDEF"))
        let uid = try TokenDatabase.newUniqueID()
        XCTAssertEqual(uid.count, 32)
        let stored = try db.insert(uniqueID: uid, publicAttributes: key("aes"), secretAttributes: [Attr.value: secret], keys: keys)
        XCTAssertEqual(stored.publicAttributes[Attr.label], bytes("aes"))
        XCTAssertNil(stored.publicAttributes[Attr.value])
        XCTAssertNotNil(stored.sealedAttributes[Attr.value])
        let fetched = try XCTUnwrap(try db.object(uniqueID: uid))
        XCTAssertEqual(fetched, stored)
        XCTAssertEqual(try db.unseal(fetched, attribute: Attr.value, keys: keys), secret)
        XCTAssertThrowsError(try db.unseal(fetched, attribute: Attr.label, keys: keys))

        assertStoreError(.duplicateObject(uid)) { try db.insert(uniqueID: uid, publicAttributes: [:], keys: keys) }
        assertStoreError(.notLoggedIn) {
            try db.insert(uniqueID: "x", publicAttributes: [:], secretAttributes: [Attr.value: secret], keys: nil)
        }
        XCTAssertThrowsError(try db.insert(uniqueID: "", publicAttributes: [:], keys: nil))
        XCTAssertThrowsError(try db.insert(uniqueID: "y", publicAttributes: [Attr.value: [1]], secretAttributes: [Attr.value: secret], keys: keys))
        // A public-only token object needs no login.
        try db.insert(uniqueID: "data1", publicAttributes: [Attr.cls: [0, 0, 0, 0, 0, 0, 0, 0], Attr.label: bytes("d")], keys: nil)

        // An authenticated row cannot be rewritten without the login (its MAC needs the root key) …
        var newPublic = stored.publicAttributes
        newPublic[Attr.label] = bytes("renamed")
        assertStoreError(.notLoggedIn) { try db.update(uniqueID: uid, publicAttributes: newPublic, secretAttributes: nil, keys: nil) }
        // … with it, a label change keeps the sealed value.
        let renamed = try db.update(uniqueID: uid, publicAttributes: newPublic, secretAttributes: nil, keys: keys)
        XCTAssertEqual(renamed.sealedAttributes, stored.sealedAttributes)
        XCTAssertGreaterThan(renamed.sequence, stored.sequence)
        XCTAssertEqual(try db.find(matching: [Attr.label: bytes("aes")]), [])
        XCTAssertEqual(try db.find(matching: [Attr.label: bytes("renamed")]).map(\.uniqueID), [uid])
        XCTAssertEqual(try db.unseal(try XCTUnwrap(db.object(uniqueID: uid)), attribute: Attr.value, keys: keys), secret)
        // Replacing the secret set re-seals.
        let secret2 = SecretBytes(copying: bytes("fedcba9876543210"))
        let resealed = try db.update(uniqueID: uid, publicAttributes: newPublic, secretAttributes: [Attr.value: secret2], keys: keys)
        XCTAssertEqual(try db.unseal(resealed, attribute: Attr.value, keys: keys), secret2)
        assertStoreError(.objectNotFound("nope")) { try db.update(uniqueID: "nope", publicAttributes: [:], secretAttributes: nil, keys: nil) }

        try db.delete(uniqueID: uid, keys: keys)
        XCTAssertNil(try db.object(uniqueID: uid))
        XCTAssertEqual(try db.find(matching: [Attr.label: bytes("renamed")]), [])
        assertStoreError(.objectNotFound(uid)) { try db.delete(uniqueID: uid, keys: keys) }
        XCTAssertEqual(try db.objectCount(), 1)
    }

    func testPersistsAcrossReopen() throws {
        let (db, keys, dir) = try makeToken()
        let secret = try SecretBytes.random(count: 32)
        try db.insert(uniqueID: "persist", publicAttributes: key("p"), secretAttributes: [Attr.value: secret], keys: keys)
        let reopened = try TokenDatabase(directory: dir, indexedAttributes: indexed)
        let vault = try TokenVault(database: reopened, kdfLog2N: TokenVault.minimumKDFLog2N)
        let keys2 = try vault.login(role: .user, pin: user, backend: LocalBackend())
        let obj = try XCTUnwrap(try reopened.find(matching: [Attr.label: bytes("p")]).first)
        XCTAssertEqual(try reopened.unseal(obj, attribute: Attr.value, keys: keys2), secret)
    }

    /// The raw database files never contain a secret value, while a public value is found (proving the scan works).
    func testSecretAttributesAreSealedAtRest() throws {
        let (db, keys, dir) = try makeToken()
        let marker = bytes("SECRET-MARKER-") + [0xde, 0xad, 0xbe, 0xef, 0x42, 0x42, 0x42, 0x42] + bytes("-END!")
        let publicMarker = bytes("PUBLIC-LABEL-MARKER")
        for i in 0..<20 {
            try db.insert(uniqueID: "k\(i)", publicAttributes: [Attr.label: publicMarker + [UInt8(i)]],
                          secretAttributes: [Attr.value: SecretBytes(copying: marker)], keys: keys)
        }
        try db.delete(uniqueID: "k3", keys: keys)
        func fileContains(_ needle: [UInt8]) throws -> Bool {
            var found = false
            for name in ["token.sqlite", "token.sqlite-wal"] {
                guard let data = FileManager.default.contents(atPath: dir + "/" + name) else { continue }
                let hay = [UInt8](data)
                if hay.count >= needle.count {
                    for i in 0...(hay.count - needle.count) where hay[i] == needle[0] {
                        if Array(hay[i..<(i + needle.count)]) == needle { found = true; break }
                    }
                }
            }
            return found
        }
        XCTAssertTrue(try fileContains(publicMarker), "scan must find the public label")
        XCTAssertFalse(try fileContains(marker), "secret value found in clear in the database files")
        XCTAssertFalse(try fileContains(Array(marker[0..<16])))
        // The PINs are not stored either.
        XCTAssertFalse(try fileContains(user))
        XCTAssertFalse(try fileContains(so))
        let attrs = try FileManager.default.attributesOfItem(atPath: db.path)
        XCTAssertEqual((attrs[.posixPermissions] as? NSNumber)?.intValue, 0o600)
    }

    func testSwappedOrMovedSealedValuesFail() throws {
        let (db, keys, _) = try makeToken()
        let a = SecretBytes(copying: bytes("aaaaaaaaaaaaaaaa")), b = SecretBytes(copying: bytes("bbbbbbbbbbbbbbbb"))
        try db.insert(uniqueID: "A", publicAttributes: key("A"), secretAttributes: [Attr.value: a], keys: keys)
        try db.insert(uniqueID: "B", publicAttributes: key("B"), secretAttributes: [Attr.value: b, 0x7777: a], keys: keys)
        // Swap the sealed columns in another process.
        try sqlite3Shell(db.path, """
            BEGIN IMMEDIATE;
            CREATE TEMP TABLE s AS SELECT unique_id, sealed_attrs FROM objects;
            UPDATE objects SET seq = (SELECT max(seq) + 1 FROM s JOIN objects USING (unique_id)),
                sealed_attrs = (SELECT sealed_attrs FROM s WHERE s.unique_id = CASE objects.unique_id WHEN 'A' THEN 'B' ELSE 'A' END);
            COMMIT;
            """)
        let objA = try XCTUnwrap(try db.object(uniqueID: "A"))
        XCTAssertNotNil(objA.sealedAttributes[0x7777], "change from the other process is visible")
        // The row no longer matches its MAC: nothing of it is opened.
        assertTampered { _ = try db.unseal(objA, attribute: Attr.value, keys: keys) }
        // And the sealed values themselves are bound to their object and type: B now holds A's, which opens as neither B's value nor another type.
        let objB = try XCTUnwrap(try db.object(uniqueID: "B"))
        let moved = try XCTUnwrap(objB.sealedAttributes[Attr.value])
        assertStoreError(.integrityFailure) { _ = try keys.unseal(moved, uniqueID: "B", attribute: 0x7777) }
        assertStoreError(.integrityFailure) { _ = try keys.unseal(moved, uniqueID: "B", attribute: Attr.value) }
        // Truncated value.
        assertStoreError(.integrityFailure) {
            _ = try keys.unseal(SealedValue(bytes: Array(moved.bytes.prefix(20))), uniqueID: "A", attribute: Attr.value)
        }
        // A record not read from the store is never unsealed.
        let forged = StoredObject(uniqueID: "B", publicAttributes: [:], sealedAttributes: [0x7777: moved])
        assertTampered { _ = try db.unseal(forged, attribute: 0x7777, keys: keys) }
    }

    func testFindUsesIndexesAndKeepsCreationOrder() throws {
        let (db, keys, _) = try makeToken()
        for i in 0..<300 {
            try db.insert(uniqueID: String(format: "u%04d", i), publicAttributes: key("label-\(i % 100)", id: [UInt8(i % 7)], cls: UInt8(i % 3)),
                          keys: keys)
        }
        XCTAssertEqual(try db.find(matching: [:]).count, 300)
        XCTAssertEqual(try db.allObjects().map(\.uniqueID), (0..<300).map { String(format: "u%04d", $0) })
        let byLabel = try db.find(matching: [Attr.label: bytes("label-42")])
        XCTAssertEqual(byLabel.map(\.uniqueID), ["u0042", "u0142", "u0242"])
        let byLabelAndID = try db.find(matching: [Attr.label: bytes("label-42"), Attr.id: [UInt8(142 % 7)]])
        XCTAssertEqual(byLabelAndID.map(\.uniqueID), ["u0142"])
        // Non-indexed attribute only: scan path.
        XCTAssertEqual(try db.find(matching: [Attr.keyType: [0x1f]]).count, 300)
        XCTAssertEqual(try db.find(matching: [Attr.keyType: [0x1f], Attr.label: bytes("label-1")]).count, 3)
        XCTAssertEqual(try db.find(matching: [Attr.label: bytes("absent")]), [])
        XCTAssertEqual(try db.find(matching: [Attr.label: bytes("label-1"), 0x9999: [1]]), [])
        let cls1 = try db.find(matching: [Attr.cls: [1, 0, 0, 0, 0, 0, 0, 0]])
        XCTAssertEqual(cls1.count, 100)
        XCTAssertEqual(cls1.map(\.uniqueID), cls1.map(\.uniqueID).sorted())
        // The index follows updates and deletes.
        try db.update(uniqueID: "u0042", publicAttributes: key("moved"), secretAttributes: nil, keys: keys)
        try db.delete(uniqueID: "u0142", keys: keys)
        XCTAssertEqual(try db.find(matching: [Attr.label: bytes("label-42")]).map(\.uniqueID), ["u0242"])
        XCTAssertEqual(try db.find(matching: [Attr.label: bytes("moved")]).map(\.uniqueID), ["u0042"])
    }

    /// Two connections to one file (as two processes would have) see each other's commits.
    func testTwoInstancesSeeEachOthersCommits() throws {
        let (db1, keys, dir) = try makeToken()
        let db2 = try TokenDatabase(directory: dir, indexedAttributes: indexed)
        XCTAssertEqual(try db2.objectCount(), 0)
        try db1.insert(uniqueID: "one", publicAttributes: key("shared"), secretAttributes: [Attr.value: SecretBytes(count: 16)], keys: keys)
        XCTAssertEqual(try db2.find(matching: [Attr.label: bytes("shared")]).map(\.uniqueID), ["one"])
        try db2.update(uniqueID: "one", publicAttributes: key("changed"), secretAttributes: nil, keys: keys)
        XCTAssertEqual(try db1.find(matching: [Attr.label: bytes("changed")]).map(\.uniqueID), ["one"])
        XCTAssertEqual(try db1.find(matching: [Attr.label: bytes("shared")]), [])
        try db2.insert(uniqueID: "two", publicAttributes: key("second"), keys: nil)
        try db1.delete(uniqueID: "one", keys: keys)
        XCTAssertEqual(try db2.allObjects().map(\.uniqueID), ["two"])
        XCTAssertEqual(try db1.allObjects().map(\.uniqueID), ["two"])
        // Token flags written by one are read by the other.
        try db1.setTokenFlags(0x40)
        XCTAssertEqual(try db2.tokenRecord().flags, 0x40)
        // Re-initialisation through the other instance empties the first one's mirror.
        let vault2 = try TokenVault(database: db2, kdfLog2N: TokenVault.minimumKDFLog2N)
        try vault2.initialize(soPIN: so, label: [], backend: LocalBackend())
        XCTAssertEqual(try db1.objectCount(), 0)
        XCTAssertFalse(try db1.tokenRecord().userPIN.isSet)
    }

    /// A real second process (the sqlite3 shell, spawned) writes a row; the next call here sees it.
    func testCommitFromAnotherProcessIsSeen() throws {
        let (db, _, _) = try makeToken()
        XCTAssertEqual(try db.objectCount(), 0)
        let pub = try RecordCodec.encode([Attr.label: bytes("from-shell"), Attr.cls: [0, 0, 0, 0, 0, 0, 0, 0]])
        let sealed = try RecordCodec.encode([:])
        try sqlite3Shell(db.path, """
            BEGIN IMMEDIATE;
            INSERT INTO objects (unique_id, created, seq, public_attrs, sealed_attrs)
                VALUES ('shell', 1000, 1000, x'\(hexOf(pub))', x'\(hexOf(sealed))');
            COMMIT;
            """)
        XCTAssertEqual(try db.find(matching: [Attr.label: bytes("from-shell")]).map(\.uniqueID), ["shell"])
        try sqlite3Shell(db.path, "BEGIN IMMEDIATE; DELETE FROM objects WHERE unique_id = 'shell'; INSERT INTO tombstones VALUES (1001, 'shell'); COMMIT;")
        XCTAssertEqual(try db.find(matching: [Attr.label: bytes("from-shell")]), [])
    }

    func testConcurrentWritersOnTwoConnections() throws {
        let (db1, keys, dir) = try makeToken()
        let db2 = try TokenDatabase(directory: dir, indexedAttributes: indexed)
        let attrs = (0..<8).map { key("w\($0)") }
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            let db = worker % 2 == 0 ? db1 : db2
            for i in 0..<25 {
                do {
                    try db.insert(uniqueID: "w\(worker)-\(i)", publicAttributes: attrs[worker],
                                  secretAttributes: [Attr.value: SecretBytes(count: 16)], keys: keys)
                } catch {
                    XCTFail("insert failed: \(error)")
                }
            }
        }
        XCTAssertEqual(try db1.objectCount(), 200)
        XCTAssertEqual(try db2.objectCount(), 200)
        XCTAssertEqual(try db2.find(matching: [Attr.label: bytes("w3")]).count, 25)
        XCTAssertEqual(try sqlite3Shell(db1.path, "SELECT count(*) FROM objects"), "200")
    }

    func testNewerFormatIsRefused() throws {
        let (db, _, dir) = try makeToken()
        try sqlite3Shell(db.path, "UPDATE schema_version SET version = 99")
        XCTAssertThrowsError(try TokenDatabase(directory: dir, indexedAttributes: indexed)) { error in
            XCTAssertEqual(error as? StoreError, .unsupportedFormat(99))
        }
    }

    func testAbandonAfterFork() throws {
        let (db, _, _) = try makeToken()
        db.abandonAfterFork()
        XCTAssertThrowsError(try db.objectCount())
    }

    /// A reader that falls behind the tombstone window reloads fully and ends up exact.
    func testReaderBehindPrunedTombstonesReloads() throws {
        let (db1, _, dir) = try makeToken()
        let db2 = try TokenDatabase(directory: dir, indexedAttributes: indexed)
        try db1.insert(uniqueID: "keep", publicAttributes: key("keep"), keys: nil)
        XCTAssertEqual(try db2.objectCount(), 1)
        // 3600 × (insert, delete): at change number 7168 the tombstones up to 3072 are pruned, i.e. the first
        // ~1500 deletions are no longer recorded — db2 (at position 1) must notice and reload fully.
        for i in 0..<3600 {
            try db1.insert(uniqueID: "t\(i)", publicAttributes: key("t"), keys: nil)
            try db1.delete(uniqueID: "t\(i)", keys: nil)
        }
        try db1.insert(uniqueID: "late", publicAttributes: key("late"), keys: nil)
        let pruned = try sqlite3Shell(db1.path, "SELECT pruned_seq > 1, (SELECT count(*) FROM tombstones) < 3600 FROM token")
        XCTAssertEqual(pruned, "1|1", "tombstones were pruned")
        XCTAssertEqual(try db2.allObjects().map(\.uniqueID), ["keep", "late"])
        XCTAssertEqual(try db2.find(matching: [Attr.label: bytes("t")]), [])
    }

    /// Change numbers that go backwards (the database rolled back or restored under a running process: here the
    /// newest rows removed behind its back) make the next refresh a full reload, so no row the database no longer
    /// holds stays in the mirror.
    func testChangeNumbersGoingBackwardsReloadTheMirror() throws {
        let (db1, _, dir) = try makeToken()
        let db2 = try TokenDatabase(directory: dir, indexedAttributes: indexed)
        try db1.insert(uniqueID: "old", publicAttributes: key("old"), keys: nil)
        try db1.insert(uniqueID: "new", publicAttributes: key("new"), keys: nil)
        XCTAssertEqual(try db2.allObjects().map(\.uniqueID), ["old", "new"])
        try sqlite3Shell(db1.path, "DELETE FROM objects WHERE unique_id = 'new'")
        XCTAssertEqual(try db2.allObjects().map(\.uniqueID), ["old"])
        XCTAssertEqual(try db2.find(matching: [Attr.label: bytes("new")]), [])
    }
}
