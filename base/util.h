/* Small services every module uses: status + last-error message, leveled logging to
 * stderr (never stdout), hashing, clocks and byte formatting. Knows nothing of Vulkan or LLMs. */
#ifndef VKLLM_UTIL_H
#define VKLLM_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include "vkllm.h"

#if defined(__GNUC__)
#define VKL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define VKL_PRINTF(a, b)
#endif

/* Records a formatted message as this thread's last error and returns st unchanged, so a
 * failing path reads `return vkl_err(VKLLM_ERR_IO, "cannot open %s", path);`. */
vkllm_status vkl_err(vkllm_status st, const char *fmt, ...) VKL_PRINTF(2, 3);
/* Prepends "what: " to the current last-error message (adds context while unwinding). */
void vkl_err_context(const char *fmt, ...) VKL_PRINTF(1, 2);
const char *vkl_last_error(void);
/* A status in a few words ("out of memory"): what vkllm_status_string returns. */
const char *vkl_status_name(vkllm_status status);
void vkl_clear_error(void);
/* Copies this thread's last error into buf, and makes msg the last error again: cleanup that
 * may fail itself keeps the message of the failure that brought it there. */
void vkl_err_save(char *buf, size_t cap);
void vkl_err_restore(const char *msg);

void vkl_log(vkllm_log_level level, const char *fmt, ...) VKL_PRINTF(2, 3);
int vkl_log_enabled(vkllm_log_level level);
void vkl_set_log_level(vkllm_log_level level);
/* Thread-safe: the callback receives one line at a time, whatever thread logs it. */
void vkl_set_log_callback(vkllm_log_fn fn, void *user);

/* 64-bit FNV-1a, chained through `seed` (pass VKL_HASH_SEED to start). Cache keys only. */
#define VKL_HASH_SEED 0xcbf29ce484222325ull
uint64_t vkl_hash64(const void *data, size_t n, uint64_t seed);

double vkl_now_ms(void);
/* "1.5 GiB", "512.0 MiB", "17 B" into buf (at least 32 bytes). Returns buf. */
const char *vkl_fmt_bytes(char *buf, size_t cap, uint64_t bytes);
char *vkl_strdup(const char *s);

/* The library's own host allocations (released with free()). A test can make the Nth of them
 * fail (vk_fault_set in vk/fault.h installs the hook below), so the load, context and generation
 * paths allocate through these. */
void *vkl_malloc(size_t size);
void *vkl_calloc(size_t n, size_t size);
void *vkl_realloc(void *p, size_t size);
/* Asked before each of those allocations: nonzero makes it return NULL. NULL: none. */
typedef int (*vkl_alloc_fault_fn)(void);
void vkl_set_alloc_fault_hook(vkl_alloc_fault_fn fn);

/* Multiplication/addition that report overflow instead of wrapping. Return 0 on overflow. */
static inline int vkl_mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
    if (a != 0 && b > UINT64_MAX / a) return 0;
    *out = a * b;
    return 1;
}
static inline int vkl_add_u64(uint64_t a, uint64_t b, uint64_t *out) {
    if (b > UINT64_MAX - a) return 0;
    *out = a + b;
    return 1;
}
static inline uint64_t vkl_align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

#endif
