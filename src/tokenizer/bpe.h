/* tokenizer/bpe — byte-pair encoding by merge rank, as GPT-2, Llama 3, Qwen and the
 * Hugging Face "BPE" model do it: a word starts as one symbol per byte (byte-level) or
 * per character (SentencePiece-BPE, with byte fallback), then the adjacent pair with the
 * lowest merge rank is merged, leftmost first on equal ranks, until no pair has a rank.
 *
 * Owns: the merge table (pair of ids -> rank and merged id), GPT-2's byte <-> unicode
 * table, and a per-encode session (scratch arrays and a cache of words already seen).
 * Must not: split text into words (pretokenize does) or match special tokens
 * (tokenize.c does). */
#ifndef HR_TOKENIZER_BPE_H
#define HR_TOKENIZER_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "tokenizer/tokenize.h"
#include "tokenizer/vocab.h"

hr_status hr_bpe_merges_new(hr_bpe_merges **out, size_t expected, hr_error *err);
void hr_bpe_merges_free(hr_bpe_merges *m);
/* Records that pair (left, right) merges into merged with the given rank (lower merges
 * first). When a pair is listed twice the first rank stands, as in llama.cpp. */
hr_status hr_bpe_merges_add(hr_bpe_merges *m, int32_t left, int32_t right, int32_t merged, int32_t rank,
                            hr_error *err);
size_t hr_bpe_merges_count(const hr_bpe_merges *m);
/* The i-th merge added, for writing the table back out in rank order. */
void hr_bpe_merges_at(const hr_bpe_merges *m, size_t i, int32_t *left, int32_t *right);

/* GPT-2's table: every byte has a printable unicode stand-in (printable Latin-1 bytes
 * stand for themselves, the rest for U+0100 upwards). Writes the UTF-8 of byte b's
 * stand-in to out (1 or 2 bytes) and returns its length. */
size_t hr_bpe_byte_to_utf8(uint8_t b, char out[2]);
/* The byte a code point stands for, or -1 when it stands for none. */
int hr_bpe_cp_to_byte(uint32_t cp);

/* One encode call's working memory; not shared between threads. */
typedef struct hr_bpe_session hr_bpe_session;
hr_status hr_bpe_session_new(hr_bpe_session **out, hr_error *err);
void hr_bpe_session_free(hr_bpe_session *s);

/* Appends the ids of one pre-tokenized word (raw bytes for byte-level vocabularies,
 * normalized text otherwise). */
hr_status hr_bpe_encode_word(hr_bpe_session *s, const hr_vocab *v, const char *word, size_t len, hr_tokens *out,
                             hr_error *err);

#endif
