/* Injected failures for tests, and library-wide counts of live Vulkan objects.
 *
 * vk_fault_set makes the Nth call of chosen kinds fail the way the real call would: the
 * library's host allocations (vkl_malloc/vkl_calloc/vkl_realloc of base/util.h return NULL),
 * vkAllocateMemory, vkQueueSubmit, vkWaitForFences, vkCreateComputePipelines or vkCreateBuffer.
 * The Vulkan kinds
 * are caught where every call passes: volk's function pointers, wrapped once when Vulkan is
 * loaded, so no call site needs a hook. Calls are counted whether or not a failure is armed,
 * so a test first runs a scenario to learn how many calls of a kind it makes, then walks N
 * over them. Internal API: nothing here is exported from the shared library. */
#ifndef VKLLM_VK_FAULT_H
#define VKLLM_VK_FAULT_H

#include <stddef.h>
#include <stdint.h>
#include <volk.h>

typedef enum vk_fault_kind {
    VK_FAULT_HOST_ALLOC = 1u << 0,   /* vkl_malloc, vkl_calloc, vkl_realloc: NULL */
    VK_FAULT_DEVICE_ALLOC = 1u << 1, /* vkAllocateMemory: VK_ERROR_OUT_OF_DEVICE_MEMORY */
    VK_FAULT_SUBMIT = 1u << 2,       /* vkQueueSubmit: VK_ERROR_DEVICE_LOST; nothing is submitted */
    VK_FAULT_WAIT = 1u << 3,         /* vkWaitForFences: VK_ERROR_DEVICE_LOST, after the real wait
                                        (so the work has finished and tearing down is legal) */
    VK_FAULT_PIPELINE = 1u << 4,     /* vkCreateComputePipelines: VK_ERROR_OUT_OF_HOST_MEMORY */
    VK_FAULT_BUFFER = 1u << 5,       /* vkCreateBuffer: VK_ERROR_OUT_OF_DEVICE_MEMORY */
} vk_fault_kind;
#define VK_FAULT_KIND_COUNT 6
#define VK_FAULT_ALL 0x3fu
/* Or'ed into kinds: every call from the Nth on fails, not only the Nth. */
#define VK_FAULT_STICKY (1u << 31)

/* Arms a failure: the nth call (1-based, counted over all the kinds in `kinds` together) fails
 * with `result`, or with the kind's default above when result is VK_SUCCESS (host allocations
 * always just return NULL). nth 0 arms nothing but still restarts the counts. Resets every
 * count. Meant for a test's main thread while no other thread uses the library. */
void vk_fault_set(uint32_t kinds, uint64_t nth, VkResult result);
/* Disarms (counting goes on). */
void vk_fault_clear(void);
/* Calls of one kind (a single bit) seen since the last vk_fault_set. */
uint64_t vk_fault_calls(vk_fault_kind kind);
/* Failures injected since the last vk_fault_set. */
uint64_t vk_fault_injected(void);
const char *vk_fault_kind_name(vk_fault_kind kind);

/* Counts a call of `kind`; 1 when it must fail, with *r the result to return. */
int vk_fault_hit(vk_fault_kind kind, VkResult *r);
/* Wraps volk's pointers for the Vulkan kinds; called once, right after volk is loaded. */
void vk_fault_install(void);

/* Live objects of the whole process, for leak checks after teardown. */
typedef struct vk_live_stats {
    int64_t instances;     /* vk_instance */
    int64_t devices;       /* vk_device openings */
    int64_t blocks;        /* vk_block (suballocated, dedicated and imported) */
    int64_t memory_objects; /* VkDeviceMemory */
    int64_t memory_bytes;   /* bytes of those VkDeviceMemory objects */
    int64_t batches;       /* vk_batch, in use or on a device's free list */
} vk_live_stats;

typedef enum vk_live_what {
    VK_LIVE_INSTANCES, VK_LIVE_DEVICES, VK_LIVE_BLOCKS, VK_LIVE_MEMORY_OBJECTS, VK_LIVE_MEMORY_BYTES,
    VK_LIVE_BATCHES, VK_LIVE_COUNT
} vk_live_what;
void vk_live_add(vk_live_what what, int64_t delta);
void vk_live_get(vk_live_stats *out);

#endif
