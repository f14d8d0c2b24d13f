// Turns templates into objects and applies changes, by the rules of the attribute-policy table
// (AttributePolicy.swift): C_CreateObject, C_GenerateKey, C_UnwrapKey, C_CopyObject, C_SetAttributeValue.
import CP11Kit
import CryptoCore
import N2HE

enum ObjectOrigin: Equatable {
    case created
    case generated(CK_MECHANISM_TYPE)
    case unwrapped
}

typealias AttributeMap = [CK_ATTRIBUTE_TYPE: AttributeValue]

enum ObjectFactory {
    // MARK: Template parsing

    /// The object kind a template describes. `impliedClass` / `impliedKeyType` come from the mechanism
    /// (C_GenerateKey): a template value that contradicts them → CKR_TEMPLATE_INCONSISTENT.
    static func kind(of template: [Attribute], impliedClass: CK_OBJECT_CLASS? = nil,
                     impliedKeyType: CK_KEY_TYPE? = nil) throws -> ObjectKind {
        func ulongValue(_ type: CK_ATTRIBUTE_TYPE) throws -> CK_ULONG? {
            let matches = template.filter { $0.type == type }
            guard let a = matches.first else { return nil }
            guard matches.count == 1 else { throw ckr(CKR_TEMPLATE_INCONSISTENT) }
            guard case .bytes(let b) = a.value, let v = Encoding.decodeULong(b) else { throw ckr(CKR_ATTRIBUTE_VALUE_INVALID) }
            return v
        }
        let cls = try ulongValue(CKA_CLASS)
        if let implied = impliedClass, let cls, cls != implied { throw ckr(CKR_TEMPLATE_INCONSISTENT) }
        guard let objectClass = cls ?? impliedClass else { throw ckr(CKR_TEMPLATE_INCOMPLETE) }
        switch objectClass {
        case CKO_DATA:
            return .data
        case CKO_SECRET_KEY:
            let kt = try ulongValue(CKA_KEY_TYPE)
            if let implied = impliedKeyType, let kt, kt != implied { throw ckr(CKR_TEMPLATE_INCONSISTENT) }
            guard let keyType = kt ?? impliedKeyType else { throw ckr(CKR_TEMPLATE_INCOMPLETE) }
            guard ObjectKind.supportedKeyTypes.contains(keyType) else { throw ckr(CKR_ATTRIBUTE_VALUE_INVALID) }
            return .secretKey(keyType)
        default:
            throw ckr(CKR_ATTRIBUTE_VALUE_INVALID)
        }
    }

    /// Validates every attribute of `template` for an object of `kind`: known type (CKR_ATTRIBUTE_TYPE_INVALID),
    /// no duplicates (CKR_TEMPLATE_INCONSISTENT), not token-computed (CKR_ATTRIBUTE_READ_ONLY), well-formed value
    /// (CKR_ATTRIBUTE_VALUE_INVALID). Returns the canonical values.
    static func parse(_ template: [Attribute], kind: ObjectKind, origin: ObjectOrigin, role: LoginRole?) throws -> AttributeMap {
        guard let table = AttributePolicy.table(for: kind) else { throw ckr(CKR_ATTRIBUTE_VALUE_INVALID) }
        var out: AttributeMap = [:]
        for a in template {
            guard let spec = table[a.type] else { throw ckr(CKR_ATTRIBUTE_TYPE_INVALID) }
            guard out[a.type] == nil else { throw ckr(CKR_TEMPLATE_INCONSISTENT) }
            if spec.rules.contains(.computed) { throw ckr(CKR_ATTRIBUTE_READ_ONLY) }
            if spec.rules.contains(.createOnly), origin != .created { throw ckr(CKR_TEMPLATE_INCONSISTENT) }
            let v = try AttributePolicy.canonical(a.value, kind: spec.kind)
            if spec.rules.contains(.soSetsTrue), v == .bytes(Encoding.bool(true)), role != .so {
                throw ckr(CKR_ATTRIBUTE_READ_ONLY)
            }
            out[a.type] = v
        }
        return out
    }

    // MARK: Building

    /// Builds a new object. `value`: the key material of a generated / unwrapped key (nil for C_CreateObject,
    /// where CKA_VALUE comes from the template). `valueError`: what a bad value answers
    /// (CKR_ATTRIBUTE_VALUE_INVALID for create, CKR_WRAPPED_KEY_INVALID for unwrap). `now`: the token's clock,
    /// a key's CKA_TG_CREATED.
    static func build(kind: ObjectKind, attributes parsed: AttributeMap, origin: ObjectOrigin, value: SecretBytes?,
                      valueError: CK_RV = CKR_ATTRIBUTE_VALUE_INVALID, now: UInt64) throws -> ObjectRecord {
        guard let table = AttributePolicy.table(for: kind) else { throw ckr(CKR_ATTRIBUTE_VALUE_INVALID) }
        var attrs = parsed
        var secrets: [CK_ATTRIBUTE_TYPE: SecretBytes] = [:]

        // Required attributes.
        for spec in table.values {
            if origin == .created, spec.rules.contains(.requiredOnCreate), attrs[spec.type] == nil {
                throw ckr(CKR_TEMPLATE_INCOMPLETE)
            }
        }
        // Defaults.
        attrs[CKA_CLASS] = .bytes(Encoding.ulong(kind.objectClass))
        if let kt = kind.keyType { attrs[CKA_KEY_TYPE] = .bytes(Encoding.ulong(kt)) }
        if attrs[CKA_PRIVATE] == nil { attrs[CKA_PRIVATE] = .bytes(Encoding.bool(AttributePolicy.defaultPrivate(for: kind))) }
        for (type, value) in KeyRoles.defaults(for: parsed, kind: kind, origin: origin) where attrs[type] == nil {
            attrs[type] = value
        }
        for spec in table.values where attrs[spec.type] == nil {
            switch spec.defaultValue {
            case .none: break
            case .value(let b): attrs[spec.type] = .bytes(b)
            case .template: attrs[spec.type] = .template([])
            }
        }
        attrs[CK.attrUniqueID] = .bytes(Array(try newUniqueID().utf8))

        switch kind {
        case .data:
            // CKA_VALUE of a private data object is sealed at rest.
            if case .bytes(let b)? = attrs[CKA_VALUE], attrs[CKA_PRIVATE] == .bytes(Encoding.bool(true)) {
                secrets[CKA_VALUE] = SecretBytes(copying: b)
                attrs[CKA_VALUE] = nil
            }
        case .secretKey(let keyType):
            let keyValue: SecretBytes
            if let value {
                keyValue = value
            } else {
                guard case .bytes(let b)? = attrs[CKA_VALUE] else { throw ckr(CKR_TEMPLATE_INCOMPLETE) }
                keyValue = SecretBytes(copying: b)
            }
            attrs[CKA_VALUE] = nil
            try validateKeyValue(keyValue, keyType: keyType, attributes: &attrs, valueError: valueError)
            if case .bytes(let given)? = parsed[CKA_VALUE_LEN] {
                guard Encoding.decodeULong(given) == CK_ULONG(keyValue.count) else { throw ckr(CKR_TEMPLATE_INCONSISTENT) }
            }
            attrs[CKA_VALUE_LEN] = .bytes(Encoding.ulong(CK_ULONG(keyValue.count)))
            let check = try checkValue(keyValue, keyType: keyType)
            if case .bytes(let given)? = parsed[CKA_CHECK_VALUE] {
                if !given.isEmpty && given != check { throw ckr(CKR_ATTRIBUTE_VALUE_INVALID) }
                attrs[CKA_CHECK_VALUE] = .bytes(given)
            } else {
                attrs[CKA_CHECK_VALUE] = .bytes(check)
            }
            let sensitive = attrs[CKA_SENSITIVE] == .bytes(Encoding.bool(true))
            let extractable = attrs[CKA_EXTRACTABLE] == .bytes(Encoding.bool(true))
            switch origin {
            case .generated(let mech):
                attrs[CKA_LOCAL] = .bytes(Encoding.bool(true))
                attrs[CKA_KEY_GEN_MECHANISM] = .bytes(Encoding.ulong(mech))
                attrs[CKA_ALWAYS_SENSITIVE] = .bytes(Encoding.bool(sensitive))
                attrs[CKA_NEVER_EXTRACTABLE] = .bytes(Encoding.bool(!extractable))
            case .created, .unwrapped:
                attrs[CKA_LOCAL] = .bytes(Encoding.bool(false))
                attrs[CKA_KEY_GEN_MECHANISM] = .bytes(Encoding.ulong(CK.unavailable))
                attrs[CKA_ALWAYS_SENSITIVE] = .bytes(Encoding.bool(false))
                attrs[CKA_NEVER_EXTRACTABLE] = .bytes(Encoding.bool(false))
            }
            secrets[CKA_VALUE] = keyValue
            attrs[CK.attrKeyCreated] = .bytes(Encoding.ulong(CK_ULONG(now)))
            attrs[CK.attrKeyUseCount] = .bytes(Encoding.ulong(0))
        }
        guard case .bytes(let uid)? = attrs[CK.attrUniqueID] else { throw ckr(CKR_GENERAL_ERROR) }
        return ObjectRecord(uniqueID: String(decoding: uid, as: UTF8.self), kind: kind, attributes: attrs, secrets: secrets)
    }

    static func newUniqueID() throws -> String {
        do { return Hex.encode(try SecureRandom.bytes(16)) } catch { throw ErrorMap.wrap(error, context: "unique id") }
    }

    /// Key-type rules for the value; fills derived attributes (N2HE security estimate).
    static func validateKeyValue(_ v: SecretBytes, keyType: CK_KEY_TYPE, attributes: inout AttributeMap,
                                 valueError: CK_RV) throws {
        switch keyType {
        case CKK_AES:
            guard [16, 24, 32].contains(v.count) else { throw ckr(valueError) }
        case let k where ObjectKind.isGenericSecretLike(k):
            guard (1...Mechanisms.genericSecretMaxBytes).contains(v.count) else { throw ckr(valueError) }
        case CK.keyN2HE:
            guard case .bytes(let rule)? = attributes[CK.attrN2HEDecryptRule],
                  let r = Encoding.decodeULong(rule), N2HEDecryptRule(rawValue: r) != nil else {
                throw ckr(CKR_ATTRIBUTE_VALUE_INVALID)
            }
            let params = try n2heParameters(attributes)
            guard v.count == params.rawKeyByteCount else { throw ckr(valueError) }
            do {
                _ = try v.withUnsafeBytes { try N2HESecretKey(rawRepresentation: $0, expectedDimension: params.n) }
            } catch {
                throw ckr(valueError)
            }
            attributes[CK.attrN2HESecurityBits] = .bytes(Encoding.ulong(CK_ULONG(max(0, params.estimatedClassicalSecurityBits))))
        default:
            throw ckr(CKR_ATTRIBUTE_VALUE_INVALID)
        }
    }

    /// The N2HE parameters named by a key's attributes (defaults applied by `build`); an unsupported
    /// combination → CKR_TEMPLATE_INCONSISTENT.
    static func n2heParameters(_ attrs: AttributeMap) throws -> N2HEParameters {
        func get(_ t: CK_ATTRIBUTE_TYPE, _ d: Int) -> Int? {
            guard case .bytes(let b)? = attrs[t] else { return d }
            guard let v = Encoding.decodeULong(b), v <= CK_ULONG(Int.max) else { return nil }
            return Int(v)
        }
        let d = N2HEParameters.default
        guard let n = get(CK.attrN2HEDimension, d.n), let q = get(CK.attrN2HEModulusBits, d.modulusBits),
              let t = get(CK.attrN2HEPlaintextBits, d.plaintextBits), let mu = get(CK.attrN2HENoiseMilli, d.noiseMilli) else {
            throw ckr(CKR_TEMPLATE_INCONSISTENT)
        }
        do {
            return try N2HEParameters(n: n, modulusBits: q, plaintextBits: t, noiseMilli: mu)
        } catch {
            throw ckr(CKR_TEMPLATE_INCONSISTENT)
        }
    }

    /// CKA_CHECK_VALUE: AES — the first 3 bytes of ECB(key, 0^16); generic secret (PKCS#11 3.0 §6.5) and N2HE —
    /// the first 3 bytes of SHA-1(value).
    static func checkValue(_ v: SecretBytes, keyType: CK_KEY_TYPE) throws -> [UInt8] {
        do {
            if keyType == CKK_AES {
                let c = try SymmetricCipher(mode: .ecb, direction: .encrypt, key: v)
                var out = try c.update([UInt8](repeating: 0, count: 16))
                out += try c.finish()
                return Array(out.prefix(3))
            }
            return Array(try CryptoCore.Digest.hash(.sha1, v).prefix(3))
        } catch {
            throw ErrorMap.wrap(error, context: "check value")
        }
    }

    // MARK: Changes

    /// C_SetAttributeValue (`copy == false`) or the template of C_CopyObject (`copy == true`) applied to `record`.
    /// A copy may only tighten the security attributes (KeyRoles.tightens: CKR_TEMPLATE_INCONSISTENT otherwise),
    /// and a copy of an unmodifiable object may change nothing else but CKA_TOKEN.
    static func applyChanges(_ template: [Attribute], to record: ObjectRecord, copy: Bool, role: LoginRole?) throws -> ObjectRecord {
        guard let table = AttributePolicy.table(for: record.kind) else { throw ckr(CKR_GENERAL_ERROR) }
        var r = record
        var seen = Set<CK_ATTRIBUTE_TYPE>()
        let T = AttributeValue.bytes(Encoding.bool(true)), F = AttributeValue.bytes(Encoding.bool(false))
        for a in template {
            guard let spec = table[a.type] else { throw ckr(CKR_ATTRIBUTE_TYPE_INVALID) }
            guard seen.insert(a.type).inserted else { throw ckr(CKR_TEMPLATE_INCONSISTENT) }
            let v = try AttributePolicy.canonical(a.value, kind: spec.kind)
            let current = r.attributes[a.type]
            if AttributePolicy.isSecretAtRest(a.type, kind: r.kind, isPrivate: r.isPrivate)
                || r.sealedTypes.contains(a.type) || r.secrets[a.type] != nil {
                // Only a data object's value reaches here (a key's CKA_VALUE is fixed): it stays sealed.
                guard !spec.rules.contains(.fixed), case .bytes(let b) = v else { throw ckr(CKR_ATTRIBUTE_READ_ONLY) }
                r.secrets[a.type] = SecretBytes(copying: b)
                r.secretsChanged = true
                continue
            }
            if copy, current != v {
                if spec.rules.contains(.security) {
                    guard KeyRoles.tightens(a.type, from: current, to: v) else { throw ckr(CKR_TEMPLATE_INCONSISTENT) }
                } else if !record.isModifiable, a.type != CKA_TOKEN {
                    throw ckr(CKR_TEMPLATE_INCONSISTENT)
                }
            }
            if a.type == CK.attrN2HEDecryptRule {
                guard case .bytes(let b) = v, let n = Encoding.decodeULong(b), N2HEDecryptRule(rawValue: n) != nil else {
                    throw ckr(CKR_ATTRIBUTE_VALUE_INVALID)
                }
            }
            if spec.rules.contains(.onlyDown), !KeyRoles.onlyDown(from: current, to: v) { throw ckr(CKR_ATTRIBUTE_READ_ONLY) }
            if a.type == CK.allowedMechanisms, !KeyRoles.narrowsMechanisms(from: current, to: v) {
                throw ckr(CKR_ATTRIBUTE_READ_ONLY)
            }
            if spec.rules.contains(.computed) || spec.rules.contains(.fixed) {
                // C_SetAttributeValue refuses read-only attributes outright; a C_CopyObject template may restate
                // the current value (copying keeps it) but not change it.
                if copy, current == v { continue }
                throw ckr(CKR_ATTRIBUTE_READ_ONLY)
            }
            if spec.rules.contains(.copyChangeable), !copy, current != v { throw ckr(CKR_ATTRIBUTE_READ_ONLY) }
            if spec.rules.contains(.onlyToTrue), current == T, v == F { throw ckr(CKR_ATTRIBUTE_READ_ONLY) }
            if spec.rules.contains(.onlyToFalse), current == F, v == T { throw ckr(CKR_ATTRIBUTE_READ_ONLY) }
            if spec.rules.contains(.soSetsTrue), v == T, current != T, role != .so { throw ckr(CKR_ATTRIBUTE_READ_ONLY) }
            r.attributes[a.type] = v
        }
        if copy { r.placeSecrets() }
        return r
    }
}
