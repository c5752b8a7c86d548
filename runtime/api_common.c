/* Public entry points that are not about a model: status strings, logging, versions and
 * the device list. */
#include <stdlib.h>
#include <string.h>

#include "vk/util.h"
#include "vk/vk.h"
#include "vkllm.h"

const char *vkllm_status_string(vkllm_status status) {
    switch (status) {
    case VKLLM_OK: return "ok";
    case VKLLM_ERR_INVALID_ARG: return "invalid argument";
    case VKLLM_ERR_NO_VULKAN: return "no Vulkan";
    case VKLLM_ERR_NO_DEVICE: return "no such device";
    case VKLLM_ERR_OUT_OF_MEMORY: return "out of memory";
    case VKLLM_ERR_DEVICE_LOST: return "device lost";
    case VKLLM_ERR_VULKAN: return "Vulkan error";
    case VKLLM_ERR_SHADER: return "shader error";
    case VKLLM_ERR_IO: return "I/O error";
    case VKLLM_ERR_BAD_FILE: return "malformed file";
    case VKLLM_ERR_UNSUPPORTED: return "unsupported";
    case VKLLM_ERR_CONTEXT_FULL: return "context full";
    case VKLLM_ERR_CANCELLED: return "cancelled";
    }
    return "unknown status";
}

const char *vkllm_last_error(void) { return vkl_last_error(); }
void vkllm_set_log_level(vkllm_log_level level) { vkl_set_log_level(level); }
void vkllm_set_log_callback(vkllm_log_fn fn, void *user) { vkl_set_log_callback(fn, user); }
const char *vkllm_version(void) { return VKLLM_VERSION_STRING; }
void vkllm_free(void *p) { free(p); }

const char *vkllm_device_type_string(vkllm_device_type type) {
    switch (type) {
    case VKLLM_DEVICE_INTEGRATED: return "integrated";
    case VKLLM_DEVICE_DISCRETE: return "discrete";
    case VKLLM_DEVICE_VIRTUAL: return "virtual";
    case VKLLM_DEVICE_CPU: return "cpu";
    default: return "other";
    }
}

vkllm_status vkllm_list_devices(vkllm_device_info **out, uint32_t *count) {
    *out = NULL;
    *count = 0;
    vk_instance *inst;
    vkllm_status st = vk_instance_create(0, &inst);
    if (st) return st;
    uint32_t n = vk_device_count(inst);
    vkllm_device_info *list = calloc(n ? n : 1, sizeof *list);
    if (!list) {
        vk_instance_destroy(inst);
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    }
    for (uint32_t i = 0; i < n; i++) list[i] = *vk_device_info(inst, i);
    vk_instance_destroy(inst);
    *out = list;
    *count = n;
    return VKLLM_OK;
}

uint32_t vkllm_default_device(const vkllm_device_info *devices, uint32_t count) {
    static const vkllm_device_type order[] = {VKLLM_DEVICE_DISCRETE, VKLLM_DEVICE_INTEGRATED,
                                              VKLLM_DEVICE_VIRTUAL, VKLLM_DEVICE_CPU, VKLLM_DEVICE_OTHER};
    for (size_t o = 0; o < sizeof order / sizeof order[0]; o++)
        for (uint32_t i = 0; i < count; i++)
            if (devices[i].type == order[o]) return i;
    return 0;
}
