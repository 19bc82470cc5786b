#include "tokenizer/tokenize.h"

#include <stdlib.h>
#include <string.h>

#include "tokenizer/bpe.h"
#include "tokenizer/normalize.h"
#include "tokenizer/pretokenize.h"

hr_status hr_tokens_push(hr_tokens *t, int32_t id, hr_error *err) {
    if (t->count == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        int32_t *bigger = realloc(t->ids, cap * sizeof *bigger);
        if (!bigger) return hr_fail(err, HR_ERR_NOMEM, "out of memory for %zu token ids", cap);
        t->ids = bigger;
        t->cap = cap;
    }
    t->ids[t->count++] = id;
    return HR_OK;
}

void hr_tokens_free(hr_tokens *t) {
    free(t->ids);
    memset(t, 0, sizeof *t);
}

/* ---- special and added tokens ---- */

/* The code point that ends at text[end], looking no further back than lo; -1 when there
 * is none or its bytes are not valid UTF-8. */
static int32_t cp_before(const char *text, size_t lo, size_t end) {
    if (end <= lo) return -1;
    size_t i = end - 1;
    while (i > lo && end - i < 4 && ((uint8_t)text[i] & 0xC0) == 0x80) i--;
    int32_t cp;
    return hr_tok_utf8_next(text + i, end - i, &cp) == end - i ? cp : -1;
}

static bool special_allowed(const hr_vocab_special *s, unsigned flags, bool normalized_pass) {
    bool allowed = (flags & HR_TOK_PARSE_SPECIAL) || (s->flags & HR_SPECIAL_ALWAYS);
    return allowed && ((s->flags & HR_SPECIAL_NORMALIZED) != 0) == normalized_pass;
}

/* Finds the leftmost, then longest, special token in text[from..len) that flags allow,
 * in raw text (normalized_pass false) or normalized text. [*ms, *me) includes the white
 * space an lstrip/rstrip token swallows. */
static bool next_special(const hr_vocab *v, const char *text, size_t from, size_t len, unsigned flags,
                         bool normalized_pass, size_t *ms, size_t *me, int32_t *id) {
    if (v->n_specials == 0) return false;
    for (size_t pos = from; pos < len; pos++) {
        uint8_t b = (uint8_t)text[pos];
        for (uint32_t k = v->special_start[b]; k < v->special_start[b + 1]; k++) {
            const hr_vocab_special *s = &v->specials[k];
            size_t tlen = v->text_len[s->id];
            if (tlen > len - pos || !special_allowed(s, flags, normalized_pass) ||
                memcmp(text + pos, v->text_blob + v->text_offset[s->id], tlen) != 0)
                continue;
            if (s->flags & HR_SPECIAL_SINGLE_WORD) {
                int32_t after;
                if (pos + tlen < len) hr_tok_utf8_next(text + pos + tlen, len - pos - tlen, &after);
                else after = -1;
                if (hr_tok_is_word_char(cp_before(text, 0, pos)) || hr_tok_is_word_char(after)) continue;
            }
            size_t start = pos, end = pos + tlen;
            while ((s->flags & HR_SPECIAL_LSTRIP) && start > from) {
                int32_t cp = cp_before(text, from, start);
                if (!hr_tok_is_space(cp)) break;
                char enc[4];
                start -= hr_tok_utf8_put((uint32_t)cp, enc);
            }
            while ((s->flags & HR_SPECIAL_RSTRIP) && end < len) {
                int32_t cp;
                size_t n = hr_tok_utf8_next(text + end, len - end, &cp);
                if (!hr_tok_is_space(cp)) break;
                end += n;
            }
            *ms = start;
            *me = end;
            *id = s->id;
            return true;
        }
    }
    return false;
}

/* ---- the pipeline after special tokens ---- */

typedef struct {
    const hr_vocab *v;
    unsigned flags;
    hr_tokens *out;
    hr_bpe_session *bpe;
    hr_pretok_state pre;
    bool pre_ready;
    hr_tok_buf norm;
} encoder;

static void encoder_free(encoder *e) {
    hr_bpe_session_free(e->bpe);
    if (e->pre_ready) hr_pretok_state_free(&e->pre);
    hr_tok_buf_free(&e->norm);
}

static hr_status encode_word(encoder *e, const char *word, size_t len, hr_error *err) {
    if (e->v->kind == HR_VOCAB_WPM) return hr_wpm_encode_word(e->v, word, len, e->out, err);
    if (!e->bpe && hr_bpe_session_new(&e->bpe, err) != HR_OK) return err->status;
    return hr_bpe_encode_word(e->bpe, e->v, word, len, e->out, err);
}

/* Normalized text without special tokens: pre-tokenize, then encode each word. */
static hr_status encode_words(encoder *e, const char *text, size_t len, bool at_start, hr_error *err) {
    if (!e->v->pretok) return encode_word(e, text, len, err);
    if (!e->pre_ready) {
        if (hr_pretok_state_init(&e->pre, err) != HR_OK) return err->status;
        e->pre_ready = true;
    }
    if (hr_pretok_run(e->v->pretok, &e->pre, text, len, at_start, err) != HR_OK) return err->status;
    for (size_t i = 0; i < hr_pretok_count(&e->pre); i++) {
        size_t wlen;
        const char *word = hr_pretok_word(&e->pre, i, &wlen);
        if (encode_word(e, word, wlen, err) != HR_OK) return err->status;
    }
    return HR_OK;
}

/* A raw-text segment between special tokens: normalize, split out the added tokens
 * that match normalized text, and encode the rest. */
static hr_status encode_segment(encoder *e, const char *text, size_t len, bool at_start, hr_error *err) {
    if (hr_tok_normalize(e->v->normalizer, text, len, &e->norm, err) != HR_OK) return err->status;
    /* Read in place: the buffer is rewritten only by the next segment. */
    const char *s = e->norm.data;
    size_t n = e->norm.len, pos = 0, ms, me;
    int32_t id;
    while (next_special(e->v, s, pos, n, e->flags, true, &ms, &me, &id)) {
        if (ms > pos && encode_words(e, s + pos, ms - pos, at_start && pos == 0, err) != HR_OK) return err->status;
        if (hr_tokens_push(e->out, id, err) != HR_OK) return err->status;
        pos = me;
    }
    return pos < n ? encode_words(e, s + pos, n - pos, at_start && pos == 0, err) : HR_OK;
}

hr_status hr_tok_encode(const hr_vocab *v, const char *text, size_t len, unsigned flags, hr_tokens *out,
                        hr_error *err) {
    bool chat = (flags & HR_TOK_CHAT) != 0;
    if (chat) flags = HR_TOK_PARSE_SPECIAL;
    bool special = (flags & HR_TOK_ADD_SPECIAL) != 0;
    size_t start = out->count;
    if (special && v->add_bos && v->bos_id >= 0 && hr_tokens_push(out, v->bos_id, err) != HR_OK)
        return err->status;
    encoder e = {.v = v, .flags = flags, .out = out};
    hr_status st = HR_OK;
    /* SentencePiece puts its dummy prefix before the text and again after each special
     * token, as llama.cpp does. */
    bool after_special = true;
    size_t pos = 0, ms, me;
    int32_t id;
    while (st == HR_OK && pos < len) {
        bool found = next_special(v, text, pos, len, flags, false, &ms, &me, &id);
        size_t end = found ? ms : len;
        if (end > pos) {
            if (v->kind == HR_VOCAB_SPM)
                st = hr_spm_encode(v, text + pos, end - pos, v->add_space_prefix && after_special, out, err);
            else
                st = encode_segment(&e, text + pos, end - pos, pos == 0, err);
            after_special = false;
        }
        if (st == HR_OK && found) {
            st = hr_tokens_push(out, id, err);
            after_special = true;
        }
        pos = found ? me : len;
    }
    encoder_free(&e);
    if (st == HR_OK && special && v->add_eos && v->eos_id >= 0) st = hr_tokens_push(out, v->eos_id, err);
    if (st == HR_OK && chat && v->add_bos && v->bos_id >= 0 && (out->count == start || out->ids[start] != v->bos_id)) {
        st = hr_tokens_push(out, v->bos_id, err);
        if (st == HR_OK) {
            memmove(out->ids + start + 1, out->ids + start, (out->count - start - 1) * sizeof *out->ids);
            out->ids[start] = v->bos_id;
        }
    }
    return st;
}

/* ---- ids back to bytes ---- */

static void emit(char *buf, size_t cap, size_t *n, const char *bytes, size_t len) {
    for (size_t i = 0; i < len; i++, (*n)++)
        if (*n < cap) buf[*n] = bytes[i];
}

/* Byte-level BPE: every character maps back to its byte; a token with a character
 * outside the table (an added token kept as plain text) is copied as it is. */
static size_t piece_byte_level(const char *text, size_t len, char *buf, size_t cap) {
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        int32_t cp;
        i += hr_tok_utf8_next(text + i, len - i, &cp);
        if (cp < 0 || hr_bpe_cp_to_byte((uint32_t)cp) < 0) {
            emit(buf, cap, &n, text, len);
            return n;
        }
    }
    for (size_t i = 0; i < len;) {
        int32_t cp;
        i += hr_tok_utf8_next(text + i, len - i, &cp);
        char byte = (char)hr_bpe_cp_to_byte((uint32_t)cp);
        emit(buf, cap, &n, &byte, 1);
    }
    return n;
}

size_t hr_tok_piece(const hr_vocab *v, int32_t id, char *buf, size_t cap) {
    if (id < 0 || id >= v->n_tokens) return 0;
    uint8_t type = v->types[id];
    if (type == HR_TOKEN_CONTROL || type == HR_TOKEN_UNUSED) return 0;
    size_t len;
    const char *text = hr_vocab_text(v, id, &len);
    int byte = type == HR_TOKEN_BYTE ? hr_vocab_byte_value(text, len) : -1;
    if (byte >= 0) {
        if (cap) buf[0] = (char)byte;
        return 1;
    }
    size_t n = 0;
    if (v->byte_level) {
        if (type != HR_TOKEN_USER_DEFINED) return piece_byte_level(text, len, buf, cap);
        emit(buf, cap, &n, text, len);
        return n;
    }
    for (size_t i = 0; i < len; i++) {
        bool space = i + 2 < len && (uint8_t)text[i] == 0xE2 && (uint8_t)text[i + 1] == 0x96 &&
                     (uint8_t)text[i + 2] == 0x81;
        emit(buf, cap, &n, space ? " " : text + i, 1);
        if (space) i += 2;
    }
    return n;
}

size_t hr_tok_piece_after(const hr_vocab *v, int32_t prev, int32_t id, char *buf, size_t cap) {
    size_t n = hr_tok_piece(v, id, buf, cap);
    if (v->add_space_prefix && prev >= 0 && prev == v->bos_id && n > 0 && cap > 0 && buf[0] == ' ') {
        size_t kept = n - 1 < cap - 1 ? n - 1 : cap - 1;
        memmove(buf, buf + 1, kept);
        return n - 1;
    }
    return n;
}

hr_status hr_tok_decode(const hr_vocab *v, const int32_t *ids, size_t n, char **out, size_t *len, hr_error *err) {
    *out = NULL;
    *len = 0;
    hr_tok_buf text = {0};
    char small[256];
    hr_status st = hr_tok_buf_append(&text, "", 0, err);
    bool first_text = true;
    for (size_t i = 0; i < n && st == HR_OK; i++) {
        size_t plen = hr_tok_piece(v, ids[i], small, sizeof small);
        const char *piece = small;
        char *big = NULL;
        if (plen > sizeof small) {
            big = malloc(plen);
            if (!big) {
                st = hr_fail(err, HR_ERR_NOMEM, "out of memory decoding a %zu-byte token", plen);
                break;
            }
            hr_tok_piece(v, ids[i], big, plen);
            piece = big;
        }
        /* The dummy prefix of the first text is not part of the text. */
        size_t skip = first_text && plen > 0 && v->add_space_prefix && piece[0] == ' ' ? 1 : 0;
        if (plen > 0) first_text = false;
        st = hr_tok_buf_append(&text, piece + skip, plen - skip, err);
        free(big);
    }
    if (st != HR_OK) {
        hr_tok_buf_free(&text);
        return st;
    }
    *out = text.data;
    *len = text.len;
    return HR_OK;
}
