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

/* Oldest turn that may be dropped: not a system message, and not the newest user
 * turn (the question being asked). -1 when only those remain. */
static int droppable_turn(const json_t *messages) {
    int last_user = -1;
    for (size_t i = 0; i < json_array_size(messages); i++)
        if (is_role(json_array_get(messages, i), "user")) last_user = (int)i;
    for (size_t i = 0; i < json_array_size(messages); i++) {
        const json_t *m = json_array_get(messages, i);
        if (!is_role(m, "system") && (int)i != last_user) return (int)i;
    }
    return -1;
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
        json_object_set_new(msg, "content", json_stringn(hr_strbuf_str(&rest), rest.len));
        hr_strbuf_free(&rest);
        st = count_chat(req, messages, prompt, err);
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
        json_object_set_new(msg, "content", json_stringn(hr_strbuf_str(&rest), rest.len));
        hr_strbuf_free(&rest);
        st = count_chat(req, messages, prompt, err);
    }
    hr_tokens_free(&ids);
    return st;
}

/* First sentence (at most 160 bytes) of each dropped turn: what survives when the
 * model cannot summarize. */
static void extractive_summary(const char *text, hr_strbuf *out) {
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        size_t keep = 0;
        while (keep < len && keep < 160 && !(keep > 0 && (line[keep - 1] == '.' || line[keep - 1] == '?' || line[keep - 1] == '!')))
            keep++;
        /* Do not cut inside a UTF-8 character. */
        while (keep < len && ((unsigned char)line[keep] & 0xC0) == 0x80) keep++;
        if (keep > 0) {
            if (out->len) hr_strbuf_puts(out, " / ");
            hr_strbuf_append(out, line, keep);
        }
        line = end ? end + 1 : line + len;
    }
}

/* Puts the summary of the dropped turns after the leading system messages. */
static hr_status insert_summary(const hr_fit_request *req, json_t *messages, const hr_strbuf *dropped,
                                hr_error *err) {
    hr_strbuf summary = {0};
    hr_error ignored = {0};
    if (!req->summarize || req->summarize(req->ctx, hr_strbuf_str(dropped), &summary, &ignored) != HR_OK ||
        summary.len == 0) {
        hr_strbuf_clear(&summary);
        extractive_summary(hr_strbuf_str(dropped), &summary);
    }
    hr_strbuf content = {0};
    hr_strbuf_printf(&content, "Summary of the earlier conversation: %s", hr_strbuf_str(&summary));
    size_t at = 0;
    while (at < json_array_size(messages) && is_role(json_array_get(messages, at), "system")) at++;
    json_t *msg = json_pack("{s:s, s:s%}", "role", "system", "content", hr_strbuf_str(&content), content.len);
    hr_status st = msg && json_array_insert_new(messages, at, msg) == 0
                       ? HR_OK
                       : hr_fail(err, HR_ERR_NOMEM, "out of memory inserting the summary");
    hr_strbuf_free(&summary);
    hr_strbuf_free(&content);
    return st;
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

hr_status hr_fit_chat(const hr_fit_request *req, json_t *messages, hr_fit_result *res, hr_error *err) {
    memset(res, 0, sizeof *res);
    if (count_chat(req, messages, &res->prompt, err) != HR_OK) return err->status;
    bool shrink = req->policy == HR_POLICY_TRUNCATE || req->policy == HR_POLICY_SUMMARIZE;
    hr_strbuf dropped = {0};
    hr_status st = HR_OK;
    while (shrink && st == HR_OK && !fits(req, res->prompt.count)) {
        int turn = droppable_turn(messages);
        if (turn < 0) break;
        json_t *msg = json_array_get(messages, (size_t)turn);
        const char *role = json_string_value(json_object_get(msg, "role"));
        hr_strbuf_printf(&dropped, "%s%s: ", dropped.len ? "\n" : "", role ? role : "message");
        hr_json_content_text(json_object_get(msg, "content"), &dropped);
        json_array_remove(messages, (size_t)turn);
        res->messages_dropped++;
        st = count_chat(req, messages, &res->prompt, err);
    }
    if (st == HR_OK && req->policy == HR_POLICY_SUMMARIZE && res->messages_dropped > 0) {
        st = insert_summary(req, messages, &dropped, err);
        res->summarized = st == HR_OK;
        if (st == HR_OK) st = count_chat(req, messages, &res->prompt, err);
        /* The summary takes room: older turns go until it fits, as under truncate. */
        while (st == HR_OK && !fits(req, res->prompt.count)) {
            int turn = droppable_turn(messages);
            if (turn < 0) break;
            json_array_remove(messages, (size_t)turn);
            res->messages_dropped++;
            st = count_chat(req, messages, &res->prompt, err);
        }
    }
    if (shrink && st == HR_OK && !fits(req, res->prompt.count) && json_array_size(messages) > 0) {
        st = cut_message(req, messages, cuttable_message(messages), &res->prompt, err);
        res->message_cut = st == HR_OK;
    }
    hr_strbuf_free(&dropped);
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
