/* headroom probe — finds the real length cap of any OpenAI-compatible server with
 * synthetic prompts of known length, and says whether it clamps silently. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/opts.h"
#include "tools/client.h"
#include "tools/probe.h"

static const char PROBE_HELP[] =
    "usage: headroom probe URL [--model NAME] [--api-key KEY] [--max-requests N] [--timeout S] [--json]\n"
    "\n"
    "Finds the real cap of an OpenAI-compatible server (headroom, vLLM, llama.cpp, TGI,\n"
    "Ollama, ...) with the seed's small test: prompts of a word repeated, calibrated against\n"
    "the server's own usage.prompt_tokens; a binary search on the prompt length with\n"
    "max_tokens 1; one request over the cap found, to see whether the server refuses or\n"
    "clamps; and, when it refuses, a binary search on max_tokens for a fixed prompt.\n"
    "Reports the largest prompt + max_tokens accepted, the exact error text at each\n"
    "boundary, and whether the server clamps silently. URL is the server's base URL, with\n"
    "or without /v1. Exits 1 when the search could not finish.\n"
    "\n"
    "options:\n"
    "      --model NAME        model to ask for (default: the first in /v1/models)\n"
    "      --api-key KEY       sent as 'Authorization: Bearer KEY'\n"
    "      --max-requests N    at most N requests (default 40)\n"
    "      --timeout S         at most S seconds in all (default 120)\n"
    "      --json              the result as one JSON object on stdout\n"
    "  -v, --verbose           print each request on stderr\n"
    "  -h, --help              this help\n";

static void log_line(void *ctx, const char *line) {
    (void)ctx;
    fprintf(stderr, "headroom probe: %s\n", line);
}

static void print_boundary(long status, const char *error) {
    printf("%16s HTTP %ld %s\n", "", status, error[0] ? error : "(no error text)");
}

static void print_clamp(const hr_probe_result *r) {
    printf("%-16s %lld-token prompt + max_tokens %lld (%lld tokens): ", "over the cap", (long long)r->clamp_prompt,
           (long long)r->clamp_asked, (long long)(r->clamp_prompt + r->clamp_asked));
    if (r->clamp_first == HR_CLAMP_REFUSED) {
        printf("refused\n");
        print_boundary(r->clamp_status, r->clamp_error);
    } else {
        printf("accepted, %lld tokens generated (finish_reason %s)", (long long)r->clamp_generated,
               r->clamp_finish[0] ? r->clamp_finish : "none");
        if (r->clamp_first == HR_CLAMP_REPORTED)
            printf("; the headroom object reports max_tokens_granted %lld of %lld", (long long)r->clamp_granted,
                   (long long)r->clamp_asked);
        printf("\n");
    }
}

static void print_verdict(const hr_probe_result *r) {
    static const char *const verdict[] = {
        [HR_CLAMP_UNKNOWN] = "unknown: the model stopped on its own before the cap, so clamping cannot be seen",
        [HR_CLAMP_REFUSED] = "no: the server refuses what does not fit",
        [HR_CLAMP_REPORTED] =
            "yes: a plain 200 with fewer tokens than asked (headroom reports it only in its headroom object)",
        [HR_CLAMP_SILENT] = "yes: a plain 200 with fewer tokens than asked, finish_reason length, and nothing says why",
        [HR_CLAMP_FULL] = "no: every token asked for was generated past the prompt cap",
    };
    printf("%-16s %s\n", "silent clamping", verdict[r->clamp]);
}

static void print_report(const hr_probe_session *s, const hr_probe_result *r) {
    printf("headroom probe: %s/v1, model %s", s->ep.root, s->model);
    if (r->advertised) printf(" (it advertises a %lld-token window)", (long long)r->advertised);
    printf("\n%-16s '%s' repeated N times = %lld + %lld x N prompt tokens (from usage.prompt_tokens)\n", "calibration",
           r->calib.unit, (long long)r->calib.overhead, (long long)r->calib.per_unit);
    printf("%-16s max_tokens 1: a %lld-token prompt is accepted", "prompt length", (long long)r->prompt_ok);
    if (r->prompt_refused) {
        printf(", %lld refused\n", (long long)r->prompt_refused);
        print_boundary(r->prompt_status, r->prompt_error);
    } else {
        printf("; none refused\n");
    }
    if (r->prompt_truncated)
        printf("%-16s a %lld-token prompt was accepted but counted as %lld: the server truncates silently\n",
               "truncation", (long long)r->truncated_sent, (long long)r->truncated_counted);
    if (r->clamp_asked) print_clamp(r);
    if (r->max_refused) {
        printf("%-16s %lld-token prompt: max_tokens %lld accepted, %lld refused\n", "max_tokens",
               (long long)r->fixed_prompt, (long long)r->max_ok, (long long)r->max_refused);
        print_boundary(r->max_status, r->max_error);
    }
    char summary[768];
    hr_probe_summary(r, summary, sizeof summary);
    printf("%-16s %s\n", "result", summary);
    if (r->clamp_asked) print_verdict(r);
    if (r->stopped[0]) printf("%-16s %s\n", "stopped early", r->stopped);
    printf("%-16s %d of %d\n", "requests", r->requests, s->max_requests);
}

static int print_json(const hr_probe_session *s, const hr_probe_result *r) {
    json_t *root = json_pack(
        "{s:s, s:s, s:I, s:{s:s, s:I, s:I}, s:{s:I, s:I, s:i, s:s, s:b}, s:{s:s, s:I, s:I, s:I, s:I, s:s, s:s}, "
        "s:{s:I, s:I, s:I, s:s}, s:I, s:b, s:s, s:i}",
        "url", s->ep.root, "model", s->model, "advertised", (json_int_t)r->advertised, "calibration", "unit",
        r->calib.unit, "overhead", (json_int_t)r->calib.overhead, "per_unit", (json_int_t)r->calib.per_unit, "prompt",
        "accepted", (json_int_t)r->prompt_ok, "refused", (json_int_t)r->prompt_refused, "status", (int)r->prompt_status,
        "error", r->prompt_error, "truncated", r->prompt_truncated, "over_the_cap", "verdict",
        hr_clamp_kind_name(r->clamp), "prompt", (json_int_t)r->clamp_prompt, "max_tokens", (json_int_t)r->clamp_asked,
        "generated", (json_int_t)r->clamp_generated, "granted", (json_int_t)r->clamp_granted, "finish_reason",
        r->clamp_finish, "error", r->clamp_error, "max_tokens", "prompt", (json_int_t)r->fixed_prompt, "accepted",
        (json_int_t)r->max_ok, "refused", (json_int_t)r->max_refused, "error", r->max_error, "total_accepted",
        (json_int_t)r->total_ok, "silent_clamping", r->clamp == HR_CLAMP_SILENT || r->clamp == HR_CLAMP_REPORTED,
        "stopped", r->stopped, "requests", r->requests);
    char *text = root ? json_dumps(root, JSON_INDENT(2)) : NULL;
    json_decref(root);
    if (!text) return 1;
    puts(text);
    free(text);
    return 0;
}

int hr_cmd_probe(int argc, char **argv) {
    const char *url = NULL, *model = NULL, *api_key = NULL;
    int64_t max_requests = 40;
    double timeout = 120;
    bool json = false, verbose = false;
    const hr_opt opts[] = {
        {"--model", "-m", HR_OPT_TEXT, &model, 0, 0, NULL},
        {"--api-key", NULL, HR_OPT_TEXT, &api_key, 0, 0, NULL},
        {"--max-requests", NULL, HR_OPT_INT, &max_requests, 4, 1000, NULL},
        {"--timeout", NULL, HR_OPT_FLOAT, &timeout, 0.1, 86400, NULL},
        {"--json", NULL, HR_OPT_FLAG, &json, 0, 0, NULL},
        {"--verbose", "-v", HR_OPT_FLAG, &verbose, 0, 0, NULL},
    };
    int rc = hr_opts_parse("probe", PROBE_HELP, opts, sizeof opts / sizeof opts[0], argc, argv, &url, 1);
    if (rc >= 0) return rc;
    hr_error err = {0};
    hr_probe_session s = {.max_requests = (int)max_requests, .log = verbose ? log_line : NULL};
    if (!url) {
        fprintf(stderr, "headroom probe: no URL given (see headroom probe --help)\n");
        return 2;
    }
    if (hr_endpoint_parse(url, &s.ep, &err) != HR_OK) {
        fprintf(stderr, "headroom probe: %s\n", err.msg);
        return 2;
    }
    if (api_key) snprintf(s.ep.api_key, sizeof s.ep.api_key, "%s", api_key);
    if (hr_http_init(&err) != HR_OK) {
        fprintf(stderr, "headroom probe: %s\n", err.msg);
        return 1;
    }
    s.deadline = hr_now() + timeout;
    hr_probe_result r = {0};
    if (hr_fetch_model(&s.ep, model, timeout, s.model, sizeof s.model, &r.advertised, &err) != HR_OK ||
        hr_probe_run(&s, &r, &err) != HR_OK) {
        fprintf(stderr, "headroom probe: %s\n", err.msg);
        rc = 1;
    } else if (json) {
        rc = print_json(&s, &r);
    } else {
        print_report(&s, &r);
        rc = 0;
    }
    if (rc == 0 && r.stopped[0]) rc = 1;
    hr_http_cleanup();
    return rc;
}
