/* tokenizer/jinja_builtins — Python's object model as Jinja2's sandbox exposes it to a
 * chat template: attribute and item lookup, slicing, iteration, operators, the methods
 * of str/dict/list, the filters and tests, and the global functions (range, namespace,
 * raise_exception, strftime_now, ...). jinja_ops.c holds the object model and methods,
 * jinja_filters.c the filters, tests and globals.
 *
 * Owns: the tables of supported filter, test and global names.
 * Must not: walk the syntax tree or know about scopes (jinja_eval does). Errors are
 * reported through ctx->err as Python would word them ("TypeError: ..."), without a
 * line; the evaluator adds the line and construct. */
#ifndef HR_TOKENIZER_JINJA_BUILTINS_H
#define HR_TOKENIZER_JINJA_BUILTINS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "base/error.h"
#include "tokenizer/jinja_value.h"

/* The state one render shares with the builtins. */
typedef struct {
    hr_jbudget budget;
    uint64_t steps_left; /* operations left before the render is stopped */
    hr_error *err;
    time_t now; /* what strftime_now() formats */
    /* Every namespace created, kept alive until the render ends and then emptied: they
     * are the only mutable containers, so any reference cycle runs through them. */
    hr_jv *namespaces;
    size_t n_namespaces, cap_namespaces;
} hr_jctx;

/* Arguments of a call: positional, then keywords. */
typedef struct {
    const hr_jv *pos;
    size_t npos;
    const hr_jv *kw;
    const char *const *kwnames;
    size_t nkw;
} hr_jargs;

/* Callable kinds (hr_jfunc.kind). */
enum {
    HR_JF_MACRO,       /* node: the macro definition (called by jinja_eval) */
    HR_JF_GLOBAL,      /* id: a global function */
    HR_JF_METHOD,      /* id: a method bound to self */
    HR_JF_UNSUPPORTED, /* a real Python method headroom does not implement: refuses to run */
};

/* ---- names, resolved when a template is parsed ---- */
/* Id of a supported filter or test, -1 for a name Jinja does not know, -2 for one it
 * knows that headroom refuses. */
int hr_jinja_filter_id(const char *name);
int hr_jinja_test_id(const char *name);
/* The global functions, for the interpreter to install: returns the count and names. */
size_t hr_jinja_global_count(void);
const char *hr_jinja_global_name(size_t i);

/* ---- object model (jinja_ops.c) ---- */
/* obj.name: Python getattr, then obj[name], else undefined; attribute on undefined errors. */
bool hr_jinja_getattr(hr_jctx *c, hr_jv obj, const char *name, hr_jv *out);
/* obj[key]: Python getitem, then getattr for string keys, else undefined. */
bool hr_jinja_getitem(hr_jctx *c, hr_jv obj, hr_jv key, hr_jv *out);
/* obj[start:stop:step]; absent parts are none. */
bool hr_jinja_slice(hr_jctx *c, hr_jv obj, hr_jv start, hr_jv stop, hr_jv step, hr_jv *out);
/* The items iter(v) yields, as a list (owned). Consumes a generator. */
bool hr_jinja_iterate(hr_jctx *c, hr_jv v, hr_jlist **out);
/* len(v). */
bool hr_jinja_len(hr_jctx *c, hr_jv v, int64_t *out);
/* a op b for + - * / // % ** (op is an hr_jtok_type). */
bool hr_jinja_binop(hr_jctx *c, int op, hr_jv a, hr_jv b, hr_jv *out);
/* -v and +v. */
bool hr_jinja_unary(hr_jctx *c, bool negate, hr_jv v, hr_jv *out);
/* item in container. */
bool hr_jinja_contains(hr_jctx *c, hr_jv container, hr_jv item, bool *out);
/* a == b, a < b ... with undefined operands failing as Jinja's Undefined does. */
bool hr_jinja_compare(hr_jctx *c, int op, hr_jv a, hr_jv b, bool *out);
/* str(v) as a string value (a string is returned as is, keeping its safe flag). */
bool hr_jinja_str(hr_jctx *c, hr_jv v, hr_jv *out);
/* Reports using an undefined value (its hint, or "'x' is undefined"). */
bool hr_jinja_undefined_error(hr_jctx *c, hr_jv undef);
/* Calls a global, a bound method or an unsupported method (not macros). */
bool hr_jinja_call(hr_jctx *c, const hr_jfunc *f, const hr_jargs *args, hr_jv *out);

/* Binds call arguments to named parameters, Python style: out[i] is the argument for
 * params[i] (borrowed) or unset (kind UNDEFINED, o NULL) when not given. Fails on an
 * unknown keyword, too many positionals or a parameter given twice. */
bool hr_jinja_bind(hr_jctx *c, const char *what, const hr_jargs *args, const char *const *params, size_t n, hr_jv *out,
                   bool *given);

/* ---- filters, tests, globals (jinja_filters.c) ---- */
bool hr_jinja_filter(hr_jctx *c, int id, hr_jv in, const hr_jargs *args, hr_jv *out);
bool hr_jinja_test(hr_jctx *c, int id, hr_jv in, const hr_jargs *args, bool *out);
bool hr_jinja_call_global(hr_jctx *c, int id, const hr_jargs *args, hr_jv *out);

/* String operations shared by methods and filters (s is a string value; the result
 * keeps its safe flag, as markupsafe's methods do). */
enum { HR_JSTR_LOWER, HR_JSTR_UPPER, HR_JSTR_TITLE, HR_JSTR_CAPITALIZE, HR_JSTR_WORDS };
/* HR_JSTR_WORDS is the title filter: each word's first letter upper, the rest lower. */
bool hr_jinja_str_case(hr_jctx *c, hr_jv s, int how, hr_jv *out);
/* str.strip/lstrip/rstrip(chars); chars none strips Unicode whitespace. */
bool hr_jinja_str_strip(hr_jctx *c, hr_jv s, hr_jv chars, bool left, bool right, hr_jv *out);
/* str.replace(old, new, count); count < 0 replaces all. */
bool hr_jinja_str_replace(hr_jctx *c, hr_jv s, hr_jv old, hr_jv repl, int64_t count, hr_jv *out);
/* An int argument (bools count), or fails with a TypeError naming what. */
bool hr_jinja_int_arg(hr_jctx *c, hr_jv v, const char *what, int64_t *out);

/* Helpers shared by both files. */
bool hr_jinja_fail(hr_jctx *c, hr_status status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool hr_jinja_oom(hr_jctx *c);
bool hr_jinja_buf_finish(hr_jctx *c, hr_jbuf *b, bool safe, hr_jv *out);
bool hr_jinja_step(hr_jctx *c, uint64_t n);

#endif
