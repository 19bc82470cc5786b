/* kernels/threadpool — persistent worker threads that run one function on every thread
 * at once and wait for all of them (a step's matmuls are split by output rows).
 *
 * hr_pool_run wakes the workers, runs the caller's share itself, and waits at a
 * completion barrier. A share a worker has not started by then (the OS has not scheduled
 * it) is run by the caller instead, so each thread index runs exactly once per call but
 * not necessarily on its own thread. Waiting spins (pause, then yielding the CPU) for a
 * bounded time, because the next run usually follows within microseconds, then sleeps on
 * a futex, so idle workers cost no CPU between requests.
 *
 * A pool serves one caller at a time: runs from different threads are serialised, and a
 * run started from inside a running function executes inline on that thread. Kernels'
 * scratch (quantized activations) lives here too, so hr_matmul does not share it across
 * concurrent callers: give each concurrent caller its own pool.
 *
 * Owns: the worker threads and the scratch memory kernels reserve through it.
 * Must not: allocate while running work; hr_pool_reserve grows scratch up front. */
#ifndef HR_KERNELS_THREADPOOL_H
#define HR_KERNELS_THREADPOOL_H

#include <stddef.h>

#include "base/error.h"

typedef struct hr_pool hr_pool;

/* n_threads <= 0: the number of cores available to the process (its CPU affinity). */
hr_status hr_pool_new(hr_pool **out, int n_threads, hr_error *err);
void hr_pool_free(hr_pool *p);
int hr_pool_threads(const hr_pool *p);

/* Runs fn(ctx, thread, n_threads) once for every thread index in [0, n_threads), on the
 * pool's threads and the caller's, and returns when all have finished. A NULL pool runs
 * fn(ctx, 0, 1) on the caller. */
typedef void (*hr_pool_fn)(void *ctx, int thread, int n_threads);
void hr_pool_run(hr_pool *p, hr_pool_fn fn, void *ctx);

/* Makes sure kernels have scratch for batches of up to max_tokens rows of up to
 * max_cols inputs (e.g. quantized activations). Call at start-up; never while a run is
 * in progress. Reservations only grow. */
hr_status hr_pool_reserve(hr_pool *p, size_t max_tokens, size_t max_cols, hr_error *err);

/* The reserved scratch (64-byte aligned) and its size; NULL and 0 for a NULL pool or
 * none reserved. For kernels, during a run of the pool. */
void *hr_pool_scratch(const hr_pool *p, size_t *bytes);

#endif
