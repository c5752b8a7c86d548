/* llama.cpp-style token sampler. Candidates rank by logit, then id (a strict total order),
 * so each filter's result is independent of how it selects; nothing sorts the whole vocabulary:
 * top-k keeps a k-entry heap (O(n log k)), top-p runs a quickselect guided by mass (O(n)). */
#include "runtime/text/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

typedef struct samp_cand {
    float logit;
    int32_t id;
    double w; /* exp(logit - max logit): unnormalized probability, for top-p */
} samp_cand;

struct samp {
    samp_params p;
    int32_t n_vocab;
    uint64_t rng[4]; /* xoshiro256** state */
    int32_t *hist;   /* (repeat_last_n) ring of accepted tokens */
    int32_t hist_len, hist_next;
    samp_cand *cand; /* (n_vocab) the candidates of the current call */
    uint8_t *mark;   /* (n_vocab) all zero between calls; flags tokens already penalized */
};

void samp_params_init(samp_params *p) {
    p->temp = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->seed = SAMP_DEFAULT_SEED;
}

/* ---------------------------------------------------------------- RNG ---- */

static uint64_t samp_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t samp_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t samp_next(samp *s) {
    uint64_t *r = s->rng;
    uint64_t out = samp_rotl(r[1] * 5, 7) * 9;
    uint64_t t = r[1] << 17;
    r[2] ^= r[0];
    r[3] ^= r[1];
    r[1] ^= r[2];
    r[0] ^= r[3];
    r[2] ^= t;
    r[3] = samp_rotl(r[3], 45);
    return out;
}

/* Uniform in [0, 1) with 53 random bits. */
static double samp_uniform(samp *s) { return (double)(samp_next(s) >> 11) * 0x1.0p-53; }

/* ---------------------------------------------------------------- lifetime ---- */

vkllm_status samp_create(const samp_params *p, int32_t n_vocab, samp **out) {
    *out = NULL;
    if (n_vocab <= 0)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "samp_create: vocabulary size %d must be positive",
                       (int)n_vocab);
    if (isnan(p->temp) || isnan(p->top_p) || isnan(p->min_p))
        return vkl_err(VKLLM_ERR_INVALID_ARG,
                       "samp_create: temp %g, top_p %g, min_p %g: none may be NaN", (double)p->temp,
                       (double)p->top_p, (double)p->min_p);
    if (!(p->repeat_penalty > 0.0f) || isinf(p->repeat_penalty))
        return vkl_err(VKLLM_ERR_INVALID_ARG,
                       "samp_create: repeat penalty %g must be finite and > 0 (1 turns it off)",
                       (double)p->repeat_penalty);
    if (p->repeat_last_n < 0)
        return vkl_err(VKLLM_ERR_INVALID_ARG,
                       "samp_create: repeat_last_n %d must be >= 0 (0 turns the penalty off)",
                       (int)p->repeat_last_n);
    samp *s = vkl_calloc(1, sizeof *s);
    if (!s) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "samp_create: cannot allocate a sampler");
    s->p = *p;
    s->n_vocab = n_vocab;
    s->cand = vkl_malloc((size_t)n_vocab * sizeof *s->cand);
    s->mark = vkl_calloc((size_t)n_vocab, 1);
    s->hist = vkl_malloc((size_t)(p->repeat_last_n ? p->repeat_last_n : 1) * sizeof *s->hist);
    if (!s->cand || !s->mark || !s->hist) {
        samp_free(s);
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY,
                       "samp_create: cannot allocate work buffers for %d tokens", (int)n_vocab);
    }
    samp_reset(s);
    *out = s;
    return VKLLM_OK;
}

void samp_free(samp *s) {
    if (!s) return;
    free(s->hist);
    free(s->mark);
    free(s->cand);
    free(s);
}

void samp_reset(samp *s) {
    uint64_t x = s->p.seed;
    for (int i = 0; i < 4; i++) s->rng[i] = samp_splitmix64(&x);
    s->hist_len = 0;
    s->hist_next = 0;
}

void samp_accept(samp *s, int32_t token) {
    if (token < 0 || token >= s->n_vocab || s->p.repeat_last_n == 0) return;
    s->hist[s->hist_next] = token;
    s->hist_next = (s->hist_next + 1) % s->p.repeat_last_n;
    if (s->hist_len < s->p.repeat_last_n) s->hist_len++;
}

/* ---------------------------------------------------------------- filters ---- */

/* 1 when a ranks before b: higher logit, then lower id. */
static int samp_before(const samp_cand *a, const samp_cand *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static void samp_swap(samp_cand *a, samp_cand *b) {
    samp_cand t = *a;
    *a = *b;
    *b = t;
}

/* Each token seen in the window is penalized once, however often it repeats. */
static void samp_penalize(samp *s, samp_cand *c, int32_t n) {
    float pen = s->p.repeat_penalty;
    if (pen == 1.0f) return;
    for (int32_t i = 0; i < s->hist_len; i++) {
        int32_t t = s->hist[i];
        if (t >= n || s->mark[t]) continue;
        s->mark[t] = 1;
        c[t].logit = c[t].logit > 0.0f ? c[t].logit / pen : c[t].logit * pen;
    }
    for (int32_t i = 0; i < s->hist_len; i++) s->mark[s->hist[i]] = 0;
}

/* Sift the root of a heap whose root is its worst entry (the last to rank) down. */
static void samp_sift_down(samp_cand *h, int32_t n, int32_t i) {
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, worst = i;
        if (l < n && samp_before(&h[worst], &h[l])) worst = l;
        if (r < n && samp_before(&h[worst], &h[r])) worst = r;
        if (worst == i) return;
        samp_swap(&h[i], &h[worst]);
        i = worst;
    }
}

/* Moves the k best of c[n] to c[0..k), best first. */
static void samp_top_k(samp_cand *c, int32_t n, int32_t k) {
    for (int32_t i = k / 2 - 1; i >= 0; i--) samp_sift_down(c, k, i);
    for (int32_t i = k; i < n; i++) {
        if (!samp_before(&c[i], &c[0])) continue;
        c[0] = c[i];
        samp_sift_down(c, k, 0);
    }
    /* Heap sort: repeatedly move the worst to the end, leaving best-first order. */
    for (int32_t end = k - 1; end > 0; end--) {
        samp_swap(&c[0], &c[end]);
        samp_sift_down(c, end, 0);
    }
}

/* Partitions c[lo..hi) around a median-of-three pivot: better-ranked entries before it.
 * Returns the pivot's final index. Keys are distinct (ids break ties), so no entry equals it. */
static int32_t samp_partition(samp_cand *c, int32_t lo, int32_t hi) {
    int32_t mid = lo + (hi - lo) / 2, last = hi - 1;
    if (samp_before(&c[mid], &c[lo])) samp_swap(&c[mid], &c[lo]);
    if (samp_before(&c[last], &c[lo])) samp_swap(&c[last], &c[lo]);
    if (samp_before(&c[mid], &c[last])) samp_swap(&c[mid], &c[last]); /* median now at last */
    int32_t m = lo;
    for (int32_t i = lo; i < last; i++)
        if (samp_before(&c[i], &c[last])) samp_swap(&c[i], &c[m++]);
    samp_swap(&c[m], &c[last]);
    return m;
}

/* top-p without a full sort: returns the smallest m such that the m best of c[n] carry
 * weight >= need, and leaves exactly those in c[0..m) (in no particular order). A
 * quickselect that follows the running mass instead of a rank: O(n) expected. */
static int32_t samp_top_p_select(samp_cand *c, int32_t n, double need) {
    int32_t lo = 0, hi = n;
    while (hi - lo > 16) {
        int32_t m = samp_partition(c, lo, hi);
        double before = 0.0;
        for (int32_t i = lo; i < m; i++) before += c[i].w;
        if (before >= need) {
            hi = m;
        } else if (before + c[m].w >= need) {
            return m + 1;
        } else {
            need -= before + c[m].w;
            lo = m + 1;
        }
    }
    for (int32_t i = lo + 1; i < hi; i++) /* insertion sort of the last few, then scan */
        for (int32_t j = i; j > lo && samp_before(&c[j], &c[j - 1]); j--)
            samp_swap(&c[j], &c[j - 1]);
    double cum = 0.0;
    for (int32_t i = lo; i < hi; i++) {
        cum += c[i].w;
        if (cum >= need) return i + 1;
    }
    return hi; /* rounding left the mass just short: keep everything that remained */
}

vkllm_status samp_sample(samp *s, const float *logits, int32_t n_vocab, int32_t *token) {
    if (n_vocab <= 0 || n_vocab > s->n_vocab)
        return vkl_err(VKLLM_ERR_INVALID_ARG,
                       "samp_sample: %d logits for a sampler made for at most %d", (int)n_vocab,
                       (int)s->n_vocab);
    samp_cand *c = s->cand;
    for (int32_t i = 0; i < n_vocab; i++) {
        if (isnan(logits[i]) || (isinf(logits[i]) && logits[i] > 0))
            return vkl_err(VKLLM_ERR_INVALID_ARG,
                           "samp_sample: logit of token %d is %g: the forward pass produced a "
                           "non-finite value",
                           (int)i, (double)logits[i]);
        c[i].logit = logits[i];
        c[i].id = i;
    }
    samp_penalize(s, c, n_vocab);

    int32_t n = n_vocab;
    int sorted = 0;
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (samp_before(&c[i], &c[best])) best = i;
    double max = c[best].logit;
    if (isinf(max))
        return vkl_err(VKLLM_ERR_INVALID_ARG,
                       "samp_sample: every one of %d logits is -inf: nothing can be sampled",
                       (int)n_vocab);
    if (s->p.temp <= 0.0f) {
        *token = c[best].id;
        return VKLLM_OK;
    }

    if (s->p.top_k > 0 && s->p.top_k < n) {
        samp_top_k(c, n, s->p.top_k);
        n = s->p.top_k;
        sorted = 1;
    }

    /* top-p and min-p each keep a prefix of the ranked candidates; the kept set is the shorter
     * prefix. min-p's cut is a logit threshold, so it can run first, leaving top-p fewer
     * candidates to rank, as long as top-p's mass is measured against the sum over all n. */
    if (s->p.top_p < 1.0f || s->p.min_p > 0.0f) {
        double z = 0.0;
        for (int32_t i = 0; i < n; i++) {
            c[i].w = exp((double)c[i].logit - max);
            z += c[i].w;
        }
        if (s->p.min_p > 0.0f) {
            double floor = s->p.min_p >= 1.0f ? max : max + log((double)s->p.min_p);
            int32_t m = 0;
            for (int32_t i = 0; i < n; i++)
                if ((double)c[i].logit >= floor) c[m++] = c[i]; /* keeps the order */
            n = m;
        }
        if (s->p.top_p < 1.0f) {
            double need = (double)s->p.top_p * z;
            if (sorted) {
                double cum = 0.0;
                for (int32_t i = 0; i < n; i++) {
                    cum += c[i].w;
                    if (cum >= need) {
                        n = i + 1;
                        break;
                    }
                }
            } else {
                n = samp_top_p_select(c, n, need);
            }
        }
    }

    /* Temperature, softmax and the draw, in double. The best candidate weighs exp(0) = 1, so
     * the total is >= 1 and the walk below always ends on a kept token. */
    double inv_t = 1.0 / (double)s->p.temp;
    double total = 0.0;
    for (int32_t i = 0; i < n; i++) {
        double x = (double)c[i].logit - max; /* spelled out so a tiny temp (inv_t inf) gives 1 */
        c[i].w = x == 0.0 ? 1.0 : exp(x * inv_t);
        total += c[i].w;
    }
    double u = samp_uniform(s) * total;
    double cum = 0.0;
    int32_t pick = -1;
    for (int32_t i = 0; i < n; i++) {
        if (c[i].w <= 0.0) continue;
        pick = i; /* rounding could leave u just above the final sum: fall back to the last */
        cum += c[i].w;
        if (u < cum) break;
    }
    *token = c[pick].id;
    return VKLLM_OK;
}
