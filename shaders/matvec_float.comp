#version 450
// y = W x for F32 or F16 weights (WTYPE_F16), W of (rows, cols) row-major as GGUF stores it.
// One workgroup per ROWS_PER_WG rows; threads stride over columns in vec4 where possible and
// reduce through subgroups, so reads of a row are coalesced. Accumulates in fp32.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

#ifndef ROWS_PER_WG
#define ROWS_PER_WG 2
#endif

#ifdef WTYPE_F16
layout(std430, binding = 0) readonly buffer Wt { float16_t w[]; };
#else
layout(std430, binding = 0) readonly buffer Wt { float w[]; };
#endif
layout(std430, binding = 1) readonly buffer X { float x[]; };   // (cols)
layout(std430, binding = 2) writeonly buffer Y { float y[]; };  // (rows)
layout(push_constant) uniform P { uint rows; uint cols; } p;

void main() {
    uint row0 = gl_WorkGroupID.x * ROWS_PER_WG;
    [[unroll]] for (uint r = 0; r < ROWS_PER_WG; r++) {
        uint row = row0 + r;
        if (row >= p.rows) break;  // uniform across the workgroup
        uint base = row * p.cols;
        float acc = 0.0;
        for (uint c = gl_LocalInvocationID.x; c < p.cols; c += gl_WorkGroupSize.x)
            acc += float(w[base + c]) * x[c];
        acc = wg_sum(acc);
        if (gl_LocalInvocationID.x == 0) y[row] = acc;
    }
}
