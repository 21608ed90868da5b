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

#define FA_MAX_BUFS 5  /* param, grad and up to three state buffers */
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

enum { /* the memory-traffic ceiling */
    FA_TRAFFIC_SCALE
};

/* One tensor of a fused call: n elements in each of its buffers. */
typedef struct {
    size_t n;
    fa_dtype dtype;
    void *buf[FA_MAX_BUFS];
    const double *coef; /* FA_MAX_COEF values, laid out by the enum above */
} fa_tensor;

/* Update every tensor in place, splitting the elements over the threads. */
void fa_run(fa_algo algo, const fa_tensor *tensors, size_t ntensors);

/* Whether buffer number buf of any tensor holds a NaN or an infinity (0 if absent). */
int fa_any_nonfinite(const fa_tensor *tensors, size_t ntensors, int buf);

/* Threads used by fa_run and fa_any_nonfinite (1 when built without OpenMP). */
void fa_set_num_threads(int n);
int fa_get_num_threads(void);
int fa_has_openmp(void);

/* The instruction set the kernels dispatch to: "avx512f", "avx2" or "baseline". */
const char *fa_simd_level(void);

#endif /* FASTADAM_H */
