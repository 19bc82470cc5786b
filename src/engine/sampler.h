/* engine/sampler — picks the next token from logits: greedy, or repetition penalty,
 * temperature, top-k, top-p and min-p, then a seeded draw.
 *
 * Owns: scratch buffers sized for the vocabulary (allocated once in hr_sampler_new) and
 * the random state, so the same seed gives the same output.
 * Must not: allocate while sampling. */
#ifndef HR_ENGINE_SAMPLER_H
#define HR_ENGINE_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/rng.h"

typedef struct {
    float temperature;     /* <= 0: greedy (argmax, lowest id on ties) */
    int32_t top_k;         /* <= 0: off */
    float top_p;           /* >= 1: off */
    float min_p;           /* <= 0: off */
    float repeat_penalty;  /* 1: off */
    int32_t repeat_last_n; /* how many recent tokens the penalty looks at */
    uint64_t seed;
} hr_sampling;

/* headroom's defaults: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, no penalty. */
hr_sampling hr_sampling_default(void);
/* Refuses NaN, negative or out-of-range values with a sentence naming the field. */
hr_status hr_sampling_validate(const hr_sampling *p, hr_error *err);

typedef struct {
    hr_sampling params;
    int32_t n_vocab;
    hr_rng rng;
    float *probs;      /* n_vocab */
    int32_t *order;    /* n_vocab candidate ids */
} hr_sampler;

hr_status hr_sampler_new(hr_sampler **out, const hr_sampling *params, int32_t n_vocab, hr_error *err);
void hr_sampler_free(hr_sampler *s);

/* Picks a token. logits may be modified (penalty); recent holds the last n tokens of
 * the sequence (prompt and output) for the repetition penalty. */
int32_t hr_sampler_pick(hr_sampler *s, float *logits, const int32_t *recent, size_t n_recent);

/* argmax with the lowest id on ties. */
int32_t hr_argmax(const float *logits, int32_t n);

#endif
