// AES key wrap: CKM_AES_KEY_WRAP (RFC 3394, optional 8-byte IV) and CKM_AES_KEY_WRAP_PAD (RFC 5649, optional
// 4-byte IV), for C_WrapKey / C_UnwrapKey only (never C_Encrypt / C_Decrypt: docs/threat-model.md). Through
// CryptoCore.AESKeyWrap.
import CP11Kit
import CryptoCore

enum KeyWrapMechanism {
    /// (padded, iv) for a key-wrap mechanism.
    static func parameters(_ m: Mechanism, entry: MechanismEntry) throws -> (padded: Bool, iv: [UInt8]?) {
        guard case .aesKeyWrap(let padded) = entry.kind else { throw ckr(CKR_MECHANISM_INVALID) }
        switch m.parameter {
        case .none: return (padded, nil)
        case .bytes(let b) where b.isEmpty: return (padded, nil)
        case .bytes(let b) where b.count == (padded ? 4 : 8): return (padded, b)
        default: throw ckr(CKR_MECHANISM_PARAM_INVALID)
        }
    }
}
