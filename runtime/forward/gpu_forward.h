/* One stage of the LLaMA forward pass on one Vulkan device opening: a contiguous range of
 * layers (runtime/forward/plan.h), its weights as stored in the GGUF file (the kernels decode the
 * blocks), and per context its KV cache and activations. Stage 0 embeds the tokens; the last
 * stage produces the logits, or for greedy decoding only their argmax. Between stages the
 * hidden state travels through host-visible memory (runtime/forward/forward.c walks the stages).
 *
 * Weights live where the plan says: in device memory, or in host memory that the device reads
 * in place (imported from the memory-mapped file, else a host-visible copy). Every buffer is
 * an allocation of its own (a small layer's tensors share one, see gpu_layer), allocated
 * before any tensor byte is read. */
#ifndef VKLLM_GPU_FORWARD_H
#define VKLLM_GPU_FORWARD_H

#include "runtime/format/model.h"
#include "runtime/forward/plan.h"
#include "runtime/forward/profile.h"
#include "vk/vk.h"

typedef struct gpu_tensor {
    vk_buf buf;          /* the tensor's own allocation, or a view into `import` */
    vk_buf import;       /* the imported span of the mapped file behind buf (block NULL if none) */
    uint64_t off;        /* bytes from buf's start to the tensor data */
    const gguf_tensor *src;
    uint32_t type;       /* ggml type id */
    uint32_t rows, cols; /* cols = ne[0] (contiguous), rows = ne[1] */
    int host;            /* kept in host memory */
    int packed;          /* buf is a view into its layer's `pack` */
} gpu_tensor;

/* In plan_tensor order. A layer that the fused single-token kernel runs (runtime/kern/kern_layer.h)
 * keeps its nine tensors in one allocation, `pack`, each at pack_off[j]. */
typedef struct gpu_layer {
    gpu_tensor t[PT_COUNT];
    vk_buf pack;         /* block NULL when the tensors are allocations of their own */
    uint64_t pack_off[PT_COUNT];
} gpu_layer;

typedef struct gpu_stage {
    vk_device *dev;
    const llama_model_desc *desc;
    plan_stage ps;
    uint32_t stream_min_batch;   /* chunks this long copy host weights to `stream` first; 0 = never */
    uint64_t stream_bytes;       /* PCB_STREAM size */
    int *kv_host;                /* (n_layers) the layer's KV cache is kept in host memory */
    gpu_tensor token_embd, output_norm, output; /* as the stage has them */
    gpu_layer *layers;           /* (ps.n_layers): layer ps.first_layer + i */
    uint64_t bytes_uploaded;     /* tensor bytes read from the file so far */
    /* Where submissions of contexts without a table of their own (gpu_ctx_set_prof) add their
     * per-op GPU time (the device needs timestamps); NULL: none. Shared by every context of
     * the stage, so contexts on several threads each set their own instead. */
    prof *prof;
} gpu_stage;

/* Called after each tensor upload with the bytes done so far; nonzero cancels. */
typedef int (*gpu_progress_fn)(uint64_t bytes_done, void *user);

/* Allocates (or imports) every weight buffer of stage `stage_index` of plan p on dev. Reads
 * no tensor data: VKLLM_ERR_OUT_OF_MEMORY here means nothing was read. */
vkllm_status gpu_stage_alloc(vk_device *dev, const llama_model_desc *desc, const plan *p,
                             uint32_t stage_index, gpu_stage **out);
/* The twin of CPU stage `stage_index` on its stream_device dev (plan_stage.stream_device):
 * the same layers, every tensor imported from the mapped file and copied layer by layer into
 * a stream buffer on the card, the KV caches in host-visible memory that the CPU stage uses
 * as its own (gpu_ctx_kv_host); no embedding, no output. Nothing to upload. */
vkllm_status gpu_stage_alloc_twin(vk_device *dev, const llama_model_desc *desc, const plan *p,
                                  uint32_t stage_index, gpu_stage **out);
/* Copies the tensors' bytes from the mapped file into their buffers (imported ones need no
 * copy). *done accumulates bytes for the progress callback. */
vkllm_status gpu_stage_upload(gpu_stage *s, gpu_progress_fn progress, void *user, uint64_t *done);
void gpu_stage_free(gpu_stage *s);

typedef struct gpu_ctx gpu_ctx;

/* The stage's KV cache for n_ctx positions and its activations for chunks of up to n_batch
 * tokens, each buffer an allocation of its own as plan_ctx_buffers lists them. */
vkllm_status gpu_ctx_create(gpu_stage *s, uint32_t n_ctx, uint32_t n_batch, int kv_f16, gpu_ctx **out);
void gpu_ctx_free(gpu_ctx *c);
/* The table this context's submissions add their per-op GPU time to (NULL: the stage's). */
void gpu_ctx_set_prof(gpu_ctx *c, prof *p);
/* Records dry into prep (vk/vk.h) every kind of chunk this context's evaluations can submit,
 * so that vk_prepare_build builds their pipelines before the first evaluation. The context
 * must be idle, and hold nothing yet: the pipelines' first runs write into its buffers. */
vkllm_status gpu_ctx_prepare(gpu_ctx *c, vk_prepare *prep);

typedef enum gpu_out { GPU_OUT_NONE, GPU_OUT_LOGITS, GPU_OUT_ARGMAX } gpu_out;

/* The abort callback asked between the layers of prompt chunks (submitted one layer at a time
 * while one is set); NULL: a chunk is one submission. */
void gpu_ctx_set_abort(gpu_ctx *c, vkllm_abort_fn fn, void *user);

/* Records and submits n tokens (n <= n_batch) at positions pos .. pos+n-1 without waiting.
 * The embedding stage reads `tokens`; any other stage reads x_in, (n, n_embd) floats, which
 * is copied before this returns. `want` matters on the output stage only. The caller must
 * have waited for this context's previous submission. */
vkllm_status gpu_stage_submit(gpu_ctx *c, const int32_t *tokens, const float *x_in, uint32_t n,
                              uint32_t pos, gpu_out want);
/* Waits for the submission (only this device's fence). Then on the output stage the last
 * token's logits (n_vocab floats) or their argmax are stored per `want` of the submit; on
 * other stages gpu_stage_x_out gives the (n, n_embd) hidden state until the next submit.
 * Without a pending submission: VKLLM_OK, nothing stored. */
vkllm_status gpu_stage_wait(gpu_ctx *c, float *logits, int32_t *argmax);
/* GPU time (first to last timestamp) of the submission the last gpu_stage_wait collected, in
 * ms; -1 where the queue has no timestamps. */
double gpu_ctx_last_gpu_ms(const gpu_ctx *c);
/* How long that gpu_stage_wait blocked on the fence, in ms. */
double gpu_ctx_last_wait_ms(const gpu_ctx *c);
/* Single-token steps recorded so far; the others were replays of a recorded one
 * (VKLLM_NO_REPLAY=1 records every step). */
uint64_t gpu_ctx_steps_recorded(const gpu_ctx *c);
const float *gpu_stage_x_out(const gpu_ctx *c);
/* The mapped K and V caches of local layer i when the plan keeps that layer's cache in host
 * memory ((n_ctx, kv_dim) IEEE half or f32, as cpu_kv_write lays them out); else NULL. */
void gpu_ctx_kv_host(const gpu_ctx *c, uint32_t i, void **k, void **v);

#endif
