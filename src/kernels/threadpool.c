/* Synchronisation: the caller publishes fn/ctx and the number of shares still to finish
 * (pending), then bumps generation. Share i of generation g belongs to whoever moves the
 * share word from g - 1 to g: normally worker i, but once the caller has finished its own
 * share it claims every share no worker has started and runs it itself, so a run never
 * waits for a worker the OS has not scheduled (two cores shared with other processes make
 * that common). Waits spin with a pause instruction, then spin yielding the CPU, then
 * sleep on a futex of the same word. Whoever changes a word wakes it only when its sleeper
 * count says someone sleeps; the count is raised before the sleeper re-checks the word
 * (both sequentially consistent), so a wake is never missed and a busy pool makes no
 * system calls. */
#include "kernels/threadpool.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "kernels/simd.h"

enum {
    /* A waiter spins this long with pause alone (the next run usually follows within
     * microseconds) ... */
    PAUSE_NS = 20000,
    /* ... then yields the CPU between checks (letting a descheduled thread it waits for
     * run) until this much time has passed, then sleeps. */
    SPIN_NS = 1000000,
    MAX_THREADS = 512,
};

typedef struct {
    hr_pool *pool;
    int index;
    pthread_t thread;
    atomic_uint share; /* the last generation whose share index was claimed */
} worker;

struct hr_pool {
    int n_threads;
    int n_started; /* workers created (n_threads - 1 once construction succeeded) */
    worker *workers;
    pthread_mutex_t run_lock;
    hr_pool_fn fn;
    void *ctx;
    _Alignas(64) atomic_uint generation;
    atomic_int worker_sleepers;
    atomic_bool stop;
    _Alignas(64) atomic_uint pending;
    atomic_int caller_sleepers;
    void *scratch;
    size_t scratch_bytes;
};

/* The pool whose function this thread is running (nested runs execute inline). */
static _Thread_local const hr_pool *running_pool;

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void futex_wait(atomic_uint *word, unsigned value) {
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, value, NULL, NULL, 0);
}

static void futex_wake_all(atomic_uint *word) {
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Returns once *word != value (or spuriously; callers re-check). */
static void wait_while_equal(atomic_uint *word, unsigned value, atomic_int *sleepers) {
    int64_t start = now_ns(), elapsed = 0;
    for (unsigned i = 1; elapsed < SPIN_NS; i++) {
        if (atomic_load_explicit(word, memory_order_acquire) != value) return;
        if (elapsed < PAUSE_NS) {
            cpu_relax();
            if (i % 64 == 0) elapsed = now_ns() - start;
        } else {
            sched_yield();
            elapsed = now_ns() - start;
        }
    }
    atomic_fetch_add(sleepers, 1);
    while (atomic_load(word) == value) futex_wait(word, value);
    atomic_fetch_sub(sleepers, 1);
}

static void wake_sleepers(atomic_uint *word, atomic_int *sleepers) {
    if (atomic_load(sleepers) > 0) futex_wake_all(word);
}

static bool claim_share(worker *w, unsigned generation) {
    unsigned expected = generation - 1;
    return atomic_compare_exchange_strong(&w->share, &expected, generation);
}

static void run_share(hr_pool *p, int index) {
    p->fn(p->ctx, index, p->n_threads);
    if (atomic_fetch_sub(&p->pending, 1) == 1) wake_sleepers(&p->pending, &p->caller_sleepers);
}

static void *worker_main(void *arg) {
    worker *w = arg;
    hr_pool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        while ((g = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen)
            wait_while_equal(&p->generation, seen, &p->worker_sleepers);
        seen = g;
        if (atomic_load(&p->stop)) return NULL;
        if (claim_share(w, g)) {
            running_pool = p;
            run_share(p, w->index);
            running_pool = NULL;
        }
    }
}

static int available_cores(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void stop_workers(hr_pool *p) {
    atomic_store(&p->stop, true);
    atomic_fetch_add(&p->generation, 1);
    futex_wake_all(&p->generation);
    for (int i = 0; i < p->n_started; i++) pthread_join(p->workers[i].thread, NULL);
    p->n_started = 0;
}

hr_status hr_pool_new(hr_pool **out, int n_threads, hr_error *err) {
    *out = NULL;
    if (n_threads <= 0) n_threads = available_cores();
    if (n_threads > MAX_THREADS) n_threads = MAX_THREADS;
    size_t align = _Alignof(hr_pool); /* aligned_alloc takes whole multiples of the alignment */
    hr_pool *p = aligned_alloc(align, (sizeof *p + align - 1) / align * align);
    if (!p) return hr_fail(err, HR_ERR_NOMEM, "out of memory for a thread pool");
    memset(p, 0, sizeof *p);
    p->n_threads = n_threads;
    pthread_mutex_init(&p->run_lock, NULL);
    if (n_threads > 1) {
        p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->workers) {
            hr_pool_free(p);
            return hr_fail(err, HR_ERR_NOMEM, "out of memory for %d worker threads", n_threads - 1);
        }
    }
    for (int i = 0; i < n_threads - 1; i++) {
        p->workers[i] = (worker){.pool = p, .index = i + 1};
        int rc = pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]);
        if (rc != 0) {
            hr_pool_free(p);
            return hr_fail(err, HR_ERR_NOMEM, "cannot start worker thread %d of %d: %s", i + 1, n_threads - 1,
                           strerror(rc));
        }
        p->n_started++;
    }
    *out = p;
    return HR_OK;
}

void hr_pool_free(hr_pool *p) {
    if (!p) return;
    stop_workers(p);
    pthread_mutex_destroy(&p->run_lock);
    free(p->workers);
    free(p->scratch);
    free(p);
}

int hr_pool_threads(const hr_pool *p) { return p ? p->n_threads : 1; }

void hr_pool_run(hr_pool *p, hr_pool_fn fn, void *ctx) {
    if (!p || p->n_threads == 1 || running_pool == p) {
        fn(ctx, 0, 1);
        return;
    }
    pthread_mutex_lock(&p->run_lock);
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->pending, (unsigned)(p->n_threads - 1), memory_order_relaxed);
    unsigned g = atomic_fetch_add(&p->generation, 1) + 1; /* publishes fn, ctx and pending */
    wake_sleepers(&p->generation, &p->worker_sleepers);
    const hr_pool *outer = running_pool; /* the caller may be running a share of another pool */
    running_pool = p;
    fn(ctx, 0, p->n_threads);
    for (int i = 0; i < p->n_threads - 1; i++)
        if (claim_share(&p->workers[i], g)) run_share(p, p->workers[i].index);
    running_pool = outer;
    unsigned left;
    while ((left = atomic_load(&p->pending)) != 0) wait_while_equal(&p->pending, left, &p->caller_sleepers);
    pthread_mutex_unlock(&p->run_lock);
}

hr_status hr_pool_reserve(hr_pool *p, size_t max_tokens, size_t max_cols, hr_error *err) {
    if (!p) return HR_OK;
    if (max_cols > (size_t)1 << 32)
        return hr_fail(err, HR_ERR_RANGE, "kernel scratch for rows of %zu columns: too many columns", max_cols);
    size_t row = hr_act_row_bytes_max((int64_t)max_cols);
    if (max_tokens && row > SIZE_MAX / max_tokens)
        return hr_fail(err, HR_ERR_NOMEM, "kernel scratch for %zu tokens of %zu columns overflows", max_tokens, max_cols);
    size_t bytes = max_tokens * row;
    if (bytes <= p->scratch_bytes) return HR_OK;
    void *mem = aligned_alloc(64, bytes);
    if (!mem)
        return hr_fail(err, HR_ERR_NOMEM, "out of memory for kernel scratch (%zu MiB for %zu tokens of %zu columns)",
                       bytes >> 20, max_tokens, max_cols);
    free(p->scratch);
    p->scratch = mem;
    p->scratch_bytes = bytes;
    return HR_OK;
}

void *hr_pool_scratch(const hr_pool *p, size_t *bytes) {
    *bytes = p ? p->scratch_bytes : 0;
    return p ? p->scratch : NULL;
}
