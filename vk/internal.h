/* Structures shared by the files of vk/ (not part of the vk.h interface). */
#ifndef VKLLM_VK_INTERNAL_H
#define VKLLM_VK_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "vk/vk.h"

struct vk_instance {
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    uint32_t api_version;
    uint32_t n_phys;
    VkPhysicalDevice *phys;
    vkllm_device_info *info;
    atomic_uint *open_count; /* openings per physical device, for labels */
    atomic_uint validation_messages; /* the layer may report from any thread */
    /* Instance-extension entry points of this instance (volk's globals are loaded once per
     * process, and these exist only where the extension was enabled). */
    PFN_vkCreateDebugUtilsMessengerEXT create_messenger;
    PFN_vkDestroyDebugUtilsMessengerEXT destroy_messenger;
};

struct vk_block {
    struct vk_block *next;
    VkDeviceMemory memory;
    uint64_t memory_size; /* bytes of `memory` (the driver may round size up) */
    VkBuffer buffer;
    uint64_t size;
    vk_mem_kind kind;
    /* One vk_buf spans the whole block (vk_buf_alloc_dedicated, vk_buf_import_host): it is
     * never suballocated and is released with that buffer. */
    int dedicated;
    void *map;
    /* free ranges, sorted by offset, coalesced */
    uint64_t *free_off, *free_len;
    uint32_t n_free, cap_free;
};

typedef struct vk_staging_slot {
    vk_buf buf;
    VkCommandBuffer cb;
    VkFence fence;
    int busy;
} vk_staging_slot;

/* Threads: contexts of one model (and so one opening) may be driven from several threads.
 * Each piece of an opening's shared state has its own lock, never held while taking another
 * except in the order xfer_lock -> mem_lock and xfer_lock -> queue_lock:
 *   queue_lock    the VkQueue (vkQueueSubmit, vkDeviceWaitIdle need external synchronization)
 *   mem_lock      blocks, byte counts and budget
 *   batch_lock    the free list of batches (each batch records into its own command pool)
 *   xfer_lock     the staging ring and cmd_pool (vk_buf_write/read through staging, vk_run_once)
 *   pipeline_lock the pipeline memo (pipelines are created outside it)
 * The rest is written once at open. */
struct vk_device {
    vk_instance *inst;
    uint32_t index;
    char label[300];
    VkPhysicalDevice phys;
    const vkllm_device_info *info;
    VkDevice device;
    VkQueue queue;
    uint32_t queue_family;
    uint32_t timestamp_bits;
    VkCommandPool cmd_pool;
    VkPipelineCache pipeline_cache; /* internally synchronized (no EXTERNALLY_SYNCHRONIZED flag) */
    atomic_int pipeline_cache_dirty;
    int enable_timestamps;
    int push_descriptors; /* VK_KHR_push_descriptor enabled: no descriptor sets to allocate */
    int external_host_memory; /* VK_EXT_external_memory_host enabled: vk_buf_import_host works */

    /* memory */
    /* per vk_mem_kind; VK_MEM_IMPORTED has no fixed type (each host pointer says which) */
    uint32_t mem_type[VK_MEM_KIND_COUNT];
    int mem_mapped[VK_MEM_KIND_COUNT];
    uint32_t device_heap;
    /* alignment == vk_alloc_alignment(minStorageBufferOffsetAlignment), the planner's rounding */
    uint64_t budget, block_size, alignment;
    uint64_t fail_above; /* vk_device_opts.fail_above */
    uint64_t peak_device_bytes;
    uint32_t refusals; /* device-local allocations refused (over budget, or by the driver) */
    uint64_t kind_bytes[VK_MEM_KIND_COUNT];
    uint64_t used_bytes; /* handed out from device and host blocks (imported memory is not ours) */
    vk_block *blocks;

    vk_staging_slot staging[2]; /* each a dedicated VK_STAGING_SLOT_BYTES host allocation */

    struct vk_pipeline *pipelines;
    struct vk_batch *free_batches;

    pthread_mutex_t queue_lock, mem_lock, batch_lock, xfer_lock, pipeline_lock;
    /* A call returned VK_ERROR_DEVICE_LOST: everything after fails with VKLLM_ERR_DEVICE_LOST
     * without touching the device, and nothing waits on its fences again. */
    atomic_int lost;
};

/* The status of a failed call on dev: VK_ERROR_DEVICE_LOST marks the opening lost and says so
 * naming it; anything else as vk_check, with the opening's label in front. */
vkllm_status vk_device_fail(vk_device *dev, VkResult r, const char *call, const char *file, int line);
#define VK_DEV_TRY(dev, call)                                                              \
    do {                                                                                   \
        VkResult vk_r_ = (call);                                                           \
        if (vk_r_ != VK_SUCCESS) return vk_device_fail((dev), vk_r_, #call, __FILE__, __LINE__); \
    } while (0)
/* vkQueueSubmit under the queue lock, marking the opening lost on VK_ERROR_DEVICE_LOST. */
VkResult vk_queue_submit(vk_device *dev, const VkSubmitInfo *si, VkFence fence);

/* Submits a one-off command buffer recorded by record(ctx, cb) and waits. */
vkllm_status vk_run_once(vk_device *dev, void (*record)(void *ctx, VkCommandBuffer cb),
                         void *ctx);

/* Frees the staging ring; the queue must be idle. */
void vk_staging_release(vk_device *dev);
/* Frees every remaining block, live vk_bufs included (device close). */
void vk_mem_release_all(vk_device *dev);
void vk_pipelines_release(vk_device *dev);
void vk_batches_release(vk_device *dev);
vkllm_status vk_pipeline_cache_load(vk_device *dev);
void vk_pipeline_cache_save(vk_device *dev);

/* Dry batches (batch.c) and preparation (pipeline.c). vk_prepare_note takes a dispatch of p
 * that passed every check: in a dry batch of prep it notes p when p is not built yet; in a
 * real batch (prep NULL) an unbuilt p is refused. A dry batch defers pipeline building on its
 * thread from vk_batch_begin_dry (vk_prepare_dry_begin) to vk_batch_free (vk_prepare_dry_end). */
vkllm_status vk_prepare_note(vk_prepare *prep, vk_device *dev, vk_pipeline *p, const vk_bind *binds,
                             uint32_t n_binds, const void *push);
void vk_prepare_dry_begin(vk_prepare *prep);
void vk_prepare_dry_end(vk_prepare *prep);
/* shader.c: counts a pipeline created (cache_hit: 1 hit, 0 miss, -1 not said) for vk_shader_get_stats. */
void vk_shader_note_pipeline(double create_ms, int cache_hit);

/* The readers of the two cache files, on an open stream (vk_compile_shader and
 * vk_pipeline_cache_load open the files; the fuzz targets hand in memory through fmemopen).
 * A SPIR-V entry for `key`: 1 with out->words malloc'd, or 0 for a miss (anything damaged,
 * truncated, foreign or followed by extra bytes). A pipeline-cache blob for the device with
 * properties p: the malloc'd blob and its *size, or NULL for a miss. */
int vk_spirv_cache_read(FILE *f, uint64_t key, vk_spirv *out, double *cost_ms);
void *vk_pipeline_cache_read(FILE *f, const VkPhysicalDeviceProperties *p, size_t *size);

/* Warns (once per process) that a cache file could not be written, e.g. on a full disk. */
void vk_cache_write_failed(const char *path, int err);

#endif
