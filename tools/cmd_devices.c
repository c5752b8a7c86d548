/* `vkllm devices [--json]`: the Vulkan devices and what they can do, then the native CPU path,
 * as a table or JSON. */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "tools/cli.h"
#include "vkllm.h"

static void fmt_size(char *buf, size_t cap, uint64_t b) {
    if (b >= (1ull << 30)) snprintf(buf, cap, "%.1f GiB", (double)b / (1ull << 30));
    else if (b >= (1ull << 20)) snprintf(buf, cap, "%.0f MiB", (double)b / (1ull << 20));
    else snprintf(buf, cap, "%.0f KiB", (double)b / 1024);
}

static void subgroup_ops_string(uint32_t ops, char *buf, size_t cap) {
    static const char *names[] = {"basic", "vote", "arithmetic", "ballot", "shuffle",
                                  "shuffle_relative", "clustered", "quad"};
    buf[0] = 0;
    for (int i = 0; i < 8; i++) {
        if (!(ops & (1u << i))) continue;
        size_t n = strlen(buf);
        snprintf(buf + n, cap - n, "%s%s", n ? "," : "", names[i]);
    }
}

/* The device UUID as 8-4-4-4-12 hex digits, what --device also takes. */
static const char *uuid_text(const uint8_t u[16], char buf[40]) {
    char *p = buf;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) *p++ = '-';
        p += snprintf(p, 3, "%02x", u[i]);
    }
    return buf;
}

static void print_text(const vkllm_device_info *d, uint32_t n, uint32_t def) {
    for (uint32_t i = 0; i < n; i++) {
        const vkllm_device_info *x = &d[i];
        char a[32], b[32], c[32], u[32], ops[160], uuid[40];
        if (x->index == VKLLM_DEVICE_CPU_INDEX) {
            fmt_size(a, sizeof a, x->heaps[0].size);
            printf("Device cpu%s: %s\n", x->index == def ? " (default)" : "", x->name);
            printf("  type              cpu, %s\n", x->driver_name);
            printf("  uuid              %s\n", uuid_text(x->device_uuid, uuid));
            printf("  kernels           %s; -t N sets the threads\n", x->driver_info);
            printf("  memory            %s of RAM; weights are read in place from the mapped file\n", a);
            if (i + 1 < n) printf("\n");
            continue;
        }
        printf("Device %u%s: %s\n", x->index, x->index == def ? " (default)" : "", x->name);
        printf("  type              %s, vendor %s (0x%04x), device 0x%04x\n",
               vkllm_device_type_string(x->type), x->vendor, x->vendor_id, x->device_id);
        printf("  driver            %s %s, Vulkan %u.%u.%u\n", x->driver_name, x->driver_info,
               x->api_version >> 22, (x->api_version >> 12) & 0x3ff, x->api_version & 0xfff);
        printf("  uuid              %s\n", uuid_text(x->device_uuid, uuid));
        for (uint32_t h = 0; h < x->heap_count; h++) {
            fmt_size(a, sizeof a, x->heaps[h].size);
            printf("  heap %u            %s%s%s", h, a, x->heaps[h].device_local ? ", device-local" : "",
                   x->heaps[h].host_visible ? ", host-visible" : "");
            if (x->memory_budget_ext) {
                fmt_size(b, sizeof b, x->heaps[h].budget);
                fmt_size(c, sizeof c, x->heaps[h].usage);
                printf(", budget %s, in use %s", b, c);
            }
            printf("\n");
        }
        subgroup_ops_string(x->subgroup_ops, ops, sizeof ops);
        printf("  subgroup          %u (range %u..%u), ops: %s\n", x->subgroup_size, x->subgroup_min_size,
               x->subgroup_max_size, ops);
        printf("  arithmetic        fp16 %s, int8 %s, int16 %s, int64 %s, int dot product %s, "
               "cooperative matrix %s\n", x->shader_fp16 ? "yes" : "no", x->shader_int8 ? "yes" : "no",
               x->shader_int16 ? "yes" : "no", x->shader_int64 ? "yes" : "no",
               x->integer_dot_product ? (x->integer_dot_4x8_accelerated ? "yes (4x8 accelerated)" : "yes") : "no",
               x->cooperative_matrix ? "yes" : "no");
        printf("  storage           8-bit %s, 16-bit %s\n", x->storage_8bit ? "yes" : "no",
               x->storage_16bit ? "yes" : "no");
        fmt_size(a, sizeof a, x->max_storage_buffer_range);
        fmt_size(b, sizeof b, x->max_memory_allocation_size);
        fmt_size(c, sizeof c, x->max_buffer_size);
        fmt_size(u, sizeof u, x->max_uniform_buffer_range);
        printf("  limits            storage range %s, uniform range %s, allocation %s, buffer %s\n", a, u, b, c);
        printf("  workgroup         shared %u KiB, %u invocations, size %u x %u x %u\n",
               x->max_shared_memory / 1024, x->max_workgroup_invocations, x->max_workgroup_size[0],
               x->max_workgroup_size[1], x->max_workgroup_size[2]);
        printf("  extensions        memory budget %s, push descriptors %s, timeline semaphores %s, "
               "external host memory %s, compute-only queue %s, UMA/ReBAR %s\n",
               x->memory_budget_ext ? "yes" : "no", x->push_descriptors ? "yes" : "no",
               x->timeline_semaphores ? "yes" : "no", x->external_host_memory ? "yes" : "no",
               x->compute_only_queue ? "yes" : "no", x->uma ? "yes" : "no");
        if (x->external_host_memory)
            printf("  host import       min imported host pointer alignment %llu bytes\n",
                   (unsigned long long)x->min_imported_host_pointer_alignment);
        else
            printf("  host import       none (no VK_EXT_external_memory_host: host tensors are copied)\n");
        if (i + 1 < n) printf("\n");
    }
}

static int print_json(const vkllm_device_info *d, uint32_t n, uint32_t def) {
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "devices");
    if (def == VKLLM_DEVICE_CPU_INDEX) cJSON_AddStringToObject(root, "default", "cpu");
    else cJSON_AddNumberToObject(root, "default", def);
    for (uint32_t i = 0; i < n; i++) {
        const vkllm_device_info *x = &d[i];
        cJSON *o = cJSON_CreateObject();
        char ver[32], ops[160], uuid[40];
        if (x->index == VKLLM_DEVICE_CPU_INDEX) {
            cJSON_AddStringToObject(o, "index", "cpu");
            cJSON_AddStringToObject(o, "name", x->name);
            cJSON_AddStringToObject(o, "type", "cpu");
            cJSON_AddStringToObject(o, "uuid", uuid_text(x->device_uuid, uuid));
            cJSON_AddStringToObject(o, "driver_name", x->driver_name);
            cJSON_AddStringToObject(o, "driver_info", x->driver_info);
            cJSON_AddNumberToObject(o, "memory", (double)x->heaps[0].size);
            cJSON_AddItemToArray(arr, o);
            continue;
        }
        cJSON_AddNumberToObject(o, "index", x->index);
        cJSON_AddStringToObject(o, "name", x->name);
        cJSON_AddStringToObject(o, "type", vkllm_device_type_string(x->type));
        cJSON_AddStringToObject(o, "uuid", uuid_text(x->device_uuid, uuid));
        cJSON_AddStringToObject(o, "vendor", x->vendor);
        cJSON_AddNumberToObject(o, "vendor_id", x->vendor_id);
        cJSON_AddNumberToObject(o, "device_id", x->device_id);
        cJSON_AddStringToObject(o, "driver_name", x->driver_name);
        cJSON_AddStringToObject(o, "driver_info", x->driver_info);
        cJSON_AddNumberToObject(o, "driver_version", x->driver_version);
        snprintf(ver, sizeof ver, "%u.%u.%u", x->api_version >> 22, (x->api_version >> 12) & 0x3ff,
                 x->api_version & 0xfff);
        cJSON_AddStringToObject(o, "api_version", ver);
        cJSON *heaps = cJSON_AddArrayToObject(o, "heaps");
        for (uint32_t h = 0; h < x->heap_count; h++) {
            cJSON *ho = cJSON_CreateObject();
            cJSON_AddNumberToObject(ho, "size", (double)x->heaps[h].size);
            cJSON_AddBoolToObject(ho, "device_local", x->heaps[h].device_local);
            cJSON_AddBoolToObject(ho, "host_visible", x->heaps[h].host_visible);
            if (x->memory_budget_ext) {
                cJSON_AddNumberToObject(ho, "budget", (double)x->heaps[h].budget);
                cJSON_AddNumberToObject(ho, "usage", (double)x->heaps[h].usage);
            }
            cJSON_AddItemToArray(heaps, ho);
        }
        cJSON_AddBoolToObject(o, "memory_budget", x->memory_budget_ext);
        cJSON_AddBoolToObject(o, "uma", x->uma);
        cJSON_AddNumberToObject(o, "subgroup_size", x->subgroup_size);
        cJSON_AddNumberToObject(o, "subgroup_min_size", x->subgroup_min_size);
        cJSON_AddNumberToObject(o, "subgroup_max_size", x->subgroup_max_size);
        subgroup_ops_string(x->subgroup_ops, ops, sizeof ops);
        cJSON_AddStringToObject(o, "subgroup_ops", ops);
        cJSON_AddBoolToObject(o, "fp16", x->shader_fp16);
        cJSON_AddBoolToObject(o, "int8", x->shader_int8);
        cJSON_AddBoolToObject(o, "int16", x->shader_int16);
        cJSON_AddBoolToObject(o, "int64", x->shader_int64);
        cJSON_AddBoolToObject(o, "storage_8bit", x->storage_8bit);
        cJSON_AddBoolToObject(o, "storage_16bit", x->storage_16bit);
        cJSON_AddBoolToObject(o, "integer_dot_product", x->integer_dot_product);
        cJSON_AddBoolToObject(o, "integer_dot_4x8_accelerated", x->integer_dot_4x8_accelerated);
        cJSON_AddBoolToObject(o, "cooperative_matrix", x->cooperative_matrix);
        cJSON_AddBoolToObject(o, "push_descriptors", x->push_descriptors);
        cJSON_AddBoolToObject(o, "timeline_semaphores", x->timeline_semaphores);
        cJSON_AddBoolToObject(o, "external_host_memory", x->external_host_memory);
        cJSON_AddNumberToObject(o, "min_imported_host_pointer_alignment",
                                (double)x->min_imported_host_pointer_alignment);
        cJSON_AddBoolToObject(o, "compute_only_queue", x->compute_only_queue);
        cJSON_AddNumberToObject(o, "max_storage_buffer_range", (double)x->max_storage_buffer_range);
        cJSON_AddNumberToObject(o, "max_uniform_buffer_range", (double)x->max_uniform_buffer_range);
        cJSON_AddNumberToObject(o, "max_memory_allocation_size", (double)x->max_memory_allocation_size);
        cJSON_AddNumberToObject(o, "max_buffer_size", (double)x->max_buffer_size);
        cJSON_AddNumberToObject(o, "max_shared_memory", x->max_shared_memory);
        cJSON_AddNumberToObject(o, "max_workgroup_invocations", x->max_workgroup_invocations);
        cJSON *wg = cJSON_AddArrayToObject(o, "max_workgroup_size");
        for (int k = 0; k < 3; k++) cJSON_AddItemToArray(wg, cJSON_CreateNumber(x->max_workgroup_size[k]));
        cJSON_AddNumberToObject(o, "min_storage_buffer_offset_alignment", x->min_storage_buffer_offset_alignment);
        cJSON_AddNumberToObject(o, "timestamp_period_ns", x->timestamp_period_ns);
        cJSON_AddItemToArray(arr, o);
    }
    char *s = cJSON_Print(root);
    int ok = s != NULL;
    if (s) printf("%s\n", s);
    cJSON_free(s);
    cJSON_Delete(root);
    return ok ? 0 : 1;
}

int cmd_devices(int argc, char **argv) {
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else {
            fprintf(stderr, "vkllm devices: unknown option %s (usage: vkllm devices [--json])\n", argv[i]);
            return 2;
        }
    }
    vkllm_device_info *d;
    uint32_t n;
    vkllm_status st = vkllm_list_devices(&d, &n);
    if (st) {
        fprintf(stderr, "vkllm: %s\n", vkllm_last_error());
        return 1;
    }
    if (n == 1)
        fprintf(stderr, "vkllm: no Vulkan device found (for a GPU, install its vendor's Vulkan driver); "
                        "the CPU path runs models without one\n");
    uint32_t def = vkllm_default_device(d, n);
    int rc = 0;
    if (json) rc = print_json(d, n, def);
    else print_text(d, n, def);
    vkllm_free(d);
    return rc;
}
