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
    @Option(name: .long, help: ArgumentHelp("Label of the key.", valueName: "label"))
    var key: String

    @Option(name: .customLong("key-id"), help: ArgumentHelp("CKA_ID (hex) to pick among keys sharing a label.", valueName: "hex"))
    var keyID: String?

    func validate() throws {
        guard !key.isEmpty else { throw ValidationError("--key must not be empty") }
        _ = try parseIDOption(keyID, option: "--key-id")
    }

    /// Finds the key and checks it is an N2HE key; returns its handle and dimension n (when readable).
    func resolve(in context: TokenContext) throws -> (CK_OBJECT_HANDLE, n: Int?) {
        let handle = try context.findKey(label: key, id: parseIDOption(keyID, option: "--key-id"))
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
        let (key, _) = try keyOptions.resolve(in: context)
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
        abstract: "Decrypt an SDK ciphertext file (LWE1 or LWE2, batch or scalar) under an N2HE key (C_Decrypt).",
        discussion: """
            The format is taken from the file's magic. The result is k integers in [0, t): printed as a JSON \
            array, or written to --output as raw little-endian int64 (mode 0600).
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
        let (key, n) = try keyOptions.resolve(in: context)
        if let n { _ = try Ciphertext.inspect(ciphertext, path: input, keyDimension: n) }
        let mechanism = info.format == .lwe1 ? CK_MECHANISM_TYPE(CKM_TG_N2HE_LWE1) : CK_MECHANISM_TYPE(CKM_TG_N2HE_LWE2)
        let plaintext = try context.session.decrypt(mechanism: mechanism, key: key, input: ciphertext)
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
