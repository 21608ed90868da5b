"""Every bad input raises, naming what is wrong, and leaves every buffer bit-for-bit unchanged."""

import math
import sys

import numpy as np
import pytest
import twin
from registry import OPTIMIZER_CLASSES

import fastadam
from fastadam import functional as F

NAN, INF = math.nan, math.inf

CLASSES = OPTIMIZER_CLASSES


# ---------------------------------------------------------------------- helpers


def _buffer_names(name, hp):
    """The functional's buffer keywords, in call order."""
    slots = twin.active_slots(name, hp)
    return ["param", "grad", *(twin.FUNCTIONAL_BUFFER.get(s, s) for s in slots)]


def _buffers(name, hp, shape=(7,), dtype=np.float64, seed=0, nan=True):
    """Random buffers by keyword; with a NaN in each, to exercise NaN-safe comparison."""
    rng = np.random.default_rng(seed)
    buffers = {}
    for key in _buffer_names(name, hp):
        a = rng.random(shape).astype(dtype) + 0.5  # positive: valid for every state buffer
        if nan:
            a.reshape(-1)[-1] = np.nan
        buffers[key] = a
    return buffers


def _call(name, hp, buffers, **override):
    """Call fastadam.functional.<name> with ``buffers`` and ``hp`` (plus overrides)."""
    kwargs = twin.functional_kwargs(name, hp)
    if name in twin.STEPPED:
        kwargs["step"] = 3
    if name in twin.SCALAR_STATE:  # NAdam's mu_product, a float the caller keeps
        kwargs[twin.SCALAR_STATE[name]] = 0.5
    kwargs.update(override)
    rest = {k: v for k, v in buffers.items() if k not in ("param", "grad")}
    return getattr(F, name)(buffers["param"], buffers["grad"], **rest, **kwargs)


def _snapshot(*objects):
    """Every ndarray among ``objects`` (recursively in dicts/lists), with a copy of its bytes."""
    found = []

    def walk(x):
        if isinstance(x, np.ndarray):
            found.append((x, x.copy(), x.tobytes()))
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)

    for obj in objects:
        walk(obj)
    return found


def _assert_unchanged(snapshot):
    assert snapshot, "nothing was snapshotted"
    for array, copy, bits in snapshot:
        assert array.tobytes() == bits, "a buffer was modified"
        if array.dtype.kind in "fc":
            assert np.array_equal(array, copy, equal_nan=True)


def _raises(snapshot, error, match, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` raises ``error`` matching ``match`` and modifies nothing."""
    with pytest.raises(error, match=match):
        fn(*args, **kwargs)
    _assert_unchanged(snapshot)


# ------------------------------------------------- functional hyperparameters

COMMON = [
    ({"lr": -1.0}, ValueError, r"^Invalid learning rate: -1\.0$"),
    ({"lr": np.float64(-1.0)}, ValueError, r"^Invalid learning rate: -1\.0$"),
    ({"lr": NAN}, ValueError, r"^Invalid learning rate: nan$"),
    ({"lr": INF}, ValueError, r"^Invalid learning rate: inf$"),
    ({"lr": -INF}, ValueError, r"^Invalid learning rate: -inf$"),
    ({"lr": "0.1"}, TypeError, r"^lr must be a real number"),
    ({"lr": None}, TypeError, r"^lr must be a real number"),
    ({"lr": True}, TypeError, r"^lr must be a real number"),
    ({"lr": [0.1]}, TypeError, r"^lr must be a real number"),
    ({"lr": 1j}, TypeError, r"^lr must be a real number"),
    ({"weight_decay": -0.1}, ValueError, r"^Invalid weight_decay value: -0\.1$"),
    ({"weight_decay": NAN}, ValueError, r"^Invalid weight_decay value: nan$"),
    ({"weight_decay": INF}, ValueError, r"^Invalid weight_decay value: inf$"),
    ({"weight_decay": "0"}, TypeError, r"^weight_decay must be a real number"),
    ({"maximize": 1}, TypeError, r"^maximize must be a bool"),
    ({"maximize": None}, TypeError, r"^maximize must be a bool"),
    ({"maximize": "False"}, TypeError, r"^maximize must be a bool"),
]
BETAS = [
    ({"beta1": 1.0}, ValueError, r"^Invalid beta parameter at index 0: 1\.0$"),
    ({"beta1": -0.1}, ValueError, r"^Invalid beta parameter at index 0: -0\.1$"),
    ({"beta1": NAN}, ValueError, r"^Invalid beta parameter at index 0: nan$"),
    ({"beta2": 1.0}, ValueError, r"^Invalid beta parameter at index 1: 1\.0$"),
    ({"beta2": 1.5}, ValueError, r"^Invalid beta parameter at index 1: 1\.5$"),
    ({"beta2": INF}, ValueError, r"^Invalid beta parameter at index 1: inf$"),
    ({"beta1": "0.9"}, TypeError, r"beta1|betas\[0\]"),
    ({"beta2": None}, TypeError, r"beta2|betas\[1\]"),
]
EPS = [
    ({"eps": -1e-8}, ValueError, r"^Invalid epsilon value: -1e-08$"),
    ({"eps": NAN}, ValueError, r"^Invalid epsilon value: nan$"),
    ({"eps": INF}, ValueError, r"^Invalid epsilon value: inf$"),
    ({"eps": None}, TypeError, r"^eps must be a real number"),
]
SPECIFIC = {
    "adam": [
        *BETAS,
        *EPS,
        ({"amsgrad": 1}, TypeError, r"^amsgrad must be a bool"),
        ({"decoupled_weight_decay": "yes"}, TypeError, r"^decoupled_weight_decay must be a bool"),
    ],
    "sgd": [
        ({"momentum": -0.5}, ValueError, r"^Invalid momentum value: -0\.5$"),
        ({"momentum": NAN}, ValueError, r"^Invalid momentum value: nan$"),
        ({"momentum": INF}, ValueError, r"^Invalid momentum value: inf$"),
        ({"momentum": "0.9"}, TypeError, r"^momentum must be a real number"),
        ({"dampening": NAN}, ValueError, r"dampening"),
        ({"dampening": INF}, ValueError, r"dampening"),
        ({"dampening": None}, TypeError, r"^dampening must be a real number"),
        ({"nesterov": 1}, TypeError, r"^nesterov must be a bool"),
        (
            {"nesterov": True, "dampening": 0.1},
            ValueError,
            r"^Nesterov momentum requires a momentum and zero dampening$",
        ),
        (
            {"nesterov": True, "dampening": 0.0, "momentum": 0.0},
            ValueError,
            r"^Nesterov momentum requires a momentum and zero dampening$",
        ),
    ],
    "rmsprop": [
        *EPS,
        ({"alpha": -0.1}, ValueError, r"^Invalid alpha value: -0\.1$"),
        ({"alpha": NAN}, ValueError, r"^Invalid alpha value: nan$"),
        ({"alpha": INF}, ValueError, r"^Invalid alpha value: inf$"),
        ({"alpha": None}, TypeError, r"^alpha must be a real number"),
        ({"momentum": -0.5}, ValueError, r"^Invalid momentum value: -0\.5$"),
        ({"momentum": NAN}, ValueError, r"^Invalid momentum value: nan$"),
        ({"centered": 1}, TypeError, r"^centered must be a bool"),
    ],
    "adagrad": [
        *EPS,
        ({"lr_decay": -0.5}, ValueError, r"^Invalid lr_decay value: -0\.5$"),
        ({"lr_decay": NAN}, ValueError, r"^Invalid lr_decay value: nan$"),
        ({"lr_decay": INF}, ValueError, r"^Invalid lr_decay value: inf$"),
        ({"lr_decay": "0"}, TypeError, r"^lr_decay must be a real number"),
    ],
    "adamax": [*BETAS, *EPS],
    "lion": BETAS,
    "nadam": [
        *BETAS,
        *EPS,
        ({"momentum_decay": -0.5}, ValueError, r"^Invalid momentum_decay value: -0\.5$"),
        ({"momentum_decay": NAN}, ValueError, r"^Invalid momentum_decay value: nan$"),
        ({"momentum_decay": "0"}, TypeError, r"^momentum_decay must be a real number"),
        ({"decoupled_weight_decay": 1}, TypeError, r"^decoupled_weight_decay must be a bool"),
    ],
    "radam": [
        *BETAS,
        *EPS,
        ({"decoupled_weight_decay": 1}, TypeError, r"^decoupled_weight_decay must be a bool"),
    ],
    # Rprop's functional takes neither lr (its state holds the step sizes) nor
    # weight_decay: of COMMON, only maximize.
    "rprop": [
        ({"etaminus": 1.0}, ValueError, r"^Invalid eta values: 1\.0, "),
        ({"etaminus": 0.0}, ValueError, r"^Invalid eta values: 0\.0, "),
        ({"etaplus": 1.0}, ValueError, r"^Invalid eta values: .*, 1\.0$"),
        ({"etaplus": NAN}, ValueError, r"^Invalid eta values: .*, nan$"),
        ({"etaminus": "0.5"}, TypeError, r"^etaminus must be a real number"),
        ({"step_size_min": -1.0}, ValueError, r"^Invalid step_sizes values: -1\.0, "),
        ({"step_size_max": NAN}, ValueError, r"^Invalid step_sizes values: .*, nan "),
        (
            {"step_size_min": 1.0, "step_size_max": 0.5},
            ValueError,
            r"^Invalid step_sizes values: 1\.0, 0\.5 \(they must satisfy",
        ),
        ({"step_size_max": None}, TypeError, r"^step_size_max must be a real number"),
    ],
}
_NO_LR = {"rprop"}
HYPER_CASES = [
    pytest.param(name, override, error, match, id=f"{name}-{override!r}")
    for name in twin.ALGORITHMS
    for override, error, match in [
        *(c for c in COMMON if name not in _NO_LR or "maximize" in c[0]),
        *SPECIFIC[name],
    ]
]


@pytest.mark.parametrize(("name", "override", "error", "match"), HYPER_CASES)
def test_functional_bad_hyperparameter(name, override, error, match):
    hp = twin.richest(name)
    buffers = _buffers(name, hp)
    _raises(_snapshot(buffers), error, match, _call, name, hp, buffers, **override)


def _as_numpy_scalar(key, value):
    if isinstance(value, bool):
        return np.bool_(value)
    if key == "lr":
        return np.float32(value)
    return np.float64(value) if isinstance(value, float) else value


@pytest.mark.parametrize("name", twin.ALGORITHMS)
def test_functional_numpy_scalars_are_accepted(name):
    hp = twin.richest(name)
    kwargs = twin.functional_kwargs(name, hp)
    as_numpy = {k: _as_numpy_scalar(k, v) for k, v in kwargs.items()}
    as_python = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in as_numpy.items()}
    assert any(isinstance(v, np.floating) for v in as_numpy.values())
    a, b = _buffers(name, hp, seed=1, nan=False), _buffers(name, hp, seed=1, nan=False)
    extra = {"step": np.int64(3)} if name in twin.STEPPED else {}
    _call(name, {}, a, **as_numpy, **extra)
    _call(name, {}, b, **as_python)
    for key in a:
        assert a[key].tobytes() == b[key].tobytes(), key
    assert not np.array_equal(a["param"], _buffers(name, hp, seed=1)["param"])


def test_functional_integer_hyperparameters_are_numbers():
    p, g = np.ones(2), np.full(2, 0.5)
    F.sgd(p, g, step=1, lr=1, weight_decay=0)
    np.testing.assert_array_equal(p, [0.5, 0.5])


# ------------------------------------------------------------------------- step

STEPPED = sorted(twin.STEPPED)
BAD_STEPS = [
    (0, ValueError, r"^Invalid step value: 0"),
    (-1, ValueError, r"^Invalid step value: -1"),
    (np.int64(0), ValueError, r"^Invalid step value: 0"),
    (1.0, TypeError, r"^step must be an integer, got float"),
    (2.5, TypeError, r"^step must be an integer"),
    (True, TypeError, r"^step must be an integer, got bool"),
    (np.True_, TypeError, r"^step must be an integer"),
    (None, TypeError, r"^step must be an integer"),
    ("3", TypeError, r"^step must be an integer"),
]


@pytest.mark.parametrize(("step", "error", "match"), BAD_STEPS, ids=[repr(s[0]) for s in BAD_STEPS])
@pytest.mark.parametrize("name", STEPPED)
def test_functional_bad_step(name, step, error, match):
    hp = twin.richest(name)
    buffers = _buffers(name, hp)
    _raises(_snapshot(buffers), error, match, _call, name, hp, buffers, step=step)


@pytest.mark.parametrize("step", [2**40, np.int64(2**40), 2**62])
@pytest.mark.parametrize("name", STEPPED)
def test_functional_huge_step_is_valid_and_finite(name, step):
    hp = twin.richest(name)
    rng = np.random.default_rng(11)
    param = rng.standard_normal(9)
    grad = rng.standard_normal(9)
    buffers = twin.new_buffers(name, hp, param)
    ref_state = twin.init_state(name, param, hp)
    # A state as it could be after many steps: positive second moments, some momentum
    # (and for NAdam, a product of momentum coefficients in [0, 1)).
    for slot in twin.active_slots(name, hp):
        buffers[slot][...] = rng.random(9) + 0.1
        ref_state[slot] = twin.f64(buffers[slot])
    for key in twin.initial_scalars(name):
        buffers[key] = ref_state[key] = rng.random()
    ref_state["step"] = int(step) - 1
    ref_param = twin.f64(param)
    twin.functional_call(getattr(F, name), name, hp, param, grad, buffers, step)
    twin.step(name, ref_param, grad, ref_state, hp)
    assert np.isfinite(param).all()
    assert all(np.isfinite(buffers[slot]).all() for slot in twin.state_slots(name, hp))
    twin.assert_matches(name, np.float64, param, buffers, ref_param, ref_state)


# ---------------------------------------------------------------------- buffers

FUNCTIONAL_BUFFERS = [
    pytest.param(name, key, id=f"{name}-{key}")
    for name in twin.ALGORITHMS
    for key in _buffer_names(name, twin.richest(name))
]


def _replace(name, key, make, shape=(7,), dtype=np.float64):
    """Buffers for ``name`` with ``buffers[key]`` replaced by ``make(original)``."""
    hp = twin.richest(name)
    buffers = _buffers(name, hp, shape, dtype)
    buffers[key] = make(buffers[key])
    return hp, buffers


BAD_DTYPES = [np.int64, np.int32, np.float16, np.complex128, np.bool_, object, np.longdouble]


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize(("name", "key"), FUNCTIONAL_BUFFERS)
def test_unsupported_dtype(name, key, dtype):
    hp, buffers = _replace(name, key, lambda a: np.ones(a.shape, dtype))
    match = rf"^{key} has dtype {np.dtype(dtype)}; fastadam supports float32 and float64"
    _raises(_snapshot(buffers), TypeError, match, _call, name, hp, buffers)


@pytest.mark.parametrize(("name", "key"), FUNCTIONAL_BUFFERS)
def test_dtype_mismatch_names_both(name, key):
    hp, buffers = _replace(name, key, lambda a: a.astype(np.float32))
    if key == "param":  # then the first other buffer is the odd one out
        match = r"^grad has dtype float64 but param has float32$"
    else:
        match = rf"^{key} has dtype float32 but param has float64$"
    _raises(_snapshot(buffers), TypeError, match, _call, name, hp, buffers)


SHAPES = {
    "longer": lambda a: np.ones(8),
    "shorter": lambda a: np.ones(6),
    "broadcastable (1,)": lambda a: np.ones(1),
    "broadcastable 0-d": lambda a: np.array(1.0),
    "same size (1, 7)": lambda a: a.reshape(1, 7),
    "transposable (7, 1)": lambda a: np.ones((7, 1)),
    "empty": lambda a: np.ones(0),
}


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize(("name", "key"), FUNCTIONAL_BUFFERS)
def test_shape_mismatch(name, key, shape):
    hp, buffers = _replace(name, key, SHAPES[shape])
    if key == "param":
        match = r"^grad has shape \(7,\) but param has shape "
    else:
        match = rf"^{key} has shape .* but param has shape \(7,\)$"
    _raises(_snapshot(buffers), ValueError, match, _call, name, hp, buffers)


# Each turns a (3, 4) array into a non-C-contiguous (3, 4) array of the same values.
NON_CONTIGUOUS = {
    "strided": lambda a: np.repeat(a, 2, axis=1)[:, ::2],
    "negative stride": lambda a: a[::-1].copy()[::-1],
    "transposed": lambda a: np.ascontiguousarray(a.T).T,
    "a slice of each row": lambda a: np.concatenate([a, a], axis=1)[:, 2:6],
}


@pytest.mark.parametrize("layout", list(NON_CONTIGUOUS))
@pytest.mark.parametrize(("name", "key"), FUNCTIONAL_BUFFERS)
def test_non_contiguous(name, key, layout):
    hp, buffers = _replace(name, key, NON_CONTIGUOUS[layout], shape=(3, 4))
    assert buffers[key].shape == (3, 4)
    assert not buffers[key].flags.c_contiguous
    match = rf"^{key} is not C-contiguous"
    _raises(_snapshot(buffers), ValueError, match, _call, name, hp, buffers)


@pytest.mark.parametrize(("name", "key"), [p for p in FUNCTIONAL_BUFFERS if p.values[1] != "grad"])
def test_read_only_param_or_state(name, key):
    hp = twin.richest(name)
    buffers = _buffers(name, hp)
    buffers[key].flags.writeable = False
    match = rf"^{key} is read-only$"
    _raises(_snapshot(buffers), ValueError, match, _call, name, hp, buffers)


@pytest.mark.parametrize("name", twin.ALGORITHMS)
def test_read_only_grad_is_fine(name):
    hp = twin.richest(name)
    a = _buffers(name, hp, seed=4, nan=False)
    b = _buffers(name, hp, seed=4, nan=False)
    before = {key: a[key].copy() for key in a if key != "grad"}
    a["grad"].flags.writeable = False
    _call(name, hp, a)
    _call(name, hp, b)
    for key in a:
        assert a[key].tobytes() == b[key].tobytes(), key
    # The step did something (an Rprop step whose grads all flipped sign moves no param,
    # but shrinks the step sizes).
    assert any(not np.array_equal(a[key], old) for key, old in before.items())
    # A read-only view of a writable array, as well.
    c = _buffers(name, hp, seed=4, nan=False)
    c["grad"] = np.lib.stride_tricks.as_strided(c["grad"], writeable=False)
    _call(name, hp, c)
    assert c["param"].tobytes() == b["param"].tobytes()


@pytest.mark.parametrize("kind", ["list", "tuple", "scalar", "memoryview"])
@pytest.mark.parametrize(("name", "key"), FUNCTIONAL_BUFFERS)
def test_not_an_array(name, key, kind):
    make = {
        "list": lambda a: a.tolist(),
        "tuple": lambda a: tuple(a.tolist()),
        "scalar": lambda a: 1.0,
        "memoryview": lambda a: memoryview(a.copy()),
    }[kind]
    hp, buffers = _replace(name, key, make)
    match = rf"^{key} must be a numpy.ndarray"
    _raises(_snapshot(buffers), TypeError, match, _call, name, hp, buffers)


@pytest.mark.parametrize(("name", "key"), FUNCTIONAL_BUFFERS)
def test_non_native_byte_order(name, key):
    hp, buffers = _replace(name, key, lambda a: a.astype(a.dtype.newbyteorder()))
    assert buffers[key].dtype.byteorder in "<>"
    assert buffers[key].dtype.byteorder != "="
    swapped = ">" if sys.byteorder == "little" else "<"
    match = rf"^{key} has dtype \{swapped}f8, not in native byte order$"
    _raises(_snapshot(buffers), TypeError, match, _call, name, hp, buffers)


@pytest.mark.parametrize(("name", "key"), FUNCTIONAL_BUFFERS)
def test_misaligned(name, key):
    def make(a):
        raw = np.zeros(a.nbytes + 1, np.uint8)
        out = raw[1:].view(np.float64)
        out[...] = a
        return out

    hp, buffers = _replace(name, key, make)
    assert not buffers[key].flags.aligned
    _raises(_snapshot(buffers), ValueError, rf"^{key} is not aligned", _call, name, hp, buffers)


def _overlap_pairs():
    for name in twin.ALGORITHMS:
        keys = _buffer_names(name, twin.richest(name))
        for i, a in enumerate(keys):
            for b in keys[i + 1 :]:
                yield pytest.param(name, a, b, id=f"{name}-{a}-{b}")


@pytest.mark.parametrize("how", ["same array", "shifted view", "one element"])
@pytest.mark.parametrize(("name", "first", "second"), list(_overlap_pairs()))
def test_overlapping_buffers(name, first, second, how):
    """No buffer that is written may share memory with another (the grad with itself is fine)."""
    hp = twin.richest(name)
    buffers = _buffers(name, hp)
    big = np.random.default_rng(3).random(20)
    if how == "same array":
        buffers[second] = buffers[first]
    elif how == "shifted view":
        buffers[first], buffers[second] = big[2:9], big[5:12]
    else:
        buffers[first], buffers[second] = big[2:9], big[8:15]
    pair = rf"({first} overlaps {second}|{second} overlaps {first}) in memory"
    _raises(_snapshot(buffers, big), ValueError, pair, _call, name, hp, buffers)


OPTIONAL = [
    ("adam", {"amsgrad": True}, "max_exp_avg_sq", None, r"max_exp_avg_sq is required"),
    ("adam", {"amsgrad": False}, "max_exp_avg_sq", "extra", r"max_exp_avg_sq was given"),
    ("sgd", {"momentum": 0.9}, "momentum_buffer", None, r"momentum_buffer is required"),
    ("sgd", {"momentum": 0.0}, "momentum_buffer", "extra", r"momentum_buffer was given"),
    ("rmsprop", {"centered": True}, "grad_avg", None, r"grad_avg is required"),
    ("rmsprop", {"centered": False}, "grad_avg", "extra", r"grad_avg was given"),
    ("rmsprop", {"momentum": 0.5}, "momentum_buffer", None, r"momentum_buffer is required"),
    ("rmsprop", {"momentum": 0.0}, "momentum_buffer", "extra", r"momentum_buffer was given"),
]


@pytest.mark.parametrize(
    ("name", "setting", "key", "given", "match"), OPTIONAL, ids=[o[4] for o in OPTIONAL]
)
def test_optional_state_buffer_required_or_refused(name, setting, key, given, match):
    hp = {**twin.richest(name), **setting}
    if name == "sgd":
        hp["nesterov"] = False
    buffers = _buffers(name, twin.richest(name))  # every buffer the algorithm can use
    assert key in buffers
    if given is None:
        del buffers[key]
    _raises(_snapshot(buffers), ValueError, match, _call, name, hp, buffers)


# ------------------------------------------------------------------- classes

BAD_CLASS_HYPERPARAMETERS = [
    (fastadam.Adam, {"lr": -1.0}, ValueError, r"^Invalid learning rate: -1\.0$"),
    (fastadam.Adam, {"lr": NAN}, ValueError, r"^Invalid learning rate: nan$"),
    (fastadam.Adam, {"lr": "1e-3"}, TypeError, r"^lr must be a real number"),
    (fastadam.Adam, {"betas": (1.0, 0.999)}, ValueError, r"at index 0: 1\.0$"),
    (fastadam.Adam, {"betas": (0.9, 1.0)}, ValueError, r"at index 1: 1\.0$"),
    (fastadam.Adam, {"betas": (0.9, NAN)}, ValueError, r"at index 1: nan$"),
    (fastadam.Adam, {"betas": (0.9,)}, TypeError, r"^betas must be a pair"),
    (fastadam.Adam, {"betas": (0.9, 0.99, 0.999)}, TypeError, r"^betas must be a pair"),
    (fastadam.Adam, {"betas": "ab"}, TypeError, r"^betas must be a pair"),
    (fastadam.Adam, {"betas": None}, TypeError, r"^betas must be a pair"),
    (fastadam.Adam, {"betas": 0.9}, TypeError, r"^betas must be a pair"),
    (fastadam.Adam, {"betas": ("0.9", 0.999)}, TypeError, r"betas\[0\]"),
    (fastadam.Adam, {"eps": -1e-8}, ValueError, r"^Invalid epsilon value: -1e-08$"),
    (fastadam.Adam, {"weight_decay": -1e-2}, ValueError, r"^Invalid weight_decay value: -0\.01$"),
    (fastadam.Adam, {"amsgrad": 1}, TypeError, r"^amsgrad must be a bool"),
    (fastadam.Adam, {"maximize": None}, TypeError, r"^maximize must be a bool"),
    (fastadam.AdamW, {"weight_decay": INF}, ValueError, r"^Invalid weight_decay value: inf$"),
    (fastadam.AdamW, {"betas": (-0.5, 0.9)}, ValueError, r"at index 0: -0\.5$"),
    (fastadam.SGD, {"lr": -1.0}, ValueError, r"^Invalid learning rate: -1\.0$"),
    (fastadam.SGD, {"momentum": -0.5}, ValueError, r"^Invalid momentum value: -0\.5$"),
    (
        fastadam.SGD,
        {"nesterov": True},
        ValueError,
        r"^Nesterov momentum requires a momentum and zero dampening$",
    ),
    (
        fastadam.SGD,
        {"nesterov": True, "momentum": 0.9, "dampening": 0.5},
        ValueError,
        r"^Nesterov momentum requires a momentum and zero dampening$",
    ),
    (fastadam.SGD, {"dampening": NAN}, ValueError, r"dampening"),
    (fastadam.SGD, {"nesterov": "yes"}, TypeError, r"^nesterov must be a bool"),
    (fastadam.RMSprop, {"alpha": -0.5}, ValueError, r"^Invalid alpha value: -0\.5$"),
    (fastadam.RMSprop, {"eps": NAN}, ValueError, r"^Invalid epsilon value: nan$"),
    (fastadam.RMSprop, {"momentum": -0.5}, ValueError, r"^Invalid momentum value: -0\.5$"),
    (fastadam.RMSprop, {"centered": 0}, TypeError, r"^centered must be a bool"),
    (fastadam.Adagrad, {"lr_decay": -0.5}, ValueError, r"^Invalid lr_decay value: -0\.5$"),
    (
        fastadam.Adagrad,
        {"initial_accumulator_value": -0.1},
        ValueError,
        r"^Invalid initial_accumulator_value value: -0\.1$",
    ),
    (
        fastadam.Adagrad,
        {"initial_accumulator_value": NAN},
        ValueError,
        r"^Invalid initial_accumulator_value value: nan$",
    ),
    (
        fastadam.Adagrad,
        {"initial_accumulator_value": None},
        TypeError,
        r"^initial_accumulator_value must be a real number",
    ),
    (fastadam.Adagrad, {"eps": -1.0}, ValueError, r"^Invalid epsilon value: -1\.0$"),
    (fastadam.Adamax, {"betas": (0.9, 1.0)}, ValueError, r"at index 1: 1\.0$"),
    (fastadam.Adamax, {"lr": INF}, ValueError, r"^Invalid learning rate: inf$"),
    (fastadam.Lion, {"betas": (1.0, 0.99)}, ValueError, r"at index 0: 1\.0$"),
    (fastadam.Lion, {"weight_decay": -1.0}, ValueError, r"^Invalid weight_decay value: -1\.0$"),
    (fastadam.Lion, {"lr": None}, TypeError, r"^lr must be a real number"),
]


@pytest.mark.parametrize(
    ("cls", "kwargs", "error", "match"),
    BAD_CLASS_HYPERPARAMETERS,
    ids=[f"{c.__name__}-{k!r}" for c, k, _, _ in BAD_CLASS_HYPERPARAMETERS],
)
def test_class_bad_hyperparameter(cls, kwargs, error, match):
    param = np.ones(4)
    snapshot = _snapshot(param)
    _raises(snapshot, error, match, cls, [param], **kwargs)
    _raises(snapshot, error, match, cls, [{"params": [param], **kwargs}])
    # In a second group, with a valid first one.
    _raises(snapshot, error, match, cls, [{"params": [np.ones(2)]}, {"params": [param], **kwargs}])
    opt = cls([np.ones(3)])
    groups = list(opt.param_groups)
    _raises(snapshot, error, match, opt.add_param_group, {"params": [param], **kwargs})
    assert opt.param_groups == groups


def test_class_numpy_scalars_are_accepted():
    a, b = np.ones(5), np.ones(5)
    opt_np = fastadam.Adam(
        [a],
        lr=np.float32(0.5),
        betas=(np.float64(0.8), np.float32(0.9)),
        eps=np.float64(1e-6),
        weight_decay=np.int64(0),
        amsgrad=np.bool_(True),
    )
    opt_py = fastadam.Adam(
        [b],
        lr=float(np.float32(0.5)),
        betas=(0.8, float(np.float32(0.9))),
        eps=1e-6,
        weight_decay=0,
        amsgrad=True,
    )
    for _ in range(3):
        g = np.linspace(-1, 1, 5)
        opt_np.step([g])
        opt_py.step([g])
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, np.ones(5))


PARAM_PROBLEMS = [
    (lambda: np.zeros(4, np.int64), TypeError, r"^params\[0\] has dtype int64"),
    (lambda: np.zeros(4, np.float16), TypeError, r"^params\[0\] has dtype float16"),
    (lambda: np.zeros(4, np.complex64), TypeError, r"^params\[0\] has dtype complex64"),
    (lambda: np.zeros(8)[::2], ValueError, r"^params\[0\] is not C-contiguous"),
    (lambda: np.zeros((3, 2)).T, ValueError, r"^params\[0\] is not C-contiguous"),
    (lambda: np.zeros(4).astype(">f8" if sys.byteorder == "little" else "<f8"), TypeError, "byte"),
    (lambda: [0.0, 1.0], TypeError, r"^params\[0\] must be a numpy.ndarray"),
]


@pytest.mark.parametrize(("make", "error", "match"), PARAM_PROBLEMS)
@pytest.mark.parametrize("cls", list(CLASSES.values()), ids=lambda c: c.__name__)
def test_class_rejects_bad_params_at_construction(cls, make, error, match):
    with pytest.raises(error, match=match):
        cls([make(), np.zeros(3)])


@pytest.mark.parametrize("cls", list(CLASSES.values()), ids=lambda c: c.__name__)
def test_class_rejects_read_only_params_at_construction(cls):
    param = np.zeros(4)
    param.flags.writeable = False
    with pytest.raises(ValueError, match=r"^params\[1\] is read-only"):
        cls([np.zeros(2), param])


@pytest.mark.parametrize("cls", list(CLASSES.values()), ids=lambda c: c.__name__)
def test_class_rejects_bad_params_arguments(cls):
    with pytest.raises(TypeError, match="wrap it in a list"):
        cls(np.zeros(3))
    with pytest.raises(ValueError, match="empty parameter list"):
        cls([])
    with pytest.raises(TypeError, match='"params" entry'):
        cls([{"lr": 0.1}])


@pytest.mark.parametrize("cls", list(CLASSES.values()), ids=lambda c: c.__name__)
def test_same_param_twice_is_refused(cls):
    p, q = np.zeros(4), np.zeros(3)
    big = np.zeros(10)
    overlap = r"overlaps .* a param may appear only once"
    with pytest.raises(ValueError, match=overlap):
        cls([p, q, p])
    with pytest.raises(ValueError, match=overlap):
        cls([{"params": [p]}, {"params": [q, p]}])
    with pytest.raises(ValueError, match=overlap):
        cls([big[0:5], big[4:9]])  # overlapping views
    with pytest.raises(ValueError, match=overlap):
        cls([big, big[7:8]])
    cls([big[0:5], big[5:10]])  # adjacent views are separate params
    opt = cls([p])
    groups = list(opt.param_groups)
    with pytest.raises(ValueError, match=overlap):
        opt.add_param_group({"params": [q, p]})
    assert opt.param_groups == groups
    assert len(opt.param_groups[0]["params"]) == 1


@pytest.mark.parametrize("cls", list(CLASSES.values()), ids=lambda c: c.__name__)
def test_grads_must_align_with_params(cls):
    params = [np.ones(3), np.ones(2)]
    opt = cls(params, lr=0.1)
    snapshot = _snapshot(params)
    g = [np.ones(3), np.ones(2)]
    _raises(
        snapshot,
        ValueError,
        r"^grads has 1 entries but the optimizer has 2 params$",
        opt.step,
        g[:1],
    )
    _raises(
        snapshot,
        ValueError,
        r"^grads has 3 entries but the optimizer has 2 params$",
        opt.step,
        [*g, np.ones(1)],
    )
    _raises(snapshot, ValueError, r"^grads has 0 entries", opt.step, [])
    _raises(snapshot, TypeError, r"a single array is accepted only with one param", opt.step, g[0])
    _raises(snapshot, TypeError, r"^grads must be a sequence", opt.step, "ab")
    _raises(snapshot, TypeError, r"^grads must be a sequence", opt.step, iter(g))
    _raises(snapshot, TypeError, r"^grads must be a sequence", opt.step, None)
    _raises(snapshot, TypeError, r"^grads must be a sequence", opt.step, {0: g[0], 1: g[1]})
    assert opt.state == {}


# ----------------------------------------------- all-or-nothing optimizer steps

N = 6


def _bad_last_grads(opt, params):
    """Ways to spoil only the last param's gradient, with the error each must raise."""
    slot = next(iter(twin.buffer_keys(opt.state.get(0, {}))), None)
    raw = np.zeros(N * 8 + 1, np.uint8)
    misaligned = raw[1:].view(np.float64)
    kinds = {
        "int dtype": (np.ones(N, np.int64), TypeError, r"grads\[2\] has dtype int64"),
        "float16": (np.ones(N, np.float16), TypeError, r"grads\[2\] has dtype float16"),
        "float32": (
            np.ones(N, np.float32),
            TypeError,
            r"grads\[2\] has dtype float32 but params\[2\] has float64",
        ),
        "longer": (np.ones(N + 1), ValueError, r"grads\[2\] has shape \(7,\)"),
        "broadcastable": (np.ones(1), ValueError, r"grads\[2\] has shape \(1,\)"),
        "2-d": (np.ones((2, 3)), ValueError, r"grads\[2\] has shape \(2, 3\)"),
        "strided": (np.ones(2 * N)[::2], ValueError, r"grads\[2\] is not C-contiguous"),
        "reversed": (np.ones(N)[::-1], ValueError, r"grads\[2\] is not C-contiguous"),
        "list": ([1.0] * N, TypeError, r"grads\[2\] must be a numpy.ndarray"),
        "byte order": (np.ones(N).astype(np.dtype(np.float64).newbyteorder()), TypeError, "byte"),
        "misaligned": (misaligned, ValueError, r"grads\[2\] is not aligned"),
        "its own param": (
            params[2],
            ValueError,
            r"grads\[2\] overlaps params\[2\]|params\[2\] overlaps grads\[2\]",
        ),
        "another param": (
            params[0],
            ValueError,
            r"grads\[2\] overlaps params\[0\]|params\[0\] overlaps grads\[2\]",
        ),
    }
    if slot is not None:
        kinds["a state buffer"] = (
            opt.state[0][slot],
            ValueError,
            rf"grads\[2\] overlaps {slot}\[0\]|{slot}\[0\] overlaps grads\[2\]",
        )
    return kinds


KINDS = [
    ("int dtype", "fresh"),
    ("float16", "fresh"),
    ("float32", "fresh"),
    ("longer", "fresh"),
    ("broadcastable", "fresh"),
    ("2-d", "fresh"),
    ("strided", "fresh"),
    ("reversed", "fresh"),
    ("list", "fresh"),
    ("byte order", "fresh"),
    ("misaligned", "fresh"),
    ("its own param", "fresh"),
    ("another param", "fresh"),
]
KINDS += [(kind, "with state") for kind, _ in KINDS] + [("a state buffer", "with state")]


def _optimizer(name, steps):
    hp = twin.richest(name)
    rng = np.random.default_rng(21)
    params = [rng.standard_normal(N) for _ in range(3)]
    opt = CLASSES[name]([{"params": params[:2]}, {"params": [params[2]]}], **hp)
    for _ in range(steps):
        opt.step([rng.standard_normal(N) for _ in range(3)])
    return opt, params, rng


def _opt_snapshot(opt, params):
    state = {i: dict(s) for i, s in opt.state.items()}
    groups = [dict(g) for g in opt.param_groups]
    return state, groups, _snapshot(params, opt.state)


def _assert_opt_unchanged(opt, before):
    state, groups, snapshot = before
    _assert_unchanged(snapshot)
    assert [dict(g) for g in opt.param_groups] == groups
    assert set(opt.state) == set(state)
    for i, entry in opt.state.items():
        assert set(entry) == set(state[i])
        for key, value in entry.items():
            assert value is state[i][key] or value == state[i][key], key


@pytest.mark.parametrize(("kind", "history"), KINDS, ids=[f"{k}-{h}" for k, h in KINDS])
@pytest.mark.parametrize("name", twin.ALGORITHMS)
def test_bad_last_grad_changes_nothing(name, kind, history):
    opt, params, rng = _optimizer(name, 0 if history == "fresh" else 2)
    bad, error, match = _bad_last_grads(opt, params)[kind]
    before = _opt_snapshot(opt, params)
    grads = [rng.standard_normal(N), rng.standard_normal(N), bad]
    with pytest.raises(error, match=match):
        opt.step(grads)
    _assert_opt_unchanged(opt, before)
    if history == "fresh":
        assert opt.state == {}, "no state may be created by a failed step"


@pytest.mark.parametrize("count", [2, 8, 40])
def test_overlap_found_among_few_and_many_params(count):
    """The overlap check sorts the spans of a short step on the stack and of a long one
    (more than 64 spans) on the heap: either way the last grad aliasing the first
    param's exp_avg is found, and nothing changes."""
    rng = np.random.default_rng(count)
    params = [rng.standard_normal(N) for _ in range(count)]
    opt = fastadam.Adam(params, lr=1e-2)
    opt.step([rng.standard_normal(N) for _ in range(count)])
    before = _opt_snapshot(opt, params)
    grads = [rng.standard_normal(N) for _ in range(count - 1)] + [opt.state[0]["exp_avg"]]
    last = rf"grads\[{count - 1}\]"
    with pytest.raises(
        ValueError, match=rf"{last} overlaps exp_avg\[0\]|exp_avg\[0\] overlaps {last}"
    ):
        opt.step(grads)
    _assert_opt_unchanged(opt, before)


@pytest.mark.parametrize("placement", ["in order", "reversed", "shuffled"])
def test_overlap_check_whatever_the_order_of_the_buffers_in_memory(placement):
    """Every buffer of 40 params is a slice of one array, placed in allocation order
    (runs the sort copies whole), reversed, or shuffled: disjoint buffers step, and one
    grad aliasing an exp_avg anywhere is found."""
    count = 40
    rng = np.random.default_rng(len(placement))
    places = np.arange(4 * count)
    if placement == "reversed":
        places = places[::-1]
    elif placement == "shuffled":
        places = rng.permutation(places)
    pool = rng.standard_normal(4 * count * N)
    views = [pool[k * N : (k + 1) * N] for k in places]
    params, grads = views[:count], views[count : 2 * count]
    opt = fastadam.Adam(params, lr=1e-2)
    for i in range(count):
        exp_avg, exp_avg_sq = views[2 * count + i], views[3 * count + i]
        np.abs(exp_avg_sq, out=exp_avg_sq)  # a second moment is not negative
        opt.state[i] = {"step": 1, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
    opt.step(grads)
    assert all(state["step"] == 2 for state in opt.state.values())
    before = _opt_snapshot(opt, params)
    victim = int(rng.integers(count))
    aliased = [*grads[:-1], opt.state[victim]["exp_avg"]]
    with pytest.raises(ValueError, match=rf"exp_avg\[{victim}\]"):
        opt.step(aliased)
    _assert_opt_unchanged(opt, before)


@pytest.mark.parametrize("history", ["fresh", "with state"])
@pytest.mark.parametrize("name", twin.ALGORITHMS)
def test_bad_last_param_changes_nothing(name, history):
    opt, params, rng = _optimizer(name, 0 if history == "fresh" else 2)
    params[2].flags.writeable = False
    before = _opt_snapshot(opt, params)
    with pytest.raises(ValueError, match=r"^params\[2\] is read-only"):
        opt.step([rng.standard_normal(N) for _ in range(3)])
    _assert_opt_unchanged(opt, before)
    if history == "fresh":
        assert opt.state == {}


@pytest.mark.parametrize(
    "spoil",
    ["wrong dtype", "wrong shape", "read-only", "overlaps the param", "not an array"],
)
@pytest.mark.parametrize("name", twin.ALGORITHMS)
def test_bad_state_buffer_changes_nothing(name, spoil):
    opt, params, rng = _optimizer(name, 2)
    slot = twin.buffer_keys(opt.state[2])[-1]
    buf = opt.state[2][slot]
    opt.state[2][slot] = {
        "wrong dtype": lambda: buf.astype(np.float32),
        "wrong shape": lambda: np.ones(N + 1),
        "read-only": lambda: np.lib.stride_tricks.as_strided(buf, writeable=False),
        "overlaps the param": lambda: params[2],
        "not an array": lambda: buf.tolist(),
    }[spoil]()
    before = _opt_snapshot(opt, params)
    with pytest.raises((TypeError, ValueError), match=rf"{slot}\[2\]|params\[2\]"):
        opt.step([rng.standard_normal(N) for _ in range(3)])
    _assert_opt_unchanged(opt, before)


GROUP_SPOILERS = [
    ({"lr": -1}, ValueError, r"^Invalid learning rate: -1$"),
    ({"lr": NAN}, ValueError, r"^Invalid learning rate: nan$"),
    ({"lr": "0.1"}, TypeError, r"^lr must be a real number"),
    ({"weight_decay": -1.0}, ValueError, r"^Invalid weight_decay value: -1\.0$"),
    ({"maximize": 0}, TypeError, r"^maximize must be a bool"),
]
SPECIFIC_GROUP_SPOILERS = {
    "adam": [
        ({"betas": (1.0, 0.9)}, ValueError, r"index 0: 1\.0$"),
        ({"eps": -1.0}, ValueError, r"^Invalid epsilon value: -1\.0$"),
        ({"amsgrad": 1}, TypeError, r"^amsgrad must be a bool"),
    ],
    "sgd": [
        ({"momentum": -0.5}, ValueError, r"^Invalid momentum value: -0\.5$"),
        ({"nesterov": True}, ValueError, r"^Nesterov momentum requires"),
    ],
    "rmsprop": [
        ({"alpha": -0.5}, ValueError, r"^Invalid alpha value: -0\.5$"),
        ({"centered": None}, TypeError, r"^centered must be a bool"),
    ],
    "adagrad": [
        ({"lr_decay": -0.5}, ValueError, r"^Invalid lr_decay value: -0\.5$"),
        (
            {"initial_accumulator_value": -1.0},
            ValueError,
            r"^Invalid initial_accumulator_value value: -1\.0$",
        ),
    ],
    "adamax": [({"betas": (0.9, NAN)}, ValueError, r"index 1: nan$")],
    "lion": [({"betas": (0.9,)}, TypeError, r"^betas must be a pair")],
    "nadam": [({"momentum_decay": -1.0}, ValueError, r"^Invalid momentum_decay value: -1\.0$")],
    "radam": [({"eps": NAN}, ValueError, r"^Invalid epsilon value: nan$")],
    "rprop": [
        ({"etas": (1.0, 1.2)}, ValueError, r"^Invalid eta values: 1\.0, 1\.2$"),
        ({"etas": None}, TypeError, r"^etas must be a pair of numbers"),
        ({"step_sizes": (1.0, 0.5)}, ValueError, r"^Invalid step_sizes values: 1\.0, 0\.5 "),
    ],
}
GROUP_CASES = [
    pytest.param(name, spoil, error, match, id=f"{name}-{spoil!r}")
    for name in twin.ALGORITHMS
    for spoil, error, match in [
        *(s for s in GROUP_SPOILERS if name != "rprop" or "weight_decay" not in s[0]),
        *SPECIFIC_GROUP_SPOILERS[name],
    ]
]


@pytest.mark.parametrize("history", ["fresh", "with state"])
@pytest.mark.parametrize(("name", "spoil", "error", "match"), GROUP_CASES)
def test_bad_group_hyperparameter_raises_at_next_step(name, spoil, error, match, history):
    opt, params, rng = _optimizer(name, 0 if history == "fresh" else 2)
    opt.param_groups[1].update(spoil)  # the last group; the first is fine
    before = _opt_snapshot(opt, params)
    with pytest.raises(error, match=match):
        opt.step([rng.standard_normal(N) for _ in range(3)])
    _assert_opt_unchanged(opt, before)
    if history == "fresh":
        assert opt.state == {}
