/* Option parsing helpers for the CLI. */
#include "tools/args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vkllm.h"

int arg_value(int argc, char **argv, int *i, const char *name, const char *alt, const char **value) {
    if (strcmp(argv[*i], name) != 0 && !(alt && !strcmp(argv[*i], alt))) return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "vkllm: option %s needs a value\n", argv[*i]);
        return -1;
    }
    *value = argv[++*i];
    return 1;
}

int parse_int(const char *opt, const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "vkllm: %s expects an integer in [%lld, %lld], got '%s'\n", opt, lo, hi, s);
        return 0;
    }
    *out = v;
    return 1;
}

int parse_float(const char *opt, const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end) {
        fprintf(stderr, "vkllm: %s expects a number, got '%s'\n", opt, s);
        return 0;
    }
    *out = v;
    return 1;
}

char *read_text_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "vkllm: cannot open prompt file %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n < 2) {
            char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) {
        fprintf(stderr, "vkllm: out of memory reading %s\n", path);
        return NULL;
    }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

int parse_size(const char *opt, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    double mul = 1.0;
    if (!errno && end != s) {
        switch (*end) {
        case 'K': case 'k': mul = 1024.0; end++; break;
        case 'M': case 'm': mul = 1024.0 * 1024.0; end++; break;
        case 'G': case 'g': mul = 1024.0 * 1024.0 * 1024.0; end++; break;
        case 'T': case 't': mul = 1024.0 * 1024.0 * 1024.0 * 1024.0; end++; break;
        default: break;
        }
        if (mul > 1.0 && *end == 'i') end++;
        if (*end == 'B' || *end == 'b') end++;
    }
    /* !(v >= 0) also refuses NaN, whose conversion to an integer is undefined. */
    if (errno || end == s || *end || !(v >= 0) || v * mul >= 18446744073709551615.0) {
        fprintf(stderr, "vkllm: %s expects a size such as 512M or 24G, got '%s'\n", opt, s);
        return 0;
    }
    *out = (uint64_t)(v * mul);
    return 1;
}

int each_item(const char *opt, const char *s, uint32_t *n, int (*fn)(const char *opt, const char *item, uint32_t i, void *user),
              void *user) {
    *n = 0;
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[64];
        if (len == 0 || len >= sizeof item) {
            fprintf(stderr, "vkllm: %s expects a comma-separated list, got '%s'\n", opt, s);
            return 0;
        }
        if (*n == VKLLM_MAX_DEVICES) {
            fprintf(stderr, "vkllm: %s takes at most %d entries\n", opt, VKLLM_MAX_DEVICES);
            return 0;
        }
        memcpy(item, p, len);
        item[len] = 0;
        if (!fn(opt, item, (*n)++, user)) return 0;
        if (!comma) return 1;
        p = comma + 1;
    }
}

/* A device UUID as `vkllm devices` prints it: 32 hex digits, dashes anywhere allowed. */
static int parse_uuid(const char *s, uint8_t uuid[16]) {
    int n = 0;
    for (; *s; s++) {
        if (*s == '-') continue;
        int d = *s >= '0' && *s <= '9' ? *s - '0' : *s >= 'a' && *s <= 'f' ? *s - 'a' + 10
              : *s >= 'A' && *s <= 'F' ? *s - 'A' + 10 : -1;
        if (d < 0 || n == 32) return 0;
        if (n % 2 == 0) uuid[n / 2] = (uint8_t)(d << 4);
        else uuid[n / 2] |= (uint8_t)d;
        n++;
    }
    return n == 32;
}

static int device_item(const char *opt, const char *item, uint32_t i, void *user) {
    long long v;
    uint8_t uuid[16];
    if (!strcmp(item, "cpu")) {
        ((vkllm_model_params *)user)->devices[i] = VKLLM_DEVICE_CPU_INDEX;
        return 1;
    }
    if (strlen(item) >= 32 && parse_uuid(item, uuid)) {
        uint32_t idx;
        if (vkllm_device_index_by_uuid(uuid, &idx) != VKLLM_OK) {
            fprintf(stderr, "vkllm: %s: %s\n", opt, vkllm_last_error());
            return 0;
        }
        ((vkllm_model_params *)user)->devices[i] = idx;
        return 1;
    }
    if (!parse_int(opt, item, 0, 1 << 20, &v)) return 0;
    ((vkllm_model_params *)user)->devices[i] = (uint32_t)v;
    return 1;
}

static int mem_item(const char *opt, const char *item, uint32_t i, void *user) {
    return parse_size(opt, item, &((vkllm_model_params *)user)->device_mem[i]);
}

static int split_item(const char *opt, const char *item, uint32_t i, void *user) {
    double v;
    if (!parse_float(opt, item, &v)) return 0;
    if (v < 0) {
        fprintf(stderr, "vkllm: %s entries must not be negative, got '%s'\n", opt, item);
        return 0;
    }
    ((vkllm_model_params *)user)->tensor_split[i] = (float)v;
    return 1;
}

const char placement_usage[] =
    "  --device LIST           device indices, e.g. 0, 0,1 (the same index twice = two cards), cpu\n"
    "                          (the native CPU path) or 0,cpu (host layers computed by the CPU);\n"
    "                          a UUID of vkllm devices instead of an index; default: $VKLLM_DEVICE,\n"
    "                          else the first GPU, else the CPU path\n"
    "  -t, --threads N         threads of the CPU path (default: physical cores)\n"
    "  --device-mem LIST       per-device memory budgets, e.g. 512M,512M (default: heap less a reserve)\n"
    "  --host-mem SIZE         host memory for tensors kept in RAM (default: MemAvailable)\n"
    "  --tensor-split LIST     share of layers per device, e.g. 3,1 (default: by budget)\n"
    "  -ngl, --gpu-layers N    the first N layers on devices, the rest in host memory\n"
    "  -mg, --main-device I    position in --device of the device computing host layers\n"
    "                          (default: cpu when listed, else the last)\n";

int placement_option(int argc, char **argv, int *i, vkllm_model_params *mp) {
    const char *v = NULL;
    int r;
    long long iv;
    uint32_t n;
    if ((r = arg_value(argc, argv, i, "--device", NULL, &v))) {
        if (r < 0 || !each_item("--device", v, &n, device_item, mp)) return -1;
        mp->n_devices = n;
        return 1;
    }
    if ((r = arg_value(argc, argv, i, "--device-mem", NULL, &v))) {
        return (r < 0 || !each_item("--device-mem", v, &n, mem_item, mp)) ? -1 : 1;
    }
    if ((r = arg_value(argc, argv, i, "--host-mem", NULL, &v)))
        return (r < 0 || !parse_size("--host-mem", v, &mp->host_mem)) ? -1 : 1;
    if ((r = arg_value(argc, argv, i, "--tensor-split", "-ts", &v))) {
        if (r < 0 || !each_item("--tensor-split", v, &n, split_item, mp)) return -1;
        mp->n_tensor_split = n;
        return 1;
    }
    if ((r = arg_value(argc, argv, i, "--gpu-layers", "-ngl", &v))) {
        if (r < 0 || !parse_int("--gpu-layers", v, -1, 1 << 20, &iv)) return -1;
        mp->gpu_layers = (int32_t)iv;
        return 1;
    }
    if ((r = arg_value(argc, argv, i, "--threads", "-t", &v))) {
        if (r < 0 || !parse_int("--threads", v, 0, 1024, &iv)) return -1;
        mp->n_threads = (uint32_t)iv;
        return 1;
    }
    if ((r = arg_value(argc, argv, i, "--main-device", "-mg", &v))) {
        if (r < 0 || !parse_int("--main-device", v, -1, VKLLM_MAX_DEVICES - 1, &iv)) return -1;
        mp->main_device = (int32_t)iv;
        return 1;
    }
    return 0;
}

int placement_finish(vkllm_model_params *mp) {
    const char *env = getenv("VKLLM_DEVICE");
    uint32_t n;
    if (mp->n_devices || !env || !*env) return 1;
    if (!each_item("VKLLM_DEVICE", env, &n, device_item, mp)) return 0;
    mp->n_devices = n;
    return 1;
}
