#include "kernels/threadpool.h"

#include <stdlib.h>

/* Placeholder single-threaded pool until the persistent-worker implementation lands:
 * the API is what callers build on. */
struct hr_pool {
    int n_threads;
};

hr_status hr_pool_new(hr_pool **out, int n_threads, hr_error *err) {
    hr_pool *p = calloc(1, sizeof *p);
    if (!p) return hr_fail(err, HR_ERR_NOMEM, "out of memory for a thread pool");
    p->n_threads = 1;
    (void)n_threads;
    *out = p;
    return HR_OK;
}

void hr_pool_free(hr_pool *p) { free(p); }

int hr_pool_threads(const hr_pool *p) { return p ? p->n_threads : 1; }

void hr_pool_run(hr_pool *p, hr_pool_fn fn, void *ctx) {
    (void)p;
    fn(ctx, 0, 1);
}

hr_status hr_pool_reserve(hr_pool *p, size_t max_tokens, size_t max_cols, hr_error *err) {
    (void)p;
    (void)max_tokens;
    (void)max_cols;
    (void)err;
    return HR_OK;
}
