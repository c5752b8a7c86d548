/* A whole decoder layer for one token in one dispatch of one workgroup (shaders/layer.comp):
 * for models whose layers are so small that a GPU (or lavapipe) spends more on starting and
 * ordering a dozen dispatches than on the work in them. Every matrix of the layer has one
 * weight type, and its nine tensors lie in one buffer. runtime/forward/gpu_forward.c uses it
 * for single-token steps when kern_layer_check accepts the shapes and the layer's weights
 * are at most KERN_LAYER_AUTO_BYTES. */
#ifndef VKLLM_KERN_LAYER_H
#define VKLLM_KERN_LAYER_H

#include <stdint.h>

#include "runtime/kern/kernels.h"

/* The layer weight bytes up to which the fused layer is chosen by default. One workgroup
 * reads them: on a GPU one compute unit at a few tens of GB/s, about the cost of the dozen
 * dispatches it replaces (a few microseconds each), and on lavapipe one core, against tens of
 * microseconds per dispatch. Larger layers go faster spread over the whole device. */
#define KERN_LAYER_AUTO_BYTES (512u * 1024u)

/* The layer's shapes. The tensors of the layer's buffer, in plan_tensor order: attention
 * norm, Wq, Wk, Wv, Wo, FFN norm, Wgate, Wup, Wdown. */
typedef struct kern_layer_shape {
    uint32_t type; /* ggml type of the seven matrices; the norms are F32 */
    uint32_t n_embd, n_head, n_head_kv, head_dim, n_ff, rot_dim;
    int neox;
    float freq_base, freq_scale, rms_eps;
} kern_layer_shape;

#define KERN_LAYER_TENSORS 9

/* VKLLM_OK when the kernel takes these shapes on k's device (weight type, sizes that fit its
 * shared memory, whole blocks per row); else VKLLM_ERR_UNSUPPORTED saying why. */
vkllm_status kern_layer_check(const kern_ctx *k, const kern_layer_shape *sh);

/* One token through the layer: x (n_embd floats at offset 0) is read and updated in place,
 * this position's K and V go to row pos of k_cache / v_cache ((n_ctx, kv_dim), f16 when
 * cache_f16, bound whole) and attention reads rows 0..pos. off[j]: byte offset of tensor j in
 * weights, a multiple of 4. With k->pos_buf the position is read from it when the batch runs
 * and pos is the largest it may hold. */
vkllm_status kern_layer(kern_ctx *k, const kern_layer_shape *sh, const vk_buf *weights,
                        const uint64_t off[KERN_LAYER_TENSORS], const vk_buf *x, const vk_buf *k_cache,
                        const vk_buf *v_cache, int cache_f16, uint32_t pos);

/* How the kernel spreads a weight product: one row per invocation (best where a workgroup runs
 * on one CPU thread, lavapipe's case) or one subgroup per row (GPUs, reads coalesced).
 * KERN_LAYER_AUTO picks by device type. */
typedef enum kern_layer_layout { KERN_LAYER_AUTO, KERN_LAYER_ROWS, KERN_LAYER_SUBGROUPS } kern_layer_layout;

/* kern_layer with the product layout chosen (tests run both on one device). */
vkllm_status kern_layer_ex(kern_ctx *k, const kern_layer_shape *sh, kern_layer_layout layout, const vk_buf *weights,
                           const uint64_t off[KERN_LAYER_TENSORS], const vk_buf *x, const vk_buf *k_cache,
                           const vk_buf *v_cache, int cache_f16, uint32_t pos);

#endif
