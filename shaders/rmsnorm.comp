#version 450
// RMSNorm of each row: out = x / sqrt(mean(x^2) + eps) * w. One workgroup per row.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };   // (rows, n)
layout(std430, binding = 1) readonly buffer W { float w[]; };   // (n)
layout(std430, binding = 2) writeonly buffer O { float o[]; };  // (rows, n)
layout(push_constant) uniform P { uint n; float eps; } p;

void main() {
    uint base = gl_WorkGroupID.x * p.n;
    float ss = 0.0;
    for (uint i = gl_LocalInvocationID.x; i < p.n; i += gl_WorkGroupSize.x) {
        float v = x[base + i];
        ss += v * v;
    }
    float scale = inversesqrt(wg_sum(ss) / float(p.n) + p.eps);
    for (uint i = gl_LocalInvocationID.x; i < p.n; i += gl_WorkGroupSize.x)
        o[base + i] = x[base + i] * scale * w[i];
}
