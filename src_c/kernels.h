/* Internal: the kernel types and the levels, shared by kernels*.c, dispatch.c and run.c. */
#ifndef FASTADAM_KERNELS_H
#define FASTADAM_KERNELS_H

#include "compat.h"
#include "fastadam.h"

/* Update n elements of the buffers, reading coefficients k. */
typedef void (*fa_kernel)(size_t n, void *const *buf, const double *k);

/* Whether any of n values is NaN or infinite. */
typedef int (*fa_search_kernel)(size_t n, const void *values);

/* Elements of a block of 8-bit state: at most this many (a power of two). */
#define FA_MAX_BLOCK 2048

/* Update elements [begin, begin + n) of a compressed tensor (8-bit: begin on a block boundary). */
typedef void (*fa_compressed_kernel)(const fa_tensor *t, size_t begin, size_t n);

/* One algorithm's compressed kernels, indexed [param store][grad store][state store]. */
typedef fa_compressed_kernel fa_compressed_table[2][2][FA_NUM_STORES];

/*
 * Every kernel compiled for one instruction-set level (level_impl.h, included
 * once per level by kernels*.c). All levels compute the same bits.
 */
typedef struct {
    const char *name; /* as fa_simd_level gives it */
    fa_kernel kernels[FA_NUM_ALGOS][FA_NUM_DTYPES];
    fa_search_kernel any_nonfinite[FA_NUM_DTYPES];
    fa_search_kernel any_nonfinite_bf16;
    const fa_compressed_table *compressed[FA_NUM_ALGOS]; /* NULL: no compressed formats */
    void (*q8_encode)(const fa_qmap *q, const float *x, size_t n, uint8_t *codes);
    int byte_tables; /* whether its 8-bit kernels have the AVX-512 VBMI lookups */
    int lattice;     /* whether its 8-bit encoder has the AVX2 lattice */
} fa_level;

extern const fa_level fa_level_baseline, fa_level_avx2, fa_level_avx512, fa_level_sve;

/*
 * The level fa_run calls (dispatch.c): the best this CPU runs, or the one the
 * environment variable FASTADAM_SIMD names if the CPU runs it. Set once, as the
 * library loads.
 */
extern const fa_level *fa_active_level;

/* The levels of this build, best first, and whether this CPU runs level. */
extern const fa_level *const fa_levels[];
extern const size_t fa_num_levels;
int fa_level_supported(const fa_level *level);

/* Whether the 8-bit kernels may use byte tables: the CPU has VBMI and tests allow it. */
extern int fa_byte_tables_enabled;

#endif /* FASTADAM_KERNELS_H */
