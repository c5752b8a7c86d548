/* The walk over stages. For chunk k and stage s: wait for s's previous chunk (its buffers are
 * reused), wait for s-1's chunk k (its output is s's input), hand the hidden state over, and
 * submit. Stage 0 of chunk k+1 is submitted right after the last stage of chunk k, so with
 * several chunks the devices work at the same time. */
#include <stdlib.h>
#include <string.h>

#include "runtime/forward/forward.h"
#include "base/util.h"

/* A stage's context: the one of its executor (and of a CPU stage's twin). */
typedef struct fwd_sctx {
    gpu_ctx *gpu;
    cpu_ctx *cpu;
    gpu_ctx *twin;
    uint32_t twin_min_batch;
    int on_twin; /* the last chunk ran on the twin */
} fwd_sctx;

struct fwd_ctx {
    uint32_t n_stages;
    fwd_sctx *c;        /* (n_stages) */
    uint32_t n_ctx, n_batch;
    int kv_f16;
    int prepared;            /* fwd_prepare ran (not skipped) */
    vk_prepare_stats prep;   /* what it did */
    double prepare_ms;       /* its wall time, the dry recording included */
};

void fwd_ctx_free(fwd_ctx *f) {
    if (!f) return;
    for (uint32_t s = 0; f->c && s < f->n_stages; s++) {
        gpu_ctx_free(f->c[s].gpu);
        cpu_ctx_free(f->c[s].cpu); /* before its twin: it may use the twin's KV cache */
        gpu_ctx_free(f->c[s].twin);
    }
    free(f->c);
    free(f);
}

vkllm_status fwd_ctx_create(const fwd_stage *stages, uint32_t n_stages, uint32_t n_ctx, uint32_t n_batch,
                            int kv_f16, fwd_ctx **out) {
    *out = NULL;
    fwd_ctx *f = vkl_calloc(1, sizeof *f);
    if (!f) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    f->n_stages = n_stages;
    f->n_ctx = n_ctx;
    f->n_batch = n_batch;
    f->kv_f16 = kv_f16;
    f->c = vkl_calloc(n_stages ? n_stages : 1, sizeof *f->c);
    vkllm_status st = f->c ? VKLLM_OK : vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    for (uint32_t s = 0; !st && s < n_stages; s++) {
        if (stages[s].gpu) {
            st = gpu_ctx_create(stages[s].gpu, n_ctx, n_batch, kv_f16, &f->c[s].gpu);
        } else if (!stages[s].twin) {
            st = cpu_ctx_create(stages[s].cpu, n_ctx, n_batch, kv_f16, &f->c[s].cpu);
        } else { /* the CPU stage keeps its KV cache where its twin reads and writes it */
            f->c[s].twin_min_batch = stages[s].twin_min_batch;
            st = gpu_ctx_create(stages[s].twin, n_ctx, n_batch, kv_f16, &f->c[s].twin);
            uint32_t nl = stages[s].twin->ps.n_layers;
            void **kv = st ? NULL : vkl_calloc(2 * (size_t)(nl ? nl : 1), sizeof *kv);
            if (!st && !kv) st = vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
            for (uint32_t i = 0; !st && i < nl; i++) gpu_ctx_kv_host(f->c[s].twin, i, &kv[i], &kv[nl + i]);
            if (!st) st = cpu_ctx_create_shared_kv(stages[s].cpu, n_ctx, n_batch, kv_f16, kv, kv + nl, &f->c[s].cpu);
            free(kv);
        }
    }
    if (st) {
        fwd_ctx_free(f);
        return st;
    }
    *out = f;
    return VKLLM_OK;
}

void fwd_set_prof(fwd_ctx *f, prof *p) {
    for (uint32_t s = 0; s < f->n_stages; s++) {
        if (f->c[s].gpu) gpu_ctx_set_prof(f->c[s].gpu, p);
        if (f->c[s].twin) gpu_ctx_set_prof(f->c[s].twin, p);
    }
}

vkllm_status fwd_prepare(fwd_ctx *f) {
    const char *lazy = getenv("VKLLM_LAZY_PIPELINES");
    memset(&f->prep, 0, sizeof f->prep);
    f->prepared = 0;
    f->prepare_ms = 0;
    if (lazy && *lazy && strcmp(lazy, "0")) return VKLLM_OK;
    double t0 = vkl_now_ms();
    const char *th = getenv("VKLLM_PIPELINE_THREADS");
    uint32_t threads = th && *th ? (uint32_t)strtoul(th, NULL, 10) : 0;
    vk_prepare *prep = NULL;
    vkllm_status st = vk_prepare_create(&prep);
    for (uint32_t s = 0; !st && s < f->n_stages; s++) {
        if (f->c[s].gpu) st = gpu_ctx_prepare(f->c[s].gpu, prep);
        if (!st && f->c[s].twin) st = gpu_ctx_prepare(f->c[s].twin, prep);
    }
    if (!st) st = vk_prepare_build(prep, threads, &f->prep);
    vk_prepare_free(prep);
    if (st) vkl_err_context("preparing the pipelines of a context");
    f->prepared = !st;
    f->prepare_ms = vkl_now_ms() - t0;
    return st;
}

void fwd_prepare_stats(const fwd_ctx *f, vk_prepare_stats *out, double *ms, int *skipped) {
    *out = f->prep;
    *ms = f->prepare_ms;
    *skipped = !f->prepared;
}

uint32_t fwd_n_ctx(const fwd_ctx *f) { return f->n_ctx; }
uint32_t fwd_n_batch(const fwd_ctx *f) { return f->n_batch; }
int fwd_kv_f16(const fwd_ctx *f) { return f->kv_f16; }

static vkllm_status stage_wait(fwd_sctx *c, float *logits, int32_t *argmax) {
    return c->cpu ? cpu_stage_wait(c->cpu, logits, argmax) : gpu_stage_wait(c->gpu, logits, argmax);
}

/* A CPU stage's chunk on its twin: the CPU embeds (if it is the first stage), the card runs
 * the layers (reading and writing the shared KV cache), the CPU finishes (the output, if it is
 * the last). The twin is waited for here, as the CPU stage computes in its submit too. */
static vkllm_status twin_submit(fwd_sctx *c, const int32_t *tokens, const float *x_in, uint32_t n, uint32_t pos,
                                gpu_out want) {
    const float *x;
    vkllm_status st = cpu_stage_embed(c->cpu, tokens, x_in, n, &x);
    if (!st) st = gpu_stage_submit(c->twin, NULL, x, n, pos, GPU_OUT_NONE);
    if (!st) st = gpu_stage_wait(c->twin, NULL, NULL);
    if (!st) st = cpu_stage_finish(c->cpu, gpu_stage_x_out(c->twin), n, want);
    return st;
}

static vkllm_status stage_submit(fwd_sctx *c, const int32_t *tokens, const float *x_in, uint32_t n, uint32_t pos,
                                 gpu_out want, int async) {
    c->on_twin = c->twin && n >= c->twin_min_batch;
    if (c->on_twin) return twin_submit(c, tokens, x_in, n, pos, want);
    if (c->gpu) return gpu_stage_submit(c->gpu, tokens, x_in, n, pos, want);
    /* Chunks of a prompt beside other stages: the CPU works while the cards take the next
     * chunk (a single token has nothing to overlap with, and a thread hand-off would cost). */
    if (async) return cpu_stage_submit_async(c->cpu, tokens, x_in, n, pos, want);
    return cpu_stage_submit(c->cpu, tokens, x_in, n, pos, want);
}

static const float *stage_x_out(const fwd_sctx *c) {
    return c->cpu ? cpu_stage_x_out(c->cpu) : gpu_stage_x_out(c->gpu);
}

/* Hands the abort callback to every stage context (NULL takes it away). */
static void set_abort(fwd_ctx *f, vkllm_abort_fn fn, void *user) {
    for (uint32_t s = 0; s < f->n_stages; s++) {
        fwd_sctx *c = &f->c[s];
        if (c->gpu) gpu_ctx_set_abort(c->gpu, fn, user);
        if (c->twin) gpu_ctx_set_abort(c->twin, fn, user);
        if (c->cpu) cpu_ctx_set_abort(c->cpu, fn, user);
    }
}

vkllm_status fwd_eval(fwd_ctx *f, const int32_t *tokens, uint32_t n, uint32_t pos, gpu_out want,
                      float *logits, int32_t *argmax, const fwd_hooks *hooks, uint32_t *done) {
    static const fwd_hooks none;
    if (!hooks) hooks = &none;
    if (done) *done = 0;
    if (n == 0) return vkl_err(VKLLM_ERR_INVALID_ARG, "nothing to evaluate");
    if ((uint64_t)pos + n > f->n_ctx)
        return vkl_err(VKLLM_ERR_CONTEXT_FULL, "context full: %u of %u positions used, %u more requested",
                       pos, f->n_ctx, n);
    uint32_t S = f->n_stages, nb = f->n_batch;
    /* VKLLM_NO_PIPELINE=1 waits for each stage before the next starts: what pipelining gains
     * is measured against it. */
    const char *np = getenv("VKLLM_NO_PIPELINE");
    int pipeline = !(np && *np && strcmp(np, "0"));
    set_abort(f, hooks->abort, hooks->abort_user);
    vkllm_status st = VKLLM_OK;
    /* Tokens before `complete` have left the last stage; `cur` is the chunk being fed. */
    uint32_t complete = 0, cur = 0;
    for (uint32_t i = 0; !st && i < n; i += nb) {
        cur = i;
        uint32_t cn = n - i < nb ? n - i : nb;
        gpu_out w = i + cn == n ? want : GPU_OUT_NONE;
        if (hooks->abort && hooks->abort(hooks->abort_user)) {
            st = vkl_err(VKLLM_ERR_CANCELLED, "stopped by the abort callback after %u of %u tokens", i, n);
            break;
        }
        for (uint32_t s = 0; !st && s < S; s++) {
            st = stage_wait(&f->c[s], logits, argmax);
            if (!st && s > 0) st = stage_wait(&f->c[s - 1], NULL, NULL);
            if (!st)
                st = stage_submit(&f->c[s], tokens + i, s ? stage_x_out(&f->c[s - 1]) : NULL, cn, pos + i, w,
                                  pipeline && S > 1 && n > 1);
            if (!st && !pipeline && s + 1 < S) st = stage_wait(&f->c[s], NULL, NULL);
            /* The last stage's wait above was for the previous chunk. */
            if (!st && s + 1 == S && i > 0) {
                complete = i;
                if (hooks->progress) hooks->progress(complete, n, hooks->progress_user);
            }
        }
    }
    /* Collect the last chunk (logits on the output stage), or drain after an error. A drain
     * that fails too keeps the first failure's message with its status, unless the device was
     * lost meanwhile, which is what the caller must hear about. After a cancel the chunks
     * every stage took complete here. */
    char first_msg[1024];
    if (st) vkl_err_save(first_msg, sizeof first_msg);
    vkllm_status first = st;
    for (uint32_t s = 0; s < S; s++) {
        vkllm_status ws = stage_wait(&f->c[s], logits, argmax);
        if (!st || (ws == VKLLM_ERR_DEVICE_LOST && st != VKLLM_ERR_DEVICE_LOST)) st = ws;
    }
    if (first && st == first) vkl_err_restore(first_msg);
    set_abort(f, NULL, NULL);
    if (!st) {
        complete = n;
        if (hooks->progress) hooks->progress(n, n, hooks->progress_user);
    } else if (st == VKLLM_ERR_CANCELLED && cur > complete) {
        complete = cur; /* every chunk before it went through every stage in the drain */
        if (hooks->progress) hooks->progress(complete, n, hooks->progress_user);
    }
    if (done) *done = complete;
    return st;
}

double fwd_last_gpu_ms(const fwd_ctx *f) {
    double sum = 0;
    for (uint32_t s = 0; s < f->n_stages; s++) {
        const fwd_sctx *c = &f->c[s];
        double ms = c->on_twin ? gpu_ctx_last_gpu_ms(c->twin) : c->cpu ? cpu_ctx_last_ms(c->cpu) : gpu_ctx_last_gpu_ms(c->gpu);
        if (ms < 0) return -1;
        sum += ms;
    }
    return sum;
}

double fwd_last_wait_ms(const fwd_ctx *f) {
    double sum = 0;
    for (uint32_t s = 0; s < f->n_stages; s++)
        if (f->c[s].gpu) sum += gpu_ctx_last_wait_ms(f->c[s].gpu);
    return sum;
}

uint64_t fwd_steps_recorded(const fwd_ctx *f) {
    uint64_t n = 0;
    for (uint32_t s = 0; s < f->n_stages; s++)
        if (f->c[s].gpu) n += gpu_ctx_steps_recorded(f->c[s].gpu);
    return n;
}
