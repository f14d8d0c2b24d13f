// A token on a cloud backend, driven through the Module API only (what C_* calls do): a YAML config
// (pin_kdf_cost 10, mode 0600) in a temporary directory, C_InitToken + C_InitPIN + C_Login, two token keys,
// timed logins under faults, and a snapshot of the stored objects to prove a fault changed nothing.
import CP11Kit
import CryptoCore
import Foundation
@testable import Cryptoki
@testable import KeyWrap
import TestSupport
import XCTest

// The module takes PINs as SecretBytes only (what the C ABI hands it).
let cloudSOPIN = SecretBytes(copying: Array("so-pin-1234".utf8))
let cloudUserPIN = SecretBytes(copying: Array("user-pin-1234".utf8))

/// One line per measured figure, for the run log (`grep CLOUDTOKEN`).
func report(_ line: String) {
    FileHandle.standardOutput.write(Data("CLOUDTOKEN \(line)\n".utf8))
}

final class CloudToken {
    let root: String
    let configPath: String
    private(set) var module: Module
    private(set) var session: CK_SESSION_HANDLE = 0
    let kind: String

    /// Writes the config for one token `cloud` on `kind` with `options` and loads it.
    init(kind: String, options: [String: String]) throws {
        self.kind = kind
        root = NSTemporaryDirectory() + "tg-cloudtoken-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        configPath = root + "/config.yaml"
        try Self.writeConfig(configPath, store: root + "/store", kind: kind, options: options)
        module = try Module(configPath: configPath)
    }

    /// A config naming the same store (another host's view of it, e.g. with an unreachable endpoint).
    func writeSibling(_ name: String, options: [String: String]) throws -> String {
        let path = root + "/\(name).yaml"
        try Self.writeConfig(path, store: root + "/store", kind: kind, options: options)
        return path
    }

    static func writeConfig(_ path: String, store: String, kind: String, options: [String: String]) throws {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var yaml = "log: { level: off }\naudit: { file: \(directory)/audit.log, sync: false }\n"
        // The anchor beside the store in the test's directory (not the default under $XDG_STATE_HOME / ~/.local/state).
        yaml += "tokens:\n  - name: cloud\n    store: \(store)\n    anchor_dir: \(directory)/anchors\n    max_pin_retries: 10\n"
        yaml += "    pin_kdf_cost: 10\n    backend:\n      kind: \(kind)\n"
        for (k, v) in options.sorted(by: { $0.key < $1.key }) {
            yaml += "      \(k): \"\(v)\"\n"
        }
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
    }

    deinit {
        module.finalize()
        try? FileManager.default.removeItem(atPath: root)
    }

    /// Replaces the module (the previous one is finalized): a fresh process's view of the same store.
    func reload(configPath path: String? = nil) throws {
        module.finalize()
        module = try Module(configPath: path ?? configPath)
        session = try module.openSession(0, flags: CKF_SERIAL_SESSION | CKF_RW_SESSION)
    }

    /// Runs `body` with the module finalized (no open store or anchor file), then loads it again with a session.
    func withModuleClosed(_ body: () throws -> Void) throws {
        module.finalize()
        try body()
        module = try Module(configPath: configPath)
        session = try module.openSession(0, flags: CKF_SERIAL_SESSION | CKF_RW_SESSION)
    }

    /// C_InitToken, C_OpenSession, C_Login(SO), C_InitPIN, C_Logout, C_Login(USER).
    func initialize() throws {
        try module.initToken(0, soPIN: cloudSOPIN, label: Array("cloud token".utf8))
        session = try module.openSession(0, flags: CKF_SERIAL_SESSION | CKF_RW_SESSION)
        try module.login(session, userType: CKU_SO, pin: cloudSOPIN)
        try module.initPIN(session, pin: cloudUserPIN)
        try module.logout(session)
        try module.login(session, userType: CKU_USER, pin: cloudUserPIN)
    }

    /// A token AES-256 key and a token N2HE key (CKM_TG_N2HE_KEY_GEN), both extractable so their values can be
    /// compared before and after the faults.
    func generateKeys() throws -> (aes: CK_OBJECT_HANDLE, n2he: CK_OBJECT_HANDLE) {
        let common = [boolAttr(CKA_TOKEN, true), boolAttr(CKA_EXTRACTABLE, true), boolAttr(CKA_SENSITIVE, false)]
        let aes = try module.generateKey(session, mechanism: Mechanism(type: CKM_AES_KEY_GEN),
                                         template: common + [ulongAttr(CKA_VALUE_LEN, 32), textAttr(CKA_LABEL, "cloud-aes"),
                                                             bytesAttr(CKA_ID, [0xA1])])
        let n2he = try module.generateKey(session, mechanism: Mechanism(type: CK.mechN2HEKeyGen),
                                          template: common + [textAttr(CKA_LABEL, "cloud-n2he"), bytesAttr(CKA_ID, [0xB2])])
        return (aes, n2he)
    }

    static let aesMechanism = Mechanism(type: CKM_AES_CBC_PAD, parameter: .bytes(Array(repeating: 0x5A, count: 16)))
    static let n2heMechanism = Mechanism(type: CK.mechN2HELWE2)
    static let plaintext: [UInt8] = (0..<32).map { UInt8($0) }  // four int64 messages for N2HE, two blocks for AES

    /// One C_EncryptInit + one C_Encrypt into a buffer large enough (no length query).
    func encrypt(_ key: CK_OBJECT_HANDLE, _ mechanism: Mechanism, _ data: [UInt8] = CloudToken.plaintext) throws -> [UInt8] {
        try module.encryptInit(session, mechanism: mechanism, key: key)
        var out = [UInt8](repeating: 0, count: 1 << 17)
        let r = try data.withUnsafeBytes { d in try out.withUnsafeMutableBytes { try module.encrypt(session, input: d, output: .buffer($0)) } }
        guard case .written(let n) = r else { throw CKRError(CKR_GENERAL_ERROR) }
        return Array(out.prefix(n))
    }

    func decrypt(_ key: CK_OBJECT_HANDLE, _ mechanism: Mechanism, _ data: [UInt8]) throws -> [UInt8] {
        try module.decryptInit(session, mechanism: mechanism, key: key)
        var out = [UInt8](repeating: 0, count: 1 << 17)
        let r = try data.withUnsafeBytes { d in try out.withUnsafeMutableBytes { try module.decrypt(session, input: d, output: .buffer($0)) } }
        guard case .written(let n) = r else { throw CKRError(CKR_GENERAL_ERROR) }
        return Array(out.prefix(n))
    }

    func login() throws { try module.login(session, userType: CKU_USER, pin: cloudUserPIN) }

    /// Logs out if logged in.
    func logoutIfNeeded() {
        try? module.logout(session)
    }

    // MARK: Snapshot of the stored objects

    static let comparedAttributes: [CK_ATTRIBUTE_TYPE] = [
        CKA_CLASS, CKA_KEY_TYPE, CKA_LABEL, CKA_ID, CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, CKA_EXTRACTABLE,
        CKA_ENCRYPT, CKA_DECRYPT, CKA_VALUE_LEN, CKA_VALUE, CKA_KEY_GEN_MECHANISM, CKA_LOCAL, CKA_MODIFIABLE,
        CK.attrN2HEDimension, CK.attrN2HEModulusBits, CK.attrN2HEPlaintextBits, CK.attrN2HENoiseMilli, CK.attrN2HESecurityBits,
    ]

    /// Every object of the token (found by an empty template), keyed by label, with the compared attributes.
    func snapshot() throws -> [String: [AttributeQueryResult]] {
        try module.findObjectsInit(session, template: [])
        var handles: [CK_OBJECT_HANDLE] = []
        for _ in 0..<1000 {
            let chunk = try module.findObjects(session, maxCount: 16)
            if chunk.isEmpty { break }
            handles += chunk
        }
        try module.findObjectsFinal(session)
        var out: [String: [AttributeQueryResult]] = [:]
        for h in handles {
            let values = try module.attributeValues(session, h, types: Self.comparedAttributes)
            guard case .value(.bytes(let label)) = values[2] else { throw CKRError(CKR_GENERAL_ERROR) }
            out[String(decoding: label, as: UTF8.self) + "#\(out.count)"] = values
        }
        return out
    }

    func handle(label: String) throws -> CK_OBJECT_HANDLE {
        try module.findObjectsInit(session, template: [textAttr(CKA_LABEL, label)])
        defer { try? module.findObjectsFinal(session) }
        let found = try module.findObjects(session, maxCount: 4)
        guard found.count == 1 else { throw CKRError(CKR_OBJECT_HANDLE_INVALID) }
        return found[0]
    }
}

// MARK: Attributes

func ulongAttr(_ t: CK_ATTRIBUTE_TYPE, _ v: CK_ULONG) -> Attribute { Attribute(type: t, bytes: Encoding.ulong(v)) }
func boolAttr(_ t: CK_ATTRIBUTE_TYPE, _ v: Bool) -> Attribute { Attribute(type: t, bytes: [v ? 1 : 0]) }
func bytesAttr(_ t: CK_ATTRIBUTE_TYPE, _ v: [UInt8]) -> Attribute { Attribute(type: t, bytes: v) }
func textAttr(_ t: CK_ATTRIBUTE_TYPE, _ v: String) -> Attribute { Attribute(type: t, bytes: Array(v.utf8)) }

// MARK: Login under a fault

/// What a login under a fault must end in: success, or one of the CK_RVs the backend's docs give for it.
enum LoginOutcome: CustomStringConvertible {
    case succeeds
    case fails(CK_RV)

    var description: String {
        switch self {
        case .succeeds: return "CKR_OK"
        case .fails(let rv): return "0x" + String(rv, radix: 16)
        }
    }
}

func rvName(_ rv: CK_RV) -> String {
    switch rv {
    case CKR_OK: return "CKR_OK"
    case CKR_DEVICE_ERROR: return "CKR_DEVICE_ERROR"
    case CKR_DEVICE_REMOVED: return "CKR_DEVICE_REMOVED"
    case CKR_PIN_INCORRECT: return "CKR_PIN_INCORRECT"
    case CKR_GENERAL_ERROR: return "CKR_GENERAL_ERROR"
    default: return "0x" + String(rv, radix: 16)
    }
}

extension CloudToken {
    /// Logs out, runs `inject`, then times one C_Login(USER); asserts the outcome and `wall ≤ bound + slack`.
    /// Leaves the token logged out. Returns the wall time.
    @discardableResult
    func loginUnderFault(_ name: String, expect: LoginOutcome, bound: Duration, slack: Duration = .seconds(2),
                         file: StaticString = #filePath, line: UInt = #line, inject: () throws -> Void) throws -> Duration {
        logoutIfNeeded()
        try inject()
        let start = ContinuousClock.now
        var rv: CK_RV = CKR_OK
        do { try login() } catch let e as CKRError { rv = e.rv }
        let elapsed = ContinuousClock.now - start
        switch expect {
        case .succeeds: XCTAssertEqual(rvName(rv), "CKR_OK", "\(kind) \(name): login should recover", file: file, line: line)
        case .fails(let want): XCTAssertEqual(rvName(rv), rvName(want), "\(kind) \(name): documented CK_RV", file: file, line: line)
        }
        XCTAssertLessThanOrEqual(elapsed, bound + slack, "\(kind) \(name): login took \(elapsed), bound \(bound)", file: file, line: line)
        report("\(kind) fault=\(name.replacingOccurrences(of: " ", with: "_")) login=\(rvName(rv)) wall_ms=\(elapsed.milliseconds) bound_ms=\(bound.milliseconds)")
        logoutIfNeeded()
        return elapsed
    }
}

/// The documented worst case of one backend call, from the backend's own configuration.
func worstCaseCall(_ kind: String, _ options: [String: String]) throws -> Duration {
    let backend = try BackendFactory.make(BackendConfiguration(kind: kind, options: options))
    switch backend {
    case let b as AWSKMSBackend: return b.configuration.http.worstCaseDuration
    case let b as GCPKMSBackend: return b.configuration.http.http.worstCaseDuration
    case let b as AzureKeyVaultBackend: return b.configuration.http.http.worstCaseDuration
    default: throw TestServerError("no worst case for \(kind)")
    }
}
