/* The public model API: loading (GGUF -> checked description -> device upload), contexts,
 * evaluation in prompt chunks, tokenizer access, and the generate() loop with sampling,
 * streaming UTF-8-safe text, stop strings and timings. */
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/format/gguf.h"
#include "runtime/api/api_internal.h"
#include "runtime/cpu/cpu_ops.h"
#include "runtime/forward/cpu_stage.h"
#include "runtime/forward/forward.h"
#include "runtime/forward/gpu_forward.h"
#include "runtime/forward/plan.h"
#include "runtime/forward/profile.h"
#include "runtime/kern/kern_stream.h"
#include "runtime/format/model.h"
#include "runtime/text/sampler.h"
#include "runtime/text/tokenizer.h"
#include "runtime/format/wtype.h"
#include "base/util.h"
#include "vk/vk.h"
#include "vkllm.h"



/* A plan as the public API shows it: the planner's result plus what it was made for. */
struct vkllm_plan {
    plan *p;
    uint32_t device_index[PLAN_MAX_DEVICES]; /* physical device of each position */
    uint64_t weight_bytes;
    uint64_t file_size;
    uint32_t n_layer;
};

struct vkllm_model {
    gguf_file *file;
    llama_model_desc *desc;
    tok_vocab *vocab;
    vk_instance *inst;
    uint32_t n_devices;
    vk_device *dev[PLAN_MAX_DEVICES];   /* openings, by position in the plan (NULL: the CPU path) */
    vkllm_plan *plan;
    uint32_t n_stages;
    fwd_stage stages[PLAN_MAX_DEVICES + 1];
    fwd_ctx *reserved;                  /* the planned context, allocated at load; taken by the
                                           first vkllm_context_create with the same sizes */
    pthread_mutex_t lock;               /* guards `reserved`: contexts come and go on any thread */
    uint32_t failed_device;             /* position of the opening whose allocation failed */
    int profile;                        /* devices opened with timestamps (params.profile) */
    vkllm_model_info info;
};

struct vkllm_context {
    vkllm_model *model;
    fwd_ctx *fwd;
    uint32_t pos;
    float *logits; /* (n_vocab) */
    int logits_valid;
    prof *prof;    /* per-op GPU time when the model profiles; NULL otherwise */
    vkllm_step_stats steps; /* single-token evaluations (n_recorded: since the last reset) */
    fwd_hooks hooks;        /* the abort and progress callbacks of vkllm_eval and the prompt */
    uint64_t recorded0;     /* fwd_steps_recorded at that reset */
};

struct vkllm_vocab {
    gguf_file *file;
    tok_vocab *vocab;
};

void vkllm_model_params_init(vkllm_model_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->size = sizeof *p;
    p->gpu_layers = -1;
    p->main_device = -1;
    vkllm_context_params_init(&p->ctx);
}

void vkllm_context_params_init(vkllm_context_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->size = sizeof *p;
    p->kv_type = VKLLM_KV_F16;
}

void vkllm_sampling_params_init(vkllm_sampling_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->size = sizeof *p;
    samp_params s;
    samp_params_init(&s);
    p->temp = s.temp;
    p->top_k = s.top_k;
    p->top_p = s.top_p;
    p->min_p = s.min_p;
    p->repeat_penalty = s.repeat_penalty;
    p->repeat_last_n = s.repeat_last_n;
    p->seed = (uint64_t)time(NULL);
}

void vkllm_generate_params_init(vkllm_generate_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->size = sizeof *p;
    p->add_bos = -1;
    p->n_predict = -1;
    vkllm_sampling_params_init(&p->sampling);
}

/* Copies a caller's parameter struct over `out`, which holds the defaults: only the bytes its
 * `size` covers (a struct from an older header is shorter; the members it lacks keep their
 * defaults). A size of 0 means the struct never went through its _init function. */
static vkllm_status take_params(const void *given, size_t given_size, void *out, size_t out_size, const char *type) {
    if (!given) return VKLLM_OK;
    if (given_size == 0)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "%s.size is 0: initialise the struct with %s_init before setting it",
                       type, type);
    memcpy(out, given, given_size < out_size ? given_size : out_size);
    return VKLLM_OK;
}

static vkllm_status take_context_params(const vkllm_context_params *p, vkllm_context_params *out) {
    vkllm_context_params_init(out);
    vkllm_status st = take_params(p, p ? p->size : 0, out, sizeof *out, "vkllm_context_params");
    out->size = sizeof *out;
    return st;
}

static vkllm_status take_model_params(const vkllm_model_params *p, vkllm_model_params *out) {
    vkllm_model_params_init(out);
    vkllm_status st = take_params(p, p ? p->size : 0, out, sizeof *out, "vkllm_model_params");
    if (!st && p && p->size >= offsetof(vkllm_model_params, ctx) + sizeof p->ctx)
        st = take_context_params(&p->ctx, &out->ctx);
    out->size = sizeof *out;
    return st;
}

static vkllm_status take_generate_params(const vkllm_generate_params *p, vkllm_generate_params *out) {
    vkllm_generate_params_init(out);
    vkllm_status st = take_params(p, p ? p->size : 0, out, sizeof *out, "vkllm_generate_params");
    if (!st && p && p->size >= offsetof(vkllm_generate_params, sampling) + sizeof p->sampling) {
        vkllm_sampling_params_init(&out->sampling);
        st = take_params(&p->sampling, p->sampling.size, &out->sampling, sizeof out->sampling,
                         "vkllm_sampling_params");
    }
    out->size = sizeof *out;
    out->sampling.size = sizeof out->sampling;
    return st;
}

/* The most common matrix type by bytes, as llama-bench's "model" column names it. */
static void dominant_type(const llama_model_desc *d, char *buf, size_t cap) {
    uint64_t bytes[WTYPE_COUNT] = {0};
    for (uint32_t l = 0; l < d->hp.n_layer; l++) {
        const gguf_tensor *ts[] = {d->layers[l].wq, d->layers[l].wk, d->layers[l].wv, d->layers[l].wo,
                                   d->layers[l].ffn_gate, d->layers[l].ffn_up, d->layers[l].ffn_down};
        for (int i = 0; i < 7; i++)
            if (ts[i]->type < WTYPE_COUNT) bytes[ts[i]->type] += ts[i]->size;
    }
    uint32_t best = 0;
    for (uint32_t t = 0; t < WTYPE_COUNT; t++)
        if (bytes[t] > bytes[best]) best = t;
    const wtype_traits *tr = wtype_get(best);
    snprintf(buf, cap, "%s", tr ? tr->name : "?");
}

void vkllm_plan_free(vkllm_plan *pl) {
    if (!pl) return;
    plan_free(pl->p);
    free(pl);
}

static void free_stages(vkllm_model *m) {
    fwd_ctx_free(m->reserved);
    m->reserved = NULL;
    for (uint32_t s = 0; s < m->n_stages; s++) {
        gpu_stage_free(m->stages[s].gpu);
        gpu_stage_free(m->stages[s].twin);
        cpu_stage_free(m->stages[s].cpu);
        m->stages[s] = (fwd_stage){0};
    }
    m->n_stages = 0;
}

void vkllm_model_free(vkllm_model *m) {
    if (!m) return;
    free_stages(m);
    for (uint32_t d = 0; d < m->n_devices; d++) vk_device_close(m->dev[d]);
    vkllm_plan_free(m->plan);
    vk_instance_destroy(m->inst);
    tok_vocab_free(m->vocab);
    llama_model_free_desc(m->desc);
    gguf_close(m->file);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static int model_lost(const vkllm_model *m) {
    for (uint32_t d = 0; d < m->n_devices; d++)
        if (m->dev[d] && vk_device_lost(m->dev[d])) return 1;
    return 0;
}

/* VKLLM_ERR_DEVICE_LOST naming the first lost opening of m: once a device is lost, every
 * later call on the model or its contexts says so, and only freeing them is left. */
static vkllm_status check_lost(const vkllm_model *m) {
    for (uint32_t d = 0; d < m->n_devices; d++) {
        vkllm_status st = m->dev[d] ? vk_device_check_lost(m->dev[d]) : VKLLM_OK;
        if (st) return st;
    }
    return VKLLM_OK;
}

/* n_ctx 0: the training context, at most 4096; n_batch 0: 512; never more than n_ctx. */
static void resolve_ctx(const llama_model_desc *d, const vkllm_context_params *cp, uint32_t *n_ctx, uint32_t *n_batch) {
    uint32_t c = cp->n_ctx;
    if (c == 0) {
        c = d->hp.n_ctx_train ? d->hp.n_ctx_train : 4096;
        if (c > 4096) c = 4096;
    }
    uint32_t b = cp->n_batch ? cp->n_batch : 512;
    *n_ctx = c;
    *n_batch = b > c ? c : b;
}

/* MemAvailable of /proc/meminfo in bytes; 0 when unknown. */
static uint64_t host_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    fclose(f);
    return (uint64_t)kb * 1024;
}

/* The Vulkan instance, or NULL when there is no Vulkan loader or driver (the CPU path needs
 * none; resolve_devices refuses Vulkan devices then). Other failures are failures. */
static vkllm_status open_instance(int validation, vk_instance **inst) {
    vkllm_status st = vk_instance_create(validation, inst);
    if (st == VKLLM_ERR_NO_VULKAN) {
        *inst = NULL;
        return VKLLM_OK;
    }
    return st;
}

/* The device openings of p: its indices, else the default device.
 * inst is NULL when Vulkan could not be loaded: then only the CPU path can be used. */
static vkllm_status resolve_devices(vk_instance *inst, const vkllm_model_params *p, uint32_t *idx, uint32_t *n,
                                    int *defaulted) {
    uint32_t n_phys = inst ? vk_device_count(inst) : 0;
    if (p->n_devices > PLAN_MAX_DEVICES)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "%u devices given; at most %d", p->n_devices, PLAN_MAX_DEVICES);
    *n = p->n_devices;
    for (uint32_t i = 0; i < *n; i++) idx[i] = p->devices[i];
    *defaulted = *n == 0;
    if (*n == 0) {
        vkllm_device_info *all = vkl_calloc(n_phys + 1, sizeof *all);
        if (!all) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
        for (uint32_t i = 0; i < n_phys; i++) all[i] = *vk_device_info(inst, i);
        all[n_phys].index = VKLLM_DEVICE_CPU_INDEX;
        all[n_phys].type = VKLLM_DEVICE_CPU;
        idx[0] = vkllm_default_device(all, n_phys + 1);
        *n = 1;
        free(all);
    }
    for (uint32_t i = 0; i < *n; i++) {
        if (idx[i] == VKLLM_DEVICE_CPU_INDEX) continue;
        if (!inst)
            return vkl_err(VKLLM_ERR_NO_VULKAN, "device %u: no Vulkan loader or driver could be loaded; the "
                           "CPU path (VKLLM_DEVICE_CPU_INDEX) needs none", idx[i]);
        if (idx[i] >= n_phys)
            return vkl_err(VKLLM_ERR_NO_DEVICE, "device %u does not exist: %u Vulkan device%s found (and the CPU "
                           "path)", idx[i], n_phys, n_phys == 1 ? "" : "s");
    }
    return VKLLM_OK;
}

/* The planner's request from the public parameters: device limits from the instance,
 * budgets, host budget, split, layers, bandwidth figures. */
static vkllm_status make_request(vk_instance *inst, const llama_model_desc *desc, const vkllm_model_params *p,
                                 const vkllm_context_params *cp, plan_request *rq, uint32_t *idx, int *defaulted) {
    memset(rq, 0, sizeof *rq);
    rq->desc = desc;
    resolve_ctx(desc, cp, &rq->n_ctx, &rq->n_batch);
    rq->kv_f16 = cp->kv_type == VKLLM_KV_F16;
    vkllm_status st = resolve_devices(inst, p, idx, &rq->n_devices, defaulted);
    if (st) return st;
    for (uint32_t i = 0; i < rq->n_devices; i++) {
        if (idx[i] == VKLLM_DEVICE_CPU_INDEX) {
            plan_caps_cpu(p->n_threads, &rq->dev[i]);
            if (p->n_devices && p->device_gbps[i] > 0) rq->dev[i].gbps = rq->dev[i].host_gbps = p->device_gbps[i];
            continue;
        }
        plan_caps_from_info(vk_device_info(inst, idx[i]), p->n_devices ? p->device_mem[i] : 0, &rq->dev[i]);
        if (p->n_devices && p->device_gbps[i] > 0) rq->dev[i].gbps = p->device_gbps[i];
        if (p->host_gbps > 0) rq->dev[i].host_gbps = p->host_gbps;
    }
    const char *unmapped = getenv("VKLLM_NO_MAPPED_DEVICE_MEMORY"); /* vk_device_open honours it too */
    if (unmapped && *unmapped && strcmp(unmapped, "0"))
        for (uint32_t i = 0; i < rq->n_devices; i++) rq->dev[i].device_mappable = 0;
    const char *imp = getenv("VKLLM_NO_HOST_IMPORT"); /* tests: force the host-visible copy path */
    if (imp && *imp && strcmp(imp, "0"))
        for (uint32_t i = 0; i < rq->n_devices; i++) rq->dev[i].import_host = 0;
    rq->host_budget = p->host_mem ? p->host_mem : host_available();
    if (p->n_tensor_split > PLAN_MAX_DEVICES) return vkl_err(VKLLM_ERR_INVALID_ARG, "%u split entries; at most %d", p->n_tensor_split, PLAN_MAX_DEVICES);
    rq->n_split = p->n_tensor_split;
    for (uint32_t i = 0; i < rq->n_split; i++) rq->split[i] = p->tensor_split[i];
    rq->gpu_layers = p->gpu_layers;
    rq->main_device = p->main_device;
    const char *smb = getenv("VKLLM_STREAM_MIN_BATCH"); /* tests and tuning: stream host weights from this chunk size */
    if (smb && *smb) rq->stream_min_batch_override = (uint32_t)strtoul(smb, NULL, 10);
    const char *cmb = getenv("VKLLM_CPU_STREAM_MIN_BATCH"); /* tests: CPU stages stream chunks this long */
    if (cmb && *cmb) rq->cpu_stream_min_batch_override = (uint32_t)strtoul(cmb, NULL, 10);
    return VKLLM_OK;
}

/* plan_make; when the device was picked by default and is a GPU that cannot hold the whole
 * model, the plan is made again with the CPU path beside it, which then computes the layers
 * kept in host memory (faster than the card reading them over PCIe). */
static vkllm_status make_plan(plan_request *rq, uint32_t *idx, int defaulted, uint32_t n_threads, plan **out) {
    vkllm_status st = plan_make(rq, out);
    if (st || !defaulted || rq->n_devices != 1 || rq->dev[0].cpu) return st;
    const plan *p = *out;
    if (p->gpu_layers == p->n_layer && p->host_ffn_tensors == 0) return VKLLM_OK;
    plan_request with_cpu = *rq;
    with_cpu.n_devices = 2;
    plan_caps_cpu(n_threads, &with_cpu.dev[1]);
    plan *pc = NULL;
    if (plan_make(&with_cpu, &pc)) return VKLLM_OK; /* keep the plan that fits */
    plan_free(*out);
    *out = pc;
    *rq = with_cpu;
    idx[1] = VKLLM_DEVICE_CPU_INDEX;
    vkl_log(VKLLM_LOG_INFO, "the model does not fit %s: the CPU path computes the %u layers kept in host memory",
            rq->dev[0].name, pc->n_layer - pc->gpu_layers);
    return VKLLM_OK;
}

static vkllm_status wrap_plan(plan *p, const uint32_t *idx, const llama_model_desc *desc, const gguf_file *f,
                              vkllm_plan **out) {
    vkllm_plan *pl = vkl_calloc(1, sizeof *pl);
    if (!pl) {
        plan_free(p);
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    }
    pl->p = p;
    for (uint32_t i = 0; i < p->n_devices; i++) pl->device_index[i] = idx[i];
    llama_model_size(desc, &pl->weight_bytes, NULL);
    pl->file_size = gguf_file_size(f);
    pl->n_layer = desc->hp.n_layer;
    *out = pl;
    return VKLLM_OK;
}

vkllm_status vkllm_plan_model(const char *path, const vkllm_model_params *p, const vkllm_context_params *cp,
                              vkllm_plan **out) {
    if (!out) return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_plan_model: out is NULL");
    *out = NULL;
    if (!path) return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_plan_model: no model path given");
    vkllm_model_params mp;
    vkllm_context_params cpp;
    vkllm_status st = take_model_params(p, &mp);
    if (!st && cp) st = take_context_params(cp, &cpp);
    if (st) return st;
    p = &mp;
    cp = cp ? &cpp : &mp.ctx;
    gguf_file *f = NULL;
    llama_model_desc *desc = NULL;
    vk_instance *inst = NULL;
    plan *pp = NULL;
    plan_request rq;
    uint32_t idx[PLAN_MAX_DEVICES];
    st = gguf_open(path, &f);
    if (!st) st = llama_model_load_desc(f, &desc);
    if (!st) st = open_instance(p->validation, &inst);
    int defaulted = 0;
    if (!st) st = make_request(inst, desc, p, cp, &rq, idx, &defaulted);
    for (uint32_t i = 0; !st && p->measure_bandwidth && i < rq.n_devices; i++) {
        if (rq.dev[i].cpu) {
            cpu_read_result r;
            if (!(st = cpu_measure_read(rq.dev[i].cpu_threads, 256ull << 20, 5, &r))) {
                rq.dev[i].gbps = rq.dev[i].host_gbps = r.gbps;
                rq.dev[i].measured = 1;
            }
            continue;
        }
        vk_device *dev = NULL;
        vk_device_opts o = {.enable_timestamps = 1};
        double gbps = 0;
        st = vk_device_open(inst, idx[i], &o, &dev);
        if (!st) st = kern_stream_gbps(dev, 256ull << 20, 5, &gbps);
        vk_device_close(dev);
        if (!st && gbps > 0) {
            rq.dev[i].gbps = gbps;
            if (rq.dev[i].device_mappable && rq.dev[i].type != VKLLM_DEVICE_DISCRETE) rq.dev[i].host_gbps = gbps;
            rq.dev[i].measured = 1;
        }
    }
    if (!st) st = make_plan(&rq, idx, defaulted, p->n_threads, &pp);
    if (!st) st = wrap_plan(pp, idx, desc, f, out);
    vk_instance_destroy(inst);
    llama_model_free_desc(desc);
    gguf_close(f);
    return st;
}

vkllm_status vkllm_plan_get_summary(const vkllm_plan *pl, vkllm_plan_summary *o) {
    if (!pl || !o) return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_plan_get_summary: NULL argument");
    memset(o, 0, sizeof *o);
    const plan *p = pl->p;
    o->n_devices = p->n_devices;
    o->n_layer = p->n_layer;
    o->n_ctx = p->n_ctx;
    o->n_batch = p->n_batch;
    o->kv_type = p->kv_f16 ? VKLLM_KV_F16 : VKLLM_KV_F32;
    o->gpu_layers = p->gpu_layers;
    o->host_ffn_tensors = p->host_ffn_tensors;
    o->embd_device = p->embd_device;
    o->output_device = p->output_device;
    o->weight_bytes = pl->weight_bytes;
    o->host_bytes = p->host_bytes;
    o->host_budget_bytes = p->host_budget;
    o->hop_bytes_per_token = p->hop_bytes_per_token;
    o->est_decode_tps = p->est_decode_tps;
    o->bandwidth_measured = p->bandwidth_measured;
    o->stream_min_batch = p->stream_min_batch;
    o->cpu_stream_min_batch = p->cpu_stream_min_batch;
    return VKLLM_OK;
}

vkllm_status vkllm_plan_get_device(const vkllm_plan *pl, uint32_t i, vkllm_plan_device *o) {
    if (!pl || !o) return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_plan_get_device: NULL argument");
    if (i >= pl->p->n_devices) return vkl_err(VKLLM_ERR_INVALID_ARG, "device %u of a plan over %u", i, pl->p->n_devices);
    const plan *p = pl->p;
    const plan_device_use *u = &p->use[i];
    memset(o, 0, sizeof *o);
    o->device_index = pl->device_index[i];
    snprintf(o->name, sizeof o->name, "%s", p->dev[i].name);
    o->budget_bytes = p->dev[i].budget;
    o->used_bytes = u->used;
    o->weights_bytes = u->weights;
    o->kv_bytes = u->kv;
    o->scratch_bytes = u->scratch;
    o->host_visible_bytes = u->host_visible;
    o->host_weight_bytes = u->host_weights;
    o->read_gbps = p->dev[i].gbps;
    o->read_bytes_per_token = u->read_per_token;
    o->host_read_bytes_per_token = u->host_read_per_token;
    /* The range of layers whose weights it holds (the first stage on it that has layers); for
     * the CPU path, the range it computes from the mapped file. */
    int any = p->dev[i].cpu;
    for (uint32_t s = 0; s < p->n_stages; s++)
        if (p->stages[s].device == i && p->stages[s].n_layers) {
            uint32_t l = p->stages[s].first_layer;
            if (!any && p->layers[l].where[PT_WQ] == PLAN_HOST) continue;
            o->first_layer = l;
            o->n_layers = p->stages[s].n_layers;
            while (!any && o->n_layers && p->layers[l + o->n_layers - 1].where[PT_WQ] == PLAN_HOST) o->n_layers--;
            break;
        }
    return VKLLM_OK;
}

vkllm_status vkllm_plan_get_layer(const vkllm_plan *pl, uint32_t layer, vkllm_plan_layer *o) {
    if (!pl || !o) return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_plan_get_layer: NULL argument");
    if (layer >= pl->p->n_layer) return vkl_err(VKLLM_ERR_INVALID_ARG, "layer %u of %u", layer, pl->p->n_layer);
    const plan_layer *l = &pl->p->layers[layer];
    o->compute = l->compute;
    o->kv = l->kv;
    for (int j = 0; j < PT_COUNT; j++) o->where[j] = l->where[j];
    return VKLLM_OK;
}

static vkllm_status clone_plan(const plan *src, plan **out) {
    plan *p = vkl_malloc(sizeof *p);
    plan_layer *l = vkl_malloc((src->n_layer ? src->n_layer : 1) * sizeof *l);
    if (!p || !l) {
        free(p);
        free(l);
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    }
    *p = *src;
    memcpy(l, src->layers, src->n_layer * sizeof *l);
    p->layers = l;
    *out = p;
    return VKLLM_OK;
}

/* Allocates every stage's weight buffers and the planned context: nothing is read yet. */
static vkllm_status alloc_all(vkllm_model *m) {
    const plan *p = m->plan->p;
    vkllm_status st = VKLLM_OK;
    for (uint32_t s = 0; !st && s < p->n_stages; s++) {
        uint32_t d = p->stages[s].device;
        m->failed_device = d;
        if (p->dev[d].cpu) {
            st = cpu_stage_create(m->desc, p, s, p->dev[d].cpu_threads, &m->stages[s].cpu);
            int32_t g = p->stages[s].stream_device;
            if (!st && g >= 0) {
                m->failed_device = (uint32_t)g;
                st = gpu_stage_alloc_twin(m->dev[g], m->desc, p, s, &m->stages[s].twin);
                m->stages[s].twin_min_batch = p->cpu_stream_min_batch;
            }
        } else {
            st = gpu_stage_alloc(m->dev[d], m->desc, p, s, &m->stages[s].gpu);
        }
        if (!st) m->n_stages = s + 1;
    }
    if (!st) {
        /* The context's buffers go stage by stage too; a failure is on the device that was
         * below its plan when it happened. */
        st = fwd_ctx_create(m->stages, m->n_stages, p->n_ctx, p->n_batch, p->kv_f16, &m->reserved);
        for (uint32_t d = 0; st && d < m->n_devices; d++) {
            if (!m->dev[d]) continue;
            vk_mem_stats ms;
            vk_mem_get_stats(m->dev[d], &ms);
            if (ms.peak_device_bytes < p->use[d].used) {
                m->failed_device = d;
                break;
            }
        }
    }
    return st;
}

typedef struct progress_relay {
    vkllm_progress_fn fn;
    void *user;
    uint64_t total;
} progress_relay;

static int relay_progress(uint64_t done, void *user) {
    progress_relay *r = user;
    return r->fn ? r->fn(r->total ? (float)((double)done / (double)r->total) : 1.0f, r->user) : 0;
}

vkllm_status vkllm_model_load(const char *path, const vkllm_model_params *p, vkllm_model **out) {
    if (!out) return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_model_load: out is NULL");
    *out = NULL;
    if (!path) return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_model_load: no model path given");
    vkllm_model_params mp;
    vkllm_status st = take_model_params(p, &mp);
    if (st) return st;
    p = &mp;
    double t0 = vkl_now_ms();
    vkllm_model *m = vkl_calloc(1, sizeof *m);
    if (!m) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    pthread_mutex_init(&m->lock, NULL);
    plan_request rq;
    uint32_t idx[PLAN_MAX_DEVICES];
    if ((st = gguf_open(path, &m->file))) goto fail;
    if ((st = llama_model_load_desc(m->file, &m->desc))) goto fail;
    if (!gguf_has_data(m->file)) {
        st = vkl_err(VKLLM_ERR_BAD_FILE, "%s holds no tensor data (a header-only or vocabulary-only file)", path);
        goto fail;
    }
    if ((st = tok_vocab_from_gguf(m->file, &m->vocab))) goto fail;
    if ((st = open_instance(p->validation, &m->inst))) goto fail;
    int defaulted = 0;
    if ((st = make_request(m->inst, m->desc, p, &p->ctx, &rq, idx, &defaulted))) goto fail;
    if (p->plan) {
        const plan *given = p->plan->p;
        /* A default device may have been planned with the CPU path beside it (make_plan). */
        int cpu_added = defaulted && given->n_devices == rq.n_devices + 1 &&
                        p->plan->device_index[rq.n_devices] == VKLLM_DEVICE_CPU_INDEX;
        if (given->n_layer != m->desc->hp.n_layer || (given->n_devices != rq.n_devices && !cpu_added) ||
            p->plan->file_size != gguf_file_size(m->file)) {
            st = vkl_err(VKLLM_ERR_INVALID_ARG, "the plan given was made for another model or device list "
                         "(%u layers on %u devices; this load has %u layers on %u devices)",
                         given->n_layer, given->n_devices, m->desc->hp.n_layer, rq.n_devices);
            goto fail;
        }
        plan *own = NULL;
        if ((st = clone_plan(given, &own))) goto fail;
        if ((st = wrap_plan(own, p->plan->device_index, m->desc, m->file, &m->plan))) goto fail;
    } else {
        plan *pp = NULL;
        if ((st = make_plan(&rq, idx, defaulted, p->n_threads, &pp))) goto fail;
        if ((st = wrap_plan(pp, idx, m->desc, m->file, &m->plan))) goto fail;
    }
    m->n_devices = m->plan->p->n_devices;
    m->profile = p->profile != 0;
    /* Tests: VKLLM_TEST_DEVICE_GIVES=BYTES makes the first opening refuse allocations past
     * that, as a card whose memory another program took. */
    const char *gives = getenv("VKLLM_TEST_DEVICE_GIVES");
    for (uint32_t d = 0; d < m->n_devices; d++) {
        if (m->plan->p->dev[d].cpu) continue; /* the CPU path opens nothing */
        vk_device_opts o = {.budget = m->plan->p->dev[d].budget, .enable_timestamps = p->profile != 0};
        if (d == 0 && gives && *gives) o.fail_above = strtoull(gives, NULL, 10);
        if ((st = vk_device_open(m->inst, m->plan->device_index[d], &o, &m->dev[d]))) goto fail;
    }
    st = alloc_all(m);
    vk_mem_stats ms = {0};
    if (st == VKLLM_ERR_OUT_OF_MEMORY && m->dev[m->failed_device]) vk_mem_get_stats(m->dev[m->failed_device], &ms);
    /* Only a device that refused device memory makes another plan worth it: host memory
     * running out is no reason to move weights off the card. */
    if (st == VKLLM_ERR_OUT_OF_MEMORY && !p->plan && ms.refusals) {
        uint32_t d_short = m->failed_device;
        uint64_t gave = ms.peak_device_bytes;
        /* The budget lied (another program holds memory): plan once more with what the device
         * really gave, and say so. */
        char b1[32], b2[32];
        vkl_log(VKLLM_LOG_WARN, "%s gave %s where %s were planned (%s); planning again with that budget",
                vk_device_label(m->dev[d_short]), vkl_fmt_bytes(b1, sizeof b1, gave),
                vkl_fmt_bytes(b2, sizeof b2, m->plan->p->use[d_short].used), vkl_last_error());
        free_stages(m);
        rq.dev[d_short].budget = gave;
        plan *pp = NULL;
        if ((st = plan_make(&rq, &pp))) goto fail;
        plan_free(m->plan->p);
        m->plan->p = pp;
        st = alloc_all(m);
    }
    if (st) {
        char b1[32], b2[32];
        const plan *pl = m->plan->p;
        uint32_t d = m->failed_device < pl->n_devices ? m->failed_device : 0;
        vkl_err_context("loading %s: the plan puts %s on %s and %s in host memory", path,
                        vkl_fmt_bytes(b1, sizeof b1, pl->use[d].used), pl->dev[d].name,
                        vkl_fmt_bytes(b2, sizeof b2, pl->host_bytes));
        goto fail;
    }
    progress_relay relay = {p->progress, p->progress_user, 0};
    llama_model_size(m->desc, &relay.total, NULL);
    uint64_t done = 0;
    for (uint32_t s = 0; s < m->n_stages; s++) {
        if (m->stages[s].cpu) { /* reads the mapped file in place: nothing to copy */
            done += cpu_stage_weight_bytes(m->stages[s].cpu);
            if (relay_progress(done, &relay)) {
                st = vkl_err(VKLLM_ERR_CANCELLED, "loading cancelled by the progress callback");
                goto fail;
            }
            continue;
        }
        if ((st = gpu_stage_upload(m->stages[s].gpu, relay_progress, &relay, &done))) goto fail;
    }
    for (uint32_t s = 0; s < m->n_stages; s++) { /* twins copy only where an import was refused */
        uint64_t twin_done = 0;
        if (m->stages[s].twin && (st = gpu_stage_upload(m->stages[s].twin, NULL, NULL, &twin_done))) goto fail;
    }

    vkllm_model_info *info = &m->info;
    const llama_hparams *hp = &m->desc->hp;
    snprintf(info->arch, sizeof info->arch, "llama");
    gguf_str name;
    if (gguf_find_key(m->file, "general.name") >= 0 && gguf_get_str(m->file, "general.name", &name) == VKLLM_OK)
        gguf_str_c(name, info->name, sizeof info->name);
    else {
        const char *base = strrchr(path, '/');
        snprintf(info->name, sizeof info->name, "%s", base ? base + 1 : path);
    }
    dominant_type(m->desc, info->type_name, sizeof info->type_name);
    info->n_vocab = hp->n_vocab;
    info->n_ctx_train = hp->n_ctx_train;
    info->n_embd = hp->n_embd;
    info->n_layer = hp->n_layer;
    info->n_head = hp->n_head;
    info->n_head_kv = hp->n_head_kv;
    info->n_ff = hp->n_ff;
    llama_model_size(m->desc, &info->size_bytes, &info->n_params);
    snprintf(info->device, sizeof info->device, "%s", m->dev[0] ? vk_device_label(m->dev[0]) : m->plan->p->dev[0].name);
    info->n_devices = m->n_devices;
    info->load_ms = vkl_now_ms() - t0;
    *out = m;
    return VKLLM_OK;
fail:
    vkllm_model_free(m);
    return st;
}

vkllm_status vkllm_model_get_info(const vkllm_model *m, vkllm_model_info *out) {
    if (!m || !out) return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_model_get_info: NULL argument");
    *out = m->info;
    return VKLLM_OK;
}

const vkllm_plan *vkllm_model_get_plan(const vkllm_model *m) { return m ? m->plan : NULL; }

uint64_t api_model_bytes_uploaded(const vkllm_model *m) {
    uint64_t n = 0;
    for (uint32_t s = 0; m && s < m->n_stages; s++)
        if (m->stages[s].gpu) n += m->stages[s].gpu->bytes_uploaded;
    return n;
}

vk_device *api_model_device(const vkllm_model *m, uint32_t i) { return m && i < m->n_devices ? m->dev[i] : NULL; }

vkllm_status vkllm_measure_read_bandwidth_stats(const vkllm_model *m, uint64_t bytes, uint32_t passes,
                                                vkllm_bandwidth *out) {
    if (!m || !out) return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_measure_read_bandwidth: model or out is NULL");
    memset(out, 0, sizeof *out);
    if (!m->dev[0]) { /* the CPU path: its threads reading RAM */
        if (!bytes) bytes = m->info.size_bytes < (1ull << 30) ? m->info.size_bytes : (1ull << 30);
        if (bytes < (1ull << 20)) bytes = 1ull << 20;
        cpu_read_result r;
        vkllm_status st = cpu_measure_read(m->plan->p->dev[0].cpu_threads, bytes, passes ? passes : 7, &r);
        if (!st)
            *out = (vkllm_bandwidth){.gbps = r.gbps, .gbps_min = r.gbps_min, .gbps_max = r.gbps_max,
                                     .bytes = r.bytes, .passes = r.passes};
        return st;
    }
    if (!bytes) {
        /* Far beyond any last-level cache, yet no more than the weights decoding reads (a small
         * model's weights stay in cache, and so may the yardstick) and than the device has left
         * besides the model. */
        bytes = m->info.size_bytes < (1ull << 30) ? m->info.size_bytes : (1ull << 30);
        vk_mem_stats ms;
        vk_mem_get_stats(m->dev[0], &ms);
        uint64_t left = ms.budget > ms.device_bytes ? ms.budget - ms.device_bytes : 0;
        if (bytes > left / 2) bytes = left / 2;
        if (bytes < (1ull << 20)) bytes = 1ull << 20;
    }
    vk_device *dev = NULL;
    vk_device_opts o = {.enable_timestamps = 1};
    kern_stream_result r;
    vkllm_status st = vk_device_open(m->inst, m->plan->device_index[0], &o, &dev);
    if (!st) st = kern_stream_measure(dev, bytes, passes ? passes : 7, &r);
    vk_device_close(dev);
    if (st) return st;
    *out = (vkllm_bandwidth){.gbps = r.gbps, .gbps_min = r.gbps_min, .gbps_max = r.gbps_max, .bytes = r.bytes,
                             .passes = r.passes};
    return VKLLM_OK;
}

vkllm_status vkllm_measure_read_bandwidth(const vkllm_model *m, uint64_t bytes, double *gbps) {
    if (!gbps) return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_measure_read_bandwidth: gbps is NULL");
    vkllm_bandwidth bw = {0};
    vkllm_status st = vkllm_measure_read_bandwidth_stats(m, bytes, 0, &bw);
    *gbps = bw.gbps;
    return st;
}

int32_t vkllm_n_vocab(const vkllm_model *m) { return m ? (int32_t)m->desc->hp.n_vocab : -1; }
int32_t vkllm_token_bos(const vkllm_model *m) { return m ? tok_bos(m->vocab) : -1; }
int32_t vkllm_token_eos(const vkllm_model *m) { return m ? tok_eos(m->vocab) : -1; }
int vkllm_add_bos(const vkllm_model *m) { return m ? tok_add_bos(m->vocab) : 0; }

/* The checks every tokenize entry point shares. */
static vkllm_status check_tokenize(const void *owner, const char *text, size_t len, const int32_t *out, size_t cap,
                                   const size_t *n_out, const char *fn) {
    if (!owner || !n_out || (!text && len) || (!out && cap))
        return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: NULL argument", fn);
    return VKLLM_OK;
}

vkllm_status vkllm_tokenize(const vkllm_model *m, const char *text, size_t len, int add_bos, int32_t *out,
                            size_t cap, size_t *n_out) {
    vkllm_status st = check_tokenize(m, text, len, out, cap, n_out, "vkllm_tokenize");
    return st ? st : tok_encode(m->vocab, text ? text : "", len, add_bos, out, cap, n_out);
}

vkllm_status vkllm_detokenize(const vkllm_model *m, const int32_t *ids, size_t n, char *buf, size_t cap,
                              size_t *len) {
    if (!m || !len || (!ids && n) || (!buf && cap)) return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_detokenize: NULL argument");
    return tok_decode(m->vocab, ids, n, buf, cap, len);
}

vkllm_status vkllm_vocab_load(const char *path, vkllm_vocab **out) {
    if (!out) return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_vocab_load: out is NULL");
    *out = NULL;
    if (!path) return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_vocab_load: no path given");
    vkllm_vocab *v = vkl_calloc(1, sizeof *v);
    if (!v) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    vkllm_status st = gguf_open(path, &v->file);
    if (!st) st = tok_vocab_from_gguf(v->file, &v->vocab);
    if (st) {
        vkllm_vocab_free(v);
        return st;
    }
    *out = v;
    return VKLLM_OK;
}

void vkllm_vocab_free(vkllm_vocab *v) {
    if (!v) return;
    tok_vocab_free(v->vocab);
    gguf_close(v->file);
    free(v);
}

int vkllm_vocab_add_bos(const vkllm_vocab *v) { return v ? tok_add_bos(v->vocab) : 0; }

vkllm_status vkllm_vocab_tokenize(const vkllm_vocab *v, const char *text, size_t len, int add_bos, int32_t *out,
                                  size_t cap, size_t *n_out) {
    vkllm_status st = check_tokenize(v, text, len, out, cap, n_out, "vkllm_vocab_tokenize");
    return st ? st : tok_encode(v->vocab, text ? text : "", len, add_bos, out, cap, n_out);
}

/* ---- contexts ---- */

vkllm_status vkllm_context_create(vkllm_model *m, const vkllm_context_params *p, vkllm_context **out) {
    if (!out) return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_context_create: out is NULL");
    *out = NULL;
    if (!m) return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_context_create: model is NULL");
    vkllm_context_params cp;
    vkllm_status pst = take_context_params(p, &cp);
    if (pst) return pst;
    p = &cp;
    uint32_t n_ctx, n_batch;
    resolve_ctx(m->desc, p, &n_ctx, &n_batch);
    int kv_f16 = p->kv_type == VKLLM_KV_F16;
    vkllm_status lost = check_lost(m);
    if (lost) return lost;
    vkllm_context *c = vkl_calloc(1, sizeof *c);
    if (!c) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    c->model = m;
    c->logits = vkl_malloc((size_t)m->desc->hp.n_vocab * sizeof(float));
    if (m->profile) c->prof = vkl_calloc(1, sizeof *c->prof);
    vkllm_status st = c->logits && (c->prof || !m->profile) ? VKLLM_OK : vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    if (!st) {
        pthread_mutex_lock(&m->lock);
        fwd_ctx *r = m->reserved;
        if (r && fwd_n_ctx(r) == n_ctx && fwd_n_batch(r) == n_batch && fwd_kv_f16(r) == kv_f16) {
            c->fwd = r; /* the context the load planned and allocated */
            m->reserved = NULL;
        }
        pthread_mutex_unlock(&m->lock);
        if (!c->fwd) st = fwd_ctx_create(m->stages, m->n_stages, n_ctx, n_batch, kv_f16, &c->fwd);
    }
    if (!st) st = fwd_prepare(c->fwd); /* the first evaluation then compiles nothing */
    if (st) {
        vkllm_context_free(c);
        return st;
    }
    fwd_set_prof(c->fwd, c->prof); /* its own table: contexts may evaluate on several threads */
    *out = c;
    return VKLLM_OK;
}

void vkllm_context_free(vkllm_context *c) {
    if (!c) return;
    /* The planned context goes back to the model for the next vkllm_context_create. */
    vkllm_model *m = c->model;
    if (c->fwd) fwd_set_prof(c->fwd, NULL);
    pthread_mutex_lock(&m->lock);
    if (c->fwd && !m->reserved && !model_lost(m)) {
        m->reserved = c->fwd;
        c->fwd = NULL;
    }
    pthread_mutex_unlock(&m->lock);
    fwd_ctx_free(c->fwd);
    prof_free(c->prof);
    free(c->prof);
    free(c->logits);
    free(c);
}

void vkllm_context_reset(vkllm_context *c) {
    if (!c) return;
    c->pos = 0;
    c->logits_valid = 0;
}

vkllm_status vkllm_context_get_prepare_stats(const vkllm_context *c, vkllm_prepare_stats *out) {
    if (!c || !out) return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_context_get_prepare_stats: NULL argument");
    vk_prepare_stats s;
    double ms;
    int skipped;
    fwd_prepare_stats(c->fwd, &s, &ms, &skipped);
    *out = (vkllm_prepare_stats){.skipped = skipped, .ms = ms, .pipelines = s.pipelines,
                                 .shaders_compiled = s.spirv_compiled, .shaders_cached = s.spirv_cached,
                                 .pipeline_cache_hits = s.pipeline_cache_hits,
                                 .pipeline_cache_told = s.pipeline_cache_told, .threads = s.threads,
                                 .compile_ms = s.compile_ms, .create_ms = s.create_ms,
                                 .first_run_ms = s.total_ms - s.build_ms};
    return VKLLM_OK;
}

uint32_t vkllm_context_pos(const vkllm_context *c) { return c ? c->pos : 0; }
uint32_t vkllm_context_size(const vkllm_context *c) { return c ? fwd_n_ctx(c->fwd) : 0; }

vkllm_status vkllm_context_set_abort_callback(vkllm_context *c, vkllm_abort_fn fn, void *user) {
    if (!c) return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_context_set_abort_callback: context is NULL");
    c->hooks.abort = fn;
    c->hooks.abort_user = user;
    return VKLLM_OK;
}

vkllm_status vkllm_context_set_progress_callback(vkllm_context *c, vkllm_eval_progress_fn fn, void *user) {
    if (!c) return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_context_set_progress_callback: context is NULL");
    c->hooks.progress = fn;
    c->hooks.progress_user = user;
    return VKLLM_OK;
}

/* Evaluates tokens in chunks; the last chunk returns logits or the argmax per `want`. A prompt
 * (hooks: the context's callbacks) may be cancelled: the chunks done stay in the context. */
static vkllm_status eval_chunks(vkllm_context *c, const int32_t *tokens, uint32_t n, gpu_out want, int32_t *best,
                                const fwd_hooks *hooks) {
    if (n == 0) return vkl_err(VKLLM_ERR_INVALID_ARG, "nothing to evaluate");
    vkllm_status st = check_lost(c->model);
    if (st) return st;
    uint32_t n_ctx = fwd_n_ctx(c->fwd);
    if ((uint64_t)c->pos + n > n_ctx)
        return vkl_err(VKLLM_ERR_CONTEXT_FULL, "context full: %u of %u positions used, %u more requested",
                       c->pos, n_ctx, n);
    c->logits_valid = 0;
    double t0 = n == 1 ? vkl_now_ms() : 0;
    uint32_t done = 0;
    st = fwd_eval(c->fwd, tokens, n, c->pos, want, c->logits, best, hooks, &done);
    if (st) {
        if (st == VKLLM_ERR_CANCELLED) c->pos += done;
        return st;
    }
    if (n == 1) {
        /* The host's cost per token is what the wall time leaves beside the GPU's. */
        double gpu = fwd_last_gpu_ms(c->fwd);
        c->steps.n_steps++;
        c->steps.wall_ms += vkl_now_ms() - t0;
        c->steps.wait_ms += fwd_last_wait_ms(c->fwd);
        if (gpu >= 0) c->steps.gpu_ms += gpu;
        c->steps.n_recorded = fwd_steps_recorded(c->fwd) - c->recorded0;
    }
    c->pos += n;
    c->logits_valid = want == GPU_OUT_LOGITS;
    return VKLLM_OK;
}

vkllm_status vkllm_eval(vkllm_context *c, const int32_t *tokens, uint32_t n) {
    if (!c || (!tokens && n)) return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_eval: context or tokens is NULL");
    return eval_chunks(c, tokens, n, GPU_OUT_LOGITS, NULL, &c->hooks);
}

const float *vkllm_get_logits(const vkllm_context *c) { return c && c->logits_valid ? c->logits : NULL; }

vkllm_status vkllm_context_get_profile(const vkllm_context *c, vkllm_profile_entry **out, uint32_t *count) {
    if (!c || !out || !count) return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_context_get_profile: NULL argument");
    *out = NULL;
    *count = 0;
    if (!c->prof) return vkl_err(VKLLM_ERR_UNSUPPORTED, "no profile: the model was loaded without params.profile");
    size_t n = c->prof->n ? c->prof->n : 1;
    *out = vkl_malloc(n * sizeof **out);
    if (!*out) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    if (c->prof->n) memcpy(*out, c->prof->e, c->prof->n * sizeof **out);
    *count = c->prof->n;
    return VKLLM_OK;
}

vkllm_status vkllm_context_get_step_stats(const vkllm_context *c, vkllm_step_stats *out) {
    if (!c || !out) return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_context_get_step_stats: NULL argument");
    *out = c->steps;
    return VKLLM_OK;
}

void vkllm_context_reset_step_stats(vkllm_context *c) {
    if (!c) return;
    memset(&c->steps, 0, sizeof c->steps);
    c->recorded0 = fwd_steps_recorded(c->fwd);
}

void vkllm_context_reset_profile(vkllm_context *c) {
    if (c && c->prof) prof_reset(c->prof);
}

/* ---- generation ---- */

typedef struct gen_state {
    const vkllm_generate_params *p;
    char *held;   /* text not yet emitted because it may begin a stop string */
    size_t n_held, cap_held;
    size_t max_stop;
    int stopped;  /* a stop string matched or the callback said stop */
    vkllm_stop_reason reason;
    int32_t token;
} gen_state;

static vkllm_status emit(gen_state *g, const char *text, size_t len) {
    if (len == 0 || g->stopped) return VKLLM_OK;
    if (g->p->on_text && g->p->on_text(text, len, g->token, g->p->user)) {
        g->stopped = 1;
        g->reason = VKLLM_STOP_CALLBACK;
    }
    return VKLLM_OK;
}

/* Receives complete UTF-8 text from the token stream. Text that could still become a stop
 * string is held back; a full match ends generation without emitting the stop string. */
static vkllm_status on_stream_text(void *user, const char *text, size_t len) {
    gen_state *g = user;
    if (g->stopped) return VKLLM_OK;
    if (g->p->n_stop == 0) return emit(g, text, len);
    if (g->n_held + len + 1 > g->cap_held) {
        size_t cap = (g->n_held + len + 1) * 2;
        char *h = vkl_realloc(g->held, cap);
        if (!h) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
        g->held = h;
        g->cap_held = cap;
    }
    memcpy(g->held + g->n_held, text, len);
    g->n_held += len;
    /* A full match anywhere: emit what precedes it and stop. */
    size_t first = SIZE_MAX;
    for (size_t s = 0; s < g->p->n_stop; s++) {
        size_t sl = strlen(g->p->stop[s]);
        if (!sl || sl > g->n_held) continue;
        for (size_t i = 0; i + sl <= g->n_held; i++)
            if (!memcmp(g->held + i, g->p->stop[s], sl) && i < first) first = i;
    }
    if (first != SIZE_MAX) {
        vkllm_status st = emit(g, g->held, first);
        g->n_held = 0;
        if (!g->stopped) {
            g->stopped = 1;
            g->reason = VKLLM_STOP_STRING;
        }
        return st;
    }
    /* Keep the longest tail that is a prefix of some stop string; emit the rest. Cut only at
     * a UTF-8 character boundary so pieces stay whole characters. */
    size_t keep = 0;
    for (size_t s = 0; s < g->p->n_stop; s++) {
        size_t sl = strlen(g->p->stop[s]);
        for (size_t k = sl > g->n_held ? g->n_held : sl - 1; k > keep; k--)
            if (!memcmp(g->held + g->n_held - k, g->p->stop[s], k)) {
                keep = k;
                break;
            }
    }
    size_t out = g->n_held - keep;
    while (out > 0 && out < g->n_held && ((unsigned char)g->held[out] & 0xC0) == 0x80) out--;
    vkllm_status st = emit(g, g->held, out);
    memmove(g->held, g->held + out, g->n_held - out);
    g->n_held -= out;
    return st;
}

vkllm_status vkllm_generate(vkllm_context *c, const vkllm_generate_params *params, vkllm_timings *timings) {
    vkllm_timings tm_local;
    vkllm_timings *tm = timings ? timings : &tm_local;
    memset(tm, 0, sizeof *tm);
    if (!c || !params) return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_generate: context or parameters is NULL");
    vkllm_generate_params gp;
    vkllm_status pst = take_generate_params(params, &gp);
    if (pst) return pst;
    const vkllm_generate_params *p = &gp;
    if (p->n_stop && !p->stop) return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_generate: %zu stop strings but stop is NULL", p->n_stop);
    for (size_t i = 0; i < p->n_stop; i++)
        if (!p->stop[i]) return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_generate: stop string %zu is NULL", i);
    const vkllm_model *m = c->model;
    vkllm_status lost = check_lost(m);
    if (lost) return lost;
    int32_t *prompt = NULL;
    size_t n_prompt = 0;
    vkllm_status st = VKLLM_OK;
    int add_bos = p->add_bos < 0 ? tok_add_bos(m->vocab) : p->add_bos;
    if (p->prompt_tokens) {
        prompt = vkl_malloc((p->n_prompt_tokens ? p->n_prompt_tokens : 1) * sizeof *prompt);
        if (!prompt) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
        memcpy(prompt, p->prompt_tokens, p->n_prompt_tokens * sizeof *prompt);
        n_prompt = p->n_prompt_tokens;
    } else {
        const char *text = p->prompt ? p->prompt : "";
        size_t len = strlen(text), need = 0;
        st = tok_encode(m->vocab, text, len, add_bos, NULL, 0, &need);
        if (st && st != VKLLM_ERR_INVALID_ARG) return st;
        prompt = vkl_malloc((need ? need : 1) * sizeof *prompt);
        if (!prompt) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
        st = tok_encode(m->vocab, text, len, add_bos, prompt, need, &n_prompt);
        if (st) {
            free(prompt);
            return st;
        }
    }
    if (n_prompt == 0) {
        free(prompt);
        return vkl_err(VKLLM_ERR_INVALID_ARG, "empty prompt and no BOS token: nothing to start from");
    }

    samp_params sp;
    samp_params_init(&sp);
    sp.temp = p->sampling.temp;
    sp.top_k = p->sampling.top_k;
    sp.top_p = p->sampling.top_p;
    sp.min_p = p->sampling.min_p;
    sp.repeat_penalty = p->sampling.repeat_penalty;
    sp.repeat_last_n = p->sampling.repeat_last_n;
    sp.seed = p->sampling.seed;
    /* Greedy without a penalty needs only the argmax: let the GPU reduce the logits. */
    int gpu_argmax = sp.temp <= 0 && (sp.repeat_penalty == 1.0f || sp.repeat_last_n == 0);
    samp *sampler = NULL;
    int32_t n_vocab = (int32_t)m->desc->hp.n_vocab;
    if ((st = samp_create(&sp, n_vocab, &sampler))) {
        free(prompt);
        return st;
    }
    for (size_t i = 0; i < n_prompt; i++) samp_accept(sampler, prompt[i]);

    gen_state g = {.p = p};
    tok_stream stream;
    int32_t bos = tok_bos(m->vocab), eos = tok_eos(m->vocab);
    int at_start = c->pos == 0 && n_prompt == 1 && prompt[0] == bos;
    tok_stream_init(&stream, m->vocab, at_start, on_stream_text, &g);

    double t0 = vkl_now_ms();
    int32_t next = -1;
    st = eval_chunks(c, prompt, (uint32_t)n_prompt, gpu_argmax ? GPU_OUT_ARGMAX : GPU_OUT_LOGITS, &next, &c->hooks);
    tm->n_prompt = (uint32_t)n_prompt;
    tm->prompt_ms = vkl_now_ms() - t0;
    free(prompt);
    if (st) goto done;

    double t1 = vkl_now_ms();
    uint32_t n_ctx = fwd_n_ctx(c->fwd);
    for (;;) {
        if (p->n_predict >= 0 && tm->n_gen >= (uint32_t)p->n_predict) { /* n_predict 0: prompt only */
            tm->stop = VKLLM_STOP_N_PREDICT;
            break;
        }
        if (!gpu_argmax && (st = samp_sample(sampler, c->logits, n_vocab, &next))) break;
        samp_accept(sampler, next);
        if (next == eos || next == bos) {
            tm->stop = VKLLM_STOP_EOS;
            break;
        }
        tm->n_gen++;
        if (p->on_token) p->on_token(next, p->user);
        g.token = next;
        if ((st = tok_stream_push(&stream, next))) break;
        if (g.stopped) {
            tm->stop = g.reason;
            break;
        }
        if (p->n_predict >= 0 && tm->n_gen >= (uint32_t)p->n_predict) {
            tm->stop = VKLLM_STOP_N_PREDICT;
            break;
        }
        if (c->pos >= n_ctx) {
            tm->stop = VKLLM_STOP_CONTEXT;
            break;
        }
        if (c->hooks.abort && c->hooks.abort(c->hooks.abort_user)) {
            tm->stop = VKLLM_STOP_CALLBACK;
            break;
        }
        if ((st = eval_chunks(c, &next, 1, gpu_argmax ? GPU_OUT_ARGMAX : GPU_OUT_LOGITS, &next, NULL))) break;
    }
    tm->gen_ms = vkl_now_ms() - t1;
    if (!st && !g.stopped) {
        st = tok_stream_flush(&stream);
        if (!st && g.n_held) st = emit(&g, g.held, g.n_held);
    }
done:
    free(g.held);
    samp_free(sampler);
    return st;
}
