/* CSecureMemory — locked, never-dumped, wiped-on-fork memory for secrets kept across calls (the token key cache,
 * docs/performance.md). Small blocks from a few mmap'ed chunks:
 *   - mlock'ed (never paged out; when RLIMIT_MEMLOCK refuses, the allocation fails instead: nothing lands in
 *     unlocked memory),
 *   - MADV_DONTDUMP (not in core dumps), MADV_WIPEONFORK (a child of fork(), however created, sees zeros),
 *   - and a pthread_atfork child handler that zeroes every chunk too (kernels without MADV_WIPEONFORK).
 * Freed blocks are zeroed before they go back. Thread safe. */
#ifndef CSECUREMEMORY_H
#define CSECUREMEMORY_H
#include <stddef.h>
#include <stdint.h>

/* `size` bytes (1 ... TG_SECURE_MAX_ALLOCATION) of zeroed locked memory, 16-byte aligned, or NULL (limit reached,
 * mlock refused, size out of range). */
void *tg_secure_alloc(size_t size);
/* Zeroes and releases a block of tg_secure_alloc (NULL: nothing). `size` is the size that was asked for. */
void tg_secure_free(void *pointer, size_t size);
/* Bytes handed out now, and the arena's ceiling. */
size_t tg_secure_in_use(void);
size_t tg_secure_capacity(void);
/* 1 when a pointer lies in the arena (tests). */
int tg_secure_contains(const void *pointer);
/* Number of fork() children this process is descended from as seen by the arena (incremented in the atfork
 * child handler): a cache can tell that its entries come from a parent process. */
uint64_t tg_secure_fork_generation(void);

enum { TG_SECURE_MAX_ALLOCATION = 16384 };
#endif
