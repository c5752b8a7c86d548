/* `vkllm bench`: llama-bench's tests and output formats. For every model (-m, repeatable), every
 * -ngl value and every -b value it runs each test: ppN = a prompt of N tokens from position 0
 * in chunks of n_batch, tgN = N single-token steps, ppP+tgT = both, timed together. A test
 * runs once to warm up (pipelines are built on first use), then -r times. Each row also gives
 * the figure as a share of the bound set by the device's streaming read (measured first, per
 * model): decode reads every weight once per token, a prompt chunk once for the whole chunk.
 * stdout carries only the table (md), CSV, JSON or JSON lines; progress goes to stderr.
 * With --profile the devices time every op with GPU timestamps and a per-op table follows
 * each test on stderr (and in --profile-json FILE). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "tools/args.h"
#include "tools/cli.h"
#include "vkllm.h"


#define MAX_VALUES 32

typedef struct int_list {
    long long v[MAX_VALUES];
    int n;
} int_list;

typedef struct bench_test {
    long long n_prompt, n_gen;
} bench_test;

typedef enum out_format { OUT_MD, OUT_CSV, OUT_JSON, OUT_JSONL } out_format;

typedef struct bench_run {
    out_format fmt;
    int rows;          /* printed so far */
    int show_batch;    /* -b given: an n_batch column in the table */
    cJSON *profiles;   /* --profile-json: one object per test */
} bench_run;

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

typedef struct list_fill {
    int_list *l;
    long long lo, hi;
} list_fill;

static int list_item(const char *opt, const char *item, uint32_t i, void *user) {
    list_fill *f = user;
    (void)i;
    if (f->l->n == MAX_VALUES) {
        fprintf(stderr, "vkllm: %s takes at most %d values in all\n", opt, MAX_VALUES);
        return 0;
    }
    return parse_int(opt, item, f->lo, f->hi, &f->l->v[f->l->n++]);
}

/* "64,512" appended to l (the first use replaces the default). */
static int parse_list(const char *opt, const char *s, long long lo, long long hi, int *given, int_list *l) {
    if (!*given) l->n = 0;
    *given = 1;
    list_fill f = {l, lo, hi};
    uint32_t n;
    return each_item(opt, s, &n, list_item, &f);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: vkllm bench -m FILE [-m FILE ...] [options]\n"
            "  -m, --model FILE        GGUF model; repeat for several (a row each)\n"
            "  -p, --n-prompt LIST     prompt lengths, e.g. 64,512 (default 512; 0 = none)\n"
            "  -n, --n-gen LIST        generated lengths, e.g. 16,32 (default 128; 0 = none)\n"
            "  -pg PP,TG               a prompt of PP then TG generated tokens, one t/s over both\n"
            "                          (repeatable)\n"
            "  -r, --repetitions N     timed runs per test after a warm-up (default 5)\n"
            "  -b, --batch-size LIST   prompt tokens per chunk (default: the longest prompt)\n"
            "  -ngl, --gpu-layers LIST layers on the devices, the rest in host memory (default: automatic)\n"
            "  -o, --output FORMAT     md (default), csv, json or jsonl on stdout\n"
            "  --profile               per-op GPU time after each test, on stderr\n"
            "  --profile-json FILE     the same as JSON (implies --profile)\n"
            "placement (one value each; -ngl above takes a list):\n%s",
            placement_usage);
}

/* ------------------------------------------------------------------ output ---- */

static void md_header(bench_run *br) {
    printf("| model                          |       size |     params | backend    | ngl |%s           test |"
           "                  t/s | of bound |\n",
           br->show_batch ? " n_batch |" : "");
    printf("| ------------------------------ | ---------: | ---------: | ---------- | --: |%s --------------: |"
           " -------------------: | -------: |\n",
           br->show_batch ? " ------: |" : "");
}

static void md_row(bench_run *br, const cJSON *row) {
    static const char *count_units[] = {"", "K", "M", "B", "T", NULL};
    double size = cJSON_GetObjectItem(row, "model_size")->valuedouble;
    double params = cJSON_GetObjectItem(row, "model_n_params")->valuedouble;
    char sz[32], pr[32], tps[48], batch[16] = "";
    snprintf(sz, sizeof sz, "%.2f %s", size >= 1073741824.0 ? size / 1073741824.0 : size / 1048576.0,
             size >= 1073741824.0 ? "GiB" : "MiB");
    int u = 0;
    while (params >= 1000.0 && count_units[u + 1]) params /= 1000.0, u++;
    snprintf(pr, sizeof pr, "%.2f %s", params, count_units[u]);
    snprintf(tps, sizeof tps, "%.2f ± %.2f", cJSON_GetObjectItem(row, "avg_ts")->valuedouble,
             cJSON_GetObjectItem(row, "stddev_ts")->valuedouble);
    if (br->show_batch) snprintf(batch, sizeof batch, " %7d |", cJSON_GetObjectItem(row, "n_batch")->valueint);
    printf("| %-30s | %10s | %10s | %-10s | %3d |%s %15s | %20s | %7.1f%% |\n",
           cJSON_GetStringValue(cJSON_GetObjectItem(row, "model_type")), sz, pr,
           cJSON_GetStringValue(cJSON_GetObjectItem(row, "backend")),
           cJSON_GetObjectItem(row, "n_gpu_layers")->valueint, batch,
           cJSON_GetStringValue(cJSON_GetObjectItem(row, "test")), tps,
           cJSON_GetObjectItem(row, "bound_pct")->valuedouble);
}

static void csv_value(const cJSON *v) {
    if (cJSON_IsString(v)) {
        putchar('"');
        for (const char *c = v->valuestring; *c; c++) {
            if (*c == '"') putchar('"'); /* CSV doubles quotes */
            putchar(*c);
        }
        putchar('"');
    } else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d == floor(d) && fabs(d) < 9007199254740992.0) printf("\"%.0f\"", d);
        else printf("\"%.6f\"", d);
    } else if (cJSON_IsArray(v)) { /* samples: space-separated in one field */
        putchar('"');
        const cJSON *x;
        int first = 1;
        cJSON_ArrayForEach(x, v) {
            double d = x->valuedouble;
            printf(d == floor(d) ? "%s%.0f" : "%s%.6f", first ? "" : " ", d);
            first = 0;
        }
        putchar('"');
    } else {
        printf("\"\"");
    }
}

static void print_row(bench_run *br, const cJSON *row) {
    char *s;
    switch (br->fmt) {
    case OUT_MD:
        if (br->rows == 0) md_header(br);
        md_row(br, row);
        break;
    case OUT_CSV: {
        const cJSON *f;
        if (br->rows == 0) {
            int first = 1;
            cJSON_ArrayForEach(f, row) {
                printf("%s%s", first ? "" : ",", f->string);
                first = 0;
            }
            putchar('\n');
        }
        int first = 1;
        cJSON_ArrayForEach(f, row) {
            if (!first) putchar(',');
            csv_value(f);
            first = 0;
        }
        putchar('\n');
        break;
    }
    case OUT_JSON:
        s = cJSON_Print(row);
        printf("%s%s", br->rows ? ",\n" : "[\n", s ? s : "{}");
        free(s);
        break;
    case OUT_JSONL:
        s = cJSON_PrintUnformatted(row);
        printf("%s\n", s ? s : "{}");
        free(s);
        break;
    }
    br->rows++;
    fflush(stdout);
}

static void finish_output(bench_run *br) {
    if (br->fmt == OUT_JSON) printf(br->rows ? "\n]\n" : "[]\n");
    fflush(stdout);
}

/* ----------------------------------------------------------------- profile ---- */

static int cmp_ms_desc(const void *a, const void *b) {
    double x = ((const vkllm_profile_entry *)a)->ms, y = ((const vkllm_profile_entry *)b)->ms;
    return (x < y) - (x > y);
}

int bench_profile_report(const vkllm_context *ctx, const char *title, double tokens, double stream_gbps,
                         cJSON *into) {
    vkllm_profile_entry *e = NULL;
    uint32_t n = 0;
    if (vkllm_context_get_profile(ctx, &e, &n)) {
        fprintf(stderr, "vkllm: %s\n", vkllm_last_error());
        return 1;
    }
    qsort(e, n, sizeof *e, cmp_ms_desc);
    double total = 0;
    for (uint32_t i = 0; i < n; i++) total += e[i].ms;
    if (tokens < 1) tokens = 1;
    fprintf(stderr, "\nprofile %s: %.2f ms of GPU time for %.0f tokens, %.3f ms per token", title, total, tokens,
            total / tokens);
    if (stream_gbps > 0) fprintf(stderr, "; stream read %.2f GB/s", stream_gbps);
    fprintf(stderr, "\n%-20s %8s %11s %9s %7s %9s %9s %9s\n", "op", "calls", "ms", "ms/token", "share", "GB/s",
            "GFLOP/s", "of read");
    cJSON *rows = into ? cJSON_AddArrayToObject(into, "entries") : NULL;
    for (uint32_t i = 0; i < n; i++) {
        char name[48];
        snprintf(name, sizeof name, "%s%s%s", e[i].op, e[i].type[0] ? " " : "", e[i].type);
        double share = total > 0 ? 100.0 * e[i].ms / total : 0;
        double gbps = e[i].ms > 0 ? (double)e[i].bytes / (e[i].ms * 1e6) : 0;
        double gflops = e[i].ms > 0 ? (double)e[i].flops / (e[i].ms * 1e6) : 0;
        double of_read = stream_gbps > 0 ? 100.0 * gbps / stream_gbps : 0;
        fprintf(stderr, "%-20s %8llu %11.3f %9.3f %6.1f%% %9.2f %9.2f %8.1f%%\n", name, (unsigned long long)e[i].calls,
                e[i].ms, e[i].ms / tokens, share, gbps, gflops, of_read);
        if (rows) {
            cJSON *r = cJSON_CreateObject();
            cJSON_AddStringToObject(r, "op", e[i].op);
            cJSON_AddStringToObject(r, "type", e[i].type);
            cJSON_AddStringToObject(r, "name", name);
            cJSON_AddNumberToObject(r, "calls", (double)e[i].calls);
            cJSON_AddNumberToObject(r, "ms", e[i].ms);
            cJSON_AddNumberToObject(r, "ms_per_token", e[i].ms / tokens);
            cJSON_AddNumberToObject(r, "share_pct", share);
            cJSON_AddNumberToObject(r, "bytes", (double)e[i].bytes);
            cJSON_AddNumberToObject(r, "flops", (double)e[i].flops);
            cJSON_AddNumberToObject(r, "gbps", gbps);
            cJSON_AddNumberToObject(r, "gflops", gflops);
            cJSON_AddNumberToObject(r, "stream_pct", of_read);
            cJSON_AddItemToArray(rows, r);
        }
    }
    if (into) {
        cJSON_AddNumberToObject(into, "tokens", tokens);
        cJSON_AddNumberToObject(into, "total_ms", total);
        cJSON_AddNumberToObject(into, "stream_gbps", stream_gbps);
    }
    vkllm_free(e);
    return 0;
}

int bench_write_json(const char *path, const cJSON *root) {
    char *s = cJSON_Print(root);
    FILE *f = s ? fopen(path, "w") : NULL;
    int ok = f && fputs(s, f) >= 0 && fputc('\n', f) != EOF;
    if (f && fclose(f)) ok = 0;
    free(s);
    if (!ok) fprintf(stderr, "vkllm: cannot write %s\n", path);
    return ok ? 0 : 1;
}

/* ------------------------------------------------------------------- tests ---- */

/* One timed run of a test from position 0; returns its wall time in ns, or -1 (message
 * printed). A prompt goes in as one call (the context chunks it by n_batch). */
static double run_once(vkllm_context *ctx, const int32_t *toks, long long n_prompt, long long n_gen) {
    vkllm_context_reset(ctx);
    double t0 = now_ns();
    if (n_prompt && vkllm_eval(ctx, toks, (uint32_t)n_prompt)) goto fail;
    for (long long i = 0; i < n_gen; i++)
        if (vkllm_eval(ctx, &toks[n_prompt + i], 1)) goto fail;
    return now_ns() - t0;
fail:
    fprintf(stderr, "vkllm: %s\n", vkllm_last_error());
    return -1;
}

static void mean_sd(const double *v, long long n, double *mean, double *sd) {
    double s = 0, s2 = 0;
    for (long long i = 0; i < n; i++) s += v[i];
    *mean = s / (double)n;
    for (long long i = 0; i < n; i++) s2 += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(s2 / (double)(n - 1)) : 0;
}

/* What one model load shares with its rows. */
typedef struct bench_model {
    const char *path;
    vkllm_model_info info;
    char model_type[96];
    char devices[1024];
    uint32_t n_devices, gpu_layers;
    const char *backend;   /* "Vulkan", "CPU" (the native path), or "Vulkan+CPU" */
    vkllm_bandwidth bw;
} bench_model;

static cJSON *make_row(const bench_model *bm, uint32_t n_batch, const bench_test *t, const char *test,
                       const char *when, const double *ns, long long reps) {
    double *ts = malloc((size_t)reps * sizeof *ts);
    if (!ts) return NULL;
    long long tokens = t->n_prompt + t->n_gen;
    for (long long r = 0; r < reps; r++) ts[r] = (double)tokens * 1e9 / ns[r];
    double avg_ns, sd_ns, avg_ts, sd_ts;
    mean_sd(ns, reps, &avg_ns, &sd_ns);
    mean_sd(ts, reps, &avg_ts, &sd_ts);
    /* The bound: the weights are read once per prompt chunk and once per generated token. */
    long long reads = (t->n_prompt + n_batch - 1) / n_batch + t->n_gen;
    double bound_ts = bm->bw.gbps > 0 ? (double)tokens * bm->bw.gbps * 1e9 / ((double)reads * (double)bm->info.size_bytes) : 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model_filename", bm->path);
    cJSON_AddStringToObject(o, "model_type", bm->model_type);
    cJSON_AddNumberToObject(o, "model_size", (double)bm->info.size_bytes);
    cJSON_AddNumberToObject(o, "model_n_params", (double)bm->info.n_params);
    cJSON_AddStringToObject(o, "backend", bm->backend);
    cJSON_AddStringToObject(o, "devices", bm->devices);
    cJSON_AddNumberToObject(o, "n_devices", bm->n_devices);
    cJSON_AddNumberToObject(o, "n_batch", n_batch);
    cJSON_AddNumberToObject(o, "n_gpu_layers", bm->gpu_layers);
    cJSON_AddNumberToObject(o, "n_prompt", (double)t->n_prompt);
    cJSON_AddNumberToObject(o, "n_gen", (double)t->n_gen);
    cJSON_AddStringToObject(o, "test", test);
    cJSON_AddStringToObject(o, "test_time", when);
    cJSON_AddNumberToObject(o, "avg_ns", round(avg_ns));
    cJSON_AddNumberToObject(o, "stddev_ns", round(sd_ns));
    cJSON_AddNumberToObject(o, "avg_ts", avg_ts);
    cJSON_AddNumberToObject(o, "stddev_ts", sd_ts);
    cJSON *a = cJSON_AddArrayToObject(o, "samples_ns");
    for (long long r = 0; r < reps; r++) cJSON_AddItemToArray(a, cJSON_CreateNumber(round(ns[r])));
    a = cJSON_AddArrayToObject(o, "samples_ts");
    for (long long r = 0; r < reps; r++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ts[r]));
    cJSON_AddNumberToObject(o, "stream_gbps", bm->bw.gbps);
    cJSON_AddNumberToObject(o, "stream_gbps_min", bm->bw.gbps_min);
    cJSON_AddNumberToObject(o, "stream_gbps_max", bm->bw.gbps_max);
    cJSON_AddNumberToObject(o, "stream_bytes", (double)bm->bw.bytes);
    cJSON_AddNumberToObject(o, "bound_ts", bound_ts);
    cJSON_AddNumberToObject(o, "bound_pct", bound_ts > 0 ? 100.0 * avg_ts / bound_ts : 0);
    free(ts);
    return o;
}

/* Warm-up, then reps timed runs of test t; prints its row and, with profiling, its profile. */
static int run_test(bench_run *br, const bench_model *bm, vkllm_context *ctx, uint32_t n_batch, const int32_t *toks,
                    const bench_test *t, long long reps, int profile) {
    char test[48];
    if (t->n_prompt && t->n_gen) snprintf(test, sizeof test, "pp%lld+tg%lld", t->n_prompt, t->n_gen);
    else snprintf(test, sizeof test, "%s%lld", t->n_prompt ? "pp" : "tg", t->n_prompt ? t->n_prompt : t->n_gen);
    char when[32];
    time_t now = time(NULL);
    struct tm tmv;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tmv));
    /* As llama-bench: the warm-up is one chunk of the prompt and one generated token. */
    long long warm_p = t->n_prompt < n_batch ? t->n_prompt : n_batch;
    fprintf(stderr, "bench: %s %s: warm-up\n", bm->model_type, test);
    if (run_once(ctx, toks, warm_p, t->n_gen ? 1 : 0) < 0) return 1;
    if (profile) vkllm_context_reset_profile(ctx);
    vkllm_context_reset_step_stats(ctx);
    double *ns = malloc((size_t)reps * sizeof *ns);
    if (!ns) return 1;
    for (long long r = 0; r < reps; r++) {
        if ((ns[r] = run_once(ctx, toks, t->n_prompt, t->n_gen)) < 0) {
            free(ns);
            return 1;
        }
        fprintf(stderr, "bench: %s %s: run %lld/%lld %.2f t/s\n", bm->model_type, test, r + 1, reps,
                (double)(t->n_prompt + t->n_gen) * 1e9 / ns[r]);
    }
    cJSON *row = make_row(bm, n_batch, t, test, when, ns, reps);
    free(ns);
    if (!row) return 1;
    /* The host's cost per generated token: wall time of the single-token evaluations less the
     * GPU time their submissions took (every row has the fields; 0 without generated tokens). */
    vkllm_step_stats ss = {0};
    if (!t->n_gen || vkllm_context_get_step_stats(ctx, &ss) || !ss.n_steps) memset(&ss, 0, sizeof ss);
    double steps = ss.n_steps ? (double)ss.n_steps : 1;
    double host_us = (ss.wall_ms - ss.gpu_ms) * 1e3 / steps, thread_us = (ss.wall_ms - ss.wait_ms) * 1e3 / steps;
    cJSON_AddNumberToObject(row, "host_us_per_token", host_us);
    cJSON_AddNumberToObject(row, "thread_us_per_token", thread_us);
    cJSON_AddNumberToObject(row, "gpu_us_per_token", ss.gpu_ms * 1e3 / steps);
    cJSON_AddNumberToObject(row, "steps_recorded", (double)ss.n_recorded);
    if (ss.n_steps)
        fprintf(stderr, "bench: %s %s: host %.1f us per token = wall %.1f - GPU %.1f; on the calling thread "
                "%.1f us (the rest is waiting); %llu of %llu steps recorded, the rest replayed\n",
                bm->model_type, test, host_us, ss.wall_ms * 1e3 / steps, ss.gpu_ms * 1e3 / steps, thread_us,
                (unsigned long long)ss.n_recorded, (unsigned long long)ss.n_steps);
    print_row(br, row);
    int rc = 0;
    if (profile) {
        cJSON *p = br->profiles ? cJSON_CreateObject() : NULL;
        if (p) {
            cJSON_AddStringToObject(p, "model_filename", bm->path);
            cJSON_AddStringToObject(p, "model_type", bm->model_type);
            cJSON_AddStringToObject(p, "test", test);
            cJSON_AddNumberToObject(p, "n_prompt", (double)t->n_prompt);
            cJSON_AddNumberToObject(p, "n_gen", (double)t->n_gen);
            cJSON_AddNumberToObject(p, "n_batch", n_batch);
            cJSON_AddNumberToObject(p, "repetitions", (double)reps);
            cJSON_AddItemToArray(br->profiles, p);
        }
        char title[160];
        snprintf(title, sizeof title, "%s %s (%lld runs)", bm->model_type, test, reps);
        rc = bench_profile_report(ctx, title, (double)reps * (double)(t->n_prompt + t->n_gen), bm->bw.gbps, p);
    }
    cJSON_Delete(row);
    return rc;
}

/* Loads one model with one -ngl value, measures the yardstick, and runs every test for every
 * n_batch value. */
static int bench_one(bench_run *br, const char *path, const vkllm_model_params *mp_in, const int_list *batches,
                     const bench_test *tests, int n_tests, long long reps, int profile) {
    long long max_p = 0, max_ctx = 16, max_b = 0;
    for (int i = 0; i < n_tests; i++) {
        if (tests[i].n_prompt > max_p) max_p = tests[i].n_prompt;
        if (tests[i].n_prompt + tests[i].n_gen > max_ctx) max_ctx = tests[i].n_prompt + tests[i].n_gen;
    }
    for (int i = 0; i < batches->n; i++)
        if (batches->v[i] > max_b) max_b = batches->v[i];
    long long first_batch = batches->n ? batches->v[0] : (max_p > 0 ? max_p : 1);
    vkllm_model_params mp = *mp_in;
    mp.profile = profile;
    /* The load plans and reserves the context of the first n_batch; others are created. */
    vkllm_context_params_init(&mp.ctx);
    mp.ctx.n_ctx = (uint32_t)max_ctx;
    mp.ctx.n_batch = (uint32_t)first_batch;
    bench_model bm = {.path = path};
    vkllm_model *m = NULL;
    int32_t *toks = NULL;
    int rc = 1;
    fprintf(stderr, "bench: loading %s\n", path);
    if (vkllm_model_load(path, &mp, &m)) {
        fprintf(stderr, "vkllm: %s\n", vkllm_last_error());
        goto done;
    }
    vkllm_model_get_info(m, &bm.info);
    static const char *count_units[] = {"", "K", "M", "B", "T", NULL};
    double params = (double)bm.info.n_params;
    int u = 0;
    while (params >= 1000.0 && count_units[u + 1]) params /= 1000.0, u++;
    char type[40];
    snprintf(type, sizeof type, "%s", bm.info.type_name);
    for (char *c = type; *c; c++)
        if (*c >= 'a' && *c <= 'z') *c = (char)(*c - 'a' + 'A');
    snprintf(bm.model_type, sizeof bm.model_type, "%s %.2f%s %s", bm.info.arch, params, count_units[u], type);
    const vkllm_plan *plan = vkllm_model_get_plan(m);
    vkllm_plan_summary sum;
    vkllm_plan_get_summary(plan, &sum);
    bm.n_devices = sum.n_devices;
    bm.gpu_layers = sum.gpu_layers;
    int n_cpu = 0;
    for (uint32_t d = 0; d < sum.n_devices; d++) {
        vkllm_plan_device pd;
        if (vkllm_plan_get_device(plan, d, &pd)) continue;
        n_cpu += pd.device_index == VKLLM_DEVICE_CPU_INDEX;
        size_t len = strlen(bm.devices);
        snprintf(bm.devices + len, sizeof bm.devices - len, "%s%s", d ? ", " : "", pd.name);
    }
    bm.backend = n_cpu == 0 ? "Vulkan" : (uint32_t)n_cpu == sum.n_devices ? "CPU" : "Vulkan+CPU";
    fprintf(stderr, "bench: measuring the stream read on %s\n", bm.info.device);
    if (vkllm_measure_read_bandwidth_stats(m, 0, 0, &bm.bw)) {
        fprintf(stderr, "vkllm: %s\n", vkllm_last_error());
        goto done;
    }
    fprintf(stderr, "stream read %.3f GB/s (median of %u passes over %.1f MiB, spread %.3f..%.3f) on %s: "
                    "decode bound %.2f t/s for %.1f MiB of weights\n",
            bm.bw.gbps, bm.bw.passes, bm.bw.bytes / 1048576.0, bm.bw.gbps_min, bm.bw.gbps_max, bm.info.device,
            bm.bw.gbps * 1e9 / (double)bm.info.size_bytes, bm.info.size_bytes / 1048576.0);
    /* Deterministic pseudo-random tokens, as llama-bench feeds random ids. */
    toks = malloc((size_t)max_ctx * sizeof *toks);
    if (!toks) goto done;
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (long long i = 0; i < max_ctx; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((s >> 33) % (uint64_t)bm.info.n_vocab);
    }
    for (int bi = 0; bi < (batches->n ? batches->n : 1); bi++) {
        uint32_t n_batch = (uint32_t)(batches->n ? batches->v[bi] : first_batch);
        vkllm_context_params cp = mp.ctx;
        cp.n_batch = n_batch;
        vkllm_context *ctx = NULL;
        if (vkllm_context_create(m, &cp, &ctx)) {
            fprintf(stderr, "vkllm: %s\n", vkllm_last_error());
            goto done;
        }
        int bad = 0;
        for (int i = 0; i < n_tests && !bad; i++) bad = run_test(br, &bm, ctx, n_batch, toks, &tests[i], reps, profile);
        vkllm_context_free(ctx);
        if (bad) goto done;
    }
    rc = 0;
done:
    free(toks);
    vkllm_model_free(m);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    const char *models[MAX_VALUES];
    int n_models = 0;
    int_list prompts = {{512}, 1}, gens = {{128}, 1}, batches = {{0}, 0}, ngls = {{0}, 0};
    int p_given = 0, n_given = 0, b_given = 0, ngl_given = 0, profile = 0;
    bench_test pg[MAX_VALUES];
    int n_pg = 0;
    long long reps = 5;
    const char *profile_json = NULL;
    bench_run br = {.fmt = OUT_MD};
    vkllm_model_params mp;
    vkllm_model_params_init(&mp);
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
#define OPT(name, alt) ((r = arg_value(argc, argv, &i, name, alt, &v)) != 0)
        if (OPT("-m", "--model")) {
            if (r < 0) return 2;
            if (n_models == MAX_VALUES) { fprintf(stderr, "vkllm: at most %d models\n", MAX_VALUES); return 2; }
            models[n_models++] = v;
        }
        else if (OPT("-p", "--n-prompt")) { if (r < 0 || !parse_list("-p", v, 0, 1 << 16, &p_given, &prompts)) return 2; }
        else if (OPT("-n", "--n-gen")) { if (r < 0 || !parse_list("-n", v, 0, 1 << 16, &n_given, &gens)) return 2; }
        else if (OPT("-b", "--batch-size")) { if (r < 0 || !parse_list("-b", v, 1, 1 << 16, &b_given, &batches)) return 2; }
        else if (OPT("-ngl", "--gpu-layers")) { if (r < 0 || !parse_list("-ngl", v, 0, 1 << 20, &ngl_given, &ngls)) return 2; }
        else if (OPT("-r", "--repetitions")) { if (r < 0 || !parse_int("-r", v, 1, 1000, &reps)) return 2; }
        else if (OPT("-pg", NULL)) {
            int_list two = {{0}, 0};
            int given = 0;
            if (r < 0 || !parse_list("-pg", v, 1, 1 << 16, &given, &two)) return 2;
            if (two.n != 2) { fprintf(stderr, "vkllm: -pg expects PP,TG, got '%s'\n", v); return 2; }
            if (n_pg == MAX_VALUES) { fprintf(stderr, "vkllm: at most %d -pg tests\n", MAX_VALUES); return 2; }
            pg[n_pg++] = (bench_test){two.v[0], two.v[1]};
        }
        else if (OPT("-o", "--output")) {
            if (r < 0) return 2;
            if (!strcmp(v, "md")) br.fmt = OUT_MD;
            else if (!strcmp(v, "csv")) br.fmt = OUT_CSV;
            else if (!strcmp(v, "json")) br.fmt = OUT_JSON;
            else if (!strcmp(v, "jsonl")) br.fmt = OUT_JSONL;
            else { fprintf(stderr, "vkllm bench: -o takes md, csv, json or jsonl, got '%s'\n", v); return 2; }
        }
        else if (OPT("--profile-json", NULL)) { if (r < 0) return 2; profile_json = v; profile = 1; }
        else if (!strcmp(argv[i], "--profile")) profile = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        else if ((r = placement_option(argc, argv, &i, &mp)) != 0) { if (r < 0) return 2; }
        else { fprintf(stderr, "vkllm bench: unknown option %s\n", argv[i]); usage(stderr); return 2; }
#undef OPT
    }
    if (!placement_finish(&mp)) return 2;
    if (!n_models) {
        fprintf(stderr, "vkllm bench: -m FILE is required\n");
        usage(stderr);
        return 2;
    }
    br.show_batch = b_given;
    /* llama-bench's order: every prompt test, every generation test, then -pg. */
    bench_test tests[3 * MAX_VALUES];
    int n_tests = 0;
    for (int i = 0; i < prompts.n; i++)
        if (prompts.v[i] > 0) tests[n_tests++] = (bench_test){prompts.v[i], 0};
    for (int i = 0; i < gens.n; i++)
        if (gens.v[i] > 0) tests[n_tests++] = (bench_test){0, gens.v[i]};
    for (int i = 0; i < n_pg; i++) tests[n_tests++] = pg[i];
    if (!n_tests) {
        fprintf(stderr, "vkllm bench: no tests (every -p and -n is 0 and no -pg)\n");
        return 2;
    }
    if (profile_json) br.profiles = cJSON_CreateArray();
    int rc = 0;
    for (int mi = 0; mi < n_models && !rc; mi++)
        for (int gi = 0; gi < (ngl_given ? ngls.n : 1) && !rc; gi++) {
            vkllm_model_params one = mp;
            if (ngl_given) one.gpu_layers = (int32_t)ngls.v[gi];
            rc = bench_one(&br, models[mi], &one, &batches, tests, n_tests, reps, profile);
        }
    finish_output(&br);
    if (profile_json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddItemToObject(root, "profiles", br.profiles);
        if (bench_write_json(profile_json, root) && !rc) rc = 1;
        cJSON_Delete(root);
    }
    return rc;
}
