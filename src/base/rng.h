/* base/rng — a small seeded pseudo-random generator (xoshiro256**, seeded through
 * splitmix64): same seed, same sequence, on every machine.
 *
 * Must not: be used for anything security-related. */
#ifndef HR_BASE_RNG_H
#define HR_BASE_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} hr_rng;

void hr_rng_seed(hr_rng *r, uint64_t seed);
uint64_t hr_rng_u64(hr_rng *r);
/* Uniform in [0, 1) with 24 bits of precision. */
float hr_rng_f32(hr_rng *r);
/* Standard normal (Box-Muller). */
float hr_rng_normal(hr_rng *r);

#endif
