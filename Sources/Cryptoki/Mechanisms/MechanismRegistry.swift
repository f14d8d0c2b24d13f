// The one list of the mechanisms this token offers. C_GetMechanismList/Info, CKA_ALLOWED_MECHANISMS defaults,
// the names in token policies and audit records, the operation each C_*Init builds, and the CLI's names all come
// from `Mechanisms.registry`: adding a mechanism is one entry here plus the operation its kind names.
// Key sizes: bytes for AES (PKCS#11 2.40 convention), bits for generic secret and HMAC keys, the lattice
// dimension n for the N2HE mechanisms. Vendor values come from Include/tensorguard-pkcs11.h (through CP11Kit).
import CP11Kit
import CryptoCore
import N2HE

/// What a mechanism does: which operation a C_*Init builds for it.
enum MechanismKind: Equatable, Sendable {
    case keyGeneration(keyType: CK_KEY_TYPE)
    case aesCipher(AESMode)
    /// Wrap/unwrap only: as C_Encrypt/C_Decrypt they would turn a wrapped key into its value and a chosen value
    /// into a wrapped key (docs/threat-model.md).
    case aesKeyWrap(padded: Bool)
    case n2heCipher(N2HECiphertextFormat)
    case digest(DigestAlgorithm)
    case hmac(DigestAlgorithm)

    enum AESMode: Equatable, Sendable { case ecb, cbc, cbcPad, gcm }
}

struct MechanismEntry: Sendable {
    let type: CK_MECHANISM_TYPE
    /// The PKCS#11 (or vendor header) name, as policies and audit records write it.
    let name: String
    let kind: MechanismKind
    let info: MechanismInfo
}

public enum Mechanisms {
    static let genericSecretMaxBytes = 512

    static let registry: [MechanismEntry] = {
        let aes: (CK_ULONG, CK_ULONG) = (16, 32)
        let hmacBits: (CK_ULONG, CK_ULONG) = (8, CK_ULONG(genericSecretMaxBytes * 8))
        let n2he: (CK_ULONG, CK_ULONG) = (1, 65536)
        let none: (CK_ULONG, CK_ULONG) = (0, 0)
        let ed: CK_FLAGS = CKF_ENCRYPT | CKF_DECRYPT
        func entry(_ type: CK_MECHANISM_TYPE, _ name: String, _ kind: MechanismKind, _ r: (CK_ULONG, CK_ULONG), _ f: CK_FLAGS) -> MechanismEntry {
            MechanismEntry(type: type, name: name, kind: kind, info: MechanismInfo(minKeySize: r.0, maxKeySize: r.1, flags: f))
        }
        return [
            entry(CKM_AES_KEY_GEN, "CKM_AES_KEY_GEN", .keyGeneration(keyType: CKK_AES), aes, CKF_GENERATE),
            entry(CKM_AES_ECB, "CKM_AES_ECB", .aesCipher(.ecb), aes, ed),
            entry(CKM_AES_CBC, "CKM_AES_CBC", .aesCipher(.cbc), aes, ed),
            entry(CKM_AES_CBC_PAD, "CKM_AES_CBC_PAD", .aesCipher(.cbcPad), aes, ed),
            entry(CKM_AES_GCM, "CKM_AES_GCM", .aesCipher(.gcm), aes, ed),
            entry(CKM_AES_KEY_WRAP, "CKM_AES_KEY_WRAP", .aesKeyWrap(padded: false), aes, CKF_WRAP | CKF_UNWRAP),
            entry(CKM_AES_KEY_WRAP_PAD, "CKM_AES_KEY_WRAP_PAD", .aesKeyWrap(padded: true), aes, CKF_WRAP | CKF_UNWRAP),
            entry(CKM_GENERIC_SECRET_KEY_GEN, "CKM_GENERIC_SECRET_KEY_GEN", .keyGeneration(keyType: CKK_GENERIC_SECRET), hmacBits, CKF_GENERATE),
            entry(CKM_SHA_1, "CKM_SHA_1", .digest(.sha1), none, CKF_DIGEST),
            entry(CKM_SHA256, "CKM_SHA256", .digest(.sha256), none, CKF_DIGEST),
            entry(CKM_SHA384, "CKM_SHA384", .digest(.sha384), none, CKF_DIGEST),
            entry(CKM_SHA512, "CKM_SHA512", .digest(.sha512), none, CKF_DIGEST),
            entry(CKM_SHA_1_HMAC, "CKM_SHA_1_HMAC", .hmac(.sha1), hmacBits, CKF_SIGN | CKF_VERIFY),
            entry(CKM_SHA256_HMAC, "CKM_SHA256_HMAC", .hmac(.sha256), hmacBits, CKF_SIGN | CKF_VERIFY),
            entry(CKM_SHA384_HMAC, "CKM_SHA384_HMAC", .hmac(.sha384), hmacBits, CKF_SIGN | CKF_VERIFY),
            entry(CKM_SHA512_HMAC, "CKM_SHA512_HMAC", .hmac(.sha512), hmacBits, CKF_SIGN | CKF_VERIFY),
            entry(CK.mechN2HEKeyGen, "CKM_TG_N2HE_KEY_GEN", .keyGeneration(keyType: CK.keyN2HE), n2he, CKF_GENERATE),
            entry(CK.mechN2HELWE1, "CKM_TG_N2HE_LWE1", .n2heCipher(.lwe1), n2he, ed),
            entry(CK.mechN2HELWE2, "CKM_TG_N2HE_LWE2", .n2heCipher(.lwe2), n2he, ed),
        ]
    }()

    static let byType: [CK_MECHANISM_TYPE: MechanismEntry] = {
        var d: [CK_MECHANISM_TYPE: MechanismEntry] = [:]
        for e in registry { d[e.type] = e }
        return d
    }()

    static let byName: [String: CK_MECHANISM_TYPE] = {
        var d: [String: CK_MECHANISM_TYPE] = [:]
        for e in registry { d[e.name] = e.type }
        return d
    }()

    static var list: [CK_MECHANISM_TYPE] { registry.map(\.type) }

    static func info(_ type: CK_MECHANISM_TYPE) throws -> MechanismInfo {
        guard let e = byType[type] else { throw ckr(CKR_MECHANISM_INVALID) }
        return e.info
    }

    /// The entry of a mechanism that supports `flag` (else CKR_MECHANISM_INVALID).
    @discardableResult
    static func require(_ type: CK_MECHANISM_TYPE, _ flag: CK_FLAGS) throws -> MechanismEntry {
        guard let e = byType[type], e.info.flags & flag != 0 else { throw ckr(CKR_MECHANISM_INVALID) }
        return e
    }

    /// The name of a mechanism this token offers, else its number in hex ("0x1087"): for logs, audit records,
    /// `tg-pkcs11` listings.
    public static func name(_ type: CK_MECHANISM_TYPE) -> String {
        byType[type]?.name ?? "0x" + String(type, radix: 16)
    }

    /// A name ("CKM_AES_GCM", any case) or a number ("0x1087", "4231") of a mechanism the module offers; nil
    /// otherwise. What token policies' `allowed_mechanisms` accept.
    public static func parse(_ text: String) -> CK_MECHANISM_TYPE? {
        let value: CK_MECHANISM_TYPE?
        if let v = byName[text.uppercased()] {
            value = v
        } else if text.lowercased().hasPrefix("0x") {
            value = CK_MECHANISM_TYPE(text.dropFirst(2), radix: 16)
        } else {
            value = CK_MECHANISM_TYPE(text, radix: 10)
        }
        guard let value, byType[value] != nil else { return nil }
        return value
    }

    /// Parameter-less mechanisms accept `.none` or an empty byte parameter.
    static func requireNoParameter(_ m: Mechanism) throws {
        switch m.parameter {
        case .none: return
        case .bytes(let b) where b.isEmpty: return
        default: throw ckr(CKR_MECHANISM_PARAM_INVALID)
        }
    }
}
