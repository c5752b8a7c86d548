/* Compute pipelines, memoized per device by (shader, defines, layout, specialization), and
 * the persistent VkPipelineCache blob keyed by vendor, device, driver version and
 * pipelineCacheUUID. A mismatching or damaged blob is ignored, never an error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vk/internal.h"
#include "vk/pipeline.h"
#include "vk/util.h"

#define PCACHE_MAGIC 0x4850504bu /* "KPPH" */

typedef struct pcache_header {
    uint32_t magic;
    uint32_t vendor_id, device_id, driver_version;
    uint8_t cache_uuid[VK_UUID_SIZE];
    uint64_t size;
    uint64_t checksum;
} pcache_header;

void vk_shader_note_pipeline_cache(uint64_t bytes);

static void pcache_path(const vk_device *dev, char *buf, size_t cap) {
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(dev->phys, &p);
    char uuid[33];
    for (int i = 0; i < 16; i++) snprintf(uuid + 2 * i, 3, "%02x", p.pipelineCacheUUID[i]);
    snprintf(buf, cap, "%s/pipelines-%04x-%04x-%s.bin", vk_cache_dir(), p.vendorID, p.deviceID, uuid);
}

vkllm_status vk_pipeline_cache_load(vk_device *dev) {
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(dev->phys, &p);
    void *data = NULL;
    size_t size = 0;
    if (vk_cache_dir()) {
        char path[1200];
        pcache_path(dev, path, sizeof path);
        FILE *f = fopen(path, "rb");
        pcache_header h;
        if (f && fread(&h, sizeof h, 1, f) == 1 && h.magic == PCACHE_MAGIC && h.vendor_id == p.vendorID &&
            h.device_id == p.deviceID && h.driver_version == p.driverVersion &&
            !memcmp(h.cache_uuid, p.pipelineCacheUUID, VK_UUID_SIZE) && h.size > 0 && h.size < (256u << 20)) {
            data = malloc(h.size);
            if (data && fread(data, 1, h.size, f) == h.size && fgetc(f) == EOF &&
                vkl_hash64(data, h.size, VKL_HASH_SEED) == h.checksum) {
                size = h.size;
            } else {
                free(data);
                data = NULL;
            }
        }
        if (f) fclose(f);
        if (!data) vkl_log(VKLLM_LOG_DEBUG, "no usable pipeline cache at %s", path);
    }
    VkPipelineCacheCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO,
                                    .initialDataSize = size,
                                    .pInitialData = data};
    VkResult r = vkCreatePipelineCache(dev->device, &ci, NULL, &dev->pipeline_cache);
    if (r != VK_SUCCESS && data) { /* the driver refused the blob: start empty */
        ci.initialDataSize = 0;
        ci.pInitialData = NULL;
        r = vkCreatePipelineCache(dev->device, &ci, NULL, &dev->pipeline_cache);
        size = 0;
    }
    free(data);
    if (r != VK_SUCCESS) {
        dev->pipeline_cache = VK_NULL_HANDLE;
        return vk_check(r, "vkCreatePipelineCache", __FILE__, __LINE__);
    }
    if (size) {
        vk_shader_note_pipeline_cache(size);
        vkl_log(VKLLM_LOG_DEBUG, "%s: pipeline cache loaded (%zu bytes)", dev->label, size);
    }
    return VKLLM_OK;
}

void vk_pipeline_cache_save(vk_device *dev) {
    if (!dev->pipeline_cache || !dev->pipeline_cache_dirty || !vk_cache_dir()) return;
    size_t size = 0;
    if (vkGetPipelineCacheData(dev->device, dev->pipeline_cache, &size, NULL) != VK_SUCCESS || !size) return;
    void *data = malloc(size);
    if (!data) return;
    if (vkGetPipelineCacheData(dev->device, dev->pipeline_cache, &size, data) == VK_SUCCESS) {
        VkPhysicalDeviceProperties p;
        vkGetPhysicalDeviceProperties(dev->phys, &p);
        pcache_header h = {PCACHE_MAGIC, p.vendorID, p.deviceID, p.driverVersion, {0}, size,
                           vkl_hash64(data, size, VKL_HASH_SEED)};
        memcpy(h.cache_uuid, p.pipelineCacheUUID, VK_UUID_SIZE);
        char path[1200], tmp[1300];
        pcache_path(dev, path, sizeof path);
        snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
        FILE *f = fopen(tmp, "wb");
        if (f) {
            int ok = fwrite(&h, sizeof h, 1, f) == 1 && fwrite(data, 1, size, f) == size;
            ok = (fclose(f) == 0) && ok;
            if (!ok || rename(tmp, path) != 0) remove(tmp);
        }
    }
    free(data);
}

static int desc_equal(const vk_pipeline_desc *a, const vk_pipeline_desc *b) {
    return !strcmp(a->shader, b->shader) &&
           !strcmp(a->defines ? a->defines : "", b->defines ? b->defines : "") &&
           a->n_bindings == b->n_bindings && a->push_size == b->push_size && a->n_spec == b->n_spec &&
           !memcmp(a->spec, b->spec, a->n_spec * sizeof a->spec[0]);
}

static void pipeline_destroy(vk_device *dev, vk_pipeline *p) {
    if (p->pipeline) vkDestroyPipeline(dev->device, p->pipeline, NULL);
    if (p->layout) vkDestroyPipelineLayout(dev->device, p->layout, NULL);
    if (p->set_layout) vkDestroyDescriptorSetLayout(dev->device, p->set_layout, NULL);
    free(p->shader);
    free(p->defines);
    free(p);
}

void vk_pipelines_release(vk_device *dev) {
    while (dev->pipelines) {
        vk_pipeline *p = dev->pipelines;
        dev->pipelines = p->next;
        pipeline_destroy(dev, p);
    }
}

static vkllm_status create(vk_device *dev, const vk_pipeline_desc *d, vk_pipeline *p) {
    if (d->n_bindings > VK_MAX_BINDINGS || d->push_size > VK_MAX_PUSH || d->n_spec > VK_MAX_SPEC)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "pipeline %s: too many bindings, push bytes or constants", d->shader);
    VkDescriptorSetLayoutBinding b[VK_MAX_BINDINGS];
    for (uint32_t i = 0; i < d->n_bindings; i++)
        b[i] = (VkDescriptorSetLayoutBinding){.binding = i,
                                              .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                              .descriptorCount = 1,
                                              .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    VkDescriptorSetLayoutCreateInfo dl = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                          .flags = dev->push_descriptors
                                                       ? VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR
                                                       : 0,
                                          .bindingCount = d->n_bindings,
                                          .pBindings = b};
    VK_TRY(vkCreateDescriptorSetLayout(dev->device, &dl, NULL, &p->set_layout));
    VkPushConstantRange pr = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = d->push_size};
    VkPipelineLayoutCreateInfo pl = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                     .setLayoutCount = 1,
                                     .pSetLayouts = &p->set_layout,
                                     .pushConstantRangeCount = d->push_size ? 1 : 0,
                                     .pPushConstantRanges = &pr};
    VK_TRY(vkCreatePipelineLayout(dev->device, &pl, NULL, &p->layout));

    vk_spirv spv;
    vkllm_status st = vk_compile_shader(d->shader, d->defines, &spv);
    if (st) return st;
    VkShaderModuleCreateInfo mi = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                   .codeSize = spv.count * 4,
                                   .pCode = spv.words};
    VkShaderModule mod;
    VkResult r = vkCreateShaderModule(dev->device, &mi, NULL, &mod);
    free(spv.words);
    if (r != VK_SUCCESS) return vk_check(r, "vkCreateShaderModule", __FILE__, __LINE__);

    VkSpecializationMapEntry map[VK_MAX_SPEC];
    for (uint32_t i = 0; i < d->n_spec; i++)
        map[i] = (VkSpecializationMapEntry){.constantID = i, .offset = i * 4, .size = 4};
    VkSpecializationInfo si = {.mapEntryCount = d->n_spec, .pMapEntries = map,
                               .dataSize = d->n_spec * 4, .pData = d->spec};
    VkComputePipelineCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                  .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = mod,
                  .pName = "main",
                  .pSpecializationInfo = d->n_spec ? &si : NULL},
        .layout = p->layout};
    double t0 = vkl_now_ms();
    r = vkCreateComputePipelines(dev->device, dev->pipeline_cache, 1, &ci, NULL, &p->pipeline);
    vkDestroyShaderModule(dev->device, mod, NULL);
    if (r != VK_SUCCESS) {
        st = vk_check(r, "vkCreateComputePipelines", __FILE__, __LINE__);
        vkl_err_context("pipeline %s [%s]", d->shader, d->defines ? d->defines : "");
        return st;
    }
    dev->pipeline_cache_dirty = 1;
    vkl_log(VKLLM_LOG_DEBUG, "%s: pipeline %s [%s] created in %.1f ms", dev->label, d->shader,
            d->defines ? d->defines : "", vkl_now_ms() - t0);
    return VKLLM_OK;
}

vkllm_status vk_pipeline_get(vk_device *dev, const vk_pipeline_desc *desc, vk_pipeline **out) {
    for (vk_pipeline *p = dev->pipelines; p; p = p->next) {
        if (desc_equal(&p->desc, desc)) {
            *out = p;
            return VKLLM_OK;
        }
    }
    vk_pipeline *p = calloc(1, sizeof *p);
    if (!p) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    p->desc = *desc;
    p->shader = vkl_strdup(desc->shader);
    p->defines = vkl_strdup(desc->defines ? desc->defines : "");
    p->desc.shader = p->shader;
    p->desc.defines = p->defines;
    vkllm_status st = (p->shader && p->defines) ? create(dev, desc, p)
                                                : vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    if (st) {
        pipeline_destroy(dev, p);
        return st;
    }
    p->next = dev->pipelines;
    dev->pipelines = p;
    *out = p;
    return VKLLM_OK;
}
