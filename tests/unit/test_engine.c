/* The paged KV cache and the continuous-batching engine: batching and preemption never
 * change what a sequence generates, the pool's invariants hold after every step of a
 * random workload, and the prefix cache reuses blocks without changing output. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "base/file.h"
#include "base/rng.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "formats/ggml_type.h"
#include "forward_steps.h"
#include "kv/kv_cache.h"
#include "test.h"
#include "tokenizer/tokenize.h"

enum { MAX_OUT = 600 };

typedef struct {
    int32_t tokens[MAX_OUT];
    int32_t n;
    hr_finish finish;
    bool finished;
} output;

static void collect_event(void *ctx, uint64_t id, int32_t token, hr_finish finish, const char *error) {
    output *o = ctx;
    (void)id;
    (void)error;
    if (finish != HR_FINISH_NONE) {
        o->finish = finish;
        o->finished = true;
    } else if (o->n < MAX_OUT) {
        o->tokens[o->n++] = token;
    }
}

static bool collect_token(void *ctx, int32_t token) {
    output *o = ctx;
    if (o->n < MAX_OUT) o->tokens[o->n++] = token;
    return true;
}

static const char *const PROMPTS[8] = {
    "Once upon a time",  "The little dog",        "Lily and Tom went to the park", "Tim said, \"Hello!\" and",
    "One day, a big cat", "The sun was shining",  "Sam had a red ball",            "A bird sat on a tree",
};

static hr_model *load_stories(hr_test_ctx *t) {
    const char *path = hr_test_asset(t, "models/stories260K.gguf");
    if (!path) return NULL;
    hr_model *m = NULL;
    hr_error err = {0};
    if (hr_model_load(&m, path, NULL, &err) != HR_OK) hr_test_failf(t, __FILE__, __LINE__, "%s", err.msg);
    return m;
}

static hr_status encode(const hr_model *m, const char *text, hr_tokens *out, hr_error *err) {
    return hr_tok_encode(m->vocab, text, strlen(text), HR_TOK_ADD_SPECIAL, out, err);
}

/* Runs the 8 prompts together on an engine with cfg and compares with each alone. */
static void check_batched_equals_alone(hr_test_ctx *t, hr_model *m, hr_engine_config cfg, bool expect_preemption) {
    hr_sampling greedy = hr_sampling_default();
    greedy.temperature = 0.0f;
    static output alone[8], together[8];
    memset(alone, 0, sizeof alone);
    memset(together, 0, sizeof together);
    hr_tokens prompts[8] = {{0}};
    hr_error err = {0};
    hr_engine *e = NULL;
    hr_status st = HR_OK;
    for (int i = 0; i < 8 && st == HR_OK; i++) {
        st = encode(m, PROMPTS[i], &prompts[i], &err);
        hr_gen_stats stats;
        if (st == HR_OK)
            st = hr_generate(m, prompts[i].ids, prompts[i].count, 48, &greedy, collect_token, &alone[i], &stats, &err);
    }
    if (st == HR_OK) st = hr_engine_new(&e, m, &cfg, &err);
    for (int i = 0; i < 8 && st == HR_OK; i++) {
        hr_request r = {.prompt = prompts[i].ids, .n_prompt = (int32_t)prompts[i].count, .max_new_tokens = 48,
                        .sampling = greedy, .on_event = collect_event, .ctx = &together[i]};
        st = hr_engine_submit(e, &r, NULL, &err);
    }
    int steps = 0;
    while (st == HR_OK && !cfg.threaded && hr_engine_step(e) && steps++ < 100000) st = hr_engine_check(e, &err);
    if (st == HR_OK && cfg.threaded) hr_engine_wait_idle(e);
    hr_engine_stats stats = {0};
    if (e) hr_engine_stats_get(e, &stats);
    hr_engine_free(e);
    uint64_t prompt_tokens = 0;
    for (int i = 0; i < 8; i++) prompt_tokens += prompts[i].count;
    for (int i = 0; i < 8; i++) hr_tokens_free(&prompts[i]);
    HR_CHECK_OK(st, &err);
    HR_CHECKF(stats.prefix_hit_tokens <= prompt_tokens, "%llu prefix-cache hit tokens from %llu prompt tokens",
              (unsigned long long)stats.prefix_hit_tokens, (unsigned long long)prompt_tokens);
    for (int i = 0; i < 8; i++) {
        HR_CHECKF(together[i].finished, "prompt %d never finished", i);
        HR_CHECKF(alone[i].n > 0, "prompt %d generated nothing alone", i);
        HR_CHECKF(together[i].n == alone[i].n && memcmp(together[i].tokens, alone[i].tokens,
                                                        (size_t)alone[i].n * sizeof(int32_t)) == 0,
                  "prompt %d: %d tokens together vs %d alone, or different ids", i, together[i].n, alone[i].n);
    }
    if (expect_preemption) HR_CHECKF(stats.preemptions > 0, "no preemption happened with a pool of %d blocks", stats.blocks_total);
    HR_CHECKF(stats.blocks_used_peak <= stats.blocks_total, "peak %d blocks of %d", stats.blocks_used_peak, stats.blocks_total);
}

/* Runs the 8 prompts (24 new tokens each) on a stepped engine; fills out[] and stats. */
static hr_status run_prompts(hr_model *m, const hr_engine_config *cfg, output *out, hr_engine_stats *stats,
                             hr_error *err) {
    hr_sampling greedy = hr_sampling_default();
    greedy.temperature = 0.0f;
    hr_engine *e = NULL;
    hr_status st = hr_engine_new(&e, m, cfg, err);
    for (int i = 0; i < 8 && st == HR_OK; i++) {
        hr_tokens prompt = {0};
        st = encode(m, PROMPTS[i], &prompt, err);
        hr_request r = {.prompt = prompt.ids, .n_prompt = (int32_t)prompt.count, .max_new_tokens = 24,
                        .sampling = greedy, .on_event = collect_event, .ctx = &out[i]};
        if (st == HR_OK) st = hr_engine_submit(e, &r, NULL, err);
        hr_tokens_free(&prompt);
    }
    while (st == HR_OK && hr_engine_step(e)) {}
    if (e) hr_engine_stats_get(e, stats);
    hr_engine_free(e);
    return st;
}

/* With timing on, every step is charged whole to its stages (they add up to its total),
 * decode steps are told from prefill steps, and the work counted is the model's: each
 * decode token costs every layer's matmuls plus the classifier, and reads at least its
 * own K/V. Timing changes no output, and off it records nothing. */
HR_TEST(engine_timing_splits_every_step_and_counts_the_model_work) {
    hr_model *m = load_stories(t);
    if (!m) return;
    static output timed[8], plain[8];
    memset(timed, 0, sizeof timed);
    memset(plain, 0, sizeof plain);
    hr_engine_config cfg = {.parallel = 4, .kv_type = HR_TYPE_F16, .n_threads = 2, .timing = true};
    hr_engine_stats st_timed = {0}, st_plain = {0};
    hr_error err = {0};
    HR_CHECK_OK(run_prompts(m, &cfg, timed, &st_timed, &err), &err);
    cfg.timing = false;
    HR_CHECK_OK(run_prompts(m, &cfg, plain, &st_plain, &err), &err);
    for (int i = 0; i < 8; i++)
        HR_CHECKF(timed[i].n > 0 && timed[i].n == plain[i].n &&
                      memcmp(timed[i].tokens, plain[i].tokens, (size_t)plain[i].n * sizeof(int32_t)) == 0,
                  "prompt %d: timing changed the output", i);
    const hr_forward_timing *d = &st_timed.decode_timing, *p = &st_timed.prefill_timing;
    HR_CHECKF(d->steps > 0 && p->steps > 0, "%llu decode and %llu prefill steps", (unsigned long long)d->steps,
              (unsigned long long)p->steps);
    HR_CHECKF(d->steps + p->steps == st_timed.steps, "%llu + %llu timed steps of %llu", (unsigned long long)d->steps,
              (unsigned long long)p->steps, (unsigned long long)st_timed.steps);
    for (const hr_forward_timing *x = d; x; x = x == d ? p : NULL) {
        double parts = x->matmul_ms + x->attention_ms + x->other_ms;
        HR_CHECKF(x->matmul_ms > 0 && x->attention_ms > 0 && x->other_ms >= 0, "a stage took no time");
        HR_CHECKF(fabs(parts - x->total_ms) <= 1e-6 * x->total_ms, "stages add to %.6f ms of %.6f", parts, x->total_ms);
    }
    const hr_hparams *hp = &m->hp;
    uint64_t q_dim = (uint64_t)hp->n_head * hp->head_dim, kv_dim = (uint64_t)hp->n_head_kv * hp->head_dim;
    uint64_t per_token = (uint64_t)hp->n_layer * ((uint64_t)hp->n_embd * (q_dim + 2 * kv_dim) + q_dim * hp->n_embd +
                                                  3 * (uint64_t)hp->n_embd * hp->n_ff) +
                         (uint64_t)hp->n_vocab * hp->n_embd;
    HR_CHECKF(d->matmul_macs == d->tokens * per_token, "decode counted %llu multiply-adds for %llu tokens, not %llu each",
              (unsigned long long)d->matmul_macs, (unsigned long long)d->tokens, (unsigned long long)per_token);
    uint64_t own_kv = 2 * kv_dim * sizeof(uint16_t) * (uint64_t)hp->n_layer;
    HR_CHECKF(d->kv_bytes > d->tokens * own_kv, "decode read %llu K/V bytes for %llu tokens",
              (unsigned long long)d->kv_bytes, (unsigned long long)d->tokens);
    HR_CHECK(st_plain.decode_timing.steps == 0 && st_plain.prefill_timing.steps == 0 &&
             st_plain.decode_timing.total_ms == 0);
    hr_model_free(m);
}

HR_TEST(engine_eight_sequences_together_equal_each_alone) {
    hr_model *m = load_stories(t);
    if (!m) return;
    hr_engine_config cfg = {.parallel = 8, .kv_type = HR_TYPE_F32};
    check_batched_equals_alone(t, m, cfg, false);
    hr_model_free(m);
}

/* stories260K has two query heads per KV head. With f16 KV, one thread takes both heads
 * of a group and widens their rows to f32 once; four threads split a single token's
 * groups, so each head reads the f16 rows itself. Widening is exact: every logit of 40
 * steps (past two blocks) must be bit-identical. */
HR_TEST(forward_f16_kv_logits_identical_whether_query_heads_share_reads) {
    hr_model *m = load_stories(t);
    if (!m) return;
    HR_CHECK(m->hp.n_head / m->hp.n_head_kv == 2);
    enum { STEPS = 40 };
    int32_t tokens[STEPS];
    for (int i = 0; i < STEPS; i++) tokens[i] = 1 + (i * 37) % (m->hp.n_vocab - 1);
    size_t bytes = (size_t)STEPS * m->hp.n_vocab * sizeof(float);
    float *shared = malloc(bytes), *split = malloc(bytes);
    hr_error err = {0};
    HR_CHECK(shared && split);
    HR_CHECK_OK(forward_steps(m, 1, HR_TYPE_F16, tokens, STEPS, shared, &err), &err);
    HR_CHECK_OK(forward_steps(m, 4, HR_TYPE_F16, tokens, STEPS, split, &err), &err);
    HR_CHECKF(memcmp(shared, split, bytes) == 0, "logits differ between shared and per-head reads of f16 KV");
    free(shared);
    free(split);
    hr_model_free(m);
}

/* A 128-token prompt chunk is attended in tiles of consecutive tokens whose queries take
 * turns on each K/V block, and items of as many KV heads as a thread's score scratch
 * (2M floats) holds for the longest tile. The workspace's reach sets both: at 21845
 * positions 48 heads of scores fit, so tiles of 16 and items of 3 of stories260K's 4 KV
 * heads (split 3 + 1); at 300000 positions 3 fit, so tiles of 3 and one head per item;
 * at 128, tiles of 16 with all heads. Each query makes the same kernel calls however it
 * is tiled and however items group heads, and batching does not change matmuls: the
 * chunk's logits must equal those of the tokens run one at a time, bit for bit. */
HR_TEST(forward_attention_tiles_and_head_spans_equal_one_at_a_time) {
    hr_model *m = load_stories(t);
    if (!m) return;
    HR_CHECK(m->hp.n_head_kv == 4 && m->hp.n_head / m->hp.n_head_kv == 2);
    enum { N = 128 };
    static const int32_t reach[] = {21845, 300000, 128};
    int32_t tokens[N];
    for (int i = 0; i < N; i++) tokens[i] = 1 + (i * 41) % (m->hp.n_vocab - 1);
    size_t row = (size_t)m->hp.n_vocab;
    float *chunk = malloc(N * row * sizeof(float)), *single = malloc(N * row * sizeof(float));
    HR_CHECK(chunk && single);
    hr_error err = {0};
    HR_CHECK_OK(forward_steps(m, 2, HR_TYPE_F16, tokens, N, single, &err), &err);
    for (size_t c = 0; c < sizeof reach / sizeof reach[0]; c++) {
        HR_CHECK_OK(forward_chunk(m, 2, HR_TYPE_F16, reach[c], tokens, N, chunk, &err), &err);
        for (int i = 0; i < N; i++)
            HR_CHECKF(memcmp(chunk + i * row, single + i * row, row * sizeof(float)) == 0,
                      "reach %d, token %d: logits of the chunk differ from one token at a time", reach[c], i);
    }
    free(chunk);
    free(single);
    hr_model_free(m);
}

typedef struct {
    hr_engine *e;
    atomic_bool stop;
    int bad_reads, reads;
} stats_poller;

/* Reads stats as fast as it can while the engine thread steps, as /metrics and
 * /v1/headroom do; every snapshot must add up. */
static void *poll_stats(void *arg) {
    stats_poller *p = arg;
    while (!atomic_load(&p->stop)) {
        hr_engine_stats st;
        hr_engine_stats_get(p->e, &st);
        p->reads++;
        if (st.blocks_used < 0 || st.blocks_used + st.blocks_cached > st.blocks_total ||
            st.blocks_used_peak > st.blocks_total)
            p->bad_reads++;
    }
    return NULL;
}

/* Under ThreadSanitizer (make test runs the unit tests under it) this shows the stats are
 * read from a copy the engine publishes under its lock, not from counters its thread is
 * changing. */
HR_TEST(engine_stats_read_from_another_thread_while_it_steps) {
    hr_model *m = load_stories(t);
    if (!m) return;
    hr_engine_config cfg = {.parallel = 4, .kv_type = HR_TYPE_F32, .threaded = true,
                            .kv_mem_bytes = 12 * 16 * hr_kv_bytes_per_token(m->hp.n_layer,
                                                                            m->hp.n_head_kv * m->hp.head_dim,
                                                                            HR_TYPE_F32)};
    hr_error err = {0};
    hr_engine *e = NULL;
    hr_status st = hr_engine_new(&e, m, &cfg, &err);
    stats_poller p = {.e = e};
    pthread_t poller;
    bool started = st == HR_OK && pthread_create(&poller, NULL, poll_stats, &p) == 0;
    hr_sampling greedy = hr_sampling_default();
    greedy.temperature = 0.0f;
    static output outs[8];
    memset(outs, 0, sizeof outs);
    for (int i = 0; i < 8 && st == HR_OK; i++) {
        hr_tokens prompt = {0};
        st = encode(m, PROMPTS[i], &prompt, &err);
        hr_request r = {.prompt = prompt.ids, .n_prompt = (int32_t)prompt.count, .max_new_tokens = 32,
                        .sampling = greedy, .on_event = collect_event, .ctx = &outs[i]};
        if (st == HR_OK) st = hr_engine_submit(e, &r, NULL, &err);
        hr_tokens_free(&prompt);
    }
    if (st == HR_OK) hr_engine_wait_idle(e);
    atomic_store(&p.stop, true);
    if (started) pthread_join(poller, NULL);
    hr_engine_stats final = {0};
    if (e) hr_engine_stats_get(e, &final);
    hr_engine_free(e);
    hr_model_free(m);
    HR_CHECK_OK(st, &err);
    HR_CHECK(started && p.reads > 0);
    HR_CHECKF(p.bad_reads == 0, "%d of %d snapshots did not add up", p.bad_reads, p.reads);
    HR_CHECKF(final.blocks_used == 0 && final.tokens_generated == 8 * 32,
              "idle engine: %d blocks used, %llu tokens generated", final.blocks_used,
              (unsigned long long)final.tokens_generated);
}

HR_TEST(engine_threaded_small_chunks_equal_each_alone) {
    hr_model *m = load_stories(t);
    if (!m) return;
    hr_engine_config cfg = {.parallel = 8, .kv_type = HR_TYPE_F32, .threaded = true, .max_batch_tokens = 8};
    check_batched_equals_alone(t, m, cfg, false);
    hr_model_free(m);
}

HR_TEST(engine_preempts_when_the_pool_is_small_and_output_is_unchanged) {
    hr_model *m = load_stories(t);
    if (!m) return;
    uint64_t block_bytes = hr_kv_bytes_per_token(m->hp.n_layer, m->hp.n_head_kv * m->hp.head_dim, HR_TYPE_F32) * 16;
    /* 10 blocks hold 160 tokens: the 8 sequences need about 8 x 60. */
    hr_engine_config cfg = {.parallel = 8, .kv_type = HR_TYPE_F32, .kv_mem_bytes = 10 * block_bytes};
    check_batched_equals_alone(t, m, cfg, true);
    /* One-token blocks: a preempted sequence finds all its tokens, generated ones too, in
     * the cache when it comes back; the hit counter must still count prompt tokens only. */
    if (!t->failed) {
        hr_engine_config tiny_blocks = {.parallel = 8, .kv_type = HR_TYPE_F32, .block_tokens = 1,
                                        .kv_mem_bytes = 100 * block_bytes / 16};
        check_batched_equals_alone(t, m, tiny_blocks, true);
    }
    hr_model_free(m);
}

HR_TEST(engine_refuses_what_can_never_fit_with_numbers) {
    hr_model *m = load_stories(t);
    if (!m) return;
    hr_engine_config cfg = {.parallel = 2, .ctx_size = 64, .kv_type = HR_TYPE_F32};
    hr_engine *e;
    hr_error err = {0};
    HR_CHECK_OK(hr_engine_new(&e, m, &cfg, &err), &err);
    int32_t prompt[60];
    for (int i = 0; i < 60; i++) prompt[i] = 100 + i;
    hr_request r = {.prompt = prompt, .n_prompt = 60, .max_new_tokens = 10, .sampling = hr_sampling_default()};
    hr_status st = hr_engine_submit(e, &r, NULL, &err);
    char msg[600];
    snprintf(msg, sizeof msg, "%s", err.msg);
    r.max_new_tokens = 0;
    hr_status st0 = hr_engine_submit(e, &r, NULL, &err);
    r.max_new_tokens = 4;
    prompt[3] = 100000;
    hr_status st_bad = hr_engine_submit(e, &r, NULL, &err);
    hr_engine_free(e);
    hr_model_free(m);
    HR_CHECK_EQ_INT(st, HR_ERR_RANGE);
    HR_CHECKF(strstr(msg, "60 prompt + 10 new tokens exceed the 64-token window"), "message: %s", msg);
    HR_CHECK_EQ_INT(st0, HR_ERR_INVALID);
    HR_CHECK_EQ_INT(st_bad, HR_ERR_RANGE);
}

HR_TEST(engine_random_workload_keeps_invariants_and_leaks_nothing) {
    hr_model *m = load_stories(t);
    if (!m) return;
    hr_engine_config cfg = {.parallel = 6, .ctx_size = 96, .block_tokens = 4, .max_batch_tokens = 24,
                            .kv_type = HR_TYPE_F32};
    uint64_t block_bytes = hr_kv_bytes_per_token(m->hp.n_layer, m->hp.n_head_kv * m->hp.head_dim, HR_TYPE_F32) * 4;
    cfg.kv_mem_bytes = 30 * block_bytes;
    hr_engine *e;
    hr_error err = {0};
    HR_CHECK_OK(hr_engine_new(&e, m, &cfg, &err), &err);
    enum { N_REQ = 300 };
    static output outs[N_REQ];
    memset(outs, 0, sizeof outs);
    uint64_t ids[N_REQ] = {0};
    int submitted = 0;
    hr_rng rng;
    hr_rng_seed(&rng, 2024);
    hr_status st = HR_OK;
    /* A few shared prompt stems make the prefix cache and copy-on-write take part. */
    int32_t stems[3][40];
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < 40; i++) stems[s][i] = i == 0 ? 1 : 3 + (int32_t)(hr_rng_u64(&rng) % 500);
    int ops = 0;
    hr_engine_stats stats = {0};
    for (; ops < 3000 && st == HR_OK; ops++) {
        uint64_t dice = hr_rng_u64(&rng) % 10;
        if (dice < 3 && submitted < N_REQ) {
            int32_t prompt[64];
            int32_t n = 1 + (int32_t)(hr_rng_u64(&rng) % 60);
            int stem = (int)(hr_rng_u64(&rng) % 4);
            for (int32_t i = 0; i < n; i++)
                prompt[i] = stem < 3 && i < 40 ? stems[stem][i] : 3 + (int32_t)(hr_rng_u64(&rng) % 500);
            hr_request r = {.prompt = prompt, .n_prompt = n,
                            .max_new_tokens = 1 + (int32_t)(hr_rng_u64(&rng) % (uint64_t)(96 - n)),
                            .sampling = hr_sampling_default(), .on_event = collect_event, .ctx = &outs[submitted]};
            r.sampling.seed = (uint64_t)submitted;
            st = hr_engine_submit(e, &r, &ids[submitted], &err);
            submitted++;
        } else if (dice < 4 && submitted > 0) {
            hr_engine_cancel(e, ids[hr_rng_u64(&rng) % (uint64_t)submitted]);
        } else {
            hr_engine_step(e);
            st = hr_engine_check(e, &err);
            hr_engine_stats_get(e, &stats);
            if (st == HR_OK && stats.blocks_used > stats.blocks_total)
                st = hr_fail(&err, HR_ERR_INVALID, "%d blocks used of %d", stats.blocks_used, stats.blocks_total);
        }
    }
    while (st == HR_OK && hr_engine_step(e)) st = hr_engine_check(e, &err);
    hr_engine_stats_get(e, &stats);
    hr_engine_free(e);
    hr_model_free(m);
    HR_CHECK_OK(st, &err);
    int cancelled = 0;
    for (int i = 0; i < submitted; i++) {
        HR_CHECKF(outs[i].finished, "request %d never finished", i);
        cancelled += outs[i].finish == HR_FINISH_CANCELLED;
    }
    HR_CHECKF(stats.blocks_used == 0, "%d blocks still owned after every request finished", stats.blocks_used);
    HR_CHECKF(cancelled > 0 && cancelled < submitted, "%d of %d cancelled: the workload is not mixed", cancelled, submitted);
    HR_CHECKF(stats.preemptions > 0, "the random workload never preempted (pool too large?)");
    HR_CHECKF(stats.prefix_hit_tokens > 0, "the shared stems never hit the prefix cache");
}

HR_TEST(engine_prefix_cache_reuses_a_200_token_prefix_with_same_output) {
    hr_model *m = load_stories(t);
    if (!m) return;
    HR_ASSET(story_path, "ref/llama2c/case0.txt");
    char *story;
    size_t story_len;
    hr_error err = {0};
    HR_CHECK_OK(hr_file_read_all(story_path, &story, &story_len, &err), &err);
    hr_tokens ids = {0};
    hr_status st = hr_tok_encode(m->vocab, story, story_len, HR_TOK_ADD_SPECIAL, &ids, &err);
    free(story);
    HR_CHECK_OK(st, &err);
    HR_CHECKF(ids.count > 220, "story has only %zu tokens", ids.count);
    int32_t first[210], second[210];
    memcpy(first, ids.ids, 200 * sizeof(int32_t));
    memcpy(second, ids.ids, 200 * sizeof(int32_t));
    for (int i = 200; i < 210; i++) {
        first[i] = ids.ids[i];
        second[i] = ids.ids[i + 10];
    }
    hr_tokens_free(&ids);
    hr_sampling greedy = hr_sampling_default();
    greedy.temperature = 0.0f;
    static output with_cache[2], without_cache;
    memset(with_cache, 0, sizeof with_cache);
    memset(&without_cache, 0, sizeof without_cache);
    hr_engine_config cfg = {.parallel = 2, .kv_type = HR_TYPE_F32};
    hr_engine *e;
    HR_CHECK_OK(hr_engine_new(&e, m, &cfg, &err), &err);
    hr_request r = {.prompt = first, .n_prompt = 210, .max_new_tokens = 30, .sampling = greedy,
                    .on_event = collect_event, .ctx = &with_cache[0]};
    st = hr_engine_submit(e, &r, NULL, &err);
    if (st == HR_OK) hr_engine_wait_idle(e);
    r.prompt = second;
    r.ctx = &with_cache[1];
    if (st == HR_OK) st = hr_engine_submit(e, &r, NULL, &err);
    if (st == HR_OK) hr_engine_wait_idle(e);
    hr_engine_stats stats;
    hr_engine_stats_get(e, &stats);
    hr_engine_free(e);
    cfg.no_prefix_cache = true;
    if (st == HR_OK) st = hr_engine_new(&e, m, &cfg, &err);
    r.ctx = &without_cache;
    if (st == HR_OK) st = hr_engine_submit(e, &r, NULL, &err);
    if (st == HR_OK) {
        hr_engine_wait_idle(e);
        hr_engine_free(e);
    }
    hr_model_free(m);
    HR_CHECK_OK(st, &err);
    /* 200 shared tokens fill 12 blocks of 16 (192 tokens). */
    HR_CHECKF(stats.prefix_hit_tokens >= 192, "prefix cache hit %llu tokens", (unsigned long long)stats.prefix_hit_tokens);
    HR_CHECKF(with_cache[1].n == without_cache.n &&
                  memcmp(with_cache[1].tokens, without_cache.tokens, (size_t)without_cache.n * sizeof(int32_t)) == 0,
              "output with the prefix cache (%d tokens) differs from without (%d)", with_cache[1].n, without_cache.n);
}

HR_TEST(kv_pool_larger_than_the_machine_is_refused) {
    /* 16 MiB blocks: a million of them is 16 TiB, more than any machine these tests run on. */
    hr_kv_config c = {.n_layer = 32, .kv_dim = 4096, .head_dim = 128, .block_tokens = 16, .n_blocks = 1 << 20,
                      .type = HR_TYPE_F32};
    hr_kv_pool *p = NULL;
    hr_error err = {0};
    HR_CHECK(hr_kv_pool_new(&p, &c, &err) == HR_ERR_NOMEM);
    HR_CHECK(p == NULL);
    HR_CHECKF(strstr(err.msg, "KV pool of 16777216 MiB (1048576 blocks x 16 tokens) is larger than this machine's memory"),
              "message: %s", err.msg);
    c.n_blocks = 4; /* 64 MiB fits */
    HR_CHECK_OK(hr_kv_pool_new(&p, &c, &err), &err);
    hr_kv_pool_free(p);
}

HR_TEST(kv_copy_on_write_when_a_shared_block_is_written) {
    hr_kv_config c = {.n_layer = 2, .kv_dim = 8, .head_dim = 8, .block_tokens = 4, .n_blocks = 6, .type = HR_TYPE_F32};
    hr_kv_pool *p;
    hr_error err = {0};
    HR_CHECK_OK(hr_kv_pool_new(&p, &c, &err), &err);
    hr_kv_seq a, b;
    int32_t tokens[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    hr_status st = hr_kv_seq_init(&a, p, 12, &err);
    if (st == HR_OK) st = hr_kv_seq_init(&b, p, 12, &err);
    if (st == HR_OK) st = hr_kv_seq_reserve(p, &a, 8, &err);
    for (int32_t pos = 0; st == HR_OK && pos < 8; pos++)
        for (int32_t l = 0; l < 2; l++) ((float *)hr_kv_head(p, &a, l, pos, false, 0))[0] = (float)(100 * l + pos);
    if (st == HR_OK) hr_kv_seq_commit(p, &a, tokens, 8);
    int32_t reused = st == HR_OK ? hr_kv_seq_reuse_prefix(p, &b, tokens, 8) : -1;
    int32_t shared = b.blocks[1];
    int32_t needed = hr_kv_blocks_needed(p, &b, 1);
    if (st == HR_OK) st = hr_kv_seq_reserve(p, &b, 1, &err);
    const hr_kv_seq *seqs[2] = {&a, &b};
    hr_status check = st == HR_OK ? hr_kv_check(p, seqs, 2, &err) : st;
    float copied = ((float *)hr_kv_head(p, &b, 1, 6, false, 0))[0];
    bool distinct = b.blocks[1] != a.blocks[1] && b.blocks[0] == a.blocks[0];
    hr_kv_seq_free(p, &a);
    hr_kv_seq_free(p, &b);
    hr_kv_stats ks;
    hr_kv_pool_stats(p, &ks);
    hr_kv_pool_free(p);
    HR_CHECK_OK(st, &err);
    HR_CHECK_OK(check, &err);
    HR_CHECK_EQ_INT(reused, 7); /* the whole prompt was cached: the last token is recomputed */
    HR_CHECK_EQ_INT(shared, 1);
    HR_CHECK_EQ_INT(needed, 1);
    HR_CHECKF(distinct, "the written block was not copied");
    HR_CHECKF(copied == 106.0f, "copied block holds %g, want 106", (double)copied);
    HR_CHECK_EQ_INT(ks.blocks_used, 0);
    HR_CHECK_EQ_INT(ks.blocks_cached, 2);
}
