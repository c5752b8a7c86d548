/* vkllm public C API, kernel tuning: times every variant of the weight-reading kernels on one
 * device, for a model's weight types and matrix shapes (or a standard set), after checking
 * each against the CPU reference, and writes the fastest per op and weight type into a
 * profile in the cache folder. Every later load on that device, in any process, uses it
 * (VKLLM_TUNE=0 in the environment turns profiles off). Same rules as vkllm.h: a status and
 * vkllm_last_error() on failure, nothing printed. */
#ifndef VKLLM_TUNE_API_H
#define VKLLM_TUNE_API_H

#include "vkllm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One line of progress (no newline), on the calling thread. */
typedef void (*vkllm_tune_progress_fn)(const char *line, void *user);

typedef struct vkllm_tune_params {
    int32_t device;        /* vkllm_list_devices index; -1 = the default device */
    const char *model;     /* GGUF file: its weight types and matrix shapes (header only is read);
                              NULL = the standard LLaMA shapes of `shapes` */
    const char *shapes;    /* without a model: any of "7b,13b,65b"; NULL = "7b" */
    const char *types;     /* weight type names, comma-separated; NULL = the model's types, or
                              q4_0,q8_0,q4_K,q6_K without a model */
    uint32_t shrink;       /* divide every matrix dimension by this (0, 1: full size): a quick
                              run on a slow device, at the cost of less representative timings */
    uint32_t n_prefill;    /* tokens of the prefill product; 0 = 64 */
    uint32_t reps;         /* timed calls per variant and shape (median); 0 = 3 */
    const char *out_path;  /* the profile to write; NULL = the device's profile in the cache
                              folder ($VKLLM_TUNE_DIR, else $VKLLM_CACHE_DIR or ~/.cache/vkllm) */
    int dry_run;           /* measure and report only; write nothing */
    int validation;        /* enable the Khronos validation layer */
    vkllm_tune_progress_fn progress;
    void *progress_user;
} vkllm_tune_params;
VKLLM_API void vkllm_tune_params_init(vkllm_tune_params *p);

#define VKLLM_TUNE_MAX_ROWS 64

/* The outcome for one op and weight type. Times are the sum over the shapes of each shape's
 * median call time times how often it runs: per decoded token (matvec) or per prefill chunk
 * of n_prefill tokens (matmul), weight products only. */
typedef struct vkllm_tune_row {
    char op[8];                /* "matvec" (decode) or "matmul" (prefill) */
    char type[16];             /* weight type name, e.g. "q4_0" */
    char default_variant[48];  /* the built-in choice */
    char chosen_variant[48];   /* what the profile records */
    /* The fastest variant without integer dot products (which round x to 8 bits and need
     * scratch memory): what callers that lend none get; chosen_variant when it has none. */
    char no_int_dot_variant[48];
    double default_ms, chosen_ms, no_int_dot_ms;
    uint32_t variants;         /* variants tried */
    uint32_t valid;            /* variants that matched the CPU reference on every shape */
    uint32_t shapes;
} vkllm_tune_row;

typedef struct vkllm_tune_result {
    char device[256];
    char driver[256];
    uint32_t n_rows;
    vkllm_tune_row rows[VKLLM_TUNE_MAX_ROWS];
    char path[1024];           /* the profile written; "" with dry_run */
} vkllm_tune_result;

/* Runs the tuning. VKLLM_ERR_UNSUPPORTED when the device has no timestamps or none of the
 * types has a GPU kernel; a variant that fails the CPU check or cannot be built on the device
 * is reported through progress and left out, never chosen. A profile already in out_path for
 * the same device keeps its choices for the types not tuned now. */
VKLLM_API vkllm_status vkllm_tune(const vkllm_tune_params *p, vkllm_tune_result *out);

#ifdef __cplusplus
}
#endif

#endif
