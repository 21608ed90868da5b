"""fastadam.functional.nadam and .radam: against the float64 twin, against torch.optim,
on bad input, and bit for bit across lengths, offsets and thread counts.

They have no optimizer class yet, so the suites that take every algorithm through
a class (twin.ALGORITHMS) leave them out; this module covers them on its own.
"""

from __future__ import annotations

import math
import zlib
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import twin
from test_functional import _run_functional as _run
from test_torch_parity import TOLERANCE as TORCH_TOLERANCE
from test_torch_parity import Gradients

import fastadam
from fastadam import _ext
from fastadam import functional as F

NEW = ("nadam", "radam")  # the functional-level tests of these two; classes: test_registry
NEW_CASES = [(name, hp) for name, hp in twin.CASES if name in NEW]
NEW_IDS = [twin.case_id(name, hp) for name, hp in NEW_CASES]
DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]
SHAPES = [(), (0,), (1,), (7,), (1023,), (31, 33)]
STEPS = 100


def _seed(*parts) -> int:
    return zlib.crc32(repr(parts).encode())


# ------------------------------------------------------------------ the twin


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)) or "0d")
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(("name", "hp"), NEW_CASES, ids=NEW_IDS)
def test_trajectory_matches_twin(name, hp, dtype, shape):
    rng = np.random.default_rng(_seed(name, hp, dtype, shape))
    param = rng.standard_normal(shape).astype(dtype)
    param0 = param.copy()
    address = param.ctypes.data
    grads = [rng.standard_normal(shape).astype(dtype) for _ in range(STEPS)]

    buffers = _run(name, hp, param, grads[:1])
    ref_param, ref_state = twin.trajectory(name, hp, param0, grads[:1])
    twin.assert_matches(name, dtype, param, buffers, ref_param, ref_state, "step 1: ")
    if param.size:  # RAdam's first step, lr*grad, may round away for a few tiny grads
        assert np.mean(param != param0) > 0.99, "the elements move on the first step"
    _run(name, hp, param, grads[1:], buffers, first_step=2)
    ref_param, ref_state = twin.trajectory(name, hp, param0, grads)
    twin.assert_matches(name, dtype, param, buffers, ref_param, ref_state, f"step {STEPS}: ")

    assert param.ctypes.data == address, "updated in place"
    assert param.shape == shape
    for slot in twin.active_slots(name, hp):
        assert buffers[slot].shape == shape
        assert buffers[slot].dtype == dtype
    assert np.isfinite(param).all()


def test_nadam_returns_the_new_mu_product_and_radam_none():
    p, g = np.ones(3), np.full(3, 0.5)
    m, v = np.zeros(3), np.zeros(3)
    kw = {"lr": 0.1, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "momentum_decay": 4e-3}
    product = F.nadam(p, g, m, v, step=1, mu_product=1.0, **kw)
    mu1 = 0.9 * (1.0 - 0.5 * 0.96 ** (1 * 4e-3))
    assert type(product) is float
    assert product == mu1
    product2 = F.nadam(p, g, m, v, step=2, mu_product=np.float32(product), **kw)
    assert type(product2) is float
    assert product2 == float(np.float32(product)) * 0.9 * (1.0 - 0.5 * 0.96 ** (2 * 4e-3))
    assert F.radam(p, g, m, v, step=1, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8) is None


def test_nadam_first_step_by_hand():
    # m = 0.1 g, v = 0.001 g^2, d = |g| (eps = 0), so the step is
    # lr (1-mu1)/(1-mu1) sign(g) + lr mu2/(1-mu1 mu2) 0.1 sign(g), mu_product = mu1 after it.
    psi = 4e-3
    mu1 = 0.9 * (1.0 - 0.5 * 0.96**psi)
    mu2 = 0.9 * (1.0 - 0.5 * 0.96 ** (2 * psi))
    p = np.ones(2)
    m, v = np.zeros(2), np.zeros(2)
    F.nadam(p, np.array([2.0, -2.0]), m, v, step=1, mu_product=1.0, lr=0.1, beta1=0.9,
            beta2=0.999, eps=0.0)  # fmt: skip
    move = 0.1 + 0.1 * mu2 / (1 - mu1 * mu2) * 0.1
    np.testing.assert_allclose(p, [1 - move, 1 + move], rtol=1e-15)
    np.testing.assert_allclose(m, [0.2, -0.2], rtol=1e-15)


def test_radam_by_hand_unrectified_then_rectified():
    # beta2 = 0.8: rho_inf = 9; rho_t <= 5 up to step 6, so steps 1-6 are bias-corrected momentum.
    kw = {"lr": 0.1, "beta1": 0.5, "beta2": 0.8, "eps": 0.0}
    p = np.zeros(1)
    m, v = np.zeros(1), np.zeros(1)
    for t in range(1, 7):
        before = p.copy()
        F.radam(p, np.array([1.0]), m, v, step=t, **kw)
        np.testing.assert_allclose(before - p, [0.1], rtol=1e-14)  # m / (1 - 0.5^t) = 1
    # Step 7 is rectified: with a constant gradient v / (1 - b2^t) = 1, so the step is lr * r_7.
    rho_inf, b2t = 9.0, 0.8**7
    rho = rho_inf - 2 * 7 * b2t / (1 - b2t)
    r = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
    before = p.copy()
    F.radam(p, np.array([1.0]), m, v, step=7, **kw)
    np.testing.assert_allclose(before - p, [0.1 * r], rtol=1e-14)
    assert 0.1 * r < 0.1


def test_nadam_mu_product_zero_is_valid():
    """The product is 0 from the first step with beta1 = 0, and underflows to 0 with
    beta1 < 0.5 (above, it stops at the smallest subnormal)."""
    p, g = np.ones(2), np.array([1.0, -1.0])
    m, v = np.zeros(2), np.zeros(2)
    kw = {"lr": 0.1, "beta1": 0.0, "beta2": 0.9, "eps": 0.0}
    assert F.nadam(p, g, m, v, step=1, mu_product=1.0, **kw) == 0.0
    assert F.nadam(p, g, m, v, step=2, mu_product=0.0, **kw) == 0.0
    # beta1 = 0: no momentum, plain RMSprop-like steps of lr * sign(g).
    np.testing.assert_allclose(p, [0.8, 1.2], rtol=1e-15)
    product = 1.0
    q, mq, vq = np.ones(2), np.zeros(2), np.zeros(2)
    for t in range(1, 2001):
        product = F.nadam(q, g, mq, vq, step=t, mu_product=product, lr=1e-3, beta1=0.4,
                          beta2=0.999, eps=1e-8)  # fmt: skip
    assert product == 0.0
    assert np.isfinite(q).all()


@pytest.mark.parametrize("step", [2**40, 2**62])
@pytest.mark.parametrize("name", NEW)
def test_huge_step_is_valid_and_finite(name, step):
    hp = twin.richest(name)
    rng = np.random.default_rng(11)
    param, grad = rng.standard_normal(9), rng.standard_normal(9)
    buffers = twin.new_buffers(name, hp, param)
    ref_state = twin.init_state(name, param, hp)
    for slot in twin.active_slots(name, hp):
        buffers[slot][...] = rng.random(9) + 0.1
        ref_state[slot] = twin.f64(buffers[slot])
    ref_state["step"] = step - 1
    ref_param = twin.f64(param)
    twin.functional_call(getattr(F, name), name, hp, param, grad, buffers, step)
    twin.step(name, ref_param, grad, ref_state, hp)
    assert np.isfinite(param).all()
    twin.assert_matches(name, np.float64, param, buffers, ref_param, ref_state)


# ------------------------------------------------------------------ torch.optim

# torch's optim_inputs_func_nadam / _radam (CPU), then combinations they leave out.
TORCH_INPUTS: list[tuple[str, dict[str, Any]]] = [
    ("NAdam", {}),
    ("NAdam", {"lr": 1e-3}),
    ("NAdam", {"momentum_decay": 6e-3}),
    ("NAdam", {"weight_decay": 0.1}),
    ("NAdam", {"weight_decay": 0.1, "momentum_decay": 6e-3}),
    ("NAdam", {"weight_decay": 0.1, "momentum_decay": 6e-3, "decoupled_weight_decay": True}),
    ("NAdam", {"weight_decay": 0.1, "maximize": True}),
    ("NAdam", {"betas": (0.4, 0.8), "eps": 1e-3, "lr": 1e-2, "momentum_decay": 0.0}),
    ("NAdam", {"weight_decay": 0.9, "decoupled_weight_decay": True, "maximize": True}),
    ("RAdam", {}),
    ("RAdam", {"lr": 2e-3}),
    ("RAdam", {"eps": 1e-6}),
    ("RAdam", {"weight_decay": 0.1}),
    ("RAdam", {"weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("RAdam", {"weight_decay": 0.1, "maximize": True}),
    ("RAdam", {"betas": (0.3, 0.8), "eps": 1e-3, "lr": 1e-2}),  # rectified from step 7
    ("RAdam", {"betas": (0.9, 0.5), "maximize": True}),  # rho_inf = 3: never rectified
]
TORCH_SHAPES = [(), (1,), (7, 13), (3, 4, 25), (40, 50)]
TORCH_STEPS = 60


@pytest.fixture
def default_dtype(torch: ModuleType):
    """Set torch's default dtype for one test (torch keeps NAdam's mu_product in it)."""
    before = torch.get_default_dtype()
    yield lambda dtype: torch.set_default_dtype(getattr(torch, np.dtype(dtype).name))
    torch.set_default_dtype(before)


def _torch_run(torch, cls, kwargs, dtype):
    """TORCH_STEPS of the same gradients through torch.optim.<cls> (foreach=False) and
    the functional; returns the relative errors by "param i" / "param i <slot>", and
    NAdam's mu_products (ours, torch's) of the last param.

    Each error is max|ours - torch| over the largest magnitude torch's buffer had
    along the run: a moving average may end near 0, its rounding set by its past.
    """
    rng = np.random.default_rng(_seed("torch", cls, kwargs, dtype))
    arrays = [np.array(rng.standard_normal(s), dtype=dtype) for s in TORCH_SHAPES]
    initial = [a.copy() for a in arrays]
    tensors = [torch.from_numpy(a.copy()).requires_grad_() for a in arrays]
    theirs = getattr(torch.optim, cls)(tensors, foreach=False, **kwargs)
    group = theirs.param_groups[0]
    names = ["lr", "betas", "eps", "weight_decay", "decoupled_weight_decay", "maximize"]
    hp = {k: group[k] for k in names + (["momentum_decay"] if cls == "NAdam" else [])}
    name = cls.lower()
    states = [twin.new_buffers(name, hp, a) for a in arrays]
    scale: dict[str, float] = {}
    gradients = Gradients(arrays)
    for t in range(1, TORCH_STEPS + 1):
        grads = gradients()
        for tensor, grad in zip(tensors, grads, strict=True):
            tensor.grad = torch.from_numpy(grad.copy())
        theirs.step()
        for i, (array, grad, state) in enumerate(zip(arrays, grads, states, strict=True)):
            twin.functional_call(getattr(F, name), name, hp, array, grad, state, t)
            for key, value in _torch_buffers(theirs, tensors[i], i).items():
                scale[key] = max(scale.get(key, 0.0), float(np.max(np.abs(value), initial=0.0)))
    errors = {}
    for i, (array, tensor, state) in enumerate(zip(arrays, tensors, states, strict=True)):
        assert int(theirs.state[tensor]["step"]) == TORCH_STEPS
        assert not np.array_equal(tensor.detach().numpy(), initial[i]), "torch moved the param"
        ours = {f"param {i}": array, **{f"param {i} {k}": state[k] for k in SLOTS}}
        for key, value in _torch_buffers(theirs, tensor, i).items():
            assert ours[key].dtype == value.dtype, key
            difference = np.abs(ours[key].astype(np.float64) - value)
            errors[key] = float(np.max(difference, initial=0.0)) / scale[key]
    products = None
    if cls == "NAdam":
        products = (states[-1]["mu_product"], float(theirs.state[tensors[-1]]["mu_product"]))
    return errors, products


SLOTS = ("exp_avg", "exp_avg_sq")


def _torch_buffers(theirs, tensor, i) -> dict[str, np.ndarray]:
    state = theirs.state[tensor]
    return {
        f"param {i}": tensor.detach().numpy(),
        **{f"param {i} {k}": state[k].numpy() for k in SLOTS},
    }


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(
    ("cls", "kwargs"),
    TORCH_INPUTS,
    ids=[
        f"{c}-{','.join(f'{k}={v}' for k, v in kw.items()) or 'default'}" for c, kw in TORCH_INPUTS
    ],
)
def test_parity_with_torch(torch, default_dtype, cls, kwargs, dtype):
    """Params and state within test_torch_parity's tolerance of torch's single-tensor loop.

    torch's default dtype is the params': with float64 params torch then keeps
    NAdam's mu_product in double, as fastadam does (in float32 it rounds it every step).
    """
    default_dtype(dtype)
    errors, products = _torch_run(torch, cls, kwargs, dtype)
    tol = TORCH_TOLERANCE[np.dtype(dtype)]
    worst = max(errors, key=errors.__getitem__)
    assert errors[worst] <= tol, f"{worst}: relative error {errors[worst]:.3g}"
    if products is not None:
        ours, theirs = products
        if dtype == np.float64:
            assert abs(ours - theirs) <= 1e-15 * theirs, products
        else:  # two roundings per step, to 2**-24 relative or, subnormal, to 2**-150 absolute
            bound = TORCH_STEPS * 2 * (2**-24 * theirs + 2.0**-150)
            assert abs(ours - theirs) <= bound, products


# ------------------------------------------------------------------ bad input

BETA_HP = {"lr": 1e-2, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
# Hyperparameters whose bad values torch.optim.NAdam / RAdam reject too, with these messages.
TORCH_CHECKED = [
    ({"lr": -1.0}, r"^Invalid learning rate: -1\.0$"),
    ({"lr": math.nan}, r"^Invalid learning rate: nan$"),
    ({"eps": -1e-8}, r"^Invalid epsilon value: -1e-08$"),
    ({"beta1": 1.0}, r"^Invalid beta parameter at index 0: 1\.0$"),
    ({"beta1": -0.5}, r"^Invalid beta parameter at index 0: -0\.5$"),
    ({"beta2": 1.0}, r"^Invalid beta parameter at index 1: 1\.0$"),
    ({"beta2": math.nan}, r"^Invalid beta parameter at index 1: nan$"),
    ({"weight_decay": -0.1}, r"^Invalid weight_decay value: -0\.1$"),
]
NADAM_ONLY = [({"momentum_decay": -0.2}, r"^Invalid momentum_decay value: -0\.2$")]
OTHER_BAD = [
    ({"lr": math.inf}, ValueError, r"^Invalid learning rate: inf$"),
    ({"lr": "0.1"}, TypeError, r"^lr must be a real number, got str$"),
    ({"eps": None}, TypeError, r"^eps must be a real number, got NoneType$"),
    ({"beta1": True}, TypeError, r"^beta1 must be a real number, got bool$"),
    ({"weight_decay": math.inf}, ValueError, r"^Invalid weight_decay value: inf$"),
    ({"step": 0}, ValueError, r"^Invalid step value: 0"),
    ({"step": 2.0}, TypeError, r"^step must be an integer, got float$"),
    ({"maximize": 1}, TypeError, r"^maximize must be a bool, got int$"),
    ({"decoupled_weight_decay": "yes"}, TypeError, r"^decoupled_weight_decay must be a bool"),
]
NADAM_OTHER_BAD = [
    ({"momentum_decay": math.nan}, ValueError, r"^Invalid momentum_decay value: nan$"),
    ({"momentum_decay": "0"}, TypeError, r"^momentum_decay must be a real number, got str$"),
    ({"mu_product": -0.5}, ValueError, r"^Invalid mu_product value: -0\.5 "),
    ({"mu_product": 1.5}, ValueError, r"^Invalid mu_product value: 1\.5 "),
    ({"mu_product": math.nan}, ValueError, r"^Invalid mu_product value: nan "),
    ({"mu_product": math.inf}, ValueError, r"^Invalid mu_product value: inf "),
    ({"mu_product": None}, TypeError, r"^mu_product must be a real number, got NoneType$"),
    ({"mu_product": True}, TypeError, r"^mu_product must be a real number, got bool$"),
    ({"mu_product": "1"}, TypeError, r"^mu_product must be a real number, got str$"),
]


def _buffers(dtype=np.float64, n=9, seed=0):
    rng = np.random.default_rng(seed)
    buffers = {
        "param": rng.standard_normal(n).astype(dtype),
        "grad": rng.standard_normal(n).astype(dtype),
        "exp_avg": rng.standard_normal(n).astype(dtype),
        "exp_avg_sq": rng.random(n).astype(dtype),
    }
    buffers["param"][-1] = np.nan  # NaN-safe comparison: bits, not values
    return buffers


def _call(name, buffers, **override):
    kwargs = {**BETA_HP, "step": 3, **({"mu_product": 0.5} if name == "nadam" else {})}
    kwargs.update(override)
    return getattr(F, name)(**buffers, **kwargs)


def _assert_raises_and_modifies_nothing(name, buffers, error, match, **override) -> str:
    """The call raises ``error`` matching ``match`` (returned) and leaves every array's bytes."""
    before = {key: (b.tobytes() if isinstance(b, np.ndarray) else b) for key, b in buffers.items()}
    with pytest.raises(error, match=match) as caught:
        _call(name, buffers, **override)
    for key, b in buffers.items():
        if isinstance(b, np.ndarray):
            assert b.tobytes() == before[key], f"{key} was modified"
    return str(caught.value)


def _torch_message(torch, name, override) -> str:
    kwargs = {k: v for k, v in override.items() if not k.startswith("beta")}
    betas = (override.get("beta1", 0.9), override.get("beta2", 0.999))
    cls = {"nadam": torch.optim.NAdam, "radam": torch.optim.RAdam}[name]
    with pytest.raises(ValueError, match=r"^Invalid ") as caught:
        cls([torch.zeros(1, requires_grad=True)], betas=betas, **kwargs)
    return str(caught.value)


def _by_name(common, nadam_only):
    cases = [(name, *case) for name in NEW for case in common]
    cases += [("nadam", *case) for case in nadam_only]
    return [pytest.param(*case, id=f"{case[0]}-{case[1]!r}") for case in cases]


@pytest.mark.parametrize(("name", "override", "match"), _by_name(TORCH_CHECKED, NADAM_ONLY))
def test_bad_hyperparameter_raises_torchs_message(torch, name, override, match):
    message = _assert_raises_and_modifies_nothing(name, _buffers(), ValueError, match, **override)
    assert message == _torch_message(torch, name, override)


@pytest.mark.parametrize(
    ("name", "override", "error", "match"), _by_name(OTHER_BAD, NADAM_OTHER_BAD)
)
def test_bad_argument_raises_and_modifies_nothing(name, override, error, match):
    _assert_raises_and_modifies_nothing(name, _buffers(), error, match, **override)


def _swap(key, make):
    def change(buffers):
        buffers[key] = make(buffers[key])
        return buffers

    return change


BAD_BUFFERS = [
    ("missing exp_avg", _swap("exp_avg", lambda b: None), TypeError,
     r"^exp_avg must be a numpy.ndarray, got NoneType$"),
    ("missing grad", _swap("grad", lambda b: None), TypeError,
     r"^grad must be a numpy.ndarray, got NoneType$"),
    ("list exp_avg_sq", _swap("exp_avg_sq", lambda b: b.tolist()), TypeError,
     r"^exp_avg_sq must be a numpy.ndarray"),
    ("float32 exp_avg", _swap("exp_avg", lambda b: b.astype(np.float32)), TypeError,
     r"^exp_avg has dtype float32 but param has float64$"),
    ("short exp_avg_sq", _swap("exp_avg_sq", lambda b: b[:-1].copy()), ValueError,
     r"^exp_avg_sq has shape \(8,\) but param has shape \(9,\)$"),
    ("strided grad", _swap("grad", lambda b: np.repeat(b, 2)[::2]), ValueError,
     r"^grad is not C-contiguous"),
    ("read-only exp_avg", _swap("exp_avg", lambda b: np.frombuffer(b.tobytes())), ValueError,
     r"^exp_avg is read-only$"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [case[1:] for case in BAD_BUFFERS],
    ids=[case[0] for case in BAD_BUFFERS],
)
@pytest.mark.parametrize("name", NEW)
def test_bad_buffer_raises_and_modifies_nothing(name, change, error, match):
    _assert_raises_and_modifies_nothing(name, change(_buffers()), error, match)


@pytest.mark.parametrize("name", NEW)
def test_overlapping_buffers_raise_and_modify_nothing(name):
    buffers = _buffers()
    buffers["exp_avg_sq"] = buffers["exp_avg"]
    _assert_raises_and_modifies_nothing(name, buffers, ValueError, "overlap")
    big = np.zeros(12)
    buffers = {**_buffers(), "exp_avg": big[:9], "exp_avg_sq": big[3:]}
    _assert_raises_and_modifies_nothing(name, buffers, ValueError, "overlap")


# ------------------------------------------------------------ bits: lengths, offsets, threads


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(("name", "hp"), NEW_CASES, ids=NEW_IDS)
def test_every_length_and_offset_computes_the_same_bits(name, hp, dtype):
    """Arrays of 1..70 elements at offsets 0, 1 and 3 (vector body, scalar tail, peeled
    head) compute the bits of one long run's matching elements."""
    longest, nsteps = 73, 8  # through RAdam's first rectified steps for beta2 = 0.8
    rng = np.random.default_rng(_seed("bits", name, hp, dtype))
    param0 = rng.standard_normal(longest).astype(dtype)
    grads = [rng.standard_normal(longest).astype(dtype) for _ in range(nsteps)]
    param = param0.copy()
    whole = _run(name, hp, param, grads)
    slots = twin.active_slots(name, hp)
    for offset in (0, 1, 3):
        for n in range(1, longest - offset + 1):
            part = slice(offset, offset + n)
            p = np.empty(longest, dtype)[part]  # a view at the offset, not a realigned copy
            p[...] = param0[part]
            state = _run(name, hp, p, [g[part] for g in grads])
            assert p.tobytes() == param[part].tobytes(), (offset, n)
            for slot in slots:
                assert state[slot].tobytes() == whole[slot][part].tobytes(), (slot, offset, n)


@pytest.fixture
def _restore_threads():
    before = fastadam.get_num_threads()
    yield
    fastadam.set_num_threads(before)


@pytest.mark.usefixtures("_restore_threads")
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", NEW)
def test_thread_count_does_not_change_the_bits(name, dtype):
    hp = twin.richest(name)
    n = 300_001  # odd, and split over threads
    rng = np.random.default_rng(_seed("threads", name, dtype))
    param0 = rng.standard_normal(n).astype(dtype)
    grads = [rng.standard_normal(n).astype(dtype) for _ in range(7)]
    results = []
    for count in (1, 2) if _ext.has_openmp() else (1,):
        fastadam.set_num_threads(count)
        assert fastadam.get_num_threads() == count
        param = param0.copy()
        results.append((param, _run(name, hp, param, grads)))
    (param, state), *others = results
    ref_param, ref_state = twin.trajectory(name, hp, param0, grads)
    twin.assert_matches(name, dtype, param, state, ref_param, ref_state)
    for other_param, other_state in others:
        assert other_param.tobytes() == param.tobytes()
        for slot in twin.active_slots(name, hp):
            assert other_state[slot].tobytes() == state[slot].tobytes(), slot


# ------------------------------------------------------ NAdam's scalar state in the class


@pytest.mark.parametrize(
    ("value", "error"),
    [(1.5, ValueError), (-0.5, ValueError), (float("nan"), ValueError), ("x", TypeError)],
)
def test_class_checks_stored_mu_product(value: Any, error: type[Exception]) -> None:
    """A stored mu_product out of [0, 1] (or not a number) raises naming the state entry,
    at the step and at load, and changes nothing."""
    param = np.linspace(-1, 1, 33)
    opt = fastadam.NAdam([param])
    opt.step([np.cos(param)])
    saved = opt.state_dict()
    before = param.copy(), {k: np.copy(v) for k, v in opt.state[0].items()}
    opt.state[0]["mu_product"] = value
    with pytest.raises(error, match=r'state\[0\]\["mu_product"\]'):
        opt.step([np.cos(param)])
    np.testing.assert_array_equal(param, before[0])
    for key in ("exp_avg", "exp_avg_sq", "step"):
        np.testing.assert_array_equal(opt.state[0][key], before[1][key])
    saved["state"][0]["mu_product"] = value
    fresh = fastadam.NAdam([param.copy()])
    with pytest.raises(error, match=r'state\[0\]\["mu_product"\]'):
        fresh.load_state_dict(saved)
    assert fresh.state == {}


def test_class_keeps_mu_product_in_double() -> None:
    """A mu_product stored as a NumPy float32 comes back as a Python float (double) after a
    step, equal to the float64 product of the twin's."""
    param = np.linspace(-1, 1, 33)
    opt = fastadam.NAdam([param])
    opt.step([np.cos(param)])
    opt.state[0]["mu_product"] = np.float32(0.5)
    opt.step([np.cos(param)])
    value = opt.state[0]["mu_product"]
    assert type(value) is float
    mu = 0.9 * (1.0 - 0.5 * 0.96 ** (2 * 4e-3))
    assert value == 0.5 * mu
