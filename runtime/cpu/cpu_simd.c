/* Which SIMD level this machine runs: CPUID and XGETBV on x86 (the OS must save the wide
 * registers too), the compiler's target on AArch64; the level names; and the kernel tables,
 * filled once per process for the levels that can run. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "runtime/cpu/cpu_kern.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define CPU_X86 1
#else
#define CPU_X86 0
#endif

static const char *const g_simd_names[CPU_SIMD_COUNT] = {
    [CPU_SIMD_SCALAR] = "scalar",          [CPU_SIMD_NEON] = "neon",
    [CPU_SIMD_AVX2] = "avx2",              [CPU_SIMD_AVX2_VNNI] = "avx2_vnni",
    [CPU_SIMD_AVX512] = "avx512",          [CPU_SIMD_AVX512_VNNI] = "avx512_vnni",
};

const char *cpu_simd_name(cpu_simd level) {
    return (unsigned)level < CPU_SIMD_COUNT ? g_simd_names[level] : "?";
}

int cpu_simd_parse(const char *name, cpu_simd *out) {
    for (int i = 0; i < CPU_SIMD_COUNT; i++) {
        if (name && strcmp(name, g_simd_names[i]) == 0) {
            *out = (cpu_simd)i;
            return 1;
        }
    }
    return 0;
}

/* What the CPU and OS offer, one flag per level, ignoring what the build compiled. */
static void cpu_detect(int has[CPU_SIMD_COUNT]) {
    memset(has, 0, CPU_SIMD_COUNT * sizeof *has);
    has[CPU_SIMD_SCALAR] = 1;
#if CPU_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx) return;
    unsigned xlo, xhi;
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    int os_ymm = (xlo & 0x6) == 0x6, os_zmm = os_ymm && (xlo & 0xe0) == 0xe0;
    if (!os_ymm || __get_cpuid_max(0, NULL) < 7) return;
    __cpuid_count(7, 0, a, b, c, d);
    int avx2 = (b >> 5) & 1, f = (b >> 16) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    int vnni512 = (c >> 11) & 1;
    unsigned a1, b1, c1, d1;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    int avxvnni = (a1 >> 4) & 1;
    has[CPU_SIMD_AVX2] = avx2 && fma && f16c;
    has[CPU_SIMD_AVX2_VNNI] = has[CPU_SIMD_AVX2] && avxvnni;
    has[CPU_SIMD_AVX512] = has[CPU_SIMD_AVX2] && os_zmm && f && bw && vl;
    has[CPU_SIMD_AVX512_VNNI] = has[CPU_SIMD_AVX512] && vnni512;
#elif defined(__aarch64__)
    has[CPU_SIMD_NEON] = 1; /* Advanced SIMD is part of the AArch64 base */
#endif
}

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_supported[CPU_SIMD_COUNT];
static cpu_kern g_kern[CPU_SIMD_COUNT];

static void cpu_simd_init(void) {
    int has[CPU_SIMD_COUNT];
    cpu_detect(has);
    const int built[CPU_SIMD_COUNT] = {
        [CPU_SIMD_SCALAR] = 1,
        [CPU_SIMD_NEON] = cpu_kern_built_neon,
        [CPU_SIMD_AVX2] = cpu_kern_built_avx2,
        [CPU_SIMD_AVX2_VNNI] = cpu_kern_built_avx2_vnni,
        [CPU_SIMD_AVX512] = cpu_kern_built_avx512,
        [CPU_SIMD_AVX512_VNNI] = cpu_kern_built_avx512_vnni,
    };
    void (*const init[CPU_SIMD_COUNT])(cpu_kern *) = {
        [CPU_SIMD_NEON] = cpu_kern_init_neon,
        [CPU_SIMD_AVX2] = cpu_kern_init_avx2,
        [CPU_SIMD_AVX2_VNNI] = cpu_kern_init_avx2_vnni,
        [CPU_SIMD_AVX512] = cpu_kern_init_avx512,
        [CPU_SIMD_AVX512_VNNI] = cpu_kern_init_avx512_vnni,
    };
    for (int i = 0; i < CPU_SIMD_COUNT; i++) {
        g_supported[i] = has[i] && built[i];
        if (!g_supported[i]) continue;
        cpu_kern_init_scalar(&g_kern[i]);
        if (init[i]) init[i](&g_kern[i]);
    }
}

int cpu_simd_supported(cpu_simd level) {
    if ((unsigned)level >= CPU_SIMD_COUNT) return 0;
    pthread_once(&g_once, cpu_simd_init);
    return g_supported[level];
}

cpu_simd cpu_simd_best(void) {
    for (int i = CPU_SIMD_COUNT - 1; i > 0; i--)
        if (cpu_simd_supported((cpu_simd)i)) return (cpu_simd)i;
    return CPU_SIMD_SCALAR;
}

const cpu_kern *cpu_kern_get(cpu_simd level) {
    return cpu_simd_supported(level) ? &g_kern[level] : NULL;
}

/* Counts CPUs that are the first of their SMT sibling list; online CPUs if sysfs says nothing. */
uint32_t cpu_physical_cores(void) {
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (n_cpu < 1) n_cpu = 1;
    uint32_t cores = 0;
    for (long i = 0; i < n_cpu; i++) {
        char path[96];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%ld/topology/thread_siblings_list", i);
        FILE *f = fopen(path, "r");
        if (!f) return (uint32_t)n_cpu;
        long first = -1;
        int ok = fscanf(f, "%ld", &first) == 1;
        fclose(f);
        if (!ok) return (uint32_t)n_cpu;
        if (first == i) cores++;
    }
    return cores ? cores : 1;
}
