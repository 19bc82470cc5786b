/* Blocks are read and written byte by byte (little-endian, no struct overlays): rows
 * come straight from a mapped file, where a 34- or 210-byte block stride leaves no
 * alignment to rely on. */
#include "kernels/quant.h"

#include <math.h>
#include <string.h>

enum { QK = 32, QK_K = 256 };

/* ---- scalar conversions ---------------------------------------------------- */

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float hr_fp16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
    if (exp == 0) { /* zero or subnormal: mant * 2^-24, exact in f32 */
        float v = (float)mant * 0x1p-24f;
        return sign ? -v : v;
    }
    if (exp == 31) return f32_from_bits(sign | 0x7F800000u | mant << 13); /* inf, NaN payload kept */
    return f32_from_bits(sign | (exp + 112) << 23 | mant << 13);          /* rebias 15 -> 127 */
}

uint16_t hr_f32_to_fp16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t a = x & 0x7FFFFFFF;
    if (a > 0x7F800000) { /* NaN: keep the payload's top bits; if none survive, set the quiet
                           * bit so that the result does not turn into inf */
        uint16_t payload = (uint16_t)((a >> 13) & 0x3FF);
        return sign | 0x7C00 | (payload ? payload : 0x200);
    }
    /* 65520 is halfway between 65504 (odd mantissa) and 2^16: a tie that rounds to inf. */
    if (a >= 0x477FF000) return sign | 0x7C00;
    if (a >= 0x38800000) { /* normal half: round to nearest even at bit 13; a carry into the
                            * exponent field yields the correctly rounded next binade */
        uint32_t r = a + 0xFFF + ((a >> 13) & 1);
        return sign | (uint16_t)((r >> 13) - (112u << 10));
    }
    /* 2^-25 is halfway to the smallest subnormal and ties to even, i.e. to zero. */
    if (a <= 0x33000000) return sign;
    /* Subnormal half: the value in units of 2^-24 is mant >> shift, shift in 14..24. */
    uint32_t mant = (a & 0x7FFFFF) | 0x800000;
    uint32_t shift = 126 - (a >> 23);
    uint32_t q = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    q += rem > half || (rem == half && (q & 1));
    return sign | (uint16_t)q; /* q == 0x400 is the smallest normal, correctly encoded */
}

float hr_bf16_to_f32(uint16_t h) { return f32_from_bits((uint32_t)h << 16); }

uint16_t hr_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7FFFFFFF) > 0x7F800000) { /* NaN: as for fp16, never let it truncate to inf */
        uint16_t h = (uint16_t)(x >> 16);
        return (h & 0x7F) ? h : (uint16_t)(h | 0x40);
    }
    return (uint16_t)((x + 0x7FFF + ((x >> 16) & 1)) >> 16); /* overflow rounds to inf */
}

/* ---- block helpers --------------------------------------------------------- */

static uint16_t load_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static void store_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static float load_half(const uint8_t *p) { return hr_fp16_to_f32(load_u16(p)); }

/* Stores a block scale as fp16 and returns the value stored, so that quants are chosen
 * against the scale dequantization will really use. Clamping to the largest finite half
 * makes huge inputs clip instead of becoming an inf scale, which would turn every zero
 * quant into inf * 0 = NaN. */
static float store_scale(uint8_t *p, float d) {
    d = fminf(fmaxf(d, -65504.0f), 65504.0f);
    uint16_t h = hr_f32_to_fp16(d);
    store_u16(p, h);
    return hr_fp16_to_f32(h);
}

static float inverse(float v) { return v != 0.0f ? 1.0f / v : 0.0f; }

/* Nearest integer to v (halves away from zero) within [lo, hi]. Clamping in float
 * first keeps the conversion defined for any v (NaN goes to lo). */
static int round_clamp(float v, int lo, int hi) {
    v = fminf(fmaxf(v, (float)lo), (float)hi);
    return (int)roundf(v);
}

/* ---- plain types (blocks of one element) ----------------------------------- */

static void dequantize_f32(const uint8_t *b, float *y) {
    *y = f32_from_bits((uint32_t)load_u16(b) | (uint32_t)load_u16(b + 2) << 16);
}

static void quantize_f32(const float *x, uint8_t *b) {
    uint32_t u = f32_bits(*x);
    store_u16(b, (uint16_t)u);
    store_u16(b + 2, (uint16_t)(u >> 16));
}

static void dequantize_f16(const uint8_t *b, float *y) { *y = load_half(b); }
static void quantize_f16(const float *x, uint8_t *b) { store_u16(b, hr_f32_to_fp16(*x)); }
static void dequantize_bf16(const uint8_t *b, float *y) { *y = hr_bf16_to_f32(load_u16(b)); }
static void quantize_bf16(const float *x, uint8_t *b) { store_u16(b, hr_f32_to_bf16(*x)); }

/* ---- q8_0: fp16 d, int8 qs[32] ---------------------------------------------- */

static void dequantize_q8_0(const uint8_t *b, float *y) {
    float d = load_half(b);
    for (int i = 0; i < QK; i++) y[i] = (float)(int8_t)b[2 + i] * d;
}

float hr_quant_q8_0_scale(float amax, uint8_t *b) { return inverse(store_scale(b, amax / 127.0f)); }

static void quantize_q8_0(const float *x, uint8_t *b) {
    float amax = 0.0f;
    for (int i = 0; i < QK; i++) amax = fmaxf(amax, fabsf(x[i]));
    float id = hr_quant_q8_0_scale(amax, b);
    for (int i = 0; i < QK; i++) b[2 + i] = (uint8_t)round_clamp(x[i] * id, -127, 127);
}

/* ---- q4_0: fp16 d, qs[16]; element j in the low nibble of qs[j], j + 16 in the high */

static void dequantize_q4_0(const uint8_t *b, float *y) {
    float d = load_half(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < QK / 2; j++) {
        y[j] = (float)((qs[j] & 0xF) - 8) * d;
        y[j + QK / 2] = (float)((qs[j] >> 4) - 8) * d;
    }
}

static void quantize_q4_0(const float *x, uint8_t *b) {
    /* The levels run -8..7, so the value of largest magnitude takes level -8 (d carries
     * its sign): that spends the extra negative level on the extreme value. */
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < QK; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    float id = inverse(store_scale(b, max / -8.0f));
    uint8_t *qs = b + 2;
    for (int j = 0; j < QK / 2; j++) {
        int lo = round_clamp(x[j] * id + 8.0f, 0, 15);
        int hi = round_clamp(x[j + QK / 2] * id + 8.0f, 0, 15);
        qs[j] = (uint8_t)(lo | hi << 4);
    }
}

/* ---- k-quant level layouts -------------------------------------------------- */

/* The k-quants split each element's level into a low nibble (array lo) and, for q5_k
 * and q6_k, 1 or 2 high bits (array hi). level_pos says where element e's bits live;
 * one function per layout serves both packing and unpacking. */
typedef struct {
    int lo, lo_shift; /* nibble at (lo[lo] >> lo_shift) & 0xF */
    int hi, hi_shift; /* high bits at (hi[hi] >> hi_shift) & mask */
} level_pos;

/* q4_k/q5_k: per group g of 64 elements, 32 bytes of qs hold the first 32 elements in
 * the low nibbles and the next 32 in the high; q5_k's 5th bit of element e is bit e/32
 * (its sub-block index) of qh[e % 32]. */
static level_pos k4_pos(int e) {
    return (level_pos){32 * (e / 64) + e % 32, 4 * (e / 32 % 2), e % 32, e / 32};
}

/* q6_k: per half h of 128 elements, 64 ql bytes and 32 qh bytes; element 32k + l of
 * the half (k = 0..3) has the low (k < 2) or high nibble of ql[32 * (k & 1) + l] and
 * bits 2k..2k+1 of qh[l]. */
static level_pos k6_pos(int e) {
    int h = e / 128, k = e % 128 / 32, l = e % 32;
    return (level_pos){64 * h + 32 * (k % 2) + l, 4 * (k / 2), 32 * h + l, 2 * k};
}

/* hi may be NULL (q4_k: no high bits, hi_bits 0). */
static void unpack_levels(level_pos (*pos)(int), const uint8_t *lo, const uint8_t *hi,
                          int hi_bits, uint8_t q[QK_K]) {
    for (int e = 0; e < QK_K; e++) {
        level_pos p = pos(e);
        int v = (lo[p.lo] >> p.lo_shift) & 0xF;
        if (hi) v |= ((hi[p.hi] >> p.hi_shift) & ((1 << hi_bits) - 1)) << 4;
        q[e] = (uint8_t)v;
    }
}

static void pack_levels(level_pos (*pos)(int), const uint8_t q[QK_K], uint8_t *lo, uint8_t *hi,
                        int hi_bits) {
    memset(lo, 0, QK_K / 2);
    if (hi) memset(hi, 0, (size_t)(QK_K * hi_bits / 8));
    for (int e = 0; e < QK_K; e++) {
        level_pos p = pos(e);
        lo[p.lo] |= (uint8_t)((q[e] & 0xF) << p.lo_shift);
        if (hi) hi[p.hi] |= (uint8_t)((q[e] >> 4) << p.hi_shift);
    }
}

/* ---- q4_k / q5_k: fp16 d, fp16 dmin, scales[12], [qh[32],] qs[128] ----------- */

/* Sub-block j's 6-bit scale and min, packed into 12 bytes: for j < 4 in the low 6 bits
 * of bytes j (scale) and j + 4 (min); for j >= 4 the low 4 bits share byte j + 4
 * (scale low nibble, min high nibble) and the top 2 bits sit in the spare top bits of
 * bytes j - 4 (scale) and j (min). */
static void get_scale_min(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xF) | (s[j - 4] >> 6) << 4;
        *m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

/* s must start zeroed. */
static void put_scale_min(uint8_t *s, int j, int sc, int m) {
    if (j < 4) {
        s[j] |= (uint8_t)sc;
        s[j + 4] |= (uint8_t)m;
    } else {
        s[j + 4] = (uint8_t)((sc & 0xF) | (m & 0xF) << 4);
        s[j - 4] |= (uint8_t)((sc >> 4) << 6);
        s[j] |= (uint8_t)((m >> 4) << 6);
    }
}

/* x = d*sc*q - dmin*m per 32-element sub-block, from levels q already unpacked. */
static void dequantize_scale_min(const uint8_t *b, const uint8_t q[QK_K], float *y) {
    float d = load_half(b), dmin = load_half(b + 2);
    for (int j = 0; j < QK_K / QK; j++) {
        int sc, m;
        get_scale_min(b + 4, j, &sc, &m);
        float d1 = d * (float)sc, m1 = dmin * (float)m;
        for (int l = 0; l < QK; l++) y[QK * j + l] = d1 * (float)q[QK * j + l] - m1;
    }
}

/* Writes d, dmin and the packed scales/mins (bytes 0..15) and returns levels 0..nmax.
 * Each sub-block spans [min(0, min x), max x] with nmax steps; its scale and min are
 * then 6-bit multiples of d = largest scale / 63 and dmin = largest min / 63. Mins are
 * stored negated (m >= 0), which is why the sub-block minimum is capped at 0. */
static void quantize_scale_min(const float *x, int nmax, uint8_t *b, uint8_t q[QK_K]) {
    float scale[QK_K / QK], neg_min[QK_K / QK], max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < QK_K / QK; j++) {
        const float *xs = x + QK * j;
        float lo = 0.0f, hi = xs[0];
        for (int l = 0; l < QK; l++) {
            lo = fminf(lo, xs[l]);
            hi = fmaxf(hi, xs[l]);
        }
        scale[j] = hi / (float)nmax - lo / (float)nmax; /* divided first: no overflow */
        neg_min[j] = -lo;
        max_scale = fmaxf(max_scale, scale[j]);
        max_min = fmaxf(max_min, neg_min[j]);
    }
    float d = store_scale(b, max_scale / 63.0f), dmin = store_scale(b + 2, max_min / 63.0f);
    float id = inverse(d), idmin = inverse(dmin);
    memset(b + 4, 0, 12);
    for (int j = 0; j < QK_K / QK; j++) {
        int sc = round_clamp(scale[j] * id, 0, 63), m = round_clamp(neg_min[j] * idmin, 0, 63);
        put_scale_min(b + 4, j, sc, m);
        float d1 = d * (float)sc, m1 = dmin * (float)m, id1 = inverse(d1);
        for (int l = 0; l < QK; l++) {
            q[QK * j + l] = (uint8_t)round_clamp((x[QK * j + l] + m1) * id1, 0, nmax);
        }
    }
}

static void dequantize_q4_k(const uint8_t *b, float *y) {
    uint8_t q[QK_K];
    unpack_levels(k4_pos, b + 16, NULL, 0, q);
    dequantize_scale_min(b, q, y);
}

static void quantize_q4_k(const float *x, uint8_t *b) {
    uint8_t q[QK_K];
    quantize_scale_min(x, 15, b, q);
    pack_levels(k4_pos, q, b + 16, NULL, 0);
}

static void dequantize_q5_k(const uint8_t *b, float *y) {
    uint8_t q[QK_K];
    unpack_levels(k4_pos, b + 48, b + 16, 1, q);
    dequantize_scale_min(b, q, y);
}

static void quantize_q5_k(const float *x, uint8_t *b) {
    uint8_t q[QK_K];
    quantize_scale_min(x, 31, b, q);
    pack_levels(k4_pos, q, b + 48, b + 16, 1);
}

/* ---- q6_k: ql[128], qh[64], int8 scales[16], fp16 d --------------------------
 * Unlike the other formats the fp16 d is the block's last field (byte 208), so its
 * offset is spelled out rather than assumed to be a header. Levels are stored + 32;
 * each int8 scale covers 16 consecutive elements. */

static void dequantize_q6_k(const uint8_t *b, float *y) {
    uint8_t q[QK_K];
    unpack_levels(k6_pos, b, b + 128, 2, q);
    float d = load_half(b + 208);
    for (int e = 0; e < QK_K; e++) y[e] = d * (float)(int8_t)b[192 + e / 16] * (float)(q[e] - 32);
}

static void quantize_q6_k(const float *x, uint8_t *b) {
    /* As in q4_0, each 16-element scale is signed so that its largest-magnitude value
     * lands on level -32, the end of -32..31 with the extra step. */
    float scale[QK_K / 16], max_scale = 0.0f;
    for (int j = 0; j < QK_K / 16; j++) {
        float amax = 0.0f, max = 0.0f;
        for (int l = 0; l < 16; l++) {
            if (fabsf(x[16 * j + l]) > amax) {
                amax = fabsf(x[16 * j + l]);
                max = x[16 * j + l];
            }
        }
        scale[j] = max / -32.0f;
        if (fabsf(scale[j]) > fabsf(max_scale)) max_scale = scale[j];
    }
    float d = store_scale(b + 208, max_scale / 127.0f), id = inverse(d);
    uint8_t q[QK_K];
    for (int j = 0; j < QK_K / 16; j++) {
        int sc = round_clamp(scale[j] * id, -127, 127);
        b[192 + j] = (uint8_t)sc;
        float id1 = inverse(d * (float)sc);
        for (int l = 0; l < 16; l++) {
            q[16 * j + l] = (uint8_t)(round_clamp(x[16 * j + l] * id1, -32, 31) + 32);
        }
    }
    pack_levels(k6_pos, q, b, b + 128, 2);
}

/* ---- dispatch --------------------------------------------------------------- */

typedef struct {
    void (*dequantize)(const uint8_t *block, float *y);
    void (*quantize)(const float *x, uint8_t *block);
} codec;

static const codec codecs[HR_TYPE_COUNT_] = {
    [HR_TYPE_F32] = {dequantize_f32, quantize_f32},
    [HR_TYPE_F16] = {dequantize_f16, quantize_f16},
    [HR_TYPE_BF16] = {dequantize_bf16, quantize_bf16},
    [HR_TYPE_Q8_0] = {dequantize_q8_0, quantize_q8_0},
    [HR_TYPE_Q4_0] = {dequantize_q4_0, quantize_q4_0},
    [HR_TYPE_Q4_K] = {dequantize_q4_k, quantize_q4_k},
    [HR_TYPE_Q5_K] = {dequantize_q5_k, quantize_q5_k},
    [HR_TYPE_Q6_K] = {dequantize_q6_k, quantize_q6_k},
};

bool hr_quant_supported(uint32_t type) {
    return type < HR_TYPE_COUNT_ && codecs[type].dequantize && hr_type_get(type);
}

bool hr_quant_row_ok(uint32_t type, int64_t n) {
    return hr_quant_supported(type) && n >= 0 && n % hr_type_get(type)->block_elems == 0;
}

static void dequantize_blocks(uint32_t type, const uint8_t *src, float *dst, int64_t n) {
    const hr_type_info *info = hr_type_get(type);
    for (int64_t i = 0; i < n; i += info->block_elems, src += info->block_bytes) {
        codecs[type].dequantize(src, dst + i);
    }
}

void hr_quant_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n) {
    if (hr_quant_row_ok(type, n)) dequantize_blocks(type, src, dst, n);
}

void hr_quant_quantize_row(uint32_t type, const float *src, void *dst, int64_t n) {
    if (!hr_quant_row_ok(type, n)) return;
    const hr_type_info *info = hr_type_get(type);
    uint8_t *out = dst;
    for (int64_t i = 0; i < n; i += info->block_elems, out += info->block_bytes) {
        codecs[type].quantize(src + i, out);
    }
}

float hr_quant_dot_ref(uint32_t type, const void *row, const float *x, int64_t n) {
    if (!hr_quant_row_ok(type, n)) return NAN;
    const hr_type_info *info = hr_type_get(type);
    const uint8_t *p = row;
    float buf[QK_K], sum = 0.0f;
    /* Chunks of QK_K elements are whole blocks of every supported type (1, 32, 256). */
    for (int64_t i = 0; i < n; i += QK_K) {
        int64_t len = n - i < QK_K ? n - i : QK_K;
        dequantize_blocks(type, p + i / info->block_elems * info->block_bytes, buf, len);
        for (int64_t j = 0; j < len; j++) sum += buf[j] * x[i + j];
    }
    return sum;
}

bool hr_quant_k_unpack(uint32_t type, const void *block, hr_quant_k_ints *out) {
    const uint8_t *b = block;
    switch (type) {
    case HR_TYPE_Q4_K:
    case HR_TYPE_Q5_K:
        if (type == HR_TYPE_Q4_K)
            unpack_levels(k4_pos, b + 16, NULL, 0, out->q);
        else
            unpack_levels(k4_pos, b + 48, b + 16, 1, out->q);
        out->d = load_half(b);
        out->dmin = load_half(b + 2);
        for (int s = 0; s < QK_K / 16; s++) {
            int sc, m;
            get_scale_min(b + 4, s / 2, &sc, &m);
            out->scale[s] = (int16_t)sc;
            out->min[s] = (int16_t)m;
        }
        return true;
    case HR_TYPE_Q6_K:
        unpack_levels(k6_pos, b, b + 128, 2, out->q);
        out->d = out->dmin = load_half(b + 208);
        for (int s = 0; s < QK_K / 16; s++) {
            out->scale[s] = (int8_t)b[192 + s];
            out->min[s] = (int16_t)(32 * out->scale[s]);
        }
        return true;
    default:
        return false;
    }
}
