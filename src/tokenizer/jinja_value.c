#include "tokenizer/jinja_value.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/jinja_unicode.h"

/* ---------------------------------------------------------------- buffers */

enum { BUF_NOMEM = 1, BUF_TOO_LONG, BUF_BUDGET };

void hr_jbuf_init(hr_jbuf *b, hr_jbudget *budget) {
    memset(b, 0, sizeof *b);
    b->budget = budget;
}

void hr_jbuf_free(hr_jbuf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static void buf_fail(hr_jbuf *b, int why) {
    hr_jbuf_free(b);
    b->failed = why;
}

static bool buf_reserve(hr_jbuf *b, size_t n) {
    if (b->failed) return false;
    if (n > SIZE_MAX / 2 - b->len - 1) {
        buf_fail(b, BUF_NOMEM);
        return false;
    }
    if (b->budget) {
        if (b->len + n > b->budget->max_string) {
            buf_fail(b, BUF_TOO_LONG);
            return false;
        }
        if (n > b->budget->bytes_left) {
            buf_fail(b, BUF_BUDGET);
            return false;
        }
        b->budget->bytes_left -= n;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) {
            buf_fail(b, BUF_NOMEM);
            return false;
        }
        b->data = p;
        b->cap = cap;
    }
    return true;
}

void hr_jbuf_add(hr_jbuf *b, const char *s, size_t n) {
    if (n == 0 || !buf_reserve(b, n)) return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void hr_jbuf_addc(hr_jbuf *b, char c) { hr_jbuf_add(b, &c, 1); }
void hr_jbuf_adds(hr_jbuf *b, const char *s) { hr_jbuf_add(b, s, strlen(s)); }

void hr_jbuf_addf(hr_jbuf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    hr_jbuf_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

void hr_jbuf_add_cp(hr_jbuf *b, uint32_t cp) {
    char tmp[4];
    hr_jbuf_add(b, tmp, hr_utf8_encode(cp, tmp));
}

hr_status hr_jbuf_error(const hr_jbuf *b, hr_error *err) {
    switch (b->failed) {
    case BUF_TOO_LONG:
        return hr_fail(err, HR_ERR_RANGE, "a string would grow past the %zu-byte limit",
                       b->budget ? b->budget->max_string : 0);
    case BUF_BUDGET: return hr_fail(err, HR_ERR_RANGE, "the template produced more text than its work budget allows");
    default: return hr_fail(err, HR_ERR_NOMEM, "out of memory");
    }
}

bool hr_jbuf_finish(hr_jbuf *b, bool safe, hr_jv *out, hr_error *err) {
    if (b->failed) {
        hr_jbuf_error(b, err);
        return false;
    }
    hr_jstr *s = hr_jstr_new(b->data ? b->data : "", b->len);
    hr_jbuf_free(b);
    if (!s) {
        hr_fail(err, HR_ERR_NOMEM, "out of memory");
        return false;
    }
    *out = hr_jv_from_str(s, safe);
    return true;
}

/* ---------------------------------------------------------------- objects */

static void *obj_alloc(size_t size, hr_jobj_type type) {
    hr_jobj *o = calloc(1, size);
    if (o) {
        o->refs = 1;
        o->type = (uint8_t)type;
    }
    return o;
}

hr_jstr *hr_jstr_new(const char *s, size_t n) {
    if (n > SIZE_MAX - sizeof(hr_jstr) - 1) return NULL;
    hr_jstr *str = malloc(sizeof(hr_jstr) + n + 1);
    if (!str) return NULL;
    str->h.refs = 1;
    str->h.type = HR_JOBJ_STR;
    str->len = n;
    if (n) memcpy(str->s, s, n);
    str->s[n] = '\0';
    str->ascii = true;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80) {
            str->ascii = false;
            break;
        }
    return str;
}

hr_jv hr_jv_from_str(hr_jstr *s, bool safe) { return (hr_jv){.kind = HR_JV_STRING, .safe = safe, .u.o = &s->h}; }

bool hr_jv_new_string(hr_jv *out, const char *s, size_t n) {
    hr_jstr *str = hr_jstr_new(s, n);
    if (!str) return false;
    *out = hr_jv_from_str(str, false);
    return true;
}

/* An undefined value; hint (consumed, may be NULL) is what using it reports. */
static hr_jv undefined_with(hr_jstr *hint) { return (hr_jv){.kind = HR_JV_UNDEFINED, .u.o = hint ? &hint->h : NULL}; }

hr_jv hr_jv_undefinedf(const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    return undefined_with(hr_jstr_new(tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1));
}

hr_jlist *hr_jlist_new(size_t cap) {
    hr_jlist *l = obj_alloc(sizeof *l, HR_JOBJ_LIST);
    if (!l) return NULL;
    if (cap) {
        l->v = malloc(cap * sizeof *l->v);
        if (!l->v) {
            free(l);
            return NULL;
        }
        l->cap = cap;
    }
    l->depth = 1;
    return l;
}

hr_jdict *hr_jdict_new(void) {
    hr_jdict *d = obj_alloc(sizeof *d, HR_JOBJ_DICT);
    if (d) d->depth = 1;
    return d;
}

hr_jloop *hr_jloop_new(hr_jlist *items) {
    hr_jloop *l = obj_alloc(sizeof *l, HR_JOBJ_LOOP);
    if (l) l->items = hr_jv_list(hr_jv_retain(hr_jv_from_list(items, HR_JV_LIST)));
    return l;
}

hr_jiter *hr_jiter_new(hr_jlist *items) {
    hr_jiter *it = obj_alloc(sizeof *it, HR_JOBJ_ITER);
    if (!it) {
        hr_jv_release(hr_jv_from_list(items, HR_JV_LIST));
        return NULL;
    }
    it->items = items;
    return it;
}

hr_jfunc *hr_jfunc_new(uint16_t kind, uint16_t id, const char *name, hr_jv self) {
    hr_jfunc *f = obj_alloc(sizeof *f, HR_JOBJ_FUNC);
    if (!f) return NULL;
    f->kind = kind;
    f->id = id;
    f->name = name;
    f->self = hr_jv_retain(self);
    return f;
}

hr_jv hr_jv_from_list(hr_jlist *l, hr_jv_kind kind) { return (hr_jv){.kind = (uint8_t)kind, .u.o = &l->h}; }
hr_jv hr_jv_from_dict(hr_jdict *d, hr_jv_kind kind) { return (hr_jv){.kind = (uint8_t)kind, .u.o = &d->h}; }
hr_jv hr_jv_from_obj(hr_jobj *o, hr_jv_kind kind) { return (hr_jv){.kind = (uint8_t)kind, .u.o = o}; }

hr_jv hr_jv_retain(hr_jv v) {
    if (hr_jv_is_heap(v) && v.u.o->refs != HR_JOBJ_IMMORTAL) v.u.o->refs++;
    return v;
}

static void obj_free(hr_jobj *o);

static void obj_release(hr_jobj *o) {
    if (o && o->refs != HR_JOBJ_IMMORTAL && --o->refs == 0) obj_free(o);
}

void hr_jv_release(hr_jv v) {
    if (hr_jv_is_heap(v)) obj_release(v.u.o);
}

/* Recursion here is bounded: lists and dicts are at most HR_JV_MAX_DEPTH deep when
 * built, and namespaces (the only containers that change later) are kept alive by the
 * interpreter until a render ends, so a release never cascades through them. */
static void obj_free(hr_jobj *o) {
    switch ((hr_jobj_type)o->type) {
    case HR_JOBJ_STR: break;
    case HR_JOBJ_LIST: {
        hr_jlist *l = (hr_jlist *)o;
        for (size_t i = 0; i < l->len; i++) hr_jv_release(l->v[i]);
        free(l->v);
        break;
    }
    case HR_JOBJ_DICT: {
        hr_jdict *d = (hr_jdict *)o;
        for (size_t i = 0; i < d->len; i++) {
            hr_jv_release(d->k[i]);
            hr_jv_release(d->v[i]);
        }
        free(d->k);
        free(d->v);
        free(d->index);
        break;
    }
    case HR_JOBJ_FUNC: hr_jv_release(((hr_jfunc *)o)->self); break;
    case HR_JOBJ_LOOP: obj_release(&((hr_jloop *)o)->items->h); break;
    case HR_JOBJ_ITER: obj_release(&((hr_jiter *)o)->items->h); break;
    }
    free(o);
}

/* Walks a constant made by the compiler (lists, tuples and dicts of scalars and strings). */
static void set_refs_recursive(hr_jv v, bool immortal) {
    if (!hr_jv_is_heap(v)) return;
    hr_jobj *o = v.u.o;
    if (o->type == HR_JOBJ_LIST) {
        hr_jlist *l = (hr_jlist *)o;
        for (size_t i = 0; i < l->len; i++) set_refs_recursive(l->v[i], immortal);
    } else if (o->type == HR_JOBJ_DICT) {
        hr_jdict *d = (hr_jdict *)o;
        for (size_t i = 0; i < d->len; i++) {
            set_refs_recursive(d->k[i], immortal);
            set_refs_recursive(d->v[i], immortal);
        }
    }
    o->refs = immortal ? HR_JOBJ_IMMORTAL : 1;
}

void hr_jv_make_immortal(hr_jv v) { set_refs_recursive(v, true); }

void hr_jv_free_immortal(hr_jv v) {
    set_refs_recursive(v, false);
    hr_jv_release(v);
}

uint32_t hr_jv_depth(hr_jv v) {
    switch (v.kind) {
    case HR_JV_LIST:
    case HR_JV_TUPLE: return hr_jv_list(v)->depth;
    case HR_JV_DICT:
    case HR_JV_NAMESPACE: return hr_jv_dict(v)->depth;
    default: return 0;
    }
}

/* Charges one element against the budget and checks the nesting the new element brings. */
static bool admit_element(uint32_t *depth, hr_jv v, hr_jbudget *budget, hr_error *err) {
    if (budget) {
        if (budget->items_left == 0) {
            hr_fail(err, HR_ERR_RANGE, "the template built more list and dict elements than its budget allows");
            return false;
        }
        budget->items_left--;
    }
    uint32_t d = hr_jv_depth(v) + 1;
    if (d > HR_JV_MAX_DEPTH) {
        hr_fail(err, HR_ERR_RANGE, "values nested more than %d levels deep", HR_JV_MAX_DEPTH);
        return false;
    }
    if (d > *depth) *depth = d;
    return true;
}

static bool grow(void **arr, size_t *cap, size_t need, size_t elem, hr_error *err) {
    if (need <= *cap) return true;
    size_t n = *cap ? *cap * 2 : 4;
    while (n < need) n *= 2;
    if (n > SIZE_MAX / elem) {
        hr_fail(err, HR_ERR_NOMEM, "out of memory");
        return false;
    }
    void *p = realloc(*arr, n * elem);
    if (!p) {
        hr_fail(err, HR_ERR_NOMEM, "out of memory");
        return false;
    }
    *arr = p;
    *cap = n;
    return true;
}

bool hr_jlist_push(hr_jlist *l, hr_jv v, hr_jbudget *budget, hr_error *err) {
    if (!admit_element(&l->depth, v, budget, err) || !grow((void **)&l->v, &l->cap, l->len + 1, sizeof *l->v, err)) {
        hr_jv_release(v);
        return false;
    }
    l->v[l->len++] = v;
    return true;
}

static bool is_number(hr_jv v) { return v.kind == HR_JV_BOOL || v.kind == HR_JV_INT || v.kind == HR_JV_FLOAT; }
static int64_t as_int(hr_jv v) { return v.kind == HR_JV_BOOL ? (int64_t)v.u.b : v.u.i; }

/* Python numeric equality between int/bool and float, exact for large integers. */
static bool int_equals_float(int64_t i, double f) {
    if (!isfinite(f) || f != floor(f) || f < -9223372036854775808.0 || f >= 9223372036854775808.0) return false;
    return (int64_t)f == i;
}

static bool numbers_equal(hr_jv a, hr_jv b) {
    if (a.kind == HR_JV_FLOAT && b.kind == HR_JV_FLOAT) return a.u.f == b.u.f;
    if (a.kind == HR_JV_FLOAT) return int_equals_float(as_int(b), a.u.f);
    if (b.kind == HR_JV_FLOAT) return int_equals_float(as_int(a), b.u.f);
    return as_int(a) == as_int(b);
}

static bool str_equal(hr_jv a, hr_jv b) {
    hr_jstr *x = hr_jv_str(a), *y = hr_jv_str(b);
    return x->len == y->len && memcmp(x->s, y->s, x->len) == 0;
}

/* Dicts this small are searched linearly; bigger ones get a hash index. */
enum { INDEX_FROM = 8 };

static uint64_t mix(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

static uint64_t bytes_hash(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return mix(h);
}

/* A hash that agrees with Python's == on keys: 1, 1.0 and True hash alike. */
static uint64_t key_hash(hr_jv k, int depth) {
    switch ((hr_jv_kind)k.kind) {
    case HR_JV_NONE: return 1;
    case HR_JV_UNDEFINED: return 2;
    case HR_JV_BOOL: return mix((uint64_t)k.u.b);
    case HR_JV_INT: return mix((uint64_t)k.u.i);
    case HR_JV_FLOAT:
        if (isfinite(k.u.f) && k.u.f == floor(k.u.f) && k.u.f >= -9223372036854775808.0 &&
            k.u.f < 9223372036854775808.0)
            return mix((uint64_t)(int64_t)k.u.f);
        {
            uint64_t bits;
            memcpy(&bits, &k.u.f, sizeof bits);
            return mix(bits);
        }
    case HR_JV_STRING: return bytes_hash(hr_jv_str(k)->s, hr_jv_str(k)->len);
    case HR_JV_TUPLE: {
        uint64_t h = 3;
        const hr_jlist *l = hr_jv_list(k);
        for (size_t i = 0; i < l->len && depth < HR_JV_MAX_DEPTH; i++) h = mix(h ^ key_hash(l->v[i], depth + 1));
        return h;
    }
    default: return mix((uint64_t)(uintptr_t)k.u.o);
    }
}

static bool key_equal(hr_jv a, hr_jv b) {
    bool eq = false;
    hr_jv_equal(a, b, &eq, NULL);
    return eq;
}

static bool str_key_equal(hr_jv k, const char *s, size_t n) {
    return k.kind == HR_JV_STRING && hr_jv_str(k)->len == n && memcmp(hr_jv_str(k)->s, s, n) == 0;
}

/* The index slot holding key (hash h), or the empty slot where it would go. Either key
 * or the string s/n is looked for. */
static size_t *index_probe(const hr_jdict *d, uint64_t h, const hr_jv *key, const char *s, size_t n) {
    size_t mask = d->index_cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        size_t *slot = &d->index[i];
        if (*slot == 0) return slot;
        hr_jv k = d->k[*slot - 1];
        if (key ? key_equal(k, *key) : str_key_equal(k, s, n)) return slot;
    }
}

/* (Re)builds the index at twice the load; without memory the dict stays linear. */
static void index_rebuild(hr_jdict *d) {
    size_t cap = 16;
    while (cap < 2 * (d->len + 1)) cap *= 2;
    free(d->index);
    d->index = calloc(cap, sizeof *d->index);
    d->index_cap = d->index ? cap : 0;
    for (size_t i = 0; d->index && i < d->len; i++)
        *index_probe(d, key_hash(d->k[i], 0), &d->k[i], NULL, 0) = i + 1;
}

void hr_jdict_clear(hr_jdict *d) {
    for (size_t i = 0; i < d->len; i++) {
        hr_jv_release(d->k[i]);
        hr_jv_release(d->v[i]);
    }
    d->len = 0;
    free(d->index);
    d->index = NULL;
    d->index_cap = 0;
}

hr_jv *hr_jdict_get(const hr_jdict *d, hr_jv key) {
    if (d->index) {
        size_t *slot = index_probe(d, key_hash(key, 0), &key, NULL, 0);
        return *slot ? &d->v[*slot - 1] : NULL;
    }
    for (size_t i = 0; i < d->len; i++)
        if (key_equal(d->k[i], key)) return &d->v[i];
    return NULL;
}

hr_jv *hr_jdict_get_cstr(const hr_jdict *d, const char *key) {
    size_t n = strlen(key);
    if (d->index) {
        size_t *slot = index_probe(d, bytes_hash(key, n), NULL, key, n);
        return *slot ? &d->v[*slot - 1] : NULL;
    }
    for (size_t i = 0; i < d->len; i++)
        if (str_key_equal(d->k[i], key, n)) return &d->v[i];
    return NULL;
}

bool hr_jdict_set(hr_jdict *d, hr_jv key, hr_jv val, hr_jbudget *budget, hr_error *err) {
    hr_jv *slot = hr_jdict_get(d, key);
    if (slot) {
        uint32_t depth = d->depth;
        if (!admit_element(&depth, val, NULL, err)) {
            hr_jv_release(key);
            hr_jv_release(val);
            return false;
        }
        d->depth = depth;
        hr_jv_release(*slot);
        *slot = val;
        hr_jv_release(key);
        return true;
    }
    size_t kcap = d->cap;
    if (!admit_element(&d->depth, val, budget, err) || !grow((void **)&d->k, &kcap, d->len + 1, sizeof *d->k, err) ||
        !grow((void **)&d->v, &d->cap, d->len + 1, sizeof *d->v, err)) {
        hr_jv_release(key);
        hr_jv_release(val);
        return false;
    }
    d->k[d->len] = key;
    d->v[d->len] = val;
    d->len++;
    if (d->index && 2 * d->len <= d->index_cap)
        *index_probe(d, key_hash(key, 0), &key, NULL, 0) = d->len;
    else if (d->len >= INDEX_FROM)
        index_rebuild(d);
    return true;
}

/* ---------------------------------------------------------------- Python semantics */

bool hr_jv_truthy(hr_jv v) {
    switch ((hr_jv_kind)v.kind) {
    case HR_JV_UNDEFINED:
    case HR_JV_NONE: return false;
    case HR_JV_BOOL: return v.u.b;
    case HR_JV_INT: return v.u.i != 0;
    case HR_JV_FLOAT: return v.u.f != 0.0;
    case HR_JV_STRING: return hr_jv_str(v)->len != 0;
    case HR_JV_LIST:
    case HR_JV_TUPLE: return hr_jv_list(v)->len != 0;
    case HR_JV_DICT: return hr_jv_dict(v)->len != 0;
    case HR_JV_NAMESPACE:
    case HR_JV_CALLABLE:
    case HR_JV_LOOP:
    case HR_JV_ITERATOR: return true;
    }
    return false;
}

const char *hr_jv_type_name(hr_jv v) {
    static const char *const view_names[] = {"list", "dict_items", "dict_keys", "dict_values", "range"};
    switch ((hr_jv_kind)v.kind) {
    case HR_JV_UNDEFINED: return "Undefined";
    case HR_JV_NONE: return "NoneType";
    case HR_JV_BOOL: return "bool";
    case HR_JV_INT: return "int";
    case HR_JV_FLOAT: return "float";
    case HR_JV_STRING: return v.safe ? "Markup" : "str";
    case HR_JV_LIST: return view_names[hr_jv_list(v)->view];
    case HR_JV_TUPLE: return "tuple";
    case HR_JV_DICT: return "dict";
    case HR_JV_NAMESPACE: return "Namespace";
    case HR_JV_CALLABLE: return ((hr_jfunc *)v.u.o)->node ? "Macro" : "builtin_function_or_method";
    case HR_JV_LOOP: return "LoopContext";
    case HR_JV_ITERATOR: return "generator";
    }
    return "object";
}

static bool too_deep(int depth, hr_error *err) {
    if (depth <= HR_JV_MAX_DEPTH) return false;
    hr_fail(err, HR_ERR_RANGE, "RecursionError: values nested more than %d levels deep", HR_JV_MAX_DEPTH);
    return true;
}

static bool equal_at(hr_jv a, hr_jv b, bool *out, int depth, hr_error *err) {
    if (too_deep(depth, err)) return false;
    *out = false;
    if (is_number(a) && is_number(b)) {
        *out = numbers_equal(a, b);
        return true;
    }
    if (a.kind != b.kind) return true;
    switch ((hr_jv_kind)a.kind) {
    case HR_JV_UNDEFINED:
    case HR_JV_NONE: *out = true; return true;
    case HR_JV_STRING: *out = str_equal(a, b); return true;
    case HR_JV_LIST:
    case HR_JV_TUPLE: {
        hr_jlist *x = hr_jv_list(a), *y = hr_jv_list(b);
        /* a range equals only a range with the same items; dict views are set-like */
        if ((x->view == HR_JLIST_RANGE) != (y->view == HR_JLIST_RANGE)) return true;
        bool views = x->view != HR_JLIST_PLAIN && x->view != HR_JLIST_RANGE;
        if (views || (y->view != HR_JLIST_PLAIN && y->view != HR_JLIST_RANGE)) {
            if (x == y) return *out = true;
            hr_fail(err, HR_ERR_UNSUPPORTED, "comparing %s objects is not supported", hr_jv_type_name(a));
            return false;
        }
        if (x->len != y->len) return true;
        for (size_t i = 0; i < x->len; i++) {
            bool eq;
            if (!equal_at(x->v[i], y->v[i], &eq, depth + 1, err)) return false;
            if (!eq) return true;
        }
        *out = true;
        return true;
    }
    case HR_JV_DICT: {
        hr_jdict *x = hr_jv_dict(a), *y = hr_jv_dict(b);
        if (x->len != y->len) return true;
        for (size_t i = 0; i < x->len; i++) {
            hr_jv *other = hr_jdict_get(y, x->k[i]);
            if (!other) return true;
            bool eq;
            if (!equal_at(x->v[i], *other, &eq, depth + 1, err)) return false;
            if (!eq) return true;
        }
        *out = true;
        return true;
    }
    default: /* namespaces, callables, loops, generators compare by identity */ *out = a.u.o == b.u.o; return true;
    }
}

bool hr_jv_equal(hr_jv a, hr_jv b, bool *out, hr_error *err) { return equal_at(a, b, out, 0, err); }

static bool compare_at(hr_jv a, hr_jv b, int *out, int depth, hr_error *err) {
    if (too_deep(depth, err)) return false;
    if (is_number(a) && is_number(b)) {
        if (a.kind != HR_JV_FLOAT && b.kind != HR_JV_FLOAT) {
            int64_t x = as_int(a), y = as_int(b);
            *out = (x > y) - (x < y);
        } else {
            double x = a.kind == HR_JV_FLOAT ? a.u.f : (double)as_int(a);
            double y = b.kind == HR_JV_FLOAT ? b.u.f : (double)as_int(b);
            *out = (x > y) - (x < y);
        }
        return true;
    }
    if (a.kind == HR_JV_STRING && b.kind == HR_JV_STRING) {
        hr_jstr *x = hr_jv_str(a), *y = hr_jv_str(b);
        size_t n = x->len < y->len ? x->len : y->len;
        int c = memcmp(x->s, y->s, n);
        *out = c ? (c > 0) - (c < 0) : (x->len > y->len) - (x->len < y->len);
        return true;
    }
    if (a.kind == b.kind && hr_jv_is_seq(a) && hr_jv_list(a)->view == HR_JLIST_PLAIN &&
        hr_jv_list(b)->view == HR_JLIST_PLAIN) {
        hr_jlist *x = hr_jv_list(a), *y = hr_jv_list(b);
        for (size_t i = 0; i < x->len && i < y->len; i++) {
            bool eq;
            if (!equal_at(x->v[i], y->v[i], &eq, depth + 1, err)) return false;
            if (!eq) return compare_at(x->v[i], y->v[i], out, depth + 1, err);
        }
        *out = (x->len > y->len) - (x->len < y->len);
        return true;
    }
    hr_fail(err, HR_ERR_INVALID, "TypeError: '<' not supported between instances of '%s' and '%s'", hr_jv_type_name(a),
            hr_jv_type_name(b));
    return false;
}

bool hr_jv_compare(hr_jv a, hr_jv b, int *out, hr_error *err) { return compare_at(a, b, out, 0, err); }

bool hr_jv_hashable(hr_jv v) {
    switch ((hr_jv_kind)v.kind) {
    case HR_JV_LIST:
    case HR_JV_DICT: return false;
    case HR_JV_TUPLE: {
        hr_jlist *l = hr_jv_list(v);
        for (size_t i = 0; i < l->len; i++)
            if (!hr_jv_hashable(l->v[i])) return false;
        return true;
    }
    default: return true;
    }
}

/* ---------------------------------------------------------------- str() and repr() */

/* repr(float) as Python prints it: the shortest digits that read back the same. */
static void write_float(hr_jbuf *b, double f) {
    if (isnan(f)) {
        hr_jbuf_adds(b, "nan");
        return;
    }
    if (isinf(f)) {
        hr_jbuf_adds(b, f < 0 ? "-inf" : "inf");
        return;
    }
    if (f == 0.0) {
        hr_jbuf_adds(b, signbit(f) ? "-0.0" : "0.0");
        return;
    }
    /* the shortest digit string that reads back as the same double, as repr() picks */
    char sci[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(sci, sizeof sci, "%.*e", prec - 1, f);
        if (strtod(sci, NULL) == f) break;
    }
    const char *p = sci;
    if (*p == '-') {
        hr_jbuf_addc(b, '-');
        p++;
    }
    char digits[24];
    int nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9' && nd < 23) digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    int exp10 = *p == 'e' ? atoi(p + 1) : 0;
    int decpt = exp10 + 1; /* digits are 0.d1d2... x 10^decpt */
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            hr_jbuf_adds(b, "0.");
            for (int i = 0; i < -decpt; i++) hr_jbuf_addc(b, '0');
            hr_jbuf_add(b, digits, (size_t)nd);
        } else if (decpt >= nd) {
            hr_jbuf_add(b, digits, (size_t)nd);
            for (int i = nd; i < decpt; i++) hr_jbuf_addc(b, '0');
            hr_jbuf_adds(b, ".0");
        } else {
            hr_jbuf_add(b, digits, (size_t)decpt);
            hr_jbuf_addc(b, '.');
            hr_jbuf_add(b, digits + decpt, (size_t)(nd - decpt));
        }
        return;
    }
    hr_jbuf_addc(b, digits[0]);
    if (nd > 1) {
        hr_jbuf_addc(b, '.');
        hr_jbuf_add(b, digits + 1, (size_t)(nd - 1));
    }
    hr_jbuf_addf(b, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
}

void hr_jv_write_escaped(hr_jbuf *b, const char *s, size_t n) {
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep;
        switch (s[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&#34;"; break;
        case '\'': rep = "&#39;"; break;
        default: continue;
        }
        hr_jbuf_add(b, s + start, i - start);
        hr_jbuf_adds(b, rep);
        start = i + 1;
    }
    hr_jbuf_add(b, s + start, n - start);
}

static void repr_string(hr_jbuf *b, const hr_jstr *s) {
    bool has_single = memchr(s->s, '\'', s->len) != NULL, has_double = memchr(s->s, '"', s->len) != NULL;
    char quote = has_single && !has_double ? '"' : '\'';
    hr_jbuf_addc(b, quote);
    for (size_t i = 0; i < s->len;) {
        uint32_t cp;
        size_t n = hr_utf8_decode(s->s + i, s->len - i, &cp);
        if (cp == (uint32_t)quote || cp == '\\') {
            hr_jbuf_addc(b, '\\');
            hr_jbuf_addc(b, (char)cp);
        } else if (cp == '\n') {
            hr_jbuf_adds(b, "\\n");
        } else if (cp == '\r') {
            hr_jbuf_adds(b, "\\r");
        } else if (cp == '\t') {
            hr_jbuf_adds(b, "\\t");
        } else if (hr_uni_is_printable(cp)) {
            hr_jbuf_add(b, s->s + i, n);
        } else if (cp < 0x100) {
            hr_jbuf_addf(b, "\\x%02x", cp);
        } else if (cp < 0x10000) {
            hr_jbuf_addf(b, "\\u%04x", cp);
        } else {
            hr_jbuf_addf(b, "\\U%08x", cp);
        }
        i += n;
    }
    hr_jbuf_addc(b, quote);
}

static bool write_text(hr_jbuf *b, hr_jv v, bool repr, int depth, hr_error *err);

static bool write_items(hr_jbuf *b, const hr_jlist *l, int depth, hr_error *err) {
    for (size_t i = 0; i < l->len; i++) {
        if (i) hr_jbuf_adds(b, ", ");
        if (!write_text(b, l->v[i], true, depth + 1, err)) return false;
    }
    return true;
}

static bool write_text(hr_jbuf *b, hr_jv v, bool repr, int depth, hr_error *err) {
    if (too_deep(depth, err)) return false;
    switch ((hr_jv_kind)v.kind) {
    case HR_JV_UNDEFINED:
        if (repr) hr_jbuf_adds(b, "Undefined");
        return true;
    case HR_JV_NONE: hr_jbuf_adds(b, "None"); return true;
    case HR_JV_BOOL: hr_jbuf_adds(b, v.u.b ? "True" : "False"); return true;
    case HR_JV_INT: hr_jbuf_addf(b, "%lld", (long long)v.u.i); return true;
    case HR_JV_FLOAT: write_float(b, v.u.f); return true;
    case HR_JV_STRING:
        if (!repr) {
            hr_jbuf_add(b, hr_jv_str(v)->s, hr_jv_str(v)->len);
        } else if (v.safe) {
            hr_jbuf_adds(b, "Markup(");
            repr_string(b, hr_jv_str(v));
            hr_jbuf_addc(b, ')');
        } else {
            repr_string(b, hr_jv_str(v));
        }
        return true;
    case HR_JV_LIST: {
        static const char *const prefix[] = {"", "dict_items(", "dict_keys(", "dict_values("};
        hr_jlist *l = hr_jv_list(v);
        if (l->view == HR_JLIST_RANGE) {
            hr_jbuf_addf(b, "range(%lld, %lld", (long long)l->range[0], (long long)l->range[1]);
            if (l->range[2] != 1) hr_jbuf_addf(b, ", %lld", (long long)l->range[2]);
            hr_jbuf_addc(b, ')');
            return true;
        }
        hr_jbuf_adds(b, prefix[l->view]);
        hr_jbuf_addc(b, '[');
        if (!write_items(b, l, depth, err)) return false;
        hr_jbuf_addc(b, ']');
        if (l->view != HR_JLIST_PLAIN) hr_jbuf_addc(b, ')');
        return true;
    }
    case HR_JV_TUPLE: {
        hr_jlist *l = hr_jv_list(v);
        hr_jbuf_addc(b, '(');
        if (!write_items(b, l, depth, err)) return false;
        hr_jbuf_adds(b, l->len == 1 ? ",)" : ")");
        return true;
    }
    case HR_JV_DICT: {
        hr_jdict *d = hr_jv_dict(v);
        hr_jbuf_addc(b, '{');
        for (size_t i = 0; i < d->len; i++) {
            if (i) hr_jbuf_adds(b, ", ");
            if (!write_text(b, d->k[i], true, depth + 1, err)) return false;
            hr_jbuf_adds(b, ": ");
            if (!write_text(b, d->v[i], true, depth + 1, err)) return false;
        }
        hr_jbuf_addc(b, '}');
        return true;
    }
    case HR_JV_CALLABLE: {
        hr_jfunc *f = (hr_jfunc *)v.u.o;
        if (!f->node) break;
        hr_jbuf_adds(b, "<Macro '");
        hr_jbuf_adds(b, f->name);
        hr_jbuf_adds(b, "'>");
        return true;
    }
    case HR_JV_LOOP: {
        hr_jloop *l = (hr_jloop *)v.u.o;
        hr_jbuf_addf(b, "<LoopContext %zu/%zu>", l->index0 + 1, l->items->len);
        return true;
    }
    case HR_JV_NAMESPACE:
    case HR_JV_ITERATOR: break;
    }
    hr_fail(err, HR_ERR_UNSUPPORTED, "printing a %s object is not supported (Python shows a memory address)",
            hr_jv_type_name(v));
    return false;
}

bool hr_jv_write_str(hr_jbuf *b, hr_jv v, hr_error *err) { return write_text(b, v, false, 0, err); }
bool hr_jv_write_repr(hr_jbuf *b, hr_jv v, hr_error *err) { return write_text(b, v, true, 0, err); }

/* ---------------------------------------------------------------- JSON */

static bool from_json_at(const json_t *j, hr_jv *out, hr_jbudget *budget, int depth, hr_error *err) {
    if (too_deep(depth, err)) return false;
    switch (json_typeof(j)) {
    case JSON_NULL: *out = hr_jv_none(); return true;
    case JSON_TRUE: *out = hr_jv_bool(true); return true;
    case JSON_FALSE: *out = hr_jv_bool(false); return true;
    case JSON_INTEGER: *out = hr_jv_int((int64_t)json_integer_value(j)); return true;
    case JSON_REAL: *out = hr_jv_float(json_real_value(j)); return true;
    case JSON_STRING:
        if (hr_jv_new_string(out, json_string_value(j), json_string_length(j))) return true;
        hr_fail(err, HR_ERR_NOMEM, "out of memory");
        return false;
    case JSON_ARRAY: {
        hr_jlist *l = hr_jlist_new(json_array_size(j));
        if (!l) return hr_fail(err, HR_ERR_NOMEM, "out of memory"), false;
        *out = hr_jv_from_list(l, HR_JV_LIST);
        for (size_t i = 0; i < json_array_size(j); i++) {
            hr_jv item;
            if (!from_json_at(json_array_get(j, i), &item, budget, depth + 1, err) ||
                !hr_jlist_push(l, item, budget, err)) {
                hr_jv_release(*out);
                return false;
            }
        }
        return true;
    }
    case JSON_OBJECT: {
        hr_jdict *d = hr_jdict_new();
        if (!d) return hr_fail(err, HR_ERR_NOMEM, "out of memory"), false;
        *out = hr_jv_from_dict(d, HR_JV_DICT);
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)j, key, val) {
            hr_jv k, v;
            if (!hr_jv_new_string(&k, key, strlen(key))) {
                hr_jv_release(*out);
                return hr_fail(err, HR_ERR_NOMEM, "out of memory"), false;
            }
            if (!from_json_at(val, &v, budget, depth + 1, err)) {
                hr_jv_release(k);
                hr_jv_release(*out);
                return false;
            }
            if (!hr_jdict_set(d, k, v, budget, err)) {
                hr_jv_release(*out);
                return false;
            }
        }
        return true;
    }
    }
    return hr_fail(err, HR_ERR_FORMAT, "unknown JSON value"), false;
}

bool hr_jv_from_json(const json_t *j, hr_jv *out, hr_jbudget *budget, hr_error *err) {
    return from_json_at(j, out, budget, 0, err);
}

static void json_write_string(hr_jbuf *b, const char *s, size_t n, bool ensure_ascii) {
    hr_jbuf_addc(b, '"');
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = hr_utf8_decode(s + i, n - i, &cp);
        switch (cp) {
        case '"': hr_jbuf_adds(b, "\\\""); break;
        case '\\': hr_jbuf_adds(b, "\\\\"); break;
        case '\n': hr_jbuf_adds(b, "\\n"); break;
        case '\r': hr_jbuf_adds(b, "\\r"); break;
        case '\t': hr_jbuf_adds(b, "\\t"); break;
        case '\b': hr_jbuf_adds(b, "\\b"); break;
        case '\f': hr_jbuf_adds(b, "\\f"); break;
        default:
            if (cp < 0x20 || (ensure_ascii && cp >= 0x7F)) {
                if (cp >= 0x10000) {
                    uint32_t v = cp - 0x10000;
                    hr_jbuf_addf(b, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
                } else {
                    hr_jbuf_addf(b, "\\u%04x", cp);
                }
            } else {
                hr_jbuf_add(b, s + i, len);
            }
        }
        i += len;
    }
    hr_jbuf_addc(b, '"');
}

static void json_newline(hr_jbuf *b, const hr_jjson_opts *o, int level) {
    hr_jbuf_addc(b, '\n');
    for (int i = 0; i < level; i++) hr_jbuf_add(b, o->indent, o->indent_len);
}

static bool json_key(hr_jbuf *b, hr_jv k, const hr_jjson_opts *o, hr_error *err) {
    switch (k.kind) {
    case HR_JV_STRING: json_write_string(b, hr_jv_str(k)->s, hr_jv_str(k)->len, o->ensure_ascii); return true;
    case HR_JV_NONE: hr_jbuf_adds(b, "\"null\""); return true;
    case HR_JV_BOOL: hr_jbuf_adds(b, k.u.b ? "\"true\"" : "\"false\""); return true;
    case HR_JV_INT: hr_jbuf_addf(b, "\"%lld\"", (long long)k.u.i); return true;
    case HR_JV_FLOAT:
        hr_jbuf_addc(b, '"');
        if (isnan(k.u.f))
            hr_jbuf_adds(b, "NaN");
        else if (isinf(k.u.f))
            hr_jbuf_adds(b, k.u.f < 0 ? "-Infinity" : "Infinity");
        else
            write_float(b, k.u.f);
        hr_jbuf_addc(b, '"');
        return true;
    default:
        hr_fail(err, HR_ERR_INVALID, "TypeError: keys must be str, int, float, bool or None, not %s",
                hr_jv_type_name(k));
        return false;
    }
}

/* Python sorts dict items by key for sort_keys: a stable merge sort of positions. */
static bool sorted_order(const hr_jdict *d, size_t *order, size_t *tmp, hr_error *err) {
    for (size_t i = 0; i < d->len; i++) order[i] = i;
    for (size_t width = 1; width < d->len; width *= 2) {
        for (size_t lo = 0; lo < d->len; lo += 2 * width) {
            size_t mid = lo + width < d->len ? lo + width : d->len, hi = lo + 2 * width < d->len ? lo + 2 * width : d->len;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                int c;
                if (!hr_jv_compare(d->k[order[j]], d->k[order[i]], &c, err)) return false;
                tmp[k++] = c < 0 ? order[j++] : order[i++];
            }
            while (i < mid) tmp[k++] = order[i++];
            while (j < hi) tmp[k++] = order[j++];
        }
        memcpy(order, tmp, d->len * sizeof *order);
    }
    return true;
}

static bool json_at(hr_jbuf *b, hr_jv v, const hr_jjson_opts *o, int level, hr_error *err) {
    if (too_deep(level, err)) return false;
    switch ((hr_jv_kind)v.kind) {
    case HR_JV_NONE: hr_jbuf_adds(b, "null"); return true;
    case HR_JV_BOOL: hr_jbuf_adds(b, v.u.b ? "true" : "false"); return true;
    case HR_JV_INT: hr_jbuf_addf(b, "%lld", (long long)v.u.i); return true;
    case HR_JV_FLOAT:
        if (isnan(v.u.f))
            hr_jbuf_adds(b, "NaN");
        else if (isinf(v.u.f))
            hr_jbuf_adds(b, v.u.f < 0 ? "-Infinity" : "Infinity");
        else
            write_float(b, v.u.f);
        return true;
    case HR_JV_STRING: json_write_string(b, hr_jv_str(v)->s, hr_jv_str(v)->len, o->ensure_ascii); return true;
    case HR_JV_LIST:
    case HR_JV_TUPLE: {
        hr_jlist *l = hr_jv_list(v);
        if (l->view != HR_JLIST_PLAIN) break;
        hr_jbuf_addc(b, '[');
        for (size_t i = 0; i < l->len; i++) {
            if (i) hr_jbuf_add(b, o->item_sep, o->item_sep_len);
            if (o->indent) json_newline(b, o, level + 1);
            if (!json_at(b, l->v[i], o, level + 1, err)) return false;
        }
        if (o->indent && l->len) json_newline(b, o, level);
        hr_jbuf_addc(b, ']');
        return true;
    }
    case HR_JV_DICT: {
        hr_jdict *d = hr_jv_dict(v);
        size_t *order = NULL;
        if (o->sort_keys && d->len) {
            order = malloc(2 * d->len * sizeof *order);
            if (!order) return hr_fail(err, HR_ERR_NOMEM, "out of memory"), false;
            if (!sorted_order(d, order, order + d->len, err)) {
                free(order);
                return false;
            }
        }
        bool ok = true;
        hr_jbuf_addc(b, '{');
        for (size_t i = 0; i < d->len && ok; i++) {
            size_t at = order ? order[i] : i;
            if (i) hr_jbuf_add(b, o->item_sep, o->item_sep_len);
            if (o->indent) json_newline(b, o, level + 1);
            ok = json_key(b, d->k[at], o, err);
            if (ok) {
                hr_jbuf_add(b, o->key_sep, o->key_sep_len);
                ok = json_at(b, d->v[at], o, level + 1, err);
            }
        }
        free(order);
        if (!ok) return false;
        if (o->indent && d->len) json_newline(b, o, level);
        hr_jbuf_addc(b, '}');
        return true;
    }
    default: break;
    }
    hr_fail(err, HR_ERR_INVALID, "TypeError: Object of type %s is not JSON serializable", hr_jv_type_name(v));
    return false;
}

bool hr_jv_write_json(hr_jbuf *b, hr_jv v, const hr_jjson_opts *opts, hr_error *err) {
    return json_at(b, v, opts, 0, err);
}
