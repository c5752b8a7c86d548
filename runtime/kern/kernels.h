/* Typed entry points for every GPU kernel: which shader and variant, its bindings, push
 * constants and grid. The forward pass and the kernel tests both record through these, so
 * each kernel's calling convention lives in exactly one place. Weight products are in
 * kern_matmul.h, attention and RoPE in kern_attn.h. */
#ifndef VKLLM_KERNELS_H
#define VKLLM_KERNELS_H

#include "vk/vk.h"

typedef struct kern_ctx {
    vk_device *dev;
    vk_batch *batch;
    /* Extra "A=1;B=2" defines appended to every variant; tests use it to build deliberately
     * broken variants. NULL in production. */
    const char *extra_defines;
    /* When nonzero, kernels that split large tensors into several bindings use this instead
     * of maxStorageBufferRange, so tests can exercise the split path with small tensors. */
    uint64_t max_binding_override;
    /* Record-once decode (runtime/forward/gpu_forward.c): when set, kern_rope, kern_kv_write and
     * kern_attention_split read the position of their first token from the first uint32 of
     * this buffer when the batch runs; their pos0 argument is then the largest position the
     * recording serves (for planning and bounds), and the caches are bound whole. */
    const vk_buf *pos_buf;
    /* When set, kern_matvec and kern_matmul add W x to y instead of overwriting it (the
     * residual add fused into the product). */
    int acc_y;
    /* When set (and acc_y is not), they store silu(y) * (W x) over y, which holds the gate
     * product: SwiGLU fused into the up product. */
    int glu_y;
    /* Device memory the caller lends to kernels that stage intermediate data, which they may
     * overwrite: the integer-dot-product matmul variants (kern_matmul.h, int_dot) quantize
     * the activations into it and need kern_int_dot_scratch_bytes of it. NULL when no
     * recorded kernel needs one; the buffer must outlive the batch. */
    const vk_buf *scratch;
} kern_ctx;

/* The largest binding a kernel may use: maxStorageBufferRange or the test override. */
uint64_t kern_max_binding(const kern_ctx *k);

typedef enum kern_binary_op { KERN_ADD, KERN_MUL } kern_binary_op;

/* out = a op b over n floats. */
vkllm_status kern_binary(kern_ctx *k, kern_binary_op op, const vk_buf *a, const vk_buf *b,
                         const vk_buf *out, uint32_t n);
/* out[r] = rmsnorm(x[r]) * w for rows r of n floats. */
vkllm_status kern_rmsnorm(kern_ctx *k, const vk_buf *x, const vk_buf *w, const vk_buf *out,
                          uint32_t rows, uint32_t n, float eps);
/* out[r] = softmax(x[r]) for rows of n floats. */
vkllm_status kern_softmax(kern_ctx *k, const vk_buf *x, const vk_buf *out, uint32_t rows, uint32_t n);
/* out = silu(gate) * up over n floats. */
vkllm_status kern_swiglu(kern_ctx *k, const vk_buf *gate, const vk_buf *up, const vk_buf *out, uint32_t n);
/* n values F32 -> F16 (to_f16) or F16 -> F32. */
vkllm_status kern_convert(kern_ctx *k, int to_f16, const vk_buf *src, const vk_buf *dst, uint32_t n);
/* Groups for n items at wg per group, folded into (gx, gy) within the device's limits. */
void kern_grid_1d(const vk_device *dev, uint64_t n, uint32_t wg, uint32_t *gx, uint32_t *gy);

#endif
