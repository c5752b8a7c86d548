/* Inside the CPU path: the 8-bit activation blocks the integer dot products read, and the
 * kernel table one SIMD level fills. cpu_kern_scalar.c fills every entry; a SIMD file
 * overrides the entries it has, so a level never lacks a kernel. */
#ifndef VKLLM_CPU_KERN_H
#define VKLLM_CPU_KERN_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/cpu/cpu_ops.h"
#include "runtime/format/wtype.h"

/* 32 activations for the Q4_0..Q8_0 family: x[j] ~ d * qs[j] with d = amax / 127, and
 * s = d * sum(qs), which the offset (Q4_0, Q5_0) and min (Q4_1, Q5_1) terms need. */
typedef struct cpu_q8 {
    float d, s;
    int8_t qs[WTYPE_QK];
} cpu_q8;

/* 256 activations for the K-quants: x[j] ~ d * qs[j], bsums[k] = sum of qs[16k .. 16k+15]
 * (the sums the Q4_K/Q5_K mins and the Q6_K offset multiply). */
typedef struct cpu_q8k {
    float d;
    int8_t qs[WTYPE_QK_K];
    int16_t bsums[WTYPE_QK_K / 16];
} cpu_q8k;

_Static_assert(sizeof(cpu_q8) == 40, "cpu_q8 must be 40 bytes");
_Static_assert(sizeof(cpu_q8k) == 292, "cpu_q8k must be 292 bytes");

/* How a weight type wants its activations. */
typedef enum cpu_act { CPU_ACT_NONE, CPU_ACT_F32, CPU_ACT_Q8, CPU_ACT_Q8K } cpu_act;
cpu_act cpu_act_of(uint32_t type);
/* Bytes of one activation row of n elements in that form. */
size_t cpu_act_row_bytes(cpu_act act, size_t n);

/* Tokens one dot call serves: each weight block is unpacked once for all of them. */
#define CPU_NX_MAX 4

/* s[t] = (weight row of n elements at w) . (activation row t at x + t * x_stride bytes), for
 * t < nx <= CPU_NX_MAX. n is a multiple of the type's block. */
typedef void (*cpu_dot_fn)(size_t n, const void *w, const void *x, size_t x_stride, size_t nx,
                           float *s);

typedef struct cpu_kern {
    cpu_dot_fn dot[WTYPE_COUNT]; /* NULL: type not supported */
    /* n a multiple of 32 / 256. Every level must give the same codes as the scalar one
     * (round to nearest even of x * (127 / amax)), so levels differ only in float sums. */
    void (*quant_q8)(const float *x, cpu_q8 *y, size_t n);
    void (*quant_q8k)(const float *x, cpu_q8k *y, size_t n);
    void (*axpy_f32)(float *y, float a, const float *x, size_t n);     /* y += a x */
    void (*axpy_f16)(float *y, float a, const uint16_t *x, size_t n);  /* y += a x */
    void (*f32_to_f16)(uint16_t *y, const float *x, size_t n);         /* nearest even */
} cpu_kern;

/* Fillers, one per level; a SIMD filler is only called when cpu_simd_supported says so. */
void cpu_kern_init_scalar(cpu_kern *k);
void cpu_kern_init_neon(cpu_kern *k);
void cpu_kern_init_avx2(cpu_kern *k);
void cpu_kern_init_avx2_vnni(cpu_kern *k);
void cpu_kern_init_avx512(cpu_kern *k);
void cpu_kern_init_avx512_vnni(cpu_kern *k);
/* Nonzero when the build compiled that file's kernels (its compiler flags were given). */
extern const int cpu_kern_built_neon, cpu_kern_built_avx2, cpu_kern_built_avx2_vnni,
    cpu_kern_built_avx512, cpu_kern_built_avx512_vnni;

/* The table of a supported level (filled once, then read-only). */
const cpu_kern *cpu_kern_get(cpu_simd level);

/* Per-thread scratch of a pool, grown by the calling thread before a run (never inside one).
 * Returns 0 when the memory cannot be had. */
int cpu_pool_reserve(cpu_pool *pool, size_t shared_bytes, size_t per_thread_bytes);
void *cpu_pool_shared_scratch(cpu_pool *pool);
void *cpu_pool_thread_scratch(cpu_pool *pool, uint32_t thread);
const cpu_kern *cpu_pool_kern(const cpu_pool *pool);
int cpu_pool_drop_last(const cpu_pool *pool);

#endif
