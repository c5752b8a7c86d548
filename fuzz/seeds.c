/* Writes the fuzz targets' seed corpora: vkllm-fuzz-seeds OUT [DATA]. OUT/<target>/ gets
 * small valid GGUFs from the synthetic generator (several weight types, with and without
 * weights), hand-made malformed GGUFs (the kinds tests/test_gguf.c refuses), the header of
 * stories260K, tokenizer strings from DATA's *.inp and encode vectors, a SPIR-V cache entry
 * written by the real compiler, pipeline-cache files, CLI option lists and kernel tuning
 * profiles. DATA defaults to
 * $VKLLM_TEST_DATA, else ../shared/models next to the sources; what is absent is skipped.
 * Nothing here is committed: the corpora are made in the build folder. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "runtime/format/gguf.h"
#include "testkit/synth.h"
#include "runtime/kern/tune.h"
#include "runtime/format/wtype.h"
#include "base/util.h"
#include "vk/vk.h"
#include "vkllm.h"
#include "fuzz/tune_device.h"

static const char *g_out;
static int g_written;

static int make_dir(const char *path) {
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "vkllm-fuzz-seeds: cannot create %s: %s\n", path, strerror(errno));
        return 0;
    }
    return 1;
}

static void put(const char *target, const char *name, const void *data, size_t size) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s/%s", g_out, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        fprintf(stderr, "vkllm-fuzz-seeds: cannot write %s\n", path);
        exit(1);
    }
    g_written++;
}

static char *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap + 1);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *b = realloc(buf, 2 * cap + 1);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) buf[n] = 0;
    *size = n;
    return buf;
}

/* ------------------------------------------------------------- byte builder ---- */

typedef struct bb {
    uint8_t *p;
    size_t len, cap;
} bb;

static void bb_put(bb *b, const void *src, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) exit(1);
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
static void bb_data(bb *b, uint32_t align, size_t n) {
    while (b->len % align) bb_le(b, 0, 1);
    for (size_t i = 0; i < n; i++) bb_le(b, (uint8_t)(i * 7 + 1), 1);
}
static void bb_emit(bb *b, const char *target, const char *name) {
    put(target, name, b->p, b->len);
    free(b->p);
    *b = (bb){0};
}

/* The small file most corruptions start from (as in tests/test_gguf.c): two KVs, tensor a
 * f32 [3] at 0 and b f16 [5, 2] at 32. */
static const uint64_t k_ne_a[1] = {3}, k_ne_b[2] = {5, 2};
static void bb_small_kvs(bb *b, uint64_t n_tensors) {
    bb_header(b, 3, n_tensors, 2);
    bb_kv_str(b, "general.architecture", "llama");
    bb_kv_u32(b, "x.n", 7);
}
static void bb_small(bb *b) {
    bb_small_kvs(b, 2);
    bb_tensor(b, "a", 1, k_ne_a, WTYPE_F32, 0);
    bb_tensor(b, "b", 2, k_ne_b, WTYPE_F16, 32);
    bb_data(b, 32, 12);
    bb_data(b, 32, 20);
}

/* ------------------------------------------------------------------- GGUF ---- */

static void gguf_synth(const char *name, const synth_opts *o) {
    void *mem = NULL;
    size_t size = 0;
    if (synth_write_memory(o, &mem, &size) != VKLLM_OK) {
        fprintf(stderr, "vkllm-fuzz-seeds: %s: %s\n", name, vkllm_last_error());
        exit(1);
    }
    put("fuzz_gguf", name, mem, size);
    free(mem);
}

static void synth_tiny(synth_opts *o, uint32_t dim, const char *type, int header_only) {
    synth_default_opts(o);
    o->dim = dim, o->n_layer = 1, o->n_ff = dim, o->n_head = 2, o->n_head_kv = 0;
    o->n_vocab = 260, o->n_ctx = 64, o->type = type, o->header_only = header_only;
}

static void seeds_gguf(const char *data_dir) {
    static const char *const with_data[] = {"q4_0", "q8_0", "q4_1", "q5_0", "q5_1"};
    static const char *const header_only[] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_K",
                                              "q5_K", "q6_K", "q4_K_M"};
    char name[128];
    synth_opts o;
    for (size_t i = 0; i < sizeof with_data / sizeof *with_data; i++) {
        synth_tiny(&o, 32, with_data[i], 0);
        snprintf(name, sizeof name, "synth-%s.gguf", with_data[i]);
        gguf_synth(name, &o);
    }
    for (size_t i = 0; i < sizeof header_only / sizeof *header_only; i++) {
        /* 256 wide so the K-quants keep their type instead of the fallback */
        synth_tiny(&o, strchr(header_only[i], 'K') ? 256 : 32, header_only[i], 1);
        snprintf(name, sizeof name, "synth-%s-header.gguf", header_only[i]);
        gguf_synth(name, &o);
    }
    synth_tiny(&o, 32, "q4_0", 0);
    o.tied = 1;
    gguf_synth("synth-tied.gguf", &o);
    synth_tiny(&o, 64, "q8_0", 1);
    o.n_head = 4, o.n_head_kv = 2, o.n_layer = 2, o.n_rot = 8, o.rope_base = 500000.0f;
    gguf_synth("synth-gqa-header.gguf", &o);
    synth_tiny(&o, 32, "f16", 1);
    o.rope_scaling_type = "linear", o.rope_scaling_factor = 4.0f, o.omit_vocab_size = 1;
    gguf_synth("synth-rope-linear-header.gguf", &o);
    synth_tiny(&o, 32, "f16", 1);
    o.rope_scaling_type = "yarn", o.rope_scaling_factor = 2.0f;
    gguf_synth("synth-rope-yarn-header.gguf", &o);
    synth_tiny(&o, 32, "f16", 1);
    o.arch = "mistral";
    gguf_synth("synth-arch-header.gguf", &o);

    /* Cuts of a complete file: inside the infos, at the data start, one byte short. */
    void *mem = NULL;
    size_t size = 0;
    synth_tiny(&o, 32, "q4_0", 0);
    if (synth_write_memory(&o, &mem, &size) == VKLLM_OK) {
        gguf_file *f = NULL;
        if (gguf_open_memory(mem, size, &f) == VKLLM_OK) {
            uint64_t start = gguf_data_offset(f);
            put("fuzz_gguf", "cut-infos.gguf", mem, (size_t)start - 40);
            put("fuzz_gguf", "cut-data-start.gguf", mem, (size_t)start);
            put("fuzz_gguf", "cut-short.gguf", mem, size - 1);
            gguf_close(f);
        }
        free(mem);
    }

    /* A real converter's header: stories260K up to its data section. */
    char path[2048];
    snprintf(path, sizeof path, "%s/stories260K/stories260K.gguf", data_dir);
    gguf_file *f = NULL;
    if (gguf_open(path, &f) == VKLLM_OK) {
        size_t n = 0;
        char *bytes = read_all(path, &n);
        if (bytes && gguf_data_offset(f) <= n)
            put("fuzz_gguf", "stories260K-header.gguf", bytes, (size_t)gguf_data_offset(f));
        free(bytes);
        gguf_close(f);
    } else {
        fprintf(stderr, "vkllm-fuzz-seeds: no %s; its header is not among the seeds\n", path);
    }

    /* Hand-made, valid and not. */
    bb b = {0};
    bb_small(&b);
    bb_emit(&b, "fuzz_gguf", "small.gguf");
    bb_small(&b);
    b.p[4] = 2;
    bb_emit(&b, "fuzz_gguf", "small-v2.gguf");
    bb_small(&b);
    b.p[3] = 'X';
    bb_emit(&b, "fuzz_gguf", "bad-magic.gguf");
    bb_small(&b);
    b.p[7] = 3;
    bb_emit(&b, "fuzz_gguf", "big-endian.gguf");
    bb_header(&b, 3, 0, 0);
    bb_emit(&b, "fuzz_gguf", "empty.gguf");
    bb_header(&b, 3, 1ull << 62, 0);
    bb_put(&b, "0123456789abcdef0123456789abcdef", 32);
    bb_emit(&b, "fuzz_gguf", "huge-tensor-count.gguf");
    bb_header(&b, 3, 0, UINT64_MAX);
    bb_emit(&b, "fuzz_gguf", "huge-kv-count.gguf");
    bb_header(&b, 3, 0, 1);
    bb_u64(&b, 1ull << 63);
    bb_put(&b, "key", 3);
    bb_u32(&b, GGUF_U8);
    bb_le(&b, 0, 1);
    bb_emit(&b, "fuzz_gguf", "huge-key-length.gguf");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "s");
    bb_u32(&b, GGUF_STRING);
    bb_u64(&b, UINT64_MAX);
    bb_put(&b, "abcdef", 6);
    bb_emit(&b, "fuzz_gguf", "huge-string-length.gguf");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "arr");
    bb_u32(&b, GGUF_ARRAY);
    bb_u32(&b, GGUF_STRING);
    bb_u64(&b, 3);
    bb_str(&b, "x");
    bb_str(&b, "");
    bb_str(&b, "\xe2\x96\x81y");
    bb_emit(&b, "fuzz_gguf", "string-array.gguf");
    for (int depth = 8; depth <= 9; depth++) {
        bb_header(&b, 3, 0, 1);
        bb_str(&b, "deep");
        bb_u32(&b, GGUF_ARRAY);
        for (int d = 1; d < depth; d++) {
            bb_u32(&b, GGUF_ARRAY);
            bb_u64(&b, 1);
        }
        bb_u32(&b, GGUF_U8);
        bb_u64(&b, 1);
        bb_le(&b, 42, 1);
        snprintf(name, sizeof name, "nested-%d.gguf", depth);
        bb_emit(&b, "fuzz_gguf", name);
    }
    bb_header(&b, 3, 0, 2);
    bb_kv_u32(&b, "x.n", 1);
    bb_kv_u32(&b, "x.n", 2);
    bb_emit(&b, "fuzz_gguf", "duplicate-key.gguf");
    bb_header(&b, 3, 1, 1);
    bb_kv_u32(&b, "general.alignment", 64);
    bb_tensor(&b, "a", 1, k_ne_a, WTYPE_F32, 0);
    bb_data(&b, 64, 12);
    bb_emit(&b, "fuzz_gguf", "alignment-64.gguf");
    bb_header(&b, 3, 1, 1);
    bb_kv_u32(&b, "general.alignment", 48);
    bb_tensor(&b, "a", 1, k_ne_a, WTYPE_F32, 0);
    bb_data(&b, 64, 12);
    bb_emit(&b, "fuzz_gguf", "alignment-48.gguf");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "general.alignment");
    bb_u32(&b, GGUF_U64);
    bb_u64(&b, 64);
    bb_emit(&b, "fuzz_gguf", "alignment-u64.gguf");

    struct {
        const char *name;
        uint32_t n_dims;
        uint64_t ne[5];
        uint32_t type;
        uint64_t offset;
    } cases[] = {
        {"ndims-0", 0, {5}, WTYPE_F16, 32},
        {"ndims-5", 5, {5, 1, 1, 1, 2}, WTYPE_F16, 32},
        {"ne-0", 2, {5, 0}, WTYPE_F16, 32},
        {"ne-product", 3, {1ull << 32, 1ull << 32, 2}, WTYPE_F32, 32},
        {"row-bytes", 1, {1ull << 62}, WTYPE_F32, 32},
        {"q4_0-block", 1, {33}, WTYPE_Q4_0, 32},
        {"q4_K-block", 2, {128, 2}, WTYPE_Q4_K, 32},
        {"unaligned", 2, {5, 2}, WTYPE_F16, 16},
        {"past-eof", 2, {5, 2}, WTYPE_F16, 1 << 20},
        {"offset-wraps", 2, {5, 2}, WTYPE_F16, UINT64_MAX - 31},
        {"overlap", 2, {5, 2}, WTYPE_F16, 0},
        {"unknown-type", 2, {5, 2}, 99, 32},
        {"q8_0", 1, {32}, WTYPE_Q8_0, 32},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        bb_small_kvs(&b, 2);
        bb_tensor(&b, "a", 1, k_ne_a, WTYPE_F32, 0);
        bb_tensor(&b, "b", cases[i].n_dims, cases[i].ne, cases[i].type, cases[i].offset);
        bb_data(&b, 32, 32 + 34);
        snprintf(name, sizeof name, "tensor-%s.gguf", cases[i].name);
        bb_emit(&b, "fuzz_gguf", name);
    }
}

/* -------------------------------------------------------------- tokenizer ---- */

static void seeds_tokenizer(const char *data_dir) {
    static const char *const extra[] = {"", " ", "  Hello", "<s>", "</s>hi<unk>",
                                        "\xe2\x96\x81\xe2\x96\x81x", "\xff\xfe\x80",
                                        "\xf0\x9f\xa6\x99 llama", "a\0b", "\n\n\t"};
    static const size_t extra_len[] = {0, 1, 7, 3, 11, 7, 3, 10, 3, 3};
    char name[64], path[2048];
    int n = 0;
    for (size_t i = 0; i < sizeof extra / sizeof *extra; i++) {
        snprintf(name, sizeof name, "extra-%02zu.txt", i);
        put("fuzz_tokenizer", name, extra[i], extra_len[i]);
    }
    /* llama.cpp's test-tokenizer-0 inputs: each followed by "\n__ggml_vocab_test__\n". */
    snprintf(path, sizeof path, "%s/vocab-llama-spm/ggml-vocab-llama-spm.gguf.inp", data_dir);
    size_t size = 0;
    char *raw = read_all(path, &size);
    if (raw) {
        static const char sep[] = "\n__ggml_vocab_test__\n";
        size_t pos = 0;
        while (pos < size) {
            char *end = strstr(raw + pos, sep);
            size_t len = end ? (size_t)(end - (raw + pos)) : size - pos;
            snprintf(name, sizeof name, "llama-spm-%02d.txt", n++);
            put("fuzz_tokenizer", name, raw + pos, len);
            if (!end) break;
            pos += len + sizeof sep - 1;
        }
        free(raw);
    } else {
        fprintf(stderr, "vkllm-fuzz-seeds: no %s\n", path);
    }
    snprintf(path, sizeof path, "%s/stories260K/tok512_encode_vectors.derived.json", data_dir);
    raw = read_all(path, &size);
    cJSON *j = raw ? cJSON_Parse(raw) : NULL;
    const cJSON *c;
    n = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(j, "cases")) {
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(c, "input");
        if (!cJSON_IsString(in)) continue;
        snprintf(name, sizeof name, "stories-%02d.txt", n++);
        put("fuzz_tokenizer", name, in->valuestring, strlen(in->valuestring));
    }
    if (!j) fprintf(stderr, "vkllm-fuzz-seeds: no usable %s\n", path);
    cJSON_Delete(j);
    free(raw);
}

/* ------------------------------------------------------------------ caches ---- */

static void spirv_entry(bb *b, uint64_t key, const uint32_t *words, uint64_t n) {
    bb_u32(b, 0x56535056u); /* "VPSV" */
    bb_u32(b, 1);
    bb_u64(b, key);
    bb_u64(b, n);
    bb_u64(b, vkl_hash64(words, n * 4, VKL_HASH_SEED));
    double ms = 12.5;
    bb_put(b, &ms, sizeof ms);
    bb_put(b, words, n * 4);
}

static void seeds_caches(void) {
    /* A real entry: the compiler writes it into the corpus folder as the cache would. */
    char dir[2048];
    snprintf(dir, sizeof dir, "%s/fuzz_spirv_cache", g_out);
    setenv("VKLLM_CACHE_DIR", dir, 1);
    vk_spirv spv;
    if (vk_compile_shader("swiglu.comp", NULL, &spv) == VKLLM_OK) {
        free(spv.words);
        g_written++;
    } else {
        fprintf(stderr, "vkllm-fuzz-seeds: compiling swiglu.comp: %s\n", vkllm_last_error());
    }
    static const uint32_t tiny[5] = {0x07230203u, 0x00010500u, 0, 8, 0};
    bb b = {0};
    spirv_entry(&b, 0x1234, tiny, 5);
    bb_emit(&b, "fuzz_spirv_cache", "tiny.bin");
    spirv_entry(&b, 0x1234, tiny, 5);
    b.len -= 3;
    bb_emit(&b, "fuzz_spirv_cache", "tiny-truncated.bin");
    spirv_entry(&b, 0x1234, tiny, 5);
    bb_u32(&b, 0);
    bb_emit(&b, "fuzz_spirv_cache", "tiny-trailing.bin");
    static const uint32_t not_spirv[2] = {0xdeadbeefu, 1};
    spirv_entry(&b, 7, not_spirv, 2);
    bb_emit(&b, "fuzz_spirv_cache", "not-spirv.bin");

    /* Pipeline caches: header (magic, vendor, device, driver, uuid, size, checksum) + blob. */
    uint8_t blob[96];
    for (size_t i = 0; i < sizeof blob; i++) blob[i] = (uint8_t)(i * 31 + 5);
    for (int variant = 0; variant < 3; variant++) {
        bb_u32(&b, 0x4850504bu); /* "KPPH" */
        bb_u32(&b, 0x10005);
        bb_u32(&b, 0);
        bb_u32(&b, 0x1000000u + (uint32_t)variant);
        for (unsigned i = 0; i < VK_UUID_SIZE; i++) bb_le(&b, 0xa0u + i, 1);
        size_t n = variant == 2 ? 1 : sizeof blob;
        bb_u64(&b, n);
        bb_u64(&b, vkl_hash64(blob, n, VKL_HASH_SEED));
        bb_put(&b, blob, n);
        if (variant == 1) b.len -= 10;
        snprintf(dir, sizeof dir, "pipelines-%d.bin", variant);
        bb_emit(&b, "fuzz_pipeline_cache", dir);
    }
}

/* ---------------------------------------------------------- tuning profiles ---- */

/* Profiles for fuzz/tune_device.h's device as the tuner writes them: every variant of the
 * table for some type, a few types at once, none; then damaged ones (stale, cut, mistyped). */
static void seeds_tune(void) {
    vkllm_device_info info;
    fuzz_tune_device(&info);
    static const uint32_t types[] = {WTYPE_F32, WTYPE_F16, WTYPE_BF16, WTYPE_Q8_0, WTYPE_Q4_0, WTYPE_Q4_1,
                                     WTYPE_Q5_0, WTYPE_Q5_1, WTYPE_Q4_K, WTYPE_Q5_K, WTYPE_Q6_K};
    const uint32_t n_types = sizeof types / sizeof types[0];
    tune_profile p;
    char name[64];
    for (int k = 0; k < 4; k++) {
        memset(&p, 0, sizeof p);
        for (uint32_t i = 0; i < n_types; i++) {
            uint32_t t = types[i];
            if (k == 1 && i % 3) continue;
            if (k == 2) break; /* no choices at all */
            p.mv[t] = tune_matvec_variants[(i + (uint32_t)k * 5) % tune_matvec_count];
            p.mm[t] = tune_matmul_variants[(i + (uint32_t)k * 3) % tune_matmul_count];
            if (!tune_matvec_usable(&info, t, &p.mv[t]) || !tune_matmul_usable(&info, t, &p.mm[t])) continue;
            p.mv_alt[t] = p.mv[t].int_dot ? tune_matvec_variants[0] : p.mv[t];
            p.mm_alt[t] = p.mm[t].int_dot ? tune_matmul_variants[0] : p.mm[t];
            p.mv_types |= 1u << t;
            p.mm_types |= 1u << t;
        }
        char *text = tune_profile_json(&p, &info, NULL);
        if (!text) continue;
        snprintf(name, sizeof name, "profile-%d.json", k);
        put("fuzz_tune", name, text, strlen(text));
        if (k == 0) {
            put("fuzz_tune", "cut.json", text, strlen(text) / 2);
            char *v = strstr(text, "\"version\"");
            if (v && (v = strchr(v, ':'))) {
                v[1] = '7'; /* another format version */
                put("fuzz_tune", "stale-version.json", text, strlen(text));
            }
        }
        free(text);
    }
    static const char mistyped[] = "{\"format\":\"vkllm-tune\",\"version\":1,\"device\":{\"uuid\":\"\"},"
                                   "\"matvec\":{\"q4_0\":{\"by_row\":\"1\",\"wg\":1e300,\"rows\":-1}}}";
    put("fuzz_tune", "mistyped.json", mistyped, sizeof mistyped - 1);
}

/* -------------------------------------------------------------- CLI options ---- */

static void seeds_args(void) {
    static const struct {
        const char *name;
        const char *argv; /* words separated by NULs */
        size_t len;
    } cases[] = {
#define A(name, s) {name, s, sizeof s - 1}
        A("devices", "--device\0" "0,1\0" "--device-mem\0" "512M,1.5GiB\0" "--host-mem\0" "64G"),
        A("split", "--tensor-split\0" "3,1\0" "-ngl\0" "8\0" "-mg\0" "1"),
        A("long-forms", "--gpu-layers\0" "-1\0" "--main-device\0" "0\0" "-ts\0" "0.5,0.25,1e-3"),
        A("sizes", "24GiB\0" "1T\0" "17\0" "0.5k\0" "1e3M\0" "2b"),
        A("numbers", "-0\0" "9223372036854775807\0" "0x10\0" "1e308\0" "-2.5e-3"),
        A("bad", "--device\0" "0,,1\0" "--device-mem\0" "12Q\0" "--host-mem"),
        A("many", "--device\0" "0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0\0" "-ngl\0" "99999999"),
#undef A
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        put("fuzz_args", cases[i].name, cases[i].argv, cases[i].len);
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: vkllm-fuzz-seeds OUT [DATA]\n");
        return 2;
    }
    g_out = argv[1];
    const char *env = getenv("VKLLM_TEST_DATA");
    const char *data = argc > 2 ? argv[2] : env && *env ? env : VKLLM_FUZZ_DEFAULT_DATA;
    static const char *const targets[] = {"fuzz_gguf", "fuzz_tokenizer", "fuzz_spirv_cache",
                                          "fuzz_pipeline_cache", "fuzz_args", "fuzz_tune"};
    char path[2048];
    if (!make_dir(g_out)) return 1;
    for (size_t i = 0; i < sizeof targets / sizeof *targets; i++) {
        snprintf(path, sizeof path, "%s/%s", g_out, targets[i]);
        if (!make_dir(path)) return 1;
    }
    seeds_gguf(data);
    seeds_tokenizer(data);
    seeds_caches();
    seeds_args();
    seeds_tune();
    printf("vkllm-fuzz-seeds: %d seed files in %s\n", g_written, g_out);
    return 0;
}
