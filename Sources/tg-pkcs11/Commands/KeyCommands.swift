// tg-pkcs11 key generate | import | list (rotate: KeyRotateCommand.swift; delete: below)
import CryptoCore
import ArgumentParser
import CP11Kit
import N2HE
import Foundation

struct KeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key",
        abstract: "Generate, import, list, rotate and delete N2HE secret keys.",
        subcommands: [KeyGenerate.self, KeyImport.self, KeyList.self, KeyRotate.self, KeyDelete.self])
}

/// Options every key-creating command shares.
struct NewKeyOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("CKA_LABEL of the new key (must not be in use on the token).", valueName: "label"))
    var label: String

    @Option(name: .long, help: ArgumentHelp("CKA_ID of the new key, in hex.", valueName: "hex"))
    var id: String?

    @Flag(name: .long, help: "Allow wrapping the key out (CKA_EXTRACTABLE). It stays sensitive: its value is never readable in clear.")
    var extractable = false

    @Flag(name: .long, help: "Create a session object that disappears when tg-pkcs11 exits (for trials), not a token object.")
    var session = false

    @Option(name: .long, help: ArgumentHelp(
        "How C_Decrypt treats the key (CKA_TG_N2HE_DECRYPT_RULE): seeded-once (default: LWE2 and seeded sums only, each seed once) or raw (the SDK's LWE1 too — any PIN holder can then recover the key; see docs/n2he.md).",
        valueName: "rule"))
    var decryptRule: DecryptRule = .seededOnce

    func validate() throws {
        guard !label.isEmpty else { throw ValidationError("--label must not be empty") }
        _ = try parseIDOption(id, option: "--id")
    }

    /// Standard attributes of a new N2HE key: private, sensitive, encrypt/decrypt only.
    func commonTemplate() throws -> [TemplateAttribute] {
        var template = n2heKeyTemplate(label: label, token: !session, private: true, sensitive: true,
                                       extractable: extractable, decryptRule: decryptRule)
        if let id = try parseIDOption(id, option: "--id") {
            template.append(.bytes(CK_ATTRIBUTE_TYPE(CKA_ID), id))
        }
        return template
    }
}

/// CKA_TG_N2HE_DECRYPT_RULE values by their names in options and listings.
enum DecryptRule: String, ExpressibleByArgument, CaseIterable, Codable {
    case seededOnce = "seeded-once"
    case raw

    var value: CK_ULONG { self == .raw ? CK_ULONG(CKV_TG_N2HE_RAW) : CK_ULONG(CKV_TG_N2HE_SEEDED_ONCE) }
    init?(value: CK_ULONG) {
        switch value {
        case CK_ULONG(CKV_TG_N2HE_SEEDED_ONCE): self = .seededOnce
        case CK_ULONG(CKV_TG_N2HE_RAW): self = .raw
        default: return nil
        }
    }
}

/// The class, key type, storage and usage attributes of a new N2HE key (`key generate`, `import`, `rotate`).
func n2heKeyTemplate(label: String, token: Bool, private isPrivate: Bool, sensitive: Bool,
                     extractable: Bool, decryptRule: DecryptRule) -> [TemplateAttribute] {
    [
        .ulong(CK_ATTRIBUTE_TYPE(CKA_TG_N2HE_DECRYPT_RULE), decryptRule.value),
        .ulong(CK_ATTRIBUTE_TYPE(CKA_CLASS), CK_ULONG(CKO_SECRET_KEY)),
        .ulong(CK_ATTRIBUTE_TYPE(CKA_KEY_TYPE), CK_ULONG(CKK_TG_N2HE)),
        .bool(CK_ATTRIBUTE_TYPE(CKA_TOKEN), token),
        .bool(CK_ATTRIBUTE_TYPE(CKA_PRIVATE), isPrivate),
        .bool(CK_ATTRIBUTE_TYPE(CKA_SENSITIVE), sensitive),
        .bool(CK_ATTRIBUTE_TYPE(CKA_EXTRACTABLE), extractable),
        .bool(CK_ATTRIBUTE_TYPE(CKA_ENCRYPT), true),
        .bool(CK_ATTRIBUTE_TYPE(CKA_DECRYPT), true),
        // Least privilege: an N2HE key encrypts and decrypts, nothing else.
        .bool(CK_ATTRIBUTE_TYPE(CKA_SIGN), false),
        .bool(CK_ATTRIBUTE_TYPE(CKA_VERIFY), false),
        .bool(CK_ATTRIBUTE_TYPE(CKA_WRAP), false),
        .bool(CK_ATTRIBUTE_TYPE(CKA_UNWRAP), false),
        .bool(CK_ATTRIBUTE_TYPE(CKA_DERIVE), false),
        .string(CK_ATTRIBUTE_TYPE(CKA_LABEL), label),
    ]
}

func n2heTemplate(_ p: N2HEParameters) -> [TemplateAttribute] {
    [
        .ulong(CK_ATTRIBUTE_TYPE(CKA_TG_N2HE_DIMENSION), CK_ULONG(p.n)),
        .ulong(CK_ATTRIBUTE_TYPE(CKA_TG_N2HE_MODULUS_BITS), CK_ULONG(p.modulusBits)),
        .ulong(CK_ATTRIBUTE_TYPE(CKA_TG_N2HE_PLAINTEXT_BITS), CK_ULONG(p.plaintextBits)),
        .ulong(CK_ATTRIBUTE_TYPE(CKA_TG_N2HE_NOISE_MILLI), CK_ULONG(p.noiseMilli)),
    ]
}

/// Validates a parameter set with the N2HE library, with a message naming the options.
func checkedParameters(n: Int, modulusBits: Int, plaintextBits: Int, noiseMilli: Int) throws -> N2HEParameters {
    do {
        return try N2HEParameters(n: n, modulusBits: modulusBits, plaintextBits: plaintextBits, noiseMilli: noiseMilli)
    } catch N2HEError.unsupportedParameters(let defect) {
        switch defect {
        case .dimensionOutOfRange(let v):
            throw ValidationError("dimension \(v) is outside \(N2HEParameters.dimensionRange.lowerBound)…\(N2HEParameters.dimensionRange.upperBound)")
        case .unsupportedModulusBits(let v):
            throw ValidationError("--modulus-bits \(v) is not supported; use 32 or 48")
        case .plaintextBitsOutOfRange(let v):
            throw ValidationError("--plaintext-bits \(v) must be at least 1 and below the modulus bits (\(modulusBits))")
        case .noiseOutOfRange(let v):
            throw ValidationError("--noise-milli \(v) is outside \(N2HEParameters.noiseMilliRange.lowerBound)…\(N2HEParameters.noiseMilliRange.upperBound)")
        default:
            throw ValidationError("unsupported N2HE parameters (\(defect))")
        }
    }
}

struct KeyGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate a fresh N2HE secret key on the token (C_GenerateKey, CKM_TG_N2HE_KEY_GEN).",
        discussion: """
            The key is drawn inside the module from its CSPRNG and never leaves it in clear. It is a private, \
            sensitive token object unless --session is given; --extractable only allows wrapping it under \
            another key. Prints the new key's label, id, unique id, parameters and the module's security estimate.

            Defaults (n = 1024, q = 2^32, t = 2^16, mu = 5.12) follow DESIGN §2; the SDK's own noise is \
            --noise-milli 500. Note q = 2^48 with the same n is weaker, not stronger.
            """)

    @OptionGroup var moduleOptions: ModuleOptions
    @OptionGroup var tokenOptions: TokenOptions
    @OptionGroup var pinOptions: PINOptions
    @OptionGroup var key: NewKeyOptions

    @Option(name: .long, help: ArgumentHelp("Lattice dimension n (key length).", valueName: "n"))
    var dimension = N2HEParameters.default.n
    @Option(name: .long, help: ArgumentHelp("log2 q: 32 or 48.", valueName: "bits"))
    var modulusBits = N2HEParameters.default.modulusBits
    @Option(name: .long, help: ArgumentHelp("log2 t (plaintext modulus).", valueName: "bits"))
    var plaintextBits = N2HEParameters.default.plaintextBits
    @Option(name: .long, help: ArgumentHelp("Skellam noise mu × 1000 used by C_Encrypt.", valueName: "milli"))
    var noiseMilli = N2HEParameters.default.noiseMilli
    @Flag(name: .long, help: "Print the new key as JSON.")
    var json = false

    func validate() throws {
        _ = try checkedParameters(n: dimension, modulusBits: modulusBits, plaintextBits: plaintextBits, noiseMilli: noiseMilli)
    }

    func run() throws {
        let params = try checkedParameters(n: dimension, modulusBits: modulusBits, plaintextBits: plaintextBits,
                                           noiseMilli: noiseMilli)
        let context = try TokenContext.open(moduleOptions, tokenOptions, pinOptions, readWrite: true)
        if try context.keyLabelExists(key.label) {
            throw CLIError("a secret key labelled '\(key.label)' already exists on token '\(context.token.label)'; choose another --label")
        }
        let handle = try context.session.generateKey(mechanism: CK_MECHANISM_TYPE(CKM_TG_N2HE_KEY_GEN),
                                                     key.commonTemplate() + n2heTemplate(params))
        let summary = try KeySummary.read(context.session, handle)
        if json {
            print(try jsonString(summary))
        } else {
            print("Generated N2HE key on token '\(context.token.label)':")
            print(summary.text)
        }
    }
}

struct KeyImport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import an SDK key file as an N2HE secret key (C_CreateObject).",
        discussion: """
            --file is TensorGuard's numpy .npy (np.save of int64, shape (n,)) or TensorGuardFlow's raw form \
            (exactly 8·n bytes of little-endian int64). Every entry must be -1, 0 or 1. n comes from the file; \
            q and t from --meta (TensorGuardFlow's <name>.meta.json, {"params": {"n", "q", "t", "mu"}}; q must be \
            2^32 or 2^48, t a power of two) or from --modulus-bits/--plaintext-bits (defaults \(N2HEParameters.default.modulusBits) and \(N2HEParameters.default.plaintextBits)). The \
            meta file's mu is the SDK's encryption noise and is not copied: the key encrypts with --noise-milli \
            (default \(N2HEParameters.default.noiseMilli)) — decryption of the SDK's ciphertexts does not depend on it.

            The key bytes are read into memory that is zeroised after the call and are never printed. The \
            imported key is private and sensitive, and a token object unless --session is given. Delete the key \
            file afterwards if the token is to be its only home.
            """)

    @OptionGroup var moduleOptions: ModuleOptions
    @OptionGroup var tokenOptions: TokenOptions
    @OptionGroup var pinOptions: PINOptions
    @OptionGroup var key: NewKeyOptions

    @Option(name: .long, help: ArgumentHelp("Key file: .npy or raw .bin (8·n bytes).", valueName: "path"))
    var file: String
    @Option(name: .long, help: ArgumentHelp("TensorGuardFlow metadata (.meta.json) giving n, q and t.", valueName: "path"))
    var meta: String?
    @Option(name: .long, help: ArgumentHelp("log2 q: 32 or 48 (default 32, or from --meta).", valueName: "bits"))
    var modulusBits: Int?
    @Option(name: .long, help: ArgumentHelp("log2 t (default 16, or from --meta).", valueName: "bits"))
    var plaintextBits: Int?
    @Option(name: .long, help: ArgumentHelp("Skellam noise mu × 1000 for C_Encrypt with this key.", valueName: "milli"))
    var noiseMilli = N2HEParameters.default.noiseMilli
    @Flag(name: .long, help: "Print the imported key as JSON.")
    var json = false

    func run() throws {
        // Everything about the files is checked before the module is even loaded.
        var modulus = modulusBits, plaintext = plaintextBits
        var metaN: Int?
        if let meta {
            let m = try KeyMetadata.load(path: meta)
            if let given = modulusBits, given != m.modulusBits {
                throw CLIError("--modulus-bits \(given) contradicts '\(meta)' (q = 2^\(m.modulusBits))")
            }
            if let given = plaintextBits, given != m.plaintextBits {
                throw CLIError("--plaintext-bits \(given) contradicts '\(meta)' (t = 2^\(m.plaintextBits))")
            }
            modulus = m.modulusBits
            plaintext = m.plaintextBits
            metaN = m.n
        }
        let (raw, n) = try KeyFile.load(path: file)
        if let metaN, metaN != n {
            throw CLIError("key file '\(file)' holds n = \(n) entries but '\(meta ?? "")' says n = \(metaN)")
        }
        let params = try checkedParameters(n: n, modulusBits: modulus ?? 32, plaintextBits: plaintext ?? 16,
                                           noiseMilli: noiseMilli)

        let context = try TokenContext.open(moduleOptions, tokenOptions, pinOptions, readWrite: true)
        if try context.keyLabelExists(key.label) {
            throw CLIError("a secret key labelled '\(key.label)' already exists on token '\(context.token.label)'; choose another --label")
        }
        let template = try key.commonTemplate() + n2heTemplate(params) + [
            .secret(CK_ATTRIBUTE_TYPE(CKA_VALUE), raw),
        ]
        let handle = try context.session.createObject(template)
        let summary = try KeySummary.read(context.session, handle)
        if json {
            print(try jsonString(summary))
        } else {
            print("Imported N2HE key from '\(file)' on token '\(context.token.label)':")
            print(summary.text)
        }
    }
}

struct KeyList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the secret keys of a token: N2HE keys with their parameters, and any other secret keys.",
        discussion: """
            Logs in as the user (private keys are only visible then). Key values are never read. For each key: \
            rotation generation and state (active: may encrypt; decrypt-only: a rotated predecessor), age \
            (CKA_TG_CREATED), counted uses (CKA_TG_USE_COUNT) and a reminder when the token's policy in the \
            module configuration (rotation_reminder_days, max_key_age_days, max_key_uses) says a rotation is due.
            """)

    @OptionGroup var moduleOptions: ModuleOptions
    @OptionGroup var tokenOptions: TokenOptions
    @OptionGroup var pinOptions: PINOptions
    @Flag(name: .long, help: "Print a JSON array.")
    var json = false

    func run() throws {
        let context = try TokenContext.open(moduleOptions, tokenOptions, pinOptions, readWrite: false)
        let handles = try context.session.findObjects([
            .ulong(CK_ATTRIBUTE_TYPE(CKA_CLASS), CK_ULONG(CKO_SECRET_KEY)),
        ])
        var summaries = try handles.map { try KeySummary.read(context.session, $0) }
        try addGenerations(&summaries, handles: handles, context: context)
        let policy = RotationPolicy.load(context)
        for i in summaries.indices { summaries[i].reminder = policy?.reminder(for: summaries[i]) }
        let keys = summaries.sorted { ($0.label, $0.generation ?? 0, $0.id) < ($1.label, $1.generation ?? 0, $1.id) }
        if json {
            print(try jsonString(keys))
            return
        }
        if keys.isEmpty {
            print("No secret keys on token '\(context.token.label)'.")
            return
        }
        var rows = [["LABEL", "GEN", "STATE", "ID", "UNIQUE ID", "TYPE", "PARAMETERS", "SECURITY", "DECRYPT", "AGE", "USES", "REMINDER"]]
        for k in keys {
            rows.append([k.label, k.generation.map(String.init) ?? "-", k.state ?? "-", k.id.isEmpty ? "-" : k.id,
                         k.uniqueID ?? "-", k.keyType,
                         k.n2he?.text ?? (k.valueLength.map { "\($0 * 8)-bit" } ?? "-"),
                         k.n2he?.securityBits.map { "~\($0) bits" } ?? "-",
                         k.n2he?.decryptRule?.rawValue ?? "-",
                         k.ageDays.map { "\($0)d" } ?? "-", k.useCount.map(String.init) ?? "-", k.reminder ?? "-"])
        }
        print(table(rows))
        let raw = keys.filter { $0.n2he?.decryptRule == .raw }.map(\.label)
        if !raw.isEmpty {
            FileHandle.standardError.write(Data(("warning: decryption rule raw on \(raw.joined(separator: ", ")): any user-PIN holder can "
                + "recover such a key through C_Decrypt (docs/n2he.md)\n").utf8))
        }
    }

    /// Rotation generation and lineage of every N2HE key (KeyLineage.swift); labels whose keys do not form one
    /// lineage get none.
    private func addGenerations(_ summaries: inout [KeySummary], handles: [CK_OBJECT_HANDLE], context: TokenContext) throws {
        var byLabel: [String: [Int]] = [:]
        for (i, s) in summaries.enumerated() where s.n2he != nil { byLabel[s.label, default: []].append(i) }
        for (label, indices) in byLabel {
            let keys = try indices.map { try KeyGeneration.read(context.session, handles[$0]) }
            guard let lineage = try? KeyLineage.classify(label: label, token: context.token.label, keys: keys) else { continue }
            for g in lineage.generations {
                guard let i = indices.first(where: { handles[$0] == g.handle }) else { continue }
                summaries[i].generation = g.generation
                summaries[i].lineage = lineage.lineage.map { Hex.encode($0) }
            }
        }
    }
}

struct KeyDelete: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete",
        abstract: "Delete a secret key from the token (C_DestroyObject).",
        discussion: """
            Every ciphertext made under the key becomes undecryptable unless a copy of the key exists elsewhere, so \
            the command refuses to run without --yes.
            """)

    @OptionGroup var moduleOptions: ModuleOptions
    @OptionGroup var tokenOptions: TokenOptions
    @OptionGroup var pinOptions: PINOptions
    @OptionGroup var keyOptions: KeySelectionOptions
    @Flag(name: .long, help: "Confirm the deletion.")
    var yes = false

    func validate() throws {
        guard yes else {
            throw ValidationError("deleting a key cannot be undone; add --yes to confirm")
        }
    }

    func run() throws {
        let context = try TokenContext.open(moduleOptions, tokenOptions, pinOptions, readWrite: true)
        let handle = try keyOptions.handle(in: context, for: .other)
        let summary = try KeySummary.read(context.session, handle)
        try context.session.destroyObject(handle)
        print("Deleted \(summary.keyType) key '\(summary.label)'"
            + (summary.uniqueID.map { " (unique id \($0))" } ?? "") + " from token '\(context.token.label)'.")
    }
}

/// Left-aligned columns separated by two spaces.
func table(_ rows: [[String]]) -> String {
    guard let first = rows.first else { return "" }
    var widths = first.map { $0.count }
    for row in rows {
        for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
    }
    return rows.map { row in
        row.enumerated().map { i, cell in
            i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
    }.joined(separator: "\n")
}
