/* CPU-path benchmark: weight bytes read per second for decode-shaped products (one token,
 * 5632x2048 and 2048x5632) and GFLOP/s for a 64-token prefill, per weight type and SIMD
 * level, beside a plain memory-read loop on the same threads (the bandwidth yardstick).
 * Every level is first checked against the oracle on a slice of the matrix, then timed;
 * each figure is the best of a few short trials (the machine may be shared).
 *   bench_cpu [-t threads] [-T q4_0,q8_0,...] [-l avx2,avx512,...] [-s seconds] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cpu/cpu_ops.h"
#include "testkit/cpu_ref.h"
#include "runtime/format/wtype.h"
#include "base/util.h"

/* Decode matrices are cycled through copies totalling at least this, so they come from DRAM,
 * not the last-level cache. */
#define BENCH_STREAM_BYTES (256u << 20)

static const uint32_t all_types[] = {WTYPE_F32, WTYPE_F16, WTYPE_BF16, WTYPE_Q8_0, WTYPE_Q4_0, WTYPE_Q4_1,
                                     WTYPE_Q5_0, WTYPE_Q5_1, WTYPE_Q4_K, WTYPE_Q5_K, WTYPE_Q6_K};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

static uint64_t rng_state = 1;
static float frand(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

/* Best of BENCH_TRIALS short trials: on a shared machine the best trial is the one least
 * disturbed by other processes, which is what comparing levels within one run needs. */
#define BENCH_TRIALS 10

/* ---- the yardstick: the library's memory-read benchmark on the same threads ---- */

static double bench_read(cpu_pool *pool) {
    cpu_read_result r;
    if (cpu_measure_read(cpu_pool_threads(pool), BENCH_STREAM_BYTES, BENCH_TRIALS, &r)) return 0;
    return r.gbps_max; /* the fastest pass: the least disturbed */
}

/* ---- products ---- */

typedef struct mat {
    uint32_t type;
    size_t rows, cols, bytes, n_copies;
    unsigned char *w; /* (n_copies, bytes) identical copies */
} mat;

static int mat_make(mat *m, uint32_t type, size_t rows, size_t cols) {
    m->type = type;
    m->rows = rows;
    m->cols = cols;
    m->bytes = wtype_row_bytes(type, cols) * rows;
    m->n_copies = (BENCH_STREAM_BYTES + m->bytes - 1) / m->bytes;
    m->w = malloc(m->bytes * m->n_copies);
    float *f = malloc(rows * cols * sizeof *f);
    if (!m->w || !f) {
        free(f);
        return 0;
    }
    for (size_t i = 0; i < rows * cols; i++) f[i] = frand();
    wtype_get(type)->from_float(f, m->w, rows * cols);
    for (size_t c = 1; c < m->n_copies; c++) memcpy(m->w + c * m->bytes, m->w, m->bytes);
    free(f);
    return 1;
}

/* NMSE of the level's product of the first rows of m (3 tokens) against ref_matmul. */
static double check_level(cpu_pool *pool, const mat *m, const float *x) {
    size_t rows = 64, n_tok = 3;
    float ref[3 * 64], got[3 * 64];
    if (ref_matmul(ref, m->w, m->type, rows, m->cols, n_tok, x) != VKLLM_OK) return INFINITY;
    if (cpu_matmul(pool, m->type, m->w, rows, m->cols, x, n_tok, got) != VKLLM_OK) return INFINITY;
    double num = 0, den = 0;
    for (size_t i = 0; i < rows * n_tok; i++) {
        num += ((double)ref[i] - got[i]) * ((double)ref[i] - got[i]);
        den += (double)ref[i] * ref[i];
    }
    return num / den;
}

/* Seconds per product (best trial), cycling through the copies when `stream`. */
static double time_product(cpu_pool *pool, const mat *m, const float *x, size_t n_tok, float *y,
                           int stream, double seconds) {
    cpu_matmul(pool, m->type, m->w, m->rows, m->cols, x, n_tok, y); /* warm: scratch, pages */
    double best = INFINITY;
    size_t next = 0;
    for (int trial = 0; trial < BENCH_TRIALS; trial++) {
        int iters = 0;
        double t0 = vkl_now_ms(), t1;
        do {
            size_t c = stream ? next++ % m->n_copies : 0;
            cpu_matmul(pool, m->type, m->w + c * m->bytes, m->rows, m->cols, x, n_tok, y);
            iters++;
            t1 = vkl_now_ms();
        } while (t1 - t0 < seconds * 1000.0 / BENCH_TRIALS);
        if ((t1 - t0) / iters < best) best = (t1 - t0) / iters;
    }
    return best / 1000.0;
}

static int in_list(const char *list, const char *name) {
    if (!list) return 1;
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == 0 || p[n] == ',')) return 1;
    return 0;
}

int main(int argc, char **argv) {
    uint32_t n_threads = 0;
    const char *types = NULL, *levels = NULL;
    double seconds = 0.3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) n_threads = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "-T") && i + 1 < argc) types = argv[++i];
        else if (!strcmp(argv[i], "-l") && i + 1 < argc) levels = argv[++i];
        else if (!strcmp(argv[i], "-s") && i + 1 < argc) seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [-t threads] [-T q4_0,q8_0,...] [-l scalar,avx2,...] [-s seconds]\n", argv[0]);
            return 2;
        }
    }
    cpu_pool *pool = NULL;
    if (cpu_pool_create(n_threads, &pool) != VKLLM_OK) {
        fprintf(stderr, "bench_cpu: %s\n", vkllm_last_error());
        return 1;
    }
    printf("bench_cpu: %u threads, best SIMD level %s\n", cpu_pool_threads(pool), cpu_simd_name(cpu_simd_best()));
    printf("read: the memory-read yardstick (GB/s, %u MiB, measured just before each row, as the machine\n"
           "may be shared); mv: one-token products, GB/s of weights (%%: of the row's yardstick);\n"
           "mm64: 64 tokens, 5632x2048; nmse: 64 rows x 3 tokens against ref_matmul\n\n", BENCH_STREAM_BYTES >> 20);
    printf("| type | level       | nmse    | read GB/s | mv 5632x2048 GB/s | %%   | mv 2048x5632 GB/s | %%   | mm64 GFLOP/s |\n");
    printf("|------|-------------|---------|-----------|-------------------|-----|-------------------|-----|--------------|\n");

    size_t n_tok = 64;
    float *x = malloc(n_tok * 5632 * sizeof *x), *y = malloc(n_tok * 5632 * sizeof *y);
    for (size_t i = 0; i < n_tok * 5632; i++) x[i] = frand();
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        uint32_t type = all_types[ti];
        if (!in_list(types, wtype_get(type)->name)) continue;
        mat a = {0}, b = {0};
        if (!mat_make(&a, type, 5632, 2048) || !mat_make(&b, type, 2048, 5632)) {
            fprintf(stderr, "bench_cpu: out of memory for %s matrices\n", wtype_get(type)->name);
            return 1;
        }
        for (int l = 0; l < CPU_SIMD_COUNT; l++) {
            cpu_simd level = (cpu_simd)l;
            if (!cpu_simd_supported(level) || !in_list(levels, cpu_simd_name(level))) continue;
            cpu_pool_set_simd(pool, level);
            double e = check_level(pool, &a, x);
            /* int8 activations: ~2e-5 expected (see tests/test_cpu_kernels.c) */
            const char *bad = e <= 1e-4 ? "" : " WRONG";
            double read_gbs = bench_read(pool);
            double ta = time_product(pool, &a, x, 1, y, 1, seconds);
            double tb = time_product(pool, &b, x, 1, y, 1, seconds);
            double tm = time_product(pool, &a, x, n_tok, y, 0, seconds);
            double ga = (double)a.bytes / ta / 1e9, gb = (double)b.bytes / tb / 1e9;
            printf("| %-4s | %-11s | %.1e%s | %9.1f | %17.1f | %3.0f | %17.1f | %3.0f | %12.1f |\n",
                   wtype_get(type)->name, cpu_simd_name(level), e, bad, read_gbs, ga, 100 * ga / read_gbs, gb,
                   100 * gb / read_gbs, 2.0 * 5632 * 2048 * (double)n_tok / tm / 1e9);
            fflush(stdout);
        }
        free(a.w);
        free(b.w);
    }
    free(x), free(y);
    cpu_pool_free(pool);
    return 0;
}
