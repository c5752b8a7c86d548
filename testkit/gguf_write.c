/* GGUF writer: values are encoded little-endian when added, so writing is a walk that lays
 * the header, zeroed padding and tensor bytes (referenced, zero-filled or produced by a fill
 * callback) into one sink, a FILE or an exactly-sized malloc'd buffer. */
#include "testkit/gguf_write.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/format/wtype.h"
#include "base/util.h"

#define GW_MAGIC 0x46554747u
#define GW_DEFAULT_ALIGNMENT 32u

typedef unsigned long long ull; /* for printf */

typedef struct gw_kv {
    char *key;
    uint32_t type;
    uint8_t *val; /* encoded value, everything after the u32 type */
    size_t val_len;
} gw_kv;

typedef struct gw_tensor {
    char *name;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    uint32_t type;
    uint64_t size;
    const void *data; /* referenced; NULL with fill == NULL means zeros */
    gguf_fill_fn fill;
    void *user;
} gw_tensor;

struct gguf_writer {
    uint32_t version;
    uint32_t alignment;
    gw_kv *kv;
    size_t n_kv, cap_kv;
    gw_tensor *t;
    size_t n_t, cap_t;
};

static const uint8_t k_elem_size[GGUF_VTYPE_COUNT] = {
    [GGUF_U8] = 1,  [GGUF_I8] = 1,   [GGUF_U16] = 2, [GGUF_I16] = 2, [GGUF_U32] = 4, [GGUF_I32] = 4,
    [GGUF_F32] = 4, [GGUF_BOOL] = 1, [GGUF_U64] = 8, [GGUF_I64] = 8, [GGUF_F64] = 8,
};

/* ------------------------------------------------------------ byte buffer ---- */

/* Growable buffer that remembers an allocation failure, checked once at the end. */
typedef struct gw_buf {
    uint8_t *p;
    size_t len, cap;
    int oom;
} gw_buf;

static void buf_put(gw_buf *b, const void *src, size_t n) {
    if (b->oom || n == 0) return;
    if (n > SIZE_MAX - b->len) {
        b->oom = 1;
        return;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n) cap = cap > SIZE_MAX / 2 ? b->len + n : cap * 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void buf_le(gw_buf *b, uint64_t v, unsigned bytes) {
    uint8_t le[8];
    for (unsigned i = 0; i < bytes; i++) le[i] = (uint8_t)(v >> (8 * i));
    buf_put(b, le, bytes);
}

static void buf_str(gw_buf *b, const char *s, uint64_t len) {
    buf_le(b, len, 8);
    if (len > SIZE_MAX)
        b->oom = 1;
    else
        buf_put(b, s, (size_t)len);
}

/* Host value of element size `bytes` at p as raw bits (floats keep their bit pattern). */
static uint64_t host_bits(const void *p, unsigned bytes) {
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    switch (bytes) {
    case 1: memcpy(&u8, p, 1); return u8;
    case 2: memcpy(&u16, p, 2); return u16;
    case 4: memcpy(&u32, p, 4); return u32;
    default: memcpy(&u64, p, 8); return u64;
    }
}

/* --------------------------------------------------------------- lifetime ---- */

vkllm_status gguf_writer_create(gguf_writer **out) {
    if (!out) return vkl_err(VKLLM_ERR_INVALID_ARG, "gguf_writer_create: out is NULL");
    *out = calloc(1, sizeof **out);
    if (!*out) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "gguf_writer_create: no memory");
    (*out)->version = 3;
    (*out)->alignment = GW_DEFAULT_ALIGNMENT;
    return VKLLM_OK;
}

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w);
}

vkllm_status gguf_writer_set_version(gguf_writer *w, uint32_t version) {
    if (!w) return vkl_err(VKLLM_ERR_INVALID_ARG, "gguf_writer_set_version: writer is NULL");
    if (version != 2 && version != 3)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "gguf writer: version %u is not 2 or 3", version);
    w->version = version;
    return VKLLM_OK;
}

/* Grows *arr (of *cap elements of `elem` bytes) to hold one more than n. */
static int grow(void **arr, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) return 1;
    size_t nc = *cap ? *cap * 2 : 16;
    if (nc > SIZE_MAX / elem) return 0;
    void *p = realloc(*arr, nc * elem);
    if (!p) return 0;
    *arr = p;
    *cap = nc;
    return 1;
}

static gw_kv *find_kv(const gguf_writer *w, const char *key) {
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, key)) return &w->kv[i];
    return NULL;
}

static int pow2(uint32_t a) { return a != 0 && (a & (a - 1)) == 0; }

/* Takes ownership of b's bytes whatever happens. */
static vkllm_status add_kv(gguf_writer *w, const char *key, uint32_t type, gw_buf *b) {
    vkllm_status st = VKLLM_OK;
    if (!w || !key) {
        st = vkl_err(VKLLM_ERR_INVALID_ARG, "gguf writer: NULL writer or key");
    } else if (b->oom) {
        st = vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "gguf writer: no memory for the value of '%s'", key);
    } else if (find_kv(w, key)) {
        st = vkl_err(VKLLM_ERR_INVALID_ARG, "gguf writer: key '%s' was already added", key);
    } else if (!strcmp(key, "general.alignment")) {
        uint32_t a = 0;
        if (type == GGUF_U32 && b->len == 4)
            a = (uint32_t)(b->p[0] | b->p[1] << 8 | b->p[2] << 16 | (uint32_t)b->p[3] << 24);
        if (!pow2(a))
            st = vkl_err(VKLLM_ERR_INVALID_ARG,
                         "gguf writer: general.alignment must be a u32 nonzero power of two");
        else
            w->alignment = a;
    }
    if (st == VKLLM_OK && !grow((void **)&w->kv, &w->cap_kv, w->n_kv, sizeof *w->kv))
        st = vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "gguf writer: no memory for key '%s'", key);
    char *k = st == VKLLM_OK ? vkl_strdup(key) : NULL;
    if (st == VKLLM_OK && !k)
        st = vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "gguf writer: no memory for key '%s'", key);
    if (st != VKLLM_OK) {
        free(b->p);
        return st;
    }
    w->kv[w->n_kv++] = (gw_kv){.key = k, .type = type, .val = b->p, .val_len = b->len};
    return VKLLM_OK;
}

vkllm_status gguf_writer_set_alignment(gguf_writer *w, uint32_t alignment) {
    if (!w) return vkl_err(VKLLM_ERR_INVALID_ARG, "gguf_writer_set_alignment: writer is NULL");
    if (!pow2(alignment))
        return vkl_err(VKLLM_ERR_INVALID_ARG,
                       "gguf writer: alignment %u is not a nonzero power of two", alignment);
    gw_kv *kv = find_kv(w, "general.alignment");
    if (kv) { /* add_kv only ever stores it as a 4-byte u32 */
        for (unsigned i = 0; i < 4; i++) kv->val[i] = (uint8_t)(alignment >> (8 * i));
        w->alignment = alignment;
        return VKLLM_OK;
    }
    return gguf_writer_add_u32(w, "general.alignment", alignment);
}

/* ------------------------------------------------------------------- KVs ---- */

static vkllm_status add_scalar(gguf_writer *w, const char *key, uint32_t type, uint64_t bits) {
    gw_buf b = {0};
    buf_le(&b, bits, k_elem_size[type]);
    return add_kv(w, key, type, &b);
}

vkllm_status gguf_writer_add_u8(gguf_writer *w, const char *key, uint8_t v) {
    return add_scalar(w, key, GGUF_U8, v);
}
vkllm_status gguf_writer_add_i8(gguf_writer *w, const char *key, int8_t v) {
    return add_scalar(w, key, GGUF_I8, (uint8_t)v);
}
vkllm_status gguf_writer_add_u16(gguf_writer *w, const char *key, uint16_t v) {
    return add_scalar(w, key, GGUF_U16, v);
}
vkllm_status gguf_writer_add_i16(gguf_writer *w, const char *key, int16_t v) {
    return add_scalar(w, key, GGUF_I16, (uint16_t)v);
}
vkllm_status gguf_writer_add_u32(gguf_writer *w, const char *key, uint32_t v) {
    return add_scalar(w, key, GGUF_U32, v);
}
vkllm_status gguf_writer_add_i32(gguf_writer *w, const char *key, int32_t v) {
    return add_scalar(w, key, GGUF_I32, (uint32_t)v);
}
vkllm_status gguf_writer_add_u64(gguf_writer *w, const char *key, uint64_t v) {
    return add_scalar(w, key, GGUF_U64, v);
}
vkllm_status gguf_writer_add_i64(gguf_writer *w, const char *key, int64_t v) {
    return add_scalar(w, key, GGUF_I64, (uint64_t)v);
}
vkllm_status gguf_writer_add_f32(gguf_writer *w, const char *key, float v) {
    return add_scalar(w, key, GGUF_F32, host_bits(&v, 4));
}
vkllm_status gguf_writer_add_f64(gguf_writer *w, const char *key, double v) {
    return add_scalar(w, key, GGUF_F64, host_bits(&v, 8));
}
vkllm_status gguf_writer_add_bool(gguf_writer *w, const char *key, int v) {
    return add_scalar(w, key, GGUF_BOOL, v != 0);
}

vkllm_status gguf_writer_add_str_n(gguf_writer *w, const char *key, const char *v, uint64_t len) {
    if (!v && len)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "gguf writer: string value of '%s' is NULL",
                       key ? key : "(null)");
    gw_buf b = {0};
    buf_str(&b, v ? v : "", len);
    return add_kv(w, key, GGUF_STRING, &b);
}

vkllm_status gguf_writer_add_str(gguf_writer *w, const char *key, const char *v) {
    if (!v)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "gguf writer: string value of '%s' is NULL",
                       key ? key : "(null)");
    return gguf_writer_add_str_n(w, key, v, strlen(v));
}

vkllm_status gguf_writer_add_arr(gguf_writer *w, const char *key, gguf_vtype type,
                                 const void *values, uint64_t count) {
    const char *k = key ? key : "(null)";
    if ((unsigned)type >= GGUF_VTYPE_COUNT || type == GGUF_STRING || type == GGUF_ARRAY)
        return vkl_err(VKLLM_ERR_INVALID_ARG,
                       "gguf writer: array '%s': element type %d is not a number or bool "
                       "(use gguf_writer_add_arr_str or gguf_writer_add_raw)",
                       k, (int)type);
    if (!values && count)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "gguf writer: array '%s': values is NULL", k);
    unsigned es = k_elem_size[type];
    if (count > (SIZE_MAX - 12) / es)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "gguf writer: array '%s': %llu elements is too many",
                       k, (ull)count);
    gw_buf b = {0};
    buf_le(&b, (uint64_t)type, 4);
    buf_le(&b, count, 8);
    const uint8_t *p = values;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t bits = host_bits(p + i * es, es);
        if (type == GGUF_BOOL) bits = bits != 0;
        buf_le(&b, bits, es);
    }
    return add_kv(w, key, GGUF_ARRAY, &b);
}

vkllm_status gguf_writer_add_arr_str(gguf_writer *w, const char *key, const char *const *values,
                                     uint64_t count) {
    const char *k = key ? key : "(null)";
    if (!values && count)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "gguf writer: array '%s': values is NULL", k);
    gw_buf b = {0};
    buf_le(&b, GGUF_STRING, 4);
    buf_le(&b, count, 8);
    for (uint64_t i = 0; i < count; i++) {
        if (!values[i]) {
            free(b.p);
            return vkl_err(VKLLM_ERR_INVALID_ARG, "gguf writer: array '%s': string %llu is NULL", k,
                           (ull)i);
        }
        buf_str(&b, values[i], strlen(values[i]));
    }
    return add_kv(w, key, GGUF_ARRAY, &b);
}

vkllm_status gguf_writer_add_raw(gguf_writer *w, const char *key, uint32_t vtype, const void *bytes,
                                 uint64_t len) {
    if ((!bytes && len) || len > SIZE_MAX)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "gguf writer: raw value of '%s' is NULL or too big",
                       key ? key : "(null)");
    gw_buf b = {0};
    buf_put(&b, bytes, (size_t)len);
    return add_kv(w, key, vtype, &b);
}

/* ---------------------------------------------------------------- tensors ---- */

uint64_t gguf_writer_tensor_bytes(uint32_t type, uint32_t n_dims, const uint64_t *ne) {
    if (!ne || n_dims < 1 || n_dims > GGUF_MAX_DIMS) return 0;
    for (uint32_t d = 0; d < n_dims; d++)
        if (ne[d] == 0) return 0;
    const wtype_traits *tr = wtype_get(type);
    if (!tr || ne[0] / tr->block > UINT64_MAX / tr->bytes) return 0;
    uint64_t size = wtype_row_bytes(type, ne[0]);
    for (uint32_t d = 1; d < n_dims && size; d++)
        if (!vkl_mul_u64(size, ne[d], &size)) return 0;
    return size;
}

static vkllm_status add_tensor(gguf_writer *w, const char *name, uint32_t n_dims,
                               const uint64_t *ne, uint32_t type, const gw_tensor *src) {
    if (!w || !name || !ne)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "gguf writer: NULL writer, tensor name or shape");
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return vkl_err(VKLLM_ERR_INVALID_ARG,
                       "gguf writer: tensor '%s': n_dims %u is outside 1..%d", name, n_dims,
                       GGUF_MAX_DIMS);
    const wtype_traits *tr = wtype_get(type);
    if (!tr)
        return vkl_err(VKLLM_ERR_INVALID_ARG,
                       "gguf writer: tensor '%s': ggml type id %u is not supported", name, type);
    uint64_t size = gguf_writer_tensor_bytes(type, n_dims, ne);
    if (size == 0)
        return vkl_err(VKLLM_ERR_INVALID_ARG,
                       "gguf writer: tensor '%s': shape has a zero dimension, overflows, or ne[0] "
                       "= %llu is not a multiple of the %s block size %u",
                       name, (ull)ne[0], tr->name, tr->block);
    if (src->data && src->size != size)
        return vkl_err(VKLLM_ERR_INVALID_ARG,
                       "gguf writer: tensor '%s': %llu data bytes given, the shape needs %llu",
                       name, (ull)src->size, (ull)size);
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name))
            return vkl_err(VKLLM_ERR_INVALID_ARG, "gguf writer: tensor '%s' was already added",
                           name);
    char *nm = vkl_strdup(name);
    if (!nm || !grow((void **)&w->t, &w->cap_t, w->n_t, sizeof *w->t)) {
        free(nm);
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "gguf writer: no memory for tensor '%s'", name);
    }
    gw_tensor *t = &w->t[w->n_t++];
    *t = *src;
    t->name = nm;
    t->n_dims = n_dims;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->type = type;
    t->size = size;
    return VKLLM_OK;
}

vkllm_status gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t n_dims,
                                    const uint64_t *ne, uint32_t type, const void *data,
                                    uint64_t size) {
    gw_tensor src = {.data = data, .size = size};
    return add_tensor(w, name, n_dims, ne, type, &src);
}

vkllm_status gguf_writer_add_tensor_fill(gguf_writer *w, const char *name, uint32_t n_dims,
                                         const uint64_t *ne, uint32_t type, gguf_fill_fn fill,
                                         void *user) {
    if (!fill)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "gguf writer: tensor '%s': fill function is NULL",
                       name ? name : "(null)");
    gw_tensor src = {.fill = fill, .user = user};
    return add_tensor(w, name, n_dims, ne, type, &src);
}

/* ----------------------------------------------------------------- layout ---- */

/* Offsets of each tensor in the data section follow from the sizes and the alignment. */
static int next_offset(uint64_t prev_off, uint64_t prev_size, uint32_t align, uint64_t *out) {
    uint64_t end;
    if (!vkl_add_u64(prev_off, prev_size, &end) || !vkl_add_u64(end, align - 1, &end)) return 0;
    *out = end / align * align;
    return 1;
}

vkllm_status gguf_writer_layout(const gguf_writer *w, uint64_t *header_bytes, uint64_t *data_start,
                                uint64_t *total_bytes) {
    if (!w) return vkl_err(VKLLM_ERR_INVALID_ARG, "gguf_writer_layout: writer is NULL");
    uint64_t h = 24; /* magic, version, two counts */
    for (size_t i = 0; i < w->n_kv; i++) h += 8 + strlen(w->kv[i].key) + 4 + w->kv[i].val_len;
    for (size_t i = 0; i < w->n_t; i++)
        h += 8 + strlen(w->t[i].name) + 4 + 8 * w->t[i].n_dims + 4 + 8;
    uint64_t ds = h, total = h, off = 0;
    if (w->n_t) {
        if (!next_offset(h, 0, w->alignment, &ds))
            return vkl_err(VKLLM_ERR_INVALID_ARG, "gguf writer: header size overflows");
        for (size_t i = 1; i < w->n_t; i++)
            if (!next_offset(off, w->t[i - 1].size, w->alignment, &off))
                return vkl_err(VKLLM_ERR_INVALID_ARG,
                               "gguf writer: data section overflows 64 bits");
        if (!vkl_add_u64(ds, off, &total) || !vkl_add_u64(total, w->t[w->n_t - 1].size, &total))
            return vkl_err(VKLLM_ERR_INVALID_ARG, "gguf writer: file size overflows 64 bits");
    }
    if (header_bytes) *header_bytes = h;
    if (data_start) *data_start = ds;
    if (total_bytes) *total_bytes = total;
    return VKLLM_OK;
}

uint64_t gguf_writer_tensor_offset(const gguf_writer *w, uint64_t i) {
    if (!w || i >= w->n_t) return UINT64_MAX;
    uint64_t off = 0;
    for (uint64_t j = 1; j <= i; j++)
        if (!next_offset(off, w->t[j - 1].size, w->alignment, &off)) return UINT64_MAX;
    return off;
}

/* ------------------------------------------------------------------ write ---- */

typedef struct gw_sink {
    FILE *fp;     /* file sink, or */
    uint8_t *mem; /* memory sink of exactly cap bytes */
    uint64_t pos, cap;
} gw_sink;

static vkllm_status sink_put(gw_sink *s, const void *p, uint64_t n) {
    if (n == 0) return VKLLM_OK;
    if (s->mem) {
        if (n > s->cap - s->pos)
            return vkl_err(VKLLM_ERR_INVALID_ARG, "gguf writer: layout mismatch (internal)");
        if (p)
            memcpy(s->mem + s->pos, p, (size_t)n);
        else
            memset(s->mem + s->pos, 0, (size_t)n);
    } else if (p) {
        if (fwrite(p, 1, (size_t)n, s->fp) != n)
            return vkl_err(VKLLM_ERR_IO, "gguf writer: write failed at offset %llu", (ull)s->pos);
    } else {
        static const uint8_t zeros[4096];
        for (uint64_t left = n; left;) {
            size_t k = left < sizeof zeros ? (size_t)left : sizeof zeros;
            if (fwrite(zeros, 1, k, s->fp) != k)
                return vkl_err(VKLLM_ERR_IO, "gguf writer: write failed at offset %llu",
                               (ull)(s->pos + n - left));
            left -= k;
        }
    }
    s->pos += n;
    return VKLLM_OK;
}

static vkllm_status sink_tensor(gw_sink *s, const gw_tensor *t) {
    if (!t->fill) return sink_put(s, t->data, t->size); /* NULL data: zeros */
    if (s->mem) {
        if (t->size > s->cap - s->pos)
            return vkl_err(VKLLM_ERR_INVALID_ARG, "gguf writer: layout mismatch (internal)");
        vkllm_status st = t->fill(t->user, t->name, s->mem + s->pos, t->size);
        if (st != VKLLM_OK) {
            vkl_err_context("gguf writer: filling tensor '%s'", t->name);
            return st;
        }
        s->pos += t->size;
        return VKLLM_OK;
    }
    if (t->size > SIZE_MAX)
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "gguf writer: tensor '%s' is too large", t->name);
    void *tmp = malloc((size_t)t->size);
    if (!tmp)
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY,
                       "gguf writer: no memory to fill tensor '%s' (%llu bytes)", t->name,
                       (ull)t->size);
    vkllm_status st = t->fill(t->user, t->name, tmp, t->size);
    if (st != VKLLM_OK)
        vkl_err_context("gguf writer: filling tensor '%s'", t->name);
    else
        st = sink_put(s, tmp, t->size);
    free(tmp);
    return st;
}

static vkllm_status emit(const gguf_writer *w, unsigned flags, gw_sink *s) {
    gw_buf h = {0};
    buf_le(&h, GW_MAGIC, 4);
    buf_le(&h, w->version, 4);
    buf_le(&h, w->n_t, 8);
    buf_le(&h, w->n_kv, 8);
    for (size_t i = 0; i < w->n_kv; i++) {
        buf_str(&h, w->kv[i].key, strlen(w->kv[i].key));
        buf_le(&h, w->kv[i].type, 4);
        buf_put(&h, w->kv[i].val, w->kv[i].val_len);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const gw_tensor *t = &w->t[i];
        if (i) next_offset(off, w->t[i - 1].size, w->alignment, &off); /* checked by layout */
        buf_str(&h, t->name, strlen(t->name));
        buf_le(&h, t->n_dims, 4);
        for (uint32_t d = 0; d < t->n_dims; d++) buf_le(&h, t->ne[d], 8);
        buf_le(&h, t->type, 4);
        buf_le(&h, off, 8);
    }
    if (h.oom) {
        free(h.p);
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "gguf writer: no memory for the header");
    }
    vkllm_status st = sink_put(s, h.p, h.len);
    free(h.p);
    if (st != VKLLM_OK || (flags & GGUF_WRITE_HEADER_ONLY) || w->n_t == 0) return st;

    uint64_t data_start = s->pos;
    next_offset(data_start, 0, w->alignment, &data_start);
    off = 0;
    for (size_t i = 0; i < w->n_t && st == VKLLM_OK; i++) {
        if (i) next_offset(off, w->t[i - 1].size, w->alignment, &off);
        st = sink_put(s, NULL, data_start + off - s->pos); /* zeroed padding */
        if (st == VKLLM_OK) st = sink_tensor(s, &w->t[i]);
    }
    return st;
}

static vkllm_status out_size(const gguf_writer *w, unsigned flags, uint64_t *size) {
    uint64_t header, total;
    vkllm_status st = gguf_writer_layout(w, &header, NULL, &total);
    if (st == VKLLM_OK) *size = (flags & GGUF_WRITE_HEADER_ONLY) ? header : total;
    return st;
}

vkllm_status gguf_writer_write_memory(const gguf_writer *w, unsigned flags, void **out,
                                      size_t *size) {
    if (!w || !out || !size)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "gguf_writer_write_memory: NULL argument");
    *out = NULL;
    *size = 0;
    uint64_t n;
    vkllm_status st = out_size(w, flags, &n);
    if (st != VKLLM_OK) return st;
    if (n > SIZE_MAX)
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "gguf writer: %llu bytes do not fit in memory",
                       (ull)n);
    gw_sink s = {.mem = malloc((size_t)n), .cap = n};
    if (!s.mem)
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "gguf writer: no memory for %llu bytes", (ull)n);
    st = emit(w, flags, &s);
    if (st == VKLLM_OK && s.pos != n)
        st = vkl_err(VKLLM_ERR_INVALID_ARG, "gguf writer: layout mismatch (internal)");
    if (st != VKLLM_OK) {
        free(s.mem);
        return st;
    }
    *out = s.mem;
    *size = (size_t)n;
    return VKLLM_OK;
}

vkllm_status gguf_writer_write_file(const gguf_writer *w, const char *path, unsigned flags) {
    if (!w || !path) return vkl_err(VKLLM_ERR_INVALID_ARG, "gguf_writer_write_file: NULL argument");
    uint64_t n;
    vkllm_status st = out_size(w, flags, &n);
    if (st != VKLLM_OK) return st;
    gw_sink s = {.fp = fopen(path, "wb")};
    if (!s.fp)
        return vkl_err(VKLLM_ERR_IO, "gguf writer: cannot create '%s': %s", path, strerror(errno));
    st = emit(w, flags, &s);
    if (fclose(s.fp) != 0 && st == VKLLM_OK)
        st = vkl_err(VKLLM_ERR_IO, "gguf writer: cannot finish writing '%s' (disk full?)", path);
    if (st != VKLLM_OK) {
        vkl_err_context("%s", path);
        remove(path);
    }
    return st;
}
