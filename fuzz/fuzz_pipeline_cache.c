/* libFuzzer target: the reader of VkPipelineCache blob files (vk/pipeline.c), fed through
 * fmemopen. The device's identity (vendor, device, driver version, pipelineCacheUUID) is
 * mostly taken from the input's own header, so the fuzzer gets past the identity check and
 * reaches the size and checksum checks; a blob handed on must be exactly the file's tail. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PCACHE_HEADER_BYTES 48 /* magic, vendor, device, driver, uuid[16], size, checksum */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    VkPhysicalDeviceProperties p;
    memset(&p, 0, sizeof p);
    p.vendorID = 0x10005; /* Mesa's lavapipe */
    if (size >= 32 && (data[size - 1] & 7) != 0) {
        memcpy(&p.vendorID, data + 4, 4);
        memcpy(&p.deviceID, data + 8, 4);
        memcpy(&p.driverVersion, data + 12, 4);
        memcpy(p.pipelineCacheUUID, data + 16, VK_UUID_SIZE);
    }
    uint8_t *copy = malloc(size);
    if (!copy) return 0;
    memcpy(copy, data, size);
    FILE *f = fmemopen(copy, size, "rb");
    if (!f) abort();
    size_t blob_size = 12345;
    void *blob = vk_pipeline_cache_read(f, &p, &blob_size);
    fclose(f);
    if (blob) {
        if (blob_size == 0 || PCACHE_HEADER_BYTES + blob_size != size ||
            memcmp(blob, data + PCACHE_HEADER_BYTES, blob_size) != 0) {
            fprintf(stderr, "fuzz_pipeline_cache: handed on a blob that is not the file's tail\n");
            abort();
        }
    } else if (blob_size != 0) {
        fprintf(stderr, "fuzz_pipeline_cache: a miss reported %zu bytes\n", blob_size);
        abort();
    }
    free(blob);
    free(copy);
    return 0;
}
