/* Checks the sampler: greedy and top-k 1 are argmax, draws follow softmax(logits / temp),
 * top-k / top-p / min-p exclusions are exact (checked against a brute-force ranking done
 * here), the repetition penalty flips choices when it should, and seeds reproduce. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "runtime/text/sampler.h"

static samp *make(float temp, int32_t top_k, float top_p, float min_p, float pen, int32_t last_n,
                  uint64_t seed, int32_t n_vocab) {
    samp_params p;
    samp_params_init(&p);
    p.temp = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.repeat_penalty = pen;
    p.repeat_last_n = last_n;
    p.seed = seed;
    samp *s = NULL;
    CHECK_OK(samp_create(&p, n_vocab, &s));
    return s;
}

static int32_t draw(samp *s, const float *logits, int32_t n) {
    int32_t t = -1;
    vkllm_status st = samp_sample(s, logits, n, &t);
    if (st != VKLLM_OK) CHECK_MSG(0, "samp_sample -> %d: %s", (int)st, th_last_error());
    return t;
}

static void test_defaults(void) {
    samp_params p;
    samp_params_init(&p);
    CHECK(p.temp == 0.8f && p.top_k == 40 && p.top_p == 0.95f && p.min_p == 0.05f);
    CHECK(p.repeat_penalty == 1.0f && p.repeat_last_n == 64);
}

static void test_greedy(void) {
    th_rng rng = {1};
    float lg[1000];
    samp *s = make(0.0f, 40, 0.95f, 0.05f, 1.0f, 64, 7, 1000);
    samp *k1 = make(1.5f, 1, 1.0f, 0.0f, 1.0f, 64, 7, 1000);
    for (int rep = 0; rep < 50; rep++) {
        th_fill_uniform(&rng, lg, 1000, -5, 5);
        int32_t best = 0;
        for (int i = 1; i < 1000; i++)
            if (lg[i] > lg[best]) best = i;
        CHECK(draw(s, lg, 1000) == best);
        CHECK(draw(k1, lg, 1000) == best);
        CHECK(draw(s, lg, 500) == draw(k1, lg, 500)); /* fewer logits than capacity */
    }
    const float tie[4] = {1, 3, 2, 3};
    CHECK(draw(s, tie, 4) == 1);
    CHECK(draw(k1, tie, 4) == 1); /* top-k ties break toward the lower id too */
    samp_free(s);
    samp_free(k1);
}

/* Empirical frequencies of `n_draw` draws against expected probabilities: every bin within
 * 5 standard deviations (the seed is fixed, so this is deterministic, not flaky). */
static void check_freqs(samp *s, const float *lg, int32_t n, const double *want, int n_draw,
                        const char *what) {
    int count[16] = {0}, out_of_range = 0;
    for (int i = 0; i < n_draw; i++) {
        int32_t t = draw(s, lg, n);
        if (t >= 0 && t < n)
            count[t]++;
        else
            out_of_range++;
    }
    CHECK_MSG(out_of_range == 0, "%s: %d draws out of range", what, out_of_range);
    for (int i = 0; i < n; i++) {
        double f = (double)count[i] / n_draw;
        double sd = sqrt(want[i] * (1 - want[i]) / n_draw);
        CHECK_MSG(fabs(f - want[i]) <= 5 * sd + 1e-12, "%s: token %d drawn %.5f, expected %.5f",
                  what, i, f, want[i]);
        if (want[i] == 0)
            CHECK_MSG(count[i] == 0, "%s: excluded token %d drawn %d times", what, i, count[i]);
    }
}

static void test_distribution(void) {
    const float lg[5] = {1.0f, 2.0f, 0.5f, -1.0f, 3.0f};
    double want[5], z = 0;
    /* softmax(lg / 0.7), computed directly */
    for (int i = 0; i < 5; i++) z += exp(lg[i] / 0.7);
    for (int i = 0; i < 5; i++) want[i] = exp(lg[i] / 0.7) / z;
    samp *s = make(0.7f, 0, 1.0f, 0.0f, 1.0f, 64, 123, 5);
    check_freqs(s, lg, 5, want, 200000, "temp 0.7");
    samp_free(s);

    /* top_k 3 at temp 1.3: tokens 4, 1, 0 renormalized; 2 and 3 never. */
    z = exp(3.0 / 1.3) + exp(2.0 / 1.3) + exp(1.0 / 1.3);
    double want3[5] = {exp(1.0 / 1.3) / z, exp(2.0 / 1.3) / z, 0, 0, exp(3.0 / 1.3) / z};
    s = make(1.3f, 3, 1.0f, 0.0f, 1.0f, 64, 321, 5);
    check_freqs(s, lg, 5, want3, 100000, "top_k 3");
    samp_free(s);

    /* -inf logits (masked tokens) are never drawn. */
    const float masked[4] = {-INFINITY, 0.0f, -INFINITY, 0.0f};
    const double want_m[4] = {0, 0.5, 0, 0.5};
    s = make(1.0f, 0, 1.0f, 0.0f, 1.0f, 64, 9, 4);
    check_freqs(s, masked, 4, want_m, 20000, "masked");
    samp_free(s);
}

static void test_top_p_min_p(void) {
    /* Probabilities at temp 1: 0.5, 0.3, 0.15, 0.05. */
    const float lg[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    struct {
        float top_p, min_p, temp;
        double want[4];
        const char *what;
    } cases[] = {
        /* 0.5 < 0.75 <= 0.8: keep {0,1}, then temperature 1 renormalizes */
        {0.75f, 0.0f, 1.0f, {0.625, 0.375, 0, 0}, "top_p 0.75"},
        {0.85f, 0.0f, 1.0f, {0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0}, "top_p 0.85"},
        {0.10f, 0.0f, 1.0f, {1, 0, 0, 0}, "top_p 0.1"},
        /* min_p 0.2: threshold 0.1 drops token 3 only */
        {1.0f, 0.2f, 1.0f, {0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0}, "min_p 0.2"},
        /* min_p 0.35 (threshold 0.175) with a hot temperature: the flattening comes after the
         * cut, so tokens 2 and 3 stay out. Weights 0.5^(1/4), 0.3^(1/4). */
        {1.0f, 0.35f, 4.0f, {0.840896 / 1.580979, 0.740083 / 1.580979, 0, 0}, "min_p 0.35 temp 4"},
        /* both: top_p keeps 3, min_p keeps 2 */
        {0.85f, 0.35f, 1.0f, {0.625, 0.375, 0, 0}, "top_p 0.85 + min_p 0.35"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        samp *s = make(cases[c].temp, 0, cases[c].top_p, cases[c].min_p, 1.0f, 64, 1000 + c, 4);
        check_freqs(s, lg, 4, cases[c].want, 40000, cases[c].what);
        samp_free(s);
    }
}

/* Brute-force reference for the kept set: rank everything by (logit desc, id asc) with
 * qsort, then apply top-k, top-p and min-p by their definitions. */
static const float *g_rank_logits;
static int rank_cmp(const void *pa, const void *pb) {
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    float la = g_rank_logits[a], lb = g_rank_logits[b];
    if (la != lb) return la > lb ? -1 : 1;
    return a < b ? -1 : a > b;
}

static int32_t allowed_set(const float *lg, int32_t n, int32_t k, float top_p, float min_p,
                           int32_t *order) {
    for (int32_t i = 0; i < n; i++) order[i] = i;
    g_rank_logits = lg;
    qsort(order, (size_t)n, sizeof *order, rank_cmp);
    int32_t m = (k > 0 && k < n) ? k : n;
    double z = 0;
    for (int32_t i = 0; i < m; i++) z += exp((double)lg[order[i]] - lg[order[0]]);
    double cum = 0;
    int32_t keep = m;
    for (int32_t i = 0; i < m; i++) {
        double p = exp((double)lg[order[i]] - lg[order[0]]) / z;
        if (p < min_p * (1.0 / z)) { /* p_max = 1/z */
            keep = i;
            break;
        }
        cum += p;
        if (cum >= top_p) {
            keep = i + 1;
            break;
        }
    }
    return keep;
}

static void test_large_vocab(void) {
    enum { N = 32000 };
    float *lg = malloc(N * sizeof *lg);
    int32_t *order = malloc(N * sizeof *order);
    uint8_t *ok = malloc(N), *seen = malloc(N);
    th_rng rng = {77};
    for (int i = 0; i < N; i++) lg[i] = 3.0f * th_normal(&rng);
    lg[100] = lg[200] = 14.0f; /* a tie at the top */
    struct {
        int32_t k;
        float top_p, min_p, temp;
        int n_draw;
    } cases[] = {
        {40, 1.0f, 0.0f, 100.0f, 4000}, /* nearly uniform over exactly the top 40 */
        {40, 0.95f, 0.05f, 0.8f, 2000}, /* llama.cpp defaults */
        {0, 0.9f, 0.0f, 1.0f, 2000},    /* top-p over the full vocabulary */
        {0, 1.0f, 0.001f, 2.0f, 2000},  /* min-p alone */
        {1000, 0.99f, 0.0f, 1.0f, 2000},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int32_t keep = allowed_set(lg, N, cases[c].k, cases[c].top_p, cases[c].min_p, order);
        memset(ok, 0, N);
        memset(seen, 0, N);
        for (int32_t i = 0; i < keep; i++) ok[order[i]] = 1;
        samp *s =
            make(cases[c].temp, cases[c].k, cases[c].top_p, cases[c].min_p, 1.0f, 64, 5 + c, N);
        int bad = 0, distinct = 0;
        for (int i = 0; i < cases[c].n_draw; i++) {
            int32_t t = draw(s, lg, N);
            if (t < 0 || t >= N || !ok[t]) {
                bad++;
            } else if (!seen[t]) {
                seen[t] = 1;
                distinct++;
            }
        }
        CHECK_MSG(bad == 0, "case %zu: %d draws outside the %d allowed tokens", c, bad, (int)keep);
        CHECK_MSG(keep > 1 && distinct > 1, "case %zu: keep %d, %d distinct drawn", c, (int)keep,
                  distinct);
        if (c == 0)
            CHECK_MSG(distinct == 40, "top_k 40 at temp 100 drew %d distinct tokens", distinct);
        samp_free(s);
    }
    free(lg);
    free(order);
    free(ok);
    free(seen);
}

static void test_penalty(void) {
    const float lg[4] = {2.0f, 1.9f, -1.0f, -1.05f};
    samp *s = make(0.0f, 40, 0.95f, 0.05f, 1.1f, 3, 1, 4);
    CHECK(draw(s, lg, 4) == 0);
    samp_accept(s, 0); /* 2.0 / 1.1 = 1.82 < 1.9 */
    CHECK(draw(s, lg, 4) == 1);
    const float neg[4] = {-9.0f, -9.5f, -1.0f, -1.05f};
    CHECK(draw(s, neg, 4) == 2);
    samp_accept(s, 2); /* -1.0 * 1.1 = -1.1 < -1.05 */
    CHECK(draw(s, neg, 4) == 3);
    CHECK(draw(s, lg, 4) == 1); /* 0 is still in the window of 3 */
    samp_accept(s, 3);
    samp_accept(s, 3); /* window now {2, 3, 3}: 0 has left it */
    CHECK(draw(s, lg, 4) == 0);
    samp_accept(s, -5); /* out-of-range ids are ignored */
    samp_accept(s, 4);
    CHECK(draw(s, lg, 4) == 0);
    samp_reset(s);
    CHECK(draw(s, neg, 4) == 2);
    samp_free(s);

    /* A token repeated in the window is penalized once: 2 / 1.2 = 1.67 still beats 1.5,
     * where five penalties (0.80) would not. */
    const float two[2] = {2.0f, 1.5f};
    s = make(0.0f, 0, 1.0f, 0.0f, 1.2f, 64, 1, 2);
    for (int i = 0; i < 5; i++) samp_accept(s, 0);
    CHECK(draw(s, two, 2) == 0);
    samp_free(s);

    /* Off when the penalty is 1 or the window is 0. */
    s = make(0.0f, 40, 0.95f, 0.05f, 1.0f, 64, 1, 4);
    samp_accept(s, 0);
    CHECK(draw(s, lg, 4) == 0);
    samp_free(s);
    s = make(0.0f, 40, 0.95f, 0.05f, 1.5f, 0, 1, 4);
    samp_accept(s, 0);
    CHECK(draw(s, lg, 4) == 0);
    samp_free(s);

    /* The penalty acts before top-k: with top_k 1 the penalized leader is replaced. */
    s = make(1.0f, 1, 1.0f, 0.0f, 1.1f, 64, 1, 4);
    samp_accept(s, 0);
    CHECK(draw(s, lg, 4) == 1);
    samp_free(s);
}

static void test_seeds(void) {
    enum { N = 100, T = 64 };
    float lg[N];
    th_rng rng = {3};
    th_fill_uniform(&rng, lg, N, -0.5f, 0.5f);
    int32_t a[T], b[T], c[T], d[T];
    samp *sa = make(1.0f, 0, 1.0f, 0.0f, 1.0f, 64, 42, N);
    samp *sb = make(1.0f, 0, 1.0f, 0.0f, 1.0f, 64, 42, N);
    samp *sc = make(1.0f, 0, 1.0f, 0.0f, 1.0f, 64, 43, N);
    for (int i = 0; i < T; i++) {
        a[i] = draw(sa, lg, N);
        b[i] = draw(sb, lg, N);
        c[i] = draw(sc, lg, N);
    }
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
    samp_reset(sa); /* restarts the stream */
    for (int i = 0; i < T; i++) d[i] = draw(sa, lg, N);
    CHECK(memcmp(a, d, sizeof a) == 0);
    samp_free(sa);
    samp_free(sb);
    samp_free(sc);
}

static void test_errors(void) {
    samp_params p;
    samp *s = NULL;
    samp_params_init(&p);
    CHECK(samp_create(&p, 0, &s) == VKLLM_ERR_INVALID_ARG && s == NULL);
    p.repeat_penalty = 0.0f;
    CHECK(samp_create(&p, 10, &s) == VKLLM_ERR_INVALID_ARG);
    samp_params_init(&p);
    p.repeat_last_n = -1;
    CHECK(samp_create(&p, 10, &s) == VKLLM_ERR_INVALID_ARG);
    samp_params_init(&p);
    p.temp = NAN;
    CHECK(samp_create(&p, 10, &s) == VKLLM_ERR_INVALID_ARG);

    samp_params_init(&p);
    CHECK_OK(samp_create(&p, 4, &s));
    int32_t t = -7;
    const float nan_lg[4] = {0, NAN, 1, 2}, inf_lg[4] = {0, INFINITY, 1, 2};
    const float all_masked[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    const float fine[5] = {0, 1, 2, 3, 4};
    CHECK(samp_sample(s, nan_lg, 4, &t) == VKLLM_ERR_INVALID_ARG);
    CHECK(samp_sample(s, inf_lg, 4, &t) == VKLLM_ERR_INVALID_ARG);
    CHECK(samp_sample(s, all_masked, 4, &t) == VKLLM_ERR_INVALID_ARG);
    CHECK(samp_sample(s, fine, 5, &t) == VKLLM_ERR_INVALID_ARG); /* more than capacity */
    CHECK(samp_sample(s, fine, 0, &t) == VKLLM_ERR_INVALID_ARG);
    CHECK(t == -7);
    samp_free(s);
    samp_free(NULL);
}

int main(void) {
    test_defaults();
    test_greedy();
    test_distribution();
    test_top_p_min_p();
    test_large_vocab();
    test_penalty();
    test_seeds();
    test_errors();
    return th_finish();
}
