/* SentencePiece-BPE tokenizer: vocab tables (piece hash, byte-fallback ids, user-defined
 * pieces), encoding by a priority queue of adjacent-pair merges, and decoding, whole or
 * streamed at UTF-8 character boundaries. */
#include "runtime/text/tokenizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* Longer pieces exist in no real vocab; the cap keeps lengths in 32 bits. */
#define TOK_MAX_PIECE 65536u

/* U+2581 LOWER ONE EIGHTH BLOCK: SentencePiece's stand-in for a space. */
static const char k_space_mark[3] = {(char)0xE2, (char)0x96, (char)0x81};
/* SentencePiece's default surface for an unknown token: " \u2047 ". */
static const char k_unk_surface[5] = {' ', (char)0xE2, (char)0x81, (char)0x87, ' '};

typedef struct tok_entry {
    size_t piece_off;    /* into pieces arena, NUL-terminated */
    size_t text_off;     /* into texts arena: what decoding prints */
    uint32_t piece_len;
    uint32_t text_len;
    float score;
    uint8_t type;        /* tok_type */
    uint8_t matchable;   /* may be produced from plain text (normal or user-defined) */
    uint8_t lead_space;  /* text-type piece starting with U+2581: the dummy prefix can sit here */
} tok_entry;

struct tok_vocab {
    int32_t n;
    tok_entry *tok;      /* n entries */
    char *pieces;        /* arena of piece strings */
    char *texts;         /* arena of decoded texts */
    int32_t *table;      /* open-addressing hash piece -> id, -1 empty; size mask+1 */
    uint32_t mask;
    int32_t byte_id[256];  /* byte-fallback token of each byte, -1 if missing */
    int32_t *user;         /* user-defined ids sorted by first byte, then longest first */
    uint32_t user_first[257]; /* user[user_first[b] .. user_first[b+1]) start with byte b */
    int32_t bos, eos, unk, pad;
    int add_bos, add_eos, add_space_prefix;
};

/* ------------------------------------------------------------------ vocab ---- */

static uint32_t piece_hash(const char *s, size_t n) {
    uint64_t h = vkl_hash64(s, n, VKL_HASH_SEED);
    return (uint32_t)(h ^ (h >> 32));
}

static int32_t table_find(const tok_vocab *v, const char *s, size_t n) {
    uint32_t i = piece_hash(s, n) & v->mask;
    for (;;) {
        int32_t id = v->table[i];
        if (id < 0) return -1;
        const tok_entry *e = &v->tok[id];
        if (e->piece_len == n && memcmp(v->pieces + e->piece_off, s, n) == 0) return id;
        i = (i + 1) & v->mask;
    }
}

static void table_insert_if_absent(tok_vocab *v, int32_t id) {
    const tok_entry *e = &v->tok[id];
    const char *s = v->pieces + e->piece_off;
    uint32_t i = piece_hash(s, e->piece_len) & v->mask;
    for (;;) {
        int32_t cur = v->table[i];
        if (cur < 0) {
            v->table[i] = id;
            return;
        }
        const tok_entry *c = &v->tok[cur];
        if (c->piece_len == e->piece_len && memcmp(v->pieces + c->piece_off, s, e->piece_len) == 0)
            return; /* an earlier token owns this text */
        i = (i + 1) & v->mask;
    }
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Byte value of a "<0xNN>" piece, or -1. */
static int parse_byte_piece(const char *s, size_t n) {
    if (n != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
    int hi = hex_digit(s[3]), lo = hex_digit(s[4]);
    if (hi < 0 || lo < 0) return -1;
    return hi * 16 + lo;
}

static int is_text_type(uint8_t t) {
    return t == TOK_TYPE_NORMAL || t == TOK_TYPE_UNDEFINED || t == TOK_TYPE_USER_DEFINED;
}

/* Sorting user-defined ids: first byte ascending, then longest first so the first prefix
 * that matches at a position is the longest one (SentencePiece's rule). */
typedef struct user_key {
    uint8_t first;
    uint32_t len;
    int32_t id;
} user_key;

static int user_key_cmp(const void *a, const void *b) {
    const user_key *x = a, *y = b;
    if (x->first != y->first) return x->first < y->first ? -1 : 1;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : (x->id > y->id);
}

static vkllm_status check_special(const char *what, int32_t id, uint32_t n) {
    if (id < -1 || (id >= 0 && (uint32_t)id >= n))
        return vkl_err(VKLLM_ERR_BAD_FILE,
                       "tokenizer %s id %d is out of range (vocab has %u tokens): the "
                       "file's tokenizer metadata is inconsistent",
                       what, (int)id, (unsigned)n);
    return VKLLM_OK;
}

vkllm_status tok_vocab_create(const tok_vocab_desc *d, tok_vocab **out) {
    if (!d || !out) return vkl_err(VKLLM_ERR_INVALID_ARG, "tok_vocab_create: NULL argument");
    *out = NULL;
    uint32_t n = d->n_tokens;
    if (n == 0 || n > (uint32_t)INT32_MAX / 4)
        return vkl_err(VKLLM_ERR_BAD_FILE, "tokenizer has %u tokens (expected 1 to %d)",
                       (unsigned)n, INT32_MAX / 4);
    if (!d->pieces)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "tok_vocab_create: pieces is NULL");
    vkllm_status st;
    if ((st = check_special("BOS", d->bos_id, n)) != VKLLM_OK) return st;
    if ((st = check_special("EOS", d->eos_id, n)) != VKLLM_OK) return st;
    if ((st = check_special("unknown", d->unk_id, n)) != VKLLM_OK) return st;
    if ((st = check_special("padding", d->pad_id, n)) != VKLLM_OK) return st;
    if (d->add_bos && d->bos_id < 0)
        return vkl_err(VKLLM_ERR_BAD_FILE,
                       "tokenizer asks to add BOS but has no BOS token id: set "
                       "tokenizer.ggml.bos_token_id or add_bos_token = false");

    /* Sizes first, so every allocation is made once. */
    size_t piece_bytes = 0, text_bytes = 0;
    for (uint32_t i = 0; i < n; i++) {
        const char *p = d->pieces[i];
        if (!p) return vkl_err(VKLLM_ERR_BAD_FILE, "token %u: piece is NULL", (unsigned)i);
        size_t len = d->piece_lens ? d->piece_lens[i] : strlen(p);
        if (len > TOK_MAX_PIECE)
            return vkl_err(VKLLM_ERR_BAD_FILE, "token %u: piece of %zu bytes (limit %u)",
                           (unsigned)i, len, TOK_MAX_PIECE);
        if (d->types) {
            int32_t t = d->types[i];
            if (t < TOK_TYPE_UNDEFINED || t > TOK_TYPE_BYTE)
                return vkl_err(VKLLM_ERR_BAD_FILE,
                               "token %u: token_type %d is not one of 0..6 (normal, unknown, "
                               "control, user-defined, unused, byte)",
                               (unsigned)i, (int)t);
        }
        if (d->scores && isnan(d->scores[i]))
            return vkl_err(VKLLM_ERR_BAD_FILE, "token %u: score is NaN", (unsigned)i);
        piece_bytes += len + 1;
        text_bytes += len > sizeof k_unk_surface ? len : sizeof k_unk_surface;
    }

    tok_vocab *v = vkl_calloc(1, sizeof *v);
    if (!v) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "tokenizer: out of host memory");
    uint32_t tsize = 1;
    while (tsize < 2 * n) tsize *= 2;
    v->n = (int32_t)n;
    v->mask = tsize - 1;
    v->tok = vkl_calloc(n, sizeof *v->tok);
    v->pieces = vkl_malloc(piece_bytes);
    v->texts = vkl_malloc(text_bytes ? text_bytes : 1);
    v->table = vkl_malloc((size_t)tsize * sizeof *v->table);
    if (!v->tok || !v->pieces || !v->texts || !v->table) {
        tok_vocab_free(v);
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "tokenizer: out of host memory for %u tokens",
                       (unsigned)n);
    }
    v->bos = d->bos_id;
    v->eos = d->eos_id;
    v->unk = d->unk_id;
    v->pad = d->pad_id;
    v->add_bos = d->add_bos != 0;
    v->add_eos = d->add_eos != 0;
    v->add_space_prefix = d->add_space_prefix != 0;
    for (int b = 0; b < 256; b++) v->byte_id[b] = -1;
    for (uint32_t i = 0; i < tsize; i++) v->table[i] = -1;

    size_t poff = 0, toff = 0;
    uint32_t n_user = 0;
    for (uint32_t i = 0; i < n; i++) {
        tok_entry *e = &v->tok[i];
        const char *p = d->pieces[i];
        size_t len = d->piece_lens ? d->piece_lens[i] : strlen(p);
        memcpy(v->pieces + poff, p, len);
        v->pieces[poff + len] = 0;
        e->piece_off = poff;
        e->piece_len = (uint32_t)len;
        poff += len + 1;
        e->score = d->scores ? d->scores[i] : 0.0f;

        uint8_t type;
        if (d->types) {
            type = (uint8_t)d->types[i];
        } else if ((int32_t)i == d->unk_id) {
            type = TOK_TYPE_UNKNOWN;
        } else if ((int32_t)i == d->bos_id || (int32_t)i == d->eos_id || (int32_t)i == d->pad_id) {
            type = TOK_TYPE_CONTROL;
        } else if (parse_byte_piece(p, len) >= 0) {
            type = TOK_TYPE_BYTE;
        } else {
            type = TOK_TYPE_NORMAL;
        }
        e->type = type;
        e->matchable = is_text_type(type) && len > 0;
        if (type == TOK_TYPE_USER_DEFINED && len > 0) n_user++;

        /* Decoded text. */
        char *t = v->texts + toff;
        size_t tl = 0;
        if (is_text_type(type)) {
            for (size_t k = 0; k < len;) {
                if (k + 3 <= len && memcmp(p + k, k_space_mark, 3) == 0) {
                    t[tl++] = ' ';
                    k += 3;
                } else {
                    t[tl++] = p[k++];
                }
            }
            e->lead_space = len >= 3 && memcmp(p, k_space_mark, 3) == 0;
        } else if (type == TOK_TYPE_BYTE) {
            int byte = parse_byte_piece(p, len);
            if (byte < 0) {
                tok_vocab_free(v);
                return vkl_err(VKLLM_ERR_BAD_FILE,
                               "token %u has type byte but its piece is not <0xNN> (%zu bytes)",
                               (unsigned)i, len);
            }
            t[tl++] = (char)byte;
            if (v->byte_id[byte] < 0) v->byte_id[byte] = (int32_t)i;
        } else if (type == TOK_TYPE_UNKNOWN) {
            memcpy(t, k_unk_surface, sizeof k_unk_surface);
            tl = sizeof k_unk_surface;
        }
        e->text_off = toff;
        e->text_len = (uint32_t)tl;
        toff += tl;
    }

    /* Text-producible tokens first, so a control token never shadows a normal one. */
    for (uint32_t i = 0; i < n; i++)
        if (v->tok[i].matchable) table_insert_if_absent(v, (int32_t)i);
    for (uint32_t i = 0; i < n; i++)
        if (!v->tok[i].matchable) table_insert_if_absent(v, (int32_t)i);

    if (n_user) {
        user_key *keys = vkl_malloc((size_t)n_user * sizeof *keys);
        v->user = vkl_malloc((size_t)n_user * sizeof *v->user);
        if (!keys || !v->user) {
            free(keys);
            tok_vocab_free(v);
            return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "tokenizer: out of host memory");
        }
        uint32_t k = 0;
        for (uint32_t i = 0; i < n; i++) {
            const tok_entry *e = &v->tok[i];
            if (e->type != TOK_TYPE_USER_DEFINED || e->piece_len == 0) continue;
            /* Only the first token with a given text is reachable; skip the shadowed. */
            if (table_find(v, v->pieces + e->piece_off, e->piece_len) != (int32_t)i) continue;
            keys[k].first = (uint8_t)v->pieces[e->piece_off];
            keys[k].len = e->piece_len;
            keys[k].id = (int32_t)i;
            k++;
        }
        qsort(keys, k, sizeof *keys, user_key_cmp);
        uint32_t j = 0;
        for (uint32_t b = 0; b <= 256; b++) {
            while (j < k && keys[j].first < b) j++;
            v->user_first[b] = j;
        }
        v->user_first[256] = k;
        for (uint32_t i = 0; i < k; i++) v->user[i] = keys[i].id;
        free(keys);
    }
    *out = v;
    return VKLLM_OK;
}

void tok_vocab_free(tok_vocab *v) {
    if (!v) return;
    free(v->user);
    free(v->table);
    free(v->texts);
    free(v->pieces);
    free(v->tok);
    free(v);
}

int32_t tok_n_vocab(const tok_vocab *v) { return v->n; }
int32_t tok_bos(const tok_vocab *v) { return v->bos; }
int32_t tok_eos(const tok_vocab *v) { return v->eos; }
int32_t tok_unk(const tok_vocab *v) { return v->unk; }
int32_t tok_pad(const tok_vocab *v) { return v->pad; }
int tok_add_bos(const tok_vocab *v) { return v->add_bos; }
int tok_add_eos(const tok_vocab *v) { return v->add_eos; }
int tok_add_space_prefix(const tok_vocab *v) { return v->add_space_prefix; }

static int valid_id(const tok_vocab *v, int32_t id) { return id >= 0 && id < v->n; }

const char *tok_piece(const tok_vocab *v, int32_t id, size_t *len) {
    if (!valid_id(v, id)) return NULL;
    if (len) *len = v->tok[id].piece_len;
    return v->pieces + v->tok[id].piece_off;
}

const char *tok_token_text(const tok_vocab *v, int32_t id, size_t *len) {
    if (!valid_id(v, id)) return NULL;
    if (len) *len = v->tok[id].text_len;
    return v->texts + v->tok[id].text_off;
}

float tok_score(const tok_vocab *v, int32_t id) { return valid_id(v, id) ? v->tok[id].score : 0.0f; }

tok_type tok_get_type(const tok_vocab *v, int32_t id) {
    return valid_id(v, id) ? (tok_type)v->tok[id].type : TOK_TYPE_UNDEFINED;
}

int tok_is_control(const tok_vocab *v, int32_t id) {
    return valid_id(v, id) && v->tok[id].type == TOK_TYPE_CONTROL;
}

int tok_is_byte(const tok_vocab *v, int32_t id) {
    return valid_id(v, id) && v->tok[id].type == TOK_TYPE_BYTE;
}

int32_t tok_find(const tok_vocab *v, const char *piece, size_t len) {
    if (!v || (!piece && len)) return -1;
    return table_find(v, piece ? piece : "", len);
}

/* ------------------------------------------------------------------ GGUF ---- */

/* An optional special-token id. Converters write "none" as -1 or as UINT32_MAX. */
static vkllm_status read_special_id(const gguf_file *f, const char *key, uint64_t n_tokens,
                                    int32_t *out) {
    *out = -1;
    int64_t k = gguf_find_key(f, key);
    if (k < 0) return VKLLM_OK;
    gguf_vtype t = gguf_kv_type(f, (uint64_t)k);
    if (t == GGUF_U8 || t == GGUF_U16 || t == GGUF_U32 || t == GGUF_U64) {
        uint64_t u;
        vkllm_status st = gguf_get_u64(f, key, &u);
        if (st != VKLLM_OK) return st;
        if (u == UINT32_MAX || u == UINT64_MAX) return VKLLM_OK;
        if (u >= n_tokens)
            return vkl_err(VKLLM_ERR_BAD_FILE,
                           "%s = %llu is out of range: the vocab has %llu tokens", key,
                           (unsigned long long)u, (unsigned long long)n_tokens);
        *out = (int32_t)u;
        return VKLLM_OK;
    }
    if (t == GGUF_I8 || t == GGUF_I16 || t == GGUF_I32 || t == GGUF_I64) {
        int64_t i;
        vkllm_status st = gguf_get_i64(f, key, &i);
        if (st != VKLLM_OK) return st;
        if (i < -1 || (i >= 0 && (uint64_t)i >= n_tokens))
            return vkl_err(VKLLM_ERR_BAD_FILE,
                           "%s = %lld is out of range: the vocab has %llu tokens (-1 means none)",
                           key, (long long)i, (unsigned long long)n_tokens);
        *out = (int32_t)i;
        return VKLLM_OK;
    }
    return vkl_err(VKLLM_ERR_BAD_FILE, "%s has GGUF type %d, expected an integer token id", key,
                   (int)t);
}

static vkllm_status read_opt_bool(const gguf_file *f, const char *key, int dflt, int *out) {
    *out = dflt;
    if (gguf_find_key(f, key) < 0) return VKLLM_OK;
    return gguf_get_bool(f, key, out);
}

static int is_int_vtype(gguf_vtype t) {
    return t == GGUF_U8 || t == GGUF_I8 || t == GGUF_U16 || t == GGUF_I16 || t == GGUF_U32 ||
           t == GGUF_I32 || t == GGUF_U64 || t == GGUF_I64;
}

vkllm_status tok_vocab_from_gguf(const gguf_file *f, tok_vocab **out) {
    if (!f || !out) return vkl_err(VKLLM_ERR_INVALID_ARG, "tok_vocab_from_gguf: NULL argument");
    *out = NULL;
    char name[64];
    gguf_str model;
    if (gguf_find_key(f, "tokenizer.ggml.model") < 0)
        return vkl_err(VKLLM_ERR_BAD_FILE,
                       "the file has no tokenizer (tokenizer.ggml.model missing): use a GGUF "
                       "converted with its vocabulary");
    vkllm_status st = gguf_get_str(f, "tokenizer.ggml.model", &model);
    if (st != VKLLM_OK) return st;
    if (gguf_str_eq(model, "gpt2"))
        return vkl_err(VKLLM_ERR_UNSUPPORTED,
                       "tokenizer.ggml.model is \"gpt2\" (byte-level BPE, as in Llama 3): the "
                       "Llama-3 BPE tokenizer is not supported yet; only SentencePiece "
                       "(\"llama\") vocabularies work");
    if (!gguf_str_eq(model, "llama"))
        return vkl_err(VKLLM_ERR_UNSUPPORTED,
                       "tokenizer.ggml.model \"%s\" is not supported: only \"llama\" "
                       "(SentencePiece BPE) vocabularies work",
                       gguf_str_c(model, name, sizeof name));

    gguf_array toks, scores, types;
    if (gguf_find_key(f, "tokenizer.ggml.tokens") < 0)
        return vkl_err(VKLLM_ERR_BAD_FILE, "tokenizer.ggml.tokens is missing");
    if ((st = gguf_get_arr(f, "tokenizer.ggml.tokens", &toks)) != VKLLM_OK) return st;
    if (toks.type != GGUF_STRING)
        return vkl_err(VKLLM_ERR_BAD_FILE,
                       "tokenizer.ggml.tokens is an array of GGUF type %d, expected strings",
                       (int)toks.type);
    uint64_t n = toks.count;
    if (n == 0 || n > (uint64_t)INT32_MAX / 4)
        return vkl_err(VKLLM_ERR_BAD_FILE, "tokenizer.ggml.tokens has %llu entries",
                       (unsigned long long)n);
    int has_scores = gguf_find_key(f, "tokenizer.ggml.scores") >= 0;
    if (has_scores) {
        if ((st = gguf_get_arr(f, "tokenizer.ggml.scores", &scores)) != VKLLM_OK) return st;
        if (scores.type != GGUF_F32 && scores.type != GGUF_F64)
            return vkl_err(VKLLM_ERR_BAD_FILE,
                           "tokenizer.ggml.scores is an array of GGUF type %d, expected f32",
                           (int)scores.type);
        if (scores.count != n)
            return vkl_err(VKLLM_ERR_BAD_FILE,
                           "tokenizer.ggml.scores has %llu entries but tokenizer.ggml.tokens "
                           "has %llu: the file is inconsistent",
                           (unsigned long long)scores.count, (unsigned long long)n);
    }
    int has_types = gguf_find_key(f, "tokenizer.ggml.token_type") >= 0;
    if (has_types) {
        if ((st = gguf_get_arr(f, "tokenizer.ggml.token_type", &types)) != VKLLM_OK) return st;
        if (!is_int_vtype(types.type))
            return vkl_err(VKLLM_ERR_BAD_FILE,
                           "tokenizer.ggml.token_type is an array of GGUF type %d, expected "
                           "i32",
                           (int)types.type);
        if (types.count != n)
            return vkl_err(VKLLM_ERR_BAD_FILE,
                           "tokenizer.ggml.token_type has %llu entries but "
                           "tokenizer.ggml.tokens has %llu: the file is inconsistent",
                           (unsigned long long)types.count, (unsigned long long)n);
    }

    tok_vocab_desc d;
    memset(&d, 0, sizeof d);
    d.n_tokens = (uint32_t)n;
    if ((st = read_special_id(f, "tokenizer.ggml.bos_token_id", n, &d.bos_id)) != VKLLM_OK ||
        (st = read_special_id(f, "tokenizer.ggml.eos_token_id", n, &d.eos_id)) != VKLLM_OK ||
        (st = read_special_id(f, "tokenizer.ggml.unknown_token_id", n, &d.unk_id)) != VKLLM_OK ||
        (st = read_special_id(f, "tokenizer.ggml.padding_token_id", n, &d.pad_id)) != VKLLM_OK)
        return st;
    /* add_bos defaults to on (SentencePiece's LLaMA setting) only when there is a BOS. */
    if ((st = read_opt_bool(f, "tokenizer.ggml.add_bos_token", d.bos_id >= 0, &d.add_bos)) !=
            VKLLM_OK ||
        (st = read_opt_bool(f, "tokenizer.ggml.add_eos_token", 0, &d.add_eos)) != VKLLM_OK ||
        (st = read_opt_bool(f, "tokenizer.ggml.add_space_prefix", 1, &d.add_space_prefix)) !=
            VKLLM_OK)
        return st;
    if (d.add_eos && d.eos_id < 0)
        return vkl_err(VKLLM_ERR_BAD_FILE,
                       "tokenizer.ggml.add_eos_token is true but there is no eos_token_id");

    const char **pieces = vkl_malloc((size_t)n * sizeof *pieces);
    size_t *lens = vkl_malloc((size_t)n * sizeof *lens);
    float *sc = has_scores ? vkl_malloc((size_t)n * sizeof *sc) : NULL;
    int32_t *ty = has_types ? vkl_malloc((size_t)n * sizeof *ty) : NULL;
    if (!pieces || !lens || (has_scores && !sc) || (has_types && !ty)) {
        st = vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "tokenizer: out of host memory for %llu tokens",
                     (unsigned long long)n);
        goto done;
    }
    for (uint64_t i = 0; i < n; i++) {
        gguf_str s = gguf_arr_str(f, &toks, i);
        if (s.len > TOK_MAX_PIECE) {
            st = vkl_err(VKLLM_ERR_BAD_FILE, "token %llu: piece of %llu bytes (limit %u)",
                         (unsigned long long)i, (unsigned long long)s.len, TOK_MAX_PIECE);
            goto done;
        }
        pieces[i] = s.ptr ? s.ptr : "";
        lens[i] = (size_t)s.len;
        if (sc) sc[i] = (float)gguf_arr_num(&scores, i);
        if (ty) {
            double t = gguf_arr_num(&types, i);
            /* Clamped only so the cast is defined; tok_vocab_create reports anything
             * outside 0..6. */
            ty[i] = t < -1000.0 ? -1000 : t > 1000.0 ? 1000 : (int32_t)t;
        }
    }
    d.pieces = pieces;
    d.piece_lens = lens;
    d.scores = sc;
    d.types = ty;
    st = tok_vocab_create(&d, out);
done:
    free(ty);
    free(sc);
    free(lens);
    free(pieces);
    return st;
}

/* ----------------------------------------------------------------- encode ---- */

typedef struct tok_sym {
    int32_t prev, next; /* neighbours in the live list, -1 at the ends */
    uint32_t off, len;  /* bytes of the escaped text; len 0: merged into its left neighbour */
    int frozen;         /* a user-defined piece: never merged */
} tok_sym;

typedef struct tok_pair {
    float score;
    int32_t left, right;
    uint32_t len; /* combined length when queued; a mismatch later means the pair is stale */
} tok_pair;

typedef struct tok_heap {
    tok_pair *a;
    size_t n, cap;
} tok_heap;

/* Higher score first; equal scores: the leftmost pair, as SentencePiece does. */
static int pair_before(const tok_pair *x, const tok_pair *y) {
    if (x->score != y->score) return x->score > y->score;
    return x->left < y->left;
}

static int heap_push(tok_heap *h, tok_pair p) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        tok_pair *a = vkl_realloc(h->a, cap * sizeof *a);
        if (!a) return 0;
        h->a = a;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_before(&p, &h->a[parent])) break;
        h->a[i] = h->a[parent];
        i = parent;
    }
    h->a[i] = p;
    return 1;
}

static tok_pair heap_pop(tok_heap *h) {
    tok_pair top = h->a[0];
    tok_pair last = h->a[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && pair_before(&h->a[c + 1], &h->a[c])) c++;
        if (!pair_before(&h->a[c], &last)) break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (h->n) h->a[i] = last;
    return top;
}

typedef struct tok_enc {
    const tok_vocab *v;
    const char *buf; /* escaped text */
    tok_sym *sym;
    tok_heap heap;
} tok_enc;

/* Queues the merge of left and right when their concatenation is a producible piece. */
static int try_pair(tok_enc *e, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return 1;
    const tok_sym *l = &e->sym[left], *r = &e->sym[right];
    if (l->frozen || r->frozen) return 1;
    uint32_t len = l->len + r->len;
    int32_t id = table_find(e->v, e->buf + l->off, len);
    if (id < 0 || !e->v->tok[id].matchable) return 1;
    tok_pair p = {e->v->tok[id].score, left, right, len};
    return heap_push(&e->heap, p);
}

/* Bytes in the character that starts with lead (invalid leads count as one byte). */
static uint32_t utf8_len(uint8_t lead) {
    static const uint8_t by_high_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return by_high_nibble[lead >> 4];
}

/* Length of the longest user-defined piece at s, or 0. */
static uint32_t match_user(const tok_vocab *v, const char *s, size_t avail) {
    uint8_t b = (uint8_t)s[0];
    for (uint32_t i = v->user_first[b]; i < v->user_first[b + 1]; i++) {
        const tok_entry *t = &v->tok[v->user[i]];
        if (t->piece_len <= avail && memcmp(v->pieces + t->piece_off, s, t->piece_len) == 0)
            return t->piece_len;
    }
    return 0;
}

static void put_id(int32_t *out, size_t cap, size_t *n, int32_t id) {
    if (*n < cap) out[*n] = id;
    (*n)++;
}

vkllm_status tok_encode(const tok_vocab *v, const char *text, size_t len, int add_bos,
                        int32_t *out, size_t cap, size_t *n_out) {
    if (n_out) *n_out = 0;
    if (!v || !n_out || (!text && len) || (!out && cap))
        return vkl_err(VKLLM_ERR_INVALID_ARG, "tok_encode: NULL argument");
    size_t n = 0;
    if (add_bos) {
        if (v->bos < 0)
            return vkl_err(VKLLM_ERR_INVALID_ARG,
                           "tok_encode: BOS requested but the vocab has no BOS token");
        put_id(out, cap, &n, v->bos);
    }
    if (len == 0) goto finish;
    if (len > (UINT32_MAX - 3) / 3)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "tok_encode: text of %zu bytes is too long (limit %u)",
                       len, (UINT32_MAX - 3) / 3);

    size_t blen = 0;
    for (size_t i = 0; i < len; i++) blen += text[i] == ' ' ? 3 : 1;
    if (v->add_space_prefix) blen += 3;
    char *buf = vkl_malloc(blen);
    if (!buf) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "tok_encode: out of host memory");
    size_t k = 0;
    if (v->add_space_prefix) {
        memcpy(buf, k_space_mark, 3);
        k = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(buf + k, k_space_mark, 3);
            k += 3;
        } else {
            buf[k++] = text[i];
        }
    }

    /* Split into characters, user-defined pieces taken whole. Two passes: count, fill. */
    int has_user = v->user_first[256] > 0;
    size_t nsym = 0;
    for (size_t i = 0; i < blen; nsym++) {
        uint32_t m = has_user ? match_user(v, buf + i, blen - i) : 0;
        if (!m) m = utf8_len((uint8_t)buf[i]);
        i += m < blen - i ? m : blen - i;
    }
    tok_enc e = {v, buf, vkl_malloc(nsym * sizeof(tok_sym)), {NULL, 0, 0}};
    vkllm_status st = VKLLM_OK;
    if (!e.sym) {
        st = vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "tok_encode: out of host memory");
        goto cleanup;
    }
    size_t s = 0;
    for (size_t i = 0; i < blen; s++) {
        uint32_t m = has_user ? match_user(v, buf + i, blen - i) : 0;
        int frozen = m != 0;
        if (!m) m = utf8_len((uint8_t)buf[i]);
        if (m > blen - i) m = (uint32_t)(blen - i);
        e.sym[s].prev = (int32_t)s - 1;
        e.sym[s].next = s + 1 < nsym ? (int32_t)(s + 1) : -1;
        e.sym[s].off = (uint32_t)i;
        e.sym[s].len = m;
        e.sym[s].frozen = frozen;
        i += m;
    }

    for (size_t i = 0; i + 1 < nsym; i++) {
        if (!try_pair(&e, (int32_t)i, (int32_t)(i + 1))) goto oom;
    }
    while (e.heap.n) {
        tok_pair p = heap_pop(&e.heap);
        tok_sym *l = &e.sym[p.left], *r = &e.sym[p.right];
        /* Symbols only ever absorb their right neighbour, so a pair whose halves are alive
         * with the queued total length is still exactly this pair. */
        if (l->len == 0 || r->len == 0 || l->len + r->len != p.len) continue;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) e.sym[r->next].prev = p.left;
        if (!try_pair(&e, l->prev, p.left) || !try_pair(&e, p.left, l->next)) goto oom;
    }

    for (int32_t i = 0; i >= 0; i = e.sym[i].next) {
        const tok_sym *y = &e.sym[i];
        int32_t id = table_find(v, buf + y->off, y->len);
        if (id >= 0 && v->tok[id].matchable) {
            put_id(out, cap, &n, id);
            continue;
        }
        int all_bytes = 1;
        for (uint32_t b = 0; b < y->len; b++)
            if (v->byte_id[(uint8_t)buf[y->off + b]] < 0) all_bytes = 0;
        if (all_bytes) {
            for (uint32_t b = 0; b < y->len; b++)
                put_id(out, cap, &n, v->byte_id[(uint8_t)buf[y->off + b]]);
        } else if (v->unk >= 0) {
            put_id(out, cap, &n, v->unk);
        } else {
            st = vkl_err(VKLLM_ERR_INVALID_ARG,
                         "tok_encode: the character at escaped byte %u (first byte 0x%02X) is "
                         "not in the vocab, which has neither byte tokens for it nor an "
                         "unknown token",
                         (unsigned)y->off, (unsigned)(uint8_t)buf[y->off]);
            goto cleanup;
        }
    }
    goto cleanup;
oom:
    st = vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "tok_encode: out of host memory");
cleanup:
    free(e.heap.a);
    free(e.sym);
    free(buf);
    if (st != VKLLM_OK) return st;
finish:
    *n_out = n;
    if (n > cap)
        return vkl_err(VKLLM_ERR_INVALID_ARG,
                       "tok_encode: %zu tokens do not fit the buffer of %zu: retry with *n_out",
                       n, cap);
    return VKLLM_OK;
}

/* ----------------------------------------------------------------- decode ---- */

/* Text of id for output; *strip says whether the dummy-prefix space is still pending and
 * is cleared by the first token that is not BOS. */
static const char *piece_out(const tok_vocab *v, int32_t id, int *strip, size_t *len) {
    const tok_entry *e = &v->tok[id];
    const char *t = v->texts + e->text_off;
    *len = e->text_len;
    if (*strip && id != v->bos) {
        *strip = 0;
        if (e->lead_space) {
            t++;
            (*len)--;
        }
    }
    return t;
}

vkllm_status tok_decode(const tok_vocab *v, const int32_t *ids, size_t n, char *buf, size_t cap,
                        size_t *len) {
    if (len) *len = 0;
    if (!v || !len || (!ids && n) || (!buf && cap))
        return vkl_err(VKLLM_ERR_INVALID_ARG, "tok_decode: NULL argument");
    int strip = v->add_space_prefix;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!valid_id(v, ids[i]))
            return vkl_err(VKLLM_ERR_INVALID_ARG,
                           "tok_decode: token %zu is id %d, outside the vocab of %d", i,
                           (int)ids[i], (int)v->n);
        size_t tl;
        const char *t = piece_out(v, ids[i], &strip, &tl);
        if (total + tl < cap) memcpy(buf + total, t, tl);
        total += tl;
    }
    *len = total;
    if (total >= cap)
        return vkl_err(VKLLM_ERR_INVALID_ARG,
                       "tok_decode: %zu bytes of text (plus terminator) do not fit the buffer "
                       "of %zu: retry with *len + 1",
                       total, cap);
    buf[total] = 0;
    return VKLLM_OK;
}

void tok_stream_init(tok_stream *s, const tok_vocab *v, int at_start, tok_emit_fn emit,
                     void *user) {
    memset(s, 0, sizeof *s);
    s->v = v;
    s->emit = emit;
    s->user = user;
    s->strip_space = at_start && v->add_space_prefix;
}

static vkllm_status stream_emit(tok_stream *s) {
    if (!s->nbuf) return VKLLM_OK;
    size_t n = s->nbuf;
    s->nbuf = 0;
    return s->emit ? s->emit(s->user, s->buf, n) : VKLLM_OK;
}

/* Appends one whole character, emitting first if it would not fit. */
static vkllm_status stream_char(tok_stream *s, const uint8_t *c, size_t n) {
    if (s->nbuf + n > sizeof s->buf) {
        vkllm_status st = stream_emit(s);
        if (st != VKLLM_OK) return st;
    }
    memcpy(s->buf + s->nbuf, c, n);
    s->nbuf += n;
    return VKLLM_OK;
}

static const uint8_t k_replacement[3] = {0xEF, 0xBF, 0xBD}; /* U+FFFD */

/* Feeds one byte through a UTF-8 validator: a character that cannot complete becomes one
 * U+FFFD and the byte that broke it is looked at again as a fresh start. */
static vkllm_status stream_byte(tok_stream *s, uint8_t b) {
    vkllm_status st;
    if (s->npend) {
        uint8_t lo = 0x80, hi = 0xBF;
        if (s->npend == 1) { /* second byte: rule out overlongs, surrogates, > U+10FFFF */
            if (s->pend[0] == 0xE0) lo = 0xA0;
            if (s->pend[0] == 0xED) hi = 0x9F;
            if (s->pend[0] == 0xF0) lo = 0x90;
            if (s->pend[0] == 0xF4) hi = 0x8F;
        }
        if (b >= lo && b <= hi) {
            s->pend[s->npend++] = b;
            if (s->npend < s->need) return VKLLM_OK;
            s->npend = 0;
            return stream_char(s, s->pend, s->need);
        }
        s->npend = 0;
        if ((st = stream_char(s, k_replacement, 3)) != VKLLM_OK) return st;
    }
    if (b < 0x80) return stream_char(s, &b, 1);
    if (b >= 0xC2 && b <= 0xDF) s->need = 2;
    else if (b >= 0xE0 && b <= 0xEF) s->need = 3;
    else if (b >= 0xF0 && b <= 0xF4) s->need = 4;
    else return stream_char(s, k_replacement, 3);
    s->pend[0] = b;
    s->npend = 1;
    return VKLLM_OK;
}

vkllm_status tok_stream_push(tok_stream *s, int32_t id) {
    if (!s || !s->v) return vkl_err(VKLLM_ERR_INVALID_ARG, "tok_stream_push: NULL stream");
    if (!valid_id(s->v, id))
        return vkl_err(VKLLM_ERR_INVALID_ARG, "tok_stream_push: id %d outside the vocab of %d",
                       (int)id, (int)s->v->n);
    size_t tl;
    const char *t = piece_out(s->v, id, &s->strip_space, &tl);
    for (size_t i = 0; i < tl; i++) {
        vkllm_status st = stream_byte(s, (uint8_t)t[i]);
        if (st != VKLLM_OK) return st;
    }
    return stream_emit(s);
}

vkllm_status tok_stream_flush(tok_stream *s) {
    if (!s || !s->v) return vkl_err(VKLLM_ERR_INVALID_ARG, "tok_stream_flush: NULL stream");
    if (s->npend) {
        s->npend = 0;
        vkllm_status st = stream_char(s, k_replacement, 3);
        if (st != VKLLM_OK) return st;
    }
    return stream_emit(s);
}
