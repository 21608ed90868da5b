/*
 * The AVX2 level (x86-64 with run-time dispatch, compat.h): level_impl.h for AVX2,
 * with the 8-bit encoder's lattice (q8_avx2.h).
 */
#include "compat.h"

#if FA_DISPATCH_X86
#define FA_LEVEL_VAR fa_level_avx2
#define FA_LEVEL_NAME "avx2"
#define FA_LEVEL_ATTRIBUTES FA_TARGET(FA_ISA_AVX2)
#define FA_LEVEL_BYTE_TABLES 0
#define FA_LEVEL_LATTICE 1
#include "level_impl.h"
#else
typedef int fa_no_avx2_level; /* ISO C wants a declaration in every file */
#endif
