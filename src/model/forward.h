/* model/forward — the llama forward pass over a batch of tokens from many sequences at
 * different positions: embedding, RMSNorm, RoPE, grouped-query attention that reads
 * K/V through each sequence's block table, SwiGLU, classifier.
 *
 * Owns: hr_forward_ws, the activation buffers for batches of up to max_tokens tokens,
 * allocated once by hr_forward_ws_new.
 * Must not: allocate per step, choose which tokens to run (the scheduler does), or
 * reserve KV blocks (the caller has made every written position writable). */
#ifndef HR_MODEL_FORWARD_H
#define HR_MODEL_FORWARD_H

#include "kernels/threadpool.h"
#include "kv/kv_cache.h"
#include "model/model.h"

typedef struct hr_forward_ws hr_forward_ws;

/* max_tokens: tokens per batch; max_ctx: the longest sequence attention will read;
 * pool: the threads the batches will run on (NULL: the caller's thread). */
hr_status hr_forward_ws_new(hr_forward_ws **out, const hr_model *m, int32_t max_tokens, int32_t max_ctx,
                            hr_pool *pool, hr_error *err);
void hr_forward_ws_free(hr_forward_ws *ws);

typedef struct {
    int32_t n_tokens;
    const int32_t *tokens;      /* [n_tokens] */
    const int32_t *pos;         /* [n_tokens] position of each token in its sequence */
    hr_kv_seq *const *seqs;     /* [n_tokens] the sequence each token belongs to */
    const bool *want_logits;    /* [n_tokens] whether this token's logits are needed */
} hr_batch;

/* Where forward steps spent their wall time, summed over the steps run while timing
 * was on: the matmuls (classifier included), attention, and the rest (embedding, norms,
 * RoPE, KV stores, SwiGLU); with the multiply-adds the matmuls did and the bytes of K/V
 * attention read, so rates can be derived. */
typedef struct {
    uint64_t steps, tokens;
    double total_ms, matmul_ms, attention_ms, other_ms;
    uint64_t matmul_macs, kv_bytes;
} hr_forward_timing;

/* Adds every following step's times into *into (NULL: stops timing; the default). The
 * caller owns *into and may switch it between steps, e.g. by kind of step. Timing reads
 * the clock a few times per layer: meant for benchmarks, not left on in serving. */
void hr_forward_ws_set_timing(hr_forward_ws *ws, hr_forward_timing *into);
void hr_forward_timing_add(hr_forward_timing *into, const hr_forward_timing *t);

/* A stage table's column heads, and one row of per-step averages and rates for t, as the
 * benchmarks print them after a label. */
extern const char HR_FORWARD_TIMING_HEADS[];
void hr_forward_timing_row(const hr_forward_timing *t, char *buf, size_t size);

/* Runs the batch: writes every token's K/V at its position and fills one logits row
 * (n_vocab floats) per token that wants them, in batch order. Within a sequence, tokens must be in
 * position order; a token attends to every earlier position of its sequence, including
 * those written by this same batch. */
hr_status hr_forward_batch(const hr_model *m, hr_forward_ws *ws, hr_kv_pool *kv, hr_pool *pool, const hr_batch *b,
                           float *logits, hr_error *err);

#endif
