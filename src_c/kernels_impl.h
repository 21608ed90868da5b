/*
 * Every algorithm, written once. kernels.c includes this file once per dtype
 * with FA_T (the element type), FA_SQRT and FA_NAME(algo) defined.
 *
 * Element i of every output depends only on element i of the inputs, and the
 * vectorised body and the scalar tail compute the same bits (no FMA
 * contraction, see setup.py), so results do not depend on array length,
 * offset or the number of threads.
 *
 * The operation order follows torch.optim's single-tensor implementations;
 * comments give each update in that order. Loop-invariant options are selects,
 * which the compiler hoists or blends; a NULL state buffer turns its feature off.
 */

#define FA_GRAD(i) (maximize ? -g[i] : g[i])
#define FA_L2(gi, pi) (weight_decay != 0 ? (gi) + weight_decay * (pi) : (gi))

/* lerp(a, b, w) as torch computes it: a + w*(b-a) for |w| < 0.5, else b - (1-w)*(b-a). */
FA_INLINE FA_T FA_NAME(lerp)(FA_T a, FA_T b, FA_T w, int small)
{
    const FA_T d = b - a;
    return small ? a + w * d : b + (w - (FA_T)1) * d;
}

/*
 * select(mask, a, b): a where mask is all ones, b where it is zero, on the bits.
 * Branchless, so that a loop-invariant option is a vector operation even in a
 * loop too large for the compiler to version on it.
 */
FA_INLINE FA_T FA_NAME(select)(FA_UINT mask, FA_T a, FA_T b)
{
    FA_UINT x, y;
    memcpy(&x, &a, sizeof x);
    memcpy(&y, &b, sizeof y);
    x = (x & mask) | (y & ~mask);
    memcpy(&a, &x, sizeof a);
    return a;
}

/* lerp, with the choice of formula as a select mask (all ones for |w| < 0.5). */
FA_INLINE FA_T FA_NAME(lerp_select)(FA_T a, FA_T b, FA_T w, FA_UINT small)
{
    const FA_T d = b - a;
    return FA_NAME(select)(small, a + w * d, b + (w - (FA_T)1) * d);
}

/*
 * Adam / AdamW:  g = ±grad [+ wd*p];  p *= 1 - lr*wd (decoupled);
 * m = lerp(m, g, 1-b1);  v = b2*v + (1-b2)*g*g;  vmax = max(vmax, v) (amsgrad);
 * p -= step_size*m / (sqrt(v)/sqrt(1-b2^t) + eps)
 *
 * Written once as the update of one element (s = {m, v, vmax}), used by the
 * loop below and by the compressed-state kernels (compressed_impl.h, in float).
 */
typedef struct {
    FA_T w1, beta2, w2, eps, step_size, bc2_sqrt, weight_decay, param_scale;
    FA_UINT small, l2, decoupled, maximize; /* options, as select masks */
} FA_NAME(adam_coef);

FA_ALWAYS_INLINE FA_NAME(adam_coef) FA_NAME(adam_coef_load)(const double *k)
{
    const FA_NAME(adam_coef) c = {
        .w1 = (FA_T)(1.0 - k[FA_ADAM_BETA1]),
        .beta2 = (FA_T)k[FA_ADAM_BETA2],
        .w2 = (FA_T)(1.0 - k[FA_ADAM_BETA2]),
        .eps = (FA_T)k[FA_ADAM_EPS],
        .step_size = (FA_T)k[FA_ADAM_STEP_SIZE],
        .bc2_sqrt = (FA_T)k[FA_ADAM_BIAS_CORRECTION2_SQRT],
        .weight_decay = (FA_T)k[FA_ADAM_WEIGHT_DECAY],
        .param_scale = (FA_T)k[FA_ADAM_PARAM_SCALE],
        .small = -(FA_UINT)(1.0 - k[FA_ADAM_BETA1] < 0.5),
        .l2 = -(FA_UINT)((FA_T)k[FA_ADAM_WEIGHT_DECAY] != 0),
        .decoupled = -(FA_UINT)(k[FA_ADAM_PARAM_SCALE] != 1.0),
        .maximize = -(FA_UINT)(k[FA_ADAM_MAXIMIZE] != 0.0),
    };
    return c;
}

/*
 * Whether c has the common options: beta1 > 0.5, no L2 weight decay, not
 * maximize. A loop specialised on them takes c through adam_coef_common, which
 * makes those options constants, so that their selects fold away.
 */
FA_ALWAYS_INLINE int FA_NAME(adam_is_common)(const FA_NAME(adam_coef) *c)
{
    return c->small == (FA_UINT)-1 && c->l2 == 0 && c->maximize == 0;
}

FA_ALWAYS_INLINE FA_NAME(adam_coef) FA_NAME(adam_coef_common)(FA_NAME(adam_coef) c, const int common)
{
    if (common) {
        c.small = (FA_UINT)-1;
        c.l2 = 0;
        c.maximize = 0;
    }
    return c;
}

/* One element: p and s = {m, v, vmax} in and out, g the gradient; amsgrad uses s[2]. */
FA_ALWAYS_INLINE void FA_NAME(adam_element)(const FA_NAME(adam_coef) *c, FA_T *p, FA_T grad,
                                            FA_T *s, const int amsgrad)
{
    const FA_T pi = FA_NAME(select)(c->decoupled, *p * c->param_scale, *p);
    const FA_T g = FA_NAME(select)(c->maximize, -grad, grad);
    const FA_T gi = FA_NAME(select)(c->l2, g + c->weight_decay * *p, g);
    const FA_T mi = FA_NAME(lerp_select)(s[0], gi, c->w1, c->small);
    const FA_T vi = s[1] * c->beta2 + c->w2 * gi * gi;
    FA_T denom_v = vi;
    if (amsgrad) {
        denom_v = s[2] < vi ? vi : s[2];
        s[2] = denom_v;
    }
    const FA_T denom = FA_SQRT(denom_v) / c->bc2_sqrt + c->eps;
    s[0] = mi;
    s[1] = vi;
    *p = pi - c->step_size * mi / denom;
}

FA_ALWAYS_INLINE void FA_NAME(adam_loop)(size_t n, void *const *buf,
                                         const FA_NAME(adam_coef) *coef, const int amsgrad,
                                         const int common)
{
    FA_T *FA_RESTRICT p = buf[0];
    const FA_T *FA_RESTRICT g = buf[1];
    FA_T *FA_RESTRICT m = buf[2];
    FA_T *FA_RESTRICT v = buf[3];
    FA_T *FA_RESTRICT vmax = buf[4];
    const FA_NAME(adam_coef) c = FA_NAME(adam_coef_common)(*coef, common);

    for (size_t i = 0; i < n; i++) {
        FA_T pi = p[i];
        FA_T s[3] = {m[i], v[i], amsgrad ? vmax[i] : 0};
        FA_NAME(adam_element)(&c, &pi, g[i], s, amsgrad);
        m[i] = s[0];
        v[i] = s[1];
        if (amsgrad)
            vmax[i] = s[2];
        p[i] = pi;
    }
}

FA_KERNEL void FA_NAME(adam)(size_t n, void *const *buf, const double *k)
{
    const FA_NAME(adam_coef) c = FA_NAME(adam_coef_load)(k);
    const int common = FA_NAME(adam_is_common)(&c);

    if (buf[4] != NULL && common)
        FA_NAME(adam_loop)(n, buf, &c, 1, 1);
    else if (buf[4] != NULL)
        FA_NAME(adam_loop)(n, buf, &c, 1, 0);
    else if (common)
        FA_NAME(adam_loop)(n, buf, &c, 0, 1);
    else
        FA_NAME(adam_loop)(n, buf, &c, 0, 0);
}

/*
 * SGD:  g = ±grad [+ wd*p];  b = g on the first step, else b = mom*b + (1-dampening)*g;
 * g = nesterov ? g + mom*b : b;  p -= lr*g
 */
FA_KERNEL void FA_NAME(sgd)(size_t n, void *const *buf, const double *k)
{
    FA_T *FA_RESTRICT p = buf[0];
    const FA_T *FA_RESTRICT g = buf[1];
    FA_T *FA_RESTRICT b = buf[2];
    const FA_T lr = (FA_T)k[FA_SGD_LR];
    const FA_T momentum = (FA_T)k[FA_SGD_MOMENTUM];
    const FA_T w = (FA_T)(1.0 - k[FA_SGD_DAMPENING]);
    const FA_T weight_decay = (FA_T)k[FA_SGD_WEIGHT_DECAY];
    const int nesterov = k[FA_SGD_NESTEROV] != 0.0;
    const int maximize = k[FA_SGD_MAXIMIZE] != 0.0;
    const int first = k[FA_SGD_FIRST_STEP] != 0.0;

    if (b == NULL) {
        for (size_t i = 0; i < n; i++)
            p[i] = p[i] - lr * FA_L2(FA_GRAD(i), p[i]);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const FA_T gi = FA_L2(FA_GRAD(i), p[i]);
        const FA_T bi = first ? gi : b[i] * momentum + w * gi;
        b[i] = bi;
        p[i] = p[i] - lr * (nesterov ? gi + momentum * bi : bi);
    }
}

/*
 * RMSprop:  g = ±grad [+ wd*p];  s = alpha*s + (1-alpha)*g*g;
 * centered: a = lerp(a, g, 1-alpha), avg = sqrt(s - a*a) + eps; else avg = sqrt(s) + eps;
 * momentum: b = mom*b + g/avg, p -= lr*b;  else p -= lr*g/avg
 */
FA_ALWAYS_INLINE void FA_NAME(rmsprop_loop)(size_t n, void *const *buf, const double *k,
                                                   const int centered, const int with_momentum)
{
    FA_T *FA_RESTRICT p = buf[0];
    const FA_T *FA_RESTRICT g = buf[1];
    FA_T *FA_RESTRICT s = buf[2];
    FA_T *FA_RESTRICT a = buf[3];
    FA_T *FA_RESTRICT b = buf[4];
    const FA_T lr = (FA_T)k[FA_RMSPROP_LR];
    const FA_T alpha = (FA_T)k[FA_RMSPROP_ALPHA];
    const FA_T w = (FA_T)(1.0 - k[FA_RMSPROP_ALPHA]);
    const int small = 1.0 - k[FA_RMSPROP_ALPHA] < 0.5;
    const FA_T eps = (FA_T)k[FA_RMSPROP_EPS];
    const FA_T weight_decay = (FA_T)k[FA_RMSPROP_WEIGHT_DECAY];
    const FA_T momentum = (FA_T)k[FA_RMSPROP_MOMENTUM];
    const int maximize = k[FA_RMSPROP_MAXIMIZE] != 0.0;

    for (size_t i = 0; i < n; i++) {
        const FA_T gi = FA_L2(FA_GRAD(i), p[i]);
        const FA_T si = s[i] * alpha + w * gi * gi;
        FA_T centred = si;
        s[i] = si;
        if (centered) {
            const FA_T ai = FA_NAME(lerp)(a[i], gi, w, small);
            a[i] = ai;
            centred = si - ai * ai;
        }
        const FA_T avg = FA_SQRT(centred) + eps;
        if (with_momentum) {
            const FA_T bi = b[i] * momentum + gi / avg;
            b[i] = bi;
            p[i] = p[i] - lr * bi;
        } else {
            p[i] = p[i] - lr * gi / avg;
        }
    }
}

FA_KERNEL void FA_NAME(rmsprop)(size_t n, void *const *buf, const double *k)
{
    const int centered = buf[3] != NULL, with_momentum = buf[4] != NULL;

    if (centered && with_momentum)
        FA_NAME(rmsprop_loop)(n, buf, k, 1, 1);
    else if (centered)
        FA_NAME(rmsprop_loop)(n, buf, k, 1, 0);
    else if (with_momentum)
        FA_NAME(rmsprop_loop)(n, buf, k, 0, 1);
    else
        FA_NAME(rmsprop_loop)(n, buf, k, 0, 0);
}

/* Adagrad:  g = ±grad [+ wd*p];  s += g*g;  p -= clr*g / (sqrt(s) + eps) */
FA_KERNEL void FA_NAME(adagrad)(size_t n, void *const *buf, const double *k)
{
    FA_T *FA_RESTRICT p = buf[0];
    const FA_T *FA_RESTRICT g = buf[1];
    FA_T *FA_RESTRICT s = buf[2];
    const FA_T clr = (FA_T)k[FA_ADAGRAD_CLR];
    const FA_T eps = (FA_T)k[FA_ADAGRAD_EPS];
    const FA_T weight_decay = (FA_T)k[FA_ADAGRAD_WEIGHT_DECAY];
    const int maximize = k[FA_ADAGRAD_MAXIMIZE] != 0.0;

    for (size_t i = 0; i < n; i++) {
        const FA_T gi = FA_L2(FA_GRAD(i), p[i]);
        const FA_T si = s[i] + gi * gi;
        s[i] = si;
        p[i] = p[i] - clr * gi / (FA_SQRT(si) + eps);
    }
}

/*
 * Adamax (Kingma & Ba 2014, section 7.1):  g = ±grad [+ wd*p];  m = lerp(m, g, 1-b1);
 * u = max(b2*u, |g| + eps);  p -= lr/(1-b1^t) * m/u
 */
FA_KERNEL void FA_NAME(adamax)(size_t n, void *const *buf, const double *k)
{
    FA_T *FA_RESTRICT p = buf[0];
    const FA_T *FA_RESTRICT g = buf[1];
    FA_T *FA_RESTRICT m = buf[2];
    FA_T *FA_RESTRICT u = buf[3];
    const FA_T w1 = (FA_T)(1.0 - k[FA_ADAMAX_BETA1]);
    const int small = 1.0 - k[FA_ADAMAX_BETA1] < 0.5;
    const FA_T beta2 = (FA_T)k[FA_ADAMAX_BETA2];
    const FA_T eps = (FA_T)k[FA_ADAMAX_EPS];
    const FA_T clr = (FA_T)k[FA_ADAMAX_CLR];
    const FA_T weight_decay = (FA_T)k[FA_ADAMAX_WEIGHT_DECAY];
    const int maximize = k[FA_ADAMAX_MAXIMIZE] != 0.0;

    for (size_t i = 0; i < n; i++) {
        const FA_T gi = FA_L2(FA_GRAD(i), p[i]);
        const FA_T mi = FA_NAME(lerp)(m[i], gi, w1, small);
        const FA_T decayed = u[i] * beta2;
        const FA_T fresh = (gi < 0 ? -gi : gi) + eps;
        const FA_T ui = decayed < fresh ? fresh : decayed;
        m[i] = mi;
        u[i] = ui;
        p[i] = p[i] - clr * mi / ui;
    }
}

/*
 * Lion (Chen et al. 2023):  g = ±grad;  c = b1*m + (1-b1)*g;
 * p = p*(1 - lr*wd) - lr*sign(c);  m = b2*m + (1-b2)*g
 */
FA_KERNEL void FA_NAME(lion)(size_t n, void *const *buf, const double *k)
{
    FA_T *FA_RESTRICT p = buf[0];
    const FA_T *FA_RESTRICT g = buf[1];
    FA_T *FA_RESTRICT m = buf[2];
    const FA_T lr = (FA_T)k[FA_LION_LR];
    const FA_T beta1 = (FA_T)k[FA_LION_BETA1];
    const FA_T w1 = (FA_T)(1.0 - k[FA_LION_BETA1]);
    const FA_T beta2 = (FA_T)k[FA_LION_BETA2];
    const FA_T w2 = (FA_T)(1.0 - k[FA_LION_BETA2]);
    const FA_T param_scale = (FA_T)(1.0 - k[FA_LION_LR] * k[FA_LION_WEIGHT_DECAY]);
    const int decoupled = k[FA_LION_WEIGHT_DECAY] != 0.0;
    const int maximize = k[FA_LION_MAXIMIZE] != 0.0;

    for (size_t i = 0; i < n; i++) {
        const FA_T gi = FA_GRAD(i);
        const FA_T c = m[i] * beta1 + w1 * gi;
        const FA_T sign = c > 0 ? (FA_T)1 : (c < 0 ? (FA_T)-1 : c);
        const FA_T pi = decoupled ? p[i] * param_scale : p[i];
        p[i] = pi - lr * sign;
        m[i] = m[i] * beta2 + w2 * gi;
    }
}

/*
 * What NAdam and RAdam share with Adam:  g = ±grad [+ wd*p];  p *= 1 - lr*wd (decoupled);
 * m = lerp(m, g, 1-b1);  v = b2*v + (1-b2)*g*g.  Options are select masks.
 */
typedef struct {
    FA_T w1, beta2, w2, weight_decay, param_scale;
    FA_UINT small, l2, decoupled, maximize;
} FA_NAME(moments_coef);

/* The coefficients at the given places of k (a layout of fastadam.h). */
FA_ALWAYS_INLINE FA_NAME(moments_coef) FA_NAME(moments_coef_load)(const double *k, int beta1,
                                                                  int beta2, int weight_decay,
                                                                  int param_scale, int maximize)
{
    const FA_NAME(moments_coef) c = {
        .w1 = (FA_T)(1.0 - k[beta1]),
        .beta2 = (FA_T)k[beta2],
        .w2 = (FA_T)(1.0 - k[beta2]),
        .weight_decay = (FA_T)k[weight_decay],
        .param_scale = (FA_T)k[param_scale],
        .small = -(FA_UINT)(1.0 - k[beta1] < 0.5),
        .l2 = -(FA_UINT)((FA_T)k[weight_decay] != 0),
        .decoupled = -(FA_UINT)(k[param_scale] != 1.0),
        .maximize = -(FA_UINT)(k[maximize] != 0.0),
    };
    return c;
}

/* One element: returns the decayed param p; g (the gradient in), m and v become the new g, m, v. */
FA_ALWAYS_INLINE FA_T FA_NAME(moments)(const FA_NAME(moments_coef) *c, FA_T p, FA_T *g, FA_T *m,
                                       FA_T *v)
{
    const FA_T grad = FA_NAME(select)(c->maximize, -*g, *g);
    const FA_T gi = FA_NAME(select)(c->l2, grad + c->weight_decay * p, grad);

    *g = gi;
    *m = FA_NAME(lerp_select)(*m, gi, c->w1, c->small);
    *v = *v * c->beta2 + c->w2 * gi * gi;
    return FA_NAME(select)(c->decoupled, p * c->param_scale, p);
}

/*
 * NAdam (Dozat 2016):  g, p, m, v as moments;  d = sqrt(v / (1-b2^t)) + eps;
 * p += grad_coef*g/d;  p += exp_avg_coef*m/d
 */
FA_KERNEL void FA_NAME(nadam)(size_t n, void *const *buf, const double *k)
{
    FA_T *FA_RESTRICT p = buf[0];
    const FA_T *FA_RESTRICT g = buf[1];
    FA_T *FA_RESTRICT m = buf[2];
    FA_T *FA_RESTRICT v = buf[3];
    const FA_NAME(moments_coef) c =
        FA_NAME(moments_coef_load)(k, FA_NADAM_BETA1, FA_NADAM_BETA2, FA_NADAM_WEIGHT_DECAY,
                                   FA_NADAM_PARAM_SCALE, FA_NADAM_MAXIMIZE);
    const FA_T eps = (FA_T)k[FA_NADAM_EPS];
    const FA_T bc2 = (FA_T)k[FA_NADAM_BIAS_CORRECTION2];
    const FA_T grad_coef = (FA_T)k[FA_NADAM_GRAD_COEF];
    const FA_T exp_avg_coef = (FA_T)k[FA_NADAM_EXP_AVG_COEF];

    for (size_t i = 0; i < n; i++) {
        FA_T gi = g[i], mi = m[i], vi = v[i];
        const FA_T pi = FA_NAME(moments)(&c, p[i], &gi, &mi, &vi);
        const FA_T denom = FA_SQRT(vi / bc2) + eps;
        const FA_T stepped = pi + grad_coef * gi / denom;
        m[i] = mi;
        v[i] = vi;
        p[i] = stepped + exp_avg_coef * mi / denom;
    }
}

/*
 * RAdam (Liu et al. 2019):  g, p, m, v as moments;  rectified (rho_t > 5):
 * p -= m/bc1*lr * (1/(sqrt(v) + eps) * sqrt(bc2)) * rect;  else p -= m/bc1*lr
 * (torch computes x / tensor as reciprocal(tensor) * x)
 */
FA_ALWAYS_INLINE void FA_NAME(radam_loop)(size_t n, void *const *buf, const double *k,
                                          const int rectified)
{
    FA_T *FA_RESTRICT p = buf[0];
    const FA_T *FA_RESTRICT g = buf[1];
    FA_T *FA_RESTRICT m = buf[2];
    FA_T *FA_RESTRICT v = buf[3];
    const FA_NAME(moments_coef) c =
        FA_NAME(moments_coef_load)(k, FA_RADAM_BETA1, FA_RADAM_BETA2, FA_RADAM_WEIGHT_DECAY,
                                   FA_RADAM_PARAM_SCALE, FA_RADAM_MAXIMIZE);
    const FA_T eps = (FA_T)k[FA_RADAM_EPS];
    const FA_T bc1 = (FA_T)k[FA_RADAM_BIAS_CORRECTION1];
    const FA_T lr = (FA_T)k[FA_RADAM_LR];
    const FA_T bc2_sqrt = (FA_T)k[FA_RADAM_BIAS_CORRECTION2_SQRT];
    const FA_T rect = (FA_T)k[FA_RADAM_RECT];

    for (size_t i = 0; i < n; i++) {
        FA_T gi = g[i], mi = m[i], vi = v[i];
        const FA_T pi = FA_NAME(moments)(&c, p[i], &gi, &mi, &vi);
        const FA_T step = mi / bc1 * lr;
        m[i] = mi;
        v[i] = vi;
        if (rectified)
            p[i] = pi - step * ((FA_T)1 / (FA_SQRT(vi) + eps) * bc2_sqrt) * rect;
        else
            p[i] = pi - step;
    }
}

FA_KERNEL void FA_NAME(radam)(size_t n, void *const *buf, const double *k)
{
    if (k[FA_RADAM_RECT] != 0.0)
        FA_NAME(radam_loop)(n, buf, k, 1);
    else
        FA_NAME(radam_loop)(n, buf, k, 0);
}

/*
 * Rprop (Riedmiller & Braun 1993), as torch.optim.Rprop:  g = ±grad;
 * s = sign(g*prev) -> etaplus (> 0), etaminus (< 0), 1 (0 or NaN), replaced in that
 * order as torch does (so an etaminus that is 0 in FA_T becomes 1);
 * step_size = clamp(step_size*s, min, max);  g = 0 where s == etaminus;
 * p = p + (-1*sign(g))*step_size (addcmul, value -1);  prev = g.
 * sign() is 0 for NaN, as torch's; clamp keeps NaN.
 */
FA_KERNEL void FA_NAME(rprop)(size_t n, void *const *buf, const double *k)
{
    FA_T *FA_RESTRICT p = buf[0];
    const FA_T *FA_RESTRICT g = buf[1];
    FA_T *FA_RESTRICT prev = buf[2];
    FA_T *FA_RESTRICT step_size = buf[3];
    const FA_T etaminus = (FA_T)k[FA_RPROP_ETAMINUS];
    const FA_T etaplus = (FA_T)k[FA_RPROP_ETAPLUS];
    const FA_T shrink = etaminus == 0 ? (FA_T)1 : etaminus; /* what s < 0 becomes */
    const FA_T lo = (FA_T)k[FA_RPROP_STEP_SIZE_MIN];
    const FA_T hi = (FA_T)k[FA_RPROP_STEP_SIZE_MAX];
    const int maximize = k[FA_RPROP_MAXIMIZE] != 0.0;

    for (size_t i = 0; i < n; i++) {
        const FA_T gi = FA_GRAD(i);
        const FA_T d = gi * prev[i];
        const FA_T s = d > 0 ? etaplus : (d < 0 ? shrink : (FA_T)1);
        FA_T size = step_size[i] * s;
        size = size < lo ? lo : size; /* clamp_(min, max): max(x, min), then min(., max) */
        size = size > hi ? hi : size;
        const FA_T kept = s == etaminus ? (FA_T)0 : gi;
        const FA_T sign = kept > 0 ? (FA_T)1 : (kept < 0 ? (FA_T)-1 : (FA_T)0);
        p[i] = p[i] + ((FA_T)-1 * sign) * size;
        step_size[i] = size;
        prev[i] = kept;
    }
}

/*
 * The memory-traffic ceiling: Adam's reads and writes in Adam's order, trivial
 * maths.  x += scale*g for x in p, m, v (scale = 0 leaves finite values as they are).
 */
FA_KERNEL void FA_NAME(traffic)(size_t n, void *const *buf, const double *k)
{
    FA_T *FA_RESTRICT p = buf[0];
    const FA_T *FA_RESTRICT g = buf[1];
    FA_T *FA_RESTRICT m = buf[2];
    FA_T *FA_RESTRICT v = buf[3];
    const FA_T scale = (FA_T)k[FA_TRAFFIC_SCALE];

    for (size_t i = 0; i < n; i++) {
        const FA_T gi = g[i] * scale, pi = p[i], mi = m[i], vi = v[i];
        m[i] = mi + gi;
        v[i] = vi + gi;
        p[i] = pi + gi;
    }
}

/* Whether any of the n values is NaN or infinite (x*0 is 0 exactly when x is finite). */
FA_KERNEL int FA_NAME(any_nonfinite)(size_t n, const void *values)
{
    const FA_T *FA_RESTRICT x = values;
    int found = 0;

    for (size_t i = 0; i < n; i++)
        found |= x[i] * 0 != 0;
    return found;
}

#undef FA_GRAD
#undef FA_L2
