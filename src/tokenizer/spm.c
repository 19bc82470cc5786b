/* SentencePiece-style encoding: the text (spaces spelled U+2581, with a leading one when
 * the caller asks for the dummy prefix) is split into UTF-8 characters, then the adjacent
 * pair whose concatenation is the highest-scoring token is merged, again and again,
 * leftmost first on equal scores. Characters left without a token fall back to byte
 * tokens. A heap of candidate pairs keeps this O(n log n) rather than rescanning. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenize.h"

typedef struct {
    int32_t prev, next; /* neighbouring symbols, -1 at the ends */
    uint32_t start, len; /* bytes of the working text; len 0 once merged away */
} spm_symbol;

typedef struct {
    float score;
    int32_t left;  /* symbol index of the pair's left half */
    uint32_t len;  /* combined length when queued: stale entries no longer match */
} spm_pair;

typedef struct {
    spm_pair *items;
    size_t count;
} spm_heap;

/* Higher score first; on equal scores the leftmost pair. */
static int pair_before(const spm_pair *a, const spm_pair *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(spm_heap *h, spm_pair p) {
    size_t i = h->count++;
    h->items[i] = p;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_before(&h->items[i], &h->items[parent])) break;
        spm_pair tmp = h->items[i];
        h->items[i] = h->items[parent];
        h->items[parent] = tmp;
        i = parent;
    }
}

static spm_pair heap_pop(spm_heap *h) {
    spm_pair top = h->items[0];
    h->items[0] = h->items[--h->count];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        if (l < h->count && pair_before(&h->items[l], &h->items[best])) best = l;
        if (r < h->count && pair_before(&h->items[r], &h->items[best])) best = r;
        if (best == i) break;
        spm_pair tmp = h->items[i];
        h->items[i] = h->items[best];
        h->items[best] = tmp;
        i = best;
    }
    return top;
}

/* Length of the UTF-8 sequence starting at s (1 for an invalid lead or a truncated
 * sequence, so every byte is consumed exactly once). */
static uint32_t utf8_char_len(const uint8_t *s, size_t avail) {
    uint8_t c = s[0];
    uint32_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
    if (n > avail) return 1;
    for (uint32_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 1;
    return n;
}

static void try_pair(const hr_vocab *v, const char *text, const spm_symbol *syms, int32_t left,
                     spm_heap *heap) {
    if (left < 0 || syms[left].next < 0) return;
    const spm_symbol *a = &syms[left], *b = &syms[a->next];
    int32_t id = hr_vocab_find(v, text + a->start, a->len + b->len);
    if (id < 0) return;
    heap_push(heap, (spm_pair){.score = v->scores[id], .left = left, .len = a->len + b->len});
}

/* Encodes work[from..to): one character per symbol, merges by score, then the symbols'
 * tokens (byte fallback for those without one). syms and heap hold to - from entries
 * and twice that. */
static hr_status encode_range(const hr_vocab *v, const char *work, size_t from, size_t to, spm_symbol *syms,
                              spm_heap *heap, hr_tokens *out, hr_error *err) {
    int32_t n_syms = 0;
    for (size_t pos = from; pos < to;) {
        uint32_t clen = utf8_char_len((const uint8_t *)work + pos, to - pos);
        syms[n_syms] = (spm_symbol){.prev = n_syms - 1, .next = -1, .start = (uint32_t)pos, .len = clen};
        if (n_syms > 0) syms[n_syms - 1].next = n_syms;
        n_syms++;
        pos += clen;
    }
    heap->count = 0;
    for (int32_t i = 0; i + 1 < n_syms; i++) try_pair(v, work, syms, i, heap);

    /* Each merge removes one symbol and queues at most two pairs, so the heap never
     * holds more than twice the symbols. */
    while (heap->count > 0) {
        spm_pair p = heap_pop(heap);
        spm_symbol *a = &syms[p.left];
        if (a->len == 0 || a->next < 0) continue;
        spm_symbol *b = &syms[a->next];
        if (a->len + b->len != p.len) continue; /* one side changed since it was queued */
        a->len += b->len;
        b->len = 0;
        a->next = b->next;
        if (b->next >= 0) syms[b->next].prev = p.left;
        try_pair(v, work, syms, a->prev, heap);
        try_pair(v, work, syms, p.left, heap);
    }

    hr_status st = HR_OK;
    for (int32_t i = 0; i >= 0 && i < n_syms && st == HR_OK; i = syms[i].next) {
        int32_t id = hr_vocab_find(v, work + syms[i].start, syms[i].len);
        if (id >= 0) {
            st = hr_tokens_push(out, id, err);
            continue;
        }
        for (uint32_t k = 0; k < syms[i].len && st == HR_OK; k++) {
            uint8_t byte = (uint8_t)work[syms[i].start + k];
            int32_t byte_id = v->byte_token[byte] >= 0 ? v->byte_token[byte] : v->unk_id;
            if (byte_id < 0)
                st = hr_fail(err, HR_ERR_UNSUPPORTED,
                             "cannot encode byte 0x%02X: the vocabulary has neither byte tokens nor <unk>", byte);
            else
                st = hr_tokens_push(out, byte_id, err);
        }
    }
    return st;
}

hr_status hr_spm_encode(const hr_vocab *v, const char *text, size_t len, bool prefix, hr_tokens *out,
                        hr_error *err) {
    if (len == 0) return HR_OK;
    static const char space[] = "\xE2\x96\x81";
    size_t spaces = 0;
    for (size_t i = 0; i < len; i++) spaces += text[i] == ' ';
    if (len > UINT32_MAX / 3 - 1)
        return hr_fail(err, HR_ERR_RANGE, "text of %zu bytes is too long to tokenize at once", len);
    /* Each space grows from 1 to 3 bytes; the prefix adds 3. */
    size_t work_len = len + 2 * spaces + (prefix ? 3 : 0);
    char *work = malloc(work_len + 1);
    spm_symbol *syms = malloc(work_len * sizeof *syms);
    spm_heap heap = {.items = malloc(work_len * 2 * sizeof *heap.items)};
    hr_status st = HR_OK;
    if (!work || !syms || !heap.items) {
        st = hr_fail(err, HR_ERR_NOMEM, "out of memory tokenizing %zu bytes", len);
        goto done;
    }
    size_t w = 0;
    if (prefix) {
        memcpy(work, space, 3);
        w = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(work + w, space, 3);
            w += 3;
        } else {
            work[w++] = text[i];
        }
    }
    work[w] = '\0';
    /* Word by word where no merge can cross: the same result as the whole text at once,
     * with a small heap instead of a huge one. */
    size_t from = 0;
    for (const char *p = work; st == HR_OK && (p = memchr(p + 1, 0xE2, w - (size_t)(p + 1 - work))) != NULL;) {
        size_t pos = (size_t)(p - work);
        if (!hr_vocab_word_start(v, work, pos, w)) continue;
        st = encode_range(v, work, from, pos, syms, &heap, out, err);
        from = pos;
    }
    if (st == HR_OK) st = encode_range(v, work, from, w, syms, &heap, out, err);
done:
    free(work);
    free(syms);
    free(heap.items);
    return st;
}
