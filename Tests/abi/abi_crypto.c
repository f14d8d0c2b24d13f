/*
 * abi_crypto.c — cryptographic operations: calls without an Init and on bogus sessions, AES-GCM and N2HE
 * encrypt / decrypt, digest, sign / verify, key wrap / unwrap, random, and the entry points the module
 * does not support.
 */
#include "abi_sweep.h"

/* ------------------------------------------------------------------------------------------------ */
/* Cryptographic operations                                                                         */

void test_no_operation(CK_SESSION_HANDLE s) {
    section = "operations not initialised";
    const CK_RV NI = CKR_OPERATION_NOT_INITIALIZED;
    CK_BYTE in[16] = { 0 }, out[64];
    CK_ULONG len = sizeof out;
    EXPECT(f->C_Encrypt(s, in, 16, out, &len), NI);
    EXPECT(f->C_EncryptUpdate(s, in, 16, out, &len), NI);
    EXPECT(f->C_EncryptFinal(s, out, &len), NI);
    EXPECT(f->C_Decrypt(s, in, 16, out, &len), NI);
    EXPECT(f->C_DecryptUpdate(s, in, 16, out, &len), NI);
    EXPECT(f->C_DecryptFinal(s, out, &len), NI);
    EXPECT(f->C_Digest(s, in, 16, out, &len), NI);
    EXPECT(f->C_DigestUpdate(s, in, 16), NI);
    EXPECT(f->C_DigestKey(s, aes_key), NI);
    EXPECT(f->C_DigestFinal(s, out, &len), NI);
    EXPECT(f->C_Sign(s, in, 16, out, &len), NI);
    EXPECT(f->C_SignUpdate(s, in, 16), NI);
    EXPECT(f->C_SignFinal(s, out, &len), NI);
    EXPECT(f->C_Verify(s, in, 16, out, 16), NI);
    EXPECT(f->C_VerifyUpdate(s, in, 16), NI);
    EXPECT(f->C_VerifyFinal(s, out, 16), NI);

    /* Bogus sessions on every operation call (with well-formed mechanisms: parameters are decoded
     * before the session is looked up). */
    CK_BYTE iv[12] = { 0 };
    CK_GCM_PARAMS params = { iv, sizeof iv, 96, NULL, 0, 128 };
    CK_MECHANISM gcm = { CKM_AES_GCM, &params, sizeof params };
    CK_MECHANISM sha = { CKM_SHA256, NULL, 0 };
    for (int i = 0; i < BOGUS_COUNT; i++) {
        CK_SESSION_HANDLE b = bogus_handles[i];
        const CK_RV SH = CKR_SESSION_HANDLE_INVALID;
        len = sizeof out;
        EXPECT(f->C_EncryptInit(b, &gcm, aes_key), SH);
        EXPECT(f->C_Encrypt(b, in, 16, out, &len), SH);
        EXPECT(f->C_EncryptUpdate(b, in, 16, out, &len), SH);
        EXPECT(f->C_EncryptFinal(b, out, &len), SH);
        EXPECT(f->C_DecryptInit(b, &gcm, aes_key), SH);
        EXPECT(f->C_Decrypt(b, in, 16, out, &len), SH);
        EXPECT(f->C_DecryptUpdate(b, in, 16, out, &len), SH);
        EXPECT(f->C_DecryptFinal(b, out, &len), SH);
        EXPECT(f->C_DigestInit(b, &sha), SH);
        EXPECT(f->C_Digest(b, in, 16, out, &len), SH);
        EXPECT(f->C_DigestUpdate(b, in, 16), SH);
        EXPECT(f->C_DigestKey(b, aes_key), SH);
        EXPECT(f->C_DigestFinal(b, out, &len), SH);
        EXPECT(f->C_SignInit(b, &gcm, aes_key), SH);
        EXPECT(f->C_Sign(b, in, 16, out, &len), SH);
        EXPECT(f->C_SignUpdate(b, in, 16), SH);
        EXPECT(f->C_SignFinal(b, out, &len), SH);
        EXPECT(f->C_VerifyInit(b, &gcm, aes_key), SH);
        EXPECT(f->C_Verify(b, in, 16, out, 16), SH);
        EXPECT(f->C_VerifyUpdate(b, in, 16), SH);
        EXPECT(f->C_VerifyFinal(b, out, 16), SH);
        EXPECT(f->C_WrapKey(b, &gcm, aes_wrapping_key, aes_key, out, &len), SH);
        EXPECT(f->C_SeedRandom(b, in, 16), SH);
        EXPECT(f->C_GenerateRandom(b, out, 16), SH);
        EXPECT(f->C_SessionCancel(b, CKF_ENCRYPT), SH);
    }
}

void test_encrypt(CK_SESSION_HANDLE s) {
    section = "AES-GCM";
    CK_BYTE iv[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
    CK_BYTE aad[4] = { 'a', 'b', 'i', 0 };
    CK_GCM_PARAMS params = { iv, sizeof iv, 96, aad, sizeof aad, 128 };
    CK_MECHANISM gcm = { CKM_AES_GCM, &params, sizeof params };
    CK_BYTE plain[20] = "twenty bytes of text";
    CK_BYTE cipher[64], back[64];
    CK_ULONG len;

    CK_MECHANISM bad_mech = gcm;
    EXPECT(f->C_EncryptInit(s, NULL, aes_key), CKR_ARGUMENTS_BAD);
    bad_mech.ulParameterLen = sizeof params - 8;
    EXPECT(f->C_EncryptInit(s, &bad_mech, aes_key), CKR_MECHANISM_PARAM_INVALID);
    bad_mech.ulParameterLen = ULONG_MAX;
    EXPECT(f->C_EncryptInit(s, &bad_mech, aes_key), CKR_MECHANISM_PARAM_INVALID);
    bad_mech.pParameter = NULL;
    bad_mech.ulParameterLen = sizeof params;
    EXPECT(f->C_EncryptInit(s, &bad_mech, aes_key), CKR_MECHANISM_PARAM_INVALID);
    bad_mech.ulParameterLen = 0;
    EXPECT(f->C_EncryptInit(s, &bad_mech, aes_key), CKR_MECHANISM_PARAM_INVALID);
    CK_GCM_PARAMS lying = params;
    lying.pIv = NULL; /* NULL IV with 12 bytes */
    bad_mech = gcm;
    bad_mech.pParameter = &lying;
    EXPECT(f->C_EncryptInit(s, &bad_mech, aes_key), CKR_MECHANISM_PARAM_INVALID);
    lying = params;
    lying.ulAADLen = ULONG_MAX;
    EXPECT(f->C_EncryptInit(s, &bad_mech, aes_key), CKR_MECHANISM_PARAM_INVALID);
    lying = params;
    lying.ulTagBits = 7;
    EXPECT(f->C_EncryptInit(s, &bad_mech, aes_key), CKR_MECHANISM_PARAM_INVALID);
    CK_MECHANISM unknown = { 0x7FFFFFF0UL, NULL, 0 };
    EXPECT(f->C_EncryptInit(s, &unknown, aes_key), CKR_MECHANISM_INVALID);
    for (int i = 0; i < BOGUS_COUNT; i++) EXPECT(f->C_EncryptInit(s, &gcm, bogus_handles[i]), CKR_KEY_HANDLE_INVALID);
    EXPECT(f->C_EncryptInit(s, &gcm, data_object), CKR_KEY_HANDLE_INVALID, CKR_KEY_TYPE_INCONSISTENT);
    EXPECT(f->C_EncryptInit(s, &gcm, n2he_key), CKR_KEY_TYPE_INCONSISTENT);

    /* Length query and a too-small buffer keep the operation; a bad argument ends it (§5.2). */
    EXPECT(f->C_EncryptInit(s, &gcm, aes_key), CKR_OK);
    EXPECT(f->C_EncryptInit(s, &gcm, aes_key), CKR_OPERATION_ACTIVE);
    EXPECT(f->C_Encrypt(s, plain, sizeof plain, cipher, NULL), CKR_ARGUMENTS_BAD);
    len = sizeof cipher;
    EXPECT(f->C_Encrypt(s, plain, sizeof plain, cipher, &len), CKR_OPERATION_NOT_INITIALIZED);

    EXPECT(f->C_EncryptInit(s, &gcm, aes_key), CKR_OK);
    len = 0;
    EXPECT(f->C_Encrypt(s, plain, sizeof plain, NULL, &len), CKR_OK);
    CHECK(len == sizeof plain + 16);
    len = 5;
    EXPECT(f->C_Encrypt(s, plain, sizeof plain, cipher, &len), CKR_BUFFER_TOO_SMALL);
    CHECK(len == sizeof plain + 16);
    len = sizeof cipher;
    EXPECT(f->C_Encrypt(s, plain, (CK_ULONG)1 << 40, cipher, &len), CKR_ARGUMENTS_BAD); /* 1 TiB of input */
    EXPECT(f->C_EncryptInit(s, &gcm, aes_key), CKR_OK);
    EXPECT(f->C_Encrypt(s, NULL, sizeof plain, cipher, &len), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_Encrypt(s, plain, sizeof plain, cipher, &len), CKR_OPERATION_NOT_INITIALIZED);

    EXPECT(f->C_EncryptInit(s, &gcm, aes_key), CKR_OK);
    len = ULONG_MAX; /* a length that cannot be a buffer */
    EXPECT(f->C_Encrypt(s, plain, sizeof plain, cipher, &len), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_EncryptInit(s, &gcm, aes_key), CKR_OK);
    len = sizeof cipher;
    EXPECT(f->C_Encrypt(s, plain, sizeof plain, cipher, &len), CKR_OK);
    CK_ULONG cipher_len = len;
    CHECK(cipher_len == sizeof plain + 16);
    EXPECT(f->C_Encrypt(s, plain, sizeof plain, cipher, &len), CKR_OPERATION_NOT_INITIALIZED);

    /* Multi-part: update then final. */
    EXPECT(f->C_EncryptInit(s, &gcm, aes_key), CKR_OK);
    EXPECT(f->C_EncryptUpdate(s, NULL, 4, cipher, &len), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_EncryptUpdate(s, plain, 4, cipher, &len), CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_EncryptInit(s, &gcm, aes_key), CKR_OK);
    EXPECT(f->C_EncryptFinal(s, cipher, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_EncryptFinal(s, cipher, &len), CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_SessionCancel(s, CKF_ENCRYPT), CKR_OK);

    section = "AES-GCM decrypt";
    EXPECT(f->C_DecryptInit(s, NULL, aes_key), CKR_ARGUMENTS_BAD);
    for (int i = 0; i < BOGUS_COUNT; i++) EXPECT(f->C_DecryptInit(s, &gcm, bogus_handles[i]), CKR_KEY_HANDLE_INVALID);
    EXPECT(f->C_DecryptInit(s, &gcm, aes_key), CKR_OK);
    EXPECT(f->C_DecryptInit(s, &gcm, aes_key), CKR_OPERATION_ACTIVE);
    len = 0;
    EXPECT(f->C_Decrypt(s, cipher, cipher_len, NULL, &len), CKR_OK);
    CHECK(len >= sizeof plain);
    len = 1;
    EXPECT(f->C_Decrypt(s, cipher, cipher_len, back, &len), CKR_BUFFER_TOO_SMALL);
    len = sizeof back;
    EXPECT(f->C_Decrypt(s, cipher, cipher_len, back, &len), CKR_OK);
    CHECK(len == sizeof plain && memcmp(back, plain, sizeof plain) == 0);
    EXPECT(f->C_DecryptInit(s, &gcm, aes_key), CKR_OK);
    cipher[3] ^= 1;
    len = sizeof back;
    EXPECT(f->C_Decrypt(s, cipher, cipher_len, back, &len), CKR_ENCRYPTED_DATA_INVALID);
    EXPECT(f->C_Decrypt(s, cipher, cipher_len, back, &len), CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_DecryptInit(s, &gcm, aes_key), CKR_OK);
    len = sizeof back;
    EXPECT(f->C_Decrypt(s, cipher, 3, back, &len), CKR_ENCRYPTED_DATA_LEN_RANGE, CKR_ENCRYPTED_DATA_INVALID);
    EXPECT(f->C_DecryptInit(s, &gcm, aes_key), CKR_OK);
    EXPECT(f->C_Decrypt(s, NULL, 40, back, &len), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_Decrypt(s, cipher, cipher_len, back, &len), CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_DecryptInit(s, &gcm, aes_key), CKR_OK);
    EXPECT(f->C_DecryptUpdate(s, cipher, cipher_len, back, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_DecryptInit(s, &gcm, aes_key), CKR_OK);
    EXPECT(f->C_DecryptFinal(s, back, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_DecryptFinal(s, back, &len), CKR_OPERATION_NOT_INITIALIZED);

    section = "N2HE";
    CK_MECHANISM lwe1 = { CKM_TG_N2HE_LWE1, NULL, 0 };
    CK_MECHANISM lwe2 = { CKM_TG_N2HE_LWE2, NULL, 0 };
    int64_t values[3] = { 1, -2, 300 };
    CK_BYTE *ct = NULL;
    EXPECT(f->C_EncryptInit(s, &lwe1, aes_key), CKR_KEY_TYPE_INCONSISTENT);
    EXPECT(f->C_EncryptInit(s, &lwe1, n2he_key), CKR_OK);
    len = 0;
    EXPECT(f->C_Encrypt(s, (CK_BYTE_PTR)values, 7, NULL, &len), CKR_DATA_LEN_RANGE);
    EXPECT(f->C_EncryptInit(s, &lwe1, n2he_key), CKR_OK);
    EXPECT(f->C_Encrypt(s, (CK_BYTE_PTR)values, sizeof values, NULL, &len), CKR_OK);
    CK_ULONG ct_len = len;
    CHECK(ct_len > sizeof values);
    ct = malloc(ct_len + 16);
    len = ct_len - 1;
    EXPECT(f->C_Encrypt(s, (CK_BYTE_PTR)values, sizeof values, ct, &len), CKR_BUFFER_TOO_SMALL);
    CHECK(len == ct_len);
    len = ct_len + 16;
    EXPECT(f->C_Encrypt(s, (CK_BYTE_PTR)values, sizeof values, ct, &len), CKR_OK);
    CHECK(len == ct_len);
    int64_t decrypted[8];
    EXPECT(f->C_DecryptInit(s, &lwe1, n2he_key), CKR_OK);
    len = sizeof decrypted;
    EXPECT(f->C_Decrypt(s, ct, ct_len, (CK_BYTE_PTR)decrypted, &len), CKR_OK);
    CHECK(len == sizeof values && decrypted[0] == 1 && decrypted[2] == 300);
    EXPECT(f->C_DecryptInit(s, &lwe1, n2he_key), CKR_OK);
    ct[0] ^= 0xFF; /* bad magic */
    len = sizeof decrypted;
    EXPECT(f->C_Decrypt(s, ct, ct_len, (CK_BYTE_PTR)decrypted, &len), CKR_ENCRYPTED_DATA_INVALID);
    EXPECT(f->C_DecryptInit(s, &lwe1, n2he_key), CKR_OK);
    EXPECT(f->C_Decrypt(s, ct, 5, (CK_BYTE_PTR)decrypted, &len), CKR_ENCRYPTED_DATA_LEN_RANGE, CKR_ENCRYPTED_DATA_INVALID);
    EXPECT(f->C_DecryptInit(s, &lwe2, n2he_key), CKR_OK);
    EXPECT(f->C_Decrypt(s, (CK_BYTE_PTR)values, sizeof values, (CK_BYTE_PTR)decrypted, &len),
           CKR_ENCRYPTED_DATA_INVALID, CKR_ENCRYPTED_DATA_LEN_RANGE);
    free(ct);
}

void test_digest_sign(CK_SESSION_HANDLE s) {
    section = "digest";
    CK_MECHANISM sha = { CKM_SHA256, NULL, 0 };
    CK_BYTE data[3] = { 'a', 'b', 'c' };
    CK_BYTE out[64];
    CK_ULONG len;
    static const CK_BYTE abc_sha256[32] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
        0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad };
    EXPECT(f->C_DigestInit(s, NULL), CKR_ARGUMENTS_BAD);
    CK_MECHANISM unknown = { 0x7FFFFFF0UL, NULL, 0 };
    EXPECT(f->C_DigestInit(s, &unknown), CKR_MECHANISM_INVALID);
    EXPECT(f->C_DigestInit(s, &sha), CKR_OK);
    EXPECT(f->C_DigestInit(s, &sha), CKR_OPERATION_ACTIVE);
    len = 0;
    EXPECT(f->C_Digest(s, data, 3, NULL, &len), CKR_OK);
    CHECK(len == 32);
    len = 31;
    EXPECT(f->C_Digest(s, data, 3, out, &len), CKR_BUFFER_TOO_SMALL);
    CHECK(len == 32);
    len = sizeof out;
    EXPECT(f->C_Digest(s, data, 3, out, &len), CKR_OK);
    CHECK(len == 32 && memcmp(out, abc_sha256, 32) == 0);
    EXPECT(f->C_DigestInit(s, &sha), CKR_OK);
    EXPECT(f->C_DigestUpdate(s, NULL, 3), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_DigestUpdate(s, data, 3), CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_DigestInit(s, &sha), CKR_OK);
    EXPECT(f->C_DigestUpdate(s, NULL, 0), CKR_OK);
    EXPECT(f->C_DigestUpdate(s, data, 3), CKR_OK);
    for (int i = 0; i < BOGUS_COUNT; i++) EXPECT(f->C_DigestKey(s, bogus_handles[i]), CKR_KEY_HANDLE_INVALID);
    EXPECT(f->C_DigestFinal(s, out, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_DigestFinal(s, out, &len), CKR_OPERATION_NOT_INITIALIZED);

    section = "sign/verify";
    CK_MECHANISM hmac = { CKM_SHA256_HMAC, NULL, 0 };
    CK_BYTE sig[64] = { 0 };
    EXPECT(f->C_SignInit(s, NULL, aes_key), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_SignInit(s, &unknown, aes_key), CKR_MECHANISM_INVALID);
    for (int i = 0; i < BOGUS_COUNT; i++) {
        EXPECT(f->C_SignInit(s, &hmac, bogus_handles[i]), CKR_KEY_HANDLE_INVALID, CKR_MECHANISM_INVALID);
        EXPECT(f->C_VerifyInit(s, &hmac, bogus_handles[i]), CKR_KEY_HANDLE_INVALID, CKR_MECHANISM_INVALID);
    }
    EXPECT(f->C_VerifyInit(s, NULL, aes_key), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_Sign(s, NULL, 3, sig, &len), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_Sign(s, data, 3, sig, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_SignUpdate(s, NULL, 3), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_SignFinal(s, sig, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_Verify(s, NULL, 3, sig, 32), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_Verify(s, data, 3, NULL, 32), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_VerifyUpdate(s, NULL, 3), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_VerifyFinal(s, NULL, 32), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_Verify(s, data, ULONG_MAX, sig, 32), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_Verify(s, data, 3, sig, (CK_ULONG)1 << 40), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_DigestInit(s, &sha), CKR_OK);
    EXPECT(f->C_DigestUpdate(s, data, (CK_ULONG)1 << 40), CKR_ARGUMENTS_BAD); /* and the digest ends */
    EXPECT(f->C_DigestFinal(s, out, &len), CKR_OPERATION_NOT_INITIALIZED);
}

void test_wrap(CK_SESSION_HANDLE s) {
    section = "wrap/unwrap";
    CK_MECHANISM kwp = { CKM_AES_KEY_WRAP_PAD, NULL, 0 };
    CK_BYTE wrapped[256];
    CK_ULONG len = sizeof wrapped;
    EXPECT(f->C_WrapKey(s, NULL, aes_wrapping_key, aes_key, wrapped, &len), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_WrapKey(s, &kwp, aes_wrapping_key, aes_key, wrapped, NULL), CKR_ARGUMENTS_BAD);
    for (int i = 0; i < BOGUS_COUNT; i++) {
        len = sizeof wrapped;
        EXPECT(f->C_WrapKey(s, &kwp, bogus_handles[i], aes_key, wrapped, &len), CKR_WRAPPING_KEY_HANDLE_INVALID);
        EXPECT(f->C_WrapKey(s, &kwp, aes_wrapping_key, bogus_handles[i], wrapped, &len), CKR_KEY_HANDLE_INVALID);
    }
    len = 0;
    EXPECT(f->C_WrapKey(s, &kwp, aes_wrapping_key, aes_key, NULL, &len), CKR_OK);
    CHECK(len == 40);
    len = 8;
    EXPECT(f->C_WrapKey(s, &kwp, aes_wrapping_key, aes_key, wrapped, &len), CKR_BUFFER_TOO_SMALL);
    CHECK(len == 40);
    len = sizeof wrapped;
    EXPECT(f->C_WrapKey(s, &kwp, aes_wrapping_key, aes_key, wrapped, &len), CKR_OK);
    CK_ULONG wrapped_len = len;
    CK_ULONG n2he_wrapped_len = sizeof wrapped;
    CK_BYTE *n2he_wrapped = malloc(16384);
    n2he_wrapped_len = 16384;
    EXPECT(f->C_WrapKey(s, &kwp, aes_wrapping_key, n2he_key, n2he_wrapped, &n2he_wrapped_len), CKR_OK);
    free(n2he_wrapped);

    CK_OBJECT_HANDLE h = 0;
    CK_ULONG key_len = 32;
    CK_ATTRIBUTE tmpl[] = {
        { CKA_CLASS, &secret_class, sizeof secret_class },
        { CKA_KEY_TYPE, &aes_type, sizeof aes_type },
        { CKA_TOKEN, &no, sizeof no },
        { CKA_EXTRACTABLE, &yes, sizeof yes },
    };
    EXPECT(f->C_UnwrapKey(s, NULL, aes_wrapping_key, wrapped, wrapped_len, tmpl, 4, &h), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_UnwrapKey(s, &kwp, aes_wrapping_key, NULL, wrapped_len, tmpl, 4, &h), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_UnwrapKey(s, &kwp, aes_wrapping_key, wrapped, wrapped_len, NULL, 4, &h), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_UnwrapKey(s, &kwp, aes_wrapping_key, wrapped, wrapped_len, tmpl, ULONG_MAX, &h), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_UnwrapKey(s, &kwp, aes_wrapping_key, wrapped, wrapped_len, tmpl, 4, NULL), CKR_ARGUMENTS_BAD);
    for (int i = 0; i < BOGUS_COUNT; i++) {
        EXPECT(f->C_UnwrapKey(bogus_handles[i], &kwp, aes_wrapping_key, wrapped, wrapped_len, tmpl, 4, &h),
               CKR_SESSION_HANDLE_INVALID);
        EXPECT(f->C_UnwrapKey(s, &kwp, bogus_handles[i], wrapped, wrapped_len, tmpl, 4, &h),
               CKR_UNWRAPPING_KEY_HANDLE_INVALID);
    }
    CK_BYTE garbage[40];
    memset(garbage, 0x5A, sizeof garbage);
    EXPECT(f->C_UnwrapKey(s, &kwp, aes_wrapping_key, garbage, sizeof garbage, tmpl, 4, &h), CKR_WRAPPED_KEY_INVALID);
    EXPECT(f->C_UnwrapKey(s, &kwp, aes_wrapping_key, garbage, 7, tmpl, 4, &h),
           CKR_WRAPPED_KEY_LEN_RANGE, CKR_WRAPPED_KEY_INVALID);
    EXPECT(f->C_UnwrapKey(s, &kwp, aes_wrapping_key, wrapped, wrapped_len, tmpl, 4, &h), CKR_OK);
    CK_ATTRIBUTE vl = { CKA_VALUE_LEN, &key_len, sizeof key_len };
    key_len = 0;
    EXPECT(f->C_GetAttributeValue(s, h, &vl, 1), CKR_OK);
    CHECK(key_len == 32);
}

void test_random_and_unsupported(CK_SESSION_HANDLE s) {
    section = "random";
    CK_BYTE buf[64] = { 0 }, zero[64] = { 0 };
    EXPECT(f->C_GenerateRandom(s, NULL, 16), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_GenerateRandom(s, buf, ULONG_MAX), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_GenerateRandom(s, buf, (CK_ULONG)1 << 40), CKR_ARGUMENTS_BAD); /* would write 1 TiB */
    EXPECT(f->C_GenerateRandom(s, NULL, 0), CKR_OK);
    EXPECT(f->C_GenerateRandom(s, buf, sizeof buf), CKR_OK);
    CHECK(memcmp(buf, zero, sizeof buf) != 0);
    EXPECT(f->C_SeedRandom(s, NULL, 16), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_SeedRandom(s, buf, (CK_ULONG)1 << 40), CKR_ARGUMENTS_BAD); /* would read 1 TiB */
    EXPECT(f->C_SeedRandom(s, buf, 16), CKR_OK, CKR_RANDOM_SEED_NOT_SUPPORTED);

    section = "not supported";
    const CK_RV NS = CKR_FUNCTION_NOT_SUPPORTED;
    CK_ULONG len = sizeof buf;
    CK_MECHANISM mech = { CKM_AES_GCM, NULL, 0 };
    CK_ATTRIBUTE attr = { CKA_LABEL, buf, 4 };
    CK_OBJECT_HANDLE h1, h2;
    CK_SLOT_ID sl;
    EXPECT(f->C_GetOperationState(s, buf, &len), NS, CKR_STATE_UNSAVEABLE);
    EXPECT(f->C_SetOperationState(s, buf, 16, 0, 0), NS, CKR_SAVED_STATE_INVALID);
    EXPECT(f->C_SignRecoverInit(s, &mech, aes_key), NS, CKR_MECHANISM_INVALID);
    EXPECT(f->C_SignRecover(s, buf, 4, buf, &len), NS, CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_VerifyRecoverInit(s, &mech, aes_key), NS, CKR_MECHANISM_INVALID);
    EXPECT(f->C_VerifyRecover(s, buf, 4, buf, &len), NS, CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_DigestEncryptUpdate(s, buf, 4, buf, &len), NS, CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_DecryptDigestUpdate(s, buf, 4, buf, &len), NS, CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_SignEncryptUpdate(s, buf, 4, buf, &len), NS, CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_DecryptVerifyUpdate(s, buf, 4, buf, &len), NS, CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_GenerateKeyPair(s, &mech, &attr, 1, &attr, 1, &h1, &h2), CKR_MECHANISM_INVALID);
    EXPECT(f->C_DeriveKey(s, &mech, aes_key, &attr, 1, &h1), CKR_MECHANISM_INVALID);
    EXPECT(f->C_GetFunctionStatus(s), CKR_FUNCTION_NOT_PARALLEL);
    EXPECT(f->C_CancelFunction(s), CKR_FUNCTION_NOT_PARALLEL);
    EXPECT(f->C_WaitForSlotEvent(CKF_DONT_BLOCK, &sl, NULL), NS, CKR_NO_EVENT);
    EXPECT(f->C_LoginUser(s, CKU_USER, PIN(user_pin), (CK_UTF8CHAR_PTR)"u", 1), NS, CKR_USER_ALREADY_LOGGED_IN);
    EXPECT(f->C_MessageEncryptInit(s, &mech, aes_key), NS);
    EXPECT(f->C_EncryptMessage(s, buf, 4, buf, 4, buf, 4, buf, &len), NS, CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_EncryptMessageBegin(s, buf, 4, buf, 4), NS, CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_EncryptMessageNext(s, buf, 4, buf, 4, buf, &len, 0), NS, CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_MessageEncryptFinal(s), NS, CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_MessageDecryptInit(s, &mech, aes_key), NS);
    EXPECT(f->C_DecryptMessage(s, buf, 4, buf, 4, buf, 4, buf, &len), NS, CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_DecryptMessageBegin(s, buf, 4, buf, 4), NS, CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_DecryptMessageNext(s, buf, 4, buf, 4, buf, &len, 0), NS, CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_MessageDecryptFinal(s), NS, CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_MessageSignInit(s, &mech, aes_key), NS);
    EXPECT(f->C_SignMessage(s, buf, 4, buf, 4, buf, &len), NS, CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_SignMessageBegin(s, buf, 4), NS, CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_SignMessageNext(s, buf, 4, buf, 4, buf, &len), NS, CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_MessageSignFinal(s), NS, CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_MessageVerifyInit(s, &mech, aes_key), NS);
    EXPECT(f->C_VerifyMessage(s, buf, 4, buf, 4, buf, 4), NS, CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_VerifyMessageBegin(s, buf, 4), NS, CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_VerifyMessageNext(s, buf, 4, buf, 4, buf, 4), NS, CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_MessageVerifyFinal(s), NS, CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_SessionCancel(s, CKF_ENCRYPT | CKF_DECRYPT | CKF_DIGEST | CKF_SIGN | CKF_VERIFY), CKR_OK);
}
