/* Built by install_embed.sh against the INSTALLED header and library only: what the header
 * promises about growing parameter structs. A struct from an older header (shorter `size`) is
 * read up to its size and the rest defaulted; size 0 (never initialised) is refused; the
 * version macros agree with the library. Usage: install_abi_check MODEL.gguf */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <vkllm.h>

static int failures;
#define EXPECT(cond)                                                                        \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "install_abi_check:%d: %s (%s)\n", __LINE__, #cond, vkllm_last_error()); \
            failures++;                                                                     \
        }                                                                                   \
    } while (0)

/* Must not be called: it lies beyond the size the caller declares. */
static void beyond(int32_t token, void *user) {
    (void)token, (void)user;
    failures++;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", VKLLM_VERSION_MAJOR, VKLLM_VERSION_MINOR, VKLLM_VERSION_PATCH);
    EXPECT(strcmp(want, vkllm_version()) == 0);
    EXPECT(offsetof(vkllm_model_params, size) == 0 && offsetof(vkllm_context_params, size) == 0 &&
           offsetof(vkllm_generate_params, size) == 0 && offsetof(vkllm_sampling_params, size) == 0);

    vkllm_model *m = NULL;
    vkllm_model_params mp;
    memset(&mp, 0, sizeof mp); /* never initialised */
    EXPECT(vkllm_model_load(argv[1], &mp, &m) == VKLLM_ERR_INVALID_ARG && m == NULL);
    vkllm_model_params_init(&mp);
    EXPECT(mp.size == sizeof mp);
    mp.size = (uint32_t)offsetof(vkllm_model_params, n_threads); /* an older, shorter struct */
    mp.n_threads = 4096;                                           /* not read */
    EXPECT(vkllm_model_load(argv[1], &mp, &m) == VKLLM_OK);
    vkllm_context *c = NULL;
    if (m) EXPECT(vkllm_context_create(m, NULL, &c) == VKLLM_OK);
    if (c) {
        vkllm_generate_params gp;
        vkllm_generate_params_init(&gp);
        gp.n_predict = 4;
        gp.sampling.temp = 0;
        gp.size = offsetof(vkllm_generate_params, on_token);
        gp.on_token = beyond;
        vkllm_timings tm;
        EXPECT(vkllm_generate(c, &gp, &tm) == VKLLM_OK && tm.n_gen > 0);
    }
    vkllm_context_free(c);
    vkllm_model_free(m);
    if (!failures) printf("struct sizes and versions hold\n");
    return failures ? 1 : 0;
}
