/* formats/gguf — reads GGUF files (versions 2 and 3) in place from a memory map.
 *
 * Owns: the parsed index of a GGUF file (metadata key/values, tensor infos) and the
 * mapping itself when opened by path. Strings and tensor data point into the map.
 * Every length, offset, count and dimension product is validated before use; a bad
 * file is refused with an error naming the field and its byte offset.
 * Must not: interpret metadata (model/ and tokenizer/ do), or copy tensor data. */
#ifndef HR_FORMATS_GGUF_H
#define HR_FORMATS_GGUF_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "base/file.h"

typedef enum {
    HR_GGUF_UINT8 = 0,
    HR_GGUF_INT8 = 1,
    HR_GGUF_UINT16 = 2,
    HR_GGUF_INT16 = 3,
    HR_GGUF_UINT32 = 4,
    HR_GGUF_INT32 = 5,
    HR_GGUF_FLOAT32 = 6,
    HR_GGUF_BOOL = 7,
    HR_GGUF_STRING = 8,
    HR_GGUF_ARRAY = 9,
    HR_GGUF_UINT64 = 10,
    HR_GGUF_INT64 = 11,
    HR_GGUF_FLOAT64 = 12,
} hr_gguf_type;

enum {
    HR_GGUF_MAX_DIMS = 4,
    /* Arrays of arrays deeper than this are refused: no real file nests more than two
     * levels, and a bound keeps parsing and copying from recursing without limit. */
    HR_GGUF_MAX_ARRAY_DEPTH = 8,
};

/* A string inside the file: not NUL-terminated, may contain any bytes. */
typedef struct {
    const char *ptr;
    uint64_t len;
} hr_gguf_str;

typedef struct hr_gguf_value hr_gguf_value;
struct hr_gguf_value {
    hr_gguf_type type;
    union {
        uint64_t u;     /* UINT8, UINT16, UINT32, UINT64, BOOL (0/1) */
        int64_t i;      /* INT8, INT16, INT32, INT64 */
        double f;       /* FLOAT32, FLOAT64 */
        hr_gguf_str str; /* STRING */
        struct {
            hr_gguf_type elem_type;
            uint64_t count;
            /* Scalar elements: the packed little-endian values as stored (possibly
             * unaligned); read them with hr_gguf_arr_* below. */
            const uint8_t *raw;
            /* STRING and ARRAY elements: parsed values, owned by the hr_gguf. */
            hr_gguf_value *items;
        } arr;
    };
};

typedef struct {
    hr_gguf_str key;
    hr_gguf_value value;
    uint64_t offset; /* byte offset of the key in the file, for error messages */
} hr_gguf_kv;

typedef struct {
    hr_gguf_str name;
    uint32_t n_dims;     /* 1..4 */
    uint64_t ne[HR_GGUF_MAX_DIMS]; /* elements per dimension, ne[0] fastest; unused dims are 1 */
    uint32_t type;       /* hr_type id */
    uint64_t offset;     /* relative to the start of the data section */
    uint64_t size_bytes; /* validated: within the file */
    const uint8_t *data; /* points into the map */
    uint64_t info_offset; /* byte offset of the tensor info in the file, for error messages */
} hr_gguf_tensor;

typedef struct {
    hr_mapped_file file; /* set by hr_gguf_open; empty when parsing a borrowed buffer */
    const uint8_t *base;
    uint64_t size_bytes;
    uint32_t version;
    uint64_t n_kv;
    hr_gguf_kv *kvs;
    uint64_t n_tensors;
    hr_gguf_tensor *tensors;
    uint64_t alignment;   /* general.alignment, default 32 */
    uint64_t data_offset; /* start of the tensor data section; past the end of the file
                             when a file without tensors stops before the padding */
    void *arena_;         /* private: allocations owned by this hr_gguf */
} hr_gguf;

/* Maps and parses the file at path. Release with hr_gguf_close. */
hr_status hr_gguf_open(hr_gguf *g, const char *path, hr_error *err);
/* Parses a buffer the caller keeps alive for the lifetime of g. */
hr_status hr_gguf_parse(hr_gguf *g, const uint8_t *data, uint64_t size_bytes, hr_error *err);
void hr_gguf_close(hr_gguf *g);

const hr_gguf_kv *hr_gguf_find(const hr_gguf *g, const char *key);
const hr_gguf_tensor *hr_gguf_tensor_find(const hr_gguf *g, const char *name);

/* Typed getters. Missing key: HR_ERR_NOT_FOUND with a message naming the key. Wrong
 * type or a value that does not fit: HR_ERR_FORMAT. Integer getters accept any integer
 * type whose value fits. */
hr_status hr_gguf_get_u32(const hr_gguf *g, const char *key, uint32_t *out, hr_error *err);
hr_status hr_gguf_get_u64(const hr_gguf *g, const char *key, uint64_t *out, hr_error *err);
hr_status hr_gguf_get_i64(const hr_gguf *g, const char *key, int64_t *out, hr_error *err);
hr_status hr_gguf_get_f32(const hr_gguf *g, const char *key, float *out, hr_error *err);
hr_status hr_gguf_get_bool(const hr_gguf *g, const char *key, bool *out, hr_error *err);
hr_status hr_gguf_get_str(const hr_gguf *g, const char *key, hr_gguf_str *out, hr_error *err);
/* An array value under key whose elements have elem_type (any, when elem_type < 0). */
hr_status hr_gguf_get_arr(const hr_gguf *g, const char *key, int elem_type,
                          const hr_gguf_value **out, hr_error *err);

/* Element i of a scalar array (caller checked i < count and elem_type). */
float hr_gguf_arr_f32(const hr_gguf_value *arr, uint64_t i);
int64_t hr_gguf_arr_int(const hr_gguf_value *arr, uint64_t i); /* any integer/bool elem type */

/* True when s equals the NUL-terminated c string. */
bool hr_gguf_str_eq(hr_gguf_str s, const char *c);

const char *hr_gguf_type_name(hr_gguf_type t);
/* Bytes one value of a scalar type takes in the file; 0 for STRING, ARRAY and unknown ids. */
unsigned hr_gguf_type_size(hr_gguf_type t);

/* Validates a tensor shape (n_dims 1..4, every ne >= 1, ne[0] a whole number of blocks,
 * no overflow) and computes its data size. The message says what is wrong but not where;
 * callers add the location. Shared by the reader and the writer so both agree. */
hr_status hr_gguf_tensor_nbytes(uint32_t type, uint32_t n_dims, const uint64_t *ne,
                                uint64_t *out_bytes, hr_error *err);

#endif
