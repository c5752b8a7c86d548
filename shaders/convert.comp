#version 450
// Elementwise F32 -> F16 (TO_F16) or F16 -> F32 conversion of n values.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

#ifdef TO_F16
layout(std430, binding = 0) readonly buffer S { float s[]; };
layout(std430, binding = 1) writeonly buffer D { float16_t d[]; };
#else
layout(std430, binding = 0) readonly buffer S { float16_t s[]; };
layout(std430, binding = 1) writeonly buffer D { float d[]; };
#endif
layout(push_constant) uniform P { uint n; } p;

void main() {
    uint i = flat_index();
    if (i >= p.n) return;
#ifdef TO_F16
    d[i] = float16_t(s[i]);
#else
    d[i] = float(s[i]);
#endif
}
