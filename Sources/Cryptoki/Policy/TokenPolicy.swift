// A token's `policy:` section (docs/policies.md): what keys may be created and how long they may protect new
// data. Parsed strictly like the rest of the configuration; evaluated in PolicyEnforcement.swift.
import CP11Kit

struct TokenPolicy: Equatable, Sendable {
    /// N2HE keys whose estimated classical security is below this are refused (0: no minimum).
    var minN2HESecurityBits = 0
    /// Mechanisms the token offers; nil: every mechanism of the module.
    var allowedMechanisms: Set<CK_MECHANISM_TYPE>? = nil
    /// false: no key may be created, generated, unwrapped, copied or set with CKA_EXTRACTABLE = true.
    var allowExtractable = true
    /// C_EncryptInit / C_SignInit beyond this many per key → CKR_KEY_FUNCTION_NOT_PERMITTED.
    var maxKeyUses: UInt64? = nil
    /// C_EncryptInit / C_SignInit / C_WrapKey with a key this many days old → CKR_KEY_FUNCTION_NOT_PERMITTED.
    var maxKeyAgeDays: Int? = nil
    /// Only for `tg-pkcs11 key list`: remind to rotate keys this many days old.
    var rotationReminderDays: Int? = nil
    /// Legacy applications: a key may hold WRAP/UNWRAP together with ENCRYPT/DECRYPT (audited; `doctor` warns).
    var allowMixedKeyRoles = false
    /// C_Decrypt calls per key and hour under an N2HE key whose decryption rule is `raw` (nil: no limit).
    var maxDecryptCallsPerHour: Int? = nil

    /// Does anything limit the use of existing keys (the only part evaluated per operation)?
    var limitsKeyUse: Bool { maxKeyUses != nil || maxKeyAgeDays != nil }

    static let secondsPerDay: UInt64 = 86_400

    func allows(_ mechanism: CK_MECHANISM_TYPE) -> Bool {
        guard let allowedMechanisms else { return true }
        return allowedMechanisms.contains(mechanism)
    }
}

/// The module's mechanism names, for `allowed_mechanisms` and messages.
extension TokenPolicy {
    static let keys = ["min_n2he_security_bits", "allowed_mechanisms", "allow_extractable", "max_key_uses",
                       "max_key_age_days", "rotation_reminder_days", "allow_mixed_key_roles", "max_decrypt_calls_per_hour"]

    /// Parses `tokens[i].policy` into `policy` (which may already hold the top-level
    /// `min_n2he_security_bits` alias; stating both is an error).
    static func parse(_ node: YAMLNode, into policy: inout TokenPolicy, path: String, aliasGiven: Bool,
                      fail: (String) -> ConfigurationError) throws {
        guard let m = node.mapping else { throw fail("\(path) must be a mapping") }
        for (k, v) in m {
            guard let key = k.string else { throw fail("\(path): non-string key") }
            let at = "\(path).\(key)"
            func days() throws -> Int {
                guard let i = v.int, (1...36_500).contains(i) else { throw fail("\(at) must be a number of days in 1...36500") }
                return i
            }
            switch key {
            case "min_n2he_security_bits":
                if aliasGiven {
                    throw fail("\(at) and the old spelling tokens[].min_n2he_security_bits are both given; keep only \(at)")
                }
                guard let i = v.int, (0...256).contains(i) else { throw fail("\(at) must be an integer in 0...256") }
                policy.minN2HESecurityBits = i
            case "allowed_mechanisms":
                guard let seq = v.sequence else {
                    throw fail("\(at) must be a list of mechanism names (e.g. [CKM_AES_GCM, CKM_TG_N2HE_LWE2]) or numbers")
                }
                var set = Set<CK_MECHANISM_TYPE>()
                for item in seq {
                    guard let s = item.string, let mech = Mechanisms.parse(s) else {
                        let known = Mechanisms.byName.keys.sorted().joined(separator: ", ")
                        throw fail("\(at): '\(item.string ?? "?")' is not a mechanism of this module (known: \(known); or a number such as 0x1087)")
                    }
                    set.insert(mech)
                }
                policy.allowedMechanisms = set
            case "allow_extractable":
                guard v.scalar != nil, let b = v.bool else { throw fail("\(at) must be true or false") }
                policy.allowExtractable = b
            case "max_key_uses":
                guard let i = v.int, i >= 1 else { throw fail("\(at) must be a positive integer") }
                policy.maxKeyUses = UInt64(i)
            case "max_key_age_days":
                policy.maxKeyAgeDays = try days()
            case "rotation_reminder_days":
                policy.rotationReminderDays = try days()
            case "allow_mixed_key_roles":
                guard v.scalar != nil, let b = v.bool else { throw fail("\(at) must be true or false") }
                policy.allowMixedKeyRoles = b
            case "max_decrypt_calls_per_hour":
                guard let i = v.int, i >= 1 else { throw fail("\(at) must be a positive integer") }
                policy.maxDecryptCallsPerHour = i
            default:
                throw fail("unknown key '\(at)' (known: \(keys.joined(separator: ", ")))")
            }
        }
    }
}
