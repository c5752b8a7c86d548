/* The fused single-token layer (shaders/layer.comp, runtime/kern/kern_layer.h) against the CPU
 * reference forward pass, for every weight type: a small synthetic model decoded token by
 * token with the layer fused in each product layout (one row per invocation, one subgroup per
 * row) and with the separate kernels (VKLLM_FUSED_LAYER=0). Greedy tokens must equal the
 * reference's and logits agree to LOGIT_NMSE; the profile shows which path ran. One layout
 * runs recorded steps (replayed, the position read from a buffer), the other records every
 * step (profiling), with f32 and f16 caches. Q4_K_M mixes types within some layers: those run
 * the separate kernels beside fused ones in the same step. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "testkit/cpu_forward.h"
#include "testkit/cpu_ref.h"
#include "runtime/format/gguf.h"
#include "runtime/format/model.h"
#include "testkit/synth.h"
#include "vkllm.h"

#define LOGIT_NMSE 1e-6
#define STEPS 20
#define N_PROMPT 7
#define N_LAYER 2

static const int32_t prompt[N_PROMPT] = {1, 72, 101, 300, 5, 17, 200};

typedef struct mode {
    const char *env;   /* VKLLM_FUSED_LAYER */
    int profile;       /* profile (so every step is recorded) and check the ops that ran */
    vkllm_kv_type kv;
} mode;

/* Layer calls in the context's profile: -1 without one. */
static long layer_calls(const vkllm_context *ctx) {
    vkllm_profile_entry *e = NULL;
    uint32_t n = 0;
    if (vkllm_context_get_profile(ctx, &e, &n) != VKLLM_OK) return -1;
    long calls = 0;
    for (uint32_t i = 0; i < n; i++)
        if (!strcmp(e[i].op, "layer")) calls += (long)e[i].calls;
    vkllm_free(e);
    return calls;
}

/* uniform: layers whose seven matrices share one type (only those are fused; Q4_K_M mixes). */
static void run_gpu(const char *path, const char *type, const mode *md, const float *ref, const int32_t *ref_tok,
                    uint32_t nv, long uniform) {
    setenv("VKLLM_FUSED_LAYER", md->env, 1);
    vkllm_model *m = NULL;
    vkllm_context *ctx = NULL;
    vkllm_model_params mp;
    th_model_params_init(&mp);
    mp.validation = 1;
    mp.profile = md->profile;
    CHECK_OK(vkllm_model_load(path, &mp, &m));
    vkllm_context_params cp;
    vkllm_context_params_init(&cp);
    cp.n_ctx = 64;
    cp.kv_type = md->kv;
    if (m) CHECK_OK(vkllm_context_create(m, &cp, &ctx));
    unsetenv("VKLLM_FUSED_LAYER");
    if (!ctx) {
        vkllm_model_free(m);
        return;
    }
    /* The prompt token by token, so that every position runs the single-token step. */
    int first_bad = -1;
    double worst = 0;
    for (int i = 0; i < N_PROMPT; i++) CHECK_OK(vkllm_eval(ctx, &prompt[i], 1));
    for (int s = 0; s <= STEPS; s++) {
        const float *lg = vkllm_get_logits(ctx);
        CHECK(lg != NULL);
        if (!lg) break;
        double e = th_nmse(ref + (size_t)s * nv, lg, nv);
        if (e > worst) worst = e;
        if ((int32_t)ref_argmax(lg, nv) != ref_tok[s] && first_bad < 0) first_bad = s;
        if (s < STEPS) CHECK_OK(vkllm_eval(ctx, &ref_tok[s], 1));
    }
    CHECK_MSG(first_bad < 0, "%s, VKLLM_FUSED_LAYER=%s: greedy token differs from the CPU at step %d", type, md->env,
              first_bad);
    CHECK_MSG(worst <= LOGIT_NMSE, "%s, VKLLM_FUSED_LAYER=%s: logits nmse %.3g > %.1g", type, md->env, worst,
              LOGIT_NMSE);
    if (md->profile) {
        long calls = layer_calls(ctx), want = strcmp(md->env, "0") ? uniform * (N_PROMPT + STEPS) : 0;
        CHECK_MSG(calls == want, "%s, VKLLM_FUSED_LAYER=%s: %ld fused layer calls, expected %ld", type, md->env, calls,
                  want);
    }
    printf("%-7s VKLLM_FUSED_LAYER=%-9s kv %s %s: greedy %d/%d steps equal, worst logits nmse %.2e\n", type, md->env,
           md->kv == VKLLM_KV_F32 ? "f32" : "f16", md->profile ? "recorded" : "replayed",
           first_bad < 0 ? STEPS + 1 : first_bad, STEPS + 1, worst);
    vkllm_context_free(ctx);
    vkllm_model_free(m);
}

static void run_type(const char *type) {
    char path[1024], name[128];
    snprintf(name, sizeof name, "layer_fused_%s.gguf", type);
    th_tmp_path(name, path, sizeof path);
    synth_opts o;
    synth_default_opts(&o);
    o.dim = 256; /* the K-quants' block */
    o.n_layer = N_LAYER;
    o.n_ff = 512;
    o.n_head = 8;
    o.n_head_kv = 2;
    o.n_vocab = 320;
    o.n_ctx = 64;
    o.type = type;
    o.seed = 11;
    CHECK_OK(synth_write_file(&o, path));

    gguf_file *f = NULL;
    llama_model_desc *desc = NULL;
    cpu_state *cs[2] = {NULL, NULL};
    CHECK_OK(gguf_open(path, &f));
    if (f) CHECK_OK(llama_model_load_desc(f, &desc));
    /* The reference with each cache type: K and V rounded to f16 as the GPU stores them, or not. */
    for (int kv = 0; desc && kv < 2; kv++) CHECK_OK(cpu_state_create(desc, 64, kv == 0, &cs[kv]));
    if (!cs[0] || !cs[1]) goto out;
    uint32_t nv = desc->hp.n_vocab;
    float *ref[2];
    int32_t ref_tok[2][STEPS + 1];
    for (int kv = 0; kv < 2; kv++) {
        ref[kv] = malloc((size_t)(STEPS + 1) * nv * sizeof(float));
        uint32_t pos = 0;
        for (int i = 0; i < N_PROMPT; i++) CHECK_OK(cpu_forward(cs[kv], desc, prompt[i], pos++, ref[kv]));
        for (int s = 0; s <= STEPS; s++) {
            ref_tok[kv][s] = (int32_t)ref_argmax(ref[kv] + (size_t)s * nv, nv);
            if (s < STEPS) CHECK_OK(cpu_forward(cs[kv], desc, ref_tok[kv][s], pos++, ref[kv] + (size_t)(s + 1) * nv));
        }
    }
    long uniform = 0;
    for (uint32_t l = 0; l < desc->hp.n_layer; l++) {
        const llama_layer *ll = &desc->layers[l];
        const gguf_tensor *m[6] = {ll->wk, ll->wv, ll->wo, ll->ffn_gate, ll->ffn_up, ll->ffn_down};
        int same = 1;
        for (int j = 0; j < 6; j++) same &= m[j]->type == ll->wq->type;
        uniform += same;
    }
    CHECK_MSG(strcmp(type, "q4_K_M") || (uniform > 0 && uniform < N_LAYER),
              "q4_K_M: %ld of %d layers of one type; the test means to mix fused and separate layers", uniform, N_LAYER);
    static const mode modes[] = {
        {"rows", 0, VKLLM_KV_F16},
        {"subgroups", 1, VKLLM_KV_F16},
        {"rows", 1, VKLLM_KV_F32},
        {"0", 1, VKLLM_KV_F16},
    };
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        int kv = modes[i].kv == VKLLM_KV_F16 ? 0 : 1;
        run_gpu(path, type, &modes[i], ref[kv], ref_tok[kv], nv, uniform);
    }
    free(ref[0]);
    free(ref[1]);
out:
    cpu_state_free(cs[0]);
    cpu_state_free(cs[1]);
    llama_model_free_desc(desc);
    gguf_close(f);
    remove(path);
}

int main(void) {
    vkllm_set_log_callback(th_log, NULL);
    static const char *types[] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1",
                                  "q4_K", "q5_K", "q6_K", "q4_K_M"};
    /* A sanitizer build checks memory and threads, not numbers: one type per block family
     * (float, legacy, K-quant with mixed layers) is enough there. */
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        char key[16];
        snprintf(key, sizeof key, " %s ", types[t]);
        if (!th_sanitized() || strstr(" f16 q4_0 q4_K_M ", key)) run_type(types[t]);
    }
    CHECK_MSG(th_validation_messages() == 0, "the validation layer reported %d message(s)", th_validation_messages());
    return th_finish();
}
