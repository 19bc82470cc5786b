#include "engine/generate.h"

#include <stdlib.h>
#include <time.h>

#include "model/forward.h"

const char *hr_stop_reason_name(hr_stop_reason r) {
    switch (r) {
    case HR_STOP_LENGTH: return "length";
    case HR_STOP_EOS: return "eos";
    case HR_STOP_CALLER: return "stopped";
    }
    return "?";
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A model that emits BOS has begun a new document (llama2.c checkpoints separate their
 * stories that way), so BOS ends generation just as EOS and EOT do. */
static bool is_stop_token(const hr_model *m, int32_t id) {
    const hr_vocab *v = m->vocab;
    return id >= 0 && (id == v->eos_id || id == v->eot_id || id == v->bos_id);
}

hr_status hr_generate(const hr_model *m, const int32_t *prompt, size_t n_prompt, int32_t max_new,
                      const hr_sampling *sampling, hr_token_fn on_token, void *ctx, hr_gen_stats *stats,
                      hr_error *err) {
    *stats = (hr_gen_stats){.prompt_tokens = (int64_t)n_prompt};
    if (n_prompt == 0) return hr_fail(err, HR_ERR_INVALID, "the prompt has no tokens (not even BOS)");
    if (max_new < 0) return hr_fail(err, HR_ERR_INVALID, "max new tokens %d is negative", max_new);
    int64_t total = (int64_t)n_prompt + max_new;
    if (total > m->hp.n_ctx_train)
        return hr_fail(err, HR_ERR_RANGE, "%zu prompt + %d new tokens exceed the model's %d-token window",
                       n_prompt, max_new, m->hp.n_ctx_train);
    for (size_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= m->hp.n_vocab)
            return hr_fail(err, HR_ERR_RANGE, "prompt token %zu has id %d, outside the vocabulary (0..%d)", i,
                           prompt[i], m->hp.n_vocab - 1);

    hr_forward_state *fs = NULL;
    hr_sampler *sampler = NULL;
    int32_t *seq = malloc((size_t)total * sizeof *seq);
    if (!seq) return hr_fail(err, HR_ERR_NOMEM, "out of memory for %lld tokens", (long long)total);
    hr_status st = hr_forward_state_new(&fs, m, (int32_t)total, err);
    if (st == HR_OK) st = hr_sampler_new(&sampler, sampling, m->hp.n_vocab, err);
    if (st != HR_OK) goto done;

    for (size_t i = 0; i < n_prompt; i++) seq[i] = prompt[i];
    size_t len = n_prompt;
    double t0 = now_ms();
    const float *logits = NULL;
    for (size_t i = 0; i < n_prompt; i++) logits = hr_forward(m, fs, seq[i], (int32_t)i);
    double t1 = now_ms();
    stats->prefill_ms = t1 - t0;
    stats->stop = HR_STOP_LENGTH;
    for (int32_t n = 0; n < max_new; n++) {
        /* The sampler may penalise logits in place; they are rewritten by the next forward. */
        int32_t next = hr_sampler_pick(sampler, (float *)logits, seq, len);
        if (is_stop_token(m, next)) {
            stats->stop = HR_STOP_EOS;
            break;
        }
        seq[len++] = next;
        stats->generated_tokens++;
        if (on_token && !on_token(ctx, next)) {
            stats->stop = HR_STOP_CALLER;
            break;
        }
        /* The last granted token needs no forward pass: nothing will be sampled after it. */
        if (n + 1 < max_new) logits = hr_forward(m, fs, next, (int32_t)len - 1);
    }
    stats->decode_ms = now_ms() - t1;
done:
    hr_sampler_free(sampler);
    hr_forward_state_free(fs);
    free(seq);
    return st;
}
