/* libFuzzer target: the SentencePiece tokenizer on arbitrary bytes with the real LLaMA
 * vocabulary (32000 tokens) and stories260K's 512-token one: encode (ids in range, the
 * "buffer too small" protocol, decode(encode(x)) == x for valid UTF-8), whole and streamed
 * decoding (same text, chunks that end on character boundaries), and decoding arbitrary ids.
 * The vocabularies come from $VKLLM_TEST_DATA (default ../shared/models next to the
 * sources); one that is absent is replaced by the synthetic generator's self-made
 * vocabulary, with a note. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/format/gguf.h"
#include "testkit/synth.h"
#include "runtime/text/tokenizer.h"
#include "vkllm.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                       \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "fuzz_tokenizer: %s:%d: broken promise: %s (last error: %s)\n", \
                    __FILE__, __LINE__, #cond, vkllm_last_error());                         \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

typedef struct vocab {
    const char *name;
    tok_vocab *v;
    int real; /* a published vocabulary: the round-trip promise is checked */
} vocab;

static vocab g_vocabs[2] = {{"vocab-llama-spm/ggml-vocab-llama-spm.gguf", NULL, 1},
                            {"stories260K/stories260K.gguf", NULL, 1}};

static tok_vocab *load_vocab(const char *rel) {
    const char *dir = getenv("VKLLM_TEST_DATA");
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : VKLLM_FUZZ_DEFAULT_DATA, rel);
    gguf_file *f = NULL;
    if (gguf_open(path, &f) != VKLLM_OK) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", vkllm_last_error());
        return NULL;
    }
    tok_vocab *v = NULL;
    if (tok_vocab_from_gguf(f, &v) != VKLLM_OK)
        fprintf(stderr, "fuzz_tokenizer: %s: %s\n", path, vkllm_last_error());
    gguf_close(f);
    return v;
}

/* The generator's vocabulary of n tokens, from a header-only synthetic model. */
static tok_vocab *synth_vocab(uint32_t n) {
    synth_opts o;
    synth_default_opts(&o);
    o.dim = 32, o.n_layer = 1, o.n_ff = 32, o.n_head = 2, o.n_vocab = n, o.n_ctx = 64;
    o.type = "f32";
    o.header_only = 1;
    void *mem = NULL;
    size_t size = 0;
    gguf_file *f = NULL;
    tok_vocab *v = NULL;
    if (synth_write_memory(&o, &mem, &size) == VKLLM_OK &&
        gguf_open_memory(mem, size, &f) == VKLLM_OK)
        (void)tok_vocab_from_gguf(f, &v);
    gguf_close(f);
    free(mem);
    return v;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    for (int i = 0; i < 2; i++) {
        g_vocabs[i].v = load_vocab(g_vocabs[i].name);
        if (!g_vocabs[i].v) {
            fprintf(stderr, "fuzz_tokenizer: NOTE: %s absent; fuzzing the synthetic %s-token "
                            "vocabulary in its place\n",
                    g_vocabs[i].name, i == 0 ? "32000" : "512");
            g_vocabs[i].v = synth_vocab(i == 0 ? 32000 : 512);
            g_vocabs[i].real = 0;
        }
        REQUIRE(g_vocabs[i].v != NULL);
    }
    return 0;
}

static int valid_utf8(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n) return 0;
        uint32_t cp = len == 1 ? c : len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += len;
    }
    return 1;
}

/* Whole characters by structure (a lead byte and its continuation bytes): what the stream's
 * chunks promise, whatever the bytes of the tokens were. */
static int whole_chars(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n) return 0;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xc0) != 0x80) return 0;
        i += len;
    }
    return 1;
}

typedef struct sink {
    char *buf;
    size_t len, cap;
    int check_chunks; /* the stream promises whole characters */
} sink;

static vkllm_status sink_emit(void *user, const char *text, size_t len) {
    sink *s = user;
    REQUIRE(len > 0);
    if (s->check_chunks) REQUIRE(whole_chars((const uint8_t *)text, len));
    if (s->len + len > s->cap) {
        size_t cap = (s->len + len) * 2;
        char *b = realloc(s->buf, cap);
        REQUIRE(b != NULL);
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, text, len);
    s->len += len;
    return VKLLM_OK;
}

static int has_space_mark(const uint8_t *data, size_t size) {
    for (size_t i = 0; i + 2 < size; i++)
        if (data[i] == 0xe2 && data[i + 1] == 0x96 && data[i + 2] == 0x81) return 1;
    return 0;
}

static void fuzz_text(const vocab *vc, const uint8_t *data, size_t size, int add_bos) {
    const tok_vocab *v = vc->v;
    const char *text = (const char *)data;
    size_t n = 0;
    vkllm_status st = tok_encode(v, text, size, add_bos, NULL, 0, &n);
    if (n == 0) {
        REQUIRE(st == VKLLM_OK);
        return;
    }
    REQUIRE(st == VKLLM_ERR_INVALID_ARG);
    int32_t *ids = malloc(n * sizeof *ids);
    REQUIRE(ids != NULL);
    size_t n2 = 0;
    if (n > 1) REQUIRE(tok_encode(v, text, size, add_bos, ids, n - 1, &n2) == VKLLM_ERR_INVALID_ARG && n2 == n);
    REQUIRE(tok_encode(v, text, size, add_bos, ids, n, &n2) == VKLLM_OK && n2 == n);
    REQUIRE(!add_bos || tok_bos(v) < 0 || ids[0] == tok_bos(v));
    for (size_t i = 0; i < n; i++) REQUIRE(ids[i] >= 0 && ids[i] < tok_n_vocab(v));

    size_t len = 0;
    char probe[1];
    st = tok_decode(v, ids, n, probe, sizeof probe, &len);
    REQUIRE(st == (len + 1 <= sizeof probe ? VKLLM_OK : VKLLM_ERR_INVALID_ARG));
    char *out = malloc(len + 1);
    REQUIRE(out != NULL);
    REQUIRE(tok_decode(v, ids, n, out, len + 1, &len) == VKLLM_OK && out[len] == 0);
    /* The round trip holds for valid UTF-8 without U+2581 (which decodes as a space). In
     * invalid UTF-8 a lead byte takes the next bytes as its character whatever they are, as
     * llama.cpp does: "\xf0 " becomes the byte tokens F0 E2 96 81, the space as U+2581. */
    int whole = valid_utf8(data, size);
    if (vc->real && whole && !has_space_mark(data, size)) {
        if (len != size || memcmp(out, text, size) != 0) {
            fprintf(stderr, "fuzz_tokenizer: %s: decode(encode(x)) gives %zu bytes for %zu\n",
                    vc->name, len, size);
            abort();
        }
    }

    sink s = {NULL, 0, 0, 1};
    tok_stream ts;
    tok_stream_init(&ts, v, 1, sink_emit, &s);
    for (size_t i = 0; i < n; i++) REQUIRE(tok_stream_push(&ts, ids[i]) == VKLLM_OK);
    REQUIRE(tok_stream_flush(&ts) == VKLLM_OK);
    if (whole) REQUIRE(s.len == len && (len == 0 || memcmp(s.buf, out, len) == 0));
    free(s.buf);
    free(out);
    free(ids);
}

/* The bytes read as little-endian 16-bit ids, a few past the vocabulary's end. */
static void fuzz_ids(const vocab *vc, const uint8_t *data, size_t size) {
    const tok_vocab *v = vc->v;
    size_t n = size / 2;
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    REQUIRE(ids != NULL);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        ids[i] = (int32_t)((data[2 * i] | data[2 * i + 1] << 8) % (tok_n_vocab(v) + 3));
        if (data[2 * i + 1] == 0xff && data[2 * i] == 0xff) ids[i] = -1;
        bad |= ids[i] < 0 || ids[i] >= tok_n_vocab(v);
    }
    size_t len = 0;
    vkllm_status st = tok_decode(v, ids, n, NULL, 0, &len);
    REQUIRE(st == VKLLM_ERR_INVALID_ARG);
    if (!bad) {
        char *out = malloc(len + 1);
        REQUIRE(out != NULL);
        REQUIRE(tok_decode(v, ids, n, out, len + 1, &len) == VKLLM_OK);
        free(out);
    }
    sink s = {NULL, 0, 0, 1};
    tok_stream ts;
    tok_stream_init(&ts, v, size & 1, sink_emit, &s);
    for (size_t i = 0; i < n; i++) {
        int in_range = ids[i] >= 0 && ids[i] < tok_n_vocab(v);
        REQUIRE((tok_stream_push(&ts, ids[i]) == VKLLM_OK) == in_range);
        size_t tl = 0;
        REQUIRE((tok_token_text(v, ids[i], &tl) != NULL) == in_range);
        REQUIRE((tok_piece(v, ids[i], &tl) != NULL) == in_range);
    }
    REQUIRE(tok_stream_flush(&ts) == VKLLM_OK);
    free(s.buf);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int i = 0; i < 2; i++) {
        fuzz_text(&g_vocabs[i], data, size, (int)(size & 1));
        fuzz_ids(&g_vocabs[i], data, size);
    }
    return 0;
}
