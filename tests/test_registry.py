"""The algorithm table, the test registry and both front ends agree.

Every record of fastadam._table has a row in tests/registry.py; each row's classes
(NumPy and fastadam.torch) read that record, take the table's defaults (and
torch.optim's, where torch has the optimizer), reject every bad hyperparameter
with the same error as torch.optim, step like the float64 twin, and give the
same bits as each other.
"""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import twin
from registry import ROWS, Row

from fastadam._table import ALGORITHMS

NAMES = list(ROWS)


@pytest.fixture
def ft(torch: ModuleType) -> ModuleType:
    return importlib.import_module("fastadam.torch")


def _defaults(cls: type) -> dict[str, Any]:
    """The defaults of a constructor's hyperparameters (params and format options aside)."""
    skip = {"self", "params", "state_dtype", "rounding", "block_size", "min_8bit_size"}
    skip |= {"master_weights", "seed", "formats"}
    return {
        name: p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name not in skip and p.default is not inspect.Parameter.empty
    }


def test_every_algorithm_has_a_row() -> None:
    assert set(ROWS) == set(ALGORITHMS), "a record of fastadam._table lacks a registry row"


@pytest.mark.parametrize("name", NAMES)
def test_row_reads_its_record(name: str) -> None:
    row, record = ROWS[name], ALGORITHMS[name]
    assert row.numpy.algorithm is record
    assert row.twin in twin.ALGORITHMS
    assert twin.SLOTS[row.twin] == record.slots
    assert _defaults(row.numpy) == dict(record.defaults)
    assert row.functional.__module__ == "fastadam.functional"


@pytest.mark.parametrize("name", NAMES)
def test_torch_class_reads_the_record(torch: ModuleType, ft: ModuleType, name: str) -> None:
    """fastadam.torch's class reads the record and has torch.optim's signature defaults."""
    row, record = ROWS[name], ALGORITHMS[name]
    cls = getattr(ft, name)
    assert cls.algorithm is record
    ours = _defaults(cls)
    for key, value in record.defaults.items():
        if key != "decoupled_weight_decay" or key in ours:
            assert ours[key] == value, key
    if row.torch is not None:
        theirs = _defaults(getattr(torch.optim, row.torch))
        assert ours == theirs


def _bad_cases() -> list[Any]:
    return [
        pytest.param(name, hp, error, message, id=f"{name}-{next(iter(hp))}={hp[next(iter(hp))]}")
        for name, row in ROWS.items()
        for hp, error, message in row.bad
    ]


@pytest.mark.parametrize(("name", "hp", "error", "message"), _bad_cases())
def test_bad_hyperparameter_raises_and_changes_nothing(
    name: str, hp: dict[str, Any], error: type[Exception], message: str
) -> None:
    """A bad value raises at construction, and as a group's value at the next step,
    changing nothing."""
    row = ROWS[name]
    param = np.linspace(-1, 1, 37, dtype=np.float32)
    with pytest.raises(error, match=message):
        row.numpy([param], **hp)
    opt = row.numpy([param], **row.full_state)
    grad = np.cos(param)
    opt.step([grad])
    before = param.copy(), {k: np.copy(v) for k, v in opt.state[0].items()}
    opt.param_groups[0].update(hp)
    with pytest.raises(error, match=message):
        opt.step([grad])
    np.testing.assert_array_equal(param, before[0])
    for key, value in opt.state[0].items():
        np.testing.assert_array_equal(value, before[1][key])


@pytest.mark.parametrize(("name", "hp", "error", "message"), _bad_cases())
def test_bad_hyperparameter_as_torch_says(
    torch: ModuleType,
    ft: ModuleType,
    name: str,
    hp: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    """fastadam.torch raises the row's error; torch.optim raises one of the same type,
    with the same message wherever torch checks the value itself."""
    row = ROWS[name]
    param = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(error, match=message):
        getattr(ft, name)([param], **hp)
    if row.torch is None or error is TypeError or any(v != v for v in hp.values()):
        return  # torch has no such class, no type checks of its own, or lets NaN through
    with pytest.raises((TypeError, ValueError)) as theirs:
        getattr(torch.optim, row.torch)([param], **hp)
    assert theirs.type is error


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_steps_match_the_twin(name: str, dtype: type) -> None:
    """Every hyperparameter case of the twin, 20 steps of the NumPy class against it."""
    row = ROWS[name]
    rng = np.random.default_rng(7)
    param0 = rng.standard_normal(67).astype(dtype)
    grads = [rng.standard_normal(67).astype(dtype) for _ in range(20)]
    for hp in twin.cases_of(row.twin):
        param = param0.copy()
        opt = row.numpy([param], **hp)
        for grad in grads:
            opt.step([grad])
        ref_param, ref_state = twin.trajectory(row.twin, hp, param0, grads)
        state = {k: v for k, v in opt.state[0].items() if k != "step"}
        twin.assert_matches(row.twin, np.dtype(dtype), param, state, ref_param, ref_state, str(hp))


@pytest.mark.parametrize("name", NAMES)
def test_front_ends_agree_bit_for_bit(torch: ModuleType, ft: ModuleType, name: str) -> None:
    """The NumPy class and fastadam.torch give the same bits, state included, under
    each of the row's parity options."""
    row: Row = ROWS[name]
    rng = np.random.default_rng(3)
    start = rng.standard_normal(5000).astype(np.float32)
    grads = [rng.standard_normal(5000).astype(np.float32) for _ in range(6)]
    for options in row.parity:
        ours = start.copy()
        numpy_opt = row.numpy([ours], **{**row.full_state, **options})
        tensor = torch.nn.Parameter(torch.from_numpy(start.copy()))
        torch_opt = getattr(ft, name)([tensor], **{**row.full_state, **options})
        for grad in grads:
            numpy_opt.step([grad])
            tensor.grad = torch.from_numpy(grad.copy())
            torch_opt.step()
        np.testing.assert_array_equal(tensor.detach().numpy(), ours, err_msg=str(options))
        for key, value in numpy_opt.state[0].items():
            theirs = torch_opt.state[tensor].get(key)
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(theirs.numpy(), value, err_msg=key)
            elif key != "step" and theirs is not None:
                assert float(theirs) == pytest.approx(value, rel=1e-6), key
