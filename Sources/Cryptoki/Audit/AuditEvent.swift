// One auditable event as Cryptoki reports it; the audit layer (docs/audit.md) turns it into a log record.
// Never put a secret here: no PIN, no key byte, no sensitive attribute value.
import CP11Kit

enum AuditEventKind: String, Sendable {
    case login, logout
    case pinChange = "pin_change", pinInit = "pin_init", pinLockout = "pin_lockout"
    case tokenInit = "token_init"
    case objectCreate = "object_create", objectImport = "object_import", objectGenerate = "object_generate"
    case objectCopy = "object_copy", objectDestroy = "object_destroy", attributeChange = "attribute_change"
    case wrap, unwrap
    case kekRotation = "kek_rotation", backendFailure = "backend_failure"
    case keyUse = "key_use"
    case policyRefusal = "policy_refusal"
    /// A key created or changed with mixed roles under `allow_mixed_key_roles`.
    case mixedKeyRoles = "mixed_key_roles"
    /// A C_Decrypt under an N2HE key whose decryption rule is `raw` (with its row count).
    case rawDecrypt = "n2he_raw_decrypt"
    /// Stored state that failed authentication (an edited, swapped, replayed or removed row; a rolled-back store).
    case tamper
    /// The SO accepted the store as it is (`tg-pkcs11 token accept-rollback`).
    case rollbackAccept = "rollback_accept"
}

struct AuditEvent: Sendable {
    /// `pending`: announced before the change or export takes effect; an outcome record (success or failure, with
    /// `pendingSeq`) follows it. A pending record with no outcome is one the writer never finished.
    enum Outcome: String, Sendable { case success, failure, pending }
    var kind: AuditEventKind
    var outcome: Outcome
    var rv: CK_RV = CKR_OK
    var role: LoginRole? = nil
    var session: CK_SESSION_HANDLE? = nil
    var objectUniqueID: String? = nil
    var objectLabel: String? = nil
    var mechanism: CK_MECHANISM_TYPE? = nil
    /// Why (a refusal's policy, a backend's message): human text, never a secret.
    var reason: String? = nil
    /// Further non-secret facts (attribute names changed, operation name, ...).
    var details: [String: String] = [:]
    /// The seq of the pending record this one resolves.
    var pendingSeq: Int64? = nil
    /// A wrong PIN: the role's consecutive failed attempts counted, this one included.
    var failedAttempts: Int? = nil
    /// A login: the consecutive failed attempts it cleared (each must have its `failedAttempts` record).
    var priorFailedAttempts: Int? = nil
}

extension Token {
    /// Records `event` for this token before the caller acknowledges the change it describes. Throws
    /// CKR_DEVICE_ERROR (and logs why) when the record cannot be written: the caller must then not acknowledge.
    func audit(_ event: AuditEvent) throws {
        try auditor.write(event)
    }
}
