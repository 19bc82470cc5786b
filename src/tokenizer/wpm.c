/* WordPiece (BERT): a word is cut greedily into the longest pieces the vocabulary has,
 * left to right; if any remainder has no piece, the whole word is [UNK]. GGUF spells
 * word-initial pieces with a leading U+2581 and continuation pieces bare (where BERT's
 * vocab.txt writes "##"), so the word is looked up with U+2581 in front. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenize.h"

/* Hugging Face's max_input_chars_per_word: longer words are [UNK] outright. */
enum { WPM_MAX_WORD_CHARS = 100 };

static hr_status push_unk(const hr_vocab *v, hr_tokens *out, hr_error *err) {
    if (v->unk_id < 0)
        return hr_fail(err, HR_ERR_UNSUPPORTED, "a word has no WordPiece split and the vocabulary has no [UNK]");
    return hr_tokens_push(out, v->unk_id, err);
}

hr_status hr_wpm_encode_word(const hr_vocab *v, const char *word, size_t len, hr_tokens *out, hr_error *err) {
    if (len == 0) return HR_OK;
    size_t chars = 0;
    for (size_t i = 0; i < len; chars++) {
        int32_t cp;
        i += hr_tok_utf8_next(word + i, len - i, &cp);
    }
    if (chars > WPM_MAX_WORD_CHARS) return push_unk(v, out, err);
    size_t n = len + 3;
    char *buf = malloc(n);
    if (!buf) return hr_fail(err, HR_ERR_NOMEM, "out of memory for a %zu-byte word", len);
    memcpy(buf, "\xE2\x96\x81", 3);
    memcpy(buf + 3, word, len);
    size_t start = out->count;
    hr_status st = HR_OK;
    for (size_t i = 0; i < n && st == HR_OK;) {
        size_t longest = n - i < v->max_token_len ? n - i : v->max_token_len;
        int32_t id = -1;
        size_t j = longest;
        while (j > 0 && (id = hr_vocab_find(v, buf + i, j)) < 0) j--;
        if (id < 0) {
            out->count = start; /* the word has no complete split */
            st = push_unk(v, out, err);
            break;
        }
        st = hr_tokens_push(out, id, err);
        i += j;
    }
    free(buf);
    return st;
}
