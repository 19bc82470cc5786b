/* model/export — writes llama-family weights into a GGUF writer under GGUF's llama
 * tensor names, converting f32 sources to the chosen storage type.
 *
 * Owns: the converted buffers (and sources handed over with take_src) until
 * hr_export_free, which must come after hr_gguf_writer_write.
 * Must not: decide which type each tensor gets; callers (convert, synth) do. */
#ifndef HR_MODEL_EXPORT_H
#define HR_MODEL_EXPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "formats/gguf_write.h"
#include "model/model.h"

typedef struct {
    void **buffers;
    size_t count, cap;
} hr_export;

/* Adds tensor name of rows x cols f32 values at src, stored as type. With take_src,
 * src was malloc'd by the caller and now belongs to x. */
hr_status hr_export_tensor(hr_export *x, hr_gguf_writer *w, const char *name, const float *src, int64_t cols,
                           int64_t rows, uint32_t type, bool take_src, hr_error *err);
void hr_export_free(hr_export *x);

/* Writes a loaded model as a GGUF llama file: hyper-parameters, general.name, the
 * vocabulary, and every weight with matrices stored as type (norms stay f32). A tied
 * classifier is written once, as token_embd. */
hr_status hr_model_write_gguf(hr_model *m, uint32_t type, const char *name, const char *out_path, hr_error *err);

#endif
