/*
 * The 8-bit format's encoder with AVX2, 8 elements a vector: fa_q8_code of
 * formats.h, its search by the lattice (fa_q8_lattice_count) rather than the
 * bucket tables, so that nearest rounding needs no gather: the lattice's rows
 * and corrections are eight 32-bit entries a vector, looked up with vpermd.
 * Stochastic rounding still gathers the two magnitudes around each value.
 * Included by the AVX2 and AVX-512 levels; their kernels call it where the
 * map's lattice is exact, and compute any remainder of fewer than 32 elements
 * with formats.h.
 */
#include <immintrin.h>

/* The lattice of one search, in registers (first | span << 16: one lookup for both). */
typedef struct {
    __m256i bound[7], first_span, correction[2];
    __m256 origin, step, inverse;
} fa_avx2_lattice;

FA_INLINE fa_avx2_lattice fa_avx2_lattice_load(const fa_qlattice *l)
{
    fa_avx2_lattice v;

    for (int i = 0; i < 7; i++)
        v.bound[i] = _mm256_set1_epi32((int)l->bound[i]);
    v.first_span = _mm256_or_si256(_mm256_loadu_si256((const __m256i *)l->first),
                                   _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)l->span), 16));
    v.correction[0] = _mm256_loadu_si256((const __m256i *)l->correction);
    v.correction[1] = _mm256_loadu_si256((const __m256i *)(l->correction + 8));
    v.origin = _mm256_loadu_ps(l->origin);
    v.step = _mm256_loadu_ps(l->step);
    v.inverse = _mm256_loadu_ps(l->inverse);
    return v;
}

/*
 * fa_q8_lattice_count of 4 vectors of 8 magnitudes a (bits). Each step runs over
 * the 4 vectors before the next, so that the core has independent work while a
 * vector's long chain of dependent operations runs. The corrections are looked up
 * only where they can matter: T_k lies within [E_j - 1, E_j + 2], so a > T_k is
 * a > E_j unless a is in [E_j, E_j + 2], which few values are (the thresholds are
 * thousands of units in the last place apart).
 */
FA_INLINE void fa_avx2_count(const fa_avx2_lattice *l, const __m256i a[4], __m256i count[4])
{
    __m256i d[4], j[4], k[4], e[4], near = _mm256_setzero_si256();

    for (int v = 0; v < 4; v++) {
        d[v] = _mm256_setzero_si256();
        for (int i = 0; i < 7; i++)
            d[v] = _mm256_sub_epi32(d[v], _mm256_cmpgt_epi32(a[v], l->bound[i]));
    }
    for (int v = 0; v < 4; v++) {
        const __m256 origin = _mm256_permutevar8x32_ps(l->origin, d[v]);
        const __m256 t = _mm256_mul_ps(_mm256_sub_ps(_mm256_castsi256_ps(a[v]), origin),
                                       _mm256_permutevar8x32_ps(l->inverse, d[v]));
        const __m256i rounded = _mm256_castps_si256(_mm256_add_ps(t, _mm256_set1_ps(12582912.0f)));
        const __m256i first_span = _mm256_permutevar8x32_epi32(l->first_span, d[v]);
        j[v] = _mm256_min_epi32(
            _mm256_max_epi32(_mm256_sub_epi32(rounded, _mm256_set1_epi32(0x4b400000)),
                             _mm256_setzero_si256()),
            _mm256_srli_epi32(first_span, 16));
        k[v] = _mm256_add_epi32(_mm256_and_si256(first_span, _mm256_set1_epi32(0xffff)), j[v]);
        e[v] = _mm256_castps_si256(_mm256_add_ps(
            _mm256_mul_ps(_mm256_cvtepi32_ps(j[v]), _mm256_permutevar8x32_ps(l->step, d[v])),
            origin));
    }
    for (int v = 0; v < 4; v++) {
        const __m256i above = _mm256_sub_epi32(a[v], e[v]);
        near = _mm256_or_si256(near, _mm256_cmpeq_epi32(_mm256_min_epu32(above, _mm256_set1_epi32(2)), above));
        count[v] = _mm256_sub_epi32(k[v], _mm256_cmpgt_epi32(a[v], e[v]));
    }
    if (_mm256_testz_si256(near, near))
        return;
    for (int v = 0; v < 4; v++) {
        /* correction k: 2 bits of dword k / 16 of 16, the second vector where bit 7 of k is set */
        const __m256i word = _mm256_srli_epi32(k[v], 4);
        const __m256i c = _mm256_castps_si256(_mm256_blendv_ps(
            _mm256_castsi256_ps(_mm256_permutevar8x32_epi32(l->correction[0], word)),
            _mm256_castsi256_ps(_mm256_permutevar8x32_epi32(l->correction[1], word)),
            _mm256_castsi256_ps(_mm256_slli_epi32(k[v], 24))));
        const __m256i shift = _mm256_and_si256(_mm256_slli_epi32(k[v], 1), _mm256_set1_epi32(30));
        const __m256i field = _mm256_and_si256(_mm256_srlv_epi32(c, shift), _mm256_set1_epi32(3));
        const __m256i threshold = _mm256_sub_epi32(_mm256_add_epi32(e[v], field), _mm256_set1_epi32(1));
        count[v] = _mm256_sub_epi32(k[v], _mm256_cmpgt_epi32(a[v], threshold));
    }
}

/* fa_hash32 of 8 consecutive counters from base. */
FA_INLINE __m256i fa_avx2_hash32(uint32_t base)
{
    __m256i x = _mm256_add_epi32(_mm256_set1_epi32((int)base), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32(0x7feb352d));
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 15));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32((int)0x846ca68bU));
    return _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
}

/* The magnitudes of value[code] for 8 codes. */
FA_INLINE __m256 fa_avx2_magnitude(const fa_qmap *q, __m256i code)
{
    return _mm256_and_ps(_mm256_i32gather_ps(q->value, code, 4),
                         _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
}

/*
 * codes = fa_q8_code(q, x * scale of its block) for len (a multiple of 32)
 * elements in blocks of 1 << shift >= 32; with stochastic rounding, element i
 * uses the random bits of its counter counter + i (hashed, then the high half if
 * high, else the low half).
 */
FA_INLINE void fa_q8_encode_avx2(const fa_qmap *q, size_t len, unsigned shift, const float *x,
                                 const float *scale, uint8_t *codes, const int stochastic,
                                 uint32_t counter, int high)
{
    const fa_avx2_lattice l = fa_avx2_lattice_load(&q->search[stochastic != 0].lattice);
    const __m256i zero = _mm256_set1_epi32((int)q->zero), one = _mm256_set1_epi32(1);
    const __m256 positive_top = _mm256_castsi256_ps(_mm256_sub_epi32(_mm256_set1_epi32(255), zero));
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);

    for (size_t i = 0; i < len; i += 32) {
        const __m256 s = _mm256_set1_ps(scale[i >> shift]);
        __m256i u[4], a[4], top[4], rank[4];

        for (int v = 0; v < 4; v++) {
            u[v] = _mm256_castps_si256(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * v), s));
            a[v] = _mm256_and_si256(u[v], _mm256_set1_epi32(0x7fffffff));
            /* the largest rank of x's sign: 255 - zero, or zero */
            top[v] = _mm256_castps_si256(
                _mm256_blendv_ps(positive_top, _mm256_castsi256_ps(zero), _mm256_castsi256_ps(u[v])));
        }
        fa_avx2_count(&l, a, rank);
        for (int v = 0; v < 4; v++) {
            if (stochastic) {
                /* rank is the magnitude at or below |x|: round up to the next with its probability */
                const __m256i bits = fa_avx2_hash32(counter + (uint32_t)(i + 8 * v));
                const __m256i r16 = high ? _mm256_srli_epi32(bits, 16)
                                         : _mm256_and_si256(bits, _mm256_set1_epi32(0xffff));
                rank[v] = _mm256_min_epu32(rank[v], top[v]);
                const __m256i upper = _mm256_sub_epi32(rank[v], _mm256_cmpgt_epi32(top[v], rank[v]));
                const __m256 lo = fa_avx2_magnitude(q, _mm256_add_epi32(zero, rank[v]));
                const __m256 hi = fa_avx2_magnitude(q, _mm256_add_epi32(zero, upper));
                const __m256 r = _mm256_mul_ps(_mm256_cvtepi32_ps(r16), _mm256_set1_ps(1.0f / 65536.0f));
                const __m256 up = _mm256_cmp_ps(_mm256_mul_ps(r, _mm256_sub_ps(hi, lo)),
                                                _mm256_sub_ps(_mm256_castsi256_ps(a[v]), lo), _CMP_LT_OQ);
                rank[v] = _mm256_blendv_epi8(rank[v], upper, _mm256_castps_si256(up));
            }
            /*
             * At least 1 where x is nonzero (min(a, 1)), at most top (which is also
             * min(rank, top) before it, as fa_q8_code clamps both times).
             */
            rank[v] = _mm256_min_epu32(_mm256_max_epu32(rank[v], _mm256_min_epu32(a[v], one)), top[v]);
            /* code = zero -/+ rank (vpsignd negates where x is negative; rank is 0 where x is 0) */
            rank[v] = _mm256_add_epi32(zero, _mm256_sign_epi32(rank[v], u[v]));
        }
        /* 32 dwords below 256 to bytes: the packs work within 128-bit lanes, vpermd undoes it */
        const __m256i bytes = _mm256_packus_epi16(_mm256_packus_epi32(rank[0], rank[1]),
                                                  _mm256_packus_epi32(rank[2], rank[3]));
        _mm256_storeu_si256((__m256i *)(codes + i), _mm256_permutevar8x32_epi32(bytes, order));
    }
}
