/* cpu_target: how hltkernels_cpu picks an instruction set at run time.
 *
 * Private to kernels/cpu. The library is built with -O3 for a baseline x86-64 target so that
 * one binary runs on any x86-64 host; hot loops are marked CPU_CLONES, and GCC then emits an
 * AVX-512 (x86-64-v4), an AVX2+FMA (x86-64-v3) and a baseline copy of each, picked by an ifunc
 * resolver when the program loads. Helpers called from a cloned function are `static inline`
 * so they are inlined into, and vectorised for, each clone. */
#ifndef HLT_CPU_TARGET_H
#define HLT_CPU_TARGET_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(HLT_NO_CLONES)
#define CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CPU_CLONES
#endif

#endif
