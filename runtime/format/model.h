/* The LLaMA model as a GGUF file describes it: hyperparameters from the llama.* metadata and,
 * per layer, pointers to the tensor infos of the mapped file, each checked against the
 * hyperparameters for shape and type. Nothing is copied or uploaded here. */
#ifndef VKLLM_MODEL_H
#define VKLLM_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "runtime/format/gguf.h"
#include "vkllm.h"

/* Limits past which a file is refused as malformed rather than trusted with allocations. */
#define LLAMA_MAX_EMBD (1u << 16)
#define LLAMA_MAX_LAYERS 1024u
#define LLAMA_MAX_FF (1u << 20)
#define LLAMA_MAX_HEADS 1024u
#define LLAMA_MAX_HEAD_DIM 1024u
#define LLAMA_MAX_VOCAB (1u << 24)
#define LLAMA_MAX_CTX (1u << 24)

typedef struct llama_hparams {
    uint32_t n_embd;      /* llama.embedding_length (model width, "dim") */
    uint32_t n_layer;     /* llama.block_count */
    uint32_t n_ff;        /* llama.feed_forward_length */
    uint32_t n_head;      /* llama.attention.head_count */
    uint32_t n_head_kv;   /* llama.attention.head_count_kv; n_head when absent */
    uint32_t head_dim;    /* n_embd / n_head */
    uint32_t kv_dim;      /* head_dim * n_head_kv: width of one K or V row in the cache */
    uint32_t n_rot;       /* llama.rope.dimension_count; head_dim when absent */
    uint32_t n_ctx_train; /* llama.context_length */
    uint32_t n_vocab;     /* llama.vocab_size; else the token count; else token_embd rows */
    float rope_freq_base;  /* llama.rope.freq_base; 10000 when absent */
    float rope_freq_scale; /* 1 / linear scaling factor; 1 without scaling */
    float rms_eps;         /* llama.attention.layer_norm_rms_epsilon */
} llama_hparams;

/* Tensor infos of one transformer block; ggml shapes (ne[0] first) in the comments. */
typedef struct llama_layer {
    const gguf_tensor *attn_norm; /* [n_embd], F32 */
    const gguf_tensor *wq;        /* attn_q [n_embd, n_embd] */
    const gguf_tensor *wk;        /* attn_k [n_embd, kv_dim] */
    const gguf_tensor *wv;        /* attn_v [n_embd, kv_dim] */
    const gguf_tensor *wo;        /* attn_output [n_embd, n_embd] */
    const gguf_tensor *ffn_norm;  /* [n_embd], F32 */
    const gguf_tensor *ffn_gate;  /* [n_embd, n_ff] */
    const gguf_tensor *ffn_up;    /* [n_embd, n_ff] */
    const gguf_tensor *ffn_down;  /* [n_ff, n_embd] */
} llama_layer;

typedef struct llama_model_desc {
    const gguf_file *file; /* borrowed: must outlive the desc */
    llama_hparams hp;
    const gguf_tensor *token_embd;  /* [n_embd, n_vocab] */
    const gguf_tensor *output_norm; /* [n_embd], F32 */
    const gguf_tensor *output;      /* [n_embd, n_vocab]; == token_embd when tied */
    int tied_output;                /* output.weight absent: logits use token_embd */
    llama_layer *layers;            /* (n_layer) */
} llama_model_desc;

/* Reads and validates the hyperparameters alone (a planner may not need the tensors).
 * general.architecture other than "llama" and rope scaling other than none/linear give
 * VKLLM_ERR_UNSUPPORTED; missing or inconsistent keys VKLLM_ERR_BAD_FILE. n_vocab falls back
 * to tokenizer.ggml.tokens' count, then to token_embd's row count. */
vkllm_status llama_hparams_from_gguf(const gguf_file *f, llama_hparams *hp);

/* Hyperparameters plus every tensor, checked for presence, shape and type (norms F32,
 * matrices any type wtype.h supports). Works on header-only files too: tensor data is not
 * touched. Unsupported types give VKLLM_ERR_UNSUPPORTED naming tensor and type; missing
 * tensors and wrong shapes VKLLM_ERR_BAD_FILE. Release with llama_model_free_desc. */
vkllm_status llama_model_load_desc(const gguf_file *f, llama_model_desc **out);
void llama_model_free_desc(llama_model_desc *d);

/* Bytes and element count of the weights the model uses (a tied output counted once). */
void llama_model_size(const llama_model_desc *d, uint64_t *weight_bytes, uint64_t *n_params);

/* "blk.<layer>.<what>.weight" (or "<what>.weight" when layer < 0) into buf. Returns buf. */
const char *llama_tensor_name(char *buf, size_t cap, int layer, const char *what);

#endif
