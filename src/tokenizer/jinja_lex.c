#include "tokenizer/jinja_lex.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/jinja_unicode.h"

typedef struct {
    hr_jlex *lx;
    const char *src;
    size_t n, pos;
    int line;           /* line of src[pos] */
    bool line_starting; /* the previous match ended with a newline (for lstrip_blocks) */
    size_t strings_used;
    size_t balance_len;
    char balance[256]; /* closers expected for open ( [ { inside a tag */
    hr_error *err;
} lexer;

static const struct {
    const char *text;
    hr_jtok_type type;
} operators[] = {
    /* two-character operators first: the longest spelling wins, as in Jinja's regex */
    {"//", HR_JT_FLOORDIV}, {"**", HR_JT_POW},   {"==", HR_JT_EQ},      {"!=", HR_JT_NE},      {">=", HR_JT_GTEQ},
    {"<=", HR_JT_LTEQ},     {"+", HR_JT_ADD},    {"-", HR_JT_SUB},      {"/", HR_JT_DIV},      {"*", HR_JT_MUL},
    {"%", HR_JT_MOD},       {"~", HR_JT_TILDE},  {"[", HR_JT_LBRACKET}, {"]", HR_JT_RBRACKET}, {"(", HR_JT_LPAREN},
    {")", HR_JT_RPAREN},    {"{", HR_JT_LBRACE}, {"}", HR_JT_RBRACE},   {">", HR_JT_GT},       {"<", HR_JT_LT},
    {"=", HR_JT_ASSIGN},    {".", HR_JT_DOT},    {":", HR_JT_COLON},    {"|", HR_JT_PIPE},     {",", HR_JT_COMMA},
    {";", HR_JT_SEMICOLON},
};

static bool fail(lexer *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(lexer *L, const char *fmt, ...) {
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    hr_fail(L->err, HR_ERR_FORMAT, "line %d: TemplateSyntaxError: %s", L->line, msg);
    return false;
}

static bool emit(lexer *L, hr_jtok_type type, const char *s, size_t len) {
    hr_jlex *lx = L->lx;
    if (lx->n == lx->cap) {
        size_t cap = lx->cap ? lx->cap * 2 : 256;
        hr_jtok *p = realloc(lx->tok, cap * sizeof *p);
        if (!p) {
            hr_fail(L->err, HR_ERR_NOMEM, "out of memory lexing the template");
            return false;
        }
        lx->tok = p;
        lx->cap = cap;
    }
    lx->tok[lx->n++] = (hr_jtok){.type = (uint8_t)type, .line = L->line, .s = s, .len = len};
    return true;
}

/* Moves pos forward, keeping the line count. */
static void advance(lexer *L, size_t to) {
    for (size_t i = L->pos; i < to; i++)
        if (L->src[i] == '\n') L->line++;
    L->pos = to;
}

/* Length of the Unicode whitespace run at p (Python's \s). */
static size_t space_run(const char *s, size_t n, size_t p) {
    size_t start = p;
    while (p < n) {
        uint32_t cp;
        size_t len = hr_utf8_decode(s + p, n - p, &cp);
        if (!hr_uni_is_space(cp)) break;
        p += len;
    }
    return p - start;
}

/* End of text after str.rstrip(): Unicode whitespace removed from the right. */
static size_t rstrip_end(const char *s, size_t start, size_t end) {
    while (end > start) {
        size_t p = end - 1;
        while (p > start && ((unsigned char)s[p] & 0xC0) == 0x80) p--;
        uint32_t cp;
        size_t len = hr_utf8_decode(s + p, end - p, &cp);
        if (p + len != end || !hr_uni_is_space(cp)) break;
        end = p;
    }
    return end;
}

/* Applies the whitespace control of the tag that follows text [start, end): "-" strips
 * all whitespace before it; otherwise lstrip_blocks drops the whitespace between the
 * line start and a block or comment tag. Returns the new end. */
static size_t control_before_tag(lexer *L, size_t start, size_t end, char sign, bool is_variable) {
    if (sign == '-') return rstrip_end(L->src, start, end);
    if (sign == '+' || is_variable) return end;
    size_t l_pos = start;
    bool newline = false;
    for (size_t i = end; i > start; i--)
        if (L->src[i - 1] == '\n') {
            l_pos = i;
            newline = true;
            break;
        }
    if (!newline && !L->line_starting) return end;
    /* Jinja 3.1.6 strips when the rest of the line is \s+ (any Unicode whitespace) */
    return l_pos + space_run(L->src, end, l_pos) == end ? l_pos : end;
}

static bool emit_data(lexer *L, size_t start, size_t end) {
    if (end <= start) return true;
    int line = L->line;
    bool ok = emit(L, HR_JT_DATA, L->src + start, end - start);
    if (ok) L->lx->tok[L->lx->n - 1].line = line;
    return ok;
}

/* Matches a block end at p: "+%}", "-%}" plus whitespace, or "%}" plus one newline
 * (trim_blocks). Returns the match length or 0. */
static size_t block_end_at(const lexer *L, size_t p, bool allow_plus, bool trim_newline) {
    const char *s = L->src;
    size_t n = L->n;
    if (allow_plus && p + 3 <= n && s[p] == '+' && s[p + 1] == '%' && s[p + 2] == '}') return 3;
    if (p + 3 <= n && s[p] == '-' && s[p + 1] == '%' && s[p + 2] == '}') return 3 + space_run(s, n, p + 3);
    if (p + 2 <= n && s[p] == '%' && s[p + 1] == '}') return 2 + (trim_newline && p + 2 < n && s[p + 2] == '\n');
    return 0;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }

/* Digits with single underscores between them, as (\d+_)*\d+; returns the length. */
static size_t digits_at(const char *s, size_t n, size_t p) {
    size_t start = p;
    if (p >= n || !is_digit(s[p])) return 0;
    while (p < n) {
        while (p < n && is_digit(s[p])) p++;
        if (p + 1 < n && s[p] == '_' && is_digit(s[p + 1])) {
            p++;
            continue;
        }
        break;
    }
    return p - start;
}

/* Copies a number's spelling without underscores into buf. */
static bool number_text(const char *s, size_t len, char *buf, size_t size) {
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '_') continue;
        if (k + 1 >= size) return false;
        buf[k++] = s[i];
    }
    buf[k] = '\0';
    return true;
}

static bool lex_number(lexer *L, size_t p, size_t *end) {
    const char *s = L->src;
    size_t n = L->n;
    size_t intlen = digits_at(s, n, p);
    size_t q = p + intlen;
    bool is_float = false;
    /* a float may not follow a dot (so "x.0.1" indexes twice) */
    if (p == 0 || s[p - 1] != '.') {
        size_t r = q;
        if (r + 1 < n && s[r] == '.' && digits_at(s, n, r + 1)) {
            r += 1 + digits_at(s, n, r + 1);
            is_float = true;
        }
        if (r < n && (s[r] == 'e' || s[r] == 'E')) {
            size_t e = r + 1;
            if (e < n && (s[e] == '+' || s[e] == '-')) e++;
            size_t ed = digits_at(s, n, e);
            if (ed) {
                r = e + ed;
                is_float = true;
            }
        }
        if (is_float) q = r;
    }
    char buf[512];
    if (!number_text(s + p, q - p, buf, sizeof buf)) return fail(L, "number literal too long");
    if (!emit(L, is_float ? HR_JT_FLOAT : HR_JT_INTEGER, s + p, q - p)) return false;
    hr_jtok *t = &L->lx->tok[L->lx->n - 1];
    errno = 0;
    if (is_float) {
        t->f = strtod(buf, NULL);
    } else {
        /* Python's int(text, 0) refuses leading zeros on a non-zero number */
        if (buf[0] == '0' && strspn(buf, "0") != strlen(buf)) return fail(L, "invalid integer literal '%s'", buf);
        long long v = strtoll(buf, NULL, 10);
        if (errno == ERANGE) return fail(L, "integer literal %s does not fit in 64 bits", buf);
        t->i = v;
    }
    *end = q;
    return true;
}

static int hex_value(char c) { return is_digit(c) ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : c - 'A' + 10; }

/* Decodes a string literal's body the way Jinja does (Python's "unicode-escape" after
 * backslash-replacing non-ASCII text) into the strings arena. */
static bool decode_string(lexer *L, const char *s, size_t len, const char **out, size_t *out_len) {
    char *dst = L->lx->strings + L->strings_used;
    size_t k = 0;
    for (size_t i = 0; i < len;) {
        if (s[i] != '\\') {
            dst[k++] = s[i++];
            continue;
        }
        char c = s[i + 1]; /* the lexer only ends a literal on a quote, so i + 1 < len */
        i += 2;
        uint32_t cp;
        int digits = 0;
        switch (c) {
        case '\n': continue;
        case '\\': dst[k++] = '\\'; continue;
        case '\'': dst[k++] = '\''; continue;
        case '"': dst[k++] = '"'; continue;
        case 'a': dst[k++] = '\a'; continue;
        case 'b': dst[k++] = '\b'; continue;
        case 'f': dst[k++] = '\f'; continue;
        case 'n': dst[k++] = '\n'; continue;
        case 'r': dst[k++] = '\r'; continue;
        case 't': dst[k++] = '\t'; continue;
        case 'v': dst[k++] = '\v'; continue;
        case 'x': digits = 2; break;
        case 'u': digits = 4; break;
        case 'U': digits = 8; break;
        case 'N': return fail(L, "\\N{...} escapes in string literals are not supported");
        default:
            if (c >= '0' && c <= '7') {
                cp = (uint32_t)(c - '0');
                for (int d = 0; d < 2 && i < len && s[i] >= '0' && s[i] <= '7'; d++)
                    cp = cp * 8 + (uint32_t)(s[i++] - '0');
                k += hr_utf8_encode(cp, dst + k);
                continue;
            }
            if ((unsigned char)c >= 0x80) {
                /* backslashreplace spelled the character as \xhh, \uhhhh or \Uhhhhhhhh and
                 * this backslash escaped that one, leaving the spelling without it (bytes
                 * that are not UTF-8 have no spelling and stay as they are) */
                i -= 1;
                size_t n = hr_utf8_decode(s + i, len - i, &cp);
                dst[k++] = '\\';
                if (cp >= HR_UTF8_ESCAPE_BASE + 0x80 && cp <= HR_UTF8_ESCAPE_BASE + 0xFF)
                    dst[k++] = s[i];
                else
                    k += (size_t)sprintf(dst + k, cp < 0x100 ? "x%02x" : cp < 0x10000 ? "u%04x" : "U%08x", cp);
                i += n;
                continue;
            }
            /* an unknown escape keeps its backslash */
            dst[k++] = '\\';
            dst[k++] = c;
            continue;
        }
        cp = 0;
        for (int d = 0; d < digits; d++) {
            if (i >= len || !is_hex(s[i])) {
                return fail(L, "truncated \\%c escape in a string literal", c);
            }
            cp = cp * 16 + (uint32_t)hex_value(s[i++]);
        }
        if (cp > 0x10FFFF) return fail(L, "illegal Unicode character in a string literal");
        if (cp >= 0xD800 && cp <= 0xDFFF) return fail(L, "a lone surrogate in a string literal cannot be rendered");
        k += hr_utf8_encode(cp, dst + k);
    }
    *out = dst;
    *out_len = k;
    L->strings_used += k;
    return true;
}

static bool lex_string(lexer *L, size_t p, size_t *end) {
    const char *s = L->src;
    char quote = s[p];
    size_t q = p + 1;
    while (q < L->n && s[q] != quote) q += s[q] == '\\' && q + 1 < L->n ? 2 : 1;
    if (q >= L->n) return fail(L, "unterminated string literal");
    const char *val = NULL;
    size_t len = 0;
    if (!decode_string(L, s + p + 1, q - p - 1, &val, &len)) return false;
    if (!emit(L, HR_JT_STRING, val, len)) return false;
    *end = q + 1;
    return true;
}

static bool lex_operator(lexer *L, size_t p, size_t *end) {
    const char *s = L->src;
    for (size_t k = 0; k < sizeof operators / sizeof operators[0]; k++) {
        size_t len = strlen(operators[k].text);
        if (p + len > L->n || memcmp(s + p, operators[k].text, len) != 0) continue;
        char c = s[p];
        if (c == '(' || c == '[' || c == '{') {
            if (L->balance_len == sizeof L->balance) return fail(L, "brackets nested too deeply");
            L->balance[L->balance_len++] = c == '(' ? ')' : c == '[' ? ']' : '}';
        } else if (c == ')' || c == ']' || c == '}') {
            if (L->balance_len == 0) return fail(L, "unexpected '%c'", c);
            char want = L->balance[--L->balance_len];
            if (want != c) return fail(L, "unexpected '%c', expected '%c'", c, want);
        }
        if (!emit(L, operators[k].type, operators[k].text, len)) return false;
        *end = p + len;
        return true;
    }
    uint32_t cp;
    size_t n = hr_utf8_decode(s + p, L->n - p, &cp);
    return fail(L, "unexpected char '%.*s'", (int)n, s + p);
}

/* Tokens inside {{ }} or {% %} up to and including the end tag. */
static bool lex_tag(lexer *L, bool is_block) {
    const char *s = L->src;
    L->balance_len = 0;
    while (L->pos < L->n) {
        size_t p = L->pos, end = 0;
        if (L->balance_len == 0) {
            size_t m = 0;
            if (is_block) {
                m = block_end_at(L, p, true, true);
            } else if (p + 3 <= L->n && memcmp(s + p, "-}}", 3) == 0) {
                m = 3 + space_run(s, L->n, p + 3);
            } else if (p + 2 <= L->n && memcmp(s + p, "}}", 2) == 0) {
                m = 2;
            }
            if (m) {
                if (!emit(L, is_block ? HR_JT_BLOCK_END : HR_JT_VAR_END, s + p, m)) return false;
                L->line_starting = s[p + m - 1] == '\n';
                advance(L, p + m);
                return true;
            }
        }
        size_t ws = space_run(s, L->n, p);
        char c = s[p];
        if (ws) {
            end = p + ws;
        } else if (is_digit(c)) {
            if (!lex_number(L, p, &end)) return false;
        } else if (is_name_start(c)) {
            end = p + 1;
            while (end < L->n && (is_name_start(s[end]) || is_digit(s[end]))) end++;
            if (!emit(L, HR_JT_NAME, s + p, end - p)) return false;
        } else if (c == '\'' || c == '"') {
            if (!lex_string(L, p, &end)) return false;
        } else if (!lex_operator(L, p, &end)) {
            return false;
        }
        advance(L, end);
    }
    /* the parser reports the missing end tag with the right expectation */
    return true;
}

/* "{%" sign? \s* word \s* — returns the position after the word, or 0. */
static size_t tag_word_at(const lexer *L, size_t p, const char *word, char *sign) {
    const char *s = L->src;
    if (p + 2 > L->n || s[p] != '{' || s[p + 1] != '%') return 0;
    p += 2;
    *sign = 0;
    if (p < L->n && (s[p] == '-' || s[p] == '+')) *sign = s[p++];
    p += space_run(s, L->n, p);
    size_t wl = strlen(word);
    if (p + wl > L->n || memcmp(s + p, word, wl) != 0) return 0;
    p += wl;
    return p + space_run(s, L->n, p);
}

/* {% raw %} ... {% endraw %}: everything between is text. after_word follows "raw". */
static bool lex_raw(lexer *L, size_t after_word) {
    const char *s = L->src;
    size_t m = block_end_at(L, after_word, false, false);
    advance(L, after_word + m);
    L->line_starting = s[after_word + m - 1] == '\n';
    for (size_t p = L->pos; p + 1 < L->n; p++) {
        char sign;
        size_t w = tag_word_at(L, p, "endraw", &sign);
        if (!w) continue;
        size_t e = block_end_at(L, w, true, true);
        if (!e) continue;
        size_t text_end = control_before_tag(L, L->pos, p, sign, false);
        if (!emit_data(L, L->pos, text_end)) return false;
        L->line_starting = s[w + e - 1] == '\n';
        advance(L, w + e);
        return true;
    }
    return fail(L, "Missing end of raw directive");
}

static bool lex_comment(lexer *L) {
    const char *s = L->src;
    for (size_t p = L->pos; p + 1 < L->n; p++) {
        if (s[p] != '#' || s[p + 1] != '}') continue;
        size_t end = p + 2;
        if (p > L->pos && s[p - 1] == '-')
            end += space_run(s, L->n, end);
        else if ((p == L->pos || s[p - 1] != '+') && end < L->n && s[end] == '\n')
            end++;
        L->line_starting = s[end - 1] == '\n';
        advance(L, end);
        return true;
    }
    return fail(L, "Missing end of comment tag");
}

static bool lex_root(lexer *L) {
    const char *s = L->src;
    while (L->pos < L->n) {
        size_t tag = L->pos;
        while (tag + 1 < L->n && !(s[tag] == '{' && (s[tag + 1] == '{' || s[tag + 1] == '%' || s[tag + 1] == '#')))
            tag++;
        if (tag + 1 >= L->n) {
            if (!emit_data(L, L->pos, L->n)) return false;
            advance(L, L->n);
            return true;
        }
        char kind = s[tag + 1];
        char sign = tag + 2 < L->n && (s[tag + 2] == '-' || s[tag + 2] == '+') ? s[tag + 2] : 0;
        char raw_sign;
        size_t raw_word = kind == '%' ? tag_word_at(L, tag, "raw", &raw_sign) : 0;
        if (raw_word && !block_end_at(L, raw_word, false, false)) raw_word = 0;
        size_t text_end = control_before_tag(L, L->pos, tag, sign, kind == '{');
        if (!emit_data(L, L->pos, text_end)) return false;
        advance(L, tag);
        if (raw_word) {
            if (!lex_raw(L, raw_word)) return false;
            continue;
        }
        size_t open_len = 2 + (sign != 0);
        L->line_starting = false;
        if (kind == '#') {
            advance(L, tag + open_len);
            if (!lex_comment(L)) return false;
            continue;
        }
        if (!emit(L, kind == '{' ? HR_JT_VAR_BEGIN : HR_JT_BLOCK_BEGIN, s + tag, open_len)) return false;
        advance(L, tag + open_len);
        if (!lex_tag(L, kind == '%')) return false;
    }
    return true;
}

hr_status hr_jinja_lex(hr_jlex *out, const char *src, size_t n, hr_error *err) {
    memset(out, 0, sizeof *out);
    if (n > (SIZE_MAX - 16) / 3) return hr_fail(err, HR_ERR_RANGE, "the template is too large");
    out->source = malloc(n + 1);
    /* decoded literals never exceed twice their spelling (see decode_string) */
    out->strings = malloc(2 * n + 16);
    if (!out->source || !out->strings) {
        hr_jinja_lex_free(out);
        return hr_fail(err, HR_ERR_NOMEM, "out of memory lexing the template");
    }
    /* \r\n and \r become \n, and one trailing newline is dropped (keep_trailing_newline=False) */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i] == '\r') {
            out->source[k++] = '\n';
            if (i + 1 < n && src[i + 1] == '\n') i++;
        } else {
            out->source[k++] = src[i];
        }
    }
    if (k > 0 && out->source[k - 1] == '\n') k--;
    out->source[k] = '\0';

    lexer L = {.lx = out, .src = out->source, .n = k, .line = 1, .line_starting = true, .err = err};
    if (!lex_root(&L) || !emit(&L, HR_JT_EOF, "", 0)) {
        hr_jinja_lex_free(out);
        return err ? err->status : HR_ERR_FORMAT;
    }
    return HR_OK;
}

void hr_jinja_lex_free(hr_jlex *lx) {
    free(lx->tok);
    free(lx->source);
    free(lx->strings);
    memset(lx, 0, sizeof *lx);
}

const char *hr_jinja_tok_describe(const hr_jtok *t, char *buf, size_t size) {
    switch ((hr_jtok_type)t->type) {
    case HR_JT_EOF: return "end of template";
    case HR_JT_DATA: return "template data / text";
    case HR_JT_VAR_BEGIN: return "begin of print statement";
    case HR_JT_VAR_END: return "end of print statement";
    case HR_JT_BLOCK_BEGIN: return "begin of statement block";
    case HR_JT_BLOCK_END: return "end of statement block";
    case HR_JT_STRING: return "string";
    case HR_JT_INTEGER: return "integer";
    case HR_JT_FLOAT: return "float";
    default: snprintf(buf, size, "%.*s", (int)(t->len < 64 ? t->len : 64), t->s); return buf;
    }
}
