/* kernels/threadpool — persistent worker threads that run one function on every thread
 * at once and wait for all of them (a step's matmuls are split by output rows).
 *
 * Owns: the worker threads and the scratch memory kernels reserve through it.
 * Must not: allocate while running work; hr_pool_reserve grows scratch up front. */
#ifndef HR_KERNELS_THREADPOOL_H
#define HR_KERNELS_THREADPOOL_H

#include <stddef.h>

#include "base/error.h"

typedef struct hr_pool hr_pool;

/* n_threads <= 0: the number of cores available to the process. */
hr_status hr_pool_new(hr_pool **out, int n_threads, hr_error *err);
void hr_pool_free(hr_pool *p);
int hr_pool_threads(const hr_pool *p);

/* Runs fn(ctx, thread, n_threads) on every thread, the caller's included, and returns
 * when all have finished. A NULL pool runs fn(ctx, 0, 1) on the caller. */
typedef void (*hr_pool_fn)(void *ctx, int thread, int n_threads);
void hr_pool_run(hr_pool *p, hr_pool_fn fn, void *ctx);

/* Makes sure kernels have scratch for batches of up to max_tokens rows of up to
 * max_cols inputs (e.g. quantized activations). Call at start-up. */
hr_status hr_pool_reserve(hr_pool *p, size_t max_tokens, size_t max_cols, hr_error *err);

#endif
