/* Injected failures (vk/fault.h): a process-wide trigger that counts calls of each kind and
 * fails the Nth, the allocation wrappers and Vulkan wrappers that consult it, and the live
 * object counters. Atomics keep it cheap enough to stay compiled into the library: an unarmed
 * call costs one relaxed increment. */
#include <stdatomic.h>
#include <stdlib.h>

#include "vk/fault.h"
#include "base/util.h"

static atomic_uint_fast32_t g_kinds;  /* armed kinds (with VK_FAULT_STICKY) */
static atomic_uint_fast64_t g_nth;    /* 0: nothing armed */
static atomic_int g_result;           /* VkResult; VK_SUCCESS: the kind's default */
static atomic_uint_fast64_t g_seen;   /* calls of the armed kinds since vk_fault_set */
static atomic_uint_fast64_t g_injected;
static atomic_uint_fast64_t g_calls[VK_FAULT_KIND_COUNT];
static atomic_int_fast64_t g_live[VK_LIVE_COUNT];

static unsigned kind_index(vk_fault_kind kind) {
    unsigned i = 0;
    while (i < VK_FAULT_KIND_COUNT && !((uint32_t)kind & (1u << i))) i++;
    return i;
}

const char *vk_fault_kind_name(vk_fault_kind kind) {
    static const char *const names[VK_FAULT_KIND_COUNT] = {"host allocation", "device allocation", "vkQueueSubmit",
                                                           "vkWaitForFences", "vkCreateComputePipelines",
                                                           "vkCreateBuffer"};
    unsigned i = kind_index(kind);
    return i < VK_FAULT_KIND_COUNT ? names[i] : "?";
}

static int host_alloc_fails(void);

void vk_fault_set(uint32_t kinds, uint64_t nth, VkResult result) {
    vkl_set_alloc_fault_hook(host_alloc_fails);
    atomic_store(&g_nth, 0); /* disarmed while the counts restart */
    for (unsigned i = 0; i < VK_FAULT_KIND_COUNT; i++) atomic_store(&g_calls[i], 0);
    atomic_store(&g_seen, 0);
    atomic_store(&g_injected, 0);
    atomic_store(&g_kinds, kinds);
    atomic_store(&g_result, (int)result);
    atomic_store(&g_nth, nth);
}

void vk_fault_clear(void) { atomic_store(&g_nth, 0); }

uint64_t vk_fault_calls(vk_fault_kind kind) {
    unsigned i = kind_index(kind);
    return i < VK_FAULT_KIND_COUNT ? atomic_load(&g_calls[i]) : 0;
}

uint64_t vk_fault_injected(void) { return atomic_load(&g_injected); }

static VkResult default_result(vk_fault_kind kind) {
    switch (kind) {
    case VK_FAULT_DEVICE_ALLOC:
    case VK_FAULT_BUFFER: return VK_ERROR_OUT_OF_DEVICE_MEMORY;
    case VK_FAULT_SUBMIT:
    case VK_FAULT_WAIT: return VK_ERROR_DEVICE_LOST;
    default: return VK_ERROR_OUT_OF_HOST_MEMORY;
    }
}

int vk_fault_hit(vk_fault_kind kind, VkResult *r) {
    unsigned i = kind_index(kind);
    if (i < VK_FAULT_KIND_COUNT) atomic_fetch_add_explicit(&g_calls[i], 1, memory_order_relaxed);
    uint64_t nth = atomic_load_explicit(&g_nth, memory_order_relaxed);
    if (!nth) return 0;
    uint32_t kinds = (uint32_t)atomic_load_explicit(&g_kinds, memory_order_relaxed);
    if (!(kinds & (uint32_t)kind)) return 0;
    uint64_t seen = atomic_fetch_add(&g_seen, 1) + 1;
    if (seen != nth && !((kinds & VK_FAULT_STICKY) && seen > nth)) return 0;
    atomic_fetch_add(&g_injected, 1);
    VkResult res = (VkResult)atomic_load(&g_result);
    *r = res != VK_SUCCESS ? res : default_result(kind);
    return 1;
}

/* ---- host allocations: base/util.c asks this hook, installed by the first vk_fault_set ---- */

static int host_alloc_fails(void) {
    VkResult r;
    return vk_fault_hit(VK_FAULT_HOST_ALLOC, &r);
}

/* ---- Vulkan calls ---- */

static PFN_vkAllocateMemory real_allocate_memory;
static PFN_vkQueueSubmit real_queue_submit;
static PFN_vkWaitForFences real_wait_for_fences;
static PFN_vkCreateComputePipelines real_create_compute_pipelines;
static PFN_vkCreateBuffer real_create_buffer;

static VKAPI_ATTR VkResult VKAPI_CALL hook_allocate_memory(VkDevice device, const VkMemoryAllocateInfo *info,
                                                           const VkAllocationCallbacks *alloc, VkDeviceMemory *mem) {
    VkResult r;
    if (vk_fault_hit(VK_FAULT_DEVICE_ALLOC, &r)) {
        *mem = VK_NULL_HANDLE;
        return r;
    }
    return real_allocate_memory(device, info, alloc, mem);
}

static VKAPI_ATTR VkResult VKAPI_CALL hook_queue_submit(VkQueue queue, uint32_t n, const VkSubmitInfo *submits,
                                                        VkFence fence) {
    VkResult r;
    if (vk_fault_hit(VK_FAULT_SUBMIT, &r)) return r;
    return real_queue_submit(queue, n, submits, fence);
}

static VKAPI_ATTR VkResult VKAPI_CALL hook_wait_for_fences(VkDevice device, uint32_t n, const VkFence *fences,
                                                           VkBool32 all, uint64_t timeout) {
    /* The real wait first: the caller may destroy what the fences guard once this returns,
     * which must not happen while the device still runs the work. */
    VkResult real = real_wait_for_fences(device, n, fences, all, timeout);
    VkResult r;
    if (vk_fault_hit(VK_FAULT_WAIT, &r) && real == VK_SUCCESS) return r;
    return real;
}

static VKAPI_ATTR VkResult VKAPI_CALL hook_create_compute_pipelines(VkDevice device, VkPipelineCache cache, uint32_t n,
                                                                    const VkComputePipelineCreateInfo *infos,
                                                                    const VkAllocationCallbacks *alloc,
                                                                    VkPipeline *out) {
    VkResult r;
    if (vk_fault_hit(VK_FAULT_PIPELINE, &r)) {
        for (uint32_t i = 0; i < n; i++) out[i] = VK_NULL_HANDLE;
        return r;
    }
    return real_create_compute_pipelines(device, cache, n, infos, alloc, out);
}

static VKAPI_ATTR VkResult VKAPI_CALL hook_create_buffer(VkDevice device, const VkBufferCreateInfo *info,
                                                         const VkAllocationCallbacks *alloc, VkBuffer *buf) {
    VkResult r;
    if (vk_fault_hit(VK_FAULT_BUFFER, &r)) {
        *buf = VK_NULL_HANDLE;
        return r;
    }
    return real_create_buffer(device, info, alloc, buf);
}

void vk_fault_install(void) {
    if (real_queue_submit || !vkQueueSubmit) return;
    real_allocate_memory = vkAllocateMemory;
    real_queue_submit = vkQueueSubmit;
    real_wait_for_fences = vkWaitForFences;
    real_create_compute_pipelines = vkCreateComputePipelines;
    real_create_buffer = vkCreateBuffer;
    vkAllocateMemory = hook_allocate_memory;
    vkQueueSubmit = hook_queue_submit;
    vkWaitForFences = hook_wait_for_fences;
    vkCreateComputePipelines = hook_create_compute_pipelines;
    vkCreateBuffer = hook_create_buffer;
}

/* ---- live objects ---- */

void vk_live_add(vk_live_what what, int64_t delta) {
    if (what < VK_LIVE_COUNT) atomic_fetch_add_explicit(&g_live[what], delta, memory_order_relaxed);
}

void vk_live_get(vk_live_stats *out) {
    out->instances = atomic_load(&g_live[VK_LIVE_INSTANCES]);
    out->devices = atomic_load(&g_live[VK_LIVE_DEVICES]);
    out->blocks = atomic_load(&g_live[VK_LIVE_BLOCKS]);
    out->memory_objects = atomic_load(&g_live[VK_LIVE_MEMORY_OBJECTS]);
    out->memory_bytes = atomic_load(&g_live[VK_LIVE_MEMORY_BYTES]);
    out->batches = atomic_load(&g_live[VK_LIVE_BATCHES]);
}
