// Audit helpers of the login / PIN / token paths (Slots/Login.swift) and of object calls (API/Module.swift).
import CP11Kit
import KeyWrap
import TokenStore

extension Token {
    /// Runs `body`; when it fails, records `kind` as a failure with its CK_RV (best effort: the caller gets
    /// the original error either way) and rethrows.
    /// With `pending`, the failure points at the pending record `body` wrote into it (`recordPending`).
    func auditedFailure<R>(_ kind: AuditEventKind, role: LoginRole?, session: CK_SESSION_HANDLE? = nil,
                           pending: PendingRecord? = nil, _ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch {
            let rv = (error as? CKRError)?.rv ?? CKR_GENERAL_ERROR
            try? audit(AuditEvent(kind: kind, outcome: .failure, rv: rv, role: role, session: session,
                                  pendingSeq: pending?.seq, failedAttempts: (error as? CKRError)?.failedPINAttempts))
            throw error
        }
    }

    /// The durable `pending` record of a token state change (C_InitToken, C_InitPIN, C_SetPIN; docs/audit.md
    /// §Pending records), written before the store changes; its seq goes into `pending` for the outcome record.
    /// Not written → CKR_DEVICE_ERROR and nothing is changed.
    func recordPending(_ kind: AuditEventKind, role: LoginRole, _ pending: PendingRecord) throws {
        pending.seq = try auditor.write(AuditEvent(kind: kind, outcome: .pending, role: role))?.seq
        AuditCrashPoint.reached(kind, "pending")
    }

    /// A TokenVault call whose failures say more than their CK_RV: the attempt that locked a PIN is a
    /// `pin_lockout`, a key-wrapping backend failure a `backend_failure` (with the backend's message, which
    /// carries no secret).
    func auditedStoreCall<R>(_ what: String, role: LoginRole?, _ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch let e as StoreError {
            let rv = ErrorMap.rv(e)
            switch e {
            case .pinIncorrect(let remaining):
                // The attempt was counted: its record says which one it was (docs/audit.md §Failed PIN attempts).
                let answered = ErrorMap.wrap(e, context: "token '\(config.name)': \(what)")
                let maximum = role.flatMap { r in (try? record())?.pinStatus(r.storeRole).maxAttempts }
                if remaining == 0 {
                    try? audit(AuditEvent(kind: .pinLockout, outcome: .failure, rv: rv, role: role,
                                          reason: "\(what): the PIN's retry counter reached zero"))
                }
                throw CKRError(answered.rv, failedPINAttempts: maximum.map { max(1, $0 - remaining) })
            case .pinLocked:
                try? audit(AuditEvent(kind: .pinLockout, outcome: .failure, rv: rv, role: role,
                                      reason: "\(what): the PIN is locked"))
            case .backend(let b):
                try? audit(AuditEvent(kind: .backendFailure, outcome: .failure, rv: rv, role: role,
                                      reason: "\(what): \(b)"))
            default:
                break
            }
            throw ErrorMap.wrap(e, context: "token '\(config.name)': \(what)")
        } catch let e as KeyWrapError {
            try? audit(AuditEvent(kind: .backendFailure, outcome: .failure, rv: ErrorMap.rv(e), role: role,
                                  reason: "\(what): \(e)"))
            throw ErrorMap.wrap(e, context: "token '\(config.name)': \(what)")
        } catch {
            throw ErrorMap.wrap(error, context: "token '\(config.name)': \(what)")
        }
    }

    /// The logout record and a final checkpoint, then the audit key goes. Logout, session close and
    /// C_Finalize never fail because of the audit log (dropping keys from memory matters more): a record that
    /// cannot be written is logged as an error.
    func auditLogout(role: LoginRole, session: CK_SESSION_HANDLE?, reason: String?) {
        do {
            try audit(AuditEvent(kind: .logout, outcome: .success, role: role, session: session, reason: reason))
            try auditor.checkpoint()
        } catch {
            Log.error("token '\(config.name)': logout not fully audited: \(error)")
        }
        auditor.forgetKey()
    }

    /// What an audit record says about an object: unique id and label, never a value.
    func auditDescription(_ handle: CK_OBJECT_HANDLE, access: Access) -> (uid: String, label: String?)? {
        guard let ref = try? object(handle, access: access) else { return nil }
        return (ref.record.uniqueID, ref.record.auditLabel)
    }
}

/// The seq of a pending record, handed from where it is written to the outcome record (one per call).
final class PendingRecord {
    var seq: Int64?
}
