/* Recording of the basic kernels (elementwise, norms, softmax, conversion, float matvec).
 * Each function builds the variant's defines, fetches the memoized pipeline and dispatches. */
#include <stdio.h>
#include <string.h>

#include "runtime/kern/kernels.h"
#include "base/util.h"

#define WG_ELEMENTWISE 256
#define WG_REDUCE 128

static vkllm_status get_pipeline(kern_ctx *k, const char *shader, const char *defines,
                                 uint32_t n_bind, uint32_t push, uint32_t wg, vk_pipeline **out) {
    char all[512];
    snprintf(all, sizeof all, "%s%s%s", defines ? defines : "",
             (defines && *defines && k->extra_defines) ? ";" : "", k->extra_defines ? k->extra_defines : "");
    vk_pipeline_desc d = {.shader = shader, .defines = all, .n_bindings = n_bind, .push_size = push,
                          .n_spec = 1, .spec = {wg}};
    return vk_pipeline_get(k->dev, &d, out);
}

uint64_t kern_max_binding(const kern_ctx *k) {
    uint64_t m = vk_device_props(k->dev)->max_storage_buffer_range;
    if (k->max_binding_override && k->max_binding_override < m) m = k->max_binding_override;
    return m;
}

void kern_grid_1d(const vk_device *dev, uint64_t n, uint32_t wg, uint32_t *gx, uint32_t *gy) {
    uint64_t groups = (n + wg - 1) / wg;
    if (groups == 0) groups = 1;
    uint64_t maxx = vk_device_props(dev)->max_workgroup_count[0];
    if (maxx > 65535) maxx = 65535; /* keeps gy small and portable */
    uint64_t x = groups < maxx ? groups : maxx;
    *gx = (uint32_t)x;
    *gy = (uint32_t)((groups + x - 1) / x);
}

static vkllm_status elementwise(kern_ctx *k, const char *shader, const char *defines,
                                const vk_bind *binds, uint32_t n_binds, uint32_t n, const char *label) {
    vk_pipeline *p;
    vkllm_status st = get_pipeline(k, shader, defines, n_binds, 4, WG_ELEMENTWISE, &p);
    if (st) return st;
    uint32_t gx, gy;
    kern_grid_1d(k->dev, n, WG_ELEMENTWISE, &gx, &gy);
    return vk_batch_dispatch(k->batch, p, binds, n_binds, &n, gx, gy, 1, label);
}

vkllm_status kern_binary(kern_ctx *k, kern_binary_op op, const vk_buf *a, const vk_buf *b,
                         const vk_buf *out, uint32_t n) {
    vk_bind bd[3] = {{a, 0, (uint64_t)n * 4, 0}, {b, 0, (uint64_t)n * 4, 0}, {out, 0, (uint64_t)n * 4, 1}};
    return elementwise(k, "binary.comp", op == KERN_MUL ? "OP_MUL=1" : "OP_ADD=1", bd, 3, n,
                       op == KERN_MUL ? "mul" : "add");
}

vkllm_status kern_swiglu(kern_ctx *k, const vk_buf *gate, const vk_buf *up, const vk_buf *out, uint32_t n) {
    vk_bind bd[3] = {{gate, 0, (uint64_t)n * 4, 0}, {up, 0, (uint64_t)n * 4, 0}, {out, 0, (uint64_t)n * 4, 1}};
    return elementwise(k, "swiglu.comp", NULL, bd, 3, n, "swiglu");
}

vkllm_status kern_convert(kern_ctx *k, int to_f16, const vk_buf *src, const vk_buf *dst, uint32_t n) {
    uint64_t s = (uint64_t)n * (to_f16 ? 4 : 2), d = (uint64_t)n * (to_f16 ? 2 : 4);
    vk_bind bd[2] = {{src, 0, s, 0}, {dst, 0, d, 1}};
    return elementwise(k, "convert.comp", to_f16 ? "TO_F16=1" : NULL, bd, 2, n, to_f16 ? "f32_to_f16" : "f16_to_f32");
}

vkllm_status kern_rmsnorm(kern_ctx *k, const vk_buf *x, const vk_buf *w, const vk_buf *out,
                          uint32_t rows, uint32_t n, float eps) {
    vk_pipeline *p;
    struct { uint32_t n; float eps; } pc = {n, eps};
    vkllm_status st = get_pipeline(k, "rmsnorm.comp", NULL, 3, sizeof pc, WG_REDUCE, &p);
    if (st) return st;
    uint64_t bytes = (uint64_t)rows * n * 4;
    vk_bind bd[3] = {{x, 0, bytes, 0}, {w, 0, (uint64_t)n * 4, 0}, {out, 0, bytes, 1}};
    return vk_batch_dispatch(k->batch, p, bd, 3, &pc, rows, 1, 1, "rmsnorm");
}

vkllm_status kern_softmax(kern_ctx *k, const vk_buf *x, const vk_buf *out, uint32_t rows, uint32_t n) {
    vk_pipeline *p;
    vkllm_status st = get_pipeline(k, "softmax.comp", NULL, 2, 4, WG_REDUCE, &p);
    if (st) return st;
    uint64_t bytes = (uint64_t)rows * n * 4;
    vk_bind bd[2] = {{x, 0, bytes, 0}, {out, 0, bytes, 1}};
    return vk_batch_dispatch(k->batch, p, bd, 2, &n, rows, 1, 1, "softmax");
}
