// Shared declarations for every kernel: extensions, and the workgroup size as
// specialization constant 0 so one source serves 32- and 64-wide hardware.
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_8bit_storage : require

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;

// Workgroup-wide sum and max: subgroup reduction, then one value per subgroup through
// shared memory. Works for any subgroup size (8 on lavapipe, 32/64 on GPUs).
shared float wg_red[128];

float wg_sum(float v) {
    v = subgroupAdd(v);
    barrier();
    if (subgroupElect()) wg_red[gl_SubgroupID] = v;
    barrier();
    float s = 0.0;
    for (uint i = 0; i < gl_NumSubgroups; i++) s += wg_red[i];
    return s;
}

float wg_max(float v) {
    v = subgroupMax(v);
    barrier();
    if (subgroupElect()) wg_red[gl_SubgroupID] = v;
    barrier();
    float m = wg_red[0];
    for (uint i = 1; i < gl_NumSubgroups; i++) m = max(m, wg_red[i]);
    return m;
}

// Elementwise kernels launch a 2-D grid when n/wg exceeds the per-dimension group limit.
uint flat_index() {
    return (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * gl_WorkGroupSize.x +
           gl_LocalInvocationID.x;
}
