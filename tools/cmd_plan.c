/* `vkllm plan`: where a model's layers, tensors and KV cache would go on the given devices and
 * budgets, what each device would allocate, and the decode speed that placement allows. Reads
 * only the GGUF header (vkllm_plan_model), so it answers in well under a second even for
 * files far larger than the machine's memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "tools/args.h"
#include "tools/cli.h"
#include "vkllm.h"

/* Declared here until tools/cli.h lists it beside the other subcommands. */

static const char *const tensor_names[VKLLM_TENSOR_COUNT] = {
    [VKLLM_TENSOR_ATTN_NORM] = "attn_norm", [VKLLM_TENSOR_ATTN_Q] = "attn_q",
    [VKLLM_TENSOR_ATTN_K] = "attn_k",       [VKLLM_TENSOR_ATTN_V] = "attn_v",
    [VKLLM_TENSOR_ATTN_OUTPUT] = "attn_output", [VKLLM_TENSOR_FFN_NORM] = "ffn_norm",
    [VKLLM_TENSOR_FFN_GATE] = "ffn_gate",   [VKLLM_TENSOR_FFN_UP] = "ffn_up",
    [VKLLM_TENSOR_FFN_DOWN] = "ffn_down",
};

/* The matrices of a layer: a layer is "in host memory" when all of these are (its norms are
 * tiny and may stay with the device that computes it). */
static int is_matrix(int t) { return t != VKLLM_TENSOR_ATTN_NORM && t != VKLLM_TENSOR_FFN_NORM; }

static void usage(void) {
    fprintf(stderr,
            "usage: vkllm plan -m FILE [options]\n"
            "Prints where every layer, tensor and KV cache would go, what each device would\n"
            "allocate, and the decode speed that allows. Reads only the GGUF header.\n"
            "  -m, --model FILE        GGUF model\n"
            "  -c, --ctx-size N        context size to reserve the KV cache for (default: model's, at most 4096)\n"
            "  -b, --batch-size N      prompt tokens per chunk (default 512)\n"
            "  --kv-type f16|f32       KV cache type (default f16)\n"
            "%s"
            "  --measure               measure each device's read bandwidth (opens the devices; seconds)\n"
            "  --bandwidth LIST        GB/s each device reads its own memory at, e.g. 900,900\n"
            "  --host-bandwidth GBPS   GB/s the devices read host memory at (PCIe)\n"
            "  --json                  print the plan as JSON\n"
            "  --validate              enable the Vulkan validation layer\n",
            placement_usage);
}

static void fmt_bytes(char *buf, size_t cap, uint64_t b) {
    if (b >= (1ull << 30)) snprintf(buf, cap, "%.2f GiB", (double)b / (1ull << 30));
    else if (b >= (1ull << 20)) snprintf(buf, cap, "%.1f MiB", (double)b / (1ull << 20));
    else if (b >= (1ull << 10)) snprintf(buf, cap, "%.1f KiB", (double)b / (1ull << 10));
    else snprintf(buf, cap, "%llu B", (unsigned long long)b);
}

/* "A-B", or "A" for a single layer. */
static void fmt_range(char *buf, size_t cap, uint32_t first, uint32_t n) {
    if (n == 0) snprintf(buf, cap, "-");
    else if (n == 1) snprintf(buf, cap, "%u", first);
    else snprintf(buf, cap, "%u-%u", first, first + n - 1);
}

static int gbps_item(const char *opt, const char *item, uint32_t i, void *user) {
    double v;
    if (!parse_float(opt, item, &v)) return 0;
    if (v <= 0) {
        fprintf(stderr, "vkllm: %s entries must be positive GB/s, got '%s'\n", opt, item);
        return 0;
    }
    ((double *)user)[i] = v;
    return 1;
}

/* Everything read back from the plan, so the text and JSON printers share one source. */
typedef struct plan_view {
    const char *path;
    vkllm_plan_summary sum;
    vkllm_plan_device dev[VKLLM_MAX_DEVICES];
    vkllm_plan_layer *layers; /* (n_layer) */
    double host_gbps;         /* as given with --host-bandwidth; 0 = the library's nominal figure */
    uint32_t n_gbps_given;    /* devices whose bandwidth --bandwidth gave */
} plan_view;

/* 0 on success; prints what failed and returns 1 otherwise. */
static int plan_view_read(const vkllm_plan *plan, plan_view *v) {
    vkllm_plan_get_summary(plan, &v->sum);
    if (v->sum.n_devices > VKLLM_MAX_DEVICES) {
        fprintf(stderr, "vkllm: the plan lists %u devices, more than %d\n", v->sum.n_devices,
                VKLLM_MAX_DEVICES);
        return 1;
    }
    for (uint32_t i = 0; i < v->sum.n_devices; i++)
        if (vkllm_plan_get_device(plan, i, &v->dev[i])) {
            fprintf(stderr, "vkllm: reading device %u of the plan: %s\n", i, vkllm_last_error());
            return 1;
        }
    v->layers = calloc(v->sum.n_layer ? v->sum.n_layer : 1, sizeof *v->layers);
    if (!v->layers) {
        fprintf(stderr, "vkllm: out of memory reading the plan's %u layers\n", v->sum.n_layer);
        return 1;
    }
    for (uint32_t l = 0; l < v->sum.n_layer; l++)
        if (vkllm_plan_get_layer(plan, l, &v->layers[l])) {
            fprintf(stderr, "vkllm: reading layer %u of the plan: %s\n", l, vkllm_last_error());
            return 1;
        }
    return 0;
}

/* 1 when every matrix of the layer is in host memory. */
static int layer_on_host(const vkllm_plan_layer *l) {
    for (int t = 0; t < VKLLM_TENSOR_COUNT; t++)
        if (is_matrix(t) && l->where[t] != VKLLM_PLAN_HOST) return 0;
    return 1;
}

/* Bit t set: tensor t is in host memory. */
static unsigned host_mask(const vkllm_plan_layer *l) {
    unsigned m = 0;
    for (int t = 0; t < VKLLM_TENSOR_COUNT; t++)
        if (l->where[t] == VKLLM_PLAN_HOST) m |= 1u << t;
    return m;
}

static int same_placement(const vkllm_plan_layer *a, const vkllm_plan_layer *b) {
    return a->compute == b->compute && a->kv == b->kv && host_mask(a) == host_mask(b);
}

/* The device's own name: the library calls it "device N (NAME)" after its Vulkan index; the
 * text output shows the Vulkan index in a column of its own. */
static void short_name(const vkllm_plan_device *d, char *buf, size_t cap) {
    char prefix[32];
    int n = snprintf(prefix, sizeof prefix, "device %u (", d->device_index);
    size_t len = strlen(d->name);
    if (n > 0 && len > (size_t)n + 1 && !strncmp(d->name, prefix, (size_t)n) && d->name[len - 1] == ')')
        snprintf(buf, cap, "%.*s", (int)(len - (size_t)n - 1), d->name + n);
    else
        snprintf(buf, cap, "%s", d->name);
}

/* "device 1 (llvmpipe ..., Vulkan device 0)": the position in --device, which is what the
 * rest of the output counts in, and the Vulkan index when the two differ. */
static void dev_label(const plan_view *v, int32_t pos, char *buf, size_t cap) {
    if (pos < 0 || (uint32_t)pos >= v->sum.n_devices) {
        snprintf(buf, cap, "device %d", pos);
        return;
    }
    const vkllm_plan_device *d = &v->dev[pos];
    char name[256];
    short_name(d, name, sizeof name);
    if (d->device_index == (uint32_t)pos || d->device_index == VKLLM_DEVICE_CPU_INDEX)
        snprintf(buf, cap, "device %d (%s)", pos, name);
    else snprintf(buf, cap, "device %d (%s, Vulkan device %u)", pos, name, d->device_index);
}

/* ------------------------------------------------------------------ text ---- */

static void print_layer_runs(const plan_view *v) {
    uint32_t n = v->sum.n_layer;
    for (uint32_t a = 0; a < n;) {
        uint32_t b = a + 1;
        while (b < n && same_placement(&v->layers[a], &v->layers[b])) b++;
        const vkllm_plan_layer *l = &v->layers[a];
        char range[32];
        fmt_range(range, sizeof range, a, b - a);
        printf("  %s %-7s → ", b - a == 1 ? "layer " : "layers", range);
        if (layer_on_host(l)) {
            char label[320];
            dev_label(v, l->compute, label, sizeof label);
            printf("host (computed by %s)", label);
        } else {
            char label[320];
            dev_label(v, l->compute, label, sizeof label);
            printf("%s", label);
            unsigned m = host_mask(l);
            if (m) {
                printf(", with");
                int first = 1;
                for (int t = 0; t < VKLLM_TENSOR_COUNT; t++)
                    if (m & (1u << t)) printf("%s %s", first ? "" : ",", tensor_names[t]), first = 0;
                printf(" in host memory");
            }
        }
        if (l->kv == VKLLM_PLAN_HOST) printf(", KV cache in host memory");
        printf("\n");
        a = b;
    }
}

/* Whole host layers as compact ranges ("70-79, 82"), or "none". */
static void host_layer_ranges(const plan_view *v, char *buf, size_t cap, uint32_t *count) {
    size_t len = 0;
    *count = 0;
    buf[0] = 0;
    for (uint32_t a = 0; a < v->sum.n_layer;) {
        if (!layer_on_host(&v->layers[a])) {
            a++;
            continue;
        }
        uint32_t b = a + 1;
        while (b < v->sum.n_layer && layer_on_host(&v->layers[b])) b++;
        char r[32];
        fmt_range(r, sizeof r, a, b - a);
        if (len < cap) len += (size_t)snprintf(buf + len, cap - len, "%s%s", len ? ", " : "", r);
        *count += b - a;
        a = b;
    }
}

static void print_text(const plan_view *v) {
    const vkllm_plan_summary *s = &v->sum;
    char a[32], b[32], c[32], d[32], e[32], f[32];
    const char *base = strrchr(v->path, '/');
    base = base ? base + 1 : v->path;
    fmt_bytes(a, sizeof a, s->weight_bytes);
    printf("model    %s: %u layers, %s of weights, context %u (KV %s), batch %u\n", base, s->n_layer,
           a, s->n_ctx, s->kv_type == VKLLM_KV_F32 ? "f32" : "f16", s->n_batch);
    printf("\n");

    char names[VKLLM_MAX_DEVICES][256];
    int w = (int)strlen("name");
    for (uint32_t i = 0; i < s->n_devices; i++) {
        short_name(&v->dev[i], names[i], sizeof names[i]);
        int n = (int)strlen(names[i]);
        if (n > w) w = n;
    }
    if (w > 40) w = 40;
    printf("device  vk  %-*s  %10s  %10s  = %10s  + %10s  + %10s  %-7s  %s\n", w, "name", "budget",
           "used", "weights", "KV", "scratch", "layers", "host-visible");
    for (uint32_t i = 0; i < s->n_devices; i++) {
        const vkllm_plan_device *x = &v->dev[i];
        char r[32];
        int cpu = x->device_index == VKLLM_DEVICE_CPU_INDEX;
        if (cpu) snprintf(a, sizeof a, "host");
        else fmt_bytes(a, sizeof a, x->budget_bytes);
        fmt_bytes(b, sizeof b, x->used_bytes);
        fmt_bytes(c, sizeof c, x->weights_bytes);
        fmt_bytes(d, sizeof d, x->kv_bytes);
        fmt_bytes(e, sizeof e, x->scratch_bytes);
        fmt_bytes(f, sizeof f, x->host_visible_bytes);
        fmt_range(r, sizeof r, x->first_layer, x->n_layers);
        char vk[16];
        if (cpu) snprintf(vk, sizeof vk, "-");
        else snprintf(vk, sizeof vk, "%u", x->device_index);
        printf("%6u  %2s  %-*.*s  %10s  %10s  = %10s  + %10s  + %10s  %-7s  %s\n", i, vk, w,
               w, names[i], a, b, c, d, e, r, f);
    }

    uint32_t n_host_layers;
    char ranges[256];
    host_layer_ranges(v, ranges, sizeof ranges, &n_host_layers);
    fmt_bytes(a, sizeof a, s->host_bytes);
    fmt_bytes(b, sizeof b, s->host_budget_bytes);
    printf("host memory %s of %s", a, b);
    if (n_host_layers) printf(": layers %s (%u)", ranges, n_host_layers);
    if (s->host_ffn_tensors)
        printf("%s%u single FFN tensor%s", n_host_layers ? ", " : ": ", s->host_ffn_tensors,
               s->host_ffn_tensors == 1 ? "" : "s");
    if (!n_host_layers && !s->host_ffn_tensors) printf(": no weights");
    printf("\n\n");

    print_layer_runs(v);
    printf("  token embeddings on device %d, output on device %d\n", s->embd_device, s->output_device);
    printf("\n");

    fmt_bytes(a, sizeof a, s->hop_bytes_per_token);
    if (s->n_devices > 1) printf("between devices  %s per token\n", a);
    else printf("between devices  none (one device)\n");
    if (s->stream_min_batch)
        printf("prompt chunks    of %u tokens or more copy a layer's host weights to its device "
               "while the previous layer computes\n", s->stream_min_batch);
    for (uint32_t i = 0; i < s->n_devices; i++)
        if (v->dev[i].device_index == VKLLM_DEVICE_CPU_INDEX && v->dev[i].n_layers) {
            if (s->cpu_stream_min_batch)
                printf("cpu path         device %u computes its layers from the mapped file in place; prompt "
                       "chunks of %u tokens or more of them run on a card, their weights streamed\n", i,
                       s->cpu_stream_min_batch);
            else
                printf("cpu path         device %u computes its layers from the mapped file in place, "
                       "prompts and decode alike\n", i);
            break;
        }
    /* Which figures the estimate stands on: measured, given with --bandwidth and
     * --host-bandwidth, or nominal by device type. */
    int reads_host = 0;
    for (uint32_t i = 0; i < s->n_devices; i++) reads_host |= v->dev[i].host_read_bytes_per_token > 0;
    uint32_t n_given = v->n_gbps_given < s->n_devices ? v->n_gbps_given : s->n_devices;
    int all_given = n_given == s->n_devices && (!reads_host || v->host_gbps > 0);
    const char *source = s->bandwidth_measured ? "measured"
                         : all_given          ? "as given"
                         : n_given || v->host_gbps > 0 ? "given and nominal"
                                              : "nominal";
    printf("decode estimate  %.2f tokens/s (%s:", s->est_decode_tps, source);
    for (uint32_t i = 0; i < s->n_devices; i++)
        printf("%s device %u %.0f GB/s", i ? "," : "", i, v->dev[i].read_gbps);
    if (reads_host) {
        if (v->host_gbps > 0) printf(", host %.0f GB/s", v->host_gbps);
        else printf(", host memory at the nominal PCIe figure");
    }
    printf(")\n");
}

/* ------------------------------------------------------------------ JSON ---- */

static cJSON *where_json(int32_t where) {
    return where == VKLLM_PLAN_HOST ? cJSON_CreateString("host") : cJSON_CreateNumber(where);
}

static int print_json(const plan_view *v) {
    const vkllm_plan_summary *s = &v->sum;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", v->path);
    cJSON_AddNumberToObject(root, "n_layer", s->n_layer);
    cJSON_AddNumberToObject(root, "n_ctx", s->n_ctx);
    cJSON_AddNumberToObject(root, "n_batch", s->n_batch);
    cJSON_AddStringToObject(root, "kv_type", s->kv_type == VKLLM_KV_F32 ? "f32" : "f16");
    cJSON_AddNumberToObject(root, "weight_bytes", (double)s->weight_bytes);
    cJSON_AddNumberToObject(root, "gpu_layers", s->gpu_layers);
    cJSON_AddNumberToObject(root, "host_ffn_tensors", s->host_ffn_tensors);
    cJSON_AddNumberToObject(root, "embd_device", s->embd_device);
    cJSON_AddNumberToObject(root, "output_device", s->output_device);
    cJSON_AddNumberToObject(root, "host_bytes", (double)s->host_bytes);
    cJSON_AddNumberToObject(root, "host_budget_bytes", (double)s->host_budget_bytes);
    cJSON_AddNumberToObject(root, "hop_bytes_per_token", (double)s->hop_bytes_per_token);
    cJSON_AddNumberToObject(root, "est_decode_tps", s->est_decode_tps);
    cJSON_AddBoolToObject(root, "bandwidth_measured", s->bandwidth_measured);
    if (v->host_gbps > 0) cJSON_AddNumberToObject(root, "host_gbps", v->host_gbps);
    cJSON_AddNumberToObject(root, "stream_min_batch", s->stream_min_batch);
    cJSON_AddNumberToObject(root, "cpu_stream_min_batch", s->cpu_stream_min_batch);

    cJSON *devs = cJSON_AddArrayToObject(root, "devices");
    for (uint32_t i = 0; i < s->n_devices; i++) {
        const vkllm_plan_device *x = &v->dev[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", i);
        if (x->device_index == VKLLM_DEVICE_CPU_INDEX) cJSON_AddStringToObject(o, "device_index", "cpu");
        else cJSON_AddNumberToObject(o, "device_index", x->device_index);
        cJSON_AddStringToObject(o, "name", x->name);
        cJSON_AddNumberToObject(o, "budget_bytes", (double)x->budget_bytes);
        cJSON_AddNumberToObject(o, "used_bytes", (double)x->used_bytes);
        cJSON_AddNumberToObject(o, "weights_bytes", (double)x->weights_bytes);
        cJSON_AddNumberToObject(o, "kv_bytes", (double)x->kv_bytes);
        cJSON_AddNumberToObject(o, "scratch_bytes", (double)x->scratch_bytes);
        cJSON_AddNumberToObject(o, "host_visible_bytes", (double)x->host_visible_bytes);
        cJSON_AddNumberToObject(o, "host_weight_bytes", (double)x->host_weight_bytes);
        cJSON_AddNumberToObject(o, "first_layer", x->first_layer);
        cJSON_AddNumberToObject(o, "n_layers", x->n_layers);
        cJSON_AddNumberToObject(o, "read_gbps", x->read_gbps);
        cJSON_AddNumberToObject(o, "read_bytes_per_token", (double)x->read_bytes_per_token);
        cJSON_AddNumberToObject(o, "host_read_bytes_per_token", (double)x->host_read_bytes_per_token);
        cJSON_AddItemToArray(devs, o);
    }

    cJSON *layers = cJSON_AddArrayToObject(root, "layers");
    for (uint32_t l = 0; l < s->n_layer; l++) {
        const vkllm_plan_layer *x = &v->layers[l];
        int32_t where = layer_on_host(x) ? VKLLM_PLAN_HOST : x->compute;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", l);
        cJSON_AddItemToObject(o, "where", where_json(where));
        cJSON_AddNumberToObject(o, "compute", x->compute);
        cJSON_AddItemToObject(o, "kv", where_json(x->kv));
        /* Only the exceptions: tensors that are not where the layer is. */
        cJSON *t = cJSON_AddObjectToObject(o, "tensors");
        for (int k = 0; k < VKLLM_TENSOR_COUNT; k++)
            if (x->where[k] != where) cJSON_AddItemToObject(t, tensor_names[k], where_json(x->where[k]));
        cJSON_AddItemToArray(layers, o);
    }

    char *str = cJSON_Print(root);
    int ok = str != NULL;
    if (str) printf("%s\n", str);
    else fprintf(stderr, "vkllm: out of memory printing the plan as JSON\n");
    cJSON_free(str);
    cJSON_Delete(root);
    return ok ? 0 : 1;
}

int cmd_plan(int argc, char **argv) {
    const char *model = NULL;
    int json = 0;
    long long n_ctx = 0, n_batch = 0;
    double gbps[VKLLM_MAX_DEVICES];
    uint32_t n_gbps = 0;
    vkllm_model_params mp;
    vkllm_model_params_init(&mp);
    vkllm_context_params cp;
    vkllm_context_params_init(&cp);
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r;
#define OPT(name, alt) ((r = arg_value(argc, argv, &i, name, alt, &v)) != 0)
        if (OPT("-m", "--model")) { if (r < 0) return 2; model = v; }
        else if (OPT("-c", "--ctx-size")) { if (r < 0 || !parse_int("-c", v, 0, 1 << 24, &n_ctx)) return 2; }
        else if (OPT("-b", "--batch-size")) { if (r < 0 || !parse_int("-b", v, 1, 1 << 16, &n_batch)) return 2; }
        else if (OPT("--kv-type", NULL)) {
            if (r < 0) return 2;
            if (!strcmp(v, "f16")) cp.kv_type = VKLLM_KV_F16;
            else if (!strcmp(v, "f32")) cp.kv_type = VKLLM_KV_F32;
            else { fprintf(stderr, "vkllm: --kv-type takes f16 or f32\n"); return 2; }
        }
        else if (OPT("--bandwidth", NULL)) { if (r < 0 || !each_item("--bandwidth", v, &n_gbps, gbps_item, gbps)) return 2; }
        else if (OPT("--host-bandwidth", NULL)) {
            if (r < 0 || !parse_float("--host-bandwidth", v, &mp.host_gbps)) return 2;
            if (mp.host_gbps <= 0) { fprintf(stderr, "vkllm: --host-bandwidth must be positive\n"); return 2; }
        }
        else if ((r = placement_option(argc, argv, &i, &mp)) != 0) { if (r < 0) return 2; }
        else if (!strcmp(argv[i], "--measure")) mp.measure_bandwidth = 1;
        else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--validate")) mp.validation = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(); return 0; }
        else { fprintf(stderr, "vkllm plan: unknown option %s\n", argv[i]); usage(); return 2; }
#undef OPT
    }
    if (!placement_finish(&mp)) return 2;
    if (!model) {
        fprintf(stderr, "vkllm plan: -m FILE is required\n");
        usage();
        return 2;
    }
    uint32_t n_dev = mp.n_devices ? mp.n_devices : 1;
    if (n_gbps > n_dev) {
        fprintf(stderr, "vkllm: --bandwidth has %u entries for %u device%s\n", n_gbps, n_dev,
                n_dev == 1 ? "" : "s");
        return 2;
    }
    for (uint32_t i = 0; i < n_gbps; i++) mp.device_gbps[i] = gbps[i];
    cp.n_ctx = (uint32_t)n_ctx;
    cp.n_batch = (uint32_t)n_batch;
    mp.ctx = cp;

    vkllm_plan *plan = NULL;
    vkllm_status st = vkllm_plan_model(model, &mp, &cp, &plan);
    if (st) {
        fprintf(stderr, "vkllm: %s\n", vkllm_last_error());
        if (st == VKLLM_ERR_OUT_OF_MEMORY)
            fprintf(stderr, "vkllm: to make it fit: a smaller context (-c N),%s more host memory "
                            "(--host-mem SIZE), or more or larger devices (--device LIST "
                            "--device-mem LIST)\n",
                    cp.kv_type == VKLLM_KV_F32 ? " --kv-type f16," : "");
        return 1;
    }
    plan_view v = {.path = model, .host_gbps = mp.host_gbps, .n_gbps_given = n_gbps};
    int rc = 1;
    if (plan_view_read(plan, &v)) {
        /* plan_view_read said what failed */
    } else if (json) {
        rc = print_json(&v);
    } else {
        print_text(&v);
        rc = 0;
    }
    free(v.layers);
    vkllm_plan_free(plan);
    return rc;
}
