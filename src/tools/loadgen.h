/* tools/loadgen — the load generator behind `bench`: one process, one libcurl multi
 * handle, up to `concurrency` chat requests in flight, prompt and output lengths drawn
 * from distributions with a seeded generator (same seed, same requests, whatever the
 * timing), a share of them built to overflow the window. Measures time to first token,
 * inter-token latency and end-to-end latency, and counts every outcome.
 *
 * Owns: the transfers in flight and the result's samples (hr_load_result_free).
 * Must not: print (callbacks report progress), or send anything anywhere but the
 * configured endpoint. */
#ifndef HR_TOOLS_LOADGEN_H
#define HR_TOOLS_LOADGEN_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "base/rng.h"
#include "tools/client.h"
#include "tools/dist.h"
#include "tools/probe.h"
#include "tools/stats.h"

enum { HR_LOAD_MAX_CODES = 16, HR_LOAD_MAX_NOTES = 5 };

/* What one interval of a soak run saw. */
typedef struct {
    double t;    /* seconds since the start */
    double span; /* seconds this interval covered */
    int64_t answered, failed, refused, clamped;
    hr_summary e2e;    /* seconds */
    int64_t min_room;  /* the smallest room a headroom object reported; -1: none */
    bool have_metrics; /* the server's /metrics answered with headroom gauges */
    double kv_usage, low_room_total, running, waiting;
} hr_load_interval;

typedef struct {
    int64_t done, total; /* total 0: running for a duration */
    double elapsed, duration;
} hr_load_progress;

typedef struct {
    hr_endpoint ep;
    char model[256];
    hr_prompt_calib calib;
    int64_t window;   /* 0: unknown (no request is built to overflow) */
    int64_t requests; /* 0: run for duration_s */
    double duration_s;
    int concurrency;
    hr_dist *prompt_tokens, *max_tokens;
    double overflow_share; /* this share of requests is built over the window */
    bool stream;
    uint64_t seed;
    double timeout_s;  /* per request */
    double interval_s; /* > 0: on_interval every interval, after scraping /metrics */
    void (*on_progress)(void *ctx, const hr_load_progress *p);
    void (*on_interval)(void *ctx, const hr_load_interval *iv);
    void *cb_ctx;
} hr_load_config;

typedef struct {
    int64_t sent, answered; /* answered: any HTTP status came back */
    int64_t status[600];    /* by HTTP status */
    struct {
        char code[64];
        int64_t count;
    } codes[HR_LOAD_MAX_CODES]; /* error codes, in order of first sight */
    int64_t n_codes, other_codes;
    int64_t planned_over; /* requests whose prompt + max_tokens exceed the window */
    int64_t clamped, truncated, summarized;
    int64_t connection_errors, server_errors, throttled, unexplained;
    int64_t output_tokens, prompt_tokens; /* summed from the usage of answered requests */
    int64_t min_room;                     /* -1: no headroom object seen */
    hr_samples ttft, itl, e2e;            /* seconds; ttft and itl only when streaming */
    double wall_s;
    char notes[HR_LOAD_MAX_NOTES][512]; /* the first unexplained failures, one sentence each */
    int n_notes;
} hr_load_result;

/* Builds request i's lengths: a prompt of *units repetitions and *max_tokens. Pure: the
 * same config and seed give the same plan (tests rely on it). */
typedef struct {
    hr_rng rng;
    int64_t index;
} hr_load_planner;

void hr_load_planner_init(hr_load_planner *p, uint64_t seed);
/* Plans the next request; *over says it was built to exceed the window. */
void hr_load_plan_next(hr_load_planner *p, const hr_load_config *cfg, int64_t *units, int64_t *max_tokens, bool *over);

/* Runs the load. Fails only when it cannot start (libcurl); every per-request failure
 * is counted in out. */
hr_status hr_load_run(const hr_load_config *cfg, hr_load_result *out, hr_error *err);
void hr_load_result_free(hr_load_result *r);

/* Failures that make `bench` exit non-zero: 5xx, no answer, unexplained. */
int64_t hr_load_failures(const hr_load_result *r);

#endif
