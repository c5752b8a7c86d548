#version 450
// Y = X W^T for every weight type (prefill): X [n_tok][cols], Y [n_tok][rows] with row stride
// y_stride. A workgroup owns a BM-row x BN-token tile of Y. Per K step it dequantizes BK
// values of each of its BM weight rows into shared memory once, loads the matching x values
// of its BN tokens, and each invocation accumulates a TM x TN register tile in fp32.
//
// A K step walks decode units, not columns: the BK values come from BK / DQ_UNIT_VALUES
// consecutive units of a row, whose element positions (dq_elem) need not be contiguous, and
// the x tile is gathered from exactly those positions. Shared arrays are [k][m] with a row
// stride of BM + 1 (BN + 1) so both the tile stores and the inner loop avoid bank conflicts.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "dequant.glsl"

#ifndef BM
#define BM 64
#endif
#ifndef BN
#define BN 64
#endif
#ifndef BK
#define BK 32
#endif
#ifndef TM
#define TM 4
#endif
#ifndef TN
#define TN 4
#endif
#define WG_M (BM / TM) // invocations along rows; the host sets the workgroup to WG_M * WG_N
#define WG_N (BN / TN)
#define UPT (BK / DQ_UNIT_VALUES) // units per row per K step
#define SW (BM + 1)
#define SX (BN + 1)

#if BK % (4 * DQ_UV4) != 0
#error BK must be a multiple of the type's unit size
#endif

layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 1) readonly buffer X1 { float x1[]; };
#if defined(ACC_Y) || defined(GLU_Y)
layout(std430, binding = 2) buffer Y { float y[]; };
#ifdef ACC_Y
// y += W x: the residual add fused into the product (each element has one writer).
#define STORE_Y(i, v) y[i] += (v)
#else
// y = silu(y) * (W x): SwiGLU fused into the up product, y holding the gate product.
void store_glu(uint i, float v) {
    float g = y[i];
    y[i] = g / (1.0 + exp(-g)) * v;
}
#define STORE_Y(i, v) store_glu(i, v)
#endif
#else
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
#define STORE_Y(i, v) y[i] = (v)
#endif

layout(push_constant) uniform P {
    uint rows;     // rows of this dispatch
    uint cols;
    uint n_tok;    // tokens of this dispatch
    uint units;    // decode units per row
    uint row_w16;  // 16-bit words per row
    uint w_base;   // 16-bit word where row 0 starts in binding 0
    uint x_base;   // float index of token 0's x in binding 1, a multiple of 4
    uint x_stride; // floats between tokens in x
    uint y_base;   // float index of Y[0][0] in binding 2
    uint y_stride; // floats between tokens in Y
} p;

shared float ws[BK * SW];
shared float xs[BK * SX];

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint row0 = gl_WorkGroupID.x * BM, tok0 = gl_WorkGroupID.y * BN;
    uint tm = tid % WG_M, tn = tid / WG_M;

    float acc[TM][TN];
    [[unroll]] for (uint i = 0; i < TM; i++)
        [[unroll]] for (uint j = 0; j < TN; j++) acc[i][j] = 0.0;

    uint units = p.units;
#ifdef BROKEN_SKIP_LAST_BLOCK
    units -= min(units, DQ_UNITS); // deliberately wrong: tests prove they catch it
#endif
    uint n_steps = (units + UPT - 1u) / UPT;
    for (uint kt = 0; kt < n_steps; kt++) {
        uint gu0 = kt * UPT;
        for (uint idx = tid; idx < BM * UPT; idx += gl_WorkGroupSize.x) {
            uint m = idx / UPT, j = idx % UPT, gu = gu0 + j, row = row0 + m;
            vec4 v[DQ_UV4];
            if (row < p.rows && gu < units) {
                uint b = gu / DQ_UNITS;
                dq_unit(p.w_base + row * p.row_w16 + b * DQ_BLOCK_W16, gu % DQ_UNITS,
                        p.cols - b * DQ_BLOCK, v);
            } else {
                [[unroll]] for (uint i = 0; i < DQ_UV4; i++) v[i] = vec4(0.0);
            }
            [[unroll]] for (uint i = 0; i < DQ_UV4; i++) {
                uint k = j * DQ_UNIT_VALUES + 4u * i;
                ws[(k + 0u) * SW + m] = v[i].x;
                ws[(k + 1u) * SW + m] = v[i].y;
                ws[(k + 2u) * SW + m] = v[i].z;
                ws[(k + 3u) * SW + m] = v[i].w;
            }
        }
        for (uint idx = tid; idx < BN * (BK / 4); idx += gl_WorkGroupSize.x) {
            uint n = idx / (BK / 4), q = idx % (BK / 4);
            uint gu = gu0 + q / DQ_UV4, tok = tok0 + n;
            vec4 xv = vec4(0.0);
            if (tok < p.n_tok && gu < units) {
                uint col = (gu / DQ_UNITS) * DQ_BLOCK + dq_elem(gu % DQ_UNITS, q % DQ_UV4);
                uint xi = p.x_base + tok * p.x_stride + col;
#ifdef DQ_RAGGED
                uint lim = p.cols - col;
                xv = vec4(x1[xi], lim > 1u ? x1[xi + 1u] : 0.0, lim > 2u ? x1[xi + 2u] : 0.0,
                          lim > 3u ? x1[xi + 3u] : 0.0);
#else
                xv = x4[xi >> 2];
#endif
            }
            xs[(4u * q + 0u) * SX + n] = xv.x;
            xs[(4u * q + 1u) * SX + n] = xv.y;
            xs[(4u * q + 2u) * SX + n] = xv.z;
            xs[(4u * q + 3u) * SX + n] = xv.w;
        }
        barrier();
        [[unroll]] for (uint k = 0; k < BK; k++) {
            float a[TM], bx[TN];
            [[unroll]] for (uint i = 0; i < TM; i++) a[i] = ws[k * SW + tm + i * WG_M];
            [[unroll]] for (uint j = 0; j < TN; j++) bx[j] = xs[k * SX + tn + j * WG_N];
            [[unroll]] for (uint i = 0; i < TM; i++)
                [[unroll]] for (uint j = 0; j < TN; j++) acc[i][j] += a[i] * bx[j];
        }
        barrier();
    }

    [[unroll]] for (uint j = 0; j < TN; j++) {
        uint tok = tok0 + tn + j * WG_N;
        if (tok >= p.n_tok) continue;
        [[unroll]] for (uint i = 0; i < TM; i++) {
            uint row = row0 + tm + i * WG_M;
            if (row < p.rows) STORE_Y(p.y_base + tok * p.y_stride + row, acc[i][j]);
        }
    }
}
