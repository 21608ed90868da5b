/*
 * Conversions between float and the compressed formats, element by element,
 * written with integer operations on the bits so that every instruction set
 * computes the same bits. Included by level_impl.h and dispatch.c, which define FA_INLINE.
 */
#ifndef FASTADAM_FORMATS_H
#define FASTADAM_FORMATS_H

#include <stdint.h>
#include <string.h>

#include "fastadam.h"

FA_INLINE uint32_t fa_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

FA_INLINE float fa_float(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* A 32-bit integer hash (lowbias32, C. Wellons): a bijection with good avalanche. */
FA_INLINE uint32_t fa_hash32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

/* bfloat16 (the top half of a float32's bits) to float: exact. */
FA_INLINE float fa_bf16_load(uint16_t h)
{
    return fa_float((uint32_t)h << 16);
}

/*
 * float to bfloat16: add a rounding increment to the 16 bits that are dropped,
 * then truncate. Nearest-even adds 0x7fff plus the lowest kept bit; stochastic
 * adds 16 random bits, rounding up with probability (dropped bits) / 2^16, so
 * the expected result is x. NaN stays a (quiet) NaN.
 */
FA_INLINE uint16_t fa_bf16_round(float x, const int stochastic, uint32_t random16)
{
    const uint32_t u = fa_bits(x);
    const uint32_t add = stochastic ? random16 : 0x7fffU + ((u >> 16) & 1U);
    return (uint16_t)((x != x ? u | 0x400000U : u + add) >> 16);
}

/*
 * The number of thresholds of search s below a = bits(|x|) (fa_qsearch). Table
 * indices are int32_t, so that vector gathers take 16 at a time.
 */
FA_INLINE uint32_t fa_q8_count(const fa_qsearch *s, uint32_t a)
{
    const uint32_t e = a >> 23, m = a & 0x7fffffU;
    const uint32_t binade = s->binade[(int32_t)(e < 96 ? 0 : e - 96 > 31 ? 31 : e - 96)];
    const int32_t b = (int32_t)((binade & 0xffffU) + (m >> (binade >> 16)));
    const uint32_t entry = s->bucket[0][b];
    return (entry & 0xffU) + (m > entry >> 8) + (m > s->bucket[1][b]);
}

/*
 * The same count by arithmetic (fastadam.h: fa_qlattice), which the vector
 * encoders compute with the same operations in the same order.
 *
 * Why it is exact: in region d, with k = first[d] + j, the count is k + (a > T_k)
 * whenever T_{k-1} < a <= T_{k+1} (the bounds of the region stand for the
 * thresholds just outside it; the last region's count is first + 1). The candidate j = round((a - origin) * inverse),
 * clamped to [0, span], never decreases as a grows (each float operation rounds
 * monotonically, and round adds 1.5 * 2^23 to keep the integer part in the low
 * bits). So it suffices that each threshold T_k of the region has a candidate of
 * at most j and the next float above it one of at least j: an a with candidate j
 * then lies above T_{k-1} and at most at T_{k+1}. fa_qmap_init checks this and the
 * corrections for every threshold, and keeps exact = 0 if any fails. The dynamic
 * map's thresholds are evenly spaced within each decade, so the candidate is off by
 * far less than the half spacing this allows.
 */
FA_INLINE int32_t fa_q8_lattice_candidate(const fa_qlattice *l, int d, uint32_t a)
{
    const float t = (fa_float(a) - l->origin[d]) * l->inverse[d];
    const int32_t j = (int32_t)(fa_bits(t + 12582912.0f) - 0x4b400000U);
    return j < 0 ? 0 : j > l->span[d] ? l->span[d] : j;
}

/* T_k for candidate j of region d: its lattice point plus its correction. */
FA_INLINE uint32_t fa_q8_lattice_threshold(const fa_qlattice *l, int d, int32_t j)
{
    const uint32_t k = (uint32_t)(l->first[d] + j);
    const float e = (float)j * l->step[d] + l->origin[d];
    return fa_bits(e) + (l->correction[k >> 4] >> 2 * (k & 15) & 3U) - 1U;
}

/* fa_q8_count by the lattice of its search. */
FA_INLINE uint32_t fa_q8_lattice_count(const fa_qlattice *l, uint32_t a)
{
    int d = 0;
    for (int i = 0; i < 7; i++)
        d += a > l->bound[i];
    const int32_t j = fa_q8_lattice_candidate(l, d, a);
    return (uint32_t)(l->first[d] + j) + (a > fa_q8_lattice_threshold(l, d, j));
}

/* The end of the block of 1 << shift elements that holds element i, at most len. */
FA_INLINE size_t fa_block_end(size_t i, unsigned shift, size_t len)
{
    const size_t end = ((i >> shift) + 1) << shift;
    return end < len ? end : len;
}

/* The magnitude of value[code]. */
FA_INLINE float fa_q8_magnitude(const fa_qmap *q, uint32_t code)
{
    return fa_float(fa_bits(q->value[(int32_t)code]) & 0x7fffffffU);
}

/*
 * The 8-bit code of x (a state value divided by its block's absmax, so |x| <= 1
 * up to rounding) under map q: the nearest code, ties to the smaller magnitude,
 * or with stochastic rounding one of the two codes around x, the upper with
 * probability (|x| - lower) / (upper - lower). A nonzero x never gets code zero
 * (nor the other sign): it gets at least the smallest code of its sign. NaN gets
 * the largest code, so its block's NaN absmax spreads. (src_c/q8_vbmi.h computes
 * the same, 64 codes at a time.) fa_q8_code_counted takes the count of
 * thresholds below |x| (fa_q8_count) as given.
 */
FA_INLINE uint32_t fa_q8_code_counted(const fa_qmap *q, float x, uint32_t count,
                                      const int stochastic, uint32_t random16)
{
    const uint32_t u = fa_bits(x), a = u & 0x7fffffffU, negative = u >> 31, zero = q->zero;
    const uint32_t top = 255 - zero - negative * (255 - 2 * zero); /* largest rank of x's sign */
    uint32_t rank = count < top ? count : top;
    if (stochastic) {
        /* rank is the magnitude at or below |x|: round up to the next with its probability */
        const uint32_t upper = rank < top ? rank + 1 : rank;
        const float lo = fa_q8_magnitude(q, zero + rank), hi = fa_q8_magnitude(q, zero + upper);
        const float r = (float)random16 * (1.0f / 65536.0f);
        rank = r * (hi - lo) < fa_float(a) - lo ? upper : rank;
    }
    rank |= (uint32_t)(rank == 0) & (uint32_t)(a != 0);
    rank = rank < top ? rank : top;
    return zero + (rank ^ -negative) + negative; /* zero -/+ rank, without a branch */
}

FA_INLINE uint32_t fa_q8_code(const fa_qmap *q, float x, const int stochastic, uint32_t random16)
{
    const uint32_t a = fa_bits(x) & 0x7fffffffU;
    return fa_q8_code_counted(q, x, fa_q8_count(&q->search[stochastic != 0], a), stochastic,
                              random16);
}

#endif /* FASTADAM_FORMATS_H */
