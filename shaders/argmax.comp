#version 450
// Index of the largest logit, lowest index on ties, NaNs skipped; one workgroup for the
// whole vector (greedy decoding reads one index, so a second pass would cost more than the
// strided read). Reduces per subgroup, then across subgroups in shared memory.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) readonly buffer L { float logits[]; };  // (n)
layout(std430, binding = 1) writeonly buffer O { uint result[]; };  // (1)
layout(push_constant) uniform P { uint n; } p;

const uint NONE = 0xffffffffu;
const uint MAX_SUBGROUPS = 128;
shared float s_val[MAX_SUBGROUPS];
shared uint s_idx[MAX_SUBGROUPS];

// Does candidate (v, i) beat (bv, bi)? NONE loses to anything that is not NaN.
bool better(float v, uint i, float bv, uint bi) {
    if (i == NONE || isnan(v)) return false;
    if (bi == NONE) return true;
#ifdef ARGMAX_BROKEN_LAST_TIE
    return v > bv || (v == bv && i > bi);
#else
    return v > bv || (v == bv && i < bi);
#endif
}

void main() {
    uint lid = gl_LocalInvocationID.x;
    float bv = -1.0 / 0.0;
    uint bi = NONE;
    // Four consecutive logits per step keep more loads in flight; each invocation still
    // visits its indices in increasing order, so a later tie never displaces an earlier one.
    uint n4 = p.n / 4;
    for (uint i4 = lid; i4 < n4; i4 += gl_WorkGroupSize.x) {
        uint i = 4 * i4;
        float v0 = logits[i], v1 = logits[i + 1], v2 = logits[i + 2], v3 = logits[i + 3];
        if (better(v0, i, bv, bi)) bv = v0, bi = i;
        if (better(v1, i + 1, bv, bi)) bv = v1, bi = i + 1;
        if (better(v2, i + 2, bv, bi)) bv = v2, bi = i + 2;
        if (better(v3, i + 3, bv, bi)) bv = v3, bi = i + 3;
    }
    for (uint i = 4 * n4 + lid; i < p.n; i += gl_WorkGroupSize.x)
        if (better(logits[i], i, bv, bi)) bv = logits[i], bi = i;
    // bv is -inf (never NaN) where bi is NONE, so the subgroup max is a real candidate value
    // whenever the subgroup has one; the lowest index holding it wins.
    float m = subgroupMax(bv);
#ifdef ARGMAX_BROKEN_LAST_TIE
    uint mi = subgroupMax((bv == m && bi != NONE) ? bi : 0u);
#else
    uint mi = subgroupMin((bv == m && bi != NONE) ? bi : NONE);
#endif
    if (subgroupElect()) {
        s_val[gl_SubgroupID] = m;
        s_idx[gl_SubgroupID] = mi;
    }
    barrier();
    if (lid == 0) {
        float best = s_val[0];
        uint best_i = s_idx[0];
        for (uint s = 1; s < gl_NumSubgroups; s++)
            if (better(s_val[s], s_idx[s], best, best_i)) best = s_val[s], best_i = s_idx[s];
        result[0] = best_i == NONE ? 0u : best_i;
    }
}
