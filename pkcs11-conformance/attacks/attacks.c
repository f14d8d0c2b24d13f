/*
 * attacks — issue 17's attacks on a PKCS#11 module, driven only through its C API (the module is dlopened).
 *
 *   attacks --module PATH --kind ours|softhsm|other [--token LABEL] CASE...   run the named cases
 *   attacks --list                                                           print the case names, one a line
 *   attacks --selftest                                                       N2HE and AES-KW known answers
 *
 * The user and SO PINs come from $TG_ATTACK_PIN / $TG_ATTACK_SO_PIN (test tokens only). Every case runs in a
 * child process of its own (the parent never loads the module) and prints what it tried, the CK_RV of each
 * call, then one line
 *
 *   RESULT|<case>|<verdict>|<decisive call>|<CK_RV name>|<detail>
 *
 * with verdict EXTRACTED (the key's value was recovered and checked against the key itself), BROKE_RULE (the
 * rule of issue 17 / spec17.md was observably broken), REFUSED (the attack did not get the key or break the
 * rule), N/A (not applicable to this module) or ERROR (the case could not run: setup failed). A verdict never
 * rests on a CK_RV alone: EXTRACTED means the recovered value was compared with the key (AES: an AES-ECB block
 * the module computed with the key; N2HE: the module's own C_Encrypt output decrypted with the recovered key).
 *
 * Cases marked "config" need a configuration written by run.sh (two tokens on one store, a backend module that
 * must not be loaded); run.sh passes the paths in TG_ATTACK_* variables.
 */
#include <p11-kit/pkcs11.h>
#include "../../Include/tensorguard-pkcs11.h"
#include "attacks.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CKA_TG_N2HE_DECRYPT_RULE
#define CKA_TG_N2HE_DECRYPT_RULE 0xD4470008UL
#endif

/* ---- globals --------------------------------------------------------------------------------------- */

static const char *g_module, *g_kind = "other", *g_token = "attacks";
static const char *g_pin, *g_so_pin;
static CK_FUNCTION_LIST_PTR F;
static CK_SLOT_ID SLOT;
static void *g_handle;

enum verdict { V_EXTRACTED, V_BROKE, V_REFUSED, V_NA, V_ERROR };
static const char *verdict_name[] = {"EXTRACTED", "BROKE_RULE", "REFUSED", "N/A", "ERROR"};

/* The decisive call of the running case and its CK_RV, and a one-line detail for the summary. */
static char g_call[200];
static CK_RV g_rv;
static int g_have_rv;
static char g_detail[256];

/* The last call made through CALL(), for cases that stop at the first refusal. */
static char g_last_call[200];
static CK_RV g_last_rv;

static const char *rvname(CK_RV rv) {
    switch (rv) {
#define N(x) case x: return #x;
        N(CKR_OK) N(CKR_CANCEL) N(CKR_HOST_MEMORY) N(CKR_SLOT_ID_INVALID) N(CKR_GENERAL_ERROR) N(CKR_FUNCTION_FAILED)
        N(CKR_ARGUMENTS_BAD) N(CKR_ATTRIBUTE_READ_ONLY) N(CKR_ATTRIBUTE_SENSITIVE) N(CKR_ATTRIBUTE_TYPE_INVALID)
        N(CKR_ATTRIBUTE_VALUE_INVALID) N(CKR_ACTION_PROHIBITED) N(CKR_DATA_INVALID) N(CKR_DATA_LEN_RANGE)
        N(CKR_DEVICE_ERROR) N(CKR_DEVICE_MEMORY) N(CKR_DEVICE_REMOVED) N(CKR_ENCRYPTED_DATA_INVALID)
        N(CKR_ENCRYPTED_DATA_LEN_RANGE) N(CKR_FUNCTION_NOT_SUPPORTED) N(CKR_KEY_HANDLE_INVALID)
        N(CKR_KEY_SIZE_RANGE) N(CKR_KEY_TYPE_INCONSISTENT) N(CKR_KEY_NOT_NEEDED) N(CKR_KEY_CHANGED)
        N(CKR_KEY_NEEDED) N(CKR_KEY_INDIGESTIBLE) N(CKR_KEY_FUNCTION_NOT_PERMITTED) N(CKR_KEY_NOT_WRAPPABLE)
        N(CKR_KEY_UNEXTRACTABLE) N(CKR_MECHANISM_INVALID) N(CKR_MECHANISM_PARAM_INVALID)
        N(CKR_OBJECT_HANDLE_INVALID) N(CKR_OPERATION_ACTIVE) N(CKR_OPERATION_NOT_INITIALIZED) N(CKR_PIN_INCORRECT)
        N(CKR_PIN_INVALID) N(CKR_PIN_LEN_RANGE) N(CKR_PIN_LOCKED) N(CKR_SESSION_CLOSED) N(CKR_SESSION_COUNT)
        N(CKR_SESSION_HANDLE_INVALID) N(CKR_SESSION_READ_ONLY) N(CKR_SESSION_EXISTS)
        N(CKR_SESSION_READ_WRITE_SO_EXISTS) N(CKR_TEMPLATE_INCOMPLETE) N(CKR_TEMPLATE_INCONSISTENT)
        N(CKR_TOKEN_NOT_PRESENT) N(CKR_TOKEN_NOT_RECOGNIZED) N(CKR_TOKEN_WRITE_PROTECTED)
        N(CKR_UNWRAPPING_KEY_HANDLE_INVALID) N(CKR_UNWRAPPING_KEY_SIZE_RANGE)
        N(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT) N(CKR_USER_ALREADY_LOGGED_IN) N(CKR_USER_NOT_LOGGED_IN)
        N(CKR_USER_PIN_NOT_INITIALIZED) N(CKR_USER_TYPE_INVALID) N(CKR_USER_ANOTHER_ALREADY_LOGGED_IN)
        N(CKR_WRAPPED_KEY_INVALID) N(CKR_WRAPPED_KEY_LEN_RANGE) N(CKR_WRAPPING_KEY_HANDLE_INVALID)
        N(CKR_WRAPPING_KEY_SIZE_RANGE) N(CKR_WRAPPING_KEY_TYPE_INCONSISTENT) N(CKR_RANDOM_NO_RNG)
        N(CKR_BUFFER_TOO_SMALL) N(CKR_CRYPTOKI_NOT_INITIALIZED) N(CKR_CRYPTOKI_ALREADY_INITIALIZED)
        N(CKR_FUNCTION_REJECTED) N(CKR_DOMAIN_PARAMS_INVALID)
#undef N
    default: {
        static char buf[32];
        snprintf(buf, sizeof buf, "CKR_0x%lx", (unsigned long)rv);
        return buf;
    }
    }
}

static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("    ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
}

/* Prints "what -> CKR_x" and remembers it as the last call. */
static CK_RV logrv(const char *what, CK_RV rv) {
    say("%s -> %s", what, rvname(rv));
    snprintf(g_last_call, sizeof g_last_call, "%.190s", what);
    g_last_rv = rv;
    return rv;
}

static void decide(const char *call, CK_RV rv) {
    snprintf(g_call, sizeof g_call, "%s", call);
    g_rv = rv;
    g_have_rv = 1;
}

static void decide_last(void) { decide(g_last_call, g_last_rv); }

static void detail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_detail, sizeof g_detail, fmt, ap);
    va_end(ap);
}

static void rnd(void *p, size_t n) {
    if (RAND_bytes(p, (int)n) != 1) {
        say("RAND_bytes failed");
        _exit(3);
    }
}

/* ---- templates --------------------------------------------------------------------------------------- */

typedef struct {
    CK_ATTRIBUTE a[40];
    CK_ULONG n;
    unsigned char store[2048];
    size_t used;
} tpl_t;

static void *t_alloc(tpl_t *t, size_t len) {
    t->used = (t->used + 7) & ~(size_t)7;
    if (t->used + len > sizeof t->store || t->n >= 40) {
        say("template overflow");
        _exit(3);
    }
    void *p = t->store + t->used;
    t->used += len;
    return p;
}

static void t_ref(tpl_t *t, CK_ATTRIBUTE_TYPE type, void *p, CK_ULONG len) {
    if (t->n >= 40) _exit(3);
    t->a[t->n].type = type;
    t->a[t->n].pValue = p;
    t->a[t->n].ulValueLen = len;
    t->n++;
}

static void t_bytes(tpl_t *t, CK_ATTRIBUTE_TYPE type, const void *p, size_t len) {
    void *d = t_alloc(t, len ? len : 1);
    memcpy(d, p, len);
    t_ref(t, type, d, (CK_ULONG)len);
}

static void t_bool(tpl_t *t, CK_ATTRIBUTE_TYPE type, int v) {
    CK_BBOOL b = v ? CK_TRUE : CK_FALSE;
    t_bytes(t, type, &b, sizeof b);
}

static void t_ulong(tpl_t *t, CK_ATTRIBUTE_TYPE type, CK_ULONG v) { t_bytes(t, type, &v, sizeof v); }

static void t_str(tpl_t *t, CK_ATTRIBUTE_TYPE type, const char *s) { t_bytes(t, type, s, strlen(s)); }

static void t_init(tpl_t *t) { memset(t, 0, sizeof *t); }

/* ---- module loading -------------------------------------------------------------------------------- */

static int is_ours(void) { return strcmp(g_kind, "ours") == 0; }

static CK_RV load_module(void) {
    g_handle = dlopen(g_module, RTLD_NOW | RTLD_LOCAL);
    if (!g_handle) {
        say("dlopen %s: %s", g_module, dlerror());
        return CKR_GENERAL_ERROR;
    }
    CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(g_handle, "C_GetFunctionList");
    if (!gfl) return CKR_GENERAL_ERROR;
    CK_RV rv = gfl(&F);
    if (rv != CKR_OK) return rv;
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof args);
    args.flags = CKF_OS_LOCKING_OK;
    return F->C_Initialize(&args);
}

static CK_RV find_slot(const char *label, CK_SLOT_ID *out) {
    CK_SLOT_ID slots[64];
    CK_ULONG n = 64;
    CK_RV rv = F->C_GetSlotList(CK_TRUE, slots, &n);
    if (rv != CKR_OK) return rv;
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        if (F->C_GetTokenInfo(slots[i], &ti) != CKR_OK) continue;
        char l[33];
        memcpy(l, ti.label, 32);
        l[32] = 0;
        for (int j = 31; j >= 0 && l[j] == ' '; j--) l[j] = 0;
        if (strcmp(l, label) == 0) {
            *out = slots[i];
            return CKR_OK;
        }
    }
    return CKR_TOKEN_NOT_PRESENT;
}

#define PIN(p) (CK_UTF8CHAR_PTR)(p), (CK_ULONG)strlen(p)

static CK_RV open_session(CK_SESSION_HANDLE *s, CK_USER_TYPE who) {
    CK_RV rv = F->C_OpenSession(SLOT, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, s);
    if (rv != CKR_OK) return logrv("C_OpenSession", rv);
    const char *pin = who == CKU_SO ? g_so_pin : g_pin;
    rv = F->C_Login(*s, who, PIN(pin));
    if (rv == CKR_USER_ALREADY_LOGGED_IN) rv = CKR_OK;
    if (rv != CKR_OK) logrv(who == CKU_SO ? "C_Login(SO)" : "C_Login(USER)", rv);
    return rv;
}

/* ---- object helpers ----------------------------------------------------------------------------------- */

static CK_RV gen_key(CK_SESSION_HANDLE s, CK_MECHANISM_TYPE mech, tpl_t *t, CK_OBJECT_HANDLE *h, const char *what) {
    CK_MECHANISM m = {mech, NULL, 0};
    *h = CK_INVALID_HANDLE;
    CK_RV rv = F->C_GenerateKey(s, &m, t->a, t->n, h);
    logrv(what, rv);
    return rv;
}

/* An AES-256 session key; `t` carries the caller's attributes (VALUE_LEN and TOKEN=FALSE are added). */
static CK_RV gen_aes(CK_SESSION_HANDLE s, tpl_t *t, CK_OBJECT_HANDLE *h, const char *what) {
    t_ulong(t, CKA_VALUE_LEN, 32);
    t_bool(t, CKA_TOKEN, 0);
    return gen_key(s, CKM_AES_KEY_GEN, t, h, what);
}

/* The usual victim: an AES-256 key that is sensitive but extractable, usable for AES-ECB (so a recovered
 * value can be checked against it), no wrap roles. */
static CK_RV victim_aes(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE *h, int wrap_with_trusted) {
    tpl_t t;
    t_init(&t);
    t_bool(&t, CKA_SENSITIVE, 1);
    t_bool(&t, CKA_EXTRACTABLE, 1);
    t_bool(&t, CKA_ENCRYPT, 1);
    t_str(&t, CKA_LABEL, "victim");
    if (wrap_with_trusted) t_bool(&t, CKA_WRAP_WITH_TRUSTED, 1);
    return gen_aes(s, &t, h, wrap_with_trusted
                                 ? "C_GenerateKey(victim AES-256: SENSITIVE, EXTRACTABLE, WRAP_WITH_TRUSTED)"
                                 : "C_GenerateKey(victim AES-256: SENSITIVE, EXTRACTABLE)");
}

static CK_RV get_attr(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type, void *buf, CK_ULONG *len) {
    CK_ATTRIBUTE a = {type, buf, *len};
    CK_RV rv = F->C_GetAttributeValue(s, h, &a, 1);
    *len = a.ulValueLen;
    return rv;
}

/* -1: unreadable */
static int get_bool(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type) {
    CK_BBOOL b = 0;
    CK_ULONG len = sizeof b;
    if (get_attr(s, h, type, &b, &len) != CKR_OK || len != sizeof b) return -1;
    return b ? 1 : 0;
}

static CK_RV set_attrs(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, tpl_t *t, const char *what) {
    return logrv(what, F->C_SetAttributeValue(s, h, t->a, t->n));
}

static CK_RV wrap_key(CK_SESSION_HANDLE s, CK_MECHANISM_TYPE mech, CK_OBJECT_HANDLE wrapping, CK_OBJECT_HANDLE key,
                      uint8_t *out, CK_ULONG *len, const char *what) {
    CK_MECHANISM m = {mech, NULL, 0};
    return logrv(what, F->C_WrapKey(s, &m, wrapping, key, out, len));
}

static CK_RV p11crypt(CK_SESSION_HANDLE s, int encrypt, CK_MECHANISM_TYPE mech, void *param, CK_ULONG plen,
                   CK_OBJECT_HANDLE k, const uint8_t *in, size_t inlen, uint8_t *out, CK_ULONG *outlen, int quiet,
                   const char *what) {
    CK_MECHANISM m = {mech, param, plen};
    CK_RV rv = encrypt ? F->C_EncryptInit(s, &m, k) : F->C_DecryptInit(s, &m, k);
    if (rv != CKR_OK) {
        char w[180];
        snprintf(w, sizeof w, "%s (%.150s)", encrypt ? "C_EncryptInit" : "C_DecryptInit", what);
        if (quiet) {
            snprintf(g_last_call, sizeof g_last_call, "%s", w);
            g_last_rv = rv;
        } else {
            logrv(w, rv);
        }
        return rv;
    }
    rv = encrypt ? F->C_Encrypt(s, (CK_BYTE_PTR)in, (CK_ULONG)inlen, out, outlen)
                 : F->C_Decrypt(s, (CK_BYTE_PTR)in, (CK_ULONG)inlen, out, outlen);
    char w[180];
    snprintf(w, sizeof w, "%s (%.150s)", encrypt ? "C_Encrypt" : "C_Decrypt", what);
    if (quiet) {
        snprintf(g_last_call, sizeof g_last_call, "%s", w);
        g_last_rv = rv;
    } else {
        logrv(w, rv);
    }
    return rv;
}

/* Does `value` equal the AES key `victim`? The module encrypts a random block with the victim (AES-ECB), OpenSSL
 * with `value`. 1 yes, 0 no, -1 cannot tell. */
static int aes_matches(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE victim, const uint8_t *value, size_t len) {
    if (len != 16 && len != 24 && len != 32) return 0;
    uint8_t block[16], theirs[16], ours[16];
    rnd(block, 16);
    CK_ULONG olen = 16;
    CK_RV rv = p11crypt(s, 1, CKM_AES_ECB, NULL, 0, victim, block, 16, theirs, &olen, 1, "AES-ECB check of the victim");
    if (rv != CKR_OK || olen != 16) {
        say("cannot check the value: AES-ECB with the victim -> %s", rvname(rv));
        return -1;
    }
    void *c = tg_aes_ctx_new(value, len, 1);
    int ok = c && tg_aes_block(c, block, ours) == 0 && memcmp(ours, theirs, 16) == 0;
    if (c) tg_aes_ctx_free(c);
    return ok;
}

/* ---- N2HE helpers -------------------------------------------------------------------------------------- */

typedef struct {
    CK_ULONG n, logq, logt;
} n2he_params;

static CK_RV n2he_gen(CK_SESSION_HANDLE s, int extractable, int token, const char *label, CK_OBJECT_HANDLE *h) {
    tpl_t t;
    t_init(&t);
    t_ulong(&t, CKA_CLASS, CKO_SECRET_KEY);
    t_ulong(&t, CKA_KEY_TYPE, CKK_TG_N2HE);
    t_bool(&t, CKA_TOKEN, token);
    t_bool(&t, CKA_PRIVATE, 1);
    t_bool(&t, CKA_SENSITIVE, 1);
    t_bool(&t, CKA_EXTRACTABLE, extractable);
    t_bool(&t, CKA_ENCRYPT, 1);
    t_bool(&t, CKA_DECRYPT, 1);
    t_str(&t, CKA_LABEL, label);
    return gen_key(s, CKM_TG_N2HE_KEY_GEN, &t, h,
                   extractable ? "C_GenerateKey(CKM_TG_N2HE_KEY_GEN: victim N2HE key, SENSITIVE, EXTRACTABLE)"
                               : "C_GenerateKey(CKM_TG_N2HE_KEY_GEN: victim N2HE key, SENSITIVE, not extractable)");
}

static int n2he_get_params(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, n2he_params *p) {
    CK_ULONG v, len;
    p->n = 1024, p->logq = 32, p->logt = 16;
    len = sizeof v;
    if (get_attr(s, h, CKA_TG_N2HE_DIMENSION, &v, &len) == CKR_OK) p->n = v;
    len = sizeof v;
    if (get_attr(s, h, CKA_TG_N2HE_MODULUS_BITS, &v, &len) == CKR_OK) p->logq = v;
    len = sizeof v;
    if (get_attr(s, h, CKA_TG_N2HE_PLAINTEXT_BITS, &v, &len) == CKR_OK) p->logt = v;
    if ((p->logq != 32 && p->logq != 48) || p->logt < 2 || p->logt >= p->logq || p->n < 1 || p->n > 65536) {
        say("unexpected N2HE parameters n=%lu logq=%lu logt=%lu", p->n, p->logq, p->logt);
        return -1;
    }
    return 0;
}

/* C_Encrypt(CKM_TG_N2HE_LWE2) of `vals` (k entries) with key h: a malloc'ed LWE2 ciphertext, NULL on refusal. */
static uint8_t *n2he_encrypt(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, const uint64_t *vals, size_t k, size_t *ctlen,
                             int quiet) {
    uint8_t *pt = malloc(8 * k);
    size_t cap = 45 + 8 * k + 64;
    uint8_t *ct = malloc(cap);
    if (!pt || !ct) _exit(3);
    for (size_t i = 0; i < k; i++) tg_put_le64(pt + 8 * i, vals[i]);
    CK_ULONG olen = (CK_ULONG)cap;
    CK_RV rv = p11crypt(s, 1, CKM_TG_N2HE_LWE2, NULL, 0, h, pt, 8 * k, ct, &olen, quiet, "CKM_TG_N2HE_LWE2");
    free(pt);
    if (rv != CKR_OK) {
        free(ct);
        return NULL;
    }
    *ctlen = olen;
    return ct;
}

/* C_Decrypt of an N2HE ciphertext: 0 and k values in out, or the CK_RV. */
static CK_RV n2he_decrypt(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_MECHANISM_TYPE mech, const uint8_t *ct,
                          size_t len, uint64_t *out, size_t k, int quiet, const char *what) {
    uint8_t *pt = malloc(8 * k + 64);
    if (!pt) _exit(3);
    CK_ULONG olen = (CK_ULONG)(8 * k + 64);
    CK_RV rv = p11crypt(s, 0, mech, NULL, 0, h, ct, len, pt, &olen, quiet, what);
    if (rv == CKR_OK) {
        if (olen != 8 * k) {
            say("C_Decrypt returned %lu bytes, expected %zu", (unsigned long)olen, 8 * k);
            rv = CKR_GENERAL_ERROR;
        } else {
            for (size_t i = 0; i < k; i++) out[i] = tg_le64(pt + 8 * i);
        }
    }
    free(pt);
    return rv;
}

/* Is s the key h? The module encrypts 64 random messages with h (LWE2); we decrypt them with s. 1/0/-1. */
static int n2he_matches(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, const int8_t *key, const n2he_params *p) {
    enum { K = 64 };
    uint64_t m[K], out[K];
    uint64_t tmask = (1ull << p->logt) - 1;
    for (int i = 0; i < K; i++) {
        uint64_t r;
        rnd(&r, sizeof r);
        m[i] = r & tmask;
    }
    size_t len;
    uint8_t *ct = n2he_encrypt(s, h, m, K, &len, 1);
    if (!ct) {
        say("cannot check the recovered key: C_Encrypt with the victim -> %s", rvname(g_last_rv));
        return -1;
    }
    int k = tg_lwe2_decrypt_local(ct, len, key, (uint32_t)p->n, (int)p->logq, (int)p->logt, out, K);
    free(ct);
    if (k != K) return 0;
    int good = 0;
    for (int i = 0; i < K; i++) good += out[i] == m[i];
    say("check: %d/%d of the module's own LWE2 ciphertexts (C_Encrypt with the victim) decrypt with the recovered key",
        good, K);
    return good == K;
}

static int n2he_from_bytes(const uint8_t *b, size_t len, int8_t *s, size_t n) {
    if (len != 8 * n) return -1;
    for (size_t i = 0; i < n; i++) {
        int64_t v = (int64_t)tg_le64(b + 8 * i);
        if (v < -1 || v > 1) return -1;
        s[i] = (int8_t)v;
    }
    return 0;
}

static int ours_only(void) {
    if (is_ours()) return 0;
    say("vendor N2HE mechanisms: not offered by this module");
    detail("no N2HE mechanisms");
    return 1;
}

/* ---- block oracles: the module's AES-ECB / AES-CBC (IV 0) as a raw AES block function ------------------------- */

typedef struct {
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE k;
    CK_MECHANISM_TYPE mech;
    int encrypt;
    CK_RV rv;
    long calls;
} oracle_t;

static int oracle_block(void *vctx, const uint8_t in[16], uint8_t out[16]) {
    oracle_t *o = vctx;
    uint8_t iv[16] = {0};
    CK_ULONG olen = 16;
    o->calls++;
    int cbc = o->mech == CKM_AES_CBC;
    o->rv = p11crypt(o->s, o->encrypt, o->mech, cbc ? iv : NULL, cbc ? 16 : 0, o->k, in, 16, out, &olen, 1,
                  cbc ? "AES-CBC IV=0, one block" : "AES-ECB, one block");
    return o->rv == CKR_OK && olen == 16 ? 0 : -1;
}

static const char *mech_name(CK_MECHANISM_TYPE m) {
    switch (m) {
    case CKM_AES_KEY_WRAP: return "CKM_AES_KEY_WRAP";
    case CKM_AES_KEY_WRAP_PAD: return "CKM_AES_KEY_WRAP_PAD";
    case CKM_AES_ECB: return "CKM_AES_ECB";
    case CKM_AES_CBC: return "CKM_AES_CBC";
    case CKM_TG_N2HE_LWE1: return "CKM_TG_N2HE_LWE1";
    case CKM_TG_N2HE_LWE2: return "CKM_TG_N2HE_LWE2";
    default: return "mechanism";
    }
}

/* A key holding both roles `a` and `b` (e.g. CKA_WRAP and CKA_DECRYPT), sensitive and not extractable, tried three
 * ways: both at C_GenerateKey; `a` at generation then `b` by C_SetAttributeValue; `b` then `a`. `extra` adds
 * attributes (may be NULL). Returns the handle or CK_INVALID_HANDLE (the last refusal is in g_last_*). */
static CK_OBJECT_HANDLE dual_role_key(CK_SESSION_HANDLE s, CK_ATTRIBUTE_TYPE a, const char *an, CK_ATTRIBUTE_TYPE b,
                                      const char *bn, void (*extra)(tpl_t *)) {
    CK_OBJECT_HANDLE h;
    char what[160];
    tpl_t t;
    CK_RV first;
    t_init(&t);
    t_bool(&t, a, 1);
    t_bool(&t, b, 1);
    t_bool(&t, CKA_SENSITIVE, 1);
    t_bool(&t, CKA_EXTRACTABLE, 0);
    if (extra) extra(&t);
    snprintf(what, sizeof what, "C_GenerateKey(AES-256 with %s+%s)", an, bn);
    if ((first = gen_aes(s, &t, &h, what)) == CKR_OK) return h;
    char fcall[200];
    snprintf(fcall, sizeof fcall, "%s", g_last_call);
    for (int order = 0; order < 2; order++) {
        CK_ATTRIBUTE_TYPE x = order ? b : a, y = order ? a : b;
        const char *xn = order ? bn : an, *yn = order ? an : bn;
        t_init(&t);
        t_bool(&t, x, 1);
        t_bool(&t, y, 0);
        t_bool(&t, CKA_SENSITIVE, 1);
        t_bool(&t, CKA_EXTRACTABLE, 0);
        if (extra) extra(&t);
        snprintf(what, sizeof what, "C_GenerateKey(AES-256 with %s only)", xn);
        if (gen_aes(s, &t, &h, what) != CKR_OK) continue;
        tpl_t u;
        t_init(&u);
        t_bool(&u, y, 1);
        snprintf(what, sizeof what, "C_SetAttributeValue(%s=TRUE on it)", yn);
        if (set_attrs(s, h, &u, what) == CKR_OK && get_bool(s, h, y) == 1) return h;
        F->C_DestroyObject(s, h);
    }
    /* Report the refusal of the direct request: it is the rule's first line of defence. */
    snprintf(g_last_call, sizeof g_last_call, "%s", fcall);
    g_last_rv = first;
    return CK_INVALID_HANDLE;
}

/* ================================================================ N2HE cases ============================== */

/* Unit-vector LWE1 rows: A = delta * e_i, B = 0 decrypts to -s_i mod t. One scalar LWE1 ciphertext per entry. */
static enum verdict case_n2he_lwe1_unit(CK_SESSION_HANDLE s) {
    if (ours_only()) return V_NA;
    say("tries: one scalar LWE1 ciphertext per key entry, A = delta*e_i, B = 0 (C_Decrypt answers -s_i mod t)");
    CK_OBJECT_HANDLE v;
    n2he_params p;
    if (n2he_gen(s, 0, 0, "n2he-victim", &v) != CKR_OK || n2he_get_params(s, v, &p) != 0) return V_ERROR;
    uint64_t delta = 1ull << (p.logq - p.logt), t = 1ull << p.logt;
    uint64_t *A = calloc(p.n, 8);
    int8_t *key = calloc(p.n, 1);
    uint64_t B = 0, m;
    size_t len, got = 0;
    CK_RV rv = CKR_OK;
    for (size_t i = 0; i < p.n; i++) {
        memset(A, 0, 8 * p.n);
        A[i] = delta;
        uint8_t *ct = tg_lwe1_build(A, &B, 1, (uint32_t)p.n, 0, &len);
        rv = n2he_decrypt(s, v, CKM_TG_N2HE_LWE1, ct, len, &m, 1, i > 0, "CKM_TG_N2HE_LWE1, unit row");
        free(ct);
        if (rv != CKR_OK) break;
        key[i] = m == 0 ? 0 : m == t - 1 ? 1 : m == 1 ? -1 : 9;
        got++;
    }
    decide("C_Decrypt(CKM_TG_N2HE_LWE1, unit row)", rv);
    say("%zu of %lu C_Decrypt calls answered (last: %s)", got, p.n, rvname(rv));
    if (got < p.n) {
        detail("%zu/%lu rows answered", got, p.n);
        free(A); free(key);
        return V_REFUSED;
    }
    int ok = n2he_matches(s, v, key, &p);
    detail("%lu entries from %lu calls; key %s", p.n, p.n, ok == 1 ? "verified" : "NOT verified");
    free(A); free(key);
    return ok == 1 ? V_EXTRACTED : V_REFUSED;
}

/* Packed rows: row r holds delta*3^j at entry 10r+j, so the answer is -(sum 3^j s_j) mod t, a balanced-ternary
 * number that gives ten entries at once; ceil(n/10) rows in ONE LWE1 batch ciphertext, one C_Decrypt. */
/* The packed LWE1 batch against key h (parameters p) through `mech`: 0 and the key in `key`, or the CK_RV. */
static CK_RV packed_recover(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, const n2he_params *pp, CK_MECHANISM_TYPE mech,
                            int8_t *key) {
    n2he_params p = *pp;
    uint64_t delta = 1ull << (p.logq - p.logt), t = 1ull << p.logt;
    int per = 0;
    uint64_t pw = 1;
    while ((pw * 3 - 1) / 2 < t / 2 && pw * 3 < t) pw *= 3, per++;   /* (3^per - 1)/2 < t/2 */
    size_t rows = (p.n + per - 1) / per;
    say("packed rows: %zu rows (%d entries each, A[r][%d r+j] = delta*3^j, B = 0) in one LWE1 batch ciphertext "
        "through C_Decrypt(%s)", rows, per, per, mech_name(mech));
    uint64_t *A = calloc(rows * p.n, 8), *B = calloc(rows, 8), *out = calloc(rows, 8);
    for (size_t r = 0; r < rows; r++) {
        uint64_t c = delta;
        for (int j = 0; j < per && r * per + j < p.n; j++, c *= 3) A[r * p.n + r * per + j] = c;
    }
    size_t len;
    uint8_t *ct = tg_lwe1_build(A, B, (uint32_t)rows, (uint32_t)p.n, 1, &len);
    char what[96];
    snprintf(what, sizeof what, "%s, %zu packed LWE1 rows", mech_name(mech), rows);
    CK_RV rv = n2he_decrypt(s, h, mech, ct, len, out, rows, 0, what);
    free(ct);
    if (rv == CKR_OK) {
        for (size_t r = 0; r < rows; r++) {
            int64_t w = (int64_t)out[r];
            if ((uint64_t)w > t / 2) w -= (int64_t)t;
            w = -w;
            for (int j = 0; j < per && r * per + j < p.n; j++) {
                int64_t d = ((w % 3) + 3) % 3;
                int sj = d == 2 ? -1 : (int)d;
                key[r * per + j] = (int8_t)sj;
                w = (w - sj) / 3;
            }
        }
    }
    free(A); free(B); free(out);
    return rv;
}

/* Packed rows: row r holds delta*3^j at entry 10r+j, so the answer is -(sum 3^j s_j) mod t, a balanced-ternary
 * number that gives ten entries at once; ceil(n/10) rows in ONE LWE1 batch ciphertext, one C_Decrypt. */
static enum verdict packed_attack(CK_SESSION_HANDLE s, CK_MECHANISM_TYPE mech) {
    CK_OBJECT_HANDLE v;
    n2he_params p;
    say("tries: one LWE1 batch ciphertext of packed rows through C_Decrypt(%s)", mech_name(mech));
    if (n2he_gen(s, 0, 0, "n2he-victim", &v) != CKR_OK || n2he_get_params(s, v, &p) != 0) return V_ERROR;
    int8_t *key = calloc(p.n, 1);
    CK_RV rv = packed_recover(s, v, &p, mech, key);
    char what[96];
    snprintf(what, sizeof what, "C_Decrypt(%s, LWE1 bytes)", mech_name(mech));
    decide(what, rv);
    enum verdict res = V_REFUSED;
    if (rv == CKR_OK) {
        int ok = n2he_matches(s, v, key, &p);
        detail("%lu entries from 1 call; key %s", p.n, ok == 1 ? "verified" : "NOT verified");
        res = ok == 1 ? V_EXTRACTED : V_REFUSED;
    } else {
        detail("LWE1 batch refused");
    }
    free(key);
    return res;
}

/* The decryption rule can only tighten: a default (seeded-once) key must not become `raw` by C_SetAttributeValue,
 * by C_CopyObject, or by wrapping it and unwrapping the blob with CKA_TG_N2HE_DECRYPT_RULE = RAW; whatever handle a
 * route yields is then hit with the packed LWE1 batch. A module that does not know the attribute
 * (CKR_ATTRIBUTE_TYPE_INVALID) has no rule: every key of it is raw, and the route is retried without it. */
static enum verdict case_n2he_rule_loosen(CK_SESSION_HANDLE s) {
    if (ours_only()) return V_NA;
    say("tries: a default N2HE key (extractable) made `raw` by (a) C_SetAttributeValue, (b) C_CopyObject, (c) C_WrapKey "
        "+ C_UnwrapKey with CKA_TG_N2HE_DECRYPT_RULE = RAW; then the packed LWE1 batch on the result");
    CK_OBJECT_HANDLE v, w;
    n2he_params p;
    if (n2he_gen(s, 1, 0, "n2he-victim", &v) != CKR_OK || n2he_get_params(s, v, &p) != 0) return V_ERROR;
    tpl_t t;
    t_init(&t);
    t_bool(&t, CKA_WRAP, 1);
    t_bool(&t, CKA_UNWRAP, 1);
    t_bool(&t, CKA_SENSITIVE, 1);
    t_bool(&t, CKA_EXTRACTABLE, 0);
    if (gen_aes(s, &t, &w, "C_GenerateKey(AES-256 wrapping key: WRAP+UNWRAP, sensitive, not extractable)") != CKR_OK)
        return V_ERROR;
    int8_t *key = calloc(p.n, 1);
    int won = 0;
    CK_RV first_rv = CKR_OK;
    char first_call[200] = "";
    for (int route = 0; route < 3 && !won; route++) {
        for (int with_rule = 1; with_rule >= 0; with_rule--) {
            tpl_t u;
            t_init(&u);
            if (with_rule) t_ulong(&u, CKA_TG_N2HE_DECRYPT_RULE, CKV_TG_N2HE_RAW);
            CK_OBJECT_HANDLE target = CK_INVALID_HANDLE;
            CK_RV rv;
            const char *call;
            if (route == 0) {
                call = with_rule ? "(a) C_SetAttributeValue(DECRYPT_RULE=RAW)" : "(a) no rule attribute: the key as it is";
                rv = with_rule ? set_attrs(s, v, &u, call) : CKR_OK;
                target = v;
            } else if (route == 1) {
                call = with_rule ? "(b) C_CopyObject({DECRYPT_RULE=RAW})" : "(b) C_CopyObject({})";
                rv = logrv(call, F->C_CopyObject(s, v, u.a, u.n, &target));
            } else {
                uint8_t *blob = malloc(8 * p.n + 64);
                CK_ULONG bl = (CK_ULONG)(8 * p.n + 64);
                rv = wrap_key(s, CKM_AES_KEY_WRAP_PAD, w, v, blob, &bl, "(c) C_WrapKey(KWP, N2HE key)");
                call = with_rule ? "(c) C_UnwrapKey(KWP, {N2HE, DECRYPT_RULE=RAW})" : "(c) C_UnwrapKey(KWP, {N2HE})";
                if (rv == CKR_OK) {
                    t_ulong(&u, CKA_CLASS, CKO_SECRET_KEY);
                    t_ulong(&u, CKA_KEY_TYPE, CKK_TG_N2HE);
                    t_bool(&u, CKA_TOKEN, 0);
                    t_bool(&u, CKA_DECRYPT, 1);
                    CK_MECHANISM um = {CKM_AES_KEY_WRAP_PAD, NULL, 0};
                    rv = logrv(call, F->C_UnwrapKey(s, &um, w, blob, bl, u.a, u.n, &target));
                }
                free(blob);
            }
            if (rv == CKR_ATTRIBUTE_TYPE_INVALID && with_rule) {
                say("    the module does not know CKA_TG_N2HE_DECRYPT_RULE (no rule: every key is raw); again without it");
                continue;
            }
            if (rv == CKR_OK && target != CK_INVALID_HANDLE) {
                CK_ULONG rule = 0, rl = sizeof rule;
                if (get_attr(s, target, CKA_TG_N2HE_DECRYPT_RULE, &rule, &rl) == CKR_OK)
                    say("    resulting key's DECRYPT_RULE = %lu (%s)", (unsigned long)rule,
                        rule == CKV_TG_N2HE_RAW ? "raw" : rule == CKV_TG_N2HE_SEEDED_ONCE ? "seeded-once" : "?");
                rv = packed_recover(s, target, &p, CKM_TG_N2HE_LWE1, key);
                if (rv == CKR_OK && n2he_matches(s, v, key, &p) == 1) {
                    say("route %c: the key recovered (verified)", 'a' + route);
                    decide(call, CKR_OK);
                    detail("route (%c)%s: key recovered with one LWE1 batch", 'a' + route,
                           with_rule ? "" : " (module has no decryption rule)");
                    won = 1;
                    break;
                }
            }
            if (!first_call[0]) {
                first_rv = g_last_rv;
                snprintf(first_call, sizeof first_call, "%s", g_last_call);
            }
            break;
        }
    }
    free(key);
    if (won) return V_EXTRACTED;
    decide(first_call, first_rv);
    detail("the rule cannot be loosened");
    return V_REFUSED;
}

static enum verdict case_n2he_lwe1_packed(CK_SESSION_HANDLE s) {
    if (ours_only()) return V_NA;
    return packed_attack(s, CKM_TG_N2HE_LWE1);
}

static enum verdict case_n2he_lwe1_via_lwe2(CK_SESSION_HANDLE s) {
    if (ours_only()) return V_NA;
    return packed_attack(s, CKM_TG_N2HE_LWE2);
}

static uint32_t inv32(uint32_t a) {   /* a odd: inverse mod 2^32 (Newton) */
    uint32_t x = a;
    for (int i = 0; i < 5; i++) x *= 2 - a * x;
    return x;
}

/* Solves y = A s (mod 2^32) for s in {-1,0,1}^n, A k x n (k >= n), by Gaussian elimination with odd pivots. */
static int solve_ternary(const uint64_t *A, const uint64_t *y, size_t k, size_t n, int8_t *s) {
    size_t w = n + 1;
    uint32_t *M = malloc(4 * k * w);
    if (!M) return -1;
    for (size_t r = 0; r < k; r++) {
        for (size_t j = 0; j < n; j++) M[r * w + j] = (uint32_t)A[r * n + j];
        M[r * w + n] = (uint32_t)y[r];
    }
    for (size_t c = 0; c < n; c++) {
        size_t p = c;
        while (p < k && !(M[p * w + c] & 1)) p++;
        if (p == k) { free(M); return -1; }
        if (p != c)
            for (size_t j = c; j < w; j++) { uint32_t tmp = M[p * w + j]; M[p * w + j] = M[c * w + j]; M[c * w + j] = tmp; }
        uint32_t iv = inv32(M[c * w + c]);
        for (size_t j = c; j < w; j++) M[c * w + j] *= iv;
        const uint32_t *pr = M + c * w;
        for (size_t r = c + 1; r < k; r++) {
            uint32_t f = M[r * w + c];
            if (!f) continue;
            uint32_t *rr = M + r * w;
            for (size_t j = c; j < w; j++) rr[j] -= f * pr[j];
        }
    }
    uint32_t *x = calloc(n, 4);
    for (size_t c = n; c-- > 0;) {
        uint32_t acc = M[c * w + n];
        for (size_t j = c + 1; j < n; j++) acc -= M[c * w + j] * x[j];
        x[c] = acc;
    }
    int ok = 0;
    for (size_t j = 0; j < n; j++) {
        if (x[j] == 0) s[j] = 0;
        else if (x[j] == 1) s[j] = 1;
        else if (x[j] == 0xffffffffu) s[j] = -1;
        else ok = -1;
    }
    free(x);
    free(M);
    return ok;
}

/* The binary search itself: C_Encrypt with v for a seed, then call i (0..16) decrypts that seed with B varied under
 * dh[i] (the same key every time, or copies of it). EXTRACTED when the key is recovered and checked against v. */
static enum verdict bsearch_run(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE v, const CK_OBJECT_HANDLE *dh, n2he_params p,
                                int aliases) {
    if (p.n > 65536) return V_ERROR;
    size_t k = p.n + 40;
    int shift = (int)(p.logq - p.logt);
    uint64_t delta = 1ull << shift, qmask = (1ull << p.logq) - 1;
    uint64_t *zeros = calloc(k, 8);
    size_t len;
    uint8_t *ct = n2he_encrypt(s, v, zeros, k, &len, 0);
    if (!ct) return V_ERROR;
    uint8_t seed[32];
    uint32_t kk, nn;
    uint64_t *B0;
    if (tg_lwe2_parse(ct, len, seed, &kk, &nn, &B0) != 0 || kk != k) return V_ERROR;
    free(B0);
    free(ct);
    /* aliases: call i >= 2 sends another seed with the same expansion (tg_seed_alias), checked here first */
    uint8_t alias[17][32];
    for (int i = 0; i < 17; i++) {
        memcpy(alias[i], seed, 32);
        if (aliases && i > 0 && tg_seed_alias(seed, (uint32_t)i, alias[i]) != 0) return V_ERROR;
    }
    if (aliases) {
        uint64_t *A1 = malloc(8 * 2 * p.n), *A2 = malloc(8 * 2 * p.n);
        int same = 1;
        tg_expand(seed, 2, p.n, (int)p.logq, A1);
        for (int i = 1; i < 17; i++) {
            tg_expand(alias[i], 2, p.n, (int)p.logq, A2);
            same &= memcmp(A1, A2, 8 * 2 * p.n) == 0;
        }
        free(A1); free(A2);
        say("16 other seeds with the same SeedSequence pool computed; their A equals the seed's A: %s", same ? "yes" : "NO");
        if (!same) return V_ERROR;
    }
    uint64_t *B = calloc(k, 8), *m0 = calloc(k, 8), *m = calloc(k, 8);
    uint64_t *lo = calloc(k, 8), *hi = calloc(k, 8);
    CK_RV rv;
    int calls = 0;
    uint8_t *q = tg_lwe2_build(seed, B, (uint32_t)k, (uint32_t)p.n, &len);
    rv = n2he_decrypt(s, dh[0], CKM_TG_N2HE_LWE2, q, len, m0, k, 0, "LWE2, the seed with B = 0 (call 1)");
    free(q);
    calls++;
    if (rv == CKR_OK) {
        for (size_t r = 0; r < k; r++) lo[r] = 1, hi[r] = delta;
        for (int it = 0; it < shift; it++) {
            for (size_t r = 0; r < k; r++) B[r] = (lo[r] + hi[r]) / 2;
            q = tg_lwe2_build(alias[it + 1], B, (uint32_t)k, (uint32_t)p.n, &len);
            char what[80];
            snprintf(what, sizeof what, "LWE2, %s, B varied (call %d)", aliases ? "an alias seed (same A)" : "the same seed again",
                     calls + 1);
            rv = n2he_decrypt(s, dh[it + 1], CKM_TG_N2HE_LWE2, q, len, m, k, it > 0, what);
            if (it == 0 && rv == CKR_OK) say("(the other %d calls of the search are not printed)", shift - 1);
            free(q);
            calls++;
            if (rv != CKR_OK) break;
            for (size_t r = 0; r < k; r++) {
                if (m[r] != m0[r]) hi[r] = B[r];
                else lo[r] = B[r] + 1;
            }
        }
    }
    if (rv != CKR_OK) {
        if (calls > 2) {
            char lc[200];
            snprintf(lc, sizeof lc, "%s", g_last_call);
            logrv(lc, rv);
        }
        decide("C_Decrypt(LWE2, repeated seed)", rv);
        detail("the seed was answered %d time(s), then refused", calls - 1);
        say("%d call(s) answered", calls - 1);
        return V_REFUSED;
    }
    decide("C_Decrypt(LWE2, repeated seed)", rv);
    say("%d C_Decrypt calls on one seed's A answered", calls);
    /* The first B > 0 where the answer changes is x* = delta(j + 1/2) (+1 when j = m0 is even: a tie rounds to the
     * even side) above -y. One case stays ambiguous: -y exactly on a tie that rounded up, where no change happens
     * below B = delta; such rows (search ended at delta, probability 1/delta each) are left out of the system. */
    uint64_t *y = calloc(k, 8);
    uint64_t *A = malloc(8 * k * p.n);
    tg_expand(seed, k, p.n, (int)p.logq, A);
    size_t used = 0;
    for (size_t r = 0; r < k; r++) {
        if (lo[r] >= delta) continue;
        uint64_t x_star = (m0[r] << shift) + delta / 2 + ((m0[r] & 1) ? 0 : 1);
        y[used] = (lo[r] - x_star) & qmask;
        if (used != r) memmove(A + used * p.n, A + r * p.n, 8 * p.n);
        used++;
    }
    if (used < k) say("%zu ambiguous row(s) left out", k - used);
    int8_t *key = calloc(p.n, 1);
    int solved = used >= p.n ? solve_ternary(A, y, used, p.n, key) : -1;
    free(A);
    say("linear system A s = y (mod 2^32): %s", solved == 0 ? "solved, ternary solution" : "no ternary solution");
    int ok = solved == 0 ? n2he_matches(s, v, key, &p) : 0;
    detail("%d calls on one seed; key %s", calls, ok == 1 ? "verified" : "NOT recovered");
    return ok == 1 ? V_EXTRACTED : V_BROKE;   /* 17 answers for one seed break seeded-once even if solving failed */
}

/* Honest LWE2 only: one seed from C_Encrypt, re-sent with B varied. Call 1 (B = 0) gives m0 = round(-y/delta) per row
 * (y = A s); 16 more calls binary-search, per row at once, the smallest B where the answer changes: that boundary
 * gives y exactly. k = n + 40 rows of exact y = A s solve for s. 17 C_Decrypt calls in all. */
static enum verdict case_n2he_lwe2_bsearch(CK_SESSION_HANDLE s) {
    if (ours_only()) return V_NA;
    CK_OBJECT_HANDLE v, dh[17];
    n2he_params p;
    if (n2he_gen(s, 0, 0, "n2he-victim", &v) != CKR_OK || n2he_get_params(s, v, &p) != 0) return V_ERROR;
    say("tries: C_Encrypt(LWE2) of n+40 zeros for a seed, then 17 C_Decrypt(LWE2) of that seed with B varied "
        "(binary search on every row at once), then solve A s = y mod 2^32");
    for (int i = 0; i < 17; i++) dh[i] = v;
    return bsearch_run(s, v, dh, p, 0);
}

/* "Each seed once" must mean each A once: numpy's SeedSequence folds a 256-bit seed into a 128-bit pool, and the
 * pool mixing is invertible, so every seed has 2^32 and more other 32-byte seeds with the identical PCG64 stream
 * (tg_seed_alias). The 17-call binary search with call 1 on the seed and calls 2..17 on 16 aliases. */
static enum verdict case_n2he_seed_alias(CK_SESSION_HANDLE s) {
    if (ours_only()) return V_NA;
    say("tries: the 17-call binary search on one C_Encrypt seed, calls 2..17 sent under other seeds whose SeedSequence "
        "pool (so PCG64 stream, so A) is the same");
    CK_OBJECT_HANDLE v, dh[17];
    n2he_params p;
    if (n2he_gen(s, 0, 0, "n2he-victim", &v) != CKR_OK || n2he_get_params(s, v, &p) != 0) return V_ERROR;
    for (int i = 0; i < 17; i++) dh[i] = v;
    enum verdict r = bsearch_run(s, v, dh, p, 1);
    if (r == V_BROKE) detail("one A answered 17 times under alias seeds (smudged: key not solved exactly)");
    return r;
}

/* "Each seed once per key": copies of the key must not bring fresh seed records. The binary search of one seed with
 * call i on copy i: (a) 16 C_CopyObject({}) copies of a session key; (b) 16 C_CopyObject({TOKEN=FALSE}) session
 * copies of a token key; (c) 16 C_UnwrapKey copies of one blob of an extractable key. */
static enum verdict case_n2he_copies_reseed(CK_SESSION_HANDLE s) {
    if (ours_only()) return V_NA;
    say("tries: the 17-call binary search on one seed, each call under another copy of the key: (a) C_CopyObject of a "
        "session key, (b) session copies (C_CopyObject TOKEN=FALSE) of a token key, (c) C_UnwrapKey copies of one blob");
    CK_RV first_rv = CKR_OK, wrv = CKR_OK;
    char first_call[200] = "", wcall[200] = "", broke[64] = "";
    int off = 0;
    enum verdict worst = V_REFUSED;
    for (int route = 0; route < 3; route++) {
        CK_OBJECT_HANDLE v, dh[17], w = CK_INVALID_HANDLE;
        n2he_params p;
        char label[64];
        snprintf(label, sizeof label, "reseed-%d-%d", (int)getpid(), route);
        if (n2he_gen(s, route == 2, route == 1, label, &v) != CKR_OK || n2he_get_params(s, v, &p) != 0) return V_ERROR;
        uint8_t *blob = NULL;
        CK_ULONG bl = 0;
        if (route == 2) {
            tpl_t t;
            t_init(&t);
            t_bool(&t, CKA_WRAP, 1);
            t_bool(&t, CKA_UNWRAP, 1);
            t_bool(&t, CKA_SENSITIVE, 1);
            t_bool(&t, CKA_EXTRACTABLE, 0);
            if (gen_aes(s, &t, &w, "(c) C_GenerateKey(AES-256 wrapping key: WRAP+UNWRAP)") != CKR_OK) return V_ERROR;
            blob = malloc(8 * p.n + 64);
            bl = (CK_ULONG)(8 * p.n + 64);
            if (wrap_key(s, CKM_AES_KEY_WRAP_PAD, w, v, blob, &bl, "(c) C_WrapKey(KWP, N2HE key)") != CKR_OK) return V_ERROR;
        }
        dh[0] = v;
        CK_RV rv = CKR_OK;
        int made = 0;
        for (int i = 1; i < 17 && rv == CKR_OK; i++) {
            tpl_t u;
            t_init(&u);
            const char *what;
            if (route == 2) {
                t_ulong(&u, CKA_CLASS, CKO_SECRET_KEY);
                t_ulong(&u, CKA_KEY_TYPE, CKK_TG_N2HE);
                t_bool(&u, CKA_TOKEN, 0);
                t_bool(&u, CKA_ENCRYPT, 1);
                t_bool(&u, CKA_DECRYPT, 1);
                CK_MECHANISM um = {CKM_AES_KEY_WRAP_PAD, NULL, 0};
                what = "(c) C_UnwrapKey(KWP, the N2HE blob)";
                rv = F->C_UnwrapKey(s, &um, w, blob, bl, u.a, u.n, &dh[i]);
            } else {
                if (route == 1) t_bool(&u, CKA_TOKEN, 0);
                what = route == 1 ? "(b) C_CopyObject(token key, {TOKEN=FALSE})" : "(a) C_CopyObject(session key, {})";
                rv = F->C_CopyObject(s, v, u.a, u.n, &dh[i]);
            }
            if (i == 1 || rv != CKR_OK) logrv(what, rv);
            if (rv == CKR_OK) made++;
        }
        free(blob);
        enum verdict r = V_REFUSED;
        if (rv == CKR_OK) {
            say("%d copies made", made);
            r = bsearch_run(s, v, dh, p, 0);
        }
        if (route == 1) {   /* the token key: tidy up */
            F->C_DestroyObject(s, v);
        }
        if (r == V_EXTRACTED || r == V_BROKE) {
            say("route (%c): %s", 'a' + route, r == V_EXTRACTED ? "key recovered" : "one seed answered under every copy");
            if (worst == V_REFUSED || (r == V_EXTRACTED && worst == V_BROKE)) {
                worst = r;
                snprintf(wcall, sizeof wcall, "%s", g_call);
                wrv = g_rv;
            }
            off += snprintf(broke + off, sizeof broke - off, " (%c)%s", 'a' + route, r == V_EXTRACTED ? " key" : "");
            if (off >= (int)sizeof broke) off = sizeof broke - 1;
        } else if (r == V_ERROR) {
            return V_ERROR;
        } else if (!first_call[0]) {
            first_rv = g_last_rv;
            snprintf(first_call, sizeof first_call, "%s", g_last_call);
        }
    }
    if (worst != V_REFUSED) {
        decide(wcall, wrv);
        detail("seed answered under copies by route(s)%s", broke);
        return worst;
    }
    decide(first_call, first_rv);
    detail("copies share the key's seed record");
    return V_REFUSED;
}

/* Multi-part decryption must keep the same rules as C_Decrypt: C_DecryptInit + C_DecryptUpdate (two chunks) +
 * C_DecryptFinal of (a) the packed LWE1 batch through LWE1, (b) through LWE2, (c) an LWE2 ciphertext already
 * decrypted once by C_Decrypt, (d) C_Decrypt of one first decrypted multi-part. */
static CK_RV multipart_decrypt(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_MECHANISM_TYPE mech, const uint8_t *ct,
                               size_t len, uint8_t *out, size_t cap, size_t *outlen, const char *what) {
    CK_MECHANISM m = {mech, NULL, 0};
    char w[200];
    CK_RV rv = F->C_DecryptInit(s, &m, h);
    if (rv != CKR_OK) {
        snprintf(w, sizeof w, "C_DecryptInit (%s)", what);
        return logrv(w, rv);
    }
    size_t half = len / 2, got = 0;
    for (int part = 0; part < 2; part++) {
        CK_ULONG ol = (CK_ULONG)(cap - got);
        rv = F->C_DecryptUpdate(s, (CK_BYTE_PTR)(ct + (part ? half : 0)), (CK_ULONG)(part ? len - half : half),
                                out + got, &ol);
        if (rv != CKR_OK) {
            snprintf(w, sizeof w, "C_DecryptUpdate (%s, part %d)", what, part + 1);
            return logrv(w, rv);
        }
        got += ol;
    }
    CK_ULONG ol = (CK_ULONG)(cap - got);
    rv = F->C_DecryptFinal(s, out + got, &ol);
    snprintf(w, sizeof w, "C_DecryptFinal (%s)", what);
    logrv(w, rv);
    if (rv == CKR_OK) got += ol;
    *outlen = got;
    return rv;
}

static enum verdict case_n2he_multipart(CK_SESSION_HANDLE s) {
    if (ours_only()) return V_NA;
    say("tries: multi-part decryption (C_DecryptInit/Update x2/Final): (a) packed LWE1 batch through LWE1, (b) through "
        "LWE2, (c) an LWE2 ciphertext C_Decrypt-ed before, (d) C_Decrypt after a multi-part decryption");
    CK_OBJECT_HANDLE v;
    n2he_params p;
    if (n2he_gen(s, 0, 0, "n2he-victim", &v) != CKR_OK || n2he_get_params(s, v, &p) != 0) return V_ERROR;
    uint64_t delta = 1ull << (p.logq - p.logt), t = 1ull << p.logt;
    const int per = 10;
    if (p.logt != 16) return V_ERROR;
    size_t rows = (p.n + per - 1) / per;
    uint64_t *A = calloc(rows * p.n, 8), *B = calloc(rows, 8);
    for (size_t r = 0; r < rows; r++) {
        uint64_t c = delta;
        for (int j = 0; j < per && r * per + j < p.n; j++, c *= 3) A[r * p.n + r * per + j] = c;
    }
    size_t len, got;
    uint8_t *ct = tg_lwe1_build(A, B, (uint32_t)rows, (uint32_t)p.n, 1, &len);
    free(A); free(B);
    size_t cap = 8 * rows + 64;
    uint8_t *out = malloc(cap > 4096 ? cap : 4096);
    int8_t *key = calloc(p.n, 1);
    int broke = 0, extracted = 0;
    CK_RV drv = CKR_OK;
    char dcall[200] = "";
    CK_MECHANISM_TYPE ms[2] = {CKM_TG_N2HE_LWE1, CKM_TG_N2HE_LWE2};
    for (int i = 0; i < 2; i++) {
        char what[80];
        snprintf(what, sizeof what, "(%c) %s, packed LWE1 rows", 'a' + i, mech_name(ms[i]));
        CK_RV rv = multipart_decrypt(s, v, ms[i], ct, len, out, cap, &got, what);
        if (!dcall[0]) drv = rv, snprintf(dcall, sizeof dcall, "C_DecryptFinal(%s, LWE1 bytes)", mech_name(ms[i]));
        if (rv == CKR_OK && got == 8 * rows) {
            for (size_t r = 0; r < rows; r++) {
                int64_t w = (int64_t)tg_le64(out + 8 * r);
                if ((uint64_t)w > t / 2) w -= (int64_t)t;
                w = -w;
                for (int j = 0; j < per && r * per + j < p.n; j++) {
                    int64_t d = ((w % 3) + 3) % 3;
                    int sj = d == 2 ? -1 : (int)d;
                    key[r * per + j] = (int8_t)sj;
                    w = (w - sj) / 3;
                }
            }
            if (n2he_matches(s, v, key, &p) == 1) {
                say("(%c) key recovered through the multi-part path", 'a' + i);
                if (!extracted) drv = rv, snprintf(dcall, sizeof dcall, "C_DecryptFinal(%s, LWE1 bytes)", mech_name(ms[i]));
                extracted = 1;
            }
        }
    }
    free(ct);
    /* (c) and (d) */
    enum { K = 8 };
    for (int order = 0; order < 2; order++) {
        uint64_t msg[K], res[K];
        for (int i = 0; i < K; i++) msg[i] = (uint64_t)(i * 977 + order + 1) & (t - 1);
        uint8_t *c2 = n2he_encrypt(s, v, msg, K, &len, 1);
        if (!c2) return V_ERROR;
        CK_RV r1, r2;
        int same1 = 0, same2 = 0;
        if (order == 0) {
            r1 = n2he_decrypt(s, v, CKM_TG_N2HE_LWE2, c2, len, res, K, 0, "(c) LWE2, honest, single-part");
            same1 = r1 == CKR_OK && !memcmp(res, msg, sizeof msg);
            r2 = multipart_decrypt(s, v, CKM_TG_N2HE_LWE2, c2, len, out, cap, &got, "(c) LWE2, the same again");
            if (r2 == CKR_OK && got == 8 * K) {
                for (int i = 0; i < K; i++) res[i] = tg_le64(out + 8 * i);
                same2 = !memcmp(res, msg, sizeof msg);
            }
        } else {
            r1 = multipart_decrypt(s, v, CKM_TG_N2HE_LWE2, c2, len, out, cap, &got, "(d) LWE2, honest, multi-part");
            if (r1 == CKR_OK && got == 8 * K) {
                for (int i = 0; i < K; i++) res[i] = tg_le64(out + 8 * i);
                same1 = !memcmp(res, msg, sizeof msg);
            }
            r2 = n2he_decrypt(s, v, CKM_TG_N2HE_LWE2, c2, len, res, K, 0, "(d) LWE2, the same again, single-part");
            same2 = r2 == CKR_OK && !memcmp(res, msg, sizeof msg);
        }
        free(c2);
        if (!same1) say("(%c) note: the honest first decryption did not give the message", 'c' + order);
        if (same1 && same2) {
            say("(%c) one seed decrypted twice", 'c' + order);
            if (!extracted && !broke) drv = r2, snprintf(dcall, sizeof dcall, "second decryption of a seed (%c)",
                                                         'c' + order);
            broke = 1;
        }
    }
    free(out); free(key);
    decide(dcall, drv);
    if (extracted) {
        detail("key recovered through C_DecryptUpdate/Final%s", broke ? "; seeds reused" : "");
        return V_EXTRACTED;
    }
    detail(broke ? "a seed decrypted twice across single- and multi-part" : "multi-part keeps the rules");
    return broke ? V_BROKE : V_REFUSED;
}

/* A seeded sum that repeats a seed: LWS1 [S1, S1]; LWS1 [S1, S2] after S1 was decrypted alone; and the SDK's own
 * form of a sum (LWE1 with A = A1 + A1). A control LWS1 of two fresh seeds shows whether LWS1 is read at all. */
static enum verdict case_n2he_lws1_repeat(CK_SESSION_HANDLE s) {
    if (ours_only()) return V_NA;
    CK_OBJECT_HANDLE v;
    n2he_params p;
    if (n2he_gen(s, 0, 0, "n2he-victim", &v) != CKR_OK || n2he_get_params(s, v, &p) != 0) return V_ERROR;
    enum { K = 16 };
    uint64_t tmask = (1ull << p.logt) - 1, qmask = (1ull << p.logq) - 1;
    uint64_t msg[5][K], exp[K], out[K];
    uint8_t seeds[5][32];
    uint64_t *Bs[5];
    for (int c = 0; c < 5; c++) {
        for (int i = 0; i < K; i++) {
            uint64_t r;
            rnd(&r, sizeof r);
            msg[c][i] = r & tmask & 0x3fff;
        }
        size_t len;
        uint8_t *ct = n2he_encrypt(s, v, msg[c], K, &len, c > 0);
        uint32_t kk, nn;
        if (!ct || tg_lwe2_parse(ct, len, seeds[c], &kk, &nn, &Bs[c]) != 0) return V_ERROR;
        free(ct);
    }
    say("tries: (a) LWS1 naming seed S1 twice; (b) S1 decrypted as LWE2, then LWS1 [S1, S2]; (c) the SDK's sum form "
        "(LWE1, A = A1 + A1) through LWE2 and LWE1; (d) LWS1 [S5, S5'] with S5' another seed of the same A; "
        "control: LWS1 [S3, S4] of two fresh seeds");
    int broke = 0;
    CK_RV rv_a, rv;
    uint64_t B[K];
    size_t len;
    uint8_t *ct;
    uint8_t two[2][32];

    /* control */
    memcpy(two[0], seeds[2], 32);
    memcpy(two[1], seeds[3], 32);
    for (int i = 0; i < K; i++) B[i] = (Bs[2][i] + Bs[3][i]) & qmask, exp[i] = (msg[2][i] + msg[3][i]) & tmask;
    ct = tg_lws1_build((const uint8_t(*)[32])two, 2, B, K, (uint32_t)p.n, &len);
    rv = n2he_decrypt(s, v, CKM_TG_N2HE_LWE2, ct, len, out, K, 0, "LWE2, control: LWS1 [S3, S4]");
    free(ct);
    int lws1_read = rv == CKR_OK && memcmp(out, exp, sizeof exp) == 0;
    say("control: %s", lws1_read ? "LWS1 of fresh seeds decrypts to the sum" : "this module does not read LWS1");

    /* (a) */
    memcpy(two[0], seeds[0], 32);
    memcpy(two[1], seeds[0], 32);
    for (int i = 0; i < K; i++) B[i] = (2 * Bs[0][i]) & qmask, exp[i] = (2 * msg[0][i]) & tmask;
    ct = tg_lws1_build((const uint8_t(*)[32])two, 2, B, K, (uint32_t)p.n, &len);
    rv_a = n2he_decrypt(s, v, CKM_TG_N2HE_LWE2, ct, len, out, K, 0, "LWE2, (a) LWS1 [S1, S1]");
    free(ct);
    if (rv_a == CKR_OK && memcmp(out, exp, sizeof exp) == 0) {
        say("(a) answered 2*m1: one seed decrypted twice in one sum");
        broke |= 1;
    }
    /* (b) */
    ct = tg_lwe2_build(seeds[0], Bs[0], K, (uint32_t)p.n, &len);
    rv = n2he_decrypt(s, v, CKM_TG_N2HE_LWE2, ct, len, out, K, 0, "LWE2, (b) S1 alone, honest");
    free(ct);
    memcpy(two[0], seeds[0], 32);
    memcpy(two[1], seeds[1], 32);
    for (int i = 0; i < K; i++) B[i] = (Bs[0][i] + Bs[1][i]) & qmask, exp[i] = (msg[0][i] + msg[1][i]) & tmask;
    ct = tg_lws1_build((const uint8_t(*)[32])two, 2, B, K, (uint32_t)p.n, &len);
    CK_RV rv_b = n2he_decrypt(s, v, CKM_TG_N2HE_LWE2, ct, len, out, K, 0, "LWE2, (b) LWS1 [S1, S2] after S1");
    free(ct);
    if (rv_b == CKR_OK && memcmp(out, exp, sizeof exp) == 0) {
        say("(b) answered m1+m2: S1 decrypted a second time");
        broke |= 2;
    }
    /* (c) */
    uint64_t *A = malloc(8 * K * p.n);
    tg_expand(seeds[0], K, p.n, (int)p.logq, A);
    for (size_t i = 0; i < K * p.n; i++) A[i] = (2 * A[i]) & qmask;
    for (int i = 0; i < K; i++) B[i] = (2 * Bs[0][i]) & qmask, exp[i] = (2 * msg[0][i]) & tmask;
    ct = tg_lwe1_build(A, B, K, (uint32_t)p.n, 1, &len);
    free(A);
    CK_MECHANISM_TYPE mechs[2] = {CKM_TG_N2HE_LWE2, CKM_TG_N2HE_LWE1};
    CK_RV rv_c[2];
    for (int mi = 0; mi < 2; mi++) {
        char what[80];
        snprintf(what, sizeof what, "%s, (c) LWE1 sum S1 + S1", mech_name(mechs[mi]));
        rv_c[mi] = n2he_decrypt(s, v, mechs[mi], ct, len, out, K, 0, what);
        if (rv_c[mi] == CKR_OK && memcmp(out, exp, sizeof exp) == 0) {
            say("(c) answered 2*m1 through %s: S1's A decrypted again in the SDK's sum form", mech_name(mechs[mi]));
            broke |= 4;
        }
    }
    free(ct);
    /* (d) */
    memcpy(two[0], seeds[4], 32);
    if (tg_seed_alias(seeds[4], 7, two[1]) != 0) return V_ERROR;
    for (int i = 0; i < K; i++) B[i] = (2 * Bs[4][i]) & qmask, exp[i] = (2 * msg[4][i]) & tmask;
    ct = tg_lws1_build((const uint8_t(*)[32])two, 2, B, K, (uint32_t)p.n, &len);
    CK_RV rv_d = n2he_decrypt(s, v, CKM_TG_N2HE_LWE2, ct, len, out, K, 0, "LWE2, (d) LWS1 [S5, alias of S5]");
    free(ct);
    if (rv_d == CKR_OK && memcmp(out, exp, sizeof exp) == 0) {
        say("(d) answered 2*m5: one A twice in one sum, under two spellings of its seed");
        broke |= 8;
    }
    for (int c = 0; c < 5; c++) free(Bs[c]);
    if (broke & 1) decide("C_Decrypt(LWS1 [S1, S1])", rv_a);
    else if (broke & 2) decide("C_Decrypt(LWS1 [S1, S2] after S1)", rv_b);
    else if (broke & 4) decide("C_Decrypt(LWE1 sum S1+S1)", rv_c[0] == CKR_OK ? rv_c[0] : rv_c[1]);
    else if (broke & 8) decide("C_Decrypt(LWS1 [S5, alias of S5])", rv_d);
    else decide("C_Decrypt(LWS1 [S1, S1])", rv_a);
    detail("%s%s%s%s%s; LWS1 %s", broke ? "seed reused by" : "no seed reused", broke & 1 ? " (a)" : "",
           broke & 2 ? " (b)" : "", broke & 4 ? " (c) LWE1 sum" : "", broke & 8 ? " (d) alias" : "",
           lws1_read ? "read" : "not read");
    return broke ? V_BROKE : V_REFUSED;
}

/* Two processes decrypt the same 20 LWE2 ciphertexts of a token key at the same moment: each seed at most once. */
static enum verdict case_n2he_race(CK_SESSION_HANDLE s) {
    if (ours_only()) return V_NA;
    enum { NCT = 20, K = 2 };
    CK_OBJECT_HANDLE v;
    char label[64];
    snprintf(label, sizeof label, "race-%d", (int)getpid());
    if (n2he_gen(s, 0, 1, label, &v) != CKR_OK) return V_ERROR;
    n2he_params p;
    if (n2he_get_params(s, v, &p) != 0) return V_ERROR;
    uint8_t *cts[NCT];
    size_t lens[NCT];
    uint64_t msg[NCT][K];
    for (int c = 0; c < NCT; c++) {
        for (int i = 0; i < K; i++) msg[c][i] = (uint64_t)(c * 7 + i + 1);
        cts[c] = n2he_encrypt(s, v, msg[c], K, &lens[c], c > 0);
        if (!cts[c]) return V_ERROR;
    }
    say("tries: %d LWE2 ciphertexts of a token key; two forked processes (each C_Initialize + C_Login) decrypt all "
        "of them in the same order, released at the same instant", NCT);
    F->C_CloseAllSessions(SLOT);
    F->C_Finalize(NULL);
    int ready[2], go[2], res[2];
    if (pipe(ready) || pipe(go) || pipe(res)) return V_ERROR;
    pid_t kids[2];
    for (int c = 0; c < 2; c++) {
        kids[c] = fork();
        if (kids[c] == 0) {
            close(ready[0]); close(go[1]); close(res[0]);
            CK_C_INITIALIZE_ARGS args;
            memset(&args, 0, sizeof args);
            args.flags = CKF_OS_LOCKING_OK;
            CK_SESSION_HANDLE cs;
            CK_OBJECT_HANDLE kh = CK_INVALID_HANDLE;
            CK_ULONG found = 0;
            tpl_t t;
            t_init(&t);
            t_str(&t, CKA_LABEL, label);
            if (F->C_Initialize(&args) != CKR_OK || F->C_OpenSession(SLOT, CKF_SERIAL_SESSION, NULL, NULL, &cs) != CKR_OK)
                _exit(4);
            CK_RV lr = F->C_Login(cs, CKU_USER, PIN(g_pin));
            if (lr != CKR_OK && lr != CKR_USER_ALREADY_LOGGED_IN) _exit(4);
            if (F->C_FindObjectsInit(cs, t.a, t.n) != CKR_OK || F->C_FindObjects(cs, &kh, 1, &found) != CKR_OK ||
                found != 1)
                _exit(4);
            F->C_FindObjectsFinal(cs);
            char b = 'r';
            if (write(ready[1], &b, 1) != 1 || read(go[0], &b, 1) != 1) _exit(4);
            for (int i = 0; i < NCT; i++) {
                uint64_t out[K];
                CK_RV rv = n2he_decrypt(cs, kh, CKM_TG_N2HE_LWE2, cts[i], lens[i], out, K, 1, "race");
                unsigned char rec[2] = {(unsigned char)i,
                                        (unsigned char)(rv == CKR_OK && out[0] == msg[i][0] && out[1] == msg[i][1])};
                if (write(res[1], rec, 2) != 2) _exit(4);
            }
            F->C_Finalize(NULL);
            _exit(0);
        }
    }
    close(ready[1]); close(go[0]); close(res[1]);
    char b;
    int nready = 0;
    while (nready < 2 && read(ready[0], &b, 1) == 1) nready++;
    if (nready < 2) {
        say("a racer could not log in and find the key");
        return V_ERROR;
    }
    b = 'g';
    if (write(go[1], &b, 1) != 1 || write(go[1], &b, 1) != 1) return V_ERROR;
    int wins[NCT] = {0};
    unsigned char rec[2];
    int nrec = 0;
    while (read(res[0], rec, 2) == 2) {
        if (rec[0] < NCT) wins[rec[0]] += rec[1];
        nrec++;
    }
    for (int c = 0; c < 2; c++) waitpid(kids[c], NULL, 0);
    int twice = 0, once = 0;
    for (int i = 0; i < NCT; i++) twice += wins[i] >= 2, once += wins[i] == 1;
    say("%d answers collected; ciphertexts decrypted by both processes: %d, by exactly one: %d, by none: %d", nrec,
        twice, once, NCT - twice - once);
    /* Tidy up the token key (a fresh login in this process). */
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof args);
    args.flags = CKF_OS_LOCKING_OK;
    if (F->C_Initialize(&args) == CKR_OK) {
        CK_SESSION_HANDLE cs;
        if (open_session(&cs, CKU_USER) == CKR_OK) {
            tpl_t t;
            t_init(&t);
            t_str(&t, CKA_LABEL, label);
            CK_OBJECT_HANDLE kh;
            CK_ULONG found = 0;
            if (F->C_FindObjectsInit(cs, t.a, t.n) == CKR_OK && F->C_FindObjects(cs, &kh, 1, &found) == CKR_OK &&
                found == 1)
                F->C_DestroyObject(cs, kh);
            F->C_FindObjectsFinal(cs);
        }
    }
    decide("C_Decrypt(LWE2) in two processes", twice ? CKR_OK : CKR_ENCRYPTED_DATA_INVALID);
    g_have_rv = 0;   /* no single call decides: the counts do */
    snprintf(g_call, sizeof g_call, "race counts");
    detail("%d/%d seeds decrypted by both processes, %d by one", twice, NCT, once);
    if (twice) return V_BROKE;
    if (once == 0) say("note: no ciphertext was decrypted at all (honest decryption refused?)");
    return V_REFUSED;
}

/* Noise-bit probe. A key whose value we know (C_CreateObject), C_Encrypt(LWE2) of NPROBE zeros and NCTRL random
 * controls; we compute each probe row's true noise e_r = B_r - A_r s, shift B_r by delta/2 - 1 (the row sits just
 * below delta/2), decrypt once, and correlate the answer bits with e_r.
 *
 * Threshold: with answers independent of e the sample correlation of N pairs is about N(0, 1/N): sd = 1/sqrt(N) =
 * 0.0032 at N = 10^5; we fail at |r| >= 5/sqrt(N) = 0.0158 (false alarm ~6e-7). Smudging with u uniform in
 * [-delta/4, delta/4) leaves P(bit = 1 | e) = 1/2 + 2(e-1)/delta, i.e. r = 4 sigma/delta ~ 2e-4 for sigma = 3.2,
 * delta = 2^16 — far below the threshold. Without smudging the bit is [e >= 2] and r ~ 0.8. The controls (honest
 * rows in the same ciphertext) must decrypt exactly, so a module that answered noise would not pass. */
static enum verdict case_n2he_noise_probe(CK_SESSION_HANDLE s) {
    if (ours_only()) return V_NA;
    enum { NPROBE = 100000, NCTRL = 1000, N = 1024 };
    const size_t k = NPROBE + NCTRL;
    int8_t key[N];
    uint8_t *val = malloc(8 * N);
    for (int i = 0; i < N; i++) {
        uint8_t r;
        do rnd(&r, 1); while (r >= 255);
        key[i] = (int8_t)(r % 3) - 1;
        tg_put_le64(val + 8 * i, (uint64_t)(int64_t)key[i]);
    }
    tpl_t t;
    t_init(&t);
    t_ulong(&t, CKA_CLASS, CKO_SECRET_KEY);
    t_ulong(&t, CKA_KEY_TYPE, CKK_TG_N2HE);
    t_bool(&t, CKA_TOKEN, 0);
    t_bool(&t, CKA_SENSITIVE, 1);
    t_bool(&t, CKA_ENCRYPT, 1);
    t_bool(&t, CKA_DECRYPT, 1);
    t_ulong(&t, CKA_TG_N2HE_DIMENSION, N);
    t_ulong(&t, CKA_TG_N2HE_MODULUS_BITS, 32);
    t_ulong(&t, CKA_TG_N2HE_PLAINTEXT_BITS, 16);
    t_ref(&t, CKA_VALUE, val, 8 * N);
    CK_OBJECT_HANDLE v;
    CK_RV rv = logrv("C_CreateObject(N2HE key, value known to the test, n=1024 q=2^32 t=2^16)",
                     F->C_CreateObject(s, t.a, t.n, &v));
    free(val);
    if (rv != CKR_OK) return V_ERROR;
    n2he_params p = {N, 32, 16};
    const uint64_t delta = 1ull << 16, qmask = 0xffffffffull;
    say("tries: C_Encrypt(LWE2) of %d zeros + %d controls; true noise of each row from the known key; B += delta/2 - 1 "
        "on the probe rows; one C_Decrypt; correlation of the answer bits with the noise", NPROBE, NCTRL);
    uint64_t *m = calloc(k, 8);
    for (size_t i = NPROBE; i < k; i++) {
        uint64_t r;
        rnd(&r, sizeof r);
        m[i] = r & 0xffff;
    }
    size_t len;
    uint8_t *ct = n2he_encrypt(s, v, m, k, &len, 0);
    if (!ct) return V_ERROR;
    uint8_t seed[32];
    uint32_t kk, nn;
    uint64_t *B;
    if (tg_lwe2_parse(ct, len, seed, &kk, &nn, &B) != 0 || kk != k) return V_ERROR;
    free(ct);
    uint64_t *dots = malloc(8 * k);
    tg_expand_dots(seed, k, N, 32, key, dots);
    int64_t *e = malloc(8 * k);
    int64_t emax = 0;
    for (size_t r = 0; r < k; r++) {
        e[r] = tg_center(B[r] - dots[r] - (m[r] << 16), 32);
        if (llabs(e[r]) > emax) emax = llabs(e[r]);
    }
    free(dots);
    say("true noise computed for all %zu rows (max |e| = %lld)", k, (long long)emax);
    if (emax >= (int64_t)delta / 4) {
        say("the module's ciphertexts do not decrypt with the key we imported (|e| too large)");
        return V_ERROR;
    }
    for (size_t r = 0; r < NPROBE; r++) B[r] = (B[r] + delta / 2 - 1) & qmask;
    ct = tg_lwe2_build(seed, B, (uint32_t)k, N, &len);
    free(B);
    uint64_t *out = malloc(8 * k);
    rv = n2he_decrypt(s, v, CKM_TG_N2HE_LWE2, ct, len, out, k, 0, "LWE2, shifted probe rows + controls");
    free(ct);
    decide("C_Decrypt(LWE2, B shifted by delta/2-1)", rv);
    if (rv != CKR_OK) {
        detail("probe ciphertext refused");
        return V_REFUSED;
    }
    size_t ctrl_ok = 0;
    for (size_t r = NPROBE; r < k; r++) ctrl_ok += out[r] == m[r];
    double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
    size_t ones = 0, odd = 0;
    for (size_t r = 0; r < NPROBE; r++) {
        double x = (double)e[r], y = out[r] == 1 ? 1.0 : 0.0;
        if (out[r] > 1) odd++;
        ones += out[r] == 1;
        sx += x, sy += y, sxx += x * x, syy += y * y, sxy += x * y;
    }
    double nd = NPROBE;
    double cov = sxy / nd - (sx / nd) * (sy / nd);
    double vx = sxx / nd - (sx / nd) * (sx / nd), vy = syy / nd - (sy / nd) * (sy / nd);
    double corr = (vx > 0 && vy > 0) ? cov / sqrt(vx * vy) : 0.0;
    double thr = 5.0 / sqrt(nd);
    say("controls decrypted exactly: %zu/%d; probe answers = 1: %zu/%d (other values: %zu)", ctrl_ok, NCTRL, ones,
        NPROBE, odd);
    say("corr(answer bit, true noise) = %.4f over %d rows; threshold %.4f (5/sqrt(N): null sd 1/sqrt(N) = %.4f; "
        "smudging in [-delta/4, delta/4) predicts ~%.1e)", corr, NPROBE, thr, 1.0 / sqrt(nd),
        4.0 * sqrt(vx) / (double)delta);
    free(e); free(out); free(m);
    (void)p;
    if (ctrl_ok != NCTRL) {
        detail("controls wrong (%zu/%d): answers meaningless", ctrl_ok, NCTRL);
        return V_ERROR;
    }
    detail("corr %.4f (threshold %.4f)", corr, thr);
    return fabs(corr) >= thr ? V_BROKE : V_REFUSED;
}

/* ================================================================ wrap cases ============================== */

static void extra_allowed_kwp(tpl_t *t) {
    CK_MECHANISM_TYPE *m = t_alloc(t, sizeof(CK_MECHANISM_TYPE));
    *m = CKM_AES_KEY_WRAP_PAD;
    t_ref(t, CKA_ALLOWED_MECHANISMS, m, sizeof *m);
}

/* Wrap the victim under a WRAP+DECRYPT key, then C_Decrypt the blob with `dmech` (KW/KWP directly, or ECB/CBC
 * inverting RFC 3394 block by block). */
static enum verdict wrap_then_decrypt(CK_SESSION_HANDLE s, CK_MECHANISM_TYPE wmech, CK_MECHANISM_TYPE dmech,
                                      int allowed_kwp) {
    say("tries: a key with WRAP+DECRYPT%s; C_WrapKey(%s) of a sensitive key; C_Decrypt of the blob with %s%s",
        allowed_kwp ? " and CKA_ALLOWED_MECHANISMS={KWP}" : "", mech_name(wmech), mech_name(dmech),
        (dmech == CKM_AES_ECB || dmech == CKM_AES_CBC) ? " (RFC 3394/5649 inverted by hand, one block per call)" : "");
    CK_OBJECT_HANDLE victim;
    if (victim_aes(s, &victim, 0) != CKR_OK) return V_ERROR;
    CK_OBJECT_HANDLE k = dual_role_key(s, CKA_WRAP, "WRAP", CKA_DECRYPT, "DECRYPT", allowed_kwp ? extra_allowed_kwp : NULL);
    if (k == CK_INVALID_HANDLE) {
        decide_last();
        detail("no key with WRAP and DECRYPT");
        return V_REFUSED;
    }
    uint8_t blob[128], val[128];
    CK_ULONG blen = sizeof blob;
    char what[96];
    snprintf(what, sizeof what, "C_WrapKey(%s, victim)", mech_name(wmech));
    CK_RV rv = wrap_key(s, wmech, k, victim, blob, &blen, what);
    if (rv != CKR_OK) {
        decide(what, rv);
        detail("wrap refused");
        return V_REFUSED;
    }
    size_t vlen = 0;
    if (dmech == CKM_AES_ECB || dmech == CKM_AES_CBC) {
        oracle_t o = {s, k, dmech, 0, CKR_OK, 0};
        int rc = tg_kw_unwrap(oracle_block, &o, blob, blen, wmech == CKM_AES_KEY_WRAP_PAD, val, &vlen);
        snprintf(what, sizeof what, "C_Decrypt(%s, one block)", mech_name(dmech));
        logrv(what, o.rv);
        say("%ld raw block decryptions; RFC 3394 integrity check %s", o.calls, rc == 0 ? "passed" : "failed");
        decide(what, o.rv);
        if (rc != 0) {
            detail("block decryption refused");
            return V_REFUSED;
        }
    } else {
        CK_ULONG olen = sizeof val;
        snprintf(what, sizeof what, "%s, the wrapped blob", mech_name(dmech));
        rv = p11crypt(s, 0, dmech, NULL, 0, k, blob, blen, val, &olen, 0, what);
        snprintf(what, sizeof what, "C_DecryptInit/C_Decrypt(%s)", mech_name(dmech));
        decide(what, rv);
        if (rv != CKR_OK) {
            detail("decryption of the blob refused");
            return V_REFUSED;
        }
        vlen = olen;
    }
    int ok = aes_matches(s, victim, val, vlen);
    say("recovered %zu bytes; %s", vlen, ok == 1 ? "they ARE the victim key (AES-ECB check)" : "not the victim key");
    detail(ok == 1 ? "victim AES key recovered and verified" : "no key recovered");
    return ok == 1 ? V_EXTRACTED : V_REFUSED;
}

static enum verdict case_wrap_decrypt_kw(CK_SESSION_HANDLE s) {
    return wrap_then_decrypt(s, CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP, 0);
}
static enum verdict case_wrap_decrypt_kwp(CK_SESSION_HANDLE s) {
    return wrap_then_decrypt(s, CKM_AES_KEY_WRAP_PAD, CKM_AES_KEY_WRAP_PAD, 1);
}
static enum verdict case_wrap_decrypt_ecb(CK_SESSION_HANDLE s) {
    return wrap_then_decrypt(s, CKM_AES_KEY_WRAP, CKM_AES_ECB, 0);
}
static enum verdict case_wrap_decrypt_cbc(CK_SESSION_HANDLE s) {
    return wrap_then_decrypt(s, CKM_AES_KEY_WRAP_PAD, CKM_AES_CBC, 0);
}

/* The whole N2HE key wrapped with KWP under a WRAP+DECRYPT key and decrypted: KWP, else AES-ECB, else AES-CBC. */
static enum verdict case_wrap_decrypt_n2he(CK_SESSION_HANDLE s) {
    if (ours_only()) return V_NA;
    say("tries: an extractable N2HE key wrapped (KWP) under a WRAP+DECRYPT key; the blob decrypted with KWP, "
        "else inverted by hand with AES-ECB, else AES-CBC");
    CK_OBJECT_HANDLE v;
    n2he_params p;
    if (n2he_gen(s, 1, 0, "n2he-victim", &v) != CKR_OK || n2he_get_params(s, v, &p) != 0) return V_ERROR;
    CK_OBJECT_HANDLE k = dual_role_key(s, CKA_WRAP, "WRAP", CKA_DECRYPT, "DECRYPT", NULL);
    if (k == CK_INVALID_HANDLE) {
        decide_last();
        detail("no key with WRAP and DECRYPT");
        return V_REFUSED;
    }
    size_t cap = 8 * p.n + 64;
    uint8_t *blob = malloc(cap), *val = malloc(cap);
    CK_ULONG blen = (CK_ULONG)cap;
    CK_RV rv = wrap_key(s, CKM_AES_KEY_WRAP_PAD, k, v, blob, &blen, "C_WrapKey(KWP, N2HE victim)");
    if (rv != CKR_OK) {
        decide("C_WrapKey(KWP, N2HE victim)", rv);
        detail("wrap refused");
        return V_REFUSED;
    }
    CK_ULONG olen = (CK_ULONG)cap;
    size_t vlen = 0;
    rv = p11crypt(s, 0, CKM_AES_KEY_WRAP_PAD, NULL, 0, k, blob, blen, val, &olen, 0, "KWP, the wrapped N2HE key");
    decide("C_Decrypt(KWP)", rv);
    if (rv == CKR_OK) {
        vlen = olen;
    } else {
        CK_MECHANISM_TYPE ms[2] = {CKM_AES_ECB, CKM_AES_CBC};
        for (int i = 0; i < 2 && vlen == 0; i++) {
            oracle_t o = {s, k, ms[i], 0, CKR_OK, 0};
            int rc = tg_kw_unwrap(oracle_block, &o, blob, blen, 1, val, &vlen);
            char what[64];
            snprintf(what, sizeof what, "C_Decrypt(%s, one block)", mech_name(ms[i]));
            logrv(what, o.rv);
            if (rc == 0) {
                say("%ld raw block decryptions through %s", o.calls, mech_name(ms[i]));
                decide(what, o.rv);
            } else {
                vlen = 0;
            }
        }
    }
    int8_t *key = calloc(p.n, 1);
    int ok = 0;
    if (vlen && n2he_from_bytes(val, vlen, key, p.n) == 0) ok = n2he_matches(s, v, key, &p) == 1;
    free(blob); free(val); free(key);
    detail(ok ? "N2HE key recovered and verified" : "no key recovered");
    return ok ? V_EXTRACTED : V_REFUSED;
}

/* C_Encrypt (KWP, or RFC 3394 by hand with ECB/CBC) a value X of our choice under an ENCRYPT+UNWRAP key, unwrap it
 * as a WRAP key (known value X), wrap the victim out with it and unwrap offline. */
static enum verdict encrypt_then_unwrap(CK_SESSION_HANDLE s, CK_MECHANISM_TYPE emech) {
    int raw = emech == CKM_AES_ECB || emech == CKM_AES_CBC;
    CK_MECHANISM_TYPE umech = raw ? CKM_AES_KEY_WRAP : CKM_AES_KEY_WRAP_PAD;
    say("tries: a key with ENCRYPT+UNWRAP; a value X of ours encrypted with %s%s; C_UnwrapKey(%s) of it as a WRAP key; "
        "C_WrapKey of a sensitive key under it; unwrap offline with X", mech_name(emech),
        raw ? " (RFC 3394 wrap by hand, one block per call)" : "", mech_name(umech));
    CK_OBJECT_HANDLE victim;
    if (victim_aes(s, &victim, 0) != CKR_OK) return V_ERROR;
    CK_OBJECT_HANDLE k = dual_role_key(s, CKA_UNWRAP, "UNWRAP", CKA_ENCRYPT, "ENCRYPT", NULL);
    if (k == CK_INVALID_HANDLE) {
        decide_last();
        detail("no key with ENCRYPT and UNWRAP");
        return V_REFUSED;
    }
    uint8_t x[32], blob[64];
    rnd(x, sizeof x);
    CK_ULONG blen = sizeof blob;
    CK_RV rv;
    char what[96];
    if (raw) {
        oracle_t o = {s, k, emech, 1, CKR_OK, 0};
        size_t bl = 0;
        int rc = tg_kw_wrap(oracle_block, &o, x, sizeof x, 0, blob, &bl);
        snprintf(what, sizeof what, "C_Encrypt(%s, one block)", mech_name(emech));
        logrv(what, o.rv);
        say("%ld raw block encryptions", o.calls);
        rv = rc == 0 ? CKR_OK : o.rv;
        blen = (CK_ULONG)bl;
    } else {
        rv = p11crypt(s, 1, emech, NULL, 0, k, x, sizeof x, blob, &blen, 0, "KWP, our value X");
        snprintf(what, sizeof what, "C_EncryptInit/C_Encrypt(KWP)");
    }
    if (rv != CKR_OK) {
        decide(what, rv);
        detail("could not encrypt a key of our choice");
        return V_REFUSED;
    }
    tpl_t t;
    t_init(&t);
    t_ulong(&t, CKA_CLASS, CKO_SECRET_KEY);
    t_ulong(&t, CKA_KEY_TYPE, CKK_AES);
    t_bool(&t, CKA_TOKEN, 0);
    t_bool(&t, CKA_WRAP, 1);
    t_bool(&t, CKA_SENSITIVE, 1);
    t_bool(&t, CKA_EXTRACTABLE, 0);
    CK_MECHANISM um = {umech, NULL, 0};
    CK_OBJECT_HANDLE w;
    snprintf(what, sizeof what, "C_UnwrapKey(%s, X as an AES key with WRAP=TRUE)", mech_name(umech));
    rv = logrv(what, F->C_UnwrapKey(s, &um, k, blob, blen, t.a, t.n, &w));
    if (rv != CKR_OK) {
        decide(what, rv);
        detail("unwrap of our X refused");
        return V_REFUSED;
    }
    uint8_t out[64], val[64];
    CK_ULONG olen = sizeof out;
    rv = wrap_key(s, CKM_AES_KEY_WRAP_PAD, w, victim, out, &olen, "C_WrapKey(KWP, victim, under X)");
    decide("C_WrapKey(KWP, victim, under X)", rv);
    if (rv != CKR_OK) {
        detail("wrap under X refused");
        return V_REFUSED;
    }
    void *c = tg_aes_ctx_new(x, sizeof x, 0);
    size_t vlen = 0;
    int rc = tg_kw_unwrap(tg_aes_block, c, out, olen, 1, val, &vlen);
    tg_aes_ctx_free(c);
    int ok = rc == 0 && aes_matches(s, victim, val, vlen) == 1;
    say("offline unwrap with X: %s", ok ? "the victim key (verified)" : "failed");
    detail(ok ? "victim AES key recovered and verified" : "no key recovered");
    return ok ? V_EXTRACTED : V_REFUSED;
}

static enum verdict case_encrypt_unwrap_kwp(CK_SESSION_HANDLE s) { return encrypt_then_unwrap(s, CKM_AES_KEY_WRAP_PAD); }
static enum verdict case_encrypt_unwrap_ecb(CK_SESSION_HANDLE s) { return encrypt_then_unwrap(s, CKM_AES_ECB); }
static enum verdict case_encrypt_unwrap_cbc(CK_SESSION_HANDLE s) { return encrypt_then_unwrap(s, CKM_AES_CBC); }

/* Roles switched over time: a qualifying wrapping key wraps the victim, then drops WRAP and takes DECRYPT (one
 * C_SetAttributeValue after the other, or both at once, or in a C_CopyObject), and the blob is inverted by hand
 * with AES-ECB. No moment has both roles, yet the key wrapped what it now decrypts. */
static enum verdict case_role_flip(CK_SESSION_HANDLE s) {
    say("tries: a generated WRAP key (sensitive, never extractable) wraps the victim (KW); then WRAP=FALSE and "
        "DECRYPT=TRUE by (a) two C_SetAttributeValue calls, (b) one, (c) C_CopyObject; the blob inverted with AES-ECB");
    CK_OBJECT_HANDLE victim;
    if (victim_aes(s, &victim, 0) != CKR_OK) return V_ERROR;
    CK_RV first_rv = CKR_OK;
    char first_call[200] = "";
    int won = 0;
    for (int route = 0; route < 3; route++) {
        tpl_t t;
        t_init(&t);
        t_bool(&t, CKA_WRAP, 1);
        t_bool(&t, CKA_SENSITIVE, 1);
        t_bool(&t, CKA_EXTRACTABLE, 0);
        CK_OBJECT_HANDLE k, d = CK_INVALID_HANDLE;
        if (gen_aes(s, &t, &k, "C_GenerateKey(AES-256, WRAP only)") != CKR_OK) return V_ERROR;
        uint8_t blob[64], val[64];
        CK_ULONG bl = sizeof blob;
        if (wrap_key(s, CKM_AES_KEY_WRAP, k, victim, blob, &bl, "    C_WrapKey(KW, victim)") != CKR_OK) return V_ERROR;
        CK_RV rv;
        tpl_t u, x;
        t_init(&u);
        t_init(&x);
        if (route == 0) {
            t_bool(&u, CKA_WRAP, 0);
            rv = set_attrs(s, k, &u, "(a) C_SetAttributeValue(WRAP=FALSE)");
            if (rv == CKR_OK) {
                t_bool(&x, CKA_DECRYPT, 1);
                rv = set_attrs(s, k, &x, "(a) C_SetAttributeValue(DECRYPT=TRUE)");
            }
            d = k;
        } else if (route == 1) {
            t_bool(&u, CKA_WRAP, 0);
            t_bool(&u, CKA_DECRYPT, 1);
            rv = set_attrs(s, k, &u, "(b) C_SetAttributeValue(WRAP=FALSE, DECRYPT=TRUE)");
            d = k;
        } else {
            t_bool(&u, CKA_WRAP, 0);
            t_bool(&u, CKA_DECRYPT, 1);
            rv = logrv("(c) C_CopyObject(key, {WRAP=FALSE, DECRYPT=TRUE})", F->C_CopyObject(s, k, u.a, u.n, &d));
        }
        if (rv == CKR_OK && get_bool(s, d, CKA_DECRYPT) == 1) {
            oracle_t o = {s, d, CKM_AES_ECB, 0, CKR_OK, 0};
            size_t vl = 0;
            int rc = tg_kw_unwrap(oracle_block, &o, blob, bl, 0, val, &vl);
            logrv("    C_Decrypt(AES-ECB, one block)", o.rv);
            if (rc == 0 && aes_matches(s, victim, val, vl) == 1) {
                say("route %c: the victim recovered from its own blob (verified)", 'a' + route);
                if (!won) decide("C_Decrypt(AES-ECB) by the former wrapping key", o.rv);
                won |= 1 << route;
                continue;
            }
        }
        if (!first_call[0]) {
            first_rv = g_last_rv;
            snprintf(first_call, sizeof first_call, "%s", g_last_call);
        }
    }
    if (won) {
        detail("victim recovered by route(s)%s%s%s", won & 1 ? " a" : "", won & 2 ? " b" : "", won & 4 ? " c" : "");
        return V_EXTRACTED;
    }
    decide(first_call, first_rv);
    detail("a key that wrapped never decrypts");
    return V_REFUSED;
}

/* KW/KWP: C_GetMechanismInfo must not list ENCRYPT/DECRYPT, and C_EncryptInit/C_DecryptInit must refuse them. */
static enum verdict case_mechinfo_kw(CK_SESSION_HANDLE s) {
    say("tries: C_GetMechanismInfo(KW, KWP) flags; C_EncryptInit / C_DecryptInit with KW and KWP on an "
        "ENCRYPT+DECRYPT AES key");
    CK_MECHANISM_TYPE ms[2] = {CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_PAD};
    int broke = 0;
    CK_RV drv = CKR_OK, refusal = CKR_OK;
    char dcall[200] = "", rcall[96] = "";
    CK_OBJECT_HANDLE k;
    tpl_t t;
    t_init(&t);
    t_bool(&t, CKA_ENCRYPT, 1);
    t_bool(&t, CKA_DECRYPT, 1);
    if (gen_aes(s, &t, &k, "C_GenerateKey(AES-256, ENCRYPT+DECRYPT)") != CKR_OK) return V_ERROR;
    for (int i = 0; i < 2; i++) {
        CK_MECHANISM_INFO mi;
        memset(&mi, 0, sizeof mi);
        CK_RV rv = F->C_GetMechanismInfo(SLOT, ms[i], &mi);
        say("C_GetMechanismInfo(%s) -> %s, flags 0x%lx%s%s%s%s", mech_name(ms[i]), rvname(rv),
            (unsigned long)mi.flags, (mi.flags & CKF_ENCRYPT) ? " ENCRYPT" : "", (mi.flags & CKF_DECRYPT) ? " DECRYPT" : "",
            (mi.flags & CKF_WRAP) ? " WRAP" : "", (mi.flags & CKF_UNWRAP) ? " UNWRAP" : "");
        if (rv == CKR_OK && (mi.flags & (CKF_ENCRYPT | CKF_DECRYPT))) {
            broke |= 1;
            if (!dcall[0]) drv = rv, snprintf(dcall, sizeof dcall, "C_GetMechanismInfo(%s)", mech_name(ms[i]));
        }
        for (int enc = 0; enc < 2; enc++) {
            CK_SESSION_HANDLE s2;
            if (F->C_OpenSession(SLOT, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s2) != CKR_OK) return V_ERROR;
            CK_MECHANISM m = {ms[i], NULL, 0};
            char what[64];
            snprintf(what, sizeof what, "%s(%s)", enc ? "C_EncryptInit" : "C_DecryptInit", mech_name(ms[i]));
            /* the session key is visible in every session of this process */
            rv = logrv(what, enc ? F->C_EncryptInit(s2, &m, k) : F->C_DecryptInit(s2, &m, k));
            if (rv == CKR_OK) {
                broke |= 2;
                if (!(broke & 4)) drv = rv, snprintf(dcall, sizeof dcall, "%s", what), broke |= 4;
            } else if (!rcall[0]) {
                refusal = rv;
                snprintf(rcall, sizeof rcall, "%s", what);
            }
            F->C_CloseSession(s2);
        }
    }
    if (!broke) drv = refusal, snprintf(dcall, sizeof dcall, "%s", rcall);
    decide(dcall, drv);
    detail("%s%s", broke & 1 ? "ENCRYPT/DECRYPT listed; " : "", broke & 2 ? "Encrypt/DecryptInit accepted" :
           broke ? "" : "wrap-only");
    return broke ? V_BROKE : V_REFUSED;
}

/* Separated roles: no route may leave a secret key holding WRAP or UNWRAP together with ENCRYPT or DECRYPT. For each
 * of the four pairs: both at C_GenerateKey; the first role only (the other unspecified: the defaults); the first then
 * the second by C_SetAttributeValue; the second then the first; the first then a C_CopyObject adding the second. */
static enum verdict case_mixed_roles(CK_SESSION_HANDLE s) {
    say("tries: for WRAP+DECRYPT, UNWRAP+ENCRYPT, WRAP+ENCRYPT, UNWRAP+DECRYPT: generate with both; generate with one "
        "(defaults); one then C_SetAttributeValue of the other (both orders); one then C_CopyObject adding the other");
    static const struct { CK_ATTRIBUTE_TYPE a, b; const char *an, *bn; } pairs[4] = {
        {CKA_WRAP, CKA_DECRYPT, "WRAP", "DECRYPT"}, {CKA_UNWRAP, CKA_ENCRYPT, "UNWRAP", "ENCRYPT"},
        {CKA_WRAP, CKA_ENCRYPT, "WRAP", "ENCRYPT"}, {CKA_UNWRAP, CKA_DECRYPT, "UNWRAP", "DECRYPT"}};
    static const char *rn[5] = {"generate both", "defaults", "set 2nd", "set 1st", "copy +2nd"};
    int mixed_routes = 0;
    char first[200] = "", refusal[200] = "";
    CK_RV first_rv = CKR_OK, refusal_rv = CKR_OK;
    for (int i = 0; i < 4; i++) {
        char line[256];
        int off = snprintf(line, sizeof line, "%s+%s:", pairs[i].an, pairs[i].bn);
        for (int r = 0; r < 5; r++) {
            tpl_t t;
            t_init(&t);
            t_ulong(&t, CKA_VALUE_LEN, 32);
            t_bool(&t, CKA_TOKEN, 0);
            t_bool(&t, CKA_SENSITIVE, 1);
            t_bool(&t, CKA_EXTRACTABLE, 0);
            CK_ATTRIBUTE_TYPE one = r == 3 ? pairs[i].b : pairs[i].a, other = r == 3 ? pairs[i].a : pairs[i].b;
            t_bool(&t, one, 1);
            if (r == 0) t_bool(&t, other, 1);
            if (r >= 2) t_bool(&t, other, 0);
            CK_MECHANISM m = {CKM_AES_KEY_GEN, NULL, 0};
            CK_OBJECT_HANDLE h = CK_INVALID_HANDLE, c = CK_INVALID_HANDLE;
            CK_RV rv = F->C_GenerateKey(s, &m, t.a, t.n, &h);
            const char *call = "C_GenerateKey";
            if (rv == CKR_OK && (r == 2 || r == 3)) {
                tpl_t u;
                t_init(&u);
                t_bool(&u, other, 1);
                rv = F->C_SetAttributeValue(s, h, u.a, u.n);
                call = "C_SetAttributeValue";
            } else if (rv == CKR_OK && r == 4) {
                tpl_t u;
                t_init(&u);
                t_bool(&u, other, 1);
                rv = F->C_CopyObject(s, h, u.a, u.n, &c);
                call = "C_CopyObject";
            }
            CK_OBJECT_HANDLE k = r == 4 ? c : h;
            int mixed = rv == CKR_OK && get_bool(s, k, pairs[i].a) == 1 && get_bool(s, k, pairs[i].b) == 1;
            off += snprintf(line + off, sizeof line - off, " %s=%s", rn[r], mixed ? "MIXED" : rv == CKR_OK ? "ok" :
                            rvname(rv) + 4);
            if (off >= (int)sizeof line) off = sizeof line - 1;
            if (mixed) {
                mixed_routes++;
                if (!first[0]) {
                    snprintf(first, sizeof first, "%s (%s+%s, %s)", call, pairs[i].an, pairs[i].bn, rn[r]);
                    first_rv = rv;
                }
            } else if (rv != CKR_OK && !refusal[0]) {
                snprintf(refusal, sizeof refusal, "%s (%s+%s, %s)", call, pairs[i].an, pairs[i].bn, rn[r]);
                refusal_rv = rv;
            }
            if (c != CK_INVALID_HANDLE) F->C_DestroyObject(s, c);
            if (h != CK_INVALID_HANDLE) F->C_DestroyObject(s, h);
        }
        say("%s", line);
    }
    if (mixed_routes) {
        decide(first, first_rv);
        detail("%d of 20 routes made a key with mixed roles", mixed_routes);
        return V_BROKE;
    }
    decide(refusal, refusal_rv);
    detail("no route mixes wrap and encrypt roles");
    return V_REFUSED;
}

/* A wrapping key whose value we know: (a) C_CreateObject with CKA_WRAP; (b) generated readable with WRAP; (c)
 * generated readable, then C_SetAttributeValue(WRAP=TRUE). Each: C_WrapKey the victim, unwrap offline. */
static enum verdict case_own_wrap_key(CK_SESSION_HANDLE s) {
    say("tries: (a) C_CreateObject of an AES key with a value of ours and CKA_WRAP; (b) C_GenerateKey with WRAP, "
        "SENSITIVE=FALSE, EXTRACTABLE=TRUE, value read; (c) a readable key given WRAP by C_SetAttributeValue; "
        "each: C_WrapKey(KWP) of a sensitive key, unwrap offline");
    CK_OBJECT_HANDLE victim;
    if (victim_aes(s, &victim, 0) != CKR_OK) return V_ERROR;
    const char *route_name[3] = {"(a) created", "(b) generated readable", "(c) readable + SetAttribute"};
    int won[4] = {0, 0, 0, 0};
    CK_RV first_rv = CKR_OK;
    char first_call[200] = "";
    for (int route = 0; route < 3; route++) {
        uint8_t x[32];
        CK_ULONG xl = sizeof x;
        CK_OBJECT_HANDLE w = CK_INVALID_HANDLE;
        tpl_t t;
        t_init(&t);
        CK_RV rv;
        if (route == 0) {
            rnd(x, sizeof x);
            t_ulong(&t, CKA_CLASS, CKO_SECRET_KEY);
            t_ulong(&t, CKA_KEY_TYPE, CKK_AES);
            t_bool(&t, CKA_TOKEN, 0);
            t_bool(&t, CKA_WRAP, 1);
            t_bytes(&t, CKA_VALUE, x, sizeof x);
            rv = logrv("(a) C_CreateObject(AES, CKA_VALUE ours, WRAP=TRUE)", F->C_CreateObject(s, t.a, t.n, &w));
        } else {
            t_bool(&t, CKA_SENSITIVE, 0);
            t_bool(&t, CKA_EXTRACTABLE, 1);
            if (route == 1) t_bool(&t, CKA_WRAP, 1);
            rv = gen_aes(s, &t, &w, route == 1 ? "(b) C_GenerateKey(AES, WRAP, SENSITIVE=FALSE, EXTRACTABLE=TRUE)"
                                               : "(c) C_GenerateKey(AES, SENSITIVE=FALSE, EXTRACTABLE=TRUE)");
            if (rv == CKR_OK) {
                rv = logrv("    C_GetAttributeValue(CKA_VALUE)", get_attr(s, w, CKA_VALUE, x, &xl));
                if (rv == CKR_OK && xl != 32) rv = CKR_GENERAL_ERROR;
            }
            if (rv == CKR_OK && route == 2) {
                tpl_t u;
                t_init(&u);
                t_bool(&u, CKA_WRAP, 1);
                rv = set_attrs(s, w, &u, "    C_SetAttributeValue(WRAP=TRUE)");
            }
        }
        if (rv == CKR_OK) {
            uint8_t blob[64];
            CK_ULONG bl = sizeof blob;
            rv = wrap_key(s, CKM_AES_KEY_WRAP_PAD, w, victim, blob, &bl, "    C_WrapKey(KWP, victim)");
            if (rv == CKR_OK) {
                uint8_t val[64];
                size_t vl = 0;
                void *c = tg_aes_ctx_new(x, sizeof x, 0);
                int rc = tg_kw_unwrap(tg_aes_block, c, blob, bl, 1, val, &vl);
                tg_aes_ctx_free(c);
                if (rc == 0 && aes_matches(s, victim, val, vl) == 1) {
                    say("%s: victim key recovered offline (verified)", route_name[route]);
                    if (!won[0]) decide("C_WrapKey(KWP) under a known key", rv);
                    won[route + 1] = 1;
                    won[0] = 1;
                    continue;
                }
            }
        }
        if (!first_call[0]) {
            first_rv = g_last_rv;
            snprintf(first_call, sizeof first_call, "%s", g_last_call);
        }
    }
    if (won[0]) {
        detail("victim recovered and verified by route(s)%s%s%s", won[1] ? " a" : "", won[2] ? " b" : "", won[3] ? " c" : "");
        return V_EXTRACTED;
    }
    decide(first_call, first_rv);
    detail("no wrapping key with a known value");
    return V_REFUSED;
}

static void extra_unwrap_template(tpl_t *t) {
    static CK_BBOOL tru = CK_TRUE;
    static CK_ATTRIBUTE forced[1] = {{CKA_SENSITIVE, &tru, sizeof tru}};
    t_bool(t, CKA_UNWRAP, 1);
    t_ref(t, CKA_UNWRAP_TEMPLATE, forced, sizeof forced);
}

/* Unwrap a sensitive key's blob as readable: (a) SENSITIVE=FALSE, EXTRACTABLE=TRUE; (b) no CKA_SENSITIVE in the
 * template; (c) unwrapped sensitive, then SENSITIVE=FALSE by C_SetAttributeValue; (d) [AES] a blob for a key whose
 * UNWRAP_TEMPLATE forces SENSITIVE, C_Decrypt-ed instead. */
static enum verdict unwrap_nonsensitive(CK_SESSION_HANDLE s, int n2he) {
    say("tries: a sensitive %s key wrapped (KWP) under a WRAP+UNWRAP key, unwrapped (a) with SENSITIVE=FALSE, "
        "EXTRACTABLE=TRUE, (b) with no CKA_SENSITIVE, (c) sensitive then C_SetAttributeValue(SENSITIVE=FALSE), "
        "then CKA_VALUE read%s", n2he ? "N2HE" : "AES",
        n2he ? "" : "; (d) under a key whose UNWRAP_TEMPLATE forces SENSITIVE, the blob C_Decrypt-ed");
    CK_OBJECT_HANDLE victim, w;
    n2he_params p = {0, 0, 0};
    if (n2he) {
        if (n2he_gen(s, 1, 0, "n2he-victim", &victim) != CKR_OK || n2he_get_params(s, victim, &p) != 0) return V_ERROR;
    } else if (victim_aes(s, &victim, 0) != CKR_OK) {
        return V_ERROR;
    }
    tpl_t t;
    t_init(&t);
    t_bool(&t, CKA_WRAP, 1);
    t_bool(&t, CKA_UNWRAP, 1);
    t_bool(&t, CKA_SENSITIVE, 1);
    t_bool(&t, CKA_EXTRACTABLE, 0);
    if (gen_aes(s, &t, &w, "C_GenerateKey(AES-256 wrapping key: WRAP+UNWRAP, sensitive, not extractable)") != CKR_OK)
        return V_ERROR;
    size_t cap = n2he ? 8 * p.n + 64 : 64;
    uint8_t *blob = malloc(cap), *val = malloc(cap);
    CK_ULONG bl = (CK_ULONG)cap;
    if (wrap_key(s, CKM_AES_KEY_WRAP_PAD, w, victim, blob, &bl, "C_WrapKey(KWP, victim)") != CKR_OK) return V_ERROR;
    CK_RV first_rv = CKR_OK;
    char first_call[200] = "";
    int won[5] = {0, 0, 0, 0, 0};
    for (int route = 0; route < 3; route++) {
        tpl_t u;
        t_init(&u);
        t_ulong(&u, CKA_CLASS, CKO_SECRET_KEY);
        t_ulong(&u, CKA_KEY_TYPE, n2he ? CKK_TG_N2HE : CKK_AES);
        t_bool(&u, CKA_TOKEN, 0);
        t_bool(&u, CKA_EXTRACTABLE, 1);
        if (route == 0) t_bool(&u, CKA_SENSITIVE, 0);
        if (route == 2) t_bool(&u, CKA_SENSITIVE, 1);
        CK_MECHANISM um = {CKM_AES_KEY_WRAP_PAD, NULL, 0};
        CK_OBJECT_HANDLE h;
        const char *names[3] = {"(a) C_UnwrapKey(KWP, SENSITIVE=FALSE, EXTRACTABLE=TRUE)",
                                "(b) C_UnwrapKey(KWP, no CKA_SENSITIVE, EXTRACTABLE=TRUE)",
                                "(c) C_UnwrapKey(KWP, SENSITIVE=TRUE, EXTRACTABLE=TRUE)"};
        CK_RV rv = logrv(names[route], F->C_UnwrapKey(s, &um, w, blob, bl, u.a, u.n, &h));
        if (rv == CKR_OK && route == 2) {
            tpl_t x;
            t_init(&x);
            t_bool(&x, CKA_SENSITIVE, 0);
            rv = set_attrs(s, h, &x, "    C_SetAttributeValue(SENSITIVE=FALSE)");
        }
        if (rv == CKR_OK) {
            CK_ULONG vl = (CK_ULONG)cap;
            rv = logrv("    C_GetAttributeValue(CKA_VALUE) of the unwrapped key", get_attr(s, h, CKA_VALUE, val, &vl));
            if (rv == CKR_OK) {
                int ok;
                if (n2he) {
                    int8_t *key = calloc(p.n, 1);
                    ok = n2he_from_bytes(val, vl, key, p.n) == 0 && n2he_matches(s, victim, key, &p) == 1;
                    free(key);
                } else {
                    ok = aes_matches(s, victim, val, vl) == 1;
                }
                if (ok) {
                    say("route %c: the victim's value read (verified)", 'a' + route);
                    if (!won[0]) decide("C_GetAttributeValue(CKA_VALUE) after C_UnwrapKey", rv);
                    won[0] = 1;
                    won[route + 1] = 1;
                    continue;
                }
            }
        }
        if (!first_call[0]) {
            first_rv = g_last_rv;
            snprintf(first_call, sizeof first_call, "%s", g_last_call);
        }
    }
    if (!n2he) {
        /* (d) */
        say("(d) a wrapping key with UNWRAP and CKA_UNWRAP_TEMPLATE={SENSITIVE=TRUE}, also given DECRYPT:");
        CK_OBJECT_HANDLE w2 = dual_role_key(s, CKA_WRAP, "WRAP", CKA_DECRYPT, "DECRYPT", extra_unwrap_template);
        if (w2 != CK_INVALID_HANDLE) {
            bl = (CK_ULONG)cap;
            if (wrap_key(s, CKM_AES_KEY_WRAP_PAD, w2, victim, blob, &bl, "(d) C_WrapKey(KWP, victim)") == CKR_OK) {
                CK_ULONG ol = (CK_ULONG)cap;
                CK_RV rv = p11crypt(s, 0, CKM_AES_KEY_WRAP_PAD, NULL, 0, w2, blob, bl, val, &ol, 0, "(d) KWP, the blob");
                if (rv == CKR_OK && aes_matches(s, victim, val, ol) == 1) {
                    say("route d: the blob decrypted to the victim key (verified)");
                    if (!won[0]) decide("C_Decrypt(KWP) of the blob", rv);
                    won[0] = won[4] = 1;
                }
            }
        } else {
            say("(d) no WRAP+DECRYPT key: %s -> %s", g_last_call, rvname(g_last_rv));
        }
    }
    free(blob); free(val);
    if (won[0]) {
        detail("victim read and verified by route(s)%s%s%s%s", won[1] ? " a" : "", won[2] ? " b" : "", won[3] ? " c" : "",
               won[4] ? " d" : "");
        return V_EXTRACTED;
    }
    decide(first_call, first_rv);
    detail("unwrapped keys stay sensitive");
    return V_REFUSED;
}

static enum verdict case_unwrap_nonsensitive_aes(CK_SESSION_HANDLE s) { return unwrap_nonsensitive(s, 0); }
static enum verdict case_unwrap_nonsensitive_n2he(CK_SESSION_HANDLE s) {
    if (ours_only()) return V_NA;
    return unwrap_nonsensitive(s, 1);
}

/* The SO's MODIFIABLE=FALSE, TRUSTED wrapping key copied by the user with DECRYPT/UNWRAP added (and TRUSTED kept):
 * then a WRAP_WITH_TRUSTED key wrapped under the copy and the blob decrypted. Also: a plain copy must not be TRUSTED. */
static enum verdict case_copy_trusted(CK_SESSION_HANDLE s) {
    say("tries: SO generates a MODIFIABLE=FALSE, TRUSTED wrapping key; the user C_CopyObject's it with DECRYPT+UNWRAP, "
        "wraps a WRAP_WITH_TRUSTED sensitive key under the copy and decrypts the blob; and a plain copy's CKA_TRUSTED");
    char label[64];
    snprintf(label, sizeof label, "so-kek-%d", (int)getpid());
    F->C_Logout(s);
    CK_SESSION_HANDLE so;
    CK_RV rv = F->C_OpenSession(SLOT, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &so);
    if (rv == CKR_OK) rv = logrv("C_Login(SO)", F->C_Login(so, CKU_SO, PIN(g_so_pin)));
    if (rv != CKR_OK) return V_ERROR;
    tpl_t t;
    t_init(&t);
    t_ulong(&t, CKA_CLASS, CKO_SECRET_KEY);
    t_ulong(&t, CKA_KEY_TYPE, CKK_AES);
    t_ulong(&t, CKA_VALUE_LEN, 32);
    t_bool(&t, CKA_TOKEN, 1);
    t_bool(&t, CKA_PRIVATE, 0);
    t_bool(&t, CKA_TRUSTED, 1);
    t_bool(&t, CKA_MODIFIABLE, 0);
    t_bool(&t, CKA_WRAP, 1);
    t_bool(&t, CKA_UNWRAP, 0);
    t_bool(&t, CKA_ENCRYPT, 0);
    t_bool(&t, CKA_DECRYPT, 0);
    t_bool(&t, CKA_SENSITIVE, 1);
    t_bool(&t, CKA_EXTRACTABLE, 0);
    t_str(&t, CKA_LABEL, label);
    CK_OBJECT_HANDLE kek;
    rv = gen_key(so, CKM_AES_KEY_GEN, &t, &kek, "SO: C_GenerateKey(AES-256, WRAP only, TRUSTED, MODIFIABLE=FALSE, public)");
    F->C_Logout(so);
    F->C_CloseSession(so);
    if (rv != CKR_OK) return V_ERROR;
    if (open_session(&s, CKU_USER) != CKR_OK) return V_ERROR;
    tpl_t f;
    t_init(&f);
    t_str(&f, CKA_LABEL, label);
    CK_ULONG found = 0;
    if (F->C_FindObjectsInit(s, f.a, f.n) != CKR_OK || F->C_FindObjects(s, &kek, 1, &found) != CKR_OK || found != 1) {
        say("user cannot find the SO's key");
        return V_ERROR;
    }
    F->C_FindObjectsFinal(s);
    CK_OBJECT_HANDLE victim;
    if (victim_aes(s, &victim, 1) != CKR_OK) return V_ERROR;
    int broke = 0;
    enum verdict res = V_REFUSED;
    tpl_t c;
    t_init(&c);
    t_bool(&c, CKA_DECRYPT, 1);
    t_bool(&c, CKA_UNWRAP, 1);
    CK_OBJECT_HANDLE copy;
    rv = logrv("user: C_CopyObject(SO key, {DECRYPT=TRUE, UNWRAP=TRUE})", F->C_CopyObject(s, kek, c.a, c.n, &copy));
    decide("C_CopyObject(+DECRYPT,+UNWRAP)", rv);
    if (rv == CKR_OK) {
        int tr = get_bool(s, copy, CKA_TRUSTED), de = get_bool(s, copy, CKA_DECRYPT), un = get_bool(s, copy, CKA_UNWRAP);
        say("copy: TRUSTED=%d DECRYPT=%d UNWRAP=%d WRAP=%d", tr, de, un, get_bool(s, copy, CKA_WRAP));
        if (de == 1 || un == 1) broke = 1;   /* a copy of a MODIFIABLE=FALSE key loosened */
        uint8_t blob[64], val[64];
        CK_ULONG bl = sizeof blob;
        if (wrap_key(s, CKM_AES_KEY_WRAP, copy, victim, blob, &bl, "C_WrapKey(KW, WRAP_WITH_TRUSTED victim, copy)") ==
            CKR_OK) {
            CK_ULONG ol = sizeof val;
            size_t vl = 0;
            rv = p11crypt(s, 0, CKM_AES_KEY_WRAP, NULL, 0, copy, blob, bl, val, &ol, 0, "KW, the blob");
            if (rv == CKR_OK) {
                vl = ol;
            } else {
                oracle_t o = {s, copy, CKM_AES_ECB, 0, CKR_OK, 0};
                if (tg_kw_unwrap(oracle_block, &o, blob, bl, 0, val, &vl) != 0) vl = 0;
                logrv("C_Decrypt(AES-ECB, one block, RFC 3394 by hand)", o.rv);
                rv = o.rv;
            }
            if (vl && aes_matches(s, victim, val, vl) == 1) {
                say("the WRAP_WITH_TRUSTED victim recovered through the copy (verified)");
                decide("C_Decrypt of the blob under the copy", rv);
                res = V_EXTRACTED;
            }
        }
    }
    CK_OBJECT_HANDLE copy2;
    tpl_t none;
    t_init(&none);
    CK_RV rv2 = logrv("user: C_CopyObject(SO key, {})", F->C_CopyObject(s, kek, none.a, 0, &copy2));
    if (rv2 == CKR_OK) {
        int tr = get_bool(s, copy2, CKA_TRUSTED);
        say("plain copy made in a user session: CKA_TRUSTED=%d", tr);
        if (tr == 1) {
            broke |= 2;
            if (res != V_EXTRACTED) decide("C_CopyObject({}) keeps CKA_TRUSTED", rv2);
        }
    }
    detail("%s%s%s", res == V_EXTRACTED ? "victim recovered via the copy; " : "",
           broke & 1 ? "copy of MODIFIABLE=FALSE key loosened; " : "", broke & 2 ? "user copy keeps TRUSTED" :
           (broke || res == V_EXTRACTED) ? "" : "copies cannot loosen or keep TRUSTED");
    if (res == V_EXTRACTED) return res;
    return broke ? V_BROKE : V_REFUSED;
}

/* A MODIFIABLE=FALSE wrapping key whose WRAP_TEMPLATE only admits generic secrets: the AES victim must not be
 * wrappable under it nor under any copy of it. */
static enum verdict case_copy_wrap_template(CK_SESSION_HANDLE s) {
    say("tries: a MODIFIABLE=FALSE wrapping key with CKA_WRAP_TEMPLATE={KEY_TYPE=GENERIC_SECRET}; C_WrapKey of an AES "
        "key under it (refused), then under C_CopyObject copies ({} and {WRAP_TEMPLATE={}})");
    CK_OBJECT_HANDLE victim, w;
    if (victim_aes(s, &victim, 0) != CKR_OK) return V_ERROR;
    static CK_KEY_TYPE gen = CKK_GENERIC_SECRET;
    static CK_ATTRIBUTE wt[1] = {{CKA_KEY_TYPE, &gen, sizeof gen}};
    tpl_t t;
    t_init(&t);
    t_bool(&t, CKA_WRAP, 1);
    t_bool(&t, CKA_SENSITIVE, 1);
    t_bool(&t, CKA_EXTRACTABLE, 0);
    t_bool(&t, CKA_MODIFIABLE, 0);
    t_ref(&t, CKA_WRAP_TEMPLATE, wt, sizeof wt);
    if (gen_aes(s, &t, &w, "C_GenerateKey(AES-256, WRAP, MODIFIABLE=FALSE, WRAP_TEMPLATE={KEY_TYPE=GENERIC_SECRET})") !=
        CKR_OK)
        return V_ERROR;
    uint8_t blob[64];
    CK_ULONG bl = sizeof blob;
    CK_RV rv0 = wrap_key(s, CKM_AES_KEY_WRAP_PAD, w, victim, blob, &bl, "control: C_WrapKey(KWP, AES victim, original)");
    int broke = 0;
    if (rv0 == CKR_OK) {
        say("the original's WRAP_TEMPLATE is not enforced");
        broke |= 1;
    }
    CK_RV drv = rv0;
    char dcall[200] = "C_WrapKey under the original";
    for (int route = 0; route < 2; route++) {
        tpl_t c;
        t_init(&c);
        static CK_ATTRIBUTE empty[1];
        if (route == 1) t_ref(&c, CKA_WRAP_TEMPLATE, empty, 0);
        CK_OBJECT_HANDLE copy;
        CK_RV rv = logrv(route ? "C_CopyObject(key, {WRAP_TEMPLATE={}})" : "C_CopyObject(key, {})",
                         F->C_CopyObject(s, w, c.a, c.n, &copy));
        if (rv != CKR_OK) {
            if (!broke) drv = rv, snprintf(dcall, sizeof dcall, "%s", g_last_call);
            continue;
        }
        CK_ATTRIBUTE a = {CKA_WRAP_TEMPLATE, NULL, 0};
        CK_RV grv = F->C_GetAttributeValue(s, copy, &a, 1);
        say("copy's CKA_WRAP_TEMPLATE: %s, %ld bytes", rvname(grv), (long)a.ulValueLen);
        bl = sizeof blob;
        rv = wrap_key(s, CKM_AES_KEY_WRAP_PAD, copy, victim, blob, &bl, "    C_WrapKey(KWP, AES victim, copy)");
        if (rv == CKR_OK) {
            broke |= 2;
            drv = rv;
            snprintf(dcall, sizeof dcall, "C_WrapKey under the copy%s", route ? " {WRAP_TEMPLATE={}}" : "");
        } else if (!broke) {
            drv = rv;
            snprintf(dcall, sizeof dcall, "C_WrapKey under the copy");
        }
    }
    decide(dcall, drv);
    detail("%s%s", broke & 1 ? "template not enforced; " : "", broke & 2 ? "a copy wraps what the original may not" :
           broke ? "" : "copies keep the template");
    return broke ? V_BROKE : V_REFUSED;
}

/* C_FindObjects with CKA_VALUE = guess on a sensitive key: an equality oracle. */
static enum verdict case_find_value_oracle(CK_SESSION_HANDLE s) {
    say("tries: a sensitive, non-extractable AES key of known value; C_FindObjects({CLASS=SECRET_KEY, VALUE=right}) "
        "and ({..., VALUE=wrong})");
    uint8_t x[32], y[32];
    rnd(x, sizeof x);
    memcpy(y, x, sizeof y);
    y[31] ^= 1;
    tpl_t t;
    t_init(&t);
    t_ulong(&t, CKA_CLASS, CKO_SECRET_KEY);
    t_ulong(&t, CKA_KEY_TYPE, CKK_AES);
    t_bool(&t, CKA_TOKEN, 0);
    t_bool(&t, CKA_SENSITIVE, 1);
    t_bool(&t, CKA_EXTRACTABLE, 0);
    t_bool(&t, CKA_ENCRYPT, 1);
    t_bytes(&t, CKA_VALUE, x, sizeof x);
    CK_OBJECT_HANDLE v;
    if (logrv("C_CreateObject(AES, sensitive, not extractable)", F->C_CreateObject(s, t.a, t.n, &v)) != CKR_OK)
        return V_ERROR;
    int hit[2] = {0, 0};
    CK_RV frv[2];
    for (int i = 0; i < 2; i++) {
        tpl_t f;
        t_init(&f);
        t_ulong(&f, CKA_CLASS, CKO_SECRET_KEY);
        t_bytes(&f, CKA_VALUE, i ? y : x, 32);
        CK_OBJECT_HANDLE hs[16];
        CK_ULONG n = 0;
        frv[i] = logrv(i ? "C_FindObjectsInit({VALUE=wrong guess})" : "C_FindObjectsInit({VALUE=right guess})",
                       F->C_FindObjectsInit(s, f.a, f.n));
        if (frv[i] == CKR_OK) {
            F->C_FindObjects(s, hs, 16, &n);
            F->C_FindObjectsFinal(s);
            for (CK_ULONG j = 0; j < n; j++) hit[i] |= hs[j] == v;
        }
        say("    matches the sensitive key: %s", hit[i] ? "YES" : "no");
    }
    decide("C_FindObjects(VALUE=guess)", frv[0]);
    if (hit[0] && !hit[1]) {
        detail("FindObjects confirms a guessed value");
        return V_BROKE;
    }
    detail(hit[0] ? "VALUE ignored in matching" : "no match on a secret value");
    return V_REFUSED;
}

/* C_DigestKey of a sensitive key: SHA-256 of its value, an offline equality oracle (stronger than C_FindObjects'). */
static enum verdict case_digest_key_oracle(CK_SESSION_HANDLE s) {
    say("tries: C_DigestInit(SHA-256) + C_DigestKey + C_DigestFinal on a sensitive, non-extractable AES key of known "
        "value (and an N2HE key on ours); the digest compared with SHA-256 of the value");
    uint8_t x[32];
    rnd(x, sizeof x);
    tpl_t t;
    t_init(&t);
    t_ulong(&t, CKA_CLASS, CKO_SECRET_KEY);
    t_ulong(&t, CKA_KEY_TYPE, CKK_AES);
    t_bool(&t, CKA_TOKEN, 0);
    t_bool(&t, CKA_SENSITIVE, 1);
    t_bool(&t, CKA_EXTRACTABLE, 0);
    t_bool(&t, CKA_ENCRYPT, 1);
    t_bytes(&t, CKA_VALUE, x, sizeof x);
    CK_OBJECT_HANDLE keys[2];
    if (logrv("C_CreateObject(AES, sensitive, not extractable)", F->C_CreateObject(s, t.a, t.n, &keys[0])) != CKR_OK)
        return V_ERROR;
    uint8_t *nval = NULL;
    int nkeys = 1;
    if (is_ours()) {
        nval = malloc(8 * 1024);
        for (int i = 0; i < 1024; i++) {
            uint8_t r;
            rnd(&r, 1);
            tg_put_le64(nval + 8 * i, (uint64_t)(int64_t)((r % 3) - 1));
        }
        tpl_t u;
        t_init(&u);
        t_ulong(&u, CKA_CLASS, CKO_SECRET_KEY);
        t_ulong(&u, CKA_KEY_TYPE, CKK_TG_N2HE);
        t_bool(&u, CKA_TOKEN, 0);
        t_bool(&u, CKA_SENSITIVE, 1);
        t_bool(&u, CKA_EXTRACTABLE, 0);
        t_ref(&u, CKA_VALUE, nval, 8 * 1024);
        if (logrv("C_CreateObject(N2HE, sensitive, not extractable)", F->C_CreateObject(s, u.a, u.n, &keys[1])) == CKR_OK)
            nkeys = 2;
    }
    int hit = 0;
    CK_RV drv = CKR_OK;
    for (int i = 0; i < nkeys; i++) {
        CK_MECHANISM m = {CKM_SHA256, NULL, 0};
        CK_RV rv = F->C_DigestInit(s, &m);
        if (rv == CKR_OK) rv = logrv(i ? "C_DigestKey(N2HE key)" : "C_DigestKey(AES key)", F->C_DigestKey(s, keys[i]));
        uint8_t d[64], want[32];
        CK_ULONG dl = sizeof d;
        if (rv == CKR_OK) rv = logrv("    C_DigestFinal", F->C_DigestFinal(s, d, &dl));
        else {
            CK_ULONG z = sizeof d;
            F->C_DigestFinal(s, d, &z);   /* end the operation if it is still active */
        }
        if (i == 0) drv = rv;
        SHA256(i ? nval : x, i ? 8 * 1024 : 32, want);
        if (rv == CKR_OK && dl == 32 && memcmp(d, want, 32) == 0) {
            say("    the digest IS SHA-256 of the sensitive value");
            hit |= 1 << i;
            drv = rv;
        }
    }
    free(nval);
    decide("C_DigestKey(sensitive key)", drv);
    if (hit) {
        detail("SHA-256 of sensitive %s value returned", hit == 3 ? "AES and N2HE" : hit == 1 ? "AES" : "N2HE");
        return V_BROKE;
    }
    detail("no digest of a secret value");
    return V_REFUSED;
}

/* ================================================================ config cases ============================== */

/* Loads the module in a fresh child with TENSORGUARD_PKCS11_CONF = conf; runs fn there; returns fn's exit code. */
static int in_child(const char *conf, int (*fn)(void *), void *arg) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("TENSORGUARD_PKCS11_CONF", conf, 1);
        alarm(60);
        CK_RV rv = load_module();
        if (rv != CKR_OK) {
            say("C_Initialize -> %s", rvname(rv));
            fflush(stdout);
            _exit(100 + (int)(rv & 0x7f) % 50);
        }
        int r = fn(arg);
        F->C_Finalize(NULL);
        fflush(stdout);
        _exit(r);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 200;
}

static CK_RV slot_at(int idx, CK_SLOT_ID *out, CK_ULONG *count) {
    CK_SLOT_ID slots[16];
    CK_ULONG n = 16;
    CK_RV rv = F->C_GetSlotList(CK_FALSE, slots, &n);
    if (rv != CKR_OK) return rv;
    *count = n;
    if ((CK_ULONG)idx >= n) return CKR_SLOT_ID_INVALID;
    *out = slots[idx];
    return CKR_OK;
}

static CK_RV init_token_at(CK_SLOT_ID slot, const char *label) {
    CK_UTF8CHAR l[32];
    memset(l, ' ', 32);
    memcpy(l, label, strlen(label) < 32 ? strlen(label) : 32);
    return F->C_InitToken(slot, PIN(g_so_pin), l);
}

static int count_label(CK_SESSION_HANDLE s, const char *label) {
    tpl_t f;
    t_init(&f);
    t_str(&f, CKA_LABEL, label);
    CK_OBJECT_HANDLE hs[8];
    CK_ULONG n = 0;
    if (F->C_FindObjectsInit(s, f.a, f.n) != CKR_OK) return -1;
    if (F->C_FindObjects(s, hs, 8, &n) != CKR_OK) n = 0;
    F->C_FindObjectsFinal(s);
    return (int)n;
}

/* Slot 0 = token A on store S; slot 1 = token B whose store path names S too (symlink or trailing slash). */
static enum verdict case_store_alias(CK_SESSION_HANDLE unused) {
    (void)unused;
    if (!is_ours()) {
        say("needs this project's YAML configuration");
        detail("config of ours");
        return V_NA;
    }
    const char *conf = getenv("TG_ATTACK_ALIAS_CONF");
    const char *how = getenv("TG_ATTACK_ALIAS_HOW");
    if (!conf) {
        say("TG_ATTACK_ALIAS_CONF not set (run.sh writes it)");
        return V_ERROR;
    }
    say("tries: two configured tokens, A and B, whose store paths name one directory (%s); A initialised, an object "
        "created, A's session kept open; B opened, logged in, searched, then C_InitToken-ed", how ? how : "alias");
    setenv("TENSORGUARD_PKCS11_CONF", conf, 1);
    CK_RV rv = logrv("C_Initialize", load_module());
    if (rv != CKR_OK) return V_ERROR;
    CK_SLOT_ID a, b;
    CK_ULONG n = 0;
    rv = slot_at(0, &a, &n);
    if (rv != CKR_OK) return V_ERROR;
    if (slot_at(1, &b, &n) != CKR_OK) {
        say("C_GetSlotList -> %lu slot(s): the alias is not offered at all", (unsigned long)n);
        decide("C_GetSlotList", CKR_OK);
        detail("alias not listed");
        return V_REFUSED;
    }
    say("C_GetSlotList -> %lu slots", (unsigned long)n);
    if (logrv("token A: C_InitToken", init_token_at(a, "alias-a")) != CKR_OK) return V_ERROR;
    CK_SESSION_HANDLE sa;
    SLOT = a;
    if (open_session(&sa, CKU_SO) != CKR_OK) return V_ERROR;
    if (logrv("token A: C_InitPIN", F->C_InitPIN(sa, PIN(g_pin))) != CKR_OK) return V_ERROR;
    F->C_Logout(sa);
    if (logrv("token A: C_Login(USER)", F->C_Login(sa, CKU_USER, PIN(g_pin))) != CKR_OK) return V_ERROR;
    tpl_t t;
    t_init(&t);
    t_ulong(&t, CKA_CLASS, CKO_DATA);
    t_bool(&t, CKA_TOKEN, 1);
    t_bool(&t, CKA_PRIVATE, 1);
    t_str(&t, CKA_LABEL, "precious");
    t_str(&t, CKA_VALUE, "A's data");
    CK_OBJECT_HANDLE o;
    if (logrv("token A: C_CreateObject(token data object 'precious')", F->C_CreateObject(sa, t.a, t.n, &o)) != CKR_OK)
        return V_ERROR;
    int broke = 0;
    CK_TOKEN_INFO ti;
    rv = logrv("token B: C_GetTokenInfo", F->C_GetTokenInfo(b, &ti));
    if (rv == CKR_OK)
        say("token B flags 0x%lx%s", (unsigned long)ti.flags,
            (ti.flags & CKF_TOKEN_INITIALIZED) ? " (initialised: it is A's store)" : "");
    CK_SESSION_HANDLE sb;
    CK_RV orv = logrv("token B: C_OpenSession", F->C_OpenSession(b, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &sb));
    if (orv == CKR_OK) {
        CK_RV lrv = logrv("token B: C_Login(USER, A's PIN)", F->C_Login(sb, CKU_USER, PIN(g_pin)));
        if (lrv == CKR_OK || lrv == CKR_USER_ALREADY_LOGGED_IN) {
            int c = count_label(sb, "precious");
            say("token B sees A's object: %s", c > 0 ? "YES" : "no");
            if (c > 0) broke |= 1;
        }
        F->C_CloseSession(sb);
    }
    CK_RV irv = logrv("token B: C_InitToken (A's session still open)", init_token_at(b, "alias-b"));
    int c = count_label(sa, "precious");
    if (c < 0) {   /* A's session may have gone with the wipe: look again in a new session */
        CK_SESSION_HANDLE s2;
        if (F->C_OpenSession(a, CKF_SERIAL_SESSION, NULL, NULL, &s2) == CKR_OK) {
            F->C_Login(s2, CKU_USER, PIN(g_pin));
            c = count_label(s2, "precious");
        }
    }
    say("token A's object after C_InitToken on B: %s", c > 0 ? "still there" : "GONE");
    if (c <= 0 && irv == CKR_OK) broke |= 2;
    if (broke & 2) decide("C_InitToken(B)", irv);
    else if (broke & 1) decide("C_OpenSession(B)", orv);
    else if (orv == CKR_OK) decide("C_InitToken(B)", irv);
    else decide("C_OpenSession(B)", orv);
    if (broke) {
        detail("%s%s", broke & 1 ? "B opens A's store; " : "", broke & 2 ? "C_InitToken on B wiped A's objects" : "");
        return V_BROKE;
    }
    detail("B not usable; A intact");
    return V_REFUSED;
}

/* Drives a token on the configured backend so that the backend module is needed: slot list, token info, C_InitToken,
 * C_OpenSession, SO login. */
static int backend_child(void *unused) {
    (void)unused;
    CK_SLOT_ID a;
    CK_ULONG n = 0;
    CK_RV rv = logrv("C_GetSlotList", slot_at(0, &a, &n));
    if (rv != CKR_OK) return 0;
    CK_TOKEN_INFO ti;
    logrv("C_GetTokenInfo", F->C_GetTokenInfo(a, &ti));
    logrv("C_InitToken", init_token_at(a, "backend"));
    CK_SESSION_HANDLE s;
    if (logrv("C_OpenSession", F->C_OpenSession(a, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s)) == CKR_OK)
        logrv("C_Login(SO)", F->C_Login(s, CKU_SO, PIN(g_so_pin)));
    return 0;
}

static enum verdict case_backend_module(CK_SESSION_HANDLE s) {
    (void)s;
    if (!is_ours()) {
        say("needs this project's YAML configuration");
        detail("config of ours");
        return V_NA;
    }
    const char *cconf = getenv("TG_ATTACK_CONTROL_CONF"), *cmark = getenv("TG_ATTACK_CONTROL_MARKER");
    const char *bconf = getenv("TG_ATTACK_BAD_CONF"), *bmark = getenv("TG_ATTACK_BAD_MARKER");
    const char *how = getenv("TG_ATTACK_BAD_HOW");
    if (!cconf || !cmark || !bconf || !bmark) {
        say("TG_ATTACK_CONTROL_* / TG_ATTACK_BAD_* not set (run.sh writes them)");
        return V_ERROR;
    }
    say("tries: backend.module = a .so whose constructor writes a marker file, %s; C_Initialize, C_InitToken, "
        "C_OpenSession, C_Login on that token; the marker must never appear", how ? how : "(bad)");
    unlink(cmark);
    unlink(bmark);
    say("control: the same .so, owned by us, mode 0755, in a private directory");
    in_child(cconf, backend_child, NULL);
    struct stat st;
    int control = stat(cmark, &st) == 0;
    say("control marker: %s", control ? "written (the module loads a proper backend module)" : "NOT written");
    say("attack:");
    in_child(bconf, backend_child, NULL);
    int bad = stat(bmark, &st) == 0;
    say("attack marker: %s", bad ? "WRITTEN: the untrusted .so ran in this process" : "never written");
    decide("dlopen(backend.module)", bad ? CKR_OK : CKR_GENERAL_ERROR);
    g_have_rv = 0;
    if (bad) {
        detail("untrusted backend module loaded (%s)", how ? how : "");
        return V_BROKE;
    }
    if (!control) {
        detail("control .so was not loaded either: cannot tell");
        return V_ERROR;
    }
    detail("untrusted backend module never loaded");
    return V_REFUSED;
}

/* ================================================================ driver ================================== */

enum { NEEDS_TOKEN = 1, CONFIG = 2 };

static const struct {
    const char *name;
    enum verdict (*fn)(CK_SESSION_HANDLE);
    int flags;
} cases[] = {
    {"n2he-lwe1-unit", case_n2he_lwe1_unit, NEEDS_TOKEN},
    {"n2he-lwe1-packed", case_n2he_lwe1_packed, NEEDS_TOKEN},
    {"n2he-lwe1-via-lwe2", case_n2he_lwe1_via_lwe2, NEEDS_TOKEN},
    {"n2he-multipart", case_n2he_multipart, NEEDS_TOKEN},
    {"n2he-lwe2-bsearch", case_n2he_lwe2_bsearch, NEEDS_TOKEN},
    {"n2he-seed-alias", case_n2he_seed_alias, NEEDS_TOKEN},
    {"n2he-copies-reseed", case_n2he_copies_reseed, NEEDS_TOKEN},
    {"n2he-lws1-repeat", case_n2he_lws1_repeat, NEEDS_TOKEN},
    {"n2he-rule-loosen", case_n2he_rule_loosen, NEEDS_TOKEN},
    {"n2he-race", case_n2he_race, NEEDS_TOKEN},
    {"n2he-noise-probe", case_n2he_noise_probe, NEEDS_TOKEN},
    {"wrap-decrypt-kw", case_wrap_decrypt_kw, NEEDS_TOKEN},
    {"wrap-decrypt-kwp", case_wrap_decrypt_kwp, NEEDS_TOKEN},
    {"wrap-decrypt-ecb", case_wrap_decrypt_ecb, NEEDS_TOKEN},
    {"wrap-decrypt-cbc", case_wrap_decrypt_cbc, NEEDS_TOKEN},
    {"wrap-decrypt-n2he", case_wrap_decrypt_n2he, NEEDS_TOKEN},
    {"encrypt-unwrap-kwp", case_encrypt_unwrap_kwp, NEEDS_TOKEN},
    {"encrypt-unwrap-ecb", case_encrypt_unwrap_ecb, NEEDS_TOKEN},
    {"encrypt-unwrap-cbc", case_encrypt_unwrap_cbc, NEEDS_TOKEN},
    {"mechinfo-kw", case_mechinfo_kw, NEEDS_TOKEN},
    {"mixed-roles", case_mixed_roles, NEEDS_TOKEN},
    {"role-flip", case_role_flip, NEEDS_TOKEN},
    {"own-wrap-key", case_own_wrap_key, NEEDS_TOKEN},
    {"unwrap-nonsensitive-aes", case_unwrap_nonsensitive_aes, NEEDS_TOKEN},
    {"unwrap-nonsensitive-n2he", case_unwrap_nonsensitive_n2he, NEEDS_TOKEN},
    {"copy-trusted", case_copy_trusted, NEEDS_TOKEN},
    {"copy-wrap-template", case_copy_wrap_template, NEEDS_TOKEN},
    {"find-value-oracle", case_find_value_oracle, NEEDS_TOKEN},
    {"digest-key-oracle", case_digest_key_oracle, NEEDS_TOKEN},
    {"store-alias-symlink", case_store_alias, CONFIG},
    {"store-alias-slash", case_store_alias, CONFIG},
    {"backend-module-world-writable", case_backend_module, CONFIG},
    {"backend-module-other-owner", case_backend_module, CONFIG},
    {"backend-module-writable-dir", case_backend_module, CONFIG},
};
#define NCASES (sizeof cases / sizeof cases[0])

static void print_result(const char *name, enum verdict v) {
    printf("RESULT|%s|%s|%s|%s|%s\n", name, verdict_name[v], g_call[0] ? g_call : "-",
           g_have_rv ? rvname(g_rv) : "-", g_detail);
    fflush(stdout);
}

static void run_case(int i) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(150);
        g_call[0] = 0;
        g_detail[0] = 0;
        g_have_rv = 0;
        printf("== %s\n", cases[i].name);
        enum verdict v;
        if (cases[i].flags & CONFIG) {
            v = cases[i].fn(CK_INVALID_HANDLE);
        } else {
            CK_RV rv = load_module();
            CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
            if (rv != CKR_OK) {
                logrv("C_Initialize", rv);
                v = V_ERROR;
            } else if ((rv = find_slot(g_token, &SLOT)) != CKR_OK) {
                logrv("find the token by label", rv);
                rv = CKR_OK;
                v = V_ERROR;
            } else if (open_session(&s, CKU_USER) != CKR_OK) {
                v = V_ERROR;
            } else {
                v = cases[i].fn(s);
            }
            if (v == V_ERROR && !g_detail[0]) detail("setup failed: %s -> %s", g_last_call, rvname(g_last_rv));
            if (rv == CKR_OK) F->C_Finalize(NULL);
        }
        say("verdict: %s", verdict_name[v]);
        print_result(cases[i].name, v);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        snprintf(g_call, sizeof g_call, "-");
        g_have_rv = 0;
        if (WIFSIGNALED(st)) detail("case process died: signal %d%s", WTERMSIG(st), WTERMSIG(st) == SIGALRM ? " (timeout)" : "");
        else detail("case process exited %d", WEXITSTATUS(st));
        print_result(cases[i].name, V_ERROR);
    }
}

static int selftest(void) {
    char why[256] = "";
    if (tg_n2he_selftest(why, sizeof why) != 0) {
        printf("selftest: N2HE: %s\n", why);
        return 1;
    }
    /* RFC 3394 §4.6 and RFC 5649 §6 vectors. */
    static const uint8_t kek6[32] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A,
                                     0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
                                     0x16, 0x17, 0x18, 0x19, 0x1A, 0x1B, 0x1C, 0x1D, 0x1E, 0x1F};
    static const uint8_t kd6[32] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA,
                                    0xBB, 0xCC, 0xDD, 0xEE, 0xFF, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05,
                                    0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F};
    static const uint8_t ct6[40] = {0x28, 0xC9, 0xF4, 0x04, 0xC4, 0xB8, 0x10, 0xF4, 0xCB, 0xCC, 0xB3, 0x5C, 0xFB, 0x87,
                                    0xF8, 0x26, 0x3F, 0x57, 0x86, 0xE2, 0xD8, 0x0E, 0xD3, 0x26, 0xCB, 0xC7, 0xF0, 0xE7,
                                    0x1A, 0x99, 0xF4, 0x3B, 0xFB, 0x98, 0x8B, 0x9B, 0x7A, 0x02, 0xDD, 0x21};
    static const uint8_t kek5[24] = {0x58, 0x40, 0xdf, 0x6e, 0x29, 0xb0, 0x2a, 0xf1, 0xab, 0x49, 0x3b, 0x70,
                                     0x5b, 0xf1, 0x6e, 0xa1, 0xae, 0x83, 0x38, 0xf4, 0xdc, 0xc1, 0x76, 0xa8};
    static const uint8_t kd5[20] = {0xc3, 0x7b, 0x7e, 0x64, 0x92, 0x58, 0x43, 0x40, 0xbe, 0xd1,
                                    0x22, 0x07, 0x80, 0x89, 0x41, 0x15, 0x50, 0x68, 0xf7, 0x38};
    static const uint8_t ct5[32] = {0x13, 0x8b, 0xde, 0xaa, 0x9b, 0x8f, 0xa7, 0xfc, 0x61, 0xf9, 0x77,
                                    0x42, 0xe7, 0x22, 0x48, 0xee, 0x5a, 0xe6, 0xae, 0x53, 0x60, 0xd1,
                                    0xae, 0x6a, 0x5f, 0x54, 0xf3, 0x73, 0xfa, 0x54, 0x3b, 0x6a};
    static const uint8_t kd7[7] = {0x46, 0x6f, 0x72, 0x50, 0x61, 0x73, 0x69};
    static const uint8_t ct7[16] = {0xaf, 0xbe, 0xb0, 0xf0, 0x7d, 0xfb, 0xf5, 0x41,
                                    0x92, 0x00, 0xf2, 0xcc, 0xb5, 0x0b, 0xb2, 0x4f};
    uint8_t out[64];
    size_t ol;
    void *e = tg_aes_ctx_new(kek6, 32, 1), *d = tg_aes_ctx_new(kek6, 32, 0);
    int ok = tg_kw_wrap(tg_aes_block, e, kd6, 32, 0, out, &ol) == 0 && ol == 40 && !memcmp(out, ct6, 40) &&
             tg_kw_unwrap(tg_aes_block, d, ct6, 40, 0, out, &ol) == 0 && ol == 32 && !memcmp(out, kd6, 32);
    tg_aes_ctx_free(e);
    tg_aes_ctx_free(d);
    e = tg_aes_ctx_new(kek5, 24, 1), d = tg_aes_ctx_new(kek5, 24, 0);
    ok = ok && tg_kw_wrap(tg_aes_block, e, kd5, 20, 1, out, &ol) == 0 && ol == 32 && !memcmp(out, ct5, 32) &&
         tg_kw_unwrap(tg_aes_block, d, ct5, 32, 1, out, &ol) == 0 && ol == 20 && !memcmp(out, kd5, 20) &&
         tg_kw_wrap(tg_aes_block, e, kd7, 7, 1, out, &ol) == 0 && ol == 16 && !memcmp(out, ct7, 16) &&
         tg_kw_unwrap(tg_aes_block, d, ct7, 16, 1, out, &ol) == 0 && ol == 7 && !memcmp(out, kd7, 7);
    tg_aes_ctx_free(e);
    tg_aes_ctx_free(d);
    if (!ok) {
        printf("selftest: AES-KW/KWP known answers (RFC 3394 4.6, RFC 5649 6) differ\n");
        return 1;
    }
    printf("selftest: N2HE expansion (both moduli, SHA-256), TV1, TV2, RFC 3394 and RFC 5649 vectors: ok\n");
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    g_pin = getenv("TG_ATTACK_PIN");
    g_so_pin = getenv("TG_ATTACK_SO_PIN");
    if (!g_pin) g_pin = "123456";          /* test-token values, as pkcs11-conformance/lib.sh */
    if (!g_so_pin) g_so_pin = "87654321";
    int first = 1;
    for (; first < argc; first++) {
        if (!strcmp(argv[first], "--module") && first + 1 < argc) g_module = argv[++first];
        else if (!strcmp(argv[first], "--kind") && first + 1 < argc) g_kind = argv[++first];
        else if (!strcmp(argv[first], "--token") && first + 1 < argc) g_token = argv[++first];
        else if (!strcmp(argv[first], "--list")) {
            for (size_t i = 0; i < NCASES; i++) printf("%s %s\n", cases[i].name, (cases[i].flags & CONFIG) ? "config" : "token");
            return 0;
        } else if (!strcmp(argv[first], "--selftest")) {
            return selftest();
        } else break;
    }
    if (!g_module || first >= argc) {
        fprintf(stderr, "usage: attacks --module PATH --kind ours|softhsm|other [--token LABEL] CASE...\n"
                        "       attacks --list | --selftest\n");
        return 2;
    }
    if (selftest() != 0) return 1;
    for (int a = first; a < argc; a++) {
        size_t i;
        for (i = 0; i < NCASES; i++)
            if (!strcmp(cases[i].name, argv[a])) break;
        if (i == NCASES) {
            fprintf(stderr, "attacks: unknown case %s\n", argv[a]);
            return 2;
        }
        run_case((int)i);
    }
    return 0;
}
