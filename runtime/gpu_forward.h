/* The LLaMA forward pass on one Vulkan device: weights uploaded as stored in the GGUF file
 * (the kernels decode the blocks), a KV cache and activations per context, and one command
 * batch per token step or prompt chunk. Only the logits, or for greedy decoding only the
 * argmax, come back to the host. */
#ifndef VKLLM_GPU_FORWARD_H
#define VKLLM_GPU_FORWARD_H

#include "runtime/model.h"
#include "vk/vk.h"

typedef struct gpu_tensor {
    vk_buf buf;
    uint32_t type;       /* ggml type id */
    uint32_t rows, cols; /* cols = ne[0] (contiguous), rows = ne[1] */
} gpu_tensor;

typedef struct gpu_layer {
    gpu_tensor attn_norm, wq, wk, wv, wo, ffn_norm, gate, up, down;
} gpu_layer;

typedef struct gpu_model {
    vk_device *dev;
    const llama_model_desc *desc;
    gpu_tensor token_embd, output_norm, output; /* output aliases token_embd when tied */
    gpu_layer *layers;                          /* (n_layer) */
    uint64_t bytes_uploaded;
} gpu_model;

/* Called after each tensor upload with the fraction done; nonzero cancels. */
typedef int (*gpu_progress_fn)(float done, void *user);

vkllm_status gpu_model_upload(vk_device *dev, const llama_model_desc *desc, gpu_progress_fn progress,
                              void *user, gpu_model **out);
void gpu_model_free(gpu_model *m);

typedef struct gpu_ctx gpu_ctx;

vkllm_status gpu_ctx_create(gpu_model *m, uint32_t n_ctx, uint32_t n_batch, int kv_f16, gpu_ctx **out);
void gpu_ctx_free(gpu_ctx *c);
uint32_t gpu_ctx_n_ctx(const gpu_ctx *c);
uint32_t gpu_ctx_n_batch(const gpu_ctx *c);

typedef enum gpu_out { GPU_OUT_NONE, GPU_OUT_LOGITS, GPU_OUT_ARGMAX } gpu_out;

/* Runs n tokens (n <= n_batch) at positions pos .. pos+n-1 in one submission. With
 * GPU_OUT_LOGITS the last token's logits are copied to logits (n_vocab floats); with
 * GPU_OUT_ARGMAX only their argmax is read back into *argmax. */
vkllm_status gpu_forward(gpu_ctx *c, const int32_t *tokens, uint32_t n, uint32_t pos, gpu_out want,
                         float *logits, int32_t *argmax);

#endif
