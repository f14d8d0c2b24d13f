import CryptoCore
import Foundation
import KeyWrap
@testable import TokenStore
import XCTest

/// Attribute numbers as the PKCS#11 layer will pass them (plain numbers here).
enum Attr {
    static let cls: UInt = 0x0
    static let label: UInt = 0x3
    static let value: UInt = 0x11
    static let valueLen: UInt = 0x161
    static let id: UInt = 0x102
    static let keyType: UInt = 0x100
}

let indexed: Set<UInt> = [Attr.cls, Attr.label, Attr.id]

func tempDir(_ name: String = #function) throws -> String {
    let base = FileManager.default.temporaryDirectory.path + "/tg-store-\(getpid())-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
    return base
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// A real LocalBackend that counts its calls (to prove wrong PINs never reach the backend).
final class CountingBackend: KeyWrapBackend, @unchecked Sendable {
    let inner = LocalBackend()
    let lock = NSLock()
    private var _wraps = 0, _unwraps = 0
    var wraps: Int { lock.withLock { _wraps } }
    var unwraps: Int { lock.withLock { _unwraps } }
    var descriptor: BackendDescriptor { inner.descriptor }
    func wrap(_ rootKey: SecretBytes, context: WrapContext) throws -> [UInt8] {
        lock.withLock { _wraps += 1 }
        return try inner.wrap(rootKey, context: context)
    }
    func unwrap(_ blob: [UInt8], context: WrapContext) throws -> SecretBytes {
        lock.withLock { _unwraps += 1 }
        return try inner.unwrap(blob, context: context)
    }
    func checkHealth() throws {}
}

/// A backend of another kind (LocalBackend semantics under a different descriptor).
struct OtherKindBackend: KeyWrapBackend {
    var kind = "other"
    var version = ""
    var descriptor: BackendDescriptor { BackendDescriptor(kind: kind, keyID: "k1", keyVersion: version) }
    func wrap(_ rootKey: SecretBytes, context: WrapContext) throws -> [UInt8] { try LocalBackend().wrap(rootKey, context: context) }
    func unwrap(_ blob: [UInt8], context: WrapContext) throws -> SecretBytes { try LocalBackend().unwrap(blob, context: context) }
    func checkHealth() throws {}
}

/// Runs the system sqlite3 shell as a separate process against `path`.
@discardableResult
func sqlite3Shell(_ path: String, _ sql: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
    p.arguments = ["-cmd", ".timeout 10000", path, sql]
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    p.waitUntilExit()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    XCTAssertEqual(p.terminationStatus, 0, "sqlite3 failed: \(errText)", file: file, line: line)
    return text.trimmingCharacters(in: .whitespacesAndNewlines)
}

func hexOf(_ b: [UInt8]) -> String { b.map { String(format: "%02X", $0) }.joined() }

func assertStoreError(_ expected: StoreError, file: StaticString = #filePath, line: UInt = #line,
                      _ body: () throws -> Void) {
    XCTAssertThrowsError(try body(), file: file, line: line) { error in
        XCTAssertEqual(error as? StoreError, expected, "\(error)", file: file, line: line)
    }
}

/// `body` throws `.tampered` (whatever the text); returns the text.
@discardableResult
func assertTampered(file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) -> String {
    var text = ""
    XCTAssertThrowsError(try body(), file: file, line: line) { error in
        guard case .tampered(let why)? = error as? StoreError else {
            return XCTFail("expected .tampered, got \(error)", file: file, line: line)
        }
        text = why
    }
    return text
}
