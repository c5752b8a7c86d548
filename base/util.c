/* Status messages, logging and small helpers shared by vk/ and runtime/. The last error is
 * thread-local so concurrent contexts never see each other's messages; log lines from any
 * thread reach the callback one at a time. */
#include "base/util.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local char g_last_error[1024];
static atomic_int g_log_level = VKLLM_LOG_WARN;
static pthread_once_t g_log_once = PTHREAD_ONCE_INIT;
/* Guards the callback and its user pointer, and is held while a line is delivered: the
 * callback is never entered by two threads at once, and once vkllm_set_log_callback returns
 * the old one is never called again. Recursive, so a callback may itself call the library. */
static pthread_mutex_t g_log_lock;
static vkllm_log_fn g_log_fn;
static void *g_log_user;

vkllm_status vkl_err(vkllm_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_last_error, sizeof g_last_error, fmt, ap);
    va_end(ap);
    vkl_log(VKLLM_LOG_DEBUG, "error (%s): %s", vkl_status_name(st), g_last_error);
    return st;
}

void vkl_err_context(const char *fmt, ...) {
    char prefix[512];
    char old[sizeof g_last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_last_error, sizeof old);
    size_t n = strlen(prefix);
    if (n > sizeof g_last_error - 3) n = sizeof g_last_error - 3;
    memcpy(g_last_error, prefix, n);
    memcpy(g_last_error + n, ": ", 2);
    size_t rest = sizeof g_last_error - n - 3;
    size_t m = strlen(old);
    if (m > rest) m = rest;
    memcpy(g_last_error + n + 2, old, m);
    g_last_error[n + 2 + m] = 0;
}

const char *vkl_last_error(void) { return g_last_error; }
void vkl_clear_error(void) { g_last_error[0] = 0; }

void vkl_err_save(char *buf, size_t cap) {
    if (cap) snprintf(buf, cap, "%s", g_last_error);
}

void vkl_err_restore(const char *msg) { snprintf(g_last_error, sizeof g_last_error, "%s", msg); }

static void log_init(void) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&g_log_lock, &a);
    pthread_mutexattr_destroy(&a);
    const char *e = getenv("VKLLM_LOG");
    if (!e) return;
    if (!strcmp(e, "error")) atomic_store(&g_log_level, VKLLM_LOG_ERROR);
    else if (!strcmp(e, "warn")) atomic_store(&g_log_level, VKLLM_LOG_WARN);
    else if (!strcmp(e, "info")) atomic_store(&g_log_level, VKLLM_LOG_INFO);
    else if (!strcmp(e, "debug")) atomic_store(&g_log_level, VKLLM_LOG_DEBUG);
}

int vkl_log_enabled(vkllm_log_level level) {
    pthread_once(&g_log_once, log_init);
    return (int)level <= atomic_load_explicit(&g_log_level, memory_order_relaxed);
}

void vkl_set_log_level(vkllm_log_level level) {
    pthread_once(&g_log_once, log_init); /* the environment applies first, so this overrides it */
    atomic_store(&g_log_level, (int)level);
}

void vkl_set_log_callback(vkllm_log_fn fn, void *user) {
    pthread_once(&g_log_once, log_init);
    pthread_mutex_lock(&g_log_lock);
    g_log_fn = fn;
    g_log_user = user;
    pthread_mutex_unlock(&g_log_lock);
}

void vkl_log(vkllm_log_level level, const char *fmt, ...) {
    if (!vkl_log_enabled(level)) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    static const char *names[] = {"error", "warn", "info", "debug"};
    pthread_mutex_lock(&g_log_lock);
    if (g_log_fn) g_log_fn(level, msg, g_log_user);
    else fprintf(stderr, "vkllm %s: %s\n", names[level], msg);
    pthread_mutex_unlock(&g_log_lock);
}

uint64_t vkl_hash64(const void *data, size_t n, uint64_t seed) {
    const unsigned char *p = data;
    uint64_t h = seed;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

double vkl_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

const char *vkl_fmt_bytes(char *buf, size_t cap, uint64_t bytes) {
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    if (u == 0) snprintf(buf, cap, "%llu B", (unsigned long long)bytes);
    else snprintf(buf, cap, "%.1f %s", v, units[u]);
    return buf;
}

char *vkl_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = vkl_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* ---- host allocations ---- */

static _Atomic(vkl_alloc_fault_fn) g_alloc_fault;

void vkl_set_alloc_fault_hook(vkl_alloc_fault_fn fn) { atomic_store(&g_alloc_fault, fn); }

static int alloc_fails(void) {
    vkl_alloc_fault_fn fn = atomic_load_explicit(&g_alloc_fault, memory_order_relaxed);
    return fn && fn();
}

void *vkl_malloc(size_t size) { return alloc_fails() ? NULL : malloc(size); }
void *vkl_calloc(size_t n, size_t size) { return alloc_fails() ? NULL : calloc(n, size); }
void *vkl_realloc(void *p, size_t size) { return alloc_fails() ? NULL : realloc(p, size); }

const char *vkl_status_name(vkllm_status status) {
    switch (status) {
    case VKLLM_OK: return "ok";
    case VKLLM_ERR_INVALID_ARG: return "invalid argument";
    case VKLLM_ERR_NO_VULKAN: return "no Vulkan";
    case VKLLM_ERR_NO_DEVICE: return "no such device";
    case VKLLM_ERR_OUT_OF_MEMORY: return "out of memory";
    case VKLLM_ERR_DEVICE_LOST: return "device lost";
    case VKLLM_ERR_VULKAN: return "Vulkan error";
    case VKLLM_ERR_SHADER: return "shader error";
    case VKLLM_ERR_IO: return "I/O error";
    case VKLLM_ERR_BAD_FILE: return "malformed file";
    case VKLLM_ERR_UNSUPPORTED: return "unsupported";
    case VKLLM_ERR_CONTEXT_FULL: return "context full";
    case VKLLM_ERR_CANCELLED: return "cancelled";
    }
    return "unknown status";
}
