/* kernels/matmul — matrix products over weights in any supported format, and the
 * vector kernels attention uses over KV rows.
 *
 * Kernels run at the SIMD level kernels/cpu picked (AVX-512 VNNI, AVX2 or portable C).
 * Quantized weights (q8_0, q4_0, q4_k, q5_k, q6_k) are multiplied with integer dot
 * products against activations quantized to 8 bits once per call (blocks of 32 for
 * q8_0/q4_0, 256 for the k-quants, d = amax / 127), which is where their results differ
 * from hr_quant_dot_ref on the f32 activations (about 0.5% of the largest products).
 * Float weights (f32, f16, bf16) use FMA in vector lanes: same values as the reference up
 * to the order of additions.
 *
 * A call's results do not depend on n_tokens batching or the number of threads (each
 * output is computed alone, in a fixed order per SIMD level).
 *
 * Must not: allocate. Scratch for quantized activations comes from the pool
 * (hr_pool_reserve); without enough of it, a fixed stack buffer serves the tokens in
 * chunks, and a single row too large for it falls back to the reference. Output rows are
 * independent, so the work is split across the pool's threads by rows. */
#ifndef HR_KERNELS_MATMUL_H
#define HR_KERNELS_MATMUL_H

#include "kernels/tensor.h"
#include "kernels/threadpool.h"

/* y[r] = sum_i W[r][i] * x[i] for r in [0, W->ne[1]); x has W->ne[0] elements. */
void hr_matvec(const hr_tensor *w, const float *x, float *y);

/* For t < n_tokens: Y[t][r] = sum_i W[r][i] * X[t][i]. X is n_tokens rows of W->ne[0]
 * floats, Y n_tokens rows of W->ne[1] floats. pool may be NULL. A type without a kernel
 * or a row that is not whole blocks gives NaN, like hr_quant_dot_ref. */
void hr_matmul(hr_pool *pool, const hr_tensor *w, const float *x, int64_t n_tokens, float *y);

/* hr_matmul for n_parts (up to HR_MATMUL_MAX_PARTS) matrices over the same X, into y[i]:
 * one quantization of X and one pass of the pool for all of them when they share the
 * column count and activation layout (Q, K, V; gate and up), else one call each.
 * Results are those of separate calls. */
enum { HR_MATMUL_MAX_PARTS = 3 };
void hr_matmul_multi(hr_pool *pool, const hr_tensor *const *w, float *const *y, int n_parts, const float *x,
                     int64_t n_tokens);

/* Row r of W as f32 (used for embedding lookups); dst has W->ne[0] elements. */
void hr_tensor_row_f32(const hr_tensor *w, int64_t r, float *dst);

/* Attention over n_rows KV rows stride bytes apart, stored as type (f32, f16 or q8_0; a
 * q8_0 row is whole 32-element blocks and n may end inside the last one):
 * hr_kv_scores sets scores[j] = sum_i K_j[i] * q[i]; hr_kv_mix does
 * out[i] += w[j] * V_j[i] for j = 0, 1, ... in order, rounding each product and sum
 * exactly as that scalar expression (bit-identical at every SIMD level). */
void hr_kv_scores(uint32_t type, const void *k, size_t stride, int n_rows, const float *q, int64_t n, float *scores);
void hr_kv_mix(uint32_t type, const float *w, const void *v, size_t stride, int n_rows, float *out, int64_t n);
/* Stores n floats as a KV row of type (f32, f16 or q8_0; q8_0 as hr_quant_quantize_row,
 * f16 rounded to nearest even as hr_f32_to_fp16). */
void hr_kv_store(uint32_t type, const float *x, void *dst, int64_t n);
/* The inverse: n values of KV rows of type as f32 (exact for f32 and f16). */
void hr_kv_widen(uint32_t type, const void *src, float *dst, int64_t n);
/* x[i] = exp(x[i] / div - max) / sum over the n quotients (the scalar level uses libm's
 * expf; the vector levels a polynomial within a few ulp of it). */
void hr_softmax(float *x, int64_t n, float div);
/* g[i] = g[i] * sigmoid(g[i]) * up[i], rounded as g * (1 / (1 + exp(-g))) * up (the
 * scalar level with libm's expf, the vector levels with softmax's polynomial). */
void hr_swiglu(float *g, const float *up, int64_t n);
/* The residual stream x takes delta (NULL: none), then o = RMSNorm(x) with weights w:
 * w[i] * (x[i] / sqrt(mean of x^2 + eps)), the squares summed in 16 interleaved lanes and
 * a fixed tree (bit-identical at every SIMD level). o must not overlap x. */
void hr_rmsnorm(float *o, float *x, const float *delta, const float *w, int64_t n, float eps);

#endif
