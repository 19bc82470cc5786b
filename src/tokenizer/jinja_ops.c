/* The Python object model behind Jinja2 expressions: lookups, slicing, iteration,
 * operators, and the methods of str, dict, list and loop objects. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_lex.h"
#include "tokenizer/jinja_parse.h"
#include "tokenizer/jinja_unicode.h"

/* ---------------------------------------------------------------- shared helpers */

bool hr_jinja_fail(hr_jctx *c, hr_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (c->err) {
        vsnprintf(c->err->msg, sizeof c->err->msg, fmt, ap);
        c->err->status = status;
    }
    va_end(ap);
    return false;
}

bool hr_jinja_oom(hr_jctx *c) { return hr_jinja_fail(c, HR_ERR_NOMEM, "out of memory"); }

bool hr_jinja_buf_finish(hr_jctx *c, hr_jbuf *b, bool safe, hr_jv *out) { return hr_jbuf_finish(b, safe, out, c->err); }

bool hr_jinja_step(hr_jctx *c, uint64_t n) {
    if (c->steps_left >= n) {
        c->steps_left -= n;
        return true;
    }
    c->steps_left = 0;
    return hr_jinja_fail(c, HR_ERR_RANGE, "the template ran longer than its step limit allows");
}

bool hr_jinja_undefined_error(hr_jctx *c, hr_jv undef) {
    const hr_jstr *hint = undef.u.o ? hr_jv_str(undef) : NULL;
    return hr_jinja_fail(c, HR_ERR_INVALID, "%s", hint ? hint->s : "UndefinedError: a value is undefined");
}

static bool is_int_like(hr_jv v) { return v.kind == HR_JV_INT || v.kind == HR_JV_BOOL; }
static int64_t int_of(hr_jv v) { return v.kind == HR_JV_BOOL ? (int64_t)v.u.b : v.u.i; }
static bool is_num(hr_jv v) { return is_int_like(v) || v.kind == HR_JV_FLOAT; }
static double float_of(hr_jv v) { return v.kind == HR_JV_FLOAT ? v.u.f : (double)int_of(v); }

bool hr_jinja_int_arg(hr_jctx *c, hr_jv v, const char *what, int64_t *out) {
    if (is_int_like(v)) {
        *out = int_of(v);
        return true;
    }
    return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: %s must be an integer, not '%s'", what, hr_jv_type_name(v));
}

static bool new_string(hr_jctx *c, const char *s, size_t n, bool safe, hr_jv *out) {
    hr_jbuf b;
    hr_jbuf_init(&b, &c->budget);
    hr_jbuf_add(&b, s, n);
    return hr_jinja_buf_finish(c, &b, safe, out);
}

static bool new_list(hr_jctx *c, hr_jlist **out) {
    *out = hr_jlist_new(0);
    return *out != NULL || hr_jinja_oom(c);
}

static bool push(hr_jctx *c, hr_jlist *l, hr_jv v) { return hr_jlist_push(l, v, &c->budget, c->err); }

static void drop_list(hr_jlist *l) {
    if (l) hr_jv_release(hr_jv_from_list(l, HR_JV_LIST));
}

/* Byte offsets of a string's code points, for Python's code-point indexing. ASCII
 * strings need no table. */
typedef struct {
    const hr_jstr *s;
    size_t n;    /* code points */
    size_t *off; /* n + 1 offsets, or NULL when the string is ASCII */
} cpindex;

static bool cpindex_init(hr_jctx *c, cpindex *x, const hr_jstr *s) {
    x->s = s;
    x->off = NULL;
    if (s->ascii) {
        x->n = s->len;
        return true;
    }
    x->n = hr_utf8_count(s->s, s->len);
    x->off = malloc((x->n + 1) * sizeof *x->off);
    if (!x->off) return hr_jinja_oom(c);
    size_t k = 0;
    for (size_t i = 0; i < s->len; k++) {
        uint32_t cp;
        x->off[k] = i;
        i += hr_utf8_decode(s->s + i, s->len - i, &cp);
    }
    x->off[k] = s->len;
    return true;
}

static size_t cp_byte(const cpindex *x, size_t i) { return x->off ? x->off[i] : i; }
static void cpindex_free(cpindex *x) { free(x->off); }

/* Python's sequence index normalisation: -1 is the last item; false when out of range. */
static bool normalize_index(int64_t i, size_t len, size_t *out) {
    if (i < 0) i += (int64_t)len;
    if (i < 0 || (uint64_t)i >= len) return false;
    *out = (size_t)i;
    return true;
}

/* ---------------------------------------------------------------- undefined results */

/* How Jinja names an object in "has no attribute" messages. */
static const char *object_repr(hr_jv v) {
    switch (v.kind) {
    case HR_JV_NONE: return "None";
    case HR_JV_STRING: return v.safe ? "markupsafe.Markup object" : "str object";
    case HR_JV_NAMESPACE: return "jinja2.utils.Namespace object";
    case HR_JV_LOOP: return "jinja2.runtime.LoopContext object";
    case HR_JV_LIST: {
        static const char *const names[] = {"list object", "dict_items object", "dict_keys object",
                                            "dict_values object", "range object"};
        return names[hr_jv_list(v)->view];
    }
    case HR_JV_TUPLE: return "tuple object";
    case HR_JV_DICT: return "dict object";
    case HR_JV_INT: return "int object";
    case HR_JV_FLOAT: return "float object";
    case HR_JV_BOOL: return "bool object";
    case HR_JV_CALLABLE: return "function object";
    default: return "object";
    }
}

static bool undefined_attr(hr_jv obj, const char *name, hr_jv *out) {
    *out = obj.kind == HR_JV_NONE
               ? hr_jv_undefinedf("UndefinedError: 'None' has no attribute '%s'", name)
               : hr_jv_undefinedf("UndefinedError: '%s' has no attribute '%s'", object_repr(obj), name);
    return true;
}

static bool undefined_element(hr_jv obj, hr_jv key, hr_jv *out) {
    hr_jbuf b;
    hr_jbuf_init(&b, NULL);
    if (!hr_jv_write_repr(&b, key, NULL) || b.failed) hr_jbuf_adds(&b, "?");
    *out = hr_jv_undefinedf("UndefinedError: %s has no element %s", object_repr(obj), b.data ? b.data : "");
    hr_jbuf_free(&b);
    return true;
}

/* ---------------------------------------------------------------- methods */

enum {
    M_STRIP,
    M_LSTRIP,
    M_RSTRIP,
    M_STARTSWITH,
    M_ENDSWITH,
    M_UPPER,
    M_LOWER,
    M_TITLE,
    M_CAPITALIZE,
    M_REPLACE,
    M_SPLIT,
    M_RSPLIT,
    M_JOIN,
    M_FIND,
    M_RFIND,
    M_COUNT,
    M_SPLITLINES,
    M_REMOVEPREFIX,
    M_REMOVESUFFIX,
    M_ISSPACE,
    M_ISDIGIT,
    M_ISALPHA,
    M_ISALNUM,
    M_ISUPPER,
    M_ISLOWER,
    M_ITEMS,
    M_KEYS,
    M_VALUES,
    M_GET,
    M_COPY,
    M_LIST_COUNT,
    M_LIST_INDEX,
    M_CYCLE,
};

typedef struct {
    const char *name;
    int id; /* -1: a real method headroom does not implement; -2: unsafe in the sandbox */
} method_entry;

static const method_entry str_methods[] = {
    {"strip", M_STRIP},
    {"lstrip", M_LSTRIP},
    {"rstrip", M_RSTRIP},
    {"startswith", M_STARTSWITH},
    {"endswith", M_ENDSWITH},
    {"upper", M_UPPER},
    {"lower", M_LOWER},
    {"title", M_TITLE},
    {"capitalize", M_CAPITALIZE},
    {"replace", M_REPLACE},
    {"split", M_SPLIT},
    {"rsplit", M_RSPLIT},
    {"join", M_JOIN},
    {"find", M_FIND},
    {"rfind", M_RFIND},
    {"count", M_COUNT},
    {"splitlines", M_SPLITLINES},
    {"removeprefix", M_REMOVEPREFIX},
    {"removesuffix", M_REMOVESUFFIX},
    {"isspace", M_ISSPACE},
    {"isdigit", M_ISDIGIT},
    {"isalpha", M_ISALPHA},
    {"isalnum", M_ISALNUM},
    {"isupper", M_ISUPPER},
    {"islower", M_ISLOWER},
    {"casefold", -1},
    {"center", -1},
    {"encode", -1},
    {"expandtabs", -1},
    {"format", -1},
    {"format_map", -1},
    {"index", -1},
    {"isascii", -1},
    {"isdecimal", -1},
    {"isidentifier", -1},
    {"isnumeric", -1},
    {"isprintable", -1},
    {"istitle", -1},
    {"ljust", -1},
    {"maketrans", -1},
    {"partition", -1},
    {"rindex", -1},
    {"rjust", -1},
    {"rpartition", -1},
    {"swapcase", -1},
    {"translate", -1},
    {"zfill", -1},
    {NULL, 0},
};

static const method_entry dict_methods[] = {
    {"items", M_ITEMS}, {"keys", M_KEYS}, {"values", M_VALUES}, {"get", M_GET},     {"copy", M_COPY}, {"fromkeys", -1},
    {"clear", -2},      {"pop", -2},      {"popitem", -2},      {"setdefault", -2}, {"update", -2},   {NULL, 0},
};

static const method_entry list_methods[] = {
    {"count", M_LIST_COUNT}, {"index", M_LIST_INDEX}, {"copy", -1},   {"append", -2},
    {"clear", -2},           {"extend", -2},          {"insert", -2}, {"pop", -2},
    {"remove", -2},          {"reverse", -2},         {"sort", -2},   {NULL, 0},
};

static const method_entry tuple_methods[] = {{"count", M_LIST_COUNT}, {"index", M_LIST_INDEX}, {NULL, 0}};

static const method_entry number_methods[] = {
    {"as_integer_ratio", -1}, {"bit_count", -1}, {"bit_length", -1}, {"conjugate", -1},  {"from_bytes", -1},
    {"to_bytes", -1},         {"hex", -1},       {"fromhex", -1},    {"is_integer", -1}, {NULL, 0},
};

static const method_entry *find_method(const method_entry *table, const char *name) {
    for (; table && table->name; table++)
        if (!strcmp(table->name, name)) return table;
    return NULL;
}

/* obj.name where name is a method of obj's type: a bound method, an unsupported one,
 * or the sandbox's refusal. */
static bool bind_method(hr_jctx *c, hr_jv obj, const method_entry *m, hr_jv *out) {
    if (m->id == -2) {
        *out = hr_jv_undefinedf("SecurityError: access to attribute '%s' of '%s' object is unsafe.", m->name,
                                hr_jv_type_name(obj));
        return true;
    }
    hr_jfunc *f =
        hr_jfunc_new(m->id == -1 ? HR_JF_UNSUPPORTED : HR_JF_METHOD, (uint16_t)(m->id < 0 ? 0 : m->id), m->name, obj);
    if (!f) return hr_jinja_oom(c);
    *out = hr_jv_from_obj(&f->h, HR_JV_CALLABLE);
    return true;
}

static const method_entry *methods_of(hr_jv obj) {
    switch (obj.kind) {
    case HR_JV_STRING: return str_methods;
    case HR_JV_DICT: return dict_methods;
    case HR_JV_LIST: return hr_jv_list(obj)->view == HR_JLIST_PLAIN ? list_methods : NULL;
    case HR_JV_TUPLE: return tuple_methods;
    case HR_JV_INT:
    case HR_JV_BOOL:
    case HR_JV_FLOAT: return number_methods;
    default: return NULL;
    }
}

/* ---------------------------------------------------------------- lookups */

static bool loop_attr(hr_jctx *c, hr_jv obj, const char *name, hr_jv *out) {
    const hr_jloop *lp = (const hr_jloop *)obj.u.o;
    int64_t i = (int64_t)lp->index0, n = (int64_t)lp->items->len;
    static const char *const ints[] = {"index", "index0", "revindex", "revindex0", "length", "depth", "depth0"};
    int64_t vals[] = {i + 1, i, n - i, n - i - 1, n, 1, 0};
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++)
        if (!strcmp(name, ints[k])) return *out = hr_jv_int(vals[k]), true;
    if (!strcmp(name, "first")) return *out = hr_jv_bool(i == 0), true;
    if (!strcmp(name, "last")) return *out = hr_jv_bool(i == n - 1), true;
    if (!strcmp(name, "previtem")) {
        *out =
            i > 0 ? hr_jv_retain(lp->items->v[i - 1]) : hr_jv_undefinedf("UndefinedError: there is no previous item");
        return true;
    }
    if (!strcmp(name, "nextitem")) {
        *out =
            i + 1 < n ? hr_jv_retain(lp->items->v[i + 1]) : hr_jv_undefinedf("UndefinedError: there is no next item");
        return true;
    }
    static const method_entry cycle = {"cycle", M_CYCLE}, changed = {"changed", -1};
    if (!strcmp(name, "cycle")) return bind_method(c, obj, &cycle, out);
    if (!strcmp(name, "changed")) return bind_method(c, obj, &changed, out);
    return undefined_attr(obj, name, out);
}

bool hr_jinja_getattr(hr_jctx *c, hr_jv obj, const char *name, hr_jv *out) {
    if (obj.kind == HR_JV_UNDEFINED) return hr_jinja_undefined_error(c, obj);
    size_t len = strlen(name);
    if (len > 4 && name[0] == '_' && name[1] == '_' && name[len - 1] == '_' && name[len - 2] == '_') {
        *out = hr_jv_undefinedf("SecurityError: access to attribute '%s' of '%s' object is unsafe.", name,
                                hr_jv_type_name(obj));
        return true;
    }
    const method_entry *m = find_method(methods_of(obj), name);
    if (m) return bind_method(c, obj, m, out);
    switch (obj.kind) {
    case HR_JV_DICT:
    case HR_JV_NAMESPACE: {
        hr_jv *v = hr_jdict_get_cstr(hr_jv_dict(obj), name);
        if (v) return *out = hr_jv_retain(*v), true;
        break;
    }
    case HR_JV_LOOP: return loop_attr(c, obj, name, out);
    case HR_JV_INT:
    case HR_JV_BOOL:
    case HR_JV_FLOAT:
        if (!strcmp(name, "real")) return *out = obj.kind == HR_JV_BOOL ? hr_jv_int(obj.u.b) : obj, true;
        if (!strcmp(name, "imag")) return *out = obj.kind == HR_JV_FLOAT ? hr_jv_float(0) : hr_jv_int(0), true;
        if (obj.kind != HR_JV_FLOAT && !strcmp(name, "numerator")) return *out = hr_jv_int(int_of(obj)), true;
        if (obj.kind != HR_JV_FLOAT && !strcmp(name, "denominator")) return *out = hr_jv_int(1), true;
        break;
    default: break;
    }
    return undefined_attr(obj, name, out);
}

bool hr_jinja_getitem(hr_jctx *c, hr_jv obj, hr_jv key, hr_jv *out) {
    if (obj.kind == HR_JV_UNDEFINED) return hr_jinja_undefined_error(c, obj);
    switch (obj.kind) {
    case HR_JV_DICT:
        if (hr_jv_hashable(key)) {
            hr_jv *v = hr_jdict_get(hr_jv_dict(obj), key);
            if (v) return *out = hr_jv_retain(*v), true;
        }
        break;
    case HR_JV_LIST:
    case HR_JV_TUPLE: {
        const hr_jlist *l = hr_jv_list(obj);
        size_t i;
        if (is_int_like(key) && (l->view == HR_JLIST_PLAIN || l->view == HR_JLIST_RANGE)) {
            if (normalize_index(int_of(key), l->len, &i)) return *out = hr_jv_retain(l->v[i]), true;
            return undefined_element(obj, key, out);
        }
        break;
    }
    case HR_JV_STRING:
        if (is_int_like(key)) {
            cpindex x;
            size_t i;
            if (!cpindex_init(c, &x, hr_jv_str(obj))) return false;
            bool found = normalize_index(int_of(key), x.n, &i);
            bool ok = found ? new_string(c, x.s->s + cp_byte(&x, i), cp_byte(&x, i + 1) - cp_byte(&x, i), obj.safe, out)
                            : undefined_element(obj, key, out);
            cpindex_free(&x);
            return ok;
        }
        break;
    default: break;
    }
    /* Jinja falls back to an attribute for string keys: d['items'] is the method (no
     * attribute name holds a NUL) */
    if (key.kind == HR_JV_STRING && !memchr(hr_jv_str(key)->s, 0, hr_jv_str(key)->len))
        return hr_jinja_getattr(c, obj, hr_jv_str(key)->s, out);
    if (key.kind == HR_JV_STRING) return undefined_attr(obj, "?", out);
    return undefined_element(obj, key, out);
}

/* Resolves Python slice bounds to a start, step and count over a sequence of len. */
static bool slice_bounds(hr_jctx *c, hr_jv start, hr_jv stop, hr_jv step, size_t len, int64_t *first, int64_t *stride,
                         size_t *count, int64_t *last_bound, bool *valid) {
    *valid = false;
    for (int k = 0; k < 3; k++) {
        hr_jv v = k == 0 ? start : k == 1 ? stop : step;
        if (v.kind != HR_JV_NONE && !is_int_like(v)) return true; /* Python's TypeError: Jinja yields undefined */
    }
    int64_t n = (int64_t)len;
    int64_t st = step.kind == HR_JV_NONE ? 1 : int_of(step);
    if (st == 0) return hr_jinja_fail(c, HR_ERR_INVALID, "ValueError: slice step cannot be zero");
    if (st > n + 1) st = n + 1;
    if (st < -(n + 1)) st = -(n + 1);
    int64_t lo, hi;
    int64_t bounds[2];
    hr_jv parts[2] = {start, stop};
    for (int k = 0; k < 2; k++) {
        if (parts[k].kind == HR_JV_NONE) {
            bounds[k] = k == 0 ? (st > 0 ? 0 : n - 1) : (st > 0 ? n : -1);
            continue;
        }
        int64_t v = int_of(parts[k]);
        if (v < 0) {
            /* before the start: Python's -1 for a negative step (which then takes the
             * first element or stops before it), else 0; compared first, so that v + n
             * cannot overflow */
            v = v < -n ? (st < 0 ? -1 : 0) : v + n;
        } else if (v >= n) {
            v = st < 0 ? n - 1 : n;
        }
        bounds[k] = v;
    }
    lo = bounds[0];
    hi = bounds[1];
    int64_t cnt = 0;
    if (st > 0 && hi > lo) cnt = (hi - lo - 1) / st + 1;
    if (st < 0 && lo > hi) cnt = (lo - hi - 1) / (-st) + 1;
    *first = lo;
    *last_bound = hi;
    *stride = st;
    *count = (size_t)cnt;
    *valid = true;
    return true;
}

bool hr_jinja_slice(hr_jctx *c, hr_jv obj, hr_jv start, hr_jv stop, hr_jv step, hr_jv *out) {
    if (obj.kind == HR_JV_UNDEFINED) return hr_jinja_undefined_error(c, obj);
    bool seq =
        hr_jv_is_seq(obj) && (hr_jv_list(obj)->view == HR_JLIST_PLAIN || hr_jv_list(obj)->view == HR_JLIST_RANGE);
    if (!seq && obj.kind != HR_JV_STRING)
        return *out = hr_jv_undefinedf("UndefinedError: %s cannot be sliced", object_repr(obj)), true;
    int64_t first, stride, bound;
    size_t count;
    bool valid;
    if (seq) {
        const hr_jlist *l = hr_jv_list(obj);
        if (!slice_bounds(c, start, stop, step, l->len, &first, &stride, &count, &bound, &valid)) return false;
        if (!valid) return *out = hr_jv_undefinedf("UndefinedError: slice indices must be integers or None"), true;
        hr_jlist *r = hr_jlist_new(count);
        if (!r) return hr_jinja_oom(c);
        r->view = l->view;
        /* a sliced range is the range Python's range.__getitem__ computes */
        const int64_t *p = l->range;
        r->range[0] = p[0] + first * p[2];
        r->range[1] = p[0] + bound * p[2];
        r->range[2] = p[2] * stride;
        *out = hr_jv_from_list(r, (hr_jv_kind)obj.kind);
        for (size_t k = 0; k < count; k++)
            if (!push(c, r, hr_jv_retain(l->v[first + (int64_t)k * stride]))) return hr_jv_release(*out), false;
        return true;
    }
    cpindex x;
    if (!cpindex_init(c, &x, hr_jv_str(obj))) return false;
    bool ok = slice_bounds(c, start, stop, step, x.n, &first, &stride, &count, &bound, &valid);
    if (ok && !valid) {
        *out = hr_jv_undefinedf("UndefinedError: slice indices must be integers or None");
    } else if (ok) {
        hr_jbuf b;
        hr_jbuf_init(&b, &c->budget);
        for (size_t k = 0; k < count; k++) {
            size_t i = (size_t)(first + (int64_t)k * stride);
            hr_jbuf_add(&b, x.s->s + cp_byte(&x, i), cp_byte(&x, i + 1) - cp_byte(&x, i));
        }
        ok = hr_jinja_buf_finish(c, &b, obj.safe, out);
    }
    cpindex_free(&x);
    return ok;
}

static bool string_chars(hr_jctx *c, hr_jv s, hr_jlist **out) {
    const hr_jstr *str = hr_jv_str(s);
    if (!new_list(c, out)) return false;
    for (size_t i = 0; i < str->len;) {
        uint32_t cp;
        size_t n = hr_utf8_decode(str->s + i, str->len - i, &cp);
        hr_jv ch;
        /* iterating a Markup yields plain str characters */
        if (!new_string(c, str->s + i, n, false, &ch) || !push(c, *out, ch)) return drop_list(*out), false;
        i += n;
    }
    return true;
}

bool hr_jinja_iterate(hr_jctx *c, hr_jv v, hr_jlist **out) {
    switch (v.kind) {
    case HR_JV_LIST:
    case HR_JV_TUPLE: *out = hr_jv_list(hr_jv_retain(v)); return true;
    case HR_JV_DICT: {
        const hr_jdict *d = hr_jv_dict(v);
        if (!new_list(c, out)) return false;
        for (size_t i = 0; i < d->len; i++)
            if (!push(c, *out, hr_jv_retain(d->k[i]))) return drop_list(*out), false;
        return true;
    }
    case HR_JV_STRING: return string_chars(c, v, out);
    case HR_JV_UNDEFINED: return new_list(c, out);
    case HR_JV_ITERATOR: {
        hr_jiter *it = (hr_jiter *)v.u.o;
        if (!new_list(c, out)) return false;
        for (; it->pos < it->items->len; it->pos++)
            if (!push(c, *out, hr_jv_retain(it->items->v[it->pos]))) return drop_list(*out), false;
        return true;
    }
    default: return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: '%s' object is not iterable", hr_jv_type_name(v));
    }
}

bool hr_jinja_len(hr_jctx *c, hr_jv v, int64_t *out) {
    switch (v.kind) {
    case HR_JV_STRING:
        *out = (int64_t)(hr_jv_str(v)->ascii ? hr_jv_str(v)->len : hr_utf8_count(hr_jv_str(v)->s, hr_jv_str(v)->len));
        return true;
    case HR_JV_LIST:
    case HR_JV_TUPLE: *out = (int64_t)hr_jv_list(v)->len; return true;
    case HR_JV_DICT: *out = (int64_t)hr_jv_dict(v)->len; return true;
    case HR_JV_UNDEFINED: *out = 0; return true;
    case HR_JV_LOOP: *out = (int64_t)((hr_jloop *)v.u.o)->items->len; return true;
    default: return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: object of type '%s' has no len()", hr_jv_type_name(v));
    }
}

bool hr_jinja_str(hr_jctx *c, hr_jv v, hr_jv *out) {
    if (v.kind == HR_JV_STRING) return *out = hr_jv_retain(v), true;
    hr_jbuf b;
    hr_jbuf_init(&b, &c->budget);
    if (!hr_jv_write_str(&b, v, c->err)) {
        hr_jbuf_free(&b);
        return false;
    }
    return hr_jinja_buf_finish(c, &b, false, out);
}

/* ---------------------------------------------------------------- operators */

static bool overflow(hr_jctx *c) {
    return hr_jinja_fail(c, HR_ERR_RANGE,
                         "OverflowError: the integer result does not fit in 64 bits (Python would use a big integer)");
}

static bool type_error_operands(hr_jctx *c, const char *op, hr_jv a, hr_jv b) {
    return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: unsupported operand type(s) for %s: '%s' and '%s'", op,
                         hr_jv_type_name(a), hr_jv_type_name(b));
}

/* Concatenation of two strings; markupsafe escapes the plain side when either is safe. */
static bool concat_strings(hr_jctx *c, hr_jv a, hr_jv b, hr_jv *out) {
    bool safe = a.safe || b.safe;
    hr_jbuf buf;
    hr_jbuf_init(&buf, &c->budget);
    hr_jv parts[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        const hr_jstr *s = hr_jv_str(parts[i]);
        if (safe && !parts[i].safe)
            hr_jv_write_escaped(&buf, s->s, s->len);
        else
            hr_jbuf_add(&buf, s->s, s->len);
    }
    return hr_jinja_buf_finish(c, &buf, safe, out);
}

static bool concat_lists(hr_jctx *c, hr_jv a, hr_jv b, hr_jv *out) {
    const hr_jlist *x = hr_jv_list(a), *y = hr_jv_list(b);
    hr_jlist *r = hr_jlist_new(x->len + y->len);
    if (!r) return hr_jinja_oom(c);
    *out = hr_jv_from_list(r, (hr_jv_kind)a.kind);
    for (size_t i = 0; i < x->len + y->len; i++)
        if (!push(c, r, hr_jv_retain(i < x->len ? x->v[i] : y->v[i - x->len]))) return hr_jv_release(*out), false;
    return true;
}

static bool repeat(hr_jctx *c, hr_jv seq, int64_t times, hr_jv *out) {
    size_t len = seq.kind == HR_JV_STRING ? hr_jv_str(seq)->len : hr_jv_list(seq)->len;
    /* repeating nothing any number of times is nothing: do not spin through the count */
    if (times < 0 || len == 0) times = 0;
    if (seq.kind == HR_JV_STRING) {
        const hr_jstr *s = hr_jv_str(seq);
        hr_jbuf b;
        hr_jbuf_init(&b, &c->budget);
        for (int64_t i = 0; i < times && !b.failed; i++) hr_jbuf_add(&b, s->s, s->len);
        return hr_jinja_buf_finish(c, &b, seq.safe, out);
    }
    const hr_jlist *l = hr_jv_list(seq);
    hr_jlist *r = hr_jlist_new(0);
    if (!r) return hr_jinja_oom(c);
    *out = hr_jv_from_list(r, (hr_jv_kind)seq.kind);
    for (int64_t i = 0; i < times; i++)
        for (size_t k = 0; k < len; k++)
            if (!push(c, r, hr_jv_retain(l->v[k]))) return hr_jv_release(*out), false;
    return true;
}

static bool zero_division(hr_jctx *c, bool floats, const char *what) {
    return hr_jinja_fail(c, HR_ERR_INVALID, "ZeroDivisionError: %s",
                         floats ? what : "integer division or modulo by zero");
}

static bool int_pow(hr_jctx *c, int64_t base, int64_t exp, hr_jv *out) {
    if (exp < 0) {
        if (base == 0)
            return hr_jinja_fail(c, HR_ERR_INVALID, "ZeroDivisionError: 0.0 cannot be raised to a negative power");
        return *out = hr_jv_float(pow((double)base, (double)exp)), true;
    }
    int64_t r = 1;
    while (exp > 0) {
        if ((exp & 1) && __builtin_mul_overflow(r, base, &r)) return overflow(c);
        exp >>= 1;
        if (exp && __builtin_mul_overflow(base, base, &base)) return overflow(c);
    }
    *out = hr_jv_int(r);
    return true;
}

static bool numeric_binop(hr_jctx *c, int op, hr_jv a, hr_jv b, hr_jv *out) {
    bool floats = a.kind == HR_JV_FLOAT || b.kind == HR_JV_FLOAT;
    int64_t x = int_of(a), y = int_of(b), r;
    double fx = float_of(a), fy = float_of(b);
    switch (op) {
    case HR_JT_ADD:
        if (floats) return *out = hr_jv_float(fx + fy), true;
        return __builtin_add_overflow(x, y, &r) ? overflow(c) : (*out = hr_jv_int(r), true);
    case HR_JT_SUB:
        if (floats) return *out = hr_jv_float(fx - fy), true;
        return __builtin_sub_overflow(x, y, &r) ? overflow(c) : (*out = hr_jv_int(r), true);
    case HR_JT_MUL:
        if (floats) return *out = hr_jv_float(fx * fy), true;
        return __builtin_mul_overflow(x, y, &r) ? overflow(c) : (*out = hr_jv_int(r), true);
    case HR_JT_DIV:
        if (fy == 0.0) return zero_division(c, true, "division by zero");
        return *out = hr_jv_float(fx / fy), true;
    case HR_JT_FLOORDIV:
    case HR_JT_MOD:
        if (floats) {
            /* CPython's float divmod: the remainder takes the divisor's sign */
            if (fy == 0.0)
                return zero_division(c, true, op == HR_JT_MOD ? "float modulo" : "float floor division by zero");
            double m = fmod(fx, fy), div = (fx - m) / fy;
            if (m != 0.0 && (fy < 0) != (m < 0)) {
                m += fy;
                div -= 1.0;
            }
            if (op == HR_JT_MOD) return *out = hr_jv_float(m != 0.0 ? m : copysign(0.0, fy)), true;
            double q = div != 0.0 ? floor(div) : copysign(0.0, fx / fy);
            if (div != 0.0 && div - q > 0.5) q += 1.0;
            return *out = hr_jv_float(q), true;
        }
        if (y == 0) return zero_division(c, false, NULL);
        if (x == INT64_MIN && y == -1) return op == HR_JT_MOD ? (*out = hr_jv_int(0), true) : overflow(c);
        {
            int64_t q = x / y, m = x % y;
            if (m != 0 && ((m < 0) != (y < 0))) {
                q -= 1;
                m += y;
            }
            *out = hr_jv_int(op == HR_JT_MOD ? m : q);
        }
        return true;
    case HR_JT_POW:
        if (floats) {
            if (fx == 0.0 && fy < 0)
                return hr_jinja_fail(c, HR_ERR_INVALID, "ZeroDivisionError: 0.0 cannot be raised to a negative power");
            if (fx < 0 && isfinite(fy) && fy != floor(fy))
                return hr_jinja_fail(
                    c, HR_ERR_UNSUPPORTED,
                    "a negative number to a fractional power is complex in Python, which is not supported");
            return *out = hr_jv_float(pow(fx, fy)), true;
        }
        return int_pow(c, x, y, out);
    }
    return hr_jinja_fail(c, HR_ERR_INVALID, "internal error: unknown operator");
}

bool hr_jinja_binop(hr_jctx *c, int op, hr_jv a, hr_jv b, hr_jv *out) {
    static const char *const spell[] = {
        [HR_JT_ADD] = "+",       [HR_JT_SUB] = "-", [HR_JT_MUL] = "*",          [HR_JT_DIV] = "/",
        [HR_JT_FLOORDIV] = "//", [HR_JT_MOD] = "%", [HR_JT_POW] = "** or pow()"};
    if (a.kind == HR_JV_UNDEFINED) return hr_jinja_undefined_error(c, a);
    if (b.kind == HR_JV_UNDEFINED) return hr_jinja_undefined_error(c, b);
    if (is_num(a) && is_num(b)) return numeric_binop(c, op, a, b, out);
    if (op == HR_JT_ADD) {
        if (a.kind == HR_JV_STRING && b.kind == HR_JV_STRING) return concat_strings(c, a, b, out);
        bool plain = hr_jv_is_seq(a) && hr_jv_list(a)->view == HR_JLIST_PLAIN;
        if (plain && a.kind == b.kind && hr_jv_list(b)->view == HR_JLIST_PLAIN) return concat_lists(c, a, b, out);
        if ((a.kind == HR_JV_STRING && !a.safe) || plain)
            return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: can only concatenate %s (not \"%s\") to %s",
                                 hr_jv_type_name(a), hr_jv_type_name(b), hr_jv_type_name(a));
    }
    if (op == HR_JT_MUL) {
        bool a_seq = a.kind == HR_JV_STRING || (hr_jv_is_seq(a) && hr_jv_list(a)->view == HR_JLIST_PLAIN);
        bool b_seq = b.kind == HR_JV_STRING || (hr_jv_is_seq(b) && hr_jv_list(b)->view == HR_JLIST_PLAIN);
        if (a_seq && is_int_like(b)) return repeat(c, a, int_of(b), out);
        if (b_seq && is_int_like(a)) return repeat(c, b, int_of(a), out);
    }
    if (op == HR_JT_MOD && a.kind == HR_JV_STRING)
        return hr_jinja_fail(c, HR_ERR_UNSUPPORTED, "printf-style string formatting with %% is not supported");
    return type_error_operands(c, spell[op], a, b);
}

bool hr_jinja_unary(hr_jctx *c, bool negate, hr_jv v, hr_jv *out) {
    if (v.kind == HR_JV_UNDEFINED) return hr_jinja_undefined_error(c, v);
    if (v.kind == HR_JV_FLOAT) return *out = hr_jv_float(negate ? -v.u.f : v.u.f), true;
    if (is_int_like(v)) {
        int64_t x = int_of(v);
        if (negate && x == INT64_MIN) return overflow(c);
        return *out = hr_jv_int(negate ? -x : x), true;
    }
    return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: bad operand type for unary %c: '%s'", negate ? '-' : '+',
                         hr_jv_type_name(v));
}

bool hr_jinja_contains(hr_jctx *c, hr_jv container, hr_jv item, bool *out) {
    *out = false;
    switch (container.kind) {
    case HR_JV_STRING: {
        if (item.kind != HR_JV_STRING)
            return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: 'in <string>' requires string as left operand, not %s",
                                 hr_jv_type_name(item));
        const hr_jstr *h = hr_jv_str(container), *n = hr_jv_str(item);
        *out = n->len == 0 || memmem(h->s, h->len, n->s, n->len) != NULL;
        return true;
    }
    case HR_JV_DICT:
        if (!hr_jv_hashable(item))
            return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: unhashable type: '%s'", hr_jv_type_name(item));
        *out = hr_jdict_get(hr_jv_dict(container), item) != NULL;
        return true;
    case HR_JV_UNDEFINED: return true;
    case HR_JV_LIST:
    case HR_JV_TUPLE: {
        const hr_jlist *l = hr_jv_list(container);
        for (size_t i = 0; i < l->len && !*out; i++)
            if (!hr_jv_equal(l->v[i], item, out, c->err)) return false;
        return true;
    }
    case HR_JV_ITERATOR: {
        hr_jiter *it = (hr_jiter *)container.u.o;
        while (it->pos < it->items->len && !*out)
            if (!hr_jv_equal(it->items->v[it->pos++], item, out, c->err)) return false;
        return true;
    }
    default:
        return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: argument of type '%s' is not iterable",
                             hr_jv_type_name(container));
    }
}

bool hr_jinja_compare(hr_jctx *c, int op, hr_jv a, hr_jv b, bool *out) {
    if (op == HR_JT_EQ || op == HR_JT_NE) {
        bool eq;
        if (!hr_jv_equal(a, b, &eq, c->err)) return false;
        *out = (op == HR_JT_EQ) == eq;
        return true;
    }
    static const char *const spell[] = {[HR_JT_LT] = "<", [HR_JT_LTEQ] = "<=", [HR_JT_GT] = ">", [HR_JT_GTEQ] = ">="};
    if (a.kind == HR_JV_UNDEFINED) return hr_jinja_undefined_error(c, a);
    if (b.kind == HR_JV_UNDEFINED) return hr_jinja_undefined_error(c, b);
    bool comparable = (is_num(a) && is_num(b)) || (a.kind == HR_JV_STRING && b.kind == HR_JV_STRING) ||
                      (a.kind == b.kind && hr_jv_is_seq(a));
    if (!comparable)
        return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: '%s' not supported between instances of '%s' and '%s'",
                             spell[op], hr_jv_type_name(a), hr_jv_type_name(b));
    if ((is_num(a) && isnan(float_of(a))) || (is_num(b) && isnan(float_of(b)))) return *out = false, true;
    int cmp;
    if (!hr_jv_compare(a, b, &cmp, c->err)) return false;
    *out = op == HR_JT_LT ? cmp < 0 : op == HR_JT_LTEQ ? cmp <= 0 : op == HR_JT_GT ? cmp > 0 : cmp >= 0;
    return true;
}

/* ---------------------------------------------------------------- argument binding */

bool hr_jinja_bind(hr_jctx *c, const char *what, const hr_jargs *a, const char *const *params, size_t n, hr_jv *out,
                   bool *given) {
    for (size_t i = 0; i < n; i++) {
        given[i] = false;
        out[i] = hr_jv_none();
    }
    if (a->npos > n)
        return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: %s takes at most %zu argument(s) (%zu given)", what, n,
                             a->npos);
    for (size_t i = 0; i < a->npos; i++) {
        out[i] = a->pos[i];
        given[i] = true;
    }
    for (size_t k = 0; k < a->nkw; k++) {
        size_t i = 0;
        while (i < n && strcmp(params[i], a->kwnames[k])) i++;
        if (i == n)
            return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: %s got an unexpected keyword argument '%s'", what,
                                 a->kwnames[k]);
        if (given[i])
            return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: %s got multiple values for argument '%s'", what,
                                 params[i]);
        out[i] = a->kw[k];
        given[i] = true;
    }
    return true;
}

/* ---------------------------------------------------------------- string operations */

static bool expect_str(hr_jctx *c, hr_jv v, const char *what) {
    if (v.kind == HR_JV_STRING) return true;
    return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: %s must be str, not %s", what, hr_jv_type_name(v));
}

static bool case_refused(hr_jctx *c, uint32_t cp) {
    return hr_jinja_fail(c, HR_ERR_UNSUPPORTED, "changing the case of U+%04X is not supported", cp);
}

/* The nearest code point in [lo, hi) that is not case-ignorable, scanning forward or
 * backward; whether it is cased (Unicode's Final_Sigma context). */
static bool cased_neighbour(const hr_jstr *s, size_t lo, size_t hi, bool forward) {
    while (lo < hi) {
        uint32_t cp;
        size_t p = forward ? lo : hi - 1;
        if (!forward)
            while (p > lo && ((unsigned char)s->s[p] & 0xC0) == 0x80) p--;
        size_t n = hr_utf8_decode(s->s + p, hi - p, &cp);
        if (!hr_uni_is_case_ignorable(cp)) return hr_uni_is_cased(cp);
        if (forward)
            lo = p + n;
        else
            hi = p;
    }
    return false;
}

bool hr_jinja_str_case(hr_jctx *c, hr_jv v, int how, hr_jv *out) {
    const hr_jstr *s = hr_jv_str(v);
    hr_jbuf b;
    hr_jbuf_init(&b, &c->budget);
    bool prev_cased = false, word_start = true, first = true;
    /* the title filter lowers each word's tail as its own string (item[1:].lower()) */
    size_t context_start = 0;
    for (size_t i = 0; i < s->len;) {
        uint32_t cp, mapped[3];
        size_t n = hr_utf8_decode(s->s + i, s->len - i, &cp);
        hr_case_mode mode;
        switch (how) {
        case HR_JSTR_LOWER: mode = HR_CASE_LOWER; break;
        case HR_JSTR_UPPER: mode = HR_CASE_UPPER; break;
        case HR_JSTR_TITLE: mode = prev_cased ? HR_CASE_LOWER : HR_CASE_TITLE; break;
        case HR_JSTR_CAPITALIZE: mode = first ? HR_CASE_TITLE : HR_CASE_LOWER; break;
        default:
            mode = word_start ? HR_CASE_UPPER : HR_CASE_LOWER;
            if (word_start) context_start = i + n;
            break;
        }
        int count = hr_uni_case(cp, mode, mapped);
        if (count == 0) {
            hr_jbuf_free(&b);
            return case_refused(c, cp);
        }
        /* Python lowers a capital sigma that ends a word to the final form */
        if (cp == 0x3A3 && mode == HR_CASE_LOWER && cased_neighbour(s, context_start, i, false) &&
            !cased_neighbour(s, i + n, s->len, true))
            mapped[0] = 0x3C2;
        for (int k = 0; k < count; k++) hr_jbuf_add_cp(&b, mapped[k]);
        prev_cased = hr_uni_is_cased(cp);
        word_start = hr_uni_is_space(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
        first = false;
        i += n;
    }
    return hr_jinja_buf_finish(c, &b, v.safe, out);
}

static bool in_chars(const hr_jstr *chars, uint32_t cp) {
    if (!chars) return hr_uni_is_space(cp);
    for (size_t i = 0; i < chars->len;) {
        uint32_t x;
        i += hr_utf8_decode(chars->s + i, chars->len - i, &x);
        if (x == cp) return true;
    }
    return false;
}

bool hr_jinja_str_strip(hr_jctx *c, hr_jv v, hr_jv chars, bool left, bool right, hr_jv *out) {
    if (chars.kind != HR_JV_NONE && chars.kind != HR_JV_STRING)
        return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: strip arg must be None or str");
    const hr_jstr *s = hr_jv_str(v), *set = chars.kind == HR_JV_STRING ? hr_jv_str(chars) : NULL;
    size_t start = 0, end = s->len;
    while (left && start < end) {
        uint32_t cp;
        size_t n = hr_utf8_decode(s->s + start, end - start, &cp);
        if (!in_chars(set, cp)) break;
        start += n;
    }
    while (right && end > start) {
        size_t p = end - 1;
        while (p > start && ((unsigned char)s->s[p] & 0xC0) == 0x80) p--;
        uint32_t cp;
        size_t n = hr_utf8_decode(s->s + p, end - p, &cp);
        if (p + n != end) n = 1, p = end - 1, cp = HR_UTF8_ESCAPE_BASE + (unsigned char)s->s[p];
        if (!in_chars(set, cp)) break;
        end = p;
    }
    return new_string(c, s->s + start, end - start, v.safe, out);
}

/* Appends one argument of a safe string's method, escaped unless it is safe itself. */
static void add_arg(hr_jbuf *b, hr_jv self, hr_jv arg) {
    const hr_jstr *s = hr_jv_str(arg);
    if (self.safe && !arg.safe)
        hr_jv_write_escaped(b, s->s, s->len);
    else
        hr_jbuf_add(b, s->s, s->len);
}

bool hr_jinja_str_replace(hr_jctx *c, hr_jv v, hr_jv old, hr_jv repl, int64_t count, hr_jv *out) {
    if (!expect_str(c, old, "replace() argument 1") || !expect_str(c, repl, "replace() argument 2")) return false;
    const hr_jstr *s = hr_jv_str(v), *o = hr_jv_str(old);
    hr_jbuf b;
    hr_jbuf_init(&b, &c->budget);
    size_t i = 0;
    if (o->len == 0) {
        /* an empty pattern matches before every code point and at the end */
        for (;;) {
            if (count-- == 0) break;
            add_arg(&b, v, repl);
            if (i >= s->len) break;
            uint32_t cp;
            size_t n = hr_utf8_decode(s->s + i, s->len - i, &cp);
            hr_jbuf_add(&b, s->s + i, n);
            i += n;
        }
    } else {
        while (count != 0) {
            const char *hit = memmem(s->s + i, s->len - i, o->s, o->len);
            if (!hit) break;
            hr_jbuf_add(&b, s->s + i, (size_t)(hit - (s->s + i)));
            add_arg(&b, v, repl);
            i = (size_t)(hit - s->s) + o->len;
            count--;
        }
    }
    hr_jbuf_add(&b, s->s + i, s->len - i);
    return hr_jinja_buf_finish(c, &b, v.safe, out);
}

/* Moves over a run of whitespace (or of non-whitespace when spaces is false) inside
 * [lo, hi), from the left or from the right; returns where the run ends. */
static size_t skip_spaces(const hr_jstr *s, size_t lo, size_t hi, bool spaces, bool forward) {
    while (lo < hi) {
        uint32_t cp;
        if (forward) {
            size_t n = hr_utf8_decode(s->s + lo, hi - lo, &cp);
            if (hr_uni_is_space(cp) != spaces) return lo;
            lo += n;
        } else {
            size_t q = hi - 1;
            while (q > lo && ((unsigned char)s->s[q] & 0xC0) == 0x80) q--;
            if (q + hr_utf8_decode(s->s + q, hi - q, &cp) != hi)
                cp = HR_UTF8_ESCAPE_BASE + (unsigned char)s->s[q = hi - 1];
            if (hr_uni_is_space(cp) != spaces) return hi;
            hi = q;
        }
    }
    return forward ? lo : hi;
}

/* str.split / str.rsplit. */
static bool str_split(hr_jctx *c, hr_jv v, hr_jv sep, int64_t maxsplit, bool from_right, hr_jv *out) {
    const hr_jstr *s = hr_jv_str(v);
    if (sep.kind != HR_JV_NONE && !expect_str(c, sep, "separator")) return false;
    const hr_jstr *p = sep.kind == HR_JV_STRING ? hr_jv_str(sep) : NULL;
    if (p && p->len == 0) return hr_jinja_fail(c, HR_ERR_INVALID, "ValueError: empty separator");
    /* collect [start, end) byte ranges of the parts, then build the list in order */
    size_t cap = 16, n = 0;
    size_t(*parts)[2] = malloc(cap * sizeof *parts);
    if (!parts) return hr_jinja_oom(c);
    bool ok = true;
    size_t lo = 0, hi = s->len;
#define ADD_PART(a, b)                                                  \
    do {                                                                \
        if (n == cap) {                                                 \
            size_t(*more)[2] = realloc(parts, 2 * cap * sizeof *parts); \
            if (!more) {                                                \
                ok = hr_jinja_oom(c);                                   \
                goto done;                                              \
            }                                                           \
            parts = more;                                               \
            cap *= 2;                                                   \
        }                                                               \
        parts[n][0] = (a);                                              \
        parts[n][1] = (b);                                              \
        n++;                                                            \
    } while (0)
    if (p) {
        for (;;) {
            const char *hit = NULL;
            if (maxsplit != 0) {
                if (!from_right) {
                    hit = memmem(s->s + lo, hi - lo, p->s, p->len);
                } else {
                    for (size_t k = hi; k >= lo + p->len && !hit; k--)
                        if (!memcmp(s->s + k - p->len, p->s, p->len)) hit = s->s + k - p->len;
                }
            }
            if (!hit) {
                ADD_PART(lo, hi);
                break;
            }
            size_t at = (size_t)(hit - s->s);
            if (!from_right) {
                ADD_PART(lo, at);
                lo = at + p->len;
            } else {
                ADD_PART(at + p->len, hi);
                hi = at;
            }
            maxsplit--;
        }
    } else {
        /* whitespace runs separate parts; leading and trailing whitespace is dropped */
        for (;;) {
            if (!from_right) {
                lo = skip_spaces(s, lo, hi, true, true);
                if (lo >= hi) break;
                size_t e = maxsplit == 0 ? hi : skip_spaces(s, lo, hi, false, true);
                ADD_PART(lo, e);
                lo = e;
            } else {
                hi = skip_spaces(s, lo, hi, true, false);
                if (hi <= lo) break;
                size_t b = maxsplit == 0 ? lo : skip_spaces(s, lo, hi, false, false);
                ADD_PART(b, hi);
                hi = b;
            }
            if (maxsplit-- == 0) break;
        }
    }
#undef ADD_PART
    {
        hr_jlist *l = hr_jlist_new(n);
        if (!l) {
            ok = hr_jinja_oom(c);
            goto done;
        }
        *out = hr_jv_from_list(l, HR_JV_LIST);
        for (size_t k = 0; k < n && ok; k++) {
            size_t idx = from_right ? n - 1 - k : k;
            hr_jv part;
            ok = new_string(c, s->s + parts[idx][0], parts[idx][1] - parts[idx][0], v.safe, &part) && push(c, l, part);
        }
        if (!ok) hr_jv_release(*out);
    }
done:
    free(parts);
    return ok;
}

static bool str_splitlines(hr_jctx *c, hr_jv v, bool keepends, hr_jv *out) {
    const hr_jstr *s = hr_jv_str(v);
    hr_jlist *l;
    if (!new_list(c, &l)) return false;
    *out = hr_jv_from_list(l, HR_JV_LIST);
    size_t start = 0;
    for (size_t i = 0; i < s->len;) {
        uint32_t cp;
        size_t n = hr_utf8_decode(s->s + i, s->len - i, &cp);
        if (!hr_uni_is_linebreak(cp)) {
            i += n;
            continue;
        }
        size_t end = i;
        i += n;
        if (cp == '\r' && i < s->len && s->s[i] == '\n') i++;
        hr_jv part;
        if (!new_string(c, s->s + start, (keepends ? i : end) - start, v.safe, &part) || !push(c, l, part))
            return hr_jv_release(*out), false;
        start = i;
    }
    if (start < s->len) {
        hr_jv part;
        if (!new_string(c, s->s + start, s->len - start, v.safe, &part) || !push(c, l, part))
            return hr_jv_release(*out), false;
    }
    return true;
}

static bool str_join(hr_jctx *c, hr_jv sep, hr_jv iterable, hr_jv *out) {
    hr_jlist *items;
    if (!hr_jinja_iterate(c, iterable, &items)) return false;
    hr_jbuf b;
    hr_jbuf_init(&b, &c->budget);
    bool ok = true;
    for (size_t i = 0; i < items->len && ok; i++) {
        if (items->v[i].kind != HR_JV_STRING) {
            ok = hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: sequence item %zu: expected str instance, %s found", i,
                               hr_jv_type_name(items->v[i]));
            break;
        }
        if (i) hr_jbuf_add(&b, hr_jv_str(sep)->s, hr_jv_str(sep)->len);
        add_arg(&b, sep, items->v[i]);
    }
    drop_list(items);
    if (!ok) {
        hr_jbuf_free(&b);
        return false;
    }
    return hr_jinja_buf_finish(c, &b, sep.safe, out);
}

/* Code-point position of needle in s within [start, end), searching from the left or
 * right; -1 when absent. */
static bool str_find(hr_jctx *c, hr_jv v, hr_jv needle, bool from_right, int64_t *out) {
    if (!expect_str(c, needle, "argument")) return false;
    const hr_jstr *s = hr_jv_str(v), *n = hr_jv_str(needle);
    const char *hit = NULL;
    if (!from_right) {
        hit = n->len ? memmem(s->s, s->len, n->s, n->len) : s->s;
    } else {
        for (size_t k = s->len + 1; k-- > n->len && !hit;)
            if (!memcmp(s->s + k - n->len, n->s, n->len)) hit = s->s + k - n->len;
    }
    *out = hit ? (int64_t)hr_utf8_count(s->s, (size_t)(hit - s->s)) : -1;
    return true;
}

static bool str_affix(hr_jctx *c, hr_jv v, hr_jv affix, bool at_end, bool *out) {
    const hr_jstr *s = hr_jv_str(v);
    hr_jv single[1] = {affix};
    const hr_jv *options = single;
    size_t count = 1;
    if (affix.kind == HR_JV_TUPLE) {
        options = hr_jv_list(affix)->v;
        count = hr_jv_list(affix)->len;
    }
    *out = false;
    for (size_t i = 0; i < count; i++) {
        if (options[i].kind != HR_JV_STRING)
            return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: %s first arg must be str or a tuple of str, not %s",
                                 at_end ? "endswith" : "startswith", hr_jv_type_name(options[i]));
        const hr_jstr *a = hr_jv_str(options[i]);
        if (a->len <= s->len && !memcmp(at_end ? s->s + s->len - a->len : s->s, a->s, a->len)) *out = true;
    }
    return true;
}

/* isdigit/isalpha/isalnum over ASCII; other scripts need Unicode tables, so refuse. */
static bool str_class(hr_jctx *c, hr_jv v, int id, bool *out) {
    const hr_jstr *s = hr_jv_str(v);
    bool any_cased = false, all_upper = true, all_lower = true;
    *out = s->len > 0;
    for (size_t i = 0; i < s->len;) {
        uint32_t cp, m[3];
        size_t n = hr_utf8_decode(s->s + i, s->len - i, &cp);
        i += n;
        if (id == M_ISSPACE) {
            *out = *out && hr_uni_is_space(cp);
            continue;
        }
        if (id == M_ISUPPER || id == M_ISLOWER) {
            if (!hr_uni_is_cased(cp)) continue;
            if (hr_uni_case(cp, HR_CASE_LOWER, m) == 0) return case_refused(c, cp);
            any_cased = true;
            bool is_lower = m[0] == cp;
            all_upper = all_upper && !is_lower;
            all_lower = all_lower && is_lower;
            continue;
        }
        if (cp >= 0x80)
            return hr_jinja_fail(c, HR_ERR_UNSUPPORTED, "str.%s() on non-ASCII text is not supported",
                                 id == M_ISDIGIT   ? "isdigit"
                                 : id == M_ISALPHA ? "isalpha"
                                                   : "isalnum");
        bool digit = cp >= '0' && cp <= '9', alpha = (cp | 32) >= 'a' && (cp | 32) <= 'z';
        *out = *out && (id == M_ISDIGIT ? digit : id == M_ISALPHA ? alpha : digit || alpha);
    }
    if (id == M_ISUPPER) *out = any_cased && all_upper;
    if (id == M_ISLOWER) *out = any_cased && all_lower;
    return true;
}

static bool dict_view(hr_jctx *c, hr_jv self, int id, hr_jv *out) {
    const hr_jdict *d = hr_jv_dict(self);
    hr_jlist *l = hr_jlist_new(d->len);
    if (!l) return hr_jinja_oom(c);
    l->view = id == M_ITEMS ? HR_JLIST_DICT_ITEMS : id == M_KEYS ? HR_JLIST_DICT_KEYS : HR_JLIST_DICT_VALUES;
    *out = hr_jv_from_list(l, HR_JV_LIST);
    for (size_t i = 0; i < d->len; i++) {
        hr_jv item;
        if (id == M_ITEMS) {
            hr_jlist *pair = hr_jlist_new(2);
            if (!pair) return hr_jv_release(*out), hr_jinja_oom(c);
            item = hr_jv_from_list(pair, HR_JV_TUPLE);
            if (!push(c, pair, hr_jv_retain(d->k[i])) || !push(c, pair, hr_jv_retain(d->v[i])))
                return hr_jv_release(item), hr_jv_release(*out), false;
        } else {
            item = hr_jv_retain(id == M_KEYS ? d->k[i] : d->v[i]);
        }
        if (!push(c, l, item)) return hr_jv_release(*out), false;
    }
    return true;
}

static bool dict_copy(hr_jctx *c, hr_jv self, hr_jv *out) {
    const hr_jdict *d = hr_jv_dict(self);
    hr_jdict *r = hr_jdict_new();
    if (!r) return hr_jinja_oom(c);
    *out = hr_jv_from_dict(r, HR_JV_DICT);
    for (size_t i = 0; i < d->len; i++)
        if (!hr_jdict_set(r, hr_jv_retain(d->k[i]), hr_jv_retain(d->v[i]), &c->budget, c->err))
            return hr_jv_release(*out), false;
    return true;
}

static bool call_method(hr_jctx *c, const hr_jfunc *f, const hr_jargs *a, hr_jv *out) {
    static const char *const p_chars[] = {"chars"}, *const p_affix[] = {"prefix", "start", "end"},
                             *const p_replace[] = {"old", "new", "count"}, *const p_split[] = {"sep", "maxsplit"},
                             *const p_one[] = {"value"}, *const p_get[] = {"key", "default"},
                             *const p_lines[] = {"keepends"};
    static const struct {
        int id;
        const char *const *params;
        size_t n;
    } sig[] = {
        {M_STRIP, p_chars, 1},      {M_LSTRIP, p_chars, 1},     {M_RSTRIP, p_chars, 1},     {M_STARTSWITH, p_affix, 3},
        {M_ENDSWITH, p_affix, 3},   {M_REPLACE, p_replace, 3},  {M_SPLIT, p_split, 2},      {M_RSPLIT, p_split, 2},
        {M_JOIN, p_one, 1},         {M_FIND, p_one, 1},         {M_RFIND, p_one, 1},        {M_COUNT, p_one, 1},
        {M_SPLITLINES, p_lines, 1}, {M_REMOVEPREFIX, p_one, 1}, {M_REMOVESUFFIX, p_one, 1}, {M_GET, p_get, 2},
        {M_LIST_COUNT, p_one, 1},   {M_LIST_INDEX, p_one, 1},
    };
    const char *const *params = NULL;
    size_t np = 0;
    for (size_t i = 0; i < sizeof sig / sizeof sig[0]; i++)
        if (sig[i].id == f->id) params = sig[i].params, np = sig[i].n;
    hr_jv arg[3] = {hr_jv_none(), hr_jv_none(), hr_jv_none()};
    bool given[3] = {false, false, false};
    char what[64];
    snprintf(what, sizeof what, "%s()", f->name);
    if (f->id != M_CYCLE && !hr_jinja_bind(c, what, a, params, np, arg, given)) return false;
    /* arguments a method cannot do without */
    static const int needs_one[] = {M_STARTSWITH,   M_ENDSWITH,     M_JOIN, M_FIND,       M_RFIND,     M_COUNT,
                                    M_REMOVEPREFIX, M_REMOVESUFFIX, M_GET,  M_LIST_COUNT, M_LIST_INDEX};
    for (size_t i = 0; i < sizeof needs_one / sizeof needs_one[0]; i++)
        if (f->id == needs_one[i] && !given[0])
            return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: %s takes at least 1 argument (0 given)", what);
    if (f->id == M_REPLACE && (!given[0] || !given[1]))
        return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: replace() takes at least 2 arguments");
    hr_jv self = f->self;
    int64_t num;
    bool flag;
    switch (f->id) {
    case M_STRIP:
    case M_LSTRIP:
    case M_RSTRIP: return hr_jinja_str_strip(c, self, arg[0], f->id != M_RSTRIP, f->id != M_LSTRIP, out);
    case M_STARTSWITH:
    case M_ENDSWITH:
        if (given[1] || given[2])
            return hr_jinja_fail(c, HR_ERR_UNSUPPORTED, "%s with start/end is not supported", what);
        return str_affix(c, self, arg[0], f->id == M_ENDSWITH, &flag) && (*out = hr_jv_bool(flag), true);
    case M_UPPER: return hr_jinja_str_case(c, self, HR_JSTR_UPPER, out);
    case M_LOWER: return hr_jinja_str_case(c, self, HR_JSTR_LOWER, out);
    case M_TITLE: return hr_jinja_str_case(c, self, HR_JSTR_TITLE, out);
    case M_CAPITALIZE: return hr_jinja_str_case(c, self, HR_JSTR_CAPITALIZE, out);
    case M_REPLACE:
        num = -1;
        if (given[2] && !hr_jinja_int_arg(c, arg[2], "replace() count", &num)) return false;
        return hr_jinja_str_replace(c, self, arg[0], arg[1], num, out);
    case M_SPLIT:
    case M_RSPLIT:
        num = -1;
        if (given[1] && !hr_jinja_int_arg(c, arg[1], "maxsplit", &num)) return false;
        return str_split(c, self, arg[0], num, f->id == M_RSPLIT, out);
    case M_JOIN: return str_join(c, self, arg[0], out);
    case M_FIND:
    case M_RFIND: return str_find(c, self, arg[0], f->id == M_RFIND, &num) && (*out = hr_jv_int(num), true);
    case M_COUNT: {
        if (!expect_str(c, arg[0], "argument")) return false;
        const hr_jstr *s = hr_jv_str(self), *n = hr_jv_str(arg[0]);
        int64_t count = 0;
        if (n->len == 0) {
            count = (int64_t)hr_utf8_count(s->s, s->len) + 1;
        } else {
            for (const char *p = s->s; (p = memmem(p, s->len - (size_t)(p - s->s), n->s, n->len)); p += n->len) count++;
        }
        return *out = hr_jv_int(count), true;
    }
    case M_SPLITLINES: return str_splitlines(c, self, given[0] && hr_jv_truthy(arg[0]), out);
    case M_REMOVEPREFIX:
    case M_REMOVESUFFIX: {
        if (!expect_str(c, arg[0], "argument")) return false;
        const hr_jstr *s = hr_jv_str(self), *x = hr_jv_str(arg[0]);
        bool end = f->id == M_REMOVESUFFIX;
        if (!str_affix(c, self, arg[0], end, &flag)) return false;
        size_t cut = flag ? x->len : 0;
        return new_string(c, s->s + (end ? 0 : cut), s->len - cut, self.safe, out);
    }
    case M_ISSPACE:
    case M_ISDIGIT:
    case M_ISALPHA:
    case M_ISALNUM:
    case M_ISUPPER:
    case M_ISLOWER: return str_class(c, self, f->id, &flag) && (*out = hr_jv_bool(flag), true);
    case M_ITEMS:
    case M_KEYS:
    case M_VALUES: return dict_view(c, self, f->id, out);
    case M_COPY: return dict_copy(c, self, out);
    case M_GET: {
        if (!hr_jv_hashable(arg[0]))
            return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: unhashable type: '%s'", hr_jv_type_name(arg[0]));
        hr_jv *v = hr_jdict_get(hr_jv_dict(self), arg[0]);
        *out = hr_jv_retain(v ? *v : arg[1]);
        return true;
    }
    case M_LIST_COUNT:
    case M_LIST_INDEX: {
        const hr_jlist *l = hr_jv_list(self);
        int64_t count = 0;
        for (size_t i = 0; i < l->len; i++) {
            bool eq;
            if (!hr_jv_equal(l->v[i], arg[0], &eq, c->err)) return false;
            if (eq && f->id == M_LIST_INDEX) return *out = hr_jv_int((int64_t)i), true;
            count += eq;
        }
        if (f->id == M_LIST_INDEX) return hr_jinja_fail(c, HR_ERR_INVALID, "ValueError: value is not in list");
        return *out = hr_jv_int(count), true;
    }
    case M_CYCLE: {
        if (a->nkw || a->npos == 0) return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: no items for cycling given");
        const hr_jloop *lp = (const hr_jloop *)self.u.o;
        *out = hr_jv_retain(a->pos[lp->index0 % a->npos]);
        return true;
    }
    }
    return hr_jinja_fail(c, HR_ERR_INVALID, "internal error: unknown method");
}

bool hr_jinja_call(hr_jctx *c, const hr_jfunc *f, const hr_jargs *args, hr_jv *out) {
    switch (f->kind) {
    case HR_JF_GLOBAL: return hr_jinja_call_global(c, f->id, args, out);
    case HR_JF_METHOD: return call_method(c, f, args, out);
    default:
        return hr_jinja_fail(c, HR_ERR_UNSUPPORTED, "the %s method '%s' is not supported", hr_jv_type_name(f->self),
                             f->name);
    }
}
