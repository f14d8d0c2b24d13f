/*
 * footprint — what a PKCS#11 module costs the process that loads it (issue 10), one figure per run:
 *
 *   footprint --module PATH rss     RSS added by dlopen + C_Initialize + C_OpenSession on the first slot with a
 *                                   token (KiB, from /proc/self/statm before dlopen and after the session)
 *   footprint --module PATH time    wall time of dlopen + C_GetFunctionList + C_Initialize + C_Finalize + dlclose
 *                                   (microseconds)
 *
 * Run it in a fresh process for each sample (bench/run.sh takes the median of several): the figures are what a
 * p11-kit consumer pays once per process. Prints the number on stdout; errors go to stderr with exit 1.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CRYPTOKI_GNU 1
#include "pkcs11.h"

static long rss_kib(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long size = 0, resident = -1;
  if (!f) return -1;
  if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = -1;
  fclose(f);
  return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static struct ck_function_list *load(const char *path, void **handle) {
  *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!*handle) { fprintf(stderr, "footprint: dlopen: %s\n", dlerror()); exit(1); }
  ck_rv_t (*get)(struct ck_function_list **) = (ck_rv_t (*)(struct ck_function_list **))dlsym(*handle, "C_GetFunctionList");
  struct ck_function_list *f = NULL;
  if (!get || get(&f) != CKR_OK || !f) { fprintf(stderr, "footprint: C_GetFunctionList failed\n"); exit(1); }
  ck_rv_t rv = f->C_Initialize(NULL);
  if (rv != CKR_OK) { fprintf(stderr, "footprint: C_Initialize 0x%lx\n", rv); exit(1); }
  return f;
}

int main(int argc, char **argv) {
  if (argc != 4 || strcmp(argv[1], "--module") != 0 || (strcmp(argv[3], "rss") != 0 && strcmp(argv[3], "time") != 0)) {
    fprintf(stderr, "usage: footprint --module PATH rss|time\n");
    return 2;
  }
  void *handle;
  if (strcmp(argv[3], "time") == 0) {
    double t0 = now_us();
    struct ck_function_list *f = load(argv[2], &handle);
    f->C_Finalize(NULL);
    dlclose(handle);
    printf("%.0f\n", now_us() - t0);
    return 0;
  }
  long before = rss_kib();
  struct ck_function_list *f = load(argv[2], &handle);
  ck_slot_id_t slots[16];
  unsigned long n = 16;
  ck_rv_t rv = f->C_GetSlotList(1, slots, &n);
  if (rv != CKR_OK || n == 0) { fprintf(stderr, "footprint: no slot with a token (0x%lx)\n", rv); return 1; }
  ck_session_handle_t s;
  rv = f->C_OpenSession(slots[0], CKF_SERIAL_SESSION, NULL, NULL, &s);
  if (rv != CKR_OK) { fprintf(stderr, "footprint: C_OpenSession 0x%lx\n", rv); return 1; }
  long after = rss_kib();
  printf("%ld\n", after - before);
  f->C_CloseSession(s);
  f->C_Finalize(NULL);
  return 0;
}
