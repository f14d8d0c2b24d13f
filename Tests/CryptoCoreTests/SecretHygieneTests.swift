// The zeroisation helpers really zero (issue 13 "Secrets in memory"): secureZero on raw memory and on arrays,
// SecretBytes.wipe, the locked arena's wipe on release (C: tg_secure_free → OPENSSL_cleanse), secureAppend.
import CryptoCore
import XCTest

final class SecretHygieneTests: XCTestCase {
    private func allZero(_ p: UnsafeRawPointer, _ n: Int) -> Bool {
        UnsafeRawBufferPointer(start: p, count: n).allSatisfy { $0 == 0 }
    }

    func testSecureZeroRawMemory() {
        let n = 100
        let p = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 16)
        defer { p.deallocate() }
        p.initializeMemory(as: UInt8.self, repeating: 0xA5, count: n)
        secureZero(p + 10, count: 50)
        let b = UnsafeRawBufferPointer(start: p, count: n)
        XCTAssertTrue(b[0..<10].allSatisfy { $0 == 0xA5 }, "bytes before the range untouched")
        XCTAssertTrue(b[10..<60].allSatisfy { $0 == 0 })
        XCTAssertTrue(b[60...].allSatisfy { $0 == 0xA5 }, "bytes after the range untouched")
        secureZero(nil, count: 5)        // no-ops, no trap
        secureZero(p, count: -1)
        XCTAssertEqual(b[0], 0xA5)
        secureZero(UnsafeMutableRawBufferPointer(start: p, count: n))
        XCTAssertTrue(allZero(p, n))
    }

    func testSecureZeroArrayZeroesItsStorage() {
        var bytes = [UInt8](repeating: 0x5A, count: 64)
        let capacity = bytes.capacity
        let base = bytes.withUnsafeBytes { $0.baseAddress! }
        secureZero(&bytes, keepingCapacity: true)
        XCTAssertTrue(bytes.isEmpty)
        XCTAssertEqual(bytes.capacity, capacity)
        // The same storage, still allocated (capacity kept): it reads zero.
        XCTAssertEqual(bytes.withUnsafeBytes { _ in base }, base)
        XCTAssertTrue(allZero(base, 64))
    }

    func testSecretBytesWipeAndCopyingRawMemory() {
        let source: [UInt8] = Array(1...40)
        let s = source.withUnsafeBytes { SecretBytes(copying: $0) }
        XCTAssertEqual(s.count, 40)
        XCTAssertEqual(s.unsafeCopyToArray(), source)
        s.wipe()
        XCTAssertEqual(s.count, 40, "wipe keeps the length")
        XCTAssertTrue(s.withUnsafeBytes { $0.allSatisfy { $0 == 0 } })
        XCTAssertEqual(source, Array(1...40), "the source is a copy, left as it was")
        XCTAssertEqual(SecretBytes(copying: UnsafeRawBufferPointer(start: nil, count: 0)).count, 0)
    }

    /// The C side: a locked block released by SecretBytes' deinit (tg_secure_free) is zero in the arena. The arena's
    /// chunks stay mapped for the life of the process, so the block can be read after its release.
    func testLockedArenaBlockReadsZeroAfterRelease() throws {
        var pointer: UnsafeRawPointer?
        do {
            let secret = try XCTUnwrap(SecretBytes.locked(copying: [UInt8](repeating: 0xC3, count: 96)),
                                       "the locked arena is available (RLIMIT_MEMLOCK)")
            XCTAssertTrue(secret.isLocked)
            pointer = secret.withUnsafeBytes { $0.baseAddress }
            XCTAssertTrue(secret.withUnsafeBytes { $0.allSatisfy { $0 == 0xC3 } })
        }
        let p = try XCTUnwrap(pointer)
        XCTAssertTrue(allZero(p, 96), "tg_secure_free zeroes the block before returning it to the arena")
    }

    func testSecureAppendKeepsContentsAcrossGrowth() {
        var bytes: [UInt8] = []
        var expected: [UInt8] = []
        for i in 0..<200 {
            let chunk = [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: i % 37)
            chunk.withUnsafeBytes { secureAppend(&bytes, contentsOf: $0) }
            expected += chunk
        }
        XCTAssertEqual(bytes, expected)
        XCTAssertGreaterThanOrEqual(bytes.capacity, bytes.count)
        secureAppend(&bytes, contentsOf: UnsafeRawBufferPointer(start: nil, count: 0))
        XCTAssertEqual(bytes, expected)
    }
}
