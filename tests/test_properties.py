"""Property-based tests: random shapes, dtypes, memory layouts and hyperparameters.

Every functional follows the float64 twin (tests/twin.py) for a few steps on
arrays of any shape (0-d and empty included) that are views at random offsets
into larger buffers, never writing outside them; and every invalid call raises
without modifying a single byte, for the functionals and the optimizer classes.

Hypothesis runs derandomized (a fixed sequence of examples) with no example
database, so every run tests the same cases.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import twin
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from registry import OPTIMIZER_CLASSES

from fastadam import functional as F

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

DTYPES = st.sampled_from([np.float32, np.float64])
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=7)
SENTINEL = -12345.678  # fills the memory around every view; must survive every call


# --------------------------------------------------------- valid hyperparameters


def _unit(high: float = 0.999) -> st.SearchStrategy[float]:
    return st.floats(0.0, high)


LR = st.floats(0.0, 0.1)
EPS = st.one_of(st.just(0.0), st.floats(1e-10, 1e-2))
DECAY = st.one_of(st.just(0.0), st.floats(0.0, 0.5))
MOMENTUM = st.one_of(st.just(0.0), st.floats(0.0, 0.99))


@st.composite
def _adam(draw):
    return {
        "lr": draw(LR),
        "betas": (draw(_unit()), draw(_unit())),
        "eps": draw(EPS),
        "weight_decay": draw(DECAY),
        "amsgrad": draw(st.booleans()),
        "maximize": draw(st.booleans()),
        "decoupled_weight_decay": draw(st.booleans()),
    }


@st.composite
def _sgd(draw):
    nesterov = draw(st.booleans())
    momentum = draw(st.floats(0.01, 0.99) if nesterov else MOMENTUM)
    return {
        "lr": draw(LR),
        "momentum": momentum,
        "dampening": 0.0 if nesterov else draw(_unit(0.99)),
        "weight_decay": draw(DECAY),
        "nesterov": nesterov,
        "maximize": draw(st.booleans()),
    }


@st.composite
def _rmsprop(draw):
    centered = draw(st.booleans())
    # Centered, sqrt(square_avg - grad_avg**2) loses about 1/alpha**step of relative
    # precision to cancellation; alpha >= 0.7 keeps that within float32's tolerance.
    alpha = draw(st.floats(0.7, 0.999) if centered else _unit())
    return {
        "lr": draw(LR),
        "alpha": alpha,
        "eps": draw(EPS),
        "weight_decay": draw(DECAY),
        "momentum": draw(MOMENTUM),
        "centered": centered,
        "maximize": draw(st.booleans()),
    }


@st.composite
def _adagrad(draw):
    return {
        "lr": draw(LR),
        "eps": draw(EPS),
        "lr_decay": draw(st.floats(0.0, 1.0)),
        "weight_decay": draw(DECAY),
        "initial_accumulator_value": draw(st.floats(0.0, 1.0)),
        "maximize": draw(st.booleans()),
    }


@st.composite
def _adamax(draw):
    return {
        "lr": draw(LR),
        "betas": (draw(_unit()), draw(_unit())),
        "eps": draw(EPS),
        "weight_decay": draw(DECAY),
        "maximize": draw(st.booleans()),
    }


@st.composite
def _lion(draw):
    return {
        "lr": draw(LR),
        "betas": (draw(_unit()), draw(_unit())),
        "weight_decay": draw(DECAY),
        "maximize": draw(st.booleans()),
    }


@st.composite
def _radam(draw):
    return {**draw(_adamax()), "decoupled_weight_decay": draw(st.booleans())}


@st.composite
def _nadam(draw):
    momentum_decay = st.one_of(st.just(0.0), st.floats(0.0, 0.1))
    return {**draw(_radam()), "momentum_decay": draw(momentum_decay)}


@st.composite
def _rprop(draw):
    return {
        "lr": draw(st.floats(1e-6, 1.0)),  # the first step sizes: stored in the param's dtype
        "etas": (draw(st.floats(0.05, 0.95)), draw(st.floats(1.05, 3.0))),
        "step_sizes": (draw(st.sampled_from([0.0, 1e-6, 1e-3])), draw(st.sampled_from([0.05, 50]))),
        "maximize": draw(st.booleans()),
    }


HYPERPARAMETERS = {
    "adam": _adam(),
    "sgd": _sgd(),
    "rmsprop": _rmsprop(),
    "adagrad": _adagrad(),
    "adamax": _adamax(),
    "lion": _lion(),
    "nadam": _nadam(),
    "radam": _radam(),
    "rprop": _rprop(),
}


# ------------------------------------------------------------------ memory layout


@st.composite
def _layouts(draw, count: int):
    """Where ``count`` buffers live: each in its own backing array at an offset, or
    all in one backing array one after another with gaps (possibly none) between."""
    shared = draw(st.booleans())
    gaps = draw(st.lists(st.integers(0, 17), min_size=count + 1, max_size=count + 1))
    return shared, gaps


def _place(keys, shape, dtype, layout):
    """Views shaped ``shape`` for ``keys`` into backing arrays filled with SENTINEL.

    Returns the views (a dict) and the backing arrays with, for each, the flat
    ranges the views occupy.
    """
    shared, gaps = layout
    size = math.prod(shape)
    views, backings = {}, []
    if shared:
        backing = np.full(sum(gaps) + size * len(keys), SENTINEL, dtype)
        start, spans = 0, []
        for key, gap in zip(keys, gaps, strict=False):
            start += gap
            views[key] = backing[start : start + size].reshape(shape)
            spans.append((start, start + size))
            start += size
        backings.append((backing, spans))
    else:
        for key, gap, tail in zip(keys, gaps, gaps[1:], strict=False):
            backing = np.full(gap + size + tail, SENTINEL, dtype)
            views[key] = backing[gap : gap + size].reshape(shape)
            backings.append((backing, [(gap, gap + size)]))
    for view in views.values():
        assert view.flags.c_contiguous
        assert view.base is not None or view.size == 0
    return views, backings


def _assert_outside_untouched(backings, dtype):
    sentinel = np.array(SENTINEL, dtype).tobytes()
    for backing, spans in backings:
        outside = np.ones(backing.size, bool)
        for start, end in spans:
            outside[start:end] = False
        assert backing[outside].tobytes() == sentinel * int(outside.sum()), "wrote outside a view"


# ------------------------------------------------------- functionals vs the twin


@SETTINGS
@given(
    data=st.data(),
    dtype=DTYPES,
    shape=SHAPES,
    steps=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
)
@pytest.mark.parametrize("name", twin.ALGORITHMS)
def test_functional_follows_the_twin(name, data, dtype, shape, steps, seed, scale):
    hp = data.draw(HYPERPARAMETERS[name], label="hyperparameters")
    slots = twin.active_slots(name, hp)
    keys = ["param", "grad", *slots]
    layout = data.draw(_layouts(len(keys)), label="layout")
    views, backings = _place(keys, shape, dtype, layout)

    rng = np.random.default_rng(seed)
    views["param"][...] = rng.standard_normal(shape)
    buffers = twin.buffers_in(name, hp, views["param"], {slot: views[slot] for slot in slots})
    ref_param = twin.f64(views["param"])
    ref_state = twin.init_state(name, ref_param, hp)
    fn = getattr(F, name)
    for t in range(1, steps + 1):
        views["grad"][...] = rng.standard_normal(shape) * scale
        grad = views["grad"].copy()
        twin.functional_call(fn, name, hp, views["param"], views["grad"], buffers, t)
        assert views["grad"].tobytes() == grad.tobytes(), "the gradient is only read"
        twin.step(name, ref_param, grad, ref_state, hp)

    twin.assert_matches(name, dtype, views["param"], buffers, ref_param, ref_state)
    _assert_outside_untouched(backings, dtype)


# ------------------------------------------------------------- invalid inputs


HYPER_BREAKERS = {
    "lr": [-1e-3, math.nan, math.inf, "0.1", None],
    "eps": [-1e-8, math.nan, math.inf],
    "weight_decay": [-0.1, math.nan],
    "beta1": [1.0, -0.1, math.nan, 1.5],
    "beta2": [1.0, math.inf],
    "momentum": [-0.5, math.nan],
    "dampening": [math.nan, math.inf],
    "alpha": [-0.1, math.nan],
    "lr_decay": [-0.5, math.inf],
    "amsgrad": [1, "yes"],
    "maximize": [0, None],
    "centered": [1],
    "nesterov": [1],
    "decoupled_weight_decay": ["no"],
    "momentum_decay": [-0.5, math.nan],
    "mu_product": [-0.5, 1.5, math.nan, None],  # scalar state, checked like a hyperparameter
    "step": [0, -3, 1.0, True, None],
    "etaminus": [0.0, 1.0, math.nan, "0.5"],
    "etaplus": [1.0, 0.5, math.nan],
    "step_size_min": [-1.0, math.nan, 1e9],
    "step_size_max": [-1.0, math.nan, None],
}


def _bad_buffer(draw, key, views, keys, dtype):
    """A broken replacement for ``views[key]`` (and a description of what is wrong)."""
    view = views[key]
    dtype = np.dtype(dtype)
    other = np.float64 if dtype == np.float32 else np.float32
    kinds = ["dtype", "int", "shape", "list", "swapped"]
    if view.size:
        kinds += ["misaligned", "overlap"]
        if key not in ("grad", "grads"):  # a read-only gradient is fine
            kinds.append("read-only")
    if view.size >= 2:  # a strided view of one element still counts as contiguous
        kinds.append("strided")
    kind = draw(st.sampled_from(kinds), label="broken buffer")
    if kind == "dtype":
        return kind, view.astype(other)
    if kind == "int":
        return kind, view.astype(np.int64)
    if kind == "shape":
        return kind, np.zeros((*view.shape, 2), dtype)
    if kind == "list":
        return kind, view.tolist()
    if kind == "swapped":
        return kind, view.astype(view.dtype.newbyteorder())
    if kind == "strided":
        strided = np.repeat(view, 2, axis=-1)[..., ::2]
        assert strided.shape == view.shape
        assert not strided.flags.c_contiguous
        return kind, strided
    if kind == "misaligned":
        raw = np.zeros(view.nbytes + 1, np.uint8)
        out = raw[1:].view(dtype).reshape(view.shape)
        out[...] = view
        return kind, out
    if kind == "overlap":
        # The memory of another buffer of the call.
        partner = draw(st.sampled_from([k for k in keys if k != key]), label="overlaps")
        return kind, views[partner]
    readonly = view.view()
    readonly.flags.writeable = False
    return kind, readonly


@SETTINGS
@given(
    data=st.data(),
    dtype=DTYPES,
    shape=SHAPES,
    seed=st.integers(0, 2**32 - 1),
    what=st.sampled_from(["hyperparameter", "buffer", "missing buffer", "extra buffer"]),
)
@pytest.mark.parametrize("name", twin.ALGORITHMS)
def test_invalid_functional_call_modifies_nothing(name, data, dtype, shape, seed, what):
    hp = data.draw(HYPERPARAMETERS[name], label="hyperparameters")
    slots = list(twin.active_slots(name, hp))
    keys = ["param", "grad", *slots]
    layout = data.draw(_layouts(len(keys)), label="layout")
    views, backings = _place(keys, shape, dtype, layout)
    rng = np.random.default_rng(seed)
    for key in keys:
        views[key][...] = rng.random(shape) + 0.5
    kwargs = {**twin.functional_kwargs(name, hp), **twin.initial_scalars(name)}
    if name in twin.STEPPED:
        kwargs["step"] = 2
    call = dict(views)

    optional = {"max_exp_avg_sq", "momentum_buffer", "grad_avg"}
    if what == "missing buffer" and not set(slots) & optional:
        what = "hyperparameter"
    if what == "extra buffer" and set(twin.SLOTS[name]) - set(slots) <= {"sum"}:
        what = "buffer"
    if what == "hyperparameter":
        key = data.draw(st.sampled_from(sorted(set(kwargs) & set(HYPER_BREAKERS))), label="key")
        kwargs[key] = data.draw(st.sampled_from(HYPER_BREAKERS[key]), label="bad value")
    elif what == "buffer":
        key = data.draw(st.sampled_from(keys), label="key")
        _, call[key] = _bad_buffer(data.draw, key, views, keys, dtype)
    elif what == "missing buffer":
        del call[data.draw(st.sampled_from(sorted(set(slots) & optional)), label="missing")]
    else:
        extra = sorted(set(twin.SLOTS[name]) - set(slots))
        call[data.draw(st.sampled_from(extra), label="extra")] = np.zeros(shape, dtype)

    before = [(b, b.tobytes()) for b, _ in backings]
    named = {twin.FUNCTIONAL_BUFFER.get(k, k): v for k, v in call.items()}
    param, grad = named.pop("param"), named.pop("grad")
    with pytest.raises((TypeError, ValueError)):
        getattr(F, name)(param, grad, **named, **kwargs)
    for backing, bits in before:
        assert backing.tobytes() == bits, "an invalid call modified memory"


@st.composite
def _class_setup(draw):
    name = draw(st.sampled_from(twin.ALGORITHMS))
    hp = draw(HYPERPARAMETERS[name])
    count = draw(st.integers(1, 4))
    specs = [(draw(SHAPES), draw(DTYPES)) for _ in range(count)]
    history = draw(st.lists(st.lists(st.booleans(), min_size=count, max_size=count), max_size=3))
    bad = draw(st.integers(0, count - 1))
    return name, hp, specs, history, bad


@SETTINGS
@given(setup=_class_setup(), data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_invalid_optimizer_step_modifies_nothing(setup, data, seed):
    """A step with one bad gradient changes no param, no state buffer and no step count."""
    name, hp, specs, history, bad = setup
    cls = OPTIMIZER_CLASSES[name]
    rng = np.random.default_rng(seed)
    params = [np.asarray(rng.standard_normal(shape), dtype) for shape, dtype in specs]
    opt = cls(params, **hp)

    def grads(mask):
        return [
            np.asarray(rng.standard_normal(p.shape), p.dtype) if on else None
            for p, on in zip(params, mask, strict=True)
        ]

    for mask in history:
        opt.step(grads(mask))
    good = grads([True] * len(params))
    views = {"params": params[bad], "grads": good[bad]}
    keys = ["params", "grads"]
    for slot in twin.buffer_keys(opt.state.get(bad, {})):
        views[slot] = opt.state[bad][slot]
        keys.append(slot)
    _, good[bad] = _bad_buffer(data.draw, "grads", views, keys, params[bad].dtype)

    state_before = {
        i: {k: (v.tobytes() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
        for i, s in opt.state.items()
    }
    params_before = [p.tobytes() for p in params]
    with pytest.raises((TypeError, ValueError)):
        opt.step(good)
    assert [p.tobytes() for p in params] == params_before
    after = {
        i: {k: (v.tobytes() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
        for i, s in opt.state.items()
    }
    assert after == state_before
