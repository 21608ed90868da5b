/*
 * The baseline level: every kernel compiled for the instruction set the
 * compiler's flags give (SSE2 on x86-64, NEON on aarch64, any CPU elsewhere).
 * Where this build dispatches at run time (compat.h), kernels_<level>.c add
 * the same kernels for more instruction sets; dispatch.c picks one.
 */
#include "compat.h"

#define FA_LEVEL_VAR fa_level_baseline
#define FA_LEVEL_NAME FA_BASELINE_NAME
#define FA_LEVEL_ATTRIBUTES
#define FA_LEVEL_BYTE_TABLES FA_BASELINE_BYTE_TABLES
#define FA_LEVEL_LATTICE FA_BASELINE_LATTICE
#include "level_impl.h"
