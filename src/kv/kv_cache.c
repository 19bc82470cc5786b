#include "kv/kv_cache.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "formats/ggml_type.h"
#include "kernels/quant.h"

enum { BLOCK_FREE = 0, BLOCK_CACHED = 1, BLOCK_OWNED = 2 };

typedef struct {
    int32_t refcount;
    uint8_t state;
    bool hashed;
    uint64_t hash;        /* prefix hash up to this block's end (when hashed) */
    uint64_t parent_hash; /* prefix hash before this block */
    int32_t lru_prev, lru_next; /* cached blocks, oldest first */
    int32_t bucket_next;        /* next block in the same hash bucket */
} kv_block;

struct hr_kv_pool {
    hr_kv_config cfg;
    size_t head_bytes, block_bytes; /* head_bytes: one head of one position */
    int32_t n_head_kv;
    uint8_t *mem;
    kv_block *blocks;
    int32_t *block_tokens_ids; /* n_blocks x block_tokens: the tokens a hashed block holds */
    int32_t *free_stack;
    int32_t n_free;
    int32_t lru_head, lru_tail, n_cached;
    int32_t *buckets;
    uint32_t bucket_mask;
    uint64_t evictions;
};

uint64_t hr_kv_bytes_per_token(int32_t n_layer, int32_t kv_dim, uint32_t type) {
    uint64_t row;
    if (n_layer <= 0 || kv_dim <= 0 || !hr_type_row_bytes(type, (uint64_t)kv_dim, &row)) return 0;
    return row * 2 * (uint64_t)n_layer;
}

uint64_t hr_kv_pool_bytes(const hr_kv_config *cfg) {
    uint64_t per_token = hr_kv_bytes_per_token(cfg->n_layer, cfg->kv_dim, cfg->type);
    if (cfg->block_tokens <= 0 || cfg->n_blocks <= 0) return 0;
    return per_token * (uint64_t)cfg->block_tokens * (uint64_t)cfg->n_blocks;
}

/* The pool's token memory, owned by the pool (free()). Attention walks it in runs
 * scattered over the whole pool, so it asks for transparent huge pages (where the
 * kernel offers them) to spare TLB misses, and writes every page now: the memory is
 * really there from start-up (no page faults in the decode loop when a block is first
 * used, no out-of-memory kill in the middle of a request). */
static uint8_t *pool_memory_new(size_t bytes) {
    const size_t huge_page = (size_t)2 << 20;
    size_t align = bytes >= huge_page ? huge_page : 64; /* small pools (tests) stay small */
    size_t rounded = (bytes + align - 1) / align * align;
    uint8_t *mem = aligned_alloc(align, rounded);
    if (!mem) return NULL;
    if (align == huge_page) (void)madvise(mem, rounded, MADV_HUGEPAGE); /* advice only: else 4 KiB pages */
    memset(mem, 0, rounded);
    return mem;
}

hr_status hr_kv_pool_new(hr_kv_pool **out, const hr_kv_config *cfg, hr_error *err) {
    *out = NULL;
    if (cfg->type != HR_TYPE_F32 && cfg->type != HR_TYPE_F16 && cfg->type != HR_TYPE_Q8_0)
        return hr_fail(err, HR_ERR_UNSUPPORTED, "KV type %s is not supported (supported: f32, f16, q8_0)",
                       hr_type_name(cfg->type));
    uint64_t head_bytes;
    if (cfg->head_dim <= 0 || cfg->kv_dim % cfg->head_dim != 0 ||
        !hr_type_row_bytes(cfg->type, (uint64_t)cfg->head_dim, &head_bytes))
        return hr_fail(err, HR_ERR_UNSUPPORTED,
                       "KV type %s needs the head size (%d) to be a multiple of its block of %u values",
                       hr_type_name(cfg->type), cfg->head_dim, hr_type_get(cfg->type)->block_elems);
    if (cfg->block_tokens <= 0 || cfg->block_tokens > 4096)
        return hr_fail(err, HR_ERR_RANGE, "KV block size %d is out of range (1..4096 tokens)", cfg->block_tokens);
    if (cfg->n_blocks <= 0 || cfg->n_blocks > (1 << 28))
        return hr_fail(err, HR_ERR_RANGE, "KV pool of %d blocks is out of range", cfg->n_blocks);
    uint64_t total = hr_kv_pool_bytes(cfg);
    if (total == 0 || total > (1ull << 46))
        return hr_fail(err, HR_ERR_RANGE, "KV pool of %d blocks x %d tokens is too large", cfg->n_blocks,
                       cfg->block_tokens);
    /* The pool is written in full at creation (pool_memory_new), so one larger than the
     * machine would be killed there, or later under memory pressure: refuse it now. */
    long pages = sysconf(_SC_PHYS_PAGES), page_bytes = sysconf(_SC_PAGESIZE);
    uint64_t machine = pages > 0 && page_bytes > 0 ? (uint64_t)pages * (uint64_t)page_bytes : 0;
    if (machine && total > machine)
        return hr_fail(err, HR_ERR_NOMEM,
                       "KV pool of %llu MiB (%d blocks x %d tokens) is larger than this machine's memory (%llu MiB)",
                       (unsigned long long)(total >> 20), cfg->n_blocks, cfg->block_tokens,
                       (unsigned long long)(machine >> 20));
    hr_kv_pool *p = calloc(1, sizeof *p);
    if (!p) return hr_fail(err, HR_ERR_NOMEM, "out of memory for the KV pool");
    p->cfg = *cfg;
    p->head_bytes = (size_t)head_bytes;
    p->n_head_kv = cfg->kv_dim / cfg->head_dim;
    p->block_bytes = p->head_bytes * (size_t)p->n_head_kv * 2 * (size_t)cfg->n_layer * (size_t)cfg->block_tokens;
    size_t n = (size_t)cfg->n_blocks;
    uint32_t buckets = 1;
    while (buckets < n * 2) buckets <<= 1;
    p->bucket_mask = buckets - 1;
    p->mem = pool_memory_new((size_t)total);
    p->blocks = calloc(n, sizeof *p->blocks);
    p->block_tokens_ids = calloc(n * (size_t)cfg->block_tokens, sizeof *p->block_tokens_ids);
    p->free_stack = malloc(n * sizeof *p->free_stack);
    p->buckets = malloc(buckets * sizeof *p->buckets);
    if (!p->mem || !p->blocks || !p->block_tokens_ids || !p->free_stack || !p->buckets) {
        hr_kv_pool_free(p);
        return hr_fail(err, HR_ERR_NOMEM, "out of memory for a KV pool of %llu MiB",
                       (unsigned long long)(total >> 20));
    }
    memset(p->buckets, 0xff, buckets * sizeof *p->buckets);
    /* Pushed in reverse so that block 0 is handed out first. */
    for (int32_t b = cfg->n_blocks - 1; b >= 0; b--) p->free_stack[p->n_free++] = b;
    p->lru_head = p->lru_tail = -1;
    *out = p;
    return HR_OK;
}

void hr_kv_pool_free(hr_kv_pool *p) {
    if (!p) return;
    free(p->mem);
    free(p->blocks);
    free(p->block_tokens_ids);
    free(p->free_stack);
    free(p->buckets);
    free(p);
}

const hr_kv_config *hr_kv_pool_config(const hr_kv_pool *p) { return &p->cfg; }
size_t hr_kv_head_bytes(const hr_kv_pool *p) { return p->head_bytes; }
int32_t hr_kv_available(const hr_kv_pool *p) { return p->n_free + p->n_cached; }

void hr_kv_pool_stats(const hr_kv_pool *p, hr_kv_stats *out) {
    out->blocks_total = p->cfg.n_blocks;
    out->blocks_free = p->n_free;
    out->blocks_cached = p->n_cached;
    out->blocks_used = p->cfg.n_blocks - p->n_free - p->n_cached;
    out->evictions = p->evictions;
}

/* ---- the prefix-cache index: buckets of blocks chained by bucket_next ---- */

static uint64_t chain_hash(uint64_t parent, const int32_t *tokens, int32_t n) {
    uint64_t h = parent ^ 0x9E3779B97F4A7C15ull;
    for (int32_t i = 0; i < n; i++) {
        h ^= (uint32_t)tokens[i];
        h *= 0x100000001B3ull; /* FNV-1a's 64-bit prime, then a final avalanche below */
        h ^= h >> 29;
    }
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDull;
    return h ^ (h >> 33);
}

static void index_remove(hr_kv_pool *p, int32_t b) {
    int32_t *link = &p->buckets[p->blocks[b].hash & p->bucket_mask];
    while (*link >= 0 && *link != b) link = &p->blocks[*link].bucket_next;
    if (*link == b) *link = p->blocks[b].bucket_next;
    p->blocks[b].hashed = false;
}

static int32_t index_find(const hr_kv_pool *p, uint64_t parent, uint64_t hash, const int32_t *tokens) {
    int32_t bt = p->cfg.block_tokens;
    for (int32_t b = p->buckets[hash & p->bucket_mask]; b >= 0; b = p->blocks[b].bucket_next) {
        const kv_block *k = &p->blocks[b];
        if (k->hash == hash && k->parent_hash == parent &&
            memcmp(p->block_tokens_ids + (size_t)b * bt, tokens, (size_t)bt * sizeof *tokens) == 0)
            return b;
    }
    return -1;
}

/* ---- block states: free stack, LRU of cached blocks, owned ---- */

static void lru_unlink(hr_kv_pool *p, int32_t b) {
    kv_block *k = &p->blocks[b];
    if (k->lru_prev >= 0) p->blocks[k->lru_prev].lru_next = k->lru_next;
    else p->lru_head = k->lru_next;
    if (k->lru_next >= 0) p->blocks[k->lru_next].lru_prev = k->lru_prev;
    else p->lru_tail = k->lru_prev;
    p->n_cached--;
}

static void lru_append(hr_kv_pool *p, int32_t b) {
    kv_block *k = &p->blocks[b];
    k->lru_prev = p->lru_tail;
    k->lru_next = -1;
    if (p->lru_tail >= 0) p->blocks[p->lru_tail].lru_next = b;
    else p->lru_head = b;
    p->lru_tail = b;
    p->n_cached++;
}

/* Takes a free block, or evicts the least recently used cached one; -1 when none. */
static int32_t block_take(hr_kv_pool *p) {
    int32_t b;
    if (p->n_free > 0) {
        b = p->free_stack[--p->n_free];
    } else if (p->lru_head >= 0) {
        b = p->lru_head;
        lru_unlink(p, b);
        index_remove(p, b);
        p->evictions++;
    } else {
        return -1;
    }
    p->blocks[b].state = BLOCK_OWNED;
    p->blocks[b].refcount = 1;
    return b;
}

static void block_retain(hr_kv_pool *p, int32_t b) {
    kv_block *k = &p->blocks[b];
    if (k->state == BLOCK_CACHED) lru_unlink(p, b);
    k->state = BLOCK_OWNED;
    k->refcount++;
}

static void block_release(hr_kv_pool *p, int32_t b) {
    kv_block *k = &p->blocks[b];
    if (--k->refcount > 0) return;
    if (k->hashed) {
        k->state = BLOCK_CACHED;
        lru_append(p, b);
    } else {
        k->state = BLOCK_FREE;
        p->free_stack[p->n_free++] = b;
    }
}

/* ---- sequences ---- */

hr_status hr_kv_seq_init(hr_kv_seq *s, const hr_kv_pool *p, int32_t max_tokens, hr_error *err) {
    memset(s, 0, sizeof *s);
    if (max_tokens <= 0) return hr_fail(err, HR_ERR_RANGE, "a sequence of %d tokens makes no sense", max_tokens);
    s->max_blocks = (max_tokens + p->cfg.block_tokens - 1) / p->cfg.block_tokens;
    s->blocks = malloc((size_t)s->max_blocks * sizeof *s->blocks);
    if (!s->blocks) return hr_fail(err, HR_ERR_NOMEM, "out of memory for a block table of %d blocks", s->max_blocks);
    return HR_OK;
}

void hr_kv_seq_release(hr_kv_pool *p, hr_kv_seq *s) {
    /* Deepest blocks first: they enter the LRU older than the prefix they hang from,
     * so eviction trims chains from the end instead of orphaning them. */
    for (int32_t i = s->n_blocks - 1; i >= 0; i--) block_release(p, s->blocks[i]);
    s->n_blocks = 0;
    s->n_tokens = 0;
    s->n_hashed = 0;
    s->prefix_hash = 0;
}

void hr_kv_seq_free(hr_kv_pool *p, hr_kv_seq *s) {
    if (s->blocks) hr_kv_seq_release(p, s);
    free(s->blocks);
    memset(s, 0, sizeof *s);
}

int32_t hr_kv_seq_reuse_prefix(hr_kv_pool *p, hr_kv_seq *s, const int32_t *tokens, int32_t n) {
    int32_t bt = p->cfg.block_tokens;
    if (s->n_blocks != 0 || n <= 0) return 0;
    int32_t full = n / bt;
    if (full > s->max_blocks) full = s->max_blocks;
    for (int32_t i = 0; i < full; i++) {
        uint64_t hash = chain_hash(s->prefix_hash, tokens + (size_t)i * bt, bt);
        int32_t b = index_find(p, s->prefix_hash, hash, tokens + (size_t)i * bt);
        if (b < 0) break;
        block_retain(p, b);
        s->blocks[s->n_blocks++] = b;
        s->prefix_hash = hash;
        s->n_hashed++;
    }
    int32_t reused = s->n_blocks * bt;
    /* The last prompt token is always computed, for its logits: when the whole prompt
     * was cached, it is recomputed into a shared block, which copy-on-write handles. */
    s->n_tokens = reused < n ? reused : n - 1;
    return s->n_tokens;
}

/* Index of the block holding position pos when it must be copied before writing. */
static bool needs_copy(const hr_kv_pool *p, const hr_kv_seq *s, int32_t pos) {
    int32_t i = pos / p->cfg.block_tokens;
    return i < s->n_blocks && p->blocks[s->blocks[i]].refcount > 1;
}

int32_t hr_kv_blocks_needed(const hr_kv_pool *p, const hr_kv_seq *s, int32_t n_more) {
    int32_t bt = p->cfg.block_tokens;
    int32_t want = (s->n_tokens + n_more + bt - 1) / bt;
    int32_t extra = want > s->n_blocks ? want - s->n_blocks : 0;
    return extra + (n_more > 0 && needs_copy(p, s, s->n_tokens) ? 1 : 0);
}

hr_status hr_kv_seq_reserve(hr_kv_pool *p, hr_kv_seq *s, int32_t n, hr_error *err) {
    int32_t bt = p->cfg.block_tokens;
    int32_t want = (s->n_tokens + n + bt - 1) / bt;
    if (n <= 0) return HR_OK;
    if (want > s->max_blocks)
        return hr_fail(err, HR_ERR_RANGE, "sequence would need %d blocks; its table holds %d", want, s->max_blocks);
    int32_t needed = hr_kv_blocks_needed(p, s, n);
    if (needed > hr_kv_available(p))
        return hr_fail(err, HR_ERR_NOMEM, "KV pool has %d blocks available, %d needed", hr_kv_available(p), needed);
    if (needs_copy(p, s, s->n_tokens)) {
        int32_t i = s->n_tokens / bt, old = s->blocks[i];
        int32_t copy = block_take(p);
        memcpy(p->mem + (size_t)copy * p->block_bytes, p->mem + (size_t)old * p->block_bytes, p->block_bytes);
        block_release(p, old);
        s->blocks[i] = copy;
        /* The copy is ours alone; the prefix chain continues from the original. */
        if (s->n_hashed > i) s->n_hashed = i;
    }
    while (s->n_blocks < want) s->blocks[s->n_blocks++] = block_take(p);
    return HR_OK;
}

void hr_kv_seq_commit(hr_kv_pool *p, hr_kv_seq *s, const int32_t *tokens, int32_t new_len) {
    int32_t bt = p->cfg.block_tokens;
    if (new_len > s->n_blocks * bt) new_len = s->n_blocks * bt;
    if (new_len > s->n_tokens) s->n_tokens = new_len;
    while ((s->n_hashed + 1) * bt <= s->n_tokens) {
        int32_t i = s->n_hashed, b = s->blocks[i];
        const int32_t *block_tokens = tokens + (size_t)i * bt;
        uint64_t parent = i == 0 ? 0 : s->prefix_hash;
        uint64_t hash = chain_hash(parent, block_tokens, bt);
        kv_block *k = &p->blocks[b];
        /* An identical block already indexed stays the canonical one; this copy is
         * freed with its sequence. */
        if (!k->hashed && index_find(p, parent, hash, block_tokens) < 0) {
            k->hashed = true;
            k->hash = hash;
            k->parent_hash = parent;
            memcpy(p->block_tokens_ids + (size_t)b * bt, block_tokens, (size_t)bt * sizeof *tokens);
            uint32_t bucket = (uint32_t)(hash & p->bucket_mask);
            k->bucket_next = p->buckets[bucket];
            p->buckets[bucket] = b;
        }
        s->prefix_hash = hash;
        s->n_hashed++;
    }
}

uint8_t *hr_kv_head(const hr_kv_pool *p, const hr_kv_seq *s, int32_t layer, int32_t pos, bool v, int32_t head) {
    int32_t bt = p->cfg.block_tokens;
    size_t block = (size_t)s->blocks[pos / bt];
    size_t run = (size_t)((layer * 2 + (v ? 1 : 0)) * p->n_head_kv + head); /* bt rows of one head */
    return p->mem + block * p->block_bytes + (run * (size_t)bt + (size_t)(pos % bt)) * p->head_bytes;
}

hr_status hr_kv_check(const hr_kv_pool *p, const hr_kv_seq *const *seqs, size_t n_seqs, hr_error *err) {
    int32_t n = p->cfg.n_blocks, bt = p->cfg.block_tokens;
    int32_t *refs = calloc((size_t)n, sizeof *refs);
    if (!refs) return hr_fail(err, HR_ERR_NOMEM, "out of memory checking the KV pool");
    hr_status st = HR_OK;
    for (size_t i = 0; i < n_seqs && st == HR_OK; i++) {
        const hr_kv_seq *s = seqs[i];
        if (s->n_blocks > s->max_blocks || s->n_tokens > s->n_blocks * bt || s->n_tokens < 0)
            st = hr_fail(err, HR_ERR_INVALID, "sequence %zu: %d tokens in %d blocks (table of %d)", i, s->n_tokens,
                         s->n_blocks, s->max_blocks);
        for (int32_t k = 0; k < s->n_blocks && st == HR_OK; k++) {
            int32_t b = s->blocks[k];
            if (b < 0 || b >= n) st = hr_fail(err, HR_ERR_INVALID, "sequence %zu entry %d: block %d out of range", i, k, b);
            else refs[b]++;
        }
    }
    int32_t free_count = 0, cached_count = 0;
    for (int32_t b = 0; b < n && st == HR_OK; b++) {
        const kv_block *k = &p->blocks[b];
        if (k->refcount != refs[b])
            st = hr_fail(err, HR_ERR_INVALID, "block %d: refcount %d but %d table references", b, k->refcount, refs[b]);
        else if ((k->refcount > 0) != (k->state == BLOCK_OWNED))
            st = hr_fail(err, HR_ERR_INVALID, "block %d: refcount %d in state %d", b, k->refcount, k->state);
        else if (k->state == BLOCK_CACHED && !k->hashed)
            st = hr_fail(err, HR_ERR_INVALID, "block %d: cached without a prefix hash", b);
        free_count += k->state == BLOCK_FREE;
        cached_count += k->state == BLOCK_CACHED;
    }
    if (st == HR_OK && (free_count != p->n_free || cached_count != p->n_cached))
        st = hr_fail(err, HR_ERR_INVALID, "%d free and %d cached blocks, but lists hold %d and %d", free_count,
                     cached_count, p->n_free, p->n_cached);
    int32_t walked = 0;
    for (int32_t b = p->lru_head; st == HR_OK && b >= 0 && walked <= n; b = p->blocks[b].lru_next, walked++)
        if (p->blocks[b].state != BLOCK_CACHED) st = hr_fail(err, HR_ERR_INVALID, "LRU holds non-cached block %d", b);
    if (st == HR_OK && walked != p->n_cached)
        st = hr_fail(err, HR_ERR_INVALID, "LRU walk found %d blocks, count says %d", walked, p->n_cached);
    for (int32_t i = 0; st == HR_OK && i < p->n_free; i++)
        if (p->blocks[p->free_stack[i]].state != BLOCK_FREE)
            st = hr_fail(err, HR_ERR_INVALID, "free list holds block %d in state %d", p->free_stack[i],
                         p->blocks[p->free_stack[i]].state);
    free(refs);
    return st;
}
