/* The pipeline object, shared by pipeline.c and batch.c. */
#ifndef VKLLM_VK_PIPELINE_H
#define VKLLM_VK_PIPELINE_H

#include <pthread.h>
#include <stdatomic.h>

#include "vk/vk.h"

struct vk_pipeline {
    struct vk_pipeline *next;
    vk_pipeline_desc desc; /* shader/defines point at the owned copies below */
    char *shader, *defines;
    /* The Vulkan objects exist once `built` is set (a memo entry handed to a dry batch has
     * none yet). Whoever builds holds build_lock, so a second thread asking waits for it. */
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout layout;
    VkPipeline pipeline;
    pthread_mutex_t build_lock;
    atomic_int built;
};

static inline int vk_pipeline_is_built(vk_pipeline *p) {
    return atomic_load_explicit(&p->built, memory_order_acquire) != 0;
}

#endif
