#version 450
// Appends new K or V rows to the cache: a contiguous copy of n8 groups of 8 floats, stored
// as f16 (packed 8 to a 16-byte word, round to nearest even) or f32 (CACHE_F32). Bindings
// start at aligned offsets at or before the data; src_off / dst_off skip the difference in
// 16-byte units.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) readonly buffer S { vec4 src[]; };  // (n8 * 2) vec4
#ifdef CACHE_F32
layout(std430, binding = 1) writeonly buffer D { vec4 dst[]; };
#else
layout(std430, binding = 1) writeonly buffer D { uvec4 dst[]; };  // 8 halves per word
#endif
layout(push_constant) uniform P { uint n8, dst_off, src_off; } p;

void main() {
    uint i = flat_index();
#ifdef KV_BROKEN_SKIP_LAST
    if (i + 1 >= p.n8) return;
#else
    if (i >= p.n8) return;
#endif
    vec4 a = src[p.src_off + 2 * i], b = src[p.src_off + 2 * i + 1];
#ifdef CACHE_F32
    dst[p.dst_off + 2 * i] = a;
    dst[p.dst_off + 2 * i + 1] = b;
#else
    dst[p.dst_off + i] = uvec4(packHalf2x16(a.xy), packHalf2x16(a.zw), packHalf2x16(b.xy),
                               packHalf2x16(b.zw));
#endif
}
