/* UTF-8 helpers and the streaming text pipeline (no split characters, stop strings
 * matched across token boundaries and held back until known). */
#include "base/utf8.h"
#include "engine/textstream.h"
#include "test.h"

HR_TEST(utf8_complete_len_holds_back_only_unfinished_sequences) {
    HR_CHECK_EQ_INT(hr_utf8_complete_len("abc", 3), 3);
    HR_CHECK_EQ_INT(hr_utf8_complete_len("ab\xE2\x82", 4), 2);      /* € cut after 2 of 3 bytes */
    HR_CHECK_EQ_INT(hr_utf8_complete_len("ab\xE2\x82\xAC", 5), 5);  /* € complete */
    HR_CHECK_EQ_INT(hr_utf8_complete_len("\xF0\x9F\xA6", 3), 0);     /* 🦙 cut */
    HR_CHECK_EQ_INT(hr_utf8_complete_len("a\xFF", 2), 2);            /* invalid, not unfinished */
    HR_CHECK_EQ_INT(hr_utf8_complete_len("a\xE0\x80", 3), 3);        /* overlong start can never finish */
    HR_CHECK_EQ_INT(hr_utf8_complete_len("a\x80", 2), 2);            /* stray continuation */
}

HR_TEST(utf8_sanitize_replaces_each_invalid_byte) {
    char out[64];
    size_t n = hr_utf8_sanitize("a\xFF" "b\xED\xA0\x80" "c\xE2\x82\xAC", 10, out);
    HR_CHECKF(n == strlen(out) && strcmp(out, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" "c\xE2\x82\xAC") == 0,
              "sanitized to '%s'", out);
}

/* Byte tokens of the synthetic vocabulary are id 3 + byte, so any bytes can be pushed. */
static bool push_bytes(hr_textstream *ts, const char *s, hr_strbuf *out) {
    bool stopped = false;
    for (const unsigned char *p = (const unsigned char *)s; *p && !stopped; p++) stopped = hr_textstream_push(ts, 3 + *p, out);
    return stopped;
}

HR_TEST(textstream_never_splits_a_character_and_matches_stops_across_tokens) {
    hr_vocab *v;
    hr_error err = {0};
    HR_CHECK_OK(hr_vocab_synthesize(&v, 600, &err), &err);
    const char *stops[] = {"END", "\n\n"};
    hr_textstream ts;
    hr_strbuf out = {0};
    hr_status st = hr_textstream_init(&ts, v, -1, stops, 2, &err);
    bool ok = st == HR_OK;
    ok = ok && !hr_textstream_push(&ts, 3 + 0xE2, &out) && out.len == 0;
    ok = ok && !hr_textstream_push(&ts, 3 + 0x82, &out) && out.len == 0;
    ok = ok && !hr_textstream_push(&ts, 3 + 0xAC, &out) && strcmp(hr_strbuf_str(&out), "\xE2\x82\xAC") == 0;
    hr_strbuf_clear(&out);
    ok = ok && !push_bytes(&ts, "xE", &out) && strcmp(hr_strbuf_str(&out), "x") == 0; /* 'E' might start END */
    ok = ok && !push_bytes(&ts, "y", &out) && strcmp(hr_strbuf_str(&out), "xEy") == 0;
    hr_strbuf_clear(&out);
    bool stopped = ok && push_bytes(&ts, "ab\nEN", &out);
    /* "\nEN" cannot become "\n\n", so only "EN" (a prefix of END) is held */
    ok = ok && !stopped && strcmp(hr_strbuf_str(&out), "ab\n") == 0;
    stopped = ok && push_bytes(&ts, "D tail", &out);
    char got[64];
    snprintf(got, sizeof got, "%s", hr_strbuf_str(&out));
    hr_textstream_free(&ts);
    hr_strbuf_free(&out);
    hr_vocab_free(v);
    HR_CHECK_OK(st, &err);
    HR_CHECKF(ok, "incremental releases went wrong (out '%s')", got);
    HR_CHECKF(stopped && strcmp(got, "ab\n") == 0, "stop string END: stopped %d, released '%s'", stopped, got);
}

HR_TEST(textstream_finish_flushes_held_text_as_valid_utf8) {
    hr_vocab *v;
    hr_error err = {0};
    HR_CHECK_OK(hr_vocab_synthesize(&v, 600, &err), &err);
    const char *stops[] = {"STOP"};
    hr_textstream ts;
    hr_strbuf out = {0};
    HR_CHECK_OK(hr_textstream_init(&ts, v, -1, stops, 1, &err), &err);
    push_bytes(&ts, "hi ST\xE2\x82", &out);
    hr_textstream_finish(&ts, &out);
    char got[64];
    snprintf(got, sizeof got, "%s", hr_strbuf_str(&out));
    hr_textstream_free(&ts);
    hr_strbuf_free(&out);
    hr_vocab_free(v);
    HR_CHECKF(strcmp(got, "hi ST\xEF\xBF\xBD\xEF\xBF\xBD") == 0, "flushed '%s'", got);
}
