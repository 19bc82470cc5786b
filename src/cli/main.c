/* headroom — the command-line entry point: dispatches to one subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

#define HR_VERSION "0.1.0"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
    {"run", hr_cmd_run, "generate text from a model (GGUF or llama2.c .bin)"},
    {"serve", hr_cmd_serve, "OpenAI-compatible server with token-budget guardrails"},
    {"bench-model", hr_cmd_bench_model, "prefill and decode speed of a model, next to the memory bandwidth"},
    {"count", hr_cmd_count, "count the tokens of a text or a chat with a model's tokenizer"},
    {"template", hr_cmd_template, "render a conversation through a chat template"},
    {"convert", hr_cmd_convert, "convert a llama2.c checkpoint and tokenizer to GGUF"},
    {"synth", hr_cmd_synth, "write a model of a given shape with seeded random weights"},
    {"doctor", hr_cmd_doctor, "every layer that caps the sequence length, which one binds, and the memory math"},
    {"plan", hr_cmd_plan, "capacity table for a GGUF, a config.json or a preset, without loading weights"},
    {"probe", hr_cmd_probe, "find the real length cap of any OpenAI-compatible server"},
    {"bench", hr_cmd_bench, "load-test an OpenAI-compatible server with mixed lengths and overflows"},
};

static void usage(FILE *out) {
    fprintf(out, "headroom %s — an LLM inference engine that never overflows its KV cache\n\n"
                 "usage: headroom COMMAND [options]   (headroom COMMAND --help for details)\n\ncommands:\n",
            HR_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("headroom %s\n", HR_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "headroom: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
