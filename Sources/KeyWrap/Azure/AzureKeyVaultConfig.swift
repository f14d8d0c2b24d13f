// Configuration of the `azure-keyvault` backend (docs/backends/azure-keyvault.md).

/// How the backend obtains Microsoft Entra ID access tokens.
public enum AzureCredentials: Sendable, Equatable, CustomStringConvertible {
    /// OAuth2 client credentials with a client secret: POST {authorityHost}/{tenant}/oauth2/v2.0/token.
    case clientSecret(tenantID: String, clientID: String, secret: CredentialSource)
    /// Managed identity through the instance metadata service (IMDS): GET {endpoint}/metadata/identity/oauth2/token.
    /// `clientID` selects a user-assigned identity (nil: the system-assigned one).
    case managedIdentity(endpoint: String, clientID: String?)

    public var description: String {
        switch self {
        case .clientSecret(let t, let c, let s): return "client secret of app \(c) in tenant \(t) from \(s)"
        case .managedIdentity(let e, let c): return "managed identity\(c.map { " \($0)" } ?? "") via \(e)"
        }
    }
}

public struct AzureKeyVaultConfig: Sendable, Equatable {
    public static let defaultAuthorityHost = "https://login.microsoftonline.com"
    public static let defaultIMDSEndpoint = "http://169.254.169.254"
    public static let defaultResource = "https://vault.azure.net"
    public static let defaultAPIVersion = "7.4"
    public static let algorithm = "RSA-OAEP-256"

    /// https://NAME.vault.azure.net (or a Managed HSM / sovereign-cloud / test URL), without trailing slash.
    public var vaultURL: String
    public var keyName: String
    /// Pinned key version for new wraps; nil = the key's current version.
    public var keyVersion: String?
    public var credentials: AzureCredentials
    public var authorityHost: String
    /// The token audience a bearer challenge must name (https://vault.azure.net; https://managedhsm.azure.net …).
    public var resource: String
    public var apiVersion: String
    public var http: CloudHTTPOptions

    public init(vaultURL: String, keyName: String, keyVersion: String? = nil, credentials: AzureCredentials,
                authorityHost: String = AzureKeyVaultConfig.defaultAuthorityHost,
                resource: String = AzureKeyVaultConfig.defaultResource,
                apiVersion: String = AzureKeyVaultConfig.defaultAPIVersion, http: CloudHTTPOptions = CloudHTTPOptions()) {
        self.vaultURL = vaultURL
        self.keyName = keyName
        self.keyVersion = keyVersion
        self.credentials = credentials
        self.authorityHost = authorityHost
        self.resource = resource
        self.apiVersion = apiVersion
        self.http = http
    }

    public static let optionKeys: [String] = [
        "vault_url", "key_name", "key_version", "credentials", "tenant_id", "client_id", "client_secret_env",
        "client_secret_file", "authority_host", "managed_identity_endpoint", "managed_identity_client_id",
        "resource", "api_version",
    ] + CloudHTTPOptions.keys

    /// Parses `BackendConfiguration.options` (kind "azure-keyvault"): `vault_url`, `key_name` (required),
    /// `key_version`; `credentials`: `client-secret` (needs `tenant_id`, `client_id` and `client_secret_env` or
    /// `client_secret_file`; default when a secret source is given) or `managed-identity` (optional
    /// `managed_identity_client_id`; IMDS endpoint from `managed_identity_endpoint`, else
    /// $AZURE_POD_IDENTITY_AUTHORITY_HOST, else http://169.254.169.254); `authority_host`, `resource`,
    /// `api_version` (≥ 7.0), and the HTTP options. An inline `client_secret` is refused.
    public init(options: [String: String], environment: (String) -> String? = { getenvString($0) }) throws {
        let kind = AzureKeyVaultBackend.kind
        for key in options.keys.sorted() where !Self.optionKeys.contains(key) {
            if ["client_secret", "secret", "password", "token"].contains(key) {
                throw KeyWrapError.misconfigured("\(kind) backend: an inline secret ('\(key)') is not accepted; use client_secret_env or client_secret_file")
            }
            throw KeyWrapError.misconfigured("\(kind) backend: unknown option '\(key)' (known: \(Self.optionKeys.joined(separator: ", ")))")
        }
        func opt(_ k: String) -> String? {
            guard let v = options[k]?.trimmingBlanks, !v.isEmpty else { return nil }
            return v
        }
        func origin(_ key: String, _ value: String, allowHTTP: Bool = false) throws -> String {
            let v = value.hasSuffix("/") ? String(value.dropLast()) : value
            guard let p = HTTPURL.parse(v), p.path == "/", p.query.isEmpty,
                  p.scheme == "https" || allowHTTP || HTTPURL.isLoopback(host: p.host) else {
                throw KeyWrapError.misconfigured("\(kind) backend: \(key) '\(value)' must be https://host[:port]")
            }
            return v
        }
        guard let vault = opt("vault_url") else { throw KeyWrapError.misconfigured("\(kind) backend: 'vault_url' (https://NAME.vault.azure.net) is required") }
        guard let name = opt("key_name") else { throw KeyWrapError.misconfigured("\(kind) backend: 'key_name' is required") }
        func segment(_ key: String, _ v: String) throws -> String {
            guard v.utf8.count <= 127, v.utf8.allSatisfy({ c in (c >= 0x30 && c <= 0x39) || (c | 0x20 >= 0x61 && c | 0x20 <= 0x7A) || c == UInt8(ascii: "-") }) else {
                throw KeyWrapError.misconfigured("\(kind) backend: \(key) '\(v)' may hold only letters, digits and '-'")
            }
            return v
        }
        let secretEnv = opt("client_secret_env"), secretFile = opt("client_secret_file")
        let credentials: AzureCredentials
        let mode = opt("credentials")?.lowercased() ?? (secretEnv != nil || secretFile != nil ? "client-secret" : "managed-identity")
        switch mode {
        case "client-secret", "client_secret":
            guard let tenant = opt("tenant_id"), let client = opt("client_id") else {
                throw KeyWrapError.misconfigured("\(kind) backend: client-secret credentials need tenant_id and client_id")
            }
            let source: CredentialSource
            switch (secretEnv, secretFile) {
            case (let e?, nil): source = .environment(e)
            case (nil, let f?):
                guard f.hasPrefix("/") else { throw KeyWrapError.misconfigured("\(kind) backend: client_secret_file '\(f)' must be an absolute path") }
                source = .file(f)
            case (.some, .some): throw KeyWrapError.misconfigured("\(kind) backend: give either client_secret_env or client_secret_file, not both")
            case (nil, nil): throw KeyWrapError.misconfigured("\(kind) backend: client-secret credentials need client_secret_env or client_secret_file")
            }
            credentials = .clientSecret(tenantID: try segment("tenant_id", tenant), clientID: client, secret: source)
        case "managed-identity", "managed_identity", "msi":
            guard secretEnv == nil, secretFile == nil else {
                throw KeyWrapError.misconfigured("\(kind) backend: managed-identity credentials take no client secret")
            }
            let endpoint = opt("managed_identity_endpoint") ?? environment("AZURE_POD_IDENTITY_AUTHORITY_HOST") ?? Self.defaultIMDSEndpoint
            credentials = .managedIdentity(endpoint: try origin("managed_identity_endpoint", endpoint, allowHTTP: true),
                                           clientID: opt("managed_identity_client_id") ?? opt("client_id"))
        default:
            throw KeyWrapError.misconfigured("\(kind) backend: credentials '\(mode)' unknown (client-secret, managed-identity)")
        }
        let api = opt("api_version") ?? Self.defaultAPIVersion
        guard let major = api.split(separator: ".").first.flatMap({ Int($0) }), major >= 7,
              api.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") || ($0 >= 0x61 && $0 <= 0x7A) }) else {
            throw KeyWrapError.misconfigured("\(kind) backend: api_version '\(api)' unsupported (7.4 or later)")
        }
        let resource = opt("resource") ?? Self.defaultResource
        self.init(vaultURL: try origin("vault_url", vault), keyName: try segment("key_name", name),
                  keyVersion: try opt("key_version").map { try segment("key_version", $0) }, credentials: credentials,
                  authorityHost: try origin("authority_host", opt("authority_host") ?? Self.defaultAuthorityHost),
                  resource: resource.hasSuffix("/") ? String(resource.dropLast()) : resource,
                  apiVersion: api, http: try CloudHTTPOptions(options: options, kind: kind))
    }
}
