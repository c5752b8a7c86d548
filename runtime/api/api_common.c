/* Public entry points that are not about a model: status strings, logging, versions and
 * the device list. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cpu/cpu_ops.h"
#include "base/util.h"
#include "vk/vk.h"
#include "vkllm.h"

const char *vkllm_status_string(vkllm_status status) { return vkl_status_name(status); }
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

/* The CPU path's fixed UUID: its name in ASCII, zero-padded (no Vulkan device has it). */
static const uint8_t VKL_CPU_UUID[16] = {'v', 'k', 'l', 'l', 'm', ' ', 'c', 'p', 'u', ' ', 'p', 'a', 't', 'h'};

/* A value of /proc/meminfo ("MemTotal", "MemAvailable") in bytes; 0 when unknown. */
static uint64_t meminfo_bytes(const char *key) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long kb = 0;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, klen) && line[klen] == ':' && sscanf(line + klen + 1, "%llu", &kb) == 1) break;
    fclose(f);
    return (uint64_t)kb * 1024;
}

/* The native CPU path as a device-list entry: the processor's name, its SIMD level and
 * cores, the machine's RAM as its one heap. */
static void cpu_device_info(vkllm_device_info *d) {
    memset(d, 0, sizeof *d);
    d->index = VKLLM_DEVICE_CPU_INDEX;
    d->type = VKLLM_DEVICE_CPU;
    memcpy(d->device_uuid, VKL_CPU_UUID, sizeof d->device_uuid);
    char model[200] = "CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            char *colon = strchr(line, ':');
            if (strncmp(line, "model name", 10) || !colon) continue;
            colon += 1 + (colon[1] == ' ');
            colon[strcspn(colon, "\n")] = 0;
            snprintf(model, sizeof model, "%s", colon);
            break;
        }
        fclose(f);
    }
    snprintf(d->name, sizeof d->name, "%s", model);
    snprintf(d->vendor, sizeof d->vendor, "vkllm");
    snprintf(d->driver_name, sizeof d->driver_name, "vkllm native CPU path");
    snprintf(d->driver_info, sizeof d->driver_info, "%s kernels, %u physical cores", cpu_simd_name(cpu_simd_best()),
             cpu_physical_cores());
    d->heap_count = 1;
    d->heaps[0].size = meminfo_bytes("MemTotal");
    d->heaps[0].device_local = d->heaps[0].host_visible = 1;
    d->uma = 1;
}

vkllm_status vkllm_list_devices(vkllm_device_info **out, uint32_t *count) {
    if (!out || !count) return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_list_devices: NULL argument");
    *out = NULL;
    *count = 0;
    vk_instance *inst = NULL;
    /* Without a Vulkan loader or driver the CPU path is still there. */
    uint32_t n = vk_instance_create(0, &inst) == VKLLM_OK ? vk_device_count(inst) : 0;
    vkllm_device_info *list = calloc(n + 1, sizeof *list);
    if (!list) {
        vk_instance_destroy(inst);
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    }
    for (uint32_t i = 0; i < n; i++) list[i] = *vk_device_info(inst, i);
    vk_instance_destroy(inst);
    cpu_device_info(&list[n]);
    *out = list;
    *count = n + 1;
    return VKLLM_OK;
}

vkllm_status vkllm_device_index_by_uuid(const uint8_t uuid[16], uint32_t *index) {
    if (!uuid || !index) return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_device_index_by_uuid: NULL argument");
    vkllm_device_info *list = NULL;
    uint32_t n = 0;
    vkllm_status st = vkllm_list_devices(&list, &n);
    if (st) return st;
    uint32_t i = 0;
    while (i < n && memcmp(list[i].device_uuid, uuid, 16)) i++;
    if (i < n) *index = list[i].index;
    free(list);
    if (i < n) return VKLLM_OK;
    char hex[33];
    for (int b = 0; b < 16; b++) snprintf(hex + 2 * b, 3, "%02x", uuid[b]);
    return vkl_err(VKLLM_ERR_NO_DEVICE, "no device has the UUID %s (%u device%s listed)", hex, n, n == 1 ? "" : "s");
}

vkllm_status vkllm_set_cache_dir(const char *path) { return vk_set_cache_dir(path); }

uint32_t vkllm_default_device(const vkllm_device_info *devices, uint32_t count) {
    if (!devices || !count) return VKLLM_DEVICE_CPU_INDEX;
    static const vkllm_device_type gpus[] = {VKLLM_DEVICE_DISCRETE, VKLLM_DEVICE_INTEGRATED, VKLLM_DEVICE_VIRTUAL};
    for (size_t o = 0; o < sizeof gpus / sizeof gpus[0]; o++)
        for (uint32_t i = 0; i < count; i++)
            if (devices[i].type == gpus[o] && devices[i].index != VKLLM_DEVICE_CPU_INDEX) return devices[i].index;
    for (uint32_t i = 0; i < count; i++)
        if (devices[i].index == VKLLM_DEVICE_CPU_INDEX) return VKLLM_DEVICE_CPU_INDEX;
    for (uint32_t i = 0; i < count; i++)
        if (devices[i].type == VKLLM_DEVICE_CPU) return devices[i].index;
    return devices[0].index;
}
