/* Streaming-read bandwidth of a device, timed with GPU timestamps. */
#include <stdio.h>
#include <stdlib.h>

#include "runtime/kern_stream.h"
#include "vk/util.h"

/* A configuration: access order, workgroup size, and the grid: for STRIDED the vec4s per
 * invocation per pass and a divisor of the one-pass group count; for RUNS a group count per
 * compute unit is not knowable, so a few small grids are tried. */
typedef struct stream_cfg {
    int runs;
    uint32_t wg, iters, groups_div, groups;
} stream_cfg;

static const stream_cfg configs[] = {
    {0, 256, 4, 1, 0},  {0, 64, 16, 1, 0}, {0, 256, 4, 16, 0}, {0, 64, 16, 4, 0}, {0, 32, 32, 8, 0},
    {1, 64, 0, 0, 2},   {1, 64, 0, 0, 4},  {1, 32, 0, 0, 8},   {1, 64, 0, 0, 64},
};

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static vkllm_status one_config(vk_device *dev, const vk_buf *src, uint64_t n4, const stream_cfg *cfg,
                               uint32_t reps, double *gbps) {
    uint64_t groups = cfg->groups;
    if (!cfg->runs) {
        uint64_t per_pass = (uint64_t)cfg->wg * cfg->iters;
        groups = (n4 + per_pass - 1) / per_pass / cfg->groups_div;
    }
    if (groups == 0) groups = 1;
    if (groups > 65535) groups = 65535;
    vk_buf dst;
    vkllm_status st = vk_buf_alloc(dev, VK_MEM_DEVICE, groups * 4, &dst);
    if (st) return st;
    char defines[32];
    if (cfg->runs) snprintf(defines, sizeof defines, "RUNS=1");
    else snprintf(defines, sizeof defines, "ITERS=%u", cfg->iters);
    vk_pipeline_desc d = {.shader = "stream_read.comp", .defines = defines, .n_bindings = 2,
                          .push_size = 4, .n_spec = 1, .spec = {cfg->wg}};
    vk_pipeline *p;
    vk_batch *b = NULL;
    uint32_t n = (uint32_t)(n4 * 4); /* uints */
    vk_bind bd[2] = {{src, 0, n4 * 16, 0}, {&dst, 0, groups * 4, 1}};
    double *ms = calloc(reps, sizeof *ms);
    if (!ms) st = vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    if (!st) st = vk_pipeline_get(dev, &d, &p);
    if (!st) st = vk_batch_begin(dev, &b);
    for (uint32_t r = 0; r < reps + 1 && !st; r++)
        st = vk_batch_dispatch(b, p, bd, 2, &n, (uint32_t)groups, 1, 1, "stream");
    if (!st) st = vk_batch_submit_wait(b);
    if (!st) {
        for (uint32_t r = 0; r < reps; r++) ms[r] = vk_batch_dispatch_ms(b, r + 1); /* 0 warms up */
        qsort(ms, reps, sizeof *ms, cmp_double);
        double med = ms[reps / 2];
        *gbps = med > 0 ? (double)n4 * 16 / (med * 1e6) : 0;
        if (med < 0) st = vkl_err(VKLLM_ERR_UNSUPPORTED, "no timestamps: open the device with enable_timestamps");
    }
    if (b) vk_batch_free(b);
    free(ms);
    vk_buf_free(dev, &dst);
    return st;
}

vkllm_status kern_stream_gbps(vk_device *dev, uint64_t bytes, uint32_t reps, double *gbps) {
    *gbps = 0;
    uint64_t limit = vk_device_props(dev)->max_storage_buffer_range / 16 * 16;
    if (bytes > limit) bytes = limit;
    uint64_t n4 = bytes / 16 ? bytes / 16 : 1;
    if (n4 > UINT32_MAX / 4) n4 = UINT32_MAX / 4;
    if (reps == 0) reps = 1;
    vk_buf src;
    vkllm_status st = vk_buf_alloc(dev, VK_MEM_DEVICE, n4 * 16, &src);
    if (st) return st;
    vk_batch *b;
    if (!(st = vk_batch_begin(dev, &b))) {
        st = vk_batch_fill(b, &src, 0, n4 * 16, 0x3c003c00u);
        if (!st) st = vk_batch_submit_wait(b);
        vk_batch_free(b);
    }
    for (size_t c = 0; !st && c < sizeof configs / sizeof configs[0]; c++) {
        double g = 0;
        st = one_config(dev, &src, n4, &configs[c], reps, &g);
        if (g > *gbps) *gbps = g;
    }
    vk_buf_free(dev, &src);
    return st;
}
