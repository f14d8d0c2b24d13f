// tg-pkcs11 audit verify | show (docs/audit.md, docs/cli.md). Read the audit log the module writes; verify
// walks the hash chain and the head sidecar and, given a token and its PIN, checks that token's HMAC
// checkpoints under its audit key (derived from the root key exactly as the module derives it).
import ArgumentParser
import Audit
import CP11Kit
import CryptoCore
import Cryptoki
import Foundation
import TokenStore
import PKCS11Names

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Verify and read the tamper-evident audit log.",
        subcommands: [AuditVerify.self, AuditShow.self])
}

struct AuditFileOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The audit log file.",
        discussion: "Default: audit.file of the module's configuration (--config or its discovery), else "
            + "$XDG_DATA_HOME/tensorguard-pkcs11/audit.log (~/.local/share/... without XDG_DATA_HOME).",
        valueName: "path"))
    var file: String?

    @Option(name: .long, help: ArgumentHelp("The module's configuration file (default: the module's discovery).",
                                            valueName: "path"))
    var config: String?

    func resolve() throws -> String {
        if let file { return file }
        do {
            guard let f = try OperatorAudit.file(configPath: config) else {
                throw CLIError("the configuration writes no audit file (audit disabled or syslog only); give --file")
            }
            return f
        } catch let e as OperatorConfigurationError {
            throw CLIError(e.description)
        }
    }
}

struct AuditVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check the audit log's hash chain; report the first broken link with its line number.",
        discussion: """
            Without --token: every record's seq and prev (SHA-256 of the line before) and the head sidecar \
            (<file>.head, which catches whole trailing lines cut off). With --token and that token's PIN (user, \
            or SO with --so): also the token's HMAC checkpoints under its audit key, which an editor of the file \
            cannot recompute; then every checkpoint naming that token must verify (unless the token was \
            re-initialised or restored after it), checkpoints must chain to each other, and every record of the \
            token must lie before one of its verified checkpoints. Pending records without an outcome (a process \
            stopped between announcing a change and finishing it) are listed as "line N: pending ..."; they do not \
            fail the log. Exit status 0 when the log verifies, 1 with "line N: <what>" when it does not.
            """)

    @OptionGroup var fileOptions: AuditFileOptions

    @Option(name: .long, help: ArgumentHelp("Also check the HMAC checkpoints of this token (tokens[].name); needs its PIN.",
                                            valueName: "name"))
    var token: String?

    @Flag(name: .long, help: "The PIN is the SO PIN (default: the user PIN).")
    var so = false

    @OptionGroup var pinOptions: PINOptions

    @Flag(name: .long, help: "Print the result as JSON.")
    var json = false

    struct Report: Codable {
        struct Finding: Codable {
            let line: Int
            let message: String
        }
        let file: String
        let ok: Bool
        let lines: Int
        let records: Int
        let lastSeq: Int64
        let error: Finding?
        let warnings: [Finding]
        let pending: [Finding]
        let token: String?
        let checkpointsVerified: Int
        let checkpointsUnverified: Int
        let lastVerifiedCheckpointLine: Int?

        enum CodingKeys: String, CodingKey {
            case file, ok, lines, records, lastSeq = "last_seq", error, warnings, pending, token
            case checkpointsVerified = "checkpoints_verified", checkpointsUnverified = "checkpoints_unverified"
            case lastVerifiedCheckpointLine = "last_verified_checkpoint_line"
        }
    }

    func run() throws {
        let file = try fileOptions.resolve()
        var keys: [String: SecretBytes] = [:]
        var strict: AuditVerifier.StrictToken?
        if let token {
            keys = try tokenKey(token)
            strict = keys.keys.first.map { AuditVerifier.StrictToken(name: token, uuid: $0) }
        }
        let r: AuditVerification
        do {
            r = try AuditVerifier.verify(path: file, keys: keys, strict: strict)
        } catch let e as AuditError {
            throw CLIError(e.description)
        }
        let finding = { (f: AuditFinding) in Report.Finding(line: f.line, message: f.message) }
        if json {
            let report = Report(file: file, ok: r.ok, lines: r.lines, records: r.records, lastSeq: r.lastSeq,
                                error: r.error.map(finding), warnings: r.warnings.map(finding),
                                pending: r.pending.map(finding), token: token,
                                checkpointsVerified: r.checkpointsVerified, checkpointsUnverified: r.checkpointsUnverified,
                                lastVerifiedCheckpointLine: r.lastVerifiedCheckpointLine)
            print(try jsonString(report))
            if !r.ok { throw ExitCode(1) }
            return
        }
        for w in r.warnings { warn("\(file): \(w)") }
        if let e = r.error { throw CLIError("\(file): \(e)") }
        print("\(file): \(r.records) records, chain intact (last seq \(r.lastSeq)).")
        if !r.pending.isEmpty {
            print("\(r.pending.count) pending record(s) without an outcome:")
            for p in r.pending { print("  \(p)") }
        }
        if let token {
            if r.checkpointsVerified == 0 {
                throw CLIError("\(file): no checkpoint of token '\(token)' (this incarnation of it) found to verify")
            }
            print("Token '\(token)': \(r.checkpointsVerified) checkpoint(s) verified under its audit key; all its records "
                + "(up to line \(r.lastVerifiedCheckpointLine ?? 0)) are authenticated.")
        } else if r.checkpointsUnverified > 0 {
            print("\(r.checkpointsUnverified) checkpoint(s) not checked: give --token NAME and its PIN to check them.")
        }
    }

    /// Logs in to the token's store (as the module does: PIN + backend unwrap) and derives its audit key.
    func tokenKey(_ name: String) throws -> [String: SecretBytes] {
        let token: OperatorTokenConfiguration
        do {
            token = try OperatorConfiguration.load(explicitPath: fileOptions.config).token(named: name)
        } catch let e as OperatorConfigurationError {
            throw CLIError(e.description)
        }
        let backend = try makeBackend(token)
        var vault: TokenVault
        do {
            vault = try token.openVault()
            // Verify writes no checkpoint: one written now would authenticate the very records it is about to check.
            // A wrong PIN is still recorded (it counted); the reset of a count by the right one is not.
            let recordWrongPIN = vault.pinCheckObserver
            vault.pinCheckObserver = { check in if case .wrong = check { recordWrongPIN?(check) } }
        } catch let e as OperatorConfigurationError {
            throw CLIError(e.description)
        } catch {
            throw CLIError("token '\(name)': cannot open the store \(token.store): \(error)")
        }
        let source = try so
            ? PINSource.resolve(envOption: pinOptions.pinEnv, fileOption: pinOptions.pinFile,
                                defaultEnvironment: "TG_PKCS11_SO_PIN", prompt: "SO PIN for token '\(name)': ",
                                optionNames: ("--pin-env", "--pin-file"))
            : pinOptions.source(tokenLabel: name)
        let pin = try source.read()
        do {
            let keys = try vault.login(role: so ? .so : .user, pin: pin, backend: backend)
            return [keys.tokenUUID: try OperatorAudit.auditKey(keys)]
        } catch let e as StoreError {
            throw CLIError("token '\(name)': " + (e.pinFailure(role: "PIN") ?? "login failed: \(e)"))
        } catch {
            throw CLIError("token '\(name)': login failed: \(error)")
        }
    }
}

struct AuditShow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "List audit records, filtered; a table by default, the records themselves with --json.",
        discussion: """
            Filters combine (all must match). --since and --until take UTC times as the records write them, \
            e.g. 2026-11-29 or 2026-11-29T10:00:00Z; --until includes records whose time starts with its value. \
            Show does not verify: run `tg-pkcs11 audit verify` for that.
            """)

    @OptionGroup var fileOptions: AuditFileOptions

    @Option(name: .long, help: ArgumentHelp("Only records of this token (tokens[].name).", valueName: "name"))
    var token: String?

    @Option(name: .long, help: ArgumentHelp("Only records of the object with this CKA_UNIQUE_ID.", valueName: "uid"))
    var object: String?

    @Option(name: .long, help: ArgumentHelp("Only records of objects with this label.", valueName: "label"))
    var label: String?

    @Option(name: .long, help: ArgumentHelp(
        "Only these events (comma-separated), e.g. login,object_destroy,key_use,policy_refusal.", valueName: "event"))
    var event: String?

    @Option(name: .long, help: ArgumentHelp("Only records at or after this UTC time.", valueName: "time"))
    var since: String?

    @Option(name: .long, help: ArgumentHelp("Only records at or before this UTC time.", valueName: "time"))
    var until: String?

    @Flag(name: .long, help: "Print the matching records as a JSON array (each exactly as logged).")
    var json = false

    func validate() throws {
        if object != nil && label != nil { throw ValidationError("give either --object or --label, not both") }
        for (name, value) in [("--since", since), ("--until", until)] {
            if let value, !value.isEmpty, value.first?.isNumber != true {
                throw ValidationError("\(name) takes a UTC time such as 2026-11-29 or 2026-11-29T10:00:00Z")
            }
        }
    }

    func run() throws {
        let file = try fileOptions.resolve()
        guard let data = FileManager.default.contents(atPath: file) else { throw CLIError("\(file): cannot read") }
        let events = event.map { Set($0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }) }
        var matched: [(line: Int, raw: Substring, obj: [String: Any])] = []
        let text = String(decoding: data, as: UTF8.self)
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !raw.isEmpty {
            guard let obj = AuditEncoding.parse(Array(raw.utf8)) else {
                warn("\(file): line \(i + 1) is not a record (run `tg-pkcs11 audit verify`)")
                continue
            }
            let time = obj["time"] as? String ?? ""
            if let token, obj["token"] as? String != token { continue }
            if let object, obj["object_uid"] as? String != object { continue }
            if let label, obj["object_label"] as? String != label { continue }
            if let events, !events.contains(obj["event"] as? String ?? "") { continue }
            if let since, time < since { continue }
            if let until, time > until, !time.hasPrefix(until) { continue }
            matched.append((i + 1, raw, obj))
        }
        if json {
            print("[" + matched.map { "\n  " + $0.raw }.joined(separator: ",") + (matched.isEmpty ? "]" : "\n]"))
            return
        }
        var rows = [["LINE", "SEQ", "TIME", "EVENT", "OUTCOME", "RV", "TOKEN", "ROLE", "OBJECT", "DETAIL"]]
        for m in matched {
            let o = m.obj
            let rvText: String
            if let rv = o["rv"] as? String, let v = UInt(rv.dropFirst(2), radix: 16) {
                rvText = ReturnValueNames.name(of: CK_RV(v))
            } else {
                rvText = "-"
            }
            var object = "-"
            if let l = o["object_label"] as? String, !l.isEmpty { object = l }
            if let u = o["object_uid"] as? String { object = object == "-" ? u : "\(object) (\(u))" }
            var detail: [String] = []
            if o["event"] as? String == "key_use" {
                detail.append("\(o["operation"] as? String ?? "?") x\(AuditEncoding.int(o["count"]) ?? 0) "
                    + "\(o["first_use"] as? String ?? "")..\(o["last_use"] as? String ?? "")")
            }
            if let r = o["reason"] as? String { detail.append(r) }
            if let d = o["details"] as? [String: Any] {
                detail.append(d.keys.sorted().map { "\($0)=\(d[$0] ?? "")" }.joined(separator: " "))
            }
            if let s = AuditEncoding.int(o["session"]) { detail.append("session \(s)") }
            rows.append(["\(m.line)", "\(AuditEncoding.int(o["seq"]) ?? 0)", o["time"] as? String ?? "-",
                         o["event"] as? String ?? "-", o["outcome"] as? String ?? "-", rvText,
                         o["token"] as? String ?? "-", o["role"] as? String ?? "-", object,
                         detail.isEmpty ? "-" : detail.joined(separator: "; ")])
        }
        let widths = (0..<rows[0].count - 1).map { c in rows.map { $0[c].count }.max() ?? 0 }
        for row in rows {
            var line = ""
            for (c, cell) in row.enumerated() {
                line += c < widths.count ? cell.padding(toLength: widths[c] + 2, withPad: " ", startingAt: 0) : cell
            }
            print(line)
        }
        if matched.isEmpty { warn("no matching records in \(file)") }
    }
}
