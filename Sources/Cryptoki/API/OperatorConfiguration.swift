// Read-only access to the module configuration for the operator CLI (`tg-pkcs11 backend check|create-kek`,
// `tg-pkcs11 rotate-kek`): the same discovery and schema as C_Initialize (Config/Configuration.swift), and the
// token store opened exactly as Token.init opens it (indexed attribute types, KDF cost).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KeyWrap
import CP11Kit
import TokenStore

/// One token of the configuration, as the module would use it.
public struct OperatorTokenConfiguration: Sendable, Equatable {
    /// `tokens[].name` (the slot description).
    public let name: String
    /// Absolute path of the token's store directory.
    public let store: String
    /// The `backend:` section (kind + options; secret-bearing options name env vars / files, never values).
    public let backend: BackendConfiguration
    /// scrypt log2(N) for PIN envelopes written by this token (`pin_kdf_cost`).
    public let pinKDFCost: Int
    /// The directory of the token's anchor (`anchor_dir`).
    public let anchorDirectory: String
    /// `policy.allow_mixed_key_roles` (legacy applications; `doctor` warns).
    public var allowsMixedKeyRoles: Bool = false
    /// The `--config` path the configuration was loaded with (nil: discovered), for the audit log.
    public var configPath: String? = nil

    /// Labels of the token's N2HE keys whose decryption rule is `raw`, read from the store's public attributes
    /// (no login needed: the rule and the label are public).
    public func rawDecryptionKeyLabels() throws -> [String] {
        try labels { $0[UInt(CK.attrN2HEDecryptRule)].flatMap(Encoding.decodeULong) == N2HEDecryptRule.raw.rawValue }
    }

    /// Labels of the keys the SO marked CKA_TRUSTED (they may wrap other keys out of the token).
    public func trustedKeyLabels() throws -> [String] {
        try labels { $0[UInt(CKA_TRUSTED)].flatMap(Encoding.decodeBool) == true }
    }

    private func labels(where matches: ([UInt: [UInt8]]) -> Bool) throws -> [String] {
        try openVault().database.allObjects().compactMap { o in
            guard matches(o.publicAttributes) else { return nil }
            return o.publicAttributes[UInt(CKA_LABEL)].map { String(decoding: $0, as: UTF8.self) } ?? "(no label)"
        }
    }

    /// Opens the token's store the way the module does (give the configured `backend` when the command writes the
    /// store, so an anchor the backend keeps is updated too). Refuses (without creating anything) when the store
    /// directory or its database does not exist yet.
    public func openVault(backend: (any KeyWrapBackend)? = nil) throws -> TokenVault {
        let file = store.hasSuffix("/") ? store + TokenDatabase.fileName : store + "/" + TokenDatabase.fileName
        guard access(file, F_OK) == 0 else {
            throw OperatorConfigurationError("token '\(name)': no token database at \(file) (initialise the token first)")
        }
        let database = try TokenDatabase.open(store: store, anchorDirectory: anchorDirectory, backend: backend)
        var vault = try TokenVault(database: database, kdfLog2N: pinKDFCost)
        // A PIN given to the CLI counts against the token like one given to the module, so it is audited like one:
        // a wrong one with its attempt number, a right one that reset the count with the number it cleared
        // (docs/audit.md §Failed PIN attempts). The audit log is opened only then (most openings never need it).
        let token = name, configPath = configPath
        vault.pinCheckObserver = { check in
            guard let log = try? OperatorAudit.log(configPath: configPath) else { return }
            switch check {
            case .wrong(let role, let failed, let remaining):
                try? OperatorAudit.record(log, event: "login", success: false, token: token, role: role == .so ? "so" : "user",
                                          reason: "wrong PIN given to tg-pkcs11", details: [:], keys: nil,
                                          error: StoreError.pinIncorrect(remaining: remaining),
                                          extra: ["failed_attempts": .int(Int64(failed))])
            case .clearedFailures(let role, let cleared, let keys):
                try? OperatorAudit.record(log, event: "login", success: true, token: token, role: role == .so ? "so" : "user",
                                          reason: "PIN given to tg-pkcs11", details: [:], keys: keys,
                                          extra: ["prior_failed_attempts": .int(Int64(cleared))])
            }
        }
        return vault
    }

    /// Full path of the token's database file (`<store>/token.sqlite`).
    public var databasePath: String {
        store.hasSuffix("/") ? store + TokenDatabase.fileName : store + "/" + TokenDatabase.fileName
    }

    /// Opens (creating if missing) a token database in `directory` with this token's settings: restore checks a
    /// decrypted backup in a private directory before it replaces the store. No anchor: the copy is checked on
    /// its own (after the replacement, `restore` records the restored generation in the anchor).
    public func openVault(directory: String) throws -> TokenVault {
        let database = try TokenDatabase.open(store: directory, anchorDirectory: nil, backend: nil)
        return try TokenVault(database: database, kdfLog2N: pinKDFCost)
    }
}

/// Which discovery rule (docs/config.md) picks the configuration file, without loading it (`tg-pkcs11 doctor`).
public struct OperatorConfigurationDiscovery: Sendable, Equatable {
    /// The file, or nil for the built-in default.
    public let path: String?
    /// "--config", "$TENSORGUARD_PKCS11_CONF", "$XDG_CONFIG_HOME", "~/.config", "/etc" or "built-in default".
    public let rule: String

    public static func discover(explicitPath: String?) -> OperatorConfigurationDiscovery {
        if let p = explicitPath, !p.isEmpty { return .init(path: p, rule: "--config") }
        if let p = Environment.get("TENSORGUARD_PKCS11_CONF") { return .init(path: p, rule: "$TENSORGUARD_PKCS11_CONF") }
        if let xdg = Environment.get("XDG_CONFIG_HOME"), xdg.hasPrefix("/") {
            let c = xdg + "/tensorguard-pkcs11/config.yaml"
            if access(c, F_OK) == 0 { return .init(path: c, rule: "$XDG_CONFIG_HOME") }
        } else if let home = Environment.home() {
            let c = home + "/.config/tensorguard-pkcs11/config.yaml"
            if access(c, F_OK) == 0 { return .init(path: c, rule: "~/.config") }
        }
        let etc = "/etc/tensorguard-pkcs11/config.yaml"
        if access(etc, F_OK) == 0 { return .init(path: etc, rule: "/etc") }
        return .init(path: nil, rule: "built-in default")
    }
}

/// The module configuration as discovered by C_Initialize (DESIGN §6).
public struct OperatorConfiguration: Sendable, Equatable {
    /// The file it came from, or "built-in default".
    public let source: String
    public let tokens: [OperatorTokenConfiguration]

    /// Discovery: `explicitPath`, else TENSORGUARD_PKCS11_CONF, $XDG_CONFIG_HOME/tensorguard-pkcs11/config.yaml
    /// (or ~/.config/...), /etc/tensorguard-pkcs11/config.yaml, else the built-in default. Same checks as the
    /// module (group/world-writable file refused, strict schema). Errors are `OperatorConfigurationError`.
    public static func load(explicitPath: String?) throws -> OperatorConfiguration {
        let config: Configuration
        do {
            config = try ConfigurationLoader.load(explicitPath: explicitPath)
        } catch let e as ConfigurationError {
            throw OperatorConfigurationError(e.message)
        }
        return OperatorConfiguration(source: config.source, tokens: config.tokens.map {
            OperatorTokenConfiguration(name: $0.name, store: $0.store, backend: $0.backend, pinKDFCost: $0.pinKDFCost,
                                       anchorDirectory: $0.anchorDirectory,
                                       allowsMixedKeyRoles: $0.policy.allowMixedKeyRoles, configPath: explicitPath)
        })
    }

    /// The token named `name`; without a name, the only token. Errors list the configured names.
    public func token(named name: String?) throws -> OperatorTokenConfiguration {
        let names = tokens.map { "'\($0.name)'" }.joined(separator: ", ")
        if let name {
            guard let t = tokens.first(where: { $0.name == name }) else {
                throw OperatorConfigurationError("no token named '\(name)' in \(source); tokens: \(names)")
            }
            return t
        }
        guard tokens.count == 1, let only = tokens.first else {
            throw OperatorConfigurationError("\(source) configures \(tokens.count) tokens (\(names)); choose one with --token NAME")
        }
        return only
    }
}

public struct OperatorConfigurationError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
