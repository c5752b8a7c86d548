/* GGUF reader and writer: a round trip of every value and tensor type, the real test models,
 * and hostile input (every truncation, hand-made corruptions, random byte flips). Hand-made
 * files come from a byte builder here, independent of the writer under test. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "runtime/format/gguf.h"
#include "testkit/gguf_write.h"
#include "runtime/format/wtype.h"
#include "vkllm.h"

/* ------------------------------------------------------------ byte builder ---- */

typedef struct bb {
    uint8_t *p;
    size_t len, cap;
} bb;

static void bb_put(bb *b, const void *src, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void bb_le(bb *b, uint64_t v, unsigned bytes) {
    uint8_t le[8];
    for (unsigned i = 0; i < bytes; i++) le[i] = (uint8_t)(v >> (8 * i));
    bb_put(b, le, bytes);
}

static void bb_u32(bb *b, uint32_t v) { bb_le(b, v, 4); }
static void bb_u64(bb *b, uint64_t v) { bb_le(b, v, 8); }
static void bb_str(bb *b, const char *s) {
    bb_u64(b, strlen(s));
    bb_put(b, s, strlen(s));
}
static void bb_header(bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    bb_put(b, "GGUF", 4);
    bb_u32(b, version);
    bb_u64(b, n_tensors);
    bb_u64(b, n_kv);
}
static void bb_kv_u32(bb *b, const char *key, uint32_t v) {
    bb_str(b, key);
    bb_u32(b, GGUF_U32);
    bb_u32(b, v);
}
static void bb_kv_str(bb *b, const char *key, const char *v) {
    bb_str(b, key);
    bb_u32(b, GGUF_STRING);
    bb_str(b, v);
}
static void bb_tensor(bb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                      uint64_t offset) {
    bb_str(b, name);
    bb_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) bb_u64(b, ne[d]);
    bb_u32(b, type);
    bb_u64(b, offset);
}
/* Zero padding to `align`, then n data bytes with a recognizable pattern. */
static void bb_data(bb *b, uint32_t align, size_t n) {
    while (b->len % align) bb_le(b, 0, 1);
    for (size_t i = 0; i < n; i++) bb_le(b, (uint8_t)(i * 7 + 1), 1);
}

/* The small valid file most corruptions start from: two KVs, tensor a f32 [3] at 0 and
 * tensor b f16 [5, 2] at 32, so the data section is 32 + 20 bytes. */
static const uint64_t k_ne_a[1] = {3}, k_ne_b[2] = {5, 2};
static void bb_small_kvs(bb *b, uint64_t n_tensors) {
    bb_header(b, 3, n_tensors, 2);
    bb_kv_str(b, "general.architecture", "llama");
    bb_kv_u32(b, "x.n", 7);
}
/* Returns the end of the tensor infos; tensor b's offset field is the 8 bytes before it and
 * its type id the 4 before those. The padding between the tensors is zero, as written. */
static size_t bb_small(bb *b) {
    bb_small_kvs(b, 2);
    bb_tensor(b, "a", 1, k_ne_a, WTYPE_F32, 0);
    bb_tensor(b, "b", 2, k_ne_b, WTYPE_F16, 32);
    size_t infos_end = b->len;
    bb_data(b, 32, 12);
    bb_data(b, 32, 20);
    return infos_end;
}

/* Opens an exactly-sized heap copy (so valgrind sees any over-read) and checks the status
 * and that the message is non-empty and contains `needle`. */
static void expect_open(const char *label, const uint8_t *data, size_t n, vkllm_status want,
                        const char *needle) {
    uint8_t *copy = malloc(n ? n : 1);
    if (n) memcpy(copy, data, n);
    gguf_file *f = (gguf_file *)1;
    vkllm_status st = gguf_open_memory(copy, n, &f);
    CHECK_MSG(st == want, "%s: status %d, want %d (%s)", label, (int)st, (int)want,
              vkllm_last_error());
    if (st != VKLLM_OK) {
        CHECK_MSG(f == NULL, "%s: *out not cleared on failure", label);
        CHECK_MSG(vkllm_last_error()[0] != 0, "%s: empty error message", label);
        if (needle)
            CHECK_MSG(strstr(vkllm_last_error(), needle) != NULL, "%s: message '%s' lacks '%s'",
                      label, vkllm_last_error(), needle);
    }
    gguf_close(st == VKLLM_OK ? f : NULL);
    free(copy);
}

static void expect_bb(const char *label, bb *b, vkllm_status want, const char *needle) {
    expect_open(label, b->p, b->len, want, needle);
    free(b->p);
    *b = (bb){0};
}

/* -------------------------------------------------------------- round trip ---- */

typedef struct rt_tensor {
    const char *name;
    uint32_t n_dims;
    uint64_t ne[4];
    uint32_t type;
    uint64_t bytes; /* worked out by hand from the block table in FORMATS.md */
    int mode;       /* 0 referenced data, 1 zeros (NULL data), 2 fill callback */
} rt_tensor;

static const rt_tensor k_rt[] = {
    {"f32.t", 2, {8, 3}, WTYPE_F32, 96, 0},
    {"f16.t", 2, {16, 2}, WTYPE_F16, 64, 0},
    {"q4_0.t", 2, {64, 3}, WTYPE_Q4_0, 108, 0},         /* 2 blocks x 18 x 3 rows */
    {"q8_0.t", 3, {32, 2, 2}, WTYPE_Q8_0, 136, 0},      /* 1 x 34 x 4 */
    {"q4_K.t", 2, {256, 2}, WTYPE_Q4_K, 288, 0},        /* 1 x 144 x 2 */
    {"q6_K.t", 4, {512, 1, 1, 3}, WTYPE_Q6_K, 1260, 0}, /* 2 x 210 x 3 */
    {"bf16.t", 1, {6}, WTYPE_BF16, 12, 0},
    {"zeros.t", 1, {4}, WTYPE_F32, 16, 1},
    {"q5_K.fill", 1, {256}, WTYPE_Q5_K, 176, 2},
};
#define RT_N (sizeof k_rt / sizeof k_rt[0])

static vkllm_status fill_pattern(void *user, const char *name, void *dst, uint64_t size) {
    uint8_t *p = dst;
    int *calls = user;
    (*calls)++;
    for (uint64_t i = 0; i < size; i++) p[i] = (uint8_t)(i * 13 + strlen(name));
    return VKLLM_OK;
}

static const uint8_t k_u8s[] = {0, 1, 255};
static const int8_t k_i8s[] = {-128, 0, 127};
static const uint16_t k_u16s[] = {0, 65535, 1234};
static const int16_t k_i16s[] = {-32768, 32767, -1};
static const uint32_t k_u32s[] = {0, 4294967295u, 7};
static const int32_t k_i32s[] = {INT32_MIN, INT32_MAX, -5};
static const uint64_t k_u64s[] = {0, UINT64_MAX, 1ull << 53};
static const int64_t k_i64s[] = {INT64_MIN, INT64_MAX, -9};
static const float k_f32s[] = {-1.5f, 3.0e-38f, 65504.0f, 0.1f};
static const double k_f64s[] = {-2.718281828459045, 1e300};
static const uint8_t k_bools[] = {1, 0, 1, 1};
static const char *const k_strs[] = {"<unk>", "", "\xe2\x96\x81the", "x y z"};

typedef struct rt_arr {
    const char *key;
    gguf_vtype type;
    const void *v;
    uint64_t n;
} rt_arr;

static const rt_arr k_arrs[] = {
    {"arr.u8", GGUF_U8, k_u8s, 3},       {"arr.i8", GGUF_I8, k_i8s, 3},
    {"arr.u16", GGUF_U16, k_u16s, 3},    {"arr.i16", GGUF_I16, k_i16s, 3},
    {"arr.u32", GGUF_U32, k_u32s, 3},    {"arr.i32", GGUF_I32, k_i32s, 3},
    {"arr.u64", GGUF_U64, k_u64s, 3},    {"arr.i64", GGUF_I64, k_i64s, 3},
    {"arr.f32", GGUF_F32, k_f32s, 4},    {"arr.f64", GGUF_F64, k_f64s, 2},
    {"arr.bool", GGUF_BOOL, k_bools, 4}, {"arr.empty", GGUF_F32, NULL, 0},
};
#define RT_NARR (sizeof k_arrs / sizeof k_arrs[0])

static double host_num(gguf_vtype t, const void *v, uint64_t i) {
    switch (t) {
    case GGUF_U8: return ((const uint8_t *)v)[i];
    case GGUF_I8: return ((const int8_t *)v)[i];
    case GGUF_U16: return ((const uint16_t *)v)[i];
    case GGUF_I16: return ((const int16_t *)v)[i];
    case GGUF_U32: return ((const uint32_t *)v)[i];
    case GGUF_I32: return ((const int32_t *)v)[i];
    case GGUF_U64: return (double)((const uint64_t *)v)[i];
    case GGUF_I64: return (double)((const int64_t *)v)[i];
    case GGUF_F32: return ((const float *)v)[i];
    case GGUF_F64: return ((const double *)v)[i];
    case GGUF_BOOL: return ((const uint8_t *)v)[i];
    default: return NAN;
    }
}

/* Builds the round-trip writer; tensor bytes are random and live in *bufs. */
static gguf_writer *rt_build(uint32_t version, uint32_t alignment, uint8_t **bufs, int *fills) {
    gguf_writer *w = NULL;
    th_rng rng = {42};
    CHECK_OK(gguf_writer_create(&w));
    if (!w) return NULL;
    CHECK_OK(gguf_writer_set_version(w, version));
    CHECK_OK(gguf_writer_add_str(w, "general.architecture", "llama"));
    if (alignment) CHECK_OK(gguf_writer_set_alignment(w, alignment));
    CHECK_OK(gguf_writer_add_u8(w, "v.u8", 200));
    CHECK_OK(gguf_writer_add_i8(w, "v.i8", -100));
    CHECK_OK(gguf_writer_add_u16(w, "v.u16", 60000));
    CHECK_OK(gguf_writer_add_i16(w, "v.i16", -30000));
    CHECK_OK(gguf_writer_add_u32(w, "v.u32", 4000000000u));
    CHECK_OK(gguf_writer_add_i32(w, "v.i32", -2000000000));
    CHECK_OK(gguf_writer_add_u64(w, "v.u64", (1ull << 63) + 5));
    CHECK_OK(gguf_writer_add_i64(w, "v.i64", -(1ll << 62) - 3));
    CHECK_OK(gguf_writer_add_f32(w, "v.f32", 1.5e-5f));
    CHECK_OK(gguf_writer_add_f64(w, "v.f64", -2.718281828459045));
    CHECK_OK(gguf_writer_add_bool(w, "v.true", 7));
    CHECK_OK(gguf_writer_add_bool(w, "v.false", 0));
    CHECK_OK(gguf_writer_add_str(w, "v.str", "hello, w\xc3\xb6rld"));
    CHECK_OK(gguf_writer_add_str_n(w, "v.nul", "a\0b", 3));
    CHECK_OK(gguf_writer_add_str(w, "v.empty", ""));
    for (size_t i = 0; i < RT_NARR; i++)
        CHECK_OK(gguf_writer_add_arr(w, k_arrs[i].key, k_arrs[i].type, k_arrs[i].v, k_arrs[i].n));
    CHECK_OK(gguf_writer_add_arr_str(w, "arr.str", k_strs, 4));
    /* [[1, 2], [3]] as u16: an array of two arrays, encoded by hand. */
    bb nested = {0};
    bb_u32(&nested, GGUF_ARRAY);
    bb_u64(&nested, 2);
    bb_u32(&nested, GGUF_U16);
    bb_u64(&nested, 2);
    bb_le(&nested, 1, 2);
    bb_le(&nested, 2, 2);
    bb_u32(&nested, GGUF_U16);
    bb_u64(&nested, 1);
    bb_le(&nested, 3, 2);
    CHECK_OK(gguf_writer_add_raw(w, "arr.nested", GGUF_ARRAY, nested.p, nested.len));
    free(nested.p);

    for (size_t i = 0; i < RT_N; i++) {
        const rt_tensor *t = &k_rt[i];
        bufs[i] = malloc(t->bytes);
        for (uint64_t j = 0; j < t->bytes; j++) bufs[i][j] = (uint8_t)th_next(&rng);
        CHECK(gguf_writer_tensor_bytes(t->type, t->n_dims, t->ne) == t->bytes);
        if (t->mode == 0)
            CHECK_OK(
                gguf_writer_add_tensor(w, t->name, t->n_dims, t->ne, t->type, bufs[i], t->bytes));
        else if (t->mode == 1)
            CHECK_OK(gguf_writer_add_tensor(w, t->name, t->n_dims, t->ne, t->type, NULL, 0));
        else
            CHECK_OK(gguf_writer_add_tensor_fill(w, t->name, t->n_dims, t->ne, t->type,
                                                 fill_pattern, fills));
    }
    return w;
}

static void rt_check_kvs(const gguf_file *f) {
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    int64_t i64;
    float f32;
    double f64;
    int b;
    gguf_str s;
    gguf_array a;

    CHECK(gguf_kv_count(f) == 16 + RT_NARR + 2 + (gguf_find_key(f, "general.alignment") >= 0));
    CHECK(gguf_str_eq(gguf_kv_key(f, 0), "general.architecture"));
    CHECK(gguf_kv_type(f, 0) == GGUF_STRING);
    CHECK(gguf_kv_type(f, gguf_kv_count(f)) == GGUF_VTYPE_COUNT);
    CHECK(gguf_kv_key(f, gguf_kv_count(f)).len == 0);
    CHECK(gguf_kv_type(f, (uint64_t)gguf_find_key(f, "v.i16")) == GGUF_I16);

    CHECK_OK(gguf_get_u32(f, "v.u8", &u32));
    CHECK(u32 == 200);
    CHECK_OK(gguf_get_i32(f, "v.i8", &i32));
    CHECK(i32 == -100);
    CHECK_OK(gguf_get_u32(f, "v.u16", &u32));
    CHECK(u32 == 60000);
    CHECK_OK(gguf_get_i32(f, "v.i16", &i32));
    CHECK(i32 == -30000);
    CHECK_OK(gguf_get_u32(f, "v.u32", &u32));
    CHECK(u32 == 4000000000u);
    CHECK_OK(gguf_get_u64(f, "v.u32", &u64));
    CHECK(u64 == 4000000000u);
    CHECK(gguf_get_i32(f, "v.u32", &i32) == VKLLM_ERR_BAD_FILE); /* too large for i32 */
    CHECK_OK(gguf_get_i32(f, "v.i32", &i32));
    CHECK(i32 == -2000000000);
    CHECK(gguf_get_u32(f, "v.i32", &u32) == VKLLM_ERR_BAD_FILE); /* negative */
    CHECK(strstr(vkllm_last_error(), "v.i32") != NULL);
    CHECK_OK(gguf_get_u64(f, "v.u64", &u64));
    CHECK(u64 == (1ull << 63) + 5);
    CHECK(gguf_get_u32(f, "v.u64", &u32) == VKLLM_ERR_BAD_FILE);
    CHECK(gguf_get_i64(f, "v.u64", &i64) == VKLLM_ERR_BAD_FILE);
    CHECK_OK(gguf_get_i64(f, "v.i64", &i64));
    CHECK(i64 == -(1ll << 62) - 3);
    CHECK(gguf_get_u64(f, "v.i64", &u64) == VKLLM_ERR_BAD_FILE);
    CHECK(gguf_get_i32(f, "v.i64", &i32) == VKLLM_ERR_BAD_FILE);
    CHECK_OK(gguf_get_f32(f, "v.f32", &f32));
    CHECK(f32 == 1.5e-5f);
    CHECK_OK(gguf_get_f64(f, "v.f32", &f64));
    CHECK(f64 == (double)1.5e-5f);
    CHECK_OK(gguf_get_f64(f, "v.f64", &f64));
    CHECK(f64 == -2.718281828459045);
    CHECK_OK(gguf_get_f32(f, "v.f64", &f32));
    CHECK(f32 == (float)-2.718281828459045);
    CHECK(gguf_get_f32(f, "v.u8", &f32) == VKLLM_ERR_BAD_FILE);
    CHECK(gguf_get_u32(f, "v.f32", &u32) == VKLLM_ERR_BAD_FILE);
    b = -1;
    CHECK_OK(gguf_get_bool(f, "v.true", &b));
    CHECK(b == 1);
    CHECK_OK(gguf_get_bool(f, "v.false", &b));
    CHECK(b == 0);
    CHECK(gguf_get_bool(f, "v.u8", &b) == VKLLM_ERR_BAD_FILE);
    CHECK_OK(gguf_get_str(f, "v.str", &s));
    CHECK(gguf_str_eq(s, "hello, w\xc3\xb6rld"));
    CHECK_OK(gguf_get_str(f, "v.nul", &s));
    CHECK(s.len == 3 && memcmp(s.ptr, "a\0b", 3) == 0);
    char cbuf[8];
    CHECK(strcmp(gguf_str_c(s, cbuf, sizeof cbuf), "a") == 0); /* C string stops at the NUL */
    CHECK_OK(gguf_get_str(f, "v.empty", &s));
    CHECK(s.len == 0 && gguf_str_eq(s, ""));
    CHECK(gguf_get_str(f, "v.u8", &s) == VKLLM_ERR_BAD_FILE);
    CHECK(strstr(vkllm_last_error(), "v.u8") != NULL);
    CHECK(gguf_get_u32(f, "no.such.key", &u32) == VKLLM_ERR_INVALID_ARG);
    CHECK(strstr(vkllm_last_error(), "no.such.key") != NULL);
    CHECK(gguf_find_key(f, "no.such.key") == -1);
    CHECK(gguf_find_key(f, "v.u") == -1); /* prefix of existing keys */
    CHECK(gguf_get_arr(f, "v.u8", &a) == VKLLM_ERR_BAD_FILE);

    for (size_t i = 0; i < RT_NARR; i++) {
        const rt_arr *r = &k_arrs[i];
        CHECK_OK(gguf_get_arr(f, r->key, &a));
        CHECK_MSG(a.type == r->type && a.count == r->n, "%s: type %d count %llu", r->key,
                  (int)a.type, (unsigned long long)a.count);
        for (uint64_t j = 0; j < r->n && a.count == r->n; j++)
            CHECK_MSG(gguf_arr_num(&a, j) == host_num(r->type, r->v, j), "%s[%llu] = %g", r->key,
                      (unsigned long long)j, gguf_arr_num(&a, j));
        CHECK(gguf_arr_num(&a, r->n) == 0);     /* out of range */
        CHECK(gguf_arr_str(f, &a, 0).len == 0); /* not a string array */
    }
    /* Exact 64-bit values through the raw little-endian bytes. */
    CHECK_OK(gguf_get_arr(f, "arr.u64", &a));
    if (a.count == 3) {
        const uint8_t *p = (const uint8_t *)a.data + 8;
        uint64_t v = 0;
        for (int k = 7; k >= 0; k--) v = v << 8 | p[k];
        CHECK(v == UINT64_MAX);
    }

    CHECK_OK(gguf_get_arr(f, "arr.str", &a));
    CHECK(a.type == GGUF_STRING && a.count == 4);
    for (uint64_t j = 0; j < 4 && a.count == 4; j++)
        CHECK_MSG(gguf_str_eq(gguf_arr_str(f, &a, j), k_strs[j]), "arr.str[%llu]",
                  (unsigned long long)j);
    CHECK(gguf_arr_str(f, &a, 4).len == 0);
    CHECK(gguf_arr_num(&a, 0) == 0);

    CHECK_OK(gguf_get_arr(f, "arr.nested", &a));
    CHECK(a.type == GGUF_ARRAY && a.count == 2);
    if (a.count == 2) { /* first inner array: u16 type, count 2, values 1 and 2 */
        const uint8_t *p = a.data;
        CHECK(p[0] == GGUF_U16 && p[4] == 2 && p[12] == 1 && p[14] == 2);
    }
}

static void rt_check_tensors(const gguf_file *f, uint8_t *const *bufs, const gguf_writer *w,
                             int header_only) {
    CHECK(gguf_tensor_count(f) == RT_N);
    CHECK(gguf_has_data(f) == !header_only);
    CHECK(gguf_data_offset(f) % gguf_alignment(f) == 0);
    for (size_t i = 0; i < RT_N && gguf_tensor_count(f) == RT_N; i++) {
        const rt_tensor *r = &k_rt[i];
        const gguf_tensor *t = gguf_tensor_at(f, i);
        CHECK(gguf_find_tensor(f, r->name) == t);
        CHECK_MSG(gguf_str_eq(t->name, r->name), "tensor %zu name", i);
        CHECK(t->n_dims == r->n_dims && t->type == r->type);
        for (uint32_t d = 0; d < 4; d++) CHECK(t->ne[d] == (d < r->n_dims ? r->ne[d] : 1));
        CHECK_MSG(t->size == r->bytes, "%s: size %llu, want %llu", r->name,
                  (unsigned long long)t->size, (unsigned long long)r->bytes);
        CHECK(t->offset % gguf_alignment(f) == 0);
        CHECK(t->offset == gguf_writer_tensor_offset(w, i));
        if (i > 0) {
            const gguf_tensor *p = gguf_tensor_at(f, i - 1);
            CHECK(t->offset >= p->offset + p->size &&
                  t->offset < p->offset + p->size + gguf_alignment(f));
        }
        if (header_only) {
            CHECK(t->data == NULL);
            continue;
        }
        CHECK(t->data != NULL);
        if (!t->data) continue;
        const uint8_t *d = t->data;
        int same = 1;
        for (uint64_t j = 0; j < r->bytes; j++) {
            uint8_t want = r->mode == 0   ? bufs[i][j]
                           : r->mode == 1 ? 0
                                          : (uint8_t)(j * 13 + strlen(r->name));
            if (d[j] != want) same = 0;
        }
        CHECK_MSG(same, "tensor %s data differs", r->name);
    }
    CHECK(gguf_tensor_at(f, RT_N) == NULL);
    CHECK(gguf_find_tensor(f, "nope") == NULL);
    CHECK(gguf_find_tensor(f, "f32") == NULL);
}

/* Writes the round-trip file through both sinks, reads it back both ways. Returns the file
 * bytes (malloc'd) for the corruption tests and its header-only size. */
static uint8_t *test_round_trip(uint32_t version, uint32_t alignment, size_t *size_out,
                                uint64_t *header_out) {
    uint8_t *bufs[RT_N] = {0};
    int fills = 0;
    gguf_writer *w = rt_build(version, alignment, bufs, &fills);
    void *mem = NULL, *hdr = NULL;
    size_t size = 0, hsize = 0;
    uint64_t header = 0, data_start = 0, total = 0;
    char path[512];
    CHECK_OK(gguf_writer_layout(w, &header, &data_start, &total));
    CHECK_OK(gguf_writer_write_memory(w, 0, &mem, &size));
    CHECK(fills == 1);
    CHECK(size == total);
    CHECK(data_start == (header + (alignment ? alignment : 32) - 1) / (alignment ? alignment : 32) *
                            (alignment ? alignment : 32));
    CHECK_OK(gguf_writer_write_memory(w, GGUF_WRITE_HEADER_ONLY, &hdr, &hsize));
    CHECK(hsize == header);
    CHECK(hdr && mem && memcmp(hdr, mem, hsize) == 0);

    /* Padding between the infos and the data and between tensors must be zero. */
    if (mem) {
        const uint8_t *m = mem;
        int zero = 1;
        for (uint64_t j = header; j < data_start; j++) zero &= m[j] == 0;
        for (size_t i = 0; i + 1 < RT_N; i++)
            for (uint64_t j = gguf_writer_tensor_offset(w, i) + k_rt[i].bytes;
                 j < gguf_writer_tensor_offset(w, i + 1); j++)
                zero &= m[data_start + j] == 0;
        CHECK_MSG(zero, "padding is not zero");
    }

    /* The file sink gives the same bytes. */
    th_tmp_path("vkllm_test_gguf_rt.gguf", path, sizeof path);
    CHECK_OK(gguf_writer_write_file(w, path, 0));
    CHECK(fills == 2);
    size_t fsize = 0;
    char *fbytes = th_read_file(path, &fsize);
    CHECK(fbytes && fsize == size && memcmp(fbytes, mem, size) == 0);
    free(fbytes);

    gguf_file *f = NULL;
    CHECK_OK(gguf_open(path, &f));
    if (f) {
        CHECK(gguf_version(f) == version);
        CHECK(gguf_alignment(f) == (alignment ? alignment : 32));
        CHECK(gguf_file_size(f) == size);
        CHECK(gguf_data_offset(f) == data_start);
        rt_check_kvs(f);
        rt_check_tensors(f, bufs, w, 0);
        gguf_close(f);
    }
    f = NULL;
    CHECK_OK(gguf_open_memory(mem, size, &f));
    if (f) {
        rt_check_kvs(f);
        rt_check_tensors(f, bufs, w, 0);
        gguf_close(f);
    }
    /* Header-only: same metadata and tensor infos, no data. */
    f = NULL;
    CHECK_OK(gguf_open_memory(hdr, hsize, &f));
    if (f) {
        CHECK(gguf_data_offset(f) == data_start);
        rt_check_kvs(f);
        rt_check_tensors(f, bufs, w, 1);
        gguf_close(f);
    }
    th_tmp_path("vkllm_test_gguf_hdr.gguf", path, sizeof path);
    CHECK_OK(gguf_writer_write_file(w, path, GGUF_WRITE_HEADER_ONLY));
    f = NULL;
    CHECK_OK(gguf_open(path, &f));
    CHECK(f && !gguf_has_data(f) && gguf_file_size(f) == header);
    gguf_close(f);
    remove(path);
    th_tmp_path("vkllm_test_gguf_rt.gguf", path, sizeof path);
    remove(path);

    gguf_writer_free(w);
    for (size_t i = 0; i < RT_N; i++) free(bufs[i]);
    free(hdr);
    *size_out = size;
    *header_out = header;
    return mem;
}

static vkllm_status fill_fails(void *user, const char *name, void *dst, uint64_t size) {
    return VKLLM_ERR_CANCELLED;
}

/* The writer's layout matches a file assembled by hand from the format description. */
static void test_writer_matches_hand_layout(void) {
    bb b = {0};
    bb_small(&b);
    uint8_t a_data[12], b_data[20];
    for (size_t i = 0; i < 12; i++) a_data[i] = (uint8_t)(i * 7 + 1);
    for (size_t i = 0; i < 20; i++) b_data[i] = (uint8_t)(i * 7 + 1);
    gguf_writer *w = NULL;
    CHECK_OK(gguf_writer_create(&w));
    CHECK_OK(gguf_writer_add_str(w, "general.architecture", "llama"));
    CHECK_OK(gguf_writer_add_u32(w, "x.n", 7));
    CHECK_OK(gguf_writer_add_tensor(w, "a", 1, k_ne_a, WTYPE_F32, a_data, 12));
    CHECK_OK(gguf_writer_add_tensor(w, "b", 2, k_ne_b, WTYPE_F16, b_data, 20));
    void *mem = NULL;
    size_t n = 0;
    CHECK_OK(gguf_writer_write_memory(w, 0, &mem, &n));
    CHECK_MSG(n == b.len && mem && memcmp(mem, b.p, n) == 0,
              "writer output (%zu bytes) differs "
              "from the hand-made file (%zu bytes)",
              n, b.len);
    free(mem);

    /* The writer refuses what the reader would refuse. */
    static const uint64_t ne33[1] = {33}, ne0[2] = {4, 0}, ne4[1] = {4};
    uint8_t junk[64] = {0};
    CHECK(gguf_writer_add_u32(w, "x.n", 8) == VKLLM_ERR_INVALID_ARG);
    CHECK(gguf_writer_add_tensor(w, "a", 1, ne4, WTYPE_F32, NULL, 0) == VKLLM_ERR_INVALID_ARG);
    CHECK(gguf_writer_add_tensor(w, "c", 1, ne33, WTYPE_Q4_0, NULL, 0) == VKLLM_ERR_INVALID_ARG);
    CHECK(gguf_writer_add_tensor(w, "c", 2, ne0, WTYPE_F32, NULL, 0) == VKLLM_ERR_INVALID_ARG);
    CHECK(gguf_writer_add_tensor(w, "c", 0, ne4, WTYPE_F32, NULL, 0) == VKLLM_ERR_INVALID_ARG);
    CHECK(gguf_writer_add_tensor(w, "c", 5, ne4, WTYPE_F32, NULL, 0) == VKLLM_ERR_INVALID_ARG);
    CHECK(gguf_writer_add_tensor(w, "c", 1, ne4, 99, NULL, 0) == VKLLM_ERR_INVALID_ARG);
    CHECK(gguf_writer_add_tensor(w, "c", 1, ne4, WTYPE_F32, junk, 15) == VKLLM_ERR_INVALID_ARG);
    CHECK(gguf_writer_add_tensor_fill(w, "c", 1, ne4, WTYPE_F32, NULL, NULL) ==
          VKLLM_ERR_INVALID_ARG);
    CHECK(gguf_writer_set_alignment(w, 0) == VKLLM_ERR_INVALID_ARG);
    CHECK(gguf_writer_set_alignment(w, 48) == VKLLM_ERR_INVALID_ARG);
    CHECK(gguf_writer_add_u64(w, "general.alignment", 64) == VKLLM_ERR_INVALID_ARG);
    CHECK(gguf_writer_set_version(w, 1) == VKLLM_ERR_INVALID_ARG);
    CHECK(gguf_writer_add_arr(w, "x.s", GGUF_STRING, junk, 1) == VKLLM_ERR_INVALID_ARG);
    CHECK(gguf_writer_write_file(w, "/nonexistent-dir/x.gguf", 0) == VKLLM_ERR_IO);
    /* Failed adds left the writer unchanged. */
    CHECK_OK(gguf_writer_write_memory(w, 0, &mem, &n));
    CHECK(n == b.len && mem && memcmp(mem, b.p, n) == 0);
    free(mem);

    /* Changing the alignment later moves the data and records the KV once. */
    CHECK_OK(gguf_writer_set_alignment(w, 64));
    CHECK_OK(gguf_writer_set_alignment(w, 128));
    CHECK(gguf_writer_tensor_offset(w, 1) == 128);
    CHECK_OK(gguf_writer_write_memory(w, 0, &mem, &n));
    gguf_file *f = NULL;
    CHECK_OK(gguf_open_memory(mem, n, &f));
    if (f) {
        uint32_t al = 0;
        CHECK(gguf_alignment(f) == 128 && gguf_kv_count(f) == 3);
        CHECK_OK(gguf_get_u32(f, "general.alignment", &al));
        CHECK(al == 128);
        CHECK(gguf_data_offset(f) % 128 == 0 && gguf_find_tensor(f, "b")->offset == 128);
        CHECK(memcmp(gguf_find_tensor(f, "b")->data, b_data, 20) == 0);
        gguf_close(f);
    }
    free(mem);

    /* A failing fill callback fails the write, naming the tensor; no file is left behind. */
    char path[512];
    th_tmp_path("vkllm_test_gguf_fail.gguf", path, sizeof path);
    CHECK_OK(gguf_writer_add_tensor_fill(w, "filled", 1, ne4, WTYPE_F32, fill_fails, NULL));
    mem = (void *)path;
    CHECK(gguf_writer_write_memory(w, 0, &mem, &n) == VKLLM_ERR_CANCELLED && mem == NULL);
    CHECK(strstr(vkllm_last_error(), "'filled'") != NULL);
    CHECK(gguf_writer_write_file(w, path, 0) == VKLLM_ERR_CANCELLED);
    CHECK(fopen(path, "rb") == NULL);
    CHECK_OK(gguf_writer_write_file(w, path, GGUF_WRITE_HEADER_ONLY)); /* no data: no fill */
    CHECK_OK(gguf_open(path, &f));
    CHECK(f && gguf_tensor_count(f) == 3 && !gguf_has_data(f));
    gguf_close(f);
    remove(path);
    gguf_writer_free(w);
    free(b.p);
}

/* -------------------------------------------------------------- real files ---- */

static void test_stories(void) {
    char path[1024];
    if (!th_data_path("stories260K/stories260K.gguf", path, sizeof path)) return;
    gguf_file *f = NULL;
    CHECK_OK(gguf_open(path, &f));
    if (!f) return;
    gguf_str s;
    uint32_t u;
    float eps;
    CHECK(gguf_version(f) == 3);
    CHECK(gguf_alignment(f) == 32);
    CHECK(gguf_file_size(f) == 1185376);
    CHECK(gguf_has_data(f) == 1);
    CHECK(gguf_kv_count(f) == 19);
    CHECK(gguf_tensor_count(f) == 48);   /* 3 + 5 layers x 9 */
    CHECK(gguf_data_offset(f) == 14176); /* infos end at 14152, aligned up to 32 */
    CHECK_OK(gguf_get_str(f, "general.architecture", &s));
    CHECK(gguf_str_eq(s, "llama"));
    CHECK_OK(gguf_get_u32(f, "llama.embedding_length", &u));
    CHECK(u == 64);
    CHECK_OK(gguf_get_u32(f, "llama.block_count", &u));
    CHECK(u == 5);
    CHECK_OK(gguf_get_u32(f, "llama.attention.head_count", &u));
    CHECK(u == 8);
    CHECK_OK(gguf_get_u32(f, "llama.attention.head_count_kv", &u));
    CHECK(u == 4);
    CHECK_OK(gguf_get_u32(f, "llama.feed_forward_length", &u));
    CHECK(u == 172);
    CHECK_OK(gguf_get_u32(f, "tokenizer.ggml.bos_token_id", &u));
    CHECK(u == 1);
    CHECK_OK(gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &eps));
    CHECK(fabsf(eps - 1e-5f) < 1e-10f);
    CHECK(gguf_find_key(f, "llama.rope.freq_base") == -1);

    gguf_array a;
    CHECK_OK(gguf_get_arr(f, "tokenizer.ggml.tokens", &a));
    CHECK(a.type == GGUF_STRING && a.count == 512);
    CHECK(gguf_str_eq(gguf_arr_str(f, &a, 0), "<unk>"));
    CHECK(gguf_str_eq(gguf_arr_str(f, &a, 1), "<s>"));
    CHECK(gguf_str_eq(gguf_arr_str(f, &a, 3), "<0x00>"));
    CHECK_OK(gguf_get_arr(f, "tokenizer.ggml.token_type", &a));
    CHECK(a.type == GGUF_I32 && a.count == 512);
    CHECK(gguf_arr_num(&a, 0) == 2 && gguf_arr_num(&a, 1) == 3 && gguf_arr_num(&a, 3) == 6);

    const gguf_tensor *t = gguf_find_tensor(f, "token_embd.weight");
    CHECK(t && t->n_dims == 2 && t->ne[0] == 64 && t->ne[1] == 512 && t->type == WTYPE_F32);
    CHECK(t && t->offset == 0 && t->size == 131072);
    t = gguf_find_tensor(f, "blk.0.ffn_down.weight");
    CHECK(t && t->n_dims == 2 && t->ne[0] == 172 && t->ne[1] == 64 && t->size == 44032);
    t = gguf_find_tensor(f, "blk.4.attn_k.weight");
    CHECK(t && t->ne[0] == 64 && t->ne[1] == 32 && t->offset == 1005824);
    t = gguf_find_tensor(f, "output_norm.weight");
    CHECK(t && t->n_dims == 1 && t->ne[0] == 64 && t->ne[1] == 1);
    CHECK(gguf_find_tensor(f, "output.weight") != NULL);
    t = gguf_tensor_at(f, 47);
    CHECK(t && gguf_str_eq(t->name, "blk.4.ffn_norm.weight"));
    CHECK(t && gguf_data_offset(f) + t->offset + t->size == gguf_file_size(f));

    /* Tensor data points at the bytes of the file. */
    size_t n = 0;
    char *bytes = th_read_file(path, &n);
    t = gguf_find_tensor(f, "blk.2.ffn_up.weight");
    CHECK(bytes && t && t->data && n == 1185376 &&
          memcmp(t->data, bytes + 14176 + t->offset, t->size) == 0);
    free(bytes);
    gguf_close(f);
}

static void test_vocab_only(void) {
    char path[1024];
    if (!th_data_path("vocab-llama-spm/ggml-vocab-llama-spm.gguf", path, sizeof path)) return;
    gguf_file *f = NULL;
    CHECK_OK(gguf_open(path, &f));
    if (!f) return;
    CHECK(gguf_tensor_count(f) == 0);
    CHECK(gguf_kv_count(f) == 22);
    CHECK(gguf_has_data(f) == 1); /* nothing is missing */
    gguf_array a, sc, tt;
    CHECK_OK(gguf_get_arr(f, "tokenizer.ggml.tokens", &a));
    CHECK(a.type == GGUF_STRING && a.count == 32000);
    CHECK(gguf_str_eq(gguf_arr_str(f, &a, 0), "<unk>"));
    CHECK(gguf_str_eq(gguf_arr_str(f, &a, 2), "</s>"));
    CHECK(gguf_str_eq(gguf_arr_str(f, &a, 100), "<0x61>"));
    CHECK(gguf_str_eq(gguf_arr_str(f, &a, 29871), "\xe2\x96\x81"));
    CHECK(gguf_str_eq(gguf_arr_str(f, &a, 31999), "\xe7\xbb\x99"));
    uint64_t total = 0;
    for (uint64_t i = 0; i < a.count; i++) total += gguf_arr_str(f, &a, i).len;
    CHECK_MSG(total == 210919, "token bytes %llu", (unsigned long long)total);
    CHECK_OK(gguf_get_arr(f, "tokenizer.ggml.scores", &sc));
    CHECK(sc.type == GGUF_F32 && sc.count == 32000);
    CHECK(gguf_arr_num(&sc, 31999) == -31740.0 && gguf_arr_num(&sc, 29871) == -1e9);
    CHECK_OK(gguf_get_arr(f, "tokenizer.ggml.token_type", &tt));
    CHECK(tt.type == GGUF_I32 && tt.count == 32000 && gguf_arr_num(&tt, 31999) == 1);
    int b = -1;
    CHECK_OK(gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &b));
    CHECK(b == 1);
    CHECK_OK(gguf_get_bool(f, "tokenizer.ggml.add_eos_token", &b));
    CHECK(b == 0);
    uint32_t u = 0;
    CHECK_OK(gguf_get_u32(f, "llama.vocab_size", &u));
    CHECK(u == 32000);
    gguf_close(f);
}

/* --------------------------------------------------------- hostile input ---- */

static void test_truncations(const uint8_t *file, size_t size, uint64_t header) {
    uint64_t data_start = (header + 31) / 32 * 32;
    int wrong = 0;
    for (size_t n = 0; n < size; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        if (n) memcpy(copy, file, n);
        gguf_file *f = NULL;
        vkllm_status st = gguf_open_memory(copy, n, &f);
        int header_only = n >= header && n <= data_start;
        if (header_only) {
            if (st != VKLLM_OK || gguf_has_data(f) || gguf_tensor_at(f, 0)->data != NULL) {
                CHECK_MSG(0, "cut at %zu (header-only): status %d %s", n, (int)st,
                          vkllm_last_error());
                wrong++;
            }
        } else if (st != VKLLM_ERR_BAD_FILE || f || !vkllm_last_error()[0]) {
            CHECK_MSG(0, "cut at %zu: status %d, want BAD_FILE", n, (int)st);
            wrong++;
        }
        gguf_close(f);
        free(copy);
        if (wrong > 5) break;
    }
    CHECK(wrong == 0);
}

static void test_hand_made(void) {
    bb b = {0};
    uint8_t tiny[2] = {'G', 'G'};
    expect_open("empty", tiny, 0, VKLLM_ERR_BAD_FILE, "magic");
    expect_open("2 bytes", tiny, 2, VKLLM_ERR_BAD_FILE, "magic");

    bb_small(&b);
    expect_bb("small valid", &b, VKLLM_OK, NULL);

    bb_small(&b);
    b.p[3] = 'X';
    expect_bb("bad magic", &b, VKLLM_ERR_BAD_FILE, "magic");
    const uint32_t versions[] = {1, 4, 0x03000000u, 0, 0x12345678u};
    const vkllm_status vst[] = {VKLLM_ERR_UNSUPPORTED, VKLLM_ERR_UNSUPPORTED, VKLLM_ERR_UNSUPPORTED,
                                VKLLM_ERR_BAD_FILE, VKLLM_ERR_BAD_FILE};
    const char *vneedle[] = {"version 1", "version 4", "big-endian", "version 0", "version"};
    for (int i = 0; i < 5; i++) {
        bb_small(&b);
        for (int k = 0; k < 4; k++) b.p[4 + k] = (uint8_t)(versions[i] >> (8 * k));
        expect_bb(vneedle[i], &b, vst[i], vneedle[i]);
    }
    bb_small(&b);
    b.p[4] = 2; /* v2 shares the layout */
    expect_bb("version 2", &b, VKLLM_OK, NULL);

    /* Counts that cannot fit. */
    bb_header(&b, 3, 1ull << 62, 0);
    bb_put(&b, "0123456789abcdef0123456789abcdef", 32);
    expect_bb("huge tensor count", &b, VKLLM_ERR_BAD_FILE, "tensor count");
    bb_header(&b, 3, 0, UINT64_MAX);
    expect_bb("huge kv count", &b, VKLLM_ERR_BAD_FILE, "kv count");
    bb_small_kvs(&b, 3); /* 3 tensors claimed, 2 written, then data: fits the header check */
    bb_tensor(&b, "a", 1, k_ne_a, WTYPE_F32, 0);
    bb_tensor(&b, "b", 2, k_ne_b, WTYPE_F16, 32);
    expect_bb("tensor count past the infos", &b, VKLLM_ERR_BAD_FILE, "tensor");
    bb_header(&b, 3, 0, 1);
    bb_u64(&b, 1ull << 63);
    bb_put(&b, "key", 3);
    bb_u32(&b, GGUF_U8);
    bb_le(&b, 0, 1);
    expect_bb("huge key length", &b, VKLLM_ERR_BAD_FILE, "kv #0: key length");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "s");
    bb_u32(&b, GGUF_STRING);
    bb_u64(&b, UINT64_MAX);
    bb_put(&b, "abcdef", 6);
    expect_bb("huge string length", &b, VKLLM_ERR_BAD_FILE, "kv #0 's'");
    const uint32_t arr_types[] = {GGUF_U8, GGUF_STRING, GGUF_ARRAY, GGUF_F64};
    for (int i = 0; i < 4; i++) {
        bb_header(&b, 3, 0, 1);
        bb_str(&b, "arr");
        bb_u32(&b, GGUF_ARRAY);
        bb_u32(&b, arr_types[i]);
        bb_u64(&b, i == 0 ? 1ull << 60 : UINT64_MAX);
        bb_put(&b, "0123456789abcdef0123456789abcdef", 32);
        expect_bb("huge array count", &b, VKLLM_ERR_BAD_FILE, "cannot fit");
    }

    /* Nested arrays: depth 8 is legal, 9 is not, and a deep bomb fails the same way. */
    const int depths[] = {8, 9, 100000};
    for (int i = 0; i < 3; i++) {
        bb_header(&b, 3, 0, 1);
        bb_str(&b, "deep");
        bb_u32(&b, GGUF_ARRAY);
        for (int d = 1; d < depths[i]; d++) {
            bb_u32(&b, GGUF_ARRAY);
            bb_u64(&b, 1);
        }
        bb_u32(&b, GGUF_U8);
        bb_u64(&b, 1);
        bb_le(&b, 42, 1);
        expect_bb("nested depth", &b, i == 0 ? VKLLM_OK : VKLLM_ERR_BAD_FILE, "nested");
    }

    bb_header(&b, 3, 0, 2);
    bb_kv_str(&b, "general.architecture", "llama");
    bb_str(&b, "llama.block_count");
    bb_u32(&b, 57);
    bb_u32(&b, 5);
    expect_bb("bad value type", &b, VKLLM_ERR_BAD_FILE, "kv #1 'llama.block_count': value type 57");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "arr");
    bb_u32(&b, GGUF_ARRAY);
    bb_u32(&b, 13);
    bb_u64(&b, 0);
    expect_bb("bad array element type", &b, VKLLM_ERR_BAD_FILE, "element type 13");
    bb_header(&b, 3, 0, 2);
    bb_kv_u32(&b, "x.n", 1);
    bb_kv_u32(&b, "x.n", 2);
    expect_bb("duplicate key", &b, VKLLM_ERR_BAD_FILE, "'x.n' appears twice");
    bb_header(&b, 3, 0, 0);
    expect_bb("empty but valid", &b, VKLLM_OK, NULL);

    /* Alignment. */
    const uint32_t aligns[] = {0, 3, 48};
    for (int i = 0; i < 3; i++) {
        bb_header(&b, 3, 1, 1);
        bb_kv_u32(&b, "general.alignment", aligns[i]);
        bb_tensor(&b, "a", 1, k_ne_a, WTYPE_F32, 0);
        bb_data(&b, 64, 12);
        expect_bb("bad alignment", &b, VKLLM_ERR_BAD_FILE, "general.alignment");
    }
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "general.alignment");
    bb_u32(&b, GGUF_U64);
    bb_u64(&b, 64);
    expect_bb("alignment as u64", &b, VKLLM_ERR_BAD_FILE, "expected u32");
    bb_header(&b, 3, 2, 1);
    bb_kv_u32(&b, "general.alignment", 64);
    bb_tensor(&b, "a", 1, k_ne_a, WTYPE_F32, 0);
    bb_tensor(&b, "b", 1, k_ne_a, WTYPE_F32, 64);
    size_t infos_end = b.len;
    bb_data(&b, 64, 76);
    {
        gguf_file *f = NULL;
        CHECK_OK(gguf_open_memory(b.p, b.len, &f));
        CHECK(f && gguf_alignment(f) == 64 && gguf_data_offset(f) % 64 == 0 &&
              gguf_data_offset(f) + 76 == b.len);
        gguf_close(f);
    }
    b.p[infos_end - 8] = 0; /* tensor b's offset: 64 -> 0 overlaps a */
    expect_bb("alignment 64, overlap", &b, VKLLM_ERR_BAD_FILE, "overlaps");
    bb_header(&b, 3, 2, 1);
    bb_kv_u32(&b, "general.alignment", 64);
    bb_tensor(&b, "a", 1, k_ne_a, WTYPE_F32, 0);
    bb_tensor(&b, "b", 1, k_ne_a, WTYPE_F32, 32);
    bb_data(&b, 64, 76);
    expect_bb("offset aligned to 32, not 64", &b, VKLLM_ERR_BAD_FILE, "alignment 64");

    /* Tensor infos. */
    struct {
        const char *label;
        uint32_t n_dims;
        uint64_t ne[5];
        uint32_t type;
        uint64_t offset;
        vkllm_status want;
        const char *needle;
    } cases[] = {
        {"n_dims 0", 0, {5}, WTYPE_F16, 32, VKLLM_ERR_BAD_FILE, "tensor 'b': n_dims 0"},
        {"n_dims 5", 5, {5, 1, 1, 1, 2}, WTYPE_F16, 32, VKLLM_ERR_BAD_FILE, "n_dims 5"},
        {"ne 0", 2, {5, 0}, WTYPE_F16, 32, VKLLM_ERR_BAD_FILE, "ne[1] is 0"},
        {"ne product",
         3,
         {1ull << 32, 1ull << 32, 2},
         WTYPE_F32,
         32,
         VKLLM_ERR_BAD_FILE,
         "element count"},
        {"row bytes", 1, {1ull << 62}, WTYPE_F32, 32, VKLLM_ERR_BAD_FILE, "overflows 64 bits"},
        {"byte size",
         2,
         {1ull << 32, 1ull << 31},
         WTYPE_F32,
         32,
         VKLLM_ERR_BAD_FILE,
         "overflows 64 bits"},
        {"block",
         1,
         {33},
         WTYPE_Q4_0,
         32,
         VKLLM_ERR_BAD_FILE,
         "not a multiple of the q4_0 block size 32"},
        {"q4_K block", 2, {128, 2}, WTYPE_Q4_K, 32, VKLLM_ERR_BAD_FILE, "block size 256"},
        {"unaligned", 2, {5, 2}, WTYPE_F16, 16, VKLLM_ERR_BAD_FILE, "offset 16 is not a multiple"},
        {"past EOF", 2, {5, 2}, WTYPE_F16, 1 << 20, VKLLM_ERR_BAD_FILE, "past the end of the file"},
        {"offset wraps", 2, {5, 2}, WTYPE_F16, UINT64_MAX - 31, VKLLM_ERR_BAD_FILE, "tensor 'b'"},
        {"overlap", 2, {5, 2}, WTYPE_F16, 0, VKLLM_ERR_BAD_FILE, "overlaps"},
        {"unknown type", 2, {5, 2}, 99, 32, VKLLM_ERR_UNSUPPORTED, "tensor 'b': ggml type id 99"},
        {"removed type 4", 2, {5, 2}, 4, 32, VKLLM_ERR_UNSUPPORTED, "type id 4"},
        {"valid q8_0", 1, {32}, WTYPE_Q8_0, 32, VKLLM_OK, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bb_small_kvs(&b, 2);
        bb_tensor(&b, "a", 1, k_ne_a, WTYPE_F32, 0);
        bb_tensor(&b, "b", cases[i].n_dims, cases[i].ne, cases[i].type, cases[i].offset);
        bb_data(&b, 32, 32 + 34);
        expect_bb(cases[i].label, &b, cases[i].want, cases[i].needle);
    }
    bb_small_kvs(&b, 2);
    bb_tensor(&b, "a", 1, k_ne_a, WTYPE_F32, 0);
    bb_tensor(&b, "a", 2, k_ne_b, WTYPE_F16, 32);
    bb_data(&b, 32, 52);
    expect_bb("duplicate tensor", &b, VKLLM_ERR_BAD_FILE, "tensor name 'a' appears twice");
    bb_small_kvs(&b, 2); /* overlap that starts inside the earlier tensor */
    bb_tensor(&b, "a", 1, (const uint64_t[]){16}, WTYPE_F32, 0);
    bb_tensor(&b, "b", 2, k_ne_b, WTYPE_F16, 32);
    bb_data(&b, 32, 64);
    expect_bb("partial overlap", &b, VKLLM_ERR_BAD_FILE,
              "tensor 'a' [offset 0, 64 bytes) overlaps");

    /* Data section: header-only opens; a short data section does not. */
    bb_small(&b);
    b.len -= 1;
    expect_bb("one byte short", &b, VKLLM_ERR_BAD_FILE,
              "tensor 'b': data [offset 32, 20 bytes) ends past the end of the file");
    bb_small(&b);
    size_t full = b.len;
    b.len = full - 52; /* exactly at the data section start */
    {
        gguf_file *f = NULL;
        CHECK_OK(gguf_open_memory(b.p, b.len, &f));
        CHECK(f && !gguf_has_data(f) && gguf_data_offset(f) == b.len);
        CHECK(f && gguf_find_tensor(f, "b") && gguf_find_tensor(f, "b")->data == NULL);
        gguf_close(f);
    }
    free(b.p);
    b = (bb){0};

    /* Files on disk. */
    char path[512];
    gguf_file *f = (gguf_file *)1;
    CHECK(gguf_open("/nonexistent/model.gguf", &f) == VKLLM_ERR_IO && f == NULL);
    CHECK(strstr(vkllm_last_error(), "/nonexistent/model.gguf") != NULL);
    th_tmp_path("", path, sizeof path);
    CHECK(gguf_open(path, &f) == VKLLM_ERR_IO);
    th_tmp_path("vkllm_test_gguf_empty.gguf", path, sizeof path);
    FILE *fp = fopen(path, "wb");
    if (fp) fclose(fp);
    CHECK(gguf_open(path, &f) == VKLLM_ERR_BAD_FILE);
    infos_end = bb_small(&b);
    b.p[infos_end - 12] = 55; /* tensor b's type id: f16 -> 55 */
    fp = fopen(path, "wb");
    if (fp) {
        fwrite(b.p, 1, b.len, fp);
        fclose(fp);
    }
    free(b.p);
    b = (bb){0};
    CHECK(gguf_open(path, &f) == VKLLM_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(vkllm_last_error(), path) && strstr(vkllm_last_error(), "type id 55"),
              "message: %s", vkllm_last_error());
    remove(path);
    CHECK(gguf_open_memory(NULL, 5, &f) == VKLLM_ERR_INVALID_ARG);
    CHECK(gguf_open_memory(tiny, 2, NULL) == VKLLM_ERR_INVALID_ARG);
}

/* Touches every value a caller could reach, so an index that points outside the buffer
 * shows up under valgrind. Returns a checksum to keep the reads alive. */
static uint64_t walk_everything(const gguf_file *f) {
    uint64_t sum = 0;
    char key[128];
    for (uint64_t i = 0; i < gguf_kv_count(f); i++) {
        gguf_str k = gguf_kv_key(f, i);
        gguf_str_c(k, key, sizeof key);
        for (uint64_t j = 0; j < k.len; j++) sum += (uint8_t)k.ptr[j];
        gguf_array a;
        gguf_str s;
        uint64_t u;
        double d;
        int b;
        switch (gguf_kv_type(f, i)) {
        case GGUF_STRING:
            if (gguf_get_str(f, key, &s) == VKLLM_OK)
                for (uint64_t j = 0; j < s.len; j++) sum += (uint8_t)s.ptr[j];
            break;
        case GGUF_ARRAY:
            if (gguf_get_arr(f, key, &a) != VKLLM_OK) break;
            for (uint64_t j = 0; j < a.count && j < 100000; j++) {
                if (a.type == GGUF_STRING) {
                    s = gguf_arr_str(f, &a, j);
                    if (s.len) sum += (uint8_t)s.ptr[0] + (uint8_t)s.ptr[s.len - 1];
                } else {
                    d = gguf_arr_num(&a, j);
                    sum += d == d ? 1 : 2;
                }
            }
            break;
        case GGUF_F32:
        case GGUF_F64:
            if (gguf_get_f64(f, key, &d) == VKLLM_OK) sum += d == d;
            break;
        case GGUF_BOOL:
            if (gguf_get_bool(f, key, &b) == VKLLM_OK) sum += (uint64_t)b;
            break;
        default:
            if (gguf_get_u64(f, key, &u) == VKLLM_OK) sum += u;
            break;
        }
    }
    for (uint64_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        char name[128];
        gguf_str_c(t->name, name, sizeof name);
        sum += gguf_find_tensor(f, name) != NULL;
        if (t->data) sum += ((const uint8_t *)t->data)[0] + ((const uint8_t *)t->data)[t->size - 1];
    }
    return sum;
}

static void test_byte_flips(const uint8_t *file, size_t size, uint64_t header) {
    th_rng rng = {20240611};
    uint8_t *copy = malloc(size);
    int ok = 0, bad = 0, wrong = 0;
    uint64_t sum = 0;
    static const uint64_t interesting[] = {
        0, 1, 0x7f, 0xff, 0xffffffffu, 1ull << 32, 1ull << 63, UINT64_MAX, UINT64_MAX - 31};
    for (int iter = 0; iter < 4000; iter++) {
        memcpy(copy, file, size);
        int flips = 1 + (int)(th_next(&rng) % 4);
        for (int k = 0; k < flips; k++) {
            /* Mostly the header, where the structure lives. */
            uint64_t span = (th_next(&rng) % 8) ? header : size;
            size_t pos = (size_t)(th_next(&rng) % span);
            if (th_next(&rng) % 4 == 0 && pos + 8 <= size) {
                uint64_t v =
                    interesting[th_next(&rng) % (sizeof interesting / sizeof interesting[0])];
                for (int j = 0; j < 8; j++) copy[pos + (size_t)j] = (uint8_t)(v >> (8 * j));
            } else {
                copy[pos] ^= (uint8_t)(1 + th_next(&rng) % 255);
            }
        }
        gguf_file *f = NULL;
        vkllm_status st = gguf_open_memory(copy, size, &f);
        if (st == VKLLM_OK) {
            ok++;
            sum += walk_everything(f);
            gguf_close(f);
        } else {
            bad++;
            if (f || !vkllm_last_error()[0] ||
                (st != VKLLM_ERR_BAD_FILE && st != VKLLM_ERR_UNSUPPORTED &&
                 st != VKLLM_ERR_OUT_OF_MEMORY))
                wrong++;
        }
    }
    printf("byte flips: %d opened, %d refused (checksum %llu)\n", ok, bad, (unsigned long long)sum);
    CHECK(wrong == 0);
    CHECK(ok > 0 && bad > 0); /* both outcomes are exercised */
    free(copy);
}

int main(void) {
    size_t size = 0;
    uint64_t header = 0;
    test_writer_matches_hand_layout();
    uint8_t *v2 = test_round_trip(2, 64, &size, &header);
    free(v2);
    uint8_t *file = test_round_trip(3, 0, &size, &header);
    test_stories();
    test_vocab_only();
    test_hand_made();
    if (file) {
        test_truncations(file, size, header);
        test_byte_flips(file, size, header);
    }
    free(file);
    return th_finish();
}
