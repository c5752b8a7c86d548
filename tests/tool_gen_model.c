/* vkllm-gen-model: writes a deterministic random-weight LLaMA GGUF (testkit/synth.h) for
 * tests and benchmarks, then reopens it through the real loader and prints a one-line
 * summary to stderr. Defaults give the 542M-parameter Q4_0 benchmark model; --sparse gives a
 * full-size file of a model too big to write (a hole where the weights would be). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/format/gguf.h"
#include "runtime/format/model.h"
#include "testkit/synth.h"
#include "base/util.h"
#include "vkllm.h"

static void usage(FILE *to) {
    fprintf(to,
            "usage: vkllm-gen-model --out FILE [options]\n"
            "  --dim N         embedding length (2048)\n"
            "  --layers N      blocks (8)\n"
            "  --ffn N         feed-forward length (5632)\n"
            "  --heads N       attention heads (16)\n"
            "  --kv-heads N    KV heads (= heads)\n"
            "  --vocab N       vocabulary size (32000; with --vocab-from: that file's)\n"
            "  --ctx N         context length (2048)\n"
            "  --rot N         rope dimension count (head dimension)\n"
            "  --rope-base F   rope frequency base (key omitted: 10000)\n"
            "  --rope-linear F linear rope scaling factor (none)\n"
            "  --eps F         rms norm epsilon (1e-5)\n"
            "  --type T        f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_K q5_K q6_K q4_K_M (q4_0)\n"
            "  --seed N        weight seed (1)\n"
            "  --vocab-from F  copy the tokenizer.ggml.* keys of GGUF file F\n"
            "  --tied          no output.weight: logits reuse token_embd\n"
            "  --header-only   metadata and tensor infos only (for planning; not runnable)\n"
            "  --sparse        the header, then the file extended to its full size with a hole\n"
            "                  (valid and loadable, all weights zero, almost no disk used)\n"
            "  --llama-65b     LLaMA-65B's shape: dim 8192, 80 layers, ffn 22016, 64 heads,\n"
            "                  vocab 32000, ctx 2048 (options after it override)\n");
}

/* Parses a whole-string unsigned number; 0 on junk. */
static int parse_u64(const char *s, unsigned long long *out) {
    char *end;
    if (!s || !*s || *s == '-') return 0;
    *out = strtoull(s, &end, 0);
    return *end == 0;
}

static int parse_u32(const char *s, uint32_t *out) {
    unsigned long long v;
    if (!parse_u64(s, &v) || v > UINT32_MAX) return 0;
    *out = (uint32_t)v;
    return 1;
}

static int parse_f32(const char *s, float *out) {
    char *end;
    if (!s || !*s) return 0;
    *out = strtof(s, &end);
    return *end == 0;
}

/* Extends a header-only file to the size its tensor infos describe: the data section start
 * plus the end of the last tensor, rounded up to the alignment. truncate leaves a hole, so
 * the file reads as zeros (valid weights of every type) and occupies only its header. */
static vkllm_status extend_sparse(const char *path) {
    gguf_file *f = NULL;
    vkllm_status st = gguf_open(path, &f);
    if (st != VKLLM_OK) return st;
    uint64_t end = 0, align = gguf_alignment(f);
    for (uint64_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (t->offset + t->size > end) end = t->offset + t->size;
    }
    uint64_t size = gguf_data_offset(f) + (end + align - 1) / align * align;
    gguf_close(f);
    if (truncate(path, (off_t)size) != 0)
        return vkl_err(VKLLM_ERR_IO, "cannot extend %s to %llu bytes: %s", path,
                       (unsigned long long)size, strerror(errno));
    return VKLLM_OK;
}

int main(int argc, char **argv) {
    synth_opts o;
    synth_default_opts(&o);
    const char *out = NULL;
    int vocab_given = 0, sparse = 0;
    float linear = 0.0f;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long long u64 = 0;
        int ok = 1, takes = 1;
        if (strcmp(a, "--out") == 0) out = v, ok = v != NULL;
        else if (strcmp(a, "--dim") == 0) ok = parse_u32(v, &o.dim);
        else if (strcmp(a, "--layers") == 0) ok = parse_u32(v, &o.n_layer);
        else if (strcmp(a, "--ffn") == 0) ok = parse_u32(v, &o.n_ff);
        else if (strcmp(a, "--heads") == 0) ok = parse_u32(v, &o.n_head);
        else if (strcmp(a, "--kv-heads") == 0) ok = parse_u32(v, &o.n_head_kv);
        else if (strcmp(a, "--vocab") == 0) ok = parse_u32(v, &o.n_vocab), vocab_given = 1;
        else if (strcmp(a, "--ctx") == 0) ok = parse_u32(v, &o.n_ctx);
        else if (strcmp(a, "--rot") == 0) ok = parse_u32(v, &o.n_rot);
        else if (strcmp(a, "--rope-base") == 0) ok = parse_f32(v, &o.rope_base);
        else if (strcmp(a, "--rope-linear") == 0) ok = parse_f32(v, &linear) && linear > 0.0f;
        else if (strcmp(a, "--eps") == 0) ok = parse_f32(v, &o.rms_eps);
        else if (strcmp(a, "--type") == 0) o.type = v, ok = v != NULL;
        else if (strcmp(a, "--seed") == 0) ok = parse_u64(v, &u64), o.seed = u64;
        else if (strcmp(a, "--vocab-from") == 0) o.vocab_from = v, ok = v != NULL;
        else if (strcmp(a, "--tied") == 0) o.tied = 1, takes = 0;
        else if (strcmp(a, "--header-only") == 0) o.header_only = 1, takes = 0;
        else if (strcmp(a, "--sparse") == 0) sparse = 1, takes = 0;
        else if (strcmp(a, "--llama-65b") == 0) {
            o.dim = 8192, o.n_layer = 80, o.n_ff = 22016, o.n_head = 64, o.n_head_kv = 0;
            o.n_vocab = 32000, o.n_ctx = 2048, vocab_given = 1, takes = 0;
        }
        else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "vkllm-gen-model: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "vkllm-gen-model: %s needs a valid value (got '%s')\n", a,
                    v ? v : "nothing");
            return 2;
        }
        i += takes;
    }
    if (!out) {
        fprintf(stderr, "vkllm-gen-model: --out FILE is required\n");
        usage(stderr);
        return 2;
    }
    if (o.vocab_from && !vocab_given) o.n_vocab = 0;
    if (linear > 0.0f) {
        o.rope_scaling_type = "linear";
        o.rope_scaling_factor = linear;
    }

    if (sparse && o.header_only) {
        fprintf(stderr, "vkllm-gen-model: --sparse and --header-only exclude each other\n");
        return 2;
    }

    double t0 = vkl_now_ms();
    int header_only = o.header_only;
    o.header_only = header_only || sparse; /* a sparse file starts as a header-only one */
    vkllm_status st = synth_write_file(&o, out);
    if (st == VKLLM_OK && sparse) st = extend_sparse(out);
    if (st != VKLLM_OK) {
        fprintf(stderr, "vkllm-gen-model: %s\n", vkllm_last_error());
        if (sparse) remove(out);
        return 1;
    }
    double ms = vkl_now_ms() - t0;

    /* Read it back through the loader: the summary reports what a user of the file sees. */
    gguf_file *f = NULL;
    llama_model_desc *m = NULL;
    st = gguf_open(out, &f);
    if (st == VKLLM_OK) st = llama_model_load_desc(f, &m);
    if (st != VKLLM_OK) {
        fprintf(stderr, "vkllm-gen-model: wrote %s but cannot load it back: %s\n", out,
                vkllm_last_error());
        gguf_close(f);
        return 1;
    }
    if (sparse && !gguf_has_data(f)) {
        fprintf(stderr, "vkllm-gen-model: extended %s to %llu bytes, but the loader still sees "
                "no data section\n", out, (unsigned long long)gguf_file_size(f));
        llama_model_free_desc(m);
        gguf_close(f);
        return 1;
    }
    uint64_t bytes, params;
    llama_model_size(m, &bytes, &params);
    char fb[32], wb[32];
    const llama_hparams *hp = &m->hp;
    fprintf(stderr,
            "vkllm-gen-model: wrote %s: %.1fM params, layers %u, dim %u, ffn %u, heads %u/%u, "
            "vocab %u, ctx %u, %s%s, weights %s, file %s%s, %.2f s\n",
            out, (double)params / 1e6, hp->n_layer, hp->n_embd, hp->n_ff, hp->n_head,
            hp->n_head_kv, hp->n_vocab, hp->n_ctx_train, o.type, m->tied_output ? " tied" : "",
            vkl_fmt_bytes(wb, sizeof wb, bytes), vkl_fmt_bytes(fb, sizeof fb, gguf_file_size(f)),
            header_only ? " (header only)" : sparse ? " (sparse: the data section is a hole)" : "",
            ms / 1000.0);
    llama_model_free_desc(m);
    gguf_close(f);
    return 0;
}
