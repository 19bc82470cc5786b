/* headroom synth — writes a llama model of a known shape with seeded random weights,
 * for speed and long-context tests (never committed: made on demand). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/rng.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "formats/ggml_type.h"
#include "model/export.h"
#include "model/model.h"

static const char SYNTH_HELP[] =
    "usage: headroom synth --preset NAME [--type T] [--vocab VOCAB.gguf] [--ctx N] [--seed N]\n"
    "                      [--rope-scaling KIND:FACTOR] -o OUT.gguf\n"
    "\n"
    "Writes a GGUF llama model with seeded random weights (same seed, same file).\n"
    "\n"
    "presets:\n"
    "  tiny   256 embd, 4 layers, 8 heads, 4 kv heads, 768 ff, 512 vocab (every type fits)\n"
    "  110m   768 embd, 12 layers, 12 heads, 12 kv heads, 2048 ff, 32000 vocab, untied output\n"
    "  1b     2048 embd, 22 layers, 32 heads, 4 kv heads, 5632 ff, 32000 vocab (TinyLlama-1.1B)\n"
    "\n"
    "options:\n"
    "      --type T        f32 (default), f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k, or q4_k_m\n"
    "                      (q4_k with q6_k for output and some attn_v/ffn_down, like Q4_K_M)\n"
    "      --vocab PATH    copy the vocabulary (tokenizer.* metadata) from a GGUF file;\n"
    "                      default: a generated SentencePiece-style vocabulary\n"
    "      --ctx N         trained context length to record (default 2048)\n"
    "      --seed N        weight seed (default 1)\n"
    "      --rope-scaling KIND:FACTOR\n"
    "                      record RoPE scaling metadata: linear:F (run applies it) or yarn:F\n"
    "                      (recorded for doctor and plan; run refuses it)\n"
    "  -o, --output PATH   GGUF file to write\n"
    "  -h, --help          this help\n";

typedef struct {
    const char *name;
    int32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab;
    bool tied;
} synth_preset;

static const synth_preset presets[] = {
    {"tiny", 256, 4, 8, 4, 768, 512, true},
    {"110m", 768, 12, 12, 12, 2048, 32000, false},
    {"1b", 2048, 22, 32, 4, 5632, 32000, false},
};

/* Q4_K_M gives more bits to the layers whose errors hurt most: the first and last
 * eighth of attn_v/ffn_down and every third one between, and the classifier. */
static uint32_t mixture_type(const hr_tensor_spec *s, int32_t n_layer) {
    if (!strcmp(s->suffix, "output")) return HR_TYPE_Q6_K;
    if (s->layer >= 0 && (!strcmp(s->suffix, "attn_v") || !strcmp(s->suffix, "ffn_down"))) {
        int32_t l = s->layer, eighth = n_layer / 8;
        if (l < eighth || l >= n_layer - eighth || (l - eighth) % 3 == 2) return HR_TYPE_Q6_K;
    }
    return HR_TYPE_Q4_K;
}

static hr_status vocab_metadata(hr_gguf_writer *w, const char *vocab_path, int32_t n_default, int32_t *n_vocab,
                                hr_error *err) {
    if (!vocab_path) {
        hr_vocab *v;
        if (hr_vocab_synthesize(&v, n_default, err) != HR_OK) return err->status;
        hr_status st = hr_vocab_to_gguf(v, w, err);
        hr_vocab_free(v);
        *n_vocab = n_default;
        return st;
    }
    hr_gguf g;
    if (hr_gguf_open(&g, vocab_path, err) != HR_OK) return err->status;
    const hr_gguf_value *tokens;
    hr_status st = hr_gguf_get_arr(&g, "tokenizer.ggml.tokens", HR_GGUF_STRING, &tokens, err);
    if (st == HR_OK) {
        *n_vocab = (int32_t)(tokens->arr.count > INT32_MAX ? INT32_MAX : tokens->arr.count);
        for (uint64_t i = 0; i < g.n_kv && st == HR_OK; i++) {
            hr_gguf_str key = g.kvs[i].key;
            if (key.len > 10 && memcmp(key.ptr, "tokenizer.", 10) == 0) st = hr_gguf_writer_copy_kv(w, &g.kvs[i], err);
        }
    }
    hr_gguf_close(&g);
    return st;
}

/* RoPE scaling metadata to record (kind NULL: none). */
typedef struct {
    const char *kind;
    float factor;
} synth_rope;

static hr_status synthesize(const synth_preset *p, const char *type_name, const char *vocab_path, int32_t ctx,
                            uint64_t seed, const synth_rope *rope, const char *out_path, hr_error *err) {
    bool mixture = !strcmp(type_name, "q4_k_m");
    hr_type type = HR_TYPE_Q4_K;
    if (!mixture && hr_type_from_name(type_name, &type, err) != HR_OK) return err->status;
    hr_gguf_writer *w;
    if (hr_gguf_writer_new(&w, err) != HR_OK) return err->status;
    hr_export x = {0};
    hr_tensor_spec *specs = NULL;
    size_t n_specs = 0;
    hr_hparams hp = {.n_ctx_train = ctx, .n_embd = p->n_embd, .n_layer = p->n_layer, .n_ff = p->n_ff,
                     .n_head = p->n_head, .n_head_kv = p->n_head_kv, .head_dim = p->n_embd / p->n_head,
                     .rope_freq_base = 10000.0f, .rms_eps = 1e-5f};
    hp.n_rot = hp.head_dim;
    snprintf(hp.arch, sizeof hp.arch, "llama");
    hr_status st = vocab_metadata(w, vocab_path, p->n_vocab, &hp.n_vocab, err);
    if (st == HR_OK) st = hr_hparams_to_gguf(&hp, w, err);
    if (st == HR_OK) st = hr_gguf_writer_set_str(w, "general.name", p->name, err);
    if (st == HR_OK && rope->kind) st = hr_gguf_writer_set_str(w, "llama.rope.scaling.type", rope->kind, err);
    if (st == HR_OK && rope->kind) st = hr_gguf_writer_set_f32(w, "llama.rope.scaling.factor", rope->factor, err);
    if (st == HR_OK) st = hr_llama_specs(&hp, p->tied, &specs, &n_specs, err);
    hr_rng rng;
    hr_rng_seed(&rng, seed);
    int last_decile = -1;
    for (size_t i = 0; i < n_specs && st == HR_OK; i++) {
        const hr_tensor_spec *s = &specs[i];
        size_t n = (size_t)s->cols * (size_t)s->rows;
        float *data = malloc(n * sizeof *data);
        if (!data) {
            st = hr_fail(err, HR_ERR_NOMEM, "out of memory for a %lld x %lld tensor", (long long)s->rows,
                         (long long)s->cols);
            break;
        }
        /* Norm weights of one keep activations at unit scale; 0.02 is the usual init. */
        for (size_t k = 0; k < n; k++) data[k] = s->rows == 1 ? 1.0f : 0.02f * hr_rng_normal(&rng);
        char name[96];
        hr_tensor_spec_name(s, name, sizeof name);
        uint32_t t = s->rows == 1 ? HR_TYPE_F32 : mixture ? mixture_type(s, p->n_layer) : type;
        st = hr_export_tensor(&x, w, name, data, s->cols, s->rows, t, true, err);
        int decile = (int)((i + 1) * 10 / n_specs);
        if (decile != last_decile) {
            fprintf(stderr, "headroom synth: %3d%% of tensors generated\n", decile * 10);
            last_decile = decile;
        }
    }
    if (st == HR_OK) st = hr_gguf_writer_write(w, out_path, err);
    free(specs);
    hr_export_free(&x);
    hr_gguf_writer_free(w);
    return st;
}

int hr_cmd_synth(int argc, char **argv) {
    const char *preset_name = NULL, *type_name = "f32", *vocab_path = NULL, *out_path = NULL;
    int64_t ctx = 2048;
    uint64_t seed = 1;
    synth_rope rope = {0};
    char rope_kind[16];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(SYNTH_HELP, stdout);
            return 0;
        }
        const char **dst = !strcmp(a, "--preset")                    ? &preset_name
                           : !strcmp(a, "--type")                     ? &type_name
                           : !strcmp(a, "--vocab")                    ? &vocab_path
                           : !strcmp(a, "-o") || !strcmp(a, "--output") ? &out_path
                                                                       : NULL;
        if (dst) {
            if (!(*dst = hr_arg_value("synth", argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--ctx")) {
            if (!(v = hr_arg_value("synth", argc, argv, &i)) || !hr_arg_int("synth", a, v, 1, 1 << 24, &ctx)) return 2;
        } else if (!strcmp(a, "--seed")) {
            if (!(v = hr_arg_value("synth", argc, argv, &i)) || !hr_arg_u64("synth", a, v, &seed)) return 2;
        } else if (!strcmp(a, "--rope-scaling")) {
            if (!(v = hr_arg_value("synth", argc, argv, &i))) return 2;
            const char *colon = strchr(v, ':');
            char *end = NULL;
            double factor = colon ? strtod(colon + 1, &end) : 0;
            size_t kind_len = colon ? (size_t)(colon - v) : 0;
            bool known = (kind_len == 6 && !strncmp(v, "linear", 6)) || (kind_len == 4 && !strncmp(v, "yarn", 4));
            if (!known || end == colon + 1 || *end || !((float)factor > 0 && factor <= 1024)) {
                fprintf(stderr, "headroom synth: --rope-scaling '%s' must be linear:F or yarn:F with 0 < F <= 1024\n", v);
                return 2;
            }
            snprintf(rope_kind, sizeof rope_kind, "%.*s", (int)kind_len, v);
            rope = (synth_rope){.kind = rope_kind, .factor = (float)factor};
        } else {
            fprintf(stderr, "headroom synth: unknown option '%s' (see headroom synth --help)\n", a);
            return 2;
        }
    }
    if (!preset_name || !out_path) {
        fprintf(stderr, "headroom synth: need --preset NAME and -o OUT.gguf (see headroom synth --help)\n");
        return 2;
    }
    const synth_preset *preset = NULL;
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (!strcmp(presets[i].name, preset_name)) preset = &presets[i];
    if (!preset) {
        fprintf(stderr, "headroom synth: unknown preset '%s' (known: tiny, 110m, 1b)\n", preset_name);
        return 2;
    }
    hr_error err = {0};
    if (hr_file_check_writable(out_path, &err) != HR_OK) {
        fprintf(stderr, "headroom synth: -o: %s\n", err.msg);
        return 2;
    }
    if (synthesize(preset, type_name, vocab_path, (int32_t)ctx, seed, &rope, out_path, &err) != HR_OK) {
        fprintf(stderr, "headroom synth: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "headroom synth: wrote %s (preset %s, %s)\n", out_path, preset->name, type_name);
    return 0;
}
