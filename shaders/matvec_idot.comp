#version 450
// Y = X W^T with integer dot products: X arrives quantized by quantize_q8.comp (blocks of 32
// int8, packed four to a word, with (d, sum of q) per block), and each 32-value block of a
// weight row (a sub-block of the K-quants' 256) is unpacked into int8 words, multiplied with
// packed 4x8 signed dot products (OpSDot, SPV_KHR_integer_dot_product) and scaled once per
// block. A weight type's offset (q - 8 ...) is applied through the block's sum of q, its min
// (d q + m) likewise; Q6_K's values are made signed in the word instead, since its scales
// change every 16 values.
// Two layouts: by default a workgroup shares ROWS rows and NT tokens and its invocations
// stride over the blocks of a row (neighbours read neighbouring blocks; GPUs); with BY_ROW
// each invocation owns ROWS whole rows for NT tokens and no reduction is needed (CPU
// devices, as matvec_rows.comp). Each weight block is decoded once for the NT tokens.
// BY_ROW with GROUP (the 32-value types, rows that start and end on a 32-bit word and hold a
// whole number of GROUPs): GROUP blocks of each row are first copied into registers with
// 32-bit loads, as matvec_rows.comp does, since each load costs much on CPU devices.
// IDOT_EMULATE computes the same dot products with plain integer arithmetic.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_spirv_intrinsics : require
#include "common.glsl"
#ifndef ROWS
#define ROWS 2
#endif
#ifndef NT
#define NT 1
#endif
#if defined(BY_ROW) && defined(GROUP)
#define IDOT_REGS 1
#define MR_WORDS (uint(GROUP) * DQ_BLOCK_W16 / 2u) // 32-bit words of one row per group
#define DQ_REGS 1
#define DQ_REGS_WORDS (uint(ROWS) * MR_WORDS)
#endif
#include "dequant.glsl"

// Subgroups a workgroup may hold in the reduction; the host keeps wg within it.
#define IDOT_MAX_SUBGROUPS 64

#if defined(WTYPE_F32) || defined(WTYPE_F16) || defined(WTYPE_BF16)
#error "matvec_idot.comp serves the quantized weight types only"
#endif

layout(std430, binding = 1) readonly buffer XQ { uvec4 xq[]; }; // 2 per block of 32
layout(std430, binding = 2) readonly buffer XD { vec2 xd[]; };  // (d, sum of q) per block
#if defined(ACC_Y) || defined(GLU_Y)
layout(std430, binding = 3) buffer Y { float y[]; };
#ifdef ACC_Y
// y += W x: the residual add fused into the product (each element has one writer).
#define STORE_Y(i, v) y[i] += (v)
#else
// y = silu(y) * (W x): SwiGLU fused into the up product, y holding the gate product.
void store_glu(uint i, float v) {
    float g = y[i];
    y[i] = g / (1.0 + exp(-g)) * v;
}
#define STORE_Y(i, v) store_glu(i, v)
#endif
#else
layout(std430, binding = 3) writeonly buffer Y { float y[]; };
#define STORE_Y(i, v) y[i] = (v)
#endif

layout(push_constant) uniform P {
    uint rows;    // rows of this dispatch
    uint n_tok;   // tokens of this dispatch
    uint units;   // 32-value blocks per row (and per token of X)
    uint row_w16; // 16-bit words per row
    uint w_base;  // 16-bit word where row 0 starts in binding 0
    uint q_base;  // uvec4 index of token 0's first block in binding 1
    uint d_base;  // vec2 index of token 0's first block in binding 2
    uint y_base;  // float index of Y[0][0] in binding 3
    uint y_stride; // floats between tokens in Y
} p;

#ifdef IDOT_EMULATE
int idot4(uint a, uint b) {
    ivec4 va = ivec4(uvec4(a) << uvec4(24u, 16u, 8u, 0u)) >> 24;
    ivec4 vb = ivec4(uvec4(b) << uvec4(24u, 16u, 8u, 0u)) >> 24;
    return va.x * vb.x + va.y * vb.y + va.z * vb.z + va.w * vb.w;
}
#else
// OpSDot (4450) with the PackedVectorFormat4x8Bit operand (0); capabilities DotProduct
// (6019) and DotProductInput4x8BitPacked (6018). glslang 12 lacks GL_EXT_integer_dot_product.
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4450)
int idot_sdot4x8(uint a, uint b, spirv_literal int packed_format);
int idot4(uint a, uint b) { return idot_sdot4x8(a, b, 0); }
#endif

// A weight block of 32 as eight words of int8 (element 4i+k in byte k of word i) and the
// constants that turn its integer dot product with x into a float: value j of the block is
// ab.x * (sc[j / 16] * q[j] - IDOT_OFF) + ab.y.
#define IDOT_OFF 0
#define IDOT_SCALED 0 // 1: sc varies (Q6_K); otherwise sc = (1, 1)

// Bit k of the four low bits of h to bit 4 of byte k: the fifth bits of Q5_0 / Q5_1.
uint idot_spread4(uint h) {
    return ((h & 1u) << 4) | ((h & 2u) << 11) | ((h & 4u) << 18) | ((h & 8u) << 25);
}

#if defined(WTYPE_Q4_0) || defined(WTYPE_Q4_1) || defined(WTYPE_Q5_0) || defined(WTYPE_Q5_1)
#if defined(WTYPE_Q4_0)
#undef IDOT_OFF
#define IDOT_OFF 8
#define IDOT_QS 1u // 16-bit word of qs in the block
#elif defined(WTYPE_Q5_0)
#undef IDOT_OFF
#define IDOT_OFF 16
#define IDOT_QS 3u
#define IDOT_QH 1u
#elif defined(WTYPE_Q4_1)
#define IDOT_QS 2u
#define IDOT_MIN 1
#else
#define IDOT_QS 4u
#define IDOT_QH 2u
#define IDOT_MIN 1
#endif
void idot_decode(uint wb, uint s, out uint q[8], out vec2 ab, out ivec2 sc) {
#ifdef IDOT_MIN
    ab = unpackHalf2x16(dq_u32_at(wb));
#else
    ab = vec2(dq_half(wb), 0.0);
#endif
#ifdef IDOT_QH
    uint qh = dq_u32_at(wb + IDOT_QH);
#endif
    [[unroll]] for (uint i = 0; i < 4; i++) {
        uint w = dq_u32_at(wb + IDOT_QS + 2u * i);
        q[i] = w & 0x0f0f0f0fu;
        q[i + 4] = (w >> 4) & 0x0f0f0f0fu;
#ifdef IDOT_QH
        q[i] |= idot_spread4(qh >> (4u * i));
        q[i + 4] |= idot_spread4(qh >> (16u + 4u * i));
#endif
    }
    sc = ivec2(1);
}

#elif defined(WTYPE_Q8_0)
void idot_decode(uint wb, uint s, out uint q[8], out vec2 ab, out ivec2 sc) {
    ab = vec2(dq_half(wb), 0.0);
    [[unroll]] for (uint i = 0; i < 8; i++) q[i] = dq_u32_at(wb + 1u + 2u * i);
    sc = ivec2(1);
}

#elif defined(WTYPE_Q4_K) || defined(WTYPE_Q5_K)
// Sub-block s (0..7) of the super-block at wb: chunk s / 2 of the nibble bytes, low nibbles
// for even s, high for odd; Q5_K's fifth bit of element l is bit s of qh[l].
void idot_decode(uint wb, uint s, out uint q[8], out vec2 ab, out ivec2 sc) {
    vec2 dm = unpackHalf2x16(dq_w32(wb));
    vec2 sm = dq_k_scale_min(s, dq_w32(wb + 2u), dq_w32(wb + 4u), dq_w32(wb + 6u));
    ab = vec2(dm.x * sm.x, -dm.y * sm.y);
    uint qi = wb + 2u * DQ_QS32 + 16u * (s >> 1), sh = 4u * (s & 1u);
    [[unroll]] for (uint i = 0; i < 8; i++) {
        q[i] = (dq_w32(qi + 2u * i) >> sh) & 0x0f0f0f0fu;
#ifdef WTYPE_Q5_K
        q[i] |= ((dq_w32(wb + 8u + 2u * i) >> s) & 0x01010101u) << 4;
#endif
    }
    sc = ivec2(1);
}

#elif defined(WTYPE_Q6_K)
#undef IDOT_SCALED
#define IDOT_SCALED 1
// Block c (0..7) of the super-block at wb: half n = c / 4, row k = c % 4 of the layout table
// (ql bytes l or l + 32, nibble k / 2, qh bits 2k). Subtracting 32 inside each byte (b + 96
// cannot carry out of a byte below 64; the xor restores bit 7) makes the words signed.
void idot_decode(uint wb, uint c, out uint q[8], out vec2 ab, out ivec2 sc) {
    uint n = c >> 2, k = c & 3u;
    uint ql = wb + 32u * n + 16u * (k & 1u), qh = wb + 64u + 16u * n;
    uint lsh = 4u * (k >> 1), hsh = 2u * k;
    [[unroll]] for (uint i = 0; i < 8; i++) {
        uint b = ((dq_u32_at(ql + 2u * i) >> lsh) & 0x0f0f0f0fu) |
                 (((dq_u32_at(qh + 2u * i) >> hsh) & 0x03030303u) << 4);
        q[i] = (b + 0x60606060u) ^ 0x80808080u;
    }
    // Scales 2k and 2k + 1 of this half: the low and high byte of one 16-bit word.
    uint sw = dq_w16(wb + 96u + 4u * n + k);
    sc = ivec2(int(sw << 24) >> 24, int(sw << 16) >> 24);
    ab = vec2(dq_half(wb + 104u), 0.0);
}
#endif

shared float idot_red[IDOT_MAX_SUBGROUPS * ROWS * NT];

// Adds block u of x (for each token) times the block (sub-block s) at wb[r] of each row.
void idot_accumulate(uint u, uint wb[ROWS], uint s, uint xblk[NT], inout float acc[ROWS][NT]) {
    uint xw[NT][8];
    vec2 xs[NT];
    [[unroll]] for (uint t = 0; t < NT; t++) {
        uint b = xblk[t] + u;
        uvec4 lo = xq[p.q_base + 2u * b], hi = xq[p.q_base + 2u * b + 1u];
        xw[t] = uint[8](lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w);
        xs[t] = xd[p.d_base + b];
    }
    [[unroll]] for (uint r = 0; r < ROWS; r++) {
        uint q[8];
        vec2 ab;
        ivec2 sc;
        idot_decode(wb[r], s, q, ab, sc);
        [[unroll]] for (uint t = 0; t < NT; t++) {
            int s0 = 0, s1 = 0;
            [[unroll]] for (uint i = 0; i < 4; i++) {
                s0 += idot4(q[i], xw[t][i]);
                s1 += idot4(q[i + 4], xw[t][i + 4]);
            }
#if IDOT_SCALED
            int sum = sc.x * s0 + sc.y * s1;
#else
            int sum = s0 + s1;
#endif
            sum -= IDOT_OFF * int(xs[t].y);
            acc[r][t] += xs[t].x * (ab.x * float(sum) + ab.y * xs[t].y);
        }
    }
}

void main() {
    uint rg = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
#ifdef BY_ROW
    uint row0 = (rg * gl_WorkGroupSize.x + gl_LocalInvocationID.x) * ROWS;
    if (row0 >= p.rows) return; // no barriers in this layout
    uint u0 = 0u, ustep = 1u;
#else
    uint row0 = rg * ROWS;
    if (row0 >= p.rows) return; // the whole workgroup leaves together
    uint u0 = gl_LocalInvocationID.x, ustep = gl_WorkGroupSize.x;
#endif
    uint tok0 = gl_WorkGroupID.z * NT;
    // Rows and tokens past the end repeat the last one and are never stored.
    uint wrow[ROWS];
    [[unroll]] for (uint r = 0; r < ROWS; r++) wrow[r] = p.w_base + min(row0 + r, p.rows - 1u) * p.row_w16;
    uint xblk[NT];
    [[unroll]] for (uint t = 0; t < NT; t++) xblk[t] = min(tok0 + t, p.n_tok - 1u) * p.units;
    float acc[ROWS][NT];
    [[unroll]] for (uint r = 0; r < ROWS; r++)
        [[unroll]] for (uint t = 0; t < NT; t++) acc[r][t] = 0.0;

    uint units = p.units;
#ifdef BROKEN_SKIP_LAST_BLOCK
    units -= min(units, 1u); // deliberately wrong: tests prove they catch it
#endif
#ifdef IDOT_REGS
    for (uint g = 0; g < units / GROUP; g++) {
        [[unroll]] for (uint r = 0; r < ROWS; r++)
            [[unroll]] for (uint k = 0; k < MR_WORDS; k++)
                dq_regs[r * MR_WORDS + k] = w32[(wrow[r] >> 1) + g * MR_WORDS + k];
        [[unroll]] for (uint blk = 0; blk < GROUP; blk++) {
            uint u = g * GROUP + blk;
            uint wb[ROWS];
            [[unroll]] for (uint r = 0; r < ROWS; r++) wb[r] = 2u * r * MR_WORDS + blk * DQ_BLOCK_W16;
            idot_accumulate(u, wb, 0u, xblk, acc);
        }
    }
#else
    for (uint u = u0; u < units; u += ustep) {
        uint wb[ROWS];
#if defined(WTYPE_Q4_K) || defined(WTYPE_Q5_K) || defined(WTYPE_Q6_K)
        [[unroll]] for (uint r = 0; r < ROWS; r++) wb[r] = wrow[r] + (u >> 3) * DQ_BLOCK_W16;
        idot_accumulate(u, wb, u & 7u, xblk, acc);
#else
        [[unroll]] for (uint r = 0; r < ROWS; r++) wb[r] = wrow[r] + u * DQ_BLOCK_W16;
        idot_accumulate(u, wb, 0u, xblk, acc);
#endif
    }
#endif

#ifdef BY_ROW
    [[unroll]] for (uint t = 0; t < NT; t++) {
        if (tok0 + t >= p.n_tok) break;
        [[unroll]] for (uint r = 0; r < ROWS; r++)
            if (row0 + r < p.rows) STORE_Y(p.y_base + (tok0 + t) * p.y_stride + row0 + r, acc[r][t]);
    }
#else
    [[unroll]] for (uint r = 0; r < ROWS; r++)
        [[unroll]] for (uint t = 0; t < NT; t++) acc[r][t] = subgroupAdd(acc[r][t]);
    if (subgroupElect()) {
        [[unroll]] for (uint r = 0; r < ROWS; r++)
            [[unroll]] for (uint t = 0; t < NT; t++)
                idot_red[(r * NT + t) * IDOT_MAX_SUBGROUPS + gl_SubgroupID] = acc[r][t];
    }
    barrier();
    for (uint i = gl_LocalInvocationID.x; i < ROWS * NT; i += gl_WorkGroupSize.x) {
        uint r = i / NT, t = i % NT;
        if (row0 + r >= p.rows || tok0 + t >= p.n_tok) continue;
        float s = 0.0;
        for (uint g = 0; g < gl_NumSubgroups; g++) s += idot_red[i * IDOT_MAX_SUBGROUPS + g];
        STORE_Y(p.y_base + (tok0 + t) * p.y_stride + row0 + r, s);
    }
#endif
}
