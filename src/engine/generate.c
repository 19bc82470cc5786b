#include "engine/generate.h"

#include "base/clock.h"
#include "engine/engine.h"
#include "formats/ggml_type.h"

const char *hr_stop_reason_name(hr_stop_reason r) {
    switch (r) {
    case HR_STOP_LENGTH: return "length";
    case HR_STOP_EOS: return "eos";
    case HR_STOP_CALLER: return "stopped";
    }
    return "?";
}

typedef struct {
    hr_engine *engine;
    hr_token_fn on_token;
    void *ctx;
    hr_gen_stats *stats;
    double t_start, t_first, t_last;
    hr_finish finish;
    bool stopped_by_caller;
} generation;

static void on_event(void *ctx, uint64_t id, int32_t token, hr_finish finish, const char *error) {
    generation *g = ctx;
    (void)error;
    if (finish != HR_FINISH_NONE) {
        g->finish = finish;
        return;
    }
    g->t_last = hr_now_ms();
    if (g->stats->generated_tokens++ == 0) g->t_first = g->t_last;
    if (g->on_token && !g->on_token(g->ctx, token)) {
        g->stopped_by_caller = true;
        hr_engine_cancel(g->engine, id);
    }
}

hr_status hr_generate(const hr_model *m, const int32_t *prompt, size_t n_prompt, int32_t max_new,
                      const hr_sampling *sampling, hr_token_fn on_token, void *ctx, hr_gen_stats *stats,
                      hr_error *err) {
    *stats = (hr_gen_stats){.prompt_tokens = (int64_t)n_prompt};
    if (n_prompt == 0) return hr_fail(err, HR_ERR_INVALID, "the prompt has no tokens (not even BOS)");
    if (max_new < 0) return hr_fail(err, HR_ERR_INVALID, "max new tokens %d is negative", max_new);
    if ((int64_t)n_prompt + max_new > m->hp.n_ctx_train)
        return hr_fail(err, HR_ERR_RANGE, "%zu prompt + %d new tokens exceed the model's %d-token window", n_prompt,
                       max_new, m->hp.n_ctx_train);
    if (max_new == 0) return HR_OK;
    hr_engine_config cfg = {.ctx_size = (int32_t)n_prompt + max_new, .parallel = 1, .kv_type = HR_TYPE_F32};
    generation g = {.on_token = on_token, .ctx = ctx, .stats = stats};
    if (hr_engine_new(&g.engine, m, &cfg, err) != HR_OK) return err->status;
    hr_request req = {.prompt = prompt, .n_prompt = (int32_t)n_prompt, .max_new_tokens = max_new,
                      .sampling = *sampling, .on_event = on_event, .ctx = &g};
    g.t_start = hr_now_ms();
    hr_status st = hr_engine_submit(g.engine, &req, NULL, err);
    if (st == HR_OK) hr_engine_wait_idle(g.engine);
    hr_engine_free(g.engine);
    if (st != HR_OK) return st;
    if (g.finish == HR_FINISH_ERROR) return hr_fail(err, HR_ERR_INVALID, "the forward pass failed");
    stats->stop = g.stopped_by_caller ? HR_STOP_CALLER : g.finish == HR_FINISH_STOP ? HR_STOP_EOS : HR_STOP_LENGTH;
    if (stats->generated_tokens > 0) {
        stats->prefill_ms = g.t_first - g.t_start;
        stats->decode_ms = g.t_last - g.t_first;
    }
    return HR_OK;
}
