/* `vkllm devices`: the table names lavapipe with its limits, --json parses and carries the
 * same facts, and with no Vulkan driver the command fails with one clear sentence. */
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
        CHECK(strstr(text, "storage range 128 MiB") != NULL);
        CHECK(strstr(text, "subgroup          8") != NULL);
        CHECK(strstr(text, "(default)") != NULL);
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
        CHECK(cJSON_GetObjectItem(d0, "max_memory_allocation_size")->valuedouble >= 1024.0 * 1024 * 1024);
        CHECK(cJSON_IsBool(cJSON_GetObjectItem(d0, "fp16")));
        CHECK(cJSON_IsArray(cJSON_GetObjectItem(d0, "heaps")));
        cJSON_Delete(root);
    }
    free(json);

    /* No driver: non-zero exit, nothing on stdout, one sentence on stderr (captured via 2>&1). */
    char *err = th_run_cli("VK_ICD_FILENAMES=/nonexistent/icd.json", "vkllm devices 2>&1", &rc);
    CHECK_MSG(rc != 0 && rc != -1, "exit code %d", rc);
    if (err) {
        CHECK_MSG(strstr(err, "no Vulkan driver") != NULL, "message: %s", err);
        char *nl = strchr(err, '\n');
        CHECK_MSG(nl && nl[1] == 0, "expected exactly one line, got:\n%s", err);
    }
    free(err);
    char *out = th_run_cli("VK_ICD_FILENAMES=/nonexistent/icd.json", "vkllm devices 2>/dev/null", &rc);
    CHECK(out && out[0] == 0);
    free(out);
    return th_finish();
}
