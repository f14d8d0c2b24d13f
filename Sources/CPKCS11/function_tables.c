/* The module's function tables and interface discovery (PKCS#11 2.40 §5.2, 3.0 §5.2–5.4).
 *
 * Both tables point at the same entry points; every C_* except the three defined here is a Swift
 * @_cdecl shim in Sources/TensorGuardPKCS11. Designated initialisers keep each pointer in its slot
 * whatever the member order of the header in use; the static asserts pin the standard layout. */
#include "CPKCS11.h"

#include <stddef.h>
#include <string.h>

#define TG_EXPORT __attribute__((visibility("default")))

#define TG_LIST_2_40(X) \
    X(C_Initialize) X(C_Finalize) X(C_GetInfo) X(C_GetFunctionList) X(C_GetSlotList) X(C_GetSlotInfo) \
    X(C_GetTokenInfo) X(C_GetMechanismList) X(C_GetMechanismInfo) X(C_InitToken) X(C_InitPIN) X(C_SetPIN) \
    X(C_OpenSession) X(C_CloseSession) X(C_CloseAllSessions) X(C_GetSessionInfo) X(C_GetOperationState) \
    X(C_SetOperationState) X(C_Login) X(C_Logout) X(C_CreateObject) X(C_CopyObject) X(C_DestroyObject) \
    X(C_GetObjectSize) X(C_GetAttributeValue) X(C_SetAttributeValue) X(C_FindObjectsInit) X(C_FindObjects) \
    X(C_FindObjectsFinal) X(C_EncryptInit) X(C_Encrypt) X(C_EncryptUpdate) X(C_EncryptFinal) X(C_DecryptInit) \
    X(C_Decrypt) X(C_DecryptUpdate) X(C_DecryptFinal) X(C_DigestInit) X(C_Digest) X(C_DigestUpdate) \
    X(C_DigestKey) X(C_DigestFinal) X(C_SignInit) X(C_Sign) X(C_SignUpdate) X(C_SignFinal) X(C_SignRecoverInit) \
    X(C_SignRecover) X(C_VerifyInit) X(C_Verify) X(C_VerifyUpdate) X(C_VerifyFinal) X(C_VerifyRecoverInit) \
    X(C_VerifyRecover) X(C_DigestEncryptUpdate) X(C_DecryptDigestUpdate) X(C_SignEncryptUpdate) \
    X(C_DecryptVerifyUpdate) X(C_GenerateKey) X(C_GenerateKeyPair) X(C_WrapKey) X(C_UnwrapKey) X(C_DeriveKey) \
    X(C_SeedRandom) X(C_GenerateRandom) X(C_GetFunctionStatus) X(C_CancelFunction) X(C_WaitForSlotEvent)

#define TG_LIST_3_0_ONLY(X) \
    X(C_GetInterfaceList) X(C_GetInterface) X(C_LoginUser) X(C_SessionCancel) X(C_MessageEncryptInit) \
    X(C_EncryptMessage) X(C_EncryptMessageBegin) X(C_EncryptMessageNext) X(C_MessageEncryptFinal) \
    X(C_MessageDecryptInit) X(C_DecryptMessage) X(C_DecryptMessageBegin) X(C_DecryptMessageNext) \
    X(C_MessageDecryptFinal) X(C_MessageSignInit) X(C_SignMessage) X(C_SignMessageBegin) X(C_SignMessageNext) \
    X(C_MessageSignFinal) X(C_MessageVerifyInit) X(C_VerifyMessage) X(C_VerifyMessageBegin) \
    X(C_VerifyMessageNext) X(C_MessageVerifyFinal)

#define TG_SLOT(name) .name = name,

static CK_FUNCTION_LIST tg_function_list_2_40 = {
    .version = { 2, 40 },
    TG_LIST_2_40(TG_SLOT)
};

static CK_FUNCTION_LIST_3_0 tg_function_list_3_0 = {
    .version = { 3, 0 },
    TG_LIST_2_40(TG_SLOT)
    TG_LIST_3_0_ONLY(TG_SLOT)
};

/* Layout: the version, then 68 (2.40) or 92 (3.0) function pointers in the standard order. */
#define TG_COUNT(name) +1
_Static_assert(0 TG_LIST_2_40(TG_COUNT) == 68, "2.40 has 68 entry points");
_Static_assert(0 TG_LIST_3_0_ONLY(TG_COUNT) == 24, "3.0 adds 24 entry points");
_Static_assert(offsetof(CK_FUNCTION_LIST, C_Initialize) == sizeof(void *), "version, then pointers");
_Static_assert(sizeof(CK_FUNCTION_LIST) == sizeof(void *) * 69, "2.40 list size");
_Static_assert(sizeof(CK_FUNCTION_LIST_3_0) == sizeof(void *) * 93, "3.0 list size");
_Static_assert(offsetof(CK_FUNCTION_LIST, C_WaitForSlotEvent) == sizeof(void *) * 68, "2.40 order");
_Static_assert(offsetof(CK_FUNCTION_LIST_3_0, C_WaitForSlotEvent) == sizeof(void *) * 68, "3.0 order");
_Static_assert(offsetof(CK_FUNCTION_LIST_3_0, C_GetInterfaceList) == sizeof(void *) * 69, "3.0 order");
_Static_assert(offsetof(CK_FUNCTION_LIST_3_0, C_MessageVerifyFinal) == sizeof(void *) * 92, "3.0 order");

/* Interfaces, the default (3.0) first. Flags 0: a child after fork() must call C_Initialize again and
 * gets a clean module — that is not the fork-tolerant semantics CKF_INTERFACE_FORK_SAFE promises. */
static CK_UTF8CHAR tg_interface_name[] = "PKCS 11";
#define TG_INTERFACE_COUNT 2
static CK_INTERFACE tg_interfaces[TG_INTERFACE_COUNT] = {
    { tg_interface_name, &tg_function_list_3_0, 0 },
    { tg_interface_name, &tg_function_list_2_40, 0 },
};

TG_EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList) {
    if (ppFunctionList == NULL) return CKR_ARGUMENTS_BAD;
    *ppFunctionList = &tg_function_list_2_40;
    return CKR_OK;
}

TG_EXPORT CK_RV C_GetInterfaceList(CK_INTERFACE_PTR pInterfacesList, CK_ULONG_PTR pulCount) {
    if (pulCount == NULL) return CKR_ARGUMENTS_BAD;
    if (pInterfacesList == NULL) {
        *pulCount = TG_INTERFACE_COUNT;
        return CKR_OK;
    }
    if (*pulCount < TG_INTERFACE_COUNT) {
        *pulCount = TG_INTERFACE_COUNT;
        return CKR_BUFFER_TOO_SMALL;
    }
    for (size_t i = 0; i < TG_INTERFACE_COUNT; i++) pInterfacesList[i] = tg_interfaces[i];
    *pulCount = TG_INTERFACE_COUNT;
    return CKR_OK;
}

static CK_VERSION tg_interface_version(const CK_INTERFACE *interface) {
    /* Both lists start with their CK_VERSION. */
    return *(const CK_VERSION *)interface->pFunctionList;
}

TG_EXPORT CK_RV C_GetInterface(CK_UTF8CHAR_PTR pInterfaceName, CK_VERSION_PTR pVersion,
                               CK_INTERFACE_PTR_PTR ppInterface, CK_FLAGS flags) {
    if (ppInterface == NULL) return CKR_ARGUMENTS_BAD;
    for (size_t i = 0; i < TG_INTERFACE_COUNT; i++) {
        CK_INTERFACE *candidate = &tg_interfaces[i];
        /* The name is NUL terminated; strcmp reads at most strlen("PKCS 11") + 1 bytes of it. */
        if (pInterfaceName != NULL &&
            strcmp((const char *)pInterfaceName, (const char *)candidate->pInterfaceName) != 0) continue;
        if (pVersion != NULL) {
            CK_VERSION version = tg_interface_version(candidate);
            if (version.major != pVersion->major || version.minor != pVersion->minor) continue;
        }
        if ((candidate->flags & flags) != flags) continue;
        *ppInterface = candidate;
        return CKR_OK;
    }
    return CKR_FUNCTION_FAILED;
}
