/* cli/commands — one entry point per `headroom` subcommand.
 *
 * Each returns the process exit status: 0 on success, 1 on a failure it reported on
 * stderr, 2 on a usage error. Each prints its own --help.
 * Must not: be called from the library; commands sit on top of every layer. */
#ifndef HR_CLI_COMMANDS_H
#define HR_CLI_COMMANDS_H

/* The KV element type of run, serve, doctor and plan unless --kv-type says otherwise:
 * f16, as llama.cpp and GPU runtimes use. Half of f32's bytes, so twice the tokens per
 * byte of pool; stories260K still gives llama2.c's greedy output token for token. */
#define HR_CLI_KV_TYPE "f16"

int hr_cmd_run(int argc, char **argv);
int hr_cmd_convert(int argc, char **argv);
int hr_cmd_synth(int argc, char **argv);
int hr_cmd_serve(int argc, char **argv);
int hr_cmd_bench_model(int argc, char **argv);
int hr_cmd_template(int argc, char **argv);
int hr_cmd_count(int argc, char **argv);
int hr_cmd_doctor(int argc, char **argv);
int hr_cmd_plan(int argc, char **argv);
int hr_cmd_probe(int argc, char **argv);
int hr_cmd_bench(int argc, char **argv);

#endif
