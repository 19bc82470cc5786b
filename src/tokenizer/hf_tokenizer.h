/* tokenizer/hf_tokenizer — loads a vocabulary from a Hugging Face tokenizer.json (and
 * the tokenizer_config.json beside it): model BPE (byte-level, or SentencePiece-style
 * with byte fallback, merges by rank) or WordPiece; its normalizer and pre-tokenizer
 * pipelines; added tokens with their lstrip/rstrip/single_word/normalized flags; BOS,
 * EOS and whether to add them, from tokenizer_config.json or the post-processor.
 *
 * Owns: reading those files (jansson) into an hr_vocab.
 * Must not: tokenize (tokenize.c does). A component it does not implement (Unigram,
 * a Precompiled normalizer, ...) is refused by name with HR_ERR_UNSUPPORTED, never
 * approximated. */
#ifndef HR_TOKENIZER_HF_TOKENIZER_H
#define HR_TOKENIZER_HF_TOKENIZER_H

#include "base/error.h"
#include "tokenizer/vocab.h"

/* Reads path (a tokenizer.json) and, when present, tokenizer_config.json in the same
 * directory. */
hr_status hr_vocab_from_hf(hr_vocab **out, const char *path, hr_error *err);

/* The chat_template string of the tokenizer_config.json beside path, malloc'd, or NULL
 * (with HR_OK) when there is none. */
hr_status hr_hf_chat_template(const char *path, char **out, hr_error *err);

#endif
