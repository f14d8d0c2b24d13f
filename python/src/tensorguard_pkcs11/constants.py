"""Vendor values of TensorGuard PKCS#11 (``Include/tensorguard-pkcs11.h``, DESIGN.md §2).

The header is the one source of truth: ``Tests/python/test_constants.py`` parses it and checks that every
``#define`` there has the same value here, and that nothing here is missing from it.
"""
from __future__ import annotations

from typing import Final

# Key type of an N2HE secret key (object class CKO_SECRET_KEY).
CKK_TG_N2HE: Final = 0xD4470001

# Mechanisms. None takes a parameter.
CKM_TG_N2HE_KEY_GEN: Final = 0xD4470001
CKM_TG_N2HE_LWE1: Final = 0xD4470002
CKM_TG_N2HE_LWE2: Final = 0xD4470003  # C_Decrypt also reads the seeded sum (LWS1)

# Attributes of CKK_TG_N2HE keys, all CK_ULONG, fixed at creation.
CKA_TG_N2HE_DIMENSION: Final = 0xD4470001
CKA_TG_N2HE_MODULUS_BITS: Final = 0xD4470002
CKA_TG_N2HE_PLAINTEXT_BITS: Final = 0xD4470003
CKA_TG_N2HE_NOISE_MILLI: Final = 0xD4470004
CKA_TG_N2HE_SECURITY_BITS: Final = 0xD4470005

# Attributes of every secret key, CK_ULONG, read-only.
CKA_TG_CREATED: Final = 0xD4470006
CKA_TG_USE_COUNT: Final = 0xD4470007

# Decryption rule of an N2HE key (docs/n2he.md).
CKA_TG_N2HE_DECRYPT_RULE: Final = 0xD4470008
CKV_TG_N2HE_SEEDED_ONCE: Final = 1
CKV_TG_N2HE_RAW: Final = 2

#: Decryption rules by the names ``tg-pkcs11 key import --decrypt-rule`` uses.
DECRYPT_RULES: Final = {"seeded-once": CKV_TG_N2HE_SEEDED_ONCE, "raw": CKV_TG_N2HE_RAW}

#: Every value above by its header name (the test compares this with the header).
HEADER_VALUES: Final = {
    name: value for name, value in dict(globals()).items()
    if name.startswith(("CKK_TG_", "CKM_TG_", "CKA_TG_", "CKV_TG_"))
}
