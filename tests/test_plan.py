"""The step planner's plans (fastadam._plan.Plans): kept between steps only while
nothing they depend on can have changed, and never at the price of a stale layout."""

from __future__ import annotations

import math

import numpy as np
import pytest

import fastadam
from fastadam import _plan
from fastadam._table import ALGORITHMS


def test_a_plan_is_kept_while_the_group_is_unchanged() -> None:
    plans = _plan.Plans(ALGORITHMS["Adam"])
    group = {"params": [], **ALGORITHMS["Adam"].defaults}
    first = plans.of(group)
    assert plans.of(group) is first
    assert first[1] == ("exp_avg", "exp_avg_sq", None)
    group["amsgrad"] = True  # a new value object: planned afresh
    assert plans.of(group)[1] == ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    group["extra"] = 1.0  # a new key
    assert plans.of(group) is not first


def test_a_value_that_can_change_in_place_is_read_at_every_step() -> None:
    """SGD's momentum as a 0-d array (read as a number, as fastadam.torch reads a
    tensor), changed in place between steps: the momentum buffer joins the plan."""
    momentum = np.array(0.0)
    plans = _plan.Plans(
        ALGORITHMS["SGD"], lambda group: {**group, "momentum": float(group["momentum"])}
    )
    group = {"params": [], **ALGORITHMS["SGD"].defaults, "lr": 0.1, "momentum": momentum}
    assert plans.of(group)[1] == (None,)
    momentum[...] = 0.9
    assert plans.of(group)[1] == ("momentum_buffer",)


def test_a_switch_changed_between_steps_changes_the_step() -> None:
    """amsgrad switched on after a step: the next step makes max_exp_avg_sq and uses it,
    as a fresh optimizer with amsgrad would from that point."""
    p = np.ones(4)
    optimizer = fastadam.Adam([p], lr=0.1)
    optimizer.step([np.ones(4)])
    optimizer.param_groups[0]["amsgrad"] = True
    optimizer.step([np.full(4, 2.0)])
    np.testing.assert_array_equal(
        optimizer.state[0]["max_exp_avg_sq"], optimizer.state[0]["exp_avg_sq"]
    )


def test_lists_and_tuples_of_numbers() -> None:
    """betas as a list is planned afresh at every step (it can change in place); as a
    tuple of numbers it is kept."""
    plans = _plan.Plans(ALGORITHMS["Adam"])
    listed = {"params": [], **ALGORITHMS["Adam"].defaults, "betas": [0.9, 0.999]}
    assert plans.of(listed) is not plans.of(listed)
    kept = {"params": [], **ALGORITHMS["Adam"].defaults}
    assert plans.of(kept) is plans.of(kept)


def test_the_reader_sees_each_unkept_group() -> None:
    """fastadam.torch's reader turns tensor hyperparameters into numbers: a group it
    changes is never kept."""
    seen: list[object] = []

    def read(group: dict) -> dict:
        seen.append(group)
        return {**group, "lr": float(group["lr"])}

    plans = _plan.Plans(ALGORITHMS["Adam"], read)
    group = {"params": [], **ALGORITHMS["Adam"].defaults, "lr": np.array(0.1)}
    hyper = plans.of(group)[0]
    plans.of(group)
    assert len(seen) == 2
    assert hyper["lr"] == pytest.approx(0.1)


STATELESS = sorted(name for name, a in ALGORITHMS.items() if not a.scalars)


@pytest.mark.parametrize("name", STATELESS)
def test_prepared_coefficients_are_the_checked_ones(name: str) -> None:
    """A group's coefficients prepared once (its hyperparameters checked once) give the
    bits of the one-shot coefficients at every step of state that is not fresh."""
    algorithm = ALGORITHMS[name]
    group = {"params": [], **algorithm.defaults}
    if "weight_decay" in group:
        group["weight_decay"] = 0.01
    if "momentum" in group:
        group["momentum"] = 0.9
    prepared = algorithm.prepared(group)
    scalars = algorithm.scalars
    for step in (1, 2, 7, 1000, 2**40):
        assert prepared(step) == algorithm.coefficients(group, step, False, scalars)
    changed = {"etas": (0.3, 1.7)} if name == "Rprop" else {"lr": 0.5}  # its lr: state's
    assert prepared(3) != algorithm.prepared({**group, **changed})(3)


def test_coefficients_that_depend_on_scalar_state_are_not_prepared() -> None:
    """NAdam's depend on each param's mu_product: the planner's step leaves it to the
    front end's general step, and preparing them for a whole group is an error."""
    nadam = ALGORITHMS["NAdam"]
    with pytest.raises(TypeError, match="scalar state"):
        nadam.prepared({"params": [], **nadam.defaults})


@pytest.mark.parametrize("name", STATELESS)
def test_preparing_a_bad_group_raises_the_checks_message(name: str) -> None:
    algorithm = ALGORITHMS[name]
    group = {"params": [], **algorithm.defaults, "lr": -1.0}
    with pytest.raises(ValueError, match=r"Invalid learning rate: -1\.0"):
        algorithm.prepared(group)(1)


def test_a_kept_plan_checks_its_group_once_and_a_new_value_afresh() -> None:
    """The planner prepares a kept group's coefficients once; a hyperparameter replaced
    between steps (an LR schedule, or a bad value) is read and checked at the next step."""
    params = [np.ones(8)]
    optimizer = fastadam.Adam(params, lr=0.1)
    twin = fastadam.Adam([np.ones(8)], lr=0.1)
    grads = [np.linspace(-1.0, 1.0, 8)]
    for lr in (0.1, 0.1, 0.05, 0.05, 0.2):
        optimizer.param_groups[0]["lr"] = lr
        optimizer.step(grads)
        twin.param_groups[0]["lr"] = float(lr)  # a new object every step: never kept
        twin.param_groups[0]["betas"] = [0.9, 0.999]  # a list: planned afresh every step
        twin.step(grads)
    np.testing.assert_array_equal(params[0], twin.param_groups[0]["params"][0])
    before = params[0].copy()
    optimizer.param_groups[0]["lr"] = -1.0
    with pytest.raises(ValueError, match=r"Invalid learning rate: -1\.0"):
        optimizer.step(grads)
    np.testing.assert_array_equal(params[0], before)
    assert optimizer.state[0]["step"] == 5


# Adam's hyperparameter checks have a fast path for the common case (exact floats and
# bools, compared in C doubles when compiled), and its step's arithmetic runs in C
# doubles: both must agree with the checks one by one and with Python's float arithmetic.
_EDGES = [
    0.0, -0.0, 5e-324, 1e-8, 0.5, math.nextafter(1.0, 0.0), 1.0, 2.0, 1e308,
    -5e-324, -1.0, math.inf, -math.inf, math.nan,
]  # fmt: skip


def _one_by_one(*args: object) -> object:
    from fastadam import _validate as check

    lr, beta1, beta2, eps, weight_decay, decoupled, maximize = args
    try:
        return (
            check.lr(lr),
            check.beta(0, beta1, "beta1"),
            check.beta(1, beta2, "beta2"),
            check.eps(eps),
            check.weight_decay(weight_decay),
            check.flag("decoupled_weight_decay", decoupled),
            check.flag("maximize", maximize),
        )
    except (TypeError, ValueError) as error:
        return type(error), str(error)


def _joined(*args: object) -> object:
    from fastadam import _algorithms

    try:
        return _algorithms.adam_hyperparameters(*args)
    except (TypeError, ValueError) as error:
        return type(error), str(error)


@pytest.mark.parametrize("position", range(5))
def test_adam_checks_fast_path_agrees_with_each_check(position: int) -> None:
    base: list[object] = [1e-3, 0.9, 0.999, 1e-8, 0.01, False, False]
    odd: list[object] = [*_EDGES, 1, np.float32(0.5), np.float64(0.5), True, None, "0.1"]
    for value in odd:
        args = list(base)
        args[position] = value
        expected, got = _one_by_one(*args), _joined(*args)
        assert repr(got) == repr(expected), (position, value)
        if isinstance(expected, tuple) and not isinstance(expected[0], type):
            assert all(type(a) is type(b) for a, b in zip(got, expected, strict=True))  # type: ignore[arg-type]
    for flag in range(5, 7):
        for value in (True, False, np.bool_(True), 1, None):
            args = list(base)
            args[flag] = value
            assert repr(_joined(*args)) == repr(_one_by_one(*args)), (flag, value)


@pytest.mark.parametrize("decoupled", [False, True])
@pytest.mark.parametrize("maximize", [False, True])
def test_adam_step_arithmetic_is_pythons(decoupled: bool, maximize: bool) -> None:
    from fastadam import _algorithms

    rng = np.random.default_rng(7)
    steps = [1, 2, 3, 10, 1000, 123_456_789, 2**53 + 1, 2**63, 2**64 - 1]
    for _ in range(200):
        lr, eps, wd = (float(x) for x in 10.0 ** rng.uniform(-9, 0, 3))
        b1, b2 = (float(x) for x in rng.uniform(0, 1, 2))
        for t in steps:
            got = _algorithms.adam_at((lr, b1, b2, eps, wd, decoupled, maximize), t)
            bias1, bias2 = 1.0 - b1**t, 1.0 - b2**t
            want = (
                b1, b2, eps, lr / bias1, math.sqrt(bias2),
                0.0 if decoupled else wd, 1 - lr * wd if decoupled else 1.0, float(maximize),
            )  # fmt: skip
            assert [x.hex() for x in got] == [x.hex() for x in want], (lr, b1, b2, wd, t)
            assert all(type(x) is float for x in got)
