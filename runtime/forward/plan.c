/* Placement planner: from a GGUF header, the context and the devices' budgets, where every
 * tensor and KV cache lives and which device computes each layer, with every allocation the
 * loader and a context will make counted at the allocator's rounding. Pure: no Vulkan call,
 * no tensor data read. The policy is llama.cpp's layer split (contiguous ranges proportional
 * to a split or to the budgets), then FFN matrices, then whole layers, to host memory. */
#include "runtime/forward/plan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cpu/cpu_ops.h"
#include "runtime/forward/cpu_stage.h"
#include "runtime/kern/kern_attn.h"
#include "runtime/kern/kern_matmul.h"
#include "base/util.h"
#include "vk/vk.h"

#define MIB (1024ull * 1024ull)
#define GIB (1024ull * MIB)

/* Prompt chunks this long copy host weights to the device once per chunk: over PCIe that
 * beats reading them in place once per 32-token tile of the matmul. */
#define STREAM_MIN_BATCH 32
/* gpu_forward copies a layer's host-resident tensors (its norms too, in host layers) back to
 * back, each at this boundary; the stream buffer is sized by the same layout. */
#define STREAM_SLOT_ALIGN 256

static const plan_tensor k_ffn_back_first[3] = {PT_DOWN, PT_UP, PT_GATE};

static int is_matrix(int t) { return t != PT_ATTN_NORM && t != PT_FFN_NORM; }

/* vkl_fmt_bytes into a value, so several fit in one message. */
typedef struct bytes_str {
    char s[32];
} bytes_str;

static bytes_str fmt(uint64_t b) {
    bytes_str r;
    vkl_fmt_bytes(r.s, sizeof r.s, b);
    return r;
}

/* ------------------------------------------------------------ device caps ---- */

void plan_caps_from_info(const vkllm_device_info *info, uint64_t budget_override, plan_device_caps *out) {
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "device %u (%.100s)", info->index, info->name); /* names fit */
    out->type = info->type;

    /* The heap the device allocates from: the largest device-local one (the only heap of a
     * CPU device is device-local too); any heap if none says so. */
    const vkllm_heap_info *heap = NULL;
    uint32_t n_heaps = info->heap_count < VKLLM_MAX_HEAPS ? info->heap_count : VKLLM_MAX_HEAPS;
    for (uint32_t i = 0; i < n_heaps; i++)
        if (info->heaps[i].device_local && (!heap || info->heaps[i].size > heap->size)) heap = &info->heaps[i];
    for (uint32_t i = 0; !heap && i < n_heaps; i++)
        if (!heap || info->heaps[i].size > heap->size) heap = &info->heaps[i];
    uint64_t heap_size = heap ? heap->size : 0;
    uint64_t avail = heap_size;
    if (heap && heap->budget && heap->budget < avail) avail = heap->budget; /* others hold the rest */
    /* Room for the display, the driver and other programs: a sixteenth, within 256 MiB..1 GiB. */
    uint64_t reserve = heap_size / 16;
    if (reserve < 256 * MIB) reserve = 256 * MIB;
    if (reserve > GIB) reserve = GIB;
    out->budget = budget_override ? budget_override : (avail > reserve ? avail - reserve : 0);

    out->alloc_align = plan_alloc_align(info->min_storage_buffer_offset_alignment);
    uint64_t a = info->max_memory_allocation_size, b = info->max_buffer_size; /* 0: not reported */
    out->max_alloc = a && b ? (a < b ? a : b) : (a ? a : (b ? b : UINT64_MAX));
    out->max_binding = info->max_storage_buffer_range;
    out->binding_align = info->min_storage_buffer_offset_alignment;
    out->device_mappable = info->uma;
    out->import_host = info->external_host_memory && info->min_imported_host_pointer_alignment != 0;
    out->import_align = info->min_imported_host_pointer_alignment;
    /* Nominal figures in bytes/ns (= GB/s) until measured: a discrete card reads GDDR/HBM and
     * host memory over PCIe 4.0 x16; integrated and CPU devices read the same DDR either way. */
    switch (info->type) {
    case VKLLM_DEVICE_DISCRETE: out->gbps = 500.0, out->host_gbps = 25.0; break;
    case VKLLM_DEVICE_INTEGRATED: out->gbps = 60.0, out->host_gbps = 60.0; break;
    default: out->gbps = 20.0, out->host_gbps = 20.0; break;
    }
    out->measured = 0;
}

void plan_caps_cpu(uint32_t n_threads, plan_device_caps *out) {
    memset(out, 0, sizeof *out);
    uint32_t t = n_threads ? n_threads : cpu_physical_cores();
    snprintf(out->name, sizeof out->name, "cpu (%s, %u thread%s)", cpu_simd_name(cpu_simd_best()), t, t == 1 ? "" : "s");
    out->type = VKLLM_DEVICE_CPU;
    out->budget = UINT64_MAX; /* it holds no device memory; host memory is checked as a whole */
    out->alloc_align = 1;
    out->max_alloc = out->max_binding = UINT64_MAX;
    out->binding_align = 4;
    out->device_mappable = 1;
    /* Nominal: what a desktop's two DDR4/DDR5 channels give its cores reading (about 35 and
     * 55 GB/s); `vkllm plan --measure` measures it. */
    out->gbps = out->host_gbps = 40.0;
    out->cpu = 1;
    out->cpu_threads = n_threads;
}

uint64_t plan_buf_bytes(uint64_t size, uint64_t alloc_align) {
    return vkl_align_up(size ? size : 1, alloc_align ? alloc_align : 1);
}

uint64_t plan_alloc_align(uint32_t min_storage_buffer_offset_alignment) {
    return vk_alloc_alignment(min_storage_buffer_offset_alignment);
}

uint64_t plan_staging_bytes(const plan_device_caps *caps) {
    return caps->device_mappable ? 0 : VK_STAGING_BYTES;
}

/* ---------------------------------------------------- per-stage buffers ---- */

uint64_t plan_kv_bytes(const llama_hparams *hp, uint32_t n_ctx, int kv_f16) {
    return (uint64_t)n_ctx * hp->kv_dim * (kv_f16 ? 2 : 4);
}

void plan_ctx_buffers(const llama_hparams *hp, const plan_stage *s, uint32_t n_batch,
                      uint32_t binding_align, uint64_t stream_bytes, uint64_t bytes[PCB_COUNT]) {
    memset(bytes, 0, PCB_COUNT * sizeof bytes[0]);
    uint64_t nb = n_batch;
    if (s->has_embd) bytes[PCB_IDS] = nb * 4;
    bytes[PCB_X] = bytes[PCB_XB] = bytes[PCB_ATT] = nb * hp->n_embd * 4;
    bytes[PCB_Q] = nb * hp->n_head * hp->head_dim * 4;
    bytes[PCB_K] = bytes[PCB_V] = nb * hp->kv_dim * 4;
    bytes[PCB_HB] = nb * hp->n_ff * 4;
    bytes[PCB_ATTN_SCRATCH] = kern_attn_scratch_bytes_aligned(binding_align, 1, hp->n_head, hp->head_dim,
                                                              KERN_ATTN_MAX_SPLIT);
    if (s->has_output) {
        bytes[PCB_LAST] = (uint64_t)hp->n_embd * 4;
        bytes[PCB_LOGITS] = bytes[PCB_LOGITS_HOST] = (uint64_t)hp->n_vocab * 4;
        bytes[PCB_BEST] = bytes[PCB_BEST_HOST] = 4;
    } else {
        bytes[PCB_X_HOST] = nb * hp->n_embd * 4;
    }
    bytes[PCB_STREAM] = stream_bytes;
    bytes[PCB_STEP] = 16;
    /* The widest x of a product (n_embd, the attention width, n_ff) for a whole batch, in case
     * a tuning profile picks an integer dot product variant. */
    uint64_t idot = 0;
    uint32_t widths[3] = {hp->n_embd, hp->n_head * hp->head_dim, hp->n_ff};
    for (int i = 0; i < 3; i++) {
        uint64_t b = kern_int_dot_scratch_bytes(widths[i], n_batch);
        if (b > idot) idot = b;
    }
    bytes[PCB_IDOT] = idot;
}

const gguf_tensor *plan_layer_tensor(const llama_layer *l, plan_tensor t) {
    switch (t) {
    case PT_ATTN_NORM: return l->attn_norm;
    case PT_WQ: return l->wq;
    case PT_WK: return l->wk;
    case PT_WV: return l->wv;
    case PT_WO: return l->wo;
    case PT_FFN_NORM: return l->ffn_norm;
    case PT_GATE: return l->ffn_gate;
    case PT_UP: return l->ffn_up;
    case PT_DOWN: return l->ffn_down;
    default: return NULL;
    }
}

/* One half of a stage's stream buffer for this layer: its host-resident tensors as
 * gpu_forward packs them. */
static uint64_t stream_layer_bytes(const plan_layer *pl, const llama_layer *l) {
    uint64_t sum = 0;
    for (int t = 0; t < PT_COUNT; t++)
        if (pl->where[t] == PLAN_HOST)
            sum += vkl_align_up(plan_layer_tensor(l, (plan_tensor)t)->size, STREAM_SLOT_ALIGN);
    return sum;
}

uint64_t plan_stage_stream_bytes(const plan *p, const plan_stage *s, const llama_model_desc *desc) {
    if (!p->stream_min_batch || p->dev[s->device].cpu) return 0; /* the CPU reads the file in place */
    uint64_t most = 0;
    for (uint32_t i = 0; i < s->n_layers; i++) {
        uint32_t l = s->first_layer + i;
        uint64_t b = stream_layer_bytes(&p->layers[l], &desc->layers[l]);
        if (b > most) most = b;
    }
    return 2 * most; /* double-buffered: the next layer's copy overlaps this layer's work */
}

uint64_t plan_twin_stream_bytes(const plan_stage *s, const llama_model_desc *desc) {
    uint64_t most = 0;
    for (uint32_t i = 0; i < s->n_layers; i++) {
        uint64_t b = 0;
        for (int t = 0; t < PT_COUNT; t++)
            b += vkl_align_up(plan_layer_tensor(&desc->layers[s->first_layer + i], (plan_tensor)t)->size, STREAM_SLOT_ALIGN);
        if (b > most) most = b;
    }
    return 2 * most;
}

plan_stage plan_twin_stage(const plan_stage *s) {
    plan_stage t = *s;
    t.device = (uint32_t)s->stream_device;
    t.has_embd = t.has_output = 0;
    t.stream_device = -1;
    return t;
}

int plan_host_import_ok(const plan_device_caps *c, const gguf_tensor *t, uint64_t file_offset) {
    if (!c->import_host) return 0;
    /* Matrices are read at any 4-byte offset inside a binding; vectors (norms) are bound
     * whole, so their start must be a legal binding offset. */
    int matrix = t->n_dims > 1 && t->ne[1] > 1;
    uint64_t a = c->binding_align ? c->binding_align : 1;
    return matrix ? file_offset % 4 == 0 : file_offset % a == 0;
}

/* ---------------------------------------------------------------- planner ---- */

typedef struct planner {
    const plan_request *rq;
    const llama_model_desc *desc;
    const llama_hparams *hp;
    plan *p;                 /* the trial being evaluated; the result at the end */
    uint32_t L, D, main_dev; /* main_dev: computes the host-resident layers */
    uint64_t kv_bytes;       /* one layer's K (or V) cache */
    int stream_forced;       /* fit devices as if every stage with host tensors streams */
    /* Host memory of the last account(), by kind, for the refusal message. */
    uint64_t host_tensor_bytes, host_kv_bytes;
} planner;

static uint64_t file_offset(const planner *P, const gguf_tensor *t) {
    return gguf_data_offset(P->desc->file) + t->offset;
}

/* Host bytes a host-resident tensor takes for device c: the page-rounded span of the mapped
 * file it imports, or a host-visible allocation of its own. */
static uint64_t host_tensor_cost(const planner *P, const plan_device_caps *c, const gguf_tensor *t, int *imported) {
    if (c->cpu) { /* read where the file is mapped */
        *imported = 1;
        return t->size;
    }
    *imported = plan_host_import_ok(c, t, file_offset(P, t));
    if (*imported) {
        uint64_t a = c->import_align ? c->import_align : 1;
        uint64_t start = file_offset(P, t);
        return vkl_align_up(start + t->size, a) - start / a * a;
    }
    return plan_buf_bytes(t->size, c->alloc_align);
}

/* count[d] layers to device d, in device order from layer 0; the remaining layers
 * host-resident, computed by the main device. Tensors too big for one allocation of their
 * device go to host memory (check_limits says whether that can work). A CPU device's layers
 * are host-resident, KV cache included. */
static void assign(planner *P, const uint32_t *count) {
    plan *p = P->p;
    uint32_t l = 0;
    for (uint32_t d = 0; d < P->D; d++)
        for (uint32_t i = 0; i < count[d] && l < P->L; i++, l++) {
            plan_layer *pl = &p->layers[l];
            pl->compute = pl->kv = (int32_t)d;
            if (p->dev[d].cpu) {
                pl->kv = PLAN_HOST;
                for (int t = 0; t < PT_COUNT; t++) pl->where[t] = PLAN_HOST;
                continue;
            }
            for (int t = 0; t < PT_COUNT; t++) {
                const gguf_tensor *g = plan_layer_tensor(&P->desc->layers[l], (plan_tensor)t);
                pl->where[t] = plan_buf_bytes(g->size, p->dev[d].alloc_align) > p->dev[d].max_alloc ? PLAN_HOST : (int32_t)d;
            }
        }
    for (; l < P->L; l++) {
        plan_layer *pl = &p->layers[l];
        pl->compute = (int32_t)P->main_dev;
        pl->kv = PLAN_HOST;
        for (int t = 0; t < PT_COUNT; t++) pl->where[t] = PLAN_HOST;
    }
}

/* Stages: maximal runs of layers with the same compute device. */
static void build_stages(plan *p) {
    p->n_stages = 0;
    for (uint32_t l = 0; l < p->n_layer; l++) {
        if (l == 0 || p->layers[l].compute != p->layers[l - 1].compute) {
            if (p->n_stages == PLAN_MAX_DEVICES + 1) break; /* cannot happen: ranges in device order */
            plan_stage *s = &p->stages[p->n_stages++];
            memset(s, 0, sizeof *s);
            s->device = (uint32_t)p->layers[l].compute;
            s->stream_device = -1;
            s->first_layer = l;
        }
        p->stages[p->n_stages - 1].n_layers++;
    }
    p->stages[0].has_embd = 1;
    p->stages[p->n_stages - 1].has_output = 1;
    p->embd_device = (int32_t)p->stages[0].device;
    p->output_device = (int32_t)p->stages[p->n_stages - 1].device;
}

/* Prompt chunks a discrete card reads over PCIe once and computes fast; the CPU computes
 * 2 x params x tokens. With a layer of LLaMA-65B Q4_K_M (0.8 G parameters, 0.46 GB) the card
 * needs about 20 ms over PCIe 4.0 for the whole chunk while eight desktop cores need about
 * 4 ms per token: past a handful of tokens the card wins. 32 leaves room for slower cards and
 * faster CPUs, and keeps short prompts and decode on the CPU. */
#define CPU_STREAM_MIN_BATCH 32

/* Which CPU stages get a twin on the main card: the last device that is not the CPU, when it
 * imports host memory (the twin reads the mapped file in place; a copy would double the RAM
 * the layers take) and reads host memory slower than its own (a discrete card: the cost
 * model above), or when a test asks (cpu_stream_min_batch_override). */
static void plan_twins(planner *P) {
    plan *p = P->p;
    p->cpu_stream_min_batch = 0;
    int32_t g = -1;
    for (uint32_t d = 0; d < P->D; d++)
        if (!p->dev[d].cpu) g = (int32_t)d;
    if (g < 0) return;
    const plan_device_caps *c = &p->dev[g];
    uint32_t n_min = P->rq->cpu_stream_min_batch_override ? P->rq->cpu_stream_min_batch_override
                     : c->host_gbps < c->gbps                ? CPU_STREAM_MIN_BATCH
                                                             : 0;
    if (!n_min || !c->import_host) return;
    for (uint32_t i = 0; i < p->n_stages; i++) {
        plan_stage *s = &p->stages[i];
        if (!p->dev[s->device].cpu || !s->n_layers) continue;
        int ok = 1;
        for (uint32_t l = s->first_layer; ok && l < s->first_layer + s->n_layers; l++)
            for (int t = 0; ok && t < PT_COUNT; t++) {
                const gguf_tensor *g_t = plan_layer_tensor(&P->desc->layers[l], (plan_tensor)t);
                ok = plan_host_import_ok(c, g_t, file_offset(P, g_t));
            }
        if (!ok) continue;
        s->stream_device = g;
        p->cpu_stream_min_batch = n_min;
    }
}

/* The stage computing layer l. */
static const plan_stage *stage_of(const plan *p, uint32_t l) {
    for (uint32_t s = 0; s < p->n_stages; s++)
        if (l >= p->stages[s].first_layer && l < p->stages[s].first_layer + p->stages[s].n_layers) return &p->stages[s];
    return NULL;
}

/* Counts every byte of the current assignment: per device its device-local weights, KV and
 * context buffers, its host-visible and imported allocations; the plan's host total. */
static void account(planner *P) {
    plan *p = P->p;
    const llama_model_desc *desc = P->desc;
    memset(p->use, 0, sizeof p->use);
    P->host_tensor_bytes = P->host_kv_bytes = 0;
    build_stages(p);
    plan_twins(P);
    /* The loader shares token_embd with the output only inside one stage; any other stage
     * holding the output (even on the same device) has its own copy. */
    p->tied_copy = desc->tied_output && p->n_stages > 1;

    for (uint32_t l = 0; l < P->L; l++) {
        const plan_layer *pl = &p->layers[l];
        uint32_t c = (uint32_t)pl->compute;
        const plan_device_caps *cap = &p->dev[c];
        plan_device_use *u = &p->use[c];
        u->n_layers++;
        for (int t = 0; t < PT_COUNT; t++) {
            const gguf_tensor *g = plan_layer_tensor(&desc->layers[l], (plan_tensor)t);
            if (pl->where[t] != PLAN_HOST) {
                u->weights += plan_buf_bytes(g->size, cap->alloc_align);
                u->read_per_token += g->size;
            } else {
                int imported;
                uint64_t b = host_tensor_cost(P, cap, g, &imported);
                if (imported) u->imported += b;
                else u->host_visible += b;
                P->host_tensor_bytes += b;
                u->host_weights += g->size;
                u->host_read_per_token += g->size;
            }
        }
        uint64_t kv = 2 * plan_buf_bytes(P->kv_bytes, cap->alloc_align); /* K and V */
        const plan_stage *ls = stage_of(p, l);
        if (ls && ls->stream_device >= 0) { /* in the twin's host-visible memory, shared */
            kv = 2 * plan_buf_bytes(P->kv_bytes, p->dev[ls->stream_device].alloc_align);
            p->use[ls->stream_device].host_visible += kv;
            P->host_kv_bytes += kv;
        } else if (pl->kv != PLAN_HOST) {
            u->kv += kv;
        } else {
            u->host_visible += kv;
            P->host_kv_bytes += kv;
        }
    }

    /* Embedding and output. Decode reads one row of token_embd, and all of output. */
    plan_device_use *ue = &p->use[p->embd_device], *uo = &p->use[p->output_device];
    const plan_device_caps *ce = &p->dev[p->embd_device], *co = &p->dev[p->output_device];
    /* A CPU device reads them in the mapped file (a tied output is the same bytes). */
    uint64_t embd_row = desc->token_embd->size / (desc->hp.n_vocab ? desc->hp.n_vocab : 1);
    uint64_t out_read = desc->output_norm->size + desc->output->size;
    if (ce->cpu) {
        ue->imported += desc->token_embd->size;
        ue->host_read_per_token += embd_row;
    } else {
        ue->weights += plan_buf_bytes(desc->token_embd->size, ce->alloc_align);
        ue->read_per_token += embd_row;
    }
    if (co->cpu) {
        uo->imported += desc->output_norm->size;
        if (!desc->tied_output || !ce->cpu) uo->imported += desc->output->size;
        uo->host_read_per_token += out_read;
    } else {
        uo->weights += plan_buf_bytes(desc->output_norm->size, co->alloc_align);
        if (!desc->tied_output || p->tied_copy) uo->weights += plan_buf_bytes(desc->output->size, co->alloc_align);
        uo->read_per_token += out_read;
    }

    /* Streaming pays where some device reads its host tensors slower than its own memory. */
    int any_host = 0, slow = 0;
    for (uint32_t d = 0; d < P->D; d++)
        if (p->use[d].host_weights && !p->dev[d].cpu) {
            any_host = 1;
            if (p->dev[d].host_gbps < p->dev[d].gbps) slow = 1;
        }
    p->stream_min_batch = !any_host ? 0 : P->rq->stream_min_batch_override ? P->rq->stream_min_batch_override
                                                                           : (slow ? STREAM_MIN_BATCH : 0);

    int has_stage[PLAN_MAX_DEVICES] = {0};
    for (uint32_t s = 0; s < p->n_stages; s++) {
        const plan_stage *st = &p->stages[s];
        const plan_device_caps *cap = &p->dev[st->device];
        plan_device_use *u = &p->use[st->device];
        if (cap->cpu) { /* what cpu_ctx_create allocates besides the KV cache */
            u->host_visible += cpu_ctx_bytes(P->hp, st, p->n_ctx, p->n_batch, cap->cpu_threads);
            if (st->stream_device < 0) continue;
            /* Its twin's context on the card (weights imported from the file the CPU reads:
             * the same pages, not counted twice). */
            plan_stage twin = plan_twin_stage(st);
            const plan_device_caps *tc = &p->dev[twin.device];
            plan_device_use *tu = &p->use[twin.device];
            uint64_t bytes[PCB_COUNT];
            plan_ctx_buffers(P->hp, &twin, p->n_batch, tc->binding_align, plan_twin_stream_bytes(st, desc), bytes);
            for (int i = 0; i < PCB_COUNT; i++) {
                if (!bytes[i]) continue;
                uint64_t b = plan_buf_bytes(bytes[i], tc->alloc_align);
                if (i < PCB_DEVICE_COUNT) tu->scratch += b;
                else tu->host_visible += b;
            }
            has_stage[twin.device] = 1;
            continue;
        }
        uint64_t bytes[PCB_COUNT];
        plan_ctx_buffers(P->hp, st, p->n_batch, cap->binding_align, plan_stage_stream_bytes(p, st, desc), bytes);
        for (int i = 0; i < PCB_COUNT; i++) {
            if (!bytes[i]) continue; /* not allocated */
            uint64_t b = plan_buf_bytes(bytes[i], cap->alloc_align);
            if (i < PCB_DEVICE_COUNT) u->scratch += b;
            else u->host_visible += b;
        }
        has_stage[st->device] = 1;
    }
    p->host_bytes = 0;
    for (uint32_t d = 0; d < P->D; d++) {
        plan_device_use *u = &p->use[d];
        if (has_stage[d] && !p->dev[d].cpu) u->host_visible += plan_staging_bytes(&p->dev[d]);
        u->used = u->weights + u->kv + u->scratch;
        p->host_bytes += u->host_visible + u->imported;
    }
}

static int device_fits(const planner *P, uint32_t d) { return P->p->use[d].used <= P->p->dev[d].budget; }

static int all_fit(const planner *P) {
    for (uint32_t d = 0; d < P->D; d++)
        if (!device_fits(P, d)) return 0;
    return 1;
}

/* Device d's device layers (KV on the device): a contiguous range [*a, *a + *n). */
static void device_range(const planner *P, uint32_t d, uint32_t *a, uint32_t *n) {
    *a = *n = 0;
    for (uint32_t l = 0; l < P->L; l++)
        if (P->p->layers[l].compute == (int32_t)d && P->p->layers[l].kv != PLAN_HOST) {
            if (!*n) *a = l;
            ++*n;
        }
}

/* Moves FFN matrices of device d's range to host memory, down, up, gate of its last layer
 * first and backwards, until the device fits; 0 when all are moved and it still does not.
 * Counted incrementally from the last account(): each move frees the tensor's allocation
 * and may grow the stage's stream buffer (two layers' host matrices). */
static int fit_ffn(planner *P, uint32_t d) {
    plan *p = P->p;
    const plan_device_caps *cap = &p->dev[d];
    uint64_t used = p->use[d].used;
    if (used <= cap->budget) return 1;
    uint32_t a, n;
    device_range(P, d, &a, &n);
    if (!n) return 0;
    const plan_stage *st = NULL;
    for (uint32_t s = 0; s < p->n_stages; s++)
        if (p->stages[s].device == d && a >= p->stages[s].first_layer && a < p->stages[s].first_layer + p->stages[s].n_layers)
            st = &p->stages[s];
    if (!st) return 0;
    uint64_t most = 0;
    for (uint32_t i = 0; i < st->n_layers; i++) {
        uint32_t l = st->first_layer + i;
        uint64_t b = stream_layer_bytes(&p->layers[l], &P->desc->layers[l]);
        if (b > most) most = b;
    }
    uint64_t stream = plan_stage_stream_bytes(p, st, P->desc);
    uint64_t stream_buf = stream ? plan_buf_bytes(stream, cap->alloc_align) : 0;
    int streams = p->stream_min_batch || P->stream_forced || P->rq->stream_min_batch_override ||
                  cap->host_gbps < cap->gbps;
    for (uint32_t l = a + n; l-- > a;) {
        plan_layer *pl = &p->layers[l];
        for (int k = 0; k < 3; k++) {
            plan_tensor t = k_ffn_back_first[k];
            if (pl->where[t] == PLAN_HOST) continue;
            pl->where[t] = PLAN_HOST;
            used -= plan_buf_bytes(plan_layer_tensor(&P->desc->layers[l], t)->size, cap->alloc_align);
            uint64_t b = stream_layer_bytes(pl, &P->desc->layers[l]);
            if (b > most) most = b;
            uint64_t nb = streams && most ? plan_buf_bytes(2 * most, cap->alloc_align) : 0;
            used = used + nb - stream_buf;
            stream_buf = nb;
            if (used <= cap->budget) return 1;
        }
    }
    return 0;
}

/* count[d]: n layers split over the devices in proportion to w (cumulative boundaries
 * rounded, so each range is within one layer of its share). 0 when w gives no device a
 * share and n > 0. */
static int split_layers(uint32_t n, const double *w, uint32_t D, uint32_t *count) {
    double total = 0;
    for (uint32_t d = 0; d < D; d++) total += w[d];
    memset(count, 0, D * sizeof *count);
    if (n == 0) return 1;
    if (!(total > 0)) return 0;
    double cum = 0;
    uint32_t prev = 0, last = 0;
    for (uint32_t d = 0; d < D; d++) {
        cum += w[d];
        double x = (double)n * cum / total;
        uint32_t b = x >= (double)n ? n : (uint32_t)llround(x);
        if (b < prev) b = prev;
        count[d] = b - prev;
        prev = b;
        if (w[d] > 0) last = d;
    }
    count[last] += n - prev;
    return 1;
}

/* Places n device layers split by w, the rest as host layers; with ffn, moves FFN matrices
 * of any device that is over its budget. 1 when every device fits. */
static int try_plan(planner *P, uint32_t n, const double *w, int ffn) {
    uint32_t count[PLAN_MAX_DEVICES];
    P->stream_forced = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (!split_layers(n, w, P->D, count)) return 0;
        assign(P, count);
        account(P);
        if (ffn) {
            for (uint32_t d = 0; d < P->D; d++)
                if (!device_fits(P, d)) fit_ffn(P, d);
            account(P);
        }
        if (all_fit(P)) return 1;
        /* A device fitted as if it would not stream may stream after all (another device's
         * host tensors turned streaming on): fit again counting its stream buffer. */
        if (!ffn || P->stream_forced || !P->p->stream_min_batch) return 0;
        P->stream_forced = 1;
    }
    return 0;
}

/* How many layers each device holds at most (with all their FFN matrices in host memory when
 * ffn), filling the devices in order, the layers after them host-resident: the shares that
 * balance the split by what each device can take. */
static void capacity(planner *P, double *w, int ffn) {
    uint32_t count[PLAN_MAX_DEVICES] = {0};
    uint32_t a = 0;
    for (uint32_t d = 0; d < P->D; d++) {
        if (P->p->dev[d].cpu) { /* takes what the others leave: the host-resident layers */
            w[d] = 0;
            continue;
        }
        uint32_t lo = 0, hi = P->L - a; /* largest n that fits: used grows with n */
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo + 1) / 2;
            count[d] = mid;
            assign(P, count);
            for (uint32_t l = a; ffn && l < a + mid; l++)
                for (int k = 0; k < 3; k++) P->p->layers[l].where[k_ffn_back_first[k]] = PLAN_HOST;
            account(P);
            if (device_fits(P, d)) lo = mid;
            else hi = mid - 1;
        }
        count[d] = lo;
        a += lo;
        w[d] = lo;
    }
}

/* ---------------------------------------------------------------- refusals ---- */

/* "layers 0..39", or "70 layers from 0 to 79" for a device computing two stages. */
static void layers_text(const planner *P, uint32_t d, char *buf, size_t cap) {
    uint32_t first = 0, last = 0, n = 0;
    for (uint32_t l = 0; l < P->L; l++)
        if (P->p->layers[l].compute == (int32_t)d) {
            if (!n) first = l;
            last = l;
            n++;
        }
    if (!n) snprintf(buf, cap, "no layers");
    else if (n == 1) snprintf(buf, cap, "layer %u", first);
    else if (last - first + 1 == n) snprintf(buf, cap, "layers %u..%u", first, last);
    else snprintf(buf, cap, "%u layers from %u to %u", n, first, last);
}

/* The first device over budget in the last account(), with its numbers. */
static vkllm_status refuse_device(const planner *P, const char *hint) {
    const plan *p = P->p;
    uint32_t d = 0;
    while (d + 1 < P->D && device_fits(P, d)) d++;
    const plan_device_use *u = &p->use[d];
    char what[96];
    layers_text(P, d, what, sizeof what);
    uint64_t budget = p->dev[d].budget;
    return vkl_err(VKLLM_ERR_OUT_OF_MEMORY,
                   "%s needs %s of device memory for %s (weights %s, KV cache %s, buffers %s), "
                   "its budget is %s: %s short; %s",
                   p->dev[d].name, fmt(u->used).s, what, fmt(u->weights).s, fmt(u->kv).s, fmt(u->scratch).s,
                   fmt(budget).s, fmt(u->used > budget ? u->used - budget : 0).s, hint);
}

/* Every allocation the plan makes must fit one allocation of its device, wherever it is. */
static vkllm_status check_limits(const planner *P) {
    const plan *p = P->p;
    char nm[128];
    for (uint32_t l = 0; l < P->L; l++) {
        const plan_layer *pl = &p->layers[l];
        const plan_device_caps *cap = &p->dev[pl->compute];
        for (int t = 0; t < PT_COUNT; t++) {
            const gguf_tensor *g = plan_layer_tensor(&P->desc->layers[l], (plan_tensor)t);
            int imported;
            uint64_t b = pl->where[t] == PLAN_HOST ? host_tensor_cost(P, cap, g, &imported)
                                                   : plan_buf_bytes(g->size, cap->alloc_align);
            if (b > cap->max_alloc)
                return vkl_err(VKLLM_ERR_OUT_OF_MEMORY,
                               "%s takes %s, more than one allocation of %s can hold (%s) in its memory "
                               "or in host memory",
                               gguf_str_c(g->name, nm, sizeof nm), fmt(b).s, cap->name, fmt(cap->max_alloc).s);
        }
        uint64_t kv = plan_buf_bytes(P->kv_bytes, cap->alloc_align);
        if (kv > cap->max_alloc)
            return vkl_err(VKLLM_ERR_OUT_OF_MEMORY,
                           "one layer's K cache takes %s at %u positions, more than one allocation of %s "
                           "can hold (%s): a smaller context%s would fit",
                           fmt(kv).s, p->n_ctx, cap->name, fmt(cap->max_alloc).s, p->kv_f16 ? "" : " or an F16 KV cache");
    }
    const gguf_tensor *big[2] = {P->desc->token_embd, P->desc->output};
    const int32_t on[2] = {p->embd_device, p->output_device};
    for (int i = 0; i < 2; i++) {
        const plan_device_caps *cap = &p->dev[on[i]];
        uint64_t b = plan_buf_bytes(big[i]->size, cap->alloc_align);
        if (b > cap->max_alloc)
            return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "%s takes %s, more than one allocation of %s can hold (%s)",
                           gguf_str_c(big[i]->name, nm, sizeof nm), fmt(b).s, cap->name, fmt(cap->max_alloc).s);
    }
    for (uint32_t s = 0; s < p->n_stages; s++) {
        const plan_device_caps *cap = &p->dev[p->stages[s].device];
        uint64_t bytes[PCB_COUNT];
        plan_ctx_buffers(P->hp, &p->stages[s], p->n_batch, cap->binding_align,
                         plan_stage_stream_bytes(p, &p->stages[s], P->desc), bytes);
        for (int i = 0; i < PCB_COUNT; i++)
            if (bytes[i] && plan_buf_bytes(bytes[i], cap->alloc_align) > cap->max_alloc)
                return vkl_err(VKLLM_ERR_OUT_OF_MEMORY,
                               "a context buffer of %s for %u-token chunks exceeds one allocation of %s (%s): "
                               "a smaller batch would fit",
                               fmt(bytes[i]).s, p->n_batch, cap->name, fmt(cap->max_alloc).s);
    }
    return VKLLM_OK;
}

static vkllm_status check_host(const planner *P) {
    const plan *p = P->p;
    if (p->host_bytes <= p->host_budget) return VKLLM_OK;
    uint64_t other = p->host_bytes - P->host_tensor_bytes - P->host_kv_bytes;
    return vkl_err(VKLLM_ERR_OUT_OF_MEMORY,
                   "the model needs %s of host memory (host-resident tensors %s, KV caches %s, buffers %s) "
                   "beside what the devices hold, the host budget is %s: %s short; a smaller context%s, a larger "
                   "host budget, or more or larger devices would make it fit",
                   fmt(p->host_bytes).s, fmt(P->host_tensor_bytes).s, fmt(P->host_kv_bytes).s, fmt(other).s,
                   fmt(p->host_budget).s, fmt(p->host_bytes - p->host_budget).s,
                   p->kv_f16 ? "" : ", an F16 KV cache");
}

/* A device with a share of the layers must hold at least one layer and its buffers. */
static vkllm_status check_min_budget(const planner *P, const double *w) {
    const plan *p = P->p;
    for (uint32_t d = 0; d < P->D; d++) {
        if (!(w[d] > 0) || p->dev[d].cpu) continue;
        const plan_device_caps *cap = &p->dev[d];
        uint64_t layer = UINT64_MAX;
        for (uint32_t l = 0; l < P->L; l++) {
            uint64_t b = 2 * plan_buf_bytes(P->kv_bytes, cap->alloc_align);
            for (int t = 0; t < PT_COUNT; t++)
                b += plan_buf_bytes(plan_layer_tensor(&P->desc->layers[l], (plan_tensor)t)->size, cap->alloc_align);
            if (b < layer) layer = b;
        }
        plan_stage mid = {.device = d};
        uint64_t bytes[PCB_COUNT], bufs = 0;
        plan_ctx_buffers(P->hp, &mid, p->n_batch, cap->binding_align, 0, bytes);
        for (int i = 0; i < PCB_DEVICE_COUNT; i++)
            if (bytes[i]) bufs += plan_buf_bytes(bytes[i], cap->alloc_align);
        if (cap->budget < layer + bufs)
            return vkl_err(VKLLM_ERR_OUT_OF_MEMORY,
                           "%s has a budget of %s, less than one layer of this model (%s with its KV cache) "
                           "and its context buffers (%s): %s short; give it more memory or no share of the layers",
                           cap->name, fmt(cap->budget).s, fmt(layer).s, fmt(bufs).s,
                           fmt(layer + bufs - cap->budget).s);
    }
    return VKLLM_OK;
}

/* Figures derived from the final assignment. */
static void summarize(planner *P) {
    plan *p = P->p;
    p->gpu_layers = p->host_ffn_tensors = 0;
    for (uint32_t l = 0; l < P->L; l++) {
        const plan_layer *pl = &p->layers[l];
        int all = 1;
        for (int t = 0; t < PT_COUNT; t++)
            if (is_matrix(t) && pl->where[t] == PLAN_HOST) all = 0;
        p->gpu_layers += all;
        if (pl->kv != PLAN_HOST)
            for (int k = 0; k < 3; k++) p->host_ffn_tensors += pl->where[k_ffn_back_first[k]] == PLAN_HOST;
    }
    p->hop_bytes_per_token = (uint64_t)P->hp->n_embd * 4 * (p->n_stages - 1);
    /* Decode reads each weight once per token; the KV cache it reads grows with the position
     * and is left out, so this is the speed of short contexts. Bytes / (bytes/ns) = ns. */
    double ns = 0;
    int measured = 1;
    for (uint32_t d = 0; d < P->D; d++) {
        const plan_device_use *u = &p->use[d];
        const plan_device_caps *c = &p->dev[d];
        if (u->read_per_token) ns += c->gbps > 0 ? (double)u->read_per_token / c->gbps : INFINITY;
        if (u->host_read_per_token) ns += c->host_gbps > 0 ? (double)u->host_read_per_token / c->host_gbps : INFINITY;
        measured &= c->measured != 0;
    }
    p->est_decode_tps = ns > 0 && isfinite(ns) ? 1e9 / ns : 0.0;
    p->bandwidth_measured = measured;
}

static vkllm_status check_request(const plan_request *rq) {
    if (!rq || !rq->desc) return vkl_err(VKLLM_ERR_INVALID_ARG, "plan: no model description");
    if (rq->n_devices < 1 || rq->n_devices > PLAN_MAX_DEVICES)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "plan: %u devices; 1 to %d can be used", rq->n_devices, PLAN_MAX_DEVICES);
    if (rq->n_ctx == 0 || rq->n_batch == 0)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "plan: context of %u positions and chunks of %u tokens; both must be > 0",
                       rq->n_ctx, rq->n_batch);
    if (rq->main_device >= (int32_t)rq->n_devices)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "plan: main device %d, but only %u devices are used",
                       rq->main_device, rq->n_devices);
    if (rq->n_split) {
        if (rq->n_split != rq->n_devices)
            return vkl_err(VKLLM_ERR_INVALID_ARG, "plan: a split of %u shares for %u devices; give one share per device",
                           rq->n_split, rq->n_devices);
        double sum = 0;
        for (uint32_t d = 0; d < rq->n_split; d++) {
            if (!(rq->split[d] >= 0) || !isfinite(rq->split[d]))
                return vkl_err(VKLLM_ERR_INVALID_ARG, "plan: split share %u is %g; shares must be >= 0", d, rq->split[d]);
            sum += rq->split[d];
        }
        if (!(sum > 0)) return vkl_err(VKLLM_ERR_INVALID_ARG, "plan: the split gives no device a share of the layers");
    }
    return VKLLM_OK;
}

vkllm_status plan_make(const plan_request *rq, plan **out) {
    if (!out) return vkl_err(VKLLM_ERR_INVALID_ARG, "plan: out is NULL");
    *out = NULL;
    vkllm_status st = check_request(rq);
    if (st) return st;
    const llama_model_desc *desc = rq->desc;
    plan *p = vkl_calloc(1, sizeof *p);
    plan_layer *layers = vkl_calloc(desc->hp.n_layer ? desc->hp.n_layer : 1, sizeof *layers);
    if (!p || !layers) {
        free(p);
        free(layers);
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    }
    p->layers = layers;
    p->n_layer = desc->hp.n_layer;
    p->n_devices = rq->n_devices;
    memcpy(p->dev, rq->dev, rq->n_devices * sizeof p->dev[0]);
    p->n_ctx = rq->n_ctx;
    p->n_batch = rq->n_batch;
    p->kv_f16 = rq->kv_f16;
    p->host_budget = rq->host_budget;

    planner P = {.rq = rq, .desc = desc, .hp = &desc->hp, .p = p, .L = desc->hp.n_layer, .D = rq->n_devices};
    /* Host-resident layers go to the main device asked for, else a CPU device, else the last. */
    int has_cpu = 0, all_cpu = 1;
    P.main_dev = rq->n_devices - 1;
    for (uint32_t d = rq->n_devices; d-- > 0;) {
        if (rq->dev[d].cpu && !has_cpu) P.main_dev = d, has_cpu = 1;
        all_cpu &= rq->dev[d].cpu != 0;
    }
    if (rq->main_device >= 0) P.main_dev = (uint32_t)rq->main_device;
    P.kv_bytes = plan_kv_bytes(&desc->hp, rq->n_ctx, rq->kv_f16);

    /* Shares: the split asked for, else the budgets (llama.cpp splits by free memory). */
    double w[PLAN_MAX_DEVICES];
    /* A CPU device beside devices takes the layers they cannot hold; with FFN matrices it
     * computes faster than a device reads them over PCIe, so whole layers move to it, never
     * single matrices. */
    for (uint32_t d = 0; d < P.D; d++)
        w[d] = rq->n_split ? (double)rq->split[d] : rq->dev[d].cpu ? (all_cpu ? 1.0 : 0.0) : (double)rq->dev[d].budget;
    int ffn = !has_cpu;
    const char *fewer = "fewer layers on the devices, a smaller context or batch, or more devices would fit";

    if (rq->gpu_layers >= 0) {
        uint32_t n = (uint32_t)rq->gpu_layers < P.L ? (uint32_t)rq->gpu_layers : P.L;
        if (n && (st = check_min_budget(&P, w))) goto fail;
        uint32_t count[PLAN_MAX_DEVICES];
        if (!split_layers(n, w, P.D, count))
            st = vkl_err(VKLLM_ERR_INVALID_ARG, "plan: %u layers for devices, but no device has a budget", n);
        else if (!try_plan(&P, n, w, 0))
            st = refuse_device(&P, fewer);
        if (st) goto fail;
    } else {
        if ((st = check_min_budget(&P, w))) goto fail;
        if (!try_plan(&P, P.L, w, ffn)) {
            /* Whole layers must go to host memory. Find the most device layers that fit, the
             * split re-balanced by what each device can hold (or as asked), and place them. */
            uint32_t n;
            if (rq->n_split) {
                if (!try_plan(&P, 0, w, ffn)) {
                    st = refuse_device(&P, "a smaller context or batch, or a device with more memory would fit");
                    goto fail;
                }
                uint32_t lo = 0, hi = P.L - 1;
                while (lo < hi) {
                    uint32_t mid = lo + (hi - lo + 1) / 2;
                    if (try_plan(&P, mid, w, ffn)) lo = mid;
                    else hi = mid - 1;
                }
                n = lo;
            } else {
                capacity(&P, w, ffn);
                double sum = 0;
                for (uint32_t d = 0; d < P.D; d++) sum += w[d];
                if (sum >= P.L && try_plan(&P, P.L, w, ffn)) goto placed;
                n = sum < P.L - 1 ? (uint32_t)sum : P.L - 1;
                while (!try_plan(&P, n, w, ffn)) {
                    if (n == 0) {
                        st = refuse_device(&P, "a smaller context or batch, or a device with more memory would fit");
                        goto fail;
                    }
                    n--;
                }
                while (n + 1 < P.L && try_plan(&P, n + 1, w, ffn)) n++;
            }
            try_plan(&P, n, w, ffn); /* the state of the last fitting trial */
        }
    }
placed:
    if ((st = check_limits(&P)) || (st = check_host(&P))) goto fail;
    summarize(&P);
    *out = p;
    return VKLLM_OK;
fail:
    plan_free(p);
    return st;
}

void plan_free(plan *p) {
    if (!p) return;
    free(p->layers);
    free(p);
}
