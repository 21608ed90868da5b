/*
 * One instruction-set level: kernels_impl.h instantiated for float and double,
 * compressed_impl.h for Adam, and the level's table (fa_level, kernels.h).
 * Included once per level by kernels.c (the baseline) and kernels_<level>.c,
 * which define:
 *
 *   FA_LEVEL_VAR          the table's name (fa_level_avx2, ...)
 *   FA_LEVEL_NAME         its name for fa_simd_level ("avx2", ...)
 *   FA_LEVEL_ATTRIBUTES   what every function of the level carries (its target)
 *   FA_LEVEL_BYTE_TABLES  1 if its 8-bit kernels have the AVX-512 VBMI lookups
 *   FA_LEVEL_LATTICE      1 if its 8-bit encoder has the AVX2 lattice (q8_avx2.h)
 *
 * Every function here is static, so that the levels never share code compiled
 * for another instruction set.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

#define FA_INLINE static inline FA_LEVEL_ATTRIBUTES
#define FA_ALWAYS_INLINE static FA_FORCE_INLINE FA_LEVEL_ATTRIBUTES
#define FA_KERNEL static FA_LEVEL_ATTRIBUTES

#include "formats.h"

/*
 * The 8-bit format's bulk lookups: with AVX-512 VBMI byte tables where the CPU
 * has them (and tests have not switched them off), 64 elements at a time, in
 * blocks of 1 << shift >= 64 elements with a factor each; the encoder also by
 * the lattice with AVX2 (where the map's lattice is exact), 32 at a time in
 * blocks of 1 << shift >= 32. Each returns how many of the len elements it did;
 * the caller does the rest.
 */
#if FA_LEVEL_BYTE_TABLES
#include "q8_vbmi.h"
#endif
#if FA_LEVEL_LATTICE
#include "q8_avx2.h"
#endif

#if FA_LEVEL_BYTE_TABLES
FA_INLINE size_t fa_q8_decode_bulk(const fa_qmap *q, size_t len, unsigned shift,
                                   const uint8_t *codes, const float *absmax, float *out)
{
    if (shift < 6 || !fa_byte_tables_enabled)
        return 0;
    fa_q8_decode_vbmi(q, len & ~(size_t)63, shift, codes, absmax, out);
    return len & ~(size_t)63;
}
#else
#define fa_q8_decode_bulk(q, len, shift, codes, absmax, out) ((size_t)0)
#endif

FA_INLINE size_t fa_q8_encode_bulk(const fa_qmap *q, size_t len, unsigned shift, const float *x,
                                   const float *scale, uint8_t *codes, int stochastic,
                                   uint32_t counter, int high)
{
#if FA_LEVEL_BYTE_TABLES
    if (shift >= 6 && fa_byte_tables_enabled) {
        fa_q8_encode_vbmi(q, len & ~(size_t)63, shift, x, scale, codes, stochastic, counter, high);
        return len & ~(size_t)63;
    }
#endif
#if FA_LEVEL_LATTICE
    if (shift >= 5 && q->search[stochastic != 0].lattice.exact) {
        fa_q8_encode_avx2(q, len & ~(size_t)31, shift, x, scale, codes, stochastic, counter, high);
        return len & ~(size_t)31;
    }
#endif
    (void)q, (void)len, (void)shift, (void)x, (void)scale, (void)codes, (void)stochastic;
    (void)counter, (void)high;
    return 0;
}

#define FA_T float
#define FA_UINT uint32_t
#define FA_SQRT sqrtf
#define FA_NAME(algo) fa_##algo##_f32
#include "kernels_impl.h"

/* The compressed formats compute in float, with the float instances above. */
#define FA_ALGO adam
#define FA_COEF fa_adam_coef_f32
#define FA_COEF_LOAD fa_adam_coef_load_f32
#define FA_COEF_IS_COMMON fa_adam_is_common_f32
#define FA_COEF_COMMON fa_adam_coef_common_f32
#define FA_ELEMENT(c, p, g, s, on) fa_adam_element_f32(c, p, g, s, (on) >> 2 & 1)
#define FA_SIGNED 1 /* exp_avg; exp_avg_sq and max_exp_avg_sq are >= 0 */
#include "compressed_impl.h"
#undef FA_ALGO
#undef FA_COEF
#undef FA_COEF_LOAD
#undef FA_COEF_IS_COMMON
#undef FA_COEF_COMMON
#undef FA_ELEMENT
#undef FA_SIGNED

#undef FA_T
#undef FA_UINT
#undef FA_SQRT
#undef FA_NAME

#define FA_T double
#define FA_UINT uint64_t
#define FA_SQRT sqrt
#define FA_NAME(algo) fa_##algo##_f64
#include "kernels_impl.h"
#undef FA_T
#undef FA_UINT
#undef FA_SQRT
#undef FA_NAME

#define FA_BOTH(algo) {fa_##algo##_f32, fa_##algo##_f64}

/* Whether any of n bfloat16 values is NaN or infinite (all exponent bits set). */
FA_KERNEL int fa_any_nonfinite_bf16(size_t n, const void *values)
{
    const uint16_t *FA_RESTRICT x = values;
    int found = 0;

    for (size_t i = 0; i < n; i++)
        found |= (x[i] & 0x7f80U) == 0x7f80U;
    return found;
}

/* The nearest codes of x under q: the kernels' quantise, one block of every element, scale 1. */
FA_KERNEL void fa_q8_encode_level(const fa_qmap *q, const float *x, size_t n, uint8_t *codes)
{
    static const float one = 1.0f;

    fa_adam_quantise(q, n, 63, x, &one, codes, 0, 0, 0);
}

const fa_level FA_LEVEL_VAR = {
    .name = FA_LEVEL_NAME,
    .kernels =
        {
            [FA_ADAM] = FA_BOTH(adam),
            [FA_SGD] = FA_BOTH(sgd),
            [FA_RMSPROP] = FA_BOTH(rmsprop),
            [FA_ADAGRAD] = FA_BOTH(adagrad),
            [FA_ADAMAX] = FA_BOTH(adamax),
            [FA_LION] = FA_BOTH(lion),
            [FA_NADAM] = FA_BOTH(nadam),
            [FA_RADAM] = FA_BOTH(radam),
            [FA_RPROP] = FA_BOTH(rprop),
            [FA_TRAFFIC] = FA_BOTH(traffic),
        },
    .any_nonfinite = FA_BOTH(any_nonfinite),
    .any_nonfinite_bf16 = fa_any_nonfinite_bf16,
    .compressed = {[FA_ADAM] = &fa_adam_compressed_table},
    .q8_encode = fa_q8_encode_level,
    .byte_tables = FA_LEVEL_BYTE_TABLES,
    .lattice = FA_LEVEL_LATTICE,
};

#undef FA_BOTH
#undef FA_INLINE
#undef FA_ALWAYS_INLINE
#undef FA_KERNEL
