/* Kernels: every SIMD level available on this machine against the scalar references.
 *
 * Float weights are compared with hr_quant_dot_ref on the same activations (only the
 * order of additions differs). Quantized weights are compared with hr_quant_dot_ref on
 * the activations as the kernels quantize them (recomputed here from the definition:
 * blocks of 32 or 256, d = amax / 127, round to nearest even), which leaves only float
 * rounding; and with the reference on the original activations within the exact bound
 * sum_i |w_i| |x_i - xq_i| of what quantizing the activations can change. */
#include <malloc.h>
#include <pthread.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "kernels/cpu.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"
#include "kernels/simd.h"
#include "kernels/threadpool.h"
#include "test.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint32_t rng_u32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

/* Uniform in [-1, 1). */
static float rng_f(void) { return (float)rng_u32() / 2147483648.0f - 1.0f; }

static const uint32_t all_types[] = {HR_TYPE_F32,  HR_TYPE_F16,  HR_TYPE_BF16, HR_TYPE_Q8_0,
                                     HR_TYPE_Q4_0, HR_TYPE_Q4_K, HR_TYPE_Q5_K, HR_TYPE_Q6_K};
enum { N_TYPES = sizeof all_types / sizeof all_types[0] };

/* Row lengths that exercise every tail: float kernels (16 and 8 lanes), a32 (a group of 16
 * blocks plus an odd 5), k-quants (3 blocks). */
static int64_t cols_for(uint32_t type) {
    switch (hr_act_kind_of(type)) {
    case HR_ACT_F32: return 203;
    case HR_ACT_A32: return 32 * 21;
    default: return 256 * 3;
    }
}

typedef struct {
    hr_tensor w;
    uint8_t *data;
} test_matrix;

/* Random weights: quantized from floats (realistic blocks) or, when raw, random bytes
 * with sane fp16 scales (every level pattern, q8_0's -128, q6_k's scale -128 ...). */
static bool matrix_new(test_matrix *m, uint32_t type, int64_t rows, int64_t cols, bool raw) {
    uint64_t row_bytes;
    if (!hr_type_row_bytes(type, (uint64_t)cols, &row_bytes)) return false;
    m->data = malloc(row_bytes * (uint64_t)rows);
    if (!m->data) return false;
    m->w = (hr_tensor){.type = type, .ne = {cols, rows, 1, 1}, .data = m->data, .row_bytes = row_bytes, .name = "test"};
    float *tmp = malloc(sizeof(float) * (size_t)cols);
    if (!tmp) return false;
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *row = m->data + r * row_bytes;
        if (!raw || hr_act_kind_of(type) == HR_ACT_F32) {
            for (int64_t i = 0; i < cols; i++) tmp[i] = rng_f() * (1.0f + (float)(i % 7));
            hr_quant_quantize_row(type, tmp, row, cols);
            continue;
        }
        for (uint64_t i = 0; i < row_bytes; i++) row[i] = (uint8_t)rng_u32();
        const hr_type_info *info = hr_type_get(type);
        for (uint64_t b = 0; b < row_bytes / info->block_bytes; b++) {
            uint8_t *blk = row + b * info->block_bytes;
            uint16_t d = hr_f32_to_fp16(0.001f + 0.01f * (rng_f() + 1.0f));
            int at = type == HR_TYPE_Q6_K ? 208 : 0;
            blk[at] = (uint8_t)d;
            blk[at + 1] = (uint8_t)(d >> 8);
            if (type == HR_TYPE_Q4_K || type == HR_TYPE_Q5_K) {
                blk[2] = (uint8_t)d;
                blk[3] = (uint8_t)(d >> 8);
            }
        }
    }
    free(tmp);
    return true;
}

/* Activations: random, with a block of one sign at full scale (the largest byte
 * products) and one tiny block. */
static float *activations_new(int64_t n_tokens, int64_t cols) {
    float *x = malloc(sizeof(float) * (size_t)(n_tokens * cols));
    if (!x) return NULL;
    for (int64_t i = 0; i < n_tokens * cols; i++) x[i] = rng_f() * 3.0f;
    for (int64_t i = 0; i < 32 && i < cols; i++) x[i] = 2.5f;
    for (int64_t i = 32; i < 64 && i < cols; i++) x[i] *= 1e-6f;
    return x;
}

/* The activations as the kernels see them: each block quantized by definition. */
static void quantized_activations(uint32_t type, const float *x, int64_t n, float *xq) {
    int64_t block = hr_act_kind_of(type) == HR_ACT_A32 ? 32 : 256;
    for (int64_t b = 0; b < n; b += block) {
        float amax = 0.0f;
        for (int64_t i = b; i < b + block; i++) amax = fmaxf(amax, fabsf(x[i]));
        float d = amax / 127.0f, id = amax > 0.0f ? 127.0f / amax : 0.0f;
        for (int64_t i = b; i < b + block; i++) xq[i] = (float)lrintf(x[i] * id) * d;
    }
}

static float elem_abs_sum(const hr_tensor *w, int64_t r, const float *x, float *tmp) {
    hr_quant_dequantize_row(w->type, (const uint8_t *)w->data + r * w->row_bytes, tmp, w->ne[0]);
    float s = 0.0f;
    for (int64_t i = 0; i < w->ne[0]; i++) s += fabsf(tmp[i] * x[i]);
    return s;
}

/* Checks y (n_tokens x rows) against the references as described at the top. */
static bool check_against_reference(hr_test_ctx *t, const test_matrix *m, const float *x, int64_t n_tokens,
                                    const float *y, const char *what) {
    const hr_tensor *w = &m->w;
    int64_t rows = w->ne[1], cols = w->ne[0];
    bool quantized = hr_act_kind_of(w->type) != HR_ACT_F32;
    float *xq = malloc(sizeof(float) * (size_t)cols), *tmp = malloc(sizeof(float) * (size_t)cols);
    float *dx = malloc(sizeof(float) * (size_t)cols);
    bool ok = xq && tmp && dx;
    for (int64_t tk = 0; ok && tk < n_tokens; tk++) {
        const float *xt = x + tk * cols;
        if (quantized)
            quantized_activations(w->type, xt, cols, xq);
        else
            memcpy(xq, xt, sizeof(float) * (size_t)cols);
        for (int64_t i = 0; i < cols; i++) dx[i] = fabsf(xt[i] - xq[i]);
        for (int64_t r = 0; r < rows && ok; r++) {
            const uint8_t *row = (const uint8_t *)w->data + r * w->row_bytes;
            float got = y[tk * rows + r];
            float want = hr_quant_dot_ref(w->type, row, xq, cols);
            float scale = elem_abs_sum(w, r, xq, tmp);
            if (!(fabsf(got - want) <= 2e-5f * scale + 1e-30f)) {
                hr_test_failf(t, __FILE__, __LINE__,
                              "%s %s: token %lld row %lld: got %.9g, reference on the quantized activations %.9g "
                              "(sum |w x| %.3g)",
                              what, hr_type_name(w->type), (long long)tk, (long long)r, got, want, scale);
                ok = false;
                break;
            }
            float exact = hr_quant_dot_ref(w->type, row, xt, cols);
            float bound = elem_abs_sum(w, r, dx, tmp) * 1.001f + 2e-5f * (scale + elem_abs_sum(w, r, xt, tmp));
            if (!(fabsf(got - exact) <= bound)) {
                hr_test_failf(t, __FILE__, __LINE__,
                              "%s %s: token %lld row %lld: got %.9g, reference %.9g, beyond the quantization bound %.3g",
                              what, hr_type_name(w->type), (long long)tk, (long long)r, got, exact, bound);
                ok = false;
            }
        }
    }
    free(xq);
    free(tmp);
    free(dx);
    return ok;
}

static int levels_available(hr_simd_level *levels) {
    int n = 0;
    for (int l = HR_SIMD_SCALAR; l <= (int)hr_simd_detected(); l++) levels[n++] = (hr_simd_level)l;
    return n;
}

HR_TEST(kernels_simd_level_detection_and_override) {
    hr_simd_level saved = hr_simd_active(), l;
    printf("     detected SIMD level: %s\n", hr_simd_name(hr_simd_detected()));
    HR_CHECK(hr_simd_parse("AVX2", &l) && l == HR_SIMD_AVX2);
    HR_CHECK(hr_simd_parse("scalar", &l) && l == HR_SIMD_SCALAR);
    HR_CHECK(!hr_simd_parse("sse9", &l) && !hr_simd_parse(NULL, &l));
    HR_CHECK_EQ_INT(hr_simd_set(HR_SIMD_SCALAR), HR_SIMD_SCALAR);
    HR_CHECK_EQ_INT(hr_simd_active(), HR_SIMD_SCALAR);
    HR_CHECK(hr_simd_set(HR_SIMD_AVX512) == hr_simd_detected()); /* clamped to what exists */
    HR_CHECK(hr_simd_kernels_for(hr_simd_detected())->level == hr_simd_detected());
    hr_simd_set(saved);
}

HR_TEST(kernels_activation_quantization_same_bytes_every_level) {
    hr_simd_level levels[3];
    int nl = levels_available(levels);
    const int64_t n = 256 * 5; /* also 40 a32 blocks */
    float *x = activations_new(1, n);
    HR_CHECK(x != NULL);
    x[3 * 256 + 5] = NAN; /* non-finite blocks too (not checked against the definition) */
    x[3 * 256 + 100] = INFINITY;
    /* and blocks so small that 127 / amax overflows: every level quantizes them to 0 */
    for (int i = 0; i < 256; i++) x[4 * 256 + i] = (float)(i % 7 - 3) * (i < 128 ? 1e-38f : 1e-44f);
    size_t bytes = hr_act_row_bytes_max(n);
    uint8_t *want = aligned_alloc(64, bytes), *got = aligned_alloc(64, bytes);
    HR_CHECK(x && want && got);
    for (int kind = HR_ACT_A32; kind <= HR_ACT_A256; kind++) {
        const hr_simd_kernels *ref = hr_simd_kernels_for(HR_SIMD_SCALAR);
        size_t row = hr_act_row_bytes((hr_act_kind)kind, n);
        memset(want, 0xAA, bytes);
        (kind == HR_ACT_A32 ? ref->quantize_a32 : ref->quantize_a256)(x, n, HR_TYPE_Q4_0, want);
        /* the definition, on the scalar reference */
        hr_act_row a = hr_act_row_at((hr_act_kind)kind, want, n);
        int block = kind == HR_ACT_A32 ? 32 : 256;
        for (int64_t b = 0; b < 3 * 256 / block; b++) {
            float amax = 0.0f;
            for (int i = 0; i < block; i++) amax = fmaxf(amax, fabsf(x[b * block + i]));
            HR_CHECK(a.d[kind == HR_ACT_A32 ? 4 * b : b] == amax / 127.0f);
            for (int i = 0; i < block; i++) {
                int64_t at = kind == HR_ACT_A32 ? hr_a32_pos(b, i) : b * block + i;
                HR_CHECK(a.qs[at] == (int8_t)lrintf(x[b * block + i] * (127.0f / amax)));
            }
        }
        for (int64_t i = 0; i < 256; i++)
            HR_CHECK(a.qs[kind == HR_ACT_A32 ? hr_a32_pos(4 * 256 / 32 + i / 32, (int)(i % 32)) : 4 * 256 + i] == 0);
        for (int li = 1; li < nl; li++) {
            const hr_simd_kernels *k = hr_simd_kernels_for(levels[li]);
            memset(got, 0xAA, bytes);
            (kind == HR_ACT_A32 ? k->quantize_a32 : k->quantize_a256)(x, n, HR_TYPE_Q4_0, got);
            HR_CHECKF(memcmp(want, got, row) == 0, "%s activation bytes differ from scalar (kind %d)",
                      hr_simd_name(levels[li]), kind);
        }
    }
    free(x);
    free(want);
    free(got);
}

/* Every type, every level, token counts 1, 3, 17 and 64, odd row counts. */
static void check_matmul_all_levels(hr_test_ctx *t, bool raw) {
    hr_simd_level levels[3], saved = hr_simd_active();
    int nl = levels_available(levels);
    static const int64_t token_counts[] = {1, 3, 17, 64};
    hr_pool *pool = NULL;
    hr_error err = {0};
    HR_CHECK_OK(hr_pool_new(&pool, 2, &err), &err);
    HR_CHECK_OK(hr_pool_reserve(pool, 64, 1024, &err), &err);
    for (int ti = 0; ti < N_TYPES; ti++) {
        uint32_t type = all_types[ti];
        int64_t rows = 37, cols = cols_for(type);
        test_matrix m;
        float *x = activations_new(64, cols), *y = malloc(sizeof(float) * 64 * (size_t)rows);
        HR_CHECK(matrix_new(&m, type, rows, cols, raw) && x && y);
        bool ok = true;
        for (int li = 0; li < nl && ok; li++) {
            hr_simd_set(levels[li]);
            for (int ni = 0; ni < 4 && ok; ni++) {
                char what[64];
                snprintf(what, sizeof what, "%s n_tokens=%lld%s", hr_simd_name(levels[li]),
                         (long long)token_counts[ni], raw ? " raw" : "");
                /* poisoned, so a row the kernels skip cannot pass with an earlier level's value */
                for (int64_t e = 0; e < 64 * rows; e++) y[e] = NAN;
                hr_matmul(pool, &m.w, x, token_counts[ni], y);
                ok = check_against_reference(t, &m, x, token_counts[ni], y, what);
            }
        }
        hr_simd_set(saved);
        free(m.data);
        free(x);
        free(y);
        if (!ok) break;
    }
    hr_pool_free(pool);
}

HR_TEST(kernels_matmul_every_type_and_level_matches_reference) { check_matmul_all_levels(t, false); }
HR_TEST(kernels_matmul_raw_blocks_every_level_matches_reference) { check_matmul_all_levels(t, true); }

HR_TEST(kernels_matmul_identical_across_threads_batches_and_scratch) {
    hr_pool *pools[3] = {0};
    hr_error err = {0};
    for (int i = 0; i < 3; i++) {
        HR_CHECK_OK(hr_pool_new(&pools[i], i + 1, &err), &err);
        HR_CHECK_OK(hr_pool_reserve(pools[i], 17, 1024, &err), &err);
    }
    hr_pool *small = NULL; /* scratch for 2 tokens: several quantize passes per call */
    HR_CHECK_OK(hr_pool_new(&small, 2, &err), &err);
    HR_CHECK_OK(hr_pool_reserve(small, 2, 1024, &err), &err);
    for (int ti = 0; ti < N_TYPES; ti++) {
        uint32_t type = all_types[ti];
        int64_t rows = 301, cols = cols_for(type), nt = 17;
        test_matrix m;
        float *x = activations_new(nt, cols);
        float *want = malloc(sizeof(float) * (size_t)(nt * rows)), *got = malloc(sizeof(float) * (size_t)(nt * rows));
        HR_CHECK(matrix_new(&m, type, rows, cols, false) && x && want && got);
        hr_matmul(pools[0], &m.w, x, nt, want);
        for (int i = 1; i <= 3; i++) {
            hr_pool *p = i < 3 ? pools[i] : small;
            memset(got, 0, sizeof(float) * (size_t)(nt * rows));
            hr_matmul(p, &m.w, x, nt, got);
            HR_CHECKF(memcmp(want, got, sizeof(float) * (size_t)(nt * rows)) == 0,
                      "%s: results with pool %d differ from 1 thread", hr_type_name(type), i);
        }
        /* without a pool (stack scratch) and token by token (hr_matvec) */
        hr_matmul(NULL, &m.w, x, nt, got);
        HR_CHECKF(memcmp(want, got, sizeof(float) * (size_t)(nt * rows)) == 0, "%s: NULL pool differs",
                  hr_type_name(type));
        for (int64_t tk = 0; tk < nt; tk++) {
            hr_matvec(&m.w, x + tk * cols, got);
            HR_CHECKF(memcmp(want + tk * rows, got, sizeof(float) * (size_t)rows) == 0,
                      "%s: hr_matvec differs from the batched result for token %lld", hr_type_name(type),
                      (long long)tk);
        }
        free(m.data);
        free(x);
        free(want);
        free(got);
    }
    for (int i = 0; i < 3; i++) hr_pool_free(pools[i]);
    hr_pool_free(small);
}

/* Several matrices over one X in one pass give exactly what separate calls give: three
 * of one type with different row counts (one pass), and mixed types (one call each). */
HR_TEST(kernels_matmul_multi_equals_separate_calls) {
    hr_pool *pool = NULL, *small = NULL;
    hr_error err = {0};
    HR_CHECK_OK(hr_pool_new(&pool, 2, &err), &err);
    HR_CHECK_OK(hr_pool_reserve(pool, 9, 512, &err), &err);
    HR_CHECK_OK(hr_pool_new(&small, 2, &err), &err);
    HR_CHECK_OK(hr_pool_reserve(small, 2, 512, &err), &err); /* several quantize passes */
    static const uint32_t sets[][3] = {{HR_TYPE_Q8_0, HR_TYPE_Q8_0, HR_TYPE_Q8_0},
                                       {HR_TYPE_Q4_K, HR_TYPE_Q4_K, HR_TYPE_Q4_K},
                                       {HR_TYPE_F16, HR_TYPE_F16, HR_TYPE_F16},
                                       {HR_TYPE_Q4_K, HR_TYPE_Q6_K, HR_TYPE_Q4_K},
                                       {HR_TYPE_Q8_0, HR_TYPE_Q4_0, HR_TYPE_F32}};
    static const int64_t rows[3] = {203, 64, 37};
    const int64_t cols = 512, nt = 9;
    float *x = activations_new(nt, cols);
    HR_CHECK(x != NULL);
    for (size_t si = 0; si < sizeof sets / sizeof sets[0]; si++) {
        test_matrix m[3];
        float *want[3], *got[3];
        const hr_tensor *w[3];
        for (int i = 0; i < 3; i++) {
            HR_CHECK(matrix_new(&m[i], sets[si][i], rows[i], cols, false));
            w[i] = &m[i].w;
            want[i] = malloc(sizeof(float) * (size_t)(nt * rows[i]));
            got[i] = malloc(sizeof(float) * (size_t)(nt * rows[i]));
            HR_CHECK(want[i] && got[i]);
            hr_matmul(pool, w[i], x, nt, want[i]);
        }
        hr_pool *pools[2] = {pool, small};
        for (int pi = 0; pi < 2; pi++) {
            for (int i = 0; i < 3; i++) memset(got[i], 0, sizeof(float) * (size_t)(nt * rows[i]));
            hr_matmul_multi(pools[pi], w, got, 3, x, nt);
            for (int i = 0; i < 3; i++)
                HR_CHECKF(memcmp(want[i], got[i], sizeof(float) * (size_t)(nt * rows[i])) == 0,
                          "set %zu part %d (%s), pool %d: differs from a separate call", si, i,
                          hr_type_name(sets[si][i]), pi);
        }
        for (int i = 0; i < 3; i++) {
            free(m[i].data);
            free(want[i]);
            free(got[i]);
        }
    }
    free(x);
    hr_pool_free(pool);
    hr_pool_free(small);
}

HR_TEST(kernels_matmul_leaves_the_heap_unchanged) {
    /* By design nothing allocates during a call; this catches a call that keeps memory. */
    hr_pool *pool = NULL;
    hr_error err = {0};
    HR_CHECK_OK(hr_pool_new(&pool, 2, &err), &err);
    HR_CHECK_OK(hr_pool_reserve(pool, 8, 768, &err), &err);
    test_matrix m;
    float *x = activations_new(8, 768), *y = malloc(sizeof(float) * 8 * 64);
    HR_CHECK(matrix_new(&m, HR_TYPE_Q4_K, 64, 768, false) && x && y);
    hr_matmul(pool, &m.w, x, 8, y);
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < 100; i++) hr_matmul(pool, &m.w, x, 1 + i % 8, y);
    struct mallinfo2 after = mallinfo2();
    HR_CHECK_EQ_INT(after.uordblks, before.uordblks);
    HR_CHECK_EQ_INT(after.hblkhd, before.hblkhd);
    free(m.data);
    free(x);
    free(y);
    hr_pool_free(pool);
}

HR_TEST(kernels_matmul_bad_rows_and_non_finite_activations) {
    hr_tensor bad = {.type = HR_TYPE_Q8_0, .ne = {48, 2, 1, 1}, .data = "", .row_bytes = 0};
    float x[48] = {0}, y[2] = {0};
    hr_matmul(NULL, &bad, x, 1, y);
    HR_CHECK(isnan(y[0]) && isnan(y[1]));
    hr_simd_level levels[3], saved = hr_simd_active();
    int nl = levels_available(levels);
    for (int ti = 3; ti < N_TYPES; ti++) {
        test_matrix m;
        int64_t cols = cols_for(all_types[ti]);
        float *xs = activations_new(2, cols), out[2 * 5];
        HR_CHECK(matrix_new(&m, all_types[ti], 5, cols, false) && xs);
        xs[40] = NAN;
        xs[cols + 40] = INFINITY;
        for (int li = 0; li < nl; li++) {
            hr_simd_set(levels[li]);
            hr_matmul(NULL, &m.w, xs, 2, out);
            for (int i = 0; i < 10; i++)
                HR_CHECKF(!isfinite(out[i]), "%s %s: output %d is finite (%g) with a non-finite input",
                          hr_simd_name(levels[li]), hr_type_name(all_types[ti]), i, out[i]);
        }
        hr_simd_set(saved);
        free(m.data);
        free(xs);
    }
}

HR_TEST(kernels_matmul_row_too_long_for_stack_scratch_uses_reference) {
    /* 36k columns of q8_0 need ~72 KB of quantized activation: more than the stack buffer
     * hr_matmul falls back to without pool scratch, so the reference computes them. */
    test_matrix m;
    const int64_t cols = 32 * 1125;
    float *x = activations_new(1, cols), y[3];
    HR_CHECK(matrix_new(&m, HR_TYPE_Q8_0, 3, cols, false) && x);
    hr_matmul(NULL, &m.w, x, 1, y);
    for (int r = 0; r < 3; r++)
        HR_CHECK(y[r] == hr_quant_dot_ref(HR_TYPE_Q8_0, m.data + r * m.w.row_bytes, x, cols));
    free(m.data);
    free(x);
}

/* Scores and mixes over several rows of a block (with a stride wider than a row, as in
 * the cache), every element count including tails, against the scalar expressions. */
HR_TEST(kernels_kv_scores_and_mix_every_level) {
    enum { ROWS = 7, MAXN = 128 };
    hr_simd_level levels[3], saved = hr_simd_active();
    int nl = levels_available(levels);
    static const uint32_t kv_types[] = {HR_TYPE_F32, HR_TYPE_F16, HR_TYPE_Q8_0};
    static const int64_t lens[] = {8, 13, 64, 100, 128};
    for (int ki = 0; ki < 3; ki++) {
        for (int ni = 0; ni < 5; ni++) {
            uint32_t type = kv_types[ki];
            int64_t n = lens[ni], padded = type == HR_TYPE_Q8_0 ? (n + 31) / 32 * 32 : n;
            uint64_t row_bytes;
            HR_CHECK(hr_type_row_bytes(type, (uint64_t)padded, &row_bytes));
            size_t stride = (size_t)row_bytes + 64;
            uint8_t *k = calloc(ROWS, stride);
            float src[MAXN], q[MAXN], deq[ROWS][MAXN], w[ROWS], base[MAXN], want[MAXN], got[MAXN];
            float dot[ROWS], scale[ROWS], scores[ROWS];
            HR_CHECK(k != NULL);
            for (int i = 0; i < MAXN; i++) {
                q[i] = rng_f();
                base[i] = rng_f();
            }
            for (int j = 0; j < ROWS; j++) {
                for (int i = 0; i < MAXN; i++) src[i] = rng_f();
                hr_quant_quantize_row(type, src, k + (size_t)j * stride, padded);
                hr_quant_dequantize_row(type, k + (size_t)j * stride, deq[j], padded);
                w[j] = rng_f();
                dot[j] = scale[j] = 0.0f;
                for (int64_t i = 0; i < n; i++) {
                    dot[j] += deq[j][i] * q[i];
                    scale[j] += fabsf(deq[j][i] * q[i]);
                }
            }
            memcpy(want, base, sizeof want);
            for (int j = 0; j < ROWS; j++)
                for (int64_t i = 0; i < n; i++) want[i] += w[j] * deq[j][i];
            for (int li = 0; li < nl; li++) {
                hr_simd_set(levels[li]);
                hr_kv_scores(type, k, stride, ROWS, q, n, scores);
                for (int j = 0; j < ROWS; j++)
                    HR_CHECKF(fabsf(scores[j] - dot[j]) <= 1e-5f * scale[j],
                              "%s kv_scores %s n=%lld row %d: %.9g want %.9g", hr_simd_name(levels[li]),
                              hr_type_name(type), (long long)n, j, scores[j], dot[j]);
                memcpy(got, base, sizeof got);
                hr_kv_mix(type, w, k, stride, ROWS, got, n);
                HR_CHECKF(memcmp(got, want, sizeof(float) * (size_t)n) == 0 &&
                              memcmp(got + n, base + n, sizeof(float) * (size_t)(MAXN - n)) == 0,
                          "%s kv_mix %s n=%lld differs from the scalar expression", hr_simd_name(levels[li]),
                          hr_type_name(type), (long long)n);
            }
            hr_simd_set(saved);
            free(k);
        }
    }
}

typedef struct {
    atomic_int calls[8];
    atomic_int total;
    atomic_int n_threads_seen;
    hr_pool *pool;
} pool_probe;

static void probe_inner(void *ctx, int thread, int n_threads) {
    pool_probe *p = ctx;
    if (thread == 0 && n_threads == 1) atomic_fetch_add(&p->total, 1000);
}

static void probe_fn(void *ctx, int thread, int n_threads) {
    pool_probe *p = ctx;
    atomic_store(&p->n_threads_seen, n_threads);
    if (thread >= 0 && thread < 8) atomic_fetch_add(&p->calls[thread], 1);
    atomic_fetch_add(&p->total, 1);
    if (thread == 1) hr_pool_run(p->pool, probe_inner, ctx); /* nested: runs inline */
}

HR_TEST(kernels_threadpool_runs_every_thread_once_per_run) {
    hr_error err = {0};
    for (int n = 1; n <= 4; n++) {
        hr_pool *pool = NULL;
        HR_CHECK_OK(hr_pool_new(&pool, n, &err), &err);
        HR_CHECK_EQ_INT(hr_pool_threads(pool), n);
        pool_probe probe = {.pool = pool};
        const int runs = 20000;
        for (int r = 0; r < runs; r++) hr_pool_run(pool, probe_fn, &probe);
        HR_CHECK_EQ_INT(atomic_load(&probe.n_threads_seen), n);
        for (int i = 0; i < n; i++) HR_CHECK_EQ_INT(atomic_load(&probe.calls[i]), runs);
        HR_CHECK_EQ_INT(atomic_load(&probe.total), runs * n + (n > 1 ? runs * 1000 : 0));
        hr_pool_free(pool);
    }
    hr_pool *pool = NULL;
    HR_CHECK_OK(hr_pool_new(&pool, 0, &err), &err);
    HR_CHECK(hr_pool_threads(pool) >= 1);
    hr_pool_free(pool);
    pool_probe probe = {0};
    hr_pool_run(NULL, probe_fn, &probe);
    HR_CHECK_EQ_INT(probe.n_threads_seen, 1);
    size_t bytes = 1;
    HR_CHECK(hr_pool_scratch(NULL, &bytes) == NULL && bytes == 0);
}

HR_TEST(kernels_threadpool_workers_sleep_and_wake) {
    /* Past the spin window workers sleep on the futex; a run must still wake them all. */
    hr_pool *pool = NULL;
    hr_error err = {0};
    HR_CHECK_OK(hr_pool_new(&pool, 3, &err), &err);
    pool_probe probe = {.pool = pool};
    for (int r = 0; r < 3; r++) {
        struct timespec pause = {.tv_nsec = 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
        hr_pool_run(pool, probe_fn, &probe);
    }
    for (int i = 0; i < 3; i++) HR_CHECK_EQ_INT(atomic_load(&probe.calls[i]), 3);
    hr_pool_free(pool);
}

typedef struct {
    pthread_t caller;
    atomic_int on_worker; /* runs whose share 1 ran on a worker thread */
} slow_probe;

static void slow_share(void *ctx, int thread, int n_threads) {
    slow_probe *p = ctx;
    if (thread == 0) { /* give the worker time to claim its share before the caller would */
        struct timespec pause = {.tv_nsec = 200 * 1000};
        nanosleep(&pause, NULL);
    }
    if (thread != 1 || pthread_equal(pthread_self(), p->caller)) return;
    atomic_fetch_add(&p->on_worker, 1);
    /* longer than the caller's spin window: the caller must sleep and be woken */
    struct timespec pause = {.tv_nsec = 3 * 1000 * 1000};
    nanosleep(&pause, NULL);
}

HR_TEST(kernels_threadpool_caller_sleeps_and_is_woken) {
    hr_pool *pool = NULL;
    hr_error err = {0};
    HR_CHECK_OK(hr_pool_new(&pool, 2, &err), &err);
    slow_probe probe = {.caller = pthread_self()};
    /* A loaded machine may leave the new worker unscheduled for a while: the caller then
     * runs its share, which is correct but not what this test is after. */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    double waited = 0.0;
    while (atomic_load(&probe.on_worker) < 3 && waited < 5.0) {
        hr_pool_run(pool, slow_share, &probe);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    }
    HR_CHECKF(atomic_load(&probe.on_worker) >= 3, "the worker took its share %d times in 5 s",
              atomic_load(&probe.on_worker));
    hr_pool_free(pool);
}

/* Every level's softmax against libm's, over lengths with tails, spreads that reach
 * underflow, and equal inputs. Within 2e-6 relative: the vector levels' exp is a few ulp
 * from libm's and they add the sum in lanes, not in order; over 20000 random rows of up
 * to 300 values both stayed within 1.0e-6 (4e-7, the bound this test had, failed for some
 * seeds). */
HR_TEST(kernels_softmax_every_level_matches_libm) {
    enum { MAXN = 300 };
    hr_simd_level levels[3], saved = hr_simd_active();
    int nl = levels_available(levels);
    static const int64_t lens[] = {1, 7, 16, 17, 100, 300};
    static const float spreads[] = {0.0f, 1.0f, 30.0f, 400.0f};
    for (int si = 0; si < 4; si++)
        for (int ni = 0; ni < 6; ni++) {
            int64_t n = lens[ni];
            float src[MAXN], want[MAXN], got[MAXN], div = 8.0f;
            for (int64_t i = 0; i < n; i++) src[i] = rng_f() * spreads[si] * div;
            float max = src[0] / div, sum = 0.0f;
            for (int64_t i = 0; i < n; i++) max = src[i] / div > max ? src[i] / div : max;
            for (int64_t i = 0; i < n; i++) sum += want[i] = expf(src[i] / div - max);
            for (int64_t i = 0; i < n; i++) want[i] /= sum;
            for (int li = 0; li < nl; li++) {
                hr_simd_set(levels[li]);
                memcpy(got, src, sizeof(float) * (size_t)n);
                hr_softmax(got, n, div);
                for (int64_t i = 0; i < n; i++)
                    HR_CHECKF(fabsf(got[i] - want[i]) <= 2e-6f * want[i] + 1e-37f,
                              "%s softmax n=%lld spread %g [%lld]: %.9g want %.9g", hr_simd_name(levels[li]),
                              (long long)n, spreads[si], (long long)i, got[i], want[i]);
            }
            hr_simd_set(saved);
        }
}

/* Every level's SwiGLU against the scalar expression with libm's expf: gates over
 * [-120, 120] (past where e^-g overflows or vanishes), exact zeros and NaN, lengths with
 * tails, and nothing written past n. (AVX2 stands e^88.3 in for larger exponentials, so
 * gates below -88.3 give products of about 1e-36 where libm's overflow gives 0.) */
/* RMSNorm with and without a residual to add, every length around the 8- and 16-lane
 * tails: every level writes the scalar level's bytes to x and o and nothing past n, and
 * the scalar level is the formula (within float rounding of a double computation). */
HR_TEST(kernels_rmsnorm_every_level_matches_scalar) {
    enum { MAXN = 2053 };
    hr_simd_level levels[3], saved = hr_simd_active();
    int nl = levels_available(levels);
    static const int64_t lens[] = {1, 7, 8, 9, 15, 16, 17, 31, 33, 768, MAXN};
    static float x0[MAXN + 1], delta[MAXN], w[MAXN], want_x[MAXN + 1], want_o[MAXN + 1], got_x[MAXN + 1],
        got_o[MAXN + 1];
    for (int i = 0; i < MAXN; i++) x0[i] = 4.0f * rng_f(), delta[i] = rng_f(), w[i] = 1.0f + rng_f();
    for (int li = 0; li < 11; li++) {
        int64_t n = lens[li];
        for (int with_delta = 0; with_delta < 2; with_delta++) {
            const float *d = with_delta ? delta : NULL;
            hr_simd_set(HR_SIMD_SCALAR);
            memcpy(want_x, x0, sizeof want_x);
            want_o[n] = 12345.0f;
            hr_rmsnorm(want_o, want_x, d, w, n, 1e-5f);
            double ss = 0;
            for (int64_t i = 0; i < n; i++) ss += (double)want_x[i] * want_x[i];
            double r = 1.0 / sqrt(ss / (double)n + 1e-5);
            for (int64_t i = 0; i < n; i++) {
                HR_CHECKF(!with_delta || want_x[i] == x0[i] + delta[i], "n=%lld: x[%lld] missed its residual",
                          (long long)n, (long long)i);
                HR_CHECKF(fabs(want_o[i] - w[i] * want_x[i] * r) <= 1e-5 * fabs(w[i] * want_x[i] * r) + 1e-30,
                          "n=%lld: o[%lld] = %.9g, the formula gives %.9g", (long long)n, (long long)i, want_o[i],
                          w[i] * want_x[i] * r);
            }
            for (int l = 1; l < nl; l++) {
                hr_simd_set(levels[l]);
                memcpy(got_x, x0, sizeof got_x);
                got_o[n] = 12345.0f;
                hr_rmsnorm(got_o, got_x, d, w, n, 1e-5f);
                HR_CHECKF(memcmp(got_x, want_x, sizeof got_x) == 0 && memcmp(got_o, want_o, sizeof(float) * (size_t)n) == 0 &&
                              got_o[n] == 12345.0f,
                          "%s rmsnorm n=%lld delta=%d differs from scalar", hr_simd_name(levels[l]), (long long)n,
                          with_delta);
            }
        }
    }
    hr_simd_set(saved);
}

HR_TEST(kernels_swiglu_every_level_matches_libm) {
    enum { N = 203 };
    hr_simd_level levels[3], saved = hr_simd_active();
    int nl = levels_available(levels);
    static const float edge[] = {0.0f, -0.0f, 88.0f, 89.0f, -88.0f, -89.0f, -104.0f, 104.0f, 1e-20f, -1e-20f, NAN};
    float g[N], up[N], want[N], got[N + 1];
    for (int i = 0; i < N; i++) {
        g[i] = i < (int)(sizeof edge / sizeof edge[0]) ? edge[i] : rng_f() * (i % 3 ? 8.0f : 120.0f);
        up[i] = rng_f() * 4.0f;
        want[i] = g[i] * (1.0f / (1.0f + expf(-g[i]))) * up[i];
    }
    for (int li = 0; li < nl; li++) {
        hr_simd_set(levels[li]);
        for (int64_t n = 1; n <= N; n += 101) {
            memcpy(got, g, sizeof g);
            got[n] = 12345.0f;
            hr_swiglu(got, up, n);
            HR_CHECKF(got[n] == 12345.0f, "%s swiglu n=%lld wrote past the end", hr_simd_name(levels[li]), (long long)n);
            for (int64_t i = 0; i < n; i++)
                HR_CHECKF(isnan(want[i]) ? isnan(got[i]) : fabsf(got[i] - want[i]) <= 1e-6f * fabsf(want[i]) + 1e-30f,
                          "%s swiglu g=%.9g up=%.9g: %.9g want %.9g", hr_simd_name(levels[li]), g[i], up[i], got[i],
                          want[i]);
        }
    }
    hr_simd_set(saved);
}

/* q8_0 KV rows at every level are the reference quantizer's bytes: random blocks, blocks
 * whose quants land exactly on halves (rounded away from zero), zero blocks, NaN and
 * infinities inside blocks, and magnitudes past the largest fp16 scale. */
HR_TEST(kernels_kv_store_q8_0_every_level_writes_the_reference_bytes) {
    enum { BLOCKS = 12, N = 32 * BLOCKS, BYTES = 34 * BLOCKS };
    hr_simd_level levels[3], saved = hr_simd_active();
    int nl = levels_available(levels);
    float x[N];
    for (int i = 0; i < N; i++) x[i] = rng_f() * 3.0f;
    /* amax 127 makes the scale exactly 1 and amax 254 exactly 2, so these quants land on halves */
    for (int i = 0; i < 32; i++) x[32 + i] = i == 31 ? 127.0f : (float)(i - 16) + 0.5f;
    for (int i = 0; i < 32; i++) x[64 + i] = i == 0 ? -254.0f : (float)(2 * (i - 16) + 1);
    for (int i = 0; i < 32; i++) x[96 + i] = 0.0f;
    x[130] = NAN;
    x[160] = INFINITY;
    x[200] = -INFINITY;
    x[231] = 1e30f;
    x[260] = -3e38f;
    x[290] = 1e-30f;
    uint8_t want[BYTES], got[BYTES + 1];
    hr_quant_quantize_row(HR_TYPE_Q8_0, x, want, N);
    for (int li = 0; li < nl; li++) {
        hr_simd_set(levels[li]);
        memset(got, 0xAB, sizeof got);
        hr_kv_store(HR_TYPE_Q8_0, x, got, N);
        HR_CHECKF(got[BYTES] == 0xAB, "%s q8_0 store wrote past the row", hr_simd_name(levels[li]));
        for (int b = 0; b < BYTES; b++)
            HR_CHECKF(got[b] == want[b], "%s q8_0 store: block %d byte %d is %d, the reference %d",
                      hr_simd_name(levels[li]), b / 34, b % 34, got[b], want[b]);
    }
    hr_simd_set(saved);
}

/* f16 KV rows at every level round exactly as hr_f32_to_fp16: random values, ties,
 * overflow to inf, subnormals, signed zeros, infinities; and never write past n. */
HR_TEST(kernels_kv_store_f16_every_level_rounds_as_scalar) {
    enum { N = 77 };
    hr_simd_level levels[3], saved = hr_simd_active();
    int nl = levels_available(levels);
    static const float edge[] = {0.0f, -0.0f, 65504.0f, 65519.0f, 65520.0f, -70000.0f, 6.0e-8f, 2.98e-8f,
                                 -3.0e-5f, 1.0f + 1.0f / 2048.0f, 1.0f + 3.0f / 2048.0f, INFINITY, -INFINITY};
    float x[N];
    for (int i = 0; i < N; i++) x[i] = i < (int)(sizeof edge / sizeof edge[0]) ? edge[i] : rng_f() * 1000.0f;
    for (int li = 0; li < nl; li++) {
        hr_simd_set(levels[li]);
        for (int64_t n = 1; n <= N; n += 19) {
            uint16_t got[N + 1];
            got[n] = 0xBEEF;
            hr_kv_store(HR_TYPE_F16, x, got, n);
            for (int64_t i = 0; i < n; i++)
                HR_CHECKF(got[i] == hr_f32_to_fp16(x[i]), "%s f16 of %.9g: %04x want %04x", hr_simd_name(levels[li]),
                          x[i], got[i], hr_f32_to_fp16(x[i]));
            HR_CHECKF(got[n] == 0xBEEF, "%s f16 row of %lld wrote past its end", hr_simd_name(levels[li]), (long long)n);
        }
    }
    hr_simd_set(saved);
}

/* f16 KV rows widen to exactly hr_fp16_to_f32 at every level, every length. */
HR_TEST(kernels_kv_widen_f16_every_level_is_exact) {
    enum { N = 77 };
    hr_simd_level levels[3], saved = hr_simd_active();
    int nl = levels_available(levels);
    uint16_t h[N];
    for (int i = 0; i < N; i++) h[i] = (uint16_t)(rng_u32() & 0xFFFF);
    h[0] = 0x7C00; /* inf */
    h[1] = 0x0001; /* smallest subnormal */
    h[2] = 0x8000; /* negative zero */
    for (int li = 0; li < nl; li++) {
        hr_simd_set(levels[li]);
        for (int64_t n = 1; n <= N; n += 19) {
            float got[N + 1];
            got[n] = 42.0f;
            hr_kv_widen(HR_TYPE_F16, h, got, n);
            for (int64_t i = 0; i < n; i++) {
                float want = hr_fp16_to_f32(h[i]);
                HR_CHECKF(memcmp(&got[i], &want, sizeof want) == 0 || (isnan(got[i]) && isnan(want)),
                          "%s widen %04x: %.9g want %.9g", hr_simd_name(levels[li]), h[i], got[i], want);
            }
            HR_CHECKF(got[n] == 42.0f, "%s widen of %lld wrote past its end", hr_simd_name(levels[li]), (long long)n);
        }
    }
    hr_simd_set(saved);
}
