/* Kernel benchmark for the weight-reading kernels, in the llm.c manner: for every weight type
 * and every variant (workgroup size, rows per workgroup, matmul tiles) it first checks the GPU
 * result against the CPU reference, then times it with GPU timestamps and prints the time, the
 * bandwidth and its share of a plain streaming read (stream_read.comp (runtime/kern/kern_stream.c)) of the same bytes.
 *
 *   build/bench_matmul [--rows R] [--cols C] [--ntok N] [--reps K] [--type q4_0,q8_0] [--mv|--mm]
 *                      [--defines "A=1;B=2"] [--variant SUBSTRING] [--min] [--cpu-time]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testkit/cpu_ref.h"
#include "runtime/kern/kern_matmul.h"
#include "runtime/kern/kern_stream.h"
#include "runtime/kern/tune.h"
#include "runtime/format/wtype.h"
#include "base/util.h"
#include "vk/vk.h"

#define BENCH_NMSE_MAX 1e-9
/* The int_dot variants round x to 8 bits: about 1.6e-5 of relative error energy for uniform x. */
#define BENCH_IDOT_NMSE_MAX 1e-4
#define MM_CHECK_TOKENS 70 /* the matmul check covers the first tokens (two 64-token tiles)... */
#define MM_CHECK_MACS 4e8  /* ...as far as the CPU reference can afford, but at least 8 */
#define DISTINCT_ROWS 64   /* rows quantized; the matrix repeats them, so big shapes set up fast */

static const uint32_t bench_types[] = {WTYPE_F32, WTYPE_F16, WTYPE_BF16, WTYPE_Q8_0, WTYPE_Q4_0, WTYPE_Q4_1,
                                       WTYPE_Q5_0, WTYPE_Q5_1, WTYPE_Q4_K, WTYPE_Q5_K, WTYPE_Q6_K};

/* The variants are runtime/kern/tune.c's table, the ones `vkllm tune` chooses from. */

typedef struct bench {
    vk_instance *inst;
    vk_device *dev;
    uint32_t rows, cols, ntok, reps;
    uint64_t stream_bytes[16];
    double stream_gbps[16];
    uint32_t n_stream;
    const char *defines; /* --defines: extra shader defines for every kernel (experiments) */
    const char *only;    /* --variant: run only variants whose label contains this */
    int use_min;         /* --min: report the fastest call instead of the median */
    int cpu_time;        /* --cpu-time: report process CPU time per call (CPU devices) */
} bench;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float rng_uniform(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)((z >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static double nmse(const float *ref, const float *got, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)ref[i] - got[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? num / den : num;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median (or, with use_min, fastest) GPU time of one call: dispatches [first, first + per_call *
 * reps) of a finished batch. The fastest is the steadier figure on a machine shared with other
 * work, where a CPU device's timings absorb every interruption. */
static double call_ms(vk_batch *b, uint32_t first, uint32_t per_call, uint32_t reps, int use_min) {
    double *t = malloc(reps * sizeof *t);
    if (!t) return -1;
    for (uint32_t r = 0; r < reps; r++) {
        t[r] = 0;
        for (uint32_t i = 0; i < per_call; i++) t[r] += vk_batch_dispatch_ms(b, first + r * per_call + i);
    }
    qsort(t, reps, sizeof *t, cmp_double);
    double m = t[use_min ? 0 : reps / 2];
    free(t);
    return m;
}

/* GB/s of the fastest stream configuration reading `bytes` (rounded to vec4s), memoized. */
static double stream_gbps(bench *B, uint64_t bytes) {
    for (uint32_t i = 0; i < B->n_stream; i++)
        if (B->stream_bytes[i] == bytes) return B->stream_gbps[i];
    double best = -1;
    if (kern_stream_gbps(B->dev, bytes, B->reps, &best) != VKLLM_OK) best = -1;
    if (B->n_stream < 16) {
        B->stream_bytes[B->n_stream] = bytes;
        B->stream_gbps[B->n_stream++] = best;
    }
    return best;
}

/* One weight type's data on both sides, and the CPU results the variants must reproduce. */
typedef struct bench_case {
    uint32_t type;
    uint64_t wbytes;
    uint32_t check_tok; /* tokens of the matmul result compared with the reference */
    float *ref_mv, *ref_mm, *got;
    vk_buf bw, bx, by;
    vk_buf bs; /* scratch for the int_dot variants' 8-bit activations (when the type has them) */
} bench_case;

static void print_row(const char *type, const char *variant, const char *shape, double ms, double bytes,
                      double flops, double copy_gbps) {
    double gbps = bytes / (ms * 1e6);
    printf("%-5s | %-24s | %-16s | %9.4f | %8.2f | %6.1f%% | %8.1f\n", type, variant, shape, ms, gbps,
           copy_gbps > 0 ? 100.0 * gbps / copy_gbps : 0.0, flops / (ms * 1e6));
}

/* Records reps + 1 calls of one variant (the first warms up), or just one call when reps is 0;
 * returns the median call time in ms (with --cpu-time: the CPU time of all the process's
 * threads per call, which on a CPU device busy with other work varies far less than the
 * wall-clock time), or -1 with the error printed. */
static double run_variant(bench *B, bench_case *c, const kern_matvec_cfg *mv, const kern_matmul_cfg *mm,
                          uint32_t reps) {
    kern_ctx k = {.dev = B->dev, .extra_defines = B->defines, .scratch = c->bs.block ? &c->bs : NULL};
    if (vk_batch_begin(B->dev, &k.batch) != VKLLM_OK) return -1;
    uint32_t per_call = 0;
    vkllm_status st = VKLLM_OK;
    for (uint32_t r = 0; r < (reps ? reps + 1 : 1) && !st; r++) {
        if (mv)
            st = kern_matvec_ex(&k, mv, c->type, &c->bw, 0, &c->bx, 0, &c->by, 0, B->rows, B->cols);
        else
            st = kern_matmul_ex(&k, mm, c->type, &c->bw, 0, &c->bx, 0, &c->by, 0, B->rows, B->cols, B->ntok);
        if (r == 0) per_call = vk_batch_dispatch_count(k.batch);
    }
    clock_t c0 = clock();
    if (!st) st = vk_batch_submit_wait(k.batch);
    double cpu_ms = (double)(clock() - c0) * 1000.0 / CLOCKS_PER_SEC / (reps + 1);
    double ms = (!st && reps) ? (B->cpu_time ? cpu_ms : call_ms(k.batch, per_call, per_call, reps, B->use_min)) : 0;
    vk_batch_free(k.batch);
    if (st) {
        printf("      skipped: %s\n", vkllm_last_error());
        return -1;
    }
    return ms;
}

/* Checks one variant against the reference; prints and returns 0 when it does not match. */
static int check_variant(bench *B, bench_case *c, const kern_matvec_cfg *mv, const kern_matmul_cfg *mm,
                         const char *label) {
    if (run_variant(B, c, mv, mm, 0) < 0) return 0;
    size_t n = mv ? B->rows : (size_t)c->check_tok * B->rows;
    if (vk_buf_read(B->dev, &c->by, 0, c->got, n * 4) != VKLLM_OK) return 0;
    double e = nmse(mv ? c->ref_mv : c->ref_mm, c->got, n);
    if (!(e <= ((mv ? mv->int_dot : mm->int_dot) ? BENCH_IDOT_NMSE_MAX : BENCH_NMSE_MAX))) {
        printf("%-5s | %-24s | FAILED: nmse %.3g against the CPU reference\n", wtype_get(c->type)->name, label, e);
        return 0;
    }
    return 1;
}

static void bench_type(bench *B, uint32_t type, int do_mv, int do_mm) {
    const wtype_traits *t = wtype_get(type);
    if (B->cols % t->block) {
        printf("%-5s | cols %u is not a multiple of the block (%u): skipped\n", t->name, B->cols, t->block);
        return;
    }
    bench_case c = {.type = type, .wbytes = wtype_row_bytes(type, B->cols) * B->rows};
    size_t nw = (size_t)B->rows * B->cols, nx = (size_t)B->ntok * B->cols;
    double afford = MM_CHECK_MACS / ((double)B->rows * B->cols);
    c.check_tok = afford < MM_CHECK_TOKENS ? (afford < 8 ? 8 : (uint32_t)afford) : MM_CHECK_TOKENS;
    if (c.check_tok > B->ntok) c.check_tok = B->ntok;
    uint32_t distinct = B->rows < DISTINCT_ROWS ? B->rows : DISTINCT_ROWS;
    uint64_t row_bytes = wtype_row_bytes(type, B->cols);
    float *wf = malloc((size_t)distinct * B->cols * 4), *x = malloc(nx * 4);
    void *w = malloc(c.wbytes);
    c.ref_mv = malloc((size_t)B->rows * 4);
    c.ref_mm = malloc((size_t)c.check_tok * B->rows * 4);
    c.got = malloc((size_t)B->ntok * B->rows * 4);
    if (!wf || !x || !w || !c.ref_mv || !c.ref_mm || !c.got) {
        printf("out of host memory\n");
        goto done;
    }
    for (size_t i = 0; i < (size_t)distinct * B->cols; i++) wf[i] = rng_uniform();
    for (size_t i = 0; i < nx; i++) x[i] = rng_uniform();
    t->from_float(wf, w, (size_t)distinct * B->cols);
    for (uint32_t r = distinct; r < B->rows; r++)
        memcpy((char *)w + r * row_bytes, (const char *)w + (r % distinct) * row_bytes, row_bytes);
    if (ref_matvec(c.ref_mv, w, type, B->rows, B->cols, x) ||
        (do_mm && ref_matmul(c.ref_mm, w, type, B->rows, B->cols, c.check_tok, x))) {
        printf("%-5s | reference failed: %s\n", t->name, vkllm_last_error());
        goto done;
    }
    if (vk_buf_alloc(B->dev, VK_MEM_DEVICE, c.wbytes, &c.bw) || vk_buf_alloc(B->dev, VK_MEM_DEVICE, nx * 4, &c.bx) ||
        vk_buf_alloc(B->dev, VK_MEM_DEVICE, (size_t)B->ntok * B->rows * 4, &c.by) ||
        vk_buf_write(B->dev, &c.bw, 0, w, c.wbytes) || vk_buf_write(B->dev, &c.bx, 0, x, nx * 4) ||
        (kern_int_dot_supported(vk_device_props(B->dev), type) &&
         vk_buf_alloc(B->dev, VK_MEM_DEVICE, kern_int_dot_scratch_bytes(B->cols, B->ntok), &c.bs))) {
        printf("%-5s | device buffers failed: %s\n", t->name, vkllm_last_error());
        goto done;
    }
    double copy = B->cpu_time ? 0 : stream_gbps(B, c.wbytes); /* no wall-clock yardstick for CPU time */
    char label[64], shape[48];
    if (do_mv) {
        snprintf(shape, sizeof shape, "%ux%u", B->rows, B->cols);
        for (uint32_t v = 0; v < tune_matvec_count; v++) {
            const kern_matvec_cfg *cfg = &tune_matvec_variants[v];
            char name[48];
            if (!tune_matvec_usable(vk_device_props(B->dev), type, cfg)) continue;
            snprintf(label, sizeof label, "matvec%u %s", v + 1, tune_matvec_label(cfg, name, sizeof name));
            if (B->only && !strstr(label, B->only)) continue;
            if (!check_variant(B, &c, cfg, NULL, label)) continue;
            double ms = run_variant(B, &c, cfg, NULL, B->reps);
            if (ms > 0)
                print_row(t->name, label, shape, ms, (double)c.wbytes + (B->cols + B->rows) * 4.0,
                          2.0 * nw, copy);
        }
    }
    if (do_mm) {
        snprintf(shape, sizeof shape, "%ux%ux%u", B->rows, B->cols, B->ntok);
        for (uint32_t v = 0; v < tune_matmul_count; v++) {
            const kern_matmul_cfg *cfg = &tune_matmul_variants[v];
            char name[48];
            if (!tune_matmul_usable(vk_device_props(B->dev), type, cfg)) continue;
            snprintf(label, sizeof label, "matmul%u %s", v + 1, tune_matmul_label(cfg, name, sizeof name));
            if (B->only && !strstr(label, B->only)) continue;
            if (!check_variant(B, &c, NULL, cfg, label)) continue;
            double ms = run_variant(B, &c, NULL, cfg, B->reps);
            if (ms > 0)
                print_row(t->name, label, shape, ms,
                          (double)c.wbytes + ((double)B->cols + B->rows) * 4.0 * B->ntok,
                          2.0 * nw * B->ntok, copy);
        }
    }
done:
    if (c.bw.block) vk_buf_free(B->dev, &c.bw);
    if (c.bx.block) vk_buf_free(B->dev, &c.bx);
    if (c.by.block) vk_buf_free(B->dev, &c.by);
    if (c.bs.block) vk_buf_free(B->dev, &c.bs);
    free(wf), free(x), free(w), free(c.ref_mv), free(c.ref_mm), free(c.got);
}

/* name is one of the comma-separated names in list. */
static int name_in_list(const char *name, const char *list) {
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, name, n)) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

static int parse_u32(const char *s, uint32_t *out) {
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*s == 0 || *end != 0 || v == 0 || v > 1u << 30) return 0;
    *out = (uint32_t)v;
    return 1;
}

static void usage(void) {
    fprintf(stderr, "usage: bench_matmul [--rows R] [--cols C] [--ntok N] [--reps K] [--type NAME,...] [--mv|--mm]\n"
                    "                    [--defines \"A=1;B=2\"] [--variant SUBSTRING] [--min]\n"
                    "                    [--cpu-time]\n"
                    "  defaults: 2048 x 2048, 64 tokens, 5 repetitions, every type, both kernels;\n"
                    "  --defines adds shader defines to every kernel (to try a variant);\n"
                    "  --variant runs only the variants whose label contains SUBSTRING (e.g. by-row);\n"
                    "  --min reports each variant's fastest call rather than the median (a busy machine);\n"
                    "  --cpu-time reports the process's CPU time per call (CPU devices on a busy machine)\n");
}

int main(int argc, char **argv) {
    bench B = {.rows = 2048, .cols = 2048, .ntok = 64, .reps = 5};
    const char *only = NULL;
    int do_mv = 1, do_mm = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!strcmp(a, "--rows") && v) ok = parse_u32(v, &B.rows), i++;
        else if (!strcmp(a, "--cols") && v) ok = parse_u32(v, &B.cols), i++;
        else if (!strcmp(a, "--ntok") && v) ok = parse_u32(v, &B.ntok), i++;
        else if (!strcmp(a, "--reps") && v) ok = parse_u32(v, &B.reps), i++;
        else if (!strcmp(a, "--type") && v) only = v, i++;
        else if (!strcmp(a, "--defines") && v) B.defines = v, i++;
        else if (!strcmp(a, "--variant") && v) B.only = v, i++;
        else if (!strcmp(a, "--min")) B.use_min = 1;
        else if (!strcmp(a, "--cpu-time")) B.cpu_time = 1;
        else if (!strcmp(a, "--mv")) do_mm = 0;
        else if (!strcmp(a, "--mm")) do_mv = 0;
        else ok = 0;
        if (!ok) {
            usage();
            return 2;
        }
    }

    if (vk_instance_create(0, &B.inst) != VKLLM_OK) {
        fprintf(stderr, "bench_matmul: %s\n", vkllm_last_error());
        return 1;
    }
    uint32_t n_dev = vk_device_count(B.inst);
    if (n_dev == 0) {
        fprintf(stderr, "bench_matmul: no Vulkan device\n");
        vk_instance_destroy(B.inst);
        return 1;
    }
    vk_device_opts opts = {.enable_timestamps = 1};
    uint32_t idx = vkllm_default_device(vk_device_info(B.inst, 0), n_dev);
    if (vk_device_open(B.inst, idx, &opts, &B.dev) != VKLLM_OK) {
        fprintf(stderr, "bench_matmul: %s\n", vkllm_last_error());
        vk_instance_destroy(B.inst);
        return 1;
    }
    printf("device: %s | %u reps, %s | GB/s counts W once plus x and y%s%s\n", vk_device_props(B.dev)->name,
           B.reps, B.cpu_time ? "CPU time per call" : B.use_min ? "fastest" : "median", B.defines ? " | defines " : "", B.defines ? B.defines : "");
    printf("%-5s | %-24s | %-16s | %9s | %8s | %7s | %8s\n", "type", "variant", "shape", "time ms", "GB/s",
           "% copy", "GFLOP/s");
    for (size_t i = 0; i < sizeof bench_types / sizeof bench_types[0]; i++) {
        if (only && !name_in_list(wtype_get(bench_types[i])->name, only)) continue;
        bench_type(&B, bench_types[i], do_mv, do_mm);
    }
    for (uint32_t i = 0; i < B.n_stream; i++)
        printf("copy  | %-24s | %-16llu | %9.4f | %8.2f |\n", "bench_stream (best)",
               (unsigned long long)B.stream_bytes[i], B.stream_bytes[i] / (B.stream_gbps[i] * 1e6),
               B.stream_gbps[i]);
    vk_device_close(B.dev);
    vk_instance_destroy(B.inst);
    return 0;
}
