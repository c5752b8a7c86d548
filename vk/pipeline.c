/* Compute pipelines, memoized per device by (shader, defines, layout, specialization); their
 * preparation ahead of use (built on several threads from what dry batches asked for, then
 * run once); and the persistent VkPipelineCache blob keyed by vendor, device, driver version
 * and pipelineCacheUUID. A mismatching or damaged blob is ignored, never an error. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vk/fault.h"
#include "vk/internal.h"
#include "vk/pipeline.h"
#include "base/util.h"

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

void *vk_pipeline_cache_read(FILE *f, const VkPhysicalDeviceProperties *p, size_t *size) {
    void *data = NULL;
    pcache_header h;
    *size = 0;
    if (fread(&h, sizeof h, 1, f) == 1 && h.magic == PCACHE_MAGIC && h.vendor_id == p->vendorID &&
        h.device_id == p->deviceID && h.driver_version == p->driverVersion &&
        !memcmp(h.cache_uuid, p->pipelineCacheUUID, VK_UUID_SIZE) && h.size > 0 && h.size < (256u << 20)) {
        data = malloc(h.size);
        if (data && fread(data, 1, h.size, f) == h.size && fgetc(f) == EOF &&
            vkl_hash64(data, h.size, VKL_HASH_SEED) == h.checksum) {
            *size = h.size;
        } else {
            free(data);
            data = NULL;
        }
    }
    return data;
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
        if (f) {
            data = vk_pipeline_cache_read(f, &p, &size);
            fclose(f);
        }
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
            if (!ok || rename(tmp, path) != 0) {
                vk_cache_write_failed(path, errno);
                remove(tmp);
            }
        }
    }
    free(data);
}

static int desc_equal(const vk_pipeline_desc *a, const vk_pipeline_desc *b) {
    return !strcmp(a->shader, b->shader) &&
           !strcmp(a->defines ? a->defines : "", b->defines ? b->defines : "") &&
           a->n_bindings == b->n_bindings && a->uniform_mask == b->uniform_mask && a->push_size == b->push_size &&
           a->n_spec == b->n_spec &&
           !memcmp(a->spec, b->spec, a->n_spec * sizeof a->spec[0]);
}

static void objects_destroy(vk_device *dev, vk_pipeline *p) {
    if (p->pipeline) vkDestroyPipeline(dev->device, p->pipeline, NULL);
    if (p->layout) vkDestroyPipelineLayout(dev->device, p->layout, NULL);
    if (p->set_layout) vkDestroyDescriptorSetLayout(dev->device, p->set_layout, NULL);
    p->pipeline = VK_NULL_HANDLE;
    p->layout = VK_NULL_HANDLE;
    p->set_layout = VK_NULL_HANDLE;
}

void vk_pipelines_release(vk_device *dev) {
    while (dev->pipelines) {
        vk_pipeline *p = dev->pipelines;
        dev->pipelines = p->next;
        objects_destroy(dev, p);
        pthread_mutex_destroy(&p->build_lock);
        free(p->shader);
        free(p->defines);
        free(p);
    }
}

/* What building one pipeline cost. */
typedef struct build_info {
    int built;        /* this call created it (0: it existed, or the build failed) */
    int cache_hit;    /* the driver took it from the VkPipelineCache: 1, 0, or -1 not said */
    double create_ms; /* in vkCreateComputePipelines */
} build_info;

/* Creates p's layouts and pipeline from spv; on failure none of them is left. */
static vkllm_status create(vk_device *dev, vk_pipeline *p, const vk_spirv *spv, build_info *info) {
    const vk_pipeline_desc *d = &p->desc;
    VkDescriptorSetLayoutBinding b[VK_MAX_BINDINGS];
    for (uint32_t i = 0; i < d->n_bindings; i++)
        b[i] = (VkDescriptorSetLayoutBinding){.binding = i,
                                              .descriptorType = d->uniform_mask >> i & 1
                                                                    ? VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER
                                                                    : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                              .descriptorCount = 1,
                                              .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    VkDescriptorSetLayoutCreateInfo dl = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                          .flags = dev->push_descriptors
                                                       ? VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR
                                                       : 0,
                                          .bindingCount = d->n_bindings,
                                          .pBindings = b};
    const char *call = "vkCreateDescriptorSetLayout";
    VkResult r = vkCreateDescriptorSetLayout(dev->device, &dl, NULL, &p->set_layout);
    if (r != VK_SUCCESS) p->set_layout = VK_NULL_HANDLE;
    VkPushConstantRange pr = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = d->push_size};
    VkPipelineLayoutCreateInfo pl = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                     .setLayoutCount = 1,
                                     .pSetLayouts = &p->set_layout,
                                     .pushConstantRangeCount = d->push_size ? 1 : 0,
                                     .pPushConstantRanges = &pr};
    if (r == VK_SUCCESS) {
        call = "vkCreatePipelineLayout";
        r = vkCreatePipelineLayout(dev->device, &pl, NULL, &p->layout);
        if (r != VK_SUCCESS) p->layout = VK_NULL_HANDLE;
    }
    VkShaderModuleCreateInfo mi = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                   .codeSize = spv->count * 4,
                                   .pCode = spv->words};
    VkShaderModule mod = VK_NULL_HANDLE;
    if (r == VK_SUCCESS) {
        call = "vkCreateShaderModule";
        r = vkCreateShaderModule(dev->device, &mi, NULL, &mod);
        if (r != VK_SUCCESS) mod = VK_NULL_HANDLE;
    }
    VkSpecializationMapEntry map[VK_MAX_SPEC];
    for (uint32_t i = 0; i < d->n_spec; i++)
        map[i] = (VkSpecializationMapEntry){.constantID = i, .offset = i * 4, .size = 4};
    VkSpecializationInfo si = {.mapEntryCount = d->n_spec, .pMapEntries = map,
                               .dataSize = d->n_spec * 4, .pData = d->spec};
    /* Vulkan 1.3 creation feedback says whether the pipeline cache served the pipeline. */
    VkPipelineCreationFeedback fb = {0}, stage_fb = {0};
    VkPipelineCreationFeedbackCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CREATION_FEEDBACK_CREATE_INFO,
                                                .pPipelineCreationFeedback = &fb,
                                                .pipelineStageCreationFeedbackCount = 1,
                                                .pPipelineStageCreationFeedbacks = &stage_fb};
    int feedback = dev->inst->api_version >= VK_API_VERSION_1_3 && dev->info->api_version >= VK_API_VERSION_1_3;
    VkComputePipelineCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .pNext = feedback ? &fci : NULL,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                  .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = mod,
                  .pName = "main",
                  .pSpecializationInfo = d->n_spec ? &si : NULL},
        .layout = p->layout};
    double t0 = vkl_now_ms();
    if (r == VK_SUCCESS) {
        call = "vkCreateComputePipelines";
        /* The cache is internally synchronized (created without the EXTERNALLY_SYNCHRONIZED
         * flag): threads may create pipelines with it at the same time. */
        r = vkCreateComputePipelines(dev->device, dev->pipeline_cache, 1, &ci, NULL, &p->pipeline);
        if (r != VK_SUCCESS) p->pipeline = VK_NULL_HANDLE;
    }
    info->create_ms = vkl_now_ms() - t0;
    if (mod) vkDestroyShaderModule(dev->device, mod, NULL);
    if (r != VK_SUCCESS) {
        objects_destroy(dev, p);
        vkllm_status st = vk_check(r, call, __FILE__, __LINE__);
        vkl_err_context("%s: pipeline %s [%s]", dev->label, d->shader, d->defines);
        return st;
    }
    info->cache_hit = feedback && (fb.flags & VK_PIPELINE_CREATION_FEEDBACK_VALID_BIT)
                          ? (fb.flags & VK_PIPELINE_CREATION_FEEDBACK_APPLICATION_PIPELINE_CACHE_HIT_BIT) != 0
                          : -1;
    atomic_store(&dev->pipeline_cache_dirty, 1);
    vk_shader_note_pipeline(info->create_ms, info->cache_hit);
    vkl_log(VKLLM_LOG_DEBUG, "%s: pipeline %s [%s] created in %.1f ms%s", dev->label, d->shader, d->defines,
            info->create_ms, info->cache_hit > 0 ? " (pipeline cache hit)" : "");
    return VKLLM_OK;
}

/* Builds p unless it is built, from spv or (NULL) by compiling its shader. A thread that finds
 * another building p waits for it on build_lock, then has nothing left to do. */
static vkllm_status build(vk_device *dev, vk_pipeline *p, const vk_spirv *spv, build_info *info) {
    *info = (build_info){0, -1, 0};
    if (vk_pipeline_is_built(p)) return VKLLM_OK;
    vkllm_status st = VKLLM_OK;
    pthread_mutex_lock(&p->build_lock);
    if (!vk_pipeline_is_built(p)) {
        vk_spirv own = {0};
        if (!spv) {
            st = vk_compile_shader(p->desc.shader, p->desc.defines, &own);
            spv = &own;
        }
        if (!st) st = create(dev, p, spv, info);
        free(own.words);
        if (!st) {
            info->built = 1;
            atomic_store_explicit(&p->built, 1, memory_order_release);
        }
    }
    pthread_mutex_unlock(&p->build_lock);
    return st;
}

/* The memo's entry for desc, added unbuilt when there is none. Entries live until the
 * opening closes, so a pointer to one stays valid without the lock. */
static vkllm_status memo_entry(vk_device *dev, const vk_pipeline_desc *desc, vk_pipeline **out) {
    if (desc->n_bindings > VK_MAX_BINDINGS || desc->push_size > VK_MAX_PUSH || desc->n_spec > VK_MAX_SPEC)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "pipeline %s: %u bindings, %u push bytes, %u constants (at most "
                       "%d, %d, %d)", desc->shader, desc->n_bindings, desc->push_size, desc->n_spec,
                       VK_MAX_BINDINGS, VK_MAX_PUSH, VK_MAX_SPEC);
    if (desc->uniform_mask >> desc->n_bindings)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "pipeline %s: uniform_mask 0x%x names bindings past its %u",
                       desc->shader, desc->uniform_mask, desc->n_bindings);
    pthread_mutex_lock(&dev->pipeline_lock);
    vk_pipeline *p = dev->pipelines;
    while (p && !desc_equal(&p->desc, desc)) p = p->next;
    if (!p && (p = vkl_calloc(1, sizeof *p))) {
        p->desc = *desc;
        p->shader = vkl_strdup(desc->shader);
        p->defines = vkl_strdup(desc->defines ? desc->defines : "");
        if (p->shader && p->defines) {
            p->desc.shader = p->shader;
            p->desc.defines = p->defines;
            pthread_mutex_init(&p->build_lock, NULL);
            p->next = dev->pipelines;
            dev->pipelines = p;
        } else {
            free(p->shader);
            free(p->defines);
            free(p);
            p = NULL;
        }
    }
    pthread_mutex_unlock(&dev->pipeline_lock);
    if (!p) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    *out = p;
    return VKLLM_OK;
}

/* Dry batches being recorded on this thread: while there are any, vk_pipeline_get hands out
 * memo entries without building them. Per thread, so that other threads recording real
 * batches on the same openings meanwhile are not affected. */
static _Thread_local unsigned t_dry_batches;

vkllm_status vk_pipeline_get(vk_device *dev, const vk_pipeline_desc *desc, vk_pipeline **out) {
    vk_pipeline *p = NULL;
    build_info info;
    vkllm_status st = memo_entry(dev, desc, &p);
    if (!st && !t_dry_batches) st = build(dev, p, NULL, &info);
    if (st) return st;
    *out = p;
    return VKLLM_OK;
}

/* ------------------------------------------------------------ preparation ---- */

/* A pipeline a dry batch used before it was built, on one opening, with its first dispatch's
 * arguments for the first run. */
typedef struct prep_target {
    vk_device *dev;
    vk_pipeline *p;
    vk_buf bufs[VK_MAX_BINDINGS];
    vk_bind binds[VK_MAX_BINDINGS]; /* .buf re-pointed at bufs when used (the array moves) */
    uint32_t n_binds;
    uint32_t push[VK_MAX_PUSH / 4];
    build_info info;
    int ran; /* its first run is submitted */
} prep_target;

/* Targets [first, first + n) of a shader variant (the same shader and defines): compiled or
 * read from the SPIR-V cache once, then created on each target. */
typedef struct prep_item {
    uint32_t first, n;
    int compiled; /* 0: every target existed by the time a thread took the item */
    vk_compile_info compile;
    vkllm_status st;
    char err[1024]; /* the failing thread's message */
} prep_item;

struct vk_prepare {
    pthread_mutex_t lock; /* the targets while noting; the work queue while building */
    pthread_cond_t item_done;
    prep_target *t;
    uint32_t n_t, cap_t;
    prep_item *items;
    uint32_t n_items, next_item, n_done;
    uint32_t *done; /* (n_items) items in the order they finished */
};

vkllm_status vk_prepare_create(vk_prepare **out) {
    *out = NULL;
    vk_prepare *prep = vkl_calloc(1, sizeof *prep);
    if (!prep) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    pthread_mutex_init(&prep->lock, NULL);
    pthread_cond_init(&prep->item_done, NULL);
    *out = prep;
    return VKLLM_OK;
}

void vk_prepare_free(vk_prepare *prep) {
    if (!prep) return;
    pthread_mutex_destroy(&prep->lock);
    pthread_cond_destroy(&prep->item_done);
    free(prep->t);
    free(prep->items);
    free(prep->done);
    free(prep);
}

void vk_prepare_dry_begin(vk_prepare *prep) {
    (void)prep;
    t_dry_batches++;
}

void vk_prepare_dry_end(vk_prepare *prep) {
    (void)prep;
    if (t_dry_batches) t_dry_batches--;
}

vkllm_status vk_prepare_note(vk_prepare *prep, vk_device *dev, vk_pipeline *p, const vk_bind *binds,
                             uint32_t n_binds, const void *push) {
    if (!prep)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: pipeline %s [%s] is not built (it was handed out for a "
                       "dry batch); get it again outside one", dev->label, p->desc.shader, p->desc.defines);
    if (vk_pipeline_is_built(p)) return VKLLM_OK;
    vkllm_status st = VKLLM_OK;
    pthread_mutex_lock(&prep->lock);
    uint32_t i = 0;
    while (i < prep->n_t && !(prep->t[i].p == p && prep->t[i].dev == dev)) i++;
    if (i == prep->n_t) {
        if (prep->n_t == prep->cap_t) {
            uint32_t cap = prep->cap_t ? prep->cap_t * 2 : 32;
            prep_target *t = vkl_realloc(prep->t, cap * sizeof *t);
            if (t) {
                prep->t = t;
                prep->cap_t = cap;
            }
        }
        if (prep->n_t < prep->cap_t) {
            prep_target *t = &prep->t[prep->n_t++];
            memset(t, 0, sizeof *t);
            t->dev = dev;
            t->p = p;
            t->n_binds = n_binds;
            for (uint32_t j = 0; j < n_binds; j++) {
                t->bufs[j] = *binds[j].buf;
                t->binds[j] = binds[j];
            }
            if (push && p->desc.push_size) memcpy(t->push, push, p->desc.push_size);
        } else {
            st = vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
        }
    }
    pthread_mutex_unlock(&prep->lock);
    return st;
}

static int target_cmp(const void *a, const void *b) {
    const vk_pipeline *p = ((const prep_target *)a)->p, *q = ((const prep_target *)b)->p;
    int c = strcmp(p->desc.shader, q->desc.shader);
    return c ? c : strcmp(p->desc.defines, q->desc.defines);
}

static void build_item(vk_prepare *prep, prep_item *it) {
    prep_target *t = &prep->t[it->first];
    int needed = 0;
    for (uint32_t i = 0; i < it->n; i++) needed |= !vk_pipeline_is_built(t[i].p);
    if (!needed) return;
    vk_spirv spv = {0};
    it->compiled = 1;
    vkllm_status st = vk_compile_shader_ex(t->p->desc.shader, t->p->desc.defines, &spv, &it->compile);
    for (uint32_t i = 0; !st && i < it->n; i++) st = build(t[i].dev, t[i].p, &spv, &t[i].info);
    free(spv.words);
    if (st) {
        it->st = st;
        snprintf(it->err, sizeof it->err, "%s", vkl_last_error());
    }
}

static void *build_thread(void *arg) {
    vk_prepare *prep = arg;
    pthread_mutex_lock(&prep->lock);
    while (prep->next_item < prep->n_items) {
        uint32_t i = prep->next_item++;
        pthread_mutex_unlock(&prep->lock);
        build_item(prep, &prep->items[i]);
        pthread_mutex_lock(&prep->lock);
        prep->done[prep->n_done++] = i;
        pthread_cond_signal(&prep->item_done);
    }
    pthread_mutex_unlock(&prep->lock);
    return NULL;
}

/* Runs each pipeline the finished items built once: one batch per opening, submitted without
 * waiting (the caller waits for them all at the end). */
static vkllm_status first_runs(vk_prepare *prep, const uint32_t *items, uint32_t n, vk_batch ***batches,
                               uint32_t *n_batches) {
    for (;;) {
        vk_device *dev = NULL;
        for (uint32_t a = 0; a < n && !dev; a++)
            for (uint32_t i = 0; i < prep->items[items[a]].n && !dev; i++) {
                const prep_target *t = &prep->t[prep->items[items[a]].first + i];
                if (t->info.built && !t->ran) dev = t->dev;
            }
        if (!dev) return VKLLM_OK;
        vk_batch **more = vkl_realloc(*batches, (*n_batches + 1) * sizeof **batches);
        if (!more) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
        *batches = more;
        vk_batch *batch = NULL;
        vkllm_status st = vk_batch_begin(dev, &batch);
        if (st) return st;
        (*batches)[(*n_batches)++] = batch;
        for (uint32_t a = 0; a < n; a++)
            for (uint32_t i = 0; i < prep->items[items[a]].n; i++) {
                prep_target *t = &prep->t[prep->items[items[a]].first + i];
                if (t->dev != dev || !t->info.built || t->ran) continue;
                t->ran = 1;
                vk_bind binds[VK_MAX_BINDINGS];
                for (uint32_t j = 0; j < t->n_binds; j++) {
                    binds[j] = t->binds[j];
                    binds[j].buf = &t->bufs[j];
                }
                /* One workgroup of a dispatch that passed every check reads and writes a
                 * subset of what the whole dispatch would. */
                if (!st) st = vk_batch_dispatch(batch, t->p, binds, t->n_binds, t->push, 1, 1, 1, "first run");
            }
        if (!st) st = vk_batch_submit(batch);
        if (st) return st;
    }
}

static uint32_t default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 4 ? 4 : (uint32_t)n;
}

vkllm_status vk_prepare_build(vk_prepare *prep, uint32_t n_threads, vk_prepare_stats *out) {
    double t0 = vkl_now_ms();
    memset(out, 0, sizeof *out);
    if (prep->n_t == 0) return VKLLM_OK;
    qsort(prep->t, prep->n_t, sizeof *prep->t, target_cmp);
    free(prep->items);
    free(prep->done);
    prep->items = vkl_calloc(prep->n_t, sizeof *prep->items);
    prep->done = vkl_calloc(prep->n_t, sizeof *prep->done);
    if (!prep->items || !prep->done) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    prep->n_items = prep->next_item = prep->n_done = 0;
    for (uint32_t i = 0; i < prep->n_t; i++) {
        if (i == 0 || target_cmp(&prep->t[i - 1], &prep->t[i])) prep->items[prep->n_items++].first = i;
        prep->items[prep->n_items - 1].n++;
    }

    /* Threads build; this one submits the first runs of what they finished meanwhile, so a
     * driver compiling on first use (on its queue thread) works alongside them. */
    uint32_t want = n_threads ? n_threads : default_threads();
    if (want > prep->n_items) want = prep->n_items;
    pthread_t th[16];
    if (want > 16) want = 16;
    uint32_t started = 0;
    while (started < want && pthread_create(&th[started], NULL, build_thread, prep) == 0) started++;
    if (!started) build_thread(prep); /* no thread could start: build here */

    vk_batch **batches = NULL;
    uint32_t n_batches = 0, taken = 0;
    uint32_t *ready = vkl_calloc(prep->n_items, sizeof *ready);
    vkllm_status st = ready ? VKLLM_OK : vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    while (taken < prep->n_items) {
        pthread_mutex_lock(&prep->lock);
        while (prep->n_done == taken) pthread_cond_wait(&prep->item_done, &prep->lock);
        uint32_t n = prep->n_done - taken;
        if (ready) memcpy(ready, prep->done + taken, n * sizeof *ready);
        pthread_mutex_unlock(&prep->lock);
        taken += n;
        if (!st) st = first_runs(prep, ready, n, &batches, &n_batches);
    }
    out->build_ms = vkl_now_ms() - t0;
    for (uint32_t i = 0; i < started; i++) pthread_join(th[i], NULL);
    for (uint32_t i = 0; i < n_batches; i++) {
        vkllm_status ws = vk_batch_wait(batches[i]);
        if (!st) st = ws;
        vk_batch_free(batches[i]);
    }
    free(batches);
    free(ready);

    out->threads = started ? started : 1;
    out->variants = prep->n_items;
    for (uint32_t i = 0; i < prep->n_items; i++) {
        const prep_item *it = &prep->items[i];
        if (it->st && !st) st = vkl_err(it->st, "%s", it->err);
        if (!it->compiled) continue;
        out->spirv_cached += it->compile.cache_hit != 0;
        out->spirv_compiled += it->compile.cache_hit == 0;
        out->compile_ms += it->compile.ms;
    }
    for (uint32_t i = 0; i < prep->n_t; i++) {
        const build_info *b = &prep->t[i].info;
        out->pipelines += b->built;
        out->create_ms += b->create_ms;
        out->pipeline_cache_hits += b->built && b->cache_hit > 0;
        out->pipeline_cache_told += b->built && b->cache_hit >= 0;
    }
    out->total_ms = vkl_now_ms() - t0;
    /* Built or not, what was noted is done with: a second build has nothing to do. */
    prep->n_t = 0;
    return st;
}
