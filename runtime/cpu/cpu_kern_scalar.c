/* The portable kernels: every entry of the table, in plain C. Integer dot products per block,
 * exactly as the SIMD levels compute them, then one float multiply-add per block; they define
 * the activation quantization every level must reproduce code for code. */
#include <math.h>
#include <string.h>

#include "runtime/cpu/cpu_kern.h"

/* ---------------------------------------------------------------- activations ---- */

static float sc_absmax(const float *x, size_t n) {
    float amax = 0.0f;
    for (size_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    return amax;
}

/* nearbyintf: the current rounding mode, nearest-even by default, as SIMD conversions do. */
static void sc_quant_q8(const float *x, cpu_q8 *y, size_t n) {
    for (size_t b = 0; b < n / WTYPE_QK; b++, x += WTYPE_QK, y++) {
        float amax = sc_absmax(x, WTYPE_QK);
        float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < WTYPE_QK; j++) {
            int q = (int)nearbyintf(x[j] * id);
            y->qs[j] = (int8_t)q;
            sum += q;
        }
        y->d = amax / 127.0f;
        y->s = y->d * (float)sum;
    }
}

static void sc_quant_q8k(const float *x, cpu_q8k *y, size_t n) {
    for (size_t b = 0; b < n / WTYPE_QK_K; b++, x += WTYPE_QK_K, y++) {
        float amax = sc_absmax(x, WTYPE_QK_K);
        float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        for (int k = 0; k < WTYPE_QK_K / 16; k++) {
            int sum = 0;
            for (int j = 16 * k; j < 16 * k + 16; j++) {
                int q = (int)nearbyintf(x[j] * id);
                y->qs[j] = (int8_t)q;
                sum += q;
            }
            y->bsums[k] = (int16_t)sum;
        }
        y->d = amax / 127.0f;
    }
}

static void sc_axpy_f32(float *y, float a, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

static void sc_axpy_f16(float *y, float a, const uint16_t *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += a * wtype_f16_to_f32(x[i]);
}

static void sc_f32_to_f16(uint16_t *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = wtype_f32_to_f16(x[i]);
}

/* ---------------------------------------------------------------- float weights ---- */

/* Four partial sums, so the scalar order resembles the SIMD lanes' and the chain is short. */
#define SC_FLOAT_DOT(name, T, load)                                                     \
    static void name(size_t n, const void *w, const void *x, size_t xs, size_t nx,      \
                     float *s) {                                                        \
        const T *wr = w;                                                                \
        for (size_t t = 0; t < nx; t++) {                                               \
            const float *xr = (const float *)((const char *)x + t * xs);                \
            float acc[4] = {0, 0, 0, 0};                                                \
            size_t i = 0;                                                               \
            for (; i + 4 <= n; i += 4)                                                  \
                for (int k = 0; k < 4; k++) acc[k] += load(wr[i + k]) * xr[i + k];      \
            for (; i < n; i++) acc[0] += load(wr[i]) * xr[i];                           \
            s[t] = (acc[0] + acc[1]) + (acc[2] + acc[3]);                               \
        }                                                                               \
    }

#define SC_LOAD_F32(v) (v)
SC_FLOAT_DOT(sc_dot_f32, float, SC_LOAD_F32)
SC_FLOAT_DOT(sc_dot_f16, uint16_t, wtype_f16_to_f32)
SC_FLOAT_DOT(sc_dot_bf16, uint16_t, wtype_bf16_to_f32)

/* ---------------------------------------------------------------- 32-element blocks ---- */

static uint32_t sc_qh32(const uint8_t qh[4]) {
    uint32_t h;
    memcpy(&h, qh, 4);
    return h; /* little-endian hosts only, like the GGUF reader */
}

/* Q4_0 and Q5_0 subtract their offset (8, 16) through the activation sum s instead of from
 * every code, as the SIMD levels do. */
static void sc_dot_q4_0(size_t n, const void *w, const void *x, size_t xs, size_t nx, float *s) {
    for (size_t t = 0; t < nx; t++) {
        const block_q4_0 *b = w;
        const cpu_q8 *y = (const cpu_q8 *)((const char *)x + t * xs);
        float acc = 0.0f;
        for (size_t i = 0; i < n / WTYPE_QK; i++, b++, y++) {
            int sum = 0;
            for (int j = 0; j < 16; j++) sum += (b->qs[j] & 15) * y->qs[j] + (b->qs[j] >> 4) * y->qs[j + 16];
            float d = wtype_f16_to_f32(b->d);
            acc += d * (y->d * (float)sum) - 8.0f * d * y->s;
        }
        s[t] = acc;
    }
}

static void sc_dot_q4_1(size_t n, const void *w, const void *x, size_t xs, size_t nx, float *s) {
    for (size_t t = 0; t < nx; t++) {
        const block_q4_1 *b = w;
        const cpu_q8 *y = (const cpu_q8 *)((const char *)x + t * xs);
        float acc = 0.0f;
        for (size_t i = 0; i < n / WTYPE_QK; i++, b++, y++) {
            int sum = 0;
            for (int j = 0; j < 16; j++) sum += (b->qs[j] & 15) * y->qs[j] + (b->qs[j] >> 4) * y->qs[j + 16];
            acc += wtype_f16_to_f32(b->d) * (y->d * (float)sum) + wtype_f16_to_f32(b->m) * y->s;
        }
        s[t] = acc;
    }
}

static int sc_q5_sum(const uint8_t qs[16], uint32_t h, const int8_t *y) {
    int sum = 0;
    for (int j = 0; j < 16; j++) {
        int q0 = (qs[j] & 15) | (int)((h >> j) & 1) << 4;
        int q1 = (qs[j] >> 4) | (int)((h >> (j + 16)) & 1) << 4;
        sum += q0 * y[j] + q1 * y[j + 16];
    }
    return sum;
}

static void sc_dot_q5_0(size_t n, const void *w, const void *x, size_t xs, size_t nx, float *s) {
    for (size_t t = 0; t < nx; t++) {
        const block_q5_0 *b = w;
        const cpu_q8 *y = (const cpu_q8 *)((const char *)x + t * xs);
        float acc = 0.0f;
        for (size_t i = 0; i < n / WTYPE_QK; i++, b++, y++) {
            int sum = sc_q5_sum(b->qs, sc_qh32(b->qh), y->qs);
            float d = wtype_f16_to_f32(b->d);
            acc += d * (y->d * (float)sum) - 16.0f * d * y->s;
        }
        s[t] = acc;
    }
}

static void sc_dot_q5_1(size_t n, const void *w, const void *x, size_t xs, size_t nx, float *s) {
    for (size_t t = 0; t < nx; t++) {
        const block_q5_1 *b = w;
        const cpu_q8 *y = (const cpu_q8 *)((const char *)x + t * xs);
        float acc = 0.0f;
        for (size_t i = 0; i < n / WTYPE_QK; i++, b++, y++) {
            int sum = sc_q5_sum(b->qs, sc_qh32(b->qh), y->qs);
            acc += wtype_f16_to_f32(b->d) * (y->d * (float)sum) + wtype_f16_to_f32(b->m) * y->s;
        }
        s[t] = acc;
    }
}

static void sc_dot_q8_0(size_t n, const void *w, const void *x, size_t xs, size_t nx, float *s) {
    for (size_t t = 0; t < nx; t++) {
        const block_q8_0 *b = w;
        const cpu_q8 *y = (const cpu_q8 *)((const char *)x + t * xs);
        float acc = 0.0f;
        for (size_t i = 0; i < n / WTYPE_QK; i++, b++, y++) {
            int sum = 0;
            for (int j = 0; j < WTYPE_QK; j++) sum += b->qs[j] * y->qs[j];
            acc += wtype_f16_to_f32(b->d) * (y->d * (float)sum);
        }
        s[t] = acc;
    }
}

/* ---------------------------------------------------------------- K-quants ---- */

/* Q4_K and Q5_K: sum over sub-blocks of sc*sum(q*y), and of m * (activation sum). */
static void sc_dot_q45_K(size_t n, const void *w, const void *x, size_t xs, size_t nx, float *s,
                         int five) {
    size_t bytes = five ? sizeof(block_q5_K) : sizeof(block_q4_K);
    for (size_t t = 0; t < nx; t++) {
        const cpu_q8k *y = (const cpu_q8k *)((const char *)x + t * xs);
        float acc = 0.0f;
        for (size_t i = 0; i < n / WTYPE_QK_K; i++, y++) {
            const char *blk = (const char *)w + i * bytes;
            const block_q4_K *b4 = (const block_q4_K *)blk;
            const block_q5_K *b5 = (const block_q5_K *)blk;
            const uint8_t *scales = five ? b5->scales : b4->scales;
            const uint8_t *qs = five ? b5->qs : b4->qs;
            int sumi = 0, summ = 0;
            for (int c = 0; c < 4; c++) {
                uint8_t sc0, m0, sc1, m1;
                wtype_k_scale_min(scales, 2 * c, &sc0, &m0);
                wtype_k_scale_min(scales, 2 * c + 1, &sc1, &m1);
                int s0 = 0, s1 = 0;
                for (int l = 0; l < 32; l++) {
                    int q0 = qs[32 * c + l] & 15, q1 = qs[32 * c + l] >> 4;
                    if (five) {
                        q0 |= ((b5->qh[l] >> (2 * c)) & 1) << 4;
                        q1 |= ((b5->qh[l] >> (2 * c + 1)) & 1) << 4;
                    }
                    s0 += q0 * y->qs[64 * c + l];
                    s1 += q1 * y->qs[64 * c + 32 + l];
                }
                sumi += sc0 * s0 + sc1 * s1;
                summ += m0 * (y->bsums[4 * c] + y->bsums[4 * c + 1]) + m1 * (y->bsums[4 * c + 2] + y->bsums[4 * c + 3]);
            }
            uint16_t d16, dmin16;
            memcpy(&d16, blk, 2);
            memcpy(&dmin16, blk + 2, 2);
            acc += wtype_f16_to_f32(d16) * y->d * (float)sumi - wtype_f16_to_f32(dmin16) * y->d * (float)summ;
        }
        s[t] = acc;
    }
}

static void sc_dot_q4_K(size_t n, const void *w, const void *x, size_t xs, size_t nx, float *s) {
    sc_dot_q45_K(n, w, x, xs, nx, s, 0);
}

static void sc_dot_q5_K(size_t n, const void *w, const void *x, size_t xs, size_t nx, float *s) {
    sc_dot_q45_K(n, w, x, xs, nx, s, 1);
}

/* Q6_K: sum over 16-element groups of scale * (sum(q*y) - 32 * bsum). */
static void sc_dot_q6_K(size_t n, const void *w, const void *x, size_t xs, size_t nx, float *s) {
    for (size_t t = 0; t < nx; t++) {
        const block_q6_K *b = w;
        const cpu_q8k *y = (const cpu_q8k *)((const char *)x + t * xs);
        float acc = 0.0f;
        for (size_t i = 0; i < n / WTYPE_QK_K; i++, b++, y++) {
            int sumi = 0;
            for (int h = 0; h < 2; h++) {
                const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
                const int8_t *yq = y->qs + 128 * h;
                int grp[8] = {0};
                for (int l = 0; l < 32; l++) {
                    int is = l / 16;
                    int q0 = (ql[l] & 15) | (qh[l] & 3) << 4;
                    int q1 = (ql[l + 32] & 15) | (qh[l] >> 2 & 3) << 4;
                    int q2 = (ql[l] >> 4) | (qh[l] >> 4 & 3) << 4;
                    int q3 = (ql[l + 32] >> 4) | (qh[l] >> 6 & 3) << 4;
                    grp[is] += q0 * yq[l];
                    grp[is + 2] += q1 * yq[l + 32];
                    grp[is + 4] += q2 * yq[l + 64];
                    grp[is + 6] += q3 * yq[l + 96];
                }
                for (int g = 0; g < 8; g++)
                    sumi += b->scales[8 * h + g] * (grp[g] - 32 * y->bsums[8 * h + g]);
            }
            acc += wtype_f16_to_f32(b->d) * y->d * (float)sumi;
        }
        s[t] = acc;
    }
}

void cpu_kern_init_scalar(cpu_kern *k) {
    memset(k, 0, sizeof *k);
    k->dot[WTYPE_F32] = sc_dot_f32;
    k->dot[WTYPE_F16] = sc_dot_f16;
    k->dot[WTYPE_BF16] = sc_dot_bf16;
    k->dot[WTYPE_Q4_0] = sc_dot_q4_0;
    k->dot[WTYPE_Q4_1] = sc_dot_q4_1;
    k->dot[WTYPE_Q5_0] = sc_dot_q5_0;
    k->dot[WTYPE_Q5_1] = sc_dot_q5_1;
    k->dot[WTYPE_Q8_0] = sc_dot_q8_0;
    k->dot[WTYPE_Q4_K] = sc_dot_q4_K;
    k->dot[WTYPE_Q5_K] = sc_dot_q5_K;
    k->dot[WTYPE_Q6_K] = sc_dot_q6_K;
    k->quant_q8 = sc_quant_q8;
    k->quant_q8k = sc_quant_q8k;
    k->axpy_f32 = sc_axpy_f32;
    k->axpy_f16 = sc_axpy_f16;
    k->f32_to_f16 = sc_f32_to_f16;
}
