/* tools/probe — finds the real length cap of any OpenAI-compatible server empirically,
 * the seed's "small test": synthetic prompts of known length (a word repeated,
 * calibrated against the server's own usage.prompt_tokens), a search on the prompt
 * length with max_tokens 1, one request over the cap to see whether the server clamps
 * or refuses, and (when it refuses) a search on max_tokens for a fixed prompt. Used by
 * `probe`, `doctor --url` and, for calibration, `bench`.
 *
 * Owns: nothing beyond the session's counters.
 * Must not: exceed the session's request budget or deadline, or send anything but chat
 * completions to the session's endpoint. */
#ifndef HR_TOOLS_PROBE_H
#define HR_TOOLS_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/strbuf.h"
#include "tools/client.h"

typedef void (*hr_probe_log_fn)(void *ctx, const char *line);

typedef struct {
    hr_endpoint ep;
    char model[256];
    int max_requests;    /* budget */
    double deadline;     /* hr_now() after which nothing is sent */
    int requests;        /* sent so far */
    hr_probe_log_fn log; /* one line per request; may be NULL */
    void *log_ctx;
} hr_probe_session;

/* A synthetic prompt: `unit` repeated, separated by spaces, costs
 * overhead + per_unit x repetitions tokens once templated. */
typedef struct {
    char unit[16];
    int64_t overhead, per_unit;
    int64_t accepted_units; /* a repetition count the server accepted whole while calibrating */
} hr_prompt_calib;

/* Learns overhead and per_unit from two requests with max_tokens 1, trying a few words
 * until one is linear. Fails when the server reports no usage.prompt_tokens. */
hr_status hr_prompt_calibrate(hr_probe_session *s, hr_prompt_calib *out, hr_error *err);
void hr_prompt_text(const hr_prompt_calib *c, int64_t units, hr_strbuf *out);
int64_t hr_prompt_tokens(const hr_prompt_calib *c, int64_t units);
/* The most repetitions whose prompt takes at most `tokens` (at least 1). */
int64_t hr_prompt_units(const hr_prompt_calib *c, int64_t tokens);

/* One chat request of `units` repetitions. HR_ERR_RANGE when the request budget or the
 * deadline is spent; HR_ERR_IO when the server did not answer. */
hr_status hr_probe_send(hr_probe_session *s, const hr_prompt_calib *c, int64_t units, int64_t max_tokens,
                        hr_chat_answer *out, hr_error *err);

/* An error at a boundary: "code: message", as the server wrote them. */
enum { HR_PROBE_ERROR_CAP = 64 + 2 + 512 };

typedef enum {
    HR_CLAMP_UNKNOWN,  /* not tested (the search stopped first) */
    HR_CLAMP_REFUSED,  /* over the cap: refused */
    HR_CLAMP_REPORTED, /* over the cap: accepted with max_tokens lowered, and the answer says so */
    HR_CLAMP_SILENT,   /* over the cap: accepted, fewer tokens, nothing in the answer says why */
    HR_CLAMP_FULL,     /* over the prompt cap: accepted and every token generated */
} hr_clamp_kind;

typedef struct {
    hr_prompt_calib calib;
    int64_t advertised; /* the window /v1/models states (0: none) */

    /* the prompt search, max_tokens 1 */
    int64_t prompt_ok;      /* actual tokens of the largest prompt accepted whole */
    int64_t prompt_refused; /* predicted tokens of the smallest prompt refused (0: none) */
    long prompt_status;
    char prompt_error[HR_PROBE_ERROR_CAP];
    bool prompt_truncated; /* a prompt was accepted but counted shorter than sent */
    int64_t truncated_sent, truncated_counted;

    /* one request over the cap */
    hr_clamp_kind clamp_first; /* what that request showed */
    hr_clamp_kind clamp;       /* how the server treats what does not fit, all requests told */
    int64_t clamp_prompt, clamp_asked, clamp_granted, clamp_generated;
    long clamp_status;
    char clamp_finish[24], clamp_error[HR_PROBE_ERROR_CAP];

    /* the max_tokens search on a fixed prompt (when the server refuses) */
    int64_t fixed_prompt, max_ok, max_refused;
    long max_status;
    char max_error[HR_PROBE_ERROR_CAP];

    int64_t total_ok;  /* the largest prompt + max_tokens accepted without clamping */
    char stopped[512]; /* why the search ended early, "" when it did not */
    int requests;
} hr_probe_result;

/* Runs the whole probe. Returns HR_OK with a partial result (stopped says why) when the
 * budget or deadline ran out or the server stopped answering after calibration. */
hr_status hr_probe_run(hr_probe_session *s, hr_probe_result *out, hr_error *err);

const char *hr_clamp_kind_name(hr_clamp_kind k);
/* One sentence: the largest total accepted (or the bounds found) and what happens over it. */
void hr_probe_summary(const hr_probe_result *r, char *buf, size_t cap);

#endif
