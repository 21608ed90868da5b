/*
 * Coverage for atheris under a preloaded AddressSanitizer (.ci/sanitize).
 *
 * atheris registers its Python coverage counters with libFuzzer, which its
 * core module links in, through SanitizerCoverage's entry points
 * (__sanitizer_cov_8bit_counters_init, __sanitizer_cov_pcs_init) and reports
 * comparisons through __sanitizer_cov_trace_cmp*. libasan, preloaded first,
 * defines the same symbols (weak, for its own coverage tool), and the dynamic
 * linker binds atheris' calls to the first definition it finds: libasan's. The
 * fuzzer then runs without feedback. Preloaded before libasan (with
 * ASAN_OPTIONS=verify_asan_link_order=0), this library defines them first and
 * forwards each call to the definition in atheris' core module, found among the
 * loaded libraries at the first call.
 *
 *   gcc -shared -fPIC -O2 -o asan_coverage.so tests/fuzz/asan_coverage.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int find_core(struct dl_phdr_info *info, size_t size, void *out)
{
    (void)size;
    if (strstr(info->dlpi_name, "atheris/core_with_libfuzzer") == NULL)
        return 0;
    *(void **)out = dlopen(info->dlpi_name, RTLD_LAZY | RTLD_NOLOAD);
    return 1;
}

/* The definition of name in atheris' core module; aborts if it is not loaded. */
static void *forward(const char *name)
{
    void *core = NULL;
    void *symbol;

    dl_iterate_phdr(find_core, &core);
    symbol = core == NULL ? NULL : dlsym(core, name);
    if (symbol == NULL) {
        fprintf(stderr, "asan_coverage: no %s in atheris/core_with_libfuzzer\n", name);
        abort();
    }
    return symbol;
}

#define FORWARD(name, params, args)                                                            \
    void name params                                                                           \
    {                                                                                          \
        static void(*target) params;                                                           \
        if (target == NULL)                                                                    \
            *(void **)&target = forward(#name);                                                \
        target args;                                                                           \
    }

FORWARD(__sanitizer_cov_8bit_counters_init, (uint8_t * begin, uint8_t *end), (begin, end))
FORWARD(__sanitizer_cov_pcs_init, (const uintptr_t *begin, const uintptr_t *end), (begin, end))
FORWARD(__sanitizer_cov_trace_cmp1, (uint8_t a, uint8_t b), (a, b))
FORWARD(__sanitizer_cov_trace_cmp2, (uint16_t a, uint16_t b), (a, b))
FORWARD(__sanitizer_cov_trace_cmp4, (uint32_t a, uint32_t b), (a, b))
FORWARD(__sanitizer_cov_trace_cmp8, (uint64_t a, uint64_t b), (a, b))
FORWARD(__sanitizer_cov_trace_const_cmp1, (uint8_t a, uint8_t b), (a, b))
FORWARD(__sanitizer_cov_trace_const_cmp2, (uint16_t a, uint16_t b), (a, b))
FORWARD(__sanitizer_cov_trace_const_cmp4, (uint32_t a, uint32_t b), (a, b))
FORWARD(__sanitizer_cov_trace_const_cmp8, (uint64_t a, uint64_t b), (a, b))
FORWARD(__sanitizer_cov_trace_switch, (uint64_t value, uint64_t *cases), (value, cases))
