/* bench_engine — aggregate decode throughput of the continuous-batching engine at
 * several concurrency levels, and KV utilisation (token slots holding live tokens over
 * slots allocated, averaged over every step).
 *
 * "decode tok/s" counts the tokens generated while every sequence of the level was
 * decoding (from the last first token to the first last token), so neither the other
 * sequences' prefill nor the tail of stragglers is counted as decoding; "overall tok/s"
 * is every token after the first over the time from the first token to the end.
 *
 * usage: bench_engine MODEL.gguf [-n TOKENS] [-p PROMPT_TOKENS] [-t THREADS] [-c 1,4,16] [-k KV_TYPE]
 *                     [-r ROUNDS]
 * (KV_TYPE f16 by default, as llama.cpp's bench uses; f32 and q8_0 also run).
 * Prints one row per concurrency with the ratio to the first level's figure (1 by
 * default), then where the decode steps' time went (the engine's stage timing): matmuls
 * with their rate, attention with the K/V bytes it read per second, and the rest. With
 * -r, the levels run in that many interleaved rounds (1, 4, 16, 1, 4, 16, ...) and a
 * summary gives each level's median and the median of the rounds' ratios: on a machine
 * whose speed drifts from minute to minute, a ratio within a round compares like with
 * like. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "engine/engine.h"
#include "formats/ggml_type.h"
#include "tools/stats.h"

typedef struct {
    int64_t generated;
    double *t_ms; /* [n_new] when each token arrived */
} counter;

static void on_event(void *ctx, uint64_t id, int32_t token, hr_finish finish, const char *error) {
    counter *c = ctx;
    (void)id;
    (void)token;
    (void)error;
    if (finish == HR_FINISH_NONE) c->t_ms[c->generated++] = hr_now_ms();
}

/* Tokens per second while all conc sequences were decoding; 0 when they never were. */
static double steady_rate(const counter *counts, int conc) {
    double from = 0, to = 1e300;
    for (int s = 0; s < conc; s++) {
        if (counts[s].generated < 2) return 0;
        if (counts[s].t_ms[0] > from) from = counts[s].t_ms[0];
        if (counts[s].t_ms[counts[s].generated - 1] < to) to = counts[s].t_ms[counts[s].generated - 1];
    }
    int64_t n = 0;
    for (int s = 0; s < conc; s++)
        for (int64_t i = 0; i < counts[s].generated; i++) n += counts[s].t_ms[i] > from && counts[s].t_ms[i] <= to;
    return to > from ? n * 1e3 / (to - from) : 0;
}

enum { MAX_LEVELS = 32, MAX_ROUNDS = 64 };

typedef struct {
    const hr_model *m;
    int n_new, n_prompt, threads;
    hr_type kv_type;
} bench_setup;

typedef struct {
    double decode_tps, overall_tps, utilisation;
    uint64_t preemptions;
    hr_forward_timing decode_timing;
} level_result;

/* One level: conc sequences with distinct prompts, run to the end. */
static hr_status run_level(const bench_setup *b, int conc, level_result *out, hr_error *err) {
    hr_engine_config cfg = {.parallel = conc, .ctx_size = b->n_prompt + b->n_new, .kv_type = b->kv_type,
                            .n_threads = b->threads, .no_prefix_cache = true, .timing = true};
    hr_engine *e = NULL;
    if (hr_engine_new(&e, b->m, &cfg, err) != HR_OK) return err->status;
    counter *counts = calloc((size_t)conc, sizeof *counts);
    double *times = malloc((size_t)conc * (size_t)b->n_new * sizeof *times);
    int32_t *prompt = malloc((size_t)b->n_prompt * sizeof *prompt);
    hr_status st = counts && times && prompt ? HR_OK : hr_fail(err, HR_ERR_NOMEM, "out of memory for %d sequences", conc);
    for (int s = 0; st == HR_OK && s < conc; s++) {
        counts[s].t_ms = times + (size_t)s * b->n_new;
        /* Distinct prompts, so nothing is shared between sequences. */
        for (int i = 0; i < b->n_prompt; i++) prompt[i] = 3 + (s * 131 + i * 7) % (b->m->hp.n_vocab - 3);
        hr_sampling greedy = hr_sampling_default();
        greedy.temperature = 0;
        hr_request r = {.prompt = prompt, .n_prompt = b->n_prompt, .max_new_tokens = b->n_new, .sampling = greedy,
                        .on_event = on_event, .ctx = &counts[s]};
        st = hr_engine_submit(e, &r, NULL, err);
    }
    hr_engine_wait_idle(e);
    if (st == HR_OK) {
        double end = hr_now_ms(), first = end;
        int64_t decoded = 0;
        for (int s = 0; s < conc; s++) {
            if (counts[s].generated > 0 && counts[s].t_ms[0] < first) first = counts[s].t_ms[0];
            decoded += counts[s].generated > 0 ? counts[s].generated - 1 : 0;
        }
        hr_engine_stats es;
        hr_engine_stats_get(e, &es);
        *out = (level_result){
            .decode_tps = steady_rate(counts, conc),
            .overall_tps = end > first ? decoded * 1e3 / (end - first) : 0,
            .utilisation = es.allocated_token_slots_sum
                               ? 100.0 * (double)es.live_token_slots_sum / (double)es.allocated_token_slots_sum
                               : 0,
            .preemptions = es.preemptions,
            .decode_timing = es.decode_timing,
        };
    }
    free(counts);
    free(times);
    free(prompt);
    hr_engine_free(e);
    return st;
}

/* The median of v[0..n) (sorts v). */
static double median(double *v, int n) {
    hr_sort_doubles(v, (size_t)n);
    return hr_percentile(v, (size_t)n, 50);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        fprintf(stderr, "usage: bench_engine MODEL.gguf [-n TOKENS] [-p PROMPT_TOKENS] [-t THREADS] [-c 1,4,16] "
                        "[-k f16|f32|q8_0] [-r ROUNDS]\n");
        return 2;
    }
    bench_setup b = {.n_new = 64, .n_prompt = 32, .kv_type = HR_TYPE_F16};
    int rounds = 1;
    char levels_arg[128] = "1,4,16";
    hr_error err = {0};
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-n")) b.n_new = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-p")) b.n_prompt = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-t")) b.threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-r")) rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-c")) snprintf(levels_arg, sizeof levels_arg, "%s", argv[i + 1]);
        else if (!strcmp(argv[i], "-k") && hr_type_from_name(argv[i + 1], &b.kv_type, &err) != HR_OK) {
            fprintf(stderr, "bench_engine: %s\n", err.msg);
            return 2;
        }
    }
    int levels[MAX_LEVELS], n_levels = 0;
    for (char *tok = strtok(levels_arg, ","); tok && n_levels < MAX_LEVELS; tok = strtok(NULL, ","))
        if (atoi(tok) > 0) levels[n_levels++] = atoi(tok);
    if (b.n_new <= 0 || b.n_prompt <= 0 || rounds < 1 || rounds > MAX_ROUNDS || n_levels == 0) {
        fprintf(stderr, "bench_engine: -n and -p must be positive, -r 1..%d, -c at least one level\n", MAX_ROUNDS);
        return 2;
    }
    hr_model *m = NULL;
    if (hr_model_load(&m, argv[1], NULL, &err) != HR_OK) {
        fprintf(stderr, "bench_engine: %s\n", err.msg);
        return 1;
    }
    b.m = m;
    printf("model %s: %d layers, %d embd; prompt %d tokens, %d new tokens per sequence; KV %s\n", argv[1],
           m->hp.n_layer, m->hp.n_embd, b.n_prompt, b.n_new, hr_type_name(b.kv_type));
    printf("%-12s %14s %10s %15s %10s %16s %12s\n", "concurrency", "decode tok/s", "vs 1", "overall tok/s", "vs 1",
           "KV utilisation", "preemptions");
    static level_result results[MAX_ROUNDS][MAX_LEVELS];
    hr_forward_timing decode_timing[MAX_LEVELS] = {0};
    for (int r = 0; r < rounds; r++) {
        if (rounds > 1) printf("round %d\n", r + 1);
        for (int l = 0; l < n_levels; l++) {
            level_result *x = &results[r][l];
            if (run_level(&b, levels[l], x, &err) != HR_OK) {
                fprintf(stderr, "bench_engine: %s\n", err.msg);
                hr_model_free(m);
                return 1;
            }
            const level_result *first = &results[r][0];
            printf("%-12d %14.1f %9.2fx %15.1f %9.2fx %15.1f%% %12llu\n", levels[l], x->decode_tps,
                   first->decode_tps > 0 ? x->decode_tps / first->decode_tps : 0, x->overall_tps,
                   first->overall_tps > 0 ? x->overall_tps / first->overall_tps : 0, x->utilisation,
                   (unsigned long long)x->preemptions);
            hr_forward_timing_add(&decode_timing[l], &x->decode_timing);
        }
    }
    if (rounds > 1) {
        printf("\nover %d rounds %8s %16s %10s\n", rounds, "median", "median ratio", "range");
        for (int l = 0; l < n_levels; l++) {
            double tps[MAX_ROUNDS], ratio[MAX_ROUNDS];
            for (int r = 0; r < rounds; r++) {
                tps[r] = results[r][l].decode_tps;
                ratio[r] = results[r][0].decode_tps > 0 ? tps[r] / results[r][0].decode_tps : 0;
            }
            double med_ratio = median(ratio, rounds);
            printf("%-14d %8.1f %15.2fx  %.2f-%.2fx\n", levels[l], median(tps, rounds), med_ratio, ratio[0],
                   ratio[rounds - 1]);
        }
    }
    printf("\n%-13s%s\n", "decode steps", HR_FORWARD_TIMING_HEADS);
    for (int l = 0; l < n_levels; l++) {
        char row[128];
        hr_forward_timing_row(&decode_timing[l], row, sizeof row);
        printf("%-13d%s\n", levels[l], row);
    }
    hr_model_free(m);
    return 0;
}
