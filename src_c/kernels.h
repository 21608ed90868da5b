/* Internal: the kernel table shared by kernels.c and run.c. */
#ifndef FASTADAM_KERNELS_H
#define FASTADAM_KERNELS_H

#include "fastadam.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(FA_NO_DISPATCH)
#define FA_DISPATCH 1
#else
#define FA_DISPATCH 0
#endif

/* Update n elements of the buffers, reading coefficients k. */
typedef void (*fa_kernel)(size_t n, void *const *buf, const double *k);

extern const fa_kernel fa_kernels[FA_NUM_ALGOS][FA_NUM_DTYPES];

/* Whether any of n values is NaN or infinite. */
typedef int (*fa_search_kernel)(size_t n, const void *values);

extern const fa_search_kernel fa_any_nonfinite_kernels[FA_NUM_DTYPES];
extern const fa_search_kernel fa_any_nonfinite_bf16;

/* Elements of a block of 8-bit state: at most this many (a power of two). */
#define FA_MAX_BLOCK 2048

/* Update elements [begin, begin + n) of a compressed tensor (8-bit: begin on a block boundary). */
typedef void (*fa_compressed_kernel)(const fa_tensor *t, size_t begin, size_t n);

/* One algorithm's compressed kernels, indexed [param store][grad store][state store]. */
typedef fa_compressed_kernel fa_compressed_table[2][2][FA_NUM_STORES];

/* NULL for the algorithms without compressed formats. */
extern const fa_compressed_table *const fa_compressed_kernels[FA_NUM_ALGOS];

#endif /* FASTADAM_KERNELS_H */
