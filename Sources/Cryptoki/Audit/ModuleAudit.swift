// The audit hooks of the object and key calls (API/Module.swift routes through these) and the key-use counters.
import CP11Kit
import CryptoCore

extension Module {
    /// A state change on an object (docs/audit.md §Pending records): first a `pending` record of `kind` (flushed
    /// to disk: it names the session, mechanism, target or the label asked for), then `body` (which commits to the
    /// store), then the outcome record (success with the resulting object, or failure with the CK_RV) pointing at
    /// the pending one, then the return. So the record exists before any effect reaches the store or the caller; a
    /// process killed between the commit and the outcome leaves a pending record that `audit verify` reports.
    /// When the pending record cannot be written nothing is done (CKR_DEVICE_ERROR). When the success record
    /// cannot be written the call answers CKR_DEVICE_ERROR; an object it created is destroyed again (best effort)
    /// so that what was not fully audited is not kept either.
    func audited(_ session: CK_SESSION_HANDLE, _ kind: AuditEventKind, target: CK_OBJECT_HANDLE? = nil,
                 mechanism: CK_MECHANISM_TYPE? = nil, details: [String: String] = [:], creates: Bool = false,
                 label: String? = nil,
                 _ body: () throws -> CK_OBJECT_HANDLE?) throws -> CK_OBJECT_HANDLE? {
        guard let s = try? self.session(session), s.token.auditor.enabled else { return try body() }
        let access = s.access
        let before = target.flatMap { s.token.auditDescription($0, access: access) }
        func event(_ outcome: AuditEvent.Outcome, _ rv: CK_RV, _ object: (uid: String, label: String?)?,
                   pending: Int64?) -> AuditEvent {
            AuditEvent(kind: kind, outcome: outcome, rv: rv, role: access.role, session: session,
                       objectUniqueID: object?.uid, objectLabel: object?.label ?? (object == nil ? label : nil),
                       mechanism: mechanism, details: details, pendingSeq: pending)
        }
        let pending = try s.token.auditor.write(event(.pending, CKR_OK, before, pending: nil))?.seq
        AuditCrashPoint.reached(kind, "pending")
        let result: CK_OBJECT_HANDLE?
        do {
            result = try body()
        } catch {
            let rv = (error as? CKRError)?.rv ?? CKR_GENERAL_ERROR
            _ = try? s.token.auditor.write(event(.failure, rv, before, pending: pending), sync: false)
            throw error
        }
        AuditCrashPoint.reached(kind, "done")
        let after = creates ? result.flatMap { s.token.auditDescription($0, access: s.access) } : before
        do {
            // Not flushed on its own: the pending record already is; this one reaches the disk with the next
            // flushed record (a power cut before that leaves the pending record unresolved, which verify reports).
            try s.token.auditor.write(event(.success, CKR_OK, after, pending: pending), sync: false)
        } catch {
            if creates, let h = result, let ref = try? s.token.object(h, access: s.access) {
                try? s.token.destroy(ref, access: s.access)
            }
            throw error
        }
        AuditCrashPoint.reached(kind, "recorded")
        return result
    }

    /// C_WrapKey (docs/audit.md §Which calls write what): only a delivered wrapped key is a wrap, so a length
    /// query or a short buffer is answered from `prepare`'s length without any record. Otherwise: a pending `wrap`
    /// record flushed to disk, then the wrapped key produced into the module's memory, then the success record,
    /// and only then are the bytes copied into the caller's buffer. A record that cannot be written answers
    /// CKR_DEVICE_ERROR with the caller's buffer untouched.
    func auditedWrap(_ session: CK_SESSION_HANDLE, mechanism: CK_MECHANISM_TYPE, wrappingKey: CK_OBJECT_HANDLE,
                     key: CK_OBJECT_HANDLE, output: OutputBuffer,
                     prepare: () throws -> (length: Int, produce: () throws -> [UInt8])) throws -> OutputResult {
        let s = try? self.session(session)
        let auditor = (s?.token.auditor).flatMap { $0.enabled ? $0 : nil }
        let access = s?.access
        let target = s.flatMap { s in access.flatMap { s.token.auditDescription(key, access: $0) } }
        let wrapper = s.flatMap { s in access.flatMap { s.token.auditDescription(wrappingKey, access: $0) } }
        func event(_ outcome: AuditEvent.Outcome, _ rv: CK_RV, pending: Int64?) -> AuditEvent {
            AuditEvent(kind: .wrap, outcome: outcome, rv: rv, role: access?.role, session: session,
                       objectUniqueID: target?.uid, objectLabel: target?.label, mechanism: mechanism,
                       details: ["wrapping_key_uid": wrapper?.uid ?? "?"], pendingSeq: pending)
        }
        func failed(_ error: any Error, pending: Int64?) {
            _ = try? auditor?.write(event(.failure, (error as? CKRError)?.rv ?? CKR_GENERAL_ERROR, pending: pending),
                                    sync: false)
        }
        let prepared: (length: Int, produce: () throws -> [UInt8])
        do {
            prepared = try prepare()
        } catch {
            failed(error, pending: nil)
            throw error
        }
        let destination: UnsafeMutableRawBufferPointer
        switch output {
        case .lengthQuery: return .lengthRequired(prepared.length)
        case .buffer(let buf):
            guard buf.count >= prepared.length else { return .bufferTooSmall(required: prepared.length) }
            destination = buf
        }
        let pending = try auditor?.write(event(.pending, CKR_OK, pending: nil))?.seq
        AuditCrashPoint.reached(.wrap, "pending")
        var bytes: [UInt8]
        do {
            bytes = try prepared.produce()
        } catch {
            failed(error, pending: pending)
            throw error
        }
        defer { secureZero(&bytes) }
        // The module's own buffer must hold exactly what was promised before anything reaches the caller's.
        guard bytes.count == prepared.length, bytes.count <= destination.count else {
            failed(CKRError(CKR_GENERAL_ERROR), pending: pending)
            throw CKRError(CKR_GENERAL_ERROR)
        }
        AuditCrashPoint.reached(.wrap, "done")
        try auditor?.write(event(.success, CKR_OK, pending: pending), sync: false)
        AuditCrashPoint.reached(.wrap, "recorded")
        if let base = destination.baseAddress, !bytes.isEmpty {
            bytes.withUnsafeBytes { src in
                if let from = src.baseAddress { base.copyMemory(from: from, byteCount: bytes.count) }
            }
        }
        return .written(bytes.count)
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

    /// The CKA_LABEL a template asks for (a label is never secret), for the pending record of a creation.
    static func templateLabel(_ template: [Attribute]) -> String? {
        guard let a = template.last(where: { $0.type == CKA_LABEL }), case .bytes(let b) = a.value else { return nil }
        return String(decoding: b, as: UTF8.self)
    }

    static func attributeNames(_ template: [Attribute]) -> String {
        template.map { AuditTrail.hex($0.type) }.joined(separator: ",")
    }
}
