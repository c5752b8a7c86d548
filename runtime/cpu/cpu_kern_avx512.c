/* The AVX-512F/BW/VL+FMA+F16C kernels: cpu_kern_x86.h compiled with
 * X86_VNNI 0, X86_512 1. The build
 * gives this file its instruction set (CMakeLists.txt); without it the level is absent. */
#include "runtime/cpu/cpu_kern.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__FMA__) && defined(__F16C__)
#define X86_VNNI 0
#define X86_512 1
#include "runtime/cpu/cpu_kern_x86.h"

const int cpu_kern_built_avx512 = 1;
void cpu_kern_init_avx512(cpu_kern *k) { x86_init(k); }
#else
const int cpu_kern_built_avx512 = 0;
void cpu_kern_init_avx512(cpu_kern *k) { (void)k; }
#endif
