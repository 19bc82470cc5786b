/* headroom bench-model — prefill and decode speed of a model on this machine, next to
 * the memory bandwidth that bounds decoding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "engine/engine.h"
#include "formats/ggml_type.h"
#include "kernels/bandwidth.h"
#include "kernels/cpu.h"
#include "tools/stats.h"

static const char BENCH_MODEL_HELP[] =
    "usage: headroom bench-model -m MODEL [-t N] [-p 512] [-n 128] [-r 3] [--stages]\n"
    "\n"
    "Measures prompt processing (a -p token prompt prefilled in one batch: pp) and text\n"
    "generation (-n tokens decoded one at a time: tg) in tokens/s, min/median/max over -r\n"
    "runs, the weight bytes read per decoded token, the bandwidth decoding achieves, and\n"
    "this machine's measured read bandwidth with the ratio between them. With --stages,\n"
    "also where a step's time goes, for pp and tg: the matmuls (with their GFLOP/s),\n"
    "attention (with the K/V bytes it read per second) and the rest.\n"
    "\n"
    "options:\n"
    "  -m, --model PATH   model file (.gguf or llama2.c .bin)\n"
    "      --tokenizer PATH  a llama2.c checkpoint's tokenizer.bin\n"
    "  -t, --threads N    threads (default: the cores available)\n"
    "  -p, --prompt N     prompt tokens (default 512)\n"
    "  -n, --gen N        generated tokens (default 128)\n"
    "  -r, --reps N       repetitions (default 3)\n"
    "      --stages       time each step's stages (a few clock reads per layer, which\n"
    "                     tiny models notice) and print the split\n"
    "  -h, --help         this help\n";

typedef struct {
    double t_first, t_last;
    int64_t tokens;
} timing;

static void on_event(void *ctx, uint64_t id, int32_t token, hr_finish finish, const char *error) {
    (void)id;
    (void)token;
    (void)error;
    timing *t = ctx;
    if (finish != HR_FINISH_NONE) return;
    t->t_last = hr_now_s();
    if (t->tokens++ == 0) t->t_first = t->t_last;
}

static void print_row(const char *label, double *v, int n) {
    hr_sort_doubles(v, (size_t)n);
    printf("%-8s %10.1f %10.1f %10.1f\n", label, v[0], v[n / 2], v[n - 1]);
}

int hr_cmd_bench_model(int argc, char **argv) {
    const char *model_path = NULL, *tokenizer_path = NULL;
    int64_t threads = 0, n_prompt = 512, n_gen = 128, reps = 3;
    bool stages = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(BENCH_MODEL_HELP, stdout);
            return 0;
        }
        int64_t *dst = !strcmp(a, "-t") || !strcmp(a, "--threads") ? &threads
                       : !strcmp(a, "-p") || !strcmp(a, "--prompt") ? &n_prompt
                       : !strcmp(a, "-n") || !strcmp(a, "--gen")    ? &n_gen
                       : !strcmp(a, "-r") || !strcmp(a, "--reps")   ? &reps
                                                                    : NULL;
        if (!strcmp(a, "--stages")) {
            stages = true;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(model_path = hr_arg_value("bench-model", argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--tokenizer")) {
            if (!(tokenizer_path = hr_arg_value("bench-model", argc, argv, &i))) return 2;
        } else if (dst) {
            if (!(v = hr_arg_value("bench-model", argc, argv, &i)) || !hr_arg_int("bench-model", a, v, dst == &threads ? 0 : 1, 1 << 20, dst))
                return 2;
        } else {
            fprintf(stderr, "headroom bench-model: unknown option '%s' (see headroom bench-model --help)\n", a);
            return 2;
        }
    }
    if (!model_path) {
        fprintf(stderr, "headroom bench-model: no model given; pass -m MODEL\n");
        return 2;
    }
    if (reps > 100) reps = 100;
    hr_error err = {0};
    hr_model *m = NULL;
    if (hr_model_load(&m, model_path, tokenizer_path, &err) != HR_OK) {
        fprintf(stderr, "headroom bench-model: %s\n", err.msg);
        return 1;
    }
    if (n_prompt + n_gen > m->hp.n_ctx_train) {
        fprintf(stderr, "headroom bench-model: -p %lld + -n %lld exceed the model's %d-token context\n",
                (long long)n_prompt, (long long)n_gen, m->hp.n_ctx_train);
        hr_model_free(m);
        return 2;
    }
    hr_engine_config cfg = {.parallel = 1, .ctx_size = (int32_t)(n_prompt + n_gen), .kv_type = HR_TYPE_F16,
                            .max_batch_tokens = (int32_t)n_prompt, .n_threads = (int32_t)threads,
                            .no_prefix_cache = true, .timing = stages};
    hr_engine *e = NULL;
    int32_t *prompt = malloc((size_t)n_prompt * sizeof *prompt);
    double pp[100], tg[100];
    int done = 0;
    if (!prompt || hr_engine_new(&e, m, &cfg, &err) != HR_OK) {
        fprintf(stderr, "headroom bench-model: %s\n", prompt ? err.msg : "out of memory");
        goto out;
    }
    for (int64_t i = 0; i < n_prompt; i++) prompt[i] = (int32_t)(3 + (i * 7919) % (m->hp.n_vocab - 3));
    for (; done < reps; done++) {
        timing t = {0};
        hr_sampling greedy = hr_sampling_default();
        greedy.temperature = 0;
        hr_request r = {.prompt = prompt, .n_prompt = (int32_t)n_prompt, .max_new_tokens = (int32_t)n_gen,
                        .sampling = greedy, .on_event = on_event, .ctx = &t};
        double t0 = hr_now_s();
        if (hr_engine_submit(e, &r, NULL, &err) != HR_OK) {
            fprintf(stderr, "headroom bench-model: %s\n", err.msg);
            break;
        }
        hr_engine_wait_idle(e);
        pp[done] = t.tokens > 0 ? (double)n_prompt / (t.t_first - t0) : 0;
        tg[done] = t.tokens > 1 ? (double)(t.tokens - 1) / (t.t_last - t.t_first) : 0;
        fprintf(stderr, "headroom bench-model: run %d/%lld: pp %.1f t/s, tg %.1f t/s (%lld tokens)\n", done + 1,
                (long long)reps, pp[done], tg[done], (long long)t.tokens);
    }
    if (done > 0) {
        uint64_t bytes = hr_model_weight_bytes(m);
        /* Decoding one token reads every weight but the embedding table (one row of it). */
        uint64_t per_token = bytes - m->tok_embd.row_bytes * (uint64_t)(m->tok_embd.ne[1] - 1) *
                                         (m->output.data != m->tok_embd.data ? 1 : 0);
        hr_pool *probe_pool = NULL;
        double bw = hr_pool_new(&probe_pool, (int)threads, &err) == HR_OK ? hr_measure_read_bandwidth_gbs(probe_pool) : 0;
        int probe_threads = hr_pool_threads(probe_pool);
        hr_pool_free(probe_pool);
        printf("model    %s (%.1f MiB of weights), SIMD %s, %d threads\n", model_path, bytes / 1048576.0,
               hr_simd_name(hr_simd_active()), probe_threads);
        printf("%-8s %10s %10s %10s   (tokens/s over %d runs)\n", "test", "min", "median", "max", done);
        char label[32];
        snprintf(label, sizeof label, "pp%lld", (long long)n_prompt);
        print_row(label, pp, done);
        snprintf(label, sizeof label, "tg%lld", (long long)n_gen);
        print_row(label, tg, done);
        double tg_median = tg[done / 2];
        double achieved = tg_median * (double)per_token / 1e9;
        printf("decode reads %.1f MiB per token: %.2f GB/s achieved; machine read bandwidth %.2f GB/s (%d-thread "
               "probe): %.0f%% of it; bound %.1f tokens/s\n",
               per_token / 1048576.0, achieved, bw, probe_threads, bw > 0 ? 100.0 * achieved / bw : 0,
               bw > 0 ? bw * 1e9 / (double)per_token : 0);
        if (stages) {
            hr_engine_stats st;
            hr_engine_stats_get(e, &st);
            char row[128];
            printf("stages   %s   (per step, all runs)\n", HR_FORWARD_TIMING_HEADS);
            hr_forward_timing_row(&st.prefill_timing, row, sizeof row);
            snprintf(label, sizeof label, "pp%lld", (long long)n_prompt);
            printf("%-8s %s\n", label, row);
            hr_forward_timing_row(&st.decode_timing, row, sizeof row);
            snprintf(label, sizeof label, "tg%lld", (long long)n_gen);
            printf("%-8s %s\n", label, row);
        }
    }
out:
    hr_engine_free(e);
    free(prompt);
    hr_model_free(m);
    return done > 0 ? 0 : 1;
}
