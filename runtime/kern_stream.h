/* The bandwidth yardstick: how fast this device can merely read a buffer. Benchmarks report
 * kernels and whole-model decode as a fraction of it, measured in the same run. */
#ifndef VKLLM_KERN_STREAM_H
#define VKLLM_KERN_STREAM_H

#include "vk/vk.h"

/* Reads a buffer of `bytes` (rounded down to 16, capped at the binding limit) with
 * shaders/bench_stream.comp in a few configurations, reps timed dispatches each after a
 * warm-up, and returns the fastest median in GB/s. The device must have been opened with
 * vk_device_opts.enable_timestamps. */
vkllm_status kern_stream_gbps(vk_device *dev, uint64_t bytes, uint32_t reps, double *gbps);

#endif
