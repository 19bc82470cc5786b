/* Tests for kernels/quant: exhaustive fp16/bf16 conversions, dequantization of
 * hand-built blocks against values worked out by hand, quantizer error on seeded
 * Gaussian data, degenerate blocks, and the reference dot product. */
#include "kernels/quant.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "test.h"

enum { ROW = 8192 };

/* ---- helpers ---------------------------------------------------------------- */

/* splitmix64: a small, well-mixed, seedable generator. */
static uint64_t rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_uniform(uint64_t *state) { /* in (0, 1] so that log() is finite */
    return (double)((rng_next(state) >> 11) + 1) * 0x1p-53;
}

static float rng_gauss(uint64_t *state) { /* Box-Muller */
    double u1 = rng_uniform(state), u2 = rng_uniform(state);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static void fill_gauss(float *x, int64_t n, uint64_t seed) {
    for (int64_t i = 0; i < n; i++) x[i] = rng_gauss(&seed);
}

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float float_of(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static bool half_is_nan(uint16_t h) { return (h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0; }

/* The value of a non-NaN half, from the format definition (independent of the code under test). */
static double half_value(uint16_t h) {
    int exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
    double v = exp == 31 ? INFINITY : exp == 0 ? ldexp(mant, -24) : ldexp(1024 + mant, exp - 25);
    return (h & 0x8000) ? -v : v;
}

/* Relative RMS error of y against x. */
static double rel_rms(const float *x, const float *y, int64_t n) {
    double err = 0.0, ref = 0.0;
    for (int64_t i = 0; i < n; i++) {
        err += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        ref += (double)x[i] * x[i];
    }
    return sqrt(err / ref);
}

typedef struct {
    int index;
    float value;
} expect;

/* Index into ex of the first mismatch, or -1. */
static int first_mismatch(const float *y, const expect *ex, int count) {
    for (int i = 0; i < count; i++) {
        if (y[ex[i].index] != ex[i].value) return i;
    }
    return -1;
}

#define CHECK_EXPECTED(y, ex)                                                          \
    do {                                                                               \
        int bad_ = first_mismatch(y, ex, (int)(sizeof ex / sizeof ex[0]));            \
        if (bad_ >= 0) {                                                               \
            hr_test_failf(t, __FILE__, __LINE__, "element %d = %.9g, expected %.9g",   \
                          ex[bad_].index, (double)y[ex[bad_].index], (double)ex[bad_].value); \
            return;                                                                    \
        }                                                                              \
    } while (0)

static const uint32_t quant_types[] = {HR_TYPE_Q8_0, HR_TYPE_Q4_0, HR_TYPE_Q4_K, HR_TYPE_Q5_K,
                                       HR_TYPE_Q6_K};
static const uint32_t all_types[] = {HR_TYPE_F32,  HR_TYPE_F16,  HR_TYPE_BF16, HR_TYPE_Q8_0,
                                     HR_TYPE_Q4_0, HR_TYPE_Q4_K, HR_TYPE_Q5_K, HR_TYPE_Q6_K};
enum {
    N_QUANT = sizeof quant_types / sizeof quant_types[0],
    N_ALL = sizeof all_types / sizeof all_types[0],
};

/* Quantizes then dequantizes n elements of x into y. Room for ROW elements of any type. */
static void roundtrip(uint32_t type, const float *x, float *y, int64_t n) {
    static uint8_t buf[ROW * 4];
    hr_quant_quantize_row(type, x, buf, n);
    hr_quant_dequantize_row(type, buf, y, n);
}

/* ---- fp16 / bf16 ------------------------------------------------------------ */

HR_TEST(quant_fp16_all_values) {
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i;
        float f = hr_fp16_to_f32(h);
        if (half_is_nan(h)) {
            HR_CHECKF(isnan(f), "half 0x%04x decodes to %g, expected NaN", h, (double)f);
        } else {
            HR_CHECKF((double)f == half_value(h) && !signbit(f) == !(h & 0x8000),
                      "half 0x%04x decodes to %.9g, expected %.9g", h, (double)f, half_value(h));
        }
        uint16_t back = hr_f32_to_fp16(f);
        HR_CHECKF(back == h, "half 0x%04x -> %g -> 0x%04x", h, (double)f, back);
    }
}

/* Every rounding boundary: the midpoint between adjacent halves ties to the even one,
 * and the floats just either side of it round down and up. */
HR_TEST(quant_fp16_rounding_boundaries) {
    for (uint16_t h = 0; h < 0x7C00; h++) {
        float lo = (float)half_value(h), hi = (float)half_value((uint16_t)(h + 1));
        if (h == 0x7BFF) hi = 65536.0f; /* where the next half would be, were it finite */
        float mid = lo + (hi - lo) / 2;   /* exact: 12 significant bits at most */
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : h;
        struct {
            float f;
            uint16_t want;
        } cases[] = {{mid, even},
                     {nextafterf(mid, 0.0f), h},
                     {nextafterf(mid, INFINITY), (uint16_t)(h + 1)}};
        for (int c = 0; c < 3; c++) {
            uint16_t got = hr_f32_to_fp16(cases[c].f), neg = hr_f32_to_fp16(-cases[c].f);
            HR_CHECKF(got == cases[c].want && neg == (cases[c].want | 0x8000),
                      "%.9g -> 0x%04x / -0x%04x, expected 0x%04x", (double)cases[c].f, got, neg,
                      cases[c].want);
        }
    }
    HR_CHECK_EQ_INT(hr_f32_to_fp16(1.0f), 0x3C00);
    HR_CHECK_EQ_INT(hr_f32_to_fp16(-2.5f), 0xC100);
    HR_CHECK_EQ_INT(hr_f32_to_fp16(65504.0f), 0x7BFF);
    HR_CHECK_EQ_INT(hr_f32_to_fp16(FLT_MAX), 0x7C00);
    HR_CHECK_EQ_INT(hr_f32_to_fp16(-INFINITY), 0xFC00);
    HR_CHECK_EQ_INT(hr_f32_to_fp16(-0.0f), 0x8000);
    HR_CHECK_EQ_INT(hr_f32_to_fp16(0x1p-24f), 0x0001);
    HR_CHECK_EQ_INT(hr_f32_to_fp16(0x1p-25f), 0x0000);
    HR_CHECK_EQ_INT(hr_f32_to_fp16(0x1p-14f), 0x0400);
    HR_CHECK_EQ_INT(hr_f32_to_fp16(1e-45f), 0x0000); /* f32 subnormal */
    HR_CHECK(half_is_nan(hr_f32_to_fp16(NAN)));
    /* A NaN whose payload lies only in bits fp16 drops must not become inf. */
    HR_CHECK(half_is_nan(hr_f32_to_fp16(float_of(0x7F800001u))));
    HR_CHECK(half_is_nan(hr_f32_to_fp16(float_of(0xFF800100u))));
}

HR_TEST(quant_bf16_all_values) {
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i;
        float f = hr_bf16_to_f32(h);
        HR_CHECKF(bits_of(f) == i << 16, "bf16 0x%04x decodes to bits 0x%08x", h, bits_of(f));
        uint16_t back = hr_f32_to_bf16(f);
        HR_CHECKF(back == h, "bf16 0x%04x -> %g -> 0x%04x", h, (double)f, back);
        if ((h & 0x7F80) == 0x7F80 || (h & 0x7FFF) == 0x7F7F) continue; /* inf/NaN, or no next */
        /* Rounding boundaries, as for fp16: the tie goes to the even neighbour. */
        uint32_t mid = i << 16 | 0x8000;
        uint16_t next = (uint16_t)(h + 1), even = (h & 1) ? next : h;
        HR_CHECKF(hr_f32_to_bf16(float_of(mid)) == even, "tie above bf16 0x%04x", h);
        HR_CHECKF(hr_f32_to_bf16(float_of(mid - 1)) == h, "below the tie above bf16 0x%04x", h);
        HR_CHECKF(hr_f32_to_bf16(float_of(mid + 1)) == next, "above the tie above bf16 0x%04x", h);
    }
    HR_CHECK_EQ_INT(hr_f32_to_bf16(FLT_MAX), 0x7F80); /* rounds up past the largest bf16 */
    HR_CHECK_EQ_INT(hr_f32_to_bf16(-1.0f), 0xBF80);
    uint16_t nan = hr_f32_to_bf16(float_of(0x7F800001u));
    HR_CHECKF((nan & 0x7F80) == 0x7F80 && (nan & 0x7F), "low-payload NaN -> 0x%04x", nan);
}

/* ---- dequantization of hand-built blocks ------------------------------------- */

HR_TEST(quant_q8_0_known_block) {
    uint8_t b[34] = {0x00, 0xBE, 0x80, 0x7F, 0x01, 0xFF}; /* d = -1.5; q = -128, 127, 1, -1 */
    for (int i = 4; i < 32; i++) b[2 + i] = (uint8_t)(i - 16);
    float y[32];
    hr_quant_dequantize_row(HR_TYPE_Q8_0, b, y, 32);
    const expect ex[] = {{0, 192.0f}, {1, -190.5f}, {2, -1.5f}, {3, 1.5f},
                         {4, 18.0f},  {16, -0.0f},  {20, -6.0f}, {31, -22.5f}};
    CHECK_EXPECTED(y, ex);
}

HR_TEST(quant_q4_0_known_block) {
    uint8_t b[18] = {0x00, 0x40}; /* d = 2 */
    memset(b + 2, 0x88, 16);      /* level 8 = 0 */
    b[2 + 0] = 0x0F;
    b[2 + 1] = 0xF0;
    b[2 + 7] = 0x3A;
    b[2 + 15] = 0x98;
    float y[32];
    hr_quant_dequantize_row(HR_TYPE_Q4_0, b, y, 32);
    const expect ex[] = {{0, 14.0f}, {16, -16.0f}, {1, -16.0f}, {17, 14.0f}, {7, 4.0f},
                         {23, -10.0f}, {15, 0.0f}, {31, 2.0f},  {5, 0.0f}};
    CHECK_EXPECTED(y, ex);
}

/* Scales/mins for q4_k and q5_k tests: sc = {1, 2, 3, 63, 17, 33, 48, 60},
 * m = {0, 5, 10, 62, 40, 5, 63, 21}, packed by hand; for j >= 4 the top bits of sc
 * and m differ, so taking one from the other's byte shows. E.g. j = 4:
 * sc = (byte 8 & 0xF) | (byte 0 >> 6) << 4 = 1 | 1 << 4 = 17,
 * m = (byte 8 >> 4) | (byte 4 >> 6) << 4 = 8 | 2 << 4 = 40. */
static const uint8_t k_scales[12] = {0x41, 0x82, 0xC3, 0xFF, 0x80, 0x05,
                                     0xCA, 0x7E, 0x81, 0x51, 0xF0, 0x5C};

HR_TEST(quant_q4_k_known_block) {
    uint8_t b[144] = {0x00, 0x3C, 0x00, 0x38}; /* d = 1, dmin = 0.5 */
    memcpy(b + 4, k_scales, 12);
    for (int i = 0; i < 128; i++) b[16 + i] = (uint8_t)i;
    float y[256];
    hr_quant_dequantize_row(HR_TYPE_Q4_K, b, y, 256);
    /* Element e: sub-block j = e/32; its nibble is in qs[32*(e/64) + e%32], low half
     * when e%64 < 32. y = 1*sc*q - 0.5*m. */
    const expect ex[] = {
        {0, 0.0f},       /* j0: qs[0] lo 0 */
        {5, 5.0f},       /* j0: qs[5] lo 5 -> 1*5 - 0 */
        {63, -0.5f},     /* j1: qs[31]=0x1F hi 1 -> 2*1 - 2.5 */
        {70, 13.0f},     /* j2: qs[38]=0x26 lo 6 -> 3*6 - 5 */
        {127, 158.0f},   /* j3: qs[63]=0x3F hi 3 -> 63*3 - 31 */
        {140, 184.0f},   /* j4: qs[76]=0x4C lo 12 -> 17*12 - 20 */
        {190, 162.5f},   /* j5: qs[94]=0x5E hi 5 -> 33*5 - 2.5 */
        {200, 352.5f},   /* j6: qs[104]=0x68 lo 8 -> 48*8 - 31.5 */
        {230, 349.5f},   /* j7: qs[102]=0x66 hi 6 -> 60*6 - 10.5 */
        {255, 409.5f},   /* j7: qs[127]=0x7F hi 7 -> 60*7 - 10.5 */
    };
    CHECK_EXPECTED(y, ex);
}

HR_TEST(quant_q5_k_known_block) {
    uint8_t b[176] = {0x00, 0x34, 0x00, 0x3C}; /* d = 0.25, dmin = 1 */
    memcpy(b + 4, k_scales, 12);
    memset(b + 16, 0xAA, 32); /* qh: 5th bit set in sub-blocks 1, 3, 5, 7 ... */
    b[16 + 3] = 0x01;         /* ... except at l = 3, where only sub-block 0 has it */
    for (int i = 0; i < 128; i++) b[48 + i] = (uint8_t)i;
    float y[256];
    hr_quant_dequantize_row(HR_TYPE_Q5_K, b, y, 256);
    /* As q4_k, plus 16 * bit j of qh[e%32]. y = 0.25*sc*q - m. */
    const expect ex[] = {
        {3, 4.75f},     /* j0: lo 3 + 16 (qh[3] bit 0) -> 0.25*1*19 */
        {4, 1.0f},      /* j0: lo 4, qh[4] bit 0 clear */
        {35, -5.0f},    /* j1: qs[3] hi 0, qh[3] bit 1 clear -> 0 - 5 */
        {63, 3.5f},     /* j1: qs[31] hi 1 + 16 -> 0.5*17 - 5 */
        {127, 237.25f}, /* j3: qs[63] hi 3 + 16 -> 15.75*19 - 62 */
        {140, 11.0f},   /* j4: qs[76] lo 12, bit 4 clear -> 4.25*12 - 40 */
        {190, 168.25f}, /* j5: qs[94] hi 5 + 16 -> 8.25*21 - 5 */
        {196, -15.0f},  /* j6: qs[100] lo 4, bit 6 clear -> 12*4 - 63 */
        {227, 69.0f},   /* j7: qs[99] hi 6, qh[3] bit 7 clear -> 15*6 - 21 */
        {255, 324.0f},  /* j7: qs[127] hi 7 + 16 -> 15*23 - 21 */
    };
    CHECK_EXPECTED(y, ex);
}

HR_TEST(quant_q6_k_known_block) {
    static const int8_t scales[16] = {1,  -2,  3,  -4,  5,  -6,  7,   -8,
                                      9, -10, 11, -12, 13, -14, 127, -128};
    uint8_t b[210];
    for (int i = 0; i < 128; i++) b[i] = (uint8_t)i; /* ql */
    memset(b + 128, 0xE4, 64); /* qh: 2-bit fields 0, 1, 2, 3 for k = 0..3 ... */
    b[128 + 33] = 0x1B;        /* ... and 3, 2, 1, 0 at qh[33] (second half, l = 1) */
    memcpy(b + 192, scales, 16);
    b[208] = 0x00; /* d = 0.5, stored last */
    b[209] = 0x38;
    float y[256];
    hr_quant_dequantize_row(HR_TYPE_Q6_K, b, y, 256);
    /* Element e: half h = e/128, k = e%128/32, l = e%32; nibble of ql[64h + 32(k&1) + l]
     * (high when k >= 2), 2 bits k of qh[32h + l]; q = level - 32; y = 0.5*sc[e/16]*q. */
    const expect ex[] = {
        {0, -16.0f},     /* ql[0] lo 0, qh 0 -> q -32, sc 1 */
        {17, 31.0f},     /* ql[17] lo 1 -> q -31, sc -2 */
        {40, -12.0f},    /* ql[40] lo 8 | 1<<4 = 24 -> q -8, sc 3 */
        {90, -3.0f},     /* ql[26] hi 1 | 2<<4 = 33 -> q 1, sc -6 */
        {100, 63.0f},    /* ql[36] hi 2 | 3<<4 = 50 -> q 18, sc 7 */
        {129, 76.5f},    /* ql[65] lo 1 | 3<<4 (qh[33]) = 49 -> q 17, sc 9 */
        {161, 5.5f},     /* ql[97] lo 1 | 2<<4 = 33 -> q 1, sc 11 */
        {193, -78.0f},   /* ql[65] hi 4 | 1<<4 = 20 -> q -12, sc 13 */
        {225, -1651.0f}, /* ql[97] hi 6 | 0 -> q -26, sc 127 */
        {255, -1472.0f}, /* ql[127] hi 7 | 3<<4 = 55 -> q 23, sc -128 */
    };
    CHECK_EXPECTED(y, ex);
}

/* ---- quantization ------------------------------------------------------------ */

HR_TEST(quant_q8_0_quantize_known) {
    float x[32] = {-127.0f, 2.5f, -2.5f, 0.49f, 126.5f};
    for (int i = 5; i < 32; i++) x[i] = (float)(i - 20);
    uint8_t b[34];
    hr_quant_quantize_row(HR_TYPE_Q8_0, x, b, 32);
    HR_CHECK(b[0] == 0x00 && b[1] == 0x3C); /* d = 127/127 = 1 */
    const int8_t want[5] = {-127, 3, -3, 0, 127}; /* halves round away from zero */
    for (int i = 0; i < 32; i++) {
        int q = (int8_t)b[2 + i], w = i < 5 ? want[i] : i - 20;
        HR_CHECKF(q == w, "q[%d] = %d, expected %d", i, q, w);
    }
}

HR_TEST(quant_q4_0_quantize_known) {
    /* Negative extreme: d = -16 / -8 = 2; level = x/2 + 8, halves up. */
    float x[32] = {-16.0f, 14.0f, 1.0f, 3.0f};
    x[17] = -1.0f;
    uint8_t b[18];
    hr_quant_quantize_row(HR_TYPE_Q4_0, x, b, 32);
    HR_CHECK(b[0] == 0x00 && b[1] == 0x40);
    const uint8_t want[16] = {0x80, 0x8F, 0x89, 0x8A, 0x88, 0x88, 0x88, 0x88,
                              0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88};
    HR_CHECK(memcmp(b + 2, want, 16) == 0);

    /* Positive extreme (first of equal magnitudes): d = -2, so 16 -> level 0 and -16 -> 16,
     * clamped to 15, i.e. -14 after dequantization. */
    float z[32] = {0};
    z[5] = 16.0f;
    z[6] = -16.0f;
    hr_quant_quantize_row(HR_TYPE_Q4_0, z, b, 32);
    HR_CHECK(b[0] == 0x00 && b[1] == 0xC0);
    HR_CHECK(b[2 + 5] == 0x80 && b[2 + 6] == 0x8F);
    float y[32];
    hr_quant_dequantize_row(HR_TYPE_Q4_0, b, y, 32);
    HR_CHECK(y[5] == 16.0f && y[6] == -14.0f && y[0] == 0.0f);
}

/* q8_0 and q4_0 quantize to the nearest level: every element is within half a step
 * (q8_0), or half a step except the one clipped at +8 steps (q4_0). Re-quantizing the
 * dequantized data reproduces the same bytes. */
HR_TEST(quant_q8_0_q4_0_nearest_and_stable) {
    static float x[ROW], y[ROW];
    static uint8_t b1[ROW * 2], b2[ROW * 2];
    fill_gauss(x, ROW, 7);
    const uint32_t types[2] = {HR_TYPE_Q8_0, HR_TYPE_Q4_0};
    for (int ti = 0; ti < 2; ti++) {
        const hr_type_info *info = hr_type_get(types[ti]);
        hr_quant_quantize_row(types[ti], x, b1, ROW);
        hr_quant_dequantize_row(types[ti], b1, y, ROW);
        for (int i = 0; i < ROW; i++) {
            const uint8_t *blk = b1 + i / 32 * info->block_bytes;
            float d = fabsf(hr_fp16_to_f32((uint16_t)(blk[0] | blk[1] << 8)));
            float err = fabsf(x[i] - y[i]);
            HR_CHECKF(err <= d * 0.5f * 1.001f || (types[ti] == HR_TYPE_Q4_0 && err <= d * 1.001f),
                      "%s element %d: %g -> %g with d %g", hr_type_name(types[ti]), i, (double)x[i],
                      (double)y[i], (double)d);
        }
        hr_quant_quantize_row(types[ti], y, b2, ROW);
        HR_CHECKF(memcmp(b1, b2, (size_t)(ROW / 32 * info->block_bytes)) == 0,
                  "%s: re-quantizing the dequantized row changed it", hr_type_name(types[ti]));
    }
}

/* Round-trip error on N(0, 1) data. Measured over several seeds: q8_0 0.0053,
 * q4_0 0.085, q4_k 0.078, q5_k 0.038, q6_k 0.019; the limits leave ~20% margin. */
HR_TEST(quant_roundtrip_gaussian) {
    static const double limit[N_QUANT] = {0.0065, 0.10, 0.095, 0.046, 0.023};
    static float x[ROW], y[ROW];
    fill_gauss(x, ROW, 42);
    for (int ti = 0; ti < N_QUANT; ti++) {
        roundtrip(quant_types[ti], x, y, ROW);
        double e = rel_rms(x, y, ROW);
        HR_CHECKF(e < limit[ti], "%s: relative RMS error %.4f, limit %.4f",
                  hr_type_name(quant_types[ti]), e, limit[ti]);
    }
}

/* Sub-blocks of different magnitude and offset (scale 2^(j/2), mean 0, 0.5 or 1 times
 * that) each keep their own precision, which only holds if every sub-block's scale and
 * min (including the high-bit-packed j >= 4 of q4_k/q5_k) land where they belong.
 * Measured worst sub-block: q8_0 0.0062, q4_0 0.109, q4_k 0.096, q5_k 0.047,
 * q6_k 0.026. (A much wider range cannot work: a 6-bit sub-scale below half of
 * d = largest / 63 rounds to zero.) */
HR_TEST(quant_subblock_scales) {
    static const double limit[N_QUANT] = {0.008, 0.13, 0.12, 0.06, 0.032};
    static float x[256], y[256];
    fill_gauss(x, 256, 99);
    for (int i = 0; i < 256; i++) {
        int j = i / 32;
        float m = exp2f(0.5f * (float)j);
        x[i] = x[i] * m + (float)(j % 3) * 0.5f * m;
    }
    for (int ti = 0; ti < N_QUANT; ti++) {
        roundtrip(quant_types[ti], x, y, 256);
        for (int j = 0; j < 8; j++) {
            double e = rel_rms(x + 32 * j, y + 32 * j, 32);
            HR_CHECKF(e < limit[ti], "%s sub-block %d: relative RMS error %.4f",
                      hr_type_name(quant_types[ti]), j, e);
        }
    }
}

HR_TEST(quant_degenerate_blocks) {
    static float x[256], y[256];
    for (int ti = 0; ti < N_QUANT; ti++) {
        uint32_t type = quant_types[ti];
        const char *name = hr_type_name(type);

        memset(x, 0, sizeof x);
        roundtrip(type, x, y, 256);
        for (int i = 0; i < 256; i++) {
            HR_CHECKF(y[i] == 0.0f, "%s: zeros -> y[%d] = %g", name, i, (double)y[i]);
        }

        static const float constants[] = {3.0f, -3.0f, 0.02f, -250.0f, 1000.0f};
        for (size_t c = 0; c < sizeof constants / sizeof constants[0]; c++) {
            for (int i = 0; i < 256; i++) x[i] = constants[c];
            roundtrip(type, x, y, 256);
            for (int i = 0; i < 256; i++) {
                HR_CHECKF(fabsf(y[i] - x[i]) <= 0.01f * fabsf(x[i]), "%s: constant %g -> y[%d] = %g",
                          name, (double)x[i], i, (double)y[i]);
            }
        }

        /* Tiny values: the scales underflow fp16, but nothing blows up. */
        fill_gauss(x, 256, 5);
        for (int i = 0; i < 256; i++) x[i] *= 1e-9f;
        roundtrip(type, x, y, 256);
        for (int i = 0; i < 256; i++) {
            HR_CHECKF(fabsf(y[i] - x[i]) <= 1e-8f, "%s: tiny y[%d] = %g", name, i, (double)y[i]);
        }

        /* Huge finite values clip, but never become inf or NaN; nor does an outlier
         * among ordinary values. */
        fill_gauss(x, 256, 6);
        for (int i = 0; i < 256; i++) x[i] *= 1e37f;
        x[3] = FLT_MAX;
        x[200] = -FLT_MAX;
        roundtrip(type, x, y, 256);
        for (int i = 0; i < 256; i++) {
            HR_CHECKF(isfinite(y[i]), "%s: huge y[%d] = %g", name, i, (double)y[i]);
        }
        fill_gauss(x, 256, 8);
        x[77] = 1e30f;
        roundtrip(type, x, y, 256);
        for (int i = 0; i < 256; i++) {
            HR_CHECKF(isfinite(y[i]), "%s: outlier y[%d] = %g", name, i, (double)y[i]);
        }
        HR_CHECKF(y[77] > 0.0f, "%s: outlier lost its sign", name);
    }
}

HR_TEST(quant_plain_rows) {
    static float x[ROW], y[ROW];
    static uint8_t buf[ROW * 4];
    fill_gauss(x, ROW, 11);
    x[0] = -0.0f;
    x[1] = INFINITY;
    hr_quant_quantize_row(HR_TYPE_F32, x, buf, ROW);
    HR_CHECK(memcmp(buf, x, sizeof x) == 0); /* little-endian host: the bytes are the floats */
    hr_quant_dequantize_row(HR_TYPE_F32, buf, y, ROW);
    HR_CHECK(memcmp(x, y, sizeof x) == 0);

    hr_quant_quantize_row(HR_TYPE_F16, x, buf, ROW);
    hr_quant_dequantize_row(HR_TYPE_F16, buf, y, ROW);
    for (int i = 0; i < ROW; i++) {
        uint16_t h = (uint16_t)(buf[2 * i] | buf[2 * i + 1] << 8);
        HR_CHECKF(h == hr_f32_to_fp16(x[i]) && bits_of(y[i]) == bits_of(hr_fp16_to_f32(h)),
                  "f16 element %d", i);
    }
    hr_quant_quantize_row(HR_TYPE_BF16, x, buf, ROW);
    hr_quant_dequantize_row(HR_TYPE_BF16, buf, y, ROW);
    for (int i = 0; i < ROW; i++) {
        uint16_t h = (uint16_t)(buf[2 * i] | buf[2 * i + 1] << 8);
        HR_CHECKF(h == hr_f32_to_bf16(x[i]) && bits_of(y[i]) == (uint32_t)h << 16,
                  "bf16 element %d", i);
    }
}

/* The dot product equals sum(dequantized * x) accumulated in f32 in index order, bit
 * for bit; for f32 that is the plain sum over the original row. */
HR_TEST(quant_dot_ref_matches_dequantized) {
    enum { N = 768 }; /* three k-quant super-blocks */
    static float w[N], x[N], y[N];
    static uint8_t row[N * 4];
    fill_gauss(w, N, 21);
    fill_gauss(x, N, 22);
    for (int ti = 0; ti < N_ALL; ti++) {
        hr_quant_quantize_row(all_types[ti], w, row, N);
        hr_quant_dequantize_row(all_types[ti], row, y, N);
        float want = 0.0f;
        for (int i = 0; i < N; i++) want += y[i] * x[i];
        float got = hr_quant_dot_ref(all_types[ti], row, x, N);
        HR_CHECKF(bits_of(got) == bits_of(want), "%s: dot %.9g, expected %.9g",
                  hr_type_name(all_types[ti]), (double)got, (double)want);
        HR_CHECK(hr_quant_dot_ref(all_types[ti], row, x, 0) == 0.0f);
    }
    float plain = 0.0f;
    for (int i = 0; i < N; i++) plain += w[i] * x[i];
    HR_CHECK(bits_of(hr_quant_dot_ref(HR_TYPE_F32, w, x, N)) == bits_of(plain));
}

HR_TEST(quant_row_validation) {
    for (int ti = 0; ti < N_ALL; ti++) HR_CHECK(hr_quant_supported(all_types[ti]));
    HR_CHECK(!hr_quant_supported(HR_TYPE_Q4_1));
    HR_CHECK(!hr_quant_supported(HR_TYPE_Q8_K));
    HR_CHECK(!hr_quant_supported(HR_TYPE_I32));
    HR_CHECK(!hr_quant_supported(HR_TYPE_COUNT_));
    HR_CHECK(!hr_quant_supported(4)); /* an id that names no type */
    HR_CHECK(hr_quant_row_ok(HR_TYPE_F16, 7));
    HR_CHECK(hr_quant_row_ok(HR_TYPE_Q4_K, 512));
    HR_CHECK(!hr_quant_row_ok(HR_TYPE_Q4_K, 255));
    HR_CHECK(!hr_quant_row_ok(HR_TYPE_Q8_0, 48));
    HR_CHECK(!hr_quant_row_ok(HR_TYPE_Q8_0, -32));
    HR_CHECK(!hr_quant_row_ok(HR_TYPE_Q4_1, 32));

    uint8_t block[144] = {0x00, 0x3C};
    float y[256], x[256] = {0};
    for (int i = 0; i < 256; i++) y[i] = 123.0f;
    hr_quant_dequantize_row(HR_TYPE_Q4_K, block, y, 255);
    hr_quant_dequantize_row(HR_TYPE_Q4_1, block, y, 32);
    for (int i = 0; i < 256; i++) HR_CHECK(y[i] == 123.0f);
    memset(block, 0xEE, sizeof block);
    hr_quant_quantize_row(HR_TYPE_Q6_K, x, block, 100);
    for (int i = 0; i < 144; i++) HR_CHECK(block[i] == 0xEE);
    HR_CHECK(isnan(hr_quant_dot_ref(HR_TYPE_Q4_K, block, x, 100)));
}
