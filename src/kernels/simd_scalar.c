/* The portable kernel set: the fallback on machines without AVX2, and the definition of
 * the activation quantization the SIMD sets reproduce byte for byte. Float weights are
 * accumulated in index order exactly as hr_quant_dot_ref does. */
#include <math.h>
#include <string.h>

#include "kernels/quant.h"
#include "kernels/simd.h"

enum { MAX_TOKENS = 8 };

/* ---- activation quantization -------------------------------------------------- */

/* The largest |x| of a block, compared as bit patterns: for non-negative floats that is
 * their order, and a NaN (above every other pattern) wins instead of being skipped, so
 * it poisons the block's scale rather than vanishing. */
static float block_amax(const float *x, int n) {
    uint32_t m = 0;
    for (int i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        u &= 0x7FFFFFFFu;
        if (u > m) m = u;
    }
    float amax;
    memcpy(&amax, &m, sizeof amax);
    return amax;
}

/* Quantizes one block of n values with d = amax / 127; returns d, stores q and the sum. */
static float quantize_block(const float *x, int n, int8_t *q, int *sum) {
    float amax = block_amax(x, n);
    float id = hr_act_inverse_scale(amax);
    int s = 0;
    for (int i = 0; i < n; i++) {
        float v = x[i] * id;
        q[i] = (int8_t)(v == v ? lrintf(v) : 0); /* |v| <= 127 unless the block is not finite */
        s += q[i];
    }
    *sum = s;
    return amax / 127.0f;
}

/* The a32 block quantized into quad order. */
static float quantize_block_a32(const float *x, int64_t b, int8_t *qs, int *sum) {
    int8_t q[32];
    float d = quantize_block(x, 32, q, sum);
    for (int j = 0; j < 32; j++) qs[hr_a32_pos(b, j)] = q[j];
    return d;
}

static void quantize_a32(const float *x, int64_t n, uint32_t wtype, uint8_t *row) {
    hr_act_row a = hr_act_row_at(HR_ACT_A32, row, n);
    int64_t nb = n / 32, nbp = hr_a32_blocks(n);
    for (int64_t b = 0; b < nbp; b++) {
        int sum = 0;
        float d = 0.0f;
        if (b < nb)
            d = quantize_block_a32(x + 32 * b, b, a.qs, &sum);
        else
            for (int j = 0; j < 32; j++) a.qs[hr_a32_pos(b, j)] = 0;
        for (int l = 0; l < 4; l++) {
            a.d[4 * b + l] = d;
            a.bias4[4 * b + l] = -(hr_a32_offset(wtype) / 4) * sum;
        }
    }
}

static void quantize_a256(const float *x, int64_t n, uint32_t wtype, uint8_t *row) {
    hr_act_row a = hr_act_row_at(HR_ACT_A256, row, n);
    for (int64_t b = 0; b < n / 256; b++) {
        int sum;
        a.d[b] = quantize_block(x + 256 * b, 256, a.qs + 256 * b, &sum);
        for (int s = 0; s < 16; s++) {
            int bs = 0;
            for (int i = 0; i < 16; i++) bs += a.qs[256 * b + 16 * s + i];
            a.bsums[16 * b + s] = (int16_t)bs;
        }
    }
}

/* ---- float weights ------------------------------------------------------------- */

static float elem_f32(const uint8_t *p, int64_t i) {
    float v;
    memcpy(&v, p + 4 * i, sizeof v);
    return v;
}

static uint16_t load_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static float elem_f16(const uint8_t *p, int64_t i) { return hr_fp16_to_f32(load_u16(p + 2 * i)); }
static float elem_bf16(const uint8_t *p, int64_t i) { return hr_bf16_to_f32(load_u16(p + 2 * i)); }

#define FLOAT_DOT(name, elem)                                                                  \
    static void name(const uint8_t *row, const uint8_t *act, size_t act_stride, int64_t n, int nt, \
                     float *y, int64_t y_stride) {                                                \
        for (int t = 0; t < nt; t++) {                                                            \
            const float *x = (const float *)(act + (size_t)t * act_stride);                       \
            float sum = 0.0f;                                                                     \
            for (int64_t i = 0; i < n; i++) sum += elem(row, i) * x[i];                           \
            y[t * y_stride] = sum;                                                                \
        }                                                                                         \
    }

FLOAT_DOT(dot_f32, elem_f32)
FLOAT_DOT(dot_f16, elem_f16)
FLOAT_DOT(dot_bf16, elem_bf16)

/* ---- q8_0 / q4_0 against a32 ----------------------------------------------------- */

/* Integer dot of weight block blk with the activation quants of block b, whose halves
 * are 16 contiguous bytes each (quad order). */
static int32_t block_dot_q8_0(const uint8_t *blk, const int8_t *qs, int64_t b) {
    const int8_t *x0 = qs + hr_a32_pos(b, 0), *x1 = qs + hr_a32_pos(b, 16);
    int32_t s = 0;
    for (int j = 0; j < 16; j++) s += (int8_t)blk[2 + j] * x0[j] + (int8_t)blk[18 + j] * x1[j];
    return s;
}

static int32_t block_dot_q4_0(const uint8_t *blk, const int8_t *qs, int64_t b) {
    const int8_t *x0 = qs + hr_a32_pos(b, 0), *x1 = qs + hr_a32_pos(b, 16);
    int32_t s = 0;
    for (int j = 0; j < 16; j++) s += ((blk[2 + j] & 0xF) - 8) * x0[j] + ((blk[2 + j] >> 4) - 8) * x1[j];
    return s;
}

#define A32_DOT(name, block_dot, block_bytes)                                                  \
    static void name(const uint8_t *row, const uint8_t *act, size_t act_stride, int64_t n, int nt, \
                     float *y, int64_t y_stride) {                                                \
        for (int t = 0; t < nt; t++) {                                                            \
            hr_act_row a = hr_act_row_at(HR_ACT_A32, (uint8_t *)act + (size_t)t * act_stride, n); \
            float sum = 0.0f;                                                                     \
            for (int64_t b = 0; b < n / 32; b++) {                                                \
                const uint8_t *blk = row + b * (block_bytes);                                     \
                float dw = hr_fp16_to_f32(load_u16(blk));                                         \
                sum += dw * a.d[4 * b] * (float)block_dot(blk, a.qs, b);                          \
            }                                                                                     \
            y[t * y_stride] = sum;                                                                \
        }                                                                                         \
    }

A32_DOT(dot_q8_0, block_dot_q8_0, 34)
A32_DOT(dot_q4_0, block_dot_q4_0, 18)

/* ---- k-quants against a256 ------------------------------------------------------- */

/* One function serves all three: hr_quant_k_unpack gives every k-quant block the form
 * d * scale * q - dmin * min per 16 elements. */
static void rowdot_k(uint32_t type, uint32_t block_bytes, const uint8_t *row, const uint8_t *act,
                     size_t act_stride, int64_t n, int nt, float *y, int64_t y_stride) {
    float sum[MAX_TOKENS] = {0};
    for (int64_t b = 0; b < n / 256; b++) {
        hr_quant_k_ints k;
        hr_quant_k_unpack(type, row + b * block_bytes, &k);
        for (int t = 0; t < nt; t++) {
            hr_act_row a = hr_act_row_at(HR_ACT_A256, (uint8_t *)act + (size_t)t * act_stride, n);
            const int8_t *x = a.qs + 256 * b;
            int32_t dots = 0, mins = 0;
            for (int s = 0; s < 16; s++) {
                int32_t dot = 0;
                for (int i = 0; i < 16; i++) dot += k.q[16 * s + i] * x[16 * s + i];
                dots += k.scale[s] * dot;
                mins += k.min[s] * a.bsums[16 * b + s];
            }
            sum[t] += a.d[b] * (k.d * (float)dots - k.dmin * (float)mins);
        }
    }
    for (int t = 0; t < nt; t++) y[t * y_stride] = sum[t];
}

#define K_DOT(name, type, block_bytes)                                                         \
    static void name(const uint8_t *row, const uint8_t *act, size_t act_stride, int64_t n, int nt, \
                     float *y, int64_t y_stride) {                                                \
        rowdot_k(type, block_bytes, row, act, act_stride, n, nt, y, y_stride);                    \
    }

K_DOT(dot_q4_k, HR_TYPE_Q4_K, 144)
K_DOT(dot_q5_k, HR_TYPE_Q5_K, 176)
K_DOT(dot_q6_k, HR_TYPE_Q6_K, 210)

/* The set's kernels: one row at a time. */
#define ROWDOT(name, dot)                                                                          \
    static void name(const uint8_t *row, uint64_t row_bytes, int nr, const uint8_t *act, size_t act_stride, \
                     int64_t n, int nt, float *y, int64_t y_stride, bool stream) {                 \
        (void)stream; /* no prefetching here */                                                   \
        for (int r = 0; r < nr; r++) dot(row + r * row_bytes, act, act_stride, n, nt, y + r, y_stride); \
    }

ROWDOT(rowdot_f32, dot_f32)
ROWDOT(rowdot_f16, dot_f16)
ROWDOT(rowdot_bf16, dot_bf16)
ROWDOT(rowdot_q8_0, dot_q8_0)
ROWDOT(rowdot_q4_0, dot_q4_0)
ROWDOT(rowdot_q4_k, dot_q4_k)
ROWDOT(rowdot_q5_k, dot_q5_k)
ROWDOT(rowdot_q6_k, dot_q6_k)

/* ---- KV rows ------------------------------------------------------------------------ */

/* q8_0 values one by one, in index order (the dequantized value is d * q, rounded once). */
static float elem_q8_0(const uint8_t *p, int64_t i) {
    const uint8_t *blk = p + i / 32 * 34;
    return (float)(int8_t)blk[2 + i % 32] * hr_fp16_to_f32(load_u16(blk));
}

#define KV_KERNELS(sfx, elem)                                                                              \
    static void kv_scores_##sfx(const uint8_t *k, size_t stride, int n_rows, const float *q, int64_t n,    \
                                float *scores) {                                                           \
        for (int j = 0; j < n_rows; j++) {                                                                 \
            float sum = 0.0f;                                                                              \
            for (int64_t i = 0; i < n; i++) sum += elem(k + (size_t)j * stride, i) * q[i];                 \
            scores[j] = sum;                                                                               \
        }                                                                                                  \
    }                                                                                                      \
    static void kv_mix_##sfx(const float *w, const uint8_t *v, size_t stride, int n_rows, float *out,      \
                             int64_t n) {                                                                  \
        for (int j = 0; j < n_rows; j++)                                                                   \
            for (int64_t i = 0; i < n; i++) out[i] += w[j] * elem(v + (size_t)j * stride, i);              \
    }

KV_KERNELS(f32, elem_f32)
KV_KERNELS(f16, elem_f16)
KV_KERNELS(q8_0, elem_q8_0)

static void f16_row(const float *x, uint16_t *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = hr_f32_to_fp16(x[i]);
}

static void f16_widen(const uint16_t *h, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = hr_fp16_to_f32(h[i]);
}

/* Divided, not multiplied by a reciprocal, and exponentials from libm: as the reference
 * implementations round. */
static void softmax(float *x, int64_t n, float div) {
    for (int64_t i = 0; i < n; i++) x[i] /= div;
    float max = x[0];
    for (int64_t i = 1; i < n; i++)
        if (x[i] > max) max = x[i];
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    for (int64_t i = 0; i < n; i++) x[i] /= sum;
}

/* With libm's expf, as the reference implementations compute it. */
static void swiglu(float *g, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) g[i] = g[i] * (1.0f / (1.0f + expf(-g[i]))) * up[i];
}

static void rmsnorm(float *o, float *x, const float *delta, const float *w, int64_t n, float eps) {
    if (delta)
        for (int64_t i = 0; i < n; i++) x[i] += delta[i];
    float lane[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) lane[j] += x[i + j] * x[i + j];
    for (; i < n; i++) lane[i % 16] += x[i] * x[i];
    for (int w8 = 8; w8 >= 1; w8 /= 2)
        for (int j = 0; j < w8; j++) lane[j] += lane[j + w8];
    float r = hr_rms_scale(lane[0], n, eps);
    for (int64_t k = 0; k < n; k++) o[k] = w[k] * (r * x[k]);
}

static void q8_0_row(const float *x, uint8_t *dst, int64_t n) { hr_quant_quantize_row(HR_TYPE_Q8_0, x, dst, n); }

HR_SIMD_KERNEL_TABLE(hr_simd_scalar_kernels, HR_SIMD_SCALAR, MAX_TOKENS);
