#include "tokenizer/normalize.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

typedef enum {
    STEP_SIMPLE,
    STEP_REPLACE,
    STEP_PREPEND,
    STEP_STRIP,
} step_kind;

typedef struct {
    step_kind kind;
    hr_norm_simple simple;
    hr_tok_regex *re;
    char *text; /* replacement content or prepended text */
    size_t text_len;
    bool left, right;
} norm_step;

struct hr_tok_normalizer {
    norm_step *steps;
    size_t n_steps;
};

hr_status hr_tok_normalizer_new(hr_tok_normalizer **out, hr_error *err) {
    *out = calloc(1, sizeof **out);
    return *out ? HR_OK : hr_fail(err, HR_ERR_NOMEM, "out of memory for a normalizer");
}

void hr_tok_normalizer_free(hr_tok_normalizer *n) {
    if (!n) return;
    for (size_t i = 0; i < n->n_steps; i++) {
        hr_tok_regex_free(n->steps[i].re);
        free(n->steps[i].text);
    }
    free(n->steps);
    free(n);
}

/* Takes ownership of step's regex and text, releasing them on failure. */
static hr_status add_step(hr_tok_normalizer *n, norm_step step, hr_error *err) {
    norm_step *bigger = realloc(n->steps, (n->n_steps + 1) * sizeof *bigger);
    if (!bigger) {
        hr_tok_regex_free(step.re);
        free(step.text);
        return hr_fail(err, HR_ERR_NOMEM, "out of memory for a normalizer step");
    }
    n->steps = bigger;
    n->steps[n->n_steps++] = step;
    return HR_OK;
}

static hr_status copy_text(char **dst, const char *src, size_t len, hr_error *err) {
    *dst = malloc(len + 1);
    if (!*dst) return hr_fail(err, HR_ERR_NOMEM, "out of memory for normalizer text");
    memcpy(*dst, src, len);
    (*dst)[len] = '\0';
    return HR_OK;
}

hr_status hr_tok_normalizer_add(hr_tok_normalizer *n, hr_norm_simple kind, hr_error *err) {
    return add_step(n, (norm_step){.kind = STEP_SIMPLE, .simple = kind}, err);
}

hr_status hr_tok_normalizer_add_replace(hr_tok_normalizer *n, const char *pattern, size_t pattern_len, bool literal,
                                        const char *content, size_t content_len, hr_error *err) {
    norm_step step = {.kind = STEP_REPLACE, .text_len = content_len};
    if (pattern_len == 0) return hr_fail(err, HR_ERR_FORMAT, "Replace normalizer with an empty pattern");
    if (hr_tok_regex_compile(&step.re, pattern, pattern_len, literal, err) != HR_OK) return err->status;
    if (copy_text(&step.text, content, content_len, err) != HR_OK) {
        hr_tok_regex_free(step.re);
        return err->status;
    }
    return add_step(n, step, err);
}

hr_status hr_tok_normalizer_add_prepend(hr_tok_normalizer *n, const char *text, size_t len, hr_error *err) {
    norm_step step = {.kind = STEP_PREPEND, .text_len = len};
    if (copy_text(&step.text, text, len, err) != HR_OK) return err->status;
    return add_step(n, step, err);
}

hr_status hr_tok_normalizer_add_strip(hr_tok_normalizer *n, bool left, bool right, hr_error *err) {
    return add_step(n, (norm_step){.kind = STEP_STRIP, .left = left, .right = right}, err);
}

hr_status hr_tok_normalizer_add_bert(hr_tok_normalizer *n, bool clean_text, bool handle_cjk, bool strip_accents,
                                     bool lowercase, hr_error *err) {
    /* The order of Hugging Face's BertNormalizer: clean, CJK, accents (NFD first), case. */
    if (clean_text && hr_tok_normalizer_add(n, HR_NORM_BERT_CLEAN, err) != HR_OK) return err->status;
    if (handle_cjk && hr_tok_normalizer_add(n, HR_NORM_BERT_CJK, err) != HR_OK) return err->status;
    if (strip_accents && (hr_tok_normalizer_add(n, HR_NORM_NFD, err) != HR_OK ||
                          hr_tok_normalizer_add(n, HR_NORM_STRIP_ACCENTS, err) != HR_OK))
        return err->status;
    if (lowercase && hr_tok_normalizer_add(n, HR_NORM_LOWERCASE, err) != HR_OK) return err->status;
    return HR_OK;
}

bool hr_tok_is_word_char(int32_t cp) {
    if (cp == '_') return true;
    if (cp < 0) return false;
    utf8proc_category_t cat = utf8proc_category(cp);
    return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
           (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
}

/* BERT's CJK: the CJK Unified Ideographs blocks and their extensions and compatibility
 * forms (not Hangul, kana or other scripts). */
static bool is_cjk(int32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* BERT treats every "Other" category as control, except tab, newline and return,
 * which it counts as white space. */
static bool is_bert_control(int32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return false;
    utf8proc_category_t cat = utf8proc_category(c);
    return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_CS ||
           cat == UTF8PROC_CATEGORY_CO || cat == UTF8PROC_CATEGORY_CN;
}

/* Applies a per-character step; invalid bytes are copied as they are. */
static hr_status map_chars(hr_norm_simple kind, const char *s, size_t len, hr_tok_buf *out, hr_error *err) {
    for (size_t i = 0; i < len;) {
        int32_t cp;
        size_t n = hr_tok_utf8_next(s + i, len - i, &cp);
        char enc[4];
        const char *piece = s + i;
        size_t piece_len = n;
        bool spaced = false;
        if (cp >= 0) {
            switch (kind) {
            case HR_NORM_LOWERCASE:
                piece_len = hr_tok_utf8_put((uint32_t)utf8proc_tolower(cp), enc);
                piece = enc;
                break;
            case HR_NORM_STRIP_ACCENTS:
                if (utf8proc_category(cp) == UTF8PROC_CATEGORY_MN) piece_len = 0;
                break;
            case HR_NORM_BERT_CLEAN:
                if (cp == 0 || cp == 0xFFFD || is_bert_control(cp)) piece_len = 0;
                else if (hr_tok_is_space(cp)) piece = " ", piece_len = 1;
                break;
            case HR_NORM_BERT_CJK:
                spaced = is_cjk(cp);
                break;
            default:
                break;
            }
        }
        if (spaced && hr_tok_buf_append(out, " ", 1, err) != HR_OK) return err->status;
        if (hr_tok_buf_append(out, piece, piece_len, err) != HR_OK) return err->status;
        if (spaced && hr_tok_buf_append(out, " ", 1, err) != HR_OK) return err->status;
        i += n;
    }
    return HR_OK;
}

/* A Unicode normal form, applied to each run of valid UTF-8 (utf8proc refuses invalid
 * input; the invalid bytes between runs are copied). */
static hr_status normal_form(hr_norm_simple kind, const char *s, size_t len, hr_tok_buf *out, hr_error *err) {
    utf8proc_option_t opts = UTF8PROC_STABLE;
    opts |= (kind == HR_NORM_NFC || kind == HR_NORM_NFKC) ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE;
    if (kind == HR_NORM_NFKC || kind == HR_NORM_NFKD) opts |= UTF8PROC_COMPAT;
    for (size_t i = 0; i < len;) {
        size_t run = i;
        bool ascii = true;
        int32_t cp = 0;
        while (run < len) {
            size_t n = hr_tok_utf8_next(s + run, len - run, &cp);
            if (cp < 0) break;
            ascii = ascii && cp < 0x80;
            run += n;
        }
        if (run > i) {
            /* Every normal form leaves ASCII as it is. */
            if (ascii) {
                if (hr_tok_buf_append(out, s + i, run - i, err) != HR_OK) return err->status;
            } else {
                utf8proc_uint8_t *mapped = NULL;
                utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(run - i),
                                                  &mapped, opts);
                if (n < 0) {
                    free(mapped);
                    return hr_fail(err, n == UTF8PROC_ERROR_NOMEM ? HR_ERR_NOMEM : HR_ERR_INVALID,
                                   "unicode normalization failed: %s", utf8proc_errmsg(n));
                }
                hr_status st = hr_tok_buf_append(out, (const char *)mapped, (size_t)n, err);
                free(mapped);
                if (st != HR_OK) return st;
            }
        }
        if (run < len) { /* one invalid byte */
            if (hr_tok_buf_append(out, s + run, 1, err) != HR_OK) return err->status;
            run++;
        }
        i = run;
    }
    return HR_OK;
}

static hr_status replace_all(const norm_step *step, hr_tok_matcher *m, const char *s, size_t len, hr_tok_buf *out,
                             hr_error *err) {
    size_t pos = 0;
    for (;;) {
        bool found;
        size_t ms, me;
        if (hr_tok_regex_find(step->re, m, s, len, pos, &found, &ms, &me, err) != HR_OK) return err->status;
        if (!found) break;
        if (hr_tok_buf_append(out, s + pos, ms - pos, err) != HR_OK ||
            hr_tok_buf_append(out, step->text, step->text_len, err) != HR_OK)
            return err->status;
        pos = me;
    }
    return hr_tok_buf_append(out, s + pos, len - pos, err);
}

static size_t space_len_at(const char *s, size_t len, size_t i) {
    int32_t cp;
    size_t n = hr_tok_utf8_next(s + i, len - i, &cp);
    return hr_tok_is_space(cp) ? n : 0;
}

static hr_status strip(const norm_step *step, const char *s, size_t len, hr_tok_buf *out, hr_error *err) {
    size_t start = 0, end = len;
    for (size_t n; step->left && start < len && (n = space_len_at(s, len, start)) > 0;) start += n;
    /* From the right: find the last non-space character by scanning forward. */
    if (step->right) {
        size_t last_end = start;
        for (size_t i = start; i < len;) {
            int32_t cp;
            size_t n = hr_tok_utf8_next(s + i, len - i, &cp);
            i += n;
            if (!hr_tok_is_space(cp)) last_end = i;
        }
        end = last_end;
    }
    return hr_tok_buf_append(out, s + start, end - start, err);
}

static hr_status apply_step(const norm_step *step, hr_tok_matcher **m, const char *s, size_t len, hr_tok_buf *out,
                            hr_error *err) {
    switch (step->kind) {
    case STEP_SIMPLE:
        if (step->simple <= HR_NORM_NFKD) return normal_form(step->simple, s, len, out, err);
        return map_chars(step->simple, s, len, out, err);
    case STEP_REPLACE:
        if (!*m && hr_tok_matcher_new(m, err) != HR_OK) return err->status;
        return replace_all(step, *m, s, len, out, err);
    case STEP_PREPEND:
        if (len > 0 && hr_tok_buf_append(out, step->text, step->text_len, err) != HR_OK) return err->status;
        return hr_tok_buf_append(out, s, len, err);
    case STEP_STRIP:
        return strip(step, s, len, out, err);
    }
    return hr_fail(err, HR_ERR_INVALID, "unknown normalizer step %d", (int)step->kind);
}

hr_status hr_tok_normalize(const hr_tok_normalizer *n, const char *text, size_t len, hr_tok_buf *out,
                           hr_error *err) {
    out->len = 0;
    if (hr_tok_buf_append(out, text, len, err) != HR_OK) return err->status;
    hr_tok_buf tmp = {0};
    hr_tok_matcher *m = NULL;
    hr_status st = HR_OK;
    for (size_t i = 0; n && i < n->n_steps && st == HR_OK; i++) {
        tmp.len = 0;
        st = hr_tok_buf_append(&tmp, "", 0, err);
        if (st == HR_OK) st = apply_step(&n->steps[i], &m, out->data, out->len, &tmp, err);
        hr_tok_buf swap = *out;
        *out = tmp;
        tmp = swap;
    }
    hr_tok_buf_free(&tmp);
    hr_tok_matcher_free(m);
    return st;
}
