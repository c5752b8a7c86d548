/* Implementation of the GPU test fixture declared in gpu_harness.h. */
#include "gpu_harness.h"

#include <string.h>

#include "vkllm.h"

int th_gpu_open(th_gpu *g, const vk_device_opts *opts) {
    memset(g, 0, sizeof *g);
    CHECK_OK(vk_instance_create(1, &g->inst));
    if (!g->inst) return -1;
    const vkllm_device_info *infos = vk_device_info(g->inst, 0);
    uint32_t n = vk_device_count(g->inst);
    uint32_t idx = n ? vkllm_default_device(infos, n) : 0;
    CHECK_OK(vk_device_open(g->inst, idx, opts, &g->dev));
    return g->dev ? 0 : -1;
}

void th_gpu_close(th_gpu *g) {
    vk_device_close(g->dev);
    if (g->inst) {
        uint32_t msgs = vk_validation_messages(g->inst);
        CHECK_MSG(msgs == 0, "the validation layer reported %u message(s) (see stderr)", msgs);
    }
    vk_instance_destroy(g->inst);
    memset(g, 0, sizeof *g);
}

vk_buf th_buf_from(th_gpu *g, const void *data, uint64_t size) {
    vk_buf b;
    CHECK_OK(vk_buf_alloc(g->dev, VK_MEM_DEVICE, size, &b));
    if (b.block) CHECK_OK(vk_buf_write(g->dev, &b, 0, data, size));
    return b;
}

vk_buf th_buf_zero(th_gpu *g, uint64_t size) {
    vk_buf b;
    CHECK_OK(vk_buf_alloc(g->dev, VK_MEM_DEVICE, size, &b));
    return b;
}

void th_buf_to(th_gpu *g, const vk_buf *b, void *out, uint64_t size) {
    CHECK_OK(vk_buf_read(g->dev, b, 0, out, size));
}

kern_ctx th_begin(th_gpu *g, const char *extra_defines) {
    kern_ctx k = {.dev = g->dev, .extra_defines = extra_defines};
    CHECK_OK(vk_batch_begin(g->dev, &k.batch));
    return k;
}

void th_run(kern_ctx *k) {
    if (!k->batch) return;
    CHECK_OK(vk_batch_submit_wait(k->batch));
    vk_batch_free(k->batch);
    k->batch = NULL;
}
