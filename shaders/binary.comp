#version 450
// Elementwise binary op over n floats: OP_ADD (residual add) or OP_MUL.
// BROKEN_OFF_BY_ONE exists only so the tests can prove they catch an indexing bug.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 2) writeonly buffer O { float o[]; };
layout(push_constant) uniform P { uint n; } p;

void main() {
    uint i = flat_index();
#ifdef BROKEN_OFF_BY_ONE
    if (i + 1 >= p.n) return;
#else
    if (i >= p.n) return;
#endif
#ifdef OP_MUL
    o[i] = a[i] * b[i];
#else
    o[i] = a[i] + b[i];
#endif
}
