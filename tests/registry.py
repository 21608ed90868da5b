"""The test registry: a row per algorithm of the table (fastadam._table.ALGORITHMS).

Each row names what the parametrised tests need of one algorithm: its NumPy class,
its functional function, its name in tests/twin.py (the float64 oracle, whose
``CASES`` are its hyperparameter cases), its torch.optim counterpart (None where
torch has none), a setting that uses every state buffer, the bad hyperparameters
with the error each raises (torch.optim's message), and the options under which
the NumPy class and fastadam.torch must agree bit for bit. tests/test_registry.py
fails when an algorithm of the table has no row, so a new optimizer cannot skip
the suite.

Kept out of conftest.py, which must import without fastadam (a test copies it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import fastadam
from fastadam import functional

# A bad hyperparameter: the keyword and its value, the exception, a regex of its message.
Bad = tuple[dict[str, Any], type[Exception], str]

LR: list[Bad] = [
    ({"lr": -1.0}, ValueError, r"^Invalid learning rate: -1.0$"),
    ({"lr": float("nan")}, ValueError, r"^Invalid learning rate: nan$"),
    ({"lr": "0.1"}, TypeError, r"lr must be a real number"),
]
WEIGHT_DECAY: list[Bad] = [
    ({"weight_decay": -0.1}, ValueError, r"^Invalid weight_decay value: -0.1$"),
]
BETAS: list[Bad] = [
    ({"betas": (1.0, 0.999)}, ValueError, r"^Invalid beta parameter at index 0: 1.0$"),
    ({"betas": (0.9, -0.5)}, ValueError, r"^Invalid beta parameter at index 1: -0.5$"),
]
EPS: list[Bad] = [({"eps": -1e-8}, ValueError, r"^Invalid epsilon value: -1e-08$")]
MAXIMIZE: list[Bad] = [({"maximize": 1}, TypeError, r"maximize must be a bool")]


@dataclass(frozen=True)
class Row:
    """What the tests need of one algorithm (see the module docstring)."""

    numpy: type[fastadam.Optimizer]
    functional: Callable[..., Any]
    twin: str
    torch: str | None
    full_state: dict[str, Any]
    bad: list[Bad] = field(default_factory=list)
    parity: list[dict[str, Any]] = field(default_factory=lambda: [{}])


ROWS: dict[str, Row] = {
    "Adam": Row(
        numpy=fastadam.Adam,
        functional=functional.adam,
        twin="adam",
        torch="Adam",
        full_state={"amsgrad": True, "weight_decay": 0.1},
        bad=[*LR, *BETAS, *EPS, *WEIGHT_DECAY, *MAXIMIZE],
        parity=[{}, {"amsgrad": True, "weight_decay": 0.1}, {"state_dtype": "int8"}],
    ),
    "SGD": Row(
        numpy=fastadam.SGD,
        functional=functional.sgd,
        twin="sgd",
        torch="SGD",
        full_state={"momentum": 0.9, "nesterov": True, "weight_decay": 0.1},
        bad=[
            *LR,
            *WEIGHT_DECAY,
            *MAXIMIZE,
            ({"momentum": -0.5}, ValueError, r"^Invalid momentum value: -0.5$"),
            (
                {"nesterov": True, "dampening": 0.5},
                ValueError,
                r"^Nesterov momentum requires a momentum and zero dampening$",
            ),
        ],
        parity=[{}, {"nesterov": False, "dampening": 0.1}],
    ),
    "RMSprop": Row(
        numpy=fastadam.RMSprop,
        functional=functional.rmsprop,
        twin="rmsprop",
        torch="RMSprop",
        full_state={"centered": True, "momentum": 0.1, "weight_decay": 0.1},
        bad=[
            *LR,
            *EPS,
            *WEIGHT_DECAY,
            *MAXIMIZE,
            ({"alpha": -0.1}, ValueError, r"^Invalid alpha value: -0.1$"),
            ({"momentum": -0.1}, ValueError, r"^Invalid momentum value: -0.1$"),
        ],
        parity=[{}, {"centered": True, "momentum": 0.1}],
    ),
    "Adagrad": Row(
        numpy=fastadam.Adagrad,
        functional=functional.adagrad,
        twin="adagrad",
        torch="Adagrad",
        full_state={"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1},
        bad=[
            *LR,
            *EPS,
            *WEIGHT_DECAY,
            *MAXIMIZE,
            ({"lr_decay": -0.1}, ValueError, r"^Invalid lr_decay value: -0.1$"),
            (
                {"initial_accumulator_value": -0.1},
                ValueError,
                r"^Invalid initial_accumulator_value value: -0.1$",
            ),
        ],
        parity=[{}, {"lr_decay": 0.01, "initial_accumulator_value": 0.1}],
    ),
    "Adamax": Row(
        numpy=fastadam.Adamax,
        functional=functional.adamax,
        twin="adamax",
        torch="Adamax",
        full_state={"weight_decay": 0.1, "maximize": True},
        bad=[*LR, *BETAS, *EPS, *WEIGHT_DECAY, *MAXIMIZE],
    ),
    "NAdam": Row(
        numpy=fastadam.NAdam,
        functional=functional.nadam,
        twin="nadam",
        torch="NAdam",
        full_state={"weight_decay": 0.1, "momentum_decay": 0.01},
        bad=[
            *LR,
            *BETAS,
            *EPS,
            *WEIGHT_DECAY,
            *MAXIMIZE,
            ({"momentum_decay": -0.1}, ValueError, r"^Invalid momentum_decay value: -0.1$"),
        ],
        parity=[{}, {"decoupled_weight_decay": True, "maximize": True}],
    ),
    "RAdam": Row(
        numpy=fastadam.RAdam,
        functional=functional.radam,
        twin="radam",
        torch="RAdam",
        full_state={"weight_decay": 0.1},
        bad=[*LR, *BETAS, *EPS, *WEIGHT_DECAY, *MAXIMIZE],
        parity=[{}, {"decoupled_weight_decay": True, "maximize": True}],
    ),
    "Rprop": Row(
        numpy=fastadam.Rprop,
        functional=functional.rprop,
        twin="rprop",
        torch="Rprop",
        full_state={"lr": 0.01},
        bad=[
            *LR,
            ({"etas": (1.0, 1.2)}, ValueError, r"^Invalid eta values: 1.0, 1.2$"),
            ({"etas": (0.5, 0.9)}, ValueError, r"^Invalid eta values: 0.5, 0.9$"),
            *MAXIMIZE,
        ],
        parity=[{}, {"etas": (0.3, 1.7), "step_sizes": (1e-4, 0.05), "maximize": True}],
    ),
    "Lion": Row(
        numpy=fastadam.Lion,
        functional=functional.lion,
        twin="lion",
        torch=None,
        full_state={"lr": 0.01, "weight_decay": 0.1},
        bad=[*LR, *BETAS, *WEIGHT_DECAY, *MAXIMIZE],
        parity=[{}, {"weight_decay": 0.1, "maximize": True}],
    ),
}

# The NumPy classes by the names tests/twin.py gives the algorithms.
OPTIMIZER_CLASSES: dict[str, type[fastadam.Optimizer]] = {
    row.twin: row.numpy for row in ROWS.values()
}
