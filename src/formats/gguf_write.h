/* formats/gguf_write — builds a GGUF (version 3) file: metadata, tensor infos, and
 * aligned tensor data.
 *
 * Owns: copies of every key and metadata value given to it. Tensor data is referenced,
 * not copied: the caller keeps it alive until hr_gguf_writer_write returns.
 * Must not: know about models or tokenizers; callers choose keys and names. */
#ifndef HR_FORMATS_GGUF_WRITE_H
#define HR_FORMATS_GGUF_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "formats/gguf.h"

typedef struct hr_gguf_writer hr_gguf_writer;

hr_status hr_gguf_writer_new(hr_gguf_writer **out, hr_error *err);
void hr_gguf_writer_free(hr_gguf_writer *w);

/* Setting a key twice replaces its value; keys keep the order of first setting. */
hr_status hr_gguf_writer_set_u32(hr_gguf_writer *w, const char *key, uint32_t v, hr_error *err);
hr_status hr_gguf_writer_set_i32(hr_gguf_writer *w, const char *key, int32_t v, hr_error *err);
hr_status hr_gguf_writer_set_u64(hr_gguf_writer *w, const char *key, uint64_t v, hr_error *err);
hr_status hr_gguf_writer_set_f32(hr_gguf_writer *w, const char *key, float v, hr_error *err);
hr_status hr_gguf_writer_set_bool(hr_gguf_writer *w, const char *key, bool v, hr_error *err);
hr_status hr_gguf_writer_set_str(hr_gguf_writer *w, const char *key, const char *v, hr_error *err);
/* Arrays: strs[i] has lens[i] bytes (may contain NUL). */
hr_status hr_gguf_writer_set_arr_str(hr_gguf_writer *w, const char *key, const char *const *strs,
                                     const uint64_t *lens, uint64_t count, hr_error *err);
hr_status hr_gguf_writer_set_arr_f32(hr_gguf_writer *w, const char *key, const float *v,
                                     uint64_t count, hr_error *err);
hr_status hr_gguf_writer_set_arr_i32(hr_gguf_writer *w, const char *key, const int32_t *v,
                                     uint64_t count, hr_error *err);
/* Copies a key/value (of any type, nested arrays included) from a parsed file. */
hr_status hr_gguf_writer_copy_kv(hr_gguf_writer *w, const hr_gguf_kv *kv, hr_error *err);

/* ne[0] is the fastest dimension. size_bytes must equal the type's row bytes for ne[0]
 * times the other dimensions. */
hr_status hr_gguf_writer_add_tensor(hr_gguf_writer *w, const char *name, uint32_t type,
                                    uint32_t n_dims, const uint64_t *ne, const void *data,
                                    uint64_t size_bytes, hr_error *err);

/* Writes the file (temporary name, then rename). Alignment is general.alignment when
 * set as a u32, else 32. */
hr_status hr_gguf_writer_write(hr_gguf_writer *w, const char *path, hr_error *err);

#endif
