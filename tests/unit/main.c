/* The unit-test runner: runs every registered test (or those whose name contains
 * argv[1]) and prints "N passed, N failed[, N skipped]". Exit status is non-zero when
 * any test failed. */
#include "test.h"

#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { MAX_TESTS = 4096 };
static struct {
    const char *name;
    hr_test_fn fn;
} tests[MAX_TESTS];
static int test_count;

void hr_test_register(const char *name, hr_test_fn fn) {
    if (test_count < MAX_TESTS) {
        tests[test_count].name = name;
        tests[test_count].fn = fn;
        test_count++;
    }
}

void hr_test_failf(hr_test_ctx *t, const char *file, int line, const char *fmt, ...) {
    if (t->failed) return;
    t->failed = true;
    int n = snprintf(t->msg, sizeof t->msg, "%s:%d: ", file, line);
    if (n < 0 || (size_t)n >= sizeof t->msg) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->msg + n, sizeof t->msg - (size_t)n, fmt, ap);
    va_end(ap);
}

const char *hr_test_asset(hr_test_ctx *t, const char *relative_path) {
    static char bufs[16][2048];
    static int next;
    const char *root = getenv("HEADROOM_ASSETS");
    if (!root || !*root) root = "../shared";
    char *buf = bufs[next++ % 16];
    snprintf(buf, sizeof bufs[0], "%s/%s", root, relative_path);
    if (access(buf, R_OK) == 0) return buf;
    if (getenv("CI")) {
        hr_test_failf(t, __FILE__, __LINE__, "asset '%s' is missing (CI must have ../shared)", buf);
    } else {
        t->skipped = true;
        snprintf(t->msg, sizeof t->msg, "skipped: no assets (%s)", buf);
    }
    return NULL;
}

const char *hr_test_tmpdir(void) {
    static char dir[256];
    if (!dir[0]) {
        const char *base = getenv("TMPDIR");
        if (!base || !*base) base = "/tmp";
        snprintf(dir, sizeof dir, "%s/headroom-test-XXXXXX", base);
        if (!mkdtemp(dir)) snprintf(dir, sizeof dir, "%s", base);
    }
    return dir;
}

int main(int argc, char **argv) {
    const char *filter = argc > 1 ? argv[1] : NULL;
    int passed = 0, failed = 0, skipped = 0;
    for (int i = 0; i < test_count; i++) {
        if (filter && !strstr(tests[i].name, filter)) continue;
        hr_test_ctx ctx = {.name = tests[i].name};
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        tests[i].fn(&ctx);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
        if (ctx.failed) {
            failed++;
            printf("FAIL %s (%.0f ms)\n     %s\n", ctx.name, ms, ctx.msg);
        } else if (ctx.skipped) {
            skipped++;
            printf("SKIP %s — %s\n", ctx.name, ctx.msg);
        } else {
            passed++;
            printf("ok   %s (%.0f ms)\n", ctx.name, ms);
        }
        fflush(stdout);
    }
    if (skipped)
        printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    else
        printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
