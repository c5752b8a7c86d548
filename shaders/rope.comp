#version 450
// Rotary position embedding in place on x (n_tok, n_heads, head_dim); one invocation per
// (token, head, pair). ROPE_TWO: also on x2 (n_tok, n_heads2, head_dim) in the same dispatch
// (queries and keys), its invocations after x's. Pairs are adjacent (LLaMA GGUF) or half a rotation apart (NeoX).
// The angle is kept in turns as a double-float so it stays exact at positions of 32k and
// beyond, where a plain fp32 pos * freq already loses a milliradian.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "rope.glsl"

layout(std430, binding = 0) buffer X { float x[]; };  // (n_tok, n_heads, head_dim)
#ifdef ROPE_TWO
layout(std430, binding = 1) buffer X2 { float x2[]; };  // (n_tok, n_heads2, head_dim)
#define POS_BINDING 2
#else
#define POS_BINDING 1
#endif
#ifdef POS_BUF
// Record-once decode: the position of the first token is in this buffer, added to pos0.
layout(std430, binding = POS_BINDING) readonly buffer PB { uint pos_buf[]; };
#define POS0 (p.pos0 + pos_buf[0])
#else
#define POS0 p.pos0
#endif
layout(push_constant) uniform P {
    uint n_tok, n_heads, head_dim, rot_dim;
    uint pos0, neox;
    float f0_hi, f0_lo;  // turns per position of pair 0 = freq_scale / (2 pi), double-float
    float r_hi, r_lo;    // ratio of consecutive pairs' frequencies = base^(-2/rot_dim)
    float freq_scale, log2_base;  // for the plain fp32 variant only
    uint n_heads2;                // ROPE_TWO: heads of x2
} p;

void main() {
    uint half_rot = p.rot_dim / 2;
    uint idx = flat_index();
    uint n_heads = p.n_heads;
    bool second = false;
    if (idx >= p.n_tok * p.n_heads * half_rot) {
#ifdef ROPE_TWO
        idx -= p.n_tok * p.n_heads * half_rot;
        n_heads = p.n_heads2;
        second = true;
        if (idx >= p.n_tok * n_heads * half_rot) return;
#else
        return;
#endif
    }
    uint i = idx % half_rot;
    uint row = idx / half_rot;  // token * n_heads + head
    uint tok = row / n_heads;
    float pos = float(POS0 + tok);  // exact below 2^24

#ifdef ROPE_PLAIN_FP32
    // The careless form, kept to show the tests catch it: fp32 angle, library sin/cos.
    float theta = pos * p.freq_scale * exp2(-2.0 * float(i) / float(p.rot_dim) * p.log2_base);
    vec2 sc = vec2(sin(theta), cos(theta));
#else
    vec2 sc = rope_sincos(vec2(p.f0_hi, p.f0_lo), vec2(p.r_hi, p.r_lo), pos, i);
#endif

    uint base = row * p.head_dim;
    uint i0 = base + (p.neox != 0 ? i : 2 * i);
    uint i1 = base + (p.neox != 0 ? i + half_rot : 2 * i + 1);
#ifdef ROPE_TWO
    if (second) {
        float a = x2[i0], b = x2[i1];
        x2[i0] = a * sc.y - b * sc.x;
        x2[i1] = a * sc.x + b * sc.y;
        return;
    }
#endif
    float a = x[i0], b = x[i1];
    x[i0] = a * sc.y - b * sc.x;
    x[i1] = a * sc.x + b * sc.y;
}
