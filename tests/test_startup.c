/* Start-up: vkllm_context_create builds every pipeline the context's evaluations use (on a
 * few threads), so evaluating afterwards compiles nothing: prompts of every chunk length, decode
 * steps at both ends of the context (split attention once it is long) and greedy generation,
 * on one device opening and on a model split over two. What the context computes is, bit for
 * bit, what it computes when pipelines are built on first use (VKLLM_LAZY_PIPELINES=1). The
 * SPIR-V cache starts empty, so the first preparation compiles and a later one reads it. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "testkit/synth.h"
#include "vk/vk.h"
#include "vkllm.h"

#define N_VOCAB 260
#define N_CTX 300   /* decode steps past 256 positions split attention over the context */
#define N_BATCH 8
#define N_PROMPT 11 /* two chunks: 8 + 3 */
#define N_DECODE 5
#define N_LONG 290
#define N_LONG_STEPS 3
#define N_GEN 4
/* Logit vectors kept per run: the prompt and its decode steps, one prompt per length 1..N_BATCH+2,
 * and the steps after a long prompt. */
#define N_OUT (1 + N_DECODE + (N_BATCH + 2) + N_LONG_STEPS)

static const int32_t prompt[N_PROMPT] = {1, 17, 42, 5, 99, 3, 250, 8, 61, 7, 12};

typedef struct run_out {
    float logits[N_OUT][N_VOCAB];
    int32_t gen[N_GEN];
    int n_gen;
} run_out;

static unsigned g_validation;

static void on_log(vkllm_log_level level, const char *msg, void *user) {
    (void)user;
    if (level == VKLLM_LOG_ERROR && strstr(msg, "validation")) g_validation++;
    if (level <= VKLLM_LOG_WARN) fprintf(stderr, "%s\n", msg);
}

static void on_token(int32_t token, void *user) {
    run_out *o = user;
    if (o->n_gen < N_GEN) o->gen[o->n_gen++] = token;
}

static int32_t argmax(const float *x) {
    int32_t best = 0;
    for (int32_t i = 1; i < N_VOCAB; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Keeps the logits of the last evaluation in o->logits[*k]. */
static void keep(vkllm_context *ctx, run_out *o, int *k) {
    const float *lg = vkllm_get_logits(ctx);
    CHECK(lg != NULL);
    if (lg && *k < N_OUT) memcpy(o->logits[*k], lg, sizeof o->logits[0]);
    (*k)++;
}

/* Greedy decode steps after what ctx holds, keeping their logits. */
static void decode(vkllm_context *ctx, int steps, run_out *o, int *k) {
    for (int s = 0; s < steps; s++) {
        const float *lg = vkllm_get_logits(ctx);
        CHECK(lg != NULL);
        int32_t t = lg ? argmax(lg) : 0;
        CHECK_OK(vkllm_eval(ctx, &t, 1));
        keep(ctx, o, k);
    }
}

static int shader_stats_equal(const vk_shader_stats *a, const vk_shader_stats *b) {
    return a->spirv_hits == b->spirv_hits && a->spirv_misses == b->spirv_misses &&
           a->pipelines_created == b->pipelines_created;
}

/* Loads the model over n_devices openings, creates a context and evaluates; lazy: with
 * VKLLM_LAZY_PIPELINES=1. fresh_cache: the SPIR-V cache holds none of this model's shaders. */
static void run(const char *path, uint32_t n_devices, int lazy, int fresh_cache, run_out *o) {
    const char *what = lazy ? "lazy" : "prepared";
    memset(o, 0, sizeof *o);
    if (lazy) setenv("VKLLM_LAZY_PIPELINES", "1", 1);
    else unsetenv("VKLLM_LAZY_PIPELINES");
    vkllm_model_params mp;
    th_model_params_init(&mp);
    mp.validation = 1;
    mp.n_devices = n_devices;
    for (uint32_t d = 0; d < n_devices; d++) mp.devices[d] = 0;
    vkllm_context_params cp;
    vkllm_context_params_init(&cp);
    cp.n_ctx = N_CTX;
    cp.n_batch = N_BATCH;
    mp.ctx = cp;
    vkllm_model *m = NULL;
    vkllm_context *ctx = NULL, *second = NULL;
    CHECK_OK(vkllm_model_load(path, &mp, &m));
    if (!m) return;

    vk_shader_stats s0, s1, s2;
    vk_shader_get_stats(&s0);
    CHECK_OK(vkllm_context_create(m, &cp, &ctx));
    vk_shader_get_stats(&s1);
    if (!ctx) goto out;
    vkllm_prepare_stats ps;
    CHECK_OK(vkllm_context_get_prepare_stats(ctx, &ps));
    uint32_t created = s1.pipelines_created - s0.pipelines_created;
    printf("%u device%s, %-8s: context created in %8.1f ms, %u pipelines (%u shaders compiled, %u from the "
           "SPIR-V cache, %u threads)\n", n_devices, n_devices > 1 ? "s" : " ", what, ps.ms, created,
           s1.spirv_misses - s0.spirv_misses, s1.spirv_hits - s0.spirv_hits, ps.threads);
    if (lazy) {
        CHECK_MSG(ps.skipped && created == 0, "%s: %u pipelines built while creating the context", what, created);
    } else {
        CHECK(!ps.skipped && ps.ms > 0 && ps.threads >= 1);
        CHECK_MSG(ps.pipelines > 0 && created == ps.pipelines, "%u pipelines built, %u created", ps.pipelines,
                  created);
        CHECK(ps.shaders_compiled == s1.spirv_misses - s0.spirv_misses);
        CHECK(ps.shaders_cached == s1.spirv_hits - s0.spirv_hits);
        if (fresh_cache) {
            CHECK_MSG(s1.spirv_misses > s0.spirv_misses && s1.compile_ms > s0.compile_ms && ps.compile_ms > 0,
                      "a cold start compiled %u shaders in %.1f ms", s1.spirv_misses - s0.spirv_misses,
                      s1.compile_ms - s0.compile_ms);
        } else {
            CHECK_MSG(ps.shaders_compiled == 0 && ps.shaders_cached > 0, "a warm start compiled %u shaders, read %u",
                      ps.shaders_compiled, ps.shaders_cached);
        }
        /* Split over two openings, each shader variant is compiled (or read) once and built on
         * both: more pipelines than variants. */
        if (n_devices == 2)
            CHECK_MSG(ps.pipelines > ps.shaders_compiled + ps.shaders_cached, "%u pipelines from %u variants",
                      ps.pipelines, ps.shaders_compiled + ps.shaders_cached);
    }

    int k = 0;
    /* The prompt in two chunks, then decode steps. */
    CHECK_OK(vkllm_eval(ctx, prompt, N_PROMPT));
    keep(ctx, o, &k);
    decode(ctx, N_DECODE, o, &k);
    /* Every chunk length, and one past the batch (a full chunk and a remainder). */
    for (int n = 1; n <= N_BATCH + 2; n++) {
        vkllm_context_reset(ctx);
        CHECK_OK(vkllm_eval(ctx, prompt, (uint32_t)n));
        keep(ctx, o, &k);
    }
    /* Decode steps late in the context. */
    int32_t *filler = malloc(N_LONG * sizeof *filler);
    if (filler) {
        for (int i = 0; i < N_LONG; i++) filler[i] = (int32_t)((i * 37 + 11) % N_VOCAB);
        vkllm_context_reset(ctx);
        CHECK_OK(vkllm_eval(ctx, filler, N_LONG));
        decode(ctx, N_LONG_STEPS, o, &k);
        free(filler);
    }
    CHECK(k == N_OUT);
    /* Greedy generation (its argmax on the device). */
    vkllm_context_reset(ctx);
    vkllm_generate_params gp;
    vkllm_generate_params_init(&gp);
    gp.prompt_tokens = prompt;
    gp.n_prompt_tokens = N_PROMPT;
    gp.n_predict = N_GEN;
    gp.sampling.temp = 0;
    gp.on_token = on_token;
    gp.user = o;
    vkllm_timings tm;
    CHECK_OK(vkllm_generate(ctx, &gp, &tm));

    vk_shader_get_stats(&s2);
    if (lazy)
        CHECK_MSG(s2.pipelines_created > s1.pipelines_created, "%s: evaluating built no pipeline", what);
    else
        CHECK_MSG(shader_stats_equal(&s1, &s2), "%s: evaluating compiled %u shaders, read %u, built %u pipelines",
                  what, s2.spirv_misses - s1.spirv_misses, s2.spirv_hits - s1.spirv_hits,
                  s2.pipelines_created - s1.pipelines_created);

    /* A second context of the same shape finds every pipeline built. */
    if (!lazy) {
        CHECK_OK(vkllm_context_create(m, &cp, &second));
        vk_shader_stats s3;
        vk_shader_get_stats(&s3);
        CHECK_OK(vkllm_context_get_prepare_stats(second, &ps));
        CHECK_MSG(ps.pipelines == 0 && shader_stats_equal(&s2, &s3), "a second context built %u pipelines",
                  ps.pipelines);
    }
out:
    vkllm_context_free(second);
    vkllm_context_free(ctx);
    vkllm_model_free(m);
    unsetenv("VKLLM_LAZY_PIPELINES");
}

static void compare(const char *what, const run_out *a, const run_out *b) {
    int first = -1;
    for (int i = 0; i < N_OUT && first < 0; i++)
        if (memcmp(a->logits[i], b->logits[i], sizeof a->logits[i])) first = i;
    CHECK_MSG(first < 0, "%s: logits %d differ between prepared and lazy pipelines", what, first);
    CHECK_MSG(a->n_gen == N_GEN && b->n_gen == N_GEN && !memcmp(a->gen, b->gen, sizeof a->gen),
              "%s: generated tokens differ (%d and %d tokens)", what, a->n_gen, b->n_gen);
    printf("%s: %d logit vectors and %d generated tokens identical\n", what, N_OUT, N_GEN);
}

int main(void) {
    vkllm_set_log_callback(on_log, NULL);
    /* A cache folder of our own, empty, set before anything reads it. */
    char dir[1024];
    th_tmp_path("startup-cache-XXXXXX", dir, sizeof dir);
    if (!mkdtemp(dir)) {
        CHECK_MSG(0, "cannot create %s", dir);
        return th_finish();
    }
    setenv("VKLLM_CACHE_DIR", dir, 1);

    char path[1024];
    th_tmp_path("startup.gguf", path, sizeof path);
    synth_opts so;
    synth_default_opts(&so);
    so.dim = 64, so.n_layer = 2, so.n_ff = 96, so.n_head = 4, so.n_head_kv = 2;
    so.n_vocab = N_VOCAB, so.n_ctx = N_CTX, so.type = "f32", so.seed = 11;
    CHECK_OK(synth_write_file(&so, path));

    run_out *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    if (a && b) {
        run(path, 2, 0, 1, a); /* cold: nothing in the SPIR-V cache yet */
        run(path, 2, 1, 0, b);
        compare("2 openings", a, b);
        run(path, 1, 0, 0, a); /* warm: the split model compiled every variant */
        run(path, 1, 1, 0, b);
        compare("1 opening", a, b);
    }
    free(a);
    free(b);
    CHECK_MSG(g_validation == 0, "%u validation messages", g_validation);
    remove(path);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return th_finish();
}
