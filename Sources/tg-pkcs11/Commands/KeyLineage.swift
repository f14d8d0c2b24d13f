// The generations of a rotated N2HE key (docs/policies.md "Key rotation"): which keys sharing a label belong
// together, which one encrypts, and how to find generation N. Everything is read through PKCS#11 attributes.
//
// CKA_ID of generation g ≥ 2: "TGR" 0x01 || lineage (16 bytes) || g (4 bytes, big-endian) — 24 bytes.
// Generation 1 is the key that was rotated first; it keeps its own CKA_ID (applications may know it), and the
// lineage is derived from its CKA_UNIQUE_ID: the first 16 bytes of SHA-256("TG-N2HE-LINEAGE" 0x00 || unique id).
import CP11Kit
import CryptoCore

enum RotationID {
    static let magic: [UInt8] = [0x54, 0x47, 0x52, 0x01]
    static let length = 24

    static func make(lineage: [UInt8], generation: UInt32) -> [UInt8] {
        magic + lineage + [UInt8(generation >> 24), UInt8((generation >> 16) & 0xFF),
                           UInt8((generation >> 8) & 0xFF), UInt8(generation & 0xFF)]
    }

    /// (lineage, generation) of an id in the rotation form; nil for any other id.
    static func parse(_ id: [UInt8]) -> (lineage: [UInt8], generation: UInt32)? {
        guard id.count == length, Array(id.prefix(4)) == magic else { return nil }
        let g = id[20..<24].reduce(UInt32(0)) { ($0 << 8) | UInt32($1) }
        guard g >= 2 else { return nil }
        return (Array(id[4..<20]), g)
    }

    /// The lineage rooted at the key with this CKA_UNIQUE_ID.
    static func lineage(ofRoot uniqueID: String) throws -> [UInt8] {
        let input = Array("TG-N2HE-LINEAGE".utf8) + [0] + Array(uniqueID.utf8)
        return Array(try Digest.hash(.sha256, input).prefix(16))
    }
}

/// One key of a label, as rotation sees it.
struct KeyGeneration {
    let handle: CK_OBJECT_HANDLE
    let id: [UInt8]
    let uniqueID: String?
    let keyType: CK_KEY_TYPE?
    let canEncrypt: Bool
    let canDecrypt: Bool
    var generation: UInt32 = 1

    var state: String { canEncrypt ? "active" : canDecrypt ? "decrypt-only" : "disabled" }

    static func read(_ session: PKCS11Session, _ handle: CK_OBJECT_HANDLE) throws -> KeyGeneration {
        func attr(_ type: CK_ULONG) throws -> AttributeValue { try session.attribute(CK_ATTRIBUTE_TYPE(type), of: handle) }
        return KeyGeneration(handle: handle, id: try attr(CK_ULONG(CKA_ID)).bytes ?? [],
                             uniqueID: try session.attribute(PKCS11Constants.attributeUniqueID, of: handle).string,
                             keyType: try attr(CK_ULONG(CKA_KEY_TYPE)).ulong,
                             canEncrypt: try attr(CK_ULONG(CKA_ENCRYPT)).bool ?? false,
                             canDecrypt: try attr(CK_ULONG(CKA_DECRYPT)).bool ?? false)
    }
}

/// Every key labelled `label`, ordered by generation.
struct KeyLineage {
    let label: String
    /// nil: a single key that was never rotated.
    let lineage: [UInt8]?
    let generations: [KeyGeneration]

    /// The generation new data is encrypted with: the highest one still allowed to encrypt. (A rotation
    /// interrupted between its two steps leaves two of them; the newer wins.)
    var active: KeyGeneration? { generations.last(where: { $0.canEncrypt }) }
    var newest: KeyGeneration? { generations.last }

    func generation(_ n: UInt32, token: String) throws -> KeyGeneration {
        guard let g = generations.first(where: { $0.generation == n }) else {
            let known = generations.map { String($0.generation) }.joined(separator: ", ")
            throw CLIError("key '\(label)' has no generation \(n) on token '\(token)' (generations: \(known))")
        }
        return g
    }

    /// Groups `keys` (all labelled `label`) into one lineage, or explains why they do not form one.
    static func classify(label: String, token: String, keys: [KeyGeneration]) throws -> KeyLineage {
        var rotated: [KeyGeneration] = []
        var others: [KeyGeneration] = []
        var lineages: [[UInt8]] = []
        for var k in keys {
            if let (l, g) = RotationID.parse(k.id) {
                k.generation = g
                rotated.append(k)
                if !lineages.contains(l) { lineages.append(l) }
            } else {
                others.append(k)
            }
        }
        if lineages.isEmpty {
            guard others.count == 1 else {
                let ids = others.map { Hex.encode($0.id) }.sorted().map { $0.isEmpty ? "<none>" : $0 }.joined(separator: ", ")
                throw CLIError("\(others.count) secret keys are labelled '\(label)' on token '\(token)' (ids: \(ids)); add --key-id HEX")
            }
            return KeyLineage(label: label, lineage: nil, generations: others)
        }
        guard lineages.count == 1, let lineage = lineages.first else {
            throw CLIError("the keys labelled '\(label)' belong to \(lineages.count) different rotation lineages; add --key-id HEX")
        }
        var all = rotated
        for k in others {
            // The root (generation 1) is the key whose unique id the lineage was derived from.
            guard let uid = k.uniqueID, try RotationID.lineage(ofRoot: uid) == lineage else {
                throw CLIError("key '\(label)' with id \(k.id.isEmpty ? "<none>" : Hex.encode(k.id)) is not a generation of "
                    + "the rotated key labelled '\(label)'; add --key-id HEX")
            }
            all.append(k)
        }
        all.sort { $0.generation < $1.generation }
        for (a, b) in zip(all, all.dropFirst()) where a.generation == b.generation {
            throw CLIError("two keys labelled '\(label)' claim generation \(a.generation); add --key-id HEX")
        }
        return KeyLineage(label: label, lineage: lineage, generations: all)
    }

    static func load(_ context: TokenContext, label: String) throws -> KeyLineage {
        let handles = try context.session.findObjects([
            .ulong(CK_ATTRIBUTE_TYPE(CKA_CLASS), CK_ULONG(CKO_SECRET_KEY)),
            .string(CK_ATTRIBUTE_TYPE(CKA_LABEL), label),
        ], limit: 4096)
        guard !handles.isEmpty else {
            throw CLIError("no secret key labelled '\(label)' on token '\(context.token.label)'; see `tg-pkcs11 key list`")
        }
        return try classify(label: label, token: context.token.label, keys: handles.map { try KeyGeneration.read(context.session, $0) })
    }
}

extension PKCS11Session {
    /// C_SetAttributeValue.
    func setAttributes(_ template: [TemplateAttribute], of object: CK_OBJECT_HANDLE) throws {
        let set = try entry("C_SetAttributeValue", module.fn.C_SetAttributeValue)
        try withTemplate(template) { attributes, count in
            try check("C_SetAttributeValue", set(handle, object, attributes, count))
        }
    }
}
