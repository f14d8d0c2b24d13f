// Constants the system header lacks (PKCS#11 3.0) or that do not import into Swift (casts in the macro).
import CP11Kit

enum CK {
    /// CKA_UNIQUE_ID (PKCS#11 3.0 §4.4): token-assigned, read-only.
    static let attrUniqueID: CK_ATTRIBUTE_TYPE = 0x4
    /// CK_UNAVAILABLE_INFORMATION: ~0.
    static let unavailable: CK_ULONG = CK_ULONG.max
    /// CK_EFFECTIVELY_INFINITE.
    static let effectivelyInfinite: CK_ULONG = 0
    /// CKF_ARRAY_ATTRIBUTE.
    static let arrayAttribute: CK_ATTRIBUTE_TYPE = 1 << 30
    static let wrapTemplate: CK_ATTRIBUTE_TYPE = arrayAttribute | 0x211
    static let unwrapTemplate: CK_ATTRIBUTE_TYPE = arrayAttribute | 0x212
    static let deriveTemplate: CK_ATTRIBUTE_TYPE = arrayAttribute | 0x213
    static let allowedMechanisms: CK_ATTRIBUTE_TYPE = arrayAttribute | 0x600

    // Vendor ABI (Include/tensorguard-pkcs11.h), restated as typed values.
    static let keyN2HE: CK_KEY_TYPE = 0xD447_0001
    static let mechN2HEKeyGen: CK_MECHANISM_TYPE = 0xD447_0001
    static let mechN2HELWE1: CK_MECHANISM_TYPE = 0xD447_0002
    static let mechN2HELWE2: CK_MECHANISM_TYPE = 0xD447_0003
    static let attrN2HEDimension: CK_ATTRIBUTE_TYPE = 0xD447_0001
    static let attrN2HEModulusBits: CK_ATTRIBUTE_TYPE = 0xD447_0002
    static let attrN2HEPlaintextBits: CK_ATTRIBUTE_TYPE = 0xD447_0003
    static let attrN2HENoiseMilli: CK_ATTRIBUTE_TYPE = 0xD447_0004
    static let attrN2HESecurityBits: CK_ATTRIBUTE_TYPE = 0xD447_0005
    static let attrN2HEDecryptRule: CK_ATTRIBUTE_TYPE = 0xD447_0008

    /// PIN length limits reported in CK_TOKEN_INFO and enforced on new PINs.
    static let minPINLength = 4
    static let maxPINLength = 255
}

/// Shorthand for throwing a CK_RV.
@inline(__always) func ckr(_ rv: CK_RV) -> CKRError { CKRError(rv) }
