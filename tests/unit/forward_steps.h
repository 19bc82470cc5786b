/* Test helper: runs tokens one at a time through hr_forward_batch (one sequence, a fresh
 * KV pool of kv_type on a pool of n_threads) and keeps every step's logits. */
#ifndef HR_TESTS_FORWARD_STEPS_H
#define HR_TESTS_FORWARD_STEPS_H

#include "model/model.h"

/* logits: n_tokens x n_vocab floats. n_tokens <= 128. */
hr_status forward_steps(const hr_model *m, int n_threads, uint32_t kv_type, const int32_t *tokens, int32_t n_tokens,
                        float *logits, hr_error *err);

#endif
