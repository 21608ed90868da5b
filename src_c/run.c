/*
 * fa_run: split the elements of all tensors of one call evenly over the
 * threads. Each thread takes one contiguous range of the concatenated
 * elements, so a call with many small tensors is still one parallel region.
 * Since each element's result depends only on that element's inputs (and, with
 * 8-bit state, on its block, which a split never cuts), the split never changes
 * the bits.
 */
#include <stdint.h>

#include "kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Below this many elements per thread, a parallel region costs more than it saves. */
#define FA_MIN_PER_THREAD ((size_t)1 << 16)
/* Range boundaries fall on multiples of this many elements (a 64-byte line of floats). */
#define FA_GRAIN ((size_t)16)
/* The vector loops start at a multiple of this many bytes of the param. */
#define FA_ALIGN ((uintptr_t)64)

/* The threads a caller passes to fa_run unless it chooses otherwise (fa_get_num_threads):
 * read by the caller once per call, with the GIL, never by a running step. */
static int fa_num_threads = 1;

static const size_t fa_itemsize[FA_NUM_DTYPES] = {sizeof(float), sizeof(double)};

/* Work on elements [begin, begin + n) of one tensor; ctx is the caller's. */
typedef void (*fa_slice_fn)(const fa_tensor *t, size_t begin, size_t n, void *ctx);

/* Slices of a tensor begin on multiples of this many elements: a block of 8-bit state. */
static size_t grain(const fa_tensor *t)
{
    return t->format != NULL && t->format->state == FA_STORE_Q8 ? t->format->block : 1;
}

/* i rounded up to a multiple of g, at most n. */
static size_t snap(size_t i, size_t g, size_t n)
{
    i = (i + g - 1) / g * g;
    return i < n ? i : n;
}

/* Where part k of nth parts of total elements starts: floor(grains * k / nth) whole
 * grains (grains * k is not formed, so that it cannot overflow), at most total. */
static size_t split_point(size_t total, size_t nth, size_t k)
{
    const size_t grains = total / FA_GRAIN + (total % FA_GRAIN != 0);
    const size_t g = grains / nth * k + grains % nth * k / nth;

    return g < grains ? g * FA_GRAIN : total;
}

void fa_thread_range(size_t total, size_t nth, size_t id, size_t *lo, size_t *hi)
{
    nth = nth < 1 ? 1 : nth;
    *lo = split_point(total, nth, id);
    *hi = split_point(total, nth, id + 1);
}

void fa_slice(size_t start, size_t n, size_t grain, size_t lo, size_t hi, size_t *begin,
              size_t *count)
{
    const size_t end = start + n;
    size_t b = 0, e = 0;

    if (lo < end && start < hi) {
        b = snap((lo > start ? lo : start) - start, grain, n);
        e = snap((hi < end ? hi : end) - start, grain, n);
    }
    *begin = b;
    *count = e > b ? e - b : 0;
}

/* Call fn on the slices (fa_slice) of elements [lo, hi) of the tensors laid end to end. */
static void for_each_slice(fa_slice_fn fn, void *ctx, const fa_tensor *t, size_t nt, size_t lo,
                           size_t hi)
{
    size_t start = 0;

    for (size_t i = 0; i < nt && start < hi; start += t[i].n, i++) {
        size_t begin, count;
        fa_slice(start, t[i].n, grain(&t[i]), lo, hi, &begin, &count);
        if (count > 0)
            fn(&t[i], begin, count, ctx);
    }
}

/*
 * Call fn on all elements, each of up to nthreads threads taking one contiguous range
 * of them (fa_thread_range). Serial below FA_MIN_PER_THREAD elements per thread, for
 * nthreads < 2, and always without OpenMP: every configuration covers every element.
 */
static void parallel_for(fa_slice_fn fn, void *ctx, const fa_tensor *tensors, size_t ntensors,
                         int nthreads)
{
    size_t total = 0;

    for (size_t i = 0; i < ntensors; i++)
        total += tensors[i].n;
    if (nthreads > 1 && total / FA_MIN_PER_THREAD < (size_t)nthreads)
        nthreads = (int)(total / FA_MIN_PER_THREAD);
#ifdef _OPENMP
    if (nthreads > 1) {
#pragma omp parallel num_threads(nthreads)
        {
            size_t lo, hi;
            fa_thread_range(total, (size_t)omp_get_num_threads(), (size_t)omp_get_thread_num(),
                            &lo, &hi);
            for_each_slice(fn, ctx, tensors, ntensors, lo, hi);
        }
        return;
    }
#endif
    for_each_slice(fn, ctx, tensors, ntensors, 0, total);
}

/* Call the kernel on n elements of a tensor's buffers, starting at element begin. */
static void update_part(fa_kernel kernel, const fa_tensor *t, size_t begin, size_t n)
{
    void *buf[FA_MAX_BUFS];
    const size_t offset = begin * fa_itemsize[t->dtype];

    for (int b = 0; b < FA_MAX_BUFS; b++)
        buf[b] = t->buf[b] == NULL ? NULL : (char *)t->buf[b] + offset;
    kernel(n, buf, t->coef);
}

struct update {
    fa_kernel const *kernel;                /* per dtype */
    const fa_compressed_table *compressed; /* per storage */
};

/* The elements of a slice before its param's first 64-byte boundary. */
static size_t head(const fa_tensor *t, size_t begin, size_t n, size_t itemsize)
{
    const uintptr_t start = (uintptr_t)t->buf[0] + begin * itemsize;
    const size_t h = (FA_ALIGN - start % FA_ALIGN) % FA_ALIGN / itemsize;

    return h < n ? h : n;
}

/*
 * Update elements [begin, begin + n) of a compressed tensor. Its kernel knows
 * where the slice starts in the tensor (stochastic rounding hashes element
 * indices, 8-bit state works in whole blocks), so the param's alignment can be
 * peeled as for plain tensors except with 8-bit state.
 */
static void update_compressed(const fa_compressed_table *table, const fa_tensor *t, size_t begin,
                              size_t n)
{
    const fa_format *f = t->format;
    const fa_compressed_kernel kernel = (*table)[f->param][f->grad][f->state];
    const size_t h = f->state == FA_STORE_Q8 ? 0 : head(t, begin, n, f->param == FA_STORE_BF16 ? 2 : 4);

    if (h > 0)
        kernel(t, begin, h);
    kernel(t, begin + h, n - h);
}

/*
 * Update elements [begin, begin + n) of one tensor. The elements before the
 * param's first 64-byte boundary go first, on their own, so that the vector
 * loop of the rest reads and writes whole cache lines (NumPy's large arrays
 * usually share one misalignment, so this aligns all the buffers). Any split
 * gives the same bits.
 */
static void update_slice(const fa_tensor *t, size_t begin, size_t n, void *ctx)
{
    const struct update *u = ctx;

    if (t->format != NULL) {
        update_compressed(u->compressed, t, begin, n);
        return;
    }
    const fa_kernel kernel = u->kernel[t->dtype];
    const size_t h = head(t, begin, n, fa_itemsize[t->dtype]);

    if (h > 0)
        update_part(kernel, t, begin, h);
    update_part(kernel, t, begin + h, n - h);
}

void fa_run(fa_algo algo, const fa_tensor *tensors, size_t ntensors, int nthreads)
{
    const fa_level *level = fa_active_level;
    struct update ctx = {level->kernels[algo], level->compressed[algo]};

    parallel_for(update_slice, &ctx, tensors, ntensors, nthreads);
}

struct search {
    int buf;   /* which buffer of each tensor */
    int found; /* set by any thread that finds a non-finite value */
};

static void search_slice(const fa_tensor *t, size_t begin, size_t n, void *ctx)
{
    struct search *s = ctx;
    const fa_format *f = t->format;
    const fa_store store = f == NULL ? FA_STORE_F32
                           : s->buf == 0 ? f->param
                           : s->buf == 1 ? f->grad
                                         : f->state;
    const fa_search_kernel kernel =
        store == FA_STORE_BF16 ? fa_active_level->any_nonfinite_bf16
                                : fa_active_level->any_nonfinite[t->dtype];
    const size_t itemsize = store == FA_STORE_BF16 ? 2 : fa_itemsize[t->dtype];

    if (store == FA_STORE_Q8) /* codes are always finite (a NaN absmax is not searched) */
        return;
    const char *values = (const char *)t->buf[s->buf] + begin * itemsize;

    if (kernel(n, values)) {
#ifdef _OPENMP
#pragma omp atomic /* an update, which OpenMP 2.0 (MSVC) has too */
#endif
        s->found |= 1;
    }
}

int fa_any_nonfinite(const fa_tensor *tensors, size_t ntensors, int buf, int nthreads)
{
    struct search ctx = {buf, 0};

    if (buf < 0 || buf >= FA_MAX_BUFS)
        return 0;
    for (size_t i = 0; i < ntensors; i++)
        if (tensors[i].buf[buf] == NULL)
            return 0;
    parallel_for(search_slice, &ctx, tensors, ntensors, nthreads);
    return ctx.found;
}

void fa_set_num_threads(int n)
{
    fa_num_threads = n < 1 || !fa_has_openmp() ? 1 : n;
}

int fa_get_num_threads(void)
{
    return fa_num_threads;
}

int fa_has_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}
