/* The bandwidth yardstick: how fast this device can merely read a buffer. Benchmarks report
 * kernels and whole-model decode as a fraction of it, measured in the same run. */
#ifndef VKLLM_KERN_STREAM_H
#define VKLLM_KERN_STREAM_H

#include "vk/vk.h"

typedef struct kern_stream_result {
    double gbps;               /* median over the timed passes */
    double gbps_min, gbps_max; /* their spread */
    uint64_t bytes;            /* bytes read per pass (after rounding and any shrinking) */
    uint32_t passes;           /* timed passes */
    uint32_t bindings;         /* dispatches per pass: one per binding-sized slice */
} kern_stream_result;

/* Reads `bytes` (rounded down to 256) with shaders/stream_read.comp. The bytes are spread over
 * allocations of at most maxMemoryAllocationSize and read as slices of at most
 * maxStorageBufferRange, one dispatch per slice, so a pass can be far larger than the
 * last-level cache and any binding. The access configuration is chosen on a probe of the
 * first slice (at most 32 MiB); then, after a warm-up pass, `passes` (at least 1) timed
 * passes give the median and the spread. When the device refuses the allocation the size is
 * halved, down to 16 MiB. The device must have been opened with
 * vk_device_opts.enable_timestamps. */
vkllm_status kern_stream_measure(vk_device *dev, uint64_t bytes, uint32_t passes, kern_stream_result *out);
/* kern_stream_measure's median alone. */
vkllm_status kern_stream_gbps(vk_device *dev, uint64_t bytes, uint32_t reps, double *gbps);

#endif
