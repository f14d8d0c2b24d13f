// tg-pkcs11 token show | delete: a configured token's store, read (and removed) directly with TokenStore, like
// `backup`. `show` needs no PIN: it reports what the file shows anyway (public attributes, counters).
import ArgumentParser
import CP11Kit
import Cryptoki
import Foundation
import KeyWrap
import TokenStore
#if canImport(Glibc)
import Glibc
#endif

struct TokenReport: Codable {
    struct PIN: Codable {
        let set: Bool
        let failedAttempts: Int
        let maxAttempts: Int
        let remainingAttempts: Int
        let locked: Bool
    }
    let name: String
    let slot: Int
    let config: String
    let store: String
    let database: String
    let exists: Bool
    let initialized: Bool
    let label: String?
    let serial: String?
    let uuid: String?
    let formatVersion: Int?
    let configuredBackend: BackendDescriptorReport
    let recordedBackend: BackendDescriptorReport?
    let objects: Int?
    let objectsByClass: [String: Int]?
    let keysByType: [String: Int]?
    let soPIN: PIN?
    let userPIN: PIN?
    let flags: [String]?
    var audit: Audit?

    struct Audit: Codable {
        let enabled: Bool
        /// The audit file (nil: syslog only, or disabled).
        let file: String?
        let error: String?
    }
}

/// CKO_* names for CKA_CLASS values.
func objectClassName(_ value: UInt64) -> String {
    switch value {
    case 0: return "data"
    case 1: return "certificate"
    case 2: return "public-key"
    case 3: return "private-key"
    case 4: return "secret-key"
    default: return "0x" + String(value, radix: 16)
    }
}

/// A CK_ULONG attribute value as stored (8 bytes, host order).
func ulongValue(_ bytes: [UInt8]?) -> UInt64? {
    guard let bytes, bytes.count == 8 else { return nil }
    return bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
}

/// The first 16 bytes of every SQLite 3 database.
func isSQLiteFile(_ path: String) -> Bool {
    guard let f = fopen(path, "rb") else { return false }
    defer { fclose(f) }
    var header = [UInt8](repeating: 0, count: 16)
    guard fread(&header, 1, 16, f) == 16 else { return false }
    return header == Array("SQLite format 3".utf8) + [0]
}

func makeTokenReport(_ configuration: OperatorConfiguration, _ token: OperatorTokenConfiguration,
                     backend configured: BackendDescriptor?) throws -> TokenReport {
    let slot = configuration.tokens.firstIndex(where: { $0.name == token.name }) ?? 0
    let cfg = BackendDescriptorReport(configured ?? BackendDescriptor(kind: token.backend.kind))
    guard access(token.databasePath, F_OK) == 0 else {
        return TokenReport(name: token.name, slot: slot, config: configuration.source, store: token.store,
                           database: token.databasePath, exists: false, initialized: false, label: nil, serial: nil,
                           uuid: nil, formatVersion: nil, configuredBackend: cfg, recordedBackend: nil, objects: nil,
                           objectsByClass: nil, keysByType: nil, soPIN: nil, userPIN: nil, flags: nil)
    }
    guard isSQLiteFile(token.databasePath) else {
        throw CLIError("token '\(token.name)': \(token.databasePath) is not an SQLite database")
    }
    let vault = try operatorStep(token.name, "opening the store \(token.store)") { try token.openVault() }
    let record = try operatorStep(token.name, "reading the store") { try vault.database.tokenRecord() }
    let objects = try operatorStep(token.name, "reading the objects") { try vault.database.allObjects() }
    var byClass: [String: Int] = [:], byType: [String: Int] = [:]
    for o in objects {
        let cls = ulongValue(o.publicAttributes[0x0])
        byClass[cls.map(objectClassName) ?? "unknown", default: 0] += 1
        if cls == 4, let kt = ulongValue(o.publicAttributes[0x100]) {
            byType[Names.keyType(CK_KEY_TYPE(kt)), default: 0] += 1
        }
    }
    func pin(_ s: PINStatus) -> TokenReport.PIN {
        .init(set: s.isSet, failedAttempts: s.failedAttempts, maxAttempts: s.maxAttempts,
              remainingAttempts: s.remainingAttempts, locked: s.isLocked)
    }
    var flags: [String] = []
    if record.isInitialized { flags.append("token-initialized") }
    if record.userPIN.isSet { flags.append("user-pin-initialized") }
    for (role, s) in [("so", record.soPIN), ("user", record.userPIN)] {
        if s.isLocked { flags.append("\(role)-pin-locked") }
        if s.isFinalTry { flags.append("\(role)-pin-final-try") }
        if s.isCountLow { flags.append("\(role)-pin-count-low") }
    }
    let label = String(decoding: record.label, as: UTF8.self).trimmingCharacters(in: .whitespaces)
    return TokenReport(
        name: token.name, slot: slot, config: configuration.source, store: token.store, database: token.databasePath,
        exists: true, initialized: record.isInitialized, label: record.isInitialized ? label : nil,
        serial: record.isInitialized ? record.serialNumber : nil, uuid: record.isInitialized ? record.tokenUUID : nil,
        formatVersion: record.formatVersion, configuredBackend: cfg,
        recordedBackend: record.backend.map(BackendDescriptorReport.init),
        objects: objects.count, objectsByClass: byClass, keysByType: byType, soPIN: pin(record.soPIN),
        userPIN: pin(record.userPIN), flags: flags)
}

struct TokenShow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show a configured token: store, backend, format version, object counts, PIN counters. Needs no PIN.",
        discussion: """
            Reads the configuration (--config, else the module's discovery) and the token's store directly. \
            --token is the name in the configuration (tokens[].name); the slot is its position in the list.
            """)

    @OptionGroup var configOptions: ConfigOptions
    @Flag(name: .long, help: "Print a JSON object.")
    var json = false

    func run() throws {
        let (configuration, token) = try configOptions.load()
        // The backend's descriptor without contacting it; a configuration it refuses is reported, not fatal.
        let configured = try? BackendFactory.make(token.backend).descriptor
        var r = try makeTokenReport(configuration, token, backend: configured)
        do {
            let log = try OperatorAudit.log(configPath: configOptions.config)
            r.audit = .init(enabled: log != nil, file: log?.filePath, error: nil)
        } catch {
            r.audit = .init(enabled: false, file: nil, error: "\(error)")
        }
        if json {
            print(try jsonString(r))
            return
        }
        print("Token '\(r.name)' (slot \(r.slot), config \(r.config))")
        print("  store:            \(r.store)")
        if let a = r.audit {
            print("  audit log:        " + (a.error.map { "misconfigured: \($0)" }
                ?? (!a.enabled ? "off" : a.file.map { "\($0)" + (access($0, F_OK) == 0 ? "" : " (not written yet)") } ?? "syslog only")))
        }
        print("  backend:          \(r.configuredBackend.text)\(configured == nil ? " (configuration refused; see `tg-pkcs11 doctor`)" : "")")
        guard r.exists else {
            print("  database:         none yet (\(r.database)); initialise the token or restore a backup")
            return
        }
        guard r.initialized else {
            print("  state:            not initialised (`tg-pkcs11 token init --slot \(r.slot) ...`)")
            return
        }
        print("  label:            \(r.label ?? "")")
        print("  serial:           \(r.serial ?? "")")
        print("  uuid:             \(r.uuid ?? "")")
        print("  format version:   \(r.formatVersion.map(String.init) ?? "?")")
        if let rec = r.recordedBackend { print("  wrapped by:       \(rec.text)") }
        print("  objects:          \(r.objects ?? 0)" + counts(r.objectsByClass))
        if let k = r.keysByType, !k.isEmpty { print("  secret keys:      " + k.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")) }
        for (role, p) in [("SO PIN", r.soPIN), ("user PIN", r.userPIN)] {
            guard let p else { continue }
            print("  \(role):".padding(toLength: 20, withPad: " ", startingAt: 0)
                + (p.set ? "\(p.remainingAttempts) of \(p.maxAttempts) attempts left\(p.locked ? " (LOCKED)" : "")" : "not set"))
        }
        if let f = r.flags { print("  flags:            \(f.joined(separator: ", "))") }
    }

    private func counts(_ c: [String: Int]?) -> String {
        guard let c, !c.isEmpty else { return "" }
        return " (" + c.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")"
    }
}

struct TokenDelete: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete",
        abstract: "Delete a configured token's store (its database), after an SO PIN check.",
        discussion: """
            Every key on the token is lost unless a backup exists (`tg-pkcs11 backup`). An initialised token needs \
            its SO PIN (checked like a C_Login; the backend is not contacted). Asks for the token name on a \
            terminal; scripts pass --yes. Only token.sqlite and its -wal/-shm files are removed, and the store \
            directory if it is then empty; a path that does not hold a token database is never touched.
            """)

    @OptionGroup var configOptions: ConfigOptions
    @Flag(name: .long, help: "Do not ask for confirmation.")
    var yes = false
    @OptionGroup var soPIN: SOPINOptions
    @Flag(name: .long, help: "Print a JSON object.")
    var json = false

    struct Result: Codable {
        let token: String
        let store: String
        let label: String?
        let serial: String?
        let removed: [String]
        let storeDirectoryRemoved: Bool
    }

    func run() throws {
        let (_, token) = try configOptions.load()
        let path = token.databasePath
        var st = stat()
        guard lstat(path, &st) == 0 else {
            throw CLIError("token '\(token.name)' has no store database at \(path); nothing to delete")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG, isSQLiteFile(path) else {
            throw CLIError("\(path) is not a token database; not deleting anything")
        }
        let audit = try OperatorAuditTrail(configPath: configOptions.config, token: token.name)
        // The connection is closed again before anything is unlinked.
        let (record, count): (TokenRecord, Int) = try {
            let vault = try operatorStep(token.name, "opening the store \(token.store)") { try token.openVault() }
            let record = try operatorStep(token.name, "reading the store") { try vault.database.tokenRecord() }
            let count = try operatorStep(token.name, "reading the store") { try vault.database.objectCount() }
            if record.isInitialized {
                let pin = try soPIN.source(token: token.name).read()
                try audit.step("token_delete", details: ["store": token.store]) {
                    try operatorStep(token.name, "SO PIN check") { try vault.verifyPIN(role: .so, pin: pin) }
                }
            }
            return (record, count)
        }()
        let label = String(decoding: record.label, as: UTF8.self).trimmingCharacters(in: .whitespaces)
        if !yes {
            guard isatty(STDIN_FILENO) == 1 else {
                throw CLIError("refusing to delete token '\(token.name)' without --yes (standard input is not a terminal)")
            }
            writeStandardError("Delete token '\(token.name)'"
                + (record.isInitialized ? " (label '\(label)', serial \(record.serialNumber), \(count) objects)" : "")
                + " at \(token.store)? Type the token name to confirm: ")
            guard let answer = readLine(strippingNewline: true), answer == token.name else {
                throw CLIError("not confirmed; nothing deleted")
            }
        }
        try audit.success("token_delete", details: ["store": token.store, "serial": record.serialNumber,
                                                    "objects": String(count)])
        var removed: [String] = []
        for f in databaseFileSet(path) {
            guard unlink(f) == 0 else {
                throw CLIError("cannot remove \(f): \(String(cString: strerror(errno)))"
                    + (removed.isEmpty ? "" : " (already removed: \(removed.joined(separator: ", ")))"))
            }
            removed.append(f)
        }
        let dirRemoved = rmdir(token.store) == 0
        if json {
            print(try jsonString(Result(token: token.name, store: token.store,
                                        label: record.isInitialized ? label : nil,
                                        serial: record.isInitialized ? record.serialNumber : nil,
                                        removed: removed, storeDirectoryRemoved: dirRemoved)))
            return
        }
        print("Deleted token '\(token.name)'" + (record.isInitialized ? " (label '\(label)', serial \(record.serialNumber))" : "")
            + ": removed \(removed.joined(separator: ", "))")
        if !dirRemoved, access(token.store, F_OK) == 0 {
            print("  kept the store directory \(token.store): it holds other files (e.g. token.sqlite.replaced-* copies)")
        }
    }
}

struct TokenAcceptRollback: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accept-rollback",
        abstract: "Accept a token store that failed its integrity check at login (older than its anchor, or tampered).",
        discussion: """
            A login refuses a store older than the generation its anchor recorded (an older token.sqlite copied \
            back: a destroyed key returns, a PIN change or lockout is undone) and a store whose objects or state do \
            not match their MACs (edited in the file). After investigating, the SO accepts the store as it is now: \
            objects whose rows do not match their MAC are removed (never used), objects without a MAC are \
            authenticated as they are, and the token moves to a generation above both. Needs the SO PIN (counted \
            like a C_Login) and the backend. Recorded in the audit log before the store changes. See \
            docs/storage-format.md (Rollback) and docs/threat-model.md.
            """)

    @OptionGroup var configOptions: ConfigOptions
    @OptionGroup var soPIN: SOPINOptions
    @Flag(name: .long, help: "Print a JSON object.")
    var json = false

    struct Result: Codable {
        let token: String
        let storedGeneration: Int64
        let recordedGeneration: Int64?
        let generation: Int64
        let removed: [String]
        let adopted: [String]
    }

    func run() throws {
        let (_, token) = try configOptions.load()
        let backend = try makeBackend(token)
        let vault = try operatorStep(token.name, "opening the store \(token.store)") { try token.openVault(backend: backend) }
        let audit = try OperatorAuditTrail(configPath: configOptions.config, token: token.name)
        let pin = try soPIN.source(token: token.name).read()
        let details = ["store": token.store]
        let keys = try audit.step("rollback_accept", details: details) {
            try operatorStep(token.name, "SO login") { try vault.recoveryKeys(soPIN: pin, backend: backend) }
        }
        let stored = try operatorStep(token.name, "reading the store") { try vault.database.generation() }
        // Fail closed: the acceptance is on record before it takes effect.
        try audit.success("rollback_accept", details: details.merging(["store_generation": String(stored.value)]) { $1 },
                          keys: keys)
        let accepted = try audit.step("rollback_accept", details: details) {
            try operatorStep(token.name, "accepting the store") { try vault.acceptState(using: keys) }
        }
        let result = Result(token: token.name, storedGeneration: accepted.storedGeneration,
                            recordedGeneration: accepted.recordedGeneration, generation: accepted.generation,
                            removed: accepted.removed, adopted: accepted.adopted)
        if json {
            print(try jsonString(result))
            return
        }
        print("Accepted the store of token '\(token.name)' at generation \(accepted.storedGeneration)"
            + (accepted.recordedGeneration.map { " (its anchor had recorded \($0))" } ?? " (no anchor was recorded)")
            + "; it is now at generation \(accepted.generation)")
        if !accepted.removed.isEmpty {
            print("  removed \(accepted.removed.count) object(s) that did not match their MAC: \(accepted.removed.joined(separator: ", "))")
        }
        if !accepted.adopted.isEmpty {
            print("  authenticated \(accepted.adopted.count) object(s) that carried no MAC: \(accepted.adopted.joined(separator: ", "))")
        }
    }
}
