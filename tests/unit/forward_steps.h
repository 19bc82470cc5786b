/* Test helpers: run tokens of one sequence through hr_forward_batch (a fresh KV pool of
 * kv_type on a pool of n_threads) and keep every token's logits — one token per step, or
 * all of them as one batch (a prompt chunk). */
#ifndef HR_TESTS_FORWARD_STEPS_H
#define HR_TESTS_FORWARD_STEPS_H

#include "model/model.h"

/* logits: n_tokens x n_vocab floats. n_tokens <= 128. */
hr_status forward_steps(const hr_model *m, int n_threads, uint32_t kv_type, const int32_t *tokens, int32_t n_tokens,
                        float *logits, hr_error *err);
/* The same tokens as one batch, on a workspace reading up to max_ctx positions. */
hr_status forward_chunk(const hr_model *m, int n_threads, uint32_t kv_type, int32_t max_ctx, const int32_t *tokens,
                        int32_t n_tokens, float *logits, hr_error *err);

#endif
