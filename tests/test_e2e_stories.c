/* The real model end to end through the CLI: `vkllm run` on stories260K at temperature 0
 * prints exactly llama2.c's published text, and --ids gives exactly the published greedy ids,
 * for the empty prompt and for "Once upon a time". */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "harness.h"

static int32_t *json_ids(cJSON *arr, size_t *n) {
    *n = (size_t)cJSON_GetArraySize(arr);
    int32_t *ids = malloc(*n * sizeof *ids + 1);
    for (size_t i = 0; i < *n; i++) ids[i] = (int32_t)cJSON_GetArrayItem(arr, (int)i)->valuedouble;
    return ids;
}

/* Parses "1 2 3\n" and compares with want. */
static void check_ids(const char *what, const char *out, const int32_t *want, size_t n_want) {
    size_t n = 0, bad = SIZE_MAX;
    const char *p = out;
    char *end;
    for (;;) {
        long v = strtol(p, &end, 10);
        if (end == p) break;
        if (n < n_want && v != want[n] && bad == SIZE_MAX) bad = n;
        n++;
        p = end;
    }
    CHECK_MSG(n == n_want && bad == SIZE_MAX, "%s: %zu ids (want %zu), first difference at %lld", what, n, n_want,
              bad == SIZE_MAX ? -1LL : (long long)bad);
}

int main(void) {
    char model[1024], ids_path[1024], text_path[1024], cmd[4096];
    if (!th_data_path("stories260K/stories260K.gguf", model, sizeof model) ||
        !th_data_path("stories260K/stories260K_greedy_token_ids.derived.json", ids_path, sizeof ids_path) ||
        !th_data_path("stories260K/stories260K_t0_n200.expected.txt", text_path, sizeof text_path))
        return 0;
    size_t want_len = 0;
    char *want = th_read_file(text_path, &want_len);
    char *json = th_read_file(ids_path, NULL);
    cJSON *root = json ? cJSON_Parse(json) : NULL;
    CHECK(want && root);
    if (!want || !root) return th_finish();

    /* Text: exactly the published bytes, nothing else on stdout. */
    int rc;
    char err_path[1024];
    th_tmp_path("e2e_stories.stderr", err_path, sizeof err_path);
    snprintf(cmd, sizeof cmd, "vkllm run -m '%s' -p '' -n 200 --temp 0 --validate 2>'%s'", model, err_path);
    char *out = th_run_cli("", cmd, &rc);
    char *err = th_read_file(err_path, NULL);
    CHECK_MSG(err && !strstr(err, "validation:"), "the validation layer reported:\n%s", err ? err : "(no stderr)");
    free(err);
    CHECK_MSG(rc == 0, "vkllm run exited %d", rc);
    if (out) {
        size_t got = strlen(out), i = 0;
        while (i < got && i < want_len && out[i] == want[i]) i++;
        CHECK_MSG(got == want_len && i == want_len, "text differs at byte %zu (got %zu bytes, want %zu)\n"
                  "got:  %.80s\nwant: %.80s", i, got, want_len, out + (i > 20 ? i - 20 : 0),
                  want + (i > 20 ? i - 20 : 0));
    }
    free(out);

    /* Ids: BOS then 200 greedy tokens. */
    size_t n;
    int32_t *ids = json_ids(cJSON_GetObjectItem(root, "greedy_empty_prompt_steps200"), &n);
    snprintf(cmd, sizeof cmd, "vkllm run -m '%s' -p '' -n 200 --temp 0 --ids", model);
    out = th_run_cli("", cmd, &rc);
    CHECK(rc == 0 && out);
    if (out) check_ids("empty prompt, 200 steps", out, ids, n);
    free(out);
    free(ids);

    /* The prompt case: llama2.c's 256 steps count positions, so the continuation is
     * 257 - (prompt ids) tokens. */
    cJSON *pc = cJSON_GetObjectItem(root, "greedy_prompt_Once_upon_a_time_steps256");
    ids = json_ids(cJSON_GetObjectItem(pc, "ids"), &n);
    snprintf(cmd, sizeof cmd, "vkllm tokenize -m '%s' -p 'Once upon a time'", model);
    out = th_run_cli("", cmd, &rc);
    size_t n_prompt = 0;
    for (char *p = out; p && *p; p++) n_prompt += (*p != ' ' && *p != '\n') && (p == out || p[-1] == ' ');
    free(out);
    CHECK(n_prompt > 1 && n_prompt < n);
    snprintf(cmd, sizeof cmd, "vkllm run -m '%s' -p 'Once upon a time' -n %zu --temp 0 --ids", model, n - n_prompt);
    out = th_run_cli("", cmd, &rc);
    CHECK(rc == 0 && out);
    if (out) check_ids("prompt 'Once upon a time', 256 steps", out, ids, n);
    free(out);

    /* A stop string ends the text just before it; -f reads the prompt from a file. */
    snprintf(cmd, sizeof cmd, "vkllm run -m '%s' -p '' -n 200 --temp 0 -r 'Lily' 2>/dev/null", model);
    out = th_run_cli("", cmd, &rc);
    const char *lily = strstr(want, "Lily");
    CHECK(lily != NULL);
    if (out && lily) {
        size_t n_before = (size_t)(lily - want);
        CHECK_MSG(rc == 0 && strlen(out) == n_before && !strncmp(out, want, n_before),
                  "with --stop Lily got: %s", out);
    }
    free(out);
    char prompt_path[1024];
    th_tmp_path("e2e_prompt.txt", prompt_path, sizeof prompt_path);
    FILE *pf = fopen(prompt_path, "wb");
    CHECK(pf != NULL);
    if (pf) {
        fputs("Once upon a time", pf);
        fclose(pf);
        snprintf(cmd, sizeof cmd, "vkllm run -m '%s' -f '%s' -n %zu --temp 0 --ids 2>/dev/null", model, prompt_path,
                 n - n_prompt);
        out = th_run_cli("", cmd, &rc);
        CHECK(rc == 0 && out);
        if (out) check_ids("-f prompt file", out, ids, n);
        free(out);
    }
    free(ids);

    /* Sampling: the same seed repeats itself, another seed takes another path. */
    char *runs[3];
    const int seeds[3] = {7, 7, 8};
    for (int r = 0; r < 3; r++) {
        snprintf(cmd, sizeof cmd, "vkllm run -m '%s' -p 'Once upon a time' -n 40 --temp 0.9 --top-k 40 "
                 "--top-p 0.95 --min-p 0.05 --repeat-penalty 1.1 --seed %d 2>/dev/null", model, seeds[r]);
        runs[r] = th_run_cli("", cmd, &rc);
        CHECK(rc == 0 && runs[r] && strlen(runs[r]) > 20);
    }
    if (runs[0] && runs[1] && runs[2]) {
        CHECK_MSG(!strcmp(runs[0], runs[1]), "seed 7 twice gave different text");
        CHECK_MSG(strcmp(runs[0], runs[2]) != 0, "seeds 7 and 8 gave the same text");
    }
    for (int r = 0; r < 3; r++) free(runs[r]);

    /* tokenize works on a vocabulary-only GGUF (no tensors, no device needed). */
    char vocab[1024];
    if (th_data_path("vocab-llama-spm/ggml-vocab-llama-spm.gguf", vocab, sizeof vocab)) {
        snprintf(cmd, sizeof cmd, "vkllm tokenize -m '%s' -p 'Hello world'", vocab);
        out = th_run_cli("", cmd, &rc);
        CHECK_MSG(rc == 0 && out && !strcmp(out, "1 15043 3186\n"), "tokenize gave: %s", out ? out : "");
        free(out);
        snprintf(cmd, sizeof cmd, "vkllm tokenize -m '%s' -p 'Hello world' --no-bos", vocab);
        out = th_run_cli("", cmd, &rc);
        CHECK_MSG(rc == 0 && out && !strcmp(out, "15043 3186\n"), "tokenize --no-bos gave: %s", out ? out : "");
        free(out);
    }

    cJSON_Delete(root);
    free(json);
    free(want);
    return th_finish();
}
