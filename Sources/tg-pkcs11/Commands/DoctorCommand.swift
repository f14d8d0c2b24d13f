// tg-pkcs11 doctor: is this host set up to use its tokens? Configuration found and valid, permissions, backend
// reachable, store integrity. Each check is ok / warn / fail with a hint; exit status 1 when any check fails.
import ArgumentParser
import Cryptoki
import Foundation
import KeyWrap
import TokenStore
#if canImport(Glibc)
import Glibc
#endif

struct DoctorReport: Codable {
    enum Status: String, Codable { case ok, warn, fail }
    struct Check: Codable {
        let name: String
        let token: String?
        let status: Status
        let detail: String
        let hint: String?
    }
    let config: String?
    let discovery: String
    var checks: [Check]
    var healthy: Bool { !checks.contains { $0.status == .fail } }

    enum CodingKeys: String, CodingKey { case config, discovery, checks, healthy }
    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(config, forKey: .config)
        try c.encode(discovery, forKey: .discovery)
        try c.encode(checks, forKey: .checks)
        try c.encode(healthy, forKey: .healthy)
    }
    init(config: String?, discovery: String, checks: [Check]) {
        self.config = config
        self.discovery = discovery
        self.checks = checks
    }
    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        config = try c.decodeIfPresent(String.self, forKey: .config)
        discovery = try c.decode(String.self, forKey: .discovery)
        checks = try c.decode([Check].self, forKey: .checks)
    }
}

struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check the configuration, permissions, backends and token stores of this host.",
        discussion: """
            Checks: the configuration file (which file, found by which discovery rule) and that the module's \
            loader accepts it; its permissions (it and every directory above it owned by you or root and not \
            group/world-writable, symlinks resolved: what the module refuses); the audit log (a disabled one fails \
            unless audit.reason says why); for each token \
            (or --token NAME): store directory 0700 and database 0600 owned by you, the backend reachable (its \
            health check: for pkcs11 the HSM token, PIN and KEK; cloud KMS a wrap round trip) and matching the \
            backend recorded in the store, and the store's integrity (PRAGMA integrity_check, format version, \
            initialised, PINs not locked). Each check prints ok, warn or fail with a hint. Exit status 1 when any \
            check fails. Needs no PIN and changes nothing.
            """)

    @OptionGroup var configOptions: ConfigOptions
    @Flag(name: .long, help: "Print a JSON object.")
    var json = false
    @Flag(name: .customLong("skip-backend"), help: "Do not contact the backends.")
    var skipBackend = false

    func run() throws {
        let discovery = OperatorConfigurationDiscovery.discover(explicitPath: configOptions.config)
        var report = DoctorReport(config: discovery.path, discovery: discovery.rule, checks: [])
        func addToken(_ name: String, _ token: String?, _ status: DoctorReport.Status, _ detail: String, _ hint: String?) {
            report.checks.append(.init(name: name, token: token, status: status, detail: detail, hint: hint))
        }
        func add(_ name: String, _ status: DoctorReport.Status, _ detail: String, hint: String? = nil) {
            addToken(name, nil, status, detail, hint)
        }

        if let path = discovery.path {
            var st = stat()
            if stat(path, &st) != 0 {
                add("config-found", .fail, "\(path) (from \(discovery.rule)) cannot be read: \(String(cString: strerror(errno)))",
                    hint: "create it (docs/config.md) or point \(discovery.rule) at an existing file")
            } else {
                add("config-found", .ok, "\(path) (from \(discovery.rule))")
                // The module's own rule (TrustedFile): what it refuses at C_Initialize fails here.
                if let problem = TrustedFile.problem(path) {
                    add("config-permissions", .fail, problem, hint: st.st_mode & (S_IWGRP | S_IWOTH) != 0
                        ? "chmod go-w \(path)"
                        : "the file and every directory above it must be owned by you or root and not group/world-writable")
                } else {
                    add("config-permissions", .ok, "mode \(octal(st.st_mode)), owner uid \(st.st_uid)")
                }
            }
        } else {
            add("config-found", .ok, "no configuration file; the built-in default applies (one token 'default' on the local backend)",
                hint: nil)
        }

        let configuration: OperatorConfiguration
        do {
            configuration = try OperatorConfiguration.load(explicitPath: configOptions.config)
            add("config-valid", .ok, "\(configuration.tokens.count) token(s): "
                + configuration.tokens.map(\.name).joined(separator: ", "))
        } catch let e as OperatorConfigurationError {
            add("config-valid", .fail, e.description, hint: "fix the file (docs/config.md); the module refuses it at C_Initialize")
            return try finish(report)
        }
        checkAudit(add)
        let tokens: [OperatorTokenConfiguration]
        if let name = configOptions.token {
            do {
                tokens = [try configuration.token(named: name)]
            } catch let e as OperatorConfigurationError {
                addToken("token", name, .fail, e.description, "use a name from tokens[].name")
                return try finish(report)
            }
        } else {
            tokens = configuration.tokens
        }
        for token in tokens { checkToken(token, addToken) }
        try finish(report)
    }

    private func checkToken(_ token: OperatorTokenConfiguration,
                            _ add: (String, String?, DoctorReport.Status, String, String?) -> Void) {
        let name = token.name
        var st = stat()
        var storeExists = false
        if stat(token.store, &st) != 0 {
            add("store-permissions", name, .warn, "store directory \(token.store) does not exist yet",
                "the module creates it (0700) at first use; or restore a backup into it")
        } else if (st.st_mode & S_IFMT) != S_IFDIR {
            add("store-permissions", name, .fail, "\(token.store) is not a directory", "fix tokens[].store of '\(name)'")
        } else {
            storeExists = true
            let status = permissionStatus(token.store, st)
            add("store-permissions", name, status,
                status == .fail ? TrustedFile.problem(token.store) ?? "" : "directory \(token.store): mode \(octal(st.st_mode)), owner uid \(st.st_uid)",
                status == .ok ? nil : "chmod 700 \(token.store); it must be owned by the account that runs the module")
        }
        if storeExists {
            let leftovers = ((try? FileManager.default.contentsOfDirectory(atPath: token.store)) ?? [])
                .filter { $0.hasPrefix(".backup-") || $0.hasPrefix(".restore-") }.sorted()
            if !leftovers.isEmpty {
                add("store-leftovers", name, .warn, "private directories of an interrupted backup or restore: "
                    + leftovers.joined(separator: ", "), "remove them (rm -r) once no backup or restore is running")
            }
        }
        let db = token.databasePath
        var databaseExists = false
        if storeExists {
            if stat(db, &st) != 0 {
                add("database-permissions", name, .warn, "no database yet (\(db))",
                    "initialise the token (tg-pkcs11 token init) or restore a backup")
            } else {
                databaseExists = true
                let status = permissionStatus(db, st)
                add("database-permissions", name, status,
                    status == .fail ? TrustedFile.problem(db) ?? "" : "\(db): mode \(octal(st.st_mode)), owner uid \(st.st_uid)",
                    status == .ok ? nil : "chmod 600 \(db) (and its -wal/-shm files)")
            }
        }

        // The store's generation against its anchor (docs/storage-format.md §Rollback): without the root key the MACs
        // cannot be checked here (the next login does), but an older store or a missing anchor shows.
        func anchorCheck(_ vault: TokenVault, _ record: TokenRecord) {
            do {
                let (generation, authenticated) = try vault.database.generation()
                guard authenticated else {
                    return add("store-anchor", name, .warn, "storage format \(record.formatVersion): objects are not authenticated yet",
                               "log in once (any role): the first login authenticates every object")
                }
                guard let anchored = try TokenAnchor(directory: token.anchorDirectory).read(record.tokenUUID) else {
                    return add("store-anchor", name, .warn, "generation \(generation); no anchor in \(token.anchorDirectory) "
                        + "(a rollback of this store would go unnoticed)", "log in once on this host: the login records it")
                }
                if anchored.generation > generation {
                    add("store-anchor", name, .fail, "the store is at generation \(generation) but its anchor recorded "
                        + "\(anchored.generation): an older copy of the store; logins are refused",
                        "investigate, then tg-pkcs11 token accept-rollback (SO PIN)")
                } else {
                    add("store-anchor", name, .ok, "generation \(generation), anchor at \(anchored.generation) (\(token.anchorDirectory))", nil)
                }
            } catch {
                add("store-anchor", name, .fail, "anchor: \(error)", "check \(token.anchorDirectory)")
            }
        }

        var recorded: BackendDescriptor?
        if databaseExists {
            if !isSQLiteFile(db) {
                add("store-integrity", name, .fail, "\(db) is not an SQLite database", "restore the token from a backup")
            } else {
                do {
                    let vault = try token.openVault()
                    let check = try vault.database.integrityCheck()
                    let record = try vault.database.tokenRecord()
                    recorded = record.backend
                    if check != ["ok"] {
                        add("store-integrity", name, .fail, "PRAGMA integrity_check: " + check.prefix(3).joined(separator: "; "),
                            "restore the token from a backup (tg-pkcs11 restore)")
                    } else if record.formatVersion > TokenDatabase.formatVersion {
                        add("store-integrity", name, .fail, "format version \(record.formatVersion) is newer than this build (\(TokenDatabase.formatVersion))",
                            "use the module version that wrote it")
                    } else if !record.isInitialized {
                        add("store-integrity", name, .warn, "integrity ok, format version \(record.formatVersion), token not initialised",
                            "tg-pkcs11 token init, or tg-pkcs11 restore")
                    } else if record.soPIN.isLocked || record.userPIN.isLocked {
                        let which = [record.soPIN.isLocked ? "SO" : nil, record.userPIN.isLocked ? "user" : nil].compactMap { $0 }
                        add("store-integrity", name, .warn, "integrity ok, format version \(record.formatVersion); "
                            + "\(which.joined(separator: " and ")) PIN locked",
                            record.soPIN.isLocked ? "re-initialise the token or restore a backup" : "the SO resets the user PIN (C_InitPIN)")
                    } else {
                        add("store-integrity", name, .ok, "integrity ok, format version \(record.formatVersion), initialised, "
                            + "\(try vault.database.objectCount()) objects", nil)
                    }
                    if record.isInitialized { anchorCheck(vault, record) }
                    let raw = try token.rawDecryptionKeyLabels()
                    add("key-rules", name, raw.isEmpty ? .ok : .warn,
                        raw.isEmpty ? "no N2HE key with decryption rule raw"
                            : "N2HE keys with decryption rule raw (any user-PIN holder can recover them): " + raw.joined(separator: ", "),
                        raw.isEmpty ? nil : "re-import them without --decrypt-rule raw once no LWE1 ciphertext needs them (docs/n2he.md)")
                    let trusted = try token.trustedKeyLabels()
                    if !trusted.isEmpty {
                        add("trusted-keys", name, .ok, "keys the SO marked CKA_TRUSTED (may wrap keys out): " + trusted.joined(separator: ", "),
                            nil)
                    }
                } catch {
                    add("store-integrity", name, .fail, "cannot open \(db): \(error)", "restore the token from a backup")
                }
            }
        }

        if token.allowsMixedKeyRoles {
            add("key-roles", name, .warn, "policy allow_mixed_key_roles is true: keys may both wrap and encrypt/decrypt",
                "remove it once no legacy application needs it (docs/policies.md)")
        }
        for notice in token.backend.deprecationNotices {
            add("backend-options", name, .warn, notice, "rename the option (docs/backends/)")
        }
        let backend: any KeyWrapBackend
        do {
            backend = try BackendFactory.make(token.backend)
        } catch {
            add("backend", name, .fail, "\(token.backend.kind) backend refused: \(error)", "fix the backend section (docs/backends/)")
            return
        }
        let d = backend.descriptor
        if let recorded, recorded.kind != d.kind || recorded.keyID != d.keyID {
            add("backend-match", name, .fail, "the store's root key is wrapped by \(recorded), the configuration names \(d)",
                "configure the backend the token was initialised with (or rotated to: tg-pkcs11 rotate-kek)")
        }
        guard !skipBackend else { return }
        do {
            if let hsm = backend as? PKCS11Backend {
                let r = hsm.healthReport()
                if let failed = r.checks.first(where: { !$0.passed }) {
                    throw KeyWrapError.misconfigured("\(failed.name): \(failed.detail)")
                }
                if let e = r.error { throw e }
            } else if let kms = backend as? AWSKMSBackend {
                let r = kms.healthReport()
                if let failed = r.checks.first(where: { !$0.passed }) {
                    throw KeyWrapError.misconfigured("\(failed.name): \(failed.detail)")
                }
                if let e = r.error { throw e }
            } else {
                try backend.checkHealth()
            }
            add("backend", name, .ok, d.kind == LocalBackend.kind ? "local: nothing to reach (PIN-protected root key)"
                : "\(d) reachable, wrap/unwrap round trip ok", nil)
        } catch {
            add("backend", name, .fail, "\(d): \(error)", "tg-pkcs11 backend check --token \(name) shows every step")
        }
    }

    /// A disabled audit log fails unless the configuration says why (`audit: {enabled: false, reason: ...}`).
    private func checkAudit(_ add: (String, DoctorReport.Status, String, String?) -> Void) {
        let setting: OperatorAuditSetting
        do {
            setting = try OperatorAuditSetting.load(configPath: configOptions.config)
        } catch {
            add("audit", .fail, "\(error)", "fix the audit section (docs/audit.md)")
            return
        }
        if setting.enabled {
            let places = [setting.file.map { "file \($0)" }, setting.syslogSocket.map { "syslog \($0)" }].compactMap { $0 }
            add("audit", .ok, "audit log on: " + places.joined(separator: " and "), nil)
        } else if let reason = setting.disabledReason {
            add("audit", .warn, "audit log disabled (reason: \(reason)): state changes and key exports are not recorded",
                "switch it back on (audit.enabled: true) once the reason no longer holds")
        } else {
            add("audit", .fail, "audit log disabled (audit.enabled: false) and the configuration gives no reason",
                "remove enabled: false, or say why next to it: audit: { enabled: false, reason: \"...\" } (docs/audit.md)")
        }
    }

    /// Fail: the module refuses it (TrustedFile: owner, group/world write on it or a directory above). Warn: looser
    /// than 0700/0600 or not owned by you.
    private func permissionStatus(_ path: String, _ st: stat) -> DoctorReport.Status {
        if TrustedFile.problem(path) != nil { return .fail }
        if st.st_uid != getuid() || st.st_mode & 0o077 != 0 { return .warn }
        return .ok
    }

    private func octal(_ mode: mode_t) -> String { "0" + String(mode & 0o7777, radix: 8) }

    private func finish(_ report: DoctorReport) throws {
        if json {
            print(try jsonString(report))
        } else {
            for c in report.checks {
                let tag = c.status == .ok ? "[ok]  " : c.status == .warn ? "[warn]" : "[FAIL]"
                print("\(tag) \(c.name)\(c.token.map { " (\($0))" } ?? ""): \(c.detail)")
                if let hint = c.hint, c.status != .ok { print("       hint: \(hint)") }
            }
            let fails = report.checks.filter { $0.status == .fail }.count
            let warns = report.checks.filter { $0.status == .warn }.count
            print(fails == 0 ? "healthy (\(warns) warning\(warns == 1 ? "" : "s"))" : "\(fails) check\(fails == 1 ? "" : "s") failed")
        }
        if !report.healthy { throw ExitCode.failure }
    }
}
