/* The first kernels against the CPU reference on the real device, at shapes that are and are
 * not multiples of the workgroup size, by normalized mean squared error. Also proves that a
 * deliberately broken variant is caught. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_harness.h"
#include "runtime/kern/kern_matmul.h"
#include "testkit/cpu_ref.h"
#include "runtime/format/wtype.h"

/* Exact ops (add, mul, conversion) differ from the reference only by rounding order: none.
 * Ops with exp/sqrt or reductions differ by float rounding: 1e-10 relative error energy. */
#define NMSE_EXACT 1e-12
#define NMSE_FLOAT 1e-10

static const uint32_t sizes[] = {1, 7, 63, 64, 65, 255, 256, 1000, 4097, 65537, 300001};
#define N_SIZES (sizeof sizes / sizeof sizes[0])

static th_rng rng = {42};

static double run_binary(th_gpu *g, kern_binary_op op, uint32_t n, const char *extra) {
    float *a = malloc(n * 4), *b = malloc(n * 4), *ref = malloc(n * 4), *got = malloc(n * 4);
    th_fill_uniform(&rng, a, n, -2, 2);
    th_fill_uniform(&rng, b, n, -2, 2);
    if (op == KERN_ADD) ref_add(ref, a, b, n);
    else ref_mul(ref, a, b, n);
    vk_buf ba = th_buf_from(g, a, n * 4), bb = th_buf_from(g, b, n * 4), bo = th_buf_zero(g, n * 4);
    kern_ctx k = th_begin(g, extra);
    CHECK_OK(kern_binary(&k, op, &ba, &bb, &bo, n));
    th_run(&k);
    th_buf_to(g, &bo, got, n * 4);
    double e = th_nmse(ref, got, n);
    vk_buf_free(g->dev, &ba);
    vk_buf_free(g->dev, &bb);
    vk_buf_free(g->dev, &bo);
    free(a), free(b), free(ref), free(got);
    return e;
}

static void test_binary(th_gpu *g) {
    for (size_t i = 0; i < N_SIZES; i++) {
        double e1 = run_binary(g, KERN_ADD, sizes[i], NULL);
        double e2 = run_binary(g, KERN_MUL, sizes[i], NULL);
        CHECK_MSG(e1 <= NMSE_EXACT, "add n=%u nmse %.3g", sizes[i], e1);
        CHECK_MSG(e2 <= NMSE_EXACT, "mul n=%u nmse %.3g", sizes[i], e2);
    }
    /* The broken variant skips the last element; the same comparison must reject it. The
     * threshold is what the real test uses, so this shows that test can fail. */
    for (uint32_t n = 1; n <= 4097; n += 1024) {
        double e = run_binary(g, KERN_ADD, n, "BROKEN_OFF_BY_ONE=1");
        CHECK_MSG(e > NMSE_EXACT, "broken add n=%u was not caught (nmse %.3g)", n, e);
    }
}

static void test_rows(th_gpu *g) {
    static const uint32_t shapes[][2] = {{1, 1}, {1, 7}, {3, 64}, {5, 127}, {2, 128}, {4, 129},
                                         {7, 1000}, {1, 4096}, {2, 5632}, {1, 32000}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        uint32_t rows = shapes[s][0], n = shapes[s][1];
        size_t total = (size_t)rows * n;
        float *x = malloc(total * 4), *w = malloc(n * 4), *ref = malloc(total * 4), *got = malloc(total * 4);
        th_fill_uniform(&rng, x, total, -4, 4);
        th_fill_uniform(&rng, w, n, 0.5f, 1.5f);
        vk_buf bx = th_buf_from(g, x, total * 4), bw = th_buf_from(g, w, n * 4), bo = th_buf_zero(g, total * 4);

        ref_rmsnorm_rows(ref, x, w, rows, n, 1e-5f);
        kern_ctx k = th_begin(g, NULL);
        CHECK_OK(kern_rmsnorm(&k, &bx, &bw, &bo, rows, n, 1e-5f));
        th_run(&k);
        th_buf_to(g, &bo, got, total * 4);
        double e = th_nmse(ref, got, total);
        CHECK_MSG(e <= NMSE_FLOAT, "rmsnorm %ux%u nmse %.3g", rows, n, e);

        /* Softmax inputs with a large offset: a kernel without max subtraction overflows. */
        for (size_t i = 0; i < total; i++) x[i] = x[i] * 3 + 80.0f;
        CHECK_OK(vk_buf_write(g->dev, &bx, 0, x, total * 4));
        memcpy(ref, x, total * 4);
        for (uint32_t r = 0; r < rows; r++) ref_softmax(ref + (size_t)r * n, n);
        k = th_begin(g, NULL);
        CHECK_OK(kern_softmax(&k, &bx, &bo, rows, n));
        th_run(&k);
        th_buf_to(g, &bo, got, total * 4);
        e = th_nmse(ref, got, total);
        CHECK_MSG(e <= NMSE_FLOAT, "softmax %ux%u nmse %.3g", rows, n, e);

        vk_buf_free(g->dev, &bx);
        vk_buf_free(g->dev, &bw);
        vk_buf_free(g->dev, &bo);
        free(x), free(w), free(ref), free(got);
    }
}

static void test_swiglu_convert(th_gpu *g) {
    for (size_t i = 0; i < N_SIZES; i++) {
        uint32_t n = sizes[i];
        float *a = malloc(n * 4), *b = malloc(n * 4), *ref = malloc(n * 4), *got = malloc(n * 4);
        uint16_t *h_ref = malloc(n * 2), *h_got = malloc(n * 2);
        th_fill_uniform(&rng, a, n, -8, 8);
        th_fill_uniform(&rng, b, n, -2, 2);
        vk_buf ba = th_buf_from(g, a, n * 4), bb = th_buf_from(g, b, n * 4), bo = th_buf_zero(g, n * 4);
        vk_buf bh = th_buf_zero(g, n * 2);

        ref_swiglu(ref, a, b, n);
        kern_ctx k = th_begin(g, NULL);
        CHECK_OK(kern_swiglu(&k, &ba, &bb, &bo, n));
        th_run(&k);
        th_buf_to(g, &bo, got, n * 4);
        double e = th_nmse(ref, got, n);
        CHECK_MSG(e <= NMSE_FLOAT, "swiglu n=%u nmse %.3g", n, e);

        /* f32 -> f16 must round exactly like the reference (round to nearest even). */
        ref_f32_to_f16(h_ref, a, n);
        k = th_begin(g, NULL);
        CHECK_OK(kern_convert(&k, 1, &ba, &bh, n));
        th_run(&k);
        th_buf_to(g, &bh, h_got, n * 2);
        size_t bad = 0;
        for (uint32_t j = 0; j < n; j++) bad += h_ref[j] != h_got[j];
        CHECK_MSG(bad == 0, "f32->f16 n=%u: %zu values differ from the reference", n, bad);

        /* and back: f16 -> f32 is exact. */
        ref_f16_to_f32(ref, h_ref, n);
        k = th_begin(g, NULL);
        CHECK_OK(kern_convert(&k, 0, &bh, &bo, n));
        th_run(&k);
        th_buf_to(g, &bo, got, n * 4);
        CHECK_MSG(memcmp(ref, got, n * 4) == 0, "f16->f32 n=%u differs from the reference", n);

        vk_buf_free(g->dev, &ba);
        vk_buf_free(g->dev, &bb);
        vk_buf_free(g->dev, &bo);
        vk_buf_free(g->dev, &bh);
        free(a), free(b), free(ref), free(got), free(h_ref), free(h_got);
    }
}

static void test_matvec(th_gpu *g) {
    static const uint32_t shapes[][2] = {{1, 1}, {3, 7}, {64, 64}, {65, 129}, {127, 1000},
                                         {256, 4096}, {1001, 288}, {32000, 64}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        uint32_t rows = shapes[s][0], cols = shapes[s][1];
        size_t nw = (size_t)rows * cols;
        float *w = malloc(nw * 4), *x = malloc(cols * 4), *ref = malloc(rows * 4), *got = malloc(rows * 4);
        uint16_t *wh = malloc(nw * 2);
        th_fill_uniform(&rng, w, nw, -1, 1);
        th_fill_uniform(&rng, x, cols, -1, 1);
        ref_f32_to_f16(wh, w, nw);
        for (int t = 0; t < 2; t++) {
            uint32_t type = t ? WTYPE_F16 : WTYPE_F32;
            const void *data = t ? (const void *)wh : (const void *)w;
            vk_buf bw = th_buf_from(g, data, nw * (t ? 2 : 4)), bx = th_buf_from(g, x, cols * 4);
            vk_buf by = th_buf_zero(g, rows * 4);
            CHECK_OK(ref_matvec(ref, data, type, rows, cols, x));
            kern_ctx k = th_begin(g, NULL);
            CHECK_OK(kern_matvec(&k, type, &bw, 0, &bx, 0, &by, 0, rows, cols));
            th_run(&k);
            th_buf_to(g, &by, got, rows * 4);
            double e = th_nmse(ref, got, rows);
            CHECK_MSG(e <= NMSE_FLOAT, "matvec %s %ux%u nmse %.3g", t ? "f16" : "f32", rows, cols, e);
            vk_buf_free(g->dev, &bw);
            vk_buf_free(g->dev, &bx);
            vk_buf_free(g->dev, &by);
        }
        free(w), free(x), free(ref), free(got), free(wh);
    }
}

int main(void) {
    th_gpu g;
    if (th_gpu_open(&g, NULL) == 0) {
        test_binary(&g);
        test_rows(&g);
        test_swiglu_convert(&g);
        test_matvec(&g);
    }
    th_gpu_close(&g);
    return th_finish();
}
