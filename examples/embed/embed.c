/* embed.c: stream a greedy continuation of a prompt with vkllm, on the default device.
 * Usage: embed MODEL.gguf [PROMPT] */
#include <stdio.h>
#include <vkllm.h>

static int on_text(const char *text, size_t len, int32_t token, void *user) {
    (void)token, (void)user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0; /* nonzero stops the generation */
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s MODEL.gguf [PROMPT]\n", argv[0]); return 2; }
    vkllm_model_params mp;          /* every params struct starts from its _init */
    vkllm_model_params_init(&mp);   /* n_devices 0: the default device */
    vkllm_context_params cp;
    vkllm_context_params_init(&cp);
    vkllm_generate_params gp;
    vkllm_generate_params_init(&gp);
    gp.prompt = argc > 2 ? argv[2] : "Once upon a time";
    gp.n_predict = 64;
    gp.sampling.temp = 0;           /* greedy */
    gp.on_text = on_text;

    vkllm_model *model = NULL;
    vkllm_context *ctx = NULL;
    int ok = vkllm_model_load(argv[1], &mp, &model) == VKLLM_OK &&
             vkllm_context_create(model, &cp, &ctx) == VKLLM_OK &&
             vkllm_generate(ctx, &gp, NULL) == VKLLM_OK;
    if (ok) putchar('\n');
    else fprintf(stderr, "vkllm: %s\n", vkllm_last_error());
    vkllm_context_free(ctx);
    vkllm_model_free(model);
    return ok ? 0 : 1;
}
