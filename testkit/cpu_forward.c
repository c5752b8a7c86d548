/* One LLaMA decoder step on the CPU, in the order of the reference implementations:
 * embed, then per layer pre-norm attention and pre-norm SwiGLU FFN with residual adds, then
 * the final norm and the vocabulary projection. Weights are read from the mapped file. */
#include "testkit/cpu_forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testkit/cpu_ref.h"
#include "runtime/format/wtype.h"
#include "base/util.h"

vkllm_status cpu_state_create(const llama_model_desc *m, uint32_t n_ctx, int f16_kv,
                              cpu_state **out) {
    if (!m || !out) return vkl_err(VKLLM_ERR_INVALID_ARG, "cpu_state_create: NULL argument");
    *out = NULL;
    if (!gguf_has_data(m->file))
        return vkl_err(VKLLM_ERR_BAD_FILE, "cpu_forward: the model file has no tensor data "
                                           "(header only); pass the complete GGUF");
    const llama_hparams *hp = &m->hp;
    if (n_ctx == 0) n_ctx = hp->n_ctx_train;
    if (n_ctx > LLAMA_MAX_CTX)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "cpu_state_create: n_ctx %u exceeds %u", n_ctx,
                       LLAMA_MAX_CTX);
    uint64_t cache_elems;
    if (!vkl_mul_u64((uint64_t)hp->n_layer * n_ctx, hp->kv_dim, &cache_elems) ||
        cache_elems > SIZE_MAX / sizeof(float))
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY,
                       "cpu_state_create: a KV cache of %u layers x %u positions x %u does not "
                       "fit in memory; pass a smaller n_ctx",
                       hp->n_layer, n_ctx, hp->kv_dim);

    cpu_state *s = calloc(1, sizeof *s);
    if (!s) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "cpu_state_create: out of memory");
    s->n_ctx = n_ctx;
    s->f16_kv = f16_kv;
    s->x = calloc(hp->n_embd, sizeof(float));
    s->xb = calloc(hp->n_embd, sizeof(float));
    s->xb2 = calloc(hp->n_embd, sizeof(float));
    s->q = calloc(hp->n_embd, sizeof(float));
    s->hb = calloc(hp->n_ff, sizeof(float));
    s->hb2 = calloc(hp->n_ff, sizeof(float));
    s->xq = calloc(hp->n_ff > hp->n_embd ? hp->n_ff : hp->n_embd, sizeof(float));
    s->key_cache = calloc((size_t)cache_elems, sizeof(float));
    s->value_cache = calloc((size_t)cache_elems, sizeof(float));
    if (!s->x || !s->xb || !s->xb2 || !s->q || !s->hb || !s->hb2 || !s->xq || !s->key_cache ||
        !s->value_cache) {
        char buf[32];
        cpu_state_free(s);
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY,
                       "cpu_state_create: cannot allocate the KV cache (%s); pass a smaller n_ctx",
                       vkl_fmt_bytes(buf, sizeof buf, cache_elems * 2 * sizeof(float)));
    }
    *out = s;
    return VKLLM_OK;
}

void cpu_state_free(cpu_state *s) {
    if (!s) return;
    free(s->value_cache);
    free(s->key_cache);
    free(s->hb2);
    free(s->xq);
    free(s->hb);
    free(s->q);
    free(s->xb2);
    free(s->xb);
    free(s->x);
    free(s);
}

/* out[rows] = W x for a matrix tensor of ggml shape [cols, rows]; with q8, x rounded
 * to 8 bits per block first for quantized W. */
static vkllm_status matvec(cpu_state *s, int q8, float *out, const gguf_tensor *w, const float *x) {
    size_t cols = (size_t)w->ne[0];
    int is_float = w->type == WTYPE_F32 || w->type == WTYPE_F16 || w->type == WTYPE_BF16;
    if (q8 && !is_float) {
        int k_quant = w->type == WTYPE_Q4_K || w->type == WTYPE_Q5_K || w->type == WTYPE_Q6_K;
        memcpy(s->xq, x, cols * sizeof(float));
        ref_quant_act(s->xq, cols, k_quant ? WTYPE_QK_K : WTYPE_QK);
        x = s->xq;
    }
    return ref_matvec(out, w->data, w->type, (size_t)w->ne[1], cols, x);
}

/* Norm weights are F32 (checked at load), but general.alignment may legally be 1 or 2, so
 * the mapped floats are copied to an aligned scratch before use. */
static void rmsnorm(float *out, const float *x, const gguf_tensor *w, float *scratch, float eps) {
    memcpy(scratch, w->data, (size_t)w->ne[0] * sizeof(float));
    ref_rmsnorm(out, x, scratch, (size_t)w->ne[0], eps);
}

static void round_f16(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = wtype_f16_to_f32(wtype_f32_to_f16(x[i]));
}

vkllm_status cpu_forward(cpu_state *s, const llama_model_desc *m, int32_t token, uint32_t pos,
                         float *logits) {
    if (!s || !m || !logits) return vkl_err(VKLLM_ERR_INVALID_ARG, "cpu_forward: NULL argument");
    const llama_hparams *hp = &m->hp;
    if (pos >= s->n_ctx)
        return vkl_err(VKLLM_ERR_CONTEXT_FULL,
                       "cpu_forward: position %u is past the context of %u tokens", pos,
                       s->n_ctx);
    if (token < 0 || (uint32_t)token >= hp->n_vocab)
        return vkl_err(VKLLM_ERR_INVALID_ARG,
                       "cpu_forward: token id %d is outside the vocabulary [0, %u)", (int)token,
                       hp->n_vocab);
    const size_t dim = hp->n_embd, kv_dim = hp->kv_dim, n_ff = hp->n_ff;
    const size_t layer_stride = (size_t)s->n_ctx * kv_dim; /* cache elements per layer */
    float *normw = s->xb2; /* (dim) norm weights: xb2 holds nothing live while a norm runs */

    vkllm_status st = ref_embed(s->x, m->token_embd->data, m->token_embd->type, dim, hp->n_vocab,
                                token);
    if (st != VKLLM_OK) return st;

    for (uint32_t il = 0; il < hp->n_layer; il++) {
        const llama_layer *L = &m->layers[il];
        int q8 = s->act_q8 && il >= s->act_q8_from;
        float *k = s->key_cache + il * layer_stride + (size_t)pos * kv_dim;   /* (kv_dim) */
        float *v = s->value_cache + il * layer_stride + (size_t)pos * kv_dim; /* (kv_dim) */

        /* Attention: the new K and V go straight into the cache slot of this position. */
        rmsnorm(s->xb, s->x, L->attn_norm, normw, hp->rms_eps);
        if ((st = matvec(s, q8, s->q, L->wq, s->xb)) != VKLLM_OK) return st;
        if ((st = matvec(s, q8, k, L->wk, s->xb)) != VKLLM_OK) return st;
        if ((st = matvec(s, q8, v, L->wv, s->xb)) != VKLLM_OK) return st;
        ref_rope(s->q, hp->n_head, hp->head_dim, hp->n_rot, pos, hp->rope_freq_base,
                 hp->rope_freq_scale, 0);
        ref_rope(k, hp->n_head_kv, hp->head_dim, hp->n_rot, pos, hp->rope_freq_base,
                 hp->rope_freq_scale, 0);
        if (s->f16_kv) {
            round_f16(k, kv_dim);
            round_f16(v, kv_dim);
        }
        st = ref_attention(s->xb, s->q, s->key_cache + il * layer_stride,
                           s->value_cache + il * layer_stride, hp->n_head, hp->n_head_kv,
                           hp->head_dim, pos);
        if (st != VKLLM_OK) return st;
        if ((st = matvec(s, q8, s->xb2, L->wo, s->xb)) != VKLLM_OK) return st;
        ref_add(s->x, s->x, s->xb2, dim);

        /* Feed-forward: x += W_down (silu(W_gate xb) * (W_up xb)). */
        rmsnorm(s->xb, s->x, L->ffn_norm, normw, hp->rms_eps);
        if ((st = matvec(s, q8, s->hb, L->ffn_gate, s->xb)) != VKLLM_OK) return st;
        if ((st = matvec(s, q8, s->hb2, L->ffn_up, s->xb)) != VKLLM_OK) return st;
        ref_swiglu(s->hb, s->hb, s->hb2, n_ff);
        if ((st = matvec(s, q8, s->xb2, L->ffn_down, s->hb)) != VKLLM_OK) return st;
        ref_add(s->x, s->x, s->xb2, dim);
    }

    rmsnorm(s->x, s->x, m->output_norm, normw, hp->rms_eps);
    return matvec(s, s->act_q8_output, logits, m->output, s->x);
}

float cpu_top2_gap(const float *x, size_t n, size_t *top) {
    size_t best = ref_argmax(x, n);
    float second = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (i != best && x[i] > second) second = x[i];
    if (top) *top = best;
    return x[best] - second;
}

vkllm_status cpu_greedy(cpu_state *s, const llama_model_desc *m, const int32_t *prompt,
                        size_t n_prompt, size_t steps, int32_t stop_token, int32_t *out,
                        size_t *n_out, float *min_gap) {
    if (!s || !m || !prompt || !out || !n_out || n_prompt == 0)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "cpu_greedy: NULL argument or empty prompt");
    float *logits = malloc((size_t)m->hp.n_vocab * sizeof *logits); /* (n_vocab) */
    if (!logits) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "cpu_greedy: out of memory");
    float gap_min = INFINITY;
    size_t n = 0;
    for (; n < n_prompt; n++) out[n] = prompt[n];
    vkllm_status st = VKLLM_OK;
    int32_t token = prompt[0];
    for (size_t pos = 0; pos < steps; pos++) {
        if ((st = cpu_forward(s, m, token, (uint32_t)pos, logits)) != VKLLM_OK) break;
        if (pos + 1 < n_prompt) {
            token = prompt[pos + 1];
            continue;
        }
        size_t top;
        float gap = cpu_top2_gap(logits, m->hp.n_vocab, &top);
        if (gap < gap_min) gap_min = gap;
        token = (int32_t)top;
        if (token == stop_token) break;
        out[n++] = token;
    }
    free(logits);
    *n_out = n;
    if (min_gap) *min_gap = gap_min;
    return st;
}
