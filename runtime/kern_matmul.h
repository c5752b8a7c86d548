/* The kernels that read weights of any type (runtime/wtype.h): matrix-vector for decode,
 * tiled matrix-matrix for prefill, and embedding lookup. They record into k->batch and split
 * a weight matrix larger than one binding (kern_max_binding) into row chunks themselves. */
#ifndef VKLLM_KERN_MATMUL_H
#define VKLLM_KERN_MATMUL_H

#include "runtime/kernels.h"

/* Tuning of the matvec kernel. by_row = 0: matvec.comp, wg invocations share `rows` rows
 * (coalesced reads; for GPUs). by_row = 1: matvec_rows.comp (matvec_rows_k.comp for the
 * K-quants), each of the wg invocations owns `rows` whole rows (for CPU devices, see the
 * shaders). */
typedef struct kern_matvec_cfg {
    uint32_t by_row;
    uint32_t wg;
    uint32_t rows;
} kern_matvec_cfg;

/* Tuning of the matmul kernel. by_row = 0: matmul.comp, a workgroup computes a bm x bn (rows
 * x tokens) tile of Y in steps of bk values, each invocation a tm x tn register tile, so the
 * workgroup has (bm/tm) * (bn/tn) invocations; bk must be a multiple of the type's decode
 * unit (8 values for the 32-element types, 16 for the K-quants, 4 for the float types).
 * by_row = 1: matvec_rows.comp / matvec_rows_k.comp, each invocation owns tm whole rows and tn
 * tokens, bm / tm invocations per workgroup; bn and bk are unused. */
typedef struct kern_matmul_cfg {
    uint32_t by_row;
    uint32_t bm, bn, bk, tm, tn;
} kern_matmul_cfg;

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
