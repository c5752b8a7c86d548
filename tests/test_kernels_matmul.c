/* The weight-reading kernels (matvec, matmul, embed) for every weight type against the CPU
 * reference, which dequantizes with the same codecs: only the accumulation order differs.
 * Covers ragged shapes, offsets that are not binding-aligned, the split path with a small
 * binding limit, and proves that a variant skipping the last block fails the same check.
 * The integer-dot-product variants (8-bit activations) are checked twice: tightly against the
 * reference fed the activations they quantized, loosely against the float reference. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_harness.h"
#include "testkit/cpu_ref.h"
#include "runtime/kern/kern_matmul.h"
#include "runtime/format/wtype.h"

/* fp32 accumulation over at most a few thousand products against a double reference leaves a
 * relative error energy of 1e-15..1e-12, up to ~3e-11 for a single output whose sum nearly
 * cancels; a wrong element, block or scale costs far more than 1e-9. */
#define NMSE_MAX 1e-9

static const uint32_t all_types[] = {WTYPE_F32, WTYPE_F16, WTYPE_BF16, WTYPE_Q8_0, WTYPE_Q4_0, WTYPE_Q4_1,
                                     WTYPE_Q5_0, WTYPE_Q5_1, WTYPE_Q4_K, WTYPE_Q5_K, WTYPE_Q6_K};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

static th_rng rng = {7};

/* A random rows x cols matrix in `type`, and its byte size. */
static void *make_weights(uint32_t type, uint32_t rows, uint32_t cols, uint64_t *bytes) {
    size_t n = (size_t)rows * cols;
    float *f = malloc(n * sizeof *f);
    th_fill_uniform(&rng, f, n, -1.0f, 1.0f);
    *bytes = wtype_row_bytes(type, cols) * rows;
    void *q = malloc(*bytes);
    wtype_get(type)->from_float(f, q, n);
    free(f);
    return q;
}

static vk_buf upload_at(th_gpu *g, const void *data, uint64_t off, uint64_t size) {
    vk_buf b = th_buf_zero(g, off + size);
    if (b.block) CHECK_OK(vk_buf_write(g->dev, &b, off, data, size));
    return b;
}

/* One product case; offsets are bytes into each buffer. */
typedef struct mm_case {
    uint32_t type, rows, cols, n_tok; /* n_tok 0: kern_matvec */
    uint64_t w_off, x_off, y_off;
    uint64_t max_binding;    /* 0: the device limit */
    const char *extra;       /* extra defines (broken variants) */
    const kern_matvec_cfg *mv;  /* NULL: kern_matvec's choice */
    const kern_matmul_cfg *mm;  /* NULL: kern_matmul's choice */
    int acc;                 /* kern_ctx.acc_y: y starts with values and gets W x added */
    int glu;                 /* kern_ctx.glu_y: y starts with gate values g, ends silu(g) * W x */
} mm_case;

static double run_product(th_gpu *g, const mm_case *c) {
    uint32_t nt = c->n_tok ? c->n_tok : 1;
    uint64_t wbytes;
    void *w = make_weights(c->type, c->rows, c->cols, &wbytes);
    size_t nx = (size_t)nt * c->cols, ny = (size_t)nt * c->rows;
    float *x = malloc(nx * 4), *ref = malloc(ny * 4), *got = malloc(ny * 4);
    th_fill_uniform(&rng, x, nx, -1.0f, 1.0f);
    CHECK_OK(ref_matmul(ref, w, c->type, c->rows, c->cols, nt, x));
    float *y0 = calloc(ny, 4);
    if (c->acc || c->glu) th_fill_uniform(&rng, y0, ny, -4.0f, 4.0f);
    for (size_t i = 0; i < ny && c->acc; i++) ref[i] += y0[i];
    for (size_t i = 0; i < ny && c->glu; i++) ref[i] = (float)(y0[i] / (1.0 + exp(-(double)y0[i])) * ref[i]);

    vk_buf bw = upload_at(g, w, c->w_off, wbytes), bx = upload_at(g, x, c->x_off, nx * 4);
    vk_buf by = upload_at(g, y0, c->y_off, ny * 4);
    free(y0);
    kern_ctx k = th_begin(g, c->extra);
    k.max_binding_override = c->max_binding;
    k.acc_y = c->acc;
    k.glu_y = c->glu;
    if (c->n_tok == 0 && c->mv)
        CHECK_OK(kern_matvec_ex(&k, c->mv, c->type, &bw, c->w_off, &bx, c->x_off, &by, c->y_off, c->rows, c->cols));
    else if (c->n_tok == 0)
        CHECK_OK(kern_matvec(&k, c->type, &bw, c->w_off, &bx, c->x_off, &by, c->y_off, c->rows, c->cols));
    else if (c->mm)
        CHECK_OK(kern_matmul_ex(&k, c->mm, c->type, &bw, c->w_off, &bx, c->x_off, &by, c->y_off, c->rows,
                                c->cols, c->n_tok));
    else
        CHECK_OK(kern_matmul(&k, c->type, &bw, c->w_off, &bx, c->x_off, &by, c->y_off, c->rows, c->cols,
                             c->n_tok));
    th_run(&k);
    CHECK_OK(vk_buf_read(g->dev, &by, c->y_off, got, ny * 4));
    double e = th_nmse(ref, got, ny);

    vk_buf_free(g->dev, &bw);
    vk_buf_free(g->dev, &bx);
    vk_buf_free(g->dev, &by);
    free(w), free(x), free(ref), free(got);
    return e;
}

static uint32_t block_of(uint32_t type) {
    uint32_t b = wtype_get(type)->block;
    return b == 1 ? 32 : b; /* float types: the shapes below still use 32-wide steps */
}

#define CHECK_NMSE(c, e, what)                                                                        \
    CHECK_MSG((e) <= NMSE_MAX, "%s %s rows %u cols %u n_tok %u: nmse %.3g > %.0e", what,               \
              wtype_get((c).type)->name, (c).rows, (c).cols, (c).n_tok, e, NMSE_MAX)

/* Both kernel families run on every device: the default (coalesced on GPUs, by-row on CPU
 * devices) and the other one through the _ex entry points. */
static kern_matvec_cfg other_matvec(th_gpu *g, uint32_t type) {
    kern_ctx k = {.dev = g->dev};
    kern_matvec_cfg d = kern_matvec_default(&k, type);
    if (d.by_row) return (kern_matvec_cfg){.wg = 64, .rows = 2};
    return (kern_matvec_cfg){.by_row = 1, .wg = 8, .rows = 4};
}

static kern_matmul_cfg other_matmul(th_gpu *g, uint32_t type) {
    kern_ctx k = {.dev = g->dev};
    kern_matmul_cfg d = kern_matmul_default(&k, type);
    if (d.by_row) return (kern_matmul_cfg){.bm = 64, .bn = 64, .bk = 16, .tm = 4, .tn = 4}; /* CPU tile */
    return (kern_matmul_cfg){.by_row = 1, .bm = 32, .tm = 4, .tn = 4};
}

static void test_matvec(th_gpu *g) {
    /* (rows, cols in blocks): one block, odd and even multiples (the by-row kernel needs an
     * even count of 2-byte-aligned blocks and falls back otherwise), ragged row counts. */
    static const uint32_t shapes[][2] = {{1, 1}, {3, 2}, {65, 3}, {127, 4}, {257, 5}, {1000, 6}};
    for (size_t t = 0; t < N_TYPES; t++) {
        kern_matvec_cfg other = other_matvec(g, all_types[t]);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            mm_case c = {.type = all_types[t], .rows = shapes[s][0], .cols = shapes[s][1] * block_of(all_types[t])};
            double e = run_product(g, &c);
            CHECK_NMSE(c, e, "matvec");
            c.mv = &other;
            e = run_product(g, &c);
            CHECK_NMSE(c, e, other.by_row ? "matvec by-row" : "matvec coalesced");
        }
    }
    /* Long rows for one token: x just within a 64 KiB uniform buffer, at an offset that is
     * not binding-aligned, and x too long for one, which the by-row kernels then read as a
     * storage buffer (x_load.glsl). */
    for (size_t t = 0; t < N_TYPES; t++) {
        uint32_t b = block_of(all_types[t]);
        mm_case c = {.type = all_types[t], .rows = 9, .cols = (16000 / b) * b, .x_off = 48};
        double e = run_product(g, &c);
        CHECK_NMSE(c, e, "matvec, uniform x");
        c = (mm_case){.type = all_types[t], .rows = 9, .cols = (16384 / b + 1) * b};
        e = run_product(g, &c);
        CHECK_NMSE(c, e, "matvec, x past a uniform buffer");
    }
    /* Float rows of any length, including fewer than 4 elements and odd counts. */
    static const uint32_t float_types[] = {WTYPE_F32, WTYPE_F16, WTYPE_BF16};
    static const uint32_t ragged[][2] = {{5, 1}, {3, 7}, {33, 100}, {64, 257}};
    for (size_t t = 0; t < 3; t++) {
        for (size_t s = 0; s < sizeof ragged / sizeof ragged[0]; s++) {
            mm_case c = {.type = float_types[t], .rows = ragged[s][0], .cols = ragged[s][1]};
            double e = run_product(g, &c);
            CHECK_NMSE(c, e, "matvec ragged");
            if (float_types[t] != WTYPE_F16) continue; /* the matmul path is the same for all three */
            c.n_tok = 7;
            e = run_product(g, &c);
            CHECK_NMSE(c, e, "matmul ragged");
        }
    }
}

/* y += W x (the residual add the forward pass fuses into Wo and Wdown) and y = silu(y) * W x
 * (SwiGLU fused into the up product): both kernel families, one token and several, and a
 * matrix split into row chunks. */
static void test_accumulate(th_gpu *g) {
    for (size_t t = 0; t < N_TYPES; t++) {
        uint32_t type = all_types[t];
        kern_matvec_cfg omv = other_matvec(g, type);
        kern_matmul_cfg omm = other_matmul(g, type);
        mm_case c = {.type = type, .rows = 65, .cols = 2 * block_of(type), .acc = 1};
        double e = run_product(g, &c);
        CHECK_NMSE(c, e, "matvec y +=");
        c.mv = &omv;
        e = run_product(g, &c);
        CHECK_NMSE(c, e, "matvec y += (other kernel)");
        c.mv = NULL;
        c.n_tok = 7;
        e = run_product(g, &c);
        CHECK_NMSE(c, e, "matmul y +=");
        c.mm = &omm;
        e = run_product(g, &c);
        CHECK_NMSE(c, e, "matmul y += (other kernel)");
        c.mm = NULL;
        c.acc = 0, c.glu = 1; /* y = silu(y) * W x, the up product finishing SwiGLU */
        e = run_product(g, &c);
        CHECK_NMSE(c, e, "matmul y = silu(y) *");
        c.mm = &omm;
        e = run_product(g, &c);
        CHECK_NMSE(c, e, "matmul y = silu(y) * (other kernel)");
        c.mm = NULL;
        c.n_tok = 0;
        e = run_product(g, &c);
        CHECK_NMSE(c, e, "matvec y = silu(y) *");
        c.mv = &omv;
        e = run_product(g, &c);
        CHECK_NMSE(c, e, "matvec y = silu(y) * (other kernel)");
        c.mv = NULL;
        c.acc = 1, c.glu = 0;
        c.rows = 300;
        c.max_binding = 64 * wtype_row_bytes(type, c.cols) + 256; /* several row chunks */
        e = run_product(g, &c);
        CHECK_NMSE(c, e, "matvec y += in row chunks");
    }
}

static void test_matmul(th_gpu *g) {
    /* (rows, cols in blocks, n_tok) */
    static const uint32_t shapes[][3] = {{1, 1, 2}, {65, 3, 7}, {127, 2, 31}, {3, 5, 64},
                                         {257, 2, 65}, {64, 4, 130}, {1000, 2, 2}};
    for (size_t t = 0; t < N_TYPES; t++) {
        kern_matmul_cfg other = other_matmul(g, all_types[t]);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            mm_case c = {.type = all_types[t], .rows = shapes[s][0], .cols = shapes[s][1] * block_of(all_types[t]),
                         .n_tok = shapes[s][2]};
            double e = run_product(g, &c);
            CHECK_NMSE(c, e, "matmul");
            c.mm = &other;
            e = run_product(g, &c);
            CHECK_NMSE(c, e, other.by_row ? "matmul by-row" : "matmul tiled");
        }
        /* n_tok 1 through the matmul kernel itself (kern_matmul hands it to kern_matvec). */
        mm_case c = {.type = all_types[t], .rows = 65, .cols = 2 * block_of(all_types[t]), .n_tok = 1, .mm = &other};
        double e = run_product(g, &c);
        CHECK_NMSE(c, e, "matmul n_tok 1");
    }
    /* The GPU tile (CPU devices default to a shallower K step), and a small tile where tiles
     * and units line up differently. */
    static const uint32_t tile_types[] = {WTYPE_Q4_0, WTYPE_Q6_K, WTYPE_F32};
    kern_matmul_cfg tiles[2] = {{.bm = 64, .bn = 64, .bk = 32, .tm = 4, .tn = 4},
                                {.bm = 32, .bn = 16, .bk = 16, .tm = 2, .tn = 2}};
    for (size_t t = 0; t < sizeof tile_types / sizeof tile_types[0]; t++) {
        mm_case c = {.type = tile_types[t], .rows = 65, .cols = 3 * block_of(tile_types[t]), .n_tok = 33,
                     .mm = &tiles[t % 2]};
        double e = run_product(g, &c);
        CHECK_NMSE(c, e, t % 2 ? "matmul tile 32x16x16 2x2" : "matmul tile 64x64x32 4x4");
    }
}

/* Tensors bigger than the binding limit are bound in chunks; offsets that are not multiples
 * of the binding alignment go to the shader as word indices. */
static void test_split_and_offsets(th_gpu *g) {
    static const uint32_t types[] = {WTYPE_Q6_K, WTYPE_Q4_0, WTYPE_Q4_K, WTYPE_F16, WTYPE_Q8_0};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        uint32_t type = types[t];
        kern_matvec_cfg mv = other_matvec(g, type);
        kern_matmul_cfg mm = other_matmul(g, type);
        mm_case c = {.type = type, .rows = 1000, .cols = 2 * block_of(type), .max_binding = 64 * 1024};
        double e = run_product(g, &c);
        CHECK_NMSE(c, e, "matvec split");
        c.mv = &mv;
        e = run_product(g, &c);
        CHECK_NMSE(c, e, "matvec split, other kernel");
        c.n_tok = 33; /* X and Y exceed 64 KiB too: token chunks as well as row chunks */
        e = run_product(g, &c);
        CHECK_NMSE(c, e, "matmul split");
        c.mm = &mm;
        e = run_product(g, &c);
        CHECK_NMSE(c, e, "matmul split, other kernel");
        c.mm = NULL;
        c.w_off = 36; /* 4-byte aligned, as the by-row kernel needs, but not binding-aligned */
        c.x_off = 48;
        c.y_off = 12;
        e = run_product(g, &c);
        CHECK_NMSE(c, e, "matmul split with offsets");
        c.n_tok = 0;
        e = run_product(g, &c);
        CHECK_NMSE(c, e, "matvec split with offsets");
        if (wtype_get(type)->block < 32 || type == WTYPE_Q4_K) continue;
        /* Only 2-byte aligned: matvec_rows.comp falls back, matvec_rows_k.comp reads it. */
        c.w_off = 38;
        e = run_product(g, &c);
        CHECK_NMSE(c, e, "matvec split, weights 2-byte aligned");
        c.mv = NULL;
        c.n_tok = 33;
        e = run_product(g, &c);
        CHECK_NMSE(c, e, "matmul split, weights 2-byte aligned");
    }
}

/* ------------------------------------------------ integer dot product variants ---- */

/* Against the reference fed the same 8-bit activations only the accumulation differs (exact
 * integer sums per block, fp32 beyond): as tight as the float kernels. Against the float
 * reference the rounding of x to 8 bits remains: x uniform in [-1, 1] quantized with steps of
 * max|x| / 127 leaves a relative error energy of about (1/127)^2 / 12 / (1/3) = 1.6e-5 on
 * average; a few outputs can be far off that (one nearly cancelling sum), so the loose bound
 * applies from 64 outputs on. */
#define IDOT_NMSE_TIGHT NMSE_MAX
#define IDOT_NMSE_LOOSE 6e-5

typedef struct idot_result {
    double tight, loose;   /* NMSE against the quantized-x and the float reference */
    size_t outputs;
    uint32_t q_bad;        /* quants off by more than one step from the CPU's, bad d or sum */
    uint32_t q_ties;       /* quants one step off (a tie rounded the other way) */
} idot_result;

/* The CPU's quantization of one block: d = max|x| / 127, q = round-to-even(x / d). */
static float idot_quant_ref(const float *x, int q[32]) {
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; j++) {
        float v = rintf(x[j] * id);
        q[j] = v > 127.0f ? 127 : v < -127.0f ? -127 : (int)v;
    }
    return d;
}

static idot_result run_idot(th_gpu *g, const mm_case *c) {
    idot_result res = {0};
    uint32_t nt = c->n_tok ? c->n_tok : 1;
    uint64_t wbytes;
    void *w = make_weights(c->type, c->rows, c->cols, &wbytes);
    size_t nx = (size_t)nt * c->cols, ny = (size_t)nt * c->rows, nb = nx / 32;
    float *x = malloc(nx * 4), *xq = malloc(nx * 4), *ref = malloc(ny * 4), *refq = malloc(ny * 4),
          *got = malloc(ny * 4);
    th_fill_uniform(&rng, x, nx, -1.0f, 1.0f);
    CHECK_OK(ref_matmul(ref, w, c->type, c->rows, c->cols, nt, x));

    uint64_t sbytes = kern_int_dot_scratch_bytes(c->cols, nt);
    vk_buf bw = upload_at(g, w, c->w_off, wbytes), bx = upload_at(g, x, c->x_off, nx * 4);
    vk_buf by = th_buf_zero(g, c->y_off + ny * 4), bs = th_buf_zero(g, sbytes);
    kern_ctx k = th_begin(g, c->extra);
    k.max_binding_override = c->max_binding;
    k.scratch = &bs;
    if (c->n_tok == 0)
        CHECK_OK(kern_matvec_ex(&k, c->mv, c->type, &bw, c->w_off, &bx, c->x_off, &by, c->y_off, c->rows, c->cols));
    else
        CHECK_OK(kern_matmul_ex(&k, c->mm, c->type, &bw, c->w_off, &bx, c->x_off, &by, c->y_off, c->rows,
                                c->cols, c->n_tok));
    th_run(&k);
    CHECK_OK(vk_buf_read(g->dev, &by, c->y_off, got, ny * 4));

    /* The activations the kernel used, from the scratch (layout in kern_matmul.h). */
    uint8_t *sc = malloc(sbytes);
    CHECK_OK(vk_buf_read(g->dev, &bs, 0, sc, sbytes));
    const float *dsum = (const float *)(sc + (sbytes - nb * 8));
    for (size_t b = 0; b < nb; b++) {
        int q[32], sum = 0;
        float d = idot_quant_ref(x + 32 * b, q);
        const int8_t *gq = (const int8_t *)sc + 32 * b;
        for (int j = 0; j < 32; j++) {
            int diff = abs(gq[j] - q[j]);
            res.q_bad += diff > 1;
            res.q_ties += diff == 1;
            sum += gq[j];
            xq[32 * b + j] = dsum[2 * b] * gq[j];
        }
        res.q_bad += fabsf(dsum[2 * b] - d) > 1e-6f * d || dsum[2 * b + 1] != (float)sum;
    }
    CHECK_OK(ref_matmul(refq, w, c->type, c->rows, c->cols, nt, xq));
    res.tight = th_nmse(refq, got, ny);
    res.loose = th_nmse(ref, got, ny);
    res.outputs = ny;

    vk_buf_free(g->dev, &bw);
    vk_buf_free(g->dev, &bx);
    vk_buf_free(g->dev, &by);
    vk_buf_free(g->dev, &bs);
    free(w), free(x), free(xq), free(ref), free(refq), free(got), free(sc);
    return res;
}

static const uint32_t idot_types[] = {WTYPE_Q4_0, WTYPE_Q4_1, WTYPE_Q5_0, WTYPE_Q5_1, WTYPE_Q8_0,
                                      WTYPE_Q4_K, WTYPE_Q5_K, WTYPE_Q6_K};
#define N_IDOT_TYPES (sizeof idot_types / sizeof idot_types[0])
static double idot_worst_tight, idot_worst_loose;
static uint32_t idot_runs, idot_ties;

/* Records the run's figures and checks its quants and both NMSEs. */
static void check_idot(const mm_case *c, const idot_result *r, const char *what) {
    idot_runs++;
    idot_ties += r->q_ties;
    if (r->tight > idot_worst_tight) idot_worst_tight = r->tight;
    if (r->outputs >= 64 && r->loose > idot_worst_loose) idot_worst_loose = r->loose;
    CHECK_MSG(r->q_bad == 0, "%s %s rows %u cols %u n_tok %u: %u quants differ from the CPU's", what,
              wtype_get(c->type)->name, c->rows, c->cols, c->n_tok, r->q_bad);
    CHECK_MSG(r->tight <= IDOT_NMSE_TIGHT && (r->outputs < 64 || r->loose <= IDOT_NMSE_LOOSE),
              "%s %s rows %u cols %u n_tok %u: nmse %.3g (same 8-bit x) / %.3g (float x)", what,
              wtype_get(c->type)->name, c->rows, c->cols, c->n_tok, r->tight, r->loose);
}

static void test_int_dot(th_gpu *g) {
    kern_ctx k0 = {.dev = g->dev};
    if (!kern_int_dot_ok(&k0, WTYPE_Q4_0)) {
        printf("SKIP: %s has no shaderIntegerDotProduct; the int_dot variants are untested\n",
               vk_device_props(g->dev)->name);
        return;
    }
    CHECK(!kern_int_dot_ok(&k0, WTYPE_F16) && !kern_int_dot_ok(&k0, WTYPE_BF16) && !kern_int_dot_ok(&k0, WTYPE_F32));
    /* Both layouts of each op; rows per workgroup (2, 4 x 8, 8, 2 x 16) that do not divide the
     * row counts below. */
    const kern_matvec_cfg mvs[] = {{.wg = 64, .rows = 2, .int_dot = 1}, {.by_row = 1, .wg = 8, .rows = 4, .int_dot = 1}};
    const kern_matmul_cfg mms[] = {{.bm = 32, .tm = 2, .tn = 4, .int_dot = 1},
                                   {.by_row = 1, .bm = 32, .tm = 2, .tn = 8, .int_dot = 1}};
    /* (rows, cols in 32-value blocks, rounded up to whole super-blocks for the K-quants): one
     * block, a few, and a 4096-long row. */
    static const uint32_t shapes[][2] = {{1, 1}, {65, 3}, {127, 8}, {33, 128}};
    static const uint32_t toks[] = {2, 7, 33};
    for (size_t t = 0; t < N_IDOT_TYPES; t++) {
        uint32_t type = idot_types[t], per = wtype_get(type)->block / 32;
        CHECK(kern_int_dot_ok(&k0, type));
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            uint32_t cols = (shapes[s][1] + per - 1) / per * per * 32;
            for (int v = 0; v < 2; v++) {
                mm_case c = {.type = type, .rows = shapes[s][0], .cols = cols, .mv = &mvs[v]};
                idot_result r = run_idot(g, &c);
                check_idot(&c, &r, v ? "idot matvec by-row" : "idot matvec");
                c.n_tok = toks[s % 3];
                c.mm = &mms[v];
                r = run_idot(g, &c);
                check_idot(&c, &r, v ? "idot matmul by-row" : "idot matmul");
            }
        }
    }
    /* Offsets that are not binding-aligned, and a 64 KiB binding limit: row and token chunks,
     * each quantizing its own tokens into its part of the scratch. */
    static const uint32_t split_types[] = {WTYPE_Q4_0, WTYPE_Q4_K, WTYPE_Q6_K, WTYPE_Q8_0};
    for (size_t t = 0; t < sizeof split_types / sizeof split_types[0]; t++) {
        uint32_t type = split_types[t];
        for (int v = 0; v < 2; v++) {
            mm_case c = {.type = type, .rows = 1000, .cols = 2 * block_of(type), .max_binding = 64 * 1024,
                         .w_off = 36, .x_off = 48, .y_off = 12, .mv = &mvs[v]};
            idot_result r = run_idot(g, &c);
            check_idot(&c, &r, "idot matvec split with offsets");
            c.n_tok = 33;
            c.mm = &mms[v];
            r = run_idot(g, &c);
            check_idot(&c, &r, "idot matmul split with offsets");
            if (type != WTYPE_Q6_K && type != WTYPE_Q8_0) continue;
            c.w_off = 38; /* only 2-byte aligned, as these types allow */
            r = run_idot(g, &c);
            check_idot(&c, &r, "idot matmul split, weights 2-byte aligned");
        }
    }
    /* The plain-integer fallback of the same kernel agrees; a kernel skipping the last block
     * of every row fails the tight check. */
    for (size_t t = 0; t < N_IDOT_TYPES; t++) {
        uint32_t type = idot_types[t];
        mm_case c = {.type = type, .rows = 65, .cols = 2 * block_of(type), .n_tok = 5, .mm = &mms[1],
                     .extra = "IDOT_EMULATE=1"};
        idot_result r = run_idot(g, &c);
        check_idot(&c, &r, "idot matmul, plain integer arithmetic");
        if (type != WTYPE_Q4_0 && type != WTYPE_Q6_K) continue;
        for (int v = 0; v < 2; v++) {
            mm_case b = {.type = type, .rows = 65, .cols = 4 * block_of(type), .mv = &mvs[v],
                         .extra = "BROKEN_SKIP_LAST_BLOCK=1"};
            r = run_idot(g, &b);
            CHECK_MSG(!(r.tight <= IDOT_NMSE_TIGHT), "broken idot matvec %s was not caught (nmse %.3g)",
                      wtype_get(type)->name, r.tight);
        }
    }
    printf("int_dot: %u runs, worst nmse %.3g against the same 8-bit x, %.3g against float x (64+ outputs); "
           "%u quants "
           "rounded a tie the other way; 4x8 packed product accelerated: %s\n", idot_runs, idot_worst_tight,
           idot_worst_loose, idot_ties, vk_device_props(g->dev)->integer_dot_4x8_accelerated ? "yes" : "no");

    /* Refusals: float weights, and no scratch. */
    vk_buf b = th_buf_zero(g, 4096);
    kern_ctx k = th_begin(g, NULL);
    CHECK(kern_matvec_ex(&k, &mvs[0], WTYPE_F16, &b, 0, &b, 0, &b, 0, 2, 32) == VKLLM_ERR_UNSUPPORTED);
    CHECK(kern_matvec_ex(&k, &mvs[0], WTYPE_Q4_0, &b, 0, &b, 0, &b, 0, 2, 32) == VKLLM_ERR_INVALID_ARG);
    k.scratch = &b;
    kern_matmul_cfg big = {.bm = 32, .tm = 16, .tn = 8, .int_dot = 1}; /* 128 rows x tokens a tile */
    CHECK(kern_matmul_ex(&k, &big, WTYPE_Q4_0, &b, 0, &b, 0, &b, 0, 2, 32, 2) == VKLLM_ERR_INVALID_ARG);
    th_run(&k);
    vk_buf_free(g->dev, &b);
}

/* Runs kern_embed on a random table; returns the NMSE over all rows, and checks that ids
 * outside the table gave zeros. */
static double run_embed(th_gpu *g, uint32_t type, uint32_t dim, uint32_t n_vocab, const int32_t *ids,
                        uint32_t n_ids, uint64_t max_binding, const char *extra) {
    uint64_t wbytes;
    void *w = make_weights(type, n_vocab, dim, &wbytes);
    float *ref = calloc((size_t)n_ids * dim, 4), *got = malloc((size_t)n_ids * dim * 4);
    for (uint32_t i = 0; i < n_ids; i++)
        if (ids[i] >= 0 && (uint32_t)ids[i] < n_vocab)
            CHECK_OK(ref_embed(ref + (size_t)i * dim, w, type, dim, n_vocab, ids[i]));
    vk_buf bw = th_buf_from(g, w, wbytes), bi = th_buf_from(g, ids, (uint64_t)n_ids * 4);
    vk_buf bo = th_buf_zero(g, (uint64_t)n_ids * dim * 4);
    /* Garbage in the output first, so rows that are never written show up. */
    kern_ctx k = th_begin(g, extra);
    CHECK_OK(vk_batch_fill(k.batch, &bo, 0, (uint64_t)n_ids * dim * 4, 0x7fc00000u));
    k.max_binding_override = max_binding;
    CHECK_OK(kern_embed(&k, type, &bw, &bi, n_ids, &bo, dim));
    th_run(&k);
    th_buf_to(g, &bo, got, (uint64_t)n_ids * dim * 4);
    double e = th_nmse(ref, got, (size_t)n_ids * dim);
    vk_buf_free(g->dev, &bw);
    vk_buf_free(g->dev, &bi);
    vk_buf_free(g->dev, &bo);
    free(w), free(ref), free(got);
    return e;
}

static void test_embed(th_gpu *g) {
    const uint32_t n_vocab = 50;
    static const int32_t ids[] = {0, 49, 7, 7, 0, 23, 49, -1, 50, 12};
    const uint32_t n_ids = sizeof ids / sizeof ids[0];
    for (size_t t = 0; t < N_TYPES; t++) {
        uint32_t type = all_types[t], dim = 3 * block_of(type);
        double e = run_embed(g, type, dim, n_vocab, ids, n_ids, 0, NULL);
        CHECK_MSG(e <= NMSE_MAX, "embed %s dim %u: nmse %.3g", wtype_get(type)->name, dim, e);
        /* A 4 KiB binding limit splits the table (and the output) into many chunks. */
        e = run_embed(g, type, dim, n_vocab, ids, n_ids, 4096, NULL);
        CHECK_MSG(e <= NMSE_MAX, "embed split %s dim %u: nmse %.3g", wtype_get(type)->name, dim, e);
    }
    double e = run_embed(g, WTYPE_F16, 37, n_vocab, ids, n_ids, 0, NULL);
    CHECK_MSG(e <= NMSE_MAX, "embed f16 dim 37: nmse %.3g", e);
}

/* The same checks must reject a kernel that skips the last block of every row: both kernel
 * families, matvec and matmul, for Q4_0 and each code path of matvec_rows_k.comp. */
static void test_broken_is_caught(th_gpu *g) {
    static const uint32_t types[] = {WTYPE_Q4_0, WTYPE_Q6_K, WTYPE_Q4_K};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        uint32_t type = types[t];
        kern_matvec_cfg mv = other_matvec(g, type);
        kern_matmul_cfg mm = other_matmul(g, type);
        for (int other = 0; other < 2; other++) {
            mm_case c = {.type = type, .rows = 65, .cols = 4 * block_of(type), .extra = "BROKEN_SKIP_LAST_BLOCK=1",
                         .mv = other ? &mv : NULL, .mm = other ? &mm : NULL};
            double e = run_product(g, &c);
            CHECK_MSG(!(e <= NMSE_MAX), "broken matvec %s (%s kernel) was not caught (nmse %.3g)",
                      wtype_get(type)->name, other ? "other" : "default", e);
            c.n_tok = 7;
            e = run_product(g, &c);
            CHECK_MSG(!(e <= NMSE_MAX), "broken matmul %s (%s kernel) was not caught (nmse %.3g)",
                      wtype_get(type)->name, other ? "other" : "default", e);
        }
        if (type == WTYPE_Q6_K) {
            /* An odd count of blocks: matvec_rows_k.comp's path for rows off a word. */
            kern_matvec_cfg by_row = {.by_row = 1, .wg = 8, .rows = 4};
            mm_case c = {.type = type, .rows = 65, .cols = 3 * block_of(type), .extra = "BROKEN_SKIP_LAST_BLOCK=1",
                         .mv = &by_row};
            double e = run_product(g, &c);
            CHECK_MSG(!(e <= NMSE_MAX), "broken by-row matvec %s, odd blocks, was not caught (nmse %.3g)",
                      wtype_get(type)->name, e);
        }
        if (type != WTYPE_Q4_0) continue;
        static const int32_t ids[] = {0, 3, 9};
        double e = run_embed(g, type, 3 * block_of(type), 10, ids, 3, 0, "BROKEN_SKIP_LAST_BLOCK=1");
        CHECK_MSG(!(e <= NMSE_MAX), "broken embed %s was not caught (nmse %.3g)", wtype_get(type)->name, e);
    }
}

/* Arguments the kernels must refuse with a message rather than record. */
static void test_errors(th_gpu *g) {
    vk_buf b = th_buf_zero(g, 4096);
    kern_ctx k = th_begin(g, NULL);
    CHECK(kern_matvec(&k, WTYPE_Q4_0, &b, 0, &b, 0, &b, 0, 2, 48) == VKLLM_ERR_INVALID_ARG); /* 48 % 32 */
    CHECK(kern_matvec(&k, 5, &b, 0, &b, 0, &b, 0, 2, 32) == VKLLM_ERR_UNSUPPORTED);          /* no type 5 */
    CHECK(kern_matvec(&k, WTYPE_Q4_K, &b, 2, &b, 0, &b, 0, 1, 256) == VKLLM_ERR_INVALID_ARG); /* w_off % 4 */
    CHECK(kern_matvec(&k, WTYPE_Q4_0, &b, 0, &b, 8, &b, 0, 1, 32) == VKLLM_ERR_INVALID_ARG);  /* x_off % 16 */
    CHECK(kern_matvec(&k, WTYPE_F32, &b, 0, &b, 0, &b, 0, 64, 64) == VKLLM_ERR_INVALID_ARG);  /* W overruns */
    kern_matmul_cfg bad = {.bm = 64, .bn = 64, .bk = 8, .tm = 4, .tn = 4};                     /* bk < unit */
    CHECK(kern_matmul_ex(&k, &bad, WTYPE_Q4_K, &b, 0, &b, 0, &b, 0, 1, 256, 2) == VKLLM_ERR_INVALID_ARG);
    th_run(&k);
    vk_buf_free(g->dev, &b);
}

int main(void) {
    th_gpu g;
    if (th_gpu_open(&g, NULL) == 0) {
        test_errors(&g);
        test_matvec(&g);
        test_matmul(&g);
        test_accumulate(&g);
        test_split_and_offsets(&g);
        test_embed(&g);
        test_broken_is_caught(&g);
        test_int_dot(&g);
    }
    th_gpu_close(&g);
    return th_finish();
}
