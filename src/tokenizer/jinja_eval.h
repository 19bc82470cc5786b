/* tokenizer/jinja_eval — runs a parsed chat template: statements, expressions, Jinja2's
 * scoping (a for-loop iteration, macro call, with block or set block is a new scope;
 * if is not), macros, loop objects, break/continue, and output.
 *
 * Owns: everything a render creates; all of it is released before returning, including
 * reference cycles through namespaces.
 * Must not: modify the template (renders of one template may run concurrently), or run
 * unbounded: steps, created text and elements, macro recursion and C stack use are all
 * capped by hr_jinja_limits. Errors name the template line and the construct. */
#ifndef HR_TOKENIZER_JINJA_EVAL_H
#define HR_TOKENIZER_JINJA_EVAL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "base/error.h"
#include "tokenizer/jinja_parse.h"

typedef struct {
    size_t max_output_bytes; /* the rendered text, and any one string, at most this long */
    uint64_t max_work_bytes; /* total bytes of text created while rendering */
    uint64_t max_items;      /* total list and dict elements created */
    uint64_t max_steps;      /* expressions evaluated, loop iterations, outputs */
    int max_call_depth;      /* nested macro calls */
    size_t max_stack_bytes;  /* C stack the interpreter may use below the render call; keep it
                              * well under the stack of the thread that renders */
    time_t now;              /* the time strftime_now() reports */
} hr_jinja_limits;

/* Limits that no real chat template comes near; now is the current time. */
hr_jinja_limits hr_jinja_limits_default(void);

/* Renders t with the members of vars (a JSON object) as template variables. On success
 * *out is a malloc'd NUL-terminated string of *out_len bytes. */
hr_status hr_jinja_render(const hr_jtemplate *t, const json_t *vars, const hr_jinja_limits *limits, char **out,
                          size_t *out_len, hr_error *err);

#endif
