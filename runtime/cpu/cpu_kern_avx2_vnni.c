/* The AVX2+FMA+F16C+AVX-VNNI kernels: cpu_kern_x86.h compiled with
 * X86_VNNI 1, X86_512 0. The build
 * gives this file its instruction set (CMakeLists.txt); without it the level is absent. */
#include "runtime/cpu/cpu_kern.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__) && defined(__AVXVNNI__)
#define X86_VNNI 1
#define X86_512 0
#include "runtime/cpu/cpu_kern_x86.h"

const int cpu_kern_built_avx2_vnni = 1;
void cpu_kern_init_avx2_vnni(cpu_kern *k) { x86_init(k); }
#else
const int cpu_kern_built_avx2_vnni = 0;
void cpu_kern_init_avx2_vnni(cpu_kern *k) { (void)k; }
#endif
