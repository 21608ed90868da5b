"""fastadam against torch.optim, side by side, on identical params and gradients.

For each optimizer torch has (Lion is not in torch; it is tested against a NumPy
twin elsewhere), every hyperparameter set of torch's own test suite
(``optim_inputs_func_*`` in ``torch/testing/_internal/common_optimizers.py``,
restricted to CPU, float lr, non-capturable, real dtypes) runs 100 steps of the
same seeded gradients through both libraries. Params and every state buffer
must then agree to a relative max-norm error of 1e-10 (float64) or 1e-5
(float32). torch's reference is its for-loop implementation (``foreach=False``);
Adam and AdamW are also checked against ``fused=True``.

Everything here needs torch (the ``torch`` fixture of conftest.py: a skip
without torch, a failure with FASTADAM_REQUIRE_TORCH=1), except the check that
``import fastadam`` does not import torch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import fastadam

STEPS = 100
# A 0-d and a 1-element param, odd sizes (vector body + scalar tail) and a larger one.
SHAPES: tuple[tuple[int, ...], ...] = ((), (1,), (7, 13), (3, 4, 25), (40, 50))
TOLERANCE = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}
DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]

# torch's optim_inputs_func_<name>(device="cpu") with float lr, in torch's order.
TORCH_INPUTS: dict[str, list[dict[str, Any]]] = {
    "SGD": [
        {},
        {"lr": 1e-2},
        {"weight_decay": 0.5},
        {"momentum": 0.9},
        {"weight_decay": 0.1, "maximize": True},
        {"momentum": 0.9, "dampening": 0.5},
        {"momentum": 0.9, "weight_decay": 0.1},
        {"momentum": 0.9, "nesterov": True, "weight_decay": 0.1},
    ],
    "Adam": [
        {},
        {"lr": 0.01},
        {"weight_decay": 0.1},
        {"weight_decay": 0.1, "maximize": True},
        {"weight_decay": 0.1, "amsgrad": True},
    ],
    "AdamW": [
        {},
        {"lr": 0.01},
        {"weight_decay": 0.1},
        {"weight_decay": 0.1, "maximize": True},
        {"weight_decay": 0.1, "amsgrad": True},
    ],
    "RMSprop": [
        {},
        {"lr": 1e-3},
        {"weight_decay": 0.1},
        {"maximize": True},
        {"weight_decay": 0.1, "centered": True},
        {"maximize": True, "weight_decay": 0.1},
        {"weight_decay": 0.1, "centered": True, "momentum": 0.1},
        {"weight_decay": 0.1, "centered": True, "momentum": 0.1, "maximize": True},
    ],
    "Adagrad": [
        {},
        {"weight_decay": 0.1},
        {"weight_decay": 0.1, "maximize": True},
        {"lr": 0.1},
        {"initial_accumulator_value": 0.1, "weight_decay": 0.1},
        {"lr": 0.1, "lr_decay": 0.5, "weight_decay": 0.1},
    ],
    "Adamax": [
        {},
        {"lr": 0.1},
        {"weight_decay": 0.1},
        {"maximize": True},
        {"weight_decay": 0.1, "maximize": True},
    ],
    "NAdam": [
        {},
        {"lr": 1e-3},
        {"momentum_decay": 6e-3},
        {"weight_decay": 0.1},
        {"weight_decay": 0.1, "momentum_decay": 6e-3},
        {"weight_decay": 0.1, "momentum_decay": 6e-3, "decoupled_weight_decay": True},
        {"weight_decay": 0.1, "maximize": True},
    ],
    "Rprop": [
        {},
        {"lr": 0.05},
        {"etas": (0.3, 1.7)},
        {"step_sizes": (1e-4, 0.02)},
        {"etas": (0.4, 1.1), "step_sizes": (1e-3, 0.1), "maximize": True},
    ],
    "RAdam": [
        {},
        {"lr": 2e-3},
        {"eps": 1e-6},
        {"weight_decay": 0.1},
        {"weight_decay": 0.1, "decoupled_weight_decay": True},
        {"weight_decay": 0.1, "maximize": True},
    ],
}

# A few combinations torch's list leaves out, for options fastadam implements.
EXTRA_INPUTS: dict[str, list[dict[str, Any]]] = {
    "SGD": [{"momentum": 0.5, "nesterov": True, "maximize": True}],
    "Adam": [
        {"decoupled_weight_decay": True, "weight_decay": 0.1},
        {"amsgrad": True, "maximize": True, "betas": (0.5, 0.9), "eps": 1e-6},
    ],
    "AdamW": [{"amsgrad": True, "maximize": True, "lr": 0.01}],
    "RMSprop": [{"centered": True}, {"momentum": 0.9, "alpha": 0.9}],
    "Adagrad": [{"lr_decay": 0.01, "eps": 1e-6, "maximize": True}],
    "Adamax": [{"betas": (0.6, 0.9), "eps": 1e-3, "lr": 0.01}],
}

FUSED_INPUTS: list[tuple[str, dict[str, Any]]] = [
    ("Adam", {}),
    ("Adam", {"weight_decay": 0.1, "amsgrad": True}),
    ("Adam", {"weight_decay": 0.1, "maximize": True}),
    ("AdamW", {}),
    ("AdamW", {"weight_decay": 0.1, "amsgrad": True}),
]


def _describe(kwargs: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in kwargs.items()) or "default"


def _cases(inputs: dict[str, list[dict[str, Any]]]) -> list[Any]:
    return [
        pytest.param(name, kwargs, id=f"{name}-{_describe(kwargs)}")
        for name, configs in inputs.items()
        for kwargs in configs
    ]


# ---------------------------------------------------------------------------- harness


def _rel_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    """max|ours - theirs| / max|theirs| (the absolute error if theirs is all zero)."""
    scale = float(np.max(np.abs(theirs), initial=0.0))
    error = float(np.max(np.abs(ours.astype(np.float64) - theirs), initial=0.0))
    return error / scale if scale > 0 else error


@dataclass
class Pair:
    """The same params in a fastadam optimizer and a torch one."""

    torch: ModuleType
    ours: fastadam.Optimizer
    theirs: Any
    arrays: list[np.ndarray]
    tensors: list[Any]
    initial: list[np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        self.initial = [a.copy() for a in self.arrays]

    def step(self, grads: Sequence[np.ndarray | None]) -> None:
        for tensor, grad in zip(self.tensors, grads, strict=True):
            tensor.grad = None if grad is None else self.torch.from_numpy(grad.copy())
        self.theirs.step()
        self.ours.step(list(grads))

    def set_lr(self, group: int, lr: float) -> None:
        self.ours.param_groups[group]["lr"] = lr
        self.theirs.param_groups[group]["lr"] = lr

    def assert_parity(self, tolerance: float) -> None:
        """Params, state buffers, step counts and hyperparameters agree with torch."""
        for index, (array, tensor) in enumerate(zip(self.arrays, self.tensors, strict=True)):
            expected = tensor.detach().numpy()
            assert array.dtype == expected.dtype
            assert array.shape == expected.shape
            error = _rel_error(array, expected)
            assert error <= tolerance, f"param {index} {array.shape}: relative error {error:.3g}"
            self._assert_state(index, tensor, tolerance)
        for number, (mine, theirs) in enumerate(
            zip(self.ours.param_groups, self.theirs.param_groups, strict=True)
        ):
            for key, value in mine.items():
                if key != "params":
                    assert theirs[key] == value, f"param_groups[{number}][{key!r}]"

    def _assert_state(self, index: int, tensor: Any, tolerance: float) -> None:
        mine = self.ours.state.get(index)
        theirs = self.theirs.state.get(tensor, {})
        if mine is None:
            # Never stepped: torch keeps no state either, or (Adagrad) a step-0 one.
            assert int(theirs.get("step", 0)) == 0
            return
        buffers = {k for k, v in mine.items() if isinstance(v, np.ndarray)}
        scalars = {k for k, v in mine.items() if k != "step" and not isinstance(v, np.ndarray)}
        torch_buffers = {k for k, v in theirs.items() if k != "step" and v is not None}
        assert buffers | scalars == torch_buffers, f"param {index}: state entries differ"
        if "step" in theirs:
            assert mine["step"] == int(theirs["step"]), f"param {index}: step count"
        for key in scalars:  # NAdam's mu_product: a 0-d tensor of torch's default dtype
            expected = float(theirs[key])
            assert mine[key] == pytest.approx(expected, rel=tolerance), f"param {index} {key}"
        for key in sorted(buffers):
            expected = theirs[key].detach().numpy()
            assert mine[key].dtype == expected.dtype
            assert mine[key].shape == expected.shape
            error = _rel_error(mine[key], expected)
            assert error <= tolerance, f"param {index} state {key!r}: relative error {error:.3g}"

    def assert_moved(self, index: int) -> None:
        """Guard against vacuous parity: torch really changed this param."""
        assert not np.array_equal(self.tensors[index].detach().numpy(), self.initial[index])


def make_pair(
    torch: ModuleType,
    name: str,
    dtype: Any,
    kwargs: dict[str, Any],
    *,
    groups: Sequence[tuple[int, dict[str, Any]]] | None = None,
    torch_options: dict[str, Any] | None = None,
    seed: int = 0,
) -> Pair:
    """Params of SHAPES (random, seeded) in both libraries; ``groups`` splits them
    into consecutive param groups of (count, group hyperparameters)."""
    rng = np.random.default_rng(seed)
    arrays = [np.array(rng.standard_normal(shape), dtype=dtype) for shape in SHAPES]
    tensors = [torch.from_numpy(a.copy()).requires_grad_() for a in arrays]
    options = {"foreach": False} if torch_options is None else torch_options
    if groups is None:
        ours_params: list[Any] = arrays
        their_params: list[Any] = tensors
    else:
        assert sum(count for count, _ in groups) == len(SHAPES)
        ours_params, their_params, first = [], [], 0
        for count, hyper in groups:
            ours_params.append({"params": arrays[first : first + count], **hyper})
            their_params.append({"params": tensors[first : first + count], **hyper})
            first += count
    ours = getattr(fastadam, name)(ours_params, **kwargs)
    theirs = getattr(torch.optim, name)(their_params, **kwargs, **options)
    return Pair(torch, ours, theirs, arrays, tensors)


class Gradients:
    """A seeded stream of gradients: a fixed drift per element plus unit noise."""

    def __init__(self, arrays: Sequence[np.ndarray], seed: int = 1) -> None:
        self.rng = np.random.default_rng(seed)
        self.dtypes = [a.dtype for a in arrays]
        self.drift = [self.rng.uniform(-1.0, 1.0, a.shape) for a in arrays]

    def __call__(self) -> list[np.ndarray]:
        return [
            np.array(d + self.rng.standard_normal(d.shape), dtype=dtype)
            for d, dtype in zip(self.drift, self.dtypes, strict=True)
        ]


def run(pair: Pair, mask: Callable[[int, int], bool] | None = None) -> None:
    """STEPS steps of the same gradients; ``mask(step, index)`` false drops a grad."""
    gradients = Gradients(pair.arrays)
    for step in range(1, STEPS + 1):
        grads: list[np.ndarray | None] = list(gradients())
        if mask is not None:
            grads = [g if mask(step, i) else None for i, g in enumerate(grads)]
        pair.step(grads)


# ------------------------------------------------------------------------------ tests

CONFTEST = Path(__file__).with_name("conftest.py")


@pytest.mark.parametrize(
    ("require", "returncode", "outcome"),
    [("", 0, "1 skipped"), ("0", 0, "1 skipped"), ("1", 1, "1 error")],
)
def test_missing_torch_skips_unless_required(
    tmp_path: Path, require: str, returncode: int, outcome: str
) -> None:
    """conftest's ``torch`` fixture with torch made unimportable: a skip, or with
    FASTADAM_REQUIRE_TORCH=1 an error that fails the run."""
    hidden = tmp_path / "hidden" / "torch"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text('raise ImportError("torch hidden by the test")\n')
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "pytest.ini").write_text("[pytest]\n")
    (suite / "conftest.py").write_text(CONFTEST.read_text())
    (suite / "test_needs_torch.py").write_text(
        "def test_needs_torch(torch):\n    raise AssertionError('ran without torch')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env["PYTHONPATH"] = str(tmp_path / "hidden")
    env["FASTADAM_REQUIRE_TORCH"] = require
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(suite)],
        cwd=suite,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == returncode, output
    assert outcome in output, output
    assert "torch hidden by the test" in output, output
    assert "ran without torch" not in output, output


def test_import_fastadam_does_not_import_torch() -> None:
    code = "import fastadam, sys; assert 'torch' not in sys.modules, 'fastadam imported torch'"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr


def test_registry_covers_torch_optimizers(torch: ModuleType) -> None:
    """Every fastadam optimizer torch has is in the registry, with its torch class."""
    names = {
        name
        for name in fastadam.__all__
        if isinstance(getattr(fastadam, name), type)
        and issubclass(getattr(fastadam, name), fastadam.Optimizer)
        and getattr(fastadam, name) is not fastadam.Optimizer
    }
    in_torch = {name for name in names if hasattr(torch.optim, name)}
    assert in_torch == set(TORCH_INPUTS)
    assert names - in_torch == {"Lion"}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "kwargs"), _cases(TORCH_INPUTS) + _cases(EXTRA_INPUTS))
def test_parity_with_torch_for_loop(
    torch: ModuleType, name: str, kwargs: dict[str, Any], dtype: Any
) -> None:
    default = torch.get_default_dtype()
    # torch keeps scalar state (NAdam's mu_product) in its default dtype: the params'.
    torch.set_default_dtype(torch.float64 if dtype == np.float64 else torch.float32)
    try:
        pair = make_pair(torch, name, dtype, kwargs)
        run(pair)
    finally:
        torch.set_default_dtype(default)
    for index in range(len(SHAPES)):
        pair.assert_moved(index)
    pair.assert_parity(TOLERANCE[np.dtype(dtype)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("name", "kwargs"),
    [pytest.param(n, k, id=f"{n}-{_describe(k)}") for n, k in FUSED_INPUTS],
)
def test_parity_with_torch_fused(
    torch: ModuleType, name: str, kwargs: dict[str, Any], dtype: Any
) -> None:
    pair = make_pair(torch, name, dtype, kwargs, torch_options={"fused": True})
    run(pair)
    pair.assert_moved(len(SHAPES) - 1)
    pair.assert_parity(TOLERANCE[np.dtype(dtype)])


# Per optimizer: defaults, then two groups (params 0-1 and 2-4) with their own settings.
GROUP_CASES: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {
    "SGD": (
        {"momentum": 0.9, "nesterov": True},
        [{"lr": 0.01}, {"lr": 0.002, "weight_decay": 0.1}],
    ),
    "Adam": ({"amsgrad": True}, [{"lr": 0.01}, {"lr": 0.001, "weight_decay": 0.1}]),
    "AdamW": ({}, [{"lr": 0.01}, {"lr": 0.001, "weight_decay": 0.1}]),
    "RMSprop": (
        {"centered": True, "momentum": 0.1},
        [{"lr": 0.01}, {"lr": 0.001, "weight_decay": 0.1}],
    ),
    # initial_accumulator_value only in the defaults: torch seeds every "sum" from the
    # constructor's argument and ignores a group's own value (fastadam uses the group's).
    "Adagrad": (
        {"lr_decay": 0.01, "initial_accumulator_value": 0.1},
        [{"lr": 0.1}, {"lr": 0.01, "weight_decay": 0.1}],
    ),
    "Adamax": ({}, [{"lr": 0.01}, {"lr": 0.002, "weight_decay": 0.1, "maximize": True}]),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(GROUP_CASES))
def test_parity_param_groups_and_lr_schedule(torch: ModuleType, name: str, dtype: Any) -> None:
    """Two groups with different lr; group 0 decays its lr every step (as
    ExponentialLR would), group 1 drops its lr tenfold at step 50 (as StepLR)."""
    defaults, (first, second) = GROUP_CASES[name]
    pair = make_pair(torch, name, dtype, defaults, groups=[(2, first), (3, second)])
    gradients = Gradients(pair.arrays)
    for step in range(1, STEPS + 1):
        pair.step(gradients())
        pair.set_lr(0, pair.theirs.param_groups[0]["lr"] * 0.97)
        if step == 50:
            pair.set_lr(1, pair.theirs.param_groups[1]["lr"] * 0.1)
    assert pair.ours.param_groups[1]["lr"] == pytest.approx(second["lr"] * 0.1)
    for index in range(len(SHAPES)):
        pair.assert_moved(index)
    pair.assert_parity(TOLERANCE[np.dtype(dtype)])


def _sparse_mask(step: int, index: int) -> bool:
    """Which params get a grad: param 0 only from step 10 on, param 1 not on every
    third step, param 2 never, param 3 not in steps 40-60, param 4 always; no param
    at step 77."""
    if step == 77:
        return False
    return {
        0: step >= 10,
        1: step % 3 != 0,
        2: False,
        3: not 40 <= step <= 60,
        4: True,
    }[index]


NONE_GRAD_CASES: dict[str, dict[str, Any]] = {
    "SGD": {"momentum": 0.9, "dampening": 0.5, "weight_decay": 0.1},
    "Adam": {"weight_decay": 0.1, "amsgrad": True},
    "AdamW": {"weight_decay": 0.1},
    "RMSprop": {"weight_decay": 0.1, "centered": True, "momentum": 0.1},
    "Adagrad": {"lr": 0.1, "lr_decay": 0.5, "initial_accumulator_value": 0.1},
    "Adamax": {"weight_decay": 0.1, "maximize": True},
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(NONE_GRAD_CASES))
def test_parity_with_none_grads(torch: ModuleType, name: str, dtype: Any) -> None:
    """A param whose grad is None is left alone and its step count does not advance."""
    pair = make_pair(torch, name, dtype, NONE_GRAD_CASES[name])
    run(pair, _sparse_mask)
    np.testing.assert_array_equal(pair.arrays[2], pair.initial[2])
    assert 2 not in pair.ours.state
    expected_steps = {i: sum(_sparse_mask(s, i) for s in range(1, STEPS + 1)) for i in (0, 1, 3, 4)}
    assert {i: pair.ours.state[i]["step"] for i in expected_steps} == expected_steps
    for index in expected_steps:
        pair.assert_moved(index)
    pair.assert_parity(TOLERANCE[np.dtype(dtype)])
