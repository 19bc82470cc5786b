#include "engine/engine.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "formats/ggml_type.h"
#include "kernels/threadpool.h"
#include "kv/kv_cache.h"
#include "model/forward.h"

typedef struct seq seq;
struct seq {
    uint64_t id;
    int32_t *tokens; /* prompt, then generated tokens */
    int32_t n_tokens, cap, n_prompt;
    int32_t max_new, n_generated;
    int32_t n_computed; /* positions whose K/V are in the cache */
    int32_t *stop_ids;
    int32_t n_stop_ids;
    hr_sampler *sampler;
    hr_kv_seq kv;
    hr_event_fn on_event;
    void *ctx;
    bool cancelled;
    uint64_t admit_order;
    hr_finish finish;
    seq *next; /* waiting queue, or the list of sequences finished this step */
};

struct hr_engine {
    const hr_model *m;
    hr_engine_config cfg;
    int32_t window;
    hr_kv_pool *kv;
    hr_forward_ws *ws;
    hr_pool *pool;
    float *logits; /* [parallel][n_vocab] */
    /* the batch being built: one entry per token */
    int32_t *b_tokens, *b_pos;
    hr_kv_seq **b_kv;
    bool *b_want;
    seq **logit_owner; /* [parallel] sequence of each logits row */
    hr_forward_timing step_timing; /* the step being run, with cfg.timing */

    pthread_mutex_t lock;
    pthread_cond_t wake, idle;
    seq *wait_head, *wait_tail;
    seq **running; /* admission order, oldest first */
    int32_t n_running, n_waiting;
    uint64_t next_id, admit_counter;
    bool stopping, thread_started;
    pthread_t thread;
    hr_engine_stats stats;
    /* What hr_engine_stats_get reports: stats and the pool's counts as the last step left
     * them, copied under the lock. The engine thread updates both outside it during a
     * step, so readers on other threads must not look at them directly. */
    hr_engine_stats published;
};

/* Copies stats and the pool's counts into published (lock held, engine thread). */
static void publish_stats(hr_engine *e) {
    hr_kv_stats ks;
    hr_kv_pool_stats(e->kv, &ks);
    e->published = e->stats;
    e->published.blocks_total = ks.blocks_total;
    e->published.blocks_used = ks.blocks_used;
    e->published.blocks_cached = ks.blocks_cached;
}

const char *hr_finish_name(hr_finish f) {
    switch (f) {
    case HR_FINISH_NONE: return "none";
    case HR_FINISH_LENGTH: return "length";
    case HR_FINISH_STOP: return "stop";
    case HR_FINISH_CANCELLED: return "cancelled";
    case HR_FINISH_ERROR: return "error";
    }
    return "?";
}

static void *engine_thread(void *arg);

hr_status hr_engine_new(hr_engine **out, const hr_model *m, const hr_engine_config *cfg_in, hr_error *err) {
    *out = NULL;
    hr_engine_config cfg = *cfg_in;
    if (cfg.ctx_size <= 0 || cfg.ctx_size > m->hp.n_ctx_train) cfg.ctx_size = m->hp.n_ctx_train;
    if (cfg.parallel <= 0) cfg.parallel = 1;
    if (cfg.block_tokens <= 0) cfg.block_tokens = 16;
    if (cfg.max_batch_tokens <= 0) cfg.max_batch_tokens = 512;
    /* Every running sequence decodes one token per step, so a step must hold them all. */
    if (cfg.max_batch_tokens < cfg.parallel) cfg.max_batch_tokens = cfg.parallel;
    if (cfg.parallel > 4096) return hr_fail(err, HR_ERR_RANGE, "--parallel %d is above the limit of 4096", cfg.parallel);
    const hr_hparams *hp = &m->hp;
    int32_t kv_dim = hp->n_head_kv * hp->head_dim;
    uint64_t per_token = hr_kv_bytes_per_token(hp->n_layer, kv_dim, cfg.kv_type);
    if (per_token == 0)
        return hr_fail(err, HR_ERR_UNSUPPORTED, "KV type %s cannot store rows of %d values", hr_type_name(cfg.kv_type),
                       kv_dim);
    uint64_t block_bytes = per_token * (uint64_t)cfg.block_tokens;
    uint64_t n_blocks = cfg.kv_mem_bytes
                            ? cfg.kv_mem_bytes / block_bytes
                            : (uint64_t)((cfg.ctx_size + cfg.block_tokens - 1) / cfg.block_tokens) * (uint64_t)cfg.parallel;
    if (n_blocks == 0)
        return hr_fail(err, HR_ERR_RANGE, "--kv-mem %llu bytes holds no block (one block of %d tokens takes %llu bytes)",
                       (unsigned long long)cfg.kv_mem_bytes, cfg.block_tokens, (unsigned long long)block_bytes);
    if (n_blocks > (1u << 28)) return hr_fail(err, HR_ERR_RANGE, "KV pool of %llu blocks is too large", (unsigned long long)n_blocks);
    hr_engine *e = calloc(1, sizeof *e);
    if (!e) return hr_fail(err, HR_ERR_NOMEM, "out of memory for the engine");
    e->m = m;
    e->cfg = cfg;
    uint64_t pool_tokens = n_blocks * (uint64_t)cfg.block_tokens;
    e->window = pool_tokens < (uint64_t)cfg.ctx_size ? (int32_t)pool_tokens : cfg.ctx_size;
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->wake, NULL);
    pthread_cond_init(&e->idle, NULL);
    hr_kv_config kc = {.n_layer = hp->n_layer, .kv_dim = kv_dim, .head_dim = hp->head_dim,
                       .block_tokens = cfg.block_tokens, .n_blocks = (int32_t)n_blocks, .type = cfg.kv_type};
    size_t B = (size_t)cfg.max_batch_tokens, P = (size_t)cfg.parallel;
    hr_status st = hr_kv_pool_new(&e->kv, &kc, err);
    if (st == HR_OK) st = hr_pool_new(&e->pool, cfg.n_threads, err);
    if (st == HR_OK) st = hr_pool_reserve(e->pool, B, (size_t)(hp->n_ff > hp->n_embd ? hp->n_ff : hp->n_embd), err);
    if (st == HR_OK) st = hr_forward_ws_new(&e->ws, m, cfg.max_batch_tokens, e->window, e->pool, err);
    if (st == HR_OK && cfg.timing) hr_forward_ws_set_timing(e->ws, &e->step_timing);
    if (st == HR_OK) {
        e->logits = malloc(P * (size_t)hp->n_vocab * sizeof(float));
        e->b_tokens = malloc(B * sizeof *e->b_tokens);
        e->b_pos = malloc(B * sizeof *e->b_pos);
        e->b_kv = malloc(B * sizeof *e->b_kv);
        e->b_want = malloc(B * sizeof *e->b_want);
        e->logit_owner = malloc(P * sizeof *e->logit_owner);
        e->running = malloc(P * sizeof *e->running);
        if (!e->logits || !e->b_tokens || !e->b_pos || !e->b_kv || !e->b_want || !e->logit_owner || !e->running)
            st = hr_fail(err, HR_ERR_NOMEM, "out of memory for engine buffers (%d sequences)", cfg.parallel);
    }
    if (st == HR_OK) publish_stats(e); /* before any thread can read it */
    if (st == HR_OK && cfg.threaded) {
        if (pthread_create(&e->thread, NULL, engine_thread, e) != 0)
            st = hr_fail(err, HR_ERR_NOMEM, "cannot start the engine thread");
        else e->thread_started = true;
    }
    if (st != HR_OK) {
        hr_engine_free(e);
        return st;
    }
    *out = e;
    return HR_OK;
}

static void seq_free(hr_engine *e, seq *s) {
    hr_kv_seq_free(e->kv, &s->kv);
    hr_sampler_free(s->sampler);
    free(s->tokens);
    free(s->stop_ids);
    free(s);
}

/* Sequences finished in a step are reported after the lock is dropped. */
static void report_finished(hr_engine *e, seq *done) {
    while (done) {
        seq *next = done->next;
        if (done->on_event) done->on_event(done->ctx, done->id, -1, done->finish,
                                            done->finish == HR_FINISH_ERROR ? "forward pass failed" : NULL);
        seq_free(e, done);
        done = next;
    }
}

void hr_engine_free(hr_engine *e) {
    if (!e) return;
    pthread_mutex_lock(&e->lock);
    e->stopping = true;
    pthread_cond_broadcast(&e->wake);
    pthread_mutex_unlock(&e->lock);
    if (e->thread_started) pthread_join(e->thread, NULL);
    seq *done = NULL;
    for (int32_t i = 0; i < e->n_running; i++) {
        e->running[i]->finish = HR_FINISH_CANCELLED;
        e->running[i]->next = done;
        done = e->running[i];
    }
    for (seq *s = e->wait_head, *next; s; s = next) {
        next = s->next;
        s->finish = HR_FINISH_CANCELLED;
        s->next = done;
        done = s;
    }
    e->n_running = 0;
    e->wait_head = e->wait_tail = NULL;
    report_finished(e, done);
    hr_forward_ws_free(e->ws);
    hr_pool_free(e->pool);
    hr_kv_pool_free(e->kv);
    free(e->logits);
    free(e->b_tokens);
    free(e->b_pos);
    free(e->b_kv);
    free(e->b_want);
    free(e->logit_owner);
    free(e->running);
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->wake);
    pthread_cond_destroy(&e->idle);
    free(e);
}

hr_status hr_engine_submit(hr_engine *e, const hr_request *r, uint64_t *id, hr_error *err) {
    if (!r->prompt || r->n_prompt <= 0) return hr_fail(err, HR_ERR_INVALID, "the prompt has no tokens");
    if (r->max_new_tokens <= 0)
        return hr_fail(err, HR_ERR_INVALID, "max new tokens is %d; at least 1 is needed", r->max_new_tokens);
    if (r->n_stop_ids < 0 || (r->n_stop_ids > 0 && !r->stop_ids))
        return hr_fail(err, HR_ERR_INVALID, "stop token list is malformed");
    /* What can never fit is refused now, with the numbers; everything else waits. */
    if ((int64_t)r->n_prompt + r->max_new_tokens > e->window)
        return hr_fail(err, HR_ERR_RANGE,
                       "%d prompt + %d new tokens exceed the %d-token window (the smaller of the context size %d "
                       "and the KV pool's %d blocks x %d tokens)",
                       r->n_prompt, r->max_new_tokens, e->window, e->cfg.ctx_size, hr_kv_pool_config(e->kv)->n_blocks,
                       e->cfg.block_tokens);
    for (int32_t i = 0; i < r->n_prompt; i++)
        if (r->prompt[i] < 0 || r->prompt[i] >= e->m->hp.n_vocab)
            return hr_fail(err, HR_ERR_RANGE, "prompt token %d has id %d, outside the vocabulary (0..%d)", i,
                           r->prompt[i], e->m->hp.n_vocab - 1);
    seq *s = calloc(1, sizeof *s);
    if (!s) return hr_fail(err, HR_ERR_NOMEM, "out of memory for a request");
    s->cap = r->n_prompt + r->max_new_tokens;
    s->tokens = malloc((size_t)s->cap * sizeof *s->tokens);
    s->stop_ids = r->n_stop_ids ? malloc((size_t)r->n_stop_ids * sizeof *s->stop_ids) : NULL;
    hr_status st = (!s->tokens || (r->n_stop_ids && !s->stop_ids))
                       ? hr_fail(err, HR_ERR_NOMEM, "out of memory for a request of %d tokens", s->cap)
                       : hr_sampler_new(&s->sampler, &r->sampling, e->m->hp.n_vocab, err);
    /* The block table is sized now so that admission and decoding never allocate. */
    if (st == HR_OK) st = hr_kv_seq_init(&s->kv, e->kv, s->cap, err);
    if (st != HR_OK) {
        seq_free(e, s);
        return st;
    }
    memcpy(s->tokens, r->prompt, (size_t)r->n_prompt * sizeof *s->tokens);
    if (r->n_stop_ids) memcpy(s->stop_ids, r->stop_ids, (size_t)r->n_stop_ids * sizeof *s->stop_ids);
    s->n_tokens = s->n_prompt = r->n_prompt;
    s->n_stop_ids = r->n_stop_ids;
    s->max_new = r->max_new_tokens;
    s->on_event = r->on_event;
    s->ctx = r->ctx;
    pthread_mutex_lock(&e->lock);
    s->id = ++e->next_id;
    if (e->wait_tail) e->wait_tail->next = s;
    else e->wait_head = s;
    e->wait_tail = s;
    e->n_waiting++;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->lock);
    if (id) *id = s->id;
    return HR_OK;
}

void hr_engine_cancel(hr_engine *e, uint64_t id) {
    pthread_mutex_lock(&e->lock);
    for (seq *s = e->wait_head; s; s = s->next)
        if (s->id == id) s->cancelled = true;
    for (int32_t i = 0; i < e->n_running; i++)
        if (e->running[i]->id == id) e->running[i]->cancelled = true;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->lock);
}

/* ---- one scheduling step (engine thread, or hr_engine_step) ---- */

static int32_t remaining(const seq *s) { return s->n_tokens - s->n_computed; }

static void running_remove(hr_engine *e, int32_t i) {
    memmove(&e->running[i], &e->running[i + 1], (size_t)(e->n_running - i - 1) * sizeof *e->running);
    e->n_running--;
}

/* Gives back the newest sequence's blocks and puts it at the front of the queue; it
 * recomputes from its tokens so far when readmitted, so its output is unaffected. */
static void preempt_newest(hr_engine *e) {
    int32_t newest = e->n_running - 1;
    seq *s = e->running[newest];
    hr_kv_seq_release(e->kv, &s->kv);
    s->n_computed = 0;
    pthread_mutex_lock(&e->lock);
    running_remove(e, newest);
    s->next = e->wait_head;
    e->wait_head = s;
    if (!e->wait_tail) e->wait_tail = s;
    e->n_waiting++;
    e->stats.preemptions++;
    pthread_mutex_unlock(&e->lock);
}

/* Moves cancelled sequences onto *done and admits waiting ones (FCFS) while the blocks
 * their prompts need, plus those promised to sequences still prefilling, are free. */
static void admit(hr_engine *e, seq **done) {
    pthread_mutex_lock(&e->lock);
    for (seq **link = &e->wait_head; *link;) {
        seq *s = *link;
        if (!s->cancelled) {
            link = &s->next;
            continue;
        }
        *link = s->next;
        e->n_waiting--;
        s->finish = HR_FINISH_CANCELLED;
        s->next = *done;
        *done = s;
    }
    e->wait_tail = NULL;
    for (seq *s = e->wait_head; s; s = s->next) e->wait_tail = s;
    for (int32_t i = e->n_running - 1; i >= 0; i--) {
        seq *s = e->running[i];
        if (!s->cancelled) continue;
        hr_kv_seq_release(e->kv, &s->kv);
        running_remove(e, i);
        s->finish = HR_FINISH_CANCELLED;
        s->next = *done;
        *done = s;
    }
    int32_t promised = 0;
    for (int32_t i = 0; i < e->n_running; i++)
        promised += hr_kv_blocks_needed(e->kv, &e->running[i]->kv, remaining(e->running[i]));
    while (e->wait_head && e->n_running < e->cfg.parallel) {
        seq *s = e->wait_head;
        int32_t reused = e->cfg.no_prefix_cache ? 0 : hr_kv_seq_reuse_prefix(e->kv, &s->kv, s->tokens, s->n_tokens);
        s->n_computed = s->kv.n_tokens;
        int32_t need = hr_kv_blocks_needed(e->kv, &s->kv, remaining(s));
        if (need + promised > hr_kv_available(e->kv)) {
            hr_kv_seq_release(e->kv, &s->kv);
            s->n_computed = 0;
            break;
        }
        /* Prompt tokens served from the cache: a preempted sequence coming back to its own
         * blocks (generated tokens among them) is not a hit. */
        if (s->admit_order == 0) e->stats.prefix_hit_tokens += (uint64_t)reused;
        promised += need;
        e->wait_head = s->next;
        if (!e->wait_head) e->wait_tail = NULL;
        s->next = NULL;
        e->n_waiting--;
        s->admit_order = ++e->admit_counter;
        e->running[e->n_running++] = s;
    }
    pthread_mutex_unlock(&e->lock);
}

static void batch_add(hr_engine *e, int32_t *n, seq *s, int32_t count, int32_t *n_logits) {
    for (int32_t k = 0; k < count; k++) {
        int32_t pos = s->n_computed + k;
        e->b_tokens[*n] = s->tokens[pos];
        e->b_pos[*n] = pos;
        e->b_kv[*n] = &s->kv;
        e->b_want[*n] = pos == s->n_tokens - 1;
        if (e->b_want[*n]) e->logit_owner[(*n_logits)++] = s;
        (*n)++;
    }
}

/* Plans the step: every decoding sequence gets its one token (preempting the newest
 * sequences when blocks run out), then prompts are prefilled in chunks up to the
 * batch limit. Returns the number of tokens in the batch. */
static int32_t build_batch(hr_engine *e, int32_t *n_logits) {
    int32_t n = 0;
    *n_logits = 0;
    hr_error ignored;
    for (int32_t i = 0; i < e->n_running; i++) {
        seq *s = e->running[i];
        if (remaining(s) != 1) continue;
        while (hr_kv_seq_reserve(e->kv, &s->kv, 1, &ignored) != HR_OK) {
            bool self = e->running[e->n_running - 1] == s;
            preempt_newest(e);
            if (self) break;
        }
        if (i < e->n_running && e->running[i] == s) batch_add(e, &n, s, 1, n_logits);
    }
    int32_t bt = e->cfg.block_tokens;
    for (int32_t i = 0; i < e->n_running && n < e->cfg.max_batch_tokens; i++) {
        seq *s = e->running[i];
        if (remaining(s) <= 1) continue; /* decoding: handled above */
        int32_t chunk = remaining(s);
        if (chunk > e->cfg.max_batch_tokens - n) chunk = e->cfg.max_batch_tokens - n;
        /* Take what the free blocks allow rather than nothing. */
        int32_t room = (s->kv.n_blocks * bt - s->n_computed) + hr_kv_available(e->kv) * bt;
        if (chunk > room) chunk = room;
        if (chunk <= 0 || hr_kv_seq_reserve(e->kv, &s->kv, chunk, &ignored) != HR_OK) continue;
        batch_add(e, &n, s, chunk, n_logits);
    }
    return n;
}

static bool is_stop(const hr_engine *e, const seq *s, int32_t token) {
    const hr_vocab *v = e->m->vocab;
    /* A model that emits BOS has begun a new document (llama2.c checkpoints separate
     * their stories that way), so BOS ends generation just as EOS and EOT do. */
    if (token == v->eos_id || token == v->eot_id || token == v->bos_id) return true;
    for (int32_t i = 0; i < s->n_stop_ids; i++)
        if (s->stop_ids[i] == token) return true;
    return false;
}

static void step_once(hr_engine *e) {
    seq *done = NULL;
    hr_forward_timing *timed_into = NULL; /* with cfg.timing, where this step's times go */
    admit(e, &done);
    int32_t n_logits;
    int32_t n = build_batch(e, &n_logits);
    if (n == 0 && e->n_running > 0) {
        /* Nothing could be scheduled: the newest sequence yields so older ones proceed. */
        preempt_newest(e);
    }
    if (n > 0) {
        hr_batch batch = {.n_tokens = n, .tokens = e->b_tokens, .pos = e->b_pos, .seqs = e->b_kv, .want_logits = e->b_want};
        hr_error err = {0};
        if (e->cfg.timing) {
            memset(&e->step_timing, 0, sizeof e->step_timing);
            timed_into = n_logits == n ? &e->stats.decode_timing : &e->stats.prefill_timing;
        }
        hr_status st = hr_forward_batch(e->m, e->ws, e->kv, e->pool, &batch, e->logits, &err);
        /* Commit what each sequence computed, registering full blocks for reuse. */
        for (int32_t i = 0; i < e->n_running; i++) {
            seq *s = e->running[i];
            int32_t end = s->n_computed;
            for (int32_t t = 0; t < n; t++)
                if (e->b_kv[t] == &s->kv && e->b_pos[t] + 1 > end) end = e->b_pos[t] + 1;
            if (st == HR_OK && end > s->n_computed) {
                e->stats.tokens_prefilled += (uint64_t)(end - s->n_computed);
                hr_kv_seq_commit(e->kv, &s->kv, s->tokens, end);
                s->n_computed = end;
            }
        }
        for (int32_t r = 0; r < n_logits; r++) {
            seq *s = e->logit_owner[r];
            if (st != HR_OK) {
                s->finish = HR_FINISH_ERROR;
                continue;
            }
            int32_t token = hr_sampler_pick(s->sampler, e->logits + (size_t)r * e->m->hp.n_vocab, s->tokens,
                                            (size_t)s->n_tokens);
            if (is_stop(e, s, token)) {
                s->finish = HR_FINISH_STOP;
                continue;
            }
            s->tokens[s->n_tokens++] = token;
            s->n_generated++;
            e->stats.tokens_generated++;
            if (s->on_event) s->on_event(s->ctx, s->id, token, HR_FINISH_NONE, NULL);
            if (s->n_generated >= s->max_new) s->finish = HR_FINISH_LENGTH;
        }
    }
    hr_kv_stats ks;
    hr_kv_pool_stats(e->kv, &ks);
    pthread_mutex_lock(&e->lock);
    uint64_t live = 0;
    for (int32_t i = 0; i < e->n_running; i++) live += (uint64_t)e->running[i]->n_computed;
    e->stats.live_token_slots_sum += live;
    e->stats.allocated_token_slots_sum += (uint64_t)ks.blocks_used * (uint64_t)e->cfg.block_tokens;
    if (ks.blocks_used > e->stats.blocks_used_peak) e->stats.blocks_used_peak = ks.blocks_used;
    if (timed_into) hr_forward_timing_add(timed_into, &e->step_timing);
    for (int32_t i = e->n_running - 1; i >= 0; i--) {
        seq *s = e->running[i];
        if (s->finish == HR_FINISH_NONE) continue;
        running_remove(e, i);
        s->next = done;
        done = s;
    }
    e->stats.steps++;
    pthread_mutex_unlock(&e->lock);
    /* Blocks go back before the events, so a caller that resubmits finds them free (and
     * one that asks for stats sees them free). */
    for (seq *s = done; s; s = s->next) hr_kv_seq_release(e->kv, &s->kv);
    pthread_mutex_lock(&e->lock);
    publish_stats(e);
    pthread_mutex_unlock(&e->lock);
    report_finished(e, done);
    pthread_mutex_lock(&e->lock);
    if (!e->wait_head && e->n_running == 0) pthread_cond_broadcast(&e->idle);
    pthread_mutex_unlock(&e->lock);
}

bool hr_engine_step(hr_engine *e) {
    step_once(e);
    pthread_mutex_lock(&e->lock);
    bool more = e->wait_head || e->n_running > 0;
    pthread_mutex_unlock(&e->lock);
    return more;
}

static void *engine_thread(void *arg) {
    hr_engine *e = arg;
    pthread_mutex_lock(&e->lock);
    while (!e->stopping) {
        if (!e->wait_head && e->n_running == 0) {
            pthread_cond_wait(&e->wake, &e->lock);
            continue;
        }
        pthread_mutex_unlock(&e->lock);
        step_once(e);
        pthread_mutex_lock(&e->lock);
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

void hr_engine_wait_idle(hr_engine *e) {
    if (!e->thread_started) {
        while (hr_engine_step(e)) {
        }
        return;
    }
    pthread_mutex_lock(&e->lock);
    while (e->wait_head || e->n_running > 0) pthread_cond_wait(&e->idle, &e->lock);
    pthread_mutex_unlock(&e->lock);
}

void hr_engine_stats_get(hr_engine *e, hr_engine_stats *out) {
    pthread_mutex_lock(&e->lock);
    *out = e->published;
    out->window = e->window;
    out->running = e->n_running;
    out->waiting = e->n_waiting;
    out->block_tokens = e->cfg.block_tokens;
    pthread_mutex_unlock(&e->lock);
}

hr_status hr_engine_check(hr_engine *e, hr_error *err) {
    pthread_mutex_lock(&e->lock);
    size_t n = 0;
    const hr_kv_seq **seqs = malloc(((size_t)e->n_running + (size_t)e->n_waiting + 1) * sizeof *seqs);
    hr_status st = HR_OK;
    if (!seqs) st = hr_fail(err, HR_ERR_NOMEM, "out of memory checking the engine");
    for (int32_t i = 0; seqs && i < e->n_running; i++) seqs[n++] = &e->running[i]->kv;
    for (seq *s = e->wait_head; seqs && s; s = s->next) seqs[n++] = &s->kv;
    if (st == HR_OK) st = hr_kv_check(e->kv, seqs, n, err);
    hr_kv_stats ks;
    hr_kv_pool_stats(e->kv, &ks);
    if (st == HR_OK && ks.blocks_used > ks.blocks_total)
        st = hr_fail(err, HR_ERR_INVALID, "%d blocks in use in a pool of %d", ks.blocks_used, ks.blocks_total);
    free(seqs);
    pthread_mutex_unlock(&e->lock);
    return st;
}
