/* vkllm public C API: run LLaMA-family GGUF models on Vulkan GPUs.
 *
 * Every function that can fail returns a vkllm_status; vkllm_last_error() then holds a
 * sentence saying what failed (thread-local). The library never prints to stdout and never
 * exits the process; logs go to stderr or to a callback set with vkllm_set_log_callback(). */
#ifndef VKLLM_H
#define VKLLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#if defined(VKLLM_BUILDING)
#define VKLLM_API __declspec(dllexport)
#else
#define VKLLM_API __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define VKLLM_API __attribute__((visibility("default")))
#else
#define VKLLM_API
#endif

typedef enum vkllm_status {
    VKLLM_OK = 0,
    VKLLM_ERR_INVALID_ARG,   /* a parameter is out of range or NULL */
    VKLLM_ERR_NO_VULKAN,     /* no Vulkan loader, or no driver (ICD) answers */
    VKLLM_ERR_NO_DEVICE,     /* the requested device index does not exist */
    VKLLM_ERR_OUT_OF_MEMORY, /* host, device or per-device budget exhausted */
    VKLLM_ERR_DEVICE_LOST,   /* the driver reported VK_ERROR_DEVICE_LOST */
    VKLLM_ERR_VULKAN,        /* any other Vulkan error */
    VKLLM_ERR_SHADER,        /* a shader failed to compile or link */
    VKLLM_ERR_IO,            /* a file could not be opened, read or written */
    VKLLM_ERR_BAD_FILE,      /* a model file is malformed, truncated or hostile */
    VKLLM_ERR_UNSUPPORTED,   /* valid input this build cannot handle (architecture, type) */
    VKLLM_ERR_CONTEXT_FULL,  /* the context window has no room for more tokens */
    VKLLM_ERR_CANCELLED,     /* a callback asked to stop */
} vkllm_status;

VKLLM_API const char *vkllm_status_string(vkllm_status status);
/* The message of the last failure on this thread ("" when none). */
VKLLM_API const char *vkllm_last_error(void);

typedef enum vkllm_log_level {
    VKLLM_LOG_ERROR = 0,
    VKLLM_LOG_WARN,
    VKLLM_LOG_INFO,
    VKLLM_LOG_DEBUG,
} vkllm_log_level;

typedef void (*vkllm_log_fn)(vkllm_log_level level, const char *message, void *user);
/* Messages at `level` and more severe are emitted. The default is WARN, or the value of
 * the environment variable VKLLM_LOG (error, warn, info, debug). */
VKLLM_API void vkllm_set_log_level(vkllm_log_level level);
/* Route log lines to fn instead of stderr; NULL restores stderr. */
VKLLM_API void vkllm_set_log_callback(vkllm_log_fn fn, void *user);

VKLLM_API const char *vkllm_version(void);

/* ---------------------------------------------------------------- devices ---- */

typedef enum vkllm_device_type {
    VKLLM_DEVICE_OTHER = 0,
    VKLLM_DEVICE_INTEGRATED,
    VKLLM_DEVICE_DISCRETE,
    VKLLM_DEVICE_VIRTUAL,
    VKLLM_DEVICE_CPU,
} vkllm_device_type;

#define VKLLM_MAX_HEAPS 16

typedef struct vkllm_heap_info {
    uint64_t size;
    uint64_t budget;  /* VK_EXT_memory_budget's current budget; 0 when unknown */
    uint64_t usage;   /* VK_EXT_memory_budget's current usage; 0 when unknown */
    int device_local; /* 1 for VRAM (or the only heap of a UMA / CPU device) */
    int host_visible; /* some memory type on this heap can be mapped */
} vkllm_heap_info;

typedef struct vkllm_device_info {
    uint32_t index; /* position in the enumeration; what --device takes */
    char name[256];
    vkllm_device_type type;
    uint32_t vendor_id, device_id;
    char vendor[32];         /* "NVIDIA", "AMD", "Intel", "Mesa" ... */
    char driver_name[256];   /* VkPhysicalDeviceDriverProperties */
    char driver_info[256];
    uint32_t api_version;    /* VK_MAKE_API_VERSION packing */
    uint32_t driver_version; /* vendor-specific packing; see driver_info */
    uint8_t device_uuid[16];

    uint32_t heap_count;
    vkllm_heap_info heaps[VKLLM_MAX_HEAPS];
    int memory_budget_ext; /* VK_EXT_memory_budget present */
    int uma;               /* a memory type is both device-local and host-visible */

    uint32_t subgroup_size, subgroup_min_size, subgroup_max_size;
    uint32_t subgroup_ops; /* VkSubgroupFeatureFlags bits */
    int shader_fp16, shader_int8, shader_int16, shader_int64;
    int storage_8bit, storage_16bit;
    int integer_dot_product; /* VK_KHR_shader_integer_dot_product, 4x8 packed accelerated */
    int cooperative_matrix;  /* VK_KHR_cooperative_matrix or VK_NV_cooperative_matrix */
    int push_descriptors, timeline_semaphores, external_host_memory;

    uint64_t max_storage_buffer_range;
    uint64_t max_memory_allocation_size;
    uint64_t max_buffer_size;
    uint32_t max_shared_memory;
    uint32_t max_workgroup_invocations;
    uint32_t max_workgroup_size[3];
    uint32_t max_workgroup_count[3];
    uint32_t min_storage_buffer_offset_alignment;
    float timestamp_period_ns;
    int compute_only_queue; /* a queue family with compute but not graphics exists */
} vkllm_device_info;

/* Enumerates every Vulkan physical device. *out is an array of *count entries to be
 * released with vkllm_free(). Fails with VKLLM_ERR_NO_VULKAN when no loader or driver is
 * present; an empty list is returned as count 0 with VKLLM_OK. */
VKLLM_API vkllm_status vkllm_list_devices(vkllm_device_info **out, uint32_t *count);
/* The index vkllm picks when none is given: discrete, integrated, virtual, then CPU. */
VKLLM_API uint32_t vkllm_default_device(const vkllm_device_info *devices, uint32_t count);
VKLLM_API const char *vkllm_device_type_string(vkllm_device_type type);
VKLLM_API void vkllm_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
