#version 450
// Activations to 8-bit blocks for the integer-dot-product kernels (matvec_idot.comp): each
// invocation turns one block of 32 floats into 32 int8 (packed four to a word, element 4i
// in the low byte of word i) with d = max|x| / 127, q = round(x / d), and stores (d, sum of
// q) beside them; the sum lets the kernel apply a weight type's offset or min once per block.
// Rows of x are contiguous and a multiple of 32 long, so a run of tokens is one run of blocks.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 1) writeonly buffer XQ { uvec4 xq[]; };  // 2 per block
layout(std430, binding = 2) writeonly buffer XD { vec2 xd[]; };   // (d, sum of q) per block

layout(push_constant) uniform P {
    uint n_blocks; // blocks of this dispatch
    uint x_base;   // vec4 index of the first block's x in binding 0
    uint q_base;   // uvec4 index of its quants in binding 1
    uint d_base;   // vec2 index of its (d, sum) in binding 2
} p;

void main() {
    uint b = flat_index();
    if (b >= p.n_blocks) return;
    vec4 v[8];
    float amax = 0.0;
    [[unroll]] for (uint i = 0; i < 8; i++) {
        v[i] = x4[p.x_base + 8u * b + i];
        vec4 a = abs(v[i]);
        amax = max(amax, max(max(a.x, a.y), max(a.z, a.w)));
    }
    float d = amax / 127.0;
    float id = d > 0.0 ? 1.0 / d : 0.0;
    uint w[8];
    ivec4 isum = ivec4(0);
    [[unroll]] for (uint i = 0; i < 8; i++) {
        ivec4 q = clamp(ivec4(roundEven(v[i] * id)), -127, 127);
        isum += q;
        uvec4 u = uvec4(q) & 0xffu;
        w[i] = u.x | (u.y << 8) | (u.z << 16) | (u.w << 24);
    }
    xq[p.q_base + 2u * b] = uvec4(w[0], w[1], w[2], w[3]);
    xq[p.q_base + 2u * b + 1u] = uvec4(w[4], w[5], w[6], w[7]);
    xd[p.d_base + b] = vec2(d, float(isum.x + isum.y + isum.z + isum.w));
}
