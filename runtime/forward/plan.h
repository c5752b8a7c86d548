/* Placement: where every weight tensor of a model lives (a device's memory or host memory),
 * which device computes each layer and holds its KV cache, and how many bytes each device and
 * the host will hold. A pure function of the GGUF header (llama_model_desc), the context
 * parameters and the devices' budgets and limits: no Vulkan call, no tensor data read.
 *
 * Exactness: every buffer the loader and the contexts allocate is listed here by the same
 * functions they allocate from (plan_ctx_buffers, plan_buf_bytes), each buffer its own
 * allocation rounded to the device's allocation granularity, so the bytes a plan states for
 * a device are the bytes its allocator holds after the load and one context. */
#ifndef VKLLM_PLAN_H
#define VKLLM_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/format/model.h"
#include "vkllm.h"

#define PLAN_MAX_DEVICES 16
#define PLAN_HOST (-1) /* "where" of a tensor or KV cache kept in host memory */

/* What the planner needs to know of one device opening. Filled from vkllm_device_info by
 * plan_caps_from_info (or by hand in tests). */
typedef struct plan_device_caps {
    char name[128];           /* for messages and `vkllm plan`: "device 0 (llvmpipe)" */
    vkllm_device_type type;
    uint64_t budget;          /* device-local bytes this opening may allocate */
    uint64_t alloc_align;     /* every allocation is rounded up to this many bytes */
    uint64_t max_alloc;       /* the largest one allocation (maxMemoryAllocationSize, maxBufferSize) */
    uint64_t max_binding;     /* maxStorageBufferRange (kernels split larger tensors themselves) */
    uint32_t binding_align;   /* minStorageBufferOffsetAlignment */
    int device_mappable;      /* device-local memory is host-visible: no staging ring is needed */
    int import_host;          /* host tensors are imported from the mapped file (no copy) */
    uint64_t import_align;    /* minImportedHostPointerAlignment (import spans are rounded to it) */
    double gbps;              /* bytes/ns this device reads from its own memory */
    double host_gbps;         /* bytes/ns it reads from host memory (PCIe; own RAM on UMA/CPU) */
    int measured;             /* gbps was measured (vkllm plan --measure), not a nominal figure */
    /* The native CPU path (runtime/forward/cpu_stage.h), not a Vulkan device: it computes the layers
     * kept in host memory, reading their weights in place from the mapped file; it allocates
     * no device memory (its KV cache and buffers are host memory). */
    int cpu;
    uint32_t cpu_threads;     /* its threads (0: physical cores) */
} plan_device_caps;

/* Budget when none is given: the device-local heap (VK_EXT_memory_budget's figure where
 * present), less a reserve for the display and other programs. Allocation granularity,
 * limits, import support and nominal bandwidths by device type. */
void plan_caps_from_info(const vkllm_device_info *info, uint64_t budget_override, plan_device_caps *out);
/* The native CPU path as a planner device: host memory is its budget, n_threads its threads
 * (0: physical cores), a nominal read bandwidth of the machine's RAM. */
void plan_caps_cpu(uint32_t n_threads, plan_device_caps *out);
/* Bytes the allocator really takes for a buffer of `size` bytes: max(size, 1) rounded up. */
uint64_t plan_buf_bytes(uint64_t size, uint64_t alloc_align);
/* The allocation granularity vk/memory.c uses for a device with these limits. */
uint64_t plan_alloc_align(uint32_t min_storage_buffer_offset_alignment);
/* Whether a host-resident tensor whose data starts at file_offset is imported from the mapped
 * file for a device with these caps (else it gets a host-visible copy): the device must import
 * host memory, and the kernels must be able to read the tensor where it lies in the file. */
int plan_host_import_ok(const plan_device_caps *caps, const gguf_tensor *t, uint64_t file_offset);
/* Host-visible bytes the device's staging ring takes (0 when device memory is mappable). */
uint64_t plan_staging_bytes(const plan_device_caps *caps);

typedef struct plan_request {
    const llama_model_desc *desc; /* header only: tensor data is never read */
    uint32_t n_ctx, n_batch;      /* as the context will be created (resolved, nonzero) */
    int kv_f16;
    uint32_t n_devices;           /* >= 1 */
    plan_device_caps dev[PLAN_MAX_DEVICES];
    uint64_t host_budget;         /* bytes of RAM that host-resident tensors and caches may use */
    uint32_t n_split;             /* 0: layer ranges proportional to the budgets */
    float split[PLAN_MAX_DEVICES];/* --tensor-split 3,1: relative share of layers per device */
    int32_t gpu_layers;           /* < 0: automatic; else the first N layers on devices, the rest host */
    int32_t main_device;          /* < 0: the CPU device if one is listed, else the last device;
                                     computes the host-resident layers */
    uint32_t stream_min_batch_override; /* nonzero: use it instead of the cost model (tests) */
    uint32_t cpu_stream_min_batch_override; /* nonzero: CPU stages stream chunks this long (tests) */
} plan_request;

/* The tensors of one layer, in this order everywhere (gpu_layer has the same order). */
typedef enum plan_tensor {
    PT_ATTN_NORM, PT_WQ, PT_WK, PT_WV, PT_WO, PT_FFN_NORM, PT_GATE, PT_UP, PT_DOWN, PT_COUNT
} plan_tensor;

/* A layer computed by a CPU device has every tensor and its KV cache in host memory
 * (PLAN_HOST): its weights are the mapped file itself. */
typedef struct plan_layer {
    int32_t compute;            /* device that runs this layer */
    int32_t kv;                 /* device holding its KV cache, or PLAN_HOST */
    int32_t where[PT_COUNT];    /* device index (always == compute) or PLAN_HOST */
} plan_layer;

/* A contiguous range of layers computed by one device, in order: stage 0 embeds the tokens,
 * the last stage produces the logits. */
typedef struct plan_stage {
    uint32_t device;
    uint32_t first_layer, n_layers;
    int has_embd;               /* holds token_embd and embeds the tokens */
    int has_output;             /* holds output_norm and output (when tied: token_embd itself if
                                   the stage also embeds, else a copy of it) */
    /* A CPU stage's prompt chunks of at least plan.cpu_stream_min_batch tokens run on this
     * device instead, its weights streamed from the mapped file (gpu_stage_alloc_twin); the
     * stage's KV cache then lives in that device's host-visible memory, shared by both.
     * -1: none. */
    int32_t stream_device;
} plan_stage;

typedef struct plan_device_use {
    uint64_t weights;           /* device-local bytes of weight tensors */
    uint64_t kv;                /* device-local bytes of KV caches */
    uint64_t scratch;           /* device-local activations and scratch of its stages */
    uint64_t used;              /* weights + kv + scratch: what its allocator's device bytes will be */
    uint64_t host_visible;      /* host-visible allocations it makes (readback, hand-off, staging,
                                   host tensors and KV when not imported) */
    uint64_t imported;          /* bytes of the mapped file it imports (host tensors, zero-copy) */
    uint64_t host_weights;      /* bytes of host-resident tensors it computes with */
    uint64_t read_per_token;    /* bytes it reads per decoded token from its own memory */
    uint64_t host_read_per_token; /* ... and from host memory */
    uint32_t n_layers;          /* layers it computes */
} plan_device_use;

typedef struct plan {
    uint32_t n_layer, n_devices;
    plan_device_caps dev[PLAN_MAX_DEVICES];
    plan_device_use use[PLAN_MAX_DEVICES];
    plan_layer *layers;         /* (n_layer) */
    uint32_t n_stages;
    plan_stage stages[PLAN_MAX_DEVICES + 1];
    int32_t embd_device, output_device;
    int tied_copy;              /* output is a second copy of token_embd (in another stage) */
    uint64_t host_bytes;        /* RAM the host-resident tensors and caches take */
    uint64_t host_budget;
    uint64_t hop_bytes_per_token; /* hidden-state bytes crossing between devices per token */
    double est_decode_tps;      /* from bytes read per token and the bandwidths */
    int bandwidth_measured;     /* every device's gbps was measured */
    uint32_t n_ctx, n_batch;
    int kv_f16;
    uint32_t gpu_layers;        /* layers whose matrices are all on devices */
    uint32_t host_ffn_tensors;  /* FFN matrices moved to host memory in otherwise device layers */
    /* Prompt chunks of at least this many tokens stream host weights into a device buffer
     * instead of reading them in place (0: never; no host tensors or not worth it). */
    uint32_t stream_min_batch;
    /* CPU stages with a stream_device hand prompt chunks of at least this many tokens to it
     * (0: none has one): a card that reads the layer once over PCIe and computes the chunk
     * beats the CPU computing it once the chunk is this long. */
    uint32_t cpu_stream_min_batch;
} plan;

/* Computes the placement. Refusals (VKLLM_ERR_OUT_OF_MEMORY) say how much is needed, how much
 * there is, and which settings would make it fit (a smaller context, an F16 KV cache, more
 * host memory, more devices); a bad request (split count, main device out of range, a budget
 * smaller than one layer's tensors) is VKLLM_ERR_INVALID_ARG / VKLLM_ERR_OUT_OF_MEMORY with
 * the numbers. Release with plan_free. */
vkllm_status plan_make(const plan_request *req, plan **out);
void plan_free(plan *p);

/* ---- the buffers of a stage's context, shared by the planner and gpu_ctx_create ---- */

typedef enum plan_ctx_buf {
    PCB_IDS,       /* (n_batch) int32 token ids; embedding stage only */
    PCB_X,         /* (n_batch, n_embd) residual stream */
    PCB_XB,        /* (n_batch, n_embd) normed input of a sublayer */
    PCB_Q,         /* (n_batch, n_head * head_dim) */
    PCB_K, PCB_V,  /* (n_batch, kv_dim) */
    PCB_ATT,       /* (n_batch, n_embd) attention output */
    PCB_HB,        /* (n_batch, n_ff) gate product, then SwiGLU of it and the up product */
    PCB_ATTN_SCRATCH, /* split-K partials of single-token attention */
    PCB_LAST,      /* (n_embd) final-normed last row; output stage only */
    PCB_LOGITS,    /* (n_vocab); output stage only */
    PCB_BEST,      /* (1) uint32 argmax; output stage only */
    PCB_STREAM,    /* device copy of host weights for prompt chunks (two layers' worth); 0 if unused */
    PCB_IDOT,      /* activations quantized to 8 bits for the integer dot product variants */
    PCB_DEVICE_COUNT,
    /* host-visible */
    PCB_X_HOST = PCB_DEVICE_COUNT, /* (n_batch, n_embd) hand-off to the next stage; not on the output stage */
    PCB_LOGITS_HOST, /* (n_vocab) readback; output stage only */
    PCB_BEST_HOST,   /* (1) readback; output stage only */
    PCB_STEP,        /* (position, token) of a recorded decode step, written by the host */
    PCB_COUNT
} plan_ctx_buf;

/* Byte sizes (before rounding) of a stage's context buffers; 0 = not allocated. The KV cache
 * is separate: plan_kv_bytes per layer for K and again for V. stream_bytes: the PCB_STREAM
 * size the plan chose for this stage (0 when it does not stream). */
void plan_ctx_buffers(const llama_hparams *hp, const plan_stage *s, uint32_t n_batch,
                      uint32_t binding_align, uint64_t stream_bytes, uint64_t bytes[PCB_COUNT]);
/* Bytes of one layer's K (or V) cache: n_ctx * kv_dim * (2 or 4). */
uint64_t plan_kv_bytes(const llama_hparams *hp, uint32_t n_ctx, int kv_f16);
/* The PCB_STREAM size for a stage: twice the largest host-resident bytes of one of its layers,
 * when p->stream_min_batch != 0; else 0. */
uint64_t plan_stage_stream_bytes(const plan *p, const plan_stage *s, const llama_model_desc *desc);

/* The stream buffer of a CPU stage's twin on its stream_device: two of its largest layers,
 * every tensor packed as gpu_forward streams them. */
uint64_t plan_twin_stream_bytes(const plan_stage *s, const llama_model_desc *desc);
/* The twin of CPU stage s as the device sees it: the same layers on s->stream_device, with
 * neither embedding nor output (the CPU stage computes those). */
plan_stage plan_twin_stage(const plan_stage *s);

/* The tensor of a layer by plan_tensor index. */
const gguf_tensor *plan_layer_tensor(const llama_layer *l, plan_tensor t);

#endif
