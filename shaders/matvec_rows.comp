#version 450
// Y = X W^T with RL whole weight rows per invocation, for CPU Vulkan devices (lavapipe).
// There every buffer load costs a loop over the subgroup's lanes per component, while
// arithmetic is vectorized, so this kernel minimizes load components per product: each
// invocation copies GROUP blocks of each of its rows into registers with 32-bit loads,
// decodes them there, and applies every x vec4 it loads to all RL rows, for NT tokens at once.
// No shared memory, no barriers. On GPUs neighbouring invocations would read different rows,
// so there matvec.comp / matmul.comp are the kernels to use.
// Needs the row start and length to be multiples of 4 bytes and the row a whole number of
// GROUPs; the host checks that. LOAD64 reads the words in pairs (rows and GROUPs on 8-byte
// boundaries, which the host also checks).
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

#ifndef GROUP
#define GROUP 2
#endif
#ifndef RL
#define RL 8
#endif
#ifndef NT
#define NT 1
#endif
#define MR_WORDS (uint(GROUP) * DQ_BLOCK_W16 / 2u) // 32-bit words of one row per group
#define DQ_REGS 1
#define DQ_REGS_WORDS (uint(RL) * MR_WORDS)
#include "dequant.glsl"

#ifdef LOAD64
// Weights read 64 bits at a time: half the loads (lavapipe loops over the lanes for each, and
// its cost hardly depends on the width).
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require
layout(std430, binding = 0) readonly buffer W64 { uint64_t w64[]; };
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
    uint n_groups; // GROUPs per row
    uint row_w16;  // 16-bit words per row (even)
    uint w_base;   // 16-bit word where row 0 starts in binding 0 (even)
    uint x_base;   // float index of token 0's x in binding 1, a multiple of 4
    uint x_stride; // floats between tokens in x, a multiple of 4
    uint y_base;   // float index of Y[0][0] in binding 2
    uint y_stride; // floats between tokens in Y
} p;

void main() {
    uint row0 = (gl_WorkGroupID.x * gl_WorkGroupSize.x + gl_LocalInvocationID.x) * RL;
    uint tok0 = gl_WorkGroupID.y * NT;
    // Rows and tokens past the end repeat the last one and are never stored: every
    // invocation stays active, and no load leaves the bindings.
    uint wrow[RL];
    [[unroll]] for (uint r = 0; r < RL; r++) wrow[r] = (p.w_base + min(row0 + r, p.rows - 1u) * p.row_w16) >> 1;
    uint xtok[NT];
    [[unroll]] for (uint t = 0; t < NT; t++) xtok[t] = p.x_base + min(tok0 + t, p.n_tok - 1u) * p.x_stride;
    float acc[RL][NT];
    [[unroll]] for (uint r = 0; r < RL; r++)
        [[unroll]] for (uint t = 0; t < NT; t++) acc[r][t] = 0.0;

    uint n_groups = p.n_groups;
#ifdef BROKEN_SKIP_LAST_BLOCK
    n_groups -= min(n_groups, 1u); // deliberately wrong: tests prove they catch it
#endif
    for (uint g = 0; g < n_groups; g++) {
#ifdef LOAD64
        [[unroll]] for (uint r = 0; r < RL; r++)
            [[unroll]] for (uint k = 0; k < MR_WORDS / 2u; k++) {
                uvec2 q = unpackUint2x32(w64[(wrow[r] + g * MR_WORDS) / 2u + k]);
                dq_regs[r * MR_WORDS + 2u * k] = q.x;
                dq_regs[r * MR_WORDS + 2u * k + 1u] = q.y;
            }
#else
        [[unroll]] for (uint r = 0; r < RL; r++)
            [[unroll]] for (uint k = 0; k < MR_WORDS; k++) dq_regs[r * MR_WORDS + k] = w32[wrow[r] + g * MR_WORDS + k];
#endif
        [[unroll]] for (uint blk = 0; blk < GROUP; blk++) {
            uint col = (g * GROUP + blk) * DQ_BLOCK;
#ifdef DQ_AFFINE
            // Quants times x per block, then the block's scale and offset once per row:
            // two operations fewer per weight than decoding each value.
            float bq[RL][NT], bx[NT];
            [[unroll]] for (uint t = 0; t < NT; t++) {
                bx[t] = 0.0;
                [[unroll]] for (uint r = 0; r < RL; r++) bq[r][t] = 0.0;
            }
#endif
            [[unroll]] for (uint u = 0; u < DQ_UNITS; u++) {
                vec4 xv[NT][DQ_UV4];
                [[unroll]] for (uint t = 0; t < NT; t++)
                    [[unroll]] for (uint i = 0; i < DQ_UV4; i++) xv[t][i] = x_vec4((xtok[t] + col + dq_elem(u, i)) >> 2);
                [[unroll]] for (uint r = 0; r < RL; r++) {
                    vec4 v[DQ_UV4];
#ifdef DQ_AFFINE
                    dq_unit_q(2u * r * MR_WORDS + blk * DQ_BLOCK_W16, u, v);
                    [[unroll]] for (uint t = 0; t < NT; t++)
                        [[unroll]] for (uint i = 0; i < DQ_UV4; i++) bq[r][t] += dot(v[i], xv[t][i]);
#else
                    dq_unit(2u * r * MR_WORDS + blk * DQ_BLOCK_W16, u, 4u, v);
                    [[unroll]] for (uint t = 0; t < NT; t++)
                        [[unroll]] for (uint i = 0; i < DQ_UV4; i++) acc[r][t] += dot(v[i], xv[t][i]);
#endif
                }
#ifdef DQ_AFFINE
                [[unroll]] for (uint t = 0; t < NT; t++)
                    [[unroll]] for (uint i = 0; i < DQ_UV4; i++) bx[t] += dot(xv[t][i], vec4(1.0));
#endif
            }
#ifdef DQ_AFFINE
            [[unroll]] for (uint r = 0; r < RL; r++) {
                vec2 a = dq_affine(2u * r * MR_WORDS + blk * DQ_BLOCK_W16);
                [[unroll]] for (uint t = 0; t < NT; t++) acc[r][t] += a.x * bq[r][t] + a.y * bx[t];
            }
#endif
        }
    }
    [[unroll]] for (uint t = 0; t < NT; t++) {
        if (tok0 + t >= p.n_tok) break;
        [[unroll]] for (uint r = 0; r < RL; r++)
            if (row0 + r < p.rows) STORE_Y(p.y_base + (tok0 + t) * p.y_stride + row0 + r, acc[r][t]);
    }
}
