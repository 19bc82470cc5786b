/* kernels/matmul — matrix x vector products over weights in any supported format.
 *
 * Must not: allocate. Output rows are independent, so callers may split them. */
#ifndef HR_KERNELS_MATMUL_H
#define HR_KERNELS_MATMUL_H

#include "kernels/tensor.h"

/* y[r] = sum_i W[r][i] * x[i] for r in [0, W->ne[1]); x has W->ne[0] elements. */
void hr_matvec(const hr_tensor *w, const float *x, float *y);

/* Row r of W as f32 (used for embedding lookups); dst has W->ne[0] elements. */
void hr_tensor_row_f32(const hr_tensor *w, int64_t r, float *dst);

#endif
