/* engine/generate — one sequence from prompt ids to generated ids: prefill, then
 * sample and decode until a stop token, the granted length, or the caller says stop.
 *
 * Owns: nothing past the call; the forward state and sampler live only inside it.
 * Must not: decide how many tokens may be generated (the budget does; max_new is a
 * grant) or print anything. */
#ifndef HR_ENGINE_GENERATE_H
#define HR_ENGINE_GENERATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/sampler.h"
#include "model/model.h"

/* Called for every generated token; return false to stop. */
typedef bool (*hr_token_fn)(void *ctx, int32_t token);

typedef enum {
    HR_STOP_LENGTH, /* the granted number of tokens was generated */
    HR_STOP_EOS,    /* the model produced an end-of-sequence token */
    HR_STOP_CALLER, /* the callback returned false */
} hr_stop_reason;

typedef struct {
    int64_t prompt_tokens, generated_tokens;
    double prefill_ms, decode_ms;
    hr_stop_reason stop;
} hr_gen_stats;

const char *hr_stop_reason_name(hr_stop_reason r);

/* Generates up to max_new tokens after prompt (which must not be empty and must leave
 * room: n_prompt + max_new <= window of the model). */
hr_status hr_generate(const hr_model *m, const int32_t *prompt, size_t n_prompt, int32_t max_new,
                      const hr_sampling *sampling, hr_token_fn on_token, void *ctx, hr_gen_stats *stats,
                      hr_error *err);

#endif
