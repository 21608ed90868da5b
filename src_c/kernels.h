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

#endif /* FASTADAM_KERNELS_H */
