/* Recording of the weight-reading kernels (matvec.comp, matmul.comp, embed.comp): argument
 * checks, the per-type facts the shaders need, and the split of tensors larger than one
 * binding into row (and token) chunks, each bound at an aligned offset with the remainder
 * passed to the shader as a word index. */
#include <stdio.h>
#include <string.h>

#include "runtime/kern/kern_matmul.h"
#include "runtime/kern/tune.h"
#include "runtime/format/wtype.h"
#include "base/util.h"

#define MM_EMBED_WG 64
#define MM_QUANT_WG 64
/* matvec_idot.comp's reduction holds this many subgroups of each workgroup, and at most
 * IDOT_TILE_MAX rows x tokens. */
#define IDOT_MAX_SUBGROUPS 64
#define IDOT_TILE_MAX 64
/* The 8-bit activations' (d, sum) pairs start at a multiple of this in the scratch buffer:
 * the largest minStorageBufferOffsetAlignment Vulkan allows, so the layout is the same on
 * every device. */
#define IDOT_D_ALIGN 256

/* What the host needs to know of dequant.glsl's decoding of each type. */
typedef struct mm_type {
    const char *define;   /* selects the type in dequant.glsl */
    uint32_t block;       /* elements per block as the shader counts them (4 for float types) */
    uint32_t units;       /* decode units per block */
    uint32_t unit_values; /* values per unit */
    uint32_t w_align;     /* byte alignment the weight offset needs (2, or 4 for 32-bit views) */
    uint32_t elem_bytes;  /* float types: bytes per element; 0 for block types */
    uint32_t cpu_rl;      /* CPU devices: rows per invocation of matvec_rows.comp (below) */
} mm_type;

/* cpu_rl: rows per invocation of the by-row kernel on CPU devices (matvec_rows.comp, and
 * matvec_rows_k.comp for the K-quants, whose 256-element blocks would unroll into code that
 * takes lavapipe 5-100 s to compile), which trades load count (each x vec4 is loaded once per
 * cpu_rl rows) against the size of the unrolled code, i.e. lavapipe's compile time. */
static const mm_type mm_types[WTYPE_COUNT] = {
    [WTYPE_F32] = {"WTYPE_F32=1", 4, 1, 4, 4, 4, 16},
    [WTYPE_F16] = {"WTYPE_F16=1", 4, 1, 4, 2, 2, 16},
    [WTYPE_BF16] = {"WTYPE_BF16=1", 4, 1, 4, 2, 2, 16},
    [WTYPE_Q4_0] = {"WTYPE_Q4_0=1", 32, 4, 8, 2, 0, 16},
    [WTYPE_Q4_1] = {"WTYPE_Q4_1=1", 32, 4, 8, 4, 0, 16},
    [WTYPE_Q5_0] = {"WTYPE_Q5_0=1", 32, 4, 8, 2, 0, 16},
    [WTYPE_Q5_1] = {"WTYPE_Q5_1=1", 32, 4, 8, 4, 0, 16},
    [WTYPE_Q8_0] = {"WTYPE_Q8_0=1", 32, 4, 8, 2, 0, 16},
    [WTYPE_Q4_K] = {"WTYPE_Q4_K=1", 256, 16, 16, 4, 0, 8},
    [WTYPE_Q5_K] = {"WTYPE_Q5_K=1", 256, 16, 16, 4, 0, 8},
    [WTYPE_Q6_K] = {"WTYPE_Q6_K=1", 256, 16, 16, 2, 0, 8},
};

const char *kern_dequant_define(uint32_t type, uint32_t *block) {
    const mm_type *t = type < WTYPE_COUNT && wtype_get(type) ? &mm_types[type] : NULL;
    if (!t || !t->define) return NULL;
    *block = t->block;
    return t->define;
}

/* A weight matrix as the shaders see it. */
typedef struct mm_shape {
    const mm_type *t;
    uint64_t row_bytes;
    uint32_t units;  /* decode units per row */
    int ragged;      /* float type with cols % 4 != 0: the DQ_RAGGED variant */
} mm_shape;

static vkllm_status mm_shape_of(const char *who, uint32_t type, uint32_t cols, mm_shape *s) {
    const mm_type *t = type < WTYPE_COUNT ? &mm_types[type] : NULL;
    if (!t || !t->define || !wtype_get(type))
        return vkl_err(VKLLM_ERR_UNSUPPORTED, "%s: weight type %u has no GPU kernel", who, type);
    if (cols == 0) return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: a row of 0 columns", who);
    s->t = t;
    if (t->elem_bytes) {
        s->row_bytes = (uint64_t)cols * t->elem_bytes;
        s->units = (cols + 3) / 4;
        s->ragged = cols % 4 != 0;
    } else {
        if (cols % t->block)
            return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: %u columns is not a multiple of the %s block "
                           "(%u); such a tensor cannot be stored as %s", who, cols,
                           wtype_get(type)->name, t->block, wtype_get(type)->name);
        s->row_bytes = wtype_row_bytes(type, cols);
        s->units = cols / t->block * t->units;
        s->ragged = 0;
    }
    return VKLLM_OK;
}

/* Bindings start at a multiple of this; the distance back to the data goes to the shader. A
 * multiple of 16 keeps vec4 views of float data aligned. */
static uint64_t mm_granule(const kern_ctx *k) {
    uint64_t a = vk_device_props(k->dev)->min_storage_buffer_offset_alignment;
    return a > 16 ? a : 16;
}

/* The granule of a binding that may be a uniform buffer too (both alignments are powers of two). */
static uint64_t mm_ubo_granule(const kern_ctx *k) {
    uint64_t g = mm_granule(k), a = vk_device_props(k->dev)->min_uniform_buffer_offset_alignment;
    return a > g ? a : g;
}

/* Binds [off, off + size) of b from the granule g at or below off; *skip = bytes before off. */
static vk_bind mm_bind_at(uint64_t g, const vk_buf *b, uint64_t off, uint64_t size, int write, uint64_t *skip) {
    *skip = off % g;
    return (vk_bind){b, off - *skip, *skip + size, write};
}

static vk_bind mm_bind(const kern_ctx *k, const vk_buf *b, uint64_t off, uint64_t size, int write,
                       uint64_t *skip) {
    return mm_bind_at(mm_granule(k), b, off, size, write, skip);
}

/* x_load.glsl's XUBO for a by-row product of one token: the uniform buffer's size in vec4s when
 * x (cols floats from the granule below it) fits maxUniformBufferRange, capped at 64 KiB so that
 * one size serves every shape; 0 when x stays a storage buffer (LLaMA-65B's ffn rows, 88 KiB). */
static uint32_t mm_x_ubo(const kern_ctx *k, uint32_t cols) {
    uint64_t range = vk_device_props(k->dev)->max_uniform_buffer_range;
    if (range > 65536) range = 65536;
    return (uint64_t)cols * 4 + mm_ubo_granule(k) <= range ? (uint32_t)(range / 16) : 0;
}

static vkllm_status mm_check_range(const char *who, const char *what, const vk_buf *b, uint64_t off,
                                   uint64_t count, uint64_t elem) {
    uint64_t bytes, end;
    if (!b || !b->block) return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: %s buffer is not allocated", who, what);
    if (!vkl_mul_u64(count, elem, &bytes) || !vkl_add_u64(off, bytes, &end) || end > b->size)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: %s needs bytes [%llu, +%llu x %llu) but its buffer "
                       "holds %llu", who, what, (unsigned long long)off, (unsigned long long)count,
                       (unsigned long long)elem, (unsigned long long)b->size);
    return VKLLM_OK;
}

static vkllm_status mm_check_offsets(const char *who, const mm_shape *s, uint64_t w_off, uint64_t x_off,
                                     uint64_t y_off) {
    if (w_off % s->t->w_align)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: weight offset %llu is not a multiple of %u bytes",
                       who, (unsigned long long)w_off, s->t->w_align);
    uint64_t xa = s->ragged ? 4 : 16;
    if (x_off % xa)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: x offset %llu is not a multiple of %llu bytes",
                       who, (unsigned long long)x_off, (unsigned long long)xa);
    if (y_off % 4)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: y offset %llu is not a multiple of 4 bytes", who,
                       (unsigned long long)y_off);
    return VKLLM_OK;
}

static vkllm_status mm_pipeline(kern_ctx *k, const char *shader, const mm_shape *s, const char *more,
                                uint32_t n_bind, uint32_t uniform_mask, uint32_t push, uint32_t wg,
                                vk_pipeline **out) {
    char defines[512];
    int n = snprintf(defines, sizeof defines, "%s%s%s%s%s%s%s", s->t->define, s->ragged ? ";DQ_RAGGED=1" : "",
                     more ? ";" : "", more ? more : "", k->acc_y ? ";ACC_Y=1" : k->glu_y ? ";GLU_Y=1" : "", k->extra_defines ? ";" : "",
                     k->extra_defines ? k->extra_defines : "");
    if (n < 0 || (size_t)n >= sizeof defines)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: defines too long (%d bytes)", shader, n);
    vk_pipeline_desc d = {.shader = shader, .defines = defines, .n_bindings = n_bind,
                          .uniform_mask = uniform_mask,
                          .push_size = push, .n_spec = 1, .spec = {wg}};
    return vk_pipeline_get(k->dev, &d, out);
}

/* Rows of W, from row r0, that fit one binding starting at the granule below their start. */
static uint32_t mm_chunk_rows(const kern_ctx *k, uint64_t w_off, uint64_t row_bytes, uint32_t r0,
                              uint32_t rows_left) {
    uint64_t maxb = kern_max_binding(k), skip = (w_off + (uint64_t)r0 * row_bytes) % mm_granule(k);
    uint64_t n = maxb > skip ? (maxb - skip) / row_bytes : 0;
    return n < rows_left ? (uint32_t)n : rows_left;
}

/* GPUs get the coalesced kernels; CPU devices (lavapipe) the row-per-invocation kernel where
 * the type has one, which is several times faster there (see matvec_rows.comp). */
static int mm_cpu_by_row(const kern_ctx *k, uint32_t type) {
    return vk_device_props(k->dev)->type == VKLLM_DEVICE_CPU && type < WTYPE_COUNT && mm_types[type].cpu_rl;
}

kern_matvec_cfg kern_matvec_default(const kern_ctx *k, uint32_t type) {
    kern_matvec_cfg tuned; /* the device's tuning profile first (runtime/kern/tune.c) */
    if (tune_lookup_matvec(k, type, &tuned)) return tuned;
    if (mm_cpu_by_row(k, type)) return (kern_matvec_cfg){.by_row = 1, .wg = 8, .rows = mm_types[type].cpu_rl};
    return (kern_matvec_cfg){.wg = 64, .rows = 2};
}

/* The tiled kernel's tile: on CPU devices a shallower K step, which halves lavapipe's compile
 * time for it (the unrolled K loop dominates) at little cost there. */
static kern_matmul_cfg mm_tiled_default(const kern_ctx *k) {
    uint32_t bk = vk_device_props(k->dev)->type == VKLLM_DEVICE_CPU ? 16 : 32;
    return (kern_matmul_cfg){.bm = 64, .bn = 64, .bk = bk, .tm = 4, .tn = 4};
}

kern_matmul_cfg kern_matmul_default(const kern_ctx *k, uint32_t type) {
    kern_matmul_cfg tuned; /* the device's tuning profile first (runtime/kern/tune.c) */
    if (tune_lookup_matmul(k, type, &tuned)) return tuned;
    if (mm_cpu_by_row(k, type)) return (kern_matmul_cfg){.by_row = 1, .bm = 128, .tm = 16, .tn = 16};
    return mm_tiled_default(k);
}

/* Which shader records a product, with its tiling. */
typedef enum mm_kernel { MM_MATVEC, MM_TILED, MM_BY_ROW, MM_IDOT } mm_kernel;

typedef struct mm_plan {
    mm_kernel kernel;
    vk_pipeline *pipe;
    vk_pipeline *quant;    /* MM_IDOT: quantize_q8.comp */
    uint32_t wg;           /* invocations per workgroup */
    uint32_t tile_rows;    /* rows per workgroup */
    uint32_t tile_tok;     /* tokens per workgroup */
    uint32_t group;        /* MM_BY_ROW: blocks per register load */
    uint32_t x_ubo;        /* MM_BY_ROW: x is a uniform buffer of this many vec4s (0: storage) */
} mm_plan;

/* The K-quants' by-row kernel, matvec_rows_k.comp, loops over each 256-element super-block
 * instead of unrolling it, and reads any 2-byte-aligned layout. */
static int mm_is_k(const mm_shape *s) { return s->t->block == 256; }

/* Whether matvec_rows.comp may read this matrix's weights 64 bits at a time (LOAD64): every
 * load a lavapipe lane makes costs about the same whatever its width up to 64 bits, so that
 * halves the cost of reading the weights (Q4_0 decode: 1.4x on the 542M shape). Needs
 * shaderInt64 and rows that start and end on 8-byte boundaries. Decode only: the matmul
 * variants load each weight once per several tokens and are slow enough to compile. Not for
 * the K-quants' kernel: pairs of words there doubled its unrolled body, and Q4_K's default
 * 8 rows per invocation ran 1.35x slower. x is read 64 bits at a time (X64) by both by-row
 * kernels wherever the device has shaderInt64, or for one token from a uniform buffer (XUBO,
 * x_load.glsl) where it fits one. */
static int mm_load64(const kern_ctx *k, const mm_shape *s, uint64_t w_off, uint32_t nt) {
    return nt == 1 && vk_device_props(k->dev)->shader_int64 && !s->ragged && !mm_is_k(s) && w_off % 8 == 0 &&
           s->row_bytes % 8 == 0;
}

/* Blocks per register load for matvec_rows.comp (1 for matvec_rows_k.comp), or 0 when it does
 * not serve the type or this layout: the row start and length must be 4-byte multiples and the
 * row a whole number of groups; with load64 (mm_load64) a group is a whole number of 8-byte
 * words where the row allows. */
static uint32_t mm_by_row_group(const mm_shape *s, uint32_t cols, uint64_t w_off, int load64) {
    if (s->t->cpu_rl && mm_is_k(s)) return 1;
    if (!s->t->cpu_rl || s->ragged || w_off % 4 || s->row_bytes % 4) return 0;
    uint32_t blocks = s->units / s->t->units;
    uint32_t bytes = s->t->elem_bytes ? 4 * s->t->elem_bytes : (uint32_t)(s->row_bytes / (cols / s->t->block));
    if (load64)
        for (uint32_t g = s->t->elem_bytes ? 4 : 1; g <= 4; g *= 2)
            if (g * bytes % 8 == 0 && blocks % g == 0) return g;
    uint32_t need = bytes % 4 ? 2 : 1;
    /* Float blocks are 4 values: load 16 at a time. One choice per type where possible, so a
     * model compiles one variant. */
    uint32_t pref = s->t->elem_bytes ? 4 : need;
    if (blocks % pref == 0) return pref;
    return blocks % need == 0 ? need : 0;
}

static const char *mm_by_row_shader(const mm_shape *s) {
    return mm_is_k(s) ? "matvec_rows_k.comp" : "matvec_rows.comp";
}

/* K_PAIRS: blocks that are not whole words (Q6_K's 210 bytes) alternate between starting on a
 * word and 2 bytes past one when every row starts on a word; matvec_rows_k.comp then compiles
 * each case on its own instead of testing every row's alignment. */
static void mm_by_row_defines(const mm_shape *s, uint32_t group, uint32_t rl, uint32_t nt, uint64_t w_off,
                              int load64, int x64_ok, uint32_t x_ubo, char *out, size_t n) {
    uint64_t block_bytes = s->row_bytes / (s->units / s->t->units);
    int pairs = block_bytes % 4 != 0 && w_off % 4 == 0 && s->row_bytes % 4 == 0;
    const char *l64 = load64 && group * block_bytes % 8 == 0 ? ";LOAD64=1" : "";
    char xd[32];
    if (x_ubo) snprintf(xd, sizeof xd, ";XUBO=%u", x_ubo);
    else snprintf(xd, sizeof xd, "%s", x64_ok ? ";X64=1" : "");
    if (mm_is_k(s)) snprintf(out, n, "RL=%u;NT=%u%s%s%s", rl, nt, pairs ? ";K_PAIRS=1" : "", l64, xd);
    else snprintf(out, n, "GROUP=%u;RL=%u;NT=%u%s%s", group, rl, nt, l64, xd);
}

int kern_int_dot_supported(const vkllm_device_info *info, uint32_t type) {
    if (!info || !info->integer_dot_product || type >= WTYPE_COUNT) return 0;
    const mm_type *t = &mm_types[type];
    return t->define && t->elem_bytes == 0 && t->block % 32 == 0;
}

int kern_int_dot_ok(const kern_ctx *k, uint32_t type) {
    return kern_int_dot_supported(vk_device_props(k->dev), type);
}

/* Byte offset of the (d, sum) pairs in the scratch: after the quants, aligned. */
static uint64_t idot_d_offset(uint32_t cols, uint32_t n_tok) {
    uint64_t q = (uint64_t)cols * n_tok;
    return (q + IDOT_D_ALIGN - 1) / IDOT_D_ALIGN * IDOT_D_ALIGN;
}

uint64_t kern_int_dot_scratch_bytes(uint32_t cols, uint32_t n_tok) {
    if (cols == 0 || cols % 32) return 0;
    /* At most 2^32 * 2^32 quants: no uint64 overflow here. */
    return idot_d_offset(cols, n_tok) + (uint64_t)cols / 32 * n_tok * 8;
}

/* matvec_idot.comp with `wg` invocations per workgroup and nt tokens, each invocation owning
 * rl whole rows (by_row) or all of them sharing rl rows. By row, the 32-value types load
 * GROUP blocks into registers with 32-bit loads where the layout allows (mm_by_row_group). */
static vkllm_status mm_plan_idot(kern_ctx *k, const char *who, uint32_t type, const mm_shape *s, uint32_t cols,
                                 uint64_t w_off, uint32_t by_row, uint32_t wg, uint32_t rl, uint32_t nt,
                                 mm_plan *pl) {
    const vkllm_device_info *info = vk_device_props(k->dev);
    if (!kern_int_dot_supported(info, type)) {
        if (s->t->elem_bytes || !info->integer_dot_product)
            return vkl_err(VKLLM_ERR_UNSUPPORTED, "%s: integer dot products %s", who,
                           s->t->elem_bytes ? "serve the quantized weight types only, not float weights"
                                            : "need shaderIntegerDotProduct, which this device lacks");
        return vkl_err(VKLLM_ERR_UNSUPPORTED, "%s: weight type %s has no integer dot product kernel", who,
                       wtype_get(type)->name);
    }
    uint32_t sg = info->subgroup_min_size ? info->subgroup_min_size : 1;
    if (wg == 0 || wg > info->max_workgroup_invocations || wg > info->max_workgroup_size[0] || rl == 0 ||
        nt == 0 || (uint64_t)rl * nt > IDOT_TILE_MAX || (!by_row && (wg + sg - 1) / sg > IDOT_MAX_SUBGROUPS))
        return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: integer dot configuration (%s, %u invocations, %u rows x %u "
                       "tokens) is out of range: at most %u rows x tokens%s", who, by_row ? "by row" : "shared rows",
                       wg, rl, nt, IDOT_TILE_MAX, by_row ? "" : " and 64 subgroups a workgroup");
    char more[64];
    uint32_t group = by_row && !mm_is_k(s) ? mm_by_row_group(s, cols, w_off, 0) : 0;
    snprintf(more, sizeof more, "ROWS=%u;NT=%u%s", rl, nt, by_row ? ";BY_ROW=1" : "");
    if (group) snprintf(more + strlen(more), sizeof more - strlen(more), ";GROUP=%u", group);
    *pl = (mm_plan){MM_IDOT, NULL, NULL, wg, by_row ? wg * rl : rl, nt, 0, 0};
    vkllm_status st = mm_pipeline(k, "matvec_idot.comp", s, more, 4, 0, 9 * 4, wg, &pl->pipe);
    if (st) return st;
    /* One quantizer for every weight type: only the caller's extra defines. */
    vk_pipeline_desc d = {.shader = "quantize_q8.comp", .defines = k->extra_defines, .n_bindings = 3,
                          .push_size = 4 * 4, .n_spec = 1, .spec = {MM_QUANT_WG}};
    return vk_pipeline_get(k->dev, &d, &pl->quant);
}

static vkllm_status mm_plan_matvec(kern_ctx *k, const kern_matvec_cfg *cfg, uint32_t type, const mm_shape *s,
                                   uint32_t cols, uint64_t w_off, mm_plan *pl) {
    if (cfg->wg == 0 || cfg->wg > vk_device_props(k->dev)->max_workgroup_invocations || cfg->rows == 0 ||
        cfg->rows > 64)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "kern_matvec: configuration by_row %u wg %u rows %u is out of "
                       "range", cfg->by_row, cfg->wg, cfg->rows);
    if (cfg->int_dot)
        return mm_plan_idot(k, "kern_matvec", type, s, cols, w_off, cfg->by_row, cfg->wg, cfg->rows, 1, pl);
    char more[64];
    int load64 = mm_load64(k, s, w_off, 1);
    uint32_t group = cfg->by_row ? mm_by_row_group(s, cols, w_off, load64) : 0;
    if (group) {
        uint32_t x_ubo = mm_x_ubo(k, cols);
        mm_by_row_defines(s, group, cfg->rows, 1, w_off, load64, vk_device_props(k->dev)->shader_int64, x_ubo,
                          more, sizeof more);
        *pl = (mm_plan){MM_BY_ROW, NULL, NULL, cfg->wg, cfg->wg * cfg->rows, 1, group, x_ubo};
        return mm_pipeline(k, mm_by_row_shader(s), s, more, 3, x_ubo ? 2u : 0u, 9 * 4, cfg->wg, &pl->pipe);
    }
    uint32_t rows = cfg->by_row ? 2 : cfg->rows, wg = cfg->by_row ? 64 : cfg->wg;
    snprintf(more, sizeof more, "ROWS=%u", rows);
    *pl = (mm_plan){MM_MATVEC, NULL, NULL, wg, rows, 1, 0, 0};
    return mm_pipeline(k, "matvec.comp", s, more, 3, 0, 7 * 4, wg, &pl->pipe);
}

static vkllm_status mm_plan_matmul(kern_ctx *k, const kern_matmul_cfg *c, uint32_t type, const mm_shape *s,
                                   uint32_t cols, uint64_t w_off, mm_plan *pl) {
    const vkllm_device_info *info = vk_device_props(k->dev);
    char more[96];
    if (c->int_dot) {
        if (!c->tm || !c->tn || (c->by_row && (!c->bm || c->bm % c->tm)))
            return vkl_err(VKLLM_ERR_INVALID_ARG, "kern_matmul: integer dot configuration bm %u tm %u tn %u: tm "
                           "and tn must be nonzero%s", c->bm, c->tm, c->tn, c->by_row ? ", bm a multiple of tm" : "");
        return mm_plan_idot(k, "kern_matmul", type, s, cols, w_off, c->by_row, c->by_row ? c->bm / c->tm : c->bm,
                            c->tm, c->tn, pl);
    }
    uint32_t group = c->by_row ? mm_by_row_group(s, cols, w_off, 0) : 0;
    if (c->by_row) {
        if (!c->tm || !c->tn || c->tm > 64 || c->tn > 64 || c->bm % c->tm || !c->bm ||
            c->bm / c->tm > info->max_workgroup_invocations)
            return vkl_err(VKLLM_ERR_INVALID_ARG, "kern_matmul: by_row configuration bm %u tm %u tn %u is out "
                           "of range", c->bm, c->tm, c->tn);
        if (group) {
            uint32_t wg = c->bm / c->tm;
            /* x stays a storage buffer: with several tokens the products, not the x loads,
             * bound the time (a uniform x at 4 tokens a tile ran no faster). */
            mm_by_row_defines(s, group, c->tm, c->tn, w_off, mm_load64(k, s, w_off, c->tn),
                              vk_device_props(k->dev)->shader_int64, 0, more, sizeof more);
            *pl = (mm_plan){MM_BY_ROW, NULL, NULL, wg, c->bm, c->tn, group, 0};
            return mm_pipeline(k, mm_by_row_shader(s), s, more, 3, 0, 9 * 4, wg, &pl->pipe);
        }
        kern_matmul_cfg tiled = mm_tiled_default(k);
        return mm_plan_matmul(k, &tiled, type, s, cols, w_off, pl);
    }
    if (!c->tm || !c->tn || !c->bk || c->bm % c->tm || c->bn % c->tn || c->bk % s->t->unit_values)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "kern_matmul: tile bm %u bn %u bk %u tm %u tn %u: bm, bn "
                       "must be multiples of tm, tn and bk of the type's unit (%u values)", c->bm, c->bn,
                       c->bk, c->tm, c->tn, s->t->unit_values);
    uint64_t wg = (uint64_t)(c->bm / c->tm) * (c->bn / c->tn);
    uint64_t shared = (uint64_t)c->bk * (c->bm + 1 + c->bn + 1) * 4 + 128 * 4; /* + common.glsl */
    if (wg == 0 || wg > info->max_workgroup_invocations || wg > info->max_workgroup_size[0] ||
        shared > info->max_shared_memory)
        return vkl_err(VKLLM_ERR_UNSUPPORTED, "kern_matmul: tile bm %u bn %u bk %u tm %u tn %u needs %llu "
                       "invocations and %llu bytes of shared memory; the device allows %u and %u",
                       c->bm, c->bn, c->bk, c->tm, c->tn, (unsigned long long)wg,
                       (unsigned long long)shared, info->max_workgroup_invocations, info->max_shared_memory);
    snprintf(more, sizeof more, "BM=%u;BN=%u;BK=%u;TM=%u;TN=%u", c->bm, c->bn, c->bk, c->tm, c->tn);
    *pl = (mm_plan){MM_TILED, NULL, NULL, (uint32_t)wg, c->bm, c->bn, 0, 0};
    return mm_pipeline(k, "matmul.comp", s, more, 3, 0, 10 * 4, (uint32_t)wg, &pl->pipe);
}

/* Records Y = X W^T (n_tok == 1: y = W x) with the planned kernel, in token chunks and row
 * chunks small enough for one binding each. */
static vkllm_status mm_record(kern_ctx *k, const char *who, const mm_plan *pl, const mm_shape *s,
                              const vk_buf *w, uint64_t w_off, const vk_buf *x, uint64_t x_off,
                              const vk_buf *y, uint64_t y_off, uint32_t rows, uint32_t cols, uint32_t n_tok) {
    uint64_t maxb = kern_max_binding(k), g = mm_granule(k);
    uint64_t per_tok = (uint64_t)(cols > rows ? cols : rows) * 4;
    uint64_t nt_max = maxb > g ? (maxb - g) / per_tok : 0;
    if (nt_max == 0)
        return vkl_err(VKLLM_ERR_UNSUPPORTED, "%s: one token's x or y (%llu bytes) exceeds the binding "
                       "limit (%llu bytes)", who, (unsigned long long)per_tok, (unsigned long long)maxb);
    if (nt_max > pl->tile_tok) nt_max -= nt_max % pl->tile_tok;
    const char *label = pl->kernel == MM_TILED ? "matmul" : n_tok > 1 ? "matmul_rows" : "matvec";

    for (uint32_t t0 = 0, nt; t0 < n_tok; t0 += nt) {
        nt = n_tok - t0 < nt_max ? n_tok - t0 : (uint32_t)nt_max;
        uint64_t xskip, wskip, yskip;
        vk_bind bx = mm_bind_at(pl->x_ubo ? mm_ubo_granule(k) : g, x, x_off + (uint64_t)t0 * cols * 4,
                                (uint64_t)nt * cols * 4, 0, &xskip);
        for (uint32_t r0 = 0, cr; r0 < rows; r0 += cr) {
            cr = mm_chunk_rows(k, w_off, s->row_bytes, r0, rows - r0);
            if (cr == 0)
                return vkl_err(VKLLM_ERR_UNSUPPORTED, "%s: one row of %llu bytes exceeds the binding limit "
                               "(%llu bytes)", who, (unsigned long long)s->row_bytes, (unsigned long long)maxb);
            if (cr < rows - r0 && cr > pl->tile_rows) cr -= cr % pl->tile_rows; /* whole tiles but the last */
            uint64_t y_first = (uint64_t)t0 * rows + r0, y_n = (uint64_t)(nt - 1) * rows + cr;
            vk_bind bd[3] = {
                mm_bind(k, w, w_off + (uint64_t)r0 * s->row_bytes, (uint64_t)cr * s->row_bytes, 0, &wskip), bx,
                mm_bind(k, y, y_off + y_first * 4, y_n * 4, 1, &yskip)};
            uint32_t row_w16 = (uint32_t)(s->row_bytes / 2), w_base = (uint32_t)(wskip / 2);
            uint32_t x_base = (uint32_t)(xskip / 4), y_base = (uint32_t)(yskip / 4);
            uint32_t pc[10], gx, gy;
            if (pl->kernel == MM_MATVEC) {
                uint32_t v[7] = {cr, cols, s->units, row_w16, w_base, x_base, y_base};
                memcpy(pc, v, sizeof v);
                kern_grid_1d(k->dev, cr, pl->tile_rows, &gx, &gy);
            } else if (pl->kernel == MM_TILED) {
                uint32_t v[10] = {cr, cols, nt, s->units, row_w16, w_base, x_base, cols, y_base, rows};
                memcpy(pc, v, sizeof v);
                gx = (cr + pl->tile_rows - 1) / pl->tile_rows;
                gy = (nt + pl->tile_tok - 1) / pl->tile_tok;
            } else {
                uint32_t v[9] = {cr, nt, s->units / s->t->units / pl->group, row_w16, w_base, x_base, cols, y_base, rows};
                memcpy(pc, v, sizeof v);
                gx = (cr + pl->tile_rows - 1) / pl->tile_rows;
                gy = (nt + pl->tile_tok - 1) / pl->tile_tok;
            }
            vkllm_status st = vk_batch_dispatch(k->batch, pl->pipe, bd, 3, pc, gx, gy, 1, label);
            if (st) return st;
        }
    }
    return VKLLM_OK;
}

/* Records Y = X W^T with matvec_idot.comp: per token chunk, quantize_q8.comp turns X into
 * 8-bit blocks in k->scratch (quants at the chunk's first token, (d, sum) pairs after the
 * whole run's quants), then the product reads them per row chunk. */
static vkllm_status mm_record_idot(kern_ctx *k, const char *who, const mm_plan *pl, const mm_shape *s,
                                   const vk_buf *w, uint64_t w_off, const vk_buf *x, uint64_t x_off,
                                   const vk_buf *y, uint64_t y_off, uint32_t rows, uint32_t cols, uint32_t n_tok) {
    uint64_t need = kern_int_dot_scratch_bytes(cols, n_tok);
    if (!k->scratch || !k->scratch->block || k->scratch->size < need)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: the integer dot product variant needs %llu bytes of scratch "
                       "for %u tokens of %u values; the kernel context lends %llu", who, (unsigned long long)need,
                       n_tok, cols, (unsigned long long)(k->scratch && k->scratch->block ? k->scratch->size : 0));
    const vk_buf *sc = k->scratch;
    uint64_t maxb = kern_max_binding(k), g = mm_granule(k), d_off = idot_d_offset(cols, n_tok);
    uint64_t per_tok = (uint64_t)(cols > rows ? cols : rows) * 4, blocks = cols / 32;
    uint64_t nt_max = maxb > g ? (maxb - g) / per_tok : 0;
    if (nt_max == 0)
        return vkl_err(VKLLM_ERR_UNSUPPORTED, "%s: one token's x or y (%llu bytes) exceeds the binding "
                       "limit (%llu bytes)", who, (unsigned long long)per_tok, (unsigned long long)maxb);
    /* Whole tiles of tokens, and no more token groups than a dispatch may have. */
    uint64_t nt_groups = vk_device_props(k->dev)->max_workgroup_count[2];
    if (nt_max > nt_groups * pl->tile_tok) nt_max = nt_groups * pl->tile_tok;
    if (nt_max > pl->tile_tok) nt_max -= nt_max % pl->tile_tok;
    const char *label = n_tok > 1 ? "matmul_idot" : "matvec_idot";

    for (uint32_t t0 = 0, nt; t0 < n_tok; t0 += nt) {
        nt = n_tok - t0 < nt_max ? n_tok - t0 : (uint32_t)nt_max;
        uint64_t xskip, qskip, dskip, wskip, yskip, n_blocks = nt * blocks;
        vk_bind bq[3] = {mm_bind(k, x, x_off + (uint64_t)t0 * cols * 4, (uint64_t)nt * cols * 4, 0, &xskip),
                         mm_bind(k, sc, (uint64_t)t0 * cols, n_blocks * 32, 1, &qskip),
                         mm_bind(k, sc, d_off + (uint64_t)t0 * blocks * 8, n_blocks * 8, 1, &dskip)};
        uint32_t qpc[4] = {(uint32_t)n_blocks, (uint32_t)(xskip / 16), (uint32_t)(qskip / 16), (uint32_t)(dskip / 8)};
        uint32_t gx, gy;
        kern_grid_1d(k->dev, n_blocks, MM_QUANT_WG, &gx, &gy);
        vkllm_status st = vk_batch_dispatch(k->batch, pl->quant, bq, 3, qpc, gx, gy, 1, "quantize_q8");
        if (st) return st;
        bq[1].write = bq[2].write = 0;
        for (uint32_t r0 = 0, cr; r0 < rows; r0 += cr) {
            cr = mm_chunk_rows(k, w_off, s->row_bytes, r0, rows - r0);
            if (cr == 0)
                return vkl_err(VKLLM_ERR_UNSUPPORTED, "%s: one row of %llu bytes exceeds the binding limit "
                               "(%llu bytes)", who, (unsigned long long)s->row_bytes, (unsigned long long)maxb);
            if (cr < rows - r0 && cr > pl->tile_rows) cr -= cr % pl->tile_rows;
            uint64_t y_first = (uint64_t)t0 * rows + r0, y_n = (uint64_t)(nt - 1) * rows + cr;
            vk_bind bd[4] = {
                mm_bind(k, w, w_off + (uint64_t)r0 * s->row_bytes, (uint64_t)cr * s->row_bytes, 0, &wskip),
                bq[1], bq[2], mm_bind(k, y, y_off + y_first * 4, y_n * 4, 1, &yskip)};
            uint32_t pc[9] = {cr, nt, (uint32_t)blocks, (uint32_t)(s->row_bytes / 2), (uint32_t)(wskip / 2),
                              (uint32_t)(qskip / 16), (uint32_t)(dskip / 8), (uint32_t)(yskip / 4), rows};
            kern_grid_1d(k->dev, cr, pl->tile_rows, &gx, &gy);
            uint32_t gz = (nt + pl->tile_tok - 1) / pl->tile_tok;
            if ((st = vk_batch_dispatch(k->batch, pl->pipe, bd, 4, pc, gx, gy, gz, label))) return st;
        }
    }
    return VKLLM_OK;
}

vkllm_status kern_matvec_ex(kern_ctx *k, const kern_matvec_cfg *cfg, uint32_t type,
                            const vk_buf *w, uint64_t w_off, const vk_buf *x, uint64_t x_off,
                            const vk_buf *y, uint64_t y_off, uint32_t rows, uint32_t cols) {
    static const char who[] = "kern_matvec";
    mm_shape s = {0};
    mm_plan pl;
    vkllm_status st = mm_shape_of(who, type, cols, &s);
    if (st) return st;
    if (rows == 0) return VKLLM_OK;
    if ((st = mm_check_offsets(who, &s, w_off, x_off, y_off)) ||
        (st = mm_check_range(who, "W", w, w_off, rows, s.row_bytes)) ||
        (st = mm_check_range(who, "x", x, x_off, cols, 4)) ||
        (st = mm_check_range(who, "y", y, y_off, rows, 4)) || (st = mm_plan_matvec(k, cfg, type, &s, cols, w_off, &pl)))
        return st;
    if (pl.kernel == MM_IDOT) return mm_record_idot(k, who, &pl, &s, w, w_off, x, x_off, y, y_off, rows, cols, 1);
    return mm_record(k, who, &pl, &s, w, w_off, x, x_off, y, y_off, rows, cols, 1);
}

vkllm_status kern_matvec(kern_ctx *k, uint32_t type, const vk_buf *w, uint64_t w_off,
                         const vk_buf *x, uint64_t x_off, const vk_buf *y, uint64_t y_off,
                         uint32_t rows, uint32_t cols) {
    kern_matvec_cfg cfg = kern_matvec_default(k, type);
    return kern_matvec_ex(k, &cfg, type, w, w_off, x, x_off, y, y_off, rows, cols);
}

vkllm_status kern_matmul_ex(kern_ctx *k, const kern_matmul_cfg *cfg, uint32_t type,
                            const vk_buf *w, uint64_t w_off, const vk_buf *x, uint64_t x_off,
                            const vk_buf *y, uint64_t y_off, uint32_t rows, uint32_t cols,
                            uint32_t n_tok) {
    static const char who[] = "kern_matmul";
    mm_shape s = {0};
    mm_plan pl;
    vkllm_status st = mm_shape_of(who, type, cols, &s);
    if (st) return st;
    if (rows == 0 || n_tok == 0) return VKLLM_OK;
    uint64_t y_count, x_count;
    if (!vkl_mul_u64(rows, n_tok, &y_count) || !vkl_mul_u64(cols, n_tok, &x_count))
        return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: size overflow", who);
    if ((st = mm_check_offsets(who, &s, w_off, x_off, y_off)) ||
        (st = mm_check_range(who, "W", w, w_off, rows, s.row_bytes)) ||
        (st = mm_check_range(who, "X", x, x_off, x_count, 4)) ||
        (st = mm_check_range(who, "Y", y, y_off, y_count, 4)) || (st = mm_plan_matmul(k, cfg, type, &s, cols, w_off, &pl)))
        return st;
    if (pl.kernel == MM_IDOT)
        return mm_record_idot(k, who, &pl, &s, w, w_off, x, x_off, y, y_off, rows, cols, n_tok);
    return mm_record(k, who, &pl, &s, w, w_off, x, x_off, y, y_off, rows, cols, n_tok);
}

vkllm_status kern_matmul(kern_ctx *k, uint32_t type, const vk_buf *w, uint64_t w_off,
                         const vk_buf *x, uint64_t x_off, const vk_buf *y, uint64_t y_off,
                         uint32_t rows, uint32_t cols, uint32_t n_tok) {
    if (n_tok == 1) return kern_matvec(k, type, w, w_off, x, x_off, y, y_off, rows, cols);
    kern_matmul_cfg cfg = kern_matmul_default(k, type);
    return kern_matmul_ex(k, &cfg, type, w, w_off, x, x_off, y, y_off, rows, cols, n_tok);
}

vkllm_status kern_embed(kern_ctx *k, uint32_t type, const vk_buf *table, const vk_buf *ids,
                        uint32_t n_ids, const vk_buf *out, uint32_t dim) {
    static const char who[] = "kern_embed";
    mm_shape s = {0};
    vkllm_status st = mm_shape_of(who, type, dim, &s);
    if (st) return st;
    if (n_ids == 0) return VKLLM_OK;
    if (!table || !table->block) return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: table is not allocated", who);
    uint64_t n_vocab = table->size / s.row_bytes;
    if (n_vocab == 0 || n_vocab > UINT32_MAX)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: a table of %llu bytes holds %llu rows of %llu bytes",
                       who, (unsigned long long)table->size, (unsigned long long)n_vocab,
                       (unsigned long long)s.row_bytes);
    uint64_t out_count;
    if (!vkl_mul_u64(n_ids, dim, &out_count)) return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: size overflow", who);
    if ((st = mm_check_range(who, "ids", ids, 0, n_ids, 4)) || (st = mm_check_range(who, "out", out, 0, out_count, 4)))
        return st;

    uint64_t maxb = kern_max_binding(k), g = mm_granule(k);
    uint64_t ni_max = maxb > g ? (maxb - g) / ((uint64_t)dim * 4) : 0;
    if (ni_max == 0 || s.units == 0)
        return vkl_err(VKLLM_ERR_UNSUPPORTED, "%s: one row of %u floats exceeds the binding limit", who, dim);
    /* Keep each dispatch's invocation count within 32 bits. */
    if (ni_max > UINT32_MAX / s.units) ni_max = UINT32_MAX / s.units;

    vk_pipeline *p;
    if ((st = mm_pipeline(k, "embed.comp", &s, NULL, 3, 0, 11 * 4, MM_EMBED_WG, &p))) return st;

    for (uint32_t i0 = 0, ni; i0 < n_ids; i0 += ni) {
        ni = n_ids - i0 < ni_max ? n_ids - i0 : (uint32_t)ni_max;
        uint64_t iskip, oskip, wskip;
        vk_bind bi = mm_bind(k, ids, (uint64_t)i0 * 4, (uint64_t)ni * 4, 0, &iskip);
        vk_bind bo = mm_bind(k, out, (uint64_t)i0 * dim * 4, (uint64_t)ni * dim * 4, 1, &oskip);
        for (uint32_t r0 = 0, cr; r0 < n_vocab; r0 += cr) {
            cr = mm_chunk_rows(k, 0, s.row_bytes, r0, (uint32_t)(n_vocab - r0));
            if (cr == 0)
                return vkl_err(VKLLM_ERR_UNSUPPORTED, "%s: one row of %llu bytes exceeds the binding limit",
                               who, (unsigned long long)s.row_bytes);
            vk_bind bd[3] = {mm_bind(k, table, (uint64_t)r0 * s.row_bytes, (uint64_t)cr * s.row_bytes, 0, &wskip),
                             bi, bo};
            uint32_t pc[11] = {ni, dim, s.units, (uint32_t)(s.row_bytes / 2), (uint32_t)(wskip / 2), r0, cr,
                               (uint32_t)n_vocab, r0 == 0, (uint32_t)(iskip / 4), (uint32_t)(oskip / 4)};
            uint32_t gx, gy;
            kern_grid_1d(k->dev, (uint64_t)ni * s.units, MM_EMBED_WG, &gx, &gy);
            if ((st = vk_batch_dispatch(k->batch, p, bd, 3, pc, gx, gy, 1, "embed"))) return st;
        }
    }
    return VKLLM_OK;
}
