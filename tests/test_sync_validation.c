/* Shows that the tests really run with the validation layer's synchronization checks on: two
 * fills of one buffer range without a barrier between them must be reported as a
 * write-after-write hazard, and the same fills with a barrier must not. If a layer upgrade
 * renames the setting that tests/CMakeLists.txt passes (VK_LAYER_ENABLES), this test fails
 * instead of every other test silently losing the check. */
#include <stdlib.h>
#include <string.h>

#include "gpu_harness.h"
#include "vk/internal.h"
#include "vkllm.h"

typedef struct fills {
    VkBuffer buffer;
    VkDeviceSize offset;
    int barrier;
} fills;

static void record_fills(void *ctx, VkCommandBuffer cb) {
    const fills *f = ctx;
    vkCmdFillBuffer(cb, f->buffer, f->offset, 256, 1u);
    if (f->barrier) {
        VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                              .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                              .dstAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT};
        vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT,
                             0, 1, &mb, 0, NULL, 0, NULL);
    }
    vkCmdFillBuffer(cb, f->buffer, f->offset, 256, 2u);
}

/* The expected hazard is reported through the log as an error; keep it off stderr so a
 * passing run does not look like a failing one. Anything else still prints. */
static int g_hazards;
static void quiet_hazards(vkllm_log_level level, const char *msg, void *user) {
    if (strstr(msg, "SYNC-HAZARD-WRITE-AFTER-WRITE")) {
        g_hazards++;
        return;
    }
    fprintf(stderr, "%s\n", msg);
}

int main(void) {
    const char *en = getenv("VK_LAYER_ENABLES");
    if (!en || !strstr(en, "VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT")) {
        printf("SKIP: VK_LAYER_ENABLES does not ask for synchronization validation\n");
        return 0;
    }
    vkllm_set_log_callback(quiet_hazards, NULL);
    th_gpu g;
    if (th_gpu_open(&g, NULL) != 0) return th_finish();
    vk_buf b;
    CHECK_OK(vk_buf_alloc(g.dev, VK_MEM_DEVICE, 4096, &b));
    if (b.block) {
        fills f = {b.buffer, b.offset, 1};
        CHECK_OK(vk_run_once(g.dev, record_fills, &f));
        CHECK_MSG(vk_validation_messages(g.inst) == 0 && g_hazards == 0,
                  "fills separated by a barrier were reported (%u messages)",
                  vk_validation_messages(g.inst));
        f.barrier = 0;
        CHECK_OK(vk_run_once(g.dev, record_fills, &f));
        CHECK_MSG(g_hazards >= 1,
                  "two fills of one range without a barrier were not reported: synchronization "
                  "validation is off (%u validation messages)",
                  vk_validation_messages(g.inst));
        vk_buf_free(g.dev, &b);
    }
    /* th_gpu_close would count the expected message as a failure. */
    uint32_t msgs = vk_validation_messages(g.inst);
    CHECK_MSG(msgs == (uint32_t)g_hazards, "%u validation messages, %d of them the expected hazard",
              msgs, g_hazards);
    vk_device_close(g.dev);
    vk_instance_destroy(g.inst);
    vkllm_set_log_callback(NULL, NULL);
    return th_finish();
}
