import CryptoCore
import Synchronization

/// The result of a successful login: the unwrapped root key and the PIN-opened envelope key, both secret and
/// zeroised when the last reference goes (logout, C_Finalize, fork handler: drop it).
///
/// Sealing / unsealing of object attributes uses the per-object key
/// `HKDF-SHA-256(ikm: root, salt: "TG-OBJECT-KEY-1", info: uniqueID, 32)`, AES-256-GCM with a random 96-bit
/// nonce and AAD `0x01 || u16be(len uid) || uid || u64be(type)`; see docs/storage-format.md.
public final class SessionKeys: Sendable {
    /// Role that logged in.
    public let role: Role
    /// The token identity these keys belong to (stale after another process re-initialises the token).
    public let tokenUUID: String
    /// The role's consecutive wrong-PIN attempts this login cleared from the retry counter: the login's audit
    /// record says how many, so records of failed attempts deleted from the log are noticed (docs/audit.md).
    public let priorFailedAttempts: Int
    let rootKey: SecretBytes
    /// The key every PIN envelope seals; it seals the backend blob (`token.wrapped_root`).
    let envelopeKey: SecretBytes
    /// Derived per-object keys (bounded; zeroised when evicted or when the session keys go).
    private let objectKeys = Mutex<[String: SecretBytes]>([:])
    /// `StoreAuthentication`'s key, derived on first use.
    let authenticationKey = Mutex<SecretBytes?>(nil)
    static let objectKeyCacheLimit = 4096

    static let sealedVersion: UInt8 = 1
    static let nonceLength = 12
    static let tagLength = 16
    static let objectKeySalt = Array("TG-OBJECT-KEY-1".utf8)

    init(role: Role, tokenUUID: String, rootKey: SecretBytes, envelopeKey: SecretBytes, priorFailedAttempts: Int = 0) {
        self.role = role
        self.tokenUUID = tokenUUID
        self.priorFailedAttempts = priorFailedAttempts
        self.rootKey = rootKey
        self.envelopeKey = envelopeKey
    }

    func objectKey(_ uniqueID: String) throws -> SecretBytes {
        if let k = objectKeys.withLock({ $0[uniqueID] }) { return k }
        let k: SecretBytes
        do {
            k = try KDF.hkdfSHA256(ikm: rootKey, salt: Self.objectKeySalt, info: Array(uniqueID.utf8), length: 32)
        } catch let e as CryptoError {
            throw StoreError.crypto(e)
        }
        objectKeys.withLock { cache in
            if cache.count >= Self.objectKeyCacheLimit { cache.removeAll() }
            cache[uniqueID] = k
        }
        return k
    }

    static func aad(uniqueID: String, type: UInt) -> [UInt8] {
        var out: [UInt8] = [sealedVersion]
        RecordCodec.appendField(&out, uniqueID)
        RecordCodec.appendU64(&out, UInt64(type))
        return out
    }

    /// Seals `value` as attribute `type` of object `uniqueID`.
    public func seal(_ value: some ByteView, uniqueID: String, attribute type: UInt) throws -> SealedValue {
        let key = try objectKey(uniqueID)
        do {
            let nonce = try SecureRandom.bytes(Self.nonceLength)
            let ct = try AESGCM.seal(key: key, iv: nonce, plaintext: value, aad: Self.aad(uniqueID: uniqueID, type: type),
                                     tagLength: Self.tagLength)
            return SealedValue(bytes: [Self.sealedVersion] + nonce + ct)
        } catch let e as CryptoError {
            throw StoreError.crypto(e)
        }
    }

    /// Opens a sealed value; a value sealed for another object, attribute or root key → `.integrityFailure`.
    public func unseal(_ sealed: SealedValue, uniqueID: String, attribute type: UInt) throws -> SecretBytes {
        let b = sealed.bytes
        guard b.count >= 1 + Self.nonceLength + Self.tagLength, b[0] == Self.sealedVersion else {
            throw StoreError.integrityFailure
        }
        let key = try objectKey(uniqueID)
        do {
            return try AESGCM.openSecret(key: key, iv: b[1..<(1 + Self.nonceLength)],
                                         ciphertextAndTag: b[(1 + Self.nonceLength)...],
                                         aad: Self.aad(uniqueID: uniqueID, type: type), tagLength: Self.tagLength)
        } catch CryptoError.authenticationFailed {
            throw StoreError.integrityFailure
        } catch let e as CryptoError {
            throw StoreError.crypto(e)
        }
    }
}
