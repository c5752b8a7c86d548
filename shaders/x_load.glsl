// x_vec4(i): the i-th vec4 of x, binding 1 of the by-row product kernels.
//
// On lavapipe a storage-buffer load loops over the subgroup's lanes, one branch each, for every
// component; a uniform-buffer load is one vector gather (or one scalar load when the offset is
// a constant). Every invocation of these kernels reads the same x, so where x fits a uniform
// buffer (XUBO = its size in vec4s, which the host keeps within maxUniformBufferRange) it is
// read from one: Q4_0 decode 1.15x on the 542M shape. Otherwise X64 reads it as two 64-bit
// loads instead of four 32-bit ones (the loop costs about the same whatever the width).
#if defined(XUBO)
layout(std140, binding = 1) uniform XU { vec4 xu[XUBO]; };
vec4 x_vec4(uint i) { return xu[i]; }
#elif defined(X64)
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require
layout(std430, binding = 1) readonly buffer XPairs { u64vec2 x64[]; };
vec4 x_vec4(uint i) {
    u64vec2 v = x64[i];
    return uintBitsToFloat(uvec4(unpackUint2x32(v.x), unpackUint2x32(v.y)));
}
#else
layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; };
vec4 x_vec4(uint i) { return x4[i]; }
#endif
