/* bench_kernels — throughput of hr_matmul per weight type, SIMD level, token count and
 * thread count, on shapes of a 110M and a 1B llama (the FFN up projection), plus the
 * machine's memory read bandwidth.
 *
 * Weights are spread over copies totalling WEIGHT_RING_BYTES and a call uses the next
 * copy, so that n_tokens = 1 measures streaming from memory (as decoding does) rather
 * than from the 32 MiB L3. GB/s counts weight bytes; GFLOP/s counts 2 * rows * cols *
 * n_tokens; times are medians per call.
 *
 * usage: bench_kernels [seconds per measurement, default 0.3] [type filter, e.g. q4_k] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/bandwidth.h"
#include "kernels/cpu.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"
#include "kernels/threadpool.h"
#include "tools/stats.h"

#define WEIGHT_RING_BYTES ((uint64_t)512 << 20)

typedef struct {
    const char *name;
    int64_t rows, cols;
} shape;

static const shape shapes[] = {{"110m 768->2048", 2048, 768}, {"1b 2048->5632", 5632, 2048}};
static const uint32_t types[] = {HR_TYPE_F32,  HR_TYPE_F16,  HR_TYPE_BF16, HR_TYPE_Q8_0,
                                 HR_TYPE_Q4_0, HR_TYPE_Q4_K, HR_TYPE_Q5_K, HR_TYPE_Q6_K};
static const int64_t token_counts[] = {1, 16, 64};

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252u;
static float rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)(rng >> 40) / 8388608.0f - 1.0f;
}

typedef struct {
    uint8_t *data;
    int copies;
    hr_tensor w;
} weight_ring;

static int ring_new(weight_ring *r, uint32_t type, const shape *s) {
    uint64_t row_bytes;
    if (!hr_type_row_bytes(type, (uint64_t)s->cols, &row_bytes)) return -1;
    uint64_t bytes = row_bytes * (uint64_t)s->rows;
    r->copies = (int)((WEIGHT_RING_BYTES + bytes - 1) / bytes);
    r->data = malloc(bytes * (uint64_t)r->copies);
    float *row = malloc(sizeof(float) * (size_t)s->cols);
    if (!r->data || !row) return -1;
    for (int64_t i = 0; i < s->rows; i++) {
        for (int64_t j = 0; j < s->cols; j++) row[j] = rnd();
        hr_quant_quantize_row(type, row, r->data + (uint64_t)i * row_bytes, s->cols);
    }
    for (int c = 1; c < r->copies; c++) memcpy(r->data + c * bytes, r->data, bytes);
    free(row);
    r->w = (hr_tensor){.type = type, .ne = {s->cols, s->rows, 1, 1}, .data = r->data, .row_bytes = row_bytes};
    return 0;
}

enum { MAX_SAMPLES = 4096 };

/* Median seconds per call over the calls made within budget (at least 5, after one
 * warm-up call): robust to the calls a busy machine preempts. */
static double time_matmul(hr_pool *pool, weight_ring *r, const float *x, int64_t n, float *y, double budget) {
    static double samples[MAX_SAMPLES];
    uint64_t bytes = r->w.row_bytes * (uint64_t)r->w.ne[1];
    hr_tensor w = r->w;
    hr_matmul(pool, &w, x, n, y);
    double start = seconds();
    int calls = 0;
    while (calls < MAX_SAMPLES && (calls < 5 || seconds() - start < budget)) {
        w.data = r->data + (uint64_t)((calls + 1) % r->copies) * bytes;
        double t0 = seconds();
        hr_matmul(pool, &w, x, n, y);
        samples[calls++] = seconds() - t0;
    }
    hr_sort_doubles(samples, (size_t)calls);
    return samples[calls / 2];
}

int main(int argc, char **argv) {
    double budget = argc > 1 ? atof(argv[1]) : 0.3;
    const char *filter = argc > 2 ? argv[2] : NULL;
    hr_error err = {0};
    hr_pool *pools[2];
    for (int i = 0; i < 2; i++) {
        if (hr_pool_new(&pools[i], i + 1, &err) != HR_OK || hr_pool_reserve(pools[i], 64, 5632, &err) != HR_OK) {
            fprintf(stderr, "bench_kernels: %s\n", err.msg);
            return 1;
        }
    }
    printf("SIMD level detected: %s\n", hr_simd_name(hr_simd_detected()));
    printf("memory read bandwidth: %.1f GB/s (1 thread), %.1f GB/s (2 threads)\n\n",
           hr_measure_read_bandwidth_gbs(pools[0]), hr_measure_read_bandwidth_gbs(pools[1]));
    int n_levels = (int)hr_simd_detected() + 1;
    printf("%-5s %-15s %3s %2s |", "type", "shape", "n", "th");
    for (int l = 0; l < n_levels; l++) printf(" %8s GF/s", hr_simd_name((hr_simd_level)l));
    printf(" | best GB/s  GF/s | x scalar\n");
    float *x = malloc(sizeof(float) * 64 * 5632), *y = malloc(sizeof(float) * 64 * 5632);
    if (!x || !y) return 1;
    for (int i = 0; i < 64 * 5632; i++) x[i] = rnd();
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        if (filter && strcmp(filter, hr_type_name(types[ti])) != 0) continue;
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            weight_ring ring;
            if (ring_new(&ring, types[ti], &shapes[si]) != 0) {
                fprintf(stderr, "bench_kernels: out of memory\n");
                return 1;
            }
            double bytes = (double)ring.w.row_bytes * (double)ring.w.ne[1];
            for (size_t ni = 0; ni < sizeof token_counts / sizeof token_counts[0]; ni++) {
                int64_t n = token_counts[ni];
                double flops = 2.0 * (double)shapes[si].rows * (double)shapes[si].cols * (double)n;
                for (int th = 0; th < 2; th++) {
                    printf("%-5s %-15s %3lld %2d |", hr_type_name(types[ti]), shapes[si].name, (long long)n, th + 1);
                    double secs[3] = {0};
                    for (int l = 0; l < n_levels; l++) {
                        hr_simd_set((hr_simd_level)l);
                        secs[l] = time_matmul(pools[th], &ring, x, n, y, budget);
                        printf(" %13.1f", flops / secs[l] / 1e9);
                        fflush(stdout);
                    }
                    double best = secs[n_levels - 1];
                    printf(" | %9.1f %5.0f | %7.1f\n", bytes / best / 1e9, flops / best / 1e9, secs[0] / best);
                }
            }
            free(ring.data);
        }
    }
    free(x);
    free(y);
    for (int i = 0; i < 2; i++) hr_pool_free(pools[i]);
    return 0;
}
