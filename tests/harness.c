/* Implementation of the test harness declared in harness.h. */
#include "harness.h"

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "vkllm.h"

int th_checks, th_failures;

void th_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    th_failures++;
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

const char *th_last_error(void) { return vkllm_last_error(); }

static atomic_int th_validation_count;

void th_log(vkllm_log_level level, const char *msg, void *user) {
    (void)user;
    if (strncmp(msg, "validation:", 11) == 0) atomic_fetch_add(&th_validation_count, 1);
    if (level <= VKLLM_LOG_WARN) fprintf(stderr, "vkllm: %s\n", msg);
}

int th_validation_messages(void) { return atomic_load(&th_validation_count); }

int th_sanitized(void) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return 1;
#else
    return 0;
#endif
}

void th_model_params_init(vkllm_model_params *p) {
    vkllm_model_params_init(p);
    const char *env = getenv("VKLLM_DEVICE");
    for (const char *q = env ? env : ""; *q && p->n_devices < VKLLM_MAX_DEVICES;) {
        size_t len = strcspn(q, ",");
        p->devices[p->n_devices++] = !strncmp(q, "cpu", len) && len == 3 ? VKLLM_DEVICE_CPU_INDEX
                                                                        : (uint32_t)strtoul(q, NULL, 10);
        q += len + (q[len] == ',');
    }
}

int th_finish(void) {
    printf("%d passed, %d failed\n", th_checks - th_failures, th_failures);
    return th_failures ? 1 : 0;
}

uint64_t th_next(th_rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float th_uniform(th_rng *r, float lo, float hi) {
    return lo + (hi - lo) * (float)((double)(th_next(r) >> 11) / 9007199254740992.0);
}

float th_normal(th_rng *r) {
    double u1 = ((double)(th_next(r) >> 11) + 1.0) / 9007199254740993.0;
    double u2 = (double)(th_next(r) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void th_fill_uniform(th_rng *r, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = th_uniform(r, lo, hi);
}

double th_nmse(const float *ref, const float *got, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)ref[i] - (double)got[i];
        if (isnan(got[i]) || isinf(got[i])) return INFINITY;
        num += d * d;
        den += (double)ref[i] * (double)ref[i];
    }
    if (den == 0) return num == 0 ? 0 : INFINITY;
    return num / den;
}

double th_max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d; /* NaN propagates as "larger" */
    }
    return m;
}

const char *th_data_path(const char *rel, char *buf, size_t cap) {
    const char *root = getenv("VKLLM_TEST_DATA");
    if (!root || !*root) root = "../shared/models";
    snprintf(buf, cap, "%s/%s", root, rel);
    FILE *f = fopen(buf, "rb");
    if (!f) {
        printf("SKIP: %s not found (set VKLLM_TEST_DATA)\n", rel);
        return NULL;
    }
    fclose(f);
    return buf;
}

const char *th_tmp_path(const char *name, char *buf, size_t cap) {
    const char *root = getenv("VKLLM_TEST_TMP");
    if (!root || !*root) root = "/tmp";
    /* The process id keeps tests that run at once (a test and its *_staging variant) apart. */
    snprintf(buf, cap, "%s/%ld_%s", root, (long)getpid(), name);
    return buf;
}

char *th_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p) {
        p[n] = 0;
        if (size) *size = (size_t)n;
    }
    return p;
}

char *th_run_cli(const char *env, const char *args, int *exit_code) {
    const char *bin = getenv("VKLLM_BIN_DIR");
    if (!bin || !*bin) bin = ".";
    size_t cap = strlen(bin) + strlen(args) + strlen(env) + 32;
    char *cmd = malloc(cap);
    snprintf(cmd, cap, "%s %s/%s", env, bin, args);
    FILE *p = popen(cmd, "r");
    free(cmd);
    if (!p) {
        *exit_code = -1;
        return NULL;
    }
    size_t n = 0, size = 4096;
    char *out = malloc(size);
    size_t got;
    while ((got = fread(out + n, 1, size - n - 1, p)) > 0) {
        n += got;
        if (size - n < 1024) {
            size *= 2;
            out = realloc(out, size);
        }
    }
    out[n] = 0;
    int rc = pclose(p);
    *exit_code = (rc >= 0 && (rc & 0x7f) == 0) ? (rc >> 8) & 0xff : -1;
    return out;
}
