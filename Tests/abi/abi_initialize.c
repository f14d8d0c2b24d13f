/*
 * abi_initialize.c — C_Initialize with every argument form (NULL, zeroed, OS locking, mutex callbacks,
 * inconsistent callbacks, pReserved as a configuration path), twice, and C_Finalize's own checks.
 * Hostile pReserved pointers are in abi_initialize_reserved.c.
 */
#include "abi_sweep.h"

#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------------ */
/* C_Initialize argument forms                                                                      */

static int mutex_calls;
static CK_RV cb_create(void **mutex) { mutex_calls++; *mutex = malloc(1); return CKR_OK; }
static CK_RV cb_destroy(void *mutex) { mutex_calls++; free(mutex); return CKR_OK; }
static CK_RV cb_lock(void *mutex) { (void)mutex; mutex_calls++; return CKR_OK; }
static CK_RV cb_unlock(void *mutex) { (void)mutex; mutex_calls++; return CKR_OK; }

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

void test_initialize_forms(void) {
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
