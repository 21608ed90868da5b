"""Compressed state and low-precision params: the code maps and the format policy.

Formats (per param; see the README section "Compressed state"):

- ``"float32"`` state: 4 bytes per element and state buffer.
- ``"bfloat16"`` state: the top half of a float32, 2 bytes (``ml_dtypes.bfloat16``).
- ``"int8"`` state: block-wise dynamic quantization (Dettmers et al., "8-bit
  Optimizers via Block-wise Quantization", arXiv:2110.02861): per block of
  ``block_size`` elements one float32 absmax, per element one byte, a code of the
  dynamic tree map: value = map[code] * absmax. ``exp_avg`` uses the signed map,
  ``exp_avg_sq`` the unsigned one.

The maps are built here once, with NumPy, and handed to the kernels with a
search table that finds the nearest code of any float exactly (proven by the
tests against a brute-force search over all 256 codes).
"""

from __future__ import annotations

import numbers
from typing import TypeAlias

import ml_dtypes
import numpy as np

from . import _ext

__all__ = ["BFLOAT16", "dynamic_map", "search_table", "thresholds"]

BFLOAT16 = np.dtype(ml_dtypes.bfloat16)

STATE_DTYPES = ("float32", "bfloat16", "int8")
ROUNDINGS = ("nearest", "stochastic")
BLOCK_SIZES = tuple(2**k for k in range(6, 12))  # elements per absmax: 64 to 2048
STATE_STORAGE = {"float32": np.dtype(np.float32), "bfloat16": BFLOAT16, "int8": np.dtype(np.uint8)}


# ------------------------------------------------------------------ code maps


def dynamic_map(signed: bool) -> np.ndarray:
    """The 256 values of the dynamic tree map, ascending, as float32.

    Decade ``10**(i - 6)`` for ``i = 0..6`` holds the midpoints of
    ``count + 1`` equally spaced points from 0.1 to 1, times the decade, where
    ``count = 2**i`` (signed: each also negated) or ``2**(i + 1)`` (unsigned);
    then 0 and 1. Signed: 127 negative values, 0, 127 positive values and 1;
    unsigned: 0, 254 positive values and 1.

    >>> m = dynamic_map(signed=False)
    >>> m[[0, 1, -2, -1]]
    array([0.000000e+00, 3.250000e-07, 9.964844e-01, 1.000000e+00], dtype=float32)
    """
    values = [0.0, 1.0]
    for i in range(7):
        count = 2**i if signed else 2 ** (i + 1)
        edges = np.linspace(0.1, 1.0, count + 1)
        means = (edges[:count] + edges[1:]) / 2 * 10.0 ** (i - 6)
        values += [*means, *(-means if signed else [])]
    result = np.sort(np.array(values, np.float64).astype(np.float32))
    assert np.unique(result).size == 256
    return result


# The searches' binades: exponents FIRST_EXPONENT .. FIRST_EXPONENT + 31 (every smaller
# magnitude counts as the first, every larger one as the last); per binade, buckets of
# equal width, each holding at most two thresholds; at most 256 buckets in all.
FIRST_EXPONENT = 96
MANTISSA = 0x7FFFFF  # also "no threshold": no mantissa is above it


def thresholds(values: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """``(zero, nearest, floor)``: the code of 0.0 and the float32 bits of the two
    searches' thresholds. The magnitudes ``values[zero:]`` have ranks 0, 1, ...;
    the rank of the nearest code of a magnitude ``a`` is the number of ``nearest``
    thresholds below ``a``: the midpoint between ranks k and k+1 (exact in
    float64) is represented by the largest float32 ``t_k`` not above it, so for a
    float32 ``a``, ``a > t_k`` exactly when ``a`` is past the midpoint (ties go to
    the smaller magnitude). The rank of the largest magnitude not above ``a`` is
    the number of ``floor`` thresholds below ``a``: each magnitude but 0, less one
    unit in the last place.
    """
    zero = int(np.flatnonzero(values == 0)[0])
    magnitudes = values[zero:].astype(np.float64)
    # Neighbours by explicit bounds: Cython compiles this module without wraparound.
    middle = (magnitudes[: magnitudes.size - 1] + magnitudes[1:]) / 2
    below = middle.astype(np.float32)
    below = np.where(below > middle, np.nextafter(below, np.float32(0)), below)
    return zero, below.view(np.uint32), values[zero + 1 :].view(np.uint32) - np.uint32(1)


def search_table(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The table with which the kernels count the thresholds (ascending float32 bits)
    below a float32 magnitude ``a``, of exponent ``e`` and mantissa ``m``.

    Returns ``(binades, buckets)``: binade ``i = clamp(e - FIRST_EXPONENT, 0, 31)``
    has ``binades[i] = offset | shift << 16``, ``a`` lies in bucket ``b = offset +
    (m >> shift)``, and ``buckets[0, b] = count | t1 << 8``, ``buckets[1, b] = t2``:
    the number of thresholds below the bucket and the mantissas of the (up to two)
    inside it (MANTISSA: none); the count below ``a`` is count + (m > t1) + (m > t2).
    Raises if the thresholds need more than 256 buckets or lie outside the binades.
    """
    exponent, mantissa = bits >> 23, bits & MANTISSA
    if exponent.min() <= FIRST_EXPONENT or exponent.max() >= FIRST_EXPONENT + 31:
        raise ValueError("a threshold lies outside the search table's binades")
    binades = np.zeros(32, np.uint32)
    buckets = np.zeros((2, 256), np.uint32)
    offset = 0
    for i in range(32):
        inside = mantissa[exponent == FIRST_EXPONENT + i]
        shift = 23
        while inside.size and np.bincount(inside >> shift).max() > 2:
            shift -= 1
        count = 1 << (23 - shift)
        if offset + count > 256:
            raise ValueError("the thresholds need more than 256 buckets")
        start = (np.uint32(FIRST_EXPONENT + i) << 23) | (np.arange(count, dtype=np.uint32) << shift)
        for b, lo in enumerate(start):
            found = mantissa[bits >> shift == lo >> shift]
            t = [*found, MANTISSA, MANTISSA]
            buckets[:, offset + b] = [np.sum(bits < lo) | t[0] << 8, t[1]]
        binades[i] = offset | shift << 16
        offset += count
    return binades, buckets


def set_code_map(number: int, values: np.ndarray) -> None:
    """Hand the kernels map ``number`` (0: signed, 1: unsigned) with its two searches."""
    zero, nearest, floor = thresholds(values)
    _ext.set_code_map(number, values, zero, *search_table(nearest), *search_table(floor))


SIGNED_MAP = dynamic_map(signed=True)
UNSIGNED_MAP = dynamic_map(signed=False)
set_code_map(0, SIGNED_MAP)
set_code_map(1, UNSIGNED_MAP)


# ------------------------------------------------------------- option checks


def state_dtype(value: object) -> str | None:
    """None (state in the param's precision) or one of STATE_DTYPES."""
    if value is not None and value not in STATE_DTYPES:
        raise ValueError(f"Invalid state_dtype: {value!r} (expected None or one of {STATE_DTYPES})")
    return value


def rounding(value: object) -> str | None:
    """None (the format's default) or one of ROUNDINGS."""
    if value is not None and value not in ROUNDINGS:
        raise ValueError(f"Invalid rounding: {value!r} (expected None or one of {ROUNDINGS})")
    return value


def _integer(name: str, value: object) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    return int(value)


def block_size(value: object) -> int:
    """A power of two from 64 to 2048: elements per absmax of 8-bit state."""
    n = _integer("block_size", value)
    if n not in BLOCK_SIZES:
        raise ValueError(f"Invalid block_size: {n} (a power of two from 64 to 2048)")
    return n


def min_8bit_size(value: object) -> int:
    """Params with fewer elements keep float32 state under state_dtype="int8"."""
    n = _integer("min_8bit_size", value)
    if n < 0:
        raise ValueError(f"Invalid min_8bit_size: {n}")
    return n


def seed(value: object) -> int:
    """The seed of stochastic rounding: an integer in [0, 2**32)."""
    n = _integer("seed", value)
    if not 0 <= n < 2**32:
        raise ValueError(f"Invalid seed: {n} (an integer in [0, 2**32))")
    return n


# ---------------------------------------------------------------- the policy


def state_storage(param: np.ndarray, state: str | None, min_8bit: int) -> np.dtype:
    """The dtype of a param's state buffers (uint8: 8-bit codes with absmax).

    None keeps the param's precision (float32 for bfloat16 params); "int8"
    falls back to float32 for params of fewer than ``min_8bit`` elements.
    """
    if state is None:
        return np.dtype(np.float32) if param.dtype == BFLOAT16 else param.dtype
    if param.dtype == np.float64:
        raise TypeError(
            f"state_dtype={state!r} needs float32 or bfloat16 params, got a float64 param; "
            "leave state_dtype=None for float64 state"
        )
    if state == "int8" and param.size < min_8bit:
        return np.dtype(np.float32)
    return STATE_STORAGE[state]


# The kernels' format options (stochastic, block_size, seed). stochastic None is
# the default, decided where the buffer types are known (fastadam/_ext.pyx): round
# stochastically wherever round-to-nearest stalls, that is, into bfloat16 state (at
# beta2 = 0.999, v cannot decay by 0.1 % per step with 8 bits of mantissa), 8-bit
# state (after the gradients shrink, codes stick while absmax decays;
# tests/test_compressed_accuracy.py) and bfloat16 params (updates below half a unit in the
# last place are lost); a param copy of master weights always rounds to nearest.
Spec: TypeAlias = "tuple[bool | None, int, int]"
DEFAULT_SPEC: Spec = (None, 256, 0)


def spec(mode: object, block: object, seed_: object) -> Spec:
    """The kernels' format options for rounding ``mode``, ``block`` size and ``seed_``, checked."""
    if mode is None and type(block) is int and block == 256 and type(seed_) is int and seed_ == 0:
        return DEFAULT_SPEC
    chosen = rounding(mode)
    return (None if chosen is None else chosen == "stochastic", block_size(block), seed(seed_))


def blocks(n: int, block: int) -> int:
    """The number of absmax values of an 8-bit state buffer of n elements."""
    return -(-n // block)
