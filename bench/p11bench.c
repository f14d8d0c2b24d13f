/*
 * p11bench — one benchmark harness for any PKCS#11 module, loaded by path (DESIGN §7: benchmarks are commands).
 *
 *   p11bench --module PATH --token LABEL --pin PIN [--seconds S] [--no-find] [--n2he-k K]
 *   p11bench --module PATH --token LABEL --pin PIN --n2he-peak lwe1|lwe2 [--n2he-k 65536]
 *   p11bench --module PATH --token LABEL --pin PIN --n2he-only [--seconds S] [--n2he-k K]
 *   p11bench --module PATH --token LABEL --pin PIN --keycache-only [--seconds S]   (token keys in turn, random)
 *
 * Prints one `name value` line per figure ("n/a" when the module lacks the mechanism or the step failed;
 * the reason goes to stderr). Every loop is time-boxed (--seconds, default 1.5 s, at least one iteration);
 * nothing here asserts on time. Token objects it creates are labelled "p11bench-*"; use a throwaway token.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CRYPTOKI_GNU 1          /* p11-kit native (lower-case) names */
#include "pkcs11.h"              /* p11-kit's <p11-kit/pkcs11.h> */
#include "tensorguard-pkcs11.h"  /* CKM_TG_N2HE_*, CKA_TG_N2HE_*, CKK_TG_N2HE */
#ifndef CK_TRUE
#define CK_TRUE 1
#define CK_FALSE 0
#endif

static struct ck_function_list *F;
static double g_seconds = 1.5;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long proc_status_kib(const char *key) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long v = -1;
  size_t kl = strlen(key);
  while (fgets(line, sizeof line, f))
    if (strncmp(line, key, kl) == 0 && line[kl] == ':') { v = strtol(line + kl + 1, NULL, 10); break; }
  fclose(f);
  return v;
}

static void out(const char *name, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("%s ", name);
  vprintf(fmt, ap);
  printf("\n");
  fflush(stdout);
  va_end(ap);
}
static void na(const char *name, const char *why, ck_rv_t rv) {
  out(name, "n/a");
  fprintf(stderr, "p11bench: %s: %s (rv 0x%lx)\n", name, why, (unsigned long)rv);
}

static const char *g_label;
static const char *g_pin;
static ck_slot_id_t g_slot;

/* C_Initialize (OS locking), find the token by label, open an R/W session, log in. */
static ck_rv_t open_token(ck_session_handle_t *s) {
  struct ck_c_initialize_args args;
  memset(&args, 0, sizeof args);
  args.flags = CKF_OS_LOCKING_OK;
  ck_rv_t rv = F->C_Initialize(&args);
  if (rv != CKR_OK) return rv;
  unsigned long n = 0;
  if ((rv = F->C_GetSlotList(CK_TRUE, NULL, &n)) != CKR_OK) return rv;
  ck_slot_id_t *slots = calloc(n ? n : 1, sizeof *slots);
  if ((rv = F->C_GetSlotList(CK_TRUE, slots, &n)) != CKR_OK) { free(slots); return rv; }
  int found = 0;
  char want[33];
  memset(want, ' ', 32); want[32] = 0;
  memcpy(want, g_label, strlen(g_label) < 32 ? strlen(g_label) : 32);
  for (unsigned long i = 0; i < n && !found; i++) {
    struct ck_token_info ti;
    if (F->C_GetTokenInfo(slots[i], &ti) == CKR_OK && memcmp(ti.label, want, 32) == 0) { g_slot = slots[i]; found = 1; }
  }
  free(slots);
  if (!found) return CKR_TOKEN_NOT_PRESENT;
  if ((rv = F->C_OpenSession(g_slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, s)) != CKR_OK) return rv;
  return F->C_Login(*s, CKU_USER, (unsigned char *)g_pin, strlen(g_pin));
}

static int has_mech(ck_mechanism_type_t m) {
  unsigned long n = 0;
  if (F->C_GetMechanismList(g_slot, NULL, &n) != CKR_OK || n == 0) return 0;
  ck_mechanism_type_t *l = calloc(n, sizeof *l);
  int ok = 0;
  if (F->C_GetMechanismList(g_slot, l, &n) == CKR_OK)
    for (unsigned long i = 0; i < n; i++) if (l[i] == m) ok = 1;
  free(l);
  return ok;
}

#define ATTR(t, p, l) { (t), (void *)(p), (l) }
static unsigned char T = CK_TRUE, Fl = CK_FALSE;

static ck_rv_t gen_aes(ck_session_handle_t s, int token, const char *label, ck_object_handle_t *h) {
  struct ck_mechanism mech = { CKM_AES_KEY_GEN, NULL, 0 };
  ck_object_class_t cls = CKO_SECRET_KEY;
  ck_key_type_t kt = CKK_AES;
  unsigned long len = 32;
  struct ck_attribute tmpl[] = {
    ATTR(CKA_CLASS, &cls, sizeof cls), ATTR(CKA_KEY_TYPE, &kt, sizeof kt), ATTR(CKA_VALUE_LEN, &len, sizeof len),
    ATTR(CKA_TOKEN, token ? &T : &Fl, 1), ATTR(CKA_ENCRYPT, &T, 1), ATTR(CKA_DECRYPT, &T, 1),
    ATTR(CKA_LABEL, label, strlen(label)),
  };
  return F->C_GenerateKey(s, &mech, tmpl, sizeof tmpl / sizeof *tmpl, h);
}

static ck_rv_t make_data(ck_session_handle_t s, const char *label, ck_object_handle_t *h) {
  ck_object_class_t cls = CKO_DATA;
  static const char value[] = "p11bench filler object";
  struct ck_attribute tmpl[] = {
    ATTR(CKA_CLASS, &cls, sizeof cls), ATTR(CKA_TOKEN, &T, 1), ATTR(CKA_PRIVATE, &Fl, 1),
    ATTR(CKA_LABEL, label, strlen(label)), ATTR(CKA_VALUE, value, sizeof value - 1),
  };
  return F->C_CreateObject(s, tmpl, sizeof tmpl / sizeof *tmpl, h);
}

/* ------------------------------------------------------------------------------------------- standard figures */
static void bench_init_login(void) {
  /* Cold: the first C_Initialize + open + login of this process. Then repeated finalize/initialize cycles. */
  ck_session_handle_t s;
  double t0 = now();
  ck_rv_t rv = open_token(&s);
  double cold = (now() - t0) * 1e3;
  if (rv != CKR_OK) { na("init_open_login_ms", "open_token", rv); exit(2); }
  out("init_open_login_ms", "%.2f", cold);
  F->C_Finalize(NULL);
  double best = 1e30, sum = 0; int n = 0;
  double start = now();
  while (n < 1 || (now() - start < g_seconds && n < 20)) {
    t0 = now();
    if ((rv = open_token(&s)) != CKR_OK) { na("init_open_login_ms_warm", "open_token", rv); break; }
    double ms = (now() - t0) * 1e3;
    sum += ms; n++; if (ms < best) best = ms;
    F->C_Finalize(NULL);
  }
  if (n) out("init_open_login_ms_warm", "%.2f", sum / n);
}

static void bench_keygen_destroy(ck_session_handle_t s) {
  size_t cap = 1 << 16, n = 0;
  ck_object_handle_t *hs = malloc(cap * sizeof *hs);
  ck_rv_t rv = CKR_OK;
  double t0 = now();
  while (n < cap && (n == 0 || now() - t0 < g_seconds)) {
    if ((rv = gen_aes(s, 1, "p11bench-keygen", &hs[n])) != CKR_OK) break;
    n++;
  }
  double dt = now() - t0;
  if (rv != CKR_OK && n == 0) na("aes_keygen_per_s", "C_GenerateKey(CKM_AES_KEY_GEN, token)", rv);
  else out("aes_keygen_per_s", "%.1f", n / dt);
  size_t d = 0;
  t0 = now();
  for (; d < n; d++) if ((rv = F->C_DestroyObject(s, hs[d])) != CKR_OK) break;
  dt = now() - t0;
  if (d == 0) na("destroy_per_s", "C_DestroyObject", rv);
  else out("destroy_per_s", "%.1f", d / dt);
  free(hs);
}

static size_t g_filled = 0;
static void fill_to(ck_session_handle_t s, size_t target, int *ok) {
  char label[64];
  ck_object_handle_t h;
  double t0 = now();
  size_t start = g_filled;
  while (g_filled < target) {
    snprintf(label, sizeof label, "p11bench-fill-%zu", g_filled);
    ck_rv_t rv = make_data(s, label, &h);
    if (rv != CKR_OK) { fprintf(stderr, "p11bench: C_CreateObject filler: rv 0x%lx\n", (unsigned long)rv); *ok = 0; return; }
    g_filled++;
    if (now() - t0 > 300) { fprintf(stderr, "p11bench: filling stopped after 300 s at %zu objects\n", g_filled); *ok = 0; return; }
  }
  if (g_filled > start) out("create_data_object_per_s", "%.1f", (g_filled - start) / (now() - t0));
}

static void bench_find(ck_session_handle_t s, size_t count, const char *name) {
  int ok = 1;
  fill_to(s, count, &ok);
  if (!ok) { na(name, "could not create the filler objects", 0); return; }
  const char *needle = "p11bench-fill-7";   /* exists once among the fillers */
  struct ck_attribute tmpl[] = { ATTR(CKA_LABEL, needle, strlen(needle)) };
  ck_object_handle_t found[4];
  unsigned long nf = 0;
  size_t n = 0;
  ck_rv_t rv = CKR_OK;
  double t0 = now();
  while (n == 0 || now() - t0 < g_seconds) {
    if ((rv = F->C_FindObjectsInit(s, tmpl, 1)) != CKR_OK) break;
    if ((rv = F->C_FindObjects(s, found, 4, &nf)) != CKR_OK) { F->C_FindObjectsFinal(s); break; }
    if ((rv = F->C_FindObjectsFinal(s)) != CKR_OK) break;
    if (nf != 1) { rv = CKR_GENERAL_ERROR; fprintf(stderr, "p11bench: find by label returned %lu objects\n", nf); break; }
    n++;
  }
  double dt = now() - t0;
  if (rv != CKR_OK) na(name, "C_FindObjects by label", rv);
  else out(name, "%.1f", n / dt);
}

static void bench_gcm(ck_session_handle_t s) {
  if (!has_mech(CKM_AES_GCM)) { na("aes_gcm_4k_encrypt_per_s", "CKM_AES_GCM not listed", CKR_MECHANISM_INVALID); return; }
  ck_object_handle_t k;
  ck_rv_t rv = gen_aes(s, 0, "p11bench-gcm", &k);
  if (rv != CKR_OK) { na("aes_gcm_4k_encrypt_per_s", "session AES key", rv); return; }
  unsigned char iv[12] = {0}, pt[4096], ct[4096 + 16];
  memset(pt, 0x5a, sizeof pt);
  struct ck_gcm_params gp = { iv, sizeof iv, sizeof iv * 8, NULL, 0, 128 };
  struct ck_mechanism mech = { CKM_AES_GCM, &gp, sizeof gp };
  size_t n = 0;
  uint64_t ctr = 0;
  double t0 = now();
  while (n == 0 || now() - t0 < g_seconds) {
    ctr++; memcpy(iv, &ctr, sizeof ctr);             /* a fresh IV per message */
    unsigned long cl = sizeof ct;
    if ((rv = F->C_EncryptInit(s, &mech, k)) != CKR_OK) break;
    if ((rv = F->C_Encrypt(s, pt, sizeof pt, ct, &cl)) != CKR_OK) break;
    n++;
  }
  double dt = now() - t0;
  if (rv != CKR_OK) na("aes_gcm_4k_encrypt_per_s", "C_Encrypt(CKM_AES_GCM)", rv);
  else out("aes_gcm_4k_encrypt_per_s", "%.1f", n / dt);
  F->C_DestroyObject(s, k);
}

static void bench_sha256(ck_session_handle_t s) {
  static unsigned char buf[1 << 16];
  memset(buf, 0xa5, sizeof buf);
  struct ck_mechanism mech = { CKM_SHA256, NULL, 0 };
  unsigned char dg[32];
  size_t bytes = 0;
  ck_rv_t rv = CKR_OK;
  double t0 = now();
  while (bytes == 0 || now() - t0 < g_seconds) {
    unsigned long dl = sizeof dg;
    if ((rv = F->C_DigestInit(s, &mech)) != CKR_OK) break;
    for (int i = 0; i < 16 && rv == CKR_OK; i++) rv = F->C_DigestUpdate(s, buf, sizeof buf);   /* 1 MiB */
    if (rv != CKR_OK || (rv = F->C_DigestFinal(s, dg, &dl)) != CKR_OK) break;
    bytes += 16 * sizeof buf;
  }
  double dt = now() - t0;
  if (rv != CKR_OK) na("sha256_mb_per_s", "C_Digest(CKM_SHA256)", rv);
  else out("sha256_mb_per_s", "%.1f", bytes / dt / 1e6);
}

/* -------------------------------------------------------------------------------------------------- N2HE */
/* An N2HE session key with decryption rule `rule` (CKV_TG_N2HE_SEEDED_ONCE, the default, or CKV_TG_N2HE_RAW:
 * the only rule under which LWE1 decrypts). */
static ck_rv_t n2he_key_rule(ck_session_handle_t s, ck_object_handle_t *k, unsigned long rule) {
  struct ck_mechanism mech = { CKM_TG_N2HE_KEY_GEN, NULL, 0 };
  ck_object_class_t cls = CKO_SECRET_KEY;
  ck_key_type_t kt = CKK_TG_N2HE;
  unsigned long dim = 1024, qbits = 32;
  const char *label = "p11bench-n2he";
  struct ck_attribute tmpl[] = {
    ATTR(CKA_CLASS, &cls, sizeof cls), ATTR(CKA_KEY_TYPE, &kt, sizeof kt), ATTR(CKA_TOKEN, &Fl, 1),
    ATTR(CKA_ENCRYPT, &T, 1), ATTR(CKA_DECRYPT, &T, 1), ATTR(CKA_LABEL, label, strlen(label)),
    ATTR(CKA_TG_N2HE_DIMENSION, &dim, sizeof dim), ATTR(CKA_TG_N2HE_MODULUS_BITS, &qbits, sizeof qbits),
    ATTR(CKA_TG_N2HE_DECRYPT_RULE, &rule, sizeof rule),
  };
  return F->C_GenerateKey(s, &mech, tmpl, sizeof tmpl / sizeof *tmpl, k);
}
static ck_rv_t n2he_key(ck_session_handle_t s, ck_object_handle_t *k) { return n2he_key_rule(s, k, CKV_TG_N2HE_RAW); }

/* One size-query-then-fetch C_Encrypt; *ct is (re)allocated. */
static ck_rv_t n2he_encrypt(ck_session_handle_t s, ck_mechanism_type_t m, ck_object_handle_t k,
                            const unsigned char *pt, unsigned long ptlen, unsigned char **ct, unsigned long *ctlen) {
  struct ck_mechanism mech = { m, NULL, 0 };
  ck_rv_t rv = F->C_EncryptInit(s, &mech, k);
  if (rv != CKR_OK) return rv;
  unsigned long need = 0;
  if ((rv = F->C_Encrypt(s, (unsigned char *)pt, ptlen, NULL, &need)) != CKR_OK) return rv;
  if (need > *ctlen || !*ct) { free(*ct); *ct = malloc(need ? need : 1); }
  *ctlen = need;
  return F->C_Encrypt(s, (unsigned char *)pt, ptlen, *ct, ctlen);
}
static ck_rv_t n2he_decrypt(ck_session_handle_t s, ck_mechanism_type_t m, ck_object_handle_t k,
                            unsigned char *ct, unsigned long ctlen, unsigned char *pt, unsigned long *ptlen) {
  struct ck_mechanism mech = { m, NULL, 0 };
  ck_rv_t rv = F->C_DecryptInit(s, &mech, k);
  if (rv != CKR_OK) return rv;
  unsigned long need = 0;
  if ((rv = F->C_Decrypt(s, ct, ctlen, NULL, &need)) != CKR_OK) return rv;
  if (need > *ptlen) return CKR_BUFFER_TOO_SMALL;
  *ptlen = need;
  return F->C_Decrypt(s, ct, ctlen, pt, ptlen);
}

static unsigned char *n2he_plaintext(unsigned long k) {
  unsigned char *pt = malloc(8 * k);
  for (unsigned long i = 0; i < k; i++) { int64_t v = (int64_t)((i * 2654435761u) & 0xffff); memcpy(pt + 8 * i, &v, 8); }
  return pt;
}

/* LWE1 and LWE2 (raw: the SDK's rule, one ciphertext decrypted again and again), and LWE2 under the default rule
 * seeded-once ("lwe2so": every decryption needs a fresh seed, so each timed C_Decrypt gets a new ciphertext made
 * untimed before it; the figure includes the seed ledger's transaction and the smudging). */
static void bench_n2he(ck_session_handle_t s, unsigned long k) {
  static const struct { ck_mechanism_type_t m; const char *name; int seeded_once; } fm[] = {
    { CKM_TG_N2HE_LWE1, "lwe1", 0 }, { CKM_TG_N2HE_LWE2, "lwe2", 0 }, { CKM_TG_N2HE_LWE2, "lwe2so", 1 } };
  char name[96];
  int have = has_mech(CKM_TG_N2HE_KEY_GEN);
  ck_object_handle_t raw_key = 0, so_key = 0;
  ck_rv_t rv = have ? n2he_key(s, &raw_key) : CKR_MECHANISM_INVALID;
  if (rv == CKR_OK) rv = n2he_key_rule(s, &so_key, CKV_TG_N2HE_SEEDED_ONCE);
  for (int f = 0; f < 3; f++) {
    ck_object_handle_t key = fm[f].seeded_once ? so_key : raw_key;
    if (rv != CKR_OK) {
      const char *what[] = { "encrypt_samples_per_s", "decrypt_samples_per_s", "encrypt_ns_per_entry",
                             "decrypt_ns_per_entry", "ct_bytes_per_sample" };
      for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "n2he_%s_%s", fm[f].name, what[i]);
        na(name, have ? "C_GenerateKey(CKM_TG_N2HE_KEY_GEN)" : "CKM_TG_N2HE_KEY_GEN not listed", rv);
      }
      continue;
    }
    unsigned char *pt = n2he_plaintext(k), *ct = NULL, *back = malloc(8 * k);
    unsigned long ctlen = 0, n = 0;
    ck_rv_t r = CKR_OK;
    /* Best single call within the time box: the same statistic as the numpy reference's best of its repeats,
     * and robust against the other processes of a shared machine. */
    double t0 = now(), dt = 1e30;
    while (n == 0 || now() - t0 < g_seconds) {
      double c0 = now();
      if ((r = n2he_encrypt(s, fm[f].m, key, pt, 8 * k, &ct, &ctlen)) != CKR_OK) break;
      double c = now() - c0;
      if (c < dt) dt = c;
      n++;
    }
    snprintf(name, sizeof name, "n2he_%s_encrypt_samples_per_s", fm[f].name);
    if (r != CKR_OK) { na(name, "C_Encrypt", r); free(pt); free(ct); free(back); continue; }
    out(name, "%.1f", (double)k / dt);
    snprintf(name, sizeof name, "n2he_%s_encrypt_ns_per_entry", fm[f].name);
    out(name, "%.3f", dt * 1e9 / ((double)k * 1024));
    snprintf(name, sizeof name, "n2he_%s_ct_bytes_per_sample", fm[f].name);
    out(name, "%.1f", (double)ctlen / k);
    n = 0;
    t0 = now();
    dt = 1e30;
    while (n == 0 || now() - t0 < g_seconds) {
      unsigned long bl = 8 * k;
      if (fm[f].seeded_once && n > 0 && (r = n2he_encrypt(s, fm[f].m, key, pt, 8 * k, &ct, &ctlen)) != CKR_OK) break;
      double c0 = now();
      if ((r = n2he_decrypt(s, fm[f].m, key, ct, ctlen, back, &bl)) != CKR_OK) break;
      double c = now() - c0;
      if (c < dt) dt = c;
      if (n == 0 && (bl != 8 * k || memcmp(back, pt, 8 * k) != 0)) {
        fprintf(stderr, "p11bench: N2HE %s round trip mismatch\n", fm[f].name); r = CKR_GENERAL_ERROR; break;
      }
      n++;
    }
    snprintf(name, sizeof name, "n2he_%s_decrypt_samples_per_s", fm[f].name);
    if (r != CKR_OK) na(name, "C_Decrypt", r); else out(name, "%.1f", (double)k / dt);
    snprintf(name, sizeof name, "n2he_%s_decrypt_ns_per_entry", fm[f].name);
    if (r != CKR_OK) out(name, "n/a"); else out(name, "%.3f", dt * 1e9 / ((double)k * 1024));
    free(pt); free(ct); free(back);
  }
}

static void bench_n2he_peak(ck_session_handle_t s, const char *fmt, unsigned long k) {
  char name[64];
  snprintf(name, sizeof name, "n2he_%s_peak_rss_kib_k%lu", fmt, k);
  ck_mechanism_type_t m = strcmp(fmt, "lwe1") == 0 ? CKM_TG_N2HE_LWE1 : CKM_TG_N2HE_LWE2;
  if (!has_mech(CKM_TG_N2HE_KEY_GEN)) { na(name, "CKM_TG_N2HE_KEY_GEN not listed", CKR_MECHANISM_INVALID); return; }
  ck_object_handle_t key;
  ck_rv_t rv = n2he_key(s, &key);
  if (rv != CKR_OK) { na(name, "C_GenerateKey(CKM_TG_N2HE_KEY_GEN)", rv); return; }
  unsigned char *pt = n2he_plaintext(k), *ct = NULL, *back = malloc(8 * k);
  unsigned long ctlen = 0, bl = 8 * k;
  long before = proc_status_kib("VmHWM");
  if ((rv = n2he_encrypt(s, m, key, pt, 8 * k, &ct, &ctlen)) != CKR_OK) { na(name, "C_Encrypt", rv); return; }
  if ((rv = n2he_decrypt(s, m, key, ct, ctlen, back, &bl)) != CKR_OK) { na(name, "C_Decrypt", rv); return; }
  if (bl != 8 * k || memcmp(back, pt, 8 * k) != 0) { na(name, "round trip mismatch", 0); return; }
  out(name, "%ld", proc_status_kib("VmHWM"));
  snprintf(name, sizeof name, "n2he_%s_ct_mib_k%lu", fmt, k);
  out(name, "%.1f", ctlen / 1048576.0);
  (void)before;
  free(pt); free(ct); free(back);
}

/* ------------------------------------------------------- keycache figures (issue 10): token keys, random */
/* 300 token AES-256 keys (CKA_TOKEN=TRUE, ENCRYPT/DECRYPT only: our module refuses mixed roles), each call
 * C_EncryptInit on the next key in turn + C_Encrypt of 4 KiB under CKM_AES_GCM. Destroys its keys after. */
#define KEYCACHE_KEYS 300
static void bench_token_keys_in_turn(ck_session_handle_t s) {
  const char *name = "aes_gcm_4k_token_keys_in_turn_per_s";
  if (!has_mech(CKM_AES_GCM)) { na(name, "CKM_AES_GCM not listed", CKR_MECHANISM_INVALID); return; }
  static ck_object_handle_t keys[KEYCACHE_KEYS];
  int made = 0;
  ck_rv_t rv = CKR_OK;
  for (; made < KEYCACHE_KEYS; made++) {
    char label[48];
    snprintf(label, sizeof label, "p11bench-turn-%d", made);
    if ((rv = gen_aes(s, 1, label, &keys[made])) != CKR_OK) break;
  }
  if (rv != CKR_OK) { na(name, "token AES key generation", rv); goto done; }
  /* Log in afresh: the keys are then stored objects of the token, not values this login just made. */
  F->C_Logout(s);
  if ((rv = F->C_Login(s, CKU_USER, (unsigned char *)g_pin, strlen(g_pin))) != CKR_OK) { na(name, "C_Login", rv); goto done; }
  for (int i = 0; i < made; i++) {   /* handles again, by label (a module may renew them at login) */
    char label[48];
    snprintf(label, sizeof label, "p11bench-turn-%d", i);
    struct ck_attribute ft[] = { ATTR(CKA_LABEL, label, strlen(label)) };
    unsigned long got = 0;
    if ((rv = F->C_FindObjectsInit(s, ft, 1)) != CKR_OK) break;
    rv = F->C_FindObjects(s, &keys[i], 1, &got);
    F->C_FindObjectsFinal(s);
    if (rv == CKR_OK && got != 1) rv = CKR_OBJECT_HANDLE_INVALID;
    if (rv != CKR_OK) break;
  }
  if (rv != CKR_OK) { na(name, "C_FindObjects of the token keys after login", rv); goto done; }
  unsigned char iv[12] = {0}, pt[4096], ct[4096 + 16];
  memset(pt, 0x5a, sizeof pt);
  struct ck_gcm_params gp = { iv, sizeof iv, sizeof iv * 8, NULL, 0, 128 };
  struct ck_mechanism mech = { CKM_AES_GCM, &gp, sizeof gp };
  size_t n = 0;
  uint64_t ctr = 0;
  double t0 = now();
  while (n < KEYCACHE_KEYS || now() - t0 < g_seconds) {   /* at least one round over every key */
    ctr++; memcpy(iv, &ctr, sizeof ctr);
    unsigned long cl = sizeof ct;
    if ((rv = F->C_EncryptInit(s, &mech, keys[n % KEYCACHE_KEYS])) != CKR_OK) break;
    if ((rv = F->C_Encrypt(s, pt, sizeof pt, ct, &cl)) != CKR_OK) break;
    n++;
  }
  double dt = now() - t0;
  if (rv != CKR_OK) na(name, "C_EncryptInit/C_Encrypt(CKM_AES_GCM) on a token key", rv);
  else out(name, "%.1f", n / dt);
done:
  for (int i = 0; i < made; i++) F->C_DestroyObject(s, keys[i]);
}

/* C_GenerateRandom of 32 bytes per call. */
static void bench_random32(ck_session_handle_t s) {
  const char *name = "generate_random_32_per_s";
  unsigned char buf[32];
  size_t n = 0;
  ck_rv_t rv = CKR_OK;
  double t0 = now();
  while (n == 0 || (n % 256 != 0) || now() - t0 < g_seconds) {
    if ((rv = F->C_GenerateRandom(s, buf, sizeof buf)) != CKR_OK) break;
    n++;
  }
  double dt = now() - t0;
  if (rv != CKR_OK) na(name, "C_GenerateRandom(32)", rv);
  else out(name, "%.1f", n / dt);
}

static void bench_keycache(ck_session_handle_t s) {
  bench_token_keys_in_turn(s);
  bench_random32(s);
}
/* --------------------------------------------------------------------------------- end of keycache figures */

static void usage(void) {
  fprintf(stderr, "usage: p11bench --module PATH --token LABEL --pin PIN [--seconds S] [--no-find] [--n2he-k K]\n"
                  "       p11bench --module PATH --token LABEL --pin PIN --n2he-peak lwe1|lwe2 [--n2he-k 65536]\n"
                  "       p11bench --module PATH --token LABEL --pin PIN --n2he-only [--seconds S] [--n2he-k K]\n"
                  "       p11bench --module PATH --token LABEL --pin PIN --keycache-only [--seconds S]\n");
  exit(64);
}

int main(int argc, char **argv) {
  const char *module = NULL, *peak = NULL;
  int do_find = 1, n2he_only = 0, keycache_only = 0;
  unsigned long k = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--module") && i + 1 < argc) module = argv[++i];
    else if (!strcmp(argv[i], "--token") && i + 1 < argc) g_label = argv[++i];
    else if (!strcmp(argv[i], "--pin") && i + 1 < argc) g_pin = argv[++i];
    else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) g_seconds = atof(argv[++i]);
    else if (!strcmp(argv[i], "--n2he-k") && i + 1 < argc) k = strtoul(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--n2he-peak") && i + 1 < argc) peak = argv[++i];
    else if (!strcmp(argv[i], "--no-find")) do_find = 0;
    else if (!strcmp(argv[i], "--n2he-only")) n2he_only = 1;
    else if (!strcmp(argv[i], "--keycache-only")) keycache_only = 1;
    else usage();
  }
  if (!module || !g_label || !g_pin) usage();
  if (peak && strcmp(peak, "lwe1") && strcmp(peak, "lwe2")) usage();
  if (g_seconds <= 0) g_seconds = 1.5;

  long rss0 = proc_status_kib("VmRSS");
  void *lib = dlopen(module, RTLD_NOW | RTLD_LOCAL);
  if (!lib) { fprintf(stderr, "p11bench: dlopen %s: %s\n", module, dlerror()); return 2; }
  ck_rv_t (*get)(struct ck_function_list **) = (ck_rv_t (*)(struct ck_function_list **))dlsym(lib, "C_GetFunctionList");
  if (!get || get(&F) != CKR_OK || !F) { fprintf(stderr, "p11bench: C_GetFunctionList missing or failed\n"); return 2; }

  ck_session_handle_t s;
  if (peak) {
    ck_rv_t rv = open_token(&s);
    if (rv != CKR_OK) { fprintf(stderr, "p11bench: open token: rv 0x%lx\n", (unsigned long)rv); return 2; }
    bench_n2he_peak(s, peak, k ? k : 65536);
    F->C_Finalize(NULL);
    return 0;
  }
  if (n2he_only) {
    ck_rv_t rv = open_token(&s);
    if (rv != CKR_OK) { fprintf(stderr, "p11bench: open token: rv 0x%lx\n", (unsigned long)rv); return 2; }
    bench_n2he(s, k ? k : 4096);
    F->C_Finalize(NULL);
    return 0;
  }
  if (keycache_only) {
    ck_rv_t rv = open_token(&s);
    if (rv != CKR_OK) { fprintf(stderr, "p11bench: open token: rv 0x%lx\n", (unsigned long)rv); return 2; }
    bench_keycache(s);
    F->C_Logout(s);
    F->C_Finalize(NULL);
    return 0;
  }
  bench_init_login();
  ck_rv_t rv = open_token(&s);
  if (rv != CKR_OK) { fprintf(stderr, "p11bench: open token: rv 0x%lx\n", (unsigned long)rv); return 2; }
  long rss1 = proc_status_kib("VmRSS");
  out("rss_after_open_kib", "%ld", rss1);
  out("rss_module_delta_kib", "%ld", rss1 - rss0);
  bench_keygen_destroy(s);
  bench_gcm(s);
  bench_keycache(s);
  bench_sha256(s);
  if (do_find) { bench_find(s, 1000, "find_by_label_per_s_1k"); bench_find(s, 10000, "find_by_label_per_s_10k"); }
  bench_n2he(s, k ? k : 4096);
  out("rss_end_kib", "%ld", proc_status_kib("VmRSS"));
  F->C_Logout(s);
  F->C_Finalize(NULL);
  return 0;
}
