/*
 * Instantiates kernels_impl.h for float and double, and the table fa_run
 * dispatches through.
 *
 * On x86-64 with GCC or Clang every kernel is compiled three times (AVX-512,
 * AVX2, baseline SSE2) and the loader picks one per process from the CPU
 * (target_clones); elsewhere the baseline build is used.
 */
#include <math.h>

#include "kernels.h"

#define FA_INLINE static inline
#define FA_ALWAYS_INLINE static inline __attribute__((always_inline))
#define FA_RESTRICT __restrict__

#if FA_DISPATCH
#define FA_KERNEL static __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FA_KERNEL static
#endif

#define FA_T float
#define FA_SQRT sqrtf
#define FA_NAME(algo) fa_##algo##_f32
#include "kernels_impl.h"
#undef FA_T
#undef FA_SQRT
#undef FA_NAME

#define FA_T double
#define FA_SQRT sqrt
#define FA_NAME(algo) fa_##algo##_f64
#include "kernels_impl.h"
#undef FA_T
#undef FA_SQRT
#undef FA_NAME

#define FA_BOTH(algo) {fa_##algo##_f32, fa_##algo##_f64}

const fa_kernel fa_kernels[FA_NUM_ALGOS][FA_NUM_DTYPES] = {
    [FA_ADAM] = FA_BOTH(adam),
    [FA_SGD] = FA_BOTH(sgd),
    [FA_RMSPROP] = FA_BOTH(rmsprop),
    [FA_ADAGRAD] = FA_BOTH(adagrad),
    [FA_ADAMAX] = FA_BOTH(adamax),
    [FA_LION] = FA_BOTH(lion),
    [FA_TRAFFIC] = FA_BOTH(traffic),
};

const fa_search_kernel fa_any_nonfinite_kernels[FA_NUM_DTYPES] = FA_BOTH(any_nonfinite);

const char *fa_simd_level(void)
{
#if FA_DISPATCH
    /* The same order of preference as the target_clones resolver. */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return "avx512f";
    if (__builtin_cpu_supports("avx2"))
        return "avx2";
#endif
    return "baseline";
}
