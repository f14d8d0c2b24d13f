/*
 * abi_objects.c — objects and templates: C_CreateObject and C_GenerateKey with malformed templates (and the
 * session objects later sweeps use), C_GetAttributeValue / C_SetAttributeValue, C_GetObjectSize,
 * C_CopyObject / C_DestroyObject, find, and every standard attribute of a secret key.
 */
#include "abi_sweep.h"

/* ------------------------------------------------------------------------------------------------ */
/* Objects and templates                                                                            */

void test_objects(CK_SESSION_HANDLE s) {
    section = "C_CreateObject";
    char label[] = "abi-data";
    char value[] = "hello, abi";
    CK_ATTRIBUTE data_tmpl[] = {
        { CKA_CLASS, &data_class, sizeof data_class },
        { CKA_TOKEN, &no, sizeof no },
        { CKA_LABEL, label, sizeof label - 1 },
        { CKA_VALUE, value, sizeof value - 1 },
    };
    CK_ULONG n = sizeof data_tmpl / sizeof data_tmpl[0];
    CK_OBJECT_HANDLE h = 0;
    EXPECT(f->C_CreateObject(s, NULL, n, &h), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_CreateObject(s, data_tmpl, n, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_CreateObject(s, data_tmpl, ULONG_MAX, &h), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_CreateObject(s, data_tmpl, (CK_ULONG)1 << 40, &h), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_CreateObject(s, data_tmpl, (CK_ULONG)1 << 20, &h), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_CreateObject(s, NULL, 0, &h), CKR_TEMPLATE_INCOMPLETE);
    for (int i = 0; i < BOGUS_COUNT; i++)
        EXPECT(f->C_CreateObject(bogus_handles[i], data_tmpl, n, &h), CKR_SESSION_HANDLE_INVALID);

    /* Attribute lengths that lie or values of the wrong size. */
    CK_ATTRIBUTE bad[4];
    memcpy(bad, data_tmpl, sizeof bad);
    bad[2].pValue = NULL; /* NULL value, nonzero length */
    EXPECT(f->C_CreateObject(s, bad, n, &h), CKR_ARGUMENTS_BAD);
    memcpy(bad, data_tmpl, sizeof bad);
    bad[3].ulValueLen = ULONG_MAX;
    EXPECT(f->C_CreateObject(s, bad, n, &h), CKR_ARGUMENTS_BAD);
    memcpy(bad, data_tmpl, sizeof bad);
    bad[3].ulValueLen = (CK_ULONG)1 << 40;
    EXPECT(f->C_CreateObject(s, bad, n, &h), CKR_ARGUMENTS_BAD);
    memcpy(bad, data_tmpl, sizeof bad);
    CK_ULONG wide_bool = 1;
    bad[1].pValue = &wide_bool; /* CK_BBOOL given as 8 bytes */
    bad[1].ulValueLen = sizeof wide_bool;
    EXPECT(f->C_CreateObject(s, bad, n, &h), CKR_ATTRIBUTE_VALUE_INVALID);
    memcpy(bad, data_tmpl, sizeof bad);
    bad[0].ulValueLen = 4; /* CK_ULONG given as 4 bytes */
    EXPECT(f->C_CreateObject(s, bad, n, &h), CKR_ATTRIBUTE_VALUE_INVALID);
    memcpy(bad, data_tmpl, sizeof bad);
    bad[0].ulValueLen = 0;
    EXPECT(f->C_CreateObject(s, bad, n, &h), CKR_ATTRIBUTE_VALUE_INVALID);
    memcpy(bad, data_tmpl, sizeof bad);
    CK_BBOOL two = 2;
    bad[1].pValue = &two; /* CK_BBOOL other than 0/1: refused, or read as true (the standard names no rv) */
    {
        CK_RV rv = f->C_CreateObject(s, bad, n, &h);
        const CK_RV ok[] = { CKR_ATTRIBUTE_VALUE_INVALID, CKR_OK };
        expect_rv("C_CreateObject(CK_BBOOL 2)", __LINE__, rv, ok, 2);
        if (rv == CKR_OK) f->C_DestroyObject(s, h);
    }
    memcpy(bad, data_tmpl, sizeof bad);
    bad[2].type = 0x7FFFFFF0UL; /* unknown attribute type */
    EXPECT(f->C_CreateObject(s, bad, n, &h), CKR_ATTRIBUTE_TYPE_INVALID);
    memcpy(bad, data_tmpl, sizeof bad);
    bad[2].type = CKA_CLASS; /* CKA_CLASS twice, conflicting */
    bad[2].pValue = &secret_class;
    bad[2].ulValueLen = sizeof secret_class;
    EXPECT(f->C_CreateObject(s, bad, n, &h), CKR_TEMPLATE_INCONSISTENT);
    memcpy(bad, data_tmpl, sizeof bad);
    bad[2] = bad[1]; /* CKA_TOKEN twice, same value: allowed or refused (2.40 §4.1.1) */
    {
        CK_RV rv = f->C_CreateObject(s, bad, n, &h);
        const CK_RV ok[] = { CKR_OK, CKR_TEMPLATE_INCONSISTENT };
        expect_rv("C_CreateObject(duplicate identical attribute)", __LINE__, rv, ok, 2);
        if (rv == CKR_OK) f->C_DestroyObject(s, h);
    }
    EXPECT(f->C_CreateObject(s, data_tmpl + 1, n - 1, &h), CKR_TEMPLATE_INCOMPLETE); /* no CKA_CLASS */

    h = 0;
    EXPECT(f->C_CreateObject(s, data_tmpl, n, &h), CKR_OK);
    data_object = h;
    CHECK(h != 0);

    /* Secret key objects need the user; a read-only session cannot create token objects. */
    CK_SESSION_HANDLE ro = 0;
    EXPECT(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &ro), CKR_OK);
    CK_ATTRIBUTE token_tmpl[] = {
        { CKA_CLASS, &data_class, sizeof data_class },
        { CKA_TOKEN, &yes, sizeof yes },
    };
    EXPECT(f->C_CreateObject(ro, token_tmpl, 2, &h), CKR_SESSION_READ_ONLY);
    EXPECT(f->C_CloseSession(ro), CKR_OK);

    section = "C_GenerateKey";
    CK_ULONG key_len = 32, bad_len = 7;
    CK_MECHANISM aes_gen = { CKM_AES_KEY_GEN, NULL, 0 };
    CK_ATTRIBUTE wrap_tmpl[] = {
        { CKA_EXTRACTABLE, &yes, sizeof yes },
        { CKA_KEY_TYPE, &aes_type, sizeof aes_type },
    };
    CK_ATTRIBUTE key_tmpl[] = {
        { CKA_CLASS, &secret_class, sizeof secret_class },
        { CKA_KEY_TYPE, &aes_type, sizeof aes_type },
        { CKA_VALUE_LEN, &key_len, sizeof key_len },
        { CKA_TOKEN, &no, sizeof no },
        { CKA_SENSITIVE, &yes, sizeof yes },
        { CKA_EXTRACTABLE, &yes, sizeof yes },
        { CKA_ENCRYPT, &yes, sizeof yes },
        { CKA_DECRYPT, &yes, sizeof yes },
        /* A cipher key never also wraps (separated key roles): the wrapping key below is a key of its own. */
        { CKA_SIGN, &no, sizeof no },
        { CKA_VERIFY, &no, sizeof no },
        { CKA_WRAP_TEMPLATE, wrap_tmpl, sizeof wrap_tmpl },
    };
    CK_ULONG kn = sizeof key_tmpl / sizeof key_tmpl[0];
    /* Only a key nobody can know may wrap: generated, sensitive and unextractable (the defaults once WRAP is asked). */
    CK_ATTRIBUTE wrapping_tmpl[] = {
        { CKA_CLASS, &secret_class, sizeof secret_class },
        { CKA_KEY_TYPE, &aes_type, sizeof aes_type },
        { CKA_VALUE_LEN, &key_len, sizeof key_len },
        { CKA_TOKEN, &no, sizeof no },
        { CKA_WRAP, &yes, sizeof yes },
        { CKA_UNWRAP, &yes, sizeof yes },
    };
    EXPECT(f->C_GenerateKey(s, NULL, key_tmpl, kn, &h), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_GenerateKey(s, &aes_gen, key_tmpl, kn, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_GenerateKey(s, &aes_gen, NULL, kn, &h), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_GenerateKey(s, &aes_gen, key_tmpl, ULONG_MAX, &h), CKR_ARGUMENTS_BAD);
    for (int i = 0; i < BOGUS_COUNT; i++)
        EXPECT(f->C_GenerateKey(bogus_handles[i], &aes_gen, key_tmpl, kn, &h), CKR_SESSION_HANDLE_INVALID);
    CK_MECHANISM unknown_mech = { 0x7FFFFFF0UL, NULL, 0 };
    EXPECT(f->C_GenerateKey(s, &unknown_mech, key_tmpl, kn, &h), CKR_MECHANISM_INVALID);
    CK_MECHANISM lying_mech = { CKM_AES_KEY_GEN, NULL, 16 }; /* NULL parameter, nonzero length */
    EXPECT(f->C_GenerateKey(s, &lying_mech, key_tmpl, kn, &h), CKR_MECHANISM_PARAM_INVALID);
    CK_ATTRIBUTE bad_key[sizeof key_tmpl / sizeof key_tmpl[0]];
    memcpy(bad_key, key_tmpl, sizeof bad_key);
    bad_key[2].pValue = &bad_len;
    EXPECT(f->C_GenerateKey(s, &aes_gen, bad_key, kn, &h), CKR_ATTRIBUTE_VALUE_INVALID, CKR_KEY_SIZE_RANGE);
    memcpy(bad_key, key_tmpl, sizeof bad_key);
    bad_key[10].ulValueLen = sizeof wrap_tmpl - 1; /* nested template length not a multiple */
    EXPECT(f->C_GenerateKey(s, &aes_gen, bad_key, kn, &h), CKR_ATTRIBUTE_VALUE_INVALID);
    memcpy(bad_key, key_tmpl, sizeof bad_key);
    bad_key[10].pValue = NULL; /* nested template NULL with a length */
    EXPECT(f->C_GenerateKey(s, &aes_gen, bad_key, kn, &h), CKR_ARGUMENTS_BAD);
    /* A nested template whose own attribute lies about its length. */
    CK_ATTRIBUTE lying_nested[] = { { CKA_EXTRACTABLE, NULL, 1 } };
    memcpy(bad_key, key_tmpl, sizeof bad_key);
    bad_key[10].pValue = lying_nested;
    bad_key[10].ulValueLen = sizeof lying_nested;
    EXPECT(f->C_GenerateKey(s, &aes_gen, bad_key, kn, &h), CKR_ARGUMENTS_BAD);
    /* A nested template inside a nested template. */
    CK_ATTRIBUTE nested2[] = { { CKA_WRAP_TEMPLATE, wrap_tmpl, sizeof wrap_tmpl } };
    memcpy(bad_key, key_tmpl, sizeof bad_key);
    bad_key[10].pValue = nested2;
    bad_key[10].ulValueLen = sizeof nested2;
    EXPECT(f->C_GenerateKey(s, &aes_gen, bad_key, kn, &h), CKR_ATTRIBUTE_VALUE_INVALID);
    EXPECT(f->C_GenerateKey(s, &aes_gen, key_tmpl + 3, kn - 3, &h), CKR_TEMPLATE_INCOMPLETE); /* no VALUE_LEN */

    h = 0;
    EXPECT(f->C_GenerateKey(s, &aes_gen, key_tmpl, kn, &h), CKR_OK);
    aes_key = h;
    h = 0;
    EXPECT(f->C_GenerateKey(s, &aes_gen, wrapping_tmpl, sizeof wrapping_tmpl / sizeof wrapping_tmpl[0], &h), CKR_OK);
    aes_wrapping_key = h;

    CK_MECHANISM n2he_gen = { CKM_TG_N2HE_KEY_GEN, NULL, 0 };
    CK_ULONG dimension = 1024;
    CK_ULONG raw_rule = CKV_TG_N2HE_RAW; /* the sweep decrypts LWE1 and repeats ciphertexts: the SDK's rule */
    CK_ATTRIBUTE n2he_tmpl[] = {
        { CKA_TOKEN, &no, sizeof no },
        { CKA_ENCRYPT, &yes, sizeof yes },
        { CKA_DECRYPT, &yes, sizeof yes },
        { CKA_EXTRACTABLE, &yes, sizeof yes },
        { CKA_TG_N2HE_DIMENSION, &dimension, sizeof dimension },
        { CKA_TG_N2HE_DECRYPT_RULE, &raw_rule, sizeof raw_rule },
    };
    h = 0;
    EXPECT(f->C_GenerateKey(s, &n2he_gen, n2he_tmpl, 6, &h), CKR_OK);
    n2he_key = h;
}

void test_attributes(CK_SESSION_HANDLE s) {
    section = "C_GetAttributeValue";
    char label[32];
    CK_ATTRIBUTE one = { CKA_LABEL, NULL, 0 };
    EXPECT(f->C_GetAttributeValue(s, data_object, NULL, 1), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_GetAttributeValue(s, data_object, NULL, 0), CKR_OK);
    EXPECT(f->C_GetAttributeValue(s, data_object, &one, ULONG_MAX), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_GetAttributeValue(s, data_object, &one, (CK_ULONG)1 << 40), CKR_ARGUMENTS_BAD);
    for (int i = 0; i < BOGUS_COUNT; i++) {
        EXPECT(f->C_GetAttributeValue(bogus_handles[i], data_object, &one, 1), CKR_SESSION_HANDLE_INVALID);
        if (bogus_handles[i] != data_object)
            EXPECT(f->C_GetAttributeValue(s, bogus_handles[i], &one, 1), CKR_OBJECT_HANDLE_INVALID);
    }
    /* Length query, exact fetch, too small. */
    EXPECT(f->C_GetAttributeValue(s, data_object, &one, 1), CKR_OK);
    CHECK(one.ulValueLen == 8);
    one.pValue = label;
    one.ulValueLen = sizeof label;
    EXPECT(f->C_GetAttributeValue(s, data_object, &one, 1), CKR_OK);
    CHECK(one.ulValueLen == 8 && memcmp(label, "abi-data", 8) == 0);
    one.ulValueLen = 3;
    EXPECT(f->C_GetAttributeValue(s, data_object, &one, 1), CKR_BUFFER_TOO_SMALL);
    CHECK(one.ulValueLen == CK_UNAVAILABLE_INFORMATION);

    /* Every attribute processed even when some fail (PKCS#11 §5.7). */
    CK_OBJECT_CLASS cls = 0;
    CK_BYTE secret[64];
    char small[2];
    CK_ATTRIBUTE mixed[] = {
        { CKA_CLASS, &cls, sizeof cls },
        { 0x7FFFFFF0UL, label, sizeof label },
        { CKA_VALUE, secret, sizeof secret },   /* sensitive */
        { CKA_LABEL, small, sizeof small },     /* too small (label may be empty: then fits) */
        { CKA_VALUE_LEN, NULL, 0 },
    };
    CK_RV rv = f->C_GetAttributeValue(s, aes_key, mixed, 5);
    const CK_RV any_of[] = { CKR_ATTRIBUTE_TYPE_INVALID, CKR_ATTRIBUTE_SENSITIVE, CKR_BUFFER_TOO_SMALL };
    expect_rv("C_GetAttributeValue(mixed)", __LINE__, rv, any_of, 3);
    CHECK(mixed[0].ulValueLen == sizeof cls && cls == CKO_SECRET_KEY);
    CHECK(mixed[1].ulValueLen == CK_UNAVAILABLE_INFORMATION);
    CHECK(mixed[2].ulValueLen == CK_UNAVAILABLE_INFORMATION);
    CHECK(mixed[4].ulValueLen == sizeof(CK_ULONG));
    CK_ATTRIBUTE only_invalid = { 0x7FFFFFF0UL, label, sizeof label };
    EXPECT(f->C_GetAttributeValue(s, aes_key, &only_invalid, 1), CKR_ATTRIBUTE_TYPE_INVALID);
    CK_ATTRIBUTE only_sensitive = { CKA_VALUE, NULL, 0 };
    EXPECT(f->C_GetAttributeValue(s, aes_key, &only_sensitive, 1), CKR_ATTRIBUTE_SENSITIVE);
    CHECK(only_sensitive.ulValueLen == CK_UNAVAILABLE_INFORMATION);

    /* Array attribute: size query, then types and lengths, then values; too small array. */
    CK_ATTRIBUTE arr = { CKA_WRAP_TEMPLATE, NULL, 0 };
    EXPECT(f->C_GetAttributeValue(s, aes_key, &arr, 1), CKR_OK);
    CHECK(arr.ulValueLen == 2 * sizeof(CK_ATTRIBUTE));
    CK_ATTRIBUTE nested[4];
    memset(nested, 0, sizeof nested);
    arr.pValue = nested;
    arr.ulValueLen = sizeof(CK_ATTRIBUTE); /* room for one of two */
    EXPECT(f->C_GetAttributeValue(s, aes_key, &arr, 1), CKR_BUFFER_TOO_SMALL);
    CHECK(arr.ulValueLen == CK_UNAVAILABLE_INFORMATION);
    arr.ulValueLen = sizeof nested;
    EXPECT(f->C_GetAttributeValue(s, aes_key, &arr, 1), CKR_OK);
    CHECK(arr.ulValueLen == 2 * sizeof(CK_ATTRIBUTE));
    CK_BBOOL nested_bool = 0xEE;
    CK_KEY_TYPE nested_type = 0xEE;
    int found = 0;
    for (int i = 0; i < 2; i++) {
        if (nested[i].type == CKA_EXTRACTABLE && nested[i].ulValueLen == 1) {
            nested[i].pValue = &nested_bool;
            found++;
        }
        if (nested[i].type == CKA_KEY_TYPE && nested[i].ulValueLen == sizeof(CK_KEY_TYPE)) {
            nested[i].pValue = &nested_type;
            found++;
        }
    }
    CHECK(found == 2);
    EXPECT(f->C_GetAttributeValue(s, aes_key, &arr, 1), CKR_OK);
    CHECK(nested_bool == CK_TRUE && nested_type == CKK_AES);
    for (int i = 0; i < 2; i++)
        if (nested[i].type == CKA_KEY_TYPE) nested[i].ulValueLen = 1; /* nested buffer too small */
    EXPECT(f->C_GetAttributeValue(s, aes_key, &arr, 1), CKR_BUFFER_TOO_SMALL);

    /* Standard key attributes all answer on an N2HE key; its vendor attributes too. */
    CK_ULONG n2he_dim = 0, n2he_bits = 0;
    CK_KEY_TYPE kt = 0;
    CK_BBOOL sensitive = 0, local = 0;
    CK_ATTRIBUTE n2he_attrs[] = {
        { CKA_KEY_TYPE, &kt, sizeof kt },
        { CKA_TG_N2HE_DIMENSION, &n2he_dim, sizeof n2he_dim },
        { CKA_TG_N2HE_SECURITY_BITS, &n2he_bits, sizeof n2he_bits },
        { CKA_SENSITIVE, &sensitive, sizeof sensitive },
        { CKA_LOCAL, &local, sizeof local },
        { CKA_ID, NULL, 0 },
        { CKA_START_DATE, NULL, 0 },
        { CKA_ALLOWED_MECHANISMS, NULL, 0 },
    };
    EXPECT(f->C_GetAttributeValue(s, n2he_key, n2he_attrs, 8), CKR_OK);
    CHECK(kt == CKK_TG_N2HE && n2he_dim == 1024 && local == CK_TRUE);

    section = "C_SetAttributeValue";
    char new_label[] = "abi-data-2";
    CK_ATTRIBUTE set = { CKA_LABEL, new_label, sizeof new_label - 1 };
    EXPECT(f->C_SetAttributeValue(s, data_object, NULL, 1), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_SetAttributeValue(s, data_object, &set, ULONG_MAX), CKR_ARGUMENTS_BAD);
    for (int i = 0; i < BOGUS_COUNT; i++) {
        EXPECT(f->C_SetAttributeValue(bogus_handles[i], data_object, &set, 1), CKR_SESSION_HANDLE_INVALID);
        EXPECT(f->C_SetAttributeValue(s, bogus_handles[i], &set, 1), CKR_OBJECT_HANDLE_INVALID);
    }
    CK_ATTRIBUTE set_bad = { CKA_LABEL, NULL, 4 };
    EXPECT(f->C_SetAttributeValue(s, data_object, &set_bad, 1), CKR_ARGUMENTS_BAD);
    CK_ATTRIBUTE set_class = { CKA_CLASS, &secret_class, sizeof secret_class };
    EXPECT(f->C_SetAttributeValue(s, data_object, &set_class, 1), CKR_ATTRIBUTE_READ_ONLY);
    CK_ULONG other_dim = 512;
    CK_ATTRIBUTE set_dim = { CKA_TG_N2HE_DIMENSION, &other_dim, sizeof other_dim };
    EXPECT(f->C_SetAttributeValue(s, n2he_key, &set_dim, 1), CKR_ATTRIBUTE_READ_ONLY);
    CK_ATTRIBUTE unsensitive = { CKA_SENSITIVE, &no, sizeof no };
    EXPECT(f->C_SetAttributeValue(s, aes_key, &unsensitive, 1), CKR_ATTRIBUTE_READ_ONLY);
    EXPECT(f->C_SetAttributeValue(s, data_object, &set, 1), CKR_OK);

    section = "C_GetObjectSize";
    CK_ULONG size = 0;
    EXPECT(f->C_GetObjectSize(s, data_object, NULL), CKR_ARGUMENTS_BAD);
    for (int i = 0; i < BOGUS_COUNT; i++) {
        EXPECT(f->C_GetObjectSize(bogus_handles[i], data_object, &size), CKR_SESSION_HANDLE_INVALID);
        EXPECT(f->C_GetObjectSize(s, bogus_handles[i], &size), CKR_OBJECT_HANDLE_INVALID);
    }
    EXPECT(f->C_GetObjectSize(s, data_object, &size), CKR_OK, CKR_INFORMATION_SENSITIVE);

    section = "C_CopyObject / C_DestroyObject";
    CK_OBJECT_HANDLE copy = 0;
    EXPECT(f->C_CopyObject(s, data_object, NULL, 0, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_CopyObject(s, data_object, NULL, 1, &copy), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_CopyObject(s, data_object, &set, ULONG_MAX, &copy), CKR_ARGUMENTS_BAD);
    for (int i = 0; i < BOGUS_COUNT; i++) {
        EXPECT(f->C_CopyObject(bogus_handles[i], data_object, NULL, 0, &copy), CKR_SESSION_HANDLE_INVALID);
        EXPECT(f->C_CopyObject(s, bogus_handles[i], NULL, 0, &copy), CKR_OBJECT_HANDLE_INVALID);
        EXPECT(f->C_DestroyObject(bogus_handles[i], data_object), CKR_SESSION_HANDLE_INVALID);
        EXPECT(f->C_DestroyObject(s, bogus_handles[i]), CKR_OBJECT_HANDLE_INVALID);
    }
    EXPECT(f->C_CopyObject(s, data_object, &set_class, 1, &copy), CKR_ATTRIBUTE_READ_ONLY, CKR_TEMPLATE_INCONSISTENT);
    EXPECT(f->C_CopyObject(s, data_object, NULL, 0, &copy), CKR_OK);
    EXPECT(f->C_DestroyObject(s, copy), CKR_OK);
    EXPECT(f->C_DestroyObject(s, copy), CKR_OBJECT_HANDLE_INVALID);

    /* C_CreateObject wipes its own copy of CKA_VALUE after the call (docs/architecture.md "Secrets in memory"):
     * never the caller's template, never the stored value — a key's (sealed, in SecretBytes) nor a data object's
     * (a public attribute that shares the copy's storage). C_GetAttributeValue answers both intact. */
    section = "C_CreateObject/C_GetAttributeValue (values after the wipe)";
    CK_BYTE key_value[16];
    for (int i = 0; i < 16; i++) key_value[i] = (CK_BYTE)(0xA0 + i);
    CK_ATTRIBUTE readable_key[] = {
        { CKA_CLASS, &secret_class, sizeof secret_class }, { CKA_KEY_TYPE, &aes_type, sizeof aes_type },
        { CKA_TOKEN, &no, sizeof no }, { CKA_SENSITIVE, &no, sizeof no }, { CKA_EXTRACTABLE, &yes, sizeof yes },
        { CKA_VALUE, key_value, sizeof key_value },
    };
    CK_OBJECT_HANDLE readable = 0;
    EXPECT(f->C_CreateObject(s, readable_key, 6, &readable), CKR_OK);
    int caller_intact = 1;
    for (int i = 0; i < 16; i++) caller_intact &= key_value[i] == (CK_BYTE)(0xA0 + i);
    CHECK(caller_intact);
    CK_BYTE read_back[32];
    memset(read_back, 0, sizeof read_back);
    CK_ATTRIBUTE value_of = { CKA_VALUE, read_back, sizeof read_back };
    EXPECT(f->C_GetAttributeValue(s, readable, &value_of, 1), CKR_OK);
    CHECK(value_of.ulValueLen == 16 && memcmp(read_back, key_value, 16) == 0);
    EXPECT(f->C_DestroyObject(s, readable), CKR_OK);
    char data_value[16];
    CK_ATTRIBUTE data_value_of = { CKA_VALUE, data_value, sizeof data_value };
    EXPECT(f->C_GetAttributeValue(s, data_object, &data_value_of, 1), CKR_OK);
    CHECK(data_value_of.ulValueLen == 10 && memcmp(data_value, "hello, abi", 10) == 0);
}

void test_find(CK_SESSION_HANDLE s) {
    section = "find";
    CK_OBJECT_HANDLE found[16];
    CK_ULONG count = 0;
    EXPECT(f->C_FindObjects(s, found, 16, &count), CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_FindObjectsFinal(s), CKR_OPERATION_NOT_INITIALIZED);
    CK_ATTRIBUTE by_class = { CKA_CLASS, &secret_class, sizeof secret_class };
    EXPECT(f->C_FindObjectsInit(s, NULL, 1), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_FindObjectsInit(s, &by_class, ULONG_MAX), CKR_ARGUMENTS_BAD);
    CK_ATTRIBUTE lying = { CKA_LABEL, NULL, 5 };
    EXPECT(f->C_FindObjectsInit(s, &lying, 1), CKR_ARGUMENTS_BAD);
    for (int i = 0; i < BOGUS_COUNT; i++) {
        EXPECT(f->C_FindObjectsInit(bogus_handles[i], &by_class, 1), CKR_SESSION_HANDLE_INVALID);
        EXPECT(f->C_FindObjects(bogus_handles[i], found, 16, &count), CKR_SESSION_HANDLE_INVALID);
        EXPECT(f->C_FindObjectsFinal(bogus_handles[i]), CKR_SESSION_HANDLE_INVALID);
    }
    EXPECT(f->C_FindObjectsInit(s, &by_class, 1), CKR_OK);
    EXPECT(f->C_FindObjectsInit(s, &by_class, 1), CKR_OPERATION_ACTIVE);
    EXPECT(f->C_FindObjects(s, NULL, 16, &count), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_FindObjects(s, found, 16, NULL), CKR_ARGUMENTS_BAD);
    count = 99;
    EXPECT(f->C_FindObjects(s, found, 1, &count), CKR_OK);
    CHECK(count == 1);
    EXPECT(f->C_FindObjects(s, found, 16, &count), CKR_OK);
    CHECK(count == 2); /* three secret keys in all */
    EXPECT(f->C_FindObjects(s, found, 16, &count), CKR_OK);
    CHECK(count == 0);
    EXPECT(f->C_FindObjectsFinal(s), CKR_OK);
    EXPECT(f->C_FindObjectsInit(s, &by_class, 1), CKR_OK);
    count = 99;
    EXPECT(f->C_FindObjects(s, found, 0, &count), CKR_OK); /* room for none: none written */
    CHECK(count == 0);
    EXPECT(f->C_FindObjects(s, found, 16, &count), CKR_OK);
    CHECK(count == 3);
    EXPECT(f->C_FindObjectsFinal(s), CKR_OK);
    EXPECT(f->C_FindObjectsFinal(s), CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_FindObjectsInit(s, NULL, 0), CKR_OK); /* everything */
    count = 0;
    EXPECT(f->C_FindObjects(s, found, 16, &count), CKR_OK);
    if (count != 4) printf("      found %lu objects\n", count);
    CHECK(count == 4);
    EXPECT(f->C_FindObjectsFinal(s), CKR_OK);
}

/* ------------------------------------------------------------------------------------------------ */
/* Every standard attribute of a secret key answers (DESIGN §2: N2HE keys too)                      */

void test_standard_attributes(CK_SESSION_HANDLE s) {
    section = "standard secret-key attributes";
    static const CK_ATTRIBUTE_TYPE types[] = {
        CKA_CLASS, CKA_TOKEN, CKA_PRIVATE, CKA_LABEL, CKA_MODIFIABLE, CKA_COPYABLE, CKA_DESTROYABLE,
        CKA_KEY_TYPE, CKA_ID, CKA_START_DATE, CKA_END_DATE, CKA_DERIVE, CKA_LOCAL, CKA_KEY_GEN_MECHANISM,
        CKA_ALLOWED_MECHANISMS, CKA_SENSITIVE, CKA_ENCRYPT, CKA_DECRYPT, CKA_SIGN, CKA_VERIFY, CKA_WRAP,
        CKA_UNWRAP, CKA_EXTRACTABLE, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE, CKA_WRAP_WITH_TRUSTED,
        CKA_TRUSTED, CKA_WRAP_TEMPLATE, CKA_UNWRAP_TEMPLATE, CKA_VALUE_LEN, CKA_VALUE, CKA_CHECK_VALUE,
    };
    const CK_OBJECT_HANDLE keys[2] = { aes_key, n2he_key };
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
            CK_ATTRIBUTE a = { types[i], NULL, 0 };
            CK_RV rv = f->C_GetAttributeValue(s, keys[k], &a, 1);
            char what[96];
            snprintf(what, sizeof what, "%s key: C_GetAttributeValue(0x%lx)", k ? "N2HE" : "AES", types[i]);
            /* CKA_VALUE and CKA_CHECK_VALUE of a sensitive key may be withheld; nothing is "invalid". */
            const CK_RV ok[] = { CKR_OK, CKR_ATTRIBUTE_SENSITIVE };
            expect_rv(what, __LINE__, rv, ok, types[i] == CKA_VALUE || types[i] == CKA_CHECK_VALUE ? 2 : 1);
            if (rv == CKR_OK && a.ulValueLen > 0 && a.ulValueLen < 65536) {
                /* And a fetch into a buffer of exactly that size works. */
                void *buf = calloc(1, a.ulValueLen);
                CK_ULONG want = a.ulValueLen;
                a.pValue = buf;
                if ((types[i] & CKF_ARRAY_ATTRIBUTE) && types[i] != CKA_ALLOWED_MECHANISMS) {
                    rv = f->C_GetAttributeValue(s, keys[k], &a, 1); /* nested types + lengths */
                } else {
                    rv = f->C_GetAttributeValue(s, keys[k], &a, 1);
                }
                expect_rv(what, __LINE__, rv, ok, 1);
                CHECK(a.ulValueLen == want);
                free(buf);
            }
        }
    }
}
