/* Failure paths of a model load, walked. For every N, the Nth host allocation, device
 * allocation (vkAllocateMemory), vkCreateBuffer, and with device memory treated as unmappable
 * (uploads through the staging ring) the Nth vkQueueSubmit and vkWaitForFences, fails during
 * vkllm_model_load of a tiny synthetic model (vk_fault_set, vk/fault.h). Each time the load
 * must return the status that failure means, with a message, and no model; and once it
 * returned, no instance, device opening, memory block, VkDeviceMemory or batch may be left in
 * the process. A device that refuses memory may instead be planned around (the load re-plans
 * once): then the model must work. Cancelling from the progress callback leaves nothing
 * either. Afterwards the process still loads and runs the model to the CPU reference's
 * tokens. */
#include "fault_harness.h"

static void walk_load(const fh_model *mf, uint32_t kind, VkResult r) {
    fh_walk w = {.t0 = vkl_now_ms()};
    vkllm_model *m = NULL;
    vk_fault_set(kind, 0, r); /* counts only */
    CHECK_OK(fh_load(mf, &m));
    vkllm_model_free(m);
    uint64_t total = vk_fault_calls((vk_fault_kind)kind);
    char what[128];
    snprintf(what, sizeof what, "load %s, %s %s", mf->type, vk_fault_kind_name((vk_fault_kind)kind),
             vk_result_string(r));
    for (uint64_t n = 1; n <= total; n++) {
        vk_fault_set(kind, n, r);
        m = NULL;
        vkllm_status st = fh_load(mf, &m);
        uint64_t injected = vk_fault_injected();
        vk_fault_clear();
        w.cases++;
        if (!injected) w.not_injected++;
        if (st) {
            fh_note_failure(&w, st, fh_expected(kind, r), what, n);
            CHECK_MSG(m == NULL, "%s, case %llu: a failed load returned a model", what, (unsigned long long)n);
        } else {
            /* Only a device refusing memory may be planned around; then the model must work.
             * Building a context compiles every pipeline again, so the first such model of a
             * walk is run and the others must at least have seen the refusal. */
            vk_mem_stats ms;
            vk_mem_get_stats(api_model_device(m, 0), &ms);
            CHECK_MSG(ms.refusals > 0, "%s, case %llu: the load succeeded though nothing was refused", what,
                      (unsigned long long)n);
            if (!w.recovered++) {
                vkllm_context *ctx = NULL;
                vkllm_context_params cp;
                fh_context_params(&cp);
                fh_gen g = {{0}, 0};
                CHECK_OK(vkllm_context_create(m, &cp, &ctx));
                if (ctx) CHECK_OK(fh_generate(ctx, FH_GEN, &g, NULL));
                CHECK_MSG(fh_same_tokens(&g, mf), "%s, case %llu: re-planned model generates wrong tokens", what,
                          (unsigned long long)n);
                vkllm_context_free(ctx);
            }
        }
        vkllm_model_free(m);
        fh_live_zero(what, n);
    }
    CHECK_MSG(w.not_injected == 0, "%s: %llu cases saw fewer calls than the counting run", what,
              (unsigned long long)w.not_injected);
    fh_report("load", mf->type, kind, r, &w, "0 instances, devices, blocks, memory objects, batches alive");
}

typedef struct cancel_at {
    float at;
    int calls;
} cancel_at;

static int on_progress(float progress, void *user) {
    cancel_at *c = user;
    c->calls++;
    return progress >= c->at;
}

static void test_cancel(const fh_model *mf) {
    float at[] = {0.0f, 0.5f, 1.0f};
    for (int i = 0; i < 3; i++) {
        cancel_at c = {at[i], 0};
        vkllm_model_params mp;
        th_model_params_init(&mp);
        mp.progress = on_progress;
        mp.progress_user = &c;
        vkllm_model *m = NULL;
        vkllm_status st = vkllm_model_load(mf->path, &mp, &m);
        CHECK_MSG(st == VKLLM_ERR_CANCELLED && m == NULL, "cancel at %.1f: %s", at[i], vkllm_status_string(st));
        CHECK(strstr(vkllm_last_error(), "cancel") != NULL);
        CHECK(c.calls >= 1);
        fh_live_zero("cancelled load", (uint64_t)i);
    }
    printf("progress callback cancels at 0, 0.5 and 1: VKLLM_ERR_CANCELLED with a message, nothing left\n");
}

int main(void) {
    vkllm_set_log_callback(fh_on_log, NULL);
    double t0 = vkl_now_ms();
    static fh_model f32;
    fh_make_model(&f32, "faults_load", "f32");
    fh_check_works(&f32, "before the walks");

    /* The calls of a load do not depend on the weight type: one type walks them. */
    walk_load(&f32, VK_FAULT_HOST_ALLOC, VK_SUCCESS);
    walk_load(&f32, VK_FAULT_DEVICE_ALLOC, VK_SUCCESS);
    walk_load(&f32, VK_FAULT_BUFFER, VK_SUCCESS);
    /* Uploads through the staging ring, as on a GPU whose memory cannot be mapped. */
    setenv("VKLLM_NO_MAPPED_DEVICE_MEMORY", "1", 1);
    walk_load(&f32, VK_FAULT_SUBMIT, VK_ERROR_DEVICE_LOST);
    walk_load(&f32, VK_FAULT_WAIT, VK_ERROR_DEVICE_LOST);
    unsetenv("VKLLM_NO_MAPPED_DEVICE_MEMORY");
    test_cancel(&f32);
    fh_check_works(&f32, "after the walks");
    fh_live_zero("the end", 0);
    printf("%.1f s\n", (vkl_now_ms() - t0) / 1e3);

    CHECK_MSG(fh_validation_logs == 0, "the validation layer reported %d message(s)", fh_validation_logs);
    remove(f32.path);
    return th_finish();
}
