// The declarative attribute-policy table (kryoptic style): for every object class / key type, which attributes
// exist, their value kind, default, and the rules of change. Everything that creates, copies, modifies or
// reads an object consults this table; no rule is hard-coded elsewhere.
import CP11Kit
import CryptoCore
import N2HE

/// How an attribute's bytes are shaped.
enum ValueKind: Sendable {
    case bool            // CK_BBOOL, exactly 1 byte
    case ulong           // CK_ULONG, exactly 8 bytes
    case bytes           // any bytes
    case utf8            // CK_UTF8CHAR string (not NUL terminated), validated as UTF-8
    case date            // CK_DATE: 0 bytes (empty) or 8 ASCII digits YYYYMMDD
    case template        // CK_ATTRIBUTE array
    case mechanismList   // CK_MECHANISM_TYPE array
}

struct AttributeRule: OptionSet, Sendable {
    let rawValue: UInt32
    /// Must be present in a C_CreateObject / C_UnwrapKey-produced template (CKR_TEMPLATE_INCOMPLETE).
    static let requiredOnCreate = AttributeRule(rawValue: 1 << 0)
    /// Must be present in a C_GenerateKey template.
    static let requiredOnGenerate = AttributeRule(rawValue: 1 << 1)
    /// May appear only in C_CreateObject (the token computes it for generate/unwrap): CKA_VALUE.
    static let createOnly = AttributeRule(rawValue: 1 << 2)
    /// Token-computed: may never appear in a template (CKR_ATTRIBUTE_READ_ONLY).
    static let computed = AttributeRule(rawValue: 1 << 3)
    /// Fixed once the object exists: C_SetAttributeValue → CKR_ATTRIBUTE_READ_ONLY.
    static let fixed = AttributeRule(rawValue: 1 << 4)
    /// Fixed for C_SetAttributeValue, but C_CopyObject may change it (CKA_TOKEN, CKA_PRIVATE, CKA_MODIFIABLE).
    static let copyChangeable = AttributeRule(rawValue: 1 << 5)
    /// A boolean that may only ever go false → true after creation (CKA_SENSITIVE, CKA_WRAP_WITH_TRUSTED).
    static let onlyToTrue = AttributeRule(rawValue: 1 << 6)
    /// A boolean that may only ever go true → false after creation (CKA_EXTRACTABLE, CKA_COPYABLE, CKA_DESTROYABLE).
    static let onlyToFalse = AttributeRule(rawValue: 1 << 7)
    /// Only the Security Officer may set it to true (CKA_TRUSTED).
    static let soSetsTrue = AttributeRule(rawValue: 1 << 8)
    /// Never returned when the key is sensitive or unextractable (CKR_ATTRIBUTE_SENSITIVE).
    static let sensitive = AttributeRule(rawValue: 1 << 9)
    /// Sealed at rest by TokenStore (AES-256-GCM under the per-object key), never written in clear.
    static let secretAtRest = AttributeRule(rawValue: 1 << 10)
    /// Served from TokenStore's hash index in C_FindObjects.
    static let searchable = AttributeRule(rawValue: 1 << 11)
    /// Sealed at rest only when the object is private (CKA_VALUE of a private data object).
    static let secretWhenPrivate = AttributeRule(rawValue: 1 << 12)
    /// A CK_ULONG whose smaller values are stricter (CKA_TG_N2HE_DECRYPT_RULE): after creation it may only go down.
    static let onlyDown = AttributeRule(rawValue: 1 << 13)
    /// Guards what a key may be used for or become: C_CopyObject may only tighten it (KeyRoles.swift).
    static let security = AttributeRule(rawValue: 1 << 14)
}

/// A default applied when the template omits the attribute.
enum AttributeDefault: Sendable, Equatable {
    case none                 // no default: absent unless required / computed
    case value([UInt8])
    case template             // empty template
}

struct AttributeSpec: Sendable {
    let type: CK_ATTRIBUTE_TYPE
    let kind: ValueKind
    let rules: AttributeRule
    let defaultValue: AttributeDefault

    init(_ type: CK_ATTRIBUTE_TYPE, _ kind: ValueKind, _ rules: AttributeRule = [], _ d: AttributeDefault = .none) {
        self.type = type; self.kind = kind; self.rules = rules; self.defaultValue = d
    }
}

/// The object kinds this token holds.
enum ObjectKind: Equatable, Hashable, Sendable {
    case data
    case secretKey(CK_KEY_TYPE)

    var objectClass: CK_OBJECT_CLASS {
        switch self {
        case .data: return CKO_DATA
        case .secretKey: return CKO_SECRET_KEY
        }
    }
    var keyType: CK_KEY_TYPE? {
        if case .secretKey(let k) = self { return k }
        return nil
    }

    static let supportedKeyTypes: [CK_KEY_TYPE] = [CKK_AES, CKK_GENERIC_SECRET, CK.keyN2HE] + hmacKeyTypes
    /// HMAC-specific key types: generic secrets bound to one hash (PKCS#11 §6.x "SHA-xxx HMAC key").
    static let hmacKeyTypes: [CK_KEY_TYPE] = [CKK_SHA_1_HMAC, CKK_SHA256_HMAC, CKK_SHA384_HMAC, CKK_SHA512_HMAC]
    static func isGenericSecretLike(_ k: CK_KEY_TYPE) -> Bool { k == CKK_GENERIC_SECRET || hmacKeyTypes.contains(k) }
}

enum AttributePolicy {
    private static let T = Encoding.bool(true)
    private static let F = Encoding.bool(false)
    private static let empty: [UInt8] = []

    /// PKCS#11 3.0 §4.4–4.5: common to every object. CKA_PRIVATE's default is the class's: keys are private,
    /// data objects public.
    static func storage(privateByDefault: Bool) -> [AttributeSpec] { [
        AttributeSpec(CKA_CLASS, .ulong, [.fixed, .searchable]),
        AttributeSpec(CKA_TOKEN, .bool, [.copyChangeable], .value(F)),
        // A copy may make an object private or unmodifiable, never the reverse (KeyRoles.tightensOnCopy).
        AttributeSpec(CKA_PRIVATE, .bool, [.copyChangeable, .security], .value(privateByDefault ? T : F)),
        AttributeSpec(CKA_MODIFIABLE, .bool, [.copyChangeable, .security], .value(T)),
        AttributeSpec(CKA_LABEL, .utf8, [.searchable], .value(empty)),
        AttributeSpec(CKA_COPYABLE, .bool, [.onlyToFalse, .security], .value(T)),
        AttributeSpec(CKA_DESTROYABLE, .bool, [.onlyToFalse, .security], .value(T)),
        AttributeSpec(CK.attrUniqueID, .utf8, [.computed, .fixed, .searchable]),
    ] }

    /// §4.5: data objects.
    static let data: [AttributeSpec] = [
        AttributeSpec(CKA_APPLICATION, .utf8, [], .value(empty)),
        AttributeSpec(CKA_OBJECT_ID, .bytes, [], .value(empty)),
        AttributeSpec(CKA_VALUE, .bytes, [.secretWhenPrivate], .value(empty)),
    ]

    /// §4.7 + §4.10: common key and secret key attributes.
    static let secretKey: [AttributeSpec] = [
        AttributeSpec(CKA_KEY_TYPE, .ulong, [.fixed, .searchable]),
        AttributeSpec(CKA_ID, .bytes, [.searchable], .value(empty)),
        AttributeSpec(CKA_START_DATE, .date, [], .value(empty)),
        AttributeSpec(CKA_END_DATE, .date, [], .value(empty)),
        AttributeSpec(CKA_DERIVE, .bool, [.security], .value(F)),
        AttributeSpec(CKA_LOCAL, .bool, [.computed, .fixed]),
        AttributeSpec(CKA_KEY_GEN_MECHANISM, .ulong, [.computed, .fixed]),
        // No default: absent means "no restriction" (read back as the token's whole mechanism list); a list given
        // at creation, even an empty one, is enforced. Changes may only narrow it (KeyRoles.narrowsMechanisms).
        AttributeSpec(CK.allowedMechanisms, .mechanismList, [.security]),
        // Usage defaults: a cipher key (ENCRYPT/DECRYPT), never a wrapping key unless asked; a template that asks
        // for WRAP/UNWRAP gets ENCRYPT/DECRYPT false (KeyRoles.defaults). Roles are never mixed (KeyRoles.violation)
        // and fixed at creation but for giving one up (true → false): a key that wrapped must never decrypt later.
        AttributeSpec(CKA_ENCRYPT, .bool, [.onlyToFalse, .security], .value(T)),
        AttributeSpec(CKA_DECRYPT, .bool, [.onlyToFalse, .security], .value(T)),
        AttributeSpec(CKA_SIGN, .bool, [.security], .value(T)),
        AttributeSpec(CKA_VERIFY, .bool, [.security], .value(T)),
        AttributeSpec(CKA_WRAP, .bool, [.onlyToFalse, .security], .value(F)),
        AttributeSpec(CKA_UNWRAP, .bool, [.onlyToFalse, .security], .value(F)),
        // SENSITIVE defaults to true for wrapping keys and unwrapped keys (KeyRoles.defaults).
        AttributeSpec(CKA_SENSITIVE, .bool, [.onlyToTrue, .security], .value(F)),
        // Secure default (as pkcs11-check reads PKCS#11 Table 18): a key is extractable only when asked for.
        AttributeSpec(CKA_EXTRACTABLE, .bool, [.onlyToFalse, .security], .value(F)),
        AttributeSpec(CKA_ALWAYS_SENSITIVE, .bool, [.computed, .fixed]),
        AttributeSpec(CKA_NEVER_EXTRACTABLE, .bool, [.computed, .fixed]),
        AttributeSpec(CKA_CHECK_VALUE, .bytes, [.fixed]),  // computed; a create template may state it (must match)
        AttributeSpec(CKA_WRAP_WITH_TRUSTED, .bool, [.onlyToTrue, .security], .value(F)),
        // Never carried into a copy made outside an SO session (Module.copyObjectImpl).
        AttributeSpec(CKA_TRUSTED, .bool, [.soSetsTrue, .security], .value(F)),
        // What a wrapping key may wrap and what its unwrapped keys become: fixed once the key exists.
        AttributeSpec(CK.wrapTemplate, .template, [.fixed], .template),
        AttributeSpec(CK.unwrapTemplate, .template, [.fixed], .template),
        AttributeSpec(CK.deriveTemplate, .template, [.fixed], .template),
        AttributeSpec(CKA_VALUE, .bytes, [.requiredOnCreate, .createOnly, .fixed, .sensitive, .secretAtRest]),
        AttributeSpec(CKA_VALUE_LEN, .ulong, [.fixed]),  // computed at create; generate requires it for AES/generic
        // Vendor, read-only (token policies, docs/policies.md): creation time and counted uses.
        AttributeSpec(CK.attrKeyCreated, .ulong, [.computed, .fixed]),
        AttributeSpec(CK.attrKeyUseCount, .ulong, [.computed, .fixed]),
    ]

    /// Vendor: N2HE parameters (DESIGN §2): fixed at creation; security bits computed.
    static let n2he: [AttributeSpec] = [
        AttributeSpec(CK.attrN2HEDimension, .ulong, [.fixed], .value(Encoding.ulong(CK_ULONG(N2HEParameters.default.n)))),
        AttributeSpec(CK.attrN2HEModulusBits, .ulong, [.fixed], .value(Encoding.ulong(CK_ULONG(N2HEParameters.default.modulusBits)))),
        AttributeSpec(CK.attrN2HEPlaintextBits, .ulong, [.fixed], .value(Encoding.ulong(CK_ULONG(N2HEParameters.default.plaintextBits)))),
        AttributeSpec(CK.attrN2HENoiseMilli, .ulong, [.fixed], .value(Encoding.ulong(CK_ULONG(N2HEParameters.default.noiseMilli)))),
        AttributeSpec(CK.attrN2HESecurityBits, .ulong, [.computed, .fixed]),
        // seeded-once (1, the default) or raw (2); may only be tightened (docs/n2he.md).
        AttributeSpec(CK.attrN2HEDecryptRule, .ulong, [.onlyDown, .security], .value(Encoding.ulong(N2HEDecryptRule.seededOnce.rawValue))),
    ]

    private static func index(_ specs: [AttributeSpec]) -> [CK_ATTRIBUTE_TYPE: AttributeSpec] {
        var d: [CK_ATTRIBUTE_TYPE: AttributeSpec] = [:]
        for s in specs { d[s.type] = s }
        return d
    }

    private static let dataTable = index(storage(privateByDefault: false) + data)
    private static let aesTable = index(storage(privateByDefault: true) + secretKey)
    private static let n2heTable = index(storage(privateByDefault: true) + secretKey + n2he)

    /// The table of one object kind (nil: unsupported kind).
    static func table(for kind: ObjectKind) -> [CK_ATTRIBUTE_TYPE: AttributeSpec]? {
        switch kind {
        case .data: return dataTable
        case .secretKey(let k) where k == CKK_AES || ObjectKind.isGenericSecretLike(k): return aesTable
        case .secretKey(let k) where k == CK.keyN2HE: return n2heTable
        default: return nil
        }
    }

    /// Spec lookup for one kind.
    static func spec(_ type: CK_ATTRIBUTE_TYPE, for kind: ObjectKind) -> AttributeSpec? {
        table(for: kind)?[type]
    }

    /// Every attribute type served from TokenStore's hash index.
    static let indexedTypes: Set<UInt> = {
        var s = Set<UInt>()
        for spec in storage(privateByDefault: true) + secretKey + data where spec.rules.contains(.searchable) { s.insert(UInt(spec.type)) }
        return s
    }()

    /// CKA_PRIVATE when the template omits it: the table's default for the kind.
    static func defaultPrivate(for kind: ObjectKind) -> Bool {
        spec(CKA_PRIVATE, for: kind)?.defaultValue == .value(Encoding.bool(true))
    }

    /// Is `type` sealed at rest for an object of `kind` with CKA_PRIVATE = `isPrivate`?
    static func isSecretAtRest(_ type: CK_ATTRIBUTE_TYPE, kind: ObjectKind, isPrivate: Bool) -> Bool {
        guard let s = spec(type, for: kind) else { return false }
        return s.rules.contains(.secretAtRest) || (isPrivate && s.rules.contains(.secretWhenPrivate))
    }

    /// Moves every value to where the table says it belongs: into `secrets` (sealed in the store, never in a
    /// clear attribute) when `isSecretAtRest`, into `attributes` otherwise. The one place that decides it, for
    /// new objects (ObjectFactory.build) and for copies whose CKA_PRIVATE changed (ObjectRecord.placeSecrets).
    static func place(_ attributes: inout AttributeMap, _ secrets: inout [CK_ATTRIBUTE_TYPE: SecretBytes],
                      kind: ObjectKind, isPrivate: Bool) {
        for (type, value) in attributes where isSecretAtRest(type, kind: kind, isPrivate: isPrivate) {
            if case .bytes(let b) = value { secrets[type] = SecretBytes(copying: b) }
            attributes[type] = nil
        }
        for (type, secret) in secrets where !isSecretAtRest(type, kind: kind, isPrivate: isPrivate) {
            attributes[type] = .bytes(secret.unsafeCopyToArray())
            secrets[type] = nil
        }
    }

    /// Validates and canonicalises one value against its kind. Throws CKR_ATTRIBUTE_VALUE_INVALID.
    static func canonical(_ value: AttributeValue, kind: ValueKind) throws -> AttributeValue {
        switch (kind, value) {
        case (.template, .template(let t)):
            var seen = Set<CK_ATTRIBUTE_TYPE>()
            for a in t {
                guard case .bytes = a.value, seen.insert(a.type).inserted else { throw ckr(CKR_ATTRIBUTE_VALUE_INVALID) }
            }
            return .template(t.map { a in
                // canonicalise booleans inside templates when we know the attribute is boolean
                if case .bytes(let b) = a.value, b.count == 1, isKnownBool(a.type) {
                    return Attribute(type: a.type, bytes: Encoding.bool(b[0] != 0))
                }
                return a
            })
        case (.template, .bytes(let b)) where b.isEmpty:
            return .template([])
        case (.template, _), (_, .template):
            throw ckr(CKR_ATTRIBUTE_VALUE_INVALID)
        case (.bool, .bytes(let b)):
            guard let v = Encoding.decodeBool(b) else { throw ckr(CKR_ATTRIBUTE_VALUE_INVALID) }
            return .bytes(Encoding.bool(v))
        case (.ulong, .bytes(let b)):
            guard Encoding.decodeULong(b) != nil else { throw ckr(CKR_ATTRIBUTE_VALUE_INVALID) }
            return value
        case (.mechanismList, .bytes(let b)):
            guard Encoding.decodeULongArray(b) != nil else { throw ckr(CKR_ATTRIBUTE_VALUE_INVALID) }
            return value
        case (.date, .bytes(let b)):
            guard b.isEmpty || (b.count == 8 && b.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 })) else {
                throw ckr(CKR_ATTRIBUTE_VALUE_INVALID)
            }
            return value
        case (.utf8, .bytes(let b)):
            guard String(validating: b, as: UTF8.self) != nil else { throw ckr(CKR_ATTRIBUTE_VALUE_INVALID) }
            return value
        case (.bytes, .bytes):
            return value
        }
    }

    static func isKnownBool(_ type: CK_ATTRIBUTE_TYPE) -> Bool {
        for table in [aesTable, dataTable] {
            if let s = table[type] { return s.kind == .bool }
        }
        return false
    }

    /// Canonical form of a search-template value: attributes of a known kind are canonicalised (so a CK_BBOOL
    /// given as 0xFF still matches); a malformed value can match nothing (nil).
    static func canonicalForSearch(_ a: Attribute) -> AttributeValue? {
        for table in [n2heTable, dataTable] {
            if let s = table[a.type] { return try? canonical(a.value, kind: s.kind) }
        }
        return a.value
    }
}
