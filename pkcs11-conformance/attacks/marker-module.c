/*
 * marker-module.c — stands in for a hostile `backend.module` (a PKCS#11 library named by the configuration).
 * Its constructor runs at dlopen and appends "pid" to the file MARKER (a compile-time path): if the file
 * exists after the run, the module under test loaded this library into the caller's process. It offers no
 * C_GetFunctionList, so nothing else of it ever runs.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef MARKER
#error "build with -DMARKER=\"/path/of/marker\""
#endif

__attribute__((constructor)) static void tg_attack_marker(void) {
    int fd = open(MARKER, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    if (n > 0 && write(fd, buf, (size_t)n) < 0) { /* nothing to do */ }
    close(fd);
}
