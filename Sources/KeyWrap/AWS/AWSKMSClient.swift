// AWS KMS over its JSON 1.1 protocol: POST / with X-Amz-Target: TrentService.<Operation>,
// Content-Type: application/x-amz-json-1.1, SigV4-signed (service "kms"). Retries throttling (429,
// ThrottlingException & co.), 5xx and network failures with the HTTP layer's bounded backoff; an expired
// session token triggers one credential refresh. The final failure becomes a KeyWrapError carrying the
// service's own error code and message — never a credential, never a body containing key material.
import CryptoCore
import JSON
import Synchronization

/// A KMS error response, parsed.
struct AWSServiceError: Sendable, Equatable, CustomStringConvertible {
    var status: Int
    /// "AccessDeniedException", "ThrottlingException", … ("" if the body carried none).
    var code: String
    var message: String

    var description: String {
        let c = code.isEmpty ? "HTTP \(status)" : "\(code) (HTTP \(status))"
        return message.isEmpty ? c : "\(c): \(message)"
    }

    /// Parses `__type`/`code` + `message`/`Message` (JSON), <Code>/<Message> (XML), or x-amzn-ErrorType.
    init(_ response: HTTPResponse) {
        status = response.status
        code = ""
        message = ""
        if let json = try? JSONValue.parse(response.body) {
            code = json["__type"]?.text ?? json["code"]?.text ?? json["Code"]?.text ?? ""
            message = json["message"]?.text ?? json["Message"]?.text ?? ""
        } else {
            let text = response.bodyText
            code = Self.xmlElement("Code", in: text) ?? ""
            message = Self.xmlElement("Message", in: text) ?? ""
        }
        if code.isEmpty, let header = response.header("x-amzn-ErrorType") {
            code = String(header.split(separator: ":", maxSplits: 1).first ?? "")
        }
        // "com.amazonaws.kms#NotFoundException" → "NotFoundException"
        if let hash = code.lastIndex(of: "#") { code = String(code[code.index(after: hash)...]) }
        code = sanitizedAWSText(code, limit: 100)
        message = sanitizedAWSText(message)
    }

    static func xmlElement(_ name: String, in text: String) -> String? {
        guard let open = text.range(ofLiteral: "<\(name)>"),
              let close = text.range(ofLiteral: "</\(name)>", from: open.upperBound) else { return nil }
        return String(text[open.upperBound..<close.lowerBound])
    }

    static let throttlingCodes: Set<String> = [
        "ThrottlingException", "Throttling", "ThrottledException", "RequestLimitExceeded", "TooManyRequestsException",
        "RequestThrottled", "RequestThrottledException", "SlowDown", "ProvisionedThroughputExceededException",
    ]
    static let transientCodes: Set<String> = [
        "KMSInternalException", "DependencyTimeoutException", "InternalFailure", "InternalError", "ServiceUnavailable",
        "ServiceUnavailableException", "RequestTimeout", "RequestTimeoutException", "KeyUnavailableException",
    ]
    static let expiredCredentialCodes: Set<String> = ["ExpiredTokenException", "ExpiredToken", "RequestExpired"]

    var isTransient: Bool {
        HTTPClient.isTransientStatus(status) || Self.throttlingCodes.contains(code) || Self.transientCodes.contains(code)
    }

    /// Maps the final failure of `operation` on `key`.
    func keyWrapError(operation: String, key: String, attempts: Int) -> KeyWrapError {
        let text = "AWS KMS \(operation) with key \(key) failed after \(attempts) attempt\(attempts == 1 ? "" : "s"): \(self)"
        switch code {
        case "NotFoundException":
            return .keyNotFound(text)
        case "DisabledException", "KMSInvalidStateException", "KeyUnavailableException":
            return .removed(text)
        case "AccessDeniedException", "AccessDenied":
            return .policyViolation(text)
        case "UnrecognizedClientException", "InvalidClientTokenId", "InvalidSignatureException", "SignatureDoesNotMatch",
             "IncompleteSignature", "MissingAuthenticationToken", "MissingAuthenticationTokenException",
             "ExpiredTokenException", "ExpiredToken", "RequestExpired", "AuthFailure", "InvalidAccessKeyId":
            return .authenticationFailed(text)
        case "InvalidCiphertextException", "IncorrectKeyException":
            return .integrityFailure
        case "ValidationException", "InvalidKeyUsageException", "InvalidArnException", "InvalidAliasNameException",
             "InvalidGrantTokenException", "UnsupportedOperationException", "SerializationException",
             "UnknownOperationException", "LimitExceededException":
            return .misconfigured(text)
        default:
            if isTransient || status >= 500 { return .unreachable(text) }
            if status == 401 || status == 403 { return .authenticationFailed(text) }
            return .misconfigured(text)
        }
    }
}

extension StringProtocol {
    /// Plain substring search (no Foundation).
    func range(ofLiteral needle: String, from start: Index? = nil) -> Range<Index>? {
        let n = Array(needle.utf8)
        guard !n.isEmpty else { return nil }
        var i = start ?? startIndex
        while i < endIndex {
            var j = i
            var k = 0
            while k < n.count, j < endIndex, self.utf8[j] == n[k] {
                j = self.utf8.index(after: j)
                k += 1
            }
            if k == n.count { return i..<j }
            i = self.utf8.index(after: i)
        }
        return nil
    }
}

/// Counters (tests assert on them; "zero KMS calls after login" is checked with `requests`).
public struct AWSKMSStatistics: Sendable, Equatable {
    /// KMS operations started (Encrypt, Decrypt), retries not counted.
    public var operations = 0
    /// HTTP requests sent to KMS, retries included.
    public var requests = 0
    /// Credential refreshes forced by an expired-token answer.
    public var credentialRefreshes = 0
}

final class AWSKMSClient: Sendable {
    let endpoint: String
    let signer: SigV4Signer
    let http: HTTPClient
    let credentials: AWSCredentialsProvider
    let clock: @Sendable () -> Int64
    /// Puts one signed request on the wire: `http.send` unless the creator gave another transport.
    let transport: @Sendable (HTTPRequest) throws -> HTTPResponse
    private let counters = Mutex(AWSKMSStatistics())

    init(endpoint: String, region: String, http: HTTPClient, credentials: AWSCredentialsProvider,
         clock: @escaping @Sendable () -> Int64 = AWSTime.now,
         transport: (@Sendable (HTTPRequest) throws -> HTTPResponse)? = nil) {
        self.endpoint = endpoint
        self.signer = SigV4Signer(region: region, service: "kms")
        self.http = http
        self.credentials = credentials
        self.clock = clock
        self.transport = transport ?? { try http.send($0) }
    }

    var statistics: AWSKMSStatistics { counters.withLock { $0 } }
    func resetStatistics() { counters.withLock { $0 = AWSKMSStatistics() } }

    /// Calls `TrentService.<operation>` with `body` (wiped before returning). Returns the parsed success
    /// document; members named in `secretMembers` are SecretBytes. `key` names the key in error messages.
    func call(_ operation: String, body: inout [UInt8], key: String, secretMembers: Set<String> = []) throws -> JSONValue {
        defer { secureZero(&body) }
        counters.withLock { $0.operations += 1 }
        var creds = try credentials.resolve()
        var refreshed = false
        var attempts = 0
        // The body moves into `unsigned` (one buffer, wiped at the end; signed copies share it).
        var unsigned = HTTPRequest(method: "POST", url: endpoint + "/",
                                   headers: [(name: "Content-Type", value: "application/x-amz-json-1.1"),
                                             (name: "X-Amz-Target", value: "TrentService.\(operation)")],
                                   body: body)
        body = []
        defer { secureZero(&unsigned.body) }
        var response: HTTPResponse
        do {
            response = try http.withRetries(http.configuration.retry) { _ in
                attempts += 1
                let request = try signer.sign(unsigned, credentials: creds, time: clock())
                counters.withLock { $0.requests += 1 }
                let r = try transport(request)
                if r.isSuccess { return .done(r) }
                let error = AWSServiceError(r)
                if AWSServiceError.expiredCredentialCodes.contains(error.code) && !refreshed {
                    // Session credentials expired (e.g. instance role rotated): refresh once, then try again.
                    refreshed = true
                    credentials.invalidate()
                    counters.withLock { $0.credentialRefreshes += 1 }
                    creds = try credentials.resolve()
                    return .retry(r, retryAfter: nil)
                }
                return error.isTransient ? .retry(r, retryAfter: HTTPClient.retryAfter(r)) : .done(r)
            }
        } catch let e as HTTPError {
            if case .invalidRequest = e {
                // Our request could not even be sent (e.g. a header value with a line break from the environment).
                throw KeyWrapError.misconfigured("AWS KMS \(operation) with key \(key): \(e)")
            }
            throw KeyWrapError.unreachable("AWS KMS \(operation) with key \(key) at \(HTTPURL.redacted(endpoint)) failed after \(attempts) attempt\(attempts == 1 ? "" : "s"): \(e)")
        }
        defer { secureZero(&response.body) }
        guard response.isSuccess else {
            throw AWSServiceError(response).keyWrapError(operation: operation, key: key, attempts: attempts)
        }
        do {
            return try JSONValue.parse(response.body, secretMembers: secretMembers)
        } catch {
            throw KeyWrapError.unreachable("AWS KMS \(operation) with key \(key): malformed response (\(error), HTTP \(response.status), \(response.body.count) bytes)")
        }
    }
}
