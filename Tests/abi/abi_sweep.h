/*
 * abi_sweep.h — what the files of the ABI sweep share: the module's function lists, the pass/fail
 * bookkeeping and its EXPECT / CHECK macros, the handles and PINs every sweep uses, the session state the
 * later sweeps inherit from the earlier ones, and the list of sweeps main() runs.
 *
 * Where things are (all in Tests/abi/; run.sh compiles every abi_*.c into one program):
 *   abi_sweep.c                  main(): the order the sweeps run in
 *   abi_common.c                 bookkeeping, loading the module, the shared state declared below
 *   abi_discovery.c              function lists, interfaces, every entry point before C_Initialize
 *   abi_initialize.c             C_Initialize argument forms, C_Finalize's own checks
 *   abi_initialize_reserved.c    C_Initialize's pReserved: hostile pointers, page edges, seccomp
 *   abi_slots_sessions.c         C_GetInfo, slots, tokens, mechanisms; C_InitToken, sessions, login, PINs
 *   abi_objects.c                object creation, templates, attributes, find, standard key attributes
 *   abi_crypto.c                 operations: encrypt / decrypt, digest, sign / verify, wrap, random,
 *                                the unsupported set
 *   abi_fuzz.c                   seeded random inputs
 *   abi_threads_fork.c           threads, fork, concurrent C_Initialize / C_Finalize, dlclose / dlopen
 */
#ifndef TG_ABI_SWEEP_H
#define TG_ABI_SWEEP_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <p11-kit-1/p11-kit/pkcs11.h>
#include "Sources/CP11Kit/pkcs11-v3.h"
#include "Include/tensorguard-pkcs11.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------ */
/* Handles no module hands out, and the token's PINs                                                */

#define BOGUS_COUNT 3
extern const CK_ULONG bogus_handles[BOGUS_COUNT];

extern const char *so_pin;
extern const char *user_pin;
#define PIN(p) (CK_UTF8CHAR_PTR)(p), (CK_ULONG)strlen(p)

/* ------------------------------------------------------------------------------------------------ */
/* Bookkeeping (abi_common.c)                                                                       */

extern int passed, failed;
extern const char *section; /* printed in every FAIL line: each sweep sets it */

const char *rv_name(CK_RV rv);
void expect_rv(const char *what, int line, CK_RV got, const CK_RV *expected, size_t n);
void check(const char *what, int line, int ok);

/* EXPECT(call, rv...) — the call must answer one of the listed CK_RVs. */
#define EXPECT(call, ...) do { \
        const CK_RV expected_[] = { __VA_ARGS__ }; \
        expect_rv(#call, __LINE__, (call), expected_, sizeof expected_ / sizeof expected_[0]); \
    } while (0)
#define CHECK(cond) check(#cond, __LINE__, (cond))

/* ------------------------------------------------------------------------------------------------ */
/* The module (abi_common.c)                                                                        */

extern void *handle;
extern CK_FUNCTION_LIST_PTR f2;    /* C_GetFunctionList's 2.40 list */
extern CK_FUNCTION_LIST_3_0_PTR f; /* the 3.0 list: every sweep calls through it */
extern CK_C_GetFunctionList get_function_list;
extern CK_RV (*get_interface_list)(CK_INTERFACE_PTR, CK_ULONG_PTR);
extern CK_RV (*get_interface)(CK_UTF8CHAR_PTR, CK_VERSION_PTR, CK_INTERFACE_PTR_PTR, CK_FLAGS);

/* dlopens the module and finds its three exported discovery functions; 1 when all are there. */
int load(const char *path);
/* One cheap call that needs an initialised module. */
CK_RV probe(void);

/* ------------------------------------------------------------------------------------------------ */
/* State the sweeps on an initialised module pass on to each other (defined in abi_common.c)        */

extern CK_SLOT_ID slot; /* the first slot: test_general finds it */
extern int have_slot;

/* Attribute values templates point at. */
extern CK_BBOOL yes, no;
extern CK_OBJECT_CLASS data_class, secret_class;
extern CK_KEY_TYPE aes_type;

/* Session objects test_objects creates; the operation, attribute, fuzz sweeps use them. */
extern CK_OBJECT_HANDLE data_object, aes_key, aes_wrapping_key, n2he_key;

/* ------------------------------------------------------------------------------------------------ */
/* The sweeps, file by file (main() in abi_sweep.c runs them in its own order)                      */

/* abi_discovery.c */
void test_function_lists(void);
void test_interfaces(void);
void sweep_uninitialised(const char *name);

/* abi_initialize.c, abi_initialize_reserved.c */
void test_initialize_forms(void);
void test_initialize_reserved(void);

/* abi_slots_sessions.c */
void test_general(void);
void test_token_and_login(CK_SESSION_HANDLE *rw_out);

/* abi_objects.c */
void test_objects(CK_SESSION_HANDLE s);
void test_attributes(CK_SESSION_HANDLE s);
void test_find(CK_SESSION_HANDLE s);
void test_standard_attributes(CK_SESSION_HANDLE s);

/* abi_crypto.c */
void test_no_operation(CK_SESSION_HANDLE s);
void test_encrypt(CK_SESSION_HANDLE s);
void test_digest_sign(CK_SESSION_HANDLE s);
void test_wrap(CK_SESSION_HANDLE s);
void test_random_and_unsupported(CK_SESSION_HANDLE s);

/* abi_fuzz.c */
void test_fuzz(CK_SESSION_HANDLE s);

/* abi_threads_fork.c */
void test_threads(void);
void test_fork(CK_SESSION_HANDLE parent_session);
void test_fork_while_busy(void);
void test_initialize_race(void);
void test_finalize_under_load(void);
void test_threaded_child(void);
void test_unload(const char *path);

#endif
