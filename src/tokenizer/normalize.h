/* tokenizer/normalize — the text normalization a vocabulary asks for before
 * pre-tokenizing: Unicode forms (NFC, NFD, NFKC, NFKD through utf8proc), lowercasing,
 * accent stripping, literal or regex replacement, prepending, stripping, and BERT's
 * cleanup (control characters dropped, white space made ' ', CJK ideographs spaced).
 * Steps run in order, as a Hugging Face "Sequence" normalizer does.
 *
 * Owns: the list of steps and their compiled patterns.
 * Must not: split text into words (pretokenize does). Bytes that are not valid UTF-8
 * pass through unchanged; no step fails on them. */
#ifndef HR_TOKENIZER_NORMALIZE_H
#define HR_TOKENIZER_NORMALIZE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"
#include "tokenizer/pretokenize.h"

typedef struct hr_tok_normalizer hr_tok_normalizer;

typedef enum {
    HR_NORM_NFC,
    HR_NORM_NFD,
    HR_NORM_NFKC,
    HR_NORM_NFKD,
    HR_NORM_LOWERCASE,
    HR_NORM_STRIP_ACCENTS, /* drops nonspacing marks (Mn), meant to follow NFD */
    HR_NORM_BERT_CLEAN,    /* drops NUL, U+FFFD and control characters; white space -> ' ' */
    HR_NORM_BERT_CJK,      /* puts a space on each side of a CJK ideograph */
} hr_norm_simple;

hr_status hr_tok_normalizer_new(hr_tok_normalizer **out, hr_error *err);
void hr_tok_normalizer_free(hr_tok_normalizer *n);
hr_status hr_tok_normalizer_add(hr_tok_normalizer *n, hr_norm_simple kind, hr_error *err);
/* Replaces every match of pattern (a regex, or literal text) with content. */
hr_status hr_tok_normalizer_add_replace(hr_tok_normalizer *n, const char *pattern, size_t pattern_len, bool literal,
                                        const char *content, size_t content_len, hr_error *err);
/* Puts text before non-empty input. */
hr_status hr_tok_normalizer_add_prepend(hr_tok_normalizer *n, const char *text, size_t len, hr_error *err);
/* Removes white space at the start and/or end. */
hr_status hr_tok_normalizer_add_strip(hr_tok_normalizer *n, bool left, bool right, hr_error *err);
/* BERT's normalizer with its four options, as steps. */
hr_status hr_tok_normalizer_add_bert(hr_tok_normalizer *n, bool clean_text, bool handle_cjk, bool strip_accents,
                                     bool lowercase, hr_error *err);

/* A letter, digit or '_' (what "inside a word" means for single-word added tokens). */
bool hr_tok_is_word_char(int32_t cp);

/* Normalizes text[0..len) into out (replacing its contents). A NULL normalizer copies. */
hr_status hr_tok_normalize(const hr_tok_normalizer *n, const char *text, size_t len, hr_tok_buf *out,
                           hr_error *err);

#endif
