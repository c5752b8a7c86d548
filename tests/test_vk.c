/* The Vulkan layer itself: opening one physical device twice with separate budgets, the
 * budget error, suballocation and reuse, dedicated and imported allocations, views, buffers
 * refused by another opening's batches, transfers through the staging ring, binding checks,
 * automatic barriers, batches in flight on two openings, and timestamps. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gpu_harness.h"
#include "runtime/kern/kern_stream.h"
#include "runtime/kern/kernels.h"
#include "vkllm.h"

#define MiB (1024ull * 1024ull)

static uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

static int same_stats(const vk_mem_stats *x, const vk_mem_stats *y) {
    return x->device_bytes == y->device_bytes && x->host_bytes == y->host_bytes &&
           x->imported_bytes == y->imported_bytes && x->used_bytes == y->used_bytes &&
           x->blocks == y->blocks;
}

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
    vk_pipeline_desc bad_mask = d;
    bad_mask.uniform_mask = 1u << d.n_bindings; /* a uniform binding the pipeline does not have */
    CHECK(vk_pipeline_get(g->dev, &bad_mask, &p) == VKLLM_ERR_INVALID_ARG);

    vk_buf *all[] = {&a, &b, &t1, &t2, &t3};
    for (int i = 0; i < 5; i++) vk_buf_free(g->dev, all[i]);
    free(x);
    free(out);
}

/* Dedicated allocations hold exactly their rounded size, never share a block, and give
 * everything back when freed; the budget refuses them like any block. */
static void test_dedicated(vk_device *a, vk_device *b) {
    uint64_t align = vk_alloc_alignment(vk_device_props(a)->min_storage_buffer_offset_alignment);
    vk_buf keep, d1, d2, h1, small, x;
    CHECK_OK(vk_buf_alloc(a, VK_MEM_DEVICE, 1000, &keep)); /* a shared block exists */
    vk_mem_stats s0, s1, s2;
    vk_mem_get_stats(a, &s0);
    CHECK_OK(vk_buf_alloc_dedicated(a, VK_MEM_DEVICE, 1000, &d1));
    CHECK_OK(vk_buf_alloc_dedicated(a, VK_MEM_DEVICE, 0, &d2));
    CHECK_OK(vk_buf_alloc_dedicated(a, VK_MEM_HOST, 3 * MiB + 5, &h1));
    vk_mem_get_stats(a, &s1);
    uint64_t dev_bytes = round_up(1000, align) + align, host_bytes = round_up(3 * MiB + 5, align);
    CHECK_MSG(s1.device_bytes - s0.device_bytes == dev_bytes, "dedicated device bytes %llu, expected %llu",
              (unsigned long long)(s1.device_bytes - s0.device_bytes), (unsigned long long)dev_bytes);
    CHECK_MSG(s1.host_bytes - s0.host_bytes == host_bytes, "dedicated host bytes %llu, expected %llu",
              (unsigned long long)(s1.host_bytes - s0.host_bytes), (unsigned long long)host_bytes);
    CHECK(s1.used_bytes - s0.used_bytes == dev_bytes + host_bytes);
    CHECK(s1.blocks == s0.blocks + 3);
    CHECK(s1.imported_bytes == 0);
    CHECK(d1.dev == a && d1.offset == 0 && d1.size == 1000 && d2.size == 1 && h1.size == 3 * MiB + 5);
    CHECK(d1.buffer != keep.buffer && d2.buffer != keep.buffer && d1.buffer != d2.buffer);
    CHECK(h1.map != NULL); /* host memory is always mapped */

    /* A small request still goes to the shared block, never into a dedicated one. */
    CHECK_OK(vk_buf_alloc(a, VK_MEM_DEVICE, 64, &small));
    CHECK(small.buffer == keep.buffer);
    vk_buf_free(a, &small);

    uint8_t in[1000], out[1000];
    for (int i = 0; i < 1000; i++) in[i] = (uint8_t)(i * 13 + 1);
    CHECK_OK(vk_buf_write(a, &d1, 0, in, sizeof in));
    CHECK_OK(vk_buf_write(a, &h1, 3 * MiB + 5 - sizeof in, in, sizeof in));
    CHECK_OK(vk_buf_read(a, &d1, 0, out, sizeof out));
    CHECK(memcmp(in, out, sizeof in) == 0);
    memset(out, 0, sizeof out);
    CHECK_OK(vk_buf_read(a, &h1, 3 * MiB + 5 - sizeof out, out, sizeof out));
    CHECK(memcmp(in, out, sizeof in) == 0);

    CHECK(vk_buf_alloc_dedicated(a, VK_MEM_IMPORTED, 64, &x) == VKLLM_ERR_INVALID_ARG && x.block == NULL);
    CHECK(vk_buf_alloc(a, VK_MEM_IMPORTED, 64, &x) == VKLLM_ERR_INVALID_ARG && x.block == NULL);

    vk_buf_free(a, &d1);
    vk_buf_free(a, &h1);
    vk_buf_free(a, &d2);
    CHECK(d1.block == NULL && h1.block == NULL);
    vk_mem_get_stats(a, &s2);
    CHECK_MSG(same_stats(&s0, &s2), "after freeing dedicated buffers: device %llu host %llu used %llu "
              "blocks %u, before: %llu %llu %llu %u", (unsigned long long)s2.device_bytes,
              (unsigned long long)s2.host_bytes, (unsigned long long)s2.used_bytes, s2.blocks,
              (unsigned long long)s0.device_bytes, (unsigned long long)s0.host_bytes,
              (unsigned long long)s0.used_bytes, s0.blocks);
    vk_buf_free(a, &keep);

    /* Budget 96 MiB: 64 + 40 is refused with the sizes named and nothing held; 64 + 32 fits
     * exactly. */
    vk_buf big, more;
    vk_mem_get_stats(b, &s0);
    CHECK(s0.device_bytes == 0);
    CHECK_OK(vk_buf_alloc_dedicated(b, VK_MEM_DEVICE, 64 * MiB, &big));
    vk_mem_get_stats(b, &s1);
    vkllm_status st = vk_buf_alloc_dedicated(b, VK_MEM_DEVICE, 40 * MiB, &more);
    CHECK_MSG(st == VKLLM_ERR_OUT_OF_MEMORY, "dedicated allocation past the budget gave %d", st);
    const char *msg = vkllm_last_error();
    CHECK_MSG(strstr(msg, "40.0 MiB") && strstr(msg, "64.0 MiB") && strstr(msg, "96.0 MiB") &&
              strstr(msg, vk_device_label(b)), "budget message: %s", msg);
    CHECK(more.block == NULL);
    vk_mem_get_stats(b, &s2);
    CHECK(same_stats(&s1, &s2));
    CHECK_OK(vk_buf_alloc_dedicated(b, VK_MEM_DEVICE, 32 * MiB, &more));
    vk_mem_get_stats(b, &s2);
    CHECK(s2.device_bytes == 96 * MiB && s2.used_bytes == 96 * MiB);
    vk_buf_free(b, &more);
    vk_buf_free(b, &big);
    vk_mem_get_stats(b, &s2);
    CHECK(same_stats(&s0, &s2));
}

/* A buffer of opening A in a batch of opening B is refused before Vulkan sees it, naming both
 * openings; the batch stays usable. */
static void test_cross_device(vk_device *a, vk_device *b) {
    vk_buf xa, yb, zb;
    CHECK_OK(vk_buf_alloc(a, VK_MEM_DEVICE, 4096, &xa));
    CHECK_OK(vk_buf_alloc(b, VK_MEM_DEVICE, 4096, &yb));
    CHECK_OK(vk_buf_alloc(b, VK_MEM_DEVICE, 4096, &zb));
    CHECK(xa.dev == a && yb.dev == b);
    vk_pipeline_desc d = {.shader = "binary.comp", .defines = "OP_ADD=1", .n_bindings = 3,
                          .push_size = 4, .n_spec = 1, .spec = {64}};
    vk_pipeline *p = NULL;
    CHECK_OK(vk_pipeline_get(b, &d, &p));
    vk_batch *batch = NULL;
    CHECK_OK(vk_batch_begin(b, &batch));
    if (!p || !batch) return;
    uint32_t n = 1024;
    vk_bind binds[3] = {{&yb, 0, 0, 0}, {&xa, 0, 0, 0}, {&zb, 0, 0, 1}};
    vkllm_status st = vk_batch_dispatch(batch, p, binds, 3, &n, 16, 1, 1, "xdev-add");
    CHECK_MSG(st == VKLLM_ERR_INVALID_ARG, "foreign binding gave %d", st);
    const char *msg = vkllm_last_error();
    CHECK_MSG(strstr(msg, vk_device_label(a)) && strstr(msg, vk_device_label(b)) && strstr(msg, "xdev-add") &&
              strstr(msg, "binding 1"), "message: %s", msg);
    st = vk_batch_dispatch(batch, p, binds, 3, &n, 16, 1, 1, NULL);
    CHECK(st == VKLLM_ERR_INVALID_ARG && strstr(vkllm_last_error(), "binary.comp"));
    st = vk_batch_copy(batch, &xa, 0, &yb, 0, 256);
    msg = vkllm_last_error();
    CHECK_MSG(st == VKLLM_ERR_INVALID_ARG && strstr(msg, vk_device_label(a)) && strstr(msg, vk_device_label(b)),
              "copy from a foreign buffer gave %d: %s", st, msg);
    CHECK(vk_batch_copy(batch, &yb, 0, &xa, 0, 256) == VKLLM_ERR_INVALID_ARG);
    CHECK(vk_batch_fill(batch, &xa, 0, 256, 0) == VKLLM_ERR_INVALID_ARG);
    CHECK(vk_batch_dispatch_count(batch) == 0);
    /* Transfers through the wrong opening are refused the same way. */
    uint32_t word = 7;
    CHECK(vk_buf_write(b, &xa, 0, &word, 4) == VKLLM_ERR_INVALID_ARG);
    CHECK(strstr(vkllm_last_error(), vk_device_label(a)) && strstr(vkllm_last_error(), vk_device_label(b)));
    CHECK(vk_buf_read(a, &yb, 0, &word, 4) == VKLLM_ERR_INVALID_ARG);

    /* The refused calls left nothing behind: the batch records and runs normally. */
    CHECK_OK(vk_batch_fill(batch, &yb, 0, 4096, 0x3f800000u)); /* 1.0f */
    CHECK_OK(vk_batch_fill(batch, &zb, 0, 4096, 0));
    binds[1].buf = &yb;
    CHECK_OK(vk_batch_dispatch(batch, p, binds, 3, &n, 16, 1, 1, "add"));
    CHECK_OK(vk_batch_submit_wait(batch));
    vk_batch_free(batch);
    float out[1024];
    CHECK_OK(vk_buf_read(b, &zb, 0, out, sizeof out));
    CHECK(out[0] == 2.0f && out[1023] == 2.0f);
    vk_buf_free(a, &xa);
    vk_buf_free(b, &yb);
    vk_buf_free(b, &zb);
}

/* Runs out = x + y on dev with x taken from an imported (or any) buffer; returns wrong values. */
static int add_on_device(vk_device *dev, const vk_buf *x, const vk_buf *y, const float *xs, const float *ys,
                         uint32_t n) {
    vk_buf out;
    CHECK_OK(vk_buf_alloc(dev, VK_MEM_DEVICE, n * 4ull, &out));
    kern_ctx k = {.dev = dev};
    CHECK_OK(vk_batch_begin(dev, &k.batch));
    CHECK_OK(kern_binary(&k, KERN_ADD, x, y, &out, n));
    CHECK_OK(vk_batch_submit_wait(k.batch));
    vk_batch_free(k.batch);
    float *got = calloc(n, 4);
    CHECK_OK(vk_buf_read(dev, &out, 0, got, n * 4ull));
    int bad = 0;
    for (uint32_t i = 0; i < n; i++) bad += got[i] != xs[i] + ys[i];
    free(got);
    vk_buf_free(dev, &out);
    return bad;
}

/* Host memory imported in place: a read-only file mapping and an anonymous allocation, read
 * by a copy and by a kernel, written by a kernel; misalignment refused; counted apart. */
static void test_import(vk_device *a) {
    const vkllm_device_info *info = vk_device_props(a);
    vk_buf imp;
    if (!info->external_host_memory) {
        static char page[64];
        CHECK(info->min_imported_host_pointer_alignment == 0);
        CHECK(vk_buf_import_host(a, page, sizeof page, &imp) == VKLLM_ERR_UNSUPPORTED);
        printf("SKIP: %s lacks VK_EXT_external_memory_host\n", info->name);
        return;
    }
    uint64_t al = info->min_imported_host_pointer_alignment;
    CHECK_MSG(al >= 1 && (al & (al - 1)) == 0, "minImportedHostPointerAlignment %llu", (unsigned long long)al);
    /* Spans are whole pages at least, so float offsets stay 4-byte aligned. */
    uint64_t unit = al < 4096 ? 4096 : al;
    vk_mem_stats s0, s1;
    vk_mem_get_stats(a, &s0);

    /* A file of floats, mapped read-only and shared, as a GGUF would be. The span imported
     * starts one alignment unit past the first aligned address of the mapping. */
    char path[512], name[64];
    snprintf(name, sizeof name, "test_vk_import_%ld.bin", (long)getpid());
    th_tmp_path(name, path, sizeof path);
    uint64_t file_bytes = 6 * unit, span = 2 * unit;
    float *content = malloc(file_bytes);
    for (uint64_t i = 0; i < file_bytes / 4; i++) content[i] = (float)(i % 1000) * 0.25f - 100.0f;
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(content, 1, file_bytes, f) == file_bytes);
    if (f) fclose(f);
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    void *map = fd >= 0 ? mmap(NULL, file_bytes, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
    CHECK(map != MAP_FAILED);
    if (map != MAP_FAILED) {
        uintptr_t base = round_up((uintptr_t)map, unit) + unit;
        uint64_t file_off = base - (uintptr_t)map;
        const float *want = content + file_off / 4;
        CHECK_OK(vk_buf_import_host(a, (const void *)base, span, &imp));
        vk_mem_get_stats(a, &s1);
        CHECK_MSG(s1.imported_bytes == span, "imported_bytes %llu, expected %llu",
                  (unsigned long long)s1.imported_bytes, (unsigned long long)span);
        CHECK(s1.device_bytes == s0.device_bytes && s1.host_bytes == s0.host_bytes &&
              s1.used_bytes == s0.used_bytes && s1.blocks == s0.blocks + 1);
        CHECK(imp.dev == a && imp.size == span && imp.offset == 0);

        /* A GPU copy out of the mapping into device memory, whole and at an offset. */
        vk_buf dst;
        CHECK_OK(vk_buf_alloc(a, VK_MEM_DEVICE, span, &dst));
        vk_batch *batch = NULL;
        CHECK_OK(vk_batch_begin(a, &batch));
        CHECK_OK(vk_batch_fill(batch, &dst, 0, span, 0));
        CHECK_OK(vk_batch_copy(batch, &imp, 12, &dst, 0, span - 12));
        CHECK_OK(vk_batch_submit_wait(batch));
        vk_batch_free(batch);
        char *got = malloc(span);
        CHECK_OK(vk_buf_read(a, &dst, 0, got, span));
        CHECK_MSG(memcmp(got, (const char *)want + 12, span - 12) == 0, "bytes copied from a read-only "
                  "file mapping differ");
        CHECK_OK(vk_buf_read(a, &imp, 4, got, 64));
        CHECK(memcmp(got, (const char *)want + 4, 64) == 0);
        free(got);

        /* A kernel reads the mapping in place: out = x + x. */
        uint32_t n = (uint32_t)(span / 4);
        int bad = add_on_device(a, &imp, &imp, want, want, n);
        CHECK_MSG(bad == 0, "%d wrong sums over an imported file mapping", bad);
        vk_buf_free(a, &dst);
        vk_buf_free(a, &imp);
        CHECK(imp.block == NULL);
        vk_mem_get_stats(a, &s1);
        CHECK(same_stats(&s0, &s1));
        munmap(map, file_bytes);
    }
    if (fd >= 0) close(fd);
    remove(path);
    free(content);

    /* Anonymous memory: read by a kernel, then written by one (the device writes host memory
     * the program reads directly). */
    uint64_t anon_bytes = 3 * unit;
    uint32_t n = (uint32_t)(anon_bytes / 4);
    float *anon = aligned_alloc(unit, anon_bytes), *ys = malloc(anon_bytes), *zero = calloc(n, 4);
    for (uint32_t i = 0; i < n; i++) anon[i] = (float)(i % 97), ys[i] = 0.5f;
    vk_buf y, z;
    CHECK_OK(vk_buf_alloc(a, VK_MEM_DEVICE, anon_bytes, &y));
    CHECK_OK(vk_buf_alloc(a, VK_MEM_DEVICE, anon_bytes, &z));
    CHECK_OK(vk_buf_write(a, &y, 0, ys, anon_bytes));
    CHECK_OK(vk_buf_write(a, &z, 0, zero, anon_bytes));
    CHECK_OK(vk_buf_import_host(a, anon, anon_bytes, &imp));
    CHECK(imp.map == (void *)anon);
    vk_mem_get_stats(a, &s1);
    CHECK(s1.imported_bytes == anon_bytes);
    int bad = add_on_device(a, &imp, &y, anon, ys, n);
    CHECK_MSG(bad == 0, "%d wrong sums over imported anonymous memory", bad);
    kern_ctx k = {.dev = a};
    CHECK_OK(vk_batch_begin(a, &k.batch));
    CHECK_OK(kern_binary(&k, KERN_ADD, &y, &z, &imp, n)); /* anon = 0.5 + 0 */
    CHECK_OK(vk_batch_submit_wait(k.batch));
    vk_batch_free(k.batch);
    int wrong = 0;
    for (uint32_t i = 0; i < n; i++) wrong += anon[i] != 0.5f;
    CHECK_MSG(wrong == 0, "%d values the device wrote into imported memory are wrong", wrong);

    /* Misaligned pointer or size: refused with the alignment named, nothing held. */
    vk_buf bad_buf;
    char want_align[32];
    snprintf(want_align, sizeof want_align, "(%llu)", (unsigned long long)al);
    vk_mem_get_stats(a, &s0);
    if (al > 1) {
        vkllm_status st = vk_buf_import_host(a, (char *)anon + al / 2, al, &bad_buf);
        CHECK_MSG(st == VKLLM_ERR_UNSUPPORTED && strstr(vkllm_last_error(), want_align),
                  "misaligned pointer gave %d: %s", st, vkllm_last_error());
        st = vk_buf_import_host(a, anon, al + al / 2, &bad_buf);
        CHECK_MSG(st == VKLLM_ERR_UNSUPPORTED, "misaligned size gave %d", st);
        CHECK(bad_buf.block == NULL);
    }
    CHECK(vk_buf_import_host(a, anon, 0, &bad_buf) == VKLLM_ERR_INVALID_ARG);
    vk_mem_get_stats(a, &s1);
    CHECK(same_stats(&s0, &s1));
    vk_buf_free(a, &imp);
    vk_mem_get_stats(a, &s1);
    CHECK(s1.imported_bytes == 0);
    vk_buf_free(a, &y);
    vk_buf_free(a, &z);
    free(anon);
    free(ys);
    free(zero);
}

/* Views share the parent's memory at an offset: copies, transfers and bindings through them
 * land at the right bytes; an out-of-range view is refused wherever it is used. */
static void test_views(vk_device *a) {
    enum { N = 8192 };
    uint64_t align = vk_alloc_alignment(vk_device_props(a)->min_storage_buffer_offset_alignment);
    uint8_t *pat = malloc(N), *got = malloc(N);
    for (int i = 0; i < N; i++) pat[i] = (uint8_t)(i ^ (i >> 8));
    vk_buf parent, dst;
    CHECK_OK(vk_buf_alloc(a, VK_MEM_DEVICE, N, &parent));
    CHECK_OK(vk_buf_alloc(a, VK_MEM_DEVICE, 4096, &dst));
    CHECK_OK(vk_buf_write(a, &parent, 0, pat, N));
    vk_buf v, vv, bad;
    vk_buf_view(&parent, 1024, 2048, &v);
    vk_buf_view(&v, 512, 256, &vv);
    CHECK(v.dev == a && v.block == parent.block && v.buffer == parent.buffer);
    CHECK(v.offset == parent.offset + 1024 && v.size == 2048 && vv.offset == parent.offset + 1536 && vv.size == 256);
    CHECK(parent.map ? v.map == (char *)parent.map + 1024 : v.map == NULL);

    vk_batch *batch = NULL;
    CHECK_OK(vk_batch_begin(a, &batch));
    CHECK_OK(vk_batch_fill(batch, &dst, 0, 4096, 0));
    CHECK_OK(vk_batch_copy(batch, &v, 100, &dst, 8, 1000));
    CHECK_OK(vk_batch_copy(batch, &vv, 0, &dst, 2048, 256));
    CHECK(vk_batch_copy(batch, &vv, 0, &dst, 0, 257) == VKLLM_ERR_INVALID_ARG); /* past the view */
    CHECK_OK(vk_batch_submit_wait(batch));
    vk_batch_free(batch);
    memset(got, 0xee, N);
    CHECK_OK(vk_buf_read(a, &dst, 0, got, 4096));
    CHECK(memcmp(got + 8, pat + 1124, 1000) == 0);
    CHECK(memcmp(got + 2048, pat + 1536, 256) == 0);
    CHECK(got[0] == 0 && got[1008] == 0 && got[2304] == 0);

    /* A transfer through a view writes the parent's bytes. */
    const char tag[4] = {'v', 'i', 'e', 'w'};
    CHECK_OK(vk_buf_write(a, &vv, 4, tag, 4));
    CHECK_OK(vk_buf_read(a, &parent, 1540, got, 4));
    CHECK(memcmp(got, tag, 4) == 0);
    CHECK(vk_buf_write(a, &vv, 254, tag, 4) == VKLLM_ERR_INVALID_ARG);

    /* Kernels bind views: floats at an aligned offset of a larger buffer. */
    float xs[256], ys[256];
    for (int i = 0; i < 256; i++) xs[i] = (float)i, ys[i] = -2.0f;
    vk_buf fl, fx, fy;
    uint64_t at_y = align + round_up(sizeof xs, align);
    CHECK_OK(vk_buf_alloc(a, VK_MEM_DEVICE, at_y + sizeof ys, &fl));
    vk_buf_view(&fl, align, sizeof xs, &fx);
    vk_buf_view(&fl, at_y, sizeof ys, &fy);
    CHECK_OK(vk_buf_write(a, &fx, 0, xs, sizeof xs));
    CHECK_OK(vk_buf_write(a, &fy, 0, ys, sizeof ys));
    int wrong = add_on_device(a, &fx, &fy, xs, ys, 256);
    CHECK_MSG(wrong == 0, "%d wrong sums over views", wrong);

    /* Out of range: an unallocated buffer that every use refuses. */
    vk_buf_view(&parent, N - 100, 101, &bad);
    CHECK(bad.block == NULL);
    CHECK_OK(vk_batch_begin(a, &batch));
    CHECK(vk_batch_copy(batch, &bad, 0, &dst, 0, 4) == VKLLM_ERR_INVALID_ARG);
    CHECK(vk_batch_fill(batch, &bad, 0, 4, 0) == VKLLM_ERR_INVALID_ARG);
    vk_batch_free(batch); /* never submitted */
    CHECK(vk_buf_read(a, &bad, 0, got, 4) == VKLLM_ERR_INVALID_ARG);

    vk_buf_free(a, &fl);
    vk_buf_free(a, &dst);
    vk_buf_free(a, &parent);
    vk_mem_stats s;
    vk_mem_get_stats(a, &s);
    CHECK(s.used_bytes == 0 && s.device_bytes == 0);
    free(pat);
    free(got);
}

/* An opening whose device memory is not mappable transfers through the staging ring, which
 * holds exactly VK_STAGING_BYTES of host memory from its first transfer on. */
static void test_staging(vk_instance *inst, vk_device *mapped) {
    vk_buf probe;
    CHECK_OK(vk_buf_alloc(mapped, VK_MEM_DEVICE, 64, &probe));
    CHECK(vk_device_mappable(mapped) == (probe.map != NULL));
    vk_buf_free(mapped, &probe);

    setenv("VKLLM_NO_MAPPED_DEVICE_MEMORY", "1", 1);
    vk_device *c = NULL;
    vk_device_opts o = {.budget = 256 * MiB};
    CHECK_OK(vk_device_open(inst, 0, &o, &c));
    unsetenv("VKLLM_NO_MAPPED_DEVICE_MEMORY");
    if (!c) return;
    CHECK(vk_device_mappable(c) == 0);
    const uint64_t n = VK_STAGING_SLOT_BYTES + 3 * MiB + 3; /* both slots, a ragged tail */
    uint8_t *in = malloc(n), *out = malloc(n);
    for (uint64_t i = 0; i < n; i++) in[i] = (uint8_t)(i * 2654435761u >> 13);
    vk_buf buf;
    CHECK_OK(vk_buf_alloc(c, VK_MEM_DEVICE, n + 1, &buf));
    CHECK(buf.map == NULL);
    vk_mem_stats s0, s1;
    vk_mem_get_stats(c, &s0);
    CHECK(s0.host_bytes == 0);
    CHECK_OK(vk_buf_write(c, &buf, 1, in, n));
    vk_mem_get_stats(c, &s1);
    CHECK_MSG(s1.host_bytes == VK_STAGING_BYTES, "staging ring holds %llu host bytes, expected %llu",
              (unsigned long long)s1.host_bytes, (unsigned long long)VK_STAGING_BYTES);
    CHECK(s1.blocks == s0.blocks + 2 && s1.device_bytes == s0.device_bytes);
    CHECK_OK(vk_buf_read(c, &buf, 1, out, n));
    CHECK_MSG(memcmp(in, out, n) == 0, "bytes through the staging ring differ");
    /* Through a view at an offset. */
    vk_buf v;
    vk_buf_view(&buf, 4096, 8192, &v);
    CHECK_OK(vk_buf_read(c, &v, 3, out, 100));
    CHECK(memcmp(out, in + 4096 + 3 - 1, 100) == 0);
    vk_mem_get_stats(c, &s1);
    CHECK(s1.host_bytes == VK_STAGING_BYTES);
    vk_buf_free(c, &buf);
    free(in);
    free(out);
    vk_device_close(c);
}

/* Batches submitted on two openings run while the host goes on, waited in reverse order;
 * two in flight on one opening; a submitted batch freed without a wait. */
static void test_async(vk_device *a, vk_device *b) {
    enum { N = 1 << 18 };
    float *x = malloc(N * 4), *y = malloc(N * 4), *out = malloc(N * 4);
    for (int i = 0; i < N; i++) x[i] = (float)(i % 251), y[i] = (float)(i % 7) - 3.0f;
    vk_device *devs[2] = {a, b};
    vk_buf bx[2], by[2], bo[2], bo2;
    kern_ctx k[2];
    for (int d = 0; d < 2; d++) {
        CHECK_OK(vk_buf_alloc(devs[d], VK_MEM_DEVICE, N * 4, &bx[d]));
        CHECK_OK(vk_buf_alloc(devs[d], VK_MEM_DEVICE, N * 4, &by[d]));
        CHECK_OK(vk_buf_alloc(devs[d], VK_MEM_DEVICE, N * 4, &bo[d]));
        CHECK_OK(vk_buf_write(devs[d], &bx[d], 0, x, N * 4));
        CHECK_OK(vk_buf_write(devs[d], &by[d], 0, y, N * 4));
    }
    for (int d = 0; d < 2; d++) {
        k[d] = (kern_ctx){.dev = devs[d]};
        CHECK_OK(vk_batch_begin(devs[d], &k[d].batch));
        CHECK_OK(kern_binary(&k[d], d == 0 ? KERN_ADD : KERN_MUL, &bx[d], &by[d], &bo[d], N));
        CHECK_OK(kern_binary(&k[d], KERN_ADD, &bo[d], &bx[d], &bo[d], N)); /* depends on the first */
        CHECK_OK(vk_batch_submit(k[d].batch));
    }
    CHECK(vk_batch_submit(k[0].batch) == VKLLM_ERR_INVALID_ARG);
    CHECK(kern_binary(&k[0], KERN_ADD, &bx[0], &by[0], &bo[0], N) == VKLLM_ERR_INVALID_ARG);
    CHECK_OK(vk_batch_wait(k[1].batch));
    CHECK_OK(vk_batch_wait(k[0].batch));
    CHECK_OK(vk_batch_wait(k[0].batch)); /* twice is harmless */
    for (int d = 0; d < 2; d++) {
        CHECK_OK(vk_buf_read(devs[d], &bo[d], 0, out, N * 4));
        int bad = 0;
        for (int i = 0; i < N; i++) bad += out[i] != (d == 0 ? x[i] + y[i] : x[i] * y[i]) + x[i];
        CHECK_MSG(bad == 0, "%s: %d wrong values after an asynchronous batch", vk_device_label(devs[d]), bad);
        vk_batch_free(k[d].batch);
    }

    /* Two batches in flight on one opening: the pool hands out a second one. */
    CHECK_OK(vk_buf_alloc(a, VK_MEM_DEVICE, N * 4, &bo2));
    kern_ctx k1 = {.dev = a}, k2 = {.dev = a};
    CHECK_OK(vk_batch_begin(a, &k1.batch));
    CHECK_OK(kern_binary(&k1, KERN_MUL, &bx[0], &bx[0], &bo[0], N));
    CHECK_OK(vk_batch_submit(k1.batch));
    CHECK_OK(vk_batch_begin(a, &k2.batch));
    CHECK(k2.batch != k1.batch);
    CHECK_OK(vk_batch_wait(k2.batch)); /* not submitted yet: nothing to wait for */
    CHECK_OK(kern_binary(&k2, KERN_ADD, &by[0], &by[0], &bo2, N));
    CHECK_OK(vk_batch_submit(k2.batch));
    CHECK_OK(vk_batch_wait(k2.batch));
    CHECK_OK(vk_batch_wait(k1.batch));
    int bad = 0;
    CHECK_OK(vk_buf_read(a, &bo[0], 0, out, N * 4));
    for (int i = 0; i < N; i++) bad += out[i] != x[i] * x[i];
    CHECK_OK(vk_buf_read(a, &bo2, 0, out, N * 4));
    for (int i = 0; i < N; i++) bad += out[i] != y[i] + y[i];
    CHECK_MSG(bad == 0, "%d wrong values from two batches in flight on one opening", bad);
    vk_batch *first = k1.batch, *second = k2.batch;
    vk_batch_free(k1.batch);
    vk_batch_free(k2.batch);

    /* Submitted and freed without a wait: the free waits, so the result is complete and the
     * batch can be reused at once. */
    kern_ctx k3 = {.dev = a};
    CHECK_OK(vk_batch_begin(a, &k3.batch));
    CHECK(k3.batch == first || k3.batch == second);
    CHECK_OK(kern_binary(&k3, KERN_ADD, &bx[0], &by[0], &bo2, N));
    CHECK_OK(vk_batch_submit(k3.batch));
    vk_batch_free(k3.batch);
    CHECK_OK(vk_buf_read(a, &bo2, 0, out, N * 4));
    bad = 0;
    for (int i = 0; i < N; i++) bad += out[i] != x[i] + y[i];
    CHECK_MSG(bad == 0, "%d wrong values after freeing a submitted batch", bad);
    kern_ctx k4 = {.dev = a};
    CHECK_OK(vk_batch_begin(a, &k4.batch));
    CHECK_OK(kern_binary(&k4, KERN_MUL, &by[0], &by[0], &bo2, N));
    CHECK_OK(vk_batch_submit(k4.batch));
    vk_batch_free(k4.batch);

    vk_buf_free(a, &bo2);
    for (int d = 0; d < 2; d++) {
        vk_buf_free(devs[d], &bx[d]);
        vk_buf_free(devs[d], &by[d]);
        vk_buf_free(devs[d], &bo[d]);
    }
    free(x);
    free(y);
    free(out);
}

static void test_placement_paths(void) {
    vk_instance *inst = NULL;
    CHECK_OK(vk_instance_create(1, &inst));
    if (!inst) return;
    vk_device_opts o1 = {.budget = 512 * MiB}, o2 = {.budget = 96 * MiB};
    vk_device *a = NULL, *b = NULL;
    CHECK_OK(vk_device_open(inst, 0, &o1, &a));
    CHECK_OK(vk_device_open(inst, 0, &o2, &b));
    if (a && b) {
        test_dedicated(a, b);
        test_cross_device(a, b);
        test_import(a);
        test_views(a);
        test_staging(inst, a);
        test_async(a, b);
    }
    vk_device_close(a);
    vk_device_close(b);
    CHECK_MSG(vk_validation_messages(inst) == 0, "validation messages: %u", vk_validation_messages(inst));
    vk_instance_destroy(inst);
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
    /* Timestamps are read by the wait, not the submit. */
    CHECK_OK(vk_batch_submit(k.batch));
    CHECK_OK(vk_batch_wait(k.batch));
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
    test_placement_paths();
    th_gpu g;
    if (th_gpu_open(&g, NULL) == 0) {
        test_allocator(&g);
        test_batches(&g);
    }
    th_gpu_close(&g);
    test_timestamps();
    return th_finish();
}
