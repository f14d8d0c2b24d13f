// AES: key generation (CKM_AES_KEY_GEN) and the ECB / CBC / CBC-PAD / GCM ciphers, all through CryptoCore.
import CP11Kit
import CryptoCore

enum AESMechanism {
    /// The SymmetricCipher mode for an AES mechanism + parameter (CKR_MECHANISM_PARAM_INVALID on a bad one).
    static func mode(_ mode: MechanismKind.AESMode, for m: Mechanism) throws -> SymmetricCipher.Mode {
        switch mode {
        case .ecb:
            try Mechanisms.requireNoParameter(m)
            return .ecb
        case .cbc, .cbcPad:
            guard case .bytes(let iv) = m.parameter, iv.count == 16 else { throw ckr(CKR_MECHANISM_PARAM_INVALID) }
            return mode == .cbc ? .cbc(iv: iv) : .cbcPad(iv: iv)
        case .gcm:
            // CK_GCM_PARAMS: IV 1..256 bytes; tag 32..128 bits in steps of 8 (CryptoCore's 4..16-byte tags).
            guard case .gcm(let iv, let aad, let tagBits) = m.parameter,
                  (1...256).contains(iv.count), tagBits % 8 == 0, (32...128).contains(tagBits) else {
                throw ckr(CKR_MECHANISM_PARAM_INVALID)
            }
            return .gcm(iv: iv, aad: aad, tagLength: Int(tagBits / 8))
        }
    }
}
