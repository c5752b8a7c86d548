#version 450
// SwiGLU gate: out = silu(gate) * up, elementwise over n.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) readonly buffer G { float g[]; };
layout(std430, binding = 1) readonly buffer U { float u[]; };
layout(std430, binding = 2) writeonly buffer O { float o[]; };
layout(push_constant) uniform P { uint n; } p;

void main() {
    uint i = flat_index();
    if (i >= p.n) return;
    float v = g[i];
    o[i] = v / (1.0 + exp(-v)) * u[i];
}
