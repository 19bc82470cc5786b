/* tokenizer/vocab — a model's vocabulary: token texts, scores, types, special ids and
 * flags, the tokens that are matched whole in text (special and added tokens), and the
 * lookups every tokenizer algorithm needs (text -> id, byte -> id). A vocabulary also
 * holds the text pipeline its model family tokenizes with: a normalizer, a
 * pre-tokenizer and, for BPE, the merge ranks.
 *
 * Owns: copies of all token texts (one blob), the lookup tables, the special-token
 * index, and the pipeline objects hung on it (freed with the vocabulary).
 * Must not: encode or decode text (spm.c, bpe.c, wpm.c and tokenize.c do); it only
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

/* The algorithm that turns one pre-tokenized word into ids. */
typedef enum {
    HR_VOCAB_SPM, /* GGUF "llama": SentencePiece-style, score-driven merges, byte fallback */
    HR_VOCAB_BPE, /* GGUF "gpt2" and Hugging Face BPE: rank-driven merges */
    HR_VOCAB_WPM, /* GGUF "bert": WordPiece, greedy longest match */
} hr_vocab_kind;

/* How a special or added token is matched in text (Hugging Face AddedToken flags). */
enum {
    HR_SPECIAL_LSTRIP = 1 << 0,      /* the match swallows whitespace on its left */
    HR_SPECIAL_RSTRIP = 1 << 1,      /* ... and on its right */
    HR_SPECIAL_SINGLE_WORD = 1 << 2, /* only when not inside a word */
    HR_SPECIAL_NORMALIZED = 1 << 3,  /* matched in normalized text, not in the raw text */
    HR_SPECIAL_ALWAYS = 1 << 4,      /* matched even without HR_TOK_PARSE_SPECIAL: user-defined
                                        and non-special added tokens, which the model's own
                                        tokenizer always splits out */
};

typedef struct {
    int32_t id;
    uint8_t flags; /* HR_SPECIAL_* */
} hr_vocab_special;

typedef struct hr_bpe_merges hr_bpe_merges;         /* bpe.h */
typedef struct hr_tok_normalizer hr_tok_normalizer; /* normalize.h */
typedef struct hr_pretok hr_pretok;                 /* pretokenize.h */

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
    /* A space (U+2581) goes before the text: SPM's "dummy prefix". SPM encoding adds it;
     * for Hugging Face vocabularies the normalizer does and this flag only tells
     * hr_tok_piece_after to drop it after BOS. */
    bool add_space_prefix;
    /* The token standing for each raw byte, -1 when absent: the <0xXX> token in
     * SentencePiece-style vocabularies, the GPT-2 unicode stand-in in byte-level ones. */
    int32_t byte_token[256];
    uint32_t max_token_len;
    /* Bytes that some token has right before a U+2581 that follows other text. A merge
     * can cross the start of a word (U+2581 after anything but U+2581) only after one
     * of them; see hr_vocab_word_start. */
    bool space_joins[256];
    /* open-addressing hash of token text -> id */
    int32_t *hash_slots;
    uint32_t hash_mask;

    /* BPE options (Hugging Face model.BPE fields). */
    bool byte_level;    /* words are bytes mapped through the GPT-2 byte table */
    bool byte_fallback; /* a character without a token becomes its <0xXX> tokens */
    bool ignore_merges; /* a word that is a token is emitted whole, unmerged */
    bool fuse_unk;      /* consecutive unknown characters give one <unk> */
    hr_bpe_merges *merges;

    hr_tok_normalizer *normalizer; /* NULL: text is used as it is */
    hr_pretok *pretok;             /* NULL: each text segment is one word */
    char pre_name[64];             /* GGUF tokenizer.ggml.pre, "" for others */

    /* Tokens matched whole in text, grouped by first byte and longest first within a
     * group so the first hit at a position is the longest. */
    hr_vocab_special *specials;
    uint32_t n_specials;
    uint32_t special_start[257]; /* specials[special_start[b] .. special_start[b+1]) begin with b */

    size_t blob_len_, blob_cap_; /* private: text_blob fill while building */
};

/* Builds a vocabulary from GGUF metadata (tokenizer.ggml.*): models "llama" (SPM),
 * "gpt2" (byte-level BPE, pre-tokenized per tokenizer.ggml.pre) and "bert" (WordPiece). */
hr_status hr_vocab_from_gguf(hr_vocab **out, const hr_gguf *g, hr_error *err);
/* Reads a llama2.c tokenizer.bin holding n_tokens entries. Ids 0/1/2 are unk/bos/eos
 * as in llama2.c; <0xXX> pieces become byte tokens. */
hr_status hr_vocab_from_llama2c(hr_vocab **out, const char *path, int32_t n_tokens, hr_error *err);
/* A made-up SentencePiece-style vocabulary of n_tokens (at least 259): <unk>, <s>,
 * </s>, the 256 byte tokens, then letter pieces with and without a leading U+2581,
 * scored so that longer pieces merge later. For synthetic models. */
hr_status hr_vocab_synthesize(hr_vocab **out, int32_t n_tokens, hr_error *err);
void hr_vocab_free(hr_vocab *v);

/* Building a vocabulary from another format (hf_tokenizer.c): hr_vocab_new gives
 * n_tokens empty NORMAL tokens and no special ids; set each token, then hr_vocab_finish
 * builds the lookups. On failure the caller frees with hr_vocab_free. */
hr_status hr_vocab_new(hr_vocab **out, int64_t n_tokens, hr_error *err);
hr_status hr_vocab_set_token(hr_vocab *v, int32_t id, const char *text, size_t len, uint8_t type,
                             float score, hr_error *err);
/* Builds the text index, the byte tables and, unless specials were set already, the
 * special-token index from the token types (control and unknown tokens need
 * HR_TOK_PARSE_SPECIAL; user-defined ones are always matched). */
hr_status hr_vocab_finish(hr_vocab *v, hr_error *err);
/* Replaces the special-token list (copied); hr_vocab_finish indexes it. */
hr_status hr_vocab_set_specials(hr_vocab *v, const hr_vocab_special *specials, uint32_t n, hr_error *err);

/* Token text (raw, as stored: SPM spaces are U+2581) and its length. */
const char *hr_vocab_text(const hr_vocab *v, int32_t id, size_t *len);
/* Id of an exact token text, or -1. */
int32_t hr_vocab_find(const hr_vocab *v, const char *text, size_t len);
/* The byte a "<0xAB>" token text stands for, or -1 for any other text. */
int hr_vocab_byte_value(const char *text, size_t len);
bool hr_vocab_is_control(const hr_vocab *v, int32_t id);
/* Whether s[pos..len) starts a word that no SentencePiece-style merge can join to the
 * text before it: a U+2581 after a character that is not one, and after a byte no token
 * joins to a U+2581. Encoding word by word from such points gives exactly the result
 * of encoding the whole text, with less work. */
bool hr_vocab_word_start(const hr_vocab *v, const char *s, size_t pos, size_t len);

/* Writes the vocabulary as GGUF tokenizer.ggml.* metadata (model, tokens, scores or
 * merges, token types, special ids, flags). A vocabulary read from a tokenizer.json
 * whose pipeline has no GGUF name is refused with HR_ERR_UNSUPPORTED. */
hr_status hr_vocab_to_gguf(const hr_vocab *v, hr_gguf_writer *w, hr_error *err);

#endif
