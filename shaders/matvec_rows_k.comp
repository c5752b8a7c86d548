#version 450
// Y = X W^T for the K-quants (Q4_K, Q5_K, Q6_K) with RL whole rows per invocation and NT
// tokens: matvec_rows.comp's by-row scheme for CPU Vulkan devices (lavapipe), shaped so that
// lavapipe compiles it in about the time it takes for Q4_0. Unrolling a whole 256-element
// super-block for RL rows and NT tokens, as matvec_rows.comp does with its blocks, gives code
// that lavapipe takes 5-100 s to compile. Here a super-block is a loop over the 8 word
// positions k of its 32-byte runs of quants; only UK positions (every run of every row, for
// every token) are unrolled. Per super-block each invocation decodes its rows' scales once into
// registers; every weight word is read once with a 32-bit load; every x vec4 once per RL rows.
// Q6_K blocks (210 bytes) start 2 bytes off a word every other block: such runs are read as
// whole words too, each word joined with the next one (one extra load per run).
// Needs rows 4-byte aligned for Q4_K / Q5_K (always true) and 2-byte aligned for Q6_K.
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
#ifndef UK
#define UK 1 // word positions per unrolled step: 1, 2, 4 or 8
#endif

layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };

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

#ifdef WTYPE_Q6_K
// The 32-bit word at 16-bit index 2*i + odd, from the aligned words a = w32[i], b = w32[i + 1].
uint k_join(uint a, uint b, bool odd) { return odd ? (a >> 16) | (b << 16) : a; }
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
    for (uint b = 0; b < n_blocks; b++) {
        uint col = b * DQ_BLOCK;
#if defined(WTYPE_Q4_K) || defined(WTYPE_Q5_K)
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
        for (uint k0 = 0; k0 < 8u; k0 += UK) {
            [[unroll]] for (uint kk = 0; kk < UK; kk++) {
                uint k = k0 + kk;
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
                        xl[t] = x4[xi >> 2];
                        xh[t] = x4[(xi + 32u) >> 2];
                    }
                    [[unroll]] for (uint r = 0; r < RL; r++) {
                        uint q = w32[wb[r] + DQ_QS32 + 8u * c + k];
                        uvec4 lo = dq_bytes(q, 0u, 15u), hi = dq_bytes(q, 4u, 15u);
#ifdef WTYPE_Q5_K
                        lo |= dq_bits(qh[r], 2u * c) << 4;
                        hi |= dq_bits(qh[r], 2u * c + 1u) << 4;
#endif
                        vec4 vl = dsc[r][2u * c] * vec4(lo) - dmn[r][2u * c];
                        vec4 vh = dsc[r][2u * c + 1u] * vec4(hi) - dmn[r][2u * c + 1u];
                        [[unroll]] for (uint t = 0; t < NT; t++) acc[r][t] += dot(vl, xl[t]) + dot(vh, xh[t]);
                    }
                }
            }
        }
#else // Q6_K
        // The 16 scales of each row times d; and the first aligned word of each of the six
        // 32-byte runs (per half n: ql low, ql high, qh), carried from one position to the next.
        float ds[RL][16];
        uint prev[RL][6], wq[RL];
        bool odd[RL];
        [[unroll]] for (uint r = 0; r < RL; r++) {
            uint blk = wrow[r] + b * DQ_BLOCK_W16;
            odd[r] = (blk & 1u) != 0u;
            wq[r] = blk >> 1;
            float d = unpackHalf2x16(uint(w16[blk + 104u])).x;
            // Scales: 16 bytes at 16-bit word 96, read as 4 (aligned) or 5 words.
            uint sw = (blk + 96u) >> 1;
            uint s[5];
            [[unroll]] for (uint i = 0; i < 4u; i++) s[i] = w32[sw + i];
            s[4] = w32[(blk + 96u + 7u) >> 1]; // the fifth word when odd, else the fourth again
            [[unroll]] for (uint i = 0; i < 4u; i++) {
                ivec4 sc = ivec4(uvec4(k_join(s[i], s[i + 1u], odd[r])) << uvec4(24u, 16u, 8u, 0u)) >> 24;
                ds[r][4u * i + 0u] = d * float(sc.x);
                ds[r][4u * i + 1u] = d * float(sc.y);
                ds[r][4u * i + 2u] = d * float(sc.z);
                ds[r][4u * i + 3u] = d * float(sc.w);
            }
            [[unroll]] for (uint n = 0; n < 2u; n++) {
                prev[r][3u * n + 0u] = w32[((blk + 32u * n) >> 1)];
                prev[r][3u * n + 1u] = w32[((blk + 32u * n + 16u) >> 1)];
                prev[r][3u * n + 2u] = w32[((blk + 64u + 16u * n) >> 1)];
            }
        }
        for (uint k0 = 0; k0 < 8u; k0 += UK) {
            [[unroll]] for (uint kk = 0; kk < UK; kk++) {
                uint k = k0 + kk;
                bool hi_is = k >= 4u; // scale index is = l / 16 for l = 4k..4k+3
                // Half n: word k of ql, ql + 32 and qh holds elements 128n + 4k + 32i.., i = 0..3.
                [[unroll]] for (uint n = 0; n < 2u; n++) {
                    vec4 xv[NT][4];
                    [[unroll]] for (uint t = 0; t < NT; t++)
                        [[unroll]] for (uint i = 0; i < 4u; i++)
                            xv[t][i] = x4[(xtok[t] + col + 128u * n + 4u * k + 32u * i) >> 2];
                    [[unroll]] for (uint r = 0; r < RL; r++) {
                        uint base = wq[r] + k + 1u;
                        uint na = w32[base + 16u * n], nb = w32[base + 16u * n + 8u];
                        uint nh = w32[base + 32u + 8u * n];
                        uint qa = k_join(prev[r][3u * n], na, odd[r]);
                        uint qb = k_join(prev[r][3u * n + 1u], nb, odd[r]);
                        uint qh = k_join(prev[r][3u * n + 2u], nh, odd[r]);
                        prev[r][3u * n] = na;
                        prev[r][3u * n + 1u] = nb;
                        prev[r][3u * n + 2u] = nh;
                        vec4 v[4];
                        v[0] = vec4(dq_bytes(qa, 0u, 15u) | (dq_bytes(qh, 0u, 3u) << 4)) - 32.0;
                        v[1] = vec4(dq_bytes(qb, 0u, 15u) | (dq_bytes(qh, 2u, 3u) << 4)) - 32.0;
                        v[2] = vec4(dq_bytes(qa, 4u, 15u) | (dq_bytes(qh, 4u, 3u) << 4)) - 32.0;
                        v[3] = vec4(dq_bytes(qb, 4u, 15u) | (dq_bytes(qh, 6u, 3u) << 4)) - 32.0;
                        [[unroll]] for (uint i = 0; i < 4u; i++) {
                            float s = hi_is ? ds[r][8u * n + 2u * i + 1u] : ds[r][8u * n + 2u * i];
                            v[i] *= s;
                        }
                        [[unroll]] for (uint t = 0; t < NT; t++)
                            acc[r][t] += dot(v[0], xv[t][0]) + dot(v[1], xv[t][1]) + dot(v[2], xv[t][2]) +
                                         dot(v[3], xv[t][3]);
                    }
                }
            }
        }
#endif
    }
    [[unroll]] for (uint t = 0; t < NT; t++) {
        if (tok0 + t >= p.n_tok) break;
        [[unroll]] for (uint r = 0; r < RL; r++)
            if (row0 + r < p.rows) y[p.y_base + (tok0 + t) * p.y_stride + row0 + r] = acc[r][t];
    }
}
