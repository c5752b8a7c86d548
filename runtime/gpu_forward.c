/* The GPU forward pass. Per chunk of n tokens:
 *   x = embed(tokens)
 *   per layer: xb = rmsnorm(x); q,k,v = Wq/Wk/Wv xb; rope(q, k); cache <- k, v;
 *              att = attention(q, cache); x += Wo att;
 *              xb = rmsnorm(x); x += Wdown (silu(Wgate xb) * (Wup xb))
 *   logits = Wout rmsnorm(x[last])
 * all recorded into one batch, so a token step is one submission. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/gpu_forward.h"
#include "runtime/kern_attn.h"
#include "runtime/kern_matmul.h"
#include "runtime/kernels.h"
#include "runtime/wtype.h"
#include "vk/util.h"

struct gpu_ctx {
    gpu_model *m;
    uint32_t n_ctx, n_batch;
    int kv_f16;
    vk_buf *k_cache, *v_cache; /* (n_layer) each (n_ctx, kv_dim) in f16 or f32 */
    vk_buf ids;                /* (n_batch) int32 */
    vk_buf x;                  /* (n_batch, n_embd) residual stream */
    vk_buf xb;                 /* (n_batch, n_embd) normed input of a sublayer */
    vk_buf q;                  /* (n_batch, n_head * head_dim) */
    vk_buf k, v;               /* (n_batch, kv_dim) */
    vk_buf att;                /* (n_batch, n_embd) attention output */
    vk_buf hb, hb2;            /* (n_batch, n_ff) gate / up, then the SwiGLU product */
    vk_buf last;               /* (n_embd) final-normed last row */
    vk_buf logits;             /* (n_vocab) */
    vk_buf best;               /* (1) uint32 argmax */
    vk_buf attn_scratch;       /* split-K partial results for single-token attention */
    /* Readback copies in host-cached memory: reading device memory through a PCIe BAR
     * mapping is uncached and costs milliseconds per token on discrete GPUs. */
    vk_buf logits_host, best_host;
};

static vkllm_status upload(vk_device *dev, const gguf_tensor *t, gpu_tensor *out) {
    memset(out, 0, sizeof *out);
    if (!t->data) return vkl_err(VKLLM_ERR_BAD_FILE, "tensor has no data (header-only file)");
    out->type = t->type;
    out->cols = (uint32_t)t->ne[0];
    out->rows = (uint32_t)(t->n_dims > 1 ? t->ne[1] : 1);
    vkllm_status st = vk_buf_alloc(dev, VK_MEM_DEVICE, t->size, &out->buf);
    if (st) return st;
    return vk_buf_write(dev, &out->buf, 0, t->data, t->size);
}

void gpu_model_free(gpu_model *m) {
    if (!m) return;
    if (m->layers) {
        for (uint32_t l = 0; l < m->desc->hp.n_layer; l++) {
            gpu_tensor *ts = &m->layers[l].attn_norm;
            for (int i = 0; i < 9; i++) vk_buf_free(m->dev, &ts[i].buf);
        }
        free(m->layers);
    }
    if (m->output.buf.block != m->token_embd.buf.block || m->output.buf.offset != m->token_embd.buf.offset)
        vk_buf_free(m->dev, &m->output.buf);
    vk_buf_free(m->dev, &m->token_embd.buf);
    vk_buf_free(m->dev, &m->output_norm.buf);
    free(m);
}

vkllm_status gpu_model_upload(vk_device *dev, const llama_model_desc *desc, gpu_progress_fn progress,
                              void *user, gpu_model **out) {
    *out = NULL;
    gpu_model *m = calloc(1, sizeof *m);
    if (!m) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    m->dev = dev;
    m->desc = desc;
    uint32_t nl = desc->hp.n_layer;
    m->layers = calloc(nl ? nl : 1, sizeof *m->layers);
    if (!m->layers) {
        free(m);
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    }
    uint64_t total = 0, done = 0;
    llama_model_size(desc, &total, NULL);
    vkllm_status st = VKLLM_OK;
#define UP(dst, src)                                                                   \
    do {                                                                               \
        st = upload(dev, (src), (dst));                                                \
        if (st) {                                                                      \
            char nm[160];                                                              \
            vkl_err_context("uploading %s", gguf_str_c((src)->name, nm, sizeof nm));  \
            goto fail;                                                                 \
        }                                                                              \
        done += (src)->size;                                                           \
        if (progress && progress(total ? (float)done / (float)total : 1.0f, user)) {   \
            st = vkl_err(VKLLM_ERR_CANCELLED, "model load cancelled");                \
            goto fail;                                                                 \
        }                                                                              \
    } while (0)
    UP(&m->token_embd, desc->token_embd);
    UP(&m->output_norm, desc->output_norm);
    if (desc->tied_output) m->output = m->token_embd;
    else UP(&m->output, desc->output);
    for (uint32_t l = 0; l < nl; l++) {
        const llama_layer *s = &desc->layers[l];
        gpu_layer *d = &m->layers[l];
        UP(&d->attn_norm, s->attn_norm);
        UP(&d->wq, s->wq);
        UP(&d->wk, s->wk);
        UP(&d->wv, s->wv);
        UP(&d->wo, s->wo);
        UP(&d->ffn_norm, s->ffn_norm);
        UP(&d->gate, s->ffn_gate);
        UP(&d->up, s->ffn_up);
        UP(&d->down, s->ffn_down);
    }
#undef UP
    m->bytes_uploaded = done;
    *out = m;
    return VKLLM_OK;
fail:
    gpu_model_free(m);
    return st;
}

void gpu_ctx_free(gpu_ctx *c) {
    if (!c) return;
    vk_device *dev = c->m->dev;
    for (uint32_t l = 0; c->k_cache && l < c->m->desc->hp.n_layer; l++) {
        vk_buf_free(dev, &c->k_cache[l]);
        vk_buf_free(dev, &c->v_cache[l]);
    }
    free(c->k_cache);
    free(c->v_cache);
    vk_buf *bufs[] = {&c->ids, &c->x, &c->xb, &c->q, &c->k, &c->v, &c->att, &c->hb, &c->hb2,
                      &c->last, &c->logits, &c->best, &c->attn_scratch,
                      &c->logits_host, &c->best_host};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) vk_buf_free(dev, bufs[i]);
    free(c);
}

vkllm_status gpu_ctx_create(gpu_model *m, uint32_t n_ctx, uint32_t n_batch, int kv_f16, gpu_ctx **out) {
    *out = NULL;
    const llama_hparams *hp = &m->desc->hp;
    if (n_ctx == 0 || n_batch == 0) return vkl_err(VKLLM_ERR_INVALID_ARG, "context size and batch must be > 0");
    gpu_ctx *c = calloc(1, sizeof *c);
    if (!c) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    c->m = m;
    c->n_ctx = n_ctx;
    c->n_batch = n_batch;
    c->kv_f16 = kv_f16;
    c->k_cache = calloc(hp->n_layer, sizeof *c->k_cache);
    c->v_cache = calloc(hp->n_layer, sizeof *c->v_cache);
    vkllm_status st = (c->k_cache && c->v_cache) ? VKLLM_OK : vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    uint64_t cache_bytes = (uint64_t)n_ctx * hp->kv_dim * (kv_f16 ? 2 : 4);
    vk_device *dev = m->dev;
    for (uint32_t l = 0; !st && l < hp->n_layer; l++) {
        st = vk_buf_alloc(dev, VK_MEM_DEVICE, cache_bytes, &c->k_cache[l]);
        if (!st) st = vk_buf_alloc(dev, VK_MEM_DEVICE, cache_bytes, &c->v_cache[l]);
    }
    uint64_t nb = n_batch;
    struct { vk_buf *b; uint64_t bytes; } acts[] = {
        {&c->ids, nb * 4}, {&c->x, nb * hp->n_embd * 4}, {&c->xb, nb * hp->n_embd * 4},
        {&c->q, nb * hp->n_head * hp->head_dim * 4}, {&c->k, nb * hp->kv_dim * 4},
        {&c->v, nb * hp->kv_dim * 4}, {&c->att, nb * hp->n_embd * 4}, {&c->hb, nb * hp->n_ff * 4},
        {&c->hb2, nb * hp->n_ff * 4}, {&c->last, (uint64_t)hp->n_embd * 4},
        {&c->logits, (uint64_t)hp->n_vocab * 4}, {&c->best, 4}, {&c->attn_scratch, 0}};
    /* Decode attends with one query per head: splitting the context across workgroups keeps
     * the GPU busy at long contexts (the partial results meet in a combine pass). */
    kern_ctx probe = {.dev = m->dev};
    acts[sizeof acts / sizeof acts[0] - 1].bytes =
        kern_attn_scratch_bytes(&probe, 1, hp->n_head, hp->head_dim, KERN_ATTN_MAX_SPLIT);
    for (size_t i = 0; !st && i < sizeof acts / sizeof acts[0]; i++)
        st = vk_buf_alloc(dev, VK_MEM_DEVICE, acts[i].bytes, acts[i].b);
    if (!st) st = vk_buf_alloc(dev, VK_MEM_HOST, (uint64_t)hp->n_vocab * 4, &c->logits_host);
    if (!st) st = vk_buf_alloc(dev, VK_MEM_HOST, 4, &c->best_host);
    if (st) {
        vkl_err_context("creating a context of %u positions", n_ctx);
        gpu_ctx_free(c);
        return st;
    }
    *out = c;
    return VKLLM_OK;
}

uint32_t gpu_ctx_n_ctx(const gpu_ctx *c) { return c->n_ctx; }
uint32_t gpu_ctx_n_batch(const gpu_ctx *c) { return c->n_batch; }

/* W (rows x cols) times n rows of x: a matrix-vector product for one token, a tiled
 * matrix-matrix product for a chunk. */
static vkllm_status linear(kern_ctx *k, const gpu_tensor *w, const vk_buf *x, const vk_buf *y, uint32_t n) {
    if (n == 1) return kern_matvec(k, w->type, &w->buf, 0, x, 0, y, 0, w->rows, w->cols);
    return kern_matmul(k, w->type, &w->buf, 0, x, 0, y, 0, w->rows, w->cols, n);
}

static vkllm_status record(gpu_ctx *c, kern_ctx *k, uint32_t n, uint32_t pos, gpu_out want) {
    const llama_hparams *hp = &c->m->desc->hp;
    gpu_model *m = c->m;
    const float scale = 1.0f / sqrtf((float)hp->head_dim);
    vkllm_status st;
#define TRY(x)              \
    do {                    \
        st = (x);           \
        if (st) return st;  \
    } while (0)
    TRY(kern_embed(k, m->token_embd.type, &m->token_embd.buf, &c->ids, n, &c->x, hp->n_embd));
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const gpu_layer *L = &m->layers[l];
        TRY(kern_rmsnorm(k, &c->x, &L->attn_norm.buf, &c->xb, n, hp->n_embd, hp->rms_eps));
        TRY(linear(k, &L->wq, &c->xb, &c->q, n));
        TRY(linear(k, &L->wk, &c->xb, &c->k, n));
        TRY(linear(k, &L->wv, &c->xb, &c->v, n));
        TRY(kern_rope(k, &c->q, n, hp->n_head, hp->head_dim, hp->n_rot, pos, hp->rope_freq_base,
                      hp->rope_freq_scale, 0));
        TRY(kern_rope(k, &c->k, n, hp->n_head_kv, hp->head_dim, hp->n_rot, pos, hp->rope_freq_base,
                      hp->rope_freq_scale, 0));
        TRY(kern_kv_write(k, &c->k, &c->k_cache[l], c->kv_f16, pos, n, hp->n_head_kv, hp->head_dim));
        TRY(kern_kv_write(k, &c->v, &c->v_cache[l], c->kv_f16, pos, n, hp->n_head_kv, hp->head_dim));
        if (n == 1)
            TRY(kern_attention_split(k, &c->q, &c->k_cache[l], &c->v_cache[l], c->kv_f16, &c->att, n, pos,
                                     hp->n_head, hp->n_head_kv, hp->head_dim, scale, &c->attn_scratch, 0));
        else
            TRY(kern_attention(k, &c->q, &c->k_cache[l], &c->v_cache[l], c->kv_f16, &c->att, n, pos,
                               hp->n_head, hp->n_head_kv, hp->head_dim, scale));
        TRY(linear(k, &L->wo, &c->att, &c->xb, n));
        TRY(kern_binary(k, KERN_ADD, &c->x, &c->xb, &c->x, n * hp->n_embd));
        TRY(kern_rmsnorm(k, &c->x, &L->ffn_norm.buf, &c->xb, n, hp->n_embd, hp->rms_eps));
        TRY(linear(k, &L->gate, &c->xb, &c->hb, n));
        TRY(linear(k, &L->up, &c->xb, &c->hb2, n));
        TRY(kern_swiglu(k, &c->hb, &c->hb2, &c->hb, n * hp->n_ff));
        TRY(linear(k, &L->down, &c->hb, &c->xb, n));
        TRY(kern_binary(k, KERN_ADD, &c->x, &c->xb, &c->x, n * hp->n_embd));
    }
    if (want == GPU_OUT_NONE) return VKLLM_OK;
    uint64_t row = (uint64_t)hp->n_embd * 4;
    TRY(vk_batch_copy(k->batch, &c->x, (uint64_t)(n - 1) * row, &c->att, 0, row));
    TRY(kern_rmsnorm(k, &c->att, &m->output_norm.buf, &c->last, 1, hp->n_embd, hp->rms_eps));
    TRY(kern_matvec(k, m->output.type, &m->output.buf, 0, &c->last, 0, &c->logits, 0, m->output.rows,
                    m->output.cols));
    if (want == GPU_OUT_ARGMAX) {
        TRY(kern_argmax(k, &c->logits, hp->n_vocab, &c->best));
        TRY(vk_batch_copy(k->batch, &c->best, 0, &c->best_host, 0, 4));
    } else {
        TRY(vk_batch_copy(k->batch, &c->logits, 0, &c->logits_host, 0, (uint64_t)hp->n_vocab * 4));
    }
#undef TRY
    return VKLLM_OK;
}

vkllm_status gpu_forward(gpu_ctx *c, const int32_t *tokens, uint32_t n, uint32_t pos, gpu_out want,
                         float *logits, int32_t *argmax) {
    const llama_hparams *hp = &c->m->desc->hp;
    if (n == 0 || n > c->n_batch) return vkl_err(VKLLM_ERR_INVALID_ARG, "chunk of %u tokens (batch %u)", n, c->n_batch);
    if ((uint64_t)pos + n > c->n_ctx)
        return vkl_err(VKLLM_ERR_CONTEXT_FULL, "context full: %u positions used, %u more requested, room for %u",
                       pos, n, c->n_ctx);
    for (uint32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= hp->n_vocab)
            return vkl_err(VKLLM_ERR_INVALID_ARG, "token id %d is outside the vocabulary (%u)", tokens[i], hp->n_vocab);
    vk_device *dev = c->m->dev;
    vkllm_status st = vk_buf_write(dev, &c->ids, 0, tokens, (uint64_t)n * 4);
    if (st) return st;
    kern_ctx k = {.dev = dev};
    if ((st = vk_batch_begin(dev, &k.batch))) return st;
    st = record(c, &k, n, pos, want);
    if (!st) st = vk_batch_submit_wait(k.batch);
    vk_batch_free(k.batch);
    if (st) return st;
    if (want == GPU_OUT_LOGITS) st = vk_buf_read(dev, &c->logits_host, 0, logits, (uint64_t)hp->n_vocab * 4);
    else if (want == GPU_OUT_ARGMAX) st = vk_buf_read(dev, &c->best_host, 0, argmax, 4);
    return st;
}
