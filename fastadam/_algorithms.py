"""Per algorithm: check the hyperparameters and compute one step's coefficients.

Each function returns the coefficients in double, in the order the C kernel
reads them (the enums in src_c/fastadam.h). The functional API and the
optimizer classes both call these, so every entry point validates alike.

An algorithm whose coefficients change with the step is also written in two
halves, which its function joins: ``<name>_hyperparameters`` checks the
hyperparameters (torch.optim's order and messages) and returns them checked,
``<name>_at(checked, step)`` is the step's arithmetic. The step planner checks a
param group once while the group is unchanged and runs only the arithmetic at
each step; the joined function gives the same bits.
"""

from __future__ import annotations

import math

import cython
from cython.cimports.libc.math import sqrt  # compiled: C's; interpreted: math.sqrt

# The checks as module globals: compiled, a global is a cached lookup, where an
# attribute of the module would be a dictionary lookup at every call.
from ._validate import beta as check_beta
from ._validate import eps as check_eps
from ._validate import finite as check_finite
from ._validate import flag as check_flag
from ._validate import in_range as check_in_range
from ._validate import lr as check_lr
from ._validate import momentum as check_momentum
from ._validate import real as check_real
from ._validate import step as check_step
from ._validate import weight_decay as check_weight_decay

Coefficients = tuple[float, ...]

_INF = cython.declare(cython.double, math.inf)


# Hyperparameters as <name>_hyperparameters returns them: (lr, beta1, beta2, eps,
# weight_decay, decoupled_weight_decay, maximize) for Adam and RAdam, (lr, lr_decay, eps,
# weight_decay, maximize) for Adagrad, (lr, beta1, beta2, eps, weight_decay, maximize) for Adamax.
AdamChecked = tuple[float, float, float, float, float, bool, bool]
AdagradChecked = tuple[float, float, float, float, bool]
AdamaxChecked = tuple[float, float, float, float, float, bool]


def _decay(lr: float, weight_decay: float, decoupled: bool) -> tuple[float, float]:
    """(L2 coefficient, param scale): decoupled decay scales the param, L2 decay joins the grad."""
    return (0.0, 1 - lr * weight_decay) if decoupled else (weight_decay, 1.0)


def adam(
    *,
    step: object,
    lr: object,
    beta1: object,
    beta2: object,
    eps: object,
    weight_decay: object,
    decoupled_weight_decay: object,
    maximize: object,
) -> Coefficients:
    t = check_step(step)
    checked = adam_hyperparameters(
        lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, maximize
    )
    return adam_at(checked, t)


@cython.locals(lr_=cython.double, b1=cython.double, b2=cython.double)
@cython.locals(eps_=cython.double, wd=cython.double)
def adam_hyperparameters(
    lr: object,
    beta1: object,
    beta2: object,
    eps: object,
    weight_decay: object,
    decoupled_weight_decay: object,
    maximize: object,
) -> AdamChecked:
    """The checks of Adam, RAdam and NAdam (whose momentum_decay comes after them), in
    torch.optim's order."""
    if (
        type(lr) is float
        and type(beta1) is float
        and type(beta2) is float
        and type(eps) is float
        and type(weight_decay) is float
        and type(decoupled_weight_decay) is bool
        and type(maximize) is bool
    ):  # the common case, compared in C doubles: each check's rule, each passed
        lr_, b1, b2, eps_, wd = lr, beta1, beta2, eps, weight_decay
        if (
            0.0 <= lr_ < _INF
            and 0.0 <= b1 < 1.0
            and 0.0 <= b2 < 1.0
            and 0.0 <= eps_ < _INF
            and 0.0 <= wd < _INF
        ):
            return (lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, maximize)
    return (
        check_lr(lr),
        check_beta(0, beta1, "beta1"),
        check_beta(1, beta2, "beta2"),
        check_eps(eps),
        check_weight_decay(weight_decay),
        check_flag("decoupled_weight_decay", decoupled_weight_decay),
        check_flag("maximize", maximize),
    )


# Compiled, the arithmetic of Adam's step is in C doubles (setup.py builds without
# contraction into fused multiply-adds): the same operations, and bits, as Python floats.
# cpow: C's pow of doubles, as Python's for a base >= 0 (without it, Cython goes through
# complex numbers in case the base is negative).
@cython.cpow(True)
@cython.locals(lr_=cython.double, b1=cython.double, b2=cython.double, wd=cython.double)
@cython.locals(t=cython.double, bias_correction1=cython.double, bias_correction2=cython.double)
def adam_at(checked: AdamChecked, step: int) -> Coefficients:
    lr_, b1, b2, eps_, wd, decoupled, maximize_ = checked
    t = step  # as Python raises a float to an int power: the int rounded to a double
    bias_correction1 = 1.0 - b1**t
    bias_correction2 = 1.0 - b2**t
    return (
        b1,
        b2,
        eps_,
        lr_ / bias_correction1,
        sqrt(bias_correction2),
        0.0 if decoupled else wd,  # _decay: L2 coefficient, param scale
        1.0 - lr_ * wd if decoupled else 1.0,
        1.0 if maximize_ else 0.0,
    )


def sgd(
    *,
    lr: object,
    momentum: object,
    dampening: object,
    weight_decay: object,
    nesterov: object,
    maximize: object,
    first_step: bool,
) -> Coefficients:
    lr_ = check_lr(lr)
    mom = check_momentum(momentum)
    damp = check_finite("dampening", dampening)
    wd = check_weight_decay(weight_decay)
    nest = check_flag("nesterov", nesterov)
    if nest and (mom <= 0 or damp != 0):
        raise ValueError("Nesterov momentum requires a momentum and zero dampening")
    maximize_ = check_flag("maximize", maximize)
    return (lr_, mom, damp, wd, float(nest), float(maximize_), float(first_step))


def rmsprop(
    *,
    lr: object,
    alpha: object,
    eps: object,
    weight_decay: object,
    momentum: object,
    centered: object,
    maximize: object,
) -> Coefficients:
    check_flag("centered", centered)
    return (
        check_lr(lr),
        check_in_range("alpha", alpha, "Invalid alpha value: {}"),
        check_eps(eps),
        check_weight_decay(weight_decay),
        check_momentum(momentum),
        float(check_flag("maximize", maximize)),
    )


def adagrad(
    *,
    step: object,
    lr: object,
    lr_decay: object,
    weight_decay: object,
    eps: object,
    maximize: object,
) -> Coefficients:
    t = check_step(step)
    checked = adagrad_hyperparameters(lr, lr_decay, weight_decay, eps, maximize)
    return adagrad_at(checked, t)


def adagrad_hyperparameters(
    lr: object, lr_decay: object, weight_decay: object, eps: object, maximize: object
) -> AdagradChecked:
    return (
        check_lr(lr),
        check_in_range("lr_decay", lr_decay, "Invalid lr_decay value: {}"),
        check_eps(eps),
        check_weight_decay(weight_decay),
        check_flag("maximize", maximize),
    )


def adagrad_at(checked: AdagradChecked, step: int) -> Coefficients:
    lr_, decay, eps_, wd, maximize_ = checked
    return (lr_ / (1.0 + (step - 1) * decay), eps_, wd, float(maximize_))


def initial_accumulator_value(value: object) -> float:
    return check_in_range(
        "initial_accumulator_value", value, "Invalid initial_accumulator_value value: {}"
    )


def adamax(
    *,
    step: object,
    lr: object,
    beta1: object,
    beta2: object,
    eps: object,
    weight_decay: object,
    maximize: object,
) -> Coefficients:
    t = check_step(step)
    checked = adamax_hyperparameters(lr, beta1, beta2, eps, weight_decay, maximize)
    return adamax_at(checked, t)


def adamax_hyperparameters(
    lr: object,
    beta1: object,
    beta2: object,
    eps: object,
    weight_decay: object,
    maximize: object,
) -> AdamaxChecked:
    """Adam's checks (Adamax has no decoupled decay)."""
    lr_, b1, b2, eps_, wd, _, maximize_ = adam_hyperparameters(
        lr, beta1, beta2, eps, weight_decay, False, maximize
    )
    return (lr_, b1, b2, eps_, wd, maximize_)


def adamax_at(checked: AdamaxChecked, step: int) -> Coefficients:
    lr_, b1, b2, eps_, wd, maximize_ = checked
    return (b1, b2, eps_, lr_ / (1.0 - b1**step), wd, float(maximize_))


def lion(
    *,
    lr: object,
    beta1: object,
    beta2: object,
    weight_decay: object,
    maximize: object,
) -> Coefficients:
    return (
        check_lr(lr),
        check_beta(0, beta1, "beta1"),
        check_beta(1, beta2, "beta2"),
        check_weight_decay(weight_decay),
        float(check_flag("maximize", maximize)),
    )


def rprop(
    *,
    etaminus: object,
    etaplus: object,
    step_size_min: object,
    step_size_max: object,
    maximize: object,
) -> Coefficients:
    """Rprop's coefficients. torch.optim checks the etas (``0 < etaminus < 1 < etaplus``)
    and not the step sizes; a NaN, negative or inverted step size range is refused here."""
    minus, plus = check_real("etaminus", etaminus), check_real("etaplus", etaplus)
    if not 0.0 < minus < 1.0 < plus:
        raise ValueError(f"Invalid eta values: {etaminus}, {etaplus}")
    low = check_real("step_size_min", step_size_min)
    high = check_real("step_size_max", step_size_max)
    if not 0.0 <= low <= high:
        raise ValueError(
            f"Invalid step_sizes values: {step_size_min}, {step_size_max} "
            "(they must satisfy 0 <= step_size_min <= step_size_max)"
        )
    return (minus, plus, low, high, float(check_flag("maximize", maximize)))


def momentum_cache(beta1: float, momentum_decay: float, step: int) -> float:
    """NAdam's momentum coefficient mu_t = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay)),
    in double, as torch.optim.NAdam computes it."""
    return beta1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))


def check_mu_product(value: object, name: str = "mu_product") -> float:
    """NAdam's running product of momentum coefficients: 1.0 before the first step, then in
    [0, 1); ``name`` labels it in errors (a state entry, say).

    0 is valid: beta1 = 0 gives 0 at once, and beta1 < 0.5 underflows to 0 in time.
    """
    x = check_real(name, value)
    if not 0.0 <= x <= 1.0:
        raise ValueError(
            f"Invalid {name} value: {value} (a product of momentum coefficients in [0, 1); "
            "1.0 before the first step)"
        )
    return x


def nadam(
    *,
    step: object,
    mu_product: object,
    lr: object,
    beta1: object,
    beta2: object,
    eps: object,
    weight_decay: object,
    momentum_decay: object,
    decoupled_weight_decay: object,
    maximize: object,
    updated: bool = False,
) -> tuple[Coefficients, float]:
    """The coefficients, and mu_product times this step's mu (the caller keeps it for the next).

    ``mu_product`` is the product of mu over the steps before this one or, with
    ``updated``, already times this step's mu (as a front end that keeps it in a
    tensor multiplies it first, as torch.optim.NAdam does); it is then returned as is.
    """
    t = check_step(step)
    lr_, b1, b2, eps_, wd, decoupled, maximize_ = adam_hyperparameters(
        lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, maximize
    )
    psi = check_in_range("momentum_decay", momentum_decay, "Invalid momentum_decay value: {}")
    product = check_mu_product(mu_product)
    # As torch.optim.NAdam, in double: the momentum cache mu_t and mu_{t+1}.
    mu = momentum_cache(b1, psi, t)
    mu_next = momentum_cache(b1, psi, t + 1)
    if not updated:
        product *= mu
    product_next = product * mu_next
    l2, scale = _decay(lr_, wd, decoupled)
    coef = (
        b1,
        b2,
        eps_,
        1 - b2**t,
        -lr_ * (1.0 - mu) / (1.0 - product),
        (-lr_ * mu_next) / (1.0 - product_next),
        l2,
        scale,
        float(maximize_),
    )
    return coef, product


def radam(
    *,
    step: object,
    lr: object,
    beta1: object,
    beta2: object,
    eps: object,
    weight_decay: object,
    decoupled_weight_decay: object,
    maximize: object,
) -> Coefficients:
    t = check_step(step)
    checked = radam_hyperparameters(
        lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, maximize
    )
    return radam_at(checked, t)


radam_hyperparameters = adam_hyperparameters  # the same hyperparameters, checked alike


def radam_at(checked: AdamChecked, step: int) -> Coefficients:
    lr_, b1, b2, eps_, wd, decoupled, maximize_ = checked
    bias_correction1 = 1 - b1**step
    bias_correction2 = 1 - b2**step
    # As torch.optim.RAdam, in double: the length of the approximated SMA, its limit,
    # and the variance rectification once the length exceeds 5 (else 0: an SGD-like step).
    rho_inf = 2 / (1 - b2) - 1
    rho_t = rho_inf - 2 * step * (b2**step) / bias_correction2
    rect = 0.0
    if rho_t > 5.0:
        rect = (
            (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
        ) ** 0.5
    l2, scale = _decay(lr_, wd, decoupled)
    return (
        b1,
        b2,
        eps_,
        bias_correction1,
        lr_,
        bias_correction2**0.5,
        rect,
        l2,
        scale,
        float(maximize_),
    )
