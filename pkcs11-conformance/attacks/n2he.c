/*
 * n2he.c — the N2HE scheme of ../shared/N2HE-SPEC.md, written from the spec (not from the module's sources):
 * SeedSequence + PCG64 expansion of LWE2's A (§3), the LWE1 / LWE2 byte layouts (§2), the seeded sum LWS1
 * (/work/notes/spec17.md, docs/n2he.md) and the SDK's decryption rule. tg_n2he_selftest checks the spec's
 * known answers, so a case that "recovers" a key is judged by code that is itself checked.
 */
#include "attacks.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t tg_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

void tg_put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- SeedSequence (numpy, pool size 4) ------------------------------------------------------------ */

#define INIT_A 0x43b0d7e5u
#define MULT_A 0x931e8875u
#define INIT_B 0x8b51f9ddu
#define MULT_B 0x58f38dedu
#define MIX_MULT_L 0xca01f9ddu
#define MIX_MULT_R 0x4973f715u

static uint32_t hashmix(uint32_t v, uint32_t *h) {
    v ^= *h;
    *h *= MULT_A;
    v *= *h;
    v ^= v >> 16;
    return v;
}

static uint32_t mix(uint32_t x, uint32_t y) {
    uint32_t r = MIX_MULT_L * x - MIX_MULT_R * y;
    r ^= r >> 16;
    return r;
}

static const unsigned __int128 PCG_MULT =
    ((unsigned __int128)0x2360ED051FC65DA4ull << 64) | 0x4385DF649FCCF645ull;

/* The 128-bit SeedSequence pool a seed leads to (everything PCG64's state and increment are derived from). */
static void seed_pool(const uint8_t seed[32], uint32_t pool[4]) {
    uint32_t E[8];
    for (int i = 0; i < 8; i++) {
        const uint8_t *p = seed + 32 - 4 * (i + 1);
        E[i] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    }
    int nE = 8;
    while (nE > 1 && E[nE - 1] == 0) nE--;
    uint32_t h = INIT_A;
    for (int i = 0; i < 4; i++) pool[i] = hashmix(i < nE ? E[i] : 0, &h);
    for (int src = 0; src < 4; src++)
        for (int dst = 0; dst < 4; dst++)
            if (src != dst) pool[dst] = mix(pool[dst], hashmix(pool[src], &h));
    for (int src = 4; src < nE; src++)
        for (int dst = 0; dst < 4; dst++) pool[dst] = mix(pool[dst], hashmix(E[src], &h));
}

static uint32_t inv32odd(uint32_t a) {
    uint32_t x = a;
    for (int i = 0; i < 5; i++) x *= 2 - a * x;
    return x;
}

/* hashmix number c (0-based) of the pool mixing uses XOR constant INIT_A*MULT_A^c and multiplier INIT_A*MULT_A^(c+1). */
static uint32_t hconst(int c) {
    uint32_t h = INIT_A;
    for (int i = 0; i < c; i++) h *= MULT_A;
    return h;
}

static uint32_t hashmix_at(uint32_t v, int c) {
    uint32_t h = hconst(c);
    return hashmix(v, &h);
}

static uint32_t unhashmix_at(uint32_t v, int c) {
    v ^= v >> 16;                       /* xorshift by 16 on 32 bits is its own inverse */
    v *= inv32odd(hconst(c + 1));
    return v ^ hconst(c);
}

static uint32_t unmix(uint32_t r, uint32_t y) {   /* the x with mix(x, y) = r */
    r ^= r >> 16;
    return (r + MIX_MULT_R * y) * inv32odd(MIX_MULT_L);
}

int tg_seed_alias(const uint8_t seed[32], uint32_t w4, uint8_t out[32]) {
    if (w4 == 0) return -1;
    uint32_t pool[4];
    seed_pool(seed, pool);
    /* Undo the mixing of a fifth entropy word w4 (hashmix calls 16..19), then the cross-mixing (calls 4..15, in
     * reverse), then the first four hashmixes (calls 0..3): the five-word seed w4:E3:E2:E1:E0 has this pool. */
    for (int dst = 3; dst >= 0; dst--) pool[dst] = unmix(pool[dst], hashmix_at(w4, 16 + dst));
    int c = 15;
    for (int src = 3; src >= 0; src--)
        for (int dst = 3; dst >= 0; dst--)
            if (src != dst) {
                pool[dst] = unmix(pool[dst], hashmix_at(pool[src], c));
                c--;
            }
    uint32_t E[5];
    for (int i = 0; i < 4; i++) E[i] = unhashmix_at(pool[i], i);
    E[4] = w4;
    memset(out, 0, 32);
    for (int i = 0; i < 5; i++) {
        uint8_t *p = out + 32 - 4 * (i + 1);
        p[0] = (uint8_t)(E[i] >> 24); p[1] = (uint8_t)(E[i] >> 16); p[2] = (uint8_t)(E[i] >> 8); p[3] = (uint8_t)E[i];
    }
    uint32_t check[4];
    seed_pool(out, check);
    uint32_t orig[4];
    seed_pool(seed, orig);
    return memcmp(check, orig, sizeof check) == 0 && memcmp(out, seed, 32) != 0 ? 0 : -1;
}

void tg_pcg64_seed(tg_pcg64 *g, const uint8_t seed[32]) {
    /* Entropy words: the big-endian integer split into 32-bit words, least significant first, minimal length. */
    uint32_t E[8];
    for (int i = 0; i < 8; i++) {
        const uint8_t *p = seed + 32 - 4 * (i + 1);
        E[i] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    }
    int nE = 8;
    while (nE > 1 && E[nE - 1] == 0) nE--;
    uint32_t pool[4], h = INIT_A;
    for (int i = 0; i < 4; i++) pool[i] = hashmix(i < nE ? E[i] : 0, &h);
    for (int src = 0; src < 4; src++)
        for (int dst = 0; dst < 4; dst++)
            if (src != dst) pool[dst] = mix(pool[dst], hashmix(pool[src], &h));
    for (int src = 4; src < nE; src++)
        for (int dst = 0; dst < 4; dst++) pool[dst] = mix(pool[dst], hashmix(E[src], &h));
    /* generate_state(4, uint64) */
    uint32_t w[8], hb = INIT_B;
    for (int i = 0; i < 8; i++) {
        uint32_t v = pool[i % 4] ^ hb;
        hb *= MULT_B;
        v *= hb;
        v ^= v >> 16;
        w[i] = v;
    }
    uint64_t s64[4];
    for (int j = 0; j < 4; j++) s64[j] = (uint64_t)w[2 * j] | (uint64_t)w[2 * j + 1] << 32;
    unsigned __int128 initstate = (unsigned __int128)s64[0] << 64 | s64[1];
    unsigned __int128 initseq = (unsigned __int128)s64[2] << 64 | s64[3];
    g->inc = (initseq << 1) | 1;
    g->state = 0;
    g->state = g->state * PCG_MULT + g->inc;
    g->state += initstate;
    g->state = g->state * PCG_MULT + g->inc;
    g->have_half = 0;
    g->half = 0;
}

uint64_t tg_pcg64_next64(tg_pcg64 *g) {
    g->state = g->state * PCG_MULT + g->inc;
    uint64_t x = (uint64_t)(g->state >> 64) ^ (uint64_t)g->state;
    unsigned rot = (unsigned)(g->state >> 122);
    return (x >> rot) | (x << ((64 - rot) & 63));
}

uint64_t tg_pcg64_entry(tg_pcg64 *g, int logq) {
    if (logq == 32) {
        if (g->have_half) {
            g->have_half = 0;
            return g->half;
        }
        uint64_t v = tg_pcg64_next64(g);
        g->half = (uint32_t)(v >> 32);
        g->have_half = 1;
        return (uint32_t)v;
    }
    return tg_pcg64_next64(g) >> (64 - logq);
}

void tg_expand(const uint8_t seed[32], size_t k, size_t n, int logq, uint64_t *out) {
    tg_pcg64 g;
    tg_pcg64_seed(&g, seed);
    for (size_t i = 0; i < k * n; i++) out[i] = tg_pcg64_entry(&g, logq);
}

void tg_expand_dots(const uint8_t seed[32], size_t k, size_t n, int logq, const int8_t *s, uint64_t *dots) {
    tg_pcg64 g;
    tg_pcg64_seed(&g, seed);
    uint64_t mask = (logq == 64) ? ~0ull : ((1ull << logq) - 1);
    if (logq == 32 && n % 2 == 0) {
        /* Fast path: two entries per next64, rows start on a fresh next64 when n is even. */
        for (size_t r = 0; r < k; r++) {
            uint64_t acc = 0;
            for (size_t j = 0; j < n; j += 2) {
                uint64_t v = tg_pcg64_next64(&g);
                acc += (uint64_t)(int64_t)s[j] * (uint32_t)v;
                acc += (uint64_t)(int64_t)s[j + 1] * (v >> 32);
            }
            dots[r] = acc & mask;
        }
        return;
    }
    for (size_t r = 0; r < k; r++) {
        uint64_t acc = 0;
        for (size_t j = 0; j < n; j++) acc += (uint64_t)(int64_t)s[j] * tg_pcg64_entry(&g, logq);
        dots[r] = acc & mask;
    }
}

int64_t tg_center(uint64_t x, int logq) {
    uint64_t q = 1ull << logq;
    x &= q - 1;
    return x > q / 2 ? (int64_t)x - (int64_t)q : (int64_t)x;
}

uint64_t tg_decode(uint64_t b, uint64_t dot, int logq, int logt) {
    int64_t c = tg_center(b - dot, logq);
    int shift = logq - logt;
    int64_t delta = (int64_t)1 << shift;
    int64_t fl = c >> shift;            /* floor (arithmetic shift) */
    int64_t r = c - fl * delta;         /* in [0, delta) */
    if (r > delta / 2 || (r == delta / 2 && (fl & 1))) fl++;
    return (uint64_t)fl & ((1ull << logt) - 1);
}

/* ---- byte layouts ----------------------------------------------------------------------------------- */

uint8_t *tg_lwe1_build(const uint64_t *A, const uint64_t *B, uint32_t k, uint32_t n, int batch, size_t *len) {
    size_t nb = batch ? k : 1;
    size_t sz = 13 + 8 * (size_t)k * n + 8 * nb;
    uint8_t *p = malloc(sz);
    if (!p) return NULL;
    memcpy(p, "LWE1", 4);
    put_le32(p + 4, k);
    put_le32(p + 8, n);
    p[12] = batch ? 1 : 0;
    for (size_t i = 0; i < (size_t)k * n; i++) tg_put_le64(p + 13 + 8 * i, A[i]);
    for (size_t i = 0; i < nb; i++) tg_put_le64(p + 13 + 8 * (size_t)k * n + 8 * i, B[i]);
    *len = sz;
    return p;
}

uint8_t *tg_lwe2_build(const uint8_t seed[32], const uint64_t *B, uint32_t k, uint32_t n, size_t *len) {
    size_t sz = 45 + 8 * (size_t)k;
    uint8_t *p = malloc(sz);
    if (!p) return NULL;
    memcpy(p, "LWE2", 4);
    put_le32(p + 4, k);
    put_le32(p + 8, n);
    p[12] = 0x03;
    memcpy(p + 13, seed, 32);
    for (size_t i = 0; i < k; i++) tg_put_le64(p + 45 + 8 * i, B[i]);
    *len = sz;
    return p;
}

uint8_t *tg_lws1_build(const uint8_t (*seeds)[32], uint32_t m, const uint64_t *B, uint32_t k, uint32_t n, size_t *len) {
    size_t sz = 17 + 32 * (size_t)m + 8 * (size_t)k;
    uint8_t *p = malloc(sz);
    if (!p) return NULL;
    memcpy(p, "LWS1", 4);
    put_le32(p + 4, k);
    put_le32(p + 8, n);
    p[12] = k == 1 ? 0x02 : 0x03;
    put_le32(p + 13, m);
    for (uint32_t i = 0; i < m; i++) memcpy(p + 17 + 32 * (size_t)i, seeds[i], 32);
    for (size_t i = 0; i < k; i++) tg_put_le64(p + 17 + 32 * (size_t)m + 8 * i, B[i]);
    *len = sz;
    return p;
}

int tg_lwe2_parse(const uint8_t *ct, size_t len, uint8_t seed[32], uint32_t *k, uint32_t *n, uint64_t **B) {
    if (len < 53 || memcmp(ct, "LWE2", 4) != 0) return -1;
    uint32_t kk = le32(ct + 4), nn = le32(ct + 8);
    uint8_t flags = ct[12];
    size_t nb = (flags & 1) ? kk : 1;
    if (!(flags & 2) || len != 45 + 8 * nb) return -1;
    memcpy(seed, ct + 13, 32);
    uint64_t *b = malloc(8 * nb);
    if (!b) return -1;
    for (size_t i = 0; i < nb; i++) b[i] = tg_le64(ct + 45 + 8 * i);
    *k = kk;
    *n = nn;
    *B = b;
    return 0;
}

int tg_lwe2_decrypt_local(const uint8_t *ct, size_t len, const int8_t *s, uint32_t n, int logq, int logt,
                          uint64_t *out, uint32_t maxk) {
    uint8_t seed[32];
    uint32_t k, nn;
    uint64_t *B;
    if (tg_lwe2_parse(ct, len, seed, &k, &nn, &B) != 0) return -1;
    if (nn != n || k > maxk) {
        free(B);
        return -1;
    }
    uint64_t *dots = malloc(8 * (size_t)k);
    if (!dots) {
        free(B);
        return -1;
    }
    tg_expand_dots(seed, k, n, logq, s, dots);
    for (uint32_t r = 0; r < k; r++) out[r] = tg_decode(B[r], dots[r], logq, logt);
    free(dots);
    free(B);
    return (int)k;
}

/* ---- known answers (N2HE-SPEC.md §3) ----------------------------------------------------------------- */

static int hex_eq(const uint8_t *b, size_t n, const char *hex) {
    char buf[2 * 512 + 1];
    if (2 * n + 1 > sizeof buf) return 0;
    for (size_t i = 0; i < n; i++) snprintf(buf + 2 * i, 3, "%02x", b[i]);
    return strcmp(buf, hex) == 0;
}

int tg_n2he_selftest(char *why, size_t whylen) {
    uint8_t seed[32];
    for (int i = 0; i < 32; i++) seed[i] = (uint8_t)i;
    static const uint64_t p32[4] = {4039686930u, 2162238391u, 2998903572u, 426028264u};
    static const uint64_t p48[4] = {141704455254216ull, 27920188355263ull, 219975270519569ull, 92638865661845ull};
    static const char *sha32 = "77627ccd17df77a03232e3e852a0328a03c1b3ad4f33cb421d0b972f553f218c";
    static const char *sha48 = "f0c909c7dceec9e043e03c6aec72d175c799c1a1949601d2d4ad0f93a30077a7";
    uint64_t *A = malloc(8 * 1024);
    uint8_t *le = malloc(8 * 1024);
    if (!A || !le) return -1;
    for (int qi = 0; qi < 2; qi++) {
        int logq = qi ? 48 : 32;
        tg_expand(seed, 1, 1024, logq, A);
        for (int i = 0; i < 4; i++)
            if (A[i] != (qi ? p48 : p32)[i]) {
                snprintf(why, whylen, "expansion prefix q=2^%d entry %d: %llu", logq, i, (unsigned long long)A[i]);
                free(A); free(le);
                return -1;
            }
        for (int i = 0; i < 1024; i++) tg_put_le64(le + 8 * i, A[i]);
        uint8_t d[32];
        SHA256(le, 8 * 1024, d);
        if (!hex_eq(d, 32, qi ? sha48 : sha32)) {
            snprintf(why, whylen, "SHA-256 of A (q=2^%d) differs from the spec", logq);
            free(A); free(le);
            return -1;
        }
    }
    free(A);
    free(le);

    /* TV1: LWE2, n = 16, k = 3. */
    {
        static const int8_t s[16] = {1, 0, -1, 1, -1, 0, 0, 1, -1, -1, 1, 0, 1, 0, -1, 1};
        static const uint64_t m[3] = {1, 42, 65535};
        static const int64_t e[3] = {0, 1, -1};
        static const char *bytes =
            "4c574532030000001000000003000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
            "62fc531000000000c1bcabc900000000b16a592c00000000";
        uint64_t dots[3], B[3];
        tg_expand_dots(seed, 3, 16, 32, s, dots);
        for (int r = 0; r < 3; r++) B[r] = (dots[r] + (uint64_t)e[r] + (m[r] << 16)) & 0xffffffffu;
        size_t len;
        uint8_t *ct = tg_lwe2_build(seed, B, 3, 16, &len);
        int ok = ct && hex_eq(ct, len, bytes);
        uint64_t out[3];
        if (ok) ok = tg_lwe2_decrypt_local(ct, len, s, 16, 32, 16, out, 3) == 3 && out[0] == 1 && out[1] == 42 &&
                     out[2] == 65535;
        free(ct);
        if (!ok) {
            snprintf(why, whylen, "TV1 (LWE2) bytes or decryption differ from the spec");
            return -1;
        }
    }
    /* TV2: LWE1, n = 4, k = 2. */
    {
        static const int8_t s[4] = {1, -1, 0, 1};
        static const uint64_t A2[8] = {1, 2, 3, 4, 4294967295u, 0, 123456789, 7};
        static const uint64_t B2[2] = {458757, 4259840003u};
        static const char *bytes =
            "4c5745310200000004000000010100000000000000020000000000000003000000000000000400000000000000ffffffff"
            "00000000000000000000000015cd5b0700000000070000000000000005000700000000000300e8fd00000000";
        size_t len;
        uint8_t *ct = tg_lwe1_build(A2, B2, 2, 4, 1, &len);
        int ok = ct && hex_eq(ct, len, bytes);
        free(ct);
        for (int r = 0; r < 2 && ok; r++) {
            uint64_t dot = 0;
            for (int j = 0; j < 4; j++) dot += (uint64_t)(int64_t)s[j] * A2[4 * r + j];
            uint64_t mm = tg_decode(B2[r], dot, 32, 16);
            if (mm != (r ? 65000u : 7u)) ok = 0;
        }
        if (!ok) {
            snprintf(why, whylen, "TV2 (LWE1) bytes or decryption differ from the spec");
            return -1;
        }
    }
    return 0;
}
