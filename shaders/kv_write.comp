#version 450
// Appends new K or V rows to the cache: a contiguous copy of n8 groups of 8 floats, stored
// as f16 (packed 8 to a 16-byte word, round to nearest even) or f32 (CACHE_F32). Bindings
// start at aligned offsets at or before the data; src_off / dst_off skip the difference in
// 16-byte units.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

#ifdef CACHE_F32
#define WORD vec4
#else
#define WORD uvec4  // 8 halves per word
#endif
layout(std430, binding = 0) readonly buffer S { vec4 src[]; };  // (n8 * 2) vec4
layout(std430, binding = 1) writeonly buffer D { WORD dst[]; };
#ifdef KV_TWO
// K and V in one dispatch: the second pair's invocations follow the first's, same offsets.
layout(std430, binding = 2) readonly buffer S2 { vec4 src2[]; };
layout(std430, binding = 3) writeonly buffer D2 { WORD dst2[]; };
#define POS_BINDING 4
#else
#define POS_BINDING 2
#endif
// dst_per_pos: destination words per cache position; with POS_BUF (record-once decode) the
// cache is bound from its start and the position in that buffer moves the destination.
layout(push_constant) uniform P { uint n8, dst_off, src_off, dst_per_pos; } p;
#ifdef POS_BUF
layout(std430, binding = POS_BINDING) readonly buffer PB { uint pos_buf[]; };
#define DST_OFF (p.dst_off + pos_buf[0] * p.dst_per_pos)
#else
#define DST_OFF p.dst_off
#endif

void main() {
    uint i = flat_index();
    bool second = false;
#ifdef KV_TWO
    if (i >= p.n8) {
        i -= p.n8;
        second = true;
    }
#endif
#ifdef KV_BROKEN_SKIP_LAST
    if (i + 1 >= p.n8) return;
#else
    if (i >= p.n8) return;
#endif
    vec4 a, b;
#ifdef KV_TWO
    if (second) {
        a = src2[p.src_off + 2 * i];
        b = src2[p.src_off + 2 * i + 1];
    } else
#endif
    {
        a = src[p.src_off + 2 * i];
        b = src[p.src_off + 2 * i + 1];
    }
#ifdef CACHE_F32
    WORD w0 = a, w1 = b;
#define NW 2u
#else
    WORD w0 = uvec4(packHalf2x16(a.xy), packHalf2x16(a.zw), packHalf2x16(b.xy), packHalf2x16(b.zw));
    WORD w1 = w0;
#define NW 1u
#endif
#ifdef KV_TWO
    if (second) {
        dst2[DST_OFF + NW * i] = w0;
        if (NW == 2u) dst2[DST_OFF + NW * i + 1u] = w1;
        return;
    }
#endif
    dst[DST_OFF + NW * i] = w0;
    if (NW == 2u) dst[DST_OFF + NW * i + 1u] = w1;
}
