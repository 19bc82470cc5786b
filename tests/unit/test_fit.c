/* budget/fit: the truncate and summarize policies on conversations, with a renderer as
 * strict as the Llama 2 template (user and assistant must alternate) and the llama2.c
 * 512-token vocabulary, whose byte tokens spell a CJK character in three. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "budget/fit.h"
#include "test.h"

typedef struct {
    int renders;
    const char *summary; /* what the summarizer answers; NULL: it fails */
} fit_ctx;

/* Contents one per line. After the leading system messages, roles must go user,
 * assistant, user, ...: dropping half an exchange is an error, as in strict templates. */
static hr_status strict_render(void *ctx, const json_t *messages, hr_strbuf *out, hr_error *err) {
    fit_ctx *fc = ctx;
    fc->renders++;
    const char *want = "user";
    bool lead = true;
    size_t i;
    const json_t *m;
    json_array_foreach(messages, i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!(lead && strcmp(role, "system") == 0)) {
            lead = false;
            if (strcmp(role, want) != 0)
                return hr_fail(err, HR_ERR_INVALID, "roles must alternate: message %zu is %s", i, role);
            want = strcmp(want, "user") == 0 ? "assistant" : "user";
        }
        hr_strbuf_puts(out, json_string_value(json_object_get(m, "content")));
        hr_strbuf_puts(out, "\n");
    }
    return HR_OK;
}

static hr_status canned_summary(void *ctx, const char *text, hr_strbuf *out, hr_error *err) {
    fit_ctx *fc = ctx;
    (void)text;
    if (!fc->summary) return hr_fail(err, HR_ERR_RANGE, "no summary");
    hr_strbuf_puts(out, fc->summary);
    return HR_OK;
}

/* system, then n_turns alternating from user (an odd count ends on a user turn). */
static json_t *conversation(int n_turns, const char *line) {
    json_t *messages = json_pack("[{s:s, s:s}]", "role", "system", "content", "You tell stories.");
    for (int i = 0; i < n_turns; i++) {
        char text[256];
        snprintf(text, sizeof text, "%d: %s", i, line);
        json_array_append_new(messages,
                              json_pack("{s:s, s:s}", "role", i % 2 ? "assistant" : "user", "content", text));
    }
    return messages;
}

static size_t count_of(const hr_fit_request *req, const json_t *messages) {
    hr_strbuf text = {0};
    hr_tokens ids = {0};
    hr_error err = {0};
    size_t n = 0;
    if (req->render(req->ctx, messages, &text, &err) == HR_OK &&
        hr_tok_encode(req->vocab, hr_strbuf_str(&text), text.len, req->encode_flags, &ids, &err) == HR_OK)
        n = ids.count;
    hr_strbuf_free(&text);
    hr_tokens_free(&ids);
    return n;
}

/* The system message and the newest turns from index `from` of the original. */
static json_t *system_and_tail(const json_t *original, size_t from) {
    json_t *out = json_array();
    json_array_append(out, json_array_get(original, 0));
    for (size_t i = from; i < json_array_size(original); i++) json_array_append(out, json_array_get(original, i));
    return out;
}

#define FIT_SETUP(policy_)                                                                                  \
    HR_ASSET(tok, "models/tok512.bin");                                                                     \
    hr_vocab *v;                                                                                            \
    hr_error err = {0};                                                                                     \
    HR_CHECK_OK(hr_vocab_from_llama2c(&v, tok, 512, &err), &err);                                           \
    fit_ctx fc = {0};                                                                                       \
    hr_fit_request req = {.vocab = v, .encode_flags = HR_TOK_ADD_SPECIAL, .policy = (policy_), .window = 256, \
                          .min_room = 16, .max_tokens = 8, .render = strict_render, .summarize = canned_summary, \
                          .ctx = &fc}

HR_TEST(fit_truncate_drops_the_fewest_whole_exchanges_in_few_renders) {
    FIT_SETUP(HR_POLICY_TRUNCATE);
    json_t *original = conversation(2001, "Lily went to the park and played all day."), *messages = json_deep_copy(original);
    hr_fit_result res;
    hr_status st = hr_fit_chat(&req, messages, &res, &err);
    size_t kept = count_of(&req, messages);
    int d = res.messages_dropped;
    json_t *one_fewer = system_and_tail(original, (size_t)(d - 1)); /* d - 2 dropped */
    size_t fewer = count_of(&req, one_fewer);
    json_decref(one_fewer);
    json_decref(original);
    json_decref(messages);
    hr_fit_result_free(&res);
    hr_vocab_free(v);
    HR_CHECK_OK(st, &err);
    HR_CHECKF(d > 1900 && d % 2 == 0, "dropped %d messages: not whole exchanges", d);
    HR_CHECKF(kept + 16 <= 256 && kept == (size_t)res.budget.prompt_tokens, "kept %zu tokens", kept);
    HR_CHECKF(fewer + 16 > 256, "dropping %d would have fit (%zu tokens)", d - 2, fewer);
    HR_CHECKF(fc.renders <= 30, "%d renders for 2001 turns", fc.renders);
    HR_CHECK(!res.summarized && !res.message_cut);
}

HR_TEST(fit_summarize_caps_the_extractive_summary_and_fits) {
    FIT_SETUP(HR_POLICY_SUMMARIZE);
    json_t *messages = conversation(501, "Lily went to the park. Then she went home.");
    hr_fit_result res;
    hr_status st = hr_fit_chat(&req, messages, &res, &err);
    const char *summary = json_string_value(json_object_get(json_array_get(messages, 1), "content"));
    size_t summary_len = summary ? strlen(summary) : 0;
    bool has_summary = summary && strncmp(summary, "Summary of the earlier conversation: ", 37) == 0;
    bool is_system = strcmp(json_string_value(json_object_get(json_array_get(messages, 1), "role")), "system") == 0;
    json_decref(messages);
    hr_fit_result_free(&res);
    hr_vocab_free(v);
    HR_CHECK_OK(st, &err);
    HR_CHECK(res.summarized && has_summary && is_system);
    HR_CHECKF(summary_len <= 37 + 256, "summary of %zu bytes for a 256-token window", summary_len);
    HR_CHECK(res.budget.prompt_tokens + 16 <= 256);
}

HR_TEST(fit_summarize_that_cannot_fit_does_what_truncate_does) {
    FIT_SETUP(HR_POLICY_SUMMARIZE);
    char huge[4096];
    memset(huge, 'a', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    fc.summary = huge; /* a summarizer that ignores its budget */
    json_t *messages = conversation(41, "Lily went to the park and played with her friend Ben.");
    json_t *copy = json_deep_copy(messages);
    hr_fit_result res, truncated;
    hr_status st = hr_fit_chat(&req, messages, &res, &err);
    req.policy = HR_POLICY_TRUNCATE;
    hr_status st2 = hr_fit_chat(&req, copy, &truncated, &err);
    bool same = json_equal(messages, copy);
    json_decref(messages);
    json_decref(copy);
    hr_fit_result_free(&res);
    hr_fit_result_free(&truncated);
    hr_vocab_free(v);
    HR_CHECK_OK(st, &err);
    HR_CHECK_OK(st2, &err);
    HR_CHECK(!res.summarized && same);
    HR_CHECK_EQ_INT(res.messages_dropped, truncated.messages_dropped);
    HR_CHECK_EQ_INT(res.budget.prompt_tokens, truncated.budget.prompt_tokens);
}

HR_TEST(fit_cuts_a_cjk_message_between_characters) {
    FIT_SETUP(HR_POLICY_TRUNCATE);
    hr_strbuf text = {0};
    for (int i = 0; i < 200; i++) hr_strbuf_puts(&text, "\xe6\x97\xa5"); /* U+65E5, three byte tokens */
    json_t *messages = json_pack("[{s:s, s:s%}]", "role", "user", "content", hr_strbuf_str(&text), text.len);
    hr_strbuf_free(&text);
    hr_fit_result res;
    hr_status st = hr_fit_chat(&req, messages, &res, &err);
    const char *cut = json_string_value(json_object_get(json_array_get(messages, 0), "content"));
    size_t cut_len = cut ? strlen(cut) : 0;
    bool whole = cut && hr_utf8_complete_len(cut, cut_len) == cut_len && cut_len % 3 == 0;
    json_decref(messages);
    hr_fit_result_free(&res);
    hr_vocab_free(v);
    HR_CHECK_OK(st, &err);
    HR_CHECK(res.message_cut && whole);
    /* All that fits is kept, to within one character's three tokens. */
    HR_CHECKF(res.budget.prompt_tokens + 16 <= 256 && res.budget.prompt_tokens + 16 + 3 > 256, "prompt %lld tokens",
              (long long)res.budget.prompt_tokens);
}
