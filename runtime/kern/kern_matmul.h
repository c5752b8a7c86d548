/* The kernels that read weights of any type (runtime/format/wtype.h): matrix-vector for decode,
 * tiled matrix-matrix for prefill, and embedding lookup. They record into k->batch and split
 * a weight matrix larger than one binding (kern_max_binding) into row chunks themselves. */
#ifndef VKLLM_KERN_MATMUL_H
#define VKLLM_KERN_MATMUL_H

#include "runtime/kern/kernels.h"

/* Tuning of the matvec kernel. by_row = 0: matvec.comp, wg invocations share `rows` rows
 * (coalesced reads; for GPUs). by_row = 1: matvec_rows.comp (matvec_rows_k.comp for the
 * K-quants), each of the wg invocations owns `rows` whole rows (for CPU devices, see the
 * shaders).
 * int_dot = 1: x is first quantized to blocks of 32 int8 in k->scratch (quantize_q8.comp),
 * then matvec_idot.comp multiplies with packed 4x8-bit integer dot products; by_row chooses
 * its layout as above (0: wg invocations share `rows` rows; 1: each owns `rows` rows). Only
 * where kern_int_dot_ok says so; the result differs from the float kernels by the rounding
 * of x to 8 bits (a relative error energy of about 1e-5). */
typedef struct kern_matvec_cfg {
    uint32_t by_row;
    uint32_t wg;
    uint32_t rows;
    uint32_t int_dot;
} kern_matvec_cfg;

/* Tuning of the matmul kernel. by_row = 0: matmul.comp, a workgroup computes a bm x bn (rows
 * x tokens) tile of Y in steps of bk values, each invocation a tm x tn register tile, so the
 * workgroup has (bm/tm) * (bn/tn) invocations; bk must be a multiple of the type's decode
 * unit (8 values for the 32-element types, 16 for the K-quants, 4 for the float types).
 * by_row = 1: matvec_rows.comp / matvec_rows_k.comp, each invocation owns tm whole rows and tn
 * tokens, bm / tm invocations per workgroup; bn and bk are unused.
 * int_dot = 1: matvec_idot.comp on 8-bit activations (see kern_matvec_cfg), a workgroup per
 * tm x tn (rows x tokens) tile with each weight block decoded once for the tn tokens. by_row
 * = 1: bm / tm invocations, each with its own tm rows; by_row = 0: bm invocations share the
 * tile's rows, striding over the blocks of a row. bn and bk are unused. */
typedef struct kern_matmul_cfg {
    uint32_t by_row;
    uint32_t bm, bn, bk, tm, tn;
    uint32_t int_dot;
} kern_matmul_cfg;

/* 1 when the int_dot variants can run for this weight type on a device with these properties:
 * a quantized type (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K) and shaderIntegerDotProduct
 * (Vulkan 1.3 or VK_KHR_shader_integer_dot_product; the activations travel as 32-bit words,
 * so no 8-bit storage is needed). vkllm_device_info.integer_dot_4x8_accelerated says whether
 * the hardware has a fast path for the product, for a tuner to weigh. */
int kern_int_dot_supported(const vkllm_device_info *info, uint32_t type);
int kern_int_dot_ok(const kern_ctx *k, uint32_t type);

/* Bytes of k->scratch the int_dot variants use for n_tok tokens of cols values: from byte 0,
 * the quants (token t's block b at byte (t * cols / 32 + b) * 32, element 4i + j of the block
 * in byte j of its word i), and from the first multiple of 256 bytes after them a (d, sum of
 * q) pair of floats per block in the same order; value j of a block is d * q[j]. 0 when cols
 * is not a multiple of 32. */
uint64_t kern_int_dot_scratch_bytes(uint32_t cols, uint32_t n_tok);

/* The configurations kern_matvec / kern_matmul use on this device for this type: the
 * coalesced / tiled kernels on GPUs; on CPU devices (lavapipe) the by-row kernels, several
 * times faster there. */
kern_matvec_cfg kern_matvec_default(const kern_ctx *k, uint32_t type);
kern_matmul_cfg kern_matmul_default(const kern_ctx *k, uint32_t type);

/* y[rows] = W x. W: rows x cols of type `type` in ggml layout (row r is the contiguous run of
 * cols elements at byte w_off + r * wtype_row_bytes(type, cols)); x: cols floats at x_off;
 * y: rows floats at y_off. Offsets are bytes into each buffer and need not be binding-aligned:
 * w_off even (a multiple of 4 for f32, q4_1, q5_1, q4_K, q5_K), x_off a multiple of 16 (of 4
 * for float rows with cols % 4 != 0), y_off of 4. cols must be a multiple of the type's block
 * (any cols for f32 / f16 / bf16). */
vkllm_status kern_matvec(kern_ctx *k, uint32_t type, const vk_buf *w, uint64_t w_off,
                         const vk_buf *x, uint64_t x_off, const vk_buf *y, uint64_t y_off,
                         uint32_t rows, uint32_t cols);

/* Y[n_tok][rows] = X W^T for X [n_tok][cols] (x_off), Y row stride rows floats (y_off); W and
 * the offset rules as for kern_matvec. n_tok == 1 runs kern_matvec. */
vkllm_status kern_matmul(kern_ctx *k, uint32_t type, const vk_buf *w, uint64_t w_off,
                         const vk_buf *x, uint64_t x_off, const vk_buf *y, uint64_t y_off,
                         uint32_t rows, uint32_t cols, uint32_t n_tok);

/* out[i][dim] = dequantized row ids[i] (int32 on the device) of `table` (the whole buffer:
 * table->size / row bytes rows, ggml ne = [dim, n_vocab]). Ids outside the table give a row
 * of zeros. */
vkllm_status kern_embed(kern_ctx *k, uint32_t type, const vk_buf *table, const vk_buf *ids,
                        uint32_t n_ids, const vk_buf *out, uint32_t dim);

/* The define that selects `type` in dequant.glsl, with the elements per block the shaders
 * count (4 for the float types); NULL for a type without GPU kernels. */
const char *kern_dequant_define(uint32_t type, uint32_t *block);

/* kern_matvec / kern_matmul with an explicit configuration (benchmarks and tests). A by_row
 * configuration falls back to the other kernel where matvec_rows.comp's layout needs are not
 * met (float rows with cols % 4 != 0, weights not 4-byte aligned, rows of an odd number of
 * 2-byte-aligned blocks; the K-quants' kernel has none); kern_matmul_ex runs the configured
 * kernel even for n_tok == 1. */
vkllm_status kern_matvec_ex(kern_ctx *k, const kern_matvec_cfg *cfg, uint32_t type,
                            const vk_buf *w, uint64_t w_off, const vk_buf *x, uint64_t x_off,
                            const vk_buf *y, uint64_t y_off, uint32_t rows, uint32_t cols);
vkllm_status kern_matmul_ex(kern_ctx *k, const kern_matmul_cfg *cfg, uint32_t type,
                            const vk_buf *w, uint64_t w_off, const vk_buf *x, uint64_t x_off,
                            const vk_buf *y, uint64_t y_off, uint32_t rows, uint32_t cols,
                            uint32_t n_tok);

#endif
