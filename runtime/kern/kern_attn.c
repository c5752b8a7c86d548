/* Recording of RoPE, the KV-cache write, fused attention (with its split-K plan and combine)
 * and argmax. The attention plan picks rows per workgroup, the shared-memory tile and the
 * context split from the shapes and the device limits; kern_attn_make_plan exposes it. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "runtime/kern/kern_attn.h"
#include "base/util.h"

#define WG_ROPE 256
#define WG_KV 256
#define WG_ATTN 128
#define WG_COMBINE 64
#define WG_ARGMAX 1024

#define ATTN_MAX_ROWS 16
#define ATTN_MAX_TILE 64
#define ATTN_TILE_ELEMS 4096  /* tile * head_dim cap: bigger tiles only cost shared memory */
#define ATTN_SHARED_RESERVE 1024 /* common.glsl's reduction array and driver slack */
#define ATTN_TARGET_WGS 256   /* workgroups that keep a large GPU busy */
#define ATTN_MIN_CHUNK 256    /* context positions below which splitting costs more than it gains */

/* The pipeline for shader with defines plus the context's extra defines, with the
 * workgroup size as specialization constant 0. */
static vkllm_status attn_pipeline(kern_ctx *k, const char *shader, const char *defines,
                                  uint32_t n_bind, uint32_t push, uint32_t wg, vk_pipeline **out) {
    char all[512];
    const char *extra = k->extra_defines ? k->extra_defines : "";
    int n = snprintf(all, sizeof all, "%s%s%s", defines ? defines : "",
                     (defines && *defines && *extra) ? ";" : "", extra);
    if (n < 0 || (size_t)n >= sizeof all)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "%s: defines '%s' + '%s' exceed %zu characters",
                       shader, defines ? defines : "", extra, sizeof all - 1);
    vk_pipeline_desc d = {.shader = shader, .defines = all, .n_bindings = n_bind,
                          .push_size = push, .n_spec = 1, .spec = {wg}};
    return vk_pipeline_get(k->dev, &d, out);
}

static uint32_t align_of_bindings(const kern_ctx *k) {
    uint32_t a = vk_device_props(k->dev)->min_storage_buffer_offset_alignment;
    return a ? a : 1;
}

static uint32_t div_up(uint32_t a, uint32_t b) { return (a + b - 1) / b; }

/* ------------------------------------------------------------------- rope ---- */

void kern_rope_freqs(float freq_base, float freq_scale, uint32_t rot_dim, float out[4]) {
    const double two_pi = 6.283185307179586476925;
    double f0 = (double)freq_scale / two_pi;
    double r = pow((double)freq_base, -2.0 / (double)rot_dim);
    out[0] = (float)f0;
    out[1] = (float)(f0 - (double)(float)f0);
    out[2] = (float)r;
    out[3] = (float)(r - (double)(float)r);
}

/* RoPE on x (n_heads) and, when x2 is given, on x2 (n_heads2) in the same dispatch. */
static vkllm_status rope(kern_ctx *k, const vk_buf *x, uint32_t n_heads, const vk_buf *x2, uint32_t n_heads2,
                         uint32_t n_tok, uint32_t head_dim, uint32_t rot_dim, uint32_t pos0, float freq_base,
                         float freq_scale, int neox) {
    if (rot_dim % 2 || rot_dim > head_dim)
        return vkl_err(VKLLM_ERR_INVALID_ARG,
                       "kern_rope: rotary dimension %u must be even and at most the head size %u",
                       rot_dim, head_dim);
    if (!(freq_base > 0.0f) || !isfinite(freq_scale))
        return vkl_err(VKLLM_ERR_INVALID_ARG, "kern_rope: frequency base %g / scale %g are not usable",
                       freq_base, freq_scale);
    if ((uint64_t)pos0 + n_tok > KERN_ROPE_MAX_POS)
        return vkl_err(VKLLM_ERR_UNSUPPORTED,
                       "kern_rope: positions up to %llu exceed the supported %u (2^24)",
                       (unsigned long long)pos0 + n_tok, KERN_ROPE_MAX_POS);
    if (!x2) n_heads2 = 0;
    uint64_t n = (uint64_t)n_tok * ((uint64_t)n_heads + n_heads2) * (rot_dim / 2);
    if (n == 0) return VKLLM_OK;
    if (n > UINT32_MAX)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "kern_rope: %llu rotations exceed one dispatch",
                       (unsigned long long)n);

    float fr[4];
    kern_rope_freqs(freq_base, freq_scale, rot_dim, fr);
    struct {
        uint32_t n_tok, n_heads, head_dim, rot_dim, pos0, neox;
        float f0_hi, f0_lo, r_hi, r_lo, freq_scale, log2_base;
        uint32_t n_heads2;
    } pc = {n_tok, n_heads, head_dim, rot_dim, k->pos_buf ? 0 : pos0, neox ? 1u : 0u,
            fr[0], fr[1], fr[2], fr[3], freq_scale, (float)log2((double)freq_base), n_heads2};

    char defs[64];
    snprintf(defs, sizeof defs, "%s%s%s", x2 ? "ROPE_TWO=1" : "", x2 && k->pos_buf ? ";" : "",
             k->pos_buf ? "POS_BUF=1" : "");
    uint32_t n_bind = 0;
    vk_bind bd[3];
    bd[n_bind++] = (vk_bind){x, 0, (uint64_t)n_tok * n_heads * head_dim * 4, 1};
    if (x2) bd[n_bind++] = (vk_bind){x2, 0, (uint64_t)n_tok * n_heads2 * head_dim * 4, 1};
    if (k->pos_buf) bd[n_bind++] = (vk_bind){k->pos_buf, 0, 4, 0};
    vk_pipeline *p;
    vkllm_status st = attn_pipeline(k, "rope.comp", defs, n_bind, sizeof pc, WG_ROPE, &p);
    if (st) return st;
    uint32_t gx, gy;
    kern_grid_1d(k->dev, n, WG_ROPE, &gx, &gy);
    return vk_batch_dispatch(k->batch, p, bd, n_bind, &pc, gx, gy, 1, "rope");
}

vkllm_status kern_rope(kern_ctx *k, const vk_buf *x, uint32_t n_tok, uint32_t n_heads,
                       uint32_t head_dim, uint32_t rot_dim, uint32_t pos0, float freq_base,
                       float freq_scale, int neox) {
    return rope(k, x, n_heads, NULL, 0, n_tok, head_dim, rot_dim, pos0, freq_base, freq_scale, neox);
}

vkllm_status kern_rope_qk(kern_ctx *k, const vk_buf *q, uint32_t n_head, const vk_buf *kk, uint32_t n_head_kv,
                          uint32_t n_tok, uint32_t head_dim, uint32_t rot_dim, uint32_t pos0, float freq_base,
                          float freq_scale, int neox) {
    return rope(k, q, n_head, kk, n_head_kv, n_tok, head_dim, rot_dim, pos0, freq_base, freq_scale, neox);
}

/* --------------------------------------------------------------- kv write ---- */

/* Writes src into cache and, when src2 is given, src2 into cache2 (same layout) in the same
 * dispatches. */
static vkllm_status kv_write(kern_ctx *k, const vk_buf *src, const vk_buf *cache, const vk_buf *src2,
                             const vk_buf *cache2, int cache_f16, uint32_t pos0, uint32_t n_tok,
                             uint32_t n_kv_heads, uint32_t head_dim) {
    if (head_dim == 0 || head_dim % 8)
        return vkl_err(VKLLM_ERR_UNSUPPORTED,
                       "kern_kv_write: head size %u is not a multiple of 8", head_dim);
    if (n_tok == 0 || n_kv_heads == 0) return VKLLM_OK;
    if (src2 && cache2->size != cache->size)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "kern_kv_write: the K and V caches differ in size");
    uint64_t row = (uint64_t)n_kv_heads * head_dim; /* elements per position */
    uint64_t esz = cache_f16 ? 2 : 4;
    uint64_t align = align_of_bindings(k), maxb = kern_max_binding(k);
    /* Tokens per dispatch: both the source and the (aligned-down) cache window must fit. */
    uint64_t per = maxb > 2 * align ? (maxb - 2 * align) / (row * 4) : 0;
    if (per == 0)
        return vkl_err(VKLLM_ERR_UNSUPPORTED,
                       "kern_kv_write: one position (%llu bytes) does not fit the %llu-byte binding limit",
                       (unsigned long long)(row * 4), (unsigned long long)maxb);
    int two = src2 != NULL;
    char defs[64];
    snprintf(defs, sizeof defs, "%s%s%s", cache_f16 ? "" : "CACHE_F32=1;", two ? "KV_TWO=1;" : "",
             k->pos_buf ? "POS_BUF=1" : "");
    uint32_t n_bind = (two ? 4 : 2) + (k->pos_buf ? 1 : 0);
    vk_pipeline *p;
    vkllm_status st = attn_pipeline(k, "kv_write.comp", defs, n_bind, 16, WG_KV, &p);
    if (st) return st;
    if (k->pos_buf) {
        /* Record-once decode: the whole cache bound from its start, the position read by the
         * shader; pos0 + n_tok is the furthest the recording may write. */
        uint64_t end = ((uint64_t)pos0 + n_tok) * row * esz;
        if (cache->size > maxb || (uint64_t)n_tok > per || end > cache->size)
            return vkl_err(VKLLM_ERR_UNSUPPORTED, "kern_kv_write: a %llu-byte cache (positions up to %llu) "
                           "cannot be bound whole for a recorded step", (unsigned long long)cache->size,
                           (unsigned long long)pos0 + n_tok);
    }
    for (uint32_t t0 = 0; t0 < n_tok;) {
        uint32_t nt = (uint32_t)((uint64_t)(n_tok - t0) < per ? n_tok - t0 : per);
        /* Offsets are multiples of 16 bytes (head_dim % 8 == 0); binding starts round down
         * to the device's alignment and the shader skips the difference in 16-byte units. A
         * recorded step binds the cache whole and adds the position in the shader. */
        uint64_t s_at = (uint64_t)t0 * row * 4, s_bind = s_at / align * align;
        uint64_t d_at = k->pos_buf ? 0 : ((uint64_t)pos0 + t0) * row * esz, d_bind = d_at / align * align;
        uint64_t n_el = (uint64_t)nt * row;
        uint64_t d_size = k->pos_buf ? cache->size : d_at + n_el * esz - d_bind;
        struct { uint32_t n8, dst_off, src_off, dst_per_pos; } pc = {
            (uint32_t)(n_el / 8), (uint32_t)((d_at - d_bind) / 16), (uint32_t)((s_at - s_bind) / 16),
            k->pos_buf ? (uint32_t)(row * esz / 16) : 0};
        vk_bind bd[5];
        uint32_t nb = 0;
        bd[nb++] = (vk_bind){src, s_bind, s_at + n_el * 4 - s_bind, 0};
        bd[nb++] = (vk_bind){cache, d_bind, d_size, 1};
        if (two) {
            bd[nb++] = (vk_bind){src2, s_bind, s_at + n_el * 4 - s_bind, 0};
            bd[nb++] = (vk_bind){cache2, d_bind, d_size, 1};
        }
        if (k->pos_buf) bd[nb++] = (vk_bind){k->pos_buf, 0, 4, 0};
        uint32_t gx, gy;
        kern_grid_1d(k->dev, pc.n8 * (two ? 2u : 1u), WG_KV, &gx, &gy);
        st = vk_batch_dispatch(k->batch, p, bd, nb, &pc, gx, gy, 1, "kv_write");
        if (st) return st;
        t0 += nt;
    }
    return VKLLM_OK;
}

vkllm_status kern_kv_write(kern_ctx *k, const vk_buf *src, const vk_buf *cache, int cache_f16,
                           uint32_t pos0, uint32_t n_tok, uint32_t n_kv_heads, uint32_t head_dim) {
    return kv_write(k, src, cache, NULL, NULL, cache_f16, pos0, n_tok, n_kv_heads, head_dim);
}

vkllm_status kern_kv_write_kv(kern_ctx *k, const vk_buf *src_k, const vk_buf *cache_k, const vk_buf *src_v,
                              const vk_buf *cache_v, int cache_f16, uint32_t pos0, uint32_t n_tok,
                              uint32_t n_kv_heads, uint32_t head_dim) {
    return kv_write(k, src_k, cache_k, src_v, cache_v, cache_f16, pos0, n_tok, n_kv_heads, head_dim);
}

/* -------------------------------------------------------------- attention ---- */

static uint32_t next_pow2(uint32_t v) {
    uint32_t p = 1;
    while (p < v) p <<= 1;
    return p;
}

/* Invocations of an attention workgroup: one per (row, position) of a tile where that
 * reaches 64, at most 128 (the output pairs and staging loops stride over them). */
static uint32_t attn_wg(uint32_t rows, uint32_t tile) {
    uint32_t wg = rows * tile;
    return wg < 64 ? 64 : wg > WG_ATTN ? WG_ATTN : wg;
}

/* Shared memory of attention.comp for a variant; mirrors its declarations. */
static uint64_t attn_shared_bytes(uint32_t rows, uint32_t tile, uint32_t hd) {
    return (uint64_t)rows * hd * 4                 /* sq */
           + (uint64_t)tile * (hd + 4) * 4         /* sk, padded rows */
           + (uint64_t)tile * hd * 4               /* sv */
           + (uint64_t)rows * tile * 4             /* sp */
           + (uint64_t)attn_wg(rows, tile) * 8     /* s_max, s_sum */
           + (uint64_t)rows * 12;                  /* s_alpha, s_last, s_qrow */
}

/* Bytes of the split-K partial accumulators; the (max, sum) pairs follow, aligned. */
static uint64_t attn_partial_bytes(uint32_t n_split, uint32_t n_tok, uint32_t n_head, uint32_t hd) {
    return (uint64_t)n_split * n_tok * n_head * hd * 4;
}

uint64_t kern_attn_scratch_bytes_aligned(uint32_t binding_align, uint32_t n_tok, uint32_t n_head,
                                         uint32_t head_dim, uint32_t n_split) {
    uint64_t o = vkl_align_up(attn_partial_bytes(n_split, n_tok, n_head, head_dim), binding_align ? binding_align : 1);
    return o + (uint64_t)n_split * n_tok * n_head * 8;
}

uint64_t kern_attn_scratch_bytes(const kern_ctx *k, uint32_t n_tok, uint32_t n_head,
                                 uint32_t head_dim, uint32_t n_split) {
    return kern_attn_scratch_bytes_aligned(align_of_bindings(k), n_tok, n_head, head_dim, n_split);
}

/* The largest chunk count whose partials fit in scratch_bytes. */
static uint32_t attn_splits_fitting(const kern_ctx *k, uint32_t n_tok, uint32_t n_head,
                                    uint32_t hd, uint64_t scratch_bytes) {
    uint32_t lo = 0, hi = 65535;
    while (lo < hi) { /* binary search: the size is monotonic in n_split */
        uint32_t mid = lo + (hi - lo + 1) / 2;
        if (kern_attn_scratch_bytes(k, n_tok, n_head, hd, mid) <= scratch_bytes) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

vkllm_status kern_attn_make_plan(const kern_ctx *k, uint32_t n_tok, uint32_t pos0,
                                 uint32_t n_head, uint32_t n_kv_head, uint32_t head_dim,
                                 int cache_f16, uint64_t scratch_bytes, uint32_t n_split,
                                 kern_attn_plan *out) {
    memset(out, 0, sizeof *out);
    if (n_tok == 0 || n_head == 0 || n_kv_head == 0 || n_head % n_kv_head)
        return vkl_err(VKLLM_ERR_INVALID_ARG,
                       "kern_attention: %u tokens, %u query heads over %u KV heads: need tokens, "
                       "and query heads a multiple of KV heads", n_tok, n_head, n_kv_head);
    if (head_dim == 0 || head_dim % 8 || head_dim > KERN_ATTN_MAX_HEAD_DIM)
        return vkl_err(VKLLM_ERR_UNSUPPORTED,
                       "kern_attention: head size %u is not a multiple of 8 up to %u", head_dim,
                       KERN_ATTN_MAX_HEAD_DIM);
    if ((uint64_t)pos0 + n_tok > INT32_MAX)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "kern_attention: position %llu is out of range",
                       (unsigned long long)pos0 + n_tok);
    const vkllm_device_info *info = vk_device_props(k->dev);
    uint32_t group = n_head / n_kv_head;

    /* Rows: the query heads sharing a KV head first (their K/V tiles are the same), then
     * tokens; shrink until a tile of at least 8 positions fits in shared memory. */
    uint64_t avail = info->max_shared_memory > ATTN_SHARED_RESERVE ? info->max_shared_memory - ATTN_SHARED_RESERVE : 0;
    uint32_t cap = ATTN_MAX_ROWS, hb = 0, tb = 0, rows = 0, tile = 0;
    for (; cap >= 1 && !tile; cap /= 2) {
        hb = group < cap ? group : cap;
        tb = cap / hb < n_tok ? cap / hb : n_tok;
        rows = next_pow2(hb * tb);
        for (uint32_t t = ATTN_MAX_TILE; t >= 8 && !tile; t /= 2)
            if (t * head_dim <= ATTN_TILE_ELEMS && attn_shared_bytes(rows, t, head_dim) <= avail) tile = t;
    }
    if (!tile)
        return vkl_err(VKLLM_ERR_UNSUPPORTED,
                       "kern_attention: head size %u needs %llu bytes of shared memory, the device "
                       "offers %u", head_dim, (unsigned long long)attn_shared_bytes(1, 8, head_dim),
                       info->max_shared_memory);
    out->rows = rows;
    out->heads_per_wg = hb;
    out->toks_per_wg = tb;
    out->tile = tile;
    out->wg = attn_wg(rows, tile);

    uint32_t n_vis = pos0 + n_tok; /* positions the last query sees */
    uint64_t row_bytes = (uint64_t)n_kv_head * head_dim * (cache_f16 ? 2 : 4);
    uint64_t maxb = kern_max_binding(k), align = align_of_bindings(k);
    uint32_t fit = attn_splits_fitting(k, n_tok, n_head, head_dim, scratch_bytes);
    uint64_t wgs = (uint64_t)n_kv_head * div_up(group, hb) * div_up(n_tok, tb);
    if (n_split == 0) {
        uint64_t want = (ATTN_TARGET_WGS + wgs - 1) / wgs;
        uint32_t by_len = div_up(n_vis, ATTN_MIN_CHUNK);
        if (want > by_len) want = by_len;
        if (want > KERN_ATTN_MAX_SPLIT) want = KERN_ATTN_MAX_SPLIT;
        if (want > fit) want = fit;
        n_split = want > 1 ? (uint32_t)want : 1;
    } else if (n_split > 1 && n_split > fit) {
        return vkl_err(VKLLM_ERR_INVALID_ARG,
                       "kern_attention: %u context chunks need %llu bytes of scratch, %llu given",
                       n_split, (unsigned long long)kern_attn_scratch_bytes(k, n_tok, n_head, head_dim, n_split),
                       (unsigned long long)scratch_bytes);
    }

    /* Chunks are whole tiles, and start at byte offsets a binding may start at. */
    uint32_t chunk = div_up(div_up(n_vis, n_split), tile) * tile;
    for (int i = 0; i < 256 && (chunk * row_bytes) % align; i++) chunk += tile;
    uint32_t window = 0; /* 0: the visible cache fits one binding */
    if ((uint64_t)n_vis * row_bytes > maxb) {
        /* The visible cache exceeds one binding: bind windows of whole chunks. */
        uint64_t max_chunk = maxb / row_bytes / tile * tile;
        while (max_chunk && (max_chunk * row_bytes) % align) max_chunk -= tile;
        if (chunk > max_chunk) chunk = (uint32_t)max_chunk;
        if (chunk == 0)
            return vkl_err(VKLLM_ERR_UNSUPPORTED,
                           "kern_attention: a %u-position tile of %llu-byte cache rows exceeds the "
                           "%llu-byte binding limit", tile, (unsigned long long)row_bytes,
                           (unsigned long long)maxb);
        window = (uint32_t)(maxb / row_bytes / chunk * chunk);
    }
    n_split = div_up(n_vis, chunk);
    if (window == 0) window = n_split * chunk;
    if (n_split > 1 && n_split > fit)
        return vkl_err(VKLLM_ERR_UNSUPPORTED,
                       "kern_attention: %u cached positions (%llu bytes of K) exceed the %llu-byte "
                       "binding limit; split over %u chunks it needs %llu bytes of scratch, %llu "
                       "given: pass a larger scratch buffer to kern_attention_split",
                       n_vis, (unsigned long long)(n_vis * row_bytes), (unsigned long long)maxb,
                       n_split, (unsigned long long)kern_attn_scratch_bytes(k, n_tok, n_head, head_dim, n_split),
                       (unsigned long long)scratch_bytes);
    out->n_split = n_split;
    out->chunk = chunk;
    out->window = window;
    return VKLLM_OK;
}

vkllm_status kern_attention(kern_ctx *k, const vk_buf *q, const vk_buf *k_cache,
                            const vk_buf *v_cache, int cache_f16, const vk_buf *out,
                            uint32_t n_tok, uint32_t pos0, uint32_t n_head, uint32_t n_kv_head,
                            uint32_t head_dim, float scale) {
    return kern_attention_split(k, q, k_cache, v_cache, cache_f16, out, n_tok, pos0, n_head,
                                n_kv_head, head_dim, scale, NULL, 1);
}

vkllm_status kern_attention_split(kern_ctx *k, const vk_buf *q, const vk_buf *k_cache,
                                  const vk_buf *v_cache, int cache_f16, const vk_buf *out,
                                  uint32_t n_tok, uint32_t pos0, uint32_t n_head,
                                  uint32_t n_kv_head, uint32_t head_dim, float scale,
                                  const vk_buf *scratch, uint32_t n_split) {
    kern_attn_plan pl;
    vkllm_status st = kern_attn_make_plan(k, n_tok, pos0, n_head, n_kv_head, head_dim, cache_f16,
                                          scratch ? scratch->size : 0, n_split, &pl);
    if (st) return st;
    int split = pl.n_split > 1;
    char defs[128];
    snprintf(defs, sizeof defs, "HD=%u;ROWS=%u;TILE=%u;WG_SIZE=%u%s%s%s", head_dim, pl.rows, pl.tile,
             pl.wg, cache_f16 ? "" : ";CACHE_F32=1", split ? ";SPLIT=1" : "", k->pos_buf ? ";POS_BUF=1" : "");
    struct {
        uint32_t n_tok, pos0, n_head, group, kv_stride, heads_per_wg, toks_per_wg, head_blocks;
        float scale;
        uint32_t chunk, split0, kv_base;
    } pc = {n_tok, k->pos_buf ? 0 : pos0, n_head, n_head / n_kv_head, n_kv_head * head_dim, pl.heads_per_wg,
            pl.toks_per_wg, div_up(n_head / n_kv_head, pl.heads_per_wg),
            (float)((double)scale * 1.4426950408889634074), pl.chunk, 0, 0};
    vk_pipeline *p;
    uint32_t n_bind = (split ? 5 : 4) + (k->pos_buf ? 1 : 0);
    st = attn_pipeline(k, "attention.comp", defs, n_bind, sizeof pc, pl.wg, &p);
    if (st) return st;

    uint64_t act = (uint64_t)n_tok * n_head * head_dim * 4;
    uint64_t row_bytes = (uint64_t)n_kv_head * head_dim * (cache_f16 ? 2 : 4);
    uint32_t n_vis = pos0 + n_tok;
    uint32_t gx = n_kv_head * pc.head_blocks, gy = div_up(n_tok, pl.toks_per_wg);
    /* Record-once decode binds the caches whole: the position is only known when it runs. */
    uint64_t kv_bytes = k->pos_buf ? k_cache->size : (uint64_t)n_vis * row_bytes;
    if (k->pos_buf && (k_cache->size != v_cache->size || k_cache->size > kern_max_binding(k) ||
                       (uint64_t)n_vis * row_bytes > k_cache->size))
        return vkl_err(VKLLM_ERR_UNSUPPORTED, "kern_attention: a %llu-byte cache (positions up to %u) cannot "
                       "be bound whole for a recorded step", (unsigned long long)k_cache->size, n_vis);
    if (!split) {
        vk_bind bd[5] = {{q, 0, act, 0}, {k_cache, 0, kv_bytes, 0},
                         {v_cache, 0, kv_bytes, 0}, {out, 0, act, 1}, {k->pos_buf, 0, 4, 0}};
        return vk_batch_dispatch(k->batch, p, bd, n_bind, &pc, gx, gy, 1, "attention");
    }

    uint64_t ml_off = vkl_align_up(attn_partial_bytes(pl.n_split, n_tok, n_head, head_dim), align_of_bindings(k));
    uint64_t ml_bytes = (uint64_t)pl.n_split * n_tok * n_head * 8;
    /* Windows of whole chunks, each bound where it starts; a recorded step has one window
     * over the whole cache (the whole visible cache fits one binding, so the plan has one). */
    uint32_t per_window = k->pos_buf ? pl.n_split : pl.window / pl.chunk;
    for (uint32_t s0 = 0; s0 < pl.n_split; s0 += per_window) {
        uint32_t ns = pl.n_split - s0 < per_window ? pl.n_split - s0 : per_window;
        uint32_t first = k->pos_buf ? 0 : s0 * pl.chunk;
        uint32_t last = (s0 + ns) * pl.chunk < n_vis ? (s0 + ns) * pl.chunk : n_vis;
        uint64_t bytes = k->pos_buf ? kv_bytes : (uint64_t)(last - first) * row_bytes;
        pc.split0 = s0;
        pc.kv_base = first;
        vk_bind bd[6] = {{q, 0, act, 0},
                         {k_cache, (uint64_t)first * row_bytes, bytes, 0},
                         {v_cache, (uint64_t)first * row_bytes, bytes, 0},
                         {scratch, 0, ml_off, 1},
                         {scratch, ml_off, ml_bytes, 1},
                         {k->pos_buf, 0, 4, 0}};
        st = vk_batch_dispatch(k->batch, p, bd, n_bind, &pc, gx, gy, ns, "attention_split");
        if (st) return st;
    }

    vk_pipeline *pcomb;
    struct { uint32_t n_rows, n_split, hd; } cc = {n_tok * n_head, pl.n_split, head_dim};
    st = attn_pipeline(k, "attn_combine.comp", NULL, 3, sizeof cc, WG_COMBINE, &pcomb);
    if (st) return st;
    vk_bind bc[3] = {{scratch, 0, ml_off, 0}, {scratch, ml_off, ml_bytes, 0}, {out, 0, act, 1}};
    uint32_t cx, cy;
    kern_grid_1d(k->dev, cc.n_rows, 1, &cx, &cy);
    return vk_batch_dispatch(k->batch, pcomb, bc, 3, &cc, cx, cy, 1, "attn_combine");
}

/* ----------------------------------------------------------------- argmax ---- */

vkllm_status kern_argmax(kern_ctx *k, const vk_buf *logits, uint32_t n, const vk_buf *out) {
    if (n == 0) return vkl_err(VKLLM_ERR_INVALID_ARG, "kern_argmax: the logit vector is empty");
    const vkllm_device_info *info = vk_device_props(k->dev);
    /* argmax.comp keeps one candidate per subgroup in a 128-entry array. */
    uint32_t sg = info->subgroup_min_size ? info->subgroup_min_size : info->subgroup_size;
    uint64_t by_sg = 128ull * (sg ? sg : 1);
    uint32_t wg = WG_ARGMAX;
    while (wg > 32 && (wg > info->max_workgroup_invocations || wg > info->max_workgroup_size[0] || wg > by_sg))
        wg /= 2;
    vk_pipeline *p;
    vkllm_status st = attn_pipeline(k, "argmax.comp", NULL, 2, 4, wg, &p);
    if (st) return st;
    vk_bind bd[2] = {{logits, 0, (uint64_t)n * 4, 0}, {out, 0, 4, 1}};
    return vk_batch_dispatch(k->batch, p, bd, 2, &n, 1, 1, 1, "argmax");
}
