// tg-store-bench: the token store on SQLite and on PostgreSQL, same code (TokenDatabase / TokenVault), same run
// (`make bench`, docs/plans/postgresql-store.md §6). A throwaway PostgreSQL server on 127.0.0.1 (TestSupport) and a
// SQLite store in a temp directory. Prints "name value" lines; nothing here asserts on time.
//
//   tg-store-bench [--seconds S]
import CryptoCore
import Foundation
import KeyWrap
import TestSupport
import TokenStore

let seconds = CommandLine.arguments.firstIndex(of: "--seconds").flatMap { i in
    CommandLine.arguments.dropFirst(i + 1).first.flatMap(Double.init)
} ?? 1.0
let indexed: Set<UInt> = [0x0, 0x3, 0x102]   // CKA_CLASS, CKA_LABEL, CKA_ID, as the module indexes them

func label(_ s: String) -> [UInt: [UInt8]] { [0x0: [4, 0, 0, 0, 0, 0, 0, 0], 0x3: Array(s.utf8), 0x100: [0x1f]] }

/// Calls `body` for `seconds`; returns calls per second.
func rate(_ body: (Int) throws -> Void) rethrows -> Double {
    var n = 0
    let start = MonotonicInstant.now
    let end = start + .milliseconds(Int64(seconds * 1000))
    while MonotonicInstant.now < end {
        try body(n)
        n += 1
    }
    let elapsed = MonotonicInstant.now - start
    return Double(n) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
}

func milliseconds(_ d: Duration) -> Double { Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15 }

/// The figures of one store; `open` gives a new TokenDatabase on the same store each time it is called.
func figures(_ name: String, _ open: () throws -> TokenDatabase) throws {
    let db = try open()
    let vault = try TokenVault(database: db)   // the default PIN KDF cost, as deployed
    let so = SecretBytes(copying: Array("bench-so-pin".utf8)), user = SecretBytes(copying: Array("bench-user".utf8))
    try vault.initialize(soPIN: so, label: Array("bench".utf8), backend: LocalBackend())
    try vault.initUserPIN(user, using: try vault.login(role: .so, pin: so, backend: LocalBackend()))
    var keys: SessionKeys?
    let login = try MonotonicInstant.measure { keys = try vault.login(role: .user, pin: user, backend: LocalBackend()) }
    guard let keys else { return }
    print("\(name)_login_ms \(String(format: "%.2f", milliseconds(login)))")
    // A token key: public attributes and a sealed 32-byte value, one committed write (what C_GenerateKey stores).
    let value = SecretBytes(copying: [UInt8](repeating: 0x5a, count: 32))
    let keysPerSecond = try rate { i in
        try db.insert(uniqueID: "key-\(i)", publicAttributes: label("key-\(i)"), secretAttributes: [0x11: value], keys: keys)
    }
    print("\(name)_key_insert_per_s \(String(format: "%.1f", keysPerSecond))")
    for target in [1_000, 10_000] {
        var count = try db.objectCount()
        while count < target {
            try db.insert(uniqueID: "data-\(count)", publicAttributes: label("data-\(count)"), keys: nil)
            count += 1
        }
        let finds = try rate { i in _ = try db.find(matching: [0x3: Array("data-\(i % 1000)".utf8)]) }
        print("\(name)_find_by_label_per_s_\(target / 1000)k \(String(format: "%.1f", finds))")
    }
    // Key use: the freshness check a cached key makes before each use.
    let uses = try rate { i in _ = try db.sequence(uniqueID: "key-\(i % 10)") }
    print("\(name)_key_use_check_per_s \(String(format: "%.1f", uses))")
    // Another connection (another process or host) sees a commit at its next call.
    let other = try open()
    _ = try other.objectCount()
    var visible = Duration.zero
    for i in 0..<50 {
        try db.insert(uniqueID: "seen-\(i)", publicAttributes: label("seen-\(i)"), keys: nil)
        visible += try MonotonicInstant.measure { _ = try other.object(uniqueID: "seen-\(i)") }
    }
    print("\(name)_other_connection_sees_commit_ms \(String(format: "%.3f", milliseconds(visible) / 50))")
}

do {
    let dir = FileManager.default.temporaryDirectory.path + "/tg-store-bench-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try figures("sqlite") { try TokenDatabase(directory: dir, indexedAttributes: indexed) }
    let server = try PostgresServer()
    try figures("postgresql") {
        try TokenDatabase(postgres: {
            try PostgresConnection(parameters: server.parameters, password: SecretBytes(copying: Array(server.password.utf8)),
                                   timeout: .seconds(10))
        }, schema: "bench", indexedAttributes: indexed)
    }
} catch {
    FileHandle.standardError.write(Data("tg-store-bench: \(error)\n".utf8))
    exit(1)
}
