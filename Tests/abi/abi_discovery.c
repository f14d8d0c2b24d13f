/*
 * abi_discovery.c — the sweeps that need no C_Initialize: both function lists are complete and are the
 * exported symbols, C_GetInterfaceList / C_GetInterface answer as the standard says, and every other entry
 * point answers CKR_CRYPTOKI_NOT_INITIALIZED (before C_Initialize and again after C_Finalize).
 */
#include "abi_sweep.h"

#include <dlfcn.h>

/* ------------------------------------------------------------------------------------------------ */
/* Every entry point, in the 3.0 function list's order (the 2.40 list: the first 68)                */

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

/* ------------------------------------------------------------------------------------------------ */
/* Function lists and interfaces (no C_Initialize needed)                                           */

void test_function_lists(void) {
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

void test_interfaces(void) {
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

void sweep_uninitialised(const char *name) {
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
