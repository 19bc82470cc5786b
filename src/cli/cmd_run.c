/* headroom run — generate text from a model, streaming it to stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "budget/budget.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "engine/generate.h"
#include "tokenizer/tokenize.h"

static const char RUN_HELP[] =
    "usage: headroom run -m MODEL [options]\n"
    "\n"
    "Generates text from MODEL (a GGUF file, or a llama2.c .bin checkpoint with its\n"
    "tokenizer). The prompt is printed first, then the continuation as it is generated;\n"
    "statistics go to stderr so stdout pipes cleanly.\n"
    "\n"
    "options:\n"
    "  -m, --model PATH        model file (.gguf or llama2.c .bin)\n"
    "      --tokenizer PATH    llama2.c tokenizer.bin (default: tokenizer.bin beside the model)\n"
    "  -p, --prompt TEXT       prompt (default: empty, the model starts a story)\n"
    "  -n, --n-predict N       new tokens to generate (default 256); clamped to the room\n"
    "                          the window leaves after the prompt\n"
    "  -c, --ctx-size N        window in tokens (default: the model's trained context)\n"
    "      --policy P          clamp (default): lower -n to fit; reject: refuse when it does not fit\n"
    "      --temp T            temperature (default 0.8; 0 = greedy)\n"
    "      --top-k N           keep the N most likely tokens (default 40; 0 = off)\n"
    "      --top-p P           nucleus sampling threshold (default 0.95; 1 = off)\n"
    "      --min-p P           drop tokens below P x the best probability (default 0.05; 0 = off)\n"
    "      --repeat-penalty F  penalty for recently seen tokens (default 1.0 = off)\n"
    "      --repeat-last-n N   how many recent tokens the penalty considers (default 64)\n"
    "  -s, --seed N            random seed (default: from the clock); same seed, same text\n"
    "  -h, --help              this help\n";

typedef struct {
    const hr_vocab *vocab;
    int32_t prev;
} printer;

static void print_token(printer *p, int32_t id) {
    char buf[512];
    size_t n = hr_tok_piece_after(p->vocab, p->prev, id, buf, sizeof buf);
    fwrite(buf, 1, n < sizeof buf ? n : sizeof buf, stdout);
    p->prev = id;
}

static bool on_token(void *ctx, int32_t id) {
    print_token(ctx, id);
    fflush(stdout);
    return true;
}

int hr_cmd_run(int argc, char **argv) {
    const char *model_path = NULL, *tokenizer_path = NULL, *prompt = "", *policy_name = "clamp";
    int64_t n_predict = 256, ctx_size = 0;
    hr_sampling sampling = hr_sampling_default();
    bool seeded = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = NULL;
        double d;
        int64_t n;
#define VALUE() (v = hr_arg_value("run", argc, argv, &i))
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(RUN_HELP, stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!VALUE()) return 2;
            model_path = v;
        } else if (!strcmp(a, "--tokenizer")) {
            if (!VALUE()) return 2;
            tokenizer_path = v;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (!VALUE()) return 2;
            prompt = v;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (!VALUE() || !hr_arg_int("run", a, v, 0, INT32_MAX, &n_predict)) return 2;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            if (!VALUE() || !hr_arg_int("run", a, v, 1, INT32_MAX, &ctx_size)) return 2;
        } else if (!strcmp(a, "--policy")) {
            if (!VALUE()) return 2;
            policy_name = v;
        } else if (!strcmp(a, "--temp")) {
            if (!VALUE() || !hr_arg_float("run", a, v, 0, 100, &d)) return 2;
            sampling.temperature = (float)d;
        } else if (!strcmp(a, "--top-k")) {
            if (!VALUE() || !hr_arg_int("run", a, v, 0, INT32_MAX, &n)) return 2;
            sampling.top_k = (int32_t)n;
        } else if (!strcmp(a, "--top-p")) {
            if (!VALUE() || !hr_arg_float("run", a, v, 0, 1, &d)) return 2;
            sampling.top_p = (float)d;
        } else if (!strcmp(a, "--min-p")) {
            if (!VALUE() || !hr_arg_float("run", a, v, 0, 1, &d)) return 2;
            sampling.min_p = (float)d;
        } else if (!strcmp(a, "--repeat-penalty")) {
            if (!VALUE() || !hr_arg_float("run", a, v, 0.01, 10, &d)) return 2;
            sampling.repeat_penalty = (float)d;
        } else if (!strcmp(a, "--repeat-last-n")) {
            if (!VALUE() || !hr_arg_int("run", a, v, 0, INT32_MAX, &n)) return 2;
            sampling.repeat_last_n = (int32_t)n;
        } else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
            if (!VALUE() || !hr_arg_u64("run", a, v, &sampling.seed)) return 2;
            seeded = true;
        } else {
            fprintf(stderr, "headroom run: unknown option '%s' (see headroom run --help)\n", a);
            return 2;
        }
#undef VALUE
    }
    if (!model_path) {
        fprintf(stderr, "headroom run: no model given; pass -m MODEL (see headroom run --help)\n");
        return 2;
    }
    if (!seeded) sampling.seed = (uint64_t)time(NULL);
    hr_error err = {0};
    hr_budget budget = {.max_tokens_requested = n_predict, .min_room = 1};
    if (hr_policy_from_name(policy_name, &budget.policy, &err) != HR_OK) {
        fprintf(stderr, "headroom run: --policy: %s\n", err.msg);
        return 2;
    }
    hr_model *model = NULL;
    hr_tokens tokens = {0};
    int rc = 1;
    if (hr_model_load(&model, model_path, tokenizer_path, &err) != HR_OK) goto fail;
    if (hr_tok_encode(model->vocab, prompt, strlen(prompt), HR_TOK_ADD_SPECIAL, &tokens, &err) != HR_OK) goto fail;

    budget.window = model->hp.n_ctx_train;
    if (ctx_size > 0 && ctx_size < budget.window) budget.window = ctx_size;
    budget.prompt_tokens = (int64_t)tokens.count;
    if (hr_budget_apply(&budget, &err) != HR_OK) goto fail;
    if (budget.max_tokens_granted < budget.max_tokens_requested)
        fprintf(stderr,
                "headroom run: -n %lld clamped to %lld: the window is %lld tokens and the prompt takes %lld\n",
                (long long)budget.max_tokens_requested, (long long)budget.max_tokens_granted,
                (long long)budget.window, (long long)budget.prompt_tokens);

    printer p = {.vocab = model->vocab, .prev = -1};
    for (size_t i = 0; i < tokens.count; i++) {
        if (i == 0 && tokens.ids[0] == model->vocab->bos_id) p.prev = tokens.ids[0];
        else print_token(&p, tokens.ids[i]);
    }
    fflush(stdout);
    hr_gen_stats stats;
    if (hr_generate(model, tokens.ids, tokens.count, (int32_t)budget.max_tokens_granted, &sampling, on_token, &p,
                    &stats, &err) != HR_OK)
        goto fail;
    fputc('\n', stdout);
    fflush(stdout);
    fprintf(stderr,
            "headroom run: prompt %lld tokens, generated %lld tokens, window %lld, room %lld; "
            "prefill %.1f tokens/s, decode %.1f tokens/s; stopped: %s\n",
            (long long)stats.prompt_tokens, (long long)stats.generated_tokens, (long long)budget.window,
            (long long)budget.room, stats.prefill_ms > 0 ? stats.prompt_tokens * 1e3 / stats.prefill_ms : 0.0,
            stats.decode_ms > 0 ? stats.generated_tokens * 1e3 / stats.decode_ms : 0.0,
            hr_stop_reason_name(stats.stop));
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "headroom run: %s\n", err.msg);
done:
    hr_tokens_free(&tokens);
    hr_model_free(model);
    return rc;
}
