/*
 * abi_fuzz.c — seeded random templates, mechanisms, parameters, ciphertexts and wrapped blobs: every answer
 * must be a precise CK_RV, and the host must survive.
 */
#include "abi_sweep.h"

/* ------------------------------------------------------------------------------------------------ */
/* Seeded random inputs: whatever arrives in valid memory, the answer is a precise CK_RV — never    */
/* CKR_GENERAL_ERROR / CKR_FUNCTION_FAILED / CKR_HOST_MEMORY — and the host survives.              */

static uint64_t rng_state = 0x7467616269737765ULL; /* "tgabiswe" */
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static const CK_ATTRIBUTE_TYPE fuzz_types[] = {
    CKA_CLASS, CKA_TOKEN, CKA_PRIVATE, CKA_LABEL, CKA_VALUE, CKA_KEY_TYPE, CKA_VALUE_LEN, CKA_ENCRYPT,
    CKA_DECRYPT, CKA_WRAP, CKA_UNWRAP, CKA_SIGN, CKA_VERIFY, CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_ID,
    CKA_MODIFIABLE, CKA_COPYABLE, CKA_DESTROYABLE, CKA_WRAP_TEMPLATE, CKA_UNWRAP_TEMPLATE, CKA_DERIVE_TEMPLATE,
    CKA_ALLOWED_MECHANISMS, CKA_APPLICATION, CKA_OBJECT_ID, CKA_START_DATE, CKA_END_DATE, CKA_WRAP_WITH_TRUSTED,
    CKA_TRUSTED, CKA_CHECK_VALUE, CKA_TG_N2HE_DIMENSION, CKA_TG_N2HE_MODULUS_BITS, CKA_TG_N2HE_PLAINTEXT_BITS,
    CKA_TG_N2HE_NOISE_MILLI, CKA_TG_N2HE_SECURITY_BITS, 0x7FFFFFF0UL, CKA_VENDOR_DEFINED, ULONG_MAX,
};
#define FUZZ_TYPE_COUNT (sizeof fuzz_types / sizeof fuzz_types[0])

/* Values live in this pool for the whole iteration; lengths never exceed what is really there. */
static CK_BYTE fuzz_pool[4096];
static size_t fuzz_used;
static CK_ATTRIBUTE fuzz_nested[64];
static size_t fuzz_nested_used;

static void *fuzz_bytes(size_t n) {
    if (fuzz_used + n > sizeof fuzz_pool) fuzz_used = 0;
    CK_BYTE *p = fuzz_pool + fuzz_used;
    fuzz_used += n;
    uint64_t r = rnd();
    for (size_t i = 0; i < n; i++) {
        switch (r % 4) {
        case 0: p[i] = (CK_BYTE)rnd(); break;      /* noise */
        case 1: p[i] = i == 0 ? (CK_BYTE)(rnd() % 3) : 0; break; /* small little-endian numbers, 0/1/2 bools */
        case 2: p[i] = 0xFF; break;
        default: p[i] = (CK_BYTE)('a' + i % 26); break;
        }
    }
    return p;
}

static void fuzz_attribute(CK_ATTRIBUTE *a, int depth) {
    a->type = fuzz_types[rnd() % FUZZ_TYPE_COUNT];
    if ((a->type == CKA_WRAP_TEMPLATE || a->type == CKA_UNWRAP_TEMPLATE || a->type == CKA_DERIVE_TEMPLATE) &&
        depth == 0 && rnd() % 2 && fuzz_nested_used + 3 <= 64) {
        size_t n = rnd() % 4;
        if (fuzz_nested_used + n > 64) n = 0;
        CK_ATTRIBUTE *nested = fuzz_nested + fuzz_nested_used;
        fuzz_nested_used += n;
        for (size_t i = 0; i < n; i++) fuzz_attribute(&nested[i], depth + 1);
        a->pValue = n ? nested : NULL;
        a->ulValueLen = n * sizeof(CK_ATTRIBUTE);
        return;
    }
    static const size_t sizes[] = { 0, 1, 2, 4, 7, 8, 9, 16, 24, 32, 33, 64, 100 };
    size_t len = sizes[rnd() % (sizeof sizes / sizeof sizes[0])];
    a->pValue = len ? fuzz_bytes(len) : (rnd() % 2 ? NULL : fuzz_bytes(1));
    a->ulValueLen = len;
}

static CK_ULONG fuzz_template(CK_ATTRIBUTE *tmpl, CK_ULONG max) {
    fuzz_nested_used = 0;
    CK_ULONG n = rnd() % (max + 1);
    for (CK_ULONG i = 0; i < n; i++) fuzz_attribute(&tmpl[i], 0);
    /* Usually a plausible class first, so the calls get past "incomplete". */
    if (n > 0 && rnd() % 4 != 0) {
        static CK_OBJECT_CLASS classes[] = { CKO_DATA, CKO_SECRET_KEY, CKO_PUBLIC_KEY, 0x7FFF };
        tmpl[0].type = CKA_CLASS;
        tmpl[0].pValue = &classes[rnd() % 4];
        tmpl[0].ulValueLen = sizeof(CK_OBJECT_CLASS);
    }
    return n;
}

static int fuzz_rv_bad(CK_RV rv) {
    return rv == CKR_GENERAL_ERROR || rv == CKR_FUNCTION_FAILED || rv == CKR_HOST_MEMORY ||
           rv == CKR_DEVICE_ERROR || rv == CKR_CRYPTOKI_NOT_INITIALIZED;
}

struct fuzz_family { const char *name; long calls, ok, bad; CK_RV first_bad; long first_iteration; };

static void fuzz_note(struct fuzz_family *fam, CK_RV rv, long iteration) {
    fam->calls++;
    if (rv == CKR_OK) fam->ok++;
    if (fuzz_rv_bad(rv)) {
        if (fam->bad++ == 0) {
            fam->first_bad = rv;
            fam->first_iteration = iteration;
        }
    }
}

void test_fuzz(CK_SESSION_HANDLE s) {
    section = "seeded random inputs";
    printf("      random-input seed 0x%llx\n", (unsigned long long)rng_state);
    struct fuzz_family create = { "C_CreateObject", 0, 0, 0, 0, 0 }, generate = { "C_GenerateKey", 0, 0, 0, 0, 0 },
        find = { "C_FindObjectsInit", 0, 0, 0, 0, 0 }, get = { "C_GetAttributeValue", 0, 0, 0, 0, 0 },
        set = { "C_SetAttributeValue", 0, 0, 0, 0, 0 }, crypt = { "C_EncryptInit/C_Encrypt", 0, 0, 0, 0, 0 },
        unwrap = { "C_UnwrapKey", 0, 0, 0, 0, 0 };
    static const CK_MECHANISM_TYPE mechs[] = {
        CKM_AES_KEY_GEN, CKM_GENERIC_SECRET_KEY_GEN, CKM_TG_N2HE_KEY_GEN, CKM_AES_GCM, CKM_AES_CBC, CKM_AES_CBC_PAD,
        CKM_AES_ECB, CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_PAD, CKM_TG_N2HE_LWE1, CKM_TG_N2HE_LWE2, CKM_SHA256,
        CKM_SHA256_HMAC, 0x7FFFFFF0UL,
    };
    CK_ATTRIBUTE tmpl[12];
    CK_OBJECT_HANDLE scratch = 0;
    {
        CK_ATTRIBUTE d[] = { { CKA_CLASS, &data_class, sizeof data_class }, { CKA_TOKEN, &no, 1 } };
        EXPECT(f->C_CreateObject(s, d, 2, &scratch), CKR_OK);
    }
    for (long it = 0; it < 1000; it++) {
        CK_OBJECT_HANDLE h = 0;
        CK_ULONG n = fuzz_template(tmpl, 8);
        CK_RV rv = f->C_CreateObject(s, tmpl, n, &h);
        fuzz_note(&create, rv, it);
        if (rv == CKR_OK) f->C_DestroyObject(s, h);

        n = fuzz_template(tmpl, 8);
        CK_BYTE param[48];
        for (size_t i = 0; i < sizeof param; i++) param[i] = (CK_BYTE)rnd();
        CK_MECHANISM m = { mechs[rnd() % 3], rnd() % 4 ? NULL : param, 0 };
        m.ulParameterLen = m.pParameter ? rnd() % sizeof param : 0;
        if (n > 0) tmpl[0].type = rnd() % 2 ? CKA_VALUE_LEN : CKA_TOKEN; /* no class needed for generate */
        rv = f->C_GenerateKey(s, &m, tmpl, n, &h);
        fuzz_note(&generate, rv, it);
        if (rv == CKR_OK) f->C_DestroyObject(s, h);

        n = fuzz_template(tmpl, 4);
        rv = f->C_FindObjectsInit(s, tmpl, n);
        fuzz_note(&find, rv, it);
        if (rv == CKR_OK) {
            CK_OBJECT_HANDLE found[8];
            CK_ULONG count;
            fuzz_note(&find, f->C_FindObjects(s, found, 8, &count), it);
            fuzz_note(&find, f->C_FindObjectsFinal(s), it);
        }

        /* Random types, random buffer sizes, on every kind of object. */
        n = fuzz_template(tmpl, 10);
        static CK_ATTRIBUTE nested_out[4];
        for (CK_ULONG i = 0; i < n; i++) {
            if (tmpl[i].pValue == NULL) tmpl[i].ulValueLen = 0;
            CK_ATTRIBUTE_TYPE t = tmpl[i].type;
            if (t == CKA_WRAP_TEMPLATE || t == CKA_UNWRAP_TEMPLATE || t == CKA_DERIVE_TEMPLATE) {
                /* The module writes through the nested pValues: they must be real (here: NULL, so the
                 * answer is types and lengths), or the test, not the module, corrupts memory. */
                memset(nested_out, 0, sizeof nested_out);
                tmpl[i].pValue = rnd() % 2 ? nested_out : NULL;
                tmpl[i].ulValueLen = tmpl[i].pValue ? (rnd() % 5) * sizeof(CK_ATTRIBUTE) : 0;
            }
        }
        const CK_OBJECT_HANDLE objects[] = { data_object, aes_key, n2he_key, aes_wrapping_key };
        rv = f->C_GetAttributeValue(s, objects[rnd() % 4], tmpl, n);
        fuzz_note(&get, rv, it);

        n = fuzz_template(tmpl, 3);
        if (n > 0 && tmpl[0].type == CKA_CLASS) tmpl[0].type = CKA_LABEL;
        rv = f->C_SetAttributeValue(s, scratch, tmpl, n);
        fuzz_note(&set, rv, it);

        /* Random mechanism and parameter bytes on a random key; if it starts, a random-size call. */
        CK_GCM_PARAMS gcm = { param, rnd() % 17, 0, param + 16, rnd() % 16, (rnd() % 3) * 32 + 64 };
        CK_MECHANISM em = { mechs[3 + rnd() % 11], param, 0 };
        if (em.mechanism == CKM_AES_GCM && rnd() % 4) {
            em.pParameter = &gcm;
            em.ulParameterLen = sizeof gcm;
        } else {
            em.ulParameterLen = rnd() % 3 ? rnd() % 33 : 0;
            if (em.ulParameterLen == 0 && rnd() % 2) em.pParameter = NULL;
        }
        const CK_OBJECT_HANDLE keys[] = { aes_key, n2he_key, aes_wrapping_key, data_object };
        CK_OBJECT_HANDLE key = keys[rnd() % 4];
        int decrypt = rnd() % 2;
        rv = decrypt ? f->C_DecryptInit(s, &em, key) : f->C_EncryptInit(s, &em, key);
        fuzz_note(&crypt, rv, it);
        if (rv == CKR_OK) {
            CK_BYTE in[256], out[8192];
            for (size_t i = 0; i < sizeof in; i++) in[i] = (CK_BYTE)rnd();
            CK_ULONG in_len = rnd() % 5 == 0 ? rnd() % 256 : 8 * (rnd() % 8 + 1);
            CK_ULONG out_len = rnd() % 2 ? sizeof out : rnd() % 64;
            rv = decrypt ? f->C_Decrypt(s, in, in_len, rnd() % 4 ? out : NULL, &out_len)
                         : f->C_Encrypt(s, in, in_len, rnd() % 4 ? out : NULL, &out_len);
            fuzz_note(&crypt, rv, it);
            f->C_SessionCancel(s, CKF_ENCRYPT | CKF_DECRYPT);
        }

        /* Random wrapped blobs under the wrapping key. */
        CK_BYTE blob[96];
        for (size_t i = 0; i < sizeof blob; i++) blob[i] = (CK_BYTE)rnd();
        n = fuzz_template(tmpl, 6);
        CK_MECHANISM wm = { rnd() % 2 ? CKM_AES_KEY_WRAP_PAD : CKM_AES_KEY_WRAP, NULL, 0 };
        rv = f->C_UnwrapKey(s, &wm, aes_wrapping_key, blob, rnd() % sizeof blob, tmpl, n, &h);
        fuzz_note(&unwrap, rv, it);
        if (rv == CKR_OK) f->C_DestroyObject(s, h);
    }
    struct fuzz_family *all[] = { &create, &generate, &find, &get, &set, &crypt, &unwrap };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        struct fuzz_family *fam = all[i];
        char what[160];
        snprintf(what, sizeof what, "%s: %ld random calls (%ld CKR_OK), %ld imprecise answers (first %s at iteration %ld)",
                 fam->name, fam->calls, fam->ok, fam->bad, fam->bad ? rv_name(fam->first_bad) : "-",
                 fam->bad ? fam->first_iteration : -1L);
        printf("      %s\n", what);
        check(what, __LINE__, fam->bad == 0);
    }
    f->C_DestroyObject(s, scratch);
}
