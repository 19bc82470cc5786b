/* engine/textstream — turns generated token ids into text that is safe to send as it
 * comes: a UTF-8 character is never split across two releases, and text that might be
 * the start of a stop string is held back until it is known not to be. A stop string
 * that completes (across any number of tokens) ends the stream; it is not sent.
 *
 * Owns: copies of the stop strings and the held-back bytes.
 * Must not: talk to the engine or the network; callers cancel and send. */
#ifndef HR_ENGINE_TEXTSTREAM_H
#define HR_ENGINE_TEXTSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/strbuf.h"
#include "tokenizer/vocab.h"

typedef struct {
    const hr_vocab *vocab;
    int32_t prev;        /* last token, for the space after BOS */
    hr_strbuf pending;   /* decoded, not yet released */
    char **stops;
    size_t *stop_lens;
    size_t n_stops;
    bool stopped;
} hr_textstream;

/* prev_token: the last prompt token (-1 if none). */
hr_status hr_textstream_init(hr_textstream *ts, const hr_vocab *vocab, int32_t prev_token, const char *const *stops,
                             size_t n_stops, hr_error *err);
void hr_textstream_free(hr_textstream *ts);

/* Adds a token; appends releasable text to out. Returns true when a stop string has
 * completed: the text before it has been released and the stream is over. */
bool hr_textstream_push(hr_textstream *ts, int32_t token, hr_strbuf *out);
/* The stream ended for another reason: releases what was held back (invalid or cut
 * UTF-8 becomes U+FFFD). */
void hr_textstream_finish(hr_textstream *ts, hr_strbuf *out);

#endif
