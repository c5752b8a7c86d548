/* Failure paths of contexts and generation, walked, and device loss. vk_fault_set (vk/fault.h)
 * makes the Nth host allocation, device allocation, vkCreateBuffer, vkCreateComputePipelines,
 * vkQueueSubmit or vkWaitForFences fail. For every N over a context creation and over a
 * generate call on a tiny synthetic model (f32 and q4_0) the call must return the status that
 * failure means, with a message, never crash or hang; once the context is freed the model's
 * opening must hold exactly what it held before (vk_mem_stats), and once the model is freed
 * nothing of the vk layer may be left alive. Unless the device was lost the same context (or
 * a new one) then generates the CPU reference's tokens. A lost device (injected on a submit or
 * a wait) is VKLLM_ERR_DEVICE_LOST naming it, on that call and every later one of the model
 * and its contexts, while another model on another opening keeps working. Model loads are
 * walked in test_faults_load.c. */
#include "fault_harness.h"

/* A model kept loaded across walks (and loaded again after its device was lost), with the
 * pipelines and batches of a first context and generate already made. */
typedef struct fixture {
    const fh_model *mf;
    vkllm_model *m;
    vk_mem_stats base; /* its opening after that first context was freed */
} fixture;

static int fixture_ready(fixture *fx, const vkllm_context_params *cp) {
    if (fx->m) return 1;
    vkllm_context *ctx = NULL;
    fh_gen g;
    CHECK_OK(fh_load(fx->mf, &fx->m));
    if (!fx->m) return 0;
    CHECK_OK(vkllm_context_create(fx->m, cp, &ctx));
    if (ctx) CHECK_OK(fh_generate(ctx, FH_GEN, &g, NULL));
    vkllm_context_free(ctx);
    vk_mem_get_stats(api_model_device(fx->m, 0), &fx->base);
    return ctx != NULL;
}

/* Freed, it leaves nothing of the vk layer alive (one fixture lives at a time). */
static void fixture_drop(fixture *fx, const char *what) {
    if (!fx->m) return;
    vkllm_model_free(fx->m);
    fx->m = NULL;
    fh_live_zero(what, 0);
}

/* On a lost model: every later call fails the same way, and nothing new can start. */
static void check_lost_after(vkllm_model *m, vkllm_context *ctx) {
    int32_t t = 1;
    fh_gen g;
    vkllm_context_params cp;
    fh_context_params(&cp);
    CHECK(vkllm_eval(ctx, &t, 1) == VKLLM_ERR_DEVICE_LOST);
    CHECK(strstr(vkllm_last_error(), "lost") != NULL);
    CHECK(fh_generate(ctx, FH_GEN, &g, NULL) == VKLLM_ERR_DEVICE_LOST);
    vkllm_context *other = NULL;
    CHECK(vkllm_context_create(m, &cp, &other) == VKLLM_ERR_DEVICE_LOST && other == NULL);
}

typedef enum phase { PHASE_CONTEXT, PHASE_GENERATE } phase;

/* For every N: the Nth call of `kind` fails inside vkllm_context_create (a context of another
 * size than the load planned, so that it allocates) or inside vkllm_generate. */
static void walk(fixture *fx, phase ph, uint32_t kind, VkResult r) {
    static const char *names[] = {"context", "generate"};
    fh_walk w = {.t0 = vkl_now_ms()};
    char what[128];
    snprintf(what, sizeof what, "%s %s, %s %s", names[ph], fx->mf->type, vk_fault_kind_name((vk_fault_kind)kind),
             vk_result_string(r));
    vkllm_context_params cp;
    fh_context_params(&cp);
    if (ph == PHASE_CONTEXT) cp.n_ctx = FH_CTX / 2;
    uint64_t total = 0;
    for (uint64_t n = 0; n <= total; n++) {
        if (!fixture_ready(fx, &cp)) return;
        vkllm_context *ctx = NULL;
        fh_gen g = {{0}, 0};
        vkllm_status st;
        if (ph == PHASE_CONTEXT) {
            vk_fault_set(kind, n, r); /* n 0: count the calls */
            st = vkllm_context_create(fx->m, &cp, &ctx);
        } else {
            CHECK_OK(vkllm_context_create(fx->m, &cp, &ctx));
            vk_fault_set(kind, n, r);
            st = ctx ? fh_generate(ctx, FH_GEN, &g, NULL) : VKLLM_ERR_INVALID_ARG;
        }
        uint64_t injected = vk_fault_injected();
        if (n == 0) total = vk_fault_calls((vk_fault_kind)kind);
        vk_fault_clear();
        if (n == 0) {
            CHECK_MSG(st == VKLLM_OK && (ph == PHASE_CONTEXT || fh_same_tokens(&g, fx->mf)), "%s, counting run: %s",
                      what, vkllm_last_error());
        } else {
            w.cases++;
            if (!injected) w.not_injected++;
            if (st) {
                fh_note_failure(&w, st, fh_expected(kind, r), what, n);
            } else {
                w.recovered++; /* the library got around it: the result must still be right */
                CHECK_MSG(ph == PHASE_CONTEXT || fh_same_tokens(&g, fx->mf), "%s, case %llu: wrong tokens", what,
                          (unsigned long long)n);
            }
        }
        int lost = st == VKLLM_ERR_DEVICE_LOST;
        if (lost) {
            CHECK(vk_device_lost(api_model_device(fx->m, 0)));
            if (ctx) check_lost_after(fx->m, ctx);
        } else if (n > 0 && st) {
            /* The same context works again, or a new one when creating it failed. */
            CHECK_MSG(ph == PHASE_GENERATE || ctx == NULL, "%s, case %llu: a failed create returned a context", what,
                      (unsigned long long)n);
            if (!ctx) CHECK_OK(vkllm_context_create(fx->m, &cp, &ctx));
            if (ctx)
                CHECK_MSG(fh_generate(ctx, FH_GEN, &g, NULL) == VKLLM_OK && fh_same_tokens(&g, fx->mf),
                          "%s, case %llu: no recovery: %s", what, (unsigned long long)n, vkllm_last_error());
        }
        vkllm_context_free(ctx);
        if (lost) {
            fixture_drop(fx, what);
        } else {
            vk_mem_stats now;
            vk_mem_get_stats(api_model_device(fx->m, 0), &now);
            CHECK_MSG(fh_same_stats(&fx->base, &now), "%s, case %llu: the opening holds %llu device bytes in %u "
                      "blocks (%llu used), was %llu in %u (%llu used)", what, (unsigned long long)n,
                      (unsigned long long)now.device_bytes, now.blocks, (unsigned long long)now.used_bytes,
                      (unsigned long long)fx->base.device_bytes, fx->base.blocks,
                      (unsigned long long)fx->base.used_bytes);
        }
    }
    CHECK_MSG(w.not_injected == 0, "%s: %llu cases saw fewer calls than the counting run", what,
              (unsigned long long)w.not_injected);
    fh_report(names[ph], fx->mf->type, kind, r, &w,
              "the context freed, its opening's vk_mem_stats as before; lost: 0 alive once the model is freed");
}

/* The first context of a fresh model builds every pipeline; a model per case would compile them
 * all again each time, so one model is walked with the failures moving forward: attempt k
 * fails the kth call of the attempt, and what earlier attempts built stays built, until an
 * attempt completes without a failure. For pipelines, each attempt lets exactly one creation
 * succeed and fails every later one (VK_FAULT_STICKY from the second), so each attempt fails
 * at the next pipeline in the order they are built. */
static void walk_cold(const fh_model *mf, uint32_t kind, VkResult r) {
    fh_walk w = {.t0 = vkl_now_ms()};
    char what[128];
    snprintf(what, sizeof what, "ctx-cold %s, %s %s", mf->type, vk_fault_kind_name((vk_fault_kind)kind),
             vk_result_string(r));
    vkllm_model *m = NULL;
    vk_live_stats live0, live1;
    vk_live_get(&live0);
    CHECK_OK(fh_load(mf, &m));
    if (!m) return;
    vkllm_context_params cp;
    fh_context_params(&cp);
    vk_mem_stats base, now;
    vk_mem_get_stats(api_model_device(m, 0), &base);
    vkllm_context *ctx = NULL;
    for (uint64_t k = 1; k < 5000; k++) {
        int pipelines = kind == VK_FAULT_PIPELINE;
        vk_fault_set(pipelines ? kind | VK_FAULT_STICKY : kind, pipelines ? (k == 1 ? 1 : 2) : k, r);
        vkllm_status st = vkllm_context_create(m, &cp, &ctx);
        uint64_t injected = vk_fault_injected();
        vk_fault_clear();
        if (!injected) {
            CHECK_MSG(st == VKLLM_OK, "%s, attempt %llu: %s", what, (unsigned long long)k, vkllm_last_error());
            break;
        }
        w.cases++;
        if (st) {
            fh_note_failure(&w, st, fh_expected(kind, r), what, k);
            CHECK(ctx == NULL);
        } else {
            w.recovered++;
            vkllm_context_free(ctx);
            ctx = NULL;
        }
        vk_mem_get_stats(api_model_device(m, 0), &now);
        CHECK_MSG(fh_same_stats(&base, &now), "%s, attempt %llu: the opening holds %llu device bytes, was %llu", what,
                  (unsigned long long)k, (unsigned long long)now.device_bytes, (unsigned long long)base.device_bytes);
    }
    fh_gen g = {{0}, 0};
    if (ctx) CHECK_OK(fh_generate(ctx, FH_GEN, &g, NULL));
    CHECK_MSG(fh_same_tokens(&g, mf), "%s: after the walk the context generates other tokens", what);
    vkllm_context_free(ctx);
    vkllm_model_free(m);
    vk_live_get(&live1);
    CHECK_MSG(!memcmp(&live0, &live1, sizeof live0), "%s: the model left %lld blocks, %lld batches alive", what,
              (long long)(live1.blocks - live0.blocks), (long long)(live1.batches - live0.batches));
    fh_report("ctx-cold", mf->type, kind, r, &w, "the opening's vk_mem_stats as before; then it generates right");
}

/* Loss on a submit or a wait of model A: VKLLM_ERR_DEVICE_LOST naming the opening; every
 * later call on A fails the same way; model B on its own opening keeps working; freeing A is
 * quick and leaves nothing. */
static void test_device_lost(const fh_model *mf, vkllm_model *b, vkllm_context *cb, uint32_t kind, uint64_t nth,
                             uint32_t n_devices) {
    vkllm_model_params mp;
    th_model_params_init(&mp);
    fh_context_params(&mp.ctx);
    mp.n_devices = n_devices;
    for (uint32_t i = 0; i < n_devices; i++) mp.devices[i] = 0; /* openings of one device */
    vkllm_model *a = NULL;
    vkllm_context *ca = NULL;
    vkllm_context_params cp;
    fh_context_params(&cp);
    fh_gen g;
    vk_live_stats before, after;
    vk_live_get(&before);
    CHECK_OK(vkllm_model_load(mf->path, &mp, &a));
    if (a) CHECK_OK(vkllm_context_create(a, &cp, &ca));
    if (!ca) {
        vkllm_model_free(a);
        return;
    }
    vk_fault_set(kind, nth, VK_ERROR_DEVICE_LOST);
    vkllm_status st = fh_generate(ca, FH_GEN, &g, NULL);
    CHECK(vk_fault_injected() == 1);
    vk_fault_clear();
    CHECK_MSG(st == VKLLM_ERR_DEVICE_LOST, "generate after an injected loss gave %s", vkllm_status_string(st));
    /* The message names the lost opening: on a split model, the one of the failing stage. */
    uint32_t lost_pos = n_devices - 1;
    char label[300];
    snprintf(label, sizeof label, "%s", vk_device_label(api_model_device(a, lost_pos)));
    CHECK_MSG(strstr(vkllm_last_error(), label) != NULL, "the message does not name %s: %s", label,
              vkllm_last_error());
    CHECK(vk_device_lost(api_model_device(a, lost_pos)));
    check_lost_after(a, ca);
    CHECK(strstr(vkllm_last_error(), label) != NULL);
    /* Model B, on its own opening, is untouched. */
    CHECK_OK(fh_generate(cb, FH_GEN, &g, NULL));
    CHECK_MSG(fh_same_tokens(&g, mf), "model B generates other tokens after model A's device was lost");
    double t0 = vkl_now_ms();
    vkllm_context_free(ca);
    vkllm_model_free(a);
    double ms = vkl_now_ms() - t0;
    CHECK_MSG(ms < 10000, "freeing the lost model took %.0f ms", ms);
    vk_live_get(&after);
    CHECK_MSG(!memcmp(&before, &after, sizeof before), "the lost model left objects alive (%lld devices, %lld blocks "
              "before; %lld, %lld after)", (long long)before.devices, (long long)before.blocks,
              (long long)after.devices, (long long)after.blocks);
    CHECK_OK(fh_generate(cb, FH_GEN, &g, NULL));
    CHECK(fh_same_tokens(&g, mf));
    (void)b;
    printf("device lost at %s #%llu (%u opening%s): \"%s\" named; later eval, generate, context_create lost too; "
           "another model fine; freed in %.0f ms, nothing left\n",
           vk_fault_kind_name((vk_fault_kind)kind), (unsigned long long)nth, n_devices, n_devices > 1 ? "s" : "",
           label, ms);
}

int main(void) {
    vkllm_set_log_callback(fh_on_log, NULL);
    double t0 = vkl_now_ms();
    static fh_model f32, q40;
    fh_make_model(&f32, "faults", "f32");
    fh_make_model(&q40, "faults", "q4_0");

    fixture fx[2] = {{.mf = &f32}, {.mf = &q40}};
    for (int t = 0; t < 2; t++) {
        walk(&fx[t], PHASE_CONTEXT, VK_FAULT_HOST_ALLOC, VK_SUCCESS);
        walk(&fx[t], PHASE_CONTEXT, VK_FAULT_DEVICE_ALLOC, VK_SUCCESS);
        walk(&fx[t], PHASE_CONTEXT, VK_FAULT_BUFFER, VK_SUCCESS);
        walk(&fx[t], PHASE_GENERATE, VK_FAULT_HOST_ALLOC, VK_SUCCESS);
        walk(&fx[t], PHASE_GENERATE, VK_FAULT_SUBMIT, VK_ERROR_OUT_OF_HOST_MEMORY);
        walk(&fx[t], PHASE_GENERATE, VK_FAULT_WAIT, VK_ERROR_OUT_OF_DEVICE_MEMORY);
        if (t == 0) {
            /* A lost device takes a new model for the next case: one type. */
            walk(&fx[t], PHASE_GENERATE, VK_FAULT_SUBMIT, VK_ERROR_DEVICE_LOST);
            walk(&fx[t], PHASE_GENERATE, VK_FAULT_WAIT, VK_ERROR_DEVICE_LOST);
        }
        fixture_drop(&fx[t], "fixture");
    }
    /* Logits read back through the staging ring (device memory treated as unmappable). */
    setenv("VKLLM_NO_MAPPED_DEVICE_MEMORY", "1", 1);
    walk(&fx[0], PHASE_GENERATE, VK_FAULT_SUBMIT, VK_ERROR_OUT_OF_HOST_MEMORY);
    fixture_drop(&fx[0], "staging fixture");
    unsetenv("VKLLM_NO_MAPPED_DEVICE_MEMORY");

    /* The first context of a fresh model: pipelines built, their first runs submitted. */
    walk_cold(&q40, VK_FAULT_PIPELINE, VK_SUCCESS);
    walk_cold(&q40, VK_FAULT_HOST_ALLOC, VK_SUCCESS);
    walk_cold(&q40, VK_FAULT_SUBMIT, VK_ERROR_OUT_OF_HOST_MEMORY);
    walk_cold(&q40, VK_FAULT_WAIT, VK_ERROR_OUT_OF_DEVICE_MEMORY);

    /* Device loss beside a healthy model (fx[1], q4_0, on its own opening). */
    vkllm_context_params cp;
    fh_context_params(&cp);
    vkllm_context *cb = NULL;
    if (fixture_ready(&fx[1], &cp)) CHECK_OK(vkllm_context_create(fx[1].m, &cp, &cb));
    if (cb) {
        test_device_lost(&q40, fx[1].m, cb, VK_FAULT_SUBMIT, 1, 1);
        test_device_lost(&q40, fx[1].m, cb, VK_FAULT_WAIT, 2, 1);
        test_device_lost(&q40, fx[1].m, cb, VK_FAULT_SUBMIT, 2, 2); /* the second stage of a split model */
    }
    vkllm_context_free(cb);
    fixture_drop(&fx[1], "q4_0 fixture");

    fh_check_works(&f32, "after the walks");
    fh_live_zero("the end", 0);
    printf("%.1f s\n", (vkl_now_ms() - t0) / 1e3);
    CHECK_MSG(fh_validation_logs == 0, "the validation layer reported %d message(s)", fh_validation_logs);
    remove(f32.path);
    remove(q40.path);
    return th_finish();
}
