// Configuration of the `gcp-kms` backend (docs/backends/gcp-kms.md).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How the backend obtains OAuth2 access tokens.
public enum GCPCredentials: Sendable, Equatable, CustomStringConvertible {
    /// A service-account key file (JSON, as downloaded from IAM), read at each token fetch: an RS256 JWT signed
    /// with its private key is exchanged at its `token_uri`.
    case serviceAccount(CredentialSource)
    /// The GCE / GKE metadata server (the attached service account). `host` is "host[:port]"
    /// (default metadata.google.internal; GCE_METADATA_HOST overrides it, as in Google's client libraries).
    case metadataServer(host: String)

    public var description: String {
        switch self {
        case .serviceAccount(let s): return "service-account key from \(s)"
        case .metadataServer(let h): return "metadata server \(h)"
        }
    }
}

public struct GCPKMSConfig: Sendable, Equatable {
    public static let defaultEndpoint = "https://cloudkms.googleapis.com"
    public static let defaultScope = "https://www.googleapis.com/auth/cloudkms"
    public static let defaultMetadataHost = "metadata.google.internal"

    /// projects/P/locations/L/keyRings/R/cryptoKeys/K — the CryptoKey (purpose ENCRYPT_DECRYPT).
    public var keyName: String
    /// A pinned CryptoKeyVersion number for new wraps; nil = the key's primary version (recommended).
    public var keyVersion: String?
    public var credentials: GCPCredentials
    /// scheme://host[:port] of the Cloud KMS API (regional or private endpoints, tests).
    public var endpoint: String
    public var scope: String
    public var http: CloudHTTPOptions

    public init(keyName: String, keyVersion: String? = nil, credentials: GCPCredentials,
                endpoint: String = GCPKMSConfig.defaultEndpoint, scope: String = GCPKMSConfig.defaultScope,
                http: CloudHTTPOptions = CloudHTTPOptions()) {
        self.keyName = keyName
        self.keyVersion = keyVersion
        self.credentials = credentials
        self.endpoint = endpoint
        self.scope = scope
        self.http = http
    }

    public static let optionKeys: [String] = [
        "key", "credentials", "credentials_file", "credentials_env", "metadata_host", "endpoint", "scope",
    ] + CloudHTTPOptions.keys

    /// Parses `BackendConfiguration.options` (kind "gcp-kms"):
    /// `key` (required: a CryptoKey name, or a CryptoKeyVersion name to pin new wraps to that version);
    /// `credentials`: `service-account` (needs `credentials_file`, or `credentials_env` naming a variable that
    /// holds the key JSON) or `metadata` (default when neither is given); `metadata_host` (else
    /// $GCE_METADATA_HOST, else metadata.google.internal); `endpoint`; `scope`; and the HTTP options
    /// (`ca_bundle`, `connect_timeout`, `timeout`, `max_attempts`, `retry_base_delay`, `retry_max_delay`).
    /// Unknown keys are refused; an inline key (`private_key`, `credentials_json`) is refused.
    public init(options: [String: String], environment: (String) -> String? = { getenvString($0) }) throws {
        let kind = GCPKMSBackend.kind
        for key in options.keys.sorted() where !Self.optionKeys.contains(key) {
            if ["private_key", "credentials_json", "service_account_key", "token"].contains(key) {
                throw KeyWrapError.misconfigured("\(kind) backend: inline credentials ('\(key)') are not accepted; use credentials_file or credentials_env")
            }
            throw KeyWrapError.misconfigured("\(kind) backend: unknown option '\(key)' (known: \(Self.optionKeys.joined(separator: ", ")))")
        }
        func opt(_ k: String) -> String? {
            guard let v = options[k]?.trimmingBlanks, !v.isEmpty else { return nil }
            return v
        }
        guard let key = opt("key") else {
            throw KeyWrapError.misconfigured("\(kind) backend: 'key' (projects/…/locations/…/keyRings/…/cryptoKeys/…) is required")
        }
        let (name, version) = try Self.parseKey(key)
        let file = opt("credentials_file"), env = opt("credentials_env")
        let credentials: GCPCredentials
        switch opt("credentials")?.lowercased() {
        case nil, "service-account", "service_account":
            switch (file, env) {
            case (let f?, nil):
                guard f.hasPrefix("/") else { throw KeyWrapError.misconfigured("\(kind) backend: credentials_file '\(f)' must be an absolute path") }
                credentials = .serviceAccount(.file(f))
            case (nil, let e?): credentials = .serviceAccount(.environment(e))
            case (.some, .some): throw KeyWrapError.misconfigured("\(kind) backend: give either credentials_file or credentials_env, not both")
            case (nil, nil):
                if opt("credentials") != nil {
                    throw KeyWrapError.misconfigured("\(kind) backend: credentials: service-account needs credentials_file or credentials_env")
                }
                credentials = .metadataServer(host: opt("metadata_host") ?? environment("GCE_METADATA_HOST") ?? Self.defaultMetadataHost)
            }
        case "metadata", "metadata-server", "gce":
            guard file == nil, env == nil else {
                throw KeyWrapError.misconfigured("\(kind) backend: credentials: metadata takes no credentials_file / credentials_env")
            }
            credentials = .metadataServer(host: opt("metadata_host") ?? environment("GCE_METADATA_HOST") ?? Self.defaultMetadataHost)
        case let other?:
            throw KeyWrapError.misconfigured("\(kind) backend: credentials '\(other)' unknown (service-account, metadata)")
        }
        if case .metadataServer(let host) = credentials {
            guard !host.isEmpty, !host.contains("/"), !host.contains("@"), HTTPURL.parse("http://\(host)/") != nil else {
                throw KeyWrapError.misconfigured("\(kind) backend: metadata host '\(host)' must be host[:port]")
            }
        }
        let endpoint = opt("endpoint") ?? Self.defaultEndpoint
        guard let parts = HTTPURL.parse(endpoint), parts.path == "/", parts.query.isEmpty else {
            throw KeyWrapError.misconfigured("\(kind) backend: endpoint '\(endpoint)' must be scheme://host[:port]")
        }
        self.init(keyName: name, keyVersion: version, credentials: credentials,
                  endpoint: endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint,
                  scope: opt("scope") ?? Self.defaultScope, http: try CloudHTTPOptions(options: options, kind: kind))
    }

    /// Splits "…/cryptoKeys/K[/cryptoKeyVersions/N]" and checks its shape.
    public static func parseKey(_ text: String) throws -> (String, String?) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        let valid = parts.allSatisfy { !$0.isEmpty && $0.utf8.allSatisfy { c in c > 0x20 && c < 0x7F && c != UInt8(ascii: "?") && c != UInt8(ascii: "#") && c != UInt8(ascii: "%") } }
        if valid, parts.count == 8 || parts.count == 10, parts[0] == "projects", parts[2] == "locations",
           parts[4] == "keyRings", parts[6] == "cryptoKeys" {
            if parts.count == 8 { return (text, nil) }
            if parts[8] == "cryptoKeyVersions", let v = UInt64(parts[9]), v > 0 {
                return (parts[0..<8].joined(separator: "/"), String(v))
            }
        }
        throw KeyWrapError.misconfigured("gcp-kms backend: key '\(text)' is not projects/P/locations/L/keyRings/R/cryptoKeys/K[/cryptoKeyVersions/N]")
    }

    /// The resource new wraps name in :encrypt.
    var encryptName: String { keyVersion.map { "\(keyName)/cryptoKeyVersions/\($0)" } ?? keyName }
}

extension String {
    var trimmingBlanks: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}

/// getenv as a String (nil if unset).
public func getenvString(_ name: String) -> String? {
    guard let p = getenv(name) else { return nil }
    return String(cString: p)
}
