#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/pretokenize.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"

/* ---- shared text primitives ---- */

hr_status hr_tok_buf_append(hr_tok_buf *b, const char *s, size_t n, hr_error *err) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        char *bigger = realloc(b->data, cap);
        if (!bigger) return hr_fail(err, HR_ERR_NOMEM, "out of memory for %zu bytes of text", cap);
        b->data = bigger;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return HR_OK;
}

void hr_tok_buf_free(hr_tok_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

size_t hr_tok_utf8_next(const char *str, size_t avail, int32_t *cp) {
    const uint8_t *s = (const uint8_t *)str;
    size_t n = hr_utf8_seq_len(s, avail);
    if (n == 0) {
        *cp = -1;
        return 1;
    }
    uint32_t v = n == 1 ? s[0] : s[0] & (0x7F >> n);
    for (size_t i = 1; i < n; i++) v = v << 6 | (s[i] & 0x3F);
    *cp = (int32_t)v;
    return n;
}

size_t hr_tok_utf8_put(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

bool hr_tok_is_space(int32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* ---- regex ---- */

struct hr_tok_regex {
    pcre2_code *code;
};

struct hr_tok_matcher {
    pcre2_match_data *md;
    pcre2_match_context *mc;
    pcre2_jit_stack *jit_stack;
};

hr_status hr_tok_regex_compile(hr_tok_regex **out, const char *pattern, size_t len, bool literal, hr_error *err) {
    *out = NULL;
    /* MATCH_INVALID_UTF: invalid bytes match nothing instead of failing the match, so
     * they fall into the gaps between matches and still reach the model as bytes. */
    uint32_t options = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
    options |= literal ? PCRE2_LITERAL : PCRE2_UCP | PCRE2_DOLLAR_ENDONLY;
    int code_err;
    PCRE2_SIZE at;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pattern, len, options, &code_err, &at, NULL);
    if (!code) {
        char msg[160];
        pcre2_get_error_message(code_err, (PCRE2_UCHAR *)msg, sizeof msg);
        return hr_fail(err, HR_ERR_FORMAT, "pre-tokenizer regex /%.*s/ at offset %zu: %s",
                       (int)(len > 80 ? 80 : len), pattern, (size_t)at, msg);
    }
    /* JIT is several times faster; without it (no JIT support) the interpreter is used. */
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    *out = malloc(sizeof **out);
    if (!*out) {
        pcre2_code_free(code);
        return hr_fail(err, HR_ERR_NOMEM, "out of memory for a regex");
    }
    (*out)->code = code;
    return HR_OK;
}

void hr_tok_regex_free(hr_tok_regex *re) {
    if (!re) return;
    pcre2_code_free(re->code);
    free(re);
}

hr_status hr_tok_matcher_new(hr_tok_matcher **out, hr_error *err) {
    hr_tok_matcher *m = calloc(1, sizeof *m);
    if (m) {
        m->md = pcre2_match_data_create(1, NULL); /* only the whole match is read */
        m->mc = pcre2_match_context_create(NULL);
        /* Long runs of one class (a megabyte of spaces) need more than the default 32 KB. */
        m->jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    }
    if (!m || !m->md || !m->mc || !m->jit_stack) {
        hr_tok_matcher_free(m);
        *out = NULL;
        return hr_fail(err, HR_ERR_NOMEM, "out of memory for regex match state");
    }
    pcre2_jit_stack_assign(m->mc, NULL, m->jit_stack);
    *out = m;
    return HR_OK;
}

void hr_tok_matcher_free(hr_tok_matcher *m) {
    if (!m) return;
    pcre2_match_data_free(m->md);
    pcre2_match_context_free(m->mc);
    pcre2_jit_stack_free(m->jit_stack);
    free(m);
}

hr_status hr_tok_regex_find(const hr_tok_regex *re, hr_tok_matcher *m, const char *subject, size_t len, size_t start,
                            bool *found, size_t *ms, size_t *me, hr_error *err) {
    *found = false;
    while (start < len) {
        int rc = pcre2_match(re->code, (PCRE2_SPTR)subject, len, start, 0, m->md, m->mc);
        if (rc == PCRE2_ERROR_NOMATCH) return HR_OK;
        if (rc < 0) {
            char msg[160];
            pcre2_get_error_message(rc, (PCRE2_UCHAR *)msg, sizeof msg);
            return hr_fail(err, HR_ERR_RANGE, "pre-tokenizer regex failed at byte %zu: %s", start, msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(m->md);
        if (ov[1] > ov[0]) {
            *found = true;
            *ms = ov[0];
            *me = ov[1];
            return HR_OK;
        }
        /* An empty match splits nothing: look again one character on. */
        int32_t cp;
        start = ov[0] + hr_tok_utf8_next(subject + ov[0], len - ov[0], &cp);
    }
    return HR_OK;
}

/* ---- the pipeline ---- */

typedef enum { STEP_SPLIT, STEP_PREFIX_SPACE, STEP_METASPACE } step_kind;

typedef struct {
    step_kind kind;
    hr_tok_regex *re;
    hr_split_behavior behavior;
    bool invert;
    char replacement[8];
    size_t replacement_len;
    hr_prepend_scheme scheme;
} pretok_step;

struct hr_pretok {
    pretok_step *steps;
    size_t n_steps;
};

typedef struct hr_tok_span {
    size_t start, len;
} hr_tok_span;

hr_status hr_pretok_new(hr_pretok **out, hr_error *err) {
    *out = calloc(1, sizeof **out);
    return *out ? HR_OK : hr_fail(err, HR_ERR_NOMEM, "out of memory for a pre-tokenizer");
}

void hr_pretok_free(hr_pretok *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n_steps; i++) hr_tok_regex_free(p->steps[i].re);
    free(p->steps);
    free(p);
}

static hr_status add_step(hr_pretok *p, pretok_step step, hr_error *err) {
    pretok_step *bigger = realloc(p->steps, (p->n_steps + 1) * sizeof *bigger);
    if (!bigger) {
        hr_tok_regex_free(step.re);
        return hr_fail(err, HR_ERR_NOMEM, "out of memory for a pre-tokenizer step");
    }
    p->steps = bigger;
    p->steps[p->n_steps++] = step;
    return HR_OK;
}

hr_status hr_pretok_add_split(hr_pretok *p, const char *pattern, size_t len, bool literal, hr_split_behavior behavior,
                              bool invert, hr_error *err) {
    pretok_step step = {.kind = STEP_SPLIT, .behavior = behavior, .invert = invert};
    if (hr_tok_regex_compile(&step.re, pattern, len, literal, err) != HR_OK) return err->status;
    return add_step(p, step, err);
}

hr_status hr_pretok_add_prefix_space(hr_pretok *p, hr_error *err) {
    return add_step(p, (pretok_step){.kind = STEP_PREFIX_SPACE}, err);
}

hr_status hr_pretok_add_metaspace(hr_pretok *p, const char *replacement, size_t len, hr_prepend_scheme scheme,
                                  bool split, hr_error *err) {
    pretok_step step = {.kind = STEP_METASPACE, .scheme = scheme, .behavior = HR_SPLIT_MERGED_WITH_NEXT};
    if (len == 0 || len >= sizeof step.replacement)
        return hr_fail(err, HR_ERR_FORMAT, "Metaspace replacement of %zu bytes: expected one character", len);
    memcpy(step.replacement, replacement, len);
    step.replacement_len = len;
    if (split && hr_tok_regex_compile(&step.re, replacement, len, true, err) != HR_OK) return err->status;
    return add_step(p, step, err);
}

hr_status hr_pretok_state_init(hr_pretok_state *st, hr_error *err) {
    memset(st, 0, sizeof *st);
    return hr_tok_matcher_new(&st->matcher, err);
}

void hr_pretok_state_free(hr_pretok_state *st) {
    for (int i = 0; i < 2; i++) {
        hr_tok_buf_free(&st->text[i]);
        free(st->spans[i]);
    }
    hr_tok_matcher_free(st->matcher);
    memset(st, 0, sizeof *st);
}

static hr_status push_span(hr_pretok_state *st, int which, size_t start, size_t len, hr_error *err) {
    if (st->n_spans[which] == st->cap_spans[which]) {
        size_t cap = st->cap_spans[which] ? st->cap_spans[which] * 2 : 64;
        hr_tok_span *bigger = realloc(st->spans[which], cap * sizeof *bigger);
        if (!bigger) return hr_fail(err, HR_ERR_NOMEM, "out of memory for %zu words", cap);
        st->spans[which] = bigger;
        st->cap_spans[which] = cap;
    }
    st->spans[which][st->n_spans[which]++] = (hr_tok_span){start, len};
    return HR_OK;
}

/* Emits the pieces of one span as Hugging Face's split behaviours define them, fed one
 * segment at a time (a match or the gap before it, in order). */
typedef struct {
    hr_pretok_state *st;
    int out;
    size_t first_out;        /* spans emitted for this piece start here */
    bool prev_match;
    bool pending;            /* MergedWithNext: a match waiting for the segment after it */
    size_t pending_start;
} split_sink;

static hr_status sink_segment(split_sink *k, hr_split_behavior behavior, size_t start, size_t end, bool is_match,
                              hr_error *err) {
    hr_pretok_state *st = k->st;
    bool have_last = st->n_spans[k->out] > k->first_out;
    hr_tok_span *last = have_last ? &st->spans[k->out][st->n_spans[k->out] - 1] : NULL;
    hr_status s = HR_OK;
    switch (behavior) {
    case HR_SPLIT_REMOVED:
        if (!is_match) s = push_span(st, k->out, start, end - start, err);
        break;
    case HR_SPLIT_ISOLATED:
        s = push_span(st, k->out, start, end - start, err);
        break;
    case HR_SPLIT_MERGED_WITH_PREVIOUS:
        if (is_match && !k->prev_match && last) last->len = end - last->start;
        else s = push_span(st, k->out, start, end - start, err);
        break;
    case HR_SPLIT_CONTIGUOUS:
        if (is_match == k->prev_match && last) last->len = end - last->start;
        else s = push_span(st, k->out, start, end - start, err);
        break;
    case HR_SPLIT_MERGED_WITH_NEXT:
        /* A match joins the segment after it unless that one is a match too. */
        if (k->pending && !is_match) {
            s = push_span(st, k->out, k->pending_start, end - k->pending_start, err);
            k->pending = false;
            break;
        }
        if (k->pending) s = push_span(st, k->out, k->pending_start, start - k->pending_start, err);
        k->pending = is_match;
        k->pending_start = start;
        if (!is_match && s == HR_OK) s = push_span(st, k->out, start, end - start, err);
        break;
    }
    k->prev_match = is_match;
    return s;
}

static hr_status sink_end(split_sink *k, size_t end, hr_error *err) {
    if (!k->pending) return HR_OK;
    k->pending = false;
    return push_span(k->st, k->out, k->pending_start, end - k->pending_start, err);
}

static hr_status run_split(const pretok_step *step, hr_pretok_state *st, hr_error *err) {
    int in = st->cur, out = 1 - st->cur;
    const char *text = st->text[in].data;
    st->n_spans[out] = 0;
    for (size_t i = 0; i < st->n_spans[in]; i++) {
        hr_tok_span span = st->spans[in][i];
        const char *piece = text + span.start;
        split_sink k = {.st = st, .out = out, .first_out = st->n_spans[out]};
        size_t pos = 0;
        for (;;) {
            bool found;
            size_t ms = span.len, me = span.len;
            if (hr_tok_regex_find(step->re, st->matcher, piece, span.len, pos, &found, &ms, &me, err) != HR_OK)
                return err->status;
            if (!found) ms = me = span.len;
            bool gap = ms > pos;
            if (gap && sink_segment(&k, step->behavior, span.start + pos, span.start + ms, step->invert, err) != HR_OK)
                return err->status;
            if (!found) break;
            if (sink_segment(&k, step->behavior, span.start + ms, span.start + me, !step->invert, err) != HR_OK)
                return err->status;
            pos = me;
        }
        if (sink_end(&k, span.start + span.len, err) != HR_OK) return err->status;
    }
    /* Splitting only narrows pieces: the text stays where it is. */
    hr_tok_buf tmp = st->text[out];
    st->text[out] = st->text[in];
    st->text[in] = tmp;
    st->cur = out;
    return HR_OK;
}

/* Rewrites each piece into the other buffer: ByteLevel's prefix space, or Metaspace's
 * replacement of spaces (and its prefix). at_start: the first piece begins the input. */
static hr_status run_rewrite(const pretok_step *step, hr_pretok_state *st, bool at_start, hr_error *err) {
    int in = st->cur, out = 1 - st->cur;
    hr_tok_buf *dst = &st->text[out];
    dst->len = 0;
    st->n_spans[out] = 0;
    bool meta = step->kind == STEP_METASPACE;
    const char *mark = meta ? step->replacement : " ";
    size_t mark_len = meta ? step->replacement_len : 1;
    for (size_t i = 0; i < st->n_spans[in]; i++) {
        hr_tok_span span = st->spans[in][i];
        const char *piece = st->text[in].data + span.start;
        size_t start = dst->len;
        /* A leading space counts as the mark: Metaspace turns it into one below. */
        bool begins = span.len > 0 && (piece[0] == ' ' ||
                                       (meta && span.len >= mark_len && memcmp(piece, mark, mark_len) == 0));
        bool prepend = !begins && (!meta || step->scheme == HR_PREPEND_ALWAYS ||
                                   (step->scheme == HR_PREPEND_FIRST && at_start && span.start == 0));
        if (prepend && hr_tok_buf_append(dst, mark, mark_len, err) != HR_OK) return err->status;
        /* Copy runs between spaces; Metaspace writes its mark for each space. */
        for (size_t k = 0; k < span.len;) {
            const char *space = meta ? memchr(piece + k, ' ', span.len - k) : NULL;
            size_t run = space ? (size_t)(space - piece) - k : span.len - k;
            if (hr_tok_buf_append(dst, piece + k, run, err) != HR_OK ||
                (space && hr_tok_buf_append(dst, mark, mark_len, err) != HR_OK))
                return err->status;
            k += run + (space ? 1 : 0);
        }
        if (dst->len > start && push_span(st, out, start, dst->len - start, err) != HR_OK) return err->status;
    }
    st->cur = out;
    if (meta && step->re) {
        pretok_step split = {.kind = STEP_SPLIT, .re = step->re, .behavior = step->behavior};
        return run_split(&split, st, err);
    }
    return HR_OK;
}

hr_status hr_pretok_run(const hr_pretok *p, hr_pretok_state *st, const char *text, size_t len, bool at_start,
                        hr_error *err) {
    st->cur = 0;
    st->text[0].len = 0;
    st->n_spans[0] = 0;
    if (hr_tok_buf_append(&st->text[0], text, len, err) != HR_OK) return err->status;
    if (len > 0 && push_span(st, 0, 0, len, err) != HR_OK) return err->status;
    for (size_t i = 0; p && i < p->n_steps; i++) {
        const pretok_step *step = &p->steps[i];
        hr_status s = step->kind == STEP_SPLIT ? run_split(step, st, err) : run_rewrite(step, st, at_start, err);
        if (s != HR_OK) return s;
    }
    return HR_OK;
}

size_t hr_pretok_count(const hr_pretok_state *st) { return st->n_spans[st->cur]; }

const char *hr_pretok_word(const hr_pretok_state *st, size_t i, size_t *len) {
    const hr_tok_span *span = &st->spans[st->cur][i];
    *len = span->len;
    return st->text[st->cur].data + span->start;
}

/* ---- model families (GGUF tokenizer.ggml.pre) ---- */

/* The patterns below are the families' own pre-tokenizer definitions, as their
 * tokenizer.json files and llama.cpp state them. */
const char HR_PRETOK_GPT2_REGEX[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static const char LLAMA3_REGEX[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                                   "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char QWEN2_REGEX[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                                  "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char CJK_REGEX[] = "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+";
/* Deepseek LLM's letters: the cased letters (Lu, Ll, Lt) its tokenizer lists by range. */
static const char DEEPSEEK_LLM_LETTERS[] =
    "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}"
    "\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}"
    "\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}"
    "\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}"
    "\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}"
    "\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}"
    "\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}"
    "\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}"
    "\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}"
    "\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}"
    "\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}"
    "\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}"
    "\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}"
    "\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}"
    "\\x{1E900}-\\x{1E943}]+";
static const char BLOOM_REGEX[] =
    " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+";
static const char TEKKEN_REGEX[] =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|[^\\r\\n\\p{L}\\p{N}]?"
    "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char GPT4O_REGEX[] =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+"
    "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char DEEPSEEK3_REGEX[] =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
    "?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char SEED_CODER_REGEX[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| "
                                       "?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char BAILING_REGEX[] = "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+|\\p{N}| "
                                    "?[^\\s\\p{L}\\p{N}]++[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+";

enum { MAX_FAMILY_REGEXES = 6 };

typedef struct {
    const char *names[10];
    const char *regexes[MAX_FAMILY_REGEXES];
    bool nfc, ignore_merges, add_bos;
} family_def;

static const family_def FAMILIES[] = {
    {.names = {"", "default"},
     .regexes = {"[\\p{P}\\$\\+<=>\\^~\\|]+", HR_PRETOK_GPT2_REGEX, "\\p{N}+", "[0-9][0-9][0-9]"}},
    {.names = {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"},
     .regexes = {LLAMA3_REGEX},
     .ignore_merges = true,
     .add_bos = true},
    {.names = {"dbrx", "smaug-bpe", "chatglm-bpe", "glm4"}, .regexes = {LLAMA3_REGEX}},
    {.names = {"deepseek-llm"},
     .regexes = {"[\\r\\n]", DEEPSEEK_LLM_LETTERS,
                 "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+", "\\s+$",
                 CJK_REGEX, "\\p{N}+"}},
    {.names = {"deepseek-coder"}, .regexes = {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", CJK_REGEX, "\\p{N}"}},
    {.names = {"deepseek-v3"},
     .regexes = {"\\p{N}{1,3}", "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+", DEEPSEEK3_REGEX}},
    {.names = {"falcon"}, .regexes = {"[\\p{P}\\$\\+<=>\\^~\\|`]+", HR_PRETOK_GPT2_REGEX, "[0-9][0-9][0-9]"}},
    {.names = {"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"},
     .regexes = {"\\p{N}", HR_PRETOK_GPT2_REGEX}},
    {.names = {"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "jina-v1-en",
               "jina-v2-code", "roberta-bpe"},
     .regexes = {HR_PRETOK_GPT2_REGEX}},
    {.names = {"olmo", "jais", "exaone4", "a.x-4.0", "mellum", "trillion", "granite-docling"},
     .regexes = {HR_PRETOK_GPT2_REGEX}},
    /* gpt-neox-20b's tokenizer, which MPT uses, normalizes to NFC. */
    {.names = {"mpt"}, .regexes = {HR_PRETOK_GPT2_REGEX}, .nfc = true},
    {.names = {"qwen2", "deepseek-r1-qwen", "megrez"}, .regexes = {QWEN2_REGEX}, .nfc = true},
    {.names = {"stablelm2", "hunyuan", "grok-2"}, .regexes = {QWEN2_REGEX}},
    {.names = {"poro-chat", "bloom", "gpt3-finnish"}, .regexes = {BLOOM_REGEX}},
    {.names = {"viking"}, .regexes = {BLOOM_REGEX, "\\p{N}"}},
    {.names = {"tekken"}, .regexes = {TEKKEN_REGEX}, .ignore_merges = true, .add_bos = true},
    {.names = {"chameleon"},
     .regexes = {"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )", "\\p{N}",
                 "[\\p{P}!-/:-@\\[-`{-~]", HR_PRETOK_GPT2_REGEX},
     .add_bos = true},
    {.names = {"gpt-4o", "llama4"}, .regexes = {GPT4O_REGEX}},
    {.names = {"seed-coder"}, .regexes = {SEED_CODER_REGEX}},
    {.names = {"bailingmoe", "bailingmoe2", "llada-moe"}, .regexes = {BAILING_REGEX}},
};

static const family_def *find_family(const char *name) {
    for (size_t f = 0; f < sizeof FAMILIES / sizeof FAMILIES[0]; f++)
        for (size_t i = 0; i < sizeof FAMILIES[f].names / sizeof FAMILIES[f].names[0] && FAMILIES[f].names[i]; i++)
            if (strcmp(FAMILIES[f].names[i], name) == 0) return &FAMILIES[f];
    return NULL;
}

hr_status hr_pretok_from_gguf_name(hr_pretok **out, const char *name, hr_pretok_family *family, hr_error *err) {
    *out = NULL;
    memset(family, 0, sizeof *family);
    const family_def *def = find_family(name);
    if (!def)
        return hr_fail(err, HR_ERR_UNSUPPORTED, "pre-tokenizer '%s' (tokenizer.ggml.pre) is not supported", name);
    hr_pretok *p;
    if (hr_pretok_new(&p, err) != HR_OK) return err->status;
    for (size_t i = 0; i < MAX_FAMILY_REGEXES && def->regexes[i]; i++) {
        if (hr_pretok_add_split(p, def->regexes[i], strlen(def->regexes[i]), false, HR_SPLIT_ISOLATED, false, err) !=
            HR_OK) {
            hr_pretok_free(p);
            return err->status;
        }
    }
    *family = (hr_pretok_family){.known = true, .nfc = def->nfc, .ignore_merges = def->ignore_merges,
                                 .add_bos = def->add_bos};
    *out = p;
    return HR_OK;
}

hr_status hr_pretok_add_bert(hr_pretok *p, hr_error *err) {
    /* Rust's is_ascii_punctuation (every ASCII symbol) plus Unicode punctuation. */
    static const char punct[] = "[\\p{P}!-/:-@\\[-`{-~]";
    if (hr_pretok_add_split(p, "\\s+", 3, false, HR_SPLIT_REMOVED, false, err) != HR_OK) return err->status;
    return hr_pretok_add_split(p, punct, strlen(punct), false, HR_SPLIT_ISOLATED, false, err);
}
