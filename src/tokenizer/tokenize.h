/* tokenizer/tokenize — text to token ids and ids back to bytes, for every vocabulary
 * kind, through one entry point so that the budget, the CLI and the server all count
 * exactly the same way.
 *
 * Owns: hr_tokens (a growable id vector) and the dispatch on vocabulary kind.
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
} hr_tok_flags;

/* Appends the ids of text[0..len) to out. Never fails on invalid UTF-8: bytes that are
 * not part of a valid sequence are encoded through byte fallback. */
hr_status hr_tok_encode(const hr_vocab *v, const char *text, size_t len, unsigned flags,
                        hr_tokens *out, hr_error *err);

/* Bytes that token id stands for in generated text: byte tokens give their byte, SPM
 * spaces (U+2581) become ' ', control tokens give nothing. Writes at most cap bytes and
 * returns the full length (like snprintf, without a terminator). */
size_t hr_tok_piece(const hr_vocab *v, int32_t id, char *buf, size_t cap);

/* hr_tok_piece for text that follows token prev: right after BOS the SentencePiece
 * dummy-prefix space is dropped, as llama2.c and llama.cpp print it. */
size_t hr_tok_piece_after(const hr_vocab *v, int32_t prev, int32_t id, char *buf, size_t cap);

/* SPM encoder (spm.c); callers use hr_tok_encode. */
hr_status hr_spm_encode(const hr_vocab *v, const char *text, size_t len, hr_tokens *out,
                        hr_error *err);

#endif
