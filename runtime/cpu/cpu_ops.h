/* The native CPU compute path: a small thread pool that also carries the SIMD level, and the
 * ops of a LLaMA forward pass on host arrays, with weights read in place from the mmap'd GGUF
 * (ggml layout). Not the oracle: testkit/cpu_ref.c stays the plain-C reference these match. */
#ifndef VKLLM_CPU_OPS_H
#define VKLLM_CPU_OPS_H

#include <stddef.h>
#include <stdint.h>
#include "vkllm.h"

/* ---------------------------------------------------------------- SIMD level ---- */

/* Instruction-set levels of the kernels, in order of preference within an architecture. A
 * level is chosen per pool at run time; every level computes the same integer dot products,
 * so levels differ only by float rounding. */
typedef enum cpu_simd {
    CPU_SIMD_SCALAR = 0,  /* portable C, every machine */
    CPU_SIMD_NEON,        /* AArch64 Advanced SIMD */
    CPU_SIMD_AVX2,        /* x86-64 AVX2 + FMA + F16C */
    CPU_SIMD_AVX2_VNNI,   /* AVX2 level plus AVX-VNNI (vpdpbusd, vpdpwssd on 256 bits) */
    CPU_SIMD_AVX512,      /* AVX-512 F, BW, VL plus FMA and F16C */
    CPU_SIMD_AVX512_VNNI, /* AVX-512 level plus AVX512-VNNI */
    CPU_SIMD_COUNT
} cpu_simd;

/* "scalar", "neon", "avx2", "avx2_vnni", "avx512", "avx512_vnni". */
const char *cpu_simd_name(cpu_simd level);
/* Parses one of the names above; returns 0 for an unknown name. */
int cpu_simd_parse(const char *name, cpu_simd *out);
/* Nonzero when this build has the level's kernels and this CPU (and OS) can run them. */
int cpu_simd_supported(cpu_simd level);
/* The best supported level. */
cpu_simd cpu_simd_best(void);

/* Physical cores of this machine (SMT siblings counted once); at least 1. */
uint32_t cpu_physical_cores(void);

/* ---------------------------------------------------------------- thread pool ---- */

typedef struct cpu_pool cpu_pool;

/* One task of a parallel run: task in [0, n_tasks), thread in [0, cpu_pool_threads) names the
 * thread running it (the caller of cpu_pool_run is thread 0). */
typedef void (*cpu_task_fn)(void *ctx, uint32_t task, uint32_t thread);

/* Starts n_threads - 1 workers (n_threads 0: cpu_physical_cores()); the caller of
 * cpu_pool_run is the remaining thread. Workers live until cpu_pool_free, so no thread is
 * created per token. The SIMD level is cpu_simd_best(), or the level named by the environment
 * variable VKLLM_CPU_SIMD (scalar|neon|avx2|avx2_vnni|avx512|avx512_vnni); an unknown or
 * unsupported name fails with VKLLM_ERR_INVALID_ARG / VKLLM_ERR_UNSUPPORTED. */
vkllm_status cpu_pool_create(uint32_t n_threads, cpu_pool **out);
void cpu_pool_free(cpu_pool *pool);
uint32_t cpu_pool_threads(const cpu_pool *pool);

/* Runs fn(ctx, task, thread) for every task in [0, n_tasks), spread over the pool's threads,
 * and returns when all have finished. Not reentrant: one run per pool at a time, from one
 * thread; fn must not call cpu_pool_run on the same pool. */
void cpu_pool_run(cpu_pool *pool, cpu_task_fn fn, void *ctx, uint32_t n_tasks);

/* Forces a SIMD level for this pool's ops (tests, benchmarks). VKLLM_ERR_UNSUPPORTED when
 * cpu_simd_supported(level) is 0; the level is then left unchanged. */
vkllm_status cpu_pool_set_simd(cpu_pool *pool, cpu_simd level);
cpu_simd cpu_pool_simd(const cpu_pool *pool);

/* Test hook, off by default: when on, cpu_matmul ignores the last block of every weight row
 * and cpu_attention the last visible position, so a test can prove its check catches that. */
void cpu_pool_set_drop_last(cpu_pool *pool, int on);

/* ---------------------------------------------------------------- weights ---- */

/* Nonzero when cpu_matmul and cpu_embed take this ggml type id: F32, F16, BF16, Q8_0, Q4_0,
 * Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K. */
int cpu_type_supported(uint32_t type);

/* y[n_tok][rows] = x[n_tok][cols] W^T. W is in ggml layout (ne = [cols, rows]): row r is the
 * contiguous run of cols elements at byte r * wtype_row_bytes(type, cols), read in place from
 * the mmap (w aligned to 4 bytes; GGUF aligns tensors to 32). Quantized types first quantize
 * x to 8 bits per block (32 or 256 elements, as the type's integer dot product wants), so
 * they match the float oracle to about 2e-5 NMSE; F32/F16/BF16 keep x in f32. A token's
 * result has the same bits whatever n_tok and the thread count. y must not alias x. Fails with
 * VKLLM_ERR_UNSUPPORTED for a type outside the list above, VKLLM_ERR_INVALID_ARG when cols
 * is not a multiple of the type's block, VKLLM_ERR_OUT_OF_MEMORY when scratch cannot grow. */
vkllm_status cpu_matmul(cpu_pool *pool, uint32_t type, const void *w, size_t rows, size_t cols,
                        const float *x, size_t n_tok, float *y);

/* out[n_tok][dim] = rows tokens[t] of the embedding table W (ggml ne = [dim, n_vocab]),
 * dequantized. Fails when a token is outside [0, n_vocab) (nothing written past the tokens
 * before it) or the type is not supported. */
vkllm_status cpu_embed(cpu_pool *pool, float *out, uint32_t type, const void *w, size_t dim,
                       size_t n_vocab, const int32_t *tokens, size_t n_tok);

/* ---------------------------------------------------------------- elementwise ---- */

/* out[n_rows][n] = x / sqrt(mean(x^2) + eps) * weight[n], row by row; out may alias x. */
void cpu_rmsnorm(cpu_pool *pool, float *out, const float *x, const float *weight, size_t n_rows,
                 size_t n, float eps);
/* out[n] = silu(gate[n]) * up[n]; out may alias gate or up. */
void cpu_swiglu(cpu_pool *pool, float *out, const float *gate, const float *up, size_t n);
/* out[n] = a[n] + b[n]; out may alias a or b. */
void cpu_add(cpu_pool *pool, float *out, const float *a, const float *b, size_t n);

/* ---------------------------------------------------------------- attention ---- */

/* RoPE in place on x[n_tok][n_heads][head_dim]; token t sits at position pos0 + t. As
 * ref_rope: the first rot_dim (even, <= head_dim) dimensions of each head turn in pairs
 * (2i, 2i+1) (LLaMA GGUF, neox == 0) or (i, i + rot_dim/2) (NeoX), pair i by
 * (pos * freq_scale) * freq_base^(-2i/rot_dim) radians, angles in double. */
void cpu_rope(cpu_pool *pool, float *x, size_t n_tok, size_t n_heads, size_t head_dim,
              size_t rot_dim, size_t pos0, float freq_base, float freq_scale, int neox);

/* Copies src[n_tok][kv_dim] f32 into rows pos0 .. pos0+n_tok-1 of a cache laid out
 * [n_ctx][kv_dim] (kv_dim = n_kv_head * head_dim), as IEEE half bits (cache_f16, round to
 * nearest even) or f32. The caller keeps pos0 + n_tok <= n_ctx. One call for K, one for V. */
void cpu_kv_write(cpu_pool *pool, void *cache, int cache_f16, const float *src, size_t pos0,
                  size_t n_tok, size_t kv_dim);

/* Causal grouped-query attention for n_tok queries at positions pos0 .. pos0+n_tok-1:
 * q[n_tok][n_head][head_dim] f32, k_cache/v_cache [n_ctx][n_kv_head][head_dim] (f16 bits when
 * cache_f16, else f32), out[n_tok][n_head][head_dim]. Query t sees cache positions
 * 0 .. pos0 + t; head h reads KV head h / (n_head / n_kv_head); scores are q.k * scale
 * (ref_attention's is 1 / sqrt(head_dim)). out must not alias q. Fails with
 * VKLLM_ERR_INVALID_ARG on head counts that do not divide, VKLLM_ERR_OUT_OF_MEMORY when the
 * score scratch cannot grow. */
vkllm_status cpu_attention(cpu_pool *pool, float *out, const float *q, const void *k_cache,
                           const void *v_cache, int cache_f16, size_t n_tok, size_t pos0,
                           size_t n_head, size_t n_kv_head, size_t head_dim, float scale);

/* ---------------------------------------------------------------- yardstick ---- */

typedef struct cpu_read_result {
    double gbps;               /* median of the passes (bytes/ns) */
    double gbps_min, gbps_max;
    uint64_t bytes;            /* read per pass */
    uint32_t passes;
} cpu_read_result;

/* How fast n_threads threads (0: physical cores) merely read `bytes` of RAM: a buffer far
 * beyond the caches, summed as 64-bit words in parallel, `passes` timed passes after one
 * untimed; the bound a memory-bound decode on those cores can reach. */
vkllm_status cpu_measure_read(uint32_t n_threads, uint64_t bytes, uint32_t passes, cpu_read_result *out);

#endif
