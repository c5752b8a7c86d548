/* Per-device kernel tuning: the one table of variants of the weight-reading kernels (the tuner
 * and bench/bench_matmul.c time these, tests/test_tune.c checks each against the CPU), the
 * profile file that records the fastest variant per op and weight type on one device, and the
 * lookup that makes kern_matvec_default / kern_matmul_default follow it. */
#ifndef VKLLM_TUNE_H
#define VKLLM_TUNE_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/kern/kern_matmul.h"
#include "runtime/format/wtype.h"
#include "vkllm.h"

/* Profiles carry this; a file with another version is stale and ignored. Bump it when the
 * meaning of a field or the variant table changes in a way old choices would misread. */
#define TUNE_FORMAT_VERSION 1
/* Profile files larger than this are not read (a real one is a few KiB). */
#define TUNE_MAX_FILE_BYTES (1u << 20)

/* ----------------------------------------------------------- the variant table ---- */

/* decode (one token: kern_matvec) and prefill (many tokens: kern_matmul) */
typedef enum tune_op { TUNE_MATVEC = 0, TUNE_MATMUL = 1, TUNE_OP_COUNT } tune_op;

extern const kern_matvec_cfg tune_matvec_variants[];
extern const uint32_t tune_matvec_count;
extern const kern_matmul_cfg tune_matmul_variants[];
extern const uint32_t tune_matmul_count;

/* Short labels: "wg64 rows2", "by-row wg8 rl16", "64x64x32 4x4", "by-row 128 rl16 nt16". */
const char *tune_matvec_label(const kern_matvec_cfg *c, char *buf, size_t cap);
const char *tune_matmul_label(const kern_matmul_cfg *c, char *buf, size_t cap);
int tune_matvec_equal(const kern_matvec_cfg *a, const kern_matvec_cfg *b);
int tune_matmul_equal(const kern_matmul_cfg *a, const kern_matmul_cfg *b);

/* 1 for the weight types the GPU kernels decode (f32, f16, bf16, q4_0 ... q6_K). */
int tune_type_known(uint32_t type);
/* 1 when a device with these limits can run the variant for this weight type: workgroup
 * sizes and shared memory within its limits, K steps a multiple of the type's decode unit
 * (and, for the integer dot product variants, kern_int_dot_supported). The variants of the table that
 * pass are the ones the tuner tries and the ones a profile may name. */
int tune_matvec_usable(const vkllm_device_info *info, uint32_t type, const kern_matvec_cfg *c);
int tune_matmul_usable(const vkllm_device_info *info, uint32_t type, const kern_matmul_cfg *c);

/* -------------------------------------------------------------------- profiles ---- */

/* The choices of one device: bit t of mv_types / mm_types set = mv[t] / mm[t] is the variant
 * for weight type t (types without a bit keep the built-in default), and mv_alt[t] / mm_alt[t]
 * the fastest without integer dot products, for callers that lend no scratch memory (the
 * same variant when the choice does not use them). */
typedef struct tune_profile {
    uint32_t mv_types, mm_types;
    kern_matvec_cfg mv[WTYPE_COUNT], mv_alt[WTYPE_COUNT];
    kern_matmul_cfg mm[WTYPE_COUNT], mm_alt[WTYPE_COUNT];
} tune_profile;

/* dir/tune-<vendor id>-<device id>-<uuid>.json; 0 when it does not fit cap. */
int tune_profile_path(const char *dir, const vkllm_device_info *info, char *buf, size_t cap);
/* Parses a profile for the device `info`. VKLLM_ERR_UNSUPPORTED: a valid file made for another
 * device, driver version or format version (stale); VKLLM_ERR_BAD_FILE: anything malformed
 * (not JSON, missing or mistyped fields, an unknown weight type, a variant that is not in the
 * table or that the device cannot run). The message says which. */
vkllm_status tune_profile_parse(const char *text, size_t len, const vkllm_device_info *info, tune_profile *out);
/* tune_profile_parse of a file (VKLLM_ERR_IO when it cannot be read). */
vkllm_status tune_profile_load(const char *path, const vkllm_device_info *info, tune_profile *out);
/* The profile as JSON text (malloc'd; NULL when out of memory). `results` (may be NULL) is a
 * cJSON array of measurements stored alongside for people to read; the loader ignores it. */
struct cJSON;
char *tune_profile_json(const tune_profile *p, const vkllm_device_info *info, const struct cJSON *results);
/* Writes the text to path through a temporary file and a rename, so a reader never sees half
 * a profile. */
vkllm_status tune_profile_write_text(const char *path, const char *text);

/* ---------------------------------------------------------------- the lookup ---- */

/* The directory profiles are read from and written to: $VKLLM_TUNE_DIR, else the cache
 * folder (vk_cache_dir); NULL when there is none. Written into buf. */
const char *tune_dir(char *buf, size_t cap);

/* 1 and *out = the profile's choice for this type when the device's profile has one. The first
 * lookup for a device (identified by UUID, vendor, device and driver version) reads its file;
 * a stale or corrupt file is logged as a warning once and then ignored. VKLLM_TUNE=0 in the
 * environment disables profiles. An integer dot product choice is returned only where k
 * lends scratch memory (k->scratch); elsewhere the profile's best variant without. Thread-safe. */
int tune_lookup_matvec(const kern_ctx *k, uint32_t type, kern_matvec_cfg *out);
int tune_lookup_matmul(const kern_ctx *k, uint32_t type, kern_matmul_cfg *out);
/* Forgets every profile read, so the next lookup reads the files again (after a tuning run
 * wrote one; tests). Not while another thread records kernels. */
void tune_forget(void);

/* kern_matvec_default / kern_matmul_default as they are without a profile. */
kern_matvec_cfg tune_builtin_matvec(const kern_ctx *k, uint32_t type);
kern_matmul_cfg tune_builtin_matmul(const kern_ctx *k, uint32_t type);

#endif
