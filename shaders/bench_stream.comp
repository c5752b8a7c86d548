#version 450
// The bandwidth yardstick for kernel benchmarks: reads n vec4s once, in grid-stride order so
// neighbouring invocations read neighbouring vec4s, and writes one sum per workgroup, so the
// time is all reading. ITERS vec4s per invocation per pass keep several loads in flight; the
// bench tries a few workgroup sizes and ITERS and keeps the fastest.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

#ifndef ITERS
#define ITERS 4
#endif

layout(std430, binding = 0) readonly buffer Src { vec4 src[]; };
layout(std430, binding = 1) writeonly buffer Dst { float dst[]; };
layout(push_constant) uniform P { uint n; } p; // vec4s to read

void main() {
    uint wg = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    uint n_wg = gl_NumWorkGroups.x * gl_NumWorkGroups.y;
    uint stride = n_wg * gl_WorkGroupSize.x;
    uint i = wg * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    vec4 acc = vec4(0.0);
    // Whole passes need no bounds checks; the last partial pass does.
    uint full = p.n / (stride * ITERS);
    for (uint r = 0; r < full; r++, i += stride * ITERS) {
        [[unroll]] for (uint j = 0; j < ITERS; j++) acc += src[i + j * stride];
    }
    [[unroll]] for (uint j = 0; j < ITERS; j++)
        if (i + j * stride < p.n) acc += src[i + j * stride];
    float s = wg_sum(acc.x + acc.y + acc.z + acc.w);
    if (gl_LocalInvocationID.x == 0) dst[wg] = s;
}
