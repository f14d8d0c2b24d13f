// The audit log for the operator CLI (`tg-pkcs11 audit`, and `rotate-kek`, which works on the store directly and
// records its KEK rotation itself): the same configuration, destinations and audit-key derivation as the module.
import Audit
import CP11Kit
import CryptoCore
import KeyWrap
import TokenStore

public enum OperatorAudit {
    /// The audit file the configuration names (default path when `audit.file` is not given); nil when the
    /// audit log is disabled or goes to syslog only.
    public static func file(configPath: String?) throws -> String? {
        try configuration(configPath).resolvedFile()
    }

    /// The audit log as the module writes it; nil when disabled.
    public static func log(configPath: String?) throws -> AuditLog? {
        try AuditTrail.make(configuration(configPath)).log
    }

    /// The token's audit key (docs/audit.md §Checkpoints) from a login's session keys.
    public static func auditKey(_ keys: SessionKeys) throws -> SecretBytes {
        try keys.derivedKey(salt: AuditKey.salt, info: AuditKey.info(tokenUUID: keys.tokenUUID))
    }

    /// Appends a record of an operator action (fields as the module writes them) and, with `keys`, a checkpoint.
    /// `error`: why it failed; its CK_RV is the one the module would answer for it (CKR_PIN_INCORRECT, ...).
    public static func record(_ log: AuditLog, event: String, success: Bool, token: String, role: String?,
                              reason: String?, details: [String: String], keys: SessionKeys?,
                              error: (any Error)? = nil, extra: AuditFields = [:]) throws {
        var rv: CK_RV = success ? CKR_OK : CKR_FUNCTION_FAILED
        switch error {
        case let e as StoreError: rv = ErrorMap.rv(e)
        case let e as KeyWrapError: rv = ErrorMap.rv(e)
        default: break
        }
        var f = extra
        f.merge(["event": .string(event), "outcome": .string(success ? "success" : "failure"),
                 "rv": .string(AuditTrail.hex(rv)), "token": .string(token), "source": .string("tg-pkcs11")]) { _, new in new }
        if let role { f["role"] = .string(role) }
        if let reason { f["reason"] = .string(reason) }
        if !details.isEmpty { f["details"] = .object(details) }
        try log.append(f)
        if let keys {
            let key = try auditKey(keys)
            let uuid = keys.tokenUUID
            try log.appendCheckpoint(["event": .string("checkpoint"), "outcome": .string("success"), "rv": .string(AuditTrail.hex(0)),
                                      "token": .string(token), "source": .string("tg-pkcs11")], tokenUUID: uuid, key: key)
        }
    }

    static func configuration(_ configPath: String?) throws -> AuditConfiguration {
        do {
            return try ConfigurationLoader.load(explicitPath: configPath).audit
        } catch let e as ConfigurationError {
            throw OperatorConfigurationError(e.message)
        }
    }
}
