/*
 * Conversions between float and the compressed formats, element by element,
 * written with integer operations on the bits so that every instruction set
 * computes the same bits. Included by the kernel files, which define FA_INLINE.
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
    const uint32_t rounded = (u + add) >> 16;
    return (uint16_t)((u & 0x7fffffffU) > 0x7f800000U ? (u >> 16) | 0x40U : rounded);
}

/*
 * The 8-bit code of x (a state value divided by its block's absmax, so |x| <= 1
 * up to rounding) under a map (fa_qmap's fields, passed apart so that the
 * caller's loop keeps them in registers): the nearest code, ties to the smaller
 * magnitude, or with stochastic rounding one of the two codes around x, the
 * upper with probability (|x| - lower) / (upper - lower). A nonzero x never
 * gets code zero (nor the other sign): it gets at least the smallest code of
 * its sign. NaN gets the largest code, so its block's NaN absmax spreads.
 */
FA_INLINE uint32_t fa_q8_code(const uint32_t *bucket, const float *value, uint32_t first,
                              uint32_t nbuckets, uint32_t zero, float x, const int stochastic,
                              uint32_t random16)
{
    const uint32_t u = fa_bits(x), a = u & 0x7fffffffU, negative = u >> 31;
    const uint32_t b = a >> 15;
    const uint32_t lo = b < first ? 0 : b - first;
    /* (int32_t): 32-bit indices, so that vector gathers take 16 at a time */
    const uint32_t entry = bucket[(int32_t)(lo < nbuckets ? lo : nbuckets - 1)];
    const uint32_t top = 255 - zero - negative * (255 - 2 * zero); /* largest rank of x's sign */
    uint32_t rank = (entry & 0xffffU) + ((a & 0x7fffU) > (entry >> 16));
    rank = rank < top ? rank : top;
    if (stochastic) {
        /* The magnitudes of the two codes around |x|: rank and its neighbour on |x|'s side. */
        const float mag = fa_float(a);
        const float at = fa_float(fa_bits(value[(int32_t)(zero + rank)]) & 0x7fffffffU);
        const uint32_t below = mag < at;
        const uint32_t lower = rank - below;
        const uint32_t upper = lower < top ? lower + 1 : lower;
        const uint32_t other_code = zero + (below ? lower : upper);
        const float other = fa_float(fa_bits(value[(int32_t)other_code]) & 0x7fffffffU);
        const float lo_mag = below ? other : at;
        const float hi_mag = below ? at : other;
        const float r = (float)random16 * (1.0f / 65536.0f);
        rank = r * (hi_mag - lo_mag) < mag - lo_mag ? upper : lower;
    }
    rank |= (uint32_t)(rank == 0) & (uint32_t)(a != 0);
    rank = rank < top ? rank : top;
    return zero + (rank ^ -negative) + negative; /* zero -/+ rank, without a branch */
}

#endif /* FASTADAM_FORMATS_H */
