/* Recording of the fused single-token decoder layer (shaders/layer.comp). */
#include <math.h>
#include <stdio.h>

#include "runtime/kern/kern_attn.h"
#include "runtime/kern/kern_layer.h"
#include "runtime/kern/kern_matmul.h"
#include "runtime/format/wtype.h"
#include "base/util.h"

#define WG_LAYER 256
#define LAYER_TILE_FLOATS 1024 /* layer.comp's FL_TILE_FLOATS */
#define LAYER_SHARED_RESERVE 1024 /* common.glsl's reduction array and driver slack */

static uint32_t wg_size(const kern_ctx *k) {
    const vkllm_device_info *d = vk_device_props(k->dev);
    /* lavapipe runs a workgroup on one thread, subgroup by subgroup, switching between them
     * at every barrier: one subgroup does the same work without the switches. */
    uint32_t wg = d->type == VKLLM_DEVICE_CPU && d->subgroup_size ? d->subgroup_size : WG_LAYER;
    if (d->max_workgroup_invocations && d->max_workgroup_invocations < wg) wg = d->max_workgroup_invocations;
    if (d->max_workgroup_size[0] && d->max_workgroup_size[0] < wg) wg = d->max_workgroup_size[0];
    return wg;
}

/* One row per invocation (layer.comp's FL_BY_ROW): asked for, or automatically on CPU devices. */
static int by_row(const kern_ctx *k, kern_layer_layout layout) {
    if (layout != KERN_LAYER_AUTO) return layout == KERN_LAYER_ROWS;
    return vk_device_props(k->dev)->type == VKLLM_DEVICE_CPU;
}

/* Shared floats of layer.comp for these shapes. */
static uint64_t shared_floats(const kern_layer_shape *sh) {
    uint64_t qd = (uint64_t)sh->n_head * sh->head_dim, kvd = (uint64_t)sh->n_head_kv * sh->head_dim;
    return 2ull * sh->n_embd + 2 * qd + 2 * kvd + sh->n_ff + LAYER_TILE_FLOATS + 3ull * sh->n_head;
}

vkllm_status kern_layer_check(const kern_ctx *k, const kern_layer_shape *sh) {
    uint32_t block = 0;
    const char *def = kern_dequant_define(sh->type, &block);
    const wtype_traits *tr = wtype_get(sh->type);
    if (!def) return vkl_err(VKLLM_ERR_UNSUPPORTED, "fused layer: weight type %u has no GPU kernel", sh->type);
    if (!sh->n_embd || !sh->n_head || !sh->n_head_kv || sh->n_head % sh->n_head_kv || !sh->head_dim ||
        sh->head_dim % 8 || !sh->n_ff || sh->rot_dim % 2 || sh->rot_dim > sh->head_dim)
        return vkl_err(VKLLM_ERR_UNSUPPORTED, "fused layer: unsupported head layout (%u heads, %u KV heads of %u)",
                       sh->n_head, sh->n_head_kv, sh->head_dim);
    uint64_t qd = (uint64_t)sh->n_head * sh->head_dim;
    if (sh->n_embd % block || qd % block || sh->n_ff % block)
        return vkl_err(VKLLM_ERR_UNSUPPORTED, "fused layer: rows of %u, %llu and %u values are not whole %s blocks",
                       sh->n_embd, (unsigned long long)qd, sh->n_ff, tr->name);
    if (sh->n_head > LAYER_TILE_FLOATS)
        return vkl_err(VKLLM_ERR_UNSUPPORTED, "fused layer: %u heads", sh->n_head);
    uint64_t bytes = shared_floats(sh) * 4 + LAYER_SHARED_RESERVE;
    uint32_t have = vk_device_props(k->dev)->max_shared_memory;
    if (bytes > have)
        return vkl_err(VKLLM_ERR_UNSUPPORTED, "fused layer: needs %llu bytes of shared memory, the device has %u",
                       (unsigned long long)bytes, have);
    return VKLLM_OK;
}

vkllm_status kern_layer(kern_ctx *k, const kern_layer_shape *sh, const vk_buf *weights,
                        const uint64_t off[KERN_LAYER_TENSORS], const vk_buf *x, const vk_buf *k_cache,
                        const vk_buf *v_cache, int cache_f16, uint32_t pos) {
    return kern_layer_ex(k, sh, KERN_LAYER_AUTO, weights, off, x, k_cache, v_cache, cache_f16, pos);
}

vkllm_status kern_layer_ex(kern_ctx *k, const kern_layer_shape *sh, kern_layer_layout layout, const vk_buf *weights,
                           const uint64_t off[KERN_LAYER_TENSORS], const vk_buf *x, const vk_buf *k_cache,
                           const vk_buf *v_cache, int cache_f16, uint32_t pos) {
    vkllm_status st = kern_layer_check(k, sh);
    if (st) return st;
    uint64_t qd = (uint64_t)sh->n_head * sh->head_dim, kvd = (uint64_t)sh->n_head_kv * sh->head_dim;
    /* Each tensor's extent, to check it lies inside the buffer: norms, then the matrices. */
    const uint64_t cols[KERN_LAYER_TENSORS] = {sh->n_embd, sh->n_embd, sh->n_embd, sh->n_embd, qd,
                                               sh->n_embd, sh->n_embd, sh->n_embd, sh->n_ff};
    const uint64_t rows[KERN_LAYER_TENSORS] = {1, qd, kvd, kvd, sh->n_embd, 1, sh->n_ff, sh->n_ff, sh->n_embd};
    struct {
        uint32_t w_off[7], attn_norm, ffn_norm;
        uint32_t d, n_head, n_head_kv, head_dim, ff, rot_dim, neox, pos;
        float f0_hi, f0_lo, r_hi, r_lo, eps, scale;
    } pc = {.d = sh->n_embd, .n_head = sh->n_head, .n_head_kv = sh->n_head_kv, .head_dim = sh->head_dim,
            .ff = sh->n_ff, .rot_dim = sh->rot_dim, .neox = sh->neox ? 1u : 0u, .pos = k->pos_buf ? 0 : pos,
            .eps = sh->rms_eps, .scale = 1.0f / sqrtf((float)sh->head_dim)};
    uint64_t binding = kern_max_binding(k);
    if (weights->size > binding)
        return vkl_err(VKLLM_ERR_UNSUPPORTED, "fused layer: %llu bytes of weights exceed one binding",
                       (unsigned long long)weights->size);
    for (int j = 0, m = 0; j < KERN_LAYER_TENSORS; j++) {
        int is_norm = j == 0 || j == 5;
        uint64_t bytes = is_norm ? cols[j] * 4 : wtype_row_bytes(sh->type, cols[j]) * rows[j];
        if (off[j] % 4 || off[j] + bytes > weights->size)
            return vkl_err(VKLLM_ERR_INVALID_ARG, "fused layer: tensor %d (%llu bytes at %llu) outside the "
                           "%llu-byte buffer or misaligned", j, (unsigned long long)bytes,
                           (unsigned long long)off[j], (unsigned long long)weights->size);
        if (j == 0) pc.attn_norm = (uint32_t)(off[j] / 4);
        else if (j == 5) pc.ffn_norm = (uint32_t)(off[j] / 4);
        else pc.w_off[m++] = (uint32_t)(off[j] / 2);
    }
    uint64_t cache_end = ((uint64_t)pos + 1) * kvd * (cache_f16 ? 2 : 4);
    if (cache_end > k_cache->size || k_cache->size != v_cache->size || k_cache->size > binding)
        return vkl_err(VKLLM_ERR_UNSUPPORTED, "fused layer: a %llu-byte cache (position %u) cannot be bound whole",
                       (unsigned long long)k_cache->size, pos);
    float fr[4];
    kern_rope_freqs(sh->freq_base, sh->freq_scale, sh->rot_dim ? sh->rot_dim : 2, fr);
    pc.f0_hi = fr[0];
    pc.f0_lo = fr[1];
    pc.r_hi = fr[2];
    pc.r_lo = fr[3];

    uint32_t block = 0;
    const char *type_def = kern_dequant_define(sh->type, &block);
    char defs[512];
    int n = snprintf(defs, sizeof defs, "%s;FL_D=%uu;FL_QD=%lluu;FL_KVD=%lluu;FL_FF=%uu;FL_HEADS=%uu%s%s%s%s%s",
                     type_def, sh->n_embd, (unsigned long long)qd, (unsigned long long)kvd, sh->n_ff, sh->n_head,
                     cache_f16 ? "" : ";CACHE_F32=1", by_row(k, layout) ? ";FL_BY_ROW=1" : "", k->pos_buf ? ";POS_BUF=1" : "",
                     k->extra_defines ? ";" : "", k->extra_defines ? k->extra_defines : "");
    if (n < 0 || (size_t)n >= sizeof defs) return vkl_err(VKLLM_ERR_INVALID_ARG, "fused layer: defines too long");
    uint32_t n_bind = k->pos_buf ? 5 : 4;
    vk_pipeline_desc d = {.shader = "layer.comp", .defines = defs, .n_bindings = n_bind,
                          .push_size = sizeof pc, .n_spec = 1, .spec = {wg_size(k)}};
    vk_pipeline *p;
    if ((st = vk_pipeline_get(k->dev, &d, &p))) return st;
    vk_bind bd[5] = {
        {weights, 0, weights->size, 0},
        {x, 0, (uint64_t)sh->n_embd * 4, 1},
        {k_cache, 0, k_cache->size, 1},
        {v_cache, 0, v_cache->size, 1},
        {k->pos_buf, 0, 4, 0},
    };
    return vk_batch_dispatch(k->batch, p, bd, n_bind, &pc, 1, 1, 1, "layer");
}
