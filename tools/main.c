/* vkllm: the command-line front end. Dispatches to subcommands; everything it does goes
 * through the public API in include/vkllm.h. */
#include <stdio.h>
#include <string.h>

#include "tools/cli.h"
#include "vkllm.h"


static void usage(FILE *f) {
    fprintf(f,
            "usage: vkllm <command> [options]\n"
            "\n"
            "commands:\n"
            "  devices [--json]     list Vulkan devices and their capabilities\n"
            "  run -m FILE -p TEXT  generate text (vkllm run --help for options)\n"
            "  tokenize -m FILE -p TEXT [--no-bos]   print token ids\n"
            "  bench -m FILE [-p 512] [-n 128] [-r 5] llama-bench style throughput\n"
            "  plan -m FILE [--device 0,1 --device-mem 24G,24G ...] [--json]\n"
            "                       where layers and tensors would go, and the decode estimate\n"
            "  tune [-m FILE] [--quick]  time the kernel variants on this device and keep the\n"
            "                       fastest in a profile the next runs use (vkllm tune --help)\n"
            "  version              print the version\n"
            "\n"
            "Environment: VKLLM_LOG=debug|info|warn|error, VKLLM_CACHE_DIR (shader cache),\n"
            "VKLLM_TUNE=0 (ignore tuning profiles), VK_ICD_FILENAMES (pick a Vulkan driver).\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "devices")) return cmd_devices(argc - 1, argv + 1);
    if (!strcmp(cmd, "run")) return cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize")) return cmd_tokenize(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "plan")) return cmd_plan(argc - 1, argv + 1);
    if (!strcmp(cmd, "tune")) return cmd_tune(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("vkllm %s\n", vkllm_version());
        return 0;
    }
    fprintf(stderr, "vkllm: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
