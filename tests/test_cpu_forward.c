/* The CPU forward pass against published data: greedy decoding of Karpathy's stories260K
 * must reproduce llama2.c's token ids and, through the tokenizer, its printed text byte for
 * byte. Also the context-full and bad-token errors and the f16 KV-cache option. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "testkit/cpu_forward.h"
#include "runtime/format/gguf.h"
#include "runtime/format/model.h"
#include "runtime/text/tokenizer.h"
#include "runtime/format/wtype.h"

#define DIR "stories260K/"

/* The integer array that follows "key" (and then "sub", when given) in the ids JSON, into a
 * malloc'd buffer. The file is flat enough that a scan for the key and '[' suffices. */
static int32_t *json_ids(const char *json, const char *key, const char *sub, size_t *n) {
    char quoted[128];
    snprintf(quoted, sizeof quoted, "\"%s\"", key);
    const char *p = strstr(json, quoted);
    if (p && sub) {
        snprintf(quoted, sizeof quoted, "\"%s\"", sub);
        p = strstr(p, quoted);
    }
    if (!p || !(p = strchr(p, '['))) return NULL;
    size_t cap = 64, count = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    p++;
    while (ids) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) break;
        if (count == cap) {
            int32_t *grown = realloc(ids, 2 * cap * sizeof *ids);
            if (!grown) break;
            ids = grown;
            cap *= 2;
        }
        ids[count++] = (int32_t)v;
        p = end + strspn(end, " \t\r\n");
        if (*p != ',') break;
        p++;
    }
    if (!ids || *p != ']') {
        free(ids);
        return NULL;
    }
    *n = count;
    return ids;
}

static void check_ids(const char *what, const int32_t *got, size_t n_got, const int32_t *want,
                      size_t n_want) {
    size_t n = n_got < n_want ? n_got : n_want, first = n;
    for (size_t i = 0; i < n; i++) {
        if (got[i] != want[i]) {
            first = i;
            break;
        }
    }
    CHECK_MSG(n_got == n_want && first == n,
              "%s: %zu ids, expected %zu; first difference at index %zu (got %d, want %d)", what,
              n_got, n_want, first, first < n ? (int)got[first] : -1,
              first < n ? (int)want[first] : -1);
}

/* Decodes ids with the model's vocabulary and compares with the published text file. */
static void check_text(const tok_vocab *v, const char *what, const int32_t *ids, size_t n,
                       const char *rel) {
    char path[1024];
    if (!th_data_path(rel, path, sizeof path)) return;
    size_t want_len = 0;
    char *want = th_read_file(path, &want_len);
    CHECK_MSG(want != NULL, "cannot read %s", path);
    size_t cap = 16 * n + 16, len = 0;
    char *got = malloc(cap);
    CHECK_OK(tok_decode(v, ids, n, got, cap, &len));
    if (want && got) {
        int same = len == want_len && memcmp(got, want, len) == 0;
        CHECK_MSG(same, "%s: decoded text (%zu bytes) differs from %s (%zu bytes):\n%.*s", what,
                  len, rel, want_len, (int)len, got);
    }
    free(got);
    free(want);
}

static void test_errors(const llama_model_desc *m) {
    cpu_state *s = NULL;
    CHECK_OK(cpu_state_create(m, 4, 0, &s));
    if (!s) return;
    CHECK(s->n_ctx == 4);
    float *logits = malloc(m->hp.n_vocab * sizeof *logits);
    for (uint32_t pos = 0; pos < 4; pos++) CHECK_OK(cpu_forward(s, m, 1, pos, logits));
    CHECK(cpu_forward(s, m, 1, 4, logits) == VKLLM_ERR_CONTEXT_FULL);
    CHECK(cpu_forward(s, m, (int32_t)m->hp.n_vocab, 0, logits) == VKLLM_ERR_INVALID_ARG);
    CHECK(cpu_forward(s, m, -1, 0, logits) == VKLLM_ERR_INVALID_ARG);
    free(logits);
    cpu_state_free(s);

    /* n_ctx 0 takes the training context (2048 for stories260K). */
    CHECK_OK(cpu_state_create(m, 0, 0, &s));
    if (s) CHECK(s->n_ctx == m->hp.n_ctx_train);
    cpu_state_free(s);
}

/* The f16 cache must change the logits (it rounds) but only by the f16 rounding error. */
static void test_f16_kv(const llama_model_desc *m) {
    cpu_state *a = NULL, *b = NULL;
    CHECK_OK(cpu_state_create(m, 64, 0, &a));
    CHECK_OK(cpu_state_create(m, 64, 1, &b));
    if (!a || !b) goto done;
    size_t nv = m->hp.n_vocab;
    float *la = malloc(nv * sizeof *la), *lb = malloc(nv * sizeof *lb);
    double worst = 0;
    int32_t tok = 1;
    for (uint32_t pos = 0; pos < 32; pos++) {
        CHECK_OK(cpu_forward(a, m, tok, pos, la));
        CHECK_OK(cpu_forward(b, m, tok, pos, lb));
        double e = th_nmse(la, lb, nv);
        if (e > worst) worst = e;
        size_t top;
        cpu_top2_gap(la, nv, &top);
        tok = (int32_t)top; /* both states see the same tokens */
    }
    printf("f16 KV cache vs f32: worst logit nmse %.3g over 32 positions\n", worst);
    CHECK_MSG(worst > 0 && worst < 1e-5, "f16 KV cache logit nmse %g, expected in (0, 1e-5)",
              worst);
    /* Stored values are exactly representable in f16 (layer 0, positions 0..31). */
    int exact = 1;
    for (size_t i = 0; i < 32 * (size_t)m->hp.kv_dim; i++) {
        float k = b->key_cache[i], v = b->value_cache[i];
        exact &= wtype_f16_to_f32(wtype_f32_to_f16(k)) == k &&
                 wtype_f16_to_f32(wtype_f32_to_f16(v)) == v;
    }
    CHECK(exact);
    free(la);
    free(lb);
done:
    cpu_state_free(a);
    cpu_state_free(b);
}

int main(void) {
    char path[1024];
    if (!th_data_path(DIR "stories260K.gguf", path, sizeof path)) return th_finish();
    gguf_file *f = NULL;
    llama_model_desc *m = NULL;
    tok_vocab *v = NULL;
    char *json = NULL;
    CHECK_OK(gguf_open(path, &f));
    if (f) CHECK_OK(llama_model_load_desc(f, &m));
    if (f) CHECK_OK(tok_vocab_from_gguf(f, &v));
    if (!m || !v) goto out;

    char jpath[1024];
    if (!th_data_path(DIR "stories260K_greedy_token_ids.derived.json", jpath, sizeof jpath))
        goto out;
    json = th_read_file(jpath, NULL);
    CHECK_MSG(json != NULL, "cannot read %s", jpath);
    if (!json) goto out;

    size_t n200 = 0, n256 = 0, nprompt = 0;
    int32_t *want200 = json_ids(json, "greedy_empty_prompt_steps200", NULL, &n200);
    int32_t *want256 = json_ids(json, "greedy_empty_prompt_steps256", NULL, &n256);
    int32_t *wantp = json_ids(json, "greedy_prompt_Once_upon_a_time_steps256", "ids", &nprompt);
    CHECK(want200 && n200 == 201 && want256 && n256 == 257 && wantp && nprompt == 257);
    if (!want200 || !want256 || !wantp) goto ids_out;

    cpu_state *s = NULL;
    int32_t ids[300];
    size_t n = 0;
    float gap = 0;
    const int32_t bos = 1;

    /* 200 steps from BOS, stopping if BOS is sampled: llama2.c `run -t 0 -n 200`. */
    CHECK_OK(cpu_state_create(m, 256, 0, &s));
    if (!s) goto ids_out;
    CHECK_OK(cpu_greedy(s, m, &bos, 1, 200, bos, ids, &n, &gap));
    printf("greedy 200: %zu ids, smallest top-2 logit gap %.5f\n", n, gap);
    check_ids("greedy from BOS, 200 steps", ids, n, want200, n200);
    check_text(v, "greedy 200", ids, n, DIR "stories260K_t0_n200.expected.txt");

    CHECK_OK(cpu_greedy(s, m, &bos, 1, 256, bos, ids, &n, &gap));
    check_ids("greedy from BOS, 256 steps", ids, n, want256, n256);
    check_text(v, "greedy 256", ids, n, DIR "stories260K_t0_n256.expected.txt");

    /* With a prompt: BOS + encode("Once upon a time") is forced, the rest is greedy, 256
     * forward passes in all. The prompt's encoding must be the head of the expected ids. */
    const char *prompt = "Once upon a time";
    int32_t ptoks[32];
    size_t np = 0;
    CHECK_OK(tok_encode(v, prompt, strlen(prompt), 1, ptoks, 32, &np));
    CHECK(np >= 2 && np < 32);
    check_ids("prompt encoding", ptoks, np, wantp, np);
    CHECK_OK(cpu_greedy(s, m, ptoks, np, 256, bos, ids, &n, &gap));
    check_ids("greedy after 'Once upon a time', 256 steps", ids, n, wantp, nprompt);
    cpu_state_free(s);

    test_errors(m);
    test_f16_kv(m);
ids_out:
    free(want200);
    free(want256);
    free(wantp);
out:
    free(json);
    tok_vocab_free(v);
    llama_model_free_desc(m);
    gguf_close(f);
    return th_finish();
}
