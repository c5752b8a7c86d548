/* Subcommands of the vkllm CLI; each takes argv starting at its own name. */
#ifndef VKLLM_CLI_H
#define VKLLM_CLI_H

int cmd_devices(int argc, char **argv);

#endif
