/* GGUF writer for tests and the synthetic-model generator: collects metadata and tensor
 * descriptions, then lays them out (tensor data at aligned offsets, zeroed padding) into a
 * file or a malloc'd buffer. Output is little-endian GGUF v3 (or v2) on any host. */
#ifndef VKLLM_GGUF_WRITE_H
#define VKLLM_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>
#include "runtime/format/gguf.h"
#include "vkllm.h"

typedef struct gguf_writer gguf_writer;

/* Produces a tensor's bytes at write time, so large synthetic tensors need not all be held
 * in memory at once. dst has room for exactly `size` bytes. */
typedef vkllm_status (*gguf_fill_fn)(void *user, const char *name, void *dst, uint64_t size);

vkllm_status gguf_writer_create(gguf_writer **out);
void gguf_writer_free(gguf_writer *w);

/* 2 or 3 (the default); both versions share one layout. */
vkllm_status gguf_writer_set_version(gguf_writer *w, uint32_t version);
/* Nonzero power of two; adds or updates the u32 KV general.alignment (default 32, no KV). */
vkllm_status gguf_writer_set_alignment(gguf_writer *w, uint32_t alignment);

/* Metadata, written in the order added. Keys are copied; a key added twice is refused
 * (VKLLM_ERR_INVALID_ARG). "general.alignment" may only be a u32 power of two. */
vkllm_status gguf_writer_add_u8(gguf_writer *w, const char *key, uint8_t v);
vkllm_status gguf_writer_add_i8(gguf_writer *w, const char *key, int8_t v);
vkllm_status gguf_writer_add_u16(gguf_writer *w, const char *key, uint16_t v);
vkllm_status gguf_writer_add_i16(gguf_writer *w, const char *key, int16_t v);
vkllm_status gguf_writer_add_u32(gguf_writer *w, const char *key, uint32_t v);
vkllm_status gguf_writer_add_i32(gguf_writer *w, const char *key, int32_t v);
vkllm_status gguf_writer_add_u64(gguf_writer *w, const char *key, uint64_t v);
vkllm_status gguf_writer_add_i64(gguf_writer *w, const char *key, int64_t v);
vkllm_status gguf_writer_add_f32(gguf_writer *w, const char *key, float v);
vkllm_status gguf_writer_add_f64(gguf_writer *w, const char *key, double v);
vkllm_status gguf_writer_add_bool(gguf_writer *w, const char *key, int v);
vkllm_status gguf_writer_add_str(gguf_writer *w, const char *key, const char *v);
/* A string of len bytes that may contain NULs. */
vkllm_status gguf_writer_add_str_n(gguf_writer *w, const char *key, const char *v, uint64_t len);
/* An array of count numbers of element type `type` (u8..f64 or bool). `values` points to
 * count host values of the matching C type (uint8_t, int8_t, ..., float, double; one
 * uint8_t 0/1 per bool). Strings and nested arrays go through the two functions below. */
vkllm_status gguf_writer_add_arr(gguf_writer *w, const char *key, gguf_vtype type,
                                 const void *values, uint64_t count);
vkllm_status gguf_writer_add_arr_str(gguf_writer *w, const char *key, const char *const *values,
                                     uint64_t count);
/* A value of type vtype whose encoding (everything after the u32 value type) is given
 * verbatim and not checked: for arrays of arrays and for tests that need odd values. */
vkllm_status gguf_writer_add_raw(gguf_writer *w, const char *key, uint32_t vtype, const void *bytes,
                                 uint64_t len);

/* Bytes of a tensor of that type and shape; 0 if the shape or type is invalid. */
uint64_t gguf_writer_tensor_bytes(uint32_t type, uint32_t n_dims, const uint64_t *ne);

/* Tensors, laid out in the order added. The name is copied; `data` is REFERENCED, not
 * copied: it must hold exactly gguf_writer_tensor_bytes(type, n_dims, ne) bytes (`size`)
 * and stay valid until the last write call. data == NULL writes zeros. ggml type ids
 * are those of wtype.h; an unsupported id, n_dims outside 1..4, a zero dimension, ne[0]
 * not a multiple of the block size, a size mismatch or a duplicate name is refused with
 * VKLLM_ERR_INVALID_ARG. */
vkllm_status gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t n_dims,
                                    const uint64_t *ne, uint32_t type, const void *data,
                                    uint64_t size);
/* Same, with the bytes produced by fill(user, name, dst, size) during each write. */
vkllm_status gguf_writer_add_tensor_fill(gguf_writer *w, const char *name, uint32_t n_dims,
                                         const uint64_t *ne, uint32_t type, gguf_fill_fn fill,
                                         void *user);

/* Where things will land with the current contents: the end of the tensor infos (the size
 * of a header-only file), the data section start, and the size of the full file. Any
 * pointer may be NULL. Fails (VKLLM_ERR_INVALID_ARG) when the sizes overflow 64 bits. */
vkllm_status gguf_writer_layout(const gguf_writer *w, uint64_t *header_bytes, uint64_t *data_start,
                                uint64_t *total_bytes);
/* Offset of tensor i (in order added) within the data section; UINT64_MAX if out of range. */
uint64_t gguf_writer_tensor_offset(const gguf_writer *w, uint64_t i);

/* Flags for the write calls. */
#define GGUF_WRITE_HEADER_ONLY 1u /* stop after the tensor infos: no padding, no data */

/* Writes the file (created or truncated); a partial file is removed on failure. */
vkllm_status gguf_writer_write_file(const gguf_writer *w, const char *path, unsigned flags);
/* Writes into a new malloc'd buffer (*out, *size); release it with free(). */
vkllm_status gguf_writer_write_memory(const gguf_writer *w, unsigned flags, void **out,
                                      size_t *size);

#endif
