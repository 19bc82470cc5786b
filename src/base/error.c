#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

hr_status hr_fail(hr_error *err, hr_status status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

hr_status hr_fail_wrap(hr_error *err, const char *fmt, ...) {
    if (!err) return HR_ERR_INVALID;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    /* A long chain of context may not fit; the end of the sentence is what gets cut. */
    if (snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old) >= (int)sizeof err->msg)
        memcpy(err->msg + sizeof err->msg - 4, "...", 4);
    return err->status;
}

const char *hr_status_name(hr_status status) {
    switch (status) {
    case HR_OK: return "ok";
    case HR_ERR_INVALID: return "invalid argument";
    case HR_ERR_IO: return "i/o error";
    case HR_ERR_FORMAT: return "malformed input";
    case HR_ERR_UNSUPPORTED: return "unsupported";
    case HR_ERR_NOMEM: return "out of memory";
    case HR_ERR_RANGE: return "out of range";
    case HR_ERR_NOT_FOUND: return "not found";
    }
    return "unknown error";
}
