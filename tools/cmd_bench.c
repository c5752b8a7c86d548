/* `vkllm bench -m FILE -p 64 -n 32 -r 3`: llama-bench style throughput table. pp = prompt
 * processing of N tokens in one chunk from position 0; tg = N single-token steps. Each test
 * runs once to warm up, then r times; the table shows mean ± standard deviation of t/s, and
 * each figure as a share of the device's bandwidth bound, measured first in the same run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/args.h"
#include "tools/cli.h"
#include "vkllm.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void human(char *buf, size_t cap, double v, const char *const *units) {
    int u = 0;
    while (v >= 1000.0 && units[u + 1]) v /= 1000.0, u++;
    snprintf(buf, cap, "%.2f %s", v, units[u]);
}

/* One timed run; returns tokens/s or -1 on error (message printed). */
static double run_test(vkllm_context *ctx, const int32_t *toks, int pp, int n) {
    vkllm_context_reset(ctx);
    double t0 = now_ms();
    if (pp) {
        if (vkllm_eval(ctx, toks, (uint32_t)n)) return -1;
    } else {
        for (int i = 0; i < n; i++)
            if (vkllm_eval(ctx, &toks[i], 1)) return -1;
    }
    double ms = now_ms() - t0;
    return n * 1000.0 / ms;
}

int cmd_bench(int argc, char **argv) {
    const char *model = NULL;
    vkllm_model_params mp;
    vkllm_model_params_init(&mp);
    long long n_prompt = 512, n_gen = 128, reps = 5, n_batch = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if ((r = arg_value(argc, argv, &i, "-m", "--model", &v))) { if (r < 0) return 2; model = v; }
        else if ((r = arg_value(argc, argv, &i, "-p", "--n-prompt", &v))) { if (r < 0 || !parse_int("-p", v, 0, 1 << 16, &n_prompt)) return 2; }
        else if ((r = arg_value(argc, argv, &i, "-n", "--n-gen", &v))) { if (r < 0 || !parse_int("-n", v, 0, 1 << 16, &n_gen)) return 2; }
        else if ((r = arg_value(argc, argv, &i, "-r", "--repetitions", &v))) { if (r < 0 || !parse_int("-r", v, 1, 1000, &reps)) return 2; }
        else if ((r = arg_value(argc, argv, &i, "-b", "--batch-size", &v))) { if (r < 0 || !parse_int("-b", v, 1, 1 << 16, &n_batch)) return 2; }
        else if ((r = placement_option(argc, argv, &i, &mp)) != 0) { if (r < 0) return 2; }
        else {
            fprintf(stderr, "vkllm bench: unknown option %s\n"
                            "usage: vkllm bench -m FILE [-p N] [-n N] [-r REPS] [-b CHUNK] [placement options]\n%s",
                    argv[i], placement_usage);
            return 2;
        }
    }
    if (!model) {
        fprintf(stderr, "usage: vkllm bench -m FILE [-p N] [-n N] [-r REPS] [--device LIST]\n");
        return 2;
    }
    vkllm_model *m = NULL;
    vkllm_context *ctx = NULL;
    int rc = 1;
    int32_t *toks = NULL;
    /* The context is planned with the model, so the load reserves exactly what it needs. */
    vkllm_context_params cp;
    vkllm_context_params_init(&cp);
    long long need = n_prompt > n_gen ? n_prompt : n_gen;
    cp.n_ctx = (uint32_t)(need > 16 ? need : 16);
    cp.n_batch = (uint32_t)(n_batch ? n_batch : n_prompt > 0 ? n_prompt : 1);
    mp.ctx = cp;
    if (vkllm_model_load(model, &mp, &m)) {
        fprintf(stderr, "vkllm: %s\n", vkllm_last_error());
        goto done;
    }
    if (vkllm_context_create(m, &cp, &ctx)) {
        fprintf(stderr, "vkllm: %s\n", vkllm_last_error());
        goto done;
    }
    vkllm_model_info info;
    vkllm_model_get_info(m, &info);
    /* Deterministic pseudo-random tokens, as llama-bench feeds random ids. */
    toks = malloc((size_t)(need > 0 ? need : 1) * sizeof *toks);
    if (!toks) goto done;
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (long long i = 0; i < need; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((s >> 33) % (uint64_t)info.n_vocab);
    }
    static const char *count_units[] = {"", "K", "M", "B", "T", NULL};
    char size[32], params[32], type[40];
    snprintf(size, sizeof size, "%.2f %s", info.size_bytes >= (1ull << 30) ? info.size_bytes / 1073741824.0
                                                                            : info.size_bytes / 1048576.0,
             info.size_bytes >= (1ull << 30) ? "GiB" : "MiB");
    human(params, sizeof params, (double)info.n_params, count_units);
    snprintf(type, sizeof type, "%s", info.type_name);
    for (char *c = type; *c; c++)
        if (*c >= 'a' && *c <= 'z') *c = (char)(*c - 'a' + 'A');
    double gbps = 0;
    if (vkllm_measure_read_bandwidth(m, 0, &gbps)) {
        fprintf(stderr, "vkllm: %s\n", vkllm_last_error());
        goto done;
    }
    /* Decode reads every weight once per token; a prompt chunk reads them once for all. */
    double bound = gbps * 1e9 / (double)info.size_bytes;
    fprintf(stderr, "stream read %.3f GB/s on %s: decode bound %.2f t/s for %.1f MiB of weights\n", gbps,
            info.device, bound, info.size_bytes / 1048576.0);
    printf("| model                          |       size |     params | backend    | test   |              t/s | of bound |\n");
    printf("| ------------------------------ | ---------: | ---------: | ---------- | -----: | ---------------: | -------: |\n");
    fflush(stdout);
    for (int pp = 1; pp >= 0; pp--) {
        int n = (int)(pp ? n_prompt : n_gen);
        if (n == 0) continue;
        if (run_test(ctx, toks, pp, n) < 0) { /* warm-up: compiles pipelines, touches memory */
            fprintf(stderr, "vkllm: %s\n", vkllm_last_error());
            goto done;
        }
        double sum = 0, sum2 = 0;
        for (long long r = 0; r < reps; r++) {
            double tps = run_test(ctx, toks, pp, n);
            if (tps < 0) {
                fprintf(stderr, "vkllm: %s\n", vkllm_last_error());
                goto done;
            }
            sum += tps;
            sum2 += tps * tps;
        }
        double mean = sum / (double)reps;
        double var = reps > 1 ? (sum2 - sum * sum / (double)reps) / (double)(reps - 1) : 0;
        char name[160], test[16], tps[40];
        snprintf(name, sizeof name, "%s %s %s", info.arch, params, type);
        snprintf(test, sizeof test, "%s%d", pp ? "pp" : "tg", n);
        snprintf(tps, sizeof tps, "%.2f ± %.2f", mean, var > 0 ? sqrt(var) : 0.0);
        double share = 100.0 * mean / (pp ? bound * n : bound);
        printf("| %-30s | %10s | %10s | %-10s | %6s | %16s | %7.1f%% |\n", name, size, params, "Vulkan", test, tps,
               share);
        fflush(stdout);
    }
    fprintf(stderr, "device: %s%s\n", info.device, info.n_devices > 1 ? " and more (split)" : "");
    rc = 0;
done:
    free(toks);
    vkllm_context_free(ctx);
    vkllm_model_free(m);
    return rc;
}
