#version 450
// Fused causal grouped-query attention with an online softmax (running max and sum), the
// same kernel for prefill and decode. A workgroup owns ROWS query rows, up to heads_per_wg
// heads of one KV group times toks_per_wg tokens, so each K/V tile staged in shared memory
// serves the whole group. It walks its context chunk TILE positions at a time and never
// writes a score matrix; the next tile's loads are in flight while the current one is used.
// With SPLIT it writes the unnormalized partial (acc, max, sum) of its chunk for
// attn_combine.comp; otherwise the finished rows.
// Scores live in the base-2 domain: the host folds log2(e) into the scale, so exp2 suffices.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

#ifndef HD
#define HD 64
#endif
#ifndef ROWS
#define ROWS 4
#endif
#ifndef TILE
#define TILE 32
#endif
#ifndef WG_SIZE
#define WG_SIZE 128  // must equal the workgroup size (specialization constant 0)
#endif

#define HD2 (HD / 2)
#define HD4 (HD / 4)
#define HD8 (HD / 8)
#define KSTRIDE (HD4 + 1)                       // vec4s per staged K row; the pad spreads rows over banks
#define TPR (WG_SIZE / ROWS)                    // invocations per query row for scores and softmax
#define NS ((TILE + TPR - 1) / TPR)             // positions each of them scores per tile
#define NPAIR (ROWS * HD2)
#define ACC ((NPAIR + WG_SIZE - 1) / WG_SIZE)   // output pairs each invocation accumulates
#define NLD ((TILE * HD8 + WG_SIZE - 1) / WG_SIZE) // 8-element K and V groups each invocation fetches

layout(std430, binding = 0) readonly buffer Q { vec4 q[]; };  // (n_tok, n_head, HD)
// The caches from position kv_base on: (positions, n_kv_head, HD).
#ifdef CACHE_F32
layout(std430, binding = 1) readonly buffer KC { vec4 kc[]; };
layout(std430, binding = 2) readonly buffer VC { vec4 vc[]; };
#define FETCH_T vec4
#define FETCH_N 2  // words per 8-element group
#else
layout(std430, binding = 1) readonly buffer KC { uvec4 kc[]; };  // 8 halves per word
layout(std430, binding = 2) readonly buffer VC { uvec4 vc[]; };
#define FETCH_T uvec4
#define FETCH_N 1
#endif
// SPLIT: (n_split, n_tok, n_head, HD) unnormalized; else (n_tok, n_head, HD).
layout(std430, binding = 3) writeonly buffer O { vec2 o[]; };
#ifdef SPLIT
layout(std430, binding = 4) writeonly buffer ML { vec2 ml[]; };  // (n_split, n_tok, n_head): (max, sum)
#endif

#ifdef POS_BUF
// Record-once decode: the position of the first token is in this buffer, added to pos0.
#ifdef SPLIT
layout(std430, binding = 5) readonly buffer PB { uint pos_buf[]; };
#else
layout(std430, binding = 4) readonly buffer PB { uint pos_buf[]; };
#endif
#define POS0 (p.pos0 + pos_buf[0])
#else
#define POS0 p.pos0
#endif

layout(push_constant) uniform P {
    uint n_tok, pos0, n_head, group;  // group = n_head / n_kv_head
    uint kv_stride;                   // n_kv_head * HD: elements between cache positions
    uint heads_per_wg, toks_per_wg, head_blocks;
    float scale;   // score scale * log2(e)
    uint chunk;    // context positions per split
    uint split0;   // split of gl_WorkGroupID.z == 0
    uint kv_base;  // cache position at the start of the K/V bindings
} p;

shared vec4 sq[ROWS * HD4];      // scaled queries
shared vec4 sk[TILE * KSTRIDE];  // K tile
shared vec2 sv[TILE * HD2];      // V tile
shared float sp[ROWS * TILE];    // probabilities of the tile
// Per-invocation maximum of its scores in the tile, then sum of its probabilities; read
// four at a time by the row (TPR >= 4: WG_SIZE >= 64, ROWS <= 16).
shared vec4 s_max[WG_SIZE / 4];
shared vec4 s_sum[WG_SIZE / 4];
shared float s_alpha[ROWS];      // per-row rescale of the accumulators (at the end: the sum)
shared int s_last[ROWS];         // last visible position of each row; -1 for padding rows
shared uint s_qrow[ROWS];        // token * n_head + head

const float MASKED = -1.0e38;  // below any running max: exp2(MASKED - max) is 0
const float NO_MAX = -1.0e30;  // running max before any visible position

FETCH_T fk[NLD * FETCH_N], fv[NLD * FETCH_N];  // the next tile, in flight

// Starts the loads of the tile at `base` (n_in positions valid; zeros past them, so rows
// beyond the chunk can never leak in as NaN).
void fetch(uint base, uint n_in, uint kvh) {
    [[unroll]] for (uint i = 0; i < NLD; i++) {
        uint e = gl_LocalInvocationID.x + i * WG_SIZE;
        uint c = e / HD8;
        bool ok = e < TILE * HD8 && c < n_in;
        uint w = ok ? ((base + c - p.kv_base) * p.kv_stride + kvh * HD) / 8 + e % HD8 : 0u;
        [[unroll]] for (uint h = 0; h < FETCH_N; h++) {
            fk[i * FETCH_N + h] = ok ? kc[w * FETCH_N + h] : FETCH_T(0);
            fv[i * FETCH_N + h] = ok ? vc[w * FETCH_N + h] : FETCH_T(0);
        }
    }
}

void stage() {
    [[unroll]] for (uint i = 0; i < NLD; i++) {
        uint e = gl_LocalInvocationID.x + i * WG_SIZE;
        if (e >= TILE * HD8) break;
        uint c = e / HD8, j = e % HD8;
#ifdef CACHE_F32
        vec4 k0 = fk[2 * i], k1 = fk[2 * i + 1], v0 = fv[2 * i], v1 = fv[2 * i + 1];
#else
        vec4 k0 = vec4(unpackHalf2x16(fk[i].x), unpackHalf2x16(fk[i].y));
        vec4 k1 = vec4(unpackHalf2x16(fk[i].z), unpackHalf2x16(fk[i].w));
        vec4 v0 = vec4(unpackHalf2x16(fv[i].x), unpackHalf2x16(fv[i].y));
        vec4 v1 = vec4(unpackHalf2x16(fv[i].z), unpackHalf2x16(fv[i].w));
#endif
        sk[c * KSTRIDE + 2 * j] = k0;
        sk[c * KSTRIDE + 2 * j + 1] = k1;
        sv[c * HD2 + 4 * j] = v0.xy;
        sv[c * HD2 + 4 * j + 1] = v0.zw;
        sv[c * HD2 + 4 * j + 2] = v1.xy;
        sv[c * HD2 + 4 * j + 3] = v1.zw;
    }
}

void main() {
    uint lid = gl_LocalInvocationID.x;
    uint kvh = gl_WorkGroupID.x / p.head_blocks;
    uint hblk = gl_WorkGroupID.x % p.head_blocks;
    uint t0 = gl_WorkGroupID.y * p.toks_per_wg;
    uint split = p.split0 + gl_WorkGroupID.z;

    if (lid < ROWS) {
        uint tr = lid / p.heads_per_wg, hr = lid % p.heads_per_wg;
        uint t = t0 + tr, hg = hblk * p.heads_per_wg + hr;
        bool valid = lid < p.heads_per_wg * p.toks_per_wg && t < p.n_tok && hg < p.group;
        s_last[lid] = valid ? int(POS0 + t) : -1;
        s_qrow[lid] = valid ? t * p.n_head + kvh * p.group + hg : 0u;
    }
    barrier();
    for (uint e = lid; e < ROWS * HD4; e += WG_SIZE) {
        uint r = e / HD4;
        sq[e] = s_last[r] >= 0 ? q[s_qrow[r] * HD4 + e % HD4] * p.scale : vec4(0.0);
    }

    // This workgroup's positions: its chunk, cut at what its last token may see.
    uint t_last = min(t0 + p.toks_per_wg, p.n_tok) - 1;
    uint begin = split * p.chunk;
    uint end = min(begin + p.chunk, POS0 + t_last + 1);

    // Invocation (row, j) scores positions j, j + TPR, ... of each tile for its row; every
    // invocation of a row tracks the same running max, and the first also the sum.
    uint row = lid / TPR, j = lid % TPR;
    int last = s_last[row];
    float m_run = NO_MAX, l_run = 0.0;
    vec2 acc[ACC];
    [[unroll]] for (uint a = 0; a < ACC; a++) acc[a] = vec2(0.0);

    if (begin < end) fetch(begin, min(uint(TILE), end - begin), kvh);
    for (uint base = begin; base < end; base += TILE) {
        uint n_in = min(uint(TILE), end - base);
        stage();
        barrier();
        if (base + TILE < end) fetch(base + TILE, min(uint(TILE), end - base - TILE), kvh);

        float s[NS];
        [[unroll]] for (uint k = 0; k < NS; k++) s[k] = 0.0;
        for (uint d4 = 0; d4 < HD4; d4++) {
            vec4 qv = sq[row * HD4 + d4];
            [[unroll]] for (uint k = 0; k < NS; k++) {
                uint c = j + k * TPR;
                if (c < TILE) s[k] += dot(qv, sk[c * KSTRIDE + d4]);
            }
        }
        float mloc = MASKED;
        [[unroll]] for (uint k = 0; k < NS; k++) {
            uint c = j + k * TPR;
#ifdef ATTN_BROKEN_DROP_LAST
            bool visible = c < n_in && int(base + c) < last;
#else
            bool visible = c < n_in && int(base + c) <= last;
#endif
            s[k] = visible ? s[k] : MASKED;
            mloc = max(mloc, s[k]);
        }
        s_max[lid / 4][lid % 4] = mloc;
        barrier();

        float mx = m_run;
        [[unroll]] for (uint i = 0; i < TPR / 4; i++) {
            vec4 m4 = s_max[row * (TPR / 4) + i];
            mx = max(mx, max(max(m4.x, m4.y), max(m4.z, m4.w)));
        }
        float sum = 0.0;
        [[unroll]] for (uint k = 0; k < NS; k++) {
            uint c = j + k * TPR;
            if (c < TILE) {
                float pr = exp2(s[k] - mx);
                sp[row * TILE + c] = pr;
                sum += pr;
            }
        }
        float alpha = exp2(m_run - mx);
        m_run = mx;
        s_sum[lid / 4][lid % 4] = sum;
        if (j == 0) s_alpha[row] = alpha;
        barrier();

        if (j == 0) {
            vec4 t = vec4(0.0);
            [[unroll]] for (uint i = 0; i < TPR / 4; i++) t += s_sum[row * (TPR / 4) + i];
            l_run = l_run * alpha + ((t.x + t.y) + (t.z + t.w));
        }
#if (WG_SIZE % HD2) == 0
        // All accumulators of an invocation share one d2: each V pair is read once.
        uint d2 = lid % HD2;
        [[unroll]] for (uint a = 0; a < ACC; a++)
            if (lid + a * WG_SIZE < NPAIR) acc[a] *= s_alpha[(lid + a * WG_SIZE) / HD2];
        for (uint c = 0; c < TILE; c++) {
            vec2 v = sv[c * HD2 + d2];
            [[unroll]] for (uint a = 0; a < ACC; a++)
                if (lid + a * WG_SIZE < NPAIR) acc[a] += sp[((lid + a * WG_SIZE) / HD2) * TILE + c] * v;
        }
#else
        [[unroll]] for (uint a = 0; a < ACC; a++) {
            uint e = lid + a * WG_SIZE;
            if (e < NPAIR) {
                uint r = e / HD2, dd = e % HD2;
                vec2 sacc = acc[a] * s_alpha[r];
                for (uint c = 0; c < TILE; c++) sacc += sp[r * TILE + c] * sv[c * HD2 + dd];
                acc[a] = sacc;
            }
        }
#endif
        barrier();
    }

#ifdef SPLIT
    uint part = split * p.n_tok * p.n_head;
    if (j == 0 && last >= 0) ml[part + s_qrow[row]] = vec2(m_run, l_run);
    [[unroll]] for (uint a = 0; a < ACC; a++) {
        uint e = lid + a * WG_SIZE;
        if (e < NPAIR && s_last[e / HD2] >= 0) o[(part + s_qrow[e / HD2]) * HD2 + e % HD2] = acc[a];
    }
#else
    if (j == 0) s_alpha[row] = l_run;
    barrier();
    [[unroll]] for (uint a = 0; a < ACC; a++) {
        uint e = lid + a * WG_SIZE;
        if (e < NPAIR && s_last[e / HD2] >= 0)
            o[s_qrow[e / HD2] * HD2 + e % HD2] = acc[a] / s_alpha[e / HD2];
    }
#endif
}
