/* tests/unit/test — a small self-registering test harness.
 *
 * Each test file defines tests with HR_TEST(name) { ... }; they register themselves
 * before main runs. Checks record the first failure and return from the test.
 * The runner prints one line per test and ends with "N passed, N failed".
 * Must not: hide a skipped test. A test that needs ../shared assets calls
 * hr_test_asset(), which prints "skipped: no assets" (and fails under CI). */
#ifndef HR_TEST_H
#define HR_TEST_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

typedef struct hr_test_ctx {
    const char *name;
    bool failed;
    bool skipped;
    char msg[1024];
} hr_test_ctx;

typedef void (*hr_test_fn)(hr_test_ctx *t);
void hr_test_register(const char *name, hr_test_fn fn);
void hr_test_failf(hr_test_ctx *t, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Path of a file under $HEADROOM_ASSETS (default ../shared), or NULL after marking
 * the test skipped when the assets are absent. The buffer is static per call site. */
const char *hr_test_asset(hr_test_ctx *t, const char *relative_path);
/* A scratch directory unique to this run (created on first use). */
const char *hr_test_tmpdir(void);

#define HR_TEST(fn)                                                          \
    static void fn(hr_test_ctx *t);                                          \
    __attribute__((constructor)) static void fn##_register(void) {           \
        hr_test_register(#fn, fn);                                           \
    }                                                                        \
    static void fn(hr_test_ctx *t)

#define HR_CHECK(cond)                                                       \
    do {                                                                     \
        if (!(cond)) {                                                       \
            hr_test_failf(t, __FILE__, __LINE__, "check failed: %s", #cond); \
            return;                                                          \
        }                                                                    \
    } while (0)

#define HR_CHECKF(cond, ...)                                                 \
    do {                                                                     \
        if (!(cond)) {                                                       \
            hr_test_failf(t, __FILE__, __LINE__, __VA_ARGS__);               \
            return;                                                          \
        }                                                                    \
    } while (0)

#define HR_CHECK_EQ_INT(a, b)                                                \
    do {                                                                     \
        long long hr_a_ = (long long)(a), hr_b_ = (long long)(b);            \
        if (hr_a_ != hr_b_) {                                                \
            hr_test_failf(t, __FILE__, __LINE__, "%s == %lld, expected %s == %lld", \
                          #a, hr_a_, #b, hr_b_);                             \
            return;                                                          \
        }                                                                    \
    } while (0)

/* Checks an hr_status call returned HR_OK, reporting the error message otherwise. */
#define HR_CHECK_OK(call, errp)                                              \
    do {                                                                     \
        hr_status hr_s_ = (call);                                            \
        if (hr_s_ != HR_OK) {                                                \
            hr_test_failf(t, __FILE__, __LINE__, "%s failed: %s", #call, (errp)->msg); \
            return;                                                          \
        }                                                                    \
    } while (0)

#define HR_ASSET(var, rel)                                                   \
    const char *var = hr_test_asset(t, rel);                                 \
    if (!var) return

#endif
