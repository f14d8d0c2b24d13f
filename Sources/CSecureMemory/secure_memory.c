/* See include/CSecureMemory.h. Chunks of 64 KiB, 32-byte blocks, first-fit bitmap; at most 32 chunks (2 MiB,
 * well under the usual 8 MiB RLIMIT_MEMLOCK). A chunk is mapped and locked on demand and never unmapped (the
 * memory stays locked and wiped for the life of the process). */
#define _GNU_SOURCE
#include "CSecureMemory.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#define CHUNK_SIZE (64u * 1024u)
#define BLOCK 32u
#define BLOCKS (CHUNK_SIZE / BLOCK)
#define MAX_CHUNKS 32

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif
#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif

struct chunk {
    unsigned char *base;
    uint64_t used[BLOCKS / 64];   /* outside the chunk: bookkeeping survives the child's wipe */
    int wipes_on_fork;
};

static struct chunk chunks[MAX_CHUNKS];
static int chunk_count;
static size_t in_use;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_uint_fast64_t fork_generation;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* The one zeroisation primitive of the project (Swift: CryptoCore `secureZero`): OPENSSL_cleanse, which the
 * optimiser may not drop. Only calls memset and is safe in the fork child handler. */
static void explicit_zero(void *p, size_t n) { OPENSSL_cleanse(p, n); }

static void child_after_fork(void) {
    /* The only thread of the child. A parent thread may have held the lock at fork(): start with a fresh one. */
    pthread_mutex_init(&lock, NULL);
    for (int i = 0; i < chunk_count; i++)
        if (!chunks[i].wipes_on_fork) explicit_zero(chunks[i].base, CHUNK_SIZE);
    atomic_fetch_add(&fork_generation, 1);
}

static void register_handlers(void) { (void)pthread_atfork(NULL, NULL, child_after_fork); }

static int add_chunk(void) {   /* under the lock */
    if (chunk_count >= MAX_CHUNKS) return 0;
    void *p = mmap(NULL, CHUNK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return 0;
    if (mlock(p, CHUNK_SIZE) != 0) { munmap(p, CHUNK_SIZE); return 0; }
    (void)madvise(p, CHUNK_SIZE, MADV_DONTDUMP);
    struct chunk *c = &chunks[chunk_count];
    memset(c, 0, sizeof *c);   /* bookkeeping of a new chunk, not secret: plain memset */
    c->base = p;
    c->wipes_on_fork = madvise(p, CHUNK_SIZE, MADV_WIPEONFORK) == 0;
    (void)prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)p, CHUNK_SIZE, (unsigned long)"tensorguard-secrets");
    chunk_count++;
    return 1;
}

static int test_bit(const struct chunk *c, unsigned i) { return (int)((c->used[i / 64] >> (i % 64)) & 1u); }
static void set_bits(struct chunk *c, unsigned from, unsigned n, int on) {
    for (unsigned i = from; i < from + n; i++) {
        if (on) c->used[i / 64] |= (uint64_t)1 << (i % 64);
        else c->used[i / 64] &= ~((uint64_t)1 << (i % 64));
    }
}

static void *take(struct chunk *c, unsigned n) {
    unsigned run = 0;
    for (unsigned i = 0; i < BLOCKS; i++) {
        if (i % 64 == 0 && run == 0 && c->used[i / 64] == UINT64_MAX) { i += 63; continue; }
        if (test_bit(c, i)) { run = 0; continue; }
        if (++run == n) {
            unsigned from = i + 1 - n;
            set_bits(c, from, n, 1);
            return c->base + (size_t)from * BLOCK;
        }
    }
    return NULL;
}

void *tg_secure_alloc(size_t size) {
    if (size == 0 || size > TG_SECURE_MAX_ALLOCATION) return NULL;
    pthread_once(&once, register_handlers);
    unsigned n = (unsigned)((size + BLOCK - 1) / BLOCK);
    void *p = NULL;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < chunk_count && !p; i++) p = take(&chunks[i], n);
    if (!p && add_chunk()) p = take(&chunks[chunk_count - 1], n);
    if (p) in_use += (size_t)n * BLOCK;
    pthread_mutex_unlock(&lock);
    if (p) explicit_zero(p, (size_t)n * BLOCK);
    return p;
}

void tg_secure_free(void *pointer, size_t size) {
    if (!pointer || size == 0) return;
    unsigned n = (unsigned)((size + BLOCK - 1) / BLOCK);
    explicit_zero(pointer, (size_t)n * BLOCK);
    pthread_mutex_lock(&lock);
    for (int i = 0; i < chunk_count; i++) {
        unsigned char *b = chunks[i].base;
        if ((unsigned char *)pointer >= b && (unsigned char *)pointer < b + CHUNK_SIZE) {
            unsigned from = (unsigned)(((unsigned char *)pointer - b) / BLOCK);
            if (from + n <= BLOCKS) { set_bits(&chunks[i], from, n, 0); in_use -= (size_t)n * BLOCK; }
            break;
        }
    }
    pthread_mutex_unlock(&lock);
}

size_t tg_secure_in_use(void) {
    pthread_mutex_lock(&lock);
    size_t n = in_use;
    pthread_mutex_unlock(&lock);
    return n;
}

size_t tg_secure_capacity(void) { return (size_t)MAX_CHUNKS * CHUNK_SIZE; }

int tg_secure_contains(const void *pointer) {
    int found = 0;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < chunk_count && !found; i++)
        found = (const unsigned char *)pointer >= chunks[i].base && (const unsigned char *)pointer < chunks[i].base + CHUNK_SIZE;
    pthread_mutex_unlock(&lock);
    return found;
}

uint64_t tg_secure_fork_generation(void) { return atomic_load(&fork_generation); }
