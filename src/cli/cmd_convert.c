/* headroom convert — llama2.c checkpoint + tokenizer.bin -> GGUF llama model. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/file.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "formats/ggml_type.h"
#include "model/export.h"

static const char CONVERT_HELP[] =
    "usage: headroom convert MODEL.bin --tokenizer TOK.bin -o OUT.gguf [--type T] [--name NAME]\n"
    "\n"
    "Converts a llama2.c checkpoint (legacy .bin; a negative vocab size in its header means\n"
    "an unshared classifier) and its tokenizer.bin into a GGUF llama model with a\n"
    "SentencePiece-style vocabulary, following GGUF's llama tensor names and metadata keys.\n"
    "A shared classifier is written once (no output.weight: readers tie it to token_embd).\n"
    "\n"
    "options:\n"
    "      --tokenizer PATH  llama2.c tokenizer.bin (default: tokenizer.bin beside MODEL)\n"
    "  -o, --output PATH     GGUF file to write\n"
    "      --type T          storage type of the matrices: f32 (default), f16, bf16, q8_0,\n"
    "                        q4_0, q4_k, q5_k, q6_k (norm weights stay f32)\n"
    "      --name NAME       general.name (default: the checkpoint's file name)\n"
    "  -h, --help            this help\n";

/* True when both paths name one file (the output would replace an input). */
static bool same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int hr_cmd_convert(int argc, char **argv) {
    const char *in_path = NULL, *tok_path = NULL, *out_path = NULL, *type_name = "f32", *name = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(CONVERT_HELP, stdout);
            return 0;
        }
        const char **dst = !strcmp(a, "--tokenizer")                   ? &tok_path
                           : !strcmp(a, "-o") || !strcmp(a, "--output") ? &out_path
                           : !strcmp(a, "--type")                        ? &type_name
                           : !strcmp(a, "--name")                        ? &name
                                                                         : NULL;
        if (dst) {
            if (!(*dst = hr_arg_value("convert", argc, argv, &i))) return 2;
        } else if (a[0] == '-' || in_path) {
            fprintf(stderr, "headroom convert: unexpected argument '%s' (see headroom convert --help)\n", a);
            return 2;
        } else {
            in_path = a;
        }
    }
    if (!in_path || !out_path) {
        fprintf(stderr, "headroom convert: need MODEL.bin and -o OUT.gguf (see headroom convert --help)\n");
        return 2;
    }
    hr_error err = {0};
    hr_type type;
    if (hr_type_from_name(type_name, &type, &err) != HR_OK) {
        fprintf(stderr, "headroom convert: --type: %s\n", err.msg);
        return 2;
    }
    if (hr_file_check_writable(out_path, &err) != HR_OK) {
        fprintf(stderr, "headroom convert: -o: %s\n", err.msg);
        return 2;
    }
    if (same_file(out_path, in_path) || (tok_path && same_file(out_path, tok_path))) {
        fprintf(stderr, "headroom convert: -o %s is one of the inputs; write the GGUF elsewhere\n", out_path);
        return 2;
    }
    hr_model *m = NULL;
    if (hr_model_load(&m, in_path, tok_path, &err) != HR_OK) {
        fprintf(stderr, "headroom convert: %s\n", err.msg);
        return 1;
    }
    int rc = 0;
    if (m->source != HR_MODEL_LLAMA2C) {
        fprintf(stderr, "headroom convert: '%s' is already a GGUF file; convert reads llama2.c checkpoints\n", in_path);
        rc = 1;
    } else {
        char base[256];
        if (!name) {
            const char *slash = strrchr(in_path, '/');
            snprintf(base, sizeof base, "%s", slash ? slash + 1 : in_path);
            char *dot = strrchr(base, '.');
            if (dot && dot != base) *dot = '\0';
            name = base;
        }
        if (hr_model_write_gguf(m, type, name, out_path, &err) != HR_OK) {
            fprintf(stderr, "headroom convert: %s\n", err.msg);
            rc = 1;
        } else {
            fprintf(stderr, "headroom convert: wrote %s (%s, %d layers, %d-token vocabulary, context %d)\n", out_path,
                    hr_type_name(type), m->hp.n_layer, m->hp.n_vocab, m->hp.n_ctx_train);
        }
    }
    hr_model_free(m);
    return rc;
}
