/*
 * The compressed-format kernels of one algorithm, written once for every
 * storage of param, grad and state. kernels.c includes this file once per
 * algorithm with:
 *
 *   FA_ALGO                          the algorithm's name (adam)
 *   FA_COEF, FA_COEF_LOAD(k)         its coefficients in float, and their loader
 *   FA_COEF_IS_COMMON(c),            whether c has the common options, and c with
 *   FA_COEF_COMMON(c, common)        them as constants if common (a specialised loop)
 *   FA_ELEMENT(c, p, g, s, on)       its update of one element in float: param *p,
 *                                    gradient g, state s[j] for the bits j of on
 *   FA_SIGNED                        bitmask of the state buffers that can be
 *                                    negative (8-bit: signed map, else unsigned)
 *
 * One pass over memory. Per chunk of whole blocks of the slice, 8-bit state is
 * dequantised into float arrays on the stack; every element is loaded, updated
 * in float and stored (bfloat16 and float32 state directly); then 8-bit state is
 * quantised with each block's new absmax. The param is updated from the float
 * moments.
 *
 * Rounding randoms: element i (its index in the tensor) draws
 * r0 = fa_hash32(key0 + i) and r1 = fa_hash32(key1 + i); state 0 rounds with the
 * low 16 bits of r0, state 1 with its high 16 bits, state 2 with the low 16 bits
 * of r1 and a bfloat16 param with its high 16 bits.
 *
 * Each loop is an always-inline function with restrict pointers, so that the
 * compiler sees independent arrays and vectorises it.
 */

#define FA_CAT2(a, b) a##b
#define FA_CAT(a, b) FA_CAT2(a, b)
#define FA_FN(name) FA_CAT(FA_CAT(fa_, FA_ALGO), _##name)

/* A buffer as the pointer pair (float32, bfloat16) of FA_LOAD and FA_STORE: one is NULL. */
#define FA_PICK(store, ptr) \
    (store) == FA_STORE_BF16 ? NULL : (ptr), (store) == FA_STORE_BF16 ? (ptr) : NULL

/* A float32 or bfloat16 buffer: one of the two pointers is used, by its storage. */
#define FA_LOAD(store, f32, b16, i) ((store) == FA_STORE_BF16 ? fa_bf16_load((b16)[i]) : (f32)[i])

/* 16 random bits for stream s (0..3: the state buffers, then the param) of element index. */
FA_ALWAYS_INLINE uint32_t FA_FN(random16)(uint32_t key0, uint32_t key1, int s, uint32_t index)
{
    const uint32_t r = fa_hash32((s < 2 ? key0 : key1) + index);
    return s & 1 ? r >> 16 : r & 0xffffU;
}

/* Store x at i, as float32 or rounded to bfloat16 with the random bits of stream s. */
#define FA_STORE(store, f32, b16, i, x, s)                                                      \
    do {                                                                                        \
        if ((store) == FA_STORE_BF16)                                                           \
            (b16)[i] = fa_bf16_round(x, stochastic, FA_FN(random16)(key0, key1, s, index));       \
        else                                                                                    \
            (f32)[i] = (x);                                                                     \
    } while (0)

/*
 * The buffers and constant flags of an update, as parameters and as arguments:
 * param p and grad g as P and G store them, state in float32 or bfloat16 as S
 * stores it (one pointer of each pair is NULL), the bfloat16 param copy if
 * with_copy, stochastic or nearest rounding, and on, the bits of the state buffers
 * in use.
 */
#define FA_UPDATE_PARAMS                                                                       \
    uint32_t key0, uint32_t key1, float *FA_RESTRICT p32, uint16_t *FA_RESTRICT p16,           \
        const float *FA_RESTRICT g32, const uint16_t *FA_RESTRICT g16, float *FA_RESTRICT m32, \
        uint16_t *FA_RESTRICT m16, float *FA_RESTRICT v32, uint16_t *FA_RESTRICT v16,          \
        float *FA_RESTRICT x32, uint16_t *FA_RESTRICT x16, uint16_t *FA_RESTRICT copy,         \
        const fa_store P, const fa_store G, const fa_store S, const int stochastic,            \
        const unsigned on, const int with_copy
#define FA_UPDATE_ARGS                                                                         \
    key0, key1, p32, p16, g32, g16, m32, m16, v32, v16, x32, x16, copy, P, G, S, stochastic, on, \
        with_copy

/*
 * The update of elements [from, to) (8-bit state comes dequantised, S = F32);
 * element i draws the random bits of index base + i (FA_STORE reads index).
 */
FA_ALWAYS_INLINE void FA_FN(update_run)(const FA_COEF *c, size_t from, size_t to, uint32_t base,
                                        FA_UPDATE_PARAMS)
{
    for (size_t i = from; i < to; i++) {
        const uint32_t index = base + (uint32_t)i;
        float pi = FA_LOAD(P, p32, p16, i);
        float s[FA_MAX_STATE] = {FA_LOAD(S, m32, m16, i), FA_LOAD(S, v32, v16, i),
                                 on & 4 ? FA_LOAD(S, x32, x16, i) : 0.0f};
        FA_ELEMENT(c, &pi, FA_LOAD(G, g32, g16, i), s, on);
        FA_STORE(P, p32, p16, i, pi, 3);
        if (with_copy)
            copy[i] = fa_bf16_round(pi, 0, 0);
        FA_STORE(S, m32, m16, i, s[0], 0);
        FA_STORE(S, v32, v16, i, s[1], 1);
        if (on & 4)
            FA_STORE(S, x32, x16, i, s[2], 2);
    }
}

/*
 * Software prefetch where param and state are stored in different sizes (float32
 * and bfloat16, either way round): FA_PREFETCH_BYTES ahead in the float32
 * buffers (as many elements ahead in the others), once per FA_PREFETCH_STRIDE
 * elements. There the hardware prefetchers alone leave one core well short of
 * the memory bandwidth (10 M elements on Zen 5, float32 params with bfloat16
 * state: 1.12x the float32 step without, 1.4x with; bfloat16 params and grads
 * with float32 state: 1.12x and 1.3x). Where param and state are alike it costs
 * more than it brings (bfloat16 throughout is bound by its maths), and 8-bit
 * state goes in L1-sized chunks.
 */
#define FA_PREFETCH_BYTES ((size_t)4096)
#define FA_PREFETCH_STRIDE ((size_t)32)

/* Prefetch the stride of buffer b (elements of size bytes) that starts at element i. */
#define FA_PREFETCH_LINES(b, i, size)                                                          \
    do {                                                                                       \
        for (size_t line = 0; line < FA_PREFETCH_STRIDE * (size); line += 64)                  \
            FA_PREFETCH_AT((const char *)(b) + (i) * (size) + line);                          \
    } while (0)

/* The same for a float32 or bfloat16 buffer, by its storage (as FA_LOAD). */
#define FA_PREFETCH(store, f32, b16, i)                                                        \
    do {                                                                                       \
        if ((store) == FA_STORE_BF16)                                                          \
            FA_PREFETCH_LINES(b16, i, 2);                                                      \
        else                                                                                   \
            FA_PREFETCH_LINES(f32, i, 4);                                                      \
    } while (0)

/* update_run over len elements, by strides that prefetch where it helps (see above). */
FA_ALWAYS_INLINE void FA_FN(update)(const FA_COEF *c, size_t len, uint32_t index,
                                    FA_UPDATE_PARAMS)
{
    const size_t ahead = FA_PREFETCH_BYTES / 4;
    size_t i = 0;

    if (S != FA_STORE_Q8 && P != S)
        for (; i + ahead + FA_PREFETCH_STRIDE <= len; i += FA_PREFETCH_STRIDE) {
            FA_PREFETCH(P, p32, p16, i + ahead);
            FA_PREFETCH(G, g32, g16, i + ahead);
            FA_PREFETCH(S, m32, m16, i + ahead);
            FA_PREFETCH(S, v32, v16, i + ahead);
            if (on & 4)
                FA_PREFETCH(S, x32, x16, i + ahead);
            if (with_copy)
                FA_PREFETCH_LINES(copy, i + ahead, 2);
            FA_FN(update_run)(c, i, i + FA_PREFETCH_STRIDE, index, FA_UPDATE_ARGS);
        }
    FA_FN(update_run)(c, i, len, index, FA_UPDATE_ARGS);
}

/*
 * out = value[code] * absmax of its block, for len codes in blocks of 1 << shift
 * elements (in bulk with byte tables where the CPU has them).
 */
FA_ALWAYS_INLINE void FA_FN(dequantise)(const fa_qmap *q, size_t len, unsigned shift,
                                        const uint8_t *FA_RESTRICT codes,
                                        const float *FA_RESTRICT absmax, float *FA_RESTRICT out)
{
    for (size_t i = fa_q8_decode_bulk(q, len, shift, codes, absmax, out), end; i < len; i = end) {
        const float a = absmax[i >> shift];
        end = fa_block_end(i, shift, len);
        for (size_t k = i; k < end; k++)
            out[k] = q->value[(int32_t)codes[k]] * a;
    }
}

/*
 * code = the code of x * scale under map q for elements [start, end): nearest,
 * or stochastic with the random bits of counter + i (the high half of its hash
 * if high, else the low).
 */
FA_ALWAYS_INLINE void FA_FN(quantise_loop)(const fa_qmap *q, size_t start, size_t end,
                                           const float *FA_RESTRICT x, float scale,
                                           uint8_t *FA_RESTRICT codes, const int stochastic,
                                           uint32_t counter, int high)
{
    for (size_t i = start; i < end; i++) {
        const uint32_t r = fa_hash32(counter + (uint32_t)i);
        codes[i] = (uint8_t)fa_q8_code(q, x[i] * scale, stochastic, high ? r >> 16 : r & 0xffffU);
    }
}

/*
 * The loop above over len elements in blocks of 1 << shift, each with its scale,
 * as a kernel of its own (the bulk with byte tables where the CPU has them): the
 * restrict parameters of a function that is not inlined tell the compiler that
 * the table lookups and the stores are independent.
 */
FA_KERNEL void FA_FN(quantise)(const fa_qmap *FA_RESTRICT q, size_t len, unsigned shift,
                               const float *FA_RESTRICT x, const float *FA_RESTRICT scale,
                               uint8_t *FA_RESTRICT codes, int stochastic, uint32_t counter,
                               int high)
{
    size_t i = fa_q8_encode_bulk(q, len, shift, x, scale, codes, stochastic, counter, high), end;

    for (; i < len; i = end) {
        end = fa_block_end(i, shift, len);
        if (stochastic)
            FA_FN(quantise_loop)(q, i, end, x, scale[i >> shift], codes, 1, counter, high);
        else
            FA_FN(quantise_loop)(q, i, end, x, scale[i >> shift], codes, 0, counter, high);
    }
}

/*
 * Quantise len elements of state j, from element at on (whole blocks but maybe
 * the tensor's last), from their float values: each block's new absmax is its
 * largest magnitude (on the bits, so a NaN is largest); below FLT_MIN the block
 * is stored as zeros, so that 1/absmax stays finite; a NaN absmax stays NaN and
 * spoils the block.
 */
FA_ALWAYS_INLINE void FA_FN(store)(const fa_tensor *t, int j, size_t at, size_t len,
                                   const float *FA_RESTRICT x, const int stochastic,
                                   uint32_t key0, uint32_t key1)
{
    const fa_format *f = t->format;
    const fa_qmap *q = f->qmap[!(FA_SIGNED >> j & 1)];
    const unsigned shift = FA_CTZ(f->block);
    float scale[FA_MAX_BLOCK];

    for (size_t b = 0; b << shift < len; b++) {
        const size_t end = fa_block_end(b << shift, shift, len);
        uint32_t amax = 0;
        for (size_t i = b << shift; i < end; i++) {
            const uint32_t bits = fa_bits(x[i]) & 0x7fffffffU;
            amax = amax < bits ? bits : amax;
        }
        const float a = fa_float(amax);
        const int normal = a >= FLT_MIN;
        t->absmax[j][(at >> shift) + b] = normal || a != a ? a : 0.0f;
        scale[b] = normal ? 1.0f / a : 0.0f;
    }
    FA_FN(quantise)(q, len, shift, x, scale, (uint8_t *)t->buf[2 + j] + at, stochastic,
                    (j < 2 ? key0 : key1) + (uint32_t)at, j & 1);
}

/*
 * 8-bit state goes in chunks of whole blocks, of this many elements or one block:
 * small enough that a chunk's state in float, its param and grad stay in L1.
 */
#define FA_Q8_CHUNK ((size_t)512)

/*
 * Elements [begin, begin + n) of the tensor, in one pass; 8-bit state in chunks,
 * dequantised into float on the stack.
 */
FA_ALWAYS_INLINE void FA_FN(compressed)(const fa_tensor *t, const FA_COEF *coef, size_t begin,
                                        size_t n, const fa_store P, const fa_store G, const fa_store S,
                                        const int stochastic, const unsigned on,
                                        const int with_copy, const int common)
{
    const FA_COEF c = FA_COEF_COMMON(*coef, common);
    const uint32_t key0 = fa_hash32(t->key), key1 = fa_hash32(t->key ^ 0x9e3779b9U);
    const fa_format *f = t->format;
    const size_t chunk = S == FA_STORE_Q8 ? (f->block > FA_Q8_CHUNK ? f->block : FA_Q8_CHUNK) : n;
    float deq[FA_MAX_STATE][FA_MAX_BLOCK]; /* 8-bit state of one chunk, in float */

    for (size_t at = begin; at < begin + n; at += chunk) {
        const size_t len = begin + n - at < chunk ? begin + n - at : chunk;
        void *p = (char *)t->buf[0] + at * (P == FA_STORE_BF16 ? 2 : 4);
        void *g = (char *)t->buf[1] + at * (G == FA_STORE_BF16 ? 2 : 4);
        void *s[FA_MAX_STATE];

        for (int j = 0; j < FA_MAX_STATE; j++) {
            const size_t itemsize = S == FA_STORE_BF16 ? 2 : 4;
            s[j] = t->buf[2 + j] == NULL ? NULL : (char *)t->buf[2 + j] + at * itemsize;
            if (S == FA_STORE_Q8 && (on >> j & 1)) {
                const unsigned shift = FA_CTZ(f->block);
                FA_FN(dequantise)(f->qmap[!(FA_SIGNED >> j & 1)], len, shift,
                                  (const uint8_t *)t->buf[2 + j] + at, t->absmax[j] + (at >> shift),
                                  deq[j]);
                s[j] = deq[j];
            }
        }
        const fa_store SF = S == FA_STORE_Q8 ? FA_STORE_F32 : S; /* 8-bit: dequantised */
        FA_FN(update)(&c, len, (uint32_t)at, key0, key1, FA_PICK(P, p), FA_PICK(G, g),
                      FA_PICK(SF, s[0]), FA_PICK(SF, s[1]), FA_PICK(SF, s[2]),
                      with_copy ? t->param_copy + at : NULL, P, G, SF, stochastic, on, with_copy);
        if (S == FA_STORE_Q8)
            for (int j = 0; j < FA_MAX_STATE; j++)
                if (on >> j & 1)
                    FA_FN(store)(t, j, at, len, deq[j], stochastic, key0, key1);
    }
}

/* The entry point for one storage of param, grad and state: runtime options become constants. */
#define FA_COMPRESSED_KERNEL(p, g, s)                                                          \
    FA_KERNEL void FA_FN(compressed_##p##_##g##_##s)(const fa_tensor *t, size_t begin,       \
                                                       size_t n)                             \
    {                                                                                        \
        const int stochastic = t->format->stochastic, amsgrad = t->buf[4] != NULL;           \
        const int copy = FA_STORE_##p == FA_STORE_F32 && t->param_copy != NULL;              \
        const FA_COEF coef = FA_COEF_LOAD(t->coef);                                          \
        const int common = FA_COEF_IS_COMMON(&coef);                                         \
        const unsigned on = amsgrad ? 7 : 3;                                                 \
        if (copy && stochastic)                                                              \
            FA_CALL(p, g, s, 1, 1);                                                          \
        else if (copy)                                                                       \
            FA_CALL(p, g, s, 0, 1);                                                          \
        else if (stochastic)                                                                 \
            FA_CALL(p, g, s, 1, 0);                                                          \
        else                                                                                 \
            FA_CALL(p, g, s, 0, 0);                                                          \
    }

/* A call with constant storage and flags: amsgrad (on = 7) or not (on = 3), common or not. */
#define FA_CALL(p, g, s, stochastic, copy)                                                      \
    do {                                                                                        \
        if (on == 7)                                                                            \
            FA_CALL_COMMON(p, g, s, stochastic, 7, copy);                                       \
        else                                                                                    \
            FA_CALL_COMMON(p, g, s, stochastic, 3, copy);                                       \
    } while (0)

#define FA_CALL_COMMON(p, g, s, stochastic, on, copy)                                           \
    do {                                                                                        \
        if (common)                                                                             \
            FA_FN(compressed)(t, &coef, begin, n, FA_STORE_##p, FA_STORE_##g, FA_STORE_##s,      \
                              stochastic, on, copy, 1);                                         \
        else                                                                                    \
            FA_FN(compressed)(t, &coef, begin, n, FA_STORE_##p, FA_STORE_##g, FA_STORE_##s,      \
                              stochastic, on, copy, 0);                                         \
    } while (0)

#define FA_COMPRESSED_STATES(p, g) \
    FA_COMPRESSED_KERNEL(p, g, F32) FA_COMPRESSED_KERNEL(p, g, BF16) FA_COMPRESSED_KERNEL(p, g, Q8)

FA_COMPRESSED_STATES(F32, F32)
FA_COMPRESSED_STATES(F32, BF16)
FA_COMPRESSED_STATES(BF16, F32)
FA_COMPRESSED_STATES(BF16, BF16)

#define FA_ROW(p, g)                                                                           \
    {FA_FN(compressed_##p##_##g##_F32), FA_FN(compressed_##p##_##g##_BF16),                  \
     FA_FN(compressed_##p##_##g##_Q8)}

/* Indexed [param store][grad store][state store]. */
static const fa_compressed_table FA_FN(compressed_table) = {
    {FA_ROW(F32, F32), FA_ROW(F32, BF16)},
    {FA_ROW(BF16, F32), FA_ROW(BF16, BF16)},
};

#undef FA_ROW
#undef FA_COMPRESSED_STATES
#undef FA_COMPRESSED_KERNEL
#undef FA_CALL
#undef FA_CALL_COMMON
#undef FA_Q8_CHUNK
#undef FA_PREFETCH
#undef FA_PREFETCH_LINES
#undef FA_PREFETCH_STRIDE
#undef FA_PREFETCH_BYTES
#undef FA_UPDATE_PARAMS
#undef FA_UPDATE_ARGS
#undef FA_STORE
#undef FA_LOAD
#undef FA_PICK
#undef FA_FN
#undef FA_CAT
#undef FA_CAT2
