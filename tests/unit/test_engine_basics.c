/* Sampler, budget and SentencePiece tokenizer behaviour that callers depend on. */
#include <math.h>
#include <stdlib.h>

#include "budget/budget.h"
#include "engine/sampler.h"
#include "test.h"
#include "tokenizer/tokenize.h"

HR_TEST(sampler_greedy_takes_lowest_id_on_ties) {
    float logits[5] = {0.5f, 2.0f, -1.0f, 2.0f, 1.0f};
    HR_CHECK_EQ_INT(hr_argmax(logits, 5), 1);
    hr_sampling p = hr_sampling_default();
    p.temperature = 0.0f;
    hr_sampler *s;
    hr_error err = {0};
    HR_CHECK_OK(hr_sampler_new(&s, &p, 5, &err), &err);
    int32_t pick = hr_sampler_pick(s, logits, NULL, 0);
    hr_sampler_free(s);
    HR_CHECK_EQ_INT(pick, 1);
}

/* The blocked argmax against one plain scan, over lengths around its 16-wide blocks, the
 * maximum (tied or not) in every position, NaNs anywhere (never chosen, unless first),
 * and infinities. */
HR_TEST(sampler_argmax_matches_a_plain_scan) {
    enum { N = 70 };
    float x[N];
    int checked = 0;
    for (int n = 1; n <= N; n += (n < 20 ? 1 : 7))
        for (int at = 0; at < n; at++)
            for (int variant = 0; variant < 5; variant++) {
                for (int i = 0; i < n; i++) x[i] = (float)((i * 37 + 11) % 23) - 11.0f;
                x[at] = variant == 4 ? INFINITY : 50.0f;
                if (variant == 1) x[(at * 5 + 3) % n] = 50.0f;       /* a tie somewhere */
                if (variant == 2) x[(at + 1) % n] = NAN;             /* a NaN next to it */
                if (variant == 3) x[0] = NAN;                        /* a NaN first wins by default */
                if (variant == 4 && n > 1) x[(at + 2) % n] = -INFINITY;
                int32_t want = 0;
                for (int32_t i = 1; i < n; i++)
                    if (x[i] > x[want]) want = i;
                int32_t got = hr_argmax(x, n);
                HR_CHECKF(got == want, "n=%d at=%d variant %d: argmax %d, a plain scan %d", n, at, variant, got, want);
                checked++;
            }
    HR_CHECK(checked > 1000);
}

/* Draws many samples from logits and returns how often each id came up. */
static void histogram(hr_sampling p, const float *logits, int n, int draws, int *counts) {
    hr_sampler *s;
    hr_error err = {0};
    if (hr_sampler_new(&s, &p, n, &err) != HR_OK) return;
    float *work = malloc((size_t)n * sizeof *work);
    for (int d = 0; d < draws; d++) {
        memcpy(work, logits, (size_t)n * sizeof *work);
        counts[hr_sampler_pick(s, work, NULL, 0)]++;
    }
    free(work);
    hr_sampler_free(s);
}

HR_TEST(sampler_follows_softmax_and_filters) {
    float logits[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    hr_sampling p = {.temperature = 1.0f, .top_p = 1.0f, .repeat_penalty = 1.0f, .seed = 3};
    int counts[4] = {0};
    histogram(p, logits, 4, 20000, counts);
    HR_CHECKF(fabs(counts[0] / 20000.0 - 0.5) < 0.02 && fabs(counts[3] / 20000.0 - 0.05) < 0.01,
              "frequencies %d %d %d %d do not follow 0.5/0.3/0.15/0.05", counts[0], counts[1], counts[2], counts[3]);
    int k2[4] = {0};
    p.top_k = 2;
    histogram(p, logits, 4, 5000, k2);
    HR_CHECKF(k2[2] == 0 && k2[3] == 0 && k2[0] > 0 && k2[1] > 0, "top-k 2 drew %d %d %d %d", k2[0], k2[1], k2[2], k2[3]);
    int tp[4] = {0};
    p.top_k = 0;
    p.top_p = 0.7f; /* 0.5 + 0.3 reaches it */
    histogram(p, logits, 4, 5000, tp);
    HR_CHECKF(tp[2] == 0 && tp[3] == 0, "top-p 0.7 drew %d %d %d %d", tp[0], tp[1], tp[2], tp[3]);
    int mp[4] = {0};
    p.top_p = 1.0f;
    p.min_p = 0.2f; /* keeps p >= 0.1 */
    histogram(p, logits, 4, 5000, mp);
    HR_CHECKF(mp[2] > 0 && mp[3] == 0, "min-p 0.2 drew %d %d %d %d", mp[0], mp[1], mp[2], mp[3]);
}

HR_TEST(sampler_repeat_penalty_lowers_recent_tokens) {
    float logits[3] = {2.0f, 1.9f, -1.0f};
    hr_sampling p = hr_sampling_default();
    p.temperature = 0.0f;
    p.repeat_penalty = 1.5f;
    hr_sampler *s;
    hr_error err = {0};
    HR_CHECK_OK(hr_sampler_new(&s, &p, 3, &err), &err);
    int32_t recent[2] = {0, 0};
    int32_t pick = hr_sampler_pick(s, logits, recent, 2);
    hr_sampler_free(s);
    HR_CHECK_EQ_INT(pick, 1);
    HR_CHECKF(fabsf(logits[0] - 2.0f / 1.5f) < 1e-6f, "token 0 penalised to %g (once, not twice)", (double)logits[0]);
}

HR_TEST(sampler_refuses_bad_parameters) {
    hr_error err = {0};
    hr_sampling p = hr_sampling_default();
    p.temperature = NAN;
    HR_CHECK_EQ_INT(hr_sampling_validate(&p, &err), HR_ERR_RANGE);
    HR_CHECK(strstr(err.msg, "temperature") != NULL);
    p = hr_sampling_default();
    p.top_p = 1.5f;
    HR_CHECK_EQ_INT(hr_sampling_validate(&p, &err), HR_ERR_RANGE);
    p = hr_sampling_default();
    p.top_k = -1;
    HR_CHECK_EQ_INT(hr_sampling_validate(&p, &err), HR_ERR_RANGE);
    p = hr_sampling_default();
    p.repeat_penalty = 0.0f;
    HR_CHECK_EQ_INT(hr_sampling_validate(&p, &err), HR_ERR_RANGE);
}

HR_TEST(budget_clamps_rejects_and_states_the_numbers) {
    hr_error err = {0};
    hr_budget b = {.window = 4096, .prompt_tokens = 4000, .max_tokens_requested = 512};
    HR_CHECK_OK(hr_budget_apply(&b, &err), &err);
    HR_CHECK_EQ_INT(b.room, 96);
    HR_CHECK_EQ_INT(b.max_tokens_granted, 96);
    b.policy = HR_POLICY_REJECT;
    HR_CHECK_EQ_INT(hr_budget_apply(&b, &err), HR_ERR_RANGE);
    HR_CHECKF(strstr(err.msg, "4512 tokens (4000 prompt + 512 to generate)") && strstr(err.msg, "window is 4096") &&
                  strstr(err.msg, "room for 96"),
              "message: %s", err.msg);
    b = (hr_budget){.window = 100, .prompt_tokens = 100, .max_tokens_requested = 1};
    HR_CHECK_EQ_INT(hr_budget_apply(&b, &err), HR_ERR_RANGE);
    HR_CHECKF(strstr(err.msg, "100 tokens of a 100-token window"), "message: %s", err.msg);
    b = (hr_budget){.window = 100, .prompt_tokens = 90, .max_tokens_requested = 5, .min_room = 20};
    HR_CHECK_EQ_INT(hr_budget_apply(&b, &err), HR_ERR_RANGE);
    /* With no room left the advice is to shorten the prompt, never "lower max tokens to 0". */
    b = (hr_budget){.window = 512, .prompt_tokens = 512, .max_tokens_requested = 1, .policy = HR_POLICY_REJECT};
    HR_CHECK_EQ_INT(hr_budget_apply(&b, &err), HR_ERR_RANGE);
    HR_CHECKF(strstr(err.msg, "513 tokens (512 prompt + 1 to generate)") && strstr(err.msg, "shorten the prompt by 1 token") &&
                  !strstr(err.msg, "max tokens to 0"),
              "message: %s", err.msg);
    b = (hr_budget){.window = 512, .prompt_tokens = 800, .max_tokens_requested = 0, .policy = HR_POLICY_REJECT};
    HR_CHECK_EQ_INT(hr_budget_apply(&b, &err), HR_ERR_RANGE);
    HR_CHECKF(strstr(err.msg, "800 tokens of a 512-token window") && strstr(err.msg, "shorten the prompt by 289 tokens"),
              "message: %s", err.msg);
    b = (hr_budget){.window = 100, .prompt_tokens = 10, .max_tokens_requested = -1};
    HR_CHECK_EQ_INT(hr_budget_apply(&b, &err), HR_ERR_INVALID);
}

HR_TEST(spm_tok512_encodes_like_llama2c) {
    HR_ASSET(tok, "models/tok512.bin");
    hr_vocab *v;
    hr_error err = {0};
    HR_CHECK_OK(hr_vocab_from_llama2c(&v, tok, 512, &err), &err);
    hr_tokens ids = {0};
    hr_status st = hr_tok_encode(v, "Once upon a time", 16, HR_TOK_ADD_SPECIAL, &ids, &err);
    /* BOS, then pieces; their texts must concatenate back to the prompt. */
    char text[256] = "";
    size_t len = 0;
    for (size_t i = 1; st == HR_OK && i < ids.count; i++)
        len += hr_tok_piece_after(v, ids.ids[i - 1], ids.ids[i], text + len, sizeof text - len - 1);
    size_t count = ids.count;
    int32_t first = ids.count ? ids.ids[0] : -1;
    hr_tokens_free(&ids);
    hr_tokens invalid = {0};
    hr_status st2 = hr_tok_encode(v, "\xff\xfe ok \xe2\x82", 8, 0, &invalid, &err);
    size_t n_invalid = invalid.count;
    hr_tokens_free(&invalid);
    hr_vocab_free(v);
    HR_CHECK_OK(st, &err);
    HR_CHECK_EQ_INT(first, 1);
    HR_CHECK_EQ_INT(count, 5);
    HR_CHECKF(len == 16 && memcmp(text, "Once upon a time", 16) == 0, "decoded '%.*s'", (int)len, text);
    HR_CHECK_OK(st2, &err);
    HR_CHECKF(n_invalid >= 5, "invalid UTF-8 gave %zu ids", n_invalid);
}
