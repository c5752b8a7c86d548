/* Structures shared by the files of vk/ (not part of the vk.h interface). */
#ifndef VKLLM_VK_INTERNAL_H
#define VKLLM_VK_INTERNAL_H

#include "vk/vk.h"

struct vk_instance {
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    uint32_t api_version;
    uint32_t n_phys;
    VkPhysicalDevice *phys;
    vkllm_device_info *info;
    uint32_t *open_count; /* openings per physical device, for labels */
    uint32_t validation_messages;
};

struct vk_block {
    struct vk_block *next;
    VkDeviceMemory memory;
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
    VkPipelineCache pipeline_cache;
    int pipeline_cache_dirty;
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
    uint64_t kind_bytes[VK_MEM_KIND_COUNT];
    uint64_t used_bytes; /* handed out from device and host blocks (imported memory is not ours) */
    vk_block *blocks;

    vk_staging_slot staging[2]; /* each a dedicated VK_STAGING_SLOT_BYTES host allocation */

    struct vk_pipeline *pipelines;
    struct vk_batch *free_batches;
};

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

#endif
