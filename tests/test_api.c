/* The public API's promises to an application: every function refuses NULL with
 * VKLLM_ERR_INVALID_ARG (or answers a neutral value), parameter structs carry their size and
 * an older, shorter struct still works, devices can be found by UUID, the cache folder is set
 * through the API, the version macros agree with the library, and the abort and progress
 * callbacks stop a prompt between chunks and between layers on a Vulkan device and on the
 * CPU path, leaving the context usable with the same logits as an uninterrupted run. */
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "testkit/synth.h"
#include "vk/fault.h"
#include "vkllm.h"
#include "vkllm_tune.h"

#define N_PROMPT 40
#define N_BATCH 8
#define N_LAYER 4

static int invalid(vkllm_status st) { return st == VKLLM_ERR_INVALID_ARG; }

/* After every object is freed (refused calls included) no Vulkan object or memory is left. */
static void live_zero(const char *after) {
    vk_live_stats l;
    vk_live_get(&l);
    CHECK_MSG(!l.instances && !l.devices && !l.blocks && !l.memory_objects && !l.memory_bytes && !l.batches,
              "after %s: %lld instances, %lld devices, %lld blocks, %lld memory objects (%lld bytes), %lld batches "
              "left", after, (long long)l.instances, (long long)l.devices, (long long)l.blocks,
              (long long)l.memory_objects, (long long)l.memory_bytes, (long long)l.batches);
}

static void test_nulls(const char *model_path) {
    uint32_t u = 0;
    size_t n = 0;
    int32_t ids[4];
    char buf[16];
    double d = 0;
    uint8_t uuid[16] = {0};

    CHECK(vkllm_status_string(VKLLM_OK) != NULL && vkllm_last_error() != NULL && vkllm_version() != NULL);
    CHECK(vkllm_device_type_string((vkllm_device_type)99) != NULL);
    vkllm_set_log_callback(NULL, NULL); /* back to stderr */
    vkllm_set_log_callback(th_log, NULL);
    vkllm_free(NULL);
    CHECK(invalid(vkllm_list_devices(NULL, &u)));
    vkllm_device_info *devs = NULL;
    CHECK(invalid(vkllm_list_devices(&devs, NULL)));
    CHECK(vkllm_default_device(NULL, 3) == VKLLM_DEVICE_CPU_INDEX);
    CHECK(invalid(vkllm_device_index_by_uuid(NULL, &u)));
    CHECK(invalid(vkllm_device_index_by_uuid(uuid, NULL)));

    vkllm_model_params_init(NULL);
    vkllm_context_params_init(NULL);
    vkllm_sampling_params_init(NULL);
    vkllm_generate_params_init(NULL);
    vkllm_tune_params_init(NULL);

    vkllm_model *m = NULL;
    CHECK(invalid(vkllm_model_load(NULL, NULL, &m)) && m == NULL);
    CHECK(invalid(vkllm_model_load(model_path, NULL, NULL)));
    vkllm_model_free(NULL);
    vkllm_model_info info;
    CHECK(invalid(vkllm_model_get_info(NULL, &info)));
    CHECK(vkllm_model_get_plan(NULL) == NULL);

    vkllm_plan *pl = NULL;
    CHECK(invalid(vkllm_plan_model(NULL, NULL, NULL, &pl)) && pl == NULL);
    CHECK(invalid(vkllm_plan_model(model_path, NULL, NULL, NULL)));
    vkllm_plan_free(NULL);
    vkllm_plan_summary sum;
    vkllm_plan_device pd;
    vkllm_plan_layer pla;
    CHECK(invalid(vkllm_plan_get_summary(NULL, &sum)));
    CHECK(invalid(vkllm_plan_get_device(NULL, 0, &pd)));
    CHECK(invalid(vkllm_plan_get_layer(NULL, 0, &pla)));

    vkllm_bandwidth bw;
    CHECK(invalid(vkllm_measure_read_bandwidth(NULL, 0, &d)));
    CHECK(invalid(vkllm_measure_read_bandwidth_stats(NULL, 0, 0, &bw)));

    CHECK(vkllm_n_vocab(NULL) == -1 && vkllm_token_bos(NULL) == -1 && vkllm_token_eos(NULL) == -1);
    CHECK(vkllm_add_bos(NULL) == 0);
    CHECK(invalid(vkllm_tokenize(NULL, "a", 1, 0, ids, 4, &n)));
    CHECK(invalid(vkllm_detokenize(NULL, ids, 1, buf, sizeof buf, &n)));

    vkllm_vocab *v = NULL;
    CHECK(invalid(vkllm_vocab_load(NULL, &v)) && v == NULL);
    CHECK(invalid(vkllm_vocab_load(model_path, NULL)));
    vkllm_vocab_free(NULL);
    CHECK(vkllm_vocab_add_bos(NULL) == 0);
    CHECK(invalid(vkllm_vocab_tokenize(NULL, "a", 1, 0, ids, 4, &n)));

    vkllm_context *c = NULL;
    CHECK(invalid(vkllm_context_create(NULL, NULL, &c)) && c == NULL);
    vkllm_prepare_stats ps;
    vkllm_profile_entry *pe = NULL;
    vkllm_step_stats ss;
    CHECK(invalid(vkllm_context_get_prepare_stats(NULL, &ps)));
    vkllm_context_free(NULL);
    vkllm_context_reset(NULL);
    CHECK(vkllm_context_pos(NULL) == 0 && vkllm_context_size(NULL) == 0);
    CHECK(invalid(vkllm_context_get_profile(NULL, &pe, &u)));
    vkllm_context_reset_profile(NULL);
    CHECK(invalid(vkllm_context_get_step_stats(NULL, &ss)));
    vkllm_context_reset_step_stats(NULL);
    CHECK(invalid(vkllm_context_set_abort_callback(NULL, NULL, NULL)));
    CHECK(invalid(vkllm_context_set_progress_callback(NULL, NULL, NULL)));
    CHECK(invalid(vkllm_eval(NULL, ids, 1)));
    CHECK(vkllm_get_logits(NULL) == NULL);
    vkllm_timings tm;
    CHECK(invalid(vkllm_generate(NULL, NULL, &tm)));
    vkllm_tune_result *tr = malloc(sizeof *tr);
    CHECK(invalid(vkllm_tune(NULL, tr)));
    free(tr);

    /* The same with a real model and context: each output pointer NULL in turn. */
    vkllm_model_params mp;
    th_model_params_init(&mp);
    CHECK_OK(vkllm_model_load(model_path, &mp, &m));
    if (!m) return;
    CHECK(invalid(vkllm_model_get_info(m, NULL)));
    CHECK(invalid(vkllm_plan_get_summary(vkllm_model_get_plan(m), NULL)));
    CHECK(invalid(vkllm_plan_get_device(vkllm_model_get_plan(m), 0, NULL)));
    CHECK(invalid(vkllm_plan_get_layer(vkllm_model_get_plan(m), 0, NULL)));
    CHECK(invalid(vkllm_measure_read_bandwidth(m, 0, NULL)));
    CHECK(invalid(vkllm_measure_read_bandwidth_stats(m, 0, 0, NULL)));
    CHECK(invalid(vkllm_tokenize(m, NULL, 3, 0, ids, 4, &n)));
    CHECK(invalid(vkllm_tokenize(m, "abc", 3, 0, NULL, 4, &n)));
    CHECK(invalid(vkllm_tokenize(m, "abc", 3, 0, ids, 4, NULL)));
    CHECK(invalid(vkllm_detokenize(m, NULL, 1, buf, sizeof buf, &n)));
    CHECK(invalid(vkllm_detokenize(m, ids, 0, NULL, sizeof buf, &n)));
    CHECK(invalid(vkllm_detokenize(m, ids, 0, buf, sizeof buf, NULL)));
    CHECK(invalid(vkllm_context_create(m, NULL, NULL)));
    CHECK_OK(vkllm_context_create(m, NULL, &c));
    if (c) {
        CHECK(invalid(vkllm_context_get_prepare_stats(c, NULL)));
        CHECK(invalid(vkllm_context_get_profile(c, NULL, &u)));
        CHECK(invalid(vkllm_context_get_profile(c, &pe, NULL)));
        CHECK(invalid(vkllm_context_get_step_stats(c, NULL)));
        CHECK(invalid(vkllm_eval(c, NULL, 2)));
        CHECK(invalid(vkllm_generate(c, NULL, &tm)));
        vkllm_generate_params gp;
        vkllm_generate_params_init(&gp);
        gp.n_predict = 1;
        gp.n_stop = 1; /* stop strings counted, none given */
        CHECK(invalid(vkllm_generate(c, &gp, NULL)));
        const char *stops[1] = {NULL};
        gp.stop = stops;
        CHECK(invalid(vkllm_generate(c, &gp, NULL)));
        vkllm_context_free(c);
    }
    vkllm_model_free(m);
}

/* Sizes: 0 (never initialised) is refused; a shorter struct, as an application built against
 * an older header passes, loads with defaults for what it lacks. */
static void test_sizes(const char *model_path) {
    vkllm_model *m = NULL;
    vkllm_model_params mp;
    th_model_params_init(&mp);
    mp.size = 0;
    CHECK(invalid(vkllm_model_load(model_path, &mp, &m)) && m == NULL);
    CHECK(strstr(vkllm_last_error(), "vkllm_model_params_init") != NULL);
    th_model_params_init(&mp);
    mp.size = (uint32_t)offsetof(vkllm_model_params, n_threads); /* an older struct */
    mp.n_threads = 12345;                                           /* beyond it: not read */
    CHECK_OK(vkllm_model_load(model_path, &mp, &m));
    if (!m) return;
    vkllm_context_params cp;
    vkllm_context_params_init(&cp);
    CHECK(cp.size == sizeof cp);
    cp.size = 0;
    vkllm_context *c = NULL;
    CHECK(invalid(vkllm_context_create(m, &cp, &c)) && c == NULL);
    vkllm_context_params_init(&cp);
    cp.n_ctx = 64;
    CHECK_OK(vkllm_context_create(m, &cp, &c));
    if (c) {
        CHECK(vkllm_context_size(c) == 64);
        vkllm_generate_params gp;
        vkllm_generate_params_init(&gp);
        gp.prompt = "a";
        gp.n_predict = 2;
        gp.sampling.size = 0;
        CHECK(invalid(vkllm_generate(c, &gp, NULL)));
        vkllm_generate_params_init(&gp);
        gp.prompt = "a";
        gp.n_predict = 2;
        gp.sampling.temp = 0;
        gp.size = offsetof(vkllm_generate_params, on_token); /* older: no on_token */
        gp.on_token = (void (*)(int32_t, void *))(uintptr_t)1;            /* never called */
        vkllm_timings tm;
        CHECK_OK(vkllm_generate(c, &gp, &tm));
        CHECK(tm.n_gen >= 1);
        vkllm_context_free(c);
    }
    vkllm_model_free(m);
}

static void test_version_and_devices(void) {
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", VKLLM_VERSION_MAJOR, VKLLM_VERSION_MINOR, VKLLM_VERSION_PATCH);
    CHECK_MSG(!strcmp(want, vkllm_version()), "header says %s, library %s", want, vkllm_version());

    vkllm_device_info *devs = NULL;
    uint32_t n = 0;
    CHECK_OK(vkllm_list_devices(&devs, &n));
    for (uint32_t i = 0; i < n; i++) {
        uint32_t idx = 0;
        CHECK_OK(vkllm_device_index_by_uuid(devs[i].device_uuid, &idx));
        /* The same device may be listed twice by two drivers: the first with the UUID wins. */
        uint32_t first = 0;
        while (memcmp(devs[first].device_uuid, devs[i].device_uuid, 16)) first++;
        CHECK_MSG(idx == devs[first].index, "%s: UUID lookup gave %u, not %u", devs[i].name, idx, devs[first].index);
    }
    CHECK(n > 0 && devs[n - 1].index == VKLLM_DEVICE_CPU_INDEX);
    vkllm_free(devs);
    uint8_t none[16];
    memset(none, 0xEE, sizeof none);
    uint32_t idx = 7;
    CHECK(vkllm_device_index_by_uuid(none, &idx) == VKLLM_ERR_NO_DEVICE && idx == 7);
}

typedef struct stopper {
    int calls;    /* abort callback calls so far */
    int stop_at;  /* answer stop on this call (0: never) */
    uint32_t last_done, last_total;
    int progress_calls, progress_backwards;
} stopper;

static int on_abort(void *user) {
    stopper *s = user;
    return ++s->calls == s->stop_at;
}

static void on_progress(uint32_t done, uint32_t total, void *user) {
    stopper *s = user;
    if (done < s->last_done || done > total) s->progress_backwards++;
    s->last_done = done;
    s->last_total = total;
    s->progress_calls++;
}

/* Stops the prompt on the stop_at-th callback call, checks the position, evaluates the rest
 * and compares the logits with an uninterrupted run's. */
static void abort_case(vkllm_model *m, const char *dev, const int32_t *prompt, const float *ref, uint32_t n_vocab,
                       int stop_at) {
    vkllm_context_params cp;
    vkllm_context_params_init(&cp);
    cp.n_ctx = 64;
    cp.n_batch = N_BATCH;
    vkllm_context *c = NULL;
    CHECK_OK(vkllm_context_create(m, &cp, &c));
    if (!c) return;
    stopper s = {.stop_at = stop_at};
    CHECK_OK(vkllm_context_set_abort_callback(c, on_abort, &s));
    CHECK_OK(vkllm_context_set_progress_callback(c, on_progress, &s));
    vkllm_status st = vkllm_eval(c, prompt, N_PROMPT);
    uint32_t pos = vkllm_context_pos(c);
    CHECK_MSG(st == VKLLM_ERR_CANCELLED, "%s, stop at call %d: %s", dev, stop_at, vkllm_status_string(st));
    CHECK(vkllm_get_logits(c) == NULL);
    CHECK_MSG(pos % N_BATCH == 0 && pos < N_PROMPT, "%s: %u tokens kept after the cancel", dev, pos);
    CHECK(s.progress_backwards == 0 && s.last_done == pos && (pos == 0 || s.last_total == N_PROMPT));
    printf("%-8s stopped at abort call %d: %u of %d prompt tokens kept, %d progress reports\n", dev, stop_at, pos,
           N_PROMPT, s.progress_calls);
    /* The rest of the prompt from where it stopped gives the uninterrupted logits. */
    vkllm_context_set_abort_callback(c, NULL, NULL);
    s = (stopper){0};
    CHECK_OK(vkllm_eval(c, prompt + pos, N_PROMPT - pos));
    CHECK(s.last_done == N_PROMPT - pos && s.last_total == N_PROMPT - pos);
    const float *lg = vkllm_get_logits(c);
    double e = lg ? th_nmse(ref, lg, n_vocab) : 1;
    CHECK_MSG(e <= 1e-6, "%s: logits after a cancelled and resumed prompt differ (nmse %.3g)", dev, e);

    /* While generating, a stop ends generation normally. */
    vkllm_context_reset(c);
    s = (stopper){.stop_at = 2 + (N_PROMPT + N_BATCH - 1) / N_BATCH * N_LAYER + 3};
    CHECK_OK(vkllm_context_set_abort_callback(c, on_abort, &s));
    vkllm_generate_params gp;
    vkllm_generate_params_init(&gp);
    gp.prompt_tokens = prompt;
    gp.n_prompt_tokens = N_PROMPT;
    gp.n_predict = 20;
    gp.sampling.temp = 0;
    vkllm_timings tm;
    CHECK_OK(vkllm_generate(c, &gp, &tm));
    CHECK_MSG(tm.stop == VKLLM_STOP_CALLBACK && tm.n_gen < 20, "%s: generation stop %d after %u tokens", dev,
              (int)tm.stop, tm.n_gen);
    vkllm_context_free(c);
}

static void test_abort(const char *model_path, const char *dev, uint32_t index) {
    vkllm_model_params mp;
    vkllm_model_params_init(&mp);
    mp.n_devices = 1;
    mp.devices[0] = index;
    vkllm_model *m = NULL;
    CHECK_OK(vkllm_model_load(model_path, &mp, &m));
    if (!m) return;
    int32_t prompt[N_PROMPT];
    uint32_t nv = (uint32_t)vkllm_n_vocab(m);
    for (int i = 0; i < N_PROMPT; i++) prompt[i] = (int32_t)((i * 37 + 5) % nv);
    vkllm_context_params cp;
    vkllm_context_params_init(&cp);
    cp.n_ctx = 64;
    cp.n_batch = N_BATCH;
    vkllm_context *c = NULL;
    float *ref = malloc(nv * sizeof *ref);
    CHECK_OK(vkllm_context_create(m, &cp, &c));
    if (c && ref) {
        CHECK_OK(vkllm_eval(c, prompt, N_PROMPT));
        const float *lg = vkllm_get_logits(c);
        if (lg) memcpy(ref, lg, nv * sizeof *ref);
        vkllm_context_free(c);
        /* Call 1 is before the first chunk: nothing kept. Then one call between each pair of
         * layers, and one before each chunk: call 2 + N_LAYER is before the second chunk. */
        abort_case(m, dev, prompt, ref, nv, 1);
        abort_case(m, dev, prompt, ref, nv, 3);             /* between layers of chunk 1 */
        abort_case(m, dev, prompt, ref, nv, 1 + 2 * N_LAYER); /* chunk 2 or 3, whichever */
    }
    free(ref);
    vkllm_model_free(m);
}

/* The folder given to vkllm_set_cache_dir receives the compiled shaders, and is fixed once in
 * use. Lazy pipelines: only what one short prompt needs is compiled into the new folder. */
static void test_cache_dir(const char *model_path) {
    char dir[1024];
    th_tmp_path("api-cache", dir, sizeof dir);
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    CHECK_OK(vkllm_set_cache_dir(dir));
    setenv("VKLLM_LAZY_PIPELINES", "1", 1);
    vkllm_model_params mp;
    vkllm_model_params_init(&mp);
    mp.n_devices = 1; /* the Vulkan device: the CPU path compiles nothing */
    vkllm_model *m = NULL;
    CHECK_OK(vkllm_model_load(model_path, &mp, &m));
    vkllm_context *c = NULL;
    if (m) CHECK_OK(vkllm_context_create(m, NULL, &c));
    int32_t t[2] = {1, 2};
    if (c) CHECK_OK(vkllm_eval(c, t, 2));
    vkllm_context_free(c);
    vkllm_model_free(m);
    unsetenv("VKLLM_LAZY_PIPELINES");
    int files = 0;
    DIR *dd = opendir(dir);
    for (struct dirent *e; dd && (e = readdir(dd));) files += e->d_name[0] != '.';
    if (dd) closedir(dd);
    CHECK_MSG(files > 0, "nothing was cached in %s", dir);
    CHECK_OK(vkllm_set_cache_dir(dir)); /* the same: no change */
    char other[1100];
    snprintf(other, sizeof other, "%s-other", dir);
    CHECK(invalid(vkllm_set_cache_dir(other)));
    CHECK(strstr(vkllm_last_error(), dir) != NULL);
    printf("cache folder set through the API: %d entries written\n", files);
}

int main(void) {
    vkllm_set_log_callback(th_log, NULL);
    char path[1024];
    th_tmp_path("api.gguf", path, sizeof path);
    synth_opts o;
    synth_default_opts(&o);
    o.dim = 64, o.n_layer = N_LAYER, o.n_ff = 128, o.n_head = 4, o.n_head_kv = 2, o.n_vocab = 300, o.n_ctx = 64;
    o.type = "q8_0";
    o.seed = 3;
    CHECK_OK(synth_write_file(&o, path));
    test_cache_dir(path); /* first: before anything uses the cache */
    live_zero("the cache folder checks");
    test_version_and_devices();
    test_nulls(path);
    live_zero("the NULL checks");
    test_sizes(path);
    live_zero("the size checks");
    test_abort(path, "vulkan", 0);
    live_zero("the cancelled prompts on the Vulkan device");
    test_abort(path, "cpu", VKLLM_DEVICE_CPU_INDEX);
    live_zero("the cancelled prompts on the CPU path");
    CHECK(th_validation_messages() == 0);
    return th_finish();
}
