/* kernels/simd — the interface between the matmul driver (matmul.c) and the kernel sets
 * of each SIMD level (simd_scalar.c, simd_avx2.c, simd_avx512.c), and the layout of the
 * 8-bit activations their integer dot products read.
 *
 * Quantized weights are multiplied by activations quantized to 8 bits once per matmul,
 * so that inner loops are integer multiply-adds. Two activation layouts exist, one per
 * weight family; a row holds one token, sections start 64-byte aligned:
 *   a32 (q8_0, q4_0): blocks of 32 with d = amax / 127 and q = round-to-nearest-even of
 *       x * 127 / amax. int8 qs[nbp * 32] in quad order (hr_a32_pos): four blocks A-D
 *       take 128 bytes, [A0-15 B0-15 C0-15 D0-15 | A16-31 B16-31 C16-31 D16-31], so that
 *       one vector of each half gives every block four 32-bit lanes of its own and two
 *       vpdpbusd sum whole blocks per lane (kernels shuffle weights the same way). Then
 *       per block, repeated for its four lanes: float d4[nbp * 4], and int32 bias4[nbp * 4]
 *       = -(offset / 4) * (sum of the block's qs), where offset is what kernels add to
 *       the weight levels to make them unsigned (128 for q8_0, 8 for q4_0): starting the
 *       lanes' sums at the bias removes it exactly (scalar and AVX2; AVX-512 instead makes
 *       the activations unsigned and corrects from the weights' sums, see its a32_quad).
 *       nbp = blocks rounded up to a quad; the padding is zero.
 *   a256 (q4_k, q5_k, q6_k): blocks of 256 with the same quantization, in element order;
 *       int8 qs[nb * 256], float d[nb rounded up to 16], int16 bsums[nb * 16] (sums of
 *       16 qs, for the k-quants' mins and q6_k's offset).
 * Every level quantizes activations to the same bytes, so levels differ only in the
 * order of float additions.
 *
 * Must not: be used outside src/kernels (and its tests); allocate. */
#ifndef HR_KERNELS_SIMD_H
#define HR_KERNELS_SIMD_H

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/ggml_type.h"
#include "kernels/cpu.h"

typedef enum {
    HR_ACT_F32,  /* float weights read the f32 activations directly */
    HR_ACT_A32,
    HR_ACT_A256,
    HR_ACT_NONE, /* no fast kernel: the reference dot product */
} hr_act_kind;

static inline hr_act_kind hr_act_kind_of(uint32_t type) {
    switch (type) {
    case HR_TYPE_F32:
    case HR_TYPE_F16:
    case HR_TYPE_BF16: return HR_ACT_F32;
    case HR_TYPE_Q8_0:
    case HR_TYPE_Q4_0: return HR_ACT_A32;
    case HR_TYPE_Q4_K:
    case HR_TYPE_Q5_K:
    case HR_TYPE_Q6_K: return HR_ACT_A256;
    default: return HR_ACT_NONE;
    }
}

static inline int64_t hr_round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

/* Blocks in an a32 row of n elements, padding included. */
static inline int64_t hr_a32_blocks(int64_t n) { return hr_round_up(n / 32, 4); }

/* What kernels add to a weight type's levels to make them unsigned bytes. */
static inline int32_t hr_a32_offset(uint32_t type) { return type == HR_TYPE_Q8_0 ? 128 : 8; }

/* 127 / amax, the activation quantizers' inverse scale, or 0 where that is not a finite
 * positive number: a block of zeros or of non-finite values, and one whose largest
 * magnitude is below about 3.7e-37, where 127 / amax overflows to infinity (each level
 * then converted the infinities its own way, and the AVX-512 lane sums overflowed). All
 * of such a block's values quantize to 0, at every level alike. */
static inline float hr_act_inverse_scale(float amax) {
    if (!(amax > 0.0f)) return 0.0f;
    float id = 127.0f / amax;
    return id <= FLT_MAX ? id : 0.0f;
}

/* Where element j (0..31) of block b lives in an a32 row's qs. */
static inline int64_t hr_a32_pos(int64_t b, int j) { return b / 4 * 128 + j / 16 * 64 + b % 4 * 16 + j % 16; }

typedef struct {
    int8_t *qs;
    float *d;       /* a32: d4, each block's d in its four lanes */
    int32_t *bias4; /* a32 only */
    int16_t *bsums; /* a256 only */
} hr_act_row;

static inline size_t hr_a256_d_offset(int64_t n) { return (size_t)(n / 256) * 256; }
static inline size_t hr_a256_bsums_offset(int64_t n) {
    return hr_a256_d_offset(n) + (size_t)hr_round_up(n / 256, 16) * sizeof(float);
}

/* Bytes of one activation row of n elements for weights of kind (0 for f32 and none);
 * a multiple of 64. */
static inline size_t hr_act_row_bytes(hr_act_kind kind, int64_t n) {
    if (kind == HR_ACT_A32) return (size_t)hr_a32_blocks(n) * (32 + 4 * sizeof(float) + 4 * sizeof(int32_t));
    if (kind == HR_ACT_A256)
        return (size_t)hr_round_up((int64_t)hr_a256_bsums_offset(n) + n / 256 * 16 * 2, 64);
    return 0;
}

/* The largest row any weight kind needs for up to n columns. */
static inline size_t hr_act_row_bytes_max(int64_t n) {
    size_t a = hr_act_row_bytes(HR_ACT_A32, hr_round_up(n, 32));
    size_t b = hr_act_row_bytes(HR_ACT_A256, hr_round_up(n, 256));
    return a > b ? a : b;
}

static inline hr_act_row hr_act_row_at(hr_act_kind kind, uint8_t *row, int64_t n) {
    hr_act_row a = {.qs = (int8_t *)row};
    if (kind == HR_ACT_A32) {
        int64_t nbp = hr_a32_blocks(n);
        a.d = (float *)(row + nbp * 32);
        a.bias4 = (int32_t *)(a.d + nbp * 4);
    } else {
        a.d = (float *)(row + hr_a256_d_offset(n));
        a.bsums = (int16_t *)(row + hr_a256_bsums_offset(n));
    }
    return a;
}

/* Weights stream from memory once per token group; asking for the bytes this far ahead
 * of those being decoded keeps more reads in flight than the hardware prefetcher does
 * alone (about 15 % more decode bandwidth where measured). Kernels call this for the
 * cache lines of [p, p + bytes) as they start decoding them. */
enum { HR_PREFETCH_BYTES = 4096 };
static inline __attribute__((always_inline)) void hr_prefetch_ahead(const uint8_t *p, const int bytes) {
#pragma GCC unroll 4
    for (int o = 0; o < bytes; o += 64) __builtin_prefetch(p + HR_PREFETCH_BYTES + o);
}

/* A kernel that walks a tile of rows side by side reads the matrix as a stream that
 * advances a tile at a time, so "ahead" is the same place in a later tile, at least
 * HR_PREFETCH_BYTES on in that order. (HR_PREFETCH_BYTES from each row pointed into rows
 * of the tile being read: f16 decode went from 172-182 to 246-268 tokens/s on 110m and
 * from 16.5-17.4 to 22.3-24.8 on 1b with this.) */
static inline uint64_t hr_prefetch_tiles_ahead(uint64_t tile_bytes) {
    return tile_bytes ? (HR_PREFETCH_BYTES + tile_bytes - 1) / tile_bytes * tile_bytes : HR_PREFETCH_BYTES;
}

/* Up to this many consecutive weight rows per kernel call. */
enum { HR_KERNEL_ROWS = 4 };

/* For r < nr and t < nt: y[t * y_stride + r] = (weight row r . activation t). Rows are
 * row_bytes apart from row; activations are nt rows act_stride bytes apart (f32 rows of
 * n floats for float weights, else the weight kind's layout, 64-byte aligned). nr is 1 to
 * HR_KERNEL_ROWS, nt a power of two up to the set's max_tokens. Each output is computed
 * by the same operations in the same order whatever nr and nt are, so tiling, batching
 * and threading never change results. stream: the rows come from memory (the first token
 * group to read them), so the kernel asks for rows ahead of those it decodes; later
 * groups find them in cache, where asking would only fetch rows past the caller's. */
typedef void (*hr_rowdot_fn)(const uint8_t *row, uint64_t row_bytes, int nr, const uint8_t *act, size_t act_stride,
                             int64_t n, int nt, float *y, int64_t y_stride, bool stream);
/* Quantizes n floats (a whole number of the kind's blocks) into one activation row for
 * weights of type wtype. */
typedef void (*hr_act_quant_fn)(const float *x, int64_t n, uint32_t wtype, uint8_t *row);
/* Attention over n_rows consecutive KV rows stride bytes apart, each n elements:
 * scores[j] = K row j . q; and out[i] += w[j] * V row j [i] for j = 0, 1, ... in order,
 * each term rounded as that scalar expression (multiply, then add; bit-identical at
 * every level). */
typedef void (*hr_kv_scores_fn)(const uint8_t *k, size_t stride, int n_rows, const float *q, int64_t n,
                                float *scores);
typedef void (*hr_kv_mix_fn)(const float *w, const uint8_t *v, size_t stride, int n_rows, float *out, int64_t n);
/* dst[i] = x[i] as f16, rounded to nearest even (what hr_f32_to_fp16 gives, NaN
 * payloads aside). */
typedef void (*hr_f16_row_fn)(const float *x, uint16_t *dst, int64_t n);
/* A q8_0 KV row of n values (a multiple of 32): the bytes hr_quant_quantize_row writes. */
typedef void (*hr_q8_0_row_fn)(const float *x, uint8_t *dst, int64_t n);
/* dst[i] = f16 value h[i] as f32 (exact). */
typedef void (*hr_f16_widen_fn)(const uint16_t *h, float *dst, int64_t n);
/* x[i] = exp(x[i] / div - max) / sum, the max and sum over the n (>= 1) quotients. */
typedef void (*hr_softmax_fn)(float *x, int64_t n, float div);
/* g[i] = g[i] * sigmoid(g[i]) * up[i] (SwiGLU's gate times the up projection). */
typedef void (*hr_swiglu_fn)(float *g, const float *up, int64_t n);
/* x[i] += delta[i] (delta NULL: none), then o[i] = w[i] * (r * x[i]) with r from the sum
 * of squares as hr_rms_scale takes it. The squares go into 16 interleaved lanes (x[i]
 * into lane i % 16, each a product then a sum), added in a fixed tree (lane j += lane
 * j + w for w = 8, 4, 2, 1): the same operations in the same order at every level. */
typedef void (*hr_rmsnorm_fn)(float *o, float *x, const float *delta, const float *w, int64_t n, float eps);

/* 1 / sqrt(mean square + eps) from the sum of n squares, as the reference rounds it. */
static inline float hr_rms_scale(float sum_squares, int64_t n, float eps) {
    float ss = sum_squares / (float)n;
    ss += eps;
    return 1.0f / sqrtf(ss);
}

typedef struct {
    hr_simd_level level;
    int max_tokens;
    hr_rowdot_fn rowdot[HR_TYPE_COUNT_]; /* NULL: no fast path for the type */
    hr_act_quant_fn quantize_a32, quantize_a256;
    /* KV types f32, f16, q8_0 (q8_0 rows may end inside their last block). */
    hr_kv_scores_fn kv_scores[HR_TYPE_COUNT_];
    hr_kv_mix_fn kv_mix[HR_TYPE_COUNT_];
    hr_f16_row_fn f16_row;
    hr_q8_0_row_fn q8_0_row;
    hr_f16_widen_fn f16_widen;
    hr_softmax_fn softmax;
    hr_swiglu_fn swiglu;
    hr_rmsnorm_fn rmsnorm;
} hr_simd_kernels;

/* A level's f32 and f16 KV kernels, from its type-generic scores_floats and mix_floats. */
#define HR_KV_FLOAT_KERNELS(sfx, type)                                                                     \
    static void kv_scores_##sfx(const uint8_t *k, size_t stride, int n_rows, const float *q, int64_t n,    \
                                float *scores) {                                                           \
        scores_floats(type, k, stride, n_rows, q, n, scores);                                              \
    }                                                                                                      \
    static void kv_mix_##sfx(const float *w, const uint8_t *v, size_t stride, int n_rows, float *out,      \
                             int64_t n) {                                                                  \
        mix_floats(type, w, v, stride, n_rows, out, n);                                                    \
    }

/* A level's rowdot kernels (the names HR_SIMD_KERNEL_TABLE lists), from its float_rowdot
 * (tiles rows itself), its a32 kernel (A32_FORM says which way it takes rows: the level's
 * a32_rowdot one row at a time with HR_ROWDOT_ROWS, or its a32_rows tiling them itself
 * with HR_ROWDOT_TILED) and k_rowdot (one row at a time), with DISPATCH (HR_DISPATCH_NT4
 * or _NT8) turning nt into a constant. */
#define HR_ROWDOT_TILED(name, kernel, type, DISPATCH)                                                     \
    static void name(const uint8_t *row, uint64_t rb, int nr, const uint8_t *act, size_t stride, int64_t n, int nt, \
                     float *y, int64_t ys, bool stream) {                                                 \
        DISPATCH(kernel, nt, type, row, rb, nr, act, stride, n, y, ys, stream)                            \
    }
#define HR_ROWDOT_FLOAT(name, type, DISPATCH) HR_ROWDOT_TILED(name, float_rowdot, type, DISPATCH)
#define HR_ROWDOT_ROWS(name, kernel, type, DISPATCH)                                                      \
    static void name(const uint8_t *row, uint64_t rb, int nr, const uint8_t *act, size_t stride, int64_t n, int nt, \
                     float *y, int64_t ys, bool stream) {                                                 \
        for (int r = 0; r < nr; r++) DISPATCH(kernel, nt, type, row + r * rb, act, stride, n, y + r, ys, stream) \
    }
#define HR_ROWDOT_KERNELS(DISPATCH, A32_FORM, a32_kernel)                                                \
    HR_ROWDOT_FLOAT(rowdot_f32, HR_TYPE_F32, DISPATCH)                                                    \
    HR_ROWDOT_FLOAT(rowdot_f16, HR_TYPE_F16, DISPATCH)                                                    \
    HR_ROWDOT_FLOAT(rowdot_bf16, HR_TYPE_BF16, DISPATCH)                                                  \
    A32_FORM(rowdot_q8_0, a32_kernel, HR_TYPE_Q8_0, DISPATCH)                                             \
    A32_FORM(rowdot_q4_0, a32_kernel, HR_TYPE_Q4_0, DISPATCH)                                             \
    HR_ROWDOT_ROWS(rowdot_q4_k, k_rowdot, HR_TYPE_Q4_K, DISPATCH)                                         \
    HR_ROWDOT_ROWS(rowdot_q5_k, k_rowdot, HR_TYPE_Q5_K, DISPATCH)                                         \
    HR_ROWDOT_ROWS(rowdot_q6_k, k_rowdot, HR_TYPE_Q6_K, DISPATCH)

/* A vector level's activation quantizers, from its quantize16(x, count, q, at, b, sums):
 * count vectors of 16 floats (a multiple of 2) quantized with one scale, vector i's bytes
 * stored at q + at(b, i), its sum in sums[i], the scale returned. (SSE stores, so only
 * for files compiled for a vector target.) */
#define HR_ACT_QUANTIZERS(quantize16)                                                                     \
    static int64_t a32_at(int64_t b, int i) { return hr_a32_pos(b, 16 * i); }                             \
    static int64_t a256_at(int64_t b, int i) { return 256 * b + 16 * i; }                                 \
    static void quantize_a32(const float *x, int64_t n, uint32_t wtype, uint8_t *row) {                   \
        hr_act_row a = hr_act_row_at(HR_ACT_A32, row, n);                                                 \
        int64_t nb = n / 32, nbp = hr_a32_blocks(n);                                                      \
        for (int64_t b = 0; b < nbp; b++) {                                                               \
            int32_t sums[2] = {0, 0};                                                                     \
            float d = 0.0f;                                                                               \
            if (b < nb)                                                                                   \
                d = quantize16(x + 32 * b, 2, a.qs, a32_at, b, sums);                                     \
            else                                                                                          \
                for (int i = 0; i < 2; i++) _mm_storeu_si128((__m128i *)(a.qs + a32_at(b, i)), _mm_setzero_si128()); \
            _mm_storeu_ps(a.d + 4 * b, _mm_set1_ps(d));                                                   \
            _mm_storeu_si128((__m128i *)(a.bias4 + 4 * b),                                                \
                             _mm_set1_epi32(-(hr_a32_offset(wtype) / 4) * (sums[0] + sums[1])));          \
        }                                                                                                 \
    }                                                                                                     \
    static void quantize_a256(const float *x, int64_t n, uint32_t wtype, uint8_t *row) {                  \
        (void)wtype;                                                                                      \
        hr_act_row a = hr_act_row_at(HR_ACT_A256, row, n);                                                \
        for (int64_t b = 0; b < n / 256; b++) {                                                           \
            int32_t sums[16];                                                                             \
            a.d[b] = quantize16(x + 256 * b, 16, a.qs, a256_at, b, sums);                                 \
            for (int s = 0; s < 16; s++) a.bsums[16 * b + s] = (int16_t)sums[s];                          \
        }                                                                                                 \
    }

/* The vector levels' e^x before the scaling by 2^k, in the intrinsics of prefix S (_mm256,
 * _mm512) on vectors of type V: k = round(x log2 e) by ROUND, r = x - k ln2 (ln2 in two
 * parts), and p = e^r = 1 + r + r^2 P(r) with P the degree-5 minimax polynomial of the
 * Cephes library (within a few ulp of libm's expf for |r| <= ln2 / 2). Each level
 * multiplies p by 2^k its own way and bounds x for it first. */
#define HR_EXP_REDUCED(S, V, ROUND, x, k, p)                                                             \
    do {                                                                                                 \
        (k) = ROUND(S##_mul_ps((x), S##_set1_ps(1.44269504088896341f)));                                 \
        V r_ = S##_fnmadd_ps((k), S##_set1_ps(0.693359375f), (x));                                       \
        r_ = S##_fnmadd_ps((k), S##_set1_ps(-2.12194440e-4f), r_);                                       \
        V p_ = S##_set1_ps(1.9875691500e-4f);                                                            \
        p_ = S##_fmadd_ps(p_, r_, S##_set1_ps(1.3981999507e-3f));                                        \
        p_ = S##_fmadd_ps(p_, r_, S##_set1_ps(8.3334519073e-3f));                                        \
        p_ = S##_fmadd_ps(p_, r_, S##_set1_ps(4.1665795894e-2f));                                        \
        p_ = S##_fmadd_ps(p_, r_, S##_set1_ps(1.6666665459e-1f));                                        \
        p_ = S##_fmadd_ps(p_, r_, S##_set1_ps(5.0000001201e-1f));                                        \
        (p) = S##_fmadd_ps(p_, S##_mul_ps(r_, r_), S##_add_ps(r_, S##_set1_ps(1.0f)));                    \
    } while (0)

/* Every level's file defines the same static kernel names; this names them in its table. */
#define HR_SIMD_KERNEL_TABLE(name, lvl, max_tok)                                                          \
    const hr_simd_kernels name = {                                                                       \
        .level = (lvl),                                                                                  \
        .max_tokens = (max_tok),                                                                         \
        .rowdot = {[HR_TYPE_F32] = rowdot_f32, [HR_TYPE_F16] = rowdot_f16, [HR_TYPE_BF16] = rowdot_bf16, \
                   [HR_TYPE_Q8_0] = rowdot_q8_0, [HR_TYPE_Q4_0] = rowdot_q4_0, [HR_TYPE_Q4_K] = rowdot_q4_k, \
                   [HR_TYPE_Q5_K] = rowdot_q5_k, [HR_TYPE_Q6_K] = rowdot_q6_k},                          \
        .quantize_a32 = quantize_a32,                                                                    \
        .quantize_a256 = quantize_a256,                                                                  \
        .kv_scores = {[HR_TYPE_F32] = kv_scores_f32, [HR_TYPE_F16] = kv_scores_f16,                        \
                      [HR_TYPE_Q8_0] = kv_scores_q8_0},                                                  \
        .kv_mix = {[HR_TYPE_F32] = kv_mix_f32, [HR_TYPE_F16] = kv_mix_f16, [HR_TYPE_Q8_0] = kv_mix_q8_0},  \
        .f16_row = f16_row,                                                                              \
        .q8_0_row = q8_0_row,                                                                            \
        .f16_widen = f16_widen,                                                                          \
        .softmax = softmax,                                                                              \
        .swiglu = swiglu,                                                                                \
        .rmsnorm = rmsnorm,                                                                              \
    }

/* Calls body(args..., nt) with nt a constant (8, 4, 2 or 1; 8 only in the NT8 form), so
 * that each instantiation keeps its per-token accumulators in registers. */
#define HR_DISPATCH_NT4(body, nt, ...)                \
    switch (nt) {                                     \
    case 4: body(__VA_ARGS__, 4); break;              \
    case 2: body(__VA_ARGS__, 2); break;              \
    default: body(__VA_ARGS__, 1); break;             \
    }
#define HR_DISPATCH_NT8(body, nt, ...)                \
    if ((nt) == 8) {                                  \
        body(__VA_ARGS__, 8);                         \
    } else {                                          \
        HR_DISPATCH_NT4(body, nt, __VA_ARGS__)        \
    }

/* q4_k/q5_k: the 6-bit scales and mins of a block's 8 sub-blocks from its 12 packed bytes
 * (b + 4), as bytes: out bytes 0-7 the scales, 8-15 the mins. Word arithmetic on the
 * packing: sub-blocks 0-3 keep their low 6 bits in bytes 0-3 (scale) and 4-7 (min);
 * 4-7 have their low nibbles in bytes 8-11 and their top 2 bits in the spare top bits
 * of bytes 0-3 (scale) and 4-7 (min). */
static inline void hr_k4_scales_mins(const uint8_t *packed, uint32_t out[4]) {
    uint32_t s[3];
    for (int i = 0; i < 3; i++)
        s[i] = (uint32_t)packed[4 * i] | (uint32_t)packed[4 * i + 1] << 8 | (uint32_t)packed[4 * i + 2] << 16 |
               (uint32_t)packed[4 * i + 3] << 24;
    out[0] = s[0] & 0x3F3F3F3Fu;
    out[1] = (s[2] & 0x0F0F0F0Fu) | ((s[0] >> 6 & 0x03030303u) << 4);
    out[2] = s[1] & 0x3F3F3F3Fu;
    out[3] = ((s[2] >> 4) & 0x0F0F0F0Fu) | ((s[1] >> 6 & 0x03030303u) << 4);
}

extern const hr_simd_kernels hr_simd_scalar_kernels, hr_simd_avx2_kernels, hr_simd_avx512_kernels;

/* The kernel set of a level (the scalar one when the level's set is not built). */
const hr_simd_kernels *hr_simd_kernels_for(hr_simd_level level);

#endif
