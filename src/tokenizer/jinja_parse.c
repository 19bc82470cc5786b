#include "tokenizer/jinja_parse.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/jinja_builtins.h"

/* Expressions and blocks may nest this deep (a parenthesis counts twice); deeper
 * templates are refused rather than risk the C stack. */
enum { MAX_NESTING = 256, MAX_TAGS = MAX_NESTING + 8 };

struct hr_jarena_block {
    hr_jarena_block *next;
    size_t used, cap;
    max_align_t data[];
};

typedef struct {
    hr_jnode **items;
    size_t n, cap;
} nvec;

typedef struct {
    hr_jtemplate *t;
    const hr_jtok *tok;
    size_t pos, ntok;
    hr_error *err;
    bool failed;
    int depth;
    int loop_depth;  /* enclosing for loops (not across a macro): break/continue allowed */
    int scope_depth; /* enclosing for/macro/with/set bodies: macros may not be defined */
    hr_jnode *macro; /* the macro whose body is being parsed */
    const char *tags[MAX_TAGS];
    int ntags;
    const char *const *ends[MAX_TAGS];
    int nends;
} parser;

/* ---------------------------------------------------------------- memory */

static void *arena_alloc(parser *P, size_t size) {
    size = (size + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    hr_jarena_block *b = P->t->arena;
    if (!b || b->cap - b->used < size) {
        size_t cap = size > 16384 ? size : 16384;
        b = malloc(sizeof *b + cap);
        if (!b) {
            if (!P->failed) hr_fail(P->err, HR_ERR_NOMEM, "out of memory parsing the template");
            P->failed = true;
            return NULL;
        }
        b->cap = cap;
        b->used = 0;
        b->next = P->t->arena;
        P->t->arena = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += size;
    memset(p, 0, size);
    return p;
}

static const char *arena_str(parser *P, const char *s, size_t n) {
    char *p = arena_alloc(P, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* Appends x, which may be NULL (a macro parameter without a default). */
static bool nvec_append(parser *P, nvec *v, hr_jnode *x) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        hr_jnode **items = arena_alloc(P, cap * sizeof *items);
        if (!items) return false;
        if (v->n) memcpy(items, v->items, v->n * sizeof *items);
        v->items = items;
        v->cap = cap;
    }
    v->items[v->n++] = x;
    return true;
}

/* Appends x; a NULL x is a failure already reported, passed along. */
static bool nvec_push(parser *P, nvec *v, hr_jnode *x) { return x && nvec_append(P, v, x); }

static hr_jnodes nodes_of(const nvec *v) { return (hr_jnodes){.items = v->items, .n = v->n}; }

static bool add_const(parser *P, hr_jv v) {
    hr_jtemplate *t = P->t;
    if (t->n_consts == t->cap_consts) {
        size_t cap = t->cap_consts ? t->cap_consts * 2 : 16;
        hr_jv *p = realloc(t->consts, cap * sizeof *p);
        if (!p) {
            hr_jv_release(v);
            if (!P->failed) hr_fail(P->err, HR_ERR_NOMEM, "out of memory parsing the template");
            P->failed = true;
            return false;
        }
        t->consts = p;
        t->cap_consts = cap;
    }
    hr_jv_make_immortal(v);
    t->consts[t->n_consts++] = v;
    return true;
}

/* ---------------------------------------------------------------- tokens and errors */

static const hr_jtok *cur(const parser *P) { return &P->tok[P->pos]; }
static const hr_jtok *look(const parser *P) { return &P->tok[P->pos + 1 < P->ntok ? P->pos + 1 : P->pos]; }
static const hr_jtok *next(parser *P) {
    const hr_jtok *t = cur(P);
    if (t->type != HR_JT_EOF) P->pos++;
    return t;
}

static bool tok_is_name(const hr_jtok *t, const char *word) {
    return t->type == HR_JT_NAME && t->len == strlen(word) && memcmp(t->s, word, t->len) == 0;
}

static bool tok_in(const hr_jtok *t, const char *const *words) {
    for (; words && *words; words++)
        if (tok_is_name(t, *words)) return true;
    return false;
}

static void *fail_at(parser *P, int line, hr_status status, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void *fail_at(parser *P, int line, hr_status status, const char *kind, const char *fmt, ...) {
    if (P->failed) return NULL;
    P->failed = true;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    hr_fail(P->err, status, "line %d: %s: %s", line, kind, msg);
    return NULL;
}

#define SYNTAX(P, line, ...) fail_at(P, line, HR_ERR_FORMAT, "TemplateSyntaxError", __VA_ARGS__)
#define UNSUPPORTED(P, line, ...) fail_at(P, line, HR_ERR_UNSUPPORTED, "unsupported construct", __VA_ARGS__)

/* Reports that the current token is not the expected one. */
static const hr_jtok *expected(parser *P, const char *what) {
    const hr_jtok *t = cur(P);
    char buf[80];
    if (t->type == HR_JT_EOF) return SYNTAX(P, t->line, "unexpected end of template, expected '%s'.", what);
    return SYNTAX(P, t->line, "expected token '%s', got '%s'", what, hr_jinja_tok_describe(t, buf, sizeof buf));
}

static const hr_jtok *expect(parser *P, hr_jtok_type type, const char *what) {
    return cur(P)->type == type ? next(P) : expected(P, what);
}

static const hr_jtok *expect_name(parser *P, const char *word) {
    return tok_is_name(cur(P), word) ? next(P) : expected(P, word);
}

static bool enter(parser *P) {
    if (P->failed) return false;
    if (++P->depth > MAX_NESTING) {
        UNSUPPORTED(P, cur(P)->line, "the template nests expressions or blocks more than %d deep", MAX_NESTING);
        return false;
    }
    return true;
}

static hr_jnode *leave(parser *P, hr_jnode *n) {
    P->depth--;
    return P->failed ? NULL : n;
}

static hr_jnode *new_node(parser *P, hr_jnode_type type, int line) {
    hr_jnode *n = arena_alloc(P, sizeof *n);
    if (n) {
        n->type = (uint8_t)type;
        n->line = line;
        n->id = -1;
    }
    return n;
}

static hr_jnode *unary_node(parser *P, hr_jnode_type type, int line, hr_jnode *a) {
    if (!a) return NULL;
    hr_jnode *n = new_node(P, type, line);
    if (n) n->a = a;
    return n;
}

static hr_jnode *binary_node(parser *P, hr_jnode_type type, int op, int line, hr_jnode *a, hr_jnode *b) {
    if (!a || !b) return NULL;
    hr_jnode *n = new_node(P, type, line);
    if (n) {
        n->op = (uint8_t)op;
        n->a = a;
        n->b = b;
    }
    return n;
}

static hr_jnode *name_node(parser *P, const hr_jtok *t) {
    hr_jnode *n = new_node(P, HR_JN_NAME, t->line);
    if (!n || !(n->name = arena_str(P, t->s, t->len))) return NULL;
    n->name_len = t->len;
    return n;
}

static hr_jnode *const_node(parser *P, int line, hr_jv v) {
    hr_jnode *n = new_node(P, HR_JN_CONST, line);
    if (!n) {
        hr_jv_release(v);
        return NULL;
    }
    if (hr_jv_is_heap(v) && !add_const(P, v)) return NULL;
    n->value = v;
    return n;
}

/* ---------------------------------------------------------------- expressions */

static hr_jnode *parse_expression(parser *P, bool with_condexpr);
static hr_jnode *parse_tuple(parser *P, bool simplified, bool with_condexpr, const char *const *extra_end,
                             bool explicit_parentheses);
static hr_jnode *parse_unary(parser *P, bool with_filter);
static hr_jnode *parse_primary(parser *P);
static hr_jnode *parse_postfix(parser *P, hr_jnode *node);
static hr_jnode *parse_filter_expr(parser *P, hr_jnode *node);

static hr_jnode *parse_condexpr(parser *P) {
    if (!enter(P)) return NULL;
    int line = cur(P)->line;
    hr_jnode *e1 = parse_expression(P, false);
    while (e1 && tok_is_name(cur(P), "if")) {
        next(P);
        hr_jnode *cond = new_node(P, HR_JN_COND, line);
        if (!cond) break;
        cond->b = e1;
        cond->a = parse_expression(P, false);
        if (tok_is_name(cur(P), "else")) {
            next(P);
            cond->c = parse_condexpr(P);
        }
        e1 = cond;
        line = cur(P)->line;
    }
    return leave(P, e1);
}

static hr_jnode *parse_math2(parser *P);

/* How Jinja's optimizer sees an expression: folded to a constant, certainly not (it
 * reads a variable or calls something), or depending on the filter or test used. */
enum { FOLDS, NEVER_FOLDS, MAY_FOLD };

static int fold_class(const hr_jnode *n) {
    if (!n) return FOLDS;
    if (n->type == HR_JN_NAME || n->type == HR_JN_CALL) return NEVER_FOLDS;
    int worst = n->type == HR_JN_FILTER || n->type == HR_JN_TEST ? MAY_FOLD : FOLDS;
    const hr_jnode *kids[3] = {n->a, n->b, n->c};
    for (int i = 0; i < 3; i++) {
        int k = fold_class(kids[i]);
        if (k == NEVER_FOLDS || (k == MAY_FOLD && worst == FOLDS)) worst = k;
    }
    const hr_jnodes *lists[2] = {&n->list, &n->list2};
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; i < lists[l]->n; i++) {
            int k = fold_class(lists[l]->items[i]);
            if (k == NEVER_FOLDS || (k == MAY_FOLD && worst == FOLDS)) worst = k;
        }
    return worst;
}

/* Jinja folds "-2" into the constant -2 and then writes "-2 ** x" into Python source,
 * which Python reads as -(2 ** x). When the power itself is not folded that quirk
 * decides the result, so the node is marked (id 1) to reproduce it. */
static hr_jnode *pow_node(parser *P, int line, hr_jnode *left, hr_jnode *right) {
    hr_jnode *n = binary_node(P, HR_JN_BINOP, HR_JT_POW, line, left, right);
    if (!n || left->type != HR_JN_NEG || left->a->type != HR_JN_CONST) return n;
    hr_jv v = left->a->value;
    bool positive =
        (v.kind == HR_JV_INT && v.u.i > 0) || (v.kind == HR_JV_FLOAT && v.u.f > 0) || (v.kind == HR_JV_BOOL && v.u.b);
    if (!positive) return n;
    int k = fold_class(right);
    if (k == MAY_FOLD) return UNSUPPORTED(P, line, "a negative literal raised to a power computed by a filter or test");
    if (k == NEVER_FOLDS) n->id = 1;
    return n;
}

static hr_jnode *parse_pow(parser *P) {
    int line = cur(P)->line;
    hr_jnode *left = parse_unary(P, true);
    while (left && cur(P)->type == HR_JT_POW) {
        next(P);
        hr_jnode *right = parse_unary(P, true);
        left = right ? pow_node(P, line, left, right) : NULL;
        line = cur(P)->line;
    }
    return left;
}

static hr_jnode *parse_math2(parser *P) {
    int line = cur(P)->line;
    hr_jnode *left = parse_pow(P);
    for (;;) {
        int t = cur(P)->type;
        if (!left || (t != HR_JT_MUL && t != HR_JT_DIV && t != HR_JT_FLOORDIV && t != HR_JT_MOD)) break;
        next(P);
        left = binary_node(P, HR_JN_BINOP, t, line, left, parse_pow(P));
        line = cur(P)->line;
    }
    return left;
}

static hr_jnode *parse_concat(parser *P) {
    int line = cur(P)->line;
    hr_jnode *first = parse_math2(P);
    if (!first || cur(P)->type != HR_JT_TILDE) return first;
    nvec args = {0};
    nvec_push(P, &args, first);
    while (!P->failed && cur(P)->type == HR_JT_TILDE) {
        next(P);
        nvec_push(P, &args, parse_math2(P));
    }
    hr_jnode *n = new_node(P, HR_JN_CONCAT, line);
    if (n) n->list = nodes_of(&args);
    return P->failed ? NULL : n;
}

static hr_jnode *parse_math1(parser *P) {
    int line = cur(P)->line;
    hr_jnode *left = parse_concat(P);
    for (;;) {
        int t = cur(P)->type;
        if (!left || (t != HR_JT_ADD && t != HR_JT_SUB)) break;
        next(P);
        left = binary_node(P, HR_JN_BINOP, t, line, left, parse_concat(P));
        line = cur(P)->line;
    }
    return left;
}

static hr_jnode *parse_compare(parser *P) {
    int line = cur(P)->line;
    hr_jnode *expr = parse_math1(P);
    nvec ops = {0};
    while (expr && !P->failed) {
        const hr_jtok *t = cur(P);
        int op;
        if (t->type == HR_JT_EQ || t->type == HR_JT_NE || t->type == HR_JT_LT || t->type == HR_JT_LTEQ ||
            t->type == HR_JT_GT || t->type == HR_JT_GTEQ) {
            op = t->type;
            next(P);
        } else if (tok_is_name(t, "in")) {
            op = HR_JN_OP_IN;
            next(P);
        } else if (tok_is_name(t, "not") && tok_is_name(look(P), "in")) {
            op = HR_JN_OP_NOTIN;
            next(P);
            next(P);
        } else {
            break;
        }
        int opline = t->line;
        hr_jnode *operand = unary_node(P, HR_JN_OPERAND, opline, parse_math1(P));
        if (operand) operand->op = (uint8_t)op;
        nvec_push(P, &ops, operand);
        line = cur(P)->line;
    }
    if (!expr || P->failed || ops.n == 0) return P->failed ? NULL : expr;
    hr_jnode *n = new_node(P, HR_JN_COMPARE, line);
    if (n) {
        n->a = expr;
        n->list = nodes_of(&ops);
    }
    return n;
}

static hr_jnode *parse_not(parser *P) {
    if (tok_is_name(cur(P), "not")) {
        int line = next(P)->line;
        if (!enter(P)) return NULL;
        return leave(P, unary_node(P, HR_JN_NOT, line, parse_not(P)));
    }
    return parse_compare(P);
}

static hr_jnode *parse_and(parser *P) {
    int line = cur(P)->line;
    hr_jnode *left = parse_not(P);
    while (left && tok_is_name(cur(P), "and")) {
        next(P);
        left = binary_node(P, HR_JN_AND, 0, line, left, parse_not(P));
        line = cur(P)->line;
    }
    return left;
}

static hr_jnode *parse_or(parser *P) {
    int line = cur(P)->line;
    hr_jnode *left = parse_and(P);
    while (left && tok_is_name(cur(P), "or")) {
        next(P);
        left = binary_node(P, HR_JN_OR, 0, line, left, parse_and(P));
        line = cur(P)->line;
    }
    return left;
}

static hr_jnode *parse_expression(parser *P, bool with_condexpr) {
    return with_condexpr ? parse_condexpr(P) : parse_or(P);
}

static hr_jnode *parse_unary(parser *P, bool with_filter) {
    if (!enter(P)) return NULL;
    const hr_jtok *t = cur(P);
    hr_jnode *node;
    if (t->type == HR_JT_SUB || t->type == HR_JT_ADD) {
        next(P);
        node = unary_node(P, t->type == HR_JT_SUB ? HR_JN_NEG : HR_JN_POS, t->line, parse_unary(P, false));
    } else {
        node = parse_primary(P);
    }
    node = parse_postfix(P, node);
    if (with_filter) node = parse_filter_expr(P, node);
    return leave(P, node);
}

static hr_jnode *parse_sequence_literal(parser *P, bool is_dict) {
    int line = next(P)->line;
    hr_jtok_type close = is_dict ? HR_JT_RBRACE : HR_JT_RBRACKET;
    nvec keys = {0}, values = {0};
    while (!P->failed && cur(P)->type != close) {
        if (keys.n && !expect(P, HR_JT_COMMA, ",")) break;
        if (cur(P)->type == close) break;
        if (!nvec_push(P, &keys, parse_expression(P, true))) break;
        if (is_dict && (!expect(P, HR_JT_COLON, ":") || !nvec_push(P, &values, parse_expression(P, true)))) break;
    }
    if (P->failed || !expect(P, close, is_dict ? "}" : "]")) return NULL;
    hr_jnode *n = new_node(P, is_dict ? HR_JN_DICT : HR_JN_LIST, line);
    if (n) {
        n->list = nodes_of(&keys);
        n->list2 = nodes_of(&values);
    }
    return n;
}

static hr_jnode *parse_primary(parser *P) {
    if (P->failed) return NULL;
    const hr_jtok *t = cur(P);
    switch (t->type) {
    case HR_JT_NAME:
        next(P);
        if (tok_is_name(t, "true") || tok_is_name(t, "True")) return const_node(P, t->line, hr_jv_bool(true));
        if (tok_is_name(t, "false") || tok_is_name(t, "False")) return const_node(P, t->line, hr_jv_bool(false));
        if (tok_is_name(t, "none") || tok_is_name(t, "None")) return const_node(P, t->line, hr_jv_none());
        /* a macro that reads varargs or kwargs accepts extra arguments */
        if (P->macro && tok_is_name(t, "varargs")) P->macro->catch_varargs = true;
        if (P->macro && tok_is_name(t, "kwargs")) P->macro->catch_kwargs = true;
        return name_node(P, t);
    case HR_JT_STRING: {
        /* adjacent literals concatenate, as in Python */
        size_t total = 0;
        size_t p = P->pos;
        for (; P->tok[p].type == HR_JT_STRING; p++) total += P->tok[p].len;
        char *buf = malloc(total + 1);
        if (!buf) return fail_at(P, t->line, HR_ERR_NOMEM, "error", "out of memory");
        size_t k = 0;
        while (cur(P)->type == HR_JT_STRING) {
            memcpy(buf + k, cur(P)->s, cur(P)->len);
            k += cur(P)->len;
            next(P);
        }
        hr_jv v;
        bool ok = hr_jv_new_string(&v, buf, k);
        free(buf);
        if (!ok) return fail_at(P, t->line, HR_ERR_NOMEM, "error", "out of memory");
        return const_node(P, t->line, v);
    }
    case HR_JT_INTEGER: next(P); return const_node(P, t->line, hr_jv_int(t->i));
    case HR_JT_FLOAT: next(P); return const_node(P, t->line, hr_jv_float(t->f));
    case HR_JT_LPAREN: {
        next(P);
        hr_jnode *n = parse_tuple(P, false, true, NULL, true);
        if (!expect(P, HR_JT_RPAREN, ")")) return NULL;
        return n;
    }
    case HR_JT_LBRACKET: return parse_sequence_literal(P, false);
    case HR_JT_LBRACE: return parse_sequence_literal(P, true);
    default: {
        char buf[80];
        return SYNTAX(P, t->line, "unexpected '%s'", hr_jinja_tok_describe(t, buf, sizeof buf));
    }
    }
}

static bool is_tuple_end(const parser *P, const char *const *extra_end) {
    int t = cur(P)->type;
    return t == HR_JT_VAR_END || t == HR_JT_BLOCK_END || t == HR_JT_RPAREN || tok_in(cur(P), extra_end);
}

static hr_jnode *parse_tuple(parser *P, bool simplified, bool with_condexpr, const char *const *extra_end,
                             bool explicit_parentheses) {
    if (P->failed) return NULL;
    int line = cur(P)->line;
    nvec items = {0};
    bool is_tuple = false;
    while (!P->failed) {
        if (items.n && !expect(P, HR_JT_COMMA, ",")) break;
        if (is_tuple_end(P, extra_end)) break;
        if (!nvec_push(P, &items, simplified ? parse_primary(P) : parse_expression(P, with_condexpr))) break;
        if (cur(P)->type != HR_JT_COMMA) break;
        is_tuple = true;
        line = cur(P)->line;
    }
    if (P->failed) return NULL;
    if (!is_tuple) {
        if (items.n) return items.items[0];
        if (!explicit_parentheses) {
            char buf[80];
            return SYNTAX(P, cur(P)->line, "Expected an expression, got '%s'",
                          hr_jinja_tok_describe(cur(P), buf, sizeof buf));
        }
    }
    hr_jnode *n = new_node(P, HR_JN_TUPLE, line);
    if (n) n->list = nodes_of(&items);
    return n;
}

/* a:b:c inside brackets, or a plain expression. */
static hr_jnode *parse_subscribed(parser *P) {
    int line = cur(P)->line;
    hr_jnode *parts[3] = {NULL, NULL, NULL};
    if (cur(P)->type == HR_JT_COLON) {
        next(P);
    } else {
        hr_jnode *node = parse_expression(P, true);
        if (!node || cur(P)->type != HR_JT_COLON) return node;
        next(P);
        parts[0] = node;
    }
    int t = cur(P)->type;
    if (t != HR_JT_COLON && t != HR_JT_RBRACKET && t != HR_JT_COMMA) parts[1] = parse_expression(P, true);
    if (cur(P)->type == HR_JT_COLON) {
        next(P);
        t = cur(P)->type;
        if (t != HR_JT_RBRACKET && t != HR_JT_COMMA) parts[2] = parse_expression(P, true);
    }
    if (P->failed) return NULL;
    hr_jnode *n = new_node(P, HR_JN_SLICE, line);
    if (n) {
        n->a = parts[0];
        n->b = parts[1];
        n->c = parts[2];
    }
    return n;
}

/* ( args ) into node->list (positional) and node->list2 / node->names (keywords). */
static bool parse_call_args(parser *P, hr_jnode *node) {
    const hr_jtok *open = expect(P, HR_JT_LPAREN, "(");
    if (!open) return false;
    nvec args = {0}, kwvals = {0};
    const char *kwnames[64];
    bool require_comma = false;
    while (!P->failed && cur(P)->type != HR_JT_RPAREN) {
        if (require_comma) {
            if (!expect(P, HR_JT_COMMA, ",")) return false;
            if (cur(P)->type == HR_JT_RPAREN) break;
        }
        const hr_jtok *t = cur(P);
        if (t->type == HR_JT_MUL || t->type == HR_JT_POW) {
            UNSUPPORTED(P, t->line, "'%s' argument unpacking in a call", t->type == HR_JT_MUL ? "*" : "**");
            return false;
        }
        if (t->type == HR_JT_NAME && look(P)->type == HR_JT_ASSIGN) {
            if (kwvals.n == sizeof kwnames / sizeof kwnames[0]) {
                UNSUPPORTED(P, t->line, "more than 64 keyword arguments in one call");
                return false;
            }
            kwnames[kwvals.n] = arena_str(P, t->s, t->len);
            next(P);
            next(P);
            if (!nvec_push(P, &kwvals, parse_expression(P, true))) return false;
        } else {
            if (kwvals.n) {
                SYNTAX(P, open->line, "invalid syntax for function call expression");
                return false;
            }
            if (!nvec_push(P, &args, parse_expression(P, true))) return false;
        }
        require_comma = true;
    }
    if (P->failed || !expect(P, HR_JT_RPAREN, ")")) return false;
    node->list = nodes_of(&args);
    node->list2 = nodes_of(&kwvals);
    if (kwvals.n) {
        const char **names = arena_alloc(P, kwvals.n * sizeof *names);
        if (!names) return false;
        memcpy(names, kwnames, kwvals.n * sizeof *names);
        node->names = names;
    }
    return true;
}

static hr_jnode *parse_call(parser *P, hr_jnode *callee) {
    hr_jnode *n = unary_node(P, HR_JN_CALL, cur(P)->line, callee);
    return n && parse_call_args(P, n) ? n : NULL;
}

/* name or dotted.name after | or is; returns the arena copy. */
static const char *dotted_name(parser *P) {
    const hr_jtok *t = expect(P, HR_JT_NAME, "name");
    if (!t) return NULL;
    char buf[256];
    size_t k = (size_t)snprintf(buf, sizeof buf, "%.*s", (int)t->len, t->s);
    while (cur(P)->type == HR_JT_DOT && k < sizeof buf) {
        next(P);
        const hr_jtok *part = expect(P, HR_JT_NAME, "name");
        if (!part) return NULL;
        k += (size_t)snprintf(buf + k, sizeof buf - k, ".%.*s", (int)part->len, part->s);
    }
    if (k >= sizeof buf) k = sizeof buf - 1;
    return arena_str(P, buf, k);
}

static hr_jnode *parse_filter(parser *P, hr_jnode *node) {
    while (node && cur(P)->type == HR_JT_PIPE) {
        next(P);
        int line = cur(P)->line;
        const char *name = dotted_name(P);
        if (!name) return NULL;
        int id = hr_jinja_filter_id(name);
        if (id == -1) return fail_at(P, line, HR_ERR_FORMAT, "TemplateAssertionError", "No filter named '%s'.", name);
        if (id == -2) return UNSUPPORTED(P, line, "the '%s' filter is not supported", name);
        hr_jnode *f = new_node(P, HR_JN_FILTER, line);
        if (!f) return NULL;
        f->a = node;
        f->name = name;
        f->id = id;
        if (cur(P)->type == HR_JT_LPAREN && !parse_call_args(P, f)) return NULL;
        node = f;
    }
    return node;
}

static hr_jnode *parse_test(parser *P, hr_jnode *node) {
    int line = next(P)->line; /* "is" */
    bool negated = false;
    if (tok_is_name(cur(P), "not")) {
        next(P);
        negated = true;
    }
    const char *name = dotted_name(P);
    if (!name) return NULL;
    int id = hr_jinja_test_id(name);
    if (id == -1) return fail_at(P, line, HR_ERR_FORMAT, "TemplateAssertionError", "No test named '%s'.", name);
    if (id == -2) return UNSUPPORTED(P, line, "the '%s' test is not supported", name);
    hr_jnode *t = new_node(P, HR_JN_TEST, line);
    if (!t) return NULL;
    t->a = node;
    t->name = name;
    t->id = id;
    const hr_jtok *c = cur(P);
    static const char *const not_an_argument[] = {"else", "or", "and", NULL};
    if (c->type == HR_JT_LPAREN) {
        if (!parse_call_args(P, t)) return NULL;
    } else if ((c->type == HR_JT_NAME || c->type == HR_JT_STRING || c->type == HR_JT_INTEGER ||
                c->type == HR_JT_FLOAT || c->type == HR_JT_LBRACKET || c->type == HR_JT_LBRACE) &&
               !tok_in(c, not_an_argument)) {
        if (tok_is_name(c, "is")) return SYNTAX(P, c->line, "You cannot chain multiple tests with is");
        nvec args = {0};
        if (!nvec_push(P, &args, parse_postfix(P, parse_primary(P)))) return NULL;
        t->list = nodes_of(&args);
    }
    return negated ? unary_node(P, HR_JN_NOT, line, t) : t;
}

static hr_jnode *parse_subscript(parser *P, hr_jnode *node) {
    const hr_jtok *t = next(P);
    if (t->type == HR_JT_DOT) {
        const hr_jtok *attr = next(P);
        if (attr->type == HR_JT_NAME) {
            hr_jnode *n = new_node(P, HR_JN_GETATTR, t->line);
            if (!n || !(n->name = arena_str(P, attr->s, attr->len))) return NULL;
            n->name_len = attr->len;
            n->a = node;
            return n;
        }
        if (attr->type != HR_JT_INTEGER) return SYNTAX(P, attr->line, "expected name or number");
        return binary_node(P, HR_JN_GETITEM, 0, t->line, node, const_node(P, attr->line, hr_jv_int(attr->i)));
    }
    nvec args = {0};
    while (!P->failed && cur(P)->type != HR_JT_RBRACKET) {
        if (args.n && !expect(P, HR_JT_COMMA, ",")) return NULL;
        if (!nvec_push(P, &args, parse_subscribed(P))) return NULL;
    }
    if (P->failed || !expect(P, HR_JT_RBRACKET, "]")) return NULL;
    if (args.n == 0) return SYNTAX(P, t->line, "expected subscript expression");
    hr_jnode *index = args.items[0];
    if (args.n > 1) {
        index = new_node(P, HR_JN_TUPLE, t->line);
        if (!index) return NULL;
        index->list = nodes_of(&args);
    }
    return binary_node(P, HR_JN_GETITEM, 0, t->line, node, index);
}

static hr_jnode *parse_postfix(parser *P, hr_jnode *node) {
    while (node && !P->failed) {
        int t = cur(P)->type;
        if (t == HR_JT_DOT || t == HR_JT_LBRACKET)
            node = parse_subscript(P, node);
        else if (t == HR_JT_LPAREN)
            node = parse_call(P, node);
        else
            break;
    }
    return P->failed ? NULL : node;
}

static hr_jnode *parse_filter_expr(parser *P, hr_jnode *node) {
    while (node && !P->failed) {
        const hr_jtok *t = cur(P);
        if (t->type == HR_JT_PIPE)
            node = parse_filter(P, node);
        else if (tok_is_name(t, "is"))
            node = parse_test(P, node);
        else if (t->type == HR_JT_LPAREN)
            node = parse_call(P, node);
        else
            break;
    }
    return P->failed ? NULL : node;
}

/* ---------------------------------------------------------------- statements */

static bool can_assign(const hr_jnode *n) {
    if (n->type == HR_JN_NAME) {
        static const char *const reserved[] = {"true", "false", "none", "True", "False", "None"};
        for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
            if (!strcmp(n->name, reserved[i])) return false;
        return true;
    }
    if (n->type == HR_JN_TUPLE) {
        for (size_t i = 0; i < n->list.n; i++)
            if (!can_assign(n->list.items[i])) return false;
        return true;
    }
    return n->type == HR_JN_NSREF;
}

static hr_jnode *parse_assign_target(parser *P, bool name_only, const char *const *extra_end, bool with_namespace) {
    const hr_jtok *t = cur(P);
    hr_jnode *target;
    if (with_namespace && look(P)->type == HR_JT_DOT) {
        const hr_jtok *ns = expect(P, HR_JT_NAME, "name");
        if (!ns) return NULL;
        next(P);
        const hr_jtok *attr = expect(P, HR_JT_NAME, "name");
        if (!attr) return NULL;
        target = new_node(P, HR_JN_NSREF, ns->line);
        if (!target) return NULL;
        target->name = arena_str(P, ns->s, ns->len);
        target->name_len = ns->len;
        target->attr = arena_str(P, attr->s, attr->len);
    } else if (name_only) {
        if (!expect(P, HR_JT_NAME, "name")) return NULL;
        target = name_node(P, t);
    } else {
        target = parse_tuple(P, true, true, extra_end, false);
    }
    if (!target || P->failed) return NULL;
    if (!can_assign(target)) {
        static const char *const kinds[] = {[HR_JN_CONST] = "const", [HR_JN_TUPLE] = "tuple"};
        const char *kind =
            target->type < sizeof kinds / sizeof kinds[0] && kinds[target->type] ? kinds[target->type] : "expression";
        return SYNTAX(P, target->line, "can't assign to '%s'", kind);
    }
    return target;
}

static bool subparse(parser *P, nvec *body, const char *const *end_words);

static void describe_ends(const parser *P, char *buf, size_t size) {
    buf[0] = '\0';
    if (P->nends == 0) return;
    size_t k = (size_t)snprintf(buf, size, " Jinja was looking for the following tags: ");
    const char *const *words = P->ends[P->nends - 1];
    for (int i = 0; words[i] && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s'%s'", i ? " or " : "", words[i]);
    if (k < size) k += (size_t)snprintf(buf + k, size - k, ".");
    if (P->ntags && k < size)
        snprintf(buf + k, size - k, " The innermost block that needs to be closed is '%s'.", P->tags[P->ntags - 1]);
}

/* Optional ':' then the end of the opening tag, then statements up to one of end_words
 * (left as the current token; dropped when drop_needle). */
static bool parse_statements(parser *P, const char *const *end_words, bool drop_needle, nvec *body) {
    if (cur(P)->type == HR_JT_COLON) next(P);
    if (!expect(P, HR_JT_BLOCK_END, "end of statement block")) return false;
    if (!subparse(P, body, end_words)) return false;
    if (cur(P)->type == HR_JT_EOF) {
        P->ends[P->nends++] = end_words;
        char hint[300];
        describe_ends(P, hint, sizeof hint);
        P->nends--;
        SYNTAX(P, cur(P)->line, "Unexpected end of template.%s", hint);
        return false;
    }
    if (drop_needle) next(P);
    return true;
}

static hr_jnode *parse_for(parser *P) {
    static const char *const in_word[] = {"in", NULL}, *const recursive_word[] = {"recursive", NULL};
    static const char *const body_end[] = {"endfor", "else", NULL}, *const else_end[] = {"endfor", NULL};
    int line = next(P)->line;
    hr_jnode *n = new_node(P, HR_JN_FOR, line);
    if (!n || !(n->a = parse_assign_target(P, false, in_word, false)) || !expect_name(P, "in")) return NULL;
    if (!(n->b = parse_tuple(P, false, false, recursive_word, false))) return NULL;
    if (tok_is_name(cur(P), "if")) {
        next(P);
        if (!(n->c = parse_expression(P, true))) return NULL;
    }
    if (tok_is_name(cur(P), "recursive")) return UNSUPPORTED(P, cur(P)->line, "recursive for loops");
    nvec body = {0}, else_body = {0};
    P->loop_depth++;
    P->scope_depth++;
    bool ok = parse_statements(P, body_end, false, &body);
    P->loop_depth--;
    if (ok && tok_is_name(next(P), "else")) ok = parse_statements(P, else_end, true, &else_body);
    P->scope_depth--;
    if (!ok) return NULL;
    n->list = nodes_of(&body);
    n->list2 = nodes_of(&else_body);
    return n;
}

static hr_jnode *parse_if(parser *P) {
    static const char *const body_end[] = {"elif", "else", "endif", NULL}, *const else_end[] = {"endif", NULL};
    hr_jnode *result = new_node(P, HR_JN_IF, next(P)->line), *node = result;
    while (node) {
        nvec body = {0};
        if (!(node->a = parse_tuple(P, false, false, NULL, false)) || !parse_statements(P, body_end, false, &body))
            return NULL;
        node->list = nodes_of(&body);
        const hr_jtok *t = next(P);
        if (tok_is_name(t, "elif")) {
            hr_jnode *elif = new_node(P, HR_JN_IF, cur(P)->line);
            nvec chain = {0};
            if (!nvec_push(P, &chain, elif)) return NULL;
            node->list2 = nodes_of(&chain);
            node = elif;
            continue;
        }
        if (tok_is_name(t, "else")) {
            nvec else_body = {0};
            if (!parse_statements(P, else_end, true, &else_body)) return NULL;
            node->list2 = nodes_of(&else_body);
        }
        break;
    }
    return P->failed ? NULL : result;
}

static hr_jnode *parse_set(parser *P) {
    static const char *const end[] = {"endset", NULL};
    int line = next(P)->line;
    hr_jnode *target = parse_assign_target(P, false, NULL, true);
    if (!target) return NULL;
    if (cur(P)->type == HR_JT_ASSIGN) {
        next(P);
        return binary_node(P, HR_JN_SET, 0, line, target, parse_tuple(P, false, true, NULL, false));
    }
    if (cur(P)->type == HR_JT_PIPE) return UNSUPPORTED(P, cur(P)->line, "a filter on a {%% set %%} block");
    hr_jnode *n = new_node(P, HR_JN_SET_BLOCK, line);
    nvec body = {0};
    P->scope_depth++;
    bool ok = n && parse_statements(P, end, true, &body);
    P->scope_depth--;
    if (!ok) return NULL;
    n->a = target;
    n->list = nodes_of(&body);
    return n;
}

static hr_jnode *parse_macro(parser *P) {
    static const char *const end[] = {"endmacro", NULL};
    int line = next(P)->line;
    if (P->scope_depth) return UNSUPPORTED(P, line, "a macro defined inside a for loop, macro, with or set block");
    hr_jnode *n = new_node(P, HR_JN_MACRO, line), *name = parse_assign_target(P, true, NULL, false);
    if (!n || !name || !expect(P, HR_JT_LPAREN, "(")) return NULL;
    n->name = name->name;
    n->name_len = name->name_len;
    nvec params = {0}, defaults = {0};
    bool any_default = false;
    while (!P->failed && cur(P)->type != HR_JT_RPAREN) {
        if (params.n && !expect(P, HR_JT_COMMA, ",")) return NULL;
        hr_jnode *param = parse_assign_target(P, true, NULL, false);
        if (!nvec_push(P, &params, param)) return NULL;
        hr_jnode *def = NULL;
        if (cur(P)->type == HR_JT_ASSIGN) {
            next(P);
            if (!(def = parse_expression(P, true))) return NULL;
            any_default = true;
        } else if (any_default) {
            return SYNTAX(P, param->line, "non-default argument follows default argument");
        }
        /* one slot per parameter; NULL when it has no default */
        if (!nvec_append(P, &defaults, def)) return NULL;
    }
    if (P->failed || !expect(P, HR_JT_RPAREN, ")")) return NULL;
    const char **names = arena_alloc(P, (params.n ? params.n : 1) * sizeof *names);
    if (!names) return NULL;
    for (size_t i = 0; i < params.n; i++) names[i] = params.items[i]->name;
    n->names = names;
    n->count = params.n;
    n->list2 = nodes_of(&defaults);
    nvec body = {0};
    int saved_loops = P->loop_depth;
    P->loop_depth = 0;
    P->scope_depth++;
    P->macro = n;
    bool ok = parse_statements(P, end, true, &body);
    P->macro = NULL;
    P->scope_depth--;
    P->loop_depth = saved_loops;
    if (!ok) return NULL;
    n->list = nodes_of(&body);
    return n;
}

static hr_jnode *parse_with(parser *P) {
    static const char *const end[] = {"endwith", NULL};
    int line = next(P)->line;
    hr_jnode *n = new_node(P, HR_JN_WITH, line), *targets = new_node(P, HR_JN_TUPLE, line);
    if (!n || !targets) return NULL;
    nvec tv = {0}, values = {0};
    while (!P->failed && cur(P)->type != HR_JT_BLOCK_END) {
        if (tv.n && !expect(P, HR_JT_COMMA, ",")) return NULL;
        if (!nvec_push(P, &tv, parse_assign_target(P, false, NULL, false)) || !expect(P, HR_JT_ASSIGN, "=") ||
            !nvec_push(P, &values, parse_expression(P, true)))
            return NULL;
    }
    nvec body = {0};
    P->scope_depth++;
    bool ok = parse_statements(P, end, true, &body);
    P->scope_depth--;
    if (!ok) return NULL;
    targets->list = nodes_of(&tv);
    n->a = targets;
    n->list2 = nodes_of(&values);
    n->list = nodes_of(&body);
    return n;
}

static hr_jnode *parse_print(parser *P) {
    int line = next(P)->line;
    nvec outputs = {0};
    while (!P->failed && cur(P)->type != HR_JT_BLOCK_END) {
        if (outputs.n && !expect(P, HR_JT_COMMA, ",")) return NULL;
        if (!nvec_push(P, &outputs, unary_node(P, HR_JN_OUTPUT, cur(P)->line, parse_expression(P, true)))) return NULL;
    }
    hr_jnode *n = new_node(P, HR_JN_SEQUENCE, line);
    if (n) n->list = nodes_of(&outputs);
    return n;
}

static hr_jnode *parse_generation(parser *P) {
    static const char *const end[] = {"endgeneration", NULL};
    hr_jnode *n = new_node(P, HR_JN_SEQUENCE, next(P)->line);
    nvec body = {0};
    if (!n || !parse_statements(P, end, true, &body)) return NULL;
    n->list = nodes_of(&body);
    return n;
}

static hr_jnode *parse_loop_control(parser *P, hr_jnode_type type) {
    const hr_jtok *t = next(P);
    if (P->loop_depth == 0) return SYNTAX(P, t->line, "'%.*s' outside of a for loop", (int)t->len, t->s);
    return new_node(P, type, t->line);
}

static hr_jnode *parse_statement(parser *P) {
    const hr_jtok *t = cur(P);
    if (t->type != HR_JT_NAME) return SYNTAX(P, t->line, "tag name expected");
    static const char *const refused[] = {"block", "extends", "include",    "import", "from",
                                          "call",  "filter",  "autoescape", NULL};
    if (tok_in(t, refused)) return UNSUPPORTED(P, t->line, "the '{%% %.*s %%}' tag", (int)t->len, t->s);
    static const struct {
        const char *word;
        hr_jnode *(*parse)(parser *);
    } statements[] = {
        {"for", parse_for},
        {"if", parse_if},
        {"set", parse_set},
        {"macro", parse_macro},
        {"with", parse_with},
        {"print", parse_print},
        {"generation", parse_generation},
    };
    for (size_t i = 0; i < sizeof statements / sizeof statements[0]; i++) {
        if (!tok_is_name(t, statements[i].word)) continue;
        if (P->ntags == MAX_TAGS) return UNSUPPORTED(P, t->line, "blocks nested too deeply");
        if (!enter(P)) return NULL;
        P->tags[P->ntags++] = statements[i].word;
        hr_jnode *n = statements[i].parse(P);
        P->ntags--;
        return leave(P, n);
    }
    if (tok_is_name(t, "break")) return parse_loop_control(P, HR_JN_BREAK);
    if (tok_is_name(t, "continue")) return parse_loop_control(P, HR_JN_CONTINUE);
    char hint[300];
    describe_ends(P, hint, sizeof hint);
    return SYNTAX(P, t->line, "Encountered unknown tag '%.*s'.%s", (int)t->len, t->s, hint);
}

static bool subparse(parser *P, nvec *body, const char *const *end_words) {
    if (end_words) {
        if (P->nends == MAX_TAGS) return UNSUPPORTED(P, cur(P)->line, "blocks nested too deeply"), false;
        P->ends[P->nends++] = end_words;
    }
    while (!P->failed && cur(P)->type != HR_JT_EOF) {
        const hr_jtok *t = cur(P);
        if (t->type == HR_JT_DATA) {
            hr_jnode *n = new_node(P, HR_JN_TEXT, t->line);
            if (n) {
                n->name = t->s;
                n->name_len = t->len;
            }
            nvec_push(P, body, n);
            next(P);
        } else if (t->type == HR_JT_VAR_BEGIN) {
            next(P);
            hr_jnode *n = unary_node(P, HR_JN_OUTPUT, t->line, parse_tuple(P, false, true, NULL, false));
            if (!n || !expect(P, HR_JT_VAR_END, "end of print statement")) break;
            nvec_push(P, body, n);
        } else if (t->type == HR_JT_BLOCK_BEGIN) {
            next(P);
            if (tok_in(cur(P), end_words)) break;
            hr_jnode *n = parse_statement(P);
            if (!n || !expect(P, HR_JT_BLOCK_END, "end of statement block")) break;
            nvec_push(P, body, n);
        } else {
            char buf[80];
            SYNTAX(P, t->line, "unexpected '%s'", hr_jinja_tok_describe(t, buf, sizeof buf));
        }
    }
    if (end_words) P->nends--;
    return !P->failed;
}

hr_status hr_jinja_parse(hr_jtemplate **out, const char *src, size_t n, hr_error *err) {
    *out = NULL;
    hr_jtemplate *t = calloc(1, sizeof *t);
    if (!t) return hr_fail(err, HR_ERR_NOMEM, "out of memory parsing the template");
    hr_status st = hr_jinja_lex(&t->lex, src, n, err);
    if (st != HR_OK) {
        free(t);
        return st;
    }
    parser P = {.t = t, .tok = t->lex.tok, .ntok = t->lex.n, .err = err};
    nvec body = {0};
    bool ok = subparse(&P, &body, NULL);
    /* the tree points into the source and decoded literals, not into the token array */
    free(t->lex.tok);
    t->lex.tok = NULL;
    t->lex.n = t->lex.cap = 0;
    if (!ok) {
        hr_jinja_template_free(t);
        return err ? err->status : HR_ERR_FORMAT;
    }
    t->body = nodes_of(&body);
    *out = t;
    return HR_OK;
}

void hr_jinja_template_free(hr_jtemplate *t) {
    if (!t) return;
    for (size_t i = 0; i < t->n_consts; i++) hr_jv_free_immortal(t->consts[i]);
    free(t->consts);
    while (t->arena) {
        hr_jarena_block *next_block = t->arena->next;
        free(t->arena);
        t->arena = next_block;
    }
    hr_jinja_lex_free(&t->lex);
    free(t);
}

const char *hr_jinja_node_describe(const hr_jnode *n, char *buf, size_t size) {
    switch ((hr_jnode_type)n->type) {
    case HR_JN_FILTER: snprintf(buf, size, "filter '%s'", n->name); break;
    case HR_JN_TEST: snprintf(buf, size, "test '%s'", n->name); break;
    case HR_JN_CALL:
        if (n->a->type == HR_JN_NAME)
            snprintf(buf, size, "call to '%s'", n->a->name);
        else if (n->a->type == HR_JN_GETATTR)
            snprintf(buf, size, "call to method '%s'", n->a->name);
        else
            snprintf(buf, size, "call");
        break;
    case HR_JN_GETATTR: snprintf(buf, size, "attribute '%s'", n->name); break;
    case HR_JN_GETITEM: snprintf(buf, size, "subscript"); break;
    case HR_JN_NAME: snprintf(buf, size, "variable '%s'", n->name); break;
    case HR_JN_BINOP: {
        static const char *const ops[] = {
            [HR_JT_ADD] = "+",       [HR_JT_SUB] = "-", [HR_JT_MUL] = "*", [HR_JT_DIV] = "/",
            [HR_JT_FLOORDIV] = "//", [HR_JT_MOD] = "%", [HR_JT_POW] = "**"};
        snprintf(buf, size, "'%s' operator", n->op < sizeof ops / sizeof ops[0] && ops[n->op] ? ops[n->op] : "?");
        break;
    }
    case HR_JN_CONCAT: snprintf(buf, size, "'~' operator"); break;
    case HR_JN_NEG:
    case HR_JN_POS: snprintf(buf, size, "unary '%c'", n->type == HR_JN_NEG ? '-' : '+'); break;
    case HR_JN_COMPARE:
    case HR_JN_OPERAND: snprintf(buf, size, "comparison"); break;
    case HR_JN_OUTPUT: snprintf(buf, size, "{{ ... }}"); break;
    case HR_JN_FOR: snprintf(buf, size, "for loop"); break;
    case HR_JN_IF: snprintf(buf, size, "if"); break;
    case HR_JN_SET:
    case HR_JN_SET_BLOCK: snprintf(buf, size, "set"); break;
    case HR_JN_WITH: snprintf(buf, size, "with"); break;
    case HR_JN_MACRO: snprintf(buf, size, "macro '%s'", n->name); break;
    case HR_JN_SLICE: snprintf(buf, size, "slice"); break;
    default: snprintf(buf, size, "expression"); break;
    }
    return buf;
}
