#version 450
// Numerically stable softmax of each row (subtract the row max). One workgroup per row.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };   // (rows, n)
layout(std430, binding = 1) writeonly buffer O { float o[]; };  // (rows, n)
layout(push_constant) uniform P { uint n; } p;

void main() {
    uint base = gl_WorkGroupID.x * p.n;
    float m = -3.402823466e+38;
    for (uint i = gl_LocalInvocationID.x; i < p.n; i += gl_WorkGroupSize.x) m = max(m, x[base + i]);
    m = wg_max(m);
    float s = 0.0;
    for (uint i = gl_LocalInvocationID.x; i < p.n; i += gl_WorkGroupSize.x) s += exp(x[base + i] - m);
    float inv = 1.0 / wg_sum(s);
    for (uint i = gl_LocalInvocationID.x; i < p.n; i += gl_WorkGroupSize.x)
        o[base + i] = exp(x[base + i] - m) * inv;
}
