// TokenBackup (docs/storage-format.md, "Backup file"): round trip, and every truncation and every flipped byte of a
// real backup refused with a TokenBackupError (never a crash, never a snapshot).
import CryptoCore
import Foundation
import KeyWrap
@testable import TokenStore
import XCTest

final class TokenBackupTests: XCTestCase {
    /// A token with one sealed object, snapshotted and sealed into a backup file.
    func makeBackup() throws -> (file: [UInt8], snapshot: [UInt8], dir: String) {
        let dir = try tempDir()
        let db = try TokenDatabase(directory: dir + "/live", indexedAttributes: indexed)
        let vault = try TokenVault(database: db, kdfLog2N: TokenVault.minimumKDFLog2N)
        try vault.initialize(soPIN: bytes("so-pin"), label: bytes("backup"), backend: LocalBackend())
        let keys = try vault.login(role: .so, pin: bytes("so-pin"), backend: LocalBackend())
        let secret = SecretBytes(count: 32)
        try db.insert(uniqueID: "obj-1", publicAttributes: [Attr.label: bytes("k")], secretAttributes: [Attr.value: secret],
                      keys: keys)
        try FileManager.default.createDirectory(atPath: dir + "/snap", withIntermediateDirectories: true)
        try TokenBackup.snapshot(db, to: dir + "/snap/token.sqlite")
        let info: TokenBackup.SnapshotInfo = try {
            let snap = try TokenDatabase(directory: dir + "/snap", indexedAttributes: indexed)
            XCTAssertEqual(try snap.integrityCheck(), ["ok"])
            XCTAssertEqual(try snap.verifySealedValues(keys: keys), [])
            return try TokenBackup.describe(snap)
        }()
        let snapshot = [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/snap/token.sqlite")))
        let (file, metadata) = try TokenBackup.seal(snapshot: snapshot, info: info, keys: keys, tokenName: "t", created: 1_800_000_000)
        XCTAssertEqual(metadata.objectCount, 1)
        XCTAssertEqual(metadata.label, "backup")
        XCTAssertEqual(metadata.backend.kind, "local")
        return (file, snapshot, dir)
    }

    func testRoundTripAndWrongPIN() throws {
        let (file, snapshot, dir) = try makeBackup()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let header = try TokenBackup.inspect(file)
        XCTAssertEqual(header.tokenName, "t")
        XCTAssertEqual(header.created, 1_800_000_000)
        let (metadata, opened) = try TokenBackup.open(file, soPIN: bytes("so-pin"))
        XCTAssertEqual(opened, snapshot)
        XCTAssertEqual(metadata, header)
        XCTAssertThrowsError(try TokenBackup.open(file, soPIN: bytes("wrong"))) {
            XCTAssertEqual($0 as? TokenBackupError, .pinIncorrect)
        }
    }

    func testEveryTruncationAndFlipIsRefused() throws {
        let (file, _, dir) = try makeBackup()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for n in stride(from: 0, to: file.count, by: max(1, file.count / 2000)) {
            XCTAssertThrowsError(try TokenBackup.inspect(Array(file.prefix(n))), "prefix \(n)") { e in
                switch e as? TokenBackupError {
                case .damaged?: break
                case .notABackup?: XCTAssertEqual(n, 0)
                default: XCTFail("prefix \(n): \(e)")
                }
            }
        }
        // A flip anywhere is damage (trailer); with the trailer recomputed, the header flips fail later but never open.
        let headerEnd = 14 + Int(file[10]) << 24 + Int(file[11]) << 16 + Int(file[12]) << 8 + Int(file[13])
        for i in 0..<headerEnd + 20 {
            var f = file
            f[i] ^= 0x10
            XCTAssertThrowsError(try TokenBackup.open(f, soPIN: bytes("so-pin")), "byte \(i)")
            var resummed = Array(f.dropLast(32))
            resummed += try Digest.hash(.sha256, resummed)
            XCTAssertThrowsError(try TokenBackup.open(resummed, soPIN: bytes("so-pin")), "byte \(i) with a new trailer") { e in
                XCTAssertTrue(e is TokenBackupError || e is StoreError, "byte \(i): \(e)")
            }
        }
    }
}
