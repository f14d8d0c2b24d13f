import CryptoCore

/// What a backend is, as recorded in the token database and shown to operators.
public struct BackendDescriptor: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// Backend kind as named in the configuration: "local", later "pkcs11", "aws-kms", …
    public var kind: String
    /// The KEK identifier inside the backend (HSM key label, KMS key ARN / resource name). "" for local.
    public var keyID: String
    /// The KEK version that produced the blob ("" when the backend has no versions).
    public var keyVersion: String

    public init(kind: String, keyID: String = "", keyVersion: String = "") {
        self.kind = kind
        self.keyID = keyID
        self.keyVersion = keyVersion
    }

    public var description: String {
        keyVersion.isEmpty ? "\(kind)(\(keyID))" : "\(kind)(\(keyID)@\(keyVersion))"
    }
}

/// The identity a wrapped root key is bound to (AAD for AEAD backends, EncryptionContext for AWS KMS,
/// additionalAuthenticatedData for GCP, …). A blob produced for one token does not unwrap for another.
public struct WrapContext: Sendable, Equatable, Hashable {
    /// The token's serial number (16 characters, CK_TOKEN_INFO.serialNumber).
    public var tokenSerial: String
    /// The token's random identity (hex), created at C_InitToken.
    public var tokenUUID: String

    public init(tokenSerial: String, tokenUUID: String) {
        self.tokenSerial = tokenSerial
        self.tokenUUID = tokenUUID
    }

    /// Canonical byte encoding for use as AAD:
    /// `"TG-WRAP-CTX-1" || 0x00 || u16be(len serial) || serial || u16be(len uuid) || uuid` (UTF-8).
    public var aad: [UInt8] {
        var out = Array("TG-WRAP-CTX-1".utf8)
        out.append(0)
        for field in [tokenSerial, tokenUUID] {
            let bytes = Array(field.utf8.prefix(Int(UInt16.max)))
            out.append(UInt8(truncatingIfNeeded: bytes.count >> 8))
            out.append(UInt8(truncatingIfNeeded: bytes.count))
            out.append(contentsOf: bytes)
        }
        return out
    }

    /// Key/value form for backends that take a string map (AWS KMS EncryptionContext).
    public var encryptionContext: [String: String] {
        ["tg-token-serial": tokenSerial, "tg-token-uuid": tokenUUID]
    }
}

/// A key-wrapping backend (DESIGN §5): protects the token's 256-bit root key. Backends never see objects.
///
/// Implementations must be safe to call from several threads, must not start background threads, and must
/// bound every network/HSM call by a timeout. Errors are `KeyWrapError`; messages never contain secrets.
public protocol KeyWrapBackend: Sendable {
    /// Kind, key id, key version. For backends with rotating keys, `keyVersion` is the version new wraps use.
    var descriptor: BackendDescriptor { get }
    /// Wraps the root key, binding the result to `context`. The blob is opaque to the caller.
    func wrap(_ rootKey: SecretBytes, context: WrapContext) throws -> [UInt8]
    /// Unwraps a blob produced by `wrap` with an equal `context`; otherwise `.integrityFailure`.
    func unwrap(_ blob: [UInt8], context: WrapContext) throws -> SecretBytes
    /// Cheap reachability / configuration check (for C_GetTokenInfo / operators). Throws on a problem.
    func checkHealth() throws
}

/// A backend that also keeps a token's anchor (docs/storage-format.md §Rollback): a small value — the token's
/// generation, state MAC and retry counters — that whoever writes the token's files cannot roll back without the
/// backend's credentials. The value is opaque to the backend.
public protocol AnchorHoldingBackend: KeyWrapBackend {
    /// The values kept for `tokenUUID`: none, one, or — after a replacement cut short — the old and the new one.
    func readAnchor(tokenUUID: String) throws -> [[UInt8]]
    /// Replaces the values kept for `tokenUUID` by `update(current values)`, in one backend session: the new value
    /// is stored before the old ones are removed.
    func updateAnchor(tokenUUID: String, _ update: ([[UInt8]]) -> [UInt8]) throws
}

/// Backend failures. Their CK_RV mapping is `ErrorMap.rv(_: KeyWrapError)` in Cryptoki/Support/ErrorMapping.swift.
public enum KeyWrapError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The backend could not be reached (network, timeout, HSM not responding). Message: what was tried.
    case unreachable(String)
    /// The backend device / key has been removed or disabled.
    case removed(String)
    /// The backend refused our credentials.
    case authenticationFailed(String)
    /// The configured key does not exist in the backend.
    case keyNotFound(String)
    /// The backend's policy forbids the operation.
    case policyViolation(String)
    /// The blob is malformed, tampered, or bound to another context.
    case integrityFailure
    /// The backend configuration is invalid (unknown kind, missing option, unreadable secret file, …).
    case misconfigured(String)

    public var description: String {
        switch self {
        case .unreachable(let m): return "key backend unreachable: \(m)"
        case .removed(let m): return "key backend removed: \(m)"
        case .authenticationFailed(let m): return "key backend refused credentials: \(m)"
        case .keyNotFound(let m): return "key backend key not found: \(m)"
        case .policyViolation(let m): return "key backend policy violation: \(m)"
        case .integrityFailure: return "wrapped root key failed its integrity check"
        case .misconfigured(let m): return "key backend misconfigured: \(m)"
        }
    }
}
