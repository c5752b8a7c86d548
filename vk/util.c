/* Status messages, logging and small helpers shared by vk/ and runtime/. The last error is
 * thread-local so concurrent contexts never see each other's messages. */
#include "vk/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local char g_last_error[1024];
static vkllm_log_level g_log_level = VKLLM_LOG_WARN;
static int g_log_level_from_env;
static vkllm_log_fn g_log_fn;
static void *g_log_user;

vkllm_status vkl_err(vkllm_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_last_error, sizeof g_last_error, fmt, ap);
    va_end(ap);
    vkl_log(VKLLM_LOG_DEBUG, "error (%s): %s", vkllm_status_string(st), g_last_error);
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

static void log_level_from_env(void) {
    if (g_log_level_from_env) return;
    g_log_level_from_env = 1;
    const char *e = getenv("VKLLM_LOG");
    if (!e) return;
    if (!strcmp(e, "error")) g_log_level = VKLLM_LOG_ERROR;
    else if (!strcmp(e, "warn")) g_log_level = VKLLM_LOG_WARN;
    else if (!strcmp(e, "info")) g_log_level = VKLLM_LOG_INFO;
    else if (!strcmp(e, "debug")) g_log_level = VKLLM_LOG_DEBUG;
}

int vkl_log_enabled(vkllm_log_level level) {
    log_level_from_env();
    return level <= g_log_level;
}

void vkl_set_log_level(vkllm_log_level level) {
    g_log_level_from_env = 1;
    g_log_level = level;
}

void vkl_set_log_callback(vkllm_log_fn fn, void *user) {
    g_log_fn = fn;
    g_log_user = user;
}

void vkl_log(vkllm_log_level level, const char *fmt, ...) {
    if (!vkl_log_enabled(level)) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (g_log_fn) {
        g_log_fn(level, msg, g_log_user);
        return;
    }
    static const char *names[] = {"error", "warn", "info", "debug"};
    fprintf(stderr, "vkllm %s: %s\n", names[level], msg);
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
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}
