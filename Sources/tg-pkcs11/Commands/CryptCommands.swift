// tg-pkcs11 encrypt | decrypt
import ArgumentParser
import CP11Kit
import N2HE

enum CiphertextFormatOption: String, ExpressibleByArgument, CaseIterable {
    case lwe1, lwe2

    var mechanism: CK_MECHANISM_TYPE {
        switch self {
        case .lwe1: return CK_MECHANISM_TYPE(CKM_TG_N2HE_LWE1)
        case .lwe2: return CK_MECHANISM_TYPE(CKM_TG_N2HE_LWE2)
        }
    }
}

struct KeySelectionOptions: ParsableArguments {
    @Option(name: [.customLong("key"), .customLong("label")], help: ArgumentHelp("Label of the key (--label is the same option).", valueName: "label"))
    var key: String

    @Option(name: .customLong("key-id"), help: ArgumentHelp("CKA_ID (hex) to pick among keys sharing a label.", valueName: "hex"))
    var keyID: String?

    @Option(name: .long, help: ArgumentHelp(
        "Generation of a rotated key (`key rotate`, `key list`).",
        discussion: "Default: the active generation (the newest one that may encrypt).", valueName: "n"))
    var generation: UInt32?

    func validate() throws {
        guard !key.isEmpty else { throw ValidationError("--key must not be empty") }
        _ = try parseIDOption(keyID, option: "--key-id")
        if keyID != nil, generation != nil { throw ValidationError("give --key-id or --generation, not both") }
        if let generation, generation < 1 { throw ValidationError("--generation starts at 1") }
    }

    enum Purpose { case encrypt, decrypt, other }

    /// The key meant by --key/--label, --key-id and --generation. Without --key-id, keys sharing the label must
    /// be generations of one rotated key (KeyLineage.swift): --generation picks one; otherwise encryption and
    /// decryption take the active generation (decryption falls back to the newest one), and any other command
    /// needs --generation when there are several.
    func handle(in context: TokenContext, for purpose: Purpose) throws -> CK_OBJECT_HANDLE {
        if let id = try parseIDOption(keyID, option: "--key-id") { return try context.findKey(label: key, id: id) }
        let lineage = try KeyLineage.load(context, label: key)
        if let generation { return try lineage.generation(generation, token: context.token.label).handle }
        if purpose == .other, lineage.generations.count > 1 {
            throw CLIError("key '\(key)' has \(lineage.generations.count) generations ("
                + lineage.generations.map { "\($0.generation): \($0.state)" }.joined(separator: ", ") + "); add --generation N")
        }
        if let active = lineage.active { return active.handle }
        guard purpose != .encrypt else {
            throw CLIError("no generation of key '\(key)' may encrypt (all are decrypt-only); rotate it with "
                + "`tg-pkcs11 key rotate --label \(key)`")
        }
        guard let newest = lineage.newest else { throw CLIError("no secret key labelled '\(key)'") }
        return newest.handle
    }

    /// Finds the key and checks it is an N2HE key; returns its handle and dimension n (when readable).
    func resolve(in context: TokenContext, for purpose: Purpose) throws -> (CK_OBJECT_HANDLE, n: Int?) {
        let handle = try self.handle(in: context, for: purpose)
        let type = try context.session.attribute(CK_ATTRIBUTE_TYPE(CKA_KEY_TYPE), of: handle).ulong
        guard type == CK_KEY_TYPE(CKK_TG_N2HE) else {
            throw CLIError("key '\(key)' has key type \(type.map(Names.keyType) ?? "?"), not N2HE")
        }
        let n = try context.session.attribute(CK_ATTRIBUTE_TYPE(CKA_TG_N2HE_DIMENSION), of: handle).ulong
        return (handle, n.map { Int($0) })
    }
}

struct Encrypt: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encrypt",
        abstract: "Encrypt a vector of integers under an N2HE key (C_Encrypt) into an SDK ciphertext file.",
        discussion: """
            Values are int64, reduced mod t by the module as the SDK does. The output file is exactly what \
            C_Encrypt returns — the SDK's LWE1 (TensorGuard, full matrix A) or LWE2 (TensorGuardFlow, seeded A, \
            much smaller) format — and is read by the SDK's deserialisers. Written atomically, mode 0600.
            """)

    @OptionGroup var moduleOptions: ModuleOptions
    @OptionGroup var tokenOptions: TokenOptions
    @OptionGroup var pinOptions: PINOptions
    @OptionGroup var keyOptions: KeySelectionOptions

    @Option(name: .long, help: ArgumentHelp("Ciphertext format.", valueName: "lwe1|lwe2"))
    var format: CiphertextFormatOption
    @Option(name: .long, help: ArgumentHelp("The values as a JSON array of integers, e.g. '[1,2,3]'.", valueName: "json"))
    var values: String?
    @Option(name: .long, help: ArgumentHelp("The values as a file of raw little-endian int64.", valueName: "path"))
    var input: String?
    @Option(name: .long, help: ArgumentHelp("Ciphertext file to write.", valueName: "path"))
    var output: String

    func validate() throws {
        guard (values == nil) != (input == nil) else {
            throw ValidationError("give exactly one of --values JSON or --input FILE")
        }
        guard !output.isEmpty else { throw ValidationError("--output must not be empty") }
    }

    func run() throws {
        let messages: [Int64]
        if let values {
            messages = try Plaintext.parseValues(values)
        } else if let input {
            messages = try Plaintext.decode(try Files.read(input, what: "plaintext file"), path: input)
        } else {
            throw ValidationError("give exactly one of --values JSON or --input FILE")
        }
        guard messages.count <= Int(UInt32.max) else { throw CLIError("too many values (\(messages.count))") }

        let context = try TokenContext.open(moduleOptions, tokenOptions, pinOptions, readWrite: false)
        let (key, _) = try keyOptions.resolve(in: context, for: .encrypt)
        let ciphertext = try context.session.encrypt(mechanism: format.mechanism, key: key,
                                                     input: Plaintext.encode(messages))
        try Files.write(ciphertext, to: output, what: "ciphertext file")
        print("Wrote \(format.rawValue.uppercased()) ciphertext of \(messages.count) value\(messages.count == 1 ? "" : "s") "
            + "(\(ciphertext.count) bytes) to '\(output)'.")
    }
}

struct Decrypt: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decrypt",
        abstract: "Decrypt a ciphertext file (LWE1, LWE2 or a seeded sum LWS1) under an N2HE key (C_Decrypt).",
        discussion: """
            The format is taken from the file's magic. The result is k integers in [0, t): printed as a JSON \
            array, or written to --output as raw little-endian int64 (mode 0600). Under a key with the default \
            decryption rule (seeded-once) only LWE2 and seeded sums decrypt, each seed once; LWE1 needs a key \
            imported with --decrypt-rule raw (docs/n2he.md).
            """)

    @OptionGroup var moduleOptions: ModuleOptions
    @OptionGroup var tokenOptions: TokenOptions
    @OptionGroup var pinOptions: PINOptions
    @OptionGroup var keyOptions: KeySelectionOptions

    @Option(name: .long, help: ArgumentHelp("Ciphertext file (as the SDK or `tg-pkcs11 encrypt` wrote it).", valueName: "path"))
    var input: String
    @Option(name: .long, help: ArgumentHelp("Write the plaintext as raw little-endian int64 here instead of printing JSON.", valueName: "path"))
    var output: String?

    func run() throws {
        let ciphertext = try Files.read(input, what: "ciphertext file")
        let info = try Ciphertext.inspect(ciphertext, path: input, keyDimension: nil)

        let context = try TokenContext.open(moduleOptions, tokenOptions, pinOptions, readWrite: false)
        let (key, n) = try keyOptions.resolve(in: context, for: .decrypt)
        if let n { _ = try Ciphertext.inspect(ciphertext, path: input, keyDimension: n) }
        // The mechanism names the layout: LWE1, or LWE2 for LWE2 and seeded sums.
        let mechanism = info.layout == .lwe1 ? CK_MECHANISM_TYPE(CKM_TG_N2HE_LWE1) : CK_MECHANISM_TYPE(CKM_TG_N2HE_LWE2)
        let plaintext: [UInt8]
        do {
            plaintext = try context.session.decrypt(mechanism: mechanism, key: key, input: ciphertext)
        } catch let e as PKCS11Error where e.rv == CK_RV(CKR_ENCRYPTED_DATA_INVALID) {
            throw CLIError("C_Decrypt refused '\(input)' (CKR_ENCRYPTED_DATA_INVALID): "
                + (info.layout == .lwe1
                    ? "LWE1 (the TensorGuard SDK's format) decrypts only under a key imported with --decrypt-rule raw"
                    : "malformed, or a seed this key has already decrypted (keys with the seeded-once rule decrypt each seed once)")
                + "; see docs/n2he.md")
        }
        guard plaintext.count == info.plaintextByteCount else {
            throw ModuleError.unexpected("C_Decrypt returned \(plaintext.count) bytes for \(info.count) values")
        }
        if let output {
            try Files.write(plaintext, to: output, what: "plaintext file")
            print("Wrote \(info.count) value\(info.count == 1 ? "" : "s") to '\(output)'.")
        } else {
            print(Plaintext.json(try Plaintext.decode(plaintext, path: "C_Decrypt output")))
        }
    }
}

struct Add: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Add ciphertexts homomorphically (no key, no module): what an aggregator does.",
        discussion: """
            Sums two or more ciphertexts of the same k and n. When every input is seeded (LWE2 or a seeded sum) the \
            result is a seeded sum (LWS1: the inputs' seeds and the summed B), which a key with the default \
            decryption rule (seeded-once) decrypts once; otherwise it is LWE1, as the SDK writes sums. The modulus \
            is not in the ciphertext header: give the key's --modulus-bits (32 by default). docs/n2he.md has the \
            formats and how many ciphertexts a seeded sum may hold.
            """)

    @Option(name: .long, parsing: .singleValue, help: ArgumentHelp("A ciphertext file (give at least two).", valueName: "path"))
    var input: [String] = []
    @Option(name: .long, help: ArgumentHelp("Where to write the sum (mode 0600).", valueName: "path"))
    var output: String
    @Option(name: .long, help: ArgumentHelp("log2 q of the key the ciphertexts are under: 32 or 48.", valueName: "bits"))
    var modulusBits: Int = 32

    func validate() throws {
        guard input.count >= 2 else { throw ValidationError("give at least two --input files") }
        guard N2HEParameters.supportedModulusBits.contains(modulusBits) else { throw ValidationError("--modulus-bits must be 32 or 48") }
    }

    func run() throws {
        var sum = try Files.read(input[0], what: "ciphertext file")
        let first = try Ciphertext.inspect(sum, path: input[0], keyDimension: nil)
        let parameters: N2HEParameters
        do { parameters = try N2HEParameters(n: first.dimension, modulusBits: modulusBits, plaintextBits: 16) } catch {
            throw CLIError("ciphertext file '\(input[0])': unsupported dimension n = \(first.dimension)")
        }
        for path in input.dropFirst() {
            let next = try Files.read(path, what: "ciphertext file")
            _ = try Ciphertext.inspect(next, path: path, keyDimension: first.dimension)
            do { sum = try N2HEHomomorphic.add(sum, next, parameters: parameters) } catch let e as N2HEError {
                throw CLIError("cannot add '\(path)': " + (e == .incompatibleCiphertexts ? "a different number of values (k)" : Ciphertext.describe(e)))
            }
        }
        try Files.write(sum, to: output, what: "sum file")
        let layout = try Ciphertext.inspect(sum, path: output, keyDimension: nil).layout
        print("Wrote the sum of \(input.count) ciphertexts to '\(output)' (\(layout == .seededSum ? "seeded sum LWS1" : "LWE1"), \(sum.count) bytes).")
    }
}
