// tg-pkcs11 token list | init (through PKCS#11) | show | delete (the configured token's store, like `backup`)
import ArgumentParser
import CP11Kit
import Cryptoki
import Foundation
import KeyWrap
import TokenStore
#if canImport(Glibc)
import Glibc
#endif

struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "List, show, initialise and delete tokens.",
        subcommands: [TokenList.self, TokenShow.self, TokenInit.self, TokenDelete.self, TokenAcceptRollback.self])
}

struct TokenListing: Codable {
    struct Token: Codable {
        let label: String
        let manufacturer: String
        let model: String
        let serial: String
        let flags: [String]
        let initialized: Bool
        let userPINInitialized: Bool
        let minPINLength: UInt
        let maxPINLength: UInt
        let mechanisms: [String]?
    }
    let slot: UInt
    let description: String
    let manufacturer: String
    let flags: [String]
    let token: Token?
    /// Set when the token's information could not be read (the other slots are still listed).
    let error: String?
}

struct TokenList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the module's slots and their tokens (labels, serials, flags). Needs no PIN.")

    @OptionGroup var moduleOptions: ModuleOptions
    @Flag(name: .long, help: "Also list each token's mechanisms.")
    var mechanisms = false
    @Flag(name: .long, help: "Print a JSON array.")
    var json = false

    func run() throws {
        let module = try moduleOptions.load()
        var listing: [TokenListing] = []
        for slot in try module.slotList(tokenPresent: false) {
            let info = try module.slotInfo(slot)
            var token: TokenListing.Token?
            var failure: String?
            if info.tokenPresent {
                do {
                    let t = try module.tokenInfo(slot)
                    let mechs = mechanisms ? try module.mechanismList(slot).map(Names.mechanism) : nil
                    token = .init(label: t.label, manufacturer: t.manufacturer, model: t.model, serial: t.serial,
                                  flags: Names.flags(t.flags, Names.tokenFlags), initialized: t.initialized,
                                  userPINInitialized: t.userPINInitialized, minPINLength: t.minPINLength,
                                  maxPINLength: t.maxPINLength, mechanisms: mechs)
                } catch let error as PKCS11Error {
                    failure = error.description
                }
            }
            listing.append(TokenListing(slot: slot, description: info.description, manufacturer: info.manufacturer,
                                        flags: Names.flags(info.flags, Names.slotFlags), token: token, error: failure))
        }
        if json {
            print(try jsonString(listing))
            try failIfUnreadable(listing)
            return
        }
        let moduleInfo = try module.info()
        print("Module: \(moduleInfo.library) (\(moduleInfo.manufacturer)), Cryptoki "
            + "\(moduleInfo.cryptokiVersion.major).\(moduleInfo.cryptokiVersion.minor), \(module.path)")
        if listing.isEmpty {
            print("No slots.")
            return
        }
        for entry in listing {
            print("Slot \(entry.slot): \(entry.description)")
            if let error = entry.error {
                print("  token unreadable: \(error)")
                continue
            }
            guard let t = entry.token else {
                print("  no token")
                continue
            }
            print("  token label:  \(t.label.isEmpty ? "(none)" : t.label)")
            print("  manufacturer: \(t.manufacturer)")
            print("  model:        \(t.model)")
            print("  serial:       \(t.serial)")
            print("  flags:        \(t.flags.joined(separator: ", "))")
            if let m = t.mechanisms { print("  mechanisms:   \(m.joined(separator: ", "))") }
        }
        try failIfUnreadable(listing)
    }

    /// Everything readable has been listed; a script still learns (exit status 1) that a token was not.
    private func failIfUnreadable(_ listing: [TokenListing]) throws {
        let unreadable = listing.filter { $0.error != nil }.map { String($0.slot) }
        if !unreadable.isEmpty {
            throw CLIError("could not read the token in slot\(unreadable.count == 1 ? "" : "s") "
                + unreadable.joined(separator: ", "))
        }
    }
}

struct TokenInit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Initialise a token (C_InitToken) and set its user PIN (C_Login as SO, C_InitPIN).",
        discussion: """
            Destroys every object on the token. The SO PIN comes from --so-pin-env, --so-pin-file or \
            $TG_PKCS11_SO_PIN, else a prompt; the new user PIN from --pin-env, --pin-file or $TG_PKCS11_PIN, \
            else a prompt. PINs are never accepted as argument values: command lines are visible to every \
            local user and land in shell history.
            """)

    @OptionGroup var moduleOptions: ModuleOptions
    @Option(name: .long, help: ArgumentHelp("Slot ID of the token to initialise (see `token list`).", valueName: "id"))
    var slot: UInt
    @Option(name: .long, help: ArgumentHelp("New token label (at most 32 bytes).", valueName: "label"))
    var label: String
    @Option(name: .customLong("so-pin-env"), help: ArgumentHelp("Read the SO PIN from this environment variable.", valueName: "var"))
    var soPINEnv: String?
    @Option(name: .customLong("so-pin-file"), help: ArgumentHelp("Read the SO PIN from the first line of this file.", valueName: "path"))
    var soPINFile: String?
    @OptionGroup var pinOptions: PINOptions
    @Flag(name: .long, help: "Print a JSON object.")
    var json = false

    struct Result: Codable {
        let slot: UInt
        let label: String
        let serial: String
        let flags: [String]
    }

    func validate() throws {
        guard !label.isEmpty else { throw ValidationError("--label must not be empty") }
        guard label.utf8.count <= 32 else { throw ValidationError("--label is \(label.utf8.count) bytes; a token label has at most 32") }
    }

    func run() throws {
        let soSource = try PINSource.resolve(envOption: soPINEnv, fileOption: soPINFile,
                                             defaultEnvironment: "TG_PKCS11_SO_PIN",
                                             prompt: "SO PIN for slot \(slot): ",
                                             optionNames: ("--so-pin-env", "--so-pin-file"))
        let userSource = try pinOptions.source(tokenLabel: label)
        let module = try moduleOptions.load()
        let slotID = CK_SLOT_ID(slot)
        guard try module.slotList(tokenPresent: true).contains(slotID) else {
            throw CLIError("no token in slot \(slot); see `tg-pkcs11 token list`")
        }
        let soPIN = try soSource.read()
        let userPIN = try userSource.read()
        try module.initToken(slotID, soPIN: soPIN, label: label)
        let session = try module.openSession(slotID, readWrite: true)
        try session.login(userType: CK_USER_TYPE(CKU_SO), pin: soPIN)
        try session.initPIN(userPIN)
        try session.logout()
        session.close()
        let token = try module.tokenInfo(slotID)
        if json {
            print(try jsonString(Result(slot: slot, label: token.label, serial: token.serial,
                                        flags: Names.flags(token.flags, Names.tokenFlags))))
            return
        }
        print("Initialised token '\(token.label)' in slot \(slot) (serial \(token.serial)); user PIN set.")
    }
}
