/* Whole-model throughput as a fraction of what the device can do. Measures, in one run on
 * one device: the streaming-read bandwidth (the decode bound is bandwidth / weight bytes,
 * since a token step reads every weight once), then llama-bench's pp and tg tests through
 * the public API. Prints t/s and the fraction of the bound for each.
 *
 *   bench_model -m model.gguf [-p 64] [-n 32] [-r 3] [--stream-mib 64]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/kern_stream.h"
#include "vk/vk.h"
#include "vkllm.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int measure_stream(uint64_t bytes, double *gbps, char *name, size_t cap) {
    vk_instance *inst = NULL;
    vk_device *dev = NULL;
    vk_device_opts o = {.enable_timestamps = 1};
    int ok = 0;
    if (vk_instance_create(0, &inst) == VKLLM_OK && vk_device_count(inst) > 0) {
        uint32_t n = vk_device_count(inst);
        vkllm_device_info *all = calloc(n, sizeof *all);
        for (uint32_t i = 0; all && i < n; i++) all[i] = *vk_device_info(inst, i);
        uint32_t idx = all ? vkllm_default_device(all, n) : 0;
        free(all);
        if (vk_device_open(inst, idx, &o, &dev) == VKLLM_OK && kern_stream_gbps(dev, bytes, 5, gbps) == VKLLM_OK) {
            snprintf(name, cap, "%s", vk_device_props(dev)->name);
            ok = 1;
        }
    }
    if (!ok) fprintf(stderr, "bench_model: stream measurement failed: %s\n", vkllm_last_error());
    vk_device_close(dev);
    vk_instance_destroy(inst);
    return ok;
}

static double run_test(vkllm_context *ctx, const int32_t *toks, int pp, int n) {
    vkllm_context_reset(ctx);
    double t0 = now_ms();
    if (pp) {
        if (vkllm_eval(ctx, toks, (uint32_t)n)) return -1;
    } else {
        for (int i = 0; i < n; i++)
            if (vkllm_eval(ctx, &toks[i], 1)) return -1;
    }
    return n * 1000.0 / (now_ms() - t0);
}

int main(int argc, char **argv) {
    const char *path = NULL;
    int n_prompt = 64, n_gen = 32, reps = 3, stream_mib = 64;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-m") && i + 1 < argc) path = argv[++i];
        else if (!strcmp(argv[i], "-p") && i + 1 < argc) n_prompt = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) n_gen = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--stream-mib") && i + 1 < argc) stream_mib = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_model -m FILE [-p 64] [-n 32] [-r 3] [--stream-mib 64]\n");
            return 2;
        }
    }
    if (!path || n_prompt < 1 || n_gen < 1 || reps < 1 || stream_mib < 1) {
        fprintf(stderr, "usage: bench_model -m FILE [-p 64] [-n 32] [-r 3] [--stream-mib 64]\n");
        return 2;
    }
    double gbps = 0;
    char dev_name[256] = "";
    if (!measure_stream((uint64_t)stream_mib << 20, &gbps, dev_name, sizeof dev_name)) return 1;

    vkllm_model *m = NULL;
    vkllm_context *ctx = NULL;
    if (vkllm_model_load(path, NULL, &m)) {
        fprintf(stderr, "bench_model: %s\n", vkllm_last_error());
        return 1;
    }
    vkllm_model_info info;
    vkllm_model_get_info(m, &info);
    vkllm_context_params cp;
    vkllm_context_params_init(&cp);
    cp.n_ctx = (uint32_t)(n_prompt > n_gen ? n_prompt : n_gen);
    cp.n_batch = (uint32_t)n_prompt;
    int rc = 1;
    int32_t *toks = malloc((size_t)cp.n_ctx * sizeof *toks);
    if (!toks || vkllm_context_create(m, &cp, &ctx)) {
        fprintf(stderr, "bench_model: %s\n", vkllm_last_error());
        goto done;
    }
    uint64_t s = 12345;
    for (uint32_t i = 0; i < cp.n_ctx; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((s >> 33) % info.n_vocab);
    }
    double bound = gbps * 1e9 / (double)info.size_bytes; /* tokens/s if decode only read weights */
    printf("device: %s\n", dev_name);
    printf("model:  %s, %s weights, %.1f MiB, %.1f M params\n", info.name, info.type_name,
           info.size_bytes / 1048576.0, info.n_params / 1e6);
    printf("stream: %.3f GB/s reading %d MiB  ->  decode bound %.2f t/s\n\n", gbps, stream_mib, bound);
    printf("| test   |          t/s | bound t/s | of bound |\n");
    printf("| -----: | -----------: | --------: | -------: |\n");
    for (int pp = 1; pp >= 0; pp--) {
        int n = pp ? n_prompt : n_gen;
        if (run_test(ctx, toks, pp, n) < 0) goto fail;
        double sum = 0, sum2 = 0;
        for (int r = 0; r < reps; r++) {
            double t = run_test(ctx, toks, pp, n);
            if (t < 0) goto fail;
            sum += t;
            sum2 += t * t;
        }
        double mean = sum / reps, sd = reps > 1 ? sqrt(fmax(0, (sum2 - sum * sum / reps) / (reps - 1))) : 0;
        /* A prompt chunk reads the weights once for all n tokens. */
        double b = pp ? bound * n : bound;
        printf("| %s%-4d | %6.2f ± %4.2f | %9.2f | %7.1f%% |\n", pp ? "pp" : "tg", n, mean, sd, b, 100.0 * mean / b);
        fflush(stdout);
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "bench_model: %s\n", vkllm_last_error());
done:
    free(toks);
    vkllm_context_free(ctx);
    vkllm_model_free(m);
    return rc;
}
