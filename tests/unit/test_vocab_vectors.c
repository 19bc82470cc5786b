/* Tokenizer test vectors of real vocabularies (../shared/vocab: each .gguf with .inp/.out,
 * made by llama.cpp; tokenized without BOS/EOS and without special-token parsing). Every
 * vocabulary whose type headroom supports must pass every case; an unsupported type must
 * be refused by name, never mis-tokenized. */
#include <dirent.h>
#include <unistd.h>
#include <stdlib.h>

#include "base/file.h"
#include "formats/gguf.h"
#include "test.h"
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

/* Compares one vocabulary's vectors; fills passed/total. */
static hr_status run_vectors(const hr_vocab *v, const char *inp_path, const char *out_path, int *passed,
                             int *total, char *first_failure, size_t cap, hr_error *err) {
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
        bool ok = st == HR_OK;
        size_t k = 0;
        char *p = line;
        while (ok && p < eol) {
            char *next;
            long id = strtol(p, &next, 10);
            if (next == p) break;
            ok = k < got.count && got.ids[k] == id;
            k++;
            p = next;
        }
        ok = ok && k == got.count;
        (*total)++;
        if (ok) (*passed)++;
        else if (!first_failure[0])
            snprintf(first_failure, cap, "case %d \"%.*s\": want [%.*s], got %zu ids starting %d", *total,
                     (int)(len > 40 ? 40 : len), text, (int)(eol - line > 80 ? 80 : eol - line), line, got.count,
                     got.count ? got.ids[0] : -1);
        hr_tokens_free(&got);
        line = *eol ? eol + 1 : eol;
    }
    free(inp);
    free(out);
    return st;
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
            int passed = 0, total = 0;
            char first[300] = "";
            st = run_vectors(v, inp, out, &passed, &total, first, sizeof first, &err);
            vocabularies++;
            printf("     %-36s %d/%d%s%s\n", de->d_name, passed, total, first[0] ? "  first failure: " : "", first);
            if (st != HR_OK || passed != total) failing++;
        }
        hr_vocab_free(v);
        hr_gguf_close(&g);
    }
    closedir(dir);
    HR_CHECKF(vocabularies > 0, "no supported vocabulary with vectors found in %s", dir_path);
    HR_CHECKF(failing == 0, "%d vocabularies failed:%s", failing, failures);
}
