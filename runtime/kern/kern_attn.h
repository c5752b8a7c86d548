/* GPU kernels of the forward pass around attention, other than weight products: rotary
 * position embedding, the KV-cache write, fused causal grouped-query attention (optionally
 * split over the context, then combined) and argmax. Each records into k->batch. */
#ifndef VKLLM_KERN_ATTN_H
#define VKLLM_KERN_ATTN_H

#include <stdint.h>

#include "runtime/kern/kernels.h"

/* Positions must stay below this: RoPE turns a position into an exact fp32 integer. */
#define KERN_ROPE_MAX_POS (1u << 24)
/* Attention head sizes: multiples of 8 up to this. */
#define KERN_ATTN_MAX_HEAD_DIM 256
/* The most context chunks an automatic split-K plan picks. */
#define KERN_ATTN_MAX_SPLIT 64

/* RoPE in place on x[n_tok][n_heads][head_dim] f32; token t sits at position pos0 + t.
 * The first rot_dim (even, <= head_dim) dimensions of each head turn, in pairs (2i, 2i+1)
 * (LLaMA GGUF, neox == 0) or (i, i + rot_dim/2) (NeoX); pair i by
 * (pos * freq_scale) * freq_base^(-2i/rot_dim) radians, freq_scale = 1 / linear factor.
 * Angles are exact to fp32 rounding at every position below KERN_ROPE_MAX_POS. */
vkllm_status kern_rope(kern_ctx *k, const vk_buf *x, uint32_t n_tok, uint32_t n_heads,
                       uint32_t head_dim, uint32_t rot_dim, uint32_t pos0, float freq_base,
                       float freq_scale, int neox);
/* What rope.glsl takes: turns per position of pair 0 (freq_scale / 2 pi) and the ratio between
 * consecutive pairs' frequencies (freq_base^(-2/rot_dim)), each as a double-float (hi, lo) so
 * the shader rebuilds any pair's frequency to ~2^-44: {f0_hi, f0_lo, r_hi, r_lo}. */
void kern_rope_freqs(float freq_base, float freq_scale, uint32_t rot_dim, float out[4]);
/* kern_rope on the queries q[n_tok][n_head] and the keys kk[n_tok][n_head_kv] in one dispatch. */
vkllm_status kern_rope_qk(kern_ctx *k, const vk_buf *q, uint32_t n_head, const vk_buf *kk, uint32_t n_head_kv,
                          uint32_t n_tok, uint32_t head_dim, uint32_t rot_dim, uint32_t pos0, float freq_base,
                          float freq_scale, int neox);

/* Copies src[n_tok][n_kv_heads][head_dim] f32 into rows pos0 .. pos0+n_tok-1 of a cache laid
 * out [n_ctx][n_kv_heads][head_dim], f16 (cache_f16, round to nearest even) or f32. The
 * caller keeps pos0 + n_tok <= n_ctx (the binding range is checked against the buffer). One
 * call for K, one for V. head_dim must be a multiple of 8. */
vkllm_status kern_kv_write(kern_ctx *k, const vk_buf *src, const vk_buf *cache, int cache_f16,
                           uint32_t pos0, uint32_t n_tok, uint32_t n_kv_heads, uint32_t head_dim);
/* kern_kv_write of the keys and the values (caches of one size) in the same dispatches. */
vkllm_status kern_kv_write_kv(kern_ctx *k, const vk_buf *src_k, const vk_buf *cache_k, const vk_buf *src_v,
                              const vk_buf *cache_v, int cache_f16, uint32_t pos0, uint32_t n_tok,
                              uint32_t n_kv_heads, uint32_t head_dim);

/* How kern_attention divides its work; kern_attn_make_plan shows it (tests use .tile). */
typedef struct kern_attn_plan {
    uint32_t rows;         /* (token, head) query rows per workgroup: a power of two <= 16 */
    uint32_t heads_per_wg; /* query heads of one KV group in a workgroup */
    uint32_t toks_per_wg;  /* query tokens in a workgroup; heads_per_wg * toks_per_wg <= rows */
    uint32_t tile;         /* context positions staged in shared memory per step */
    uint32_t wg;           /* invocations per workgroup */
    uint32_t n_split;      /* context chunks, each a workgroup; 1 = no split, no combine */
    uint32_t chunk;        /* positions per chunk, a multiple of tile */
    uint32_t window;       /* positions per K/V binding, a multiple of chunk (>= visible = one) */
} kern_attn_plan;

/* The plan kern_attention_split follows for these shapes with scratch_bytes of scratch
 * (0: no split-K) and n_split chunks (0: chosen from the grid size and context length).
 * Fails on shapes the kernel does not take (head_dim, head counts) or when the visible cache
 * exceeds the device's binding range and the scratch cannot hold enough chunks. */
vkllm_status kern_attn_make_plan(const kern_ctx *k, uint32_t n_tok, uint32_t pos0,
                                 uint32_t n_head, uint32_t n_kv_head, uint32_t head_dim,
                                 int cache_f16, uint64_t scratch_bytes, uint32_t n_split,
                                 kern_attn_plan *out);
/* Scratch bytes split-K needs for n_split chunks of n_tok queries of n_head heads. */
uint64_t kern_attn_scratch_bytes(const kern_ctx *k, uint32_t n_tok, uint32_t n_head,
                                 uint32_t head_dim, uint32_t n_split);
/* The same for a device whose minStorageBufferOffsetAlignment is binding_align (no device
 * needed: the planner sizes contexts before any device is opened). */
uint64_t kern_attn_scratch_bytes_aligned(uint32_t binding_align, uint32_t n_tok, uint32_t n_head,
                                         uint32_t head_dim, uint32_t n_split);

/* Causal grouped-query attention, one fused kernel with an online softmax for prefill and
 * decode: q[n_tok][n_head][head_dim] f32, k_cache/v_cache [n_ctx][n_kv_head][head_dim]
 * (f16 when cache_f16, else f32), out[n_tok][n_head][head_dim] f32. Query t sees cache
 * positions 0 .. pos0 + t; head h reads KV head h / (n_head / n_kv_head); scores are
 * q.k * scale. head_dim: a multiple of 8 up to KERN_ATTN_MAX_HEAD_DIM. */
vkllm_status kern_attention(kern_ctx *k, const vk_buf *q, const vk_buf *k_cache,
                            const vk_buf *v_cache, int cache_f16, const vk_buf *out,
                            uint32_t n_tok, uint32_t pos0, uint32_t n_head, uint32_t n_kv_head,
                            uint32_t head_dim, float scale);
/* kern_attention that may split the context into chunks (one workgroup each, for decode at
 * long contexts where heads alone leave a GPU idle), then merges the partial softmaxes with
 * a small combine kernel. scratch (NULL: no split) holds the partial results; n_split 0
 * picks a count that fits it (see kern_attn_make_plan), else exactly that many chunks. */
vkllm_status kern_attention_split(kern_ctx *k, const vk_buf *q, const vk_buf *k_cache,
                                  const vk_buf *v_cache, int cache_f16, const vk_buf *out,
                                  uint32_t n_tok, uint32_t pos0, uint32_t n_head,
                                  uint32_t n_kv_head, uint32_t head_dim, float scale,
                                  const vk_buf *scratch, uint32_t n_split);

/* out[0] (uint32) = index of the largest of logits[n] f32, the lowest index on ties; NaNs
 * never win (0 when all are NaN). n >= 1. */
vkllm_status kern_argmax(kern_ctx *k, const vk_buf *logits, uint32_t n, const vk_buf *out);

#endif
