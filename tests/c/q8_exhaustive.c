/*
 * Every float32 through the 8-bit encoders. For each map (signed, unsigned) and
 * rounding (nearest, stochastic), each vector encoder this CPU runs (the AVX2
 * lattice, q8_avx2.h; the AVX-512 VBMI byte tables, q8_vbmi.h) encodes all 2^32
 * bit patterns, and every code must be the one of the scalar fa_q8_code of
 * formats.h: the table search, which the Python tests check against a brute-force
 * search over the map. Stochastic rounding draws element i's random bits from its
 * counter i, as the kernels do. It also checks the lattice's scalar count
 * (fa_q8_lattice_count) against the table search for every magnitude.
 * tests/test_q8_exhaustive.py builds it (x86-64 with AVX2, -mavx2) and writes the
 * maps.
 *
 * Input: the signed and the unsigned map as tests/c/golden.c reads them (value[256]
 * f32, zero u32, then per search binade[32] u32, bucket[2][256] u32).
 *
 *     q8_exhaustive MAPS
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compat.h"
#include "fastadam.h"

#define FA_INLINE static inline
#include "formats.h"
#include "q8_avx2.h"
#if FA_GNU && defined(__x86_64__)
#include "q8_vbmi.h"
#endif

#define CHUNK ((size_t)1 << 16) /* floats per task, a multiple of 64 */

typedef void encoder(const fa_qmap *q, size_t len, unsigned shift, const float *x,
                     const float *scale, uint8_t *codes, int stochastic, uint32_t counter,
                     int high);

static void fail(const char *what)
{
    fprintf(stderr, "q8_exhaustive: %s\n", what);
    exit(1);
}

static void read_map(FILE *f, fa_qmap *q)
{
    int ok = fread(q->value, sizeof q->value, 1, f) == 1 && fread(&q->zero, 4, 1, f) == 1;
    for (int s = 0; s < 2; s++)
        ok = ok && fread(q->search[s].binade, sizeof q->search[s].binade, 1, f) == 1 &&
             fread(q->search[s].bucket, sizeof q->search[s].bucket, 1, f) == 1;
    if (!ok)
        fail("the maps end early");
    fa_qmap_init(q);
}

static int printed; /* mismatches reported so far */

static void report(const char *what, uint32_t bits, unsigned got, unsigned want)
{
#pragma omp critical
    if (printed < 10) {
        printed++;
        fprintf(stderr, "  0x%08x: %s %u, the table search gives %u\n", (unsigned)bits, what, got,
                want);
    }
}

/* The number of i with got[i] != want[i] (element i of bits start + i), the first reported. */
static size_t differences(const char *what, uint32_t start, const uint32_t *got,
                          const uint32_t *want)
{
    size_t n = 0;

    for (size_t i = 0; i < CHUNK; i++)
        n += got[i] != want[i];
    for (size_t i = 0; n && i < CHUNK; i++)
        if (got[i] != want[i])
            report(what, start + (uint32_t)i, got[i], want[i]);
    return n;
}

/*
 * The magnitudes [base, base + CHUNK) (as bits) under search s of map q: their
 * counts by the AVX2 lattice and by the table search (fa_q8_count), then the codes
 * of both signs by encode and by fa_q8_code_counted with the table's count (that
 * is, fa_q8_code). Element x of bits p draws the random bits of counter p. The
 * number of counts and codes that differ.
 */
static size_t check_chunk(const fa_qmap *q, const fa_avx2_lattice *l, encoder *encode,
                          int stochastic, uint32_t base)
{
    static const float one = 1.0f;
    const fa_qsearch *s = &q->search[stochastic];
    uint32_t got[CHUNK], want[CHUNK], code[CHUNK];
    float x[CHUNK];
    uint8_t codes[CHUNK];
    size_t wrong = 0;

    for (size_t i = 0; i < CHUNK; i += 32) {
        __m256i a[4], count[4];
        for (int v = 0; v < 4; v++)
            a[v] = _mm256_add_epi32(_mm256_set1_epi32((int)(base + (uint32_t)i) + 8 * v),
                                    _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        fa_avx2_count(l, a, count);
        for (int v = 0; v < 4; v++)
            _mm256_storeu_si256((__m256i *)(got + i + 8 * v), count[v]);
    }
    for (size_t i = 0; i < CHUNK; i++)
        want[i] = fa_q8_count(s, base + (uint32_t)i);
    wrong += differences("count", base, got, want);
    for (uint32_t sign = 0; sign < 2; sign++) {
        const uint32_t start = base | sign << 31;
        for (size_t i = 0; i < CHUNK; i++)
            x[i] = fa_float(start + (uint32_t)i);
        encode(q, CHUNK, 63, x, &one, codes, stochastic, start, 0);
        for (size_t i = 0; i < CHUNK; i++) {
            const uint32_t r = fa_hash32(start + (uint32_t)i) & 0xffffU;
            code[i] = fa_q8_code_counted(q, x[i] * one, want[i], stochastic, r);
            got[i] = codes[i];
        }
        wrong += differences("code", start, got, code);
    }
    return wrong;
}

/* Every magnitude, of both signs, through search s of map q and encode. */
static size_t check(const fa_qmap *q, encoder *encode, int stochastic)
{
    const fa_avx2_lattice l = fa_avx2_lattice_load(&q->search[stochastic].lattice);
    size_t wrong = 0;

#pragma omp parallel for schedule(dynamic, 64) reduction(+ : wrong)
    for (long c = 0; c < (long)(0x80000000U / CHUNK); c++)
        wrong += check_chunk(q, &l, encode, stochastic, (uint32_t)c * (uint32_t)CHUNK);
    return wrong;
}

static void encode_avx2(const fa_qmap *q, size_t len, unsigned shift, const float *x,
                        const float *scale, uint8_t *codes, int stochastic, uint32_t counter,
                        int high)
{
    fa_q8_encode_avx2(q, len, shift, x, scale, codes, stochastic, counter, high);
}

#if FA_GNU && defined(__x86_64__)
static void encode_vbmi(const fa_qmap *q, size_t len, unsigned shift, const float *x,
                        const float *scale, uint8_t *codes, int stochastic, uint32_t counter,
                        int high)
{
    fa_q8_encode_vbmi(q, len, shift, x, scale, codes, stochastic, counter, high);
}
#endif

static double seconds(void)
{
    struct timespec t;
    timespec_get(&t, TIME_UTC);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    static fa_qmap maps[2];
    const char *names[2] = {"signed", "unsigned"}, *rounding[2] = {"nearest", "stochastic"};
    struct {
        const char *name;
        encoder *encode;
        int runs;
    } encoders[2] = {{"avx2 lattice", encode_avx2, 1}, {"vbmi byte tables", NULL, 0}};
    size_t wrong = 0;
    FILE *f;

    if (argc != 2 || (f = fopen(argv[1], "rb")) == NULL)
        fail("usage: q8_exhaustive MAPS");
    read_map(f, &maps[0]);
    read_map(f, &maps[1]);
    fclose(f);
#if FA_GNU && defined(__x86_64__)
    __builtin_cpu_init();
    encoders[1].encode = encode_vbmi;
    encoders[1].runs = FA_CPU_HAS_VBMI();
#endif
    for (int m = 0; m < 2; m++)
        for (int s = 0; s < 2; s++) {
            if (!maps[m].search[s].lattice.exact)
                fail("a dynamic map has no exact lattice");
            for (int e = 0; e < 2; e++)
                if (encoders[e].runs) {
                    const double start = seconds();
                    const size_t n = check(&maps[m], encoders[e].encode, s);
                    printf("%s map, %s: %s, %zu wrong counts and codes (%.1f s)\n", names[m],
                           rounding[s], encoders[e].name, n, seconds() - start);
                    fflush(stdout);
                    wrong += n;
                }
        }
    return wrong != 0;
}
