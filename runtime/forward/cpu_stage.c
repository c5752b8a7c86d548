/* A forward-pass stage on the native CPU path: the layer loop of a LLaMA block over the ops of
 * runtime/cpu/cpu_ops.h, weights read in place from the mapped file. */
#include "runtime/forward/cpu_stage.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cpu/cpu_kern.h"
#include "runtime/cpu/cpu_ops.h"
#include "base/util.h"

struct cpu_stage {
    const llama_model_desc *desc;
    plan_stage ps;
    uint32_t n_threads;
    uint64_t weight_bytes;
};

struct cpu_ctx {
    cpu_stage *s;
    cpu_pool *pool;
    uint32_t n_ctx, n_batch;
    int kv_f16;
    void **k_cache, **v_cache; /* (ps.n_layers) [n_ctx][kv_dim] each */
    int kv_owned;              /* allocated here (else a twin's, not freed here) */
    float *x, *xb, *q, *k, *v, *att, *hb, *hb2; /* (n_batch, width) activations */
    float *logits;             /* (n_vocab); output stage only */
    int pending;               /* a submit whose result cpu_stage_wait has not handed over */
    gpu_out want;
    int32_t best;
    double last_ms;
    vkllm_abort_fn abort;      /* asked between the layers of prompt chunks run on the caller's thread */
    void *abort_user;
    /* The executor thread of cpu_stage_submit_async, started by the first one (never per
     * token): it runs the chunk while the caller goes on to other stages. */
    struct {
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t wake, done;
        int started, quit, busy;
        const int32_t *tokens;
        uint32_t n, pos;
        gpu_out want;
        vkllm_status status;
        char msg[1024];
    } async;
};

static int stage_tensor_ok(const gguf_tensor *t, char *name, size_t cap) {
    gguf_str_c(t->name, name, cap);
    return t->data && cpu_type_supported(t->type);
}

vkllm_status cpu_stage_create(const llama_model_desc *desc, const plan *p, uint32_t stage_index,
                              uint32_t n_threads, cpu_stage **out) {
    *out = NULL;
    if (stage_index >= p->n_stages) return vkl_err(VKLLM_ERR_INVALID_ARG, "cpu stage %u of %u", stage_index, p->n_stages);
    const plan_stage *ps = &p->stages[stage_index];
    uint64_t bytes = 0;
    char name[128];
    for (uint32_t i = 0; i < ps->n_layers; i++) {
        const llama_layer *l = &desc->layers[ps->first_layer + i];
        for (int t = 0; t < PT_COUNT; t++) {
            const gguf_tensor *g = plan_layer_tensor(l, (plan_tensor)t);
            if (!stage_tensor_ok(g, name, sizeof name))
                return vkl_err(g->data ? VKLLM_ERR_UNSUPPORTED : VKLLM_ERR_BAD_FILE,
                               "the CPU path cannot compute %s (%s)", name,
                               g->data ? "its weight type has no CPU kernel" : "the file holds no data for it");
            bytes += g->size;
        }
    }
    const gguf_tensor *ends[3] = {ps->has_embd ? desc->token_embd : NULL, ps->has_output ? desc->output_norm : NULL,
                                  ps->has_output ? desc->output : NULL};
    for (int i = 0; i < 3; i++) {
        if (!ends[i]) continue;
        if (!stage_tensor_ok(ends[i], name, sizeof name))
            return vkl_err(ends[i]->data ? VKLLM_ERR_UNSUPPORTED : VKLLM_ERR_BAD_FILE, "the CPU path cannot compute %s (%s)",
                           name, ends[i]->data ? "its weight type has no CPU kernel" : "the file holds no data for it");
        if (i != 2 || !desc->tied_output || !ps->has_embd) bytes += ends[i]->size;
    }
    cpu_stage *s = vkl_calloc(1, sizeof *s);
    if (!s) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    s->desc = desc;
    s->ps = *ps;
    s->n_threads = n_threads ? n_threads : cpu_physical_cores();
    s->weight_bytes = bytes;
    *out = s;
    return VKLLM_OK;
}

void cpu_stage_free(cpu_stage *s) { free(s); }
uint32_t cpu_stage_threads(const cpu_stage *s) { return s->n_threads; }
uint64_t cpu_stage_weight_bytes(const cpu_stage *s) { return s->weight_bytes; }

/* The activations of a context: x, xb, att (n_embd); q (n_head * head_dim); k, v (kv_dim);
 * hb, hb2 (n_ff); per chunk token. */
static uint64_t act_floats(const llama_hparams *hp, uint32_t n_batch) {
    uint64_t per_tok = 3ull * hp->n_embd + (uint64_t)hp->n_head * hp->head_dim + 2ull * hp->kv_dim + 2ull * hp->n_ff;
    return per_tok * n_batch;
}

/* What cpu_matmul and cpu_attention reserve in the pool for these sizes. */
static void pool_scratch(const llama_hparams *hp, uint32_t n_ctx, uint32_t n_batch, size_t *shared, size_t *per_thread) {
    size_t widest = hp->n_ff > hp->n_embd ? hp->n_ff : hp->n_embd;
    size_t attw = (size_t)hp->n_head * hp->head_dim;
    if (attw > widest) widest = attw;
    /* The larger of the two 8-bit activation forms, rounded up to whole blocks. */
    size_t q8 = cpu_act_row_bytes(CPU_ACT_Q8, (widest + WTYPE_QK - 1) / WTYPE_QK * WTYPE_QK);
    size_t q8k = cpu_act_row_bytes(CPU_ACT_Q8K, (widest + WTYPE_QK_K - 1) / WTYPE_QK_K * WTYPE_QK_K);
    *shared = (q8 > q8k ? q8 : q8k) * n_batch;
    *per_thread = (((size_t)hp->head_dim + 15) / 16 * 16 + n_ctx) * sizeof(float);
}

uint64_t cpu_ctx_bytes(const llama_hparams *hp, const plan_stage *ps, uint32_t n_ctx, uint32_t n_batch,
                       uint32_t n_threads) {
    size_t shared, per_thread;
    pool_scratch(hp, n_ctx, n_batch, &shared, &per_thread);
    if (!n_threads) n_threads = cpu_physical_cores();
    uint64_t b = act_floats(hp, n_batch) * sizeof(float);
    if (ps->has_output) b += (uint64_t)hp->n_vocab * sizeof(float);
    /* The pool rounds each block up by a quarter for growth. */
    b += (uint64_t)(shared + shared / 4) + (uint64_t)n_threads * (per_thread + per_thread / 4);
    return b;
}

void cpu_ctx_free(cpu_ctx *c) {
    if (!c) return;
    if (c->async.started) {
        pthread_mutex_lock(&c->async.lock);
        while (c->async.busy) pthread_cond_wait(&c->async.done, &c->async.lock);
        c->async.quit = 1;
        pthread_cond_signal(&c->async.wake);
        pthread_mutex_unlock(&c->async.lock);
        pthread_join(c->async.thread, NULL);
        pthread_cond_destroy(&c->async.wake);
        pthread_cond_destroy(&c->async.done);
        pthread_mutex_destroy(&c->async.lock);
    }
    cpu_pool_free(c->pool);
    for (uint32_t i = 0; c->kv_owned && c->k_cache && i < c->s->ps.n_layers; i++) free(c->k_cache[i]);
    for (uint32_t i = 0; c->kv_owned && c->v_cache && i < c->s->ps.n_layers; i++) free(c->v_cache[i]);
    free(c->k_cache);
    free(c->v_cache);
    free(c->x);
    free(c->logits);
    free(c);
}

static vkllm_status ctx_create(cpu_stage *s, uint32_t n_ctx, uint32_t n_batch, int kv_f16, void *const *k,
                               void *const *v, cpu_ctx **out) {
    *out = NULL;
    const llama_hparams *hp = &s->desc->hp;
    cpu_ctx *c = vkl_calloc(1, sizeof *c);
    if (!c) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    c->s = s;
    c->n_ctx = n_ctx;
    c->n_batch = n_batch;
    c->kv_f16 = kv_f16;
    vkllm_status st = cpu_pool_create(s->n_threads, &c->pool);
    if (st) {
        free(c);
        return st;
    }
    uint32_t nl = s->ps.n_layers;
    uint64_t kv = plan_kv_bytes(hp, n_ctx, kv_f16);
    c->k_cache = vkl_calloc(nl ? nl : 1, sizeof *c->k_cache);
    c->v_cache = vkl_calloc(nl ? nl : 1, sizeof *c->v_cache);
    int ok = c->k_cache && c->v_cache;
    c->kv_owned = !k;
    for (uint32_t i = 0; ok && i < nl; i++) {
        c->k_cache[i] = k ? k[i] : vkl_malloc(kv);
        c->v_cache[i] = v ? v[i] : vkl_malloc(kv);
        ok = c->k_cache[i] && c->v_cache[i];
    }
    uint64_t nb = n_batch;
    float *a = ok ? vkl_malloc(act_floats(hp, n_batch) * sizeof(float)) : NULL;
    if (a) {
        c->x = a, a += nb * hp->n_embd;
        c->xb = a, a += nb * hp->n_embd;
        c->att = a, a += nb * hp->n_embd;
        c->q = a, a += nb * hp->n_head * hp->head_dim;
        c->k = a, a += nb * hp->kv_dim;
        c->v = a, a += nb * hp->kv_dim;
        c->hb = a, a += nb * hp->n_ff;
        c->hb2 = a;
    }
    if (a && s->ps.has_output) c->logits = vkl_malloc((uint64_t)hp->n_vocab * sizeof(float));
    size_t shared, per_thread;
    pool_scratch(hp, n_ctx, n_batch, &shared, &per_thread);
    if (!a || (s->ps.has_output && !c->logits) || !cpu_pool_reserve(c->pool, shared, per_thread)) {
        char b[32];
        cpu_ctx_free(c);
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory for a CPU context (%s of KV cache per layer)",
                       vkl_fmt_bytes(b, sizeof b, 2 * kv));
    }
    *out = c;
    return VKLLM_OK;
}

vkllm_status cpu_ctx_create(cpu_stage *s, uint32_t n_ctx, uint32_t n_batch, int kv_f16, cpu_ctx **out) {
    return ctx_create(s, n_ctx, n_batch, kv_f16, NULL, NULL, out);
}

vkllm_status cpu_ctx_create_shared_kv(cpu_stage *s, uint32_t n_ctx, uint32_t n_batch, int kv_f16, void *const *k,
                                      void *const *v, cpu_ctx **out) {
    for (uint32_t i = 0; i < s->ps.n_layers; i++)
        if (!k[i] || !v[i]) {
            *out = NULL;
            return vkl_err(VKLLM_ERR_INVALID_ARG, "a shared KV cache of layer %u is missing", s->ps.first_layer + i);
        }
    return ctx_create(s, n_ctx, n_batch, kv_f16, k, v, out);
}

/* One transformer block over n tokens of c->x at positions pos.. (layer i of the stage). */
static vkllm_status run_layer(cpu_ctx *c, uint32_t i, uint32_t n, uint32_t pos) {
    const llama_hparams *hp = &c->s->desc->hp;
    const llama_layer *L = &c->s->desc->layers[c->s->ps.first_layer + i];
    cpu_pool *pool = c->pool;
    size_t E = hp->n_embd, KV = hp->kv_dim, F = hp->n_ff;
    vkllm_status st;
#define MATMUL(t, x, y) cpu_matmul(pool, (t)->type, (t)->data, (t)->ne[1], (t)->ne[0], (x), n, (y))
    cpu_rmsnorm(pool, c->xb, c->x, L->attn_norm->data, n, E, hp->rms_eps);
    if ((st = MATMUL(L->wq, c->xb, c->q)) || (st = MATMUL(L->wk, c->xb, c->k)) || (st = MATMUL(L->wv, c->xb, c->v)))
        return st;
    cpu_rope(pool, c->q, n, hp->n_head, hp->head_dim, hp->n_rot, pos, hp->rope_freq_base, hp->rope_freq_scale, 0);
    cpu_rope(pool, c->k, n, hp->n_head_kv, hp->head_dim, hp->n_rot, pos, hp->rope_freq_base, hp->rope_freq_scale, 0);
    cpu_kv_write(pool, c->k_cache[i], c->kv_f16, c->k, pos, n, KV);
    cpu_kv_write(pool, c->v_cache[i], c->kv_f16, c->v, pos, n, KV);
    if ((st = cpu_attention(pool, c->att, c->q, c->k_cache[i], c->v_cache[i], c->kv_f16, n, pos, hp->n_head,
                            hp->n_head_kv, hp->head_dim, 1.0f / sqrtf((float)hp->head_dim))))
        return st;
    if ((st = MATMUL(L->wo, c->att, c->xb))) return st;
    cpu_add(pool, c->x, c->x, c->xb, n * E);
    cpu_rmsnorm(pool, c->xb, c->x, L->ffn_norm->data, n, E, hp->rms_eps);
    if ((st = MATMUL(L->ffn_gate, c->xb, c->hb)) || (st = MATMUL(L->ffn_up, c->xb, c->hb2))) return st;
    cpu_swiglu(pool, c->hb, c->hb, c->hb2, n * F);
    if ((st = MATMUL(L->ffn_down, c->hb, c->xb))) return st;
    cpu_add(pool, c->x, c->x, c->xb, n * E);
#undef MATMUL
    return VKLLM_OK;
}

static vkllm_status check_chunk(const cpu_ctx *c, uint32_t n, uint32_t pos) {
    if (n == 0 || n > c->n_batch)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "a chunk of %u tokens; this context takes 1 to %u", n, c->n_batch);
    if ((uint64_t)pos + n > c->n_ctx)
        return vkl_err(VKLLM_ERR_CONTEXT_FULL, "context full: %u of %u positions used, %u more requested", pos, c->n_ctx, n);
    return VKLLM_OK;
}

vkllm_status cpu_stage_embed(cpu_ctx *c, const int32_t *tokens, const float *x_in, uint32_t n, const float **x) {
    const llama_model_desc *d = c->s->desc;
    c->pending = 0;
    *x = x_in;
    if (n == 0 || n > c->n_batch)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "a chunk of %u tokens; this context takes 1 to %u", n, c->n_batch);
    if (!c->s->ps.has_embd) return VKLLM_OK;
    *x = c->x;
    return cpu_embed(c->pool, c->x, d->token_embd->type, d->token_embd->data, d->hp.n_embd, d->token_embd->ne[1],
                     tokens, n);
}

vkllm_status cpu_stage_finish(cpu_ctx *c, const float *x, uint32_t n, gpu_out want) {
    const cpu_stage *s = c->s;
    const llama_model_desc *d = s->desc;
    const llama_hparams *hp = &d->hp;
    if (x != c->x) memcpy(c->x, x, (size_t)n * hp->n_embd * sizeof(float));
    if (s->ps.has_output && want != GPU_OUT_NONE) {
        float *last = c->xb; /* the last token's row, final-normed */
        cpu_rmsnorm(c->pool, last, c->x + (size_t)(n - 1) * hp->n_embd, d->output_norm->data, 1, hp->n_embd, hp->rms_eps);
        const gguf_tensor *o = d->output;
        vkllm_status st = cpu_matmul(c->pool, o->type, o->data, o->ne[1], o->ne[0], last, 1, c->logits);
        if (st) return st;
        int32_t best = 0; /* the first of equal largest, as the GPU's argmax */
        for (uint32_t v = 1; v < hp->n_vocab; v++)
            if (c->logits[v] > c->logits[best]) best = (int32_t)v;
        c->best = best;
    }
    c->want = want;
    c->pending = 1;
    return VKLLM_OK;
}

/* The chunk in c->x (the embedding stage: the tokens) through the layers and the output.
 * On the caller's thread (not the executor's: the callback belongs to the caller) a prompt
 * chunk asks the abort callback between layers. */
static vkllm_status run_chunk(cpu_ctx *c, const int32_t *tokens, uint32_t n, uint32_t pos, gpu_out want,
                              int on_caller) {
    double t0 = vkl_now_ms();
    const cpu_stage *s = c->s;
    const llama_model_desc *d = s->desc;
    vkllm_status st = VKLLM_OK;
    if (s->ps.has_embd)
        st = cpu_embed(c->pool, c->x, d->token_embd->type, d->token_embd->data, d->hp.n_embd, d->token_embd->ne[1],
                       tokens, n);
    int ask = on_caller && c->abort && n > 1;
    for (uint32_t i = 0; !st && i < s->ps.n_layers; i++) {
        if (ask && i > 0 && c->abort(c->abort_user))
            st = vkl_err(VKLLM_ERR_CANCELLED, "stopped by the abort callback after %u of %u layers on the CPU", i,
                         s->ps.n_layers);
        else
            st = run_layer(c, i, n, pos);
    }
    if (!st) st = cpu_stage_finish(c, c->x, n, want);
    c->last_ms = vkl_now_ms() - t0;
    return st;
}

void cpu_ctx_set_abort(cpu_ctx *c, vkllm_abort_fn fn, void *user) {
    c->abort = fn;
    c->abort_user = user;
}

vkllm_status cpu_stage_submit(cpu_ctx *c, const int32_t *tokens, const float *x_in, uint32_t n, uint32_t pos,
                              gpu_out want) {
    vkllm_status st = check_chunk(c, n, pos);
    if (st) return st;
    c->pending = 0;
    if (!c->s->ps.has_embd) memcpy(c->x, x_in, (size_t)n * c->s->desc->hp.n_embd * sizeof(float));
    return run_chunk(c, tokens, n, pos, want, 1);
}

static void *async_main(void *arg) {
    cpu_ctx *c = arg;
    pthread_mutex_lock(&c->async.lock);
    for (;;) {
        while (!c->async.quit && !c->async.busy) pthread_cond_wait(&c->async.wake, &c->async.lock);
        if (c->async.quit) break;
        pthread_mutex_unlock(&c->async.lock);
        vkllm_status st = run_chunk(c, c->async.tokens, c->async.n, c->async.pos, c->async.want, 0);
        pthread_mutex_lock(&c->async.lock);
        c->async.status = st;
        if (st) vkl_err_save(c->async.msg, sizeof c->async.msg);
        c->async.busy = 0;
        pthread_cond_signal(&c->async.done);
    }
    pthread_mutex_unlock(&c->async.lock);
    return NULL;
}

vkllm_status cpu_stage_submit_async(cpu_ctx *c, const int32_t *tokens, const float *x_in, uint32_t n, uint32_t pos,
                                    gpu_out want) {
    vkllm_status st = check_chunk(c, n, pos);
    if (st) return st;
    if (!c->async.started) {
        pthread_mutex_init(&c->async.lock, NULL);
        pthread_cond_init(&c->async.wake, NULL);
        pthread_cond_init(&c->async.done, NULL);
        int rc = pthread_create(&c->async.thread, NULL, async_main, c);
        if (rc) {
            pthread_cond_destroy(&c->async.wake);
            pthread_cond_destroy(&c->async.done);
            pthread_mutex_destroy(&c->async.lock);
            return cpu_stage_submit(c, tokens, x_in, n, pos, want); /* computes here instead */
        }
        c->async.started = 1;
    }
    c->pending = 0;
    if (!c->s->ps.has_embd) memcpy(c->x, x_in, (size_t)n * c->s->desc->hp.n_embd * sizeof(float));
    pthread_mutex_lock(&c->async.lock);
    c->async.tokens = tokens;
    c->async.n = n;
    c->async.pos = pos;
    c->async.want = want;
    c->async.busy = 1;
    pthread_cond_signal(&c->async.wake);
    pthread_mutex_unlock(&c->async.lock);
    return VKLLM_OK;
}

vkllm_status cpu_stage_wait(cpu_ctx *c, float *logits, int32_t *argmax) {
    if (c->async.started) {
        pthread_mutex_lock(&c->async.lock);
        while (c->async.busy) pthread_cond_wait(&c->async.done, &c->async.lock);
        vkllm_status st = c->async.status;
        c->async.status = VKLLM_OK;
        pthread_mutex_unlock(&c->async.lock);
        if (st) {
            c->pending = 0;
            vkl_err_restore(c->async.msg);
            return st;
        }
    }
    if (!c->pending) return VKLLM_OK;
    c->pending = 0;
    if (!c->s->ps.has_output) return VKLLM_OK;
    if (c->want == GPU_OUT_LOGITS && logits) memcpy(logits, c->logits, (size_t)c->s->desc->hp.n_vocab * sizeof(float));
    else if (c->want == GPU_OUT_ARGMAX && argmax) *argmax = c->best;
    return VKLLM_OK;
}

const float *cpu_stage_x_out(const cpu_ctx *c) { return c->x; }
double cpu_ctx_last_ms(const cpu_ctx *c) { return c->last_ms; }
