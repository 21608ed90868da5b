/*
 * The level the kernels run at (kernels.h: fa_level), picked once as the
 * library loads, and the parts of the C interface that are the same at every
 * level: required buffers, rounding keys.
 */
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

#define FA_INLINE static inline
#include "formats.h"

/* Best first; the baseline runs everywhere. */
const fa_level *const fa_levels[] = {
#if FA_DISPATCH_X86
    &fa_level_avx512,
    &fa_level_avx2,
#endif
#if FA_DISPATCH_SVE
    &fa_level_sve,
#endif
    &fa_level_baseline,
};
const size_t fa_num_levels = sizeof fa_levels / sizeof fa_levels[0];

const fa_level *fa_active_level = &fa_level_baseline;
int fa_byte_tables_enabled = FA_BASELINE_BYTE_TABLES;

int fa_level_supported(const fa_level *level)
{
#if FA_DISPATCH_X86
    __builtin_cpu_init();
    if (level == &fa_level_avx512)
        return FA_CPU_HAS_AVX512();
    if (level == &fa_level_avx2)
        return FA_CPU_HAS_AVX2();
#endif
#if FA_DISPATCH_SVE
    if (level == &fa_level_sve)
        return FA_CPU_HAS_SVE();
#endif
    return level == &fa_level_baseline;
}

/* Whether this CPU has the AVX-512 VBMI byte permutes (and the rest that q8_vbmi.h uses). */
static int cpu_has_vbmi(void)
{
#if FA_BASELINE_BYTE_TABLES
    return 1;
#elif FA_DISPATCH_X86
    __builtin_cpu_init();
    return FA_CPU_HAS_VBMI();
#else
    return 0;
#endif
}

#if FA_DISPATCH_X86 || FA_DISPATCH_SVE
/* The best level this CPU runs, or the one FASTADAM_SIMD names if the CPU runs it. */
FA_CONSTRUCTOR static void pick_level(void)
{
    const char *wanted = getenv("FASTADAM_SIMD");
    const fa_level *best = NULL;

    for (size_t i = 0; i < fa_num_levels; i++)
        if (fa_level_supported(fa_levels[i])) {
            if (best == NULL)
                best = fa_levels[i];
            if (wanted != NULL && strcmp(wanted, fa_levels[i]->name) == 0) {
                best = fa_levels[i];
                break;
            }
        }
    fa_active_level = best;
    fa_byte_tables_enabled = cpu_has_vbmi();
}
#endif

const char *fa_simd_level(void)
{
    return fa_active_level->name;
}

const char *fa_q8_lookups(void)
{
    if (fa_active_level->byte_tables && fa_byte_tables_enabled)
        return "byte tables (avx512vbmi)";
    return fa_active_level->lattice ? "lattice (avx2)" : "loads";
}

void fa_q8_set_byte_tables(int enable)
{
    fa_byte_tables_enabled = enable && cpu_has_vbmi();
}

void fa_q8_encode(const fa_qmap *q, const float *x, size_t n, uint8_t *codes)
{
    fa_active_level->q8_encode(q, x, n, codes);
}

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
    [FA_RPROP] = FA_BUFS(4),
    [FA_TRAFFIC] = FA_BUFS(4),
};

unsigned fa_required_buffers(fa_algo algo)
{
    return algo >= 0 && algo < FA_NUM_ALGOS ? fa_required[algo] : 0U;
}

int fa_has_compressed(fa_algo algo)
{
    return algo >= 0 && algo < FA_NUM_ALGOS && fa_active_level->compressed[algo] != NULL;
}

uint32_t fa_rounding_key(uint32_t seed, uint64_t tensor, uint64_t step)
{
    uint32_t h = fa_hash32((uint32_t)(step >> 32));
    h = fa_hash32(h ^ (uint32_t)step);
    h = fa_hash32(h ^ (uint32_t)(tensor >> 32));
    h = fa_hash32(h ^ (uint32_t)tensor);
    return fa_hash32(h ^ seed);
}
