"""One fused, in-place update per call: the stateless core of every optimizer.

Each function checks its hyperparameters (torch.optim's messages) and every
buffer (dtype, shape, contiguity, writability, overlap) before touching any of
them, then updates ``param`` and the state buffers in one pass over memory with
the GIL released (from 4 096 elements: a shorter call keeps it). Buffers are
float32 or float64 NumPy arrays of one dtype and shape; nothing is ever copied
or cast. ``adam`` also takes compressed formats: bfloat16 params and grads,
bfloat16 or 8-bit state, a bfloat16 param copy.
"""

from __future__ import annotations

import numpy as np

from . import _algorithms, _ext
from . import _validate as check

# What adam() calls at every step, as module globals: compiled, a global is a cached
# lookup, where an attribute of a module is a dictionary lookup at every call.
from ._algorithms import adam_at, adam_hyperparameters
from ._ext import ADAM, run1
from ._formats import DEFAULT_SPEC
from ._formats import spec as format_spec
from ._validate import flag as check_flag
from ._validate import step as check_step

__all__ = ["adagrad", "adam", "adamax", "lion", "nadam", "radam", "rmsprop", "rprop", "sgd"]


def _require(name: str, buffer: np.ndarray | None, needed: bool, reason: str) -> np.ndarray | None:
    """The optional state buffer ``name``: required when ``needed``, refused otherwise."""
    if needed and buffer is None:
        raise ValueError(f"{name} is required when {reason}")
    if not needed and buffer is not None:
        raise ValueError(f"{name} was given but is only used when {reason}")
    return buffer


def _arrays(names: tuple[str, ...], buffers: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """``buffers``, checked to be all present: the kernel reads every one of them."""
    for name, buffer in zip(names, buffers, strict=True):
        if buffer is None:
            raise TypeError(f"{name} must be a numpy.ndarray, got NoneType")
    return buffers


def adam(
    param: np.ndarray,
    grad: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    *,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    amsgrad: bool = False,
    max_exp_avg_sq: np.ndarray | None = None,
    maximize: bool = False,
    exp_avg_absmax: np.ndarray | None = None,
    exp_avg_sq_absmax: np.ndarray | None = None,
    max_exp_avg_sq_absmax: np.ndarray | None = None,
    param_copy: np.ndarray | None = None,
    block_size: int = 256,
    rounding: str | None = None,
    seed: int = 0,
) -> None:
    r"""One Adam (or AdamW) step, in place.

    Kingma & Ba, "Adam: A Method for Stochastic Optimization" (arXiv:1412.6980);
    with ``decoupled_weight_decay``, Loshchilov & Hutter, "Decoupled Weight Decay
    Regularization" (arXiv:1711.05101). Same operations, in the same order, as
    ``torch.optim.Adam``:

    .. math::

        g &\leftarrow \pm\,\mathrm{grad} \;(+\,\lambda p \text{ for L2 decay}),
        \qquad p \leftarrow p\,(1 - \eta\lambda) \text{ (decoupled)} \\
        m &\leftarrow \beta_1 m + (1-\beta_1)\,g, \qquad
        v \leftarrow \beta_2 v + (1-\beta_2)\,g^2, \qquad
        \hat v = \max(\hat v, v) \text{ (amsgrad)} \\
        p &\leftarrow p - \frac{\eta}{1-\beta_1^t}\,
             \frac{m}{\sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon}

    Parameters
    ----------
    param, grad, exp_avg, exp_avg_sq : numpy.ndarray
        float32 or float64, all of one dtype and shape, C-contiguous. ``param``,
        ``exp_avg`` and ``exp_avg_sq`` are updated in place; ``grad`` is only read.
    step : int
        The 1-based count of this step, used for bias correction.
    lr, beta1, beta2, eps, weight_decay : float
        Hyperparameters, as in ``torch.optim.Adam``.
    decoupled_weight_decay : bool
        Decay the param directly (AdamW) instead of adding ``weight_decay * param``
        to the gradient.
    amsgrad : bool
        Divide by the running maximum of ``exp_avg_sq``, kept in ``max_exp_avg_sq``.
    max_exp_avg_sq : numpy.ndarray, optional
        Required with ``amsgrad``, updated in place.
    maximize : bool
        Ascend instead of descend.

    Compressed formats (computed in float32 registers, one pass over memory):

    - ``param`` and ``grad`` may each be float32 or bfloat16 (``ml_dtypes.bfloat16``);
    - the state buffers (all alike) may be float32, bfloat16, or uint8 codes of
      block-wise 8-bit quantization (Dettmers et al., arXiv:2110.02861): then
      each has a float32 absmax (``exp_avg_absmax``, ...) of
      ``ceil(param.size / block_size)`` values; ``exp_avg`` uses the signed
      dynamic map and the others the unsigned one (``fastadam._formats``);
    - ``param_copy``, a bfloat16 array, receives the new float32 param rounded
      to nearest (master weights and their low-precision copy, in one pass).

    block_size : int
        Elements per absmax of 8-bit state: a power of two from 64 to 2048.
    rounding : {None, "nearest", "stochastic"}
        How bfloat16 and 8-bit stores round. None: stochastic if the param is
        bfloat16 or the state bfloat16 or 8-bit (round-to-nearest stalls
        there), else nearest. A ``param_copy`` always rounds to nearest.
    seed : int
        Stochastic rounding draws from a hash of (seed, step, element index), so
        results repeat bit for bit at any thread count.

    Raises
    ------
    TypeError, ValueError
        For a bad hyperparameter or buffer; no buffer is modified then.

    Examples
    --------
    >>> import numpy as np
    >>> from fastadam import functional as F
    >>> p = np.ones(4, np.float32); g = np.full(4, 0.5, np.float32)
    >>> m, v = np.zeros_like(p), np.zeros_like(p)
    >>> F.adam(p, g, m, v, step=1, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8)
    >>> p.round(6)
    array([0.9, 0.9, 0.9, 0.9], dtype=float32)
    """
    t = check_step(step)  # _algorithms.adam's checks, in its order, called positionally
    checked = adam_hyperparameters(
        lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, maximize
    )
    if amsgrad is not (max_exp_avg_sq is not None):  # else: checked, and consistent
        _require("max_exp_avg_sq", max_exp_avg_sq, check_flag("amsgrad", amsgrad), "amsgrad=True")
    run1(
        ADAM,
        _ADAM_NAMES,
        (
            param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq,
            exp_avg_absmax, exp_avg_sq_absmax, max_exp_avg_sq_absmax, param_copy,
        ),
        adam_at(checked, t),
        DEFAULT_SPEC  # format_spec's answer for its defaults, without the call
        if rounding is None and type(block_size) is int and block_size == 256
        and type(seed) is int and seed == 0
        else format_spec(rounding, block_size, seed),
        t,
    )  # fmt: skip


_ADAM_NAMES = (
    "param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq",
    "exp_avg_absmax", "exp_avg_sq_absmax", "max_exp_avg_sq_absmax", "param_copy",
)  # fmt: skip


def sgd(
    param: np.ndarray,
    grad: np.ndarray,
    momentum_buffer: np.ndarray | None = None,
    *,
    step: int,
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    maximize: bool = False,
) -> None:
    r"""One SGD step (with momentum, dampening and Nesterov), in place.

    As ``torch.optim.SGD``; with momentum :math:`\mu` and dampening :math:`\tau`:

    .. math::

        g \leftarrow \pm\,\mathrm{grad} + \lambda p, \quad
        b \leftarrow \mu b + (1-\tau)\,g \;(b \leftarrow g \text{ on step 1}), \quad
        p \leftarrow p - \eta\,(g + \mu b \text{ if Nesterov else } b)

    Parameters
    ----------
    param, grad : numpy.ndarray
        float32 or float64, one dtype and shape, C-contiguous.
    momentum_buffer : numpy.ndarray, optional
        Required when ``momentum != 0``, updated in place.
    step : int
        1-based step count; on step 1 the buffer is set to the gradient, undamped.
    lr, momentum, dampening, weight_decay : float
        Hyperparameters, as in ``torch.optim.SGD``.
    nesterov, maximize : bool
        Nesterov momentum (needs momentum > 0 and zero dampening); ascend.

    Examples
    --------
    >>> import numpy as np
    >>> from fastadam import functional as F
    >>> p = np.ones(2); g = np.array([1.0, -1.0]); b = np.zeros(2)
    >>> F.sgd(p, g, b, step=1, lr=0.1, momentum=0.9)
    >>> p
    array([0.9, 1.1])
    """
    t = check.step(step)
    coef = _algorithms.sgd(
        lr=lr,
        momentum=momentum,
        dampening=dampening,
        weight_decay=weight_decay,
        nesterov=nesterov,
        maximize=maximize,
        first_step=t == 1,
    )
    _require("momentum_buffer", momentum_buffer, coef[1] != 0, "momentum != 0")
    _ext.run1(_ext.SGD, ("param", "grad", "momentum_buffer"), (param, grad, momentum_buffer), coef)


def rmsprop(
    param: np.ndarray,
    grad: np.ndarray,
    square_avg: np.ndarray,
    *,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    centered: bool = False,
    grad_avg: np.ndarray | None = None,
    momentum_buffer: np.ndarray | None = None,
    maximize: bool = False,
) -> None:
    r"""One RMSprop step, in place (Hinton, Lecture 6e of "Neural Networks for ML").

    As ``torch.optim.RMSprop`` (eps added after the square root):

    .. math::

        s \leftarrow \alpha s + (1-\alpha) g^2, \quad
        \bar g \leftarrow \alpha \bar g + (1-\alpha) g \text{ (centered)}, \quad
        d = \sqrt{s - \bar g^2} + \epsilon, \quad
        b \leftarrow \mu b + g / d, \quad p \leftarrow p - \eta\, b

    (without momentum, :math:`p \leftarrow p - \eta\, g / d`).

    Parameters
    ----------
    param, grad, square_avg : numpy.ndarray
        float32 or float64, one dtype and shape, C-contiguous.
    grad_avg : numpy.ndarray, optional
        Required with ``centered``, updated in place.
    momentum_buffer : numpy.ndarray, optional
        Required when ``momentum > 0``, updated in place.

    Examples
    --------
    >>> import numpy as np
    >>> from fastadam import functional as F
    >>> p = np.ones(2); g = np.array([1.0, -1.0]); s = np.zeros(2)
    >>> F.rmsprop(p, g, s, lr=0.01, alpha=0.99, eps=1e-8)
    >>> p.round(6)
    array([0.9, 1.1])
    """
    coef = _algorithms.rmsprop(
        lr=lr,
        alpha=alpha,
        eps=eps,
        weight_decay=weight_decay,
        momentum=momentum,
        centered=centered,
        maximize=maximize,
    )
    _require("grad_avg", grad_avg, bool(centered), "centered=True")
    _require("momentum_buffer", momentum_buffer, coef[4] > 0, "momentum > 0")
    _ext.run1(
        _ext.RMSPROP,
        ("param", "grad", "square_avg", "grad_avg", "momentum_buffer"),
        (param, grad, square_avg, grad_avg, momentum_buffer),
        coef,
    )


def adagrad(
    param: np.ndarray,
    grad: np.ndarray,
    state_sum: np.ndarray,
    *,
    step: int,
    lr: float,
    eps: float,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> None:
    r"""One Adagrad step, in place (Duchi, Hazan & Singer, JMLR 2011).

    As ``torch.optim.Adagrad``:

    .. math::

        s \leftarrow s + g^2, \quad
        p \leftarrow p - \frac{\eta}{1 + (t-1)\,\delta}\, \frac{g}{\sqrt{s} + \epsilon}

    Examples
    --------
    >>> import numpy as np
    >>> from fastadam import functional as F
    >>> p = np.ones(2); g = np.array([2.0, -2.0]); s = np.zeros(2)
    >>> F.adagrad(p, g, s, step=1, lr=0.1, eps=1e-10)
    >>> p
    array([0.9, 1.1])
    """
    coef = _algorithms.adagrad(
        step=step, lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps, maximize=maximize
    )
    _ext.run1(_ext.ADAGRAD, ("param", "grad", "state_sum"), (param, grad, state_sum), coef)


def adamax(
    param: np.ndarray,
    grad: np.ndarray,
    exp_avg: np.ndarray,
    exp_inf: np.ndarray,
    *,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> None:
    r"""One Adamax step, in place: Adam's infinity-norm variant (arXiv:1412.6980, section 7.1).

    As ``torch.optim.Adamax``:

    .. math::

        m \leftarrow \beta_1 m + (1-\beta_1) g, \quad
        u \leftarrow \max(\beta_2 u, |g| + \epsilon), \quad
        p \leftarrow p - \frac{\eta}{1-\beta_1^t}\,\frac{m}{u}

    Examples
    --------
    >>> import numpy as np
    >>> from fastadam import functional as F
    >>> p = np.ones(2); g = np.array([1.0, -1.0]); m, u = np.zeros(2), np.zeros(2)
    >>> F.adamax(p, g, m, u, step=1, lr=0.1, beta1=0.9, beta2=0.999, eps=0.0)
    >>> p
    array([0.9, 1.1])
    """
    coef = _algorithms.adamax(
        step=step,
        lr=lr,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        weight_decay=weight_decay,
        maximize=maximize,
    )
    _ext.run1(
        _ext.ADAMAX, ("param", "grad", "exp_avg", "exp_inf"), (param, grad, exp_avg, exp_inf), coef
    )


def lion(
    param: np.ndarray,
    grad: np.ndarray,
    exp_avg: np.ndarray,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> None:
    r"""One Lion step, in place (Chen et al., "Symbolic Discovery of Optimization
    Algorithms", arXiv:2302.06675).

    .. math::

        c = \beta_1 m + (1-\beta_1) g, \quad
        p \leftarrow p\,(1 - \eta\lambda) - \eta\,\mathrm{sign}(c), \quad
        m \leftarrow \beta_2 m + (1-\beta_2) g

    Examples
    --------
    >>> import numpy as np
    >>> from fastadam import functional as F
    >>> p = np.ones(3); g = np.array([0.5, -2.0, 0.0]); m = np.zeros(3)
    >>> F.lion(p, g, m, lr=0.1, beta1=0.9, beta2=0.99)
    >>> p
    array([0.9, 1.1, 1. ])
    """
    coef = _algorithms.lion(
        lr=lr, beta1=beta1, beta2=beta2, weight_decay=weight_decay, maximize=maximize
    )
    _ext.run1(_ext.LION, ("param", "grad", "exp_avg"), (param, grad, exp_avg), coef)


def rprop(
    param: np.ndarray,
    grad: np.ndarray,
    prev: np.ndarray,
    step_size: np.ndarray,
    *,
    etaminus: float,
    etaplus: float,
    step_size_min: float,
    step_size_max: float,
    maximize: bool = False,
) -> None:
    r"""One Rprop step, in place (Riedmiller & Braun, "A Direct Adaptive Method for Faster
    Backpropagation Learning: The RPROP Algorithm", 1993), as ``torch.optim.Rprop``.

    Each element keeps its own step size, which grows while the gradient keeps its
    sign and shrinks when it flips; the update uses only the gradient's sign:

    .. math::

        s &= \eta^+ 	ext{ if } g\,g_{prev} > 0, \;\; \eta^- 	ext{ if } g\,g_{prev} < 0,
             \;\; 1 	ext{ otherwise} \
        \Delta &\leftarrow \mathrm{clamp}(\Delta\, s,\; \Delta_{min},\; \Delta_{max}), \qquad
        g \leftarrow 0 	ext{ where } s = \eta^- \
        p &\leftarrow p - \mathrm{sign}(g)\,\Delta, \qquad g_{prev} \leftarrow g

    Parameters
    ----------
    param, grad, prev, step_size : numpy.ndarray
        float32 or float64, all of one dtype and shape, C-contiguous. ``param``,
        ``prev`` (the previous step's gradient, zeros at first) and ``step_size``
        (each element's step, the learning rate at first) are updated in place.
    etaminus, etaplus : float
        The factors that shrink and grow a step size: ``0 < etaminus < 1 < etaplus``
        (``torch.optim.Rprop``'s ``etas``).
    step_size_min, step_size_max : float
        The range a step size is clamped to (``step_sizes``).
    maximize : bool
        Ascend instead of descend.

    Examples
    --------
    >>> import numpy as np
    >>> from fastadam import functional as F
    >>> p = np.zeros(3); prev = np.zeros(3); size = np.full(3, 0.1)
    >>> F.rprop(p, np.array([1.0, -2.0, 0.0]), prev, size,
    ...         etaminus=0.5, etaplus=1.2, step_size_min=1e-6, step_size_max=50.0)
    >>> p
    array([-0.1,  0.1,  0. ])
    >>> F.rprop(p, np.array([1.0, 2.0, 0.0]), prev, size,
    ...         etaminus=0.5, etaplus=1.2, step_size_min=1e-6, step_size_max=50.0)
    >>> size, p
    (array([0.12, 0.05, 0.1 ]), array([-0.22,  0.1 ,  0.  ]))
    """
    coef = _algorithms.rprop(
        etaminus=etaminus,
        etaplus=etaplus,
        step_size_min=step_size_min,
        step_size_max=step_size_max,
        maximize=maximize,
    )
    _ext.run1(_ext.RPROP, _RPROP_NAMES, (param, grad, prev, step_size), coef)


_RPROP_NAMES = ("param", "grad", "prev", "step_size")
_MOMENTS = ("param", "grad", "exp_avg", "exp_avg_sq")


def nadam(
    param: np.ndarray,
    grad: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    *,
    step: int,
    mu_product: float,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float = 0.0,
    momentum_decay: float = 4e-3,
    decoupled_weight_decay: bool = False,
    maximize: bool = False,
) -> float:
    r"""One NAdam step, in place: Adam with Nesterov momentum; returns the new ``mu_product``.

    Dozat, "Incorporating Nesterov Momentum into Adam" (ICLR 2016 workshop), with
    the momentum schedule of ``torch.optim.NAdam`` and its order of operations.
    With momentum decay :math:`\psi` and
    :math:`\mu_t = \beta_1 (1 - \tfrac12\, 0.96^{t\psi})`:

    .. math::

        g &\leftarrow \pm\,\mathrm{grad} \;(+\,\lambda p \text{ for L2 decay}),
        \qquad p \leftarrow p\,(1 - \eta\lambda) \text{ (decoupled)} \\
        m &\leftarrow \beta_1 m + (1-\beta_1)\,g, \qquad
        v \leftarrow \beta_2 v + (1-\beta_2)\,g^2, \qquad
        d = \sqrt{v / (1-\beta_2^t)} + \epsilon \\
        p &\leftarrow p - \frac{\eta\,(1-\mu_t)}{1 - \prod_{i \le t} \mu_i}\,\frac{g}{d}
             - \frac{\eta\,\mu_{t+1}}{1 - \prod_{i \le t+1} \mu_i}\,\frac{m}{d}

    Parameters
    ----------
    param, grad, exp_avg, exp_avg_sq : numpy.ndarray
        float32 or float64, all of one dtype and shape, C-contiguous. ``param``,
        ``exp_avg`` and ``exp_avg_sq`` are updated in place; ``grad`` is only read.
    step : int
        The 1-based count of this step.
    mu_product : float
        :math:`\prod_{i < t} \mu_i`, the scalar state the caller keeps: 1.0 on the
        first step, then the value the previous call returned. Computed in double
        (``torch.optim.NAdam`` keeps it in the default dtype, float32 unless changed).
    lr, beta1, beta2, eps, weight_decay, momentum_decay : float
        Hyperparameters, as in ``torch.optim.NAdam``.
    decoupled_weight_decay : bool
        Decay the param directly (NAdamW) instead of adding ``weight_decay * param``
        to the gradient.
    maximize : bool
        Ascend instead of descend.

    Returns
    -------
    float
        ``mu_product`` times this step's :math:`\mu_t`: pass it to the next call.

    Raises
    ------
    TypeError, ValueError
        For a bad hyperparameter or buffer; no buffer is modified then.

    Examples
    --------
    >>> import numpy as np
    >>> from fastadam import functional as F
    >>> p = np.ones(2); g = np.array([0.5, -0.5]); m, v = np.zeros(2), np.zeros(2)
    >>> mu_product = 1.0
    >>> for t in (1, 2):
    ...     mu_product = F.nadam(p, g, m, v, step=t, mu_product=mu_product, lr=0.1,
    ...                          beta1=0.9, beta2=0.999, eps=1e-8)
    >>> p.round(4), round(mu_product, 4)
    (array([0.816, 1.184]), 0.2026)
    """
    coef, product = _algorithms.nadam(
        step=step,
        mu_product=mu_product,
        lr=lr,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        weight_decay=weight_decay,
        momentum_decay=momentum_decay,
        decoupled_weight_decay=decoupled_weight_decay,
        maximize=maximize,
    )
    _ext.run1(_ext.NADAM, _MOMENTS, _arrays(_MOMENTS, (param, grad, exp_avg, exp_avg_sq)), coef)
    return product


def radam(
    param: np.ndarray,
    grad: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    *,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    maximize: bool = False,
) -> None:
    r"""One RAdam step, in place: Adam with its variance rectified in early steps.

    Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond"
    (arXiv:1908.03265). Same operations, in the same order, as ``torch.optim.RAdam``.
    With :math:`\rho_\infty = 2/(1-\beta_2) - 1` and
    :math:`\rho_t = \rho_\infty - 2t\beta_2^t/(1-\beta_2^t)`:

    .. math::

        g &\leftarrow \pm\,\mathrm{grad} \;(+\,\lambda p \text{ for L2 decay}),
        \qquad p \leftarrow p\,(1 - \eta\lambda) \text{ (decoupled)} \\
        m &\leftarrow \beta_1 m + (1-\beta_1)\,g, \qquad
        v \leftarrow \beta_2 v + (1-\beta_2)\,g^2 \\
        p &\leftarrow p - \eta\,\frac{m}{1-\beta_1^t}\,
             \frac{\sqrt{1-\beta_2^t}}{\sqrt{v} + \epsilon}\, r_t, \qquad
        r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\,\rho_\infty}
                          {(\rho_\infty-4)(\rho_\infty-2)\,\rho_t}}
        \quad \text{if } \rho_t > 5, \text{ else }
        p \leftarrow p - \eta\,\frac{m}{1-\beta_1^t}

    With ``beta2=0.999`` the first five steps are unrectified (momentum SGD with
    bias correction).

    Parameters
    ----------
    param, grad, exp_avg, exp_avg_sq : numpy.ndarray
        float32 or float64, all of one dtype and shape, C-contiguous. ``param``,
        ``exp_avg`` and ``exp_avg_sq`` are updated in place; ``grad`` is only read.
    step : int
        The 1-based count of this step, used for bias correction and rectification.
    lr, beta1, beta2, eps, weight_decay : float
        Hyperparameters, as in ``torch.optim.RAdam``.
    decoupled_weight_decay : bool
        Decay the param directly (RAdamW) instead of adding ``weight_decay * param``
        to the gradient.
    maximize : bool
        Ascend instead of descend.

    Raises
    ------
    TypeError, ValueError
        For a bad hyperparameter or buffer; no buffer is modified then.

    Examples
    --------
    >>> import numpy as np
    >>> from fastadam import functional as F
    >>> p = np.ones(2); g = np.array([0.5, -0.5]); m, v = np.zeros(2), np.zeros(2)
    >>> F.radam(p, g, m, v, step=1, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8)
    >>> p  # unrectified: p - lr * m / (1 - beta1)
    array([0.95, 1.05])
    """
    coef = _algorithms.radam(
        step=step,
        lr=lr,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        weight_decay=weight_decay,
        decoupled_weight_decay=decoupled_weight_decay,
        maximize=maximize,
    )
    _ext.run1(_ext.RADAM, _MOMENTS, _arrays(_MOMENTS, (param, grad, exp_avg, exp_avg_sq)), coef)
