// What listings and key commands report about a secret key. Read through C_GetAttributeValue only;
// CKA_VALUE is never requested.
import CryptoCore
import CP11Kit
import Foundation

struct N2HEParametersSummary: Codable, Equatable {
    let dimension: UInt
    let modulusBits: UInt
    let plaintextBits: UInt
    let noiseMilli: UInt
    /// CKA_TG_N2HE_SECURITY_BITS as the module estimates it; nil when not reported.
    let securityBits: UInt?
    /// CKA_TG_N2HE_DECRYPT_RULE ("seeded-once" or "raw"); nil when not reported.
    var decryptRule: DecryptRule? = nil

    var text: String {
        let mu = String(format: "%.3f", Double(noiseMilli) / 1000)
        return "n=\(dimension) q=2^\(modulusBits) t=2^\(plaintextBits) mu=\(mu)"
    }
}

struct KeySummary: Codable, Equatable {
    let label: String
    /// CKA_ID in hex ("" when empty or absent).
    let id: String
    /// CKA_UNIQUE_ID (PKCS#11 3.0); nil when the module does not have it.
    let uniqueID: String?
    let keyType: String
    /// CKA_TOKEN: false for session objects.
    let persistent: Bool?
    let sensitive: Bool?
    let extractable: Bool?
    let valueLength: UInt?
    /// The CKA_ENCRYPT … CKA_DERIVE flags that are true ("encrypt", "decrypt", "wrap", ...).
    let usage: [String]
    let n2he: N2HEParametersSummary?
    /// CKA_TG_CREATED as ISO 8601 UTC; nil for keys made before the module recorded it (or other modules).
    var createdAt: String? = nil
    /// Whole days since CKA_TG_CREATED.
    var ageDays: UInt? = nil
    /// CKA_TG_USE_COUNT (counted while the token's policy sets max_key_uses).
    var useCount: UInt? = nil
    /// "active" (may encrypt), "decrypt-only", or "disabled".
    var state: String? = nil
    /// Rotation generation (`key rotate`): 1 for a key never rotated; nil when the label is ambiguous.
    var generation: UInt32? = nil
    /// Rotation lineage in hex, once the key has been rotated.
    var lineage: String? = nil
    /// Why a rotation is due, from the token's policy (rotation_reminder_days, max_key_age_days, max_key_uses).
    var reminder: String? = nil

    static let usageAttributes: [(CK_ULONG, String)] = [
        (CK_ULONG(CKA_ENCRYPT), "encrypt"), (CK_ULONG(CKA_DECRYPT), "decrypt"), (CK_ULONG(CKA_SIGN), "sign"),
        (CK_ULONG(CKA_VERIFY), "verify"), (CK_ULONG(CKA_WRAP), "wrap"), (CK_ULONG(CKA_UNWRAP), "unwrap"),
        (CK_ULONG(CKA_DERIVE), "derive"),
    ]

    static func read(_ session: PKCS11Session, _ object: CK_OBJECT_HANDLE) throws -> KeySummary {
        func attr(_ type: CK_ULONG) throws -> AttributeValue { try session.attribute(CK_ATTRIBUTE_TYPE(type), of: object) }
        let keyType = try attr(CK_ULONG(CKA_KEY_TYPE)).ulong
        var n2he: N2HEParametersSummary?
        if keyType == CK_KEY_TYPE(CKK_TG_N2HE),
           let n = try attr(CK_ULONG(CKA_TG_N2HE_DIMENSION)).ulong,
           let q = try attr(CK_ULONG(CKA_TG_N2HE_MODULUS_BITS)).ulong,
           let t = try attr(CK_ULONG(CKA_TG_N2HE_PLAINTEXT_BITS)).ulong,
           let mu = try attr(CK_ULONG(CKA_TG_N2HE_NOISE_MILLI)).ulong {
            let security = try attr(CK_ULONG(CKA_TG_N2HE_SECURITY_BITS)).ulong
            n2he = N2HEParametersSummary(dimension: n, modulusBits: q, plaintextBits: t, noiseMilli: mu,
                                         securityBits: security,
                                         decryptRule: try attr(CK_ULONG(CKA_TG_N2HE_DECRYPT_RULE)).ulong.flatMap(DecryptRule.init(value:)))
        }
        return KeySummary(
            label: try attr(CK_ULONG(CKA_LABEL)).string ?? "",
            id: try attr(CK_ULONG(CKA_ID)).bytes.map { Hex.encode($0) } ?? "",
            uniqueID: try session.attribute(PKCS11Constants.attributeUniqueID, of: object).string,
            keyType: keyType.map(Names.keyType) ?? "?",
            persistent: try attr(CK_ULONG(CKA_TOKEN)).bool,
            sensitive: try attr(CK_ULONG(CKA_SENSITIVE)).bool,
            extractable: try attr(CK_ULONG(CKA_EXTRACTABLE)).bool,
            valueLength: try attr(CK_ULONG(CKA_VALUE_LEN)).ulong,
            usage: try usageAttributes.compactMap { type, name in try attr(type).bool == true ? name : nil },
            n2he: n2he)
        .withUsage(created: try attr(CK_ULONG(CKA_TG_CREATED)).ulong, uses: try attr(CK_ULONG(CKA_TG_USE_COUNT)).ulong,
                   now: UInt(time(nil)))
    }

    private func withUsage(created: CK_ULONG?, uses: CK_ULONG?, now: UInt) -> KeySummary {
        var s = self
        if let created {
            s.createdAt = isoDate(created)
            s.ageDays = now >= created ? (now - created) / 86_400 : 0
        }
        s.useCount = uses
        if usage.contains("encrypt") {
            s.state = "active"
        } else if usage.contains("decrypt") {
            s.state = "decrypt-only"
        } else if n2he != nil {
            s.state = "disabled"
        }
        return s
    }

    /// Multi-line text for generate/import.
    var text: String {
        var lines = ["label:      \(label)"]
        lines.append("id:         \(id.isEmpty ? "-" : id)")
        lines.append("unique id:  \(uniqueID ?? "-")")
        lines.append("key type:   \(keyType)")
        if let n2he {
            lines.append("parameters: \(n2he.text)")
            lines.append("security:   \(n2he.securityBits.map { "~\($0) bits (classical estimate, HE standard tables)" } ?? "-")")
            if let rule = n2he.decryptRule {
                lines.append("decryption: \(rule.rawValue)" + (rule == .raw ? " (WARNING: any PIN holder can recover this key through C_Decrypt)" : ""))
            }
        }
        var attrs: [String] = []
        if let persistent { attrs.append(persistent ? "token object" : "session object") }
        if let sensitive { attrs.append(sensitive ? "sensitive" : "not sensitive") }
        if let extractable { attrs.append(extractable ? "extractable" : "not extractable") }
        lines.append("attributes: \(attrs.joined(separator: ", "))")
        lines.append("usage:      \(usage.isEmpty ? "-" : usage.joined(separator: ", "))")
        if let createdAt { lines.append("created:    \(createdAt)") }
        return lines.joined(separator: "\n")
    }
}

/// Seconds since 1970 as "YYYY-MM-DDThh:mm:ssZ".
func isoDate(_ seconds: UInt) -> String {
    var t = time_t(clamping: seconds)
    var parts = tm()
    guard gmtime_r(&t, &parts) != nil else { return String(seconds) }
    return String(format: "%04d-%02d-%02dT%02d:%02d:%02dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                  Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
}

func jsonString<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}
