/* GGUF reader: one bounds-checked pass at open time validates the whole header and builds a
 * small index (per-KV key/type/offset, per-tensor structs, sorted name tables); afterwards
 * every accessor reads the mapped bytes through that index and cannot leave the file. */
#include "runtime/format/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/format/wtype.h"
#include "base/util.h"

#define GGUF_MAGIC 0x46554747u /* "GGUF" read as a little-endian u32 */
#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_MAX_ARRAY_DEPTH 8
#define GGUF_HEADER_BYTES 24u
/* Smallest encodings, used to refuse counts that cannot fit before anything is allocated. */
#define GGUF_MIN_KV_BYTES 13u     /* key length + empty key + value type + 1-byte value */
#define GGUF_MIN_TENSOR_BYTES 32u /* name length + n_dims + one ne + type + offset */
#define GGUF_MIN_ARRAY_BYTES 12u  /* element type + count of a nested array */

typedef struct gguf_kv {
    gguf_str key;
    gguf_vtype type;
    uint64_t value;    /* file offset of the value */
    gguf_array arr;    /* GGUF_ARRAY only */
    uint64_t *str_off; /* string arrays: file offset of each element's length field */
} gguf_kv;

/* Sorted views for duplicate detection and O(log n) lookups by name. */
typedef struct gguf_name_ix {
    const char *ptr;
    uint64_t len;
    uint64_t idx;
} gguf_name_ix;

struct gguf_file {
    const uint8_t *base;
    uint64_t size;
    void *map; /* non-NULL when gguf_open mapped the file */
    size_t map_len;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_start; /* aligned end of the tensor infos */
    int has_data;
    uint64_t n_kv;
    gguf_kv *kv;
    uint64_t n_tensors;
    gguf_tensor *tensors;
    gguf_name_ix *kv_by_name;
    gguf_name_ix *tensor_by_name;
};

typedef unsigned long long ull; /* for printf */

static const uint8_t k_vsize[GGUF_VTYPE_COUNT] = {
    [GGUF_U8] = 1,  [GGUF_I8] = 1,   [GGUF_U16] = 2, [GGUF_I16] = 2, [GGUF_U32] = 4, [GGUF_I32] = 4,
    [GGUF_F32] = 4, [GGUF_BOOL] = 1, [GGUF_U64] = 8, [GGUF_I64] = 8, [GGUF_F64] = 8,
};

static const char *const k_vname[GGUF_VTYPE_COUNT] = {
    [GGUF_U8] = "u8",         [GGUF_I8] = "i8",       [GGUF_U16] = "u16", [GGUF_I16] = "i16",
    [GGUF_U32] = "u32",       [GGUF_I32] = "i32",     [GGUF_F32] = "f32", [GGUF_BOOL] = "bool",
    [GGUF_STRING] = "string", [GGUF_ARRAY] = "array", [GGUF_U64] = "u64", [GGUF_I64] = "i64",
    [GGUF_F64] = "f64",
};

static const char *vtype_name(uint32_t t) { return t < GGUF_VTYPE_COUNT ? k_vname[t] : "?"; }

static uint16_t rd_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd_u64(const uint8_t *p) { return rd_u32(p) | (uint64_t)rd_u32(p + 4) << 32; }

/* ------------------------------------------------------------------ cursor ---- */

typedef struct gguf_cursor {
    const uint8_t *base;
    uint64_t pos, size;
} gguf_cursor;

static uint64_t cur_left(const gguf_cursor *c) { return c->size - c->pos; }

static int cur_u32(gguf_cursor *c, uint32_t *v) {
    if (cur_left(c) < 4) return 0;
    *v = rd_u32(c->base + c->pos);
    c->pos += 4;
    return 1;
}

static int cur_u64(gguf_cursor *c, uint64_t *v) {
    if (cur_left(c) < 8) return 0;
    *v = rd_u64(c->base + c->pos);
    c->pos += 8;
    return 1;
}

static vkllm_status err_trunc(const gguf_cursor *c, const char *what, const char *field) {
    return vkl_err(VKLLM_ERR_BAD_FILE,
                   "gguf: %s: %s at offset %llu runs past the end of the file (%llu bytes); "
                   "the file is truncated or corrupt",
                   what, field, (ull)c->pos, (ull)c->size);
}

/* A name from the file made safe for a message: printable ASCII only, bounded length. */
static void fmt_name(char *buf, size_t cap, gguf_str s) {
    size_t n = 0;
    const size_t max = cap - 4; /* room for "..." and NUL */
    for (uint64_t i = 0; i < s.len && n < max; i++) {
        unsigned char ch = (unsigned char)s.ptr[i];
        buf[n++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    if (s.len > max) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = 0;
}

static vkllm_status read_str(gguf_cursor *c, gguf_str *s, const char *what, const char *field) {
    uint64_t at = c->pos, len;
    if (!cur_u64(c, &len)) return err_trunc(c, what, field);
    if (len > cur_left(c))
        return vkl_err(VKLLM_ERR_BAD_FILE,
                       "gguf: %s: %s length %llu (at offset %llu) exceeds the %llu bytes left "
                       "in the file; the file is truncated or corrupt",
                       what, field, (ull)len, (ull)at, (ull)cur_left(c));
    s->ptr = (const char *)c->base + c->pos;
    s->len = len;
    c->pos += len;
    return VKLLM_OK;
}

static int str_cmp(const char *a, uint64_t al, const char *b, uint64_t bl) {
    uint64_t n = al < bl ? al : bl;
    int r = n ? memcmp(a, b, (size_t)n) : 0;
    if (r) return r;
    return al < bl ? -1 : al > bl;
}

static int name_ix_cmp(const void *pa, const void *pb) {
    const gguf_name_ix *a = pa, *b = pb;
    int r = str_cmp(a->ptr, a->len, b->ptr, b->len);
    if (r) return r;
    return a->idx < b->idx ? -1 : a->idx > b->idx; /* stable order names the first duplicate */
}

static void *alloc_array(uint64_t n, size_t elem) {
    if (n > SIZE_MAX / elem) return NULL;
    return vkl_calloc(n ? (size_t)n : 1, elem);
}

/* ------------------------------------------------------------------ values ---- */

/* Walks one array value; `out` and `str_off` are filled for top-level arrays only. */
static vkllm_status walk_array(gguf_cursor *c, int depth, const char *what, gguf_array *out,
                               uint64_t **str_off) {
    uint32_t et;
    uint64_t n;
    if (depth > GGUF_MAX_ARRAY_DEPTH)
        return vkl_err(VKLLM_ERR_BAD_FILE,
                       "gguf: %s: arrays nested more than %d deep (at offset %llu)", what,
                       GGUF_MAX_ARRAY_DEPTH, (ull)c->pos);
    if (!cur_u32(c, &et)) return err_trunc(c, what, "array element type");
    if (et >= GGUF_VTYPE_COUNT)
        return vkl_err(VKLLM_ERR_BAD_FILE,
                       "gguf: %s: array element type %u is not a GGUF type (0..%d)", what, et,
                       GGUF_VTYPE_COUNT - 1);
    if (!cur_u64(c, &n)) return err_trunc(c, what, "array count");
    uint64_t min = et == GGUF_STRING ? 8 : et == GGUF_ARRAY ? GGUF_MIN_ARRAY_BYTES : k_vsize[et];
    if (n > cur_left(c) / min)
        return vkl_err(VKLLM_ERR_BAD_FILE,
                       "gguf: %s: array of %llu %s elements (at least %llu bytes each) cannot "
                       "fit in the %llu bytes left in the file",
                       what, (ull)n, vtype_name(et), (ull)min, (ull)cur_left(c));
    if (out) {
        out->type = (gguf_vtype)et;
        out->count = n;
        out->data = c->base + c->pos;
    }
    if (et != GGUF_STRING && et != GGUF_ARRAY) {
        c->pos += n * min;
        return VKLLM_OK;
    }
    uint64_t *offs = NULL;
    if (str_off && et == GGUF_STRING) {
        offs = alloc_array(n, sizeof *offs);
        if (!offs)
            return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "gguf: %s: no memory to index %llu strings",
                           what, (ull)n);
        *str_off = offs; /* owned by the kv from here on, freed by gguf_close */
    }
    for (uint64_t i = 0; i < n; i++) {
        vkllm_status st;
        if (et == GGUF_STRING) {
            gguf_str s;
            if (offs) offs[i] = c->pos;
            st = read_str(c, &s, what, "array string");
        } else {
            st = walk_array(c, depth + 1, what, NULL, NULL);
        }
        if (st != VKLLM_OK) return st;
    }
    return VKLLM_OK;
}

static vkllm_status parse_kvs(gguf_file *f, gguf_cursor *c) {
    char what[160], name[96];
    for (uint64_t i = 0; i < f->n_kv; i++) {
        gguf_kv *kv = &f->kv[i];
        uint32_t t;
        snprintf(what, sizeof what, "kv #%llu", (ull)i);
        vkllm_status st = read_str(c, &kv->key, what, "key");
        if (st != VKLLM_OK) return st;
        fmt_name(name, sizeof name, kv->key);
        snprintf(what, sizeof what, "kv #%llu '%s'", (ull)i, name);
        if (!cur_u32(c, &t)) return err_trunc(c, what, "value type");
        if (t >= GGUF_VTYPE_COUNT)
            return vkl_err(VKLLM_ERR_BAD_FILE, "gguf: %s: value type %u is not a GGUF type (0..%d)",
                           what, t, GGUF_VTYPE_COUNT - 1);
        kv->type = (gguf_vtype)t;
        kv->value = c->pos;
        if (t == GGUF_ARRAY) {
            st = walk_array(c, 1, what, &kv->arr, &kv->str_off);
        } else if (t == GGUF_STRING) {
            gguf_str s;
            st = read_str(c, &s, what, "string value");
        } else if (cur_left(c) < k_vsize[t]) {
            st = err_trunc(c, what, "value");
        } else {
            c->pos += k_vsize[t];
        }
        if (st != VKLLM_OK) return st;

        if (gguf_str_eq(kv->key, "general.alignment")) {
            if (t != GGUF_U32)
                return vkl_err(VKLLM_ERR_BAD_FILE, "gguf: %s: has type %s, expected u32", what,
                               vtype_name(t));
            uint32_t a = rd_u32(f->base + kv->value);
            if (a == 0 || (a & (a - 1)))
                return vkl_err(VKLLM_ERR_BAD_FILE,
                               "gguf: %s: alignment %u is not a nonzero power of two", what, a);
            f->alignment = a;
        }
    }
    return VKLLM_OK;
}

/* Sorts names into *out and refuses duplicates; `kind` is "key" or "tensor name". */
static vkllm_status index_names(uint64_t n, const gguf_str *(*get)(const gguf_file *, uint64_t),
                                const gguf_file *f, const char *kind, gguf_name_ix **out) {
    gguf_name_ix *ix = alloc_array(n, sizeof *ix);
    if (!ix) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "gguf: no memory to index %llu names", (ull)n);
    *out = ix;
    for (uint64_t i = 0; i < n; i++) {
        const gguf_str *s = get(f, i);
        ix[i].ptr = s->ptr;
        ix[i].len = s->len;
        ix[i].idx = i;
    }
    if (n > 1) qsort(ix, (size_t)n, sizeof *ix, name_ix_cmp);
    for (uint64_t i = 1; i < n; i++) {
        if (str_cmp(ix[i - 1].ptr, ix[i - 1].len, ix[i].ptr, ix[i].len) == 0) {
            char name[96];
            fmt_name(name, sizeof name, (gguf_str){ix[i].ptr, ix[i].len});
            return vkl_err(VKLLM_ERR_BAD_FILE, "gguf: %s '%s' appears twice (#%llu and #%llu)",
                           kind, name, (ull)ix[i - 1].idx, (ull)ix[i].idx);
        }
    }
    return VKLLM_OK;
}

static const gguf_str *kv_name(const gguf_file *f, uint64_t i) { return &f->kv[i].key; }
static const gguf_str *tensor_name(const gguf_file *f, uint64_t i) { return &f->tensors[i].name; }

static int64_t find_name(const gguf_name_ix *ix, uint64_t n, const char *name) {
    if (!ix || !name) return -1;
    uint64_t len = strlen(name), lo = 0, hi = n;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int r = str_cmp(ix[mid].ptr, ix[mid].len, name, len);
        if (r < 0)
            lo = mid + 1;
        else if (r > 0)
            hi = mid;
        else
            return (int64_t)ix[mid].idx;
    }
    return -1;
}

/* ----------------------------------------------------------------- tensors ---- */

static void fmt_types(char *buf, size_t cap) {
    size_t n = 0;
    buf[0] = 0;
    for (uint32_t t = 0; t < WTYPE_COUNT; t++) {
        const wtype_traits *tr = wtype_get(t);
        if (!tr) continue;
        int w = snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", tr->name);
        if (w < 0 || (size_t)w >= cap - n) break;
        n += (size_t)w;
    }
}

static vkllm_status parse_tensor(gguf_file *f, gguf_cursor *c, uint64_t i) {
    gguf_tensor *t = &f->tensors[i];
    char what[160], name[96];
    snprintf(what, sizeof what, "tensor #%llu", (ull)i);
    vkllm_status st = read_str(c, &t->name, what, "name");
    if (st != VKLLM_OK) return st;
    fmt_name(name, sizeof name, t->name);
    snprintf(what, sizeof what, "tensor '%s'", name);

    if (!cur_u32(c, &t->n_dims)) return err_trunc(c, what, "n_dims");
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return vkl_err(VKLLM_ERR_BAD_FILE, "gguf: %s: n_dims %u is outside 1..%d", what, t->n_dims,
                       GGUF_MAX_DIMS);
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        if (!cur_u64(c, &t->ne[d])) return err_trunc(c, what, "ne");
        if (t->ne[d] == 0)
            return vkl_err(VKLLM_ERR_BAD_FILE,
                           "gguf: %s: ne[%u] is 0; every dimension must be at least 1", what, d);
    }
    if (!cur_u32(c, &t->type)) return err_trunc(c, what, "type");
    if (!cur_u64(c, &t->offset)) return err_trunc(c, what, "offset");

    uint64_t nel = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        if (!vkl_mul_u64(nel, t->ne[d], &nel))
            return vkl_err(VKLLM_ERR_BAD_FILE,
                           "gguf: %s: dimensions [%llu, %llu, %llu, %llu] overflow a 64-bit "
                           "element count",
                           what, (ull)t->ne[0], (ull)t->ne[1], (ull)t->ne[2], (ull)t->ne[3]);
    }
    const wtype_traits *tr = wtype_get(t->type);
    if (!tr) {
        char types[256];
        fmt_types(types, sizeof types);
        return vkl_err(VKLLM_ERR_UNSUPPORTED,
                       "gguf: %s: ggml type id %u is not supported by this build (supported: %s)",
                       what, t->type, types);
    }
    /* wtype_row_bytes does not guard the multiplication, so bound the row first. */
    if (t->ne[0] / tr->block > UINT64_MAX / tr->bytes)
        return vkl_err(VKLLM_ERR_BAD_FILE,
                       "gguf: %s: byte size of a %llu-element %s row overflows 64 bits", what,
                       (ull)t->ne[0], tr->name);
    uint64_t row = wtype_row_bytes(t->type, t->ne[0]);
    if (row == 0)
        return vkl_err(VKLLM_ERR_BAD_FILE,
                       "gguf: %s: ne[0] = %llu is not a multiple of the %s block size %u", what,
                       (ull)t->ne[0], tr->name, tr->block);
    t->size = row;
    for (uint32_t d = 1; d < GGUF_MAX_DIMS; d++) {
        if (!vkl_mul_u64(t->size, t->ne[d], &t->size))
            return vkl_err(VKLLM_ERR_BAD_FILE,
                           "gguf: %s: byte size of [%llu, %llu, %llu, %llu] %s overflows 64 bits",
                           what, (ull)t->ne[0], (ull)t->ne[1], (ull)t->ne[2], (ull)t->ne[3],
                           tr->name);
    }
    if (t->offset % f->alignment)
        return vkl_err(VKLLM_ERR_BAD_FILE,
                       "gguf: %s: offset %llu is not a multiple of the alignment %u", what,
                       (ull)t->offset, f->alignment);
    uint64_t end;
    if (!vkl_add_u64(t->offset, t->size, &end))
        return vkl_err(VKLLM_ERR_BAD_FILE,
                       "gguf: %s: data [offset %llu, %llu bytes) overflows 64 bits", what,
                       (ull)t->offset, (ull)t->size);
    return VKLLM_OK;
}

static int tensor_off_cmp(const void *pa, const void *pb) {
    const gguf_tensor *a = *(const gguf_tensor *const *)pa, *b = *(const gguf_tensor *const *)pb;
    return a->offset < b->offset ? -1 : a->offset > b->offset;
}

/* Offsets and sizes are already overflow-checked; this places the data and refuses overlap. */
static vkllm_status place_tensors(gguf_file *f) {
    char a_name[96], b_name[96];
    for (uint64_t i = 0; i < f->n_tensors && f->has_data; i++) {
        gguf_tensor *t = &f->tensors[i];
        uint64_t start, end;
        if (!vkl_add_u64(f->data_start, t->offset, &start) || !vkl_add_u64(start, t->size, &end) ||
            end > f->size) {
            fmt_name(a_name, sizeof a_name, t->name);
            return vkl_err(VKLLM_ERR_BAD_FILE,
                           "gguf: tensor '%s': data [offset %llu, %llu bytes) ends past the end "
                           "of the file (%llu bytes, data section at %llu); the file is "
                           "truncated or corrupt",
                           a_name, (ull)t->offset, (ull)t->size, (ull)f->size, (ull)f->data_start);
        }
        t->data = f->base + start;
    }
    if (f->n_tensors < 2) return VKLLM_OK;
    const gguf_tensor **by_off = alloc_array(f->n_tensors, sizeof *by_off);
    if (!by_off)
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "gguf: no memory to sort %llu tensors",
                       (ull)f->n_tensors);
    for (uint64_t i = 0; i < f->n_tensors; i++) by_off[i] = &f->tensors[i];
    qsort(by_off, (size_t)f->n_tensors, sizeof *by_off, tensor_off_cmp);
    vkllm_status st = VKLLM_OK;
    for (uint64_t i = 1; i < f->n_tensors; i++) {
        const gguf_tensor *a = by_off[i - 1], *b = by_off[i];
        if (a->offset + a->size > b->offset) {
            fmt_name(a_name, sizeof a_name, a->name);
            fmt_name(b_name, sizeof b_name, b->name);
            st =
                vkl_err(VKLLM_ERR_BAD_FILE,
                        "gguf: tensor '%s' [offset %llu, %llu bytes) overlaps tensor '%s' "
                        "[offset %llu, %llu bytes)",
                        a_name, (ull)a->offset, (ull)a->size, b_name, (ull)b->offset, (ull)b->size);
            break;
        }
    }
    free(by_off);
    return st;
}

/* ------------------------------------------------------------------- open ---- */

static vkllm_status parse_header(gguf_file *f, gguf_cursor *c) {
    uint32_t magic;
    if (!cur_u32(c, &magic)) return err_trunc(c, "header", "magic");
    if (magic != GGUF_MAGIC)
        return vkl_err(VKLLM_ERR_BAD_FILE,
                       "gguf: header: magic %02x %02x %02x %02x is not \"GGUF\"; this is not a "
                       "GGUF file",
                       f->base[0], f->base[1], f->base[2], f->base[3]);
    if (!cur_u32(c, &f->version)) return err_trunc(c, "header", "version");
    uint32_t v = f->version;
    uint32_t swapped = (v >> 24) | ((v >> 8) & 0xff00) | ((v << 8) & 0xff0000) | (v << 24);
    if (v == 1)
        return vkl_err(VKLLM_ERR_UNSUPPORTED,
                       "gguf: header: version 1 (32-bit counts) is not supported; re-convert "
                       "the model to GGUF v3");
    if (v != 2 && v != 3) {
        if (swapped >= 1 && swapped <= 3)
            return vkl_err(VKLLM_ERR_UNSUPPORTED,
                           "gguf: header: version field reads 0x%08x, a big-endian GGUF v%u; "
                           "only little-endian files are supported",
                           v, swapped);
        if (v >= 4 && v <= 255)
            return vkl_err(VKLLM_ERR_UNSUPPORTED,
                           "gguf: header: version %u is newer than this build reads (2 or 3)", v);
        return vkl_err(VKLLM_ERR_BAD_FILE, "gguf: header: version %u is not a GGUF version", v);
    }
    if (!cur_u64(c, &f->n_tensors)) return err_trunc(c, "header", "tensor count");
    if (!cur_u64(c, &f->n_kv)) return err_trunc(c, "header", "kv count");
    uint64_t left = cur_left(c);
    if (f->n_kv > left / GGUF_MIN_KV_BYTES)
        return vkl_err(VKLLM_ERR_BAD_FILE,
                       "gguf: header: kv count %llu cannot fit in the %llu bytes after the "
                       "header (each kv takes at least %u)",
                       (ull)f->n_kv, (ull)left, GGUF_MIN_KV_BYTES);
    if (f->n_tensors > left / GGUF_MIN_TENSOR_BYTES ||
        f->n_kv * GGUF_MIN_KV_BYTES + f->n_tensors * GGUF_MIN_TENSOR_BYTES > left)
        return vkl_err(VKLLM_ERR_BAD_FILE,
                       "gguf: header: tensor count %llu cannot fit in the %llu bytes after the "
                       "header and %llu kvs (each tensor info takes at least %u)",
                       (ull)f->n_tensors, (ull)left, (ull)f->n_kv, GGUF_MIN_TENSOR_BYTES);
    return VKLLM_OK;
}

static vkllm_status parse(gguf_file *f) {
    gguf_cursor c = {f->base, 0, f->size};
    vkllm_status st = parse_header(f, &c);
    if (st != VKLLM_OK) return st;

    f->kv = alloc_array(f->n_kv, sizeof *f->kv);
    if (!f->kv)
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "gguf: no memory for %llu kvs", (ull)f->n_kv);
    st = parse_kvs(f, &c);
    if (st != VKLLM_OK) return st;
    st = index_names(f->n_kv, kv_name, f, "key", &f->kv_by_name);
    if (st != VKLLM_OK) return st;

    if (f->n_tensors > cur_left(&c) / GGUF_MIN_TENSOR_BYTES)
        return vkl_err(VKLLM_ERR_BAD_FILE,
                       "gguf: tensor count %llu cannot fit in the %llu bytes left after the "
                       "metadata (each tensor info takes at least %u)",
                       (ull)f->n_tensors, (ull)cur_left(&c), GGUF_MIN_TENSOR_BYTES);
    f->tensors = alloc_array(f->n_tensors, sizeof *f->tensors);
    if (!f->tensors)
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "gguf: no memory for %llu tensors",
                       (ull)f->n_tensors);
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        st = parse_tensor(f, &c, i);
        if (st != VKLLM_OK) return st;
    }
    st = index_names(f->n_tensors, tensor_name, f, "tensor name", &f->tensor_by_name);
    if (st != VKLLM_OK) return st;

    if (!vkl_add_u64(c.pos, f->alignment - 1, &f->data_start))
        return vkl_err(VKLLM_ERR_BAD_FILE, "gguf: data section start overflows 64 bits");
    f->data_start = f->data_start / f->alignment * f->alignment;
    /* A file that stops at (or in the padding before) the data section is header-only. */
    f->has_data = f->n_tensors == 0 || f->size > f->data_start;
    return place_tensors(f);
}

static vkllm_status open_bytes(const void *data, size_t size, void *map, gguf_file **out) {
    gguf_file *f = vkl_calloc(1, sizeof *f);
    if (!f) {
        if (map) munmap(map, size);
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "gguf: no memory for the file index");
    }
    f->base = data;
    f->size = size;
    f->map = map;
    f->map_len = map ? size : 0;
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    vkllm_status st = parse(f);
    if (st != VKLLM_OK) {
        gguf_close(f);
        return st;
    }
    *out = f;
    return VKLLM_OK;
}

vkllm_status gguf_open_memory(const void *data, size_t size, gguf_file **out) {
    if (!out) return vkl_err(VKLLM_ERR_INVALID_ARG, "gguf_open_memory: out is NULL");
    *out = NULL;
    if (!data && size)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "gguf_open_memory: data is NULL but size is %llu",
                       (ull)size);
    if (!data) data = ""; /* a valid pointer for the empty buffer; parsing refuses it */
    return open_bytes(data, size, NULL, out);
}

vkllm_status gguf_open(const char *path, gguf_file **out) {
    if (!out) return vkl_err(VKLLM_ERR_INVALID_ARG, "gguf_open: out is NULL");
    *out = NULL;
    if (!path) return vkl_err(VKLLM_ERR_INVALID_ARG, "gguf_open: path is NULL");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return vkl_err(VKLLM_ERR_IO, "gguf: cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return vkl_err(VKLLM_ERR_IO, "gguf: cannot stat '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return vkl_err(VKLLM_ERR_IO, "gguf: '%s' is not a regular file", path);
    }
    if (sb.st_size == 0) {
        close(fd);
        return vkl_err(VKLLM_ERR_BAD_FILE, "gguf: '%s' is empty (0 bytes); expected a GGUF file",
                       path);
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return vkl_err(VKLLM_ERR_UNSUPPORTED, "gguf: '%s' (%llu bytes) is too large to map here",
                       path, (ull)sb.st_size);
    }
    size_t len = (size_t)sb.st_size;
    void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd); /* the mapping keeps the file alive */
    if (m == MAP_FAILED)
        return vkl_err(VKLLM_ERR_IO, "gguf: cannot map '%s' (%llu bytes): %s", path, (ull)len,
                       strerror(e));
    vkllm_status st = open_bytes(m, len, m, out);
    if (st != VKLLM_OK) vkl_err_context("%s", path);
    return st;
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    if (f->kv)
        for (uint64_t i = 0; i < f->n_kv; i++) free(f->kv[i].str_off);
    free(f->kv);
    free(f->tensors);
    free(f->kv_by_name);
    free(f->tensor_by_name);
    if (f->map) munmap(f->map, f->map_len);
    free(f);
}

/* -------------------------------------------------------------- accessors ---- */

uint32_t gguf_version(const gguf_file *f) { return f ? f->version : 0; }
uint32_t gguf_alignment(const gguf_file *f) { return f ? f->alignment : 0; }
uint64_t gguf_file_size(const gguf_file *f) { return f ? f->size : 0; }
int gguf_has_data(const gguf_file *f) { return f ? f->has_data : 0; }
uint64_t gguf_data_offset(const gguf_file *f) { return f ? f->data_start : 0; }

uint64_t gguf_kv_count(const gguf_file *f) { return f ? f->n_kv : 0; }

gguf_str gguf_kv_key(const gguf_file *f, uint64_t i) {
    if (!f || i >= f->n_kv) return (gguf_str){"", 0};
    return f->kv[i].key;
}

gguf_vtype gguf_kv_type(const gguf_file *f, uint64_t i) {
    if (!f || i >= f->n_kv) return GGUF_VTYPE_COUNT;
    return f->kv[i].type;
}

int64_t gguf_find_key(const gguf_file *f, const char *key) {
    return f ? find_name(f->kv_by_name, f->n_kv, key) : -1;
}

static vkllm_status lookup(const gguf_file *f, const char *key, const gguf_kv **out) {
    int64_t i = gguf_find_key(f, key);
    if (i < 0)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "gguf: key '%s' not found", key ? key : "(null)");
    *out = &f->kv[i];
    return VKLLM_OK;
}

static vkllm_status wrong_type(const gguf_kv *kv, const char *key, const char *expected) {
    return vkl_err(VKLLM_ERR_BAD_FILE, "gguf: key '%s' has type %s, expected %s", key,
                   vtype_name(kv->type), expected);
}

/* Integer value of any integer vtype: *neg says whether it is negative (then *s holds it). */
static int read_int(const uint8_t *p, gguf_vtype t, uint64_t *u, int64_t *s, int *neg) {
    int64_t v;
    switch (t) {
    case GGUF_U8:
        *u = p[0];
        *neg = 0;
        return 1;
    case GGUF_U16:
        *u = rd_u16(p);
        *neg = 0;
        return 1;
    case GGUF_U32:
        *u = rd_u32(p);
        *neg = 0;
        return 1;
    case GGUF_U64:
        *u = rd_u64(p);
        *neg = 0;
        return 1;
    case GGUF_I8: v = (int8_t)p[0]; break;
    case GGUF_I16: v = (int16_t)rd_u16(p); break;
    case GGUF_I32: v = (int32_t)rd_u32(p); break;
    case GGUF_I64: v = (int64_t)rd_u64(p); break;
    default: return 0;
    }
    *s = v;
    *neg = v < 0;
    *u = v < 0 ? 0 : (uint64_t)v;
    return 1;
}

static vkllm_status get_int(const gguf_file *f, const char *key, int64_t lo, uint64_t hi,
                            const char *dst, int64_t *s_out, uint64_t *u_out) {
    const gguf_kv *kv = NULL;
    vkllm_status st = lookup(f, key, &kv);
    if (st != VKLLM_OK) return st;
    uint64_t u = 0;
    int64_t s = 0;
    int neg;
    if (!read_int(f->base + kv->value, kv->type, &u, &s, &neg))
        return wrong_type(kv, key, "an integer");
    if (neg ? s < lo : u > hi) {
        if (neg)
            return vkl_err(VKLLM_ERR_BAD_FILE, "gguf: key '%s': value %lld does not fit %s", key,
                           (long long)s, dst);
        return vkl_err(VKLLM_ERR_BAD_FILE, "gguf: key '%s': value %llu does not fit %s", key,
                       (ull)u, dst);
    }
    *s_out = neg ? s : (int64_t)(u > INT64_MAX ? 0 : u);
    *u_out = u;
    return VKLLM_OK;
}

vkllm_status gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out) {
    int64_t s = 0;
    uint64_t u = 0;
    vkllm_status st = get_int(f, key, 0, UINT32_MAX, "u32", &s, &u);
    if (st == VKLLM_OK) *out = (uint32_t)u;
    return st;
}

vkllm_status gguf_get_i32(const gguf_file *f, const char *key, int32_t *out) {
    int64_t s = 0;
    uint64_t u = 0;
    vkllm_status st = get_int(f, key, INT32_MIN, INT32_MAX, "i32", &s, &u);
    if (st == VKLLM_OK) *out = (int32_t)s;
    return st;
}

vkllm_status gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out) {
    int64_t s = 0;
    uint64_t u = 0;
    vkllm_status st = get_int(f, key, 0, UINT64_MAX, "u64", &s, &u);
    if (st == VKLLM_OK) *out = u;
    return st;
}

vkllm_status gguf_get_i64(const gguf_file *f, const char *key, int64_t *out) {
    int64_t s = 0;
    uint64_t u = 0;
    vkllm_status st = get_int(f, key, INT64_MIN, INT64_MAX, "i64", &s, &u);
    if (st == VKLLM_OK) *out = s;
    return st;
}

static float rd_f32(const uint8_t *p) {
    uint32_t b = rd_u32(p);
    float v;
    memcpy(&v, &b, 4);
    return v;
}

static double rd_f64(const uint8_t *p) {
    uint64_t b = rd_u64(p);
    double v;
    memcpy(&v, &b, 8);
    return v;
}

vkllm_status gguf_get_f64(const gguf_file *f, const char *key, double *out) {
    const gguf_kv *kv = NULL;
    vkllm_status st = lookup(f, key, &kv);
    if (st != VKLLM_OK) return st;
    if (kv->type == GGUF_F32)
        *out = rd_f32(f->base + kv->value);
    else if (kv->type == GGUF_F64)
        *out = rd_f64(f->base + kv->value);
    else
        return wrong_type(kv, key, "f32 or f64");
    return VKLLM_OK;
}

vkllm_status gguf_get_f32(const gguf_file *f, const char *key, float *out) {
    double v = 0;
    vkllm_status st = gguf_get_f64(f, key, &v);
    if (st == VKLLM_OK) *out = (float)v;
    return st;
}

vkllm_status gguf_get_bool(const gguf_file *f, const char *key, int *out) {
    const gguf_kv *kv = NULL;
    vkllm_status st = lookup(f, key, &kv);
    if (st != VKLLM_OK) return st;
    if (kv->type != GGUF_BOOL) return wrong_type(kv, key, "bool");
    *out = f->base[kv->value] != 0;
    return VKLLM_OK;
}

vkllm_status gguf_get_str(const gguf_file *f, const char *key, gguf_str *out) {
    const gguf_kv *kv = NULL;
    vkllm_status st = lookup(f, key, &kv);
    if (st != VKLLM_OK) return st;
    if (kv->type != GGUF_STRING) return wrong_type(kv, key, "string");
    out->len = rd_u64(f->base + kv->value);
    out->ptr = (const char *)f->base + kv->value + 8;
    return VKLLM_OK;
}

vkllm_status gguf_get_arr(const gguf_file *f, const char *key, gguf_array *out) {
    const gguf_kv *kv = NULL;
    vkllm_status st = lookup(f, key, &kv);
    if (st != VKLLM_OK) return st;
    if (kv->type != GGUF_ARRAY) return wrong_type(kv, key, "array");
    *out = kv->arr;
    return VKLLM_OK;
}

gguf_str gguf_arr_str(const gguf_file *f, const gguf_array *a, uint64_t i) {
    gguf_str none = {"", 0};
    if (!f || !a || a->type != GGUF_STRING || i >= a->count) return none;
    /* Top-level values are in file order, so the owning kv is the last one whose value
     * starts before the array's first element. */
    uintptr_t p = (uintptr_t)a->data, base = (uintptr_t)f->base;
    if (p < base || p - base > f->size) return none;
    uint64_t lo = 0, hi = f->n_kv;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (f->kv[mid].value < p - base)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0) return none;
    const gguf_kv *kv = &f->kv[lo - 1];
    if (kv->type != GGUF_ARRAY || kv->arr.data != a->data || !kv->str_off || i >= kv->arr.count)
        return none;
    uint64_t off = kv->str_off[i];
    return (gguf_str){(const char *)f->base + off + 8, rd_u64(f->base + off)};
}

double gguf_arr_num(const gguf_array *a, uint64_t i) {
    if (!a || i >= a->count || a->type >= GGUF_VTYPE_COUNT) return 0;
    const uint8_t *p = (const uint8_t *)a->data + i * k_vsize[a->type];
    uint64_t u = 0;
    int64_t s = 0;
    int neg;
    switch (a->type) {
    case GGUF_F32: return rd_f32(p);
    case GGUF_F64: return rd_f64(p);
    case GGUF_BOOL: return p[0] != 0;
    case GGUF_STRING:
    case GGUF_ARRAY: return 0;
    default:
        if (!read_int(p, a->type, &u, &s, &neg)) return 0;
        return neg ? (double)s : (double)u;
    }
}

const char *gguf_str_c(gguf_str s, char *buf, size_t cap) {
    if (!buf || cap == 0) return buf;
    size_t n = s.ptr ? (s.len < cap - 1 ? (size_t)s.len : cap - 1) : 0;
    if (n) memcpy(buf, s.ptr, n);
    buf[n] = 0;
    return buf;
}

int gguf_str_eq(gguf_str s, const char *c) {
    if (!c) return 0;
    size_t n = strlen(c);
    return s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
}

uint64_t gguf_tensor_count(const gguf_file *f) { return f ? f->n_tensors : 0; }

const gguf_tensor *gguf_tensor_at(const gguf_file *f, uint64_t i) {
    if (!f || i >= f->n_tensors) return NULL;
    return &f->tensors[i];
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    if (!f) return NULL;
    int64_t i = find_name(f->tensor_by_name, f->n_tensors, name);
    return i < 0 ? NULL : &f->tensors[i];
}
