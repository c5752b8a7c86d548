/* The CPU reference forward pass of a LLaMA model, one token at a time, built from the
 * testkit/cpu_ref.h ops. Slow and plain on purpose: it is the oracle the GPU forward pass
 * is compared against, and it is itself checked against llama2.c's published output. */
#ifndef VKLLM_CPU_FORWARD_H
#define VKLLM_CPU_FORWARD_H

#include <stddef.h>
#include <stdint.h>
#include "runtime/format/model.h"
#include "vkllm.h"

/* Activations and KV cache of one sequence. The buffers are public so that tests can compare
 * intermediate values; after cpu_forward they hold the last layer's values. */
typedef struct cpu_state {
    uint32_t n_ctx; /* positions the cache holds */
    int f16_kv;     /* K and V are rounded through IEEE half on store, as the GPU's cache */
    float *x;       /* (n_embd) residual stream */
    float *xb;      /* (n_embd) normed input of a sublayer, then attention output */
    float *xb2;     /* (n_embd) sublayer output before the residual add */
    float *q;       /* (n_embd) query, (n_head, head_dim) */
    float *hb;      /* (n_ff) gate, then silu(gate) * up */
    float *hb2;     /* (n_ff) up */
    float *key_cache;   /* (n_layer, n_ctx, kv_dim) */
    float *value_cache; /* (n_layer, n_ctx, kv_dim) */
    /* Set by the caller: quantized weight types multiply activations rounded to 8 bits per
     * block (ref_quant_act, 32 elements for Q4_0..Q8_0, 256 for the K-quants), as the native
     * CPU path does, so that its greedy tokens can be compared exactly. 0: float activations.
     * Layers before act_q8_from keep float activations (a split whose first layers run on a
     * device). act_q8_output: the same for the output product. */
    int act_q8, act_q8_output;
    uint32_t act_q8_from;
    float *xq;          /* (max(n_embd, n_ff)) the rounded copy */
} cpu_state;

/* n_ctx = 0 takes the model's training context. The model's file must hold tensor data
 * (a header-only file gives VKLLM_ERR_BAD_FILE). */
vkllm_status cpu_state_create(const llama_model_desc *m, uint32_t n_ctx, int f16_kv,
                              cpu_state **out);
void cpu_state_free(cpu_state *s);

/* Runs token at position pos (the cache must hold positions 0..pos-1 of this sequence) and
 * writes logits[n_vocab]. pos >= n_ctx gives VKLLM_ERR_CONTEXT_FULL; a token outside the
 * vocabulary VKLLM_ERR_INVALID_ARG. */
vkllm_status cpu_forward(cpu_state *s, const llama_model_desc *m, int32_t token, uint32_t pos,
                         float *logits);

/* Greedy decoding with llama2.c's conventions: prompt[0..n_prompt) is fed from position 0
 * (n_prompt >= 1, normally starting with BOS), then each argmax is fed back, for at most
 * `steps` forward passes in all (prompt included). Stops early when the argmax is
 * stop_token, which is not stored (-1: never stop). out receives the prompt followed by the
 * generated ids and needs room for max(n_prompt, steps + 1); *n_out is their count.
 * min_gap, when not NULL, receives the smallest difference between the two largest logits
 * over the generated tokens (INFINITY if none). */
vkllm_status cpu_greedy(cpu_state *s, const llama_model_desc *m, const int32_t *prompt,
                        size_t n_prompt, size_t steps, int32_t stop_token, int32_t *out,
                        size_t *n_out, float *min_gap);

/* The two largest values of x[n] (n >= 2): their difference, and the index of the largest. */
float cpu_top2_gap(const float *x, size_t n, size_t *top);

#endif
