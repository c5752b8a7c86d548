/* libFuzzer target: the GGUF reader on arbitrary bytes, then everything that trusts the
 * header once it has opened: every value and tensor a caller can reach, the LLaMA
 * hyperparameters, the model description with its shape and type checks, the model size and
 * the tokenizer's vocabulary. Host code only; no device is opened. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/format/gguf.h"
#include "runtime/format/model.h"
#include "runtime/text/tokenizer.h"
#include "runtime/format/wtype.h"
#include "vkllm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The fuzzer treats an abort as a crash and keeps the input. */
#define REQUIRE(cond)                                                                    \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz_gguf: %s:%d: broken promise: %s (last error: %s)\n",   \
                    __FILE__, __LINE__, #cond, vkllm_last_error());                      \
            abort();                                                                     \
        }                                                                                \
    } while (0)

static volatile uint64_t g_sink; /* keeps the reads alive */

/* Every key, value, array element (up to a bound) and tensor; the first and last byte of
 * each tensor's data. An open file promises all of these are in bounds. */
static void walk(const gguf_file *f) {
    uint64_t sum = 0;
    char key[256];
    for (uint64_t i = 0; i < gguf_kv_count(f); i++) {
        gguf_str k = gguf_kv_key(f, i);
        if (k.len) sum += (uint8_t)k.ptr[0] + (uint8_t)k.ptr[k.len - 1];
        gguf_str_c(k, key, sizeof key);
        if (k.len >= sizeof key || memchr(k.ptr, 0, k.len)) continue; /* not findable by name */
        REQUIRE(gguf_find_key(f, key) == (int64_t)i);
        gguf_array a;
        gguf_str s;
        uint64_t u;
        int64_t i64;
        double d;
        float f32;
        int b;
        switch (gguf_kv_type(f, i)) {
        case GGUF_STRING:
            REQUIRE(gguf_get_str(f, key, &s) == VKLLM_OK);
            if (s.len) sum += (uint8_t)s.ptr[0] + (uint8_t)s.ptr[s.len - 1];
            break;
        case GGUF_ARRAY:
            REQUIRE(gguf_get_arr(f, key, &a) == VKLLM_OK);
            for (uint64_t j = 0; j < a.count && j < 4096; j++) {
                if (a.type == GGUF_STRING) {
                    s = gguf_arr_str(f, &a, j);
                    if (s.len) sum += (uint8_t)s.ptr[0] + (uint8_t)s.ptr[s.len - 1];
                } else {
                    d = gguf_arr_num(&a, j);
                    sum += d == d;
                }
            }
            if (a.count) (void)gguf_arr_str(f, &a, a.count - 1), (void)gguf_arr_num(&a, a.count - 1);
            break;
        case GGUF_F32:
        case GGUF_F64:
            REQUIRE(gguf_get_f64(f, key, &d) == VKLLM_OK);
            REQUIRE(gguf_get_f32(f, key, &f32) == VKLLM_OK);
            sum += d == d;
            break;
        case GGUF_BOOL:
            REQUIRE(gguf_get_bool(f, key, &b) == VKLLM_OK);
            sum += (uint64_t)b;
            break;
        default: /* the integer types: each getter either converts or refuses, never reads wild */
            if (gguf_get_u64(f, key, &u) == VKLLM_OK) sum += u;
            if (gguf_get_i64(f, key, &i64) == VKLLM_OK) sum += (uint64_t)i64;
            uint32_t u32;
            int32_t i32;
            if (gguf_get_u32(f, key, &u32) == VKLLM_OK) sum += u32;
            if (gguf_get_i32(f, key, &i32) == VKLLM_OK) sum += (uint32_t)i32;
            break;
        }
    }
    int has_data = gguf_has_data(f);
    for (uint64_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        REQUIRE(t != NULL);
        REQUIRE(t->n_dims >= 1 && t->n_dims <= GGUF_MAX_DIMS);
        REQUIRE(t->offset % gguf_alignment(f) == 0);
        REQUIRE(wtype_get(t->type) != NULL);
        char name[256];
        gguf_str_c(t->name, name, sizeof name);
        if (t->name.len < sizeof name && !memchr(t->name.ptr, 0, t->name.len))
            REQUIRE(gguf_find_tensor(f, name) == t);
        REQUIRE(has_data ? t->data != NULL : t->data == NULL);
        if (t->data && t->size)
            sum += ((const uint8_t *)t->data)[0] + ((const uint8_t *)t->data)[t->size - 1];
    }
    REQUIRE(gguf_tensor_at(f, gguf_tensor_count(f)) == NULL);
    g_sink += sum;
}

static void check_desc(const llama_model_desc *d) {
    const llama_hparams *hp = &d->hp;
    REQUIRE(d->token_embd && d->output_norm && d->output && d->layers);
    REQUIRE(d->token_embd->ne[0] == hp->n_embd && d->token_embd->ne[1] == hp->n_vocab);
    REQUIRE(!d->tied_output || d->output == d->token_embd);
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const llama_layer *L = &d->layers[l];
        REQUIRE(L->attn_norm && L->wq && L->wk && L->wv && L->wo && L->ffn_norm && L->ffn_gate &&
                L->ffn_up && L->ffn_down);
        REQUIRE(L->wk->ne[0] == hp->n_embd && L->wk->ne[1] == hp->kv_dim);
        REQUIRE(L->ffn_down->ne[0] == hp->n_ff && L->ffn_down->ne[1] == hp->n_embd);
    }
    uint64_t bytes = 0, params = 0;
    llama_model_size(d, &bytes, &params);
    REQUIRE(params > 0 && bytes > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_file *f = (gguf_file *)1; /* must come back NULL on failure */
    vkllm_status st = gguf_open_memory(data, size, &f);
    if (st != VKLLM_OK) {
        REQUIRE(f == NULL);
        REQUIRE(vkllm_last_error()[0] != 0);
        REQUIRE(st == VKLLM_ERR_BAD_FILE || st == VKLLM_ERR_UNSUPPORTED ||
                st == VKLLM_ERR_OUT_OF_MEMORY);
        return 0;
    }
    REQUIRE(f != NULL && gguf_file_size(f) == size);
    REQUIRE(gguf_data_offset(f) % gguf_alignment(f) == 0);
    walk(f);

    llama_hparams hp;
    if (llama_hparams_from_gguf(f, &hp) == VKLLM_OK) {
        REQUIRE(hp.head_dim * hp.n_head == hp.n_embd && hp.kv_dim == hp.head_dim * hp.n_head_kv);
        REQUIRE(hp.n_rot >= 2 && hp.n_rot <= hp.head_dim && hp.n_vocab >= 1);
        llama_model_desc *d = NULL;
        if (llama_model_load_desc(f, &d) == VKLLM_OK) {
            REQUIRE(d != NULL && d->file == f);
            check_desc(d);
            llama_model_free_desc(d);
        }
    }

    tok_vocab *v = NULL;
    if (tok_vocab_from_gguf(f, &v) == VKLLM_OK) {
        static const char text[] = " Hello world, \xc3\xa4\xe2\x96\x81<s>\xff";
        int32_t ids[64];
        size_t n = 0, len = 0;
        char out[512];
        if (tok_encode(v, text, sizeof text - 1, 1, ids, 64, &n) == VKLLM_OK) {
            for (size_t i = 0; i < n; i++) REQUIRE(ids[i] >= 0 && ids[i] < tok_n_vocab(v));
            (void)tok_decode(v, ids, n, out, sizeof out, &len);
        }
        for (int32_t id = 0; id < tok_n_vocab(v) && id < 512; id++) {
            size_t pl = 0;
            REQUIRE(tok_piece(v, id, &pl) != NULL);
            REQUIRE(tok_token_text(v, id, &pl) != NULL);
        }
        tok_vocab_free(v);
    }
    gguf_close(f);
    return 0;
}
