/* `vkllm run`: generate text from a prompt with llama.cpp's flags. stdout carries exactly
 * the generated text (or, with --ids, the token ids); logs, progress and timings go to
 * stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "tools/args.h"
#include "tools/cli.h"
#include "vkllm.h"

#define MAX_STOPS 16


static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void usage(void) {
    fprintf(stderr,
            "usage: vkllm run -m FILE [-p PROMPT | -f FILE] [options]\n"
            "  -m, --model FILE        GGUF model\n"
            "  -p, --prompt TEXT       prompt (default: empty, generation starts from BOS)\n"
            "  -f, --file FILE         read the prompt from a file\n"
            "  -n, --n-predict N       tokens to generate (default 128, -1 = until EOS/full)\n"
            "  -c, --ctx-size N        context size (default: model's, at most 4096)\n"
            "  -b, --batch-size N      prompt tokens per chunk (default 512)\n"
            "  --temp T                temperature (default 0.8; 0 = greedy)\n"
            "  --top-k K               (default 40, 0 = off)\n"
            "  --top-p P               (default 0.95, 1 = off)\n"
            "  --min-p P               (default 0.05, 0 = off)\n"
            "  --repeat-penalty R      (default 1.0 = off)\n"
            "  --repeat-last-n N       penalty window (default 64)\n"
            "  -s, --seed S            RNG seed (default: time)\n"
            "  -r, --stop TEXT         stop when TEXT appears (repeatable; not printed)\n"
            "  --kv-type f16|f32       KV cache type (default f16)\n"
            "%s"
            "  --ids                   print token ids (prompt then generated) instead of text\n"
            "  --no-bos                do not add BOS before the prompt\n"
            "  --validate              enable the Vulkan validation layer\n"
            "  --profile               per-op GPU time (timestamps) and the stream read, on stderr\n"
            "  --profile-json FILE     the same as JSON (implies --profile)\n", placement_usage);
}

typedef struct run_out {
    int ids;
    int32_t *gen;
    size_t n_gen, cap_gen;
    /* When the first, second and latest generated tokens arrived: each decode step runs
     * between two arrivals, so the first step (cold) and the rest (warm) can be told apart. */
    double first_ms, second_ms, last_ms;
} run_out;

static int on_text(const char *text, size_t len, int32_t token, void *user) {
    run_out *o = user;
    (void)token;
    if (!o->ids) {
        fwrite(text, 1, len, stdout);
        fflush(stdout);
    }
    return 0;
}

static void on_token(int32_t token, void *user) {
    run_out *o = user;
    double t = now_ms();
    if (o->n_gen == 0) o->first_ms = t;
    if (o->n_gen == 1) o->second_ms = t;
    o->last_ms = t;
    if (o->n_gen == o->cap_gen) {
        size_t cap = o->cap_gen ? o->cap_gen * 2 : 256;
        int32_t *g = realloc(o->gen, cap * sizeof *g);
        if (!g) return;
        o->gen = g;
        o->cap_gen = cap;
    }
    o->gen[o->n_gen++] = token;
}

typedef struct progress_state {
    int shown;
    int last;
} progress_state;

static int on_progress(float done, void *user) {
    progress_state *p = user;
    int pct = (int)(done * 100.0f);
    if (pct == p->last) return 0;
    p->last = pct;
    char bar[41];
    int fill = pct * 40 / 100;
    for (int i = 0; i < 40; i++) bar[i] = i < fill ? '=' : ' ';
    bar[40] = 0;
    fprintf(stderr, "\rloading model [%s] %3d%%", bar, pct);
    if (pct >= 100) fprintf(stderr, "\n");
    p->shown = 1;
    return 0;
}

int cmd_run(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *prompt_file = NULL;
    const char *stops[MAX_STOPS];
    size_t n_stops = 0;
    int ids = 0, no_bos = 0, validate = 0, profile = 0;
    const char *profile_json = NULL;
    long long n_predict = 128, n_ctx = 0, n_batch = 0;
    vkllm_generate_params gp;
    vkllm_generate_params_init(&gp);
    vkllm_context_params cp;
    vkllm_context_params_init(&cp);
    vkllm_model_params mp;
    vkllm_model_params_init(&mp);
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r;
        long long iv;
        double fv;
#define OPT(name, alt) ((r = arg_value(argc, argv, &i, name, alt, &v)) != 0)
        if (OPT("-m", "--model")) { if (r < 0) return 2; model = v; }
        else if (OPT("-p", "--prompt")) { if (r < 0) return 2; prompt = v; }
        else if (OPT("-f", "--file")) { if (r < 0) return 2; prompt_file = v; }
        else if (OPT("-n", "--n-predict")) { if (r < 0 || !parse_int("-n", v, -1, 1 << 30, &n_predict)) return 2; }
        else if (OPT("-c", "--ctx-size")) { if (r < 0 || !parse_int("-c", v, 0, 1 << 24, &n_ctx)) return 2; }
        else if (OPT("-b", "--batch-size")) { if (r < 0 || !parse_int("-b", v, 1, 1 << 16, &n_batch)) return 2; }
        else if (OPT("--temp", NULL)) { if (r < 0 || !parse_float("--temp", v, &fv)) return 2; gp.sampling.temp = (float)fv; }
        else if (OPT("--top-k", NULL)) { if (r < 0 || !parse_int("--top-k", v, 0, 1 << 30, &iv)) return 2; gp.sampling.top_k = (int32_t)iv; }
        else if (OPT("--top-p", NULL)) { if (r < 0 || !parse_float("--top-p", v, &fv)) return 2; gp.sampling.top_p = (float)fv; }
        else if (OPT("--min-p", NULL)) { if (r < 0 || !parse_float("--min-p", v, &fv)) return 2; gp.sampling.min_p = (float)fv; }
        else if (OPT("--repeat-penalty", NULL)) { if (r < 0 || !parse_float("--repeat-penalty", v, &fv)) return 2; gp.sampling.repeat_penalty = (float)fv; }
        else if (OPT("--repeat-last-n", NULL)) { if (r < 0 || !parse_int("--repeat-last-n", v, 0, 1 << 20, &iv)) return 2; gp.sampling.repeat_last_n = (int32_t)iv; }
        else if (OPT("-s", "--seed")) { if (r < 0 || !parse_int("--seed", v, 0, INT64_MAX, &iv)) return 2; gp.sampling.seed = (uint64_t)iv; }
        else if (OPT("-r", "--stop")) {
            if (r < 0) return 2;
            if (n_stops == MAX_STOPS) { fprintf(stderr, "vkllm: at most %d stop strings\n", MAX_STOPS); return 2; }
            stops[n_stops++] = v;
        }
        else if ((r = placement_option(argc, argv, &i, &mp)) != 0) { if (r < 0) return 2; }
        else if (OPT("--kv-type", NULL)) {
            if (r < 0) return 2;
            if (!strcmp(v, "f16")) cp.kv_type = VKLLM_KV_F16;
            else if (!strcmp(v, "f32")) cp.kv_type = VKLLM_KV_F32;
            else { fprintf(stderr, "vkllm: --kv-type takes f16 or f32\n"); return 2; }
        }
        else if (!strcmp(argv[i], "--ids")) ids = 1;
        else if (!strcmp(argv[i], "--no-bos")) no_bos = 1;
        else if (!strcmp(argv[i], "--validate")) validate = 1;
        else if (!strcmp(argv[i], "--profile")) profile = 1;
        else if (OPT("--profile-json", NULL)) { if (r < 0) return 2; profile_json = v; profile = 1; }
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(); return 0; }
        else { fprintf(stderr, "vkllm run: unknown option %s\n", argv[i]); usage(); return 2; }
#undef OPT
    }
    if (!placement_finish(&mp)) return 2;
    if (!model) {
        fprintf(stderr, "vkllm run: -m FILE is required\n");
        usage();
        return 2;
    }
    char *file_text = NULL;
    if (prompt_file) {
        file_text = read_text_file(prompt_file, NULL);
        if (!file_text) return 1;
        prompt = file_text;
    }
    if (!prompt) prompt = "";

    mp.validation = validate;
    mp.profile = profile;
    progress_state prog = {0, -1};
    struct stat sb;
    if (isatty(2) || (stat(model, &sb) == 0 && sb.st_size > (256 << 20))) {
        mp.progress = on_progress;
        mp.progress_user = &prog;
    }
    int rc = 1;
    vkllm_model *m = NULL;
    vkllm_context *ctx = NULL;
    int32_t *prompt_ids = NULL;
    run_out out = {.ids = ids};
    double t0 = now_ms();
    cp.n_ctx = (uint32_t)n_ctx;
    cp.n_batch = (uint32_t)n_batch;
    mp.ctx = cp; /* the load plans and reserves this context */
    vkllm_status st = vkllm_model_load(model, &mp, &m);
    if (st) {
        if (prog.shown) fprintf(stderr, "\n");
        fprintf(stderr, "vkllm: %s\n", vkllm_last_error());
        goto done;
    }
    double load_ms = now_ms() - t0;
    t0 = now_ms();
    if ((st = vkllm_context_create(m, &cp, &ctx))) {
        fprintf(stderr, "vkllm: %s\n", vkllm_last_error());
        goto done;
    }
    double ctx_ms = now_ms() - t0; /* builds the pipelines */
    int add_bos = no_bos ? 0 : vkllm_add_bos(m);
    size_t n_prompt = 0, need = 0;
    st = vkllm_tokenize(m, prompt, strlen(prompt), add_bos, NULL, 0, &need);
    prompt_ids = malloc((need ? need : 1) * sizeof *prompt_ids);
    if (!prompt_ids || (st = vkllm_tokenize(m, prompt, strlen(prompt), add_bos, prompt_ids, need, &n_prompt))) {
        fprintf(stderr, "vkllm: tokenizing the prompt: %s\n", vkllm_last_error());
        goto done;
    }
    gp.prompt_tokens = prompt_ids;
    gp.n_prompt_tokens = n_prompt;
    gp.n_predict = (int32_t)n_predict;
    gp.stop = stops;
    gp.n_stop = n_stops;
    gp.on_text = on_text;
    gp.on_token = on_token;
    gp.user = &out;
    vkllm_timings tm;
    st = vkllm_generate(ctx, &gp, &tm);
    if (st) {
        fprintf(stderr, "\nvkllm: %s\n", vkllm_last_error());
        goto done;
    }
    if (ids) {
        for (size_t i = 0; i < n_prompt; i++) printf("%s%d", i ? " " : "", prompt_ids[i]);
        for (size_t i = 0; i < out.n_gen; i++) printf("%s%d", (i || n_prompt) ? " " : "", out.gen[i]);
        printf("\n");
    }
    fflush(stdout);
    vkllm_model_info info;
    vkllm_model_get_info(m, &info);
    fprintf(stderr, "\n%s on %s\n", info.name, info.device);
    /* Start-up: the load opens the devices and uploads the weights; creating the context
     * builds every pipeline (cold: glslang compiles and the driver builds from scratch; warm:
     * the caches serve them), so the prompt and the decode steps run at warm speed. */
    vkllm_prepare_stats ps = {0};
    vkllm_context_get_prepare_stats(ctx, &ps);
    fprintf(stderr, "load:       %10.2f ms (devices, placement, weights)\n", load_ms);
    if (ps.skipped) {
        fprintf(stderr, "pipelines:  built on first use (VKLLM_LAZY_PIPELINES): the prompt and the first "
                        "step include them\n");
    } else {
        char cache[64] = "";
        if (ps.pipeline_cache_told)
            snprintf(cache, sizeof cache, ", %u of %u from the pipeline cache", ps.pipeline_cache_hits,
                     ps.pipeline_cache_told);
        fprintf(stderr, "pipelines:  %10.2f ms %s start: %u built on %u thread%s (shaders: %u compiled, %u from "
                        "the SPIR-V cache%s; %.0f ms compiling, %.0f ms in the driver, first runs %.0f ms more)\n",
                ctx_ms, ps.shaders_compiled ? "cold" : "warm", ps.pipelines, ps.threads, ps.threads == 1 ? "" : "s",
                ps.shaders_compiled, ps.shaders_cached, cache, ps.compile_ms, ps.create_ms, ps.first_run_ms);
    }
    fprintf(stderr, "prompt:     %10.2f ms / %5u tokens (%8.2f tokens/s)\n", tm.prompt_ms, tm.n_prompt,
            tm.prompt_ms > 0 ? tm.n_prompt * 1000.0 / tm.prompt_ms : 0.0);
    fprintf(stderr, "first token %10.2f ms after the start (load + pipelines + prompt)\n",
            load_ms + ctx_ms + tm.prompt_ms);
    fprintf(stderr, "generation: %10.2f ms / %5u tokens (%8.2f tokens/s)\n", tm.gen_ms, tm.n_gen,
            tm.gen_ms > 0 ? tm.n_gen * 1000.0 / tm.gen_ms : 0.0);
    if (out.n_gen >= 2)
        fprintf(stderr, "  first step %9.2f ms\n", out.second_ms - out.first_ms);
    if (out.n_gen >= 3) {
        double later = out.last_ms - out.second_ms;
        size_t steps = out.n_gen - 2;
        fprintf(stderr, "  later      %9.2f ms / %5zu steps (%8.2f tokens/s)\n", later, steps,
                later > 0 ? steps * 1000.0 / later : 0.0);
    }
    static const char *reasons[] = {"end of sequence", "n_predict reached", "stop string", "callback",
                                    "context full"};
    fprintf(stderr, "stopped:    %s\n", reasons[tm.stop]);
    rc = 0;
    if (profile) {
        vkllm_bandwidth bw = {0};
        if (vkllm_measure_read_bandwidth_stats(m, 0, 0, &bw)) {
            fprintf(stderr, "vkllm: measuring the stream read: %s\n", vkllm_last_error());
            rc = 1;
        } else {
            fprintf(stderr, "stream read %.3f GB/s (median of %u passes over %.1f MiB, spread %.3f..%.3f)\n", bw.gbps,
                    bw.passes, bw.bytes / 1048576.0, bw.gbps_min, bw.gbps_max);
        }
        cJSON *root = profile_json ? cJSON_CreateObject() : NULL;
        cJSON *p = root ? cJSON_CreateObject() : NULL;
        if (p) {
            cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "profiles"), p);
            cJSON_AddStringToObject(p, "model_filename", model);
            cJSON_AddStringToObject(p, "test", "run");
            cJSON_AddNumberToObject(p, "n_prompt", tm.n_prompt);
            cJSON_AddNumberToObject(p, "n_gen", tm.n_gen);
        }
        char title[64];
        snprintf(title, sizeof title, "run (%u prompt + %u generated tokens)", tm.n_prompt, tm.n_gen);
        if (bench_profile_report(ctx, title, vkllm_context_pos(ctx), bw.gbps, p)) rc = 1;
        if (root && bench_write_json(profile_json, root)) rc = 1;
        cJSON_Delete(root);
    }
done:
    free(out.gen);
    free(prompt_ids);
    free(file_text);
    vkllm_context_free(ctx);
    vkllm_model_free(m);
    return rc;
}
