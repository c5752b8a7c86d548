/* `vkllm tune`: times every kernel variant of the weight products on one device for a model's
 * (or the standard LLaMA) matrix shapes, after checking each against the CPU, and writes the
 * fastest per op and weight type into the device's profile, which later loads follow. The
 * table (built-in choice against the chosen one) goes to stdout, progress to stderr. */
#include <stdio.h>
#include <string.h>

#include "tools/args.h"
#include "tools/cli.h"
#include "vkllm.h"
#include "vkllm_tune.h"

#define QUICK_SHRINK 8

static void usage(FILE *f) {
    fprintf(f,
            "usage: vkllm tune [-m FILE] [options]\n"
            "\n"
            "Checks every variant of the matvec (decode) and matmul (prefill) kernels against the CPU\n"
            "reference, times the ones that match, and writes the fastest per weight type into a\n"
            "profile for the device in the cache folder; later runs on that device use it\n"
            "(VKLLM_TUNE=0 in the environment ignores profiles).\n"
            "\n"
            "options:\n"
            "  -m, --model FILE      tune for this model's weight types and matrix shapes\n"
            "  --shapes LIST         without -m: standard LLaMA shapes, any of 7b,13b,65b (default 7b)\n"
            "  --types LIST          weight types to tune (default: the model's, or q4_0,q8_0,q4_K,q6_K)\n"
            "  --device I            device index (vkllm devices; default: the first discrete GPU...)\n"
            "  -p, --prefill N       tokens of the prefill product (default 64)\n"
            "  -r, --repetitions N   timed calls per variant and shape, median taken (default 3)\n"
            "  --shrink N            divide every matrix dimension by N (faster, less representative)\n"
            "  --quick               --shrink %d -r 2: a run of seconds on a CPU device\n"
            "  -o, --output FILE     write the profile here instead of the cache folder\n"
            "  --dry-run             measure and print only\n",
            QUICK_SHRINK);
}

static void on_progress(const char *line, void *user) {
    (void)user;
    fprintf(stderr, "%s\n", line);
}

int cmd_tune(int argc, char **argv) {
    vkllm_tune_params p;
    vkllm_tune_params_init(&p);
    p.progress = on_progress;
    long long v64;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
#define OPT(name, alt) ((r = arg_value(argc, argv, &i, name, alt, &v)) != 0)
        if (OPT("-m", "--model")) { if (r < 0) return 2; p.model = v; }
        else if (OPT("--shapes", NULL)) { if (r < 0) return 2; p.shapes = v; }
        else if (OPT("--types", NULL)) { if (r < 0) return 2; p.types = v; }
        else if (OPT("--device", NULL)) {
            if (r < 0 || !parse_int("--device", v, 0, 1023, &v64)) return 2;
            p.device = (int32_t)v64;
        } else if (OPT("-p", "--prefill")) {
            if (r < 0 || !parse_int("-p", v, 2, 4096, &v64)) return 2;
            p.n_prefill = (uint32_t)v64;
        } else if (OPT("-r", "--repetitions")) {
            if (r < 0 || !parse_int("-r", v, 1, 63, &v64)) return 2;
            p.reps = (uint32_t)v64;
        } else if (OPT("--shrink", NULL)) {
            if (r < 0 || !parse_int("--shrink", v, 1, 64, &v64)) return 2;
            p.shrink = (uint32_t)v64;
        } else if (OPT("-o", "--output")) { if (r < 0) return 2; p.out_path = v; }
        else if (!strcmp(argv[i], "--quick")) {
            if (!p.shrink) p.shrink = QUICK_SHRINK;
            if (!p.reps) p.reps = 2;
        } else if (!strcmp(argv[i], "--dry-run")) p.dry_run = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        else { fprintf(stderr, "vkllm tune: unknown option %s\n", argv[i]); usage(stderr); return 2; }
#undef OPT
    }
    if (p.model && p.shapes) {
        fprintf(stderr, "vkllm tune: --shapes is for runs without -m (a model brings its own shapes)\n");
        return 2;
    }

    vkllm_tune_result res;
    vkllm_status st = vkllm_tune(&p, &res);
    if (st) {
        fprintf(stderr, "vkllm tune: %s\n", vkllm_last_error());
        return 1;
    }
    printf("device: %s | %s\n", res.device, res.driver);
    /* ms: the model's time in these products per token (matvec) or per prefill chunk (matmul).
     * The last columns: the best without integer dot products, which callers that lend no
     * scratch memory get. */
    printf("| %-6s | %-5s | %-22s | %10s | %-22s | %10s | %8s | %-7s | %-22s | %8s |\n", "op", "type", "default",
           "ms", "chosen", "ms", "speed-up", "valid", "without int dot", "speed-up");
    printf("| ------ | ----- | ---------------------- | ---------: | ---------------------- | ---------: | "
           "-------: | ------- | ---------------------- | -------: |\n");
    for (uint32_t i = 0; i < res.n_rows; i++) {
        const vkllm_tune_row *r = &res.rows[i];
        char valid[16];
        snprintf(valid, sizeof valid, "%u/%u", r->valid, r->variants);
        printf("| %-6s | %-5s | %-22s | %10.4f | %-22s | %10.4f | %7.2fx | %-7s | %-22s | %7.2fx |\n", r->op,
               r->type, r->default_variant, r->default_ms, r->chosen_variant, r->chosen_ms,
               r->chosen_ms > 0 ? r->default_ms / r->chosen_ms : 0.0, valid, r->no_int_dot_variant,
               r->no_int_dot_ms > 0 ? r->default_ms / r->no_int_dot_ms : 0.0);
    }
    if (res.path[0]) fprintf(stderr, "profile written to %s\n", res.path);
    return 0;
}
