/* Reading a pointer the caller gave us without trusting it: C_Initialize's pReserved is documented as "reserved,
 * NULL" yet p11-kit passes a configuration string in it (x-init-reserved) and conformance suites pass garbage such
 * as (void *)1. Dereferencing garbage would kill the host with SIGSEGV, so the string is copied with
 * process_vm_readv(2) on our own process, one page at a time: the kernel reports an unmapped page as EFAULT
 * instead of faulting. Where process_vm_readv is not permitted (some seccomp profiles), write(2) into a pipe
 * serves the same purpose (it too answers EFAULT). */
#define _GNU_SOURCE
#include "CPKCS11.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* Copies `len` bytes at `src` to `dst` if every byte is readable; 0 on success, -1 otherwise. `len` never spans a
 * page boundary (the caller splits at pages), so the copy is all or nothing. */
static int copy_readable(void *dst, const void *src, size_t len) {
    struct iovec local = { dst, len };
    struct iovec remote = { (void *)src, len };
    ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    if (n == (ssize_t)len) return 0;
    if (n >= 0 || errno == EFAULT || errno == ESRCH) return -1;
    /* ENOSYS / EPERM: fall back to a pipe. */
    int fds[2];
    if (pipe(fds) != 0) return -1;
    int rc = -1;
    if (write(fds[1], src, len) == (ssize_t)len && read(fds[0], dst, len) == (ssize_t)len) rc = 0;
    close(fds[0]);
    close(fds[1]);
    return rc;
}

int tg_copy_caller_string(const void *src, char *dst, size_t capacity, size_t *length) {
    if (!src || !dst || capacity == 0 || !length) return TG_CALLER_STRING_UNREADABLE;
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0) page = 4096;
    size_t copied = 0;
    uintptr_t address = (uintptr_t)src;
    while (copied < capacity) {
        size_t to_page_end = (size_t)page - (size_t)((address + copied) % (uintptr_t)page);
        size_t chunk = capacity - copied < to_page_end ? capacity - copied : to_page_end;
        if (copy_readable(dst + copied, (const void *)(address + copied), chunk) != 0) return TG_CALLER_STRING_UNREADABLE;
        void *nul = memchr(dst + copied, 0, chunk);
        if (nul) {
            *length = (size_t)((char *)nul - dst);
            return TG_CALLER_STRING_OK;
        }
        copied += chunk;
    }
    return TG_CALLER_STRING_TOO_LONG;
}
