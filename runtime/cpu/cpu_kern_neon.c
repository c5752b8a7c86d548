/* AArch64 Advanced SIMD kernels for the float rows, Q8_0 and Q4_0 (the decode-heavy types);
 * the other types keep the scalar kernels. Compiled only for AArch64; elsewhere the level is
 * absent. */
#include "runtime/cpu/cpu_kern.h"

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>

static void neon_dot_f32(size_t n, const void *w, const void *x, size_t xs, size_t nx, float *s) {
    const float *wr = w;
    for (size_t t = 0; t < nx; t++) {
        const float *xr = (const float *)((const char *)x + t * xs);
        float32x4_t a0 = vdupq_n_f32(0.0f), a1 = vdupq_n_f32(0.0f);
        size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            a0 = vfmaq_f32(a0, vld1q_f32(wr + i), vld1q_f32(xr + i));
            a1 = vfmaq_f32(a1, vld1q_f32(wr + i + 4), vld1q_f32(xr + i + 4));
        }
        float r = vaddvq_f32(vaddq_f32(a0, a1));
        for (; i < n; i++) r += wr[i] * xr[i];
        s[t] = r;
    }
}

static void neon_dot_f16(size_t n, const void *w, const void *x, size_t xs, size_t nx, float *s) {
    const uint16_t *wr = w;
    for (size_t t = 0; t < nx; t++) {
        const float *xr = (const float *)((const char *)x + t * xs);
        float32x4_t a0 = vdupq_n_f32(0.0f), a1 = vdupq_n_f32(0.0f);
        size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(wr + i));
            a0 = vfmaq_f32(a0, vcvt_f32_f16(vget_low_f16(h)), vld1q_f32(xr + i));
            a1 = vfmaq_f32(a1, vcvt_f32_f16(vget_high_f16(h)), vld1q_f32(xr + i + 4));
        }
        float r = vaddvq_f32(vaddq_f32(a0, a1));
        for (; i < n; i++) r += wtype_f16_to_f32(wr[i]) * xr[i];
        s[t] = r;
    }
}

/* Sum of 16 products of signed bytes, widened through 16 bits (no dot-product extension). */
static int32x4_t neon_dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
    int16x8_t p = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    p = vmlal_s8(p, vget_high_s8(a), vget_high_s8(b));
    return vpadalq_s16(acc, p);
}

static void neon_dot_q8_0(size_t n, const void *w, const void *x, size_t xs, size_t nx, float *s) {
    for (size_t t = 0; t < nx; t++) {
        const block_q8_0 *b = w;
        const cpu_q8 *y = (const cpu_q8 *)((const char *)x + t * xs);
        float acc = 0.0f;
        for (size_t i = 0; i < n / WTYPE_QK; i++, b++, y++) {
            int32x4_t p = vdupq_n_s32(0);
            p = neon_dot16(p, vld1q_s8(b->qs), vld1q_s8(y->qs));
            p = neon_dot16(p, vld1q_s8(b->qs + 16), vld1q_s8(y->qs + 16));
            acc += wtype_f16_to_f32(b->d) * (y->d * (float)vaddvq_s32(p));
        }
        s[t] = acc;
    }
}

static void neon_dot_q4_0(size_t n, const void *w, const void *x, size_t xs, size_t nx, float *s) {
    for (size_t t = 0; t < nx; t++) {
        const block_q4_0 *b = w;
        const cpu_q8 *y = (const cpu_q8 *)((const char *)x + t * xs);
        float acc = 0.0f;
        for (size_t i = 0; i < n / WTYPE_QK; i++, b++, y++) {
            uint8x16_t q = vld1q_u8(b->qs);
            int8x16_t lo = vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(15)));
            int8x16_t hi = vreinterpretq_s8_u8(vshrq_n_u8(q, 4));
            int32x4_t p = vdupq_n_s32(0);
            p = neon_dot16(p, lo, vld1q_s8(y->qs));
            p = neon_dot16(p, hi, vld1q_s8(y->qs + 16));
            float d = wtype_f16_to_f32(b->d);
            acc += d * (y->d * (float)vaddvq_s32(p)) - 8.0f * d * y->s;
        }
        s[t] = acc;
    }
}

static void neon_axpy_f32(float *y, float a, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), a));
    for (; i < n; i++) y[i] += a * x[i];
}

const int cpu_kern_built_neon = 1;
void cpu_kern_init_neon(cpu_kern *k) {
    k->dot[WTYPE_F32] = neon_dot_f32;
    k->dot[WTYPE_F16] = neon_dot_f16;
    k->dot[WTYPE_Q8_0] = neon_dot_q8_0;
    k->dot[WTYPE_Q4_0] = neon_dot_q4_0;
    k->axpy_f32 = neon_axpy_f32;
}
#else
const int cpu_kern_built_neon = 0;
void cpu_kern_init_neon(cpu_kern *k) { (void)k; }
#endif
