#include "kernels/matmul.h"

#include <stdlib.h>

#include "formats/ggml_type.h"
#include "kernels/quant.h"

void hr_matvec(const hr_tensor *w, const float *x, float *y) {
    const uint8_t *row = w->data;
    for (int64_t r = 0; r < w->ne[1]; r++, row += w->row_bytes)
        y[r] = hr_quant_dot_ref(w->type, row, x, w->ne[0]);
}

typedef struct {
    const hr_tensor *w;
    const float *x;
    int64_t n_tokens;
    float *y;
} matmul_job;

static void matmul_rows(void *ctx, int thread, int n_threads) {
    const matmul_job *job = ctx;
    int64_t rows = job->w->ne[1], cols = job->w->ne[0];
    int64_t begin = rows * thread / n_threads, end = rows * (thread + 1) / n_threads;
    for (int64_t r = begin; r < end; r++) {
        const uint8_t *row = (const uint8_t *)job->w->data + (uint64_t)r * job->w->row_bytes;
        for (int64_t t = 0; t < job->n_tokens; t++)
            job->y[t * rows + r] = hr_quant_dot_ref(job->w->type, row, job->x + t * cols, cols);
    }
}

void hr_matmul(hr_pool *pool, const hr_tensor *w, const float *x, int64_t n_tokens, float *y) {
    matmul_job job = {.w = w, .x = x, .n_tokens = n_tokens, .y = y};
    hr_pool_run(pool, matmul_rows, &job);
}

void hr_tensor_row_f32(const hr_tensor *w, int64_t r, float *dst) {
    hr_quant_dequantize_row(w->type, (const uint8_t *)w->data + (uint64_t)r * w->row_bytes, dst, w->ne[0]);
}

float hr_kv_dot(uint32_t type, const void *k, const float *q, int64_t n) { return hr_quant_dot_ref(type, k, q, n); }

void hr_kv_axpy(uint32_t type, float a, const void *v, float *out, int64_t n) {
    if (type == HR_TYPE_F32) {
        const float *vf = v;
        for (int64_t i = 0; i < n; i++) out[i] += a * vf[i];
        return;
    }
    /* Other KV types are dequantized in blocks of 32 (the q8_0 block) on the stack. */
    const uint8_t *src = v;
    uint64_t block_bytes;
    hr_type_row_bytes(type, 32, &block_bytes);
    for (int64_t i = 0; i < n; i += 32, src += block_bytes) {
        float tmp[32];
        hr_quant_dequantize_row(type, src, tmp, 32);
        for (int64_t j = 0; j < 32 && i + j < n; j++) out[i + j] += a * tmp[j];
    }
}
