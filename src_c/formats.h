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
 * the same, 64 codes at a time.)
 */
FA_INLINE uint32_t fa_q8_code(const fa_qmap *q, float x, const int stochastic, uint32_t random16)
{
    const uint32_t u = fa_bits(x), a = u & 0x7fffffffU, negative = u >> 31, zero = q->zero;
    const uint32_t top = 255 - zero - negative * (255 - 2 * zero); /* largest rank of x's sign */
    uint32_t rank = fa_q8_count(&q->search[stochastic != 0], a);
    rank = rank < top ? rank : top;
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

#endif /* FASTADAM_FORMATS_H */
