#version 450
// One whole decoder layer for one token in a single workgroup, for models so small that a
// dispatch costs more than the work in it (runtime/kern/kern_layer.h says when it is used):
//   xb = rmsnorm(x); q,k,v = Wq/Wk/Wv xb; rope(q, k); cache[pos] <- k, v;
//   att = softmax(q.K * scale) V; x += Wo att; xb = rmsnorm(x);
//   x += Wdown (silu(Wgate xb) * (Wup xb))
// The same arithmetic as the separate kernels: fp32 accumulation, RoPE angles from rope.glsl,
// K and V rounded to f16 as kv_write.comp stores them. Every intermediate vector stays in
// shared memory; the layer's nine tensors are one buffer (binding 0, read through
// dequant.glsl), each at its own offset.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "dequant.glsl"
#include "rope.glsl"

// Shared floats: x, xb, q, k, v, att (FL_D .. FL_QD sized), the FFN hidden vector and the
// score tile. The host sizes them per model (defaults: the build-time syntax check).
#ifndef FL_D
#define FL_D 64u
#define FL_QD 64u
#define FL_KVD 32u
#define FL_FF 176u
#define FL_HEADS 8u
#endif
// Scores staged per step of the attention loop: FL_TILE positions of every head.
#define FL_TILE_FLOATS 1024u

layout(std430, binding = 1) buffer X { float x[]; };  // (n_embd) the residual stream
#ifdef CACHE_F32
layout(std430, binding = 2) buffer KC { float kc[]; };  // (n_ctx, kv_dim)
layout(std430, binding = 3) buffer VC { float vc[]; };
#else
layout(std430, binding = 2) buffer KC { uint kc[]; };  // (n_ctx, kv_dim) halves, two a word
layout(std430, binding = 3) buffer VC { uint vc[]; };
#endif
#ifdef POS_BUF
// Record-once decode: the token's position is the first word of this buffer.
layout(std430, binding = 4) readonly buffer PB { uint pos_buf[]; };
#define POS pos_buf[0]
#else
#define POS p.pos
#endif

layout(push_constant) uniform P {
    uint w_off[7];       // 16-bit word of Wq, Wk, Wv, Wo, Wgate, Wup, Wdown in binding 0
    uint attn_norm, ffn_norm; // 32-bit word of the two norm weight vectors
    uint d, n_head, n_head_kv, head_dim, ff, rot_dim, neox;
    uint pos;
    float f0_hi, f0_lo, r_hi, r_lo; // RoPE, as rope.comp's push constants
    float eps, scale;
} p;

shared float s_x[FL_D], s_xb[FL_D], s_q[FL_QD], s_k[FL_KVD], s_v[FL_KVD], s_att[FL_QD], s_h[FL_FF];
shared float s_p[FL_TILE_FLOATS];
shared float s_m[FL_HEADS], s_l[FL_HEADS], s_corr[FL_HEADS];

// The vector a product reads, and where its rows go.
#define SRC_XB 0u
#define SRC_ATT 1u
#define SRC_H 2u
#define DST_Q 0u
#define DST_K 1u
#define DST_V 2u
#define DST_X_ADD 3u
#define DST_GATE 4u
#define DST_GLU 5u

float src_at(uint src, uint i) {
    if (src == SRC_XB) return s_xb[i];
    if (src == SRC_ATT) return s_att[i];
    return s_h[i];
}

void dst_store(uint dst, uint r, float v) {
    if (dst == DST_Q) s_q[r] = v;
    else if (dst == DST_K) s_k[r] = v;
    else if (dst == DST_V) s_v[r] = v;
    else if (dst == DST_X_ADD) s_x[r] += v;
    else if (dst == DST_GATE) s_h[r] = v;
    else {
        float g = s_h[r];
        s_h[r] = g / (1.0 + exp(-g)) * v;
    }
}

// rows x cols weights at 16-bit word w times a shared vector. Ends with a barrier, so the
// destination is complete for everyone.
#ifdef FL_BY_ROW
// CPU devices (lavapipe): one row per invocation, so the shared vector's reads are the same
// for every lane and no cross-lane sum is needed.
void product(uint w, uint rows, uint cols, uint src, uint dst) {
    uint blocks = cols / DQ_BLOCK, row_w16 = blocks * DQ_BLOCK_W16;
    for (uint r0 = 0u; r0 < rows; r0 += gl_WorkGroupSize.x) {
        uint r = min(r0 + gl_LocalInvocationID.x, rows - 1u); // the tail repeats the last row
        float acc = 0.0;
        for (uint b = 0u; b < blocks; b++) {
            // Not unrolled: the K-quants' 16 units would make code that lavapipe is slow to compile.
            for (uint uu = 0u; uu < DQ_UNITS; uu++) {
                vec4 v[DQ_UV4];
                dq_unit(w + r * row_w16 + b * DQ_BLOCK_W16, uu, 4u, v);
                [[unroll]] for (uint i = 0; i < DQ_UV4; i++) {
                    uint e = b * DQ_BLOCK + dq_elem(uu, i);
                    acc += dot(v[i], vec4(src_at(src, e), src_at(src, e + 1u), src_at(src, e + 2u), src_at(src, e + 3u)));
                }
            }
        }
        if (r0 + gl_LocalInvocationID.x < rows) dst_store(dst, r, acc);
    }
    barrier();
}
#else
// GPUs: one subgroup per row at a time, its lanes striding over the row's decode units so
// neighbours read neighbouring words; subgroupAdd gathers the row.
void product(uint w, uint rows, uint cols, uint src, uint dst) {
    uint units = cols / DQ_BLOCK * DQ_UNITS;
    uint row_w16 = cols / DQ_BLOCK * DQ_BLOCK_W16;
    for (uint r = gl_SubgroupID; r < rows; r += gl_NumSubgroups) {
        float acc = 0.0;
        for (uint u = gl_SubgroupInvocationID; u < units; u += gl_SubgroupSize) {
            uint b = u / DQ_UNITS, uu = u % DQ_UNITS;
            vec4 v[DQ_UV4];
            dq_unit(w + r * row_w16 + b * DQ_BLOCK_W16, uu, 4u, v);
            [[unroll]] for (uint i = 0; i < DQ_UV4; i++) {
                uint e = b * DQ_BLOCK + dq_elem(uu, i);
                acc += dot(v[i], vec4(src_at(src, e), src_at(src, e + 1u), src_at(src, e + 2u), src_at(src, e + 3u)));
            }
        }
        acc = subgroupAdd(acc);
        if (subgroupElect()) dst_store(dst, r, acc);
    }
    barrier();
}
#endif

// xb = rmsnorm(x) * weight (32-bit word nw of binding 0).
void norm(uint nw) {
    float ss = 0.0;
    for (uint i = gl_LocalInvocationID.x; i < p.d; i += gl_WorkGroupSize.x) ss += s_x[i] * s_x[i];
    float sc = inversesqrt(wg_sum(ss) / float(p.d) + p.eps);
    for (uint i = gl_LocalInvocationID.x; i < p.d; i += gl_WorkGroupSize.x)
        s_xb[i] = s_x[i] * sc * uintBitsToFloat(w32[nw + i]);
    barrier();
}

// Rotates pairs of v (n heads) in place at position pos.
void rope_heads(bool keys, uint n, float pos) {
    uint half_rot = p.rot_dim / 2u;
    for (uint j = gl_LocalInvocationID.x; j < n * half_rot; j += gl_WorkGroupSize.x) {
        uint i = j % half_rot, base = j / half_rot * p.head_dim;
        vec2 sc = rope_sincos(vec2(p.f0_hi, p.f0_lo), vec2(p.r_hi, p.r_lo), pos, i);
        uint i0 = base + (p.neox != 0u ? i : 2u * i);
        uint i1 = base + (p.neox != 0u ? i + half_rot : 2u * i + 1u);
        float a = keys ? s_k[i0] : s_q[i0], b = keys ? s_k[i1] : s_q[i1];
        float o0 = a * sc.y - b * sc.x, o1 = a * sc.x + b * sc.y;
        if (keys) {
            s_k[i0] = o0;
            s_k[i1] = o1;
        } else {
            s_q[i0] = o0;
            s_q[i1] = o1;
        }
    }
}

// K or V element i of cache position t; position `pos` itself comes from shared memory (its
// cache write is not visible inside this dispatch).
float k_at(uint t, uint pos, uint kvd, uint i) {
    if (t == pos) return s_k[i];
#ifdef CACHE_F32
    return kc[t * kvd + i];
#else
    return unpackHalf2x16(kc[(t * kvd + i) >> 1])[i & 1u];
#endif
}
float v_at(uint t, uint pos, uint kvd, uint i) {
    if (t == pos) return s_v[i];
#ifdef CACHE_F32
    return vc[t * kvd + i];
#else
    return unpackHalf2x16(vc[(t * kvd + i) >> 1])[i & 1u];
#endif
}

void main() {
    uint tid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x;
    uint pos = POS;
    uint hd = p.head_dim, qd = p.n_head * hd, kvd = p.n_head_kv * hd;
    for (uint i = tid; i < p.d; i += wg) s_x[i] = x[i];
    barrier();

    norm(p.attn_norm);
    product(p.w_off[0], qd, p.d, SRC_XB, DST_Q);
    product(p.w_off[1], kvd, p.d, SRC_XB, DST_K);
    product(p.w_off[2], kvd, p.d, SRC_XB, DST_V);
    rope_heads(false, p.n_head, float(pos));
    rope_heads(true, p.n_head_kv, float(pos));
    barrier();

    // This position's K and V into the cache, and kept in shared memory as the cache holds them.
    for (uint i = 2u * tid; i < kvd; i += 2u * wg) {
#ifdef CACHE_F32
        kc[pos * kvd + i] = s_k[i];
        kc[pos * kvd + i + 1u] = s_k[i + 1u];
        vc[pos * kvd + i] = s_v[i];
        vc[pos * kvd + i + 1u] = s_v[i + 1u];
#else
        uint kw = packHalf2x16(vec2(s_k[i], s_k[i + 1u])), vw = packHalf2x16(vec2(s_v[i], s_v[i + 1u]));
        kc[(pos * kvd + i) >> 1] = kw;
        vc[(pos * kvd + i) >> 1] = vw;
        vec2 kr = unpackHalf2x16(kw), vr = unpackHalf2x16(vw);
        s_k[i] = kr.x;
        s_k[i + 1u] = kr.y;
        s_v[i] = vr.x;
        s_v[i + 1u] = vr.y;
#endif
    }
    for (uint h = tid; h < p.n_head; h += wg) {
        s_m[h] = -3.0e38;
        s_l[h] = 0.0;
    }
    for (uint i = tid; i < qd; i += wg) s_att[i] = 0.0;
    barrier();

    // Attention over positions 0..pos, a tile of positions of every head at a time, with a
    // running maximum and sum per head (online softmax).
    uint group = p.n_head / p.n_head_kv;
    uint tile = FL_TILE_FLOATS / p.n_head;
    for (uint t0 = 0u; t0 <= pos; t0 += tile) {
        uint nt = min(tile, pos + 1u - t0);
        for (uint j = tid; j < p.n_head * nt; j += wg) {
            uint h = j / nt, t = t0 + j % nt, kb = h / group * hd;
            float s = 0.0;
            for (uint i = 0u; i < hd; i++) s += s_q[h * hd + i] * k_at(t, pos, kvd, kb + i);
            s_p[h * tile + j % nt] = s * p.scale;
        }
        barrier();
        for (uint h = tid; h < p.n_head; h += wg) {
            float m = s_m[h];
            for (uint j = 0u; j < nt; j++) m = max(m, s_p[h * tile + j]);
            float corr = exp(s_m[h] - m), sum = 0.0;
            for (uint j = 0u; j < nt; j++) {
                float e = exp(s_p[h * tile + j] - m);
                s_p[h * tile + j] = e;
                sum += e;
            }
            s_l[h] = s_l[h] * corr + sum;
            s_m[h] = m;
            s_corr[h] = corr;
        }
        barrier();
        for (uint i = tid; i < qd; i += wg) {
            uint h = i / hd, vi = h / group * hd + i % hd;
            float a = s_att[i] * s_corr[h];
            for (uint j = 0u; j < nt; j++) a += s_p[h * tile + j] * v_at(t0 + j, pos, kvd, vi);
            s_att[i] = a;
        }
        barrier();
    }
    for (uint i = tid; i < qd; i += wg) s_att[i] /= s_l[i / hd];
    barrier();

    product(p.w_off[3], p.d, qd, SRC_ATT, DST_X_ADD);
    norm(p.ffn_norm);
    product(p.w_off[4], p.ff, p.d, SRC_XB, DST_GATE);
    product(p.w_off[5], p.ff, p.d, SRC_XB, DST_GLU);
    product(p.w_off[6], p.d, p.ff, SRC_H, DST_X_ADD);
    for (uint i = tid; i < p.d; i += wg) x[i] = s_x[i];
}
