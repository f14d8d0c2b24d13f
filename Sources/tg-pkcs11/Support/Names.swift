// Human names for flags, key types and mechanisms in listings; mechanism names are the module's registry's.
import CP11Kit
import Cryptoki

enum Names {
    static let tokenFlags: [(CK_FLAGS, String)] = [
        (CKF_RNG, "rng"),
        (CKF_WRITE_PROTECTED, "write-protected"),
        (CKF_LOGIN_REQUIRED, "login-required"),
        (CKF_USER_PIN_INITIALIZED, "user-pin-initialized"),
        (CKF_RESTORE_KEY_NOT_NEEDED, "restore-key-not-needed"),
        (CKF_CLOCK_ON_TOKEN, "clock-on-token"),
        (CKF_PROTECTED_AUTHENTICATION_PATH, "protected-authentication-path"),
        (CKF_DUAL_CRYPTO_OPERATIONS, "dual-crypto-operations"),
        (CKF_TOKEN_INITIALIZED, "token-initialized"),
        (CKF_SECONDARY_AUTHENTICATION, "secondary-authentication"),
        (CKF_USER_PIN_COUNT_LOW, "user-pin-count-low"),
        (CKF_USER_PIN_FINAL_TRY, "user-pin-final-try"),
        (CKF_USER_PIN_LOCKED, "user-pin-locked"),
        (CKF_USER_PIN_TO_BE_CHANGED, "user-pin-to-be-changed"),
        (CKF_SO_PIN_COUNT_LOW, "so-pin-count-low"),
        (CKF_SO_PIN_FINAL_TRY, "so-pin-final-try"),
        (CKF_SO_PIN_LOCKED, "so-pin-locked"),
        (CKF_SO_PIN_TO_BE_CHANGED, "so-pin-to-be-changed"),
        (0x0100_0000, "error-state"),  // CKF_ERROR_STATE, PKCS#11 3.0: not in p11-kit's header
    ]

    static let slotFlags: [(CK_FLAGS, String)] = [
        (CKF_TOKEN_PRESENT, "token-present"),
        (CKF_REMOVABLE_DEVICE, "removable-device"),
        (CKF_HW_SLOT, "hardware-slot"),
    ]

    static func flags(_ value: CK_FLAGS, _ table: [(CK_FLAGS, String)]) -> [String] {
        var names: [String] = []
        var rest = value
        for (bit, name) in table where value & bit != 0 {
            names.append(name)
            rest &= ~bit
        }
        if rest != 0 { names.append("0x" + String(rest, radix: 16)) }
        return names
    }

    static func keyType(_ type: CK_KEY_TYPE) -> String {
        switch type {
        case CK_KEY_TYPE(CKK_TG_N2HE): return "N2HE"
        case CK_KEY_TYPE(CKK_GENERIC_SECRET): return "GENERIC_SECRET"
        case CK_KEY_TYPE(CKK_DES3): return "DES3"
        case CK_KEY_TYPE(CKK_AES): return "AES"
        case CK_KEY_TYPE(CKK_RSA): return "RSA"
        case CK_KEY_TYPE(CKK_EC): return "EC"
        default: return "0x" + String(type, radix: 16)
        }
    }

    /// The registry's name (Cryptoki/Mechanisms/MechanismRegistry.swift), else the number in hex.
    static func mechanism(_ type: CK_MECHANISM_TYPE) -> String { Mechanisms.name(type) }
}
