/* The placement planner on header-only LLaMA-65B descriptions (Q4_0 and Q4_K_M) over devices
 * described by hand: two 24 GiB cards, one card and host memory, three cards, a 3,1 split,
 * a fixed device layer count, and each refusal; a small model whose single FFN matrices go
 * to host memory; imported host tensors; stories260K. Every plan's per-device and host bytes
 * are recounted here from the tensor table and the placement the plan reports, and must
 * match exactly. No GPU is needed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "synth_fixture.h"
#include "runtime/format/gguf.h"
#include "runtime/kern/kern_attn.h"
#include "runtime/format/model.h"
#include "runtime/forward/plan.h"
#include "testkit/synth.h"
#include "base/util.h"
#include "vk/vk.h"
#include "vkllm.h"

#define MIB (1024ull * 1024ull)
#define GIB (1024ull * MIB)

static int has(const char *msg, const char *part) { return strstr(msg, part) != NULL; }

static uint64_t up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }
/* One allocation of its own: at least one byte, rounded to the granularity. */
static uint64_t rnd(uint64_t size, uint64_t a) { return up(size ? size : 1, a); }


static void opts_65b(synth_opts *o, const char *type) {
    synth_default_opts(o);
    o->dim = 8192, o->n_layer = 80, o->n_ff = 22016, o->n_head = 64, o->n_vocab = 32000, o->n_ctx = 2048;
    o->type = type;
    o->header_only = 1;
}

/* A discrete card as the tests describe it by hand. */
static void card(plan_device_caps *c, int i, uint64_t budget) {
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "device %d (test card)", i);
    c->type = VKLLM_DEVICE_DISCRETE;
    c->budget = budget;
    c->alloc_align = 256;
    c->max_alloc = 4 * GIB;
    c->max_binding = 4 * GIB;
    c->binding_align = 64;
    c->device_mappable = 1;
    c->gbps = 500;
    c->host_gbps = 25;
}

static void request(plan_request *rq, const llama_model_desc *m, uint32_t n_dev, uint64_t budget, uint64_t host) {
    memset(rq, 0, sizeof *rq);
    rq->desc = m;
    rq->n_ctx = 2048;
    rq->n_batch = 512;
    rq->kv_f16 = 1;
    rq->n_devices = n_dev;
    for (uint32_t d = 0; d < n_dev; d++) card(&rq->dev[d], (int)d, budget);
    rq->host_budget = host;
    rq->gpu_layers = -1;
    rq->main_device = -1;
}

static const gguf_tensor *layer_tensor(const llama_layer *l, int t) {
    const gguf_tensor *all[PT_COUNT] = {l->attn_norm, l->wq, l->wk, l->wv, l->wo, l->ffn_norm,
                                        l->ffn_gate, l->ffn_up, l->ffn_down};
    return all[t];
}
static int is_matrix(int t) { return t != PT_ATTN_NORM && t != PT_FFN_NORM; }
static int is_ffn(int t) { return t == PT_GATE || t == PT_UP || t == PT_DOWN; }

/* The context buffers of a stage, written out from their shapes. */
static void ctx_sizes(const llama_hparams *hp, int embd, int output, uint32_t nb, uint32_t balign,
                      uint64_t stream, uint64_t dev[16], int *n_dev, uint64_t host[4], int *n_host) {
    *n_dev = *n_host = 0;
    if (embd) dev[(*n_dev)++] = (uint64_t)nb * 4;                          /* ids */
    for (int i = 0; i < 3; i++) dev[(*n_dev)++] = (uint64_t)nb * hp->n_embd * 4; /* x, xb, att */
    dev[(*n_dev)++] = (uint64_t)nb * hp->n_head * hp->head_dim * 4;         /* q */
    for (int i = 0; i < 2; i++) dev[(*n_dev)++] = (uint64_t)nb * hp->kv_dim * 4; /* k, v */
    dev[(*n_dev)++] = (uint64_t)nb * hp->n_ff * 4;                          /* hb */
    dev[(*n_dev)++] = kern_attn_scratch_bytes_aligned(balign, 1, hp->n_head, hp->head_dim, KERN_ATTN_MAX_SPLIT);
    if (output) {
        dev[(*n_dev)++] = (uint64_t)hp->n_embd * 4;  /* last */
        dev[(*n_dev)++] = (uint64_t)hp->n_vocab * 4; /* logits */
        dev[(*n_dev)++] = 4;                         /* best */
        host[(*n_host)++] = (uint64_t)hp->n_vocab * 4;
        host[(*n_host)++] = 4;
    } else {
        host[(*n_host)++] = (uint64_t)nb * hp->n_embd * 4; /* hand-off */
    }
    if (stream) dev[(*n_dev)++] = stream;
    uint64_t idot = 0; /* 8-bit x of the widest product, for integer dot product variants */
    uint32_t widths[3] = {hp->n_embd, hp->n_head * hp->head_dim, hp->n_ff};
    for (int i = 0; i < 3; i++)
        if (widths[i] % 32 == 0) {
            uint64_t q = (uint64_t)nb * widths[i], pairs = (uint64_t)nb * (widths[i] / 32) * 8;
            uint64_t b = (q + 255) / 256 * 256 + pairs;
            if (b > idot) idot = b;
        }
    if (idot) dev[(*n_dev)++] = idot;
    host[(*n_host)++] = 16; /* position and token of a recorded decode step */
}

/* Bytes of one layer with everything on a device (matrices, norms, K and V). */
static uint64_t layer_bytes(const llama_model_desc *m, uint32_t l, const plan_device_caps *c, uint64_t kv) {
    uint64_t b = 2 * rnd(kv, c->alloc_align);
    for (int t = 0; t < PT_COUNT; t++) b += rnd(layer_tensor(&m->layers[l], t)->size, c->alloc_align);
    return b;
}

static uint64_t max_layer_bytes(const llama_model_desc *m, const plan_device_caps *c, uint64_t kv) {
    uint64_t most = 0;
    for (uint32_t l = 0; l < m->hp.n_layer; l++)
        if (layer_bytes(m, l, c, kv) > most) most = layer_bytes(m, l, c, kv);
    return most;
}

/* Device layers (KV on the device) per device. */
static void ranges(const plan *p, uint32_t *n) {
    memset(n, 0, PLAN_MAX_DEVICES * sizeof *n);
    for (uint32_t l = 0; l < p->n_layer; l++)
        if (p->layers[l].kv != PLAN_HOST) n[p->layers[l].compute]++;
}

/* Recounts everything the plan states from the tensor table and the placement it reports,
 * and checks the placement's rules. */
static void verify(const char *what, const plan *p, const plan_request *rq) {
    const llama_model_desc *m = rq->desc;
    const llama_hparams *hp = &m->hp;
    const uint32_t L = hp->n_layer, D = rq->n_devices;
    const uint32_t main_dev = rq->main_device < 0 ? D - 1 : (uint32_t)rq->main_device;
    const uint64_t kv = (uint64_t)rq->n_ctx * hp->kv_dim * (rq->kv_f16 ? 2 : 4);
    const uint64_t data = gguf_data_offset(m->file);
    int bad = th_failures;

    CHECK(p->n_layer == L && p->n_devices == D && p->n_ctx == rq->n_ctx && p->n_batch == rq->n_batch);
    CHECK(p->kv_f16 == rq->kv_f16 && p->host_budget == rq->host_budget);
    CHECK(memcmp(p->dev, rq->dev, D * sizeof p->dev[0]) == 0);

    /* Layers: where/kv on the compute device or host; host layers all host, on the main
     * device, after every device layer; device layers in device order. */
    int seen_host_layer = 0;
    int32_t last_dev = -1;
    for (uint32_t l = 0; l < L; l++) {
        const plan_layer *pl = &p->layers[l];
        CHECK_MSG(pl->compute >= 0 && pl->compute < (int32_t)D, "%s: layer %u computed by %d", what, l, pl->compute);
        if (pl->compute < 0 || pl->compute >= (int32_t)D) return;
        CHECK(pl->kv == pl->compute || pl->kv == PLAN_HOST);
        for (int t = 0; t < PT_COUNT; t++) CHECK(pl->where[t] == pl->compute || pl->where[t] == PLAN_HOST);
        if (pl->kv == PLAN_HOST) {
            seen_host_layer = 1;
            CHECK_MSG(pl->compute == (int32_t)main_dev, "%s: host layer %u computed by %d", what, l, pl->compute);
            for (int t = 0; t < PT_COUNT; t++) CHECK(pl->where[t] == PLAN_HOST);
        } else {
            CHECK_MSG(!seen_host_layer, "%s: device layer %u after a host layer", what, l);
            CHECK_MSG(pl->compute >= last_dev, "%s: layer %u on device %d after device %d", what, l, pl->compute, last_dev);
            last_dev = pl->compute;
            CHECK(pl->where[PT_ATTN_NORM] == pl->compute && pl->where[PT_FFN_NORM] == pl->compute);
        }
    }

    /* Stages: maximal runs of one compute device, covering every layer in order. */
    CHECK(p->n_stages >= 1 && p->n_stages <= D + 1);
    uint32_t next = 0;
    for (uint32_t s = 0; s < p->n_stages; s++) {
        const plan_stage *st = &p->stages[s];
        CHECK_MSG(st->first_layer == next && st->n_layers > 0, "%s: stage %u starts at %u (expected %u), %u layers",
                  what, s, st->first_layer, next, st->n_layers);
        for (uint32_t i = 0; i < st->n_layers && st->first_layer + i < L; i++)
            CHECK(p->layers[st->first_layer + i].compute == (int32_t)st->device);
        if (s > 0) CHECK(p->stages[s - 1].device != st->device);
        CHECK(st->has_embd == (s == 0));
        CHECK(st->has_output == (s + 1 == p->n_stages));
        next = st->first_layer + st->n_layers;
    }
    CHECK_MSG(next == L, "%s: stages cover %u of %u layers", what, next, L);
    if (next != L) return;
    const uint32_t embd = p->stages[0].device, out = p->stages[p->n_stages - 1].device;
    CHECK(p->embd_device == (int32_t)embd && p->output_device == (int32_t)out);
    CHECK(p->tied_copy == (m->tied_output && p->n_stages > 1)); /* shared only within one stage */
    CHECK(p->hop_bytes_per_token == (uint64_t)hp->n_embd * 4 * (p->n_stages - 1));

    /* Streaming: on when some device with host tensors reads them slower than its memory. */
    uint64_t host_w[PLAN_MAX_DEVICES] = {0};
    for (uint32_t l = 0; l < L; l++)
        for (int t = 0; t < PT_COUNT; t++)
            if (p->layers[l].where[t] == PLAN_HOST) host_w[p->layers[l].compute] += layer_tensor(&m->layers[l], t)->size;
    int any = 0, slow = 0;
    for (uint32_t d = 0; d < D; d++)
        if (host_w[d]) any = 1, slow |= rq->dev[d].host_gbps < rq->dev[d].gbps;
    uint32_t smb = !any ? 0 : rq->stream_min_batch_override ? rq->stream_min_batch_override : slow ? 32 : 0;
    CHECK_MSG(p->stream_min_batch == smb, "%s: stream_min_batch %u, expected %u", what, p->stream_min_batch, smb);

    /* The bytes. */
    struct {
        uint64_t weights, kv, scratch, hv, imported, host_weights, read, host_read;
        uint32_t n_layers;
        int stage;
    } e[PLAN_MAX_DEVICES];
    memset(e, 0, sizeof e);
    uint64_t host_total = 0;
    uint32_t gpu_layers = 0, host_ffn = 0;
    for (uint32_t l = 0; l < L; l++) {
        const plan_layer *pl = &p->layers[l];
        const plan_device_caps *c = &rq->dev[pl->compute];
        int all = 1;
        e[pl->compute].n_layers++;
        for (int t = 0; t < PT_COUNT; t++) {
            const gguf_tensor *g = layer_tensor(&m->layers[l], t);
            if (pl->where[t] != PLAN_HOST) {
                e[pl->compute].weights += rnd(g->size, c->alloc_align);
                e[pl->compute].read += g->size;
                continue;
            }
            if (is_matrix(t)) all = 0;
            if (is_ffn(t) && pl->kv != PLAN_HOST) host_ffn++;
            e[pl->compute].host_weights += g->size;
            e[pl->compute].host_read += g->size;
            /* Imported where the kernels can read it in place: matrices at any 4-byte offset,
             * vectors (bound whole) at a binding-aligned one; else a host-visible copy. */
            uint64_t at = data + g->offset, ba = c->binding_align ? c->binding_align : 1;
            if (c->import_host && (is_matrix(t) ? at % 4 == 0 : at % ba == 0)) {
                uint64_t start = at, a = c->import_align;
                e[pl->compute].imported += up(start + g->size, a) - start / a * a;
            } else {
                e[pl->compute].hv += rnd(g->size, c->alloc_align);
            }
        }
        gpu_layers += all;
        if (pl->kv == PLAN_HOST) e[pl->compute].hv += 2 * rnd(kv, c->alloc_align);
        else e[pl->compute].kv += 2 * rnd(kv, c->alloc_align);
    }
    e[embd].weights += rnd(m->token_embd->size, rq->dev[embd].alloc_align);
    e[embd].read += m->token_embd->size / hp->n_vocab;
    e[out].weights += rnd(m->output_norm->size, rq->dev[out].alloc_align);
    if (!m->tied_output || p->n_stages > 1) e[out].weights += rnd(m->output->size, rq->dev[out].alloc_align);
    e[out].read += m->output_norm->size + m->output->size;
    for (uint32_t s = 0; s < p->n_stages; s++) {
        const plan_stage *st = &p->stages[s];
        const plan_device_caps *c = &rq->dev[st->device];
        uint64_t most = 0;
        for (uint32_t i = 0; i < st->n_layers; i++) {
            uint64_t b = 0;
            for (int t = 0; t < PT_COUNT; t++)
                if (p->layers[st->first_layer + i].where[t] == PLAN_HOST) /* norms too, as streamed */
                    b += up(layer_tensor(&m->layers[st->first_layer + i], t)->size, 256);
            if (b > most) most = b;
        }
        uint64_t stream = smb ? 2 * most : 0;
        CHECK(plan_stage_stream_bytes(p, st, m) == stream);
        uint64_t dv[16], hv[4];
        int nd, nh;
        ctx_sizes(hp, s == 0, s + 1 == p->n_stages, rq->n_batch, c->binding_align, stream, dv, &nd, hv, &nh);
        for (int i = 0; i < nd; i++) e[st->device].scratch += rnd(dv[i], c->alloc_align);
        for (int i = 0; i < nh; i++) e[st->device].hv += rnd(hv[i], c->alloc_align);
        e[st->device].stage = 1;
    }
    double ns = 0;
    for (uint32_t d = 0; d < D; d++) {
        const plan_device_use *u = &p->use[d];
        if (e[d].stage && !rq->dev[d].device_mappable) e[d].hv += VK_STAGING_BYTES;
        uint64_t used = e[d].weights + e[d].kv + e[d].scratch;
        CHECK_MSG(u->weights == e[d].weights && u->kv == e[d].kv && u->scratch == e[d].scratch && u->used == used,
                  "%s: device %u: weights %llu kv %llu scratch %llu used %llu, recounted %llu %llu %llu %llu", what, d,
                  (unsigned long long)u->weights, (unsigned long long)u->kv, (unsigned long long)u->scratch,
                  (unsigned long long)u->used, (unsigned long long)e[d].weights, (unsigned long long)e[d].kv,
                  (unsigned long long)e[d].scratch, (unsigned long long)used);
        CHECK_MSG(u->host_visible == e[d].hv && u->imported == e[d].imported && u->host_weights == e[d].host_weights,
                  "%s: device %u: host-visible %llu imported %llu host weights %llu, recounted %llu %llu %llu", what, d,
                  (unsigned long long)u->host_visible, (unsigned long long)u->imported,
                  (unsigned long long)u->host_weights, (unsigned long long)e[d].hv,
                  (unsigned long long)e[d].imported, (unsigned long long)e[d].host_weights);
        CHECK(u->read_per_token == e[d].read && u->host_read_per_token == e[d].host_read);
        CHECK(u->n_layers == e[d].n_layers);
        CHECK_MSG(u->used <= rq->dev[d].budget, "%s: device %u uses %llu of %llu", what, d,
                  (unsigned long long)u->used, (unsigned long long)rq->dev[d].budget);
        host_total += e[d].hv + e[d].imported;
        ns += (double)e[d].read / rq->dev[d].gbps + (double)e[d].host_read / rq->dev[d].host_gbps;
    }
    CHECK_MSG(p->host_bytes == host_total, "%s: host bytes %llu, recounted %llu", what,
              (unsigned long long)p->host_bytes, (unsigned long long)host_total);
    CHECK(p->host_bytes <= rq->host_budget);
    CHECK_MSG(p->gpu_layers == gpu_layers && p->host_ffn_tensors == host_ffn, "%s: %u device layers, %u host FFN; recounted %u, %u",
              what, p->gpu_layers, p->host_ffn_tensors, gpu_layers, host_ffn);
    CHECK_MSG(fabs(p->est_decode_tps - 1e9 / ns) <= 1e-9 * (1e9 / ns), "%s: %.6f t/s, recounted %.6f", what,
              p->est_decode_tps, 1e9 / ns);
    CHECK(p->bandwidth_measured == 0);
    if (th_failures != bad) printf("  (in %s)\n", what);
}

static void print_plan(const char *what, const plan *p) {
    uint32_t n[PLAN_MAX_DEVICES];
    ranges(p, n);
    char b1[32], b2[32], b3[32];
    printf("%s: %u stages, %u device layers, %u host FFN, host %s, %.2f t/s, stream %u\n", what, p->n_stages,
           p->gpu_layers, p->host_ffn_tensors, vkl_fmt_bytes(b1, sizeof b1, p->host_bytes), p->est_decode_tps,
           p->stream_min_batch);
    for (uint32_t d = 0; d < p->n_devices; d++)
        printf("    device %u: %u device layers, %u computed, used %s of %s, %s left\n", d, n[d], p->use[d].n_layers,
               vkl_fmt_bytes(b1, sizeof b1, p->use[d].used), vkl_fmt_bytes(b2, sizeof b2, p->dev[d].budget),
               vkl_fmt_bytes(b3, sizeof b3, p->dev[d].budget - p->use[d].used));
}

/* ------------------------------------------------------------- the small parts ---- */

static void test_helpers(void) {
    CHECK(plan_buf_bytes(0, 256) == 256);
    CHECK(plan_buf_bytes(1, 256) == 256);
    CHECK(plan_buf_bytes(256, 256) == 256);
    CHECK(plan_buf_bytes(257, 256) == 512);
    CHECK(plan_alloc_align(16) == vk_alloc_alignment(16) && plan_alloc_align(16) == 256);
    CHECK(plan_alloc_align(1024) == vk_alloc_alignment(1024) && plan_alloc_align(1024) == 1024);
    plan_device_caps c;
    card(&c, 0, GIB);
    CHECK(plan_staging_bytes(&c) == 0);
    c.device_mappable = 0;
    CHECK(plan_staging_bytes(&c) == VK_STAGING_BYTES);

    llama_hparams hp = {.n_embd = 4096, .n_layer = 32, .n_ff = 11008, .n_head = 32, .n_head_kv = 8,
                        .head_dim = 128, .kv_dim = 1024, .n_vocab = 32000};
    CHECK(plan_kv_bytes(&hp, 4096, 1) == 4096ull * 1024 * 2);
    CHECK(plan_kv_bytes(&hp, 4096, 0) == 4096ull * 1024 * 4);
    for (int k = 0; k < 4; k++) {
        plan_stage s = {.device = 0, .has_embd = k & 1, .has_output = (k >> 1) & 1};
        uint64_t b[PCB_COUNT];
        plan_ctx_buffers(&hp, &s, 512, 64, k == 3 ? 12345 : 0, b);
        uint64_t dv[16], hv[4], sum_d = 0, sum_h = 0, got_d = 0, got_h = 0;
        int nd, nh;
        ctx_sizes(&hp, s.has_embd, s.has_output, 512, 64, k == 3 ? 12345 : 0, dv, &nd, hv, &nh);
        for (int i = 0; i < nd; i++) sum_d += dv[i];
        for (int i = 0; i < nh; i++) sum_h += hv[i];
        for (int i = 0; i < PCB_COUNT; i++) *(i < PCB_DEVICE_COUNT ? &got_d : &got_h) += b[i];
        CHECK(got_d == sum_d && got_h == sum_h);
        CHECK(b[PCB_IDS] == (s.has_embd ? 512u * 4 : 0));
        CHECK(b[PCB_HB] == 512ull * 11008 * 4 && b[PCB_K] == 512ull * 1024 * 4 && b[PCB_Q] == 512ull * 4096 * 4);
        CHECK(b[PCB_LOGITS] == (s.has_output ? 32000u * 4 : 0) && b[PCB_BEST_HOST] == (s.has_output ? 4u : 0));
        CHECK(b[PCB_X_HOST] == (s.has_output ? 0 : 512ull * 4096 * 4));
        CHECK(b[PCB_STREAM] == (k == 3 ? 12345u : 0));
    }
}

static void test_caps(void) {
    vkllm_device_info info;
    memset(&info, 0, sizeof info);
    info.index = 3;
    snprintf(info.name, sizeof info.name, "Big Card");
    info.type = VKLLM_DEVICE_DISCRETE;
    info.heap_count = 3;
    info.heaps[0] = (vkllm_heap_info){.size = 64 * GIB, .device_local = 0, .host_visible = 1};
    info.heaps[1] = (vkllm_heap_info){.size = 24 * GIB, .budget = 20 * GIB, .device_local = 1};
    info.heaps[2] = (vkllm_heap_info){.size = 256 * MIB, .device_local = 1, .host_visible = 1};
    info.min_storage_buffer_offset_alignment = 16;
    info.max_memory_allocation_size = 4 * GIB;
    info.max_buffer_size = 2 * GIB;
    info.max_storage_buffer_range = GIB;
    info.external_host_memory = 1;
    info.min_imported_host_pointer_alignment = 4096;
    plan_device_caps c;
    plan_caps_from_info(&info, 0, &c);
    CHECK_MSG(strcmp(c.name, "device 3 (Big Card)") == 0, "name '%s'", c.name);
    CHECK(c.type == VKLLM_DEVICE_DISCRETE);
    CHECK(c.budget == 20 * GIB - GIB); /* the smaller budget, less min(1 GiB, 24 GiB / 16) */
    CHECK(c.alloc_align == vk_alloc_alignment(16) && c.binding_align == 16);
    CHECK(c.max_alloc == 2 * GIB && c.max_binding == GIB);
    CHECK(!c.device_mappable && c.import_host && c.import_align == 4096);
    CHECK(c.gbps == 500 && c.host_gbps == 25 && !c.measured);
    plan_caps_from_info(&info, 7 * GIB, &c);
    CHECK(c.budget == 7 * GIB);

    /* An integrated GPU: one 8 GiB heap, no budget figure: a 512 MiB reserve; no import
     * without an alignment. */
    info.type = VKLLM_DEVICE_INTEGRATED;
    info.heap_count = 1;
    info.heaps[0] = (vkllm_heap_info){.size = 8 * GIB, .device_local = 1, .host_visible = 1};
    info.uma = 1;
    info.min_imported_host_pointer_alignment = 0;
    plan_caps_from_info(&info, 0, &c);
    CHECK(c.budget == 8 * GIB - 512 * MIB);
    CHECK(c.device_mappable && !c.import_host);
    CHECK(c.gbps == 60 && c.host_gbps == 60);
    /* A small heap still keeps 256 MiB back. */
    info.type = VKLLM_DEVICE_CPU;
    info.heaps[0].size = 2 * GIB;
    plan_caps_from_info(&info, 0, &c);
    CHECK(c.budget == 2 * GIB - 256 * MIB && c.gbps == 20 && c.host_gbps == 20);
}

/* -------------------------------------------------------------------- LLaMA-65B ---- */

static void test_65b(const char *type) {
    synth_opts o;
    opts_65b(&o, type);
    loaded lm;
    CHECK_OK(load_synth(&o, &lm));
    if (!lm.m) return;
    const llama_model_desc *m = lm.m;
    const uint64_t kv = 2048ull * 8192 * 2;
    char what[128];
    plan_request rq;
    plan *p = NULL;

    /* Two 24 GiB cards hold it all, 40 layers each give or take one. */
    request(&rq, m, 2, 24 * GIB, 64 * GIB);
    snprintf(what, sizeof what, "65B %s on 2 x 24 GiB", type);
    CHECK_OK(plan_make(&rq, &p));
    if (p) {
        print_plan(what, p);
        verify(what, p, &rq);
        uint32_t n[PLAN_MAX_DEVICES];
        ranges(p, n);
        CHECK_MSG(n[0] + n[1] == 80 && n[0] >= 39 && n[0] <= 41, "%s: %u + %u layers", what, n[0], n[1]);
        CHECK(p->gpu_layers == 80 && p->host_ffn_tensors == 0 && p->n_stages == 2);
        CHECK(p->embd_device == 0 && p->output_device == 1 && !p->tied_copy);
        CHECK(p->stream_min_batch == 0 && p->hop_bytes_per_token == 8192 * 4);
        /* Only readback, hand-off buffers in host memory. */
        CHECK(p->host_bytes < 64 * MIB);
        plan_free(p);
        p = NULL;
    }

    /* One card and host memory: the card full to within a layer, FFN matrices over PCIe. */
    request(&rq, m, 1, 24 * GIB, 64 * GIB);
    snprintf(what, sizeof what, "65B %s on 1 x 24 GiB + host", type);
    CHECK_OK(plan_make(&rq, &p));
    if (p) {
        print_plan(what, p);
        verify(what, p, &rq);
        uint64_t one = max_layer_bytes(m, &rq.dev[0], kv);
        CHECK_MSG(rq.dev[0].budget - p->use[0].used < one, "%s: %llu bytes left, one layer is %llu", what,
                  (unsigned long long)(rq.dev[0].budget - p->use[0].used), (unsigned long long)one);
        CHECK(p->host_ffn_tensors > 0 && p->gpu_layers < 80 && p->n_stages == 1);
        CHECK(p->stream_min_batch == 32);
        /* The FFN matrices leave from the last layer backwards: host ones form a suffix. */
        int ok = 1;
        uint32_t first_host = 80;
        for (uint32_t l = 0; l < 80; l++)
            for (int t = PT_GATE; t <= PT_DOWN; t++)
                if (p->layers[l].where[t] == PLAN_HOST && l < first_host) first_host = l;
        for (uint32_t l = first_host + 1; l < 80; l++)
            for (int t = PT_GATE; t <= PT_DOWN; t++) ok &= p->layers[l].where[t] == PLAN_HOST;
        CHECK_MSG(ok, "%s: FFN matrices in host memory are not the last ones", what);
        CHECK(p->est_decode_tps > 0 && p->est_decode_tps < 5.0);
        plan_free(p);
        p = NULL;
    }

    /* Three 16 GiB cards. */
    request(&rq, m, 3, 16 * GIB, 64 * GIB);
    snprintf(what, sizeof what, "65B %s on 3 x 16 GiB", type);
    CHECK_OK(plan_make(&rq, &p));
    if (p) {
        print_plan(what, p);
        verify(what, p, &rq);
        uint32_t n[PLAN_MAX_DEVICES];
        ranges(p, n);
        for (int d = 0; d < 3; d++) CHECK_MSG(fabs(n[d] - 80.0 / 3) <= 1.0, "%s: device %d has %u layers", what, d, n[d]);
        CHECK(p->gpu_layers == 80 && p->n_stages == 3 && p->hop_bytes_per_token == 2 * 8192 * 4);
        plan_free(p);
        p = NULL;
    }

    /* A 3,1 split over two 48 GiB cards. */
    request(&rq, m, 2, 48 * GIB, 64 * GIB);
    rq.n_split = 2;
    rq.split[0] = 3, rq.split[1] = 1;
    snprintf(what, sizeof what, "65B %s on 2 x 48 GiB split 3,1", type);
    CHECK_OK(plan_make(&rq, &p));
    if (p) {
        print_plan(what, p);
        verify(what, p, &rq);
        uint32_t n[PLAN_MAX_DEVICES];
        ranges(p, n);
        CHECK_MSG(n[0] >= 59 && n[0] <= 61 && n[0] + n[1] == 80, "%s: %u + %u", what, n[0], n[1]);
        plan_free(p);
        p = NULL;
    }
    /* A zero share: that card gets nothing, the other everything. */
    rq.split[0] = 0, rq.split[1] = 1;
    CHECK_OK(plan_make(&rq, &p));
    if (p) {
        verify("split 0,1", p, &rq);
        CHECK(p->n_stages == 1 && p->stages[0].device == 1 && p->use[0].used == 0 && p->use[0].host_visible == 0);
        plan_free(p);
        p = NULL;
    }

    /* Cards too small for even the attention of every layer: each full to within a layer,
     * the rest whole layers in host memory on the last card. */
    const uint64_t small_cards[2][2] = {{8 * GIB, 8 * GIB}, {12 * GIB, 6 * GIB}};
    for (int k = 0; k < 2; k++) {
        request(&rq, m, 2, 0, 96 * GIB);
        rq.dev[0].budget = small_cards[k][0], rq.dev[1].budget = small_cards[k][1];
        snprintf(what, sizeof what, "65B %s on %llu + %llu GiB + host", type,
                 (unsigned long long)(small_cards[k][0] / GIB), (unsigned long long)(small_cards[k][1] / GIB));
        CHECK_OK(plan_make(&rq, &p));
        if (!p) continue;
        print_plan(what, p);
        verify(what, p, &rq);
        uint64_t one = max_layer_bytes(m, &rq.dev[0], kv);
        for (int d = 0; d < 2; d++)
            CHECK_MSG(rq.dev[d].budget - p->use[d].used < one, "%s: device %d has %llu bytes left, one layer is %llu",
                      what, d, (unsigned long long)(rq.dev[d].budget - p->use[d].used), (unsigned long long)one);
        CHECK(p->layers[79].kv == PLAN_HOST && p->output_device == 1 && p->n_stages == 2);
        plan_free(p);
        p = NULL;
    }

    /* The same, with the layers split 1,1 as asked; with the host layers on the first card;
     * and with an integrated GPU first (it would not stream on its own, but the card's host
     * tensors turn streaming on for both, so its stream buffer must fit too). */
    for (int k = 0; k < 3; k++) {
        request(&rq, m, 2, 8 * GIB, 96 * GIB);
        const char *how[3] = {"split 1,1", "host layers on device 0", "integrated + discrete"};
        if (k == 0) rq.n_split = 2, rq.split[0] = rq.split[1] = 1;
        if (k == 1) rq.main_device = 0;
        if (k == 2) rq.dev[0].type = VKLLM_DEVICE_INTEGRATED, rq.dev[0].gbps = rq.dev[0].host_gbps = 60;
        snprintf(what, sizeof what, "65B %s on 2 x 8 GiB + host, %s", type, how[k]);
        CHECK_OK(plan_make(&rq, &p));
        if (!p) continue;
        print_plan(what, p);
        verify(what, p, &rq);
        uint32_t n[PLAN_MAX_DEVICES];
        ranges(p, n);
        if (k == 0) CHECK_MSG(n[0] == n[1] || n[0] == n[1] + 1, "%s: %u + %u", what, n[0], n[1]);
        if (k == 1) CHECK(p->n_stages == 3 && p->output_device == 0 && p->use[0].n_layers > n[0]);
        if (k == 2) CHECK(p->stream_min_batch == 32 && p->use[0].host_weights > 0);
        CHECK(p->layers[79].kv == PLAN_HOST && n[0] > 20 && n[1] > 20);
        plan_free(p);
        p = NULL;
    }

    /* 20 device layers, 10 per card; the other 60 in host memory on the last card. */
    request(&rq, m, 2, 24 * GIB, 64 * GIB);
    rq.gpu_layers = 20;
    snprintf(what, sizeof what, "65B %s, 20 device layers on 2 x 24 GiB", type);
    CHECK_OK(plan_make(&rq, &p));
    if (p) {
        print_plan(what, p);
        verify(what, p, &rq);
        uint32_t n[PLAN_MAX_DEVICES];
        ranges(p, n);
        CHECK(n[0] == 10 && n[1] == 10 && p->gpu_layers == 20 && p->host_ffn_tensors == 0);
        CHECK(p->n_stages == 2 && p->use[1].n_layers == 70 && p->stream_min_batch == 32);
        for (uint32_t l = 20; l < 80; l++) CHECK(p->layers[l].kv == PLAN_HOST && p->layers[l].compute == 1);
        plan_free(p);
        p = NULL;
    }
    /* ... computed by the first card instead: three stages, output back on the first. */
    rq.main_device = 0;
    snprintf(what, sizeof what, "65B %s, 20 device layers, host layers on device 0", type);
    CHECK_OK(plan_make(&rq, &p));
    if (p) {
        print_plan(what, p);
        verify(what, p, &rq);
        CHECK(p->n_stages == 3 && p->embd_device == 0 && p->output_device == 0 && p->use[0].n_layers == 70);
        plan_free(p);
        p = NULL;
    }
    /* 80 device layers do not fit one card: refused with the numbers. */
    request(&rq, m, 1, 24 * GIB, 64 * GIB);
    rq.gpu_layers = 80;
    CHECK(plan_make(&rq, &p) == VKLLM_ERR_OUT_OF_MEMORY && !p);
    const char *e = vkllm_last_error();
    CHECK_MSG(has(e, "device 0 (test card)") && has(e, "24.0 GiB") && has(e, "short"), "message: %s", e);

    /* Nowhere to put it: a 4 GiB card and 8 GiB of RAM. */
    request(&rq, m, 1, 4 * GIB, 8 * GIB);
    CHECK(plan_make(&rq, &p) == VKLLM_ERR_OUT_OF_MEMORY && !p);
    e = vkllm_last_error();
    printf("refusal: %s\n", e);
    CHECK_MSG(has(e, "host memory") && has(e, "8.0 GiB") && has(e, "needs") && has(e, "smaller context") &&
                  has(e, "larger host budget") && !has(e, "--"),
              "message: %s", e);
    /* The amount it names is more than the budget. */
    const char *needs = strstr(e, "needs ");
    CHECK(needs && atof(needs + 6) > 8.0 && has(needs, "GiB"));
    /* F32 KV cache: the message suggests F16. */
    rq.kv_f16 = 0;
    CHECK(plan_make(&rq, &p) == VKLLM_ERR_OUT_OF_MEMORY);
    CHECK_MSG(has(vkllm_last_error(), "F16 KV cache"), "message: %s", vkllm_last_error());

    /* A split with a share count other than the device count. */
    request(&rq, m, 2, 24 * GIB, 64 * GIB);
    rq.n_split = 3;
    rq.split[0] = rq.split[1] = rq.split[2] = 1;
    CHECK(plan_make(&rq, &p) == VKLLM_ERR_INVALID_ARG && !p);
    CHECK_MSG(has(vkllm_last_error(), "3") && has(vkllm_last_error(), "2 devices"), "message: %s", vkllm_last_error());
    rq.n_split = 0;
    rq.main_device = 2;
    CHECK(plan_make(&rq, &p) == VKLLM_ERR_INVALID_ARG && !p);

    /* A card with less than one layer. */
    request(&rq, m, 2, 24 * GIB, 64 * GIB);
    rq.dev[1].budget = 256 * MIB;
    CHECK(plan_make(&rq, &p) == VKLLM_ERR_OUT_OF_MEMORY && !p);
    e = vkllm_last_error();
    CHECK_MSG(has(e, "device 1 (test card)") && has(e, "256.0 MiB") && has(e, "one layer"), "message: %s", e);
    unload(&lm);
}

/* --------------------------------------------------------------- a small model ---- */

static void small_opts(synth_opts *o, const char *type) {
    synth_default_opts(o);
    o->dim = 256, o->n_layer = 4, o->n_ff = 512, o->n_head = 4, o->n_head_kv = 2, o->n_vocab = 512, o->n_ctx = 64;
    o->type = type;
    o->header_only = 1;
}

static void small_request(plan_request *rq, const llama_model_desc *m, uint32_t n_dev, uint64_t budget) {
    request(rq, m, n_dev, budget, 64 * GIB);
    rq->n_ctx = 64;
    rq->n_batch = 8;
}

static void test_small(void) {
    synth_opts o;
    small_opts(&o, "f32");
    loaded l;
    CHECK_OK(load_synth(&o, &l));
    if (!l.m) return;
    const llama_model_desc *m = l.m;
    plan_request rq;
    plan *p = NULL;
    const uint64_t ffn = m->layers[3].ffn_down->size; /* every FFN matrix: 256 x 512 f32 */
    CHECK(m->layers[3].ffn_up->size == ffn && m->layers[0].ffn_gate->size == ffn);

    /* An integrated GPU reads host memory as fast as its own: no streaming, so single FFN
     * matrices leave one at a time, down first. */
    small_request(&rq, m, 1, 1 * GIB);
    rq.dev[0].type = VKLLM_DEVICE_INTEGRATED, rq.dev[0].gbps = rq.dev[0].host_gbps = 60;
    CHECK_OK(plan_make(&rq, &p));
    if (!p) goto done;
    verify("small, roomy", p, &rq);
    uint64_t all_in = p->use[0].used;
    CHECK(p->gpu_layers == 4 && p->host_ffn_tensors == 0);
    plan_free(p);
    p = NULL;
    for (uint32_t k = 1; k <= 4; k++) {
        rq.dev[0].budget = all_in - (k - 1) * ffn - ffn / 2; /* k tensors must leave */
        char what[64];
        snprintf(what, sizeof what, "small, %u FFN tensors short", k);
        CHECK_OK(plan_make(&rq, &p));
        if (!p) continue;
        verify(what, p, &rq);
        CHECK_MSG(p->host_ffn_tensors == k, "%s: %u moved", what, p->host_ffn_tensors);
        CHECK(p->gpu_layers == (k <= 3 ? 3u : 2u) && p->stream_min_batch == 0);
        CHECK(p->layers[3].where[PT_DOWN] == PLAN_HOST);
        if (k >= 2) CHECK(p->layers[3].where[PT_UP] == PLAN_HOST);
        if (k == 2) CHECK(p->layers[3].where[PT_GATE] == 0);
        if (k == 4) CHECK(p->layers[2].where[PT_DOWN] == PLAN_HOST && p->layers[2].where[PT_UP] == 0);
        CHECK(p->host_bytes >= k * ffn);
        plan_free(p);
        p = NULL;
    }
    /* The same test override: streaming on, so the stream buffer is counted. */
    rq.stream_min_batch_override = 4;
    rq.dev[0].budget = all_in - 3 * ffn / 2;
    CHECK_OK(plan_make(&rq, &p));
    if (p) {
        verify("small, streaming forced", p, &rq);
        CHECK(p->stream_min_batch == 4 && p->host_ffn_tensors >= 2);
        plan_free(p);
        p = NULL;
    }
    rq.stream_min_batch_override = 0;

    /* A discrete card streams: its stream buffer (two layers' host matrices) must fit too. */
    card(&rq.dev[0], 0, all_in - ffn / 2);
    CHECK_OK(plan_make(&rq, &p));
    if (p) {
        print_plan("small on a card, half an FFN tensor short", p);
        verify("small on a card, half an FFN tensor short", p, &rq);
        CHECK(p->stream_min_batch == 32 && p->host_ffn_tensors > 0);
        plan_free(p);
        p = NULL;
    }
    /* Every FFN matrix in host memory frees 6 MiB but the stream buffer takes 3 MiB of it:
     * 3.5 MiB short, whole layers go, computed by the card (one stays: its attention, KV
     * and the 4.5 MiB stream buffer for whole host layers fit). */
    card(&rq.dev[0], 0, all_in - 7 * ffn);
    CHECK_OK(plan_make(&rq, &p));
    if (p) {
        print_plan("small on a card, 3.5 MiB short", p);
        verify("small on a card, 3.5 MiB short", p, &rq);
        CHECK(p->gpu_layers == 0 && p->layers[0].kv == 0 && p->layers[1].kv == PLAN_HOST && p->n_stages == 1);
        plan_free(p);
        p = NULL;
    }

    /* Two cards, everything fits: layers 2 + 2. gpu_layers 0: all on the main card. */
    small_request(&rq, m, 2, GIB);
    CHECK_OK(plan_make(&rq, &p));
    if (p) {
        verify("small on 2 cards", p, &rq);
        CHECK(p->n_stages == 2 && p->stages[0].n_layers == 2);
        plan_free(p);
        p = NULL;
    }
    rq.gpu_layers = 0;
    CHECK_OK(plan_make(&rq, &p));
    if (p) {
        verify("small, no device layers", p, &rq);
        CHECK(p->n_stages == 1 && p->stages[0].device == 1 && p->gpu_layers == 0 && p->use[0].used == 0);
        plan_free(p);
        p = NULL;
    }
    /* gpu_layers beyond the layer count means all of them. */
    rq.gpu_layers = 999;
    CHECK_OK(plan_make(&rq, &p));
    if (p) {
        CHECK(p->gpu_layers == 4);
        plan_free(p);
        p = NULL;
    }
    /* A tensor no single allocation can hold is refused with its size. */
    rq.gpu_layers = -1;
    rq.dev[0].max_alloc = rq.dev[1].max_alloc = 300 * 1024;
    CHECK(plan_make(&rq, &p) == VKLLM_ERR_OUT_OF_MEMORY && !p);
    CHECK_MSG(has(vkllm_last_error(), "ffn") && has(vkllm_last_error(), "512.0 KiB"), "message: %s", vkllm_last_error());
done:
    unload(&l);

    /* Tied output: a copy of token_embd on the output card; none when one card does both. */
    small_opts(&o, "q8_0");
    o.tied = 1;
    CHECK_OK(load_synth(&o, &l));
    if (!l.m) return;
    m = l.m;
    CHECK(m->tied_output);
    small_request(&rq, m, 2, GIB);
    rq.dev[1].device_mappable = 0; /* and a staging ring on the second */
    CHECK_OK(plan_make(&rq, &p));
    if (p) {
        verify("tied, 2 cards", p, &rq);
        CHECK(p->tied_copy && p->embd_device == 0 && p->output_device == 1);
        CHECK(p->use[1].host_visible >= VK_STAGING_BYTES);
        plan_free(p);
        p = NULL;
    }
    rq.gpu_layers = 2;
    rq.main_device = 0;
    CHECK_OK(plan_make(&rq, &p));
    if (p) {
        verify("tied, host layers on the first card", p, &rq);
        CHECK(p->tied_copy && p->n_stages == 3 && p->output_device == 0); /* another stage: its own copy */
        plan_free(p);
        p = NULL;
    }
    unload(&l);
}

/* Host tensors imported from the mapped file: page-rounded spans around each. */
static void test_import(void) {
    synth_opts o;
    small_opts(&o, "q4_0");
    loaded l;
    CHECK_OK(load_synth(&o, &l));
    if (!l.m) return;
    plan_request rq;
    plan *p = NULL;
    small_request(&rq, l.m, 1, GIB);
    rq.dev[0].import_host = 1;
    rq.dev[0].import_align = 4096;
    rq.gpu_layers = 1;
    CHECK_OK(plan_make(&rq, &p));
    if (p) {
        verify("imported host layers", p, &rq);
        uint64_t spans = 0, data = gguf_data_offset(l.f);
        for (uint32_t ly = 1; ly < 4; ly++)
            for (int t = 0; t < PT_COUNT; t++) {
                const gguf_tensor *g = layer_tensor(&l.m->layers[ly], t);
                uint64_t s = data + g->offset;
                spans += up(s + g->size, 4096) - s / 4096 * 4096;
            }
        CHECK(p->use[0].imported == spans && spans % 4096 == 0);
        CHECK(p->host_bytes == spans + p->use[0].host_visible);
        plan_free(p);
        p = NULL;
    }
    unload(&l);
}

/* ---------------------------------------------------------------- stories260K ---- */

static void test_stories(void) {
    char path[1024];
    const char *root = getenv("VKLLM_TEST_DATA");
    snprintf(path, sizeof path, "%s/stories260K/stories260K.gguf", root && *root ? root : "../shared/models");
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        printf("note: %s not found; the real-file case did not run\n", path);
        return;
    }
    fclose(fp);
    gguf_file *f = NULL;
    llama_model_desc *m = NULL;
    CHECK_OK(gguf_open(path, &f));
    if (f) CHECK_OK(llama_model_load_desc(f, &m));
    if (!m) {
        gguf_close(f);
        return;
    }
    plan_request rq;
    plan *p = NULL;
    request(&rq, m, 2, GIB, GIB);
    rq.n_ctx = 256;
    rq.n_batch = 16;
    CHECK_OK(plan_make(&rq, &p));
    if (p) {
        print_plan("stories260K on 2 cards", p);
        verify("stories260K on 2 cards", p, &rq);
        CHECK(p->gpu_layers == 5 && p->tied_copy == m->tied_output);
        plan_free(p);
        p = NULL;
    }
    /* Lavapipe-like: a CPU device that imports host tensors, three layers on it. */
    request(&rq, m, 1, GIB, GIB);
    rq.n_ctx = 256;
    rq.n_batch = 16;
    rq.dev[0].type = VKLLM_DEVICE_CPU;
    rq.dev[0].gbps = rq.dev[0].host_gbps = 20;
    rq.dev[0].import_host = 1;
    rq.dev[0].import_align = 4096;
    rq.gpu_layers = 3;
    CHECK_OK(plan_make(&rq, &p));
    if (p) {
        verify("stories260K, 3 device layers, imported", p, &rq);
        CHECK(p->gpu_layers == 3 && p->use[0].imported > 0 && p->stream_min_batch == 0);
        plan_free(p);
        p = NULL;
    }
    llama_model_free_desc(m);
    gguf_close(f);
}

/* The CPU path beside a card: the layers the card cannot hold go to the CPU whole, with their
 * KV caches in host memory and nothing on any device for them; a discrete card that imports
 * host memory gets a twin of the CPU stage for long prompt chunks, whose stream buffer and
 * context it must hold and whose host-visible memory keeps the shared KV cache. */
static void test_cpu_device(void) {
    synth_opts o;
    opts_65b(&o, "q4_K_M");
    loaded lm;
    CHECK_OK(load_synth(&o, &lm));
    if (!lm.m) return;
    const llama_model_desc *m = lm.m;
    const uint64_t kv = 2048ull * 8192 * 2;
    for (int import = 0; import < 2; import++) {
        plan_request rq;
        request(&rq, m, 2, 24 * GIB, 64 * GIB);
        rq.dev[0].import_host = import;
        rq.dev[0].import_align = 4096;
        plan_caps_cpu(4, &rq.dev[1]);
        plan *p = NULL;
        CHECK_OK(plan_make(&rq, &p));
        if (!p) continue;
        print_plan(import ? "65B q4_K_M on 24 GiB + cpu (import)" : "65B q4_K_M on 24 GiB + cpu", p);
        uint32_t n_cpu = 0, first_cpu = 80;
        for (uint32_t l = 0; l < 80; l++) {
            const plan_layer *pl = &p->layers[l];
            if (pl->compute != 1) {
                CHECK(pl->compute == 0 && pl->kv == 0 && n_cpu == 0);
                continue;
            }
            if (!n_cpu) first_cpu = l;
            n_cpu++;
            CHECK(pl->kv == PLAN_HOST);
            for (int t = 0; t < PT_COUNT; t++) CHECK(pl->where[t] == PLAN_HOST);
        }
        CHECK_MSG(n_cpu > 0 && n_cpu < 80 && first_cpu + n_cpu == 80, "%u CPU layers from %u", n_cpu, first_cpu);
        CHECK(p->host_ffn_tensors == 0 && p->gpu_layers == 80 - n_cpu);
        CHECK(p->use[0].used <= p->dev[0].budget && p->use[1].used == 0 && p->use[1].weights == 0);
        CHECK(p->n_stages == 2 && p->stages[1].device == 1 && p->output_device == 1 && p->embd_device == 0);
        CHECK(p->host_bytes <= p->host_budget);
        if (import) {
            CHECK(p->stages[1].stream_device == 0 && p->cpu_stream_min_batch == 32);
            CHECK(p->use[0].scratch >= plan_twin_stream_bytes(&p->stages[1], m));
            CHECK(p->use[0].host_visible >= 2 * kv * n_cpu);
            CHECK(p->use[1].host_visible < 2 * kv * n_cpu); /* its own buffers, not the KV cache */
        } else {
            CHECK(p->stages[1].stream_device == -1 && p->cpu_stream_min_batch == 0);
            CHECK(p->use[1].host_visible >= 2 * kv * n_cpu);
        }
        plan_free(p);
    }
    /* The CPU alone: every layer, one stage, no twin. */
    plan_request rq;
    request(&rq, m, 1, 0, 64 * GIB);
    plan_caps_cpu(0, &rq.dev[0]);
    plan *p = NULL;
    CHECK_OK(plan_make(&rq, &p));
    if (p) {
        CHECK(p->n_stages == 1 && p->stages[0].n_layers == 80 && p->stages[0].stream_device == -1);
        CHECK(p->use[0].used == 0 && p->host_bytes <= p->host_budget && p->gpu_layers == 0);
        plan_free(p);
    }
    unload(&lm);
}

int main(void) {
    test_helpers();
    test_cpu_device();
    test_caps();
    test_65b("q4_0");
    test_65b("q4_K_M");
    test_small();
    test_import();
    test_stories();
    return th_finish();
}
