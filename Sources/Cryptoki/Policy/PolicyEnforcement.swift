// Where token policies (TokenPolicy.swift, docs/policies.md) are applied, and the one refusal path: log, audit
// record, then the CK_RV. Nothing here runs per operation unless the token's policy limits key use.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CP11Kit
import TokenStore

/// Wall-clock seconds for key creation times, key ages and hourly limits. The module runs on `.system`; a test
/// that needs time to pass hands another clock to `Module.init(configPath:clock:)` instead of sleeping.
public struct PolicyClock: Sendable {
    public let now: @Sendable () -> UInt64

    public init(_ now: @escaping @Sendable () -> UInt64) { self.now = now }

    public static let system = PolicyClock {
        let t = time(nil)
        return t > 0 ? UInt64(t) : 0
    }
}

/// The policy-relevant state of one key: its creation time and its counted uses.
struct KeyUsage: Equatable, Sendable {
    var created: UInt64?
    var uses: UInt64

    init(created: UInt64?, uses: UInt64) {
        self.created = created
        self.uses = uses
    }

    init(_ attributes: [UInt: [UInt8]]) {
        created = attributes[UInt(CK.attrKeyCreated)].flatMap(Encoding.decodeULong).map(UInt64.init)
        uses = attributes[UInt(CK.attrKeyUseCount)].flatMap(Encoding.decodeULong).map(UInt64.init) ?? 0
    }

    init(_ record: ObjectRecord) {
        created = record.ulong(CK.attrKeyCreated).map(UInt64.init)
        uses = record.ulong(CK.attrKeyUseCount).map(UInt64.init) ?? 0
    }

    /// Applies `policy` to one encryption-direction use at `now`. A key without a creation time (made before this
    /// module version) is stamped at its first use under an age policy: its age counts from then.
    /// Returns the refusal reason (nil: allowed) and whether `self` changed and must be written back.
    mutating func evaluate(_ policy: TokenPolicy, now: UInt64, charge: Bool) -> (refusal: String?, changed: Bool) {
        var changed = false
        if created == nil, policy.maxKeyAgeDays != nil {
            created = now
            changed = true
        }
        if let days = policy.maxKeyAgeDays, let created, now >= created {
            let age = now - created
            if age >= UInt64(days) * TokenPolicy.secondsPerDay {
                return ("max_key_age_days \(days) reached (key is \(age / TokenPolicy.secondsPerDay) days old); "
                    + "rotate it: it remains usable for decryption", changed)
            }
        }
        if let max = policy.maxKeyUses, uses >= max {
            return ("max_key_uses \(max) reached (\(uses) uses); rotate it: it remains usable for decryption", changed)
        }
        if charge, policy.maxKeyUses != nil {
            uses += 1  // uses < max ≤ UInt64.max here
            changed = true
        }
        return (nil, changed)
    }

    func write(into attributes: inout [UInt: [UInt8]]) {
        if let created { attributes[UInt(CK.attrKeyCreated)] = Encoding.ulong(CK_ULONG(created)) }
        attributes[UInt(CK.attrKeyUseCount)] = Encoding.ulong(CK_ULONG(uses))
    }

    func write(into record: inout ObjectRecord) {
        if let created { record.attributes[CK.attrKeyCreated] = .bytes(Encoding.ulong(CK_ULONG(created))) }
        record.attributes[CK.attrKeyUseCount] = .bytes(Encoding.ulong(CK_ULONG(uses)))
    }
}

extension Module {
    /// Logs, records the audit event, then throws `rv`.
    func refuseByPolicy(_ s: Session, rv: CK_RV, uniqueID: String?, label: [UInt8]?, mechanism: CK_MECHANISM_TYPE?,
                        reason: String) throws -> Never {
        let labelText = label.map { String(decoding: $0, as: UTF8.self) }
        Log.info("token '\(s.token.config.name)': refused by policy: \(reason)"
            + (labelText.map { " (key '\($0)')" } ?? ""))
        try s.token.audit(AuditEvent(kind: .policyRefusal, outcome: .failure, rv: rv, session: s.handle,
                                     objectUniqueID: uniqueID, objectLabel: labelText, mechanism: mechanism,
                                     reason: reason))
        throw ckr(rv)
    }

    /// `allowed_mechanisms`: a mechanism the policy leaves out is refused like one the token lacks.
    func requireAllowedMechanism(_ s: Session, _ type: CK_MECHANISM_TYPE) throws {
        guard !s.token.config.policy.allows(type) else { return }
        try refuseByPolicy(s, rv: CKR_MECHANISM_INVALID, uniqueID: nil, label: nil, mechanism: type,
                           reason: "\(Mechanisms.name(type)) is not in allowed_mechanisms")
    }

    /// The token's mechanism list as the policy leaves it.
    func allowedMechanisms(_ slot: CK_SLOT_ID) throws -> [CK_MECHANISM_TYPE] {
        let policy = try token(slot).config.policy
        return Mechanisms.list.filter(policy.allows)
    }

    /// Creation rules for a new object (C_CreateObject, C_GenerateKey, C_UnwrapKey): `allow_extractable` and
    /// `min_n2he_security_bits`. Both answer CKR_TEMPLATE_INCONSISTENT.
    func checkNewObjectPolicy(_ s: Session, parsed: AttributeMap, kind: ObjectKind) throws {
        guard case .secretKey = kind else { return }
        let policy = s.token.config.policy
        let label: [UInt8]? = { if case .bytes(let b)? = parsed[CKA_LABEL] { return b } else { return nil } }()
        if !policy.allowExtractable, parsed[CKA_EXTRACTABLE] == .bytes(Encoding.bool(true)) {
            try refuseByPolicy(s, rv: CKR_TEMPLATE_INCONSISTENT, uniqueID: nil, label: label, mechanism: nil,
                               reason: "allow_extractable is false: a key with CKA_EXTRACTABLE = true may not be created")
        }
        if kind == .secretKey(CK.keyN2HE) {
            let params = try ObjectFactory.n2heParameters(parsed)
            let bits = params.estimatedClassicalSecurityBits
            if bits < policy.minN2HESecurityBits {
                try refuseByPolicy(s, rv: CKR_TEMPLATE_INCONSISTENT, uniqueID: nil, label: label, mechanism: nil,
                                   reason: "N2HE key estimated at \(bits) bits is below min_n2he_security_bits \(policy.minN2HESecurityBits)")
            }
        }
    }

    /// C_CopyObject: the copy may not be extractable under `allow_extractable: false`, and under `max_key_uses` it
    /// may not encrypt or sign (it would have a use count of its own, a way around the limit).
    func checkCopyPolicy(_ s: Session, copy: ObjectRecord) throws {
        guard case .secretKey = copy.kind else { return }
        let policy = s.token.config.policy
        if !policy.allowExtractable, copy.bool(CKA_EXTRACTABLE) {
            try refuseByPolicy(s, rv: CKR_TEMPLATE_INCONSISTENT, uniqueID: copy.uniqueID, label: copy.bytes(CKA_LABEL),
                               mechanism: nil,
                               reason: "allow_extractable is false: the copy would have CKA_EXTRACTABLE = true (add CKA_EXTRACTABLE = false to the template)")
        }
        if let limit = policy.maxKeyUses, copy.bool(CKA_ENCRYPT) || copy.bool(CKA_SIGN) {
            try refuseByPolicy(s, rv: CKR_TEMPLATE_INCONSISTENT, uniqueID: copy.uniqueID, label: copy.bytes(CKA_LABEL),
                               mechanism: nil,
                               reason: "max_key_uses \(limit) is set: a copy that can encrypt or sign would count its own uses (set CKA_ENCRYPT and CKA_SIGN false in the template)")
        }
    }

    /// C_SetAttributeValue: CKA_EXTRACTABLE = true is refused under `allow_extractable: false`.
    func checkSetAttributePolicy(_ s: Session, template: [Attribute], record: ObjectRecord) throws {
        guard case .secretKey = record.kind, !s.token.config.policy.allowExtractable else { return }
        for a in template where a.type == CKA_EXTRACTABLE {
            if case .bytes(let b) = a.value, Encoding.decodeBool(b) == true {
                try refuseByPolicy(s, rv: CKR_ATTRIBUTE_VALUE_INVALID, uniqueID: record.uniqueID,
                                   label: record.bytes(CKA_LABEL), mechanism: nil,
                                   reason: "allow_extractable is false: CKA_EXTRACTABLE may not be set to true")
            }
        }
    }

    /// `max_key_uses` / `max_key_age_days` for a key about to protect new data: C_EncryptInit and C_SignInit
    /// (counted uses) and the wrapping key of C_WrapKey (checked, not counted: its size query is a second call).
    /// Decryption, verification and unwrapping are never refused by these rules, so nothing becomes unreadable.
    /// The count is updated in one store transaction (exact across processes); without `max_key_uses` nothing
    /// is written, and without any limit this returns after two comparisons.
    func enforceKeyUsePolicy(_ s: Session, _ ref: ObjectRef, usage: CK_ATTRIBUTE_TYPE, mechanism: CK_MECHANISM_TYPE) throws {
        let policy = s.token.config.policy
        guard policy.limitsKeyUse, usage == CKA_ENCRYPT || usage == CKA_SIGN || usage == CKA_WRAP else { return }
        let charge = policy.maxKeyUses != nil && usage != CKA_WRAP
        let now = s.token.clock.now()
        let record = ref.record
        var known = KeyUsage(record)
        let refusal: String?
        if !charge, known.created != nil || policy.maxKeyAgeDays == nil {
            refusal = known.evaluate(policy, now: now, charge: false).refusal
        } else if record.isToken {
            refusal = try ErrorMap.guarded("token '\(s.token.config.name)': key use policy") {
                try s.token.database.modifyPublicAttributes(uniqueID: record.uniqueID) { attributes in
                    var current = KeyUsage(attributes)
                    let (refusal, changed) = current.evaluate(policy, now: now, charge: charge)
                    guard changed else { return (nil, refusal) }
                    var updated = attributes
                    current.write(into: &updated)
                    return (updated, refusal)
                }
            }
        } else {
            refusal = s.token.state.withLock { st -> String? in
                guard var entry = st.sessionObjects[ref.handle] else { return nil }
                var current = KeyUsage(entry.record)
                let (refusal, changed) = current.evaluate(policy, now: now, charge: charge)
                if changed {
                    current.write(into: &entry.record)
                    st.sessionObjects[ref.handle] = entry
                }
                return refusal
            }
        }
        if let refusal {
            try refuseByPolicy(s, rv: CKR_KEY_FUNCTION_NOT_PERMITTED, uniqueID: record.uniqueID,
                               label: record.bytes(CKA_LABEL), mechanism: mechanism, reason: refusal)
        }
    }
}
