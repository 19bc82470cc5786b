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
 * (KV_TYPE f16 by default, as llama.cpp's bench uses; f32 and q8_0 also run).
 * Prints one row per concurrency with the ratio to the single-sequence figure, then
 * where the decode steps' time went (the engine's stage timing): matmuls with their
 * rate, attention with the K/V bytes it read per second, and the rest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "engine/engine.h"
#include "formats/ggml_type.h"

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

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        fprintf(stderr, "usage: bench_engine MODEL.gguf [-n TOKENS] [-p PROMPT_TOKENS] [-t THREADS] [-c 1,4,16] [-k f16|f32|q8_0]\n");
        return 2;
    }
    int n_new = 64, n_prompt = 32, threads = 0;
    char levels_arg[128] = "1,4,16";
    hr_type kv_type = HR_TYPE_F16;
    hr_error err = {0};
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-n")) n_new = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-p")) n_prompt = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-t")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-c")) snprintf(levels_arg, sizeof levels_arg, "%s", argv[i + 1]);
        else if (!strcmp(argv[i], "-k") && hr_type_from_name(argv[i + 1], &kv_type, &err) != HR_OK) {
            fprintf(stderr, "bench_engine: %s\n", err.msg);
            return 2;
        }
    }
    if (n_new <= 0 || n_prompt <= 0) {
        fprintf(stderr, "bench_engine: -n and -p must be positive\n");
        return 2;
    }
    hr_model *m = NULL;
    if (hr_model_load(&m, argv[1], NULL, &err) != HR_OK) {
        fprintf(stderr, "bench_engine: %s\n", err.msg);
        return 1;
    }
    printf("model %s: %d layers, %d embd; prompt %d tokens, %d new tokens per sequence; KV %s\n", argv[1],
           m->hp.n_layer, m->hp.n_embd, n_prompt, n_new, hr_type_name(kv_type));
    printf("%-12s %14s %10s %15s %10s %16s %12s\n", "concurrency", "decode tok/s", "vs 1", "overall tok/s", "vs 1",
           "KV utilisation", "preemptions");
    double single = 0, single_overall = 0;
    enum { MAX_LEVELS = 32 };
    int levels[MAX_LEVELS], n_levels = 0;
    hr_forward_timing decode_timing[MAX_LEVELS];
    for (char *tok = strtok(levels_arg, ","); tok; tok = strtok(NULL, ",")) {
        int conc = atoi(tok);
        if (conc <= 0 || n_levels == MAX_LEVELS) continue;
        hr_engine_config cfg = {.parallel = conc, .ctx_size = n_prompt + n_new, .kv_type = kv_type,
                                .n_threads = threads, .no_prefix_cache = true, .timing = true};
        hr_engine *e;
        if (hr_engine_new(&e, m, &cfg, &err) != HR_OK) {
            fprintf(stderr, "bench_engine: %s\n", err.msg);
            hr_model_free(m);
            return 1;
        }
        counter *counts = calloc((size_t)conc, sizeof *counts);
        double *times = malloc((size_t)conc * (size_t)n_new * sizeof *times);
        int32_t *prompt = malloc((size_t)n_prompt * sizeof *prompt);
        if (!counts || !times || !prompt) {
            fprintf(stderr, "bench_engine: out of memory\n");
            return 1;
        }
        for (int s = 0; s < conc; s++) counts[s].t_ms = times + (size_t)s * n_new;
        for (int s = 0; s < conc; s++) {
            /* Distinct prompts, so nothing is shared between sequences. */
            for (int i = 0; i < n_prompt; i++) prompt[i] = 3 + (s * 131 + i * 7) % (m->hp.n_vocab - 3);
            hr_sampling greedy = hr_sampling_default();
            greedy.temperature = 0;
            hr_request r = {.prompt = prompt, .n_prompt = n_prompt, .max_new_tokens = n_new, .sampling = greedy,
                            .on_event = on_event, .ctx = &counts[s]};
            if (hr_engine_submit(e, &r, NULL, &err) != HR_OK) fprintf(stderr, "bench_engine: %s\n", err.msg);
        }
        hr_engine_wait_idle(e);
        double end = hr_now_ms(), first = end;
        int64_t decoded = 0;
        for (int s = 0; s < conc; s++) {
            if (counts[s].generated > 0 && counts[s].t_ms[0] < first) first = counts[s].t_ms[0];
            decoded += counts[s].generated > 0 ? counts[s].generated - 1 : 0;
        }
        hr_engine_stats st;
        hr_engine_stats_get(e, &st);
        double overall = end > first ? decoded * 1e3 / (end - first) : 0, tps = steady_rate(counts, conc);
        if (single == 0) single = tps;
        if (single_overall == 0) single_overall = overall;
        double util = st.allocated_token_slots_sum ? 100.0 * (double)st.live_token_slots_sum / (double)st.allocated_token_slots_sum : 0;
        printf("%-12d %14.1f %9.2fx %15.1f %9.2fx %15.1f%% %12llu\n", conc, tps, single > 0 ? tps / single : 0,
               overall, single_overall > 0 ? overall / single_overall : 0, util, (unsigned long long)st.preemptions);
        levels[n_levels] = conc;
        decode_timing[n_levels++] = st.decode_timing;
        free(counts);
        free(times);
        free(prompt);
        hr_engine_free(e);
    }
    printf("\n%-13s%s\n", "decode steps", HR_FORWARD_TIMING_HEADS);
    for (int i = 0; i < n_levels; i++) {
        char row[128];
        hr_forward_timing_row(&decode_timing[i], row, sizeof row);
        printf("%-13d%s\n", levels[i], row);
    }
    hr_model_free(m);
    return 0;
}
