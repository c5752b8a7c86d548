/* Vulkan loading (volk), the instance with optional validation, and the description of
 * every physical device: the facts the CLI prints and the planner and kernels depend on. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk/fault.h"
#include "vk/internal.h"
#include "base/util.h"

/* volk's function pointers are process-wide globals: they are loaded once, by the first
 * instance, and never written again, so that threads creating instances do not race with
 * threads calling Vulkan. Core and known-extension device functions are the loader's
 * trampolines, the same for every instance; the instance-extension functions that depend on
 * what an instance enabled (debug utils) are fetched per instance instead. */
static pthread_once_t g_volk_once = PTHREAD_ONCE_INIT;
static VkResult g_volk_status;
static pthread_mutex_t g_volk_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_volk_loaded;

static void volk_init_once(void) { g_volk_status = volkInitialize(); }

static void volk_load(VkInstance instance) {
    pthread_mutex_lock(&g_volk_lock);
    if (!g_volk_loaded) {
        volkLoadInstance(instance);
        vk_fault_install();
        g_volk_loaded = 1;
    }
    pthread_mutex_unlock(&g_volk_lock);
}

const char *vk_result_string(VkResult r) {
    switch (r) {
#define R(x) case x: return #x;
        R(VK_SUCCESS) R(VK_NOT_READY) R(VK_TIMEOUT) R(VK_INCOMPLETE)
        R(VK_ERROR_OUT_OF_HOST_MEMORY) R(VK_ERROR_OUT_OF_DEVICE_MEMORY)
        R(VK_ERROR_INITIALIZATION_FAILED) R(VK_ERROR_DEVICE_LOST) R(VK_ERROR_MEMORY_MAP_FAILED)
        R(VK_ERROR_LAYER_NOT_PRESENT) R(VK_ERROR_EXTENSION_NOT_PRESENT)
        R(VK_ERROR_FEATURE_NOT_PRESENT) R(VK_ERROR_INCOMPATIBLE_DRIVER)
        R(VK_ERROR_TOO_MANY_OBJECTS) R(VK_ERROR_FORMAT_NOT_SUPPORTED)
        R(VK_ERROR_FRAGMENTED_POOL) R(VK_ERROR_OUT_OF_POOL_MEMORY)
        R(VK_ERROR_INVALID_EXTERNAL_HANDLE) R(VK_ERROR_FRAGMENTATION)
        R(VK_ERROR_INVALID_SHADER_NV) R(VK_PIPELINE_COMPILE_REQUIRED)
#undef R
    default: return "VK_ERROR_UNKNOWN";
    }
}

vkllm_status vk_check(VkResult r, const char *call, const char *file, int line) {
    vkllm_status st = VKLLM_ERR_VULKAN;
    const char *hint = "";
    if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY) {
        st = VKLLM_ERR_OUT_OF_MEMORY;
        hint = " (use a smaller memory budget, context or model)";
    } else if (r == VK_ERROR_DEVICE_LOST) {
        st = VKLLM_ERR_DEVICE_LOST;
        hint = " (the GPU driver reset the device; check dmesg)";
    } else if (r == VK_ERROR_INCOMPATIBLE_DRIVER || r == VK_ERROR_INITIALIZATION_FAILED) {
        st = VKLLM_ERR_NO_VULKAN;
    }
    const char *base = strrchr(file, '/');
    return vkl_err(st, "%s failed: %s at %s:%d%s", call, vk_result_string(r),
                   base ? base + 1 : file, line, hint);
}

static VKAPI_ATTR VkBool32 VKAPI_CALL debug_cb(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
                                               VkDebugUtilsMessageTypeFlagsEXT type,
                                               const VkDebugUtilsMessengerCallbackDataEXT *data,
                                               void *user) {
    vk_instance *inst = user;
    /* The loader reports its own search (e.g. a missing ICD file) as GENERAL messages; only
     * what the validation layer finds counts against the application. */
    int counts = (type & (VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                          VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT)) != 0;
    if (sev >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT && counts) {
        atomic_fetch_add(&inst->validation_messages, 1);
        vkl_log(VKLLM_LOG_ERROR, "validation: %s", data->pMessage);
    } else {
        vkl_log(VKLLM_LOG_DEBUG, "validation: %s", data->pMessage);
    }
    return VK_FALSE;
}

static int has_ext(const VkExtensionProperties *exts, uint32_t n, const char *name) {
    for (uint32_t i = 0; i < n; i++)
        if (!strcmp(exts[i].extensionName, name)) return 1;
    return 0;
}

static const char *vendor_name(uint32_t id) {
    switch (id) {
    case 0x10de: return "NVIDIA";
    case 0x1002: return "AMD";
    case 0x8086: return "Intel";
    case 0x13b5: return "ARM";
    case 0x5143: return "Qualcomm";
    case 0x106b: return "Apple";
    case 0x10005: return "Mesa";
    default: return "unknown";
    }
}

static vkllm_device_type map_type(VkPhysicalDeviceType t) {
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return VKLLM_DEVICE_INTEGRATED;
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return VKLLM_DEVICE_DISCRETE;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return VKLLM_DEVICE_VIRTUAL;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return VKLLM_DEVICE_CPU;
    default: return VKLLM_DEVICE_OTHER;
    }
}

static vkllm_status describe_device(VkPhysicalDevice pd, uint32_t index, vkllm_device_info *d) {
    memset(d, 0, sizeof *d);
    d->index = index;

    uint32_t n_ext = 0;
    VK_TRY(vkEnumerateDeviceExtensionProperties(pd, NULL, &n_ext, NULL));
    VkExtensionProperties *exts = vkl_calloc(n_ext ? n_ext : 1, sizeof *exts);
    if (!exts) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    VkResult r = vkEnumerateDeviceExtensionProperties(pd, NULL, &n_ext, exts);
    if (r != VK_SUCCESS) {
        free(exts);
        return vk_check(r, "vkEnumerateDeviceExtensionProperties", __FILE__, __LINE__);
    }
    d->memory_budget_ext = has_ext(exts, n_ext, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
    d->push_descriptors = has_ext(exts, n_ext, VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME);
    d->external_host_memory = has_ext(exts, n_ext, VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME);
    d->cooperative_matrix = has_ext(exts, n_ext, "VK_KHR_cooperative_matrix") ||
                            has_ext(exts, n_ext, "VK_NV_cooperative_matrix");
    int dot_ext = has_ext(exts, n_ext, "VK_KHR_shader_integer_dot_product");
    free(exts);

    VkPhysicalDeviceProperties base;
    vkGetPhysicalDeviceProperties(pd, &base);
    int v12 = base.apiVersion >= VK_API_VERSION_1_2;
    int v13 = base.apiVersion >= VK_API_VERSION_1_3;

    VkPhysicalDeviceVulkan13Properties p13 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_PROPERTIES};
    VkPhysicalDeviceVulkan12Properties p12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_PROPERTIES};
    VkPhysicalDeviceVulkan11Properties p11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_PROPERTIES};
    VkPhysicalDeviceProperties2 props = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
    VkPhysicalDeviceVulkan13Features f13 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    VkPhysicalDeviceVulkan11Features f11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
    VkPhysicalDeviceFeatures2 feats = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    props.pNext = &p11;
    feats.pNext = &f11;
    if (v12) {
        p11.pNext = &p12;
        f11.pNext = &f12;
    }
    if (v13) {
        p12.pNext = &p13;
        f12.pNext = &f13;
    }
    VkPhysicalDeviceExternalMemoryHostPropertiesEXT host_ptr = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_EXTERNAL_MEMORY_HOST_PROPERTIES_EXT};
    if (d->external_host_memory) {
        host_ptr.pNext = props.pNext;
        props.pNext = &host_ptr;
    }
    /* Before Vulkan 1.3 integer dot products come from the extension's own structures. */
    VkPhysicalDeviceShaderIntegerDotProductFeatures dot_f = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES};
    VkPhysicalDeviceShaderIntegerDotProductProperties dot_p = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_PROPERTIES};
    if (!v13 && dot_ext) {
        dot_f.pNext = feats.pNext;
        feats.pNext = &dot_f;
        dot_p.pNext = props.pNext;
        props.pNext = &dot_p;
    }
    vkGetPhysicalDeviceProperties2(pd, &props);
    vkGetPhysicalDeviceFeatures2(pd, &feats);
    d->min_imported_host_pointer_alignment = d->external_host_memory ? host_ptr.minImportedHostPointerAlignment : 0;

    snprintf(d->name, sizeof d->name, "%s", base.deviceName);
    d->type = map_type(base.deviceType);
    d->vendor_id = base.vendorID;
    d->device_id = base.deviceID;
    snprintf(d->vendor, sizeof d->vendor, "%s", vendor_name(base.vendorID));
    d->api_version = base.apiVersion;
    d->driver_version = base.driverVersion;
    memcpy(d->device_uuid, p11.deviceUUID, 16);
    if (v12) {
        snprintf(d->driver_name, sizeof d->driver_name, "%s", p12.driverName);
        snprintf(d->driver_info, sizeof d->driver_info, "%s", p12.driverInfo);
    }
    d->subgroup_size = p11.subgroupSize;
    d->subgroup_min_size = v13 ? p13.minSubgroupSize : p11.subgroupSize;
    d->subgroup_max_size = v13 ? p13.maxSubgroupSize : p11.subgroupSize;
    d->subgroup_ops = (p11.subgroupSupportedStages & VK_SHADER_STAGE_COMPUTE_BIT)
                          ? p11.subgroupSupportedOperations : 0;
    d->shader_fp16 = v12 && f12.shaderFloat16;
    d->shader_int8 = v12 && f12.shaderInt8;
    d->shader_int16 = feats.features.shaderInt16;
    d->shader_int64 = feats.features.shaderInt64;
    d->storage_16bit = f11.storageBuffer16BitAccess;
    d->storage_8bit = v12 && f12.storageBuffer8BitAccess;
    d->timeline_semaphores = v12 && f12.timelineSemaphore;
    d->integer_dot_product = v13 ? f13.shaderIntegerDotProduct : dot_ext && dot_f.shaderIntegerDotProduct;
    d->integer_dot_4x8_accelerated = d->integer_dot_product &&
        (v13 ? p13.integerDotProduct4x8BitPackedSignedAccelerated : dot_p.integerDotProduct4x8BitPackedSignedAccelerated);

    const VkPhysicalDeviceLimits *l = &base.limits;
    d->max_storage_buffer_range = l->maxStorageBufferRange;
    d->max_memory_allocation_size = p11.maxMemoryAllocationSize;
    d->max_buffer_size = v13 ? p13.maxBufferSize : p11.maxMemoryAllocationSize;
    d->max_shared_memory = l->maxComputeSharedMemorySize;
    d->max_workgroup_invocations = l->maxComputeWorkGroupInvocations;
    for (int i = 0; i < 3; i++) {
        d->max_workgroup_size[i] = l->maxComputeWorkGroupSize[i];
        d->max_workgroup_count[i] = l->maxComputeWorkGroupCount[i];
    }
    d->min_storage_buffer_offset_alignment = (uint32_t)l->minStorageBufferOffsetAlignment;
    d->max_uniform_buffer_range = l->maxUniformBufferRange;
    d->min_uniform_buffer_offset_alignment = (uint32_t)l->minUniformBufferOffsetAlignment;
    d->timestamp_period_ns = l->timestampPeriod;

    VkPhysicalDeviceMemoryBudgetPropertiesEXT budget = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
    VkPhysicalDeviceMemoryProperties2 mem = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2};
    if (d->memory_budget_ext) mem.pNext = &budget;
    vkGetPhysicalDeviceMemoryProperties2(pd, &mem);
    const VkPhysicalDeviceMemoryProperties *mp = &mem.memoryProperties;
    d->heap_count = mp->memoryHeapCount < VKLLM_MAX_HEAPS ? mp->memoryHeapCount : VKLLM_MAX_HEAPS;
    for (uint32_t h = 0; h < d->heap_count; h++) {
        d->heaps[h].size = mp->memoryHeaps[h].size;
        d->heaps[h].device_local = !!(mp->memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT);
        if (d->memory_budget_ext) {
            d->heaps[h].budget = budget.heapBudget[h];
            d->heaps[h].usage = budget.heapUsage[h];
        }
    }
    for (uint32_t t = 0; t < mp->memoryTypeCount; t++) {
        VkMemoryPropertyFlags f = mp->memoryTypes[t].propertyFlags;
        uint32_t h = mp->memoryTypes[t].heapIndex;
        if ((f & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) && h < d->heap_count) d->heaps[h].host_visible = 1;
        if ((f & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) && (f & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT))
            d->uma = 1;
    }

    uint32_t n_q = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n_q, NULL);
    VkQueueFamilyProperties *qf = vkl_calloc(n_q ? n_q : 1, sizeof *qf);
    if (!qf) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n_q, qf);
    for (uint32_t i = 0; i < n_q; i++)
        if ((qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && !(qf[i].queueFlags & VK_QUEUE_GRAPHICS_BIT))
            d->compute_only_queue = 1;
    free(qf);
    return VKLLM_OK;
}

vkllm_status vk_instance_create(int validation, vk_instance **out) {
    *out = NULL;
    pthread_once(&g_volk_once, volk_init_once);
    if (g_volk_status != VK_SUCCESS)
        return vkl_err(VKLLM_ERR_NO_VULKAN,
                       "no Vulkan loader found (libvulkan.so.1): install libvulkan1 and a Vulkan "
                       "driver such as mesa-vulkan-drivers");
    const char *env = getenv("VKLLM_VALIDATION");
    if (env && *env && strcmp(env, "0") != 0) validation = 1;

    vk_instance *inst = vkl_calloc(1, sizeof *inst);
    if (!inst) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    vk_live_add(VK_LIVE_INSTANCES, 1);

    uint32_t loader_version = VK_API_VERSION_1_0;
    if (vkEnumerateInstanceVersion) vkEnumerateInstanceVersion(&loader_version);
    if (loader_version < VK_API_VERSION_1_2) {
        vk_instance_destroy(inst);
        return vkl_err(VKLLM_ERR_NO_VULKAN, "the Vulkan loader supports only %u.%u; vkllm needs 1.2",
                       VK_API_VERSION_MAJOR(loader_version), VK_API_VERSION_MINOR(loader_version));
    }
    inst->api_version = loader_version >= VK_API_VERSION_1_3 ? VK_API_VERSION_1_3 : VK_API_VERSION_1_2;

    uint32_t n_iext = 0;
    vkEnumerateInstanceExtensionProperties(NULL, &n_iext, NULL);
    VkExtensionProperties *iexts = vkl_calloc(n_iext ? n_iext : 1, sizeof *iexts);
    if (!iexts) {
        vk_instance_destroy(inst);
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    }
    vkEnumerateInstanceExtensionProperties(NULL, &n_iext, iexts);
    const char *enabled_ext[4];
    uint32_t n_enabled = 0;
    VkInstanceCreateFlags flags = 0;
    if (has_ext(iexts, n_iext, VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME)) {
        enabled_ext[n_enabled++] = VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME;
        flags |= VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR;
    }
    int debug_utils = validation && has_ext(iexts, n_iext, VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
    if (debug_utils) enabled_ext[n_enabled++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
    free(iexts);

    const char *layers[1] = {"VK_LAYER_KHRONOS_validation"};
    uint32_t n_layers = 0;
    if (validation) {
        uint32_t n_l = 0;
        vkEnumerateInstanceLayerProperties(&n_l, NULL);
        VkLayerProperties *lp = vkl_calloc(n_l ? n_l : 1, sizeof *lp);
        if (!lp) { /* not "validation is not installed": a run asked to validate must validate */
            vk_instance_destroy(inst);
            return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
        }
        vkEnumerateInstanceLayerProperties(&n_l, lp);
        for (uint32_t i = 0; i < n_l; i++)
            if (!strcmp(lp[i].layerName, layers[0])) n_layers = 1;
        free(lp);
        if (!n_layers)
            vkl_log(VKLLM_LOG_WARN, "validation requested but VK_LAYER_KHRONOS_validation is not "
                                    "installed (apt-get install vulkan-validationlayers)");
    }

    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                             .pApplicationName = "vkllm",
                             .pEngineName = "vkllm",
                             .apiVersion = inst->api_version};
    VkDebugUtilsMessengerCreateInfoEXT dbg = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
        .pfnUserCallback = debug_cb,
        .pUserData = inst};
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                               .pNext = debug_utils ? &dbg : NULL,
                               .flags = flags,
                               .pApplicationInfo = &app,
                               .enabledLayerCount = n_layers,
                               .ppEnabledLayerNames = layers,
                               .enabledExtensionCount = n_enabled,
                               .ppEnabledExtensionNames = enabled_ext};
    VkResult r = vkCreateInstance(&ci, NULL, &inst->instance);
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER || r == VK_ERROR_INITIALIZATION_FAILED) {
        inst->instance = VK_NULL_HANDLE;
        vk_instance_destroy(inst);
        return vkl_err(VKLLM_ERR_NO_VULKAN,
                       "no Vulkan driver found (vkCreateInstance: %s): install a driver "
                       "(mesa-vulkan-drivers, or your GPU vendor's) or check VK_ICD_FILENAMES",
                       vk_result_string(r));
    }
    if (r != VK_SUCCESS) {
        inst->instance = VK_NULL_HANDLE;
        vk_instance_destroy(inst);
        return vk_check(r, "vkCreateInstance", __FILE__, __LINE__);
    }
    /* Device functions go through the loader's trampolines, which dispatch on the handle: the
     * globals stay valid for every open device, even devices of different drivers. */
    volk_load(inst->instance);
    if (debug_utils) {
        inst->create_messenger = (PFN_vkCreateDebugUtilsMessengerEXT)vkGetInstanceProcAddr(
            inst->instance, "vkCreateDebugUtilsMessengerEXT");
        inst->destroy_messenger = (PFN_vkDestroyDebugUtilsMessengerEXT)vkGetInstanceProcAddr(
            inst->instance, "vkDestroyDebugUtilsMessengerEXT");
        if (inst->create_messenger && inst->destroy_messenger &&
            inst->create_messenger(inst->instance, &dbg, NULL, &inst->messenger) != VK_SUCCESS)
            inst->messenger = VK_NULL_HANDLE;
    }

    r = vkEnumeratePhysicalDevices(inst->instance, &inst->n_phys, NULL);
    if (r == VK_SUCCESS && inst->n_phys) {
        inst->phys = vkl_calloc(inst->n_phys, sizeof *inst->phys);
        inst->info = vkl_calloc(inst->n_phys, sizeof *inst->info);
        inst->open_count = vkl_calloc(inst->n_phys, sizeof *inst->open_count);
        if (!inst->phys || !inst->info || !inst->open_count) {
            vk_instance_destroy(inst);
            return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
        }
        r = vkEnumeratePhysicalDevices(inst->instance, &inst->n_phys, inst->phys);
    }
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) {
        vk_instance_destroy(inst);
        return vk_check(r, "vkEnumeratePhysicalDevices", __FILE__, __LINE__);
    }
    for (uint32_t i = 0; i < inst->n_phys; i++) {
        vkllm_status st = describe_device(inst->phys[i], i, &inst->info[i]);
        if (st) {
            vk_instance_destroy(inst);
            return st;
        }
    }
    *out = inst;
    return VKLLM_OK;
}

void vk_instance_destroy(vk_instance *inst) {
    if (!inst) return;
    if (inst->messenger) inst->destroy_messenger(inst->instance, inst->messenger, NULL);
    if (inst->instance) vkDestroyInstance(inst->instance, NULL);
    free(inst->phys);
    free(inst->info);
    free(inst->open_count);
    free(inst);
    vk_live_add(VK_LIVE_INSTANCES, -1);
}

uint32_t vk_device_count(const vk_instance *inst) { return inst->n_phys; }

const vkllm_device_info *vk_device_info(const vk_instance *inst, uint32_t index) {
    return index < inst->n_phys ? &inst->info[index] : NULL;
}

uint32_t vk_validation_messages(const vk_instance *inst) {
    return atomic_load(&inst->validation_messages);
}
