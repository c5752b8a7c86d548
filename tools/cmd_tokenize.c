/* `vkllm tokenize -m FILE -p TEXT [--no-bos]`: prints the token ids of TEXT on one line, like
 * llama-tokenize. Works on vocabulary-only GGUF files: no device is opened. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/args.h"
#include "tools/cli.h"
#include "vkllm.h"

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *file = NULL;
    int no_bos = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if ((r = arg_value(argc, argv, &i, "-m", "--model", &v))) { if (r < 0) return 2; model = v; }
        else if ((r = arg_value(argc, argv, &i, "-p", "--prompt", &v))) { if (r < 0) return 2; prompt = v; }
        else if ((r = arg_value(argc, argv, &i, "-f", "--file", &v))) { if (r < 0) return 2; file = v; }
        else if (!strcmp(argv[i], "--no-bos")) no_bos = 1;
        else {
            fprintf(stderr, "vkllm tokenize: unknown option %s\n"
                            "usage: vkllm tokenize -m FILE (-p TEXT | -f FILE) [--no-bos]\n", argv[i]);
            return 2;
        }
    }
    if (!model || (!prompt && !file)) {
        fprintf(stderr, "usage: vkllm tokenize -m FILE (-p TEXT | -f FILE) [--no-bos]\n");
        return 2;
    }
    char *text = NULL;
    size_t len;
    if (file) {
        text = read_text_file(file, &len);
        if (!text) return 1;
    } else {
        len = strlen(prompt);
    }
    const char *t = text ? text : prompt;
    vkllm_vocab *v = NULL;
    int rc = 1;
    int32_t *ids = NULL;
    if (vkllm_vocab_load(model, &v)) {
        fprintf(stderr, "vkllm: %s\n", vkllm_last_error());
        goto done;
    }
    int add_bos = no_bos ? 0 : vkllm_vocab_add_bos(v);
    size_t need = 0, n = 0;
    vkllm_vocab_tokenize(v, t, len, add_bos, NULL, 0, &need);
    ids = malloc((need ? need : 1) * sizeof *ids);
    if (!ids || vkllm_vocab_tokenize(v, t, len, add_bos, ids, need, &n)) {
        fprintf(stderr, "vkllm: %s\n", ids ? vkllm_last_error() : "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) printf("%s%d", i ? " " : "", ids[i]);
    printf("\n");
    rc = 0;
done:
    free(ids);
    free(text);
    vkllm_vocab_free(v);
    return rc;
}
