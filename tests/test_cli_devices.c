/* `vkllm devices`: the table names lavapipe with its limits and then the native CPU path, the
 * default (the CPU path, since lavapipe is a software driver), --json parses and carries the
 * same facts, and with no Vulkan driver the CPU path is listed alone with one sentence on
 * stderr. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "harness.h"

int main(void) {
    int rc;
    char *text = th_run_cli("", "vkllm devices", &rc);
    CHECK(text && rc == 0);
    if (text) {
        CHECK_MSG(strstr(text, "llvmpipe") != NULL, "no llvmpipe in:\n%s", text);
        CHECK(strstr(text, "storage range 128 MiB, uniform range 64 KiB") != NULL);
        CHECK(strstr(text, "subgroup          8") != NULL);
        char *cpu = strstr(text, "Device cpu (default): ");
        CHECK_MSG(cpu && cpu > strstr(text, "llvmpipe"), "the CPU path is not listed last as the default:\n%s", text);
        CHECK(strstr(text, "Device 0 (default)") == NULL);
        CHECK(strstr(text, "int dot product yes") != NULL);
    }
    free(text);

    char *json = th_run_cli("", "vkllm devices --json", &rc);
    CHECK(json && rc == 0);
    cJSON *root = json ? cJSON_Parse(json) : NULL;
    CHECK_MSG(root != NULL, "--json output does not parse");
    if (root) {
        cJSON *devs = cJSON_GetObjectItem(root, "devices");
        CHECK(cJSON_IsArray(devs) && cJSON_GetArraySize(devs) >= 1);
        cJSON *d0 = cJSON_GetArrayItem(devs, 0);
        cJSON *name = cJSON_GetObjectItem(d0, "name");
        CHECK(cJSON_IsString(name) && strstr(name->valuestring, "llvmpipe"));
        CHECK(cJSON_GetObjectItem(d0, "subgroup_size")->valuedouble == 8);
        CHECK(cJSON_GetObjectItem(d0, "max_storage_buffer_range")->valuedouble == 128.0 * 1024 * 1024);
        CHECK(cJSON_GetObjectItem(d0, "max_uniform_buffer_range")->valuedouble == 64.0 * 1024);
        CHECK(cJSON_GetObjectItem(d0, "max_memory_allocation_size")->valuedouble >= 1024.0 * 1024 * 1024);
        CHECK(cJSON_IsBool(cJSON_GetObjectItem(d0, "fp16")));
        CHECK(cJSON_IsArray(cJSON_GetObjectItem(d0, "heaps")));
        cJSON *last = cJSON_GetArrayItem(devs, cJSON_GetArraySize(devs) - 1);
        cJSON *idx = cJSON_GetObjectItem(last, "index"), *def = cJSON_GetObjectItem(root, "default");
        CHECK(cJSON_IsString(idx) && !strcmp(idx->valuestring, "cpu"));
        CHECK(cJSON_IsString(def) && !strcmp(def->valuestring, "cpu"));
        CHECK(cJSON_GetObjectItem(last, "memory")->valuedouble > 0);
        /* --device takes the UUID it prints: a known one gets past the options (to the missing
         * model file), an unknown one is named in the error. */
        cJSON *uuid = cJSON_GetObjectItem(d0, "uuid");
        CHECK(cJSON_IsString(uuid) && strlen(uuid->valuestring) == 36);
        if (cJSON_IsString(uuid)) {
            char args[256];
            snprintf(args, sizeof args, "vkllm plan -m /nonexistent.gguf --device %s,cpu 2>&1", uuid->valuestring);
            char *o = th_run_cli("", args, &rc);
            CHECK_MSG(rc != 0 && o && strstr(o, "nonexistent.gguf") && !strstr(o, "UUID"), "got:\n%s", o ? o : "");
            free(o);
            o = th_run_cli("", "vkllm plan -m /nonexistent.gguf --device eeeeeeee-eeee-eeee-eeee-eeeeeeeeeeee 2>&1",
                           &rc);
            CHECK_MSG(rc == 2 && o && strstr(o, "no device has the UUID eeee"), "got:\n%s", o ? o : "");
            free(o);
        }
        cJSON_Delete(root);
    }
    free(json);

    /* No driver: the CPU path alone, the default; one sentence on stderr (2>&1 >/dev/null
     * captures only that). */
    char *err = th_run_cli("VK_ICD_FILENAMES=/nonexistent/icd.json", "vkllm devices 2>&1 >/dev/null", &rc);
    CHECK_MSG(rc == 0, "exit code %d", rc);
    if (err) {
        CHECK_MSG(strstr(err, "no Vulkan device found") != NULL, "message: %s", err);
        char *nl = strchr(err, '\n');
        CHECK_MSG(nl && nl[1] == 0, "expected exactly one line, got:\n%s", err);
    }
    free(err);
    char *out = th_run_cli("VK_ICD_FILENAMES=/nonexistent/icd.json", "vkllm devices 2>/dev/null", &rc);
    CHECK_MSG(out && !strncmp(out, "Device cpu (default): ", 22) && !strstr(out, "llvmpipe"), "got:\n%s", out ? out : "");
    free(out);
    return th_finish();
}
