/*
 * reliability — multi-process and crash tests of libtensorguard-pkcs11.so through its C ABI.
 *
 *   reliability /path/to/libtensorguard-pkcs11.so /path/to/token/store [audit.log [--wrap-only | --races RETRIES USES]]
 *
 * TENSORGUARD_PKCS11_CONF must name a config whose first slot is a fresh token stored in the given
 * directory (Tests/reliability/run.sh writes it). The parent process never loads the module: every
 * module call happens in a forked child, so no module state ever crosses a fork.
 *
 *   1. Two processes create 500 token objects each on one token at once; both then see all 1000.
 *   2. A process killed with SIGKILL in the middle of a C_GenerateKey loop: every key whose
 *      C_GenerateKey returned CKR_OK is there afterwards, PRAGMA integrity_check is ok, and the
 *      token still logs in.
 *   3. C_WrapKey while the process cannot open a file (RLIMIT_NOFILE exhausted, so the audit record cannot
 *      be written): CKR_DEVICE_ERROR, the caller's buffer untouched, no wrap recorded; once files open again the
 *      same call wraps, and the audit log holds exactly one wrap, written before the bytes came out.
 *      (--wrap-only: this test alone, for a token on another backend.)
 *   5. (--races RETRIES USES) RACERS processes race C_EncryptInit on one key of a token whose policy allows USES:
 *      exactly USES succeed.
 *   6. (--races) RACERS processes race wrong PINs at one token: exactly RETRIES attempts are counted before the
 *      lockout (RETRIES - 1 answers CKR_PIN_INCORRECT, the last CKR_PIN_LOCKED, and the audit log has one failure
 *      record for each of attempts 1 … RETRIES). Run on a token of their own: test 6 locks its user PIN.
 *
 * Prints one line per failed check and, at the end, "reliability: N passed, M failed"; exits
 * non-zero on any failure.
 */
#include <p11-kit/pkcs11.h>

#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#define OBJECTS_PER_CHILD 500
#define RACERS 20
#define KILL_AFTER_MS 1500

static const char *so_pin = "rel-so-pin-1";
static const char *user_pin = "rel-user-pin-1";
#define PIN(p) (CK_UTF8CHAR_PTR)(p), (CK_ULONG)strlen(p)

static const char *module_path, *store_dir, *audit_path;
static int passed, failed;

static void check(const char *what, int ok) {
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL %s\n", what);
    }
}

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Waits for pid at most timeout_s seconds; kills it on timeout. Returns the wait status, or -1. */
static int wait_child(pid_t pid, int timeout_s) {
    long deadline = now_ms() + timeout_s * 1000L;
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) return status;
        if (r < 0 && errno != EINTR) return -1;
        if (now_ms() > deadline) {
            printf("      child %d timed out after %d s: killed\n", (int)pid, timeout_s);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        usleep(20000);
    }
}

static int exited_ok(int status) { return status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0; }

/* ---- in children only ------------------------------------------------------------------------- */

static CK_FUNCTION_LIST_PTR f;
static CK_SLOT_ID slot;

static void die(const char *who, const char *what, CK_RV rv) {
    printf("      [%s] %s -> 0x%lx\n", who, what, (unsigned long)rv);
    fflush(stdout);
    _exit(3);
}

/* dlopen + C_Initialize + the first slot. */
static void child_load(const char *who) {
    void *h = dlopen(module_path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        printf("      [%s] dlopen %s: %s\n", who, module_path, dlerror());
        fflush(stdout);
        _exit(3);
    }
    CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(h, "C_GetFunctionList");
    if (gfl == NULL) die(who, "dlsym C_GetFunctionList", 0);
    CK_RV rv = gfl(&f);
    if (rv != CKR_OK) die(who, "C_GetFunctionList", rv);
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof args);
    args.flags = CKF_OS_LOCKING_OK;
    if ((rv = f->C_Initialize(&args)) != CKR_OK) die(who, "C_Initialize", rv);
    CK_SLOT_ID slots[8];
    CK_ULONG n = 8;
    if ((rv = f->C_GetSlotList(CK_FALSE, slots, &n)) != CKR_OK) die(who, "C_GetSlotList", rv);
    if (n == 0) die(who, "C_GetSlotList: no slot", 0);
    slot = slots[0];
}

static CK_SESSION_HANDLE child_user_session(const char *who) {
    CK_SESSION_HANDLE s;
    CK_RV rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
    if (rv != CKR_OK) die(who, "C_OpenSession", rv);
    if ((rv = f->C_Login(s, CKU_USER, PIN(user_pin))) != CKR_OK) die(who, "C_Login(USER)", rv);
    return s;
}

static void child_init_token(void) {
    alarm(60);
    child_load("init");
    CK_UTF8CHAR label[32];
    memset(label, ' ', sizeof label);
    memcpy(label, "reliability", 11);
    CK_RV rv = f->C_InitToken(slot, PIN(so_pin), label);
    if (rv != CKR_OK) die("init", "C_InitToken", rv);
    CK_SESSION_HANDLE s;
    if ((rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s)) != CKR_OK)
        die("init", "C_OpenSession", rv);
    if ((rv = f->C_Login(s, CKU_SO, PIN(so_pin))) != CKR_OK) die("init", "C_Login(SO)", rv);
    if ((rv = f->C_InitPIN(s, PIN(user_pin))) != CKR_OK) die("init", "C_InitPIN", rv);
    f->C_Logout(s);
    f->C_CloseSession(s);
    if ((rv = f->C_Finalize(NULL)) != CKR_OK) die("init", "C_Finalize", rv);
    fflush(stdout);
    _exit(0);
}

/* Barrier: reports 'R' (ready) to the parent, then waits for its 's' (start), so the children's calls overlap. */
static void barrier(const char *who, int to_parent, int from_parent) {
    char start = 0;
    (void)!write(to_parent, "R", 1);
    if (read(from_parent, &start, 1) != 1 || start != 's') die(who, "no start from the parent", 0);
}

/* Counts the objects matching tmpl (up to 64 handles per C_FindObjects call). */
static long count_objects(const char *who, CK_SESSION_HANDLE s, CK_ATTRIBUTE *tmpl, CK_ULONG n) {
    CK_RV rv = f->C_FindObjectsInit(s, tmpl, n);
    if (rv != CKR_OK) die(who, "C_FindObjectsInit", rv);
    long total = 0;
    for (;;) {
        CK_OBJECT_HANDLE h[64];
        CK_ULONG got = 0;
        if ((rv = f->C_FindObjects(s, h, 64, &got)) != CKR_OK) die(who, "C_FindObjects", rv);
        if (got == 0) break;
        total += (long)got;
    }
    if ((rv = f->C_FindObjectsFinal(s)) != CKR_OK) die(who, "C_FindObjectsFinal", rv);
    return total;
}

/* Test 1 child: report 'R' (logged in), wait for 's', create 500 objects, report 'D' (done) or 'F',
 * wait for 'g', count. */
static void child_create(int who, int to_parent, int from_parent) {
    char name[16];
    snprintf(name, sizeof name, "p%d", who);
    alarm(240);
    child_load(name);
    CK_SESSION_HANDLE s = child_user_session(name);
    /* Barrier: both processes are logged in before either creates anything, so the writes overlap. */
    barrier(name, to_parent, from_parent);
    CK_OBJECT_CLASS data = CKO_DATA;
    CK_BBOOL yes = CK_TRUE;
    for (int i = 0; i < OBJECTS_PER_CHILD; i++) {
        char label[32], value[32];
        int llen = snprintf(label, sizeof label, "p%d-%d", who, i);
        int vlen = snprintf(value, sizeof value, "value %d/%d", who, i);
        CK_ATTRIBUTE tmpl[] = {
            { CKA_CLASS, &data, sizeof data },
            { CKA_TOKEN, &yes, sizeof yes },
            { CKA_LABEL, label, (CK_ULONG)llen },
            { CKA_VALUE, value, (CK_ULONG)vlen },
        };
        CK_OBJECT_HANDLE h;
        CK_RV rv = f->C_CreateObject(s, tmpl, 4, &h);
        if (rv != CKR_OK) {
            printf("      [%s] C_CreateObject #%d -> 0x%lx\n", name, i, (unsigned long)rv);
            fflush(stdout);
            (void)!write(to_parent, "F", 1);
            _exit(3);
        }
    }
    (void)!write(to_parent, "D", 1);
    char go = 0;
    if (read(from_parent, &go, 1) != 1 || go != 'g') die(name, "no go from the parent", 0);
    CK_ATTRIBUTE find[] = { { CKA_CLASS, &data, sizeof data } };
    long seen = count_objects(name, s, find, 1);
    printf("      [%s] created %d, sees %ld token data objects\n", name, OBJECTS_PER_CHILD, seen);
    f->C_Logout(s);
    f->C_CloseSession(s);
    f->C_Finalize(NULL);
    fflush(stdout);
    _exit(seen == 2 * OBJECTS_PER_CHILD ? 0 : 1);
}

/* Test 2 child: generate keys forever, reporting each index after CKR_OK; the parent kills it. */
static void child_keygen(int to_parent) {
    alarm(120);
    child_load("keygen");
    CK_SESSION_HANDLE s = child_user_session("keygen");
    CK_MECHANISM mech = { CKM_AES_KEY_GEN, NULL, 0 };
    CK_BBOOL yes = CK_TRUE;
    CK_ULONG len = 32;
    for (uint32_t i = 0;; i++) {
        char label[32];
        int llen = snprintf(label, sizeof label, "k-%u", i);
        CK_ATTRIBUTE tmpl[] = {
            { CKA_TOKEN, &yes, sizeof yes },
            { CKA_VALUE_LEN, &len, sizeof len },
            { CKA_LABEL, label, (CK_ULONG)llen },
        };
        CK_OBJECT_HANDLE h;
        CK_RV rv = f->C_GenerateKey(s, &mech, tmpl, 3, &h);
        if (rv != CKR_OK) die("keygen", "C_GenerateKey", rv);
        if (write(to_parent, &i, sizeof i) != (ssize_t)sizeof i) _exit(4);   /* atomic: < PIPE_BUF */
    }
}

/* Test 2 verifier: exit bit 0 = login failed, bit 1 = some reported key missing or duplicated. */
static void child_verify(const uint32_t *keys, size_t n) {
    alarm(120);
    child_load("verify");
    CK_SESSION_HANDLE s;
    CK_RV rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
    if (rv != CKR_OK) die("verify", "C_OpenSession", rv);
    rv = f->C_Login(s, CKU_USER, PIN(user_pin));
    if (rv != CKR_OK) {
        printf("      [verify] C_Login(USER) after the kill -> 0x%lx\n", (unsigned long)rv);
        fflush(stdout);
        _exit(1 | 2);
    }
    CK_OBJECT_CLASS secret = CKO_SECRET_KEY;
    size_t bad = 0;
    for (size_t k = 0; k < n; k++) {
        char label[32];
        int llen = snprintf(label, sizeof label, "k-%u", keys[k]);
        CK_ATTRIBUTE tmpl[] = { { CKA_CLASS, &secret, sizeof secret }, { CKA_LABEL, label, (CK_ULONG)llen } };
        long c = count_objects("verify", s, tmpl, 2);
        if (c != 1) {
            if (bad++ < 10) printf("      [verify] key %s: found %ld, expected 1\n", label, c);
        }
    }
    CK_ATTRIBUTE all[] = { { CKA_CLASS, &secret, sizeof secret } };
    long total = count_objects("verify", s, all, 1);
    printf("      [verify] %zu reported keys, %zu missing or duplicated; %ld secret keys on the token\n",
           n, bad, total);
    f->C_Logout(s);
    f->C_CloseSession(s);
    f->C_Finalize(NULL);
    fflush(stdout);
    _exit(bad ? 2 : 0);
}

/* Test 3 child. Exit status: 0 all good; 10 + n for the n-th failed step (printed). */
static void child_wrap_nofile(void) {
    alarm(120);
    child_load("wrap");
    CK_SESSION_HANDLE s = child_user_session("wrap");
    CK_MECHANISM gen = { CKM_AES_KEY_GEN, NULL, 0 };
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ULONG len32 = 32;
    CK_ATTRIBUTE wt[] = { { CKA_VALUE_LEN, &len32, sizeof len32 }, { CKA_WRAP, &yes, sizeof yes },
                          { CKA_ENCRYPT, &no, sizeof no }, { CKA_DECRYPT, &no, sizeof no },
                          { CKA_LABEL, "nofile-wrapper", 14 } };
    CK_ATTRIBUTE kt[] = { { CKA_VALUE_LEN, &len32, sizeof len32 }, { CKA_EXTRACTABLE, &yes, sizeof yes },
                          { CKA_LABEL, "nofile-target", 13 } };
    CK_OBJECT_HANDLE wrapper, target;
    CK_RV rv = f->C_GenerateKey(s, &gen, wt, 5, &wrapper);
    if (rv != CKR_OK) die("wrap", "C_GenerateKey(wrapper)", rv);
    if ((rv = f->C_GenerateKey(s, &gen, kt, 3, &target)) != CKR_OK) die("wrap", "C_GenerateKey(target)", rv);
    CK_MECHANISM kw = { CKM_AES_KEY_WRAP, NULL, 0 };
    CK_ULONG n = 0;
    if ((rv = f->C_WrapKey(s, &kw, wrapper, target, NULL, &n)) != CKR_OK || n != 40) {
        printf("      [wrap] length query -> 0x%lx, %lu\n", (unsigned long)rv, (unsigned long)n);
        _exit(11);
    }
    unsigned char buf[64];
    memset(buf, 0xA5, sizeof buf);

    /* No file can be opened from here on: the soft limit at the highest open descriptor + 1, every lower
     * free descriptor taken by a dup. */
    struct rlimit old;
    if (getrlimit(RLIMIT_NOFILE, &old) != 0) die("wrap", "getrlimit", 0);
    int top = 0;
    for (int fd = 0; fd < 4096; fd++)
        if (fcntl(fd, F_GETFD) != -1) top = fd;
    struct rlimit low = { (rlim_t)top + 1, old.rlim_max };
    if (setrlimit(RLIMIT_NOFILE, &low) != 0) die("wrap", "setrlimit", 0);
    int dups[4096], ndups = 0;
    for (;;) {
        int d = dup(0);
        if (d < 0) break;
        if (ndups < 4096) dups[ndups++] = d;
    }
    int probe = open("/dev/null", O_RDONLY);
    int exhausted = probe < 0 && errno == EMFILE;
    if (probe >= 0) close(probe);
    CK_ULONG got = sizeof buf;
    rv = f->C_WrapKey(s, &kw, wrapper, target, buf, &got);
    for (int i = 0; i < ndups; i++) close(dups[i]);
    setrlimit(RLIMIT_NOFILE, &old);
    if (!exhausted) {
        printf("      [wrap] could not exhaust RLIMIT_NOFILE\n");
        _exit(12);
    }
    int untouched = 1;
    for (size_t i = 0; i < sizeof buf; i++)
        if (buf[i] != 0xA5) untouched = 0;
    printf("      [wrap] with no file descriptor left: C_WrapKey -> 0x%lx, caller's buffer %s\n", (unsigned long)rv,
           untouched ? "untouched" : "WRITTEN");
    if (rv != CKR_DEVICE_ERROR) _exit(13);
    if (!untouched) _exit(14);

    got = sizeof buf;
    rv = f->C_WrapKey(s, &kw, wrapper, target, buf, &got);
    int changed = 0;
    for (size_t i = 0; i < 40; i++)
        if (buf[i] != 0xA5) changed = 1;
    printf("      [wrap] with descriptors again: C_WrapKey -> 0x%lx, %lu bytes\n", (unsigned long)rv, (unsigned long)got);
    if (rv != CKR_OK || got != 40 || !changed) _exit(15);
    f->C_Logout(s);
    f->C_CloseSession(s);
    f->C_Finalize(NULL);
    fflush(stdout);
    _exit(0);
}

/* Lines of the audit log containing both needles. -1 when it cannot be read. */
static long count_records(const char *a, const char *b) {
    FILE *fp = fopen(audit_path, "r");
    if (fp == NULL) return -1;
    char *line = NULL;
    size_t cap = 0;
    long n = 0;
    while (getline(&line, &cap, fp) > 0)
        if (strstr(line, a) != NULL && strstr(line, b) != NULL) n++;
    free(line);
    fclose(fp);
    return n;
}

/* Test 6 child: wait for 's', then wrong PINs until the PIN locks; writes its counts (incorrect, locked, other). */
static void child_wrong_pins(int who, int to_parent, int from_parent) {
    char name[16];
    snprintf(name, sizeof name, "pin%d", who);
    alarm(240);
    child_load(name);
    CK_SESSION_HANDLE s;
    CK_RV rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
    if (rv != CKR_OK) die(name, "C_OpenSession", rv);
    barrier(name, to_parent, from_parent);
    int counts[3] = { 0, 0, 0 };
    for (int i = 0; i < 1000; i++) {
        rv = f->C_Login(s, CKU_USER, PIN("wrong-pin-0000"));
        if (rv == CKR_PIN_INCORRECT) {
            counts[0]++;
        } else if (rv == CKR_PIN_LOCKED) {
            counts[1]++;
            break;
        } else {
            printf("      [%s] C_Login(wrong PIN) -> 0x%lx\n", name, (unsigned long)rv);
            counts[2]++;
            break;
        }
    }
    (void)!write(to_parent, counts, sizeof counts);
    f->C_CloseSession(s);
    f->C_Finalize(NULL);
    fflush(stdout);
    _exit(0);
}

static CK_OBJECT_HANDLE find_one(const char *who, CK_SESSION_HANDLE s, const char *label) {
    CK_ATTRIBUTE tmpl[] = { { CKA_LABEL, (void *)label, (CK_ULONG)strlen(label) } };
    CK_RV rv = f->C_FindObjectsInit(s, tmpl, 1);
    if (rv != CKR_OK) die(who, "C_FindObjectsInit", rv);
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_ULONG got = 0;
    if ((rv = f->C_FindObjects(s, &h, 1, &got)) != CKR_OK || got != 1) die(who, "C_FindObjects(race key)", rv);
    f->C_FindObjectsFinal(s);
    return h;
}

/* Test 5 child: wait for 's', then C_EncryptInit + C_Encrypt on the race key until refused; writes its
 * counts (succeeded, refused, other). */
static void child_key_uses(int who, int to_parent, int from_parent) {
    char name[16];
    snprintf(name, sizeof name, "use%d", who);
    alarm(240);
    child_load(name);
    CK_SESSION_HANDLE s = child_user_session(name);
    CK_RV rv;
    CK_OBJECT_HANDLE key = find_one(name, s, "race-key");
    barrier(name, to_parent, from_parent);
    int counts[3] = { 0, 0, 0 };
    CK_BYTE iv[16] = { 0 }, in[16] = { 1 }, out[32];
    CK_MECHANISM cbc = { CKM_AES_CBC_PAD, iv, sizeof iv };
    for (int i = 0; i < 1000; i++) {
        rv = f->C_EncryptInit(s, &cbc, key);
        if (rv == CKR_KEY_FUNCTION_NOT_PERMITTED) {
            counts[1]++;
            break;
        }
        if (rv != CKR_OK) {
            printf("      [%s] C_EncryptInit -> 0x%lx\n", name, (unsigned long)rv);
            counts[2]++;
            break;
        }
        counts[0]++;
        CK_ULONG n = sizeof out;
        if ((rv = f->C_Encrypt(s, in, sizeof in, out, &n)) != CKR_OK) {
            printf("      [%s] C_Encrypt -> 0x%lx\n", name, (unsigned long)rv);
            counts[2]++;
            break;
        }
    }
    (void)!write(to_parent, counts, sizeof counts);
    f->C_Logout(s);
    f->C_CloseSession(s);
    f->C_Finalize(NULL);
    fflush(stdout);
    _exit(0);
}

/* Test 5 setup: the race key (AES, encrypt only). */
static void child_make_race_key(void) {
    alarm(60);
    child_load("race-setup");
    CK_SESSION_HANDLE s = child_user_session("race-setup");
    CK_RV rv;
    CK_MECHANISM gen = { CKM_AES_KEY_GEN, NULL, 0 };
    CK_BBOOL yes = CK_TRUE;
    CK_ULONG len = 32;
    CK_ATTRIBUTE t[] = { { CKA_VALUE_LEN, &len, sizeof len }, { CKA_TOKEN, &yes, sizeof yes },
                         { CKA_ENCRYPT, &yes, sizeof yes }, { CKA_LABEL, "race-key", 8 } };
    CK_OBJECT_HANDLE h;
    if ((rv = f->C_GenerateKey(s, &gen, t, 4, &h)) != CKR_OK) die("race-setup", "C_GenerateKey", rv);
    f->C_Logout(s);
    f->C_Finalize(NULL);
    fflush(stdout);
    _exit(0);
}

/* ---- parent ----------------------------------------------------------------------------------- */

static pid_t spawn(void (*fn)(void)) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) fn();
    return pid;
}

static int read_byte(int fd, int timeout_s, char *out) {
    struct pollfd p = { fd, POLLIN, 0 };
    if (poll(&p, 1, timeout_s * 1000) <= 0) return 0;
    return read(fd, out, 1) == 1;
}

static void test_two_processes(void) {
    printf("test 1: two processes create %d token objects each at once\n", OBJECTS_PER_CHILD);
    int up[2][2], down[2][2];
    pid_t pid[2];
    for (int w = 0; w < 2; w++) {
        if (pipe(up[w]) != 0 || pipe(down[w]) != 0) {
            check("pipe", 0);
            return;
        }
    }
    for (int w = 0; w < 2; w++) {
        fflush(stdout);
        pid[w] = fork();
        if (pid[w] == 0) {
            for (int o = 0; o < 2; o++) {
                close(up[o][0]);
                close(down[o][1]);
                if (o != w) {
                    close(up[o][1]);
                    close(down[o][0]);
                }
            }
            child_create(w + 1, up[w][1], down[w][0]);
        }
    }
    for (int w = 0; w < 2; w++) {
        close(up[w][1]);
        close(down[w][0]);
    }
    for (int w = 0; w < 2; w++) {
        char c = 0;
        if (!read_byte(up[w][0], 120, &c) || c != 'R') printf("      [p%d] did not log in (got '%c')\n", w + 1, c ? c : '-');
    }
    for (int w = 0; w < 2; w++) (void)!write(down[w][1], "s", 1);
    long start = now_ms();
    for (int w = 0; w < 2; w++) {
        char c = 0;
        if (!read_byte(up[w][0], 240, &c) || c != 'D') printf("      [p%d] did not finish creating (got '%c')\n", w + 1, c ? c : '-');
    }
    printf("      both done creating after %ld ms\n", now_ms() - start);
    for (int w = 0; w < 2; w++) {
        (void)!write(down[w][1], "g", 1);
        close(down[w][1]);
    }
    for (int w = 0; w < 2; w++) {
        int st = wait_child(pid[w], 120);
        char what[64];
        snprintf(what, sizeof what, "test 1: process p%d sees all %d objects", w + 1, 2 * OBJECTS_PER_CHILD);
        check(what, exited_ok(st));
        close(up[w][0]);
    }
}

static void test_sigkill_keygen(void) {
    printf("test 2: SIGKILL in the middle of a C_GenerateKey loop\n");
    int p[2];
    if (pipe(p) != 0) {
        check("pipe", 0);
        return;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        child_keygen(p[1]);
    }
    close(p[1]);

    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    long first = -1, deadline = now_ms() + 60000;   /* the first key must come within 60 s */
    int eof = 0, killed = 0;
    while (!eof) {
        long now = now_ms();
        if (!killed && (now > deadline || (first >= 0 && now - first >= KILL_AFTER_MS))) {
            kill(pid, SIGKILL);
            killed = 1;
        }
        struct pollfd pf = { p[0], POLLIN, 0 };
        int r = poll(&pf, 1, 50);
        if (r < 0 && errno != EINTR) break;
        if (r <= 0) {
            if (killed && now_ms() - now > 10000) break;
            continue;
        }
        if (len + 4096 > cap) buf = realloc(buf, cap *= 2);
        ssize_t got = read(p[0], buf + len, 4096);
        if (got <= 0) {
            eof = 1;
        } else {
            len += (size_t)got;
            if (first < 0) first = now_ms();
        }
    }
    close(p[0]);
    int st = wait_child(pid, 10);
    if (st >= 0 && !(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL))
        printf("      the key-generation process ended on its own (status 0x%x) before the kill\n", st);
    size_t n = len / 4;
    uint32_t *keys = (uint32_t *)buf;
    printf("      %zu keys reported generated before the SIGKILL\n", n);
    check("test 2: at least one key was generated before the kill", n >= 1);

    fflush(stdout);
    pid_t v = fork();
    if (v == 0) child_verify(keys, n);
    st = wait_child(v, 150);
    int code = (st >= 0 && WIFEXITED(st)) ? WEXITSTATUS(st) : 255;
    check("test 2: every reported key is on the token, exactly once", code == 0);
    check("test 2: the token still logs in (C_Login CKR_OK)", code == 0 || code == 2);
    free(buf);

    char cmd[4096], out[256] = "";
    snprintf(cmd, sizeof cmd, "timeout 60 sqlite3 '%s/token.sqlite' 'PRAGMA integrity_check' 2>&1", store_dir);
    FILE *pf = popen(cmd, "r");
    if (pf != NULL) {
        size_t r = fread(out, 1, sizeof out - 1, pf);
        out[r] = 0;
        int prc = pclose(pf);
        if (prc != 0) printf("      sqlite3 exited with status 0x%x\n", prc);
    }
    out[strcspn(out, "\n")] = 0;
    printf("      PRAGMA integrity_check: %s\n", out);
    check("test 2: PRAGMA integrity_check is ok", strcmp(out, "ok") == 0);
}

static void test_wrap_nofile(void) {
    printf("test 3: C_WrapKey when the audit record cannot be written (RLIMIT_NOFILE exhausted)\n");
    if (audit_path == NULL) {
        check("test 3: the audit log's path is given", 0);
        return;
    }
    long before = count_records("\"event\":\"wrap\"", "\"outcome\":\"success\"");
    long pending_before = count_records("\"event\":\"wrap\"", "\"outcome\":\"pending\"");
    int st = wait_child(spawn(child_wrap_nofile), 150);
    int code = (st >= 0 && WIFEXITED(st)) ? WEXITSTATUS(st) : 255;
    check("test 3: C_WrapKey answers CKR_DEVICE_ERROR with no descriptor for the audit record", code == 0 || code > 13);
    check("test 3: the caller's buffer is untouched when the record cannot be written", code == 0 || code > 14);
    check("test 3: the wrap succeeds once the record can be written", code == 0);
    long wraps = count_records("\"event\":\"wrap\"", "\"outcome\":\"success\"") - before;
    long pending = count_records("\"event\":\"wrap\"", "\"outcome\":\"pending\"") - pending_before;
    printf("      audit log: %ld new wrap record(s), %ld new pending wrap record(s)\n", wraps, pending);
    check("test 3: exactly one wrap recorded (the one that delivered its bytes)", wraps == 1);
    check("test 3: exactly one pending wrap record (the refused call could write none)", pending == 1);
}

/* Runs RACERS children of `fn` past one barrier; sums the three counts each writes. 0 when all reported. */
static int race(void (*fn)(int, int, int), int totals[3]) {
    int up[2], down[2];
    if (pipe(up) != 0 || pipe(down) != 0) return -1;
    pid_t pids[RACERS];
    for (int i = 0; i < RACERS; i++) {
        fflush(stdout);
        pids[i] = fork();
        if (pids[i] == 0) {
            close(up[0]);
            close(down[1]);
            fn(i, up[1], down[0]);
        }
    }
    close(up[1]);
    close(down[0]);
    int ready = 0;
    char c;
    while (ready < RACERS && read_byte(up[0], 120, &c) && c == 'R') ready++;
    for (int i = 0; i < RACERS; i++) (void)!write(down[1], "s", 1);
    close(down[1]);
    int reported = 0;
    totals[0] = totals[1] = totals[2] = 0;
    for (int i = 0; i < RACERS; i++) {
        int counts[3];
        struct pollfd pf = { up[0], POLLIN, 0 };
        if (poll(&pf, 1, 180000) <= 0 || read(up[0], counts, sizeof counts) != (ssize_t)sizeof counts) break;
        for (int k = 0; k < 3; k++) totals[k] += counts[k];
        reported++;
    }
    close(up[0]);
    for (int i = 0; i < RACERS; i++) wait_child(pids[i], 60);
    if (ready != RACERS) printf("      only %d of %d racers got ready\n", ready, RACERS);
    return ready == RACERS && reported == RACERS ? 0 : -1;
}

static void test_pin_race(int retries) {
    printf("test 6: %d processes race wrong PINs (max_pin_retries %d)\n", RACERS, retries);
    int t[3];
    int ok = race(child_wrong_pins, t) == 0;
    printf("      %d CKR_PIN_INCORRECT, %d CKR_PIN_LOCKED, %d other answers\n", t[0], t[1], t[2]);
    check("test 6: every racer reported", ok);
    check("test 6: exactly max_pin_retries - 1 attempts answered CKR_PIN_INCORRECT", t[0] == retries - 1);
    check("test 6: every racer ended on CKR_PIN_LOCKED", t[1] == RACERS && t[2] == 0);
    int missing = 0, repeated = 0;
    for (int k = 1; k <= retries + 1; k++) {
        char field[48];
        snprintf(field, sizeof field, "\"failed_attempts\":%d,", k);
        long n = count_records("\"event\":\"login\"", field);
        if (k <= retries && n == 0) missing++;
        if (n > 1 || (k > retries && n > 0)) repeated++;
    }
    printf("      audit: %d of attempts 1..%d without a failure record, %d numbers recorded twice or beyond\n",
           missing, retries, repeated);
    check("test 6: one failure record for each of attempts 1 … max_pin_retries, none beyond", missing == 0 && repeated == 0);
}

static void test_use_race(int uses) {
    printf("test 5: %d processes race C_EncryptInit on a key with policy max_key_uses %d\n", RACERS, uses);
    int st = wait_child(spawn(child_make_race_key), 90);
    check("test 5: setup: the key is generated", exited_ok(st));
    if (!exited_ok(st)) return;
    int t[3];
    int ok = race(child_key_uses, t) == 0;
    printf("      %d C_EncryptInit CKR_OK, %d CKR_KEY_FUNCTION_NOT_PERMITTED, %d other answers\n", t[0], t[1], t[2]);
    check("test 5: every racer reported", ok);
    check("test 5: exactly max_key_uses C_EncryptInit calls succeeded", t[0] == uses);
    check("test 5: every racer ended on CKR_KEY_FUNCTION_NOT_PERMITTED", t[1] == RACERS && t[2] == 0);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if (argc < 3) {
        printf("usage: reliability module.so store-dir\nreliability: 0 passed, 1 failed\n");
        return 2;
    }
    module_path = argv[1];
    store_dir = argv[2];
    audit_path = argc > 3 ? argv[3] : NULL;
    int wrap_only = argc > 4 && strcmp(argv[4], "--wrap-only") == 0;
    int races = argc > 6 && strcmp(argv[4], "--races") == 0;

    int st = wait_child(spawn(child_init_token), 90);
    check("setup: C_InitToken + C_InitPIN in a helper process", exited_ok(st));
    if (exited_ok(st)) {
        if (races) {
            test_use_race(atoi(argv[6]));
            test_pin_race(atoi(argv[5]));
        } else {
            if (!wrap_only) {
                test_two_processes();
                test_sigkill_keygen();
            }
            test_wrap_nofile();
        }
    }
    printf("reliability: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
