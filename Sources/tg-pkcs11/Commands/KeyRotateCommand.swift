// tg-pkcs11 key rotate: the successor of an N2HE key, the predecessor kept for decryption (docs/cli.md,
// docs/policies.md "Key rotation").
import CryptoCore
import ArgumentParser
import CP11Kit

struct KeyRotate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate",
        abstract: "Rotate an N2HE key: generate its successor, keep the predecessor for decryption only.",
        discussion: """
            Finds the active generation of the key labelled --label (the highest one with CKA_ENCRYPT), generates \
            generation N+1 on the token with the same N2HE parameters, label and CKA_TOKEN/PRIVATE/SENSITIVE/\
            EXTRACTABLE flags (C_GenerateKey), then sets CKA_ENCRYPT false on the older generations \
            (C_SetAttributeValue): they still decrypt, so no ciphertext is lost. In that order — an interruption \
            between the two steps leaves two generations that can encrypt (the newer one is used), never none.

            The generations are linked by CKA_ID: generation N ≥ 2 has "TGR\\x01" || lineage (16 bytes) || N \
            (4 bytes, big-endian); generation 1 keeps its id and the lineage is derived from its CKA_UNIQUE_ID. \
            `encrypt --key L` uses the active generation, `decrypt --key L --generation N` an older one. The \
            module's audit log records both steps (key generation, attribute change).
            """)

    @OptionGroup var moduleOptions: ModuleOptions
    @OptionGroup var tokenOptions: TokenOptions
    @OptionGroup var pinOptions: PINOptions
    @Option(name: .long, help: ArgumentHelp("CKA_LABEL of the N2HE key to rotate.", valueName: "label"))
    var label: String
    @Flag(name: .long, help: "Print the result as JSON.")
    var json = false

    func validate() throws {
        guard !label.isEmpty else { throw ValidationError("--label must not be empty") }
    }

    struct Generation: Codable {
        let generation: UInt32
        let id: String
        let uniqueID: String?
        let state: String
    }

    struct Result: Codable {
        let label: String
        let lineage: String
        let predecessors: [Generation]
        let successor: Generation
    }

    func run() throws {
        let context = try TokenContext.open(moduleOptions, tokenOptions, pinOptions, readWrite: true)
        let session = context.session
        let lineage = try KeyLineage.load(context, label: label)
        guard let source = lineage.active ?? lineage.newest else {
            throw CLIError("no secret key labelled '\(label)' on token '\(context.token.label)'")
        }
        for g in lineage.generations where g.keyType != CK_KEY_TYPE(CKK_TG_N2HE) {
            throw CLIError("key '\(label)' (generation \(g.generation)) has key type \(g.keyType.map(Names.keyType) ?? "?"); "
                + "`key rotate` rotates N2HE keys")
        }
        let lineageID: [UInt8]
        if let existing = lineage.lineage {
            lineageID = existing
        } else {
            guard let uid = source.uniqueID, !uid.isEmpty else {
                throw CLIError("key '\(label)' has no CKA_UNIQUE_ID to derive its lineage from (is this module PKCS#11 3.0?)")
            }
            lineageID = try RotationID.lineage(ofRoot: uid)
        }
        let newestGeneration = lineage.newest?.generation ?? 1
        guard newestGeneration < UInt32.max else { throw CLIError("key '\(label)' has no generation number left") }
        let next = newestGeneration + 1

        func attr(_ type: CK_ULONG) throws -> AttributeValue { try session.attribute(CK_ATTRIBUTE_TYPE(type), of: source.handle) }
        func required(_ type: CK_ULONG, _ name: String) throws -> CK_ULONG {
            guard let v = try attr(type).ulong else { throw CLIError("cannot read \(name) of key '\(label)'") }
            return v
        }
        func flag(_ type: CK_ULONG, _ name: String) throws -> Bool {
            guard let v = try attr(type).bool else { throw CLIError("cannot read \(name) of key '\(label)'") }
            return v
        }
        let template: [TemplateAttribute] = n2heKeyTemplate(
            label: label, token: try flag(CK_ULONG(CKA_TOKEN), "CKA_TOKEN"),
            private: try flag(CK_ULONG(CKA_PRIVATE), "CKA_PRIVATE"),
            sensitive: try flag(CK_ULONG(CKA_SENSITIVE), "CKA_SENSITIVE"),
            extractable: try flag(CK_ULONG(CKA_EXTRACTABLE), "CKA_EXTRACTABLE"),
            // The successor keeps the predecessor's decryption rule (a key stored before the rule: seeded-once).
            decryptRule: try attr(CK_ULONG(CKA_TG_N2HE_DECRYPT_RULE)).ulong.flatMap(DecryptRule.init(value:)) ?? .seededOnce) + [
            .bytes(CK_ATTRIBUTE_TYPE(CKA_ID), RotationID.make(lineage: lineageID, generation: next)),
            .ulong(CK_ATTRIBUTE_TYPE(CKA_TG_N2HE_DIMENSION), try required(CK_ULONG(CKA_TG_N2HE_DIMENSION), "CKA_TG_N2HE_DIMENSION")),
            .ulong(CK_ATTRIBUTE_TYPE(CKA_TG_N2HE_MODULUS_BITS), try required(CK_ULONG(CKA_TG_N2HE_MODULUS_BITS), "CKA_TG_N2HE_MODULUS_BITS")),
            .ulong(CK_ATTRIBUTE_TYPE(CKA_TG_N2HE_PLAINTEXT_BITS), try required(CK_ULONG(CKA_TG_N2HE_PLAINTEXT_BITS), "CKA_TG_N2HE_PLAINTEXT_BITS")),
            .ulong(CK_ATTRIBUTE_TYPE(CKA_TG_N2HE_NOISE_MILLI), try required(CK_ULONG(CKA_TG_N2HE_NOISE_MILLI), "CKA_TG_N2HE_NOISE_MILLI")),
        ]

        // Step 1: the successor. Until step 2 both generations can encrypt; the newer one is picked.
        let successorHandle = try session.generateKey(mechanism: CK_MECHANISM_TYPE(CKM_TG_N2HE_KEY_GEN), template)
        var successor = try KeyGeneration.read(session, successorHandle)
        successor.generation = next

        // Step 2: every older generation that can still encrypt becomes decrypt-only.
        var predecessors: [Generation] = []
        var failures: [String] = []
        for g in lineage.generations {
            var state = g.state
            if g.canEncrypt {
                do {
                    try session.setAttributes([.bool(CK_ATTRIBUTE_TYPE(CKA_ENCRYPT), false)], of: g.handle)
                    state = g.canDecrypt ? "decrypt-only" : "disabled"
                } catch {
                    failures.append("generation \(g.generation): \(error)")
                }
            }
            predecessors.append(Generation(generation: g.generation, id: Hex.encode(g.id), uniqueID: g.uniqueID, state: state))
        }
        let result = Result(label: label, lineage: Hex.encode(lineageID), predecessors: predecessors,
                            successor: Generation(generation: next, id: Hex.encode(successor.id),
                                                  uniqueID: successor.uniqueID, state: successor.state))
        if json {
            print(try jsonString(result))
        } else {
            print("Rotated N2HE key '\(label)' on token '\(context.token.label)' (lineage \(result.lineage)):")
            for p in predecessors {
                print("  generation \(p.generation): \(p.state) (id \(p.id.isEmpty ? "-" : p.id), unique id \(p.uniqueID ?? "-"))")
            }
            print("  generation \(next): active (id \(result.successor.id), unique id \(result.successor.uniqueID ?? "-"))")
            print("Encrypt with `--key \(label)` (generation \(next)); decrypt older ciphertexts with `--generation N`.")
        }
        if !failures.isEmpty {
            throw CLIError("generation \(next) was created and is used for encryption, but an older generation could not "
                + "be made decrypt-only (\(failures.joined(separator: "; "))); it can still encrypt")
        }
    }
}
