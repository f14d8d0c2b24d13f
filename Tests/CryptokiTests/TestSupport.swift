// Real modules on real temporary stores (pin_kdf_cost 10), no mocks.
import CP11Kit
import CryptoCore
import Foundation
import XCTest
@testable import Cryptoki

let soPIN = Array("so-pin-1234".utf8)
let userPIN = Array("user-pin-1234".utf8)

/// A temporary directory with a config file naming `tokens` stores inside it.
final class TestEnvironment {
    let root: String
    let configPath: String

    var auditPath: String { root + "/audit.log" }
    /// Every token's anchor (TokenStore/TokenAnchor.swift), inside the test's directory.
    var anchorDirectory: String { root + "/anchors" }

    /// `auditOptions`: more entries of the `audit:` flow mapping, e.g. ", checkpoint_every: 4".
    init(tokens: [String] = ["t0"], retries: Int = 10, extra: String = "", auditOptions: String = "") throws {
        root = NSTemporaryDirectory() + "cryptoki-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        // The audit log goes into the test's directory, never the user's default one.
        var yaml = "log: { level: off }\naudit: { file: \(root)/audit.log, sync: false\(auditOptions) }\ntokens:\n"
        for t in tokens {
            yaml += "  - name: \(t)\n    store: \(root)/\(t)\n    anchor_dir: \(root)/anchors\n    max_pin_retries: \(retries)\n"
                + "    pin_kdf_cost: 10\n\(extra)"
        }
        configPath = root + "/config.yaml"
        try write(yaml, to: configPath)
    }

    func write(_ text: String, to path: String, mode: Int = 0o600) throws {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    }

    func module() throws -> Module { try Module(configPath: configPath) }

    deinit { try? FileManager.default.removeItem(atPath: root) }
}

/// Rows of the system sqlite3 shell (a separate process, as an attacker editing the file would be).
func sqliteShell(_ db: String, _ query: String, file: StaticString = #filePath, line: UInt = #line) throws -> [String] {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
    p.arguments = ["-cmd", ".timeout 10000", db, query]
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    XCTAssertEqual(p.terminationStatus, 0, "sqlite3 \(query) failed (the sqlite3 shell is required)", file: file, line: line)
    return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
}

func expectCKR(_ rv: CK_RV, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
    do {
        try body()
        XCTFail("expected CK_RV 0x\(String(rv, radix: 16)), got success", file: file, line: line)
    } catch let e as CKRError {
        XCTAssertEqual(e.rv, rv, "expected 0x\(String(rv, radix: 16)), got \(e)", file: file, line: line)
    } catch {
        XCTFail("unexpected error \(error)", file: file, line: line)
    }
}

// MARK: Attributes

func ulongAttr(_ t: CK_ATTRIBUTE_TYPE, _ v: CK_ULONG) -> Attribute { Attribute(type: t, bytes: Encoding.ulong(v)) }
func boolAttr(_ t: CK_ATTRIBUTE_TYPE, _ v: Bool) -> Attribute { Attribute(type: t, bytes: [v ? 1 : 0]) }
func bytesAttr(_ t: CK_ATTRIBUTE_TYPE, _ v: [UInt8]) -> Attribute { Attribute(type: t, bytes: v) }
func textAttr(_ t: CK_ATTRIBUTE_TYPE, _ v: String) -> Attribute { Attribute(type: t, bytes: Array(v.utf8)) }

func hex(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var chars = Array(s.utf8.filter { $0 != 0x20 })
    if chars.count % 2 == 1 { chars.insert(0x30, at: 0) }
    var i = 0
    while i < chars.count {
        out.append(UInt8(String(decoding: chars[i..<(i + 2)], as: UTF8.self), radix: 16) ?? 0)
        i += 2
    }
    return out
}

func toHex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }

extension Module {
    /// Initialised token, user PIN set, one RW session logged in as user.
    func readySession(slot: CK_SLOT_ID = 0, login: Bool = true) throws -> CK_SESSION_HANDLE {
        try initToken(slot, soPIN: soPIN, label: Array("test token".utf8))
        let s = try openSession(slot, flags: CKF_SERIAL_SESSION | CKF_RW_SESSION)
        try self.login(s, userType: CKU_SO, pin: soPIN)
        try initPIN(s, pin: userPIN)
        try logout(s)
        if login { try self.login(s, userType: CKU_USER, pin: userPIN) }
        return s
    }

    /// An AES key, extractable unless `extra` says otherwise (the token's default is unextractable).
    func aesKey(_ s: CK_SESSION_HANDLE, value: [UInt8]? = nil, token: Bool = false, extra: [Attribute] = []) throws -> CK_OBJECT_HANDLE {
        let extra = extra.contains(where: { $0.type == CKA_EXTRACTABLE }) ? extra : extra + [boolAttr(CKA_EXTRACTABLE, true)]
        if let value {
            return try createObject(s, template: [ulongAttr(CKA_CLASS, CKO_SECRET_KEY), ulongAttr(CKA_KEY_TYPE, CKK_AES),
                                                  bytesAttr(CKA_VALUE, value), boolAttr(CKA_TOKEN, token)] + extra)
        }
        return try generateKey(s, mechanism: Mechanism(type: CKM_AES_KEY_GEN),
                               template: [ulongAttr(CKA_VALUE_LEN, 32), boolAttr(CKA_TOKEN, token)] + extra)
    }

    func attribute(_ s: CK_SESSION_HANDLE, _ o: CK_OBJECT_HANDLE, _ t: CK_ATTRIBUTE_TYPE) throws -> AttributeQueryResult {
        try attributeValues(s, o, types: [t])[0]
    }

    func bytes(_ s: CK_SESSION_HANDLE, _ o: CK_OBJECT_HANDLE, _ t: CK_ATTRIBUTE_TYPE) throws -> [UInt8]? {
        switch try attribute(s, o, t) {
        case .value(.bytes(let b)): return b
        case .secret(let v): return v.unsafeCopyToArray()
        default: break
        }
        return nil
    }

    func ulong(_ s: CK_SESSION_HANDLE, _ o: CK_OBJECT_HANDLE, _ t: CK_ATTRIBUTE_TYPE) throws -> CK_ULONG? {
        try bytes(s, o, t).flatMap { Encoding.decodeULong($0) }
    }

    func bool(_ s: CK_SESSION_HANDLE, _ o: CK_OBJECT_HANDLE, _ t: CK_ATTRIBUTE_TYPE) throws -> Bool? {
        try bytes(s, o, t).flatMap { Encoding.decodeBool($0) }
    }

    func find(_ s: CK_SESSION_HANDLE, _ template: [Attribute]) throws -> [CK_OBJECT_HANDLE] {
        try findObjectsInit(s, template: template)
        var all: [CK_OBJECT_HANDLE] = []
        while true {
            let chunk = try findObjects(s, maxCount: 7)
            if chunk.isEmpty { break }
            all += chunk
        }
        try findObjectsFinal(s)
        return all
    }
}

/// Calls an output-producing function the PKCS#11 way: length query, then fetch into an exact buffer.
func twoStep(_ call: (OutputBuffer) throws -> OutputResult) throws -> [UInt8] {
    guard case .lengthRequired(let n) = try call(.lengthQuery) else {
        XCTFail("length query did not answer a length")
        return []
    }
    var out = [UInt8](repeating: 0, count: n)
    let r = try out.withUnsafeMutableBytes { try call(.buffer($0)) }
    guard case .written(let w) = r else {
        XCTFail("fetch did not write: \(r)")
        return []
    }
    return Array(out.prefix(w))
}

extension Module {
    func encryptAll(_ s: CK_SESSION_HANDLE, _ m: Mechanism, _ key: CK_OBJECT_HANDLE, _ data: [UInt8]) throws -> [UInt8] {
        try encryptInit(s, mechanism: m, key: key)
        return try data.withUnsafeBytes { d in try twoStep { try encrypt(s, input: d, output: $0) } }
    }

    func decryptAll(_ s: CK_SESSION_HANDLE, _ m: Mechanism, _ key: CK_OBJECT_HANDLE, _ data: [UInt8]) throws -> [UInt8] {
        try decryptInit(s, mechanism: m, key: key)
        return try data.withUnsafeBytes { d in try twoStep { try decrypt(s, input: d, output: $0) } }
    }

    /// Multi-part with the given chunk sizes (cycled).
    func encryptParts(_ s: CK_SESSION_HANDLE, _ m: Mechanism, _ key: CK_OBJECT_HANDLE, _ data: [UInt8], chunks: [Int],
                      decrypt dec: Bool = false) throws -> [UInt8] {
        if dec { try decryptInit(s, mechanism: m, key: key) } else { try encryptInit(s, mechanism: m, key: key) }
        var out: [UInt8] = []
        var i = 0, c = 0
        while i < data.count {
            let n = min(chunks[c % chunks.count], data.count - i)
            c += 1
            let part = Array(data[i..<(i + n)])
            i += n
            out += try part.withUnsafeBytes { d in
                try twoStep { dec ? try decryptUpdate(s, input: d, output: $0) : try encryptUpdate(s, input: d, output: $0) }
            }
        }
        out += try twoStep { dec ? try decryptFinal(s, output: $0) : try encryptFinal(s, output: $0) }
        return out
    }
}

/// /work/main/Tests/CryptokiTests/X.swift → /work/shared/interop
let interopDirectory: String = {
    let here = URL(fileURLWithPath: #filePath)
    return here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared/interop").path
}()

/// The module takes PINs only as `SecretBytes` (the C ABI copies them straight into one). The tests keep their PINs as
/// array constants; these test-only overloads convert at the call.
extension Module {
    func login(_ handle: CK_SESSION_HANDLE, userType: CK_USER_TYPE, pin: [UInt8]) throws {
        try login(handle, userType: userType, pin: SecretBytes(copying: pin))
    }
    func initToken(_ slot: CK_SLOT_ID, soPIN: [UInt8], label: [UInt8]) throws {
        try initToken(slot, soPIN: SecretBytes(copying: soPIN), label: label)
    }
    func initPIN(_ session: CK_SESSION_HANDLE, pin: [UInt8]) throws {
        try initPIN(session, pin: SecretBytes(copying: pin))
    }
    func setPIN(_ session: CK_SESSION_HANDLE, oldPIN: [UInt8], newPIN: [UInt8]) throws {
        try setPIN(session, oldPIN: SecretBytes(copying: oldPIN), newPIN: SecretBytes(copying: newPIN))
    }
}
