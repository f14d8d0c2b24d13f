/*
 * abi_threads_fork.c — threads, fork, concurrent C_Initialize, C_Finalize under load, threaded children,
 * fork while parent threads are inside the module, and dlclose / dlopen (NODELETE).
 */
#include "abi_sweep.h"

#include <dlfcn.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

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

void test_threads(void) {
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

void test_fork(CK_SESSION_HANDLE parent_session) {
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

void test_initialize_race(void) {
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

void test_threaded_child(void) {
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

void test_finalize_under_load(void) {
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

void test_fork_while_busy(void) {
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

void test_unload(const char *path) {
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
