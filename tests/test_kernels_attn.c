/* RoPE, KV-cache write, fused attention (plain and split-K) and argmax on the device against
 * the CPU reference: every shape the forward pass meets (head sizes 8/64/128, GQA 1-8, MQA,
 * contexts on both sides of the tile size, prefill and decode), plus a deliberately broken
 * variant of each kernel that the same check must reject. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_harness.h"
#include "testkit/cpu_ref.h"
#include "runtime/kern/kern_attn.h"

/* RoPE: the angle is exact to fp32 rounding, so only output rounding remains (~1e-15);
 * a plain fp32 angle at position 32767 is off by ~1e-3 rad, NMSE ~1e-7. */
#define NMSE_ROPE 1e-12
/* Attention: fp32 dot products, exp2 and sums over up to ~1000 positions against a double
 * reference (observed < 1e-12 on lavapipe and an H200); dropping one visible position, even
 * one of 300, costs > 1e-3. */
#define NMSE_ATTN 1e-10

static th_rng rng = {7};

static void free_bufs(th_gpu *g, vk_buf *b, int n) {
    for (int i = 0; i < n; i++)
        if (b[i].block) vk_buf_free(g->dev, &b[i]);
}

/* ------------------------------------------------------------------- rope ---- */

static double run_rope(th_gpu *g, uint32_t n_tok, uint32_t n_heads, uint32_t hd, uint32_t rot,
                       uint32_t pos0, float base, float scale, int neox, const char *extra) {
    size_t n = (size_t)n_tok * n_heads * hd;
    float *x = malloc(n * 4), *ref = malloc(n * 4), *got = malloc(n * 4);
    th_fill_uniform(&rng, x, n, -2, 2);
    memcpy(ref, x, n * 4);
    for (uint32_t t = 0; t < n_tok; t++)
        ref_rope(ref + (size_t)t * n_heads * hd, n_heads, hd, rot, (int64_t)pos0 + t, base, scale, neox);
    vk_buf bx = th_buf_from(g, x, n * 4);
    kern_ctx k = th_begin(g, extra);
    CHECK_OK(kern_rope(&k, &bx, n_tok, n_heads, hd, rot, pos0, base, scale, neox));
    th_run(&k);
    th_buf_to(g, &bx, got, n * 4);
    double e = th_nmse(ref, got, n);
    if (rot < hd) { /* dimensions past rot_dim must come back bit for bit */
        size_t moved = 0;
        for (size_t r = 0; r < (size_t)n_tok * n_heads; r++)
            for (uint32_t d = rot; d < hd; d++) moved += got[r * hd + d] != x[r * hd + d];
        CHECK_MSG(moved == 0, "rope rot %u < hd %u: %zu unrotated values changed", rot, hd, moved);
    }
    free_bufs(g, &bx, 1);
    free(x), free(ref), free(got);
    return e;
}

static void test_rope(th_gpu *g) {
    static const uint32_t positions[] = {0, 1, 4095, 32767};
    static const float bases[] = {10000.0f, 500000.0f};
    static const float scales[] = {1.0f, 0.25f};
    /* (n_tok, n_heads, head_dim, rot_dim): the test model's head of 8, LLaMA's 128, a
     * partial rotation, and several tokens (the last one lands at pos0 + 2). */
    static const uint32_t shapes[][4] = {{1, 4, 8, 8}, {1, 2, 128, 128}, {3, 3, 64, 32}};
    double worst = 0;
    for (size_t s = 0; s < 3; s++)
        for (size_t pi = 0; pi < 4; pi++)
            for (int b = 0; b < 2; b++)
                for (int sc = 0; sc < 2; sc++)
                    for (int neox = 0; neox < 2; neox++) {
                        const uint32_t *sh = shapes[s];
                        uint32_t pos = pi == 3 ? positions[pi] - (sh[0] - 1) : positions[pi]; /* last at 32767 */
                        double e = run_rope(g, sh[0], sh[1], sh[2], sh[3], pos, bases[b], scales[sc], neox, NULL);
                        if (e > worst) worst = e;
                        CHECK_MSG(e <= NMSE_ROPE, "rope tok %u heads %u hd %u rot %u pos %u base %g scale %g %s: nmse %.3g",
                                  sh[0], sh[1], sh[2], sh[3], pos, bases[b], scales[sc], neox ? "neox" : "llama", e);
                    }
    printf("rope: worst nmse %.3g (threshold %.0e)\n", worst, NMSE_ROPE);
    /* A plain fp32 angle must fail the same threshold at the largest position. */
    for (int neox = 0; neox < 2; neox++) {
        double e = run_rope(g, 1, 2, 128, 128, 32767, 10000.0f, 1.0f, neox, "ROPE_PLAIN_FP32=1");
        CHECK_MSG(!(e <= NMSE_ROPE), "rope with a plain fp32 angle was not caught at pos 32767 (nmse %.3g)", e);
        printf("rope with a plain fp32 angle (%s): nmse %.3g at pos 32767\n", neox ? "neox" : "llama", e);
    }
    /* Rejected arguments. */
    vk_buf bx = th_buf_zero(g, 64 * 4);
    kern_ctx k = th_begin(g, NULL);
    CHECK(kern_rope(&k, &bx, 1, 1, 64, 63, 0, 10000.0f, 1.0f, 0) == VKLLM_ERR_INVALID_ARG);
    CHECK(kern_rope(&k, &bx, 1, 1, 64, 66, 0, 10000.0f, 1.0f, 0) == VKLLM_ERR_INVALID_ARG);
    CHECK(kern_rope(&k, &bx, 1, 1, 64, 64, KERN_ROPE_MAX_POS, 10000.0f, 1.0f, 0) == VKLLM_ERR_UNSUPPORTED);
    th_run(&k);
    free_bufs(g, &bx, 1);
}

/* --------------------------------------------------------------- kv write ---- */

/* Writes n_tok rows at pos0 into a cache of n_ctx rows prefilled with a marker; returns the
 * number of elements that differ from the expectation (rows written, the rest untouched). */
static size_t run_kv_write(th_gpu *g, int f16, uint32_t n_ctx, uint32_t pos0, uint32_t n_tok,
                           uint32_t n_kv, uint32_t hd, uint64_t max_binding, const char *extra) {
    size_t row = (size_t)n_kv * hd, n_src = n_tok * row, n_cache = n_ctx * row;
    size_t esz = f16 ? 2 : 4;
    float *src = malloc(n_src * 4);
    th_fill_uniform(&rng, src, n_src, -3, 3);
    src[0] = 1e-6f; /* an f16 subnormal */
    unsigned char *init = malloc(n_cache * esz), *want = malloc(n_cache * esz), *got = malloc(n_cache * esz);
    memset(init, 0x5a, n_cache * esz);
    memcpy(want, init, n_cache * esz);
    if (f16) ref_f32_to_f16((uint16_t *)(void *)want + pos0 * row, src, n_src);
    else memcpy(want + pos0 * row * 4, src, n_src * 4);
    vk_buf bs = th_buf_from(g, src, n_src * 4), bc = th_buf_from(g, init, n_cache * esz);
    kern_ctx k = th_begin(g, extra);
    k.max_binding_override = max_binding;
    CHECK_OK(kern_kv_write(&k, &bs, &bc, f16, pos0, n_tok, n_kv, hd));
    th_run(&k);
    th_buf_to(g, &bc, got, n_cache * esz);
    size_t bad = 0;
    for (size_t i = 0; i < n_cache; i++) bad += memcmp(want + i * esz, got + i * esz, esz) != 0;
    vk_buf b[2] = {bs, bc};
    free_bufs(g, b, 2);
    free(src), free(init), free(want), free(got);
    return bad;
}

static void test_kv_write(th_gpu *g) {
    /* (n_ctx, pos0, n_tok, n_kv, hd, max_binding): decode, prefill at 0 and mid-cache,
     * 16-byte rows at odd positions (binding starts round down), and a binding limit that
     * forces several dispatches. */
    static const uint32_t cases[][6] = {{40, 7, 1, 2, 64, 0},   {40, 0, 40, 2, 64, 0},
                                        {300, 37, 64, 1, 8, 0},  {50, 13, 5, 4, 128, 0},
                                        {64, 3, 21, 2, 64, 2048}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int f16 = 0; f16 < 2; f16++) {
            const uint32_t *a = cases[c];
            size_t bad = run_kv_write(g, f16, a[0], a[1], a[2], a[3], a[4], a[5], NULL);
            CHECK_MSG(bad == 0, "kv_write %s ctx %u pos0 %u n_tok %u kv %u hd %u: %zu elements wrong",
                      f16 ? "f16" : "f32", a[0], a[1], a[2], a[3], a[4], bad);
        }
    for (int f16 = 0; f16 < 2; f16++) {
        size_t bad = run_kv_write(g, f16, 40, 7, 3, 2, 64, 0, "KV_BROKEN_SKIP_LAST=1");
        CHECK_MSG(bad > 0, "kv_write that skips its last group was not caught (%s)", f16 ? "f16" : "f32");
    }
    vk_buf b = th_buf_zero(g, 1024);
    kern_ctx k = th_begin(g, NULL);
    CHECK(kern_kv_write(&k, &b, &b, 1, 0, 1, 1, 12) == VKLLM_ERR_UNSUPPORTED);
    th_run(&k);
    free_bufs(g, &b, 1);
}

/* -------------------------------------------------------------- attention ---- */

typedef struct attn_case {
    uint32_t n_tok, pos0, n_head, n_kv, hd;
    int f16;
    float q_gain;      /* larger gains make peaky softmaxes whose max moves across tiles */
    uint32_t n_split;  /* 1: kern_attention; 0: automatic with scratch; else forced */
    int windows;       /* limit bindings to ~1/3 of the visible cache (>= one tile) */
    const char *extra;
} attn_case;

static uint32_t attn_tile(th_gpu *g, const attn_case *c) {
    kern_ctx k = {.dev = g->dev};
    kern_attn_plan pl;
    CHECK_OK(kern_attn_make_plan(&k, c->n_tok, c->pos0, c->n_head, c->n_kv, c->hd, c->f16, 0, 1, &pl));
    return pl.tile ? pl.tile : 8;
}

/* Runs one case and returns its NMSE against ref_attention(_f16), query by query. Cache rows
 * past the visible range hold NaN, so reading one poisons the result. */
static double run_attention(th_gpu *g, const attn_case *c) {
    uint32_t n_vis = c->pos0 + c->n_tok, n_ctx = n_vis + 9;
    size_t qn = (size_t)c->n_tok * c->n_head * c->hd, row = (size_t)c->n_kv * c->hd;
    size_t cn = (size_t)n_ctx * row;
    float *q = malloc(qn * 4), *ref = malloc(qn * 4), *got = malloc(qn * 4);
    float *kf = malloc(cn * 4), *vf = malloc(cn * 4);
    uint16_t *kh = malloc(cn * 2), *vh = malloc(cn * 2);
    th_fill_uniform(&rng, q, qn, -c->q_gain, c->q_gain);
    th_fill_uniform(&rng, kf, cn, -1, 1);
    th_fill_uniform(&rng, vf, cn, -1, 1);
    for (size_t i = n_vis * row; i < cn; i++) kf[i] = vf[i] = NAN;
    ref_f32_to_f16(kh, kf, cn);
    ref_f32_to_f16(vh, vf, cn);
    for (uint32_t t = 0; t < c->n_tok; t++) {
        size_t off = (size_t)t * c->n_head * c->hd;
        if (c->f16) CHECK_OK(ref_attention_f16(ref + off, q + off, kh, vh, c->n_head, c->n_kv, c->hd, c->pos0 + t));
        else CHECK_OK(ref_attention(ref + off, q + off, kf, vf, c->n_head, c->n_kv, c->hd, c->pos0 + t));
    }
    size_t esz = c->f16 ? 2 : 4;
    vk_buf b[5] = {th_buf_from(g, q, qn * 4), th_buf_from(g, c->f16 ? (void *)kh : (void *)kf, cn * esz),
                   th_buf_from(g, c->f16 ? (void *)vh : (void *)vf, cn * esz), th_buf_zero(g, qn * 4)};
    kern_ctx k = th_begin(g, c->extra);
    if (c->windows) {
        uint64_t third = (uint64_t)n_vis * row * esz / 3, one_tile = (uint64_t)attn_tile(g, c) * row * esz;
        k.max_binding_override = third > one_tile ? third : one_tile;
    }
    float scale = 1.0f / sqrtf((float)c->hd);
    if (c->n_split == 1) {
        CHECK_OK(kern_attention(&k, &b[0], &b[1], &b[2], c->f16, &b[3], c->n_tok, c->pos0, c->n_head,
                                c->n_kv, c->hd, scale));
    } else {
        uint32_t ns = c->n_split ? c->n_split : KERN_ATTN_MAX_SPLIT;
        b[4] = th_buf_zero(g, kern_attn_scratch_bytes(&k, c->n_tok, c->n_head, c->hd, ns));
        kern_attn_plan pl;
        CHECK_OK(kern_attn_make_plan(&k, c->n_tok, c->pos0, c->n_head, c->n_kv, c->hd, c->f16, b[4].size, c->n_split, &pl));
        CHECK_MSG(pl.n_split > 1 && (!c->windows || pl.window < n_vis),
                  "split case runs %u chunks in windows of %u of %u positions", pl.n_split, pl.window, n_vis);
        CHECK_OK(kern_attention_split(&k, &b[0], &b[1], &b[2], c->f16, &b[3], c->n_tok, c->pos0,
                                      c->n_head, c->n_kv, c->hd, scale, &b[4], c->n_split));
    }
    th_run(&k);
    th_buf_to(g, &b[3], got, qn * 4);
    double e = th_nmse(ref, got, qn);
    free_bufs(g, b, 5);
    free(q), free(ref), free(got), free(kf), free(vf), free(kh), free(vh);
    return e;
}

static double worst_attn; /* largest NMSE of the passing attention cases, for the log */

static void check_attention(th_gpu *g, const attn_case *c) {
    double e = run_attention(g, c);
    if (e > worst_attn) worst_attn = e;
    CHECK_MSG(e <= NMSE_ATTN, "attention %s hd %u heads %u/%u n_tok %u pos0 %u gain %g split %u: nmse %.3g",
              c->f16 ? "f16" : "f32", c->hd, c->n_head, c->n_kv, c->n_tok, c->pos0, c->q_gain,
              c->n_split, e);
}

/* Shapes (n_head, n_kv, head_dim, f16 cache, prefill too): GQA ratios 1, 2, 4, 8 and MQA,
 * including a group wider than the 16 rows a workgroup takes, at head sizes 64, 8 (the
 * test model: 8 heads over 4) and 128; f32 caches on a few. Each distinct plan is a shader
 * variant that lavapipe compiles for seconds, so the cross product is not run. */
static const uint32_t shapes[][5] = {
    {4, 4, 64, 1, 1}, {4, 2, 64, 1, 1}, {8, 2, 64, 1, 1}, {8, 1, 64, 1, 1}, {32, 1, 64, 1, 1},
    {8, 4, 8, 1, 1},  {8, 1, 8, 1, 1},  {4, 4, 128, 1, 1}, {8, 2, 128, 1, 1},
    {8, 2, 64, 0, 1}, {4, 4, 128, 0, 0}, {8, 4, 8, 0, 0},
};
#define N_SHAPES (sizeof shapes / sizeof shapes[0])

/* Decode: one query over 1, tile - 1, tile, tile + 1 and 300 cached positions. */
static void test_attention_decode(th_gpu *g) {
    for (size_t i = 0; i < N_SHAPES; i++) {
        const uint32_t *sh = shapes[i];
        attn_case c = {1, 0, sh[0], sh[1], sh[2], (int)sh[3], 1.0f, 1, 0, NULL};
        uint32_t tile = attn_tile(g, &c);
        uint32_t n_pos[] = {1, tile - 1, tile, tile + 1, 300};
        for (size_t j = 0; j < 5; j++) {
            c.pos0 = n_pos[j] - 1;
            check_attention(g, &c);
        }
    }
}

/* Prefill: 1, 5 and 64 queries after 0 or 37 cached positions (causal within the batch). */
static void test_attention_prefill(th_gpu *g) {
    static const uint32_t toks[] = {1, 5, 64};
    static const uint32_t pos0s[] = {0, 37};
    for (size_t i = 0; i < N_SHAPES; i++) {
        const uint32_t *sh = shapes[i];
        if (!sh[4]) continue;
        for (size_t t = 0; t < 3; t++)
            for (size_t p = 0; p < 2; p++) {
                if (toks[t] == 1 && pos0s[p] == 0) continue; /* decode covers it */
                attn_case c = {toks[t], pos0s[p], sh[0], sh[1], sh[2], (int)sh[3], 1.0f, 1, 0, NULL};
                check_attention(g, &c);
            }
    }
}

static void test_attention_more(th_gpu *g) {
    static const attn_case cases[] = {
        /* peaky softmax: scores up to ~100 overflow exp without the running max */
        {1, 299, 8, 2, 64, 1, 30.0f, 1, 0, NULL},
        {64, 37, 8, 2, 64, 0, 30.0f, 1, 0, NULL},
        /* other head sizes */
        {1, 299, 8, 2, 256, 1, 1.0f, 1, 0, NULL},
        {5, 100, 6, 3, 40, 1, 1.0f, 1, 0, NULL},
        /* split-K: forced counts (uneven last chunk), automatic, prefill rows whose chunk is
         * past their last position, and peaky scores across chunks */
        {1, 299, 8, 2, 64, 1, 1.0f, 2, 0, NULL},
        {1, 299, 8, 2, 64, 0, 1.0f, 3, 0, NULL},
        {1, 1000, 8, 2, 64, 1, 1.0f, 0, 0, NULL},
        {64, 37, 8, 2, 64, 1, 1.0f, 3, 0, NULL},
        {1, 299, 8, 2, 64, 1, 30.0f, 5, 0, NULL},
        /* a binding limit below the visible cache: windows of chunks, bound separately */
        {1, 299, 8, 2, 64, 1, 1.0f, 0, 1, NULL},
        {5, 290, 8, 2, 64, 0, 1.0f, 0, 1, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_attention(g, &cases[i]);
    printf("attention: worst nmse %.3g (threshold %.0e)\n", worst_attn, NMSE_ATTN);

    /* Without scratch a cache beyond the binding limit is refused with a message. */
    kern_ctx k = {.dev = g->dev, .max_binding_override = 8192};
    kern_attn_plan pl;
    CHECK(kern_attn_make_plan(&k, 1, 299, 2, 1, 64, 1, 0, 1, &pl) == VKLLM_ERR_UNSUPPORTED);
    CHECK(kern_attn_make_plan(&k, 1, 0, 3, 2, 64, 1, 0, 1, &pl) == VKLLM_ERR_INVALID_ARG);
    CHECK(kern_attn_make_plan(&k, 1, 0, 2, 1, 12, 1, 0, 1, &pl) == VKLLM_ERR_UNSUPPORTED);
    CHECK(kern_attn_make_plan(&k, 1, 0, 2, 1, 264, 1, 0, 1, &pl) == VKLLM_ERR_UNSUPPORTED);
}

/* Dropping the last visible position must fail the same check: alone (nothing left: NaN),
 * just past a tile, at 300, in prefill, and through split-K. */
static void test_attention_broken(th_gpu *g) {
    attn_case c = {1, 0, 8, 2, 64, 1, 1.0f, 1, 0, "ATTN_BROKEN_DROP_LAST=1"};
    uint32_t tile = attn_tile(g, &c);
    uint32_t n_pos[] = {1, tile + 1, 300};
    double least = INFINITY;
    for (size_t i = 0; i < 3; i++) {
        c.pos0 = n_pos[i] - 1;
        double e = run_attention(g, &c);
        if (e < least) least = e;
        CHECK_MSG(!(e <= NMSE_ATTN), "attention without the last position was not caught at %u positions (nmse %.3g)",
                  n_pos[i], e);
    }
    attn_case p = {64, 37, 8, 2, 64, 1, 1.0f, 1, 0, "ATTN_BROKEN_DROP_LAST=1"};
    double e = run_attention(g, &p);
    if (e < least) least = e;
    CHECK_MSG(!(e <= NMSE_ATTN), "prefill attention without the last position was not caught (nmse %.3g)", e);
    attn_case s = {1, 299, 8, 2, 64, 1, 1.0f, 3, 0, "ATTN_BROKEN_DROP_LAST=1"};
    e = run_attention(g, &s);
    if (e < least) least = e;
    CHECK_MSG(!(e <= NMSE_ATTN), "split attention without the last position was not caught (nmse %.3g)", e);
    printf("attention without the last position: least nmse %.3g\n", least);
}

/* A decode step as the forward pass records it: append K and V, then attend, one batch. */
static void test_write_then_attend(th_gpu *g) {
    const uint32_t n_head = 8, n_kv = 2, hd = 64, pos = 70, n_ctx = 128;
    size_t row = (size_t)n_kv * hd, cn = (size_t)n_ctx * row, qn = (size_t)n_head * hd;
    float *kf = malloc(cn * 4), *vf = malloc(cn * 4), *q = malloc(qn * 4), *ref = malloc(qn * 4), *got = malloc(qn * 4);
    uint16_t *kh = malloc(cn * 2), *vh = malloc(cn * 2);
    th_fill_uniform(&rng, kf, cn, -1, 1);
    th_fill_uniform(&rng, vf, cn, -1, 1);
    th_fill_uniform(&rng, q, qn, -1, 1);
    ref_f32_to_f16(kh, kf, cn);
    ref_f32_to_f16(vh, vf, cn);
    CHECK_OK(ref_attention_f16(ref, q, kh, vh, n_head, n_kv, hd, pos));
    /* The device cache holds everything before pos; row pos arrives through kv_write. */
    uint16_t *kd = malloc(cn * 2), *vd = malloc(cn * 2);
    memcpy(kd, kh, cn * 2);
    memcpy(vd, vh, cn * 2);
    memset(kd + pos * row, 0, row * 2);
    memset(vd + pos * row, 0, row * 2);
    vk_buf b[6] = {th_buf_from(g, kd, cn * 2), th_buf_from(g, vd, cn * 2), th_buf_from(g, kf + pos * row, row * 4),
                   th_buf_from(g, vf + pos * row, row * 4), th_buf_from(g, q, qn * 4), th_buf_zero(g, qn * 4)};
    kern_ctx k = th_begin(g, NULL);
    CHECK_OK(kern_kv_write(&k, &b[2], &b[0], 1, pos, 1, n_kv, hd));
    CHECK_OK(kern_kv_write(&k, &b[3], &b[1], 1, pos, 1, n_kv, hd));
    CHECK_OK(kern_attention(&k, &b[4], &b[0], &b[1], 1, &b[5], 1, pos, n_head, n_kv, hd, 1.0f / sqrtf((float)hd)));
    th_run(&k);
    th_buf_to(g, &b[5], got, qn * 4);
    double e = th_nmse(ref, got, qn);
    CHECK_MSG(e <= NMSE_ATTN, "kv_write then attention in one batch: nmse %.3g", e);
    free_bufs(g, b, 6);
    free(kf), free(vf), free(q), free(ref), free(got), free(kh), free(vh), free(kd), free(vd);
}

/* ----------------------------------------------------------------- argmax ---- */

static uint32_t run_argmax(th_gpu *g, const float *x, uint32_t n, const char *extra) {
    vk_buf b[2] = {th_buf_from(g, x, (uint64_t)n * 4), th_buf_zero(g, 4)};
    uint32_t got = 0xdeadbeef;
    kern_ctx k = th_begin(g, extra);
    CHECK_OK(kern_argmax(&k, &b[0], n, &b[1]));
    th_run(&k);
    th_buf_to(g, &b[1], &got, 4);
    free_bufs(g, b, 2);
    return got;
}

static void test_argmax(th_gpu *g) {
    static const uint32_t sizes[] = {1, 7, 1000, 4097, 32000, 262144};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        uint32_t n = sizes[s];
        float *x = malloc((size_t)n * 4);
        /* All negative, the max somewhere random. */
        th_fill_uniform(&rng, x, n, -50, -1);
        x[th_next(&rng) % n] = -0.5f;
        uint32_t got = run_argmax(g, x, n, NULL), want = (uint32_t)ref_argmax(x, n);
        CHECK_MSG(got == want, "argmax n=%u: %u, want %u", n, got, want);
        /* Ties: three equal maxima spread over the vector; the lowest index wins. */
        if (n >= 3) {
            uint32_t a = n / 3 + 1, b = n / 7, c = n - 1;
            x[a] = x[b] = x[c] = 3.0f;
            got = run_argmax(g, x, n, NULL);
            want = (uint32_t)ref_argmax(x, n);
            CHECK_MSG(got == want && want == b, "argmax ties n=%u: %u, want %u", n, got, want);
            got = run_argmax(g, x, n, "ARGMAX_BROKEN_LAST_TIE=1");
            CHECK_MSG(got != want, "argmax preferring the last tie was not caught at n=%u", n);
        }
        /* NaNs never win, -inf loses to everything finite, and the last index can win. */
        for (uint32_t i = 0; i < n; i++) x[i] = (i % 5 == 0) ? NAN : -INFINITY;
        x[n - 1] = -1e30f;
        got = run_argmax(g, x, n, NULL);
        want = (uint32_t)ref_argmax(x, n);
        CHECK_MSG(got == want, "argmax with NaN/-inf n=%u: %u, want %u", n, got, want);
        /* All equal: index 0. */
        for (uint32_t i = 0; i < n; i++) x[i] = -7.0f;
        got = run_argmax(g, x, n, NULL);
        CHECK_MSG(got == 0, "argmax all equal n=%u: %u, want 0", n, got);
        free(x);
    }
    float nan1[3] = {NAN, NAN, NAN};
    CHECK_MSG(run_argmax(g, nan1, 3, NULL) == (uint32_t)ref_argmax(nan1, 3), "argmax all NaN");
}

/* ---------------------------------------------------------- recorded steps ---- */

/* A decode step recorded once with the position in a buffer (kern_ctx.pos_buf) and replayed
 * at several positions, as runtime/forward/gpu_forward.c does: RoPE of queries and keys in one
 * dispatch, K and V written in one, attention over the whole-bound cache with the split
 * planned for the end of the span. Every replay is checked against the CPU reference:
 * rotated q and k, the cache rows (all others untouched), and the attention output. */
static void run_recorded_step(th_gpu *g, int f16, uint32_t n_head, uint32_t n_kv, uint32_t hd, uint32_t pos_end,
                              const uint32_t *positions, int n_pos) {
    uint32_t n_ctx = pos_end + 5;
    size_t qn = (size_t)n_head * hd, row = (size_t)n_kv * hd, cn = (size_t)n_ctx * row, esz = f16 ? 2 : 4;
    float *q = malloc(qn * 4), *kk = malloc(row * 4), *v = malloc(row * 4);
    float *got = malloc(qn * 4), *ref = malloc(qn * 4), *qr = malloc(qn * 4), *kr = malloc(row * 4);
    float *kf = malloc(cn * 4), *vf = malloc(cn * 4);
    uint16_t *kh = malloc(cn * 2), *vh = malloc(cn * 2);
    unsigned char *cache_got = malloc(cn * esz);
    th_fill_uniform(&rng, kf, cn, -1, 1);
    th_fill_uniform(&rng, vf, cn, -1, 1);
    ref_f32_to_f16(kh, kf, cn);
    ref_f32_to_f16(vh, vf, cn);
    vk_buf b[8] = {th_buf_zero(g, qn * 4), th_buf_zero(g, row * 4), th_buf_zero(g, row * 4),
                   th_buf_from(g, f16 ? (void *)kh : (void *)kf, cn * esz),
                   th_buf_from(g, f16 ? (void *)vh : (void *)vf, cn * esz), th_buf_zero(g, qn * 4),
                   th_buf_zero(g, 16), {0}};
    kern_ctx k = {.dev = g->dev};
    b[7] = th_buf_zero(g, kern_attn_scratch_bytes(&k, 1, n_head, hd, KERN_ATTN_MAX_SPLIT));
    const float base = 10000.0f, scale = 1.0f / sqrtf((float)hd);
    CHECK_OK(vk_batch_begin_reusable(g->dev, &k.batch));
    k.pos_buf = &b[6];
    CHECK_OK(kern_rope_qk(&k, &b[0], n_head, &b[1], n_kv, 1, hd, hd, pos_end - 1, base, 1.0f, 0));
    CHECK_OK(kern_kv_write_kv(&k, &b[1], &b[3], &b[2], &b[4], f16, pos_end - 1, 1, n_kv, hd));
    CHECK_OK(kern_attention_split(&k, &b[0], &b[3], &b[4], f16, &b[5], 1, pos_end - 1, n_head, n_kv, hd, scale,
                                  &b[7], 0));
    for (int i = 0; i < n_pos; i++) {
        uint32_t pos = positions[i];
        th_fill_uniform(&rng, q, qn, -2, 2);
        th_fill_uniform(&rng, kk, row, -1, 1);
        th_fill_uniform(&rng, v, row, -1, 1);
        CHECK_OK(vk_buf_write(g->dev, &b[0], 0, q, qn * 4));
        CHECK_OK(vk_buf_write(g->dev, &b[1], 0, kk, row * 4));
        CHECK_OK(vk_buf_write(g->dev, &b[2], 0, v, row * 4));
        CHECK_OK(vk_buf_write(g->dev, &b[6], 0, &pos, 4));
        CHECK_OK(i == 0 ? vk_batch_submit(k.batch) : vk_batch_resubmit(k.batch));
        CHECK_OK(vk_batch_wait(k.batch));
        /* The reference: rotate, store into the caches, attend. */
        memcpy(qr, q, qn * 4);
        memcpy(kr, kk, row * 4);
        ref_rope(qr, n_head, hd, hd, pos, base, 1.0f, 0);
        ref_rope(kr, n_kv, hd, hd, pos, base, 1.0f, 0);
        /* The cache must hold the keys as rotated on the device (checked against kr). */
        float *kg = malloc(row * 4);
        th_buf_to(g, &b[1], kg, row * 4);
        double e_krope = th_nmse(kr, kg, row);
        memcpy(kr, kg, row * 4);
        free(kg);
        memcpy(kf + pos * row, kr, row * 4);
        memcpy(vf + pos * row, v, row * 4);
        ref_f32_to_f16(kh + pos * row, kr, row);
        ref_f32_to_f16(vh + pos * row, v, row);
        th_buf_to(g, &b[0], got, qn * 4);
        double e_rope = fmax(th_nmse(qr, got, qn), e_krope);
        th_buf_to(g, &b[3], cache_got, cn * esz);
        size_t bad = 0;
        for (size_t j = 0; j < cn; j++)
            bad += memcmp(cache_got + j * esz, f16 ? (const void *)(kh + j) : (const void *)(kf + j), esz) != 0;
        th_buf_to(g, &b[4], cache_got, cn * esz);
        for (size_t j = 0; j < cn; j++)
            bad += memcmp(cache_got + j * esz, f16 ? (const void *)(vh + j) : (const void *)(vf + j), esz) != 0;
        if (f16) CHECK_OK(ref_attention_f16(ref, qr, kh, vh, n_head, n_kv, hd, pos));
        else CHECK_OK(ref_attention(ref, qr, kf, vf, n_head, n_kv, hd, pos));
        th_buf_to(g, &b[5], got, qn * 4);
        double e_att = th_nmse(ref, got, qn);
        CHECK_MSG(e_rope <= NMSE_ROPE && bad == 0 && e_att <= NMSE_ATTN,
                  "recorded step %s heads %u/%u hd %u span end %u, replayed at %u: rope nmse %.3g, %zu cache "
                  "elements wrong, attention nmse %.3g", f16 ? "f16" : "f32", n_head, n_kv, hd, pos_end, pos,
                  e_rope, bad, e_att);
    }
    vk_batch_free(k.batch);
    free_bufs(g, b, 8);
    free(q), free(kk), free(v), free(got), free(ref), free(qr), free(kr), free(kf), free(vf), free(kh), free(vh);
    free(cache_got);
}

static void test_recorded_step(th_gpu *g) {
    /* Spans that plan one chunk and several; replays at the span's start, inside, and its end. */
    static const uint32_t short_span[] = {0, 1, 2, 37, 63};
    static const uint32_t long_span[] = {256, 300, 511, 257, 450};
    run_recorded_step(g, 1, 8, 2, 64, 64, short_span, 5);
    run_recorded_step(g, 0, 4, 4, 8, 64, short_span, 5);
    run_recorded_step(g, 1, 8, 2, 64, 512, long_span, 5);
    run_recorded_step(g, 0, 8, 1, 64, 512, long_span, 5);
}

int main(void) {
    th_gpu g;
    if (th_gpu_open(&g, NULL) == 0) {
        test_rope(&g);
        test_kv_write(&g);
        test_attention_decode(&g);
        test_attention_prefill(&g);
        test_attention_more(&g);
        test_attention_broken(&g);
        test_write_then_attend(&g);
        test_argmax(&g);
        test_recorded_step(&g);
    }
    th_gpu_close(&g);
    return th_finish();
}
