/* The Vulkan layer itself: opening one physical device twice with separate budgets, the
 * budget error, suballocation and reuse, transfers, binding checks, automatic barriers and
 * timestamps. */
#include <stdlib.h>
#include <string.h>

#include "gpu_harness.h"
#include "runtime/kern_stream.h"
#include "runtime/kernels.h"
#include "vkllm.h"

#define MiB (1024ull * 1024ull)

static void test_two_openings(void) {
    vk_instance *inst = NULL;
    CHECK_OK(vk_instance_create(1, &inst));
    if (!inst) return;
    CHECK(vk_device_count(inst) >= 1);
    vk_device_opts o1 = {.budget = 512 * MiB}, o2 = {.budget = 96 * MiB};
    vk_device *a = NULL, *b = NULL;
    CHECK_OK(vk_device_open(inst, 0, &o1, &a));
    /* The second opening uses descriptor sets from pools instead of push descriptors, so both
     * binding paths run below (devices without VK_KHR_push_descriptor take the second). */
    setenv("VKLLM_NO_PUSH_DESCRIPTORS", "1", 1);
    CHECK_OK(vk_device_open(inst, 0, &o2, &b));
    unsetenv("VKLLM_NO_PUSH_DESCRIPTORS");
    if (!a || !b) {
        vk_device_close(a);
        vk_device_close(b);
        vk_instance_destroy(inst);
        return;
    }
    CHECK(strcmp(vk_device_label(a), vk_device_label(b)) != 0);

    /* Each opening counts only its own allocations against its own budget. */
    vk_buf big_a, big_b, extra;
    CHECK_OK(vk_buf_alloc(a, VK_MEM_DEVICE, 300 * MiB, &big_a));
    CHECK_OK(vk_buf_alloc(b, VK_MEM_DEVICE, 80 * MiB, &big_b));
    vk_mem_stats sa, sb;
    vk_mem_get_stats(a, &sa);
    vk_mem_get_stats(b, &sb);
    CHECK(sa.budget == 512 * MiB && sb.budget == 96 * MiB);
    CHECK(sa.device_bytes >= 300 * MiB && sa.device_bytes <= 512 * MiB);
    CHECK(sb.device_bytes >= 80 * MiB && sb.device_bytes <= 96 * MiB);

    /* Past the budget: a clear out-of-memory status naming the sizes. */
    vkllm_status st = vk_buf_alloc(b, VK_MEM_DEVICE, 32 * MiB, &extra);
    CHECK_MSG(st == VKLLM_ERR_OUT_OF_MEMORY, "allocation past the budget gave %d", st);
    const char *msg = vkllm_last_error();
    CHECK_MSG(strstr(msg, "96.0 MiB") && strstr(msg, "32.0 MiB"), "message lacks sizes: %s", msg);
    st = vk_buf_alloc(a, VK_MEM_DEVICE, 300 * MiB, &extra);
    CHECK_MSG(st == VKLLM_ERR_OUT_OF_MEMORY, "second 300 MiB on a 512 MiB budget gave %d", st);

    /* Freeing returns the block, after which the same request fits. */
    vk_buf_free(b, &big_b);
    vk_mem_get_stats(b, &sb);
    CHECK(sb.device_bytes == 0 && sb.used_bytes == 0);
    CHECK_OK(vk_buf_alloc(b, VK_MEM_DEVICE, 32 * MiB, &extra));
    vk_buf_free(b, &extra);
    vk_buf_free(a, &big_a);

    /* Both openings compute independently. */
    float x[1000], y[1000], out[1000];
    for (int i = 0; i < 1000; i++) x[i] = (float)i, y[i] = 0.5f;
    vk_device *devs[2] = {a, b};
    for (int d = 0; d < 2; d++) {
        vk_buf bx, by, bo;
        CHECK_OK(vk_buf_alloc(devs[d], VK_MEM_DEVICE, sizeof x, &bx));
        CHECK_OK(vk_buf_alloc(devs[d], VK_MEM_DEVICE, sizeof y, &by));
        CHECK_OK(vk_buf_alloc(devs[d], VK_MEM_DEVICE, sizeof out, &bo));
        CHECK_OK(vk_buf_write(devs[d], &bx, 0, x, sizeof x));
        CHECK_OK(vk_buf_write(devs[d], &by, 0, y, sizeof y));
        kern_ctx k = {.dev = devs[d]};
        CHECK_OK(vk_batch_begin(devs[d], &k.batch));
        CHECK_OK(kern_binary(&k, KERN_ADD, &bx, &by, &bo, 1000));
        CHECK_OK(vk_batch_submit_wait(k.batch));
        vk_batch_free(k.batch);
        CHECK_OK(vk_buf_read(devs[d], &bo, 0, out, sizeof out));
        CHECK(out[0] == 0.5f && out[999] == 999.5f);
        vk_buf_free(devs[d], &bx);
        vk_buf_free(devs[d], &by);
        vk_buf_free(devs[d], &bo);
    }
    vk_device_close(a);
    vk_device_close(b);
    CHECK_MSG(vk_validation_messages(inst) == 0, "validation messages: %u", vk_validation_messages(inst));
    vk_instance_destroy(inst);

    /* A device index past the end is a status, not a crash. */
    CHECK_OK(vk_instance_create(0, &inst));
    vk_device *none = NULL;
    CHECK(vk_device_open(inst, 99, NULL, &none) == VKLLM_ERR_NO_DEVICE && none == NULL);
    vk_instance_destroy(inst);
}

static void test_allocator(th_gpu *g) {
    /* Many small buffers share blocks, with aligned, non-overlapping offsets; data written to
     * each survives the others' writes. */
    enum { N = 200 };
    vk_buf bufs[N];
    uint32_t align = vk_device_props(g->dev)->min_storage_buffer_offset_alignment;
    for (int i = 0; i < N; i++) {
        uint64_t size = 4 + (uint64_t)(i * 37 % 5000) * 4;
        CHECK_OK(vk_buf_alloc(g->dev, VK_MEM_DEVICE, size, &bufs[i]));
        CHECK(bufs[i].offset % align == 0);
        uint32_t tag[4] = {(uint32_t)i, (uint32_t)i * 3u, 7u, (uint32_t)size};
        CHECK_OK(vk_buf_write(g->dev, &bufs[i], size - 16 >= size ? 0 : (size >= 16 ? size - 16 : 0), tag,
                              size >= 16 ? 16 : size));
    }
    vk_mem_stats s;
    vk_mem_get_stats(g->dev, &s);
    CHECK_MSG(s.blocks == 1, "200 small buffers used %u blocks", s.blocks);
    for (int i = 0; i < N; i++) {
        for (int j = i + 1; j < N; j++) {
            if (bufs[i].buffer != bufs[j].buffer) continue;
            int disjoint = bufs[i].offset + bufs[i].size <= bufs[j].offset ||
                           bufs[j].offset + bufs[j].size <= bufs[i].offset;
            if (!disjoint) CHECK_MSG(0, "buffers %d and %d overlap", i, j);
        }
        if (bufs[i].size >= 16) {
            uint32_t tag[4];
            CHECK_OK(vk_buf_read(g->dev, &bufs[i], bufs[i].size - 16, tag, 16));
            CHECK(tag[0] == (uint32_t)i && tag[3] == bufs[i].size);
        }
    }
    /* Free every other one, then reallocate: freed ranges are reused (no new block). */
    for (int i = 0; i < N; i += 2) vk_buf_free(g->dev, &bufs[i]);
    for (int i = 0; i < N; i += 2) CHECK_OK(vk_buf_alloc(g->dev, VK_MEM_DEVICE, 64, &bufs[i]));
    vk_mem_get_stats(g->dev, &s);
    CHECK(s.blocks == 1);
    for (int i = 0; i < N; i++) vk_buf_free(g->dev, &bufs[i]);
    vk_mem_get_stats(g->dev, &s);
    CHECK(s.used_bytes == 0 && s.device_bytes == 0);

    /* Out-of-range transfers are refused. */
    vk_buf b;
    CHECK_OK(vk_buf_alloc(g->dev, VK_MEM_HOST, 64, &b));
    char junk[128] = {0};
    CHECK(vk_buf_write(g->dev, &b, 32, junk, 64) == VKLLM_ERR_INVALID_ARG);
    CHECK(vk_buf_read(g->dev, &b, 65, junk, 1) == VKLLM_ERR_INVALID_ARG);
    vk_buf_free(g->dev, &b);
}

static void test_batches(th_gpu *g) {
    enum { N = 4096 };
    float *x = malloc(N * 4), *out = malloc(N * 4);
    for (int i = 0; i < N; i++) x[i] = (float)(i % 17);
    vk_buf a = th_buf_from(g, x, N * 4), b = th_buf_from(g, x, N * 4);
    vk_buf t1 = th_buf_zero(g, N * 4), t2 = th_buf_zero(g, N * 4), t3 = th_buf_zero(g, N * 4);

    /* Two independent dispatches need no barrier; a dependent third needs exactly one. */
    kern_ctx k = th_begin(g, NULL);
    CHECK_OK(kern_binary(&k, KERN_ADD, &a, &b, &t1, N));
    CHECK_OK(kern_binary(&k, KERN_MUL, &a, &b, &t2, N));
    CHECK(vk_batch_barrier_count(k.batch) == 0);
    CHECK_OK(kern_binary(&k, KERN_ADD, &t1, &t2, &t3, N)); /* reads t1, t2: RAW */
    CHECK(vk_batch_barrier_count(k.batch) == 1);
    CHECK_OK(kern_binary(&k, KERN_ADD, &a, &b, &t1, N)); /* writes t1 read by the last: WAR */
    CHECK(vk_batch_barrier_count(k.batch) == 2);
    CHECK(vk_batch_dispatch_count(k.batch) == 4);
    th_run(&k);
    th_buf_to(g, &t3, out, N * 4);
    int bad = 0;
    for (int i = 0; i < N; i++) bad += out[i] != x[i] + x[i] + x[i] * x[i];
    CHECK_MSG(bad == 0, "%d wrong values after a dependent chain", bad);

    /* Bindings that break device rules are refused before reaching the driver. */
    vk_pipeline_desc d = {.shader = "binary.comp", .defines = "OP_ADD=1", .n_bindings = 3,
                          .push_size = 4, .n_spec = 1, .spec = {64}};
    vk_pipeline *p;
    CHECK_OK(vk_pipeline_get(g->dev, &d, &p));
    vk_batch *batch;
    CHECK_OK(vk_batch_begin(g->dev, &batch));
    uint32_t n = 16;
    uint32_t align = vk_device_props(g->dev)->min_storage_buffer_offset_alignment;
    vk_bind misaligned[3] = {{&a, align > 1 ? 4 : 0, 64, 0}, {&b, 0, 64, 0}, {&t1, 0, 64, 1}};
    if (align > 4) CHECK(vk_batch_dispatch(batch, p, misaligned, 3, &n, 1, 1, 1, "x") == VKLLM_ERR_INVALID_ARG);
    vk_bind overrun[3] = {{&a, 0, N * 4 + 4, 0}, {&b, 0, 64, 0}, {&t1, 0, 64, 1}};
    CHECK(vk_batch_dispatch(batch, p, overrun, 3, &n, 1, 1, 1, "x") == VKLLM_ERR_INVALID_ARG);
    CHECK(vk_batch_dispatch(batch, p, overrun, 2, &n, 1, 1, 1, "x") == VKLLM_ERR_INVALID_ARG);
    CHECK_OK(vk_batch_submit_wait(batch));
    vk_batch_free(batch);

    /* A shader that does not compile reports its name and glslang's log. */
    vk_pipeline_desc bad_desc = d;
    bad_desc.defines = "OP_ADD=1;n=+";
    CHECK(vk_pipeline_get(g->dev, &bad_desc, &p) == VKLLM_ERR_SHADER);
    CHECK_MSG(strstr(vkllm_last_error(), "binary.comp") != NULL, "message: %s", vkllm_last_error());
    bad_desc.shader = "no_such_shader.comp";
    CHECK(vk_pipeline_get(g->dev, &bad_desc, &p) == VKLLM_ERR_SHADER);

    vk_buf *all[] = {&a, &b, &t1, &t2, &t3};
    for (int i = 0; i < 5; i++) vk_buf_free(g->dev, all[i]);
    free(x);
    free(out);
}

static void test_timestamps(void) {
    th_gpu g;
    vk_device_opts o = {.enable_timestamps = 1};
    if (th_gpu_open(&g, &o) != 0) {
        th_gpu_close(&g);
        return;
    }
    enum { N = 1 << 20 };
    float *x = calloc(N, 4);
    vk_buf a = th_buf_from(&g, x, N * 4), t = th_buf_zero(&g, N * 4);
    kern_ctx k = th_begin(&g, NULL);
    CHECK_OK(kern_binary(&k, KERN_ADD, &a, &a, &t, N));
    CHECK_OK(kern_binary(&k, KERN_MUL, &t, &a, &t, N));
    CHECK_OK(vk_batch_submit_wait(k.batch));
    double total = 0;
    for (uint32_t i = 0; i < vk_batch_dispatch_count(k.batch); i++) {
        double ms = vk_batch_dispatch_ms(k.batch, i);
        CHECK_MSG(ms >= 0 && ms < 10000, "dispatch %u (%s): %.3f ms", i, vk_batch_dispatch_label(k.batch, i), ms);
        total += ms;
    }
    CHECK(total > 0);
    CHECK(strcmp(vk_batch_dispatch_label(k.batch, 1), "mul") == 0);
    vk_batch_free(k.batch);
    vk_buf_free(g.dev, &a);
    vk_buf_free(g.dev, &t);
    free(x);
    /* The bandwidth yardstick runs every configuration cleanly and reports a positive rate. */
    double gbps = 0;
    CHECK_OK(kern_stream_gbps(g.dev, 4 << 20, 1, &gbps));
    CHECK_MSG(gbps > 0.01 && gbps < 100000, "stream read %.3f GB/s", gbps);
    th_gpu_close(&g);
}

int main(void) {
    test_two_openings();
    th_gpu g;
    if (th_gpu_open(&g, NULL) == 0) {
        test_allocator(&g);
        test_batches(&g);
    }
    th_gpu_close(&g);
    test_timestamps();
    return th_finish();
}
