/* tokenizer/jinja_value — the values a chat template computes with, modelled on the
 * Python objects Jinja2 hands around: undefined, None, bool, int, float, str (with
 * markupsafe's "safe" flag), list, tuple, dict (insertion-ordered), namespace, callables,
 * loop objects and one-shot generators. Also Python's str()/repr() and ==/< on them, the
 * conversion from jansson, and json.dumps for the tojson filter.
 *
 * Owns: every heap value, by reference count. A value returned by a function is owned by
 * the caller (release it); a value passed as an argument is borrowed unless the comment
 * says "consumes". Values marked immortal (template constants) are never counted or
 * freed by releases, so one compiled template can be rendered from many threads.
 * Must not: know about templates, scopes or errors with line numbers (jinja_eval does);
 * mutate a value that another holder can see, except namespaces, which are mutable by
 * design. Every recursive walk is bounded by HR_JV_MAX_DEPTH. */
#ifndef HR_TOKENIZER_JINJA_VALUE_H
#define HR_TOKENIZER_JINJA_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/error.h"

/* Containers may nest this deep (Python itself stops near 1000 frames). */
#define HR_JV_MAX_DEPTH 512

typedef enum {
    HR_JV_UNDEFINED,
    HR_JV_NONE,
    HR_JV_BOOL,
    HR_JV_INT,
    HR_JV_FLOAT,
    HR_JV_STRING,
    HR_JV_LIST,
    HR_JV_TUPLE,
    HR_JV_DICT,
    HR_JV_NAMESPACE,
    HR_JV_CALLABLE,
    HR_JV_LOOP,
    HR_JV_ITERATOR,
} hr_jv_kind;

typedef enum { HR_JOBJ_STR, HR_JOBJ_LIST, HR_JOBJ_DICT, HR_JOBJ_FUNC, HR_JOBJ_LOOP, HR_JOBJ_ITER } hr_jobj_type;

#define HR_JOBJ_IMMORTAL UINT32_MAX

typedef struct {
    uint32_t refs;
    uint8_t type; /* hr_jobj_type */
} hr_jobj;

typedef struct {
    uint8_t kind; /* hr_jv_kind */
    bool safe;    /* a string that is markupsafe.Markup: '+' escapes the other side */
    union {
        bool b;
        int64_t i;
        double f;
        hr_jobj *o; /* strings, containers, callables; undefined: its hint string or NULL */
    } u;
} hr_jv;

typedef struct {
    hr_jobj h;
    size_t len;
    bool ascii; /* every byte < 0x80: byte offsets are code point offsets */
    char s[];   /* NUL-terminated for convenience; may hold NULs */
} hr_jstr;

/* How a list prints and serializes: Python's views over a dict are not lists. */
typedef enum {
    HR_JLIST_PLAIN,
    HR_JLIST_DICT_ITEMS,
    HR_JLIST_DICT_KEYS,
    HR_JLIST_DICT_VALUES,
    HR_JLIST_RANGE
} hr_jlist_view;

typedef struct {
    hr_jobj h;
    size_t len, cap;
    hr_jv *v;
    uint8_t view;     /* hr_jlist_view */
    uint32_t depth;   /* 1 + deepest element container; bounded by HR_JV_MAX_DEPTH */
    int64_t range[3]; /* HR_JLIST_RANGE: the start, stop and step it prints with */
} hr_jlist;

typedef struct {
    hr_jobj h;
    size_t len, cap;
    hr_jv *k, *v;
    uint32_t depth;
    /* A hash index (slots hold position + 1, 0 is empty) once the dict is big enough for
     * linear search to hurt: conversations may carry dicts with very many keys. */
    size_t *index;
    size_t index_cap;
} hr_jdict;

/* A callable. kind and id are interpreted by jinja_eval; self is a bound receiver
 * (the string of "s.strip", the loop of "loop.cycle"), name is for messages. */
typedef struct {
    hr_jobj h;
    uint16_t kind;
    uint16_t id;
    const void *node; /* a macro's definition */
    hr_jv self;
    const char *name;
} hr_jfunc;

typedef struct {
    hr_jobj h;
    hr_jlist *items;
    size_t index0;
} hr_jloop;

/* A generator (what select, map, items ... return): truthy, iterable once. */
typedef struct {
    hr_jobj h;
    hr_jlist *items;
    size_t pos;
} hr_jiter;

/* Limits shared by everything that grows during one render, so no template can exhaust
 * memory or time: the longest string, and a budget of bytes and elements created. */
typedef struct {
    size_t max_string;
    uint64_t bytes_left;
    uint64_t items_left;
} hr_jbudget;

/* A growing byte buffer charged against a budget (NULL: unlimited). */
typedef struct {
    char *data;
    size_t len, cap;
    hr_jbudget *budget;
    int failed; /* 0, or why an append failed (later appends are then ignored) */
} hr_jbuf;

/* ---- construction and lifetime ---- */
static inline hr_jv hr_jv_none(void) { return (hr_jv){.kind = HR_JV_NONE}; }
static inline hr_jv hr_jv_bool(bool b) { return (hr_jv){.kind = HR_JV_BOOL, .u.b = b}; }
static inline hr_jv hr_jv_int(int64_t i) { return (hr_jv){.kind = HR_JV_INT, .u.i = i}; }
static inline hr_jv hr_jv_float(double f) { return (hr_jv){.kind = HR_JV_FLOAT, .u.f = f}; }
static inline bool hr_jv_is_heap(hr_jv v) { return v.kind >= HR_JV_STRING || (v.kind == HR_JV_UNDEFINED && v.u.o); }
/* An undefined value whose hint is a printf-formatted message (no hint on OOM). */
hr_jv hr_jv_undefinedf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

hr_jv hr_jv_retain(hr_jv v);
void hr_jv_release(hr_jv v);
/* Marks v and everything inside it immortal (template constants). */
void hr_jv_make_immortal(hr_jv v);
/* Frees an immortal value made by the template compiler. */
void hr_jv_free_immortal(hr_jv v);

hr_jstr *hr_jstr_new(const char *s, size_t n); /* NULL on OOM */
/* A string value wrapping s (consumed, not NULL). */
hr_jv hr_jv_from_str(hr_jstr *s, bool safe);
/* A new string value copied from bytes; false on OOM. */
bool hr_jv_new_string(hr_jv *out, const char *s, size_t n);
static inline hr_jstr *hr_jv_str(hr_jv v) { return (hr_jstr *)v.u.o; }
static inline hr_jlist *hr_jv_list(hr_jv v) { return (hr_jlist *)v.u.o; }
static inline hr_jdict *hr_jv_dict(hr_jv v) { return (hr_jdict *)v.u.o; }
static inline bool hr_jv_is_str(hr_jv v) { return v.kind == HR_JV_STRING; }
static inline bool hr_jv_is_seq(hr_jv v) { return v.kind == HR_JV_LIST || v.kind == HR_JV_TUPLE; }

/* Containers. Constructors return NULL on OOM. Adding consumes the values even when it
 * fails (out of memory, past the budget, or nesting deeper than HR_JV_MAX_DEPTH). */
hr_jlist *hr_jlist_new(size_t cap);
bool hr_jlist_push(hr_jlist *l, hr_jv v, hr_jbudget *budget, hr_error *err);
hr_jv hr_jv_from_list(hr_jlist *l, hr_jv_kind kind); /* LIST or TUPLE; consumes l */

hr_jdict *hr_jdict_new(void);
/* Sets key to val, keeping the first insertion's position, as Python does. */
bool hr_jdict_set(hr_jdict *d, hr_jv key, hr_jv val, hr_jbudget *budget, hr_error *err);
/* The value under key (borrowed), or NULL. */
hr_jv *hr_jdict_get(const hr_jdict *d, hr_jv key);
hr_jv *hr_jdict_get_cstr(const hr_jdict *d, const char *key);
hr_jv hr_jv_from_dict(hr_jdict *d, hr_jv_kind kind); /* DICT or NAMESPACE; consumes d */

/* Empties a dict or namespace, releasing what it held. */
void hr_jdict_clear(hr_jdict *d);

/* A loop object over items (retained); NULL on OOM. */
hr_jloop *hr_jloop_new(hr_jlist *items);
/* A generator yielding items (consumed, also on failure); NULL on OOM. */
hr_jiter *hr_jiter_new(hr_jlist *items);

/* A callable bound to self (retained; none when unbound). */
hr_jfunc *hr_jfunc_new(uint16_t kind, uint16_t id, const char *name, hr_jv self);
hr_jv hr_jv_from_obj(hr_jobj *o, hr_jv_kind kind); /* consumes o (not NULL) */
/* Depth of nesting of a container value (0 for scalars). */
uint32_t hr_jv_depth(hr_jv v);

/* ---- Python semantics ---- */
bool hr_jv_truthy(hr_jv v);
/* Python's type name for messages: "str", "int", "dict", "NoneType", "Undefined", ... */
const char *hr_jv_type_name(hr_jv v);
/* Python ==. Fails (false, err filled) only for unsupported or too-deep comparisons. */
bool hr_jv_equal(hr_jv a, hr_jv b, bool *out, hr_error *err);
/* Python <, for sorting and the < <= > >= operators: -1, 0 or 1 in *out. */
bool hr_jv_compare(hr_jv a, hr_jv b, int *out, hr_error *err);
/* A key's hashability as Python sees it (dict keys, unique). */
bool hr_jv_hashable(hr_jv v);

/* str(v) and repr(v) appended to b. Fail for objects whose text Python would make from a
 * memory address (bound methods, generators), which no template can rely on. */
bool hr_jv_write_str(hr_jbuf *b, hr_jv v, hr_error *err);
bool hr_jv_write_repr(hr_jbuf *b, hr_jv v, hr_error *err);
/* markupsafe.escape: & < > " ' to entities. */
void hr_jv_write_escaped(hr_jbuf *b, const char *s, size_t n);

/* ---- JSON ---- */
/* A value from parsed JSON (objects keep their key order). */
bool hr_jv_from_json(const json_t *j, hr_jv *out, hr_jbudget *budget, hr_error *err);

typedef struct {
    bool ensure_ascii;
    const char *indent; /* NULL: single line */
    size_t indent_len;
    const char *item_sep, *key_sep;
    size_t item_sep_len, key_sep_len;
    bool sort_keys;
} hr_jjson_opts;
/* json.dumps(v, ...) appended to b, with Python's errors for what it cannot encode. */
bool hr_jv_write_json(hr_jbuf *b, hr_jv v, const hr_jjson_opts *opts, hr_error *err);

/* ---- buffers ---- */
void hr_jbuf_init(hr_jbuf *b, hr_jbudget *budget);
void hr_jbuf_free(hr_jbuf *b);
void hr_jbuf_add(hr_jbuf *b, const char *s, size_t n);
void hr_jbuf_addc(hr_jbuf *b, char c);
void hr_jbuf_adds(hr_jbuf *b, const char *s);
void hr_jbuf_addf(hr_jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hr_jbuf_add_cp(hr_jbuf *b, uint32_t cp);
/* Turns the buffer into a string value (the buffer is emptied). On failure returns false
 * with err filled: out of memory, or the string/budget limit. */
bool hr_jbuf_finish(hr_jbuf *b, bool safe, hr_jv *out, hr_error *err);
/* The reason a failed buffer failed, as an error. */
hr_status hr_jbuf_error(const hr_jbuf *b, hr_error *err);

#endif
