#include "tokenizer/tokenize.h"

#include <stdlib.h>
#include <string.h>

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

hr_status hr_tok_encode(const hr_vocab *v, const char *text, size_t len, unsigned flags,
                        hr_tokens *out, hr_error *err) {
    bool special = (flags & HR_TOK_ADD_SPECIAL) != 0;
    if (special && v->add_bos && v->bos_id >= 0 && hr_tokens_push(out, v->bos_id, err) != HR_OK)
        return err->status;
    if (hr_spm_encode(v, text, len, out, err) != HR_OK) return err->status;
    if (special && v->add_eos && v->eos_id >= 0 && hr_tokens_push(out, v->eos_id, err) != HR_OK)
        return err->status;
    return HR_OK;
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
    for (size_t i = 0; i < len; i++) {
        bool space = i + 2 < len && (uint8_t)text[i] == 0xE2 && (uint8_t)text[i + 1] == 0x96 &&
                     (uint8_t)text[i + 2] == 0x81;
        char c = text[i];
        if (space) {
            c = ' ';
            i += 2;
        }
        if (n < cap) buf[n] = c;
        n++;
    }
    return n;
}

size_t hr_tok_piece_after(const hr_vocab *v, int32_t prev, int32_t id, char *buf, size_t cap) {
    size_t n = hr_tok_piece(v, id, buf, cap);
    if (prev >= 0 && prev == v->bos_id && n > 0 && cap > 0 && buf[0] == ' ') {
        size_t kept = n - 1 < cap - 1 ? n - 1 : cap - 1;
        memmove(buf, buf + 1, kept);
        return n - 1;
    }
    return n;
}
