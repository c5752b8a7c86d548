#version 450
// out[i][dim] = row ids[i] of an embedding table of any weight type, dequantized. One
// invocation per decode unit of each output row. A table too large for one binding is bound
// in row chunks, one dispatch each; a dispatch only writes the ids that fall in its chunk,
// and the first one also zeroes the rows of ids outside the table.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "dequant.glsl"

layout(std430, binding = 1) readonly buffer Ids { int ids[]; };
layout(std430, binding = 2) writeonly buffer Out4 { vec4 out4[]; };
layout(std430, binding = 2) writeonly buffer Out1 { float out1[]; };

layout(push_constant) uniform P {
    uint n_ids;     // ids of this dispatch
    uint dim;
    uint units;     // decode units per row
    uint row_w16;   // 16-bit words per row
    uint w_base;    // 16-bit word where row `row_lo` starts in binding 0
    uint row_lo;    // first table row in this binding
    uint row_n;     // table rows in this binding
    uint n_vocab;   // table rows in all
    uint zero_bad;  // 1: write zeros for ids outside [0, n_vocab)
    uint ids_base;  // int index of the first id in binding 1
    uint out_base;  // float index of out[0][0] in binding 2, a multiple of 4 unless ragged
} p;

void main() {
    uint g = flat_index();
    uint units = p.units;
#ifdef BROKEN_SKIP_LAST_BLOCK
    units -= min(units, DQ_UNITS); // deliberately wrong: tests prove they catch it
#endif
    if (g >= p.n_ids * units) return;
    uint i = g / units, u = g % units;
    int id = ids[p.ids_base + i];
    uint b = u / DQ_UNITS, uu = u % DQ_UNITS;
    uint ob = p.out_base + i * p.dim + b * DQ_BLOCK;
    uint lim = p.dim - b * DQ_BLOCK;
    vec4 v[DQ_UV4];
    if (id < 0 || uint(id) >= p.n_vocab) {
        if (p.zero_bad == 0u) return;
        [[unroll]] for (uint k = 0; k < DQ_UV4; k++) v[k] = vec4(0.0);
    } else {
        uint row = uint(id);
        if (row < p.row_lo || row - p.row_lo >= p.row_n) return;
        dq_unit(p.w_base + (row - p.row_lo) * p.row_w16 + b * DQ_BLOCK_W16, uu, lim, v);
    }
#ifdef DQ_RAGGED
    [[unroll]] for (uint c = 0; c < 4; c++)
        if (c < lim) out1[ob + c] = v[0][c];
#else
    [[unroll]] for (uint k = 0; k < DQ_UV4; k++) out4[(ob + dq_elem(uu, k)) >> 2] = v[k];
#endif
}
