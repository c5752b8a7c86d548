/* libFuzzer target: the reader of SPIR-V cache files (vk/shader.c), fed through fmemopen so
 * the code under test is exactly the one that reads $VKLLM_CACHE_DIR/spirv-*.bin. Any input
 * must be a clean miss or an entry whose size, magic word and length agree with the bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SPV_HEADER_BYTES 40 /* magic, format, key, words, checksum, compile_ms */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0; /* fmemopen refuses an empty buffer; an empty file is a miss */
    /* The key the caller asks for: mostly the one the entry claims (so the fuzzer gets past
     * that check), sometimes another. */
    uint64_t key = 0x5eedULL;
    if (size >= 16 && (data[size - 1] & 7) != 0) memcpy(&key, data + 8, 8);
    uint8_t *copy = malloc(size);
    if (!copy) return 0;
    memcpy(copy, data, size);
    FILE *f = fmemopen(copy, size, "rb");
    if (!f) abort();
    vk_spirv spv = {NULL, 0};
    double cost = 0;
    int hit = vk_spirv_cache_read(f, key, &spv, &cost);
    fclose(f);
    if (hit) {
        if (!spv.words || spv.count == 0 || spv.words[0] != 0x07230203u ||
            SPV_HEADER_BYTES + spv.count * 4 != size ||
            memcmp(spv.words, data + SPV_HEADER_BYTES, spv.count * 4) != 0) {
            fprintf(stderr, "fuzz_spirv_cache: accepted an entry that disagrees with the file\n");
            abort();
        }
    } else if (spv.words) {
        fprintf(stderr, "fuzz_spirv_cache: a miss left words behind\n");
        abort();
    }
    free(spv.words);
    free(copy);
    return 0;
}
