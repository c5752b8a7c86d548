/* CPU reference ops: the plain-loop oracle every GPU kernel is checked against, and enough
 * to run a whole LLaMA forward pass on the CPU in tests. Accumulations run in double with a
 * fixed order, so a result depends only on the inputs, never on the machine or a thread count. */
#ifndef VKLLM_CPU_REF_H
#define VKLLM_CPU_REF_H

#include <stddef.h>
#include <stdint.h>
#include "vkllm.h"

/* ---------------------------------------------------------------- elementwise ---- */

/* out[n] = a[n] + b[n]; out may alias a or b. */
void ref_add(float *out, const float *a, const float *b, size_t n);
/* out[n] = a[n] * b[n]; out may alias a or b. */
void ref_mul(float *out, const float *a, const float *b, size_t n);

/* out[n] = x[n] / sqrt(mean(x^2) + eps) * weight[n]; out may alias x. */
void ref_rmsnorm(float *out, const float *x, const float *weight, size_t n, float eps);
/* ref_rmsnorm on each of n_rows rows: out[n_rows][n], x[n_rows][n], weight[n]. */
void ref_rmsnorm_rows(float *out, const float *x, const float *weight, size_t n_rows, size_t n,
                      float eps);

/* x[n] = softmax(x[n]) in place; the max is subtracted first, so huge logits cannot overflow. */
void ref_softmax(float *x, size_t n);

/* x * sigmoid(x). */
float ref_silu(float x);
/* out[n] = silu(gate[n]) * up[n]; out may alias gate or up. */
void ref_swiglu(float *out, const float *gate, const float *up, size_t n);

/* out[n] (IEEE half bits) = x[n], round to nearest even. */
void ref_f32_to_f16(uint16_t *out, const float *x, size_t n);
/* out[n] = x[n] (IEEE half bits). */
void ref_f16_to_f32(float *out, const uint16_t *x, size_t n);

/* Rounds x[n] in place to 8-bit activations as integer dot products read them: per block of
 * `block` elements (n a multiple), d = amax / 127 and x[j] = d * q[j] with q[j] the nearest
 * integer (ties to even) of x[j] * (127 / amax). */
void ref_quant_act(float *x, size_t n, size_t block);

/* Index of the largest of x[n], the lowest index on ties; 0 when n == 0. NaNs never win. */
size_t ref_argmax(const float *x, size_t n);

/* ---------------------------------------------------------------- weights ---- */

/* out[rows] = W x, with W in any type of runtime/format/wtype.h stored in ggml layout
 * (ne = [cols, rows]): row r is the contiguous run of cols elements starting at byte
 * r * wtype_row_bytes(type, cols). x[cols]. out must not alias x.
 * Fails when the type is unknown or has no CPU decoder, when cols is not a multiple of the
 * type's block, or when the row buffer cannot be allocated. */
vkllm_status ref_matvec(float *out, const void *w, uint32_t type, size_t rows, size_t cols,
                        const float *x);
/* out[n_tok][rows] = (W x_t) for each token t, x[n_tok][cols]; W as in ref_matvec. Each
 * row is dequantized once and gives bit-identical results to n_tok ref_matvec calls. */
vkllm_status ref_matmul(float *out, const void *w, uint32_t type, size_t rows, size_t cols,
                        size_t n_tok, const float *x);
/* out[dim] = row `token` of the embedding table W (ggml ne = [dim, n_vocab]). Fails when
 * token is outside [0, n_vocab) or the type cannot be decoded. */
vkllm_status ref_embed(float *out, const void *w, uint32_t type, size_t dim, size_t n_vocab,
                       int32_t token);

/* ---------------------------------------------------------------- attention ---- */

/* Rotary position embedding in place on x[n_heads][head_dim], for the first rot_dim
 * (even, <= head_dim) dimensions of each head; the rest are left alone.
 * neox == 0 (LLaMA GGUF): pairs (x[2i], x[2i+1]); neox != 0: pairs (x[i], x[i + rot_dim/2]).
 * Pair i turns by theta_i = (pos * freq_scale) * freq_base^(-2i / rot_dim), with
 * freq_scale = 1 / (linear rope scaling factor); angles are computed in double. */
void ref_rope(float *x, size_t n_heads, size_t head_dim, size_t rot_dim, int64_t pos,
              float freq_base, float freq_scale, int neox);

/* Causal grouped-query attention of one query at position n_past over a KV cache:
 *   q[n_head][head_dim], k_cache[n_ctx][n_kv_head][head_dim], v_cache the same,
 *   out[n_head][head_dim].
 * Positions 0..n_past of the cache are visible (n_ctx >= n_past + 1; n_ctx itself is only a
 * stride bound and is not needed). Scores are q.k / sqrt(head_dim); query head h reads KV
 * head h / (n_head / n_kv_head). n_head must be a multiple of n_kv_head. out must not alias q.
 * Fails on bad head counts or when the score buffer cannot be allocated. */
vkllm_status ref_attention(float *out, const float *q, const float *k_cache, const float *v_cache,
                           size_t n_head, size_t n_kv_head, size_t head_dim, size_t n_past);
/* ref_attention with the cache stored as IEEE half bits, as the GPU keeps it by default. */
vkllm_status ref_attention_f16(float *out, const float *q, const uint16_t *k_cache,
                               const uint16_t *v_cache, size_t n_head, size_t n_kv_head,
                               size_t head_dim, size_t n_past);

#endif
