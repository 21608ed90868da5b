"""A slow, obviously correct NumPy float64 reference ("twin") of every algorithm.

Each twin is written from the maths, not from fastadam: torch.optim's semantics
(``torch.optim.Adam``/``AdamW``/``SGD``/``RMSprop``/``Adagrad``/``Adamax``/``NAdam``/
``RAdam``) and, for Lion, Chen et al. 2023 ("Symbolic Discovery of Optimization
Algorithms")::

    c = b1*m + (1-b1)*g;  p = p*(1 - lr*wd) - lr*sign(c);  m = b2*m + (1-b2)*g

A twin takes a float64 param, a float64 grad and a state dict of float64 arrays
(made by ``init_state``; NAdam's also holds a float, see ``SCALAR_STATE``) and
updates the param and the state in place. It never imports fastadam: it is the
independent side of every comparison.

The registry ``CASES`` lists (algorithm, hyperparameters) pairs covering every flag
combination of every algorithm; hyperparameters use the optimizer classes' (and
torch.optim's) keyword names, so ``fastadam.Adam(params, **hp)`` works, and
``functional_kwargs`` turns them into ``fastadam.functional`` keywords.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

ALGORITHMS = ("adam", "sgd", "rmsprop", "adagrad", "adamax", "lion", "nadam", "radam", "rprop")

# The state buffers of each algorithm, named as torch.optim (and fastadam's classes) name them.
SLOTS = {
    "adam": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
    "sgd": ("momentum_buffer",),
    "rmsprop": ("square_avg", "grad_avg", "momentum_buffer"),
    "adagrad": ("sum",),
    "adamax": ("exp_avg", "exp_inf"),
    "lion": ("exp_avg",),
    "nadam": ("exp_avg", "exp_avg_sq"),
    "radam": ("exp_avg", "exp_avg_sq"),
    "rprop": ("prev", "step_size"),
}

# Scalar state (a Python float) an algorithm keeps besides "step": NAdam's product of
# momentum coefficients. Its functional takes it as a keyword and returns it updated.
SCALAR_STATE = {"nadam": "mu_product"}

# Relative tolerance of a trajectory against the float64 twin, by param dtype.
TOLERANCE = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def f64(x) -> np.ndarray:
    """A float64 copy of ``x`` (a fresh array, never a view)."""
    return np.array(x, dtype=np.float64, copy=True)


def _grad(grad, maximize: bool) -> np.ndarray:
    return -grad if maximize else grad.copy()


# --------------------------------------------------------------------- the twins


def adam(
    param,
    grad,
    state,
    *,
    lr,
    betas,
    eps,
    weight_decay=0.0,
    amsgrad=False,
    maximize=False,
    decoupled_weight_decay=False,
):
    """Adam (Kingma & Ba 2014, Algorithm 1) with torch's options.

    L2 decay adds ``wd*p`` to the gradient; decoupled decay (AdamW) scales ``p`` by
    ``1 - lr*wd`` first; amsgrad divides by the running maximum of v.
    """
    state["step"] += 1
    t = state["step"]
    b1, b2 = betas
    g = _grad(grad, maximize)
    if decoupled_weight_decay:
        param[...] = param * (1.0 - lr * weight_decay)
    elif weight_decay != 0:
        g = g + weight_decay * param
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m[...] = b1 * m + (1.0 - b1) * g
    v[...] = b2 * v + (1.0 - b2) * g * g
    if amsgrad:
        vmax = state["max_exp_avg_sq"]
        vmax[...] = np.maximum(vmax, v)
        v = vmax
    m_hat = m / (1.0 - b1**t)
    v_hat = v / (1.0 - b2**t)
    param[...] = param - lr * m_hat / (np.sqrt(v_hat) + eps)


def sgd(
    param,
    grad,
    state,
    *,
    lr,
    momentum=0.0,
    dampening=0.0,
    weight_decay=0.0,
    nesterov=False,
    maximize=False,
):
    """SGD as torch.optim.SGD: the momentum buffer starts as a copy of the first gradient."""
    state["step"] += 1
    g = _grad(grad, maximize)
    if weight_decay != 0:
        g = g + weight_decay * param
    if momentum != 0:
        buf = state["momentum_buffer"]
        buf = g.copy() if buf is None else momentum * buf + (1.0 - dampening) * g
        state["momentum_buffer"] = buf
        g = g + momentum * buf if nesterov else buf
    param[...] = param - lr * g


def rmsprop(
    param,
    grad,
    state,
    *,
    lr,
    alpha,
    eps,
    weight_decay=0.0,
    momentum=0.0,
    centered=False,
    maximize=False,
):
    """RMSprop as torch.optim.RMSprop (eps added after the square root)."""
    state["step"] += 1
    g = _grad(grad, maximize)
    if weight_decay != 0:
        g = g + weight_decay * param
    s = state["square_avg"]
    s[...] = alpha * s + (1.0 - alpha) * g * g
    if centered:
        a = state["grad_avg"]
        a[...] = alpha * a + (1.0 - alpha) * g
        avg = np.sqrt(s - a * a) + eps
    else:
        avg = np.sqrt(s) + eps
    if momentum > 0:
        b = state["momentum_buffer"]
        b[...] = momentum * b + g / avg
        param[...] = param - lr * b
    else:
        param[...] = param - lr * g / avg


def adagrad(
    param,
    grad,
    state,
    *,
    lr,
    eps,
    lr_decay=0.0,
    weight_decay=0.0,
    initial_accumulator_value=0.0,
    maximize=False,
):
    """Adagrad (Duchi et al. 2011) as torch.optim.Adagrad, with its lr decay."""
    state["step"] += 1
    t = state["step"]
    g = _grad(grad, maximize)
    if weight_decay != 0:
        g = g + weight_decay * param
    s = state["sum"]
    s[...] = s + g * g
    clr = lr / (1.0 + (t - 1) * lr_decay)
    param[...] = param - clr * g / (np.sqrt(s) + eps)


def adamax(param, grad, state, *, lr, betas, eps, weight_decay=0.0, maximize=False):
    """Adamax (Kingma & Ba 2014, Algorithm 2) as torch.optim.Adamax (eps inside the max)."""
    state["step"] += 1
    t = state["step"]
    b1, b2 = betas
    g = _grad(grad, maximize)
    if weight_decay != 0:
        g = g + weight_decay * param
    m, u = state["exp_avg"], state["exp_inf"]
    m[...] = b1 * m + (1.0 - b1) * g
    u[...] = np.maximum(b2 * u, np.abs(g) + eps)
    param[...] = param - (lr / (1.0 - b1**t)) * m / u


def lion(param, grad, state, *, lr, betas, weight_decay=0.0, maximize=False):
    """Lion (Chen et al. 2023, Algorithm 2) with decoupled weight decay.

    Also keeps ``state["sign_margin"]``: per element, the smallest
    ``|c| / (|b1*m| + |(1-b1)*g|)`` seen so far. Where it is within rounding of 0
    the sign of ``c`` is not determined by the inputs at a lower precision, so a
    float32 run may legitimately take the other sign there.
    """
    state["step"] += 1
    b1, b2 = betas
    g = _grad(grad, maximize)
    m = state["exp_avg"]
    c = b1 * m + (1.0 - b1) * g
    scale = np.abs(b1 * m) + np.abs((1.0 - b1) * g)
    margin = np.abs(c) / np.where(scale > 0, scale, 1.0)
    state["sign_margin"] = np.minimum(state.get("sign_margin", margin), margin)
    param[...] = param * (1.0 - lr * weight_decay) - lr * np.sign(c)
    m[...] = b2 * m + (1.0 - b2) * g


def nadam(
    param,
    grad,
    state,
    *,
    lr,
    betas,
    eps,
    weight_decay=0.0,
    momentum_decay=4e-3,
    decoupled_weight_decay=False,
    maximize=False,
):
    """NAdam (Dozat 2016) as torch.optim.NAdam: Adam with Nesterov momentum.

    The momentum coefficient follows mu_t = b1*(1 - 0.5*0.96^(t*momentum_decay));
    ``state["mu_product"]`` (a float, 1.0 at first) is mu_1*...*mu_t. The gradient
    and the new first moment each get their own bias correction; eps is added
    after the second moment's bias correction.
    """
    state["step"] += 1
    t = state["step"]
    b1, b2 = betas
    g = _grad(grad, maximize)
    if decoupled_weight_decay:
        param[...] = param * (1.0 - lr * weight_decay)
    elif weight_decay != 0:
        g = g + weight_decay * param
    mu = b1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))
    mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
    state["mu_product"] *= mu
    product = state["mu_product"]
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m[...] = b1 * m + (1.0 - b1) * g
    v[...] = b2 * v + (1.0 - b2) * g * g
    denom = np.sqrt(v / (1.0 - b2**t)) + eps
    nesterov = lr * (1.0 - mu) / (1.0 - product) * g + lr * mu_next / (1.0 - product * mu_next) * m
    param[...] = param - nesterov / denom


def radam(
    param,
    grad,
    state,
    *,
    lr,
    betas,
    eps,
    weight_decay=0.0,
    decoupled_weight_decay=False,
    maximize=False,
):
    """RAdam (Liu et al. 2019, Algorithm 2) as torch.optim.RAdam.

    While the approximated SMA length rho_t is at most 5 the step is bias-corrected
    momentum SGD; after it, Adam's step scaled by the rectification r_t, with eps
    added to sqrt(v) before the bias correction sqrt(1 - b2^t) (torch's placement).
    """
    state["step"] += 1
    t = state["step"]
    b1, b2 = betas
    g = _grad(grad, maximize)
    if decoupled_weight_decay:
        param[...] = param * (1.0 - lr * weight_decay)
    elif weight_decay != 0:
        g = g + weight_decay * param
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m[...] = b1 * m + (1.0 - b1) * g
    v[...] = b2 * v + (1.0 - b2) * g * g
    m_hat = m / (1.0 - b1**t)
    rho_inf = 2.0 / (1.0 - b2) - 1.0
    rho_t = rho_inf - 2.0 * t * b2**t / (1.0 - b2**t)
    if rho_t > 5.0:
        r = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        param[...] = param - lr * m_hat * r * math.sqrt(1.0 - b2**t) / (np.sqrt(v) + eps)
    else:
        param[...] = param - lr * m_hat


def rprop(param, grad, state, *, lr, etas=(0.5, 1.2), step_sizes=(1e-6, 50), maximize=False):
    """Rprop (Riedmiller & Braun 1993) as torch.optim.Rprop: a step size per element,
    grown where the gradient kept its sign and shrunk where it flipped (an element
    whose sign flipped does not move, and the next step sees 0 there), clamped."""
    state["step"] += 1
    etaminus, etaplus = etas
    low, high = step_sizes
    g = _grad(grad, maximize)
    product = g * state["prev"]
    factor = np.where(product > 0, etaplus, np.where(product < 0, etaminus, 1.0))
    size = np.minimum(np.maximum(state["step_size"] * factor, low), high)
    g = np.where(product < 0, 0.0, g)
    param[...] = param - np.sign(g) * size
    state["step_size"][...] = size
    state["prev"][...] = g


TWINS = {
    "adam": adam,
    "sgd": sgd,
    "rmsprop": rmsprop,
    "adagrad": adagrad,
    "adamax": adamax,
    "lion": lion,
    "nadam": nadam,
    "radam": radam,
    "rprop": rprop,
}


def active_slots(name: str, hp: dict) -> tuple[str, ...]:
    """The state buffers ``name`` keeps under the hyperparameters ``hp``."""
    if name == "adam":
        return SLOTS["adam"] if hp.get("amsgrad", False) else SLOTS["adam"][:2]
    if name == "sgd":
        return SLOTS["sgd"] if hp.get("momentum", 0.0) != 0 else ()
    if name == "rmsprop":
        slots = ["square_avg"]
        if hp.get("centered", False):
            slots.append("grad_avg")
        if hp.get("momentum", 0.0) > 0:
            slots.append("momentum_buffer")
        return tuple(slots)
    return SLOTS[name]


def init_state(name: str, param, hp: dict) -> dict:
    """A fresh float64 twin state for ``param`` (torch's initial values)."""
    shape = np.shape(param)
    state: dict = {"step": 0}
    for slot in active_slots(name, hp):
        state[slot] = np.zeros(shape, np.float64)
    if name == "sgd" and "momentum_buffer" in state:
        state["momentum_buffer"] = None  # torch: set to the gradient on the first step
    if name == "adagrad":
        state["sum"][...] = hp.get("initial_accumulator_value", 0.0)
    if name == "rprop":
        state["step_size"][...] = hp["lr"]
    return {**state, **initial_scalars(name)}


def initial_scalars(name: str) -> dict:
    """``name``'s SCALAR_STATE at its initial value (torch's: 1.0) by key; {} for most."""
    return {SCALAR_STATE[name]: 1.0} if name in SCALAR_STATE else {}


def state_slots(name: str, hp: dict) -> tuple[str, ...]:
    """Every state entry of ``name`` under ``hp`` but "step": its buffers, then its scalar."""
    return (*active_slots(name, hp), *initial_scalars(name))


def buffer_keys(state: dict) -> list[str]:
    """The keys of the array buffers in ``state`` (a class's state of one param, or a
    functional caller's buffers): every key but "step" and SCALAR_STATE, in order."""
    return [key for key in state if key != "step" and key not in SCALAR_STATE.values()]


def step(name: str, param, grad, state, hp: dict) -> None:
    """One twin step of ``name`` (float64 arrays, updated in place).

    Also keeps ``state["scale"]``: per buffer (and "param"), the largest magnitude
    it has had so far, the scale ``assert_matches`` measures errors against (a
    signed average can cancel to nearly 0 at the last step, while its rounding
    error is set by the magnitudes it was summed from).
    """
    scale = state.setdefault("scale", {})
    scale["param"] = max(scale.get("param", 0.0), _max_abs(param))
    TWINS[name](param, np.asarray(grad, np.float64), state, **hp)
    for key, value in [("param", param), *state.items()]:
        if isinstance(value, np.ndarray) and key != "sign_margin":
            scale[key] = max(scale.get(key, 0.0), _max_abs(value))


def _max_abs(x) -> float:
    x = np.asarray(x)
    return float(np.max(np.abs(x))) if x.size else 0.0


def trajectory(name: str, hp: dict, param0, grads) -> tuple[np.ndarray, dict]:
    """Run the twin from ``param0`` over ``grads``; returns (param, state) in float64."""
    param = f64(param0)
    state = init_state(name, param, hp)
    for grad in grads:
        step(name, param, f64(grad), state, hp)
    return param, state


# ----------------------------------------------------------------- comparisons


def rel_err(actual, ref, mask=None, scale=0.0) -> float:
    """max|actual - ref| / max(max|ref|, scale) over the (masked) elements; 0 if empty."""
    a = np.asarray(actual, np.float64)
    r = np.asarray(ref, np.float64)
    assert a.shape == r.shape, (a.shape, r.shape)
    if mask is not None:
        a, r = a[mask], r[mask]
    if r.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(r))), scale)
    err = float(np.max(np.abs(a - r)))
    if not (math.isfinite(err) and math.isfinite(scale)):
        return math.inf
    return err / scale if scale > 0 else err


def sign_mask(name: str, state: dict, dtype) -> np.ndarray | None:
    """For Lion, the elements whose update sign is determined at ``dtype``'s precision."""
    if name != "lion" or "sign_margin" not in state:
        return None
    # float32 rounding moves c by ~1e-7 relative per step: 2e-5 covers 100 steps.
    threshold = 2e-5 if np.dtype(dtype) == np.float32 else 1e-11
    return state["sign_margin"] > threshold


def assert_matches(name: str, dtype, param, state, ref_param, ref_state, what: str = "") -> None:
    """Param and every state buffer within TOLERANCE[dtype] (relative) of the twin's.

    The error of each buffer is measured against the largest magnitude that
    buffer had along the twin's trajectory (``state["scale"]``): for arrays of
    many elements that is max|ref| (the criterion max|p - p_ref| / max|p_ref|), for
    a scalar it keeps a final value near 0 from inflating the relative error.
    """
    dtype = np.dtype(dtype)
    tol = TOLERANCE[dtype]
    assert param.dtype == dtype, f"{what}param dtype {param.dtype} != {dtype}"
    mask = sign_mask(name, ref_state, dtype)
    if mask is not None:
        # Ambiguous signs must be rare, or the comparison would be vacuous.
        ties = mask.size - int(mask.sum())
        assert ties <= 1 + mask.size // 100, f"{what}{ties} Lion sign ties of {mask.size}"
    scale = ref_state.get("scale", {})
    err = rel_err(param, ref_param, mask, scale.get("param", 0.0))
    assert err <= tol, f"{what}param: relative error {err:.3g} > {tol:g}"
    for slot, ref in ref_state.items():
        if slot in ("step", "sign_margin", "scale") or ref is None:
            continue
        if slot == SCALAR_STATE.get(name):  # a float, in double whatever the dtype
            value = state[slot]
            assert type(value) is float, f"{what}{slot} is a {type(value).__name__}, not a float"
            err = rel_err(value, ref)
            assert err <= TOLERANCE[np.dtype(np.float64)], f"{what}{slot}: relative error {err:.3g}"
            continue
        buf = state[slot]
        assert buf.dtype == dtype, f"{what}{slot} dtype {buf.dtype} != {dtype}"
        err = rel_err(buf, ref, None, scale.get(slot, 0.0))
        assert err <= tol, f"{what}{slot}: relative error {err:.3g} > {tol:g}"


# -------------------------------------------------------------------- registry


def _grid(**axes):
    keys = list(axes)
    for values in itertools.product(*(axes[k] for k in keys)):
        yield dict(zip(keys, values, strict=True))


def _cases() -> list[tuple[str, dict]]:
    cases: list[tuple[str, dict]] = []
    for flags in _grid(
        amsgrad=(False, True),
        maximize=(False, True),
        decoupled_weight_decay=(False, True),
        weight_decay=(0.0, 0.1),
    ):
        cases.append(("adam", {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8, **flags}))
    # beta1 <= 0.5 takes the other branch of torch's lerp; a large eps matters.
    cases.append(
        (
            "adam",
            {
                "lr": 3e-2,
                "betas": (0.3, 0.6),
                "eps": 1e-3,
                "weight_decay": 0.0,
                "amsgrad": True,
                "maximize": False,
                "decoupled_weight_decay": False,
            },
        )
    )
    for (momentum, dampening, nesterov), flags in itertools.product(
        ((0.0, 0.0, False), (0.9, 0.0, False), (0.9, 0.1, False), (0.9, 0.0, True)),
        _grid(weight_decay=(0.0, 0.01), maximize=(False, True)),
    ):
        cases.append(
            (
                "sgd",
                {
                    "lr": 1e-2,
                    "momentum": momentum,
                    "dampening": dampening,
                    "nesterov": nesterov,
                    **flags,
                },
            )
        )
    for flags in _grid(
        centered=(False, True),
        momentum=(0.0, 0.9),
        maximize=(False, True),
        weight_decay=(0.0, 0.01),
    ):
        cases.append(("rmsprop", {"lr": 1e-3, "alpha": 0.99, "eps": 1e-8, **flags}))
    # alpha = 0.5: grad_avg takes the other branch of torch's lerp.
    cases.append(
        (
            "rmsprop",
            {
                "lr": 1e-3,
                "alpha": 0.5,
                "eps": 1e-6,
                "centered": True,
                "momentum": 0.5,
                "maximize": False,
                "weight_decay": 0.0,
            },
        )
    )
    for flags in _grid(
        lr_decay=(0.0, 0.01),
        weight_decay=(0.0, 0.01),
        maximize=(False, True),
        initial_accumulator_value=(0.0, 0.1),
    ):
        cases.append(("adagrad", {"lr": 1e-2, "eps": 1e-10, **flags}))
    for flags in _grid(weight_decay=(0.0, 0.01), maximize=(False, True)):
        cases.append(("adamax", {"lr": 2e-3, "betas": (0.9, 0.999), "eps": 1e-8, **flags}))
    cases.append(
        (
            "adamax",
            {"lr": 1e-2, "betas": (0.2, 0.5), "eps": 1e-3, "weight_decay": 0.0, "maximize": True},
        )
    )
    for flags in _grid(weight_decay=(0.0, 0.1), maximize=(False, True)):
        cases.append(("lion", {"lr": 1e-3, "betas": (0.9, 0.99), **flags}))
    cases.append(
        ("lion", {"lr": 3e-3, "betas": (0.4, 0.7), "weight_decay": 0.5, "maximize": False})
    )
    for flags in _grid(
        momentum_decay=(4e-3, 5e-2),
        maximize=(False, True),
        decoupled_weight_decay=(False, True),
        weight_decay=(0.0, 0.1),
    ):
        cases.append(("nadam", {"lr": 2e-3, "betas": (0.9, 0.999), "eps": 1e-8, **flags}))
    # beta1 <= 0.5 takes the other branch of torch's lerp; a large eps matters.
    cases.append(
        (
            "nadam",
            {
                "lr": 1e-2,
                "betas": (0.4, 0.8),
                "eps": 1e-3,
                "weight_decay": 0.01,
                "momentum_decay": 0.0,
                "decoupled_weight_decay": False,
                "maximize": True,
            },
        )
    )
    # beta2 = 0.999 (torch's default): steps 1-5 unrectified, then rectified.
    for flags in _grid(
        maximize=(False, True),
        decoupled_weight_decay=(False, True),
        weight_decay=(0.0, 0.1),
    ):
        cases.append(("radam", {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, **flags}))
    # beta2 = 0.8: rectified from step 7 on, early in a 20-step run (with beta1 on the
    # other branch of lerp and a large eps); beta2 = 0.5: rho_inf = 3, never rectified.
    for betas, eps in [((0.3, 0.8), 1e-3), ((0.9, 0.5), 1e-8)]:
        cases.append(
            (
                "radam",
                {
                    "lr": 1e-2,
                    "betas": betas,
                    "eps": eps,
                    "weight_decay": 0.01,
                    "decoupled_weight_decay": True,
                    "maximize": False,
                },
            )
        )
    for flags in _grid(maximize=(False, True), step_sizes=((1e-6, 50), (1e-4, 0.05))):
        cases.append(("rprop", {"lr": 1e-2, "etas": (0.5, 1.2), **flags}))
    cases.append(
        ("rprop", {"lr": 3e-2, "etas": (0.3, 1.7), "step_sizes": (1e-3, 0.1), "maximize": False})
    )
    return cases


def case_id(name: str, hp: dict) -> str:
    """A short readable id: the algorithm and every non-default setting."""
    parts = [name]
    for key, value in hp.items():
        if isinstance(value, bool):
            if value:
                parts.append(key)
        elif key in ("lr", "eps") or value in (0, 0.0):
            continue
        else:
            text = "-".join(f"{v:g}" for v in value) if isinstance(value, tuple) else f"{value:g}"
            parts.append(f"{key}={text}")
    return "-".join(parts)


CASES: list[tuple[str, dict]] = _cases()
IDS: list[str] = [case_id(name, hp) for name, hp in CASES]
assert len(set(IDS)) == len(CASES), "case ids must be unique"


def cases_of(name: str) -> list[dict]:
    """The hyperparameter dicts of one algorithm's cases."""
    return [hp for n, hp in CASES if n == name]


def richest(name: str) -> dict:
    """One case of ``name`` with as many features switched on as possible."""
    return max(cases_of(name), key=lambda hp: sum(bool(v) for v in hp.values()))


# ------------------------------------------------ fastadam's functional API, as data

STEPPED = frozenset({"adam", "sgd", "adagrad", "adamax", "nadam", "radam"})  # taking ``step``
FUNCTIONAL_BUFFER = {"sum": "state_sum"}  # state slot -> functional keyword, where they differ


def functional_kwargs(name: str, hp: dict) -> dict:
    """``hp`` (class keywords) as ``fastadam.functional.<name>`` keywords."""
    dropped = ("betas", "initial_accumulator_value", "etas", "step_sizes")
    kwargs = {k: v for k, v in hp.items() if k not in dropped}
    if "betas" in hp:
        kwargs["beta1"], kwargs["beta2"] = hp["betas"]
    if name == "rprop":  # its lr is the state's first step size, not a keyword
        kwargs.pop("lr", None)
        kwargs["etaminus"], kwargs["etaplus"] = hp.get("etas", (0.5, 1.2))
        kwargs["step_size_min"], kwargs["step_size_max"] = hp.get("step_sizes", (1e-6, 50))
    return kwargs


def new_buffers(name: str, hp: dict, param: np.ndarray) -> dict:
    """Fresh state buffers in the param's dtype, as a functional caller keeps them
    (and its SCALAR_STATE, a float)."""
    state = {slot: np.zeros_like(param) for slot in active_slots(name, hp)}
    if name == "adagrad":
        state["sum"][...] = hp.get("initial_accumulator_value", 0.0)
    if name == "rprop":
        state["step_size"][...] = hp["lr"]
    return {**state, **initial_scalars(name)}


def buffers_in(name: str, hp: dict, param: np.ndarray, views: dict) -> dict:
    """Fresh buffers as ``new_buffers`` makes them, held in ``views`` (slot -> array like
    ``param``, one per active slot): the views set to the initial values, and the scalar."""
    fresh = new_buffers(name, hp, param)
    for slot, view in views.items():
        view[...] = fresh[slot]
    return {**fresh, **views}


def functional_call(fn, name: str, hp: dict, param, grad, buffers: dict, step: int) -> None:
    """Call the functional ``fn`` (fastadam.functional.<name>) with ``buffers`` as keywords.

    A SCALAR_STATE entry of ``buffers`` is passed too, and replaced by what ``fn`` returns.
    """
    kwargs = functional_kwargs(name, hp)
    if name in STEPPED:
        kwargs["step"] = step
    named = {FUNCTIONAL_BUFFER.get(slot, slot): buf for slot, buf in buffers.items()}
    result = fn(param, grad, **named, **kwargs)
    if name in SCALAR_STATE:
        buffers[SCALAR_STATE[name]] = result
