/* Byte-pair encoding by merge rank. The merge loop follows the Hugging Face BPE model:
 * a heap of candidate pairs ordered by (rank, position); a popped pair is applied only
 * if the two symbols now at that place still merge into the id it was queued for. Each
 * merge queues at most two new pairs, so a word of n symbols costs O(n log n). */
#include "tokenizer/bpe.h"

#include <stdlib.h>
#include <string.h>

#include "tokenizer/pretokenize.h"

static const uint64_t EMPTY_KEY = UINT64_MAX;

struct hr_bpe_merges {
    uint64_t *keys; /* (left << 32) | right, EMPTY_KEY for a free slot */
    int32_t *ranks;
    int32_t *merged;
    unsigned bits; /* the table has 1 << bits slots */
    size_t count;
    int32_t *order; /* left, right of each merge in the order added */
};

static uint64_t pair_key(int32_t left, int32_t right) {
    return (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
}

static size_t slot_of(uint64_t key, unsigned bits) {
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> (64 - bits)); /* Fibonacci hashing */
}

static hr_status merges_alloc(hr_bpe_merges *m, unsigned bits, size_t order_cap, hr_error *err) {
    size_t slots = (size_t)1 << bits;
    m->keys = malloc(slots * sizeof *m->keys);
    m->ranks = malloc(slots * sizeof *m->ranks);
    m->merged = malloc(slots * sizeof *m->merged);
    int32_t *order = realloc(m->order, order_cap * 2 * sizeof *order);
    if (order) m->order = order;
    if (!m->keys || !m->ranks || !m->merged || !order)
        return hr_fail(err, HR_ERR_NOMEM, "out of memory for a table of %zu merges", slots / 2);
    memset(m->keys, 0xff, slots * sizeof *m->keys);
    m->bits = bits;
    return HR_OK;
}

hr_status hr_bpe_merges_new(hr_bpe_merges **out, size_t expected, hr_error *err) {
    *out = NULL;
    hr_bpe_merges *m = calloc(1, sizeof *m);
    if (!m) return hr_fail(err, HR_ERR_NOMEM, "out of memory for a merge table");
    unsigned bits = 4;
    while (((size_t)1 << bits) < expected * 2) bits++; /* at most half full */
    if (merges_alloc(m, bits, ((size_t)1 << bits) / 2, err) != HR_OK) {
        hr_bpe_merges_free(m);
        return err->status;
    }
    *out = m;
    return HR_OK;
}

void hr_bpe_merges_free(hr_bpe_merges *m) {
    if (!m) return;
    free(m->keys);
    free(m->ranks);
    free(m->merged);
    free(m->order);
    free(m);
}

/* Slot holding key, or the free slot where it would go. */
static size_t find_slot(const hr_bpe_merges *m, uint64_t key) {
    size_t mask = ((size_t)1 << m->bits) - 1;
    size_t i = slot_of(key, m->bits);
    while (m->keys[i] != EMPTY_KEY && m->keys[i] != key) i = (i + 1) & mask;
    return i;
}

static hr_status grow(hr_bpe_merges *m, hr_error *err) {
    hr_bpe_merges old = *m;
    m->order = NULL; /* merges_alloc reallocates order from scratch; keep the old one */
    if (merges_alloc(m, old.bits + 1, (size_t)1 << old.bits, err) != HR_OK) {
        free(m->keys);
        free(m->ranks);
        free(m->merged);
        free(m->order);
        *m = old;
        return err->status;
    }
    memcpy(m->order, old.order, old.count * 2 * sizeof *m->order);
    for (size_t i = 0; i < ((size_t)1 << old.bits); i++) {
        if (old.keys[i] == EMPTY_KEY) continue;
        size_t slot = find_slot(m, old.keys[i]);
        m->keys[slot] = old.keys[i];
        m->ranks[slot] = old.ranks[i];
        m->merged[slot] = old.merged[i];
    }
    free(old.keys);
    free(old.ranks);
    free(old.merged);
    free(old.order);
    return HR_OK;
}

hr_status hr_bpe_merges_add(hr_bpe_merges *m, int32_t left, int32_t right, int32_t merged, int32_t rank,
                            hr_error *err) {
    if ((m->count + 1) * 2 > ((size_t)1 << m->bits) && grow(m, err) != HR_OK) return err->status;
    uint64_t key = pair_key(left, right);
    size_t slot = find_slot(m, key);
    if (m->keys[slot] == key) return HR_OK;
    m->keys[slot] = key;
    m->ranks[slot] = rank;
    m->merged[slot] = merged;
    m->order[m->count * 2] = left;
    m->order[m->count * 2 + 1] = right;
    m->count++;
    return HR_OK;
}

size_t hr_bpe_merges_count(const hr_bpe_merges *m) { return m ? m->count : 0; }

void hr_bpe_merges_at(const hr_bpe_merges *m, size_t i, int32_t *left, int32_t *right) {
    *left = m->order[i * 2];
    *right = m->order[i * 2 + 1];
}

/* Rank of pair (left, right) and its merged id; false when the pair does not merge. */
static bool merge_lookup(const hr_bpe_merges *m, int32_t left, int32_t right, int32_t *rank, int32_t *merged) {
    size_t slot = find_slot(m, pair_key(left, right));
    if (m->keys[slot] == EMPTY_KEY) return false;
    *rank = m->ranks[slot];
    *merged = m->merged[slot];
    return true;
}

/* GPT-2 leaves the printable Latin-1 bytes as themselves: '!'..'~', U+00A1..U+00AC and
 * U+00AE..U+00FF. The other 68 bytes, in increasing order, become U+0100 onwards. */
static bool byte_is_printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

static uint32_t byte_to_cp(uint8_t b) {
    if (byte_is_printable(b)) return b;
    uint32_t n = 0;
    for (unsigned i = 0; i < b; i++) n += !byte_is_printable(i);
    return 0x100 + n;
}

size_t hr_bpe_byte_to_utf8(uint8_t b, char out[2]) {
    uint32_t cp = byte_to_cp(b);
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

int hr_bpe_cp_to_byte(uint32_t cp) {
    if (cp < 0x100) return byte_is_printable(cp) ? (int)cp : -1;
    uint32_t n = cp - 0x100;
    for (unsigned b = 0; b < 256; b++)
        if (!byte_is_printable(b) && n-- == 0) return (int)b;
    return -1;
}

/* ---- per-call session: symbol scratch, pair heap and word cache ---- */

typedef struct {
    int32_t rank, pos, merged;
} bpe_pair;

typedef struct {
    uint64_t hash;
    uint32_t key_off, key_len, ids_off, n_ids;
} cache_entry;

enum {
    CACHE_MAX_WORD = 64,          /* longer words rarely repeat; caching them only costs */
    CACHE_MAX_BYTES = 32 << 20,   /* words and ids one call may keep; then it stops adding */
};

struct hr_bpe_session {
    int32_t *ids, *prev, *next;
    size_t sym_cap;
    bpe_pair *heap;
    size_t heap_count, heap_cap;
    char *mapped; /* a byte-level word spelled in stand-ins, for whole-word lookups */
    size_t mapped_cap;
    /* cache: open addressing over entries; slot value is entry index + 1, 0 when free */
    uint32_t *slots;
    unsigned slot_bits;
    cache_entry *entries;
    size_t n_entries, entries_cap;
    char *keys;
    size_t keys_len, keys_cap;
    int32_t *cached_ids;
    size_t cached_len, cached_cap;
};

hr_status hr_bpe_session_new(hr_bpe_session **out, hr_error *err) {
    *out = calloc(1, sizeof **out);
    if (!*out) return hr_fail(err, HR_ERR_NOMEM, "out of memory for a tokenizer session");
    return HR_OK;
}

void hr_bpe_session_free(hr_bpe_session *s) {
    if (!s) return;
    free(s->ids);
    free(s->prev);
    free(s->next);
    free(s->heap);
    free(s->mapped);
    free(s->slots);
    free(s->entries);
    free(s->keys);
    free(s->cached_ids);
    free(s);
}

/* Grows *buf (of elem bytes each) to hold at least need elements. */
static bool reserve(void **buf, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t n = *cap ? *cap : 16;
    while (n < need) n *= 2;
    void *bigger = realloc(*buf, n * elem);
    if (!bigger) return false;
    *buf = bigger;
    *cap = n;
    return true;
}

/* ids, prev and next grow together. */
static bool reserve_symbols(hr_bpe_session *s, size_t need) {
    if (need <= s->sym_cap) return true;
    size_t n = s->sym_cap ? s->sym_cap : 16;
    while (n < need) n *= 2;
    int32_t **arrays[3] = {&s->ids, &s->prev, &s->next};
    for (int i = 0; i < 3; i++) {
        int32_t *bigger = realloc(*arrays[i], n * sizeof *bigger);
        if (!bigger) return false; /* the others keep at least sym_cap elements */
        *arrays[i] = bigger;
    }
    s->sym_cap = n;
    return true;
}

static uint64_t hash_word(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a, 64-bit */
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static const cache_entry *cache_find(const hr_bpe_session *s, uint64_t h, const char *word, size_t len) {
    if (!s->slots) return NULL;
    size_t mask = ((size_t)1 << s->slot_bits) - 1;
    for (size_t i = h & mask; s->slots[i]; i = (i + 1) & mask) {
        const cache_entry *e = &s->entries[s->slots[i] - 1];
        if (e->hash == h && e->key_len == len && memcmp(s->keys + e->key_off, word, len) == 0) return e;
    }
    return NULL;
}

/* Remembers word -> ids. A failed allocation only means the word is not cached. */
static void cache_put(hr_bpe_session *s, uint64_t h, const char *word, size_t len, const int32_t *ids,
                      size_t n_ids) {
    if (s->keys_len + s->cached_len * sizeof *ids + s->n_entries * sizeof(cache_entry) > CACHE_MAX_BYTES) return;
    if ((s->n_entries + 1) * 2 > ((size_t)1 << s->slot_bits) || !s->slots) {
        unsigned bits = s->slots ? s->slot_bits + 1 : 10;
        uint32_t *slots = calloc((size_t)1 << bits, sizeof *slots);
        if (!slots) return;
        size_t mask = ((size_t)1 << bits) - 1;
        for (size_t e = 0; e < s->n_entries; e++) {
            size_t i = s->entries[e].hash & mask;
            while (slots[i]) i = (i + 1) & mask;
            slots[i] = (uint32_t)e + 1;
        }
        free(s->slots);
        s->slots = slots;
        s->slot_bits = bits;
    }
    if (!reserve((void **)&s->entries, &s->entries_cap, s->n_entries + 1, sizeof *s->entries) ||
        !reserve((void **)&s->keys, &s->keys_cap, s->keys_len + len, 1) ||
        !reserve((void **)&s->cached_ids, &s->cached_cap, s->cached_len + n_ids, sizeof *s->cached_ids))
        return;
    cache_entry *e = &s->entries[s->n_entries];
    *e = (cache_entry){.hash = h, .key_off = (uint32_t)s->keys_len, .key_len = (uint32_t)len,
                       .ids_off = (uint32_t)s->cached_len, .n_ids = (uint32_t)n_ids};
    memcpy(s->keys + s->keys_len, word, len);
    if (n_ids) memcpy(s->cached_ids + s->cached_len, ids, n_ids * sizeof *ids); /* a word may give no ids */
    s->keys_len += len;
    s->cached_len += n_ids;
    size_t mask = ((size_t)1 << s->slot_bits) - 1;
    size_t i = h & mask;
    while (s->slots[i]) i = (i + 1) & mask;
    s->slots[i] = (uint32_t)++s->n_entries;
}

/* Lower rank first; on equal ranks the leftmost pair. */
static bool pair_before(const bpe_pair *a, const bpe_pair *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(hr_bpe_session *s, bpe_pair p) {
    size_t i = s->heap_count++;
    s->heap[i] = p;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_before(&s->heap[i], &s->heap[parent])) break;
        bpe_pair tmp = s->heap[i];
        s->heap[i] = s->heap[parent];
        s->heap[parent] = tmp;
        i = parent;
    }
}

static bpe_pair heap_pop(hr_bpe_session *s) {
    bpe_pair top = s->heap[0];
    s->heap[0] = s->heap[--s->heap_count];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        if (l < s->heap_count && pair_before(&s->heap[l], &s->heap[best])) best = l;
        if (r < s->heap_count && pair_before(&s->heap[r], &s->heap[best])) best = r;
        if (best == i) break;
        bpe_pair tmp = s->heap[i];
        s->heap[i] = s->heap[best];
        s->heap[best] = tmp;
        i = best;
    }
    return top;
}

/* Queues the pair of symbol pos and the one after it, if they merge. */
static void queue_pair(hr_bpe_session *s, const hr_bpe_merges *m, int32_t pos) {
    int32_t next = s->next[pos], rank, merged;
    if (next >= 0 && merge_lookup(m, s->ids[pos], s->ids[next], &rank, &merged))
        heap_push(s, (bpe_pair){.rank = rank, .pos = pos, .merged = merged});
}

/* A character (or byte) without a token: <unk>, fused with an <unk> just before it when
 * the vocabulary says so; with no <unk> it is dropped, as Hugging Face and llama.cpp
 * both do. */
static void push_unknown(hr_bpe_session *s, const hr_vocab *v, size_t *n, bool *prev_unk) {
    if (v->unk_id < 0) return;
    if (!(v->fuse_unk && *prev_unk)) s->ids[(*n)++] = v->unk_id;
    *prev_unk = true;
}

/* Fills s->ids with the word's initial symbols: one per byte (byte-level), or one per
 * character with byte fallback for characters without a token. */
static void initial_symbols(hr_bpe_session *s, const hr_vocab *v, const char *word, size_t len, size_t *n) {
    *n = 0;
    bool prev_unk = false;
    for (size_t i = 0; i < len;) {
        int32_t cp, id;
        /* an invalid byte is a character of its own */
        size_t clen = v->byte_level ? 1 : hr_tok_utf8_next(word + i, len - i, &cp);
        id = v->byte_level ? v->byte_token[(uint8_t)word[i]] : hr_vocab_find(v, word + i, clen);
        bool bytes_ok = !v->byte_level && v->byte_fallback;
        for (size_t k = 0; id < 0 && bytes_ok && k < clen; k++) bytes_ok = v->byte_token[(uint8_t)word[i + k]] >= 0;
        if (id >= 0) {
            s->ids[(*n)++] = id;
            prev_unk = false;
        } else if (bytes_ok) {
            for (size_t k = 0; k < clen; k++) s->ids[(*n)++] = v->byte_token[(uint8_t)word[i + k]];
            prev_unk = false;
        } else {
            push_unknown(s, v, n, &prev_unk);
        }
        i += clen;
    }
}

/* The word as a single token, when the vocabulary skips merging for whole tokens. */
static int32_t whole_word(hr_bpe_session *s, const hr_vocab *v, const char *word, size_t len) {
    if (!v->byte_level) return hr_vocab_find(v, word, len);
    if (!reserve((void **)&s->mapped, &s->mapped_cap, len * 2, 1)) return -1;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) n += hr_bpe_byte_to_utf8((uint8_t)word[i], s->mapped + n);
    return hr_vocab_find(v, s->mapped, n);
}

static hr_status encode_uncached(hr_bpe_session *s, const hr_vocab *v, const char *word, size_t len,
                                 hr_tokens *out, hr_error *err) {
    if (v->ignore_merges) {
        int32_t id = whole_word(s, v, word, len);
        if (id >= 0) return hr_tokens_push(out, id, err);
    }
    /* A word never has more symbols than bytes (byte fallback gives one per byte). The
     * heap gets n - 1 pairs at first and at most two per merge: under 3n in all. */
    if (!reserve_symbols(s, len) || !reserve((void **)&s->heap, &s->heap_cap, len * 3, sizeof *s->heap))
        return hr_fail(err, HR_ERR_NOMEM, "out of memory encoding a %zu-byte word", len);
    size_t n;
    initial_symbols(s, v, word, len, &n);
    for (size_t i = 0; i < n; i++) {
        s->prev[i] = (int32_t)i - 1;
        s->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    s->heap_count = 0;
    if (v->merges)
        for (size_t i = 0; i + 1 < n; i++) queue_pair(s, v->merges, (int32_t)i);
    /* A merged-away symbol is marked by prev == -2. */
    while (s->heap_count > 0) {
        bpe_pair p = heap_pop(s);
        int32_t right = s->next[p.pos], rank, merged;
        if (s->prev[p.pos] == -2 || right < 0) continue;
        if (!merge_lookup(v->merges, s->ids[p.pos], s->ids[right], &rank, &merged) || merged != p.merged)
            continue; /* a side changed since the pair was queued */
        s->ids[p.pos] = merged;
        s->next[p.pos] = s->next[right];
        if (s->next[right] >= 0) s->prev[s->next[right]] = p.pos;
        s->prev[right] = -2;
        if (s->prev[p.pos] >= 0) queue_pair(s, v->merges, s->prev[p.pos]);
        queue_pair(s, v->merges, p.pos);
    }
    for (int32_t i = n ? 0 : -1; i >= 0; i = s->next[i])
        if (hr_tokens_push(out, s->ids[i], err) != HR_OK) return err->status;
    return HR_OK;
}

/* One piece through the cache. */
static hr_status encode_cached(hr_bpe_session *s, const hr_vocab *v, const char *word, size_t len, hr_tokens *out,
                               hr_error *err) {
    if (len == 0) return HR_OK;
    bool cacheable = len <= CACHE_MAX_WORD;
    uint64_t h = 0;
    if (cacheable) {
        h = hash_word(word, len);
        const cache_entry *e = cache_find(s, h, word, len);
        if (e) {
            for (uint32_t i = 0; i < e->n_ids; i++)
                if (hr_tokens_push(out, s->cached_ids[e->ids_off + i], err) != HR_OK) return err->status;
            return HR_OK;
        }
    }
    size_t start = out->count;
    if (encode_uncached(s, v, word, len, out, err) != HR_OK) return err->status;
    if (cacheable) cache_put(s, h, word, len, out->ids + start, out->count - start);
    return HR_OK;
}

hr_status hr_bpe_encode_word(hr_bpe_session *s, const hr_vocab *v, const char *word, size_t len, hr_tokens *out,
                             hr_error *err) {
    if (v->byte_level || v->ignore_merges) return encode_cached(s, v, word, len, out, err);
    /* SentencePiece-style BPE sees a whole text as one word; cut it where no merge can
     * cross (the result is the same) so that the pieces are short and cacheable. */
    size_t from = 0;
    for (const char *p = word; len > 0 && (p = memchr(p + 1, 0xE2, len - (size_t)(p + 1 - word))) != NULL;) {
        size_t pos = (size_t)(p - word);
        if (!hr_vocab_word_start(v, word, pos, len)) continue;
        if (encode_cached(s, v, word + from, pos - from, out, err) != HR_OK) return err->status;
        from = pos;
    }
    return encode_cached(s, v, word + from, len - from, out, err);
}
