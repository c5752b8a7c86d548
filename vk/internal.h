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

    /* memory */
    uint32_t mem_type[2]; /* per vk_mem_kind */
    int mem_mapped[2];
    uint32_t device_heap;
    uint64_t budget, block_size, alignment;
    uint64_t kind_bytes[2], used_bytes;
    vk_block *blocks;

    vk_staging_slot staging[2];
    uint64_t staging_size;

    struct vk_pipeline *pipelines;
    struct vk_batch *free_batches;
};

/* Submits a one-off command buffer recorded by record(ctx, cb) and waits. */
vkllm_status vk_run_once(vk_device *dev, void (*record)(void *ctx, VkCommandBuffer cb),
                         void *ctx);

void vk_mem_release_all(vk_device *dev);
void vk_pipelines_release(vk_device *dev);
void vk_batches_release(vk_device *dev);
vkllm_status vk_pipeline_cache_load(vk_device *dev);
void vk_pipeline_cache_save(vk_device *dev);

#endif
