/* headroom plan — capacity planning without loading weights: the seed's capacity table
 * computed exactly for one model, from GGUF metadata, a Hugging Face config.json or a
 * built-in preset. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/opts.h"
#include "formats/ggml_type.h"
#include "formats/gguf.h"
#include "tools/capacity.h"
#include "tools/hf_config.h"

static const char PLAN_HELP[] =
    "usage: headroom plan (MODEL.gguf | config.json | --preset NAME) [options]\n"
    "\n"
    "Capacity planning without loading weights. Reads the shape of a model from a GGUF\n"
    "file's metadata and tensor infos, a Hugging Face config.json (max_position_embeddings,\n"
    "rope_scaling, sliding_window, num_key_value_heads, ...) or a built-in preset, and prints\n"
    "KV bytes per token (2 x layers x KV heads x head size x element size), the weights, and\n"
    "the capacity table: context target -> KV memory per sequence -> max new tokens left\n"
    "for the prompt -> sequences that fit in memory beside the weights.\n"
    "\n"
    "options:\n"
    "      --preset NAME        a built-in shape (see --list-presets)\n"
    "      --list-presets       list the presets and exit\n"
    "      --ctx N              one context target (default: powers of two up to the model's\n"
    "                           effective context)\n"
    "      --parallel N         sequences at full length at once, for the total (default 1)\n"
    "      --mem BYTES          memory to plan for, e.g. 24G (default: this machine's MemAvailable)\n"
    "      --kv-type T          KV element type: f16 (default, as GPU runtimes use), f32, q8_0\n"
    "      --weight-type T      weight type of the estimate for config.json and presets:\n"
    "                           f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k (default: the\n"
    "                           config's torch_dtype, else bf16); a GGUF's weights are exact\n"
    "      --prompt-tokens N    prompt size for the max-new-tokens column (default: 80% of\n"
    "                           each context target)\n"
    "      --json               one JSON object on stdout instead of the table\n"
    "  -h, --help               this help\n";

typedef struct {
    const char *input, *preset, *kv_type_name, *weight_type_name;
    int64_t ctx, parallel, prompt_tokens; /* prompt_tokens < 0: 80% of each row */
    uint64_t mem;
    bool mem_given, json, list;
} plan_options;

static int parse_options(int argc, char **argv, plan_options *o) {
    const hr_opt opts[] = {
        {"--preset", NULL, HR_OPT_TEXT, &o->preset, 0, 0, NULL},
        {"--kv-type", NULL, HR_OPT_TEXT, &o->kv_type_name, 0, 0, NULL},
        {"--weight-type", NULL, HR_OPT_TEXT, &o->weight_type_name, 0, 0, NULL},
        {"--ctx", NULL, HR_OPT_INT, &o->ctx, 1, 1ll << 32, NULL},
        {"--parallel", NULL, HR_OPT_INT, &o->parallel, 1, 1 << 20, NULL},
        {"--prompt-tokens", NULL, HR_OPT_INT, &o->prompt_tokens, 0, 1ll << 32, NULL},
        {"--mem", NULL, HR_OPT_SIZE, &o->mem, 0, 0, &o->mem_given},
        {"--json", NULL, HR_OPT_FLAG, &o->json, 0, 0, NULL},
        {"--list-presets", NULL, HR_OPT_FLAG, &o->list, 0, 0, NULL},
    };
    int rc = hr_opts_parse("plan", PLAN_HELP, opts, sizeof opts / sizeof opts[0], argc, argv, &o->input, 1);
    if (rc >= 0) return rc;
    if (!o->list && !!o->input == !!o->preset) {
        fprintf(stderr,
                "headroom plan: give one of MODEL.gguf, config.json or --preset NAME (see headroom plan --help)\n");
        return 2;
    }
    return -1;
}

/* Reads the shape from a GGUF (metadata only) or a config.json, told apart by content. */
static hr_status load_shape(const char *path, int weight_type, hr_model_shape *s, hr_error *err) {
    char head[8] = "";
    FILE *f = fopen(path, "rb");
    if (!f) return hr_fail(err, HR_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    size_t n = fread(head, 1, sizeof head - 1, f);
    fclose(f);
    if (n >= 4 && !memcmp(head, "GGUF", 4)) {
        hr_gguf g;
        if (hr_gguf_open(&g, path, err) != HR_OK) return err->status;
        hr_status st = hr_shape_from_gguf(&g, path, s, err);
        hr_gguf_close(&g);
        return st == HR_OK ? HR_OK : hr_fail_wrap(err, "%s", path);
    }
    size_t lead = strspn(head, " \t\r\n");
    if (lead < n && head[lead] == '{') return hr_hf_config_load(path, weight_type, s, err);
    return hr_fail(err, HR_ERR_FORMAT,
                   "'%s' is neither a GGUF file nor a config.json (a llama2.c .bin: use headroom doctor)", path);
}

static void fmt_bytes(uint64_t b, char *buf) { hr_format_bytes(b, buf, 32); }

static int64_t row_prompt(const plan_options *o, int64_t ctx) {
    return o->prompt_tokens >= 0 ? o->prompt_tokens : ctx * 4 / 5;
}

static const uint32_t KV_TYPES[] = {HR_TYPE_F32, HR_TYPE_F16, HR_TYPE_Q8_0};

static void print_table(const hr_model_shape *s, const plan_options *o, uint32_t kv, const int64_t *targets,
                        size_t n_targets, const char *mem_source) {
    char line[256], rope[128], b1[32], b2[32];
    hr_shape_describe(s, line, sizeof line);
    hr_rope_describe(s, rope, sizeof rope);
    printf("headroom plan: %s (%s)\n", s->name, s->source);
    printf("  shape         %s\n", line);
    printf("  context       %lld trained (%s); RoPE scaling %s\n", (long long)s->ctx_train, s->ctx_key, rope);
    if (s->sliding_window)
        printf("  sliding       window of %lld tokens: attention reaches back that far, and a cache that drops older\n"
               "                positions needs at most %lld tokens of KV per sequence\n",
               (long long)s->sliding_window, (long long)s->sliding_window);
    else printf("  sliding       none: every position stays in the cache\n");
    char formula[160], all[320], params[32];
    hr_kv_formula(s, kv, formula, sizeof formula);
    hr_kv_by_type(s, all, sizeof all);
    hr_format_count(s->n_params, params, sizeof params);
    fmt_bytes(s->weight_bytes, b1);
    printf("  weights       %s (%s parameters%s%s)\n", b1, params,
           s->weights_exact ? ", from the tensor infos" : " at ", s->weights_exact ? "" : hr_type_name(s->weight_type));
    printf("  KV per token  %s\n                (%s)\n", formula, all);
    fmt_bytes(o->mem, b1);
    printf("  memory        %s (%s)\n\n", b1, mem_source);
    char prompt_col[48];
    if (o->prompt_tokens >= 0)
        snprintf(prompt_col, sizeof prompt_col, "max new (prompt %lld)", (long long)o->prompt_tokens);
    else snprintf(prompt_col, sizeof prompt_col, "max new (prompt 80%%)");
    printf("  %10s  %15s  %22s  %14s  weights + KV x %lld\n", "context", "KV / sequence", prompt_col, "sequences fit",
           (long long)o->parallel);
    for (size_t i = 0; i < n_targets; i++) {
        hr_capacity_row r;
        hr_capacity_row_compute(s, kv, targets[i], row_prompt(o, targets[i]), o->parallel, o->mem, &r);
        fmt_bytes(r.kv_bytes_per_seq, b1);
        fmt_bytes(r.total_bytes, b2);
        char room[32];
        if (r.max_new_tokens > 0) snprintf(room, sizeof room, "%lld", (long long)r.max_new_tokens);
        else snprintf(room, sizeof room, "none");
        printf("  %10lld  %15s  %22s  %14lld  %s, %s\n", (long long)r.ctx, b1, room, (long long)r.seqs_fit, b2,
               r.fits ? "fits" : "does not fit");
    }
    if (s->sliding_window && s->sliding_window < targets[n_targets - 1]) {
        fmt_bytes(hr_shape_kv_bytes_per_token(s, kv) * (uint64_t)s->sliding_window, b1);
        printf("\n  with a rolling cache of the %lld-token sliding window, a sequence of any length needs %s of KV\n",
               (long long)s->sliding_window, b1);
    }
}

/* A byte count as JSON: saturated counts (UINT64_MAX) show as the largest integer JSON
 * readers take, not as -1. */
static json_t *json_bytes(uint64_t bytes) { return json_integer(bytes > INT64_MAX ? INT64_MAX : (json_int_t)bytes); }

static json_t *shape_json(const hr_model_shape *s) {
    json_t *rope = s->rope.type[0] ? json_pack("{s:s, s:f, s:I}", "type", s->rope.type, "factor", s->rope.factor,
                                               "original_context", (json_int_t)s->rope.original_ctx)
                                   : json_null();
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:o, s:o, s:I, s:b}", "name",
                     s->name, "source", s->source, "arch", s->arch, "layers", (json_int_t)s->n_layer, "hidden",
                     (json_int_t)s->n_embd, "feed_forward", (json_int_t)s->n_ff, "heads", (json_int_t)s->n_head,
                     "kv_heads", (json_int_t)s->n_head_kv, "head_dim", (json_int_t)s->head_dim, "vocab",
                     (json_int_t)s->n_vocab, "context_train", (json_int_t)s->ctx_train, "context_key", s->ctx_key,
                     "rope_scaling", rope, "sliding_window",
                     s->sliding_window ? json_integer(s->sliding_window) : json_null(), "effective_context",
                     (json_int_t)hr_shape_effective_ctx(s), "tied_embeddings", s->tied_embeddings);
}

static int print_json(const hr_model_shape *s, const plan_options *o, uint32_t kv, const int64_t *targets,
                      size_t n_targets, const char *mem_source) {
    json_t *per_token = json_object(), *rows = json_array();
    for (size_t i = 0; i < 3; i++) {
        uint64_t per = hr_shape_kv_bytes_per_token(s, KV_TYPES[i]);
        json_object_set_new(per_token, hr_type_name(KV_TYPES[i]), per ? json_integer((json_int_t)per) : json_null());
    }
    for (size_t i = 0; i < n_targets; i++) {
        hr_capacity_row r;
        int64_t prompt = row_prompt(o, targets[i]);
        hr_capacity_row_compute(s, kv, targets[i], prompt, o->parallel, o->mem, &r);
        json_array_append_new(rows, json_pack("{s:I, s:o, s:I, s:I, s:I, s:o, s:b}", "context", (json_int_t)r.ctx,
                                              "kv_bytes_per_sequence", json_bytes(r.kv_bytes_per_seq), "prompt_tokens",
                                              (json_int_t)prompt, "max_new_tokens",
                                              (json_int_t)(r.max_new_tokens > 0 ? r.max_new_tokens : 0),
                                              "sequences_fit", (json_int_t)r.seqs_fit, "total_bytes",
                                              json_bytes(r.total_bytes), "fits", r.fits));
    }
    json_t *root =
        json_pack("{s:o, s:s, s:I, s:o, s:I, s:I, s:b, s:s, s:I, s:s, s:I, s:o}", "model", shape_json(s), "kv_type",
                  hr_type_name(kv), "kv_bytes_per_token", (json_int_t)hr_shape_kv_bytes_per_token(s, kv),
                  "kv_bytes_per_token_by_type", per_token, "weights_bytes", (json_int_t)s->weight_bytes, "parameters",
                  (json_int_t)s->n_params, "weights_exact", s->weights_exact, "weight_type",
                  s->weights_exact ? "file" : hr_type_name(s->weight_type), "mem_bytes", (json_int_t)o->mem,
                  "mem_source", mem_source, "parallel", (json_int_t)o->parallel, "rows", rows);
    char *text = root ? json_dumps(root, JSON_INDENT(2)) : NULL;
    json_decref(root);
    if (!text) {
        fprintf(stderr, "headroom plan: out of memory writing JSON\n");
        return 1;
    }
    puts(text);
    free(text);
    return 0;
}

static void list_presets(void) {
    for (size_t i = 0; i < hr_preset_count(); i++) printf("  %-16s %s\n", hr_preset_name(i), hr_preset_about(i));
}

int hr_cmd_plan(int argc, char **argv) {
    plan_options o = {.parallel = 1, .prompt_tokens = -1, .kv_type_name = HR_CLI_KV_TYPE};
    int rc = parse_options(argc, argv, &o);
    if (rc >= 0) return rc;
    if (o.list) {
        list_presets();
        return 0;
    }
    hr_error err = {0};
    hr_type kv, wt = HR_TYPE_BF16;
    if (hr_type_from_name(o.kv_type_name, &kv, &err) != HR_OK ||
        (o.weight_type_name && hr_type_from_name(o.weight_type_name, &wt, &err) != HR_OK)) {
        fprintf(stderr, "headroom plan: %s\n", err.msg);
        return 2;
    }
    if (kv != HR_TYPE_F32 && kv != HR_TYPE_F16 && kv != HR_TYPE_Q8_0) {
        fprintf(stderr, "headroom plan: --kv-type %s is not a KV type (f32, f16, q8_0)\n", o.kv_type_name);
        return 2;
    }
    int weight_type = o.weight_type_name ? (int)wt : -1;
    hr_model_shape s;
    hr_status st = o.preset ? hr_shape_preset(o.preset, wt, &s, &err) : load_shape(o.input, weight_type, &s, &err);
    if (st != HR_OK) {
        fprintf(stderr, "headroom plan: %s\n", err.msg);
        if (o.preset && st == HR_ERR_NOT_FOUND) return 2;
        return 1;
    }
    if (weight_type >= 0 && s.weights_exact)
        fprintf(stderr, "headroom plan: --weight-type ignored: the GGUF's tensor infos give the exact weight bytes\n");
    if (hr_shape_kv_bytes_per_token(&s, kv) == 0) {
        fprintf(stderr,
                "headroom plan: KV type %s needs the head size (%lld) to be a multiple of its block of %u values\n",
                hr_type_name(kv), (long long)s.head_dim, hr_type_get(kv)->block_elems);
        return 1;
    }
    const char *mem_source = "--mem";
    if (!o.mem_given) {
        if (hr_mem_available(&o.mem, &err) != HR_OK) {
            fprintf(stderr, "headroom plan: %s\n", err.msg);
            return 1;
        }
        mem_source = "this machine's MemAvailable";
    }
    int64_t targets[32];
    size_t n_targets = o.ctx ? 1 : hr_capacity_targets(&s, targets, 32);
    if (o.ctx) targets[0] = o.ctx;
    if (o.json) return print_json(&s, &o, kv, targets, n_targets, mem_source);
    print_table(&s, &o, kv, targets, n_targets, mem_source);
    int64_t effective = hr_shape_effective_ctx(&s);
    if (o.ctx > effective)
        printf("\n  note: --ctx %lld is beyond the %lld positions the model supports; output past them degrades\n",
               (long long)o.ctx, (long long)effective);
    return 0;
}
