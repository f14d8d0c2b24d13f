/*
 * tensorguard-pkcs11.h — public vendor ABI of TensorGuard PKCS#11.
 *
 * Include after <pkcs11.h>. These values are a public contract (DESIGN.md §2):
 * vendor namespace 0xD4470000 = CKx_VENDOR_DEFINED | "TG".
 */
#ifndef TENSORGUARD_PKCS11_H
#define TENSORGUARD_PKCS11_H

/* Key type of an N2HE secret key (object class CKO_SECRET_KEY). */
#define CKK_TG_N2HE                 0xD4470001UL

/* Mechanisms. None takes a parameter (pParameter NULL, ulParameterLen 0). */
#define CKM_TG_N2HE_KEY_GEN         0xD4470001UL /* C_GenerateKey: fresh ternary key        */
#define CKM_TG_N2HE_LWE1            0xD4470002UL /* C_Encrypt/C_Decrypt, LWE1 format         */
#define CKM_TG_N2HE_LWE2            0xD4470003UL /* C_Encrypt/C_Decrypt, seeded LWE2 format;
                                                    C_Decrypt also reads the seeded sum (LWS1) */

/* Attributes of CKK_TG_N2HE keys, all CK_ULONG, all fixed at creation. */
#define CKA_TG_N2HE_DIMENSION       0xD4470001UL /* n (default 1024)                         */
#define CKA_TG_N2HE_MODULUS_BITS    0xD4470002UL /* log2 q: 32 (default) or 48               */
#define CKA_TG_N2HE_PLAINTEXT_BITS  0xD4470003UL /* log2 t (default 16)                      */
#define CKA_TG_N2HE_NOISE_MILLI     0xD4470004UL /* Skellam mu x 1000 (default 5120)         */
#define CKA_TG_N2HE_SECURITY_BITS   0xD4470005UL /* read-only: HE-standard estimate          */

/* Attributes of every secret key, CK_ULONG, read-only (token policies, docs/policies.md). */
#define CKA_TG_CREATED              0xD4470006UL /* creation time, seconds since 1970 UTC    */
#define CKA_TG_USE_COUNT            0xD4470007UL /* C_EncryptInit/C_SignInit uses counted
                                                    while policy max_key_uses is set         */

/* Decryption rule of a CKK_TG_N2HE key (CK_ULONG), fixed at creation; C_SetAttributeValue and C_CopyObject
 * may only tighten it (RAW -> SEEDED_ONCE). Absent in a template: SEEDED_ONCE. See docs/n2he.md. */
#define CKA_TG_N2HE_DECRYPT_RULE    0xD4470008UL
#define CKV_TG_N2HE_SEEDED_ONCE     1UL /* C_Decrypt reads LWE2 and seeded sums only; each seed once per key;
                                           rounding smudged with fresh noise (the default)             */
#define CKV_TG_N2HE_RAW             2UL /* the SDK's behaviour: LWE1 accepted, seeds reusable. Any PIN
                                           holder can recover such a key: opt-in, audited, warned about */

#endif /* TENSORGUARD_PKCS11_H */
