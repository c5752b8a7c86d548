#version 450
// Merges split-K attention partials: each chunk left an unnormalized accumulator with its
// own running max m and sum l (base 2). Rescaling every chunk to the global max M gives
// out = sum_s 2^(m_s - M) acc_s / sum_s 2^(m_s - M) l_s. One workgroup per (token, head).
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) readonly buffer O { float part[]; };  // (n_split, n_rows, hd)
layout(std430, binding = 1) readonly buffer ML { vec2 ml[]; };    // (n_split, n_rows): (max, sum)
layout(std430, binding = 2) writeonly buffer Out { float o[]; };  // (n_rows, hd)
layout(push_constant) uniform P { uint n_rows, n_split, hd; } p;

void main() {
    uint row = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    if (row >= p.n_rows) return;
    float mx = -1.0e30;
    for (uint s = 0; s < p.n_split; s++) mx = max(mx, ml[s * p.n_rows + row].x);
    float l = 0.0;
    for (uint s = 0; s < p.n_split; s++) {
        vec2 v = ml[s * p.n_rows + row];
        l += exp2(v.x - mx) * v.y;
    }
    float inv = 1.0 / l;
    for (uint d = gl_LocalInvocationID.x; d < p.hd; d += gl_WorkGroupSize.x) {
        float acc = 0.0;
        for (uint s = 0; s < p.n_split; s++)
            acc += exp2(ml[s * p.n_rows + row].x - mx) * part[(s * p.n_rows + row) * p.hd + d];
        o[row * p.hd + d] = acc * inv;
    }
}
