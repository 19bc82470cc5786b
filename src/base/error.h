/* base/error — the status codes and the human-readable error every fallible
 * function in headroom reports through.
 *
 * Owns: hr_status, hr_error and the helpers that fill an error.
 * Must not: allocate, print, or exit. Callers decide what to do with a failure. */
#ifndef HR_BASE_ERROR_H
#define HR_BASE_ERROR_H

#include <stddef.h>

typedef enum {
    HR_OK = 0,
    HR_ERR_INVALID,     /* a caller passed a value that makes no sense */
    HR_ERR_IO,          /* the operating system refused a read, write, open or map */
    HR_ERR_FORMAT,      /* a file or payload is malformed */
    HR_ERR_UNSUPPORTED, /* well-formed, but headroom does not handle it (yet) */
    HR_ERR_NOMEM,       /* an allocation failed or a size would overflow */
    HR_ERR_RANGE,       /* a number is outside what the model or config allows */
    HR_ERR_NOT_FOUND,   /* a key, tensor, token or file does not exist */
} hr_status;

/* One sentence a person can act on, e.g.
 * "gguf: tensor 'blk.0.attn_q.weight' at byte 1234: data runs past the end of the file". */
typedef struct {
    hr_status status;
    char msg[512];
} hr_error;

/* Fills err (when not NULL) with a printf-style message and returns status, so a
 * failure can be reported and propagated in one statement:
 *     return hr_fail(err, HR_ERR_FORMAT, "gguf: bad magic at byte 0"); */
hr_status hr_fail(hr_error *err, hr_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes an already-filled error with more context ("loading model.gguf: ..."). */
hr_status hr_fail_wrap(hr_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

const char *hr_status_name(hr_status status);

#endif
