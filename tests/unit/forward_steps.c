#include "forward_steps.h"

#include "kernels/threadpool.h"
#include "kv/kv_cache.h"
#include "model/forward.h"

hr_status forward_steps(const hr_model *m, int n_threads, uint32_t kv_type, const int32_t *tokens, int32_t n_tokens,
                        float *logits, hr_error *err) {
    if (n_tokens > 128) return hr_fail(err, HR_ERR_RANGE, "forward_steps runs at most 128 tokens");
    hr_kv_config c = {.n_layer = m->hp.n_layer, .kv_dim = m->hp.n_head_kv * m->hp.head_dim,
                      .head_dim = m->hp.head_dim, .block_tokens = 16, .n_blocks = 8, .type = kv_type};
    hr_kv_pool *kv = NULL;
    hr_pool *pool = NULL;
    hr_forward_ws *ws = NULL;
    hr_kv_seq seq = {0};
    hr_status st = hr_kv_pool_new(&kv, &c, err);
    if (st == HR_OK) st = hr_pool_new(&pool, n_threads, err);
    if (st == HR_OK) st = hr_forward_ws_new(&ws, m, 1, 128, pool, err);
    if (st == HR_OK) st = hr_kv_seq_init(&seq, kv, 128, err);
    for (int32_t i = 0; st == HR_OK && i < n_tokens; i++) {
        st = hr_kv_seq_reserve(kv, &seq, 1, err);
        hr_kv_seq *seqs[1] = {&seq};
        bool want = true;
        hr_batch batch = {.n_tokens = 1, .tokens = &tokens[i], .pos = &i, .seqs = seqs, .want_logits = &want};
        if (st == HR_OK) st = hr_forward_batch(m, ws, kv, pool, &batch, logits + (size_t)i * m->hp.n_vocab, err);
        if (st == HR_OK) hr_kv_seq_commit(kv, &seq, tokens, i + 1);
    }
    if (kv) hr_kv_seq_free(kv, &seq);
    hr_forward_ws_free(ws);
    hr_pool_free(pool);
    hr_kv_pool_free(kv);
    return st;
}

