/* The forward pass over a model's stages, one per layer range and executor (a Vulkan device,
 * runtime/forward/gpu_forward.h, or the native CPU path, runtime/forward/cpu_stage.h): prompts in chunks of
 * n_batch tokens, the hidden state handed from stage to stage through host memory, and chunks
 * pipelined so that stage s works on chunk k+1 while stage s+1 works on chunk k. The host
 * waits on one device's fence at a time, never on all. A CPU stage computes on the calling
 * thread while the device stages before it run ahead. */
#ifndef VKLLM_FORWARD_H
#define VKLLM_FORWARD_H

#include "runtime/forward/cpu_stage.h"
#include "runtime/forward/gpu_forward.h"

/* One stage: exactly one of gpu and cpu is set. A CPU stage may have a twin on a card
 * (gpu_stage_alloc_twin) that runs its chunks of at least twin_min_batch tokens. */
typedef struct fwd_stage {
    gpu_stage *gpu;
    cpu_stage *cpu;
    gpu_stage *twin;
    uint32_t twin_min_batch;
} fwd_stage;

typedef struct fwd_ctx fwd_ctx;

/* A context on every stage: each its KV cache for its layers and its activations. */
vkllm_status fwd_ctx_create(const fwd_stage *stages, uint32_t n_stages, uint32_t n_ctx, uint32_t n_batch,
                            int kv_f16, fwd_ctx **out);
void fwd_ctx_free(fwd_ctx *f);
/* The table every stage of this context adds its per-op GPU time to (NULL: none of its own). */
void fwd_set_prof(fwd_ctx *f, prof *p);
/* Builds every pipeline the context's evaluations will use, on all its devices at once and on
 * several threads (vk_prepare_build), so that the first evaluation compiles nothing; call it
 * before the first evaluation (the pipelines' first runs write into the context's buffers).
 * A second call finds everything built. VKLLM_LAZY_PIPELINES=1 skips it (pipelines are then
 * built as evaluations first need them); VKLLM_PIPELINE_THREADS=N sets the threads. */
vkllm_status fwd_prepare(fwd_ctx *f);
/* What the last fwd_prepare did, its wall time (*ms, with the dry recording), and *skipped 1
 * when it was skipped or never ran. */
void fwd_prepare_stats(const fwd_ctx *f, vk_prepare_stats *out, double *ms, int *skipped);
uint32_t fwd_n_ctx(const fwd_ctx *f);
uint32_t fwd_n_batch(const fwd_ctx *f);
int fwd_kv_f16(const fwd_ctx *f);

/* What fwd_eval asks of and reports to its caller, on the caller's thread. */
typedef struct fwd_hooks {
    vkllm_abort_fn abort;            /* before each chunk, and between the layers of prompt chunks */
    void *abort_user;
    vkllm_eval_progress_fn progress; /* tokens done after each chunk, and at the end */
    void *progress_user;
} fwd_hooks;

/* Runs tokens at positions pos.. in chunks; after the last chunk stores the last token's
 * logits (n_vocab floats) or argmax per want. VKLLM_ERR_CONTEXT_FULL before any work when
 * they do not fit. hooks may be NULL; VKLLM_ERR_CANCELLED when its abort callback stopped the
 * evaluation, with *done (may be NULL) the tokens whose chunks completed: the caller's
 * position moves on by that much. */
vkllm_status fwd_eval(fwd_ctx *f, const int32_t *tokens, uint32_t n, uint32_t pos, gpu_out want,
                      float *logits, int32_t *argmax, const fwd_hooks *hooks, uint32_t *done);

/* After fwd_eval: the GPU time of its last chunk, summed over the stages (first to last
 * timestamp of each stage's submission; for one token, the whole step; a CPU stage's compute
 * time), or -1 where a queue has no timestamps. */
double fwd_last_gpu_ms(const fwd_ctx *f);
/* After fwd_eval: how long its stages' last waits blocked, summed. */
double fwd_last_wait_ms(const fwd_ctx *f);
/* Single-token steps recorded over all stages (the rest were replays). */
uint64_t fwd_steps_recorded(const fwd_ctx *f);

#endif
