/* The device the tuning-profile fuzz target reads profiles for, shared with the seed writer so
 * that the seeds pass the identity check and the fuzzer starts inside the choices. */
#ifndef VKLLM_FUZZ_TUNE_DEVICE_H
#define VKLLM_FUZZ_TUNE_DEVICE_H

#include <stdio.h>
#include <string.h>

#include "vkllm.h"

static inline void fuzz_tune_device(vkllm_device_info *d) {
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "fuzz device");
    snprintf(d->driver_name, sizeof d->driver_name, "fuzz driver");
    snprintf(d->driver_info, sizeof d->driver_info, "Fuzz 1.0");
    d->type = VKLLM_DEVICE_CPU;
    d->vendor_id = 0x10005;
    d->device_id = 0x1234;
    d->driver_version = 0x1000001;
    for (int i = 0; i < 16; i++) d->device_uuid[i] = (uint8_t)(0xa0 + i);
    d->max_workgroup_invocations = 1024;
    d->max_workgroup_size[0] = d->max_workgroup_size[1] = d->max_workgroup_size[2] = 1024;
    d->max_shared_memory = 32768;
    d->integer_dot_product = 1; /* so that integer dot product choices can be accepted */
    d->subgroup_min_size = d->subgroup_max_size = d->subgroup_size = 8;
}

#endif
