/* Small helpers shared by the CLI subcommands: option parsing and reading prompt files. */
#ifndef VKLLM_CLI_ARGS_H
#define VKLLM_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>

/* If argv[*i] equals name (or alt), stores the next argument in *value, advances *i and
 * returns 1; prints an error and returns -1 when the value is missing; 0 otherwise. */
int arg_value(int argc, char **argv, int *i, const char *name, const char *alt, const char **value);
int parse_int(const char *opt, const char *s, long long lo, long long hi, long long *out);
int parse_float(const char *opt, const char *s, double *out);
/* A byte count with an optional K/M/G/T suffix (binary units; "512M", "1.5G", "24GiB"). */
int parse_size(const char *opt, const char *s, uint64_t *out);

/* Splits "a,b,c" and hands each item to fn (which prints its own error and returns 0 to
 * stop); counts items into *n, at most VKLLM_MAX_DEVICES. Returns 1 on success. */
int each_item(const char *opt, const char *s, uint32_t *n,
              int (*fn)(const char *opt, const char *item, uint32_t i, void *user), void *user);

struct vkllm_model_params;
/* The placement options every command that loads or plans a model takes: --device LIST,
 * --device-mem LIST, --host-mem SIZE, --tensor-split LIST, --gpu-layers/-ngl N,
 * --main-device/-mg I. Returns 1 when argv[*i] was one (and advances *i), 0 when not, -1
 * after printing an error. */
int placement_option(int argc, char **argv, int *i, struct vkllm_model_params *mp);
/* After the options: no --device given, the list in $VKLLM_DEVICE (as --device takes it).
 * Returns 0 after printing an error. */
int placement_finish(struct vkllm_model_params *mp);
/* The lines of usage text describing placement_option's flags. */
extern const char placement_usage[];

/* Reads a whole file; NULL with a message on stderr on failure. */
char *read_text_file(const char *path, size_t *len);

#endif
