/*
 * fastadam C kernels: fused optimizer loops over contiguous buffers.
 *
 * This layer only loops. It never allocates, never touches Python objects and
 * trusts its caller (fastadam/_ext.pyx) to have checked every buffer: same
 * dtype, same length, contiguous, writable, and no two buffers overlapping.
 */
#ifndef FASTADAM_H
#define FASTADAM_H

#include <stddef.h>
#include <stdint.h>

#define FA_MAX_STATE 3 /* state buffers of one tensor */
#define FA_MAX_BUFS 5  /* param, grad and up to FA_MAX_STATE state buffers */
#define FA_MAX_COEF 12 /* per-step coefficients of one tensor, in double */

typedef enum { FA_FLOAT32 = 0, FA_FLOAT64 = 1, FA_NUM_DTYPES } fa_dtype;

/*
 * The algorithms. Buffer order is param, grad, then the state buffers listed
 * after each name; a NULL state buffer switches that feature off.
 */
typedef enum {
    FA_ADAM,    /* exp_avg, exp_avg_sq, max_exp_avg_sq (amsgrad)     */
    FA_SGD,     /* momentum_buffer (momentum != 0)                   */
    FA_RMSPROP, /* square_avg, grad_avg (centered), momentum_buffer  */
    FA_ADAGRAD, /* sum                                               */
    FA_ADAMAX,  /* exp_avg, exp_inf                                  */
    FA_LION,    /* exp_avg                                           */
    FA_NADAM,   /* exp_avg, exp_avg_sq                               */
    FA_RADAM,   /* exp_avg, exp_avg_sq                               */
    FA_RPROP,   /* prev, step_size                                   */
    FA_TRAFFIC, /* Adam's memory traffic with trivial maths (ceiling) */
    FA_NUM_ALGOS
} fa_algo;

/*
 * Coefficients, computed once per step in double by the caller (Python owns
 * the policy); each kernel converts them to its dtype. Flags are 0.0 or 1.0.
 */
enum { /* Adam and AdamW */
    FA_ADAM_BETA1, FA_ADAM_BETA2, FA_ADAM_EPS,
    FA_ADAM_STEP_SIZE,             /* lr / (1 - beta1^step) */
    FA_ADAM_BIAS_CORRECTION2_SQRT, /* sqrt(1 - beta2^step)  */
    FA_ADAM_WEIGHT_DECAY,          /* L2 coefficient, 0 when decoupled    */
    FA_ADAM_PARAM_SCALE,           /* 1 - lr*weight_decay when decoupled  */
    FA_ADAM_MAXIMIZE
};
enum { /* SGD */
    FA_SGD_LR, FA_SGD_MOMENTUM, FA_SGD_DAMPENING, FA_SGD_WEIGHT_DECAY,
    FA_SGD_NESTEROV, FA_SGD_MAXIMIZE,
    FA_SGD_FIRST_STEP /* the buffer is set to the gradient, undamped */
};
enum { /* RMSprop */
    FA_RMSPROP_LR, FA_RMSPROP_ALPHA, FA_RMSPROP_EPS, FA_RMSPROP_WEIGHT_DECAY,
    FA_RMSPROP_MOMENTUM, FA_RMSPROP_MAXIMIZE
};
enum { /* Adagrad */
    FA_ADAGRAD_CLR, /* lr / (1 + (step - 1) * lr_decay) */
    FA_ADAGRAD_EPS, FA_ADAGRAD_WEIGHT_DECAY, FA_ADAGRAD_MAXIMIZE
};
enum { /* Adamax */
    FA_ADAMAX_BETA1, FA_ADAMAX_BETA2, FA_ADAMAX_EPS,
    FA_ADAMAX_CLR, /* lr / (1 - beta1^step) */
    FA_ADAMAX_WEIGHT_DECAY, FA_ADAMAX_MAXIMIZE
};
enum { /* Lion */
    FA_LION_LR, FA_LION_BETA1, FA_LION_BETA2, FA_LION_WEIGHT_DECAY,
    FA_LION_MAXIMIZE
};

/* NAdam: mu_t = beta1*(1 - 0.5*0.96^(t*momentum_decay)), mu_product = mu_1*...*mu_t */
enum {
    FA_NADAM_BETA1, FA_NADAM_BETA2, FA_NADAM_EPS,
    FA_NADAM_BIAS_CORRECTION2, /* 1 - beta2^step                                  */
    FA_NADAM_GRAD_COEF,        /* -lr*(1 - mu_t) / (1 - mu_product)               */
    FA_NADAM_EXP_AVG_COEF,     /* -lr*mu_{t+1} / (1 - mu_product*mu_{t+1})        */
    FA_NADAM_WEIGHT_DECAY,     /* L2 coefficient, 0 when decoupled                */
    FA_NADAM_PARAM_SCALE,      /* 1 - lr*weight_decay when decoupled, else 1      */
    FA_NADAM_MAXIMIZE
};
enum { /* RAdam */
    FA_RADAM_BETA1, FA_RADAM_BETA2, FA_RADAM_EPS,
    FA_RADAM_BIAS_CORRECTION1,      /* 1 - beta1^step                             */
    FA_RADAM_LR,
    FA_RADAM_BIAS_CORRECTION2_SQRT, /* (1 - beta2^step)^0.5                       */
    FA_RADAM_RECT,                  /* the rectification term; 0: unrectified step */
    FA_RADAM_WEIGHT_DECAY,          /* L2 coefficient, 0 when decoupled           */
    FA_RADAM_PARAM_SCALE,           /* 1 - lr*weight_decay when decoupled, else 1 */
    FA_RADAM_MAXIMIZE
};

enum { /* Rprop */
    FA_RPROP_ETAMINUS, FA_RPROP_ETAPLUS, FA_RPROP_STEP_SIZE_MIN, FA_RPROP_STEP_SIZE_MAX,
    FA_RPROP_MAXIMIZE
};

enum { /* the memory-traffic ceiling */
    FA_TRAFFIC_SCALE
};

/*
 * Compressed formats. A buffer is stored as float32, as bfloat16 (the top 16
 * bits of a float32, in a uint16) or, for state, as 8-bit codes with one
 * float32 absmax per block of elements (block-wise dynamic quantization,
 * Dettmers et al. 2022, arXiv:2110.02861): element i holds value[code] * absmax.
 * The kernels compute in float32 whatever the storage.
 */
typedef enum { FA_STORE_F32 = 0, FA_STORE_BF16 = 1, FA_STORE_Q8 = 2, FA_NUM_STORES } fa_store;

/*
 * The same count by arithmetic (formats.h: fa_q8_lattice_*; built and proven
 * equal to the table search by fa_qmap_init, in qmap.c). Seven of the thresholds,
 * bound[0..6], split the magnitudes into eight regions (the decades of the map's
 * magnitudes): a lies in region d if d bounds are below it. The thresholds of
 * region d, numbered first[d] to first[d] + span[d], lie on the lattice
 * E_j = j * step[d] + origin[d] (float arithmetic, j = 0 .. span[d]) up to a
 * correction of -1 to 2 units in the last place: bits(T_k) = bits(E_j) + c_k - 1,
 * where k = first[d] + j and c_k is the 2-bit field k % 16 of correction[k / 16].
 * A region with no threshold inside holds one of its bounds (span 0, step 0): the
 * upper, which no a of it exceeds, or for the last region the lower, which every
 * a of it exceeds. exact is 0 where the map's thresholds do not fit (the table
 * search serves).
 */
typedef struct {
    uint32_t bound[7];
    float origin[8], step[8], inverse[8]; /* inverse: 1 / step, or 0 */
    int32_t first[8], span[8];
    uint32_t correction[16];
    int exact;
} fa_qlattice;

/*
 * A count of thresholds below a float32 magnitude a (exponent e, mantissa m):
 * binade i = clamp(e - 96, 0, 31) has binade[i] = offset | shift << 16, a lies
 * in bucket b = offset + (m >> shift), and bucket[0][b] = count | t1 << 8,
 * bucket[1][b] = t2 give the thresholds below the bucket and the mantissas of
 * the (at most two) inside it, 0x7fffff for none: count + (m > t1) + (m > t2).
 * planes[t][k] holds byte k of each entry of bucket[t] (for vector lookups).
 */
typedef struct {
    uint32_t binade[32];
    uint32_t bucket[2][256];
    uint8_t planes[2][4][256];
    fa_qlattice lattice;
} fa_qsearch;

/*
 * An 8-bit code map: 256 values, ascending, 0 among them at code zero (the
 * signed map has negative codes below it, the unsigned map none). The magnitude
 * ranks (0 for value 0) of the codes around |x| <= 1 are counts of thresholds
 * below |x|: of the midpoints between neighbouring magnitudes for the nearest
 * (search[0]), of the magnitudes for the one not above |x| (search[1]). Built
 * and proven exact in Python (fastadam/_formats.py). value_planes[k] holds byte
 * k of each value.
 */
typedef struct {
    float value[256];
    uint32_t zero;
    fa_qsearch search[2];
    uint8_t value_planes[4][256];
} fa_qmap;

/* Fill the byte planes and the lattices of q from its values and search tables. */
void fa_qmap_init(fa_qmap *q);

/* How the buffers of a compressed tensor are stored and rounded. */
typedef struct {
    fa_store param, grad, state; /* param, grad: F32 or BF16; every state buffer alike */
    int stochastic;              /* round BF16 and Q8 stores stochastically, else to nearest */
    size_t block;                /* Q8: elements per absmax, a power of two */
    const fa_qmap *qmap[2];      /* Q8: the signed map (exp_avg) and the unsigned one */
} fa_format;

/* One tensor of a fused call: n elements in each of its buffers. */
typedef struct {
    size_t n;
    fa_dtype dtype; /* every buffer's, or FA_FLOAT32 (compute type) with a format */
    void *buf[FA_MAX_BUFS];
    const double *coef; /* FA_MAX_COEF values, laid out by the enum above */
    /* Compressed tensors only (format NULL: every buffer holds dtype): */
    const fa_format *format;
    float *absmax[FA_MAX_STATE]; /* Q8: one per block of state buffer j (buf[2 + j]) */
    uint16_t *param_copy;        /* if not NULL, also receives the new param as bfloat16 */
    uint32_t key;                /* stochastic rounding: fa_rounding_key of this step */
} fa_tensor;

/*
 * The key of one tensor's step. Stochastic rounding of element i (its index in
 * the tensor) uses fa_hash32(fa_hash32(key) + i) and
 * fa_hash32(fa_hash32(key ^ 0x9e3779b9) + i) (see compressed_impl.h), so the
 * bits do not depend on how the elements are split over threads. seed is the
 * user's; tensor tells apart the params of one optimizer.
 */
uint32_t fa_rounding_key(uint32_t seed, uint64_t tensor, uint64_t step);

/* The nearest 8-bit codes of n values x (|x| <= 1) under map q: the kernels' search. */
void fa_q8_encode(const fa_qmap *q, const float *x, size_t n, uint8_t *codes);

/* Whether algo has compressed kernels (bfloat16 and 8-bit formats). */
int fa_has_compressed(fa_algo algo);

/*
 * The buffers algo cannot run without: bit b stands for buf[b]. The others are
 * optional (NULL switches their feature off). The caller checks this mask
 * before fa_run; 0 for an unknown algo.
 */
unsigned fa_required_buffers(fa_algo algo);

/*
 * Update every tensor in place, splitting the elements over up to nthreads threads
 * (one without OpenMP, or below 2). The caller passes the count, read once, so that a
 * running step never reads a setting another thread may be changing.
 */
void fa_run(fa_algo algo, const fa_tensor *tensors, size_t ntensors, int nthreads);

/* Whether buffer number buf of any tensor holds a NaN or an infinity (0 if absent). */
int fa_any_nonfinite(const fa_tensor *tensors, size_t ntensors, int buf, int nthreads);

/* The thread count callers pass to fa_run and fa_any_nonfinite (1 without OpenMP). */
void fa_set_num_threads(int n);
int fa_get_num_threads(void);

/*
 * The split of fa_run, as pure functions of sizes (exported for tests at any size).
 * Thread id of nth takes elements [*lo, *hi) of total laid end to end: whole grains
 * of 16 elements, floor(grains * id / nth) of them before it. Of a tensor that starts
 * at element start of them and holds n elements in blocks of grain (an 8-bit state's
 * block, else 1), the range [lo, hi) covers its elements [*begin, *begin + *count),
 * both ends rounded up to a block boundary (or n).
 */
void fa_thread_range(size_t total, size_t nth, size_t id, size_t *lo, size_t *hi);
void fa_slice(size_t start, size_t n, size_t grain, size_t lo, size_t hi, size_t *begin,
              size_t *count);
int fa_has_openmp(void);

/* The instruction set the kernels dispatch to: "avx512" (x86-64-v4), "avx2" or "baseline". */
const char *fa_simd_level(void);

/*
 * How the 8-bit kernels look up their tables: "byte tables" (AVX-512 VBMI byte
 * permutes) where the CPU has them, else "lattice" (the encoder by arithmetic,
 * AVX2 and AVX-512 without VBMI) or "loads" (scalar or gathered). enable = 0
 * switches the byte tables off (for tests); all compute the same bits.
 */
const char *fa_q8_lookups(void);
void fa_q8_set_byte_tables(int enable);

#endif /* FASTADAM_H */
