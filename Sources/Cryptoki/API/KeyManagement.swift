// PKCS#11 §5.14 key management: C_GenerateKey (AES, generic secret, N2HE), C_GenerateKeyPair, C_WrapKey and
// C_UnwrapKey (AES KW / KWP), C_DeriveKey. The state-changing calls are audited around their work.
import CP11Kit
import CryptoCore
import N2HE

extension Module {
    public func generateKey(_ session: CK_SESSION_HANDLE, mechanism: Mechanism, template: [Attribute]) throws -> CK_OBJECT_HANDLE {
        try audited(session, .objectGenerate, mechanism: mechanism.type, creates: true, label: Module.templateLabel(template)) {
            try generateKeyImpl(session, mechanism: mechanism, template: template)
        } ?? 0
    }
    public func wrapKey(_ session: CK_SESSION_HANDLE, mechanism: Mechanism, wrappingKey: CK_OBJECT_HANDLE,
                        key: CK_OBJECT_HANDLE, output: OutputBuffer) throws -> OutputResult {
        try auditedWrap(session, mechanism: mechanism.type, wrappingKey: wrappingKey, key: key, output: output) {
            try wrapKeyImpl(session, mechanism: mechanism, wrappingKey: wrappingKey, key: key)
        }
    }
    public func unwrapKey(_ session: CK_SESSION_HANDLE, mechanism: Mechanism, unwrappingKey: CK_OBJECT_HANDLE,
                          wrappedKey: UnsafeRawBufferPointer, template: [Attribute]) throws -> CK_OBJECT_HANDLE {
        let unwrapper = (try? self.session(session)).flatMap { $0.token.auditDescription(unwrappingKey, access: $0.access) }
        return try audited(session, .unwrap, mechanism: mechanism.type, details: ["unwrapping_key_uid": unwrapper?.uid ?? "?"],
                           creates: true, label: Module.templateLabel(template)) {
            try unwrapKeyImpl(session, mechanism: mechanism, unwrappingKey: unwrappingKey, wrappedKey: wrappedKey, template: template)
        } ?? 0
    }

    /// C_GenerateKeyPair and C_DeriveKey: the token offers no key-pair or key-derivation mechanism, so once the
    /// session is valid every mechanism is invalid for them (CKR_MECHANISM_INVALID, as PKCS#11 §5.14 prefers
    /// over CKR_FUNCTION_NOT_SUPPORTED for a function whose mechanisms the token lacks).
    public func generateKeyPair(_ session: CK_SESSION_HANDLE, mechanism: Mechanism) throws {
        _ = try self.session(session)
        throw CKRError(CKR_MECHANISM_INVALID)
    }
    public func deriveKey(_ session: CK_SESSION_HANDLE, mechanism: Mechanism, baseKey: CK_OBJECT_HANDLE) throws {
        _ = try self.session(session)
        throw CKRError(CKR_MECHANISM_INVALID)
    }

    private func generateKeyImpl(_ handle: CK_SESSION_HANDLE, mechanism m: Mechanism, template: [Attribute]) throws -> CK_OBJECT_HANDLE {
        let s = try session(handle)
        let access = s.access
        let entry = try Mechanisms.require(m.type, CKF_GENERATE)
        try requireAllowedMechanism(s, m.type)
        try Mechanisms.requireNoParameter(m)
        guard case .keyGeneration(let keyType) = entry.kind else { throw ckr(CKR_MECHANISM_INVALID) }
        let kind = try ObjectFactory.kind(of: template, impliedClass: CKO_SECRET_KEY, impliedKeyType: keyType)
        let parsed = try ObjectFactory.parse(template, kind: kind, origin: .generated(m.type), role: access.role)
        try checkCreation(s, parsed: parsed, kind: kind, access: access)

        let value: SecretBytes
        func valueLength() throws -> Int {
            guard case .bytes(let b)? = parsed[CKA_VALUE_LEN] else { throw ckr(CKR_TEMPLATE_INCOMPLETE) }
            guard let n = Encoding.decodeULong(b) else { throw ckr(CKR_ATTRIBUTE_VALUE_INVALID) }
            return n > CK_ULONG(Int.max) ? -1 : Int(n)
        }
        func random(_ n: Int) throws -> SecretBytes {
            do { return try SecretBytes.random(count: n) } catch { throw ErrorMap.wrap(error, context: "key generation") }
        }
        switch keyType {
        case CKK_AES:
            let n = try valueLength()
            guard [16, 24, 32].contains(n) else { throw ckr(CKR_ATTRIBUTE_VALUE_INVALID) }
            value = try random(n)
        case CKK_GENERIC_SECRET:
            let n = try valueLength()
            guard (1...Mechanisms.genericSecretMaxBytes).contains(n) else { throw ckr(CKR_ATTRIBUTE_VALUE_INVALID) }
            value = try random(n)
        default:
            let params = try ObjectFactory.n2heParameters(parsed)
            if case .bytes(let b)? = parsed[CKA_VALUE_LEN], Encoding.decodeULong(b) != CK_ULONG(params.rawKeyByteCount) {
                throw ckr(CKR_TEMPLATE_INCONSISTENT)
            }
            value = try N2HEMechanism.generate(params)
        }
        let record = try ObjectFactory.build(kind: kind, attributes: parsed, origin: .generated(m.type), value: value,
                                             now: s.token.clock.now())
        try checkKeyRoles(s, record)
        return try s.token.insert(record, access: access)
    }

    /// Every check of C_WrapKey, and the exact wrapped length; `produce` wraps (into the module's memory: the
    /// caller's buffer is written by `auditedWrap` only after the record is).
    private func wrapKeyImpl(_ handle: CK_SESSION_HANDLE, mechanism m: Mechanism, wrappingKey: CK_OBJECT_HANDLE,
                     key: CK_OBJECT_HANDLE) throws -> (length: Int, produce: () throws -> [UInt8]) {
        let s = try session(handle)
        let (padded, iv) = try KeyWrapMechanism.parameters(m, entry: try Mechanisms.require(m.type, CKF_WRAP))
        let wrapper = try operationKey(s, wrappingKey, usage: CKA_WRAP, mechanism: m.type,
                                       invalidHandle: CKR_WRAPPING_KEY_HANDLE_INVALID)
        guard wrapper.kind == .secretKey(CKK_AES) else { throw ckr(CKR_WRAPPING_KEY_TYPE_INCONSISTENT) }
        // Also for keys stored before the role rules: a wrapping key nobody can know, in one role only.
        if !KeyRoles.mayWrap(wrapper.attributes)
            || (KeyRoles.mixesRoles(wrapper.attributes) && !s.token.config.policy.allowMixedKeyRoles) {
            try refuseByPolicy(s, rv: CKR_KEY_FUNCTION_NOT_PERMITTED, uniqueID: wrapper.uniqueID, label: wrapper.bytes(CKA_LABEL),
                               mechanism: m.type, reason: KeyRoles.violation(wrapper.attributes, allowMixedRoles: s.token.config.policy.allowMixedKeyRoles)
                                   ?? "the wrapping key may not wrap")
        }
        let target: ObjectRef
        do { target = try s.token.object(key, access: s.access) } catch let e as CKRError where e.rv == CKR_OBJECT_HANDLE_INVALID {
            throw ckr(CKR_KEY_HANDLE_INVALID)
        }
        let r = target.record
        guard case .secretKey = r.kind else { throw ckr(CKR_KEY_NOT_WRAPPABLE) }
        guard r.bool(CKA_EXTRACTABLE) else { throw ckr(CKR_KEY_UNEXTRACTABLE) }
        if r.bool(CKA_WRAP_WITH_TRUSTED), !wrapper.bool(CKA_TRUSTED) { throw ckr(CKR_KEY_NOT_WRAPPABLE) }
        if case .template(let wt)? = wrapper.attributes[CK.wrapTemplate], !wt.isEmpty {
            let wanted = wt.compactMap { a -> (CK_ATTRIBUTE_TYPE, AttributeValue)? in
                guard let v = AttributePolicy.canonicalForSearch(a) else { return nil }
                return (a.type, v)
            }
            guard wanted.count == wt.count, r.matches(wanted) else { throw ckr(CKR_KEY_NOT_WRAPPABLE) }
        }
        guard case .bytes(let lenBytes)? = r.attributes[CKA_VALUE_LEN], let len = Encoding.decodeULong(lenBytes),
              len <= CK_ULONG(Int.max), let n = AESKeyWrap.wrappedLength(plaintextLength: Int(len), padded: padded) else {
            throw ckr(CKR_KEY_SIZE_RANGE)
        }
        let wrapperValue = try keyValue(s, wrapper)
        return (n, {
            let v = try self.keyValue(s, r)
            do {
                return try AESKeyWrap.wrap(kek: wrapperValue, plaintext: v, padded: padded, iv: iv)
            } catch let e as CryptoError where e == .invalidInputLength(v.count) {
                throw ckr(CKR_KEY_SIZE_RANGE)
            } catch {
                throw ErrorMap.cipher(error, direction: .encrypt, context: "wrap key")
            }
        })
    }

    private func unwrapKeyImpl(_ handle: CK_SESSION_HANDLE, mechanism m: Mechanism, unwrappingKey: CK_OBJECT_HANDLE,
                       wrappedKey: UnsafeRawBufferPointer, template: [Attribute]) throws -> CK_OBJECT_HANDLE {
        let s = try session(handle)
        let access = s.access
        let (padded, iv) = try KeyWrapMechanism.parameters(m, entry: try Mechanisms.require(m.type, CKF_UNWRAP))
        let unwrapper = try operationKey(s, unwrappingKey, usage: CKA_UNWRAP, mechanism: m.type,
                                         invalidHandle: CKR_UNWRAPPING_KEY_HANDLE_INVALID)
        guard unwrapper.kind == .secretKey(CKK_AES) else { throw ckr(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT) }
        if KeyRoles.mixesRoles(unwrapper.attributes) && !s.token.config.policy.allowMixedKeyRoles {
            try refuseByPolicy(s, rv: CKR_KEY_FUNCTION_NOT_PERMITTED, uniqueID: unwrapper.uniqueID,
                               label: unwrapper.bytes(CKA_LABEL), mechanism: m.type,
                               reason: "the unwrapping key also holds CKA_ENCRYPT/CKA_DECRYPT (separated key roles)")
        }

        // The unwrapping key's CKA_UNWRAP_TEMPLATE is merged in; a conflicting value → CKR_TEMPLATE_INCONSISTENT.
        // An unwrapped key is sensitive unless that template (not the caller) says otherwise.
        var merged = template
        let unwrapTemplate: [Attribute]
        if case .template(let ut)? = unwrapper.attributes[CK.unwrapTemplate] { unwrapTemplate = ut } else { unwrapTemplate = [] }
        let notSensitive = { (a: Attribute) in
            a.type == CKA_SENSITIVE && AttributePolicy.canonicalForSearch(a) == .bytes(Encoding.bool(false))
        }
        if template.contains(where: notSensitive), !unwrapTemplate.contains(where: notSensitive) {
            throw ckr(CKR_TEMPLATE_INCONSISTENT)
        }
        for a in unwrapTemplate {
            let mine = template.filter { $0.type == a.type }
            if mine.isEmpty {
                merged.append(a)
            } else {
                let canonicalTheirs = AttributePolicy.canonicalForSearch(a)
                for x in mine where AttributePolicy.canonicalForSearch(x) != canonicalTheirs {
                    throw ckr(CKR_TEMPLATE_INCONSISTENT)
                }
            }
        }
        // The wrapped bytes are checked first (length, then RFC 3394/5649 integrity): a corrupted blob answers
        // CKR_WRAPPED_KEY_* whatever the template says.
        guard wrappedKey.count % 8 == 0, wrappedKey.count >= (padded ? 16 : 24) else { throw ckr(CKR_WRAPPED_KEY_LEN_RANGE) }
        let kek = try keyValue(s, unwrapper)
        let value: SecretBytes
        do {
            value = try AESKeyWrap.unwrap(kek: kek, ciphertext: RawView(wrappedKey), padded: padded, iv: iv)
        } catch let e as CryptoError {
            switch e {
            case .invalidInputLength: throw ckr(CKR_WRAPPED_KEY_LEN_RANGE)
            case .integrityFailure, .authenticationFailed: throw ckr(CKR_WRAPPED_KEY_INVALID)
            default: throw ErrorMap.wrap(e, context: "unwrap key")
            }
        }
        // Key wrap only carries secret keys: CKA_CLASS defaults to CKO_SECRET_KEY, CKA_KEY_TYPE to
        // CKK_GENERIC_SECRET (name CKK_AES / CKK_TG_N2HE to get those).
        let kind = try ObjectFactory.kind(of: merged, impliedClass: CKO_SECRET_KEY,
                                          impliedKeyType: merged.contains { $0.type == CKA_KEY_TYPE } ? nil : CKK_GENERIC_SECRET)
        guard case .secretKey = kind else { throw ckr(CKR_TEMPLATE_INCONSISTENT) }
        let parsed = try ObjectFactory.parse(merged, kind: kind, origin: .unwrapped, role: access.role)
        try checkCreation(s, parsed: parsed, kind: kind, access: access)
        let record = try ObjectFactory.build(kind: kind, attributes: parsed, origin: .unwrapped, value: value,
                                             valueError: CKR_WRAPPED_KEY_INVALID, now: s.token.clock.now())
        // `raw` is chosen when a key is generated or imported, never for a key that arrives wrapped: an extractable
        // seeded-once key would otherwise come back as an oracle.
        if kind == .secretKey(CK.keyN2HE), N2HEDecryptRule(record) == .raw {
            try refuseByPolicy(s, rv: CKR_TEMPLATE_INCONSISTENT, uniqueID: nil, label: record.bytes(CKA_LABEL), mechanism: m.type,
                               reason: "an unwrapped N2HE key may not have the decryption rule raw")
        }
        try checkKeyRoles(s, record)
        return try s.token.insert(record, access: access)
    }
}
