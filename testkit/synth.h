/* Synthetic LLaMA models: deterministic random weights of any shape and weight type, with a
 * self-made SentencePiece-style vocabulary (or one copied from another GGUF), written as a
 * GGUF that the loader accepts like any converted model. Used by tests and benchmarks. */
#ifndef VKLLM_SYNTH_H
#define VKLLM_SYNTH_H

#include <stddef.h>
#include <stdint.h>
#include "vkllm.h"

/* Lets a test reshape the file: called once per tensor before it is added, with its name,
 * shape (ne[0], ne[1]; ne[1] == 1 for vectors) and chosen type, any of which it may change.
 * Setting *skip leaves the tensor out. A non-OK return aborts the build with that status. */
typedef vkllm_status (*synth_tensor_hook)(void *user, const char *name, uint64_t ne[2],
                                          uint32_t *type, int *skip);

typedef struct synth_opts {
    uint32_t dim;       /* llama.embedding_length */
    uint32_t n_layer;   /* llama.block_count */
    uint32_t n_ff;      /* llama.feed_forward_length */
    uint32_t n_head;    /* llama.attention.head_count */
    uint32_t n_head_kv; /* llama.attention.head_count_kv; 0: same as n_head (key omitted) */
    uint32_t n_vocab;   /* 0 with vocab_from: that vocabulary's size */
    uint32_t n_ctx;     /* llama.context_length */
    uint32_t n_rot;     /* llama.rope.dimension_count; 0: the head dimension */
    float rope_base;    /* llama.rope.freq_base; 0: key omitted (the default 10000 applies) */
    float rms_eps;      /* llama.attention.layer_norm_rms_epsilon */
    uint64_t seed;
    int tied;           /* no output.weight: logits come from token_embd */
    const char *type;   /* matrix weight type: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_K q5_K
                           q6_K, or the mix q4_K_M (case-insensitive) */
    const char *vocab_from; /* GGUF whose tokenizer.ggml.* keys are copied; NULL: self-made */

    /* Rarely needed; zero values mean "as a converter would write it". */
    const char *arch;              /* general.architecture; NULL: "llama" */
    const char *rope_scaling_type; /* llama.rope.scaling.type ("linear", ...); NULL: omitted */
    float rope_scaling_factor;     /* llama.rope.scaling.factor, written with the type */
    int omit_vocab_size;           /* leave llama.vocab_size out */
    int header_only;               /* stop after the tensor infos: a file for planners and
                                      size checks of models too big to write (no weights) */
    synth_tensor_hook hook;
    void *hook_user;
} synth_opts;

/* The benchmark model: dim 2048, 8 layers, ffn 5632, 16 heads, vocab 32000, ctx 2048, q4_0,
 * seed 1 (542M parameters). */
void synth_default_opts(synth_opts *o);

/* Parses a type name of synth_opts.type: the ggml type id, and *mix = 1 for q4_K_M (whose
 * base type is Q4_K). VKLLM_ERR_INVALID_ARG naming the accepted names otherwise. */
vkllm_status synth_parse_type(const char *name, uint32_t *type, int *mix);

/* The type a tensor of the model gets: the base type, the Q4_K_M exceptions (output and
 * tied token_embd in Q6_K; attn_v and ffn_down in Q6_K on llama.cpp's "more bits" layers),
 * and a fallback when ne0 is not a multiple of the type's block (Q8_0 for K-quants when
 * ne0 % 32 == 0, else F16). layer < 0 for tensors outside the blocks. */
uint32_t synth_tensor_type(uint32_t base, int mix, const char *what, int layer, int n_layer,
                           int tied, uint64_t ne0);

/* Writes the model to path (a partial file is removed on failure) or into a malloc'd buffer
 * (release with free()). */
vkllm_status synth_write_file(const synth_opts *o, const char *path);
vkllm_status synth_write_memory(const synth_opts *o, void **out, size_t *size);

#endif
