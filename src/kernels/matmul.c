/* The driver: picks the kernel set of the active SIMD level, quantizes the activations
 * once per call, and splits output rows across the pool in chunks that threads claim
 * from a shared counter (a thread the OS delays takes fewer chunks instead of holding up
 * the rest). Within a chunk every group of tokens sweeps the chunk's rows, so a chunk's
 * weights are read from memory once and from L2 by the later groups. */
#include "kernels/matmul.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "formats/ggml_type.h"
#include "kernels/cpu.h"
#include "kernels/quant.h"
#include "kernels/simd.h"

enum {
    /* Quantized activations on the caller's stack when the pool has too little scratch:
     * one row of up to 32k columns (a32 rows take 2 bytes per column). */
    STACK_SCRATCH_BYTES = 64 * 1024,
    /* Weight bytes per chunk: comfortably inside a 1-2 MiB L2 next to the activations. */
    CHUNK_BYTES = 256 * 1024,
    /* At least this many chunks per thread, for balance. */
    CHUNKS_PER_THREAD = 4,
    /* Fewer token rows than this are quantized by the caller alone (waking the pool
     * would cost more than the work). */
    PARALLEL_QUANTIZE_TOKENS = 4,
};

const hr_simd_kernels *hr_simd_kernels_for(hr_simd_level level) {
    const hr_simd_kernels *k = level == HR_SIMD_AVX512 ? &hr_simd_avx512_kernels
                               : level == HR_SIMD_AVX2 ? &hr_simd_avx2_kernels
                                                       : &hr_simd_scalar_kernels;
    return k->level == level ? k : &hr_simd_scalar_kernels;
}

/* One weight matrix of a call; its chunks are numbered from first_chunk. */
typedef struct {
    hr_rowdot_fn rowdot; /* NULL: hr_quant_dot_ref on f32 activations */
    uint32_t type;
    const uint8_t *w;
    uint64_t row_bytes;
    int64_t rows;
    float *y;
    int64_t chunk_rows, first_chunk;
} matmul_part;

typedef struct {
    matmul_part parts[HR_MATMUL_MAX_PARTS];
    int n_parts;
    int64_t cols;
    const uint8_t *act;
    size_t act_stride;
    int64_t n_tokens;
    int max_tokens;
    int64_t n_chunks;
    atomic_llong next_chunk;
} matmul_job;

/* The largest power of two not above left or max. */
static int token_step(int64_t left, int max) {
    int nt = 1;
    while (nt * 2 <= max && nt * 2 <= left) nt *= 2;
    return nt;
}

static void rows_ref(const matmul_job *j, const matmul_part *p, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++)
        for (int64_t t = 0; t < j->n_tokens; t++)
            p->y[t * p->rows + r] = hr_quant_dot_ref(p->type, p->w + (uint64_t)r * p->row_bytes,
                                                     (const float *)(j->act + t * j->act_stride), j->cols);
}

static void matmul_rows(void *ctx, int thread, int n_threads) {
    matmul_job *j = ctx;
    for (;;) {
        int64_t c = atomic_fetch_add_explicit(&j->next_chunk, 1, memory_order_relaxed);
        if (c >= j->n_chunks) return;
        const matmul_part *p = &j->parts[0];
        while (p + 1 < j->parts + j->n_parts && c >= p[1].first_chunk) p++;
        int64_t r0 = (c - p->first_chunk) * p->chunk_rows;
        int64_t r1 = r0 + p->chunk_rows < p->rows ? r0 + p->chunk_rows : p->rows;
        if (!p->rowdot) {
            rows_ref(j, p, r0, r1);
            continue;
        }
        for (int64_t t0 = 0; t0 < j->n_tokens;) {
            int nt = token_step(j->n_tokens - t0, j->max_tokens);
            const uint8_t *a = j->act + t0 * j->act_stride;
            float *yt = p->y + t0 * p->rows;
            for (int64_t r = r0; r < r1; r += HR_KERNEL_ROWS) {
                int nr = r1 - r < HR_KERNEL_ROWS ? (int)(r1 - r) : HR_KERNEL_ROWS;
                p->rowdot(p->w + (uint64_t)r * p->row_bytes, p->row_bytes, nr, a, j->act_stride, j->cols, nt, yt + r,
                          p->rows, t0 == 0);
            }
            t0 += nt;
        }
    }
}

/* Every part through hr_quant_dot_ref on the f32 activations (parts of one pass read the
 * same activations, so one part without a fast kernel, or too little scratch for the
 * quantized ones, sends all of them). */
static void use_reference(matmul_job *j) {
    for (int i = 0; i < j->n_parts; i++) j->parts[i].rowdot = NULL;
}

/* Splits every part into chunks and runs them all in one pass of the pool. */
static void run_matmul(hr_pool *pool, matmul_job *j) {
    int64_t threads = hr_pool_threads(pool), total_rows = 0;
    for (int i = 0; i < j->n_parts; i++) total_rows += j->parts[i].rows;
    j->n_chunks = 0;
    for (int i = 0; i < j->n_parts; i++) {
        matmul_part *p = &j->parts[i];
        int64_t by_cache = (int64_t)(CHUNK_BYTES / (p->row_bytes ? p->row_bytes : 1));
        /* Balance counts the rows of all parts, so that small parts are not cut finely. */
        int64_t want_chunks = CHUNKS_PER_THREAD * threads * p->rows / total_rows;
        if (want_chunks < 1) want_chunks = 1;
        int64_t by_balance = (p->rows + want_chunks - 1) / want_chunks;
        p->chunk_rows = by_cache < by_balance ? by_cache : by_balance;
        p->chunk_rows = hr_round_up(p->chunk_rows < 1 ? 1 : p->chunk_rows, HR_KERNEL_ROWS); /* whole kernel tiles */
        p->first_chunk = j->n_chunks;
        j->n_chunks += (p->rows + p->chunk_rows - 1) / p->chunk_rows;
    }
    atomic_init(&j->next_chunk, 0);
    hr_pool_run(pool, matmul_rows, j);
}

typedef struct {
    hr_act_quant_fn quantize;
    uint32_t type;
    const float *x;
    int64_t cols, n_tokens;
    uint8_t *act;
    size_t act_stride;
} quantize_job;

static void quantize_rows(void *ctx, int thread, int n_threads) {
    const quantize_job *q = ctx;
    for (int64_t t = thread; t < q->n_tokens; t += n_threads)
        q->quantize(q->x + t * q->cols, q->cols, q->type, q->act + t * q->act_stride);
}

void hr_matvec(const hr_tensor *w, const float *x, float *y) { hr_matmul(NULL, w, x, 1, y); }

void hr_matmul(hr_pool *pool, const hr_tensor *w, const float *x, int64_t n_tokens, float *y) {
    hr_matmul_multi(pool, &w, &y, 1, x, n_tokens);
}

/* Parts can share one pass only with the same columns and activation layout (the
 * activations are quantized once for all of them). */
static bool same_activations(const hr_tensor *const *w, int n) {
    for (int i = 1; i < n; i++)
        if (w[i]->ne[0] != w[0]->ne[0] || hr_act_kind_of(w[i]->type) != hr_act_kind_of(w[0]->type) ||
            (hr_act_kind_of(w[0]->type) == HR_ACT_A32 && hr_a32_offset(w[i]->type) != hr_a32_offset(w[0]->type)))
            return false;
    return true;
}

void hr_matmul_multi(hr_pool *pool, const hr_tensor *const *w, float *const *y, int n_parts, const float *x,
                     int64_t n_tokens) {
    if (n_tokens <= 0 || n_parts <= 0) return;
    if (n_parts > HR_MATMUL_MAX_PARTS || !same_activations(w, n_parts)) {
        for (int i = 0; i < n_parts; i++) hr_matmul_multi(pool, &w[i], &y[i], 1, x, n_tokens);
        return;
    }
    const hr_simd_kernels *k = hr_simd_kernels_for(hr_simd_active());
    int64_t cols = w[0]->ne[0];
    hr_act_kind kind = hr_act_kind_of(w[0]->type);
    matmul_job job = {.n_parts = 0, .cols = cols, .act = (const uint8_t *)x, .act_stride = (size_t)cols * sizeof(float),
                      .n_tokens = n_tokens, .max_tokens = k->max_tokens};
    bool all_fast = true;
    for (int i = 0; i < n_parts; i++) {
        int64_t rows = w[i]->ne[1];
        if (rows <= 0) continue;
        if (!hr_quant_row_ok(w[i]->type, cols)) {
            for (int64_t e = 0; e < n_tokens * rows; e++) y[i][e] = NAN;
            continue;
        }
        matmul_part *p = &job.parts[job.n_parts++];
        *p = (matmul_part){.rowdot = kind == HR_ACT_NONE ? NULL : k->rowdot[w[i]->type], .type = w[i]->type,
                           .w = w[i]->data, .row_bytes = w[i]->row_bytes, .rows = rows, .y = y[i]};
        all_fast = all_fast && p->rowdot;
    }
    if (job.n_parts == 0) return;
    if (!all_fast) use_reference(&job);
    if (kind == HR_ACT_F32 || !all_fast) {
        run_matmul(pool, &job);
        return;
    }
    size_t stride = hr_act_row_bytes(kind, cols), bytes;
    uint8_t *scratch = hr_pool_scratch(pool, &bytes);
    _Alignas(64) uint8_t stack[STACK_SCRATCH_BYTES];
    if (bytes < stride) {
        scratch = stack;
        bytes = sizeof stack;
    }
    if (bytes < stride) {
        use_reference(&job);
        run_matmul(pool, &job);
        return;
    }
    int64_t per_pass = (int64_t)(bytes / stride);
    quantize_job q = {
        .quantize = kind == HR_ACT_A32 ? k->quantize_a32 : k->quantize_a256,
        .type = job.parts[0].type,
        .cols = cols,
        .act = scratch,
        .act_stride = stride,
    };
    float *y0[HR_MATMUL_MAX_PARTS];
    for (int i = 0; i < job.n_parts; i++) y0[i] = job.parts[i].y;
    for (int64_t t0 = 0; t0 < n_tokens; t0 += per_pass) {
        int64_t count = n_tokens - t0 < per_pass ? n_tokens - t0 : per_pass;
        q.x = x + t0 * cols;
        q.n_tokens = count;
        if (count < PARALLEL_QUANTIZE_TOKENS)
            quantize_rows(&q, 0, 1);
        else
            hr_pool_run(pool, quantize_rows, &q);
        job.act = scratch;
        job.act_stride = stride;
        job.n_tokens = count;
        for (int i = 0; i < job.n_parts; i++) job.parts[i].y = y0[i] + t0 * job.parts[i].rows;
        run_matmul(pool, &job);
    }
}

void hr_tensor_row_f32(const hr_tensor *w, int64_t r, float *dst) {
    hr_quant_dequantize_row(w->type, (const uint8_t *)w->data + (uint64_t)r * w->row_bytes, dst, w->ne[0]);
}

void hr_kv_scores(uint32_t type, const void *k, size_t stride, int n_rows, const float *q, int64_t n, float *scores) {
    const hr_simd_kernels *ks = hr_simd_kernels_for(hr_simd_active());
    if (n <= 0 || n_rows <= 0) return;
    if (type < HR_TYPE_COUNT_ && ks->kv_scores[type]) {
        ks->kv_scores[type](k, stride, n_rows, q, n, scores);
        return;
    }
    for (int j = 0; j < n_rows; j++) scores[j] = hr_quant_dot_ref(type, (const uint8_t *)k + (size_t)j * stride, q, n);
}

void hr_kv_mix(uint32_t type, const float *w, const void *v, size_t stride, int n_rows, float *out, int64_t n) {
    const hr_simd_kernels *ks = hr_simd_kernels_for(hr_simd_active());
    if (n <= 0 || n_rows <= 0) return;
    if (type < HR_TYPE_COUNT_ && ks->kv_mix[type]) {
        ks->kv_mix[type](w, v, stride, n_rows, out, n);
        return;
    }
    /* Other types: dequantized in blocks of 32 on the stack. */
    uint64_t block_bytes;
    if (!hr_type_row_bytes(type, 32, &block_bytes)) return;
    for (int j = 0; j < n_rows; j++) {
        const uint8_t *src = (const uint8_t *)v + (size_t)j * stride;
        for (int64_t i = 0; i < n; i += 32, src += block_bytes) {
            float tmp[32] = {0}; /* stays zero for a type without a dequantizer */
            hr_quant_dequantize_row(type, src, tmp, 32);
            for (int64_t e = 0; e < 32 && i + e < n; e++) out[i + e] += w[j] * tmp[e];
        }
    }
}

void hr_softmax(float *x, int64_t n, float div) {
    if (n > 0) hr_simd_kernels_for(hr_simd_active())->softmax(x, n, div);
}

void hr_swiglu(float *g, const float *up, int64_t n) {
    if (n > 0) hr_simd_kernels_for(hr_simd_active())->swiglu(g, up, n);
}

void hr_rmsnorm(float *o, float *x, const float *delta, const float *w, int64_t n, float eps) {
    if (n > 0) hr_simd_kernels_for(hr_simd_active())->rmsnorm(o, x, delta, w, n, eps);
}

void hr_kv_store(uint32_t type, const float *x, void *dst, int64_t n) {
    if (n <= 0) return;
    const hr_simd_kernels *ks = hr_simd_kernels_for(hr_simd_active());
    if (type == HR_TYPE_F32) memcpy(dst, x, (size_t)n * sizeof(float));
    else if (type == HR_TYPE_F16) ks->f16_row(x, dst, n);
    else if (type == HR_TYPE_Q8_0 && hr_quant_row_ok(type, n)) ks->q8_0_row(x, dst, n);
    else hr_quant_quantize_row(type, x, dst, n);
}

void hr_kv_widen(uint32_t type, const void *src, float *dst, int64_t n) {
    if (n <= 0) return;
    if (type == HR_TYPE_F32) memcpy(dst, src, (size_t)n * sizeof(float));
    else if (type == HR_TYPE_F16) hr_simd_kernels_for(hr_simd_active())->f16_widen(src, dst, n);
    else hr_quant_dequantize_row(type, src, dst, n);
}
