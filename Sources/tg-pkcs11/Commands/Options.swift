// Option groups shared by the commands, and the steps every command takes: load the module, pick the
// token, open a session, log in, find a key.
import CryptoCore
import ArgumentParser
import CP11Kit
#if canImport(Glibc)
import Glibc
#endif

struct ModuleOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "PKCS#11 module to load.",
        discussion: "Default: $TG_PKCS11_MODULE, else libtensorguard-pkcs11.so next to the tg-pkcs11 executable "
            + "(build tree), else ../lib/pkcs11/libtensorguard-pkcs11.so from it (`make install` layout).",
        valueName: "path"))
    var module: String?

    /// The path to dlopen.
    func resolvedPath() -> String {
        if let module, !module.isEmpty { return module }
        if let env = getenv("TG_PKCS11_MODULE"), env.pointee != 0 { return String(cString: env) }
        let directory = executableDirectory()
        let besideExecutable = directory + "/libtensorguard-pkcs11.so"
        let installed = directory + "/../lib/pkcs11/libtensorguard-pkcs11.so"
        if access(besideExecutable, F_OK) != 0, access(installed, F_OK) == 0 { return installed }
        return besideExecutable
    }

    func load() throws -> PKCS11Module {
        try PKCS11Module(path: resolvedPath())
    }
}

/// The directory of the running executable (/proc/self/exe), falling back to argv[0].
func executableDirectory() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    let path: String
    if n > 0 {
        path = String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    } else {
        path = CommandLine.arguments.first ?? "."
    }
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}

struct TokenOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Label of the token to use.",
        discussion: "Default: the only initialised token of the module.", valueName: "label"))
    var token: String?

    @Option(name: .long, help: ArgumentHelp("Slot ID of the token (with or instead of --token).", valueName: "id"))
    var slot: UInt?

    /// Finds the token's slot: by --slot and/or --token label, else the only initialised token.
    func select(in module: PKCS11Module) throws -> (CK_SLOT_ID, TokenDescription) {
        let slots = try module.slotList(tokenPresent: true)
        var candidates: [(CK_SLOT_ID, TokenDescription)] = []
        for slot in slots {
            candidates.append((slot, try module.tokenInfo(slot)))
        }
        if let wanted = slot {
            guard let match = candidates.first(where: { $0.0 == CK_SLOT_ID(wanted) }) else {
                throw CLIError("no token in slot \(wanted); slots with a token: "
                    + (slots.isEmpty ? "none" : slots.map(String.init).joined(separator: ", ")))
            }
            if let label = token, match.1.label != label {
                throw CLIError("the token in slot \(wanted) is labelled '\(match.1.label)', not '\(label)'")
            }
            return match
        }
        if let label = token {
            let matches = candidates.filter { $0.1.label == label }
            if matches.isEmpty {
                let known = candidates.map { "'\($0.1.label)'" }.joined(separator: ", ")
                throw CLIError("no token labelled '\(label)'; tokens: \(known.isEmpty ? "none" : known)")
            }
            guard matches.count == 1 else {
                throw CLIError("\(matches.count) tokens are labelled '\(label)' (slots "
                    + matches.map { String($0.0) }.joined(separator: ", ") + "); add --slot ID")
            }
            return matches[0]
        }
        let initialised = candidates.filter { $0.1.initialized }
        guard initialised.count == 1 else {
            if initialised.isEmpty { throw CLIError("the module has no initialised token; see `tg-pkcs11 token list`") }
            throw CLIError("the module has \(initialised.count) initialised tokens ("
                + initialised.map { "'\($0.1.label)'" }.joined(separator: ", ") + "); choose one with --token LABEL")
        }
        return initialised[0]
    }
}

struct PINOptions: ParsableArguments {
    @Option(name: .customLong("pin-env"), help: ArgumentHelp(
        "Read the user PIN from this environment variable.",
        discussion: "Default: $TG_PKCS11_PIN, else a prompt without echo. There is deliberately no option taking "
            + "the PIN itself: command lines are visible to all local users and kept in shell history.",
        valueName: "var"))
    var pinEnv: String?

    @Option(name: .customLong("pin-file"), help: ArgumentHelp(
        "Read the user PIN from the first line of this file (keep it chmod 600).", valueName: "path"))
    var pinFile: String?

    static let defaultEnvironment = "TG_PKCS11_PIN"

    func source(tokenLabel: String) throws -> PINSource {
        try PINSource.resolve(envOption: pinEnv, fileOption: pinFile, defaultEnvironment: Self.defaultEnvironment,
                              prompt: "User PIN for token '\(tokenLabel)': ",
                              optionNames: ("--pin-env", "--pin-file"))
    }
}

/// An open, logged-in session on the selected token.
struct TokenContext {
    let module: PKCS11Module
    let session: PKCS11Session
    let slot: CK_SLOT_ID
    let token: TokenDescription

    /// Loads the module, selects the token, reads the PIN (only after the token is known, so a bad
    /// --token fails before any prompt), opens a session and logs in as the user.
    static func open(_ moduleOptions: ModuleOptions, _ tokenOptions: TokenOptions, _ pinOptions: PINOptions,
                     readWrite: Bool) throws -> TokenContext {
        let module = try moduleOptions.load()
        let (slot, token) = try tokenOptions.select(in: module)
        let source = try pinOptions.source(tokenLabel: token.label)
        let session = try module.openSession(slot, readWrite: readWrite)
        let pin = try source.read()
        try session.login(userType: CK_USER_TYPE(CKU_USER), pin: pin)
        return TokenContext(module: module, session: session, slot: slot, token: token)
    }

    /// The secret key labelled `label` (and with CKA_ID `id`, if given); errors for none or several.
    func findKey(label: String, id: [UInt8]?) throws -> CK_OBJECT_HANDLE {
        var template: [TemplateAttribute] = [
            .ulong(CK_ATTRIBUTE_TYPE(CKA_CLASS), CK_ULONG(CKO_SECRET_KEY)),
            .string(CK_ATTRIBUTE_TYPE(CKA_LABEL), label),
        ]
        if let id { template.append(.bytes(CK_ATTRIBUTE_TYPE(CKA_ID), id)) }
        let found = try session.findObjects(template, limit: 64)
        guard !found.isEmpty else {
            let idPart = id.map { " with id \(Hex.encode($0))" } ?? ""
            throw CLIError("no secret key labelled '\(label)'\(idPart) on token '\(token.label)'; see `tg-pkcs11 key list`")
        }
        guard found.count == 1 else {
            let ids = try found.map { try session.attribute(CK_ATTRIBUTE_TYPE(CKA_ID), of: $0).bytes.map { Hex.encode($0) } ?? "?" }.sorted()
            throw CLIError("\(found.count) secret keys are labelled '\(label)' on token '\(token.label)' (ids: "
                + ids.map { $0.isEmpty ? "<none>" : $0 }.joined(separator: ", ") + "); add --key-id HEX")
        }
        return found[0]
    }

    /// Whether any secret key already carries `label`.
    func keyLabelExists(_ label: String) throws -> Bool {
        try !session.findObjects([
            .ulong(CK_ATTRIBUTE_TYPE(CKA_CLASS), CK_ULONG(CKO_SECRET_KEY)),
            .string(CK_ATTRIBUTE_TYPE(CKA_LABEL), label),
        ], limit: 1).isEmpty
    }
}

/// Parses --id / --key-id values.
func parseIDOption(_ text: String?, option: String) throws -> [UInt8]? {
    guard let text else { return nil }
    guard let bytes = Hex.decode(text, operatorInput: true), !bytes.isEmpty else {
        throw ValidationError("\(option) must be a non-empty even number of hex digits, e.g. 01a2")
    }
    return bytes
}
