// The `audit:` section of the configuration (docs/config.md, docs/audit.md). On by default: a file under
// $XDG_DATA_HOME (or ~/.local/share)/tensorguard-pkcs11/audit.log. Switching it off takes `enabled: false`; without
// a `reason` next to it, `tg-pkcs11 doctor` fails.
import CP11Kit

struct AuditConfiguration: Equatable, Sendable {
    var enabled = true
    /// `audit.reason`: why the audit log is switched off (only with `enabled: false`). The module runs without it;
    /// `tg-pkcs11 doctor` fails a disabled audit log that gives none.
    var disabledReason: String? = nil
    /// Absolute path; nil: the default path; `fileEnabled == false`: no file (syslog only).
    var file: String? = nil
    var fileEnabled = true
    /// The syslog socket (`/dev/log` unless `audit.syslog.socket` says otherwise); nil: no syslog.
    var syslogSocket: String? = nil
    var checkpointEvery = 256
    var sync = true
    /// Key-use summaries are also written this often (seconds) while a session keeps using a key.
    var keyUseInterval = 300

    static let defaultFileName = "audit.log"
    /// Longest accepted `audit.reason`, in UTF-8 bytes.
    static let maximumReasonLength = 512

    /// The file records go to, or nil when there is none.
    func resolvedFile() throws -> String? {
        guard enabled, fileEnabled else { return nil }
        if let file { return file }
        if let xdg = Environment.get("XDG_DATA_HOME"), xdg.hasPrefix("/") {
            return xdg + "/tensorguard-pkcs11/" + Self.defaultFileName
        }
        guard let home = Environment.home() else {
            throw ConfigurationError(rv: CKR_GENERAL_ERROR, message: "audit: no file given and neither XDG_DATA_HOME "
                + "nor HOME is set (set audit.file, or audit.enabled: false)")
        }
        return home + "/.local/share/tensorguard-pkcs11/" + Self.defaultFileName
    }

    /// Parses the `audit:` mapping. Unknown keys and bad values are errors, like everywhere else.
    static func parse(_ node: YAMLNode, fail: (String) -> ConfigurationError) throws -> AuditConfiguration {
        var c = AuditConfiguration()
        guard let m = node.mapping else { throw fail("'audit' must be a mapping") }
        for (k, v) in m {
            let key = k.string ?? "?"
            switch key {
            case "enabled":
                guard let b = v.bool else { throw fail("audit.enabled must be true or false") }
                c.enabled = b
            case "reason":
                guard v.scalar != nil, let s = v.string?.trimmingBlanks, !s.isEmpty,
                      s.utf8.count <= maximumReasonLength, !s.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
                    throw fail("audit.reason must be one line of text, 1...\(maximumReasonLength) bytes")
                }
                c.disabledReason = s
            case "file":
                if let b = v.bool, v.string != nil, b == false {
                    c.fileEnabled = false
                } else if let s = v.string, s.hasPrefix("/") {
                    c.file = s
                } else {
                    throw fail("audit.file must be an absolute path (or false for no file)")
                }
            case "syslog":
                if let b = v.bool, v.scalar != nil {
                    c.syslogSocket = b ? "/dev/log" : nil
                } else if let sm = v.mapping {
                    c.syslogSocket = "/dev/log"
                    for (sk, sv) in sm {
                        switch sk.string ?? "?" {
                        case "socket":
                            guard let s = sv.string, s.hasPrefix("/"), s.utf8.count < 108 else {
                                throw fail("audit.syslog.socket must be an absolute path shorter than 108 bytes")
                            }
                            c.syslogSocket = s
                        default:
                            throw fail("unknown key 'audit.syslog.\(sk.string ?? "?")'")
                        }
                    }
                } else {
                    throw fail("audit.syslog must be true, false or a mapping with 'socket'")
                }
            case "checkpoint_every":
                guard let i = v.int, (1...1_000_000).contains(i) else {
                    throw fail("audit.checkpoint_every must be an integer in 1...1000000")
                }
                c.checkpointEvery = i
            case "sync":
                guard let b = v.bool else { throw fail("audit.sync must be true or false") }
                c.sync = b
            case "key_use_interval":
                guard let i = v.int, (1...86_400).contains(i) else {
                    throw fail("audit.key_use_interval must be an integer (seconds) in 1...86400")
                }
                c.keyUseInterval = i
            default:
                throw fail("unknown key 'audit.\(key)'")
            }
        }
        if c.enabled, c.disabledReason != nil {
            throw fail("audit.reason explains a disabled audit log: it needs enabled: false")
        }
        if c.enabled, !c.fileEnabled, c.syslogSocket == nil {
            throw fail("audit: file: false and no syslog leaves the audit log nowhere to go (use enabled: false)")
        }
        return c
    }
}


private extension String {
    /// Without leading and trailing blanks (spaces and tabs).
    var trimmingBlanks: String {
        let blank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !blank($0) }), let last = lastIndex(where: { !blank($0) }) else { return "" }
        return String(self[first...last])
    }
}

/// The `audit:` section as `tg-pkcs11 doctor` reports it (docs/audit.md, "Switching the audit log off").
public struct OperatorAuditSetting: Sendable, Equatable {
    /// `audit.enabled`.
    public let enabled: Bool
    /// `audit.reason` (only with `enabled: false`).
    public let disabledReason: String?
    /// The file records go to (nil: none, or disabled).
    public let file: String?
    /// The syslog socket records also go to (nil: none).
    public let syslogSocket: String?

    /// The configuration's `audit:` section, found and checked exactly as C_Initialize does.
    /// Errors are `OperatorConfigurationError`.
    public static func load(configPath: String?) throws -> OperatorAuditSetting {
        do {
            let c = try ConfigurationLoader.load(explicitPath: configPath).audit
            return OperatorAuditSetting(enabled: c.enabled, disabledReason: c.disabledReason, file: try c.resolvedFile(),
                                        syslogSocket: c.enabled ? c.syslogSocket : nil)
        } catch let e as ConfigurationError {
            throw OperatorConfigurationError(e.message)
        }
    }
}
