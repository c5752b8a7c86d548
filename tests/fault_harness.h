/* Shared by the failure tests (test_faults*.c, test_limits.c): a tiny synthetic model with its
 * greedy tokens from the CPU reference, a greedy generate, leak checks on the live-object
 * counters of vk/fault.h, and the report of a walk over injected failures. Header-only
 * (static inline) so that each test takes what it uses. */
#ifndef VKLLM_TEST_FAULT_HARNESS_H
#define VKLLM_TEST_FAULT_HARNESS_H

#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "runtime/api/api_internal.h"
#include "testkit/cpu_forward.h"
#include "testkit/cpu_ref.h"
#include "runtime/format/gguf.h"
#include "runtime/format/model.h"
#include "testkit/synth.h"
#include "vk/fault.h"
#include "base/util.h"
#include "vkllm.h"

#define FH_GEN 4    /* tokens generated */
#define FH_CTX 32   /* context of the tests (and of the load's planned context) */
#define FH_STATUS_COUNT (VKLLM_ERR_CANCELLED + 1)

static const int32_t fh_prompt[] = {1, 72, 101, 30, 5};
#define FH_PROMPT ((uint32_t)(sizeof fh_prompt / sizeof fh_prompt[0]))

typedef struct fh_model {
    const char *type;
    char path[1024];
    int32_t ref[FH_GEN]; /* greedy tokens after the prompt, from the CPU reference */
} fh_model;

static int fh_validation_logs, fh_cache_warnings;

/* Errors are expected by the hundred in these tests: only the validation layer's are news. */
static inline void fh_on_log(vkllm_log_level level, const char *msg, void *user) {
    (void)user;
    if (level <= VKLLM_LOG_WARN && strncmp(msg, "validation:", 11) == 0) {
        fh_validation_logs++;
        fprintf(stderr, "vkllm: %s\n", msg);
    }
    if (level == VKLLM_LOG_WARN && strstr(msg, "cache")) fh_cache_warnings++;
}

/* dim 64, 2 layers, f32 or q4_0 weights, and the oracle's tokens for fh_prompt. `test` names
 * the file, so that tests running at the same time do not share it. */
static inline void fh_make_model(fh_model *mf, const char *test, const char *type) {
    char name[96];
    snprintf(name, sizeof name, "%s_%s.gguf", test, type);
    th_tmp_path(name, mf->path, sizeof mf->path);
    mf->type = type;
    synth_opts o;
    synth_default_opts(&o);
    o.dim = 64, o.n_layer = 2, o.n_ff = 128, o.n_head = 2, o.n_head_kv = 2, o.n_vocab = 300, o.n_ctx = 64;
    o.type = type;
    o.seed = 11;
    CHECK_OK(synth_write_file(&o, mf->path));
    gguf_file *f = NULL;
    llama_model_desc *desc = NULL;
    cpu_state *cs = NULL;
    CHECK_OK(gguf_open(mf->path, &f));
    if (f) CHECK_OK(llama_model_load_desc(f, &desc));
    if (desc) CHECK_OK(cpu_state_create(desc, FH_CTX, 1, &cs)); /* f16 KV, as the GPU default */
    if (cs) {
        float *logits = malloc(desc->hp.n_vocab * sizeof *logits);
        uint32_t pos = 0;
        for (uint32_t i = 0; i < FH_PROMPT; i++) CHECK_OK(cpu_forward(cs, desc, fh_prompt[i], pos++, logits));
        for (int s = 0; s < FH_GEN; s++) {
            mf->ref[s] = (int32_t)ref_argmax(logits, desc->hp.n_vocab);
            if (s + 1 < FH_GEN) CHECK_OK(cpu_forward(cs, desc, mf->ref[s], pos++, logits));
        }
        free(logits);
    }
    cpu_state_free(cs);
    llama_model_free_desc(desc);
    gguf_close(f);
}

typedef struct fh_gen {
    int32_t ids[64];
    int n;
} fh_gen;

static inline void fh_on_token(int32_t token, void *user) {
    fh_gen *g = user;
    if (g->n < 64) g->ids[g->n++] = token;
}

/* Greedy generate of fh_prompt from position 0. */
static inline vkllm_status fh_generate(vkllm_context *ctx, int32_t n_predict, fh_gen *g, vkllm_timings *tm) {
    vkllm_generate_params gp;
    vkllm_generate_params_init(&gp);
    gp.prompt_tokens = fh_prompt;
    gp.n_prompt_tokens = FH_PROMPT;
    gp.n_predict = n_predict;
    gp.sampling.temp = 0;
    gp.on_token = fh_on_token;
    gp.user = g;
    g->n = 0;
    vkllm_context_reset(ctx);
    vkllm_timings local;
    return vkllm_generate(ctx, &gp, tm ? tm : &local);
}

static inline int fh_same_tokens(const fh_gen *g, const fh_model *mf) {
    return g->n == FH_GEN && !memcmp(g->ids, mf->ref, sizeof mf->ref);
}

static inline void fh_context_params(vkllm_context_params *cp) {
    vkllm_context_params_init(cp);
    cp->n_ctx = FH_CTX;
}

static inline vkllm_status fh_load(const fh_model *mf, vkllm_model **m) {
    vkllm_model_params mp;
    th_model_params_init(&mp);
    fh_context_params(&mp.ctx); /* the planned context is the one the tests create */
    return vkllm_model_load(mf->path, &mp, m);
}

/* A fresh load, a context and a generate give the oracle's tokens. */
static inline void fh_check_works(const fh_model *mf, const char *when) {
    vkllm_model *m = NULL;
    vkllm_context *ctx = NULL;
    vkllm_context_params cp;
    fh_context_params(&cp);
    fh_gen g = {{0}, 0};
    CHECK_OK(fh_load(mf, &m));
    if (m) CHECK_OK(vkllm_context_create(m, &cp, &ctx));
    if (ctx) CHECK_OK(fh_generate(ctx, FH_GEN, &g, NULL));
    CHECK_MSG(fh_same_tokens(&g, mf), "%s %s: a fresh model generates other tokens than the CPU reference", mf->type,
              when);
    vkllm_context_free(ctx);
    vkllm_model_free(m);
}

/* Nothing of the vk layer is left alive in the process. */
static inline int fh_live_zero(const char *what, uint64_t n) {
    vk_live_stats l;
    vk_live_get(&l);
    int ok = !l.instances && !l.devices && !l.blocks && !l.memory_objects && !l.memory_bytes && !l.batches;
    CHECK_MSG(ok, "%s, case %llu: left alive: %lld instances, %lld devices, %lld blocks, %lld memory objects "
              "(%lld bytes), %lld batches", what, (unsigned long long)n, (long long)l.instances,
              (long long)l.devices, (long long)l.blocks, (long long)l.memory_objects, (long long)l.memory_bytes,
              (long long)l.batches);
    return ok;
}

static inline int fh_same_stats(const vk_mem_stats *a, const vk_mem_stats *b) {
    return a->device_bytes == b->device_bytes && a->host_bytes == b->host_bytes &&
           a->used_bytes == b->used_bytes && a->blocks == b->blocks && a->imported_bytes == b->imported_bytes;
}

/* What one walk saw. */
typedef struct fh_walk {
    double t0;
    uint64_t cases, recovered, not_injected;
    uint64_t by_status[FH_STATUS_COUNT];
} fh_walk;

static inline void fh_report(const char *phase, const char *type, uint32_t kind, VkResult r, const fh_walk *w,
                             const char *after) {
    printf("%-9s %-5s %-24s %-27s %4llu cases:", phase, type, vk_fault_kind_name((vk_fault_kind)kind),
           r == VK_SUCCESS ? "(default)" : vk_result_string(r), (unsigned long long)w->cases);
    for (int s = 0; s < FH_STATUS_COUNT; s++)
        if (w->by_status[s])
            printf(" %s %llu,", vkllm_status_string((vkllm_status)s), (unsigned long long)w->by_status[s]);
    if (w->recovered) printf(" recovered %llu,", (unsigned long long)w->recovered);
    printf(" after each: %s (%.1f s)\n", after, (vkl_now_ms() - w->t0) / 1e3);
    fflush(stdout);
}

/* The status a failure of this kind must surface as. */
static inline vkllm_status fh_expected(uint32_t kind, VkResult r) {
    if (kind == VK_FAULT_HOST_ALLOC) return VKLLM_ERR_OUT_OF_MEMORY;
    if (r == VK_SUCCESS && kind == VK_FAULT_PIPELINE) r = VK_ERROR_OUT_OF_HOST_MEMORY;
    if (r == VK_SUCCESS)
        r = kind == VK_FAULT_SUBMIT || kind == VK_FAULT_WAIT ? VK_ERROR_DEVICE_LOST : VK_ERROR_OUT_OF_DEVICE_MEMORY;
    return r == VK_ERROR_DEVICE_LOST ? VKLLM_ERR_DEVICE_LOST : VKLLM_ERR_OUT_OF_MEMORY;
}

/* A failed call's status and message, taken before teardown can say anything else. */
static inline void fh_note_failure(fh_walk *w, vkllm_status st, vkllm_status want, const char *what, uint64_t n) {
    if (st < FH_STATUS_COUNT) w->by_status[st]++;
    const char *msg = vkllm_last_error();
    CHECK_MSG(msg && *msg, "%s, case %llu: status %s without a message", what, (unsigned long long)n,
              vkllm_status_string(st));
    CHECK_MSG(st == want, "%s, case %llu: %s (%s) where %s was due", what, (unsigned long long)n,
              vkllm_status_string(st), msg, vkllm_status_string(want));
}

#endif
