// tg-pkcs11 backend check | create-kek, tg-pkcs11 rotate-kek.
//
// Unlike the other commands these do not go through the module's C API: the key-wrapping backend sits *behind*
// the module, so they read the module's configuration (same discovery and schema, Cryptoki's loader), build
// the token's backend with KeyWrap's BackendFactory and, for rotate-kek, open the token's store the way the
// module does (TokenStore). No PIN, key byte or credential is ever printed.
import ArgumentParser
import Audit
import CryptoCore
import Cryptoki
import Foundation
import KeyWrap
import TokenStore

// PINs read by the CLI go straight to TokenVault (no copy into an array).
extension SecretBuffer: ByteView {}

struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The module's configuration file.",
        discussion: "Default: the module's own discovery — $TENSORGUARD_PKCS11_CONF, "
            + "$XDG_CONFIG_HOME/tensorguard-pkcs11/config.yaml, /etc/tensorguard-pkcs11/config.yaml, built-in default.",
        valueName: "path"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp(
        "Name of the token in the configuration (tokens[].name).",
        discussion: "Default: the only configured token.", valueName: "name"))
    var token: String?

    func load() throws -> (OperatorConfiguration, OperatorTokenConfiguration) {
        do {
            let configuration = try OperatorConfiguration.load(explicitPath: config)
            return (configuration, try configuration.token(named: token))
        } catch let e as OperatorConfigurationError {
            throw CLIError(e.description)
        }
    }
}

/// Builds the token's backend; configuration errors name the token and the cause.
func makeBackend(_ token: OperatorTokenConfiguration) throws -> any KeyWrapBackend {
    do {
        return try BackendFactory.make(token.backend)
    } catch let e as KeyWrapError {
        throw CLIError("token '\(token.name)': \(e)")
    }
}

struct BackendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backend",
        abstract: "Check a token's key-wrapping backend; create a KEK on an HSM backend.",
        subcommands: [BackendCheck.self, BackendCreateKEK.self])
}

struct BackendHealth: Codable {
    struct Check: Codable {
        let name: String
        let passed: Bool
        let detail: String
    }
    let token: String
    let config: String
    let backend: BackendDescriptorReport
    let healthy: Bool
    let checks: [Check]
    let error: String?
}

struct BackendCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check the token's key-wrapping backend: reachable, credentials accepted, KEK usable, wrap round trip.",
        discussion: """
            Reads the module's configuration and builds the token's backend as the module would. pkcs11: module \
            loads, token found, backend PIN accepted, KEK found, sensitive and non-extractable, allowed to wrap, \
            mechanism offered, wrap/unwrap of a random test key. aws-kms: credentials source, Encrypt and Decrypt. \
            gcp-kms, azure-keyvault: a wrap/unwrap round trip. Exit status 0 when healthy, 1 otherwise.
            """)

    @OptionGroup var configOptions: ConfigOptions
    @Flag(name: .long, help: "Print a JSON object.")
    var json = false

    func run() throws {
        let (configuration, token) = try configOptions.load()
        let backend = try makeBackend(token)
        let d = backend.descriptor
        var checks: [BackendHealth.Check] = []
        var failure: KeyWrapError?
        var text: String
        if let hsm = backend as? PKCS11Backend {
            let report = hsm.healthReport()
            checks = report.checks.map { .init(name: $0.name, passed: $0.passed, detail: $0.detail) }
            failure = report.error ?? (report.isHealthy ? nil : .misconfigured("a check failed"))
            text = report.description
        } else if let kms = backend as? AWSKMSBackend {
            let report = kms.healthReport()
            checks = report.checks.map { .init(name: $0.name, passed: $0.passed, detail: $0.detail) }
            failure = report.error ?? (report.isHealthy ? nil : .misconfigured("a check failed"))
            text = report.description
        } else {
            let start = DispatchTime.now().uptimeNanoseconds
            do {
                try backend.checkHealth()
            } catch let e as KeyWrapError {
                failure = e
            } catch {
                failure = .unreachable("\(error)")
            }
            let ms = (DispatchTime.now().uptimeNanoseconds - start) / 1_000_000
            let what = d.kind == LocalBackend.kind
                ? "nothing to reach: the root key is protected by the PINs only"
                : "wrapped and unwrapped a random test key"
            checks = [.init(name: "round-trip", passed: failure == nil,
                            detail: failure.map { "\($0)" } ?? "\(what) (\(ms) ms)")]
            text = "\(d.kind) backend: key \(d.keyID.isEmpty ? "(none)" : d.keyID)"
                + (d.keyVersion.isEmpty ? "" : ", version \(d.keyVersion)") + "\n"
                + checks.map { "  [\($0.passed ? "ok" : "FAIL")] \($0.name): \($0.detail)" }.joined(separator: "\n") + "\n"
                + (failure == nil ? "  healthy" : "  NOT healthy: \(failure.map { "\($0)" } ?? "")")
        }
        if json {
            print(try jsonString(BackendHealth(
                token: token.name, config: configuration.source,
                backend: BackendDescriptorReport(d),
                healthy: failure == nil, checks: checks, error: failure.map { "\($0)" })))
        } else {
            print("Token '\(token.name)' (config \(configuration.source), store \(token.store))")
            print(text)
        }
        if let failure {
            let cause = checks.first(where: { !$0.passed }).map { "\($0.name) check failed: " } ?? ""
            throw CLIError("backend of token '\(token.name)' is not healthy: \(cause)\(failure)")
        }
    }
}

struct BackendCreateKEK: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create-kek",
        abstract: "Create an AES-256 KEK (sensitive, non-extractable) on the token's pkcs11 backend.",
        discussion: """
            pkcs11 backends only (SoftHSM2, Luna, nShield): generates the key on the backend token named by the \
            configuration, logged in with the configured backend PIN (pin_env / pin_file). A key with the same \
            label or id is refused. For aws-kms, gcp-kms and azure-keyvault create the key in the cloud KMS \
            and name it in the configuration.
            """)

    @OptionGroup var configOptions: ConfigOptions
    @Option(name: .long, help: ArgumentHelp("CKA_LABEL of the new KEK (1...255 bytes).", valueName: "label"))
    var label: String
    @Option(name: .long, help: ArgumentHelp("CKA_ID of the new KEK, in hex.", valueName: "hex"))
    var id: String?

    func validate() throws {
        guard !label.isEmpty, label.utf8.count <= 255 else { throw ValidationError("--label must be 1...255 bytes") }
        _ = try parseIDOption(id, option: "--id")
    }

    func run() throws {
        let (_, token) = try configOptions.load()
        let idBytes = try parseIDOption(id, option: "--id")
        let backend = try makeBackend(token)
        guard let hsm = backend as? PKCS11Backend else {
            throw CLIError("token '\(token.name)' uses the \(backend.descriptor.kind) backend: create-kek only works "
                + "on a pkcs11 backend; create the key in your cloud KMS and name it in the configuration")
        }
        let ref: PKCS11KEKReference
        do {
            ref = try hsm.createKEK(label: label, id: idBytes)
        } catch let e as KeyWrapError {
            throw CLIError("create-kek on backend token \(hsm.configuration.token): \(e)")
        }
        print("Created KEK \(ref)\(idBytes.map { " (CKA_ID \(Hex.encode($0)))" } ?? "") on backend token "
            + "\(hsm.configuration.token): AES-256, CKA_SENSITIVE, not extractable, wrap/unwrap only.")
        print("Use it in the configuration of new tokens (kek_label: \(label)), or move token '\(token.name)' onto it:")
        print("  tg-pkcs11 rotate-kek --token \(token.name) --new-kek label:\(label)")
    }
}

struct RotateKEK: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate-kek",
        abstract: "Re-wrap the token's root key under a new KEK (one backend wrap; objects untouched).",
        discussion: """
            Logs in to the token's store as SO (the module's SO PIN: --so-pin-env, --so-pin-file, \
            $TG_PKCS11_SO_PIN or a prompt), unwraps the root key with the configured backend, wraps it under \
            the new KEK of the same backend and records it, then checks that the new blob unwraps. The number \
            of backend calls does not depend on the number of objects. --new-kek: pkcs11 label:L, id:HEX or a bare \
            label on the same backend token; aws-kms a key id, alias or ARN in the same region; gcp-kms a \
            CryptoKey (or CryptoKeyVersion) resource name; azure-keyvault NAME or NAME/VERSION in the same vault. \
            Afterwards update the configuration on every host (the command says which key).
            """)

    @OptionGroup var configOptions: ConfigOptions
    @Option(name: .customLong("new-kek"), help: ArgumentHelp("The KEK to wrap under from now on (see above).", valueName: "ref"))
    var newKEK: String
    @Option(name: .customLong("so-pin-env"), help: ArgumentHelp("Read the SO PIN from this environment variable.", valueName: "var"))
    var soPINEnv: String?
    @Option(name: .customLong("so-pin-file"), help: ArgumentHelp("Read the SO PIN from the first line of this file.", valueName: "path"))
    var soPINFile: String?

    func validate() throws {
        guard !newKEK.isEmpty else { throw ValidationError("--new-kek must not be empty") }
    }

    /// The backend for `ref`, and the configuration lines that select it.
    static func target(_ backend: any KeyWrapBackend, ref: String) throws -> (any KeyWrapBackend, String) {
        do {
            switch backend {
            case let hsm as PKCS11Backend:
                let kek = try PKCS11KEKReference(parsing: ref)
                let line: String
                switch kek {
                case .label(let l): line = "kek_label: \(l)"
                case .id: line = "kek_id: \(kek.description.replacingOccurrences(of: "kek-id=", with: ""))"
                }
                return (hsm.withKEK(kek), line)
            case let aws as AWSKMSBackend:
                return (try aws.withKeyID(ref), "key_id: \(ref)")
            case let gcp as GCPKMSBackend:
                return (try gcp.withKey(ref), "key: \(ref)")
            case let azure as AzureKeyVaultBackend:
                let parts = ref.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
                guard (1...2).contains(parts.count), parts.allSatisfy({ !$0.isEmpty }) else {
                    throw CLIError("--new-kek for azure-keyvault is NAME or NAME/VERSION, not '\(ref)'")
                }
                let version = parts.count == 2 ? parts[1] : nil
                return (azure.withKey(name: parts[0], version: version),
                        "key_name: \(parts[0])" + (version.map { ", key_version: \($0)" } ?? " (and no key_version)"))
            default:
                throw CLIError("the \(backend.descriptor.kind) backend has no KEK to rotate; to move the token onto "
                    + "another backend kind, re-initialise it")
            }
        } catch let e as KeyWrapError {
            throw CLIError("--new-kek '\(ref)': \(e)")
        }
    }

    func run() throws {
        let (configuration, token) = try configOptions.load()
        let current = try makeBackend(token)
        let (next, configLine) = try Self.target(current, ref: newKEK)
        let vault: TokenVault
        do {
            vault = try token.openVault(backend: current)
        } catch let e as OperatorConfigurationError {
            throw CLIError(e.description)
        } catch let e as StoreError {
            throw CLIError("token '\(token.name)': cannot open the store \(token.store): \(e)")
        }
        let before = try storeCall(token) { try vault.database.tokenRecord() }
        guard before.isInitialized else { throw CLIError("token '\(token.name)' is not initialised") }
        let source = try PINSource.resolve(envOption: soPINEnv, fileOption: soPINFile,
                                           defaultEnvironment: "TG_PKCS11_SO_PIN",
                                           prompt: "SO PIN for token '\(token.name)': ",
                                           optionNames: ("--so-pin-env", "--so-pin-file"))
        let pin = try source.read()
        // The audit log the module writes (docs/audit.md): the rotation is recorded before it is reported.
        let auditLog: AuditLog?
        do { auditLog = try OperatorAudit.log(configPath: configOptions.config) } catch {
            throw CLIError("audit log: \(error)")
        }
        let auditDetails = ["old_kek": current.descriptor.keyID, "new_kek": newKEK, "backend": current.descriptor.kind]
        let keys: SessionKeys
        do {
            keys = try vault.login(role: .so, pin: pin, backend: current)
        } catch {
            if let auditLog {
                try? OperatorAudit.record(auditLog, event: "kek_rotation", success: false, token: token.name, role: "so",
                                          reason: "SO login: \(error)", details: auditDetails, keys: nil, error: error)
            }
            try storeCall(token, during: "SO login with the configured backend") { () -> Void in throw error }
            throw error
        }
        do {
            try storeCall(token, during: "re-wrap under \(next.descriptor)") {
                try vault.rewrapRootKey(using: keys, backend: next)
            }
        } catch {
            if let auditLog {
                try? OperatorAudit.record(auditLog, event: "kek_rotation", success: false, token: token.name, role: "so",
                                          reason: "\(error)", details: auditDetails, keys: keys, error: error)
            }
            throw error
        }
        if let auditLog {
            do {
                try OperatorAudit.record(auditLog, event: "kek_rotation", success: true, token: token.name, role: "so",
                                         reason: nil, details: auditDetails, keys: keys)
            } catch {
                throw CLIError("token '\(token.name)': root key re-wrapped, but the audit record could not be written: \(error)")
            }
        }
        // The new blob must open: log in once more through the new backend (one more unwrap).
        _ = try storeCall(token, during: "check of the new wrapped root key") {
            try vault.login(role: .so, pin: pin, backend: next)
        }
        let recorded = try storeCall(token) { try vault.database.tokenRecord() }.backend
        let old = before.backend
        print("Token '\(token.name)': root key re-wrapped and verified (objects untouched).")
        if let old { print("  before: kind \(old.kind), key id \(old.keyID), key version \(old.keyVersion)") }
        if let recorded {
            print("  now:    kind \(recorded.kind), key id \(recorded.keyID), key version \(recorded.keyVersion)")
        }
        print("Update the backend section of token '\(token.name)' in \(configuration.source) on every host: \(configLine)")
        let loginKey = current.descriptor.keyID
        if let recorded, recorded.keyID == loginKey {
            print("  Until then logins keep working: the module checks the recorded kind and key id (\(loginKey)), "
                + "unchanged, and each wrapped blob names the key that unwraps it; but anything that wraps anew on "
                + "a host with the old configuration (C_InitToken) would use the old key again.")
        } else {
            print("  Hosts still configured with the old key can no longer log in to this token: the module refuses "
                + "a configured key id (\(loginKey)) that differs from the recorded one (\(recorded?.keyID ?? "?")).")
        }
        print("  Keep the old key until no other token uses it; this token no longer needs it.")
    }

    private func storeCall<R>(_ token: OperatorTokenConfiguration, during what: String = "reading the store",
                              _ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch let e as StoreError {
            throw CLIError("token '\(token.name)': " + (e.pinFailure(role: "SO PIN") ?? "\(what) failed: \(e)"))
        } catch let e as KeyWrapError {
            throw CLIError("token '\(token.name)': \(what) failed: \(e)")
        }
    }
}
