// One object as Cryptoki sees it: its kind, its non-secret attributes (canonical encodings) and, when available,
// its secret values. Token objects are rebuilt from TokenStore records on each access (the store keeps an indexed
// mirror and refreshes it when another process commits); session objects live in memory only.
import CP11Kit
import CryptoCore
import TokenStore

struct ObjectRecord: @unchecked Sendable {
    let uniqueID: String
    let kind: ObjectKind
    /// Every attribute except the secret-at-rest ones.
    var attributes: [CK_ATTRIBUTE_TYPE: AttributeValue]
    /// Secret-at-rest values available in memory (session objects always; token objects once unsealed).
    var secrets: [CK_ATTRIBUTE_TYPE: SecretBytes]
    /// Types sealed in the store (token objects); values are unsealed on demand.
    var sealedTypes: Set<CK_ATTRIBUTE_TYPE>
    /// Store change number (token objects): a cached unsealed value is valid while this is unchanged.
    var sequence: Int64
    /// Set by C_SetAttributeValue when a sealed value changed (the store must reseal it).
    var secretsChanged = false

    func bool(_ type: CK_ATTRIBUTE_TYPE) -> Bool {
        guard case .bytes(let b)? = attributes[type], let v = Encoding.decodeBool(b) else { return false }
        return v
    }

    func ulong(_ type: CK_ATTRIBUTE_TYPE) -> CK_ULONG? {
        guard case .bytes(let b)? = attributes[type] else { return nil }
        return Encoding.decodeULong(b)
    }

    func bytes(_ type: CK_ATTRIBUTE_TYPE) -> [UInt8]? {
        guard case .bytes(let b)? = attributes[type] else { return nil }
        return b
    }

    var isToken: Bool { bool(CKA_TOKEN) }
    var isPrivate: Bool { bool(CKA_PRIVATE) }
    var isModifiable: Bool { bool(CKA_MODIFIABLE) }
    /// A sensitive attribute (CKA_VALUE of a key) is hidden when the key is sensitive or unextractable.
    var hidesSensitive: Bool {
        guard case .secretKey = kind else { return false }
        return bool(CKA_SENSITIVE) || !bool(CKA_EXTRACTABLE)
    }

    var hasSecretValue: Bool { secrets[CKA_VALUE] != nil || sealedTypes.contains(CKA_VALUE) }

    /// Object class / key type from canonical attributes (nil: not one of ours).
    static func kind(classBytes: [UInt8]?, keyTypeBytes: [UInt8]?) -> ObjectKind? {
        guard let cb = classBytes, let cls = Encoding.decodeULong(cb) else { return nil }
        if cls == CKO_DATA { return .data }
        if cls == CKO_SECRET_KEY, let kb = keyTypeBytes, let kt = Encoding.decodeULong(kb),
           ObjectKind.supportedKeyTypes.contains(kt) {
            return .secretKey(kt)
        }
        return nil
    }

    /// Rebuilds a token object from its store record.
    init?(stored: StoredObject) {
        guard let kind = Self.kind(classBytes: stored.publicAttributes[UInt(CKA_CLASS)],
                                   keyTypeBytes: stored.publicAttributes[UInt(CKA_KEY_TYPE)]),
              let table = AttributePolicy.table(for: kind) else { return nil }
        var attrs: [CK_ATTRIBUTE_TYPE: AttributeValue] = [:]
        for (t, v) in stored.publicAttributes {
            let type = CK_ATTRIBUTE_TYPE(t)
            if let spec = table[type], spec.kind == .template {
                attrs[type] = .template(Encoding.decodeTemplate(v) ?? [])
            } else {
                attrs[type] = .bytes(v)
            }
        }
        self.uniqueID = stored.uniqueID
        self.kind = kind
        self.attributes = attrs
        self.secrets = [:]
        self.sealedTypes = Set(stored.sealedAttributes.keys.map { CK_ATTRIBUTE_TYPE($0) })
        self.sequence = stored.sequence
    }

    init(uniqueID: String, kind: ObjectKind, attributes: [CK_ATTRIBUTE_TYPE: AttributeValue],
         secrets: [CK_ATTRIBUTE_TYPE: SecretBytes]) {
        self.uniqueID = uniqueID
        self.kind = kind
        self.attributes = attributes
        self.secrets = secrets
        self.sealedTypes = []
        self.sequence = 0
    }

    /// Puts each value where the attribute table says it belongs now (a data object's CKA_VALUE is sealed when
    /// private, clear when public; a key's always sealed). Used by C_CopyObject, which may change CKA_PRIVATE.
    mutating func placeSecrets() {
        AttributePolicy.place(&attributes, &secrets, kind: kind, isPrivate: isPrivate)
    }

    /// The public attributes in the store's encoding (templates serialised).
    var storePublicAttributes: [UInt: [UInt8]] {
        var out: [UInt: [UInt8]] = [:]
        for (t, v) in attributes {
            switch v {
            case .bytes(let b): out[UInt(t)] = b
            case .template(let tpl): out[UInt(t)] = Encoding.encodeTemplate(tpl)
            }
        }
        return out
    }

    /// Does the object carry every (type, value) of `template`? Secret values compare only when in memory, and
    /// never a value the caller could not read (a sensitive or unextractable key's CKA_VALUE): a search is not an
    /// equality oracle.
    func matches(_ template: [(CK_ATTRIBUTE_TYPE, AttributeValue)]) -> Bool {
        for (t, v) in template {
            if let mine = attributes[t] {
                if mine != v { return false }
            } else if hidesSensitive, AttributePolicy.spec(t, for: kind)?.rules.contains(.sensitive) == true {
                return false
            } else if let s = secrets[t], case .bytes(let b) = v {
                if !constantTimeEquals(s, b) { return false }
            } else {
                return false
            }
        }
        return true
    }

    /// A size estimate for C_GetObjectSize: the bytes of every attribute plus a small per-attribute overhead.
    var sizeEstimate: Int {
        var n = 0
        for (_, v) in attributes {
            switch v {
            case .bytes(let b): n += b.count + 16
            case .template(let t): n += 16 + t.reduce(0) { acc, a in
                if case .bytes(let b) = a.value { return acc + b.count + 16 }
                return acc + 16
            }
            }
        }
        for (_, s) in secrets { n += s.count + 16 }
        for t in sealedTypes where secrets[t] == nil { n += 64 }
        return n
    }
}
