/* Jinja2's filters and tests, and the global functions of Hugging Face's chat-template
 * environment, with Jinja 3.1's semantics (generators where Jinja returns generators). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_lex.h"
#include "tokenizer/jinja_unicode.h"

enum {
    F_ABS,
    F_ATTR,
    F_CAPITALIZE,
    F_DEFAULT,
    F_DICTSORT,
    F_ESCAPE,
    F_FIRST,
    F_FLOAT,
    F_INDENT,
    F_INT,
    F_ITEMS,
    F_JOIN,
    F_LAST,
    F_LENGTH,
    F_LIST,
    F_LOWER,
    F_MAP,
    F_MAX,
    F_MIN,
    F_REJECT,
    F_REJECTATTR,
    F_REPLACE,
    F_REVERSE,
    F_SAFE,
    F_SELECT,
    F_SELECTATTR,
    F_SORT,
    F_STRING,
    F_SUM,
    F_TITLE,
    F_TOJSON,
    F_TRIM,
    F_UNIQUE,
    F_UPPER,
};

typedef struct {
    const char *name;
    int id;
} named_id;

/* id -2: a filter Jinja has that headroom refuses */
static const named_id filters[] = {
    {"abs", F_ABS},
    {"attr", F_ATTR},
    {"capitalize", F_CAPITALIZE},
    {"count", F_LENGTH},
    {"d", F_DEFAULT},
    {"default", F_DEFAULT},
    {"dictsort", F_DICTSORT},
    {"e", F_ESCAPE},
    {"escape", F_ESCAPE},
    {"first", F_FIRST},
    {"float", F_FLOAT},
    {"indent", F_INDENT},
    {"int", F_INT},
    {"items", F_ITEMS},
    {"join", F_JOIN},
    {"last", F_LAST},
    {"length", F_LENGTH},
    {"list", F_LIST},
    {"lower", F_LOWER},
    {"map", F_MAP},
    {"max", F_MAX},
    {"min", F_MIN},
    {"reject", F_REJECT},
    {"rejectattr", F_REJECTATTR},
    {"replace", F_REPLACE},
    {"reverse", F_REVERSE},
    {"safe", F_SAFE},
    {"select", F_SELECT},
    {"selectattr", F_SELECTATTR},
    {"sort", F_SORT},
    {"string", F_STRING},
    {"sum", F_SUM},
    {"title", F_TITLE},
    {"tojson", F_TOJSON},
    {"trim", F_TRIM},
    {"unique", F_UNIQUE},
    {"upper", F_UPPER},
    {"batch", -2},
    {"center", -2},
    {"filesizeformat", -2},
    {"forceescape", -2},
    {"format", -2},
    {"groupby", -2},
    {"pprint", -2},
    {"random", -2},
    {"round", -2},
    {"slice", -2},
    {"striptags", -2},
    {"truncate", -2},
    {"urlencode", -2},
    {"urlize", -2},
    {"wordcount", -2},
    {"wordwrap", -2},
    {"xmlattr", -2},
};

enum {
    T_BOOLEAN,
    T_CALLABLE,
    T_DEFINED,
    T_DIVISIBLEBY,
    T_EQ,
    T_ESCAPED,
    T_EVEN,
    T_FALSE,
    T_FILTER,
    T_FLOAT,
    T_GE,
    T_GT,
    T_IN,
    T_INTEGER,
    T_ITERABLE,
    T_LE,
    T_LOWER,
    T_LT,
    T_MAPPING,
    T_NE,
    T_NONE,
    T_NUMBER,
    T_ODD,
    T_SAMEAS,
    T_SEQUENCE,
    T_STRING,
    T_TEST,
    T_TRUE,
    T_UNDEFINED,
    T_UPPER,
};

static const named_id tests[] = {
    {"boolean", T_BOOLEAN},
    {"callable", T_CALLABLE},
    {"defined", T_DEFINED},
    {"divisibleby", T_DIVISIBLEBY},
    {"eq", T_EQ},
    {"equalto", T_EQ},
    {"==", T_EQ},
    {"escaped", T_ESCAPED},
    {"even", T_EVEN},
    {"false", T_FALSE},
    {"filter", T_FILTER},
    {"float", T_FLOAT},
    {"ge", T_GE},
    {">=", T_GE},
    {"gt", T_GT},
    {">", T_GT},
    {"greaterthan", T_GT},
    {"in", T_IN},
    {"integer", T_INTEGER},
    {"iterable", T_ITERABLE},
    {"le", T_LE},
    {"<=", T_LE},
    {"lower", T_LOWER},
    {"lt", T_LT},
    {"<", T_LT},
    {"lessthan", T_LT},
    {"mapping", T_MAPPING},
    {"ne", T_NE},
    {"!=", T_NE},
    {"none", T_NONE},
    {"number", T_NUMBER},
    {"odd", T_ODD},
    {"sameas", T_SAMEAS},
    {"sequence", T_SEQUENCE},
    {"string", T_STRING},
    {"test", T_TEST},
    {"true", T_TRUE},
    {"undefined", T_UNDEFINED},
    {"upper", T_UPPER},
};

enum { G_RANGE, G_NAMESPACE, G_DICT, G_RAISE_EXCEPTION, G_STRFTIME_NOW, G_LIPSUM, G_CYCLER, G_JOINER };
static const char *const globals[] = {"range",        "namespace", "dict",   "raise_exception",
                                      "strftime_now", "lipsum",    "cycler", "joiner"};

/* The sandbox refuses larger ranges (jinja2.sandbox.MAX_RANGE). */
enum { MAX_RANGE = 100000 };

static int lookup(const named_id *table, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(table[i].name, name)) return table[i].id;
    return -1;
}

int hr_jinja_filter_id(const char *name) { return lookup(filters, sizeof filters / sizeof filters[0], name); }
int hr_jinja_test_id(const char *name) { return lookup(tests, sizeof tests / sizeof tests[0], name); }
size_t hr_jinja_global_count(void) { return sizeof globals / sizeof globals[0]; }
const char *hr_jinja_global_name(size_t i) { return globals[i]; }

/* ---------------------------------------------------------------- helpers */

static bool is_int_like(hr_jv v) { return v.kind == HR_JV_INT || v.kind == HR_JV_BOOL; }
static int64_t int_of(hr_jv v) { return v.kind == HR_JV_BOOL ? (int64_t)v.u.b : v.u.i; }

static void drop_list(hr_jlist *l) {
    if (l) hr_jv_release(hr_jv_from_list(l, HR_JV_LIST));
}

/* Binds a filter's arguments (after its input) to its parameter names. */
#define BIND(c, what, args, params, vals, given) \
    hr_jinja_bind(c, what, args, params, sizeof params / sizeof params[0], vals, given)

static bool no_args(hr_jctx *c, const char *what, const hr_jargs *a) {
    if (a->npos == 0 && a->nkw == 0) return true;
    return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: %s takes no arguments", what);
}

/* Wraps a finished list as a generator value. */
static bool as_generator(hr_jctx *c, hr_jlist *l, hr_jv *out) {
    hr_jiter *it = hr_jiter_new(l);
    if (!it) return hr_jinja_oom(c);
    *out = hr_jv_from_obj(&it->h, HR_JV_ITERATOR);
    return true;
}

static bool str_arg(hr_jctx *c, hr_jv v, const char *what) {
    if (v.kind == HR_JV_STRING) return true;
    return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: %s must be a string, not %s", what, hr_jv_type_name(v));
}

/* Jinja's make_attrgetter: "a.b" or "0" walks items with getitem; default replaces an
 * undefined result. */
static bool get_attribute_path(hr_jctx *c, hr_jv item, hr_jv attribute, hr_jv dflt, bool has_default, hr_jv *out) {
    if (is_int_like(attribute)) {
        if (!hr_jinja_getitem(c, item, attribute, out)) return false;
    } else {
        if (!str_arg(c, attribute, "attribute")) return false;
        hr_jv cur = hr_jv_retain(item);
        for (const char *path = hr_jv_str(attribute)->s;;) {
            const char *dot = strchr(path, '.');
            size_t len = dot ? (size_t)(dot - path) : strlen(path);
            hr_jv key, next;
            if (len > 0 && strspn(path, "0123456789") >= len)
                key = hr_jv_int(strtoll(path, NULL, 10));
            else if (!hr_jv_new_string(&key, path, len))
                return hr_jv_release(cur), hr_jinja_oom(c);
            bool ok = hr_jinja_getitem(c, cur, key, &next);
            hr_jv_release(key);
            hr_jv_release(cur);
            if (!ok) return false;
            cur = next;
            if (!dot) break;
            path = dot + 1;
        }
        *out = cur;
    }
    if (has_default && out->kind == HR_JV_UNDEFINED) {
        hr_jv_release(*out);
        *out = hr_jv_retain(dflt);
    }
    return true;
}

/* The items of a filter's input, for filters that treat a false value as empty
 * (Jinja's select/map family starts with "if value:"). */
static bool items_if_true(hr_jctx *c, hr_jv in, hr_jlist **out) {
    if (!hr_jv_truthy(in) && in.kind != HR_JV_ITERATOR) return (*out = hr_jlist_new(0)) != NULL || hr_jinja_oom(c);
    return hr_jinja_iterate(c, in, out);
}

/* A key for case-insensitive comparisons: strings lowered, anything else as is. */
static bool fold_key(hr_jctx *c, hr_jv v, bool case_sensitive, hr_jv *out) {
    if (case_sensitive || v.kind != HR_JV_STRING) return *out = hr_jv_retain(v), true;
    return hr_jinja_str_case(c, v, HR_JSTR_LOWER, out);
}

/* ---------------------------------------------------------------- select / map family */

static bool run_test_by_name(hr_jctx *c, hr_jv name, hr_jv item, const hr_jargs *rest, bool *out) {
    if (!str_arg(c, name, "test name")) return false;
    int id = hr_jinja_test_id(hr_jv_str(name)->s);
    if (id < 0)
        return hr_jinja_fail(c, HR_ERR_UNSUPPORTED, "TemplateRuntimeError: No test named '%s'.", hr_jv_str(name)->s);
    return hr_jinja_test(c, id, item, rest, out);
}

/* select, reject, selectattr, rejectattr. */
static bool select_filter(hr_jctx *c, hr_jv in, const hr_jargs *a, bool by_attr, bool keep_when, hr_jv *out) {
    size_t off = by_attr ? 1 : 0;
    if (by_attr && a->npos == 0)
        return hr_jinja_fail(c, HR_ERR_INVALID, "FilterArgumentError: Missing parameter for attribute name");
    hr_jargs rest = *a;
    bool has_test = a->npos > off;
    if (has_test) {
        rest.pos = a->pos + off + 1;
        rest.npos = a->npos - off - 1;
    }
    hr_jlist *items, *kept = NULL;
    if (!items_if_true(c, in, &items)) return false;
    bool ok = (kept = hr_jlist_new(0)) != NULL || hr_jinja_oom(c);
    for (size_t i = 0; ok && i < items->len; i++) {
        hr_jv subject = hr_jv_retain(items->v[i]);
        if (by_attr) {
            hr_jv v;
            ok = get_attribute_path(c, items->v[i], a->pos[0], hr_jv_none(), false, &v);
            hr_jv_release(subject);
            subject = ok ? v : hr_jv_none();
        }
        bool pass = false;
        if (ok)
            ok = has_test ? run_test_by_name(c, a->pos[off], subject, &rest, &pass)
                          : (pass = hr_jv_truthy(subject), true);
        hr_jv_release(subject);
        if (ok && pass == keep_when) ok = hr_jlist_push(kept, hr_jv_retain(items->v[i]), &c->budget, c->err);
    }
    drop_list(items);
    if (!ok) return drop_list(kept), false;
    return as_generator(c, kept, out);
}

static bool map_filter(hr_jctx *c, hr_jv in, const hr_jargs *a, hr_jv *out) {
    hr_jv attribute = hr_jv_none(), dflt = hr_jv_none();
    bool by_attr = false, has_default = false;
    if (a->npos == 0) {
        for (size_t k = 0; k < a->nkw; k++) {
            if (!strcmp(a->kwnames[k], "attribute"))
                attribute = a->kw[k], by_attr = true;
            else if (!strcmp(a->kwnames[k], "default"))
                dflt = a->kw[k], has_default = true;
            else
                return hr_jinja_fail(c, HR_ERR_INVALID, "FilterArgumentError: Unexpected keyword argument '%s'",
                                     a->kwnames[k]);
        }
        if (!by_attr) return hr_jinja_fail(c, HR_ERR_INVALID, "FilterArgumentError: map requires a filter argument");
    }
    int fid = -1;
    hr_jargs rest = *a;
    if (!by_attr) {
        if (!str_arg(c, a->pos[0], "filter name")) return false;
        fid = hr_jinja_filter_id(hr_jv_str(a->pos[0])->s);
        if (fid < 0)
            return hr_jinja_fail(c, HR_ERR_UNSUPPORTED, "TemplateRuntimeError: No filter named '%s'.",
                                 hr_jv_str(a->pos[0])->s);
        rest.pos = a->pos + 1;
        rest.npos = a->npos - 1;
    }
    hr_jlist *items, *mapped = NULL;
    if (!items_if_true(c, in, &items)) return false;
    bool ok = (mapped = hr_jlist_new(items->len)) != NULL || hr_jinja_oom(c);
    for (size_t i = 0; ok && i < items->len; i++) {
        hr_jv v;
        ok = by_attr ? get_attribute_path(c, items->v[i], attribute, dflt, has_default, &v)
                     : hr_jinja_filter(c, fid, items->v[i], &rest, &v);
        if (ok) ok = hr_jlist_push(mapped, v, &c->budget, c->err);
    }
    drop_list(items);
    if (!ok) return drop_list(mapped), false;
    return as_generator(c, mapped, out);
}

/* ---------------------------------------------------------------- sorting */

typedef struct {
    hr_jv key;
    size_t index;
} sort_entry;

/* A stable merge sort on keys with Python's < (errors stop it). */
static bool merge_sort(hr_jctx *c, sort_entry *e, sort_entry *tmp, size_t n, bool reverse) {
    if (n < 2) return true;
    size_t mid = n / 2;
    if (!merge_sort(c, e, tmp, mid, reverse) || !merge_sort(c, e + mid, tmp, n - mid, reverse)) return false;
    size_t i = 0, j = mid, k = 0;
    while (i < mid && j < n) {
        int cmp;
        if (!hr_jv_compare(e[j].key, e[i].key, &cmp, c->err)) return false;
        /* reverse keeps equal items in their original order, as sorted(reverse=True) does */
        bool take_right = reverse ? cmp > 0 : cmp < 0;
        tmp[k++] = take_right ? e[j++] : e[i++];
    }
    while (i < mid) tmp[k++] = e[i++];
    while (j < n) tmp[k++] = e[j++];
    memcpy(e, tmp, n * sizeof *e);
    return true;
}

/* Sorts items by keys (consumed); returns the permutation in order. */
static bool sort_by_keys(hr_jctx *c, hr_jv *keys, size_t n, bool reverse, size_t **order) {
    sort_entry *e = calloc(n ? n : 1, sizeof *e), *tmp = calloc(n ? n : 1, sizeof *tmp);
    *order = calloc(n ? n : 1, sizeof **order);
    bool ok = e && tmp && *order;
    if (!ok) hr_jinja_oom(c);
    for (size_t i = 0; ok && i < n; i++) e[i] = (sort_entry){keys[i], i};
    ok = ok && merge_sort(c, e, tmp, n, reverse);
    for (size_t i = 0; ok && i < n; i++) (*order)[i] = e[i].index;
    for (size_t i = 0; i < n; i++) hr_jv_release(keys[i]);
    free(e);
    free(tmp);
    if (!ok) {
        free(*order);
        *order = NULL;
    }
    return ok;
}

/* sort, dictsort, max, min share this: the keys of items by attribute and case. */
static bool item_keys(hr_jctx *c, const hr_jlist *items, hr_jv attribute, bool case_sensitive, hr_jv **keys) {
    *keys = calloc(items->len ? items->len : 1, sizeof **keys);
    if (!*keys) return hr_jinja_oom(c);
    for (size_t i = 0; i < items->len; i++) {
        hr_jv raw;
        bool ok = attribute.kind == HR_JV_NONE
                      ? (raw = hr_jv_retain(items->v[i]), true)
                      : get_attribute_path(c, items->v[i], attribute, hr_jv_none(), false, &raw);
        if (ok) {
            ok = fold_key(c, raw, case_sensitive, &(*keys)[i]);
            hr_jv_release(raw);
        }
        if (!ok) {
            for (size_t k = 0; k < i; k++) hr_jv_release((*keys)[k]);
            free(*keys);
            return false;
        }
    }
    return true;
}

static bool sorted_list(hr_jctx *c, hr_jlist *items, hr_jv attribute, bool case_sensitive, bool reverse, hr_jv *out) {
    hr_jv *keys;
    size_t *order;
    if (!item_keys(c, items, attribute, case_sensitive, &keys)) return false;
    bool ok = sort_by_keys(c, keys, items->len, reverse, &order);
    free(keys);
    if (!ok) return false;
    hr_jlist *r = hr_jlist_new(items->len);
    ok = r != NULL || hr_jinja_oom(c);
    for (size_t i = 0; ok && i < items->len; i++)
        ok = hr_jlist_push(r, hr_jv_retain(items->v[order[i]]), &c->budget, c->err);
    free(order);
    if (!ok) return drop_list(r), false;
    *out = hr_jv_from_list(r, HR_JV_LIST);
    return true;
}

static bool min_max(hr_jctx *c, hr_jv in, const hr_jargs *a, bool want_max, hr_jv *out) {
    static const char *const params[] = {"case_sensitive", "attribute"};
    hr_jv v[2];
    bool given[2];
    if (!BIND(c, want_max ? "max" : "min", a, params, v, given)) return false;
    hr_jlist *items;
    if (!hr_jinja_iterate(c, in, &items)) return false;
    hr_jv *keys;
    if (!item_keys(c, items, v[1], hr_jv_truthy(v[0]), &keys)) return drop_list(items), false;
    bool ok = true;
    size_t best = 0;
    for (size_t i = 1; ok && i < items->len; i++) {
        int cmp;
        ok = hr_jv_compare(keys[i], keys[best], &cmp, c->err);
        if (ok && (want_max ? cmp > 0 : cmp < 0)) best = i;
    }
    if (ok)
        *out = items->len ? hr_jv_retain(items->v[best])
                          : hr_jv_undefinedf("UndefinedError: No aggregated item, sequence was empty.");
    for (size_t i = 0; i < items->len; i++) hr_jv_release(keys[i]);
    free(keys);
    drop_list(items);
    return ok;
}

/* ---------------------------------------------------------------- individual filters */

static bool filter_tojson(hr_jctx *c, hr_jv in, const hr_jargs *a, hr_jv *out) {
    static const char *const params[] = {"ensure_ascii", "indent", "separators", "sort_keys"};
    hr_jv v[4];
    bool given[4];
    if (!BIND(c, "tojson", a, params, v, given)) return false;
    char spaces[64];
    hr_jjson_opts o = {.ensure_ascii = hr_jv_truthy(v[0]), .sort_keys = hr_jv_truthy(v[3])};
    if (is_int_like(v[1])) {
        int64_t n = int_of(v[1]);
        if (n > (int64_t)sizeof spaces)
            return hr_jinja_fail(c, HR_ERR_UNSUPPORTED, "tojson indent of more than 64 spaces");
        n = n < 0 ? 0 : n;
        memset(spaces, ' ', (size_t)n);
        o.indent = spaces;
        o.indent_len = (size_t)n;
    } else if (v[1].kind == HR_JV_STRING) {
        o.indent = hr_jv_str(v[1])->s;
        o.indent_len = hr_jv_str(v[1])->len;
    } else if (v[1].kind != HR_JV_NONE) {
        return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: tojson indent must be an int or a string");
    }
    /* json.dumps' default separators drop the space after commas when indenting */
    o.item_sep = o.indent ? "," : ", ";
    o.key_sep = ": ";
    if (v[2].kind != HR_JV_NONE) {
        const hr_jlist *sep = hr_jv_is_seq(v[2]) ? hr_jv_list(v[2]) : NULL;
        if (!sep || sep->len != 2 || sep->v[0].kind != HR_JV_STRING || sep->v[1].kind != HR_JV_STRING)
            return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: tojson separators must be a pair of strings");
        o.item_sep = hr_jv_str(sep->v[0])->s;
        o.item_sep_len = hr_jv_str(sep->v[0])->len;
        o.key_sep = hr_jv_str(sep->v[1])->s;
        o.key_sep_len = hr_jv_str(sep->v[1])->len;
    } else {
        o.item_sep_len = strlen(o.item_sep);
        o.key_sep_len = strlen(o.key_sep);
    }
    hr_jbuf b;
    hr_jbuf_init(&b, &c->budget);
    if (!hr_jv_write_json(&b, in, &o, c->err)) {
        hr_jbuf_free(&b);
        return false;
    }
    return hr_jinja_buf_finish(c, &b, false, out);
}

/* Jinja's indent filter: lines after the first (and the first with first=True) get the
 * indentation; blank lines only with blank=True. */
static bool filter_indent(hr_jctx *c, hr_jv in, const hr_jargs *a, hr_jv *out) {
    static const char *const params[] = {"width", "first", "blank"};
    hr_jv v[3];
    bool given[3];
    if (!BIND(c, "indent", a, params, v, given)) return false;
    if (in.kind == HR_JV_UNDEFINED) return hr_jinja_undefined_error(c, in);
    if (in.kind != HR_JV_STRING)
        return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: unsupported operand type(s) for +=: '%s' and 'str'",
                             hr_jv_type_name(in));
    hr_jv s = hr_jv_retain(in);
    hr_jbuf pad;
    hr_jbuf_init(&pad, &c->budget);
    if (!given[0]) {
        hr_jbuf_adds(&pad, "    ");
    } else if (v[0].kind == HR_JV_STRING) {
        hr_jbuf_add(&pad, hr_jv_str(v[0])->s, hr_jv_str(v[0])->len);
    } else if (is_int_like(v[0])) {
        for (int64_t i = 0; i < int_of(v[0]) && !pad.failed; i++) hr_jbuf_addc(&pad, ' ');
    } else {
        hr_jv_release(s);
        return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: indent width must be an int or a string");
    }
    bool first = hr_jv_truthy(v[1]), blank = hr_jv_truthy(v[2]);
    const hr_jstr *str = hr_jv_str(s);
    hr_jbuf b;
    hr_jbuf_init(&b, &c->budget);
    if (first) hr_jbuf_add(&b, pad.data, pad.len);
    /* s + "\n" split with str.splitlines(), joined back with "\n" */
    size_t line_start = 0;
    bool first_line = true;
    for (size_t i = 0; i <= str->len;) {
        uint32_t cp = '\n';
        size_t n = i < str->len ? hr_utf8_decode(str->s + i, str->len - i, &cp) : 1;
        if (i < str->len && !hr_uni_is_linebreak(cp)) {
            i += n;
            continue;
        }
        /* the appended "\n" joins a final "\r" into one line break */
        if (i == str->len && line_start == i && i > 0 && str->s[i - 1] == '\r') break;
        size_t line_end = i;
        i += n;
        if (cp == '\r' && i < str->len && str->s[i] == '\n') i++;
        if (!first_line) {
            hr_jbuf_addc(&b, '\n');
            if (blank || line_end > line_start) hr_jbuf_add(&b, pad.data, pad.len);
        }
        hr_jbuf_add(&b, str->s + line_start, line_end - line_start);
        first_line = false;
        line_start = i;
        if (i > str->len) break;
    }
    if (pad.failed) {
        hr_jbuf_free(&b);
        hr_jbuf_error(&pad, c->err);
        hr_jv_release(s);
        return false;
    }
    hr_jbuf_free(&pad);
    bool safe = s.safe;
    hr_jv_release(s);
    return hr_jinja_buf_finish(c, &b, safe, out);
}

static bool filter_join(hr_jctx *c, hr_jv in, const hr_jargs *a, hr_jv *out) {
    static const char *const params[] = {"d", "attribute"};
    hr_jv v[2];
    bool given[2];
    if (!BIND(c, "join", a, params, v, given)) return false;
    hr_jlist *items;
    if (!hr_jinja_iterate(c, in, &items)) return false;
    hr_jbuf b;
    hr_jbuf_init(&b, &c->budget);
    bool ok = true;
    for (size_t i = 0; ok && i < items->len; i++) {
        if (i && given[0]) ok = hr_jv_write_str(&b, v[0], c->err);
        hr_jv item = hr_jv_retain(items->v[i]);
        if (ok && v[1].kind != HR_JV_NONE) {
            hr_jv got;
            ok = get_attribute_path(c, items->v[i], v[1], hr_jv_none(), false, &got);
            hr_jv_release(item);
            item = ok ? got : hr_jv_none();
        }
        if (ok) ok = hr_jv_write_str(&b, item, c->err);
        hr_jv_release(item);
    }
    drop_list(items);
    if (!ok) {
        hr_jbuf_free(&b);
        return false;
    }
    return hr_jinja_buf_finish(c, &b, false, out);
}

/* first and last: the end item, or undefined for an empty sequence. */
static bool filter_end_item(hr_jctx *c, hr_jv in, bool last, hr_jv *out) {
    if (in.kind == HR_JV_ITERATOR) {
        hr_jiter *it = (hr_jiter *)in.u.o;
        if (last) return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: 'generator' object is not reversible");
        if (it->pos < it->items->len) return *out = hr_jv_retain(it->items->v[it->pos++]), true;
        return *out = hr_jv_undefinedf("UndefinedError: No first item, sequence was empty."), true;
    }
    hr_jlist *items;
    if (!hr_jinja_iterate(c, in, &items)) return false;
    if (items->len)
        *out = hr_jv_retain(items->v[last ? items->len - 1 : 0]);
    else
        *out = hr_jv_undefinedf("UndefinedError: No %s item, sequence was empty.", last ? "last" : "first");
    drop_list(items);
    return true;
}

static bool is_alnum(char ch) { return (ch >= '0' && ch <= '9') || ((ch | 32) >= 'a' && (ch | 32) <= 'z'); }

/* Python's int(text, base) and float(text): surrounding whitespace, a sign, and single
 * underscores between digits are accepted; hexadecimal floats are not. */
static bool parse_python_number(const hr_jstr *s, bool want_int, int base, double *f, int64_t *i) {
    size_t a = 0, b = s->len;
    while (a < b) {
        uint32_t cp;
        size_t n = hr_utf8_decode(s->s + a, b - a, &cp);
        if (!hr_uni_is_space(cp)) break;
        a += n;
    }
    while (b > a && (s->s[b - 1] == ' ' || (s->s[b - 1] >= '\t' && s->s[b - 1] <= '\r'))) b--;
    char buf[128];
    size_t k = 0;
    if (a == b || b - a >= sizeof buf) return false;
    for (size_t p = a; p < b; p++) {
        char ch = s->s[p];
        if (ch == '_') {
            if (p == a || p + 1 == b || !is_alnum(s->s[p - 1]) || !is_alnum(s->s[p + 1])) return false;
            continue;
        }
        if ((unsigned char)ch >= 0x80 || (!want_int && (ch == 'x' || ch == 'X'))) return false;
        buf[k++] = ch;
    }
    buf[k] = '\0';
    char *end;
    errno = 0;
    if (want_int) {
        long long v = strtoll(buf, &end, base);
        if (*end || end == buf || errno) return false;
        *i = v;
    } else {
        *f = strtod(buf, &end);
        if (*end || end == buf) return false;
    }
    return true;
}

static bool filter_int(hr_jctx *c, hr_jv in, const hr_jargs *a, hr_jv *out) {
    static const char *const params[] = {"default", "base"};
    hr_jv v[2];
    bool given[2];
    if (!BIND(c, "int", a, params, v, given)) return false;
    int64_t base = 10;
    if (given[1] && !hr_jinja_int_arg(c, v[1], "int base", &base)) return false;
    hr_jv dflt = given[0] ? v[0] : hr_jv_int(0);
    if (in.kind == HR_JV_UNDEFINED) return hr_jinja_undefined_error(c, in);
    if (is_int_like(in)) return *out = hr_jv_int(int_of(in)), true;
    double f = NAN;
    if (in.kind == HR_JV_STRING) {
        int64_t i;
        if (base >= 2 && base <= 36 && parse_python_number(hr_jv_str(in), true, (int)base, &f, &i))
            return *out = hr_jv_int(i), true;
        /* Jinja's quirk: "42.23"|int is 42 */
        if (!parse_python_number(hr_jv_str(in), false, 10, &f, &i)) return *out = hr_jv_retain(dflt), true;
    } else if (in.kind == HR_JV_FLOAT) {
        f = in.u.f;
    } else {
        return *out = hr_jv_retain(dflt), true;
    }
    if (isnan(f)) return *out = hr_jv_retain(dflt), true;
    if (isinf(f) || f >= 9223372036854775808.0 || f < -9223372036854775808.0)
        return hr_jinja_fail(c, HR_ERR_RANGE, "OverflowError: the integer does not fit in 64 bits");
    return *out = hr_jv_int((int64_t)f), true;
}

static bool filter_float(hr_jctx *c, hr_jv in, const hr_jargs *a, hr_jv *out) {
    static const char *const params[] = {"default"};
    hr_jv v[1];
    bool given[1];
    if (!BIND(c, "float", a, params, v, given)) return false;
    if (in.kind == HR_JV_UNDEFINED) return hr_jinja_undefined_error(c, in);
    if (in.kind == HR_JV_FLOAT) return *out = in, true;
    if (is_int_like(in)) return *out = hr_jv_float((double)int_of(in)), true;
    double f;
    int64_t unused;
    if (in.kind == HR_JV_STRING && parse_python_number(hr_jv_str(in), false, 10, &f, &unused))
        return *out = hr_jv_float(f), true;
    return *out = given[0] ? hr_jv_retain(v[0]) : hr_jv_float(0.0), true;
}

static bool filter_items(hr_jctx *c, hr_jv in, hr_jv *out) {
    if (in.kind == HR_JV_UNDEFINED) {
        hr_jlist *l = hr_jlist_new(0);
        return l ? as_generator(c, l, out) : hr_jinja_oom(c);
    }
    if (in.kind != HR_JV_DICT)
        return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: Can only get item pairs from a mapping.");
    const hr_jdict *d = hr_jv_dict(in);
    hr_jlist *l = hr_jlist_new(d->len);
    if (!l) return hr_jinja_oom(c);
    for (size_t i = 0; i < d->len; i++) {
        hr_jlist *pair = hr_jlist_new(2);
        if (!pair) return drop_list(l), hr_jinja_oom(c);
        bool ok = hr_jlist_push(pair, hr_jv_retain(d->k[i]), &c->budget, c->err) &&
                  hr_jlist_push(pair, hr_jv_retain(d->v[i]), &c->budget, c->err);
        if (!ok || !hr_jlist_push(l, hr_jv_from_list(pair, HR_JV_TUPLE), &c->budget, c->err)) {
            if (!ok) drop_list(pair);
            return drop_list(l), false;
        }
    }
    return as_generator(c, l, out);
}

static bool filter_list(hr_jctx *c, hr_jv in, hr_jv *out) {
    hr_jlist *items;
    if (!hr_jinja_iterate(c, in, &items)) return false;
    hr_jlist *copy = hr_jlist_new(items->len);
    bool ok = copy != NULL || hr_jinja_oom(c);
    for (size_t i = 0; ok && i < items->len; i++)
        ok = hr_jlist_push(copy, hr_jv_retain(items->v[i]), &c->budget, c->err);
    drop_list(items);
    if (!ok) return drop_list(copy), false;
    *out = hr_jv_from_list(copy, HR_JV_LIST);
    return true;
}

static bool filter_reverse(hr_jctx *c, hr_jv in, hr_jv *out) {
    if (in.kind == HR_JV_STRING) {
        hr_jv step = hr_jv_int(-1);
        return hr_jinja_slice(c, in, hr_jv_none(), hr_jv_none(), step, out);
    }
    hr_jlist *items;
    if (!hr_jinja_iterate(c, in, &items)) return false;
    hr_jlist *r = hr_jlist_new(items->len);
    bool ok = r != NULL || hr_jinja_oom(c);
    for (size_t i = items->len; ok && i-- > 0;) ok = hr_jlist_push(r, hr_jv_retain(items->v[i]), &c->budget, c->err);
    bool was_generator = in.kind == HR_JV_ITERATOR;
    drop_list(items);
    if (!ok) return drop_list(r), false;
    /* reversed() of a list or dict is an iterator; a generator is listed then reversed */
    if (was_generator) return *out = hr_jv_from_list(r, HR_JV_LIST), true;
    return as_generator(c, r, out);
}

static bool filter_unique(hr_jctx *c, hr_jv in, const hr_jargs *a, hr_jv *out) {
    static const char *const params[] = {"case_sensitive", "attribute"};
    hr_jv v[2];
    bool given[2];
    if (!BIND(c, "unique", a, params, v, given)) return false;
    hr_jlist *items;
    if (!hr_jinja_iterate(c, in, &items)) return false;
    hr_jv *keys;
    if (!item_keys(c, items, v[1], hr_jv_truthy(v[0]), &keys)) return drop_list(items), false;
    /* the keys seen so far, as a dict used as a set */
    hr_jlist *kept = hr_jlist_new(0);
    hr_jdict *seen = hr_jdict_new();
    bool ok = (kept && seen) || hr_jinja_oom(c);
    for (size_t i = 0; ok && i < items->len; i++) {
        if (!hr_jv_hashable(keys[i])) {
            ok = hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: unhashable type: '%s'", hr_jv_type_name(keys[i]));
            break;
        }
        if (hr_jdict_get(seen, keys[i])) continue;
        ok = hr_jdict_set(seen, hr_jv_retain(keys[i]), hr_jv_none(), NULL, c->err) &&
             hr_jlist_push(kept, hr_jv_retain(items->v[i]), &c->budget, c->err);
    }
    for (size_t i = 0; i < items->len; i++) hr_jv_release(keys[i]);
    free(keys);
    drop_list(items);
    if (seen) hr_jv_release(hr_jv_from_dict(seen, HR_JV_DICT));
    if (!ok) return drop_list(kept), false;
    return as_generator(c, kept, out);
}

static bool filter_dictsort(hr_jctx *c, hr_jv in, const hr_jargs *a, hr_jv *out) {
    static const char *const params[] = {"case_sensitive", "by", "reverse"};
    hr_jv v[3];
    bool given[3];
    if (!BIND(c, "dictsort", a, params, v, given)) return false;
    if (in.kind != HR_JV_DICT) return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: dictsort needs a mapping");
    int by = 0;
    if (given[1]) {
        if (!str_arg(c, v[1], "dictsort by")) return false;
        const char *s = hr_jv_str(v[1])->s;
        if (!strcmp(s, "value"))
            by = 1;
        else if (strcmp(s, "key"))
            return hr_jinja_fail(c, HR_ERR_INVALID,
                                 "FilterArgumentError: You can only sort by either \"key\" or \"value\"");
    }
    hr_jv pairs;
    if (!filter_items(c, in, &pairs)) return false;
    hr_jlist *items;
    bool ok = hr_jinja_iterate(c, pairs, &items);
    hr_jv_release(pairs);
    if (!ok) return false;
    hr_jv attribute = hr_jv_int(by);
    ok = sorted_list(c, items, attribute, hr_jv_truthy(v[0]), hr_jv_truthy(v[2]), out);
    drop_list(items);
    return ok;
}

static bool filter_sum(hr_jctx *c, hr_jv in, const hr_jargs *a, hr_jv *out) {
    static const char *const params[] = {"attribute", "start"};
    hr_jv v[2];
    bool given[2];
    if (!BIND(c, "sum", a, params, v, given)) return false;
    hr_jlist *items;
    if (!hr_jinja_iterate(c, in, &items)) return false;
    hr_jv total = given[1] ? hr_jv_retain(v[1]) : hr_jv_int(0);
    bool ok = true;
    for (size_t i = 0; ok && i < items->len; i++) {
        hr_jv item = hr_jv_none(), next;
        ok = given[0] ? get_attribute_path(c, items->v[i], v[0], hr_jv_none(), false, &item)
                      : (item = hr_jv_retain(items->v[i]), true);
        if (ok) ok = hr_jinja_binop(c, HR_JT_ADD, total, item, &next);
        hr_jv_release(item);
        if (ok) {
            hr_jv_release(total);
            total = next;
        }
    }
    drop_list(items);
    if (!ok) return hr_jv_release(total), false;
    *out = total;
    return true;
}

/* A string filter applied to str(value): lower, upper, capitalize, title, trim. */
static bool string_filter(hr_jctx *c, hr_jv in, int how, hr_jv chars, hr_jv *out) {
    hr_jv s;
    if (!hr_jinja_str(c, in, &s)) return false;
    bool ok = how < 0 ? hr_jinja_str_strip(c, s, chars, true, true, out) : hr_jinja_str_case(c, s, how, out);
    hr_jv_release(s);
    return ok;
}

bool hr_jinja_filter(hr_jctx *c, int id, hr_jv in, const hr_jargs *a, hr_jv *out) {
    if (!hr_jinja_step(c, 1)) return false;
    hr_jv v[3];
    bool given[3];
    switch (id) {
    case F_ABS:
        if (!no_args(c, "abs", a)) return false;
        if (in.kind == HR_JV_FLOAT) return *out = hr_jv_float(fabs(in.u.f)), true;
        if (is_int_like(in)) return hr_jinja_unary(c, int_of(in) < 0, hr_jv_int(int_of(in)), out);
        return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: bad operand type for abs(): '%s'", hr_jv_type_name(in));
    case F_ATTR: {
        static const char *const params[] = {"name"};
        if (!BIND(c, "attr", a, params, v, given) || !str_arg(c, v[0], "attr name")) return false;
        return hr_jinja_getattr(c, in, hr_jv_str(v[0])->s, out);
    }
    case F_DEFAULT: {
        static const char *const params[] = {"default_value", "boolean"};
        if (!BIND(c, "default", a, params, v, given)) return false;
        bool use_default = in.kind == HR_JV_UNDEFINED || (hr_jv_truthy(v[1]) && !hr_jv_truthy(in));
        if (!use_default) return *out = hr_jv_retain(in), true;
        if (given[0]) return *out = hr_jv_retain(v[0]), true;
        return hr_jv_new_string(out, "", 0) || hr_jinja_oom(c);
    }
    case F_DICTSORT: return filter_dictsort(c, in, a, out);
    case F_ESCAPE: {
        if (!no_args(c, "escape", a)) return false;
        if (in.kind == HR_JV_STRING && in.safe) return *out = hr_jv_retain(in), true;
        hr_jv s;
        if (!hr_jinja_str(c, in, &s)) return false;
        hr_jbuf b;
        hr_jbuf_init(&b, &c->budget);
        hr_jv_write_escaped(&b, hr_jv_str(s)->s, hr_jv_str(s)->len);
        hr_jv_release(s);
        return hr_jinja_buf_finish(c, &b, true, out);
    }
    case F_FIRST:
    case F_LAST: return no_args(c, id == F_FIRST ? "first" : "last", a) && filter_end_item(c, in, id == F_LAST, out);
    case F_FLOAT: return filter_float(c, in, a, out);
    case F_INDENT: return filter_indent(c, in, a, out);
    case F_INT: return filter_int(c, in, a, out);
    case F_ITEMS: return no_args(c, "items", a) && filter_items(c, in, out);
    case F_JOIN: return filter_join(c, in, a, out);
    case F_LENGTH: {
        int64_t n;
        return no_args(c, "length", a) && hr_jinja_len(c, in, &n) && (*out = hr_jv_int(n), true);
    }
    case F_LIST: return no_args(c, "list", a) && filter_list(c, in, out);
    case F_LOWER:
    case F_UPPER:
    case F_CAPITALIZE:
    case F_TITLE: {
        static const int how[] = {[F_LOWER] = HR_JSTR_LOWER,
                                  [F_UPPER] = HR_JSTR_UPPER,
                                  [F_CAPITALIZE] = HR_JSTR_CAPITALIZE,
                                  [F_TITLE] = HR_JSTR_WORDS};
        return no_args(c, "string filters", a) && string_filter(c, in, how[id], hr_jv_none(), out);
    }
    case F_TRIM: {
        static const char *const params[] = {"chars"};
        return BIND(c, "trim", a, params, v, given) && string_filter(c, in, -1, v[0], out);
    }
    case F_MAP: return map_filter(c, in, a, out);
    case F_MAX:
    case F_MIN: return min_max(c, in, a, id == F_MAX, out);
    case F_SELECT: return select_filter(c, in, a, false, true, out);
    case F_REJECT: return select_filter(c, in, a, false, false, out);
    case F_SELECTATTR: return select_filter(c, in, a, true, true, out);
    case F_REJECTATTR: return select_filter(c, in, a, true, false, out);
    case F_REPLACE: {
        static const char *const params[] = {"old", "new", "count"};
        if (!BIND(c, "replace", a, params, v, given)) return false;
        if (!given[0] || !given[1]) return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: replace needs old and new");
        int64_t count = -1;
        if (given[2] && v[2].kind != HR_JV_NONE && !hr_jinja_int_arg(c, v[2], "replace count", &count)) return false;
        hr_jv s, old, repl;
        if (!hr_jinja_str(c, in, &s)) return false;
        if (!hr_jinja_str(c, v[0], &old)) return hr_jv_release(s), false;
        if (!hr_jinja_str(c, v[1], &repl)) return hr_jv_release(s), hr_jv_release(old), false;
        /* without autoescape Jinja works on plain str: no markup escaping */
        s.safe = old.safe = repl.safe = false;
        bool ok = hr_jinja_str_replace(c, s, old, repl, count, out);
        hr_jv_release(s);
        hr_jv_release(old);
        hr_jv_release(repl);
        return ok;
    }
    case F_REVERSE: return no_args(c, "reverse", a) && filter_reverse(c, in, out);
    case F_SAFE: {
        if (!no_args(c, "safe", a)) return false;
        if (!hr_jinja_str(c, in, out)) return false;
        out->safe = true;
        return true;
    }
    case F_SORT: {
        static const char *const params[] = {"reverse", "case_sensitive", "attribute"};
        if (!BIND(c, "sort", a, params, v, given)) return false;
        hr_jlist *items;
        if (!hr_jinja_iterate(c, in, &items)) return false;
        bool ok = sorted_list(c, items, v[2], hr_jv_truthy(v[1]), hr_jv_truthy(v[0]), out);
        drop_list(items);
        return ok;
    }
    case F_STRING: return no_args(c, "string", a) && hr_jinja_str(c, in, out);
    case F_SUM: return filter_sum(c, in, a, out);
    case F_TOJSON: return filter_tojson(c, in, a, out);
    case F_UNIQUE: return filter_unique(c, in, a, out);
    }
    return hr_jinja_fail(c, HR_ERR_INVALID, "internal error: unknown filter");
}

/* ---------------------------------------------------------------- tests */

static bool test_compare(hr_jctx *c, int op, hr_jv in, const hr_jargs *a, bool *out) {
    static const char *const params[] = {"other"};
    hr_jv v[1];
    bool given[1];
    if (!BIND(c, "comparison test", a, params, v, given)) return false;
    if (!given[0]) return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: the test needs a value to compare with");
    return hr_jinja_compare(c, op, in, v[0], out);
}

bool hr_jinja_test(hr_jctx *c, int id, hr_jv in, const hr_jargs *a, bool *out) {
    if (!hr_jinja_step(c, 1)) return false;
    static const char *const one[] = {"value"};
    hr_jv v[1];
    bool given[1];
    int k = in.kind;
    switch (id) {
    case T_EQ: return test_compare(c, HR_JT_EQ, in, a, out);
    case T_NE: return test_compare(c, HR_JT_NE, in, a, out);
    case T_LT: return test_compare(c, HR_JT_LT, in, a, out);
    case T_LE: return test_compare(c, HR_JT_LTEQ, in, a, out);
    case T_GT: return test_compare(c, HR_JT_GT, in, a, out);
    case T_GE: return test_compare(c, HR_JT_GTEQ, in, a, out);
    case T_IN:
    case T_DIVISIBLEBY:
    case T_SAMEAS:
    case T_FILTER:
    case T_TEST:
        if (!BIND(c, "test", a, one, v, given)) return false;
        if (!given[0] && id != T_FILTER && id != T_TEST)
            return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: the test needs an argument");
        break;
    default:
        if (!no_args(c, "this test", a)) return false;
    }
    switch (id) {
    case T_BOOLEAN: *out = k == HR_JV_BOOL; return true;
    case T_CALLABLE: *out = k == HR_JV_CALLABLE || k == HR_JV_UNDEFINED || k == HR_JV_LOOP; return true;
    case T_DEFINED: *out = k != HR_JV_UNDEFINED; return true;
    case T_UNDEFINED: *out = k == HR_JV_UNDEFINED; return true;
    case T_ESCAPED: *out = k == HR_JV_STRING && in.safe; return true;
    case T_FALSE: *out = k == HR_JV_BOOL && !in.u.b; return true;
    case T_TRUE: *out = k == HR_JV_BOOL && in.u.b; return true;
    case T_NONE: *out = k == HR_JV_NONE; return true;
    case T_FLOAT: *out = k == HR_JV_FLOAT; return true;
    case T_INTEGER: *out = k == HR_JV_INT; return true;
    case T_NUMBER: *out = k == HR_JV_INT || k == HR_JV_FLOAT || k == HR_JV_BOOL; return true;
    case T_STRING: *out = k == HR_JV_STRING; return true;
    case T_MAPPING: *out = k == HR_JV_DICT; return true;
    case T_ITERABLE:
        *out = k == HR_JV_STRING || k == HR_JV_LIST || k == HR_JV_TUPLE || k == HR_JV_DICT || k == HR_JV_UNDEFINED ||
               k == HR_JV_ITERATOR || k == HR_JV_LOOP;
        return true;
    case T_SEQUENCE:
        *out = k == HR_JV_STRING || k == HR_JV_LIST || k == HR_JV_TUPLE || k == HR_JV_DICT || k == HR_JV_UNDEFINED;
        return true;
    case T_EVEN:
    case T_ODD:
    case T_DIVISIBLEBY: {
        /* value % 2 == 1 for odd, == 0 for even and divisibleby */
        hr_jv divisor = id == T_DIVISIBLEBY ? v[0] : hr_jv_int(2), rem;
        if (!hr_jinja_binop(c, HR_JT_MOD, in, divisor, &rem)) return false;
        double r = rem.kind == HR_JV_FLOAT ? rem.u.f : (double)rem.u.i;
        *out = r == (id == T_ODD ? 1.0 : 0.0);
        return true;
    }
    case T_LOWER:
    case T_UPPER: {
        hr_jv s, f;
        hr_jargs none = {0};
        if (!hr_jinja_str(c, in, &s)) return false;
        /* islower/isupper through the method, so cased-ness matches Python */
        bool ok = hr_jinja_getattr(c, s, id == T_LOWER ? "islower" : "isupper", &f);
        hr_jv r = hr_jv_none();
        if (ok) ok = hr_jinja_call(c, (const hr_jfunc *)f.u.o, &none, &r);
        if (ok) *out = hr_jv_truthy(r);
        hr_jv_release(f);
        hr_jv_release(s);
        return ok;
    }
    case T_IN: return hr_jinja_contains(c, v[0], in, out);
    case T_SAMEAS:
        /* identity: singletons, CPython's cached small ints, and shared objects */
        if (k != v[0].kind)
            *out = false;
        else if (k == HR_JV_NONE || k == HR_JV_UNDEFINED)
            *out = k == HR_JV_NONE;
        else if (k == HR_JV_BOOL)
            *out = in.u.b == v[0].u.b;
        else if (k == HR_JV_INT)
            *out = in.u.i == v[0].u.i && in.u.i >= -5 && in.u.i <= 256;
        else if (k == HR_JV_FLOAT)
            *out = false;
        else
            *out = in.u.o == v[0].u.o;
        return true;
    case T_FILTER:
    case T_TEST:
        *out = in.kind == HR_JV_STRING &&
               (id == T_FILTER ? hr_jinja_filter_id(hr_jv_str(in)->s) : hr_jinja_test_id(hr_jv_str(in)->s)) >= 0;
        return true;
    }
    return hr_jinja_fail(c, HR_ERR_INVALID, "internal error: unknown test");
}

/* ---------------------------------------------------------------- globals */

/* A new, registered namespace holding the keyword arguments (and a dict argument). */
static bool new_namespace(hr_jctx *c, const hr_jargs *a, hr_jv *out) {
    if (a->npos > 1) return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: namespace expected at most 1 argument");
    if (c->n_namespaces == c->cap_namespaces) {
        size_t cap = c->cap_namespaces ? c->cap_namespaces * 2 : 8;
        hr_jv *p = realloc(c->namespaces, cap * sizeof *p);
        if (!p) return hr_jinja_oom(c);
        c->namespaces = p;
        c->cap_namespaces = cap;
    }
    hr_jdict *d = hr_jdict_new();
    if (!d) return hr_jinja_oom(c);
    hr_jv ns = hr_jv_from_dict(d, HR_JV_NAMESPACE);
    c->namespaces[c->n_namespaces++] = ns;
    if (a->npos == 1) {
        if (a->pos[0].kind != HR_JV_DICT)
            return hr_jinja_fail(c, HR_ERR_UNSUPPORTED, "namespace() with a positional %s is not supported",
                                 hr_jv_type_name(a->pos[0]));
        const hr_jdict *src = hr_jv_dict(a->pos[0]);
        for (size_t i = 0; i < src->len; i++)
            if (!hr_jdict_set(d, hr_jv_retain(src->k[i]), hr_jv_retain(src->v[i]), &c->budget, c->err)) return false;
    }
    for (size_t k = 0; k < a->nkw; k++) {
        hr_jv key;
        if (!hr_jv_new_string(&key, a->kwnames[k], strlen(a->kwnames[k]))) return hr_jinja_oom(c);
        if (!hr_jdict_set(d, key, hr_jv_retain(a->kw[k]), &c->budget, c->err)) return false;
    }
    *out = hr_jv_retain(ns);
    return true;
}

static bool global_range(hr_jctx *c, const hr_jargs *a, hr_jv *out) {
    if (a->nkw) return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: range() takes no keyword arguments");
    if (a->npos < 1 || a->npos > 3)
        return hr_jinja_fail(c, HR_ERR_INVALID, "TypeError: range expected 1 to 3 arguments, got %zu", a->npos);
    int64_t p[3] = {0, 0, 1};
    for (size_t i = 0; i < a->npos; i++)
        if (!hr_jinja_int_arg(c, a->pos[i], "range() argument", &p[a->npos == 1 ? 1 : i])) return false;
    if (p[2] == 0) return hr_jinja_fail(c, HR_ERR_INVALID, "ValueError: range() arg 3 must not be zero");
    double count = p[2] > 0 ? ceil(((double)p[1] - (double)p[0]) / (double)p[2])
                            : ceil(((double)p[0] - (double)p[1]) / -(double)p[2]);
    if (count < 0) count = 0;
    if (count > MAX_RANGE)
        return hr_jinja_fail(c, HR_ERR_RANGE,
                             "OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).",
                             MAX_RANGE);
    hr_jlist *l = hr_jlist_new((size_t)count);
    if (!l) return hr_jinja_oom(c);
    l->view = HR_JLIST_RANGE;
    memcpy(l->range, p, sizeof p);
    for (size_t i = 0; i < (size_t)count; i++)
        if (!hr_jlist_push(l, hr_jv_int(p[0] + (int64_t)i * p[2]), &c->budget, c->err)) return drop_list(l), false;
    *out = hr_jv_from_list(l, HR_JV_LIST);
    return true;
}

static bool global_strftime_now(hr_jctx *c, const hr_jargs *a, hr_jv *out) {
    static const char *const params[] = {"format"};
    hr_jv v[1];
    bool given[1];
    if (!BIND(c, "strftime_now", a, params, v, given)) return false;
    if (!given[0] || !str_arg(c, v[0], "strftime_now format")) return false;
    struct tm tm;
    if (!localtime_r(&c->now, &tm)) return hr_jinja_fail(c, HR_ERR_RANGE, "the current time cannot be converted");
    char text[1024];
    size_t n = hr_jv_str(v[0])->len ? strftime(text, sizeof text, hr_jv_str(v[0])->s, &tm) : 0;
    if (n == 0 && hr_jv_str(v[0])->len)
        return hr_jinja_fail(c, HR_ERR_RANGE, "strftime_now: the formatted date is empty or too long");
    return hr_jv_new_string(out, text, n) || hr_jinja_oom(c);
}

bool hr_jinja_call_global(hr_jctx *c, int id, const hr_jargs *a, hr_jv *out) {
    switch (id) {
    case G_RANGE: return global_range(c, a, out);
    case G_NAMESPACE: return new_namespace(c, a, out);
    case G_DICT: {
        if (a->npos) return hr_jinja_fail(c, HR_ERR_UNSUPPORTED, "dict() with positional arguments is not supported");
        hr_jdict *d = hr_jdict_new();
        if (!d) return hr_jinja_oom(c);
        *out = hr_jv_from_dict(d, HR_JV_DICT);
        for (size_t k = 0; k < a->nkw; k++) {
            hr_jv key;
            if (!hr_jv_new_string(&key, a->kwnames[k], strlen(a->kwnames[k])))
                return hr_jv_release(*out), hr_jinja_oom(c);
            if (!hr_jdict_set(d, key, hr_jv_retain(a->kw[k]), &c->budget, c->err)) return hr_jv_release(*out), false;
        }
        return true;
    }
    case G_RAISE_EXCEPTION: {
        static const char *const params[] = {"message"};
        hr_jv v[1], msg;
        bool given[1];
        if (!BIND(c, "raise_exception", a, params, v, given)) return false;
        if (!hr_jinja_str(c, v[0], &msg)) return false;
        hr_jinja_fail(c, HR_ERR_INVALID, "TemplateError: %s", hr_jv_str(msg)->s);
        hr_jv_release(msg);
        return false;
    }
    case G_STRFTIME_NOW: return global_strftime_now(c, a, out);
    default: return hr_jinja_fail(c, HR_ERR_UNSUPPORTED, "the global function '%s' is not supported", globals[id]);
    }
}
