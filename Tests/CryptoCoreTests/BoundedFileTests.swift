// The one whole-file reader: regular files only, size bounded before allocation, secrets into SecretBytes,
// the caller's check of the open file, every failure a case (never a trap).
import CryptoCore
import Foundation
import XCTest

final class BoundedFileTests: XCTestCase {
    func testReadsAndRefuses() throws {
        let dir = NSTemporaryDirectory() + "bounded-file-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/f"
        let content = (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        FileManager.default.createFile(atPath: path, contents: Data(content))

        XCTAssertEqual(try BoundedFile.read(path, limit: 1000), content)
        XCTAssertEqual(try BoundedFile.readSecret(path, limit: 4096).unsafeCopyToArray(), content)
        XCTAssertEqual(try BoundedFile.readSecret(path, limit: 4096).prefix(10).unsafeCopyToArray(), Array(content.prefix(10)))
        FileManager.default.createFile(atPath: dir + "/empty", contents: Data())
        XCTAssertEqual(try BoundedFile.read(dir + "/empty", limit: 10), [])

        func failure(_ body: () throws -> Any) -> BoundedFile.Failure? {
            do { _ = try body(); return nil } catch { return error as? BoundedFile.Failure }
        }
        XCTAssertEqual(failure { try BoundedFile.read(path, limit: 999) }, .tooLarge(limit: 999))
        XCTAssertEqual(failure { try BoundedFile.read(dir + "/missing", limit: 10) }, .missing)
        XCTAssertEqual(failure { try BoundedFile.read(dir + "/missing/below", limit: 10) }, .missing)
        XCTAssertEqual(failure { try BoundedFile.read(dir, limit: 10) }, .notRegularFile)
        XCTAssertEqual(failure { try BoundedFile.read("/dev/zero", limit: 10) }, .notRegularFile, "no endless read")
        XCTAssertEqual(failure {
            try BoundedFile.readSecret(path, limit: 4096) { info in
                if info.st_mode & 0o077 != 0 { throw BoundedFile.Failure.refused("group or world can read it") }
            }
        }, .refused("group or world can read it"), "the check sees the open file's mode (0644 here)")
        chmod(path, 0o600)
        XCTAssertEqual(try BoundedFile.readSecret(path, limit: 4096) { info in
            if info.st_mode & 0o077 != 0 { throw BoundedFile.Failure.refused("group or world can read it") }
        }.count, 1000)
        XCTAssertTrue("\(BoundedFile.Failure.tooLarge(limit: 5))".contains("larger than 5 bytes"))
    }
}
