#include "kernels/bandwidth.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "kernels/simd.h"

enum { PASSES = 5, LANES = 32 };

#define BUFFER_BYTES ((size_t)1 << 30)

typedef struct {
    uint64_t *words;
    size_t n_words;
    uint64_t sums[64]; /* one per thread (up to 64; others fold into the last) */
} stream_job;

static void slice(const stream_job *j, int thread, int n_threads, size_t *begin, size_t *end) {
    size_t per = j->n_words / LANES / (size_t)n_threads * LANES;
    *begin = per * (size_t)thread;
    *end = thread == n_threads - 1 ? j->n_words : *begin + per;
}

static void touch(void *ctx, int thread, int n_threads) {
    stream_job *j = ctx;
    size_t b, e;
    slice(j, thread, n_threads, &b, &e);
    memset(j->words + b, 1, (e - b) * sizeof(uint64_t));
}

typedef uint64_t words8 __attribute__((vector_size(64)));

/* Four independent vector accumulators keep the loop limited by loads, not by an add
 * chain; reads are requested ahead as the matmul kernels do (hr_prefetch_ahead);
 * target_clones picks 512-, 256- or 128-bit loads for the CPU at load time (the probe
 * measures memory, whatever HEADROOM_SIMD says). */
/* Not under ThreadSanitizer: the clones' resolver runs before its runtime is set up, and
 * the instrumented call in it crashed every command of the tsan build at load time. */
#if defined(__SANITIZE_THREAD__)
#define HR_LOAD_CLONES
#else
#define HR_LOAD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
HR_LOAD_CLONES static uint64_t sum_words(const uint64_t *w, size_t n) {
    words8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, v0, v1, v2, v3;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        hr_prefetch_ahead((const uint8_t *)(w + i), 32 * sizeof *w);
        memcpy(&v0, w + i, sizeof v0);
        memcpy(&v1, w + i + 8, sizeof v1);
        memcpy(&v2, w + i + 16, sizeof v2);
        memcpy(&v3, w + i + 24, sizeof v3);
        a0 += v0;
        a1 += v1;
        a2 += v2;
        a3 += v3;
    }
    words8 t = a0 + a1 + a2 + a3;
    uint64_t s = 0;
    for (int k = 0; k < 8; k++) s += t[k];
    for (; i < n; i++) s += w[i];
    return s;
}

static void stream(void *ctx, int thread, int n_threads) {
    stream_job *j = ctx;
    size_t b, e;
    slice(j, thread, n_threads, &b, &e);
    j->sums[thread < 64 ? thread : 63] += sum_words(j->words + b, e - b);
}

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double hr_measure_read_bandwidth_gbs(hr_pool *pool) {
    void *mem = mmap(NULL, BUFFER_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return 0.0;
    madvise(mem, BUFFER_BYTES, MADV_HUGEPAGE); /* fewer TLB misses; a hint, may be refused */
    stream_job job = {.words = mem, .n_words = BUFFER_BYTES / sizeof(uint64_t)};
    hr_pool_run(pool, touch, &job); /* fault the pages in before timing */
    double best = 0.0;
    for (int pass = 0; pass < PASSES; pass++) {
        double t0 = seconds();
        hr_pool_run(pool, stream, &job);
        double gbs = (double)BUFFER_BYTES / (seconds() - t0) / 1e9;
        if (gbs > best) best = gbs;
    }
    /* The sums are data the passes produced; reading them keeps the loads alive. */
    uint64_t check = 0;
    for (int i = 0; i < 64; i++) check += job.sums[i];
    munmap(mem, BUFFER_BYTES);
    return check ? best : 0.0;
}
