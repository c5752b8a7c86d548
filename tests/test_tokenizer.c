/* Tests of the SentencePiece-BPE tokenizer: merge rules on a handmade vocab, the published
 * LLaMA vectors, stories260K's vectors, decode/encode round trips, the streaming decoder's
 * UTF-8 boundaries, a slow reference merger on long random text, and malformed vocabs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "runtime/format/gguf.h"
#include "runtime/text/tokenizer.h"
#include "base/util.h"

#define SP "\xe2\x96\x81" /* U+2581 */

/* ------------------------------------------------------------- helpers ---- */

/* Encodes without BOS into a malloc'd array (checking the capacity protocol on the way). */
static int32_t *encode_all(const tok_vocab *v, const char *text, size_t len, int add_bos,
                           size_t *n) {
    size_t need = 0;
    vkllm_status st = tok_encode(v, text, len, add_bos, NULL, 0, &need);
    if (st != VKLLM_OK && st != VKLLM_ERR_INVALID_ARG) return NULL;
    int32_t *ids = malloc((need ? need : 1) * sizeof *ids);
    if (!ids) return NULL;
    if (tok_encode(v, text, len, add_bos, ids, need, n) != VKLLM_OK || *n != need) {
        free(ids);
        return NULL;
    }
    return ids;
}

static char *decode_all(const tok_vocab *v, const int32_t *ids, size_t n, size_t *len) {
    size_t need = 0;
    char probe[1];
    vkllm_status st = tok_decode(v, ids, n, probe, sizeof probe, &need);
    if (st != VKLLM_OK && st != VKLLM_ERR_INVALID_ARG) return NULL;
    char *buf = malloc(need + 1);
    if (!buf) return NULL;
    if (tok_decode(v, ids, n, buf, need + 1, len) != VKLLM_OK || *len != need) {
        free(buf);
        return NULL;
    }
    return buf;
}

static int ids_equal(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

static void print_ids(const char *what, const int32_t *ids, size_t n) {
    fprintf(stderr, "  %s (%zu):", what, n);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", (int)ids[i]);
    fputc('\n', stderr);
}

/* Strict UTF-8 check (no overlongs, surrogates or values past U+10FFFF); 1 if s is whole. */
static int utf8_complete(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned char b = p[i];
        size_t need;
        unsigned char lo = 0x80, hi = 0xBF;
        if (b < 0x80) {
            i++;
            continue;
        } else if (b >= 0xC2 && b <= 0xDF) {
            need = 2;
        } else if (b >= 0xE0 && b <= 0xEF) {
            need = 3;
            if (b == 0xE0) lo = 0xA0;
            if (b == 0xED) hi = 0x9F;
        } else if (b >= 0xF0 && b <= 0xF4) {
            need = 4;
            if (b == 0xF0) lo = 0x90;
            if (b == 0xF4) hi = 0x8F;
        } else {
            return 0;
        }
        if (i + need > n) return 0;
        if (p[i + 1] < lo || p[i + 1] > hi) return 0;
        for (size_t k = 2; k < need; k++)
            if (p[i + k] < 0x80 || p[i + k] > 0xBF) return 0;
        i += need;
    }
    return 1;
}

/* Collects streamed text and counts callbacks that would split a character. */
typedef struct sink {
    char *buf;
    size_t len, cap;
    int calls, bad_chunks, empty_chunks;
} sink;

static vkllm_status sink_emit(void *user, const char *text, size_t len) {
    sink *s = user;
    s->calls++;
    if (len == 0) s->empty_chunks++;
    if (!utf8_complete(text, len)) s->bad_chunks++;
    if (s->len + len + 1 > s->cap) {
        size_t cap = (s->len + len + 1) * 2;
        char *b = realloc(s->buf, cap);
        if (!b) return VKLLM_ERR_OUT_OF_MEMORY;
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, text, len);
    s->len += len;
    s->buf[s->len] = 0;
    return VKLLM_OK;
}

/* Streams ids one at a time, then flushes; checks chunk boundaries and returns the text. */
static int stream_all(const tok_vocab *v, const int32_t *ids, size_t n, sink *out) {
    tok_stream s;
    memset(out, 0, sizeof *out);
    tok_stream_init(&s, v, 1, sink_emit, out);
    for (size_t i = 0; i < n; i++)
        if (tok_stream_push(&s, ids[i]) != VKLLM_OK) return 0;
    return tok_stream_flush(&s) == VKLLM_OK;
}

/* Checks decode(encode(x)) == x, and that streaming gives the same text in whole characters,
 * both without and with BOS in front. */
static void check_round_trip(const tok_vocab *v, const char *x, size_t xlen, const char *label) {
    for (int bos = 0; bos < 2; bos++) {
        size_t n = 0, dlen = 0;
        int32_t *ids = encode_all(v, x, xlen, bos, &n);
        CHECK_MSG(ids != NULL, "%s: encode failed: %s", label, vkllm_last_error());
        if (!ids) return;
        char *d = decode_all(v, ids, n, &dlen);
        CHECK_MSG(d != NULL, "%s: decode failed: %s", label, vkllm_last_error());
        if (d) {
            CHECK_MSG(dlen == xlen && memcmp(d, x, xlen) == 0,
                      "%s (bos %d): decode(encode(x)) = '%s' (%zu bytes), want '%.*s' (%zu)",
                      label, bos, d, dlen, (int)xlen, x, xlen);
            sink s;
            int ok = stream_all(v, ids, n, &s);
            CHECK_MSG(ok, "%s: stream failed: %s", label, vkllm_last_error());
            CHECK_MSG(s.len == dlen && (dlen == 0 || memcmp(s.buf, d, dlen) == 0),
                      "%s (bos %d): streamed text '%s' differs from decoded '%s'", label, bos,
                      s.buf ? s.buf : "", d);
            CHECK_MSG(s.bad_chunks == 0, "%s: %d stream callbacks end mid-character", label,
                      s.bad_chunks);
            CHECK_MSG(s.empty_chunks == 0, "%s: %d empty stream callbacks", label,
                      s.empty_chunks);
            free(s.buf);
        }
        free(d);
        free(ids);
    }
}

/* ------------------------------------------------ handmade vocab (core) ---- */

enum {
    H_UNK, H_BOS, H_EOS, H_SP, H_A, H_B, H_C, H_SPA, H_AB, H_BC, H_ABC, H_SPAB, H_AA,
    H_LT, H_S, H_GT, H_LTS, H_CTRL, H_X, H_Y, H_XY_UNUSED, H_USER, H_E4, H_BD, H_A0, H_NI3,
    H_LONG, H_COUNT
};

static char g_long_piece[3 * 70 + 1]; /* 70 x U+4F60, longer than the stream's buffer */

static vkllm_status make_hand_vocab(tok_vocab **v, int with_types, int space_prefix) {
    static const char *const pieces[H_COUNT] = {
        [H_UNK] = "<unk>", [H_BOS] = "<s>", [H_EOS] = "</s>", [H_SP] = SP, [H_A] = "a",
        [H_B] = "b", [H_C] = "c", [H_SPA] = SP "a", [H_AB] = "ab", [H_BC] = "bc",
        [H_ABC] = "abc", [H_SPAB] = SP "ab", [H_AA] = "aa", [H_LT] = "<", [H_S] = "s",
        [H_GT] = ">", [H_LTS] = "<s", [H_CTRL] = "<s>", [H_X] = "x", [H_Y] = "y",
        [H_XY_UNUSED] = "xy", [H_USER] = "<|u|>", [H_E4] = "<0xE4>", [H_BD] = "<0xBD>",
        [H_A0] = "<0xA0>", [H_NI3] = "\xe4\xbd\xa0\xe4\xbd\xa0\xe4\xbd\xa0",
        [H_LONG] = g_long_piece,
    };
    static const float scores[H_COUNT] = {
        [H_SPA] = -5, [H_AB] = -1, [H_BC] = -2, [H_ABC] = -3, [H_SPAB] = -4, [H_AA] = -6,
        [H_LTS] = -7, [H_CTRL] = 10, [H_XY_UNUSED] = 10, [H_USER] = 10,
    };
    int32_t types[H_COUNT];
    for (int i = 0; i < H_COUNT; i++) types[i] = TOK_TYPE_NORMAL;
    types[H_UNK] = TOK_TYPE_UNKNOWN;
    types[H_BOS] = types[H_EOS] = types[H_CTRL] = TOK_TYPE_CONTROL;
    types[H_XY_UNUSED] = TOK_TYPE_UNUSED;
    types[H_USER] = TOK_TYPE_USER_DEFINED;
    types[H_E4] = types[H_BD] = types[H_A0] = TOK_TYPE_BYTE;
    for (int i = 0; i < 70; i++) memcpy(g_long_piece + 3 * i, "\xe4\xbd\xa0", 3);
    tok_vocab_desc d;
    memset(&d, 0, sizeof d);
    d.n_tokens = H_COUNT;
    d.pieces = pieces;
    d.scores = scores;
    d.types = with_types ? types : NULL;
    d.bos_id = H_BOS;
    d.eos_id = H_EOS;
    d.unk_id = H_UNK;
    d.pad_id = -1;
    d.add_bos = 1;
    d.add_space_prefix = space_prefix;
    return tok_vocab_create(&d, v);
}

static void expect_encode(const tok_vocab *v, const char *text, int add_bos, const int32_t *want,
                          size_t nwant) {
    size_t n = 0;
    int32_t *got = encode_all(v, text, strlen(text), add_bos, &n);
    CHECK_MSG(got && ids_equal(got, n, want, nwant), "encode('%s', bos %d) wrong", text,
              add_bos);
    if (got && !ids_equal(got, n, want, nwant)) {
        print_ids("want", want, nwant);
        print_ids("got", got, n);
    }
    free(got);
}

static void expect_decode(const tok_vocab *v, const int32_t *ids, size_t n, const char *want) {
    size_t len = 0;
    char *got = decode_all(v, ids, n, &len);
    CHECK_MSG(got && len == strlen(want) && memcmp(got, want, len) == 0,
              "decode gave '%s', want '%s'", got ? got : "(error)", want);
    free(got);
}

static void test_handmade(void) {
    tok_vocab *v = NULL;
    CHECK_OK(make_hand_vocab(&v, 1, 1));
    if (!v) return;
    CHECK(tok_n_vocab(v) == H_COUNT);
    CHECK(tok_bos(v) == H_BOS && tok_eos(v) == H_EOS && tok_unk(v) == H_UNK && tok_pad(v) == -1);
    CHECK(tok_add_bos(v) == 1 && tok_add_eos(v) == 0);
    CHECK(tok_is_control(v, H_BOS) && !tok_is_control(v, H_A) && !tok_is_control(v, 9999));
    CHECK(tok_is_byte(v, H_E4) && !tok_is_byte(v, H_A));
    CHECK(tok_get_type(v, H_USER) == TOK_TYPE_USER_DEFINED);
    CHECK(tok_find(v, SP "ab", strlen(SP "ab")) == H_SPAB);
    CHECK(tok_find(v, "zz", 2) == -1);
    size_t plen = 0;
    CHECK(strcmp(tok_piece(v, H_SPA, &plen), SP "a") == 0 && plen == 4);
    CHECK(tok_piece(v, -1, NULL) == NULL && tok_piece(v, H_COUNT, NULL) == NULL);
    CHECK(tok_score(v, H_AB) == -1.0f);

    /* Highest score first: ab (-1) before bc (-2) and _a (-5); then abc (-3) beats _ab (-4). */
    expect_encode(v, "abc", 0, (const int32_t[]){H_SP, H_ABC}, 2);
    /* BOS, and nothing but BOS for empty text (no dummy prefix without text). */
    expect_encode(v, "abc", 1, (const int32_t[]){H_BOS, H_SP, H_ABC}, 3);
    expect_encode(v, "", 1, (const int32_t[]){H_BOS}, 1);
    expect_encode(v, "", 0, NULL, 0);
    /* "ab" then _ab (-4) is the only pair left. */
    expect_encode(v, "ab", 0, (const int32_t[]){H_SPAB}, 1);
    /* Spaces become U+2581; "a" after a space merges into _a. */
    expect_encode(v, "c a", 0, (const int32_t[]){H_SP, H_C, H_SPA}, 3);
    /* Equal scores: the leftmost pair wins, so "aaa" is aa + a, not a + aa. */
    expect_encode(v, "caaa", 0, (const int32_t[]){H_SP, H_C, H_AA, H_A}, 4);
    /* Control text is not produced from plain text: "<s" + ">" stays two pieces. */
    expect_encode(v, "<s>", 0, (const int32_t[]){H_SP, H_LTS, H_GT}, 3);
    /* Unused pieces are not produced either. */
    expect_encode(v, "xy", 0, (const int32_t[]){H_SP, H_X, H_Y}, 3);
    /* A user-defined piece is taken whole and never merged with its neighbours. */
    expect_encode(v, "a<|u|>b", 0, (const int32_t[]){H_SPA, H_USER, H_B}, 3);
    /* Byte fallback for a character not in the vocab; one <unk> when a byte token is
     * missing (U+00E9 is C3 A9, and there is no <0xC3>). */
    expect_encode(v, "\xe4\xbd\xa0", 0, (const int32_t[]){H_SP, H_E4, H_BD, H_A0}, 4);
    expect_encode(v, "\xc3\xa9" "c", 0, (const int32_t[]){H_SP, H_UNK, H_C}, 3);

    /* Capacity protocol: too small -> INVALID_ARG with the count, then a retry fits. */
    int32_t small[2];
    size_t n = 0;
    CHECK(tok_encode(v, "c a", 3, 1, small, 2, &n) == VKLLM_ERR_INVALID_ARG && n == 4);
    int32_t fit[4];
    CHECK_OK(tok_encode(v, "c a", 3, 1, fit, 4, &n));
    CHECK(n == 4 && fit[0] == H_BOS && fit[3] == H_SPA);

    /* Decoding: the dummy-prefix space goes, after an optional BOS; control -> "". */
    expect_decode(v, (const int32_t[]){H_BOS, H_SPAB, H_SPA, H_EOS}, 4, "ab a");
    expect_decode(v, (const int32_t[]){H_SPA, H_SPA}, 2, "a a");
    expect_decode(v, (const int32_t[]){H_SP, H_SPA}, 2, " a");
    expect_decode(v, (const int32_t[]){H_A, H_SPA}, 2, "a a");
    expect_decode(v, (const int32_t[]){H_E4, H_BD, H_A0, H_CTRL}, 4, "\xe4\xbd\xa0");
    expect_decode(v, (const int32_t[]){H_C, H_UNK}, 2, "c \xe2\x81\x87 ");
    size_t dlen = 0;
    char dbuf[8];
    CHECK(tok_decode(v, (const int32_t[]){H_A, 999}, 2, dbuf, sizeof dbuf, &dlen) ==
          VKLLM_ERR_INVALID_ARG);
    CHECK(tok_decode(v, (const int32_t[]){H_SPA, H_SPA, H_SPA}, 3, dbuf, 5, &dlen) ==
              VKLLM_ERR_INVALID_ARG &&
          dlen == 5);
    CHECK_OK(tok_decode(v, (const int32_t[]){H_SPA, H_SPA, H_SPA}, 3, dbuf, 6, &dlen));
    CHECK(dlen == 5 && strcmp(dbuf, "a a a") == 0);

    /* Stream: a character split over byte tokens comes out once, whole. */
    sink s;
    memset(&s, 0, sizeof s);
    tok_stream st;
    tok_stream_init(&st, v, 1, sink_emit, &s);
    CHECK_OK(tok_stream_push(&st, H_BOS));
    CHECK_OK(tok_stream_push(&st, H_SPA));
    CHECK(s.calls == 1 && s.len == 1);
    CHECK_OK(tok_stream_push(&st, H_E4));
    CHECK_OK(tok_stream_push(&st, H_BD));
    CHECK(s.calls == 1 && s.len == 1);
    CHECK_OK(tok_stream_push(&st, H_A0));
    CHECK(s.calls == 2 && s.len == 4);
    /* A character that can never complete becomes U+FFFD; the breaking byte is kept. */
    CHECK_OK(tok_stream_push(&st, H_E4));
    CHECK_OK(tok_stream_push(&st, H_C));
    /* Flush emits an incomplete tail as U+FFFD. */
    CHECK_OK(tok_stream_push(&st, H_E4));
    CHECK_OK(tok_stream_push(&st, H_BD));
    CHECK_OK(tok_stream_flush(&st));
    /* A piece longer than the stream's buffer arrives in several whole-character chunks. */
    int calls_before = s.calls;
    CHECK_OK(tok_stream_push(&st, H_LONG));
    CHECK(s.calls - calls_before >= 2);
    CHECK(s.buf && memcmp(s.buf, "a\xe4\xbd\xa0\xef\xbf\xbd" "c\xef\xbf\xbd", 11) == 0);
    CHECK(s.len == 11 + 210 && s.buf && memcmp(s.buf + 11, g_long_piece, 210) == 0);
    CHECK(s.bad_chunks == 0 && s.empty_chunks == 0);
    CHECK(tok_stream_push(&st, -3) == VKLLM_ERR_INVALID_ARG);
    free(s.buf);

    /* An emit callback's failure stops the push and is returned. */
    tok_stream_init(&st, v, 0, NULL, NULL);
    CHECK_OK(tok_stream_push(&st, H_A)); /* no callback: text is dropped */
    tok_vocab_free(v);

    /* Without types: specials become control/unknown and <0xNN> pieces become bytes. */
    v = NULL;
    CHECK_OK(make_hand_vocab(&v, 0, 1));
    if (v) {
        CHECK(tok_is_control(v, H_BOS) && tok_get_type(v, H_UNK) == TOK_TYPE_UNKNOWN);
        CHECK(tok_is_byte(v, H_BD) && tok_get_type(v, H_CTRL) == TOK_TYPE_NORMAL);
        expect_encode(v, "\xe4\xbd\xa0", 0, (const int32_t[]){H_SP, H_E4, H_BD, H_A0}, 4);
        expect_decode(v, (const int32_t[]){H_BOS, H_SPA, H_E4, H_BD, H_A0}, 5, "a\xe4\xbd\xa0");
        tok_vocab_free(v);
    }

    /* Without the dummy prefix nothing is prepended, and decoding keeps every space. */
    v = NULL;
    CHECK_OK(make_hand_vocab(&v, 1, 0));
    if (v) {
        CHECK(tok_add_space_prefix(v) == 0);
        expect_encode(v, "abc", 0, (const int32_t[]){H_ABC}, 1);
        expect_encode(v, "c a", 0, (const int32_t[]){H_C, H_SPA}, 2);
        expect_decode(v, (const int32_t[]){H_BOS, H_SPA, H_C}, 3, " ac");
        check_round_trip(v, " a<|u|>bc", 9, "no-prefix vocab");
        tok_vocab_free(v);
    }
}

static vkllm_status cancel_emit(void *user, const char *text, size_t len) {
    (void)user;
    (void)text;
    (void)len;
    return VKLLM_ERR_CANCELLED;
}

static void test_create_errors(void) {
    const char *pieces[3] = {"<unk>", "<0xZZ>", "a"};
    int32_t types[3] = {TOK_TYPE_UNKNOWN, TOK_TYPE_NORMAL, TOK_TYPE_NORMAL};
    tok_vocab_desc d;
    memset(&d, 0, sizeof d);
    d.n_tokens = 3;
    d.pieces = pieces;
    d.types = types;
    d.bos_id = d.eos_id = d.pad_id = -1;
    d.unk_id = 0;
    d.add_space_prefix = 1;
    tok_vocab *v = NULL;
    CHECK_OK(tok_vocab_create(&d, &v));
    if (v) {
        /* No BOS in this vocab: asking for one is the caller's mistake. */
        size_t n = 0;
        int32_t ids[4];
        CHECK(tok_encode(v, "a", 1, 1, ids, 4, &n) == VKLLM_ERR_INVALID_ARG);
        /* No byte tokens: unknown characters become <unk>. */
        CHECK_OK(tok_encode(v, "a\xe4\xbd\xa0", 4, 0, ids, 4, &n));
        CHECK(n == 3 && ids[0] == 0 && ids[1] == 2 && ids[2] == 0); /* "_" is unknown too */
        tok_stream s;
        tok_stream_init(&s, v, 0, cancel_emit, NULL);
        CHECK(tok_stream_push(&s, 2) == VKLLM_ERR_CANCELLED);
        tok_vocab_free(v);
    }
    types[1] = TOK_TYPE_BYTE; /* "<0xZZ>" is no byte piece */
    CHECK(tok_vocab_create(&d, &v) == VKLLM_ERR_BAD_FILE && v == NULL);
    types[1] = 7;
    CHECK(tok_vocab_create(&d, &v) == VKLLM_ERR_BAD_FILE);
    types[1] = TOK_TYPE_NORMAL;
    d.eos_id = 3;
    CHECK(tok_vocab_create(&d, &v) == VKLLM_ERR_BAD_FILE);
    d.eos_id = -1;
    d.add_bos = 1; /* without a BOS id */
    CHECK(tok_vocab_create(&d, &v) == VKLLM_ERR_BAD_FILE);
    d.add_bos = 0;
    float scores[3] = {0, 0, 0};
    scores[2] = strtof("nan", NULL);
    d.scores = scores;
    CHECK(tok_vocab_create(&d, &v) == VKLLM_ERR_BAD_FILE);
    d.scores = NULL;
    d.unk_id = -1;
    CHECK_OK(tok_vocab_create(&d, &v));
    if (v) {
        /* Neither byte tokens nor <unk>: nothing can stand for the character. */
        size_t n = 0;
        int32_t ids[4];
        CHECK(tok_encode(v, "\xe4\xbd\xa0", 3, 0, ids, 4, &n) == VKLLM_ERR_INVALID_ARG);
        tok_vocab_free(v);
    }
}

/* ------------------------------------------------- slow reference merger ---- */

/* The definition, without a queue: rescan every adjacent pair, merge the best-scoring one
 * (leftmost on ties), repeat. O(n^2); only for checking the fast path on modest inputs. */
static size_t ref_encode(const tok_vocab *v, const char *text, size_t len, int32_t *out) {
    size_t cap = 3 * len + 3, blen = 0;
    char *buf = malloc(cap);
    size_t *off = malloc((cap + 1) * sizeof *off); /* symbol start offsets */
    if (!buf || !off) {
        free(buf);
        free(off);
        return (size_t)-1;
    }
    memcpy(buf, SP, 3);
    blen = 3;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(buf + blen, SP, 3);
            blen += 3;
        } else {
            buf[blen++] = text[i];
        }
    }
    size_t ns = 0;
    for (size_t i = 0; i < blen;) {
        off[ns++] = i;
        unsigned char b = (unsigned char)buf[i];
        size_t m = b < 0xC0 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
        i += m < blen - i ? m : blen - i;
    }
    off[ns] = blen;
    for (;;) {
        size_t best = (size_t)-1;
        float best_score = 0;
        for (size_t i = 0; i + 1 < ns; i++) {
            int32_t id = tok_find(v, buf + off[i], off[i + 2] - off[i]);
            if (id < 0) continue;
            tok_type t = tok_get_type(v, id);
            if (t != TOK_TYPE_NORMAL && t != TOK_TYPE_USER_DEFINED) continue;
            if (best == (size_t)-1 || tok_score(v, id) > best_score) {
                best = i;
                best_score = tok_score(v, id);
            }
        }
        if (best == (size_t)-1) break;
        memmove(off + best + 1, off + best + 2, (ns - best - 1) * sizeof *off);
        ns--;
    }
    size_t n = 0;
    for (size_t i = 0; i < ns; i++) {
        int32_t id = tok_find(v, buf + off[i], off[i + 1] - off[i]);
        tok_type t = id >= 0 ? tok_get_type(v, id) : TOK_TYPE_UNDEFINED;
        if (id >= 0 && (t == TOK_TYPE_NORMAL || t == TOK_TYPE_USER_DEFINED)) {
            out[n++] = id;
        } else {
            for (size_t k = off[i]; k < off[i + 1]; k++) {
                char piece[8];
                snprintf(piece, sizeof piece, "<0x%02X>", (unsigned)(unsigned char)buf[k]);
                out[n++] = tok_find(v, piece, 6);
            }
        }
    }
    free(buf);
    free(off);
    return n;
}

/* Random text from a mix of ASCII, spaces, Cyrillic, CJK and emoji (the latter two mostly
 * through byte fallback). */
static size_t random_text(th_rng *r, char *buf, size_t target) {
    static const char *const alphabet[] = {
        "a", "e", "t", "h", "n", "s", "o", " ", " ", " ", "  ", "\n", "\t", "1", "3", ".",
        ",", "'", "!", "The", "ing", "the", " and", "\xd0\xbd", "\xd0\xb5", "\xd1\x89",
        "\xe6\x88\x91", "\xe5\xb7\xa5", "\xf0\x9f\xa6\x99", "\xf0\x9f\x98\x81",
        "\xe2\x9c\x85", "\xc3\xbc", "<s>", "</s>", "<0x41>",
    };
    size_t n = 0;
    while (n + 8 < target) {
        const char *a = alphabet[th_next(r) % (sizeof alphabet / sizeof alphabet[0])];
        size_t k = strlen(a);
        memcpy(buf + n, a, k);
        n += k;
    }
    buf[n] = 0;
    return n;
}

static void test_against_reference(const tok_vocab *v, const char *label) {
    th_rng r = {0x70c3};
    char text[1200];
    int32_t *want = malloc(4 * sizeof text * sizeof *want);
    if (!want) return;
    int mismatches = 0;
    for (int iter = 0; iter < 60; iter++) {
        size_t len = random_text(&r, text, 40 + (size_t)iter * 18);
        size_t nwant = ref_encode(v, text, len, want), n = 0;
        int32_t *got = encode_all(v, text, len, 0, &n);
        if (!got || !ids_equal(got, n, want, nwant)) {
            if (mismatches++ == 0) {
                fprintf(stderr, "  %s: text '%s'\n", label, text);
                print_ids("reference", want, nwant);
                if (got) print_ids("tok_encode", got, n);
            }
        }
        if (iter % 10 == 0) check_round_trip(v, text, len, label);
        free(got);
    }
    /* Long runs of one character: many equal-score pairs, where only the leftmost rule
     * decides (runs of U+2581 have several pieces tied at -1e9 in the LLaMA vocab). */
    static const char *const runs[] = {"a", " ", "3", "!", "\xe2\x96\x81"};
    for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
        size_t len = 0, step = strlen(runs[k]);
        while (len + step <= 900) {
            memcpy(text + len, runs[k], step);
            len += step;
        }
        size_t nwant = ref_encode(v, text, len, want), n = 0;
        int32_t *got = encode_all(v, text, len, 0, &n);
        if (!got || !ids_equal(got, n, want, nwant)) {
            if (mismatches++ == 0) fprintf(stderr, "  %s: run of '%s' differs\n", label, runs[k]);
        }
        free(got);
    }
    CHECK_MSG(mismatches == 0, "%s: %d random texts or runs differ from the slow reference",
              label, mismatches);
    free(want);
}

/* ------------------------------------------ (a) published LLaMA vectors ---- */

/* Splits the .inp file the way llama.cpp's test-tokenizer-0 does: each input is followed by
 * "\n__ggml_vocab_test__\n", so the newline before the marker belongs to the separator and
 * an input that ends in a newline shows it as an empty line above the marker. */
static size_t split_inputs(char *raw, size_t size, char **inp, size_t *lens, size_t max) {
    static const char sep[] = "\n__ggml_vocab_test__\n";
    const size_t seplen = sizeof sep - 1;
    size_t n = 0, pos = 0;
    while (pos < size && n < max) {
        char *next = NULL;
        for (size_t i = pos; i + seplen <= size; i++) {
            if (memcmp(raw + i, sep, seplen) == 0) {
                next = raw + i;
                break;
            }
        }
        size_t end = next ? (size_t)(next - raw) : size;
        inp[n] = raw + pos;
        lens[n] = end - pos;
        n++;
        if (!next) break;
        pos = end + seplen;
    }
    return n;
}

#define MAX_CASES 64

static void test_llama_spm(void) {
    char path[1024], inp_path[1100], out_path[1100];
    if (!th_data_path("vocab-llama-spm/ggml-vocab-llama-spm.gguf", path, sizeof path)) return;
    snprintf(inp_path, sizeof inp_path, "%s.inp", path);
    snprintf(out_path, sizeof out_path, "%s.out", path);
    gguf_file *f = NULL;
    tok_vocab *v = NULL;
    CHECK_OK(gguf_open(path, &f));
    if (!f) return;
    CHECK_OK(tok_vocab_from_gguf(f, &v));
    gguf_close(f); /* the vocab keeps its own copy */
    if (!v) return;
    CHECK(tok_n_vocab(v) == 32000);
    CHECK(tok_bos(v) == 1 && tok_eos(v) == 2 && tok_unk(v) == 0 && tok_pad(v) == -1);
    CHECK(tok_add_bos(v) == 1 && tok_add_eos(v) == 0 && tok_add_space_prefix(v) == 1);
    CHECK(tok_is_control(v, 1) && tok_is_byte(v, 3 + 0x41));

    size_t isize = 0, osize = 0;
    char *raw = th_read_file(inp_path, &isize);
    char *outs = th_read_file(out_path, &osize);
    CHECK_MSG(raw && outs, "cannot read %s / %s", inp_path, out_path);
    if (raw && outs) {
        char *inp[MAX_CASES];
        size_t lens[MAX_CASES];
        size_t ninp = split_inputs(raw, isize, inp, lens, MAX_CASES);
        CHECK_MSG(ninp == 46, "%zu inputs in %s, want 46", ninp, inp_path);
        size_t nout = 0, passed = 0;
        char *line = outs;
        int32_t want[512];
        for (size_t c = 0; c < ninp && *line; c++) {
            char *eol = strchr(line, '\n');
            if (eol) *eol = 0;
            size_t nw = 0;
            for (char *p = line; *p && nw < 512;) {
                char *end;
                long id = strtol(p, &end, 10);
                if (end == p) break;
                want[nw++] = (int32_t)id;
                p = end;
            }
            nout++;
            size_t n = 0;
            int32_t *got = encode_all(v, inp[c], lens[c], 0, &n);
            if (got && ids_equal(got, n, want, nw)) {
                passed++;
            } else {
                fprintf(stderr, "  case %zu '%.*s'\n", c, (int)lens[c], inp[c]);
                print_ids("want", want, nw);
                if (got) print_ids("got", got, n);
            }
            check_round_trip(v, inp[c], lens[c], "llama-spm case");
            free(got);
            line = eol ? eol + 1 : line + strlen(line);
        }
        CHECK_MSG(nout == 46, "%zu expected lines in %s, want 46", nout, out_path);
        CHECK_MSG(passed == 46, "%zu of 46 published llama-spm cases match", passed);
        printf("llama-spm: %zu/46 published cases match\n", passed);
    }
    free(raw);
    free(outs);

    test_against_reference(v, "llama-spm random");

    /* Emoji and CJK that only exist as byte tokens: each push of a non-final byte must stay
     * silent and the character must come out in one piece. */
    {
        static const char text[] = "\xf0\x9f\xa6\x99\xf0\x9f\x98\x81 \xe5\xa4\xa9\xef\xbd\x9e";
        size_t n = 0;
        int32_t *ids = encode_all(v, text, strlen(text), 1, &n);
        size_t n_byte = 0;
        for (size_t i = 0; ids && i < n; i++) n_byte += tok_is_byte(v, ids[i]) != 0;
        CHECK_MSG(ids && n_byte >= 8, "expected byte fallback for the emoji, got %zu byte tokens",
                  n_byte);
        sink s;
        memset(&s, 0, sizeof s);
        tok_stream st;
        tok_stream_init(&st, v, 1, sink_emit, &s);
        int silent_ok = 1;
        for (size_t i = 0; ids && i < n; i++) {
            int before = s.calls;
            CHECK_OK(tok_stream_push(&st, ids[i]));
            /* A byte token that starts or continues a character (but does not end it) emits
             * nothing: the next token is a byte continuation. */
            if (tok_is_byte(v, ids[i]) && i + 1 < n && tok_is_byte(v, ids[i + 1])) {
                const char *nt = tok_token_text(v, ids[i + 1], NULL);
                if (((unsigned char)nt[0] & 0xC0) == 0x80 && s.calls != before) silent_ok = 0;
            }
        }
        CHECK_OK(tok_stream_flush(&st));
        CHECK(silent_ok);
        CHECK(s.bad_chunks == 0 && s.len == strlen(text) && memcmp(s.buf, text, s.len) == 0);
        free(s.buf);
        free(ids);
    }

    /* 100 KB of mixed text must encode well under a second (a rescanning merger would take
     * minutes here); a run of one repeated character is the queue's worst case. */
    th_rng r = {42};
    size_t big = 100 * 1024;
    /* Under valgrind (which preloads its vgpreload_*.so) everything runs ~20x slower. */
    const char *preload = getenv("LD_PRELOAD");
    double limit_ms = preload && strstr(preload, "vgpreload") ? 20000.0 : 1000.0;
    if (th_sanitized()) limit_ms = 20000.0; /* so are sanitizer builds */
    char *text = malloc(big + 16);
    if (text) {
        size_t len = random_text(&r, text, big);
        size_t n = 0;
        double t0 = vkl_now_ms();
        int32_t *ids = encode_all(v, text, len, 1, &n);
        double ms = vkl_now_ms() - t0;
        CHECK(ids != NULL && n > len / 8);
        printf("encode %zu bytes -> %zu tokens: %.1f ms\n", len, n, ms);
        CHECK_MSG(ms < limit_ms, "encoding 100 KB took %.1f ms", ms);
        if (ids) {
            size_t dlen = 0;
            char *d = decode_all(v, ids, n, &dlen);
            CHECK(d && dlen == len && memcmp(d, text, len) == 0);
            free(d);
        }
        free(ids);
        memset(text, 'a', big);
        t0 = vkl_now_ms();
        ids = encode_all(v, text, big, 0, &n);
        ms = vkl_now_ms() - t0;
        CHECK(ids != NULL);
        printf("encode %zu x 'a' -> %zu tokens: %.1f ms\n", big, n, ms);
        CHECK_MSG(ms < limit_ms, "encoding 100 KB of 'a' took %.1f ms", ms);
        free(ids);
        free(text);
    }
    tok_vocab_free(v);
}

/* ------------------------------------------------ (b) stories260K vectors ---- */

/* Just enough JSON for the vector file: objects, arrays, strings (with escapes), numbers,
 * true/false/null. The cursor stops at the first error (p == NULL). */
typedef struct json {
    const char *p, *end;
} json;

static void js_ws(json *j) {
    while (j->p && j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

static int js_eat(json *j, char c) {
    js_ws(j);
    if (j->p && j->p < j->end && *j->p == c) {
        j->p++;
        return 1;
    }
    return 0;
}

static size_t js_utf8(unsigned cp, char *o) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 63)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 63));
        o[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 63));
    o[2] = (char)(0x80 | (cp >> 6 & 63));
    o[3] = (char)(0x80 | (cp & 63));
    return 4;
}

static unsigned js_hex4(json *j) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = j->p < j->end ? *j->p++ : 0;
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) { j->p = NULL; return 0; }
        v = v * 16 + (unsigned)d;
    }
    return v;
}

/* A string into a malloc'd buffer (NULL on error); its length in *len. */
static char *js_string(json *j, size_t *len) {
    if (!js_eat(j, '"')) { j->p = NULL; return NULL; }
    char *o = malloc((size_t)(j->end - j->p) + 1);
    size_t n = 0;
    while (o && j->p && j->p < j->end && *j->p != '"') {
        char c = *j->p++;
        if (c != '\\') { o[n++] = c; continue; }
        if (j->p >= j->end) { j->p = NULL; break; }
        c = *j->p++;
        switch (c) {
        case 'n': o[n++] = '\n'; break;
        case 't': o[n++] = '\t'; break;
        case 'r': o[n++] = '\r'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'u': {
            unsigned cp = js_hex4(j);
            if (j->p && cp >= 0xD800 && cp < 0xDC00 && j->end - j->p >= 6 && j->p[0] == '\\' &&
                j->p[1] == 'u') {
                j->p += 2;
                unsigned lo = js_hex4(j);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (j->p) n += js_utf8(cp, o + n);
            break;
        }
        default: o[n++] = c; break; /* \" \\ \/ */
        }
    }
    if (!o || !j->p || j->p >= j->end) { free(o); j->p = NULL; return NULL; }
    j->p++;
    o[n] = 0;
    *len = n;
    return o;
}

static void js_skip(json *j) {
    js_ws(j);
    if (!j->p || j->p >= j->end) { j->p = NULL; return; }
    size_t len;
    if (*j->p == '"') {
        free(js_string(j, &len));
    } else if (js_eat(j, '{')) {
        if (js_eat(j, '}')) return;
        do {
            free(js_string(j, &len));
            if (!js_eat(j, ':')) { j->p = NULL; return; }
            js_skip(j);
        } while (j->p && js_eat(j, ','));
        if (!js_eat(j, '}')) j->p = NULL;
    } else if (js_eat(j, '[')) {
        if (js_eat(j, ']')) return;
        do js_skip(j); while (j->p && js_eat(j, ','));
        if (!js_eat(j, ']')) j->p = NULL;
    } else {
        while (j->p < j->end && strchr(",}] \n\r\t", *j->p) == NULL) j->p++;
    }
}

typedef struct vec_case {
    char *input;
    size_t len;
    int32_t ids[512];
    size_t n;
    int agree; /* 0 when the file marks the two implementations as disagreeing */
} vec_case;

/* Reads {"cases": [{"input": s, "ids": [..], "agree": b?}, ...], ...}. Returns the count. */
static size_t read_vectors(const char *text, size_t size, vec_case *cases, size_t max) {
    json j = {text, text + size};
    size_t nc = 0;
    if (!js_eat(&j, '{')) return 0;
    do {
        size_t klen;
        char *key = js_string(&j, &klen);
        if (!key || !js_eat(&j, ':')) { free(key); return 0; }
        if (strcmp(key, "cases") == 0 && js_eat(&j, '[')) {
            do {
                if (!js_eat(&j, '{') || nc == max) { free(key); return 0; }
                vec_case *c = &cases[nc++];
                memset(c, 0, sizeof *c);
                c->agree = 1;
                do {
                    size_t fl;
                    char *field = js_string(&j, &fl);
                    if (!field || !js_eat(&j, ':')) { free(field); free(key); return 0; }
                    if (strcmp(field, "input") == 0) {
                        c->input = js_string(&j, &c->len);
                    } else if (strcmp(field, "ids") == 0 && js_eat(&j, '[')) {
                        if (!js_eat(&j, ']')) {
                            do {
                                js_ws(&j);
                                char *end;
                                long id = strtol(j.p, &end, 10);
                                if (end == j.p || c->n == 512) { j.p = NULL; break; }
                                c->ids[c->n++] = (int32_t)id;
                                j.p = end;
                            } while (js_eat(&j, ','));
                            if (j.p && !js_eat(&j, ']')) j.p = NULL;
                        }
                    } else if (strcmp(field, "agree") == 0) {
                        js_ws(&j);
                        c->agree = j.p && j.p[0] == 't';
                        js_skip(&j);
                    } else {
                        js_skip(&j);
                    }
                    free(field);
                    if (!j.p) { free(key); return 0; }
                } while (js_eat(&j, ','));
                if (!js_eat(&j, '}') || !c->input) { free(key); return 0; }
            } while (js_eat(&j, ','));
            if (!js_eat(&j, ']')) { free(key); return 0; }
        } else {
            js_skip(&j);
        }
        free(key);
        if (!j.p) return 0;
    } while (js_eat(&j, ','));
    return js_eat(&j, '}') ? nc : 0;
}

/* The int array after "key" (and after "sub" inside it, when sub is not NULL). */
static size_t find_int_array(const char *text, const char *key, const char *sub, int32_t *ids,
                             size_t max) {
    char quoted[128];
    snprintf(quoted, sizeof quoted, "\"%s\"", key);
    const char *p = strstr(text, quoted);
    if (p && sub) {
        snprintf(quoted, sizeof quoted, "\"%s\"", sub);
        p = strstr(p, quoted);
    }
    if (!p || !(p = strchr(p, '['))) return 0;
    p++;
    size_t n = 0;
    while (n < max) {
        char *end;
        long id = strtol(p, &end, 10);
        if (end == p) break;
        ids[n++] = (int32_t)id;
        p = end;
        while (*p == ' ' || *p == '\n' || *p == ',') p++;
    }
    return *p == ']' ? n : 0;
}

/* Greedy generations from BOS, decoded whole and streamed, must equal the texts llama2.c
 * published; the prompt's encoding must equal the one llama2.c fed the model. */
static void test_stories260k_texts(const tok_vocab *v) {
    char gpath[1024], tpath[1024];
    if (!th_data_path("stories260K/stories260K_greedy_token_ids.derived.json", gpath, sizeof gpath))
        return;
    char *json_text = th_read_file(gpath, NULL);
    int32_t *ids = malloc(1024 * sizeof *ids);
    CHECK(json_text && ids);
    static const struct { const char *key, *file; } runs[] = {
        {"greedy_empty_prompt_steps200", "stories260K/stories260K_t0_n200.expected.txt"},
        {"greedy_empty_prompt_steps256", "stories260K/stories260K_t0_n256.expected.txt"},
    };
    for (size_t r = 0; json_text && ids && r < 2; r++) {
        if (!th_data_path(runs[r].file, tpath, sizeof tpath)) continue;
        size_t want_len = 0, len = 0;
        char *want = th_read_file(tpath, &want_len);
        size_t n = find_int_array(json_text, runs[r].key, NULL, ids, 1024);
        CHECK_MSG(want && n > 100 && ids[0] == 1, "%s: %zu ids", runs[r].key, n);
        char *got = n ? decode_all(v, ids, n, &len) : NULL;
        CHECK_MSG(want && got && len == want_len && memcmp(got, want, len) == 0,
                  "%s: decoded text differs from %s:\n%s", runs[r].key, runs[r].file,
                  got ? got : "(null)");
        sink s;
        CHECK(stream_all(v, ids, n, &s));
        CHECK(want && s.len == want_len && memcmp(s.buf, want, want_len) == 0);
        free(s.buf);
        free(got);
        free(want);
    }
    if (json_text && ids) {
        size_t n = find_int_array(json_text, "greedy_prompt_Once_upon_a_time_steps256", "ids", ids,
                                  1024);
        size_t ne = 0;
        int32_t *enc = encode_all(v, "Once upon a time", 16, 1, &ne);
        CHECK_MSG(enc && n > ne && ids_equal(enc, ne, ids, ne),
                  "encode('Once upon a time') with BOS differs from llama2.c's prompt ids");
        free(enc);
    }
    free(ids);
    free(json_text);
}

static void test_stories260k(void) {
    char path[1024], vec_path[1024];
    if (!th_data_path("stories260K/stories260K.gguf", path, sizeof path)) return;
    if (!th_data_path("stories260K/tok512_encode_vectors.derived.json", vec_path, sizeof vec_path))
        return;
    gguf_file *f = NULL;
    tok_vocab *v = NULL;
    CHECK_OK(gguf_open(path, &f));
    if (!f) return;
    CHECK_OK(tok_vocab_from_gguf(f, &v));
    gguf_close(f);
    if (!v) return;
    CHECK(tok_n_vocab(v) == 512 && tok_bos(v) == 1 && tok_eos(v) == 2);
    CHECK(tok_pad(v) == -1); /* stored as UINT32_MAX: none */

    size_t size = 0;
    char *text = th_read_file(vec_path, &size);
    CHECK(text != NULL);
    vec_case *cases = calloc(MAX_CASES, sizeof *cases);
    size_t nc = text && cases ? read_vectors(text, size, cases, MAX_CASES) : 0;
    CHECK_MSG(nc == 52, "read %zu cases from %s, want 52", nc, vec_path);
    size_t agreeing = 0, passed = 0;
    for (size_t i = 0; i < nc; i++) {
        vec_case *c = &cases[i];
        check_round_trip(v, c->input, c->len, "stories260K case");
        if (!c->agree) continue;
        agreeing++;
        size_t n = 0;
        int32_t *got = encode_all(v, c->input, c->len, 0, &n);
        if (got && ids_equal(got, n, c->ids, c->n)) {
            passed++;
        } else {
            fprintf(stderr, "  case %zu '%s'\n", i, c->input);
            print_ids("want", c->ids, c->n);
            if (got) print_ids("got", got, n);
        }
        free(got);
    }
    CHECK_MSG(passed == agreeing && agreeing > 0, "%zu of %zu agreeing stories260K cases match",
              passed, agreeing);
    printf("stories260K: %zu/%zu agreeing cases match\n", passed, agreeing);

    test_stories260k_texts(v);

    test_against_reference(v, "stories260K random");
    for (size_t i = 0; cases && i < MAX_CASES; i++) free(cases[i].input);
    free(cases);
    free(text);
    tok_vocab_free(v);
}

/* ------------------------------------------------------ (d) bad GGUF vocabs ---- */

typedef struct gbuf {
    unsigned char *p;
    size_t n, cap;
    uint64_t nkv;
} gbuf;

static void gb_put(gbuf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = (b->n + n) * 2 + 256;
        unsigned char *p = realloc(b->p, cap);
        if (!p) return;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void gb_u32(gbuf *b, uint32_t v) { gb_put(b, &v, 4); }
static void gb_u64(gbuf *b, uint64_t v) { gb_put(b, &v, 8); }
static void gb_str(gbuf *b, const char *s) {
    gb_u64(b, strlen(s));
    gb_put(b, s, strlen(s));
}
static void gb_key(gbuf *b, const char *key, gguf_vtype t) {
    gb_str(b, key);
    gb_u32(b, (uint32_t)t);
    b->nkv++;
}

/* A header-only GGUF v3 with a tokenizer; the knobs break one thing at a time. */
typedef struct bad_spec {
    const char *model;
    uint64_t n_scores, n_types;
    uint32_t bos;
    int32_t type_of_1;
} bad_spec;

static vkllm_status vocab_from_spec(const bad_spec *s, tok_vocab **v) {
    static const char *const toks[4] = {"<unk>", "<s>", "</s>", SP "a"};
    gbuf kv = {0};
    gb_key(&kv, "general.architecture", GGUF_STRING);
    gb_str(&kv, "llama");
    gb_key(&kv, "tokenizer.ggml.model", GGUF_STRING);
    gb_str(&kv, s->model);
    gb_key(&kv, "tokenizer.ggml.tokens", GGUF_ARRAY);
    gb_u32(&kv, GGUF_STRING);
    gb_u64(&kv, 4);
    for (int i = 0; i < 4; i++) gb_str(&kv, toks[i]);
    if (s->n_scores) {
        gb_key(&kv, "tokenizer.ggml.scores", GGUF_ARRAY);
        gb_u32(&kv, GGUF_F32);
        gb_u64(&kv, s->n_scores);
        for (uint64_t i = 0; i < s->n_scores; i++) {
            float x = -(float)i;
            gb_put(&kv, &x, 4);
        }
    }
    if (s->n_types) {
        gb_key(&kv, "tokenizer.ggml.token_type", GGUF_ARRAY);
        gb_u32(&kv, GGUF_I32);
        gb_u64(&kv, s->n_types);
        for (uint64_t i = 0; i < s->n_types; i++) {
            int32_t t = i == 0 ? 2 : i == 1 ? s->type_of_1 : i == 2 ? 3 : 1;
            gb_put(&kv, &t, 4);
        }
    }
    gb_key(&kv, "tokenizer.ggml.bos_token_id", GGUF_U32);
    gb_u32(&kv, s->bos);
    gb_key(&kv, "tokenizer.ggml.padding_token_id", GGUF_U32);
    gb_u32(&kv, UINT32_MAX);

    gbuf file = {0};
    gb_u32(&file, 0x46554747u);
    gb_u32(&file, 3);
    gb_u64(&file, 0);
    gb_u64(&file, kv.nkv);
    gb_put(&file, kv.p, kv.n);
    free(kv.p);
    vkllm_status st = VKLLM_ERR_OUT_OF_MEMORY;
    gguf_file *f = NULL;
    *v = NULL;
    if (file.p && (st = gguf_open_memory(file.p, file.n, &f)) == VKLLM_OK) {
        st = tok_vocab_from_gguf(f, v);
        gguf_close(f);
    }
    free(file.p);
    return st;
}

static void test_bad_gguf(void) {
    const bad_spec good = {"llama", 4, 4, 1, 3};
    bad_spec s = good;
    tok_vocab *v = NULL;
    CHECK_OK(vocab_from_spec(&s, &v));
    if (v) {
        CHECK(tok_n_vocab(v) == 4 && tok_bos(v) == 1 && tok_eos(v) == -1 && tok_pad(v) == -1);
        CHECK(tok_add_bos(v) == 1 && tok_add_eos(v) == 0); /* defaults */
        CHECK(tok_score(v, 3) == -3.0f && tok_is_control(v, 1));
        int32_t ids[4];
        size_t n = 0;
        CHECK_OK(tok_encode(v, "a", 1, 1, ids, 4, &n));
        CHECK(n == 2 && ids[0] == 1 && ids[1] == 3);
        tok_vocab_free(v);
    }
    s.n_scores = 0;
    s.n_types = 0; /* both optional */
    CHECK_OK(vocab_from_spec(&s, &v));
    if (v) {
        CHECK(tok_score(v, 3) == 0.0f && tok_get_type(v, 3) == TOK_TYPE_NORMAL);
        CHECK(tok_is_control(v, 1)); /* BOS without types */
        tok_vocab_free(v);
    }

    s = good;
    s.model = "gpt2";
    CHECK(vocab_from_spec(&s, &v) == VKLLM_ERR_UNSUPPORTED && v == NULL);
    CHECK_MSG(strstr(vkllm_last_error(), "Llama-3") != NULL, "message: %s", vkllm_last_error());
    s.model = "bert";
    CHECK(vocab_from_spec(&s, &v) == VKLLM_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(vkllm_last_error(), "bert") != NULL, "message: %s", vkllm_last_error());

    s = good;
    s.n_scores = 3;
    CHECK(vocab_from_spec(&s, &v) == VKLLM_ERR_BAD_FILE && v == NULL);
    CHECK_MSG(strstr(vkllm_last_error(), "scores") != NULL, "message: %s", vkllm_last_error());
    s = good;
    s.n_types = 5;
    CHECK(vocab_from_spec(&s, &v) == VKLLM_ERR_BAD_FILE);
    CHECK_MSG(strstr(vkllm_last_error(), "token_type") != NULL, "message: %s",
              vkllm_last_error());
    s = good;
    s.bos = 4;
    CHECK(vocab_from_spec(&s, &v) == VKLLM_ERR_BAD_FILE);
    CHECK_MSG(strstr(vkllm_last_error(), "bos_token_id") != NULL, "message: %s",
              vkllm_last_error());
    s = good;
    s.type_of_1 = 9;
    CHECK(vocab_from_spec(&s, &v) == VKLLM_ERR_BAD_FILE);
    s = good;
    s.bos = UINT32_MAX; /* no BOS: add_bos then defaults to off */
    CHECK_OK(vocab_from_spec(&s, &v));
    if (v) {
        CHECK(tok_bos(v) == -1 && tok_add_bos(v) == 0);
        tok_vocab_free(v);
    }
}

int main(void) {
    test_handmade();
    test_create_errors();
    test_llama_spm();
    test_stories260k();
    test_bad_gguf();
    return th_finish();
}
