// PKCS#11 §5.7 object management: C_CreateObject, C_CopyObject, C_DestroyObject, C_GetObjectSize,
// C_GetAttributeValue, C_SetAttributeValue and C_FindObjects*: session checks around ObjectFactory (rules) and
// ObjectStore (storage). The calls that change state are audited (Audit/ModuleAudit.swift) around their work.
import CP11Kit
import CryptoCore

extension Module {
    public func createObject(_ session: CK_SESSION_HANDLE, template: [Attribute]) throws -> CK_OBJECT_HANDLE {
        try audited(session, Module.createKind(template), creates: true, label: Module.templateLabel(template)) { try createObjectImpl(session, template: template) } ?? 0
    }
    public func copyObject(_ session: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE, template: [Attribute]) throws -> CK_OBJECT_HANDLE {
        let source = (try? self.session(session)).flatMap { $0.token.auditDescription(object, access: $0.access) }
        return try audited(session, .objectCopy, details: ["source_uid": source?.uid ?? "?"], creates: true,
                           label: Module.templateLabel(template)) {
            try copyObjectImpl(session, object, template: template)
        } ?? 0
    }
    public func destroyObject(_ session: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE) throws {
        _ = try audited(session, .objectDestroy, target: object) { try destroyObjectImpl(session, object); return nil }
    }
    public func setAttributeValues(_ session: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE, template: [Attribute]) throws {
        _ = try audited(session, .attributeChange, target: object, details: ["attributes": Module.attributeNames(template)]) {
            try setAttributeValuesImpl(session, object, template: template)
            return nil
        }
    }

    private func createObjectImpl(_ handle: CK_SESSION_HANDLE, template: [Attribute]) throws -> CK_OBJECT_HANDLE {
        let s = try session(handle)
        let access = s.access
        let kind = try ObjectFactory.kind(of: template)
        let parsed = try ObjectFactory.parse(template, kind: kind, origin: .created, role: access.role)
        try checkCreation(s, parsed: parsed, kind: kind, access: access)
        let record = try ObjectFactory.build(kind: kind, attributes: parsed, origin: .created, value: nil, now: s.token.clock.now())
        try checkKeyRoles(s, record)
        return try s.token.insert(record, access: access)
    }

    /// The key-role rules (Objects/KeyRoles.swift) on a new or changed key: mixed roles unless the token's policy
    /// allows them (then the use is audited), and CKA_WRAP only on a key nobody can know. Refusals answer
    /// CKR_TEMPLATE_INCONSISTENT and are audited like policy refusals.
    func checkKeyRoles(_ s: Session, _ record: ObjectRecord) throws {
        guard case .secretKey = record.kind else { return }
        let allowMixed = s.token.config.policy.allowMixedKeyRoles
        if let reason = KeyRoles.violation(record.attributes, allowMixedRoles: allowMixed) {
            try refuseByPolicy(s, rv: CKR_TEMPLATE_INCONSISTENT, uniqueID: nil, label: record.bytes(CKA_LABEL),
                               mechanism: nil, reason: reason)
        }
        if allowMixed, KeyRoles.mixesRoles(record.attributes) {
            try s.token.audit(AuditEvent(kind: .mixedKeyRoles, outcome: .success, session: s.handle,
                                         objectUniqueID: record.uniqueID,
                                         objectLabel: record.bytes(CKA_LABEL).map { String(decoding: $0, as: UTF8.self) },
                                         reason: "allow_mixed_key_roles: key holds a wrapping and a cipher role"))
        }
    }

    /// Session / login rules for a new object, checked before any expensive work: token objects need a RW
    /// session, private objects a user login, and a token object carrying a secret value needs the token's
    /// keys (any login) to seal it.
    func checkCreation(_ s: Session, parsed: AttributeMap, kind: ObjectKind, access: Access) throws {
        let isToken = parsed[CKA_TOKEN] == .bytes(Encoding.bool(true))
        let isPrivate: Bool
        if case .bytes(let b)? = parsed[CKA_PRIVATE], let v = Encoding.decodeBool(b) {
            isPrivate = v
        } else {
            isPrivate = AttributePolicy.defaultPrivate(for: kind)
        }
        try s.token.checkWritable(isToken: isToken, isPrivate: isPrivate, access: access)
        if isToken, case .secretKey = kind, access.role == nil { throw ckr(CKR_USER_NOT_LOGGED_IN) }
        // Token policy (Policy/): allow_extractable, min_n2he_security_bits.
        try checkNewObjectPolicy(s, parsed: parsed, kind: kind)
    }

    private func copyObjectImpl(_ handle: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE, template: [Attribute]) throws -> CK_OBJECT_HANDLE {
        let s = try session(handle)
        let access = s.access
        let ref = try s.token.object(object, access: access)
        guard ref.record.bool(CKA_COPYABLE) else { throw ckr(CKR_ACTION_PROHIBITED) }
        var copy = try ObjectFactory.applyChanges(template, to: ref.record, copy: true, role: access.role)
        // Trust is the Security Officer's to give: a copy made in any other session is not trusted.
        if access.role != .so, copy.attributes[CKA_TRUSTED] != nil { copy.attributes[CKA_TRUSTED] = .bytes(Encoding.bool(false)) }
        // The copy carries its own secret values (unsealed from the original) and a new identity.
        var secrets = copy.secrets
        for t in ref.record.sealedTypes where secrets[t] == nil {
            guard let v = try s.token.secret(t, of: ref.record) else { continue }
            secrets[t] = v
        }
        let uid = try ObjectFactory.newUniqueID()
        copy = ObjectRecord(uniqueID: uid, kind: copy.kind, attributes: copy.attributes, secrets: secrets)
        copy.attributes[CK.attrUniqueID] = .bytes(Array(uid.utf8))
        copy.placeSecrets()
        try checkKeyRoles(s, copy)
        try checkCopyPolicy(s, copy: copy)
        if copy.isToken, !copy.secrets.isEmpty, access.role == nil { throw ckr(CKR_USER_NOT_LOGGED_IN) }
        return try s.token.insert(copy, access: access)
    }

    private func destroyObjectImpl(_ handle: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE) throws {
        let s = try session(handle)
        let access = s.access
        let ref = try s.token.object(object, access: access)
        guard ref.record.bool(CKA_DESTROYABLE) else { throw ckr(CKR_ACTION_PROHIBITED) }
        try s.token.destroy(ref, access: access)
    }

    public func objectSize(_ handle: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE) throws -> CK_ULONG {
        let s = try session(handle)
        let ref = try s.token.object(object, access: s.access)
        return CK_ULONG(ref.record.sizeEstimate)
    }

    /// One answer per requested type, in order.
    public func attributeValues(_ handle: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE,
                             types: [CK_ATTRIBUTE_TYPE]) throws -> [AttributeQueryResult] {
        let s = try session(handle)
        let ref = try s.token.object(object, access: s.access)
        let r = ref.record
        var out: [AttributeQueryResult] = []
        out.reserveCapacity(types.count)
        for t in types {
            guard let spec = AttributePolicy.spec(t, for: r.kind) else { out.append(.typeInvalid); continue }
            if spec.rules.contains(.sensitive), r.hidesSensitive { out.append(.sensitive); continue }
            if let v = r.attributes[t] { out.append(.value(v)); continue }
            if r.secrets[t] != nil || r.sealedTypes.contains(t) {
                // A sealed value needs the login that can unseal it; without one it reads as sensitive.
                if let v = try? s.token.secret(t, of: r) {
                    out.append(.secret(v))
                } else {
                    out.append(.sensitive)
                }
                continue
            }
            if t == CK.allowedMechanisms {
                // Absent: no restriction — every mechanism of the token.
                out.append(.value(.bytes(Encoding.ulongArray(Mechanisms.list))))
                continue
            }
            out.append(.value(spec.kind == .template ? .template([]) : .bytes([])))
        }
        return out
    }

    private func setAttributeValuesImpl(_ handle: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE, template: [Attribute]) throws {
        let s = try session(handle)
        let access = s.access
        let ref = try s.token.object(object, access: access)
        guard ref.record.isModifiable else { throw ckr(CKR_ACTION_PROHIBITED) }
        let changed = try ObjectFactory.applyChanges(template, to: ref.record, copy: false, role: access.role)
        // Keys stored before the role rules may mix roles; only a change that grants a role or loosens
        // protection is held to them.
        let grants = template.contains { a in
            [CKA_ENCRYPT, CKA_DECRYPT, CKA_WRAP, CKA_UNWRAP, CKA_TRUSTED].contains(a.type) && changed.attributes[a.type] != ref.record.attributes[a.type]
        }
        if grants { try checkKeyRoles(s, changed) }
        try checkSetAttributePolicy(s, template: template, record: ref.record)
        try s.token.update(ObjectRef(handle: ref.handle, record: changed), access: access)
    }

    // MARK: Find

    public func findObjectsInit(_ handle: CK_SESSION_HANDLE, template: [Attribute]) throws {
        let s = try session(handle)
        if s.ops.withLock({ $0.find != nil }) { throw ckr(CKR_OPERATION_ACTIVE) }
        let found = try s.token.find(template, access: s.access)
        try s.ops.withLock { o in
            if o.find != nil { throw ckr(CKR_OPERATION_ACTIVE) }
            o.find = FindState(handles: found)
        }
    }

    public func findObjects(_ handle: CK_SESSION_HANDLE, maxCount: Int) throws -> [CK_OBJECT_HANDLE] {
        let s = try session(handle)
        return try s.ops.withLock { o in
            guard var f = o.find else { throw ckr(CKR_OPERATION_NOT_INITIALIZED) }
            let n = max(0, min(maxCount, f.handles.count - f.position))
            let chunk = Array(f.handles[f.position..<(f.position + n)])
            f.position += n
            o.find = f
            return chunk
        }
    }

    public func findObjectsFinal(_ handle: CK_SESSION_HANDLE) throws {
        let s = try session(handle)
        try s.ops.withLock { o in
            guard o.find != nil else { throw ckr(CKR_OPERATION_NOT_INITIALIZED) }
            o.find = nil
        }
    }
}
