/*
 * abi_sweep — drives libtensorguard-pkcs11.so through its C ABI the way a careless or hostile host
 * would, and checks that every answer is the CK_RV the PKCS#11 standard names (2.40 / 3.0).
 *
 *   abi_sweep /path/to/libtensorguard-pkcs11.so
 *
 * The module is dlopen'ed by path; TENSORGUARD_PKCS11_CONF must name a config whose tokens are fresh
 * (Tests/abi/run.sh writes one with two). Prints one line per failed case and, at the end,
 * "N passed, M failed"; exits non-zero on any failure.
 *
 * This file is the order the sweeps run in; the sweeps themselves are in the other abi_*.c files, one
 * file per topic (abi_sweep.h lists them and what they share). Tests/abi/run.sh compiles them all.
 */
#include "abi_sweep.h"

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
