#include "kernels/matmul.h"

#include "kernels/quant.h"

void hr_matvec(const hr_tensor *w, const float *x, float *y) {
    const uint8_t *row = w->data;
    for (int64_t r = 0; r < w->ne[1]; r++, row += w->row_bytes)
        y[r] = hr_quant_dot_ref(w->type, row, x, w->ne[0]);
}

void hr_tensor_row_f32(const hr_tensor *w, int64_t r, float *dst) {
    hr_quant_dequantize_row(w->type, (const uint8_t *)w->data + (uint64_t)r * w->row_bytes, dst, w->ne[0]);
}
