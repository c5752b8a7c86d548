/* Threads, as include/vkllm.h promises them: contexts of one shared model driven from several
 * threads at once, and several models in one process each on its own thread (loaded there
 * too), give bit-identical logits and the same greedy tokens as the same work done alone.
 * Also with device memory treated as unmappable (the opening's staging ring is then shared
 * by the contexts), with profiling on (each context keeps its own table), contexts created
 * and freed concurrently on one model, and the log callback entered by one thread at a time.
 * Meant to run under ThreadSanitizer as well (-fsanitize=thread): the library's shared state
 * is locked, so a report there is a bug. ctest runs it twice: on lavapipe, and on the native
 * CPU path (test_threads_cpu, VKLLM_DEVICE=cpu: a pool per context), where the GPU-only
 * checks (per-op GPU profiles, the driver's debug lines) do not apply. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* The device the tests without one use is the native CPU path. */
static int on_cpu(void) {
    const char *d = getenv("VKLLM_DEVICE");
    return d && !strcmp(d, "cpu");
}
#include "testkit/synth.h"
#include "vkllm.h"

#define N_THREADS 2
#define N_STEPS 6
#define N_CTX 48
#define MAX_VOCAB 512

typedef struct model_file {
    const char *type;
    char path[1024];
} model_file;

/* What one sequence of work yields: the logits after the prompt and after each greedy step,
 * the tokens, and generate()'s tokens for the same prompt. */
typedef struct trace {
    float logits[N_STEPS + 1][MAX_VOCAB];
    int32_t tokens[N_STEPS];
    int32_t gen[N_STEPS];
    int n_gen;
    int ok;
    char err[512];
} trace;

static const int32_t prompts[N_THREADS][7] = {{1, 72, 101, 300, 5, 17, 200}, {1, 9, 33, 250, 41, 7, 120}};

/* ---------------------------------------------------------- log callback ---- */

static atomic_int in_callback;
static atomic_int overlaps;
static long log_lines; /* plain: the library promises one caller at a time */
static int validation_logs;

static void on_log(vkllm_log_level level, const char *msg, void *user) {
    (void)user;
    if (atomic_exchange(&in_callback, 1)) atomic_fetch_add(&overlaps, 1);
    log_lines++;
    if (level <= VKLLM_LOG_WARN && strncmp(msg, "validation:", 11) == 0) {
        validation_logs++;
        fprintf(stderr, "vkllm: %s\n", msg);
    } else if (level <= VKLLM_LOG_WARN) {
        fprintf(stderr, "vkllm: %s\n", msg);
    }
    atomic_store(&in_callback, 0);
}

/* ------------------------------------------------------------ the work ---- */

static void on_token(int32_t token, void *user) {
    trace *t = user;
    if (t->n_gen < N_STEPS) t->gen[t->n_gen++] = token;
}

static int argmax(const float *x, uint32_t n) {
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return (int)best;
}

#define TRY(call)                                                                                   \
    do {                                                                                            \
        vkllm_status st_ = (call);                                                                  \
        if (st_) {                                                                                  \
            snprintf(t->err, sizeof t->err, "%s: %s: %s", #call, vkllm_status_string(st_), vkllm_last_error()); \
            return;                                                                                 \
        }                                                                                           \
    } while (0)

/* Prompt, N_STEPS greedy evals keeping every logit, then generate() on the same prompt. */
static void run_context(vkllm_context *ctx, uint32_t n_vocab, const int32_t *prompt, trace *t) {
    t->ok = 0;
    t->n_gen = 0;
    vkllm_context_reset(ctx);
    TRY(vkllm_eval(ctx, prompt, 7));
    for (int s = 0; s <= N_STEPS; s++) {
        const float *lg = vkllm_get_logits(ctx);
        if (!lg) {
            snprintf(t->err, sizeof t->err, "no logits at step %d", s);
            return;
        }
        memcpy(t->logits[s], lg, n_vocab * sizeof(float));
        if (s == N_STEPS) break;
        t->tokens[s] = argmax(lg, n_vocab);
        TRY(vkllm_eval(ctx, &t->tokens[s], 1));
    }
    vkllm_context_reset(ctx);
    vkllm_generate_params gp;
    vkllm_generate_params_init(&gp);
    gp.prompt_tokens = prompt;
    gp.n_prompt_tokens = 7;
    gp.n_predict = N_STEPS;
    gp.sampling.temp = 0;
    gp.on_token = on_token;
    gp.user = t;
    vkllm_timings tm;
    TRY(vkllm_generate(ctx, &gp, &tm));
    t->ok = 1;
}

static vkllm_status load(const model_file *mf, int profile, vkllm_model **m) {
    vkllm_model_params mp;
    th_model_params_init(&mp);
    mp.ctx.n_ctx = N_CTX;
    mp.profile = profile;
    return vkllm_model_load(mf->path, &mp, m);
}

static vkllm_status new_context(vkllm_model *m, vkllm_context **ctx) {
    vkllm_context_params cp;
    vkllm_context_params_init(&cp);
    cp.n_ctx = N_CTX;
    return vkllm_context_create(m, &cp, ctx);
}

/* Both must be equal to the last bit. */
static void compare(const char *what, const trace *alone, const trace *threaded, uint32_t n_vocab) {
    CHECK_MSG(threaded->ok, "%s: %s", what, threaded->err);
    if (!threaded->ok) return;
    int first_bad = -1;
    for (int s = 0; s <= N_STEPS && first_bad < 0; s++)
        if (memcmp(alone->logits[s], threaded->logits[s], n_vocab * sizeof(float))) first_bad = s;
    CHECK_MSG(first_bad < 0, "%s: logits differ from the single-threaded run at step %d", what, first_bad);
    CHECK_MSG(!memcmp(alone->tokens, threaded->tokens, sizeof alone->tokens), "%s: greedy tokens differ", what);
    CHECK_MSG(threaded->n_gen == alone->n_gen && !memcmp(alone->gen, threaded->gen, alone->n_gen * sizeof(int32_t)),
              "%s: generate() tokens differ", what);
}

/* --------------------------------------------- contexts of one shared model ---- */

typedef struct ctx_job {
    vkllm_model *m;
    vkllm_context *ctx;
    uint32_t n_vocab;
    const int32_t *prompt;
    pthread_barrier_t *start;
    trace *t;
    int rounds;
    int create_in_thread; /* create and free the context on the thread, each round */
} ctx_job;

static void *ctx_worker(void *arg) {
    ctx_job *j = arg;
    pthread_barrier_wait(j->start);
    for (int r = 0; r < j->rounds; r++) {
        trace *t = j->t;
        if (j->create_in_thread) {
            vkllm_status st = new_context(j->m, &j->ctx);
            if (st) {
                snprintf(t->err, sizeof t->err, "context: %s", vkllm_last_error());
                t->ok = 0;
                return NULL;
            }
        }
        run_context(j->ctx, j->n_vocab, j->prompt, t);
        if (j->create_in_thread) {
            vkllm_context_free(j->ctx);
            j->ctx = NULL;
        }
        if (!t->ok) break;
    }
    return NULL;
}

static uint64_t profile_calls(vkllm_context *ctx, const char *op) {
    vkllm_profile_entry *e = NULL;
    uint32_t n = 0;
    uint64_t calls = 0;
    if (vkllm_context_get_profile(ctx, &e, &n) != VKLLM_OK) return 0;
    for (uint32_t i = 0; i < n; i++)
        if (!strcmp(e[i].op, op)) calls += e[i].calls;
    vkllm_free(e);
    return calls;
}

/* Two contexts on one model, each on its own thread at the same time, against each context's
 * work done alone first. */
static void test_shared_model(const model_file *mf, int profile, const char *mode) {
    vkllm_model *m = NULL;
    CHECK_OK(load(mf, profile, &m));
    if (!m) return;
    uint32_t nv = (uint32_t)vkllm_n_vocab(m);
    static trace alone[N_THREADS], together[N_THREADS];
    vkllm_context *ctx[N_THREADS] = {NULL};
    for (int i = 0; i < N_THREADS; i++) CHECK_OK(new_context(m, &ctx[i]));
    uint64_t matvec_alone = 0;
    for (int i = 0; i < N_THREADS && ctx[i]; i++) {
        run_context(ctx[i], nv, prompts[i], &alone[i]);
        CHECK_MSG(alone[i].ok, "%s alone: %s", mf->type, alone[i].err);
        if (profile) {
            matvec_alone = profile_calls(ctx[i], "matvec");
            vkllm_context_reset_profile(ctx[i]);
        }
    }
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, N_THREADS);
    pthread_t th[N_THREADS];
    ctx_job jobs[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        jobs[i] = (ctx_job){m, ctx[i], nv, prompts[i], &start, &together[i], 1, 0};
        pthread_create(&th[i], NULL, ctx_worker, &jobs[i]);
    }
    for (int i = 0; i < N_THREADS; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    char what[128];
    for (int i = 0; i < N_THREADS; i++) {
        snprintf(what, sizeof what, "%s, shared model (%s), context %d", mf->type, mode, i);
        compare(what, &alone[i], &together[i], nv);
    }
    if (profile && ctx[0] && ctx[1] && !on_cpu()) {
        /* Each context's table holds its own work only: as many matvec calls as alone. */
        uint64_t a = profile_calls(ctx[0], "matvec"), b = profile_calls(ctx[1], "matvec");
        CHECK_MSG(matvec_alone > 0 && a == matvec_alone && b == matvec_alone,
                  "%s: profiles of concurrent contexts: %llu and %llu matvec calls, %llu alone", mf->type,
                  (unsigned long long)a, (unsigned long long)b, (unsigned long long)matvec_alone);
    }
    for (int i = 0; i < N_THREADS; i++) vkllm_context_free(ctx[i]);

    /* Contexts created, used and freed on the threads, several rounds, racing for the one the
     * load made in advance. */
    pthread_barrier_init(&start, NULL, N_THREADS);
    for (int i = 0; i < N_THREADS; i++) {
        jobs[i] = (ctx_job){m, NULL, nv, prompts[i], &start, &together[i], 2, 1};
        pthread_create(&th[i], NULL, ctx_worker, &jobs[i]);
    }
    for (int i = 0; i < N_THREADS; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < N_THREADS; i++) {
        snprintf(what, sizeof what, "%s, shared model (%s), context %d made on its thread", mf->type, mode, i);
        compare(what, &alone[i], &together[i], nv);
    }
    vkllm_model_free(m);
    printf("%-5s two contexts of one model on two threads (%s): bit-identical logits, same tokens\n", mf->type,
           mode);
}

/* ----------------------------------------------- models on their own threads ---- */

typedef struct model_job {
    const model_file *mf;
    pthread_barrier_t *start;
    trace *t;
} model_job;

static void *model_worker(void *arg) {
    model_job *j = arg;
    trace *t = j->t;
    vkllm_model *m = NULL;
    vkllm_context *ctx = NULL;
    t->ok = 0;
    pthread_barrier_wait(j->start);
    vkllm_status st = load(j->mf, 0, &m);
    if (!st) st = new_context(m, &ctx);
    if (st) snprintf(t->err, sizeof t->err, "%s: %s", j->mf->type, vkllm_last_error());
    else run_context(ctx, (uint32_t)vkllm_n_vocab(m), prompts[0], t);
    vkllm_context_free(ctx);
    vkllm_model_free(m);
    return NULL;
}

/* Two models, each loaded, run and freed on its own thread at the same time. */
static void test_two_models(const model_file *a, const model_file *b) {
    const model_file *mfs[N_THREADS] = {a, b};
    static trace alone[N_THREADS], together[N_THREADS];
    uint32_t nv[N_THREADS] = {0};
    for (int i = 0; i < N_THREADS; i++) {
        vkllm_model *m = NULL;
        vkllm_context *ctx = NULL;
        CHECK_OK(load(mfs[i], 0, &m));
        if (m) CHECK_OK(new_context(m, &ctx));
        if (ctx) {
            nv[i] = (uint32_t)vkllm_n_vocab(m);
            run_context(ctx, nv[i], prompts[0], &alone[i]);
            CHECK_MSG(alone[i].ok, "%s alone: %s", mfs[i]->type, alone[i].err);
        }
        vkllm_context_free(ctx);
        vkllm_model_free(m);
    }
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, N_THREADS);
    pthread_t th[N_THREADS];
    model_job jobs[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        jobs[i] = (model_job){mfs[i], &start, &together[i]};
        pthread_create(&th[i], NULL, model_worker, &jobs[i]);
    }
    for (int i = 0; i < N_THREADS; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    char what[128];
    for (int i = 0; i < N_THREADS; i++) {
        snprintf(what, sizeof what, "model %s on its own thread", mfs[i]->type);
        compare(what, &alone[i], &together[i], nv[i]);
    }
    printf("%s and %s loaded and run on two threads at once: bit-identical logits, same tokens\n", a->type,
           b->type);
}

static void make_model(model_file *mf, const char *type, uint64_t seed) {
    char name[64];
    snprintf(name, sizeof name, "threads_%s.gguf", type);
    th_tmp_path(name, mf->path, sizeof mf->path);
    mf->type = type;
    synth_opts o;
    synth_default_opts(&o);
    o.dim = 128, o.n_layer = 2, o.n_ff = 256, o.n_head = 4, o.n_head_kv = 2, o.n_vocab = 320, o.n_ctx = 128;
    o.type = type;
    o.seed = seed;
    CHECK_OK(synth_write_file(&o, mf->path));
}

int main(void) {
    if (on_cpu()) printf("on the native CPU path\n");
    vkllm_set_log_callback(on_log, NULL);
    static model_file f32, q40;
    make_model(&f32, "f32", 3);
    make_model(&q40, "q4_0", 4);

    test_shared_model(&q40, 0, "mapped memory");
    test_shared_model(&f32, 1, "profiling");
    /* Every upload and readback through each opening's staging ring, shared by the contexts. */
    setenv("VKLLM_NO_MAPPED_DEVICE_MEMORY", "1", 1);
    test_shared_model(&q40, 0, "staging ring");
    unsetenv("VKLLM_NO_MAPPED_DEVICE_MEMORY");

    /* With debug logging from every thread at once: one line at a time into the callback. */
    vkllm_set_log_level(VKLLM_LOG_DEBUG);
    long before = log_lines;
    test_two_models(&f32, &q40);
    vkllm_set_log_level(VKLLM_LOG_WARN);
    CHECK_MSG(log_lines > before || on_cpu(), "no debug lines were logged");
    CHECK_MSG(atomic_load(&overlaps) == 0, "the log callback was entered by two threads at once %d times",
              atomic_load(&overlaps));
    printf("log callback: %ld lines from several threads, never two at once\n", log_lines - before);

    CHECK_MSG(validation_logs == 0, "the validation layer reported %d message(s)", validation_logs);
    remove(f32.path);
    remove(q40.path);
    return th_finish();
}
