import CP11Kit
import CryptoCore

enum CipherDirection { case encrypt, decrypt }

extension CipherDirection {
    var lengthError: CK_RV { self == .encrypt ? CKR_DATA_LEN_RANGE : CKR_ENCRYPTED_DATA_LEN_RANGE }
    var cryptoDirection: SymmetricCipher.Direction { self == .encrypt ? .encrypt : .decrypt }

    /// CryptoCore failures during an operation → CK_RV.
    func map(_ error: any Error, _ what: String) -> CKRError {
        switch error {
        case let e as CKRError: return e
        case let e as CryptoError:
            switch e {
            case .invalidInputLength, .lengthOverflow: return CKRError(lengthError)
            case .invalidPadding, .authenticationFailed, .integrityFailure:
                return CKRError(self == .decrypt ? CKR_ENCRYPTED_DATA_INVALID : CKR_FUNCTION_FAILED)
            case .invalidKeyLength: return CKRError(CKR_KEY_SIZE_RANGE)
            case .invalidIVLength, .invalidTagLength: return CKRError(CKR_MECHANISM_PARAM_INVALID)
            default: return ErrorMap.wrap(e, context: what)
            }
        default: return ErrorMap.wrap(error, context: what)
        }
    }
}
