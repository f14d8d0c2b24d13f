// The audit hooks of the object and key calls (API/Module.swift routes through these) and the key-use counters.
import CP11Kit

extension Module {
    /// A state change on an object: runs `body`; on success records `kind` for the resulting object (or
    /// `target`) before returning, on failure records it with the CK_RV and rethrows. When the success record
    /// cannot be written the call answers CKR_DEVICE_ERROR; an object it created is destroyed again (best
    /// effort) so that what was not audited is not kept either.
    func audited(_ session: CK_SESSION_HANDLE, _ kind: AuditEventKind, target: CK_OBJECT_HANDLE? = nil,
                 mechanism: CK_MECHANISM_TYPE? = nil, details: [String: String] = [:], creates: Bool = false,
                 _ body: () throws -> CK_OBJECT_HANDLE?) throws -> CK_OBJECT_HANDLE? {
        guard let s = try? self.session(session), s.token.auditor.enabled else { return try body() }
        let access = s.access
        let before = target.flatMap { s.token.auditDescription($0, access: access) }
        let result: CK_OBJECT_HANDLE?
        do {
            result = try body()
        } catch {
            let rv = (error as? CKRError)?.rv ?? CKR_GENERAL_ERROR
            try? s.token.audit(AuditEvent(kind: kind, outcome: .failure, rv: rv, role: access.role, session: session,
                                          objectUniqueID: before?.uid, objectLabel: before?.label,
                                          mechanism: mechanism, details: details))
            throw error
        }
        let after = creates ? result.flatMap { s.token.auditDescription($0, access: s.access) } : before
        do {
            try s.token.audit(AuditEvent(kind: kind, outcome: .success, role: access.role, session: session,
                                         objectUniqueID: after?.uid, objectLabel: after?.label,
                                         mechanism: mechanism, details: details))
        } catch {
            if creates, let h = result, let ref = try? s.token.object(h, access: s.access) {
                try? s.token.destroy(ref, access: s.access)
            }
            throw error
        }
        return result
    }

    /// `wrapKey`: only a delivered wrapped key is a wrap (a length query or a short buffer is not recorded).
    func auditedWrap(_ session: CK_SESSION_HANDLE, mechanism: CK_MECHANISM_TYPE, wrappingKey: CK_OBJECT_HANDLE,
                     key: CK_OBJECT_HANDLE, _ body: () throws -> OutputResult) throws -> OutputResult {
        guard let s = try? self.session(session), s.token.auditor.enabled else { return try body() }
        let access = s.access
        let target = s.token.auditDescription(key, access: access)
        let wrapper = s.token.auditDescription(wrappingKey, access: access)
        func event(_ outcome: AuditEvent.Outcome, _ rv: CK_RV) -> AuditEvent {
            AuditEvent(kind: .wrap, outcome: outcome, rv: rv, role: access.role, session: session,
                       objectUniqueID: target?.uid, objectLabel: target?.label, mechanism: mechanism,
                       details: ["wrapping_key_uid": wrapper?.uid ?? "?"])
        }
        let out: OutputResult
        do {
            out = try body()
        } catch {
            try? s.token.audit(event(.failure, (error as? CKRError)?.rv ?? CKR_GENERAL_ERROR))
            throw error
        }
        if case .written = out { try s.token.audit(event(.success, CKR_OK)) }
        return out
    }

    /// Counts one use of `key` by this session (C_EncryptInit, C_DecryptInit, C_SignInit, C_VerifyInit that
    /// succeeded): no I/O here; summaries are written at session close, logout, C_Finalize and every
    /// `audit.key_use_interval` seconds.
    func noteKeyUse(_ session: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE, operation: String, mechanism: CK_MECHANISM_TYPE) {
        guard let s = try? self.session(session), s.token.auditor.enabled else { return }
        s.token.auditor.noteUse(session: session, object: key, operation: operation, mechanism: mechanism) {
            s.token.auditDescription(key, access: s.access)
        }
    }

    static func createKind(_ template: [Attribute]) -> AuditEventKind {
        // A secret key arriving with its value is an import; anything else is a creation.
        let isKey = template.contains { a in
            guard a.type == CKA_CLASS, case .bytes(let b) = a.value else { return false }
            return Encoding.decodeULong(b) == CKO_SECRET_KEY
        }
        return isKey ? .objectImport : .objectCreate
    }

    static func attributeNames(_ template: [Attribute]) -> String {
        template.map { AuditTrail.hex($0.type) }.joined(separator: ",")
    }
}
