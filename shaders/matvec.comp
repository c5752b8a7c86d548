#version 450
// y = W x for every weight type (decode): W row-major in ggml layout, one workgroup per ROWS
// rows. Invocations stride over the decode units of a row, so neighbours read neighbouring
// words; each x vec4 is loaded once and reused for all ROWS rows; partial sums meet in one
// subgroup + shared-memory reduction. Accumulates in fp32.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "dequant.glsl"

#ifndef ROWS
#define ROWS 2
#endif
// Subgroups a workgroup may hold: 1024 invocations / the smallest subgroup (8) we run on.
#define MV_MAX_SUBGROUPS 128

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
    uint rows;    // rows of this dispatch
    uint cols;
    uint units;   // decode units per row
    uint row_w16; // 16-bit words per row
    uint w_base;  // 16-bit word where row 0 starts in binding 0
    uint x_base;  // float index of x[0] in binding 1, a multiple of 4
    uint y_base;  // float index of y[0] in binding 2
} p;

shared float mv_red[ROWS * MV_MAX_SUBGROUPS];

void main() {
    uint wg = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    uint row0 = wg * ROWS;
    if (row0 >= p.rows) return; // the whole workgroup leaves together
    uint tid = gl_LocalInvocationID.x;

    uint wrow[ROWS];
    float acc[ROWS];
    [[unroll]] for (uint r = 0; r < ROWS; r++) {
        // Rows past the end re-read the last row; their sums are never stored.
        wrow[r] = p.w_base + min(row0 + r, p.rows - 1u) * p.row_w16;
        acc[r] = 0.0;
    }

    uint units = p.units;
#ifdef BROKEN_SKIP_LAST_BLOCK
    units -= min(units, DQ_UNITS); // deliberately wrong: tests prove they catch it
#endif
    for (uint u = tid; u < units; u += gl_WorkGroupSize.x) {
        uint b = u / DQ_UNITS, uu = u % DQ_UNITS;
        uint xb = p.x_base + b * DQ_BLOCK;
        vec4 xv[DQ_UV4];
        uint lim = 4u;
#ifdef DQ_RAGGED
        lim = p.cols - b * DQ_BLOCK;
        xv[0] = vec4(x1[xb], lim > 1u ? x1[xb + 1u] : 0.0, lim > 2u ? x1[xb + 2u] : 0.0,
                     lim > 3u ? x1[xb + 3u] : 0.0);
#else
        [[unroll]] for (uint i = 0; i < DQ_UV4; i++) xv[i] = x4[(xb + dq_elem(uu, i)) >> 2];
#endif
        [[unroll]] for (uint r = 0; r < ROWS; r++) {
            vec4 v[DQ_UV4];
            dq_unit(wrow[r] + b * DQ_BLOCK_W16, uu, lim, v);
            [[unroll]] for (uint i = 0; i < DQ_UV4; i++) acc[r] += dot(v[i], xv[i]);
        }
    }

    [[unroll]] for (uint r = 0; r < ROWS; r++) acc[r] = subgroupAdd(acc[r]);
    if (subgroupElect()) {
        [[unroll]] for (uint r = 0; r < ROWS; r++) mv_red[r * MV_MAX_SUBGROUPS + gl_SubgroupID] = acc[r];
    }
    barrier();
    if (tid < ROWS && row0 + tid < p.rows) {
        float s = 0.0;
        for (uint i = 0; i < gl_NumSubgroups; i++) s += mv_red[tid * MV_MAX_SUBGROUPS + i];
        STORE_Y(p.y_base + row0 + tid, s);
    }
}
