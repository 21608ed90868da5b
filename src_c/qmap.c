/*
 * The tables each 8-bit map derives from its values and searches (fastadam.h:
 * fa_qmap), built once as the map is set: the byte planes of the VBMI lookups,
 * and the lattices of the search by arithmetic, each checked against the table
 * search threshold by threshold before it is used (formats.h says why that
 * suffices).
 */
#include <string.h>

#include "kernels.h"

#define FA_INLINE static inline
#include "formats.h"

/* Threshold k of search s: the largest magnitude (bits) with at most k thresholds below it. */
static uint32_t threshold(const fa_qsearch *s, uint32_t k)
{
    uint32_t lo = 0, hi = 0x7f800000U; /* count(lo) <= k < count(hi) = count(infinity) */

    while (hi - lo > 1) {
        const uint32_t mid = lo + (hi - lo) / 2;
        if (fa_q8_count(s, mid) <= k)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* The number of powers of ten 10^-k, k = 0 .. 45, at or below x: magnitudes of one decade share it. */
static int decade(float x)
{
    int n = 0;
    double scale = 1.0; /* 10^k, exact up to 10^22 */

    for (int k = 0; k < 46; k++, scale *= 10)
        n += (double)x * scale >= 1.0;
    return n;
}

/*
 * Region d of lattice l: its thresholds t[lo..hi] (or its upper bound alone), their
 * lattice and corrections; 0 if a correction is out of range or a candidate is off.
 */
static int fit_region(fa_qlattice *l, int d, const uint32_t *t, int32_t lo, int32_t hi)
{
    const int32_t span = hi - lo;
    const float origin = fa_float(t[lo]);
    const float step = span ? (float)(((double)fa_float(t[hi]) - origin) / span) : 0.0f;

    l->first[d] = lo;
    l->span[d] = span;
    l->origin[d] = origin;
    l->step[d] = step;
    l->inverse[d] = span ? 1.0f / step : 0.0f;
    for (int32_t j = 0; j <= span; j++) {
        const uint32_t k = (uint32_t)(lo + j);
        const int64_t c = (int64_t)t[k] - fa_bits((float)j * step + origin) + 1;
        if (c < 0 || c > 3)
            return 0;
        l->correction[k >> 4] |= (uint32_t)c << 2 * (k & 15);
    }
    for (int32_t j = 0; j <= span; j++) {
        const uint32_t tk = t[lo + j];
        if (fa_q8_lattice_threshold(l, d, j) != tk || fa_q8_lattice_candidate(l, d, tk) > j ||
            fa_q8_lattice_candidate(l, d, tk + 1) < j)
            return 0;
    }
    return 1;
}

/*
 * The lattice of search s of map q: its bounds are the thresholds between
 * magnitudes of different decades, 0 counting as of the smallest magnitude's
 * (seven for the dynamic maps: seven decades, then 1). 0 if the thresholds do
 * not fit.
 */
static int fit_lattice(fa_qlattice *l, const fa_qmap *q, const fa_qsearch *s)
{
    uint32_t t[256];
    int32_t bound[7];
    const uint32_t total = fa_q8_count(s, 0x7f800000U);
    int n = 0;

    if (total != 255 - q->zero)
        return 0;
    for (uint32_t k = 0; k < total; k++) {
        t[k] = threshold(s, k);
        if (k > 0 && decade(fa_q8_magnitude(q, q->zero + k)) !=
                         decade(fa_q8_magnitude(q, q->zero + k + 1))) {
            if (n == 7)
                return 0;
            bound[n] = (int32_t)k;
            l->bound[n++] = t[k];
        }
    }
    if (n != 7 || bound[6] != (int32_t)total - 1)
        return 0;
    for (int d = 0; d < 7; d++) {
        const int32_t lo = d ? bound[d - 1] + 1 : 0, hi = bound[d] - 1;
        if (!fit_region(l, d, t, hi < lo ? bound[d] : lo, hi < lo ? bound[d] : hi))
            return 0;
    }
    return fit_region(l, 7, t, bound[6], bound[6]); /* above every threshold */
}

void fa_qmap_init(fa_qmap *q)
{
    for (int i = 0; i < 256; i++)
        for (int k = 0; k < 4; k++) {
            q->value_planes[k][i] = (uint8_t)(fa_bits(q->value[i]) >> 8 * k);
            for (int s = 0; s < 2; s++)
                for (int t = 0; t < 2; t++)
                    q->search[s].planes[t][k][i] = (uint8_t)(q->search[s].bucket[t][i] >> 8 * k);
        }
    for (int s = 0; s < 2; s++) {
        fa_qlattice *l = &q->search[s].lattice;
        memset(l, 0, sizeof *l);
        l->exact = fit_lattice(l, q, &q->search[s]);
    }
}
