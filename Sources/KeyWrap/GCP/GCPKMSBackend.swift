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
        var body = JSONObjectWriter()
        var plaintext64 = Base64.encode(count: rootKey.count, alphabet: .standard, padded: true) { i in
            rootKey.withUnsafeBytes { $0[i] }
        }
        defer { secureZero(&plaintext64) }
        body.add("plaintext", base64Text: plaintext64)
        body.add("additionalAuthenticatedData", base64Text: Base64.encode(aad))
        body.add("plaintextCrc32c", string: String(rootKey.withUnsafeBytes { CRC32C.checksum($0) }))
        body.add("additionalAuthenticatedDataCrc32c", string: String(CRC32C.checksum(aad)))
        var bytes = body.finish()
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
        var blob: [UInt8] = [Self.blobVersion]
        cloudAppendField(&blob, Array(versionName.utf8))
        cloudAppendField(&blob, ciphertext)
        return blob
    }

    public func unwrap(_ blob: [UInt8], context: WrapContext) throws -> SecretBytes {
        guard let (versionName, ciphertext) = Self.parseBlob(blob) else { throw KeyWrapError.integrityFailure }
        stats.withLock { $0.unwraps += 1 }
        let keyName = versionName.split(separator: "/").prefix(8).joined(separator: "/")
        let aad = context.aad
        var body = JSONObjectWriter()
        body.add("ciphertext", base64Text: Base64.encode(ciphertext))
        body.add("additionalAuthenticatedData", base64Text: Base64.encode(aad))
        body.add("ciphertextCrc32c", string: String(CRC32C.checksum(ciphertext)))
        body.add("additionalAuthenticatedDataCrc32c", string: String(CRC32C.checksum(aad)))
        let bytes = body.finish()
        return try call(keyName, "decrypt", bytes) { doc -> SecretBytes? in
            guard var pt64 = doc["plaintext"]?.stringBytes else { return nil }
            defer { secureZero(&pt64) }
            guard var pt = Base64.decode(pt64) else { return nil }
            defer { secureZero(&pt) }
            guard !pt.isEmpty, pt.count <= Self.maximumRootKeyLength,
                  let crc = doc["plaintextCrc32c"]?.int64, crc == Int64(CRC32C.checksum(pt)) else { return nil }
            return SecretBytes(copying: pt)
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
        guard blob.count > 5, blob[0] == blobVersion else { return nil }
        var i = 1
        func field() -> [UInt8]? {
            guard i + 2 <= blob.count else { return nil }
            let n = Int(blob[i]) << 8 | Int(blob[i + 1])
            guard n > 0, i + 2 + n <= blob.count else { return nil }
            defer { i += 2 + n }
            return Array(blob[(i + 2)..<(i + 2 + n)])
        }
        guard let name = field(), let ct = field(), i == blob.count,
              let text = String(validating: name, as: UTF8.self) else { return nil }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 10, parts[0] == "projects", parts[6] == "cryptoKeys", parts[8] == "cryptoKeyVersions" else { return nil }
        return (text, ct)
    }

    // MARK: Calls

    /// POST {endpoint}/v1/{resource}:{method} with a bearer token. Retries (HTTP layer policy) on 429, 5xx,
    /// network errors and on a 200 whose body fails `accept` (malformed JSON, CRC32C mismatch); a 401 drops the
    /// cached token and is retried once with a fresh one. Errors name the service's status and message.
    func call<T>(_ resource: String, _ method: String, _ body: [UInt8], accept: (JSONValue) -> T?) throws -> T {
        let url = "\(configuration.endpoint)/v1/\(resource):\(method)"
        let what = "Cloud KMS \(method) on \(resource)"
        for pass in 0..<2 {
            let token = try accessToken()
            var request = HTTPRequest(method: "POST", url: url, headers: [
                ("Content-Type", "application/json; charset=utf-8"), ("Accept", "application/json"),
                ("Authorization", "Bearer \(token.value)"),
            ], body: body)
            defer { secureZero(&request.body) }
            let outcome: CloudCallOutcome<T>
            do {
                outcome = try http.withRetries(http.configuration.retry) { _ -> HTTPClient.AttemptOutcome<CloudCallOutcome<T>> in
                    var response = try http.send(request)
                    defer { secureZero(&response.body) }
                    if response.status == 200 {
                        if let doc = JSONValue.parse(response.body), let value = accept(doc) { return .done(.ok(value)) }
                        return .retry(.malformed, retryAfter: nil)
                    }
                    let status = CloudCallOutcome<T>.status(HTTPResponse(status: response.status, headers: response.headers,
                                                             body: response.body))
                    return HTTPClient.isTransientStatus(response.status)
                        ? .retry(status, retryAfter: HTTPClient.retryAfter(response)) : .done(status)
                }
            } catch let e as HTTPError {
                throw KeyWrapError.unreachable("\(what): \(e) (after up to \(http.configuration.retry.maxAttempts) attempts)")
            }
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
        let doc = JSONValue.parse(response.body)
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
        guard let doc = JSONValue.parse(json), doc["type"]?.text == "service_account",
              let email = doc["client_email"]?.text, !email.isEmpty,
              var pemBytes = doc["private_key"]?.stringBytes, !pemBytes.isEmpty,
              let tokenURI = doc["token_uri"]?.text, !tokenURI.isEmpty else {
            throw KeyWrapError.misconfigured("gcp-kms: \(source) is not a service-account key (type, client_email, private_key, token_uri)")
        }
        let pem = SecretBytes(copying: pemBytes)
        secureZero(&pemBytes)
        guard HTTPURL.parse(tokenURI)?.scheme == "https" || (HTTPURL.parse(tokenURI).map { HTTPURL.isLoopback(host: $0.host) } ?? false) else {
            throw KeyWrapError.misconfigured("gcp-kms: token_uri of \(source) must be https")
        }
        let now = unixTime()
        var header = JSONObjectWriter()
        header.add("alg", string: "RS256")
        header.add("typ", string: "JWT")
        if let kid = doc["private_key_id"]?.text, !kid.isEmpty { header.add("kid", string: kid) }
        var claims = JSONObjectWriter()
        claims.add("iss", string: email)
        claims.add("scope", string: configuration.scope)
        claims.add("aud", string: tokenURI)
        var claimBytes = claims.finish()
        claimBytes.removeLast()
        claimBytes += Array(",\"iat\":\(now),\"exp\":\(now + 3600)}".utf8)
        let signingInput = Base64.encode(header.finish(), alphabet: .url, padded: false) + [UInt8(ascii: ".")]
            + Base64.encode(claimBytes, alphabet: .url, padded: false)
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
                if r.status == 200 && JSONValue.parse(r.body)?["access_token"] == nil { return .retry(r, retryAfter: nil) }
                return HTTPClient.isTransientStatus(r.status) ? .retry(r, retryAfter: HTTPClient.retryAfter(r)) : .done(r)
            }
        } catch let e as HTTPError {
            throw KeyWrapError.unreachable("\(service): \(e)")
        }
        defer { secureZero(&response.body) }
        guard response.status == 200 else {
            let doc = JSONValue.parse(response.body)
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

func cloudAppendField(_ out: inout [UInt8], _ bytes: [UInt8]) {
    out.append(UInt8(truncatingIfNeeded: bytes.count >> 8))
    out.append(UInt8(truncatingIfNeeded: bytes.count))
    out.append(contentsOf: bytes)
}
