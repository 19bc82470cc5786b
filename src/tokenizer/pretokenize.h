/* tokenizer/pretokenize — splitting (normalized) text into the words a BPE or WordPiece
 * model encodes one at a time, exactly as the model family's own pre-tokenizer does:
 * a sequence of steps, each splitting every current piece further (a regex or literal
 * with Hugging Face's split behaviours: removed, isolated, merged with previous/next,
 * contiguous; optionally inverted), adding a prefix space (ByteLevel) or turning spaces
 * into U+2581 (Metaspace). Regexes run through PCRE2 in UTF + UCP mode, one piece at a
 * time, so a lookahead such as \s+(?!\S) sees the end of the piece as the end of text.
 *
 * Also owns the small text primitives the tokenizer pipeline shares: a growable byte
 * buffer, strict UTF-8 decoding, Unicode white space, and a compiled regex.
 * Must not: normalize text (normalize does) or know about token ids. */
#ifndef HR_TOKENIZER_PRETOKENIZE_H
#define HR_TOKENIZER_PRETOKENIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct {
    char *data;
    size_t len, cap;
} hr_tok_buf;

hr_status hr_tok_buf_append(hr_tok_buf *b, const char *s, size_t n, hr_error *err);
void hr_tok_buf_free(hr_tok_buf *b);

/* Decodes the UTF-8 sequence at s: returns its length (at least 1) and sets *cp, or -1
 * when the bytes are not a well-formed sequence (then one byte is consumed), which is
 * also what PCRE2 treats as invalid. */
size_t hr_tok_utf8_next(const char *s, size_t avail, int32_t *cp);
/* Writes cp as UTF-8 (1..4 bytes) and returns the length. */
size_t hr_tok_utf8_put(uint32_t cp, char out[4]);
/* Unicode White_Space (what Rust's char::is_whitespace and Hugging Face use). */
bool hr_tok_is_space(int32_t cp);

typedef struct hr_tok_regex hr_tok_regex;
/* Compiles pattern (len bytes) in UTF + UCP mode, $ meaning only the end of the text;
 * literal makes every character stand for itself. */
hr_status hr_tok_regex_compile(hr_tok_regex **out, const char *pattern, size_t len, bool literal, hr_error *err);
void hr_tok_regex_free(hr_tok_regex *re);

/* Per-call match state, so compiled regexes can be shared between threads. */
typedef struct hr_tok_matcher hr_tok_matcher;
hr_status hr_tok_matcher_new(hr_tok_matcher **out, hr_error *err);
void hr_tok_matcher_free(hr_tok_matcher *m);
/* Finds the first non-empty match in subject[0..len) starting at or after start.
 * Returns 1 and sets [*ms, *me) on a match, 0 when there is none, and fails with an
 * error when the regex engine gives up (a resource limit). */
hr_status hr_tok_regex_find(const hr_tok_regex *re, hr_tok_matcher *m, const char *subject, size_t len, size_t start,
                            bool *found, size_t *ms, size_t *me, hr_error *err);

typedef enum {
    HR_SPLIT_REMOVED,
    HR_SPLIT_ISOLATED,
    HR_SPLIT_MERGED_WITH_PREVIOUS,
    HR_SPLIT_MERGED_WITH_NEXT,
    HR_SPLIT_CONTIGUOUS,
} hr_split_behavior;

typedef enum {
    HR_PREPEND_ALWAYS,
    HR_PREPEND_FIRST, /* only to the piece that starts the text (not after a special token) */
    HR_PREPEND_NEVER,
} hr_prepend_scheme;

typedef struct hr_pretok hr_pretok;
hr_status hr_pretok_new(hr_pretok **out, hr_error *err);
void hr_pretok_free(hr_pretok *p);
/* Splits every piece at the matches of pattern (a regex, or literal text). */
hr_status hr_pretok_add_split(hr_pretok *p, const char *pattern, size_t len, bool literal, hr_split_behavior behavior,
                              bool invert, hr_error *err);
/* ByteLevel's add_prefix_space: a piece that does not start with ' ' gets one. */
hr_status hr_pretok_add_prefix_space(hr_pretok *p, hr_error *err);
/* Metaspace: ' ' becomes replacement, which is prepended per scheme; with split, each
 * piece is split before every replacement. */
hr_status hr_pretok_add_metaspace(hr_pretok *p, const char *replacement, size_t len, hr_prepend_scheme scheme,
                                  bool split, hr_error *err);

/* Working memory for hr_pretok_run; reused across calls by one thread. */
typedef struct {
    hr_tok_buf text[2];
    struct hr_tok_span *spans[2];
    size_t n_spans[2], cap_spans[2];
    int cur; /* which text/spans hold the current pieces */
    hr_tok_matcher *matcher;
} hr_pretok_state;

hr_status hr_pretok_state_init(hr_pretok_state *st, hr_error *err);
void hr_pretok_state_free(hr_pretok_state *st);

/* Splits text into words; at_start says the text begins the input (Metaspace "first").
 * Then hr_pretok_word gives word i of hr_pretok_count. */
hr_status hr_pretok_run(const hr_pretok *p, hr_pretok_state *st, const char *text, size_t len, bool at_start,
                        hr_error *err);
size_t hr_pretok_count(const hr_pretok_state *st);
const char *hr_pretok_word(const hr_pretok_state *st, size_t i, size_t *len);

/* What a GGUF tokenizer.ggml.pre name means for a byte-level BPE vocabulary, as
 * llama.cpp's converter and the model's Hugging Face tokenizer define it. */
typedef struct {
    bool known;
    bool nfc;           /* the Hugging Face tokenizer normalizes to NFC first */
    bool ignore_merges; /* a word that is a token is not merged */
    bool add_bos;       /* BOS by default, when the GGUF has no add_bos_token */
} hr_pretok_family;

/* Builds the pre-tokenizer for a GGUF pre name ("" and "default" give llama.cpp's
 * default). An unknown name is refused with HR_ERR_UNSUPPORTED. */
hr_status hr_pretok_from_gguf_name(hr_pretok **out, const char *name, hr_pretok_family *family, hr_error *err);
/* WordPiece (BERT): split at white space, which is dropped, and isolate punctuation. */
hr_status hr_pretok_add_bert(hr_pretok *p, hr_error *err);
/* GPT-2's word regex, used by ByteLevel pre-tokenizers with use_regex. */
extern const char HR_PRETOK_GPT2_REGEX[];

#endif
