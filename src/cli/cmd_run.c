/* headroom run — generate text from a model: one prompt streamed to stdout, or a file of
 * prompts run together on the continuous-batching engine, one JSON line each. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/file.h"
#include "base/json.h"
#include "base/utf8.h"
#include "budget/fit.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "engine/engine.h"
#include "formats/ggml_type.h"
#include "tokenizer/tokenize.h"

static const char RUN_HELP[] =
    "usage: headroom run -m MODEL [-p PROMPT | --prompts FILE] [options]\n"
    "\n"
    "Generates text from MODEL (a GGUF file, or a llama2.c .bin checkpoint with its\n"
    "tokenizer). With -p, the prompt is printed first, then the continuation as it is\n"
    "generated. With --prompts, every line of FILE is a prompt; they run together and\n"
    "stdout gets one JSON object per prompt, in input order:\n"
    "  {\"index\": i, \"prompt\": ..., \"text\": continuation, \"finish_reason\": \"stop\"|\"length\"}\n"
    "Statistics go to stderr so stdout pipes cleanly.\n"
    "\n"
    "options:\n"
    "  -m, --model PATH          model file (.gguf or llama2.c .bin)\n"
    "      --tokenizer PATH      llama2.c tokenizer.bin (default: tokenizer.bin beside the model)\n"
    "  -p, --prompt TEXT         prompt (default: empty, the model starts a story)\n"
    "      --prompts FILE        one prompt per line, run as a batch\n"
    "  -n, --n-predict N         new tokens per prompt (default 256); clamped to the room the\n"
    "                            window leaves after the prompt\n"
    "  -c, --ctx-size N          window in tokens (default: the model's trained context)\n"
    "      --policy P            clamp (default): lower -n to fit; reject: refuse what does not fit;\n"
    "                            truncate/summarize: cut the prompt from the left, then clamp\n"
    "      --parallel N          sequences generated at once (default 1)\n"
    "      --kv-mem BYTES        KV pool size, e.g. 64M (default: ctx-size x parallel tokens)\n"
    "      --kv-type T           KV element type: f16 (default), f32, q8_0\n"
    "      --kv-block N          tokens per KV block (default 16)\n"
    "      --max-batch-tokens N  tokens per forward step; long prompts are chunked (default 512)\n"
    "  -t, --threads N           threads (default: the cores available)\n"
    "      --temp T              temperature (default 0.8; 0 = greedy)\n"
    "      --top-k N             keep the N most likely tokens (default 40; 0 = off)\n"
    "      --top-p P             nucleus sampling threshold (default 0.95; 1 = off)\n"
    "      --min-p P             drop tokens below P x the best probability (default 0.05; 0 = off)\n"
    "      --repeat-penalty F    penalty for recently seen tokens (default 1.0 = off)\n"
    "      --repeat-last-n N     how many recent tokens the penalty considers (default 64)\n"
    "  -s, --seed N              random seed (default: from the clock); same seed, same text\n"
    "  -h, --help                this help\n";

/* What one prompt produced, gathered on the engine's thread. */
typedef struct {
    const hr_vocab *vocab;
    int32_t prev;    /* last token, for the space after BOS */
    bool stream;     /* print pieces as they come (single prompt) */
    char *text;      /* the continuation (--prompts) */
    size_t len, cap;
    hr_finish finish;
    char error[512];
    int64_t prompt_tokens, generated;
    double t_first_ms, t_last_ms;
} run_output;

static void emit_piece(run_output *o, int32_t id) {
    char piece[512];
    size_t n = hr_tok_piece_after(o->vocab, o->prev, id, piece, sizeof piece);
    if (n > sizeof piece) n = sizeof piece;
    o->prev = id;
    if (o->stream) {
        fwrite(piece, 1, n, stdout);
        fflush(stdout);
        return;
    }
    if (o->len + n + 1 > o->cap) {
        size_t cap = (o->len + n + 1) * 2;
        char *bigger = realloc(o->text, cap);
        if (!bigger) return; /* the text is cut short; the JSON line still goes out */
        o->text = bigger;
        o->cap = cap;
    }
    memcpy(o->text + o->len, piece, n);
    o->len += n;
}

static void on_event(void *ctx, uint64_t id, int32_t token, hr_finish finish, const char *error) {
    run_output *o = ctx;
    (void)id;
    if (finish != HR_FINISH_NONE) {
        o->finish = finish;
        if (error) snprintf(o->error, sizeof o->error, "%s", error);
        return;
    }
    o->t_last_ms = hr_now_ms();
    if (o->generated++ == 0) o->t_first_ms = o->t_last_ms;
    emit_piece(o, token);
}

typedef struct {
    const char *model_path, *tokenizer_path, *prompt, *prompts_path, *policy_name, *kv_type_name;
    int64_t n_predict;
    hr_engine_config engine;
    hr_sampling sampling;
    bool seeded;
} run_options;

/* Parses argv into o; returns -1 to go on, or the exit status. */
static int parse_options(int argc, char **argv, run_options *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        double d;
        int64_t n;
        uint64_t u;
#define VALUE() (v = hr_arg_value("run", argc, argv, &i))
#define IS(s1, s2) (!strcmp(a, s1) || !strcmp(a, s2))
        if (IS("-h", "--help")) {
            fputs(RUN_HELP, stdout);
            return 0;
        }
        const char **text = IS("-m", "--model") ? &o->model_path : !strcmp(a, "--tokenizer") ? &o->tokenizer_path
                            : IS("-p", "--prompt") ? &o->prompt : !strcmp(a, "--prompts") ? &o->prompts_path
                            : !strcmp(a, "--policy") ? &o->policy_name : !strcmp(a, "--kv-type") ? &o->kv_type_name
                                                                                                         : NULL;
        if (text) {
            if (!VALUE()) return 2;
            *text = v;
        } else if (IS("-n", "--n-predict")) {
            if (!VALUE() || !hr_arg_int("run", a, v, 0, INT32_MAX, &o->n_predict)) return 2;
        } else if (IS("-c", "--ctx-size")) {
            if (!VALUE() || !hr_arg_int("run", a, v, 1, INT32_MAX, &n)) return 2;
            o->engine.ctx_size = (int32_t)n;
        } else if (!strcmp(a, "--parallel")) {
            if (!VALUE() || !hr_arg_int("run", a, v, 1, 4096, &n)) return 2;
            o->engine.parallel = (int32_t)n;
        } else if (!strcmp(a, "--kv-mem")) {
            if (!VALUE() || !hr_arg_size("run", a, v, &u)) return 2;
            o->engine.kv_mem_bytes = u;
        } else if (!strcmp(a, "--kv-block")) {
            if (!VALUE() || !hr_arg_int("run", a, v, 1, 4096, &n)) return 2;
            o->engine.block_tokens = (int32_t)n;
        } else if (!strcmp(a, "--max-batch-tokens")) {
            if (!VALUE() || !hr_arg_int("run", a, v, 1, 1 << 20, &n)) return 2;
            o->engine.max_batch_tokens = (int32_t)n;
        } else if (IS("-t", "--threads")) {
            if (!VALUE() || !hr_arg_int("run", a, v, 1, 1024, &n)) return 2;
            o->engine.n_threads = (int32_t)n;
        } else if (!strcmp(a, "--temp")) {
            if (!VALUE() || !hr_arg_float("run", a, v, 0, 100, &d)) return 2;
            o->sampling.temperature = (float)d;
        } else if (!strcmp(a, "--top-k")) {
            if (!VALUE() || !hr_arg_int("run", a, v, 0, INT32_MAX, &n)) return 2;
            o->sampling.top_k = (int32_t)n;
        } else if (!strcmp(a, "--top-p")) {
            if (!VALUE() || !hr_arg_float("run", a, v, 0, 1, &d)) return 2;
            o->sampling.top_p = (float)d;
        } else if (!strcmp(a, "--min-p")) {
            if (!VALUE() || !hr_arg_float("run", a, v, 0, 1, &d)) return 2;
            o->sampling.min_p = (float)d;
        } else if (!strcmp(a, "--repeat-penalty")) {
            if (!VALUE() || !hr_arg_float("run", a, v, 0.01, 10, &d)) return 2;
            o->sampling.repeat_penalty = (float)d;
        } else if (!strcmp(a, "--repeat-last-n")) {
            if (!VALUE() || !hr_arg_int("run", a, v, 0, INT32_MAX, &n)) return 2;
            o->sampling.repeat_last_n = (int32_t)n;
        } else if (IS("-s", "--seed")) {
            if (!VALUE() || !hr_arg_u64("run", a, v, &o->sampling.seed)) return 2;
            o->seeded = true;
        } else {
            fprintf(stderr, "headroom run: unknown option '%s' (see headroom run --help)\n", a);
            return 2;
        }
#undef IS
#undef VALUE
    }
    if (!o->model_path) {
        fprintf(stderr, "headroom run: no model given; pass -m MODEL (see headroom run --help)\n");
        return 2;
    }
    if (o->prompts_path && strcmp(o->prompt, "") != 0) {
        fprintf(stderr, "headroom run: give either -p or --prompts, not both\n");
        return 2;
    }
    return -1;
}

/* Counts the prompt, fits it to the window by the policy and submits; on failure err
 * says why. */
static hr_status submit_prompt(hr_engine *e, const hr_model *m, const run_options *o, const char *prompt,
                               hr_budget *budget, run_output *out, hr_tokens *sent, hr_error *err) {
    hr_engine_stats es;
    hr_engine_stats_get(e, &es);
    hr_fit_request fr = {.vocab = m->vocab, .encode_flags = HR_TOK_ADD_SPECIAL, .policy = budget->policy,
                         .window = es.window, .min_room = 1, .max_tokens = o->n_predict};
    hr_fit_result fit;
    hr_status st = hr_fit_text(&fr, prompt, strlen(prompt), &fit, err);
    *budget = fit.budget;
    out->prompt_tokens = (int64_t)fit.prompt.count;
    out->prev = fit.prompt.count ? fit.prompt.ids[fit.prompt.count - 1] : -1;
    if (st == HR_OK && budget->max_tokens_granted > 0) {
        hr_request r = {.prompt = fit.prompt.ids, .n_prompt = (int32_t)fit.prompt.count,
                        .max_new_tokens = (int32_t)budget->max_tokens_granted, .sampling = o->sampling,
                        .on_event = on_event, .ctx = out};
        st = hr_engine_submit(e, &r, NULL, err);
    } else if (st == HR_OK) {
        out->finish = HR_FINISH_LENGTH;
    }
    if (st == HR_OK && fit.message_cut)
        fprintf(stderr, "headroom run: the prompt was cut from the left to %zu tokens to fit the window\n",
                fit.prompt.count);
    if (sent) {
        *sent = fit.prompt; /* the caller echoes what the model actually sees */
        fit.prompt = (hr_tokens){0};
    }
    hr_fit_result_free(&fit);
    return st;
}

/* Echoes the prompt the way llama2.c prints it: the pieces after BOS. */
static void print_prompt_pieces(const hr_model *m, const hr_tokens *toks) {
    run_output echo = {.vocab = m->vocab, .prev = -1, .stream = true};
    for (size_t i = 0; i < toks->count; i++) {
        if (i == 0 && toks->ids[0] == m->vocab->bos_id) echo.prev = toks->ids[0];
        else emit_piece(&echo, toks->ids[i]);
    }
}

static int run_single(hr_engine *e, const hr_model *m, const run_options *o) {
    hr_error err = {0};
    hr_budget budget = {.min_room = 1};
    hr_policy_from_name(o->policy_name, &budget.policy, &err);
    run_output out = {.vocab = m->vocab, .stream = true};
    hr_tokens sent = {0};
    if (submit_prompt(e, m, o, o->prompt, &budget, &out, &sent, &err) != HR_OK) {
        fprintf(stderr, "headroom run: %s\n", err.msg);
        hr_tokens_free(&sent);
        return 1;
    }
    if (budget.max_tokens_granted < budget.max_tokens_requested)
        fprintf(stderr, "headroom run: -n %lld clamped to %lld: the window is %lld tokens and the prompt takes %lld\n",
                (long long)budget.max_tokens_requested, (long long)budget.max_tokens_granted, (long long)budget.window,
                (long long)budget.prompt_tokens);
    print_prompt_pieces(m, &sent);
    hr_tokens_free(&sent);
    double t_start = hr_now_ms();
    hr_engine_wait_idle(e);
    fputc('\n', stdout);
    fflush(stdout);
    double prefill_ms = out.generated ? out.t_first_ms - t_start : 0, decode_ms = out.t_last_ms - out.t_first_ms;
    fprintf(stderr,
            "headroom run: prompt %lld tokens, generated %lld tokens, window %lld, room %lld; "
            "prefill %.1f tokens/s, decode %.1f tokens/s; stopped: %s\n",
            (long long)out.prompt_tokens, (long long)out.generated, (long long)budget.window, (long long)budget.room,
            prefill_ms > 0 ? out.prompt_tokens * 1e3 / prefill_ms : 0.0,
            decode_ms > 0 ? (out.generated - 1) * 1e3 / decode_ms : 0.0, hr_finish_name(out.finish));
    return out.finish == HR_FINISH_ERROR ? 1 : 0;
}

/* Splits the file into lines (a final newline ends the last one, not a new prompt). */
static size_t split_lines(char *buf, size_t len, char ***lines) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) n += buf[i] == '\n';
    if (len > 0 && buf[len - 1] != '\n') n++;
    *lines = calloc(n ? n : 1, sizeof **lines);
    if (!*lines) return 0;
    size_t k = 0;
    for (char *p = buf; k < n; k++) {
        (*lines)[k] = p;
        char *nl = strchr(p, '\n');
        if (!nl) break;
        *nl = '\0';
        if (nl > p && nl[-1] == '\r') nl[-1] = '\0';
        p = nl + 1;
    }
    return n;
}

static int run_batch(hr_engine *e, const hr_model *m, const run_options *o) {
    hr_error err = {0};
    char *buf;
    size_t len;
    if (hr_file_read_all(o->prompts_path, &buf, &len, &err) != HR_OK) {
        fprintf(stderr, "headroom run: --prompts: %s\n", err.msg);
        return 1;
    }
    const char *nul = memchr(buf, '\0', len);
    if (nul) {
        fprintf(stderr, "headroom run: --prompts: '%s' has a NUL byte at offset %zu; prompts are text, one per line\n",
                o->prompts_path, (size_t)(nul - buf));
        free(buf);
        return 1;
    }
    char **lines;
    size_t n = split_lines(buf, len, &lines);
    run_output *outs = calloc(n ? n : 1, sizeof *outs);
    hr_policy policy;
    hr_policy_from_name(o->policy_name, &policy, &err);
    double t0 = hr_now_ms();
    for (size_t i = 0; outs && i < n; i++) {
        outs[i].vocab = m->vocab;
        hr_budget budget = {.min_room = 1, .policy = policy};
        if (submit_prompt(e, m, o, lines[i], &budget, &outs[i], NULL, &err) != HR_OK) {
            outs[i].finish = HR_FINISH_ERROR;
            snprintf(outs[i].error, sizeof outs[i].error, "%s", err.msg);
        }
    }
    hr_engine_wait_idle(e);
    double wall_ms = hr_now_ms() - t0;
    int64_t generated = 0;
    int failed = 0;
    for (size_t i = 0; outs && i < n; i++) {
        json_t *obj = json_object();
        json_object_set_new(obj, "index", json_integer((json_int_t)i));
        json_object_set_new(obj, "prompt", hr_json_text(lines[i], strlen(lines[i])));
        json_object_set_new(obj, "text", hr_json_text(outs[i].text ? outs[i].text : "", outs[i].len));
        hr_finish f = outs[i].finish;
        json_object_set_new(obj, "finish_reason", json_string(f == HR_FINISH_STOP ? "stop" : f == HR_FINISH_LENGTH ? "length" : "error"));
        json_object_set_new(obj, "prompt_tokens", json_integer(outs[i].prompt_tokens));
        json_object_set_new(obj, "completion_tokens", json_integer(outs[i].generated));
        if (outs[i].error[0]) json_object_set_new(obj, "error", json_string(outs[i].error));
        char *line = json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (line) puts(line);
        free(line);
        json_decref(obj);
        generated += outs[i].generated;
        failed += f == HR_FINISH_ERROR;
        free(outs[i].text);
    }
    hr_engine_stats st;
    hr_engine_stats_get(e, &st);
    fprintf(stderr,
            "headroom run: %zu prompts (%d refused), %lld tokens generated in %.0f ms (%.1f tokens/s); "
            "window %d, pool %d blocks x %d tokens, peak %d blocks; %llu preemptions, %llu prefix-cache hit tokens\n",
            n, failed, (long long)generated, wall_ms, wall_ms > 0 ? generated * 1e3 / wall_ms : 0.0, st.window,
            st.blocks_total, st.block_tokens, st.blocks_used_peak, (unsigned long long)st.preemptions,
            (unsigned long long)st.prefix_hit_tokens);
    free(outs);
    free(lines);
    free(buf);
    return failed ? 1 : 0;
}

int hr_cmd_run(int argc, char **argv) {
    run_options o = {.prompt = "", .policy_name = "clamp", .kv_type_name = HR_CLI_KV_TYPE, .n_predict = 256,
                     .sampling = hr_sampling_default()};
    int rc = parse_options(argc, argv, &o);
    if (rc >= 0) return rc;
    if (!o.seeded) o.sampling.seed = (uint64_t)time(NULL);
    hr_error err = {0};
    hr_policy policy;
    hr_type kv_type;
    if (hr_policy_from_name(o.policy_name, &policy, &err) != HR_OK ||
        hr_type_from_name(o.kv_type_name, &kv_type, &err) != HR_OK || hr_sampling_validate(&o.sampling, &err) != HR_OK) {
        fprintf(stderr, "headroom run: %s\n", err.msg);
        return 2;
    }
    o.engine.kv_type = kv_type;
    hr_model *model = NULL;
    hr_engine *engine = NULL;
    if (hr_model_load(&model, o.model_path, o.tokenizer_path, &err) != HR_OK ||
        hr_engine_new(&engine, model, &o.engine, &err) != HR_OK) {
        fprintf(stderr, "headroom run: %s\n", err.msg);
        hr_model_free(model);
        return 1;
    }
    rc = o.prompts_path ? run_batch(engine, model, &o) : run_single(engine, model, &o);
    hr_engine_free(engine);
    hr_model_free(model);
    return rc;
}
