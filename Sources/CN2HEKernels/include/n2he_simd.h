/* N2HE AVX-512 kernels, used by Sources/N2HE (selected at run time; the Swift scalar code runs elsewhere).
 *
 * 1. Vectorised PCG64 (XSL-RR 128/64) for the LWE2 matrix expansion.
 * 32 interleaved chains in four groups of AVX-512 registers; chain j yields outputs j, j+32, j+64, ... so the
 * results are byte-identical to the sequential generator. The 128-bit LCG multiply is built from 32x32->64
 * products (vpmuludq) and vpmullq.
 * 2. The ternary dot product of an LWE1 row (n little-endian int64 at any alignment) with the key given as
 * plus/minus bit masks: masked add/sub, constant time in the key; the same for LWE2 rows from the expansion
 * buffer (32-bit entries, or 64-bit outputs >> 16) at any key column.
 * Selected at run time (CPUID + XGETBV). Header-only: static inline functions compiled by the Swift importer. */
#ifndef N2HE_SIMD_H
#define N2HE_SIMD_H
#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <cpuid.h>
#include <immintrin.h>

/* The four register groups of the PCG64 kernels must be unrolled: a rolled loop keeps the states on the stack. */
#if defined(__clang__)
#define N2HE_UNROLL _Pragma("clang loop unroll(full)")
#else
#define N2HE_UNROLL _Pragma("GCC unroll 4")
#endif

/* 1 if the CPU has AVX-512 F, DQ and BW and the OS saves the zmm state. */
static inline int n2he_cpu_has_avx512(void) {
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & (1u << 27))) return 0;                 /* OSXSAVE */
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xE6u) != 0xE6u) return 0;             /* XMM, YMM, opmask, ZMM_Hi256, Hi16_ZMM enabled */
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b & (1u << 16)) && (b & (1u << 17)) && (b & (1u << 30));   /* AVX512F, AVX512DQ, AVX512BW */
}

/* One step state = state * M + P (mod 2^128) of 8 chains; lo/hi are the state halves. The 64x64 product
 * lo * M.lo is built from four 32x32->64 products (vpmuludq) that give both its halves; the two cross terms
 * that only need their low 64 bits use vpmullq. */
__attribute__((target("avx512f,avx512dq,avx512bw")))
static inline void n2he_pcg64_step8(__m512i *lo, __m512i *hi, __m512i mlo, __m512i mlo_hi32, __m512i mhi,
                                    __m512i plo, __m512i phi) {
    const __m512i m32 = _mm512_set1_epi64(0xFFFFFFFFll);
    __m512i a = *lo, h = *hi;
    __m512i a1 = _mm512_srli_epi64(a, 32);
    __m512i p00 = _mm512_mul_epu32(a, mlo);
    __m512i p01 = _mm512_mul_epu32(a, mlo_hi32);
    __m512i p10 = _mm512_mul_epu32(a1, mlo);
    __m512i p11 = _mm512_mul_epu32(a1, mlo_hi32);
    __m512i t = _mm512_add_epi64(p10, _mm512_srli_epi64(p00, 32));          /* < 2^64: no carry */
    __m512i u = _mm512_add_epi64(p01, _mm512_and_si512(t, m32));            /* < 2^64: no carry */
    __m512i prodHi = _mm512_add_epi64(_mm512_add_epi64(p11, _mm512_srli_epi64(t, 32)), _mm512_srli_epi64(u, 32));
    __m512i prodLo = _mm512_ternarylogic_epi64(_mm512_slli_epi64(u, 32), p00, m32, 0xF8);   /* A | (B & C) */
    __m512i newLo = _mm512_add_epi64(prodLo, plo);
    __mmask8 carry = _mm512_cmplt_epu64_mask(newLo, plo);
    __m512i newHi = _mm512_add_epi64(_mm512_add_epi64(prodHi, phi),
                                     _mm512_add_epi64(_mm512_mullo_epi64(a, mhi), _mm512_mullo_epi64(h, mlo)));
    *lo = newLo;
    *hi = _mm512_mask_sub_epi64(newHi, carry, newHi, _mm512_set1_epi64(-1));
}

/* XSL-RR output of 8 states. */
__attribute__((target("avx512f,avx512dq,avx512bw")))
static inline __m512i n2he_pcg64_output8(__m512i lo, __m512i hi) {
    return _mm512_rorv_epi64(_mm512_xor_si512(hi, lo), _mm512_srli_epi64(hi, 58));
}

/* Writes `count` outputs (a multiple of 32) to `out` from 32 chains whose current states (the state each next
 * output is taken from) are state_lo[32]/state_hi[32]; advances every chain by count/32 steps of (M, P), the
 * 32-step map of the generator. Four independent register groups keep the multiply latency hidden. */
__attribute__((target("avx512f,avx512dq,avx512bw")))
static inline void n2he_pcg64_fill32_avx512(uint64_t *out, size_t count, uint64_t *state_lo, uint64_t *state_hi,
                                            uint64_t mult_lo, uint64_t mult_hi, uint64_t plus_lo, uint64_t plus_hi) {
    __m512i lo[4], hi[4];
    N2HE_UNROLL
    for (int j = 0; j < 4; j++) {
        lo[j] = _mm512_loadu_si512((const void *)(state_lo + 8 * j));
        hi[j] = _mm512_loadu_si512((const void *)(state_hi + 8 * j));
    }
    const __m512i mlo = _mm512_set1_epi64((long long)mult_lo);
    const __m512i mlo_hi32 = _mm512_set1_epi64((long long)(mult_lo >> 32));
    const __m512i mhi = _mm512_set1_epi64((long long)mult_hi);
    const __m512i plo = _mm512_set1_epi64((long long)plus_lo);
    const __m512i phi = _mm512_set1_epi64((long long)plus_hi);
    for (size_t i = 0; i + 32 <= count; i += 32) {
        N2HE_UNROLL
        for (int j = 0; j < 4; j++) {
            _mm512_storeu_si512((void *)(out + i + 8 * j), n2he_pcg64_output8(lo[j], hi[j]));
            n2he_pcg64_step8(&lo[j], &hi[j], mlo, mlo_hi32, mhi, plo, phi);
        }
    }
    N2HE_UNROLL
    for (int j = 0; j < 4; j++) {
        _mm512_storeu_si512((void *)(state_lo + 8 * j), lo[j]);
        _mm512_storeu_si512((void *)(state_hi + 8 * j), hi[j]);
    }
}

/* LWE2, q = 2^32, fused expansion and dot product: takes the next `outputs` outputs (a multiple of 32) of the 32
 * chains, as n2he_pcg64_fill32_avx512 would write them, and returns the sum over their 2*outputs 32-bit entries
 * e[i] of e[i] * s[i] mod 2^32 (key columns 0 ..< 2*outputs; the bit arrays hold at least outputs/4 bytes). */
__attribute__((target("avx512f,avx512dq,avx512bw")))
static inline uint64_t n2he_pcg64_dot32_avx512(size_t outputs, uint64_t *state_lo, uint64_t *state_hi,
                                               uint64_t mult_lo, uint64_t mult_hi, uint64_t plus_lo, uint64_t plus_hi,
                                               const uint8_t *plus_bits, const uint8_t *minus_bits) {
    __m512i lo[4], hi[4], sum[4];
    N2HE_UNROLL
    for (int j = 0; j < 4; j++) {
        lo[j] = _mm512_loadu_si512((const void *)(state_lo + 8 * j));
        hi[j] = _mm512_loadu_si512((const void *)(state_hi + 8 * j));
        sum[j] = _mm512_setzero_si512();
    }
    const __m512i mlo = _mm512_set1_epi64((long long)mult_lo);
    const __m512i mlo_hi32 = _mm512_set1_epi64((long long)(mult_lo >> 32));
    const __m512i mhi = _mm512_set1_epi64((long long)mult_hi);
    const __m512i plo = _mm512_set1_epi64((long long)plus_lo);
    const __m512i phi = _mm512_set1_epi64((long long)plus_hi);
    for (size_t i = 0; i + 32 <= outputs; i += 32) {
        uint64_t p, m;   /* key bits of the 64 entries these 32 outputs hold */
        __builtin_memcpy(&p, plus_bits + i / 4, 8);
        __builtin_memcpy(&m, minus_bits + i / 4, 8);
        N2HE_UNROLL
        for (int j = 0; j < 4; j++) {
            __m512i v = n2he_pcg64_output8(lo[j], hi[j]);
            sum[j] = _mm512_mask_add_epi32(sum[j], (__mmask16)(p >> (16 * j)), sum[j], v);
            sum[j] = _mm512_mask_sub_epi32(sum[j], (__mmask16)(m >> (16 * j)), sum[j], v);
            n2he_pcg64_step8(&lo[j], &hi[j], mlo, mlo_hi32, mhi, plo, phi);
        }
    }
    N2HE_UNROLL
    for (int j = 0; j < 4; j++) {
        _mm512_storeu_si512((void *)(state_lo + 8 * j), lo[j]);
        _mm512_storeu_si512((void *)(state_hi + 8 * j), hi[j]);
    }
    __m512i total = _mm512_add_epi32(_mm512_add_epi32(sum[0], sum[1]), _mm512_add_epi32(sum[2], sum[3]));
    return (uint64_t)(uint32_t)_mm512_reduce_add_epi32(total);
}

/* Poisson sampling by inversion for Skellam noise: counts[i] = the number of thresholds t[j] with t[j] <= words[i],
 * scanning the whole table for every word (time independent of the values). `count` is a multiple of 8. */
__attribute__((target("avx512f,avx512dq,avx512bw")))
static inline void n2he_threshold_counts_avx512(const uint64_t *words, size_t count, const uint64_t *thresholds,
                                                size_t table_size, int64_t *counts) {
    const __m512i one = _mm512_set1_epi64(1);
    for (size_t i = 0; i + 8 <= count; i += 8) {
        __m512i w = _mm512_loadu_si512((const void *)(words + i));
        __m512i acc = _mm512_setzero_si512();
        for (size_t j = 0; j < table_size; j++) {
            __mmask8 ge = _mm512_cmp_epu64_mask(w, _mm512_set1_epi64((long long)thresholds[j]), _MM_CMPINT_NLT);
            acc = _mm512_mask_add_epi64(acc, ge, acc, one);
        }
        _mm512_storeu_si512((void *)(counts + i), acc);
    }
}

/* sum over i < n of row[i] * s[i] mod 2^64, where s[i] = +1 if bit i of plus_bits is set, -1 if bit i of minus_bits
 * is set, else 0. row: n little-endian int64 at any alignment; the bit arrays hold ceil(n/8) bytes. */
__attribute__((target("avx512f,avx512dq,avx512bw")))
static inline uint64_t n2he_dot_le64_avx512(const void *row, const uint8_t *plus_bits, const uint8_t *minus_bits, size_t n) {
    const unsigned char *p = (const unsigned char *)row;
    __m512i sum0 = _mm512_setzero_si512(), sum1 = _mm512_setzero_si512();
    size_t blocks = n / 8, b = 0;
    for (; b + 2 <= blocks; b += 2) {
        __m512i a0 = _mm512_loadu_si512((const void *)(p + 64 * b));
        __m512i a1 = _mm512_loadu_si512((const void *)(p + 64 * b + 64));
        sum0 = _mm512_mask_add_epi64(sum0, (__mmask8)plus_bits[b], sum0, a0);
        sum0 = _mm512_mask_sub_epi64(sum0, (__mmask8)minus_bits[b], sum0, a0);
        sum1 = _mm512_mask_add_epi64(sum1, (__mmask8)plus_bits[b + 1], sum1, a1);
        sum1 = _mm512_mask_sub_epi64(sum1, (__mmask8)minus_bits[b + 1], sum1, a1);
    }
    for (; b < blocks; b++) {
        __m512i a0 = _mm512_loadu_si512((const void *)(p + 64 * b));
        sum0 = _mm512_mask_add_epi64(sum0, (__mmask8)plus_bits[b], sum0, a0);
        sum0 = _mm512_mask_sub_epi64(sum0, (__mmask8)minus_bits[b], sum0, a0);
    }
    size_t rest = n - 8 * blocks;
    if (rest) {
        __mmask8 tail = (__mmask8)((1u << rest) - 1u);
        __m512i a0 = _mm512_maskz_loadu_epi64(tail, (const void *)(p + 64 * blocks));   /* no access past the row */
        sum0 = _mm512_mask_add_epi64(sum0, (__mmask8)(plus_bits[blocks] & tail), sum0, a0);
        sum0 = _mm512_mask_sub_epi64(sum0, (__mmask8)(minus_bits[blocks] & tail), sum0, a0);
    }
    return (uint64_t)_mm512_reduce_add_epi64(_mm512_add_epi64(sum0, sum1));
}

/* LWE1 encryption, q = 2^32: entries are the n little-endian uint32 words at `keystream`; writes each as a
 * little-endian int64 to `out` (any alignment) and returns their dot product with s (as above). */
__attribute__((target("avx512f,avx512dq,avx512bw")))
static inline uint64_t n2he_store_dot_u32_avx512(const void *keystream, void *out, const uint8_t *plus_bits,
                                                 const uint8_t *minus_bits, size_t n) {
    const unsigned char *in = (const unsigned char *)keystream;
    unsigned char *o = (unsigned char *)out;
    __m512i sum = _mm512_setzero_si512();
    size_t blocks = n / 8, b = 0;
    for (; b < blocks; b++) {
        __m512i a = _mm512_cvtepu32_epi64(_mm256_loadu_si256((const __m256i *)(const void *)(in + 32 * b)));
        _mm512_storeu_si512((void *)(o + 64 * b), a);
        sum = _mm512_mask_add_epi64(sum, (__mmask8)plus_bits[b], sum, a);
        sum = _mm512_mask_sub_epi64(sum, (__mmask8)minus_bits[b], sum, a);
    }
    size_t rest = n - 8 * blocks;
    if (rest) {
        __mmask8 tail = (__mmask8)((1u << rest) - 1u);
        __m512i words = _mm512_maskz_loadu_epi32((__mmask16)tail, (const void *)(in + 32 * blocks));
        __m512i a = _mm512_cvtepu32_epi64(_mm512_castsi512_si256(words));
        _mm512_mask_storeu_epi64((void *)(o + 64 * blocks), tail, a);
        sum = _mm512_mask_add_epi64(sum, (__mmask8)(plus_bits[blocks] & tail), sum, a);
        sum = _mm512_mask_sub_epi64(sum, (__mmask8)(minus_bits[blocks] & tail), sum, a);
    }
    return (uint64_t)_mm512_reduce_add_epi64(sum);
}

/* LWE1 encryption, q = 2^48: entries are consecutive 6-byte little-endian groups at `keystream` (6n bytes,
 * nothing read beyond); otherwise as n2he_store_dot_u32_avx512. */
__attribute__((target("avx512f,avx512dq,avx512bw")))
static inline uint64_t n2he_store_dot_u48_avx512(const void *keystream, void *out, const uint8_t *plus_bits,
                                                 const uint8_t *minus_bits, size_t n) {
    const unsigned char *in = (const unsigned char *)keystream;
    unsigned char *o = (unsigned char *)out;
    /* 64-bit lane j takes 16-bit words 3j, 3j+1, 3j+2 (and a don't-care word, masked off below). */
    const __m512i index = _mm512_set_epi16(23, 23, 22, 21, 20, 20, 19, 18, 17, 17, 16, 15, 14, 14, 13, 12,
                                           11, 11, 10, 9, 8, 8, 7, 6, 5, 5, 4, 3, 2, 2, 1, 0);
    const __m512i mask48 = _mm512_set1_epi64(0xFFFFFFFFFFFFll);
    __m512i sum = _mm512_setzero_si512();
    size_t blocks = n / 8, b = 0;
    for (; b < blocks; b++) {
        __m512i raw = _mm512_maskz_loadu_epi8((__mmask64)0xFFFFFFFFFFFFull, (const void *)(in + 48 * b));
        __m512i a = _mm512_and_si512(_mm512_permutexvar_epi16(index, raw), mask48);
        _mm512_storeu_si512((void *)(o + 64 * b), a);
        sum = _mm512_mask_add_epi64(sum, (__mmask8)plus_bits[b], sum, a);
        sum = _mm512_mask_sub_epi64(sum, (__mmask8)minus_bits[b], sum, a);
    }
    size_t rest = n - 8 * blocks;
    if (rest) {
        __mmask8 tail = (__mmask8)((1u << rest) - 1u);
        __mmask64 bytes = (__mmask64)((1ull << (6 * rest)) - 1ull);
        __m512i raw = _mm512_maskz_loadu_epi8(bytes, (const void *)(in + 48 * blocks));
        __m512i a = _mm512_and_si512(_mm512_permutexvar_epi16(index, raw), mask48);
        _mm512_mask_storeu_epi64((void *)(o + 64 * blocks), tail, a);
        sum = _mm512_mask_add_epi64(sum, (__mmask8)(plus_bits[blocks] & tail), sum, a);
        sum = _mm512_mask_sub_epi64(sum, (__mmask8)(minus_bits[blocks] & tail), sum, a);
    }
    return (uint64_t)_mm512_reduce_add_epi64(sum);
}

/* 16 (or 8) key-mask bits starting at bit `column` of a bit array (which has >= 4 readable bytes past the
 * byte holding bit column + 15). */
static inline uint32_t n2he_bits_at(const uint8_t *bits, size_t column) {
    uint32_t w;
    __builtin_memcpy(&w, bits + column / 8, 4);
    return w >> (column & 7);
}

/* LWE2, q = 2^32: sum over i < count of a[i] * s[column + i] mod 2^32 (entries are 32-bit words). */
__attribute__((target("avx512f,avx512dq,avx512bw")))
static inline uint64_t n2he_dot_u32_avx512(const uint32_t *a, const uint8_t *plus_bits, const uint8_t *minus_bits,
                                           size_t column, size_t count) {
    __m512i sum0 = _mm512_setzero_si512(), sum1 = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 32 <= count; i += 32) {
        __m512i v0 = _mm512_loadu_si512((const void *)(a + i));
        __m512i v1 = _mm512_loadu_si512((const void *)(a + i + 16));
        uint32_t p = n2he_bits_at(plus_bits, column + i), m = n2he_bits_at(minus_bits, column + i);
        uint32_t p1 = n2he_bits_at(plus_bits, column + i + 16), m1 = n2he_bits_at(minus_bits, column + i + 16);
        sum0 = _mm512_mask_add_epi32(sum0, (__mmask16)p, sum0, v0);
        sum0 = _mm512_mask_sub_epi32(sum0, (__mmask16)m, sum0, v0);
        sum1 = _mm512_mask_add_epi32(sum1, (__mmask16)p1, sum1, v1);
        sum1 = _mm512_mask_sub_epi32(sum1, (__mmask16)m1, sum1, v1);
    }
    for (; i < count; i += 16) {
        size_t rest = count - i < 16 ? count - i : 16;
        __mmask16 tail = (__mmask16)((1u << rest) - 1u);
        __m512i v0 = _mm512_maskz_loadu_epi32(tail, (const void *)(a + i));
        uint32_t p = n2he_bits_at(plus_bits, column + i) & tail, m = n2he_bits_at(minus_bits, column + i) & tail;
        sum0 = _mm512_mask_add_epi32(sum0, (__mmask16)p, sum0, v0);
        sum0 = _mm512_mask_sub_epi32(sum0, (__mmask16)m, sum0, v0);
    }
    return (uint64_t)(uint32_t)_mm512_reduce_add_epi32(_mm512_add_epi32(sum0, sum1));
}

/* LWE2, q = 2^48: sum over i < count of (raw[i] >> 16) * s[column + i] mod 2^64. */
__attribute__((target("avx512f,avx512dq,avx512bw")))
static inline uint64_t n2he_dot_shift16_avx512(const uint64_t *raw, const uint8_t *plus_bits, const uint8_t *minus_bits,
                                               size_t column, size_t count) {
    __m512i sum0 = _mm512_setzero_si512(), sum1 = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        __m512i v0 = _mm512_srli_epi64(_mm512_loadu_si512((const void *)(raw + i)), 16);
        __m512i v1 = _mm512_srli_epi64(_mm512_loadu_si512((const void *)(raw + i + 8)), 16);
        uint32_t p = n2he_bits_at(plus_bits, column + i), m = n2he_bits_at(minus_bits, column + i);
        sum0 = _mm512_mask_add_epi64(sum0, (__mmask8)p, sum0, v0);
        sum0 = _mm512_mask_sub_epi64(sum0, (__mmask8)m, sum0, v0);
        sum1 = _mm512_mask_add_epi64(sum1, (__mmask8)(p >> 8), sum1, v1);
        sum1 = _mm512_mask_sub_epi64(sum1, (__mmask8)(m >> 8), sum1, v1);
    }
    for (; i < count; i += 8) {
        size_t rest = count - i < 8 ? count - i : 8;
        __mmask8 tail = (__mmask8)((1u << rest) - 1u);
        __m512i v0 = _mm512_srli_epi64(_mm512_maskz_loadu_epi64(tail, (const void *)(raw + i)), 16);
        uint32_t p = n2he_bits_at(plus_bits, column + i) & tail, m = n2he_bits_at(minus_bits, column + i) & tail;
        sum0 = _mm512_mask_add_epi64(sum0, (__mmask8)p, sum0, v0);
        sum0 = _mm512_mask_sub_epi64(sum0, (__mmask8)m, sum0, v0);
    }
    return (uint64_t)_mm512_reduce_add_epi64(_mm512_add_epi64(sum0, sum1));
}

#else
static inline int n2he_cpu_has_avx512(void) { return 0; }
static inline uint64_t n2he_dot_u32_avx512(const uint32_t *a, const uint8_t *plus_bits, const uint8_t *minus_bits,
                                           size_t column, size_t count) {
    (void)a; (void)plus_bits; (void)minus_bits; (void)column; (void)count;
    return 0;
}
static inline uint64_t n2he_dot_shift16_avx512(const uint64_t *raw, const uint8_t *plus_bits, const uint8_t *minus_bits,
                                               size_t column, size_t count) {
    (void)raw; (void)plus_bits; (void)minus_bits; (void)column; (void)count;
    return 0;
}
static inline uint64_t n2he_store_dot_u48_avx512(const void *keystream, void *out, const uint8_t *plus_bits,
                                                 const uint8_t *minus_bits, size_t n) {
    (void)keystream; (void)out; (void)plus_bits; (void)minus_bits; (void)n;
    return 0;
}
static inline uint64_t n2he_store_dot_u32_avx512(const void *keystream, void *out, const uint8_t *plus_bits,
                                                 const uint8_t *minus_bits, size_t n) {
    (void)keystream; (void)out; (void)plus_bits; (void)minus_bits; (void)n;
    return 0;
}
static inline uint64_t n2he_dot_le64_avx512(const void *row, const uint8_t *plus_bits, const uint8_t *minus_bits, size_t n) {
    (void)row; (void)plus_bits; (void)minus_bits; (void)n;
    return 0;
}
static inline void n2he_threshold_counts_avx512(const uint64_t *words, size_t count, const uint64_t *thresholds,
                                                size_t table_size, int64_t *counts) {
    (void)words; (void)count; (void)thresholds; (void)table_size; (void)counts;
}
static inline uint64_t n2he_pcg64_dot32_avx512(size_t outputs, uint64_t *state_lo, uint64_t *state_hi,
                                               uint64_t mult_lo, uint64_t mult_hi, uint64_t plus_lo, uint64_t plus_hi,
                                               const uint8_t *plus_bits, const uint8_t *minus_bits) {
    (void)outputs; (void)state_lo; (void)state_hi; (void)mult_lo; (void)mult_hi; (void)plus_lo; (void)plus_hi;
    (void)plus_bits; (void)minus_bits;
    return 0;
}
static inline void n2he_pcg64_fill32_avx512(uint64_t *out, size_t count, uint64_t *state_lo, uint64_t *state_hi,
                                            uint64_t mult_lo, uint64_t mult_hi, uint64_t plus_lo, uint64_t plus_hi) {
    (void)out; (void)count; (void)state_lo; (void)state_hi; (void)mult_lo; (void)mult_hi; (void)plus_lo; (void)plus_hi;
}
#endif
#endif
