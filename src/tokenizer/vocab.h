/* tokenizer/vocab — a model's vocabulary: token texts, scores, types, special ids and
 * flags, and the lookups every tokenizer algorithm needs (text -> id, byte -> id).
 *
 * Owns: copies of all token texts (one blob) and the lookup tables.
 * Must not: encode or decode text (spm.c, and the other algorithms, do); it only
 * answers questions about tokens. */
#ifndef HR_TOKENIZER_VOCAB_H
#define HR_TOKENIZER_VOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "formats/gguf.h"
#include "formats/gguf_write.h"

/* Token types as GGUF's tokenizer.ggml.token_type stores them. */
typedef enum {
    HR_TOKEN_UNDEFINED = 0,
    HR_TOKEN_NORMAL = 1,
    HR_TOKEN_UNKNOWN = 2,
    HR_TOKEN_CONTROL = 3,
    HR_TOKEN_USER_DEFINED = 4,
    HR_TOKEN_UNUSED = 5,
    HR_TOKEN_BYTE = 6,
} hr_token_type;

/* The algorithm that turns text into ids (tokenizer.ggml.model). */
typedef enum {
    HR_VOCAB_SPM, /* "llama": SentencePiece-style, score-driven merges, byte fallback */
} hr_vocab_kind;

typedef struct hr_vocab hr_vocab;
struct hr_vocab {
    hr_vocab_kind kind;
    int32_t n_tokens;
    char *text_blob;       /* all token texts, each NUL-terminated */
    uint32_t *text_offset; /* token id -> offset in text_blob */
    uint32_t *text_len;    /* token id -> length in bytes (texts may hold NUL) */
    float *scores;         /* token id -> merge score (SPM) */
    uint8_t *types;        /* token id -> hr_token_type */
    int32_t bos_id, eos_id, unk_id, pad_id, eot_id; /* -1 when absent */
    bool add_bos, add_eos;
    bool add_space_prefix; /* SPM "dummy prefix": a space before the text */
    int32_t byte_token[256]; /* <0xXX> token for each byte, -1 when absent */
    uint32_t max_token_len;
    /* open-addressing hash of token text -> id */
    int32_t *hash_slots;
    uint32_t hash_mask;
};

/* Builds a vocabulary from GGUF metadata (tokenizer.ggml.*). */
hr_status hr_vocab_from_gguf(hr_vocab **out, const hr_gguf *g, hr_error *err);
/* Reads a llama2.c tokenizer.bin holding n_tokens entries. Ids 0/1/2 are unk/bos/eos
 * as in llama2.c; <0xXX> pieces become byte tokens. */
hr_status hr_vocab_from_llama2c(hr_vocab **out, const char *path, int32_t n_tokens, hr_error *err);
/* A made-up SentencePiece-style vocabulary of n_tokens (at least 259): <unk>, <s>,
 * </s>, the 256 byte tokens, then letter pieces with and without a leading U+2581,
 * scored so that longer pieces merge later. For synthetic models. */
hr_status hr_vocab_synthesize(hr_vocab **out, int32_t n_tokens, hr_error *err);
void hr_vocab_free(hr_vocab *v);

/* Token text (raw, as stored: SPM spaces are U+2581) and its length. */
const char *hr_vocab_text(const hr_vocab *v, int32_t id, size_t *len);
/* Id of an exact token text, or -1. */
int32_t hr_vocab_find(const hr_vocab *v, const char *text, size_t len);
/* The byte a "<0xAB>" token text stands for, or -1 for any other text. */
int hr_vocab_byte_value(const char *text, size_t len);
bool hr_vocab_is_control(const hr_vocab *v, int32_t id);

/* Writes the vocabulary as GGUF tokenizer.ggml.* metadata (model "llama", tokens,
 * scores, token types, special ids, flags). */
hr_status hr_vocab_to_gguf(const hr_vocab *v, hr_gguf_writer *w, hr_error *err);

#endif
