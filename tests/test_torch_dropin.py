"""fastadam.torch, the PyTorch drop-in, against torch.optim.

Every test takes the ``torch`` fixture of conftest.py (a skip without torch, a
failure with FASTADAM_REQUIRE_TORCH=1), except the one that checks the ImportError
``fastadam.torch`` raises without torch. torch's reference is its for-loop
implementation (``foreach=False``; fastadam.torch is given the same flag, which it
keeps but ignores, so the param groups must be equal too). The hyperparameter sets
are torch's own (``TORCH_INPUTS`` of test_torch_parity.py).
"""

from __future__ import annotations

import copy
import importlib
import inspect
import io
import os
import pickle
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from conftest import run_ranks
from test_torch_parity import TORCH_INPUTS, _cases

import fastadam
from fastadam.optimizers import FORMAT_DEFAULTS

DTYPES = ["float32", "float64"]
TOLERANCE = {"float32": 1e-5, "float64": 1e-10}
NAMES = list(TORCH_INPUTS)  # the optimizers torch.optim has; Lion is tested on its own
ALL_NAMES = [*NAMES, "Lion"]
FORMATS = ("Adam", "AdamW")  # with compressed formats (tests/test_torch_compressed.py)
# A setting per optimizer that uses every state buffer it has.
FULL_STATE: dict[str, dict[str, Any]] = {
    "SGD": {"momentum": 0.9, "nesterov": True, "weight_decay": 0.1},
    "Adam": {"amsgrad": True, "weight_decay": 0.1},
    "AdamW": {"amsgrad": True, "lr": 0.01},
    "RMSprop": {"centered": True, "momentum": 0.1, "weight_decay": 0.1},
    "Adagrad": {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1},
    "Adamax": {"weight_decay": 0.1, "maximize": True},
    "NAdam": {"weight_decay": 0.1, "momentum_decay": 0.01},
    "RAdam": {"weight_decay": 0.1, "maximize": True},
    "Rprop": {"lr": 0.05, "etas": (0.4, 1.3), "step_sizes": (1e-4, 0.2)},
    "Lion": {"lr": 0.01, "weight_decay": 0.1},
}
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def ft(torch: ModuleType) -> ModuleType:
    """The fastadam.torch module (imported only once torch is known to be there)."""
    return importlib.import_module("fastadam.torch")


# ---------------------------------------------------------------------------- helpers


def rel_error(ours: Any, theirs: Any) -> float:
    """max|ours - theirs| / max|theirs| (the absolute error where theirs is all zero)."""
    ours, theirs = ours.detach().double(), theirs.detach().double()
    if theirs.numel() == 0:
        return 0.0
    scale = theirs.abs().max().item()
    error = (ours - theirs).abs().max().item()
    return error / scale if scale > 0 else error


def params_of(optimizer: Any) -> list[Any]:
    return [p for group in optimizer.param_groups for p in group["params"]]


def assert_twins(ours: Any, theirs: Any, tolerance: float) -> None:
    """Two optimizers over twin params agree: params, every state entry (a step count
    exactly, with its dtype), and the param groups."""
    for index, (p, q) in enumerate(zip(params_of(ours), params_of(theirs), strict=True)):
        assert p.dtype == q.dtype
        assert rel_error(p, q) <= tolerance, f"param {index}: {rel_error(p, q):.3g}"
        mine, expected = ours.state.get(p, {}), theirs.state.get(q, {})
        assert mine.keys() == expected.keys(), (
            f"param {index}: {sorted(mine)} != {sorted(expected)}"
        )
        for key, value in expected.items():
            assert (mine[key].dtype, mine[key].shape) == (value.dtype, value.shape), key
            if key == "step":
                assert mine[key].item() == value.item(), f"param {index}: step"
            else:
                error = rel_error(mine[key], value)
                assert error <= tolerance, f"param {index} state {key!r}: {error:.3g}"
    assert ours.state_dict()["param_groups"] == theirs.state_dict()["param_groups"]


def make_pair(torch: ModuleType, ft: ModuleType, name: str, params: Any, **kwargs: Any) -> Any:
    """torch.optim's ``name`` (for-loop) on ``params`` and fastadam.torch's on a clone."""
    clones = [p.detach().clone().requires_grad_() for p in params]
    theirs = getattr(torch.optim, name)(params, foreach=False, **kwargs)
    ours = getattr(ft, name)(clones, foreach=False, **kwargs)
    return ours, theirs


def random_params(torch: ModuleType, dtype: str, seed: int = 0) -> list[Any]:
    """A 0-d and a 1-element param, odd sizes and a larger one, seeded."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(), (1,), (7, 13), (3, 4, 25), (40, 50)]
    return [
        torch.randn(s, generator=gen, dtype=getattr(torch, dtype)).requires_grad_() for s in shapes
    ]


def gradient_stream(torch: ModuleType, params: Sequence[Any], seed: int = 1) -> Iterator[list[Any]]:
    """Seeded gradients independent of the params: a fixed drift per element plus noise."""
    gen = torch.Generator().manual_seed(seed)
    drift = [2 * torch.rand(p.shape, generator=gen, dtype=p.dtype) - 1 for p in params]
    while True:
        yield [d + torch.randn(d.shape, generator=gen, dtype=d.dtype) for d in drift]


def step_both(optimizers: Sequence[Any], grads: Sequence[Any]) -> None:
    """Give each optimizer's params (in order) a copy of ``grads`` and step it."""
    for optimizer in optimizers:
        for p, g in zip(params_of(optimizer), grads, strict=True):
            p.grad = g.clone()
        optimizer.step()


# ------------------------------------------------------------------- parity with torch


def _mlp(torch: ModuleType, dtype: Any) -> tuple[Any, Any]:
    """torch's derived-optimizer test model: Linear-Sigmoid-Linear-Sigmoid, plus a 0-d param."""
    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Linear(2, 3), torch.nn.Sigmoid(), torch.nn.Linear(3, 1), torch.nn.Sigmoid()
    ).to(dtype)
    scale = torch.nn.Parameter(torch.tensor(0.7, dtype=dtype))
    return model, scale


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "kwargs"), _cases(TORCH_INPUTS))
def test_derived_optimizer_iterations(
    torch: ModuleType, ft: ModuleType, name: str, kwargs: dict[str, Any], dtype: str
) -> None:
    """torch's own test shape: 7 iterations; iteration 2 has no backward (all grads
    None), layer 2 is frozen in iterations 3-4 and then unfrozen. Params and every
    state tensor match torch's after each iteration."""
    tolerance = TOLERANCE[dtype]
    inputs = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], dtype=getattr(torch, dtype)).reshape(3, 2)
    models = [_mlp(torch, getattr(torch, dtype)) for _ in range(2)]
    ours = getattr(ft, name)([*models[0][0].parameters(), models[0][1]], foreach=False, **kwargs)
    theirs = getattr(torch.optim, name)(
        [*models[1][0].parameters(), models[1][1]], foreach=False, **kwargs
    )
    assert_twins(ours, theirs, 0.0)  # Adagrad makes its state at construction
    for iteration in range(7):
        for (model, scale), optimizer in zip(models, (ours, theirs), strict=True):
            optimizer.zero_grad()
            if iteration == 3:
                model[2].requires_grad_(False)
            if iteration == 5:
                model[2].requires_grad_(True)
            if iteration != 2:
                (model(inputs) * scale).sum().backward()
            optimizer.step()
        assert_twins(ours, theirs, tolerance)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "kwargs"), _cases(TORCH_INPUTS))
def test_trajectory_200_steps(
    torch: ModuleType, ft: ModuleType, name: str, kwargs: dict[str, Any], dtype: str
) -> None:
    """200 steps of the same gradients: max|p - p_torch| / max|p_torch| within 1e-5
    (float32) or 1e-10 (float64), and so for every state tensor."""
    params = random_params(torch, dtype)
    initial = [p.detach().clone() for p in params]
    ours, theirs = make_pair(torch, ft, name, params, **kwargs)
    grads = gradient_stream(torch, params)
    for _ in range(200):
        step_both((ours, theirs), next(grads))
    for p, before in zip(params_of(theirs), initial, strict=True):
        assert not torch.equal(p.detach(), before), "torch did not move the param"
    assert_twins(ours, theirs, TOLERANCE[dtype])


def test_signatures_and_defaults_match_torch(torch: ModuleType, ft: ModuleType) -> None:
    """Same constructor arguments (names, kinds, defaults) and the same defaults dict;
    Adam and AdamW add the NumPy classes' format options, keyword-only, at the end."""

    def shape(cls: type) -> list[tuple[str, Any, Any]]:
        parameters = inspect.signature(cls.__init__).parameters.values()
        return [(p.name, p.kind, p.default) for p in parameters]

    numpy_classes = [getattr(fastadam, n) for n in fastadam.__all__]
    optimizers = [
        c for c in numpy_classes if isinstance(c, type) and issubclass(c, fastadam.Optimizer)
    ]
    assert set(ft.__all__) == {c.__name__ for c in optimizers}  # each has its drop-in
    for name in NAMES:
        ours, theirs = getattr(ft, name), getattr(torch.optim, name)
        extra = shape(ours)[len(shape(theirs)) :]
        assert shape(ours)[: len(shape(theirs))] == shape(theirs), name
        formats = [(k, inspect.Parameter.KEYWORD_ONLY, v) for k, v in FORMAT_DEFAULTS.items()]
        assert extra == (formats if name in FORMATS else []), name
        assert issubclass(ours, torch.optim.Optimizer)
        param = torch.zeros(2, requires_grad=True)
        assert ours([param]).defaults == theirs([param]).defaults, name


def test_default_dtype_float64_keeps_step_in_float64(torch: ModuleType, ft: ModuleType) -> None:
    """As torch.optim: the step count is float64 when the default dtype is float64."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        ours, theirs = make_pair(torch, ft, "Adam", random_params(torch, "float32"))
        step_both((ours, theirs), next(gradient_stream(torch, params_of(theirs))))
    finally:
        torch.set_default_dtype(previous)
    assert ours.state[params_of(ours)[0]]["step"].dtype == torch.float64
    assert_twins(ours, theirs, TOLERANCE["float32"])


# ------------------------------------------------------------------------ checkpoints


def _through_bytes(torch: ModuleType, state_dict: dict[str, Any]) -> dict[str, Any]:
    """A state dict saved with torch.save and read back with torch.load (weights_only)."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("direction", ["torch-to-fastadam", "fastadam-to-torch"])
@pytest.mark.parametrize("name", NAMES)
def test_switch_mid_training_through_a_checkpoint(
    torch: ModuleType, ft: ModuleType, name: str, direction: str, dtype: str
) -> None:
    """Train 10 steps with one library, save its state_dict to bytes, load it into the
    other library's optimizer over the same params, train 20 more: the result matches
    30 steps of torch.optim alone (reloading its own checkpoint at step 10), and the
    loaded state equals the saved one as torch.optim loads it."""
    first, second = (torch.optim, ft) if direction == "torch-to-fastadam" else (ft, torch.optim)
    kwargs = {**FULL_STATE[name], "foreach": False}
    params = random_params(torch, dtype)
    switched = [p.detach().clone().requires_grad_() for p in params]
    reference = getattr(torch.optim, name)(params, **kwargs)
    before = getattr(first, name)(switched, **kwargs)
    grads = gradient_stream(torch, params)
    for step in range(30):
        if step == 10:
            saved = _through_bytes(torch, before.state_dict())
            after = getattr(second, name)(switched, **kwargs)
            after.load_state_dict(saved)
            # As torch.optim loads it (which casts NAdam's mu_product to the params' dtype).
            clones = [p.detach().clone().requires_grad_() for p in switched]
            loaded = getattr(torch.optim, name)(clones, **kwargs)
            loaded.load_state_dict(_through_bytes(torch, before.state_dict()))
            assert_state_dicts_equal(torch, after.state_dict(), loaded.state_dict())
            reference.load_state_dict(_through_bytes(torch, reference.state_dict()))
        step_both((reference, before if step < 10 else after), next(grads))
    assert_twins(after, reference, TOLERANCE[dtype])


def assert_state_dicts_equal(
    torch: ModuleType, ours: dict[str, Any], theirs: dict[str, Any]
) -> None:
    """Equal param groups and state: same entries, tensors of the same dtype, shape, values."""
    assert ours["param_groups"] == theirs["param_groups"]
    assert ours["state"].keys() == theirs["state"].keys()
    for index, entry in theirs["state"].items():
        assert ours["state"][index].keys() == entry.keys()
        for key, value in entry.items():
            mine = ours["state"][index][key]
            assert (mine.dtype, mine.shape) == (value.dtype, value.shape), (index, key)
            assert torch.equal(mine, value), (index, key)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_state_dict_format(torch: ModuleType, ft: ModuleType, name: str) -> None:
    """The state of a stepped param, as torch.optim keeps it: a 0-d float32 "step"
    (none for SGD) and state tensors like the param; pickling and deepcopy work."""
    params = random_params(torch, "float64")[:3]
    optimizer = getattr(ft, name)(params, **FULL_STATE[name])
    params[1].grad = torch.ones_like(params[1])
    optimizer.step()
    state = optimizer.state_dict()["state"]
    expected = {
        "SGD": {"momentum_buffer"},
        "Adam": {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
        "AdamW": {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
        "RMSprop": {"step", "square_avg", "grad_avg", "momentum_buffer"},
        "Adagrad": {"step", "sum"},
        "Adamax": {"step", "exp_avg", "exp_inf"},
        "NAdam": {"step", "mu_product", "exp_avg", "exp_avg_sq"},
        "RAdam": {"step", "exp_avg", "exp_avg_sq"},
        "Rprop": {"step", "prev", "step_size"},
        "Lion": {"step", "exp_avg"},
    }[name]
    stepped = [1] if name != "Adagrad" else [0, 1, 2]  # Adagrad: every param, at construction
    assert sorted(state) == stepped
    assert set(state[1]) == expected
    for key, value in state[1].items():
        if key == "step":
            assert (value.dtype, value.shape, value.item()) == (torch.float32, (), 1.0)
        elif key == "mu_product":  # NAdam's, as torch keeps it: 0-d, the default dtype
            assert (value.dtype, value.shape) == (torch.float32, ())
        else:
            assert (value.dtype, value.shape) == (torch.float64, params[1].shape)
    for copied in (copy.deepcopy(optimizer), pickle.loads(pickle.dumps(optimizer))):
        assert type(copied) is type(optimizer)
        assert_state_dicts_equal(torch, copied.state_dict(), optimizer.state_dict())


def test_old_checkpoint_with_number_steps_and_missing_options(
    torch: ModuleType, ft: ModuleType
) -> None:
    """As torch.optim: a step saved as a number becomes a tensor; options a checkpoint
    lacks take the optimizer's defaults (AdamW always decouples its weight decay)."""
    params = random_params(torch, "float32")[:2]
    optimizer = ft.AdamW(params)
    params[0].grad = torch.ones_like(params[0])
    optimizer.step()
    saved = optimizer.state_dict()
    saved["state"][0]["step"] = 1
    del saved["param_groups"][0]["amsgrad"]
    saved["param_groups"][0]["decoupled_weight_decay"] = False
    optimizer.load_state_dict(saved)
    step = optimizer.state[params[0]]["step"]
    assert (step.dtype, step.shape, step.item()) == (torch.float32, (), 1.0)
    assert optimizer.param_groups[0]["amsgrad"] is False
    assert optimizer.param_groups[0]["decoupled_weight_decay"] is True
    optimizer.step()
    assert optimizer.state[params[0]]["step"].item() == 2.0


# -------------------------------------------------------------------------- rejections


def _rejection_cases(torch: ModuleType) -> dict[str, tuple[Callable[[], Any], type, str]]:
    """Per case: a param with its grad set, the error type and a message fragment."""

    def param(*shape: int, dtype: Any = torch.float32, grad: Any = None) -> Any:
        p = torch.randn(*shape, dtype=dtype).requires_grad_()
        p.grad = torch.randn_like(p) if grad is None else grad
        return p

    def with_grad(p: Any, grad: Any) -> Any:
        p.grad = grad
        return p

    def odd_grad(grad: Any) -> Any:
        p = torch.randn(3).requires_grad_()
        p.grad_dtype = None  # torch allows a grad of another dtype only so
        p.grad = grad
        return p

    def grad_resized() -> Any:
        p = param(3)
        p.grad.data = torch.zeros(4)
        return p

    def meta() -> Any:
        p = torch.empty(3, device="meta", requires_grad=True)
        p.grad = torch.empty(3, device="meta")
        return p

    where = "param 1 of group 0"
    return {
        "float16": (
            lambda: param(3, dtype=torch.float16),
            TypeError,
            f"{where} has dtype torch.float16",
        ),
        "bfloat16": (
            lambda: param(3, dtype=torch.bfloat16),
            TypeError,
            f"{where} has dtype torch.bfloat16",
        ),
        "complex": (
            lambda: param(3, dtype=torch.complex64),
            TypeError,
            f"{where} has dtype torch.complex64",
        ),
        "transposed": (
            lambda: with_grad(torch.randn(4, 3).t().requires_grad_(), torch.zeros(3, 4)),
            ValueError,
            f"{where} is not contiguous (shape (3, 4), stride (1, 3))",
        ),
        "strided": (
            lambda: with_grad(torch.randn(10)[::2].detach().requires_grad_(), torch.zeros(5)),
            ValueError,
            f"{where} is not contiguous (shape (5,), stride (2,))",
        ),
        "meta device": (meta, ValueError, f"{where} is on meta"),
        "sparse grad": (
            lambda: with_grad(torch.randn(3).requires_grad_(), torch.ones(3).to_sparse()),
            ValueError,
            f"the grad of {where} is torch.sparse_coo, not dense",
        ),
        "non-contiguous grad": (
            lambda: with_grad(torch.randn(3, 4).requires_grad_(), torch.zeros(4, 3).t()),
            ValueError,
            f"the grad of {where} is not contiguous",
        ),
        "float64 grad": (
            lambda: odd_grad(torch.zeros(3, dtype=torch.float64)),
            TypeError,
            f"the grad of {where} has dtype torch.float64 but the param has torch.float32",
        ),
        "float16 grad": (
            lambda: odd_grad(torch.zeros(3, dtype=torch.float16)),
            TypeError,
            f"the grad of {where} has dtype torch.float16",
        ),
        "grad of another shape": (
            grad_resized,
            ValueError,
            f"the grad of {where} has shape (4,) but the param has shape (3,)",
        ),
    }


REJECTIONS = [
    "float16",
    "bfloat16",
    "complex",
    "transposed",
    "strided",
    "meta device",
    "sparse grad",
    "non-contiguous grad",
    "float64 grad",
    "float16 grad",
    "grad of another shape",
]


def _snapshot(torch: ModuleType, optimizer: Any) -> list[Any]:
    """Copies of every param, grad and state entry, to check that nothing changed."""
    taken: list[Any] = []
    for p in params_of(optimizer):
        taken.append(_copy(p.detach()))
        taken.append(None if p.grad is None else _copy(p.grad))
        state = optimizer.state.get(p)
        taken.append(None if state is None else {k: _copy(v) for k, v in state.items()})
    return taken


def _copy(value: Any) -> Any:
    """A copy of a dense CPU tensor, to compare later; "other" for meta and sparse ones."""
    if not hasattr(value, "device"):
        return value
    return value.clone() if value.device.type == "cpu" and not value.is_sparse else "other"


def _assert_unchanged(torch: ModuleType, before: list[Any], after: list[Any]) -> None:
    for old, new in zip(before, after, strict=True):
        if isinstance(old, dict):
            assert old.keys() == new.keys()
            for key in old:
                _assert_unchanged(torch, [old[key]], [new[key]])
        elif isinstance(old, torch.Tensor):
            assert torch.equal(old, new)
        else:
            assert old == new


@pytest.mark.parametrize(
    ("name", "case"),
    [(n, c) for n in ALL_NAMES for c in REJECTIONS if not (c == "bfloat16" and n in FORMATS)],
)
def test_rejects_what_it_cannot_update_and_changes_nothing(
    torch: ModuleType, ft: ModuleType, name: str, case: str
) -> None:
    """A param, grad or state fastadam cannot update in place raises an error naming
    it, before anything is modified: params, grads, state and step counts stay as
    they were, and no state is created."""
    cases = _rejection_cases(torch)
    assert list(cases) == REJECTIONS
    make, error, message = cases[case]
    good = [torch.randn(50).requires_grad_() for _ in range(2)]
    for p in good:
        p.grad = torch.randn_like(p)
    groups = [{"params": [good[0], make()]}, {"params": [good[1]]}]
    optimizer = getattr(ft, name)(groups, **FULL_STATE[name])
    before = _snapshot(torch, optimizer)
    with pytest.raises(error, match=re.escape(message)):
        optimizer.step()
    _assert_unchanged(torch, before, _snapshot(torch, optimizer))
    if name != "Adagrad":  # Adagrad's state is made at construction, as torch's
        assert len(optimizer.state) == 0


@pytest.mark.parametrize("name", ALL_NAMES)
def test_rejects_state_of_another_dtype_and_changes_nothing(
    torch: ModuleType, ft: ModuleType, name: str
) -> None:
    params = random_params(torch, "float32")[2:]
    optimizer = getattr(ft, name)(params, **FULL_STATE[name])
    for p in params:
        p.grad = torch.randn_like(p)
    optimizer.step()
    state = optimizer.state[params[1]]
    slot = next(k for k in state if k != "step")
    state[slot] = state[slot].double()
    before = _snapshot(torch, optimizer)
    with pytest.raises(TypeError, match=f'state "{slot}" of param 1 of group 0 has dtype'):
        optimizer.step()
    _assert_unchanged(torch, before, _snapshot(torch, optimizer))


def test_rejects_a_step_count_that_is_not_a_tensor(torch: ModuleType, ft: ModuleType) -> None:
    params = random_params(torch, "float32")[2:4]
    optimizer = ft.Adam(params)
    for p in params:
        p.grad = torch.ones_like(p)
    optimizer.step()
    optimizer.state[params[1]]["step"] = 1
    before = _snapshot(torch, optimizer)
    with pytest.raises(TypeError, match='state "step" of param 1 of group 0 must be a tensor'):
        optimizer.step()
    _assert_unchanged(torch, before, _snapshot(torch, optimizer))


def test_rejects_overlapping_params(torch: ModuleType, ft: ModuleType) -> None:
    base = torch.zeros(10)
    params = [base[:6].requires_grad_(), base[4:].requires_grad_()]
    for p in params:
        p.grad = torch.ones_like(p)
    optimizer = ft.SGD(params, lr=0.1)
    with pytest.raises(ValueError, match=r"overlaps .* numbered across all param groups"):
        optimizer.step()
    assert torch.equal(base, torch.zeros(10))


@pytest.mark.parametrize("option", ["capturable", "differentiable"])
@pytest.mark.parametrize("name", NAMES)
def test_unsupported_options_are_rejected(
    torch: ModuleType, ft: ModuleType, name: str, option: str
) -> None:
    """capturable=True and differentiable=True raise, from the constructor, from
    add_param_group, and from a step after loading a checkpoint that asks for them."""
    if option not in inspect.signature(getattr(torch.optim, name)).parameters:
        assert option not in inspect.signature(getattr(ft, name)).parameters
        return
    message = f"fastadam.torch.{name} does not support {option}=True"
    p, q = random_params(torch, "float32")[2:4]
    with pytest.raises(ValueError, match=message):
        getattr(ft, name)([p], **{option: True})
    optimizer = getattr(ft, name)([p])
    with pytest.raises(ValueError, match=message):
        optimizer.add_param_group({"params": [q], option: True})
    saved = optimizer.state_dict()
    saved["param_groups"][0][option] = True
    optimizer.load_state_dict(saved)
    p.grad = torch.ones_like(p)
    before = p.detach().clone()
    with pytest.raises(ValueError, match=message):
        optimizer.step()
    assert torch.equal(p.detach(), before)


@pytest.mark.parametrize("name", NAMES)
def test_hyperparameter_errors_match_torch(torch: ModuleType, ft: ModuleType, name: str) -> None:
    """An invalid lr raises torch's ValueError and message, also for a later group."""
    p = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match=r"Invalid learning rate: -1\.0") as theirs:
        getattr(torch.optim, name)([p], lr=-1.0)
    with pytest.raises(ValueError, match=r"Invalid learning rate: -1\.0") as ours:
        getattr(ft, name)([p], lr=-1.0)
    assert str(ours.value) == str(theirs.value)
    optimizer = getattr(ft, name)([p])
    with pytest.raises(ValueError, match=r"Invalid learning rate: -1\.0"):
        optimizer.add_param_group({"params": [torch.zeros(2, requires_grad=True)], "lr": -1.0})
    assert len(optimizer.param_groups) == 1


@pytest.mark.parametrize("options", [{"foreach": True}, {"fused": True}, {"foreach": None}])
def test_foreach_and_fused_are_accepted_and_kept(
    torch: ModuleType, ft: ModuleType, options: dict[str, Any]
) -> None:
    """foreach and fused change nothing in fastadam (its step is always fused), but are
    kept in the param groups, so a checkpoint round-trips."""
    params = random_params(torch, "float32")
    plain = ft.Adam(params)
    flagged = ft.Adam([p.detach().clone().requires_grad_() for p in params], **options)
    grads = gradient_stream(torch, params)
    for _ in range(5):
        step_both((plain, flagged), next(grads))
    for p, q in zip(params_of(plain), params_of(flagged), strict=True):
        assert torch.equal(p, q)
    assert all(flagged.param_groups[0][k] == v for k, v in options.items())


# --------------------------------------------------------------- fitting torch's engines


@pytest.mark.parametrize(
    "schedule",
    ["StepLR", "LambdaLR", "OneCycleLR-Adam", "OneCycleLR-SGD", "CosineAnnealingWarmRestarts"],
)
def test_lr_schedulers_drive_it_as_torch_optim(
    torch: ModuleType, ft: ModuleType, schedule: str
) -> None:
    """torch's schedulers, unchanged, over two param groups: same lr (and, with
    OneCycleLR, the same cycled betas or momentum) and params at every step."""
    steps = 40
    name, kwargs = ("SGD", {"momentum": 0.9}) if schedule == "OneCycleLR-SGD" else ("Adam", {})
    factories: dict[str, Callable[[Any], Any]] = {
        "StepLR": lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=7, gamma=0.5),
        "LambdaLR": lambda o: torch.optim.lr_scheduler.LambdaLR(
            o, [lambda s: 0.95**s, lambda s: 1.0 / (1 + s)]
        ),
        "OneCycleLR-Adam": lambda o: torch.optim.lr_scheduler.OneCycleLR(
            o, max_lr=[0.05, 0.01], total_steps=steps
        ),
        "OneCycleLR-SGD": lambda o: torch.optim.lr_scheduler.OneCycleLR(
            o, max_lr=[0.05, 0.01], total_steps=steps
        ),
        "CosineAnnealingWarmRestarts": lambda o: (
            torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=10)
        ),
    }
    params = random_params(torch, "float64")
    twins = [params, [p.detach().clone().requires_grad_() for p in params]]
    optimizers = [
        getattr(library, name)(
            [{"params": ps[:2], "lr": 0.02}, {"params": ps[2:]}], lr=0.01, foreach=False, **kwargs
        )
        for library, ps in zip((torch.optim, ft), twins, strict=True)
    ]
    schedulers = [factories[schedule](o) for o in optimizers]
    grads = gradient_stream(torch, params)
    for _ in range(steps):
        step_both(optimizers, next(grads))
        for scheduler in schedulers:
            scheduler.step()
        theirs, ours = optimizers
        assert ours.param_groups[0]["lr"] == theirs.param_groups[0]["lr"]
        assert_twins(ours, theirs, TOLERANCE["float64"])
    assert schedulers[1].get_last_lr() == schedulers[0].get_last_lr()


def test_fits_the_optimizer_protocol(torch: ModuleType, ft: ModuleType) -> None:
    """Inherited machinery works: step hooks, closure, zero_grad, empty groups,
    add_param_group, and autograd sees the in-place update (version counters)."""
    p, q = random_params(torch, "float32")[2:4]
    optimizer = ft.Adam([{"params": []}, {"params": [p]}], lr=0.1)
    calls: list[str] = []
    optimizer.register_step_pre_hook(lambda *_: calls.append("pre"))
    optimizer.register_step_post_hook(lambda *_: calls.append("post"))

    def closure() -> Any:
        optimizer.zero_grad()
        loss = p.square().sum()
        loss.backward()
        return loss

    version = p._version
    loss = optimizer.step(closure)
    assert calls == ["pre", "post"]
    assert loss.item() > 0
    assert p._version > version
    optimizer.add_param_group({"params": [q], "lr": 0.5})
    q.grad = torch.ones_like(q)
    before = q.detach().clone()
    optimizer.step()
    assert torch.allclose(q.detach(), before - 0.5, atol=1e-6)  # first step: lr * sign(grad)
    optimizer.zero_grad(set_to_none=False)
    assert torch.count_nonzero(q.grad) == 0
    optimizer.zero_grad()
    assert (p.grad, q.grad) == (None, None)
    saved = (p * p).sum()  # autograd saves p; an update in place invalidates the graph
    p.grad = torch.ones_like(p)
    optimizer.step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        saved.backward()


def test_step_wrapper_runs_hooks_and_profiler_records(torch: ModuleType, ft: ModuleType) -> None:
    """The step skips torch's wrapper only while nothing would see it: hooks registered
    for every optimizer run, and a running profiler records the step by torch's name."""
    from torch.optim.optimizer import (
        register_optimizer_step_post_hook,
        register_optimizer_step_pre_hook,
    )

    p = random_params(torch, "float32")[0]
    optimizer = ft.AdamW([p], lr=0.1)
    calls: list[str] = []
    handles = [
        register_optimizer_step_pre_hook(lambda *_: calls.append("pre")),
        register_optimizer_step_post_hook(lambda *_: calls.append("post")),
    ]
    try:
        p.grad = torch.ones_like(p)
        optimizer.step()
    finally:
        for handle in handles:
            handle.remove()
    assert calls == ["pre", "post"]
    before = p.detach().clone()
    optimizer.step()  # nothing watches: the direct call, the same update
    assert calls == ["pre", "post"]
    assert not torch.equal(p.detach(), before)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        optimizer.step()
    names = {event.name for event in profile.events()}
    assert "Optimizer.step#AdamW.step" in names


def test_never_caches_memory_across_steps(torch: ModuleType, ft: ModuleType) -> None:
    """param.data re-pointed between steps (as ZeroRedundancyOptimizer's bucket views
    do): the step updates the new memory, in step with torch.optim."""
    params = random_params(torch, "float32")
    ours, theirs = make_pair(torch, ft, "Adam", params, weight_decay=0.1)
    grads = gradient_stream(torch, params)
    for step in range(6):
        if step % 2:
            for p in params_of(ours) + params_of(theirs):
                p.data = p.data.clone()
        step_both((ours, theirs), next(grads))
        assert_twins(ours, theirs, TOLERANCE["float32"])


def test_tensor_hyperparameters(torch: ModuleType, ft: ModuleType) -> None:
    """A 1-element tensor lr (which torch accepts) is read at each step."""
    params = random_params(torch, "float64")
    lr = torch.tensor(0.01, dtype=torch.float64)
    theirs = torch.optim.Adam(params, lr=lr.clone(), foreach=False)
    ours = ft.Adam([p.detach().clone().requires_grad_() for p in params], lr=lr.clone())
    grads = gradient_stream(torch, params)
    for step in range(20):
        step_both((ours, theirs), next(grads))
        if step == 10:
            for optimizer in (ours, theirs):
                optimizer.param_groups[0]["lr"].fill_(0.002)
    for p, q in zip(params_of(ours), params_of(theirs), strict=True):
        assert rel_error(p, q) <= 1e-10
    with pytest.raises(ValueError, match="Tensor lr must be 1-element"):
        ft.Adam(params, lr=torch.tensor([0.1, 0.2]))


def test_zero_redundancy_optimizer_on_two_gloo_processes(
    torch: ModuleType, ft: ModuleType, tmp_path: Path
) -> None:
    """ZeroRedundancyOptimizer(optimizer_class=fastadam.torch.Adam,
    parameters_as_bucket_view=True) on 2 local gloo processes, each averaging its
    half-batch gradients, matches single-process torch.optim.Adam training."""
    import torch_zero_worker as worker

    output = tmp_path / "rank0.pt"
    run_ranks(worker.__file__, 2, output)
    result = torch.load(output, weights_only=True)
    assert all(result["moved"]), "ZeroRedundancyOptimizer did not re-point param.data"
    # Both ranks hold some of group 0; group 1 has one param, so one rank's is empty.
    assert [sum(sizes) for sizes in zip(*result["group_sizes"], strict=True)] == [4, 1]
    assert all(sizes[0] > 0 for sizes in result["group_sizes"])

    params, groups, model = worker.build()
    reference = torch.optim.Adam(groups, **worker.HYPER)
    for _ in range(worker.STEPS):
        reference.zero_grad()
        worker.loss(model, params[-1], worker.batch()).backward()
        reference.step()
    for index, (p, q) in enumerate(zip(result["params"], params, strict=True)):
        assert rel_error(p, q) <= 1e-10, f"param {index}"
    state = result["state_dict"]["state"]
    expected = reference.state_dict()["state"]
    assert state.keys() == expected.keys()
    for index, entry in expected.items():
        assert state[index].keys() == entry.keys()
        assert state[index]["step"].dtype == torch.float32
        for key, value in entry.items():
            assert rel_error(state[index][key], value) <= 1e-10, (index, key)


# ----------------------------------------------------------------------------- Lion


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lion_matches_numpy_lion_bitwise(torch: ModuleType, ft: ModuleType, dtype: Any) -> None:
    """fastadam.torch.Lion and fastadam.Lion on the same data: the same bits in
    params and exp_avg, the same step counts, over two groups and a missing grad."""
    rng = np.random.default_rng(0)
    arrays = [np.array(rng.standard_normal(s), dtype=dtype) for s in [(), (7, 13), (3, 4, 25)]]
    tensors = [torch.from_numpy(a.copy()).requires_grad_() for a in arrays]
    settings = [{"lr": 0.01, "weight_decay": 0.1}, {"lr": 0.003, "maximize": True}]
    numpy_lion = fastadam.Lion(
        [{"params": arrays[:1], **settings[0]}, {"params": arrays[1:], **settings[1]}],
        betas=(0.8, 0.95),
    )
    torch_lion = ft.Lion(
        [{"params": tensors[:1], **settings[0]}, {"params": tensors[1:], **settings[1]}],
        betas=(0.8, 0.95),
    )
    for step in range(30):
        grads: list[Any] = [np.array(rng.standard_normal(a.shape), dtype=dtype) for a in arrays]
        if step % 4 == 1:
            grads[1] = None
        numpy_lion.step(grads)
        for t, g in zip(tensors, grads, strict=True):
            t.grad = None if g is None else torch.from_numpy(g)
        torch_lion.step()
    for index, (array, tensor) in enumerate(zip(arrays, tensors, strict=True)):
        np.testing.assert_array_equal(tensor.detach().numpy(), array)
        ours, theirs = torch_lion.state[tensor], numpy_lion.state[index]
        assert set(ours) == {"step", "exp_avg"}
        assert (ours["step"].dtype, ours["step"].shape) == (torch.float32, ())
        assert ours["step"].item() == theirs["step"]
        assert ours["exp_avg"].dtype == tensor.dtype
        np.testing.assert_array_equal(ours["exp_avg"].numpy(), theirs["exp_avg"])
    assert torch_lion.state_dict()["param_groups"][1] == {
        "lr": 0.003,
        "betas": (0.8, 0.95),
        "weight_decay": 0.0,
        "maximize": True,
        "params": [1, 2],
    }


# ------------------------------------------------------------- packaging and the example


def test_without_torch_import_fastadam_torch_says_how_to_install(tmp_path: Path) -> None:
    """No torch fixture: this runs everywhere, with torch hidden by a stub that fails."""
    hidden = tmp_path / "torch"
    hidden.mkdir()
    (hidden / "__init__.py").write_text('raise ImportError("torch hidden by the test")\n')
    code = (
        "import fastadam, sys\n"
        "assert 'torch' not in sys.modules\n"
        "try:\n"
        "    import fastadam.torch\n"
        "except ImportError as error:\n"
        "    print(error)\n"
        "else:\n"
        "    raise SystemExit('imported without torch')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'pip install "fastadam[torch]"' in result.stdout


def test_example_train_mlp_prints_equal_losses(torch: ModuleType) -> None:
    script = REPO / "examples" / "train_mlp.py"
    flags = ["--steps", "25", "--hidden", "32", "--batch", "16", "--print-every", "5"]
    result = subprocess.run(
        [sys.executable, str(script), *flags],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    table = [row for row in rows if len(row) == 3 and row[0].isdigit()]
    assert [int(r[0]) for r in table] == [1, 5, 10, 15, 20, 25]
    for _, theirs, ours in table:
        assert float(ours) == pytest.approx(float(theirs), rel=1e-5)
    assert "torch.optim.Adam step time:" in result.stdout
    assert "fastadam.torch.Adam step time:" in result.stdout
    difference = next(line for line in result.stdout.splitlines() if "max relative loss" in line)
    assert float(difference.split()[-1]) <= 1e-5


# ------------------------------------------------------------- torch.optim's details


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("betas", [(0.9, "tensor"), ("tensor", 0.999), (0, 0.999)], ids=str)
def test_mixed_betas_raise_torch_error(
    torch: ModuleType, ft: ModuleType, name: str, betas: tuple[Any, Any]
) -> None:
    """Betas of a float and a tensor (or an int) raise torch.optim's ValueError, after the
    value checks, exactly where torch.optim's constructor raises it."""
    betas = tuple(torch.tensor(0.95) if b == "tensor" else b for b in betas)
    param = torch.nn.Parameter(torch.zeros(3))
    errors = []
    for module in (torch.optim, ft):
        with pytest.raises((TypeError, ValueError)) as caught:
            getattr(module, name)([param], betas=betas)
        errors.append((type(caught.value), str(caught.value)))
    assert errors[0] == errors[1]
    if betas[1] == 0.999 and betas[0] == 0:
        assert errors[1] == (ValueError, "betas must be either both floats or both Tensors")


@pytest.mark.parametrize("name", ALL_NAMES)
@pytest.mark.parametrize(
    ("param_dtype", "saved_dtype"), [("float32", "float64"), ("float64", "float32")]
)
def test_load_state_dict_casts_floating_state(
    torch: ModuleType, ft: ModuleType, name: str, param_dtype: str, saved_dtype: str
) -> None:
    """As torch.optim's load_state_dict: floating state of another dtype than the param
    (and of no storage format) is cast to the param's dtype, the step count is not, and
    training continues as torch.optim's does from the same checkpoint."""
    dtype = getattr(torch, param_dtype)
    torch.manual_seed(0)
    start = torch.randn(64, dtype=dtype)
    grads = [torch.randn(64, dtype=dtype) for _ in range(4)]
    twin = getattr(torch.optim, name, None) if name != "Lion" else None
    reference_cls = twin or getattr(ft, name)
    params = [torch.nn.Parameter(start.clone()) for _ in range(2)]
    hp = FULL_STATE[name]
    source = reference_cls([params[0]], **hp)
    params[0].grad = grads[0]
    source.step()
    saved = source.state_dict()
    for entry in saved["state"].values():
        for key, value in entry.items():
            if key != "step" and torch.is_tensor(value) and value.is_floating_point():
                entry[key] = value.to(getattr(torch, saved_dtype))
    ours = getattr(ft, name)([params[1]], **hp)
    ours.load_state_dict(copy.deepcopy(saved))
    for key, value in ours.state[params[1]].items():
        if key != "step" and torch.is_tensor(value):
            assert value.dtype == dtype, key
    step_dtype = saved["state"][0].get("step")
    if step_dtype is not None:
        assert ours.state[params[1]]["step"].dtype == step_dtype.dtype
    params[1].data.copy_(params[0].data)
    reference = reference_cls([params[0]], **hp)
    reference.load_state_dict(copy.deepcopy(saved))
    for grad in grads[1:]:
        for param, opt in ((params[0], reference), (params[1], ours)):
            param.grad = grad.clone()
            opt.step()
    np.testing.assert_allclose(
        params[1].detach().numpy(), params[0].detach().numpy(), rtol=TOLERANCE[param_dtype]
    )
