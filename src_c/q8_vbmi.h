/*
 * The 8-bit format's table lookups with AVX-512 VBMI byte permutes, 64 elements
 * at a time: fa_q8_code and the dequantisation of formats.h without gathers.
 * A 256-entry table of 32-bit entries is held as 4 byte planes (fa_qmap); one
 * plane is looked up with two vpermi2b over its 128-byte halves and a blend on
 * bit 7 of the index. Included by the AVX-512 level (kernels_avx512.c) only; its kernels call
 * these functions when the CPU has VBMI (fa_byte_tables_enabled) and compute any
 * remainder of fewer than 64 elements with formats.h.
 *
 * Element order: the byte planes come back as 64 bytes per table; unpacking 4
 * of them into 4 vectors of 16 dwords (vpunpck*, within 128-bit lanes) puts
 * byte 16L + 4q + i in vector q at element 4L + i. So the indices are taken in
 * "lane order", element 16q + 4L + i at byte 16L + 4q + i, which is also what
 * packing 4 vectors of dwords into bytes (vpackus*) gives.
 */
#include <immintrin.h>

#define FA_VBMI static inline FA_TARGET("avx512f,avx512bw,avx512dq,avx512vbmi")

/* The byte permutation between natural and lane order (its own inverse). */
FA_VBMI __m512i fa_lane_order(void)
{
    uint8_t order[64];

    for (int q = 0; q < 4; q++)
        for (int lane = 0; lane < 4; lane++)
            for (int i = 0; i < 4; i++)
                order[16 * lane + 4 * q + i] = (uint8_t)(16 * q + 4 * lane + i);
    return _mm512_loadu_si512(order);
}

/* table[index] for 64 indices in lane order: 4 vectors of 16 entries, in natural order. */
FA_VBMI void fa_vbmi_lookup(const uint8_t (*planes)[256], int nplanes, __m512i index,
                            __m512i out[4])
{
    const __mmask64 high = _mm512_movepi8_mask(index);
    __m512i p[4];

    for (int k = 0; k < 4; k++) {
        const uint8_t *t = planes[k];
        const __m512i lo = _mm512_permutex2var_epi8(_mm512_loadu_si512(t), index,
                                                    _mm512_loadu_si512(t + 64));
        const __m512i hi = _mm512_permutex2var_epi8(_mm512_loadu_si512(t + 128), index,
                                                    _mm512_loadu_si512(t + 192));
        p[k] = k < nplanes ? _mm512_mask_blend_epi8(high, lo, hi) : _mm512_setzero_si512();
    }
    const __m512i lo01 = _mm512_unpacklo_epi8(p[0], p[1]), hi01 = _mm512_unpackhi_epi8(p[0], p[1]);
    const __m512i lo23 = _mm512_unpacklo_epi8(p[2], p[3]), hi23 = _mm512_unpackhi_epi8(p[2], p[3]);
    out[0] = _mm512_unpacklo_epi16(lo01, lo23);
    out[1] = _mm512_unpackhi_epi16(lo01, lo23);
    out[2] = _mm512_unpacklo_epi16(hi01, hi23);
    out[3] = _mm512_unpackhi_epi16(hi01, hi23);
}

/* 4 vectors of 16 dwords below 256 as 64 bytes in lane order. */
FA_VBMI __m512i fa_vbmi_pack(const __m512i d[4])
{
    return _mm512_packus_epi16(_mm512_packus_epi32(d[0], d[1]), _mm512_packus_epi32(d[2], d[3]));
}

/*
 * out = value[code] * absmax of its block for len (a multiple of 64) codes in
 * blocks of 1 << shift >= 64.
 */
FA_VBMI void fa_q8_decode_vbmi(const fa_qmap *q, size_t len, unsigned shift, const uint8_t *codes,
                               const float *absmax, float *out)
{
    const __m512i order = fa_lane_order();

    for (size_t i = 0; i < len; i += 64) {
        const __m512 scale = _mm512_set1_ps(absmax[i >> shift]);
        __m512i v[4];
        fa_vbmi_lookup(q->value_planes, 4,
                       _mm512_permutexvar_epi8(order, _mm512_loadu_si512(codes + i)), v);
        for (int k = 0; k < 4; k++)
            _mm512_storeu_ps(out + i + 16 * k, _mm512_mul_ps(_mm512_castsi512_ps(v[k]), scale));
    }
}

/* The magnitudes of value[code] for 64 codes, 16 per vector. */
FA_VBMI void fa_vbmi_magnitudes(const fa_qmap *q, const __m512i code[4], __m512 out[4])
{
    __m512i v[4];

    fa_vbmi_lookup(q->value_planes, 4, fa_vbmi_pack(code), v);
    for (int k = 0; k < 4; k++)
        out[k] = _mm512_castsi512_ps(_mm512_and_si512(v[k], _mm512_set1_epi32(0x7fffffff)));
}

/* fa_hash32 of 16 consecutive counters from base. */
FA_VBMI __m512i fa_vbmi_hash32(uint32_t base)
{
    __m512i x = _mm512_add_epi32(_mm512_set1_epi32((int)base),
                                 _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));
    x = _mm512_mullo_epi32(x, _mm512_set1_epi32(0x7feb352d));
    x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 15));
    x = _mm512_mullo_epi32(x, _mm512_set1_epi32((int)0x846ca68bU));
    return _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));
}

/*
 * codes = fa_q8_code(q, x * scale of its block) for len (a multiple of 64)
 * elements in blocks of 1 << shift >= 64; with stochastic rounding, element i
 * uses the random bits of its counter counter + i (hashed, then the high half if
 * high, else the low half).
 */
FA_VBMI void fa_q8_encode_vbmi(const fa_qmap *q, size_t len, unsigned shift, const float *x,
                               const float *scale, uint8_t *codes, const int stochastic,
                               uint32_t counter, int high)
{
    const fa_qsearch *search = &q->search[stochastic != 0];
    const __m512i order = fa_lane_order();
    const __m512i zero = _mm512_set1_epi32((int)q->zero), one = _mm512_set1_epi32(1);
    const __m512i mantissa = _mm512_set1_epi32(0x7fffff), low8 = _mm512_set1_epi32(0xff);
    const __m512i binade_lo = _mm512_loadu_si512(search->binade);
    const __m512i binade_hi = _mm512_loadu_si512(search->binade + 16);

    for (size_t i = 0; i < len; i += 64, counter += 64) {
        __m512i a[4], m[4], b[4], e1[4], e2[4], rank[4], top[4];
        __mmask16 negative[4];

        for (int k = 0; k < 4; k++) {
            const __m512i u = _mm512_castps_si512(_mm512_mul_ps(_mm512_loadu_ps(x + i + 16 * k),
                                                                _mm512_set1_ps(scale[i >> shift])));
            negative[k] = _mm512_movepi32_mask(u);
            a[k] = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
            m[k] = _mm512_and_si512(a[k], mantissa);
            /* binade clamp(e - 96, 0, 31): e - 96 as a signed number */
            const __m512i e = _mm512_sub_epi32(_mm512_srli_epi32(a[k], 23), _mm512_set1_epi32(96));
            const __m512i i5 = _mm512_min_epi32(_mm512_max_epi32(e, _mm512_setzero_si512()),
                                                _mm512_set1_epi32(31));
            const __m512i binade = _mm512_permutex2var_epi32(binade_lo, i5, binade_hi);
            b[k] = _mm512_add_epi32(_mm512_and_si512(binade, _mm512_set1_epi32(0xffff)),
                                    _mm512_srlv_epi32(m[k], _mm512_srli_epi32(binade, 16)));
        }
        const __m512i bucket = fa_vbmi_pack(b);
        fa_vbmi_lookup(search->planes[0], 4, bucket, e1);
        fa_vbmi_lookup(search->planes[1], 3, bucket, e2); /* t2 <= 0x7fffff */
        for (int k = 0; k < 4; k++) {
            /* rank = count + (m > t1) + (m > t2), at most the largest rank of x's sign */
            __m512i r = _mm512_and_si512(e1[k], low8);
            r = _mm512_mask_add_epi32(r, _mm512_cmpgt_epu32_mask(m[k], _mm512_srli_epi32(e1[k], 8)),
                                      r, one);
            r = _mm512_mask_add_epi32(r, _mm512_cmpgt_epu32_mask(m[k], e2[k]), r, one);
            top[k] = _mm512_mask_blend_epi32(negative[k], _mm512_sub_epi32(low8, zero), zero);
            rank[k] = _mm512_min_epu32(r, top[k]);
        }
        if (stochastic) {
            /* rank is the magnitude at or below |x|: round up to the next with its probability */
            __m512i code[4], upper[4];
            __m512 lo[4], hi[4];

            for (int k = 0; k < 4; k++) {
                upper[k] = _mm512_mask_add_epi32(rank[k], _mm512_cmplt_epu32_mask(rank[k], top[k]),
                                                 rank[k], one);
                code[k] = _mm512_add_epi32(zero, rank[k]);
            }
            fa_vbmi_magnitudes(q, code, lo);
            for (int k = 0; k < 4; k++)
                code[k] = _mm512_add_epi32(zero, upper[k]);
            fa_vbmi_magnitudes(q, code, hi);
            for (int k = 0; k < 4; k++) {
                const __m512i bits = fa_vbmi_hash32(counter + 16 * (uint32_t)k);
                const __m512i r16 = high ? _mm512_srli_epi32(bits, 16)
                                         : _mm512_and_si512(bits, _mm512_set1_epi32(0xffff));
                const __m512 r = _mm512_mul_ps(_mm512_cvtepi32_ps(r16), _mm512_set1_ps(1.0f / 65536.0f));
                const __mmask16 up = _mm512_cmp_ps_mask(
                    _mm512_mul_ps(r, _mm512_sub_ps(hi[k], lo[k])),
                    _mm512_sub_ps(_mm512_castsi512_ps(a[k]), lo[k]), _CMP_LT_OQ);
                rank[k] = _mm512_mask_blend_epi32(up, rank[k], upper[k]);
            }
        }
        for (int k = 0; k < 4; k++) {
            /* a nonzero x gets at least rank 1; code = zero -/+ rank */
            const __mmask16 bump = _mm512_cmpeq_epi32_mask(rank[k], _mm512_setzero_si512()) &
                                   _mm512_test_epi32_mask(a[k], a[k]);
            const __m512i r = _mm512_min_epu32(_mm512_mask_mov_epi32(rank[k], bump, one), top[k]);
            rank[k] = _mm512_mask_sub_epi32(_mm512_add_epi32(zero, r), negative[k], zero, r);
        }
        _mm512_storeu_si512(codes + i, _mm512_permutexvar_epi8(order, fa_vbmi_pack(rank)));
    }
}

#undef FA_VBMI
