/* formats/gguf_write — see gguf_write.h. Each kv is kept as its encoded bytes (type tag
 * and payload exactly as they go into the file), so replacing a value, copying nested
 * arrays and writing all reduce to byte buffers. The header, metadata and tensor infos are
 * built in memory (they are small); tensor data is streamed from the caller's buffers. */
#include "formats/gguf_write.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/file.h"
#include "formats/ggml_type.h"

enum { DEFAULT_ALIGNMENT = 32, GGUF_VERSION = 3 };

/* A growable byte buffer whose failures are sticky, so a run of appends needs one check. */
typedef struct {
    uint8_t *p;
    uint64_t len, cap;
    bool failed;
} bytes;

typedef struct {
    char *key;
    uint64_t key_len;
    hr_gguf_type type;
    uint64_t scalar; /* the value's bits when type is a scalar type (read for the alignment) */
    bytes enc;       /* type tag + payload */
} wkv;

typedef struct {
    char *name;
    uint32_t n_dims;
    uint64_t ne[HR_GGUF_MAX_DIMS];
    uint32_t type;
    const void *data;
    uint64_t size_bytes;
} wtensor;

struct hr_gguf_writer {
    wkv *kvs;
    uint64_t n_kv, cap_kv;
    wtensor *tensors;
    uint64_t n_tensors, cap_tensors;
};

/* items grown to hold at least need elements: the new pointer, or NULL (items untouched). */
static void *grow(void *items, uint64_t *cap, uint64_t need, size_t elem_bytes) {
    if (need <= *cap) return items;
    uint64_t n = *cap ? *cap : 16;
    while (n < need) n = n > UINT64_MAX / 2 ? need : n * 2;
    if (n > SIZE_MAX / elem_bytes) return NULL;
    void *p = realloc(items, (size_t)n * elem_bytes);
    if (p) *cap = n;
    return p;
}

static void put(bytes *b, const void *src, uint64_t n) {
    if (b->failed || n == 0) return;
    uint8_t *p = n > UINT64_MAX - b->len ? NULL : grow(b->p, &b->cap, b->len + n, 1);
    if (!p) {
        b->failed = true;
        return;
    }
    b->p = p;
    if (src)
        memcpy(b->p + b->len, src, n);
    else
        memset(b->p + b->len, 0, n);
    b->len += n;
}

static void put_le(bytes *b, uint64_t v, unsigned n) {
    uint8_t le[8];
    for (unsigned i = 0; i < n; i++) le[i] = (uint8_t)(v >> (8 * i));
    put(b, le, n);
}

static void put_str(bytes *b, const void *s, uint64_t len) {
    put_le(b, len, 8);
    put(b, s, len);
}

static uint64_t padding(uint64_t pos, uint64_t alignment) {
    return (alignment - pos % alignment) % alignment;
}

hr_status hr_gguf_writer_new(hr_gguf_writer **out, hr_error *err) {
    *out = calloc(1, sizeof **out);
    if (!*out) return hr_fail(err, HR_ERR_NOMEM, "gguf writer: out of memory");
    return HR_OK;
}

void hr_gguf_writer_free(hr_gguf_writer *w) {
    if (!w) return;
    for (uint64_t i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].enc.p);
    }
    for (uint64_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->kvs);
    free(w->tensors);
    free(w);
}

static wkv *find_kv(hr_gguf_writer *w, const char *key, uint64_t key_len) {
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (w->kvs[i].key_len == key_len && memcmp(w->kvs[i].key, key, key_len) == 0)
            return &w->kvs[i];
    return NULL;
}

/* Stores an encoded value under key (taking enc), replacing any earlier value in place so
 * keys keep the order in which they were first set. */
static hr_status set_encoded(hr_gguf_writer *w, const char *key, uint64_t key_len,
                             hr_gguf_type type, uint64_t scalar, bytes *enc, hr_error *err) {
    if (enc->failed) {
        free(enc->p);
        return hr_fail(err, HR_ERR_NOMEM, "gguf writer: out of memory encoding key '%.*s'",
                       (int)(key_len < 200 ? key_len : 200), key);
    }
    wkv *kv = find_kv(w, key, key_len);
    if (!kv) {
        wkv *kvs = grow(w->kvs, &w->cap_kv, w->n_kv + 1, sizeof *w->kvs);
        char *copy = kvs ? malloc(key_len + 1) : NULL;
        if (!copy) {
            if (kvs) w->kvs = kvs;
            free(enc->p);
            return hr_fail(err, HR_ERR_NOMEM, "gguf writer: out of memory adding a key");
        }
        memcpy(copy, key, key_len);
        copy[key_len] = '\0';
        w->kvs = kvs;
        kv = &w->kvs[w->n_kv++];
        *kv = (wkv){.key = copy, .key_len = key_len};
    }
    free(kv->enc.p);
    kv->type = type;
    kv->scalar = scalar;
    kv->enc = *enc;
    return HR_OK;
}

static hr_status check_key(const char *key, hr_error *err) {
    if (!key || !*key) return hr_fail(err, HR_ERR_INVALID, "gguf writer: a key must be non-empty");
    return HR_OK;
}

static hr_status set_scalar(hr_gguf_writer *w, const char *key, hr_gguf_type type, uint64_t bits,
                            hr_error *err) {
    hr_status s = check_key(key, err);
    if (s != HR_OK) return s;
    bytes b = {0};
    put_le(&b, type, 4);
    put_le(&b, bits, hr_gguf_type_size(type));
    return set_encoded(w, key, strlen(key), type, bits, &b, err);
}

static uint32_t f32_bits(float v) {
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    return bits;
}

hr_status hr_gguf_writer_set_u32(hr_gguf_writer *w, const char *key, uint32_t v, hr_error *err) {
    return set_scalar(w, key, HR_GGUF_UINT32, v, err);
}

hr_status hr_gguf_writer_set_i32(hr_gguf_writer *w, const char *key, int32_t v, hr_error *err) {
    return set_scalar(w, key, HR_GGUF_INT32, (uint32_t)v, err);
}

hr_status hr_gguf_writer_set_u64(hr_gguf_writer *w, const char *key, uint64_t v, hr_error *err) {
    return set_scalar(w, key, HR_GGUF_UINT64, v, err);
}

hr_status hr_gguf_writer_set_f32(hr_gguf_writer *w, const char *key, float v, hr_error *err) {
    return set_scalar(w, key, HR_GGUF_FLOAT32, f32_bits(v), err);
}

hr_status hr_gguf_writer_set_bool(hr_gguf_writer *w, const char *key, bool v, hr_error *err) {
    return set_scalar(w, key, HR_GGUF_BOOL, v ? 1 : 0, err);
}

hr_status hr_gguf_writer_set_str(hr_gguf_writer *w, const char *key, const char *v, hr_error *err) {
    hr_status s = check_key(key, err);
    if (s != HR_OK) return s;
    if (!v) return hr_fail(err, HR_ERR_INVALID, "gguf writer: key '%s': NULL string", key);
    bytes b = {0};
    put_le(&b, HR_GGUF_STRING, 4);
    put_str(&b, v, strlen(v));
    return set_encoded(w, key, strlen(key), HR_GGUF_STRING, 0, &b, err);
}

static void put_array_head(bytes *b, hr_gguf_type elem_type, uint64_t count) {
    put_le(b, HR_GGUF_ARRAY, 4);
    put_le(b, elem_type, 4);
    put_le(b, count, 8);
}

hr_status hr_gguf_writer_set_arr_str(hr_gguf_writer *w, const char *key, const char *const *strs,
                                     const uint64_t *lens, uint64_t count, hr_error *err) {
    hr_status s = check_key(key, err);
    if (s != HR_OK) return s;
    if (count && (!strs || !lens))
        return hr_fail(err, HR_ERR_INVALID, "gguf writer: key '%s': no strings given", key);
    for (uint64_t i = 0; i < count; i++)
        if (lens[i] && !strs[i])
            return hr_fail(err, HR_ERR_INVALID,
                           "gguf writer: key '%s': string %" PRIu64 " is NULL with length %" PRIu64,
                           key, i, lens[i]);
    bytes b = {0};
    put_array_head(&b, HR_GGUF_STRING, count);
    for (uint64_t i = 0; i < count; i++) put_str(&b, strs[i], lens[i]);
    return set_encoded(w, key, strlen(key), HR_GGUF_ARRAY, 0, &b, err);
}

/* Arrays of 4-byte scalars (f32, i32), from values in the machine's own representation. */
static hr_status set_arr32(hr_gguf_writer *w, const char *key, hr_gguf_type elem_type,
                           const void *v, uint64_t count, hr_error *err) {
    hr_status s = check_key(key, err);
    if (s != HR_OK) return s;
    if (count && !v)
        return hr_fail(err, HR_ERR_INVALID, "gguf writer: key '%s': no values given", key);
    bytes b = {0};
    put_array_head(&b, elem_type, count);
    for (uint64_t i = 0; i < count; i++) {
        uint32_t bits;
        memcpy(&bits, (const uint8_t *)v + 4 * i, sizeof bits);
        put_le(&b, bits, 4);
    }
    return set_encoded(w, key, strlen(key), HR_GGUF_ARRAY, 0, &b, err);
}

hr_status hr_gguf_writer_set_arr_f32(hr_gguf_writer *w, const char *key, const float *v,
                                     uint64_t count, hr_error *err) {
    return set_arr32(w, key, HR_GGUF_FLOAT32, v, count, err);
}

hr_status hr_gguf_writer_set_arr_i32(hr_gguf_writer *w, const char *key, const int32_t *v,
                                     uint64_t count, hr_error *err) {
    return set_arr32(w, key, HR_GGUF_INT32, v, count, err);
}

/* The bits a scalar value is stored as, truncated to its width by put_le. */
static uint64_t scalar_bits(const hr_gguf_value *v) {
    switch (v->type) {
    case HR_GGUF_INT8:
    case HR_GGUF_INT16:
    case HR_GGUF_INT32:
    case HR_GGUF_INT64:
        return (uint64_t)v->i;
    case HR_GGUF_FLOAT32:
        return f32_bits((float)v->f);
    case HR_GGUF_FLOAT64: {
        uint64_t bits;
        memcpy(&bits, &v->f, sizeof bits);
        return bits;
    }
    case HR_GGUF_BOOL:
        return v->u != 0;
    default:
        return v->u;
    }
}

/* Appends v's payload (everything after its type tag). Parsed values are already
 * well-formed; the checks guard against hand-built ones. */
static hr_status put_payload(bytes *b, const hr_gguf_value *v, unsigned depth, const char *key,
                             hr_error *err) {
    unsigned n = hr_gguf_type_size(v->type);
    if (n) {
        put_le(b, scalar_bits(v), n);
        return HR_OK;
    }
    if (v->type == HR_GGUF_STRING) {
        if (v->str.len && !v->str.ptr)
            return hr_fail(err, HR_ERR_INVALID, "gguf writer: key '%s': NULL string", key);
        put_str(b, v->str.ptr, v->str.len);
        return HR_OK;
    }
    if (v->type != HR_GGUF_ARRAY || (unsigned)v->arr.elem_type > HR_GGUF_FLOAT64)
        return hr_fail(err, HR_ERR_INVALID,
                       "gguf writer: key '%s': value type %d is not a GGUF type", key,
                       (int)v->type);
    if (depth >= HR_GGUF_MAX_ARRAY_DEPTH)
        return hr_fail(err, HR_ERR_INVALID,
                       "gguf writer: key '%s': arrays nested more than %d deep", key,
                       HR_GGUF_MAX_ARRAY_DEPTH);
    hr_gguf_type elem_type = v->arr.elem_type;
    uint64_t count = v->arr.count;
    put_le(b, elem_type, 4);
    put_le(b, count, 8);
    unsigned elem_bytes = hr_gguf_type_size(elem_type);
    if (elem_bytes) {
        if (count > UINT64_MAX / elem_bytes || (count && !v->arr.raw))
            return hr_fail(err, HR_ERR_INVALID, "gguf writer: key '%s': bad scalar array", key);
        put(b, v->arr.raw, count * elem_bytes);
        return HR_OK;
    }
    if (count && !v->arr.items)
        return hr_fail(err, HR_ERR_INVALID, "gguf writer: key '%s': array has no items", key);
    for (uint64_t i = 0; i < count; i++) {
        if (v->arr.items[i].type != elem_type)
            return hr_fail(err, HR_ERR_INVALID,
                           "gguf writer: key '%s': element %" PRIu64 " is %s in an array of %s",
                           key, i, hr_gguf_type_name(v->arr.items[i].type),
                           hr_gguf_type_name(elem_type));
        hr_status s = put_payload(b, &v->arr.items[i], depth + 1, key, err);
        if (s != HR_OK) return s;
    }
    return HR_OK;
}

hr_status hr_gguf_writer_copy_kv(hr_gguf_writer *w, const hr_gguf_kv *kv, hr_error *err) {
    if (!kv->key.len || !kv->key.ptr)
        return hr_fail(err, HR_ERR_INVALID, "gguf writer: a key must be non-empty");
    char key[128];
    snprintf(key, sizeof key, "%.*s", (int)(kv->key.len < 100 ? kv->key.len : 100), kv->key.ptr);
    bytes b = {0};
    put_le(&b, kv->value.type, 4);
    hr_status s = put_payload(&b, &kv->value, 0, key, err);
    if (s != HR_OK) {
        free(b.p);
        return s;
    }
    uint64_t scalar = hr_gguf_type_size(kv->value.type) ? scalar_bits(&kv->value) : 0;
    return set_encoded(w, kv->key.ptr, kv->key.len, kv->value.type, scalar, &b, err);
}

hr_status hr_gguf_writer_add_tensor(hr_gguf_writer *w, const char *name, uint32_t type,
                                    uint32_t n_dims, const uint64_t *ne, const void *data,
                                    uint64_t size_bytes, hr_error *err) {
    if (!name || !*name)
        return hr_fail(err, HR_ERR_INVALID, "gguf writer: a tensor name must be non-empty");
    for (uint64_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return hr_fail(err, HR_ERR_INVALID, "gguf writer: tensor '%s' added twice", name);
    uint64_t expect;
    hr_status s = hr_gguf_tensor_nbytes(type, n_dims, ne, &expect, err);
    if (s != HR_OK) {
        if (err) hr_fail_wrap(err, "gguf writer: tensor '%s'", name);
        return s;
    }
    if (size_bytes != expect)
        return hr_fail(err, HR_ERR_INVALID,
                       "gguf writer: tensor '%s' has %" PRIu64 " bytes of data, but its %s shape "
                       "needs %" PRIu64,
                       name, size_bytes, hr_type_name(type), expect);
    if (!data) return hr_fail(err, HR_ERR_INVALID, "gguf writer: tensor '%s' has no data", name);
    wtensor *tensors = grow(w->tensors, &w->cap_tensors, w->n_tensors + 1, sizeof *w->tensors);
    char *copy = tensors ? strdup(name) : NULL;
    if (tensors) w->tensors = tensors;
    if (!copy) return hr_fail(err, HR_ERR_NOMEM, "gguf writer: out of memory adding a tensor");
    wtensor *t = &w->tensors[w->n_tensors++];
    *t = (wtensor){
        .name = copy, .n_dims = n_dims, .type = type, .data = data, .size_bytes = size_bytes};
    for (uint32_t d = 0; d < HR_GGUF_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    return HR_OK;
}

/* Readers refuse a general.alignment that is not a u32 power of two, so the writer does
 * too rather than produce a file nobody can open. */
static hr_status writer_alignment(hr_gguf_writer *w, uint64_t *out, hr_error *err) {
    *out = DEFAULT_ALIGNMENT;
    const char *key = "general.alignment";
    const wkv *kv = find_kv(w, key, strlen(key));
    if (!kv) return HR_OK;
    if (kv->type != HR_GGUF_UINT32)
        return hr_fail(err, HR_ERR_INVALID, "gguf writer: general.alignment is %s; it must be u32",
                       hr_gguf_type_name(kv->type));
    if (kv->scalar == 0 || (kv->scalar & (kv->scalar - 1)) != 0)
        return hr_fail(err, HR_ERR_INVALID,
                       "gguf writer: general.alignment %" PRIu64 " is not a nonzero power of two",
                       kv->scalar);
    *out = kv->scalar;
    return HR_OK;
}

/* Everything before the tensor data, padded to the alignment. */
static hr_status build_head(hr_gguf_writer *w, uint64_t alignment, bytes *b, hr_error *err) {
    put(b, "GGUF", 4);
    put_le(b, GGUF_VERSION, 4);
    put_le(b, w->n_tensors, 8);
    put_le(b, w->n_kv, 8);
    for (uint64_t i = 0; i < w->n_kv; i++) {
        put_str(b, w->kvs[i].key, w->kvs[i].key_len);
        put(b, w->kvs[i].enc.p, w->kvs[i].enc.len);
    }
    uint64_t offset = 0;
    for (uint64_t i = 0; i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        put_str(b, t->name, strlen(t->name));
        put_le(b, t->n_dims, 4);
        for (uint32_t d = 0; d < t->n_dims; d++) put_le(b, t->ne[d], 8);
        put_le(b, t->type, 4);
        put_le(b, offset, 8);
        uint64_t step = t->size_bytes + padding(t->size_bytes, alignment);
        if (step < t->size_bytes || step > UINT64_MAX - offset)
            return hr_fail(err, HR_ERR_INVALID, "gguf writer: tensor data exceeds 2^64 bytes");
        offset += step;
    }
    put(b, NULL, padding(b->len, alignment));
    if (b->failed)
        return hr_fail(err, HR_ERR_NOMEM, "gguf writer: out of memory building the header");
    return HR_OK;
}

/* fwrite with a sticky failure and its errno, so a sequence of writes needs one check. */
typedef struct {
    FILE *f;
    int errnum;
} sink;

static void sink_write(sink *o, const void *p, uint64_t n) {
    if (o->errnum || n == 0) return;
    errno = 0;
    if (fwrite(p, 1, n, o->f) != n) o->errnum = errno ? errno : EIO;
}

static void sink_zeros(sink *o, uint64_t n) {
    static const uint8_t zeros[4096];
    while (n && !o->errnum) {
        uint64_t chunk = n < sizeof zeros ? n : sizeof zeros;
        sink_write(o, zeros, chunk);
        n -= chunk;
    }
}

hr_status hr_gguf_writer_write(hr_gguf_writer *w, const char *path, hr_error *err) {
    uint64_t alignment;
    hr_status s = writer_alignment(w, &alignment, err);
    if (s != HR_OK) return s;
    bytes head = {0};
    s = build_head(w, alignment, &head, err);
    if (s != HR_OK) {
        free(head.p);
        return s;
    }
    char target[1024], tmp[1100];
    if (hr_file_output_path(path, target, sizeof target, err) != HR_OK) {
        free(head.p);
        return err->status;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", target, (int)getpid());
    sink o = {.f = fopen(tmp, "wb")};
    if (!o.f) {
        int e = errno;
        free(head.p);
        return hr_fail(err, HR_ERR_IO, "gguf writer: cannot create '%s': %s", tmp, strerror(e));
    }
    sink_write(&o, head.p, head.len);
    free(head.p);
    for (uint64_t i = 0; i < w->n_tensors; i++) {
        sink_write(&o, w->tensors[i].data, w->tensors[i].size_bytes);
        sink_zeros(&o, padding(w->tensors[i].size_bytes, alignment));
    }
    if (fclose(o.f) != 0 && !o.errnum) o.errnum = errno ? errno : EIO;
    if (o.errnum) {
        unlink(tmp);
        return hr_fail(err, HR_ERR_IO, "gguf writer: cannot write '%s': %s", path,
                       strerror(o.errnum));
    }
    if (rename(tmp, target) != 0) {
        int e = errno;
        unlink(tmp);
        return hr_fail(err, HR_ERR_IO, "gguf writer: cannot rename '%s' to '%s': %s", tmp, target,
                       strerror(e));
    }
    return HR_OK;
}
