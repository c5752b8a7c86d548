/* Batches: one command buffer of dispatches and copies, with barriers derived from the
 * declared reads and writes, descriptor sets from per-batch pools, timestamps at its start
 * and end (and around every dispatch when the opening asked for them). Each batch has its own
 * fence, so several may be in flight; a reusable batch can be submitted again as recorded.
 * Freed batches, always complete, return to a per-device free list for reuse. */
#include <stdlib.h>
#include <string.h>

#include "vk/fault.h"
#include "vk/internal.h"
#include "vk/pipeline.h"
#include "base/util.h"

#define SETS_PER_POOL 256
#define MAX_TIMESTAMPS 4096
#define MAX_POOLS 64

typedef struct range {
    VkBuffer buf;
    uint64_t lo, hi;
} range;

typedef struct ranges {
    range *r;
    uint32_t n, cap;
} ranges;

struct vk_batch {
    struct vk_batch *next;
    vk_device *dev;
    /* A pool of its own: a command pool must not be used from two threads at once, and two
     * threads may record batches for the same opening. */
    VkCommandPool pool;
    VkCommandBuffer cb;
    VkFence fence;
    VkDescriptorPool pools[MAX_POOLS];
    uint32_t n_pools, cur_pool;
    VkQueryPool queries;
    uint32_t n_queries;
    uint64_t *stamps;
    const char **labels;
    uint32_t n_dispatch, cap_labels, n_barriers;
    ranges reads, writes;
    int recording; /* between vk_batch_begin and submission */
    int pending;   /* submitted; its fence not yet waited for */
    int reusable;  /* recorded for vk_batch_resubmit (no one-time-submit flag) */
    uint32_t max_queries; /* of the query pool: 2 (start and end), or per dispatch */
    vk_prepare *prep; /* a dry batch (vk_batch_begin_dry) noting for this preparation */
};

static int ranges_add(ranges *rs, VkBuffer b, uint64_t lo, uint64_t hi) {
    if (rs->n == rs->cap) {
        uint32_t cap = rs->cap ? rs->cap * 2 : 32;
        range *r = vkl_realloc(rs->r, cap * sizeof *r);
        if (!r) return 0;
        rs->r = r;
        rs->cap = cap;
    }
    rs->r[rs->n++] = (range){b, lo, hi};
    return 1;
}

static int ranges_hit(const ranges *rs, VkBuffer b, uint64_t lo, uint64_t hi) {
    for (uint32_t i = 0; i < rs->n; i++)
        if (rs->r[i].buf == b && lo < rs->r[i].hi && rs->r[i].lo < hi) return 1;
    return 0;
}

static vkllm_status batch_queue(vk_batch *b);

static void batch_destroy(vk_device *dev, vk_batch *b) {
    for (uint32_t i = 0; i < b->n_pools; i++) vkDestroyDescriptorPool(dev->device, b->pools[i], NULL);
    if (b->queries) vkDestroyQueryPool(dev->device, b->queries, NULL);
    if (b->fence) vkDestroyFence(dev->device, b->fence, NULL);
    if (b->pool) vkDestroyCommandPool(dev->device, b->pool, NULL); /* frees b->cb */
    free(b->stamps);
    free(b->labels);
    free(b->reads.r);
    free(b->writes.r);
    free(b);
    vk_live_add(VK_LIVE_BATCHES, -1);
}

void vk_batches_release(vk_device *dev) {
    while (dev->free_batches) {
        vk_batch *b = dev->free_batches;
        dev->free_batches = b->next;
        batch_destroy(dev, b);
    }
}

static vkllm_status add_pool(vk_batch *b) {
    if (b->n_pools == MAX_POOLS)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "a batch exceeded %d dispatches; submit more often",
                       MAX_POOLS * SETS_PER_POOL);
    /* Room for any mix of storage and uniform bindings in every set. */
    VkDescriptorPoolSize ps[2] = {{.type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                   .descriptorCount = SETS_PER_POOL * VK_MAX_BINDINGS},
                                  {.type = VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER,
                                   .descriptorCount = SETS_PER_POOL * VK_MAX_BINDINGS}};
    VkDescriptorPoolCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                     .maxSets = SETS_PER_POOL,
                                     .poolSizeCount = 2,
                                     .pPoolSizes = ps};
    VK_TRY(vkCreateDescriptorPool(b->dev->device, &ci, NULL, &b->pools[b->n_pools]));
    b->n_pools++;
    return VKLLM_OK;
}

static vkllm_status batch_new(vk_device *dev, vk_batch **out) {
    vk_batch *b = vkl_calloc(1, sizeof *b);
    if (!b) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    vk_live_add(VK_LIVE_BATCHES, 1);
    b->dev = dev;
    VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                   .queueFamilyIndex = dev->queue_family};
    VkResult r = vkCreateCommandPool(dev->device, &pci, NULL, &b->pool);
    if (r != VK_SUCCESS) b->pool = VK_NULL_HANDLE;
    VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                      .commandPool = b->pool,
                                      .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                      .commandBufferCount = 1};
    if (r == VK_SUCCESS) r = vkAllocateCommandBuffers(dev->device, &ai, &b->cb);
    if (r == VK_SUCCESS) {
        VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        r = vkCreateFence(dev->device, &fi, NULL, &b->fence);
    }
    if (r == VK_SUCCESS && dev->timestamp_bits) {
        /* Start and end of every batch (vk_batch_gpu_ms); around every dispatch on request. */
        b->max_queries = dev->enable_timestamps ? MAX_TIMESTAMPS : 2;
        VkQueryPoolCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                    .queryType = VK_QUERY_TYPE_TIMESTAMP,
                                    .queryCount = b->max_queries};
        r = vkCreateQueryPool(dev->device, &qi, NULL, &b->queries);
        b->stamps = vkl_calloc(b->max_queries, sizeof *b->stamps);
        if (r == VK_SUCCESS && !b->stamps) r = VK_ERROR_OUT_OF_HOST_MEMORY;
    }
    if (r != VK_SUCCESS) {
        batch_destroy(dev, b);
        return vk_device_fail(dev, r, "creating a command batch", __FILE__, __LINE__);
    }
    vkllm_status st = add_pool(b);
    if (st) {
        batch_destroy(dev, b);
        return st;
    }
    *out = b;
    return VKLLM_OK;
}

static vkllm_status batch_begin(vk_device *dev, int reusable, vk_batch **out) {
    *out = NULL;
    vkllm_status lost = vk_device_check_lost(dev);
    if (lost) return lost;
    pthread_mutex_lock(&dev->batch_lock);
    vk_batch *b = dev->free_batches;
    if (b) dev->free_batches = b->next;
    pthread_mutex_unlock(&dev->batch_lock);
    if (b) {
        b->next = NULL;
    } else {
        vkllm_status st = batch_new(dev, &b);
        if (st) return st;
    }
    for (uint32_t i = 0; i < b->n_pools; i++) vkResetDescriptorPool(dev->device, b->pools[i], 0);
    b->cur_pool = 0;
    b->n_dispatch = b->n_barriers = b->n_queries = 0;
    b->reads.n = b->writes.n = 0;
    b->reusable = reusable;
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = reusable ? 0 : VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VkResult r = vkBeginCommandBuffer(b->cb, &bi);
    if (r != VK_SUCCESS) {
        batch_destroy(dev, b);
        return vk_device_fail(dev, r, "vkBeginCommandBuffer", __FILE__, __LINE__);
    }
    /* Host writes to mapped memory before this submission become visible to the GPU by the
     * submit itself; earlier queue work is ordered by this barrier. */
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_MEMORY_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_MEMORY_READ_BIT | VK_ACCESS_MEMORY_WRITE_BIT};
    vkCmdPipelineBarrier(b->cb, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT,
                         0, 1, &mb, 0, NULL, 0, NULL);
    if (b->queries) {
        vkCmdResetQueryPool(b->cb, b->queries, 0, b->max_queries);
        vkCmdWriteTimestamp(b->cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, b->queries, b->n_queries++);
    }
    b->recording = 1;
    *out = b;
    return VKLLM_OK;
}

vkllm_status vk_batch_begin(vk_device *dev, vk_batch **out) { return batch_begin(dev, 0, out); }
vkllm_status vk_batch_begin_reusable(vk_device *dev, vk_batch **out) { return batch_begin(dev, 1, out); }

/* Inserts a barrier if this access conflicts with what the batch did since the last one. */
static vkllm_status track(vk_batch *b, VkBuffer buf, uint64_t lo, uint64_t hi, int write) {
    int conflict = ranges_hit(&b->writes, buf, lo, hi) || (write && ranges_hit(&b->reads, buf, lo, hi));
    if (conflict) {
        VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                              .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                              .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_UNIFORM_READ_BIT |
                                               VK_ACCESS_SHADER_WRITE_BIT |
                                               VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT};
        VkPipelineStageFlags stages = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
        vkCmdPipelineBarrier(b->cb, stages, stages, 0, 1, &mb, 0, NULL, 0, NULL);
        b->n_barriers++;
        b->reads.n = b->writes.n = 0;
    }
    return VKLLM_OK;
}

static int note(vk_batch *b, VkBuffer buf, uint64_t lo, uint64_t hi, int write) {
    return ranges_add(write ? &b->writes : &b->reads, buf, lo, hi);
}

/* A buffer of another opening names memory and a VkBuffer of another VkDevice: the driver
 * would crash or corrupt, so it is refused while the batch is still untouched. */
static vkllm_status check_owner(const vk_batch *b, const vk_buf *buf, const char *what) {
    if (!buf || !buf->block)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: %s is an unallocated buffer (or an out-of-range "
                       "view)", vk_device_label(b->dev), what);
    if (buf->dev != b->dev)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: the buffer belongs to %s, but the batch records "
                       "for %s", what, buf->dev ? vk_device_label(buf->dev) : "no device",
                       vk_device_label(b->dev));
    return VKLLM_OK;
}

static vkllm_status check_recording(const vk_batch *b, const char *what) {
    if (!b->recording)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: %s on a batch already submitted; begin a new one",
                       b->dev->label, what);
    return VKLLM_OK;
}

static vkllm_status check_bind(vk_batch *b, const vk_bind *bd, int uniform, uint64_t *abs_off, uint64_t *size) {
    const vkllm_device_info *info = b->dev->info;
    uint64_t sz = bd->size ? bd->size : bd->buf->size - bd->offset;
    if (bd->offset > bd->buf->size || sz > bd->buf->size - bd->offset || sz == 0)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "binding [%llu, +%llu) overruns a %llu-byte buffer",
                       (unsigned long long)bd->offset, (unsigned long long)sz,
                       (unsigned long long)bd->buf->size);
    *abs_off = bd->buf->offset + bd->offset;
    if (*abs_off % info->min_storage_buffer_offset_alignment)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "binding offset %llu is not a multiple of "
                       "minStorageBufferOffsetAlignment (%u)", (unsigned long long)*abs_off,
                       info->min_storage_buffer_offset_alignment);
    if (sz > info->max_storage_buffer_range)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "binding of %llu bytes exceeds maxStorageBufferRange "
                       "(%llu): split the tensor", (unsigned long long)sz,
                       (unsigned long long)info->max_storage_buffer_range);
    if (uniform && (*abs_off % info->min_uniform_buffer_offset_alignment || sz > info->max_uniform_buffer_range))
        return vkl_err(VKLLM_ERR_INVALID_ARG, "uniform binding [%llu, +%llu) breaks minUniformBufferOffsetAlignment "
                       "(%u) or maxUniformBufferRange (%u)", (unsigned long long)*abs_off, (unsigned long long)sz,
                       info->min_uniform_buffer_offset_alignment, info->max_uniform_buffer_range);
    *size = sz;
    return VKLLM_OK;
}

vkllm_status vk_batch_dispatch(vk_batch *b, vk_pipeline *p, const vk_bind *binds, uint32_t n_binds,
                               const void *push, uint32_t gx, uint32_t gy, uint32_t gz, const char *label) {
    vk_device *dev = b->dev;
    vkllm_status st = check_recording(b, label ? label : p->desc.shader);
    if (st) return st;
    if (n_binds != p->desc.n_bindings)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "pipeline %s takes %u bindings, got %u", p->desc.shader,
                       p->desc.n_bindings, n_binds);
    for (int i = 0; i < 3; i++) {
        uint32_t g = i == 0 ? gx : i == 1 ? gy : gz;
        if (g == 0 || g > dev->info->max_workgroup_count[i])
            return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: %u workgroups in dimension %d (device allows 1..%u)",
                           p->desc.shader, g, i, dev->info->max_workgroup_count[i]);
    }
    VkDescriptorBufferInfo infos[VK_MAX_BINDINGS];
    VkWriteDescriptorSet writes[VK_MAX_BINDINGS];
    uint64_t offs[VK_MAX_BINDINGS], sizes[VK_MAX_BINDINGS];
    for (uint32_t i = 0; i < n_binds; i++) {
        st = check_owner(b, binds[i].buf, "binding");
        if (!st) st = check_bind(b, &binds[i], p->desc.uniform_mask >> i & 1, &offs[i], &sizes[i]);
        if (st) {
            if (label) vkl_err_context("%s (%s) binding %u", label, p->desc.shader, i);
            else vkl_err_context("%s binding %u", p->desc.shader, i);
            return st;
        }
    }
    if (b->prep || !vk_pipeline_is_built(p)) return vk_prepare_note(b->prep, dev, p, binds, n_binds, push);
    for (uint32_t i = 0; i < n_binds; i++) track(b, binds[i].buf->buffer, offs[i], offs[i] + sizes[i], binds[i].write);
    for (uint32_t i = 0; i < n_binds; i++)
        if (!note(b, binds[i].buf->buffer, offs[i], offs[i] + sizes[i], binds[i].write))
            return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");

    for (uint32_t i = 0; i < n_binds; i++) {
        infos[i] = (VkDescriptorBufferInfo){.buffer = binds[i].buf->buffer, .offset = offs[i], .range = sizes[i]};
        writes[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                           .dstBinding = i,
                                           .descriptorCount = 1,
                                           .descriptorType = p->desc.uniform_mask >> i & 1
                                                                 ? VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER
                                                                 : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                           .pBufferInfo = &infos[i]};
    }
    vkCmdBindPipeline(b->cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->pipeline);
    if (dev->push_descriptors) {
        vkCmdPushDescriptorSetKHR(b->cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->layout, 0, n_binds, writes);
    } else {
        VkDescriptorSet set = VK_NULL_HANDLE;
        for (;;) {
            VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                              .descriptorPool = b->pools[b->cur_pool],
                                              .descriptorSetCount = 1,
                                              .pSetLayouts = &p->set_layout};
            VkResult r = vkAllocateDescriptorSets(dev->device, &ai, &set);
            if (r == VK_SUCCESS) break;
            if (r != VK_ERROR_OUT_OF_POOL_MEMORY && r != VK_ERROR_FRAGMENTED_POOL)
                return vk_check(r, "vkAllocateDescriptorSets", __FILE__, __LINE__);
            b->cur_pool++;
            if (b->cur_pool == b->n_pools && (st = add_pool(b))) return st;
        }
        for (uint32_t i = 0; i < n_binds; i++) writes[i].dstSet = set;
        vkUpdateDescriptorSets(dev->device, n_binds, writes, 0, NULL);
        vkCmdBindDescriptorSets(b->cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->layout, 0, 1, &set, 0, NULL);
    }
    if (p->desc.push_size)
        vkCmdPushConstants(b->cb, p->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, p->desc.push_size, push);
    vkCmdDispatch(b->cb, gx, gy, gz);
    /* Per dispatch when asked for, keeping the last query for the end of the batch. */
    if (b->queries && b->dev->enable_timestamps && b->n_queries + 1 < b->max_queries) {
        vkCmdWriteTimestamp(b->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, b->queries, b->n_queries++);
        if (b->n_dispatch == b->cap_labels) {
            uint32_t cap = b->cap_labels ? b->cap_labels * 2 : 64;
            const char **l = vkl_realloc(b->labels, cap * sizeof *l);
            if (!l) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
            b->labels = l;
            b->cap_labels = cap;
        }
        b->labels[b->n_dispatch] = label ? label : p->desc.shader;
    }
    b->n_dispatch++;
    return VKLLM_OK;
}

vkllm_status vk_batch_begin_dry(vk_device *dev, vk_prepare *prep, vk_batch **out) {
    if (!prep) return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: a dry batch needs a preparation", dev->label);
    vkllm_status st = vk_batch_begin(dev, out);
    if (st) return st;
    (*out)->prep = prep;
    vk_prepare_dry_begin(prep);
    return VKLLM_OK;
}

vkllm_status vk_batch_copy(vk_batch *b, const vk_buf *src, uint64_t src_off, const vk_buf *dst,
                           uint64_t dst_off, uint64_t size) {
    vkllm_status st = check_recording(b, "copy");
    if (!st) st = check_owner(b, src, "copy source");
    if (!st) st = check_owner(b, dst, "copy destination");
    if (st) return st;
    if (src_off > src->size || size > src->size - src_off || dst_off > dst->size || size > dst->size - dst_off)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "copy of %llu bytes from offset %llu of a %llu-byte buffer "
                       "to offset %llu of a %llu-byte buffer overruns", (unsigned long long)size,
                       (unsigned long long)src_off, (unsigned long long)src->size,
                       (unsigned long long)dst_off, (unsigned long long)dst->size);
    if (size == 0) return VKLLM_OK; /* Vulkan forbids empty copy regions */
    uint64_t s = src->offset + src_off, d = dst->offset + dst_off;
    if (src->buffer == dst->buffer && s < d + size && d < s + size)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "copy of %llu bytes from %llu to %llu within one block: "
                       "the ranges overlap", (unsigned long long)size, (unsigned long long)s,
                       (unsigned long long)d);
    track(b, src->buffer, s, s + size, 0);
    track(b, dst->buffer, d, d + size, 1);
    if (!note(b, src->buffer, s, s + size, 0) || !note(b, dst->buffer, d, d + size, 1))
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    VkBufferCopy c = {.srcOffset = s, .dstOffset = d, .size = size};
    vkCmdCopyBuffer(b->cb, src->buffer, dst->buffer, 1, &c);
    return VKLLM_OK;
}

vkllm_status vk_batch_fill(vk_batch *b, const vk_buf *dst, uint64_t off, uint64_t size, uint32_t value) {
    vkllm_status st = check_recording(b, "fill");
    if (!st) st = check_owner(b, dst, "fill");
    if (st) return st;
    uint64_t d = dst->offset + off; /* a view's own offset counts toward the 4-byte rule */
    if (off > dst->size || size > dst->size - off || d % 4 || size % 4)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "fill of %llu bytes at %llu (block offset %llu) of a "
                       "%llu-byte buffer: must be 4-byte aligned and inside the buffer",
                       (unsigned long long)size, (unsigned long long)off, (unsigned long long)d,
                       (unsigned long long)dst->size);
    if (size == 0) return VKLLM_OK; /* Vulkan forbids empty fills */
    track(b, dst->buffer, d, d + size, 1);
    if (!note(b, dst->buffer, d, d + size, 1)) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    vkCmdFillBuffer(b->cb, dst->buffer, d, size, value);
    return VKLLM_OK;
}

vkllm_status vk_batch_submit(vk_batch *b) {
    vk_device *dev = b->dev;
    if (!b->recording) return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: batch submitted twice", dev->label);
    if (b->prep) return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: a dry batch is never submitted", dev->label);
    b->recording = 0;
    /* Make every write of the batch visible to the host and to later submissions. */
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_HOST_READ_BIT | VK_ACCESS_MEMORY_READ_BIT};
    vkCmdPipelineBarrier(b->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, 0, 1, &mb, 0,
                         NULL, 0, NULL);
    if (b->queries && b->n_queries < b->max_queries)
        vkCmdWriteTimestamp(b->cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, b->queries, b->n_queries++);
    VK_DEV_TRY(dev, vkEndCommandBuffer(b->cb));
    return batch_queue(b);
}

/* Queues the recorded command buffer with the batch's fence. */
static vkllm_status batch_queue(vk_batch *b) {
    vk_device *dev = b->dev;
    vkllm_status st = vk_device_check_lost(dev);
    if (st) return st;
    VK_DEV_TRY(dev, vkResetFences(dev->device, 1, &b->fence));
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &b->cb};
    VK_DEV_TRY(dev, vk_queue_submit(dev, &si, b->fence));
    b->pending = 1;
    return VKLLM_OK;
}

vkllm_status vk_batch_resubmit(vk_batch *b) {
    if (!b->reusable || b->recording || b->prep)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: only a submitted reusable batch can be submitted again",
                       b->dev->label);
    if (b->pending)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: a batch submitted again before its last submission "
                       "finished", b->dev->label);
    return batch_queue(b);
}

vkllm_status vk_batch_wait(vk_batch *b) {
    vk_device *dev = b->dev;
    /* Nothing in flight (still recording, or already waited): teardown paths wait
     * unconditionally and must not replace the error that brought them there. */
    if (!b->pending) return VKLLM_OK;
    VkResult r = vkWaitForFences(dev->device, 1, &b->fence, VK_TRUE, UINT64_MAX);
    if (r == VK_ERROR_DEVICE_LOST) b->pending = 0; /* it will never signal: never wait for it again */
    if (r != VK_SUCCESS) return vk_device_fail(dev, r, "vkWaitForFences", __FILE__, __LINE__);
    b->pending = 0;
    if (b->queries && b->n_queries > 1) {
        VK_DEV_TRY(dev, vkGetQueryPoolResults(dev->device, b->queries, 0, b->n_queries, b->n_queries * sizeof(uint64_t),
                                     b->stamps, sizeof(uint64_t), VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT));
    }
    return VKLLM_OK;
}

vkllm_status vk_batch_submit_wait(vk_batch *b) {
    vkllm_status st = vk_batch_submit(b);
    return st ? st : vk_batch_wait(b);
}

uint32_t vk_batch_dispatch_count(const vk_batch *b) { return b->n_dispatch; }

double vk_batch_gpu_ms(const vk_batch *b) {
    if (!b->queries || b->n_queries < 2 || b->recording || b->pending) return -1;
    uint64_t mask = b->dev->timestamp_bits >= 64 ? ~0ull : ((1ull << b->dev->timestamp_bits) - 1);
    uint64_t dt = (b->stamps[b->n_queries - 1] - b->stamps[0]) & mask;
    return (double)dt * b->dev->info->timestamp_period_ns * 1e-6;
}
uint32_t vk_batch_barrier_count(const vk_batch *b) { return b->n_barriers; }

double vk_batch_dispatch_ms(const vk_batch *b, uint32_t i) {
    if (!b->queries || !b->dev->enable_timestamps || i >= b->n_dispatch || i + 1 >= b->n_queries) return -1;
    uint64_t mask = b->dev->timestamp_bits >= 64 ? ~0ull : ((1ull << b->dev->timestamp_bits) - 1);
    uint64_t dt = (b->stamps[i + 1] - b->stamps[i]) & mask;
    return (double)dt * b->dev->info->timestamp_period_ns * 1e-6;
}

const char *vk_batch_dispatch_label(const vk_batch *b, uint32_t i) {
    return (b->labels && b->dev->enable_timestamps && i < b->n_dispatch && i + 1 < b->n_queries) ? b->labels[i] : "";
}

void vk_batch_free(vk_batch *b) {
    if (!b) return;
    vk_device *dev = b->dev;
    if (b->prep) {
        vk_prepare_dry_end(b->prep);
        b->prep = NULL;
    }
    if (b->recording) { /* abandoned mid-recording: the command buffer is reset on reuse */
        vkEndCommandBuffer(b->cb);
        b->recording = 0;
    }
    /* The free list only ever holds finished batches, so vk_batch_begin can reuse any of them. */
    if (b->pending && vkWaitForFences(dev->device, 1, &b->fence, VK_TRUE, UINT64_MAX) != VK_SUCCESS) {
        /* Device lost: the batch will never finish; destroying it is all that is left. */
        vkl_log(VKLLM_LOG_ERROR, "%s: waiting for a batch being freed failed; dropping it", dev->label);
        batch_destroy(dev, b);
        return;
    }
    b->pending = 0;
    pthread_mutex_lock(&dev->batch_lock);
    b->next = dev->free_batches;
    dev->free_batches = b;
    pthread_mutex_unlock(&dev->batch_lock);
}
