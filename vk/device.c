/* Logical devices: queue choice (compute-only family first), the features the kernels use,
 * the per-opening memory budget, and one-off command submission. Opening the same physical
 * device twice yields two independent vk_devices, which is how multi-card code is tested on
 * a single GPU. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk/fault.h"
#include "vk/internal.h"
#include "base/util.h"

#define DEFAULT_BLOCK_SIZE (256ull << 20)

static vkllm_status run_once_locked(vk_device *dev, void (*record)(void *ctx, VkCommandBuffer cb), void *ctx);

/* The queue family to use; UINT32_MAX when none computes, UINT32_MAX - 1 when out of memory. */
static uint32_t pick_queue_family(VkPhysicalDevice pd, uint32_t *timestamp_bits) {
    uint32_t n = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, NULL);
    VkQueueFamilyProperties *qf = vkl_calloc(n ? n : 1, sizeof *qf);
    if (!qf) return UINT32_MAX - 1;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, qf);
    uint32_t best = UINT32_MAX;
    for (uint32_t i = 0; i < n && best == UINT32_MAX; i++)
        if ((qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && !(qf[i].queueFlags & VK_QUEUE_GRAPHICS_BIT))
            best = i;
    for (uint32_t i = 0; i < n && best == UINT32_MAX; i++)
        if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) best = i;
    if (best != UINT32_MAX) *timestamp_bits = qf[best].timestampValidBits;
    free(qf);
    return best;
}

/* Chooses the memory type for each kind. Device allocations prefer a type that is also
 * host-visible when it lives on the main device-local heap (UMA, resizable BAR), since then
 * uploads are plain memcpy. */
static void pick_memory_types(vk_device *dev) {
    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties(dev->phys, &mp);
    uint64_t biggest = 0;
    dev->device_heap = 0;
    for (uint32_t h = 0; h < mp.memoryHeapCount; h++)
        if ((mp.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) && mp.memoryHeaps[h].size > biggest) {
            biggest = mp.memoryHeaps[h].size;
            dev->device_heap = h;
        }
    const VkMemoryPropertyFlags hv = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    int best_dev = -1, best_dev_score = -1, best_host = -1, best_host_score = -1;
    for (uint32_t t = 0; t < mp.memoryTypeCount; t++) {
        VkMemoryPropertyFlags f = mp.memoryTypes[t].propertyFlags;
        uint32_t h = mp.memoryTypes[t].heapIndex;
        if (f & (VK_MEMORY_PROPERTY_PROTECTED_BIT | VK_MEMORY_PROPERTY_LAZILY_ALLOCATED_BIT)) continue;
        if ((f & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) && h == dev->device_heap) {
            int score = 1 + (((f & hv) == hv) ? 2 : 0);
            if (score > best_dev_score) best_dev = (int)t, best_dev_score = score;
        }
        if ((f & hv) == hv) {
            int score = 1 + ((f & VK_MEMORY_PROPERTY_HOST_CACHED_BIT) ? 2 : 0) +
                        (!(f & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) ? 1 : 0);
            if (score > best_host_score) best_host = (int)t, best_host_score = score;
        }
    }
    dev->mem_type[VK_MEM_DEVICE] = (uint32_t)best_dev;
    dev->mem_type[VK_MEM_HOST] = (uint32_t)best_host;
    dev->mem_mapped[VK_MEM_DEVICE] = best_dev >= 0 && (mp.memoryTypes[best_dev].propertyFlags & hv) == hv;
    /* Tests take the staging path of discrete GPUs on a device whose memory is all mappable. */
    const char *no_map = getenv("VKLLM_NO_MAPPED_DEVICE_MEMORY");
    if (no_map && *no_map && strcmp(no_map, "0") != 0) dev->mem_mapped[VK_MEM_DEVICE] = 0;
    dev->mem_mapped[VK_MEM_HOST] = 1;
}

vkllm_status vk_device_open(vk_instance *inst, uint32_t index, const vk_device_opts *opts,
                            vk_device **out) {
    *out = NULL;
    if (index >= inst->n_phys)
        return vkl_err(VKLLM_ERR_NO_DEVICE, "device %u does not exist: %u Vulkan device%s found "
                       "(run `vkllm devices` to list them)", index, inst->n_phys,
                       inst->n_phys == 1 ? "" : "s");
    const vkllm_device_info *info = &inst->info[index];
    if (info->api_version < VK_API_VERSION_1_2)
        return vkl_err(VKLLM_ERR_UNSUPPORTED, "device %u (%s) supports Vulkan %u.%u; vkllm needs 1.2",
                       index, info->name, VK_API_VERSION_MAJOR(info->api_version),
                       VK_API_VERSION_MINOR(info->api_version));

    vk_device *dev = vkl_calloc(1, sizeof *dev);
    if (!dev) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    vk_live_add(VK_LIVE_DEVICES, 1);
    pthread_mutex_init(&dev->queue_lock, NULL);
    pthread_mutex_init(&dev->mem_lock, NULL);
    pthread_mutex_init(&dev->batch_lock, NULL);
    pthread_mutex_init(&dev->xfer_lock, NULL);
    pthread_mutex_init(&dev->pipeline_lock, NULL);
    dev->inst = inst;
    dev->index = index;
    dev->phys = inst->phys[index];
    dev->info = info;
    snprintf(dev->label, sizeof dev->label, "device %u (%s) #%u", index, info->name,
             atomic_fetch_add(&inst->open_count[index], 1) + 1);
    dev->enable_timestamps = opts && opts->enable_timestamps;

    dev->queue_family = pick_queue_family(dev->phys, &dev->timestamp_bits);
    if (dev->queue_family == UINT32_MAX - 1) {
        vk_device_close(dev);
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    }
    if (dev->queue_family == UINT32_MAX) {
        vk_device_close(dev);
        return vkl_err(VKLLM_ERR_UNSUPPORTED, "%s has no compute queue", info->name);
    }

    /* Enable what exists among the features the kernels may use. */
    int v13 = info->api_version >= VK_API_VERSION_1_3;
    VkPhysicalDeviceVulkan13Features s13 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
    VkPhysicalDeviceVulkan12Features s12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    VkPhysicalDeviceVulkan11Features s11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
    VkPhysicalDeviceFeatures2 sup = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &s11};
    s11.pNext = &s12;
    if (v13) s12.pNext = &s13;
    vkGetPhysicalDeviceFeatures2(dev->phys, &sup);

    VkPhysicalDeviceVulkan13Features e13 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
    VkPhysicalDeviceVulkan12Features e12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    VkPhysicalDeviceVulkan11Features e11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
    VkPhysicalDeviceFeatures2 en = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &e11};
    e11.pNext = &e12;
    if (v13) e12.pNext = &e13;
    en.features.shaderInt16 = sup.features.shaderInt16;
    en.features.shaderInt64 = sup.features.shaderInt64;
    e11.storageBuffer16BitAccess = s11.storageBuffer16BitAccess;
    e11.uniformAndStorageBuffer16BitAccess = s11.uniformAndStorageBuffer16BitAccess;
    e12.storageBuffer8BitAccess = s12.storageBuffer8BitAccess;
    e12.uniformAndStorageBuffer8BitAccess = s12.uniformAndStorageBuffer8BitAccess;
    e12.shaderFloat16 = s12.shaderFloat16;
    e12.shaderInt8 = s12.shaderInt8;
    e12.timelineSemaphore = s12.timelineSemaphore;
    e12.hostQueryReset = s12.hostQueryReset;
    if (v13) {
        e13.subgroupSizeControl = s13.subgroupSizeControl;
        e13.computeFullSubgroups = s13.computeFullSubgroups;
        e13.maintenance4 = s13.maintenance4;
        e13.shaderIntegerDotProduct = s13.shaderIntegerDotProduct;
    }

    const char *exts[4];
    uint32_t n_exts = 0;
    /* Integer dot products (the int_dot kernels): a Vulkan 1.3 feature, or before 1.3 the
     * extension with its own feature structure. */
    VkPhysicalDeviceShaderIntegerDotProductFeatures edot = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES,
        .shaderIntegerDotProduct = VK_TRUE};
    if (!v13 && info->integer_dot_product) {
        exts[n_exts++] = VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME;
        edot.pNext = e12.pNext;
        e12.pNext = &edot;
    }
    if (info->memory_budget_ext) exts[n_exts++] = VK_EXT_MEMORY_BUDGET_EXTENSION_NAME;
    /* Importing host memory lets weights be read in place from a mapped file or a host copy
     * instead of filling a second host-visible copy. */
    if (info->external_host_memory && info->min_imported_host_pointer_alignment) {
        exts[n_exts++] = VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME;
        dev->external_host_memory = 1;
    }
    /* Push descriptors spare every dispatch a descriptor-set allocation and update, which is
     * most of the host cost of a token step on fast GPUs. */
    if (info->push_descriptors && !getenv("VKLLM_NO_PUSH_DESCRIPTORS")) {
        exts[n_exts++] = VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME;
        dev->push_descriptors = 1;
    }

    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                   .queueFamilyIndex = dev->queue_family,
                                   .queueCount = 1,
                                   .pQueuePriorities = &prio};
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                              .pNext = &en,
                              .queueCreateInfoCount = 1,
                              .pQueueCreateInfos = &qci,
                              .enabledExtensionCount = n_exts,
                              .ppEnabledExtensionNames = exts};
    VkResult r = vkCreateDevice(dev->phys, &dci, NULL, &dev->device);
    if (r != VK_SUCCESS) {
        dev->device = VK_NULL_HANDLE;
        vk_device_close(dev);
        return vk_check(r, "vkCreateDevice", __FILE__, __LINE__);
    }
    vkGetDeviceQueue(dev->device, dev->queue_family, 0, &dev->queue);

    VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                   .queueFamilyIndex = dev->queue_family};
    r = vkCreateCommandPool(dev->device, &pci, NULL, &dev->cmd_pool);
    if (r != VK_SUCCESS) {
        vkllm_status st = vk_check(r, "vkCreateCommandPool", __FILE__, __LINE__);
        vk_device_close(dev);
        return st;
    }

    pick_memory_types(dev);
    if (dev->mem_type[VK_MEM_DEVICE] == UINT32_MAX || dev->mem_type[VK_MEM_HOST] == UINT32_MAX) {
        vk_device_close(dev);
        return vkl_err(VKLLM_ERR_UNSUPPORTED, "%s lacks a usable device-local or host-visible "
                       "memory type", info->name);
    }
    uint64_t heap = info->heaps[dev->device_heap].size;
    if (info->heaps[dev->device_heap].budget && info->heaps[dev->device_heap].budget < heap)
        heap = info->heaps[dev->device_heap].budget;
    dev->budget = (opts && opts->budget) ? opts->budget : heap;
    dev->fail_above = opts ? opts->fail_above : 0;
    uint64_t bs = (opts && opts->block_size) ? opts->block_size : DEFAULT_BLOCK_SIZE;
    if (bs > info->max_memory_allocation_size) bs = info->max_memory_allocation_size;
    if (bs > info->max_buffer_size) bs = info->max_buffer_size;
    dev->block_size = bs;
    dev->alignment = vk_alloc_alignment(info->min_storage_buffer_offset_alignment);

    vk_pipeline_cache_load(dev);
    char b1[32], b2[32];
    vkl_log(VKLLM_LOG_INFO, "opened %s: queue family %u, budget %s, block %s%s", dev->label,
            dev->queue_family, vkl_fmt_bytes(b1, sizeof b1, dev->budget),
            vkl_fmt_bytes(b2, sizeof b2, dev->block_size),
            dev->mem_mapped[VK_MEM_DEVICE] ? ", device memory host-visible" : "");
    *out = dev;
    return VKLLM_OK;
}

void vk_device_close(vk_device *dev) {
    if (!dev) return;
    if (dev->device) {
        /* On a lost device this returns at once with VK_ERROR_DEVICE_LOST (the spec bounds
         * every wait on a lost device); its pipeline cache is not worth keeping then. */
        pthread_mutex_lock(&dev->queue_lock);
        vkDeviceWaitIdle(dev->device);
        pthread_mutex_unlock(&dev->queue_lock);
        if (!vk_device_lost(dev)) vk_pipeline_cache_save(dev);
        vk_batches_release(dev);
        vk_pipelines_release(dev);
        vk_staging_release(dev);
        vk_mem_release_all(dev);
        if (dev->pipeline_cache) vkDestroyPipelineCache(dev->device, dev->pipeline_cache, NULL);
        if (dev->cmd_pool) vkDestroyCommandPool(dev->device, dev->cmd_pool, NULL);
        vkDestroyDevice(dev->device, NULL);
    }
    pthread_mutex_destroy(&dev->queue_lock);
    pthread_mutex_destroy(&dev->mem_lock);
    pthread_mutex_destroy(&dev->batch_lock);
    pthread_mutex_destroy(&dev->xfer_lock);
    pthread_mutex_destroy(&dev->pipeline_lock);
    free(dev);
    vk_live_add(VK_LIVE_DEVICES, -1);
}

const vkllm_device_info *vk_device_props(const vk_device *dev) { return dev->info; }
const char *vk_device_label(const vk_device *dev) { return dev->label; }
int vk_device_lost(const vk_device *dev) { return atomic_load(&dev->lost) != 0; }

vkllm_status vk_device_fail(vk_device *dev, VkResult r, const char *call, const char *file, int line) {
    if (r != VK_ERROR_DEVICE_LOST) {
        vkllm_status st = vk_check(r, call, file, line);
        vkl_err_context("%s", dev->label);
        return st;
    }
    if (!atomic_exchange(&dev->lost, 1))
        vkl_log(VKLLM_LOG_ERROR, "%s was lost (%s returned VK_ERROR_DEVICE_LOST)", dev->label, call);
    const char *base = strrchr(file, '/');
    return vkl_err(VKLLM_ERR_DEVICE_LOST, "%s was lost: %s failed with VK_ERROR_DEVICE_LOST at %s:%d (the "
                   "driver reset the device; free the models and contexts on it and load again)",
                   dev->label, call, base ? base + 1 : file, line);
}

vkllm_status vk_device_check_lost(const vk_device *dev) {
    if (!vk_device_lost(dev)) return VKLLM_OK;
    return vkl_err(VKLLM_ERR_DEVICE_LOST, "%s was lost earlier: only freeing what is on it is still "
                   "possible; load the model again", dev->label);
}

VkResult vk_queue_submit(vk_device *dev, const VkSubmitInfo *si, VkFence fence) {
    if (vk_device_lost(dev)) return VK_ERROR_DEVICE_LOST;
    pthread_mutex_lock(&dev->queue_lock);
    VkResult r = vkQueueSubmit(dev->queue, 1, si, fence);
    pthread_mutex_unlock(&dev->queue_lock);
    return r;
}

vkllm_status vk_run_once(vk_device *dev, void (*record)(void *ctx, VkCommandBuffer cb), void *ctx) {
    vkllm_status st = vk_device_check_lost(dev);
    if (st) return st;
    pthread_mutex_lock(&dev->xfer_lock); /* cmd_pool */
    st = run_once_locked(dev, record, ctx);
    pthread_mutex_unlock(&dev->xfer_lock);
    return st;
}

static vkllm_status run_once_locked(vk_device *dev, void (*record)(void *ctx, VkCommandBuffer cb), void *ctx) {
    VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                      .commandPool = dev->cmd_pool,
                                      .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                      .commandBufferCount = 1};
    VkCommandBuffer cb;
    VK_TRY(vkAllocateCommandBuffers(dev->device, &ai, &cb));
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VkResult r = vkBeginCommandBuffer(cb, &bi);
    if (r == VK_SUCCESS) {
        record(ctx, cb);
        r = vkEndCommandBuffer(cb);
    }
    VkFence fence = VK_NULL_HANDLE;
    if (r == VK_SUCCESS) {
        VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        r = vkCreateFence(dev->device, &fi, NULL, &fence);
    }
    if (r == VK_SUCCESS) {
        VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &cb};
        r = vk_queue_submit(dev, &si, fence);
    }
    if (r == VK_SUCCESS) r = vkWaitForFences(dev->device, 1, &fence, VK_TRUE, UINT64_MAX);
    if (fence) vkDestroyFence(dev->device, fence, NULL);
    vkFreeCommandBuffers(dev->device, dev->cmd_pool, 1, &cb);
    if (r != VK_SUCCESS) return vk_device_fail(dev, r, "one-off submission", __FILE__, __LINE__);
    return VKLLM_OK;
}
