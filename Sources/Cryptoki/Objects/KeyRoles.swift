// The rules that keep key values inside the token (docs/threat-model.md, "What a user-PIN holder can and cannot
// do"): key roles are separated, only keys nobody can know may wrap, unwrapped keys are sensitive, and a copy can
// only tighten. ObjectFactory and the object calls consult this file; the attribute table marks the attributes
// it guards (`.security`).
import CP11Kit

/// CKA_TG_N2HE_DECRYPT_RULE of an N2HE key (docs/n2he.md). Smaller is stricter.
/// Raw values: CKV_TG_N2HE_SEEDED_ONCE and CKV_TG_N2HE_RAW of Include/tensorguard-pkcs11.h (MechanismTests checks).
enum N2HEDecryptRule: CK_ULONG, Sendable {
    /// C_Decrypt reads LWE2 and seeded sums only, each seed once per key, rounding smudged.
    case seededOnce = 1
    /// The SDK's behaviour: LWE1 accepted, seeds reusable — any PIN holder can recover the key.
    case raw = 2

    var name: String { self == .seededOnce ? "seeded-once" : "raw" }

    /// The rule of a key record (absent: seeded-once, also for keys stored before the attribute existed).
    init(_ record: ObjectRecord) {
        self = record.ulong(CK.attrN2HEDecryptRule).flatMap(N2HEDecryptRule.init(rawValue:)) ?? .seededOnce
    }
}

enum KeyRoles {
    private static let T = AttributeValue.bytes(Encoding.bool(true))
    private static let F = AttributeValue.bytes(Encoding.bool(false))

    /// Defaults that depend on the rest of the template, applied before the table's own defaults: a template that
    /// asks for WRAP or UNWRAP gets ENCRYPT/DECRYPT false (a wrapping key is not a cipher key), and wrapping keys
    /// and unwrapped keys are sensitive unless the template says otherwise.
    static func defaults(for parsed: AttributeMap, kind: ObjectKind, origin: ObjectOrigin) -> AttributeMap {
        guard case .secretKey = kind else { return [:] }
        var out: AttributeMap = [:]
        let wantsWrapping = parsed[CKA_WRAP] == T || parsed[CKA_UNWRAP] == T
        if wantsWrapping {
            out[CKA_ENCRYPT] = F
            out[CKA_DECRYPT] = F
        }
        if parsed[CKA_WRAP] == T || origin == .unwrapped {
            out[CKA_SENSITIVE] = T
        }
        return out
    }

    static func isTrue(_ attrs: AttributeMap, _ type: CK_ATTRIBUTE_TYPE) -> Bool { attrs[type] == T }

    /// Does the key hold a wrapping role (WRAP/UNWRAP) together with a cipher role (ENCRYPT/DECRYPT)?
    static func mixesRoles(_ attrs: AttributeMap) -> Bool {
        (isTrue(attrs, CKA_WRAP) || isTrue(attrs, CKA_UNWRAP)) && (isTrue(attrs, CKA_ENCRYPT) || isTrue(attrs, CKA_DECRYPT))
    }

    /// May a key with these attributes serve as a wrapping key? Only if no caller can know its value: generated
    /// here and sensitive and unextractable for its whole life, or marked trusted by the Security Officer — and in
    /// either case sensitive and unextractable now.
    static func mayWrap(_ attrs: AttributeMap) -> Bool {
        guard isTrue(attrs, CKA_SENSITIVE), !isTrue(attrs, CKA_EXTRACTABLE) else { return false }
        if isTrue(attrs, CKA_TRUSTED) { return true }
        return isTrue(attrs, CKA_LOCAL) && isTrue(attrs, CKA_ALWAYS_SENSITIVE) && isTrue(attrs, CKA_NEVER_EXTRACTABLE)
    }

    /// Why a complete secret key's attributes break the rules (nil: they keep them). `allowMixedRoles` is the
    /// token policy `allow_mixed_key_roles` (legacy applications).
    static func violation(_ attrs: AttributeMap, allowMixedRoles: Bool) -> String? {
        if !allowMixedRoles, mixesRoles(attrs) {
            return "a key may not combine CKA_WRAP/CKA_UNWRAP with CKA_ENCRYPT/CKA_DECRYPT (separated key roles)"
        }
        if isTrue(attrs, CKA_WRAP), !mayWrap(attrs) {
            return "CKA_WRAP needs a key nobody can know: generated on the token, CKA_SENSITIVE true and CKA_EXTRACTABLE "
                + "false for its whole life, or CKA_TRUSTED set by the Security Officer"
        }
        return nil
    }

    /// Is `new` at least as strict as `current` for the security attribute `type`? (C_CopyObject may only
    /// tighten; a value equal to the current one always passes.)
    static func tightens(_ type: CK_ATTRIBUTE_TYPE, from current: AttributeValue?, to new: AttributeValue) -> Bool {
        if current == new { return true }
        switch type {
        case CKA_SENSITIVE, CKA_PRIVATE, CKA_WRAP_WITH_TRUSTED:
            return new == T
        case CK.allowedMechanisms:
            return narrowsMechanisms(from: current, to: new)
        case CK.attrN2HEDecryptRule:
            return onlyDown(from: current, to: new)
        default:
            // Usage flags, EXTRACTABLE, MODIFIABLE, COPYABLE, DESTROYABLE, TRUSTED: true → false only.
            return new == F
        }
    }

    /// CKA_ALLOWED_MECHANISMS may only lose mechanisms (absent means every mechanism).
    static func narrowsMechanisms(from current: AttributeValue?, to new: AttributeValue) -> Bool {
        guard case .bytes(let nb) = new, let wanted = Encoding.decodeULongArray(nb) else { return false }
        guard case .bytes(let cb)? = current else { return true }
        guard let allowed = Encoding.decodeULongArray(cb) else { return false }
        return Set(wanted).isSubset(of: Set(allowed))
    }

    /// A CK_ULONG that may only go down (`.onlyDown`).
    static func onlyDown(from current: AttributeValue?, to new: AttributeValue) -> Bool {
        guard case .bytes(let nb) = new, let n = Encoding.decodeULong(nb) else { return false }
        guard case .bytes(let cb)? = current, let c = Encoding.decodeULong(cb) else { return true }
        return n <= c
    }
}
