/* budget/budget — the arithmetic at the heart of headroom: given the window, the
 * prompt's length and the tokens asked for, how many may be generated, or why none.
 *
 * room = window - prompt_len. Under "clamp" the grant is min(requested, room) and the
 * request is refused only when room < min_room; under "reject" any request whose
 * prompt_len + requested exceeds the window is refused. Refusals carry every number.
 * Must not: tokenize or touch the engine; callers count first, then ask. */
#ifndef HR_BUDGET_BUDGET_H
#define HR_BUDGET_BUDGET_H

#include <stdint.h>

#include "base/error.h"

/* reject and clamp are decided here; truncate and summarize change the prompt first
 * (budget/fit) and then clamp. */
typedef enum { HR_POLICY_CLAMP, HR_POLICY_REJECT, HR_POLICY_TRUNCATE, HR_POLICY_SUMMARIZE } hr_policy;

typedef struct {
    int64_t window;          /* tokens the sequence may hold in all */
    int64_t prompt_tokens;
    int64_t max_tokens_requested;
    int64_t max_tokens_granted; /* filled by hr_budget_apply */
    int64_t room;               /* window - prompt_tokens, filled by hr_budget_apply */
    hr_policy policy;
    int64_t min_room;           /* clamp refuses below this (at least 1) */
} hr_budget;

const char *hr_policy_name(hr_policy p);
hr_status hr_policy_from_name(const char *name, hr_policy *out, hr_error *err);

/* Fills room and max_tokens_granted, or fails with HR_ERR_RANGE and a message that
 * states the window, prompt tokens, requested tokens, room, and what to do. */
hr_status hr_budget_apply(hr_budget *b, hr_error *err);

#endif
