// Issue 13, hygiene at rest: no old sealed value or PIN envelope survives in token.sqlite or its WAL after a destroy,
// a sealed-value update or a PIN change (secure_delete + wal_checkpoint(TRUNCATE)); the store's ownership rule
// (TrustedFile); the one-rename store replacement of `restore --force`. The database stays open throughout, as it
// does in a module: closing the last connection would checkpoint the WAL and hide a missing checkpoint.
import CryptoCore
import Foundation
import KeyWrap
@testable import TokenStore
import XCTest

/// The raw bytes of token.sqlite and token.sqlite-wal (missing file: empty).
func rawStoreFiles(_ db: TokenDatabase) -> [(String, [UInt8])] {
    [db.path, db.path + "-wal"].map { path in
        (path, (try? [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))) ?? [])
    }
}

func occurs(_ needle: [UInt8], in haystack: [UInt8]) -> Bool {
    guard !needle.isEmpty, needle.count <= haystack.count else { return false }
    return haystack.withUnsafeBufferPointer { h in
        (0...(h.count - needle.count)).contains { i in h[i] == needle[0] && Array(h[i..<(i + needle.count)]) == needle }
    }
}

/// Fails naming the file when `needle` (described by `what`) is in token.sqlite or token.sqlite-wal.
func assertGone(_ needle: [UInt8], _ what: String, in db: TokenDatabase, file: StaticString = #filePath, line: UInt = #line) {
    for (path, bytes) in rawStoreFiles(db) {
        XCTAssertFalse(occurs(needle, in: bytes), "\(what) still in \(path) (\(bytes.count) bytes)", file: file, line: line)
    }
}

final class HygieneTests: XCTestCase {
    func openToken(_ dir: String, backend: any KeyWrapBackend = LocalBackend()) throws -> (TokenDatabase, TokenVault) {
        let db = try TokenDatabase(directory: dir, indexedAttributes: indexed)
        let vault = try TokenVault(database: db, kdfLog2N: TokenVault.minimumKDFLog2N)
        return (db, vault)
    }

    func envelope(_ db: TokenDatabase, _ role: Role) throws -> PINEnvelope {
        try XCTUnwrap(try db.withConnection { try $0.loadEnvelope(role) })
    }

    func testDestroyedKeyLeavesNoSealedBytesInDatabaseOrWAL() throws {
        let (db, vault) = try openToken(try tempDir())
        try vault.initialize(soPIN: bytes("so"), label: bytes("wal"), backend: LocalBackend())
        let keys = try vault.login(role: .so, pin: bytes("so"), backend: LocalBackend())
        // Big enough for overflow pages (an N2HE key is 8n bytes), recognisable, and one small AES-sized value.
        let big = (0..<6000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        let small = [UInt8](repeating: 0x5C, count: 16) + bytes("AES-VALUE-MARKER")
        var sealed: [[UInt8]] = []
        for (uid, value) in [("big", big), ("small", small)] {
            let o = try db.insert(uniqueID: uid, publicAttributes: [Attr.label: bytes(uid)],
                                  secretAttributes: [Attr.value: SecretBytes(copying: value)], keys: keys)
            sealed.append(try XCTUnwrap(o.sealedAttributes[Attr.value]).bytes)
        }
        try db.insert(uniqueID: "keeper", publicAttributes: [Attr.label: bytes("keeper")],
                      secretAttributes: [Attr.value: SecretBytes(copying: bytes("another value"))], keys: keys)
        // Sanity of the scan: before the destroy the sealed blobs are on disk (in the WAL).
        XCTAssertTrue(rawStoreFiles(db).contains { occurs(sealed[1], in: $0.1) }, "the scan does not find a live sealed value")

        try db.delete(uniqueID: "big", keys: keys)
        try db.delete(uniqueID: "small", keys: keys)
        for (i, blob) in sealed.enumerated() {
            assertGone(Array(blob.prefix(48)), "sealed value \(i) (head)", in: db)
            assertGone(Array(blob.suffix(48)), "sealed value \(i) (tail)", in: db)
        }
        assertGone(Array(big.prefix(32)), "the big value in clear", in: db)
        assertGone(small, "the small value in clear", in: db)
        XCTAssertEqual(rawStoreFiles(db)[1].1.count, 0, "the WAL is truncated after a destroy")
        // The token still works and still holds the other object.
        XCTAssertEqual(try db.unseal(try XCTUnwrap(try db.object(uniqueID: "keeper")), attribute: Attr.value, keys: keys).unsafeCopyToArray(),
                       bytes("another value"))
        XCTAssertEqual(try sqlite3Shell(db.path, "PRAGMA integrity_check"), "ok")
    }

    func testReplacedSealedValueLeavesNoTrace() throws {
        let (db, vault) = try openToken(try tempDir())
        try vault.initialize(soPIN: bytes("so"), label: bytes("upd"), backend: LocalBackend())
        let keys = try vault.login(role: .so, pin: bytes("so"), backend: LocalBackend())
        let o = try db.insert(uniqueID: "k", publicAttributes: [Attr.label: bytes("k")],
                              secretAttributes: [Attr.value: SecretBytes(copying: bytes("first secret value!"))], keys: keys)
        let old = try XCTUnwrap(o.sealedAttributes[Attr.value]).bytes
        try db.update(uniqueID: "k", publicAttributes: [Attr.label: bytes("k")],
                      secretAttributes: [Attr.value: SecretBytes(copying: bytes("second secret value"))], keys: keys)
        assertGone(Array(old.prefix(48)), "the superseded sealed value", in: db)
    }

    func testPINChangesLeaveNoOldEnvelope() throws {
        let (db, vault) = try openToken(try tempDir())
        try vault.initialize(soPIN: bytes("so-1"), label: bytes("pin"), backend: LocalBackend())
        var keys = try vault.login(role: .so, pin: bytes("so-1"), backend: LocalBackend())
        try vault.initUserPIN(bytes("user-1"), using: keys)

        // C_SetPIN (user)
        var old = try envelope(db, .user)
        try vault.setPIN(role: .user, oldPIN: bytes("user-1"), newPIN: bytes("user-2"), backend: LocalBackend())
        assertGone(old.sealed, "the user envelope sealed under the old PIN (C_SetPIN)", in: db)
        assertGone(old.salt, "the old user envelope's salt (C_SetPIN)", in: db)
        // C_SetPIN (SO)
        old = try envelope(db, .so)
        try vault.setPIN(role: .so, oldPIN: bytes("so-1"), newPIN: bytes("so-2"), backend: LocalBackend())
        assertGone(old.sealed, "the SO envelope sealed under the old SO PIN", in: db)
        // C_InitPIN (the SO resets the user PIN)
        keys = try vault.login(role: .so, pin: bytes("so-2"), backend: LocalBackend())
        old = try envelope(db, .user)
        try vault.initUserPIN(bytes("user-3"), using: keys)
        assertGone(old.sealed, "the user envelope replaced by C_InitPIN", in: db)
        // C_InitToken (re-initialisation: a new SO envelope, no user envelope, no objects)
        try db.insert(uniqueID: "gone", publicAttributes: [:], secretAttributes: [Attr.value: SecretBytes(copying: bytes("wiped"))], keys: keys)
        let sealedObject = try XCTUnwrap(try db.object(uniqueID: "gone")?.sealedAttributes[Attr.value]).bytes
        let oldSO = try envelope(db, .so), oldUser = try envelope(db, .user)
        try vault.initialize(soPIN: bytes("so-2"), label: bytes("again"), backend: LocalBackend())
        assertGone(oldSO.sealed, "the SO envelope of the previous token (C_InitToken)", in: db)
        assertGone(oldUser.sealed, "the user envelope of the previous token (C_InitToken)", in: db)
        assertGone(sealedObject, "an object of the previous token (C_InitToken)", in: db)
        XCTAssertNoThrow(try vault.login(role: .so, pin: bytes("so-2"), backend: LocalBackend()))
    }

    func testCheckpointReportsABlockingReader() throws {
        let dir = try tempDir()
        let (db, vault) = try openToken(dir)
        try vault.initialize(soPIN: bytes("so"), label: bytes("busy"), backend: LocalBackend())
        XCTAssertTrue(db.checkpoint())
        // Another connection in a read transaction: TRUNCATE cannot finish (busy timeout 0 on our side).
        let quick = try TokenDatabase(directory: dir, indexedAttributes: indexed, busyTimeoutMilliseconds: 0)
        let reader = try TokenDatabase(directory: dir, indexedAttributes: indexed)
        try db.setTokenFlags(1)
        try reader.withConnection { conn in
            try conn.readTransaction {
                _ = try conn.loadToken()
                XCTAssertFalse(quick.checkpoint(), "a checkpoint blocked by a reader must say so")
            }
        }
        XCTAssertTrue(quick.checkpoint())
    }

    // MARK: ownership and permissions (TrustedFile, OpenSSH's rule)

    func assertUntrusted(_ dir: String, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try TokenDatabase(directory: dir, indexedAttributes: indexed), file: file, line: line) { error in
            guard case .untrustedStore(let why)? = error as? StoreError else {
                return XCTFail("expected .untrustedStore, got \(error)", file: file, line: line)
            }
            XCTAssertTrue(why.contains(expected), "\(why) lacks \(expected)", file: file, line: line)
            XCTAssertTrue("\(error)".hasPrefix("refusing the token store: "), "\(error)", file: file, line: line)
        }
    }

    func testWhatTheStoreCreatesPassesAndIsPrivate() throws {
        let base = try tempDir()
        let store = base + "/a/b/store"
        _ = try StoreDirectory.prepare(store)
        let (db, vault) = try openToken(store)
        try vault.initialize(soPIN: bytes("so"), label: bytes("modes"), backend: LocalBackend())
        func mode(_ p: String) throws -> Int {
            (try FileManager.default.attributesOfItem(atPath: p)[.posixPermissions] as? NSNumber)?.intValue ?? -1
        }
        for d in [base + "/a", base + "/a/b", store] { XCTAssertEqual(try mode(d), 0o700, d) }
        for f in [db.path, db.path + "-wal", db.path + "-shm"] { XCTAssertEqual(try mode(f), 0o600, f) }
        XCTAssertNil(TokenDatabase.trustProblem(directory: store, database: db.path))
        // Under umask 000 too: nothing the store creates is more open than 0700 / 0600.
        let loose = base + "/loose"
        let saved = umask(0)
        defer { umask(saved) }
        _ = try StoreDirectory.prepare(loose + "/s")
        let db2 = try TokenDatabase(directory: loose + "/s", indexedAttributes: indexed)
        try TokenVault(database: db2, kdfLog2N: TokenVault.minimumKDFLog2N).initialize(soPIN: bytes("so"), label: [], backend: LocalBackend())
        for d in [loose, loose + "/s"] { XCTAssertEqual(try mode(d), 0o700, d) }
        for f in [db2.path, db2.path + "-wal"] { XCTAssertEqual(try mode(f), 0o600, f) }
    }

    func testOpenStoresAreRefused() throws {
        let base = try tempDir()
        // A world-writable store directory (0777), and one with the sticky bit (never excused for the store itself).
        let open = base + "/open"
        _ = try openToken(open)
        chmod(open, 0o777)
        assertUntrusted(open, "\(open) is group- or world-writable (mode 0777")
        chmod(open, 0o1777)
        assertUntrusted(open, "world-writable")
        chmod(open, 0o770)
        assertUntrusted(open, "mode 0770")
        chmod(open, 0o700)
        XCTAssertNoThrow(try TokenDatabase(directory: open, indexedAttributes: indexed))

        // A database file others may write (0666), or its WAL.
        let db = open + "/" + TokenDatabase.fileName
        chmod(db, 0o666)
        assertUntrusted(open, "\(db) is group- or world-writable (mode 0666")
        chmod(db, 0o640)   // group read is fine
        XCTAssertNoThrow(try TokenDatabase(directory: open, indexedAttributes: indexed))
        XCTAssertTrue(FileManager.default.createFile(atPath: db + "-wal", contents: nil))
        chmod(db + "-wal", 0o622)
        assertUntrusted(open, "\(db)-wal is group- or world-writable")
        unlink(db + "-wal")

        // A parent directory others may write (not root-owned sticky like /tmp).
        let parent = base + "/shared"
        let inside = parent + "/store"
        _ = try StoreDirectory.prepare(inside)
        _ = try openToken(inside)
        chmod(parent, 0o777)
        assertUntrusted(inside, "\(parent) is group- or world-writable")
        // ... also when the store is reached through a symlink from a clean place (the resolved path is checked).
        let link = base + "/clean-link"
        XCTAssertEqual(symlink(inside, link), 0)
        assertUntrusted(link, "\(parent) is group- or world-writable")
        XCTAssertTrue((try? TokenDatabase(directory: link, indexedAttributes: indexed)) == nil)
        chmod(parent, 0o755)
        XCTAssertNoThrow(try TokenDatabase(directory: link, indexedAttributes: indexed))

        // Owned by another user (only root can make such a file: CI and `make check` run as root).
        if geteuid() == 0 {
            let foreign = base + "/foreign"
            _ = try openToken(foreign)
            XCTAssertEqual(chown(foreign + "/" + TokenDatabase.fileName, 65534, 65534), 0)
            assertUntrusted(foreign, "is owned by uid 65534, neither root nor the calling user")
            XCTAssertEqual(chown(foreign + "/" + TokenDatabase.fileName, 0, 0), 0)
            XCTAssertEqual(chown(foreign, 65534, 65534), 0)
            assertUntrusted(foreign, "\(foreign) is owned by uid 65534")
        }
    }

    // MARK: restore --force: one rename

    /// A store whose token.sqlite holds token `label` (closed, WAL checkpointed away) and a staged database of
    /// another token beside it (in a private subdirectory, as restore stages it).
    func stores() throws -> (target: String, staged: String, dir: String) {
        let dir = try tempDir()
        do {
            let (_, vault) = try openToken(dir)
            try vault.initialize(soPIN: bytes("so"), label: bytes("old"), backend: LocalBackend())
        }
        let scratch = dir + "/.restore-test"
        do {
            let (_, vault) = try openToken(scratch)
            try vault.initialize(soPIN: bytes("so"), label: bytes("new"), backend: LocalBackend())
        }
        return (dir + "/" + TokenDatabase.fileName, scratch + "/" + TokenDatabase.fileName, dir)
    }

    func label(_ dir: String) throws -> String {
        String(decoding: try TokenDatabase(directory: dir, indexedAttributes: indexed).tokenRecord().label, as: UTF8.self)
            .trimmingCharacters(in: .whitespaces)
    }

    func testReplacementKeepsTheOldDatabaseAsideAndSwapsInOneRename() throws {
        let (target, staged, dir) = try stores()
        var seen: [StoreReplacement.Point] = []
        var labelsSeen: [String] = []
        let aside = try StoreReplacement.replace(target, with: staged, keepAsideStamp: "T1") { point in
            seen.append(point)
            // At every point there is a complete token.sqlite: the old one until the rename, the new one after.
            labelsSeen.append((try? self.label(dir)) ?? "<none>")
            XCTAssertTrue(FileManager.default.fileExists(atPath: target), "no token.sqlite at \(point)")
        }
        XCTAssertEqual(seen, StoreReplacement.Point.allCases)
        XCTAssertEqual(labelsSeen, ["old", "old", "new"])
        XCTAssertEqual(aside, target + ".replaced-T1")
        XCTAssertFalse(FileManager.default.fileExists(atPath: staged))
        // The kept database is the old token, and a second replacement in the same second gets its own name.
        let keptDir = try tempDir()
        try FileManager.default.copyItem(atPath: target + ".replaced-T1", toPath: keptDir + "/" + TokenDatabase.fileName)
        XCTAssertEqual(try label(keptDir), "old")
        let (_, staged2, _) = try stores()
        XCTAssertEqual(try StoreReplacement.replace(target, with: staged2, keepAsideStamp: "T1"), target + ".replaced-T1-2")
        XCTAssertEqual(try label(dir), "new")
    }

    func testReplacementRefusesAStagedFileWithAWAL() throws {
        let (target, staged, dir) = try stores()
        FileManager.default.createFile(atPath: staged + "-wal", contents: Data([1]))
        XCTAssertThrowsError(try StoreReplacement.replace(target, with: staged, keepAsideStamp: "T")) { e in
            XCTAssertTrue("\(e)".contains("still has a WAL"), "\(e)")
        }
        XCTAssertEqual(try label(dir), "old")
        XCTAssertFalse(FileManager.default.fileExists(atPath: target + ".replaced-T"))
    }
}
