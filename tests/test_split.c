/* Placement end to end: a model split over several device openings, with layers and single
 * FFN matrices in host memory (imported from the mapped file, or copied to host-visible
 * memory), and with host weights streamed to the device for prompt chunks, gives the same
 * greedy tokens and bit-identical logits as one device (the same kernels run on identical
 * devices; decode steps with the separate kernels, VKLLM_FUSED_LAYER=0). The plan is exact: every opening's allocator holds what the plan said. A load
 * that cannot fit fails before any weight byte is read. stories260K split two ways prints its
 * published text. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "runtime/api/api_internal.h"
#include "testkit/synth.h"
#include "base/util.h"
#include "vk/vk.h"
#include "vkllm.h"

#define STEPS 12
#define N_PROMPT 11
#define N_CTX 64

static const int32_t prompt[N_PROMPT] = {1, 72, 101, 300, 5, 17, 200, 33, 9, 250, 4};

typedef struct run_result {
    int32_t tok[STEPS];
    float *logits; /* (STEPS, n_vocab) */
    uint32_t n_vocab;
} run_result;

typedef struct config {
    const char *name;
    uint32_t n_devices;
    int32_t gpu_layers;
    float split[3];
    int shrink;        /* budgets = planned use - shrink * (one FFN matrix) / 2: FFN tensors to host */
    const char *env;   /* "NAME=value" set for this run, or NULL */
    uint32_t n_batch;
} config;

/* Every opening's allocator holds exactly what the plan says for it. */
static void check_exact(const vkllm_model *m, const char *what) {
    const vkllm_plan *pl = vkllm_model_get_plan(m);
    vkllm_plan_summary sum;
    vkllm_plan_get_summary(pl, &sum);
    for (uint32_t d = 0; d < sum.n_devices; d++) {
        vkllm_plan_device pd;
        CHECK_OK(vkllm_plan_get_device(pl, d, &pd));
        vk_mem_stats ms;
        vk_mem_get_stats(api_model_device(m, d), &ms);
        CHECK_MSG(ms.device_bytes == pd.used_bytes, "%s: device %u holds %llu device bytes, plan said %llu", what, d,
                  (unsigned long long)ms.device_bytes, (unsigned long long)pd.used_bytes);
        CHECK_MSG(ms.host_bytes == pd.host_visible_bytes, "%s: device %u holds %llu host-visible bytes, plan said %llu",
                  what, d, (unsigned long long)ms.host_bytes, (unsigned long long)pd.host_visible_bytes);
    }
}

static int run(const char *path, const config *cf, const uint64_t *budgets, run_result *out, vkllm_plan_summary *sum_out) {
    vkllm_model_params mp;
    th_model_params_init(&mp);
    mp.validation = 1;
    mp.n_devices = cf->n_devices;
    for (uint32_t d = 0; d < cf->n_devices; d++) {
        mp.devices[d] = 0;
        mp.device_mem[d] = budgets ? budgets[d] : 0;
    }
    mp.gpu_layers = cf->gpu_layers;
    if (cf->split[0] > 0) {
        mp.n_tensor_split = cf->n_devices;
        for (uint32_t d = 0; d < cf->n_devices; d++) mp.tensor_split[d] = cf->split[d];
    }
    mp.ctx.n_ctx = N_CTX;
    mp.ctx.n_batch = cf->n_batch;
    vkllm_model *m = NULL;
    vkllm_context *ctx = NULL;
    int ok = 0;
    CHECK_OK(vkllm_model_load(path, &mp, &m));
    if (!m) return 0;
    if (sum_out) vkllm_plan_get_summary(vkllm_model_get_plan(m), sum_out);
    CHECK_OK(vkllm_context_create(m, &mp.ctx, &ctx));
    if (!ctx) goto out;
    check_exact(m, cf->name);
    out->n_vocab = (uint32_t)vkllm_n_vocab(m);
    out->logits = malloc((size_t)STEPS * out->n_vocab * sizeof(float));
    vkllm_status st = vkllm_eval(ctx, prompt, N_PROMPT);
    CHECK_OK(st);
    for (int s = 0; !st && s < STEPS; s++) {
        const float *lg = vkllm_get_logits(ctx);
        memcpy(out->logits + (size_t)s * out->n_vocab, lg, out->n_vocab * sizeof(float));
        uint32_t best = 0;
        for (uint32_t i = 1; i < out->n_vocab; i++)
            if (lg[i] > lg[best]) best = i;
        out->tok[s] = (int32_t)best;
        if (s + 1 < STEPS) st = vkllm_eval(ctx, &out->tok[s], 1);
    }
    CHECK_OK(st);
    ok = !st;
out:
    vkllm_context_free(ctx);
    vkllm_model_free(m);
    return ok;
}

static void compare(const char *model, const config *cf, const run_result *ref, const run_result *got) {
    int tok_same = !memcmp(ref->tok, got->tok, sizeof ref->tok);
    CHECK_MSG(tok_same, "%s, %s: greedy tokens differ from one device", model, cf->name);
    size_t bad = 0;
    for (size_t i = 0; i < (size_t)STEPS * ref->n_vocab; i++)
        if (memcmp(&ref->logits[i], &got->logits[i], sizeof(float))) bad++;
    CHECK_MSG(bad == 0, "%s, %s: %zu logits differ in their bits from one device", model, cf->name, bad);
}

/* The bytes the one-device plan puts on its device, from the public plan. */
static uint64_t one_device_use(const char *path, uint32_t n_batch, uint64_t *ffn_bytes) {
    vkllm_model_params mp;
    th_model_params_init(&mp);
    mp.ctx.n_ctx = N_CTX;
    mp.ctx.n_batch = n_batch;
    vkllm_plan *pl = NULL;
    CHECK_OK(vkllm_plan_model(path, &mp, NULL, &pl));
    if (!pl) return 0;
    vkllm_plan_device pd;
    CHECK_OK(vkllm_plan_get_device(pl, 0, &pd));
    vkllm_plan_summary s;
    vkllm_plan_get_summary(pl, &s);
    *ffn_bytes = s.weight_bytes / s.n_layer / 4; /* well under one FFN matrix of these shapes */
    vkllm_plan_free(pl);
    return pd.used_bytes;
}

static void run_type(const char *type, int full, int tied) {
    char path[1024], name[128];
    snprintf(name, sizeof name, "split_%s%s.gguf", type, tied ? "_tied" : "");
    th_tmp_path(name, path, sizeof path);
    synth_opts o;
    synth_default_opts(&o);
    o.dim = 256, o.n_layer = 4, o.n_ff = 512, o.n_head = 4, o.n_head_kv = 2, o.n_vocab = 512, o.n_ctx = N_CTX;
    o.type = type;
    o.tied = tied; /* output = token_embd: a copy on the output stage's device */
    o.seed = 11;
    CHECK_OK(synth_write_file(&o, path));

    const config base = {"1 device", 1, -1, {0}, 0, NULL, 8};
    run_result ref = {0};
    if (!run(path, &base, NULL, &ref, NULL)) goto done;
    uint64_t ffn = 0, use = one_device_use(path, 8, &ffn);

    static const config configs[] = {
        {"2 devices", 2, -1, {0}, 0, NULL, 8},
        {"3 devices", 3, -1, {0}, 0, NULL, 8},
        {"split 3,1", 2, -1, {3, 1, 0}, 0, NULL, 8},
        {"-ngl 2 (host layers imported)", 1, 2, {0}, 0, NULL, 8},
        {"2 devices, -ngl 1", 2, 1, {0}, 0, NULL, 8},
        {"-ngl 2, host copy", 1, 2, {0}, 0, "VKLLM_NO_HOST_IMPORT=1", 8},
        {"-ngl 1, streamed chunks", 1, 1, {0}, 0, "VKLLM_STREAM_MIN_BATCH=4", 8},
        {"single FFN tensors in host memory", 1, -1, {0}, 3, NULL, 8},
    };
    /* Every type: 2 and 3 devices, host layers, single FFN tensors in host memory. The other
     * paths (split ratios, host copies, streaming, host layers beside a split) exercise no
     * type-specific code beyond those: the full set runs for a few types. */
    for (size_t c = 0; c < sizeof configs / sizeof configs[0]; c++) {
        const config *cf = &configs[c];
        if (!full && c != 0 && c != 1 && c != 3 && c != 7) continue;
        if (cf->env) {
            char kv[64];
            snprintf(kv, sizeof kv, "%s", cf->env);
            char *eq = strchr(kv, '=');
            *eq = 0;
            setenv(kv, eq + 1, 1);
        }
        uint64_t budgets[3] = {0, 0, 0};
        const uint64_t *b = NULL;
        if (cf->shrink) {
            budgets[0] = use - (uint64_t)cf->shrink * ffn / 2;
            b = budgets;
        }
        run_result got = {0};
        vkllm_plan_summary sum;
        if (run(path, cf, b, &got, &sum)) {
            compare(type, cf, &ref, &got);
            if (cf->gpu_layers >= 0) CHECK_MSG(sum.gpu_layers == (uint32_t)cf->gpu_layers, "%s: %u device layers", cf->name, sum.gpu_layers);
            if (cf->shrink) CHECK_MSG(sum.host_ffn_tensors > 0 && sum.gpu_layers < 4, "%s: %u FFN tensors in host memory, %u device layers",
                                      cf->name, sum.host_ffn_tensors, sum.gpu_layers);
            if (cf->env && strstr(cf->env, "STREAM")) CHECK(sum.stream_min_batch == 4);
        }
        free(got.logits);
        if (cf->env) {
            char kv[64];
            snprintf(kv, sizeof kv, "%s", cf->env);
            *strchr(kv, '=') = 0;
            unsetenv(kv);
        }
    }
done:
    free(ref.logits);
    remove(path);
}

static int count_progress(float done, void *user) {
    if (done > 0) ++*(int *)user;
    return 0;
}

/* A budget below what the model needs fails at planning or allocation, before any tensor
 * byte is read, and quickly. */
static void test_early_failure(void) {
    char path[1024];
    th_tmp_path("split_oom.gguf", path, sizeof path);
    synth_opts o;
    synth_default_opts(&o);
    o.dim = 256, o.n_layer = 4, o.n_ff = 512, o.n_head = 4, o.n_head_kv = 4, o.n_vocab = 512, o.n_ctx = N_CTX;
    o.type = "f32";
    CHECK_OK(synth_write_file(&o, path));
    int calls = 0;
    vkllm_model_params mp;
    th_model_params_init(&mp);
    mp.validation = 1;
    mp.n_devices = 1;
    mp.device_mem[0] = 256 << 10; /* less than one layer and the context's buffers */
    mp.progress = count_progress;
    mp.progress_user = &calls;
    mp.ctx.n_ctx = N_CTX;
    vkllm_model *m = NULL;
    double t0 = vkl_now_ms();
    vkllm_status st = vkllm_model_load(path, &mp, &m);
    double ms = vkl_now_ms() - t0;
    CHECK_MSG(st == VKLLM_ERR_OUT_OF_MEMORY, "tiny budget gave status %d (%s)", st, vkllm_last_error());
    CHECK(m == NULL);
    CHECK_MSG(calls == 0, "%d progress reports (tensor bytes read) before failing", calls);
    CHECK_MSG(ms < 1000.0, "failing took %.0f ms", ms);
    CHECK_MSG(strstr(vkllm_last_error(), "one layer") != NULL, "message: %s", vkllm_last_error());
    fprintf(stderr, "early failure in %.1f ms: %s\n", ms, vkllm_last_error());

    /* Room on the device for some layers, the rest needs host memory, and there is too little. */
    uint64_t ffn = 0, use = one_device_use(path, 512, &ffn);
    mp.device_mem[0] = use / 2;
    mp.host_mem = 64 << 10;
    calls = 0;
    t0 = vkl_now_ms();
    st = vkllm_model_load(path, &mp, &m);
    ms = vkl_now_ms() - t0;
    CHECK_MSG(st == VKLLM_ERR_OUT_OF_MEMORY && m == NULL, "short host budget gave status %d (%s)", st, vkllm_last_error());
    CHECK_MSG(calls == 0 && ms < 1000.0, "%d progress reports, %.0f ms before failing", calls, ms);
    CHECK_MSG(strstr(vkllm_last_error(), "host") != NULL, "message: %s", vkllm_last_error());
    fprintf(stderr, "host refusal in %.1f ms: %s\n", ms, vkllm_last_error());

    /* With host memory to spare it loads: part on the device, part read in place. */
    mp.host_mem = 0;
    calls = 0;
    CHECK_OK(vkllm_model_load(path, &mp, &m));
    if (m) {
        vkllm_plan_summary s;
        vkllm_plan_get_summary(vkllm_model_get_plan(m), &s);
        CHECK_MSG(s.gpu_layers < 4 || s.host_ffn_tensors > 0, "half the budget holds %u layers", s.gpu_layers);
        CHECK(api_model_bytes_uploaded(m) > 0 && calls > 0);
    }
    vkllm_model_free(m);

    /* A plan made for another device list is refused before loading. */
    vkllm_plan *pl = NULL;
    th_model_params_init(&mp);
    mp.ctx.n_ctx = N_CTX;
    mp.n_devices = 2;
    CHECK_OK(vkllm_plan_model(path, &mp, NULL, &pl));
    mp.n_devices = 1;
    mp.plan = pl;
    CHECK(vkllm_model_load(path, &mp, &m) == VKLLM_ERR_INVALID_ARG && m == NULL);
    /* ...and obeyed with the list it was made for. */
    mp.n_devices = 2;
    CHECK_OK(vkllm_model_load(path, &mp, &m));
    if (m) {
        vkllm_model_info info;
        vkllm_model_get_info(m, &info);
        CHECK(info.n_devices == 2);
        vkllm_plan_layer pl0, pl3;
        CHECK_OK(vkllm_plan_get_layer(vkllm_model_get_plan(m), 0, &pl0));
        CHECK_OK(vkllm_plan_get_layer(vkllm_model_get_plan(m), 3, &pl3));
        CHECK(pl0.compute == 0 && pl3.compute == 1);
    }
    vkllm_model_free(m);
    vkllm_plan_free(pl);
    remove(path);
}

static int replan_logs;

static void on_log_replan(vkllm_log_level level, const char *msg, void *user) {
    if (strstr(msg, "planning again")) replan_logs++;
    th_log(level, msg, user);
}

/* A card that gives less than its budget says (another program took memory): an automatic
 * placement plans again with what it gave, and says so; a given plan fails naming the device. */
static void test_replan(void) {
    char path[1024];
    th_tmp_path("split_replan.gguf", path, sizeof path);
    synth_opts o;
    synth_default_opts(&o);
    o.dim = 256, o.n_layer = 4, o.n_ff = 512, o.n_head = 4, o.n_head_kv = 2, o.n_vocab = 512, o.n_ctx = N_CTX;
    o.type = "q8_0";
    CHECK_OK(synth_write_file(&o, path));
    uint64_t ffn = 0, use = one_device_use(path, 8, &ffn);
    char gives[32];
    snprintf(gives, sizeof gives, "%llu", (unsigned long long)(use * 6 / 10));
    setenv("VKLLM_TEST_DEVICE_GIVES", gives, 1);
    vkllm_set_log_callback(on_log_replan, NULL);
    config cf = {"re-planned", 1, -1, {0}, 0, NULL, 8};
    run_result ref = {0}, got = {0};
    vkllm_plan_summary sum;
    unsetenv("VKLLM_TEST_DEVICE_GIVES");
    run(path, &cf, NULL, &ref, NULL);
    setenv("VKLLM_TEST_DEVICE_GIVES", gives, 1);
    if (run(path, &cf, NULL, &got, &sum)) {
        compare("q8_0", &cf, &ref, &got);
        CHECK_MSG(replan_logs == 1, "%d 'planning again' warnings", replan_logs);
        CHECK_MSG(sum.host_ffn_tensors > 0 || sum.gpu_layers < 4, "re-plan kept everything on the device");
    }
    /* A plan given by the caller is obeyed or refused, never silently changed. */
    vkllm_model_params mp;
    th_model_params_init(&mp);
    mp.ctx.n_ctx = N_CTX;
    mp.ctx.n_batch = 8;
    vkllm_plan *pl = NULL;
    CHECK_OK(vkllm_plan_model(path, &mp, NULL, &pl));
    mp.plan = pl;
    vkllm_model *m = NULL;
    vkllm_status st = vkllm_model_load(path, &mp, &m);
    CHECK_MSG(st == VKLLM_ERR_OUT_OF_MEMORY && m == NULL, "given plan on a short card: status %d", st);
    CHECK_MSG(strstr(vkllm_last_error(), "device 0") != NULL, "message: %s", vkllm_last_error());
    fprintf(stderr, "given plan, short card: %s\n", vkllm_last_error());
    vkllm_plan_free(pl);
    unsetenv("VKLLM_TEST_DEVICE_GIVES");
    vkllm_set_log_callback(th_log, NULL);
    free(ref.logits);
    free(got.logits);
    remove(path);
}

typedef struct text_out {
    char *buf;
    size_t n, cap;
} text_out;

static int on_text(const char *text, size_t len, int32_t token, void *user) {
    (void)token;
    text_out *t = user;
    if (t->n + len + 1 > t->cap) {
        t->cap = (t->n + len + 1) * 2;
        t->buf = realloc(t->buf, t->cap);
    }
    memcpy(t->buf + t->n, text, len);
    t->n += len;
    t->buf[t->n] = 0;
    return 0;
}

/* The real model split two ways prints the published text byte for byte. */
static void test_stories(void) {
    char path[1024], exp_path[1024];
    if (!th_data_path("stories260K/stories260K.gguf", path, sizeof path) ||
        !th_data_path("stories260K/stories260K_t0_n200.expected.txt", exp_path, sizeof exp_path))
        return;
    char *expected = th_read_file(exp_path, NULL);
    for (int mode = 0; mode < 2; mode++) {
        vkllm_model_params mp;
        th_model_params_init(&mp);
        mp.validation = 1;
        if (mode == 0) {
            mp.n_devices = 2; /* two openings of device 0 */
        } else {
            mp.gpu_layers = 2; /* layers 2-4 in host memory */
        }
        vkllm_model *m = NULL;
        vkllm_context *ctx = NULL;
        CHECK_OK(vkllm_model_load(path, &mp, &m));
        if (m) CHECK_OK(vkllm_context_create(m, NULL, &ctx));
        if (ctx) {
            vkllm_generate_params gp;
            vkllm_generate_params_init(&gp);
            gp.prompt = "";
            gp.n_predict = 200;
            gp.sampling.temp = 0;
            text_out t = {0};
            gp.on_text = on_text;
            gp.user = &t;
            vkllm_timings tm;
            CHECK_OK(vkllm_generate(ctx, &gp, &tm));
            CHECK_MSG(t.buf && expected && !strcmp(t.buf, expected), "stories260K %s: text differs from the published one",
                      mode ? "-ngl 2" : "on two devices");
            free(t.buf);
        }
        vkllm_context_free(ctx);
        vkllm_model_free(m);
    }
    free(expected);
}

int main(void) {
    vkllm_set_log_callback(th_log, NULL);
    /* The same kernels everywhere: small layers on a device would otherwise run decode steps
     * fused (runtime/kern/kern_layer.h) where host-resident ones cannot, and bits would differ.
     * test_layer_fused checks the fused layer against the reference. */
    setenv("VKLLM_FUSED_LAYER", "0", 1);
    static const char *types[] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1",
                                  "q4_K", "q5_K", "q6_K", "q4_K_M"};
    /* A sanitizer build checks memory and threads, not numbers: one type per block family
     * (float, legacy, K-quant) is enough there, and the configurations run in full for one;
     * through the staging ring (test_split_staging), whose code no weight type reaches
     * differently, that one alone. */
    const char *staging = getenv("VKLLM_NO_MAPPED_DEVICE_MEMORY");
    int staged = staging && *staging && strcmp(staging, "0");
    const char *sanitized_types = staged ? " q4_0 " : " f16 q4_0 q4_K_M ";
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        char key[16];
        snprintf(key, sizeof key, " %s ", types[t]);
        int full = !strcmp(types[t], "q4_0") ||
                   (!th_sanitized() && (!strcmp(types[t], "q4_K_M") || !strcmp(types[t], "f16") || !strcmp(types[t], "q6_K")));
        if (th_sanitized() && !strstr(sanitized_types, key)) continue;
        run_type(types[t], full, 0);
    }
    if (!th_sanitized() || !staged) run_type("q8_0", !th_sanitized(), 1);
    test_replan();
    test_early_failure();
    test_stories();
    CHECK_MSG(th_validation_messages() == 0, "the validation layer reported %d message(s)", th_validation_messages());
    return th_finish();
}
