/*
 * The SVE level (aarch64 Linux with run-time dispatch, compat.h): level_impl.h
 * for SVE, vector-length agnostic, chosen where the kernel reports SVE
 * (HWCAP_SVE); the baseline is NEON.
 */
#include "compat.h"

#if FA_DISPATCH_SVE
#define FA_LEVEL_VAR fa_level_sve
#define FA_LEVEL_NAME "sve"
#define FA_LEVEL_ATTRIBUTES FA_TARGET(FA_ISA_SVE)
#define FA_LEVEL_BYTE_TABLES 0
#define FA_LEVEL_LATTICE 0
#include "level_impl.h"
#else
typedef int fa_no_sve_level; /* ISO C wants a declaration in every file */
#endif
