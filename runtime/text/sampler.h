/* Token sampling in llama.cpp's default order: repetition penalty, top-k, top-p, min-p,
 * temperature, then a draw. Each sampler owns its RNG and its work buffers, so sampling
 * allocates nothing per token and two samplers never share state. */
#ifndef VKLLM_SAMPLER_H
#define VKLLM_SAMPLER_H

#include <stddef.h>
#include <stdint.h>
#include "vkllm.h"

/* The default seed is fixed so that runs reproduce; pass a time-derived seed for variety. */
#define SAMP_DEFAULT_SEED 0x5eedull

typedef struct samp_params {
    float temp;            /* <= 0: greedy (argmax after the repetition penalty) */
    int32_t top_k;         /* keep the k most likely tokens; <= 0: off */
    float top_p;           /* keep the smallest set with probability mass >= top_p; >= 1: off */
    float min_p;           /* drop tokens with p < min_p * p_max; <= 0: off */
    float repeat_penalty;  /* divides positive / multiplies negative logits; 1: off */
    int32_t repeat_last_n; /* how many accepted tokens the penalty looks back on; 0: off */
    uint64_t seed;
} samp_params;

/* llama.cpp's defaults: temp 0.8, top_k 40, top_p 0.95, min_p 0.05, repeat_penalty 1.0,
 * repeat_last_n 64, seed SAMP_DEFAULT_SEED. */
void samp_params_init(samp_params *p);

typedef struct samp samp;

/* A sampler for logits of up to n_vocab entries. Fails on out-of-range parameters (temp or
 * top_p NaN, repeat_penalty <= 0, repeat_last_n < 0, n_vocab <= 0) or when out of memory. */
vkllm_status samp_create(const samp_params *p, int32_t n_vocab, samp **out);
void samp_free(samp *s);

/* Clears the penalty history and restarts the RNG from the seed. */
void samp_reset(samp *s);

/* Records a token in the penalty window: accept the prompt's tokens and each sampled token
 * (samp_sample does not accept on its own). Ids outside [0, n_vocab) are ignored. */
void samp_accept(samp *s, int32_t token);

/* Picks the next token from logits[n_vocab] (n_vocab <= the sampler's), which are not
 * modified. A non-greedy call draws one number from the sampler's RNG; greedy draws none.
 * The RNG is xoshiro256** seeded through splitmix64: a seed gives the same stream on every
 * machine, but not the stream llama.cpp would give for that seed.
 * Fails when a logit is NaN or +inf, when every logit is -inf, or on a bad n_vocab. */
vkllm_status samp_sample(samp *s, const float *logits, int32_t n_vocab, int32_t *token);

#endif
