import CryptoCore
import Foundation
import KeyWrap
import TokenStore
import XCTest

/// Not a timed test: prints numbers only when TG_STORE_BENCH=1 (the real comparison against SoftHSM2 is
/// `make bench`). Asserts only correctness.
final class BenchmarkTests: XCTestCase {
    func testStoreThroughput() throws {
        guard ProcessInfo.processInfo.environment["TG_STORE_BENCH"] == "1" else { throw XCTSkip("set TG_STORE_BENCH=1") }
        let dir = try tempDir()
        let db = try TokenDatabase(directory: dir, indexedAttributes: indexed)
        let vault = try TokenVault(database: db, kdfLog2N: TokenVault.minimumKDFLog2N)
        try vault.initialize(soPIN: bytes("so"), label: [], backend: LocalBackend())
        let keys = try vault.login(role: .so, pin: bytes("so"), backend: LocalBackend())
        func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
        func cpu() -> Double {
            var u = rusage()
            getrusage(RUSAGE_SELF.rawValue, &u)
            return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6
        }
        var total = 0
        for target in [1_000, 10_000] {
            let t0 = now(), c0 = cpu()
            let n = target - total
            for i in total..<target {
                let attrs: [UInt: [UInt8]] = [Attr.cls: [4, 0, 0, 0, 0, 0, 0, 0], Attr.label: bytes("key-\(i)"),
                                              Attr.id: [UInt8(i & 0xff)], Attr.keyType: [0x1f], Attr.valueLen: [32]]
                try db.insert(uniqueID: try TokenDatabase.newUniqueID(), publicAttributes: attrs,
                              secretAttributes: [Attr.value: try SecretBytes.random(count: 32)], keys: keys)
            }
            total = target
            let t1 = now(), c1 = cpu()
            let finds = 20_000
            for i in 0..<finds {
                let r = try db.find(matching: [Attr.label: bytes("key-\((i * 7919) % target)")])
                XCTAssertEqual(r.count, 1)
            }
            let t2 = now(), c2 = cpu()
            print(String(format: "[bench] %d objects: insert %.1f us/object (cpu %.1f), find-by-label %.2f us/call (cpu %.2f)",
                         target, (t1 - t0) / Double(n) * 1e6, (c1 - c0) / Double(n) * 1e6,
                         (t2 - t1) / Double(finds) * 1e6, (c2 - c1) / Double(finds) * 1e6))
        }
    }
}
