/* Tokenizer test vectors of real vocabularies:
 * - ../shared/vocab: each .gguf with .inp/.out, made by llama.cpp from the models'
 *   Hugging Face tokenizers;
 * - ../shared/tokenizers/<name>: tokenizer.json (+ tokenizer_config.json) with
 *   vectors.inp/.out made by Hugging Face `tokenizers`.
 * Both are tokenized without BOS/EOS and without special-token parsing. Every
 * vocabulary whose type headroom supports must pass every case, and decoding each
 * case's ids must give its text back (WordPiece, which lowercases and drops spaces,
 * excepted); an unsupported type must be refused by name, never mis-tokenized. */
#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/file.h"
#include "formats/gguf.h"
#include "test.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/tokenize.h"

static const char CASE_SEP[] = "\n__ggml_vocab_test__\n";

/* Splits the next case off *cursor (cases are separated by CASE_SEP, and the file ends
 * with one). Returns false at the end. */
static bool next_case(char **cursor, char *end, char **text, size_t *len) {
    if (*cursor >= end) return false;
    char *sep = strstr(*cursor, CASE_SEP);
    if (!sep) sep = end;
    *text = *cursor;
    *len = (size_t)(sep - *cursor);
    *cursor = sep + (sep < end ? strlen(CASE_SEP) : 0);
    return true;
}

typedef struct {
    int passed, total, round_trips;
    char first_failure[300];
} vector_result;

/* True when ids equal the space-separated numbers of line[0..eol). */
static bool ids_match(const hr_tokens *got, const char *line, const char *eol) {
    size_t k = 0;
    for (const char *p = line; p < eol;) {
        char *next;
        long id = strtol(p, &next, 10);
        if (next == p) break;
        if (k >= got->count || got->ids[k] != id) return false;
        k++;
        p = next;
    }
    return k == got->count;
}

/* Compares one vocabulary's vectors and checks each case decodes back to its text. */
static hr_status run_vectors(const hr_vocab *v, const char *inp_path, const char *out_path, vector_result *r,
                             hr_error *err) {
    char *inp, *out;
    size_t inp_len, out_len;
    if (hr_file_read_all(inp_path, &inp, &inp_len, err) != HR_OK) return err->status;
    if (hr_file_read_all(out_path, &out, &out_len, err) != HR_OK) {
        free(inp);
        return err->status;
    }
    char *cursor = inp, *line = out, *text;
    size_t len;
    hr_status st = HR_OK;
    while (st == HR_OK && next_case(&cursor, inp + inp_len, &text, &len)) {
        char *eol = strchr(line, '\n');
        if (!eol) eol = line + strlen(line);
        hr_tokens got = {0};
        st = hr_tok_encode(v, text, len, 0, &got, err);
        bool ok = st == HR_OK && ids_match(&got, line, eol);
        char *decoded = NULL;
        size_t decoded_len = 0;
        if (st == HR_OK) st = hr_tok_decode(v, got.ids, got.count, &decoded, &decoded_len, err);
        if (st == HR_OK && decoded_len == len && memcmp(decoded, text, len) == 0) r->round_trips++;
        r->total++;
        if (ok) r->passed++;
        else if (!r->first_failure[0])
            snprintf(r->first_failure, sizeof r->first_failure, "case %d \"%.*s\": want [%.*s], got %zu ids starting %d",
                     r->total, (int)(len > 40 ? 40 : len), text, (int)(eol - line > 80 ? 80 : eol - line), line,
                     got.count, got.count ? got.ids[0] : -1);
        free(decoded);
        hr_tokens_free(&got);
        line = *eol ? eol + 1 : eol;
    }
    free(inp);
    free(out);
    return st;
}

/* Runs and reports one vocabulary; returns false when it fails its vectors. */
static bool check_vocabulary(const char *name, const hr_vocab *v, const char *inp, const char *out, char *failures,
                             size_t cap) {
    vector_result r = {0};
    hr_error err = {0};
    hr_status st = run_vectors(v, inp, out, &r, &err);
    bool lossless = v->kind != HR_VOCAB_WPM;
    printf("     %-36s %d/%d, decoded back %d/%d%s%s\n", name, r.passed, r.total, r.round_trips, r.total,
           r.first_failure[0] ? "  first failure: " : "", r.first_failure);
    bool ok = st == HR_OK && r.total > 0 && r.passed == r.total && (!lossless || r.round_trips == r.total);
    if (!ok)
        snprintf(failures + strlen(failures), cap - strlen(failures), " [%s: %d/%d, decoded %d%s%s]", name, r.passed,
                 r.total, r.round_trips, st == HR_OK ? "" : ": ", st == HR_OK ? "" : err.msg);
    return ok;
}

HR_TEST(vocab_vectors_all_supported_vocabularies_pass) {
    HR_ASSET(dir_path, "vocab");
    DIR *dir = opendir(dir_path);
    HR_CHECKF(dir != NULL, "cannot open %s", dir_path);
    int vocabularies = 0, failing = 0;
    char failures[800] = "";
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 6 || strcmp(de->d_name + n - 5, ".gguf") != 0) continue;
        char path[1200], inp[1300], out[1300];
        snprintf(path, sizeof path, "%s/%s", dir_path, de->d_name);
        snprintf(inp, sizeof inp, "%s.inp", path);
        snprintf(out, sizeof out, "%s.out", path);
        hr_error err = {0};
        hr_gguf g;
        if (hr_gguf_open(&g, path, &err) != HR_OK) {
            failing++;
            snprintf(failures + strlen(failures), sizeof failures - strlen(failures), " [%s: %s]", de->d_name, err.msg);
            continue;
        }
        hr_vocab *v = NULL;
        hr_status st = hr_vocab_from_gguf(&v, &g, &err);
        if (st == HR_ERR_UNSUPPORTED) {
            printf("     %-36s unsupported: %s\n", de->d_name, err.msg);
            if (!strstr(err.msg, "not supported")) failing++;
        } else if (st != HR_OK) {
            failing++;
            snprintf(failures + strlen(failures), sizeof failures - strlen(failures), " [%s: %s]", de->d_name, err.msg);
        } else if (access(inp, R_OK) == 0) {
            vocabularies++;
            failing += !check_vocabulary(de->d_name, v, inp, out, failures, sizeof failures);
        } else {
            printf("     %-36s loads (no vectors)\n", de->d_name);
        }
        hr_vocab_free(v);
        hr_gguf_close(&g);
    }
    closedir(dir);
    HR_CHECKF(vocabularies > 0, "no supported vocabulary with vectors found in %s", dir_path);
    HR_CHECKF(failing == 0, "%d vocabularies failed:%s", failing, failures);
}

HR_TEST(vocab_vectors_hugging_face_tokenizers_pass) {
    HR_ASSET(dir_path, "tokenizers");
    DIR *dir = opendir(dir_path);
    HR_CHECKF(dir != NULL, "cannot open %s", dir_path);
    int sets = 0, failing = 0;
    char failures[800] = "";
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char json[1200], inp[1200], out[1200];
        snprintf(json, sizeof json, "%s/%s/tokenizer.json", dir_path, de->d_name);
        snprintf(inp, sizeof inp, "%s/%s/vectors.inp", dir_path, de->d_name);
        snprintf(out, sizeof out, "%s/%s/vectors.out", dir_path, de->d_name);
        if (access(json, R_OK) != 0) continue;
        hr_error err = {0};
        hr_vocab *v = NULL;
        hr_status st = hr_vocab_from_hf(&v, json, &err);
        if (st == HR_ERR_UNSUPPORTED) {
            printf("     %-36s unsupported: %s\n", de->d_name, err.msg);
            if (!strstr(err.msg, "not supported")) failing++;
        } else if (st != HR_OK) {
            failing++;
            snprintf(failures + strlen(failures), sizeof failures - strlen(failures), " [%s: %s]", de->d_name, err.msg);
        } else if (access(inp, R_OK) == 0) {
            sets++;
            failing += !check_vocabulary(de->d_name, v, inp, out, failures, sizeof failures);
        }
        hr_vocab_free(v);
    }
    closedir(dir);
    HR_CHECKF(sets > 0, "no tokenizer.json with vectors found in %s", dir_path);
    HR_CHECKF(failing == 0, "%d tokenizers failed:%s", failing, failures);
}
