/* Subcommands of the vkllm CLI; each takes argv starting at its own name. */
#ifndef VKLLM_CLI_H
#define VKLLM_CLI_H

int cmd_devices(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_bench(int argc, char **argv);

#endif
