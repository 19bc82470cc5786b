/* kernels/matmul — matrix products over weights in any supported format, and the
 * vector kernels attention uses over KV rows.
 *
 * Must not: allocate. Output rows are independent, so the work is split across the
 * pool's threads by rows. */
#ifndef HR_KERNELS_MATMUL_H
#define HR_KERNELS_MATMUL_H

#include "kernels/tensor.h"
#include "kernels/threadpool.h"

/* y[r] = sum_i W[r][i] * x[i] for r in [0, W->ne[1]); x has W->ne[0] elements. */
void hr_matvec(const hr_tensor *w, const float *x, float *y);

/* For t < n_tokens: Y[t][r] = sum_i W[r][i] * X[t][i]. X is n_tokens rows of W->ne[0]
 * floats, Y n_tokens rows of W->ne[1] floats. pool may be NULL. */
void hr_matmul(hr_pool *pool, const hr_tensor *w, const float *x, int64_t n_tokens, float *y);

/* Row r of W as f32 (used for embedding lookups); dst has W->ne[0] elements. */
void hr_tensor_row_f32(const hr_tensor *w, int64_t r, float *dst);

/* KV rows stored as type (f32, f16 or q8_0):
 * hr_kv_dot returns sum_i k[i] * q[i]; hr_kv_axpy does out[i] += a * v[i]. */
float hr_kv_dot(uint32_t type, const void *k, const float *q, int64_t n);
void hr_kv_axpy(uint32_t type, float a, const void *v, float *out, int64_t n);

#endif
