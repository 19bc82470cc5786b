/* tokenizer/jinja_lex — splits chat-template source into tokens exactly as Jinja2's
 * lexer does under Hugging Face's settings (trim_blocks, lstrip_blocks, no kept trailing
 * newline): newline normalization, the "-" / "+" whitespace controls, comments, raw
 * blocks, and Python-style string, number and operator tokens inside tags.
 *
 * Owns: the normalized source and decoded string literals the tokens point into.
 * Must not: interpret token sequences (jinja_parse does) or accept anything Jinja2 would
 * reject at this stage; errors name the line. */
#ifndef HR_TOKENIZER_JINJA_LEX_H
#define HR_TOKENIZER_JINJA_LEX_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef enum {
    HR_JT_EOF,
    HR_JT_DATA, /* template text, whitespace control already applied */
    HR_JT_VAR_BEGIN,
    HR_JT_VAR_END,
    HR_JT_BLOCK_BEGIN,
    HR_JT_BLOCK_END,
    HR_JT_NAME,
    HR_JT_STRING, /* s/len: the decoded value */
    HR_JT_INTEGER,
    HR_JT_FLOAT,
    /* operators */
    HR_JT_ADD,
    HR_JT_SUB,
    HR_JT_DIV,
    HR_JT_FLOORDIV,
    HR_JT_MUL,
    HR_JT_MOD,
    HR_JT_POW,
    HR_JT_TILDE,
    HR_JT_LBRACKET,
    HR_JT_RBRACKET,
    HR_JT_LPAREN,
    HR_JT_RPAREN,
    HR_JT_LBRACE,
    HR_JT_RBRACE,
    HR_JT_EQ,
    HR_JT_NE,
    HR_JT_GT,
    HR_JT_GTEQ,
    HR_JT_LT,
    HR_JT_LTEQ,
    HR_JT_ASSIGN,
    HR_JT_DOT,
    HR_JT_COLON,
    HR_JT_PIPE,
    HR_JT_COMMA,
    HR_JT_SEMICOLON,
} hr_jtok_type;

typedef struct {
    uint8_t type; /* hr_jtok_type */
    int line;
    const char *s; /* DATA, NAME, STRING text; operator spelling */
    size_t len;
    int64_t i; /* INTEGER */
    double f;  /* FLOAT */
} hr_jtok;

typedef struct {
    hr_jtok *tok; /* ends with one HR_JT_EOF */
    size_t n, cap;
    char *source;  /* newline-normalized copy of the template */
    char *strings; /* decoded string literals */
} hr_jlex;

hr_status hr_jinja_lex(hr_jlex *out, const char *src, size_t n, hr_error *err);
void hr_jinja_lex_free(hr_jlex *lx);

/* How Jinja names a token in messages: a name's text, an operator's spelling, or a
 * phrase such as "end of statement block". Writes into buf and returns it. */
const char *hr_jinja_tok_describe(const hr_jtok *t, char *buf, size_t size);

#endif
