/* model/forward — the llama forward pass for one sequence, one token at a time:
 * embedding, RMSNorm, RoPE, grouped-query attention, SwiGLU, classifier.
 *
 * Owns: hr_forward_state, every buffer one sequence needs (activations and a
 * contiguous KV cache of n_ctx positions), allocated once by hr_forward_state_new.
 * Must not: allocate per token, sample, or know about requests. */
#ifndef HR_MODEL_FORWARD_H
#define HR_MODEL_FORWARD_H

#include "model/model.h"

typedef struct {
    int32_t n_ctx;       /* positions the KV cache holds */
    float *x, *xb, *xb2; /* residual stream and scratch, n_embd each */
    float *q;            /* n_head * head_dim */
    float *k, *v;        /* views into the caches at the current position */
    float *hb, *hb2;     /* n_ff each */
    float *att;          /* n_head * n_ctx attention scores */
    float *logits;       /* n_vocab */
    float *key_cache, *value_cache; /* n_layer * n_ctx * kv_dim */
    float *rope_inv_freq; /* n_rot / 2 inverse frequencies */
} hr_forward_state;

hr_status hr_forward_state_new(hr_forward_state **out, const hr_model *m, int32_t n_ctx, hr_error *err);
void hr_forward_state_free(hr_forward_state *s);

/* Runs token at position pos (0 <= pos < n_ctx; the caller's budget guarantees it) and
 * returns the logits, valid until the next call. Returns NULL for an out-of-range token
 * or position, so a caller bug cannot write outside the cache. */
const float *hr_forward(const hr_model *m, hr_forward_state *s, int32_t token, int32_t pos);

#endif
