// Where the aws-kms backend's credentials come from (docs/backends/aws-kms.md), in the SDKs' order:
//
//   1. environment: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN) — skipped when the
//      configuration names a `profile` explicitly (as the AWS SDKs do);
//   2. the shared files: credentials file (AWS_SHARED_CREDENTIALS_FILE, default ~/.aws/credentials, section
//      [name]) then config file (AWS_CONFIG_FILE, default ~/.aws/config, section [profile name] or [default]);
//      profile = configuration `profile`, else AWS_PROFILE, else "default";
//   3. EC2 instance metadata, IMDSv2 only: PUT /latest/api/token (X-aws-ec2-metadata-token-ttl-seconds), then
//      GET /latest/meta-data/iam/security-credentials/ (role name) and …/<role> (AccessKeyId, SecretAccessKey,
//      Token, Expiration). Endpoint AWS_EC2_METADATA_SERVICE_ENDPOINT (default http://169.254.169.254);
//      AWS_EC2_METADATA_DISABLED=true turns it off. Cached until 5 minutes before Expiration.
//
// Environment and files are read at every resolution (a fixed file takes effect without restart); only instance
// credentials are cached. Nothing here logs or returns a secret in an error.
import CryptoCore
import JSON
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public final class AWSCredentialsProvider: Sendable {
    /// Refresh instance credentials this long before they expire.
    public static let refreshMargin: Int64 = 300
    static let maximumFileSize = 1 << 20

    /// Explicitly configured profile (nil: AWS_PROFILE or "default", environment credentials first).
    public let profile: String?
    let environment: @Sendable (String) -> String?
    let clock: @Sendable () -> Int64
    let metadataClient: HTTPClient
    private let cache = Mutex<AWSCredentials?>(nil)
    private let metadataFetches = Atomic<Int>(0)

    /// `environment` and `clock` are injectable for tests; the defaults read the process environment and time(2).
    public init(profile: String?, metadataClient: HTTPClient? = nil,
                environment: @escaping @Sendable (String) -> String? = AWSCredentialsProvider.processEnvironment,
                clock: @escaping @Sendable () -> Int64 = AWSTime.now) {
        self.profile = profile
        self.environment = environment
        self.clock = clock
        self.metadataClient = metadataClient ?? HTTPClient(configuration: HTTPClientConfiguration(
            connectTimeout: .seconds(1), totalTimeout: .seconds(2),
            retry: RetryPolicy(maxAttempts: 2, baseDelay: .milliseconds(100), maxDelay: .milliseconds(500))))
    }

    @Sendable public static func processEnvironment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }

    /// Instance-metadata credential fetches made (tests: a refresh is observable).
    public var metadataFetchCount: Int { metadataFetches.load(ordering: .relaxed) }

    /// Forgets cached instance credentials (after the service said they expired).
    public func invalidate() { cache.withLock { $0 = nil } }

    /// The credentials to sign with now.
    public func resolve() throws -> AWSCredentials {
        if profile == nil, let fromEnv = try environmentCredentials() { return fromEnv }
        let name = profile ?? awsNonEmpty(environment("AWS_PROFILE")) ?? "default"
        if let fromFiles = try fileCredentials(profile: name) { return fromFiles }
        if profile != nil {
            throw KeyWrapError.misconfigured("aws-kms: profile '\(name)' has no aws_access_key_id/aws_secret_access_key in \(credentialsFilePath()) or \(configFilePath())")
        }
        if let disabled = environment("AWS_EC2_METADATA_DISABLED"), disabled.lowercased() == "true" {
            throw KeyWrapError.authenticationFailed("aws-kms: no credentials found (environment, \(credentialsFilePath()), \(configFilePath()); instance metadata disabled)")
        }
        return try instanceCredentials()
    }

    // MARK: Environment

    func environmentCredentials() throws -> AWSCredentials? {
        let id = awsNonEmpty(environment("AWS_ACCESS_KEY_ID"))
        let secret = awsNonEmpty(environment("AWS_SECRET_ACCESS_KEY"))
        switch (id, secret) {
        case (nil, nil): return nil
        case (let id?, let secret?):
            return AWSCredentials(accessKeyID: id, secretAccessKey: SecretBytes(copying: Array(secret.utf8)),
                                  sessionToken: awsNonEmpty(environment("AWS_SESSION_TOKEN")), source: "environment")
        default:
            throw KeyWrapError.misconfigured("aws-kms: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together")
        }
    }

    // MARK: Shared files

    func credentialsFilePath() -> String {
        awsNonEmpty(environment("AWS_SHARED_CREDENTIALS_FILE")).map(expandHome) ?? expandHome("~/.aws/credentials")
    }

    func configFilePath() -> String {
        awsNonEmpty(environment("AWS_CONFIG_FILE")).map(expandHome) ?? expandHome("~/.aws/config")
    }

    func fileCredentials(profile name: String) throws -> AWSCredentials? {
        let credPath = credentialsFilePath()
        if let sections = try Self.readINI(credPath), let section = sections[name],
           let found = try credentials(in: section, what: "profile \(name) (\(credPath))") {
            return found
        }
        let configPath = configFilePath()
        if let sections = try Self.readINI(configPath),
           let section = sections[name == "default" ? "default" : "profile \(name)"] ?? (name == "default" ? sections["profile default"] : nil),
           let found = try credentials(in: section, what: "profile \(name) (\(configPath))") {
            return found
        }
        return nil
    }

    /// The `region` of a profile in the config file (for region resolution).
    func profileRegion() -> String? {
        let name = profile ?? awsNonEmpty(environment("AWS_PROFILE")) ?? "default"
        guard let sections = try? Self.readINI(configFilePath()) else { return nil }
        let section = sections[name == "default" ? "default" : "profile \(name)"]
        return section?["region"].flatMap(awsNonEmpty)
    }

    private func credentials(in section: [String: String], what: String) throws -> AWSCredentials? {
        let id = section["aws_access_key_id"].flatMap(awsNonEmpty)
        let secret = section["aws_secret_access_key"].flatMap(awsNonEmpty)
        switch (id, secret) {
        case (nil, nil): return nil
        case (let id?, let secret?):
            return AWSCredentials(accessKeyID: id, secretAccessKey: SecretBytes(copying: Array(secret.utf8)),
                                  sessionToken: section["aws_session_token"].flatMap(awsNonEmpty), source: what)
        default:
            throw KeyWrapError.misconfigured("aws-kms: \(what) needs both aws_access_key_id and aws_secret_access_key")
        }
    }

    /// INI sections → key/value (keys lower-cased, section names trimmed). nil if the file does not exist.
    static func readINI(_ path: String) throws -> [String: [String: String]]? {
        guard var bytes = try awsReadSmallFile(path, limit: maximumFileSize) else { return nil }
        defer { secureZero(&bytes) }
        var sections: [String: [String: String]] = [:]
        var current: String? = nil
        for rawLine in bytes.split(separator: 0x0A, omittingEmptySubsequences: true) {
            let line = String(decoding: rawLine, as: UTF8.self).trimmingSpaces
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                let name = String(line.dropFirst().dropLast()).trimmingSpaces
                current = name.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
                if let c = current, sections[c] == nil { sections[c] = [:] }
                continue
            }
            guard let section = current, let eq = line.firstIndex(of: "=") else { continue }
            let key = String(line[line.startIndex..<eq]).trimmingSpaces.lowercased()
            let value = String(line[line.index(after: eq)...]).trimmingSpaces
            sections[section, default: [:]][key] = value
        }
        return sections
    }

    // MARK: Instance metadata (IMDSv2)

    func metadataEndpoint() -> String {
        var e = awsNonEmpty(environment("AWS_EC2_METADATA_SERVICE_ENDPOINT")) ?? "http://169.254.169.254"
        while e.hasSuffix("/") { e.removeLast() }
        return e
    }

    func instanceCredentials() throws -> AWSCredentials {
        let now = clock()
        if let cached = cache.withLock({ $0 }), let exp = cached.expiration, now < exp - Self.refreshMargin {
            return cached
        }
        do {
            let fresh = try fetchInstanceCredentials()
            cache.withLock { $0 = fresh }
            return fresh
        } catch {
            // Metadata service hiccup: keep using cached credentials while they are still valid.
            if let cached = cache.withLock({ $0 }), let exp = cached.expiration, now < exp { return cached }
            throw error
        }
    }

    private func fetchInstanceCredentials() throws -> AWSCredentials {
        metadataFetches.add(1, ordering: .relaxed)
        let base = metadataEndpoint()
        func call(_ request: HTTPRequest, _ what: String) throws -> HTTPResponse {
            let response: HTTPResponse
            do {
                response = try metadataClient.sendWithRetries(request)
            } catch let e as HTTPError {
                throw KeyWrapError.unreachable("aws-kms: no credentials in the environment or shared files, and the instance metadata service (\(what)) failed: \(e)")
            }
            guard response.status == 200 else {
                throw KeyWrapError.authenticationFailed("aws-kms: instance metadata \(what) answered HTTP \(response.status)")
            }
            return response
        }
        var tokenResponse = try call(HTTPRequest(method: "PUT", url: base + "/latest/api/token",
                                                 headers: [(name: "X-aws-ec2-metadata-token-ttl-seconds", value: "21600")],
                                                 metadataService: true), "token (IMDSv2)")
        let token = String(decoding: tokenResponse.body, as: UTF8.self).trimmingSpaces
        secureZero(&tokenResponse.body)
        guard !token.isEmpty, token.utf8.count < 4096, !token.contains("\n") else {
            throw KeyWrapError.authenticationFailed("aws-kms: instance metadata returned an unusable session token")
        }
        let auth = [(name: "X-aws-ec2-metadata-token", value: token)]
        let roles = try call(HTTPRequest(method: "GET", url: base + "/latest/meta-data/iam/security-credentials/",
                                         headers: auth, metadataService: true), "role list")
        guard let role = roles.bodyText.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).first.map({ String($0).trimmingSpaces }),
              !role.isEmpty, role.utf8.count <= 128,
              role.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "+=,.@_-".unicodeScalars.contains($0) }) else {
            throw KeyWrapError.authenticationFailed("aws-kms: no IAM role attached to this instance (instance metadata role list empty or malformed)")
        }
        var document = try call(HTTPRequest(method: "GET", url: base + "/latest/meta-data/iam/security-credentials/" + role,
                                            headers: auth, metadataService: true), "credentials of role \(role)")
        defer { secureZero(&document.body) }
        let json: JSONValue
        do {
            json = try JSONValue.parse(document.body, secretMembers: ["SecretAccessKey"])
        } catch {
            throw KeyWrapError.authenticationFailed("aws-kms: instance metadata credentials of role \(role): \(error)")
        }
        if let code = json["Code"]?.text, code != "Success" {
            throw KeyWrapError.authenticationFailed("aws-kms: instance metadata credentials of role \(role): Code \(sanitizedAWSText(code))")
        }
        guard let id = json["AccessKeyId"]?.text, !id.isEmpty,
              let secret = json["SecretAccessKey"]?.secret, secret.count > 0,
              let sessionToken = json["Token"]?.text, !sessionToken.isEmpty,
              let expirationText = json["Expiration"]?.text,
              let expiration = AWSTime.parseISO8601(expirationText) else {
            throw KeyWrapError.authenticationFailed("aws-kms: instance metadata credentials of role \(role) are incomplete")
        }
        return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: sessionToken,
                              expiration: expiration, source: "instance metadata role \(role)")
    }

    private func expandHome(_ path: String) -> String {
        guard path.hasPrefix("~/") else { return path }
        let home = awsNonEmpty(environment("HOME")) ?? "/"
        return (home.hasSuffix("/") ? String(home.dropLast()) : home) + "/" + path.dropFirst(2)
    }
}

func awsNonEmpty(_ s: String?) -> String? {
    guard let s else { return nil }
    let t = s.trimmingSpaces
    return t.isEmpty ? nil : t
}

/// Service-provided text made safe for an error message: printable ASCII, bounded length.
func sanitizedAWSText(_ s: String, limit: Int = 400) -> String {
    var out = String(String.UnicodeScalarView(s.unicodeScalars.map { ($0.value >= 0x20 && $0.value < 0x7F) ? $0 : " " }))
    if out.count > limit { out = String(out.prefix(limit)) + "…" }
    return out
}

/// Reads a regular file of at most `limit` bytes. nil if it does not exist; errors name the path only.
func awsReadSmallFile(_ path: String, limit: Int) throws -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 {
        if errno == ENOENT || errno == ENOTDIR { return nil }
        throw KeyWrapError.misconfigured("aws-kms: cannot read \(path) (errno \(errno))")
    }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
        throw KeyWrapError.misconfigured("aws-kms: \(path) is not a regular file")
    }
    guard Int(info.st_size) <= limit else { throw KeyWrapError.misconfigured("aws-kms: \(path) is larger than \(limit) bytes") }
    var buffer = [UInt8](repeating: 0, count: limit + 1)
    var total = 0
    var rounds = 0
    while total < buffer.count && rounds < 10_000 {
        rounds += 1
        let n = buffer.withUnsafeMutableBytes { raw in awsSystemRead(fd, raw.baseAddress?.advanced(by: total), raw.count - total) }
        if n < 0 && errno == EINTR { continue }
        guard n >= 0 else { secureZero(&buffer); throw KeyWrapError.misconfigured("aws-kms: cannot read \(path) (errno \(errno))") }
        if n == 0 { break }
        total += n
    }
    guard total <= limit else { secureZero(&buffer); throw KeyWrapError.misconfigured("aws-kms: \(path) is larger than \(limit) bytes") }
    let out = Array(buffer[0..<total])
    secureZero(&buffer)
    return out
}

#if canImport(Glibc)
private let awsSystemRead = Glibc.read
#elseif canImport(Darwin)
private let awsSystemRead = Darwin.read
#endif
