/* One stage of the LLaMA forward pass on the native CPU path (runtime/cpu/): a contiguous
 * range of layers (runtime/forward/plan.h) whose weights are read in place from the memory-mapped
 * GGUF (no copy), and per context its KV cache and activations in host memory and a thread
 * pool started once. The CPU-side twin of runtime/forward/gpu_forward.h: the same hand-over of the
 * hidden state, the same outputs, so runtime/forward/forward.c walks both kinds of stage alike.
 *
 * cpu_stage_submit computes on the calling thread and the pool's workers and returns when it
 * is done; cpu_stage_submit_async does the same on an executor thread of the context while the
 * caller goes on. cpu_stage_wait hands over what either produced. */
#ifndef VKLLM_CPU_STAGE_H
#define VKLLM_CPU_STAGE_H

#include "runtime/forward/gpu_forward.h"
#include "runtime/format/model.h"
#include "runtime/forward/plan.h"

typedef struct cpu_stage cpu_stage;

/* Stage `stage_index` of plan p, computed with n_threads threads (0: physical cores). Checks
 * that every tensor of the stage has a CPU kernel and that the file holds its data; reads and
 * allocates nothing else. */
vkllm_status cpu_stage_create(const llama_model_desc *desc, const plan *p, uint32_t stage_index,
                              uint32_t n_threads, cpu_stage **out);
void cpu_stage_free(cpu_stage *s);
uint32_t cpu_stage_threads(const cpu_stage *s);
/* Bytes of tensor data the stage reads from the mapped file (its share of the weights). */
uint64_t cpu_stage_weight_bytes(const cpu_stage *s);

/* Host bytes a context of this stage allocates besides its KV cache (activations, the pool's
 * quantized activations and attention scores); the planner counts the same figure. */
uint64_t cpu_ctx_bytes(const llama_hparams *hp, const plan_stage *ps, uint32_t n_ctx, uint32_t n_batch,
                       uint32_t n_threads);

typedef struct cpu_ctx cpu_ctx;

/* KV cache for n_ctx positions (IEEE half or f32) of the stage's layers, activations for
 * chunks of up to n_batch tokens, and a pool of the stage's threads; everything a run needs
 * is allocated here, so a run never fails for memory. */
vkllm_status cpu_ctx_create(cpu_stage *s, uint32_t n_ctx, uint32_t n_batch, int kv_f16, cpu_ctx **out);
/* The same with the KV caches given (k[i], v[i] for local layer i, laid out as cpu_kv_write
 * writes them; not owned, they must outlive the context): a twin on a card shares them. */
vkllm_status cpu_ctx_create_shared_kv(cpu_stage *s, uint32_t n_ctx, uint32_t n_batch, int kv_f16, void *const *k,
                                      void *const *v, cpu_ctx **out);
void cpu_ctx_free(cpu_ctx *c);

/* The abort callback asked between the layers of prompt chunks that cpu_stage_submit runs on
 * the caller's thread; NULL: none. */
void cpu_ctx_set_abort(cpu_ctx *c, vkllm_abort_fn fn, void *user);
/* Computes n tokens (n <= n_batch) at positions pos .. pos+n-1: the embedding stage reads
 * `tokens`, any other stage x_in ((n, n_embd) floats). On the output stage the last token's
 * logits or argmax are kept per `want` until cpu_stage_wait. */
vkllm_status cpu_stage_submit(cpu_ctx *c, const int32_t *tokens, const float *x_in, uint32_t n,
                              uint32_t pos, gpu_out want);
/* cpu_stage_submit on the context's executor thread (started by the first call, kept until
 * cpu_ctx_free): returns once the input is copied (tokens must stay valid until
 * cpu_stage_wait), so the caller can feed other stages meanwhile; cpu_stage_wait collects
 * the chunk and its status. */
vkllm_status cpu_stage_submit_async(cpu_ctx *c, const int32_t *tokens, const float *x_in, uint32_t n,
                                    uint32_t pos, gpu_out want);
/* A chunk whose layers ran elsewhere (the stage's twin), in two halves: cpu_stage_embed gives
 * the chunk's input rows (the embedding stage embeds `tokens` into the context's own buffer;
 * any other stage returns x_in), then cpu_stage_finish takes the rows after the layers and
 * completes the chunk as cpu_stage_submit would (the output, when the stage has it). */
vkllm_status cpu_stage_embed(cpu_ctx *c, const int32_t *tokens, const float *x_in, uint32_t n, const float **x);
vkllm_status cpu_stage_finish(cpu_ctx *c, const float *x, uint32_t n, gpu_out want);
/* Stores what the last submit produced (logits or argmax, output stage only) and forgets it;
 * without a pending submission: VKLLM_OK, nothing stored. */
vkllm_status cpu_stage_wait(cpu_ctx *c, float *logits, int32_t *argmax);
/* The (n, n_embd) hidden state of the last submit (not on the output stage). */
const float *cpu_stage_x_out(const cpu_ctx *c);
/* Wall time of the last submit in ms: the CPU executor's busy time. */
double cpu_ctx_last_ms(const cpu_ctx *c);

#endif
