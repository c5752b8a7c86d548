/* vkllm public C API: run LLaMA-family GGUF models on Vulkan GPUs.
 *
 * Every function that can fail returns a vkllm_status; vkllm_last_error() then holds a
 * sentence saying what failed (thread-local). A NULL where an object or an output is required
 * gives VKLLM_ERR_INVALID_ARG; functions without a status take NULL as "nothing" (the _free
 * and _init functions do nothing, queries answer -1, 0 or NULL as their comments say). The library never prints to stdout and never
 * exits the process; logs go to stderr or to a callback set with vkllm_set_log_callback().
 *
 * Threads. Any function may be called from any thread, under these rules:
 *  - Different objects on different threads at the same time are fine: several models in one
 *    process (each loaded, used and freed on its own thread), and several contexts of one
 *    model, each driven by its own thread (vkllm_eval, vkllm_generate, vkllm_get_logits,
 *    vkllm_context_reset, the profile calls). Contexts of one model share its weights and its
 *    device openings; the library locks what they share (the device queue, the memory
 *    allocator, the staging ring, the pipelines, the batch pool), so their results are
 *    bit-identical to running them one after the other. GPU work of contexts on one device
 *    is interleaved by submission, not sped up.
 *  - One context must not be used by two threads at once, nor freed while another thread
 *    uses it. A model must outlive its contexts and must not be freed while another thread
 *    uses it or one of its contexts.
 *  - vkllm_context_create and vkllm_context_free may be called for one model from several
 *    threads at once. Reading a loaded model (vkllm_model_get_info, vkllm_model_get_plan,
 *    vkllm_tokenize, vkllm_detokenize, vkllm_n_vocab and the token queries, the bandwidth
 *    measurement) is safe from any number of threads, as are the vocab, plan and device-list
 *    functions on objects of their own.
 *  - vkllm_last_error() is per thread: it describes the last failure on the calling thread.
 *  - The log callback receives one line at a time, whichever thread logs it, and once
 *    vkllm_set_log_callback returns the previous callback is not called again. A line may be
 *    logged while the library holds a lock of a model's device: the callback may call
 *    vkllm_last_error, vkllm_status_string and the log functions, but nothing that uses a
 *    model or a context. vkllm_set_log_level may be called at any time.
 *  - Callbacks given to a call (progress, on_text, on_token) run on the calling thread. */
#ifndef VKLLM_H
#define VKLLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version; vkllm_version() returns the same numbers as "MAJOR.MINOR.PATCH".
 * The CMake project version is read from these lines. */
#define VKLLM_VERSION_MAJOR 0
#define VKLLM_VERSION_MINOR 2
#define VKLLM_VERSION_PATCH 0
/* The ABI version: the shared library's SONAME is libvkllm.so.VKLLM_ABI_VERSION. */
#define VKLLM_ABI_VERSION 1

/* Consumers of the static library define VKLLM_STATIC (pkg-config --static and the CMake
 * target vkllm::vkllm_static do it), so that Windows builds do not expect a DLL import. */
#if defined(_WIN32) && defined(VKLLM_STATIC)
#define VKLLM_API
#elif defined(_WIN32)
#if defined(VKLLM_BUILDING)
#define VKLLM_API __declspec(dllexport)
#else
#define VKLLM_API __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define VKLLM_API __attribute__((visibility("default")))
#else
#define VKLLM_API
#endif

typedef enum vkllm_status {
    VKLLM_OK = 0,
    VKLLM_ERR_INVALID_ARG,   /* a parameter is out of range or NULL */
    VKLLM_ERR_NO_VULKAN,     /* no Vulkan loader, or no driver (ICD) answers */
    VKLLM_ERR_NO_DEVICE,     /* the requested device index does not exist */
    VKLLM_ERR_OUT_OF_MEMORY, /* host, device or per-device budget exhausted */
    VKLLM_ERR_DEVICE_LOST,   /* the driver reported VK_ERROR_DEVICE_LOST: the message names the
                                device; every later call on the models and contexts using it
                                fails the same way, and freeing them is all that is left (safe;
                                nothing waits for work that was never submitted, and a lost
                                device answers every wait at once) */
    VKLLM_ERR_VULKAN,        /* any other Vulkan error */
    VKLLM_ERR_SHADER,        /* a shader failed to compile or link */
    VKLLM_ERR_IO,            /* a file could not be opened, read or written */
    VKLLM_ERR_BAD_FILE,      /* a model file is malformed, truncated or hostile */
    VKLLM_ERR_UNSUPPORTED,   /* valid input this build cannot handle (architecture, type) */
    VKLLM_ERR_CONTEXT_FULL,  /* the context window has no room for more tokens */
    VKLLM_ERR_CANCELLED,     /* a callback asked to stop */
} vkllm_status;

VKLLM_API const char *vkllm_status_string(vkllm_status status);
/* The message of the last failure on this thread ("" when none). */
VKLLM_API const char *vkllm_last_error(void);

typedef enum vkllm_log_level {
    VKLLM_LOG_ERROR = 0,
    VKLLM_LOG_WARN,
    VKLLM_LOG_INFO,
    VKLLM_LOG_DEBUG,
} vkllm_log_level;

typedef void (*vkllm_log_fn)(vkllm_log_level level, const char *message, void *user);
/* Messages at `level` and more severe are emitted. The default is WARN, or the value of
 * the environment variable VKLLM_LOG (error, warn, info, debug). */
VKLLM_API void vkllm_set_log_level(vkllm_log_level level);
/* Route log lines to fn instead of stderr; NULL restores stderr. Lines from every thread are
 * delivered one at a time. */
VKLLM_API void vkllm_set_log_callback(vkllm_log_fn fn, void *user);

/* "MAJOR.MINOR.PATCH" of the library actually loaded (compare with VKLLM_VERSION_* to detect
 * a header/library mismatch). */
VKLLM_API const char *vkllm_version(void);

/* The folder for compiled shaders, the driver's pipeline cache and tuning profiles: path, or
 * NULL for the default ($VKLLM_CACHE_DIR, else $XDG_CACHE_HOME/vkllm, else ~/.cache/vkllm),
 * or "" for no cache at all. The folder is created when missing. Call it before the first
 * model load or plan: once a cache is in use it is fixed for the process, and a different
 * setting fails with VKLLM_ERR_INVALID_ARG. */
VKLLM_API vkllm_status vkllm_set_cache_dir(const char *path);

/* ---------------------------------------------------------------- devices ---- */

typedef enum vkllm_device_type {
    VKLLM_DEVICE_OTHER = 0,
    VKLLM_DEVICE_INTEGRATED,
    VKLLM_DEVICE_DISCRETE,
    VKLLM_DEVICE_VIRTUAL,
    VKLLM_DEVICE_CPU,
} vkllm_device_type;

#define VKLLM_MAX_HEAPS 16

typedef struct vkllm_heap_info {
    uint64_t size;
    uint64_t budget;  /* VK_EXT_memory_budget's current budget; 0 when unknown */
    uint64_t usage;   /* VK_EXT_memory_budget's current usage; 0 when unknown */
    int device_local; /* 1 for VRAM (or the only heap of a UMA / CPU device) */
    int host_visible; /* some memory type on this heap can be mapped */
} vkllm_heap_info;

typedef struct vkllm_device_info {
    uint32_t index; /* position in the enumeration: what vkllm_model_params.devices takes */
    char name[256];
    vkllm_device_type type;
    uint32_t vendor_id, device_id;
    char vendor[32];         /* "NVIDIA", "AMD", "Intel", "Mesa" ... */
    char driver_name[256];   /* VkPhysicalDeviceDriverProperties */
    char driver_info[256];
    uint32_t api_version;    /* VK_MAKE_API_VERSION packing */
    uint32_t driver_version; /* vendor-specific packing; see driver_info */
    uint8_t device_uuid[16];

    uint32_t heap_count;
    vkllm_heap_info heaps[VKLLM_MAX_HEAPS];
    int memory_budget_ext; /* VK_EXT_memory_budget present */
    int uma;               /* a memory type is both device-local and host-visible */

    uint32_t subgroup_size, subgroup_min_size, subgroup_max_size;
    uint32_t subgroup_ops; /* VkSubgroupFeatureFlags bits */
    int shader_fp16, shader_int8, shader_int16, shader_int64;
    int storage_8bit, storage_16bit;
    int integer_dot_product; /* shaderIntegerDotProduct (Vulkan 1.3 or VK_KHR_shader_integer_dot_product) */
    int integer_dot_4x8_accelerated; /* ... and its signed 4x8-bit packed product is fast in hardware */
    int cooperative_matrix;  /* VK_KHR_cooperative_matrix or VK_NV_cooperative_matrix */
    int push_descriptors, timeline_semaphores, external_host_memory;
    uint64_t min_imported_host_pointer_alignment; /* VK_EXT_external_memory_host; 0 without */

    uint64_t max_storage_buffer_range;
    uint64_t max_memory_allocation_size;
    uint64_t max_buffer_size;
    uint32_t max_shared_memory;
    uint32_t max_workgroup_invocations;
    uint32_t max_workgroup_size[3];
    uint32_t max_workgroup_count[3];
    uint32_t min_storage_buffer_offset_alignment;
    float timestamp_period_ns;
    int compute_only_queue; /* a queue family with compute but not graphics exists */
    uint32_t max_uniform_buffer_range;
    uint32_t min_uniform_buffer_offset_alignment;
    uint32_t reserved[6]; /* zero: members added later take this space */
} vkllm_device_info;

/* The device index of vkllm's own CPU path (multi-threaded SIMD kernels, weights read in place
 * from the mapped file): not a Vulkan device (the CLI's `--device cpu`). */
#define VKLLM_DEVICE_CPU_INDEX 0xFFFFFFFFu

/* Enumerates every Vulkan physical device, then the native CPU path (index
 * VKLLM_DEVICE_CPU_INDEX, type VKLLM_DEVICE_CPU, one heap: the machine's RAM). *out is an
 * array of *count entries to be released with vkllm_free(). Without a Vulkan loader or driver
 * the list is the CPU path alone. */
VKLLM_API vkllm_status vkllm_list_devices(vkllm_device_info **out, uint32_t *count);
/* The index vkllm picks when none is given: a discrete, integrated or virtual GPU in that
 * order; else the native CPU path when the list has it (rather than a software Vulkan driver
 * such as lavapipe); else a Vulkan CPU device. VKLLM_DEVICE_CPU_INDEX for an empty list. */
VKLLM_API uint32_t vkllm_default_device(const vkllm_device_info *devices, uint32_t count);
/* The index of the device whose device_uuid is uuid (VKLLM_ERR_NO_DEVICE when none is).
 * A UUID survives reboots, driver updates and cards being added, where an index may not: an
 * application stores the UUID and resolves it once per process. The CPU path's UUID is fixed
 * ("vkllm cpu path" in ASCII, zero-padded). */
VKLLM_API vkllm_status vkllm_device_index_by_uuid(const uint8_t uuid[16], uint32_t *index);
VKLLM_API const char *vkllm_device_type_string(vkllm_device_type type);
VKLLM_API void vkllm_free(void *p);

/* ----------------------------------------------------------------- models ---- */

typedef struct vkllm_model vkllm_model;
typedef struct vkllm_context vkllm_context;

/* Called while a model loads with progress in [0, 1]; return nonzero to cancel the load
 * (vkllm_model_load then returns VKLLM_ERR_CANCELLED). */
typedef int (*vkllm_progress_fn)(float progress, void *user);

typedef enum vkllm_kv_type {
    VKLLM_KV_F16 = 0, /* default: half the memory, fp32 accumulation in attention */
    VKLLM_KV_F32 = 1,
} vkllm_kv_type;

/* Several devices: a model's layers are split into contiguous ranges, one per device, and
 * tensors that do not fit the devices are kept in host memory, computed there by the native
 * CPU path when the device list has it, else by a device reading host memory.
 * vkllm_plan_model says where everything goes before anything is loaded. */
#define VKLLM_MAX_DEVICES 16

/* Parameter structs can grow without breaking the ABI: their first member `size` is set by
 * their _init function to the sizeof the caller was compiled with, and the library reads only
 * the members that size covers (the rest keep their defaults). A struct never given to its
 * _init (size 0) is refused with VKLLM_ERR_INVALID_ARG. Structs embedded in another one
 * (context_params in model_params, sampling_params in generate_params) keep a fixed size:
 * they grow into their reserved space, as do the structs the library fills (device and model
 * info, plans, statistics, timings), so that an older caller's buffers stay large enough. */
typedef struct vkllm_context_params {
    uint32_t size;    /* sizeof(vkllm_context_params), set by vkllm_context_params_init */
    uint32_t n_ctx;   /* positions in the KV cache; 0 = min(training context, 4096) */
    uint32_t n_batch; /* prompt tokens per forward chunk; 0 = 512 */
    vkllm_kv_type kv_type;
    uint32_t reserved[12]; /* zero */
} vkllm_context_params;
VKLLM_API void vkllm_context_params_init(vkllm_context_params *p);

typedef struct vkllm_plan vkllm_plan;

typedef struct vkllm_model_params {
    uint32_t size; /* sizeof(vkllm_model_params), set by vkllm_model_params_init */
    /* Device indices (vkllm_list_devices order; VKLLM_DEVICE_CPU_INDEX for the native CPU
     * path); n_devices 0 picks the default device (vkllm_default_device). The same index twice
     * opens that device twice, each opening acting as its own card with its own budget. */
    uint32_t n_devices;
    uint32_t devices[VKLLM_MAX_DEVICES];
    /* Per-device budgets in bytes, by position in devices[]; 0 = the device-local heap (or its
     * VK_EXT_memory_budget figure) less a reserve. */
    uint64_t device_mem[VKLLM_MAX_DEVICES];
    /* Host memory that tensors placed in RAM may use; 0 = MemAvailable of /proc/meminfo. */
    uint64_t host_mem;
    /* Relative share of layers per device (3,1: three quarters on the first); 0 entries =
     * proportional to the budgets. */
    uint32_t n_tensor_split;
    float tensor_split[VKLLM_MAX_DEVICES];
    /* -1: automatic (devices first; FFN matrices, then whole layers, to host memory when the
     * devices are full); N >= 0: the first N layers on devices, the rest in host memory. */
    int32_t gpu_layers;
    /* Position in devices[] of the device that computes the layers kept in host memory;
     * -1 = the CPU path when devices[] lists it, else the last device. */
    int32_t main_device;
    /* The contexts the placement reserves KV cache and activations for (vkllm_context_create
     * with the same values then fits exactly). */
    vkllm_context_params ctx;
    /* Load obeys this plan (from vkllm_plan_model with the same file); NULL = plan now. */
    const vkllm_plan *plan;
    /* vkllm_plan_model: measure each device's read bandwidth for the speed estimate instead
     * of using a nominal figure (opens the devices; takes about a second). */
    int measure_bandwidth;
    /* Bandwidths (GB/s) the speed estimate assumes instead of nominal figures by device type:
     * each device reading its own memory, and reading host memory (PCIe); 0 = nominal. */
    double device_gbps[VKLLM_MAX_DEVICES];
    double host_gbps;
    int validation; /* enable the Khronos validation layer */
    /* Time every GPU op of this model's evaluations with timestamps, for
     * vkllm_context_get_profile (a timestamp per dispatch: evaluation gets a little slower). */
    int profile;
    vkllm_progress_fn progress;
    void *progress_user;
    /* Threads of the native CPU path (each context starts its own pool once); 0 = the
     * machine's physical cores. */
    uint32_t n_threads;
} vkllm_model_params;

/* Fills p with defaults (default device, no budget, no callback). */
VKLLM_API void vkllm_model_params_init(vkllm_model_params *p);

/* Opens a GGUF file (memory-mapped), checks it, plans the placement (or takes p->plan),
 * allocates every device buffer, and only then uploads the weights: a load that cannot fit
 * fails before any weight byte is read. When a device refuses an allocation despite the plan
 * (another program took memory) and placement was automatic, it re-plans once with that
 * device's budget lowered to what it gave, and logs that it did. Errors: VKLLM_ERR_IO, VKLLM_ERR_BAD_FILE (malformed file, message names the field),
 * VKLLM_ERR_UNSUPPORTED (architecture, weight type or tokenizer), VKLLM_ERR_NO_VULKAN,
 * VKLLM_ERR_NO_DEVICE, VKLLM_ERR_OUT_OF_MEMORY, VKLLM_ERR_CANCELLED. */
VKLLM_API vkllm_status vkllm_model_load(const char *path, const vkllm_model_params *p,
                                        vkllm_model **out);
VKLLM_API void vkllm_model_free(vkllm_model *model);

typedef struct vkllm_model_info {
    char arch[32];        /* "llama" */
    char name[128];       /* general.name, or the file name */
    char type_name[32];   /* the dominant weight type, e.g. "q4_0" or "q4_K" */
    uint32_t n_vocab, n_ctx_train, n_embd, n_layer, n_head, n_head_kv, n_ff;
    uint64_t n_params;    /* parameters in weight tensors */
    uint64_t size_bytes;  /* bytes of weight tensors */
    char device[256];     /* the device the model runs on (the first, with several) */
    uint32_t n_devices;   /* device openings the model is split over */
    double load_ms;       /* wall time of vkllm_model_load */
    uint32_t reserved[8]; /* zero: members added later take this space */
} vkllm_model_info;
VKLLM_API vkllm_status vkllm_model_get_info(const vkllm_model *model, vkllm_model_info *out);
/* The placement the model was loaded with (valid while the model lives). */
VKLLM_API const vkllm_plan *vkllm_model_get_plan(const vkllm_model *model);

/* ---------------------------------------------------------------- placement ---- */

/* Reads only the GGUF header (never the tensor data) and computes where every tensor goes for
 * the devices, budgets and split of p and the context cp (NULL: p->ctx). Opens the Vulkan
 * devices only to read their limits (and, with p->measure_bandwidth, to measure them).
 * VKLLM_ERR_OUT_OF_MEMORY when even host memory is too small: the message says how much is
 * needed, how much there is, and what would make it fit. Release with vkllm_plan_free. */
VKLLM_API vkllm_status vkllm_plan_model(const char *path, const vkllm_model_params *p,
                                        const vkllm_context_params *cp, vkllm_plan **out);
VKLLM_API void vkllm_plan_free(vkllm_plan *plan);

#define VKLLM_PLAN_HOST (-1) /* a tensor or KV cache kept in host memory */

/* The tensors of a layer, in this order. */
enum {
    VKLLM_TENSOR_ATTN_NORM, VKLLM_TENSOR_ATTN_Q, VKLLM_TENSOR_ATTN_K, VKLLM_TENSOR_ATTN_V,
    VKLLM_TENSOR_ATTN_OUTPUT, VKLLM_TENSOR_FFN_NORM, VKLLM_TENSOR_FFN_GATE, VKLLM_TENSOR_FFN_UP,
    VKLLM_TENSOR_FFN_DOWN, VKLLM_TENSOR_COUNT
};

typedef struct vkllm_plan_summary {
    uint32_t n_devices, n_layer;
    uint32_t n_ctx, n_batch;
    vkllm_kv_type kv_type;
    uint32_t gpu_layers;         /* layers whose matrices are all on devices */
    uint32_t host_ffn_tensors;   /* single FFN matrices in host memory in otherwise device layers */
    int32_t embd_device, output_device; /* positions in the device list */
    uint64_t weight_bytes;       /* all weights of the file */
    uint64_t host_bytes;         /* RAM the host-resident tensors and caches take */
    uint64_t host_budget_bytes;
    uint64_t hop_bytes_per_token; /* hidden state crossing between devices per token */
    double est_decode_tps;       /* estimated decode tokens/s from bytes read per token */
    int bandwidth_measured;      /* 0: nominal bandwidths by device type */
    uint32_t stream_min_batch;   /* prompt chunks this long stream host weights (0: never) */
    /* Prompt chunks this long of the layers the CPU path computes run on the card instead,
     * their weights streamed from host memory (0: never). */
    uint32_t cpu_stream_min_batch;
    uint32_t reserved[8]; /* zero: members added later take this space */
} vkllm_plan_summary;

typedef struct vkllm_plan_device {
    uint32_t device_index;       /* physical device (vkllm_list_devices order) */
    char name[256];
    uint64_t budget_bytes;       /* device-local bytes it may use */
    uint64_t used_bytes;         /* weights + KV + scratch: what it will allocate */
    uint64_t weights_bytes, kv_bytes, scratch_bytes;
    uint64_t host_visible_bytes; /* host-visible allocations it makes (readback, staging...) */
    uint64_t host_weight_bytes;  /* host-resident tensor bytes it computes with */
    uint32_t first_layer, n_layers; /* the contiguous range it holds (n_layers 0: none) */
    double read_gbps;            /* the bandwidth the estimate used */
    uint64_t read_bytes_per_token, host_read_bytes_per_token;
    uint32_t reserved[8]; /* zero: members added later take this space */
} vkllm_plan_device;

typedef struct vkllm_plan_layer {
    int32_t compute;                    /* position in the device list of the device running it */
    int32_t kv;                         /* device position, or VKLLM_PLAN_HOST */
    int32_t where[VKLLM_TENSOR_COUNT];  /* device position, or VKLLM_PLAN_HOST */
    uint32_t reserved[8]; /* zero: members added later take this space */
} vkllm_plan_layer;

VKLLM_API vkllm_status vkllm_plan_get_summary(const vkllm_plan *plan, vkllm_plan_summary *out);
/* i < n_devices; VKLLM_ERR_INVALID_ARG otherwise. */
VKLLM_API vkllm_status vkllm_plan_get_device(const vkllm_plan *plan, uint32_t i, vkllm_plan_device *out);
VKLLM_API vkllm_status vkllm_plan_get_layer(const vkllm_plan *plan, uint32_t layer, vkllm_plan_layer *out);

/* Measures how fast the model's device can merely read memory (GB/s): a streaming-read
 * kernel over `bytes`, timed with GPU timestamps on a second opening of the same device; the
 * median of 7 passes. bytes 0 = the model's weight bytes, at most 1 GiB and at most half of
 * what the device's budget has left (a buffer much larger than any cache, read as several
 * bindings where one binding cannot span it). Decoding one token reads every weight once, so
 * gbps * 1e9 / size_bytes is the bound that benchmarks report their tokens/s against. */
VKLLM_API vkllm_status vkllm_measure_read_bandwidth(const vkllm_model *model, uint64_t bytes, double *gbps);

typedef struct vkllm_bandwidth {
    double gbps;               /* median of the passes */
    double gbps_min, gbps_max; /* the slowest and the fastest pass */
    uint64_t bytes;            /* bytes each pass read (less than asked if the device refused) */
    uint32_t passes;
    uint32_t reserved[8]; /* zero: members added later take this space */
} vkllm_bandwidth;
/* vkllm_measure_read_bandwidth with the spread: `passes` timed passes (0 = 7). */
VKLLM_API vkllm_status vkllm_measure_read_bandwidth_stats(const vkllm_model *model, uint64_t bytes, uint32_t passes,
                                                          vkllm_bandwidth *out);

/* ------------------------------------------------------------- tokenizer ---- */

VKLLM_API int32_t vkllm_n_vocab(const vkllm_model *model);
VKLLM_API int32_t vkllm_token_bos(const vkllm_model *model); /* -1 when none */
VKLLM_API int32_t vkllm_token_eos(const vkllm_model *model);
/* 1 if the model's tokenizer asks for BOS before a prompt (tokenizer.ggml.add_bos_token). */
VKLLM_API int vkllm_add_bos(const vkllm_model *model);

/* Encodes text into out (capacity cap). When cap is too small, returns
 * VKLLM_ERR_INVALID_ARG with *n_out set to the count needed. */
VKLLM_API vkllm_status vkllm_tokenize(const vkllm_model *model, const char *text, size_t len,
                                      int add_bos, int32_t *out, size_t cap, size_t *n_out);
/* Decodes ids to text into buf (NUL-terminated). The leading space SentencePiece adds to
 * the first word is removed after BOS. *len is the length without the NUL; when cap is too
 * small returns VKLLM_ERR_INVALID_ARG with *len set to what is needed. */
VKLLM_API vkllm_status vkllm_detokenize(const vkllm_model *model, const int32_t *ids, size_t n,
                                        char *buf, size_t cap, size_t *len);

/* Tokenizer-only access to a GGUF file (a vocabulary-only file works: no tensors, no device). */
typedef struct vkllm_vocab vkllm_vocab;
VKLLM_API vkllm_status vkllm_vocab_load(const char *path, vkllm_vocab **out);
VKLLM_API void vkllm_vocab_free(vkllm_vocab *vocab);
VKLLM_API int vkllm_vocab_add_bos(const vkllm_vocab *vocab);
VKLLM_API vkllm_status vkllm_vocab_tokenize(const vkllm_vocab *vocab, const char *text, size_t len,
                                            int add_bos, int32_t *out, size_t cap, size_t *n_out);

/* --------------------------------------------------------------- contexts ---- */

/* A KV cache and activations on the model's device. Several contexts may share a model.
 * Creating one also builds every GPU pipeline its evaluations will use (on a few threads), so
 * the first evaluation compiles nothing; VKLLM_LAZY_PIPELINES=1 in the environment leaves them
 * to be built on first use instead. */
VKLLM_API vkllm_status vkllm_context_create(vkllm_model *model, const vkllm_context_params *p,
                                            vkllm_context **out);
/* What building the pipelines cost vkllm_context_create. Cold start: glslang compiled the
 * shaders (shaders_compiled) and the driver built the pipelines from scratch; warm: the SPIR-V
 * cache served the shaders, and the driver's pipeline cache the pipelines where it says so. */
typedef struct vkllm_prepare_stats {
    int skipped;                  /* VKLLM_LAZY_PIPELINES=1: nothing was built ahead */
    double ms;                    /* wall time of the preparation */
    uint32_t pipelines;           /* pipelines built (0: earlier contexts of the model built all) */
    uint32_t shaders_compiled;    /* shader variants compiled by glslang (SPIR-V cache misses) */
    uint32_t shaders_cached;      /* shader variants read from the SPIR-V cache */
    uint32_t pipeline_cache_hits; /* pipelines the driver took from its pipeline cache */
    uint32_t pipeline_cache_told; /* pipelines whose creation said hit or miss (Vulkan 1.3) */
    uint32_t threads;             /* threads that built them */
    double compile_ms;            /* glslang and SPIR-V cache reads, summed over the threads */
    double create_ms;             /* the driver's pipeline creation, summed over the threads */
    double first_run_ms;          /* running each new pipeline once, after the last was built
                                     (drivers that compile on first use, as lavapipe, do it then) */
    uint32_t reserved[8]; /* zero: members added later take this space */
} vkllm_prepare_stats;
VKLLM_API vkllm_status vkllm_context_get_prepare_stats(const vkllm_context *ctx, vkllm_prepare_stats *out);
VKLLM_API void vkllm_context_free(vkllm_context *ctx);
/* Forgets every cached position (the next eval starts at position 0). */
VKLLM_API void vkllm_context_reset(vkllm_context *ctx);
/* Positions used so far, and the capacity. */
VKLLM_API uint32_t vkllm_context_pos(const vkllm_context *ctx);
VKLLM_API uint32_t vkllm_context_size(const vkllm_context *ctx);

/* Per-op GPU time of a context's evaluations (a model loaded with params.profile): one entry
 * per op and weight type, in the order they first ran, summed over every evaluation since the
 * context was created or last reset and over all the devices it spans. */
typedef struct vkllm_profile_entry {
    char op[24];    /* "matvec", "matmul", "attention", "rmsnorm", "rope", "kv_write", "swiglu",
                       "add", "embed", "argmax", "layer" (a whole layer of a small model's
                       decode step in one dispatch) */
    char type[16];  /* weight type of products and embed ("q4_0", "q4_K"); "" for the others */
    uint64_t calls; /* times the op ran (one call may be several dispatches) */
    double ms;      /* GPU time between the timestamps around its dispatches */
    uint64_t bytes; /* bytes it must read and write: weights, activations, KV cache */
    uint64_t flops; /* 2 per multiply-add of products and attention; 0 for the others */
    uint32_t reserved[8]; /* zero: members added later take this space */
} vkllm_profile_entry;
/* *out: *count entries, released with vkllm_free(). VKLLM_ERR_UNSUPPORTED when the model was
 * loaded without params.profile. */
VKLLM_API vkllm_status vkllm_context_get_profile(const vkllm_context *ctx, vkllm_profile_entry **out,
                                                 uint32_t *count);
VKLLM_API void vkllm_context_reset_profile(vkllm_context *ctx);

/* The single-token evaluations (decode steps) of a context since it was created or since
 * vkllm_context_reset_step_stats: wall time inside the library, the GPU time of their
 * submissions (each device's first to last timestamp, summed; 0 where the queue has no
 * timestamps) and the time the calling thread spent blocked on their fences.
 * (wall_ms - gpu_ms) / n_steps is the host's cost per token as the GPU sees it (the library's
 * work, the driver's submission and its wake-ups); (wall_ms - wait_ms) / n_steps is the part
 * spent on the calling thread. A step is recorded once per span of positions and replayed
 * with the position and token in a buffer; n_recorded counts the recordings
 * (VKLLM_NO_REPLAY=1 records every step). */
typedef struct vkllm_step_stats {
    uint64_t n_steps;
    uint64_t n_recorded;
    double wall_ms;
    double gpu_ms;
    double wait_ms;
    uint32_t reserved[8]; /* zero: members added later take this space */
} vkllm_step_stats;
VKLLM_API vkllm_status vkllm_context_get_step_stats(const vkllm_context *ctx, vkllm_step_stats *out);
VKLLM_API void vkllm_context_reset_step_stats(vkllm_context *ctx);

/* Asked between prompt chunks and between the submissions of a chunk's layers (and before
 * every generated token): nonzero stops the evaluation. Runs on the evaluating thread; it may
 * read a flag another thread sets (a Stop button). */
typedef int (*vkllm_abort_fn)(void *user);
/* Prompt progress: `done` of `total` tokens of the current vkllm_eval (or of vkllm_generate's
 * prompt) evaluated, after each chunk. Runs on the evaluating thread. */
typedef void (*vkllm_eval_progress_fn)(uint32_t done, uint32_t total, void *user);
/* Installs the context's abort and progress callbacks (NULL: none), used by vkllm_eval and
 * vkllm_generate until changed. */
VKLLM_API vkllm_status vkllm_context_set_abort_callback(vkllm_context *ctx, vkllm_abort_fn fn, void *user);
VKLLM_API vkllm_status vkllm_context_set_progress_callback(vkllm_context *ctx, vkllm_eval_progress_fn fn,
                                                           void *user);

/* Runs tokens through the model at the next positions (prompt chunks are processed as
 * matrix products, n_batch at a time) and keeps the logits of the last one.
 * VKLLM_ERR_CONTEXT_FULL if the tokens do not fit; nothing is evaluated then.
 * VKLLM_ERR_CANCELLED when the abort callback stopped it: the chunks evaluated before stay in
 * the context (vkllm_context_pos says how many tokens), the logits are not valid. */
VKLLM_API vkllm_status vkllm_eval(vkllm_context *ctx, const int32_t *tokens, uint32_t n);
/* The logits (n_vocab floats) of the last evaluated token; valid until the next eval. */
VKLLM_API const float *vkllm_get_logits(const vkllm_context *ctx);

/* -------------------------------------------------------------- generation ---- */

typedef struct vkllm_sampling_params {
    uint32_t size;         /* sizeof(vkllm_sampling_params), set by vkllm_sampling_params_init */
    float temp;            /* <= 0: greedy */
    int32_t top_k;         /* <= 0: off */
    float top_p;           /* >= 1: off */
    float min_p;           /* <= 0: off */
    float repeat_penalty;  /* 1: off */
    int32_t repeat_last_n; /* tokens the penalty looks back on */
    uint64_t seed;
    uint32_t reserved[12]; /* zero */
} vkllm_sampling_params;
/* llama.cpp's defaults: temp 0.8, top-k 40, top-p 0.95, min-p 0.05, repeat penalty 1.0
 * (off) over the last 64 tokens, seed 0xFFFFFFFF... replaced by a time-based seed. */
VKLLM_API void vkllm_sampling_params_init(vkllm_sampling_params *p);

/* Receives generated text. Pieces never split a UTF-8 character. token is the id that
 * completed the piece. Return nonzero to stop generation. */
typedef int (*vkllm_text_fn)(const char *text, size_t len, int32_t token, void *user);

typedef struct vkllm_generate_params {
    uint32_t size;                /* sizeof(vkllm_generate_params), set by vkllm_generate_params_init */
    const char *prompt;           /* text, tokenized with BOS per add_bos */
    const int32_t *prompt_tokens; /* or ready-made ids (used when non-NULL) */
    size_t n_prompt_tokens;
    int add_bos;                  /* -1: the model's preference (default), 0: no, 1: yes */
    int32_t n_predict;            /* tokens to generate; -1 = until EOS or the context is full */
    const char *const *stop;      /* stop strings (not emitted); may be NULL */
    size_t n_stop;
    vkllm_sampling_params sampling;
    vkllm_text_fn on_text;
    void *user;
    /* Called with every generated token id (before its text), may be NULL. */
    void (*on_token)(int32_t token, void *user);
} vkllm_generate_params;
VKLLM_API void vkllm_generate_params_init(vkllm_generate_params *p);

typedef enum vkllm_stop_reason {
    VKLLM_STOP_EOS,       /* the model produced EOS (or BOS, as llama2.c stops) */
    VKLLM_STOP_N_PREDICT, /* n_predict tokens were generated */
    VKLLM_STOP_STRING,    /* a stop string appeared */
    VKLLM_STOP_CALLBACK,  /* on_text returned nonzero, or the abort callback asked to stop
                             after the prompt */
    VKLLM_STOP_CONTEXT,   /* the context filled up */
} vkllm_stop_reason;

typedef struct vkllm_timings {
    uint32_t n_prompt;    /* prompt tokens evaluated */
    double prompt_ms;
    uint32_t n_gen;       /* tokens generated */
    double gen_ms;
    vkllm_stop_reason stop;
    uint32_t reserved[8]; /* zero: members added later take this space */
} vkllm_timings;

/* Evaluates the prompt at the context's current position, then samples and streams text
 * until EOS, n_predict, a stop string, a callback, or a full context (the last two are not
 * errors: see timings->stop). Returns VKLLM_ERR_CONTEXT_FULL only if the prompt itself does
 * not fit, and VKLLM_ERR_CANCELLED when the context's abort callback stopped the prompt
 * (see vkllm_eval); the model load time is vkllm_model_info.load_ms. timings may be NULL. */
VKLLM_API vkllm_status vkllm_generate(vkllm_context *ctx, const vkllm_generate_params *p,
                                      vkllm_timings *timings);

#ifdef __cplusplus
}
#endif
#endif
