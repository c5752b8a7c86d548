/* libFuzzer target: the reader of kernel tuning profiles (runtime/kern/tune.c), the JSON files the
 * library reads from the cache folder when it opens a device. Any input must be refused or
 * give choices that are variants of the table the device can run, for weight types the
 * kernels decode; a profile accepted once must read back the same after being written. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/tune_device.h"
#include "runtime/kern/tune.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_choices(const tune_profile *p, const vkllm_device_info *info) {
    for (uint32_t t = 0; t < WTYPE_COUNT; t++) {
        int known_mv = 0, known_mm = 0;
        if (p->mv_types >> t & 1) {
            for (uint32_t i = 0; i < tune_matvec_count; i++) known_mv |= tune_matvec_equal(&p->mv[t], &tune_matvec_variants[i]);
            if (!known_mv || !tune_matvec_usable(info, t, &p->mv[t]) || p->mv_alt[t].int_dot ||
                !tune_matvec_usable(info, t, &p->mv_alt[t])) {
                fprintf(stderr, "fuzz_tune: accepted matvec choice for type %u outside the table or limits\n", t);
                abort();
            }
        }
        if (p->mm_types >> t & 1) {
            for (uint32_t i = 0; i < tune_matmul_count; i++) known_mm |= tune_matmul_equal(&p->mm[t], &tune_matmul_variants[i]);
            if (!known_mm || !tune_matmul_usable(info, t, &p->mm[t]) || p->mm_alt[t].int_dot ||
                !tune_matmul_usable(info, t, &p->mm_alt[t])) {
                fprintf(stderr, "fuzz_tune: accepted matmul choice for type %u outside the table or limits\n", t);
                abort();
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    vkllm_device_info info;
    fuzz_tune_device(&info);
    tune_profile p;
    vkllm_status st = tune_profile_parse((const char *)data, size, &info, &p);
    if (st != VKLLM_OK) {
        if (st != VKLLM_ERR_BAD_FILE && st != VKLLM_ERR_UNSUPPORTED) {
            fprintf(stderr, "fuzz_tune: a refusal with status %d\n", (int)st);
            abort();
        }
        if (p.mv_types || p.mm_types) {
            fprintf(stderr, "fuzz_tune: a refused profile left choices behind\n");
            abort();
        }
        return 0;
    }
    check_choices(&p, &info);
    char *text = tune_profile_json(&p, &info, NULL);
    if (!text) return 0;
    tune_profile q;
    if (tune_profile_parse(text, strlen(text), &info, &q) != VKLLM_OK || q.mv_types != p.mv_types ||
        q.mm_types != p.mm_types) {
        fprintf(stderr, "fuzz_tune: a written profile does not read back: %s\n", vkllm_last_error());
        abort();
    }
    for (uint32_t t = 0; t < WTYPE_COUNT; t++)
        if (((p.mv_types >> t & 1) && (!tune_matvec_equal(&p.mv[t], &q.mv[t]) || !tune_matvec_equal(&p.mv_alt[t], &q.mv_alt[t]))) ||
            ((p.mm_types >> t & 1) && (!tune_matmul_equal(&p.mm[t], &q.mm[t]) || !tune_matmul_equal(&p.mm_alt[t], &q.mm_alt[t])))) {
            fprintf(stderr, "fuzz_tune: type %u reads back another choice\n", t);
            abort();
        }
    free(text);
    return 0;
}
