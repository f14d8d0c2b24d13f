/*
 * abi_sweep — drives libtensorguard-pkcs11.so through its C ABI the way a careless or hostile host
 * would, and checks that every answer is the CK_RV the PKCS#11 standard names (2.40 / 3.0).
 *
 *   abi_sweep /path/to/libtensorguard-pkcs11.so
 *
 * The module is dlopen'ed by path; TENSORGUARD_PKCS11_CONF must name a config with one fresh token
 * (Tests/abi/run.sh writes it). Prints one line per failed case and, at the end,
 * "N passed, M failed"; exits non-zero on any failure.
 */
#define _GNU_SOURCE
#include <p11-kit-1/p11-kit/pkcs11.h>
#include "Sources/CP11Kit/pkcs11-v3.h"
#include "Include/tensorguard-pkcs11.h"

#include <dlfcn.h>
#include <errno.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define BOGUS_COUNT 3
static const CK_ULONG bogus_handles[BOGUS_COUNT] = { 0, (CK_ULONG)1 << 40, ULONG_MAX };

static const char *so_pin = "abi-so-pin-1";
static const char *user_pin = "abi-user-pin-1";
#define PIN(p) (CK_UTF8CHAR_PTR)(p), (CK_ULONG)strlen(p)

/* ------------------------------------------------------------------------------------------------ */
/* Bookkeeping                                                                                      */

static int passed, failed;
static const char *section = "";

static const char *rv_name(CK_RV rv) {
    switch (rv) {
#define N(x) case x: return #x;
    N(CKR_OK) N(CKR_CANCEL) N(CKR_HOST_MEMORY) N(CKR_SLOT_ID_INVALID) N(CKR_GENERAL_ERROR)
    N(CKR_FUNCTION_FAILED) N(CKR_ARGUMENTS_BAD) N(CKR_NO_EVENT) N(CKR_NEED_TO_CREATE_THREADS) N(CKR_CANT_LOCK)
    N(CKR_ATTRIBUTE_READ_ONLY) N(CKR_ATTRIBUTE_SENSITIVE) N(CKR_ATTRIBUTE_TYPE_INVALID)
    N(CKR_ATTRIBUTE_VALUE_INVALID) N(CKR_ACTION_PROHIBITED) N(CKR_DATA_INVALID) N(CKR_DATA_LEN_RANGE)
    N(CKR_DEVICE_ERROR) N(CKR_DEVICE_MEMORY) N(CKR_DEVICE_REMOVED) N(CKR_ENCRYPTED_DATA_INVALID)
    N(CKR_ENCRYPTED_DATA_LEN_RANGE) N(CKR_FUNCTION_CANCELED) N(CKR_FUNCTION_NOT_PARALLEL)
    N(CKR_FUNCTION_NOT_SUPPORTED) N(CKR_KEY_HANDLE_INVALID) N(CKR_KEY_SIZE_RANGE) N(CKR_KEY_TYPE_INCONSISTENT)
    N(CKR_KEY_NOT_NEEDED) N(CKR_KEY_CHANGED) N(CKR_KEY_NEEDED) N(CKR_KEY_INDIGESTIBLE)
    N(CKR_KEY_FUNCTION_NOT_PERMITTED) N(CKR_KEY_NOT_WRAPPABLE) N(CKR_KEY_UNEXTRACTABLE) N(CKR_MECHANISM_INVALID)
    N(CKR_MECHANISM_PARAM_INVALID) N(CKR_OBJECT_HANDLE_INVALID) N(CKR_OPERATION_ACTIVE)
    N(CKR_OPERATION_NOT_INITIALIZED) N(CKR_PIN_INCORRECT) N(CKR_PIN_INVALID) N(CKR_PIN_LEN_RANGE)
    N(CKR_PIN_EXPIRED) N(CKR_PIN_LOCKED) N(CKR_SESSION_CLOSED) N(CKR_SESSION_COUNT) N(CKR_SESSION_HANDLE_INVALID)
    N(CKR_SESSION_PARALLEL_NOT_SUPPORTED) N(CKR_SESSION_READ_ONLY) N(CKR_SESSION_EXISTS)
    N(CKR_SESSION_READ_ONLY_EXISTS) N(CKR_SESSION_READ_WRITE_SO_EXISTS) N(CKR_SIGNATURE_INVALID)
    N(CKR_SIGNATURE_LEN_RANGE) N(CKR_TEMPLATE_INCOMPLETE) N(CKR_TEMPLATE_INCONSISTENT) N(CKR_TOKEN_NOT_PRESENT)
    N(CKR_TOKEN_NOT_RECOGNIZED) N(CKR_TOKEN_WRITE_PROTECTED) N(CKR_UNWRAPPING_KEY_HANDLE_INVALID)
    N(CKR_UNWRAPPING_KEY_SIZE_RANGE) N(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT) N(CKR_USER_ALREADY_LOGGED_IN)
    N(CKR_USER_NOT_LOGGED_IN) N(CKR_USER_PIN_NOT_INITIALIZED) N(CKR_USER_TYPE_INVALID)
    N(CKR_USER_ANOTHER_ALREADY_LOGGED_IN) N(CKR_USER_TOO_MANY_TYPES) N(CKR_WRAPPED_KEY_INVALID)
    N(CKR_WRAPPED_KEY_LEN_RANGE) N(CKR_WRAPPING_KEY_HANDLE_INVALID) N(CKR_WRAPPING_KEY_SIZE_RANGE)
    N(CKR_WRAPPING_KEY_TYPE_INCONSISTENT) N(CKR_RANDOM_SEED_NOT_SUPPORTED) N(CKR_RANDOM_NO_RNG)
    N(CKR_BUFFER_TOO_SMALL) N(CKR_SAVED_STATE_INVALID) N(CKR_INFORMATION_SENSITIVE) N(CKR_STATE_UNSAVEABLE)
    N(CKR_CRYPTOKI_NOT_INITIALIZED) N(CKR_CRYPTOKI_ALREADY_INITIALIZED) N(CKR_MUTEX_BAD) N(CKR_MUTEX_NOT_LOCKED)
    N(CKR_FUNCTION_REJECTED) N(CKR_OPERATION_CANCEL_FAILED)
#undef N
    default: {
        static char buf[8][32];
        static int next;
        char *b = buf[next++ % 8];
        snprintf(b, sizeof buf[0], "0x%lx", rv);
        return b;
    }
    }
}

static void expect_rv(const char *what, int line, CK_RV got, const CK_RV *expected, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (got == expected[i]) {
            passed++;
            return;
        }
    }
    failed++;
    printf("FAIL [%s] line %d: %s -> %s, expected", section, line, what, rv_name(got));
    for (size_t i = 0; i < n; i++) printf("%s %s", i ? " or" : "", rv_name(expected[i]));
    printf("\n");
}

static void check(const char *what, int line, int ok) {
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL [%s] line %d: %s\n", section, line, what);
    }
}

/* EXPECT(call, rv...) — the call must answer one of the listed CK_RVs. */
#define EXPECT(call, ...) do { \
        const CK_RV expected_[] = { __VA_ARGS__ }; \
        expect_rv(#call, __LINE__, (call), expected_, sizeof expected_ / sizeof expected_[0]); \
    } while (0)
#define CHECK(cond) check(#cond, __LINE__, (cond))

/* ------------------------------------------------------------------------------------------------ */
/* Loading                                                                                          */

static const char *entry_names[] = {
    "C_Initialize", "C_Finalize", "C_GetInfo", "C_GetFunctionList", "C_GetSlotList", "C_GetSlotInfo",
    "C_GetTokenInfo", "C_GetMechanismList", "C_GetMechanismInfo", "C_InitToken", "C_InitPIN", "C_SetPIN",
    "C_OpenSession", "C_CloseSession", "C_CloseAllSessions", "C_GetSessionInfo", "C_GetOperationState",
    "C_SetOperationState", "C_Login", "C_Logout", "C_CreateObject", "C_CopyObject", "C_DestroyObject",
    "C_GetObjectSize", "C_GetAttributeValue", "C_SetAttributeValue", "C_FindObjectsInit", "C_FindObjects",
    "C_FindObjectsFinal", "C_EncryptInit", "C_Encrypt", "C_EncryptUpdate", "C_EncryptFinal", "C_DecryptInit",
    "C_Decrypt", "C_DecryptUpdate", "C_DecryptFinal", "C_DigestInit", "C_Digest", "C_DigestUpdate",
    "C_DigestKey", "C_DigestFinal", "C_SignInit", "C_Sign", "C_SignUpdate", "C_SignFinal", "C_SignRecoverInit",
    "C_SignRecover", "C_VerifyInit", "C_Verify", "C_VerifyUpdate", "C_VerifyFinal", "C_VerifyRecoverInit",
    "C_VerifyRecover", "C_DigestEncryptUpdate", "C_DecryptDigestUpdate", "C_SignEncryptUpdate",
    "C_DecryptVerifyUpdate", "C_GenerateKey", "C_GenerateKeyPair", "C_WrapKey", "C_UnwrapKey", "C_DeriveKey",
    "C_SeedRandom", "C_GenerateRandom", "C_GetFunctionStatus", "C_CancelFunction", "C_WaitForSlotEvent",
    /* 3.0 */
    "C_GetInterfaceList", "C_GetInterface", "C_LoginUser", "C_SessionCancel", "C_MessageEncryptInit",
    "C_EncryptMessage", "C_EncryptMessageBegin", "C_EncryptMessageNext", "C_MessageEncryptFinal",
    "C_MessageDecryptInit", "C_DecryptMessage", "C_DecryptMessageBegin", "C_DecryptMessageNext",
    "C_MessageDecryptFinal", "C_MessageSignInit", "C_SignMessage", "C_SignMessageBegin", "C_SignMessageNext",
    "C_MessageSignFinal", "C_MessageVerifyInit", "C_VerifyMessage", "C_VerifyMessageBegin",
    "C_VerifyMessageNext", "C_MessageVerifyFinal",
};
#define ENTRY_COUNT (sizeof entry_names / sizeof entry_names[0])

static void *handle;
static CK_FUNCTION_LIST_PTR f2;    /* C_GetFunctionList's 2.40 list */
static CK_FUNCTION_LIST_3_0_PTR f; /* the 3.0 list: everything below calls through it */
static CK_C_GetFunctionList get_function_list;
static CK_RV (*get_interface_list)(CK_INTERFACE_PTR, CK_ULONG_PTR);
static CK_RV (*get_interface)(CK_UTF8CHAR_PTR, CK_VERSION_PTR, CK_INTERFACE_PTR_PTR, CK_FLAGS);

static int load(const char *path) {
    handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        printf("dlopen %s: %s\n", path, dlerror());
        return 0;
    }
    get_function_list = (CK_C_GetFunctionList)dlsym(handle, "C_GetFunctionList");
    *(void **)&get_interface_list = dlsym(handle, "C_GetInterfaceList");
    *(void **)&get_interface = dlsym(handle, "C_GetInterface");
    return get_function_list != NULL && get_interface_list != NULL && get_interface != NULL;
}

/* ------------------------------------------------------------------------------------------------ */
/* Function lists and interfaces (no C_Initialize needed)                                           */

static void test_function_lists(void) {
    section = "function lists";
    EXPECT(get_function_list(NULL), CKR_ARGUMENTS_BAD);
    EXPECT(get_function_list(&f2), CKR_OK);
    CHECK(f2 != NULL && f2->version.major == 2 && f2->version.minor == 40);

    CK_INTERFACE_PTR iface = NULL;
    EXPECT(get_interface(NULL, NULL, &iface, 0), CKR_OK);
    CHECK(iface != NULL);
    if (iface == NULL) return;
    f = (CK_FUNCTION_LIST_3_0_PTR)iface->pFunctionList;
    CHECK(f->version.major == 3 && f->version.minor == 0);

    /* Every slot of both lists is filled, and is the exported symbol of that name. */
    void **slots3 = (void **)((char *)f + sizeof(void *));
    void **slots2 = (void **)((char *)f2 + sizeof(void *));
    int all_match = 1;
    for (size_t i = 0; i < ENTRY_COUNT; i++) {
        void *sym = dlsym(handle, entry_names[i]);
        if (sym == NULL || slots3[i] != sym || (i < 68 && slots2[i] != sym)) {
            printf("FAIL [%s] slot %zu %s: symbol %p, 3.0 list %p, 2.40 list %p\n", section, i, entry_names[i],
                   sym, slots3[i], i < 68 ? slots2[i] : NULL);
            all_match = 0;
        }
    }
    CHECK(all_match);
    CHECK(ENTRY_COUNT == 92);
    /* Only C_* leaves the module: the Swift runtime and our Swift symbols stay inside. */
    CHECK(dlsym(handle, "swift_retain") == NULL);
    CHECK(dlsym(handle, "swift_release") == NULL);
    CHECK(dlsym(handle, "__dispatch_tsd") == NULL);
    CHECK(dlsym(handle, "tgInitialize") == NULL);
}

static void test_interfaces(void) {
    section = "interfaces";
    CK_ULONG count = 0;
    EXPECT(get_interface_list(NULL, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(get_interface_list(NULL, &count), CKR_OK);
    CHECK(count == 2);
    CK_INTERFACE list[4];
    memset(list, 0, sizeof list);
    count = 1;
    EXPECT(get_interface_list(list, &count), CKR_BUFFER_TOO_SMALL);
    CHECK(count == 2);
    count = 0;
    EXPECT(get_interface_list(list, &count), CKR_BUFFER_TOO_SMALL);
    count = 4;
    EXPECT(get_interface_list(list, &count), CKR_OK);
    CHECK(count == 2);
    int have30 = 0, have240 = 0;
    for (CK_ULONG i = 0; i < 2; i++) {
        CHECK(list[i].pInterfaceName != NULL && strcmp((char *)list[i].pInterfaceName, "PKCS 11") == 0);
        CHECK(list[i].flags == 0);
        CK_VERSION *v = (CK_VERSION *)list[i].pFunctionList;
        if (v->major == 3 && v->minor == 0) have30 = 1;
        if (v->major == 2 && v->minor == 40) have240 = 1;
    }
    CHECK(have30 && have240);

    CK_INTERFACE_PTR iface = NULL;
    CK_VERSION v240 = { 2, 40 }, v30 = { 3, 0 }, v31 = { 3, 1 }, v211 = { 2, 11 };
    EXPECT(get_interface(NULL, NULL, NULL, 0), CKR_ARGUMENTS_BAD);
    EXPECT(get_interface((CK_UTF8CHAR_PTR)"PKCS 11", &v30, NULL, 0), CKR_ARGUMENTS_BAD);
    EXPECT(get_interface((CK_UTF8CHAR_PTR)"PKCS 11", NULL, &iface, 0), CKR_OK);
    CHECK(iface != NULL && ((CK_VERSION *)iface->pFunctionList)->major == 3);
    iface = NULL;
    EXPECT(get_interface((CK_UTF8CHAR_PTR)"PKCS 11", &v240, &iface, 0), CKR_OK);
    CHECK(iface != NULL && iface->pFunctionList == (void *)f2);
    iface = NULL;
    EXPECT(get_interface(NULL, &v30, &iface, 0), CKR_OK);
    CHECK(iface != NULL && iface->pFunctionList == (void *)f);
    EXPECT(get_interface(NULL, &v31, &iface, 0), CKR_FUNCTION_FAILED);
    EXPECT(get_interface(NULL, &v211, &iface, 0), CKR_FUNCTION_FAILED);
    EXPECT(get_interface((CK_UTF8CHAR_PTR)"Vendor TG", NULL, &iface, 0), CKR_FUNCTION_FAILED);
    EXPECT(get_interface((CK_UTF8CHAR_PTR)"PKCS 11 ", NULL, &iface, 0), CKR_FUNCTION_FAILED);
    EXPECT(get_interface((CK_UTF8CHAR_PTR)"", NULL, &iface, 0), CKR_FUNCTION_FAILED);
    /* We do not promise fork-tolerant semantics (a child must C_Initialize again). */
    EXPECT(get_interface(NULL, NULL, &iface, CKF_INTERFACE_FORK_SAFE), CKR_FUNCTION_FAILED);
    /* The 3.0 list's own discovery functions are the exported ones. */
    CHECK(f->C_GetInterface == get_interface && f->C_GetInterfaceList == get_interface_list);
    CHECK(f->C_GetFunctionList == get_function_list && f2->C_GetFunctionList == get_function_list);
}

/* ------------------------------------------------------------------------------------------------ */
/* Every entry point with empty arguments: all but the four discovery/initialisation functions must */
/* answer `rv` (CKR_CRYPTOKI_NOT_INITIALIZED before C_Initialize and after C_Finalize).             */

static void sweep_uninitialised(const char *name) {
    section = name;
    const CK_RV NI = CKR_CRYPTOKI_NOT_INITIALIZED;
    CK_BYTE buf[64];
    CK_ULONG len = sizeof buf;
    CK_ATTRIBUTE attr = { CKA_LABEL, buf, sizeof buf };
    CK_MECHANISM mech = { CKM_AES_GCM, NULL, 0 };
    CK_OBJECT_HANDLE obj;
    CK_SESSION_HANDLE sess;
    CK_SLOT_ID slot;
    CK_INFO info;
    CK_SLOT_INFO slot_info;
    CK_TOKEN_INFO token_info;
    CK_MECHANISM_INFO mech_info;
    CK_SESSION_INFO session_info;
    CK_MECHANISM_TYPE mechs[4];

    /* Valid-looking pointers and NULL pointers alike: the initialised check comes first. */
    for (int pass = 0; pass < 2; pass++) {
        int v = pass == 0;
#define P(x) (v ? (x) : NULL)
        EXPECT(f->C_Finalize(NULL), NI);
        EXPECT(f->C_GetInfo(P(&info)), NI);
        EXPECT(f->C_GetSlotList(CK_TRUE, P(&slot), P(&len)), NI);
        EXPECT(f->C_GetSlotInfo(0, P(&slot_info)), NI);
        EXPECT(f->C_GetTokenInfo(0, P(&token_info)), NI);
        EXPECT(f->C_GetMechanismList(0, P(mechs), P(&len)), NI);
        EXPECT(f->C_GetMechanismInfo(0, CKM_AES_GCM, P(&mech_info)), NI);
        EXPECT(f->C_InitToken(0, P(buf), 4, P(buf)), NI);
        EXPECT(f->C_InitPIN(1, P(buf), 4), NI);
        EXPECT(f->C_SetPIN(1, P(buf), 4, P(buf), 4), NI);
        EXPECT(f->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, P(&sess)), NI);
        EXPECT(f->C_CloseSession(1), NI);
        EXPECT(f->C_CloseAllSessions(0), NI);
        EXPECT(f->C_GetSessionInfo(1, P(&session_info)), NI);
        EXPECT(f->C_GetOperationState(1, P(buf), P(&len)), NI);
        EXPECT(f->C_SetOperationState(1, P(buf), 4, 0, 0), NI);
        EXPECT(f->C_Login(1, CKU_USER, P(buf), 4), NI);
        EXPECT(f->C_Logout(1), NI);
        EXPECT(f->C_CreateObject(1, P(&attr), 1, P(&obj)), NI);
        EXPECT(f->C_CopyObject(1, 1, P(&attr), 1, P(&obj)), NI);
        EXPECT(f->C_DestroyObject(1, 1), NI);
        EXPECT(f->C_GetObjectSize(1, 1, P(&len)), NI);
        EXPECT(f->C_GetAttributeValue(1, 1, P(&attr), 1), NI);
        EXPECT(f->C_SetAttributeValue(1, 1, P(&attr), 1), NI);
        EXPECT(f->C_FindObjectsInit(1, P(&attr), 1), NI);
        EXPECT(f->C_FindObjects(1, P(&obj), 1, P(&len)), NI);
        EXPECT(f->C_FindObjectsFinal(1), NI);
        EXPECT(f->C_EncryptInit(1, P(&mech), 1), NI);
        EXPECT(f->C_Encrypt(1, P(buf), 4, P(buf), P(&len)), NI);
        EXPECT(f->C_EncryptUpdate(1, P(buf), 4, P(buf), P(&len)), NI);
        EXPECT(f->C_EncryptFinal(1, P(buf), P(&len)), NI);
        EXPECT(f->C_DecryptInit(1, P(&mech), 1), NI);
        EXPECT(f->C_Decrypt(1, P(buf), 4, P(buf), P(&len)), NI);
        EXPECT(f->C_DecryptUpdate(1, P(buf), 4, P(buf), P(&len)), NI);
        EXPECT(f->C_DecryptFinal(1, P(buf), P(&len)), NI);
        EXPECT(f->C_DigestInit(1, P(&mech)), NI);
        EXPECT(f->C_Digest(1, P(buf), 4, P(buf), P(&len)), NI);
        EXPECT(f->C_DigestUpdate(1, P(buf), 4), NI);
        EXPECT(f->C_DigestKey(1, 1), NI);
        EXPECT(f->C_DigestFinal(1, P(buf), P(&len)), NI);
        EXPECT(f->C_SignInit(1, P(&mech), 1), NI);
        EXPECT(f->C_Sign(1, P(buf), 4, P(buf), P(&len)), NI);
        EXPECT(f->C_SignUpdate(1, P(buf), 4), NI);
        EXPECT(f->C_SignFinal(1, P(buf), P(&len)), NI);
        EXPECT(f->C_SignRecoverInit(1, P(&mech), 1), NI);
        EXPECT(f->C_SignRecover(1, P(buf), 4, P(buf), P(&len)), NI);
        EXPECT(f->C_VerifyInit(1, P(&mech), 1), NI);
        EXPECT(f->C_Verify(1, P(buf), 4, P(buf), 4), NI);
        EXPECT(f->C_VerifyUpdate(1, P(buf), 4), NI);
        EXPECT(f->C_VerifyFinal(1, P(buf), 4), NI);
        EXPECT(f->C_VerifyRecoverInit(1, P(&mech), 1), NI);
        EXPECT(f->C_VerifyRecover(1, P(buf), 4, P(buf), P(&len)), NI);
        EXPECT(f->C_DigestEncryptUpdate(1, P(buf), 4, P(buf), P(&len)), NI);
        EXPECT(f->C_DecryptDigestUpdate(1, P(buf), 4, P(buf), P(&len)), NI);
        EXPECT(f->C_SignEncryptUpdate(1, P(buf), 4, P(buf), P(&len)), NI);
        EXPECT(f->C_DecryptVerifyUpdate(1, P(buf), 4, P(buf), P(&len)), NI);
        EXPECT(f->C_GenerateKey(1, P(&mech), P(&attr), 1, P(&obj)), NI);
        EXPECT(f->C_GenerateKeyPair(1, P(&mech), P(&attr), 1, P(&attr), 1, P(&obj), P(&obj)), NI);
        EXPECT(f->C_WrapKey(1, P(&mech), 1, 2, P(buf), P(&len)), NI);
        EXPECT(f->C_UnwrapKey(1, P(&mech), 1, P(buf), 4, P(&attr), 1, P(&obj)), NI);
        EXPECT(f->C_DeriveKey(1, P(&mech), 1, P(&attr), 1, P(&obj)), NI);
        EXPECT(f->C_SeedRandom(1, P(buf), 4), NI);
        EXPECT(f->C_GenerateRandom(1, P(buf), 4), NI);
        EXPECT(f->C_GetFunctionStatus(1), NI);
        EXPECT(f->C_CancelFunction(1), NI);
        EXPECT(f->C_WaitForSlotEvent(CKF_DONT_BLOCK, P(&slot), NULL), NI);
        EXPECT(f->C_LoginUser(1, CKU_USER, P(buf), 4, P(buf), 4), NI);
        EXPECT(f->C_SessionCancel(1, CKF_ENCRYPT), NI);
        EXPECT(f->C_MessageEncryptInit(1, P(&mech), 1), NI);
        EXPECT(f->C_EncryptMessage(1, P(buf), 4, P(buf), 4, P(buf), 4, P(buf), P(&len)), NI);
        EXPECT(f->C_EncryptMessageBegin(1, P(buf), 4, P(buf), 4), NI);
        EXPECT(f->C_EncryptMessageNext(1, P(buf), 4, P(buf), 4, P(buf), P(&len), 0), NI);
        EXPECT(f->C_MessageEncryptFinal(1), NI);
        EXPECT(f->C_MessageDecryptInit(1, P(&mech), 1), NI);
        EXPECT(f->C_DecryptMessage(1, P(buf), 4, P(buf), 4, P(buf), 4, P(buf), P(&len)), NI);
        EXPECT(f->C_DecryptMessageBegin(1, P(buf), 4, P(buf), 4), NI);
        EXPECT(f->C_DecryptMessageNext(1, P(buf), 4, P(buf), 4, P(buf), P(&len), 0), NI);
        EXPECT(f->C_MessageDecryptFinal(1), NI);
        EXPECT(f->C_MessageSignInit(1, P(&mech), 1), NI);
        EXPECT(f->C_SignMessage(1, P(buf), 4, P(buf), 4, P(buf), P(&len)), NI);
        EXPECT(f->C_SignMessageBegin(1, P(buf), 4), NI);
        EXPECT(f->C_SignMessageNext(1, P(buf), 4, P(buf), 4, P(buf), P(&len)), NI);
        EXPECT(f->C_MessageSignFinal(1), NI);
        EXPECT(f->C_MessageVerifyInit(1, P(&mech), 1), NI);
        EXPECT(f->C_VerifyMessage(1, P(buf), 4, P(buf), 4, P(buf), 4), NI);
        EXPECT(f->C_VerifyMessageBegin(1, P(buf), 4), NI);
        EXPECT(f->C_VerifyMessageNext(1, P(buf), 4, P(buf), 4, P(buf), 4), NI);
        EXPECT(f->C_MessageVerifyFinal(1), NI);
#undef P
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* C_Initialize argument forms                                                                      */

static int mutex_calls;
static CK_RV cb_create(void **mutex) { mutex_calls++; *mutex = malloc(1); return CKR_OK; }
static CK_RV cb_destroy(void *mutex) { mutex_calls++; free(mutex); return CKR_OK; }
static CK_RV cb_lock(void *mutex) { (void)mutex; mutex_calls++; return CKR_OK; }
static CK_RV cb_unlock(void *mutex) { (void)mutex; mutex_calls++; return CKR_OK; }

/* One cheap call that needs an initialised module. */
static CK_RV probe(void) {
    CK_INFO info;
    return f->C_GetInfo(&info);
}

static void init_args_case(const char *what, CK_C_INITIALIZE_ARGS *args, CK_RV expected) {
    CK_RV rv = f->C_Initialize(args);
    expect_rv(what, __LINE__, rv, &expected, 1);
    if (rv == CKR_OK) {
        EXPECT(probe(), CKR_OK);
        EXPECT(f->C_Finalize(NULL), CKR_OK);
    } else {
        EXPECT(probe(), CKR_CRYPTOKI_NOT_INITIALIZED);
    }
}

static void test_initialize_forms(void) {
    section = "C_Initialize";
    CK_C_INITIALIZE_ARGS args;

    init_args_case("NULL args", NULL, CKR_OK);

    memset(&args, 0, sizeof args);
    init_args_case("zeroed args (no locking wanted)", &args, CKR_OK);

    memset(&args, 0, sizeof args);
    args.flags = CKF_OS_LOCKING_OK;
    init_args_case("CKF_OS_LOCKING_OK", &args, CKR_OK);

    memset(&args, 0, sizeof args);
    args.CreateMutex = cb_create;
    args.DestroyMutex = cb_destroy;
    args.LockMutex = cb_lock;
    args.UnlockMutex = cb_unlock;
    init_args_case("mutex callbacks", &args, CKR_OK);

    args.flags = CKF_OS_LOCKING_OK;
    init_args_case("callbacks + CKF_OS_LOCKING_OK (p11-kit)", &args, CKR_OK);

    args.flags = CKF_OS_LOCKING_OK | CKF_LIBRARY_CANT_CREATE_OS_THREADS;
    init_args_case("CKF_LIBRARY_CANT_CREATE_OS_THREADS", &args, CKR_OK);

    /* Inconsistent callbacks: some set, some not. */
    for (int mask = 1; mask < 15; mask++) {
        memset(&args, 0, sizeof args);
        args.flags = (mask & 1) ? CKF_OS_LOCKING_OK : 0;
        if (mask & 1) args.CreateMutex = cb_create;
        if (mask & 2) args.DestroyMutex = cb_destroy;
        if (mask & 4) args.LockMutex = cb_lock;
        if (mask & 8) args.UnlockMutex = cb_unlock;
        char what[64];
        snprintf(what, sizeof what, "partial callbacks mask %d", mask);
        init_args_case(what, &args, CKR_ARGUMENTS_BAD);
    }

    /* pReserved: p11-kit's x-init-reserved, a NUL-terminated config path. */
    const char *conf = getenv("TENSORGUARD_PKCS11_CONF");
    memset(&args, 0, sizeof args);
    args.flags = CKF_OS_LOCKING_OK;
    args.pReserved = (void *)conf;
    if (conf != NULL) init_args_case("pReserved = config path", &args, CKR_OK);
    args.pReserved = (void *)"";
    init_args_case("pReserved = empty string (no path)", &args, CKR_OK);
    args.pReserved = (void *)"/nonexistent/tensorguard/config.yaml";
    init_args_case("pReserved = missing file", &args, CKR_ARGUMENTS_BAD);
    if (conf != NULL) {
        /* A world-writable configuration is refused (DESIGN §6). */
        char writable[4096];
        snprintf(writable, sizeof writable, "%s.world-writable.yaml", conf);
        FILE *in = fopen(conf, "r"), *out = fopen(writable, "w");
        if (in != NULL && out != NULL) {
            char chunk[512];
            size_t n;
            while ((n = fread(chunk, 1, sizeof chunk, in)) > 0) fwrite(chunk, 1, n, out);
        }
        if (in != NULL) fclose(in);
        if (out != NULL) fclose(out);
        chmod(writable, 0666);
        args.pReserved = writable;
        init_args_case("pReserved = world-writable config", &args, CKR_GENERAL_ERROR);
        unlink(writable);
    }
    /* An unterminated "path" longer than any path: refused without running off the buffer. */
    char *unterminated = malloc(5000);
    memset(unterminated, 'a', 5000);
    unterminated[4999] = 0;
    args.pReserved = unterminated;
    init_args_case("pReserved 5000 chars", &args, CKR_ARGUMENTS_BAD);
    free(unterminated);

    CHECK(mutex_calls == 0); /* OS locking in every case: the callbacks are never called */

    /* Twice, and C_Finalize's own checks. */
    EXPECT(f->C_Initialize(NULL), CKR_OK);
    EXPECT(f->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
    memset(&args, 0, sizeof args);
    args.flags = CKF_OS_LOCKING_OK;
    EXPECT(f->C_Initialize(&args), CKR_CRYPTOKI_ALREADY_INITIALIZED);
    EXPECT(f->C_Finalize((void *)1), CKR_ARGUMENTS_BAD);
    EXPECT(probe(), CKR_OK);
    EXPECT(f->C_Finalize(NULL), CKR_OK);
    EXPECT(f->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
    EXPECT(probe(), CKR_CRYPTOKI_NOT_INITIALIZED);
}

/* ------------------------------------------------------------------------------------------------ */
/* C_Initialize pReserved: any pointer value                                                        */
/*                                                                                                  */
/* p11-kit passes a configuration path in pReserved (x-init-reserved); conformance suites pass      */
/* garbage such as (void *)1. Whatever the pointer, the answer is a CK_RV, never a signal           */
/* (docs/abi.md). The hostile cases run in a forked child (the module is not initialised there):    */
/* the child reports C_Initialize's CK_RV through a pipe, and must itself exit normally.            */

struct reserved_result {
    CK_RV rv;            /* C_Initialize */
    CK_RV probe_rv;      /* C_GetInfo afterwards */
    int slot_count;      /* C_GetSlotList(CK_FALSE) when initialised, else -1 */
    char slot0[65];      /* slot 0's description, blanks trimmed */
    int filter;          /* seccomp case: 1 = process_vm_readv now fails with the chosen errno */
};

static void trimmed_description(CK_SLOT_ID id, char out[65]) {
    CK_SLOT_INFO si;
    out[0] = 0;
    if (f->C_GetSlotInfo(id, &si) != CKR_OK) return;
    memcpy(out, si.slotDescription, 64);
    out[64] = 0;
    for (int i = 63; i >= 0 && out[i] == ' '; i--) out[i] = 0;
}

/* Makes process_vm_readv fail with `err` in this process (a test filter: no arch check), so that the module's
 * write(2)-into-a-pipe fallback does the copying. Returns 1 when the filter is in place and effective. */
static int deny_process_vm_readv(int err) {
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_process_vm_readv, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { (unsigned short)(sizeof code / sizeof code[0]), code };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return 0;
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) return 0;
    char from[8] = "probe", to[8];
    struct iovec local = { to, sizeof to }, remote = { from, sizeof from };
    errno = 0;
    return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == -1 && errno == err;
}

/* C_Initialize with pReserved = `reserved` in a forked child. `expected_slot0`: when non-NULL and the call
 * succeeds, slot 0 must carry this name (the configuration that was read). `deny_errno`: nonzero = run the
 * child under a seccomp filter that makes process_vm_readv fail with that errno. */
static void reserved_case(const char *what, int line, void *reserved, CK_RV expected, const char *expected_slot0,
                          int deny_errno) {
    int fds[2];
    if (pipe(fds) != 0) {
        check("pipe for the pReserved child", line, 0);
        return;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(30); /* a hung child is a failed case, not a hung sweep */
        close(fds[0]);
        struct reserved_result r;
        memset(&r, 0, sizeof r);
        r.slot_count = -1;
        if (deny_errno) r.filter = deny_process_vm_readv(deny_errno);
        CK_C_INITIALIZE_ARGS args;
        memset(&args, 0, sizeof args);
        args.flags = CKF_OS_LOCKING_OK;
        args.pReserved = reserved;
        r.rv = f->C_Initialize(&args);
        r.probe_rv = probe();
        if (r.rv == CKR_OK) {
            CK_SLOT_ID ids[8];
            CK_ULONG n = 8;
            if (f->C_GetSlotList(CK_FALSE, ids, &n) == CKR_OK) {
                r.slot_count = (int)n;
                if (n >= 1) trimmed_description(ids[0], r.slot0);
            }
            f->C_Finalize(NULL);
        }
        ssize_t w = write(fds[1], &r, sizeof r);
        _exit(w == (ssize_t)sizeof r ? 0 : 3);
    }
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        check("fork for the pReserved child", line, 0);
        return;
    }
    struct reserved_result r;
    memset(&r, 0, sizeof r);
    ssize_t got = read(fds[0], &r, sizeof r);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    char label[200];
    snprintf(label, sizeof label, "%s: child exited normally", what);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        printf("      %s: child status exited=%d code=%d signal=%d (%s)\n", what, WIFEXITED(status),
               WIFEXITED(status) ? WEXITSTATUS(status) : 0, WIFSIGNALED(status) ? WTERMSIG(status) : 0,
               WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "-");
    /* Exited (no signal) after reporting its answer. The exit code is not part of it: under ABI_VALGRIND the
     * child inherits the parent's error count and --error-exitcode turns any earlier report into exit 1. */
    check(label, line, WIFEXITED(status) && got == (ssize_t)sizeof r);
    if (got != (ssize_t)sizeof r) return;
    if (deny_errno) {
        snprintf(label, sizeof label, "%s: seccomp filter makes process_vm_readv fail (errno %d)", what, deny_errno);
        check(label, line, r.filter);
    }
    expect_rv(what, line, r.rv, &expected, 1);
    CK_RV after = r.rv == CKR_OK ? CKR_OK : CKR_CRYPTOKI_NOT_INITIALIZED;
    snprintf(label, sizeof label, "%s: C_GetInfo afterwards", what);
    expect_rv(label, line, r.probe_rv, &after, 1);
    if (r.rv == CKR_OK && expected_slot0 != NULL) {
        snprintf(label, sizeof label, "%s: slot 0 is '%s' (got '%s', %d slots)", what, expected_slot0, r.slot0,
                 r.slot_count);
        check(label, line, strcmp(r.slot0, expected_slot0) == 0);
    }
}
#define RESERVED_CASE(what, reserved, expected, slot0) reserved_case(what, __LINE__, reserved, expected, slot0, 0)

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

static void test_initialize_reserved(void) {
    section = "C_Initialize pReserved";
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0) page = 4096;
    const char *env_conf = getenv("TENSORGUARD_PKCS11_CONF");
    const char *env_slot0 = env_conf != NULL ? "abi-test" : NULL; /* run.sh's first token */

    /* A configuration of its own, so that a token named only there proves pReserved was read (and wins over
     * TENSORGUARD_PKCS11_CONF). Next to run.sh's config when there is one: run.sh removes that directory. */
    char dir[PATH_MAX];
    if (env_conf != NULL) {
        char copy[PATH_MAX];
        snprintf(copy, sizeof copy, "%s", env_conf);
        snprintf(dir, sizeof dir, "%s/preserved.XXXXXX", dirname(copy));
    } else {
        snprintf(dir, sizeof dir, "%s/tg-abi-preserved.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    }
    int have_conf = mkdtemp(dir) != NULL;
    char conf[PATH_MAX + 64];
    snprintf(conf, sizeof conf, "%s/config.yaml", dir);
    if (have_conf) {
        FILE *out = fopen(conf, "w");
        have_conf = out != NULL;
        if (out != NULL) {
            fprintf(out,
                    "audit: { file: %s/audit.log, sync: false }\n"
                    "tokens:\n"
                    "  - name: reserved-token\n"
                    "    store: %s/store\n"
                    "    backend: { kind: local }\n"
                    "    pin_kdf_cost: 10\n",
                    dir, dir);
            have_conf = fclose(out) == 0 && chmod(conf, 0600) == 0;
        }
    }
    CHECK(have_conf);

    /* (a) small integers and addresses no user mapping can have. */
    RESERVED_CASE("pReserved = (void *)1", (void *)1, CKR_ARGUMENTS_BAD, NULL);
    RESERVED_CASE("pReserved = (void *)0x1000", (void *)0x1000, CKR_ARGUMENTS_BAD, NULL);
    RESERVED_CASE("pReserved = non-canonical 0x8000000000000000", (void *)(uintptr_t)0x8000000000000000ULL,
                  CKR_ARGUMENTS_BAD, NULL);
    RESERVED_CASE("pReserved = (void *)UINTPTR_MAX", (void *)UINTPTR_MAX, CKR_ARGUMENTS_BAD, NULL);
    RESERVED_CASE("pReserved = (void *)(UINTPTR_MAX - 10)", (void *)(UINTPTR_MAX - 10), CKR_ARGUMENTS_BAD, NULL);

    /* (b) a pointer into a PROT_NONE page (kept mapped so that nothing else lands there). */
    char *none = mmap(NULL, (size_t)page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(none != MAP_FAILED);
    if (none != MAP_FAILED) {
        RESERVED_CASE("pReserved = start of a PROT_NONE page", none, CKR_ARGUMENTS_BAD, NULL);
        RESERVED_CASE("pReserved = middle of a PROT_NONE page", none + page / 2, CKR_ARGUMENTS_BAD, NULL);
    }

    /* (c) strings without a terminator that run into a PROT_NONE page; and (e) valid paths at page edges.
     * Two pages: the first readable, the second PROT_NONE. */
    char *two = mmap(NULL, 2 * (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(two != MAP_FAILED);
    if (two != MAP_FAILED) {
        CHECK(mprotect(two + page, (size_t)page, PROT_NONE) == 0);
        memset(two, 'a', (size_t)page); /* no NUL anywhere in the readable page */
        RESERVED_CASE("pReserved = 100 bytes without NUL, then a PROT_NONE page", two + page - 100,
                      CKR_ARGUMENTS_BAD, NULL);
        RESERVED_CASE("pReserved = last byte of a page (not NUL), then a PROT_NONE page", two + page - 1,
                      CKR_ARGUMENTS_BAD, NULL);
        memcpy(two + page - 100, "/tmp/", 5); /* looks like a path, still unterminated */
        RESERVED_CASE("pReserved = \"/tmp/aaa...\" unterminated, then a PROT_NONE page", two + page - 100,
                      CKR_ARGUMENTS_BAD, NULL);
        /* (e) a valid path whose NUL is the last readable byte: must work (nothing past the NUL is read). */
        size_t n = strlen(conf) + 1;
        if (have_conf && n < (size_t)page) {
            memcpy(two + page - n, conf, n);
            RESERVED_CASE("pReserved = config path ending at the last byte before a PROT_NONE page",
                          two + page - n, CKR_OK, "reserved-token");
        }
        memset(two, 'a', (size_t)page);
        two[page - 1] = 0;
        RESERVED_CASE("pReserved = empty string in the last byte before a PROT_NONE page", two + page - 1, CKR_OK,
                      env_slot0);
        /* The pipe fallback (process_vm_readv forbidden by seccomp): the same answers. */
        two[page - 1] = 'a';
        reserved_case("seccomp EPERM: pReserved = (void *)1", __LINE__, (void *)1, CKR_ARGUMENTS_BAD, NULL, EPERM);
        if (none != MAP_FAILED)
            reserved_case("seccomp EPERM: pReserved = PROT_NONE page", __LINE__, none, CKR_ARGUMENTS_BAD, NULL,
                          EPERM);
        reserved_case("seccomp ENOSYS: pReserved = unterminated into a PROT_NONE page", __LINE__, two + page - 100,
                      CKR_ARGUMENTS_BAD, NULL, ENOSYS);
        if (have_conf && n < (size_t)page) {
            memcpy(two + page - n, conf, n);
            reserved_case("seccomp EPERM: pReserved = config path ending before a PROT_NONE page", __LINE__,
                          two + page - n, CKR_OK, "reserved-token", EPERM);
        }
    }
    /* (e) a valid path that straddles two readable pages. */
    char *rw2 = mmap(NULL, 2 * (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(rw2 != MAP_FAILED);
    if (rw2 != MAP_FAILED && have_conf) {
        memcpy(rw2 + page - 7, conf, strlen(conf) + 1);
        RESERVED_CASE("pReserved = config path straddling a page boundary", rw2 + page - 7, CKR_OK,
                      "reserved-token");
    }

    /* (d) longer than 4095 bytes before the NUL (the module's buffer is 4096 with the NUL). A path of
     * exactly 4095 bytes is still a path: leading slashes pad the config's own path to that length. */
    char *longer = malloc(3 * (size_t)page);
    CHECK(longer != NULL);
    if (longer != NULL) {
        memset(longer, 'a', 3 * (size_t)page);
        longer[4096] = 0; /* 4096 bytes + NUL */
        RESERVED_CASE("pReserved = 4096 bytes + NUL", longer, CKR_ARGUMENTS_BAD, NULL);
        longer[4096] = 'a';
        longer[3 * page - 1] = 0;
        RESERVED_CASE("pReserved = 3 pages of bytes + NUL", longer, CKR_ARGUMENTS_BAD, NULL);
        size_t n = strlen(conf);
        if (have_conf && n < 4000) {
            memset(longer, '/', 4096 - n);
            memcpy(longer + 4096 - n, conf, n + 1); /* 4096 bytes + NUL */
            RESERVED_CASE("pReserved = 4096-byte path (slashes + config path) + NUL", longer, CKR_ARGUMENTS_BAD,
                          NULL);
            memcpy(longer + 4095 - n, conf, n + 1); /* 4095 bytes + NUL: the longest accepted */
            RESERVED_CASE("pReserved = 4095-byte path (slashes + config path) + NUL", longer, CKR_OK,
                          "reserved-token");
        }
        free(longer);
    }
    /* Not UTF-8 (documented: CKR_ARGUMENTS_BAD). */
    RESERVED_CASE("pReserved = not UTF-8", (void *)"/tmp/\xff\xfe.yaml", CKR_ARGUMENTS_BAD, NULL);

    /* (e) in this process: the configuration named by pReserved is the one read, over TENSORGUARD_PKCS11_CONF,
     * and its store is created (0700). (f) the empty string is no path: the usual lookup (here the env). */
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof args);
    args.flags = CKF_OS_LOCKING_OK;
    if (have_conf) {
        args.pReserved = conf;
        EXPECT(f->C_Initialize(&args), CKR_OK);
        CK_SLOT_ID ids[8];
        CK_ULONG n = 8;
        EXPECT(f->C_GetSlotList(CK_FALSE, ids, &n), CKR_OK);
        CHECK(n == 1);
        char name[65] = "";
        if (n >= 1) trimmed_description(ids[0], name);
        if (strcmp(name, "reserved-token") != 0) printf("      pReserved config: slot 0 is '%s'\n", name);
        CHECK(strcmp(name, "reserved-token") == 0);
        CK_TOKEN_INFO ti;
        if (n >= 1) EXPECT(f->C_GetTokenInfo(ids[0], &ti), CKR_OK);
        char store[PATH_MAX + 16];
        snprintf(store, sizeof store, "%s/store", dir);
        struct stat st;
        CHECK(stat(store, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0700);
        EXPECT(f->C_Finalize(NULL), CKR_OK);
    }
    args.pReserved = (void *)"";
    EXPECT(f->C_Initialize(&args), CKR_OK);
    if (env_slot0 != NULL) {
        CK_SLOT_ID ids[8];
        CK_ULONG n = 8;
        EXPECT(f->C_GetSlotList(CK_FALSE, ids, &n), CKR_OK);
        char name[65] = "";
        if (n >= 1) trimmed_description(ids[0], name);
        if (strcmp(name, env_slot0) != 0) printf("      pReserved \"\": slot 0 is '%s'\n", name);
        CHECK(n >= 1 && strcmp(name, env_slot0) == 0);
    }
    EXPECT(f->C_Finalize(NULL), CKR_OK);
    EXPECT(probe(), CKR_CRYPTOKI_NOT_INITIALIZED);

    if (none != MAP_FAILED) munmap(none, (size_t)page);
    if (two != MAP_FAILED) munmap(two, 2 * (size_t)page);
    if (rw2 != MAP_FAILED) munmap(rw2, 2 * (size_t)page);
    if (have_conf || access(dir, F_OK) == 0) nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ------------------------------------------------------------------------------------------------ */
/* General, slots, tokens                                                                           */

static CK_SLOT_ID slot;
static int have_slot;

static int blank_padded(const CK_UTF8CHAR *field, size_t width) {
    for (size_t i = 0; i < width; i++)
        if (field[i] == 0) return 0;
    return 1;
}

static void test_general(void) {
    section = "general";
    CK_INFO info;
    EXPECT(f->C_GetInfo(NULL), CKR_ARGUMENTS_BAD);
    memset(&info, 0, sizeof info);
    EXPECT(f->C_GetInfo(&info), CKR_OK);
    CHECK(info.cryptokiVersion.major == 3 || (info.cryptokiVersion.major == 2 && info.cryptokiVersion.minor == 40));
    CHECK(blank_padded(info.manufacturerID, sizeof info.manufacturerID));
    CHECK(blank_padded(info.libraryDescription, sizeof info.libraryDescription));
    CHECK(info.flags == 0);

    section = "slots";
    CK_ULONG count = 0;
    EXPECT(f->C_GetSlotList(CK_FALSE, NULL, NULL), CKR_ARGUMENTS_BAD);
    CK_SLOT_ID slots[8];
    EXPECT(f->C_GetSlotList(CK_TRUE, slots, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_GetSlotList(CK_FALSE, NULL, &count), CKR_OK);
    CHECK(count == 2); /* run.sh configures two tokens */
    CK_ULONG small = 0;
    EXPECT(f->C_GetSlotList(CK_TRUE, slots, &small), CKR_BUFFER_TOO_SMALL);
    CHECK(small == count);
    count = 8;
    EXPECT(f->C_GetSlotList(CK_TRUE, slots, &count), CKR_OK);
    CHECK(count >= 1);
    if (count >= 1) {
        slot = slots[0];
        have_slot = 1;
    }
    count = 8;
    EXPECT(f->C_GetSlotList(2 /* any nonzero CK_BBOOL is true */, slots, &count), CKR_OK);

    CK_SLOT_INFO slot_info;
    /* The second slot's name is "x" + 31 x "é" (63 bytes): the 64-byte field is that and one blank. */
    int long_name_seen = 0;
    for (CK_ULONG i = 0; i < count && i < 8; i++) {
        EXPECT(f->C_GetSlotInfo(slots[i], &slot_info), CKR_OK);
        if (slot_info.slotDescription[0] != 'x') continue;
        long_name_seen = 1;
        int ok = slot_info.slotDescription[63] == ' ';
        for (int j = 0; j < 31; j++)
            ok = ok && slot_info.slotDescription[1 + 2 * j] == 0xC3 && slot_info.slotDescription[2 + 2 * j] == 0xA9;
        CHECK(ok);
    }
    CHECK(long_name_seen);
    EXPECT(f->C_GetSlotInfo(slot, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_GetSlotInfo(slot, &slot_info), CKR_OK);
    CHECK(blank_padded(slot_info.slotDescription, sizeof slot_info.slotDescription));
    CHECK(blank_padded(slot_info.manufacturerID, sizeof slot_info.manufacturerID));
    CHECK(slot_info.flags & CKF_TOKEN_PRESENT);
    for (int i = 0; i < BOGUS_COUNT; i++) {
        if (bogus_handles[i] == slot) continue;
        EXPECT(f->C_GetSlotInfo(bogus_handles[i], &slot_info), CKR_SLOT_ID_INVALID);
    }

    CK_TOKEN_INFO token_info;
    EXPECT(f->C_GetTokenInfo(slot, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_GetTokenInfo(slot, &token_info), CKR_OK);
    CHECK(blank_padded(token_info.label, sizeof token_info.label));
    CHECK(blank_padded(token_info.manufacturerID, sizeof token_info.manufacturerID));
    CHECK(blank_padded(token_info.model, sizeof token_info.model));
    CHECK(blank_padded(token_info.serialNumber, sizeof token_info.serialNumber));
    CHECK(blank_padded(token_info.utcTime, sizeof token_info.utcTime));
    CHECK(token_info.ulMinPinLen <= token_info.ulMaxPinLen);
    for (int i = 0; i < BOGUS_COUNT; i++) {
        if (bogus_handles[i] == slot) continue;
        EXPECT(f->C_GetTokenInfo(bogus_handles[i], &token_info), CKR_SLOT_ID_INVALID);
    }

    section = "mechanisms";
    count = 0;
    EXPECT(f->C_GetMechanismList(slot, NULL, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_GetMechanismList(slot, NULL, &count), CKR_OK);
    CHECK(count >= 4);
    CK_MECHANISM_TYPE mechs[256];
    small = 1;
    EXPECT(f->C_GetMechanismList(slot, mechs, &small), CKR_BUFFER_TOO_SMALL);
    CHECK(small == count);
    count = 256;
    EXPECT(f->C_GetMechanismList(slot, mechs, &count), CKR_OK);
    int has_n2he = 0, has_gcm = 0;
    for (CK_ULONG i = 0; i < count && i < 256; i++) {
        if (mechs[i] == CKM_TG_N2HE_LWE1) has_n2he = 1;
        if (mechs[i] == CKM_AES_GCM) has_gcm = 1;
    }
    CHECK(has_n2he);
    CHECK(has_gcm);
    for (int i = 0; i < BOGUS_COUNT; i++) {
        if (bogus_handles[i] == slot) continue;
        count = 256;
        EXPECT(f->C_GetMechanismList(bogus_handles[i], mechs, &count), CKR_SLOT_ID_INVALID);
    }
    CK_MECHANISM_INFO mech_info;
    EXPECT(f->C_GetMechanismInfo(slot, CKM_AES_GCM, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_GetMechanismInfo(slot, CKM_AES_GCM, &mech_info), CKR_OK);
    CHECK(mech_info.flags & CKF_ENCRYPT);
    EXPECT(f->C_GetMechanismInfo(slot, CKM_TG_N2HE_LWE2, &mech_info), CKR_OK);
    EXPECT(f->C_GetMechanismInfo(slot, 0x7FFFFFF0UL, &mech_info), CKR_MECHANISM_INVALID);
    EXPECT(f->C_GetMechanismInfo(slot, ULONG_MAX, &mech_info), CKR_MECHANISM_INVALID);
    EXPECT(f->C_GetMechanismInfo((CK_ULONG)1 << 40, CKM_AES_GCM, &mech_info), CKR_SLOT_ID_INVALID);
}

/* ------------------------------------------------------------------------------------------------ */
/* Token initialisation, sessions, login                                                            */

static void test_token_and_login(CK_SESSION_HANDLE *rw_out) {
    section = "C_InitToken";
    CK_UTF8CHAR label[32];
    memset(label, ' ', sizeof label);
    memcpy(label, "abi-test", 8);
    EXPECT(f->C_InitToken(slot, NULL, 4, label), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_InitToken(slot, PIN(so_pin), NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_InitToken(slot, (CK_UTF8CHAR_PTR)so_pin, ULONG_MAX, label), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_InitToken((CK_ULONG)1 << 40, PIN(so_pin), label), CKR_SLOT_ID_INVALID);
    CK_SESSION_HANDLE s;
    /* A fresh token may refuse sessions (SoftHSM: CKR_TOKEN_NOT_RECOGNIZED); if it opens one, the
     * token cannot be initialised under it. */
    CK_RV open_rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s);
    const CK_RV open_ok[] = { CKR_OK, CKR_TOKEN_NOT_RECOGNIZED };
    expect_rv("C_OpenSession(uninitialised token)", __LINE__, open_rv, open_ok, 2);
    if (open_rv == CKR_OK) EXPECT(f->C_InitToken(slot, PIN(so_pin), label), CKR_SESSION_EXISTS);
    EXPECT(f->C_CloseAllSessions(slot), CKR_OK);
    EXPECT(f->C_InitToken(slot, PIN(so_pin), label), CKR_OK);
    CK_TOKEN_INFO token_info;
    EXPECT(f->C_GetTokenInfo(slot, &token_info), CKR_OK);
    CHECK(token_info.flags & CKF_TOKEN_INITIALIZED);
    CHECK(memcmp(token_info.label, label, sizeof label) == 0);
    CHECK(!(token_info.flags & CKF_USER_PIN_INITIALIZED));

    section = "sessions";
    CK_SESSION_HANDLE ro = 0, rw = 0;
    EXPECT(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_OpenSession(slot, 0, NULL, NULL, &ro), CKR_SESSION_PARALLEL_NOT_SUPPORTED);
    EXPECT(f->C_OpenSession(slot, CKF_RW_SESSION, NULL, NULL, &ro), CKR_SESSION_PARALLEL_NOT_SUPPORTED);
    for (int i = 0; i < BOGUS_COUNT; i++) {
        if (bogus_handles[i] == slot) continue;
        EXPECT(f->C_OpenSession(bogus_handles[i], CKF_SERIAL_SESSION, NULL, NULL, &ro), CKR_SLOT_ID_INVALID);
        EXPECT(f->C_CloseAllSessions(bogus_handles[i]), CKR_SLOT_ID_INVALID);
    }
    EXPECT(f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &rw), CKR_OK);
    EXPECT(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &ro), CKR_OK);
    CHECK(ro != 0 && rw != 0 && ro != rw);
    CK_SESSION_INFO si;
    EXPECT(f->C_GetSessionInfo(rw, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_GetSessionInfo(rw, &si), CKR_OK);
    CHECK(si.slotID == slot && si.state == CKS_RW_PUBLIC_SESSION && (si.flags & CKF_RW_SESSION));
    EXPECT(f->C_GetSessionInfo(ro, &si), CKR_OK);
    CHECK(si.state == CKS_RO_PUBLIC_SESSION && !(si.flags & CKF_RW_SESSION));

    section = "login";
    /* SO with a read-only session open. */
    EXPECT(f->C_Login(rw, CKU_SO, PIN(so_pin)), CKR_SESSION_READ_ONLY_EXISTS);
    EXPECT(f->C_CloseSession(ro), CKR_OK);
    EXPECT(f->C_CloseSession(ro), CKR_SESSION_HANDLE_INVALID);
    EXPECT(f->C_Login(rw, CKU_USER, PIN(user_pin)), CKR_USER_PIN_NOT_INITIALIZED);
    EXPECT(f->C_Login(rw, CKU_SO, NULL, 4), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_Login(rw, CKU_SO, (CK_UTF8CHAR_PTR)so_pin, ULONG_MAX), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_Login(rw, CKU_SO, (CK_UTF8CHAR_PTR)so_pin, (CK_ULONG)1 << 40), CKR_PIN_LEN_RANGE);
    EXPECT(f->C_Login(rw, 7 /* no such user type */, PIN(so_pin)), CKR_USER_TYPE_INVALID);
    EXPECT(f->C_Login(rw, CKU_CONTEXT_SPECIFIC, PIN(so_pin)), CKR_OPERATION_NOT_INITIALIZED, CKR_USER_TYPE_INVALID);
    EXPECT(f->C_Login(rw, CKU_SO, PIN("wrong-so-pin")), CKR_PIN_INCORRECT);
    EXPECT(f->C_InitPIN(rw, PIN(user_pin)), CKR_USER_NOT_LOGGED_IN);
    EXPECT(f->C_Login(rw, CKU_SO, PIN(so_pin)), CKR_OK);
    EXPECT(f->C_GetSessionInfo(rw, &si), CKR_OK);
    CHECK(si.state == CKS_RW_SO_FUNCTIONS);
    EXPECT(f->C_Login(rw, CKU_SO, PIN(so_pin)), CKR_USER_ALREADY_LOGGED_IN);
    EXPECT(f->C_Login(rw, CKU_USER, PIN(user_pin)), CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
    EXPECT(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &ro), CKR_SESSION_READ_WRITE_SO_EXISTS);
    EXPECT(f->C_InitPIN(rw, NULL, 4), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_InitPIN(rw, (CK_UTF8CHAR_PTR)user_pin, ULONG_MAX), CKR_ARGUMENTS_BAD);
    for (int i = 0; i < BOGUS_COUNT; i++) EXPECT(f->C_InitPIN(bogus_handles[i], PIN(user_pin)), CKR_SESSION_HANDLE_INVALID);
    EXPECT(f->C_InitPIN(rw, PIN(user_pin)), CKR_OK);
    EXPECT(f->C_Logout(rw), CKR_OK);
    EXPECT(f->C_Logout(rw), CKR_USER_NOT_LOGGED_IN);
    for (int i = 0; i < BOGUS_COUNT; i++) {
        EXPECT(f->C_Login(bogus_handles[i], CKU_USER, PIN(user_pin)), CKR_SESSION_HANDLE_INVALID);
        EXPECT(f->C_Logout(bogus_handles[i]), CKR_SESSION_HANDLE_INVALID);
        EXPECT(f->C_GetSessionInfo(bogus_handles[i], &si), CKR_SESSION_HANDLE_INVALID);
        EXPECT(f->C_CloseSession(bogus_handles[i]), CKR_SESSION_HANDLE_INVALID);
    }
    EXPECT(f->C_Login(rw, CKU_USER, PIN("wrong-user-pin")), CKR_PIN_INCORRECT);
    EXPECT(f->C_Login(rw, CKU_USER, PIN(user_pin)), CKR_OK);
    EXPECT(f->C_Login(rw, CKU_USER, PIN(user_pin)), CKR_USER_ALREADY_LOGGED_IN);
    EXPECT(f->C_Login(rw, CKU_SO, PIN(so_pin)), CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
    EXPECT(f->C_GetSessionInfo(rw, &si), CKR_OK);
    CHECK(si.state == CKS_RW_USER_FUNCTIONS);

    section = "C_SetPIN";
    EXPECT(f->C_SetPIN(rw, NULL, 4, PIN(user_pin)), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_SetPIN(rw, PIN(user_pin), NULL, 4), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_SetPIN(rw, (CK_UTF8CHAR_PTR)user_pin, ULONG_MAX, PIN(user_pin)), CKR_ARGUMENTS_BAD);
    for (int i = 0; i < BOGUS_COUNT; i++)
        EXPECT(f->C_SetPIN(bogus_handles[i], PIN(user_pin), PIN(user_pin)), CKR_SESSION_HANDLE_INVALID);
    EXPECT(f->C_SetPIN(rw, PIN("wrong-user-pin"), PIN(user_pin)), CKR_PIN_INCORRECT);
    EXPECT(f->C_SetPIN(rw, PIN(user_pin), PIN(user_pin)), CKR_OK);
    *rw_out = rw;
}

/* ------------------------------------------------------------------------------------------------ */
/* Objects and templates                                                                            */

static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
static CK_OBJECT_CLASS data_class = CKO_DATA, secret_class = CKO_SECRET_KEY;
static CK_KEY_TYPE aes_type = CKK_AES;

static CK_OBJECT_HANDLE data_object, aes_key, aes_wrapping_key, n2he_key;

static void test_objects(CK_SESSION_HANDLE s) {
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

static void test_attributes(CK_SESSION_HANDLE s) {
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
}

static void test_find(CK_SESSION_HANDLE s) {
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
/* Cryptographic operations                                                                         */

static void test_no_operation(CK_SESSION_HANDLE s) {
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

static void test_encrypt(CK_SESSION_HANDLE s) {
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

static void test_digest_sign(CK_SESSION_HANDLE s) {
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

static void test_wrap(CK_SESSION_HANDLE s) {
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

static void test_random_and_unsupported(CK_SESSION_HANDLE s) {
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

/* ------------------------------------------------------------------------------------------------ */
/* Every standard attribute of a secret key answers (DESIGN §2: N2HE keys too)                      */

static void test_standard_attributes(CK_SESSION_HANDLE s) {
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

static void test_fuzz(CK_SESSION_HANDLE s) {
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

/* ------------------------------------------------------------------------------------------------ */
/* Threads, fork, unload                                                                            */

struct thread_result { int failures; };

static void *thread_body(void *arg) {
    struct thread_result *r = arg;
    for (int i = 0; i < 20; i++) {
        CK_SESSION_HANDLE s;
        CK_BYTE buf[32];
        CK_SESSION_INFO si;
        if (f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK) { r->failures++; continue; }
        if (f->C_GenerateRandom(s, buf, sizeof buf) != CKR_OK) r->failures++;
        if (f->C_GetSessionInfo(s, &si) != CKR_OK) r->failures++;
        if (f->C_CloseSession(s) != CKR_OK) r->failures++;
    }
    return NULL;
}

static void test_threads(void) {
    section = "threads";
    pthread_t threads[4];
    struct thread_result results[4];
    memset(results, 0, sizeof results);
    for (int i = 0; i < 4; i++) pthread_create(&threads[i], NULL, thread_body, &results[i]);
    int failures = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        failures += results[i].failures;
    }
    CHECK(failures == 0);
}

static void test_fork(CK_SESSION_HANDLE parent_session) {
    section = "fork";
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(30); /* a hung child is a failed case, not a hung sweep */
        /* Child: inherited module is not initialised here; C_Initialize gives a clean one. */
        int bad = 0;
        CK_INFO info;
        CK_SESSION_INFO si;
        CK_ULONG count = 0;
        if (f->C_GetInfo(&info) != CKR_CRYPTOKI_NOT_INITIALIZED) bad |= 1;
        if (f->C_GetSessionInfo(parent_session, &si) != CKR_CRYPTOKI_NOT_INITIALIZED) bad |= 2;
        if (f->C_Finalize(NULL) != CKR_CRYPTOKI_NOT_INITIALIZED) bad |= 4;
        if (f->C_Initialize(NULL) != CKR_OK) bad |= 8;
        if (f->C_GetSlotList(CK_TRUE, NULL, &count) != CKR_OK || count < 1) bad |= 16;
        if (f->C_GetSessionInfo(parent_session, &si) != CKR_SESSION_HANDLE_INVALID) bad |= 32;
        CK_SESSION_HANDLE s;
        if (f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK) bad |= 64;
        if (f->C_Finalize(NULL) != CKR_OK) bad |= 128;
        _exit(bad);
    }
    CHECK(pid > 0);
    if (pid <= 0) return;
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        printf("      fork child status: exited=%d code=0x%x signal=%d\n", WIFEXITED(status), WEXITSTATUS(status),
               WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* The parent still has its module and session. */
    CK_SESSION_INFO si;
    EXPECT(f->C_GetSessionInfo(parent_session, &si), CKR_OK);
}

/* Racing C_Initialize calls: exactly one wins. */
static CK_RV race_rvs[4];
static void *race_init(void *arg) {
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof args);
    args.flags = CKF_OS_LOCKING_OK;
    race_rvs[(intptr_t)arg] = f->C_Initialize(&args);
    return NULL;
}

static void test_initialize_race(void) {
    section = "concurrent C_Initialize";
    pthread_t threads[4];
    for (intptr_t i = 0; i < 4; i++) pthread_create(&threads[i], NULL, race_init, (void *)i);
    int ok = 0, already = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        if (race_rvs[i] == CKR_OK) ok++;
        if (race_rvs[i] == CKR_CRYPTOKI_ALREADY_INITIALIZED) already++;
    }
    CHECK(ok == 1 && already == 3);
    EXPECT(f->C_Finalize(NULL), CKR_OK);
}

/* C_Finalize while other threads are mid-call: the standard leaves this undefined, but a host that
 * does it must not crash. Run in a child so a crash is a failed case, not a dead sweep. */
static volatile int hammer_stop;
static void *hammer(void *arg) {
    (void)arg;
    while (!hammer_stop) {
        CK_SESSION_HANDLE s;
        CK_BYTE buf[16];
        CK_INFO info;
        CK_RV rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s);
        if (rv == CKR_OK) {
            f->C_GenerateRandom(s, buf, sizeof buf);
            f->C_CloseSession(s);
        }
        f->C_GetInfo(&info);
    }
    return NULL;
}

/* A child of a process that used the module, with several threads — the forking thread among them —
 * using one session at once (a forking server whose workers are threaded). Swift's locks cache thread
 * ids per thread; without the module's fork handling the forking thread carries its parent's id into the
 * child and contended locks trap (SIGILL) — see docs/abi.md "Fork". */
static CK_SESSION_HANDLE child_shared;
static void child_work(void) {
    CK_BYTE buf[16];
    CK_SESSION_INFO si;
    CK_SESSION_HANDLE s;
    f->C_GenerateRandom(child_shared, buf, sizeof buf);
    f->C_GetSessionInfo(child_shared, &si);
    if (f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s) == CKR_OK) f->C_CloseSession(s);
}
static void *child_hammer(void *arg) {
    (void)arg;
    while (!hammer_stop) child_work();
    return NULL;
}

static void test_threaded_child(void) {
    section = "threaded child after fork";
    int crashed = 0, failed_children = 0;
    for (int round = 0; round < 8; round++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(30); /* a hung child is a failed case, not a hung sweep */
            if (f->C_Initialize(NULL) != CKR_OK) _exit(1);
            if (f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &child_shared) != CKR_OK) _exit(2);
            hammer_stop = 0;
            pthread_t threads[3];
            for (int i = 0; i < 3; i++) pthread_create(&threads[i], NULL, child_hammer, NULL);
            for (int i = 0; i < 1000; i++) child_work(); /* the forking thread contends too */
            hammer_stop = 1;
            for (int i = 0; i < 3; i++) pthread_join(threads[i], NULL);
            _exit(f->C_Finalize(NULL) == CKR_OK ? 0 : 3);
        }
        if (pid < 0) {
            failed_children++;
            continue;
        }
        int status = 0;
        waitpid(pid, &status, 0);
        if (WIFSIGNALED(status)) crashed++;
        else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed_children++;
    }
    if (crashed || failed_children) printf("      8 children: %d crashed, %d failed\n", crashed, failed_children);
    CHECK(crashed == 0 && failed_children == 0);
}

static void test_finalize_under_load(void) {
    section = "C_Finalize under load";
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(30); /* a hung child is a failed case, not a hung sweep */
        int bad = 0;
        if (f->C_Initialize(NULL) != CKR_OK) _exit(1);
        pthread_t threads[3];
        for (int i = 0; i < 3; i++) pthread_create(&threads[i], NULL, hammer, NULL);
        usleep(50000);
        if (f->C_Finalize(NULL) != CKR_OK) bad |= 2;
        usleep(20000);
        if (f->C_Initialize(NULL) != CKR_OK) bad |= 4; /* again, while the threads keep calling */
        usleep(20000);
        hammer_stop = 1;
        for (int i = 0; i < 3; i++) pthread_join(threads[i], NULL);
        if (f->C_Finalize(NULL) != CKR_OK) bad |= 8;
        _exit(bad);
    }
    CHECK(pid > 0);
    if (pid <= 0) return;
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        printf("      child status: exited=%d code=0x%x signal=%d\n", WIFEXITED(status), WEXITSTATUS(status),
               WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* fork() while other parent threads are inside the module: the module makes fork() wait for them, so no
 * internal lock is inherited held; each child then re-initialises and runs threads of its own. */
static volatile int parent_stop;
static void *parent_hammer(void *arg) {
    (void)arg;
    while (!parent_stop) {
        CK_SESSION_HANDLE s;
        CK_BYTE buf[32];
        if (f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s) == CKR_OK) {
            f->C_GenerateRandom(s, buf, sizeof buf);
            f->C_CloseSession(s);
        }
    }
    return NULL;
}

static void test_fork_while_busy(void) {
    section = "fork while parent threads are busy";
    parent_stop = 0;
    pthread_t threads[3];
    for (int i = 0; i < 3; i++) pthread_create(&threads[i], NULL, parent_hammer, NULL);
    int crashed = 0, failed_children = 0;
    for (int round = 0; round < 10; round++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(30); /* a hung child is a failed case, not a hung sweep */
            if (f->C_Initialize(NULL) != CKR_OK) _exit(1);
            if (f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &child_shared) != CKR_OK) _exit(2);
            hammer_stop = 0;
            pthread_t inner[2];
            for (int i = 0; i < 2; i++) pthread_create(&inner[i], NULL, child_hammer, NULL);
            for (int i = 0; i < 300; i++) child_work();
            hammer_stop = 1;
            for (int i = 0; i < 2; i++) pthread_join(inner[i], NULL);
            _exit(f->C_Finalize(NULL) == CKR_OK ? 0 : 3);
        }
        if (pid < 0) {
            failed_children++;
            continue;
        }
        int status = 0;
        waitpid(pid, &status, 0);
        if (WIFSIGNALED(status)) crashed++;
        else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed_children++;
    }
    parent_stop = 1;
    for (int i = 0; i < 3; i++) pthread_join(threads[i], NULL);
    if (crashed || failed_children) printf("      10 children: %d crashed, %d failed\n", crashed, failed_children);
    CHECK(crashed == 0 && failed_children == 0);
    CK_INFO info;
    EXPECT(f->C_GetInfo(&info), CKR_OK); /* the parent is fine too */
}

static void test_unload(const char *path) {
    section = "dlclose/dlopen (NODELETE)";
    void *old_list = f2;
    EXPECT(f->C_Initialize(NULL), CKR_OK);
    /* Hosts unload without finalising: the module must stay mapped and consistent. */
    CHECK(dlclose(handle) == 0);
    CHECK(load(path));
    CK_FUNCTION_LIST_PTR again = NULL;
    EXPECT(get_function_list(&again), CKR_OK);
    CHECK((void *)again == old_list); /* same mapping: NODELETE kept it */
    if (again == NULL) return;
    EXPECT(again->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
    EXPECT(again->C_Finalize(NULL), CKR_OK);
    CHECK(dlclose(handle) == 0);
    CHECK(load(path));
    EXPECT(get_function_list(&again), CKR_OK);
    EXPECT(again->C_Initialize(NULL), CKR_OK);
    EXPECT(again->C_Finalize(NULL), CKR_OK);
}

/* ------------------------------------------------------------------------------------------------ */

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : ".build/release/libtensorguard-pkcs11.so";
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!load(path)) {
        printf("cannot load %s\n0 passed, 1 failed\n", path);
        return 1;
    }
    test_function_lists();
    if (f == NULL || f2 == NULL) {
        printf("%d passed, %d failed\n", passed, failed + 1);
        return 1;
    }
    test_interfaces();
    sweep_uninitialised("before C_Initialize");
    test_initialize_forms();
    test_initialize_reserved();

    section = "C_Initialize";
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof args);
    args.flags = CKF_OS_LOCKING_OK;
    CK_RV rv = f->C_Initialize(&args);
    EXPECT(rv, CKR_OK);
    if (rv == CKR_OK) {
        test_general();
        if (have_slot) {
            CK_SESSION_HANDLE s = 0;
            test_token_and_login(&s);
            test_objects(s);
            test_attributes(s);
            test_find(s);
            test_no_operation(s);
            test_encrypt(s);
            test_digest_sign(s);
            test_wrap(s);
            test_random_and_unsupported(s);
            test_standard_attributes(s);
            test_fuzz(s);
            test_threads();
            test_fork(s);
            test_fork_while_busy();
            section = "close";
            EXPECT(f->C_CloseAllSessions(slot), CKR_OK);
            CK_SESSION_INFO si;
            EXPECT(f->C_GetSessionInfo(s, &si), CKR_SESSION_HANDLE_INVALID);
        }
        section = "C_Finalize";
        EXPECT(f->C_Finalize(NULL), CKR_OK);
    } else {
        printf("      C_Initialize failed: the sweeps that need a module are skipped (counted as 1 failure)\n");
    }
    sweep_uninitialised("after C_Finalize");
    test_initialize_race();
    if (have_slot) {
        test_finalize_under_load();
        test_threaded_child();
    }
    test_unload(path);

    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
