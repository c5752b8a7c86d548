/* Body of the x86 kernels, included by cpu_kern_avx2.c, cpu_kern_avx2_vnni.c,
 * cpu_kern_avx512.c and cpu_kern_avx512_vnni.c, each compiled with its instruction set and
 * two switches:
 *   X86_VNNI  1: byte and word dot products by vpdpbusd / vpdpwssd (AVX-VNNI on 256 bits, or
 *                AVX512-VNNI with X86_512), else vpmaddubsw + vpmaddwd;
 *   X86_512   1: 512-bit loops where the data is contiguous 64 bytes (float rows, K-quant
 *                halves) and AVX-512BW masks for bit expansion; 256 bits elsewhere.
 * Every kernel forms the same integers as cpu_kern_scalar.c, then one float FMA per block. */
#ifndef X86_VNNI
#error "define X86_VNNI and X86_512 before including cpu_kern_x86.h"
#endif

#include <immintrin.h>
#include <string.h>

#include "runtime/cpu/cpu_kern.h"

#define X86_INLINE static inline __attribute__((always_inline))

/* ---------------------------------------------------------------- helpers ---- */

X86_INLINE float x86_hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

X86_INLINE int x86_hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

X86_INLINE float x86_f16(uint16_t h) { return _cvtsh_ss(h); }

/* acc + sum of 4 products u8 x s8 per i32 lane. */
X86_INLINE __m256i x86_dpbusd(__m256i acc, __m256i u, __m256i s) {
#if X86_VNNI && X86_512
    return _mm256_dpbusd_epi32(acc, u, s);
#elif X86_VNNI
    return _mm256_dpbusd_avx_epi32(acc, u, s);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

/* acc + sum of 2 products i16 x i16 per i32 lane. */
X86_INLINE __m256i x86_dpwssd(__m256i acc, __m256i a, __m256i b) {
#if X86_VNNI && X86_512
    return _mm256_dpwssd_epi32(acc, a, b);
#elif X86_VNNI
    return _mm256_dpwssd_avx_epi32(acc, a, b);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
#endif
}

#if X86_512
X86_INLINE __m512i x86_dpwssd512(__m512i acc, __m512i a, __m512i b) {
#if X86_VNNI
    return _mm512_dpwssd_epi32(acc, a, b);
#else
    return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b));
#endif
}
#endif

/* 32 nibbles of 16 bytes in Q4_0 element order: low nibbles first, then high. */
X86_INLINE __m256i x86_nibbles(const uint8_t *qs) {
    __m128i t = _mm_loadu_si128((const __m128i *)qs);
    __m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(b, _mm256_set1_epi8(15));
}

/* 0x10 in byte j where bit j of h is set: the 5th bit of Q5_0 / Q5_1 element j. */
X86_INLINE __m256i x86_bit5(const uint8_t qh[4]) {
    uint32_t h;
    memcpy(&h, qh, 4);
#if X86_512
    return _mm256_maskz_mov_epi8((__mmask32)h, _mm256_set1_epi8(0x10));
#else
    const __m256i pick = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)h), pick); /* byte j: qh[j / 8] */
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
#endif
}

/* The (sc, m) pairs of a Q4_K / Q5_K block, six bits each, as bytes (FORMATS.md packing,
 * four at a time in 32-bit words). */
X86_INLINE void x86_k_scales(const uint8_t scales[12], uint8_t sc[8], uint8_t m[8]) {
    uint32_t a[3], s[2], mm[2];
    memcpy(a, scales, 12);
    s[0] = a[0] & 0x3f3f3f3f;
    s[1] = (a[2] & 0x0f0f0f0f) | ((a[0] >> 6) & 0x03030303) << 4;
    mm[0] = a[1] & 0x3f3f3f3f;
    mm[1] = ((a[2] >> 4) & 0x0f0f0f0f) | ((a[1] >> 6) & 0x03030303) << 4;
    memcpy(sc, s, 8);
    memcpy(m, mm, 8);
}

/* Activation row t of a dot call. */
#define X86_ROW(T, x, xs, t) ((const T *)((const char *)(x) + (t) * (xs)))

/* Each dot body is written for a constant token count NX and instantiated 1..4 times. */
#define X86_DISPATCH(name)                                                                    \
    static void name(size_t n, const void *w, const void *x, size_t xs, size_t nx, float *s) { \
        switch (nx) {                                                                         \
        case 1: name##_nx(n, w, x, xs, 1, s); break;                                          \
        case 2: name##_nx(n, w, x, xs, 2, s); break;                                          \
        case 3: name##_nx(n, w, x, xs, 3, s); break;                                          \
        default: name##_nx(n, w, x, xs, 4, s); break;                                         \
        }                                                                                     \
    }

/* ---------------------------------------------------------------- float weights ---- */

#if X86_512
#define XF_W 16
typedef __m512 xf_vec;
#define xf_zero() _mm512_setzero_ps()
#define xf_loadx(p) _mm512_loadu_ps(p)
#define xf_fma(a, b, c) _mm512_fmadd_ps(a, b, c)
#define xf_add(a, b) _mm512_add_ps(a, b)
#define xf_hsum(v) _mm512_reduce_add_ps(v)
#define xf_load_f32(p) _mm512_loadu_ps((const float *)(p))
#define xf_load_f16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define xf_load_bf16(p) \
    _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p))), 16))
#else
#define XF_W 8
typedef __m256 xf_vec;
#define xf_zero() _mm256_setzero_ps()
#define xf_loadx(p) _mm256_loadu_ps(p)
#define xf_fma(a, b, c) _mm256_fmadd_ps(a, b, c)
#define xf_add(a, b) _mm256_add_ps(a, b)
#define xf_hsum(v) x86_hsum(v)
#define xf_load_f32(p) _mm256_loadu_ps((const float *)(p))
#define xf_load_f16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define xf_load_bf16(p) \
    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))), 16))
#endif

#define X86_SCALAR_F32(v) (v)

/* Four vectors a step, each with its own accumulator chain per token, so one token is not
 * bound by FMA latency; the chains and their order are the same for every token count, so a
 * token's result has the same bits in decode and in prefill. 256-bit registers hold the
 * accumulators of two tokens at a time, 512-bit ones of four. The tail (n not a multiple of
 * the vector) goes through the scalar converter. */
#if X86_512
#define XF_GROUP 4
#else
#define XF_GROUP 2
#endif
#define X86_FLOAT_DOT(name, T, vload, sload)                                                   \
    X86_INLINE void name##_body(size_t n, const T *wr, const void *x, size_t xs, size_t NX,    \
                                float *s) {                                                    \
        xf_vec a[4][XF_GROUP];                                                                 \
        for (size_t c = 0; c < 4; c++)                                                         \
            for (size_t t = 0; t < NX; t++) a[c][t] = xf_zero();                               \
        size_t i = 0;                                                                          \
        for (; i + 4 * XF_W <= n; i += 4 * XF_W) {                                             \
            for (size_t c = 0; c < 4; c++) {                                                   \
                xf_vec wv = vload(wr + i + c * XF_W);                                          \
                for (size_t t = 0; t < NX; t++)                                                \
                    a[c][t] = xf_fma(wv, xf_loadx(X86_ROW(float, x, xs, t) + i + c * XF_W), a[c][t]); \
            }                                                                                  \
        }                                                                                      \
        for (; i + XF_W <= n; i += XF_W) {                                                     \
            xf_vec wv = vload(wr + i);                                                         \
            for (size_t t = 0; t < NX; t++)                                                    \
                a[0][t] = xf_fma(wv, xf_loadx(X86_ROW(float, x, xs, t) + i), a[0][t]);         \
        }                                                                                      \
        for (size_t t = 0; t < NX; t++) {                                                      \
            const float *xr = X86_ROW(float, x, xs, t);                                        \
            float r = xf_hsum(xf_add(xf_add(a[0][t], a[1][t]), xf_add(a[2][t], a[3][t])));     \
            for (size_t k = i; k < n; k++) r += sload(wr[k]) * xr[k];                          \
            s[t] = r;                                                                          \
        }                                                                                      \
    }                                                                                          \
    X86_INLINE void name##_nx(size_t n, const void *w, const void *x, size_t xs, size_t NX,    \
                              float *s) {                                                      \
        if (NX <= XF_GROUP) {                                                                  \
            name##_body(n, w, x, xs, NX, s);                                                   \
        } else {                                                                               \
            name##_body(n, w, x, xs, XF_GROUP, s);                                             \
            name##_body(n, w, (const char *)x + XF_GROUP * xs, xs, NX - XF_GROUP, s + XF_GROUP); \
        }                                                                                      \
    }                                                                                          \
    X86_DISPATCH(name)

X86_FLOAT_DOT(x86_dot_f32, float, xf_load_f32, X86_SCALAR_F32)
X86_FLOAT_DOT(x86_dot_f16, uint16_t, xf_load_f16, x86_f16)
X86_FLOAT_DOT(x86_dot_bf16, uint16_t, xf_load_bf16, wtype_bf16_to_f32)

/* ---------------------------------------------------------------- 32-element blocks ---- */

/* Shared loop of Q4_0, Q4_1, Q5_0, Q5_1: unsigned codes q (0..15 or 0..31) from `codes`,
 * then per token acc += (d * dy) * sum(q * y) and off += mterm(block) * s_y, where the
 * block's value is d * q + mterm. Even and odd blocks feed separate accumulators, so a
 * single token is not bound by the latency of one FMA chain. */
#define X86_Q_DOT(name, B, codes, mterm)                                                       \
    X86_INLINE void name##_block(const B *b, size_t i, const void *x, size_t xs, size_t NX,    \
                                 __m256 *acc, float *off) {                                    \
        __m256i q = codes(b);                                                                  \
        float d = x86_f16(b->d), m = mterm(b, d);                                              \
        for (size_t t = 0; t < NX; t++) {                                                      \
            const cpu_q8 *y = X86_ROW(cpu_q8, x, xs, t) + i;                                   \
            __m256i yq = _mm256_loadu_si256((const __m256i *)y->qs);                           \
            __m256i p = x86_dpbusd(_mm256_setzero_si256(), q, yq);                             \
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * y->d), _mm256_cvtepi32_ps(p), acc[t]); \
            off[t] += m * y->s;                                                                \
        }                                                                                      \
    }                                                                                          \
    X86_INLINE void name##_nx(size_t n, const void *w, const void *x, size_t xs, size_t NX,    \
                              float *s) {                                                      \
        const B *b = w;                                                                        \
        __m256 acc0[4], acc1[4];                                                               \
        float off0[4], off1[4];                                                                \
        for (size_t t = 0; t < NX; t++) {                                                      \
            acc0[t] = acc1[t] = _mm256_setzero_ps();                                           \
            off0[t] = off1[t] = 0.0f;                                                          \
        }                                                                                      \
        size_t nb = n / WTYPE_QK, i = 0;                                                       \
        for (; i + 2 <= nb; i += 2) {                                                          \
            name##_block(b + i, i, x, xs, NX, acc0, off0);                                     \
            name##_block(b + i + 1, i + 1, x, xs, NX, acc1, off1);                             \
        }                                                                                      \
        if (i < nb) name##_block(b + i, i, x, xs, NX, acc0, off0);                             \
        for (size_t t = 0; t < NX; t++)                                                        \
            s[t] = x86_hsum(_mm256_add_ps(acc0[t], acc1[t])) + (off0[t] + off1[t]);            \
    }                                                                                          \
    X86_DISPATCH(name)

/* Q4_0 and Q5_0, whose value is d * (q - off): the codes made signed once per block, then as
 * Q8_0 below (|q - off| times y with the sign moved onto y), so no per-token offset term. */
#define X86_QS_DOT(name, B, codes, OFF)                                                        \
    X86_INLINE void name##_block(const B *b, size_t i, const void *x, size_t xs, size_t NX,    \
                                 __m256 *acc) {                                                \
        __m256i q = _mm256_sub_epi8(codes(b), _mm256_set1_epi8(OFF));                          \
        __m256i aq = _mm256_abs_epi8(q);                                                       \
        float d = x86_f16(b->d);                                                               \
        for (size_t t = 0; t < NX; t++) {                                                      \
            const cpu_q8 *y = X86_ROW(cpu_q8, x, xs, t) + i;                                   \
            __m256i yq = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)y->qs), q);      \
            __m256i p = x86_dpbusd(_mm256_setzero_si256(), aq, yq);                            \
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * y->d), _mm256_cvtepi32_ps(p), acc[t]); \
        }                                                                                      \
    }                                                                                          \
    X86_INLINE void name##_nx(size_t n, const void *w, const void *x, size_t xs, size_t NX,    \
                              float *s) {                                                      \
        const B *b = w;                                                                        \
        __m256 acc0[4], acc1[4];                                                               \
        for (size_t t = 0; t < NX; t++) acc0[t] = acc1[t] = _mm256_setzero_ps();               \
        size_t nb = n / WTYPE_QK, i = 0;                                                       \
        for (; i + 2 <= nb; i += 2) {                                                          \
            name##_block(b + i, i, x, xs, NX, acc0);                                           \
            name##_block(b + i + 1, i + 1, x, xs, NX, acc1);                                   \
        }                                                                                      \
        if (i < nb) name##_block(b + i, i, x, xs, NX, acc0);                                   \
        for (size_t t = 0; t < NX; t++) s[t] = x86_hsum(_mm256_add_ps(acc0[t], acc1[t]));      \
    }                                                                                          \
    X86_DISPATCH(name)

#define X86_CODES_Q4(b) x86_nibbles((b)->qs)
#define X86_CODES_Q5(b) _mm256_or_si256(x86_nibbles((b)->qs), x86_bit5((b)->qh))
#define X86_M_MIN(b, d) x86_f16((b)->m)

X86_QS_DOT(x86_dot_q4_0, block_q4_0, X86_CODES_Q4, 8)
X86_Q_DOT(x86_dot_q4_1, block_q4_1, X86_CODES_Q4, X86_M_MIN)
X86_QS_DOT(x86_dot_q5_0, block_q5_0, X86_CODES_Q5, 16)
X86_Q_DOT(x86_dot_q5_1, block_q5_1, X86_CODES_Q5, X86_M_MIN)

/* Q8_0: signed codes; |w| times y with w's sign moved onto y keeps vpmaddubsw / vpdpbusd's
 * unsigned-by-signed form (y never holds -128, so the sign flip cannot overflow). */
X86_INLINE void x86_dot_q8_0_block(const block_q8_0 *b, size_t i, const void *x, size_t xs,
                                   size_t NX, __m256 *acc) {
    __m256i q = _mm256_loadu_si256((const __m256i *)b->qs);
    __m256i aq = _mm256_abs_epi8(q);
    float d = x86_f16(b->d);
    for (size_t t = 0; t < NX; t++) {
        const cpu_q8 *y = X86_ROW(cpu_q8, x, xs, t) + i;
        __m256i yq = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)y->qs), q);
        __m256i p = x86_dpbusd(_mm256_setzero_si256(), aq, yq);
        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * y->d), _mm256_cvtepi32_ps(p), acc[t]);
    }
}

X86_INLINE void x86_dot_q8_0_nx(size_t n, const void *w, const void *x, size_t xs, size_t NX,
                                float *s) {
    const block_q8_0 *b = w;
    __m256 acc0[4], acc1[4];
    for (size_t t = 0; t < NX; t++) acc0[t] = acc1[t] = _mm256_setzero_ps();
    size_t nb = n / WTYPE_QK, i = 0;
    for (; i + 2 <= nb; i += 2) {
        x86_dot_q8_0_block(b + i, i, x, xs, NX, acc0);
        x86_dot_q8_0_block(b + i + 1, i + 1, x, xs, NX, acc1);
    }
    if (i < nb) x86_dot_q8_0_block(b + i, i, x, xs, NX, acc0);
    for (size_t t = 0; t < NX; t++) s[t] = x86_hsum(_mm256_add_ps(acc0[t], acc1[t]));
}
X86_DISPATCH(x86_dot_q8_0)

/* ---------------------------------------------------------------- K-quants ---- */

/* sum over sub-blocks j of m[j] * (activation sum of sub-block j), for Q4_K / Q5_K mins. */
X86_INLINE int x86_k_minsum(const uint8_t m[8], const cpu_q8k *y) {
    __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
    __m128i pairs = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
    __m128i mv = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)m));
    __m128i p = _mm_madd_epi16(pairs, mv);
    p = _mm_add_epi32(p, _mm_shuffle_epi32(p, 0x4e));
    p = _mm_add_epi32(p, _mm_shuffle_epi32(p, 0xb1));
    return _mm_cvtsi128_si32(p);
}

/* Q4_K (FIVE 0) and Q5_K (FIVE 1): chunk c of 64 elements is qs[32c..32c+31], low nibbles
 * with sub-block 2c, high nibbles with 2c+1; Q5_K's fifth bits come from qh bit 2c / 2c+1. */
X86_INLINE void x86_dot_q45_K(size_t n, const void *w, const void *x, size_t xs, size_t NX,
                              float *s, const int FIVE) {
    const size_t bytes = FIVE ? sizeof(block_q5_K) : sizeof(block_q4_K);
    __m256 acc[4];
    float off[4];
    for (size_t t = 0; t < NX; t++) acc[t] = _mm256_setzero_ps(), off[t] = 0.0f;
    for (size_t i = 0; i < n / WTYPE_QK_K; i++) {
        const uint8_t *blk = (const uint8_t *)w + i * bytes;
        const block_q4_K *b4 = (const block_q4_K *)blk;
        const block_q5_K *b5 = (const block_q5_K *)blk;
        const uint8_t *qs = FIVE ? b5->qs : b4->qs;
        uint16_t d16, dmin16;
        memcpy(&d16, blk, 2);
        memcpy(&dmin16, blk + 2, 2);
        float d = x86_f16(d16), dmin = x86_f16(dmin16);
        uint8_t sc[8], m[8];
        x86_k_scales(FIVE ? b5->scales : b4->scales, sc, m);
        __m256i sumi[4];
        for (size_t t = 0; t < NX; t++) sumi[t] = _mm256_setzero_si256();
#if X86_512
        /* a whole 64-element chunk per register: low nibbles in the lower half, high in the upper */
        const __m512i shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
        const __m512i m4w = _mm512_set1_epi8(15);
        __m512i qh5 = FIVE ? _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)b5->qh)) : _mm512_setzero_si512();
        const __m512i hshift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(1), 1);
        __m512i acc512[4];
        for (size_t t = 0; t < NX; t++) acc512[t] = _mm512_setzero_si512();
        for (int c = 0; c < 4; c++) {
            __m512i raw = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(qs + 32 * c)));
            __m512i q = _mm512_and_si512(_mm512_srlv_epi16(raw, shift), m4w);
            if (FIVE) {
                __m512i hb = _mm512_srlv_epi16(qh5, hshift); /* bit 2c low half, 2c+1 high half */
                q = _mm512_or_si512(q, _mm512_and_si512(_mm512_slli_epi16(hb, 4), _mm512_set1_epi8(0x10)));
                qh5 = _mm512_srli_epi16(qh5, 2);
            }
            __m512i scv = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(sc[2 * c])),
                                             _mm256_set1_epi16(sc[2 * c + 1]), 1);
            for (size_t t = 0; t < NX; t++) {
                const cpu_q8k *y = X86_ROW(cpu_q8k, x, xs, t) + i;
                __m512i yv = _mm512_loadu_si512((const void *)(y->qs + 64 * c));
                acc512[t] = x86_dpwssd512(acc512[t], _mm512_maddubs_epi16(q, yv), scv);
            }
        }
        for (size_t t = 0; t < NX; t++)
            sumi[t] = _mm256_add_epi32(_mm512_castsi512_si256(acc512[t]), _mm512_extracti64x4_epi64(acc512[t], 1));
#else
        const __m256i m4 = _mm256_set1_epi8(15);
        __m256i qh5 = FIVE ? _mm256_loadu_si256((const __m256i *)b5->qh) : _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
            __m256i lo = _mm256_and_si256(raw, m4), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
            if (FIVE) {
                const __m256i b5m = _mm256_set1_epi8(0x10);
                lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(qh5, 4), b5m));
                hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(qh5, 3), b5m));
                qh5 = _mm256_srli_epi16(qh5, 2);
            }
            __m256i s0 = _mm256_set1_epi16(sc[2 * c]), s1 = _mm256_set1_epi16(sc[2 * c + 1]);
            for (size_t t = 0; t < NX; t++) {
                const cpu_q8k *y = X86_ROW(cpu_q8k, x, xs, t) + i;
                __m256i y0 = _mm256_loadu_si256((const __m256i *)(y->qs + 64 * c));
                __m256i y1 = _mm256_loadu_si256((const __m256i *)(y->qs + 64 * c + 32));
                sumi[t] = x86_dpwssd(sumi[t], _mm256_maddubs_epi16(lo, y0), s0);
                sumi[t] = x86_dpwssd(sumi[t], _mm256_maddubs_epi16(hi, y1), s1);
            }
        }
#endif
        for (size_t t = 0; t < NX; t++) {
            const cpu_q8k *y = X86_ROW(cpu_q8k, x, xs, t) + i;
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * y->d), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
            off[t] += dmin * y->d * (float)x86_k_minsum(m, y);
        }
    }
    for (size_t t = 0; t < NX; t++) s[t] = x86_hsum(acc[t]) - off[t];
}

X86_INLINE void x86_dot_q4_K_nx(size_t n, const void *w, const void *x, size_t xs, size_t NX, float *s) {
    x86_dot_q45_K(n, w, x, xs, NX, s, 0);
}
X86_INLINE void x86_dot_q5_K_nx(size_t n, const void *w, const void *x, size_t xs, size_t NX, float *s) {
    x86_dot_q45_K(n, w, x, xs, NX, s, 1);
}
X86_DISPATCH(x86_dot_q4_K)
X86_DISPATCH(x86_dot_q5_K)

/* Q6_K: per half, four 32-element code vectors (ql low / high nibble, two qh bits each),
 * each covering two 16-element scale groups; the -32 offset is subtracted once per block
 * through the activation sums: sum(sc * bsum) * 32. */
X86_INLINE void x86_dot_q6_K_nx(size_t n, const void *w, const void *x, size_t xs, size_t NX,
                                float *s) {
    const block_q6_K *b = w;
    __m256 acc[4];
    for (size_t t = 0; t < NX; t++) acc[t] = _mm256_setzero_ps();
    for (size_t i = 0; i < n / WTYPE_QK_K; i++, b++) {
        float d = x86_f16(b->d);
        __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
        __m256i sumi[4];
        for (size_t t = 0; t < NX; t++) {
            const cpu_q8k *y = X86_ROW(cpu_q8k, x, xs, t) + i;
            __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
            sumi[t] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5));
        }
        for (int h = 0; h < 2; h++) {
#if X86_512
            /* q0|q1 and q2|q3 as two 64-code registers: 128-bit lane k holds scale group 8h+k
             * (or 8h+4+k), so a word permute spreads the scales. */
            __m512i l = _mm512_loadu_si512((const void *)(b->ql + 64 * h));
            __m512i hb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b->qh + 32 * h)));
            const __m512i m4w = _mm512_set1_epi8(15), m30w = _mm512_set1_epi8(0x30);
            const __m512i sh01 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
            const __m512i sh23 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
            __m512i q01 = _mm512_or_si512(_mm512_and_si512(l, m4w), _mm512_and_si512(_mm512_sllv_epi16(hb, sh01), m30w));
            __m512i q23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4w),
                                          _mm512_and_si512(_mm512_srlv_epi16(hb, sh23), m30w));
            const __m512i lanes = _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2,
                                                   1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
            __m512i s512 = _mm512_castsi256_si512(sc16);
            __m512i v01 = _mm512_permutexvar_epi16(_mm512_add_epi16(lanes, _mm512_set1_epi16((short)(8 * h))), s512);
            __m512i v23 = _mm512_permutexvar_epi16(_mm512_add_epi16(lanes, _mm512_set1_epi16((short)(8 * h + 4))), s512);
            for (size_t t = 0; t < NX; t++) {
                const int8_t *yq = (X86_ROW(cpu_q8k, x, xs, t) + i)->qs + 128 * h;
                __m512i p = _mm512_madd_epi16(_mm512_maddubs_epi16(q01, _mm512_loadu_si512((const void *)yq)), v01);
                p = x86_dpwssd512(p, _mm512_maddubs_epi16(q23, _mm512_loadu_si512((const void *)(yq + 64))), v23);
                sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(_mm512_castsi512_si256(p), _mm512_extracti64x4_epi64(p, 1)));
            }
#else
            const __m256i m4 = _mm256_set1_epi8(15), m30 = _mm256_set1_epi8(0x30);
            __m256i l0 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h));
            __m256i l1 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32));
            __m256i hb = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hb, m30));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                   _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30));
            /* words 2g (lower lane) and 2g+1 (upper lane) of this half's eight scales */
            __m256i sh = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(b->scales + 8 * h))));
            __m256i v[4];
            for (int g = 0; g < 4; g++) {
                const char lo = (char)(4 * g), hi = (char)(4 * g + 2);
                v[g] = _mm256_shuffle_epi8(sh, _mm256_setr_epi8(lo, lo + 1, lo, lo + 1, lo, lo + 1, lo, lo + 1,
                                                                lo, lo + 1, lo, lo + 1, lo, lo + 1, lo, lo + 1,
                                                                hi, hi + 1, hi, hi + 1, hi, hi + 1, hi, hi + 1,
                                                                hi, hi + 1, hi, hi + 1, hi, hi + 1, hi, hi + 1));
            }
            for (size_t t = 0; t < NX; t++) {
                const int8_t *yq = (X86_ROW(cpu_q8k, x, xs, t) + i)->qs + 128 * h;
                for (int g = 0; g < 4; g++)
                    sumi[t] = x86_dpwssd(sumi[t], _mm256_maddubs_epi16(q[g], _mm256_loadu_si256((const __m256i *)(yq + 32 * g))), v[g]);
            }
#endif
        }
        for (size_t t = 0; t < NX; t++) {
            const cpu_q8k *y = X86_ROW(cpu_q8k, x, xs, t) + i;
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * y->d), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
        }
    }
    for (size_t t = 0; t < NX; t++) s[t] = x86_hsum(acc[t]);
}
X86_DISPATCH(x86_dot_q6_K)

/* ---------------------------------------------------------------- activations ---- */

X86_INLINE __m256 x86_absmax8(__m256 m, const float *x) {
    return _mm256_max_ps(m, _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_loadu_ps(x)));
}

X86_INLINE float x86_hmax(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 32 codes round(x * id) (nearest even, as nearbyintf) into out; returns the sums of the
 * first and second 16. */
X86_INLINE void x86_quant32(const float *x, float id, int8_t *out, int *sum_lo, int *sum_hi) {
    __m256 m = _mm256_set1_ps(id);
    __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), m));
    __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), m));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), m));
    __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), m));
    *sum_lo = x86_hsum_i32(_mm256_add_epi32(i0, i1));
    *sum_hi = x86_hsum_i32(_mm256_add_epi32(i2, i3));
    /* the packs interleave 4-element groups across lanes; the permute puts them back */
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)out, p);
}

static void x86_quant_q8(const float *x, cpu_q8 *y, size_t n) {
    for (size_t b = 0; b < n / WTYPE_QK; b++, x += WTYPE_QK, y++) {
        __m256 m = _mm256_setzero_ps();
        for (int k = 0; k < WTYPE_QK; k += 8) m = x86_absmax8(m, x + k);
        float amax = x86_hmax(m);
        float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        int lo, hi;
        x86_quant32(x, id, y->qs, &lo, &hi);
        y->d = amax / 127.0f;
        y->s = y->d * (float)(lo + hi);
    }
}

static void x86_quant_q8k(const float *x, cpu_q8k *y, size_t n) {
    for (size_t b = 0; b < n / WTYPE_QK_K; b++, x += WTYPE_QK_K, y++) {
        __m256 m = _mm256_setzero_ps();
        for (int k = 0; k < WTYPE_QK_K; k += 8) m = x86_absmax8(m, x + k);
        float amax = x86_hmax(m);
        float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        for (int k = 0; k < WTYPE_QK_K / 32; k++) {
            int lo, hi;
            x86_quant32(x + 32 * k, id, y->qs + 32 * k, &lo, &hi);
            y->bsums[2 * k] = (int16_t)lo;
            y->bsums[2 * k + 1] = (int16_t)hi;
        }
        y->d = amax / 127.0f;
    }
}

static void x86_axpy_f32(float *y, float a, const float *x, size_t n) {
    __m256 av = _mm256_set1_ps(a);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

static void x86_axpy_f16(float *y, float a, const uint16_t *x, size_t n) {
    __m256 av = _mm256_set1_ps(a);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 xv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i)));
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, xv, _mm256_loadu_ps(y + i)));
    }
    for (; i < n; i++) y[i] += a * x86_f16(x[i]);
}

static void x86_f32_to_f16(uint16_t *y, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = wtype_f32_to_f16(x[i]);
}

static void x86_init(cpu_kern *k) {
    k->dot[WTYPE_F32] = x86_dot_f32;
    k->dot[WTYPE_F16] = x86_dot_f16;
    k->dot[WTYPE_BF16] = x86_dot_bf16;
    k->dot[WTYPE_Q4_0] = x86_dot_q4_0;
    k->dot[WTYPE_Q4_1] = x86_dot_q4_1;
    k->dot[WTYPE_Q5_0] = x86_dot_q5_0;
    k->dot[WTYPE_Q5_1] = x86_dot_q5_1;
    k->dot[WTYPE_Q8_0] = x86_dot_q8_0;
    k->dot[WTYPE_Q4_K] = x86_dot_q4_K;
    k->dot[WTYPE_Q5_K] = x86_dot_q5_K;
    k->dot[WTYPE_Q6_K] = x86_dot_q6_K;
    k->quant_q8 = x86_quant_q8;
    k->quant_q8k = x86_quant_q8k;
    k->axpy_f32 = x86_axpy_f32;
    k->axpy_f16 = x86_axpy_f16;
    k->f32_to_f16 = x86_f32_to_f16;
}
