/*
 * Instantiates kernels_impl.h for float and double, and the table fa_run
 * dispatches through.
 *
 * On x86-64 with GCC or Clang every kernel is compiled three times (AVX-512,
 * AVX2, baseline SSE2) and the loader picks one per process from the CPU
 * (target_clones); elsewhere the baseline build is used.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

#define FA_INLINE static inline
#define FA_ALWAYS_INLINE static inline __attribute__((always_inline))
#define FA_RESTRICT __restrict__

#if FA_DISPATCH
#define FA_KERNEL static __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define FA_KERNEL static
#endif

#include "formats.h"

/*
 * The 8-bit format's bulk lookups: with AVX-512 VBMI byte tables where the CPU
 * has them (and tests have not switched them off), 64 elements at a time, in
 * blocks of 1 << shift >= 64 elements with a factor each. Each returns how many
 * of the len elements it did; the caller does the rest.
 */
#if FA_DISPATCH
#include "q8_vbmi.h"

static int fa_byte_tables_enabled = 1;

FA_INLINE int fa_byte_tables(void)
{
    return fa_byte_tables_enabled && __builtin_cpu_supports("avx512vbmi") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
}

FA_INLINE size_t fa_q8_decode_bulk(const fa_qmap *q, size_t len, unsigned shift,
                                   const uint8_t *codes, const float *absmax, float *out)
{
    if (shift < 6 || !fa_byte_tables())
        return 0;
    fa_q8_decode_vbmi(q, len & ~(size_t)63, shift, codes, absmax, out);
    return len & ~(size_t)63;
}

FA_INLINE size_t fa_q8_encode_bulk(const fa_qmap *q, size_t len, unsigned shift, const float *x,
                                   const float *scale, uint8_t *codes, int stochastic,
                                   uint32_t counter, int high)
{
    if (shift < 6 || !fa_byte_tables())
        return 0;
    fa_q8_encode_vbmi(q, len & ~(size_t)63, shift, x, scale, codes, stochastic, counter, high);
    return len & ~(size_t)63;
}
#else
#define fa_byte_tables() 0
#define fa_q8_decode_bulk(q, len, shift, codes, absmax, out) ((size_t)0)
#define fa_q8_encode_bulk(q, len, shift, x, scale, codes, stochastic, counter, high) ((size_t)0)
#endif

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

const fa_kernel fa_kernels[FA_NUM_ALGOS][FA_NUM_DTYPES] = {
    [FA_ADAM] = FA_BOTH(adam),
    [FA_SGD] = FA_BOTH(sgd),
    [FA_RMSPROP] = FA_BOTH(rmsprop),
    [FA_ADAGRAD] = FA_BOTH(adagrad),
    [FA_ADAMAX] = FA_BOTH(adamax),
    [FA_LION] = FA_BOTH(lion),
    [FA_NADAM] = FA_BOTH(nadam),
    [FA_RADAM] = FA_BOTH(radam),
    [FA_TRAFFIC] = FA_BOTH(traffic),
};

const fa_search_kernel fa_any_nonfinite_kernels[FA_NUM_DTYPES] = FA_BOTH(any_nonfinite);

const fa_compressed_table *const fa_compressed_kernels[FA_NUM_ALGOS] = {
    [FA_ADAM] = &fa_adam_compressed_table,
};

/* param and grad, then the state buffers each kernel reads unconditionally (fastadam.h). */
#define FA_BUFS(n) ((1U << (n)) - 1U)

static const unsigned fa_required[FA_NUM_ALGOS] = {
    [FA_ADAM] = FA_BUFS(4),    /* exp_avg, exp_avg_sq; max_exp_avg_sq optional */
    [FA_SGD] = FA_BUFS(2),     /* momentum_buffer optional                     */
    [FA_RMSPROP] = FA_BUFS(3), /* square_avg; grad_avg, momentum_buffer optional */
    [FA_ADAGRAD] = FA_BUFS(3),
    [FA_ADAMAX] = FA_BUFS(4),
    [FA_LION] = FA_BUFS(3),
    [FA_NADAM] = FA_BUFS(4),
    [FA_RADAM] = FA_BUFS(4),
    [FA_TRAFFIC] = FA_BUFS(4),
};

unsigned fa_required_buffers(fa_algo algo)
{
    return algo >= 0 && algo < FA_NUM_ALGOS ? fa_required[algo] : 0U;
}

int fa_has_compressed(fa_algo algo)
{
    return algo >= 0 && algo < FA_NUM_ALGOS && fa_compressed_kernels[algo] != NULL;
}

/* Whether any of n bfloat16 values is NaN or infinite (all exponent bits set). */
FA_KERNEL int fa_any_nonfinite_bf16_kernel(size_t n, const void *values)
{
    const uint16_t *FA_RESTRICT x = values;
    int found = 0;

    for (size_t i = 0; i < n; i++)
        found |= (x[i] & 0x7f80U) == 0x7f80U;
    return found;
}

const fa_search_kernel fa_any_nonfinite_bf16 = fa_any_nonfinite_bf16_kernel;

void fa_q8_encode(const fa_qmap *q, const float *x, size_t n, uint8_t *codes)
{
    /* one block of every element, scale 1 */
    for (size_t i = fa_q8_encode_bulk(q, n, 63, x, (const float[]){1.0f}, codes, 0, 0, 0); i < n;
         i++)
        codes[i] = (uint8_t)fa_q8_code(q, x[i], 0, 0);
}

void fa_qmap_init(fa_qmap *q)
{
    for (int i = 0; i < 256; i++)
        for (int k = 0; k < 4; k++) {
            q->value_planes[k][i] = (uint8_t)(fa_bits(q->value[i]) >> 8 * k);
            for (int s = 0; s < 2; s++)
                for (int t = 0; t < 2; t++)
                    q->search[s].planes[t][k][i] = (uint8_t)(q->search[s].bucket[t][i] >> 8 * k);
        }
}

uint32_t fa_rounding_key(uint32_t seed, uint64_t tensor, uint64_t step)
{
    uint32_t h = fa_hash32((uint32_t)(step >> 32));
    h = fa_hash32(h ^ (uint32_t)step);
    h = fa_hash32(h ^ (uint32_t)(tensor >> 32));
    h = fa_hash32(h ^ (uint32_t)tensor);
    return fa_hash32(h ^ seed);
}

const char *fa_simd_level(void)
{
#if FA_DISPATCH
    /* The same order of preference as the target_clones resolver. */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4"))
        return "avx512";
    if (__builtin_cpu_supports("avx2"))
        return "avx2";
#endif
    return "baseline";
}

const char *fa_q8_lookups(void)
{
    return fa_byte_tables() ? "byte tables (avx512vbmi)" : "loads";
}

void fa_q8_set_byte_tables(int enable)
{
#if FA_DISPATCH
    fa_byte_tables_enabled = enable;
#else
    (void)enable;
#endif
}
