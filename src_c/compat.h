/*
 * What differs between compilers and platforms, in one place: the floating-point
 * rules the bit-for-bit promise rests on, attributes and builtins with portable
 * fallbacks, and which instruction-set levels this build dispatches between at
 * run time (kernels*.c, dispatch.c).
 *
 * Run-time dispatch needs GNU C (GCC >= 10 or Clang >= 14: target attributes,
 * __builtin_cpu_supports) on Linux (getauxval on aarch64). Everywhere else
 * (MSVC, macOS, other systems) the build takes the portable path: one level,
 * the baseline of the compiler's flags (SSE2 on x86-64, NEON on aarch64), or
 * whatever -march names (FASTADAM_NATIVE=1). FA_NO_DISPATCH forces that path.
 */
#ifndef FASTADAM_COMPAT_H
#define FASTADAM_COMPAT_H

#include <stddef.h>
#include <stdint.h>

/*
 * The kernels compute the same bits on every CPU only under IEEE 754 arithmetic
 * in the order written, without contraction into fused multiply-adds (setup.py:
 * -ffp-contract=off). -ffast-math and -ffinite-math-only break that: they
 * reassociate, contract, and drop the NaN and infinity checks.
 */
#if defined(__FAST_MATH__)
#error "fastadam's kernels must not be built with -ffast-math: their results would depend on the compiler and CPU"
#endif
#if defined(__FINITE_MATH_ONLY__) && __FINITE_MATH_ONLY__
#error "fastadam's kernels must not be built with -ffinite-math-only: they check for NaN and infinity"
#endif
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(_MSC_VER)
#pragma fp_contract(off)
#endif

#if defined(__GNUC__) || defined(__clang__)
#define FA_GNU 1
#else
#define FA_GNU 0
#endif

/* restrict, forced inlining, a read prefetch of an address, the index of the lowest set bit. */
#if FA_GNU
#define FA_RESTRICT __restrict__
#define FA_FORCE_INLINE inline __attribute__((always_inline))
#define FA_PREFETCH_AT(address) __builtin_prefetch(address)
#define FA_CTZ(x) ((unsigned)__builtin_ctzll(x))
#elif defined(_MSC_VER)
#define FA_RESTRICT __restrict
#define FA_FORCE_INLINE __forceinline
#define FA_PREFETCH_AT(address) ((void)(address))
#define FA_CTZ(x) fa_ctz(x)
#else
#define FA_RESTRICT restrict
#define FA_FORCE_INLINE inline
#define FA_PREFETCH_AT(address) ((void)(address))
#define FA_CTZ(x) fa_ctz(x)
#endif

#if !FA_GNU
/* The index of the lowest set bit of x (not 0). */
static inline unsigned fa_ctz(uint64_t x)
{
    unsigned n = 0;
    for (; !(x & 1U); x >>= 1)
        n++;
    return n;
}
#endif

/* One function's instruction set (GNU C only). */
#define FA_TARGET(isa) __attribute__((target(isa)))

/*
 * The levels: kernels.c is the baseline; kernels_<level>.c compile the same
 * kernels again for one more instruction set where this build dispatches.
 */
#if FA_GNU && defined(__linux__) && !defined(FA_NO_DISPATCH)
#if defined(__x86_64__)
#define FA_DISPATCH_X86 1
#elif defined(__aarch64__) && !defined(__ARM_FEATURE_SVE)
#define FA_DISPATCH_SVE 1
#endif
#endif
#ifndef FA_DISPATCH_X86
#define FA_DISPATCH_X86 0
#endif
#ifndef FA_DISPATCH_SVE
#define FA_DISPATCH_SVE 0
#endif

/*
 * AVX-512 as GCC >= 11 names it (x86-64-v4), else as the features the CPU check
 * (dispatch.c) can name to Clang and older GCC: the same CPUs in practice.
 */
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ < 11)
#define FA_ISA_AVX512 "avx512f,avx512bw,avx512cd,avx512dq,avx512vl,avx2,fma,bmi,bmi2"
#else
#define FA_ISA_AVX512 "arch=x86-64-v4"
#endif
#define FA_ISA_AVX2 "avx2"
#if defined(__clang__)
#define FA_ISA_SVE "sve"
#else
#define FA_ISA_SVE "+sve"
#endif

/* Whether this CPU runs each level (after __builtin_cpu_init on x86-64). */
#if FA_DISPATCH_X86
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ < 12)
#define FA_CPU_HAS_AVX512()                                                                    \
    (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&                \
     __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&               \
     __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2") &&                   \
     __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi") &&                         \
     __builtin_cpu_supports("bmi2"))
#else
#define FA_CPU_HAS_AVX512() __builtin_cpu_supports("x86-64-v4")
#endif
#define FA_CPU_HAS_AVX2() __builtin_cpu_supports("avx2")
#define FA_CPU_HAS_VBMI()                                                                      \
    (__builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512bw") &&             \
     __builtin_cpu_supports("avx512dq"))
#endif
#if FA_DISPATCH_SVE
#include <sys/auxv.h>
#define FA_CPU_HAS_SVE() ((getauxval(AT_HWCAP) & (1UL << 22)) != 0) /* HWCAP_SVE */
#endif

/* A function that runs as the library loads (GNU C; only where this build dispatches). */
#define FA_CONSTRUCTOR __attribute__((constructor))

/* The baseline level's name: what the compiler's flags give every function. */
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__)
#define FA_BASELINE_NAME "avx512"
#elif defined(__AVX2__)
#define FA_BASELINE_NAME "avx2"
#elif defined(__ARM_FEATURE_SVE)
#define FA_BASELINE_NAME "sve"
#elif defined(__ARM_NEON) || defined(_M_ARM64)
#define FA_BASELINE_NAME "neon"
#else
#define FA_BASELINE_NAME "baseline"
#endif

/* Whether the baseline itself has the AVX-512 VBMI byte tables (-march naming them). */
#if FA_GNU && defined(__AVX512VBMI__) && defined(__AVX512BW__) && defined(__AVX512DQ__)
#define FA_BASELINE_BYTE_TABLES 1
#else
#define FA_BASELINE_BYTE_TABLES 0
#endif

/* Whether the baseline itself has AVX2 (-march naming it): the 8-bit encoder's lattice. */
#if defined(__AVX2__)
#define FA_BASELINE_LATTICE 1
#else
#define FA_BASELINE_LATTICE 0
#endif

#endif /* FASTADAM_COMPAT_H */
