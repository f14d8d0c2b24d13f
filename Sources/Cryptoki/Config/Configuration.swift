// The module configuration (DESIGN §6, reference: docs/config.md). Parsed strictly: an unknown key or a bad
// value is an error at C_Initialize, never silently ignored.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CP11Kit
import CryptoCore
import KeyWrap
import N2HE
import TokenStore

struct TokenConfiguration: Equatable, Sendable {
    var name: String
    var store: String
    var backend: BackendConfiguration
    var maxPINRetries: Int
    var pinKDFCost: Int
    /// Where the token's anchor lives (`anchor_dir`; TokenStore/TokenAnchor.swift): apart from the store, so that
    /// copying an older store back is detected at the next login.
    var anchorDirectory: String
    /// The `policy:` section (Policy/TokenPolicy.swift).
    var policy = TokenPolicy()
    /// N2HE keys whose estimated classical security is below this are refused (0: no policy).
    var minN2HESecurityBits: Int {
        get { policy.minN2HESecurityBits }
        set { policy.minN2HESecurityBits = newValue }
    }
}

struct Configuration: Equatable, Sendable {
    var logLevel: LogLevel = .error
    var logFile: String? = nil
    /// The `audit:` section (Audit/AuditConfiguration.swift).
    var audit = AuditConfiguration()
    /// Threads for one large N2HE C_Encrypt / C_Decrypt (`n2he.threads`; 1 by default).
    var n2heThreads = 1
    var tokens: [TokenConfiguration]
    /// Where it came from ("built-in default" or a path), for the log.
    var source: String

    static let defaultMaxPINRetries = 10
    static let defaultPINKDFCost = 15
    /// `pin_kdf_cost` is the scrypt log2(N) of the PIN envelope; its bounds are the store's.
    static let pinKDFCostRange = TokenVault.minimumKDFLog2N...TokenVault.maximumKDFLog2N
    /// Processors online (`n2he.threads: auto`), at most N2HECipher.maximumThreads.
    static var onlineProcessors: Int {
        max(1, min(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), N2HECipher.maximumThreads))
    }

    /// The zero-config default: one `local` token named "default".
    static func builtIn() throws -> Configuration {
        Configuration(tokens: [try TokenConfiguration.make(name: "default", store: nil, backend: .default,
                                                          maxPINRetries: nil, pinKDFCost: nil)],
                      source: "built-in default")
    }
}

/// A configuration problem. `rv` is what C_Initialize answers (see docs/config.md).
struct ConfigurationError: Error, CustomStringConvertible {
    var rv: CK_RV
    var message: String
    var description: String { message }
}

extension TokenConfiguration {
    static func make(name: String, store: String?, backend: BackendConfiguration, maxPINRetries: Int?,
                     pinKDFCost: Int?, anchorDirectory: String? = nil) throws -> TokenConfiguration {
        TokenConfiguration(name: name, store: try store ?? Self.defaultStore(name: name), backend: backend,
                           maxPINRetries: maxPINRetries ?? Configuration.defaultMaxPINRetries,
                           pinKDFCost: pinKDFCost ?? Configuration.defaultPINKDFCost,
                           anchorDirectory: try anchorDirectory ?? Self.defaultAnchorDirectory(name: name))
    }

    /// $XDG_STATE_HOME/tensorguard-pkcs11/anchors, else ~/.local/state/tensorguard-pkcs11/anchors (one file per
    /// token UUID, so tokens share the directory).
    static func defaultAnchorDirectory(name: String) throws -> String {
        if let xdg = Environment.get("XDG_STATE_HOME"), xdg.hasPrefix("/") {
            return xdg + "/tensorguard-pkcs11/anchors"
        }
        guard let home = Environment.home() else {
            throw ConfigurationError(rv: CKR_GENERAL_ERROR,
                                     message: "token '\(name)': no anchor_dir given and neither XDG_STATE_HOME nor HOME is set")
        }
        return home + "/.local/state/tensorguard-pkcs11/anchors"
    }

    /// $XDG_DATA_HOME/tensorguard-pkcs11/<name>, else ~/.local/share/tensorguard-pkcs11/<name>.
    static func defaultStore(name: String) throws -> String {
        if let xdg = Environment.get("XDG_DATA_HOME"), xdg.hasPrefix("/") {
            return xdg + "/tensorguard-pkcs11/" + name
        }
        guard let home = Environment.home() else {
            throw ConfigurationError(rv: CKR_GENERAL_ERROR,
                                     message: "token '\(name)': no store given and neither XDG_DATA_HOME nor HOME is set")
        }
        return home + "/.local/share/tensorguard-pkcs11/" + name
    }
}

enum Environment {
    static func get(_ name: String) -> String? {
        guard let v = getenv(name) else { return nil }
        let s = String(cString: v)
        return s.isEmpty ? nil : s
    }

    static func home() -> String? {
        if let h = get("HOME") { return h }
        guard let pw = getpwuid(getuid()), let dir = pw.pointee.pw_dir else { return nil }
        let s = String(cString: dir)
        return s.isEmpty ? nil : s
    }
}

enum ConfigurationLoader {
    /// Discovery (DESIGN §6): `explicitPath` (C_Initialize pReserved), TENSORGUARD_PKCS11_CONF,
    /// $XDG_CONFIG_HOME/tensorguard-pkcs11/config.yaml (or ~/.config/...), /etc/tensorguard-pkcs11/config.yaml,
    /// else the built-in default. An explicit path or the environment variable must name a readable file.
    static func load(explicitPath: String?) throws -> Configuration {
        if let p = explicitPath, !p.isEmpty {
            return try loadFile(p, missingRV: CKR_ARGUMENTS_BAD)
        }
        if let p = Environment.get("TENSORGUARD_PKCS11_CONF") {
            return try loadFile(p, missingRV: CKR_GENERAL_ERROR)
        }
        var candidates: [String] = []
        if let xdg = Environment.get("XDG_CONFIG_HOME"), xdg.hasPrefix("/") {
            candidates.append(xdg + "/tensorguard-pkcs11/config.yaml")
        } else if let home = Environment.home() {
            candidates.append(home + "/.config/tensorguard-pkcs11/config.yaml")
        }
        candidates.append("/etc/tensorguard-pkcs11/config.yaml")
        for c in candidates where access(c, F_OK) == 0 {
            return try loadFile(c, missingRV: CKR_GENERAL_ERROR)
        }
        return try Configuration.builtIn()
    }

    static func loadFile(_ path: String, missingRV: CK_RV) throws -> Configuration {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw ConfigurationError(rv: missingRV, message: "config file \(path): cannot stat (errno \(errno))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw ConfigurationError(rv: missingRV, message: "config file \(path): not a regular file")
        }
        // Whoever can write the file (or replace it through a directory above it) decides the backends and stores:
        // the ownership rule of every trusted file (KeyWrap/Support/TrustedFile.swift), symlinks resolved first.
        if let problem = TrustedFile.problem(path) {
            throw ConfigurationError(rv: CKR_GENERAL_ERROR, message: "config file \(path): refusing it: \(problem)")
        }
        guard let text = readText(path) else {
            throw ConfigurationError(rv: missingRV, message: "config file \(path): cannot read")
        }
        var config = try parse(text, origin: path)
        config.source = path
        return config
    }

    /// The file's text (a config file is small: 1 MiB at most); nil when it cannot be read.
    static func readText(_ path: String) -> String? {
        guard let bytes = try? BoundedFile.read(path, limit: 1 << 20) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    // MARK: Schema

    static func parse(_ text: String, origin: String) throws -> Configuration {
        func fail(_ m: String) -> ConfigurationError {
            ConfigurationError(rv: CKR_GENERAL_ERROR, message: "config \(origin): \(m)")
        }
        let root: YAMLNode?
        do {
            root = try YAML.compose(text)
        } catch {
            throw fail("YAML syntax error at \(error)")
        }
        guard let root else { return try Configuration.builtIn() }  // empty document
        guard let top = root.mapping else { throw fail("top level must be a mapping") }

        var config = Configuration(tokens: [], source: origin)
        var sawTokens = false
        for (keyNode, value) in top {
            guard let key = keyNode.string else { throw fail("non-string key") }
            switch key {
            case "log":
                guard let m = value.mapping else { throw fail("'log' must be a mapping") }
                for (k, v) in m {
                    switch k.string ?? "" {
                    case "level":
                        guard let s = v.string, let l = LogLevel(name: s) else {
                            throw fail("log.level must be one of off, error, warning, info, debug")
                        }
                        config.logLevel = l
                    case "file":
                        guard let s = v.string, s.hasPrefix("/") else { throw fail("log.file must be an absolute path") }
                        config.logFile = s
                    default:
                        throw fail("unknown key 'log.\(k.string ?? "?")'")
                    }
                }
            case "audit":
                config.audit = try AuditConfiguration.parse(value, fail: fail)
            case "n2he":
                guard let m = value.mapping else { throw fail("'n2he' must be a mapping") }
                for (k, v) in m {
                    switch k.string ?? "" {
                    case "threads":
                        if v.string == "auto" {
                            config.n2heThreads = Configuration.onlineProcessors
                        } else if let i = v.int, (1...N2HECipher.maximumThreads).contains(i) {
                            config.n2heThreads = i
                        } else {
                            throw fail("n2he.threads must be auto or an integer in 1...\(N2HECipher.maximumThreads)")
                        }
                    default:
                        throw fail("unknown key 'n2he.\(k.string ?? "?")'")
                    }
                }
            case "tokens":
                sawTokens = true
                if value.string == "" || (value.scalar != nil && value.string == "null") { continue }
                guard let seq = value.sequence else { throw fail("'tokens' must be a list") }
                for (i, item) in seq.enumerated() {
                    config.tokens.append(try parseToken(item, index: i, fail: fail))
                }
            default:
                throw fail("unknown key '\(key)'")
            }
        }
        if !sawTokens || config.tokens.isEmpty {
            config.tokens = try Configuration.builtIn().tokens
        }
        // Two tokens on one store are found by device and inode when the module opens them (Module.init).
        var names = Set<String>()
        for t in config.tokens {
            guard names.insert(t.name).inserted else { throw fail("duplicate token name '\(t.name)'") }
        }
        return config
    }

    private static func parseToken(_ node: YAMLNode, index: Int, fail: (String) -> ConfigurationError) throws -> TokenConfiguration {
        guard let m = node.mapping else { throw fail("tokens[\(index)] must be a mapping") }
        var name: String?
        var store: String?
        var anchorDirectory: String?
        var backend = BackendConfiguration.default
        var retries: Int?
        var cost: Int?
        var minSecurity: Int?
        var policyNode: YAMLNode?
        for (k, v) in m {
            let key = k.string ?? ""
            switch key {
            case "name":
                guard let s = v.string, !s.isEmpty, s.utf8.count <= 64,
                      !s.contains("/"), s != ".", s != ".." else {
                    throw fail("tokens[\(index)].name must be 1..64 characters without '/'")
                }
                name = s
            case "store":
                guard let s = v.string, s.hasPrefix("/") else {
                    throw fail("tokens[\(index)].store must be an absolute path")
                }
                store = s
            case "anchor_dir":
                guard let s = v.string, s.hasPrefix("/") else {
                    throw fail("tokens[\(index)].anchor_dir must be an absolute path")
                }
                anchorDirectory = s
            case "backend":
                guard let bm = v.mapping else { throw fail("tokens[\(index)].backend must be a mapping") }
                var kind: String?
                var options: [String: String] = [:]
                for (bk, bv) in bm {
                    guard let bks = bk.string else { throw fail("tokens[\(index)].backend: non-string key") }
                    guard let bvs = bv.string, bv.scalar != nil else {
                        throw fail("tokens[\(index)].backend.\(bks) must be a scalar")
                    }
                    if bks == "kind" { kind = bvs } else { options[bks] = bvs }
                }
                guard let kind, !kind.isEmpty else { throw fail("tokens[\(index)].backend.kind is required") }
                guard BackendFactory.kinds.contains(kind) else {
                    throw fail("tokens[\(index)].backend.kind '\(kind)' unknown (known: \(BackendFactory.kinds.joined(separator: ", ")))")
                }
                if kind == LocalBackend.kind, let extra = options.keys.sorted().first {
                    throw fail("unknown key 'tokens[\(index)].backend.\(extra)' (the local backend takes no options)")
                }
                backend = BackendConfiguration(kind: kind, options: options)
            case "max_pin_retries":
                guard let i = v.int, (1...1000).contains(i) else {
                    throw fail("tokens[\(index)].max_pin_retries must be an integer in 1...1000")
                }
                retries = i
            case "pin_kdf_cost":
                guard let i = v.int, Configuration.pinKDFCostRange.contains(i) else {
                    throw fail("tokens[\(index)].pin_kdf_cost must be an integer in \(Configuration.pinKDFCostRange.lowerBound)...\(Configuration.pinKDFCostRange.upperBound)")
                }
                cost = i
            case "min_n2he_security_bits":
                guard let i = v.int, (0...256).contains(i) else {
                    throw fail("tokens[\(index)].min_n2he_security_bits must be an integer in 0...256")
                }
                minSecurity = i
            case "policy":
                policyNode = v
            default:
                throw fail("unknown key 'tokens[\(index)].\(key)'")
            }
        }
        guard let name else { throw fail("tokens[\(index)].name is required") }
        // `min_n2he_security_bits` beside `policy:` is the old spelling of `policy.min_n2he_security_bits`.
        var policy = TokenPolicy()
        if let minSecurity { policy.minN2HESecurityBits = minSecurity }
        if let policyNode {
            try TokenPolicy.parse(policyNode, into: &policy, path: "tokens[\(index)].policy",
                                  aliasGiven: minSecurity != nil, fail: fail)
        }
        do {
            var t = try TokenConfiguration.make(name: name, store: store, backend: backend,
                                                maxPINRetries: retries, pinKDFCost: cost, anchorDirectory: anchorDirectory)
            t.policy = policy
            return t
        } catch let e as ConfigurationError {
            throw fail(e.message)
        }
    }
}
