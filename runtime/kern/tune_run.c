/* The tuner behind vkllm_tune (include/vkllm_tune.h): for each weight type and matrix shape it
 * checks every usable variant of runtime/kern/tune.c's table against the CPU reference, times the
 * ones that match with GPU timestamps, and records per op and type the variant with the least
 * total time over the shapes (weighted by how often each shape runs) in the device's profile. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "runtime/format/gguf.h"
#include "runtime/format/wtype.h"
#include "runtime/kern/tune.h"
#include "base/util.h"
#include "vk/vk.h"
#include "vkllm_tune.h"

#define TUNE_NMSE_MAX 1e-9    /* as tests/test_kernels_matmul.c: fp32 sums against a double reference */
#define TUNE_NMSE_IDOT 6e-5   /* integer dot products round x to 8 bits first (test_kernels_matmul.c) */
#define TUNE_CHECK_MACS 4e8   /* the matmul check covers as many tokens as the reference affords... */
#define TUNE_CHECK_MIN_TOK 8  /* ...but at least these */
#define TUNE_DISTINCT_ROWS 64 /* rows quantized; the matrix repeats them, so big shapes set up fast */
#define TUNE_SLOW_FACTOR 8.0  /* a variant whose check run is this much slower than the best is not timed */
#define TUNE_NOISE 0.02       /* the built-in choice stays unless a variant beats it by more */
#define TUNE_MAX_SHAPES 64
#define TUNE_MAX_CAND 48

void vkllm_tune_params_init(vkllm_tune_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->device = -1;
}

/* A weight matrix shape and how often it runs: per token (matvec) and per prefill chunk. */
typedef struct tune_shape {
    uint32_t type, rows, cols;
    double mv_count, mm_count;
} tune_shape;

typedef struct tuner {
    const vkllm_tune_params *p;
    vk_instance *inst;
    vk_device *dev;
    const vkllm_device_info *info;
    uint32_t n_tok, reps;
    uint32_t n_shapes;
    tune_shape shapes[TUNE_MAX_SHAPES];
    cJSON *results;
    uint64_t rng;
} tuner;

static void progress(const tuner *T, const char *fmt, ...) VKL_PRINTF(2, 3);
static void progress(const tuner *T, const char *fmt, ...) {
    if (!T->p->progress) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    T->p->progress(line, T->p->progress_user);
}

static uint32_t shrink_dim(uint32_t v, uint32_t s, uint32_t mult) {
    if (s <= 1) return v;
    uint32_t r = (v + s - 1) / s;
    return (r + mult - 1) / mult * mult;
}

static vkllm_status add_shape(tuner *T, uint32_t type, uint32_t rows, uint32_t cols, double mv, double mm) {
    uint32_t s = T->p->shrink;
    rows = shrink_dim(rows, s, 1);
    cols = shrink_dim(cols, s, 256); /* a whole number of blocks of every type */
    for (uint32_t i = 0; i < T->n_shapes; i++) {
        tune_shape *x = &T->shapes[i];
        if (x->type == type && x->rows == rows && x->cols == cols) {
            x->mv_count += mv;
            x->mm_count += mm;
            return VKLLM_OK;
        }
    }
    if (T->n_shapes == TUNE_MAX_SHAPES)
        return vkl_err(VKLLM_ERR_UNSUPPORTED, "vkllm_tune: more than %d distinct matrix shapes", TUNE_MAX_SHAPES);
    T->shapes[T->n_shapes++] = (tune_shape){type, rows, cols, mv, mm};
    return VKLLM_OK;
}

/* The weight type named `name` (any case) that the GPU kernels decode, or WTYPE_COUNT. */
static uint32_t gpu_type(const char *name, size_t len) {
    for (uint32_t t = 0; t < WTYPE_COUNT; t++) {
        const wtype_traits *w = wtype_get(t);
        if (tune_type_known(t) && w && w->name && strlen(w->name) == len && !strncasecmp(w->name, name, len))
            return t;
    }
    return WTYPE_COUNT;
}

/* types == NULL: every type passes. */
static int type_listed(const char *types, uint32_t type) {
    if (!types) return 1;
    for (const char *p = types; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (gpu_type(p, len) == type) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

static vkllm_status check_types(const char *types) {
    for (const char *p = types; p && *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (gpu_type(p, len) == WTYPE_COUNT)
            return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_tune: \"%.*s\" is not a weight type the GPU kernels "
                           "decode (f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q4_K, q5_K, q6_K)", (int)len, p);
        if (!e) break;
        p = e + 1;
    }
    return VKLLM_OK;
}

/* The weight matrices of a model file: the layers' seven products run once per token and
 * once per prefill chunk, the output matrix once per token (prefill keeps the last token). */
static vkllm_status shapes_of_model(tuner *T, const char *path) {
    static const char *const per_layer[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
                                            "ffn_down"};
    gguf_file *f;
    vkllm_status st = gguf_open(path, &f);
    if (st) return st;
    int have_output = gguf_find_tensor(f, "output.weight") != NULL;
    for (uint64_t i = 0; i < gguf_tensor_count(f) && !st; i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        char name[96];
        gguf_str_c(t->name, name, sizeof name);
        if (t->n_dims != 2 || t->ne[0] > UINT32_MAX || t->ne[1] > UINT32_MAX) continue;
        double mv = 0, mm = 0;
        if (!strcmp(name, "output.weight") || (!have_output && !strcmp(name, "token_embd.weight"))) mv = 1;
        else if (!strncmp(name, "blk.", 4))
            for (size_t k = 0; k < sizeof per_layer / sizeof per_layer[0]; k++) {
                const char *dot = strchr(name + 4, '.');
                size_t n = strlen(per_layer[k]);
                if (dot && !strncmp(dot + 1, per_layer[k], n) && !strcmp(dot + 1 + n, ".weight")) mv = mm = 1;
            }
        if (mv == 0) continue;
        char tn[16] = "";
        const wtype_traits *w = wtype_get(t->type);
        if (w && w->name) snprintf(tn, sizeof tn, "%s", w->name);
        uint32_t type = gpu_type(tn, strlen(tn));
        if (type == WTYPE_COUNT || !type_listed(T->p->types, type)) continue;
        st = add_shape(T, type, (uint32_t)t->ne[1], (uint32_t)t->ne[0], mv, mm);
    }
    gguf_close(f);
    if (!st && T->n_shapes == 0)
        st = vkl_err(VKLLM_ERR_UNSUPPORTED, "vkllm_tune: %s has no weight matrix of a type to tune%s", path,
                     T->p->types ? " among the types asked for" : "");
    return st;
}

/* LLaMA 1/2 shapes: dim, FFN width, layers; vocabulary 32000, no grouped KV heads. */
static vkllm_status shapes_standard(tuner *T) {
    static const struct { const char *name; uint32_t dim, ffn, layers; } presets[] = {
        {"7b", 4096, 11008, 32}, {"13b", 5120, 13824, 40}, {"65b", 8192, 22016, 80}};
    const char *types = T->p->types ? T->p->types : "q4_0,q8_0,q4_K,q6_K";
    const char *list = T->p->shapes ? T->p->shapes : "7b";
    vkllm_status st = check_types(types);
    if (st) return st;
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        size_t k = 0;
        while (k < 3 && !(strlen(presets[k].name) == len && !strncasecmp(presets[k].name, p, len))) k++;
        if (k == 3) return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_tune: unknown shape set \"%.*s\" (7b, 13b or 65b)", (int)len, p);
        for (uint32_t t = 0; t < WTYPE_COUNT; t++) {
            if (!type_listed(types, t)) continue;
            double L = presets[k].layers;
            uint32_t d = presets[k].dim, ff = presets[k].ffn;
            if ((st = add_shape(T, t, d, d, 4 * L, 4 * L)) || (st = add_shape(T, t, ff, d, 2 * L, 2 * L)) ||
                (st = add_shape(T, t, d, ff, L, L)) || (st = add_shape(T, t, 32000, d, 1, 0)))
                return st;
        }
        if (!e) break;
        p = e + 1;
    }
    return VKLLM_OK;
}

/* ------------------------------------------------------------- measurement ---- */

/* splitmix64 in [-1, 1): the weights and activations of the measured products. */
static float rng_uniform(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)((z >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static double nmse(const float *ref, const float *got, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)ref[i] - got[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? num / den : num;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One shape's data on both sides and the reference results. */
typedef struct tune_case {
    const tune_shape *s;
    uint32_t n_tok, check_tok;
    float *ref, *got;
    vk_buf bw, bx, by;
    vk_buf scratch; /* the integer dot product variants' 8-bit x (when the type has them) */
} tune_case;

static void case_free(tuner *T, tune_case *c) {
    if (c->bw.block) vk_buf_free(T->dev, &c->bw);
    if (c->bx.block) vk_buf_free(T->dev, &c->bx);
    if (c->by.block) vk_buf_free(T->dev, &c->by);
    if (c->scratch.block) vk_buf_free(T->dev, &c->scratch);
    free(c->ref);
    free(c->got);
    memset(c, 0, sizeof *c);
}

/* op TUNE_MATVEC: one token; TUNE_MATMUL: T->n_tok tokens, the first check_tok checked. */
/* The product a variant must reproduce: each of the first n_tok tokens times every row, the
 * row decoded by its weight type's own decoder and summed in double precision (the CPU
 * reference's arithmetic; the reference itself lives in the test kit, outside the library). */
static vkllm_status reference_product(float *out, const void *w, uint32_t type, uint32_t rows, uint32_t cols,
                                      uint32_t n_tok, const float *x) {
    const wtype_traits *ti = wtype_get(type);
    float *row = malloc((size_t)cols * sizeof *row);
    if (!row) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "vkllm_tune: out of host memory for a row of %u", cols);
    uint64_t row_bytes = wtype_row_bytes(type, cols);
    for (uint32_t r = 0; r < rows; r++) {
        ti->to_float((const char *)w + r * row_bytes, row, cols);
        for (uint32_t t = 0; t < n_tok; t++) {
            const float *xt = x + (size_t)t * cols;
            double acc = 0;
            for (uint32_t i = 0; i < cols; i++) acc += (double)row[i] * xt[i];
            out[(size_t)t * rows + r] = (float)acc;
        }
    }
    free(row);
    return VKLLM_OK;
}

static vkllm_status case_init(tuner *T, const tune_shape *s, tune_op op, tune_case *c) {
    memset(c, 0, sizeof *c);
    c->s = s;
    c->n_tok = op == TUNE_MATVEC ? 1 : T->n_tok;
    double afford = TUNE_CHECK_MACS / ((double)s->rows * s->cols);
    c->check_tok = op == TUNE_MATVEC ? 1 : afford < TUNE_CHECK_MIN_TOK ? TUNE_CHECK_MIN_TOK : (uint32_t)fmin(afford, 1e6);
    if (c->check_tok > c->n_tok) c->check_tok = c->n_tok;
    uint64_t row_bytes = wtype_row_bytes(s->type, s->cols), wbytes = row_bytes * s->rows;
    uint32_t distinct = s->rows < TUNE_DISTINCT_ROWS ? s->rows : TUNE_DISTINCT_ROWS;
    size_t nx = (size_t)c->n_tok * s->cols, ny = (size_t)c->n_tok * s->rows;
    float *wf = malloc((size_t)distinct * s->cols * 4), *x = malloc(nx * 4);
    void *w = malloc(wbytes);
    c->ref = malloc((size_t)c->check_tok * s->rows * 4);
    c->got = malloc(ny * 4);
    vkllm_status st = VKLLM_OK;
    if (!wf || !x || !w || !c->ref || !c->got) {
        st = vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "vkllm_tune: out of host memory for a %ux%u matrix", s->rows, s->cols);
        goto done;
    }
    for (size_t i = 0; i < (size_t)distinct * s->cols; i++) wf[i] = rng_uniform(&T->rng);
    for (size_t i = 0; i < nx; i++) x[i] = rng_uniform(&T->rng);
    wtype_get(s->type)->from_float(wf, w, (size_t)distinct * s->cols);
    for (uint32_t r = distinct; r < s->rows; r++)
        memcpy((char *)w + r * row_bytes, (const char *)w + (r % distinct) * row_bytes, row_bytes);
    if ((st = reference_product(c->ref, w, s->type, s->rows, s->cols, c->check_tok, x)) ||
        (st = vk_buf_alloc(T->dev, VK_MEM_DEVICE, wbytes, &c->bw)) ||
        (st = vk_buf_alloc(T->dev, VK_MEM_DEVICE, nx * 4, &c->bx)) ||
        (st = vk_buf_alloc(T->dev, VK_MEM_DEVICE, ny * 4, &c->by)) ||
        (st = vk_buf_write(T->dev, &c->bw, 0, w, wbytes)) || (st = vk_buf_write(T->dev, &c->bx, 0, x, nx * 4)))
        goto done;
    uint64_t sbytes = kern_int_dot_supported(T->info, s->type) ? kern_int_dot_scratch_bytes(s->cols, c->n_tok) : 0;
    if (sbytes) st = vk_buf_alloc(T->dev, VK_MEM_DEVICE, sbytes, &c->scratch);
done:
    free(wf), free(x), free(w);
    if (st) case_free(T, c);
    return st;
}

/* Records `calls` calls of one variant and runs them; *ms = the median GPU time of a call
 * after the first (the only one when calls is 1). */
static vkllm_status run_calls(tuner *T, tune_case *c, const kern_matvec_cfg *mv, const kern_matmul_cfg *mm,
                              uint32_t calls, double *ms) {
    kern_ctx k = {.dev = T->dev, .scratch = c->scratch.block ? &c->scratch : NULL};
    vkllm_status st = vk_batch_begin(T->dev, &k.batch);
    if (st) return st;
    uint32_t per_call = 0;
    for (uint32_t r = 0; r < calls && !st; r++) {
        if (mv) st = kern_matvec_ex(&k, mv, c->s->type, &c->bw, 0, &c->bx, 0, &c->by, 0, c->s->rows, c->s->cols);
        else st = kern_matmul_ex(&k, mm, c->s->type, &c->bw, 0, &c->bx, 0, &c->by, 0, c->s->rows, c->s->cols, c->n_tok);
        if (r == 0) per_call = vk_batch_dispatch_count(k.batch);
    }
    if (!st) st = vk_batch_submit_wait(k.batch);
    if (!st) {
        uint32_t first = calls > 1 ? 1 : 0, n = calls - first;
        double t[64];
        for (uint32_t r = 0; r < n; r++) {
            t[r] = 0;
            for (uint32_t i = 0; i < per_call; i++) {
                double d = vk_batch_dispatch_ms(k.batch, (first + r) * per_call + i);
                if (d < 0) {
                    st = vkl_err(VKLLM_ERR_UNSUPPORTED, "vkllm_tune: %s gives no GPU timestamps",
                                 vk_device_label(T->dev));
                    break;
                }
                t[r] += d;
            }
        }
        qsort(t, n, sizeof t[0], cmp_double);
        *ms = t[n / 2];
    }
    vk_batch_free(k.batch);
    return st;
}

/* One candidate on one shape: -1 failed the check or could not run (reported), 0 checked but
 * too slow to be worth timing, 1 timed into *ms. */
static int measure(tuner *T, tune_case *c, const kern_matvec_cfg *mv, const kern_matmul_cfg *mm, const char *label,
                   double best_ms, int always_time, double *ms) {
    const tune_shape *s = c->s;
    const char *op = mv ? "matvec" : "matmul";
    double check_ms = 0;
    vkllm_status st = run_calls(T, c, mv, mm, 1, &check_ms);
    size_t n = (size_t)c->check_tok * s->rows;
    if (!st) st = vk_buf_read(T->dev, &c->by, 0, c->got, n * 4);
    if (st) {
        if (st == VKLLM_ERR_DEVICE_LOST || st == VKLLM_ERR_OUT_OF_MEMORY) return -2;
        progress(T, "  %s %s %ux%u: %s cannot run: %s", op, wtype_get(s->type)->name, s->rows, s->cols, label,
                 vkllm_last_error());
        return -1;
    }
    double e = nmse(c->ref, c->got, n);
    double max = (mv ? mv->int_dot : mm->int_dot) ? TUNE_NMSE_IDOT : TUNE_NMSE_MAX;
    if (!(e <= max)) {
        progress(T, "  %s %s %ux%u: %s FAILED the CPU check (nmse %.3g > %.0e); left out", op,
                 wtype_get(s->type)->name, s->rows, s->cols, label, e, max);
        return -1;
    }
    if (!always_time && best_ms > 0 && check_ms > TUNE_SLOW_FACTOR * best_ms) return 0;
    st = run_calls(T, c, mv, mm, T->reps + 1, ms);
    if (st) {
        if (st == VKLLM_ERR_DEVICE_LOST || st == VKLLM_ERR_OUT_OF_MEMORY) return -2;
        progress(T, "  %s %s: %s cannot run: %s", op, wtype_get(s->type)->name, label, vkllm_last_error());
        return -1;
    }
    return 1;
}

/* A candidate variant of one op for one type, and its totals over the shapes. */
typedef struct cand {
    kern_matvec_cfg mv;
    kern_matmul_cfg mm;
    char label[48];
    int failed;   /* failed the check (or could not run) on some shape */
    int slow;     /* too slow on some shape to be timed */
    double total; /* sum of count x ms */
} cand;

/* Tunes one op for one type over its shapes: fills row and sets the profile's choice. */
static vkllm_status tune_one(tuner *T, tune_op op, uint32_t type, tune_profile *prof, vkllm_tune_row *row) {
    cand *cs = calloc(TUNE_MAX_CAND, sizeof *cs);
    if (!cs) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "vkllm_tune: out of host memory");
    kern_ctx k = {.dev = T->dev};
    uint32_t n = 0, def = UINT32_MAX, def_outside = 0;
    if (op == TUNE_MATVEC) {
        kern_matvec_cfg d = tune_builtin_matvec(&k, type);
        for (uint32_t i = 0; i < tune_matvec_count && n < TUNE_MAX_CAND - 1; i++)
            if (tune_matvec_usable(T->info, type, &tune_matvec_variants[i])) cs[n++].mv = tune_matvec_variants[i];
        for (uint32_t i = 0; i < n; i++)
            if (tune_matvec_equal(&cs[i].mv, &d)) def = i;
        if (def == UINT32_MAX) cs[def = n++].mv = d, def_outside = 1; /* outside the table: compare anyway */
        for (uint32_t i = 0; i < n; i++) tune_matvec_label(&cs[i].mv, cs[i].label, sizeof cs[i].label);
    } else {
        kern_matmul_cfg d = tune_builtin_matmul(&k, type);
        for (uint32_t i = 0; i < tune_matmul_count && n < TUNE_MAX_CAND - 1; i++)
            if (tune_matmul_usable(T->info, type, &tune_matmul_variants[i])) cs[n++].mm = tune_matmul_variants[i];
        for (uint32_t i = 0; i < n; i++)
            if (tune_matmul_equal(&cs[i].mm, &d)) def = i;
        if (def == UINT32_MAX) cs[def = n++].mm = d, def_outside = 1;
        for (uint32_t i = 0; i < n; i++) tune_matmul_label(&cs[i].mm, cs[i].label, sizeof cs[i].label);
    }
    const char *opname = op == TUNE_MATVEC ? "matvec" : "matmul", *tname = wtype_get(type)->name;
    vkllm_status st = VKLLM_OK;
    uint32_t shapes = 0;
    for (uint32_t si = 0; si < T->n_shapes && !st; si++) {
        const tune_shape *s = &T->shapes[si];
        double count = op == TUNE_MATVEC ? s->mv_count : s->mm_count;
        if (s->type != type || count <= 0) continue;
        shapes++;
        tune_case c;
        if ((st = case_init(T, s, op, &c))) break;
        double best = -1, def_ms = -1;
        uint32_t best_i = def;
        for (uint32_t j = 0; j < n && !st; j++) {
            uint32_t i = j == 0 ? def : j == def ? 0 : j; /* the built-in choice first: a yardstick */
            if (cs[i].failed || (cs[i].slow && i != def)) continue;
            double ms = 0;
            int r = measure(T, &c, op == TUNE_MATVEC ? &cs[i].mv : NULL, op == TUNE_MATMUL ? &cs[i].mm : NULL,
                            cs[i].label, best, i == def, &ms);
            if (r == -2) st = vkl_err(VKLLM_ERR_VULKAN, "vkllm_tune: %s", vkllm_last_error());
            else if (r < 0) cs[i].failed = 1;
            else if (r == 0) cs[i].slow = 1;
            else {
                cs[i].total += count * ms;
                if (i == def) def_ms = ms;
                if (best < 0 || ms < best) best = ms, best_i = i;
            }
        }
        if (!st)
            progress(T, "%s %-5s %6ux%-6u x%-4g default %-22s %9.4f ms | best %-22s %9.4f ms", opname, tname, s->rows,
                     s->cols, count, cs[def].label, def_ms, cs[best_i].label, best);
        case_free(T, &c);
    }
    if (!st && shapes == 0) {
        row->shapes = 0; /* the op never runs on this type (an output-only type in prefill) */
    } else if (!st) {
#define IDOT(i) (op == TUNE_MATVEC ? cs[i].mv.int_dot : cs[i].mm.int_dot)
        uint32_t best = def, alt = IDOT(def) ? UINT32_MAX : def, valid = 0;
        for (uint32_t i = 0; i < n; i++) {
            if (cs[i].failed) continue;
            valid++;
            if (!cs[i].slow && cs[i].total < cs[best].total) best = i;
            if (!cs[i].slow && !IDOT(i) && (alt == UINT32_MAX || cs[i].total < cs[alt].total)) alt = i;
        }
        if (alt == UINT32_MAX) {
            st = vkl_err(VKLLM_ERR_VULKAN, "vkllm_tune: no %s variant without integer dot products passed its "
                         "check for %s", opname, tname);
        } else if (cs[def].failed) {
            st = vkl_err(VKLLM_ERR_VULKAN, "vkllm_tune: the built-in %s variant %s for %s failed its check; the "
                         "driver or the kernels are broken on this device", opname, cs[def].label, tname);
        } else {
            /* Within noise of the built-in choice: keep it. */
            if (cs[best].total > (1 - TUNE_NOISE) * cs[def].total) best = def;
            if (!IDOT(def) && cs[alt].total > (1 - TUNE_NOISE) * cs[def].total) alt = def;
            if (cs[alt].total < cs[best].total) best = alt;
            *row = (vkllm_tune_row){.variants = n, .valid = valid, .shapes = shapes, .default_ms = cs[def].total,
                                    .chosen_ms = cs[best].total, .no_int_dot_ms = cs[alt].total};
            snprintf(row->op, sizeof row->op, "%s", opname);
            snprintf(row->type, sizeof row->type, "%s", tname);
            snprintf(row->default_variant, sizeof row->default_variant, "%s", cs[def].label);
            snprintf(row->chosen_variant, sizeof row->chosen_variant, "%s", cs[best].label);
            snprintf(row->no_int_dot_variant, sizeof row->no_int_dot_variant, "%s", cs[alt].label);
            if (def_outside && (best == def || alt == def)) {
                /* A profile may only name variants of the table: leave the built-in choice. */
                if (op == TUNE_MATVEC) prof->mv_types &= ~(1u << type);
                else prof->mm_types &= ~(1u << type);
            } else if (op == TUNE_MATVEC) {
                prof->mv[type] = cs[best].mv, prof->mv_alt[type] = cs[alt].mv;
                prof->mv_types |= 1u << type;
            } else {
                prof->mm[type] = cs[best].mm, prof->mm_alt[type] = cs[alt].mm;
                prof->mm_types |= 1u << type;
            }
            cJSON *r = cJSON_CreateObject();
            if (r) {
                cJSON_AddStringToObject(r, "op", opname);
                cJSON_AddStringToObject(r, "type", tname);
                cJSON_AddStringToObject(r, "default", cs[def].label);
                cJSON_AddNumberToObject(r, "default_ms", cs[def].total);
                cJSON_AddStringToObject(r, "chosen", cs[best].label);
                cJSON_AddNumberToObject(r, "chosen_ms", cs[best].total);
                cJSON_AddStringToObject(r, "without_int_dot", cs[alt].label);
                cJSON_AddNumberToObject(r, "without_int_dot_ms", cs[alt].total);
                cJSON_AddNumberToObject(r, "shapes", shapes);
                cJSON_AddItemToArray(T->results, r);
            }
        }
    }
#undef IDOT
    free(cs);
    return st;
}

vkllm_status vkllm_tune(const vkllm_tune_params *p, vkllm_tune_result *out) {
    if (!p || !out) return vkl_err(VKLLM_ERR_INVALID_ARG, "vkllm_tune: NULL argument");
    memset(out, 0, sizeof *out);
    if (p->types) {
        vkllm_status st = check_types(p->types);
        if (st) return st;
    }
    tuner *T = calloc(1, sizeof *T);
    if (!T) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "vkllm_tune: out of host memory");
    T->p = p;
    T->rng = 0x9e3779b97f4a7c15ull;
    T->n_tok = p->n_prefill ? p->n_prefill : 64;
    T->reps = p->reps ? p->reps : 3;
    if (T->reps > 63) T->reps = 63;
    vkllm_status st = p->model ? shapes_of_model(T, p->model) : shapes_standard(T);
    if (!st) st = vk_instance_create(p->validation, &T->inst);
    if (!st) {
        uint32_t n_dev = vk_device_count(T->inst);
        uint32_t idx = p->device < 0 ? vkllm_default_device(n_dev ? vk_device_info(T->inst, 0) : NULL, n_dev)
                                     : (uint32_t)p->device;
        vk_device_opts opts = {.enable_timestamps = 1};
        if (idx >= n_dev)
            st = vkl_err(VKLLM_ERR_NO_DEVICE, "vkllm_tune: device %d does not exist (%u devices)", p->device, n_dev);
        else st = vk_device_open(T->inst, idx, &opts, &T->dev);
    }
    char path[1024] = "";
    tune_profile prof = {0};
    if (!st) {
        T->info = vk_device_props(T->dev);
        snprintf(out->device, sizeof out->device, "%s", T->info->name);
        snprintf(out->driver, sizeof out->driver, "%.100s %.150s", T->info->driver_name, T->info->driver_info);
        char dir[1024];
        if (p->out_path) snprintf(path, sizeof path, "%s", p->out_path);
        else if (!p->dry_run && (!tune_dir(dir, sizeof dir) || (mkdir(dir, 0755) && access(dir, W_OK)) ||
                                 !tune_profile_path(dir, T->info, path, sizeof path)))
            st = vkl_err(VKLLM_ERR_IO, "vkllm_tune: no writable cache folder for the profile (set VKLLM_CACHE_DIR "
                         "or VKLLM_TUNE_DIR)");
        /* Keep what an earlier profile chose for the types not tuned now. */
        if (!st && path[0] && access(path, F_OK) == 0 && tune_profile_load(path, T->info, &prof) != VKLLM_OK) {
            progress(T, "replacing the profile at %s: %s", path, vkllm_last_error());
            memset(&prof, 0, sizeof prof);
        }
        T->results = cJSON_CreateArray();
        if (!st && !T->results) st = vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "vkllm_tune: out of host memory");
    }
    if (!st) progress(T, "tuning %u matrix shapes on %s (%s), %u prefill tokens, %u timed calls each", T->n_shapes,
                      T->info->name, T->info->driver_info, T->n_tok, T->reps);
    for (uint32_t t = 0; t < WTYPE_COUNT && !st; t++) {
        int used = 0;
        for (uint32_t i = 0; i < T->n_shapes; i++) used |= T->shapes[i].type == t;
        if (!used) continue;
        for (int op = 0; op < TUNE_OP_COUNT && !st; op++) {
            if (out->n_rows == VKLLM_TUNE_MAX_ROWS) break;
            vkllm_tune_row row;
            st = tune_one(T, (tune_op)op, t, &prof, &row);
            if (!st && row.shapes) out->rows[out->n_rows++] = row;
        }
    }
    if (!st && !p->dry_run) {
        char *text = tune_profile_json(&prof, T->info, T->results);
        if (!text) st = vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "vkllm_tune: out of host memory");
        else if (!(st = tune_profile_write_text(path, text))) {
            snprintf(out->path, sizeof out->path, "%s", path);
            tune_forget(); /* this process's later loads read the new profile */
        }
        free(text);
    }
    cJSON_Delete(T->results);
    if (T->dev) vk_device_close(T->dev);
    if (T->inst) vk_instance_destroy(T->inst);
    free(T);
    return st;
}
