// Per-type decoding of weight blocks, selected by one WTYPE_* define (Q4_0 when none). A row
// is a run of blocks; each block splits into DQ_UNITS units of DQ_UV4 vec4s that one
// invocation decodes from whole 16/32-bit words, and dq_elem says which block elements each
// vec4 holds, so kernels read the matching x values. The arithmetic mirrors runtime/wtype.c.
//
// Weights are binding 0, seen as 16-bit words (every block is 2-byte aligned) and, for types
// whose blocks are 4-byte multiples, as 32-bit words: callers pass word indices in 16-bit
// units, even for those types. A kernel that defines DQ_REGS (and DQ_REGS_WORDS) decodes
// from words it loaded into dq_regs instead, see below.
//
// Per type:  DQ_BLOCK    elements per block (4 for the float types: a unit of 4 values)
//            DQ_BLOCK_W16 16-bit words per block
//            DQ_UNITS    units per block (a power of two)
//            DQ_UV4      vec4s per unit
// dq_unit(wb, u, lim, v): unit u of the block starting at 16-bit word wb. lim is read only
// by the float types under DQ_RAGGED (rows whose length is not a multiple of 4): the count
// of elements of the unit that lie inside the row. DQ_AFFINE types also have dq_affine and
// dq_unit_q (at the end).

#if !defined(WTYPE_F32) && !defined(WTYPE_F16) && !defined(WTYPE_BF16) && \
    !defined(WTYPE_Q4_0) && !defined(WTYPE_Q4_1) && !defined(WTYPE_Q5_0) && \
    !defined(WTYPE_Q5_1) && !defined(WTYPE_Q8_0) && !defined(WTYPE_Q4_K) && \
    !defined(WTYPE_Q5_K) && !defined(WTYPE_Q6_K)
#define WTYPE_Q4_0 1
#endif

// Block geometry first: kernels size arrays with it before the decoders below.
#if defined(WTYPE_F32)
#define DQ_BLOCK 4u
#define DQ_BLOCK_W16 8u
#define DQ_UNITS 1u
#define DQ_UV4 1
#elif defined(WTYPE_F16) || defined(WTYPE_BF16)
#define DQ_BLOCK 4u
#define DQ_BLOCK_W16 4u
#define DQ_UNITS 1u
#define DQ_UV4 1
#elif defined(WTYPE_Q4_0) || defined(WTYPE_Q4_1) || defined(WTYPE_Q5_0) || defined(WTYPE_Q5_1) || \
    defined(WTYPE_Q8_0)
#define DQ_BLOCK 32u
#define DQ_UNITS 4u
#define DQ_UV4 2
#if defined(WTYPE_Q4_0)
#define DQ_BLOCK_W16 9u
#elif defined(WTYPE_Q4_1)
#define DQ_BLOCK_W16 10u
#elif defined(WTYPE_Q5_0)
#define DQ_BLOCK_W16 11u
#elif defined(WTYPE_Q5_1)
#define DQ_BLOCK_W16 12u
#else
#define DQ_BLOCK_W16 17u
#endif
#else
#define DQ_BLOCK 256u
#define DQ_UNITS 16u
#define DQ_UV4 4
#if defined(WTYPE_Q4_K)
#define DQ_BLOCK_W16 72u
#define DQ_QS32 4u
#elif defined(WTYPE_Q5_K)
#define DQ_BLOCK_W16 88u
#define DQ_QS32 12u
#else
#define DQ_BLOCK_W16 105u
#endif
#endif
#define DQ_UNIT_VALUES (4u * uint(DQ_UV4))

layout(std430, binding = 0) readonly buffer DqW16 { uint16_t w16[]; };
layout(std430, binding = 0) readonly buffer DqW32 { uint w32[]; };

// Every weight read goes through these three, indexed in 16-bit words: dq_w16 (one word),
// dq_w32 (32 bits at an even index), dq_u32_at (32 bits at any index). With DQ_REGS the
// kernel first copies DQ_REGS_WORDS 32-bit words of a row into dq_regs and indices are
// relative to them; unrolled, the shifts fold away and every memory read is a whole word.
#ifdef DQ_REGS
uint dq_regs[DQ_REGS_WORDS];
uint dq_w16(uint i) { return (dq_regs[i >> 1] >> ((i & 1u) * 16u)) & 0xffffu; }
uint dq_w32(uint i) { return dq_regs[i >> 1]; }
uint dq_u32_at(uint i) {
    return (i & 1u) == 0u ? dq_regs[i >> 1] : (dq_regs[i >> 1] >> 16) | (dq_regs[(i >> 1) + 1u] << 16);
}
#else
uint dq_w16(uint i) { return uint(w16[i]); }
uint dq_w32(uint i) { return w32[i >> 1]; }
uint dq_u32_at(uint i) { return uint(w16[i]) | (uint(w16[i + 1u]) << 16); }
#endif
float dq_half(uint i) { return unpackHalf2x16(dq_w16(i)).x; }

// The four bytes of q as a uvec4, low byte first, then shifted and masked.
uvec4 dq_bytes(uint q, uint shift, uint mask) {
    return (uvec4(q) >> (uvec4(0u, 8u, 16u, 24u) + shift)) & mask;
}
// Small unsigned values as floats, converted as signed: x86 before AVX-512 has no unsigned
// conversion, and CPU devices would emulate one in several instructions.
vec4 dq_f(uvec4 q) { return vec4(ivec4(q)); }
// Bit `bit` of each of the four bytes of q.
uvec4 dq_bits(uint q, uint bit) { return (uvec4(q) >> (uvec4(0u, 8u, 16u, 24u) + bit)) & 1u; }

#if defined(WTYPE_F32) || defined(WTYPE_F16) || defined(WTYPE_BF16)

uint dq_elem(uint u, uint i) { return 0u; }

float dq_float(uint wb, uint c) {
#if defined(WTYPE_F32)
    return uintBitsToFloat(dq_w32(wb + 2u * c));
#elif defined(WTYPE_F16)
    return dq_half(wb + c);
#else
    return uintBitsToFloat(dq_w16(wb + c) << 16);
#endif
}

void dq_unit(uint wb, uint u, uint lim, out vec4 v[DQ_UV4]) {
#ifdef DQ_RAGGED
    v[0] = vec4(dq_float(wb, 0u), lim > 1u ? dq_float(wb, 1u) : 0.0,
                lim > 2u ? dq_float(wb, 2u) : 0.0, lim > 3u ? dq_float(wb, 3u) : 0.0);
#else
    v[0] = vec4(dq_float(wb, 0u), dq_float(wb, 1u), dq_float(wb, 2u), dq_float(wb, 3u));
#endif
}

#elif defined(WTYPE_Q4_0)

// 18 bytes: f16 d, 16 bytes of nibbles. Unit u: bytes 4u..4u+3, low nibbles are elements
// 4u.., high nibbles 4u+16...

uint dq_elem(uint u, uint i) { return 4u * u + 16u * i; }

vec2 dq_affine(uint wb) {
    float d = dq_half(wb);
    return vec2(d, -8.0 * d);
}

void dq_unit_q(uint wb, uint u, out vec4 v[DQ_UV4]) {
    uint q = dq_u32_at(wb + 1u + 2u * u);
    v[0] = dq_f(dq_bytes(q, 0u, 15u));
    v[1] = dq_f(dq_bytes(q, 4u, 15u));
}

#elif defined(WTYPE_Q4_1)

// 20 bytes (5 words): d and m, 16 bytes of nibbles; value d*q + m.

uint dq_elem(uint u, uint i) { return 4u * u + 16u * i; }

vec2 dq_affine(uint wb) { return unpackHalf2x16(dq_w32(wb)); }

void dq_unit_q(uint wb, uint u, out vec4 v[DQ_UV4]) {
    uint q = dq_w32(wb + 2u + 2u * u);
    v[0] = dq_f(dq_bytes(q, 0u, 15u));
    v[1] = dq_f(dq_bytes(q, 4u, 15u));
}

#elif defined(WTYPE_Q5_0)

// 22 bytes: d, 32 fifth bits (bit j for element j), 16 bytes of nibbles; value d*(q - 16).

uint dq_elem(uint u, uint i) { return 4u * u + 16u * i; }

vec2 dq_affine(uint wb) {
    float d = dq_half(wb);
    return vec2(d, -16.0 * d);
}

void dq_unit_q(uint wb, uint u, out vec4 v[DQ_UV4]) {
    uint qh = dq_u32_at(wb + 1u);
    uint q = dq_u32_at(wb + 3u + 2u * u);
    uvec4 hl = (uvec4(qh >> (4u * u)) >> uvec4(0u, 1u, 2u, 3u)) & 1u;
    uvec4 hh = (uvec4(qh >> (4u * u + 16u)) >> uvec4(0u, 1u, 2u, 3u)) & 1u;
    v[0] = dq_f(dq_bytes(q, 0u, 15u) | (hl << 4));
    v[1] = dq_f(dq_bytes(q, 4u, 15u) | (hh << 4));
}

#elif defined(WTYPE_Q5_1)

// 24 bytes (6 words): d and m, fifth bits, nibbles; value d*q + m.

uint dq_elem(uint u, uint i) { return 4u * u + 16u * i; }

vec2 dq_affine(uint wb) { return unpackHalf2x16(dq_w32(wb)); }

void dq_unit_q(uint wb, uint u, out vec4 v[DQ_UV4]) {
    uint qh = dq_w32(wb + 2u);
    uint q = dq_w32(wb + 4u + 2u * u);
    uvec4 hl = (uvec4(qh >> (4u * u)) >> uvec4(0u, 1u, 2u, 3u)) & 1u;
    uvec4 hh = (uvec4(qh >> (4u * u + 16u)) >> uvec4(0u, 1u, 2u, 3u)) & 1u;
    v[0] = dq_f(dq_bytes(q, 0u, 15u) | (hl << 4));
    v[1] = dq_f(dq_bytes(q, 4u, 15u) | (hh << 4));
}

#elif defined(WTYPE_Q8_0)

// 34 bytes: d, 32 signed bytes. Unit u: elements 8u..8u+7.

uint dq_elem(uint u, uint i) { return 8u * u + 4u * i; }

vec4 dq_i8x4(uint q) { return vec4(ivec4(uvec4(q) << uvec4(24u, 16u, 8u, 0u)) >> 24); }

vec2 dq_affine(uint wb) { return vec2(dq_half(wb), 0.0); }

void dq_unit_q(uint wb, uint u, out vec4 v[DQ_UV4]) {
    v[0] = dq_i8x4(dq_u32_at(wb + 1u + 4u * u));
    v[1] = dq_i8x4(dq_u32_at(wb + 3u + 4u * u));
}

#elif defined(WTYPE_Q4_K) || defined(WTYPE_Q5_K)

// 144 / 176 bytes: d and dmin, 12 bytes of packed 6-bit (scale, min) pairs, [Q5_K: 32 bytes
// of fifth bits], 128 bytes of nibbles. Unit u (16 values) covers chunk c = u/4, bytes
// 8s..8s+7 (s = u%4) of its 32 nibble bytes: low nibbles are elements 64c+8s.. with
// sub-block 2c, high nibbles 64c+32+8s.. with sub-block 2c+1.

uint dq_elem(uint u, uint i) { return 64u * (u >> 2) + 8u * (u & 3u) + 4u * (i & 1u) + 32u * (i >> 1); }

// (scale, min) of sub-block j from the three scale words s0 (bytes 0-3), s1 (4-7), s2 (8-11).
vec2 dq_k_scale_min(uint j, uint s0, uint s1, uint s2) {
    uint sh = 8u * (j & 3u);
    uint lo_sc = (s0 >> sh) & 63u, lo_m = (s1 >> sh) & 63u;
    uint hi_sc = ((s2 >> sh) & 15u) | (((s0 >> (sh + 6u)) & 3u) << 4);
    uint hi_m = ((s2 >> (sh + 4u)) & 15u) | (((s1 >> (sh + 6u)) & 3u) << 4);
    return j < 4u ? vec2(lo_sc, lo_m) : vec2(hi_sc, hi_m);
}

void dq_unit(uint wb, uint u, uint lim, out vec4 v[DQ_UV4]) {
    uint c = u >> 2, s = u & 3u;
    vec2 dm = unpackHalf2x16(dq_w32(wb));
    uint s0 = dq_w32(wb + 2u), s1 = dq_w32(wb + 4u), s2 = dq_w32(wb + 6u);
    vec2 sm0 = dq_k_scale_min(2u * c, s0, s1, s2), sm1 = dq_k_scale_min(2u * c + 1u, s0, s1, s2);
    float d0 = dm.x * sm0.x, o0 = dm.y * sm0.y, d1 = dm.x * sm1.x, o1 = dm.y * sm1.y;
    uint qi = wb + 2u * DQ_QS32 + 16u * c + 4u * s;
    uint qa = dq_w32(qi), qb = dq_w32(qi + 2u);
#ifdef WTYPE_Q4_K
    v[0] = d0 * dq_f(dq_bytes(qa, 0u, 15u)) - o0;
    v[1] = d0 * dq_f(dq_bytes(qb, 0u, 15u)) - o0;
    v[2] = d1 * dq_f(dq_bytes(qa, 4u, 15u)) - o1;
    v[3] = d1 * dq_f(dq_bytes(qb, 4u, 15u)) - o1;
#else
    uint ha = dq_w32(wb + 8u + 4u * s), hb = dq_w32(wb + 10u + 4u * s);
    v[0] = d0 * dq_f(dq_bytes(qa, 0u, 15u) | (dq_bits(ha, 2u * c) << 4)) - o0;
    v[1] = d0 * dq_f(dq_bytes(qb, 0u, 15u) | (dq_bits(hb, 2u * c) << 4)) - o0;
    v[2] = d1 * dq_f(dq_bytes(qa, 4u, 15u) | (dq_bits(ha, 2u * c + 1u) << 4)) - o1;
    v[3] = d1 * dq_f(dq_bytes(qb, 4u, 15u) | (dq_bits(hb, 2u * c + 1u) << 4)) - o1;
#endif
}

#elif defined(WTYPE_Q6_K)

// 210 bytes: ql[128] low nibbles, qh[64] 2-bit highs, 16 signed scales, f16 d. Unit u (16
// values): half n = u/8, l0 = 4*(u%8); vec4 i holds elements 128n + l0 + 32i .. +3.

uint dq_elem(uint u, uint i) { return 128u * (u >> 3) + 4u * (u & 7u) + 32u * i; }

void dq_unit(uint wb, uint u, uint lim, out vec4 v[DQ_UV4]) {
    uint n = u >> 3, t = u & 7u;
    float d = dq_half(wb + 104u);
    uint qa = dq_u32_at(wb + 32u * n + 2u * t);        // ql bytes l0..l0+3
    uint qb = dq_u32_at(wb + 32u * n + 16u + 2u * t);  // ql bytes l0+32..
    uint qh = dq_u32_at(wb + 64u + 16u * n + 2u * t);  // qh bytes l0..
    // Scales is, is+2, is+4, is+6 (is = l0/16) sit in the low or high byte of four words.
    uint sw = wb + 96u + 4u * n, ssh = 8u * (t >> 2);
    ivec4 sc = ivec4(uvec4(dq_w16(sw), dq_w16(sw + 1u), dq_w16(sw + 2u), dq_w16(sw + 3u))
                     << (24u - ssh)) >> 24;
    vec4 ds = d * vec4(sc);
    v[0] = ds.x * (dq_f(dq_bytes(qa, 0u, 15u) | (dq_bytes(qh, 0u, 3u) << 4)) - 32.0);
    v[1] = ds.y * (dq_f(dq_bytes(qb, 0u, 15u) | (dq_bytes(qh, 2u, 3u) << 4)) - 32.0);
    v[2] = ds.z * (dq_f(dq_bytes(qa, 4u, 15u) | (dq_bytes(qh, 4u, 3u) << 4)) - 32.0);
    v[3] = ds.w * (dq_f(dq_bytes(qb, 4u, 15u) | (dq_bytes(qh, 6u, 3u) << 4)) - 32.0);
}

#endif

#if defined(WTYPE_Q4_0) || defined(WTYPE_Q4_1) || defined(WTYPE_Q5_0) || defined(WTYPE_Q5_1) || \
    defined(WTYPE_Q8_0)
// The 32-element block types are affine in their quants: value = a.x * q + a.y with
// a = dq_affine(block), one pair per block (exactly the products above: d * (q - 8) is
// d * q - 8d). Kernels that sum many products per block may take the quants (dq_unit_q)
// and apply a once per block: a.x * (q . x) + a.y * sum(x).
#define DQ_AFFINE 1
void dq_unit(uint wb, uint u, uint lim, out vec4 v[DQ_UV4]) {
    vec2 a = dq_affine(wb);
    dq_unit_q(wb, u, v);
    [[unroll]] for (uint i = 0; i < DQ_UV4; i++) v[i] = a.x * v[i] + a.y;
}
#endif
