// The `aws-kms` key-wrapping backend (DESIGN §5, docs/backends/aws-kms.md): the token's root key is encrypted
// by AWS KMS (Encrypt/Decrypt, symmetric customer managed key) with an EncryptionContext naming the token.
//
// Called only at C_InitToken (wrap), once per login (unwrap), at rotation (wrap) and by health checks — never
// on the per-operation path.
//
// Blob (version 1), integers big-endian:
//
//     0x01 || u16 len || keyARN (UTF-8, from the Encrypt response) || u16 len || CiphertextBlob || mac[32]
//
// mac = HMAC-SHA-256(key: root key, "TG-AWSKMS-1" || 0x00 || WrapContext.aad || every blob byte before the mac).
// KMS binds the ciphertext to the EncryptionContext {"tg-token-serial", "tg-token-uuid"} (AAD inside KMS);
// the mac additionally detects any edit of our frame. Unwrap decrypts with the key ARN recorded in the blob,
// so blobs made under an old key keep working after `key_id` moves on (rotation, docs).
import CryptoCore
import JSON
import Synchronization

/// One line of a health report.
public struct AWSKMSHealthCheck: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    public var passed: Bool
    /// What was found (never a secret).
    public var detail: String

    public var description: String { "[\(passed ? "ok" : "FAIL")] \(name): \(detail)" }
}

/// Result of `AWSKMSBackend.healthReport()`.
public struct AWSKMSHealthReport: Sendable, Equatable, CustomStringConvertible {
    public var region: String
    public var endpoint: String
    public var keyID: String
    /// Where the credentials came from ("environment", "profile x (path)", "instance metadata role r"); nil if none.
    public var credentialsSource: String?
    /// In order; the first failed one is the cause.
    public var checks: [AWSKMSHealthCheck] = []
    /// The first failure as a typed error (what `checkHealth()` throws); nil when healthy.
    public var error: KeyWrapError?

    public var isHealthy: Bool { error == nil && checks.allSatisfy(\.passed) }

    public var description: String {
        var lines = ["aws-kms backend: key \(keyID), region \(region), endpoint \(HTTPURL.redacted(endpoint))"]
        lines += checks.map { "  \($0)" }
        lines.append(isHealthy ? "  healthy" : "  NOT healthy: \(error.map { "\($0)" } ?? "a check failed")")
        return lines.joined(separator: "\n")
    }
}

public final class AWSKMSBackend: KeyWrapBackend {
    public static let kind = "aws-kms"
    public static let blobVersion: UInt8 = 1
    static let macLabel = Array("TG-AWSKMS-1".utf8) + [0]
    static let maximumRootKeyLength = 4096   // KMS Encrypt accepts up to 4096 bytes of plaintext

    public let configuration: AWSKMSBackendConfig
    let client: AWSKMSClient
    private let stats = Mutex(Counters())
    /// The key id or ARN an alias `key_id` resolved to (DescribeKey, once): tag calls take no alias.
    let anchorKey = Mutex<String?>(nil)

    struct Counters {
        var wraps = 0
        var unwraps = 0
        var healthChecks = 0
    }

    /// From `BackendConfiguration.options` (see `AWSKMSBackendConfig.init(options:)`). Kind must be "aws-kms".
    /// Makes no network call.
    public convenience init(configuration: BackendConfiguration) throws {
        self.init(configuration: try AWSKMSBackendConfig(options: configuration.options(forKind: Self.kind)))
    }

    public convenience init(configuration: AWSKMSBackendConfig) {
        let http = HTTPClient(configuration: configuration.http)
        self.init(configuration: configuration,
                  client: AWSKMSClient(endpoint: configuration.endpoint, region: configuration.region, http: http,
                                       credentials: AWSCredentialsProvider(profile: configuration.profile)))
    }

    init(configuration: AWSKMSBackendConfig, client: AWSKMSClient) {
        self.configuration = configuration
        self.client = client
    }

    /// The same backend (endpoint, credentials, HTTP client) wrapping under another key — what a rotation to a
    /// new key passes to `TokenVault.rewrapRootKey(using:backend:)`.
    public func withKeyID(_ keyID: String) throws -> AWSKMSBackend {
        let arn = try AWSKMSBackendConfig.validateKeyID(keyID)
        if let r = arn?.region, r != configuration.region {
            throw KeyWrapError.misconfigured("aws-kms backend: key \(keyID) is in region \(r), the backend in \(configuration.region)")
        }
        var c = configuration
        c.keyID = keyID
        return AWSKMSBackend(configuration: c, client: client)
    }

    /// kind "aws-kms"; keyID "region=<region>" (stable across key rotation, checked by TokenVault at login);
    /// keyVersion "key=<key_id as configured>" (what new wraps use).
    public var descriptor: BackendDescriptor {
        BackendDescriptor(kind: Self.kind, keyID: "region=\(configuration.region)", keyVersion: "key=\(configuration.keyID)")
    }

    /// Counters since creation or `resetStatistics()`.
    public var statistics: (wraps: Int, unwraps: Int, healthChecks: Int, kms: AWSKMSStatistics) {
        let s = stats.withLock { $0 }
        return (s.wraps, s.unwraps, s.healthChecks, client.statistics)
    }

    public func resetStatistics() {
        stats.withLock { $0 = Counters() }
        client.resetStatistics()
    }

    // MARK: KeyWrapBackend

    public func wrap(_ rootKey: SecretBytes, context: WrapContext) throws -> [UInt8] {
        guard rootKey.count > 0, rootKey.count <= Self.maximumRootKeyLength else {
            throw KeyWrapError.misconfigured("root key length \(rootKey.count) not supported by aws-kms (1...\(Self.maximumRootKeyLength))")
        }
        stats.withLock { $0.wraps += 1 }
        // Sized so the buffer holding the base64 root key never reallocates (no stray partial copies).
        var writer = JSONWriter(capacity: 512 + 2 * configuration.keyID.utf8.count + 2 * rootKey.count)
        writer.beginObject()
        writer.key("KeyId"); writer.string(configuration.keyID)
        writer.key("Plaintext"); writer.base64String(rootKey)
        writer.key("EncryptionContext"); writer.stringMap(context.encryptionContext)
        writer.endObject()
        var body = writer.take()
        let result = try client.call("Encrypt", body: &body, key: configuration.keyID)
        guard let ciphertextText = result["CiphertextBlob"]?.text,
              let ciphertext = Base64.decode(ciphertextText, alphabet: .either), !ciphertext.isEmpty, ciphertext.count <= 6144 else {
            throw KeyWrapError.unreachable("AWS KMS Encrypt with key \(configuration.keyID): response without a valid CiphertextBlob")
        }
        guard let keyARN = result["KeyId"]?.text, keyARN.hasPrefix("arn:"), keyARN.utf8.count <= 2048 else {
            throw KeyWrapError.unreachable("AWS KMS Encrypt with key \(configuration.keyID): response without the key ARN")
        }
        if let arn = AWSKMSBackendConfig.parseARN(keyARN), !Self.refersTo(configured: configuration.keyID, arn: arn) {
            throw KeyWrapError.integrityFailure
        }
        var frame = BlobWriter(version: Self.blobVersion)
        try frame.append(field: Array(keyARN.utf8))
        try frame.append(field: ciphertext)
        return try frame.sealed(label: Self.macLabel, rootKey: rootKey, context: context)
    }

    public func unwrap(_ blob: [UInt8], context: WrapContext) throws -> SecretBytes {
        guard let parsed = Self.parse(blob) else { throw KeyWrapError.integrityFailure }
        stats.withLock { $0.unwraps += 1 }
        var writer = JSONWriter(capacity: 512)
        writer.beginObject()
        writer.key("CiphertextBlob"); writer.base64String(parsed.ciphertext)
        writer.key("KeyId"); writer.string(parsed.keyARN)
        writer.key("EncryptionContext"); writer.stringMap(context.encryptionContext)
        writer.endObject()
        var body = writer.take()
        let result = try client.call("Decrypt", body: &body, key: parsed.keyARN, secretMembers: ["Plaintext"])
        guard result["KeyId"]?.text == parsed.keyARN else {
            throw KeyWrapError.integrityFailure
        }
        guard let encoded = result["Plaintext"]?.secret, let root = Base64.decodeSecret(encoded, alphabet: .either),
              root.count > 0, root.count <= Self.maximumRootKeyLength else {
            throw KeyWrapError.unreachable("AWS KMS Decrypt with key \(parsed.keyARN): response without a valid Plaintext")
        }
        guard try parsed.frame.macVerifies(label: Self.macLabel, rootKey: root, context: context) else {
            throw KeyWrapError.integrityFailure
        }
        return root
    }

    /// An Encrypt + Decrypt round trip of a random 32-byte value under a throw-away context: needs only
    /// kms:Encrypt and kms:Decrypt on the key (the least-privilege policy), and proves both work.
    /// Throws the first failure (`healthReport().error`).
    public func checkHealth() throws {
        let report = healthReport()
        if let error = report.error { throw error }
    }

    /// What `tg-pkcs11 backend check` prints for this backend: configuration, where the credentials came from
    /// (access key id masked), Encrypt and Decrypt of a random test value with timings. Never a secret.
    public func healthReport() -> AWSKMSHealthReport {
        stats.withLock { $0.healthChecks += 1 }
        var report = AWSKMSHealthReport(region: configuration.region, endpoint: configuration.endpoint, keyID: configuration.keyID)
        func fail(_ name: String, _ error: Error) {
            let typed = (error as? KeyWrapError) ?? .unreachable("\(error)")
            report.checks.append(AWSKMSHealthCheck(name: name, passed: false, detail: "\(typed)"))
            report.error = typed
        }
        do {
            let creds = try client.credentials.resolve()
            report.credentialsSource = creds.source
            let id = creds.accessKeyID
            report.checks.append(AWSKMSHealthCheck(name: "credentials", passed: true,
                detail: "\(creds.source), access key ****\(id.suffix(4))\(creds.sessionToken == nil ? "" : ", session")"
                    + (creds.expiration.map { ", expires \(AWSTime.iso8601($0))" } ?? "")))
        } catch {
            fail("credentials", error)
            return report
        }
        let probe: SecretBytes
        let context: WrapContext
        do {
            probe = try Self.random(32)
            context = WrapContext(tokenSerial: "health-check", tokenUUID: Hex.encode(try Self.random(8).unsafeCopyToArray()))
        } catch {
            fail("random", error)
            return report
        }
        let blob: [UInt8]
        do {
            var produced: [UInt8] = []
            let t = try MonotonicInstant.measure { produced = try wrap(probe, context: context) }
            blob = produced
            report.checks.append(AWSKMSHealthCheck(name: "kms:Encrypt", passed: true,
                detail: "key \(Self.parse(blob)?.keyARN ?? "?") in \(t.milliseconds) ms"))
        } catch {
            fail("kms:Encrypt", error)
            return report
        }
        do {
            var back: SecretBytes?
            let t = try MonotonicInstant.measure { back = try unwrap(blob, context: context) }
            guard back == probe else { throw KeyWrapError.integrityFailure }
            report.checks.append(AWSKMSHealthCheck(name: "kms:Decrypt", passed: true, detail: "round trip in \(t.milliseconds) ms"))
        } catch {
            fail("kms:Decrypt", error)
        }
        return report
    }

    // MARK: Blob

    struct Parsed {
        var keyARN: String
        var ciphertext: [UInt8]
        var frame: BlobReader
    }

    static func parse(_ blob: [UInt8]) -> Parsed? {
        guard var frame = BlobReader(blob, version: blobVersion, macLength: BlobMAC.length),
              let arn = frame.textField(), let ciphertext = frame.field(), frame.isAtEnd, arn.hasPrefix("arn:") else { return nil }
        return Parsed(keyARN: arn, ciphertext: Array(ciphertext), frame: frame)
    }

    static func random(_ n: Int) throws -> SecretBytes {
        do { return try SecretBytes.random(count: n) } catch {
            throw KeyWrapError.misconfigured("random generator unavailable: \(error)")
        }
    }

    /// Whether the key ARN KMS used can be the configured key (a key id or key ARN must match; an alias
    /// resolves to any key of the same account and region, so only those are compared).
    static func refersTo(configured: String, arn: AWSKMSBackendConfig.ARN) -> Bool {
        if let c = AWSKMSBackendConfig.parseARN(configured) {
            if c.resource.hasPrefix("alias/") { return c.region == arn.region && c.account == arn.account }
            return c == arn
        }
        if configured.hasPrefix("alias/") { return true }
        return arn.resource == "key/\(configured)"
    }
}
