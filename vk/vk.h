/* The Vulkan layer: instance and devices, memory, run-time shader compilation with caches,
 * pipelines and command submission. It knows nothing of language models; runtime/ asks it
 * for buffers, pipelines and batches of dispatches. */
#ifndef VKLLM_VK_H
#define VKLLM_VK_H

#include <stdint.h>
#include <volk.h>

#include "vkllm.h"

/* Maps a VkResult to a status and records "call failed: VK_ERROR_..." with file and line. */
vkllm_status vk_check(VkResult r, const char *call, const char *file, int line);
#define VK_TRY(call)                                                        \
    do {                                                                    \
        VkResult vk_r_ = (call);                                            \
        if (vk_r_ != VK_SUCCESS) return vk_check(vk_r_, #call, __FILE__, __LINE__); \
    } while (0)
const char *vk_result_string(VkResult r);

/* ------------------------------------------------------------ instance ---- */

typedef struct vk_instance vk_instance;

/* Loads Vulkan through volk and creates an instance. The Khronos validation layer is enabled
 * when validation != 0 or the environment sets VKLLM_VALIDATION=1; its warnings and errors are
 * logged and counted (vk_validation_messages). VKLLM_ERR_NO_VULKAN when no loader or driver. */
vkllm_status vk_instance_create(int validation, vk_instance **out);
void vk_instance_destroy(vk_instance *inst);
uint32_t vk_device_count(const vk_instance *inst);
const vkllm_device_info *vk_device_info(const vk_instance *inst, uint32_t index);
/* Warning and error messages the validation layer has reported so far. */
uint32_t vk_validation_messages(const vk_instance *inst);

/* -------------------------------------------------------------- device ---- */

typedef struct vk_device vk_device;

typedef struct vk_device_opts {
    /* Bytes this opening may allocate on its device-local heap; 0 = the heap size (or the
     * VK_EXT_memory_budget budget when smaller). Each opening of the same physical device
     * has its own budget, so one GPU can stand in for several cards. */
    uint64_t budget;
    /* Block size for suballocation; 0 = default (256 MiB, clamped to the device limits). */
    uint64_t block_size;
    int enable_timestamps; /* allocate a timestamp query pool per batch */
    /* Test hook: device-local allocations past this many bytes fail as the driver's
     * VK_ERROR_OUT_OF_DEVICE_MEMORY would (a card that has less free than its budget says);
     * 0 = off. */
    uint64_t fail_above;
} vk_device_opts;

/* Any thread may open, use and close openings; one opening may serve several threads at once
 * (allocations, batches, transfers and pipelines are locked per opening), but it must not be
 * closed while another thread still uses it. */
vkllm_status vk_device_open(vk_instance *inst, uint32_t index, const vk_device_opts *opts,
                            vk_device **out);
/* Waits for idle, saves the pipeline cache, frees everything. */
void vk_device_close(vk_device *dev);
const vkllm_device_info *vk_device_props(const vk_device *dev);
/* A label for messages, e.g. "device 0 (llvmpipe) #2" for the second opening. */
const char *vk_device_label(const vk_device *dev);
/* 1 once a call on this opening returned VK_ERROR_DEVICE_LOST: from then on batches and
 * transfers fail with VKLLM_ERR_DEVICE_LOST at once, and only closing it is useful. */
int vk_device_lost(const vk_device *dev);
/* VKLLM_ERR_DEVICE_LOST naming dev when it was lost earlier, else VKLLM_OK. */
vkllm_status vk_device_check_lost(const vk_device *dev);

/* -------------------------------------------------------------- memory ---- */

typedef enum vk_mem_kind {
    VK_MEM_DEVICE,   /* weights, activations: device-local (and host-visible if UMA/ReBAR) */
    VK_MEM_HOST,     /* staging and readback: host-visible, cached where possible */
    VK_MEM_IMPORTED, /* host memory the caller owns, imported (VK_EXT_external_memory_host) */
    VK_MEM_KIND_COUNT
} vk_mem_kind;

/* The granularity every allocation is rounded up to on a device with this
 * minStorageBufferOffsetAlignment (so any buffer start is a legal binding offset). */
static inline uint64_t vk_alloc_alignment(uint64_t min_storage_buffer_offset_alignment) {
    return min_storage_buffer_offset_alignment > 256 ? min_storage_buffer_offset_alignment : 256;
}
/* Host-visible bytes of the staging ring a device whose device-local memory is not mappable
 * creates on its first transfer (two slots, each its own allocation). */
#define VK_STAGING_SLOT_BYTES (16ull << 20)
#define VK_STAGING_BYTES (2 * VK_STAGING_SLOT_BYTES)

typedef struct vk_block vk_block;

/* A suballocated range of a device memory block. One VkBuffer spans each block, so a
 * vk_buf is that VkBuffer plus an offset. `map` is non-NULL when the memory is mapped. */
typedef struct vk_buf {
    vk_device *dev; /* the opening that owns it; binding it in another's batch is refused */
    vk_block *block;
    VkBuffer buffer;
    uint64_t offset;
    uint64_t size;
    void *map;
} vk_buf;

vkllm_status vk_buf_alloc(vk_device *dev, vk_mem_kind kind, uint64_t size, vk_buf *out);
/* An allocation of its own: exactly vk_alloc_alignment-rounded max(size, 1) bytes, no
 * suballocation, released by vk_buf_free. Loads use these so that the planner can count
 * every byte the allocator will hold. */
vkllm_status vk_buf_alloc_dedicated(vk_device *dev, vk_mem_kind kind, uint64_t size, vk_buf *out);
/* Imports size bytes of host memory at ptr (both multiples of
 * vkllm_device_info.min_imported_host_pointer_alignment; read-only file mappings work where
 * the driver allows) as a buffer the device reads in place. VKLLM_ERR_UNSUPPORTED without
 * VK_EXT_external_memory_host or when ptr/size are misaligned; the driver's refusal as its
 * status (callers fall back to a host-visible copy). Freed by vk_buf_free; the memory at ptr
 * must outlive the buffer. Not counted against the device budget. */
vkllm_status vk_buf_import_host(vk_device *dev, const void *ptr, uint64_t size, vk_buf *out);
/* A sub-range [off, off + size) of parent sharing its memory. Never passed to vk_buf_free;
 * valid while parent is. */
void vk_buf_view(const vk_buf *parent, uint64_t off, uint64_t size, vk_buf *out);
void vk_buf_free(vk_device *dev, vk_buf *buf);
/* 1 when the device-local memory of this opening is host-visible (vk_buf.map set). */
int vk_device_mappable(const vk_device *dev);
/* Host <-> buffer copies at byte offset `off` in buf: a memcpy when mapped, else through the
 * device's reusable staging ring. These wait for completion. */
vkllm_status vk_buf_write(vk_device *dev, const vk_buf *buf, uint64_t off, const void *src,
                          uint64_t size);
vkllm_status vk_buf_read(vk_device *dev, const vk_buf *buf, uint64_t off, void *dst,
                         uint64_t size);

typedef struct vk_mem_stats {
    uint64_t budget;       /* device-local bytes this opening may use */
    uint64_t device_bytes; /* device-local bytes allocated (blocks) */
    uint64_t peak_device_bytes; /* the most device_bytes ever were: after a refusal, what the card gave */
    uint64_t host_bytes;   /* host-visible (staging/readback) bytes allocated */
    uint64_t imported_bytes; /* host memory imported by vk_buf_import_host */
    uint64_t used_bytes;   /* bytes handed out to live vk_bufs */
    uint32_t blocks;
    /* Device-local allocations refused so far: over the budget, or out of device memory by the
     * driver (not host memory: a failed malloc is not a card giving less than it said). */
    uint32_t refusals;
} vk_mem_stats;
void vk_mem_get_stats(const vk_device *dev, vk_mem_stats *out);

/* ------------------------------------------------------------- shaders ---- */

typedef struct vk_spirv {
    uint32_t *words;
    size_t count;
} vk_spirv;

typedef struct vk_shader_stats {
    uint32_t spirv_hits, spirv_misses; /* disk cache */
    double compile_ms;                 /* time spent in glslang */
    double saved_ms;                   /* compile time the cache hits saved (recorded cost) */
    uint32_t pipeline_cache_loaded;    /* 1 if a VkPipelineCache blob was accepted */
    uint64_t pipeline_cache_bytes;
    uint32_t pipelines_created;        /* vkCreateComputePipelines calls that succeeded */
    double pipeline_create_ms;         /* time spent in them (summed over threads) */
    uint32_t pipeline_cache_hits;      /* of them, served from the VkPipelineCache (where the
                                          driver reports it: Vulkan 1.3 creation feedback) */
} vk_shader_stats;

/* Compiles shaders/<name> (embedded) with `defines` ("A=1;B=float", may be NULL) prepended
 * after #version, consulting the SPIR-V disk cache. VKLLM_ERR_SHADER with the shader name,
 * defines and glslang's log on failure. The caller frees out->words. */
vkllm_status vk_compile_shader(const char *name, const char *defines, vk_spirv *out);
/* The same, saying what it cost. Any thread may compile at any time. */
typedef struct vk_compile_info {
    int cache_hit; /* read from the SPIR-V cache */
    double ms;     /* wall time of the compile or the cache read */
} vk_compile_info;
vkllm_status vk_compile_shader_ex(const char *name, const char *defines, vk_spirv *out, vk_compile_info *info);
void vk_shader_get_stats(vk_shader_stats *out);
/* The cache directory in use ($VKLLM_CACHE_DIR, $XDG_CACHE_HOME/vkllm, ~/.cache/vkllm);
 * NULL when caching is disabled (VKLLM_CACHE_DIR="" or no home). */
const char *vk_cache_dir(void);
/* vkllm_set_cache_dir: a folder, NULL for the environment's choice, "" for none; refused once
 * the cache is in use, unless it is the same. */
vkllm_status vk_set_cache_dir(const char *path);

/* ----------------------------------------------------------- pipelines ---- */

#define VK_MAX_BINDINGS 8
#define VK_MAX_SPEC 8
#define VK_MAX_PUSH 128

typedef struct vk_pipeline_desc {
    const char *shader;   /* "add.comp" */
    const char *defines;  /* "OP_MUL=1;TYPE=q4_0" or NULL */
    uint32_t n_bindings;  /* buffers at set 0, bindings 0..n-1: storage buffers, except ... */
    uint32_t uniform_mask; /* ... bit i set: binding i is a uniform buffer (batches check its
                            * offset and size against the device's uniform limits) */
    uint32_t push_size;   /* bytes of push constants (<= VK_MAX_PUSH) */
    uint32_t n_spec;      /* uint32 specialization constants with ids 0..n-1 */
    uint32_t spec[VK_MAX_SPEC];
} vk_pipeline_desc;

typedef struct vk_pipeline vk_pipeline;

/* Returns the pipeline for desc, creating and memoizing it on first use. Thread-safe: two
 * threads asking for the same new pipeline build it once. While the calling thread records a
 * dry batch (below), the pipeline is returned unbuilt instead: only a dry batch takes it. */
vkllm_status vk_pipeline_get(vk_device *dev, const vk_pipeline_desc *desc, vk_pipeline **out);

/* Preparing pipelines before their first use, instead of compiling them one by one during
 * the first evaluation: record the work dry (vk_batch_begin_dry; every check of a real
 * recording runs, nothing is recorded or submitted, and the pipelines not built yet are
 * noted with the arguments of their first dispatch), then build everything noted at once:
 *   vk_prepare_create(&prep);
 *   for each opening and shape: vk_batch_begin_dry(dev, prep, &b); record; vk_batch_free(b);
 *   vk_prepare_build(prep, 0, &stats);
 *   vk_prepare_free(prep);
 * vk_prepare_build compiles each shader variant once (SPIR-V cache first), creates its
 * pipelines on every opening that asked for it, on several threads, and runs each new
 * pipeline once (one workgroup, with the bindings and push constants of its first dry
 * dispatch, so those buffers must still exist): drivers that compile at first use, as
 * lavapipe does, compile then. Those runs write into the bound buffers, which must hold
 * nothing of value. */
typedef struct vk_prepare vk_prepare;
typedef struct vk_prepare_stats {
    uint32_t pipelines;           /* pipelines built now (others existed already) */
    uint32_t variants;            /* shader variants among them (each compiled or read once) */
    uint32_t spirv_compiled;      /* variants compiled by glslang */
    uint32_t spirv_cached;        /* variants read from the SPIR-V cache */
    uint32_t pipeline_cache_hits; /* pipelines the driver took from its VkPipelineCache */
    uint32_t pipeline_cache_told; /* pipelines whose creation said hit or miss at all */
    uint32_t threads;             /* build threads used */
    double compile_ms;            /* glslang and SPIR-V cache reads, summed over threads */
    double create_ms;             /* vkCreateComputePipelines, summed over threads */
    double build_ms;              /* wall time until every pipeline was built */
    double total_ms;              /* wall time including the first runs */
} vk_prepare_stats;
vkllm_status vk_prepare_create(vk_prepare **out);
/* n_threads 0: min(4, online processors). */
vkllm_status vk_prepare_build(vk_prepare *prep, uint32_t n_threads, vk_prepare_stats *out);
void vk_prepare_free(vk_prepare *prep);

/* ------------------------------------------------------------- batches ---- */

/* A binding: a range of a buffer, and whether the dispatch writes it. Ranges must respect
 * minStorageBufferOffsetAlignment and maxStorageBufferRange (checked). */
typedef struct vk_bind {
    const vk_buf *buf;
    uint64_t offset; /* relative to buf */
    uint64_t size;   /* 0 = rest of buf */
    int write;
} vk_bind;

typedef struct vk_batch vk_batch;

/* A command buffer being recorded. Barriers are inserted automatically from the declared
 * reads and writes: only where a range read or written overlaps an earlier write (or a write
 * overlaps an earlier read) since the last barrier. */
vkllm_status vk_batch_begin(vk_device *dev, vk_batch **out);
/* A batch that can be submitted again as recorded (vk_batch_resubmit): a step whose inputs
 * change only in buffer contents is recorded once and replayed. */
vkllm_status vk_batch_begin_reusable(vk_device *dev, vk_batch **out);
/* A dry batch for vk_prepare_build (see vk_prepare above): recorded and freed on one thread,
 * never submitted. */
vkllm_status vk_batch_begin_dry(vk_device *dev, vk_prepare *prep, vk_batch **out);
vkllm_status vk_batch_dispatch(vk_batch *b, vk_pipeline *p, const vk_bind *binds,
                               uint32_t n_binds, const void *push, uint32_t gx, uint32_t gy,
                               uint32_t gz, const char *label);
vkllm_status vk_batch_copy(vk_batch *b, const vk_buf *src, uint64_t src_off, const vk_buf *dst,
                           uint64_t dst_off, uint64_t size);
vkllm_status vk_batch_fill(vk_batch *b, const vk_buf *dst, uint64_t off, uint64_t size,
                           uint32_t value);
/* Submits and waits; the batch can then be inspected (timestamps) and must be freed. */
vkllm_status vk_batch_submit_wait(vk_batch *b);
/* Submits without waiting (the batch's own fence signals completion), so the host can record
 * work for another device meanwhile. vk_batch_wait waits for that fence only (never the whole
 * device or machine); waiting twice is harmless. vk_batch_free of a submitted batch waits. */
vkllm_status vk_batch_submit(vk_batch *b);
vkllm_status vk_batch_wait(vk_batch *b);
/* Submits a reusable batch again, once its last submission was waited for. */
vkllm_status vk_batch_resubmit(vk_batch *b);
/* GPU time from the batch's start to its end in ms, after its wait (-1 where the queue
 * has no timestamps). */
double vk_batch_gpu_ms(const vk_batch *b);
/* GPU time of dispatch i in ms (timestamps enabled), or -1. */
uint32_t vk_batch_dispatch_count(const vk_batch *b);
double vk_batch_dispatch_ms(const vk_batch *b, uint32_t i);
const char *vk_batch_dispatch_label(const vk_batch *b, uint32_t i);
uint32_t vk_batch_barrier_count(const vk_batch *b);
void vk_batch_free(vk_batch *b);

#endif
