/* End to end on the native CPU path: synthetic models of every weight type run all on the CPU
 * (`--device cpu`) and split between lavapipe and the CPU (`--device 0,cpu`, half the layers
 * each, the CPU computing the host layers of -ngl 1, and those layers' prompt chunk run on the
 * card through the CPU stage's twin) give the CPU oracle's greedy tokens,
 * token by token and through generate(), with logits close to the oracle's. The CPU path
 * rounds activations to 8 bits for the quantized types (as llama.cpp's CPU backend does), and
 * so does the oracle here where the CPU computes. The scalar kernels are forced once per block
 * family. The plan says which device computes what. */
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

#define STEPS 24
#define N_PROMPT 9
/* The oracle rounds activations to 8 bits where the CPU path does (cpu_state.act_q8): what
 * is left is summation order, which now and then puts an activation on the other side of a
 * rounding step; when that lands in the KV cache, later steps carry it (about 1e-4 here). */
#define NMSE_FLOAT 1e-6
#define NMSE_QUANT 2e-4

static const int32_t prompt[N_PROMPT] = {1, 72, 101, 300, 5, 17, 200, 33, 9};

typedef struct config {
    const char *name;
    uint32_t n_devices;
    uint32_t devices[2];
    float split[2];
    int32_t gpu_layers;
    const char *simd; /* VKLLM_CPU_SIMD, or NULL */
    const char *env;  /* NAME=VALUE set for the run, or NULL */
    /* The oracle that matches: 8-bit activations from this layer on, and in the prompt too
     * (0: the prompt's layers ran on a card, in float). */
    uint32_t q8_from;
    int q8_prompt;
} config;

typedef struct gen_capture {
    int32_t ids[STEPS + 4];
    int n;
} gen_capture;

static void capture(int32_t token, void *user) {
    gen_capture *g = user;
    if (g->n < STEPS + 4) g->ids[g->n++] = token;
}

static int is_float(const char *type) { return !strcmp(type, "f32") || !strcmp(type, "f16") || !strcmp(type, "bf16"); }

/* Runs cf on the model at path against the oracle's logits ref and tokens ref_tok. */
static void run_config(const char *path, const char *type, const config *cf, const float *ref, const int32_t *ref_tok,
                       uint32_t nv, uint32_t n_layer) {
    if (cf->simd) setenv("VKLLM_CPU_SIMD", cf->simd, 1);
    char env[64] = "";
    if (cf->env) {
        snprintf(env, sizeof env, "%s", cf->env);
        char *eq = strchr(env, '=');
        *eq = 0;
        setenv(env, eq + 1, 1);
    }
    vkllm_model_params mp;
    th_model_params_init(&mp);
    mp.validation = 1;
    mp.n_devices = cf->n_devices;
    mp.n_threads = 2;
    for (uint32_t d = 0; d < cf->n_devices; d++) mp.devices[d] = cf->devices[d];
    if (cf->split[0] > 0) {
        mp.n_tensor_split = cf->n_devices;
        for (uint32_t d = 0; d < cf->n_devices; d++) mp.tensor_split[d] = cf->split[d];
    }
    mp.gpu_layers = cf->gpu_layers;
    mp.ctx.n_ctx = 256;
    vkllm_model *m = NULL;
    vkllm_context *ctx = NULL;
    CHECK_OK(vkllm_model_load(path, &mp, &m));
    if (!m) goto out;
    /* The plan: the CPU device (the last) computes layers, and in a split so does device 0. */
    vkllm_plan_summary sum;
    vkllm_plan_get_summary(vkllm_model_get_plan(m), &sum);
    vkllm_plan_device cpu;
    CHECK_OK(vkllm_plan_get_device(vkllm_model_get_plan(m), cf->n_devices - 1, &cpu));
    CHECK_MSG(cpu.device_index == VKLLM_DEVICE_CPU_INDEX && cpu.n_layers > 0 && cpu.used_bytes == 0,
              "%s: the CPU device computes %u layers and holds %llu device bytes", cf->name, cpu.n_layers,
              (unsigned long long)cpu.used_bytes);
    if (cf->n_devices == 2) CHECK_MSG(cpu.n_layers < n_layer, "%s: the CPU computes all %u layers", cf->name, n_layer);
    CHECK_MSG(sum.cpu_stream_min_batch == (cf->env && strstr(cf->env, "CPU_STREAM") ? 4u : 0u),
              "%s: CPU stages stream chunks of %u tokens", cf->name, sum.cpu_stream_min_batch);
    vkllm_context_params cp;
    vkllm_context_params_init(&cp);
    cp.n_ctx = 256;
    CHECK_OK(vkllm_context_create(m, &cp, &ctx));
    if (!ctx) goto out;
    CHECK_OK(vkllm_eval(ctx, prompt, N_PROMPT));
    double worst = 0, limit = is_float(type) ? NMSE_FLOAT : NMSE_QUANT;
    int first_bad = -1, first_tie = STEPS + 1, ties = 0;
    for (int s = 0; s <= STEPS; s++) {
        const float *lg = vkllm_get_logits(ctx);
        CHECK(lg != NULL);
        if (!lg) break;
        const float *r = ref + (size_t)s * nv;
        double e = th_nmse(r, lg, nv), ms = 0;
        if (e > worst) worst = e;
        for (uint32_t i = 0; i < nv; i++) ms += (double)r[i] * r[i] / nv;
        /* A step whose two best logits are closer than three times the error the limit allows
         * may go either way; any other must give the oracle's token. */
        size_t top;
        int tie = cpu_top2_gap(r, nv, &top) <= 3.0 * sqrt(limit * ms);
        if (tie) ties++;
        if (tie && first_tie > s) first_tie = s;
        if (!tie && (int32_t)ref_argmax(lg, nv) != ref_tok[s] && first_bad < 0) first_bad = s;
        if (s < STEPS) CHECK_OK(vkllm_eval(ctx, &ref_tok[s], 1));
    }
    CHECK_MSG(first_bad < 0, "%s %s: greedy token differs from the oracle at step %d", cf->name, type, first_bad);
    CHECK_MSG(worst <= limit, "%s %s: logits nmse %.3g > %.1g", cf->name, type, worst, limit);

    /* The prompt in chunks of 4: between a card and the CPU, chunk k+1 runs on one while chunk k
     * runs on the other (the CPU stage on its executor thread); the same logits. */
    vkllm_context *small = NULL;
    cp.n_batch = 4;
    CHECK_OK(vkllm_context_create(m, &cp, &small));
    if (small) {
        CHECK_OK(vkllm_eval(small, prompt, N_PROMPT));
        const float *lg = vkllm_get_logits(small);
        double e = lg ? th_nmse(ref, lg, nv) : INFINITY;
        CHECK_MSG(e <= limit, "%s %s: prompt in chunks of 4: logits nmse %.3g", cf->name, type, e);
        vkllm_context_free(small);
    }

    vkllm_context_reset(ctx);
    vkllm_generate_params gp;
    vkllm_generate_params_init(&gp);
    gen_capture cap = {.n = 0};
    gp.prompt_tokens = prompt;
    gp.n_prompt_tokens = N_PROMPT;
    gp.n_predict = STEPS;
    gp.sampling.temp = 0;
    gp.on_token = capture;
    gp.user = &cap;
    vkllm_timings tm;
    CHECK_OK(vkllm_generate(ctx, &gp, &tm));
    /* Free-running, the tokens agree up to the first near tie. */
    int same = 0, want = first_tie < cap.n ? first_tie : cap.n;
    while (same < want && cap.ids[same] == ref_tok[same]) same++;
    CHECK_MSG(same == want && (cap.n == STEPS || tm.stop == VKLLM_STOP_EOS), "%s %s: generate() matched %d of %d tokens",
              cf->name, type, same, want);
    printf("%-34s %-7s greedy %d/%d equal (%d near ties), worst logits nmse %.2e\n", cf->name, type,
           first_bad < 0 ? STEPS + 1 : first_bad, STEPS + 1, ties, worst);
out:
    vkllm_context_free(ctx);
    vkllm_model_free(m);
    if (cf->simd) unsetenv("VKLLM_CPU_SIMD");
    if (cf->env) unsetenv(env);
}

static void run_type(const char *type, int scalar) {
    char path[1024], name[128];
    snprintf(name, sizeof name, "e2e_cpu_%s.gguf", type);
    th_tmp_path(name, path, sizeof path);
    synth_opts o;
    synth_default_opts(&o);
    o.dim = 256, o.n_layer = 2, o.n_ff = 512, o.n_head = 4, o.n_head_kv = 2, o.n_vocab = 512, o.n_ctx = 256;
    o.type = type;
    o.seed = 7;
    CHECK_OK(synth_write_file(&o, path));

    gguf_file *f = NULL;
    llama_model_desc *desc = NULL;
    float *ref = NULL;
    CHECK_OK(gguf_open(path, &f));
    if (f) CHECK_OK(llama_model_load_desc(f, &desc));
    if (!desc) goto out;
    uint32_t nv = desc->hp.n_vocab;
    const config configs[] = {
        {"cpu", 1, {VKLLM_DEVICE_CPU_INDEX}, {0}, -1, NULL, NULL, 0, 1},
        {"cpu, scalar kernels", 1, {VKLLM_DEVICE_CPU_INDEX}, {0}, -1, "scalar", NULL, 0, 1},
        {"0,cpu split 1,1", 2, {0, VKLLM_DEVICE_CPU_INDEX}, {1, 1}, -1, NULL, NULL, 1, 1},
        {"0,cpu -ngl 1 (host layer on cpu)", 2, {0, VKLLM_DEVICE_CPU_INDEX}, {0}, 1, NULL, NULL, 1, 1},
        /* The prompt's chunk of 9 runs the CPU's layer on the card (its twin), decode on the
         * CPU, both with the one KV cache in the card's host-visible memory. */
        {"0,cpu -ngl 1, prompt on the card", 2, {0, VKLLM_DEVICE_CPU_INDEX}, {0}, 1, NULL,
         "VKLLM_CPU_STREAM_MIN_BATCH=4", 1, 0},
    };
    /* One oracle per kind of run: which layers see 8-bit activations, and when. */
    static const uint32_t kinds[3][2] = {{0, 1}, {1, 1}, {1, 0}};
    for (int k = 0; k < 3; k++) {
        cpu_state *cs = NULL;
        CHECK_OK(cpu_state_create(desc, 256, 1, &cs));
        if (!cs) break;
        cs->act_q8_from = kinds[k][0];
        cs->act_q8_output = 1;
        ref = malloc((size_t)(STEPS + 1) * nv * sizeof(float));
        int32_t ref_tok[STEPS + 1];
        uint32_t pos = 0;
        cs->act_q8 = (int)kinds[k][1];
        for (int i = 0; i < N_PROMPT; i++) CHECK_OK(cpu_forward(cs, desc, prompt[i], pos++, ref));
        cs->act_q8 = 1;
        for (int s = 0; s <= STEPS; s++) {
            ref_tok[s] = (int32_t)ref_argmax(ref + (size_t)s * nv, nv);
            if (s < STEPS) CHECK_OK(cpu_forward(cs, desc, ref_tok[s], pos++, ref + (size_t)(s + 1) * nv));
        }
        cpu_state_free(cs);
        for (size_t c = 0; c < sizeof configs / sizeof configs[0]; c++) {
            const config *cf = &configs[c];
            if (cf->q8_from != kinds[k][0] || cf->q8_prompt != (int)kinds[k][1] || (cf->simd && !scalar)) continue;
            run_config(path, type, cf, ref, ref_tok, nv, o.n_layer);
        }
        free(ref);
        ref = NULL;
    }
out:
    free(ref);
    llama_model_free_desc(desc);
    gguf_close(f);
    remove(path);
}

int main(void) {
    vkllm_set_log_callback(th_log, NULL);
    static const char *types[] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1",
                                  "q4_K", "q5_K", "q6_K", "q4_K_M"};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        int scalar = !strcmp(types[t], "f16") || !strcmp(types[t], "q4_0") || !strcmp(types[t], "q4_K_M");
        if (th_sanitized() && !scalar) continue; /* one type per block family there */
        run_type(types[t], scalar);
    }
    CHECK_MSG(th_validation_messages() == 0, "the validation layer reported %d message(s)", th_validation_messages());
    return th_finish();
}
