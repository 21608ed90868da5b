"""The algorithm table: one record per optimizer, read by every front end.

A record says what the C side needs (the kernel, its state buffers in kernel
order) and what the Python side needs (the hyperparameters of a param group with
their defaults, how a group and a step give the kernel's coefficients, which
state buffers a group's settings use and what they start as, scalar state, and
whether the step count is kept). The NumPy classes (``fastadam.optimizers``), the
PyTorch drop-in (``fastadam.torch``) and the step planner (``fastadam._plan``)
read these records and nothing else about an algorithm; the functional API calls
the same coefficient functions (``fastadam._algorithms``).

Adding an optimizer: a kernel in src_c (see fastadam.h), its coefficient function
in _algorithms.py, a record here, a class in each front end, and a row in the
test registry (tests/registry.py). CONTRIBUTING.md walks through it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import _algorithms, _ext
from . import _validate as check

__all__ = ["ALGORITHMS", "Algorithm"]

Group = Mapping[str, Any]
Scalars = Mapping[str, float]
# A group's coefficients by step, for state that is not fresh and has no scalar state
# (the planner's step, where every param has its state).
Prepared = Callable[[int], tuple[float, ...]]


@dataclass(frozen=True)
class Algorithm:
    """One optimizer, as every front end reads it.

    Attributes
    ----------
    name
        The class name in every front end (``"Adam"``).
    kernel
        The C kernel (``fastadam._ext.ADAM``, ...; ``fa_algo`` in fastadam.h). The
        kernel's own mask (``fa_required_buffers``) says which state buffers it
        always needs; the others are switched on by ``active``.
    slots
        The state buffers in kernel order, named as torch.optim names them.
    defaults
        A param group's hyperparameters and their defaults, as the NumPy class's
        constructor takes them.
    coefficients
        ``(group, step, fresh, scalars) -> coefficients``: check the group's
        hyperparameters and give the kernel's coefficients for ``step`` (1-based),
        in double; ``fresh`` is true when the state buffers were made for this
        step; ``scalars`` is the param's scalar state as this step leaves it.
    prepare
        ``group -> step -> coefficients``: ``coefficients`` for state that is not fresh
        and has no scalar state, with the group's hyperparameters checked once (None:
        checked at every call). The planner keeps the result while the group is
        unchanged; the step it gives is a count it has checked.
    active
        ``group -> flags``: which of ``slots`` the group's settings use (None: all).
    advance
        ``(group, step) -> factors``: at ``step``, each scalar state entry is
        multiplied by its factor (NAdam: ``mu_product *= mu_t``) before the
        coefficients are computed from it; the state keeps the product once the
        step has run.
    scalars
        Scalar state entries (NAdam's ``mu_product``) and their first values.
    scalar_checks
        ``(value, label) -> float`` per scalar state entry: its check (a stored
        value is checked before the step uses it, and when a state dict is loaded).
    initial
        ``(slot, group) -> value`` a state buffer starts as (None: zeros).
    formats
        Whether the kernel has compressed formats (bfloat16 and 8-bit state).
    counts_steps
        Whether the state keeps a ``"step"`` count (torch.optim.SGD keeps none).
    """

    name: str
    kernel: int
    slots: tuple[str, ...]
    defaults: Mapping[str, Any]
    coefficients: Callable[[Group, int, bool, Scalars], tuple[float, ...]]
    prepare: Callable[[Group], Prepared] | None = None
    active: Callable[[Group], tuple[bool, ...]] | None = None
    advance: Callable[[Group, int], dict[str, float]] | None = None
    scalars: Mapping[str, float] = field(default_factory=dict)
    scalar_checks: Mapping[str, Callable[[object, str], float]] = field(default_factory=dict)
    initial: Callable[[str, Group], float] | None = None
    formats: bool = False
    counts_steps: bool = True

    def check(self, group: Group) -> None:
        """Raise if the group's hyperparameters are invalid (torch.optim's messages)."""
        self.coefficients(group, 1, True, self.advanced(group, 1, self.scalars))
        self.used(group)

    def prepared(self, group: Group) -> Prepared:
        """``step -> coefficients`` for ``group`` (see ``prepare``)."""
        if self.scalars:
            raise TypeError(f"{self.name}'s coefficients depend on each param's scalar state")
        if self.prepare is None:
            return lambda step: self.coefficients(group, step, False, self.scalars)
        return self.prepare(group)

    def advanced(self, group: Group, step: int, scalars: Scalars) -> dict[str, float]:
        """The scalar state as ``step`` leaves it: each entry times its factor (``advance``)."""
        if self.advance is None:
            return dict(scalars)
        factors = self.advance(group, step)
        return {k: v * factors[k] for k, v in scalars.items()}

    def stored_scalars(self, state: Mapping[str, Any], where: str) -> dict[str, float]:
        """A param's scalar state, checked (``where`` names the state in errors)."""
        for k in self.scalars:
            if k not in state:  # say deleted between steps: not a KeyError
                raise ValueError(f'{where} has no "{k}" entry')
        return {
            k: self.scalar_checks[k](state[k], f'{where}["{k}"]')
            if k in self.scalar_checks
            else float(state[k])
            for k in self.scalars
        }

    def used(self, group: Group) -> tuple[bool, ...]:
        """Which of ``slots`` the group's settings use."""
        return (True,) * len(self.slots) if self.active is None else self.active(group)


# ---------------------------------------------------------------------- the records


def _hp(group: Group, key: str) -> Any:
    """The group's hyperparameter ``key``; ValueError if the group has none (say a key
    deleted from ``param_groups`` between steps), not a KeyError."""
    try:
        return group[key]
    except KeyError:
        raise ValueError(f'param group has no "{key}" entry') from None


def _from_group(
    function: Callable[..., Any],
    at: Callable[[Any, int], tuple[float, ...]] | None = None,
    scalars: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The ``coefficients`` and ``prepare`` of a record (Algorithm's keywords), from
    coefficient functions of _algorithms: each keyword of ``function`` is read from the
    group by name (``beta1`` and ``beta2`` from ``betas``), ``step`` is the step,
    ``first_step`` whether the state is fresh, and the ``scalars`` (``mu_product``) are
    the param's scalar state, as this step leaves it.

    With ``at``, ``function`` checks the hyperparameters (``<name>_hyperparameters``)
    and ``at(checked, step)`` gives the step's coefficients: ``prepare(group)`` checks
    the group once and returns the step's arithmetic alone. Without it, the
    coefficients of a ``function`` that takes neither the step nor scalars are
    computed once; others have no ``prepare`` and are computed at every step.
    """
    parameters = inspect.signature(function).parameters.values()
    names = tuple(p.name for p in parameters if p.default is inspect.Parameter.empty)
    betas, takes_step, takes_fresh = "beta1" in names, "step" in names, "first_step" in names
    read = tuple(k for k in names if k not in {"step", "first_step", "beta1", "beta2", *scalars})
    constant = at is None and not takes_step and not scalars

    def given_by(group: Group) -> dict[str, Any]:
        given: dict[str, Any] = {}
        if betas:  # checked first, as torch.optim checks them
            given["beta1"], given["beta2"] = check.betas(_hp(group, "betas"))
        try:
            for k in read:
                given[k] = group[k]
        except KeyError:
            for k in read:
                _hp(group, k)  # raises _hp's ValueError for the first key the group lacks
            raise
        return given

    def coefficients(group: Group, step: int, fresh: bool, values: Scalars) -> Any:
        given = given_by(group)
        if at is not None:
            return at(function(**given), check.step(step))
        if takes_step:
            given["step"] = step
        if takes_fresh:
            given["first_step"] = fresh
        for k in scalars:
            given[k] = values[k]
        return function(**given)

    def prepare(group: Group) -> Prepared:
        if at is not None:
            return functools.partial(at, function(**given_by(group)))
        given = given_by(group)  # constant: the same coefficients at every step
        coef = function(**given, first_step=False) if takes_fresh else function(**given)
        return lambda step: coef

    preparable = at is not None or constant  # else Algorithm.prepared computes at every step
    return {"coefficients": coefficients, "prepare": prepare if preparable else None}


_NADAM = _from_group(functools.partial(_algorithms.nadam, updated=True), scalars=("mu_product",))[
    "coefficients"
]


def _nadam(group: Group, step: int, fresh: bool, scalars: Scalars) -> tuple[float, ...]:
    coefficients, _ = _NADAM(group, step, fresh, scalars)  # and mu_product, as given
    return coefficients


def _nadam_advance(group: Group, step: int) -> dict[str, float]:
    """The factor of mu_product at ``step``: mu_t."""
    beta1, _ = check.betas(_hp(group, "betas"))
    decay = check.in_range(
        "momentum_decay", _hp(group, "momentum_decay"), "Invalid momentum_decay value: {}"
    )
    return {"mu_product": _algorithms.momentum_cache(beta1, decay, step)}


_ADAGRAD = _from_group(_algorithms.adagrad_hyperparameters, _algorithms.adagrad_at)


def _adagrad(group: Group, step: int, fresh: bool, scalars: Scalars) -> tuple[float, ...]:
    _algorithms.initial_accumulator_value(_hp(group, "initial_accumulator_value"))
    return _ADAGRAD["coefficients"](group, step, fresh, scalars)


def _adagrad_prepare(group: Group) -> Prepared:
    _algorithms.initial_accumulator_value(_hp(group, "initial_accumulator_value"))
    return _ADAGRAD["prepare"](group)


def _rprop(group: Group, step: int, fresh: bool, scalars: Scalars) -> tuple[float, ...]:
    """Rprop's coefficients from a group of torch.optim.Rprop's keys: lr (checked
    first, as torch does; it is the first step size), the pairs etas and step_sizes."""
    check.lr(_hp(group, "lr"))
    etaminus, etaplus = check.pair("etas", _hp(group, "etas"))
    low, high = check.pair("step_sizes", _hp(group, "step_sizes"))
    return _algorithms.rprop(
        etaminus=etaminus,
        etaplus=etaplus,
        step_size_min=low,
        step_size_max=high,
        maximize=_hp(group, "maximize"),
    )


def _rprop_prepare(group: Group) -> Prepared:
    coefficients = _rprop(group, 1, False, {})  # the same at every step
    return lambda step: coefficients


def _rprop_initial(slot: str, group: Group) -> float:
    """A step size starts at the group's lr (checked), the previous grad at 0."""
    return check.lr(_hp(group, "lr")) if slot == "step_size" else 0.0


ADAM_DEFAULTS: dict[str, Any] = {
    "lr": 1e-3,
    "betas": (0.9, 0.999),
    "eps": 1e-8,
    "weight_decay": 0.0,
    "amsgrad": False,
    "maximize": False,
    "decoupled_weight_decay": False,
}

ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm(
            name="Adam",
            kernel=_ext.ADAM,
            slots=("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
            defaults=ADAM_DEFAULTS,
            **_from_group(_algorithms.adam_hyperparameters, _algorithms.adam_at),
            active=lambda group: (True, True, check.flag("amsgrad", _hp(group, "amsgrad"))),
            formats=True,
        ),
        Algorithm(
            name="SGD",
            kernel=_ext.SGD,
            slots=("momentum_buffer",),
            defaults={
                "lr": 1e-3,
                "momentum": 0.0,
                "dampening": 0.0,
                "weight_decay": 0.0,
                "nesterov": False,
                "maximize": False,
            },
            **_from_group(_algorithms.sgd),
            active=lambda group: (check.momentum(_hp(group, "momentum")) != 0,),
            counts_steps=False,
        ),
        Algorithm(
            name="RMSprop",
            kernel=_ext.RMSPROP,
            slots=("square_avg", "grad_avg", "momentum_buffer"),
            defaults={
                "lr": 1e-2,
                "alpha": 0.99,
                "eps": 1e-8,
                "weight_decay": 0.0,
                "momentum": 0.0,
                "centered": False,
                "maximize": False,
            },
            **_from_group(_algorithms.rmsprop),
            active=lambda group: (
                True,
                check.flag("centered", _hp(group, "centered")),
                check.momentum(_hp(group, "momentum")) > 0,
            ),
        ),
        Algorithm(
            name="Adagrad",
            kernel=_ext.ADAGRAD,
            slots=("sum",),
            defaults={
                "lr": 1e-2,
                "lr_decay": 0.0,
                "weight_decay": 0.0,
                "initial_accumulator_value": 0.0,
                "eps": 1e-10,
                "maximize": False,
            },
            coefficients=_adagrad,
            prepare=_adagrad_prepare,
            initial=lambda slot, group: _hp(group, "initial_accumulator_value"),
        ),
        Algorithm(
            name="Adamax",
            kernel=_ext.ADAMAX,
            slots=("exp_avg", "exp_inf"),
            defaults={
                "lr": 2e-3,
                "betas": (0.9, 0.999),
                "eps": 1e-8,
                "weight_decay": 0.0,
                "maximize": False,
            },
            **_from_group(_algorithms.adamax_hyperparameters, _algorithms.adamax_at),
        ),
        Algorithm(
            name="NAdam",
            kernel=_ext.NADAM,
            slots=("exp_avg", "exp_avg_sq"),
            defaults={
                "lr": 2e-3,
                "betas": (0.9, 0.999),
                "eps": 1e-8,
                "weight_decay": 0.0,
                "momentum_decay": 4e-3,
                "decoupled_weight_decay": False,
                "maximize": False,
            },
            coefficients=_nadam,
            advance=_nadam_advance,
            scalars={"mu_product": 1.0},
            scalar_checks={"mu_product": _algorithms.check_mu_product},
        ),
        Algorithm(
            name="RAdam",
            kernel=_ext.RADAM,
            slots=("exp_avg", "exp_avg_sq"),
            defaults={
                "lr": 1e-3,
                "betas": (0.9, 0.999),
                "eps": 1e-8,
                "weight_decay": 0.0,
                "decoupled_weight_decay": False,
                "maximize": False,
            },
            **_from_group(_algorithms.radam_hyperparameters, _algorithms.radam_at),
        ),
        Algorithm(
            name="Rprop",
            kernel=_ext.RPROP,
            slots=("prev", "step_size"),
            defaults={"lr": 1e-2, "etas": (0.5, 1.2), "step_sizes": (1e-6, 50), "maximize": False},
            coefficients=_rprop,
            prepare=_rprop_prepare,
            initial=_rprop_initial,
        ),
        Algorithm(
            name="Lion",
            kernel=_ext.LION,
            slots=("exp_avg",),
            defaults={"lr": 1e-4, "betas": (0.9, 0.99), "weight_decay": 0.0, "maximize": False},
            **_from_group(_algorithms.lion),
        ),
    )
}
