/* End to end on synthetic models of several shapes and every weight type: the GPU forward
 * pass (prefill in one chunk, in small chunks, and token by token) against the CPU reference
 * forward pass. Greedy tokens must be equal for 32+ steps and logits close. Also the
 * context-full and bad-token statuses through the public API. */
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

/* Logits agree to rounding: fp32 accumulation on the GPU vs the reference's ordering, and
 * the same f16 rounding of K/V on both sides. */
#define LOGIT_NMSE 1e-6
#define STEPS 32
#define N_PROMPT 9

typedef struct shape {
    const char *name;
    uint32_t dim, n_layer, n_ff, n_head, n_head_kv, n_vocab;
    int tied;
} shape;

static const int32_t prompt[N_PROMPT] = {1, 72, 101, 300, 5, 17, 200, 33, 9};

typedef struct gen_capture {
    int32_t ids[STEPS + 4];
    int n;
} gen_capture;

static void capture(int32_t token, void *user) {
    gen_capture *g = user;
    if (g->n < STEPS + 4) g->ids[g->n++] = token;
}

static void run_model(const shape *sh, const char *type) {
    char path[1024], name[128];
    snprintf(name, sizeof name, "e2e_%s_%s.gguf", sh->name, type);
    th_tmp_path(name, path, sizeof path);
    synth_opts o;
    synth_default_opts(&o);
    o.dim = sh->dim;
    o.n_layer = sh->n_layer;
    o.n_ff = sh->n_ff;
    o.n_head = sh->n_head;
    o.n_head_kv = sh->n_head_kv;
    o.n_vocab = sh->n_vocab;
    o.n_ctx = 256;
    o.tied = sh->tied;
    o.type = type;
    o.seed = 7;
    CHECK_OK(synth_write_file(&o, path));

    /* CPU reference: greedy continuation of the prompt, logits at every step. */
    gguf_file *f = NULL;
    llama_model_desc *desc = NULL;
    cpu_state *cs = NULL;
    CHECK_OK(gguf_open(path, &f));
    if (f) CHECK_OK(llama_model_load_desc(f, &desc));
    if (desc) CHECK_OK(cpu_state_create(desc, 256, 1, &cs));
    if (!cs) goto out;
    uint32_t nv = desc->hp.n_vocab;
    float *ref = malloc((size_t)(STEPS + 1) * nv * sizeof(float));
    int32_t ref_tok[STEPS + 1];
    uint32_t pos = 0;
    for (int i = 0; i < N_PROMPT; i++) CHECK_OK(cpu_forward(cs, desc, prompt[i], pos++, ref));
    for (int s = 0; s <= STEPS; s++) {
        ref_tok[s] = (int32_t)ref_argmax(ref + (size_t)s * nv, nv);
        if (s < STEPS) CHECK_OK(cpu_forward(cs, desc, ref_tok[s], pos++, ref + (size_t)(s + 1) * nv));
    }

    /* GPU: the prompt as one matrix-product chunk, then token by token. */
    vkllm_model *m = NULL;
    vkllm_context *ctx = NULL;
    vkllm_model_params mp;
    th_model_params_init(&mp);
    mp.validation = 1;
    CHECK_OK(vkllm_model_load(path, &mp, &m));
    vkllm_context_params cp;
    vkllm_context_params_init(&cp);
    cp.n_ctx = 256;
    if (m) CHECK_OK(vkllm_context_create(m, &cp, &ctx));
    if (!ctx) goto gpu_out;
    CHECK_OK(vkllm_eval(ctx, prompt, N_PROMPT));
    int first_bad = -1;
    double worst = 0;
    for (int s = 0; s <= STEPS; s++) {
        const float *lg = vkllm_get_logits(ctx);
        CHECK(lg != NULL);
        if (!lg) break;
        double e = th_nmse(ref + (size_t)s * nv, lg, nv);
        if (e > worst) worst = e;
        int32_t tok = (int32_t)ref_argmax(lg, nv);
        if (tok != ref_tok[s] && first_bad < 0) first_bad = s;
        if (s < STEPS) CHECK_OK(vkllm_eval(ctx, &ref_tok[s], 1));
    }
    CHECK_MSG(first_bad < 0, "%s %s: GPU greedy token differs from the CPU at step %d", sh->name, type, first_bad);
    CHECK_MSG(worst <= LOGIT_NMSE, "%s %s: logits nmse %.3g > %.1g", sh->name, type, worst, LOGIT_NMSE);
    printf("%-10s %-7s greedy %d/%d steps equal, worst logits nmse %.2e\n", sh->name, type,
           first_bad < 0 ? STEPS + 1 : first_bad, STEPS + 1, worst);

    /* The prompt in chunks of 4 gives the same logits as one chunk. */
    vkllm_context *small = NULL;
    cp.n_batch = 4;
    CHECK_OK(vkllm_context_create(m, &cp, &small));
    if (small) {
        CHECK_OK(vkllm_eval(small, prompt, N_PROMPT));
        const float *lg = vkllm_get_logits(small);
        double e = lg ? th_nmse(ref, lg, nv) : INFINITY;
        CHECK_MSG(e <= LOGIT_NMSE, "%s %s: chunked prefill nmse %.3g", sh->name, type, e);
        vkllm_context_free(small);
    }

    /* generate() with greedy sampling yields the CPU's tokens. */
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
    int same = 0;
    while (same < cap.n && cap.ids[same] == ref_tok[same]) same++;
    /* generate stops early only at EOS/BOS, which the reference would show too. */
    CHECK_MSG(same == cap.n && (cap.n == STEPS || tm.stop == VKLLM_STOP_EOS),
              "%s %s: generate() matched %d of %d tokens", sh->name, type, same, cap.n);
gpu_out:
    vkllm_context_free(ctx);
    vkllm_model_free(m);
    free(ref);
out:
    cpu_state_free(cs);
    llama_model_free_desc(desc);
    gguf_close(f);
    remove(path);
}

static void test_statuses(void) {
    char path[1024];
    th_tmp_path("e2e_status.gguf", path, sizeof path);
    synth_opts o;
    synth_default_opts(&o);
    o.dim = 64, o.n_layer = 1, o.n_ff = 128, o.n_head = 2, o.n_head_kv = 2, o.n_vocab = 300, o.n_ctx = 64;
    o.type = "f32";
    CHECK_OK(synth_write_file(&o, path));
    vkllm_model *m = NULL;
    vkllm_model_params mp;
    th_model_params_init(&mp);
    CHECK_OK(vkllm_model_load(path, &mp, &m));
    if (!m) return;
    vkllm_context_params cp;
    vkllm_context_params_init(&cp);
    cp.n_ctx = 16;
    vkllm_context *ctx = NULL;
    CHECK_OK(vkllm_context_create(m, &cp, &ctx));
    int32_t toks[20] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
    CHECK_OK(vkllm_eval(ctx, toks, 10));
    CHECK(vkllm_eval(ctx, toks, 7) == VKLLM_ERR_CONTEXT_FULL);
    CHECK(strstr(vkllm_last_error(), "context") != NULL);
    CHECK(vkllm_context_pos(ctx) == 10);
    CHECK_OK(vkllm_eval(ctx, toks, 6));
    CHECK(vkllm_eval(ctx, toks, 1) == VKLLM_ERR_CONTEXT_FULL);
    int32_t bad = 300;
    vkllm_context_reset(ctx);
    CHECK(vkllm_eval(ctx, &bad, 1) == VKLLM_ERR_INVALID_ARG);

    /* A prompt longer than the context is refused; generation that fills it just stops. */
    vkllm_generate_params gp;
    vkllm_generate_params_init(&gp);
    gp.prompt_tokens = toks;
    gp.n_prompt_tokens = 20;
    gp.sampling.temp = 0;
    vkllm_timings tm;
    vkllm_context_reset(ctx);
    CHECK(vkllm_generate(ctx, &gp, &tm) == VKLLM_ERR_CONTEXT_FULL);
    vkllm_context_reset(ctx);
    gp.n_prompt_tokens = 4;
    gp.n_predict = 0; /* evaluate the prompt, generate nothing */
    CHECK_OK(vkllm_generate(ctx, &gp, &tm));
    CHECK(tm.n_gen == 0 && tm.n_prompt == 4 && tm.stop == VKLLM_STOP_N_PREDICT);
    vkllm_context_reset(ctx);
    gp.n_predict = -1;
    CHECK_OK(vkllm_generate(ctx, &gp, &tm));
    CHECK(tm.stop == VKLLM_STOP_CONTEXT || tm.stop == VKLLM_STOP_EOS);
    vkllm_context_free(ctx);
    vkllm_model_free(m);

    /* Missing file and a non-model file give statuses with messages. */
    CHECK(vkllm_model_load("/nonexistent/model.gguf", NULL, &m) == VKLLM_ERR_IO && m == NULL);
    char vocab[1024];
    if (th_data_path("vocab-llama-spm/ggml-vocab-llama-spm.gguf", vocab, sizeof vocab)) {
        vkllm_status st = vkllm_model_load(vocab, NULL, &m);
        CHECK_MSG(st == VKLLM_ERR_BAD_FILE || st == VKLLM_ERR_UNSUPPORTED, "vocab-only file gave %d", st);
        CHECK(m == NULL);
    }
    remove(path);
}

int main(void) {
    vkllm_set_log_callback(th_log, NULL);
    static const shape shapes[] = {
        /* name      dim  layers ffn  heads kv  vocab  tied */
        {"gqa2",     256, 2,     512, 4,    2,  512,   0},
        {"hd128mqa", 512, 1,     768, 4,    1,  400,   0},
        {"gqa8",     256, 1,     256, 8,    1,  320,   1},
    };
    static const char *types[] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1",
                                  "q4_K", "q5_K", "q6_K", "q4_K_M"};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) run_model(&shapes[0], types[t]);
    run_model(&shapes[1], "q4_0");
    run_model(&shapes[1], "q6_K");
    run_model(&shapes[2], "f16");
    run_model(&shapes[2], "q8_0");
    test_statuses();
    CHECK_MSG(th_validation_messages() == 0, "the validation layer reported %d message(s)", th_validation_messages());
    return th_finish();
}
