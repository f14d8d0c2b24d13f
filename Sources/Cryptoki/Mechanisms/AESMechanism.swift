// AES: key generation (CKM_AES_KEY_GEN) and the ECB / CBC / CBC-PAD / GCM ciphers, all through CryptoCore.
import CP11Kit
import CryptoCore

enum AESMechanism {
    /// The SymmetricCipher mode for an AES mechanism + parameter (CKR_MECHANISM_PARAM_INVALID on a bad one).
    static func mode(for m: Mechanism) throws -> SymmetricCipher.Mode {
        switch m.type {
        case CKM_AES_ECB:
            try Mechanisms.requireNoParameter(m)
            return .ecb
        case CKM_AES_CBC, CKM_AES_CBC_PAD:
            guard case .bytes(let iv) = m.parameter, iv.count == 16 else { throw ckr(CKR_MECHANISM_PARAM_INVALID) }
            return m.type == CKM_AES_CBC ? .cbc(iv: iv) : .cbcPad(iv: iv)
        case CKM_AES_GCM:
            // CK_GCM_PARAMS: IV 1..256 bytes; tag 32..128 bits in steps of 8 (CryptoCore's 4..16-byte tags).
            guard case .gcm(let iv, let aad, let tagBits) = m.parameter,
                  (1...256).contains(iv.count), tagBits % 8 == 0, (32...128).contains(tagBits) else {
                throw ckr(CKR_MECHANISM_PARAM_INVALID)
            }
            return .gcm(iv: iv, aad: aad, tagLength: Int(tagBits / 8))
        default:
            throw ckr(CKR_MECHANISM_INVALID)
        }
    }
}
