/* kv/kv_cache — the paged KV cache: one pool of fixed-size blocks shared by every
 * sequence, per-sequence block tables, reference counts, copy-on-write, and a prefix
 * cache that lets a new sequence reuse the blocks of an identical prompt prefix.
 *
 * Owns: the pool's memory (allocated once, at creation), the block metadata, the
 * prefix-cache index and the LRU of cached-but-unused blocks.
 * Must not: allocate after creation (block tables are sized when a sequence is
 * created), decide which sequence to preempt (the scheduler does), or compute K/V. */
#ifndef HR_KV_KV_CACHE_H
#define HR_KV_KV_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct {
    int32_t n_layer;
    int32_t kv_dim;       /* K (and V) values per token per layer */
    int32_t head_dim;     /* attention reads K/V one head at a time */
    int32_t block_tokens; /* token slots per block */
    int32_t n_blocks;
    uint32_t type;        /* element type: f32, f16 or q8_0 */
} hr_kv_config;

typedef struct hr_kv_pool hr_kv_pool;

/* A sequence's view of the pool. blocks[i] holds positions [i*bt, (i+1)*bt). */
typedef struct {
    int32_t *blocks;   /* owned by the sequence: max_blocks entries */
    int32_t n_blocks;
    int32_t max_blocks;
    int32_t n_tokens;  /* positions whose K/V are written */
    uint64_t prefix_hash; /* hash of all tokens in the full blocks so far */
    int32_t n_hashed;  /* full blocks already registered in the prefix cache */
} hr_kv_seq;

typedef struct {
    int32_t blocks_total, blocks_used, blocks_cached, blocks_free;
    uint64_t evictions;         /* cached blocks reused for new data */
} hr_kv_stats;

/* Bytes of pool memory a configuration needs (0 when it is invalid). */
uint64_t hr_kv_pool_bytes(const hr_kv_config *cfg);
/* Bytes of KV one token takes across all layers (K and V). */
uint64_t hr_kv_bytes_per_token(int32_t n_layer, int32_t kv_dim, uint32_t type);

hr_status hr_kv_pool_new(hr_kv_pool **out, const hr_kv_config *cfg, hr_error *err);
void hr_kv_pool_free(hr_kv_pool *p);
const hr_kv_config *hr_kv_pool_config(const hr_kv_pool *p);
void hr_kv_pool_stats(const hr_kv_pool *p, hr_kv_stats *out);
/* Blocks that can be handed out now: free ones plus cached ones that may be evicted. */
int32_t hr_kv_available(const hr_kv_pool *p);

/* Gives a sequence a table able to hold max_tokens positions (allocates the table). */
hr_status hr_kv_seq_init(hr_kv_seq *s, const hr_kv_pool *p, int32_t max_tokens, hr_error *err);
/* Returns every block to the pool (full ones stay in the prefix cache) and frees the
 * table. Safe on a zeroed or already-freed sequence. */
void hr_kv_seq_free(hr_kv_pool *p, hr_kv_seq *s);
/* Drops the blocks but keeps the table, for a preempted sequence that will recompute. */
void hr_kv_seq_release(hr_kv_pool *p, hr_kv_seq *s);

/* Reuses cached blocks for the longest prefix of tokens[0..n) made of whole blocks,
 * leaving at least one token to compute (its logits are needed). Returns the number
 * of positions reused. The sequence must be empty. */
int32_t hr_kv_seq_reuse_prefix(hr_kv_pool *p, hr_kv_seq *s, const int32_t *tokens, int32_t n);

/* Blocks a sequence must newly take from the pool to hold n_more positions. */
int32_t hr_kv_blocks_needed(const hr_kv_pool *p, const hr_kv_seq *s, int32_t n_more);

/* Makes positions [s->n_tokens, s->n_tokens + n) writable: appends blocks and copies a
 * shared block before it is written. Fails (changing nothing) when the pool is out of
 * blocks; the caller preempts someone and retries. */
hr_status hr_kv_seq_reserve(hr_kv_pool *p, hr_kv_seq *s, int32_t n, hr_error *err);

/* Marks positions up to new_len written, and registers every block that became full
 * in the prefix cache, keyed by all tokens up to its end (tokens[0..new_len)). */
void hr_kv_seq_commit(hr_kv_pool *p, hr_kv_seq *s, const int32_t *tokens, int32_t new_len);

/* Where head `head` of the K (v = false) or V row of position pos of layer lives. Within
 * a block each head's positions are consecutive, hr_kv_head_bytes apart, so attention
 * reads one head of a whole block as one contiguous run. */
uint8_t *hr_kv_head(const hr_kv_pool *p, const hr_kv_seq *s, int32_t layer, int32_t pos, bool v, int32_t head);
size_t hr_kv_head_bytes(const hr_kv_pool *p);

/* Invariants: every block is free xor cached xor owned; refcounts equal the number of
 * table references; no table points past its length; counts add up. */
hr_status hr_kv_check(const hr_kv_pool *p, const hr_kv_seq *const *seqs, size_t n_seqs, hr_error *err);

#endif
