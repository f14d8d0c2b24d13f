/*
 * abi_initialize_reserved.c — C_Initialize's pReserved given any pointer value: small integers, unmapped
 * and PROT_NONE pages, unterminated strings running into them, paths at page edges, over-long and
 * non-UTF-8 paths, and the same under a seccomp filter that forbids process_vm_readv.
 */
#include "abi_sweep.h"

#include <errno.h>
#include <ftw.h>
#include <libgen.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

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

void test_initialize_reserved(void) {
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
