// The `azure-keyvault` key-wrapping backend (DESIGN §5, docs/backends/azure-keyvault.md): the token's root key
// is wrapped by Azure Key Vault (REST keys/wrapkey, unwrapkey; RSA-OAEP-256) under a named RSA key.
//
// Blob (version 1), integers big-endian:
//
//     0x01 || u16 len || kid (the full key-version URL Key Vault reported) || u16 len || wrapped key || mac[32]
//
// mac = HMAC-SHA-256(key: root key, "TG-AZURE-KV-1" || 0x00 || WrapContext.aad || every blob byte before it):
// RSA-OAEP carries no AAD, so the MAC binds the blob to its token. Unwrap calls the kid recorded in the blob
// (which must be on the configured vault), so rotating the key to a new version, or to another key of the same
// vault, needs no change on hosts that only unwrap.
//
// Authentication follows Key Vault's bearer challenge: without a cached token the first request goes out
// unauthenticated with an empty body; the 401's WWW-Authenticate names the authority (tenant) and resource;
// a token is fetched for them (after checking both against the configuration) and the request repeated.
// A 401 on a cached token drops it and goes through the same steps.
import JSON
import CryptoCore
import Synchronization

/// A parsed `WWW-Authenticate: Bearer authorization="…", resource="…"` challenge.
public struct AzureBearerChallenge: Sendable, Equatable {
    public var authority: String
    public var tenant: String
    public var resource: String

    /// Parses the header value; nil if it is not a Key Vault bearer challenge.
    public static func parse(_ header: String) -> AzureBearerChallenge? {
        var s = Substring(header)
        while s.first == " " { s.removeFirst() }
        guard s.lowercased().hasPrefix("bearer ") else { return nil }
        s = s.dropFirst(7)
        var params: [String: String] = [:]
        var rounds = 0
        while !s.isEmpty && rounds < 32 {
            rounds += 1
            while let f = s.first, f == " " || f == "," { s.removeFirst() }
            guard let eq = s.firstIndex(of: "=") else { break }
            let key = s[s.startIndex..<eq].trimmingCharacters(" ").lowercased()
            s = s[s.index(after: eq)...]
            var value = ""
            if s.first == "\"" {
                s.removeFirst()
                guard let close = s.firstIndex(of: "\"") else { return nil }
                value = String(s[s.startIndex..<close])
                s = s[s.index(after: close)...]
            } else {
                let end = s.firstIndex(of: ",") ?? s.endIndex
                value = s[s.startIndex..<end].trimmingCharacters(" ")
                s = s[end...]
            }
            params[key] = value
        }
        guard let auth = params["authorization"] ?? params["authorization_uri"],
              let parts = HTTPURL.parse(auth) else { return nil }
        var resource = params["resource"] ?? ""
        if resource.isEmpty, let scope = params["scope"] {
            resource = scope.hasSuffix("/.default") ? String(scope.dropLast(9)) : scope
        }
        if resource.hasSuffix("/") { resource.removeLast() }
        let tenant = parts.path.split(separator: "/").first.map(String.init) ?? ""
        guard !tenant.isEmpty, !resource.isEmpty else { return nil }
        let host = parts.host.hasSubstring(":") ? "[\(parts.host)]" : parts.host
        return AzureBearerChallenge(authority: "\(parts.scheme)://\(host)\(parts.port.map { ":\($0)" } ?? "")",
                                    tenant: tenant, resource: resource)
    }
}

extension Substring {
    func trimmingCharacters(_ c: Character) -> String {
        var s = self
        while s.first == c { s.removeFirst() }
        while s.last == c { s.removeLast() }
        return String(s)
    }
}

public final class AzureKeyVaultBackend: KeyWrapBackend {
    public static let kind = "azure-keyvault"
    public static let blobVersion: UInt8 = 1
    static let macLabel = Array("TG-AZURE-KV-1".utf8) + [0]
    static let maximumRootKeyLength = 256

    public let configuration: AzureKeyVaultConfig
    let http: HTTPClient
    let tokens = TokenCache(refreshMargin: .seconds(60))
    private let challenge = Mutex<AzureBearerChallenge?>(nil)
    private let stats = Mutex(CloudBackendStatistics())

    public init(configuration: AzureKeyVaultConfig, http: HTTPClient? = nil) {
        self.configuration = configuration
        self.http = http ?? HTTPClient(configuration: configuration.http.http)
    }

    public convenience init(configuration: BackendConfiguration) throws {
        self.init(configuration: try AzureKeyVaultConfig(options: configuration.options(forKind: Self.kind)))
    }

    /// The same vault and credentials on another key / version: for `TokenVault.rewrapRootKey(using:backend:)`.
    public func withKey(name: String, version: String? = nil) -> AzureKeyVaultBackend {
        var c = configuration
        c.keyName = name
        c.keyVersion = version
        return AzureKeyVaultBackend(configuration: c, http: http)
    }

    /// keyID = {vault}/keys/{name}; keyVersion = the pinned version or "latest".
    public var descriptor: BackendDescriptor {
        BackendDescriptor(kind: Self.kind, keyID: "\(configuration.vaultURL)/keys/\(configuration.keyName)",
                          keyVersion: configuration.keyVersion ?? "latest")
    }

    public var statistics: CloudBackendStatistics { stats.withLock { $0 } }

    // MARK: KeyWrapBackend

    public func wrap(_ rootKey: SecretBytes, context: WrapContext) throws -> [UInt8] {
        guard rootKey.count > 0, rootKey.count <= Self.maximumRootKeyLength else {
            throw KeyWrapError.misconfigured("root key length \(rootKey.count) not supported")
        }
        stats.withLock { $0.wraps += 1 }
        // Sized so the buffer holding the base64 root key never reallocates (no stray partial copies).
        var body = JSONWriter(capacity: 64 + 2 * rootKey.count)
        body.beginObject()
        body.key("alg"); body.string(AzureKeyVaultConfig.algorithm)
        body.key("value"); body.base64String(rootKey, alphabet: .url, padded: false)
        body.endObject()
        var bytes = body.take()
        defer { secureZero(&bytes) }
        let keyURL = "\(configuration.vaultURL)/keys/\(configuration.keyName)" + (configuration.keyVersion.map { "/\($0)" } ?? "")
        let prefix = "\(configuration.vaultURL)/keys/\(configuration.keyName)/"
        let pinned = configuration.keyVersion
        let (kid, wrapped) = try call(keyURL + "/wrapkey", "wrapKey", bytes) { doc -> (String, [UInt8])? in
            guard let kid = doc["kid"]?.text, Self.kidIsOnVault(kid, vault: configuration.vaultURL), kid.hasPrefix(prefix),
                  kid.count > prefix.count, pinned == nil || kid == prefix + (pinned ?? ""),
                  let v = doc["value"]?.stringBytes, let ct = Base64.decode(v, alphabet: .url), ct.count >= 128, ct.count <= 2048
            else { return nil }
            return (kid, ct)
        }
        var blob = BlobWriter(version: Self.blobVersion)
        try blob.append(field: Array(kid.utf8))
        try blob.append(field: wrapped)
        return try blob.sealed(label: Self.macLabel, rootKey: rootKey, context: context)
    }

    public func unwrap(_ blob: [UInt8], context: WrapContext) throws -> SecretBytes {
        guard let (kid, wrapped, frame) = Self.parseBlob(blob), Self.kidIsOnVault(kid, vault: configuration.vaultURL) else {
            throw KeyWrapError.integrityFailure
        }
        stats.withLock { $0.unwraps += 1 }
        var body = JSONWriter()
        body.beginObject()
        body.key("alg"); body.string(AzureKeyVaultConfig.algorithm)
        body.key("value"); body.base64String(wrapped, alphabet: .url, padded: false)
        body.endObject()
        let root = try call(kid + "/unwrapkey", "unwrapKey", body.take(), secretMembers: ["value"]) { doc -> SecretBytes? in
            guard let v = doc["value"]?.secret, let pt = Base64.decodeSecret(v, alphabet: .url),
                  pt.count > 0, pt.count <= Self.maximumRootKeyLength else { return nil }
            return pt
        }
        guard try frame.macVerifies(label: Self.macLabel, rootKey: root, context: context) else { throw KeyWrapError.integrityFailure }
        return root
    }

    /// A wrap/unwrap round trip of a random 32-byte value.
    public func checkHealth() throws {
        let probe = try SecretBytes.random(count: 32)
        let context = WrapContext(tokenSerial: "tg-health-check", tokenUUID: "00000000000000000000000000000000")
        let back = try unwrap(try wrap(probe, context: context), context: context)
        guard back == probe else { throw KeyWrapError.integrityFailure }
    }

    static func kidIsOnVault(_ kid: String, vault: String) -> Bool {
        guard kid.hasPrefix(vault + "/keys/"), let p = HTTPURL.parse(kid), p.query.isEmpty else { return false }
        let segments = p.path.split(separator: "/", omittingEmptySubsequences: false)
        return segments.count == 4 && segments[1] == "keys" && !segments[2].isEmpty && !segments[3].isEmpty
            && p.path.utf8.allSatisfy { c in c == UInt8(ascii: "/") || c == UInt8(ascii: "-") || (c >= 0x30 && c <= 0x39) || (c | 0x20 >= 0x61 && c | 0x20 <= 0x7A) }
    }

    /// (kid, wrapped key, the frame for its mac check)
    static func parseBlob(_ blob: [UInt8]) -> (String, [UInt8], BlobReader)? {
        guard var frame = BlobReader(blob, version: blobVersion, macLength: BlobMAC.length),
              let kid = frame.textField(), let wrapped = frame.field(), frame.isAtEnd else { return nil }
        return (kid, Array(wrapped), frame)
    }

    // MARK: Calls

    /// POST (or `httpMethod`) {url}?api-version=… Retries (HTTP layer policy) on 429, 5xx, network errors and malformed 200
    /// bodies. 401 → bearer challenge → token → repeat, at most twice.
    func call<T>(_ url: String, _ operation: String, _ body: [UInt8], httpMethod: String = "POST",
                 secretMembers: Set<String> = [], accept: (JSONValue) -> T?) throws -> T {
        let what = "Key Vault \(operation) on \(HTTPURL.redacted(url).replacingSuffix("/" + operation.lowercased()))"
        var lastChallengeError: KeyWrapError? = nil
        for _ in 0..<3 {
            var token = tokens.current()
            if token == nil, let ch = challenge.withLock({ $0 }) { token = try fetchToken(ch) }
            var request = HTTPRequest(method: httpMethod, url: "\(url)?api-version=\(configuration.apiVersion)", headers: [
                ("Content-Type", "application/json"), ("Accept", "application/json"),
            ], body: token == nil ? [] : body)
            if let token { request.setHeader("Authorization", "Bearer \(token.value)") }
            defer { secureZero(&request.body) }
            let outcome = try http.cloudJSONCall(request, what: what, secretMembers: secretMembers, accept: accept)
            switch outcome {
            case .ok(let value):
                return value
            case .malformed:
                throw KeyWrapError.unreachable("\(what): malformed response after \(http.configuration.retry.maxAttempts) attempts")
            case .status(let response) where response.status == 401:
                if let token { tokens.invalidate(token.value) }
                stats.withLock { $0.authenticationRetries += 1 }
                guard let header = response.header("WWW-Authenticate"), let ch = AzureBearerChallenge.parse(header) else {
                    throw Self.mapError(response, what: what, operation: operation, attempts: 1)
                }
                do {
                    try validate(ch)
                } catch let e as KeyWrapError {
                    lastChallengeError = e
                    break
                }
                challenge.withLock { $0 = ch }
            case .status(let response):
                throw Self.mapError(response, what: what, operation: operation, attempts: http.configuration.retry.maxAttempts)
            }
            if lastChallengeError != nil { break }
        }
        throw lastChallengeError ?? KeyWrapError.authenticationFailed("\(what): access token refused after a fresh token")
    }

    /// The challenge must name the configured resource and, for client credentials, the configured authority
    /// host and tenant: a vault endpoint cannot send our client secret elsewhere.
    func validate(_ ch: AzureBearerChallenge) throws {
        guard ch.resource.lowercased() == configuration.resource.lowercased() else {
            throw KeyWrapError.authenticationFailed("Key Vault bearer challenge names resource \(sanitizedServiceText(ch.resource, limit: 100)), configured \(configuration.resource)")
        }
        if case .clientSecret(let tenant, _, _) = configuration.credentials {
            guard ch.authority.lowercased() == configuration.authorityHost.lowercased() else {
                throw KeyWrapError.authenticationFailed("Key Vault bearer challenge names authority \(sanitizedServiceText(ch.authority, limit: 100)), configured \(configuration.authorityHost)")
            }
            guard ch.tenant.lowercased() == tenant.lowercased() else {
                throw KeyWrapError.authenticationFailed("the vault belongs to tenant \(sanitizedServiceText(ch.tenant, limit: 64)), configured tenant_id \(tenant)")
            }
        }
    }

    static func mapError(_ response: HTTPResponse, what: String, operation: String, attempts: Int) -> KeyWrapError {
        let doc = JSONValue.parseIfValid(response.body)
        let code = doc?["error"]?["code"]?.text.map { sanitizedServiceText($0, limit: 64) } ?? ""
        let inner = doc?["error"]?["innererror"]?["code"]?.text.map { sanitizedServiceText($0, limit: 64) } ?? ""
        let message = doc?["error"]?["message"]?.text.map { sanitizedServiceText($0) } ?? ""
        let detail = "\(what): HTTP \(response.status)" + (code.isEmpty ? "" : " \(code)") + (inner.isEmpty ? "" : "/\(inner)")
            + (message.isEmpty ? "" : ": \(message)")
        switch response.status {
        case 401: return .authenticationFailed(detail)
        case 403 where inner == "KeyDisabled" || message.lowercased().hasSubstring("disabled"): return .removed(detail)
        case 403: return .policyViolation(detail)
        case 404: return .keyNotFound(detail)
        case 400 where operation == "unwrapKey": return .integrityFailure
        case 400: return .misconfigured(detail)
        case 429, 500...599: return .unreachable("\(detail) (after \(attempts) attempts)")
        default: return .unreachable(detail)
        }
    }

    // MARK: Tokens

    func fetchToken(_ ch: AzureBearerChallenge) throws -> AccessToken {
        let request: HTTPRequest
        let service: String
        var secretBytes: [UInt8] = []
        defer { secureZero(&secretBytes) }
        switch configuration.credentials {
        case .clientSecret(let tenant, let client, let source):
            let secret = try source.read("azure-keyvault client secret")
            secretBytes = secret.unsafeCopyToArray()
            var form = formEncode([
                ("client_id", Array(client.utf8)), ("client_secret", secretBytes),
                ("scope", Array("\(ch.resource)/.default".utf8)), ("grant_type", Array("client_credentials".utf8)),
            ])
            defer { secureZero(&form) }
            let url = "\(configuration.authorityHost)/\(percentEncode(tenant))/oauth2/v2.0/token"
            service = "Entra ID token endpoint \(HTTPURL.redacted(url))"
            request = HTTPRequest(method: "POST", url: url, headers: [
                ("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/json"),
            ], body: form)
        case .managedIdentity(let endpoint, let client):
            var url = "\(endpoint)/metadata/identity/oauth2/token?api-version=2018-02-01&resource=\(percentEncode(ch.resource))"
            if let client { url += "&client_id=\(percentEncode(client))" }
            service = "managed identity endpoint \(HTTPURL.redacted(url))"
            request = HTTPRequest(method: "GET", url: url, headers: [("Metadata", "true"), ("Accept", "application/json")],
                                  metadataService: true)
        }
        var response: HTTPResponse
        do {
            response = try http.withRetries(http.configuration.retry) { _ -> HTTPClient.AttemptOutcome<HTTPResponse> in
                let r = try http.send(request)
                if r.status == 200 && JSONValue.parseIfValid(r.body)?["access_token"] == nil { return .retry(r, retryAfter: nil) }
                // IMDS answers 404/410 while the identity is being set up (documented transient codes).
                let transient = HTTPClient.isTransientStatus(r.status)
                    || (request.metadataService && (r.status == 404 || r.status == 410))
                return transient ? .retry(r, retryAfter: HTTPClient.retryAfter(r)) : .done(r)
            }
        } catch let e as HTTPError {
            throw KeyWrapError.unreachable("\(service): \(e)")
        }
        defer { secureZero(&response.body) }
        guard response.status == 200 else {
            let doc = JSONValue.parseIfValid(response.body)
            let code = doc?["error"]?.text.map { sanitizedServiceText($0, limit: 64) } ?? ""
            // AADSTS descriptions: keep the first line (code and reason), not trace/correlation ids.
            let description = doc?["error_description"]?.text.map { sanitizedServiceText(String($0.split(separator: "\r").first ?? ""), limit: 200) } ?? ""
            let detail = "\(service): HTTP \(response.status)" + (code.isEmpty ? "" : " \(code)") + (description.isEmpty ? "" : ": \(description)")
            if HTTPClient.isTransientStatus(response.status) { throw KeyWrapError.unreachable(detail) }
            throw KeyWrapError.authenticationFailed(detail)
        }
        let t = try AccessToken.parse(response.body, service: service)
        stats.withLock { $0.tokenFetches += 1 }
        tokens.store(t)
        return t
    }
}

extension String {
    func replacingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}
