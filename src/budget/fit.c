#include "budget/fit.h"

#include <stdlib.h>
#include <string.h>

#include "base/json.h"

void hr_fit_result_free(hr_fit_result *res) { hr_tokens_free(&res->prompt); }

static bool is_role(const json_t *msg, const char *role) {
    const char *r = json_string_value(json_object_get(msg, "role"));
    return r && strcmp(r, role) == 0;
}

static hr_status count_chat(const hr_fit_request *req, const json_t *messages, hr_tokens *out, hr_error *err) {
    hr_strbuf text = {0};
    hr_tokens_free(out);
    hr_status st = req->render(req->ctx, messages, &text, err);
    if (st == HR_OK && text.oom) st = hr_fail(err, HR_ERR_NOMEM, "out of memory rendering the prompt");
    if (st == HR_OK) st = hr_tok_encode(req->vocab, hr_strbuf_str(&text), text.len, req->encode_flags, out, err);
    hr_strbuf_free(&text);
    return st;
}

static bool fits(const hr_fit_request *req, size_t prompt_tokens) {
    return (int64_t)prompt_tokens + (req->min_room > 0 ? req->min_room : 1) <= req->window;
}

/* Numbers the turns truncate may drop, grouped into exchanges: a run of messages from
 * one user turn up to the next, so that templates which insist that user and assistant
 * alternate still render what is left. ex[i] is message i's exchange (0 the oldest), or
 * -1 for a message that always stays: a system message, or the newest user turn (the
 * question being asked). Returns the number of exchanges. */
static int number_exchanges(const json_t *messages, int *ex) {
    size_t n = json_array_size(messages), last_user = n;
    for (size_t i = 0; i < n; i++)
        if (is_role(json_array_get(messages, i), "user")) last_user = i;
    int count = 0;
    bool open = false;
    for (size_t i = 0; i < n; i++) {
        const json_t *m = json_array_get(messages, i);
        if (is_role(m, "system") || i == last_user) {
            ex[i] = -1;
            open = false;
            continue;
        }
        if (!open || is_role(m, "user")) count++;
        open = true;
        ex[i] = count - 1;
    }
    return count;
}

/* The conversation without its first k exchanges, with summary (when not NULL) as a
 * system message after the leading system messages; a new reference, NULL out of memory. */
static json_t *without_exchanges(const json_t *messages, const int *ex, int k, json_t *summary) {
    json_t *out = json_array();
    bool ok = out != NULL, placed = summary == NULL;
    for (size_t i = 0; ok && i < json_array_size(messages); i++) {
        json_t *m = json_array_get(messages, i);
        if (!placed && !is_role(m, "system")) ok = json_array_append(out, summary) == 0, placed = true;
        if (ok && (ex[i] < 0 || ex[i] >= k)) ok = json_array_append(out, m) == 0;
    }
    if (ok && !placed) ok = json_array_append(out, summary) == 0;
    if (ok) return out;
    json_decref(out);
    return NULL;
}

/* Counts the conversation without its first k exchanges (and with summary) into
 * prompt; *fit says whether prompt + min room fits the window. */
static hr_status count_without(const hr_fit_request *req, const json_t *messages, const int *ex, int k,
                               json_t *summary, hr_tokens *prompt, bool *fit, hr_error *err) {
    json_t *shorter = without_exchanges(messages, ex, k, summary);
    *fit = false;
    if (!shorter) return hr_fail(err, HR_ERR_NOMEM, "out of memory dropping turns");
    hr_status st = count_chat(req, shorter, prompt, err);
    json_decref(shorter);
    *fit = st == HR_OK && fits(req, prompt->count);
    return st;
}

/* The fewest exchanges, from lo up to n, whose dropping makes the conversation fit
 * (n when none does, and *found false); binary search, so a long conversation is
 * rendered a logarithmic number of times rather than once per turn. */
static hr_status fewest_exchanges(const hr_fit_request *req, const json_t *messages, const int *ex, int lo, int n,
                                  json_t *summary, int *k_out, bool *found, hr_error *err) {
    hr_tokens probe = {0};
    int hi = n;
    hr_status st = HR_OK;
    *k_out = n;
    *found = false;
    while (st == HR_OK && lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        bool fit;
        st = count_without(req, messages, ex, mid, summary, &probe, &fit, err);
        if (fit) {
            *k_out = mid;
            *found = true;
            hi = mid - 1;
        } else {
            lo = mid + 1;
        }
    }
    hr_tokens_free(&probe);
    return st;
}

/* The message to cut when dropping turns is not enough: the newest user turn, or else
 * the last message. */
static int cuttable_message(const json_t *messages) {
    int last_user = -1;
    for (size_t i = 0; i < json_array_size(messages); i++)
        if (is_role(json_array_get(messages, i), "user")) last_user = (int)i;
    return last_user >= 0 ? last_user : (int)json_array_size(messages) - 1;
}

/* Detokenized text of ids[from..n). */
static void join_pieces(const hr_vocab *v, const int32_t *ids, size_t from, size_t n, hr_strbuf *out) {
    char piece[512];
    for (size_t i = from; i < n; i++) {
        size_t len = hr_tok_piece(v, ids[i], piece, sizeof piece);
        hr_strbuf_append(out, piece, len < sizeof piece ? len : sizeof piece);
    }
}

/* Sets a message's content to text. A cut between tokens can fall inside a character
 * (byte tokens spell one a byte at a time): its stray continuation bytes go. */
static hr_status set_content(json_t *msg, const hr_strbuf *text, hr_error *err) {
    size_t skip = 0;
    while (skip < text->len && ((unsigned char)text->data[skip] & 0xC0) == 0x80) skip++;
    json_t *content = json_stringn(text->len > skip ? text->data + skip : "", text->len - skip);
    if (!content || json_object_set_new(msg, "content", content) != 0)
        return hr_fail(err, HR_ERR_NOMEM, "cannot set the shortened message (out of memory or not UTF-8)");
    return HR_OK;
}

/* Cuts message idx from its start by the fewest tokens that make the prompt fit. */
static hr_status cut_message(const hr_fit_request *req, json_t *messages, int idx, hr_tokens *prompt, hr_error *err) {
    json_t *msg = json_array_get(messages, (size_t)idx);
    hr_strbuf original = {0};
    hr_json_content_text(json_object_get(msg, "content"), &original);
    hr_tokens ids = {0};
    hr_status st = hr_tok_encode(req->vocab, hr_strbuf_str(&original), original.len, 0, &ids, err);
    hr_strbuf_free(&original);
    /* Binary search for the smallest cut: every probe renders the whole conversation. */
    size_t lo = 1, hi = ids.count, best = ids.count + 1;
    while (st == HR_OK && lo <= hi) {
        size_t mid = lo + (hi - lo) / 2;
        hr_strbuf rest = {0};
        join_pieces(req->vocab, ids.ids, mid, ids.count, &rest);
        st = set_content(msg, &rest, err);
        hr_strbuf_free(&rest);
        if (st == HR_OK) st = count_chat(req, messages, prompt, err);
        if (st != HR_OK) break;
        if (fits(req, prompt->count)) {
            best = mid;
            hi = mid - 1;
        } else {
            lo = mid + 1;
        }
    }
    if (st == HR_OK && best <= ids.count) {
        hr_strbuf rest = {0};
        join_pieces(req->vocab, ids.ids, best, ids.count, &rest);
        st = set_content(msg, &rest, err);
        hr_strbuf_free(&rest);
        if (st == HR_OK) st = count_chat(req, messages, prompt, err);
    }
    hr_tokens_free(&ids);
    return st;
}

/* First sentence (at most 160 bytes) of each dropped turn, the newest that fit in
 * cap_bytes: what survives when the model cannot summarize. */
static void extractive_summary(const char *text, size_t cap_bytes, hr_strbuf *out) {
    hr_strbuf all = {0};
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        size_t keep = 0;
        while (keep < len && keep < 160 && !(keep > 0 && (line[keep - 1] == '.' || line[keep - 1] == '?' || line[keep - 1] == '!')))
            keep++;
        /* Do not cut inside a UTF-8 character. */
        while (keep < len && ((unsigned char)line[keep] & 0xC0) == 0x80) keep++;
        if (keep > 0) {
            if (all.len) hr_strbuf_puts(&all, " / ");
            hr_strbuf_append(&all, line, keep);
        }
        line = end ? end + 1 : line + len;
    }
    /* Over the cap, the oldest sentences go, at a separator. */
    const char *from = hr_strbuf_str(&all), *end = from + all.len;
    while ((size_t)(end - from) > cap_bytes) {
        const char *next = strstr(from, " / ");
        from = next ? next + 3 : end;
    }
    hr_strbuf_append(out, from, (size_t)(end - from));
    hr_strbuf_free(&all);
}

/* The state message for the first k exchanges: the model's summary, or an extractive
 * one of about a quarter of the window (a byte per window token). New reference, NULL
 * out of memory. */
static json_t *summary_message(const hr_fit_request *req, const json_t *messages, const int *ex, int k) {
    hr_strbuf dropped = {0}, summary = {0}, content = {0};
    for (size_t i = 0; i < json_array_size(messages); i++) {
        if (ex[i] < 0 || ex[i] >= k) continue;
        const json_t *m = json_array_get(messages, i);
        const char *role = json_string_value(json_object_get(m, "role"));
        hr_strbuf_printf(&dropped, "%s%s: ", dropped.len ? "\n" : "", role ? role : "message");
        hr_json_content_text(json_object_get(m, "content"), &dropped);
    }
    hr_error ignored = {0};
    if (!req->summarize || req->summarize(req->ctx, hr_strbuf_str(&dropped), &summary, &ignored) != HR_OK ||
        summary.len == 0) {
        hr_strbuf_clear(&summary);
        extractive_summary(hr_strbuf_str(&dropped), req->window > 160 ? (size_t)req->window : 160, &summary);
    }
    hr_strbuf_printf(&content, "Summary of the earlier conversation: %s", hr_strbuf_str(&summary));
    json_t *msg = dropped.oom || summary.oom || content.oom
                      ? NULL
                      : json_pack("{s:s, s:s%}", "role", "system", "content", hr_strbuf_str(&content), content.len);
    hr_strbuf_free(&dropped);
    hr_strbuf_free(&summary);
    hr_strbuf_free(&content);
    return msg;
}

/* Final step for every policy: the numbers, and reject/clamp as hr_budget_apply says. */
static hr_status settle(const hr_fit_request *req, hr_fit_result *res, hr_error *err) {
    hr_budget *b = &res->budget;
    b->window = req->window;
    b->prompt_tokens = (int64_t)res->prompt.count;
    b->min_room = req->min_room;
    b->policy = req->policy;
    /* No max_tokens asks for everything the window has left. */
    b->max_tokens_requested = req->max_tokens >= 0 ? req->max_tokens : req->window - b->prompt_tokens;
    if (b->max_tokens_requested < 0) b->max_tokens_requested = 0;
    hr_status st = hr_budget_apply(b, err);
    if (req->max_tokens < 0) b->max_tokens_requested = -1;
    return st;
}

/* Summarize: the state message of the k exchanges truncate drops, and as many more
 * exchanges as it needs room for. False (leaving *k) when no number of them makes room,
 * or the template will not take it: summarize then does what truncate does. */
static bool place_summary(const hr_fit_request *req, const json_t *messages, const int *ex, int n_ex, int *k,
                          json_t **summary) {
    hr_error ignored = {0};
    int k_sum;
    bool found;
    *summary = summary_message(req, messages, ex, *k);
    if (*summary && fewest_exchanges(req, messages, ex, *k, n_ex, *summary, &k_sum, &found, &ignored) == HR_OK &&
        found) {
        *k = k_sum;
        return true;
    }
    json_decref(*summary);
    *summary = NULL;
    return false;
}

hr_status hr_fit_chat(const hr_fit_request *req, json_t *messages, hr_fit_result *res, hr_error *err) {
    memset(res, 0, sizeof *res);
    if (count_chat(req, messages, &res->prompt, err) != HR_OK) return err->status;
    bool shrink = req->policy == HR_POLICY_TRUNCATE || req->policy == HR_POLICY_SUMMARIZE;
    if (!shrink || fits(req, res->prompt.count)) return settle(req, res, err);
    size_t n = json_array_size(messages);
    int *ex = malloc((n + 1) * sizeof *ex);
    if (!ex) return hr_fail(err, HR_ERR_NOMEM, "out of memory fitting %zu messages", n);
    int n_ex = number_exchanges(messages, ex), k = 0;
    json_t *summary = NULL;
    bool found; /* when not, all exchanges go and a message is cut below */
    hr_status st = fewest_exchanges(req, messages, ex, 1, n_ex, NULL, &k, &found, err);
    if (st == HR_OK && req->policy == HR_POLICY_SUMMARIZE && k > 0)
        res->summarized = place_summary(req, messages, ex, n_ex, &k, &summary);
    if (st == HR_OK && k > 0) {
        json_t *kept = without_exchanges(messages, ex, k, summary);
        st = kept && json_array_clear(messages) == 0 && json_array_extend(messages, kept) == 0
                 ? HR_OK
                 : hr_fail(err, HR_ERR_NOMEM, "out of memory dropping turns");
        json_decref(kept);
        for (size_t i = 0; i < n; i++) res->messages_dropped += ex[i] >= 0 && ex[i] < k;
        if (st == HR_OK) st = count_chat(req, messages, &res->prompt, err);
    }
    json_decref(summary);
    free(ex);
    if (st == HR_OK && !fits(req, res->prompt.count) && json_array_size(messages) > 0) {
        st = cut_message(req, messages, cuttable_message(messages), &res->prompt, err);
        res->message_cut = st == HR_OK;
    }
    if (st == HR_OK) st = settle(req, res, err);
    return st;
}

/* Plain prompts are cut from the left, keeping a leading BOS: the newest text is what
 * the continuation follows. */
static hr_status fit_prompt_ids(const hr_fit_request *req, hr_fit_result *res, hr_error *err) {
    bool shrink = req->policy == HR_POLICY_TRUNCATE || req->policy == HR_POLICY_SUMMARIZE;
    if (shrink && !fits(req, res->prompt.count)) {
        int64_t keep = req->window - (req->min_room > 0 ? req->min_room : 1);
        size_t head = res->prompt.count > 0 && res->prompt.ids[0] == req->vocab->bos_id ? 1 : 0;
        if (keep > (int64_t)head) {
            size_t drop = res->prompt.count - (size_t)keep;
            memmove(res->prompt.ids + head, res->prompt.ids + head + drop,
                    (res->prompt.count - head - drop) * sizeof *res->prompt.ids);
            res->prompt.count = (size_t)keep;
            res->message_cut = true;
        }
    }
    return settle(req, res, err);
}

hr_status hr_fit_text(const hr_fit_request *req, const char *text, size_t len, hr_fit_result *res, hr_error *err) {
    memset(res, 0, sizeof *res);
    if (hr_tok_encode(req->vocab, text, len, req->encode_flags, &res->prompt, err) != HR_OK) return err->status;
    return fit_prompt_ids(req, res, err);
}

hr_status hr_fit_tokens(const hr_fit_request *req, const int32_t *ids, size_t n, hr_fit_result *res, hr_error *err) {
    memset(res, 0, sizeof *res);
    for (size_t i = 0; i < n; i++)
        if (hr_tokens_push(&res->prompt, ids[i], err) != HR_OK) return err->status;
    return fit_prompt_ids(req, res, err);
}
