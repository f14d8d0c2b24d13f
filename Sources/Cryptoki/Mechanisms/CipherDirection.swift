import CP11Kit
import CryptoCore

enum CipherDirection { case encrypt, decrypt }

extension CipherDirection {
    var lengthError: CK_RV { self == .encrypt ? CKR_DATA_LEN_RANGE : CKR_ENCRYPTED_DATA_LEN_RANGE }
    var cryptoDirection: SymmetricCipher.Direction { self == .encrypt ? .encrypt : .decrypt }
}
