#version 450
// Y = X W^T for the K-quants (Q4_K, Q5_K, Q6_K) with RL whole rows per invocation and NT
// tokens: matvec_rows.comp's by-row scheme for CPU Vulkan devices (lavapipe), shaped so that
// lavapipe compiles it no slower than Q4_0's. Unrolling a whole 256-element super-block for
// RL rows and NT tokens, as matvec_rows.comp does with its blocks, gives code that lavapipe
// takes 5-100 s to compile. Here a super-block is a loop over the 8 word positions k of its
// 32-byte runs of quants, and only one position (every run of every row, for every token) is
// unrolled. Per super-block each invocation decodes its rows' scales once into registers;
// every weight word is read once with a 32-bit load; every x vec4 once per RL rows.
// Q6_K's 210-byte blocks start 2 bytes off a word every other block; such a block's words
// are each joined from two aligned words, carried from one position to the next, so that
// costs one extra load per 32-byte run.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

#if !defined(WTYPE_Q4_K) && !defined(WTYPE_Q5_K) && !defined(WTYPE_Q6_K)
#define WTYPE_Q4_K 1
#endif
#include "dequant.glsl"

#ifndef RL
#define RL 8
#endif
#ifndef NT
#define NT 1
#endif

#include "x_load.glsl"
#if defined(ACC_Y) || defined(GLU_Y)
layout(std430, binding = 2) buffer Y { float y[]; };
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
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
#define STORE_Y(i, v) y[i] = (v)
#endif

layout(push_constant) uniform P {
    uint rows;     // rows of this dispatch
    uint n_tok;    // tokens of this dispatch
    uint n_blocks; // super-blocks per row
    uint row_w16;  // 16-bit words per row
    uint w_base;   // 16-bit word where row 0 starts in binding 0
    uint x_base;   // float index of token 0's x in binding 1, a multiple of 4
    uint x_stride; // floats between tokens in x, a multiple of 4
    uint y_base;   // float index of Y[0][0] in binding 2
    uint y_stride; // floats between tokens in Y
} p;

// The four bytes of w as floats, low byte first. Signed conversion: cheaper than unsigned on
// CPUs, and every byte here is below 128.
vec4 k_bytes(uint w) {
    return vec4(ivec4(int(w & 255u), int((w >> 8) & 255u), int((w >> 16) & 255u), int(w >> 24)));
}

#ifdef WTYPE_Q6_K
// A block's word at 16-bit offset 2i: the aligned word b = w32[i] when the block starts on a
// word; else the halves of the aligned words a and b around it.
uint k_join(uint a, uint b, bool odd) { return odd ? (a >> 16) | (b << 16) : b; }
#endif

void main() {
    uint row0 = (gl_WorkGroupID.x * gl_WorkGroupSize.x + gl_LocalInvocationID.x) * RL;
    uint tok0 = gl_WorkGroupID.y * NT;
    // Rows and tokens past the end repeat the last one and are never stored: every
    // invocation stays active, and no load leaves the bindings.
    uint wrow[RL]; // 16-bit word where each row starts
    [[unroll]] for (uint r = 0; r < RL; r++) wrow[r] = p.w_base + min(row0 + r, p.rows - 1u) * p.row_w16;
    uint xtok[NT];
    [[unroll]] for (uint t = 0; t < NT; t++) xtok[t] = p.x_base + min(tok0 + t, p.n_tok - 1u) * p.x_stride;
    float acc[RL][NT];
    [[unroll]] for (uint r = 0; r < RL; r++)
        [[unroll]] for (uint t = 0; t < NT; t++) acc[r][t] = 0.0;

    uint n_blocks = p.n_blocks;
#ifdef BROKEN_SKIP_LAST_BLOCK
    n_blocks -= min(n_blocks, 1u); // deliberately wrong: tests prove they catch it
#endif
#if defined(WTYPE_Q4_K) || defined(WTYPE_Q5_K)
    for (uint b = 0; b < n_blocks; b++) {
        uint col = b * DQ_BLOCK;
        // Scale and min of the 8 sub-blocks of each row, as d * sc and dmin * m.
        uint wb[RL];
        float dsc[RL][8], dmn[RL][8];
        [[unroll]] for (uint r = 0; r < RL; r++) {
            wb[r] = (wrow[r] >> 1) + b * (DQ_BLOCK_W16 / 2u);
            vec2 dm = unpackHalf2x16(w32[wb[r]]);
            uint s0 = w32[wb[r] + 1u], s1 = w32[wb[r] + 2u], s2 = w32[wb[r] + 3u];
            [[unroll]] for (uint j = 0; j < 8u; j++) {
                vec2 sm = dq_k_scale_min(j, s0, s1, s2);
                dsc[r][j] = dm.x * sm.x;
                dmn[r][j] = dm.y * sm.y;
            }
        }
        for (uint k = 0; k < 8u; k++) {
#ifdef WTYPE_Q5_K
            uint qh[RL];
            [[unroll]] for (uint r = 0; r < RL; r++) qh[r] = w32[wb[r] + 4u + k];
#endif
            // Chunk c: word k of its 32 quant bytes holds elements 64c + 4k.. (low nibbles,
            // sub-block 2c) and 64c + 32 + 4k.. (high nibbles, sub-block 2c + 1).
            [[unroll]] for (uint c = 0; c < 4u; c++) {
                vec4 xl[NT], xh[NT];
                [[unroll]] for (uint t = 0; t < NT; t++) {
                    uint xi = xtok[t] + col + 64u * c + 4u * k;
                    xl[t] = x_vec4(xi >> 2);
                    xh[t] = x_vec4((xi + 32u) >> 2);
                }
                [[unroll]] for (uint r = 0; r < RL; r++) {
                    uint q = w32[wb[r] + DQ_QS32 + 8u * c + k];
                    uint lo = q & 0x0f0f0f0fu, hi = (q >> 4) & 0x0f0f0f0fu;
#ifdef WTYPE_Q5_K
                    lo |= ((qh[r] >> (2u * c)) << 4) & 0x10101010u;
                    hi |= ((qh[r] >> (2u * c + 1u)) << 4) & 0x10101010u;
#endif
                    vec4 vl = fma(k_bytes(lo), vec4(dsc[r][2u * c]), vec4(-dmn[r][2u * c]));
                    vec4 vh = fma(k_bytes(hi), vec4(dsc[r][2u * c + 1u]), vec4(-dmn[r][2u * c + 1u]));
                    [[unroll]] for (uint t = 0; t < NT; t++) acc[r][t] += dot(vl, xl[t]) + dot(vh, xh[t]);
                }
            }
        }
    }
#else // Q6_K
    // A block starts 2 bytes past a word when its 16-bit index is odd. With K_PAIRS (the host's
    // choice when rows start on a word and hold an even count of blocks) blocks go in pairs,
    // the first on a word and the second off it, and each is compiled for its case; otherwise
    // each row finds out at run time.
#ifdef K_PAIRS
    for (uint g = 0; g < n_blocks / 2u; g++)
        [[unroll]] for (uint h = 0; h < 2u; h++) {
            uint b = 2u * g + h;
#else
    for (uint b = 0; b < n_blocks; b++) {
#endif
        uint col = b * DQ_BLOCK;
        // The 16 scales of each row times d; and, for a block off a word, the first aligned
        // word of each of its six 32-byte runs (per half n: ql, ql + 32, qh).
        float ds[RL][16];
        uint prev[RL][6], wq[RL];
        bool odd[RL];
        [[unroll]] for (uint r = 0; r < RL; r++) {
            uint blk = wrow[r] + b * DQ_BLOCK_W16;
#ifdef K_PAIRS
            odd[r] = h == 1u;
#else
            odd[r] = (blk & 1u) != 0u;
#endif
            wq[r] = blk >> 1;
            // 16 scale bytes at 16-bit word 96, then d: 4 words and d, or 5 words.
            uint sv[5];
            [[unroll]] for (uint i = 0; i < 4u; i++) sv[i] = w32[wq[r] + 48u + i];
            float d;
            if (odd[r]) {
                sv[4] = w32[wq[r] + 52u];
                d = unpackHalf2x16(sv[4] >> 16).x;
            } else {
                sv[4] = 0u;
                d = unpackHalf2x16(uint(w16[blk + 104u])).x;
            }
            [[unroll]] for (uint i = 0; i < 4u; i++) {
                uint sw = k_join(sv[i], odd[r] ? sv[i + 1u] : sv[i], odd[r]);
                vec4 sc = vec4(ivec4(uvec4(sw) << uvec4(24u, 16u, 8u, 0u)) >> 24);
                [[unroll]] for (uint j = 0; j < 4u; j++) ds[r][4u * i + j] = d * sc[j];
            }
            [[unroll]] for (uint n = 0; n < 2u; n++) {
                prev[r][3u * n + 0u] = odd[r] ? w32[wq[r] + 16u * n] : 0u;
                prev[r][3u * n + 1u] = odd[r] ? w32[wq[r] + 16u * n + 8u] : 0u;
                prev[r][3u * n + 2u] = odd[r] ? w32[wq[r] + 32u + 8u * n] : 0u;
            }
        }
        for (uint k = 0; k < 8u; k++) {
            bool hi_is = k >= 4u; // scale index is = l / 16 for l = 4k..4k+3
            // Half n: word k of ql, ql + 32 and qh holds elements 128n + 4k + 32i.., i = 0..3.
            [[unroll]] for (uint n = 0; n < 2u; n++) {
                vec4 xv[NT][4];
                [[unroll]] for (uint t = 0; t < NT; t++)
                    [[unroll]] for (uint i = 0; i < 4u; i++)
                        xv[t][i] = x_vec4((xtok[t] + col + 128u * n + 4u * k + 32u * i) >> 2);
                [[unroll]] for (uint r = 0; r < RL; r++) {
                    uint base = wq[r] + k + (odd[r] ? 1u : 0u);
                    uint na = w32[base + 16u * n], nb = w32[base + 16u * n + 8u];
                    uint nh = w32[base + 32u + 8u * n];
                    uint qa = k_join(prev[r][3u * n], na, odd[r]);
                    uint qb = k_join(prev[r][3u * n + 1u], nb, odd[r]);
                    uint qh = k_join(prev[r][3u * n + 2u], nh, odd[r]);
                    prev[r][3u * n] = na;
                    prev[r][3u * n + 1u] = nb;
                    prev[r][3u * n + 2u] = nh;
                    // The 6-bit values of elements +0, +32, +64, +96, a byte each.
                    uint w[4];
                    w[0] = (qa & 0x0f0f0f0fu) | ((qh << 4) & 0x30303030u);
                    w[1] = (qb & 0x0f0f0f0fu) | ((qh << 2) & 0x30303030u);
                    w[2] = ((qa >> 4) & 0x0f0f0f0fu) | (qh & 0x30303030u);
                    w[3] = ((qb >> 4) & 0x0f0f0f0fu) | ((qh >> 2) & 0x30303030u);
                    [[unroll]] for (uint i = 0; i < 4u; i++) {
                        float sc = hi_is ? ds[r][8u * n + 2u * i + 1u] : ds[r][8u * n + 2u * i];
                        vec4 v = fma(k_bytes(w[i]), vec4(sc), vec4(-32.0 * sc));
                        [[unroll]] for (uint t = 0; t < NT; t++) acc[r][t] += dot(v, xv[t][i]);
                    }
                }
            }
        }
    }
#endif
    [[unroll]] for (uint t = 0; t < NT; t++) {
        if (tok0 + t >= p.n_tok) break;
        [[unroll]] for (uint r = 0; r < RL; r++)
            if (row0 + r < p.rows) STORE_Y(p.y_base + (tok0 + t) * p.y_stride + row0 + r, acc[r][t]);
    }
}
