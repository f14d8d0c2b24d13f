// Configuration of the `aws-kms` backend (docs/backends/aws-kms.md). Credentials are never configuration
// options: they come from the environment, the shared files or instance metadata (AWSCredentialsProvider).

/// The `aws-kms` backend's settings, with region and endpoint already resolved.
public struct AWSKMSBackendConfig: Sendable, Equatable {
    /// Key id, key ARN, alias name ("alias/…") or alias ARN: what new wraps use. Unwrap uses the key ARN
    /// recorded in the blob.
    public var keyID: String
    public var region: String
    /// Base URL of the KMS endpoint (https; http only to loopback for tests).
    public var endpoint: String
    /// Explicit credentials profile (nil: environment credentials, then AWS_PROFILE / "default", then IMDS).
    public var profile: String?
    public var http: HTTPClientConfiguration

    /// KMS answers fast: shorter bounds than the other clouds' (docs/backends/aws-kms.md).
    public static let httpDefaults = CloudHTTPOptions.Defaults(
        connectTimeout: .seconds(2), totalTimeout: .seconds(5),
        retry: RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(100), maxDelay: .seconds(2)))

    /// Configuration keys understood in `BackendConfiguration.options` (and the deprecated millisecond
    /// spellings of the HTTP options, `CloudHTTPOptions.deprecatedMillisecondKeys`).
    public static let optionKeys: [String] = ["key_id", "region", "endpoint", "profile"] + CloudHTTPOptions.keys

    public init(keyID: String, region: String, endpoint: String, profile: String? = nil,
                http: HTTPClientConfiguration = HTTPClientConfiguration()) {
        self.keyID = keyID
        self.region = region
        self.endpoint = endpoint
        self.profile = profile
        self.http = http
    }

    /// Parses `BackendConfiguration.options` (kind "aws-kms"). `key_id` is required. Region: `region`, else the
    /// region inside an ARN `key_id`, else AWS_REGION, AWS_DEFAULT_REGION, the profile's `region` in the config
    /// file. Endpoint: `endpoint`, else AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL, else
    /// https://kms.<region>.amazonaws.com (.com.cn for cn-* regions). Inline credentials are refused.
    public init(options: [String: String],
                environment: @escaping @Sendable (String) -> String? = AWSCredentialsProvider.processEnvironment) throws {
        for key in options.keys.sorted() where !Self.optionKeys.contains(key) && CloudHTTPOptions.deprecatedMillisecondKeys[key] == nil {
            let lower = key.lowercased()
            if lower.hasSubstring("secret") || lower.hasSubstring("access_key") || lower.hasSubstring("session_token") || lower.hasSubstring("password") {
                throw KeyWrapError.misconfigured("aws-kms backend: credentials are not accepted in the configuration ('\(key)'); use the environment, a profile in the shared credentials file, or an instance role")
            }
            throw KeyWrapError.misconfigured("aws-kms backend: unknown option '\(key)' (known: \(Self.optionKeys.joined(separator: ", ")))")
        }
        func value(_ key: String) -> String? { awsNonEmpty(options[key]) }
        guard let keyID = value("key_id") else {
            throw KeyWrapError.misconfigured("aws-kms backend: 'key_id' (key id, key ARN, alias/name or alias ARN) is required")
        }
        let arn = try Self.validateKeyID(keyID)
        let profile = value("profile")
        if let p = profile, p.hasSubstring("[") || p.hasSubstring("]") || p.hasSubstring("\n") {
            throw KeyWrapError.misconfigured("aws-kms backend: profile name '\(sanitizedAWSText(p, limit: 64))' is malformed")
        }

        var region = value("region")
        if let r = region, let arnRegion = arn?.region, r != arnRegion {
            throw KeyWrapError.misconfigured("aws-kms backend: region '\(r)' differs from the region '\(arnRegion)' in key_id")
        }
        if region == nil { region = arn?.region }
        if region == nil { region = awsNonEmpty(environment("AWS_REGION")) ?? awsNonEmpty(environment("AWS_DEFAULT_REGION")) }
        if region == nil {
            region = AWSCredentialsProvider(profile: profile, environment: environment).profileRegion()
        }
        guard let resolvedRegion = region else {
            throw KeyWrapError.misconfigured("aws-kms backend: no region (set 'region', use a key ARN, or AWS_REGION)")
        }
        guard Self.isValidRegion(resolvedRegion) else {
            throw KeyWrapError.misconfigured("aws-kms backend: region '\(sanitizedAWSText(resolvedRegion, limit: 64))' is malformed")
        }

        var endpoint = value("endpoint") ?? awsNonEmpty(environment("AWS_ENDPOINT_URL_KMS")) ?? awsNonEmpty(environment("AWS_ENDPOINT_URL"))
            ?? "https://kms.\(resolvedRegion).amazonaws.com\(resolvedRegion.hasPrefix("cn-") ? ".cn" : "")"
        while endpoint.hasSuffix("/") { endpoint.removeLast() }
        guard let parts = HTTPURL.parse(endpoint), parts.query.isEmpty else {
            throw KeyWrapError.misconfigured("aws-kms backend: endpoint '\(HTTPURL.redacted(endpoint))' is not an http(s) URL")
        }
        if parts.scheme == "http" && !HTTPURL.isLoopback(host: parts.host) {
            throw KeyWrapError.misconfigured("aws-kms backend: endpoint \(HTTPURL.redacted(endpoint)) must use https (plain http only to loopback test servers)")
        }

        let http = try CloudHTTPOptions(options: options, kind: "aws-kms", defaults: Self.httpDefaults).http
        self.init(keyID: keyID, region: resolvedRegion, endpoint: endpoint, profile: profile, http: http)
    }

    /// The equivalent options (region and endpoint as resolved).
    public var options: [String: String] {
        var o: [String: String] = [
            "key_id": keyID, "region": region, "endpoint": endpoint,
        ].merging(CloudHTTPOptions(http: http).options) { a, _ in a }
        if let p = profile { o["profile"] = p }
        return o
    }

    struct ARN: Equatable {
        var partition: String
        var region: String
        var account: String
        var resource: String
    }

    /// "arn:partition:kms:region:account:key/…|alias/…" → parts; nil if `text` is not an ARN.
    static func parseARN(_ text: String) -> ARN? {
        let fields = text.split(separator: ":", maxSplits: 5, omittingEmptySubsequences: false).map(String.init)
        guard fields.count == 6, fields[0] == "arn", fields[2] == "kms" else { return nil }
        return ARN(partition: fields[1], region: fields[3], account: fields[4], resource: fields[5])
    }

    /// Accepts a key id (UUID or mrk-…), an alias name (alias/…), a key ARN or an alias ARN.
    @discardableResult
    static func validateKeyID(_ keyID: String) throws -> ARN? {
        let allowed: (Unicode.Scalar) -> Bool = { s in
            (s.value >= 0x30 && s.value <= 0x39) || (s.value >= 0x41 && s.value <= 0x5A) || (s.value >= 0x61 && s.value <= 0x7A)
                || "-_/:.".unicodeScalars.contains(s)
        }
        guard keyID.utf8.count <= 2048, keyID.unicodeScalars.allSatisfy(allowed) else {
            throw KeyWrapError.misconfigured("aws-kms backend: key_id '\(sanitizedAWSText(keyID, limit: 80))' contains invalid characters")
        }
        if keyID.hasPrefix("arn:") {
            guard let arn = parseARN(keyID), arn.partition.hasPrefix("aws"), isValidRegion(arn.region), !arn.account.isEmpty,
                  arn.resource.hasPrefix("key/") || arn.resource.hasPrefix("alias/"), arn.resource.count > 6 else {
                throw KeyWrapError.misconfigured("aws-kms backend: key_id ARN '\(keyID)' is malformed (arn:aws:kms:<region>:<account>:key/<id> or …:alias/<name>)")
            }
            return arn
        }
        if keyID.hasPrefix("alias/") {
            guard keyID.count > 6, !keyID.hasPrefix("alias/aws/") else {
                throw KeyWrapError.misconfigured("aws-kms backend: alias '\(keyID)' is empty or an AWS managed alias (use a customer managed key)")
            }
            return nil
        }
        guard !keyID.hasSubstring("/"), !keyID.hasSubstring(":") else {
            throw KeyWrapError.misconfigured("aws-kms backend: key_id '\(keyID)' is neither a key id, an alias/… name, nor an ARN")
        }
        return nil
    }

    static func isValidRegion(_ r: String) -> Bool {
        !r.isEmpty && r.count <= 32 && r.unicodeScalars.allSatisfy { ($0.value >= 0x61 && $0.value <= 0x7A) || ($0.value >= 0x30 && $0.value <= 0x39) || $0 == "-" }
    }
}
