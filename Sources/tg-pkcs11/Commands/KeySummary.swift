// What listings and key commands report about a secret key. Read through C_GetAttributeValue only;
// CKA_VALUE is never requested.
import CP11Kit
import Foundation

struct N2HEParametersSummary: Codable, Equatable {
    let dimension: UInt
    let modulusBits: UInt
    let plaintextBits: UInt
    let noiseMilli: UInt
    /// CKA_TG_N2HE_SECURITY_BITS as the module estimates it; nil when not reported.
    let securityBits: UInt?

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
                                         securityBits: security)
        }
        return KeySummary(
            label: try attr(CK_ULONG(CKA_LABEL)).string ?? "",
            id: try attr(CK_ULONG(CKA_ID)).bytes.map(hexString) ?? "",
            uniqueID: try session.attribute(PKCS11Constants.attributeUniqueID, of: object).string,
            keyType: keyType.map(Names.keyType) ?? "?",
            persistent: try attr(CK_ULONG(CKA_TOKEN)).bool,
            sensitive: try attr(CK_ULONG(CKA_SENSITIVE)).bool,
            extractable: try attr(CK_ULONG(CKA_EXTRACTABLE)).bool,
            valueLength: try attr(CK_ULONG(CKA_VALUE_LEN)).ulong,
            usage: try usageAttributes.compactMap { type, name in try attr(type).bool == true ? name : nil },
            n2he: n2he)
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
        }
        var attrs: [String] = []
        if let persistent { attrs.append(persistent ? "token object" : "session object") }
        if let sensitive { attrs.append(sensitive ? "sensitive" : "not sensitive") }
        if let extractable { attrs.append(extractable ? "extractable" : "not extractable") }
        lines.append("attributes: \(attrs.joined(separator: ", "))")
        lines.append("usage:      \(usage.isEmpty ? "-" : usage.joined(separator: ", "))")
        return lines.joined(separator: "\n")
    }
}

func jsonString<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}
