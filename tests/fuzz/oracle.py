"""What every fuzz target checks, and the values it builds from the fuzzer's bytes.

The oracle of one input (``Oracle.call``):

* the call returns, or raises one of the documented exception types, ALLOWED;
  anything else (an AttributeError, a KeyError, a ZeroDivisionError, ...) is a
  finding. A crash or a hang ends the process, and libFuzzer reports it;
* after an exception every watched object (the buffers, the optimizer's state and
  param groups, the odd values themselves) is bit for bit as before the call
  (``frozen`` of tests/test_crash.py: identity, type, dtype, shape, strides, bytes);
* after a success on tame input (``tame``: finite values in ranges where one float32
  step cannot lose the suite's precision, hyperparameters likewise) the result equals
  one step of the float64 twin (tests/twin.py) within the suite's tolerances
  (twin.TOLERANCE, relative to the largest magnitude of the buffer before or after).

A tame input that raises is a finding too: valid input must be accepted.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import atheris
import ml_dtypes
import numpy as np
import twin
from test_crash import frozen

# The exception types the public API documents (README "What fastadam checks",
# the docstrings' Raises sections): TypeError and ValueError, and their
# subclasses, among them fastadam.CheckpointError. fastadam.load also documents
# OSError for a file it cannot read; the checkpoint target always writes one it can.
ALLOWED: tuple[type[BaseException], ...] = (TypeError, ValueError)

BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
DTYPES = (
    np.dtype(np.float32),
    np.dtype(np.float64),
    np.dtype(np.float16),
    BFLOAT16,
    np.dtype(np.uint8),
    np.dtype(np.int32),
    np.dtype(np.int64),
    np.dtype(np.complex64),
    np.dtype(np.bool_),
    np.dtype(object),
    np.dtype(">f4"),
    np.dtype(">f8"),
)
SPECIAL_FLOATS = (
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    1e-8,
    1e-300,
    5e-324,
    1e300,
    1.7976931348623157e308,
    3.4028235e38,
    1.1754944e-38,
    math.inf,
    -math.inf,
    math.nan,
    2.0**31,
    2.0**32,
    2.0**63,
    2.0**64,
)
SPECIAL_INTS = (
    0,
    1,
    -1,
    2,
    7,
    255,
    256,
    2**31 - 1,
    2**31,
    2**32,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63),
)

# Tame ranges (see the module docstring): the state slots that are divided by or
# square-rooted stay away from 0, the others are small.
POSITIVE_SLOTS = frozenset({"exp_avg_sq", "max_exp_avg_sq", "square_avg", "sum", "exp_inf"})
TAME_HYPERPARAMETERS: dict[str, tuple[float, float]] = {
    "lr": (1e-4, 0.1),
    "eps": (1e-8, 1e-2),
    "weight_decay": (0.0, 0.1),
    "momentum": (0.0, 0.95),
    "dampening": (0.0, 0.5),
    "alpha": (0.5, 0.999),
    "lr_decay": (0.0, 0.1),
    "momentum_decay": (0.0, 0.1),
    "initial_accumulator_value": (0.0, 1.0),
    "beta": (0.0, 0.99),
}
FLAGS = frozenset({"amsgrad", "maximize", "nesterov", "centered", "decoupled_weight_decay"})


class Finding(AssertionError):
    """The oracle's verdict on one input: an uncaught exception, so libFuzzer saves it."""


class Source:
    """Values from the fuzzer's bytes (an atheris.FuzzedDataProvider)."""

    def __init__(self, data: bytes) -> None:
        self.fdp = atheris.FuzzedDataProvider(data)

    def int(self, lo: int, hi: int) -> int:
        return self.fdp.ConsumeIntInRange(lo, hi)

    def bool(self) -> bool:
        return self.fdp.ConsumeBool()

    def chance(self, percent: int) -> bool:
        return self.int(0, 99) < percent

    def pick(self, options: Sequence[Any]) -> Any:
        return options[self.int(0, len(options) - 1)]

    def uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self.fdp.ConsumeProbability()

    def seed(self) -> int:
        return self.int(0, 2**32 - 1)

    def any_float(self) -> float:
        if self.bool():
            return self.pick(SPECIAL_FLOATS)
        return self.fdp.ConsumeRegularFloat()

    def any_int(self) -> int:
        return self.pick(SPECIAL_INTS) if self.bool() else self.fdp.ConsumeInt(9)

    def text(self) -> str:
        return self.fdp.ConsumeUnicodeNoSurrogates(self.int(0, 12))

    def odd_scalar(self) -> object:
        """Anything that may stand where a number or a flag is expected."""
        kind = self.int(0, 13)
        return (
            [
                None,
                self.any_float,
                self.any_int,
                self.bool,
                self.text,
                lambda: np.float32(self.any_float()) if abs(x := self.any_float()) < 3e38 else x,
                lambda: np.int64(self.int(-5, 5)),
                lambda: np.array(self.any_float()),
                lambda: np.full(self.int(0, 3), self.any_float()),
                lambda: [self.any_float()],
                lambda: (self.any_float(), self.any_float()),
                lambda: complex(self.any_float(), 1.0),
                lambda: object(),
                lambda: {"lr": self.any_float()},
            ][kind]()
            if kind
            else None
        )


# ------------------------------------------------------------------------ arrays


def values(source: Source, shape: tuple[int, ...], lo: float, hi: float) -> np.ndarray:
    """float64 values in [lo, hi) of ``shape``, from a seed the fuzzer picks."""
    return np.random.default_rng(source.seed()).uniform(lo, hi, shape)


TINY = 1e-12  # the smallest nonzero magnitude of a tame buffer


def tame_range(slot: str) -> tuple[float, float]:
    if slot in POSITIVE_SLOTS:
        return 0.5, 2.0
    if slot in ("param", "grad"):
        return -2.0, 2.0
    return -0.5, 0.5


def odd_values(source: Source, shape: tuple[int, ...]) -> np.ndarray:
    """Values that any float may hold: specials, huge, tiny, negative."""
    out = values(source, shape, -2.0, 2.0)
    flat = out.reshape(-1)
    for _ in range(source.int(0, 4) if flat.size else 0):
        flat[source.int(0, flat.size - 1)] = source.any_float()
    if flat.size and source.chance(20):
        flat[...] = source.any_float()
    return out


def as_dtype(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    with np.errstate(all="ignore"):
        if dtype == np.dtype(object):
            return x.astype(object)
        if dtype.kind in "iub":
            return np.nan_to_num(x, nan=0, posinf=1, neginf=-1).clip(-100, 100).astype(dtype)
        return x.astype(dtype)


def shape_of(source: Source) -> tuple[int, ...]:
    return tuple(source.int(0, 9) for _ in range(source.int(0, 3)))


def odd_array(source: Source, shape: tuple[int, ...], dtype: np.dtype, pool: list) -> object:
    """An array like ``shape``/``dtype`` in an odd layout, or of another kind entirely;
    may share memory with an array already in ``pool`` (an overlap)."""
    kind = source.int(0, 15)
    data = odd_values(source, shape)
    if kind == 0:
        return as_dtype(data, source.pick(DTYPES))
    if kind == 1:
        other = shape_of(source)
        return as_dtype(odd_values(source, other), dtype)
    if kind == 2:  # strided: every other element of a larger array
        big = np.zeros((*shape[:-1], 2 * shape[-1]) if shape else (2,), dtype)
        view = big[..., ::2] if shape else big[0:1].reshape(())
        view[...] = as_dtype(data, dtype)
        return view
    if kind == 3:  # reversed
        a = as_dtype(data, dtype)
        return a[::-1] if a.ndim else a
    if kind == 4:
        return (
            np.asfortranarray(as_dtype(data, dtype).T).T
            if len(shape) > 1
            else as_dtype(data, dtype).T
        )
    if kind == 5:
        return (
            np.broadcast_to(as_dtype(np.ones(1), dtype), shape) if shape else as_dtype(data, dtype)
        )
    if kind == 6:  # misaligned
        raw = np.zeros(data.size * dtype.itemsize + 1, np.uint8)
        a = raw[1:].view(dtype).reshape(shape) if dtype != np.dtype(object) else data
        a[...] = as_dtype(data, dtype)
        return a
    if kind == 7:
        a = as_dtype(data, dtype)
        a.flags.writeable = False
        return a
    if kind == 8 and pool:  # the same array as another argument, or a view of it
        other = source.pick(pool)
        if not isinstance(other, np.ndarray) or source.bool():
            return other
        flat = other.reshape(-1) if other.flags.c_contiguous else other
        return flat[source.int(0, 1) :] if flat.ndim else flat
    if kind == 9:  # read-only memory from bytes
        a = as_dtype(data, dtype)
        if a.dtype == np.dtype(object):
            return a
        return np.frombuffer(a.tobytes(), a.dtype).reshape(a.shape)
    if kind == 10:
        return as_dtype(data, dtype).tolist()
    if kind == 11:
        return as_dtype(data, dtype).tobytes() if dtype != np.dtype(object) else b""
    if kind == 12:
        return source.odd_scalar()
    if kind == 13:  # a subclass
        return as_dtype(data, dtype).view(np.ma.MaskedArray) if source.bool() else np.matrix(1.0)
    return as_dtype(data, dtype)


def good_array(source: Source, shape: tuple[int, ...], dtype: np.dtype, slot: str) -> np.ndarray:
    """A valid buffer: tame values (mostly), C-contiguous, aligned, writable."""
    lo, hi = tame_range(slot)
    data = values(source, shape, lo, hi) if source.chance(85) else odd_values(source, shape)
    return as_dtype(data, dtype)


# ----------------------------------------------------------------- hyperparameters


def tame_hyperparameters(source: Source, name: str) -> dict[str, Any]:
    """One of twin.CASES of algorithm ``name``, its numbers moved within the tame ranges."""
    hp = dict(source.pick(twin.cases_of(name)))
    for key, value in hp.items():
        if key == "betas":
            lo, hi = TAME_HYPERPARAMETERS["beta"]
            hp[key] = (source.uniform(lo, hi), source.uniform(lo, hi))
        elif isinstance(value, float) and key in TAME_HYPERPARAMETERS and source.bool():
            lo, hi = TAME_HYPERPARAMETERS[key]
            if value != 0.0 or key not in ("momentum", "weight_decay") or source.bool():
                hp[key] = source.uniform(lo, hi)
        elif isinstance(value, bool) and source.chance(25):
            hp[key] = not value
    if hp.get("nesterov"):
        hp["dampening"] = 0.0
        hp["momentum"] = hp.get("momentum") or 0.5
    return hp


def is_tame_hyperparameters(hp: Mapping[str, Any]) -> bool:
    for key, value in hp.items():
        if key == "betas":
            if not (isinstance(value, tuple) and len(value) == 2):
                return False
            if not all(type(b) is float and 0.0 <= b <= 0.99 for b in value):
                return False
        elif key in TAME_HYPERPARAMETERS:
            lo, hi = TAME_HYPERPARAMETERS[key]
            if type(value) not in (float, int) or not lo <= value <= hi:
                return False
        elif key in FLAGS and type(value) is not bool:
            return False
    return True


def mutate_hyperparameters(source: Source, hp: dict[str, Any], keys: Sequence[str]) -> None:
    """Replace a few hyperparameters (or add unknown ones) with odd values."""
    for _ in range(source.int(0, 3)):
        key = source.pick([*keys, "bogus"]) if keys else "bogus"
        if source.chance(10):
            hp.pop(key, None)
        elif key == "betas" and source.bool():
            hp[key] = (source.any_float(), source.any_float())
        else:
            hp[key] = source.odd_scalar() if source.bool() else source.any_float()


def twin_keywords(name: str, hp: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``hp`` that twin ``name`` takes."""
    names = inspect.signature(twin.TWINS[name]).parameters
    return {k: v for k, v in hp.items() if k in names and k not in ("param", "grad", "state")}


# ------------------------------------------------------------------------ oracle


def is_tame_array(x: object, slot: str, dtype: np.dtype | None = None) -> bool:
    if not (isinstance(x, np.ndarray) and type(x) is np.ndarray):
        return False
    if x.dtype not in (np.float32, np.float64) or not x.dtype.isnative:
        return False
    if dtype is not None and x.dtype != dtype:
        return False
    lo, hi = tame_range(slot)
    with np.errstate(all="ignore"):
        # Nonzero magnitudes below TINY are not tame: their squares underflow in float32
        # (a grad of 1.2e-38 gives exp_avg_sq 0 where the float64 twin has 1.4e-76).
        return bool(np.all((x >= lo) & (x <= hi) & ((x == 0) | (np.abs(x) >= TINY))))


def watch(objects: Mapping[str, object]) -> dict[str, object]:
    return {name: frozen(x) for name, x in objects.items()}


def call(fn: Callable[[], Any], watched: Mapping[str, object]) -> tuple[bool, Any]:
    """Run ``fn``; (True, its result), or (False, the allowed exception) after checking
    that nothing watched changed. Raises Finding on any other outcome."""
    before = watch(watched)
    try:
        result = fn()
    except ALLOWED as error:
        after = watch(watched)
        moved = [name for name in watched if after[name] != before[name]]
        if moved:
            raise Finding(f"{type(error).__name__}({error}) but {moved} changed") from error
        return False, error
    except Exception as error:
        raise Finding(f"undocumented exception {type(error).__name__}: {error}") from error
    return True, result


# The state buffers that accumulate squared gradients (the others are first order).
SECOND_ORDER = frozenset({"exp_avg_sq", "max_exp_avg_sq", "square_avg", "sum"})


def l2_term(name: str, hp: Mapping[str, Any], before: Mapping[str, Any]) -> float:
    """max|grad| + wd * max|param| under L2 weight decay (0 otherwise).

    L2 decay adds ``wd * p`` to the gradient. Where the two nearly cancel, the effective
    gradient is small but carries the rounding of both terms, so a state buffer made
    from it is measured against the terms' magnitude, not against the difference.
    """
    wd = hp.get("weight_decay", 0.0)
    if not wd or hp.get("decoupled_weight_decay", False) or name == "lion":  # Lion decays p
        return 0.0
    return twin._max_abs(before["grad"]) + abs(wd) * twin._max_abs(before["param"])


def assert_twin(
    name: str,
    hp: Mapping[str, Any],
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    tol: float | None = None,
    scalar_dtype: np.dtype | type = np.float64,
) -> None:
    """``after`` (param and state buffers, one dtype; a float for a scalar state) is
    one twin step of ``before`` (float64 copies, with "grad" and "step", the count
    before the step) under ``hp``, within ``tol`` (default: twin.TOLERANCE).

    ``scalar_dtype`` is the precision a scalar state is held in (torch.optim keeps
    NAdam's mu_product as a float32 tensor): it is compared at that dtype's tolerance,
    relative to no less than its smallest normal number, below which it underflows.
    """
    dtype = after["param"].dtype
    scalar_dtype = np.dtype(scalar_dtype)
    scalar_tol = (
        twin.TOLERANCE[scalar_dtype] if tol is None else max(tol, twin.TOLERANCE[scalar_dtype])
    )
    tol = twin.TOLERANCE[dtype] if tol is None else tol
    term = l2_term(name, hp, before)
    state: dict[str, Any] = {
        key: (twin.f64(value) if isinstance(value, np.ndarray) else value)
        for key, value in before.items()
        if key not in ("param", "grad")
    }
    param = twin.f64(before["param"])
    twin.TWINS[name](param, twin.f64(before["grad"]), state, **twin_keywords(name, hp))
    mask = twin.sign_mask(name, state, dtype)
    for key, ref in [("param", param), *state.items()]:
        if key in ("step", "sign_margin") or ref is None or key not in after:
            continue
        if key == twin.SCALAR_STATE.get(name):  # a float
            err = twin.rel_err(after[key], ref, scale=float(np.finfo(scalar_dtype).tiny))
            if err > scalar_tol:
                raise Finding(f"{name} {key}: {after[key]!r} != twin {ref!r} ({dict(hp)})")
            continue
        ref = np.asarray(ref)  # the twin's SGD makes a new buffer: a NumPy scalar when 0-d
        scale = twin._max_abs(before[key]) if before.get(key) is not None else 0.0
        if key != "param":
            scale = max(scale, term * term if key in SECOND_ORDER else term)
        err = twin.rel_err(after[key], ref, mask if key == "param" else None, scale)
        if not err <= tol:
            raise Finding(f"{name} {key}: relative error {err:.3g} > {tol:g} ({dict(hp)})")
