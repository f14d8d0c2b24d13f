// tg-pkcs11 backup | restore: break-glass copies of a token's store (format: TokenStore/TokenBackup.swift,
// docs/storage-format.md "Backup file"). Like rotate-kek these work on the store directly, not through the module.
import ArgumentParser
import Audit
import CryptoCore
import Cryptoki
import Foundation
import KeyWrap
import TokenStore
#if canImport(Glibc)
import Glibc
#endif

struct SOPINOptions: ParsableArguments {
    @Option(name: .customLong("so-pin-env"), help: ArgumentHelp("Read the SO PIN from this environment variable.", valueName: "var"))
    var soPINEnv: String?
    @Option(name: .customLong("so-pin-file"), help: ArgumentHelp("Read the SO PIN from the first line of this file.", valueName: "path"))
    var soPINFile: String?

    func source(token: String) throws -> PINSource {
        try PINSource.resolve(envOption: soPINEnv, fileOption: soPINFile, defaultEnvironment: "TG_PKCS11_SO_PIN",
                              prompt: "SO PIN for token '\(token)': ", optionNames: ("--so-pin-env", "--so-pin-file"))
    }
}

/// Runs a store / backend / backup step and turns its error into one line naming the token and the step.
func operatorStep<R>(_ token: String, _ what: String, _ body: () throws -> R) throws -> R {
    do {
        return try body()
    } catch let e as StoreError {
        if let pin = e.pinFailure(role: "SO PIN") {
            throw CLIError("token '\(token)': \(pin)" + (e.locksPIN ? " (re-initialise the token or restore a backup)" : ""))
        }
        switch e {
        case .tokenNotInitialized: throw CLIError("token '\(token)' is not initialised")
        default: throw CLIError("token '\(token)': \(what) failed: \(e)")
        }
    } catch let e as KeyWrapError {
        throw CLIError("token '\(token)': \(what) failed: \(e)")
    } catch let e as TokenBackupError {
        throw CLIError("\(what): \(e)")
    } catch let e as OperatorConfigurationError {
        throw CLIError(e.description)
    }
}

/// The module's audit log (docs/audit.md, `audit:` in the configuration): backup, restore and token deletion work
/// on the store directly, so they record themselves, like rotate-kek. No PIN or key byte goes into a record.
struct OperatorAuditTrail {
    let log: AuditLog?
    let token: String

    init(configPath: String?, token: String) throws {
        do {
            log = try OperatorAudit.log(configPath: configPath)
        } catch {
            throw CLIError("audit log: \(error)")
        }
        self.token = token
    }

    /// A success record (with an HMAC checkpoint when `keys` are given); failing to write it is an error.
    func success(_ event: String, details: [String: String], keys: SessionKeys? = nil) throws {
        guard let log else { return }
        do {
            try OperatorAudit.record(log, event: event, success: true, token: token, role: "so", reason: nil,
                                     details: details, keys: keys)
        } catch {
            throw CLIError("token '\(token)': the audit record (\(event)) could not be written: \(error)")
        }
    }

    /// A failure record, best effort: the command fails anyway and says why.
    func failure(_ event: String, _ error: Error, details: [String: String]) {
        guard let log else { return }
        try? OperatorAudit.record(log, event: event, success: false, token: token, role: "so", reason: "\(error)",
                                  details: details, keys: nil)
    }

    /// Runs `body`; a thrown error is recorded as a failure of `event` and rethrown.
    func step<R>(_ event: String, details: [String: String], _ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch {
            failure(event, error, details: details)
            throw error
        }
    }
}

/// A 0700 directory for intermediate files (the decrypted snapshot never leaves it); removed by `remove()`.
final class PrivateDirectory {
    let path: String

    init(in parent: String, prefix: String) throws {
        var template = Array((parent + "/." + prefix + "-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ $0.baseAddress.flatMap { mkdtemp($0) } }) else {
            throw CLIError("cannot create a private directory in '\(parent)': \(String(cString: strerror(errno)))")
        }
        path = String(cString: made)
        chmod(path, 0o700)
    }

    func file(_ name: String) -> String { path + "/" + name }

    func remove() { try? FileManager.default.removeItem(atPath: path) }

    deinit { remove() }
}

/// Test mode of the CLI (debug builds only): `TG_PKCS11_TEST_CRASH_AT=<point>` kills this process with SIGKILL when a
/// command reaches that point (no cleanup runs, as after kill -9 or a power cut), so a test stops a command between two
/// of its steps deterministically. Points: `restore-kept-aside`, `restore-log-removed`, `restore-replaced`
/// (StoreReplacement.Point). A release build ignores the variable.
enum TestMode {
    static let crashVariable = "TG_PKCS11_TEST_CRASH_AT"

    static func crashPoint(_ name: String) {
        #if DEBUG
        guard let value = getenv(crashVariable), String(cString: value) == name else { return }
        kill(getpid(), SIGKILL)
        #endif
    }
}

/// The existing entries of a token database file set (main file, WAL, shared-memory index).
func databaseFileSet(_ main: String) -> [String] {
    [main, main + "-wal", main + "-shm"].filter { access($0, F_OK) == 0 }
}

struct BackupSummary: Codable {
    let file: String
    let token: String
    let label: String
    let serial: String
    let uuid: String
    let backend: BackendDescriptorReport
    let objects: Int
    let created: String
    let backupVersion: Int
    let storeFormatVersion: Int
    let bytes: Int
    /// restore only
    let store: String?
    let replaced: String?
    let verifiedObjects: Int?

    init(file: String, token: String, metadata m: TokenBackupMetadata, bytes: Int, store: String? = nil,
         replaced: String? = nil, verifiedObjects: Int? = nil) {
        self.file = file
        self.token = token
        label = m.label
        serial = m.serialNumber
        uuid = m.tokenUUID
        backend = BackendDescriptorReport(m.backend)
        objects = m.objectCount
        created = isoTime(m.created)
        backupVersion = m.backupVersion
        storeFormatVersion = m.storeFormatVersion
        self.bytes = bytes
        self.store = store
        self.replaced = replaced
        self.verifiedObjects = verifiedObjects
    }
}

func isoTime(_ seconds: Int64) -> String {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime]
    return f.string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
}

struct Backup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Write an encrypted, integrity-protected backup file of a token (break-glass recovery).",
        discussion: """
            Needs the token's SO PIN (--so-pin-env, --so-pin-file, $TG_PKCS11_SO_PIN or a prompt; counted like a \
            C_Login) and its configured backend (the SO login unwraps the root key once, proving the backup will \
            restore). Takes a consistent snapshot of the store while other processes keep using the token, checks \
            it (integrity_check, every sealed value opens) and writes one file, mode 0600: clear metadata (label, \
            serial, backend, object count, time), the snapshot encrypted with AES-256-GCM under a key that only \
            the SO PIN opens, and a SHA-256 trailer. Objects stay sealed under the root key, which only the \
            token's backend (the same HSM KEK or KMS key) unwraps: restoring needs the SO PIN and that backend. \
            An existing file is not replaced without --force.
            """)

    @OptionGroup var configOptions: ConfigOptions
    @Option(name: .shortAndLong, help: ArgumentHelp("The backup file to write.", valueName: "file"))
    var output: String
    @Flag(name: .long, help: "Replace an existing backup file.")
    var force = false
    @OptionGroup var soPIN: SOPINOptions
    @Flag(name: .long, help: "Print a JSON object.")
    var json = false

    func validate() throws {
        guard !output.isEmpty else { throw ValidationError("--output must not be empty") }
    }

    func run() throws {
        let (_, token) = try configOptions.load()
        var st = stat()
        if stat(output, &st) == 0 {
            if (st.st_mode & S_IFMT) == S_IFDIR { throw CLIError("--output '\(output)' is a directory") }
            if !force { throw CLIError("'\(output)' already exists; use --force to replace it") }
        }
        let parent = (output as NSString).deletingLastPathComponent
        let parentDir = parent.isEmpty ? "." : parent
        guard stat(parentDir, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw CLIError("the directory of --output '\(output)' does not exist")
        }
        let backend = try makeBackend(token)
        let vault = try operatorStep(token.name, "opening the store \(token.store)") { try token.openVault() }
        let record = try operatorStep(token.name, "reading the store") { try vault.database.tokenRecord() }
        guard record.isInitialized else { throw CLIError("token '\(token.name)' is not initialised: nothing to back up") }
        let audit = try OperatorAuditTrail(configPath: configOptions.config, token: token.name)
        let pin = try soPIN.source(token: token.name).read()
        let keys = try audit.step("token_backup", details: ["file": output]) {
            try operatorStep(token.name, "SO login with the configured backend") {
                try vault.login(role: .so, pin: pin, backend: backend)
            }
        }

        let scratch = try PrivateDirectory(in: token.store, prefix: "backup")
        defer { scratch.remove() }
        let snapshotPath = scratch.file(TokenDatabase.fileName)
        try operatorStep(token.name, "snapshot") { try TokenBackup.snapshot(vault.database, to: snapshotPath) }
        let created = Int64(time(nil))
        // The snapshot is checked and described while open, then closed before its bytes are read.
        let (info, damaged): (TokenBackup.SnapshotInfo, [String]) = try {
            let snap = try operatorStep(token.name, "opening the snapshot") { try token.openVault(directory: scratch.path) }
            let check = try operatorStep(token.name, "snapshot integrity check") { try snap.database.integrityCheck() }
            guard check == ["ok"] else {
                throw CLIError("token '\(token.name)': the store fails PRAGMA integrity_check (\(check.prefix(3).joined(separator: "; "))); "
                    + "not backing up a damaged database")
            }
            let progress = Progress("Verifying objects", quiet: json)
            defer { progress.finish() }
            let damaged = try operatorStep(token.name, "verifying objects") {
                try snap.database.verifySealedValues(keys: keys) { progress.update($0, of: $1) }
            }
            return (try operatorStep(token.name, "reading the snapshot") { try TokenBackup.describe(snap.database) }, damaged)
        }()
        if !damaged.isEmpty {
            warn("\(damaged.count) object(s) have sealed values that do not open (backed up as they are): "
                + damaged.prefix(5).joined(separator: ", "))
        }
        for extra in databaseFileSet(snapshotPath).dropFirst() { unlink(extra) }   // empty WAL left by the close
        let snapshot = try Files.read(snapshotPath, what: "snapshot")
        let (file, metadata) = try operatorStep(token.name, "sealing the backup") {
            try TokenBackup.seal(snapshot: snapshot, info: info, keys: keys, tokenName: token.name, created: created)
        }
        if !force, access(output, F_OK) == 0 { throw CLIError("'\(output)' already exists; use --force to replace it") }
        try Files.write(file, to: output, what: "backup file", mode: 0o600)
        do {
            try audit.success("token_backup", details: ["file": output, "serial": metadata.serialNumber,
                                                        "objects": String(metadata.objectCount)], keys: keys)
        } catch {
            unlink(output)   // no backup without its audit record
            throw error
        }
        let summary = BackupSummary(file: output, token: token.name, metadata: metadata, bytes: file.count)
        if json {
            print(try jsonString(summary))
        } else {
            print("Backed up token '\(token.name)' (label '\(metadata.label)', serial \(metadata.serialNumber)) to \(output)")
            print("  objects: \(metadata.objectCount), \(file.count) bytes, backend \(metadata.backend.kind)"
                + (metadata.backend.keyID.isEmpty ? "" : " \(metadata.backend.keyID)")
                + (metadata.backend.keyVersion.isEmpty ? "" : " \(metadata.backend.keyVersion)"))
            print("  Restoring needs this token's SO PIN and the same backend key; keep the file as safe as the store.")
        }
    }
}

struct Restore: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore a token from a backup file into the store of a configured token.",
        discussion: """
            --token NAME (tokens[].name of the configuration) decides the store directory and the backend. The \
            file's checksum is checked first (a damaged file is refused as damaged), then its backend against the \
            configured one, then the SO PIN opens it. The database is checked in a private directory — \
            PRAGMA integrity_check, an SO login through the configured backend (proves the backend holds the key \
            the backup needs), and unless --no-verify every sealed value — and only then moved into the store. \
            A store that already holds an initialised token is only replaced with --force; its database is kept \
            beside it as token.sqlite.replaced-<time> (hard links), and the restored database takes its place with one \
            rename: a restore killed at any point leaves the old or the new token.sqlite, never none. Stop \
            processes using the token before restoring over it.
            """)

    @OptionGroup var configOptions: ConfigOptions
    @Option(name: .shortAndLong, help: ArgumentHelp("The backup file.", valueName: "file"))
    var file: String
    @Flag(name: .long, help: "Replace an initialised token (its database is kept as token.sqlite.replaced-<time>).")
    var force = false
    @Flag(name: .customLong("no-verify"), help: "Do not unseal every object to check it.")
    var noVerify = false
    @OptionGroup var soPIN: SOPINOptions
    @Flag(name: .long, help: "Print a JSON object.")
    var json = false

    func validate() throws {
        guard !file.isEmpty else { throw ValidationError("--file must not be empty") }
    }

    func run() throws {
        let (_, token) = try configOptions.load()
        let bytes = try Files.read(file, what: "backup file")
        let header = try operatorStep(token.name, "'\(file)'") { try TokenBackup.inspect(bytes) }
        let backend = try makeBackend(token)
        let configured = backend.descriptor
        guard header.backend.kind == configured.kind, header.backend.keyID == configured.keyID else {
            throw CLIError("'\(file)' is a backup of token '\(header.label)' (serial \(header.serialNumber)) whose root key "
                + "is wrapped by backend \(describe(header.backend)); token '\(token.name)' is configured with "
                + "\(describe(configured)). Restoring needs the same backend (HSM token and KEK, or KMS key): "
                + "configure it for token '\(token.name)' and try again")
        }
        let target = token.databasePath
        var st = stat()
        if stat(token.store, &st) == 0, (st.st_mode & S_IFMT) != S_IFDIR {
            throw CLIError("store path '\(token.store)' of token '\(token.name)' exists and is not a directory")
        }
        // Whether the current database must be kept aside: an initialised token, or one that cannot be read (a
        // damaged store is the usual reason for a break-glass restore).
        var keepAside = false
        if access(target, F_OK) == 0 {
            let keptAs = "its database is kept as \(TokenDatabase.fileName).replaced-<time>"
            var record: TokenRecord?
            do {
                record = try token.openVault().database.tokenRecord()
            } catch {
                guard force else {
                    throw CLIError("the current database of token '\(token.name)' (\(target)) cannot be read (\(error)); "
                        + "use --force to replace it (\(keptAs))")
                }
                keepAside = true
            }
            if let record, record.isInitialized {
                keepAside = true
                if !force {
                    throw CLIError("token '\(token.name)' at \(token.store) already holds an initialised token (label "
                        + "'\(trimmed(record.label))', serial \(record.serialNumber)); use --force to replace it (\(keptAs))")
                }
            }
        }
        let audit = try OperatorAuditTrail(configPath: configOptions.config, token: token.name)
        let auditDetails = ["file": file, "serial": header.serialNumber]
        let pin = try soPIN.source(token: token.name).read()
        let (metadata, snapshot) = try audit.step("token_restore", details: auditDetails) {
            try operatorStep(token.name, "'\(file)'") { try TokenBackup.open(bytes, soPIN: pin) }
        }

        // As the module creates it: the store and every missing parent 0700, whatever the umask.
        do {
            _ = try StoreDirectory.prepare(token.store)
        } catch {
            throw CLIError("cannot create the store directory '\(token.store)': \(error)")
        }
        let scratch = try PrivateDirectory(in: token.store, prefix: "restore")
        defer { scratch.remove() }
        let staged = scratch.file(TokenDatabase.fileName)
        try Files.write(snapshot, to: staged, what: "restored database", mode: 0o600)
        var verified: Int?
        var restoredKeys: SessionKeys?
        do {
            let vault = try operatorStep(token.name, "opening the restored database") { try token.openVault(directory: scratch.path) }
            let check = try operatorStep(token.name, "integrity check") { try vault.database.integrityCheck() }
            guard check == ["ok"] else {
                throw CLIError("the database in '\(file)' fails PRAGMA integrity_check: \(check.prefix(3).joined(separator: "; "))")
            }
            let record = try operatorStep(token.name, "reading the restored database") { try vault.database.tokenRecord() }
            guard record.isInitialized, record.tokenUUID == metadata.tokenUUID, record.serialNumber == metadata.serialNumber else {
                throw CLIError("the database in '\(file)' does not match its header; refusing it")
            }
            guard record.formatVersion <= TokenDatabase.formatVersion else {
                throw CLIError("the database in '\(file)' has storage format \(record.formatVersion); this build reads up to "
                    + "\(TokenDatabase.formatVersion)")
            }
            let keys: SessionKeys
            do {
                keys = try vault.login(role: .so, pin: pin, backend: backend)
                restoredKeys = keys
                // A restore is a rollback the SO asked for: the restored store moves above the generation the
                // token's anchor recorded, so the next login takes it (docs/storage-format.md §Rollback).
                let recorded = try TokenAnchor(directory: token.anchorDirectory, backend: backend as? any AnchorHoldingBackend)
                    .read(record.tokenUUID)?.generation ?? 0
                _ = try vault.acceptState(using: keys, floor: recorded)
            } catch let e as StoreError {
                audit.failure("token_restore", e, details: auditDetails)
                throw CLIError("the configured backend of token '\(token.name)' (\(describe(configured))) cannot unwrap the "
                    + "root key of this backup: \(e). The backup needs the HSM KEK or KMS key it was made with; nothing "
                    + "was restored")
            }
            if !noVerify {
                let progress = Progress("Verifying objects", quiet: json)
                let damaged = try operatorStep(token.name, "verifying objects") {
                    try vault.database.verifySealedValues(keys: keys) { progress.update($0, of: $1) }
                }
                progress.finish()
                guard damaged.isEmpty else {
                    throw CLIError("\(damaged.count) restored object(s) do not unseal (\(damaged.prefix(5).joined(separator: ", "))); "
                        + "nothing was restored (use --no-verify to restore anyway)")
                }
                verified = metadata.objectCount
            }
        }
        // The staged database is closed (its connection went with `vault`): SQLite checkpointed and removed its WAL.
        guard databaseFileSet(staged).count == 1 else {
            throw CLIError("the restored database was not closed cleanly; nothing was restored")
        }
        // The current database's WAL goes into its main file (checkpoint, then close: SQLite removes the WAL), so the
        // one rename below swaps two complete databases. A database SQLite cannot open keeps its WAL, kept aside.
        if access(target, F_OK) == 0, let current = try? TokenDatabase(directory: token.store, indexedAttributes: []) {
            guard current.checkpoint() else {
                throw CLIError("the current database of token '\(token.name)' is in use (its WAL could not be checkpointed); "
                    + "stop the processes using the token and try again; nothing was restored")
            }
        }
        // Recorded before the store changes; a failure to move the files is recorded as such.
        try audit.success("token_restore", details: auditDetails.merging(["objects": String(metadata.objectCount)]) { $1 },
                          keys: restoredKeys)
        let stamp = isoTime(Int64(time(nil))).replacingOccurrences(of: ":", with: "")
        let replaced: String?
        do {
            replaced = try StoreReplacement.replace(target, with: staged, keepAsideStamp: keepAside ? stamp : nil,
                                                    reached: { TestMode.crashPoint("restore-" + $0.rawValue) })
        } catch let e as StoreReplacement.Failure {
            let error = CLIError("token '\(token.name)': \(e)")
            audit.failure("token_restore", error, details: auditDetails)
            throw error
        }

        let summary = BackupSummary(file: file, token: token.name, metadata: metadata, bytes: bytes.count,
                                    store: token.store, replaced: replaced, verifiedObjects: verified)
        if json {
            print(try jsonString(summary))
        } else {
            print("Restored token '\(metadata.label)' (serial \(metadata.serialNumber)) into token '\(token.name)' at \(token.store)")
            print("  backup of \(summary.created), \(metadata.objectCount) objects"
                + (verified != nil ? ", every sealed value verified" : " (not verified: --no-verify)")
                + "; SO login through backend \(describe(configured)) succeeded")
            if let replaced { print("  previous database kept as \(replaced)") }
        }
    }

    private func describe(_ d: BackendDescriptor) -> String { BackendDescriptorReport(d).text }

    private func trimmed(_ label: [UInt8]) -> String {
        String(decoding: label, as: UTF8.self).trimmingCharacters(in: .whitespaces)
    }
}
