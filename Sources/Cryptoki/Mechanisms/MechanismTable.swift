// Every mechanism this token offers, with its C_GetMechanismInfo answer. Key sizes: bytes for AES (PKCS#11 2.40
// convention), bits for generic secret and HMAC keys, the lattice dimension n for the N2HE mechanisms.
import CP11Kit

enum Mechanisms {
    static let genericSecretMaxBytes = 512

    static let table: [(CK_MECHANISM_TYPE, MechanismInfo)] = {
        let aes: (CK_ULONG, CK_ULONG) = (16, 32)
        let hmacBits: (CK_ULONG, CK_ULONG) = (8, CK_ULONG(genericSecretMaxBytes * 8))
        let n2he: (CK_ULONG, CK_ULONG) = (1, 65536)
        func info(_ r: (CK_ULONG, CK_ULONG), _ f: CK_FLAGS) -> MechanismInfo {
            MechanismInfo(minKeySize: r.0, maxKeySize: r.1, flags: f)
        }
        let ed: CK_FLAGS = CKF_ENCRYPT | CKF_DECRYPT
        return [
            (CKM_AES_KEY_GEN, info(aes, CKF_GENERATE)),
            (CKM_AES_ECB, info(aes, ed)),
            (CKM_AES_CBC, info(aes, ed)),
            (CKM_AES_CBC_PAD, info(aes, ed)),
            (CKM_AES_GCM, info(aes, ed)),
            // Wrap/unwrap only: as C_Encrypt/C_Decrypt they would turn a wrapped key into its value and a chosen
            // value into a wrapped key (docs/threat-model.md).
            (CKM_AES_KEY_WRAP, info(aes, CKF_WRAP | CKF_UNWRAP)),
            (CKM_AES_KEY_WRAP_PAD, info(aes, CKF_WRAP | CKF_UNWRAP)),
            (CKM_GENERIC_SECRET_KEY_GEN, info(hmacBits, CKF_GENERATE)),
            (CKM_SHA_1, info((0, 0), CKF_DIGEST)),
            (CKM_SHA256, info((0, 0), CKF_DIGEST)),
            (CKM_SHA384, info((0, 0), CKF_DIGEST)),
            (CKM_SHA512, info((0, 0), CKF_DIGEST)),
            (CKM_SHA_1_HMAC, info(hmacBits, CKF_SIGN | CKF_VERIFY)),
            (CKM_SHA256_HMAC, info(hmacBits, CKF_SIGN | CKF_VERIFY)),
            (CKM_SHA384_HMAC, info(hmacBits, CKF_SIGN | CKF_VERIFY)),
            (CKM_SHA512_HMAC, info(hmacBits, CKF_SIGN | CKF_VERIFY)),
            (CK.mechN2HEKeyGen, info(n2he, CKF_GENERATE)),
            (CK.mechN2HELWE1, info(n2he, ed)),
            (CK.mechN2HELWE2, info(n2he, ed)),
        ]
    }()

    static let byType: [CK_MECHANISM_TYPE: MechanismInfo] = {
        var d: [CK_MECHANISM_TYPE: MechanismInfo] = [:]
        for (t, i) in table { d[t] = i }
        return d
    }()

    static var list: [CK_MECHANISM_TYPE] { table.map { $0.0 } }

    static func info(_ type: CK_MECHANISM_TYPE) throws -> MechanismInfo {
        guard let i = byType[type] else { throw ckr(CKR_MECHANISM_INVALID) }
        return i
    }

    /// The mechanism exists and supports `flag` (else CKR_MECHANISM_INVALID).
    static func require(_ type: CK_MECHANISM_TYPE, _ flag: CK_FLAGS) throws {
        guard let i = byType[type], i.flags & flag != 0 else { throw ckr(CKR_MECHANISM_INVALID) }
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
