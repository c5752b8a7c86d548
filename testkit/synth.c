/* Synthetic LLaMA GGUF generator. Weights are uniform noise from splitmix64 streams seeded
 * per tensor and row (so values depend on neither tensor order nor thread count), scaled
 * so activations stay near unit size through the layers, and quantized chunk by chunk while
 * the writer streams the file: a 542M-parameter model never needs its f32 copy in memory. */
#include "testkit/synth.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/format/gguf.h"
#include "testkit/gguf_write.h"
#include "runtime/format/model.h"
#include "runtime/format/wtype.h"
#include "base/util.h"

typedef unsigned long long ull;

/* ------------------------------------------------------------------ scales ---- */

/* Standard deviation of each matrix's output element for unit-size input. Q/K at 1 give
 * attention scores of unit spread (neither uniform nor one-hot); the residual branches at 1
 * make every layer move the stream as much as the embedding does, so a bug anywhere in a
 * layer shows in the logits. */
#define SYN_MATRIX_STD 1.0f
#define SYN_EMBED_STD 1.0f
#define SYN_NORM_SPREAD 0.1f /* norm weights uniform in 1 +- this */
/* output.weight: std 4 gives logits of spread about 4 and top logits near 15-20. Its rows
 * also get log-normal scales (sigma below): the mild heavy tail widens the gap between the
 * two largest logits (median gap 0.15 -> 0.4 logit std at vocab 32000) so greedy decoding
 * meets fewer near ties that rounding differences between back ends could flip, while
 * greedy runs still visit many different tokens (a larger sigma makes a few rows win
 * every time). */
#define SYN_OUTPUT_STD 4.0f
#define SYN_OUTPUT_ROW_SIGMA 0.25f

/* ---------------------------------------------------------------- random ---- */

static uint64_t syn_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t syn_next(uint64_t *s) { return syn_mix(*s += 0x9e3779b97f4a7c15ull); }

/* Uniform in [-1, 1) from the upper 32 bits: 24 significant bits are all a float keeps. */
static float syn_sym(uint64_t bits) {
    return (float)((int64_t)(bits >> 32) - 2147483648ll) * (1.0f / 2147483648.0f);
}

static double syn_unit(uint64_t bits) { return ((double)(bits >> 11) + 0.5) / 9007199254740992.0; }

static uint64_t syn_name_seed(uint64_t seed, const char *name) {
    return syn_mix(vkl_hash64(name, strlen(name), VKL_HASH_SEED) ^ syn_mix(seed));
}

/* --------------------------------------------------------------- tensors ---- */

typedef enum syn_kind { SYN_NORM, SYN_MATRIX, SYN_EMBED, SYN_OUTPUT } syn_kind;

typedef struct syn_tensor {
    uint64_t seed;
    uint64_t ne0, ne1;
    uint32_t type;
    syn_kind kind;
    float amp;        /* half-width of the uniform distribution */
    float row_sigma;  /* log-normal spread of per-row scales; 0: none */
} syn_tensor;

/* Rows are generated in this many floats at a time, then quantized into place. */
#define SYN_CHUNK_FLOATS (1u << 16)
/* Tensors of at least this many elements are split across threads (quantizing is the slow
 * part of writing a large model). */
#define SYN_PARALLEL_MIN (1u << 20)
#define SYN_MAX_THREADS 16

static float syn_row_scale(const syn_tensor *t, uint64_t row) {
    if (t->row_sigma == 0.0f) return 1.0f;
    uint64_t a = syn_mix(t->seed ^ (row * 0xd1b54a32d192ed03ull + 1));
    uint64_t b = syn_mix(a);
    double z = sqrt(-2.0 * log(syn_unit(a))) * cos(6.283185307179586 * syn_unit(b));
    return (float)exp((double)t->row_sigma * z);
}

/* Rows [r_begin, r_end) of a tensor. Each row has its own random stream, so the bytes do not
 * depend on how rows are split between threads. */
typedef struct syn_job {
    const syn_tensor *t;
    const wtype_traits *tr;
    uint64_t row_bytes;
    unsigned char *out; /* the tensor's first byte */
    uint64_t r_begin, r_end;
    int failed; /* the chunk buffer could not be allocated */
} syn_job;

static void *syn_job_run(void *arg) {
    syn_job *j = arg;
    const syn_tensor *t = j->t;
    uint64_t rows_per_chunk = t->ne0 >= SYN_CHUNK_FLOATS ? 1 : SYN_CHUNK_FLOATS / t->ne0;
    float *buf = malloc((size_t)(rows_per_chunk * t->ne0) * sizeof *buf); /* (rows, ne0) */
    if (!buf) {
        j->failed = 1;
        return NULL;
    }
    const float base = t->kind == SYN_NORM ? 1.0f : 0.0f;
    for (uint64_t r0 = j->r_begin; r0 < j->r_end; r0 += rows_per_chunk) {
        uint64_t nr = j->r_end - r0 < rows_per_chunk ? j->r_end - r0 : rows_per_chunk;
        for (uint64_t r = 0; r < nr; r++) {
            float *row = buf + r * t->ne0;
            float a = t->amp * syn_row_scale(t, r0 + r);
            uint64_t s = syn_mix(t->seed + (r0 + r) * 0x632be59bd9b4e019ull);
            for (uint64_t i = 0; i < t->ne0; i += 2) { /* two values per 64 random bits */
                uint64_t bits = syn_next(&s);
                row[i] = base + a * syn_sym(bits);
                if (i + 1 < t->ne0) row[i + 1] = base + a * syn_sym(bits << 32);
            }
        }
        j->tr->from_float(buf, j->out + r0 * j->row_bytes, (size_t)(nr * t->ne0));
    }
    free(buf);
    return NULL;
}

static unsigned syn_thread_count(const syn_tensor *t) {
    if (t->ne0 * t->ne1 < SYN_PARALLEL_MIN) return 1;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > SYN_MAX_THREADS) n = SYN_MAX_THREADS;
    if ((uint64_t)n > t->ne1) n = (long)t->ne1;
    return (unsigned)n;
}

static vkllm_status syn_fill(void *user, const char *name, void *dst, uint64_t size) {
    const syn_tensor *t = user;
    const wtype_traits *tr = wtype_get(t->type);
    uint64_t row_bytes = wtype_row_bytes(t->type, t->ne0);
    if (!tr || !tr->from_float || row_bytes == 0 || row_bytes * t->ne1 != size)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "synth: tensor '%s': cannot encode %llu x %llu as %s",
                       name, (ull)t->ne0, (ull)t->ne1, tr ? tr->name : "?");
    syn_job jobs[SYN_MAX_THREADS];
    pthread_t threads[SYN_MAX_THREADS];
    int started[SYN_MAX_THREADS] = {0};
    unsigned n = syn_thread_count(t);
    for (unsigned k = 0; k < n; k++) {
        jobs[k] = (syn_job){.t = t, .tr = tr, .row_bytes = row_bytes, .out = dst,
                            .r_begin = t->ne1 * k / n, .r_end = t->ne1 * (k + 1) / n};
    }
    /* Job 0 runs on this thread; a thread that cannot start runs inline too. */
    for (unsigned k = 1; k < n; k++)
        started[k] = pthread_create(&threads[k], NULL, syn_job_run, &jobs[k]) == 0;
    syn_job_run(&jobs[0]);
    int failed = jobs[0].failed;
    for (unsigned k = 1; k < n; k++) {
        if (started[k])
            pthread_join(threads[k], NULL);
        else
            syn_job_run(&jobs[k]);
        failed |= jobs[k].failed;
    }
    if (failed) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "synth: no memory for a row chunk");
    return VKLLM_OK;
}

/* --------------------------------------------------------------- types ---- */

/* ASCII case-insensitive equality (strcasecmp is POSIX, not C11). */
static int syn_ieq(const char *a, const char *b) {
    for (; *a && *b; a++, b++) {
        char ca = *a >= 'A' && *a <= 'Z' ? (char)(*a + 32) : *a;
        char cb = *b >= 'A' && *b <= 'Z' ? (char)(*b + 32) : *b;
        if (ca != cb) return 0;
    }
    return *a == *b;
}

vkllm_status synth_parse_type(const char *name, uint32_t *type, int *mix) {
    *mix = 0;
    if (name && syn_ieq(name, "q4_K_M")) {
        *type = WTYPE_Q4_K;
        *mix = 1;
        return VKLLM_OK;
    }
    for (uint32_t t = 0; name && t < WTYPE_COUNT; t++) {
        const wtype_traits *tr = wtype_get(t);
        if (tr && tr->from_float && syn_ieq(name, tr->name)) {
            *type = t;
            return VKLLM_OK;
        }
    }
    return vkl_err(VKLLM_ERR_INVALID_ARG,
                   "synth: unknown weight type '%s'; use f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, "
                   "q5_1, q4_K, q5_K, q6_K or q4_K_M",
                   name ? name : "(null)");
}

/* llama.cpp's choice of layers that get more bits in its _M mixes: the first and last
 * eighth, and every third layer in between. */
static int syn_more_bits(int layer, int n_layer) {
    return layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2;
}

uint32_t synth_tensor_type(uint32_t base, int mix, const char *what, int layer, int n_layer,
                           int tied, uint64_t ne0) {
    uint32_t t = base;
    if (mix) {
        int is_output = strcmp(what, "output") == 0 || (tied && strcmp(what, "token_embd") == 0);
        if (is_output ||
            ((strcmp(what, "attn_v") == 0 || strcmp(what, "ffn_down") == 0) &&
             syn_more_bits(layer, n_layer)))
            t = WTYPE_Q6_K;
    }
    const wtype_traits *tr = wtype_get(t);
    if (tr && ne0 % tr->block != 0)
        t = (tr->block == WTYPE_QK_K && ne0 % WTYPE_QK == 0) ? WTYPE_Q8_0 : WTYPE_F16;
    return t;
}

/* llama.cpp's general.file_type for the whole-file type (informational only). */
static uint32_t syn_file_type(uint32_t base, int mix) {
    if (mix) return 15; /* MOSTLY_Q4_K_M */
    switch (base) {
    case WTYPE_F32: return 0;
    case WTYPE_F16: return 1;
    case WTYPE_Q4_0: return 2;
    case WTYPE_Q4_1: return 3;
    case WTYPE_Q8_0: return 7;
    case WTYPE_Q5_0: return 8;
    case WTYPE_Q5_1: return 9;
    case WTYPE_Q4_K: return 14; /* MOSTLY_Q4_K_S: the closest pure-Q4_K name */
    case WTYPE_Q5_K: return 16;
    case WTYPE_Q6_K: return 18;
    case WTYPE_BF16: return 32;
    default: return 0;
    }
}

/* ------------------------------------------------------------- vocabulary ---- */

/* A self-made SentencePiece-BPE vocabulary: <unk>, <s>, </s>, the 256 byte tokens, every
 * printable ASCII character, then "▁word" prefix chains and random extensions of earlier
 * pieces. Each piece is an existing piece plus one character, so merges can reach all of
 * them, and byte fallback makes any text encodable. It depends only on its size. */
typedef struct syn_vocab {
    uint32_t n, cap;
    char **pieces;
    float *scores;
    int32_t *types;
    uint32_t *hash; /* open addressing: index + 1, 0 = empty; size hash_cap */
    uint32_t hash_cap;
    uint32_t n_text; /* pieces that are plain text (candidates for extension) */
    uint32_t *text;  /* their ids */
} syn_vocab;

#define SYN_SPACE "\xe2\x96\x81" /* U+2581, SentencePiece's space */

static const char *const k_words[] = {
    "the", "and", "to", "a", "was", "he", "she", "it", "of", "in", "they", "her", "his", "that",
    "with", "day", "one", "said", "little", "big", "play", "time", "once", "upon", "there",
    "very", "happy", "saw", "went", "friend", "friends", "mom", "dog", "cat", "tree", "ball",
    "is", "had", "be", "at", "as", "not", "but", "we", "all", "so", "what", "go", "can", "like",
    "up", "out", "do", "this", "were", "have", "from", "by", "are", "or", "an", "my", "me", "no",
    "will", "would", "then", "when", "them", "him", "some", "about", "wanted", "named", "loved",
    "girl", "boy", "sun", "sky", "run", "fun", "home", "park", "good", "help", "look", "house",
    "water", "bird", "red", "blue", "green", "toy", "car", "book", "new", "found", "made",
    "every", "could", "lily", "tim", "ben", "sue", "sam", "you", "i", "on", "for", "because",
};
static const char *const k_suffixes[] = {"ing", "ed", "er", "ly", "s", "es", "est", "ful"};

static uint32_t syn_vocab_slot(const syn_vocab *v, const char *p, size_t len) {
    uint64_t h = vkl_hash64(p, len, VKL_HASH_SEED);
    uint32_t mask = v->hash_cap - 1;
    uint32_t i = (uint32_t)h & mask;
    while (v->hash[i]) {
        const char *q = v->pieces[v->hash[i] - 1];
        if (strlen(q) == len && memcmp(q, p, len) == 0) break;
        i = (i + 1) & mask;
    }
    return i;
}

/* Adds piece (len bytes) unless present or the vocab is full. Returns 1 when added. */
static int syn_vocab_add(syn_vocab *v, const char *p, size_t len, float score, int32_t type) {
    if (v->n >= v->cap) return 0;
    uint32_t slot = syn_vocab_slot(v, p, len);
    if (v->hash[slot]) return 0;
    char *s = malloc(len + 1);
    if (!s) return -1;
    memcpy(s, p, len);
    s[len] = 0;
    v->pieces[v->n] = s;
    v->scores[v->n] = score;
    v->types[v->n] = type;
    v->hash[slot] = v->n + 1;
    if (type == 1) v->text[v->n_text++] = v->n;
    v->n++;
    return 1;
}

static void syn_vocab_free(syn_vocab *v) {
    for (uint32_t i = 0; i < v->n; i++) free(v->pieces[i]);
    free(v->pieces);
    free(v->scores);
    free(v->types);
    free(v->hash);
    free(v->text);
    memset(v, 0, sizeof *v);
}

/* Adds every prefix of text (prefix "▁" when spaced) that is longer than one character. */
static int syn_vocab_chain(syn_vocab *v, const char *word, int spaced, float *score) {
    char buf[64];
    size_t n = 0;
    if (spaced) {
        memcpy(buf, SYN_SPACE, 3);
        n = 3;
    }
    for (const char *c = word; *c && n + 1 < sizeof buf; c++) {
        buf[n++] = *c;
        if (syn_vocab_add(v, buf, n, *score, 1) < 0) return -1;
        *score -= 1.0f;
    }
    return 0;
}

static vkllm_status syn_vocab_make(uint32_t n_vocab, syn_vocab *v) {
    memset(v, 0, sizeof *v);
    if (n_vocab < 259)
        return vkl_err(VKLLM_ERR_INVALID_ARG,
                       "synth: vocabulary of %u tokens is too small: the self-made vocabulary "
                       "needs at least 259 (3 specials and 256 byte tokens)",
                       n_vocab);
    v->cap = n_vocab;
    v->hash_cap = 1;
    while (v->hash_cap < 2 * n_vocab) v->hash_cap *= 2;
    v->pieces = calloc(n_vocab, sizeof *v->pieces);
    v->scores = calloc(n_vocab, sizeof *v->scores);
    v->types = calloc(n_vocab, sizeof *v->types);
    v->text = calloc(n_vocab, sizeof *v->text);
    v->hash = calloc(v->hash_cap, sizeof *v->hash);
    if (!v->pieces || !v->scores || !v->types || !v->text || !v->hash) goto oom;

    int ok = syn_vocab_add(v, "<unk>", 5, 0.0f, 2) >= 0 &&
             syn_vocab_add(v, "<s>", 3, 0.0f, 3) >= 0 && syn_vocab_add(v, "</s>", 4, 0.0f, 3) >= 0;
    for (int b = 0; ok && b < 256; b++) {
        char p[8];
        snprintf(p, sizeof p, "<0x%02X>", b);
        ok = syn_vocab_add(v, p, 6, 0.0f, 6) >= 0;
    }
    float score = -1.0f;
    ok = ok && syn_vocab_add(v, SYN_SPACE, 3, score--, 1) >= 0;
    for (int c = 0x21; ok && c < 0x7f; c++) {
        char p = (char)c;
        ok = syn_vocab_add(v, &p, 1, score--, 1) >= 0;
    }
    for (size_t i = 0; ok && i < sizeof k_words / sizeof k_words[0]; i++)
        ok = syn_vocab_chain(v, k_words[i], 1, &score) == 0;
    for (size_t i = 0; ok && i < sizeof k_suffixes / sizeof k_suffixes[0]; i++)
        ok = syn_vocab_chain(v, k_suffixes[i], 0, &score) == 0;
    if (!ok) goto oom;

    /* The rest: an earlier text piece plus a letter, common letters more often. */
    static const char letters[] = "etaoinshrdlcumwfgypbvkjxqz";
    uint64_t rs = 0x5eed;
    uint32_t tries = 0;
    while (v->n < n_vocab) {
        uint64_t r = syn_next(&rs);
        uint32_t base = v->text[(uint32_t)(r % v->n_text)];
        double u = syn_unit(syn_next(&rs));
        char c = letters[(int)(u * u * 26.0)];
        const char *bp = v->pieces[base];
        size_t bl = strlen(bp);
        if (bl > 12) continue;
        char buf[16];
        memcpy(buf, bp, bl);
        buf[bl] = c;
        int added = syn_vocab_add(v, buf, bl + 1, score, 1);
        if (added < 0) goto oom;
        if (added) {
            score -= 1.0f;
        } else if (++tries > 100u * n_vocab) {
            syn_vocab_free(v);
            return vkl_err(VKLLM_ERR_INVALID_ARG, "synth: cannot fill a vocabulary of %u pieces",
                           n_vocab);
        }
    }
    return VKLLM_OK;
oom:
    syn_vocab_free(v);
    return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "synth: no memory for a %u-token vocabulary", n_vocab);
}

static vkllm_status syn_write_self_vocab(gguf_writer *w, uint32_t n_vocab) {
    syn_vocab v;
    vkllm_status st = syn_vocab_make(n_vocab, &v);
    if (st != VKLLM_OK) return st;
    if ((st = gguf_writer_add_str(w, "tokenizer.ggml.model", "llama")) == VKLLM_OK &&
        (st = gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v.pieces,
                                      v.n)) == VKLLM_OK &&
        (st = gguf_writer_add_arr(w, "tokenizer.ggml.scores", GGUF_F32, v.scores, v.n)) ==
            VKLLM_OK &&
        (st = gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_I32, v.types, v.n)) ==
            VKLLM_OK &&
        (st = gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", 0)) == VKLLM_OK &&
        (st = gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 1)) == VKLLM_OK &&
        (st = gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 2)) == VKLLM_OK &&
        (st = gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", 1)) == VKLLM_OK)
        st = gguf_writer_add_bool(w, "tokenizer.ggml.add_eos_token", 0);
    syn_vocab_free(&v);
    return st;
}

/* Copies key i of src verbatim. Scalars are re-encoded; arrays of numbers or strings are
 * copied as their encoded bytes, which the reader has validated in place. */
static vkllm_status syn_copy_kv(gguf_writer *w, const gguf_file *src, uint64_t i, const char *key) {
    union {
        uint32_t u32;
        int32_t i32;
        uint64_t u64;
        int64_t i64;
        float f32;
        double f64;
        int b;
    } v;
    vkllm_status st;
    switch (gguf_kv_type(src, i)) {
    case GGUF_U8: case GGUF_U16: case GGUF_U32:
        if ((st = gguf_get_u32(src, key, &v.u32))) return st;
        return gguf_writer_add_u32(w, key, v.u32);
    case GGUF_I8: case GGUF_I16: case GGUF_I32:
        if ((st = gguf_get_i32(src, key, &v.i32))) return st;
        return gguf_writer_add_i32(w, key, v.i32);
    case GGUF_U64:
        if ((st = gguf_get_u64(src, key, &v.u64))) return st;
        return gguf_writer_add_u64(w, key, v.u64);
    case GGUF_I64:
        if ((st = gguf_get_i64(src, key, &v.i64))) return st;
        return gguf_writer_add_i64(w, key, v.i64);
    case GGUF_F32:
        if ((st = gguf_get_f32(src, key, &v.f32))) return st;
        return gguf_writer_add_f32(w, key, v.f32);
    case GGUF_F64:
        if ((st = gguf_get_f64(src, key, &v.f64))) return st;
        return gguf_writer_add_f64(w, key, v.f64);
    case GGUF_BOOL:
        if ((st = gguf_get_bool(src, key, &v.b))) return st;
        return gguf_writer_add_bool(w, key, v.b);
    case GGUF_STRING: {
        gguf_str s;
        if ((st = gguf_get_str(src, key, &s))) return st;
        return gguf_writer_add_str_n(w, key, s.ptr, s.len);
    }
    case GGUF_ARRAY: {
        gguf_array a;
        if ((st = gguf_get_arr(src, key, &a))) return st;
        uint64_t body;
        if (a.type == GGUF_STRING) {
            body = 0;
            if (a.count) {
                gguf_str last = gguf_arr_str(src, &a, a.count - 1);
                body = (uint64_t)(last.ptr + last.len - (const char *)a.data);
            }
        } else if (a.type == GGUF_ARRAY || a.type >= GGUF_VTYPE_COUNT) {
            return vkl_err(VKLLM_ERR_UNSUPPORTED,
                           "synth: cannot copy '%s': arrays of arrays are not supported", key);
        } else {
            static const uint8_t es[GGUF_VTYPE_COUNT] = {
                [GGUF_U8] = 1,  [GGUF_I8] = 1,   [GGUF_U16] = 2, [GGUF_I16] = 2,
                [GGUF_U32] = 4, [GGUF_I32] = 4,  [GGUF_F32] = 4, [GGUF_BOOL] = 1,
                [GGUF_U64] = 8, [GGUF_I64] = 8, [GGUF_F64] = 8};
            body = a.count * es[a.type];
        }
        unsigned char *raw = malloc((size_t)body + 12);
        if (!raw) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "synth: no memory to copy '%s'", key);
        uint32_t et = (uint32_t)a.type;
        uint64_t cnt = a.count;
        for (int k = 0; k < 4; k++) raw[k] = (unsigned char)(et >> (8 * k));
        for (int k = 0; k < 8; k++) raw[4 + k] = (unsigned char)(cnt >> (8 * k));
        if (body) memcpy(raw + 12, a.data, (size_t)body);
        st = gguf_writer_add_raw(w, key, GGUF_ARRAY, raw, body + 12);
        free(raw);
        return st;
    }
    default:
        return vkl_err(VKLLM_ERR_UNSUPPORTED, "synth: cannot copy '%s' of value type %d", key,
                       (int)gguf_kv_type(src, i));
    }
}

/* Copies every tokenizer.ggml.* key of path; *n_tokens is the token count. */
static vkllm_status syn_copy_vocab(gguf_writer *w, const char *path, uint32_t *n_tokens) {
    gguf_file *src = NULL;
    vkllm_status st = gguf_open(path, &src);
    if (st != VKLLM_OK) {
        vkl_err_context("synth: --vocab-from %s", path);
        return st;
    }
    gguf_array toks;
    if (gguf_find_key(src, "tokenizer.ggml.tokens") < 0 ||
        gguf_get_arr(src, "tokenizer.ggml.tokens", &toks) != VKLLM_OK ||
        toks.type != GGUF_STRING || toks.count == 0 || toks.count > LLAMA_MAX_VOCAB) {
        gguf_close(src);
        return vkl_err(VKLLM_ERR_BAD_FILE, "synth: %s has no usable tokenizer.ggml.tokens", path);
    }
    *n_tokens = (uint32_t)toks.count;
    char key[256];
    for (uint64_t i = 0; i < gguf_kv_count(src) && st == VKLLM_OK; i++) {
        gguf_str k = gguf_kv_key(src, i);
        if (k.len < 16 || memcmp(k.ptr, "tokenizer.ggml.", 15) != 0) continue;
        if (k.len >= sizeof key) {
            st = vkl_err(VKLLM_ERR_UNSUPPORTED, "synth: key of %llu bytes in %s", (ull)k.len, path);
            break;
        }
        st = syn_copy_kv(w, src, i, gguf_str_c(k, key, sizeof key));
    }
    gguf_close(src);
    return st;
}

/* ---------------------------------------------------------------- model ---- */

typedef struct syn_model {
    gguf_writer *w;
    syn_tensor *t; /* tensors in the order added; referenced by the writer's fills */
    size_t n_t, cap_t;
} syn_model;

static vkllm_status syn_add_tensor(syn_model *m, const synth_opts *o, const char *what, int layer,
                                   uint32_t base, int mix, syn_kind kind, uint64_t ne0,
                                   uint64_t ne1) {
    char name[96];
    llama_tensor_name(name, sizeof name, layer, what);
    uint64_t ne[2] = {ne0, ne1};
    uint32_t type = kind == SYN_NORM ? WTYPE_F32
                                     : synth_tensor_type(base, mix, what, layer, (int)o->n_layer,
                                                         o->tied, ne0);
    int skip = 0;
    if (o->hook) {
        vkllm_status st = o->hook(o->hook_user, name, ne, &type, &skip);
        if (st != VKLLM_OK) return st;
        if (skip) return VKLLM_OK;
    }
    if (m->n_t == m->cap_t) return vkl_err(VKLLM_ERR_INVALID_ARG, "synth: tensor table full");
    syn_tensor *t = &m->t[m->n_t++];
    t->seed = syn_name_seed(o->seed, name);
    t->ne0 = ne[0];
    t->ne1 = ne[1];
    t->type = type;
    t->kind = kind;
    t->row_sigma = 0.0f;
    /* Uniform on [-a, a] has std a / sqrt(3). */
    switch (kind) {
    case SYN_NORM: t->amp = SYN_NORM_SPREAD; break;
    case SYN_EMBED: t->amp = SYN_EMBED_STD * sqrtf(3.0f); break;
    case SYN_MATRIX: t->amp = SYN_MATRIX_STD * sqrtf(3.0f / (float)ne[0]); break;
    case SYN_OUTPUT:
        t->amp = SYN_OUTPUT_STD * sqrtf(3.0f / (float)ne[0]);
        t->row_sigma = SYN_OUTPUT_ROW_SIGMA;
        break;
    }
    uint32_t n_dims = kind == SYN_NORM && ne[1] == 1 ? 1 : 2;
    return gguf_writer_add_tensor_fill(m->w, name, n_dims, ne, type, syn_fill, t);
}

static vkllm_status syn_check_opts(const synth_opts *o) {
    uint32_t kv = o->n_head_kv ? o->n_head_kv : o->n_head;
    if (!o->dim || !o->n_layer || !o->n_ff || !o->n_head || !o->n_ctx)
        return vkl_err(VKLLM_ERR_INVALID_ARG,
                       "synth: dim, layers, ffn, heads and ctx must all be positive");
    if (o->dim % o->n_head || (o->dim / o->n_head) % 2 || o->n_head % kv)
        return vkl_err(VKLLM_ERR_INVALID_ARG,
                       "synth: dim %u must split into %u heads of even size, and heads into %u "
                       "KV heads",
                       o->dim, o->n_head, kv);
    if (!(o->rms_eps > 0.0f))
        return vkl_err(VKLLM_ERR_INVALID_ARG, "synth: rms eps must be positive");
    return VKLLM_OK;
}

static vkllm_status syn_build(const synth_opts *o, syn_model *m) {
    memset(m, 0, sizeof *m);
    uint32_t base;
    int mix;
    vkllm_status st = syn_check_opts(o);
    if (st == VKLLM_OK) st = synth_parse_type(o->type ? o->type : "f32", &base, &mix);
    if (st != VKLLM_OK) return st;
    if ((st = gguf_writer_create(&m->w)) != VKLLM_OK) return st;
    m->cap_t = 3 + 9 * (size_t)o->n_layer;
    m->t = calloc(m->cap_t, sizeof *m->t);
    if (!m->t) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "synth: out of memory");

    gguf_writer *w = m->w;
    uint32_t n_vocab = o->n_vocab;
    char name[160];
    uint32_t kv = o->n_head_kv ? o->n_head_kv : o->n_head;
    snprintf(name, sizeof name, "vkllm-synthetic %ux%u %s seed %llu", o->dim, o->n_layer,
             o->type ? o->type : "f32", (ull)o->seed);
#define TRY(call)                                                                              \
    if ((st = (call)) != VKLLM_OK) return st
    TRY(gguf_writer_add_str(w, "general.architecture", o->arch ? o->arch : "llama"));
    TRY(gguf_writer_add_str(w, "general.name", name));
    TRY(gguf_writer_add_u32(w, "general.file_type", syn_file_type(base, mix)));
    if (base != WTYPE_F32 && base != WTYPE_F16 && base != WTYPE_BF16)
        TRY(gguf_writer_add_u32(w, "general.quantization_version", 2));
    TRY(gguf_writer_add_u32(w, "llama.context_length", o->n_ctx));
    TRY(gguf_writer_add_u32(w, "llama.embedding_length", o->dim));
    TRY(gguf_writer_add_u32(w, "llama.block_count", o->n_layer));
    TRY(gguf_writer_add_u32(w, "llama.feed_forward_length", o->n_ff));
    TRY(gguf_writer_add_u32(w, "llama.attention.head_count", o->n_head));
    if (o->n_head_kv) TRY(gguf_writer_add_u32(w, "llama.attention.head_count_kv", kv));
    TRY(gguf_writer_add_u32(w, "llama.rope.dimension_count",
                            o->n_rot ? o->n_rot : o->dim / o->n_head));
    if (o->rope_base > 0.0f) TRY(gguf_writer_add_f32(w, "llama.rope.freq_base", o->rope_base));
    if (o->rope_scaling_type) {
        TRY(gguf_writer_add_str(w, "llama.rope.scaling.type", o->rope_scaling_type));
        TRY(gguf_writer_add_f32(w, "llama.rope.scaling.factor", o->rope_scaling_factor));
    }
    TRY(gguf_writer_add_f32(w, "llama.attention.layer_norm_rms_epsilon", o->rms_eps));
    if (o->vocab_from) {
        uint32_t n_tok = 0;
        TRY(syn_copy_vocab(w, o->vocab_from, &n_tok));
        if (n_vocab == 0) n_vocab = n_tok;
        if (n_vocab != n_tok)
            return vkl_err(VKLLM_ERR_INVALID_ARG,
                           "synth: vocab size %u was asked for but %s has %u tokens; pass "
                           "--vocab %u or leave it out",
                           n_vocab, o->vocab_from, n_tok, n_tok);
    } else {
        if (n_vocab == 0) n_vocab = 32000;
        TRY(syn_write_self_vocab(w, n_vocab));
    }
    if (!o->omit_vocab_size) TRY(gguf_writer_add_u32(w, "llama.vocab_size", n_vocab));

    const uint64_t E = o->dim, KV = (uint64_t)(o->dim / o->n_head) * kv, FF = o->n_ff;
    TRY(syn_add_tensor(m, o, "token_embd", -1, base, mix, o->tied ? SYN_OUTPUT : SYN_EMBED, E,
                       n_vocab));
    TRY(syn_add_tensor(m, o, "output_norm", -1, base, mix, SYN_NORM, E, 1));
    if (!o->tied) TRY(syn_add_tensor(m, o, "output", -1, base, mix, SYN_OUTPUT, E, n_vocab));
    for (int il = 0; il < (int)o->n_layer; il++) {
        TRY(syn_add_tensor(m, o, "attn_norm", il, base, mix, SYN_NORM, E, 1));
        TRY(syn_add_tensor(m, o, "attn_q", il, base, mix, SYN_MATRIX, E, E));
        TRY(syn_add_tensor(m, o, "attn_k", il, base, mix, SYN_MATRIX, E, KV));
        TRY(syn_add_tensor(m, o, "attn_v", il, base, mix, SYN_MATRIX, E, KV));
        TRY(syn_add_tensor(m, o, "attn_output", il, base, mix, SYN_MATRIX, E, E));
        TRY(syn_add_tensor(m, o, "ffn_norm", il, base, mix, SYN_NORM, E, 1));
        TRY(syn_add_tensor(m, o, "ffn_gate", il, base, mix, SYN_MATRIX, E, FF));
        TRY(syn_add_tensor(m, o, "ffn_up", il, base, mix, SYN_MATRIX, E, FF));
        TRY(syn_add_tensor(m, o, "ffn_down", il, base, mix, SYN_MATRIX, FF, E));
    }
#undef TRY
    return VKLLM_OK;
}

static void syn_free(syn_model *m) {
    gguf_writer_free(m->w);
    free(m->t);
}

void synth_default_opts(synth_opts *o) {
    memset(o, 0, sizeof *o);
    o->dim = 2048;
    o->n_layer = 8;
    o->n_ff = 5632;
    o->n_head = 16;
    o->n_vocab = 32000;
    o->n_ctx = 2048;
    o->rms_eps = 1e-5f;
    o->seed = 1;
    o->type = "q4_0";
}

vkllm_status synth_write_file(const synth_opts *o, const char *path) {
    syn_model m;
    vkllm_status st = syn_build(o, &m);
    if (st == VKLLM_OK)
        st = gguf_writer_write_file(m.w, path, o->header_only ? GGUF_WRITE_HEADER_ONLY : 0);
    syn_free(&m);
    return st;
}

vkllm_status synth_write_memory(const synth_opts *o, void **out, size_t *size) {
    syn_model m;
    vkllm_status st = syn_build(o, &m);
    if (st == VKLLM_OK)
        st = gguf_writer_write_memory(m.w, o->header_only ? GGUF_WRITE_HEADER_ONLY : 0, out,
                                      size);
    syn_free(&m);
    return st;
}
