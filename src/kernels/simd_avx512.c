/* The AVX-512 kernel set (F, BW, VL, VNNI, VBMI). This file alone is compiled for those
 * extensions; matmul.c calls into it only when cpu.c found them.
 *
 * Layout of the work: a kernel decodes each weight vector once and uses it for every
 * token of its call (up to 8), so weights are read once per token group. Float weights
 * go 4 rows x 4 tokens at a time, so each activation load also serves 4 rows. Integer
 * products use vpdpbusd (unsigned activations x signed weights) for the per-32 formats
 * and vpmaddubsw + vpdpwssd (which also applies the int scale) for the k-quants. */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512vbmi")
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/quant.h"
#include "kernels/simd.h"

#define AI static inline __attribute__((always_inline))

enum { MAX_TOKENS = 8 };

static uint16_t load_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static float load_half(const uint8_t *p) { return _cvtsh_ss(load_u16(p)); }

/* ---- horizontal sums ------------------------------------------------------------------
 * Every kernel ends by summing the lanes of its accumulators. All of them use the same
 * association for a vector's 16 lanes — within each 128-bit lane (e0 + e2) + (e1 + e3),
 * then (L0 + L2) + (L1 + L3) across them — whether it is summed alone or in a tree with
 * others, so results do not depend on how many tokens or rows a call takes. Trees sum
 * many accumulators with far fewer operations than one reduction each. */

AI float hsum1(__m512 v) {
    __m512 s = _mm512_add_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm512_add_ps(s, _mm512_permute_ps(s, _MM_SHUFFLE(2, 3, 0, 1)));
    s = _mm512_add_ps(s, _mm512_shuffle_f32x4(s, s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm512_add_ps(s, _mm512_shuffle_f32x4(s, s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm512_cvtss_f32(s);
}

/* Pairs of vectors: within each 128-bit lane, [a0 + a2, b0 + b2, a1 + a3, b1 + b3]. */
AI __m512 sum_pairs(__m512 a, __m512 b) {
    return _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
}

/* Two pair sums into four per 128-bit lane: [A, B, C, D], each (x0 + x2) + (x1 + x3). */
AI __m512 sum_quads(__m512 ab, __m512 cd) {
    return _mm512_add_ps(_mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
}

/* Lanes 0-7 of the result are the sums of v[0..7]. */
AI __m512 sum8x16(const __m512 v[8]) {
    __m512 x0 = sum_quads(sum_pairs(v[0], v[1]), sum_pairs(v[2], v[3]));
    __m512 x1 = sum_quads(sum_pairs(v[4], v[5]), sum_pairs(v[6], v[7]));
    __m512 y = _mm512_add_ps(_mm512_shuffle_f32x4(x0, x1, _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_f32x4(x0, x1, _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(y, y, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(y, y, _MM_SHUFFLE(3, 1, 3, 1)));
}

/* Lane j of the result is the sum of v[j] (45 operations for 16 sums, where 16
 * reductions take about 130). */
AI __m512 sum16x16(const __m512 v[16]) {
    __m512 x[4], y[2];
    for (int i = 0; i < 4; i++)
        x[i] = sum_quads(sum_pairs(v[4 * i], v[4 * i + 1]), sum_pairs(v[4 * i + 2], v[4 * i + 3]));
    for (int i = 0; i < 2; i++)
        y[i] = _mm512_add_ps(_mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(y[0], y[1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(y[0], y[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

/* sums[i] = the sum of v[i]'s lanes for i < count (count <= 16, a constant once inlined). */
AI void sum_lanes(const __m512 *v, const int count, float *sums) {
    if (count == 1) {
        sums[0] = hsum1(v[0]);
        return;
    }
    __m512 pad[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) pad[i] = i < count ? v[i] : _mm512_setzero_ps();
    float all[16];
    _mm512_storeu_ps(all, count <= 8 ? sum8x16(pad) : sum16x16(pad));
#pragma GCC unroll 16
    for (int i = 0; i < count; i++) sums[i] = all[i];
}

/* ---- float weights (f32, f16, bf16) ------------------------------------------------ */

/* The lanes of the 16 elements from i that lie before n. */
AI __mmask16 live_mask(int64_t i, int64_t n) { return n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1); }

/* 16 values from element i as f32; m selects the live lanes at a row's tail. */
AI __m512 load_floats(uint32_t type, const uint8_t *p, int64_t i, __mmask16 m) {
    if (type == HR_TYPE_F32) return m == 0xFFFF ? _mm512_loadu_ps(p + 4 * i) : _mm512_maskz_loadu_ps(m, p + 4 * i);
    __m256i h = m == 0xFFFF ? _mm256_loadu_si256((const __m256i *)(p + 2 * i)) : _mm256_maskz_loadu_epi16(m, p + 2 * i);
    if (type == HR_TYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); /* bf16: the top half of an f32 */
}

/* R rows x nt tokens (nt <= 4): every activation load feeds R FMAs, and four tokens of
 * f32 activations stay in L1 for rows of a few thousand. Rows past nr repeat row nr - 1
 * and their results are dropped. */
AI void float_tile(uint32_t type, const uint8_t *row, uint64_t rb, int nr, const uint8_t *act, size_t stride,
                   int64_t n, float *y, int64_t ys, bool stream, const int R, const int nt) {
    const uint8_t *w[HR_KERNEL_ROWS];
    const uint64_t ahead = hr_prefetch_tiles_ahead((uint64_t)R * rb);
    __m512 acc[HR_KERNEL_ROWS][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        w[r] = row + (uint64_t)(r < nr ? r : nr - 1) * rb;
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) acc[r][t] = _mm512_setzero_ps();
    }
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = live_mask(i, n);
        __m512 wv[HR_KERNEL_ROWS];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            if (stream) __builtin_prefetch(w[r] + ahead + (type == HR_TYPE_F32 ? 4 : 2) * i);
            wv[r] = load_floats(type, w[r], i, m);
        }
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            const float *x = (const float *)(act + t * stride) + i;
            __m512 xv = m == 0xFFFF ? _mm512_loadu_ps(x) : _mm512_maskz_loadu_ps(m, x);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
        }
    }
    __m512 flat[HR_KERNEL_ROWS * 4];
    float sums[HR_KERNEL_ROWS * 4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) flat[r * nt + t] = acc[r][t];
    sum_lanes(flat, R * nt, sums);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        if (r < nr) {
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) y[t * ys + r] = sums[r * nt + t];
        }
}

AI void float_rowdot(uint32_t type, const uint8_t *row, uint64_t rb, int nr, const uint8_t *act, size_t stride,
                     int64_t n, float *y, int64_t ys, bool stream, const int nt) {
    if (nt == 8) {
        float_tile(type, row, rb, nr, act, stride, n, y, ys, stream, HR_KERNEL_ROWS, 4);
        float_tile(type, row, rb, nr, act + 4 * stride, stride, n, y + 4 * ys, ys, stream, HR_KERNEL_ROWS, 4);
    } else {
        float_tile(type, row, rb, nr, act, stride, n, y, ys, stream, HR_KERNEL_ROWS, nt);
    }
}

/* ---- q8_0 / q4_0 against a32 ------------------------------------------------------ */

/* A 64-byte load at base + from that reads zeros past avail bytes (a row's end). */
AI __m512i load_bytes(const uint8_t *base, int64_t from, int64_t avail) {
    int64_t n = avail - from;
    if (n >= 64) return _mm512_loadu_si512(base + from);
    return _mm512_maskz_loadu_epi8(n <= 0 ? 0 : ((__mmask64)1 << n) - 1, base + from);
}

/* vpermt2b indexes that gather a quad (four blocks) of weights into the activations'
 * quad order, from two 64-byte loads: q8_0 (34-byte blocks, levels at 2) loads [0, 64)
 * and [64, 128) for the first halves, [8, 72) and [72, 136) for the second; q4_0
 * (18-byte blocks, 16 bytes of nibble pairs at 2) loads [0, 64) and [8, 72). Then the
 * vpermt2w indexes of the four fp16 scales (at the blocks' starts) in the first pair of
 * loads, each repeated for its block's four lanes. */
#define RUN16(a) \
    a, a + 1, a + 2, a + 3, a + 4, a + 5, a + 6, a + 7, a + 8, a + 9, a + 10, a + 11, a + 12, a + 13, a + 14, a + 15
#define FOUR(a) a, a, a, a
static const uint8_t q8_0_first_halves[64] = {RUN16(2), RUN16(36), RUN16(70), RUN16(104)};
static const uint8_t q8_0_second_halves[64] = {RUN16(10), RUN16(44), RUN16(78), RUN16(112)};
static const uint8_t q4_0_nibble_pairs[64] = {RUN16(2), RUN16(20), RUN16(38), RUN16(112)};
static const uint16_t q8_0_scales[32] = {FOUR(0), FOUR(17), FOUR(34), FOUR(51)};
static const uint16_t q4_0_scales[32] = {FOUR(0), FOUR(9), FOUR(18), FOUR(27)};
#undef RUN16
#undef FOUR

typedef struct {
    __m512i idx_lo, idx_hi, idx_scales;
} a32_shuffles;

AI a32_shuffles a32_shuffles_for(uint32_t type) {
    return (a32_shuffles){
        .idx_lo = _mm512_loadu_si512(type == HR_TYPE_Q8_0 ? q8_0_first_halves : q4_0_nibble_pairs),
        .idx_hi = _mm512_loadu_si512(q8_0_second_halves),
        .idx_scales = _mm512_loadu_si512(type == HR_TYPE_Q8_0 ? q8_0_scales : q4_0_scales),
    };
}

/* The activations' bytes made unsigned (x + 128) for vpdpbusd, whose first operand is
 * unsigned. */
AI __m512i a32_unsigned(const uint8_t *p) {
    return _mm512_xor_si512(_mm512_load_si512(p), _mm512_set1_epi8((char)0x80));
}

/* The quad of weight blocks at q as signed levels in quad order: *lo the first 16
 * elements of each block, *hi the last 16 (q4_0's 0..15 moved to -8..7); *dw each block's
 * scale in its four lanes; and *start = -128 * (sum of each lane's four weights), where
 * every token's sums start, so that the activations' +128 cancels exactly. avail: bytes
 * left in the row; blocks past it read as zeros. */
AI void a32_quad(uint32_t type, const uint8_t *q, int64_t avail, const a32_shuffles *sh, __m512i *lo, __m512i *hi,
                 __m512 *dw, __m512i *start) {
    __m512i l0 = load_bytes(q, 0, avail), l1;
    if (type == HR_TYPE_Q8_0) {
        l1 = load_bytes(q, 64, avail);
        *lo = _mm512_permutex2var_epi8(l0, sh->idx_lo, l1);
        *hi = _mm512_permutex2var_epi8(load_bytes(q, 8, avail), sh->idx_hi, load_bytes(q, 72, avail));
    } else {
        const __m512i nibble = _mm512_set1_epi8(0x0F), eight = _mm512_set1_epi8(8);
        l1 = load_bytes(q, 8, avail);
        __m512i z = _mm512_permutex2var_epi8(l0, sh->idx_lo, l1);
        *lo = _mm512_sub_epi8(_mm512_and_si512(z, nibble), eight);
        *hi = _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(z, 4), nibble), eight);
    }
    *dw = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutex2var_epi16(l0, sh->idx_scales, l1)));
    const __m512i c128 = _mm512_set1_epi8((char)0x80);
    __m512i sum128 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), c128, *lo), c128, *hi);
    *start = _mm512_sub_epi32(_mm512_setzero_si512(), sum128);
}

/* A quad takes two vpdpbusd per token (activations unsigned, weights signed), after which
 * each block owns four lanes: one conversion and one FMA with the lanes' scales. The
 * weights carry the offset correction (*start above), computed once per quad for every
 * token, so a token's inner step loads only its bytes and scales; the activations' own
 * correction (bias4, what the other levels use) would be one more load per token.
 *
 * R rows (1 or 2) go side by side, so each token's activation loads serve both. Loads
 * (two 64-byte ones per cycle; a weight load that splits a cache line counts twice) and
 * the multiply-adds (vpdpbusd and FMA share two issue slots) both bound this loop, and a
 * second row halves the activation loads per product: 8 tokens of 768-wide rows went
 * from 170-180 to 190-205 GMAC/s on one core (L1-resident), prefill (8-token groups)
 * 8 % faster on 110m q8_0 (pp512) and 20-25 % on 1b (pp256), with the same results
 * (each row's lanes see the same operations either way). A group that streams its rows
 * from memory (stream) waits on memory rather than loads, and pairs slowed it: one token
 * by 30 % (bench_kernels q8_0 768->2048), the first 8-token group of 16 decoding
 * sequences enough to cancel the second group's gain. So only full groups reading cached
 * rows pair: 16 sequences' matmuls then took 7 % less time per step (bench_engine 110m
 * q8_0, phases matched). Separate accumulator arrays per row (not one indexed by row)
 * keep all 16 accumulators in registers. */
enum { PAIRED_TOKENS = 8 };

AI __m512 a32_step(__m512 acc, __m512i start, __m512i lo, __m512i hi, __m512 dw, __m512i ua, __m512i ub,
                   const float *d4) {
    __m512i dot = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(start, ua, lo), ub, hi);
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw, _mm512_load_ps(d4)), acc);
}

AI void a32_rowdot(uint32_t type, const uint8_t *row, uint64_t rb, const uint8_t *act, size_t stride, int64_t n,
                   float *y, int64_t ys, bool stream, const int R, const int nt) {
    const int bb = type == HR_TYPE_Q8_0 ? 34 : 18;
    const int64_t nb = n / 32, nbp = hr_a32_blocks(n);
    const a32_shuffles sh = a32_shuffles_for(type);
    __m512 acc0[MAX_TOKENS], acc1[MAX_TOKENS];
#pragma GCC unroll 8
    for (int t = 0; t < nt; t++) acc0[t] = acc1[t] = _mm512_setzero_ps();
    for (int64_t q = 0; q < nb; q += 4) {
        __m512i lo[2], hi[2], start[2];
        __m512 dw[2];
#pragma GCC unroll 2
        for (int r = 0; r < R; r++) {
            const uint8_t *w = row + (uint64_t)r * rb + q * bb;
            if (stream) hr_prefetch_ahead(w, 4 * bb);
            a32_quad(type, w, (nb - q) * bb, &sh, &lo[r], &hi[r], &dw[r], &start[r]);
        }
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) {
            const uint8_t *a = act + t * stride;
            const float *d4 = (const float *)(a + nbp * 32) + 4 * q;
            __m512i ua = a32_unsigned(a + 32 * q), ub = a32_unsigned(a + 32 * q + 64);
            acc0[t] = a32_step(acc0[t], start[0], lo[0], hi[0], dw[0], ua, ub, d4);
            if (R == 2) acc1[t] = a32_step(acc1[t], start[1], lo[1], hi[1], dw[1], ua, ub, d4);
        }
    }
    float sums[MAX_TOKENS];
    sum_lanes(acc0, nt, sums);
#pragma GCC unroll 8
    for (int t = 0; t < nt; t++) y[t * ys] = sums[t];
    if (R == 2) {
        sum_lanes(acc1, nt, sums);
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) y[t * ys + 1] = sums[t];
    }
}

/* nr rows (1 to HR_KERNEL_ROWS): in pairs for PAIRED_TOKENS tokens of a group that finds
 * its rows in cache, else (and the last of an odd count) one at a time. */
AI void a32_rows(uint32_t type, const uint8_t *row, uint64_t rb, int nr, const uint8_t *act, size_t stride, int64_t n,
                 float *y, int64_t ys, bool stream, const int nt) {
    int r = 0;
    for (; nt >= PAIRED_TOKENS && !stream && r + 2 <= nr; r += 2)
        a32_rowdot(type, row + (uint64_t)r * rb, rb, act, stride, n, y + r, ys, stream, 2, nt);
    for (; r < nr; r++) a32_rowdot(type, row + (uint64_t)r * rb, rb, act, stride, n, y + r, ys, stream, 1, nt);
}

/* ---- k-quants against a256 ---------------------------------------------------------- */

/* A block as d * scale * q - dmin * min per 16 elements (see hr_quant_k_ints). */
typedef struct {
    __m256i scale, min; /* 16 int16 each */
    float d, dmin;
    __m512i qh; /* q5_k: the 32 high-bit bytes in both halves */
} k_block;

AI k_block k_head(uint32_t type, const uint8_t *b) {
    k_block k;
    if (type == HR_TYPE_Q6_K) {
        k.scale = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + 192)));
        k.min = _mm256_slli_epi16(k.scale, 5); /* the stored offset of 32 */
        k.d = k.dmin = load_half(b + 208);
        k.qh = _mm512_setzero_si512();
        return k;
    }
    uint32_t sm[4];
    hr_k4_scales_mins(b + 4, sm);
    __m128i v = _mm_setr_epi32((int)sm[0], (int)sm[1], (int)sm[2], (int)sm[3]);
    k.scale = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(v, v)); /* each sub-block's value for both 16s */
    k.min = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(v, v));
    k.d = load_half(b);
    k.dmin = load_half(b + 2);
    k.qh = type == HR_TYPE_Q5_K ? _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b + 16)))
                                : _mm512_setzero_si512();
    return k;
}

/* Levels of elements 64v .. 64v + 63 as unsigned bytes in element order. */
AI __m512i k_levels(uint32_t type, const uint8_t *b, int v, const k_block *k) {
    const __m512i nibble = _mm512_set1_epi8(0x0F);
    /* 16-bit shift counts: the first 32 bytes by lo, the last 32 by hi */
#define HALVES(lo, hi) _mm512_inserti64x4(_mm512_set1_epi16(lo), _mm256_set1_epi16(hi), 1)
    if (type == HR_TYPE_Q6_K) {
        /* Half h of the block: 64 ql bytes hold elements 0-63 in low nibbles and 64-127 in
         * high ones; element 32k + l has bits 2k, 2k+1 of qh[l]. */
        int h = v / 2, p = v % 2;
        __m512i ql = _mm512_loadu_si512(b + 64 * h);
        __m512i lo = _mm512_and_si512(p ? _mm512_srli_epi16(ql, 4) : ql, nibble);
        __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b + 128 + 32 * h)));
        __m512i hb = _mm512_and_si512(_mm512_srlv_epi16(qh, HALVES(4 * p, 4 * p + 2)), _mm512_set1_epi8(3));
        return _mm512_or_si512(lo, _mm512_slli_epi16(hb, 4));
    }
    /* q4_k/q5_k: 32 bytes per 64 elements, the first 32 in low nibbles. */
    const uint8_t *qs = b + (type == HR_TYPE_Q4_K ? 16 : 48) + 32 * v;
    __m512i q = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qs));
    __m512i w = _mm512_and_si512(_mm512_srlv_epi16(q, HALVES(0, 4)), nibble);
    if (type == HR_TYPE_Q5_K) {
        /* Sub-block j's fifth bits are bit j of the 32 qh bytes. */
        __m512i bit = _mm512_inserti64x4(_mm512_set1_epi8((char)(1 << 2 * v)),
                                         _mm256_set1_epi8((char)(1 << (2 * v + 1))), 1);
        w = _mm512_mask_add_epi8(w, _mm512_test_epi8_mask(k->qh, bit), w, _mm512_set1_epi8(16));
    }
#undef HALVES
    return w;
}

AI void k_rowdot(uint32_t type, const uint8_t *row, const uint8_t *act, size_t stride, int64_t n, float *y,
                 int64_t ys, bool stream, const int nt) {
    const int bb = type == HR_TYPE_Q4_K ? 144 : type == HR_TYPE_Q5_K ? 176 : 210;
    const size_t d_at = hr_a256_d_offset(n), bsums_at = hr_a256_bsums_offset(n);
    /* Word i of a product vector covers elements 2i, 2i+1: its scale is number i / 8 of
     * the vector's four. */
    const __m512i quarter = _mm512_cvtepu8_epi16(_mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                                                  2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
    __m512 acc[MAX_TOKENS];
#pragma GCC unroll 8
    for (int t = 0; t < nt; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t blk = 0; blk < n / 256; blk++) {
        const uint8_t *b = row + blk * bb;
        if (stream) hr_prefetch_ahead(b, bb);
        k_block k = k_head(type, b);
        __m512i dots[MAX_TOKENS];
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) dots[t] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++) {
            __m512i w = k_levels(type, b, v, &k);
            __m512i s = _mm512_permutexvar_epi16(_mm512_add_epi16(quarter, _mm512_set1_epi16((short)(4 * v))),
                                                 _mm512_castsi256_si512(k.scale));
#pragma GCC unroll 8
            for (int t = 0; t < nt; t++) {
                __m512i x = _mm512_load_si512(act + t * stride + blk * 256 + 64 * v);
                dots[t] = _mm512_dpwssd_epi32(dots[t], _mm512_maddubs_epi16(w, x), s);
            }
        }
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) {
            const uint8_t *a = act + t * stride;
            float dx = ((const float *)(a + d_at))[blk];
            __m256i mins = _mm256_madd_epi16(k.min, _mm256_loadu_si256((const __m256i *)(a + bsums_at) + blk));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dots[t]), _mm512_set1_ps(k.d * dx), acc[t]);
            acc[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(_mm512_zextsi256_si512(mins)), _mm512_set1_ps(k.dmin * dx),
                                      acc[t]);
        }
    }
    float sums[MAX_TOKENS];
    sum_lanes(acc, nt, sums);
#pragma GCC unroll 8
    for (int t = 0; t < nt; t++) y[t * ys] = sums[t];
}

HR_ROWDOT_KERNELS(HR_DISPATCH_NT8, HR_ROWDOT_TILED, a32_rows)

/* ---- activation quantization (same bytes as simd_scalar.c) --------------------------- */

/* max |x| over the vectors, compared as bit patterns like the scalar reference */
AI float amax_bits(const __m512 *x, int count) {
    __m512i m = _mm512_setzero_si512();
    for (int i = 0; i < count; i++)
        m = _mm512_max_epi32(m, _mm512_and_si512(_mm512_castps_si512(x[i]), _mm512_set1_epi32(0x7FFFFFFF)));
    int bits = _mm512_reduce_max_epi32(m);
    float amax;
    memcpy(&amax, &bits, sizeof amax);
    return amax;
}

/* Quantizes count vectors of 16 with one scale; stores vector i's bytes at q + at(i) and
 * returns d. sums receives each vector's sum. */
AI float quantize_vectors(const float *x, int count, int8_t *q, int64_t (*at)(int64_t, int), int64_t b,
                          int32_t *sums) {
    __m512 v[16];
    for (int i = 0; i < count; i++) v[i] = _mm512_loadu_ps(x + 16 * i);
    float amax = amax_bits(v, count);
    __m512 id = _mm512_set1_ps(hr_act_inverse_scale(amax));
    for (int i = 0; i < count; i++) {
        __m512 xi = _mm512_mul_ps(v[i], id); /* NaN (non-finite input) quantizes to 0, as in scalar */
        __m512i qi = _mm512_maskz_cvtps_epi32(_mm512_cmp_ps_mask(xi, xi, _CMP_ORD_Q), xi);
        _mm_storeu_si128((__m128i *)(q + at(b, i)), _mm512_cvtsepi32_epi8(qi));
        sums[i] = _mm512_reduce_add_epi32(qi);
    }
    return amax / 127.0f;
}

HR_ACT_QUANTIZERS(quantize_vectors)

/* ---- KV rows ----------------------------------------------------------------------- */

/* 16 rows at a time, each with its own accumulator. Whole groups of rows whose length
 * is a multiple of 64 (the usual head sizes) hold 64 elements of q in registers and walk
 * the rows with one pointer, without masks or branches; other groups (a block's last
 * rows, odd head sizes) repeat their last row and drop the extra sums. Both add each
 * row's products in element order. */
AI void scores_floats(uint32_t type, const uint8_t *k, size_t stride, int n_rows, const float *q, int64_t n,
                      float *scores) {
    for (int j0 = 0; j0 < n_rows; j0 += 16) {
        int nr = n_rows - j0 < 16 ? n_rows - j0 : 16;
        const uint8_t *base = k + (size_t)j0 * stride;
        __m512 acc[16];
#pragma GCC unroll 16
        for (int r = 0; r < 16; r++) acc[r] = _mm512_setzero_ps();
        if (nr == 16 && n % 64 == 0) {
            for (int64_t i = 0; i < n; i += 64) {
                __m512 q0 = _mm512_loadu_ps(q + i), q1 = _mm512_loadu_ps(q + i + 16);
                __m512 q2 = _mm512_loadu_ps(q + i + 32), q3 = _mm512_loadu_ps(q + i + 48);
                const uint8_t *row = base;
#pragma GCC unroll 16
                for (int r = 0; r < 16; r++, row += stride) {
                    acc[r] = _mm512_fmadd_ps(load_floats(type, row, i, 0xFFFF), q0, acc[r]);
                    acc[r] = _mm512_fmadd_ps(load_floats(type, row, i + 16, 0xFFFF), q1, acc[r]);
                    acc[r] = _mm512_fmadd_ps(load_floats(type, row, i + 32, 0xFFFF), q2, acc[r]);
                    acc[r] = _mm512_fmadd_ps(load_floats(type, row, i + 48, 0xFFFF), q3, acc[r]);
                }
            }
        } else {
            const uint8_t *rows[16];
#pragma GCC unroll 16
            for (int r = 0; r < 16; r++) rows[r] = base + (size_t)(r < nr ? r : nr - 1) * stride;
            for (int64_t i = 0; i < n; i += 16) {
                __mmask16 m = live_mask(i, n);
                __m512 qv = _mm512_maskz_loadu_ps(m, q + i);
#pragma GCC unroll 16
                for (int r = 0; r < 16; r++) acc[r] = _mm512_fmadd_ps(load_floats(type, rows[r], i, m), qv, acc[r]);
            }
        }
        _mm512_mask_storeu_ps(scores + j0, live_mask(0, nr), sum16x16(acc));
    }
}

/* Mask of the live elements among the 32 of the block starting at element i. */
AI __mmask32 block_mask(int64_t i, int64_t n) { return n - i >= 32 ? 0xFFFFFFFFu : (1u << (n - i)) - 1; }

/* The 32 values of a q8_0 block as two vectors of f32 levels (not yet scaled). */
AI void q8_0_levels(const uint8_t *b, __m512 *lo, __m512 *hi) {
    *lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 2))));
    *hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 18))));
}

static void kv_scores_q8_0(const uint8_t *k, size_t stride, int n_rows, const float *q, int64_t n, float *scores) {
    for (int j = 0; j < n_rows; j++) {
        const uint8_t *b = k + (size_t)j * stride;
        __m512 acc = _mm512_setzero_ps();
        for (int64_t i = 0; i < n; i += 32, b += 34) {
            __mmask32 m = block_mask(i, n);
            __m512 lo, hi;
            q8_0_levels(b, &lo, &hi);
            __m512 s = _mm512_mul_ps(lo, _mm512_maskz_loadu_ps((__mmask16)m, q + i));
            s = _mm512_fmadd_ps(hi, _mm512_maskz_loadu_ps((__mmask16)(m >> 16), q + i + 16), s);
            acc = _mm512_fmadd_ps(s, _mm512_set1_ps(load_half(b)), acc);
        }
        scores[j] = hsum1(acc);
    }
}

/* acc + w * v with a multiply and an add (no FMA), as the scalar loop rounds. */
AI __m512 mix16(__m512 acc, float w, __m512 v) { return _mm512_add_ps(acc, _mm512_mul_ps(_mm512_set1_ps(w), v)); }

/* out stays in registers, 64 elements at a time, while every row is added in; whole
 * chunks (every head size that is a multiple of 64) take the unmasked path. */
AI void mix_floats(uint32_t type, const float *w, const uint8_t *v, size_t stride, int n_rows, float *out,
                   int64_t n) {
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512 acc0 = _mm512_loadu_ps(out + i), acc1 = _mm512_loadu_ps(out + i + 16);
        __m512 acc2 = _mm512_loadu_ps(out + i + 32), acc3 = _mm512_loadu_ps(out + i + 48);
        for (int j = 0; j < n_rows; j++) {
            const uint8_t *row = v + (size_t)j * stride;
            acc0 = mix16(acc0, w[j], load_floats(type, row, i, 0xFFFF));
            acc1 = mix16(acc1, w[j], load_floats(type, row, i + 16, 0xFFFF));
            acc2 = mix16(acc2, w[j], load_floats(type, row, i + 32, 0xFFFF));
            acc3 = mix16(acc3, w[j], load_floats(type, row, i + 48, 0xFFFF));
        }
        _mm512_storeu_ps(out + i, acc0);
        _mm512_storeu_ps(out + i + 16, acc1);
        _mm512_storeu_ps(out + i + 32, acc2);
        _mm512_storeu_ps(out + i + 48, acc3);
    }
    for (; i < n; i += 16) {
        __mmask16 m = live_mask(i, n);
        __m512 acc = _mm512_maskz_loadu_ps(m, out + i);
        for (int j = 0; j < n_rows; j++) acc = mix16(acc, w[j], load_floats(type, v + (size_t)j * stride, i, m));
        _mm512_mask_storeu_ps(out + i, m, acc);
    }
}

HR_KV_FLOAT_KERNELS(f32, HR_TYPE_F32)
HR_KV_FLOAT_KERNELS(f16, HR_TYPE_F16)

static void kv_mix_q8_0(const float *w, const uint8_t *v, size_t stride, int n_rows, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i += 32) {
        __mmask32 m = block_mask(i, n);
        __m512 acc_lo = _mm512_maskz_loadu_ps((__mmask16)m, out + i);
        __m512 acc_hi = _mm512_maskz_loadu_ps((__mmask16)(m >> 16), out + i + 16);
        for (int j = 0; j < n_rows; j++) {
            const uint8_t *b = v + (size_t)j * stride + i / 32 * 34;
            __m512 lo, hi, d = _mm512_set1_ps(load_half(b));
            q8_0_levels(b, &lo, &hi);
            acc_lo = mix16(acc_lo, w[j], _mm512_mul_ps(lo, d));
            acc_hi = mix16(acc_hi, w[j], _mm512_mul_ps(hi, d));
        }
        _mm512_mask_storeu_ps(out + i, (__mmask16)m, acc_lo);
        _mm512_mask_storeu_ps(out + i + 16, (__mmask16)(m >> 16), acc_hi);
    }
}

static void f16_row(const float *x, uint16_t *dst, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = live_mask(i, n);
        __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm256_mask_storeu_epi16(dst + i, m, h);
    }
}

/* Per block of 32: the largest magnitude (NaN ignored, as fmaxf does) and the scale as
 * the reference stores it, then each quant as round_clamp rounds it: clamped to +-127
 * (NaN to -127), rounded half away from zero from the truncation and the exact
 * remainder. */
static void q8_0_row(const float *x, uint8_t *dst, int64_t n) {
    const __m512 sign = _mm512_set1_ps(-0.0f), lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
    const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i + 32 <= n; i += 32, dst += 34) {
        __m512 v[2] = {_mm512_loadu_ps(x + i), _mm512_loadu_ps(x + i + 16)};
        __m512 amax = _mm512_max_ps(_mm512_andnot_ps(sign, v[0]), _mm512_setzero_ps());
        amax = _mm512_max_ps(_mm512_andnot_ps(sign, v[1]), amax); /* a NaN lane keeps the second operand */
        __m512 id = _mm512_set1_ps(hr_quant_q8_0_scale(_mm512_reduce_max_ps(amax), dst));
        for (int h = 0; h < 2; h++) {
            __m512 q = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v[h], id), lo), hi);
            __m512 t = _mm512_roundscale_ps(q, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            __mmask16 up = _mm512_cmp_ps_mask(_mm512_andnot_ps(sign, _mm512_sub_ps(q, t)), half, _CMP_GE_OQ);
            t = _mm512_mask_add_ps(t, up, t, _mm512_or_ps(_mm512_and_ps(q, sign), one));
            _mm_storeu_si128((__m128i *)(dst + 2 + 16 * h), _mm512_cvtsepi32_epi8(_mm512_cvttps_epi32(t)));
        }
    }
}

static void f16_widen(const uint16_t *h, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = live_mask(i, n);
        _mm512_mask_storeu_ps(dst + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, h + i)));
    }
}

/* ---- softmax ------------------------------------------------------------------------ */

AI __m512 round16(__m512 v) { return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }

/* e^x: HR_EXP_REDUCED, then vscalefps multiplies by 2^k (underflowing gradually to zero
 * below, overflowing to infinity above about 88.7). NaN stays NaN. */
AI __m512 exp16(__m512 x) {
    x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x); /* e^-104 is below the smallest subnormal */
    __m512 k, p;
    HR_EXP_REDUCED(_mm512, __m512, round16, x, k, p);
    return _mm512_scalef_ps(p, k);
}

static void softmax(float *x, int64_t n, float div) {
    const __m512 d = _mm512_set1_ps(div);
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = live_mask(i, n);
        __m512 v = _mm512_div_ps(_mm512_maskz_loadu_ps(m, x + i), d);
        _mm512_mask_storeu_ps(x + i, m, v);
        vmax = _mm512_mask_max_ps(vmax, m, vmax, v);
    }
    __m512 max = _mm512_set1_ps(_mm512_reduce_max_ps(vmax)), vsum = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = live_mask(i, n);
        __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), max));
        _mm512_mask_storeu_ps(x + i, m, e);
        vsum = _mm512_mask_add_ps(vsum, m, vsum, e);
    }
    __m512 sum = _mm512_set1_ps(_mm512_reduce_add_ps(vsum));
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = live_mask(i, n);
        _mm512_mask_storeu_ps(x + i, m, _mm512_div_ps(_mm512_maskz_loadu_ps(m, x + i), sum));
    }
}

/* Rounded as the scalar expression g * (1 / (1 + e^-g)) * up, with exp16 for expf. */
static void swiglu(float *g, const float *up, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = live_mask(i, n);
        __m512 x = _mm512_maskz_loadu_ps(m, g + i);
        __m512 sig = _mm512_div_ps(one, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), x))));
        _mm512_mask_storeu_ps(g + i, m, _mm512_mul_ps(_mm512_mul_ps(x, sig), _mm512_maskz_loadu_ps(m, up + i)));
    }
}

/* One vector holds the 16 lanes; dead lanes of a tail load as +0, which leaves a sum of
 * squares unchanged. */
static void rmsnorm(float *o, float *x, const float *delta, const float *w, int64_t n, float eps) {
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = live_mask(i, n);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        if (delta) {
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, delta + i));
            _mm512_mask_storeu_ps(x + i, m, v);
        }
        acc = _mm512_add_ps(acc, _mm512_mul_ps(v, v));
    }
    __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(acc),
                              _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1)));
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    const __m512 r = _mm512_set1_ps(hr_rms_scale(_mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1))), n, eps));
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = live_mask(i, n);
        _mm512_mask_storeu_ps(o + i, m,
                              _mm512_mul_ps(_mm512_maskz_loadu_ps(m, w + i), _mm512_mul_ps(r, _mm512_maskz_loadu_ps(m, x + i))));
    }
}

HR_SIMD_KERNEL_TABLE(hr_simd_avx512_kernels, HR_SIMD_AVX512, MAX_TOKENS);
#else
const hr_simd_kernels hr_simd_avx512_kernels = {.level = HR_SIMD_SCALAR};
#endif
