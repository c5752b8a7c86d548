/* The LLaMA model description: hyperparameters and tensor table of stories260K, synthetic
 * models of several shapes and every weight type (including the Q4_K_M mix and the sizes
 * of LLaMA-65B given in FORMATS.md), tied output, the metadata defaults, each refusal, and
 * a CPU forward smoke run on a synthetic model. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "synth_fixture.h"
#include "testkit/cpu_forward.h"
#include "testkit/cpu_ref.h"
#include "runtime/format/gguf.h"
#include "testkit/gguf_write.h"
#include "runtime/format/model.h"
#include "testkit/synth.h"
#include "runtime/text/tokenizer.h"
#include "runtime/format/wtype.h"
#include "vkllm.h"

static int has(const char *msg, const char *part) { return strstr(msg, part) != NULL; }

static int name_is(const gguf_tensor *t, const char *name) {
    return t && t->name.len == strlen(name) && memcmp(t->name.ptr, name, t->name.len) == 0;
}

static void small_opts(synth_opts *o) {
    synth_default_opts(o);
    o->dim = 64;
    o->n_layer = 2;
    o->n_ff = 160;
    o->n_head = 4;
    o->n_vocab = 300;
    o->n_ctx = 128;
    o->type = "f32";
}


/* ---------------------------------------------------------------- stories260K ---- */

static void test_stories(void) {
    char path[1024];
    if (!th_data_path("stories260K/stories260K.gguf", path, sizeof path)) return;
    gguf_file *f = NULL;
    llama_model_desc *m = NULL;
    CHECK_OK(gguf_open(path, &f));
    if (f) CHECK_OK(llama_model_load_desc(f, &m));
    if (!m) {
        gguf_close(f);
        return;
    }
    const llama_hparams *hp = &m->hp;
    CHECK(hp->n_embd == 64 && hp->n_layer == 5 && hp->n_ff == 172);
    CHECK(hp->n_head == 8 && hp->n_head_kv == 4 && hp->head_dim == 8 && hp->kv_dim == 32);
    CHECK(hp->n_rot == 8 && hp->n_ctx_train == 2048);
    CHECK(hp->n_vocab == 512); /* no llama.vocab_size: the token count */
    CHECK(hp->rope_freq_base == 10000.0f && hp->rope_freq_scale == 1.0f);
    CHECK(fabsf(hp->rms_eps - 1e-5f) < 1e-10f);
    CHECK(!m->tied_output && m->output != m->token_embd);
    CHECK(name_is(m->token_embd, "token_embd.weight"));
    CHECK(name_is(m->output, "output.weight") && m->output->ne[0] == 64 && m->output->ne[1] == 512);
    CHECK(name_is(m->output_norm, "output_norm.weight"));
    CHECK(name_is(m->layers[3].wk, "blk.3.attn_k.weight") && m->layers[3].wk->ne[1] == 32);
    CHECK(name_is(m->layers[4].ffn_down, "blk.4.ffn_down.weight") &&
          m->layers[4].ffn_down->ne[0] == 172 && m->layers[4].ffn_down->ne[1] == 64);
    CHECK(name_is(m->layers[0].attn_norm, "blk.0.attn_norm.weight"));
    CHECK(m->layers[2].wq->type == WTYPE_F32);

    /* Every tensor of the file is a weight of the model: sizes must agree with the file. */
    uint64_t bytes, params, file_bytes = 0;
    llama_model_size(m, &bytes, &params);
    for (uint64_t i = 0; i < gguf_tensor_count(f); i++) file_bytes += gguf_tensor_at(f, i)->size;
    CHECK(gguf_tensor_count(f) == 3 + 9 * 5);
    CHECK_MSG(params == 292800, "stories260K params %llu, expected 292800",
              (unsigned long long)params);
    CHECK(bytes == 4 * params && bytes == file_bytes);
    llama_model_free_desc(m);
    gguf_close(f);
}

/* ------------------------------------------------------------- synthetic shapes ---- */

typedef struct shape {
    uint32_t dim, layers, ff, heads, kv, vocab;
} shape;

static void test_shapes_and_types(void) {
    static const shape shapes[] = {
        {64, 2, 160, 4, 0, 300},   /* MHA, K-quant rows fall back to Q8_0 */
        {256, 2, 512, 8, 2, 400},  /* GQA 4:1 */
        {128, 1, 172, 2, 1, 260},  /* MQA, ffn 172: 32-block rows fall back to F16 */
    };
    static const char *types[] = {"f32",  "f16",  "bf16", "q8_0", "q4_0", "q4_1",
                                  "q5_0", "q5_1", "q4_K", "q5_K", "q6_K", "Q4_K_M"};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const shape *s = &shapes[si];
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            synth_opts o;
            small_opts(&o);
            o.dim = s->dim;
            o.n_layer = s->layers;
            o.n_ff = s->ff;
            o.n_head = s->heads;
            o.n_head_kv = s->kv;
            o.n_vocab = s->vocab;
            o.type = types[ti];
            o.seed = 7 + ti;
            loaded l;
            vkllm_status st = load_synth(&o, &l);
            CHECK_MSG(st == VKLLM_OK, "shape %zu type %s: %s", si, types[ti], th_last_error());
            if (st != VKLLM_OK) {
                unload(&l);
                continue;
            }
            const llama_hparams *hp = &l.m->hp;
            uint32_t kv = s->kv ? s->kv : s->heads;
            CHECK(hp->n_embd == s->dim && hp->n_layer == s->layers && hp->n_ff == s->ff);
            CHECK(hp->n_head == s->heads && hp->n_head_kv == kv && hp->n_vocab == s->vocab);
            CHECK(hp->head_dim == s->dim / s->heads && hp->kv_dim == kv * (s->dim / s->heads));
            CHECK(hp->n_rot == hp->head_dim && hp->n_ctx_train == 128 && !l.m->tied_output);

            /* The type each tensor must have, from the rules stated in synth.h. */
            uint32_t base = 0;
            int mix = 0;
            CHECK_OK(synth_parse_type(types[ti], &base, &mix));
            uint32_t block = wtype_get(base)->block;
            uint32_t want_dim = base, want_ff = base;
            if (s->dim % block) want_dim = block == 256 ? WTYPE_Q8_0 : WTYPE_F16;
            if (s->ff % block) want_ff = block == 256 && s->ff % 32 == 0 ? WTYPE_Q8_0 : WTYPE_F16;
            const llama_layer *L = &l.m->layers[0];
            if (!mix) {
                CHECK_MSG(L->wq->type == want_dim && L->ffn_gate->type == want_dim &&
                              L->wv->type == want_dim && l.m->output->type == want_dim &&
                              l.m->token_embd->type == want_dim,
                          "shape %zu type %s: wq %u, expected %u", si, types[ti], L->wq->type,
                          want_dim);
                CHECK_MSG(L->ffn_down->type == want_ff, "shape %zu type %s: ffn_down %u, want %u",
                          si, types[ti], L->ffn_down->type, want_ff);
            }
            CHECK(L->attn_norm->type == WTYPE_F32 && L->ffn_norm->type == WTYPE_F32);

            /* The weights decode to the distributions synth.c documents (f32: exact). */
            if (base == WTYPE_F32) {
                const float *e = l.m->token_embd->data;
                size_t n = (size_t)s->dim * s->vocab;
                double m1 = 0, m2 = 0;
                for (size_t i = 0; i < n; i++) m1 += e[i], m2 += (double)e[i] * e[i];
                m1 /= (double)n;
                double sd = sqrt(m2 / (double)n - m1 * m1);
                CHECK_MSG(fabs(m1) < 0.05 && fabs(sd - 1.0) < 0.05,
                          "token_embd mean %.3f std %.3f, expected 0 and 1", m1, sd);
                const float *wq = L->wq->data;
                n = (size_t)s->dim * s->dim;
                m2 = 0;
                for (size_t i = 0; i < n; i++) m2 += (double)wq[i] * wq[i];
                sd = sqrt(m2 / (double)n);
                CHECK_MSG(fabs(sd * sqrt(s->dim) - 1.0) < 0.05, "attn_q std %.4f, expected %.4f",
                          sd, 1.0 / sqrt(s->dim));
                const float *nw = L->attn_norm->data;
                int near1 = 1;
                for (size_t i = 0; i < s->dim; i++) near1 &= nw[i] >= 0.9f && nw[i] <= 1.1f;
                CHECK(near1);
            }
            unload(&l);
        }
    }
}

/* llama.cpp's Q4_K_M over 8 layers: layers 0, 3, 6, 7 get Q6_K for attn_v and ffn_down. */
static void test_q4_k_m(void) {
    synth_opts o;
    small_opts(&o);
    o.dim = 256;
    o.n_ff = 512;
    o.n_layer = 8;
    o.n_head = 4;
    o.type = "q4_K_M";
    loaded l;
    CHECK_OK(load_synth(&o, &l));
    if (l.m) {
        for (int il = 0; il < 8; il++) {
            const llama_layer *L = &l.m->layers[il];
            uint32_t more = (il == 0 || il == 3 || il == 6 || il == 7) ? WTYPE_Q6_K : WTYPE_Q4_K;
            CHECK_MSG(L->wv->type == more && L->ffn_down->type == more,
                      "layer %d: attn_v %u ffn_down %u, expected %u", il, L->wv->type,
                      L->ffn_down->type, more);
            CHECK(L->wq->type == WTYPE_Q4_K && L->wk->type == WTYPE_Q4_K &&
                  L->wo->type == WTYPE_Q4_K && L->ffn_gate->type == WTYPE_Q4_K &&
                  L->ffn_up->type == WTYPE_Q4_K);
        }
        CHECK(l.m->output->type == WTYPE_Q6_K && l.m->token_embd->type == WTYPE_Q4_K);
    }
    unload(&l);

    /* Tied: token_embd doubles as the output, so it takes the output's Q6_K. */
    o.tied = 1;
    CHECK_OK(load_synth(&o, &l));
    if (l.m) CHECK(l.m->tied_output && l.m->token_embd->type == WTYPE_Q6_K);
    unload(&l);
}

static void test_tied(void) {
    synth_opts o;
    small_opts(&o);
    o.tied = 1;
    o.type = "q8_0";
    loaded l;
    CHECK_OK(load_synth(&o, &l));
    if (l.m) {
        CHECK(l.m->tied_output && l.m->output == l.m->token_embd);
        CHECK(gguf_find_tensor(l.f, "output.weight") == NULL);
        uint64_t bytes, params;
        llama_model_size(l.m, &bytes, &params);
        uint64_t want = 300 * 64 + 64 + 2 * (2 * 64 + 2 * 64 * 64 + 2 * 64 * 64 + 3 * 64 * 160);
        CHECK_MSG(params == want, "tied params %llu, expected %llu", (unsigned long long)params,
                  (unsigned long long)want);
        uint64_t file_bytes = 0;
        for (uint64_t i = 0; i < gguf_tensor_count(l.f); i++)
            file_bytes += gguf_tensor_at(l.f, i)->size;
        CHECK(bytes == file_bytes);
    }
    unload(&l);
}

/* Header-only files of big shapes: parameter counts and the sizes FORMATS.md gives. */
static void test_big_headers(void) {
    synth_opts o;
    synth_default_opts(&o);
    o.header_only = 1;
    loaded l;
    CHECK_OK(load_synth(&o, &l));
    if (l.m) {
        uint64_t bytes, params;
        llama_model_size(l.m, &bytes, &params);
        CHECK_MSG(params == 542148608ull, "benchmark model: %llu params, expected 542148608",
                  (unsigned long long)params);
        /* Q4_0 everywhere but the 17 norm vectors. */
        CHECK(bytes == (542148608ull - 17 * 2048) / 32 * 18 + 17 * 2048 * 4);
        CHECK(!gguf_has_data(l.f));
        cpu_state *s = NULL;
        CHECK(cpu_state_create(l.m, 16, 0, &s) == VKLLM_ERR_BAD_FILE);
        CHECK(s == NULL);
    }
    unload(&l);

    /* LLaMA-65B. Q4_0: 34.2 GiB (FORMATS.md). Q4_K_M: FORMATS.md says 36.7 GiB (39.4 GB);
     * llama.cpp's current rules give 36.645 GiB = 39.35 GB, which is also what the same
     * rules give for the published 7B (4.08 GB) and 13B (7.87 GB) Llama-2 Q4_K_M files, so
     * accept 36.6..36.7. */
    o.dim = 8192;
    o.n_layer = 80;
    o.n_ff = 22016;
    o.n_head = 64;
    const char *types[2] = {"q4_0", "q4_K_M"};
    const double lo_gib[2] = {34.15, 36.6}, hi_gib[2] = {34.25, 36.7};
    for (int k = 0; k < 2; k++) {
        o.type = types[k];
        CHECK_OK(load_synth(&o, &l));
        if (l.m) {
            uint64_t bytes, params;
            llama_model_size(l.m, &bytes, &params);
            double gib = (double)bytes / (1024.0 * 1024.0 * 1024.0);
            printf("65B %s: %.3f GiB (%.3f GB), %.2fB params\n", types[k], gib,
                   (double)bytes / 1e9, (double)params / 1e9);
            CHECK_MSG(gib >= lo_gib[k] && gib <= hi_gib[k], "65B %s: %.3f GiB, expected %.2f..%.2f",
                      types[k], gib, lo_gib[k], hi_gib[k]);
            CHECK(params == 65285660672ull);
        }
        unload(&l);
    }
}

/* ------------------------------------------------------------------ vocabulary ---- */

static void test_self_vocab(void) {
    synth_opts o;
    small_opts(&o);
    o.n_vocab = 2000;
    loaded l;
    CHECK_OK(load_synth(&o, &l));
    tok_vocab *v = NULL;
    if (l.f) CHECK_OK(tok_vocab_from_gguf(l.f, &v));
    if (v) {
        CHECK(tok_n_vocab(v) == 2000 && tok_bos(v) == 1 && tok_eos(v) == 2 && tok_unk(v) == 0);
        CHECK(tok_is_byte(v, 3) && tok_is_byte(v, 258) && tok_is_control(v, 1));
        CHECK(tok_find(v, "\xe2\x96\x81the", 6) >= 0);
        /* Any text encodes and decodes back, byte fallback included. */
        const char *text = "Once upon a time, the little dog saw a big red ball. "
                           "\xc3\xbcn\xc3\xaf" "c" "\xc3\xb6" "d\xc3\xa9 \xe2\x9c\x93"
                           " tab\there\nnew {x} 42%";
        int32_t ids[256];
        size_t n = 0, len = 0;
        CHECK_OK(tok_encode(v, text, strlen(text), 1, ids, 256, &n));
        char back[512];
        CHECK_OK(tok_decode(v, ids, n, back, sizeof back, &len));
        CHECK_MSG(len == strlen(text) && memcmp(back, text, len) == 0, "round trip: '%s'", back);
        CHECK_MSG(n < strlen(text), "%zu tokens for %zu bytes: merges do not happen", n,
                  strlen(text));
        size_t n1 = 0;
        int32_t one[4];
        CHECK_OK(tok_encode(v, "the", 3, 0, one, 4, &n1));
        CHECK(n1 == 1);
    }
    tok_vocab_free(v);
    unload(&l);

    /* Below 3 specials + 256 bytes there is no room for a SentencePiece vocabulary. */
    o.n_vocab = 258;
    void *buf = NULL;
    size_t size;
    CHECK(synth_write_memory(&o, &buf, &size) == VKLLM_ERR_INVALID_ARG);
    free(buf);
}

static void test_vocab_from(void) {
    char path[1024];
    if (!th_data_path("vocab-llama-spm/ggml-vocab-llama-spm.gguf", path, sizeof path)) return;
    synth_opts o;
    small_opts(&o);
    o.n_layer = 1;
    o.n_vocab = 0;
    o.type = "q8_0";
    o.vocab_from = path;
    loaded l;
    CHECK_OK(load_synth(&o, &l));
    gguf_file *src = NULL;
    CHECK_OK(gguf_open(path, &src));
    if (l.m && src) {
        CHECK(l.m->hp.n_vocab == 32000 && l.m->token_embd->ne[1] == 32000);
        /* Every tokenizer.ggml.* key is present with the same type and, for the token list,
         * the same strings. */
        char key[128];
        int n_keys = 0;
        for (uint64_t i = 0; i < gguf_kv_count(src); i++) {
            gguf_str k = gguf_kv_key(src, i);
            if (k.len < 15 || memcmp(k.ptr, "tokenizer.ggml.", 15) != 0) continue;
            gguf_str_c(k, key, sizeof key);
            int64_t j = gguf_find_key(l.f, key);
            CHECK_MSG(j >= 0 && gguf_kv_type(l.f, (uint64_t)j) == gguf_kv_type(src, i),
                      "key %s not copied", key);
            n_keys++;
        }
        CHECK(n_keys >= 7);
        gguf_array a, b;
        CHECK_OK(gguf_get_arr(src, "tokenizer.ggml.tokens", &a));
        CHECK_OK(gguf_get_arr(l.f, "tokenizer.ggml.tokens", &b));
        int same = a.count == b.count;
        for (uint64_t i = 0; same && i < a.count; i++) {
            gguf_str x = gguf_arr_str(src, &a, i), y = gguf_arr_str(l.f, &b, i);
            same = x.len == y.len && memcmp(x.ptr, y.ptr, x.len) == 0;
        }
        CHECK(same);
        CHECK_OK(gguf_get_arr(src, "tokenizer.ggml.scores", &a));
        CHECK_OK(gguf_get_arr(l.f, "tokenizer.ggml.scores", &b));
        CHECK(a.count == b.count && gguf_arr_num(&a, 12345) == gguf_arr_num(&b, 12345));
        tok_vocab *v = NULL;
        CHECK_OK(tok_vocab_from_gguf(l.f, &v));
        tok_vocab_free(v);
    }
    gguf_close(src);
    unload(&l);

    /* A vocabulary size that disagrees with the copied vocabulary is refused. */
    o.n_vocab = 1000;
    void *buf = NULL;
    size_t size;
    CHECK(synth_write_memory(&o, &buf, &size) == VKLLM_ERR_INVALID_ARG);
    CHECK(has(th_last_error(), "32000"));
    free(buf);
}

/* ---------------------------------------------------------- metadata defaults ---- */

/* A model assembled with the writer directly (zero weights), independent of synth.c, with
 * exactly the optional keys a case asks for. */
typedef struct manual {
    int head_count_kv;    /* 0: key absent */
    int rope_dims;        /* 0: key absent */
    float freq_base;      /* 0: key absent */
    const char *scaling;  /* rope.scaling.type; NULL: absent */
    float factor;         /* rope.scaling.factor; 0: absent */
    float scale_linear;   /* old llama.rope.scale_linear; 0: absent */
    int vocab_key;        /* llama.vocab_size value; 0: absent */
    int tokens;           /* tokenizer.ggml.tokens count; 0: absent */
    int embd_rows;
} manual;

static vkllm_status load_manual(const manual *c, llama_hparams *hp) {
    gguf_writer *w = NULL;
    vkllm_status st = gguf_writer_create(&w);
    if (st != VKLLM_OK) return st;
    const uint64_t E = 64, KV = c->head_count_kv ? (uint64_t)c->head_count_kv * 16 : 64, FF = 96;
    gguf_writer_add_str(w, "general.architecture", "llama");
    gguf_writer_add_u32(w, "llama.embedding_length", 64);
    gguf_writer_add_u32(w, "llama.block_count", 1);
    gguf_writer_add_u32(w, "llama.feed_forward_length", 96);
    gguf_writer_add_u32(w, "llama.attention.head_count", 4);
    gguf_writer_add_u32(w, "llama.context_length", 512);
    gguf_writer_add_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-6f);
    if (c->head_count_kv)
        gguf_writer_add_u32(w, "llama.attention.head_count_kv", (uint32_t)c->head_count_kv);
    if (c->rope_dims) gguf_writer_add_u32(w, "llama.rope.dimension_count", (uint32_t)c->rope_dims);
    if (c->freq_base > 0) gguf_writer_add_f32(w, "llama.rope.freq_base", c->freq_base);
    if (c->scaling) gguf_writer_add_str(w, "llama.rope.scaling.type", c->scaling);
    if (c->factor > 0) gguf_writer_add_f32(w, "llama.rope.scaling.factor", c->factor);
    if (c->scale_linear > 0) gguf_writer_add_f32(w, "llama.rope.scale_linear", c->scale_linear);
    if (c->vocab_key) gguf_writer_add_u32(w, "llama.vocab_size", (uint32_t)c->vocab_key);
    if (c->tokens) {
        const char **toks = malloc((size_t)c->tokens * sizeof *toks);
        for (int i = 0; i < c->tokens; i++) toks[i] = "x";
        gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", toks, (uint64_t)c->tokens);
        free(toks);
    }
    uint64_t ne[2];
#define T2(name, a, b)                                                                         \
    (ne[0] = (a), ne[1] = (b),                                                                 \
     gguf_writer_add_tensor(w, name, 2, ne, WTYPE_F32, NULL, (uint64_t)(a) * (b) * 4))
#define T1(name) (ne[0] = E, gguf_writer_add_tensor(w, name, 1, ne, WTYPE_F32, NULL, E * 4))
    T2("token_embd.weight", E, (uint64_t)c->embd_rows);
    T1("output_norm.weight");
    T1("blk.0.attn_norm.weight");
    T1("blk.0.ffn_norm.weight");
    T2("blk.0.attn_q.weight", E, E);
    T2("blk.0.attn_k.weight", E, KV);
    T2("blk.0.attn_v.weight", E, KV);
    T2("blk.0.attn_output.weight", E, E);
    T2("blk.0.ffn_gate.weight", E, FF);
    T2("blk.0.ffn_up.weight", E, FF);
    T2("blk.0.ffn_down.weight", FF, E);
#undef T1
#undef T2
    void *buf = NULL;
    size_t size = 0;
    gguf_file *f = NULL;
    llama_model_desc *m = NULL;
    st = gguf_writer_write_memory(w, 0, &buf, &size);
    gguf_writer_free(w);
    if (st == VKLLM_OK) st = gguf_open_memory(buf, size, &f);
    if (st == VKLLM_OK) st = llama_model_load_desc(f, &m);
    if (st == VKLLM_OK) {
        *hp = m->hp;
        if (!m->tied_output) st = VKLLM_ERR_INVALID_ARG; /* no output.weight was written */
    }
    llama_model_free_desc(m);
    gguf_close(f);
    free(buf);
    return st;
}

static void test_defaults(void) {
    llama_hparams hp;
    manual c = {.embd_rows = 100};
    /* Every optional key absent: kv heads = heads, rot = head_dim, base 10000, no scaling,
     * vocab = token_embd rows. */
    CHECK_OK(load_manual(&c, &hp));
    CHECK(hp.n_head_kv == 4 && hp.n_rot == 16 && hp.rope_freq_base == 10000.0f);
    CHECK(hp.rope_freq_scale == 1.0f && hp.n_vocab == 100 && hp.rms_eps == 1e-6f);

    c.tokens = 100; /* the token count comes before token_embd's rows */
    CHECK_OK(load_manual(&c, &hp));
    CHECK(hp.n_vocab == 100);
    c.tokens = 90;
    CHECK(load_manual(&c, &hp) == VKLLM_ERR_BAD_FILE); /* 90 tokens, 100 embedding rows */
    CHECK(has(th_last_error(), "token_embd.weight"));
    c.tokens = 0;
    c.vocab_key = 120;
    CHECK(load_manual(&c, &hp) == VKLLM_ERR_BAD_FILE);
    c.vocab_key = 100;
    c.tokens = 110; /* ids 100..109 would have no embedding */
    CHECK(load_manual(&c, &hp) == VKLLM_ERR_BAD_FILE);
    CHECK(has(th_last_error(), "110 tokens"));
    c.tokens = 0;
    c.vocab_key = 100;
    CHECK_OK(load_manual(&c, &hp));

    c.head_count_kv = 1; /* MQA */
    c.rope_dims = 8;     /* partial rotary */
    c.freq_base = 500000.0f;
    CHECK_OK(load_manual(&c, &hp));
    CHECK(hp.n_head_kv == 1 && hp.kv_dim == 16 && hp.n_rot == 8 && hp.rope_freq_base == 500000.0f);

    c.scaling = "linear";
    c.factor = 4.0f;
    CHECK_OK(load_manual(&c, &hp));
    CHECK(hp.rope_freq_scale == 0.25f);
    c.scaling = "none";
    CHECK_OK(load_manual(&c, &hp));
    CHECK(hp.rope_freq_scale == 1.0f);
    c.scaling = "yarn";
    CHECK(load_manual(&c, &hp) == VKLLM_ERR_UNSUPPORTED);
    CHECK(has(th_last_error(), "yarn"));
    c.scaling = "linear";
    c.factor = 0;
    CHECK(load_manual(&c, &hp) == VKLLM_ERR_BAD_FILE);
    c.scaling = NULL;
    c.scale_linear = 2.0f;
    CHECK_OK(load_manual(&c, &hp));
    CHECK(hp.rope_freq_scale == 0.5f);
    c.scale_linear = 0;

    c.rope_dims = 20; /* more than the head dimension */
    CHECK(load_manual(&c, &hp) == VKLLM_ERR_BAD_FILE);
    c.rope_dims = 7; /* odd */
    CHECK(load_manual(&c, &hp) == VKLLM_ERR_BAD_FILE);
    c.rope_dims = 0;
    c.head_count_kv = 3; /* 4 heads do not split into 3 groups */
    CHECK(load_manual(&c, &hp) == VKLLM_ERR_BAD_FILE);
    CHECK(has(th_last_error(), "head_count_kv"));
}

/* ------------------------------------------------------------------ refusals ---- */

typedef struct hook_case {
    const char *name;  /* tensor to act on */
    int skip;
    uint64_t ne1;      /* nonzero: new ne[1] */
    int type;          /* >= 0: new type */
} hook_case;

static vkllm_status edit_hook(void *user, const char *name, uint64_t ne[2], uint32_t *type,
                              int *skip) {
    const hook_case *h = user;
    if (strcmp(name, h->name) != 0) return VKLLM_OK;
    *skip = h->skip;
    if (h->ne1) ne[1] = h->ne1;
    if (h->type >= 0) *type = (uint32_t)h->type;
    return VKLLM_OK;
}

static vkllm_status load_edited(const hook_case *h, const char *arch) {
    synth_opts o;
    small_opts(&o);
    o.n_head_kv = 2;
    o.hook = edit_hook;
    o.hook_user = (void *)(uintptr_t)h; /* the hook only reads it */
    o.arch = arch;
    loaded l;
    vkllm_status st = load_synth(&o, &l);
    unload(&l);
    return st;
}

/* Finds the tensor info of name in a GGUF image and overwrites its type id. */
static int patch_type(unsigned char *buf, size_t size, const char *name, uint32_t type) {
    size_t len = strlen(name);
    for (size_t i = 8; i + len + 4 <= size; i++) {
        uint64_t l;
        memcpy(&l, buf + i - 8, 8);
        if (l != len || memcmp(buf + i, name, len) != 0) continue;
        uint32_t n_dims;
        memcpy(&n_dims, buf + i + len, 4);
        size_t at = i + len + 4 + 8 * (size_t)n_dims;
        if (n_dims < 1 || n_dims > 4 || at + 4 > size) return 0;
        memcpy(buf + at, &type, 4);
        return 1;
    }
    return 0;
}

static void test_refusals(void) {
    hook_case none = {.name = "", .type = -1};
    CHECK_OK(load_edited(&none, NULL));

    hook_case missing = {.name = "blk.1.ffn_up.weight", .skip = 1, .type = -1};
    CHECK(load_edited(&missing, NULL) == VKLLM_ERR_BAD_FILE);
    CHECK_MSG(has(th_last_error(), "blk.1.ffn_up.weight") && has(th_last_error(), "missing"),
              "message: %s", th_last_error());

    hook_case no_norm = {.name = "output_norm.weight", .skip = 1, .type = -1};
    CHECK(load_edited(&no_norm, NULL) == VKLLM_ERR_BAD_FILE);

    hook_case reshaped = {.name = "blk.0.attn_k.weight", .ne1 = 64, .type = -1}; /* kv_dim is 32 */
    CHECK(load_edited(&reshaped, NULL) == VKLLM_ERR_BAD_FILE);
    CHECK_MSG(has(th_last_error(), "blk.0.attn_k.weight") && has(th_last_error(), "[64, 32]"),
              "message: %s", th_last_error());

    hook_case embd = {.name = "token_embd.weight", .ne1 = 299, .type = -1};
    CHECK(load_edited(&embd, NULL) == VKLLM_ERR_BAD_FILE);

    hook_case f16norm = {.name = "blk.1.ffn_norm.weight", .type = WTYPE_F16};
    CHECK(load_edited(&f16norm, NULL) == VKLLM_ERR_UNSUPPORTED);
    CHECK_MSG(has(th_last_error(), "blk.1.ffn_norm.weight") && has(th_last_error(), "f16"),
              "message: %s", th_last_error());

    /* Matrices of any type mix freely. */
    hook_case mixed = {.name = "blk.0.ffn_down.weight", .type = WTYPE_Q5_1};
    CHECK_OK(load_edited(&mixed, NULL));

    CHECK(load_edited(&none, "gpt2") == VKLLM_ERR_UNSUPPORTED);
    CHECK_MSG(has(th_last_error(), "gpt2"), "message: %s", th_last_error());

    /* A type id this build cannot decode (Q2_K = 10), patched into a valid file. */
    synth_opts o;
    small_opts(&o);
    void *buf = NULL;
    size_t size = 0;
    CHECK_OK(synth_write_memory(&o, &buf, &size));
    if (buf) {
        CHECK(patch_type(buf, size, "blk.0.attn_q.weight", 10));
        gguf_file *f = NULL;
        vkllm_status st = gguf_open_memory(buf, size, &f);
        llama_model_desc *m = NULL;
        if (st == VKLLM_OK) st = llama_model_load_desc(f, &m);
        CHECK(st == VKLLM_ERR_UNSUPPORTED);
        CHECK_MSG(has(th_last_error(), "blk.0.attn_q.weight"), "message: %s", th_last_error());
        llama_model_free_desc(m);
        gguf_close(f);
        free(buf);
    }

    /* Options the generator refuses. */
    o.type = "q3_K";
    buf = NULL;
    CHECK(synth_write_memory(&o, &buf, &size) == VKLLM_ERR_INVALID_ARG);
    o.type = "f32";
    o.n_head = 5;
    CHECK(synth_write_memory(&o, &buf, &size) == VKLLM_ERR_INVALID_ARG);
    free(buf);
}

static void test_determinism(void) {
    synth_opts o;
    small_opts(&o);
    o.type = "q4_1";
    void *a = NULL, *b = NULL, *c = NULL;
    size_t na = 0, nb = 0, nc = 0;
    CHECK_OK(synth_write_memory(&o, &a, &na));
    CHECK_OK(synth_write_memory(&o, &b, &nb));
    o.seed = 2;
    CHECK_OK(synth_write_memory(&o, &c, &nc));
    CHECK(a && b && na == nb && memcmp(a, b, na) == 0);
    CHECK(c && nc == na && memcmp(a, c, na) != 0);
    free(a);
    free(b);
    free(c);
}

/* ------------------------------------------------------------- forward smoke ---- */

static void test_forward_smoke(void) {
    synth_opts o;
    small_opts(&o);
    o.dim = 256;
    o.n_ff = 768;
    o.n_head = 8;
    o.n_head_kv = 4;
    o.n_layer = 2;
    o.n_vocab = 2000;
    o.type = "q4_0";
    loaded l;
    CHECK_OK(load_synth(&o, &l));
    if (!l.m) return;
    cpu_state *s = NULL;
    CHECK_OK(cpu_state_create(l.m, 64, 1, &s));
    if (s) {
        size_t nv = l.m->hp.n_vocab;
        float *logits = malloc(nv * sizeof *logits);
        float gaps[48];
        int finite = 1, distinct = 0;
        char seen[2000] = {0};
        double rms_sum = 0;
        int32_t tok = 1;
        for (int pos = 0; pos < 48; pos++) {
            CHECK_OK(cpu_forward(s, l.m, tok, (uint32_t)pos, logits));
            double ss = 0;
            for (size_t i = 0; i < nv; i++) {
                finite &= isfinite(logits[i]);
                ss += (double)logits[i] * logits[i];
            }
            rms_sum += sqrt(ss / (double)nv);
            size_t top;
            gaps[pos] = cpu_top2_gap(logits, nv, &top);
            distinct += !seen[top];
            seen[top] = 1;
            tok = (int32_t)top;
        }
        CHECK(finite);
        /* Sort the gaps for the report. */
        for (int i = 1; i < 48; i++)
            for (int j = i; j > 0 && gaps[j] < gaps[j - 1]; j--) {
                float t = gaps[j];
                gaps[j] = gaps[j - 1];
                gaps[j - 1] = t;
            }
        printf("synthetic forward: logit rms %.2f, top-2 gap min %.3f median %.3f max %.3f, "
               "%d distinct tokens in 48 greedy steps\n",
               rms_sum / 48, gaps[0], gaps[24], gaps[47], distinct);
        CHECK_MSG(rms_sum / 48 > 2.0 && rms_sum / 48 < 8.0, "logit rms %.2f, expected about 4",
                  rms_sum / 48);
        CHECK_MSG(gaps[24] > 0.3, "median top-2 gap %.3f: the logits are not separated", gaps[24]);
        CHECK_MSG(distinct >= 8, "greedy decoding visits only %d tokens", distinct);
        free(logits);
    }
    cpu_state_free(s);
    unload(&l);
}

int main(void) {
    test_stories();
    test_shapes_and_types();
    test_q4_k_m();
    test_tied();
    test_big_headers();
    test_self_vocab();
    test_vocab_from();
    test_defaults();
    test_refusals();
    test_determinism();
    test_forward_smoke();
    return th_finish();
}
