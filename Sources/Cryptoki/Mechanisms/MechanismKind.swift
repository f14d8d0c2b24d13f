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
