/* GGUF v2/v3 reader. The file is memory-mapped; nothing is copied. Every count, length,
 * dimension, offset and size is validated against the file size and for overflow at open
 * time, so later accessors cannot read out of bounds. */
#ifndef VKLLM_GGUF_H
#define VKLLM_GGUF_H

#include <stddef.h>
#include <stdint.h>
#include "vkllm.h"

typedef enum gguf_vtype {
    GGUF_U8 = 0, GGUF_I8 = 1, GGUF_U16 = 2, GGUF_I16 = 3, GGUF_U32 = 4, GGUF_I32 = 5,
    GGUF_F32 = 6, GGUF_BOOL = 7, GGUF_STRING = 8, GGUF_ARRAY = 9, GGUF_U64 = 10,
    GGUF_I64 = 11, GGUF_F64 = 12, GGUF_VTYPE_COUNT
} gguf_vtype;

/* A string inside the mapping: not NUL-terminated. */
typedef struct gguf_str {
    const char *ptr;
    uint64_t len;
} gguf_str;

typedef struct gguf_array {
    gguf_vtype type;   /* element type */
    uint64_t count;
    const void *data;  /* first element in the mapping (unaligned: read with memcpy) */
} gguf_array;

#define GGUF_MAX_DIMS 4

typedef struct gguf_tensor {
    gguf_str name;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] innermost; unused dims are 1 */
    uint32_t type;              /* ggml type id, see wtype.h */
    uint64_t offset;            /* relative to the data section */
    uint64_t size;              /* bytes */
    const void *data;           /* NULL when the file has no data section (header only) */
} gguf_tensor;

typedef struct gguf_file gguf_file;

/* Maps and validates path. On failure returns VKLLM_ERR_IO or VKLLM_ERR_BAD_FILE with a
 * message naming the field that is wrong. */
vkllm_status gguf_open(const char *path, gguf_file **out);
/* Same over a caller-owned buffer that must outlive the gguf_file (tests, fuzzing). */
vkllm_status gguf_open_memory(const void *data, size_t size, gguf_file **out);
void gguf_close(gguf_file *f);

uint32_t gguf_version(const gguf_file *f);
uint32_t gguf_alignment(const gguf_file *f);
uint64_t gguf_file_size(const gguf_file *f);
/* 1 when tensor data is present for every tensor (a loadable file; also a file with no
 * tensors); 0 for header-only, a file that ends at or before the data section start. */
int gguf_has_data(const gguf_file *f);
/* File offset where the data section starts (the aligned end of the tensor infos); tensor
 * offsets are relative to it. */
uint64_t gguf_data_offset(const gguf_file *f);

/* Metadata. Lookups return -1 / NULL when the key is absent. */
uint64_t gguf_kv_count(const gguf_file *f);
gguf_str gguf_kv_key(const gguf_file *f, uint64_t i);
gguf_vtype gguf_kv_type(const gguf_file *f, uint64_t i);
int64_t gguf_find_key(const gguf_file *f, const char *key);

/* Typed getters. VKLLM_ERR_BAD_FILE (message names the key) if present with another type;
 * VKLLM_ERR_INVALID_ARG if absent (callers with defaults check gguf_find_key first).
 * Integer getters accept any integer vtype whose value fits the destination. */
vkllm_status gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out);
vkllm_status gguf_get_i32(const gguf_file *f, const char *key, int32_t *out);
vkllm_status gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out);
vkllm_status gguf_get_f32(const gguf_file *f, const char *key, float *out); /* f32 or f64 */
vkllm_status gguf_get_i64(const gguf_file *f, const char *key, int64_t *out);
vkllm_status gguf_get_f64(const gguf_file *f, const char *key, double *out); /* f32 or f64 */
vkllm_status gguf_get_bool(const gguf_file *f, const char *key, int *out);
vkllm_status gguf_get_str(const gguf_file *f, const char *key, gguf_str *out);
vkllm_status gguf_get_arr(const gguf_file *f, const char *key, gguf_array *out);
/* Element i of a string array from gguf_get_arr on the same file (validated at open, so this
 * cannot fail for i < count; anything else gives an empty string). */
gguf_str gguf_arr_str(const gguf_file *f, const gguf_array *a, uint64_t i);
/* Element i of a numeric array converted; 0 for non-numeric types. */
double gguf_arr_num(const gguf_array *a, uint64_t i);
/* Copies s into buf as a C string (truncated to cap-1). Returns buf. */
const char *gguf_str_c(gguf_str s, char *buf, size_t cap);
int gguf_str_eq(gguf_str s, const char *c);

/* Tensors. */
uint64_t gguf_tensor_count(const gguf_file *f);
const gguf_tensor *gguf_tensor_at(const gguf_file *f, uint64_t i);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

#endif
