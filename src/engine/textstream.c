#include "engine/textstream.h"

#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "tokenizer/tokenize.h"

hr_status hr_textstream_init(hr_textstream *ts, const hr_vocab *vocab, int32_t prev_token, const char *const *stops,
                             size_t n_stops, hr_error *err) {
    memset(ts, 0, sizeof *ts);
    ts->vocab = vocab;
    ts->prev = prev_token;
    if (n_stops == 0) return HR_OK;
    ts->stops = calloc(n_stops, sizeof *ts->stops);
    ts->stop_lens = calloc(n_stops, sizeof *ts->stop_lens);
    if (!ts->stops || !ts->stop_lens) {
        hr_textstream_free(ts);
        return hr_fail(err, HR_ERR_NOMEM, "out of memory for %zu stop strings", n_stops);
    }
    for (size_t i = 0; i < n_stops; i++) {
        size_t len = strlen(stops[i]);
        if (len == 0) continue; /* an empty stop string would end every stream at once */
        ts->stops[ts->n_stops] = strdup(stops[i]);
        if (!ts->stops[ts->n_stops]) {
            hr_textstream_free(ts);
            return hr_fail(err, HR_ERR_NOMEM, "out of memory for stop strings");
        }
        ts->stop_lens[ts->n_stops++] = len;
    }
    return HR_OK;
}

void hr_textstream_free(hr_textstream *ts) {
    for (size_t i = 0; ts->stops && i < ts->n_stops; i++) free(ts->stops[i]);
    free(ts->stops);
    free(ts->stop_lens);
    hr_strbuf_free(&ts->pending);
    memset(ts, 0, sizeof *ts);
}

/* Length of the longest suffix of text that is a proper prefix of a stop string. */
static size_t held_suffix(const hr_textstream *ts, const char *text, size_t len) {
    size_t best = 0;
    for (size_t s = 0; s < ts->n_stops; s++) {
        size_t max = ts->stop_lens[s] - 1 < len ? ts->stop_lens[s] - 1 : len;
        for (size_t k = max; k > best; k--)
            if (memcmp(text + len - k, ts->stops[s], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

/* Moves the first n pending bytes to out. */
static void release(hr_textstream *ts, size_t n, hr_strbuf *out) {
    hr_strbuf_append(out, ts->pending.data, n);
    memmove(ts->pending.data, ts->pending.data + n, ts->pending.len - n + 1);
    ts->pending.len -= n;
}

bool hr_textstream_push(hr_textstream *ts, int32_t token, hr_strbuf *out) {
    if (ts->stopped) return true;
    char piece[512];
    size_t n = hr_tok_piece_after(ts->vocab, ts->prev, token, piece, sizeof piece);
    ts->prev = token;
    hr_strbuf_append(&ts->pending, piece, n < sizeof piece ? n : sizeof piece);
    const char *text = hr_strbuf_str(&ts->pending);
    size_t len = ts->pending.len, first = len;
    for (size_t s = 0; s < ts->n_stops; s++) {
        const char *hit = memmem(text, len, ts->stops[s], ts->stop_lens[s]);
        if (hit && (size_t)(hit - text) < first) first = (size_t)(hit - text);
    }
    if (first < len) {
        release(ts, first, out);
        hr_strbuf_clear(&ts->pending);
        ts->stopped = true;
        return true;
    }
    size_t keep = held_suffix(ts, text, len);
    size_t ready = hr_utf8_complete_len(text, len - keep);
    release(ts, ready, out);
    return false;
}

void hr_textstream_finish(hr_textstream *ts, hr_strbuf *out) {
    if (ts->pending.len == 0) return;
    char *clean = malloc(3 * ts->pending.len + 1);
    if (clean) {
        size_t n = hr_utf8_sanitize(ts->pending.data, ts->pending.len, clean);
        hr_strbuf_append(out, clean, n);
        free(clean);
    }
    hr_strbuf_clear(&ts->pending);
}
