/* budget/fit — makes a request fit its window by the caller's policy, counting with the
 * model's own tokenizer on the fully rendered prompt:
 *   reject    refuse when prompt + max_tokens exceeds the window;
 *   clamp     grant min(max_tokens, room); refuse only when room < min_room;
 *   truncate  drop the fewest oldest exchanges (a user turn and the replies up to the
 *             next; the system prompt and the newest user turn stay) that make prompt +
 *             min_room fit, found by binary search so a long conversation costs a few
 *             renders; a single oversized message is cut from its start, between
 *             characters; a plain prompt is cut from the left; then clamp;
 *   summarize like truncate, but the dropped turns come back as one short state message
 *             (and more exchanges go to make room for it); when no number of them does,
 *             or the template refuses the message, it does what truncate does.
 *
 * Owns: the token ids of the prompt it settles on (hr_fit_result_free).
 * Must not: render templates or generate text itself: the caller passes a renderer and
 * a summarizer, so this file stays about arithmetic and choices. */
#ifndef HR_BUDGET_FIT_H
#define HR_BUDGET_FIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/strbuf.h"
#include "budget/budget.h"
#include "tokenizer/tokenize.h"

/* Renders messages (a JSON array of {role, content}) into prompt text. */
typedef hr_status (*hr_render_fn)(void *ctx, const json_t *messages, hr_strbuf *out, hr_error *err);
/* Writes a short summary of text into out (may fail; an extractive summary is used then). */
typedef hr_status (*hr_summarize_fn)(void *ctx, const char *text, hr_strbuf *out, hr_error *err);

typedef struct {
    const hr_vocab *vocab;
    unsigned encode_flags;     /* how the rendered prompt is tokenized */
    hr_policy policy;
    int64_t window, min_room;
    int64_t max_tokens;        /* < 0: not given, which asks for all the room */
    hr_render_fn render;
    hr_summarize_fn summarize;
    void *ctx;
} hr_fit_request;

typedef struct {
    hr_tokens prompt;          /* what will be sent to the engine */
    hr_budget budget;          /* window, prompt_tokens, requested, granted, room */
    int messages_dropped;
    bool message_cut;          /* a single message was shortened from its start */
    bool summarized;
} hr_fit_result;

/* Chat: messages is modified in place (turns dropped, summary inserted, text cut).
 * Failure HR_ERR_RANGE means it cannot fit: err holds the sentence for the client. */
hr_status hr_fit_chat(const hr_fit_request *req, json_t *messages, hr_fit_result *res, hr_error *err);
/* Plain prompt. */
hr_status hr_fit_text(const hr_fit_request *req, const char *text, size_t len, hr_fit_result *res, hr_error *err);
/* A prompt given as token ids (copied). */
hr_status hr_fit_tokens(const hr_fit_request *req, const int32_t *ids, size_t n, hr_fit_result *res, hr_error *err);
void hr_fit_result_free(hr_fit_result *res);

#endif
