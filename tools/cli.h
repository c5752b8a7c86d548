/* Subcommands of the vkllm CLI; each takes argv starting at its own name. */
#ifndef VKLLM_CLI_H
#define VKLLM_CLI_H

int cmd_devices(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_tune(int argc, char **argv);

/* From tools/cmd_bench.c, shared with `vkllm run --profile`: the per-op profile of ctx as a
 * table on stderr and, when `into` is non-NULL, as fields of that object; writing a JSON file. */
struct vkllm_context;
struct cJSON;
int bench_profile_report(const struct vkllm_context *ctx, const char *title, double tokens, double stream_gbps,
                         struct cJSON *into);
int bench_write_json(const char *path, const struct cJSON *root);

#endif
