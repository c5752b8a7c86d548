/* The weight-type table and the scalar float conversions. Block codecs for the quantized
 * types live beside the table rows: decoders follow shared/FORMATS.md literally, encoders are
 * round-to-nearest with a small scale search, meant for test models and kernel checks. */
#include "runtime/format/wtype.h"

#include <math.h>
#include <string.h>

float wtype_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalize */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t wtype_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t exp = (x >> 23) & 0xff;
    uint32_t man = x & 0x7fffff;
    /* NaN keeps its top payload bits and is forced quiet so it cannot turn into inf. */
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 | (man >> 13) : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00);
    if (e <= 0) {
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++; /* may carry into exponent: correct */
    return (uint16_t)half;
}

float wtype_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t wtype_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* Nearest integer to v within [lo, hi] (halves round up). NaN lands on lo, so a stray NaN
 * in the input still yields a well-formed block rather than an undefined conversion. After
 * the clamp v - lo >= 0, so truncation is floor: much cheaper than a libm rounding call. */
static int wq_round(float v, int lo, int hi) {
    v = fmaxf(v, (float)lo);
    v = fminf(v, (float)hi);
    return lo + (int)(v - (float)lo + 0.5f);
}

/* Stores f as f16 and returns what a decoder will read back: codes are chosen against the
 * rounded scale so that encode and decode agree exactly. */
static float wq_f16(float f, uint16_t *out) {
    *out = wtype_f32_to_f16(f);
    return wtype_f16_to_f32(*out);
}

/* The element of largest magnitude, with its sign. */
static float wq_peak(const float *x, int n) {
    float peak = 0.0f, amax = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            peak = x[i];
        }
    }
    return peak;
}

static void wq_range(const float *x, int n, float *lo, float *hi) {
    *lo = *hi = x[0];
    for (int i = 1; i < n; i++) {
        *lo = fminf(*lo, x[i]);
        *hi = fmaxf(*hi, x[i]);
    }
}

/* ---- F32, F16, BF16 ---- */

static void dequant_f32(const void *src, float *dst, size_t n) {
    memcpy(dst, src, n * sizeof(float));
}

static void quant_f32(const float *src, void *dst, size_t n) {
    memcpy(dst, src, n * sizeof(float));
}

static void dequant_f16(const void *src, float *dst, size_t n) {
    const uint16_t *h = src;
    for (size_t i = 0; i < n; i++) dst[i] = wtype_f16_to_f32(h[i]);
}

static void quant_f16(const float *src, void *dst, size_t n) {
    uint16_t *h = dst;
    for (size_t i = 0; i < n; i++) h[i] = wtype_f32_to_f16(src[i]);
}

static void dequant_bf16(const void *src, float *dst, size_t n) {
    const uint16_t *h = src;
    for (size_t i = 0; i < n; i++) dst[i] = wtype_bf16_to_f32(h[i]);
}

static void quant_bf16(const float *src, void *dst, size_t n) {
    uint16_t *h = dst;
    for (size_t i = 0; i < n; i++) h[i] = wtype_f32_to_bf16(src[i]);
}

/* ---- 32-element blocks: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 ---- */

static uint32_t wq_load_qh(const uint8_t qh[4]) {
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

static void wq_store_qh(uint8_t qh[4], uint32_t h) {
    for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(h >> (8 * k));
}

static void dequant_q4_0(const void *src, float *dst, size_t n) {
    const block_q4_0 *b = src;
    for (size_t i = 0; i < n / WTYPE_QK; i++, b++, dst += WTYPE_QK) {
        float d = wtype_f16_to_f32(b->d);
        for (int j = 0; j < WTYPE_QK / 2; j++) {
            dst[j] = d * (float)((b->qs[j] & 15) - 8);
            dst[j + 16] = d * (float)((b->qs[j] >> 4) - 8);
        }
    }
}

/* The peak maps to code 0 (= -8), which uses the one extra negative level of the 4-bit range
 * instead of wasting it. */
static void quant_q4_0(const float *src, void *dst, size_t n) {
    block_q4_0 *b = dst;
    for (size_t i = 0; i < n / WTYPE_QK; i++, b++, src += WTYPE_QK) {
        float d = wq_f16(wq_peak(src, WTYPE_QK) / -8.0f, &b->d);
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int j = 0; j < WTYPE_QK / 2; j++) {
            int lo = wq_round(src[j] * id + 8.0f, 0, 15);
            int hi = wq_round(src[j + 16] * id + 8.0f, 0, 15);
            b->qs[j] = (uint8_t)(lo | hi << 4);
        }
    }
}

static void dequant_q4_1(const void *src, float *dst, size_t n) {
    const block_q4_1 *b = src;
    for (size_t i = 0; i < n / WTYPE_QK; i++, b++, dst += WTYPE_QK) {
        float d = wtype_f16_to_f32(b->d), m = wtype_f16_to_f32(b->m);
        for (int j = 0; j < WTYPE_QK / 2; j++) {
            dst[j] = d * (float)(b->qs[j] & 15) + m;
            dst[j + 16] = d * (float)(b->qs[j] >> 4) + m;
        }
    }
}

static void quant_q4_1(const float *src, void *dst, size_t n) {
    block_q4_1 *b = dst;
    for (size_t i = 0; i < n / WTYPE_QK; i++, b++, src += WTYPE_QK) {
        float lo, hi;
        wq_range(src, WTYPE_QK, &lo, &hi);
        float d = wq_f16((hi - lo) / 15.0f, &b->d);
        float m = wq_f16(lo, &b->m);
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int j = 0; j < WTYPE_QK / 2; j++) {
            int q0 = wq_round((src[j] - m) * id, 0, 15);
            int q1 = wq_round((src[j + 16] - m) * id, 0, 15);
            b->qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

static void dequant_q5_0(const void *src, float *dst, size_t n) {
    const block_q5_0 *b = src;
    for (size_t i = 0; i < n / WTYPE_QK; i++, b++, dst += WTYPE_QK) {
        float d = wtype_f16_to_f32(b->d);
        uint32_t h = wq_load_qh(b->qh);
        for (int j = 0; j < WTYPE_QK / 2; j++) {
            int q0 = (b->qs[j] & 15) | (int)((h >> j) & 1) << 4;
            int q1 = (b->qs[j] >> 4) | (int)((h >> (j + 16)) & 1) << 4;
            dst[j] = d * (float)(q0 - 16);
            dst[j + 16] = d * (float)(q1 - 16);
        }
    }
}

static void quant_q5_0(const float *src, void *dst, size_t n) {
    block_q5_0 *b = dst;
    for (size_t i = 0; i < n / WTYPE_QK; i++, b++, src += WTYPE_QK) {
        float d = wq_f16(wq_peak(src, WTYPE_QK) / -16.0f, &b->d);
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint32_t h = 0;
        for (int j = 0; j < WTYPE_QK / 2; j++) {
            int q0 = wq_round(src[j] * id + 16.0f, 0, 31);
            int q1 = wq_round(src[j + 16] * id + 16.0f, 0, 31);
            b->qs[j] = (uint8_t)((q0 & 15) | (q1 & 15) << 4);
            h |= (uint32_t)(q0 >> 4) << j | (uint32_t)(q1 >> 4) << (j + 16);
        }
        wq_store_qh(b->qh, h);
    }
}

static void dequant_q5_1(const void *src, float *dst, size_t n) {
    const block_q5_1 *b = src;
    for (size_t i = 0; i < n / WTYPE_QK; i++, b++, dst += WTYPE_QK) {
        float d = wtype_f16_to_f32(b->d), m = wtype_f16_to_f32(b->m);
        uint32_t h = wq_load_qh(b->qh);
        for (int j = 0; j < WTYPE_QK / 2; j++) {
            int q0 = (b->qs[j] & 15) | (int)((h >> j) & 1) << 4;
            int q1 = (b->qs[j] >> 4) | (int)((h >> (j + 16)) & 1) << 4;
            dst[j] = d * (float)q0 + m;
            dst[j + 16] = d * (float)q1 + m;
        }
    }
}

static void quant_q5_1(const float *src, void *dst, size_t n) {
    block_q5_1 *b = dst;
    for (size_t i = 0; i < n / WTYPE_QK; i++, b++, src += WTYPE_QK) {
        float lo, hi;
        wq_range(src, WTYPE_QK, &lo, &hi);
        float d = wq_f16((hi - lo) / 31.0f, &b->d);
        float m = wq_f16(lo, &b->m);
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint32_t h = 0;
        for (int j = 0; j < WTYPE_QK / 2; j++) {
            int q0 = wq_round((src[j] - m) * id, 0, 31);
            int q1 = wq_round((src[j + 16] - m) * id, 0, 31);
            b->qs[j] = (uint8_t)((q0 & 15) | (q1 & 15) << 4);
            h |= (uint32_t)(q0 >> 4) << j | (uint32_t)(q1 >> 4) << (j + 16);
        }
        wq_store_qh(b->qh, h);
    }
}

static void dequant_q8_0(const void *src, float *dst, size_t n) {
    const block_q8_0 *b = src;
    for (size_t i = 0; i < n / WTYPE_QK; i++, b++, dst += WTYPE_QK) {
        float d = wtype_f16_to_f32(b->d);
        for (int j = 0; j < WTYPE_QK; j++) dst[j] = d * (float)b->qs[j];
    }
}

static void quant_q8_0(const float *src, void *dst, size_t n) {
    block_q8_0 *b = dst;
    for (size_t i = 0; i < n / WTYPE_QK; i++, b++, src += WTYPE_QK) {
        float d = wq_f16(fabsf(wq_peak(src, WTYPE_QK)) / 127.0f, &b->d);
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int j = 0; j < WTYPE_QK; j++) b->qs[j] = (int8_t)wq_round(src[j] * id, -127, 127);
    }
}

/* ---- K-quants: 256-element super-blocks ---- */

void wtype_k_scale_min(const uint8_t scales[12], int j, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = scales[j] & 63;
        *m = scales[j + 4] & 63;
    } else {
        *sc = (uint8_t)((scales[j + 4] & 15) | (scales[j - 4] >> 6) << 4);
        *m = (uint8_t)((scales[j + 4] >> 4) | (scales[j] >> 6) << 4);
    }
}

/* Inverse of wtype_k_scale_min for eight 6-bit pairs. */
static void kq_pack_scales(uint8_t scales[12], const uint8_t sc[8], const uint8_t m[8]) {
    for (int j = 0; j < 4; j++) {
        scales[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        scales[j + 4] = (uint8_t)(m[j] | (m[j + 4] >> 4) << 6);
        scales[j + 8] = (uint8_t)((sc[j + 4] & 15) | (m[j + 4] & 15) << 4);
    }
}

/* The scale search tries steps of range / (nmax + t) for t in [KQ_T0, KQ_T0 + KQ_STEPS *
 * KQ_DT]: t > 0 clips the extremes, which pays off for bell-shaped data. */
#define KQ_T0 (-1.0f)
#define KQ_DT 0.5f
#define KQ_STEPS 6
#define KQ_SUB_MAX 32 /* largest sub-block the fitters handle */

/* Codes for x ≈ s*q + b, q in 0..nmax; returns the squared error. */
static float kq_assign_asym(const float *x, int n, int nmax, float s, float b, uint8_t *q) {
    float is = 1.0f / s, err = 0.0f;
    for (int i = 0; i < n; i++) {
        q[i] = (uint8_t)wq_round((x[i] - b) * is, 0, nmax);
        float e = s * (float)q[i] + b - x[i];
        err += e * e;
    }
    return err;
}

/* Least-squares (s, b) for fixed codes, with b <= 0 because K-quant mins only subtract.
 * Returns 0 when the codes cannot determine a positive step. */
static int kq_lsq_asym(const float *x, const uint8_t *q, int n, float *s, float *b) {
    double sq = 0, sqq = 0, sx = 0, sqx = 0;
    for (int i = 0; i < n; i++) {
        sq += q[i];
        sqq += (double)q[i] * q[i];
        sx += x[i];
        sqx += (double)q[i] * x[i];
    }
    double det = n * sqq - sq * sq, ss, bb;
    if (det <= 0) return 0;
    ss = (n * sqx - sq * sx) / det;
    bb = (sqq * sx - sq * sqx) / det;
    if (bb > 0) {
        bb = 0;
        ss = sqx / sqq;
    }
    if (!(ss > 0)) return 0;
    *s = (float)ss;
    *b = (float)bb;
    return 1;
}

/* Step s >= 0 and min mn >= 0 with x ≈ s*q - mn, q in 0..nmax, n <= KQ_SUB_MAX. */
static float kq_fit_asym(const float *x, int n, int nmax, float *mn) {
    float lo, hi;
    wq_range(x, n, &lo, &hi);
    if (lo > 0.0f) lo = 0.0f;
    if (!(hi > lo)) { /* constant non-positive sub-block: the min alone carries it */
        *mn = -lo;
        return 0.0f;
    }
    uint8_t q[KQ_SUB_MAX];
    float best_s = (hi - lo) / (float)nmax, best_b = lo;
    float best_err = kq_assign_asym(x, n, nmax, best_s, best_b, q);
    for (int k = 0; k <= KQ_STEPS; k++) {
        float s = (hi - lo) / ((float)nmax + KQ_T0 + KQ_DT * (float)k), b = lo;
        kq_assign_asym(x, n, nmax, s, b, q);
        for (int it = 0; it < 2; it++) {
            if (!kq_lsq_asym(x, q, n, &s, &b)) break;
            float err = kq_assign_asym(x, n, nmax, s, b, q);
            if (err < best_err) {
                best_err = err;
                best_s = s;
                best_b = b;
            }
        }
    }
    *mn = -best_b;
    return best_s;
}

/* Q4_K / Q5_K body: fits the eight 32-element sub-blocks, quantizes their steps and mins to
 * six bits against d and dmin, then picks every code against the decoded values. */
static void kq_encode_asym(const float *x, int nmax, uint16_t *d16, uint16_t *dmin16,
                           uint8_t scales[12], uint8_t q[WTYPE_QK_K]) {
    float s[8], mn[8], smax = 0.0f, mmax = 0.0f;
    for (int j = 0; j < 8; j++) {
        s[j] = kq_fit_asym(x + 32 * j, 32, nmax, &mn[j]);
        smax = fmaxf(smax, s[j]);
        mmax = fmaxf(mmax, mn[j]);
    }
    float d = wq_f16(smax / 63.0f, d16), dmin = wq_f16(mmax / 63.0f, dmin16);
    uint8_t sc[8], m[8];
    for (int j = 0; j < 8; j++) {
        sc[j] = (uint8_t)(d > 0.0f ? wq_round(s[j] / d, 0, 63) : 0);
        m[j] = (uint8_t)(dmin > 0.0f ? wq_round(mn[j] / dmin, 0, 63) : 0);
    }
    kq_pack_scales(scales, sc, m);
    for (int j = 0; j < 8; j++) {
        float step = d * (float)sc[j], off = dmin * (float)m[j];
        float is = step > 0.0f ? 1.0f / step : 0.0f;
        for (int l = 0; l < 32; l++) q[32 * j + l] = (uint8_t)wq_round((x[32 * j + l] + off) * is, 0, nmax);
    }
}

static void dequant_q4_K(const void *src, float *dst, size_t n) {
    const block_q4_K *b = src;
    for (size_t i = 0; i < n / WTYPE_QK_K; i++, b++, dst += WTYPE_QK_K) {
        float d = wtype_f16_to_f32(b->d), dmin = wtype_f16_to_f32(b->dmin);
        for (int c = 0; c < 4; c++) {
            uint8_t sc0, m0, sc1, m1;
            wtype_k_scale_min(b->scales, 2 * c, &sc0, &m0);
            wtype_k_scale_min(b->scales, 2 * c + 1, &sc1, &m1);
            float d0 = d * sc0, o0 = dmin * m0, d1 = d * sc1, o1 = dmin * m1;
            const uint8_t *qs = b->qs + 32 * c;
            float *y = dst + 64 * c;
            for (int l = 0; l < 32; l++) {
                y[l] = d0 * (float)(qs[l] & 15) - o0;
                y[l + 32] = d1 * (float)(qs[l] >> 4) - o1;
            }
        }
    }
}

static void quant_q4_K(const float *src, void *dst, size_t n) {
    block_q4_K *b = dst;
    uint8_t q[WTYPE_QK_K];
    for (size_t i = 0; i < n / WTYPE_QK_K; i++, b++, src += WTYPE_QK_K) {
        kq_encode_asym(src, 15, &b->d, &b->dmin, b->scales, q);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                b->qs[32 * c + l] = (uint8_t)(q[64 * c + l] | q[64 * c + 32 + l] << 4);
    }
}

static void dequant_q5_K(const void *src, float *dst, size_t n) {
    const block_q5_K *b = src;
    for (size_t i = 0; i < n / WTYPE_QK_K; i++, b++, dst += WTYPE_QK_K) {
        float d = wtype_f16_to_f32(b->d), dmin = wtype_f16_to_f32(b->dmin);
        for (int c = 0; c < 4; c++) {
            uint8_t sc0, m0, sc1, m1;
            wtype_k_scale_min(b->scales, 2 * c, &sc0, &m0);
            wtype_k_scale_min(b->scales, 2 * c + 1, &sc1, &m1);
            float d0 = d * sc0, o0 = dmin * m0, d1 = d * sc1, o1 = dmin * m1;
            const uint8_t *qs = b->qs + 32 * c;
            float *y = dst + 64 * c;
            for (int l = 0; l < 32; l++) {
                int q0 = (qs[l] & 15) | ((b->qh[l] >> (2 * c)) & 1) << 4;
                int q1 = (qs[l] >> 4) | ((b->qh[l] >> (2 * c + 1)) & 1) << 4;
                y[l] = d0 * (float)q0 - o0;
                y[l + 32] = d1 * (float)q1 - o1;
            }
        }
    }
}

static void quant_q5_K(const float *src, void *dst, size_t n) {
    block_q5_K *b = dst;
    uint8_t q[WTYPE_QK_K];
    for (size_t i = 0; i < n / WTYPE_QK_K; i++, b++, src += WTYPE_QK_K) {
        kq_encode_asym(src, 31, &b->d, &b->dmin, b->scales, q);
        memset(b->qh, 0, sizeof b->qh);
        for (int c = 0; c < 4; c++) {
            for (int l = 0; l < 32; l++) {
                int q0 = q[64 * c + l], q1 = q[64 * c + 32 + l];
                b->qs[32 * c + l] = (uint8_t)((q0 & 15) | (q1 & 15) << 4);
                b->qh[l] |= (uint8_t)((q0 >> 4) << (2 * c) | (q1 >> 4) << (2 * c + 1));
            }
        }
    }
}

/* Codes for x ≈ s*q, q in -32..31; returns the squared error. */
static float kq_assign_sym(const float *x, int n, float s, int8_t *q) {
    float is = 1.0f / s, err = 0.0f;
    for (int i = 0; i < n; i++) {
        q[i] = (int8_t)wq_round(x[i] * is, -32, 31);
        float e = s * (float)q[i] - x[i];
        err += e * e;
    }
    return err;
}

/* Signed step s with x ≈ s*q, q in -32..31, n <= KQ_SUB_MAX. The peak goes to the negative
 * side, which has the extra level; candidates and least-squares polish as for kq_fit_asym. */
static float kq_fit_sym(const float *x, int n) {
    float peak = wq_peak(x, n);
    if (peak == 0.0f) return 0.0f;
    int8_t q[KQ_SUB_MAX];
    float best_s = peak / -32.0f;
    float best_err = kq_assign_sym(x, n, best_s, q);
    for (int k = 0; k <= KQ_STEPS; k++) {
        float s = peak / -(32.0f + KQ_T0 + KQ_DT * (float)k);
        kq_assign_sym(x, n, s, q);
        for (int it = 0; it < 2; it++) {
            double sqx = 0, sqq = 0;
            for (int i = 0; i < n; i++) {
                sqx += (double)q[i] * x[i];
                sqq += (double)q[i] * q[i];
            }
            if (sqq <= 0 || sqx == 0) break;
            s = (float)(sqx / sqq);
            float err = kq_assign_sym(x, n, s, q);
            if (err < best_err) {
                best_err = err;
                best_s = s;
            }
        }
    }
    return best_s;
}

static void dequant_q6_K(const void *src, float *dst, size_t n) {
    const block_q6_K *b = src;
    for (size_t i = 0; i < n / WTYPE_QK_K; i++, b++, dst += WTYPE_QK_K) {
        float d = wtype_f16_to_f32(b->d);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
            const int8_t *sc = b->scales + 8 * h;
            float *y = dst + 128 * h;
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q0 = (ql[l] & 15) | (qh[l] & 3) << 4;
                int q1 = (ql[l + 32] & 15) | (qh[l] >> 2 & 3) << 4;
                int q2 = (ql[l] >> 4) | (qh[l] >> 4 & 3) << 4;
                int q3 = (ql[l + 32] >> 4) | (qh[l] >> 6 & 3) << 4;
                y[l] = d * (float)sc[is] * (float)(q0 - 32);
                y[l + 32] = d * (float)sc[is + 2] * (float)(q1 - 32);
                y[l + 64] = d * (float)sc[is + 4] * (float)(q2 - 32);
                y[l + 96] = d * (float)sc[is + 6] * (float)(q3 - 32);
            }
        }
    }
}

static void quant_q6_K(const float *src, void *dst, size_t n) {
    block_q6_K *b = dst;
    uint8_t q[WTYPE_QK_K]; /* codes 0..63, element order */
    for (size_t i = 0; i < n / WTYPE_QK_K; i++, b++, src += WTYPE_QK_K) {
        float s[16], amax = 0.0f;
        for (int j = 0; j < 16; j++) {
            s[j] = kq_fit_sym(src + 16 * j, 16);
            amax = fmaxf(amax, fabsf(s[j]));
        }
        float d = wq_f16(amax / 127.0f, &b->d);
        for (int j = 0; j < 16; j++) {
            int sc = d > 0.0f ? wq_round(s[j] / d, -128, 127) : 0;
            b->scales[j] = (int8_t)sc;
            float step = d * (float)sc, is = step != 0.0f ? 1.0f / step : 0.0f;
            for (int l = 0; l < 16; l++) q[16 * j + l] = (uint8_t)(wq_round(src[16 * j + l] * is, -32, 31) + 32);
        }
        for (int h = 0; h < 2; h++) {
            uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
            const uint8_t *y = q + 128 * h;
            for (int l = 0; l < 32; l++) {
                int q0 = y[l], q1 = y[l + 32], q2 = y[l + 64], q3 = y[l + 96];
                ql[l] = (uint8_t)((q0 & 15) | (q2 & 15) << 4);
                ql[l + 32] = (uint8_t)((q1 & 15) | (q3 & 15) << 4);
                qh[l] = (uint8_t)((q0 >> 4) | (q1 >> 4) << 2 | (q2 >> 4) << 4 | (q3 >> 4) << 6);
            }
        }
    }
}

static const wtype_traits g_types[WTYPE_COUNT] = {
    [WTYPE_F32] = {.name = "f32", .block = 1, .bytes = 4,
                   .to_float = dequant_f32, .from_float = quant_f32},
    [WTYPE_F16] = {.name = "f16", .block = 1, .bytes = 2,
                   .to_float = dequant_f16, .from_float = quant_f16},
    [WTYPE_BF16] = {.name = "bf16", .block = 1, .bytes = 2,
                   .to_float = dequant_bf16, .from_float = quant_bf16},
    [WTYPE_Q4_0] = {.name = "q4_0", .block = 32, .bytes = 18,
                   .to_float = dequant_q4_0, .from_float = quant_q4_0},
    [WTYPE_Q4_1] = {.name = "q4_1", .block = 32, .bytes = 20,
                   .to_float = dequant_q4_1, .from_float = quant_q4_1},
    [WTYPE_Q5_0] = {.name = "q5_0", .block = 32, .bytes = 22,
                   .to_float = dequant_q5_0, .from_float = quant_q5_0},
    [WTYPE_Q5_1] = {.name = "q5_1", .block = 32, .bytes = 24,
                   .to_float = dequant_q5_1, .from_float = quant_q5_1},
    [WTYPE_Q8_0] = {.name = "q8_0", .block = 32, .bytes = 34,
                   .to_float = dequant_q8_0, .from_float = quant_q8_0},
    [WTYPE_Q4_K] = {.name = "q4_K", .block = 256, .bytes = 144,
                   .to_float = dequant_q4_K, .from_float = quant_q4_K},
    [WTYPE_Q5_K] = {.name = "q5_K", .block = 256, .bytes = 176,
                   .to_float = dequant_q5_K, .from_float = quant_q5_K},
    [WTYPE_Q6_K] = {.name = "q6_K", .block = 256, .bytes = 210,
                   .to_float = dequant_q6_K, .from_float = quant_q6_K},
};

const wtype_traits *wtype_get(uint32_t type) {
    if (type >= WTYPE_COUNT || !g_types[type].name) return NULL;
    return &g_types[type];
}

uint64_t wtype_row_bytes(uint32_t type, uint64_t n) {
    const wtype_traits *t = wtype_get(type);
    if (!t || n % t->block) return 0;
    uint64_t blocks = n / t->block;
    if (blocks > UINT64_MAX / t->bytes) return 0;
    return blocks * t->bytes;
}
