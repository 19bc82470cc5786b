/* tokenizer/jinja_parse — the syntax tree of a chat template and the parser that builds
 * it from jinja_lex tokens, following Jinja2's grammar and operator precedence.
 *
 * Owns: the tree (one arena), the lexer's text the tree points into, and the constants
 * (immortal values). A parsed template is never modified afterwards.
 * Must not: evaluate anything. Anything Jinja2 accepts that the interpreter cannot run
 * faithfully (include, call blocks, recursive loops, unknown filters or tests, ...) is
 * refused here with the line and the construct, so it can never render wrongly. */
#ifndef HR_TOKENIZER_JINJA_PARSE_H
#define HR_TOKENIZER_JINJA_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"
#include "tokenizer/jinja_lex.h"
#include "tokenizer/jinja_value.h"

typedef enum {
    /* expressions */
    HR_JN_CONST,   /* value */
    HR_JN_NAME,    /* name */
    HR_JN_GETATTR, /* a.name */
    HR_JN_GETITEM, /* a[b] */
    HR_JN_SLICE,   /* a:b:c inside a subscript; missing parts are NULL */
    HR_JN_CALL,    /* a(list..., names[i]=list2[i]...) */
    HR_JN_FILTER,  /* a|name(args) with id */
    HR_JN_TEST,    /* a is name(args) with id */
    HR_JN_NEG,
    HR_JN_POS,
    HR_JN_NOT,
    HR_JN_BINOP,  /* a op b, op an hr_jtok_type (+ - * / // % **); id 1: -(a.a ** b) */
    HR_JN_CONCAT, /* list joined with ~ */
    HR_JN_AND,
    HR_JN_OR,
    HR_JN_COMPARE, /* a, then list of HR_JN_OPERAND */
    HR_JN_OPERAND, /* op (hr_jtok_type, or HR_JN_OP_IN / HR_JN_OP_NOTIN) and a */
    HR_JN_COND,    /* b if a else c (c may be NULL) */
    HR_JN_LIST,
    HR_JN_TUPLE,
    HR_JN_DICT,  /* keys in list, values in list2 */
    HR_JN_NSREF, /* assignment target name.attr */
    /* statements */
    HR_JN_TEXT,      /* name/name_len: literal template text */
    HR_JN_OUTPUT,    /* {{ a }} */
    HR_JN_IF,        /* if a: list, else: list2 (elif is a nested IF) */
    HR_JN_FOR,       /* for a in b if c: list, else: list2 */
    HR_JN_SET,       /* a = b */
    HR_JN_SET_BLOCK, /* a = rendered list */
    HR_JN_MACRO,     /* name(names[0..count) = list2 defaults): list */
    HR_JN_BREAK,
    HR_JN_CONTINUE,
    HR_JN_WITH,     /* targets in a (a TUPLE), values in list2, body list */
    HR_JN_SEQUENCE, /* list rendered in place ({% generation %}, {% print a, b %}) */
} hr_jnode_type;

enum { HR_JN_OP_IN = 200, HR_JN_OP_NOTIN = 201 };

typedef struct hr_jnode hr_jnode;

typedef struct {
    hr_jnode **items;
    size_t n;
} hr_jnodes;

struct hr_jnode {
    uint8_t type; /* hr_jnode_type */
    uint8_t op;
    bool catch_varargs, catch_kwargs; /* macros that read varargs / kwargs */
    int line;
    int id; /* filter or test id (jinja_builtins); BINOP: 1 for Jinja's "-c ** x" quirk */
    hr_jnode *a, *b, *c;
    hr_jnodes list, list2;
    const char *name; /* NUL-terminated copy in the arena */
    size_t name_len;
    const char *attr;   /* NSREF attribute */
    const char **names; /* CALL/FILTER/TEST keyword names; MACRO parameter names */
    size_t count;       /* MACRO parameter count */
    hr_jv value;        /* CONST */
};

typedef struct hr_jarena_block hr_jarena_block;

typedef struct {
    hr_jnodes body;
    hr_jlex lex;
    hr_jarena_block *arena;
    hr_jv *consts;
    size_t n_consts, cap_consts;
} hr_jtemplate;

/* Parses template source. Release with hr_jinja_template_free. */
hr_status hr_jinja_parse(hr_jtemplate **out, const char *src, size_t n, hr_error *err);
void hr_jinja_template_free(hr_jtemplate *t);

/* A short phrase naming the construct a node is, for error messages ("filter 'trim'"). */
const char *hr_jinja_node_describe(const hr_jnode *node, char *buf, size_t size);

#endif
