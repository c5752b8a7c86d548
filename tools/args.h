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
/* Reads a whole file; NULL with a message on stderr on failure. */
char *read_text_file(const char *path, size_t *len);

#endif
