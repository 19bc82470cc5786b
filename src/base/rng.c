#include "base/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void hr_rng_seed(hr_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t hr_rng_u64(hr_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float hr_rng_f32(hr_rng *r) { return (float)(hr_rng_u64(r) >> 40) / 16777216.0f; }

float hr_rng_normal(hr_rng *r) {
    /* 1 - u keeps the logarithm's argument in (0, 1]. */
    float u1 = 1.0f - hr_rng_f32(r), u2 = hr_rng_f32(r);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}
