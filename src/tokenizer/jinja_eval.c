#include "tokenizer/jinja_eval.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/jinja_builtins.h"

enum { FLOW_NONE, FLOW_BREAK, FLOW_CONTINUE };

typedef struct scope scope;
struct scope {
    scope *parent;
    struct var {
        const char *name; /* points into the template, the context JSON or a literal */
        hr_jv v;
    } * vars;
    size_t n, cap;
    /* Past INDEX_FROM variables, an open-addressing table of var index + 1 (0: empty),
     * index_cap a power of two at least twice n: a template that sets a hundred thousand
     * names must not pay a scan of them all on every lookup. */
    uint32_t *index;
    size_t index_cap;
};

enum { INDEX_FROM = 32 };

typedef struct {
    hr_jctx c;
    const hr_jinja_limits *lim;
    scope *root; /* template variables; a macro's scope hangs off it */
    scope *cur;
    hr_jbuf *out;
    int call_depth;
    int flow;
    bool located; /* the error already names its line */
    uintptr_t stack_base;
} evaluator;

hr_jinja_limits hr_jinja_limits_default(void) {
    return (hr_jinja_limits){
        .max_output_bytes = 32u << 20,
        .max_work_bytes = 1u << 30,
        .max_items = 16u << 20,
        .max_steps = 50u * 1000 * 1000,
        .max_call_depth = 100,
        .max_stack_bytes = 1u << 20,
        .now = time(NULL),
    };
}

/* ---------------------------------------------------------------- scopes */

static scope *scope_new(scope *parent) {
    scope *s = calloc(1, sizeof *s);
    if (s) s->parent = parent;
    return s;
}

static void scope_free(scope *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) hr_jv_release(s->vars[i].v);
    free(s->vars);
    free(s->index);
    free(s);
}

static size_t name_hash(const char *name) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *name; name++) h = (h ^ (unsigned char)*name) * 1099511628211ull;
    return (size_t)h;
}

/* The slot of name in s's index: the one holding it, or the empty one it would take. */
static size_t index_slot(const scope *s, const char *name) {
    size_t mask = s->index_cap - 1, i = name_hash(name) & mask;
    while (s->index[i] && strcmp(s->vars[s->index[i] - 1].name, name) != 0) i = (i + 1) & mask;
    return i;
}

/* Where name is bound in s alone, or -1. */
static ptrdiff_t scope_own(const scope *s, const char *name) {
    if (s->index) {
        uint32_t at = s->index[index_slot(s, name)];
        return at ? (ptrdiff_t)at - 1 : -1;
    }
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->vars[i].name, name)) return (ptrdiff_t)i;
    return -1;
}

static hr_jv *scope_find(scope *s, const char *name) {
    for (; s; s = s->parent) {
        ptrdiff_t i = scope_own(s, name);
        if (i >= 0) return &s->vars[i].v;
    }
    return NULL;
}

/* Rebuilds s's index at twice the next power of two above n (false out of memory). */
static bool scope_reindex(scope *s) {
    size_t cap = 64;
    while (cap < 2 * (s->n + 1)) cap *= 2;
    uint32_t *index = calloc(cap, sizeof *index);
    if (!index) return false;
    free(s->index);
    s->index = index;
    s->index_cap = cap;
    for (size_t i = 0; i < s->n; i++) s->index[index_slot(s, s->vars[i].name)] = (uint32_t)(i + 1);
    return true;
}

/* Binds name in s to v (consumed). */
static bool scope_set(evaluator *E, scope *s, const char *name, hr_jv v) {
    ptrdiff_t at = scope_own(s, name);
    if (at >= 0) {
        hr_jv_release(s->vars[at].v);
        s->vars[at].v = v;
        return true;
    }
    /* n stays far below UINT32_MAX: every binding costs a step of the render's budget. */
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        struct var *p = realloc(s->vars, cap * sizeof *p);
        if (!p) {
            hr_jv_release(v);
            return hr_jinja_oom(&E->c);
        }
        s->vars = p;
        s->cap = cap;
    }
    s->vars[s->n].name = name;
    s->vars[s->n].v = v;
    s->n++;
    if (s->index && 2 * s->n <= s->index_cap) {
        s->index[index_slot(s, name)] = (uint32_t)s->n;
    } else if (s->n > INDEX_FROM && !scope_reindex(s)) {
        return hr_jinja_oom(&E->c);
    }
    return true;
}

/* Enters a new scope below the current one (NULL and an error on OOM). */
static scope *push_scope(evaluator *E, scope *parent) {
    scope *s = scope_new(parent);
    if (!s) {
        hr_jinja_oom(&E->c);
        return NULL;
    }
    E->cur = s;
    return s;
}

static void pop_scope(evaluator *E, scope *s, scope *restore) {
    scope_free(s);
    E->cur = restore;
}

/* ---------------------------------------------------------------- errors and limits */

/* Adds the line and construct to the error, once: the innermost node wins. */
static bool locate(evaluator *E, const hr_jnode *n) {
    if (!E->located) {
        char what[96];
        hr_fail_wrap(E->c.err, "line %d (%s)", n->line, hr_jinja_node_describe(n, what, sizeof what));
        E->located = true;
    }
    return false;
}

/* Guards the C stack against deep macro recursion and nesting: the address of a local
 * tells how far below the render call this frame is. */
static bool stack_ok(evaluator *E) {
    char probe;
    uintptr_t here = (uintptr_t)&probe;
    size_t used = E->stack_base > here ? E->stack_base - here : here - E->stack_base;
    if (used <= E->lim->max_stack_bytes) return true;
    return hr_jinja_fail(&E->c, HR_ERR_RANGE, "RecursionError: the template nests calls too deeply");
}

static bool out_ok(evaluator *E) {
    if (!E->out->failed) return true;
    hr_jbuf_error(E->out, E->c.err);
    return false;
}

/* ---------------------------------------------------------------- expressions */

static bool eval_expr(evaluator *E, const hr_jnode *n, hr_jv *out);
static bool exec_body(evaluator *E, const hr_jnodes *body);

typedef struct {
    hr_jv *vals;
    hr_jargs a;
} argvals;

static void free_args(argvals *av) {
    size_t total = av->a.npos + av->a.nkw;
    for (size_t i = 0; i < total; i++) hr_jv_release(av->vals[i]);
    free(av->vals);
}

static bool eval_args(evaluator *E, const hr_jnode *n, argvals *av) {
    size_t total = n->list.n + n->list2.n;
    memset(av, 0, sizeof *av);
    if (total && !(av->vals = calloc(total, sizeof *av->vals))) return hr_jinja_oom(&E->c);
    av->a = (hr_jargs){
        .pos = av->vals, .npos = n->list.n, .kw = av->vals + n->list.n, .kwnames = n->names, .nkw = n->list2.n};
    for (size_t i = 0; i < total; i++) {
        const hr_jnode *arg = i < n->list.n ? n->list.items[i] : n->list2.items[i - n->list.n];
        if (!eval_expr(E, arg, &av->vals[i])) {
            free_args(av);
            return false;
        }
    }
    return true;
}

/* Binds a macro's arguments the way Jinja's Macro.__call__ does. */
static bool bind_macro_args(evaluator *E, const hr_jnode *m, const hr_jargs *a, scope *s) {
    size_t nparams = m->count;
    if (a->npos > nparams && !m->catch_varargs)
        return hr_jinja_fail(&E->c, HR_ERR_INVALID, "TypeError: macro '%s' takes not more than %zu argument(s)",
                             m->name, nparams);
    bool bound[64] = {false};
    if (nparams > sizeof bound / sizeof bound[0])
        return hr_jinja_fail(&E->c, HR_ERR_UNSUPPORTED, "macros with more than 64 parameters are not supported");
    for (size_t i = 0; i < a->npos && i < nparams; i++) {
        if (!scope_set(E, s, m->names[i], hr_jv_retain(a->pos[i]))) return false;
        bound[i] = true;
    }
    hr_jdict *extra_kw = m->catch_kwargs ? hr_jdict_new() : NULL;
    if (m->catch_kwargs && !extra_kw) return hr_jinja_oom(&E->c);
    hr_jv kwargs = extra_kw ? hr_jv_from_dict(extra_kw, HR_JV_DICT) : hr_jv_none();
    bool ok = true;
    for (size_t k = 0; k < a->nkw && ok; k++) {
        size_t j = 0;
        while (j < nparams && strcmp(m->names[j], a->kwnames[k])) j++;
        if (j < nparams && !bound[j]) {
            ok = scope_set(E, s, m->names[j], hr_jv_retain(a->kw[k]));
            bound[j] = true;
        } else if (extra_kw) {
            hr_jv key;
            ok = hr_jv_new_string(&key, a->kwnames[k], strlen(a->kwnames[k]))
                     ? hr_jdict_set(extra_kw, key, hr_jv_retain(a->kw[k]), &E->c.budget, E->c.err)
                     : hr_jinja_oom(&E->c);
        } else {
            ok = hr_jinja_fail(&E->c, HR_ERR_INVALID, "TypeError: macro '%s' takes no keyword argument '%s'", m->name,
                               a->kwnames[k]);
        }
    }
    if (ok && m->catch_kwargs) ok = scope_set(E, s, "kwargs", hr_jv_retain(kwargs));
    hr_jv_release(kwargs);
    if (ok && m->catch_varargs) {
        hr_jlist *extra = hr_jlist_new(0);
        ok = extra != NULL || hr_jinja_oom(&E->c);
        for (size_t i = nparams; ok && i < a->npos; i++)
            ok = hr_jlist_push(extra, hr_jv_retain(a->pos[i]), &E->c.budget, E->c.err);
        if (extra) ok = scope_set(E, s, "varargs", hr_jv_from_list(extra, HR_JV_TUPLE)) && ok;
    }
    /* defaults are evaluated in the macro's scope, so they may use earlier parameters */
    for (size_t i = 0; ok && i < nparams; i++) {
        if (bound[i]) continue;
        hr_jv v;
        const hr_jnode *def = m->list2.items[i];
        if (def)
            ok = eval_expr(E, def, &v);
        else
            v = hr_jv_undefinedf("UndefinedError: parameter '%s' was not provided", m->names[i]);
        if (ok) ok = scope_set(E, s, m->names[i], v);
    }
    return ok;
}

static bool call_macro(evaluator *E, const hr_jnode *m, const hr_jargs *a, hr_jv *out) {
    if (E->call_depth >= E->lim->max_call_depth)
        return hr_jinja_fail(&E->c, HR_ERR_RANGE, "RecursionError: macro calls nested more than %d deep",
                             E->lim->max_call_depth);
    scope *saved_cur = E->cur;
    hr_jbuf *saved_out = E->out;
    /* a macro sees the template's variables, not its caller's */
    scope *s = push_scope(E, E->root);
    if (!s) return false;
    hr_jbuf buf;
    hr_jbuf_init(&buf, &E->c.budget);
    E->call_depth++;
    bool ok = bind_macro_args(E, m, a, s);
    if (ok) {
        E->out = &buf;
        ok = exec_body(E, &m->list) && out_ok(E);
        E->out = saved_out;
    }
    E->call_depth--;
    pop_scope(E, s, saved_cur);
    if (!ok) {
        hr_jbuf_free(&buf);
        return false;
    }
    return hr_jinja_buf_finish(&E->c, &buf, false, out);
}

static bool eval_call(evaluator *E, const hr_jnode *n, hr_jv *out) {
    hr_jv callee;
    if (!eval_expr(E, n->a, &callee)) return false;
    argvals av;
    if (!eval_args(E, n, &av)) {
        hr_jv_release(callee);
        return false;
    }
    bool ok;
    if (callee.kind == HR_JV_CALLABLE) {
        const hr_jfunc *f = (const hr_jfunc *)callee.u.o;
        ok = f->kind == HR_JF_MACRO ? call_macro(E, f->node, &av.a, out) : hr_jinja_call(&E->c, f, &av.a, out);
    } else if (callee.kind == HR_JV_UNDEFINED) {
        ok = hr_jinja_undefined_error(&E->c, callee);
    } else {
        ok = hr_jinja_fail(&E->c, HR_ERR_INVALID, "TypeError: '%s' object is not callable", hr_jv_type_name(callee));
    }
    free_args(&av);
    hr_jv_release(callee);
    return ok;
}

static bool eval_filter_or_test(evaluator *E, const hr_jnode *n, hr_jv *out) {
    hr_jv in;
    if (!eval_expr(E, n->a, &in)) return false;
    argvals av;
    if (!eval_args(E, n, &av)) {
        hr_jv_release(in);
        return false;
    }
    bool ok;
    if (n->type == HR_JN_FILTER) {
        ok = hr_jinja_filter(&E->c, n->id, in, &av.a, out);
    } else {
        bool result = false;
        ok = hr_jinja_test(&E->c, n->id, in, &av.a, &result);
        *out = hr_jv_bool(result);
    }
    free_args(&av);
    hr_jv_release(in);
    return ok;
}

/* Evaluates a list of nodes into a new list or tuple. */
static bool eval_sequence(evaluator *E, const hr_jnodes *items, hr_jv_kind kind, hr_jv *out) {
    hr_jlist *l = hr_jlist_new(items->n);
    if (!l) return hr_jinja_oom(&E->c);
    *out = hr_jv_from_list(l, kind);
    for (size_t i = 0; i < items->n; i++) {
        hr_jv v;
        if (!eval_expr(E, items->items[i], &v) || !hr_jlist_push(l, v, &E->c.budget, E->c.err)) {
            hr_jv_release(*out);
            return false;
        }
    }
    return true;
}

static bool eval_dict(evaluator *E, const hr_jnode *n, hr_jv *out) {
    hr_jdict *d = hr_jdict_new();
    if (!d) return hr_jinja_oom(&E->c);
    *out = hr_jv_from_dict(d, HR_JV_DICT);
    for (size_t i = 0; i < n->list.n; i++) {
        hr_jv k, v;
        if (!eval_expr(E, n->list.items[i], &k)) goto fail;
        if (!hr_jv_hashable(k)) {
            hr_jinja_fail(&E->c, HR_ERR_INVALID, "TypeError: unhashable type: '%s'", hr_jv_type_name(k));
            hr_jv_release(k);
            goto fail;
        }
        if (!eval_expr(E, n->list2.items[i], &v)) {
            hr_jv_release(k);
            goto fail;
        }
        if (!hr_jdict_set(d, k, v, &E->c.budget, E->c.err)) goto fail;
    }
    return true;
fail:
    hr_jv_release(*out);
    return false;
}

static bool eval_getitem(evaluator *E, const hr_jnode *n, hr_jv obj, hr_jv *out) {
    const hr_jnode *idx = n->b;
    if (idx->type != HR_JN_SLICE) {
        hr_jv key;
        if (!eval_expr(E, idx, &key)) return false;
        bool ok = hr_jinja_getitem(&E->c, obj, key, out);
        hr_jv_release(key);
        return ok;
    }
    hr_jv parts[3] = {hr_jv_none(), hr_jv_none(), hr_jv_none()};
    const hr_jnode *nodes[3] = {idx->a, idx->b, idx->c};
    bool ok = true;
    for (int i = 0; i < 3 && ok; i++)
        if (nodes[i]) ok = eval_expr(E, nodes[i], &parts[i]);
    if (ok) ok = hr_jinja_slice(&E->c, obj, parts[0], parts[1], parts[2], out);
    for (int i = 0; i < 3; i++) hr_jv_release(parts[i]);
    return ok;
}

static bool eval_compare(evaluator *E, const hr_jnode *n, hr_jv *out) {
    hr_jv left;
    if (!eval_expr(E, n->a, &left)) return false;
    bool result = true, ok = true;
    for (size_t i = 0; i < n->list.n && ok && result; i++) {
        const hr_jnode *operand = n->list.items[i];
        hr_jv right;
        if (!(ok = eval_expr(E, operand->a, &right))) break;
        if (operand->op == HR_JN_OP_IN || operand->op == HR_JN_OP_NOTIN) {
            ok = hr_jinja_contains(&E->c, right, left, &result);
            if (operand->op == HR_JN_OP_NOTIN) result = !result;
        } else {
            ok = hr_jinja_compare(&E->c, operand->op, left, right, &result);
        }
        hr_jv_release(left);
        left = right;
    }
    hr_jv_release(left);
    *out = hr_jv_bool(result);
    return ok;
}

static bool eval_concat(evaluator *E, const hr_jnode *n, hr_jv *out) {
    hr_jbuf b;
    hr_jbuf_init(&b, &E->c.budget);
    for (size_t i = 0; i < n->list.n; i++) {
        hr_jv v;
        if (!eval_expr(E, n->list.items[i], &v)) {
            hr_jbuf_free(&b);
            return false;
        }
        bool ok = hr_jv_write_str(&b, v, E->c.err);
        hr_jv_release(v);
        if (!ok) {
            hr_jbuf_free(&b);
            return false;
        }
    }
    return hr_jinja_buf_finish(&E->c, &b, false, out);
}

static bool eval_node(evaluator *E, const hr_jnode *n, hr_jv *out) {
    hr_jv a, b;
    bool ok;
    switch ((hr_jnode_type)n->type) {
    case HR_JN_CONST: *out = hr_jv_retain(n->value); return true;
    case HR_JN_NAME: {
        hr_jv *v = scope_find(E->cur, n->name);
        *out = v ? hr_jv_retain(*v) : hr_jv_undefinedf("UndefinedError: '%s' is undefined", n->name);
        return true;
    }
    case HR_JN_GETATTR:
    case HR_JN_GETITEM:
        if (!eval_expr(E, n->a, &a)) return false;
        ok = n->type == HR_JN_GETATTR ? hr_jinja_getattr(&E->c, a, n->name, out) : eval_getitem(E, n, a, out);
        hr_jv_release(a);
        return ok;
    case HR_JN_CALL: return eval_call(E, n, out);
    case HR_JN_FILTER:
    case HR_JN_TEST: return eval_filter_or_test(E, n, out);
    case HR_JN_NOT:
        if (!eval_expr(E, n->a, &a)) return false;
        *out = hr_jv_bool(!hr_jv_truthy(a));
        hr_jv_release(a);
        return true;
    case HR_JN_NEG:
    case HR_JN_POS:
        if (!eval_expr(E, n->a, &a)) return false;
        ok = hr_jinja_unary(&E->c, n->type == HR_JN_NEG, a, out);
        hr_jv_release(a);
        return ok;
    case HR_JN_BINOP:
        /* id 1: Jinja evaluates "-c ** x" as -(c ** x), see jinja_parse */
        if (!eval_expr(E, n->id == 1 ? n->a->a : n->a, &a)) return false;
        if (!eval_expr(E, n->b, &b)) {
            hr_jv_release(a);
            return false;
        }
        ok = hr_jinja_binop(&E->c, n->op, a, b, out);
        hr_jv_release(a);
        hr_jv_release(b);
        if (ok && n->id == 1) {
            a = *out;
            ok = hr_jinja_unary(&E->c, true, a, out);
            hr_jv_release(a);
        }
        return ok;
    case HR_JN_CONCAT: return eval_concat(E, n, out);
    case HR_JN_AND:
    case HR_JN_OR:
        /* Python's and/or yield an operand, not a bool */
        if (!eval_expr(E, n->a, &a)) return false;
        if (hr_jv_truthy(a) == (n->type == HR_JN_OR)) {
            *out = a;
            return true;
        }
        hr_jv_release(a);
        return eval_expr(E, n->b, out);
    case HR_JN_COMPARE: return eval_compare(E, n, out);
    case HR_JN_COND:
        if (!eval_expr(E, n->a, &a)) return false;
        ok = hr_jv_truthy(a);
        hr_jv_release(a);
        if (ok) return eval_expr(E, n->b, out);
        if (n->c) return eval_expr(E, n->c, out);
        *out = hr_jv_undefinedf("UndefinedError: the inline if-expression on line %d evaluated to false and no else "
                                "section was defined.",
                                n->line);
        return true;
    case HR_JN_LIST:
    case HR_JN_TUPLE: return eval_sequence(E, &n->list, n->type == HR_JN_LIST ? HR_JV_LIST : HR_JV_TUPLE, out);
    case HR_JN_DICT: return eval_dict(E, n, out);
    default: return hr_jinja_fail(&E->c, HR_ERR_INVALID, "internal error: a statement where an expression belongs");
    }
}

static bool eval_expr(evaluator *E, const hr_jnode *n, hr_jv *out) {
    if (hr_jinja_step(&E->c, 1) && stack_ok(E) && eval_node(E, n, out)) return true;
    return locate(E, n);
}

/* ---------------------------------------------------------------- statements */

/* Binds an assignment target (name, tuple or namespace attribute) to v (consumed). */
static bool assign(evaluator *E, const hr_jnode *target, hr_jv v) {
    if (target->type == HR_JN_NAME) return scope_set(E, E->cur, target->name, v);
    if (target->type == HR_JN_NSREF) {
        hr_jv *ns = scope_find(E->cur, target->name);
        hr_jv key;
        if (!ns || ns->kind != HR_JV_NAMESPACE) {
            hr_jv_release(v);
            return hr_jinja_fail(&E->c, HR_ERR_INVALID,
                                 "TemplateRuntimeError: cannot assign attribute on non-namespace object");
        }
        if (!hr_jv_new_string(&key, target->attr, strlen(target->attr))) {
            hr_jv_release(v);
            return hr_jinja_oom(&E->c);
        }
        return hr_jdict_set(hr_jv_dict(*ns), key, v, &E->c.budget, E->c.err);
    }
    /* a tuple of targets unpacks an iterable of the same length */
    if (!hr_jv_is_str(v) && !hr_jv_is_seq(v) && v.kind != HR_JV_DICT && v.kind != HR_JV_ITERATOR) {
        bool ok =
            hr_jinja_fail(&E->c, HR_ERR_INVALID, "TypeError: cannot unpack non-iterable %s object", hr_jv_type_name(v));
        hr_jv_release(v);
        return ok;
    }
    hr_jlist *items;
    bool ok = hr_jinja_iterate(&E->c, v, &items);
    hr_jv_release(v);
    if (!ok) return false;
    size_t want = target->list.n;
    if (items->len > want)
        ok = hr_jinja_fail(&E->c, HR_ERR_INVALID, "ValueError: too many values to unpack (expected %zu)", want);
    else if (items->len < want)
        ok = hr_jinja_fail(&E->c, HR_ERR_INVALID, "ValueError: not enough values to unpack (expected %zu, got %zu)",
                           want, items->len);
    for (size_t i = 0; ok && i < want; i++) ok = assign(E, target->list.items[i], hr_jv_retain(items->v[i]));
    hr_jv_release(hr_jv_from_list(items, HR_JV_LIST));
    return ok;
}

/* Renders body in a new scope into a string (set blocks). */
static bool render_captured(evaluator *E, const hr_jnodes *body, hr_jv *out) {
    scope *saved = E->cur;
    hr_jbuf *saved_out = E->out;
    scope *s = push_scope(E, saved);
    if (!s) return false;
    hr_jbuf buf;
    hr_jbuf_init(&buf, &E->c.budget);
    E->out = &buf;
    bool ok = exec_body(E, body) && out_ok(E);
    E->out = saved_out;
    pop_scope(E, s, saved);
    if (!ok) {
        hr_jbuf_free(&buf);
        return false;
    }
    return hr_jinja_buf_finish(&E->c, &buf, false, out);
}

/* The items a for loop visits: the iterable, narrowed by its "if" filter. */
static bool loop_items(evaluator *E, const hr_jnode *n, hr_jlist **out) {
    hr_jv seq;
    if (!eval_expr(E, n->b, &seq)) return false;
    bool ok = hr_jinja_iterate(&E->c, seq, out);
    hr_jv_release(seq);
    if (!ok || !n->c) return ok;
    hr_jlist *all = *out, *kept = hr_jlist_new(0);
    ok = kept != NULL || hr_jinja_oom(&E->c);
    scope *saved = E->cur;
    for (size_t i = 0; ok && i < all->len; i++) {
        scope *s = push_scope(E, saved);
        hr_jv cond;
        ok = s && assign(E, n->a, hr_jv_retain(all->v[i])) && eval_expr(E, n->c, &cond);
        if (s) pop_scope(E, s, saved);
        if (!ok) break;
        if (hr_jv_truthy(cond)) ok = hr_jlist_push(kept, hr_jv_retain(all->v[i]), &E->c.budget, E->c.err);
        hr_jv_release(cond);
    }
    hr_jv_release(hr_jv_from_list(all, HR_JV_LIST));
    if (!ok) {
        if (kept) hr_jv_release(hr_jv_from_list(kept, HR_JV_LIST));
        return false;
    }
    *out = kept;
    return true;
}

static bool exec_for(evaluator *E, const hr_jnode *n) {
    hr_jlist *items;
    if (!loop_items(E, n, &items)) return false;
    hr_jloop *lp = hr_jloop_new(items);
    hr_jv loop = lp ? hr_jv_from_obj(&lp->h, HR_JV_LOOP) : hr_jv_none();
    bool ok = lp != NULL || hr_jinja_oom(&E->c);
    scope *saved = E->cur;
    for (size_t i = 0; ok && i < items->len; i++) {
        if (!(ok = hr_jinja_step(&E->c, 1))) break;
        lp->index0 = i;
        /* every iteration starts from the enclosing scope: sets inside do not leak */
        scope *s = push_scope(E, saved);
        ok = s && assign(E, n->a, hr_jv_retain(items->v[i])) && scope_set(E, s, "loop", hr_jv_retain(loop)) &&
             exec_body(E, &n->list);
        if (s) pop_scope(E, s, saved);
        if (E->flow == FLOW_BREAK) {
            E->flow = FLOW_NONE;
            break;
        }
        E->flow = FLOW_NONE;
    }
    if (ok && items->len == 0 && n->list2.n) {
        scope *s = push_scope(E, saved);
        ok = s && exec_body(E, &n->list2);
        if (s) pop_scope(E, s, saved);
    }
    hr_jv_release(loop);
    hr_jv_release(hr_jv_from_list(items, HR_JV_LIST));
    return ok;
}

static bool exec_with(evaluator *E, const hr_jnode *n) {
    /* values are computed in the enclosing scope, then bound in the new one */
    size_t count = n->list2.n;
    hr_jv *vals = calloc(count ? count : 1, sizeof *vals);
    if (!vals) return hr_jinja_oom(&E->c);
    bool ok = true;
    for (size_t i = 0; i < count && ok; i++) ok = eval_expr(E, n->list2.items[i], &vals[i]);
    scope *saved = E->cur;
    scope *s = ok ? push_scope(E, saved) : NULL;
    ok = ok && s;
    for (size_t i = 0; i < count; i++) {
        if (ok)
            ok = assign(E, n->a->list.items[i], vals[i]);
        else
            hr_jv_release(vals[i]);
    }
    free(vals);
    if (ok) ok = exec_body(E, &n->list);
    if (s) pop_scope(E, s, saved);
    return ok;
}

static bool exec_stmt(evaluator *E, const hr_jnode *n) {
    hr_jv v;
    switch ((hr_jnode_type)n->type) {
    case HR_JN_TEXT: hr_jbuf_add(E->out, n->name, n->name_len); return out_ok(E);
    case HR_JN_OUTPUT: {
        if (!eval_expr(E, n->a, &v)) return false;
        bool ok = hr_jv_write_str(E->out, v, E->c.err) && out_ok(E);
        hr_jv_release(v);
        return ok;
    }
    case HR_JN_IF: {
        if (!eval_expr(E, n->a, &v)) return false;
        bool yes = hr_jv_truthy(v);
        hr_jv_release(v);
        return exec_body(E, yes ? &n->list : &n->list2);
    }
    case HR_JN_FOR: return exec_for(E, n);
    case HR_JN_SET: return eval_expr(E, n->b, &v) && assign(E, n->a, v);
    case HR_JN_SET_BLOCK: return render_captured(E, &n->list, &v) && assign(E, n->a, v);
    case HR_JN_MACRO: {
        hr_jfunc *f = hr_jfunc_new(HR_JF_MACRO, 0, n->name, hr_jv_none());
        if (!f) return hr_jinja_oom(&E->c);
        f->node = n;
        return scope_set(E, E->cur, n->name, hr_jv_from_obj(&f->h, HR_JV_CALLABLE));
    }
    case HR_JN_BREAK:
    case HR_JN_CONTINUE: E->flow = n->type == HR_JN_BREAK ? FLOW_BREAK : FLOW_CONTINUE; return true;
    case HR_JN_WITH: return exec_with(E, n);
    case HR_JN_SEQUENCE: return exec_body(E, &n->list);
    default: return hr_jinja_fail(&E->c, HR_ERR_INVALID, "internal error: an expression where a statement belongs");
    }
}

static bool exec_body(evaluator *E, const hr_jnodes *body) {
    for (size_t i = 0; i < body->n && E->flow == FLOW_NONE; i++) {
        const hr_jnode *n = body->items[i];
        if (!hr_jinja_step(&E->c, 1) || !stack_ok(E) || !exec_stmt(E, n)) return locate(E, n);
    }
    return true;
}

/* ---------------------------------------------------------------- entry point */

static bool install_globals(evaluator *E, scope *globals) {
    for (size_t i = 0; i < hr_jinja_global_count(); i++) {
        hr_jfunc *f = hr_jfunc_new(HR_JF_GLOBAL, (uint16_t)i, hr_jinja_global_name(i), hr_jv_none());
        if (!f) return hr_jinja_oom(&E->c);
        if (!scope_set(E, globals, f->name, hr_jv_from_obj(&f->h, HR_JV_CALLABLE))) return false;
    }
    return true;
}

static bool install_vars(evaluator *E, scope *root, const json_t *vars) {
    if (!vars) return true;
    if (!json_is_object(vars)) return hr_jinja_fail(&E->c, HR_ERR_INVALID, "template variables must be a JSON object");
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)vars, key, val) {
        hr_jv v;
        if (!hr_jv_from_json(val, &v, &E->c.budget, E->c.err)) {
            hr_fail_wrap(E->c.err, "template variable '%s'", key);
            return false;
        }
        if (!scope_set(E, root, key, v)) return false;
    }
    return true;
}

/* Namespaces are the only way to build a reference cycle; emptying them all first lets
 * every release below finish. */
static void release_namespaces(hr_jctx *c) {
    for (size_t i = 0; i < c->n_namespaces; i++) hr_jdict_clear(hr_jv_dict(c->namespaces[i]));
    for (size_t i = 0; i < c->n_namespaces; i++) hr_jv_release(c->namespaces[i]);
    free(c->namespaces);
    c->namespaces = NULL;
    c->n_namespaces = c->cap_namespaces = 0;
}

hr_status hr_jinja_render(const hr_jtemplate *t, const json_t *vars, const hr_jinja_limits *limits, char **out,
                          size_t *out_len, hr_error *err) {
    *out = NULL;
    *out_len = 0;
    hr_error local;
    if (!err) err = &local;
    char base;
    evaluator E = {
        .c = {.budget = {.max_string = limits->max_output_bytes,
                         .bytes_left = limits->max_work_bytes,
                         .items_left = limits->max_items},
              .steps_left = limits->max_steps,
              .err = err,
              .now = limits->now},
        .lim = limits,
        .stack_base = (uintptr_t)&base,
    };
    hr_jbuf buf;
    hr_jbuf_init(&buf, &E.c.budget);
    E.out = &buf;
    scope *globals = scope_new(NULL);
    scope *root = globals ? scope_new(globals) : NULL;
    E.root = E.cur = root;
    bool ok =
        root ? install_globals(&E, globals) && install_vars(&E, root, vars) && exec_body(&E, &t->body) && out_ok(&E)
             : hr_jinja_oom(&E.c);
    scope_free(root);
    scope_free(globals);
    release_namespaces(&E.c);
    if (!ok) {
        hr_jbuf_free(&buf);
        return err->status;
    }
    if (!buf.data) {
        buf.data = calloc(1, 1);
        if (!buf.data) return hr_fail(err, HR_ERR_NOMEM, "out of memory");
    }
    *out = buf.data;
    *out_len = buf.len;
    return HR_OK;
}
