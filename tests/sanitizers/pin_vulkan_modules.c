/* Linked into the tests and the CLI of ASan builds only (VKLLM_SANITIZE=address). Keeps the
 * Vulkan driver named by VK_ICD_FILENAMES and the Khronos validation layer loaded until the
 * process ends (RTLD_NODELETE), so that LeakSanitizer, which reports at exit, can still name
 * them. Without this the loader unloads both at vkDestroyInstance, and their frames in a leak
 * report read "<unknown module>" or, worse, the name of whatever library was mapped at that
 * address later; sanitizers/lsan.supp could then not tell their leaks from ours. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void pin(const char *lib) {
    /* RTLD_LOCAL: loaded early, but none of its symbols become visible to anyone else. */
    if (!dlopen(lib, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE))
        fprintf(stderr, "pin_vulkan_modules: cannot pin %s: %s\n", lib, dlerror());
}

/* The "library_path" of an ICD manifest, into buf. */
static const char *icd_library(const char *manifest, char *buf, size_t cap) {
    FILE *f = fopen(manifest, "rb");
    if (!f) return NULL;
    char text[4096];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    const char *p = strstr(text, "\"library_path\"");
    if (!p || !(p = strchr(p + 14, ':')) || !(p = strchr(p, '"'))) return NULL;
    const char *end = strchr(++p, '"');
    if (!end || (size_t)(end - p) >= cap) return NULL;
    memcpy(buf, p, (size_t)(end - p));
    buf[end - p] = 0;
    return buf;
}

__attribute__((constructor)) static void pin_vulkan_modules(void) {
    char lib[1024];
    const char *icd = getenv("VK_ICD_FILENAMES");
    if (icd && *icd && !strchr(icd, ':') && icd_library(icd, lib, sizeof lib)) pin(lib);
    const char *validation = getenv("VKLLM_VALIDATION");
    if (validation && *validation && strcmp(validation, "0") != 0)
        pin("libVkLayer_khronos_validation.so");
}
