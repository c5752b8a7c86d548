/* Streaming-read bandwidth of a device, timed with GPU timestamps. A pass reads a buffer much
 * larger than any cache, in binding-sized slices; the median of several passes is the figure,
 * and their spread says how far to trust it. */
#include <stdio.h>
#include <stdlib.h>

#include "runtime/kern/kern_stream.h"
#include "base/util.h"

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

#define PROBE_BYTES (32ull << 20)
#define MIN_BYTES (16ull << 20)
#define MAX_GROUPS 65535u

/* The buffer a pass reads: allocations of its own, cut into slices of one binding each. */
typedef struct stream_src {
    vk_buf *bufs;
    uint32_t n_bufs;
    vk_bind *slices; /* read-only bindings into bufs */
    uint32_t n_slices;
    uint64_t bytes;
} stream_src;

static void src_free(vk_device *dev, stream_src *s) {
    for (uint32_t i = 0; i < s->n_bufs; i++) vk_buf_free(dev, &s->bufs[i]);
    free(s->bufs);
    free(s->slices);
    *s = (stream_src){0};
}

/* Allocates and fills `bytes` (a multiple of `unit`) as allocations of at most `alloc` bytes,
 * each a whole number of slices of at most `slice` bytes. */
static vkllm_status src_alloc(vk_device *dev, uint64_t bytes, uint64_t slice, uint64_t alloc, stream_src *s) {
    *s = (stream_src){0};
    uint64_t per_buf = alloc / slice * slice;
    uint64_t n_bufs = (bytes + per_buf - 1) / per_buf, n_slices = (bytes + slice - 1) / slice;
    s->bufs = calloc(n_bufs, sizeof *s->bufs);
    s->slices = calloc(n_slices, sizeof *s->slices);
    if (!s->bufs || !s->slices) {
        src_free(dev, s);
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    }
    vkllm_status st = VKLLM_OK;
    for (uint64_t done = 0; !st && done < bytes; s->n_bufs++) {
        uint64_t size = bytes - done < per_buf ? bytes - done : per_buf;
        vk_buf *b = &s->bufs[s->n_bufs];
        st = vk_buf_alloc_dedicated(dev, VK_MEM_DEVICE, size, b);
        if (st) break;
        for (uint64_t off = 0; off < size; off += slice)
            s->slices[s->n_slices++] = (vk_bind){b, off, size - off < slice ? size - off : slice, 0};
        done += size;
    }
    vk_batch *fill = NULL;
    if (!st) st = vk_batch_begin(dev, &fill);
    for (uint32_t i = 0; !st && i < s->n_bufs; i++) st = vk_batch_fill(fill, &s->bufs[i], 0, s->bufs[i].size, 0x3c003c00u);
    if (!st) st = vk_batch_submit_wait(fill);
    if (fill) vk_batch_free(fill);
    if (st) {
        src_free(dev, s);
        return st;
    }
    s->bytes = bytes;
    return VKLLM_OK;
}

static uint64_t cfg_groups(const stream_cfg *cfg, uint64_t n4) {
    uint64_t groups = cfg->groups;
    if (!cfg->runs) {
        uint64_t per_pass = (uint64_t)cfg->wg * cfg->iters;
        groups = (n4 + per_pass - 1) / per_pass / cfg->groups_div;
    }
    if (groups == 0) groups = 1;
    return groups > MAX_GROUPS ? MAX_GROUPS : groups;
}

/* Times 1 + passes passes of cfg over the first n_slices slices (the first pass warms up);
 * ms[p] is the GPU time of timed pass p, the sum over its slices. */
static vkllm_status time_config(vk_device *dev, const stream_src *src, uint32_t n_slices, const stream_cfg *cfg,
                                uint32_t passes, double *ms) {
    uint64_t max_groups = 1;
    for (uint32_t i = 0; i < n_slices; i++) {
        uint64_t g = cfg_groups(cfg, src->slices[i].size / 16);
        if (g > max_groups) max_groups = g;
    }
    vk_buf dst;
    vkllm_status st = vk_buf_alloc(dev, VK_MEM_DEVICE, max_groups * 4, &dst);
    if (st) return st;
    char defines[32];
    if (cfg->runs) snprintf(defines, sizeof defines, "RUNS=1");
    else snprintf(defines, sizeof defines, "ITERS=%u", cfg->iters);
    vk_pipeline_desc d = {.shader = "stream_read.comp", .defines = defines, .n_bindings = 2,
                          .push_size = 4, .n_spec = 1, .spec = {cfg->wg}};
    vk_pipeline *p;
    st = vk_pipeline_get(dev, &d, &p);
    for (uint32_t pass = 0; !st && pass <= passes; pass++) {
        vk_batch *b = NULL;
        st = vk_batch_begin(dev, &b);
        for (uint32_t i = 0; !st && i < n_slices; i++) {
            uint64_t groups = cfg_groups(cfg, src->slices[i].size / 16);
            uint32_t n = (uint32_t)(src->slices[i].size / 4); /* uints, a multiple of 4 */
            vk_bind bd[2] = {src->slices[i], {&dst, 0, groups * 4, 1}};
            st = vk_batch_dispatch(b, p, bd, 2, &n, (uint32_t)groups, 1, 1, "stream");
        }
        if (!st) st = vk_batch_submit_wait(b);
        double t = 0;
        for (uint32_t i = 0; !st && i < n_slices; i++) {
            double one = vk_batch_dispatch_ms(b, i);
            if (one < 0) st = vkl_err(VKLLM_ERR_UNSUPPORTED, "no timestamps: open the device with enable_timestamps");
            t += one;
        }
        if (!st && pass > 0) ms[pass - 1] = t;
        if (b) vk_batch_free(b);
    }
    vk_buf_free(dev, &dst);
    return st;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, uint32_t n) {
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

vkllm_status kern_stream_measure(vk_device *dev, uint64_t bytes, uint32_t passes, kern_stream_result *out) {
    *out = (kern_stream_result){0};
    const vkllm_device_info *info = vk_device_props(dev);
    uint64_t unit = vk_alloc_alignment(info->min_storage_buffer_offset_alignment);
    /* A slice is one binding: within maxStorageBufferRange and the shader's 32-bit count of
     * uints; an allocation holds whole slices within the allocation and buffer limits. */
    uint64_t slice = info->max_storage_buffer_range;
    if (slice > (uint64_t)UINT32_MAX / 4 * 4) slice = (uint64_t)UINT32_MAX / 4 * 4;
    slice = slice / unit * unit;
    uint64_t alloc = info->max_memory_allocation_size < info->max_buffer_size ? info->max_memory_allocation_size
                                                                                : info->max_buffer_size;
    if (alloc && alloc < slice) slice = alloc / unit * unit;
    if (!alloc) alloc = slice;
    if (slice == 0) return vkl_err(VKLLM_ERR_UNSUPPORTED, "%s: binding limits too small to measure", vk_device_label(dev));
    bytes = bytes / unit * unit;
    if (bytes < unit) bytes = unit;
    if (passes == 0) passes = 1;

    stream_src src;
    vkllm_status st;
    for (;;) {
        st = src_alloc(dev, bytes, slice, alloc, &src);
        if (st != VKLLM_ERR_OUT_OF_MEMORY || bytes <= MIN_BYTES) break;
        bytes = bytes / 2 / unit * unit;
        if (bytes < MIN_BYTES) bytes = MIN_BYTES;
    }
    if (st) return st;
    double *ms = calloc(passes > 2 ? passes : 2, sizeof *ms);
    if (!ms) st = vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    /* Choose the access order on a probe: the first slice, cut to PROBE_BYTES, read twice. */
    stream_src probe = src;
    vk_bind first = src.slices[0];
    if (first.size > PROBE_BYTES) first.size = PROBE_BYTES;
    probe.slices = &first;
    size_t best = 0;
    double best_ms = -1;
    for (size_t c = 0; !st && c < sizeof configs / sizeof configs[0]; c++) {
        st = time_config(dev, &probe, 1, &configs[c], 2, ms);
        double t = ms[0] < ms[1] ? ms[0] : ms[1];
        if (!st) vkl_log(VKLLM_LOG_DEBUG, "stream probe %s wg %u iters %u groups %u/%u: %.3f GB/s", configs[c].runs ? "runs" : "strided",
                         configs[c].wg, configs[c].iters, configs[c].groups, configs[c].groups_div, t > 0 ? first.size / (t * 1e6) : 0);
        if (!st && (best_ms < 0 || t < best_ms)) best_ms = t, best = c;
    }
    if (!st) st = time_config(dev, &src, src.n_slices, &configs[best], passes, ms);
    if (!st) {
        double gb = (double)src.bytes / 1e9;
        double med = median(ms, passes); /* sorts: ms[0] is the fastest pass */
        out->gbps = med > 0 ? gb / (med / 1e3) : 0;
        out->gbps_max = ms[0] > 0 ? gb / (ms[0] / 1e3) : 0;
        out->gbps_min = ms[passes - 1] > 0 ? gb / (ms[passes - 1] / 1e3) : 0;
        out->bytes = src.bytes;
        out->passes = passes;
        out->bindings = src.n_slices;
    }
    free(ms);
    src_free(dev, &src);
    return st;
}

vkllm_status kern_stream_gbps(vk_device *dev, uint64_t bytes, uint32_t reps, double *gbps) {
    kern_stream_result r;
    vkllm_status st = kern_stream_measure(dev, bytes, reps, &r);
    *gbps = r.gbps;
    return st;
}
