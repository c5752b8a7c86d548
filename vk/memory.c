/* Device memory: large blocks (never above maxMemoryAllocationSize), each spanned by one
 * VkBuffer and suballocated first-fit with coalescing; dedicated blocks of one buffer each;
 * host memory imported in place (VK_EXT_external_memory_host); a per-opening budget on
 * device-local bytes; and host transfers through a two-slot staging ring when device memory
 * is not mappable. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vk/fault.h"
#include "vk/internal.h"
#include "base/util.h"

static const VkBufferUsageFlags BUF_USAGE = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
                                            VK_BUFFER_USAGE_UNIFORM_BUFFER_BIT |
                                            VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                            VK_BUFFER_USAGE_TRANSFER_DST_BIT;

static vk_block *block_new(void) {
    vk_block *b = vkl_calloc(1, sizeof *b);
    if (b) vk_live_add(VK_LIVE_BLOCKS, 1);
    return b;
}

static void block_destroy(vk_device *dev, vk_block *b) {
    if (b->map) vkUnmapMemory(dev->device, b->memory);
    if (b->buffer) vkDestroyBuffer(dev->device, b->buffer, NULL);
    if (b->memory) {
        vkFreeMemory(dev->device, b->memory, NULL);
        vk_live_add(VK_LIVE_MEMORY_OBJECTS, -1);
        vk_live_add(VK_LIVE_MEMORY_BYTES, -(int64_t)b->memory_size);
    }
    free(b->free_off);
    free(b->free_len);
    free(b);
    vk_live_add(VK_LIVE_BLOCKS, -1);
}

/* vkAllocateMemory, counted among the process's live memory objects. */
static VkResult memory_allocate(vk_device *dev, const VkMemoryAllocateInfo *mai, vk_block *b) {
    VkResult r = vkAllocateMemory(dev->device, mai, NULL, &b->memory);
    if (r != VK_SUCCESS) {
        b->memory = VK_NULL_HANDLE;
        return r;
    }
    b->memory_size = mai->allocationSize;
    vk_live_add(VK_LIVE_MEMORY_OBJECTS, 1);
    vk_live_add(VK_LIVE_MEMORY_BYTES, (int64_t)b->memory_size);
    return VK_SUCCESS;
}

static void block_link(vk_device *dev, vk_block *b) {
    dev->kind_bytes[b->kind] += b->size;
    if (b->kind == VK_MEM_DEVICE && dev->kind_bytes[b->kind] > dev->peak_device_bytes)
        dev->peak_device_bytes = dev->kind_bytes[b->kind];
    b->next = dev->blocks;
    dev->blocks = b;
}

static void block_unlink_destroy(vk_device *dev, vk_block *b) {
    vk_block **pp = &dev->blocks;
    while (*pp && *pp != b) pp = &(*pp)->next;
    if (*pp) *pp = b->next;
    dev->kind_bytes[b->kind] -= b->size;
    block_destroy(dev, b);
}

/* The rounded size of a request; 0 when rounding would overflow. */
static uint64_t round_request(const vk_device *dev, uint64_t size) {
    if (size == 0) size = 1;
    if (size > UINT64_MAX - dev->alignment) return 0;
    return vkl_align_up(size, dev->alignment);
}

static vkllm_status check_kind(const vk_device *dev, vk_mem_kind kind, const char *who) {
    if (kind != VK_MEM_DEVICE && kind != VK_MEM_HOST)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: %s takes VK_MEM_DEVICE or VK_MEM_HOST, got kind %d "
                       "(imported memory comes from vk_buf_import_host)", dev->label, who, (int)kind);
    return VKLLM_OK;
}

/* A block of `size` bytes of `kind`, linked into the device's list. A dedicated block is
 * handed out whole and never searched for free space. */
static vkllm_status block_create(vk_device *dev, vk_mem_kind kind, uint64_t size, int dedicated,
                                 vk_block **out) {
    *out = NULL;
    char b1[32], b2[32], b3[32];
    if (kind == VK_MEM_DEVICE && (size > dev->budget || dev->kind_bytes[VK_MEM_DEVICE] > dev->budget - size)) {
        dev->refusals++;
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY,
                       "%s: allocating %s would exceed its budget (%s of %s in use); free memory, "
                       "use another device, or a smaller model or context",
                       dev->label, vkl_fmt_bytes(b1, sizeof b1, size),
                       vkl_fmt_bytes(b2, sizeof b2, dev->kind_bytes[VK_MEM_DEVICE]),
                       vkl_fmt_bytes(b3, sizeof b3, dev->budget));
    }
    if (size > dev->info->max_memory_allocation_size)
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "%s: one allocation of %s exceeds "
                       "maxMemoryAllocationSize (%s)", dev->label, vkl_fmt_bytes(b1, sizeof b1, size),
                       vkl_fmt_bytes(b2, sizeof b2, dev->info->max_memory_allocation_size));
    vk_block *b = block_new();
    if (!b) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    b->size = size;
    b->kind = kind;
    b->dedicated = dedicated;
    VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                              .size = size,
                              .usage = BUF_USAGE,
                              .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkResult r = vkCreateBuffer(dev->device, &bci, NULL, &b->buffer);
    if (r == VK_SUCCESS && kind == VK_MEM_DEVICE && dev->fail_above && dev->kind_bytes[kind] + size > dev->fail_above)
        r = VK_ERROR_OUT_OF_DEVICE_MEMORY;
    VkMemoryRequirements req = {0};
    if (r == VK_SUCCESS) {
        vkGetBufferMemoryRequirements(dev->device, b->buffer, &req);
        if (!(req.memoryTypeBits & (1u << dev->mem_type[kind]))) r = VK_ERROR_FEATURE_NOT_PRESENT;
    }
    if (r == VK_SUCCESS) {
        VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                                    .allocationSize = req.size,
                                    .memoryTypeIndex = dev->mem_type[kind]};
        r = memory_allocate(dev, &mai, b);
    }
    if (r == VK_SUCCESS) r = vkBindBufferMemory(dev->device, b->buffer, b->memory, 0);
    if (r == VK_SUCCESS && dev->mem_mapped[kind]) r = vkMapMemory(dev->device, b->memory, 0, VK_WHOLE_SIZE, 0, &b->map);
    if (r == VK_SUCCESS && !dedicated) { /* a dedicated block is never searched: no free list */
        b->cap_free = 8;
        b->free_off = vkl_malloc(b->cap_free * sizeof *b->free_off);
        b->free_len = vkl_malloc(b->cap_free * sizeof *b->free_len);
        if (!b->free_off || !b->free_len) r = VK_ERROR_OUT_OF_HOST_MEMORY;
    }
    if (r != VK_SUCCESS) {
        if (kind == VK_MEM_DEVICE && r == VK_ERROR_OUT_OF_DEVICE_MEMORY) dev->refusals++;
        block_destroy(dev, b);
        vkllm_status st = vk_device_fail(dev, r, "allocating a memory block", __FILE__, __LINE__);
        vkl_err_context("%s block", vkl_fmt_bytes(b1, sizeof b1, size));
        return st;
    }
    if (!dedicated) {
        b->free_off[0] = 0;
        b->free_len[0] = size;
        b->n_free = 1;
    }
    block_link(dev, b);
    *out = b;
    return VKLLM_OK;
}

/* First fit inside one block; returns the offset or UINT64_MAX. */
static uint64_t block_take(vk_block *b, uint64_t size) {
    for (uint32_t i = 0; i < b->n_free; i++) {
        if (b->free_len[i] < size) continue;
        uint64_t off = b->free_off[i];
        b->free_off[i] += size;
        b->free_len[i] -= size;
        if (b->free_len[i] == 0) {
            memmove(&b->free_off[i], &b->free_off[i + 1], (b->n_free - i - 1) * sizeof *b->free_off);
            memmove(&b->free_len[i], &b->free_len[i + 1], (b->n_free - i - 1) * sizeof *b->free_len);
            b->n_free--;
        }
        return off;
    }
    return UINT64_MAX;
}

static int block_give(vk_block *b, uint64_t off, uint64_t size) {
    uint32_t i = 0;
    while (i < b->n_free && b->free_off[i] < off) i++;
    int merge_prev = i > 0 && b->free_off[i - 1] + b->free_len[i - 1] == off;
    int merge_next = i < b->n_free && off + size == b->free_off[i];
    if (merge_prev && merge_next) {
        b->free_len[i - 1] += size + b->free_len[i];
        memmove(&b->free_off[i], &b->free_off[i + 1], (b->n_free - i - 1) * sizeof *b->free_off);
        memmove(&b->free_len[i], &b->free_len[i + 1], (b->n_free - i - 1) * sizeof *b->free_len);
        b->n_free--;
    } else if (merge_prev) {
        b->free_len[i - 1] += size;
    } else if (merge_next) {
        b->free_off[i] = off;
        b->free_len[i] += size;
    } else {
        if (b->n_free == b->cap_free) {
            uint32_t cap = b->cap_free * 2;
            uint64_t *o = vkl_realloc(b->free_off, cap * sizeof *o);
            if (o) b->free_off = o;
            uint64_t *l = vkl_realloc(b->free_len, cap * sizeof *l);
            if (l) b->free_len = l;
            if (!o || !l) return 0; /* the range leaks inside the block; the block is still freed at close */
            b->cap_free = cap;
        }
        memmove(&b->free_off[i + 1], &b->free_off[i], (b->n_free - i) * sizeof *b->free_off);
        memmove(&b->free_len[i + 1], &b->free_len[i], (b->n_free - i) * sizeof *b->free_len);
        b->free_off[i] = off;
        b->free_len[i] = size;
        b->n_free++;
    }
    return 1;
}

static vkllm_status buf_alloc_locked(vk_device *dev, vk_mem_kind kind, uint64_t size, uint64_t need, vk_buf *out);

vkllm_status vk_buf_alloc(vk_device *dev, vk_mem_kind kind, uint64_t size, vk_buf *out) {
    memset(out, 0, sizeof *out);
    vkllm_status st = check_kind(dev, kind, "vk_buf_alloc");
    if (st) return st;
    if (size == 0) size = 1;
    uint64_t need = round_request(dev, size);
    if (!need) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "%s: an allocation of %llu bytes is too large",
                              dev->label, (unsigned long long)size);
    pthread_mutex_lock(&dev->mem_lock);
    st = buf_alloc_locked(dev, kind, size, need, out);
    pthread_mutex_unlock(&dev->mem_lock);
    return st;
}

static vkllm_status buf_alloc_locked(vk_device *dev, vk_mem_kind kind, uint64_t size, uint64_t need, vk_buf *out) {
    vkllm_status st;
    vk_block *b = NULL;
    uint64_t off = UINT64_MAX;
    if (need <= dev->block_size) {
        for (b = dev->blocks; b; b = b->next) {
            if (b->kind != kind || b->dedicated) continue;
            off = block_take(b, need);
            if (off != UINT64_MAX) break;
        }
    }
    if (off == UINT64_MAX) {
        /* Small requests share a standard block; a large one gets a block of its own. When the
         * budget cannot fit a whole standard block, a block just large enough is tried. */
        uint64_t bs = need > dev->block_size ? need : dev->block_size;
        if (kind == VK_MEM_DEVICE && bs > need && dev->kind_bytes[kind] + bs > dev->budget) bs = need;
        if ((st = block_create(dev, kind, bs, 0, &b))) return st;
        off = block_take(b, need);
    }
    out->dev = dev;
    out->block = b;
    out->buffer = b->buffer;
    out->offset = off;
    out->size = size;
    out->map = b->map ? (char *)b->map + off : NULL;
    dev->used_bytes += need;
    return VKLLM_OK;
}

vkllm_status vk_buf_alloc_dedicated(vk_device *dev, vk_mem_kind kind, uint64_t size, vk_buf *out) {
    memset(out, 0, sizeof *out);
    vkllm_status st = check_kind(dev, kind, "vk_buf_alloc_dedicated");
    if (st) return st;
    if (size == 0) size = 1;
    uint64_t need = round_request(dev, size);
    if (!need) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "%s: an allocation of %llu bytes is too large",
                              dev->label, (unsigned long long)size);
    vk_block *b;
    pthread_mutex_lock(&dev->mem_lock);
    st = block_create(dev, kind, need, 1, &b); /* handed out whole */
    if (!st) dev->used_bytes += need;
    pthread_mutex_unlock(&dev->mem_lock);
    if (st) return st;
    out->dev = dev;
    out->block = b;
    out->buffer = b->buffer;
    out->size = size;
    out->map = b->map;
    return VKLLM_OK;
}

vkllm_status vk_buf_import_host(vk_device *dev, const void *ptr, uint64_t size, vk_buf *out) {
    memset(out, 0, sizeof *out);
    const vkllm_device_info *info = dev->info;
    char b1[32], b2[32];
    if (!dev->external_host_memory)
        return vkl_err(VKLLM_ERR_UNSUPPORTED, "%s: importing host memory needs "
                       "VK_EXT_external_memory_host, which the device lacks", dev->label);
    uint64_t align = info->min_imported_host_pointer_alignment;
    if (!ptr || size == 0)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: importing %llu bytes at %p", dev->label,
                       (unsigned long long)size, ptr);
    if (align == 0 || (uintptr_t)ptr % align || size % align)
        return vkl_err(VKLLM_ERR_UNSUPPORTED, "%s: cannot import %llu bytes at %p: pointer and size "
                       "must be multiples of minImportedHostPointerAlignment (%llu)", dev->label,
                       (unsigned long long)size, ptr, (unsigned long long)align);
    if (size > info->max_memory_allocation_size || size > info->max_buffer_size)
        return vkl_err(VKLLM_ERR_UNSUPPORTED, "%s: cannot import %s in one piece: the device "
                       "allows %s per allocation and buffer", dev->label, vkl_fmt_bytes(b1, sizeof b1, size),
                       vkl_fmt_bytes(b2, sizeof b2, info->max_memory_allocation_size < info->max_buffer_size
                                                        ? info->max_memory_allocation_size
                                                        : info->max_buffer_size));
    const VkExternalMemoryHandleTypeFlagBits handle = VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_ALLOCATION_BIT_EXT;
    /* The buffer may name the handle type only if the driver can import it for this usage. */
    VkPhysicalDeviceExternalBufferInfo ebi = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_EXTERNAL_BUFFER_INFO,
                                              .usage = BUF_USAGE,
                                              .handleType = handle};
    VkExternalBufferProperties ebp = {.sType = VK_STRUCTURE_TYPE_EXTERNAL_BUFFER_PROPERTIES};
    vkGetPhysicalDeviceExternalBufferProperties(dev->phys, &ebi, &ebp);
    if (!(ebp.externalMemoryProperties.externalMemoryFeatures & VK_EXTERNAL_MEMORY_FEATURE_IMPORTABLE_BIT))
        return vkl_err(VKLLM_ERR_UNSUPPORTED, "%s: the driver cannot import host allocations as "
                       "storage buffers", dev->label);

    vk_block *b = block_new();
    if (!b) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    b->size = size;
    b->kind = VK_MEM_IMPORTED;
    b->dedicated = 1;
    vkllm_status st = VKLLM_OK;
    const char *call = NULL;
    VkExternalMemoryBufferCreateInfo ext = {.sType = VK_STRUCTURE_TYPE_EXTERNAL_MEMORY_BUFFER_CREATE_INFO,
                                            .handleTypes = handle};
    VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                              .pNext = &ext,
                              .size = size,
                              .usage = BUF_USAGE,
                              .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkResult r = vkCreateBuffer(dev->device, &bci, NULL, &b->buffer);
    if (r != VK_SUCCESS) call = "vkCreateBuffer";
    VkMemoryRequirements req = {0};
    VkMemoryHostPointerPropertiesEXT hp = {.sType = VK_STRUCTURE_TYPE_MEMORY_HOST_POINTER_PROPERTIES_EXT};
    if (r == VK_SUCCESS) {
        vkGetBufferMemoryRequirements(dev->device, b->buffer, &req);
        /* The spec's pointer is `void *`; the device only reads through it unless the caller
         * binds the buffer for writing. */
        r = vkGetMemoryHostPointerPropertiesEXT(dev->device, handle, (void *)(uintptr_t)ptr, &hp);
        if (r != VK_SUCCESS) call = "vkGetMemoryHostPointerPropertiesEXT";
    }
    uint32_t types = hp.memoryTypeBits & req.memoryTypeBits;
    if (r == VK_SUCCESS && req.size > size)
        st = vkl_err(VKLLM_ERR_UNSUPPORTED, "%s: a %llu-byte buffer needs %llu bytes of memory, more "
                     "than the %llu imported", dev->label, (unsigned long long)size,
                     (unsigned long long)req.size, (unsigned long long)size);
    else if (r == VK_SUCCESS && !types)
        st = vkl_err(VKLLM_ERR_UNSUPPORTED, "%s: no memory type fits both the host pointer (types "
                     "0x%x) and a storage buffer (types 0x%x)", dev->label, hp.memoryTypeBits,
                     req.memoryTypeBits);
    if (r == VK_SUCCESS && !st) {
        uint32_t type = 0;
        while (!(types & (1u << type))) type++;
        VkImportMemoryHostPointerInfoEXT imp = {.sType = VK_STRUCTURE_TYPE_IMPORT_MEMORY_HOST_POINTER_INFO_EXT,
                                                .handleType = handle,
                                                .pHostPointer = (void *)(uintptr_t)ptr};
        VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                                    .pNext = &imp,
                                    .allocationSize = size, /* a multiple of the import alignment */
                                    .memoryTypeIndex = type};
        r = memory_allocate(dev, &mai, b);
        if (r != VK_SUCCESS) call = "vkAllocateMemory (host pointer import)";
    }
    if (r == VK_SUCCESS && !st) {
        r = vkBindBufferMemory(dev->device, b->buffer, b->memory, 0);
        if (r != VK_SUCCESS) call = "vkBindBufferMemory";
    }
    if (r != VK_SUCCESS) st = vk_device_fail(dev, r, call, __FILE__, __LINE__);
    if (st) {
        block_destroy(dev, b);
        vkl_err_context("importing %s of host memory at %p", vkl_fmt_bytes(b1, sizeof b1, size), ptr);
        return st;
    }
    pthread_mutex_lock(&dev->mem_lock);
    block_link(dev, b);
    pthread_mutex_unlock(&dev->mem_lock);
    out->dev = dev;
    out->block = b;
    out->buffer = b->buffer;
    out->size = size;
    /* The caller's pointer is this memory's mapping, so vk_buf_read is a memcpy. */
    out->map = (void *)(uintptr_t)ptr;
    return VKLLM_OK;
}

void vk_buf_view(const vk_buf *parent, uint64_t off, uint64_t size, vk_buf *out) {
    /* Out of range gives an unallocated buffer, which every later use refuses. */
    vk_buf v = {0};
    uint64_t end;
    if (parent && parent->block && vkl_add_u64(off, size, &end) && end <= parent->size) {
        v = *parent;
        v.offset = parent->offset + off;
        v.size = size;
        v.map = parent->map ? (char *)parent->map + off : NULL;
    }
    *out = v;
}

static void buf_free_locked(vk_device *dev, vk_buf *buf);

void vk_buf_free(vk_device *dev, vk_buf *buf) {
    if (!buf || !buf->block) return;
    /* The owner's allocator, whichever opening the caller named. */
    if (buf->dev) dev = buf->dev;
    pthread_mutex_lock(&dev->mem_lock);
    buf_free_locked(dev, buf);
    pthread_mutex_unlock(&dev->mem_lock);
}

static void buf_free_locked(vk_device *dev, vk_buf *buf) {
    vk_block *b = buf->block;
    if (b->dedicated) {
        uint64_t whole = b->kind == VK_MEM_IMPORTED ? buf->size : round_request(dev, buf->size);
        /* A view cannot be told from its parent in general; this catches the views that
         * differ from it, which would otherwise release memory the parent still uses. */
        if (buf->offset != 0 || whole != b->size) {
            vkl_log(VKLLM_LOG_ERROR, "%s: vk_buf_free of a %llu-byte view at offset %llu ignored: "
                    "views are never freed", dev->label, (unsigned long long)buf->size,
                    (unsigned long long)buf->offset);
            return;
        }
        if (b->kind != VK_MEM_IMPORTED) dev->used_bytes -= b->size;
        block_unlink_destroy(dev, b);
        memset(buf, 0, sizeof *buf);
        return;
    }
    uint64_t need = round_request(dev, buf->size);
    if (buf->offset % dev->alignment) {
        vkl_log(VKLLM_LOG_ERROR, "%s: vk_buf_free of a view at offset %llu ignored: views are "
                "never freed", dev->label, (unsigned long long)buf->offset);
        return;
    }
    block_give(b, buf->offset, need);
    dev->used_bytes -= need;
    /* Return wholly free blocks to the driver so budgets reflect what is really held. */
    if (b->n_free == 1 && b->free_off[0] == 0 && b->free_len[0] == b->size) block_unlink_destroy(dev, b);
    memset(buf, 0, sizeof *buf);
}

int vk_device_mappable(const vk_device *dev) { return dev->mem_mapped[VK_MEM_DEVICE]; }

void vk_mem_release_all(vk_device *dev) {
    while (dev->blocks) {
        vk_block *b = dev->blocks;
        dev->blocks = b->next;
        block_destroy(dev, b);
    }
    memset(dev->kind_bytes, 0, sizeof dev->kind_bytes);
    dev->used_bytes = 0;
}

void vk_mem_get_stats(const vk_device *cdev, vk_mem_stats *out) {
    memset(out, 0, sizeof *out);
    vk_device *dev = (vk_device *)(uintptr_t)cdev; /* the lock, not the allocator, changes */
    pthread_mutex_lock(&dev->mem_lock);
    out->budget = dev->budget;
    out->device_bytes = dev->kind_bytes[VK_MEM_DEVICE];
    out->peak_device_bytes = dev->peak_device_bytes;
    out->refusals = dev->refusals;
    out->host_bytes = dev->kind_bytes[VK_MEM_HOST];
    out->imported_bytes = dev->kind_bytes[VK_MEM_IMPORTED];
    out->used_bytes = dev->used_bytes;
    for (vk_block *b = dev->blocks; b; b = b->next) out->blocks++;
    pthread_mutex_unlock(&dev->mem_lock);
}

/* ---- staging ring ---- */

void vk_staging_release(vk_device *dev) {
    for (int i = 0; i < 2; i++) {
        vk_staging_slot *s = &dev->staging[i];
        if (s->fence) vkDestroyFence(dev->device, s->fence, NULL);
        if (s->cb) vkFreeCommandBuffers(dev->device, dev->cmd_pool, 1, &s->cb);
        vk_buf_free(dev, &s->buf);
        memset(s, 0, sizeof *s);
    }
}

/* Each slot is a dedicated allocation so that the ring holds exactly VK_STAGING_BYTES, which
 * the planner reserves, and never shares a block with the caller's host buffers. */
static vkllm_status staging_ready(vk_device *dev) {
    if (dev->staging[1].fence) return VKLLM_OK;
    vkllm_status st = VKLLM_OK;
    for (int i = 0; i < 2 && !st; i++) {
        vk_staging_slot *s = &dev->staging[i];
        st = vk_buf_alloc_dedicated(dev, VK_MEM_HOST, VK_STAGING_SLOT_BYTES, &s->buf);
        if (st) break;
        VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                          .commandPool = dev->cmd_pool,
                                          .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                          .commandBufferCount = 1};
        VkResult r = vkAllocateCommandBuffers(dev->device, &ai, &s->cb);
        if (r != VK_SUCCESS) {
            s->cb = VK_NULL_HANDLE;
            st = vk_device_fail(dev, r, "vkAllocateCommandBuffers", __FILE__, __LINE__);
            break;
        }
        VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        r = vkCreateFence(dev->device, &fi, NULL, &s->fence);
        if (r != VK_SUCCESS) {
            s->fence = VK_NULL_HANDLE;
            st = vk_device_fail(dev, r, "vkCreateFence", __FILE__, __LINE__);
        }
    }
    if (st) {
        vk_staging_release(dev); /* nothing was submitted yet: a half-built ring goes whole */
        vkl_err_context("creating the staging ring");
    }
    return st;
}

static vkllm_status staging_wait(vk_device *dev, vk_staging_slot *s) {
    if (!s->busy) return VKLLM_OK;
    VK_DEV_TRY(dev, vkWaitForFences(dev->device, 1, &s->fence, VK_TRUE, UINT64_MAX));
    VK_DEV_TRY(dev, vkResetFences(dev->device, 1, &s->fence));
    s->busy = 0;
    return VKLLM_OK;
}

static vkllm_status staging_copy(vk_device *dev, vk_staging_slot *s, VkBuffer src, uint64_t src_off,
                                 VkBuffer dst, uint64_t dst_off, uint64_t size) {
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VK_TRY(vkBeginCommandBuffer(s->cb, &bi));
    /* Order against earlier GPU work on these ranges, and make results visible to the host. */
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_MEMORY_WRITE_BIT | VK_ACCESS_HOST_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT};
    vkCmdPipelineBarrier(s->cb, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT | VK_PIPELINE_STAGE_HOST_BIT,
                         VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    VkBufferCopy c = {.srcOffset = src_off, .dstOffset = dst_off, .size = size};
    vkCmdCopyBuffer(s->cb, src, dst, 1, &c);
    VkMemoryBarrier mb2 = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                           .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                           .dstAccessMask = VK_ACCESS_HOST_READ_BIT | VK_ACCESS_MEMORY_READ_BIT};
    vkCmdPipelineBarrier(s->cb, VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, 0, 1, &mb2, 0,
                         NULL, 0, NULL);
    VK_TRY(vkEndCommandBuffer(s->cb));
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &s->cb};
    VK_DEV_TRY(dev, vk_queue_submit(dev, &si, s->fence));
    s->busy = 1;
    return VKLLM_OK;
}

static vkllm_status check_range(const vk_device *dev, const vk_buf *buf, uint64_t off, uint64_t size) {
    uint64_t end;
    if (!buf || !buf->block)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: transfer on an unallocated buffer (or an "
                       "out-of-range view)", dev->label);
    if (buf->dev != dev)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "transfer through %s on a buffer of %s", dev->label,
                       buf->dev ? buf->dev->label : "no device");
    if (!vkl_add_u64(off, size, &end) || end > buf->size)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "transfer of %llu bytes at offset %llu overruns a "
                       "%llu-byte buffer", (unsigned long long)size, (unsigned long long)off,
                       (unsigned long long)buf->size);
    return VKLLM_OK;
}

static vkllm_status staged_write(vk_device *dev, const vk_buf *buf, uint64_t off, const void *src, uint64_t size);
static vkllm_status staged_read(vk_device *dev, const vk_buf *buf, uint64_t off, void *dst, uint64_t size);

vkllm_status vk_buf_write(vk_device *dev, const vk_buf *buf, uint64_t off, const void *src, uint64_t size) {
    vkllm_status st = check_range(dev, buf, off, size);
    if (st) return st;
    if (buf->map) {
        memcpy((char *)buf->map + off, src, size);
        return VKLLM_OK;
    }
    if ((st = vk_device_check_lost(dev))) return st;
    pthread_mutex_lock(&dev->xfer_lock); /* one ring per opening */
    st = staged_write(dev, buf, off, src, size);
    pthread_mutex_unlock(&dev->xfer_lock);
    return st;
}

static vkllm_status staged_write(vk_device *dev, const vk_buf *buf, uint64_t off, const void *src, uint64_t size) {
    vkllm_status st;
    if ((st = staging_ready(dev))) return st;
    /* Alternate slots so the CPU fills one while the GPU copies the other. */
    const char *p = src;
    uint64_t done = 0;
    int slot = 0;
    while (done < size) {
        vk_staging_slot *s = &dev->staging[slot];
        if ((st = staging_wait(dev, s))) return st;
        uint64_t n = size - done < VK_STAGING_SLOT_BYTES ? size - done : VK_STAGING_SLOT_BYTES;
        memcpy(s->buf.map, p + done, n);
        st = staging_copy(dev, s, s->buf.buffer, s->buf.offset, buf->buffer, buf->offset + off + done, n);
        if (st) return st;
        done += n;
        slot ^= 1;
    }
    if ((st = staging_wait(dev, &dev->staging[0]))) return st;
    return staging_wait(dev, &dev->staging[1]);
}

vkllm_status vk_buf_read(vk_device *dev, const vk_buf *buf, uint64_t off, void *dst, uint64_t size) {
    vkllm_status st = check_range(dev, buf, off, size);
    if (st) return st;
    if (buf->map) {
        memcpy(dst, (const char *)buf->map + off, size);
        return VKLLM_OK;
    }
    if ((st = vk_device_check_lost(dev))) return st;
    pthread_mutex_lock(&dev->xfer_lock);
    st = staged_read(dev, buf, off, dst, size);
    pthread_mutex_unlock(&dev->xfer_lock);
    return st;
}

static vkllm_status staged_read(vk_device *dev, const vk_buf *buf, uint64_t off, void *dst, uint64_t size) {
    vkllm_status st;
    if ((st = staging_ready(dev))) return st;
    char *p = dst;
    uint64_t done = 0;
    while (done < size) {
        vk_staging_slot *s = &dev->staging[0];
        uint64_t n = size - done < VK_STAGING_SLOT_BYTES ? size - done : VK_STAGING_SLOT_BYTES;
        st = staging_copy(dev, s, buf->buffer, buf->offset + off + done, s->buf.buffer, s->buf.offset, n);
        if (st) return st;
        if ((st = staging_wait(dev, s))) return st;
        memcpy(p + done, s->buf.map, n);
        done += n;
    }
    return VKLLM_OK;
}
