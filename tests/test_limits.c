/* The edges of generation and of the caches, through the public API on a tiny synthetic model:
 * n_predict 0, INT32_MAX and -1 (the context fills up: a stop, not an error), a full context
 * refusing more, a prompt longer than the context (refused before anything runs, the context
 * still usable), on_text asking to stop, NULL arguments; and a shader/pipeline cache folder
 * that cannot be used (read-only, or a path below a regular file when running as root, where
 * permissions are not enforced) or sits on a full disk: a warning, the right tokens, no
 * validation message, no half-written file. */
#include <sys/stat.h>
#include <unistd.h>

#include "fault_harness.h"

typedef struct text_stop {
    int calls, stop_after;
} text_stop;

static int on_text_stop(const char *text, size_t len, int32_t token, void *user) {
    (void)text, (void)len, (void)token;
    text_stop *s = user;
    return ++s->calls >= s->stop_after;
}

static void test_limits(const fh_model *mf) {
    vkllm_model *m = NULL;
    vkllm_context *ctx = NULL;
    vkllm_context_params cp;
    fh_context_params(&cp);
    CHECK_OK(fh_load(mf, &m));
    if (m) CHECK_OK(vkllm_context_create(m, &cp, &ctx));
    if (!ctx) goto out;
    fh_gen g;
    vkllm_timings tm;

    /* n_predict 0: the prompt only. */
    CHECK_OK(fh_generate(ctx, 0, &g, &tm));
    CHECK(g.n == 0 && tm.n_gen == 0 && tm.n_prompt == FH_PROMPT && tm.stop == VKLLM_STOP_N_PREDICT);
    CHECK(vkllm_context_pos(ctx) == FH_PROMPT);

    /* Huge n_predict, and -1: generation runs until the context is full (or EOS). */
    int32_t huge[] = {INT32_MAX, -1};
    for (int i = 0; i < 2; i++) {
        CHECK_OK(fh_generate(ctx, huge[i], &g, &tm));
        CHECK_MSG(tm.stop == VKLLM_STOP_CONTEXT || tm.stop == VKLLM_STOP_EOS, "n_predict %d stopped with %d",
                  huge[i], (int)tm.stop);
        if (tm.stop == VKLLM_STOP_CONTEXT) CHECK(vkllm_context_pos(ctx) == FH_CTX);
        CHECK(g.n >= 1 && !memcmp(g.ids, mf->ref, (size_t)(g.n < FH_GEN ? g.n : FH_GEN) * sizeof(int32_t)));
    }
    /* The full context refuses more, says so, and keeps its state. */
    if (vkllm_context_pos(ctx) == FH_CTX) {
        int32_t t = 1;
        CHECK(vkllm_eval(ctx, &t, 1) == VKLLM_ERR_CONTEXT_FULL);
        CHECK(strstr(vkllm_last_error(), "context") != NULL);
        CHECK(vkllm_context_pos(ctx) == FH_CTX);
    }

    /* A prompt longer than the context: refused before anything runs; the context still works. */
    int32_t longp[FH_CTX + 3];
    for (int i = 0; i < FH_CTX + 3; i++) longp[i] = 1 + i % 200;
    vkllm_generate_params gp;
    vkllm_generate_params_init(&gp);
    gp.prompt_tokens = longp;
    gp.n_prompt_tokens = FH_CTX + 3;
    gp.sampling.temp = 0;
    vkllm_context_reset(ctx);
    CHECK(vkllm_generate(ctx, &gp, &tm) == VKLLM_ERR_CONTEXT_FULL);
    CHECK(*vkllm_last_error() != 0);
    CHECK(vkllm_context_pos(ctx) == 0);
    CHECK(vkllm_eval(ctx, longp, FH_CTX + 1) == VKLLM_ERR_CONTEXT_FULL);
    CHECK_OK(fh_generate(ctx, FH_GEN, &g, NULL));
    CHECK(fh_same_tokens(&g, mf));

    /* on_text asking to stop: not an error, the reason says so. */
    text_stop ts = {0, 1};
    vkllm_generate_params_init(&gp);
    gp.prompt_tokens = fh_prompt;
    gp.n_prompt_tokens = FH_PROMPT;
    gp.n_predict = 16;
    gp.sampling.temp = 0;
    gp.on_text = on_text_stop;
    gp.user = &ts;
    vkllm_context_reset(ctx);
    CHECK_OK(vkllm_generate(ctx, &gp, &tm));
    CHECK_MSG(ts.calls == 1 && tm.stop == VKLLM_STOP_CALLBACK && tm.n_gen >= 1 && tm.n_gen < 16,
              "on_text stop: %d calls, stop %d, %u generated", ts.calls, (int)tm.stop, tm.n_gen);

    /* NULL arguments: a status, not a crash. */
    CHECK(vkllm_generate(NULL, &gp, &tm) == VKLLM_ERR_INVALID_ARG);
    CHECK(vkllm_generate(ctx, NULL, &tm) == VKLLM_ERR_INVALID_ARG);
    CHECK(vkllm_eval(NULL, fh_prompt, 1) == VKLLM_ERR_INVALID_ARG);
    CHECK(vkllm_get_logits(NULL) == NULL);
    printf("n_predict 0, INT32_MAX and -1, a full context, a prompt of %u for %u positions, on_text stop, NULL "
           "arguments: ok\n", FH_CTX + 3, FH_CTX);
out:
    vkllm_context_free(ctx);
    vkllm_model_free(m);
    fh_live_zero("limits", 0);
}

/* As a child process with VKLLM_CACHE_DIR pointing somewhere unusable (the folder is chosen
 * once per process): prints the status, the cache warnings and the tokens. */
static int cache_child(const char *path) {
    fh_model mf = {.type = "child"};
    snprintf(mf.path, sizeof mf.path, "%s", path);
    vkllm_model *m = NULL;
    vkllm_context *ctx = NULL;
    vkllm_context_params cp;
    fh_context_params(&cp);
    fh_gen g = {{0}, 0};
    vkllm_status st = fh_load(&mf, &m);
    if (!st) st = vkllm_context_create(m, &cp, &ctx);
    if (!st) st = fh_generate(ctx, FH_GEN, &g, NULL);
    printf("status %d warnings %d validation %d tokens", (int)st, fh_cache_warnings, fh_validation_logs);
    for (int i = 0; i < g.n; i++) printf(" %d", g.ids[i]);
    printf("\n");
    vkllm_context_free(ctx);
    vkllm_model_free(m);
    return 0;
}

static void test_cache_dir(const fh_model *mf, const char *self) {
    char dir[1100], file[1024], cmd[4096];
    const char *how;
    th_tmp_path("limits_ro_cache", dir, sizeof dir);
    mkdir(dir, 0700);
    chmod(dir, 0500);
    if (access(dir, W_OK) == 0) { /* root: permissions are not enforced */
        th_tmp_path("limits_cache_file", file, sizeof file);
        FILE *f = fopen(file, "w");
        if (f) fclose(f);
        snprintf(dir, sizeof dir, "%s/cache", file);
        how = "a path below a regular file (running as root)";
    } else {
        how = "a read-only folder";
    }
    snprintf(cmd, sizeof cmd, "VKLLM_CACHE_DIR='%s' '%s' --cache-child '%s'", dir, self, mf->path);
    FILE *p = popen(cmd, "r");
    char line[512] = "";
    if (p) {
        if (!fgets(line, sizeof line, p)) line[0] = 0;
        pclose(p);
    }
    int st = -1, warnings = -1, validation = -1, n = 0;
    int32_t ids[FH_GEN] = {0};
    char *tok = strstr(line, "tokens");
    if (sscanf(line, "status %d warnings %d validation %d", &st, &warnings, &validation) == 3 && tok) {
        tok += 6;
        char *end;
        for (long v = strtol(tok, &end, 10); end != tok && n < FH_GEN; v = strtol(tok, &end, 10)) {
            ids[n++] = (int32_t)v;
            tok = end;
        }
    }
    CHECK_MSG(st == 0 && warnings >= 1 && validation == 0 && n == FH_GEN && !memcmp(ids, mf->ref, sizeof ids),
              "cache at %s: the child said \"%s\"", how, line);
    printf("cache folder unusable (%s): right tokens, %d warning%s\n", how, warnings, warnings == 1 ? "" : "s");
    th_tmp_path("limits_ro_cache", dir, sizeof dir);
    chmod(dir, 0700);
    rmdir(dir);
    th_tmp_path("limits_cache_file", file, sizeof file);
    remove(file);

    /* A full disk: the child may create files but not write a byte into them (a file size
     * limit of 0, SIGXFSZ ignored, so writes fail with EFBIG as they would with ENOSPC). */
    th_tmp_path("limits_full_cache", dir, sizeof dir);
    mkdir(dir, 0700);
    snprintf(cmd, sizeof cmd, "trap '' XFSZ; ulimit -f 0; VKLLM_CACHE_DIR='%s' '%s' --cache-child '%s'", dir,
             self, mf->path);
    line[0] = 0;
    p = popen(cmd, "r");
    if (p) {
        if (!fgets(line, sizeof line, p)) line[0] = 0;
        pclose(p);
    }
    n = 0;
    tok = strstr(line, "tokens");
    st = warnings = validation = -1;
    if (sscanf(line, "status %d warnings %d validation %d", &st, &warnings, &validation) == 3 && tok) {
        tok += 6;
        char *end;
        for (long v = strtol(tok, &end, 10); end != tok && n < FH_GEN; v = strtol(tok, &end, 10)) {
            ids[n++] = (int32_t)v;
            tok = end;
        }
    }
    /* Nothing half-written may stay behind: every file the child left must be empty of
     * partial data (none at all is expected: failed stores remove their temporary file). */
    int left = 0;
    char ls[1300];
    snprintf(ls, sizeof ls, "ls -A '%s' | wc -l", dir);
    FILE *lp = popen(ls, "r");
    if (lp) {
        if (fscanf(lp, "%d", &left) != 1) left = -1;
        pclose(lp);
    }
    CHECK_MSG(st == 0 && warnings >= 1 && validation == 0 && n == FH_GEN && !memcmp(ids, mf->ref, sizeof ids) &&
                  left == 0,
              "cache on a full disk: the child said \"%s\", %d files left in the folder", line, left);
    printf("cache folder on a full disk: right tokens, %d warning%s, %d files left\n", warnings,
           warnings == 1 ? "" : "s", left);
    snprintf(ls, sizeof ls, "rm -rf '%s'", dir);
    if (system(ls) != 0) printf("note: could not remove %s\n", dir);
}

int main(int argc, char **argv) {
    vkllm_set_log_callback(fh_on_log, NULL);
    if (argc == 3 && !strcmp(argv[1], "--cache-child")) return cache_child(argv[2]);
    char self[1024];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    self[sl > 0 ? sl : 0] = 0;
    static fh_model f32;
    fh_make_model(&f32, "limits", "f32");
    test_limits(&f32);
    test_cache_dir(&f32, self);
    CHECK_MSG(fh_validation_logs == 0, "the validation layer reported %d message(s)", fh_validation_logs);
    remove(f32.path);
    return th_finish();
}
