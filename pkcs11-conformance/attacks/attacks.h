/*
 * attacks.h — shared declarations of the attack suite (pkcs11-conformance/attacks/).
 *
 * n2he.c:  the N2HE scheme as ../shared/N2HE-SPEC.md gives it (SeedSequence + PCG64 expansion of LWE2's A,
 *          LWE1 / LWE2 / LWS1 byte layouts, local encryption and decryption with a known key).
 * aeskw.c: RFC 3394 (AES-KW) and RFC 5649 (AES-KWP) over a caller-supplied raw AES block function, so the
 *          same code unwraps offline (OpenSSL, a key we know) and "by hand" through a module's AES-ECB/CBC.
 */
#ifndef TG_ATTACKS_H
#define TG_ATTACKS_H

#include <stddef.h>
#include <stdint.h>

/* ---- N2HE -------------------------------------------------------------------------------------- */

/* A PCG64 stream seeded from a 32-byte LWE2 seed (big-endian integer), numpy-exact. */
typedef struct {
    unsigned __int128 state, inc;
    int have_half;      /* q = 2^32: a buffered high half of the last next64 */
    uint32_t half;
} tg_pcg64;

void tg_pcg64_seed(tg_pcg64 *g, const uint8_t seed[32]);
uint64_t tg_pcg64_next64(tg_pcg64 *g);
/* Next entry of A in [0, q), q = 2^logq (32 or 48). */
uint64_t tg_pcg64_entry(tg_pcg64 *g, int logq);

/* Another 32-byte seed whose numpy SeedSequence pool — hence PCG64 stream, hence LWE2 matrix A — equals seed's:
 * the five-word integer w4:E3:E2:E1:E0 (w4 != 0 chosen freely, E solved by inverting the pool mixing). 0 on success. */
int tg_seed_alias(const uint8_t seed[32], uint32_t w4, uint8_t out[32]);

/* A (k x n, row-major, entries in [0, q)) expanded from seed. `out` has k*n entries. */
void tg_expand(const uint8_t seed[32], size_t k, size_t n, int logq, uint64_t *out);

/* Row-streaming helper: the dot product A_r . s mod q of each of the k rows, into dots[k], without storing A. */
void tg_expand_dots(const uint8_t seed[32], size_t k, size_t n, int logq, const int8_t *s, uint64_t *dots);

/* Known answers of N2HE-SPEC.md §3 (expansion prefixes, SHA-256 of A, TV1, TV2). 0 = all match. */
int tg_n2he_selftest(char *why, size_t whylen);

/* Centered lift of x mod q into (-q/2, q/2]. */
int64_t tg_center(uint64_t x, int logq);
/* The SDK's decryption of one row: round_half_even(center(B - dot) / delta) mod t. */
uint64_t tg_decode(uint64_t b, uint64_t dot, int logq, int logt);

/* Byte layouts (little-endian). The buffers are malloc'ed; *len receives the size. */
uint8_t *tg_lwe1_build(const uint64_t *A, const uint64_t *B, uint32_t k, uint32_t n, int batch, size_t *len);
uint8_t *tg_lws1_build(const uint8_t (*seeds)[32], uint32_t m, const uint64_t *B, uint32_t k, uint32_t n, size_t *len);
/* Parses an LWE2 ciphertext: 0 on success (seed, k, B pointer into the buffer as a copy in *B). */
int tg_lwe2_parse(const uint8_t *ct, size_t len, uint8_t seed[32], uint32_t *k, uint32_t *n, uint64_t **B);
/* Writes an LWE2 ciphertext (batch form) with the given seed and B. */
uint8_t *tg_lwe2_build(const uint8_t seed[32], const uint64_t *B, uint32_t k, uint32_t n, size_t *len);

/* Decrypts an LWE2 ciphertext with a known key s (n entries in {-1,0,1}): out[k] messages. 0 = ok. */
int tg_lwe2_decrypt_local(const uint8_t *ct, size_t len, const int8_t *s, uint32_t n, int logq, int logt,
                          uint64_t *out, uint32_t maxk);

uint64_t tg_le64(const uint8_t *p);
void tg_put_le64(uint8_t *p, uint64_t v);

/* ---- AES key wrap ------------------------------------------------------------------------------ */

/* One raw AES block operation: in (16 bytes) -> out (16 bytes). Returns 0 on success. */
typedef int (*tg_block_fn)(void *ctx, const uint8_t in[16], uint8_t out[16]);

/* RFC 3394 unwrap of `wrapped` (len = 8(n+1), n >= 2 for KW; KWP: n >= 1) with the default or the RFC 5649 IV.
 * kwp = 1: RFC 5649 (padded), returns the unpadded length in *outlen. 0 = integrity check passed. */
int tg_kw_unwrap(tg_block_fn dec, void *ctx, const uint8_t *wrapped, size_t len, int kwp, uint8_t *out, size_t *outlen);
/* RFC 3394 / 5649 wrap of `plain` (KW: a multiple of 8, >= 16 bytes). Output len(plain)+8 (KW) or padded + 8. */
int tg_kw_wrap(tg_block_fn enc, void *ctx, const uint8_t *plain, size_t len, int kwp, uint8_t *out, size_t *outlen);

/* OpenSSL block functions for a key we know (ctx = an EVP_CIPHER_CTX initialised by these helpers). */
void *tg_aes_ctx_new(const uint8_t *key, size_t keylen, int encrypt);
void tg_aes_ctx_free(void *ctx);
int tg_aes_block(void *ctx, const uint8_t in[16], uint8_t out[16]);

#endif
