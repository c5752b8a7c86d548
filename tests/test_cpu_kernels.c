/* The CPU path (runtime/cpu/) against the oracle (testkit/cpu_ref.h and wtype's reference
 * decoders): every op, every weight type, at ragged shapes, with every SIMD level this machine
 * runs forced in turn; the thread pool; and a variant dropping the last block or position,
 * which the same checks must catch. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "runtime/cpu/cpu_ops.h"
#include "testkit/cpu_ref.h"
#include "runtime/format/wtype.h"

/* fp32 sums against a double reference, as tests/test_kernels_matmul.c argues: 1e-15..1e-12,
 * up to ~1e-10 for a single output that nearly cancels; a wrong element, block or scale costs
 * far more than 1e-9. For the quantized types this compares against the oracle fed with the
 * activations as the CPU path quantizes them (the contract in runtime/cpu/cpu_kern.h:
 * per block of 32 / 256, d = amax / 127, q = round-to-nearest-even(x * 127 / amax)), so the
 * integer dot products are checked as tightly as the float ones. */
#define NMSE_PRODUCT 1e-9
/* The same products against the oracle with the unquantized x, summed over every shape of a
 * type: 8-bit activations add noise of variance (d^2 / 12) per element, d = amax / 127, so for
 * x uniform in [-1, 1] the error energy is (1/127)^2 / 12 / (1/3) = 1.9e-5 of the signal.
 * 1e-4 leaves 5x room; a lost block or a wrong scale costs > 1e-2. Not checked per case: one
 * output that nearly cancels can have any relative error. */
#define NMSE_INT8 1e-4
/* RoPE computes its angles exactly as ref_rope does: only the output rounding may differ. */
#define NMSE_ROPE 1e-12
/* fp32 scores, exp and sums against the double reference (as tests/test_kernels_attn.c). */
#define NMSE_ATTN 1e-10
/* rmsnorm, swiglu: fp32 exp / final products against double. */
#define NMSE_FLOAT 1e-10

static const uint32_t all_types[] = {WTYPE_F32, WTYPE_F16, WTYPE_BF16, WTYPE_Q8_0, WTYPE_Q4_0, WTYPE_Q4_1,
                                     WTYPE_Q5_0, WTYPE_Q5_1, WTYPE_Q4_K, WTYPE_Q5_K, WTYPE_Q6_K};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

static th_rng rng = {11};
static cpu_simd levels[CPU_SIMD_COUNT];
static int n_levels;

static int is_float_type(uint32_t type) {
    return type == WTYPE_F32 || type == WTYPE_F16 || type == WTYPE_BF16;
}

/* The activation quantization of the CPU path's contract, as the oracle writes it out. */
static void quantize_like_contract(const float *x, size_t n, size_t block, float *out) {
    memcpy(out, x, n * sizeof *out);
    ref_quant_act(out, n, block);
}

static void *make_weights(uint32_t type, size_t rows, size_t cols) {
    size_t n = rows * cols;
    float *f = malloc(n * sizeof *f);
    th_fill_uniform(&rng, f, n, -1.0f, 1.0f);
    void *q = malloc(wtype_row_bytes(type, cols) * rows);
    wtype_get(type)->from_float(f, q, n);
    free(f);
    return q;
}

/* ---------------------------------------------------------------- pool ---- */

typedef struct count_ctx {
    int *hits;
    uint32_t n_threads;
    int bad_thread;
} count_ctx;

static void count_task(void *ctx, uint32_t task, uint32_t thread) {
    count_ctx *c = ctx;
    c->hits[task]++; /* each task runs once, so no two threads touch one slot */
    if (thread >= c->n_threads) c->bad_thread = 1;
}

static void test_pool(void) {
    static const uint32_t sizes[] = {1, 2, 5};
    for (size_t s = 0; s < 3; s++) {
        cpu_pool *p = NULL;
        CHECK_OK(cpu_pool_create(sizes[s], &p));
        if (!p) continue;
        CHECK(cpu_pool_threads(p) == sizes[s]);
        int hits[1000];
        for (int round = 0; round < 50; round++) { /* many runs: wake-ups and sleeps */
            uint32_t n = (uint32_t)(round * 37 % 1000) + 1;
            memset(hits, 0, sizeof hits);
            count_ctx c = {hits, sizes[s], 0};
            cpu_pool_run(p, count_task, &c, n);
            int ok = !c.bad_thread;
            for (uint32_t i = 0; i < 1000; i++) ok &= hits[i] == (i < n ? 1 : 0);
            CHECK_MSG(ok, "pool of %u threads, run of %u tasks: a task ran twice, never, or on a bad thread",
                      sizes[s], n);
        }
        cpu_pool_free(p);
    }
    CHECK(cpu_physical_cores() >= 1);

    /* The environment names the level; a wrong name is refused. */
    cpu_pool *p = NULL;
    setenv("VKLLM_CPU_SIMD", "scalar", 1);
    CHECK_OK(cpu_pool_create(2, &p));
    if (p) CHECK(cpu_pool_simd(p) == CPU_SIMD_SCALAR);
    cpu_pool_free(p);
    setenv("VKLLM_CPU_SIMD", "avx3000", 1);
    p = NULL;
    CHECK(cpu_pool_create(2, &p) == VKLLM_ERR_INVALID_ARG && p == NULL);
    unsetenv("VKLLM_CPU_SIMD");
    CHECK_OK(cpu_pool_create(0, &p));
    if (p) CHECK(cpu_pool_simd(p) == cpu_simd_best() && cpu_pool_threads(p) == cpu_physical_cores());
    cpu_pool_free(p);
    for (int l = 0; l < CPU_SIMD_COUNT; l++) {
        cpu_simd parsed;
        CHECK(cpu_simd_parse(cpu_simd_name((cpu_simd)l), &parsed) && parsed == (cpu_simd)l);
    }
}

/* ---------------------------------------------------------------- matmul ---- */

typedef struct mm_stats {
    double err, energy;   /* against the unquantized oracle, summed over shapes */
    double worst;         /* largest per-case NMSE against the contract oracle */
} mm_stats;

/* Runs one shape on every level; ref_q is the oracle on the contract's activations, ref_f on
 * the raw ones. Returns 0 if a call failed. */
static void run_matmul_case(cpu_pool *pool, uint32_t type, size_t rows, size_t cols, size_t n_tok,
                            mm_stats st[CPU_SIMD_COUNT]) {
    const wtype_traits *tt = wtype_get(type);
    void *w = make_weights(type, rows, cols);
    size_t nx = n_tok * cols, ny = n_tok * rows;
    float *x = malloc(nx * 4), *xq = malloc(nx * 4);
    float *ref_f = malloc(ny * 4), *ref_q = malloc(ny * 4), *got = malloc(ny * 4);
    th_fill_uniform(&rng, x, nx, -1.0f, 1.0f);
    if (is_float_type(type)) memcpy(xq, x, nx * 4);
    else quantize_like_contract(x, nx, tt->block == WTYPE_QK_K ? WTYPE_QK_K : WTYPE_QK, xq);
    CHECK_OK(ref_matmul(ref_f, w, type, rows, cols, n_tok, x));
    CHECK_OK(ref_matmul(ref_q, w, type, rows, cols, n_tok, xq));
    for (int l = 0; l < n_levels; l++) {
        CHECK_OK(cpu_pool_set_simd(pool, levels[l]));
        for (size_t i = 0; i < ny; i++) got[i] = NAN; /* an output left unwritten fails */
        CHECK_OK(cpu_matmul(pool, type, w, rows, cols, x, n_tok, got));
        double e = th_nmse(ref_q, got, ny);
        CHECK_MSG(e <= NMSE_PRODUCT, "matmul %s %s rows %zu cols %zu n_tok %zu: nmse %.3g > %.0e",
                  cpu_simd_name(levels[l]), tt->name, rows, cols, n_tok, e, NMSE_PRODUCT);
        mm_stats *s = &st[l];
        if (e > s->worst) s->worst = e;
        for (size_t i = 0; i < ny; i++) {
            double d = (double)ref_f[i] - (double)got[i];
            s->err += d * d;
            s->energy += (double)ref_f[i] * ref_f[i];
        }
    }
    free(w), free(x), free(xq), free(ref_f), free(ref_q), free(got);
}

static void test_matmul(cpu_pool *pool) {
    static const size_t rows[] = {1, 7, 33, 300};
    static const size_t n_toks[] = {1, 3, 17, 64};
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        uint32_t type = all_types[ti];
        uint32_t blk = wtype_get(type)->block;
        /* one block, a few, and a realistic row; float rows take lengths that leave every
         * vector width a tail */
        size_t cols[3] = {blk, 3 * (size_t)blk, blk == WTYPE_QK_K ? 2048 : 8 * (size_t)blk};
        if (blk == 1) cols[0] = 7, cols[1] = 37, cols[2] = 300;
        mm_stats st[CPU_SIMD_COUNT];
        memset(st, 0, sizeof st);
        for (size_t r = 0; r < 4; r++)
            for (size_t c = 0; c < 3; c++)
                for (size_t t = 0; t < 4; t++) run_matmul_case(pool, type, rows[r], cols[c], n_toks[t], st);
        for (int l = 0; l < n_levels; l++) {
            double e = st[l].err / st[l].energy;
            double limit = is_float_type(type) ? NMSE_PRODUCT : NMSE_INT8;
            CHECK_MSG(e <= limit, "matmul %s %s against unquantized x: nmse %.3g > %.0e",
                      cpu_simd_name(levels[l]), wtype_get(type)->name, e, limit);
            printf("matmul %-5s %-11s: worst case nmse %.2g (limit %.0e), vs float x %.2g (limit %.0e)\n",
                   wtype_get(type)->name, cpu_simd_name(levels[l]), st[l].worst, NMSE_PRODUCT, e, limit);
        }
    }
}

/* Thread count and tiling do not change a single bit: each output is one dot call whose
 * order does not depend on the tokens beside it. 131 tokens span three token chunks. */
static void test_matmul_threads(cpu_pool *pool) {
    cpu_pool *one = NULL;
    CHECK_OK(cpu_pool_create(1, &one));
    if (!one) return;
    static const uint32_t types[] = {WTYPE_Q4_0, WTYPE_Q6_K, WTYPE_F16};
    for (size_t i = 0; i < 3; i++) {
        size_t rows = 301, cols = 512, n_tok = 131;
        void *w = make_weights(types[i], rows, cols);
        float *x = malloc(n_tok * cols * 4), *a = malloc(n_tok * rows * 4), *b = malloc(n_tok * rows * 4);
        th_fill_uniform(&rng, x, n_tok * cols, -1, 1);
        CHECK_OK(cpu_pool_set_simd(one, cpu_pool_simd(pool)));
        CHECK_OK(cpu_matmul(one, types[i], w, rows, cols, x, n_tok, a));
        CHECK_OK(cpu_matmul(pool, types[i], w, rows, cols, x, n_tok, b));
        CHECK_MSG(memcmp(a, b, n_tok * rows * 4) == 0, "matmul %s: 1 thread and %u threads differ",
                  wtype_get(types[i])->name, cpu_pool_threads(pool));
        /* one token at a time gives the same bits as the tiled prefill */
        for (size_t t = 0; t < n_tok; t++) CHECK_OK(cpu_matmul(pool, types[i], w, rows, cols, x + t * cols, 1, a + t * rows));
        CHECK_MSG(memcmp(a, b, n_tok * rows * 4) == 0, "matmul %s: token by token differs from the prefill tiles",
                  wtype_get(types[i])->name);
        free(w), free(x), free(a), free(b);
    }
    cpu_pool_free(one);
}

static void test_matmul_errors(cpu_pool *pool) {
    float x[64] = {0}, y[4];
    uint8_t w[1024] = {0};
    CHECK(cpu_matmul(pool, WTYPE_Q4_0, w, 1, 48, x, 1, y) == VKLLM_ERR_INVALID_ARG);
    CHECK(cpu_matmul(pool, 5 /* no such type */, w, 1, 32, x, 1, y) == VKLLM_ERR_UNSUPPORTED);
    CHECK(!cpu_type_supported(5) && cpu_type_supported(WTYPE_Q6_K));
}

/* ---------------------------------------------------------------- embed ---- */

static void test_embed(cpu_pool *pool) {
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        uint32_t type = all_types[ti];
        size_t blk = wtype_get(type)->block, dim = blk == 1 ? 37 : 2 * blk, n_vocab = 50;
        void *w = make_weights(type, n_vocab, dim);
        int32_t tokens[5] = {0, 49, 7, 7, 23};
        float *got = malloc(5 * dim * 4), *ref = malloc(dim * 4);
        CHECK_OK(cpu_embed(pool, got, type, w, dim, n_vocab, tokens, 5));
        for (int t = 0; t < 5; t++) {
            CHECK_OK(ref_embed(ref, w, type, dim, n_vocab, tokens[t]));
            CHECK_MSG(memcmp(ref, got + t * dim, dim * 4) == 0, "embed %s token %d differs from ref_embed",
                      wtype_get(type)->name, tokens[t]);
        }
        int32_t bad[2] = {3, 50};
        CHECK(cpu_embed(pool, got, type, w, dim, n_vocab, bad, 2) == VKLLM_ERR_INVALID_ARG);
        free(w), free(got), free(ref);
    }
}

/* ---------------------------------------------------------------- elementwise ---- */

static void test_elementwise(cpu_pool *pool) {
    static const size_t ns[] = {1, 7, 2048, 5632 * 3 + 5};
    for (size_t i = 0; i < 4; i++) {
        size_t n = ns[i];
        float *a = malloc(n * 4), *b = malloc(n * 4), *ref = malloc(n * 4), *got = malloc(n * 4);
        th_fill_uniform(&rng, a, n, -20.0f, 20.0f);
        th_fill_uniform(&rng, b, n, -2.0f, 2.0f);
        a[0] = -200.0f; /* exp overflows inside silu: the limit is -0 */
        ref_swiglu(ref, a, b, n);
        cpu_swiglu(pool, got, a, b, n);
        double e = th_nmse(ref, got, n);
        CHECK_MSG(e <= NMSE_FLOAT, "swiglu n %zu: nmse %.3g", n, e);
        ref_add(ref, a, b, n);
        cpu_add(pool, got, a, b, n);
        CHECK_MSG(memcmp(ref, got, n * 4) == 0, "add n %zu differs from ref_add", n);
        memcpy(got, a, n * 4);
        cpu_add(pool, got, got, b, n); /* in place */
        CHECK_MSG(memcmp(ref, got, n * 4) == 0, "add in place n %zu differs", n);
        free(a), free(b), free(ref), free(got);
    }
    static const size_t shapes[][2] = {{1, 7}, {3, 2048}, {17, 4096}, {64, 288}};
    for (size_t i = 0; i < 4; i++) {
        size_t rows = shapes[i][0], n = shapes[i][1];
        float *x = malloc(rows * n * 4), *wt = malloc(n * 4), *ref = malloc(rows * n * 4), *got = malloc(rows * n * 4);
        th_fill_uniform(&rng, x, rows * n, -3.0f, 3.0f);
        th_fill_uniform(&rng, wt, n, 0.5f, 1.5f);
        ref_rmsnorm_rows(ref, x, wt, rows, n, 1e-5f);
        cpu_rmsnorm(pool, got, x, wt, rows, n, 1e-5f);
        double e = th_nmse(ref, got, rows * n);
        CHECK_MSG(e <= NMSE_FLOAT, "rmsnorm %zux%zu: nmse %.3g", rows, n, e);
        cpu_rmsnorm(pool, x, x, wt, rows, n, 1e-5f); /* in place */
        CHECK_MSG(memcmp(x, got, rows * n * 4) == 0, "rmsnorm in place %zux%zu differs", rows, n);
        free(x), free(wt), free(ref), free(got);
    }
}

/* ---------------------------------------------------------------- rope, kv ---- */

static void test_rope(cpu_pool *pool) {
    static const size_t n_toks[] = {1, 3, 17};
    static const size_t hds[] = {64, 128};
    static const size_t pos0s[] = {0, 999, 32000};
    double worst = 0;
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 2; b++)
            for (size_t c = 0; c < 3; c++)
                for (int v = 0; v < 4; v++) {
                    size_t n_tok = n_toks[a], hd = hds[b], heads = v & 1 ? 8 : 3;
                    size_t rot = v & 2 ? hd / 2 : hd;
                    int neox = v == 3;
                    float base = v & 1 ? 1e6f : 10000.0f, scale = v == 2 ? 0.25f : 1.0f;
                    size_t n = n_tok * heads * hd;
                    float *ref = malloc(n * 4), *got = malloc(n * 4);
                    th_fill_uniform(&rng, ref, n, -1, 1);
                    memcpy(got, ref, n * 4);
                    for (size_t t = 0; t < n_tok; t++)
                        ref_rope(ref + t * heads * hd, heads, hd, rot, (int64_t)(pos0s[c] + t), base, scale, neox);
                    cpu_rope(pool, got, n_tok, heads, hd, rot, pos0s[c], base, scale, neox);
                    double e = th_nmse(ref, got, n);
                    if (e > worst) worst = e;
                    CHECK_MSG(e <= NMSE_ROPE, "rope n_tok %zu heads %zu hd %zu rot %zu pos0 %zu neox %d: nmse %.3g",
                              n_tok, heads, hd, rot, pos0s[c], neox, e);
                    free(ref), free(got);
                }
    printf("rope: worst nmse %.3g (limit %.0e)\n", worst, NMSE_ROPE);
}

static void test_kv_write(cpu_pool *pool) {
    size_t kv_dim = 4 * 64 + 8, n_ctx = 40, pos0 = 13, n_tok = 17;
    float *src = malloc(n_tok * kv_dim * 4);
    th_fill_uniform(&rng, src, n_tok * kv_dim, -70000.0f, 70000.0f); /* some overflow to inf */
    for (size_t i = 0; i < n_tok * kv_dim; i += 7) src[i] *= 1e-9f; /* f16 subnormals */
    src[5] = NAN;
    uint16_t *want = malloc(n_tok * kv_dim * 2);
    ref_f32_to_f16(want, src, n_tok * kv_dim);
    uint16_t *c16 = malloc(n_ctx * kv_dim * 2);
    float *c32 = malloc(n_ctx * kv_dim * 4);
    for (int l = 0; l < n_levels; l++) {
        CHECK_OK(cpu_pool_set_simd(pool, levels[l]));
        memset(c16, 0xab, n_ctx * kv_dim * 2);
        memset(c32, 0xab, n_ctx * kv_dim * 4);
        cpu_kv_write(pool, c16, 1, src, pos0, n_tok, kv_dim);
        cpu_kv_write(pool, c32, 0, src, pos0, n_tok, kv_dim);
        int ok16 = memcmp(c16 + pos0 * kv_dim, want, n_tok * kv_dim * 2) == 0;
        int ok32 = memcmp(c32 + pos0 * kv_dim, src, n_tok * kv_dim * 4) == 0;
        int untouched = 1;
        for (size_t i = 0; i < n_ctx * kv_dim; i++)
            if (i < pos0 * kv_dim || i >= (pos0 + n_tok) * kv_dim) untouched &= c16[i] == 0xabab;
        CHECK_MSG(ok16 && ok32 && untouched, "kv_write %s: f16 rows %s, f32 rows %s, other rows %s",
                  cpu_simd_name(levels[l]), ok16 ? "ok" : "differ", ok32 ? "ok" : "differ",
                  untouched ? "untouched" : "written");
    }
    free(src), free(want), free(c16), free(c32);
}

/* ---------------------------------------------------------------- attention ---- */

typedef struct attn_case {
    size_t n_tok, pos0, n_head, n_kv, hd;
    int f16;
    float q_gain;
} attn_case;

/* NMSE of cpu_attention against ref_attention(_f16), query by query, for each level, the
 * worst of them. Cache rows past the visible range hold NaN, so reading one poisons the result. */
static double run_attention(cpu_pool *pool, const attn_case *c) {
    size_t n_vis = c->pos0 + c->n_tok, n_ctx = n_vis + 5;
    size_t qn = c->n_tok * c->n_head * c->hd, row = c->n_kv * c->hd, cn = n_ctx * row;
    float *q = malloc(qn * 4), *ref = malloc(qn * 4), *got = malloc(qn * 4);
    float *kf = malloc(cn * 4), *vf = malloc(cn * 4);
    uint16_t *kh = malloc(cn * 2), *vh = malloc(cn * 2);
    th_fill_uniform(&rng, q, qn, -c->q_gain, c->q_gain);
    th_fill_uniform(&rng, kf, cn, -1, 1);
    th_fill_uniform(&rng, vf, cn, -1, 1);
    for (size_t i = n_vis * row; i < cn; i++) kf[i] = vf[i] = NAN;
    ref_f32_to_f16(kh, kf, cn);
    ref_f32_to_f16(vh, vf, cn);
    for (size_t t = 0; t < c->n_tok; t++) {
        size_t off = t * c->n_head * c->hd;
        if (c->f16) CHECK_OK(ref_attention_f16(ref + off, q + off, kh, vh, c->n_head, c->n_kv, c->hd, c->pos0 + t));
        else CHECK_OK(ref_attention(ref + off, q + off, kf, vf, c->n_head, c->n_kv, c->hd, c->pos0 + t));
    }
    double worst = 0;
    for (int l = 0; l < n_levels; l++) {
        CHECK_OK(cpu_pool_set_simd(pool, levels[l]));
        CHECK_OK(cpu_attention(pool, got, q, c->f16 ? (void *)kh : (void *)kf, c->f16 ? (void *)vh : (void *)vf,
                               c->f16, c->n_tok, c->pos0, c->n_head, c->n_kv, c->hd, 1.0f / sqrtf((float)c->hd)));
        double e = th_nmse(ref, got, qn);
        if (!(e <= worst)) worst = e;
    }
    free(q), free(ref), free(got), free(kf), free(vf), free(kh), free(vh);
    return worst;
}

static void test_attention(cpu_pool *pool) {
    /* (n_head, n_kv, head_dim): GQA ratios 1, 2, 4 and MQA at head sizes 64 and 128 */
    static const size_t heads[][3] = {{4, 4, 64}, {8, 4, 128}, {8, 2, 64}, {16, 1, 128}, {32, 8, 128}};
    static const size_t toks[][2] = {{1, 0}, {3, 7}, {17, 0}, {1, 1000}, {5, 995}};
    double worst = 0;
    for (size_t h = 0; h < 5; h++)
        for (size_t t = 0; t < 5; t++) {
            attn_case c = {toks[t][0], toks[t][1], heads[h][0], heads[h][1], heads[h][2], (int)((h + t) % 2 == 0),
                           t == 3 ? 8.0f : 1.0f};
            double e = run_attention(pool, &c);
            if (e > worst) worst = e;
            CHECK_MSG(e <= NMSE_ATTN, "attention %s hd %zu heads %zu/%zu n_tok %zu pos0 %zu: nmse %.3g",
                      c.f16 ? "f16" : "f32", c.hd, c.n_head, c.n_kv, c.n_tok, c.pos0, e);
        }
    printf("attention: worst nmse %.3g (limit %.0e)\n", worst, NMSE_ATTN);
    float q[8], o[8], kv[8];
    CHECK(cpu_attention(pool, o, q, kv, kv, 0, 1, 0, 3, 2, 8, 1.0f) == VKLLM_ERR_INVALID_ARG);
}

/* ---------------------------------------------------------------- broken ---- */

/* The hook that drops the last block / position must fail the very checks above. */
static void test_broken(cpu_pool *pool) {
    cpu_pool_set_drop_last(pool, 1);
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        uint32_t type = all_types[ti];
        size_t blk = wtype_get(type)->block, rows = 33, n_tok = 3;
        size_t cols = blk == 1 ? 96 : 3 * blk;
        void *w = make_weights(type, rows, cols);
        float *x = malloc(n_tok * cols * 4), *xq = malloc(n_tok * cols * 4);
        float *ref = malloc(n_tok * rows * 4), *got = malloc(n_tok * rows * 4);
        th_fill_uniform(&rng, x, n_tok * cols, -1, 1);
        if (is_float_type(type)) memcpy(xq, x, n_tok * cols * 4);
        else quantize_like_contract(x, n_tok * cols, blk == WTYPE_QK_K ? WTYPE_QK_K : WTYPE_QK, xq);
        CHECK_OK(ref_matmul(ref, w, type, rows, cols, n_tok, xq));
        for (int l = 0; l < n_levels; l++) {
            CHECK_OK(cpu_pool_set_simd(pool, levels[l]));
            CHECK_OK(cpu_matmul(pool, type, w, rows, cols, x, n_tok, got));
            double e = th_nmse(ref, got, n_tok * rows);
            CHECK_MSG(!(e <= NMSE_PRODUCT), "matmul %s %s without the last block was not caught (nmse %.3g)",
                      cpu_simd_name(levels[l]), wtype_get(type)->name, e);
        }
        free(w), free(x), free(xq), free(ref), free(got);
    }
    attn_case c = {3, 300, 8, 2, 64, 1, 1.0f};
    double e = run_attention(pool, &c);
    CHECK_MSG(!(e <= NMSE_ATTN), "attention without the last position was not caught (nmse %.3g)", e);
    cpu_pool_set_drop_last(pool, 0);
}

int main(void) {
    for (int l = 0; l < CPU_SIMD_COUNT; l++)
        if (cpu_simd_supported((cpu_simd)l)) levels[n_levels++] = (cpu_simd)l;
    printf("SIMD levels here:");
    for (int l = 0; l < n_levels; l++) printf(" %s", cpu_simd_name(levels[l]));
    printf(" (best %s), %u physical cores\n", cpu_simd_name(cpu_simd_best()), cpu_physical_cores());

    test_pool();
    cpu_pool *pool = NULL;
    CHECK_OK(cpu_pool_create(3, &pool)); /* more threads than this machine's 2 cores: uneven splits */
    if (!pool) return th_finish();
    test_matmul(pool);
    test_matmul_threads(pool);
    test_matmul_errors(pool);
    test_embed(pool);
    test_elementwise(pool);
    test_rope(pool);
    test_kv_write(pool);
    test_attention(pool);
    test_broken(pool);
    cpu_pool_free(pool);
    return th_finish();
}
