#include "forward_steps.h"

#include "kernels/threadpool.h"
#include "kv/kv_cache.h"
#include "model/forward.h"

enum { MAX_TOKENS = 128 };

typedef struct {
    hr_kv_pool *kv;
    hr_pool *pool;
    hr_forward_ws *ws;
    hr_kv_seq seq;
} run_ctx;

static void run_free(run_ctx *r) {
    if (r->kv) hr_kv_seq_free(r->kv, &r->seq);
    hr_forward_ws_free(r->ws);
    hr_pool_free(r->pool);
    hr_kv_pool_free(r->kv);
}

/* A KV pool of MAX_TOKENS positions with one sequence, a thread pool and a workspace for
 * batches of max_tokens over max_ctx positions; on failure everything made is freed. */
static hr_status run_new(run_ctx *r, const hr_model *m, int n_threads, uint32_t kv_type, int32_t max_tokens,
                         int32_t max_ctx, int32_t n_tokens, hr_error *err) {
    *r = (run_ctx){0};
    if (n_tokens > MAX_TOKENS) return hr_fail(err, HR_ERR_RANGE, "forward helpers run at most %d tokens", MAX_TOKENS);
    hr_kv_config c = {.n_layer = m->hp.n_layer, .kv_dim = m->hp.n_head_kv * m->hp.head_dim,
                      .head_dim = m->hp.head_dim, .block_tokens = 16, .n_blocks = MAX_TOKENS / 16, .type = kv_type};
    hr_status st = hr_kv_pool_new(&r->kv, &c, err);
    if (st == HR_OK) st = hr_pool_new(&r->pool, n_threads, err);
    if (st == HR_OK) st = hr_forward_ws_new(&r->ws, m, max_tokens, max_ctx, r->pool, err);
    if (st == HR_OK) st = hr_kv_seq_init(&r->seq, r->kv, MAX_TOKENS, err);
    if (st != HR_OK) run_free(r);
    return st;
}

hr_status forward_steps(const hr_model *m, int n_threads, uint32_t kv_type, const int32_t *tokens, int32_t n_tokens,
                        float *logits, hr_error *err) {
    run_ctx r;
    hr_status st = run_new(&r, m, n_threads, kv_type, 1, MAX_TOKENS, n_tokens, err);
    if (st != HR_OK) return st;
    for (int32_t i = 0; st == HR_OK && i < n_tokens; i++) {
        st = hr_kv_seq_reserve(r.kv, &r.seq, 1, err);
        hr_kv_seq *seqs[1] = {&r.seq};
        bool want = true;
        hr_batch batch = {.n_tokens = 1, .tokens = &tokens[i], .pos = &i, .seqs = seqs, .want_logits = &want};
        if (st == HR_OK) st = hr_forward_batch(m, r.ws, r.kv, r.pool, &batch, logits + (size_t)i * m->hp.n_vocab, err);
        if (st == HR_OK) hr_kv_seq_commit(r.kv, &r.seq, tokens, i + 1);
    }
    run_free(&r);
    return st;
}

hr_status forward_chunk(const hr_model *m, int n_threads, uint32_t kv_type, int32_t max_ctx, const int32_t *tokens,
                        int32_t n_tokens, float *logits, hr_error *err) {
    run_ctx r;
    hr_status st = run_new(&r, m, n_threads, kv_type, n_tokens, max_ctx, n_tokens, err);
    if (st != HR_OK) return st;
    int32_t pos[MAX_TOKENS];
    bool want[MAX_TOKENS];
    hr_kv_seq *seqs[MAX_TOKENS];
    for (int32_t i = 0; i < n_tokens; i++) {
        pos[i] = i;
        want[i] = true;
        seqs[i] = &r.seq;
    }
    st = hr_kv_seq_reserve(r.kv, &r.seq, n_tokens, err);
    hr_batch batch = {.n_tokens = n_tokens, .tokens = tokens, .pos = pos, .seqs = seqs, .want_logits = want};
    if (st == HR_OK) st = hr_forward_batch(m, r.ws, r.kv, r.pool, &batch, logits, err);
    run_free(&r);
    return st;
}
