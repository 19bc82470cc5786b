#include "budget/budget.h"

#include <stdio.h>
#include <string.h>

static const char *const POLICY_NAMES[] = {"clamp", "reject", "truncate", "summarize"};

const char *hr_policy_name(hr_policy p) { return (unsigned)p < 4 ? POLICY_NAMES[p] : "clamp"; }

hr_status hr_policy_from_name(const char *name, hr_policy *out, hr_error *err) {
    for (int i = 0; i < 4; i++)
        if (strcmp(name, POLICY_NAMES[i]) == 0) {
            *out = (hr_policy)i;
            return HR_OK;
        }
    return hr_fail(err, HR_ERR_INVALID, "unknown context policy '%s' (known: clamp, reject, truncate, summarize)",
                   name);
}

hr_status hr_budget_apply(hr_budget *b, hr_error *err) {
    if (b->window <= 0 || b->prompt_tokens < 0 || b->max_tokens_requested < 0)
        return hr_fail(err, HR_ERR_INVALID, "budget: window %lld, prompt %lld and max tokens %lld must not be negative",
                       (long long)b->window, (long long)b->prompt_tokens, (long long)b->max_tokens_requested);
    int64_t min_room = b->min_room > 0 ? b->min_room : 1;
    b->room = b->window - b->prompt_tokens;
    b->max_tokens_granted = 0;
    if (b->policy == HR_POLICY_REJECT && b->max_tokens_requested > b->room && b->max_tokens_requested > 0) {
        /* With no room left, lowering max tokens cannot help (to 0 would name a value no
         * API accepts): the prompt must shrink. */
        int64_t over = b->prompt_tokens + b->max_tokens_requested - b->window;
        char fix[96];
        if (b->room >= min_room)
            snprintf(fix, sizeof fix, "lower max tokens to %lld or shorten the prompt", (long long)b->room);
        else
            snprintf(fix, sizeof fix, "shorten the prompt by %lld token%s", (long long)over, over == 1 ? "" : "s");
        return hr_fail(err, HR_ERR_RANGE,
                       "this request needs %lld tokens (%lld prompt + %lld to generate) but the window is %lld "
                       "tokens, leaving room for %lld; %s",
                       (long long)(b->prompt_tokens + b->max_tokens_requested), (long long)b->prompt_tokens,
                       (long long)b->max_tokens_requested, (long long)b->window,
                       (long long)(b->room > 0 ? b->room : 0), fix);
    }
    if (b->room < min_room)
        return hr_fail(err, HR_ERR_RANGE,
                       "the prompt takes %lld tokens of a %lld-token window, leaving room for %lld "
                       "(at least %lld needed to generate); shorten the prompt by %lld token%s or use a longer window",
                       (long long)b->prompt_tokens, (long long)b->window, (long long)(b->room > 0 ? b->room : 0),
                       (long long)min_room, (long long)(min_room - b->room), min_room - b->room == 1 ? "" : "s");
    b->max_tokens_granted = b->max_tokens_requested < b->room ? b->max_tokens_requested : b->room;
    return HR_OK;
}
