/* Checks the CPU reference ops against values worked out by hand (e.g. cos(1) written out),
 * against invariants any correct implementation satisfies, and end to end: stories260K run on
 * these ops must reproduce llama2.c's greedy token ids. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "testkit/cpu_ref.h"
#include "runtime/format/gguf.h"
#include "runtime/format/wtype.h"

static int near(double a, double b, double tol) { return fabs(a - b) <= tol; }

static void test_elementwise(void) {
    float a[4] = {1.0f, -2.0f, 0.5f, 3.0f}, b[4] = {4.0f, 0.25f, -0.5f, 0.0f}, o[4];
    ref_add(o, a, b, 4);
    CHECK(o[0] == 5.0f && o[1] == -1.75f && o[2] == 0.0f && o[3] == 3.0f);
    ref_mul(o, a, b, 4);
    CHECK(o[0] == 4.0f && o[1] == -0.5f && o[2] == -0.25f && o[3] == 0.0f);
    ref_add(a, a, a, 4); /* aliasing is allowed */
    CHECK(a[0] == 2.0f && a[1] == -4.0f);

    CHECK(ref_silu(0.0f) == 0.0f);
    CHECK(near(ref_silu(1.0f), 0.7310585786300049, 1e-7));
    CHECK(near(ref_silu(-1.0f), -0.2689414213699951, 1e-7));
    CHECK(ref_silu(100.0f) == 100.0f);
    float big_neg = ref_silu(-1000.0f);
    CHECK_MSG(!isnan(big_neg) && fabsf(big_neg) < 1e-30f, "silu(-1000) = %g", (double)big_neg);

    float g[2] = {2.0f, 1.0f}, u[2] = {3.0f, -2.0f}, sw[2];
    ref_swiglu(sw, g, u, 2);
    CHECK(near(sw[0], 5.284782467867294, 1e-6));       /* 2 * sigmoid(2) * 3 */
    CHECK(near(sw[1], -2 * 0.7310585786300049, 1e-6)); /* 1 * sigmoid(1) * -2 */
}

static void test_rmsnorm(void) {
    const float x[4] = {1, 2, 3, 4}, w[4] = {1, 0.5f, 2, -1};
    const double want0[4] = {0.3651483716701107, 0.3651483716701107, 2.1908902300206643,
                             -1.4605934866804429}; /* mean(x^2) = 7.5 */
    const double want5[4] = {0.35355339059327373, 0.35355339059327373, 2.1213203435596424,
                             -1.414213562373095}; /* eps 0.5: 1/sqrt(8) */
    float o[4];
    ref_rmsnorm(o, x, w, 4, 0.0f);
    for (int i = 0; i < 4; i++)
        CHECK_MSG(near(o[i], want0[i], 1e-6), "rmsnorm[%d] = %g", i, (double)o[i]);
    ref_rmsnorm(o, x, w, 4, 0.5f);
    for (int i = 0; i < 4; i++)
        CHECK_MSG(near(o[i], want5[i], 1e-6), "rmsnorm eps[%d] = %g", i, (double)o[i]);

    /* Rows: row 1 is row 0 doubled, which rmsnorm is blind to. */
    float xr[8] = {1, 2, 3, 4, 2, 4, 6, 8}, orow[8];
    ref_rmsnorm_rows(orow, xr, w, 2, 4, 0.0f);
    for (int i = 0; i < 4; i++) {
        CHECK(near(orow[i], want0[i], 1e-6));
        CHECK(near(orow[4 + i], want0[i], 1e-6));
    }
}

static void test_softmax(void) {
    const double want[3] = {0.09003057317038046, 0.24472847105479767, 0.6652409557748219};
    float a[3] = {1, 2, 3}, b[3] = {1000, 1001, 1002}, c[3] = {-1e30f, -1e30f + 0, 0};
    ref_softmax(a, 3);
    ref_softmax(b, 3);
    for (int i = 0; i < 3; i++) {
        CHECK_MSG(near(a[i], want[i], 1e-7), "softmax[%d] = %g", i, (double)a[i]);
        CHECK_MSG(near(b[i], want[i], 1e-7), "softmax(large)[%d] = %g", i, (double)b[i]);
    }
    ref_softmax(c, 3);
    CHECK(c[0] == 0.0f && c[1] == 0.0f && c[2] == 1.0f);
    float one = 88.0f, minf[2] = {-INFINITY, 3.0f};
    ref_softmax(&one, 1);
    CHECK(one == 1.0f);
    ref_softmax(minf, 2);
    CHECK(minf[0] == 0.0f && minf[1] == 1.0f);
}

static void test_f16(void) {
    const float v[5] = {1.0f, -2.0f, 0.5f, 65504.0f, 0.099975586f};
    const uint16_t bits[5] = {0x3c00, 0xc000, 0x3800, 0x7bff, 0x2e66};
    uint16_t h[5];
    float back[5];
    ref_f32_to_f16(h, v, 5);
    ref_f16_to_f32(back, bits, 5);
    for (int i = 0; i < 5; i++) {
        CHECK_MSG(h[i] == bits[i], "f16(%g) = 0x%04x, want 0x%04x", (double)v[i], h[i], bits[i]);
        CHECK(back[i] == v[i]);
    }
}

static void test_argmax(void) {
    const float a[6] = {-3, 7, 2, 7, -10, 7};
    CHECK(ref_argmax(a, 6) == 1);
    const float b[3] = {-5, -4, -6};
    CHECK(ref_argmax(b, 3) == 1);
    const float c[3] = {NAN, -1, -2};
    CHECK(ref_argmax(c, 3) == 1);
    CHECK(ref_argmax(b, 1) == 0);
}

/* ---------------------------------------------------------------- weights ---- */

static void put_f16(uint8_t *p, float v) {
    uint16_t h = wtype_f32_to_f16(v);
    p[0] = (uint8_t)(h & 0xff);
    p[1] = (uint8_t)(h >> 8);
}

static void test_matvec_f32(void) {
    /* W (3 rows x 4 cols), row-major as ggml ne = [4, 3] stores it. */
    const float w[12] = {1, 2, 3, 4, /**/ -1, 0, 0.5f, 2, /**/ 0, 0, 0, -3};
    const float x[4] = {1, -1, 2, 0.5f};
    float o[3];
    CHECK_OK(ref_matvec(o, w, WTYPE_F32, 3, 4, x));
    CHECK_MSG(o[0] == 7.0f && o[1] == 1.0f && o[2] == -1.5f, "matvec = %g %g %g", (double)o[0],
              (double)o[1], (double)o[2]); /* 1-2+6+2, -1+0+1+1, -1.5 */

    /* matmul: two tokens, bit-identical to matvec on each. */
    const float x2[8] = {1, -1, 2, 0.5f, 0.25f, 3, -2, 1};
    float om[6], o1[3];
    CHECK_OK(ref_matmul(om, w, WTYPE_F32, 3, 4, 2, x2));
    CHECK_OK(ref_matvec(o1, w, WTYPE_F32, 3, 4, x2 + 4));
    CHECK(memcmp(om, o, sizeof o) == 0);
    CHECK(memcmp(om + 3, o1, sizeof o1) == 0);
    CHECK(o1[0] == 4.25f && o1[1] == 0.75f && o1[2] == -3.0f);

    /* Embedding lookup: row 1, and a refusal past the vocabulary. */
    float e[4];
    CHECK_OK(ref_embed(e, w, WTYPE_F32, 4, 3, 1));
    CHECK(memcmp(e, w + 4, sizeof e) == 0);
    CHECK(ref_embed(e, w, WTYPE_F32, 4, 3, 3) == VKLLM_ERR_INVALID_ARG);
    CHECK(ref_embed(e, w, WTYPE_F32, 4, 3, -1) == VKLLM_ERR_INVALID_ARG);

    /* Unknown type ids and rows that do not fill whole blocks are refused. */
    CHECK(ref_matvec(o, w, 5, 3, 4, x) == VKLLM_ERR_UNSUPPORTED);
    CHECK(ref_matvec(o, w, 999, 3, 4, x) == VKLLM_ERR_UNSUPPORTED);
    const wtype_traits *q8 = wtype_get(WTYPE_Q8_0);
    if (q8 && q8->to_float) CHECK(ref_matvec(o, w, WTYPE_Q8_0, 3, 33, x) == VKLLM_ERR_INVALID_ARG);
}

static void test_matvec_f16(void) {
    enum { R = 48, C = 256 };
    th_rng rng = {17};
    float *w = malloc(R * C * sizeof *w), *wr = malloc(R * C * sizeof *wr);
    float *x = malloc(C * sizeof *x);
    uint16_t *wh = malloc(R * C * sizeof *wh);
    float o16[R], o32[R], or32[R];
    th_fill_uniform(&rng, w, R * C, -1, 1);
    th_fill_uniform(&rng, x, C, -1, 1);
    ref_f32_to_f16(wh, w, R * C);
    ref_f16_to_f32(wr, wh, R * C);
    CHECK_OK(ref_matvec(o16, wh, WTYPE_F16, R, C, x));
    CHECK_OK(ref_matvec(o32, w, WTYPE_F32, R, C, x));
    CHECK_OK(ref_matvec(or32, wr, WTYPE_F32, R, C, x));
    for (int r = 0; r < R; r++) {
        /* On the same (rounded) weights the two paths agree to the last bit. */
        CHECK_MSG(o16[r] == or32[r], "row %d: f16 %g vs f32-of-rounded %g", r, (double)o16[r],
                  (double)or32[r]);
        /* Against the unrounded weights: each product is off by at most 2^-11 relative. */
        double bound = 0;
        for (int c = 0; c < C; c++) bound += fabs((double)w[r * C + c] * x[c]);
        bound = bound * 0x1p-11 + 1e-6;
        CHECK_MSG(fabs((double)o16[r] - o32[r]) <= bound, "row %d: f16 %g vs f32 %g (bound %g)", r,
                  (double)o16[r], (double)o32[r], bound);
    }
    float e[C];
    CHECK_OK(ref_embed(e, wh, WTYPE_F16, C, R, 7));
    CHECK(memcmp(e, wr + 7 * C, sizeof e) == 0);
    free(w);
    free(wr);
    free(x);
    free(wh);
}

/* Hand-built Q8_0 and Q4_0 blocks (layout from the format table), two rows each, so the
 * row stride is exercised. Runs once the quantized codecs exist in runtime/format/wtype.c. */
static void test_matvec_quant(void) {
    float x[32];
    for (int j = 0; j < 32; j++) x[j] = (float)(j + 1) * (j % 3 == 0 ? -0.5f : 1.0f);

    const wtype_traits *q8 = wtype_get(WTYPE_Q8_0);
    if (q8 && q8->to_float) {
        uint8_t blk[2 * 34];
        const float d[2] = {0.5f, 2.0f};
        double want[2] = {0, 0};
        for (int r = 0; r < 2; r++) {
            put_f16(blk + 34 * r, d[r]);
            for (int j = 0; j < 32; j++) {
                int q = r == 0 ? j - 16 : (j * 7) % 31 - 15;
                blk[34 * r + 2 + j] = (uint8_t)(int8_t)q;
                want[r] += d[r] * q * (double)x[j];
            }
        }
        float o[2];
        CHECK_OK(ref_matvec(o, blk, WTYPE_Q8_0, 2, 32, x));
        for (int r = 0; r < 2; r++)
            CHECK_MSG(near(o[r], want[r], 1e-4), "q8_0 row %d: %g, want %g", r, (double)o[r],
                      want[r]);
    } else {
        printf("note: q8_0 has no CPU decoder yet; its hand-built block check did not run\n");
    }

    const wtype_traits *q4 = wtype_get(WTYPE_Q4_0);
    if (q4 && q4->to_float) {
        uint8_t blk[2 * 18];
        const float d[2] = {0.25f, -1.5f};
        double want[2] = {0, 0};
        for (int r = 0; r < 2; r++) {
            int q[32];
            for (int j = 0; j < 32; j++) q[j] = r == 0 ? j % 16 : (j * 5 + 3) % 16;
            put_f16(blk + 18 * r, d[r]);
            for (int i = 0; i < 16; i++) blk[18 * r + 2 + i] = (uint8_t)(q[i] | (q[i + 16] << 4));
            for (int j = 0; j < 32; j++) want[r] += d[r] * (q[j] - 8) * (double)x[j];
        }
        float o[2];
        CHECK_OK(ref_matvec(o, blk, WTYPE_Q4_0, 2, 32, x));
        for (int r = 0; r < 2; r++)
            CHECK_MSG(near(o[r], want[r], 1e-4), "q4_0 row %d: %g, want %g", r, (double)o[r],
                      want[r]);
    } else {
        printf("note: q4_0 has no CPU decoder yet; its hand-built block check did not run\n");
    }
}

/* ---------------------------------------------------------------- rope ---- */

static const double COS1 = 0.5403023058681398, SIN1 = 0.8414709848078965;
static const double COS01 = 0.9999500004166653, SIN01 = 0.009999833334166664; /* 0.01 rad */

static void test_rope(void) {
    th_rng rng = {5};
    float x[16], y[16];
    th_fill_uniform(&rng, x, 16, -2, 2);
    memcpy(y, x, sizeof x);
    ref_rope(y, 2, 8, 8, 0, 10000.0f, 1.0f, 0);
    CHECK(memcmp(x, y, sizeof x) == 0); /* position 0 is the identity */
    ref_rope(y, 2, 8, 8, 0, 10000.0f, 1.0f, 1);
    CHECK(memcmp(x, y, sizeof x) == 0);

    /* LLaMA form, head_dim 4, pos 1: pair 0 turns by 1 rad, pair 1 by 10000^(-1/2) = 0.01. */
    float a[8] = {1, 0, 1, 0, /* head 1 */ 0, 1, 3, 0};
    ref_rope(a, 2, 4, 4, 1, 10000.0f, 1.0f, 0);
    CHECK(near(a[0], COS1, 1e-7) && near(a[1], SIN1, 1e-7));
    CHECK(near(a[2], COS01, 1e-7) && near(a[3], SIN01, 1e-7));
    CHECK(near(a[4], -SIN1, 1e-7) && near(a[5], COS1, 1e-7)); /* (0,1) turned by 1 rad */
    CHECK(near(a[6], 3 * COS01, 1e-6) && near(a[7], 3 * SIN01, 1e-6));

    /* NeoX form: pairs (0,2) and (1,3). */
    float b[4] = {1, 1, 0, 0};
    ref_rope(b, 1, 4, 4, 1, 10000.0f, 1.0f, 1);
    CHECK(near(b[0], COS1, 1e-7) && near(b[2], SIN1, 1e-7));
    CHECK(near(b[1], COS01, 1e-7) && near(b[3], SIN01, 1e-7));

    /* freq_scale 1/4 at position 4 is position 1 unscaled (linear scaling). */
    float c[4] = {1, 0, 1, 0};
    ref_rope(c, 1, 4, 4, 4, 10000.0f, 0.25f, 0);
    CHECK(near(c[0], COS1, 1e-7) && near(c[1], SIN1, 1e-7));
    CHECK(near(c[2], COS01, 1e-7) && near(c[3], SIN01, 1e-7));

    /* Partial rotation: rot_dim 4 of head_dim 6 leaves dims 4, 5 alone, in every head. */
    float d[12] = {1, 0, 1, 0, 7, -7, /* head 1 */ 1, 0, 1, 0, -5, 5};
    ref_rope(d, 2, 6, 4, 1, 10000.0f, 1.0f, 0);
    CHECK(d[4] == 7 && d[5] == -7 && d[10] == -5 && d[11] == 5);
    CHECK(near(d[6], COS1, 1e-7) && near(d[7], SIN1, 1e-7) && near(d[8], COS01, 1e-7));
    float dn[6] = {1, 1, 0, 0, 9, 8};
    ref_rope(dn, 1, 6, 4, 1, 10000.0f, 1.0f, 1);
    CHECK(near(dn[0], COS1, 1e-7) && near(dn[2], SIN1, 1e-7) && dn[4] == 9 && dn[5] == 8);

    /* A large position: the angle must not lose precision (cos/sin(10000) written out). */
    float e[2] = {1, 0};
    ref_rope(e, 1, 2, 2, 10000, 10000.0f, 1.0f, 0);
    CHECK_MSG(near(e[0], -0.9521553682590148, 1e-6) && near(e[1], -0.30561438888825215, 1e-6),
              "rope at 10000: %g %g", (double)e[0], (double)e[1]);

    /* Invariants: norm is preserved; q.k depends only on the distance between positions. */
    enum { HD = 64 };
    float q[HD], k[HD], q1[HD], k1[HD], q2[HD], k2[HD];
    th_fill_uniform(&rng, q, HD, -1, 1);
    th_fill_uniform(&rng, k, HD, -1, 1);
    for (int neox = 0; neox < 2; neox++) {
        memcpy(q1, q, sizeof q);
        memcpy(k1, k, sizeof k);
        memcpy(q2, q, sizeof q);
        memcpy(k2, k, sizeof k);
        ref_rope(q1, 1, HD, HD, 5, 10000.0f, 1.0f, neox);
        ref_rope(k1, 1, HD, HD, 2, 10000.0f, 1.0f, neox);
        ref_rope(q2, 1, HD, HD, 1003, 10000.0f, 1.0f, neox);
        ref_rope(k2, 1, HD, HD, 1000, 10000.0f, 1.0f, neox);
        double d1 = 0, d2 = 0, n0 = 0, n1 = 0, raw = 0;
        for (int i = 0; i < HD; i++) {
            d1 += (double)q1[i] * k1[i];
            d2 += (double)q2[i] * k2[i];
            n0 += (double)q[i] * q[i];
            n1 += (double)q2[i] * q2[i];
            raw += (double)q[i] * k[i];
        }
        CHECK_MSG(near(d1, d2, 1e-4), "neox %d: q.k at (5,2) %g vs (1003,1000) %g", neox, d1, d2);
        CHECK_MSG(!near(d1, raw, 1e-3), "neox %d: rope by 3 positions left q.k unchanged", neox);
        CHECK_MSG(near(n0, n1, 1e-4), "neox %d: norm^2 %g became %g", neox, n0, n1);
    }
}

/* ---------------------------------------------------------------- attention ---- */

static void test_attention(void) {
    /* One visible position: every head returns its KV head's v exactly. n_head 4, n_kv 2. */
    enum { HD = 3 };
    const float q[4 * HD] = {1, 2, 3, -1, 0, 2, 5, 5, 5, 0, 0, -9};
    const float k1[2 * HD] = {0.5f, -1, 2, 3, 1, 0};
    const float v1[2 * HD] = {10, 20, 30, -1, -2, -3};
    float o[4 * HD];
    CHECK_OK(ref_attention(o, q, k1, v1, 4, 2, HD, 0));
    for (int h = 0; h < 4; h++)
        for (int d = 0; d < HD; d++)
            CHECK_MSG(o[h * HD + d] == v1[(h / 2) * HD + d], "head %d dim %d: %g", h, d,
                      (double)o[h * HD + d]);

    /* Two positions, head_dim 2, q = (sqrt 2, 0): the scaled score is k[0], so k[0] of
     * 0 and ln 3 give weights 1/4, 3/4; with v (4,0) and (0,8) the output is (1, 6).
     * KV head 1 uses k[0] of 0 and -ln 3 (weights 3/4, 1/4): output (3, 2).
     * A third cache position with a huge score must stay invisible at n_past = 1. */
    const float s2 = 1.41421356237f, l3 = 1.09861228867f;
    const float q2[4 * 2] = {s2, 0, s2, 0, s2, 0, s2, 0};
    /* [pos][kv head][dim] */
    const float kc[3 * 2 * 2] = {0, 5, 0, -4, /**/ l3, -7, -l3, 2, /**/ 100, 0, 100, 0};
    const float vc[3 * 2 * 2] = {4, 0, 4, 0, /**/ 0, 8, 0, 8, /**/ 1000, 1000, 1000, 1000};
    const double want[4][2] = {{1, 6}, {1, 6}, {3, 2}, {3, 2}}; /* heads 0,1 -> kv 0 */
    float o2[4 * 2];
    CHECK_OK(ref_attention(o2, q2, kc, vc, 4, 2, 2, 1));
    for (int h = 0; h < 4; h++)
        CHECK_MSG(near(o2[2 * h], want[h][0], 1e-5) && near(o2[2 * h + 1], want[h][1], 1e-5),
                  "GQA head %d: (%g, %g), want (%g, %g)", h, (double)o2[2 * h],
                  (double)o2[2 * h + 1], want[h][0], want[h][1]);

    /* The f16 cache: on f16-rounded values it matches the f32 path; against the exact
     * values, only ln 3's rounding (< 2^-11 relative) moves the weights. */
    uint16_t kh[12], vh[12];
    float kr[12], vr[12], oh[8], orr[8];
    ref_f32_to_f16(kh, kc, 12);
    ref_f32_to_f16(vh, vc, 12);
    ref_f16_to_f32(kr, kh, 12);
    ref_f16_to_f32(vr, vh, 12);
    CHECK_OK(ref_attention_f16(oh, q2, kh, vh, 4, 2, 2, 1));
    CHECK_OK(ref_attention(orr, q2, kr, vr, 4, 2, 2, 1));
    CHECK(th_max_abs_diff(oh, orr, 8) <= 1e-6);
    for (int h = 0; h < 4; h++)
        CHECK(near(oh[2 * h], want[h][0], 2e-3) && near(oh[2 * h + 1], want[h][1], 4e-3));

    /* Larger random case, f16 vs f32 on the same rounded cache. */
    enum { NH = 8, NKV = 2, D = 16, NP = 37 };
    th_rng rng = {99};
    float *rq = malloc(NH * D * sizeof *rq), *rk = malloc(NP * NKV * D * sizeof *rk);
    float *rv = malloc(NP * NKV * D * sizeof *rv);
    uint16_t *rkh = malloc(NP * NKV * D * sizeof *rkh), *rvh = malloc(NP * NKV * D * sizeof *rvh);
    float ra[NH * D], rb[NH * D];
    th_fill_uniform(&rng, rq, NH * D, -2, 2);
    th_fill_uniform(&rng, rk, NP * NKV * D, -2, 2);
    th_fill_uniform(&rng, rv, NP * NKV * D, -2, 2);
    ref_f32_to_f16(rkh, rk, NP * NKV * D);
    ref_f32_to_f16(rvh, rv, NP * NKV * D);
    ref_f16_to_f32(rk, rkh, NP * NKV * D);
    ref_f16_to_f32(rv, rvh, NP * NKV * D);
    CHECK_OK(ref_attention(ra, rq, rk, rv, NH, NKV, D, NP - 1));
    CHECK_OK(ref_attention_f16(rb, rq, rkh, rvh, NH, NKV, D, NP - 1));
    CHECK(th_max_abs_diff(ra, rb, NH * D) <= 1e-6);
    /* Output is a convex combination of the visible v rows: inside their range per dim. */
    for (int h = 0; h < NH; h++)
        for (int d = 0; d < D; d++) {
            float lo = INFINITY, hi = -INFINITY;
            for (int t = 0; t < NP; t++) {
                float v = rv[(t * NKV + h / (NH / NKV)) * D + d];
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
            CHECK(ra[h * D + d] >= lo - 1e-6f && ra[h * D + d] <= hi + 1e-6f);
        }
    free(rq);
    free(rk);
    free(rv);
    free(rkh);
    free(rvh);

    CHECK(ref_attention(o, q, k1, v1, 3, 2, HD, 0) == VKLLM_ERR_INVALID_ARG);
    CHECK(ref_attention(o, q, k1, v1, 4, 0, HD, 0) == VKLLM_ERR_INVALID_ARG);
}

/* ---------------------------------------------------------------- end to end ---- */

/* The greedy ids in the derived JSON: the array that follows `key`. Returns the count. */
static int read_ids(const char *json, const char *key, int32_t *ids, int cap) {
    const char *p = strstr(json, key);
    if (!p || !(p = strchr(p, '['))) return 0;
    int n = 0;
    for (p++; *p && *p != ']' && n < cap;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) {
            p++;
            continue;
        }
        ids[n++] = (int32_t)v;
        p = end;
    }
    return n;
}

static const gguf_tensor *need_tensor(const gguf_file *f, const char *name, uint64_t ne0,
                                      uint64_t ne1) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    CHECK_MSG(t && t->ne[0] == ne0 && t->ne[1] == ne1 && t->data,
              "tensor %s missing or not [%llu, %llu]", name, (unsigned long long)ne0,
              (unsigned long long)ne1);
    return t && t->ne[0] == ne0 && t->ne[1] == ne1 && t->data ? t : NULL;
}

/* A LLaMA forward pass built from the ref_ ops alone, for one token at position pos.
 * buf: x, xb, q, ao (dim each), hb, hb2 (ffn each); kc, vc: (layers, n_ctx, kv_dim);
 * kh, vh: NULL, or the same shape in f16 to run attention on an f16 cache as the GPU does;
 * logits: (vocab). */
typedef struct e2e_model {
    uint32_t dim, ffn, layers, n_head, n_kv, hd, vocab, rot;
    float eps;
    const gguf_tensor *embd, *out_norm, *out;
    const gguf_tensor *attn_norm[8], *wq[8], *wk[8], *wv[8], *wo[8], *ffn_norm[8], *gate[8], *up[8],
        *down[8];
} e2e_model;

static int e2e_forward(const e2e_model *m, int32_t tok, size_t pos, size_t n_ctx, float *kc,
                       float *vc, uint16_t *kh, uint16_t *vh, float *buf, float *logits) {
    size_t kv_dim = (size_t)m->n_kv * m->hd;
    float *x = buf, *xb = x + m->dim, *q = xb + m->dim, *ao = q + m->dim, *hb = ao + m->dim,
          *hb2 = hb + m->ffn;
    int ok = 1;
    ok &= ref_embed(x, m->embd->data, m->embd->type, m->dim, m->vocab, tok) == VKLLM_OK;
    for (uint32_t l = 0; l < m->layers; l++) {
        float *kl = kc + (size_t)l * n_ctx * kv_dim, *vl = vc + (size_t)l * n_ctx * kv_dim;
        ref_rmsnorm(xb, x, m->attn_norm[l]->data, m->dim, m->eps);
        ok &= ref_matvec(q, m->wq[l]->data, m->wq[l]->type, m->dim, m->dim, xb) == VKLLM_OK;
        ok &= ref_matvec(kl + pos * kv_dim, m->wk[l]->data, m->wk[l]->type, kv_dim, m->dim, xb) ==
              VKLLM_OK;
        ok &= ref_matvec(vl + pos * kv_dim, m->wv[l]->data, m->wv[l]->type, kv_dim, m->dim, xb) ==
              VKLLM_OK;
        ref_rope(q, m->n_head, m->hd, m->rot, (int64_t)pos, 10000.0f, 1.0f, 0);
        ref_rope(kl + pos * kv_dim, m->n_kv, m->hd, m->rot, (int64_t)pos, 10000.0f, 1.0f, 0);
        if (kh) {
            size_t at = (size_t)l * n_ctx * kv_dim;
            ref_f32_to_f16(kh + at + pos * kv_dim, kl + pos * kv_dim, kv_dim);
            ref_f32_to_f16(vh + at + pos * kv_dim, vl + pos * kv_dim, kv_dim);
            ok &= ref_attention_f16(ao, q, kh + at, vh + at, m->n_head, m->n_kv, m->hd, pos) ==
                  VKLLM_OK;
        } else {
            ok &= ref_attention(ao, q, kl, vl, m->n_head, m->n_kv, m->hd, pos) == VKLLM_OK;
        }
        ok &= ref_matvec(xb, m->wo[l]->data, m->wo[l]->type, m->dim, m->dim, ao) == VKLLM_OK;
        ref_add(x, x, xb, m->dim);
        ref_rmsnorm(xb, x, m->ffn_norm[l]->data, m->dim, m->eps);
        ok &= ref_matvec(hb, m->gate[l]->data, m->gate[l]->type, m->ffn, m->dim, xb) == VKLLM_OK;
        ok &= ref_matvec(hb2, m->up[l]->data, m->up[l]->type, m->ffn, m->dim, xb) == VKLLM_OK;
        ref_swiglu(hb, hb, hb2, m->ffn);
        ok &= ref_matvec(xb, m->down[l]->data, m->down[l]->type, m->dim, m->ffn, hb) == VKLLM_OK;
        ref_add(x, x, xb, m->dim);
    }
    ref_rmsnorm(xb, x, m->out_norm->data, m->dim, m->eps);
    ok &= ref_matvec(logits, m->out->data, m->out->type, m->vocab, m->dim, xb) == VKLLM_OK;
    return ok;
}

static void test_stories260k(void) {
    char path[1024], ids_path[1024];
    if (!th_data_path("stories260K/stories260K.gguf", path, sizeof path)) return;
    if (!th_data_path("stories260K/stories260K_greedy_token_ids.derived.json", ids_path,
                      sizeof ids_path))
        return;
    enum { MAX_IDS = 300 };
    int32_t ids[MAX_IDS];
    char *json = th_read_file(ids_path, NULL);
    int n_ids = json ? read_ids(json, "\"greedy_empty_prompt_steps256\"", ids, MAX_IDS) : 0;
    free(json);
    CHECK_MSG(n_ids == 257 && ids[0] == 1, "read %d greedy ids", n_ids);
    if (n_ids < 2) return;

    gguf_file *f = NULL;
    CHECK_OK(gguf_open(path, &f));
    if (!f) return;
    e2e_model m = {0};
    CHECK_OK(gguf_get_u32(f, "llama.embedding_length", &m.dim));
    CHECK_OK(gguf_get_u32(f, "llama.feed_forward_length", &m.ffn));
    CHECK_OK(gguf_get_u32(f, "llama.block_count", &m.layers));
    CHECK_OK(gguf_get_u32(f, "llama.attention.head_count", &m.n_head));
    CHECK_OK(gguf_get_u32(f, "llama.attention.head_count_kv", &m.n_kv));
    CHECK_OK(gguf_get_u32(f, "llama.rope.dimension_count", &m.rot));
    CHECK_OK(gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &m.eps));
    CHECK(m.dim == 64 && m.ffn == 172 && m.layers == 5 && m.n_head == 8 && m.n_kv == 4);
    if (m.dim != 64 || m.layers != 5 || m.n_head != 8 || m.n_kv != 4) {
        gguf_close(f);
        return;
    }
    m.hd = m.dim / m.n_head;
    m.vocab = 512;
    uint32_t kv_dim = m.n_kv * m.hd;
    int ok = 1;
    ok &= (m.embd = need_tensor(f, "token_embd.weight", m.dim, m.vocab)) != NULL;
    ok &= (m.out_norm = need_tensor(f, "output_norm.weight", m.dim, 1)) != NULL;
    ok &= (m.out = need_tensor(f, "output.weight", m.dim, m.vocab)) != NULL;
    for (uint32_t l = 0; l < m.layers; l++) {
        char name[64];
#define E2E_T(field, suffix, ne0, ne1) \
    snprintf(name, sizeof name, "blk.%u." suffix ".weight", (unsigned)l); \
    ok &= (m.field[l] = need_tensor(f, name, ne0, ne1)) != NULL
        E2E_T(attn_norm, "attn_norm", m.dim, 1);
        E2E_T(wq, "attn_q", m.dim, m.dim);
        E2E_T(wk, "attn_k", m.dim, kv_dim);
        E2E_T(wv, "attn_v", m.dim, kv_dim);
        E2E_T(wo, "attn_output", m.dim, m.dim);
        E2E_T(ffn_norm, "ffn_norm", m.dim, 1);
        E2E_T(gate, "ffn_gate", m.dim, m.ffn);
        E2E_T(up, "ffn_up", m.dim, m.ffn);
        E2E_T(down, "ffn_down", m.ffn, m.dim);
#undef E2E_T
    }
    if (!ok) {
        gguf_close(f);
        return;
    }
    /* Norm weights are F32 vectors that ref_rmsnorm reads directly. */
    CHECK(m.out_norm->type == WTYPE_F32 && m.attn_norm[0]->type == WTYPE_F32);

    /* Greedy decoding from BOS, with an f32 cache and then with an f16 cache. */
    size_t n_ctx = (size_t)n_ids, cache = (size_t)m.layers * n_ctx * kv_dim;
    float *kc = calloc(cache, sizeof *kc), *vc = calloc(cache, sizeof *vc);
    uint16_t *kh = calloc(cache, sizeof *kh), *vh = calloc(cache, sizeof *vh);
    float *buf = malloc((4 * (size_t)m.dim + 2 * (size_t)m.ffn) * sizeof *buf);
    float *logits = malloc(m.vocab * sizeof *logits);
    for (int f16 = 0; f16 < 2; f16++) {
        int matched = 0;
        for (int pos = 0; pos + 1 < n_ids; pos++) {
            if (!e2e_forward(&m, ids[pos], (size_t)pos, n_ctx, kc, vc, f16 ? kh : NULL,
                             f16 ? vh : NULL, buf, logits)) {
                CHECK_MSG(0, "forward failed at position %d: %s", pos, th_last_error());
                break;
            }
            int32_t next = (int32_t)ref_argmax(logits, m.vocab);
            if (next != ids[pos + 1]) {
                CHECK_MSG(0, "%s cache, position %d: greedy token %d, llama2.c gives %d",
                          f16 ? "f16" : "f32", pos, (int)next, (int)ids[pos + 1]);
                break;
            }
            matched++;
        }
        CHECK_MSG(matched == n_ids - 1, "stories260K, %s cache: %d of %d greedy tokens match",
                  f16 ? "f16" : "f32", matched, n_ids - 1);
    }
    free(kc);
    free(vc);
    free(kh);
    free(vh);
    free(buf);
    free(logits);
    gguf_close(f);
}

int main(void) {
    test_elementwise();
    test_rmsnorm();
    test_softmax();
    test_f16();
    test_argmax();
    test_matvec_f32();
    test_matvec_f16();
    test_matvec_quant();
    test_rope();
    test_attention();
    test_stories260k();
    return th_finish();
}
