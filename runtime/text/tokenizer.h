/* SentencePiece-BPE tokenizer (GGUF `tokenizer.ggml.model = "llama"`): text -> token ids by
 * score-ordered pair merges with byte fallback, and ids -> text, whole or streamed. A vocab is
 * immutable once built, so one vocab may serve any number of threads at once. */
#ifndef VKLLM_TOKENIZER_H
#define VKLLM_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include "vkllm.h"
#include "runtime/format/gguf.h"

/* Values of tokenizer.ggml.token_type. */
typedef enum tok_type {
    TOK_TYPE_UNDEFINED = 0, /* seen in some converters' output; treated as normal */
    TOK_TYPE_NORMAL = 1,
    TOK_TYPE_UNKNOWN = 2,
    TOK_TYPE_CONTROL = 3,
    TOK_TYPE_USER_DEFINED = 4, /* matched whole in text, never merged with neighbours */
    TOK_TYPE_UNUSED = 5,
    TOK_TYPE_BYTE = 6, /* piece "<0xNN>": the raw byte NN */
} tok_type;

typedef struct tok_vocab tok_vocab;

/* Everything a vocab is built from. The arrays are copied; they need not outlive the call. */
typedef struct tok_vocab_desc {
    uint32_t n_tokens;
    const char *const *pieces; /* n_tokens piece texts, U+2581 standing for a space */
    const size_t *piece_lens;  /* byte length of each piece; NULL: pieces are NUL-terminated */
    const float *scores;       /* merge priority, higher first; NULL: all 0 */
    const int32_t *types;      /* tok_type values; NULL: all normal, except that bos/eos/pad
                                  become control, unk unknown and "<0xNN>" pieces byte */
    int32_t bos_id, eos_id, unk_id, pad_id; /* -1: the vocab has none */
    int add_bos;          /* what callers should pass to tok_encode by default */
    int add_eos;          /* callers append tok_eos() themselves when this is set */
    int add_space_prefix; /* SentencePiece's dummy prefix; 1 for every LLaMA vocab */
} tok_vocab_desc;

/* Validates d (ids in range, known types, finite scores) and builds the lookup tables.
 * VKLLM_ERR_BAD_FILE names the offending field; VKLLM_ERR_OUT_OF_MEMORY on allocation. */
vkllm_status tok_vocab_create(const tok_vocab_desc *d, tok_vocab **out);
/* Reads the tokenizer.ggml.* keys. Only model "llama" is accepted; "gpt2" (Llama 3 and other
 * byte-level BPE vocabs) and anything else give VKLLM_ERR_UNSUPPORTED. Malformed keys (wrong
 * types, array lengths that disagree, ids out of range) give VKLLM_ERR_BAD_FILE. */
vkllm_status tok_vocab_from_gguf(const gguf_file *f, tok_vocab **out);
void tok_vocab_free(tok_vocab *v);

int32_t tok_n_vocab(const tok_vocab *v);
int32_t tok_bos(const tok_vocab *v); /* -1 when absent, likewise below */
int32_t tok_eos(const tok_vocab *v);
int32_t tok_unk(const tok_vocab *v);
int32_t tok_pad(const tok_vocab *v);
int tok_add_bos(const tok_vocab *v);
int tok_add_eos(const tok_vocab *v);
int tok_add_space_prefix(const tok_vocab *v);

/* The stored piece of id (NUL-terminated, U+2581 for spaces, "<0x0A>" for byte tokens), its
 * length in *len when len is not NULL. NULL for an id out of range. */
const char *tok_piece(const tok_vocab *v, int32_t id, size_t *len);
float tok_score(const tok_vocab *v, int32_t id);
tok_type tok_get_type(const tok_vocab *v, int32_t id); /* TOK_TYPE_UNDEFINED if out of range */
int tok_is_control(const tok_vocab *v, int32_t id);    /* control tokens: BOS, EOS, ... */
int tok_is_byte(const tok_vocab *v, int32_t id);
/* Id of the piece with exactly these bytes, or -1. When several tokens share a text, the first
 * normal or user-defined one wins (that is the one encoding produces). */
int32_t tok_find(const tok_vocab *v, const char *piece, size_t len);

/* Encodes len bytes of text (any bytes; UTF-8 expected). Spaces become U+2581, a U+2581 is
 * prepended to non-empty text when the vocab says so, then the best-scoring adjacent pair
 * present in the vocab is merged until none is left. Characters absent from the vocab become
 * byte tokens, or one unknown token when a byte token is missing. BOS first when add_bos.
 * EOS is never added. Text that spells a control token ("<s>") is encoded as plain text.
 * *n_out is the token count; when it exceeds cap the call returns VKLLM_ERR_INVALID_ARG with
 * *n_out set, so callers can retry with a larger buffer (out may be NULL when cap is 0). */
vkllm_status tok_encode(const tok_vocab *v, const char *text, size_t len, int add_bos,
                        int32_t *out, size_t cap, size_t *n_out);

/* Text of one token as it appears in output: U+2581 -> ' ', byte tokens -> their byte,
 * control and unused tokens -> "", unknown tokens -> " \u2047 " (SentencePiece's surface).
 * Not NUL-terminated; length in *len. NULL for an id out of range. */
const char *tok_token_text(const tok_vocab *v, int32_t id, size_t *len);

/* Decodes a whole sequence into buf (NUL-terminated). When the vocab uses the dummy prefix,
 * the leading space of the first token that is not BOS is dropped, so that
 * decode(encode(x)) == x. Byte tokens are copied raw even when they do not form valid UTF-8.
 * *len is the text length without the terminator; when cap < *len + 1 the call returns
 * VKLLM_ERR_INVALID_ARG with *len set. An id out of range is VKLLM_ERR_INVALID_ARG. */
vkllm_status tok_decode(const tok_vocab *v, const int32_t *ids, size_t n, char *buf, size_t cap,
                        size_t *len);

/* Streaming decoder for generation: push ids one by one, text comes out through emit in
 * chunks that always end on a UTF-8 character boundary. Bytes of a character spread over
 * several byte tokens are held back until the character is complete; a sequence that can no
 * longer complete becomes U+FFFD. Returning anything but VKLLM_OK from emit stops the push and
 * is returned by it. The struct is plain data: no allocation, nothing to free. */
typedef vkllm_status (*tok_emit_fn)(void *user, const char *text, size_t len);

typedef struct tok_stream {
    const tok_vocab *v;
    tok_emit_fn emit;
    void *user;
    int strip_space;  /* drop the dummy-prefix space of the next non-BOS token */
    uint8_t pend[4];  /* bytes of an incomplete character */
    uint8_t npend;    /* bytes in pend */
    uint8_t need;     /* total length of the character in pend */
    size_t nbuf;      /* bytes in buf */
    char buf[128];    /* complete characters not yet emitted */
} tok_stream;

/* at_start: the ids pushed begin a sequence (as tok_decode sees it), so the dummy-prefix space
 * of the first non-BOS token is dropped. Pass 0 when continuing after text already shown. */
void tok_stream_init(tok_stream *s, const tok_vocab *v, int at_start, tok_emit_fn emit,
                     void *user);
vkllm_status tok_stream_push(tok_stream *s, int32_t id);
/* Emits held-back bytes (as U+FFFD: they never completed). The stream stays usable. */
vkllm_status tok_stream_flush(tok_stream *s);

#endif
