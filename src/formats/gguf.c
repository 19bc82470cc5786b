/* formats/gguf — see gguf.h. The file is read in one forward pass through a cursor that
 * bounds-checks every read; the checks that need the whole index (duplicate names, the
 * alignment, data bounds, overlapping tensors) run after that pass. */
#include "formats/gguf.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/ggml_type.h"

enum {
    DEFAULT_ALIGNMENT = 32,
    /* The smallest encoding of each counted thing. A count is checked against the bytes
     * left in the file divided by these before anything is allocated for it, so a hostile
     * count can cost at most a small multiple of the file's size. */
    MIN_KV_BYTES = 8 + 4 + 1,                  /* key length, empty key, type, u8 value */
    MIN_TENSOR_INFO_BYTES = 8 + 4 + 8 + 4 + 8, /* name length, n_dims, one ne, type, offset */
    MIN_STRING_BYTES = 8,
    MIN_ARRAY_BYTES = 4 + 8,
    SHOWN_NAME_CHARS = 64, /* of a key or tensor name quoted in an error message */
};

/* Everything a parse allocates hangs off one list, so closing frees it all whatever
 * point a failed parse reached. */
typedef struct alloc_node {
    struct alloc_node *next;
    max_align_t payload[];
} alloc_node;

typedef struct {
    alloc_node *allocs;
    const void **kv_by_key;      /* hr_gguf_kv pointers sorted by key */
    const void **tensor_by_name; /* hr_gguf_tensor pointers sorted by name */
} gguf_private;

/* Zeroed storage for count items; NULL when out of memory or the size overflows. */
static void *arena_alloc(gguf_private *p, uint64_t count, size_t elem_bytes) {
    if (count > (SIZE_MAX - sizeof(alloc_node)) / elem_bytes) return NULL;
    alloc_node *n = calloc(1, sizeof *n + (size_t)count * elem_bytes);
    if (!n) return NULL;
    n->next = p->allocs;
    p->allocs = n;
    return n->payload;
}

unsigned hr_gguf_type_size(hr_gguf_type t) {
    static const uint8_t bytes[] = {
        [HR_GGUF_UINT8] = 1,  [HR_GGUF_INT8] = 1,  [HR_GGUF_UINT16] = 2,  [HR_GGUF_INT16] = 2,
        [HR_GGUF_UINT32] = 4, [HR_GGUF_INT32] = 4, [HR_GGUF_FLOAT32] = 4, [HR_GGUF_BOOL] = 1,
        [HR_GGUF_UINT64] = 8, [HR_GGUF_INT64] = 8, [HR_GGUF_FLOAT64] = 8,
    };
    return (unsigned)t < sizeof bytes ? bytes[t] : 0;
}

static bool is_signed_type(hr_gguf_type t) {
    return t == HR_GGUF_INT8 || t == HR_GGUF_INT16 || t == HR_GGUF_INT32 || t == HR_GGUF_INT64;
}

static bool is_unsigned_type(hr_gguf_type t) {
    return t == HR_GGUF_UINT8 || t == HR_GGUF_UINT16 || t == HR_GGUF_UINT32 || t == HR_GGUF_UINT64;
}

static bool is_float_type(hr_gguf_type t) {
    return t == HR_GGUF_FLOAT32 || t == HR_GGUF_FLOAT64;
}

static uint64_t load_le(const uint8_t *p, unsigned n) {
    uint64_t v = 0;
    for (unsigned i = n; i-- > 0;) v = v << 8 | p[i];
    return v;
}

/* Fills v, whose type is already a scalar type, from its little-endian encoding at p. */
static void decode_scalar(hr_gguf_value *v, const uint8_t *p) {
    unsigned n = hr_gguf_type_size(v->type);
    uint64_t bits = load_le(p, n);
    if (is_signed_type(v->type)) {
        uint64_t sign = 1ull << (8 * n - 1);
        uint64_t mask = n == 8 ? UINT64_MAX : (1ull << 8 * n) - 1;
        /* Spelled out rather than cast so the conversion is defined for every value. */
        v->i = (bits & sign) ? -(int64_t)(~bits & mask) - 1 : (int64_t)bits;
    } else if (v->type == HR_GGUF_FLOAT32) {
        uint32_t b32 = (uint32_t)bits;
        float f;
        memcpy(&f, &b32, sizeof f);
        v->f = f;
    } else if (v->type == HR_GGUF_FLOAT64) {
        memcpy(&v->f, &bits, sizeof v->f);
    } else {
        v->u = bits;
    }
}

/* Keys and names can hold any bytes; messages show them printable and bounded. Returned
 * by value so a call can sit in a printf argument list. */
typedef struct {
    char s[SHOWN_NAME_CHARS + 4];
} quoted;

static quoted quote(hr_gguf_str str) {
    quoted q;
    size_t n = 0;
    for (; n < str.len && n < SHOWN_NAME_CHARS; n++) {
        unsigned char ch = (unsigned char)str.ptr[n];
        q.s[n] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    memcpy(q.s + n, n < str.len ? "..." : "", n < str.len ? 4 : 1);
    return q;
}

static int cmp_str(hr_gguf_str a, hr_gguf_str b) {
    uint64_t n = a.len < b.len ? a.len : b.len;
    int r = n ? memcmp(a.ptr, b.ptr, n) : 0;
    if (r) return r;
    return (a.len > b.len) - (a.len < b.len);
}

/* ---- the bounds-checked cursor ---- */

typedef struct {
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
    hr_error *err;
    char ctx[160]; /* what is being read: "header", "kv 3 ('general.name')", ... */
    uint64_t path[HR_GGUF_MAX_ARRAY_DEPTH]; /* element indices inside nested arrays */
    unsigned depth;
} cursor;

/* Sets the context to e.g. "tensor 3 ('blk.0.attn_q.weight') info". */
static void name_ctx(cursor *c, const char *kind, uint64_t index, const hr_gguf_str *name,
                     const char *suffix) {
    quoted q = {""};
    if (name) q = quote(*name);
    snprintf(c->ctx, sizeof c->ctx, "%s %" PRIu64 "%s%s%s%s", kind, index, name ? " ('" : "", q.s,
             name ? "')" : "", suffix);
}

static hr_status fail_at(cursor *c, hr_status status, uint64_t at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static hr_status fail_at(cursor *c, hr_status status, uint64_t at, const char *fmt, ...) {
    char detail[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    char path[HR_GGUF_MAX_ARRAY_DEPTH * 24 + 16] = "";
    size_t n = 0;
    if (c->depth) n += (size_t)snprintf(path, sizeof path, " element ");
    for (unsigned d = 0; d < c->depth; d++)
        n += (size_t)snprintf(path + n, sizeof path - n, "[%" PRIu64 "]", c->path[d]);
    return hr_fail(c->err, status, "gguf: %s%s at byte %" PRIu64 ": %s", c->ctx, path, at, detail);
}

static hr_status take(cursor *c, uint64_t n, const char *field, const uint8_t **out) {
    *out = NULL;
    if (n > c->size - c->pos)
        return fail_at(c, HR_ERR_FORMAT, c->pos,
                       "%s needs %" PRIu64 " bytes but only %" PRIu64
                       " remain (the file is %" PRIu64 " bytes)",
                       field, n, c->size - c->pos, c->size);
    *out = c->base + c->pos;
    c->pos += n;
    return HR_OK;
}

static hr_status read_uint(cursor *c, unsigned n, const char *field, uint64_t *out) {
    const uint8_t *p;
    hr_status s = take(c, n, field, &p);
    if (s == HR_OK) *out = load_le(p, n);
    return s;
}

static hr_status read_u32(cursor *c, const char *field, uint32_t *out) {
    uint64_t v = 0;
    hr_status s = read_uint(c, 4, field, &v);
    *out = (uint32_t)v;
    return s;
}

static hr_status read_str(cursor *c, const char *field, hr_gguf_str *out) {
    uint64_t at = c->pos, len = 0;
    hr_status s = read_uint(c, 8, field, &len);
    if (s != HR_OK) return s;
    if (len > c->size - c->pos)
        return fail_at(c, HR_ERR_FORMAT, at,
                       "%s length %" PRIu64 " runs past the end of the file (%" PRIu64 " bytes)",
                       field, len, c->size);
    out->ptr = (const char *)c->base + c->pos;
    out->len = len;
    c->pos += len;
    return HR_OK;
}

static hr_status read_type(cursor *c, const char *field, hr_gguf_type *out) {
    uint64_t at = c->pos;
    uint32_t t = 0;
    hr_status s = read_u32(c, field, &t);
    if (s != HR_OK) return s;
    if (t > HR_GGUF_FLOAT64)
        return fail_at(c, HR_ERR_FORMAT, at, "%s %" PRIu32 " is not a GGUF value type (0..12)",
                       field, t);
    *out = (hr_gguf_type)t;
    return HR_OK;
}

/* ---- metadata values ---- */

static hr_status check_bools(cursor *c, const uint8_t *b, uint64_t count, uint64_t at) {
    for (uint64_t i = 0; i < count; i++)
        if (b[i] > 1)
            return fail_at(c, HR_ERR_FORMAT, at + i, "bool value %u is neither 0 nor 1", b[i]);
    return HR_OK;
}

static hr_status parse_value(cursor *c, gguf_private *p, unsigned depth, hr_gguf_value *v);

static hr_status parse_array(cursor *c, gguf_private *p, unsigned depth, hr_gguf_value *v) {
    uint64_t at = c->pos;
    if (depth >= HR_GGUF_MAX_ARRAY_DEPTH)
        return fail_at(c, HR_ERR_FORMAT, at, "arrays are nested more than %d deep",
                       HR_GGUF_MAX_ARRAY_DEPTH);
    hr_status s = read_type(c, "array element type", &v->arr.elem_type);
    if (s == HR_OK) s = read_uint(c, 8, "array count", &v->arr.count);
    if (s != HR_OK) return s;
    hr_gguf_type elem_type = v->arr.elem_type;
    uint64_t count = v->arr.count, remaining = c->size - c->pos;
    unsigned elem_bytes = hr_gguf_type_size(elem_type);
    uint64_t min_bytes = elem_bytes                    ? elem_bytes
                         : elem_type == HR_GGUF_STRING ? MIN_STRING_BYTES
                                                       : MIN_ARRAY_BYTES;
    if (count > remaining / min_bytes)
        return fail_at(c, HR_ERR_FORMAT, at + 4,
                       "array count %" PRIu64 " of %s cannot fit in the %" PRIu64
                       " bytes left in the file",
                       count, hr_gguf_type_name(elem_type), remaining);
    if (elem_bytes) {
        uint64_t raw_at = c->pos;
        s = take(c, count * elem_bytes, "array elements", &v->arr.raw);
        if (s == HR_OK && elem_type == HR_GGUF_BOOL) s = check_bools(c, v->arr.raw, count, raw_at);
        return s;
    }
    v->arr.items = arena_alloc(p, count, sizeof *v->arr.items);
    if (!v->arr.items)
        return fail_at(c, HR_ERR_NOMEM, at + 4, "out of memory for %" PRIu64 " array elements",
                       count);
    c->depth = depth + 1;
    for (uint64_t i = 0; i < count && s == HR_OK; i++) {
        c->path[depth] = i;
        v->arr.items[i].type = elem_type;
        s = parse_value(c, p, depth + 1, &v->arr.items[i]);
    }
    c->depth = depth;
    return s;
}

/* Parses a value whose type the caller has set in v->type. */
static hr_status parse_value(cursor *c, gguf_private *p, unsigned depth, hr_gguf_value *v) {
    if (v->type == HR_GGUF_STRING) return read_str(c, "string", &v->str);
    if (v->type == HR_GGUF_ARRAY) return parse_array(c, p, depth, v);
    uint64_t at = c->pos;
    const uint8_t *b;
    hr_status s = take(c, hr_gguf_type_size(v->type), "value", &b);
    if (s != HR_OK) return s;
    decode_scalar(v, b);
    return v->type == HR_GGUF_BOOL ? check_bools(c, b, 1, at) : HR_OK;
}

/* ---- the index: sorting, duplicates, lookup ---- */

/* Kvs and tensors both start with their name, so one comparator and one lookup serve
 * both indexes. */
_Static_assert(offsetof(hr_gguf_kv, key) == 0, "hr_gguf_kv must start with its key");
_Static_assert(offsetof(hr_gguf_tensor, name) == 0, "hr_gguf_tensor must start with its name");

/* Ties keep file order (items sit in one array), so a duplicate is reported against the
 * first occurrence and overlapping tensors in the order they appear. */
static int cmp_address(const void *x, const void *y) {
    return ((uintptr_t)x > (uintptr_t)y) - ((uintptr_t)x < (uintptr_t)y);
}

static int cmp_by_name(const void *a, const void *b) {
    const hr_gguf_str *x = *(const void *const *)a, *y = *(const void *const *)b;
    int r = cmp_str(*x, *y);
    return r ? r : cmp_address(x, y);
}

static int cmp_by_offset(const void *a, const void *b) {
    const hr_gguf_tensor *x = *(const void *const *)a, *y = *(const void *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return cmp_address(x, y);
}

/* Pointers to count items of stride bytes, sorted by cmp; NULL when out of memory. */
static const void **sorted_index(gguf_private *p, const void *items, uint64_t count, size_t stride,
                                 int (*cmp)(const void *, const void *)) {
    const void **idx = arena_alloc(p, count, sizeof *idx);
    if (!idx) return NULL;
    for (uint64_t i = 0; i < count; i++) idx[i] = (const char *)items + i * stride;
    qsort(idx, (size_t)count, sizeof *idx, cmp);
    return idx;
}

/* Position in a name index of the second of two equal adjacent names, or 0 when none. */
static uint64_t find_duplicate(const void **idx, uint64_t count) {
    for (uint64_t i = 1; i < count; i++)
        if (cmp_str(*(const hr_gguf_str *)idx[i - 1], *(const hr_gguf_str *)idx[i]) == 0) return i;
    return 0;
}

static const void *lookup_name(const void **idx, uint64_t count, const char *name) {
    if (!idx || !name) return NULL;
    hr_gguf_str want = {name, strlen(name)};
    uint64_t lo = 0, hi = count;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (cmp_str(*(const hr_gguf_str *)idx[mid], want) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < count && cmp_str(*(const hr_gguf_str *)idx[lo], want) == 0 ? idx[lo] : NULL;
}

const hr_gguf_kv *hr_gguf_find(const hr_gguf *g, const char *key) {
    const gguf_private *p = g->arena_;
    return p ? lookup_name(p->kv_by_key, g->n_kv, key) : NULL;
}

const hr_gguf_tensor *hr_gguf_tensor_find(const hr_gguf *g, const char *name) {
    const gguf_private *p = g->arena_;
    return p ? lookup_name(p->tensor_by_name, g->n_tensors, name) : NULL;
}

/* ---- the passes ---- */

static hr_status parse_header(cursor *c, hr_gguf *g) {
    snprintf(c->ctx, sizeof c->ctx, "header");
    const uint8_t *m;
    hr_status s = take(c, 4, "magic", &m);
    if (s != HR_OK) return s;
    if (memcmp(m, "GGUF", 4) != 0)
        return fail_at(c, HR_ERR_FORMAT, 0,
                       "magic is %02x %02x %02x %02x, not 'GGUF': this is not a GGUF file", m[0],
                       m[1], m[2], m[3]);
    s = read_u32(c, "version", &g->version);
    if (s != HR_OK) return s;
    if (g->version == 1)
        return fail_at(c, HR_ERR_UNSUPPORTED, 4,
                       "GGUF version 1 (32-bit counts) is not supported; re-convert the model "
                       "with a current converter");
    if (g->version == 0x02000000u || g->version == 0x03000000u)
        return fail_at(c, HR_ERR_UNSUPPORTED, 4, "big-endian GGUF files are not supported");
    if (g->version != 2 && g->version != 3)
        return fail_at(c, HR_ERR_UNSUPPORTED, 4,
                       "GGUF version %" PRIu32 " is not supported (headroom reads 2 and 3)",
                       g->version);
    s = read_uint(c, 8, "tensor count", &g->n_tensors);
    if (s == HR_OK) s = read_uint(c, 8, "kv count", &g->n_kv);
    if (s != HR_OK) return s;
    if (g->n_kv > (c->size - c->pos) / MIN_KV_BYTES)
        return fail_at(c, HR_ERR_FORMAT, 16,
                       "kv count %" PRIu64 " cannot fit in the %" PRIu64 " bytes after the header",
                       g->n_kv, c->size - c->pos);
    return HR_OK;
}

static hr_status parse_kvs(cursor *c, hr_gguf *g, gguf_private *p) {
    g->kvs = arena_alloc(p, g->n_kv, sizeof *g->kvs);
    if (!g->kvs) return fail_at(c, HR_ERR_NOMEM, 16, "out of memory for %" PRIu64 " kvs", g->n_kv);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        hr_gguf_kv *kv = &g->kvs[i];
        kv->offset = c->pos;
        name_ctx(c, "kv", i, NULL, "");
        hr_status s = read_str(c, "key", &kv->key);
        if (s != HR_OK) return s;
        name_ctx(c, "kv", i, &kv->key, "");
        s = read_type(c, "value type", &kv->value.type);
        if (s == HR_OK) s = parse_value(c, p, 0, &kv->value);
        if (s != HR_OK) return s;
    }
    p->kv_by_key = sorted_index(p, g->kvs, g->n_kv, sizeof *g->kvs, cmp_by_name);
    if (!p->kv_by_key) return fail_at(c, HR_ERR_NOMEM, 16, "out of memory indexing the kvs");
    uint64_t dup = find_duplicate(p->kv_by_key, g->n_kv);
    if (dup) {
        const hr_gguf_kv *first = p->kv_by_key[dup - 1], *again = p->kv_by_key[dup];
        name_ctx(c, "kv", (uint64_t)(again - g->kvs), &again->key, "");
        return fail_at(c, HR_ERR_FORMAT, again->offset,
                       "duplicate key (already set by kv %td at byte %" PRIu64 ")", first - g->kvs,
                       first->offset);
    }
    return HR_OK;
}

static hr_status read_alignment(cursor *c, hr_gguf *g) {
    g->alignment = DEFAULT_ALIGNMENT;
    const hr_gguf_kv *kv = hr_gguf_find(g, "general.alignment");
    if (!kv) return HR_OK;
    name_ctx(c, "kv", (uint64_t)(kv - g->kvs), &kv->key, "");
    if (kv->value.type != HR_GGUF_UINT32)
        return fail_at(c, HR_ERR_FORMAT, kv->offset,
                       "general.alignment has type %s, but GGUF requires u32",
                       hr_gguf_type_name(kv->value.type));
    uint64_t a = kv->value.u;
    if (a == 0 || (a & (a - 1)) != 0)
        return fail_at(c, HR_ERR_FORMAT, kv->offset,
                       "general.alignment %" PRIu64 " is not a nonzero power of two", a);
    g->alignment = a;
    return HR_OK;
}

static hr_status parse_tensor_info(cursor *c, const hr_gguf *g, uint64_t i, hr_gguf_tensor *t) {
    t->info_offset = c->pos;
    name_ctx(c, "tensor", i, NULL, " info");
    hr_status s = read_str(c, "name", &t->name);
    if (s != HR_OK) return s;
    name_ctx(c, "tensor", i, &t->name, " info");
    uint64_t dims_at = c->pos;
    s = read_u32(c, "n_dims", &t->n_dims);
    if (s != HR_OK) return s;
    /* Checked here, not only by hr_gguf_tensor_nbytes, because ne has room for 4. */
    if (t->n_dims == 0 || t->n_dims > HR_GGUF_MAX_DIMS)
        return fail_at(c, HR_ERR_FORMAT, dims_at, "n_dims %" PRIu32 " is outside 1..%d", t->n_dims,
                       HR_GGUF_MAX_DIMS);
    for (uint32_t d = 0; d < HR_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims && s == HR_OK; d++) s = read_uint(c, 8, "ne", &t->ne[d]);
    if (s == HR_OK) s = read_u32(c, "type", &t->type);
    if (s != HR_OK) return s;
    hr_error why;
    s = hr_gguf_tensor_nbytes(t->type, t->n_dims, t->ne, &t->size_bytes, &why);
    if (s != HR_OK)
        return fail_at(c, s == HR_ERR_INVALID ? HR_ERR_FORMAT : s, dims_at, "%s", why.msg);
    uint64_t offset_at = c->pos;
    s = read_uint(c, 8, "data offset", &t->offset);
    if (s != HR_OK) return s;
    if (t->offset % g->alignment != 0)
        return fail_at(c, HR_ERR_FORMAT, offset_at,
                       "data offset %" PRIu64 " is not a multiple of the alignment %" PRIu64,
                       t->offset, g->alignment);
    return HR_OK;
}

/* Points every tensor into the data section, which starts at the first aligned byte after
 * the infos. A file without tensors may end before that byte (vocabulary-only files do). */
static hr_status place_tensors(cursor *c, hr_gguf *g) {
    uint64_t pad = (g->alignment - c->pos % g->alignment) % g->alignment;
    g->data_offset = c->pos + pad;
    uint64_t room = g->data_offset <= c->size ? c->size - g->data_offset : 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        hr_gguf_tensor *t = &g->tensors[i];
        if (t->offset > room || t->size_bytes > room - t->offset) {
            name_ctx(c, "tensor", i, &t->name, " info");
            return fail_at(c, HR_ERR_FORMAT, t->info_offset,
                           "offset %" PRIu64 " + size %" PRIu64
                           " runs past the end of the file (%" PRIu64
                           " bytes, data section at byte %" PRIu64 ")",
                           t->offset, t->size_bytes, c->size, g->data_offset);
        }
        t->data = g->base + g->data_offset + t->offset;
    }
    return HR_OK;
}

static hr_status check_tensor_overlaps(cursor *c, hr_gguf *g, gguf_private *p) {
    const void **by_offset =
        sorted_index(p, g->tensors, g->n_tensors, sizeof *g->tensors, cmp_by_offset);
    if (!by_offset) return fail_at(c, HR_ERR_NOMEM, 8, "out of memory indexing the tensors");
    for (uint64_t k = 1; k < g->n_tensors; k++) {
        const hr_gguf_tensor *prev = by_offset[k - 1], *t = by_offset[k];
        uint64_t prev_end = prev->offset + prev->size_bytes; /* both within the file */
        if (t->offset < prev_end) {
            name_ctx(c, "tensor", (uint64_t)(t - g->tensors), &t->name, " info");
            return fail_at(c, HR_ERR_FORMAT, t->info_offset,
                           "data [%" PRIu64 ", %" PRIu64
                           ") overlaps tensor %td ('%s') data [%" PRIu64 ", %" PRIu64 ")",
                           t->offset, t->offset + t->size_bytes, prev - g->tensors,
                           quote(prev->name).s, prev->offset, prev_end);
        }
    }
    return HR_OK;
}

static hr_status parse_tensors(cursor *c, hr_gguf *g, gguf_private *p) {
    snprintf(c->ctx, sizeof c->ctx, "header");
    if (g->n_tensors > (c->size - c->pos) / MIN_TENSOR_INFO_BYTES)
        return fail_at(c, HR_ERR_FORMAT, 8,
                       "tensor count %" PRIu64 " cannot fit in the %" PRIu64
                       " bytes after the metadata",
                       g->n_tensors, c->size - c->pos);
    g->tensors = arena_alloc(p, g->n_tensors, sizeof *g->tensors);
    if (!g->tensors)
        return fail_at(c, HR_ERR_NOMEM, 8, "out of memory for %" PRIu64 " tensors", g->n_tensors);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        hr_status s = parse_tensor_info(c, g, i, &g->tensors[i]);
        if (s != HR_OK) return s;
    }
    hr_status s = place_tensors(c, g);
    if (s != HR_OK) return s;
    p->tensor_by_name = sorted_index(p, g->tensors, g->n_tensors, sizeof *g->tensors, cmp_by_name);
    if (!p->tensor_by_name)
        return fail_at(c, HR_ERR_NOMEM, 8, "out of memory indexing the tensors");
    uint64_t dup = find_duplicate(p->tensor_by_name, g->n_tensors);
    if (dup) {
        const hr_gguf_tensor *first = p->tensor_by_name[dup - 1], *again = p->tensor_by_name[dup];
        name_ctx(c, "tensor", (uint64_t)(again - g->tensors), &again->name, " info");
        return fail_at(c, HR_ERR_FORMAT, again->info_offset,
                       "duplicate tensor name (already used by tensor %td at byte %" PRIu64 ")",
                       first - g->tensors, first->info_offset);
    }
    return check_tensor_overlaps(c, g, p);
}

hr_status hr_gguf_parse(hr_gguf *g, const uint8_t *data, uint64_t size_bytes, hr_error *err) {
    memset(g, 0, sizeof *g);
    gguf_private *p = calloc(1, sizeof *p);
    if (!p) return hr_fail(err, HR_ERR_NOMEM, "gguf: out of memory");
    g->arena_ = p;
    g->base = data;
    g->size_bytes = size_bytes;
    cursor c = {.base = data, .size = size_bytes, .err = err};
    hr_status s = parse_header(&c, g);
    if (s == HR_OK) s = parse_kvs(&c, g, p);
    if (s == HR_OK) s = read_alignment(&c, g);
    if (s == HR_OK) s = parse_tensors(&c, g, p);
    if (s != HR_OK) hr_gguf_close(g);
    return s;
}

hr_status hr_gguf_open(hr_gguf *g, const char *path, hr_error *err) {
    memset(g, 0, sizeof *g);
    hr_mapped_file file;
    hr_status s = hr_file_map(&file, path, err);
    if (s != HR_OK) return s;
    s = hr_gguf_parse(g, file.data, file.size_bytes, err);
    if (s != HR_OK) {
        hr_file_unmap(&file);
        if (err) hr_fail_wrap(err, "'%s'", path);
        return s;
    }
    g->file = file;
    return HR_OK;
}

void hr_gguf_close(hr_gguf *g) {
    gguf_private *p = g->arena_;
    if (p) {
        for (alloc_node *n = p->allocs, *next; n; n = next) {
            next = n->next;
            free(n);
        }
        free(p);
    }
    hr_file_unmap(&g->file);
    memset(g, 0, sizeof *g);
}

/* ---- typed getters ---- */

static void describe_type(char *buf, size_t cap, const hr_gguf_value *v) {
    if (v->type == HR_GGUF_ARRAY)
        snprintf(buf, cap, "an array of %s", hr_gguf_type_name(v->arr.elem_type));
    else
        snprintf(buf, cap, "%s", hr_gguf_type_name(v->type));
}

static hr_status lookup(const hr_gguf *g, const char *key, const hr_gguf_kv **out, hr_error *err) {
    *out = hr_gguf_find(g, key);
    if (!*out) return hr_fail(err, HR_ERR_NOT_FOUND, "gguf: metadata key '%s' not found", key);
    return HR_OK;
}

static hr_status fail_kv(const hr_gguf_kv *kv, hr_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static hr_status fail_kv(const hr_gguf_kv *kv, hr_error *err, const char *fmt, ...) {
    char detail[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return hr_fail(err, HR_ERR_FORMAT, "gguf: metadata key '%s' (at byte %" PRIu64 ") %s",
                   quote(kv->key).s, kv->offset, detail);
}

static hr_status mismatch(const hr_gguf_kv *kv, const char *want, hr_error *err) {
    char have[64];
    describe_type(have, sizeof have, &kv->value);
    return fail_kv(kv, err, "is %s, expected %s", have, want);
}

static hr_status get_typed(const hr_gguf *g, const char *key, hr_gguf_type type,
                           const hr_gguf_kv **out, hr_error *err) {
    hr_status s = lookup(g, key, out, err);
    if (s == HR_OK && (*out)->value.type != type)
        return mismatch(*out, hr_gguf_type_name(type), err);
    return s;
}

/* An integer value of any width and signedness, checked to lie within [lo, hi]. */
static hr_status get_integer(const hr_gguf *g, const char *key, int64_t lo, uint64_t hi,
                             const char *want, const hr_gguf_value **out, hr_error *err) {
    const hr_gguf_kv *kv;
    hr_status s = lookup(g, key, &kv, err);
    if (s != HR_OK) return s;
    const hr_gguf_value *v = &kv->value;
    char shown[32];
    bool fits;
    if (is_signed_type(v->type)) {
        fits = v->i >= lo && (v->i < 0 || (uint64_t)v->i <= hi);
        snprintf(shown, sizeof shown, "%" PRId64, v->i);
    } else if (is_unsigned_type(v->type)) {
        fits = v->u <= hi;
        snprintf(shown, sizeof shown, "%" PRIu64, v->u);
    } else {
        return mismatch(kv, want, err);
    }
    if (fits) {
        *out = v;
        return HR_OK;
    }
    return fail_kv(kv, err, "holds %s %s, which does not fit in %s", hr_gguf_type_name(v->type),
                   shown, want);
}

hr_status hr_gguf_get_u32(const hr_gguf *g, const char *key, uint32_t *out, hr_error *err) {
    const hr_gguf_value *v;
    hr_status s = get_integer(g, key, 0, UINT32_MAX, "u32", &v, err);
    if (s == HR_OK) *out = is_signed_type(v->type) ? (uint32_t)v->i : (uint32_t)v->u;
    return s;
}

hr_status hr_gguf_get_u64(const hr_gguf *g, const char *key, uint64_t *out, hr_error *err) {
    const hr_gguf_value *v;
    hr_status s = get_integer(g, key, 0, UINT64_MAX, "u64", &v, err);
    if (s == HR_OK) *out = is_signed_type(v->type) ? (uint64_t)v->i : v->u;
    return s;
}

hr_status hr_gguf_get_i64(const hr_gguf *g, const char *key, int64_t *out, hr_error *err) {
    const hr_gguf_value *v;
    hr_status s = get_integer(g, key, INT64_MIN, INT64_MAX, "i64", &v, err);
    if (s == HR_OK) *out = is_signed_type(v->type) ? v->i : (int64_t)v->u;
    return s;
}

hr_status hr_gguf_get_f32(const hr_gguf *g, const char *key, float *out, hr_error *err) {
    const hr_gguf_kv *kv;
    hr_status s = lookup(g, key, &kv, err);
    if (s != HR_OK) return s;
    if (!is_float_type(kv->value.type)) return mismatch(kv, "f32 or f64", err);
    double d = kv->value.f;
    if (isfinite(d) && fabs(d) > FLT_MAX)
        return fail_kv(kv, err, "holds %g, which does not fit in f32", d);
    *out = (float)d;
    return HR_OK;
}

hr_status hr_gguf_get_bool(const hr_gguf *g, const char *key, bool *out, hr_error *err) {
    const hr_gguf_kv *kv;
    hr_status s = get_typed(g, key, HR_GGUF_BOOL, &kv, err);
    if (s == HR_OK) *out = kv->value.u != 0;
    return s;
}

hr_status hr_gguf_get_str(const hr_gguf *g, const char *key, hr_gguf_str *out, hr_error *err) {
    const hr_gguf_kv *kv;
    hr_status s = get_typed(g, key, HR_GGUF_STRING, &kv, err);
    if (s == HR_OK) *out = kv->value.str;
    return s;
}

hr_status hr_gguf_get_arr(const hr_gguf *g, const char *key, int elem_type,
                          const hr_gguf_value **out, hr_error *err) {
    const hr_gguf_kv *kv;
    hr_status s = get_typed(g, key, HR_GGUF_ARRAY, &kv, err);
    if (s != HR_OK) return s;
    if (elem_type >= 0 && kv->value.arr.elem_type != (hr_gguf_type)elem_type) {
        char want[64];
        snprintf(want, sizeof want, "an array of %s", hr_gguf_type_name((hr_gguf_type)elem_type));
        return mismatch(kv, want, err);
    }
    *out = &kv->value;
    return HR_OK;
}

/* Element i of a scalar array, decoded; type 0 (u8, value 0) when out of range or when
 * the elements are not scalars, so a caller's mistake reads a zero rather than memory. */
static hr_gguf_value arr_elem(const hr_gguf_value *arr, uint64_t i) {
    hr_gguf_value v = {.type = HR_GGUF_UINT8};
    if (arr->type != HR_GGUF_ARRAY) return v;
    unsigned n = hr_gguf_type_size(arr->arr.elem_type);
    if (!n || i >= arr->arr.count) return v;
    v.type = arr->arr.elem_type;
    decode_scalar(&v, arr->arr.raw + i * n);
    return v;
}

float hr_gguf_arr_f32(const hr_gguf_value *arr, uint64_t i) {
    hr_gguf_value v = arr_elem(arr, i);
    if (is_float_type(v.type)) return (float)v.f;
    return is_signed_type(v.type) ? (float)v.i : (float)v.u;
}

int64_t hr_gguf_arr_int(const hr_gguf_value *arr, uint64_t i) {
    hr_gguf_value v = arr_elem(arr, i);
    if (is_float_type(v.type)) return 0;
    return is_signed_type(v.type) ? v.i : (int64_t)v.u;
}

bool hr_gguf_str_eq(hr_gguf_str s, const char *c) {
    size_t n = strlen(c);
    return s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
}

const char *hr_gguf_type_name(hr_gguf_type t) {
    static const char *const names[] = {
        [HR_GGUF_UINT8] = "u8",    [HR_GGUF_INT8] = "i8",    [HR_GGUF_UINT16] = "u16",
        [HR_GGUF_INT16] = "i16",   [HR_GGUF_UINT32] = "u32", [HR_GGUF_INT32] = "i32",
        [HR_GGUF_FLOAT32] = "f32", [HR_GGUF_BOOL] = "bool",  [HR_GGUF_STRING] = "string",
        [HR_GGUF_ARRAY] = "array", [HR_GGUF_UINT64] = "u64", [HR_GGUF_INT64] = "i64",
        [HR_GGUF_FLOAT64] = "f64",
    };
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "unknown type";
}

static void format_shape(char *buf, size_t cap, uint32_t n_dims, const uint64_t *ne) {
    size_t n = (size_t)snprintf(buf, cap, "{");
    for (uint32_t d = 0; d < n_dims && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%" PRIu64, d ? ", " : "", ne[d]);
    if (n < cap) snprintf(buf + n, cap - n, "}");
}

hr_status hr_gguf_tensor_nbytes(uint32_t type, uint32_t n_dims, const uint64_t *ne,
                                uint64_t *out_bytes, hr_error *err) {
    if (n_dims == 0 || n_dims > HR_GGUF_MAX_DIMS)
        return hr_fail(err, HR_ERR_INVALID, "n_dims %" PRIu32 " is outside 1..%d", n_dims,
                       HR_GGUF_MAX_DIMS);
    const hr_type_info *info = hr_type_get(type);
    if (!info)
        return type < HR_TYPE_COUNT_
                   ? hr_fail(err, HR_ERR_UNSUPPORTED,
                             "tensor type %" PRIu32 " is not supported by headroom", type)
                   : hr_fail(err, HR_ERR_INVALID, "tensor type %" PRIu32 " is not a GGML type",
                             type);
    char shape[HR_GGUF_MAX_DIMS * 24 + 4];
    format_shape(shape, sizeof shape, n_dims, ne);
    uint64_t elems = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        /* The spec does not say whether a dimension may be 0. No model needs an empty
         * tensor, and refusing them keeps every data range non-empty (so the bounds and
         * overlap checks have no corner case and data points at a real byte) and makes the
         * row count below a safe division. */
        if (ne[d] == 0)
            return hr_fail(err, HR_ERR_INVALID,
                           "shape %s has ne[%" PRIu32 "] = 0; every dimension must be at least 1",
                           shape, d);
        /* ggml counts elements in an int64. */
        if (ne[d] > (uint64_t)INT64_MAX / elems)
            return hr_fail(err, HR_ERR_INVALID, "shape %s has more than 2^63-1 elements", shape);
        elems *= ne[d];
    }
    if (ne[0] % info->block_elems != 0)
        return hr_fail(err, HR_ERR_INVALID,
                       "shape %s: ne[0] = %" PRIu64
                       " is not a multiple of the %s block size (%" PRIu32 " elements)",
                       shape, ne[0], info->name, info->block_elems);
    uint64_t row_bytes, rows = elems / ne[0];
    if (!hr_type_row_bytes(type, ne[0], &row_bytes) || row_bytes > UINT64_MAX / rows)
        return hr_fail(err, HR_ERR_INVALID, "shape %s of type %s needs more than 2^64-1 bytes",
                       shape, info->name);
    *out_bytes = row_bytes * rows;
    return HR_OK;
}
