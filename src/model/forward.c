#include "model/forward.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "formats/ggml_type.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"

/* KV rows widened at a time when several query heads share them. */
enum { RUN_ROWS = 16 };
/* Attention items take all KV heads of a tile from this many tiles per thread on (fewer
 * would leave threads idle at the end of the pass), as many as fit a thread's score
 * scratch of ATTENTION_SCRATCH_FLOATS (so long contexts on many threads do not multiply
 * memory by the head count). A tile is up to ATTENTION_TILE consecutive tokens of one
 * sequence (a prompt chunk), whose queries take turns on each block of K/V while it is
 * in L1, instead of each token streaming the whole prefix from memory. */
enum { ATTENTION_TILES_PER_THREAD = 4, ATTENTION_SCRATCH_FLOATS = 2 << 20, ATTENTION_TILE = 16 };

struct hr_forward_ws {
    int32_t max_tokens, max_ctx, n_threads;
    size_t att_floats;    /* one thread's score scratch: a whole number of heads of max_ctx scores */
    int32_t tile_max;     /* tokens per attention tile: ATTENTION_TILE, or what one head's scores allow */
    float *x, *xb, *xb2, *q, *k, *v, *hb, *hb2; /* [max_tokens][width] each */
    float *att;           /* [n_threads][att_floats] scores of a work item's queries and heads */
    int32_t *tile_start;  /* [max_tokens + 1] first batch token of each attention tile, then n_tokens */
    float *kv_run;        /* [n_threads][RUN_ROWS][head_dim] KV rows widened to f32 for a query group */
    float *rope_inv_freq; /* n_rot / 2 */
    float *rope_cos_sin;  /* [max_tokens][n_rot / 2][2]: each batch token's rotation, shared by layers and heads */
    int32_t *logit_src;   /* [max_tokens] batch index of each logits row */
    hr_forward_timing *timing; /* NULL: steps are not timed */
};

hr_status hr_forward_ws_new(hr_forward_ws **out, const hr_model *m, int32_t max_tokens, int32_t max_ctx,
                            hr_pool *pool, hr_error *err) {
    *out = NULL;
    const hr_hparams *hp = &m->hp;
    if (max_tokens <= 0 || max_ctx <= 0)
        return hr_fail(err, HR_ERR_RANGE, "batch of %d tokens over %d positions makes no sense", max_tokens, max_ctx);
    hr_forward_ws *ws = calloc(1, sizeof *ws);
    if (!ws) return hr_fail(err, HR_ERR_NOMEM, "out of memory for the forward workspace");
    ws->max_tokens = max_tokens;
    ws->max_ctx = max_ctx;
    ws->n_threads = hr_pool_threads(pool);
    size_t T = (size_t)max_tokens, dim = (size_t)hp->n_embd;
    size_t q_dim = (size_t)hp->n_head * hp->head_dim, kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    ws->x = malloc(T * dim * sizeof(float));
    ws->xb = malloc(T * (q_dim > dim ? q_dim : dim) * sizeof(float));
    ws->xb2 = malloc(T * dim * sizeof(float));
    ws->q = malloc(T * q_dim * sizeof(float));
    ws->k = malloc(T * kv_dim * sizeof(float));
    ws->v = malloc(T * kv_dim * sizeof(float));
    ws->hb = malloc(T * (size_t)hp->n_ff * sizeof(float));
    ws->hb2 = malloc(T * (size_t)hp->n_ff * sizeof(float));
    /* Heads of max_ctx scores the scratch holds: as many as fit ATTENTION_SCRATCH_FLOATS,
     * at least one, and no more than a full tile of all heads uses. */
    size_t head_floats = (size_t)(hp->n_head / hp->n_head_kv) * (size_t)max_ctx;
    size_t heads = ATTENTION_SCRATCH_FLOATS / head_floats, all = (size_t)ATTENTION_TILE * (size_t)hp->n_head_kv;
    heads = heads < 1 ? 1 : heads > all ? all : heads;
    ws->att_floats = heads * head_floats;
    ws->tile_max = heads < ATTENTION_TILE ? (int32_t)heads : ATTENTION_TILE;
    ws->att = malloc((size_t)ws->n_threads * ws->att_floats * sizeof(float));
    ws->tile_start = malloc((T + 1) * sizeof(int32_t));
    ws->kv_run = malloc((size_t)ws->n_threads * RUN_ROWS * (size_t)hp->head_dim * sizeof(float));
    ws->rope_inv_freq = malloc(((size_t)hp->n_rot / 2 + 1) * sizeof(float));
    ws->rope_cos_sin = malloc(T * (size_t)hp->n_rot * sizeof(float));
    ws->logit_src = malloc(T * sizeof(int32_t));
    if (!ws->x || !ws->xb || !ws->xb2 || !ws->q || !ws->k || !ws->v || !ws->hb || !ws->hb2 || !ws->att || !ws->kv_run ||
        !ws->rope_inv_freq || !ws->rope_cos_sin || !ws->logit_src || !ws->tile_start) {
        hr_forward_ws_free(ws);
        return hr_fail(err, HR_ERR_NOMEM, "out of memory for a %d-token forward workspace", max_tokens);
    }
    /* theta_i = base^(-2i / n_rot), computed in f32 exactly as the reference does, then
     * scaled (linear RoPE scaling) and divided by the model's frequency factors; both are
     * exactly 1 for unscaled models, so their results do not change. */
    const float *factors = m->rope_freqs.data;
    for (int32_t i = 0; i < hp->n_rot / 2; i++)
        ws->rope_inv_freq[i] = 1.0f / powf(hp->rope_freq_base, (float)(2 * i) / (float)hp->n_rot) *
                               hp->rope_freq_scale / (factors ? factors[i] : 1.0f);
    *out = ws;
    return HR_OK;
}

void hr_forward_ws_set_timing(hr_forward_ws *ws, hr_forward_timing *into) { ws->timing = into; }

/* A step's stage clock: lap charges the time since the last lap to one stage. Off (no
 * clock reads) unless the workspace is timing. */
typedef struct {
    bool on;
    double mark_ms;
    hr_forward_timing t;
} stage_clock;

static void lap(stage_clock *c, double *stage_ms) {
    if (!c->on) return;
    double now = hr_now_ms();
    *stage_ms += now - c->mark_ms;
    c->mark_ms = now;
}

static uint64_t tensor_macs(const hr_tensor *w, int32_t n_tokens) {
    return (uint64_t)w->ne[0] * (uint64_t)w->ne[1] * (uint64_t)n_tokens;
}

void hr_forward_ws_free(hr_forward_ws *ws) {
    if (!ws) return;
    free(ws->x);
    free(ws->xb);
    free(ws->xb2);
    free(ws->q);
    free(ws->k);
    free(ws->v);
    free(ws->hb);
    free(ws->hb2);
    free(ws->att);
    free(ws->kv_run);
    free(ws->rope_inv_freq);
    free(ws->rope_cos_sin);
    free(ws->logit_src);
    free(ws->tile_start);
    free(ws);
}

/* Rotates adjacent pairs (GGUF llama's "normal" RoPE order) of the first n_rot
 * dimensions of each head by the angles whose cosines and sines cs holds. */
static void rope(float *vec, int32_t n_heads, int32_t head_dim, int32_t n_rot, const float *cs) {
    for (int32_t h = 0; h < n_heads; h++) {
        float *head = vec + (size_t)h * head_dim;
        for (int32_t i = 0; i < n_rot; i += 2) {
            float c = cs[i], s = cs[i + 1];
            float v0 = head[i], v1 = head[i + 1];
            head[i] = v0 * c - v1 * s;
            head[i + 1] = v0 * s + v1 * c;
        }
    }
}

/* The angles pos * theta_i of every batch token, once per step instead of per layer and head. */
static void rope_angles(hr_forward_ws *ws, const hr_hparams *hp, const hr_batch *b) {
    for (int32_t t = 0; t < b->n_tokens; t++) {
        float *cs = ws->rope_cos_sin + (size_t)t * hp->n_rot;
        for (int32_t i = 0; i < hp->n_rot / 2; i++) {
            float angle = (float)b->pos[t] * ws->rope_inv_freq[i];
            cs[2 * i] = cosf(angle);
            cs[2 * i + 1] = sinf(angle);
        }
    }
}

static void prefetch(const uint8_t *p, size_t bytes) {
    for (size_t i = 0; i < bytes; i += 64) __builtin_prefetch(p + i);
}

typedef struct {
    const hr_model *m;
    hr_forward_ws *ws;
    const hr_kv_pool *kv;
    const hr_batch *b;
    int32_t layer;
    int32_t n_tiles; /* attention tiles of the batch (ws->tile_start) */
    int32_t kv_span; /* KV heads per work item (the last may have fewer): 1 when items would be few */
    int32_t spans;   /* spans of KV heads per tile: n_head_kv / kv_span, rounded up */
    int32_t parts;   /* work items per (tile, KV heads): each takes a share of every group */
    atomic_int next_item;
} attention_job;

/* One work item: KV heads [k0, k1) and query heads [g0, g1) of each of their groups, for
 * the queries of one tile: batch tokens t0 + i, i < n_q, at consecutive positions of seq,
 * the first attending to n_pos positions. att holds the scores of query i, KV head k,
 * query head g at ((i * kv_span + k - k0) * group + g) * max_ctx. */
typedef struct {
    const hr_kv_seq *seq;
    int32_t t0, n_q, n_pos, k0, k1, g0, g1;
    float *att;
    float *run; /* RUN_ROWS rows widened to f32 */
} attention_item;

/* Where query i's query head g of KV head kv starts in q (and its output in xb). */
static size_t query_head(const hr_hparams *hp, const attention_item *it, int32_t i, int32_t kv, int32_t g) {
    return ((size_t)(it->t0 + i) * hp->n_head + (size_t)kv * (hp->n_head / hp->n_head_kv) + g) * hp->head_dim;
}

static float *item_scores(const attention_job *job, const attention_item *it, int32_t i, int32_t kv, int32_t g) {
    int32_t group = job->m->hp.n_head / job->m->hp.n_head_kv;
    return it->att + (((size_t)i * job->kv_span + (size_t)(kv - it->k0)) * group + g) * job->ws->max_ctx;
}

/* Query i's heads of the item for KV head kv over rows [p, p + n) of one block's run:
 * scores into att (or, with v, the weighted sum into xb). With several f16 heads the rows
 * are widened to f32 once for all of them (exact, so results do not change). Every query
 * makes these calls with the same arguments whatever tile it is in, so tiling does not
 * change results either. */
static void attend_run(const attention_job *job, const attention_item *it, int32_t i, int32_t kv, int32_t p,
                       int32_t n, bool v) {
    const hr_hparams *hp = &job->m->hp;
    int32_t head_dim = hp->head_dim;
    uint32_t type = hr_kv_pool_config(job->kv)->type;
    const uint8_t *rows = hr_kv_head(job->kv, it->seq, job->layer, p, v, kv);
    size_t stride = hr_kv_head_bytes(job->kv);
    if (it->g1 - it->g0 > 1 && type == HR_TYPE_F16) {
        hr_kv_widen(type, rows, it->run, (int64_t)n * head_dim);
        rows = (const uint8_t *)it->run;
        stride = (size_t)head_dim * sizeof(float);
        type = HR_TYPE_F32;
    }
    for (int32_t g = it->g0; g < it->g1; g++) {
        size_t head = query_head(hp, it, i, kv, g);
        float *att_g = item_scores(job, it, i, kv, g);
        if (v)
            hr_kv_mix(type, att_g + p, rows, stride, n, job->ws->xb + head, head_dim);
        else
            hr_kv_scores(type, rows, stride, n, job->ws->q + head, head_dim, att_g + p);
    }
}

/* Claims the next work item (see attention_item) from the job's shared counter into it;
 * false when none is left. Items are claimed one at a time, as the last one finishes:
 * contexts differ in length, and a thread the OS delays takes fewer items. */
static bool attention_claim(attention_job *job, attention_item *it) {
    const hr_hparams *hp = &job->m->hp;
    int32_t group = hp->n_head / hp->n_head_kv, spans = job->spans;
    int32_t item = atomic_fetch_add_explicit(&job->next_item, 1, memory_order_relaxed);
    if (item >= job->n_tiles * spans * job->parts) return false;
    int32_t part = item % job->parts, span = item / job->parts % spans, tile = item / job->parts / spans;
    it->t0 = job->ws->tile_start[tile];
    it->n_q = job->ws->tile_start[tile + 1] - it->t0;
    it->seq = job->b->seqs[it->t0];
    it->n_pos = job->b->pos[it->t0] + 1;
    it->k0 = span * job->kv_span;
    it->k1 = it->k0 + job->kv_span < hp->n_head_kv ? it->k0 + job->kv_span : hp->n_head_kv;
    it->g0 = part * group / job->parts, it->g1 = (part + 1) * group / job->parts;
    return true;
}

/* How many blocks ahead of the one being read attention asks for a head's run. */
enum { KV_AHEAD_BLOCKS = 2 };

static int32_t item_blocks(const attention_item *it, int32_t bt) { return (it->n_pos + it->n_q - 1 + bt - 1) / bt; }

/* Asks for KV head kv's run (keys, or values with v) of block b of it's pass. */
static void prefetch_run(const attention_job *job, const attention_item *it, int32_t b, bool v, int32_t kv) {
    int32_t bt = hr_kv_pool_config(job->kv)->block_tokens;
    prefetch(hr_kv_head(job->kv, it->seq, job->layer, b * bt, v, kv), hr_kv_head_bytes(job->kv) * (size_t)bt);
}

/* attend_run over the positions each query attends to, block by block, every KV head of
 * the item within a block before the next block, and every query of the tile on a head's
 * rows before the next head: a block holds one layer's keys of all heads as one
 * contiguous run (and its values as the next), so the walk reads memory in long runs,
 * and the tile's queries find a head's rows in L1. Blocks lie anywhere in the pool,
 * beyond the hardware prefetcher's reach, so each pass asks for a head's runs of the next
 * KV_AHEAD_BLOCKS blocks as it works on that head in this one (keys while scoring, values
 * while mixing), and past its last block for the first blocks of what this thread reads
 * next: the item's values after its keys; after its values, the keys of the item it
 * claims into next as soon as the walk reaches past its end (returning whether there was
 * one). So a pass starts cold only when warm is false. Asking for the next two blocks
 * (so each run is asked for twice, a block apart) rather than the next one took attention
 * from 3.0-3.1 to 2.7-2.85 ms per 16-sequence step, and from 3.55 to 2.8 ms in a slow
 * memory phase (bench_engine 110m q8_0, alternating runs). Asking only for the block two
 * on gained nothing, and three or four blocks were no better than two: the second request
 * is what helps, as if the core dropped some first ones with its miss queue full. Asking
 * for more at once (a whole block, or keys and values together) stalls on full miss
 * queues and measured slower. */
static bool attend_blocks(attention_job *job, const attention_item *it, bool v, bool warm, attention_item *next) {
    int32_t bt = hr_kv_pool_config(job->kv)->block_tokens, n_pos = it->n_pos + it->n_q - 1;
    int32_t blocks = item_blocks(it, bt);
    const attention_item *then = v ? NULL : it;
    bool claimed = !v;
    if (!warm)
        for (int32_t b = 0; b < KV_AHEAD_BLOCKS && b < blocks; b++)
            for (int32_t kv = it->k0; kv < it->k1; kv++) prefetch_run(job, it, b, v, kv);
    for (int32_t b = 0, p0 = 0; p0 < n_pos; b++, p0 += bt) {
        if (b + KV_AHEAD_BLOCKS >= blocks && !claimed) {
            then = attention_claim(job, next) ? next : NULL;
            claimed = true;
        }
        for (int32_t kv = it->k0; kv < it->k1; kv++) {
            /* blocks past this pass's end are the next pass's, from its first */
            for (int32_t ahead = b + 1; ahead <= b + KV_AHEAD_BLOCKS; ahead++) {
                if (ahead < blocks) {
                    prefetch_run(job, it, ahead, v, kv);
                } else if (then && ahead - blocks < item_blocks(then, bt)) {
                    int32_t then_kv = then->k0 + (kv - it->k0);
                    if (then_kv < then->k1) prefetch_run(job, then, ahead - blocks, !v, then_kv);
                }
            }
            for (int32_t i = 0; i < it->n_q; i++) {
                int32_t rows = it->n_pos + i - p0 < bt ? it->n_pos + i - p0 : bt;
                for (int32_t r0 = 0; r0 < rows; r0 += RUN_ROWS)
                    attend_run(job, it, i, kv, p0 + r0, rows - r0 < RUN_ROWS ? rows - r0 : RUN_ROWS, v);
            }
        }
    }
    return then != NULL;
}

/* Each thread's items: the scores over every earlier position, softmax, and the weighted
 * sum of values into xb. Two items take turns: the one in hand and the one its values
 * pass claims (they share the thread's scratch; the next writes it only once its turn
 * comes). */
static void attention_rows(void *ctx, int thread, int n_threads) {
    attention_job *job = ctx;
    (void)n_threads;
    const hr_hparams *hp = &job->m->hp;
    hr_forward_ws *ws = job->ws;
    int32_t head_dim = hp->head_dim;
    /* Divided, not multiplied by a reciprocal: the reference rounds this way. */
    float score_div = sqrtf((float)head_dim);
    attention_item items[2];
    for (int i = 0; i < 2; i++)
        items[i] = (attention_item){.att = ws->att + (size_t)thread * ws->att_floats,
                                    .run = ws->kv_run + (size_t)thread * RUN_ROWS * head_dim};
    bool warm = false, more = attention_claim(job, &items[0]);
    for (int cur = 0; more; cur ^= 1) {
        attention_item *it = &items[cur];
        attend_blocks(job, it, false, warm, NULL);
        for (int32_t i = 0; i < it->n_q; i++)
            for (int32_t kv = it->k0; kv < it->k1; kv++)
                for (int32_t g = it->g0; g < it->g1; g++) {
                    hr_softmax(item_scores(job, it, i, kv, g), it->n_pos + i, score_div);
                    memset(ws->xb + query_head(hp, it, i, kv, g), 0, (size_t)head_dim * sizeof(float));
                }
        warm = more = attend_blocks(job, it, true, true, &items[cur ^ 1]);
    }
}

/* KV heads per item when many sequences decode: the most that split the heads evenly and
 * read at most DECODE_RUN_BYTES of each block. On 110m (12 heads of 2 KiB per f16 block)
 * items of 4 heads rather than 12 took 7-18 % off attention with 8, 16 and 32 sequences
 * decoding; 2 or 6 heads, or spans of 8 and 4, were slower than 4 (bench_engine, q8_0,
 * alternating runs). A longer tile keeps all heads: its queries share each block, and
 * 4-head items measured no faster over a 1024-token prompt. */
enum { DECODE_RUN_BYTES = 8 * 1024 };

static int32_t decode_span(const hr_hparams *hp, const hr_kv_pool *kv) {
    size_t run_bytes = hr_kv_head_bytes(kv) * (size_t)hr_kv_pool_config(kv)->block_tokens;
    int32_t span = 1;
    for (int32_t s = 2; s <= hp->n_head_kv; s++)
        if (hp->n_head_kv % s == 0 && (size_t)s * run_bytes <= DECODE_RUN_BYTES) span = s;
    return span;
}

/* Cuts the batch into attention tiles (ws->tile_start): runs of consecutive positions of
 * one sequence, up to tile_max tokens. Returns the number of tiles; *longest the most
 * tokens in one. */
static int32_t attention_tiles(hr_forward_ws *ws, const hr_batch *b, int32_t *longest) {
    int32_t n_tiles = 0, len = 0;
    *longest = 0;
    for (int32_t t = 0; t < b->n_tokens; t++) {
        bool joins = len > 0 && len < ws->tile_max && b->seqs[t] == b->seqs[t - 1] && b->pos[t] == b->pos[t - 1] + 1;
        if (!joins) {
            ws->tile_start[n_tiles++] = t;
            len = 0;
        }
        if (++len > *longest) *longest = len;
    }
    ws->tile_start[n_tiles] = b->n_tokens;
    return n_tiles;
}

/* Stores the K or V row of one token (n_head_kv heads) in the cache's element type. */
static void store_row(hr_kv_pool *kv, const hr_hparams *hp, const hr_batch *b, int32_t t, int32_t layer, bool v,
                      const float *row) {
    uint32_t type = hr_kv_pool_config(kv)->type;
    for (int32_t h = 0; h < hp->n_head_kv; h++) {
        uint8_t *dst = hr_kv_head(kv, b->seqs[t], layer, b->pos[t], v, h);
        hr_kv_store(type, row + (size_t)h * hp->head_dim, dst, hp->head_dim);
    }
}

/* The per-token work between matmuls, split across the pool by tokens when a batch has
 * enough of them (below PARALLEL_TOKENS waking the pool costs more than it saves). */
enum { PARALLEL_TOKENS = 4 };

typedef enum { TOKEN_ADD_NORM, TOKEN_ROPE_STORE, TOKEN_SWIGLU } token_step_kind;

typedef struct {
    token_step_kind kind;
    const hr_model *m;
    hr_forward_ws *ws;
    hr_kv_pool *kv;
    const hr_batch *b;
    int32_t layer;
    bool add;            /* TOKEN_ADD_NORM: add the last block's output (xb2) to x first */
    const float *norm_w; /* TOKEN_ADD_NORM */
} token_job;

static void token_step(const token_job *j, int32_t t) {
    const hr_hparams *hp = &j->m->hp;
    hr_forward_ws *ws = j->ws;
    size_t dim = (size_t)hp->n_embd, head_dim = (size_t)hp->head_dim;
    switch (j->kind) {
    case TOKEN_ADD_NORM:
        hr_rmsnorm(ws->xb + t * dim, ws->x + t * dim, j->add ? ws->xb2 + t * dim : NULL, j->norm_w, (int32_t)dim,
                    hp->rms_eps);
        break;
    case TOKEN_ROPE_STORE: {
        size_t kv_dim = (size_t)hp->n_head_kv * head_dim;
        float *k = ws->k + t * kv_dim;
        const float *cs = ws->rope_cos_sin + (size_t)t * hp->n_rot;
        rope(ws->q + t * hp->n_head * head_dim, hp->n_head, hp->head_dim, hp->n_rot, cs);
        rope(k, hp->n_head_kv, hp->head_dim, hp->n_rot, cs);
        store_row(j->kv, hp, j->b, t, j->layer, false, k);
        store_row(j->kv, hp, j->b, t, j->layer, true, ws->v + t * kv_dim);
        break;
    }
    case TOKEN_SWIGLU:
        hr_swiglu(ws->hb + (size_t)t * hp->n_ff, ws->hb2 + (size_t)t * hp->n_ff, hp->n_ff);
        break;
    }
}

static void token_rows(void *ctx, int thread, int n_threads) {
    const token_job *j = ctx;
    for (int32_t t = thread; t < j->b->n_tokens; t += n_threads) token_step(j, t);
}

static void run_tokens(hr_pool *pool, const token_job *j) {
    if (j->b->n_tokens < PARALLEL_TOKENS) token_rows((void *)j, 0, 1);
    else hr_pool_run(pool, token_rows, (void *)j);
}

void hr_forward_timing_add(hr_forward_timing *into, const hr_forward_timing *t) {
    into->steps += t->steps;
    into->tokens += t->tokens;
    into->total_ms += t->total_ms;
    into->matmul_ms += t->matmul_ms;
    into->attention_ms += t->attention_ms;
    into->other_ms += t->other_ms;
    into->matmul_macs += t->matmul_macs;
    into->kv_bytes += t->kv_bytes;
}

const char HR_FORWARD_TIMING_HEADS[] = " ms/step  matmul ms   GFLOP/s  attention ms  K/V GB/s  other ms";

void hr_forward_timing_row(const hr_forward_timing *t, char *buf, size_t size) {
    double steps = t->steps ? (double)t->steps : 1;
    snprintf(buf, size, "%8.2f %10.2f %9.1f %13.2f %9.1f %9.2f", t->total_ms / steps, t->matmul_ms / steps,
             t->matmul_ms > 0 ? 2.0 * (double)t->matmul_macs / (t->matmul_ms * 1e6) : 0, t->attention_ms / steps,
             t->attention_ms > 0 ? (double)t->kv_bytes / (t->attention_ms * 1e6) : 0, t->other_ms / steps);
}

hr_status hr_forward_batch(const hr_model *m, hr_forward_ws *ws, hr_kv_pool *kv, hr_pool *pool, const hr_batch *b,
                           float *logits, hr_error *err) {
    const hr_hparams *hp = &m->hp;
    int32_t n = b->n_tokens, dim = hp->n_embd;
    if (n <= 0 || n > ws->max_tokens)
        return hr_fail(err, HR_ERR_RANGE, "batch of %d tokens (workspace holds 1..%d)", n, ws->max_tokens);
    int32_t n_logits = 0;
    for (int32_t t = 0; t < n; t++) {
        if (b->tokens[t] < 0 || b->tokens[t] >= hp->n_vocab)
            return hr_fail(err, HR_ERR_RANGE, "token id %d is outside the vocabulary (0..%d)", b->tokens[t],
                           hp->n_vocab - 1);
        if (b->pos[t] < 0 || b->pos[t] >= ws->max_ctx || b->pos[t] >= b->seqs[t]->n_blocks * hr_kv_pool_config(kv)->block_tokens)
            return hr_fail(err, HR_ERR_RANGE, "position %d has no KV slot reserved (workspace reads %d positions)",
                           b->pos[t], ws->max_ctx);
        if (b->want_logits[t]) ws->logit_src[n_logits++] = t;
    }
    stage_clock clock = {.on = ws->timing != NULL};
    if (clock.on) clock.mark_ms = hr_now_ms();
    double start_ms = clock.mark_ms;
    for (int32_t t = 0; t < n; t++) hr_tensor_row_f32(&m->tok_embd, b->tokens[t], ws->x + (size_t)t * dim);
    rope_angles(ws, hp, b);
    /* An item takes all KV heads of a tile (or as many as its scratch holds for the
     * longest tile) when there are tiles enough to share out, except that decoding tiles
     * (one token each) take decode_span's heads. With fewer tiles, items take runs
     * of heads that make about ATTENTION_TILES_PER_THREAD items per thread (two with
     * fewer tiles than threads, one sequence decoding), so that each reads runs of
     * several heads from a block: on 110m, 4 sequences decoded 13-15 % faster than with
     * one head per item, and one sequence at 2k positions spent 12 % less time in
     * attention. A span of one KV head has its whole query group share its KV reads, and
     * when that still leaves fewer than two items per thread (one token of a model with
     * few KV heads), groups are split among threads. */
    int32_t longest, n_tiles = attention_tiles(ws, b, &longest);
    int32_t group = hp->n_head / hp->n_head_kv, attention_parts = 1, kv_span;
    size_t fit = ws->att_floats / ((size_t)longest * (size_t)group * (size_t)ws->max_ctx);
    if (n_tiles >= ATTENTION_TILES_PER_THREAD * ws->n_threads)
        kv_span = longest == 1 ? decode_span(hp, kv) : fit < (size_t)hp->n_head_kv ? (int32_t)fit : hp->n_head_kv;
    else if (n_tiles < ws->n_threads)
        kv_span = hp->n_head_kv * n_tiles / (2 * ws->n_threads);
    else
        kv_span = hp->n_head_kv * n_tiles / (ATTENTION_TILES_PER_THREAD * ws->n_threads);
    if (kv_span < 1) kv_span = 1;
    if ((size_t)kv_span > fit) kv_span = (int32_t)fit;
    int32_t spans = (hp->n_head_kv + kv_span - 1) / kv_span;
    while (attention_parts < group && (int64_t)n_tiles * spans * attention_parts < 2 * (int64_t)ws->n_threads)
        attention_parts++;

    token_job tj = {.m = m, .ws = ws, .kv = kv, .b = b};
    for (int32_t l = 0; l < hp->n_layer; l++) {
        const hr_layer *ly = &m->layers[l];
        tj.layer = l;
        /* The previous layer's FFN output joins the residual stream here. */
        tj.kind = TOKEN_ADD_NORM, tj.add = l > 0, tj.norm_w = ly->attn_norm.data;
        run_tokens(pool, &tj);
        lap(&clock, &clock.t.other_ms);
        const hr_tensor *qkv[] = {&ly->wq, &ly->wk, &ly->wv};
        float *qkv_out[] = {ws->q, ws->k, ws->v};
        hr_matmul_multi(pool, qkv, qkv_out, 3, ws->xb, n);
        lap(&clock, &clock.t.matmul_ms);
        /* Every token's K/V is in the cache before any attention reads it, so tokens of
         * one prompt chunk see each other. */
        tj.kind = TOKEN_ROPE_STORE;
        run_tokens(pool, &tj);
        lap(&clock, &clock.t.other_ms);
        attention_job job = {.m = m, .ws = ws, .kv = kv, .b = b, .layer = l, .n_tiles = n_tiles, .kv_span = kv_span,
                             .spans = spans, .parts = attention_parts};
        atomic_init(&job.next_item, 0);
        hr_pool_run(pool, attention_rows, &job);
        lap(&clock, &clock.t.attention_ms);
        hr_matmul(pool, &ly->wo, ws->xb, n, ws->xb2);
        lap(&clock, &clock.t.matmul_ms);

        tj.kind = TOKEN_ADD_NORM, tj.add = true, tj.norm_w = ly->ffn_norm.data;
        run_tokens(pool, &tj);
        lap(&clock, &clock.t.other_ms);
        const hr_tensor *gate_up[] = {&ly->ffn_gate, &ly->ffn_up};
        float *gate_up_out[] = {ws->hb, ws->hb2};
        hr_matmul_multi(pool, gate_up, gate_up_out, 2, ws->xb, n);
        lap(&clock, &clock.t.matmul_ms);
        tj.kind = TOKEN_SWIGLU;
        run_tokens(pool, &tj);
        lap(&clock, &clock.t.other_ms);
        hr_matmul(pool, &ly->ffn_down, ws->hb, n, ws->xb2);
        lap(&clock, &clock.t.matmul_ms);
        if (clock.on)
            clock.t.matmul_macs += tensor_macs(&ly->wq, n) + tensor_macs(&ly->wk, n) + tensor_macs(&ly->wv, n) +
                                   tensor_macs(&ly->wo, n) + tensor_macs(&ly->ffn_gate, n) +
                                   tensor_macs(&ly->ffn_up, n) + tensor_macs(&ly->ffn_down, n);
    }
    if (n_logits > 0) {
        /* Only the rows that will be sampled take the last layer's output and go through
         * the classifier. */
        for (int32_t r = 0; r < n_logits; r++) {
            size_t src = (size_t)ws->logit_src[r] * dim;
            hr_rmsnorm(ws->xb + (size_t)r * dim, ws->x + src, ws->xb2 + src, m->output_norm.data, dim, hp->rms_eps);
        }
        lap(&clock, &clock.t.other_ms);
        hr_matmul(pool, &m->output, ws->xb, n_logits, logits);
        lap(&clock, &clock.t.matmul_ms);
        if (clock.on) clock.t.matmul_macs += tensor_macs(&m->output, n_logits);
    }
    if (clock.on) {
        /* Attention read every earlier position of each token, keys and values, in every layer. */
        uint64_t positions = 0;
        for (int32_t t = 0; t < n; t++) positions += (uint64_t)b->pos[t] + 1;
        clock.t.kv_bytes = positions * 2 * (uint64_t)hp->n_head_kv * hr_kv_head_bytes(kv) * (uint64_t)hp->n_layer;
        clock.t.steps = 1;
        clock.t.tokens = (uint64_t)n;
        clock.t.total_ms = clock.mark_ms - start_ms;
        hr_forward_timing_add(ws->timing, &clock.t);
    }
    return HR_OK;
}
