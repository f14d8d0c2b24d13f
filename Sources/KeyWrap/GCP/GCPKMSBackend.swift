// The `gcp-kms` key-wrapping backend (DESIGN §5, docs/backends/gcp-kms.md): the token's root key is encrypted by
// Cloud KMS (REST v1 cryptoKeys.encrypt / decrypt) under a symmetric CryptoKey, with the token binding
// (WrapContext.aad) as additionalAuthenticatedData and every CRC32C integrity field checked both ways.
//
// Blob (version 1), integers big-endian:
//
//     0x01 || u16 len || CryptoKeyVersion name (UTF-8) || u16 len || Cloud KMS ciphertext
//
// The version name is what :encrypt reported; unwrap decrypts with the CryptoKey it belongs to (Cloud KMS finds
// the version inside its ciphertext), so rotating the key's primary version needs nothing here, and a blob
// made under another key (after rewrapRootKey onto a new key) still names its own key.
import JSON
import CryptoCore
import Synchronization

/// Counters of one backend instance (tests and operators).
public struct CloudBackendStatistics: Sendable, Equatable {
    public var wraps = 0
    public var unwraps = 0
    /// Access tokens fetched (token endpoint or metadata server), not counting cache hits.
    public var tokenFetches = 0
    /// Service calls that came back 401 and were retried with a fresh token (or after a bearer challenge).
    public var authenticationRetries = 0
}

public final class GCPKMSBackend: KeyWrapBackend {
    public static let kind = "gcp-kms"
    public static let blobVersion: UInt8 = 1
    static let maximumRootKeyLength = 512

    public let configuration: GCPKMSConfig
    let http: HTTPClient
    let tokens = TokenCache(refreshMargin: .seconds(60))
    private let stats = Mutex(CloudBackendStatistics())

    public init(configuration: GCPKMSConfig, http: HTTPClient? = nil) {
        self.configuration = configuration
        self.http = http ?? HTTPClient(configuration: configuration.http.http)
    }

    public convenience init(configuration: BackendConfiguration) throws {
        self.init(configuration: try GCPKMSConfig(options: configuration.options(forKind: Self.kind)))
    }

    /// The same credentials and endpoint on another key (or pinned version): what a rotation onto a new key
    /// passes to `TokenVault.rewrapRootKey(using:backend:)`.
    public func withKey(_ key: String) throws -> GCPKMSBackend {
        var c = configuration
        (c.keyName, c.keyVersion) = try GCPKMSConfig.parseKey(key)
        return GCPKMSBackend(configuration: c, http: http)
    }

    /// keyID = the CryptoKey name; keyVersion = the pinned version or "primary".
    public var descriptor: BackendDescriptor {
        BackendDescriptor(kind: Self.kind, keyID: configuration.keyName, keyVersion: configuration.keyVersion ?? "primary")
    }

    public var statistics: CloudBackendStatistics { stats.withLock { $0 } }

    // MARK: KeyWrapBackend

    public func wrap(_ rootKey: SecretBytes, context: WrapContext) throws -> [UInt8] {
        guard rootKey.count > 0, rootKey.count <= Self.maximumRootKeyLength else {
            throw KeyWrapError.misconfigured("root key length \(rootKey.count) not supported")
        }
        stats.withLock { $0.wraps += 1 }
        let aad = context.aad
        // Sized so the buffer holding the base64 root key never reallocates (no stray partial copies).
        var body = JSONWriter(capacity: 256 + 2 * rootKey.count + 2 * aad.count)
        body.beginObject()
        body.key("plaintext"); body.base64String(rootKey)
        body.key("additionalAuthenticatedData"); body.base64String(aad)
        body.key("plaintextCrc32c"); body.string(String(rootKey.withUnsafeBytes { CRC32C.checksum($0) }))
        body.key("additionalAuthenticatedDataCrc32c"); body.string(String(CRC32C.checksum(aad)))
        body.endObject()
        var bytes = body.take()
        defer { secureZero(&bytes) }
        let keyName = configuration.keyName
        let (versionName, ciphertext) = try call(configuration.encryptName, "encrypt", bytes) { doc -> (String, [UInt8])? in
            guard let name = doc["name"]?.text, name.hasPrefix(keyName + "/cryptoKeyVersions/"),
                  let ct64 = doc["ciphertext"]?.stringBytes, let ct = Base64.decode(ct64), !ct.isEmpty,
                  let crc = doc["ciphertextCrc32c"]?.int64 else { return nil }
            // An integrity mismatch in either direction is reported like a corrupted response: retried.
            guard crc == Int64(CRC32C.checksum(ct)), doc["verifiedPlaintextCrc32c"]?.bool == true,
                  doc["verifiedAdditionalAuthenticatedDataCrc32c"]?.bool == true else { return nil }
            return (name, ct)
        }
        var blob = BlobWriter(version: Self.blobVersion)
        try blob.append(field: Array(versionName.utf8))
        try blob.append(field: ciphertext)
        return blob.bytes
    }

    public func unwrap(_ blob: [UInt8], context: WrapContext) throws -> SecretBytes {
        guard let (versionName, ciphertext) = Self.parseBlob(blob) else { throw KeyWrapError.integrityFailure }
        stats.withLock { $0.unwraps += 1 }
        let keyName = versionName.split(separator: "/").prefix(8).joined(separator: "/")
        let aad = context.aad
        var body = JSONWriter()
        body.beginObject()
        body.key("ciphertext"); body.base64String(ciphertext)
        body.key("additionalAuthenticatedData"); body.base64String(aad)
        body.key("ciphertextCrc32c"); body.string(String(CRC32C.checksum(ciphertext)))
        body.key("additionalAuthenticatedDataCrc32c"); body.string(String(CRC32C.checksum(aad)))
        body.endObject()
        return try call(keyName, "decrypt", body.take(), secretMembers: ["plaintext"]) { doc -> SecretBytes? in
            guard let pt64 = doc["plaintext"]?.secret, let pt = Base64.decodeSecret(pt64) else { return nil }
            guard pt.count > 0, pt.count <= Self.maximumRootKeyLength,
                  let crc = doc["plaintextCrc32c"]?.int64, crc == Int64(pt.withUnsafeBytes { CRC32C.checksum($0) }) else { return nil }
            return pt
        }
    }

    /// A wrap/unwrap round trip of a random 32-byte value under a health-check context.
    public func checkHealth() throws {
        let probe = try SecretBytes.random(count: 32)
        let context = WrapContext(tokenSerial: "tg-health-check", tokenUUID: "00000000000000000000000000000000")
        let blob = try wrap(probe, context: context)
        let back = try unwrap(blob, context: context)
        guard back == probe else { throw KeyWrapError.integrityFailure }
    }

    static func parseBlob(_ blob: [UInt8]) -> (String, [UInt8])? {
        guard var frame = BlobReader(blob, version: blobVersion), let name = frame.textField(), let ct = frame.field(),
              frame.isAtEnd else { return nil }
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 10, parts[0] == "projects", parts[6] == "cryptoKeys", parts[8] == "cryptoKeyVersions" else { return nil }
        return (name, Array(ct))
    }

    // MARK: Calls

    /// POST {endpoint}/v1/{resource}:{method} with a bearer token. Retries (HTTP layer policy) on 429, 5xx,
    /// network errors and on a 200 whose body fails `accept` (malformed JSON, CRC32C mismatch); a 401 drops the
    /// cached token and is retried once with a fresh one. Errors name the service's status and message.
    func call<T>(_ resource: String, _ method: String, _ body: [UInt8], secretMembers: Set<String> = [],
                 accept: (JSONValue) -> T?) throws -> T {
        try request("POST", "\(configuration.endpoint)/v1/\(resource):\(method)", method, on: resource, body,
                    secretMembers: secretMembers, accept: accept)
    }

    /// One REST call (`httpMethod` to `url`; `method` names it in errors and the error mapping), as `call` describes.
    func request<T>(_ httpMethod: String, _ url: String, _ method: String, on resource: String, _ body: [UInt8],
                    secretMembers: Set<String> = [], accept: (JSONValue) -> T?) throws -> T {
        let what = "Cloud KMS \(method) on \(resource)"
        for pass in 0..<2 {
            let token = try accessToken()
            var request = HTTPRequest(method: httpMethod, url: url, headers: [
                ("Content-Type", "application/json; charset=utf-8"), ("Accept", "application/json"),
                ("Authorization", "Bearer \(token.value)"),
            ], body: body)
            defer { secureZero(&request.body) }
            let outcome = try http.cloudJSONCall(request, what: what, secretMembers: secretMembers, accept: accept)
            switch outcome {
            case .ok(let value):
                return value
            case .malformed:
                throw KeyWrapError.unreachable("\(what): malformed or integrity-failed (CRC32C) response after \(http.configuration.retry.maxAttempts) attempts")
            case .status(let response):
                if response.status == 401 && pass == 0 {
                    tokens.invalidate(token.value)
                    stats.withLock { $0.authenticationRetries += 1 }
                    continue
                }
                throw Self.mapError(response, what: what, method: method, attempts: http.configuration.retry.maxAttempts)
            }
        }
        throw KeyWrapError.authenticationFailed("\(what): access token refused twice")
    }

    static func mapError(_ response: HTTPResponse, what: String, method: String, attempts: Int) -> KeyWrapError {
        let doc = JSONValue.parseIfValid(response.body)
        let status = doc?["error"]?["status"]?.text.map { sanitizedServiceText($0, limit: 64) } ?? ""
        let message = doc?["error"]?["message"]?.text.map { sanitizedServiceText($0) } ?? ""
        let detail = "\(what): HTTP \(response.status)" + (status.isEmpty ? "" : " \(status)") + (message.isEmpty ? "" : ": \(message)")
        switch (response.status, status) {
        case (401, _), (_, "UNAUTHENTICATED"): return .authenticationFailed(detail)
        case (403, _), (_, "PERMISSION_DENIED"): return .policyViolation(detail)
        case (404, _), (_, "NOT_FOUND"): return .keyNotFound(detail)
        case (_, "FAILED_PRECONDITION"): return .removed(detail)
        case (400, _) where method == "decrypt": return .integrityFailure
        case (400, _): return .misconfigured(detail)
        case (429, _), (500...599, _): return .unreachable("\(detail) (after \(attempts) attempts)")
        default: return .unreachable(detail)
        }
    }

    // MARK: Tokens

    func accessToken() throws -> AccessToken {
        if let t = tokens.current() { return t }
        let t: AccessToken
        switch configuration.credentials {
        case .serviceAccount(let source): t = try serviceAccountToken(source)
        case .metadataServer(let host): t = try metadataToken(host)
        }
        stats.withLock { $0.tokenFetches += 1 }
        tokens.store(t)
        return t
    }

    /// RS256 JWT (iss = client_email, scope, aud = token_uri, iat, exp = iat + 3600) exchanged at token_uri.
    func serviceAccountToken(_ source: CredentialSource) throws -> AccessToken {
        let keyFile = try source.read("gcp-kms service-account key")
        var json = keyFile.unsafeCopyToArray()
        defer { secureZero(&json) }
        guard let doc = try? JSONValue.parse(json, secretMembers: ["private_key"]), doc["type"]?.text == "service_account",
              let email = doc["client_email"]?.text, !email.isEmpty,
              let pem = doc["private_key"]?.secret, pem.count > 0,
              let tokenURI = doc["token_uri"]?.text, !tokenURI.isEmpty else {
            throw KeyWrapError.misconfigured("gcp-kms: \(source) is not a service-account key (type, client_email, private_key, token_uri)")
        }
        guard HTTPURL.parse(tokenURI)?.scheme == "https" || (HTTPURL.parse(tokenURI).map { HTTPURL.isLoopback(host: $0.host) } ?? false) else {
            throw KeyWrapError.misconfigured("gcp-kms: token_uri of \(source) must be https")
        }
        let now = unixTime()
        var header = JSONWriter()
        header.beginObject()
        header.key("alg"); header.string("RS256")
        header.key("typ"); header.string("JWT")
        if let kid = doc["private_key_id"]?.text, !kid.isEmpty { header.key("kid"); header.string(kid) }
        header.endObject()
        var claims = JSONWriter()
        claims.beginObject()
        claims.key("iss"); claims.string(email)
        claims.key("scope"); claims.string(configuration.scope)
        claims.key("aud"); claims.string(tokenURI)
        claims.key("iat"); claims.int(now)
        claims.key("exp"); claims.int(now + 3600)
        claims.endObject()
        let signingInput = Base64.encode(header.take(), alphabet: .url, padded: false) + [UInt8(ascii: ".")]
            + Base64.encode(claims.take(), alphabet: .url, padded: false)
        let signature = try RS256.sign(pem: pem, message: signingInput)
        var assertion = signingInput + [UInt8(ascii: ".")] + Base64.encode(signature, alphabet: .url, padded: false)
        defer { secureZero(&assertion) }
        var form = formEncode([("grant_type", Array("urn:ietf:params:oauth:grant-type:jwt-bearer".utf8)), ("assertion", assertion)])
        defer { secureZero(&form) }
        let request = HTTPRequest(method: "POST", url: tokenURI, headers: [
            ("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/json"),
        ], body: form)
        return try fetchToken(request, service: "Google token endpoint \(HTTPURL.redacted(tokenURI))")
    }

    /// GET http://{host}/computeMetadata/v1/instance/service-accounts/default/token with Metadata-Flavor: Google.
    func metadataToken(_ host: String) throws -> AccessToken {
        let url = "http://\(host)/computeMetadata/v1/instance/service-accounts/default/token"
        let request = HTTPRequest(method: "GET", url: url, headers: [("Metadata-Flavor", "Google"), ("Accept", "application/json")],
                                  metadataService: true)
        return try fetchToken(request, service: "GCE metadata server \(host)", requireFlavor: true)
    }

    func fetchToken(_ request: HTTPRequest, service: String, requireFlavor: Bool = false) throws -> AccessToken {
        var response: HTTPResponse
        do {
            response = try http.withRetries(http.configuration.retry) { _ -> HTTPClient.AttemptOutcome<HTTPResponse> in
                let r = try http.send(request)
                if r.status == 200 && JSONValue.parseIfValid(r.body)?["access_token"] == nil { return .retry(r, retryAfter: nil) }
                return HTTPClient.isTransientStatus(r.status) ? .retry(r, retryAfter: HTTPClient.retryAfter(r)) : .done(r)
            }
        } catch let e as HTTPError {
            throw KeyWrapError.unreachable("\(service): \(e)")
        }
        defer { secureZero(&response.body) }
        guard response.status == 200 else {
            let doc = JSONValue.parseIfValid(response.body)
            let code = doc?["error"]?.text.map { sanitizedServiceText($0, limit: 64) } ?? ""
            let message = doc?["error_description"]?.text.map { sanitizedServiceText($0) } ?? ""
            let detail = "\(service): HTTP \(response.status)" + (code.isEmpty ? "" : " \(code)") + (message.isEmpty ? "" : ": \(message)")
            if HTTPClient.isTransientStatus(response.status) { throw KeyWrapError.unreachable(detail) }
            throw KeyWrapError.authenticationFailed(detail)
        }
        if requireFlavor && response.header("Metadata-Flavor") != "Google" {
            throw KeyWrapError.authenticationFailed("\(service): response lacks Metadata-Flavor: Google")
        }
        return try AccessToken.parse(response.body, service: service)
    }
}
