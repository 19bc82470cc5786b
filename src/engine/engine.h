/* engine/engine — requests in, tokens out: a scheduler over one paged KV pool with
 * continuous batching (every step admits what fits, mixes decode tokens with chunks of
 * prompts being prefilled, and retires what finished) and preemption (when a running
 * sequence needs a block and none is free, the most recently admitted sequence gives
 * its blocks back and is recomputed later: a slowdown, never a crash).
 *
 * Owns: the KV pool, the forward workspace, the thread pool, every request's tokens,
 * sampler and block table, and (in threaded mode) the engine thread.
 * Must not: tokenize, apply chat templates, or decide budgets (callers grant
 * max_new_tokens; the engine only refuses what can never fit). */
#ifndef HR_ENGINE_ENGINE_H
#define HR_ENGINE_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/sampler.h"
#include "model/forward.h"
#include "model/model.h"

typedef struct {
    int32_t ctx_size;         /* tokens one sequence may hold; 0: the model's trained context */
    int32_t parallel;         /* sequences running at once (default 1) */
    uint64_t kv_mem_bytes;    /* pool size; 0: ctx_size x parallel tokens */
    int32_t block_tokens;     /* KV block size (default 16) */
    uint32_t kv_type;         /* f32 (the zero value), f16 or q8_0; the commands default to f16 */
    int32_t max_batch_tokens; /* tokens per forward step (default 512) */
    int32_t n_threads;        /* 0: the cores available */
    bool threaded;            /* run steps on an engine thread; else the caller calls hr_engine_step */
    bool no_prefix_cache;
    bool timing; /* time every forward step by stage (hr_engine_stats' *_timing); for benchmarks */
} hr_engine_config;

typedef enum {
    HR_FINISH_NONE = 0,  /* a token event; more may follow */
    HR_FINISH_LENGTH,    /* max_new_tokens generated */
    HR_FINISH_STOP,      /* the model produced a stop token (not emitted) */
    HR_FINISH_CANCELLED, /* hr_engine_cancel, or the engine shut down */
    HR_FINISH_ERROR,     /* the forward pass failed; the message is in the event */
} hr_finish;

const char *hr_finish_name(hr_finish f);

/* Called on the engine thread (or inside hr_engine_step), never under the engine's
 * lock, so it may submit or cancel. For every generated token: (token, HR_FINISH_NONE).
 * Exactly once at the end: (-1, reason). */
typedef void (*hr_event_fn)(void *ctx, uint64_t id, int32_t token, hr_finish finish, const char *error);

typedef struct {
    const int32_t *prompt; /* copied at submit */
    int32_t n_prompt;
    int32_t max_new_tokens;
    hr_sampling sampling;
    const int32_t *stop_ids; /* extra stop tokens besides the vocabulary's EOS/EOT/BOS; copied */
    int32_t n_stop_ids;
    hr_event_fn on_event;
    void *ctx;
} hr_request;

typedef struct {
    int32_t window;          /* tokens one sequence can hold: min(ctx_size, pool) */
    int32_t blocks_total, blocks_used, blocks_cached, block_tokens;
    int32_t blocks_used_peak;
    int32_t running, waiting;
    uint64_t preemptions, prefix_hit_tokens, steps, tokens_generated, tokens_prefilled;
    uint64_t live_token_slots_sum, allocated_token_slots_sum; /* summed per step: KV utilisation */
    /* With hr_engine_config.timing: steps in which every token was sampled (decode), and
     * the others (some prompt being prefilled). */
    hr_forward_timing decode_timing, prefill_timing;
} hr_engine_stats;

typedef struct hr_engine hr_engine;

hr_status hr_engine_new(hr_engine **out, const hr_model *m, const hr_engine_config *cfg, hr_error *err);
/* Stops the engine thread; outstanding requests end with HR_FINISH_CANCELLED. */
void hr_engine_free(hr_engine *e);

/* Queues a request (FCFS). Refused, with the numbers, when its prompt plus at least one
 * new token (or plus max_new_tokens) can never fit the window, or the sampling
 * parameters are invalid. Thread-safe. */
hr_status hr_engine_submit(hr_engine *e, const hr_request *r, uint64_t *id, hr_error *err);
/* Cancels a request; its blocks are freed at the next step. Thread-safe; unknown ids
 * are ignored. */
void hr_engine_cancel(hr_engine *e, uint64_t id);
/* Non-threaded engines: runs one step. Returns true while requests remain. */
bool hr_engine_step(hr_engine *e);
/* Blocks until every submitted request has finished (threaded engines). */
void hr_engine_wait_idle(hr_engine *e);
void hr_engine_stats_get(hr_engine *e, hr_engine_stats *out);
/* Checks the KV pool's invariants against every live sequence (for tests). */
hr_status hr_engine_check(hr_engine *e, hr_error *err);

#endif
