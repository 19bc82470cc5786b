/* tokenizer/tokenize — text to token ids and ids back to bytes, for every vocabulary
 * kind, through one entry point so that the budget, the CLI and the server all count
 * exactly the same way. The pipeline is the model family's own: special and added
 * tokens are split out of the raw text, each remaining segment is normalized,
 * pre-tokenized into words, and each word is encoded by the vocabulary's algorithm
 * (SentencePiece-style, BPE or WordPiece).
 *
 * Owns: hr_tokens (a growable id vector), special-token matching, and the dispatch on
 * vocabulary kind.
 * Must not: apply chat templates (chat_template does) or know about models. */
#ifndef HR_TOKENIZER_TOKENIZE_H
#define HR_TOKENIZER_TOKENIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "tokenizer/vocab.h"

typedef struct {
    int32_t *ids; /* malloc'd; released by hr_tokens_free */
    size_t count;
    size_t cap;
} hr_tokens;

hr_status hr_tokens_push(hr_tokens *t, int32_t id, hr_error *err);
void hr_tokens_free(hr_tokens *t);

typedef enum {
    HR_TOK_ADD_SPECIAL = 1 << 0, /* BOS/EOS as the vocabulary's add_bos/add_eos say */
    /* Control tokens (<|eot_id|>, <s>, ...) written in the text become their ids. Without
     * it they are tokenized as plain text, so user content cannot inject them. Tokens
     * the model's own tokenizer always splits out (user-defined and non-special added
     * tokens, such as Gemma's "\n\n" or Qwen's <think>) are matched either way. */
    HR_TOK_PARSE_SPECIAL = 1 << 1,
    /* A rendered chat prompt, counted the way chat templates are applied: special tokens
     * parsed, BOS added only when the template did not write it, no EOS. */
    HR_TOK_CHAT = 1 << 2,
} hr_tok_flags;

/* Appends the ids of text[0..len) to out. Never fails on invalid UTF-8: byte-level
 * vocabularies encode any bytes, others fall back to byte tokens (or <unk>). */
hr_status hr_tok_encode(const hr_vocab *v, const char *text, size_t len, unsigned flags,
                        hr_tokens *out, hr_error *err);

/* Bytes that token id stands for in generated text: byte tokens give their byte, SPM
 * spaces (U+2581) become ' ', byte-level BPE tokens map back through the GPT-2 byte
 * table, control tokens give nothing. Writes at most cap bytes and returns the full
 * length (like snprintf, without a terminator). */
size_t hr_tok_piece(const hr_vocab *v, int32_t id, char *buf, size_t cap);

/* hr_tok_piece for text that follows token prev: right after BOS the SentencePiece
 * dummy-prefix space is dropped, as llama2.c and llama.cpp print it. */
size_t hr_tok_piece_after(const hr_vocab *v, int32_t prev, int32_t id, char *buf, size_t cap);

/* The text of ids[0..n) as one malloc'd, NUL-terminated string (*len excludes the
 * NUL): the pieces concatenated, without the dummy-prefix space of the first one. For
 * every vocabulary but WordPiece, decoding what hr_tok_encode gave returns the text. */
hr_status hr_tok_decode(const hr_vocab *v, const int32_t *ids, size_t n, char **out, size_t *len, hr_error *err);

/* Per-kind encoders of one segment (callers use hr_tok_encode). SPM: prefix puts the
 * dummy-prefix space before the text. WordPiece: one pre-tokenized word. */
hr_status hr_spm_encode(const hr_vocab *v, const char *text, size_t len, bool prefix, hr_tokens *out,
                        hr_error *err);
hr_status hr_wpm_encode_word(const hr_vocab *v, const char *word, size_t len, hr_tokens *out, hr_error *err);

#endif
