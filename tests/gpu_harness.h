/* GPU fixture for tests: opens the default device with the validation layer on, and fails
 * the test if the layer reported anything by the time it is closed. */
#ifndef VKLLM_TEST_GPU_HARNESS_H
#define VKLLM_TEST_GPU_HARNESS_H

#include "harness.h"
#include "runtime/kern/kernels.h"
#include "vk/vk.h"

typedef struct th_gpu {
    vk_instance *inst;
    vk_device *dev;
} th_gpu;

/* 0 on success; on failure records a test failure and returns -1. */
int th_gpu_open(th_gpu *g, const vk_device_opts *opts);
/* Closes the device and instance and CHECKs that validation reported no message. */
void th_gpu_close(th_gpu *g);

/* Allocates a device buffer holding a copy of data (size bytes). */
vk_buf th_buf_from(th_gpu *g, const void *data, uint64_t size);
vk_buf th_buf_zero(th_gpu *g, uint64_t size);
void th_buf_to(th_gpu *g, const vk_buf *b, void *out, uint64_t size);

/* Starts a batch on g->dev and returns a kern_ctx for it; th_run submits and frees. */
kern_ctx th_begin(th_gpu *g, const char *extra_defines);
void th_run(kern_ctx *k);

#endif
