/* The AVX2 kernel set (AVX2, FMA, F16C). This file alone is compiled for those
 * extensions; matmul.c calls into it only when cpu.c found them.
 *
 * As in the AVX-512 set a kernel decodes each weight vector once for all the tokens of
 * its call (up to 4), and float weights go 2 rows at a time. Bytes are multiplied with
 * vpmaddubsw (unsigned x signed, pairs summed to int16), which saturates above 32767:
 * q8_0 therefore moves its sign onto the activation (|w| <= 128, |x| <= 127 keeps pairs
 * below 32767) instead of using an offset. */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma,f16c")
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/quant.h"
#include "kernels/simd.h"

#define AI static inline __attribute__((always_inline))

enum { MAX_TOKENS = 4 };

static uint16_t load_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static float load_half(const uint8_t *p) { return _cvtsh_ss(load_u16(p)); }

AI float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AI float hmax_ps(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}

AI int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* ---- float weights (f32, f16, bf16) ------------------------------------------------ */

static int elem_bytes(uint32_t type) { return type == HR_TYPE_F32 ? 4 : 2; }

/* 8 values from element i as f32. */
AI __m256 load_floats(uint32_t type, const uint8_t *p, int64_t i) {
    if (type == HR_TYPE_F32) return _mm256_loadu_ps((const float *)p + i);
    __m128i h = _mm_loadu_si128((const __m128i *)(p + 2 * i));
    if (type == HR_TYPE_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)); /* bf16: the top half of an f32 */
}

/* The last live < 8 values from element i, zero-padded (a copy: no read past the row). */
AI __m256 load_floats_tail(uint32_t type, const uint8_t *p, int64_t i, int live) {
    uint8_t tmp[32] = {0};
    memcpy(tmp, p + elem_bytes(type) * i, (size_t)(elem_bytes(type) * live));
    return load_floats(type, tmp, 0);
}

/* How many of the 8 elements from i lie before n. */
AI int live8(int64_t i, int64_t n) { return n - i >= 8 ? 8 : (int)(n - i); }

/* The live (<= 8) values from element i: a whole vector, or the zero-padded tail. */
AI __m256 load_live(uint32_t type, const uint8_t *p, int64_t i, int live) {
    return live >= 8 ? load_floats(type, p, i) : load_floats_tail(type, p, i, live);
}

/* R rows x nt tokens (R <= 2 with 16 vector registers): every activation load feeds R
 * FMAs. Rows past nr repeat row nr - 1 and their results are dropped. */
AI void float_tile(uint32_t type, const uint8_t *row, uint64_t rb, int nr, const uint8_t *act, size_t stride,
                   int64_t n, float *y, int64_t ys, bool stream, const int R, const int nt) {
    const uint8_t *w[2];
    const uint64_t ahead = hr_prefetch_tiles_ahead((uint64_t)R * rb);
    __m256 acc[2][MAX_TOKENS];
#pragma GCC unroll 2
    for (int r = 0; r < R; r++) {
        w[r] = row + (uint64_t)(r < nr ? r : nr - 1) * rb;
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) acc[r][t] = _mm256_setzero_ps();
    }
    for (int64_t i = 0; i < n; i += 8) {
        int live = live8(i, n);
        __m256 wv[2];
#pragma GCC unroll 2
        for (int r = 0; r < R; r++) {
            if (stream) __builtin_prefetch(w[r] + ahead + elem_bytes(type) * i);
            wv[r] = load_live(type, w[r], i, live);
        }
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            const uint8_t *x = act + t * stride;
            __m256 xv = load_live(HR_TYPE_F32, x, i, live);
#pragma GCC unroll 2
            for (int r = 0; r < R; r++) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
        }
    }
#pragma GCC unroll 2
    for (int r = 0; r < R; r++)
        if (r < nr) {
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) y[t * ys + r] = hsum_ps(acc[r][t]);
        }
}

/* Pairs of rows. */
AI void float_rowdot(uint32_t type, const uint8_t *row, uint64_t rb, int nr, const uint8_t *act, size_t stride,
                     int64_t n, float *y, int64_t ys, bool stream, const int nt) {
    for (int r = 0; r < nr; r += 2)
        float_tile(type, row + r * rb, rb, nr - r < 2 ? 1 : 2, act, stride, n, y + r, ys, stream, 2, nt);
}

/* ---- q8_0 / q4_0 against a32 ------------------------------------------------------ */

/* A pair of blocks is two vectors in the activations' quad order ([A0-15 B0-15] and
 * [A16-31 B16-31]); after the byte products each block owns four lanes, scaled by
 * d_w * d_x in one FMA. q4_0's levels carry an offset of 8, removed by the activations'
 * bias; q8_0 moves its sign onto the activations instead (see the top) and needs none. */
AI void a32_rowdot(uint32_t type, const uint8_t *row, const uint8_t *act, size_t stride, int64_t n, float *y,
                   int64_t ys, bool stream, const int nt) {
    const int bb = type == HR_TYPE_Q8_0 ? 34 : 18;
    const int64_t nb = n / 32, nbp = hr_a32_blocks(n);
    const __m256i ones = _mm256_set1_epi16(1), nibble = _mm256_set1_epi8(0x0F);
    __m256 acc[MAX_TOKENS];
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b += 2) {
        const uint8_t *b0 = row + b * bb;
        if (stream) hr_prefetch_ahead(b0, 2 * bb);
        int two = b + 1 < nb;
        __m256 dw = _mm256_set_m128(_mm_set1_ps(two ? load_half(b0 + bb) : 0.0f), _mm_set1_ps(load_half(b0)));
        __m256i w1, w2; /* first and second halves of both blocks */
        if (type == HR_TYPE_Q8_0) {
            __m256i wa = _mm256_loadu_si256((const __m256i *)(b0 + 2));
            __m256i wb = two ? _mm256_loadu_si256((const __m256i *)(b0 + 36)) : _mm256_setzero_si256();
            w1 = _mm256_permute2x128_si256(wa, wb, 0x20);
            w2 = _mm256_permute2x128_si256(wa, wb, 0x31);
        } else {
            __m128i qa = _mm_loadu_si128((const __m128i *)(b0 + 2));
            __m128i qb = two ? _mm_loadu_si128((const __m128i *)(b0 + 20)) : _mm_setzero_si128();
            __m256i q = _mm256_set_m128i(qb, qa);
            w1 = _mm256_and_si256(q, nibble);
            w2 = _mm256_and_si256(_mm256_srli_epi16(q, 4), nibble);
        }
        const int64_t at = b / 4 * 128 + b % 4 * 16;
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            const uint8_t *a = act + t * stride;
            const float *d4 = (const float *)(a + nbp * 32) + 4 * b;
            __m256i x1 = _mm256_load_si256((const __m256i *)(a + at));
            __m256i x2 = _mm256_load_si256((const __m256i *)(a + at + 64));
            __m256i dot;
            if (type == HR_TYPE_Q8_0) { /* |w| x sign-moved activations: pairs stay below 2^15 */
                __m256i p1 = _mm256_maddubs_epi16(_mm256_sign_epi8(w1, w1), _mm256_sign_epi8(x1, w1));
                __m256i p2 = _mm256_maddubs_epi16(_mm256_sign_epi8(w2, w2), _mm256_sign_epi8(x2, w2));
                dot = _mm256_add_epi32(_mm256_madd_epi16(p1, ones), _mm256_madd_epi16(p2, ones));
            } else { /* levels <= 15: both halves' pair sums fit one int16 */
                __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(w1, x1), _mm256_maddubs_epi16(w2, x2));
                dot = _mm256_add_epi32(_mm256_madd_epi16(p, ones), _mm256_load_si256((const __m256i *)(d4 + 4 * nbp)));
            }
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(dw, _mm256_load_ps(d4)), acc[t]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) y[t * ys] = hsum_ps(acc[t]);
}

/* ---- k-quants against a256 ---------------------------------------------------------- */

/* A block as d * scale * q - dmin * min per 16 elements (see hr_quant_k_ints). */
typedef struct {
    int16_t scale[16];
    __m256i min; /* 16 int16 */
    float d, dmin;
} k_block;

AI k_block k_head(uint32_t type, const uint8_t *b) {
    k_block k;
    __m256i scale;
    if (type == HR_TYPE_Q6_K) {
        scale = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + 192)));
        k.min = _mm256_slli_epi16(scale, 5); /* the stored offset of 32 */
        k.d = k.dmin = load_half(b + 208);
    } else {
        uint32_t sm[4];
        hr_k4_scales_mins(b + 4, sm);
        __m128i v = _mm_setr_epi32((int)sm[0], (int)sm[1], (int)sm[2], (int)sm[3]);
        scale = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(v, v)); /* each sub-block's value for both 16s */
        k.min = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(v, v));
        k.d = load_half(b);
        k.dmin = load_half(b + 2);
    }
    _mm256_storeu_si256((__m256i *)k.scale, scale);
    return k;
}

/* Levels of elements 32v .. 32v + 31 as unsigned bytes in element order. */
AI __m256i k_levels(uint32_t type, const uint8_t *b, int v) {
    const __m256i nibble = _mm256_set1_epi8(0x0F);
    if (type == HR_TYPE_Q6_K) {
        /* Half h: element 32k + l has the low (k < 2) or high nibble of ql[32 (k & 1) + l]
         * and bits 2k, 2k+1 of qh[l]. */
        int h = v / 4, k = v % 4;
        __m256i ql = _mm256_loadu_si256((const __m256i *)(b + 64 * h + 32 * (k & 1)));
        __m256i lo = _mm256_and_si256(k >= 2 ? _mm256_srli_epi16(ql, 4) : ql, nibble);
        __m256i qh = _mm256_loadu_si256((const __m256i *)(b + 128 + 32 * h));
        __m256i hb = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), _mm256_set1_epi8(3));
        return _mm256_or_si256(lo, _mm256_slli_epi16(hb, 4));
    }
    /* q4_k/q5_k: sub-block v is the low (even v) or high nibbles of 32 bytes. */
    __m256i q = _mm256_loadu_si256((const __m256i *)(b + (type == HR_TYPE_Q4_K ? 16 : 48) + 32 * (v / 2)));
    __m256i w = _mm256_and_si256(v % 2 ? _mm256_srli_epi16(q, 4) : q, nibble);
    if (type == HR_TYPE_Q5_K) {
        /* its fifth bits: bit v of the 32 qh bytes */
        __m256i qh = _mm256_loadu_si256((const __m256i *)(b + 16));
        __m256i hb = _mm256_and_si256(_mm256_srli_epi16(qh, v), _mm256_set1_epi8(1));
        w = _mm256_or_si256(w, _mm256_slli_epi16(hb, 4));
    }
    return w;
}

AI void k_rowdot(uint32_t type, const uint8_t *row, const uint8_t *act, size_t stride, int64_t n, float *y,
                 int64_t ys, bool stream, const int nt) {
    const int bb = type == HR_TYPE_Q4_K ? 144 : type == HR_TYPE_Q5_K ? 176 : 210;
    const size_t d_at = hr_a256_d_offset(n), bsums_at = hr_a256_bsums_offset(n);
    __m256 acc[MAX_TOKENS];
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t blk = 0; blk < n / 256; blk++) {
        const uint8_t *b = row + blk * bb;
        if (stream) hr_prefetch_ahead(b, bb);
        k_block k = k_head(type, b);
        __m256i dots[MAX_TOKENS];
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) dots[t] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int v = 0; v < 8; v++) {
            __m256i w = k_levels(type, b, v);
            __m256i s = _mm256_set_m128i(_mm_set1_epi16(k.scale[2 * v + 1]), _mm_set1_epi16(k.scale[2 * v]));
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) {
                __m256i x = _mm256_load_si256((const __m256i *)(act + t * stride + blk * 256 + 32 * v));
                dots[t] = _mm256_add_epi32(dots[t], _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), s));
            }
        }
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            const uint8_t *a = act + t * stride;
            float dx = ((const float *)(a + d_at))[blk];
            __m256i mins = _mm256_madd_epi16(k.min, _mm256_loadu_si256((const __m256i *)(a + bsums_at) + blk));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dots[t]), _mm256_set1_ps(k.d * dx), acc[t]);
            acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_set1_ps(k.dmin * dx), acc[t]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) y[t * ys] = hsum_ps(acc[t]);
}

HR_ROWDOT_KERNELS(HR_DISPATCH_NT4, HR_ROWDOT_ROWS, a32_rowdot)

/* ---- activation quantization (same bytes as simd_scalar.c) --------------------------- */

/* Quantizes count groups of 32 floats with one scale; stores the 16-byte halves of group
 * i at q + at(b, 2i) and q + at(b, 2i + 1) and returns d. sums16 receives the sum of
 * every 16 quants. */
AI float quantize_groups(const float *x, int count, int8_t *q, int64_t (*at)(int64_t, int), int64_t b,
                         int32_t *sums16) {
    __m256i m = _mm256_setzero_si256();
    for (int i = 0; i < 4 * count; i++) /* max |x| as bit patterns, like the scalar reference */
        m = _mm256_max_epi32(m, _mm256_and_si256(_mm256_castps_si256(_mm256_loadu_ps(x + 8 * i)),
                                                 _mm256_set1_epi32(0x7FFFFFFF)));
    __m128i m4 = _mm_max_epi32(_mm256_castsi256_si128(m), _mm256_extracti128_si256(m, 1));
    m4 = _mm_max_epi32(m4, _mm_shuffle_epi32(m4, _MM_SHUFFLE(1, 0, 3, 2)));
    m4 = _mm_max_epi32(m4, _mm_shuffle_epi32(m4, _MM_SHUFFLE(2, 3, 0, 1)));
    int bits = _mm_cvtsi128_si32(m4);
    float amax;
    memcpy(&amax, &bits, sizeof amax);
    __m256 id = _mm256_set1_ps(hr_act_inverse_scale(amax));
    for (int g = 0; g < count; g++) {
        __m256i v[4];
        for (int i = 0; i < 4; i++) { /* NaN (non-finite input) quantizes to 0, as in scalar */
            __m256 xi = _mm256_mul_ps(_mm256_loadu_ps(x + 32 * g + 8 * i), id);
            v[i] = _mm256_and_si256(_mm256_cvtps_epi32(xi), _mm256_castps_si256(_mm256_cmp_ps(xi, xi, _CMP_ORD_Q)));
        }
        sums16[2 * g] = hsum_epi32(_mm256_add_epi32(v[0], v[1]));
        sums16[2 * g + 1] = hsum_epi32(_mm256_add_epi32(v[2], v[3]));
        /* The packs interleave 128-bit lanes; the permute restores element order. */
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm_storeu_si128((__m128i *)(q + at(b, 2 * g)), _mm256_castsi256_si128(p));
        _mm_storeu_si128((__m128i *)(q + at(b, 2 * g + 1)), _mm256_extracti128_si256(p, 1));
    }
    return amax / 127.0f;
}

/* In vectors of 16, as HR_ACT_QUANTIZERS counts. */
AI float quantize_halves(const float *x, int count16, int8_t *q, int64_t (*at)(int64_t, int), int64_t b,
                         int32_t *sums16) {
    return quantize_groups(x, count16 / 2, q, at, b, sums16);
}

HR_ACT_QUANTIZERS(quantize_halves)

/* ---- KV rows ----------------------------------------------------------------------- */

AI void scores_floats(uint32_t type, const uint8_t *k, size_t stride, int n_rows, const float *q, int64_t n,
                      float *scores) {
    float_rowdot(type, k, stride, n_rows, (const uint8_t *)q, 0, n, scores, 0, true, 1);
}

/* 8 levels of a q8_0 block from element j of the block, as f32 (not yet scaled). */
AI __m256 q8_0_levels(const uint8_t *b, int j) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b + 2 + j))));
}

/* f32 values from element i of p (live < 8: the tail, zero-padded). */
AI __m256 load_f32(const float *p, int64_t i, int live) { return load_live(HR_TYPE_F32, (const uint8_t *)p, i, live); }

static void kv_scores_q8_0(const uint8_t *k, size_t stride, int n_rows, const float *q, int64_t n, float *scores) {
    for (int r = 0; r < n_rows; r++) {
        const uint8_t *b = k + (size_t)r * stride;
        __m256 acc = _mm256_setzero_ps();
        for (int64_t i = 0; i < n; i += 32, b += 34) {
            __m256 s = _mm256_setzero_ps();
            for (int j = 0; j < 32 && i + j < n; j += 8)
                s = _mm256_fmadd_ps(q8_0_levels(b, j), load_f32(q, i + j, (int)(n - i - j)), s);
            acc = _mm256_fmadd_ps(s, _mm256_set1_ps(load_half(b)), acc);
        }
        scores[r] = hsum_ps(acc);
    }
}

/* acc + w * v with a multiply and an add (no FMA), as the scalar loop rounds. */
AI __m256 mix8(__m256 acc, float w, __m256 v) { return _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(w), v)); }

/* The first live (<= 8) lanes of v into p. */
AI void store_f32(float *p, __m256 v, int live) {
    if (live >= 8) {
        _mm256_storeu_ps(p, v);
        return;
    }
    float tmp[8];
    _mm256_storeu_ps(tmp, v);
    memcpy(p, tmp, sizeof(float) * (size_t)live);
}

/* The 32 outputs from element i as four vectors; live[c] counts vector c's elements. */
AI void mix_load(const float *out, int64_t i, int64_t n, int live[4], __m256 acc[4]) {
    for (int c = 0; c < 4; c++) {
        int64_t left = n - i - 8 * c;
        live[c] = left >= 8 ? 8 : left > 0 ? (int)left : 0;
        acc[c] = live[c] ? load_f32(out, i + 8 * c, live[c]) : _mm256_setzero_ps();
    }
}

AI void mix_store(float *out, int64_t i, const int live[4], const __m256 acc[4]) {
    for (int c = 0; c < 4; c++)
        if (live[c]) store_f32(out + i + 8 * c, acc[c], live[c]);
}

/* out stays in registers, 32 elements at a time, while every row is added in. */
AI void mix_floats(uint32_t type, const float *w, const uint8_t *v, size_t stride, int n_rows, float *out,
                   int64_t n) {
    for (int64_t i = 0; i < n; i += 32) {
        int live[4];
        __m256 acc[4];
        mix_load(out, i, n, live, acc);
        for (int j = 0; j < n_rows; j++) {
            const uint8_t *row = v + (size_t)j * stride;
            for (int c = 0; c < 4; c++)
                if (live[c]) acc[c] = mix8(acc[c], w[j], load_live(type, row, i + 8 * c, live[c]));
        }
        mix_store(out, i, live, acc);
    }
}

HR_KV_FLOAT_KERNELS(f32, HR_TYPE_F32)
HR_KV_FLOAT_KERNELS(f16, HR_TYPE_F16)

static void kv_mix_q8_0(const float *w, const uint8_t *v, size_t stride, int n_rows, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i += 32) {
        int live[4];
        __m256 acc[4];
        mix_load(out, i, n, live, acc);
        for (int j = 0; j < n_rows; j++) {
            const uint8_t *b = v + (size_t)j * stride + i / 32 * 34;
            __m256 d = _mm256_set1_ps(load_half(b));
            for (int c = 0; c < 4; c++) acc[c] = mix8(acc[c], w[j], _mm256_mul_ps(q8_0_levels(b, 8 * c), d));
        }
        mix_store(out, i, live, acc);
    }
}

static void f16_row(const float *x, uint16_t *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    if (i < n) {
        uint16_t tmp[8];
        _mm_storeu_si128((__m128i *)tmp, _mm256_cvtps_ph(load_f32(x, i, (int)(n - i)), _MM_FROUND_TO_NEAREST_INT));
        memcpy(dst + i, tmp, sizeof(uint16_t) * (size_t)(n - i));
    }
}

/* As the AVX-512 q8_0_row: per block of 32 the largest magnitude (NaN ignored) and the
 * scale as the reference stores it, then each quant clamped to +-127 (NaN to -127) and
 * rounded half away from zero from the truncation and the exact remainder. The packs
 * interleave 4-byte groups across the two halves of the register; one permute puts them
 * back in element order. */
static void q8_0_row(const float *x, uint8_t *dst, int64_t n) {
    const __m256 sign = _mm256_set1_ps(-0.0f), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t i = 0; i + 32 <= n; i += 32, dst += 34) {
        __m256 v[4], amax = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(x + i + 8 * k);
            amax = _mm256_max_ps(_mm256_andnot_ps(sign, v[k]), amax); /* a NaN lane keeps the second operand */
        }
        __m256 id = _mm256_set1_ps(hr_quant_q8_0_scale(hmax_ps(amax), dst));
        __m256i q[4];
        for (int k = 0; k < 4; k++) {
            __m256 c = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v[k], id), lo), hi);
            __m256 t = _mm256_round_ps(c, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            __m256 up = _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_sub_ps(c, t)), half, _CMP_GE_OQ);
            t = _mm256_add_ps(t, _mm256_and_ps(up, _mm256_or_ps(_mm256_and_ps(c, sign), one)));
            q[k] = _mm256_cvttps_epi32(t);
        }
        __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        _mm256_storeu_si256((__m256i *)(dst + 2), _mm256_permutevar8x32_epi32(bytes, order));
    }
}

static void f16_widen(const uint16_t *h, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i += 8) {
        int live = live8(i, n);
        const uint8_t *p = (const uint8_t *)h;
        store_f32(dst + i, load_live(HR_TYPE_F16, p, i, live), live);
    }
}

/* ---- softmax ------------------------------------------------------------------------ */

AI __m256 round8(__m256 v) { return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }

/* e^x: HR_EXP_REDUCED, with 2^k built in the exponent bits: x is held in
 * [-87.3, 88.3] so that k stays a normal exponent (e^-87.3 ~ 1e-38 stands in for smaller
 * results, which no softmax sum can tell apart, and e^88.3 ~ 2e38 for larger ones, whose
 * reciprocals SwiGLU takes). NaN stays NaN (the operand order of max and min keeps it). */
AI __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_set1_ps(88.3f), _mm256_max_ps(_mm256_set1_ps(-87.3f), x));
    __m256 k, p;
    HR_EXP_REDUCED(_mm256, __m256, round8, x, k, p);
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* All ones in the first live lanes. */
AI __m256 first_lanes(int live) {
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(live), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
}

static void softmax(float *x, int64_t n, float div) {
    const __m256 d = _mm256_set1_ps(div), minus_inf = _mm256_set1_ps(-INFINITY);
    __m256 vmax = minus_inf;
    for (int64_t i = 0; i < n; i += 8) {
        int live = live8(i, n);
        __m256 v = _mm256_div_ps(load_f32(x, i, live), d);
        store_f32(x + i, v, live);
        vmax = _mm256_max_ps(vmax, _mm256_blendv_ps(minus_inf, v, first_lanes(live)));
    }
    __m256 max = _mm256_set1_ps(hmax_ps(vmax)), vsum = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 8) {
        int live = live8(i, n);
        __m256 e = exp8(_mm256_sub_ps(load_f32(x, i, live), max));
        store_f32(x + i, e, live);
        vsum = _mm256_add_ps(vsum, _mm256_and_ps(e, first_lanes(live)));
    }
    __m256 sum = _mm256_set1_ps(hsum_ps(vsum));
    for (int64_t i = 0; i < n; i += 8) {
        int live = live8(i, n);
        store_f32(x + i, _mm256_div_ps(load_f32(x, i, live), sum), live);
    }
}

/* Rounded as the scalar expression g * (1 / (1 + e^-g)) * up, with exp8 for expf. */
static void swiglu(float *g, const float *up, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 8) {
        int live = live8(i, n);
        __m256 x = load_f32(g, i, live);
        __m256 sig = _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
        store_f32(g + i, _mm256_mul_ps(_mm256_mul_ps(x, sig), load_f32(up, i, live)), live);
    }
}

/* Lanes 0-7 of the 16 in lo, 8-15 in hi; dead lanes of a tail load as +0, which leaves a
 * sum of squares unchanged. */
static void rmsnorm(float *o, float *x, const float *delta, const float *w, int64_t n, float eps) {
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        int live_lo = live8(i, n), live_hi = n - i > 8 ? live8(i + 8, n) : 0;
        __m256 a = load_f32(x, i, live_lo), b = live_hi > 0 ? load_f32(x, i + 8, live_hi) : _mm256_setzero_ps();
        if (delta) {
            a = _mm256_add_ps(a, load_f32(delta, i, live_lo));
            store_f32(x + i, a, live_lo);
            if (live_hi > 0) {
                b = _mm256_add_ps(b, load_f32(delta, i + 8, live_hi));
                store_f32(x + i + 8, b, live_hi);
            }
        }
        lo = _mm256_add_ps(lo, _mm256_mul_ps(a, a));
        hi = _mm256_add_ps(hi, _mm256_mul_ps(b, b));
    }
    __m256 s8 = _mm256_add_ps(lo, hi);
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    float r = hr_rms_scale(_mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1))), n, eps);
    const __m256 rv = _mm256_set1_ps(r);
    for (int64_t i = 0; i < n; i += 8) {
        int live = live8(i, n);
        store_f32(o + i, _mm256_mul_ps(load_f32(w, i, live), _mm256_mul_ps(rv, load_f32(x, i, live))), live);
    }
}

HR_SIMD_KERNEL_TABLE(hr_simd_avx2_kernels, HR_SIMD_AVX2, MAX_TOKENS);
#else
const hr_simd_kernels hr_simd_avx2_kernels = {.level = HR_SIMD_SCALAR};
#endif
