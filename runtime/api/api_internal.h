/* Hooks into a loaded model for tests and benchmarks that link the static library: not part
 * of the public API. */
#ifndef VKLLM_API_INTERNAL_H
#define VKLLM_API_INTERNAL_H

#include "vk/vk.h"
#include "vkllm.h"

/* Bytes of tensor data read from the file into buffers so far (0 until the upload starts:
 * a load that fails on memory must leave it at 0). */
uint64_t api_model_bytes_uploaded(const vkllm_model *m);
/* The opening at position i of the model's device list, or NULL. */
vk_device *api_model_device(const vkllm_model *m, uint32_t i);

#endif
