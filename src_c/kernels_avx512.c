/*
 * The AVX-512 level (x86-64 with run-time dispatch, compat.h): level_impl.h for
 * x86-64-v4, with the 8-bit kernels' VBMI byte tables (q8_vbmi.h) where the CPU
 * has VBMI, else the encoder's AVX2 lattice (q8_avx2.h).
 */
#include "compat.h"

#if FA_DISPATCH_X86
#define FA_LEVEL_VAR fa_level_avx512
#define FA_LEVEL_NAME "avx512"
#define FA_LEVEL_ATTRIBUTES FA_TARGET(FA_ISA_AVX512)
#define FA_LEVEL_BYTE_TABLES 1
#define FA_LEVEL_LATTICE 1
#include "level_impl.h"
#else
typedef int fa_no_avx512_level; /* ISO C wants a declaration in every file */
#endif
