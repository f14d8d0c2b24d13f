/* Fork safety below the Swift code: the lock of the library's global state, and a clean thread state
 * for the forking thread in the child.
 *
 * 1. The global state lock is a pthread mutex held across fork() (pthread_atfork prepare/parent/child),
 *    so a child never inherits it locked by a thread that does not exist there. The prepare handler also
 *    waits (up to 5 s) until no call is inside the module, so no lock inside Cryptoki is held by another
 *    thread at the instant of fork(): such a lock would stay held forever in the child.
 *
 * 2. Swift caches thread ids in thread-local storage: Synchronization.Mutex (one cache per Swift module
 *    that inlines it), the runtime's own locks and libdispatch each keep the TID of the thread on first
 *    use and never refresh it. After fork() the child's only thread still carries the parent thread's
 *    TID, writes it into every Swift Mutex it takes, and as soon as another child thread contends for
 *    such a lock the kernel's PI-futex call fails (the owner TID is not in this process) and Swift traps
 *    ("Unknown error occurred while attempting to acquire a Mutex") — in the host. The child handler
 *    therefore resets this module's TLS block of the forking thread to its initial image: the thread
 *    then looks to the Swift runtime, its locks and libdispatch like a thread that never ran module
 *    code (the module never forks itself and never calls back into the host, so no module frame is on
 *    that thread's stack during fork()). */
#define _GNU_SOURCE
#include "CPKCS11.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t tg_state_mutex;
static pthread_mutexattr_t tg_state_mutex_attr;
static __thread int tg_fork_holds_state; /* this thread's prepare handler took the lock */

/* This module's PT_TLS segment and where tg_tls_anchor sits in it. */
static __thread unsigned char tg_tls_anchor;
static ptrdiff_t tg_anchor_offset = -1;
static const unsigned char *tg_tls_image;
static size_t tg_tls_filesz, tg_tls_memsz;

/* Calls inside the module: entered under the state lock, left without it. */
static atomic_long tg_calls_inside;
#define TG_FORK_QUIESCE_LIMIT_NS (5L * 1000 * 1000 * 1000)

/* 3. The process id without a getpid() system call per C_* call (glibc no longer caches it): a page mapped with
 *    MADV_WIPEONFORK holds the pid of the process that wrote it. In a child — however it was created: fork(),
 *    _Fork(), a raw clone() that skips the atfork handlers — the kernel hands the page over zeroed, so the next
 *    read sees 0 and asks getpid() again. Without MADV_WIPEONFORK (kernel < 4.14) every call asks getpid(). */
#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif
static _Atomic pid_t *tg_pid_page; /* NULL: no wipe-on-fork page, always getpid() */

pid_t tg_current_pid(void) {
    _Atomic pid_t *page = tg_pid_page;
    if (page != NULL) {
        pid_t cached = atomic_load_explicit(page, memory_order_relaxed);
        if (cached != 0) return cached;
        pid_t pid = getpid();
        atomic_store_explicit(page, pid, memory_order_relaxed);
        return pid;
    }
    return getpid();
}

static void tg_pid_page_init(void) {
    long pagesize = sysconf(_SC_PAGESIZE);
    void *p = mmap(NULL, pagesize > 0 ? (size_t)pagesize : 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;
    if (madvise(p, pagesize > 0 ? (size_t)pagesize : 4096, MADV_WIPEONFORK) != 0) {
        munmap(p, pagesize > 0 ? (size_t)pagesize : 4096);
        return;
    }
    tg_pid_page = (_Atomic pid_t *)p;
}

void tg_state_lock(void) { (void)pthread_mutex_lock(&tg_state_mutex); }
void tg_state_unlock(void) { (void)pthread_mutex_unlock(&tg_state_mutex); }
void tg_call_enter(void) { atomic_fetch_add(&tg_calls_inside, 1); }
void tg_call_exit(void) { atomic_fetch_sub(&tg_calls_inside, 1); }

static void tg_fork_prepare(void) {
    /* EDEADLK (fork from inside our own critical section) leaves the lock as it is. */
    tg_fork_holds_state = pthread_mutex_lock(&tg_state_mutex) == 0;
    if (!tg_fork_holds_state) return;
    /* No new call can enter now; let the ones inside finish (bounded: a call stuck on a backend must not
     * stall the host's fork() forever — past the limit, fork proceeds as it would without us). */
    const struct timespec pause = { 0, 200 * 1000 };
    long waited = 0;
    while (atomic_load(&tg_calls_inside) > 0 && waited < TG_FORK_QUIESCE_LIMIT_NS) {
        nanosleep(&pause, NULL);
        waited += pause.tv_nsec;
    }
}

static void tg_fork_parent(void) {
    if (tg_fork_holds_state) (void)pthread_mutex_unlock(&tg_state_mutex);
    tg_fork_holds_state = 0;
}

static void tg_fork_child(void) {
    /* The only thread of the child: a fresh, unlocked mutex (an error-checking mutex cannot be unlocked
     * here: it records the parent thread's TID as owner). */
    (void)pthread_mutex_init(&tg_state_mutex, &tg_state_mutex_attr);
    atomic_store(&tg_calls_inside, 0); /* the threads that were inside do not exist here */
    if (tg_anchor_offset >= 0) {
        unsigned char *block = &tg_tls_anchor - tg_anchor_offset;
        memcpy(block, tg_tls_image, tg_tls_filesz);
        /* The TLS image's .tbss part: initialisation, not a wipe of secrets (no secret lives in TLS), so memset. */
        memset(block + tg_tls_filesz, 0, tg_tls_memsz - tg_tls_filesz);
    }
}

static int tg_find_self(struct dl_phdr_info *info, size_t size, void *self) {
    (void)size;
    const ElfW(Phdr) *tls = NULL;
    int ours = 0;
    for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = (uintptr_t)info->dlpi_addr + (uintptr_t)ph->p_vaddr;
        if (ph->p_type == PT_LOAD && (uintptr_t)self >= start && (uintptr_t)self - start < ph->p_memsz) ours = 1;
        if (ph->p_type == PT_TLS) tls = ph;
    }
    if (!ours) return 0;
    if (tls != NULL && info->dlpi_tls_data != NULL && tls->p_filesz <= tls->p_memsz) {
        ptrdiff_t offset = (unsigned char *)&tg_tls_anchor - (unsigned char *)info->dlpi_tls_data;
        if (offset >= 0 && (size_t)offset < tls->p_memsz) {
            tg_tls_image = (const unsigned char *)(info->dlpi_addr + tls->p_vaddr);
            tg_tls_filesz = tls->p_filesz;
            tg_tls_memsz = tls->p_memsz;
            tg_anchor_offset = offset;
        }
    }
    return 1;
}

__attribute__((constructor)) static void tg_fork_safety_init(void) {
    (void)pthread_mutexattr_init(&tg_state_mutex_attr);
    (void)pthread_mutexattr_settype(&tg_state_mutex_attr, PTHREAD_MUTEX_ERRORCHECK);
    (void)pthread_mutex_init(&tg_state_mutex, &tg_state_mutex_attr);
    tg_pid_page_init();
    tg_tls_anchor = 0; /* make sure this thread's block of our TLS exists before asking where it is */
    (void)dl_iterate_phdr(tg_find_self, (void *)&tg_fork_safety_init);
    (void)pthread_atfork(tg_fork_prepare, tg_fork_parent, tg_fork_child);
}
