/* Weight types: one table row per ggml type id with its block geometry and CPU codecs.
 * Adding a type is adding a row in wtype.c (and its kernels). */
#ifndef VKLLM_WTYPE_H
#define VKLLM_WTYPE_H

#include <stddef.h>
#include <stdint.h>

/* ggml type ids, as stored in GGUF tensor infos. */
typedef enum wtype {
    WTYPE_F32 = 0,
    WTYPE_F16 = 1,
    WTYPE_Q4_0 = 2,
    WTYPE_Q4_1 = 3,
    WTYPE_Q5_0 = 6,
    WTYPE_Q5_1 = 7,
    WTYPE_Q8_0 = 8,
    WTYPE_Q4_K = 12,
    WTYPE_Q5_K = 13,
    WTYPE_Q6_K = 14,
    WTYPE_BF16 = 30,
    WTYPE_COUNT = 31, /* one past the largest id the table indexes */
} wtype;

/* Block layouts, byte for byte as in GGUF files (little-endian; f16 fields are raw IEEE
 * half bits). Element order and scale packing are described in shared/FORMATS.md; the
 * decoders in wtype.c are the executable statement of it. */
#define WTYPE_QK 32   /* elements per block of the Q4_0..Q8_0 family */
#define WTYPE_QK_K 256 /* elements per super-block of the K-quants */

typedef struct block_q4_0 {
    uint16_t d;                  /* f16 */
    uint8_t qs[WTYPE_QK / 2];    /* element j: low nibble of qs[j], j+16: high nibble */
} block_q4_0;

typedef struct block_q4_1 {
    uint16_t d, m;               /* f16; value d*q + m */
    uint8_t qs[WTYPE_QK / 2];
} block_q4_1;

typedef struct block_q5_0 {
    uint16_t d;
    uint8_t qh[4];               /* bit j of this little-endian u32: 5th bit of element j */
    uint8_t qs[WTYPE_QK / 2];
} block_q5_0;

typedef struct block_q5_1 {
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[WTYPE_QK / 2];
} block_q5_1;

typedef struct block_q8_0 {
    uint16_t d;
    int8_t qs[WTYPE_QK];
} block_q8_0;

typedef struct block_q4_K {
    uint16_t d, dmin;            /* f16; value d*sc*q - dmin*m */
    uint8_t scales[12];          /* 8 six-bit (sc, m) pairs, see wtype_k_scale_min */
    uint8_t qs[WTYPE_QK_K / 2];
} block_q4_K;

typedef struct block_q5_K {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qh[WTYPE_QK_K / 8];  /* qh[l] bit 2c / 2c+1: 5th bit of chunk c, low / high half */
    uint8_t qs[WTYPE_QK_K / 2];
} block_q5_K;

typedef struct block_q6_K {
    uint8_t ql[WTYPE_QK_K / 2];  /* low 4 bits */
    uint8_t qh[WTYPE_QK_K / 4];  /* high 2 bits */
    int8_t scales[WTYPE_QK_K / 16];
    uint16_t d;                  /* f16; value d*scale*(q - 32) */
} block_q6_K;

_Static_assert(sizeof(block_q4_0) == 18, "block_q4_0 must be 18 bytes");
_Static_assert(sizeof(block_q4_1) == 20, "block_q4_1 must be 20 bytes");
_Static_assert(sizeof(block_q5_0) == 22, "block_q5_0 must be 22 bytes");
_Static_assert(sizeof(block_q5_1) == 24, "block_q5_1 must be 24 bytes");
_Static_assert(sizeof(block_q8_0) == 34, "block_q8_0 must be 34 bytes");
_Static_assert(sizeof(block_q4_K) == 144, "block_q4_K must be 144 bytes");
_Static_assert(sizeof(block_q5_K) == 176, "block_q5_K must be 176 bytes");
_Static_assert(sizeof(block_q6_K) == 210, "block_q6_K must be 210 bytes");

/* Dequantizes n elements (a multiple of the block size) from blocks at src into dst. */
typedef void (*wtype_to_float_fn)(const void *src, float *dst, size_t n);
/* Quantizes n elements (a multiple of the block size) from src into blocks at dst. */
typedef void (*wtype_from_float_fn)(const float *src, void *dst, size_t n);

typedef struct wtype_traits {
    const char *name;      /* "q4_0", as ggml and llama.cpp print it */
    uint32_t block;        /* elements per block */
    uint32_t bytes;        /* bytes per block */
    wtype_to_float_fn to_float;
    wtype_from_float_fn from_float;
} wtype_traits;

/* NULL for an id outside the table or a type this build does not support. */
const wtype_traits *wtype_get(uint32_t type);
/* Bytes of a row of n elements; 0 if n is not a multiple of the block size (or the type
 * is unknown, or the byte count would not fit in 64 bits). */
uint64_t wtype_row_bytes(uint32_t type, uint64_t n);

/* Six-bit scale sc and min m of sub-block j (0..7) of a Q4_K / Q5_K block. */
void wtype_k_scale_min(const uint8_t scales[12], int j, uint8_t *sc, uint8_t *m);

/* IEEE half and bfloat16 conversions (round to nearest even). */
float wtype_f16_to_f32(uint16_t h);
uint16_t wtype_f32_to_f16(float f);
float wtype_bf16_to_f32(uint16_t h);
uint16_t wtype_f32_to_bf16(float f);

#endif
