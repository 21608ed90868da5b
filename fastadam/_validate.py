"""Hyperparameter and step checks shared by every algorithm.

Messages follow torch.optim's where torch has one (``Invalid learning rate: -1.0``),
so users can grep for them; type errors name the argument.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

MAX_STEP = 2**64 - 1  # a step count is a uint64 at the C boundary (the rounding key)


def real(name: str, value: object) -> float:
    """Return ``value`` as a float, or raise TypeError naming ``name``.

    Python and NumPy integers and floats are numbers; bools, strings and None are not.
    """
    if type(value) is float:  # the common case, without the slower abstract checks
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:  # an int beyond float's range
        raise ValueError(f"{name} is too large for a float: {value}") from None


def in_range(
    name: str, value: object, message: str, low: float = 0.0, high: float = math.inf
) -> float:
    """Check ``low <= value < high`` (NaN and inf fail); ``message`` is formatted with the value."""
    x = value if type(value) is float else real(name, value)
    if not low <= x < high:
        raise ValueError(message.format(value))
    return x


def finite(name: str, value: object) -> float:
    """A real number that is not NaN or infinite."""
    x = real(name, value)
    if not math.isfinite(x):
        raise ValueError(f"Invalid {name} value: {value}")
    return x


def lr(value: object) -> float:
    return in_range("lr", value, "Invalid learning rate: {}")


def eps(value: object) -> float:
    return in_range("eps", value, "Invalid epsilon value: {}")


def weight_decay(value: object) -> float:
    return in_range("weight_decay", value, "Invalid weight_decay value: {}")


def momentum(value: object) -> float:
    return in_range("momentum", value, "Invalid momentum value: {}")


def beta(index: int, value: object, name: str = "") -> float:
    """betas[index], in [0, 1); ``name`` labels it in type errors (default ``betas[index]``)."""
    if type(value) is float and 0.0 <= value < 1.0:  # the common case, without formatting
        return value
    message = f"Invalid beta parameter at index {index}: {{}}"
    return in_range(name or f"betas[{index}]", value, message, high=1.0)


def pair(name: str, value: object) -> tuple[float, float]:
    """A pair of real numbers (a tuple, list or other sequence of two), as floats."""
    if (
        type(value) is not tuple
        and (not isinstance(value, Sequence) or isinstance(value, (str, bytes)))
    ) or len(value) != 2:
        raise TypeError(f"{name} must be a pair of numbers, got {value!r}")
    return real(f"{name}[0]", value[0]), real(f"{name}[1]", value[1])


def betas(value: object) -> tuple[float, float]:
    """A pair (beta1, beta2), each in [0, 1)."""
    if (
        type(value) is not tuple
        and (not isinstance(value, Sequence) or isinstance(value, (str, bytes)))
    ) or len(value) != 2:
        raise TypeError(f"betas must be a pair (beta1, beta2), got {value!r}")
    return beta(0, value[0]), beta(1, value[1])


def flag(name: str, value: object) -> bool:
    """A bool (Python or NumPy); 0 and 1 are not accepted, to catch swapped arguments."""
    if type(value) is not bool and not isinstance(value, np.bool_):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def step(value: object) -> int:
    """The 1-based step count: an integer >= 1 (NumPy integers accepted, bools not)."""
    if type(value) is not int and (
        isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral)
    ):
        raise TypeError(f"step must be an integer, got {type(value).__name__}")
    value = int(value)  # an Integral, checked above
    if value < 1:
        raise ValueError(f"Invalid step value: {value} (steps count from 1)")
    if value > MAX_STEP:
        raise ValueError(f"Invalid step value: {value} (at most 2**64 - 1)")
    return value


def step_count(value: object, where: str) -> int:
    """A param's stored step count (the steps taken so far): an integer from 0 to
    2**64 - 2, so that the next step fits the C boundary's uint64. ``where`` names the
    state entry in the error."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{where} must be an integer >= 0, got {value!r}")
    count = int(value)
    if not 0 <= count < MAX_STEP:
        raise ValueError(f"{where} must be an integer >= 0 and < 2**64 - 1, got {count}")
    return count
