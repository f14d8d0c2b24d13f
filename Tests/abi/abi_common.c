/*
 * abi_common.c — the ABI sweep's shared parts (declared in abi_sweep.h): the pass/fail bookkeeping,
 * loading the module and its function lists, and the state the sweeps pass on to each other.
 */
#include "abi_sweep.h"

#include <dlfcn.h>

/* ------------------------------------------------------------------------------------------------ */
/* Handles no module hands out, and the token's PINs                                                */

const CK_ULONG bogus_handles[BOGUS_COUNT] = { 0, (CK_ULONG)1 << 40, ULONG_MAX };

const char *so_pin = "abi-so-pin-1";
const char *user_pin = "abi-user-pin-1";

/* ------------------------------------------------------------------------------------------------ */
/* Bookkeeping                                                                                      */

int passed, failed;
const char *section = "";

const char *rv_name(CK_RV rv) {
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

void expect_rv(const char *what, int line, CK_RV got, const CK_RV *expected, size_t n) {
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

void check(const char *what, int line, int ok) {
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL [%s] line %d: %s\n", section, line, what);
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* Loading                                                                                          */

void *handle;
CK_FUNCTION_LIST_PTR f2;
CK_FUNCTION_LIST_3_0_PTR f;
CK_C_GetFunctionList get_function_list;
CK_RV (*get_interface_list)(CK_INTERFACE_PTR, CK_ULONG_PTR);
CK_RV (*get_interface)(CK_UTF8CHAR_PTR, CK_VERSION_PTR, CK_INTERFACE_PTR_PTR, CK_FLAGS);

int load(const char *path) {
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

/* One cheap call that needs an initialised module. */
CK_RV probe(void) {
    CK_INFO info;
    return f->C_GetInfo(&info);
}

/* ------------------------------------------------------------------------------------------------ */
/* State the sweeps pass on to each other (abi_sweep.h says who sets what)                           */

CK_SLOT_ID slot;
int have_slot;

CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
CK_OBJECT_CLASS data_class = CKO_DATA, secret_class = CKO_SECRET_KEY;
CK_KEY_TYPE aes_type = CKK_AES;

CK_OBJECT_HANDLE data_object, aes_key, aes_wrapping_key, n2he_key;
