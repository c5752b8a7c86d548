/* Weight-type codecs: handcrafted blocks (built byte by byte from shared/FORMATS.md) decode
 * to hand-computed values, quantize->dequantize error stays within per-type bounds, the
 * f16/bf16 conversions match an independent nearest-value search, and the table lookups. */
#include "runtime/format/wtype.h"
#include "tests/harness.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Raw block bytes, aligned so the decoders may read them through the block structs. */
typedef struct raw_blocks {
    _Alignas(16) uint8_t b[2 * 256];
} raw_blocks;

static const wtype_traits *traits(uint32_t type) {
    const wtype_traits *t = wtype_get(type);
    CHECK_MSG(t && t->to_float && t->from_float, "type %u has no codecs", type);
    return t;
}

static void put_f16(uint8_t *p, uint16_t h) {
    p[0] = (uint8_t)(h & 0xff);
    p[1] = (uint8_t)(h >> 8);
}

/* Compares all of a decoded block against expectations; reports the first few mismatches. */
static void check_block(const char *what, const float *got, const float *want, int n) {
    int bad = 0;
    for (int i = 0; i < n; i++) {
        if (got[i] != want[i]) {
            if (bad < 4) th_fail(__FILE__, __LINE__, "%s: element %d = %g, want %g", what, i, got[i], want[i]);
            bad++;
        }
        th_checks++;
    }
}

/* Decodes two copies of a block, the second with its f16 scale fields doubled (at the given
 * byte offsets), and checks the second is exactly twice the first: the decoder must advance
 * through blocks and read each block's own scales. Returns the first block's values in out. */
static void decode_twice(uint32_t type, const uint8_t *blk, const int *f16_offs, int n_offs, float *out) {
    const wtype_traits *t = traits(type);
    if (!t) return;
    raw_blocks r;
    memcpy(r.b, blk, t->bytes);
    memcpy(r.b + t->bytes, blk, t->bytes);
    for (int k = 0; k < n_offs; k++) {
        uint8_t *p = r.b + t->bytes + f16_offs[k];
        float v = wtype_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
        put_f16(p, wtype_f32_to_f16(2.0f * v));
    }
    float y[512];
    t->to_float(r.b, y, 2 * (size_t)t->block);
    int bad = 0;
    for (uint32_t i = 0; i < t->block; i++) bad += y[t->block + i] != 2.0f * y[i];
    CHECK_MSG(bad == 0, "%s: second block is not 2x the first in %d elements", t->name, bad);
    memcpy(out, y, t->block * sizeof(float));
}

static void test_q4_0_block(void) {
    uint8_t b[18];
    b[0] = 0x00, b[1] = 0x38; /* d = 0.5 */
    memset(b + 2, 0x88, 16);  /* every code 8: zero */
    b[2 + 0] = 0x0f;          /* element 0: 15, element 16: 0 */
    b[2 + 15] = 0x3c;         /* element 15: 12, element 31: 3 */
    float want[32] = {0}, got[32];
    want[0] = 3.5f, want[16] = -4.0f, want[15] = 2.0f, want[31] = -2.5f;
    const int offs[] = {0};
    decode_twice(WTYPE_Q4_0, b, offs, 1, got);
    check_block("q4_0", got, want, 32);
}

static void test_q4_1_block(void) {
    uint8_t b[20];
    b[0] = 0x00, b[1] = 0x34; /* d = 0.25 */
    b[2] = 0x00, b[3] = 0xbc; /* m = -1 */
    memset(b + 4, 0, 16);
    b[4 + 2] = 0xf1;  /* element 2: 1, element 18: 15 */
    b[4 + 13] = 0x80; /* element 13: 0, element 29: 8 */
    float want[32], got[32];
    for (int i = 0; i < 32; i++) want[i] = -1.0f;
    want[2] = -0.75f, want[18] = 2.75f, want[29] = 1.0f;
    const int offs[] = {0, 2};
    decode_twice(WTYPE_Q4_1, b, offs, 2, got);
    check_block("q4_1", got, want, 32);
}

static void test_q5_0_block(void) {
    uint8_t b[22];
    b[0] = 0x00, b[1] = 0x3c; /* d = 1 */
    /* qh as a little-endian u32 with bits 0, 15, 17 and 30 set */
    b[2] = 0x01, b[3] = 0x80, b[4] = 0x02, b[5] = 0x40;
    memset(b + 6, 0, 16);
    b[6 + 15] = 0x75; /* element 15: 5 | 16, element 31: 7 (bit 31 clear) */
    b[6 + 14] = 0x20; /* element 14: 0, element 30: 2 | 16 */
    float want[32], got[32];
    for (int i = 0; i < 32; i++) want[i] = -16.0f;
    want[0] = 0.0f;  /* bit 0 */
    want[15] = 5.0f; /* bit 15 */
    want[17] = 0.0f; /* bit 17 belongs to the high nibble of qs[1] */
    want[30] = 2.0f; /* bit 30 */
    want[31] = -9.0f;
    const int offs[] = {0};
    decode_twice(WTYPE_Q5_0, b, offs, 1, got);
    check_block("q5_0", got, want, 32);
}

static void test_q5_1_block(void) {
    uint8_t b[24];
    b[0] = 0x00, b[1] = 0x38; /* d = 0.5 */
    b[2] = 0x00, b[3] = 0x3c; /* m = 1 */
    b[4] = 0x08, b[5] = 0x00, b[6] = 0x00, b[7] = 0x80; /* bits 3 and 31 */
    memset(b + 8, 0, 16);
    b[8 + 15] = 0xf3; /* element 15: 3, element 31: 15 | 16 */
    b[8 + 3] = 0x41;  /* element 3: 1 | 16, element 19: 4 */
    float want[32], got[32];
    for (int i = 0; i < 32; i++) want[i] = 1.0f;
    want[15] = 2.5f, want[31] = 16.5f, want[3] = 9.5f, want[19] = 3.0f;
    const int offs[] = {0, 2};
    decode_twice(WTYPE_Q5_1, b, offs, 2, got);
    check_block("q5_1", got, want, 32);
}

static void test_q8_0_block(void) {
    uint8_t b[34];
    b[0] = 0x00, b[1] = 0x30; /* d = 0.125 */
    memset(b + 2, 0, 32);
    b[2 + 0] = 0x80;  /* -128 */
    b[2 + 1] = 0x7f;  /* 127 */
    b[2 + 17] = 0x05; /* 5 */
    b[2 + 31] = 0xff; /* -1 */
    float want[32] = {0}, got[32];
    want[0] = -16.0f, want[1] = 15.875f, want[17] = 0.625f, want[31] = -0.125f;
    const int offs[] = {0};
    decode_twice(WTYPE_Q8_0, b, offs, 1, got);
    check_block("q8_0", got, want, 32);
}

/* Sub-block scales (1,2,3,4,37,45,50,63) and mins (5,6,7,8,17,33,48,62), packed by hand:
 * the last four need the high bits stored in the top of bytes 0..7. */
static const uint8_t k_scales[12] = {0x81, 0x82, 0xc3, 0xc4, 0x45, 0x86, 0xc7, 0xc8, 0x15, 0x1d, 0x02, 0xef};
static const uint8_t k_sc[8] = {1, 2, 3, 4, 37, 45, 50, 63};
static const uint8_t k_m[8] = {5, 6, 7, 8, 17, 33, 48, 62};

static void test_k_scales(void) {
    for (int j = 0; j < 8; j++) {
        uint8_t sc = 0, m = 0;
        wtype_k_scale_min(k_scales, j, &sc, &m);
        CHECK_MSG(sc == k_sc[j] && m == k_m[j], "sub-block %d: sc %u m %u, want %u %u", j, sc, m, k_sc[j], k_m[j]);
    }
}

/* Where element e of a Q4_K/Q5_K block lives, restated from FORMATS.md in the element->byte
 * direction (the decoder goes byte->element): chunk c = e/64 uses qs[32c..32c+31]; the first
 * 32 take low nibbles with sub-block 2c, the next 32 high nibbles with sub-block 2c+1. */
static void k_locate(int e, int *qs_idx, int *high, int *sub, int *qh_idx, int *qh_bit) {
    int c = e / 64, r = e % 64;
    *high = r / 32;
    *qs_idx = 32 * c + r % 32;
    *sub = 2 * c + *high;
    *qh_idx = r % 32;
    *qh_bit = 2 * c + *high;
}

static void test_q4_K_block(void) {
    uint8_t b[144];
    b[0] = 0x00, b[1] = 0x3c; /* d = 1 */
    b[2] = 0x00, b[3] = 0x38; /* dmin = 0.5 */
    memcpy(b + 4, k_scales, 12);
    for (int i = 0; i < 128; i++) b[16 + i] = (uint8_t)(i * 37 + 11);
    float want[256], got[256];
    for (int e = 0; e < 256; e++) {
        int qi, hi, sub, qhi, qhb;
        k_locate(e, &qi, &hi, &sub, &qhi, &qhb);
        int q = hi ? b[16 + qi] >> 4 : b[16 + qi] & 15;
        want[e] = 1.0f * k_sc[sub] * (float)q - 0.5f * k_m[sub];
    }
    const int offs[] = {0, 2};
    decode_twice(WTYPE_Q4_K, b, offs, 2, got);
    check_block("q4_K", got, want, 256);
    /* The same rules worked through by hand for a few elements in every chunk and half. */
    static const struct { int e; float v; } spot[] = {
        {0, 8.5f}, {31, 3.5f}, {32, -3.0f}, {63, 13.0f}, {64, 29.5f}, {100, 8.0f}, {127, 4.0f},
        {128, 398.5f}, {170, 478.5f}, {191, 523.5f}, {192, 526.0f}, {224, 851.0f}, {255, 347.0f}};
    for (size_t k = 0; k < sizeof spot / sizeof spot[0]; k++)
        CHECK_MSG(got[spot[k].e] == spot[k].v, "q4_K element %d = %g, want %g", spot[k].e, got[spot[k].e], spot[k].v);
}

static void test_q5_K_block(void) {
    uint8_t b[176];
    b[0] = 0x00, b[1] = 0x38; /* d = 0.5 */
    b[2] = 0x00, b[3] = 0x34; /* dmin = 0.25 */
    memcpy(b + 4, k_scales, 12);
    for (int l = 0; l < 32; l++) b[16 + l] = (uint8_t)(l * 73 + 5);   /* qh */
    for (int i = 0; i < 128; i++) b[48 + i] = (uint8_t)(i * 29 + 3); /* qs */
    float want[256], got[256];
    for (int e = 0; e < 256; e++) {
        int qi, hi, sub, qhi, qhb;
        k_locate(e, &qi, &hi, &sub, &qhi, &qhb);
        int q = hi ? b[48 + qi] >> 4 : b[48 + qi] & 15;
        q |= ((b[16 + qhi] >> qhb) & 1) << 4;
        want[e] = 0.5f * k_sc[sub] * (float)q - 0.25f * k_m[sub];
    }
    const int offs[] = {0, 2};
    decode_twice(WTYPE_Q5_K, b, offs, 2, got);
    check_block("q5_K", got, want, 256);
    static const struct { int e; float v; } spot[] = {
        {0, 8.25f}, {5, 0.75f}, {31, 1.75f}, {32, -1.5f}, {45, 21.5f}, {63, 6.5f},
        {64, 26.75f}, {77, 16.25f}, {96, 18.0f}, {127, 34.0f}, {128, 51.25f}, {140, 569.25f},
        {160, 81.75f}, {191, 261.75f}, {192, 63.0f}, {200, 663.0f}, {224, 425.5f}, {255, 677.5f}};
    for (size_t k = 0; k < sizeof spot / sizeof spot[0]; k++)
        CHECK_MSG(got[spot[k].e] == spot[k].v, "q5_K element %d = %g, want %g", spot[k].e, got[spot[k].e], spot[k].v);
}

static void test_q6_K_block(void) {
    static const int8_t sc[16] = {1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12, 13, -14, 127, -128};
    uint8_t b[210];
    for (int i = 0; i < 128; i++) b[i] = (uint8_t)(i * 53 + 7);       /* ql */
    for (int i = 0; i < 64; i++) b[128 + i] = (uint8_t)(i * 91 + 13); /* qh */
    memcpy(b + 192, sc, 16);
    b[208] = 0x00, b[209] = 0x2c; /* d = 0.0625 */
    float want[256], got[256];
    for (int e = 0; e < 256; e++) {
        /* half h, quarter k within it, lane l: quarters 1 and 3 read ql[l+32], quarters 2
         * and 3 the high nibble, quarter k the bits 2k..2k+1 of qh[l], scale l/16 + 2k. */
        int h = e / 128, k = (e % 128) / 32, l = e % 32;
        int byte = b[64 * h + l + 32 * (k & 1)];
        int q = (k >= 2 ? byte >> 4 : byte & 15) | ((b[128 + 32 * h + l] >> (2 * k)) & 3) << 4;
        want[e] = 0.0625f * (float)sc[8 * h + l / 16 + 2 * k] * (float)(q - 32);
    }
    const int offs[] = {208};
    decode_twice(WTYPE_Q6_K, b, offs, 1, got);
    check_block("q6_K", got, want, 256);
    static const struct { int e; float v; } spot[] = {
        {0, -0.5625f}, {17, 2.5f}, {32, 4.3125f}, {50, 7.75f}, {64, -10.0f}, {81, 3.0f},
        {96, -9.625f}, {127, 15.5f}, {128, -5.0625f}, {145, 12.5f}, {160, 15.8125f},
        {178, 23.25f}, {192, 3.25f}, {209, -24.5f}, {224, -15.875f}, {255, 88.0f}};
    for (size_t k = 0; k < sizeof spot / sizeof spot[0]; k++)
        CHECK_MSG(got[spot[k].e] == spot[k].v, "q6_K element %d = %g, want %g", spot[k].e, got[spot[k].e], spot[k].v);
}

static void test_struct_layout(void) {
    CHECK(offsetof(block_q4_0, qs) == 2);
    CHECK(offsetof(block_q4_1, m) == 2 && offsetof(block_q4_1, qs) == 4);
    CHECK(offsetof(block_q5_0, qh) == 2 && offsetof(block_q5_0, qs) == 6);
    CHECK(offsetof(block_q5_1, qh) == 4 && offsetof(block_q5_1, qs) == 8);
    CHECK(offsetof(block_q8_0, qs) == 2);
    CHECK(offsetof(block_q4_K, dmin) == 2 && offsetof(block_q4_K, scales) == 4 && offsetof(block_q4_K, qs) == 16);
    CHECK(offsetof(block_q5_K, qh) == 16 && offsetof(block_q5_K, qs) == 48);
    CHECK(offsetof(block_q6_K, qh) == 128 && offsetof(block_q6_K, scales) == 192 && offsetof(block_q6_K, d) == 208);
}

/* ---- quantize -> dequantize ---- */

static const uint32_t k_all[] = {WTYPE_F32, WTYPE_F16, WTYPE_BF16, WTYPE_Q4_0, WTYPE_Q4_1, WTYPE_Q5_0,
                                 WTYPE_Q5_1, WTYPE_Q8_0, WTYPE_Q4_K, WTYPE_Q5_K, WTYPE_Q6_K};
#define N_TYPES (sizeof k_all / sizeof k_all[0])

/* Upper bounds on quantize->dequantize NMSE for N(0,1) data; what ggml's reference
 * quantizers reach is a bit below these. */
static double nmse_bound(uint32_t type) {
    switch (type) {
    case WTYPE_F32: return 0.0;
    case WTYPE_F16: return 1e-7;
    case WTYPE_BF16: return 1e-5;
    case WTYPE_Q8_0: return 1e-4;
    case WTYPE_Q6_K: return 2e-3;
    case WTYPE_Q5_0: case WTYPE_Q5_1: case WTYPE_Q5_K: return 3e-3;
    default: return 1.2e-2;
    }
}

static double roundtrip(uint32_t type, const float *x, float *y, size_t n) {
    const wtype_traits *t = traits(type);
    if (!t) return 1.0;
    void *q = malloc(wtype_row_bytes(type, n));
    if (!q) return 1.0;
    t->from_float(x, q, n);
    t->to_float(q, y, n);
    free(q);
    return th_nmse(x, y, n);
}

static void test_roundtrip(void) {
    const size_t n_max = 256 * 256;
    float *x = malloc(n_max * sizeof(float)), *y = malloc(n_max * sizeof(float));
    if (!x || !y) {
        CHECK_MSG(0, "out of memory");
        free(x);
        free(y);
        return;
    }
    th_rng rng = {12345};
    for (size_t k = 0; k < N_TYPES; k++) {
        const wtype_traits *t = traits(k_all[k]);
        if (!t) continue;
        const size_t sizes[] = {t->block, 3 * (size_t)t->block, 64 * (size_t)t->block, n_max};
        double bound = nmse_bound(k_all[k]);
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            size_t n = sizes[s];
            for (size_t i = 0; i < n; i++) x[i] = th_normal(&rng);
            double e = roundtrip(k_all[k], x, y, n);
            CHECK_MSG(e <= bound, "%s n=%zu: nmse %.3e above %.1e", t->name, n, e, bound);
            if (n == n_max) printf("%-5s N(0,1) nmse %.3e (bound %.1e)\n", t->name, e, bound);
            /* quantized types must actually lose something on random data */
            if (n == n_max && t->block > 1) CHECK_MSG(e > bound / 100, "%s: nmse %.3e suspiciously low", t->name, e);
        }
        /* off-centre data (mins must follow), large and small scales (f16 d stays normal) */
        size_t n = 64 * (size_t)t->block;
        th_fill_uniform(&rng, x, n, -1.0f, 3.0f);
        double e = roundtrip(k_all[k], x, y, n);
        CHECK_MSG(e <= bound, "%s uniform[-1,3]: nmse %.3e above %.1e", t->name, e, bound);
        const float scales[] = {100.0f, 0.01f};
        for (int si = 0; si < 2; si++) {
            for (size_t i = 0; i < n; i++) x[i] = scales[si] * th_normal(&rng);
            e = roundtrip(k_all[k], x, y, n);
            CHECK_MSG(e <= bound * 1.5, "%s N(0,%g): nmse %.3e above %.1e", t->name, scales[si], e, bound * 1.5);
        }
        /* zeros decode to exact zeros; a constant block stays close to its value */
        memset(x, 0, n * sizeof(float));
        roundtrip(k_all[k], x, y, n);
        int bad = 0;
        for (size_t i = 0; i < n; i++) bad += y[i] != 0.0f;
        CHECK_MSG(bad == 0, "%s: %d zeros decode to nonzero", t->name, bad);
        const float consts[] = {2.5f, -0.75f};
        for (int ci = 0; ci < 2; ci++) {
            for (size_t i = 0; i < n; i++) x[i] = consts[ci];
            roundtrip(k_all[k], x, y, n);
            double md = th_max_abs_diff(x, y, n);
            CHECK_MSG(md <= 0.02 * fabsf(consts[ci]), "%s: constant %g decodes up to %g off", t->name, consts[ci], md);
        }
        /* a single outlier must not disturb other blocks */
        for (size_t i = 0; i < n; i++) x[i] = th_normal(&rng);
        x[5] = 1000.0f;
        roundtrip(k_all[k], x, y, n);
        e = th_nmse(x + t->block, y + t->block, n - t->block);
        CHECK_MSG(e <= bound * 1.5, "%s: outlier in block 0 leaks, nmse of the rest %.3e", t->name, e);
    }
    free(x);
    free(y);
}

/* Data already on a Q4_0/Q5_0/Q8_0 grid, peak included, must survive exactly; and decoding
 * then re-encoding is a fixed point, which ties each encoder to its decoder. */
static void test_exact_and_idempotent(void) {
    const uint32_t types[] = {WTYPE_Q4_0, WTYPE_Q5_0, WTYPE_Q8_0};
    const int lo[] = {-8, -16, -127}, hi[] = {7, 15, 127};
    th_rng rng = {777};
    float x[256], y[256], z[256];
    uint8_t q[512];
    for (int k = 0; k < 3; k++) {
        const wtype_traits *t = traits(types[k]);
        if (!t) continue;
        for (int i = 0; i < 256; i++) {
            int v = lo[k] + (int)(th_next(&rng) % (uint64_t)(hi[k] - lo[k] + 1));
            if (i % 32 == 7) v = lo[k]; /* the peak of every block */
            x[i] = 0.375f * (float)v;
        }
        t->from_float(x, q, 256);
        t->to_float(q, y, 256);
        CHECK_MSG(th_max_abs_diff(x, y, 256) == 0.0, "%s: grid data not reproduced", t->name);
        for (int i = 0; i < 256; i++) x[i] = th_normal(&rng);
        t->from_float(x, q, 256);
        t->to_float(q, y, 256);
        t->from_float(y, q, 256);
        t->to_float(q, z, 256);
        CHECK_MSG(th_max_abs_diff(y, z, 256) == 0.0, "%s: re-encoding decoded data changes it", t->name);
    }
}

/* ---- f16 / bf16 ---- */

/* Value of f16 bits by the textbook formula, as an independent reference. */
static double f16_value(uint16_t h) {
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return (h & 0x8000) ? -v : v;
}

/* Nearest f16 of f by search over the sorted positive values, ties to even; for finite f. */
static uint16_t f16_nearest(const double *vals, float f) {
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    double a = fabs((double)f);
    int lo = 0, hi = 0x7c00; /* vals[0x7c00] is 65536: the rounding limit, which means inf */
    if (a >= vals[0x7c00]) return sign | 0x7c00;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (vals[mid] <= a) lo = mid;
        else hi = mid;
    }
    double dl = a - vals[lo], dh = vals[hi] - a;
    int pick = dl < dh ? lo : dh < dl ? hi : (lo % 2 == 0 ? lo : hi);
    return (uint16_t)(sign | pick);
}

static int is_f16_nan(uint16_t h) {
    return (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
}

static float bits_f32(uint32_t b) {
    float f;
    memcpy(&f, &b, 4);
    return f;
}

static void test_f16(void) {
    double *vals = malloc(0x7c01 * sizeof(double));
    if (!vals) {
        CHECK_MSG(0, "out of memory");
        return;
    }
    for (int h = 0; h < 0x7c00; h++) vals[h] = f16_value((uint16_t)h);
    vals[0x7c00] = 65536.0; /* where the next step would be */

    int bad_val = 0, bad_rt = 0, bad_nan = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = wtype_f16_to_f32((uint16_t)h);
        uint16_t back = wtype_f32_to_f16(f);
        if (is_f16_nan((uint16_t)h)) {
            bad_nan += !isnan(f) || !is_f16_nan(back) || (back & 0x8000) != (h & 0x8000);
        } else if ((h & 0x7fff) == 0x7c00) {
            bad_val += !isinf(f) || (signbit(f) != 0) != ((h & 0x8000) != 0);
            bad_rt += back != h;
        } else {
            bad_val += (double)f != f16_value((uint16_t)h) || (signbit(f) != 0) != ((h & 0x8000) != 0);
            bad_rt += back != h;
        }
    }
    CHECK_MSG(bad_val == 0, "f16->f32: %d patterns decode wrong", bad_val);
    CHECK_MSG(bad_rt == 0, "f16->f32->f16: %d patterns not identity", bad_rt);
    CHECK_MSG(bad_nan == 0, "f16 NaN: %d patterns lose NaN-ness or sign", bad_nan);

    /* Every midpoint between neighbours (exact in f32) rounds to the even one; one f32 ulp
     * either side rounds to the nearer. Covers subnormals, the subnormal/normal seam and
     * the overflow threshold 65520. */
    int bad_mid = 0;
    for (int h = 0; h < 0x7c00; h++) {
        float mid = (float)((vals[h] + vals[h + 1]) / 2);
        int even = (h % 2 == 0) ? h : h + 1;
        bad_mid += wtype_f32_to_f16(mid) != even;
        bad_mid += wtype_f32_to_f16(-mid) != (0x8000 | even);
        bad_mid += wtype_f32_to_f16(nextafterf(mid, 0.0f)) != h;
        bad_mid += wtype_f32_to_f16(nextafterf(mid, INFINITY)) != h + 1;
    }
    CHECK_MSG(bad_mid == 0, "f32->f16 rounding at midpoints: %d wrong", bad_mid);

    /* random f32 bit patterns, mostly in and around the f16 range */
    th_rng rng = {99};
    int bad_rand = 0;
    for (int i = 0; i < 1000000; i++) {
        uint32_t b = (uint32_t)th_next(&rng);
        if (i % 4) b = (b & 0x807fffff) | (uint32_t)(95 + th_next(&rng) % 50) << 23;
        float f = bits_f32(b);
        if (isnan(f)) continue;
        bad_rand += wtype_f32_to_f16(f) != f16_nearest(vals, f);
    }
    CHECK_MSG(bad_rand == 0, "f32->f16 on random inputs: %d differ from nearest-even search", bad_rand);
    free(vals);

    /* spot checks, by hand */
    CHECK(wtype_f32_to_f16(1.0f) == 0x3c00);
    CHECK(wtype_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00);        /* tie, even below */
    CHECK(wtype_f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3c02);    /* tie, even above */
    CHECK(wtype_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f) == 0x3c01);
    CHECK(wtype_f32_to_f16(0x1p-24f) == 0x0001);                /* smallest subnormal */
    CHECK(wtype_f32_to_f16(0x1p-25f) == 0x0000);                /* tie with 0 */
    CHECK(wtype_f32_to_f16(0x1p-25f * 1.0001f) == 0x0001);
    CHECK(wtype_f32_to_f16(3 * 0x1p-25f) == 0x0002);            /* tie 1|2 -> 2 */
    CHECK(wtype_f32_to_f16(1023.5f * 0x1p-24f) == 0x0400);      /* carries into the normals */
    CHECK(wtype_f16_to_f32(0x0001) == 0x1p-24f);
    CHECK(wtype_f16_to_f32(0x03ff) == 1023 * 0x1p-24f);
    CHECK(wtype_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(wtype_f32_to_f16(65519.99f) == 0x7bff);
    CHECK(wtype_f32_to_f16(65520.0f) == 0x7c00);                /* overflow by rounding */
    CHECK(wtype_f32_to_f16(1e6f) == 0x7c00);
    CHECK(wtype_f32_to_f16(-1e6f) == 0xfc00);
    CHECK(wtype_f32_to_f16(INFINITY) == 0x7c00);
    CHECK(wtype_f32_to_f16(-0.0f) == 0x8000);
    CHECK(wtype_f32_to_f16(1e-9f) == 0x0000);
    CHECK(is_f16_nan(wtype_f32_to_f16(NAN)));
    CHECK(is_f16_nan(wtype_f32_to_f16(bits_f32(0x7f800001)))); /* payload only in low bits */
    CHECK(wtype_f32_to_f16(bits_f32(0xff800001)) & 0x8000);
}

/* Nearest bf16 by comparing the two candidates (truncation and the next value away from
 * zero) in double, ties to even; for finite f. */
static uint16_t bf16_nearest(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    uint16_t t = (uint16_t)(b >> 16);
    double lo = fabs((double)bits_f32((uint32_t)t << 16)), hi;
    if (((t + 1) & 0x7f80) == 0x7f80) hi = ldexp(1.0, 128); /* the step past FLT_MAX */
    else hi = fabs((double)bits_f32((uint32_t)(t + 1) << 16));
    double a = fabs((double)f), dl = a - lo, dh = hi - a;
    if (dl < dh || (dl == dh && t % 2 == 0)) return t;
    return (uint16_t)(t + 1);
}

static void test_bf16(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = wtype_bf16_to_f32((uint16_t)h);
        uint32_t b;
        memcpy(&b, &f, 4);
        uint16_t back = wtype_f32_to_bf16(f);
        if ((h & 0x7f80) == 0x7f80 && (h & 0x7f)) bad += !isnan(f) || !((back & 0x7f80) == 0x7f80 && (back & 0x7f));
        else bad += b != h << 16 || back != h;
    }
    CHECK_MSG(bad == 0, "bf16 exhaustive round trip: %d patterns wrong", bad);

    th_rng rng = {4242};
    int bad_rand = 0;
    for (int i = 0; i < 1000000; i++) {
        uint32_t b = (uint32_t)th_next(&rng);
        if (i % 8 == 0) b = (b & 0xffff0000u) | 0x8000u; /* exact ties */
        float f = bits_f32(b);
        if (!isfinite(f)) continue;
        bad_rand += wtype_f32_to_bf16(f) != bf16_nearest(f);
    }
    CHECK_MSG(bad_rand == 0, "f32->bf16 on random inputs: %d differ from nearest-even", bad_rand);

    CHECK(wtype_f32_to_bf16(bits_f32(0x3f808000)) == 0x3f80); /* tie, even below */
    CHECK(wtype_f32_to_bf16(bits_f32(0x3f818000)) == 0x3f82); /* tie, even above */
    CHECK(wtype_f32_to_bf16(bits_f32(0x3f808001)) == 0x3f81);
    CHECK(wtype_f32_to_bf16(bits_f32(0x7f7fffff)) == 0x7f80); /* FLT_MAX rounds to inf */
    CHECK(wtype_f32_to_bf16(bits_f32(0x00008000)) == 0x0000); /* subnormal tie */
    CHECK(wtype_f32_to_bf16(bits_f32(0x00018000)) == 0x0002);
    uint16_t nan = wtype_f32_to_bf16(bits_f32(0x7f800001));   /* truncation would give inf */
    CHECK((nan & 0x7f80) == 0x7f80 && (nan & 0x7f));
    CHECK(wtype_bf16_to_f32(0x3f80) == 1.0f && wtype_bf16_to_f32(0xc000) == -2.0f);
}

/* ---- table ---- */

static void test_table(void) {
    static const struct { uint32_t id; const char *name; uint32_t block, bytes; } rows[] = {
        {0, "f32", 1, 4},      {1, "f16", 1, 2},       {30, "bf16", 1, 2},     {2, "q4_0", 32, 18},
        {3, "q4_1", 32, 20},   {6, "q5_0", 32, 22},    {7, "q5_1", 32, 24},    {8, "q8_0", 32, 34},
        {12, "q4_K", 256, 144}, {13, "q5_K", 256, 176}, {14, "q6_K", 256, 210}};
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        const wtype_traits *t = wtype_get(rows[k].id);
        CHECK_MSG(t && strcmp(t->name, rows[k].name) == 0 && t->block == rows[k].block && t->bytes == rows[k].bytes &&
                      t->to_float && t->from_float,
                  "type %u: row wrong or missing", rows[k].id);
    }
    /* ids ggml knows but we do not (Q4_2/Q4_3 were removed, Q8_1, Q2_K...) and nonsense */
    const uint32_t unknown[] = {4, 5, 9, 10, 11, 15, 16, 29, 31, 32, 1000, UINT32_MAX};
    for (size_t k = 0; k < sizeof unknown / sizeof unknown[0]; k++) {
        CHECK_MSG(wtype_get(unknown[k]) == NULL, "type %u should be unknown", unknown[k]);
        CHECK(wtype_row_bytes(unknown[k], 256) == 0);
    }
    CHECK(wtype_row_bytes(WTYPE_F32, 7) == 28);
    CHECK(wtype_row_bytes(WTYPE_F16, 7) == 14);
    CHECK(wtype_row_bytes(WTYPE_Q4_0, 64) == 36);
    CHECK(wtype_row_bytes(WTYPE_Q4_0, 33) == 0);
    CHECK(wtype_row_bytes(WTYPE_Q8_0, 0) == 0);
    CHECK(wtype_row_bytes(WTYPE_Q4_K, 4096) == 16 * 144);
    CHECK(wtype_row_bytes(WTYPE_Q4_K, 4096 + 32) == 0);
    CHECK(wtype_row_bytes(WTYPE_Q6_K, 22016) == 86 * 210); /* 65B ffn: 86 super-blocks */
    CHECK(wtype_row_bytes(WTYPE_Q6_K, 4096 + 128) == 0);
    CHECK(wtype_row_bytes(WTYPE_Q8_0, 22016) == 688 * 34);
    CHECK(wtype_row_bytes(WTYPE_F32, UINT64_MAX / 2) == 0); /* bytes would overflow */
    CHECK(wtype_row_bytes(WTYPE_Q4_0, (UINT64_MAX / 32) * 32) == (UINT64_MAX / 32) * 18);
}

int main(void) {
    test_struct_layout();
    test_q4_0_block();
    test_q4_1_block();
    test_q5_0_block();
    test_q5_1_block();
    test_q8_0_block();
    test_k_scales();
    test_q4_K_block();
    test_q5_K_block();
    test_q6_K_block();
    test_roundtrip();
    test_exact_and_idempotent();
    test_f16();
    test_bf16();
    test_table();
    return th_finish();
}
