/*
 * aeskw.c — AES key wrap, RFC 3394 (KW) and RFC 5649 (KWP), over a raw AES block function. With OpenSSL under
 * a key we know it is an offline unwrap; with a module's AES-ECB / AES-CBC (IV 0, one block) as the block
 * function it inverts a C_WrapKey blob "by hand" through C_Decrypt, or forges a blob through C_Encrypt.
 */
#include "attacks.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t KW_IV[8] = {0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6};
static const uint8_t KWP_AIV[4] = {0xA6, 0x59, 0x59, 0xA6};

static void xor_t(uint8_t a[8], uint64_t t) {
    for (int i = 7; i >= 0; i--, t >>= 8) a[i] ^= (uint8_t)t;
}

/* W^-1 of RFC 3394 §2.2.2: wrapped = A | R1..Rn (n >= 2). Leaves the recovered A in a[8]. */
static int w_inverse(tg_block_fn dec, void *ctx, const uint8_t *wrapped, size_t n, uint8_t a[8], uint8_t *r) {
    memcpy(a, wrapped, 8);
    memcpy(r, wrapped + 8, 8 * n);
    uint8_t b[16], o[16];
    for (int j = 5; j >= 0; j--) {
        for (size_t i = n; i >= 1; i--) {
            memcpy(b, a, 8);
            xor_t(b, (uint64_t)n * (uint64_t)j + i);
            memcpy(b + 8, r + 8 * (i - 1), 8);
            if (dec(ctx, b, o) != 0) return -1;
            memcpy(a, o, 8);
            memcpy(r + 8 * (i - 1), o + 8, 8);
        }
    }
    return 0;
}

static int w_forward(tg_block_fn enc, void *ctx, const uint8_t iv[8], const uint8_t *p, size_t n, uint8_t *out) {
    uint8_t a[8], b[16], o[16];
    uint8_t *r = out + 8;
    memcpy(a, iv, 8);
    memcpy(r, p, 8 * n);
    for (int j = 0; j <= 5; j++) {
        for (size_t i = 1; i <= n; i++) {
            memcpy(b, a, 8);
            memcpy(b + 8, r + 8 * (i - 1), 8);
            if (enc(ctx, b, o) != 0) return -1;
            memcpy(a, o, 8);
            xor_t(a, (uint64_t)n * (uint64_t)j + i);
            memcpy(r + 8 * (i - 1), o + 8, 8);
        }
    }
    memcpy(out, a, 8);
    return 0;
}

int tg_kw_unwrap(tg_block_fn dec, void *ctx, const uint8_t *wrapped, size_t len, int kwp, uint8_t *out,
                 size_t *outlen) {
    if (len % 8 != 0 || len < 16) return -1;
    size_t n = len / 8 - 1;
    uint8_t a[8];
    uint8_t *r = malloc(8 * n);
    if (!r) return -1;
    if (n == 1) {
        if (!kwp) { free(r); return -1; }
        uint8_t o[16];
        if (dec(ctx, wrapped, o) != 0) { free(r); return -1; }
        memcpy(a, o, 8);
        memcpy(r, o + 8, 8);
    } else if (w_inverse(dec, ctx, wrapped, n, a, r) != 0) {
        free(r);
        return -1;
    }
    if (!kwp) {
        if (memcmp(a, KW_IV, 8) != 0) { free(r); return -1; }
        memcpy(out, r, 8 * n);
        *outlen = 8 * n;
        free(r);
        return 0;
    }
    if (memcmp(a, KWP_AIV, 4) != 0) { free(r); return -1; }
    uint32_t mli = (uint32_t)a[4] << 24 | (uint32_t)a[5] << 16 | (uint32_t)a[6] << 8 | a[7];
    if (mli <= 8 * (n - 1) || mli > 8 * n) { free(r); return -1; }
    for (size_t i = mli; i < 8 * n; i++)
        if (r[i] != 0) { free(r); return -1; }
    memcpy(out, r, mli);
    *outlen = mli;
    free(r);
    return 0;
}

int tg_kw_wrap(tg_block_fn enc, void *ctx, const uint8_t *plain, size_t len, int kwp, uint8_t *out, size_t *outlen) {
    if (!kwp) {
        if (len % 8 != 0 || len < 16) return -1;
        if (w_forward(enc, ctx, KW_IV, plain, len / 8, out) != 0) return -1;
        *outlen = len + 8;
        return 0;
    }
    if (len == 0) return -1;
    size_t padded = (len + 7) / 8 * 8;
    uint8_t iv[8];
    memcpy(iv, KWP_AIV, 4);
    iv[4] = (uint8_t)(len >> 24); iv[5] = (uint8_t)(len >> 16); iv[6] = (uint8_t)(len >> 8); iv[7] = (uint8_t)len;
    uint8_t *p = calloc(1, padded);
    if (!p) return -1;
    memcpy(p, plain, len);
    int rc;
    if (padded == 8) {
        uint8_t b[16];
        memcpy(b, iv, 8);
        memcpy(b + 8, p, 8);
        rc = enc(ctx, b, out);
    } else {
        rc = w_forward(enc, ctx, iv, p, padded / 8, out);
    }
    free(p);
    if (rc != 0) return -1;
    *outlen = padded + 8;
    return 0;
}

void *tg_aes_ctx_new(const uint8_t *key, size_t keylen, int encrypt) {
    const EVP_CIPHER *c = keylen == 16 ? EVP_aes_128_ecb() : keylen == 24 ? EVP_aes_192_ecb() : EVP_aes_256_ecb();
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx) return NULL;
    if (EVP_CipherInit_ex(ctx, c, NULL, key, NULL, encrypt) != 1) {
        EVP_CIPHER_CTX_free(ctx);
        return NULL;
    }
    EVP_CIPHER_CTX_set_padding(ctx, 0);
    return ctx;
}

void tg_aes_ctx_free(void *ctx) { EVP_CIPHER_CTX_free(ctx); }

int tg_aes_block(void *ctx, const uint8_t in[16], uint8_t out[16]) {
    int l = 0;
    return EVP_CipherUpdate(ctx, out, &l, in, 16) == 1 && l == 16 ? 0 : -1;
}
