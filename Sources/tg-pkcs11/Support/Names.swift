// Human names for flags, key types and mechanisms in listings.
import CP11Kit

enum Names {
    static let tokenFlags: [(CK_FLAGS, String)] = [
        (0x0000_0001, "rng"),
        (0x0000_0002, "write-protected"),
        (0x0000_0004, "login-required"),
        (0x0000_0008, "user-pin-initialized"),
        (0x0000_0020, "restore-key-not-needed"),
        (0x0000_0040, "clock-on-token"),
        (0x0000_0100, "protected-authentication-path"),
        (0x0000_0200, "dual-crypto-operations"),
        (0x0000_0400, "token-initialized"),
        (0x0000_0800, "secondary-authentication"),
        (0x0001_0000, "user-pin-count-low"),
        (0x0002_0000, "user-pin-final-try"),
        (0x0004_0000, "user-pin-locked"),
        (0x0008_0000, "user-pin-to-be-changed"),
        (0x0010_0000, "so-pin-count-low"),
        (0x0020_0000, "so-pin-final-try"),
        (0x0040_0000, "so-pin-locked"),
        (0x0080_0000, "so-pin-to-be-changed"),
        (0x0100_0000, "error-state"),
    ]

    static let slotFlags: [(CK_FLAGS, String)] = [
        (0x1, "token-present"),
        (0x2, "removable-device"),
        (0x4, "hardware-slot"),
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
        case 0x0000_0010: return "GENERIC_SECRET"
        case 0x0000_0013: return "DES3"
        case 0x0000_001F: return "AES"
        case 0x0000_0000: return "RSA"
        case 0x0000_0003: return "EC"
        default: return "0x" + String(type, radix: 16)
        }
    }

    static func mechanism(_ type: CK_MECHANISM_TYPE) -> String {
        switch type {
        case CK_MECHANISM_TYPE(CKM_TG_N2HE_KEY_GEN): return "CKM_TG_N2HE_KEY_GEN"
        case CK_MECHANISM_TYPE(CKM_TG_N2HE_LWE1): return "CKM_TG_N2HE_LWE1"
        case CK_MECHANISM_TYPE(CKM_TG_N2HE_LWE2): return "CKM_TG_N2HE_LWE2"
        case 0x0000_1080: return "CKM_AES_KEY_GEN"
        case 0x0000_1081: return "CKM_AES_ECB"
        case 0x0000_1082: return "CKM_AES_CBC"
        case 0x0000_1085: return "CKM_AES_CBC_PAD"
        case 0x0000_1087: return "CKM_AES_GCM"
        case 0x0000_2109: return "CKM_AES_KEY_WRAP"
        case 0x0000_210A: return "CKM_AES_KEY_WRAP_PAD"
        case 0x0000_0250: return "CKM_SHA256"
        case 0x0000_0251: return "CKM_SHA256_HMAC"
        case 0x0000_0350: return "CKM_GENERIC_SECRET_KEY_GEN"
        default: return "0x" + String(type, radix: 16)
        }
    }
}
