#version 450
// The bandwidth yardstick: reads n uints once and writes one sum per workgroup, so the time
// is all reading. Two access orders, because devices disagree on which is fast:
//   STRIDED (GPUs): neighbouring invocations read neighbouring vec4s, grid-stride passes;
//   RUNS (CPU devices such as lavapipe): each invocation reads one contiguous run, so the
//     compiler's SIMD lanes stream whole cache lines instead of gathering.
// kern_stream_gbps tries both with several shapes and keeps the fastest.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

#ifndef ITERS
#define ITERS 4
#endif

layout(std430, binding = 0) readonly buffer Src4 { uvec4 src4[]; };
layout(std430, binding = 0) readonly buffer Src1 { uint src1[]; };
layout(std430, binding = 1) writeonly buffer Dst { float dst[]; };
layout(push_constant) uniform P { uint n; } p; // uints to read (a multiple of 4)

void main() {
    uint wg = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    uint n_wg = gl_NumWorkGroups.x * gl_NumWorkGroups.y;
    uint inv = wg * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    uint n_inv = n_wg * gl_WorkGroupSize.x;
    uint acc = 0u;
#ifdef RUNS
    uint per = (p.n + n_inv - 1) / n_inv;
    uint lo = min(inv * per, p.n), hi = min(lo + per, p.n);
    for (uint i = lo; i < hi; i++) acc += src1[i];
#else
    uint n4 = p.n / 4u;
    uint i = inv;
    uint full = n4 / (n_inv * ITERS);
    for (uint r = 0; r < full; r++, i += n_inv * ITERS) {
        [[unroll]] for (uint j = 0; j < ITERS; j++) {
            uvec4 v = src4[i + j * n_inv];
            acc += v.x + v.y + v.z + v.w;
        }
    }
    [[unroll]] for (uint j = 0; j < ITERS; j++) {
        if (i + j * n_inv < n4) {
            uvec4 v = src4[i + j * n_inv];
            acc += v.x + v.y + v.z + v.w;
        }
    }
#endif
    float s = wg_sum(float(acc));
    if (gl_LocalInvocationID.x == 0) dst[wg] = s;
}
