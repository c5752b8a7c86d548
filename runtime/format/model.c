/* LLaMA hyperparameters and tensor table from GGUF metadata. Every value that later sizes a
 * buffer or indexes a tensor is validated here, so the forward passes (CPU and GPU) can trust
 * the desc without re-checking shapes. */
#include "runtime/format/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/format/wtype.h"
#include "base/util.h"

typedef unsigned long long ull;

const char *llama_tensor_name(char *buf, size_t cap, int layer, const char *what) {
    if (layer < 0)
        snprintf(buf, cap, "%s.weight", what);
    else
        snprintf(buf, cap, "blk.%d.%s.weight", layer, what);
    return buf;
}

/* A required u32 key under "llama.". */
static vkllm_status get_req_u32(const gguf_file *f, const char *key, uint32_t *out) {
    if (gguf_find_key(f, key) < 0)
        return vkl_err(VKLLM_ERR_BAD_FILE,
                       "model: metadata key '%s' is missing; a LLaMA GGUF must define it", key);
    return gguf_get_u32(f, key, out);
}

/* An optional u32 key: *out keeps its default when the key is absent. */
static vkllm_status get_opt_u32(const gguf_file *f, const char *key, uint32_t *out) {
    if (gguf_find_key(f, key) < 0) return VKLLM_OK;
    return gguf_get_u32(f, key, out);
}

static vkllm_status get_opt_f32(const gguf_file *f, const char *key, float *out) {
    if (gguf_find_key(f, key) < 0) return VKLLM_OK;
    return gguf_get_f32(f, key, out);
}

static vkllm_status check_range(const char *what, uint32_t v, uint32_t lo, uint32_t hi) {
    if (v < lo || v > hi)
        return vkl_err(VKLLM_ERR_BAD_FILE, "model: %s = %u is outside the accepted range %u..%u",
                       what, v, lo, hi);
    return VKLLM_OK;
}

/* Linear scaling divides positions by the factor; anything else changes the rotation
 * itself (YaRN, NTK variants) and needs kernels this build does not have. */
static vkllm_status read_rope_scaling(const gguf_file *f, float *freq_scale) {
    *freq_scale = 1.0f;
    if (gguf_find_key(f, "llama.rope.scaling.type") >= 0) {
        gguf_str type;
        vkllm_status st = gguf_get_str(f, "llama.rope.scaling.type", &type);
        if (st != VKLLM_OK) return st;
        if (gguf_str_eq(type, "none")) return VKLLM_OK;
        if (!gguf_str_eq(type, "linear")) {
            char buf[64];
            return vkl_err(VKLLM_ERR_UNSUPPORTED,
                           "model: rope scaling type '%s' is not supported (only none and linear)",
                           gguf_str_c(type, buf, sizeof buf));
        }
        float factor;
        if (gguf_find_key(f, "llama.rope.scaling.factor") < 0)
            return vkl_err(VKLLM_ERR_BAD_FILE, "model: rope scaling type is linear but "
                                               "llama.rope.scaling.factor is missing");
        st = gguf_get_f32(f, "llama.rope.scaling.factor", &factor);
        if (st != VKLLM_OK) return st;
        if (!(factor >= 1e-3f && factor <= 1e6f))
            return vkl_err(VKLLM_ERR_BAD_FILE,
                           "model: llama.rope.scaling.factor = %g is not a usable factor", factor);
        *freq_scale = 1.0f / factor;
        return VKLLM_OK;
    }
    /* Files from before rope.scaling.* carry the linear factor under this older key. */
    if (gguf_find_key(f, "llama.rope.scale_linear") >= 0) {
        float factor;
        vkllm_status st = gguf_get_f32(f, "llama.rope.scale_linear", &factor);
        if (st != VKLLM_OK) return st;
        if (!(factor >= 1e-3f && factor <= 1e6f))
            return vkl_err(VKLLM_ERR_BAD_FILE,
                           "model: llama.rope.scale_linear = %g is not a usable factor", factor);
        *freq_scale = 1.0f / factor;
    }
    return VKLLM_OK;
}

static vkllm_status read_vocab_size(const gguf_file *f, uint32_t *n_vocab) {
    if (gguf_find_key(f, "llama.vocab_size") >= 0)
        return gguf_get_u32(f, "llama.vocab_size", n_vocab);
    if (gguf_find_key(f, "tokenizer.ggml.tokens") >= 0) {
        gguf_array a;
        vkllm_status st = gguf_get_arr(f, "tokenizer.ggml.tokens", &a);
        if (st != VKLLM_OK) return st;
        if (a.count > UINT32_MAX)
            return vkl_err(VKLLM_ERR_BAD_FILE, "model: tokenizer.ggml.tokens has %llu entries",
                           (ull)a.count);
        *n_vocab = (uint32_t)a.count;
        return VKLLM_OK;
    }
    const gguf_tensor *t = gguf_find_tensor(f, "token_embd.weight");
    if (!t)
        return vkl_err(VKLLM_ERR_BAD_FILE, "model: cannot tell the vocabulary size: no "
                                           "llama.vocab_size, no tokenizer.ggml.tokens and no "
                                           "token_embd.weight");
    if (t->ne[1] > UINT32_MAX)
        return vkl_err(VKLLM_ERR_BAD_FILE, "model: token_embd.weight has %llu rows",
                       (ull)t->ne[1]);
    *n_vocab = (uint32_t)t->ne[1];
    return VKLLM_OK;
}

vkllm_status llama_hparams_from_gguf(const gguf_file *f, llama_hparams *hp) {
    if (!f || !hp) return vkl_err(VKLLM_ERR_INVALID_ARG, "llama_hparams_from_gguf: NULL argument");
    memset(hp, 0, sizeof *hp);

    gguf_str arch;
    if (gguf_find_key(f, "general.architecture") < 0)
        return vkl_err(VKLLM_ERR_BAD_FILE,
                       "model: general.architecture is missing; is this a model GGUF?");
    vkllm_status st = gguf_get_str(f, "general.architecture", &arch);
    if (st != VKLLM_OK) return st;
    if (!gguf_str_eq(arch, "llama")) {
        char buf[64];
        return vkl_err(VKLLM_ERR_UNSUPPORTED,
                       "model: architecture '%s' is not supported (this build runs 'llama')",
                       gguf_str_c(arch, buf, sizeof buf));
    }

    if ((st = get_req_u32(f, "llama.embedding_length", &hp->n_embd)) != VKLLM_OK) return st;
    if ((st = get_req_u32(f, "llama.block_count", &hp->n_layer)) != VKLLM_OK) return st;
    if ((st = get_req_u32(f, "llama.feed_forward_length", &hp->n_ff)) != VKLLM_OK) return st;
    if ((st = get_req_u32(f, "llama.attention.head_count", &hp->n_head)) != VKLLM_OK) return st;
    if ((st = get_req_u32(f, "llama.context_length", &hp->n_ctx_train)) != VKLLM_OK) return st;
    hp->n_head_kv = hp->n_head;
    if ((st = get_opt_u32(f, "llama.attention.head_count_kv", &hp->n_head_kv)) != VKLLM_OK)
        return st;

    if ((st = check_range("llama.embedding_length", hp->n_embd, 1, LLAMA_MAX_EMBD))) return st;
    if ((st = check_range("llama.block_count", hp->n_layer, 1, LLAMA_MAX_LAYERS))) return st;
    if ((st = check_range("llama.feed_forward_length", hp->n_ff, 1, LLAMA_MAX_FF))) return st;
    if ((st = check_range("llama.attention.head_count", hp->n_head, 1, LLAMA_MAX_HEADS)))
        return st;
    if ((st = check_range("llama.attention.head_count_kv", hp->n_head_kv, 1, hp->n_head)))
        return st;
    if ((st = check_range("llama.context_length", hp->n_ctx_train, 1, LLAMA_MAX_CTX))) return st;
    if (hp->n_embd % hp->n_head)
        return vkl_err(VKLLM_ERR_BAD_FILE,
                       "model: embedding_length %u is not divisible by head_count %u", hp->n_embd,
                       hp->n_head);
    if (hp->n_head % hp->n_head_kv)
        return vkl_err(VKLLM_ERR_BAD_FILE,
                       "model: head_count %u is not a multiple of head_count_kv %u", hp->n_head,
                       hp->n_head_kv);
    hp->head_dim = hp->n_embd / hp->n_head;
    hp->kv_dim = hp->head_dim * hp->n_head_kv;
    if (hp->head_dim % 2 || hp->head_dim > LLAMA_MAX_HEAD_DIM)
        return vkl_err(VKLLM_ERR_BAD_FILE,
                       "model: head dimension %u (embedding_length %u / head_count %u) must be "
                       "even and at most %u",
                       hp->head_dim, hp->n_embd, hp->n_head, LLAMA_MAX_HEAD_DIM);

    hp->n_rot = hp->head_dim;
    if ((st = get_opt_u32(f, "llama.rope.dimension_count", &hp->n_rot)) != VKLLM_OK) return st;
    if (hp->n_rot == 0 || hp->n_rot % 2 || hp->n_rot > hp->head_dim)
        return vkl_err(VKLLM_ERR_BAD_FILE,
                       "model: llama.rope.dimension_count = %u must be even and in 2..%u (the "
                       "head dimension)",
                       hp->n_rot, hp->head_dim);

    hp->rope_freq_base = 10000.0f;
    if ((st = get_opt_f32(f, "llama.rope.freq_base", &hp->rope_freq_base)) != VKLLM_OK) return st;
    if (!(hp->rope_freq_base > 1.0f && isfinite(hp->rope_freq_base)))
        return vkl_err(VKLLM_ERR_BAD_FILE, "model: llama.rope.freq_base = %g must be above 1",
                       hp->rope_freq_base);
    if ((st = read_rope_scaling(f, &hp->rope_freq_scale)) != VKLLM_OK) return st;

    if (gguf_find_key(f, "llama.attention.layer_norm_rms_epsilon") < 0)
        return vkl_err(VKLLM_ERR_BAD_FILE,
                       "model: llama.attention.layer_norm_rms_epsilon is missing");
    if ((st = gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &hp->rms_eps)))
        return st;
    if (!(hp->rms_eps > 0.0f && hp->rms_eps < 1.0f))
        return vkl_err(VKLLM_ERR_BAD_FILE,
                       "model: llama.attention.layer_norm_rms_epsilon = %g must be in (0, 1)",
                       hp->rms_eps);

    if ((st = read_vocab_size(f, &hp->n_vocab)) != VKLLM_OK) return st;
    if ((st = check_range("vocabulary size", hp->n_vocab, 1, LLAMA_MAX_VOCAB))) return st;
    /* A token id the tokenizer can produce must have an embedding row. */
    gguf_array toks;
    if (gguf_find_key(f, "tokenizer.ggml.tokens") >= 0 &&
        gguf_get_arr(f, "tokenizer.ggml.tokens", &toks) == VKLLM_OK && toks.count > hp->n_vocab)
        return vkl_err(VKLLM_ERR_BAD_FILE,
                       "model: the tokenizer has %llu tokens but llama.vocab_size is %u",
                       (ull)toks.count, hp->n_vocab);
    return VKLLM_OK;
}

/* Looks name up and checks it is [ne0, ne1] (ne1 = 0: a vector [ne0]); trailing dimensions
 * of 1 are accepted either way. Norm weights are added to the residual stream's scale
 * directly, so they must be F32; matrices may be any type with a CPU codec. */
static vkllm_status find_checked(const gguf_file *f, const char *name, int is_norm, uint64_t ne0,
                                 uint64_t ne1, const gguf_tensor **out) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t)
        return vkl_err(VKLLM_ERR_BAD_FILE,
                       "model: tensor '%s' is missing; the file is incomplete or not a LLaMA "
                       "model",
                       name);
    uint64_t want[GGUF_MAX_DIMS] = {ne0, ne1 ? ne1 : 1, 1, 1};
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        if (t->ne[d] != want[d]) {
            if (ne1)
                return vkl_err(VKLLM_ERR_BAD_FILE,
                               "model: tensor '%s' has shape [%llu, %llu, %llu, %llu], expected "
                               "[%llu, %llu] from the hyperparameters",
                               name, (ull)t->ne[0], (ull)t->ne[1], (ull)t->ne[2], (ull)t->ne[3],
                               (ull)ne0, (ull)ne1);
            return vkl_err(VKLLM_ERR_BAD_FILE,
                           "model: tensor '%s' has shape [%llu, %llu, %llu, %llu], expected "
                           "[%llu] from the hyperparameters",
                           name, (ull)t->ne[0], (ull)t->ne[1], (ull)t->ne[2], (ull)t->ne[3],
                           (ull)ne0);
        }
    }
    const wtype_traits *tr = wtype_get(t->type);
    if (is_norm && t->type != WTYPE_F32)
        return vkl_err(VKLLM_ERR_UNSUPPORTED,
                       "model: norm tensor '%s' has type %s; norm weights must be f32", name,
                       tr ? tr->name : "unknown");
    if (!tr || !tr->to_float)
        return vkl_err(VKLLM_ERR_UNSUPPORTED,
                       "model: tensor '%s' has ggml type id %u, which this build cannot decode",
                       name, t->type);
    if (wtype_row_bytes(t->type, t->ne[0]) == 0)
        return vkl_err(VKLLM_ERR_BAD_FILE,
                       "model: tensor '%s': row length %llu is not a multiple of the %s block %u",
                       name, (ull)t->ne[0], tr->name, tr->block);
    *out = t;
    return VKLLM_OK;
}

static vkllm_status load_layer(const gguf_file *f, const llama_hparams *hp, int il,
                               llama_layer *L) {
    char name[64];
    const uint64_t E = hp->n_embd, KV = hp->kv_dim, FF = hp->n_ff;
    vkllm_status st;
#define LOAD(field, what, norm, a, b)                                                          \
    if ((st = find_checked(f, llama_tensor_name(name, sizeof name, il, what), norm, a, b,     \
                           &L->field)) != VKLLM_OK)                                            \
        return st;
    LOAD(attn_norm, "attn_norm", 1, E, 0);
    LOAD(wq, "attn_q", 0, E, E);
    LOAD(wk, "attn_k", 0, E, KV);
    LOAD(wv, "attn_v", 0, E, KV);
    LOAD(wo, "attn_output", 0, E, E);
    LOAD(ffn_norm, "ffn_norm", 1, E, 0);
    LOAD(ffn_gate, "ffn_gate", 0, E, FF);
    LOAD(ffn_up, "ffn_up", 0, E, FF);
    LOAD(ffn_down, "ffn_down", 0, FF, E);
#undef LOAD
    return VKLLM_OK;
}

vkllm_status llama_model_load_desc(const gguf_file *f, llama_model_desc **out) {
    if (!f || !out) return vkl_err(VKLLM_ERR_INVALID_ARG, "llama_model_load_desc: NULL argument");
    *out = NULL;
    llama_model_desc *d = vkl_calloc(1, sizeof *d);
    if (!d) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "model: cannot allocate the model desc");
    d->file = f;
    vkllm_status st = llama_hparams_from_gguf(f, &d->hp);
    if (st != VKLLM_OK) goto fail;
    const llama_hparams *hp = &d->hp;

    d->layers = vkl_calloc(hp->n_layer, sizeof *d->layers);
    if (!d->layers) {
        st = vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "model: cannot allocate %u layer descs",
                     hp->n_layer);
        goto fail;
    }
    st = find_checked(f, "token_embd.weight", 0, hp->n_embd, hp->n_vocab, &d->token_embd);
    if (st != VKLLM_OK) goto fail;
    st = find_checked(f, "output_norm.weight", 1, hp->n_embd, 0, &d->output_norm);
    if (st != VKLLM_OK) goto fail;
    if (gguf_find_tensor(f, "output.weight")) {
        st = find_checked(f, "output.weight", 0, hp->n_embd, hp->n_vocab, &d->output);
        if (st != VKLLM_OK) goto fail;
    } else {
        d->output = d->token_embd;
        d->tied_output = 1;
    }
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        st = load_layer(f, hp, (int)il, &d->layers[il]);
        if (st != VKLLM_OK) goto fail;
    }
    *out = d;
    return VKLLM_OK;
fail:
    llama_model_free_desc(d);
    return st;
}

void llama_model_free_desc(llama_model_desc *d) {
    if (!d) return;
    free(d->layers);
    free(d);
}

static void add_tensor(const gguf_tensor *t, uint64_t *bytes, uint64_t *params) {
    *bytes += t->size;
    *params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
}

void llama_model_size(const llama_model_desc *d, uint64_t *weight_bytes, uint64_t *n_params) {
    uint64_t bytes = 0, params = 0;
    if (d) {
        add_tensor(d->token_embd, &bytes, &params);
        add_tensor(d->output_norm, &bytes, &params);
        if (!d->tied_output) add_tensor(d->output, &bytes, &params);
        for (uint32_t il = 0; il < d->hp.n_layer; il++) {
            const llama_layer *L = &d->layers[il];
            const gguf_tensor *ts[] = {L->attn_norm, L->wq,       L->wk,     L->wv,      L->wo,
                                       L->ffn_norm,  L->ffn_gate, L->ffn_up, L->ffn_down};
            for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
                add_tensor(ts[i], &bytes, &params);
        }
    }
    if (weight_bytes) *weight_bytes = bytes;
    if (n_params) *n_params = params;
}
