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

    // Vendor ABI: the values of Include/tensorguard-pkcs11.h (imported through CP11Kit's shim), typed.
    static let keyN2HE = CK_KEY_TYPE(CKK_TG_N2HE)
    static let mechN2HEKeyGen = CK_MECHANISM_TYPE(CKM_TG_N2HE_KEY_GEN)
    static let mechN2HELWE1 = CK_MECHANISM_TYPE(CKM_TG_N2HE_LWE1)
    static let mechN2HELWE2 = CK_MECHANISM_TYPE(CKM_TG_N2HE_LWE2)
    static let attrN2HEDimension = CK_ATTRIBUTE_TYPE(CKA_TG_N2HE_DIMENSION)
    static let attrN2HEModulusBits = CK_ATTRIBUTE_TYPE(CKA_TG_N2HE_MODULUS_BITS)
    static let attrN2HEPlaintextBits = CK_ATTRIBUTE_TYPE(CKA_TG_N2HE_PLAINTEXT_BITS)
    static let attrN2HENoiseMilli = CK_ATTRIBUTE_TYPE(CKA_TG_N2HE_NOISE_MILLI)
    static let attrN2HESecurityBits = CK_ATTRIBUTE_TYPE(CKA_TG_N2HE_SECURITY_BITS)
    static let attrN2HEDecryptRule = CK_ATTRIBUTE_TYPE(CKA_TG_N2HE_DECRYPT_RULE)
    /// Seconds since 1970-01-01 UTC when the key was created on this token; read-only.
    static let attrKeyCreated = CK_ATTRIBUTE_TYPE(CKA_TG_CREATED)
    /// C_EncryptInit / C_SignInit calls counted while `max_key_uses` is set; read-only.
    static let attrKeyUseCount = CK_ATTRIBUTE_TYPE(CKA_TG_USE_COUNT)

    /// PIN length limits reported in CK_TOKEN_INFO and enforced on new PINs.
    static let minPINLength = 4
    static let maxPINLength = 255
}

/// Shorthand for throwing a CK_RV.
@inline(__always) func ckr(_ rv: CK_RV) -> CKRError { CKRError(rv) }
