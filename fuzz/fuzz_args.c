/* libFuzzer target: the CLI's number and list parsers (tools/args.c). The input is split at
 * NUL bytes into a fake argv that goes through placement_option the way every command's
 * option loop does; every word also goes through parse_size, parse_int and parse_float. The
 * parsers' complaints go to stderr, which is pointed at /dev/null (sanitizer reports write to
 * file descriptor 2 directly and still show). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/args.h"
#include "vkllm.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ARGS 64

#define REQUIRE(cond)                                                                   \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(g_err, "fuzz_args: %s:%d: broken promise: %s\n", __FILE__, __LINE__, \
                    #cond);                                                             \
            abort();                                                                    \
        }                                                                               \
    } while (0)

static FILE *g_err;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    g_err = stderr;
    FILE *null = fopen("/dev/null", "w");
    if (null) stderr = null; /* glibc's stderr is an assignable FILE * */
    return 0;
}

static void check_params(const vkllm_model_params *mp) {
    REQUIRE(mp->n_devices <= VKLLM_MAX_DEVICES && mp->n_tensor_split <= VKLLM_MAX_DEVICES);
    for (uint32_t d = 0; d < mp->n_devices; d++)
        REQUIRE(mp->devices[d] <= (1u << 20) || mp->devices[d] == VKLLM_DEVICE_CPU_INDEX);
    REQUIRE(mp->n_threads <= 1024);
    for (uint32_t d = 0; d < mp->n_tensor_split; d++) REQUIRE(!(mp->tensor_split[d] < 0));
    REQUIRE(mp->gpu_layers >= -1 && mp->gpu_layers <= (1 << 20));
    REQUIRE(mp->main_device >= -1 && mp->main_device < VKLLM_MAX_DEVICES);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* One NUL-terminated copy; argv points into it. */
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = "vkllm";
    for (char *p = buf; argc <= MAX_ARGS && p <= buf + size; p += strlen(p) + 1) argv[argc++] = p;
    argv[argc] = NULL;

    vkllm_model_params mp;
    vkllm_model_params_init(&mp);
    for (int i = 1; i < argc; i++) {
        int before = i;
        int r = placement_option(argc, argv, &i, &mp);
        REQUIRE(r >= -1 && r <= 1);
        REQUIRE(i == before || (r != 0 && i == before + 1));
        if (r < 0) break; /* a command stops at the first bad option */
        check_params(&mp);
    }
    for (int i = 1; i < argc; i++) {
        uint64_t sz = 0;
        long long iv = 0;
        double fv = 0;
        if (parse_size("--size", argv[i], &sz)) REQUIRE(argv[i][0] != 0);
        if (parse_int("--int", argv[i], -1, 1 << 20, &iv)) REQUIRE(iv >= -1 && iv <= (1 << 20));
        if (parse_int("--any", argv[i], INT64_MIN, INT64_MAX, &iv)) REQUIRE(argv[i][0] != 0);
        if (parse_float("--float", argv[i], &fv)) REQUIRE(argv[i][0] != 0);
    }
    free(buf);
    return 0;
}
