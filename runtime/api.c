/* The public model API: loading (GGUF -> checked description -> device upload), contexts,
 * evaluation in prompt chunks, tokenizer access, and the generate() loop with sampling,
 * streaming UTF-8-safe text, stop strings and timings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/gguf.h"
#include "runtime/gpu_forward.h"
#include "runtime/kern_stream.h"
#include "runtime/model.h"
#include "runtime/sampler.h"
#include "runtime/tokenizer.h"
#include "runtime/wtype.h"
#include "vk/util.h"
#include "vk/vk.h"
#include "vkllm.h"



struct vkllm_model {
    gguf_file *file;
    llama_model_desc *desc;
    tok_vocab *vocab;
    vk_instance *inst;
    vk_device *dev;
    gpu_model *gpu;
    uint32_t device_index;
    vkllm_model_info info;
};

struct vkllm_context {
    vkllm_model *model;
    gpu_ctx *gpu;
    uint32_t pos;
    float *logits; /* (n_vocab) */
    int logits_valid;
};

struct vkllm_vocab {
    gguf_file *file;
    tok_vocab *vocab;
};

void vkllm_model_params_init(vkllm_model_params *p) {
    memset(p, 0, sizeof *p);
    p->gpu_layers = -1;
    p->main_device = -1;
    vkllm_context_params_init(&p->ctx);
}

void vkllm_context_params_init(vkllm_context_params *p) {
    memset(p, 0, sizeof *p);
    p->kv_type = VKLLM_KV_F16;
}

void vkllm_sampling_params_init(vkllm_sampling_params *p) {
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
    memset(p, 0, sizeof *p);
    p->add_bos = -1;
    p->n_predict = -1;
    vkllm_sampling_params_init(&p->sampling);
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

void vkllm_model_free(vkllm_model *m) {
    if (!m) return;
    gpu_model_free(m->gpu);
    vk_device_close(m->dev);
    vk_instance_destroy(m->inst);
    tok_vocab_free(m->vocab);
    llama_model_free_desc(m->desc);
    gguf_close(m->file);
    free(m);
}

typedef struct progress_relay {
    vkllm_progress_fn fn;
    void *user;
} progress_relay;

static int relay_progress(float done, void *user) {
    progress_relay *r = user;
    return r->fn ? r->fn(done, r->user) : 0;
}

vkllm_status vkllm_model_load(const char *path, const vkllm_model_params *p, vkllm_model **out) {
    vkllm_model_params defaults;
    if (!p) {
        vkllm_model_params_init(&defaults);
        p = &defaults;
    }
    *out = NULL;
    if (!path) return vkl_err(VKLLM_ERR_INVALID_ARG, "no model path given");
    const uint32_t *devs = p->devices, n_devs = p->n_devices;
    const uint64_t *mems = p->device_mem;
    uint32_t n_mems = p->n_devices;
    vkllm_status st;

    vkllm_model *m = calloc(1, sizeof *m);
    if (!m) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    if ((st = gguf_open(path, &m->file))) goto fail;
    if ((st = llama_model_load_desc(m->file, &m->desc))) goto fail;
    if (!gguf_has_data(m->file)) {
        st = vkl_err(VKLLM_ERR_BAD_FILE, "%s holds no tensor data (a header-only or vocabulary-only file)", path);
        goto fail;
    }
    if ((st = tok_vocab_from_gguf(m->file, &m->vocab))) goto fail;
    if ((st = vk_instance_create(p->validation, &m->inst))) goto fail;
    uint32_t n_phys = vk_device_count(m->inst);
    if (n_phys == 0) {
        st = vkl_err(VKLLM_ERR_NO_DEVICE, "no Vulkan device found; install a driver");
        goto fail;
    }
    uint32_t index;
    if (n_devs) {
        index = (uint32_t)devs[0];
        if (n_devs > 1)
            vkl_log(VKLLM_LOG_WARN, "%u devices given; this version runs a model on the first one (%u)", n_devs, index);
    } else {
        vkllm_device_info *all = calloc(n_phys, sizeof *all);
        if (!all) {
            st = vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
            goto fail;
        }
        for (uint32_t i = 0; i < n_phys; i++) all[i] = *vk_device_info(m->inst, i);
        index = vkllm_default_device(all, n_phys);
        free(all);
    }
    vk_device_opts dopts = {.budget = n_mems ? mems[0] : 0};
    m->device_index = index;
    if ((st = vk_device_open(m->inst, index, &dopts, &m->dev))) goto fail;
    progress_relay relay = {p->progress, p->progress_user};
    if ((st = gpu_model_upload(m->dev, m->desc, relay_progress, &relay, &m->gpu))) goto fail;

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
    snprintf(info->device, sizeof info->device, "%s", vk_device_label(m->dev));
    *out = m;
    return VKLLM_OK;
fail:
    vkllm_model_free(m);
    return st;
}

void vkllm_model_get_info(const vkllm_model *m, vkllm_model_info *out) { *out = m->info; }

vkllm_status vkllm_measure_read_bandwidth(const vkllm_model *m, uint64_t bytes, double *gbps) {
    *gbps = 0;
    vk_device *dev = NULL;
    vk_device_opts o = {.enable_timestamps = 1};
    vkllm_status st = vk_device_open(m->inst, m->device_index, &o, &dev);
    if (!st) st = kern_stream_gbps(dev, bytes ? bytes : (64ull << 20), 5, gbps);
    vk_device_close(dev);
    return st;
}

int32_t vkllm_n_vocab(const vkllm_model *m) { return (int32_t)m->desc->hp.n_vocab; }
int32_t vkllm_token_bos(const vkllm_model *m) { return tok_bos(m->vocab); }
int32_t vkllm_token_eos(const vkllm_model *m) { return tok_eos(m->vocab); }
int vkllm_add_bos(const vkllm_model *m) { return tok_add_bos(m->vocab); }

vkllm_status vkllm_tokenize(const vkllm_model *m, const char *text, size_t len, int add_bos, int32_t *out,
                            size_t cap, size_t *n_out) {
    return tok_encode(m->vocab, text, len, add_bos, out, cap, n_out);
}

vkllm_status vkllm_detokenize(const vkllm_model *m, const int32_t *ids, size_t n, char *buf, size_t cap,
                              size_t *len) {
    return tok_decode(m->vocab, ids, n, buf, cap, len);
}

vkllm_status vkllm_vocab_load(const char *path, vkllm_vocab **out) {
    *out = NULL;
    vkllm_vocab *v = calloc(1, sizeof *v);
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

int vkllm_vocab_add_bos(const vkllm_vocab *v) { return tok_add_bos(v->vocab); }

vkllm_status vkllm_vocab_tokenize(const vkllm_vocab *v, const char *text, size_t len, int add_bos, int32_t *out,
                                  size_t cap, size_t *n_out) {
    return tok_encode(v->vocab, text, len, add_bos, out, cap, n_out);
}

/* ---- contexts ---- */

vkllm_status vkllm_context_create(vkllm_model *m, const vkllm_context_params *p, vkllm_context **out) {
    vkllm_context_params defaults;
    if (!p) {
        vkllm_context_params_init(&defaults);
        p = &defaults;
    }
    *out = NULL;
    uint32_t n_ctx = p->n_ctx;
    if (n_ctx == 0) n_ctx = m->desc->hp.n_ctx_train ? m->desc->hp.n_ctx_train : 4096;
    if (p->n_ctx == 0 && n_ctx > 4096) n_ctx = 4096;
    uint32_t n_batch = p->n_batch ? p->n_batch : 512;
    if (n_batch > n_ctx) n_batch = n_ctx;
    vkllm_context *c = calloc(1, sizeof *c);
    if (!c) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    c->model = m;
    c->logits = malloc((size_t)m->desc->hp.n_vocab * sizeof(float));
    vkllm_status st = c->logits ? VKLLM_OK : vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    if (!st) st = gpu_ctx_create(m->gpu, n_ctx, n_batch, p->kv_type == VKLLM_KV_F16, &c->gpu);
    if (st) {
        vkllm_context_free(c);
        return st;
    }
    *out = c;
    return VKLLM_OK;
}

void vkllm_context_free(vkllm_context *c) {
    if (!c) return;
    gpu_ctx_free(c->gpu);
    free(c->logits);
    free(c);
}

void vkllm_context_reset(vkllm_context *c) {
    c->pos = 0;
    c->logits_valid = 0;
}

uint32_t vkllm_context_pos(const vkllm_context *c) { return c->pos; }
uint32_t vkllm_context_size(const vkllm_context *c) { return gpu_ctx_n_ctx(c->gpu); }

/* Evaluates tokens in chunks; the last chunk returns logits or the argmax per `want`. */
static vkllm_status eval_chunks(vkllm_context *c, const int32_t *tokens, uint32_t n, gpu_out want, int32_t *best) {
    if (n == 0) return vkl_err(VKLLM_ERR_INVALID_ARG, "nothing to evaluate");
    uint32_t n_ctx = gpu_ctx_n_ctx(c->gpu);
    if ((uint64_t)c->pos + n > n_ctx)
        return vkl_err(VKLLM_ERR_CONTEXT_FULL, "context full: %u of %u positions used, %u more requested "
                       "(use a larger -c)", c->pos, n_ctx, n);
    uint32_t nb = gpu_ctx_n_batch(c->gpu);
    c->logits_valid = 0;
    for (uint32_t i = 0; i < n; i += nb) {
        uint32_t chunk = n - i < nb ? n - i : nb;
        int last = i + chunk == n;
        vkllm_status st = gpu_forward(c->gpu, tokens + i, chunk, c->pos, last ? want : GPU_OUT_NONE, c->logits, best);
        if (st) return st;
        c->pos += chunk;
    }
    c->logits_valid = want == GPU_OUT_LOGITS;
    return VKLLM_OK;
}

vkllm_status vkllm_eval(vkllm_context *c, const int32_t *tokens, uint32_t n) {
    return eval_chunks(c, tokens, n, GPU_OUT_LOGITS, NULL);
}

const float *vkllm_get_logits(const vkllm_context *c) { return c->logits_valid ? c->logits : NULL; }

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
        char *h = realloc(g->held, cap);
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

vkllm_status vkllm_generate(vkllm_context *c, const vkllm_generate_params *p, vkllm_timings *timings) {
    vkllm_timings tm_local;
    vkllm_timings *tm = timings ? timings : &tm_local;
    memset(tm, 0, sizeof *tm);
    const vkllm_model *m = c->model;
    int32_t *prompt = NULL;
    size_t n_prompt = 0;
    vkllm_status st = VKLLM_OK;
    int add_bos = p->add_bos < 0 ? tok_add_bos(m->vocab) : p->add_bos;
    if (p->prompt_tokens) {
        prompt = malloc((p->n_prompt_tokens ? p->n_prompt_tokens : 1) * sizeof *prompt);
        if (!prompt) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
        memcpy(prompt, p->prompt_tokens, p->n_prompt_tokens * sizeof *prompt);
        n_prompt = p->n_prompt_tokens;
    } else {
        const char *text = p->prompt ? p->prompt : "";
        size_t len = strlen(text), need = 0;
        st = tok_encode(m->vocab, text, len, add_bos, NULL, 0, &need);
        if (st && st != VKLLM_ERR_INVALID_ARG) return st;
        prompt = malloc((need ? need : 1) * sizeof *prompt);
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
    st = eval_chunks(c, prompt, (uint32_t)n_prompt, gpu_argmax ? GPU_OUT_ARGMAX : GPU_OUT_LOGITS, &next);
    tm->n_prompt = (uint32_t)n_prompt;
    tm->prompt_ms = vkl_now_ms() - t0;
    free(prompt);
    if (st) goto done;

    double t1 = vkl_now_ms();
    uint32_t n_ctx = gpu_ctx_n_ctx(c->gpu);
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
        if ((st = eval_chunks(c, &next, 1, gpu_argmax ? GPU_OUT_ARGMAX : GPU_OUT_LOGITS, &next))) break;
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
