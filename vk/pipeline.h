/* The pipeline object, shared by pipeline.c and batch.c. */
#ifndef VKLLM_VK_PIPELINE_H
#define VKLLM_VK_PIPELINE_H

#include "vk/vk.h"

struct vk_pipeline {
    struct vk_pipeline *next;
    vk_pipeline_desc desc; /* shader/defines point at the owned copies below */
    char *shader, *defines;
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout layout;
    VkPipeline pipeline;
};

#endif
