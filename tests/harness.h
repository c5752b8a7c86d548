/* Test harness: checks that count instead of aborting, a deterministic RNG, normalized
 * error, test-data lookup with SKIP, and a GPU fixture that fails the test on any
 * validation-layer message. Every test binary ends with `return th_finish();`. */
#ifndef VKLLM_TEST_HARNESS_H
#define VKLLM_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "vkllm.h"
#include <stdio.h>

extern int th_checks, th_failures;

void th_fail(const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif

    ;

#define CHECK(cond)                                                    \
    do {                                                               \
        th_checks++;                                                   \
        if (!(cond)) th_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);  \
    } while (0)
#define CHECK_MSG(cond, ...)                                        \
    do {                                                            \
        th_checks++;                                                \
        if (!(cond)) th_fail(__FILE__, __LINE__, __VA_ARGS__);      \
    } while (0)
/* A vkllm_status-returning call that must succeed; prints vkllm_last_error() otherwise. */
#define CHECK_OK(call)                                                                       \
    do {                                                                                     \
        th_checks++;                                                                         \
        int st_ = (int)(call);                                                               \
        if (st_ != 0) th_fail(__FILE__, __LINE__, "%s -> %d: %s", #call, st_, th_last_error()); \
    } while (0)

const char *th_last_error(void);

/* Prints "<name>: N passed, N failed" and returns the process exit code. */
int th_finish(void);

/* Deterministic RNG (splitmix64). */
typedef struct th_rng { uint64_t s; } th_rng;
uint64_t th_next(th_rng *r);
float th_uniform(th_rng *r, float lo, float hi);
float th_normal(th_rng *r);
void th_fill_uniform(th_rng *r, float *x, size_t n, float lo, float hi);

/* sum((a-b)^2) / sum(a^2), with a the reference. 0 for identical, ~1 for unrelated. */
double th_nmse(const float *ref, const float *got, size_t n);
double th_max_abs_diff(const float *a, const float *b, size_t n);

/* Path of a shared test file (VKLLM_TEST_DATA, else ../shared/models next to the source
 * tree) into buf; returns NULL and prints "SKIP: <rel> not found" when it is absent. */
const char *th_data_path(const char *rel, char *buf, size_t cap);
/* A writable scratch path (VKLLM_TEST_TMP or /tmp) for name. */
const char *th_tmp_path(const char *name, char *buf, size_t cap);
/* Reads a whole file into a malloc'd, NUL-terminated buffer; NULL if unreadable. */
char *th_read_file(const char *path, size_t *size);

/* A log callback for vkllm_set_log_callback: counts the validation layer's messages (they
 * start with "validation:") and prints warnings and errors to stderr. */
void th_log(vkllm_log_level level, const char *msg, void *user);
/* How many validation messages th_log has seen. */
int th_validation_messages(void);

/* 1 in a sanitizer build (VKLLM_SANITIZE), which runs 5-20x slower: a test whose cases
 * repeat the same code paths over more weight types or configurations may run a subset there
 * (the plain build runs them all). */
int th_sanitized(void);
/* vkllm_model_params_init, then the devices of $VKLLM_DEVICE (a list such as 0, cpu or 0,cpu):
 * the library reads no device list from the environment, so the tests that name no device
 * test the one their ctest entry names. */
void th_model_params_init(vkllm_model_params *p);

/* Runs `$VKLLM_BIN_DIR/<args>` through the shell with extra environment assignments `env`
 * (may be ""), capturing stdout (malloc'd, NUL-terminated) and the exit status. */
char *th_run_cli(const char *env, const char *args, int *exit_code);
#endif
