/* One stage of the GPU forward pass. Per chunk of n tokens:
 *   x = embed(tokens)                          (the embedding stage; others receive x)
 *   per layer of the stage:
 *              xb = rmsnorm(x); q,k,v = Wq/Wk/Wv xb; rope(q, k); cache <- k, v;
 *              att = attention(q, cache); x += Wo att;
 *              xb = rmsnorm(x); x += Wdown (silu(Wgate xb) * (Wup xb))
 *   logits = Wout rmsnorm(x[last])             (the output stage; others hand x on)
 * all recorded into one batch, so a stage's share of a token step is one submission.
 * A single-token step is recorded once and replayed: the position and the token go into a
 * small host-written buffer the kernels read (kern_ctx.pos_buf), so the host's share of a
 * decode step is two small writes, a submission and a fence wait. A small layer (see
 * layer_packs) keeps its tensors in one allocation and runs a single-token step as one
 * dispatch (runtime/kern/kern_layer.h). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/forward/gpu_forward.h"
#include "runtime/kern/kern_attn.h"
#include "runtime/kern/kern_layer.h"
#include "runtime/kern/kern_matmul.h"
#include "runtime/kern/kernels.h"
#include "runtime/format/wtype.h"
#include "base/util.h"

struct gpu_ctx {
    gpu_stage *s;
    uint32_t n_ctx, n_batch;
    int kv_f16;
    vk_buf *k_cache, *v_cache; /* (n_layers) each (n_ctx, kv_dim) in f16 or f32 */
    vk_buf b[PCB_COUNT];       /* plan_ctx_buf's buffers; block NULL when not allocated */
    kern_ctx k;                /* k.batch: the submission in flight, NULL when none */
    gpu_out want;              /* of the submission in flight */
    prof *ctx_prof;            /* where this context's evaluations add their op times, or NULL */
    prof *prof;                /* ctx_prof (else s->prof) when the submission in flight was recorded */
    prof_marks marks;          /* which dispatches of k.batch each op issued (with prof) */
    /* Record-once decode: per output kind a reusable batch serving the positions below its
     * pos_end (the attention split is planned for pos_end); k.batch is one of them while
     * in_step, so the wait keeps it. */
    struct {
        vk_batch *batch;
        uint32_t pos_end;
    } step[3];
    int in_step;
    int replay;           /* single-token steps are replayed (else recorded each time) */
    int fused;            /* single-token steps run packed layers as one kern_layer dispatch */
    kern_layer_layout layout; /* of its products (VKLLM_FUSED_LAYER=rows|subgroups in tests) */
    double last_gpu_ms;   /* GPU span of the last submission waited for, or -1 */
    double parts_gpu_ms;  /* GPU time of the chunk's earlier submissions (submit_by_layer) */
    vkllm_abort_fn abort; /* asked between the layers of a prompt chunk; NULL: one submission */
    void *abort_user;
    double last_wait_ms;  /* how long the host blocked on its fence */
    uint64_t n_recorded;  /* single-token steps recorded (the rest were replays) */
};

/* Positions one recorded decode step serves: the attention split planned for the end of the
 * span wastes at most this many positions of empty work, and a step is recorded again once
 * per span. */
#define STEP_SPAN 256u

/* ---------------------------------------------------------------- weights ---- */

static void tensor_free(vk_device *dev, gpu_tensor *t) {
    if (t->import.block) vk_buf_free(dev, &t->import); /* buf is a view into it */
    else if (!t->packed) vk_buf_free(dev, &t->buf);   /* else the layer frees the pack */
    memset(t, 0, sizeof *t);
}

/* Allocates one tensor's buffer where the plan puts it; reads none of its bytes. */
static vkllm_status tensor_alloc(vk_device *dev, const gguf_tensor *src, int host, int import,
                                 uint64_t import_align, gpu_tensor *t) {
    memset(t, 0, sizeof *t);
    t->src = src;
    t->type = src->type;
    t->cols = (uint32_t)src->ne[0];
    t->rows = (uint32_t)(src->n_dims > 1 ? src->ne[1] : 1);
    t->host = host;
    if (host && import) {
        /* Import the aligned span of the mapped file around the tensor and bind the tensor
         * at its place inside it: no copy, no second copy in RAM. */
        uintptr_t p = (uintptr_t)src->data;
        uintptr_t base = p / import_align * import_align;
        uint64_t span = vkl_align_up((uint64_t)(p - base) + src->size, import_align);
        vkllm_status st = vk_buf_import_host(dev, (const void *)base, span, &t->import);
        if (st) return st;
        uint64_t a = vk_device_props(dev)->min_storage_buffer_offset_alignment;
        if (a == 0) a = 1;
        uint64_t at = (uint64_t)(p - base) / a * a;
        t->off = (uint64_t)(p - base) - at;
        vk_buf_view(&t->import, at, t->off + src->size, &t->buf);
        return VKLLM_OK;
    }
    return vk_buf_alloc_dedicated(dev, host ? VK_MEM_HOST : VK_MEM_DEVICE, src->size, &t->buf);
}

static gpu_tensor *stage_tensors(gpu_stage *s, uint32_t i) { return s->layers[i].t; }

void gpu_stage_free(gpu_stage *s) {
    if (!s) return;
    for (uint32_t i = 0; s->layers && i < s->ps.n_layers; i++) {
        for (int j = 0; j < PT_COUNT; j++) tensor_free(s->dev, &stage_tensors(s, i)[j]);
        vk_buf_free(s->dev, &s->layers[i].pack);
    }
    free(s->layers);
    free(s->kv_host);
    if (s->output.buf.block == s->token_embd.buf.block) memset(&s->output, 0, sizeof s->output); /* tied, shared */
    tensor_free(s->dev, &s->output);
    tensor_free(s->dev, &s->output_norm);
    tensor_free(s->dev, &s->token_embd);
    free(s);
}

/* The fused layer kernel's view of the model's layers. */
static kern_layer_shape layer_shape(const llama_model_desc *desc, uint32_t type) {
    const llama_hparams *hp = &desc->hp;
    return (kern_layer_shape){.type = type, .n_embd = hp->n_embd, .n_head = hp->n_head, .n_head_kv = hp->n_head_kv,
                              .head_dim = hp->head_dim, .n_ff = hp->n_ff, .rot_dim = hp->n_rot, .neox = 0,
                              .freq_base = hp->rope_freq_base, .freq_scale = hp->rope_freq_scale,
                              .rms_eps = hp->rms_eps};
}

/* Whether layer `li` of the model (placed as pl) keeps its tensors in one pack for the fused
 * single-token kernel: every tensor on the device, the seven matrices of one type, shapes the
 * kernel takes, and its weights within KERN_LAYER_AUTO_BYTES. For comparing and testing,
 * VKLLM_FUSED_LAYER=0 never packs (every step runs the separate kernels), and any other value
 * packs whatever the kernel takes: 1, or rows / subgroups to force kern_layer's layout. */
static int layer_packs(vk_device *dev, const llama_model_desc *desc, const plan_layer *pl, uint32_t li) {
    const char *env = getenv("VKLLM_FUSED_LAYER");
    int mode = !env || !*env ? 2 : !strcmp(env, "0") ? 0 : 1;
    if (mode == 0) return 0;
    const gguf_tensor *wq = plan_layer_tensor(&desc->layers[li], PT_WQ);
    uint64_t bytes = 0;
    for (int j = 0; j < PT_COUNT; j++) {
        const gguf_tensor *t = plan_layer_tensor(&desc->layers[li], (plan_tensor)j);
        if (pl->where[j] == PLAN_HOST) return 0;
        if (j != PT_ATTN_NORM && j != PT_FFN_NORM && t->type != wq->type) return 0;
        bytes += t->size;
    }
    if (mode == 2 && bytes > KERN_LAYER_AUTO_BYTES) return 0;
    kern_ctx k = {.dev = dev};
    kern_layer_shape sh = layer_shape(desc, wq->type);
    return kern_layer_check(&k, &sh) == VKLLM_OK;
}

/* One allocation for the nine tensors of a layer and the tensors as views into it, each where
 * an allocation of its own would be rounded to: at legal binding offsets, and the pack no
 * larger than the nine allocations the planner counted. */
static vkllm_status layer_pack_alloc(vk_device *dev, const llama_layer *ll, gpu_layer *L) {
    uint64_t align = vk_alloc_alignment(vk_device_props(dev)->min_storage_buffer_offset_alignment), total = 0;
    for (int j = 0; j < PT_COUNT; j++) {
        L->pack_off[j] = total;
        total += vkl_align_up(plan_layer_tensor(ll, (plan_tensor)j)->size, align);
    }
    vkllm_status st = vk_buf_alloc_dedicated(dev, VK_MEM_DEVICE, total, &L->pack);
    for (int j = 0; !st && j < PT_COUNT; j++) {
        gpu_tensor *t = &L->t[j];
        const gguf_tensor *src = plan_layer_tensor(ll, (plan_tensor)j);
        memset(t, 0, sizeof *t);
        t->src = src;
        t->type = src->type;
        t->cols = (uint32_t)src->ne[0];
        t->rows = (uint32_t)(src->n_dims > 1 ? src->ne[1] : 1);
        t->packed = 1;
        vk_buf_view(&L->pack, L->pack_off[j], src->size, &t->buf);
    }
    return st;
}

/* The stage ps of plan p on dev with the caps of its device, streaming host weights for chunks
 * of stream_min_batch tokens or more through a buffer of stream_bytes. */
static vkllm_status stage_alloc(vk_device *dev, const llama_model_desc *desc, const plan *p, const plan_stage *ps,
                                uint32_t stream_min_batch, uint64_t stream_bytes, gpu_stage **out) {
    const plan_device_caps *caps = &p->dev[ps->device];
    gpu_stage *s = vkl_calloc(1, sizeof *s);
    if (!s) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    s->dev = dev;
    s->desc = desc;
    s->ps = *ps;
    s->stream_min_batch = stream_min_batch;
    s->stream_bytes = stream_bytes;
    s->layers = vkl_calloc(ps->n_layers ? ps->n_layers : 1, sizeof *s->layers);
    s->kv_host = vkl_calloc(ps->n_layers ? ps->n_layers : 1, sizeof *s->kv_host);
    vkllm_status st = (s->layers && s->kv_host) ? VKLLM_OK : vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    char nm[160];
    const gguf_tensor *src = NULL;
    /* The same order as the planner counts them, so a failure names the first that does not fit. */
    if (!st && ps->has_embd) st = tensor_alloc(dev, src = desc->token_embd, 0, 0, 0, &s->token_embd);
    for (uint32_t i = 0; !st && i < ps->n_layers; i++) {
        const plan_layer *pl = &p->layers[ps->first_layer + i];
        s->kv_host[i] = pl->kv == PLAN_HOST;
        if (!s->kv_host[i] && layer_packs(dev, desc, pl, ps->first_layer + i)) {
            st = layer_pack_alloc(dev, &desc->layers[ps->first_layer + i], &s->layers[i]);
            if (st) src = plan_layer_tensor(&desc->layers[ps->first_layer + i], PT_WQ);
            continue;
        }
        for (int j = 0; !st && j < PT_COUNT; j++) {
            src = plan_layer_tensor(&desc->layers[ps->first_layer + i], (plan_tensor)j);
            int import = plan_host_import_ok(caps, src, gguf_data_offset(desc->file) + src->offset);
            st = tensor_alloc(dev, src, pl->where[j] == PLAN_HOST, import, caps->import_align, &stage_tensors(s, i)[j]);
        }
    }
    if (!st && ps->has_output) {
        st = tensor_alloc(dev, src = desc->output_norm, 0, 0, 0, &s->output_norm);
        if (!st) {
            if (desc->tied_output && ps->has_embd) s->output = s->token_embd; /* shared, freed once */
            else st = tensor_alloc(dev, src = desc->output, 0, 0, 0, &s->output);
        }
    }
    if (st) {
        if (src) vkl_err_context("allocating %s", gguf_str_c(src->name, nm, sizeof nm));
        gpu_stage_free(s);
        return st;
    }
    *out = s;
    return VKLLM_OK;
}

vkllm_status gpu_stage_alloc(vk_device *dev, const llama_model_desc *desc, const plan *p,
                             uint32_t stage_index, gpu_stage **out) {
    *out = NULL;
    if (stage_index >= p->n_stages) return vkl_err(VKLLM_ERR_INVALID_ARG, "stage %u of %u", stage_index, p->n_stages);
    const plan_stage *ps = &p->stages[stage_index];
    return stage_alloc(dev, desc, p, ps, p->stream_min_batch, plan_stage_stream_bytes(p, ps, desc), out);
}

vkllm_status gpu_stage_alloc_twin(vk_device *dev, const llama_model_desc *desc, const plan *p,
                                  uint32_t stage_index, gpu_stage **out) {
    *out = NULL;
    if (stage_index >= p->n_stages || p->stages[stage_index].stream_device < 0)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "stage %u of %u has no twin", stage_index, p->n_stages);
    const plan_stage *ps = &p->stages[stage_index];
    plan_stage twin = plan_twin_stage(ps);
    /* Every chunk it gets is long enough to stream (the walk over stages decides). */
    return stage_alloc(dev, desc, p, &twin, 1, plan_twin_stream_bytes(ps, desc), out);
}

void gpu_ctx_kv_host(const gpu_ctx *c, uint32_t i, void **k, void **v) {
    *k = i < c->s->ps.n_layers && c->s->kv_host[i] ? c->k_cache[i].map : NULL;
    *v = i < c->s->ps.n_layers && c->s->kv_host[i] ? c->v_cache[i].map : NULL;
}

static vkllm_status tensor_upload(gpu_stage *s, gpu_tensor *t, gpu_progress_fn progress, void *user,
                                  uint64_t *done) {
    if (!t->src || t->import.block) return VKLLM_OK;
    if (!t->src->data) return vkl_err(VKLLM_ERR_BAD_FILE, "tensor has no data (header-only file)");
    vkllm_status st = vk_buf_write(s->dev, &t->buf, 0, t->src->data, t->src->size);
    if (st) return st;
    s->bytes_uploaded += t->src->size;
    *done += t->src->size;
    if (progress && progress(*done, user)) return vkl_err(VKLLM_ERR_CANCELLED, "model load cancelled");
    return VKLLM_OK;
}

vkllm_status gpu_stage_upload(gpu_stage *s, gpu_progress_fn progress, void *user, uint64_t *done) {
    vkllm_status st = VKLLM_OK;
    gpu_tensor *t = NULL;
    if (s->ps.has_embd) st = tensor_upload(s, t = &s->token_embd, progress, user, done);
    for (uint32_t i = 0; !st && i < s->ps.n_layers; i++)
        for (int j = 0; !st && j < PT_COUNT; j++) st = tensor_upload(s, t = &stage_tensors(s, i)[j], progress, user, done);
    if (!st && s->ps.has_output) {
        st = tensor_upload(s, t = &s->output_norm, progress, user, done);
        if (!st && s->output.buf.block != s->token_embd.buf.block) st = tensor_upload(s, t = &s->output, progress, user, done);
    }
    if (st && st != VKLLM_ERR_CANCELLED && t && t->src) {
        char nm[160];
        vkl_err_context("uploading %s", gguf_str_c(t->src->name, nm, sizeof nm));
    }
    return st;
}

/* --------------------------------------------------------------- contexts ---- */

void gpu_ctx_free(gpu_ctx *c) {
    if (!c) return;
    vk_device *dev = c->s->dev;
    if (c->k.batch) {
        vk_batch_wait(c->k.batch);
        if (!c->in_step) vk_batch_free(c->k.batch);
    }
    for (int i = 0; i < 3; i++) vk_batch_free(c->step[i].batch);
    for (uint32_t l = 0; l < c->s->ps.n_layers; l++) { /* either array may be missing after a failure */
        if (c->k_cache) vk_buf_free(dev, &c->k_cache[l]);
        if (c->v_cache) vk_buf_free(dev, &c->v_cache[l]);
    }
    free(c->k_cache);
    free(c->v_cache);
    for (int i = 0; i < PCB_COUNT; i++) vk_buf_free(dev, &c->b[i]);
    prof_marks_free(&c->marks);
    free(c);
}

vkllm_status gpu_ctx_create(gpu_stage *s, uint32_t n_ctx, uint32_t n_batch, int kv_f16, gpu_ctx **out) {
    *out = NULL;
    const llama_hparams *hp = &s->desc->hp;
    if (n_ctx == 0 || n_batch == 0) return vkl_err(VKLLM_ERR_INVALID_ARG, "context size and batch must be > 0");
    gpu_ctx *c = vkl_calloc(1, sizeof *c);
    if (!c) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    c->s = s;
    c->n_ctx = n_ctx;
    c->n_batch = n_batch;
    c->kv_f16 = kv_f16;
    c->k.dev = s->dev;
    c->k.scratch = &c->b[PCB_IDOT]; /* lent to the integer dot product variants a profile picks */
    uint32_t nl = s->ps.n_layers;
    c->k_cache = vkl_calloc(nl ? nl : 1, sizeof *c->k_cache);
    c->v_cache = vkl_calloc(nl ? nl : 1, sizeof *c->v_cache);
    vkllm_status st = (c->k_cache && c->v_cache) ? VKLLM_OK : vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    uint64_t cache_bytes = plan_kv_bytes(hp, n_ctx, kv_f16);
    for (uint32_t l = 0; !st && l < nl; l++) {
        vk_mem_kind kind = s->kv_host[l] ? VK_MEM_HOST : VK_MEM_DEVICE;
        st = vk_buf_alloc_dedicated(s->dev, kind, cache_bytes, &c->k_cache[l]);
        if (!st) st = vk_buf_alloc_dedicated(s->dev, kind, cache_bytes, &c->v_cache[l]);
    }
    uint64_t bytes[PCB_COUNT];
    plan_ctx_buffers(hp, &s->ps, n_batch, vk_device_props(s->dev)->min_storage_buffer_offset_alignment,
                     s->stream_bytes, bytes);
    for (int i = 0; !st && i < PCB_COUNT; i++)
        if (bytes[i]) st = vk_buf_alloc_dedicated(s->dev, i < PCB_DEVICE_COUNT ? VK_MEM_DEVICE : VK_MEM_HOST, bytes[i], &c->b[i]);
    if (st) {
        vkl_err_context("creating a context of %u positions on %s", n_ctx, vk_device_label(s->dev));
        gpu_ctx_free(c);
        return st;
    }
    /* Replay binds each layer's cache whole; VKLLM_NO_REPLAY=1 records every step (to compare). */
    const char *nr = getenv("VKLLM_NO_REPLAY");
    c->replay = !(nr && *nr && strcmp(nr, "0")) && cache_bytes <= kern_max_binding(&c->k) &&
                n_ctx <= KERN_ROPE_MAX_POS;
    /* The fused layer binds the caches whole too. */
    c->fused = cache_bytes <= kern_max_binding(&c->k) && n_ctx <= KERN_ROPE_MAX_POS;
    const char *fl = getenv("VKLLM_FUSED_LAYER");
    c->layout = !fl ? KERN_LAYER_AUTO : !strcmp(fl, "rows") ? KERN_LAYER_ROWS
              : !strcmp(fl, "subgroups") ? KERN_LAYER_SUBGROUPS : KERN_LAYER_AUTO;
    c->last_gpu_ms = -1;
    *out = c;
    return VKLLM_OK;
}

/* Profiling: notes that the dispatches from `first` to now were one call of op, which must
 * move `bytes` and compute `flops`. Without profiling nothing is recorded. */
static vkllm_status mark(gpu_ctx *c, uint32_t first, const char *op, uint32_t type, uint64_t bytes, uint64_t flops) {
    const wtype_traits *tr = type == UINT32_MAX ? NULL : wtype_get(type);
    return prof_mark_add(&c->marks, op, tr ? tr->name : "", first, vk_batch_dispatch_count(c->k.batch), bytes, flops);
}

/* W (rows x cols) times n rows of x: a matrix-vector product for one token, a tiled
 * matrix-matrix product for a chunk. w_buf/w_off: where the weights are read from (the
 * tensor itself, or its copy in the stream buffer). */
static vkllm_status linear_at(gpu_ctx *c, const gpu_tensor *w, const vk_buf *w_buf, uint64_t w_off,
                              const vk_buf *x, const vk_buf *y, uint32_t n) {
    uint32_t first = vk_batch_dispatch_count(c->k.batch);
    vkllm_status st = n == 1 ? kern_matvec(&c->k, w->type, w_buf, w_off, x, 0, y, 0, w->rows, w->cols)
                             : kern_matmul(&c->k, w->type, w_buf, w_off, x, 0, y, 0, w->rows, w->cols, n);
    if (st || !c->prof) return st;
    /* The weights once, n rows of x in and of y out. */
    uint64_t y_words = (c->k.acc_y || c->k.glu_y) ? 2 : 1; /* y read as well as written */
    uint64_t bytes = wtype_row_bytes(w->type, w->cols) * w->rows + (uint64_t)n * (w->cols + w->rows * y_words) * 4;
    return mark(c, first, n == 1 ? "matvec" : "matmul", w->type, bytes, 2ull * w->rows * w->cols * n);
}

/* y += W x: linear_at with the residual add fused in (y is read as well as written). */
static vkllm_status linear_add(gpu_ctx *c, const gpu_tensor *w, const vk_buf *w_buf, uint64_t w_off,
                               const vk_buf *x, const vk_buf *y, uint32_t n) {
    c->k.acc_y = 1;
    vkllm_status st = linear_at(c, w, w_buf, w_off, x, y, n);
    c->k.acc_y = 0;
    return st;
}

/* Offset of matrix j of a layer inside one half of the stream buffer: the host-resident
 * matrices of the layer back to back, each at a 256-byte boundary. */
static uint64_t stream_slot_offset(const gpu_layer *L, int j) {
    uint64_t off = 0;
    for (int i = 0; i < j; i++)
        if (L->t[i].host) off += vkl_align_up(L->t[i].src->size, 256);
    return off;
}

/* Copies the host-resident matrices of local layer i into half (i % 2) of the stream buffer. */
static vkllm_status stream_layer(gpu_ctx *c, uint32_t i) {
    const gpu_layer *L = &c->s->layers[i];
    uint64_t half = c->b[PCB_STREAM].size / 2;
    for (int j = 0; j < PT_COUNT; j++) {
        if (!L->t[j].host) continue;
        vkllm_status st = vk_batch_copy(c->k.batch, &L->t[j].buf, L->t[j].off, &c->b[PCB_STREAM],
                                        (i % 2) * half + stream_slot_offset(L, j), L->t[j].src->size);
        if (st) return st;
    }
    return VKLLM_OK;
}

/* Records local layers [l0, l1) of a chunk; the embedding with the first layer, the output
 * (or the hand-over of x to the next stage) with the last. */
static vkllm_status record(gpu_ctx *c, uint32_t n, uint32_t pos, gpu_out want, uint32_t l0, uint32_t l1) {
    gpu_stage *s = c->s;
    const llama_hparams *hp = &s->desc->hp;
    kern_ctx *k = &c->k;
    vk_buf *b = c->b;
    const float scale = 1.0f / sqrtf((float)hp->head_dim);
    int stream = s->stream_min_batch && n >= s->stream_min_batch && b[PCB_STREAM].block;
    uint64_t half = b[PCB_STREAM].size / 2;
    vkllm_status st;
#define TRY(x)              \
    do {                    \
        st = (x);           \
        if (st) return st;  \
    } while (0)
    /* Records one op; with profiling also marks its dispatches. bytes and flops (what the op
     * must move and compute) are evaluated only then. */
#define OP(name, type, bytes, flops, call)                                      \
    do {                                                                        \
        uint32_t first_ = vk_batch_dispatch_count(k->batch);                    \
        TRY(call);                                                              \
        if (c->prof) TRY(mark(c, first_, name, type, bytes, flops));           \
    } while (0)
    const uint64_t d = hp->n_embd, qd = (uint64_t)hp->n_head * hp->head_dim;
    const uint64_t kvd = (uint64_t)hp->n_head_kv * hp->head_dim, kv_esz = c->kv_f16 ? 2 : 4;
    const uint32_t NONE = UINT32_MAX;
    /* A recorded step finds its token beside the position (see gpu_stage_submit). */
    if (k->pos_buf && s->ps.has_embd && l0 == 0) TRY(vk_batch_copy(k->batch, k->pos_buf, 4, &b[PCB_IDS], 0, 4));
    if (s->ps.has_embd && l0 == 0)
        OP("embed", s->token_embd.type, n * (wtype_row_bytes(s->token_embd.type, d) + 4 + d * 4), 0,
           kern_embed(k, s->token_embd.type, &s->token_embd.buf, &b[PCB_IDS], n, &b[PCB_X], hp->n_embd));
    if (stream && l0 < l1) TRY(stream_layer(c, l0));
    for (uint32_t i = l0; i < l1; i++) {
        const gpu_layer *L = &s->layers[i];
        if (n == 1 && c->fused && L->pack.block) {
            kern_layer_shape sh = layer_shape(s->desc, L->t[PT_WQ].type);
            /* The weights and the visible cache once; a product's two flops per weight. */
            uint64_t weights = 2 * d * qd + 2 * d * kvd + 3 * d * hp->n_ff;
            OP("layer", sh.type, L->pack.size + 2 * ((uint64_t)pos + 1) * kvd * kv_esz + 2 * d * 4,
               2 * weights + 4 * ((uint64_t)pos + 1) * qd,
               kern_layer_ex(k, &sh, c->layout, &L->pack, L->pack_off, &b[PCB_X], &c->k_cache[i], &c->v_cache[i], c->kv_f16,
                          pos));
            continue;
        }
        /* The next layer's host weights travel while this layer computes (the copy only waits
         * for the reads of the layer before, which used the same half). */
        if (stream && i + 1 < l1) TRY(stream_layer(c, i + 1));
        const vk_buf *wb[PT_COUNT];
        uint64_t wo[PT_COUNT];
        for (int j = 0; j < PT_COUNT; j++) {
            int from_stream = stream && L->t[j].host;
            wb[j] = from_stream ? &b[PCB_STREAM] : &L->t[j].buf;
            wo[j] = from_stream ? (i % 2) * half + stream_slot_offset(L, j) : L->t[j].off;
        }
        OP("rmsnorm", NONE, (2 * n + 1) * d * 4, 0,
           kern_rmsnorm(k, &b[PCB_X], &L->t[PT_ATTN_NORM].buf, &b[PCB_XB], n, hp->n_embd, hp->rms_eps));
        TRY(linear_at(c, &L->t[PT_WQ], wb[PT_WQ], wo[PT_WQ], &b[PCB_XB], &b[PCB_Q], n));
        TRY(linear_at(c, &L->t[PT_WK], wb[PT_WK], wo[PT_WK], &b[PCB_XB], &b[PCB_K], n));
        TRY(linear_at(c, &L->t[PT_WV], wb[PT_WV], wo[PT_WV], &b[PCB_XB], &b[PCB_V], n));
        OP("rope", NONE, 2 * n * (qd + kvd) * 4, 0,
           kern_rope_qk(k, &b[PCB_Q], hp->n_head, &b[PCB_K], hp->n_head_kv, n, hp->head_dim, hp->n_rot, pos,
                        hp->rope_freq_base, hp->rope_freq_scale, 0));
        OP("kv_write", NONE, 2 * n * kvd * (4 + kv_esz), 0,
           kern_kv_write_kv(k, &b[PCB_K], &c->k_cache[i], &b[PCB_V], &c->v_cache[i], c->kv_f16, pos, n,
                            hp->n_head_kv, hp->head_dim));
        /* Queries in and out, the visible K and V once; token t sees pos + t + 1 positions. */
        uint64_t seen = (uint64_t)n * pos + (uint64_t)n * (n + 1) / 2;
        uint64_t att_bytes = 2 * n * qd * 4 + 2 * ((uint64_t)pos + n) * kvd * kv_esz, att_flops = 4 * seen * qd;
        if (n == 1)
            OP("attention", NONE, att_bytes, att_flops,
               kern_attention_split(k, &b[PCB_Q], &c->k_cache[i], &c->v_cache[i], c->kv_f16, &b[PCB_ATT], n, pos,
                                    hp->n_head, hp->n_head_kv, hp->head_dim, scale, &b[PCB_ATTN_SCRATCH], 0));
        else
            OP("attention", NONE, att_bytes, att_flops,
               kern_attention(k, &b[PCB_Q], &c->k_cache[i], &c->v_cache[i], c->kv_f16, &b[PCB_ATT], n, pos,
                              hp->n_head, hp->n_head_kv, hp->head_dim, scale));
        /* x += Wo att and, below, x += Wdown h: the residual adds are fused into the products. */
        TRY(linear_add(c, &L->t[PT_WO], wb[PT_WO], wo[PT_WO], &b[PCB_ATT], &b[PCB_X], n));
        OP("rmsnorm", NONE, (2 * n + 1) * d * 4, 0,
           kern_rmsnorm(k, &b[PCB_X], &L->t[PT_FFN_NORM].buf, &b[PCB_XB], n, hp->n_embd, hp->rms_eps));
        TRY(linear_at(c, &L->t[PT_GATE], wb[PT_GATE], wo[PT_GATE], &b[PCB_XB], &b[PCB_HB], n));
        /* h = silu(Wgate xb) * (Wup xb): the up product finishes SwiGLU over the gate's output. */
        c->k.glu_y = 1;
        st = linear_at(c, &L->t[PT_UP], wb[PT_UP], wo[PT_UP], &b[PCB_XB], &b[PCB_HB], n);
        c->k.glu_y = 0;
        TRY(st);
        TRY(linear_add(c, &L->t[PT_DOWN], wb[PT_DOWN], wo[PT_DOWN], &b[PCB_HB], &b[PCB_X], n));
    }
    if (l1 < s->ps.n_layers) return VKLLM_OK;
    uint64_t row = (uint64_t)hp->n_embd * 4;
    if (!s->ps.has_output) return vk_batch_copy(k->batch, &b[PCB_X], 0, &b[PCB_X_HOST], 0, (uint64_t)n * row);
    if (want == GPU_OUT_NONE) return VKLLM_OK;
    TRY(vk_batch_copy(k->batch, &b[PCB_X], (uint64_t)(n - 1) * row, &b[PCB_ATT], 0, row));
    OP("rmsnorm", NONE, 3 * d * 4, 0,
       kern_rmsnorm(k, &b[PCB_ATT], &s->output_norm.buf, &b[PCB_LAST], 1, hp->n_embd, hp->rms_eps));
    TRY(linear_at(c, &s->output, &s->output.buf, s->output.off, &b[PCB_LAST], &b[PCB_LOGITS], 1));
    if (want == GPU_OUT_ARGMAX) {
        OP("argmax", NONE, (uint64_t)hp->n_vocab * 4 + 4, 0, kern_argmax(k, &b[PCB_LOGITS], hp->n_vocab, &b[PCB_BEST]));
        TRY(vk_batch_copy(k->batch, &b[PCB_BEST], 0, &b[PCB_BEST_HOST], 0, 4));
    } else {
        TRY(vk_batch_copy(k->batch, &b[PCB_LOGITS], 0, &b[PCB_LOGITS_HOST], 0, (uint64_t)hp->n_vocab * 4));
    }
#undef OP
#undef TRY
    return VKLLM_OK;
}

/* Whether this context's single-token steps are recorded once and replayed: not while it
 * profiles (the profile's byte counts follow each step's position). */
static int step_mode(const gpu_ctx *c) { return c->replay && !(c->ctx_prof ? c->ctx_prof : c->s->prof); }

/* The span of positions a step at pos belongs to ends at this position. */
static uint32_t step_end(const gpu_ctx *c, uint32_t pos) {
    uint32_t end = (pos / STEP_SPAN + 1) * STEP_SPAN;
    return end < c->n_ctx ? end : c->n_ctx;
}

/* Forgets the recorded step b after a failure (it is recorded again when next needed). */
static void drop_step(gpu_ctx *c, vk_batch *b) {
    for (int i = 0; i < 3; i++)
        if (c->step[i].batch == b) c->step[i].batch = NULL;
    vk_batch_free(b);
}

/* Submits the recorded step for want, recording it first when there is none for pos's span. */
static vkllm_status step_submit(gpu_ctx *c, int32_t token, uint32_t pos, gpu_out want) {
    uint32_t words[2] = {pos, (uint32_t)token};
    vkllm_status st = vk_buf_write(c->s->dev, &c->b[PCB_STEP], 0, words, sizeof words);
    if (st) return st;
    uint32_t end = step_end(c, pos);
    if (c->step[want].batch && c->step[want].pos_end == end) {
        if ((st = vk_batch_resubmit(c->step[want].batch))) {
            drop_step(c, c->step[want].batch);
            return st;
        }
        c->k.batch = c->step[want].batch;
    } else {
        vk_batch_free(c->step[want].batch);
        c->step[want].batch = NULL;
        if ((st = vk_batch_begin_reusable(c->s->dev, &c->k.batch))) return st;
        c->prof = NULL;
        c->k.pos_buf = &c->b[PCB_STEP];
        st = record(c, 1, end - 1, want, 0, c->s->ps.n_layers);
        c->k.pos_buf = NULL;
        if (!st) st = vk_batch_submit(c->k.batch);
        if (st) {
            vk_batch_free(c->k.batch);
            c->k.batch = NULL;
            return st;
        }
        c->step[want].batch = c->k.batch;
        c->step[want].pos_end = end;
        c->n_recorded++;
    }
    c->in_step = 1;
    return VKLLM_OK;
}

/* Records and submits layers [l0, l1) of a chunk as c->k.batch. */
static vkllm_status submit_layers(gpu_ctx *c, uint32_t n, uint32_t pos, gpu_out want, uint32_t l0, uint32_t l1) {
    vkllm_status st = vk_batch_begin(c->s->dev, &c->k.batch);
    if (st) return st;
    c->marks.n = 0;
    st = record(c, n, pos, want, l0, l1);
    if (!st) st = vk_batch_submit(c->k.batch);
    if (st) {
        vk_batch_free(c->k.batch);
        c->k.batch = NULL;
    }
    return st;
}

/* Waits for an earlier part of a chunk (submit_by_layer) and releases it. */
static vkllm_status wait_part(gpu_ctx *c) {
    vkllm_status st = vk_batch_wait(c->k.batch);
    if (!st && c->prof) st = prof_collect(c->prof, &c->marks, c->k.batch);
    double ms = st ? -1 : vk_batch_gpu_ms(c->k.batch);
    c->parts_gpu_ms = ms < 0 || c->parts_gpu_ms < 0 ? -1 : c->parts_gpu_ms + ms;
    vk_batch_free(c->k.batch);
    c->k.batch = NULL;
    return st;
}

/* A prompt chunk of a context with an abort callback: one submission per layer, each waited
 * for before the callback is asked and the next one recorded, so that a Stop ends the chunk
 * within a layer's time. The last submission stays in flight like a whole chunk's would. */
static vkllm_status submit_by_layer(gpu_ctx *c, uint32_t n, uint32_t pos, gpu_out want) {
    uint32_t L = c->s->ps.n_layers;
    for (uint32_t l = 0; l < L; l++) {
        vkllm_status st = submit_layers(c, n, pos, want, l, l + 1);
        if (st || l + 1 == L) return st;
        if ((st = wait_part(c))) return st;
        if (c->abort(c->abort_user))
            return vkl_err(VKLLM_ERR_CANCELLED, "stopped by the abort callback after %u of %u layers on %s", l + 1,
                           L, vk_device_label(c->s->dev));
    }
    return VKLLM_OK;
}

void gpu_ctx_set_abort(gpu_ctx *c, vkllm_abort_fn fn, void *user) {
    c->abort = fn;
    c->abort_user = user;
}

vkllm_status gpu_stage_submit(gpu_ctx *c, const int32_t *tokens, const float *x_in, uint32_t n, uint32_t pos,
                              gpu_out want) {
    gpu_stage *s = c->s;
    const llama_hparams *hp = &s->desc->hp;
    if (c->k.batch) return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: a submission is still pending", vk_device_label(s->dev));
    if (n == 0 || n > c->n_batch) return vkl_err(VKLLM_ERR_INVALID_ARG, "chunk of %u tokens (batch %u)", n, c->n_batch);
    if ((uint64_t)pos + n > c->n_ctx)
        return vkl_err(VKLLM_ERR_CONTEXT_FULL, "context full: %u positions used, %u more requested, room for %u",
                       pos, n, c->n_ctx);
    int as_step = n == 1 && step_mode(c);
    vkllm_status st = VKLLM_OK;
    if (s->ps.has_embd) {
        for (uint32_t i = 0; i < n; i++)
            if (tokens[i] < 0 || (uint32_t)tokens[i] >= hp->n_vocab)
                return vkl_err(VKLLM_ERR_INVALID_ARG, "token id %d is outside the vocabulary (%u)", tokens[i], hp->n_vocab);
        if (!as_step) st = vk_buf_write(s->dev, &c->b[PCB_IDS], 0, tokens, (uint64_t)n * 4);
    } else {
        st = vk_buf_write(s->dev, &c->b[PCB_X], 0, x_in, (uint64_t)n * hp->n_embd * 4);
    }
    if (st) return st;
    c->want = s->ps.has_output ? want : GPU_OUT_NONE;
    if (as_step) return step_submit(c, s->ps.has_embd ? tokens[0] : 0, pos, want);
    if (n == 1) c->n_recorded++;
    c->prof = c->ctx_prof ? c->ctx_prof : s->prof;
    c->parts_gpu_ms = 0;
    if (c->abort && n > 1 && s->ps.n_layers > 1) return submit_by_layer(c, n, pos, want);
    return submit_layers(c, n, pos, want, 0, s->ps.n_layers);
}

vkllm_status gpu_stage_wait(gpu_ctx *c, float *logits, int32_t *argmax) {
    if (!c->k.batch) return VKLLM_OK;
    double t0 = vkl_now_ms();
    vkllm_status st = vk_batch_wait(c->k.batch);
    c->last_wait_ms = vkl_now_ms() - t0;
    if (!st && c->prof) st = prof_collect(c->prof, &c->marks, c->k.batch);
    double ms = st ? -1 : vk_batch_gpu_ms(c->k.batch);
    c->last_gpu_ms = ms < 0 || c->parts_gpu_ms < 0 ? -1 : ms + c->parts_gpu_ms;
    c->parts_gpu_ms = 0;
    /* A recorded step stays for its next replay, unless its run failed. */
    if (!c->in_step) vk_batch_free(c->k.batch);
    else if (st) drop_step(c, c->k.batch);
    c->k.batch = NULL;
    c->in_step = 0;
    if (st) return st;
    const llama_hparams *hp = &c->s->desc->hp;
    if (c->want == GPU_OUT_LOGITS)
        st = vk_buf_read(c->s->dev, &c->b[PCB_LOGITS_HOST], 0, logits, (uint64_t)hp->n_vocab * 4);
    else if (c->want == GPU_OUT_ARGMAX)
        st = vk_buf_read(c->s->dev, &c->b[PCB_BEST_HOST], 0, argmax, 4);
    return st;
}

double gpu_ctx_last_gpu_ms(const gpu_ctx *c) { return c->last_gpu_ms; }
double gpu_ctx_last_wait_ms(const gpu_ctx *c) { return c->last_wait_ms; }
uint64_t gpu_ctx_steps_recorded(const gpu_ctx *c) { return c->n_recorded; }

void gpu_ctx_set_prof(gpu_ctx *c, prof *p) { c->ctx_prof = p; }

const float *gpu_stage_x_out(const gpu_ctx *c) { return (const float *)c->b[PCB_X_HOST].map; }

/* ------------------------------------------------------------ preparation ---- */

/* Which pipelines a chunk needs depends on its length and position only through a few
 * thresholds: one token (matrix-vector products; attention split over the context once it is
 * long; argmax or logits out) or several (matrix products; attention rows per workgroup grow
 * with the chunk up to 16 tokens); chunks from the streaming threshold on read host weights
 * from the stream buffer, at other offsets. A step at each end of the context, every chunk
 * length up to 16 and the full batch meet all of them. */
vkllm_status gpu_ctx_prepare(gpu_ctx *c, vk_prepare *prep) {
    if (c->k.batch) return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: a submission is still pending", vk_device_label(c->s->dev));
    typedef struct shape {
        uint32_t n, pos;
        gpu_out want;
    } shape;
    uint32_t nb = c->n_batch < c->n_ctx ? c->n_batch : c->n_ctx;
    shape sh[20];
    uint32_t n_sh = 0;
    sh[n_sh++] = (shape){1, 0, GPU_OUT_LOGITS};
    sh[n_sh++] = (shape){1, c->n_ctx - 1, GPU_OUT_ARGMAX};
    for (uint32_t n = 2; n <= 16 && n <= nb; n++) sh[n_sh++] = (shape){n, 0, GPU_OUT_NONE};
    if (nb > 16) sh[n_sh++] = (shape){nb, 0, GPU_OUT_NONE};
    vkllm_status st = VKLLM_OK;
    for (uint32_t i = 0; !st && i < n_sh; i++) {
        if ((st = vk_batch_begin_dry(c->s->dev, prep, &c->k.batch))) break;
        c->prof = NULL;
        c->marks.n = 0;
        /* Single-token steps as gpu_stage_submit will record them. */
        int as_step = sh[i].n == 1 && step_mode(c);
        c->k.pos_buf = as_step ? &c->b[PCB_STEP] : NULL;
        st = record(c, sh[i].n, as_step ? step_end(c, sh[i].pos) - 1 : sh[i].pos, sh[i].want, 0, c->s->ps.n_layers);
        c->k.pos_buf = NULL;
        vk_batch_free(c->k.batch);
        c->k.batch = NULL;
        if (st) vkl_err_context("preparing chunks of %u tokens at position %u", sh[i].n, sh[i].pos);
    }
    return st;
}
