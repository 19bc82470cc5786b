/* Greedy generation of stories260K must equal llama2.c's run.c output byte for byte,
 * for the llama2.c checkpoint and for the reference converter's GGUF. */
#include <stdlib.h>

#include "base/file.h"
#include "engine/generate.h"
#include "test.h"
#include "tokenizer/tokenize.h"

typedef struct {
    const hr_vocab *vocab;
    int32_t prev;
    char *text;
    size_t len, cap;
} render_buf;

static void render(render_buf *r, int32_t id) {
    char piece[512];
    size_t n = hr_tok_piece_after(r->vocab, r->prev, id, piece, sizeof piece);
    if (n > sizeof piece) n = sizeof piece;
    if (r->len + n + 2 > r->cap) {
        r->cap = (r->len + n + 2) * 2;
        r->text = realloc(r->text, r->cap);
    }
    memcpy(r->text + r->len, piece, n);
    r->len += n;
    r->prev = id;
}

static bool collect(void *ctx, int32_t id) {
    render((render_buf *)ctx, id);
    return true;
}

/* Runs every ref/llama2c case on model and compares; returns false after failing t. */
static void check_reference_cases(hr_test_ctx *t, const hr_model *m) {
    hr_sampling greedy = hr_sampling_default();
    greedy.temperature = 0.0f;
    for (int c = 0; c <= 5; c++) {
        char rel[64];
        snprintf(rel, sizeof rel, "ref/llama2c/case%d.prompt", c);
        HR_ASSET(prompt_path, rel);
        snprintf(rel, sizeof rel, "ref/llama2c/case%d.txt", c);
        HR_ASSET(expected_path, rel);
        hr_error err = {0};
        char *prompt, *expected;
        size_t prompt_len, expected_len;
        HR_CHECK_OK(hr_file_read_all(prompt_path, &prompt, &prompt_len, &err), &err);
        HR_CHECK_OK(hr_file_read_all(expected_path, &expected, &expected_len, &err), &err);
        hr_tokens toks = {0};
        hr_status st = hr_tok_encode(m->vocab, prompt, prompt_len, HR_TOK_ADD_SPECIAL, &toks, &err);
        render_buf r = {.vocab = m->vocab, .prev = -1};
        hr_gen_stats stats;
        if (st == HR_OK) {
            r.prev = toks.ids[0];
            for (size_t i = 1; i < toks.count; i++) render(&r, toks.ids[i]);
            /* run.c -n 256 prints 256 pieces after BOS, prompt pieces included. */
            int32_t max_new = 257 - (int32_t)toks.count;
            st = hr_generate(m, toks.ids, toks.count, max_new, &greedy, collect, &r, &stats, &err);
        }
        if (r.text) r.text[r.len++] = '\n';
        bool same = st == HR_OK && r.len == expected_len && memcmp(r.text, expected, expected_len) == 0;
        size_t at = 0;
        while (r.text && at < r.len && at < expected_len && r.text[at] == expected[at]) at++;
        char got_ctx[64] = "", want_ctx[64] = "";
        if (!same && r.text) snprintf(got_ctx, sizeof got_ctx, "%.40s", r.text + at);
        if (!same) snprintf(want_ctx, sizeof want_ctx, "%.40s", expected + at);
        free(prompt);
        free(expected);
        free(r.text);
        hr_tokens_free(&toks);
        HR_CHECK_OK(st, &err);
        HR_CHECKF(same, "case%d differs at byte %zu (got %zu bytes, want %zu): got \"%s\" want \"%s\"", c, at,
                  r.len, expected_len, got_ctx, want_ctx);
    }
}

HR_TEST(generate_llama2c_bin_matches_run_c) {
    HR_ASSET(model_path, "models/stories260K.bin");
    HR_ASSET(tok_path, "models/tok512.bin");
    hr_model *m = NULL;
    hr_error err = {0};
    HR_CHECK_OK(hr_model_load(&m, model_path, tok_path, &err), &err);
    check_reference_cases(t, m);
    hr_model_free(m);
}

HR_TEST(generate_reference_gguf_matches_run_c) {
    HR_ASSET(model_path, "models/stories260K.gguf");
    hr_model *m = NULL;
    hr_error err = {0};
    HR_CHECK_OK(hr_model_load(&m, model_path, NULL, &err), &err);
    HR_CHECK_EQ_INT(m->hp.n_ctx_train, 512);
    HR_CHECK_EQ_INT(m->hp.n_head_kv, 4);
    check_reference_cases(t, m);
    hr_model_free(m);
}

HR_TEST(generate_same_seed_same_text) {
    HR_ASSET(model_path, "models/stories260K.gguf");
    hr_model *m = NULL;
    hr_error err = {0};
    HR_CHECK_OK(hr_model_load(&m, model_path, NULL, &err), &err);
    int32_t bos = m->vocab->bos_id;
    hr_sampling s = hr_sampling_default();
    s.seed = 1234;
    render_buf a = {.vocab = m->vocab, .prev = bos}, b = a, c = a;
    hr_gen_stats stats;
    hr_status st = hr_generate(m, &bos, 1, 100, &s, collect, &a, &stats, &err);
    if (st == HR_OK) st = hr_generate(m, &bos, 1, 100, &s, collect, &b, &stats, &err);
    s.seed = 99;
    if (st == HR_OK) st = hr_generate(m, &bos, 1, 100, &s, collect, &c, &stats, &err);
    bool same = a.len == b.len && memcmp(a.text, b.text, a.len) == 0;
    bool differs = !(a.len == c.len && memcmp(a.text, c.text, a.len) == 0);
    free(a.text);
    free(b.text);
    free(c.text);
    hr_model_free(m);
    HR_CHECK_OK(st, &err);
    HR_CHECKF(same, "two runs with seed 1234 gave different text");
    HR_CHECKF(differs, "seeds 1234 and 99 gave the same 100 tokens");
}

HR_TEST(generate_refuses_more_than_the_window) {
    HR_ASSET(model_path, "models/stories260K.gguf");
    hr_model *m = NULL;
    hr_error err = {0};
    HR_CHECK_OK(hr_model_load(&m, model_path, NULL, &err), &err);
    int32_t bos = m->vocab->bos_id;
    hr_sampling s = hr_sampling_default();
    hr_gen_stats stats;
    hr_status st = hr_generate(m, &bos, 1, 512, &s, NULL, NULL, &stats, &err);
    hr_model_free(m);
    HR_CHECK_EQ_INT(st, HR_ERR_RANGE);
    HR_CHECKF(strstr(err.msg, "512") != NULL, "message lacks the window: %s", err.msg);
}
